import LedgerCore
import LedgerStore

extension DemoStory {
    /// The demo's financing step: before approving, bank-a asks for the eligibility answer (every
    /// rule with its reason, the maximum advance and the price), then checks the evidence offline
    /// against the genesis alone, as it would with `scf query eligibility` and `scf proof verify`.
    func showEligibility(fragment: FragmentID, amount: Int64) throws {
        try DemoEligibility.show(store: store, fragment: fragment, amount: amount)
    }
}

/// Usable by any demo that has a node's ledger open (or its path): `DemoEligibility.show(…)`.
enum DemoEligibility {
    static let bankA: MemberID = "bank-a", core: MemberID = "core-enterprise"

    static func show(ledgerPath: String, fragment: FragmentID, amount: Int64) throws {
        let store = try LedgerFile.open(ledgerPath)
        defer { store.close() }
        try show(store: store, fragment: fragment, amount: amount)
    }

    static func show(store: LedgerStore, fragment: FragmentID, amount: Int64) throws {
        let genesis = store.genesis, suite = store.suite
        let policy = EligibilityPolicy(
            bank: Self.bankA, currency: .cny, minDaysToMaturity: 15, maxTenorDays: 360, advanceRateBps: 9_500, discountRateBps: 450,
            dayCountBasis: 360, creditLines: [Self.core: MinorUnits(50_000_000_00)], defaultSupplierLimit: MinorUnits(5_000_000_00),
            excludeDebtorsWithOverdue: true, overdueShareTriggerBps: 1, overdueGraceDays: 0, maturityWarningBandDays: 10)
        let service = try StoreEligibility(store: store)
        defer { service.close() }
        let answer = try service.answer(EligibilityEngine.Question(fragment: fragment, bank: Self.bankA, amount: Money(minor: amount, .cny)),
                                        policy: policy)
        print("   \(Self.bankA) asks the ledger first (scf query eligibility):")
        for line in EligibilityReport.render(answer, policyGiven: true).split(separator: "\n", omittingEmptySubsequences: false) {
            print("     " + line)
        }
        let evidence = try service.evidence(for: fragment)
        let title = try EvidenceVerifier(genesis: genesis, suite: suite).verify(evidence)
        print("     Evidence: \(1 + evidence.title.count + 1) transactions with Merkle proofs and certificates (\(evidence.canonicalBytes.count) bytes),")
        print("     verified offline against genesis: \(title.terms.debtor) confirmed it, title passes to \(title.holder) (scf proof verify).")
    }
}
