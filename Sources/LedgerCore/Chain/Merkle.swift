/// Binary Merkle tree in the RFC 6962 style: leaves are H(0x00 || data), inner nodes
/// H(0x01 || left || right), and an odd node at the end of a level is promoted unchanged
/// (never duplicated, so no two leaf lists share a root). The empty tree's root is H("").
public enum MerkleTree {
    public static func root(leaves: [Hash], suite: any CryptoSuite) -> Hash {
        guard !leaves.isEmpty else { return suite.hash([]) }
        var level = leaves
        while level.count > 1 {
            var next: [Hash] = []
            next.reserveCapacity((level.count + 1) / 2)
            var index = 0
            while index + 1 < level.count {
                next.append(suite.nodeHash(level[index], level[index + 1]))
                index += 2
            }
            if index < level.count { next.append(level[index]) }
            level = next
        }
        return level[0]
    }

    /// The sibling path from leaf `index` to the root.
    public static func proof(leaves: [Hash], index: Int, suite: any CryptoSuite) -> MerkleProof? {
        guard leaves.indices.contains(index) else { return nil }
        var steps: [MerkleProof.Step] = []
        var level = leaves
        var position = index
        while level.count > 1 {
            let sibling = position ^ 1
            if sibling < level.count {
                steps.append(.init(sibling: level[sibling], siblingOnLeft: sibling < position))
            }
            var next: [Hash] = []
            var i = 0
            while i + 1 < level.count {
                next.append(suite.nodeHash(level[i], level[i + 1]))
                i += 2
            }
            if i < level.count { next.append(level[i]) }
            level = next
            position /= 2
        }
        return MerkleProof(leafIndex: UInt32(index), leafCount: UInt32(leaves.count), steps: steps)
    }
}

/// An inclusion proof: the leaf's siblings from the bottom up.
public struct MerkleProof: Hashable, Sendable, Codable, CanonicalCodable {
    public struct Step: Hashable, Sendable, Codable {
        public var sibling: Hash
        public var siblingOnLeft: Bool
    }
    public var leafIndex: UInt32
    public var leafCount: UInt32
    public var steps: [Step]

    /// The root this proof leads to from `leaf`.
    public func root(from leaf: Hash, suite: any CryptoSuite) -> Hash {
        var current = leaf
        for step in steps {
            current = step.siblingOnLeft ? suite.nodeHash(step.sibling, current) : suite.nodeHash(current, step.sibling)
        }
        return current
    }

    public func verifies(leaf: Hash, root expected: Hash, suite: any CryptoSuite) -> Bool {
        root(from: leaf, suite: suite) == expected
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(leafIndex); writer.write(leafCount); writer.write(UInt32(steps.count))
        for step in steps { writer.write(step.sibling); writer.write(step.siblingOnLeft) }
    }
    public init(leafIndex: UInt32, leafCount: UInt32, steps: [Step]) {
        self.leafIndex = leafIndex; self.leafCount = leafCount; self.steps = steps
    }
    public init(from reader: inout CanonicalReader) throws {
        leafIndex = try reader.readUInt32(); leafCount = try reader.readUInt32()
        let count = try reader.readCount()
        guard count <= 64 else { throw reader.error("a Merkle path of \(count) steps is too long") }
        steps = try (0..<count).map { _ in Step(sibling: try reader.read(), siblingOnLeft: try reader.readBool()) }
    }
}
