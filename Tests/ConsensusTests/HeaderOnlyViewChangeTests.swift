import Consensus
import LedgerCore
import LedgerTestKit
import Testing

/// A view change carries the blocks its sender already committed header-only, so its size is set
/// by the pipeline's uncommitted blocks, not by everything since the last stable checkpoint (which
/// outgrew the frame cap after a run of 2,000-transaction blocks and stalled the cluster).
@Suite struct HeaderOnlyViewChanges {
    /// Commits `blocks` blocks of `perBlock` transactions on every replica, then crashes the
    /// primary and lets the others ask for view 1; returns the view changes they sent.
    static func viewChangesAfterCommitting(_ cluster: inout Cluster, blocks: Int, perBlock: Int) -> [ViewChange] {
        for _ in 0..<blocks {
            for _ in 0..<perBlock { cluster.submitNew(to: [0]) }
            cluster.run()
        }
        cluster.crash(0)
        cluster.submitNew(to: [1, 2, 3])
        var changes: [ViewChange] = []
        // The first timeout retransmits and asks for catch-up; the second asks for the next view.
        for _ in 0..<2 {
            for index in 1..<4 { cluster.fireTimer(index) }
            cluster.run(drop: { _, _, message in
                if case .viewChange(let change) = message { changes.append(change) }
                return isNewView(message)
            })
        }
        return changes
    }

    @Test func committedBlocksGoHeaderOnlyAndTheMessageRoundTrips() throws {
        var cluster = Cluster(consensus: ConsensusParameters(checkpointInterval: 64, watermarkWindow: 128, viewChangeTimeoutMilliseconds: 1_000,
                                                             maxViewChangeTimeoutMilliseconds: 8_000))
        let changes = Self.viewChangesAfterCommitting(&cluster, blocks: 3, perBlock: 5)
        let head = cluster.replicas[1].head.height
        #expect(head.value >= 3)
        let change = try #require(changes.first { $0.replica == ValidatorIndex(1) })
        // Every committed height since the checkpoint (genesis here) is in it, header-only.
        #expect(change.prepared.map(\.height.value) == Array(1...head.value))
        #expect(change.prepared.allSatisfy { $0.omitsBody })
        #expect(change.problem(chainID: cluster.consortium.genesis.chainID, genesisHash: cluster.consortium.genesis.hash(suite: cluster.consortium.suite),
                               validators: cluster.consortium.validatorSet, suite: cluster.consortium.suite) == nil)
        // The same view change with whole blocks carries every transaction on top.
        let whole = change.prepared.compactMap { certificate in cluster.chains[1].first { $0.block.header.height == certificate.height } }
        #expect(whole.count == change.prepared.count)
        let message = ConsensusMessage.viewChange(change)
        let withBodies = ViewChange(newView: change.newView, replica: change.replica, checkpoint: change.checkpoint,
                                    prepared: zip(change.prepared, whole).map { certificate, committed in
                                        PreparedCertificate(prePrepare: PrePrepare(block: committed.block, proposal: certificate.prePrepare.proposal),
                                                            prepares: certificate.prepares)
                                    }, signature: change.signature)
        #expect(!withBodies.prepared.contains { $0.omitsBody })
        let transactionBytes = whole.reduce(0) { total, committed in total + committed.block.transactions.reduce(0) { $0 + $1.wireBytes.count } }
        #expect(transactionBytes > 0)
        #expect(ConsensusMessage.viewChange(withBodies).wireBytes.count - message.wireBytes.count >= transactionBytes)
        let decoded = try ConsensusMessage(wireBytes: message.wireBytes, suite: cluster.consortium.suite)
        #expect(decoded == message)
        #expect(decoded.wireBytes == message.wireBytes)
    }

    @Test func aHeaderOnlyCertificateForAnEmptyBlockIsRefused() throws {
        var cluster = Cluster(consensus: ConsensusParameters(checkpointInterval: 64, watermarkWindow: 128, viewChangeTimeoutMilliseconds: 1_000,
                                                             maxViewChangeTimeoutMilliseconds: 8_000))
        let changes = Self.viewChangesAfterCommitting(&cluster, blocks: 1, perBlock: 1)
        let change = try #require(changes.first { !$0.prepared.isEmpty })
        var bytes = ConsensusMessage.viewChange(change).wireBytes
        // Rewrite the block header's transaction count (the header's last field) to 0: the
        // header-only form must then be refused, as an empty block is always sent whole.
        let certificate = try #require(change.prepared.first)
        let header = certificate.prePrepare.block.header
        var zeroed = header
        zeroed.transactionCount = 0
        let original = header.canonicalBytes, replaced = zeroed.canonicalBytes
        let at = try #require(bytes.firstRange(of: original))
        bytes.replaceSubrange(at, with: replaced)
        #expect(throws: (any Error).self) { try ConsensusMessage(wireBytes: bytes, suite: cluster.consortium.suite) }
    }

    @Test func theClusterFinishesTheViewChangeAndAReplicaWithoutABodyCatchesUp() throws {
        var cluster = Cluster(consensus: ConsensusParameters(checkpointInterval: 64, watermarkWindow: 128, viewChangeTimeoutMilliseconds: 1_000,
                                                             maxViewChangeTimeoutMilliseconds: 8_000))
        // Replica 3 misses two blocks entirely (no pre-prepare, nothing prepared).
        cluster.submitNew(to: [0])
        cluster.run()
        cluster.down.insert(3)
        for _ in 0..<2 {
            cluster.submitNew(to: [0])
            cluster.run()
        }
        cluster.down.remove(3)
        #expect(cluster.chains[3].count == 1 && cluster.chains[1].count == 3)
        cluster.servesCatchUp = false    // so the view change, not the usual catch-up, has to bring replica 3 along
        cluster.stateTransfers.removeAll()
        cluster.crash(0)
        let pending = cluster.submitNew(to: [1, 2, 3])
        for round in 0..<6 where !(1..<4).allSatisfy({ cluster.applications[$0].committedIDs.contains(pending.id) }) {
            for index in 1..<4 { cluster.fireTimer(index) }
            cluster.run()
            if round == 1 { cluster.servesCatchUp = true; cluster.serveStateTransfers() }
        }
        for index in 1..<4 {
            #expect(cluster.replicas[index].view >= 1)
            #expect(cluster.applications[index].committedIDs.contains(pending.id), "replica \(index)")
        }
        #expect(cluster.chains[3].count == cluster.chains[1].count)
        #expect(cluster.chainsAgree())
    }
}

private extension Array where Element == UInt8 {
    func firstRange(of needle: [UInt8]) -> Range<Int>? {
        guard !needle.isEmpty, needle.count <= count else { return nil }
        for start in 0...(count - needle.count) where self[start..<(start + needle.count)].elementsEqual(needle) {
            return start..<(start + needle.count)
        }
        return nil
    }
}
