import LedgerCore
import LedgerTestKit
import Testing

/// The executor re-checks the ledger-wide invariants after every block unless told the block is
/// certified (catch-up and the start-up check): then a quorum already ran the check, and the
/// header's state digest, still compared, pins the result. `.touchedRecords` re-reads every record
/// of a touched receivable, so it also catches a state that was already broken.
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
        let trusted = try executor.execute([transfer], context: context, state: broken, invariants: .none)
        #expect(trusted.receipts.count == 1)
        // The block-effect check assumes the state before the block was sound (so it is, on a
        // chain every block of which was checked): the transfer itself conserves, so it passes.
        // Only `.touchedRecords` (`scf ledger verify`) reads the whole receivable again.
        let effect = try executor.execute([transfer], context: context, state: broken, invariants: .blockEffect)
        #expect(effect.stateDigest == trusted.stateDigest)
        // The healthy state passes with or without the check, to the same result.
        let checked = try executor.execute([transfer], context: context, state: ledger.state)
        let unchecked = try executor.execute([transfer], context: context, state: ledger.state, invariants: .none)
        #expect(checked.stateDigest == unchecked.stateDigest && checked.receipts == unchecked.receipts)
    }
}
