import LedgerCore
import LedgerTestKit
import Testing

/// The executor re-checks the ledger-wide invariants after every block unless told the block is
/// certified (catch-up and the start-up check): then a quorum already ran the check, and the
/// header's state digest, still compared, pins the result.
@Suite struct InvariantTrustTests {
    @Test func aBrokenInvariantStopsExecutionUnlessTheBlockIsCertified() throws {
        var ledger = Ledger()
        let (_, first) = try ledger.activeReceivable(face: 1_000_000_00)
        // A state in which the fragments no longer add up to the receivable (only a bug or an
        // edited file can produce it), then a block that touches that receivable.
        var broken = ledger.state
        broken.fragments[first]!.amount = MinorUnits(999_999_00)
        broken.fragments[first]!.outstanding = MinorUnits(999_999_00)
        let transfer = ledger.tx.make(TestConsortium.tier1, .transfer(fragment: first, to: TestConsortium.tier2, amount: 100_000_00))
        let tip = ledger.chain.tip
        let context = BlockContext(chainID: ledger.consortium.genesis.chainID, height: tip.height.next, previousHash: tip.hash,
                                   previousStateDigest: tip.stateDigest, timestamp: tip.timestamp.adding(milliseconds: 1_000),
                                   view: View(0), proposer: ValidatorIndex(0))
        let executor = ledger.consortium.executor
        #expect {
            _ = try executor.execute([transfer], context: context, state: broken)
        } throws: { error in
            (error as? BlockValidationError)?.code == .invariantViolated
        }
        let trusted = try executor.execute([transfer], context: context, state: broken, checkInvariants: false)
        #expect(trusted.receipts.count == 1)
        // The healthy state passes with or without the check, to the same result.
        let checked = try executor.execute([transfer], context: context, state: ledger.state)
        let unchecked = try executor.execute([transfer], context: context, state: ledger.state, checkInvariants: false)
        #expect(checked.stateDigest == unchecked.stateDigest && checked.receipts == unchecked.receipts)
    }
}
