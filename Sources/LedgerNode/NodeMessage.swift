import Consensus
import LedgerCore

/// What validators send each other over their authenticated links, one per frame.
///
/// Encoding: a version byte (1), a kind byte, the body. Kinds are only ever added (a node that
/// meets a kind it does not know refuses that frame and keeps the link).
public enum NodeMessage: Sendable {
    /// A PBFT message for the replica.
    case consensus(ConsensusMessage)
    /// A client transaction, relayed so every validator's pool has it (whichever becomes primary).
    case transaction(SignedTransaction)
    /// Catch-up: committed blocks with certificates from `from`, at most `limit`.
    case blocksRequest(from: Height, limit: UInt32)
    case blocks([CommittedBlock])
    /// Client transactions admitted by the sender, relayed in one frame (kind 5), in admission order.
    case transactions([SignedTransaction])

    static let version: UInt8 = 1
    /// Most blocks one response carries (and the most a request may ask for). Responses are also
    /// capped in bytes by the sender (`ValidatorNode.maxCatchUpResponseBytes`). Nodes before this
    /// limit was raised from 256 answer at most 256 blocks, which askers accept.
    public static let maxBlocksPerResponse: UInt32 = 1024
    /// Most transactions one relay frame may carry.
    public static let maxTransactionsPerFrame = 10_000

    public var kind: String {
        switch self {
        case .consensus(let message): "consensus/\(message.kind)"
        case .transaction: "transaction"
        case .blocksRequest: "blocks-request"
        case .blocks: "blocks"
        case .transactions: "transactions"
        }
    }

    public var wireBytes: [UInt8] {
        var writer = CanonicalWriter(capacity: 512)
        writer.write(Self.version)
        switch self {
        case .consensus(let message):
            writer.write(UInt8(1)); message.encode(to: &writer)
        case .transaction(let transaction):
            writer.write(UInt8(2)); transaction.encode(to: &writer)
        case .blocksRequest(let from, let limit):
            writer.write(UInt8(3)); writer.write(from); writer.write(limit)
        case .blocks(let blocks):
            writer.write(UInt8(4)); writer.write(UInt32(blocks.count))
            for committed in blocks { Self.encode(committed, to: &writer) }
        case .transactions(let transactions):
            writer.write(UInt8(5)); writer.write(UInt32(transactions.count))
            for transaction in transactions { transaction.encode(to: &writer) }
        }
        return writer.bytes
    }

    /// Whether a frame is a relay of client transactions (kind 2 or 5), from its first two bytes.
    static func carriesTransactions(_ frame: [UInt8]) -> Bool {
        frame.count >= 2 && frame[0] == version && (frame[1] == 2 || frame[1] == 5)
    }

    /// Whether a frame is a catch-up answer (kind 4), from its first two bytes.
    static func carriesBlocks(_ frame: [UInt8]) -> Bool {
        frame.count >= 2 && frame[0] == version && frame[1] == 4
    }

    static func encode(_ committed: CommittedBlock, to writer: inout CanonicalWriter) {
        committed.block.encode(to: &writer)
        writer.write(committed.certificate)
    }

    /// The `blocks` frame made of encoded blocks, each its block's wire bytes and its certificate's
    /// (as `encode(_:to:)` writes them, and as the store keeps them): the same bytes as
    /// `.blocks(…).wireBytes`, copied once.
    static func blocksFrame(_ encodedBlocks: [(wire: [UInt8], certificate: [UInt8])]) -> [UInt8] {
        var writer = CanonicalWriter(capacity: encodedBlocks.reduce(8) { $0 + $1.wire.count + $1.certificate.count })
        writer.write(Self.version)
        writer.write(UInt8(4)); writer.write(UInt32(encodedBlocks.count))
        for block in encodedBlocks {
            writer.write(raw: block.wire)
            writer.write(raw: block.certificate)
        }
        return writer.bytes
    }

    public init(wireBytes: [UInt8], suite: any CryptoSuite) throws {
        var reader = CanonicalReader(wireBytes)
        let version = try reader.readUInt8()
        guard version == Self.version else { throw reader.error("unsupported node message version \(version)") }
        switch try reader.readUInt8() {
        case 1: self = .consensus(try ConsensusMessage(from: &reader, suite: suite))
        case 2: self = .transaction(try SignedTransaction(from: &reader, suite: suite))
        case 3:
            let from: Height = try reader.read()
            let limit = try reader.readUInt32()
            self = .blocksRequest(from: from, limit: min(limit, Self.maxBlocksPerResponse))
        case 4:
            let count = try reader.readCount()
            guard count <= Int(Self.maxBlocksPerResponse) else { throw reader.error("\(count) blocks in one response") }
            var blocks: [CommittedBlock] = []
            for _ in 0..<count {
                let block = try Block(from: &reader, suite: suite)
                blocks.append(CommittedBlock(block: block, certificate: try reader.read()))
            }
            self = .blocks(blocks)
        case 5:
            let count = try reader.readCount()
            guard count <= Self.maxTransactionsPerFrame else { throw reader.error("\(count) transactions in one frame") }
            var transactions: [SignedTransaction] = []
            transactions.reserveCapacity(count)
            for _ in 0..<count { transactions.append(try SignedTransaction(from: &reader, suite: suite)) }
            self = .transactions(transactions)
        case let tag: throw reader.error("unknown node message kind \(tag)")
        }
        try reader.expectEnd()
    }
}

/// Authenticated links to the other validators, as the node uses them. `PeerTransport` provides
/// them over TCP with mutual TLS; tests use an in-memory network.
public protocol PeerLinks: Sendable {
    func send(_ frame: [UInt8], to peer: ValidatorIndex)
    func broadcast(_ frame: [UInt8])
}
