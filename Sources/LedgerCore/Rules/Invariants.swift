/// How much of the ledger-wide invariants `BlockExecutor.execute` checks after a block.
public enum InvariantCheck: Sendable, Equatable {
    /// No check: for a block a commit certificate vouches for (a quorum executed it with the
    /// check and agreed on its state digest, which the caller compares): catch-up and the start-up
    /// check.
    case none
    /// The block's own effect: for every receivable the block touched, the change in its live
    /// fragments' outstanding amounts is matched by the change in settled and written-off, the
    /// live list changes only by fragments the block wrote, and so on (below). It reads only what
    /// the block wrote and those records' values before it, so its cost follows the block, not
    /// the receivables' histories. Assumes the state before the block keeps every invariant,
    /// which holds by induction on a chain every block of which was checked: validators, the
    /// primary and admission's dry run (DECISIONS 53).
    case blockEffect
    /// Every record of every receivable the block touched, as it stands after the block: also
    /// catches a state that was already wrong before it (an edited file, a bug in an older
    /// version). `scf ledger verify` and tests.
    case touchedRecords
}

/// Ledger invariants, checked after a block on the records it touched:
/// - conservation: for every active or closed root, face = live fragments' outstanding + settled + written off,
///   with 0 ≤ outstanding ≤ amount for every fragment and settled and written off never negative;
/// - single holder and lineage: a root's live list holds exactly its live fragments, each once, in order;
///   a fragment never changes root; an active or closed root stays active or closed;
/// - immobility: a fragment that was locked or financed before the block was not transferred or split;
/// - invoices: each invoice is bound to at most one root, and a root's invoices point back to it.
/// A violation is a bug in the state transition, never a user error: the block is refused.
struct InvariantChecker<State: LedgerStateReader> {
    let before: State
    let after: OverlayState<State>
    /// Records the block's execution already read from `before` (`BlockWrites`), by id.
    var rootsBefore: [ReceivableID: ReceivableRoot?] = [:]
    var fragmentsBefore: [FragmentID: Fragment?] = [:]

    private func rootBefore(_ id: ReceivableID) throws -> ReceivableRoot? {
        if let known = rootsBefore[id] { return known }
        return try before.root(id)
    }

    private func fragmentBefore(_ id: FragmentID) throws -> Fragment? {
        if let known = fragmentsBefore[id] { return known }
        return try before.fragment(id)
    }

    private func rootAfter(_ id: ReceivableID) throws -> ReceivableRoot? {
        if let written = after.changes.roots[id] { return written }
        return try rootBefore(id)
    }

    private func fragmentAfter(_ id: FragmentID) throws -> Fragment? {
        if let written = after.changes.fragments[id] { return written }
        return try fragmentBefore(id)
    }

    typealias Written = (fragment: Fragment, before: Fragment?)

    func check(_ mode: InvariantCheck) throws {
        guard mode != .none else { return }
        // The fragments the block wrote, by root, each with its value before the block, read once.
        var written: [ReceivableID: [Written]] = [:]
        for id in after.changes.fragments.keys.sorted() {
            let fragment = after.changes.fragments[id]!
            guard fragment.id == id else { throw violation("fragment \(fragment.id) was written as \(id)") }
            guard fragment.outstanding.value >= 0, fragment.outstanding <= fragment.amount else {
                throw violation("fragment \(fragment.id) has \(fragment.outstanding) outstanding of \(fragment.amount)")
            }
            let previous = try fragmentBefore(fragment.id)
            if let previous {
                guard previous.root == fragment.root else {
                    throw violation("fragment \(fragment.id) moved from root \(previous.root) to \(fragment.root)")
                }
                if previous.state == .locked || previous.state == .financed {
                    if fragment.state == .transferred || fragment.state == .split {
                        throw violation("fragment \(fragment.id) moved while \(previous.state)")
                    }
                    if previous.state == .financed, fragment.holder != previous.holder {
                        throw violation("financed fragment \(fragment.id) changed holder")
                    }
                }
            }
            written[fragment.root, default: []].append((fragment, previous))
        }
        // The roots the block wrote, each with its value before the block, read once.
        var previousRoots: [ReceivableID: ReceivableRoot?] = [:]
        for id in after.changes.roots.keys.sorted() {
            let root = after.changes.roots[id]!
            guard root.id == id else { throw violation("root \(root.id) was written as \(id)") }
            guard root.settled.value >= 0, root.writtenOff.value >= 0 else {
                throw violation("root \(root.id) has \(root.settled) settled and \(root.writtenOff) written off")
            }
            let previous = try rootBefore(id)
            // Active and closed are final: a receivable that has fragments never goes back.
            if let previous, previous.isActiveOrClosed, !root.isActiveOrClosed {
                throw violation("root \(root.id) went from \(previous.status) to \(root.status)")
            }
            previousRoots[id] = .some(previous)
        }
        for id in Set(after.changes.roots.keys).union(written.keys).sorted() {
            guard let root = try rootAfter(id) else { throw violation("fragment points to missing root \(id)") }
            let fragments = written[id] ?? []
            switch mode {
            // A root the block did not write is as it was.
            case .blockEffect: try checkEffect(on: root, previous: previousRoots[id] ?? root, written: fragments)
            case .touchedRecords: try checkRecords(of: root, written: fragments)
            case .none: break
            }
        }
        for key in after.changes.invoices.keys.sorted() {
            let record = after.changes.invoices[key]!
            guard record.invoice.key == key else { throw violation("invoice \(record.invoice.key) was written as \(key)") }
            if let bound = record.boundRoot {
                guard let root = try rootAfter(bound), root.invoiceKeys.contains(record.invoice.key) else {
                    throw violation("invoice \(record.invoice.key) bound to \(bound) which does not list it")
                }
            }
            // An invoice the block unbound or rebound has left its old root's list.
            if mode == .blockEffect, let old = try before.invoice(record.invoice.key)?.boundRoot, old != record.boundRoot,
               let root = try rootAfter(old), root.listsInvoices, root.invoiceKeys.contains(record.invoice.key) {
                throw violation("root \(old) lists invoice \(record.invoice.key) which is now bound to \(record.boundRoot.map { "\($0)" } ?? "no root")")
            }
        }
    }

    /// `.touchedRecords`: reads every invoice and live fragment the root lists.
    private func checkRecords(of root: ReceivableRoot, written: [Written]) throws {
        try checkInvoices(of: root)
        guard try checkShape(of: root) else { return }
        var total = Total(root.settled, root.writtenOff)
        for id in root.liveFragments {
            guard let fragment = try fragmentAfter(id), fragment.root == root.id, fragment.state.isLive else {
                throw violation("root \(root.id) lists \(id), which is not one of its live fragments")
            }
            total.add(fragment.outstanding)
        }
        guard total.equals(root.terms.face.amount.value) else {
            throw violation("root \(root.id): live outstanding + settled + written off = \(total.value), face is \(root.terms.face.amount)")
        }
        try checkWrittenAgree(root, written)
    }

    /// `.blockEffect`: what the block changed of the root, on the root's value before the block.
    private func checkEffect(on root: ReceivableRoot, previous: ReceivableRoot?, written: [Written]) throws {
        guard let previous, previous.isActiveOrClosed, previous.terms.face == root.terms.face else {
            // A root the block created or activated (its fragments are the block's own): every record.
            return try checkRecords(of: root, written: written)
        }
        if previous.invoiceKeys != root.invoiceKeys || previous.status != root.status { try checkInvoices(of: root) }
        guard try checkShape(of: root) else { return }
        // The live list may change only by fragments the block wrote.
        let ids = Set(written.map(\.fragment.id))
        for id in previous.liveFragments.sortedSymmetricDifference(root.liveFragments) where !ids.contains(id) {
            throw violation("root \(root.id)'s live list gained or lost \(id), which the block did not write")
        }
        try checkWrittenAgree(root, written)
        // Conservation: the written fragments' live outstanding moves by as much as settled plus
        // written off moves the other way (face is unchanged, and the rest of the list is as before).
        var was = Total(previous.settled, previous.writtenOff)
        var now = Total(root.settled, root.writtenOff)
        for (fragment, old) in written {
            if previous.liveFragments.sortedContains(fragment.id) {
                guard let old else { throw violation("root \(root.id) listed \(fragment.id), which did not exist") }
                was.add(old.outstanding)
            }
            if fragment.state.isLive { now.add(fragment.outstanding) }
        }
        guard !was.overflowed, now.equals(was.value) else {
            throw violation("root \(root.id): the block moved live outstanding + settled + written off from \(was.value) to \(now.value) among the fragments it wrote; face is \(root.terms.face.amount)")
        }
    }

    /// A root's invoices point back to it (unless it was rejected or withdrawn).
    private func checkInvoices(of root: ReceivableRoot) throws {
        guard root.listsInvoices else { return }
        for key in root.invoiceKeys {
            guard try after.invoice(key)?.boundRoot == root.id else {
                throw violation("root \(root.id) lists invoice \(key) which is not bound to it")
            }
        }
    }

    /// An inactive root has no fragments; an active or closed one's live list is sorted and
    /// unique. Returns whether the root is active or closed (its amounts are to be checked).
    private func checkShape(of root: ReceivableRoot) throws -> Bool {
        guard root.isActiveOrClosed else {
            guard root.liveFragments.isEmpty else { throw violation("inactive root \(root.id) has fragments") }
            return false
        }
        guard zip(root.liveFragments, root.liveFragments.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw violation("root \(root.id) live fragment list is not sorted and unique")
        }
        return true
    }

    /// Each fragment the block wrote is live exactly when its root lists it.
    private func checkWrittenAgree(_ root: ReceivableRoot, _ written: [Written]) throws {
        for (fragment, _) in written where fragment.state.isLive != root.liveFragments.sortedContains(fragment.id) {
            throw violation("fragment \(fragment.id) is \(fragment.state) but the root's live list disagrees")
        }
    }

    private func violation(_ message: String) -> BlockValidationError {
        BlockValidationError(.invariantViolated, message)
    }
}

/// A sum of amounts that remembers whether it ever overflowed (an overflowing sum equals nothing).
struct Total {
    private(set) var value: Int64 = 0
    private(set) var overflowed = false

    init(_ amounts: MinorUnits...) { for amount in amounts { add(amount) } }

    mutating func add(_ amount: MinorUnits) {
        let sum = value.addingReportingOverflow(amount.value)
        value = sum.partialValue
        overflowed = overflowed || sum.overflow
    }

    func equals(_ expected: Int64) -> Bool { !overflowed && value == expected }
}

extension ReceivableRoot {
    var isActiveOrClosed: Bool { status == .active || status == .closed }
    /// Whether the root's invoices must be bound to it (a rejected or withdrawn root released them).
    var listsInvoices: Bool { status != .rejected && status != .withdrawn }
}
