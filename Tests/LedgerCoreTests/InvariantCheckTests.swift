@testable import LedgerCore
import LedgerTestKit
import Testing

/// The two invariant checks (`InvariantCheck`): `.blockEffect`, which live validation runs and
/// which reads only what a block wrote and those records' values before it, must refuse every
/// transition that breaks an invariant on a sound state, as `.touchedRecords` does; both must
/// accept every block a correct executor produces.
@Suite struct InvariantCheckTests {
    /// A receivable of 1,000,000.00 split by a partial transfer: `kept` (700,000.00, tier 1) and
    /// `sent` (300,000.00, tier 2) are its live fragments; `parent` was split.
    struct Split {
        var ledger = Ledger()
        var root: ReceivableID
        var parent: FragmentID
        var kept: FragmentID
        var sent: FragmentID

        init() throws {
            (root, parent) = try ledger.activeReceivable(face: 1_000_000_00)
            #expect(try ledger.submit(TestConsortium.tier1, .transfer(fragment: parent, to: TestConsortium.tier2, amount: 300_000_00)) == nil)
            let children = ledger.root(root).liveFragments
            let state = ledger.state
            #expect(children.count == 2)
            kept = children.first { state.fragments[$0]?.holder == TestConsortium.tier1 }!
            sent = children.first { state.fragments[$0]?.holder == TestConsortium.tier2 }!
        }

        var state: MemoryLedgerState { ledger.state }

        /// The violation `mode` reports for `changes` applied to the ledger's state, if any. The
        /// check runs twice, reading the records before the block from the state and from what
        /// execution would have read (`BlockWrites`), and must give the same verdict both times.
        func violation(_ changes: StateChanges, _ mode: InvariantCheck) -> String? {
            func run(_ checker: InvariantChecker<MemoryLedgerState>) -> String? {
                do {
                    try checker.check(mode)
                    return nil
                } catch {
                    return "\(error)"
                }
            }
            let overlay = OverlayState(base: state, changes: changes)
            var roots: [ReceivableID: ReceivableRoot?] = [:]
            var fragments: [FragmentID: Fragment?] = [:]
            for id in changes.roots.keys { roots[id] = .some(state.roots[id]) }
            for fragment in changes.fragments.values {
                fragments[fragment.id] = .some(state.fragments[fragment.id])
                roots[fragment.root] = .some(state.roots[fragment.root])
            }
            let plain = run(InvariantChecker(before: state, after: overlay))
            let remembered = run(InvariantChecker(before: state, after: overlay, rootsBefore: roots, fragmentsBefore: fragments))
            #expect(plain == remembered)
            return plain
        }

        func caughtByBoth(_ changes: StateChanges) -> Bool {
            violation(changes, .blockEffect) != nil && violation(changes, .touchedRecords) != nil
        }
    }

    @Test func aFragmentWhoseAmountShrinksWithNothingSettledIsRefused() throws {
        let split = try Split()
        var changes = StateChanges()
        var fragment = split.ledger.fragment(split.kept)
        fragment.outstanding = MinorUnits(fragment.outstanding.value - 1)
        changes.fragments[fragment.id] = fragment
        #expect(split.caughtByBoth(changes))
        // Settling the same cent on the root balances it.
        var root = split.ledger.root(split.root)
        root.settled = MinorUnits(root.settled.value + 1)
        changes.roots[root.id] = root
        #expect(split.violation(changes, .blockEffect) == nil)
        #expect(split.violation(changes, .touchedRecords) == nil)
    }

    @Test func amountsCannotGoNegativeOrPastTheFragmentEvenIfTheyStillAddUp() throws {
        let split = try Split()
        // Sums that still match the root's face, by a negative amount or around an overflow.
        let total = split.ledger.fragment(split.kept).outstanding.value + split.ledger.fragment(split.sent).outstanding.value
        for keptValue in [total + 1, Int64.max] {
            var changes = StateChanges()
            var kept = split.ledger.fragment(split.kept)
            var sent = split.ledger.fragment(split.sent)
            kept.outstanding = MinorUnits(keptValue)
            sent.outstanding = MinorUnits(total - keptValue)
            changes.fragments[kept.id] = kept
            changes.fragments[sent.id] = sent
            #expect(split.caughtByBoth(changes))
        }
        var changes = StateChanges()
        var root = split.ledger.root(split.root)
        root.settled = MinorUnits(-1)
        root.writtenOff = MinorUnits(1)
        changes.roots[root.id] = root
        #expect(split.caughtByBoth(changes))
    }

    @Test func aRecordMustBeWrittenUnderItsOwnID() throws {
        let split = try Split()
        var changes = StateChanges()
        var fragment = split.ledger.fragment(split.sent)
        fragment.state = .settled
        changes.fragments[split.kept] = fragment
        #expect(split.caughtByBoth(changes))
    }

    @Test func anActiveReceivableNeverGoesBack() throws {
        let split = try Split()
        var changes = StateChanges()
        var root = split.ledger.root(split.root)
        root.status = .withdrawn
        root.liveFragments = []
        changes.roots[root.id] = root
        for id in [split.kept, split.sent] {
            var fragment = split.ledger.fragment(id)
            fragment.state = .settled
            changes.fragments[id] = fragment
        }
        #expect(split.caughtByBoth(changes))
        #expect(split.violation(changes, .blockEffect)?.contains("went from active to withdrawn") == true)
    }

    @Test func theLiveListCannotLoseOrGainAFragmentTheBlockDidNotWrite() throws {
        let split = try Split()
        var dropped = StateChanges()
        var root = split.ledger.root(split.root)
        root.liveFragments.removeAll { $0 == split.sent }
        dropped.roots[root.id] = root
        #expect(split.caughtByBoth(dropped))
        #expect(split.violation(dropped, .blockEffect)?.contains("did not write") == true)

        var gained = StateChanges()
        root = split.ledger.root(split.root)
        root.liveFragments = (root.liveFragments + [split.parent]).sorted()
        gained.roots[root.id] = root
        #expect(split.caughtByBoth(gained))
    }

    @Test func aWrittenFragmentMustBeLiveExactlyWhenItsRootListsIt() throws {
        let split = try Split()
        var changes = StateChanges()
        var fragment = split.ledger.fragment(split.sent)
        fragment.state = .settled
        changes.fragments[fragment.id] = fragment
        var root = split.ledger.root(split.root)
        root.settled = MinorUnits(root.settled.value + fragment.outstanding.value)
        changes.roots[root.id] = root
        #expect(split.caughtByBoth(changes))
    }

    @Test func aFragmentNeverChangesRoot() throws {
        var split = try Split()
        let (other, _) = try split.ledger.activeReceivable(face: 500_000_00, invoice: "00000002")
        var changes = StateChanges()
        var fragment = split.ledger.fragment(split.sent)
        fragment.root = other
        changes.fragments[fragment.id] = fragment
        #expect(split.caughtByBoth(changes))
        #expect(split.violation(changes, .blockEffect)?.contains("moved from root") == true)
        // Or listed by another receivable without being written at all.
        var listed = StateChanges()
        var root = split.ledger.root(other)
        root.liveFragments = (root.liveFragments + [split.sent]).sorted()
        listed.roots[other] = root
        #expect(split.caughtByBoth(listed))
    }

    @Test func aLockedFragmentCannotMove() throws {
        var split = try Split()
        let money = Money(minor: 200_000_00, .cny)
        #expect(try split.ledger.submit(TestConsortium.tier2, .requestFinancing(fragment: split.sent, bank: TestConsortium.bankA, amount: money)) == nil)
        #expect(split.ledger.fragment(split.sent).state == .locked)
        var changes = StateChanges()
        var fragment = split.ledger.fragment(split.sent)
        fragment.state = .transferred
        changes.fragments[fragment.id] = fragment
        #expect(split.caughtByBoth(changes))
    }

    @Test func anInvoiceReleasedFromARootThatStillListsItIsRefused() throws {
        let split = try Split()
        let key = split.ledger.root(split.root).invoiceKeys[0]
        var record = split.state.invoices[key]!
        record.boundRoot = nil
        var changes = StateChanges()
        changes.invoices[key] = record
        // The root itself is untouched: only the block-effect check looks at the invoice's old root.
        #expect(split.violation(changes, .blockEffect)?.contains("lists invoice") == true)
    }

    @Test func anInvoiceReboundToAnotherRootThatListsItIsRefusedWhileTheOldOneListsIt() throws {
        var split = try Split()
        let (other, _) = try split.ledger.activeReceivable(face: 500_000_00, invoice: "00000002")
        let key = split.ledger.root(split.root).invoiceKeys[0]
        var record = split.state.invoices[key]!
        record.boundRoot = other
        var root = split.ledger.root(other)
        root.invoiceKeys = (root.invoiceKeys + [key]).sorted()
        var changes = StateChanges()
        changes.invoices[key] = record
        changes.roots[other] = root
        #expect(split.violation(changes, .blockEffect)?.contains("lists invoice") == true)
    }

    @Test(arguments: 0..<4)
    func everyBlockOfARandomStoryPassesBothChecksToTheSameResult(seed: UInt64) throws {
        var story = RandomStory(seed: seed)
        for _ in 0..<120 { try story.step() }
        let chain = story.ledger.chain
        let executor = chain.executor
        var state = MemoryLedgerState(genesis: chain.consortium.genesis)
        var tip = BlockExecutor.genesisTip(genesis: chain.consortium.genesis, suite: chain.consortium.suite)
        for committed in chain.blocks {
            let effect = try executor.validate(committed.block, on: tip, state: state, invariants: .blockEffect)
            let records = try executor.validate(committed.block, on: tip, state: state, invariants: .touchedRecords)
            #expect(effect.stateDigest == records.stateDigest && effect.receipts == records.receipts)
            state.apply(effect.changes)
            tip = ChainTip(header: committed.block.header, suite: chain.consortium.suite)
        }
        #expect(chain.blocks.count > 50)
    }

    @Test func theSortedListHelpersAgreeWithSets() {
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<200 {
            let pool = (0..<12).map { _ in FragmentID(Hash(w0: rng.next() % 16, w1: 0, w2: 0, w3: 0)) }
            let a = Array(Set(pool.prefix(6))).sorted(), b = Array(Set(pool.suffix(6))).sorted()
            #expect(Set(InvariantChecker<MemoryLedgerState>.symmetricDifference(a, b)) == Set(a).symmetricDifference(Set(b)))
            for id in pool { #expect(InvariantChecker<MemoryLedgerState>.contains(a, id) == a.contains(id)) }
        }
    }
}
