import LedgerCore
import LedgerTestKit
import Testing

@Suite struct WorkloadTests {
    @Test func theSameSeedGivesTheSameChain() throws {
        let consortium = TestConsortium(extraSuppliers: 8)
        func run(_ seed: UInt64) throws -> [Hash] {
            var chain = ChainBuilder(consortium: consortium)
            var generator = WorkloadGenerator(consortium: consortium, seed: seed, transactionsPerBlock: 6, blockInterval: 24 * 3_600_000)
            var hashes: [Hash] = []
            for _ in 0..<25 { hashes.append(try generator.appendBlock(to: &chain).0.block.hash(suite: consortium.suite)) }
            return hashes
        }
        let first = try run(42)
        #expect(try run(42) == first)
        #expect(try run(43) != first)
    }

    @Test func aLongRunIsMostlyValidAndPlaysTheWholeStory() throws {
        let consortium = TestConsortium(extraSuppliers: 16)
        var chain = ChainBuilder(consortium: consortium)
        chain.retainsBlocks = false
        var generator = WorkloadGenerator(consortium: consortium, seed: 9, transactionsPerBlock: 12, blockInterval: 24 * 3_600_000)
        var transferredDownTiers = Set<MemberID>()
        var splits = 0
        for _ in 0..<200 {
            let (block, result) = try generator.appendBlock(to: &chain)
            for (transaction, receipt) in zip(block.block.transactions, result.receipts) where receipt.isCommitted {
                if case .transfer(_, let to, _) = transaction.body.operation { transferredDownTiers.insert(to) }
            }
            splits += result.changes.fragments.values.count { $0.state == .split }
        }
        let stats = generator.statistics
        #expect(stats.transactions == 200 * 12)
        let rejectedShare = Double(stats.rejected) / Double(stats.transactions)
        #expect(rejectedShare > 0.01 && rejectedShare < 0.15, "rejected \(stats.rejected) of \(stats.transactions): \(stats.rejectionsByCode)")
        for kind in ["propose", "issue", "confirm", "accept", "transfer", "requestFinancing", "approveFinancing", "rejectFinancing",
                     "attest", "freeze", "unfreeze", "settle", "invalid"] {
            #expect(stats.generated[kind, default: 0] > 0, "no \(kind) in \(stats.generated)")
        }
        for code in ["transferToDebtor", "amountExceedsOutstanding", "notDebtor", "notBank", "replayed"] {
            #expect(stats.rejectionsByCode[code, default: 0] > 0, "no \(code) rejection in \(stats.rejectionsByCode)")
        }
        #expect(splits > 20)
        #expect(transferredDownTiers.contains(TestConsortium.tier2) && transferredDownTiers.contains(TestConsortium.tier3))
        #expect(chain.state.roots.values.contains { $0.status == .closed })
        #expect(chain.state.fragments.values.contains { $0.state == .financed })
        #expect(chain.state.fragments.values.contains { $0.generation >= 3 })
    }
}
