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

        /// The ledger's fragment `id`, changed by `edit`.
        func fragment(_ id: FragmentID, _ edit: (inout Fragment) -> Void) -> Fragment {
            var fragment = ledger.fragment(id)
            edit(&fragment)
            return fragment
        }

        /// The ledger's root `id` (the split receivable by default), changed by `edit`.
        func root(_ id: ReceivableID? = nil, _ edit: (inout ReceivableRoot) -> Void) -> ReceivableRoot {
            var root = ledger.root(id ?? self.root)
            edit(&root)
            return root
        }
    }

    /// A block's writes: these records, each under its own id.
    static func writes(_ fragments: [Fragment] = [], _ roots: [ReceivableRoot] = []) -> StateChanges {
        var changes = StateChanges()
        for fragment in fragments { changes.fragments[fragment.id] = fragment }
        for root in roots { changes.roots[root.id] = root }
        return changes
    }

    @Test func aFragmentWhoseAmountShrinksWithNothingSettledIsRefused() throws {
        let split = try Split()
        let shrunk = split.fragment(split.kept) { $0.outstanding = MinorUnits($0.outstanding.value - 1) }
        #expect(split.caughtByBoth(Self.writes([shrunk])))
        // Settling the same cent on the root balances it.
        let settled = split.root { $0.settled = MinorUnits($0.settled.value + 1) }
        #expect(split.violation(Self.writes([shrunk], [settled]), .blockEffect) == nil)
        #expect(split.violation(Self.writes([shrunk], [settled]), .touchedRecords) == nil)
    }

    @Test func amountsCannotGoNegativeOrPastTheFragmentEvenIfTheyStillAddUp() throws {
        let split = try Split()
        // Sums that still match the root's face, by a negative amount or around an overflow.
        let total = split.ledger.fragment(split.kept).outstanding.value + split.ledger.fragment(split.sent).outstanding.value
        for keptValue in [total + 1, Int64.max] {
            let kept = split.fragment(split.kept) { $0.outstanding = MinorUnits(keptValue) }
            let sent = split.fragment(split.sent) { $0.outstanding = MinorUnits(total - keptValue) }
            #expect(split.caughtByBoth(Self.writes([kept, sent])))
        }
        let negative = split.root { $0.settled = MinorUnits(-1); $0.writtenOff = MinorUnits(1) }
        #expect(split.caughtByBoth(Self.writes([], [negative])))
    }

    @Test func aRecordMustBeWrittenUnderItsOwnID() throws {
        let split = try Split()
        var changes = StateChanges()
        changes.fragments[split.kept] = split.fragment(split.sent) { $0.state = .settled }
        #expect(split.caughtByBoth(changes))
    }

    @Test func anActiveReceivableNeverGoesBack() throws {
        let split = try Split()
        let withdrawn = split.root { $0.status = .withdrawn; $0.liveFragments = [] }
        let settled = [split.kept, split.sent].map { split.fragment($0) { $0.state = .settled } }
        let changes = Self.writes(settled, [withdrawn])
        #expect(split.caughtByBoth(changes))
        #expect(split.violation(changes, .blockEffect)?.contains("went from active to withdrawn") == true)
    }

    @Test func theLiveListCannotLoseOrGainAFragmentTheBlockDidNotWrite() throws {
        let split = try Split()
        let dropped = Self.writes([], [split.root { $0.liveFragments.removeAll { $0 == split.sent } }])
        #expect(split.caughtByBoth(dropped))
        #expect(split.violation(dropped, .blockEffect)?.contains("did not write") == true)
        let gained = Self.writes([], [split.root { $0.liveFragments = ($0.liveFragments + [split.parent]).sorted() }])
        #expect(split.caughtByBoth(gained))
    }

    @Test func aWrittenFragmentMustBeLiveExactlyWhenItsRootListsIt() throws {
        let split = try Split()
        let settled = split.fragment(split.sent) { $0.state = .settled }
        let root = split.root { $0.settled = MinorUnits($0.settled.value + settled.outstanding.value) }
        #expect(split.caughtByBoth(Self.writes([settled], [root])))
    }

    @Test func aFragmentNeverChangesRoot() throws {
        var split = try Split()
        let (other, _) = try split.ledger.activeReceivable(face: 500_000_00, invoice: "00000002")
        let moved = Self.writes([split.fragment(split.sent) { $0.root = other }])
        #expect(split.caughtByBoth(moved))
        #expect(split.violation(moved, .blockEffect)?.contains("moved from root") == true)
        // Or listed by another receivable without being written at all.
        let listed = Self.writes([], [split.root(other) { $0.liveFragments = ($0.liveFragments + [split.sent]).sorted() }])
        #expect(split.caughtByBoth(listed))
    }

    @Test func aLockedFragmentCannotMove() throws {
        var split = try Split()
        let money = Money(minor: 200_000_00, .cny)
        #expect(try split.ledger.submit(TestConsortium.tier2, .requestFinancing(fragment: split.sent, bank: TestConsortium.bankA, amount: money)) == nil)
        #expect(split.ledger.fragment(split.sent).state == .locked)
        #expect(split.caughtByBoth(Self.writes([split.fragment(split.sent) { $0.state = .transferred }])))
    }

    @Test func anInvoiceReleasedFromARootThatStillListsItIsRefused() throws {
        let split = try Split()
        let key = split.ledger.root(split.root).invoiceKeys[0]
        var changes = StateChanges()
        changes.invoices[key] = split.state.invoices[key]!
        changes.invoices[key]!.boundRoot = nil
        // The root itself is untouched: only the block-effect check looks at the invoice's old root.
        #expect(split.violation(changes, .blockEffect)?.contains("lists invoice") == true)
    }

    @Test func anInvoiceReboundToAnotherRootThatListsItIsRefusedWhileTheOldOneListsIt() throws {
        var split = try Split()
        let (other, _) = try split.ledger.activeReceivable(face: 500_000_00, invoice: "00000002")
        let key = split.ledger.root(split.root).invoiceKeys[0]
        var changes = Self.writes([], [split.root(other) { $0.invoiceKeys = ($0.invoiceKeys + [key]).sorted() }])
        changes.invoices[key] = split.state.invoices[key]!
        changes.invoices[key]!.boundRoot = other
        #expect(split.violation(changes, .blockEffect)?.contains("lists invoice") == true)
    }

    /// Every block of a random story passes the block-effect check (the story was built with the
    /// full one), and each block's writes with one live fragment's outstanding cut by a cent, the
    /// cent going nowhere, are refused by both checks.
    @Test(arguments: 0..<4)
    func randomBlocksPassAndTheirWritesLessACentAreRefused(seed: UInt64) throws {
        var story = RandomStory(seed: seed)
        for _ in 0..<120 { try story.step() }
        let chain = story.ledger.chain
        var state = MemoryLedgerState(genesis: chain.consortium.genesis)
        var tip = BlockExecutor.genesisTip(genesis: chain.consortium.genesis, suite: chain.consortium.suite)
        var corrupted = 0
        for committed in chain.blocks {
            let result = try chain.executor.validate(committed.block, on: tip, state: state, invariants: .blockEffect)
            let live = result.changes.sortedFragments.first { $0.state.isLive && $0.outstanding.value > 0 }
            if var fragment = live {
                fragment.outstanding = MinorUnits(fragment.outstanding.value - 1)
                var changes = result.changes
                changes.fragments[fragment.id] = fragment
                for mode in [InvariantCheck.blockEffect, .touchedRecords] {
                    #expect(throws: BlockValidationError.self, "block \(committed.block.header.height), \(mode)") {
                        try InvariantChecker(before: state, after: OverlayState(base: state, changes: changes)).check(mode)
                    }
                }
                corrupted += 1
            }
            state.apply(result.changes)
            tip = ChainTip(header: committed.block.header, suite: chain.consortium.suite)
        }
        #expect(chain.blocks.count > 50 && corrupted > 20)
    }

    @Test func theSortedListHelpersAgreeWithSets() {
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<200 {
            let pool = (0..<12).map { _ in FragmentID(Hash(w0: rng.next() % 16, w1: 0, w2: 0, w3: 0)) }
            let a = Array(Set(pool.prefix(6))).sorted(), b = Array(Set(pool.suffix(6))).sorted()
            let difference = a.sortedSymmetricDifference(b)
            #expect(difference == difference.sorted() && Set(difference) == Set(a).symmetricDifference(Set(b)))
            for id in pool {
                #expect(a.sortedContains(id) == a.contains(id))
                #expect(a.sortedInsertionIndex(of: id) == (a.firstIndex { $0 >= id } ?? a.endIndex))
            }
        }
    }
}
