/// Ledger invariants, checked after every block on every record the block touched:
/// - conservation: for every active or closed root, face = live fragments' outstanding + settled + written off;
/// - single holder and lineage: a root's live list holds exactly its live fragments, each once;
/// - immobility: a fragment that was locked or financed before the block was not transferred or split;
/// - invoices: each invoice is bound to at most one root, and a root's invoices point back to it.
/// A violation is a bug in the state transition, never a user error: the block is refused.
struct InvariantChecker<Before: LedgerStateReader, After: LedgerStateReader> {
    let before: Before
    let after: OverlayState<After>

    init(before: Before, after: OverlayState<After>) where Before == After {
        self.before = before
        self.after = after
    }

    func check() throws {
        var roots = Set(after.changes.roots.keys)
        // The fragments the block wrote, by root, once (not one scan of them per root).
        var written: [ReceivableID: [(id: FragmentID, isLive: Bool)]] = [:]
        for fragment in after.changes.fragments.values {
            roots.insert(fragment.root)
            written[fragment.root, default: []].append((fragment.id, fragment.state.isLive))
        }
        for id in roots.sorted() {
            guard let root = try after.root(id) else { throw violation("fragment points to missing root \(id)") }
            try checkRoot(root, written: written[id] ?? [])
        }
        for fragment in after.changes.sortedFragments {
            if let previous = try before.fragment(fragment.id), previous.state == .locked || previous.state == .financed {
                if fragment.state == .transferred || fragment.state == .split {
                    throw violation("fragment \(fragment.id) moved while \(previous.state)")
                }
                if previous.state == .financed, fragment.holder != previous.holder {
                    throw violation("financed fragment \(fragment.id) changed holder")
                }
            }
        }
        for record in after.changes.sortedInvoices {
            if let bound = record.boundRoot {
                guard let root = try after.root(bound), root.invoiceKeys.contains(record.invoice.key) else {
                    throw violation("invoice \(record.invoice.key) bound to \(bound) which does not list it")
                }
            }
        }
    }

    private func checkRoot(_ root: ReceivableRoot, written: [(id: FragmentID, isLive: Bool)]) throws {
        for key in root.invoiceKeys where root.status != .rejected && root.status != .withdrawn {
            guard try after.invoice(key)?.boundRoot == root.id else {
                throw violation("root \(root.id) lists invoice \(key) which is not bound to it")
            }
        }
        guard root.status == .active || root.status == .closed else {
            guard root.liveFragments.isEmpty else { throw violation("inactive root \(root.id) has fragments") }
            return
        }
        guard root.liveFragments == root.liveFragments.sorted(), Set(root.liveFragments).count == root.liveFragments.count else {
            throw violation("root \(root.id) live fragment list is not sorted and unique")
        }
        var total = root.settled.value.addingReportingOverflow(root.writtenOff.value)
        for id in root.liveFragments {
            guard let fragment = try after.fragment(id), fragment.root == root.id, fragment.state.isLive else {
                throw violation("root \(root.id) lists \(id), which is not one of its live fragments")
            }
            let sum = total.partialValue.addingReportingOverflow(fragment.outstanding.value)
            total = (sum.partialValue, total.overflow || sum.overflow)
        }
        guard !total.overflow, total.partialValue == root.terms.face.amount.value else {
            throw violation("root \(root.id): live outstanding + settled + written off = \(total.partialValue), face is \(root.terms.face.amount)")
        }
        for fragment in written {
            guard fragment.isLive == root.liveFragments.contains(fragment.id) else {
                let state = try after.fragment(fragment.id)?.state.description ?? "missing"
                throw violation("fragment \(fragment.id) is \(state) but the root's live list disagrees")
            }
        }
    }

    private func violation(_ message: String) -> BlockValidationError {
        BlockValidationError(.invariantViolated, message)
    }
}
