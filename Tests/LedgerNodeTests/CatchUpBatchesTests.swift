import LedgerCore
@testable import LedgerNode
import LedgerTestKit
import Testing

/// How catch-up cuts a turn of fetched blocks into database batches: large turns into batches of
/// at most 8,000 transactions, small ones into several batches still (so executing one overlaps
/// writing the one before), never below 1,000 transactions or above 256 blocks a batch.
struct CatchUpBatchesTests {
    /// `count` blocks of `size` copies of one transaction (only the counts matter here).
    static func blocks(_ count: Int, of size: Int) -> [CommittedBlock] {
        var factory = TransactionFactory(consortium: TestConsortium())
        let transaction = BatchAPITests.registration(&factory, "batches")
        return (1...count).map { height in
            let header = BlockHeader(chainID: "batches", height: Height(UInt64(height)), previousHash: .zero, transactionsRoot: .zero,
                                     resultsRoot: .zero, stateDigest: .zero, timestamp: ConsensusTime(millisecondsSinceEpoch: 0),
                                     view: 0, proposer: 0, transactionCount: UInt32(size))
            return CommittedBlock(block: Block(header: header, transactions: Array(repeating: transaction, count: size)),
                                  certificate: CommitCertificate(height: header.height, view: 0, blockHash: .zero, votes: []))
        }
    }

    static func sizes(_ batches: [[CommittedBlock]]) -> [Int] { batches.map { $0.reduce(0) { $0 + $1.block.transactions.count } } }

    @Test func aLargeTurnIsCutIntoBatchesOfAtMost8000Transactions() {
        let turn = Self.blocks(400, of: 100)
        let batches = ValidatorNode.catchUpBatches(turn)
        #expect(Self.sizes(batches) == Array(repeating: 8_000, count: 5))
        #expect(batches.flatMap { $0 }.map(\.block.header.height) == turn.map(\.block.header.height))
    }

    @Test func aSmallTurnStillHasFourBatchesOfAtLeast1000() {
        #expect(Self.sizes(ValidatorNode.catchUpBatches(Self.blocks(80, of: 100))) == [2_000, 2_000, 2_000, 2_000])
        #expect(Self.sizes(ValidatorNode.catchUpBatches(Self.blocks(20, of: 100))) == [1_000, 1_000])
        #expect(Self.sizes(ValidatorNode.catchUpBatches(Self.blocks(3, of: 100))) == [300])
    }

    @Test func aBatchHoldsAt256BlocksEvenWhenTheyAreSmall() {
        let batches = ValidatorNode.catchUpBatches(Self.blocks(600, of: 1))
        #expect(batches.map(\.count) == [256, 256, 88])
    }
}
