import Foundation
import LedgerCore
import LedgerTestKit
import Testing

/// Eligibility, one test per rule for pass and for fail, plus pricing, the policy file and the
/// tricky stories (a fragment split three times, the parent of a split, double financing, an
/// overdue debtor, a credit line used up by several financings).
@Suite struct EligibilityTests {
    typealias C = TestConsortium

    static let policy = EligibilityPolicy(
        bank: C.bankA, currency: .cny, minDaysToMaturity: 15, maxTenorDays: 360, advanceRateBps: 9_000, discountRateBps: 450,
        dayCountBasis: 360, creditLines: [C.core: MinorUnits(10_000_000_00)], excludeDebtorsWithOverdue: true,
        overdueShareTriggerBps: 1, overdueGraceDays: 0, maturityWarningBandDays: 10)

    // MARK: The whole answer

    @Test func anActiveConfirmedFragmentIsEligibleWithPriceAndTitle() throws {
        var ledger = Ledger()
        let (root, fragment) = try ledger.activeReceivable(face: 1_000_000_00)
        let answer = try ledger.ask(fragment, amount: 500_000_00)
        #expect(answer.eligible)
        #expect(answer.failures.isEmpty && answer.warnings.isEmpty, "\(answer.failures + answer.warnings)")
        #expect(Set(answer.rules.map(\.code)) == Set(EligibilityRuleCode.allCases))
        #expect(answer.maxAdvance == Money(minor: 900_000_00, .cny))
        // 2026-01-10 → 2026-07-01 is 172 days: 500,000.00 × 4.50 % × 172 / 360 = 10,750.00 exactly.
        let pricing = try #require(answer.pricing)
        #expect(pricing.days == 172)
        #expect(pricing.discount == Money(minor: 10_750_00, .cny))
        #expect(pricing.netProceeds == Money(minor: 489_250_00, .cny))
        #expect(answer.summary?.root == root && answer.summary?.holder == C.tier1)
        #expect(answer.asOf.height == ledger.chain.tip.height && answer.asOf.blockHash == ledger.chain.tip.hash)
        #expect(answer.title.map(\.kind) == ["confirm"] && answer.title[0].signer == C.core)
        #expect(try EligibilityAnswer(canonicalBytes: answer.canonicalBytes) == answer)
        let json = try JSONEncoder().encode(answer)
        #expect(try JSONDecoder().decode(EligibilityAnswer.self, from: json) == answer)
    }

    @Test func unknownFragmentFails() throws {
        var ledger = Ledger()
        _ = try ledger.activeReceivable()
        let answer = try ledger.ask(FragmentID(Hash(w0: 1, w1: 2, w2: 3, w3: 4)), amount: 100)
        #expect(!answer.eligible)
        #expect(answer.result(.fragmentKnown)?.outcome == .fail)
        #expect(answer.summary == nil && answer.maxAdvance == nil)
    }

    // MARK: Hard rules

    @Test func debtorConfirmationPassesForConfirmAndIssueAndFailsWhenSignedByAnother() throws {
        var ledger = Ledger()
        let (root, fragment) = try ledger.activeReceivable()
        #expect(try ledger.ask(fragment, amount: 100).result(.debtorConfirmed)?.outcome == .pass)
        // Issued by the debtor and accepted by the supplier: the issue is the debtor's own confirmation.
        let terms = ledger.consortium.terms(face: 200_000_00, invoiceNumber: "77")
        let issue = ledger.tx.make(C.core, .issueReceivable(terms))
        try ledger.commit([issue])
        #expect(try ledger.submit(C.tier1, .acceptReceivable(ReceivableID(issue.id))) == nil)
        let issued = FragmentID.initial(of: ReceivableID(issue.id), suite: ledger.consortium.suite)
        let viaIssue = try ledger.ask(issued, amount: 100)
        #expect(viaIssue.result(.debtorConfirmed)?.outcome == .pass, "\(viaIssue.result(.debtorConfirmed)!)")
        // A state whose confirmation points at the supplier's own proposal (signed on the debtor's behalf).
        var forged = ledger.state
        forged.roots[root]!.confirmationTx = root.hash
        let answer = try ledger.ask(fragment, amount: 100, state: forged)
        #expect(answer.result(.debtorConfirmed)?.outcome == .fail)
        #expect(answer.result(.debtorConfirmed)!.message.contains("signed by tier1-supplier, not by the debtor"))
        #expect(!answer.eligible)
    }

    @Test func aFragmentSplitThreeTimesTracesToTheRootAndPasses() throws {
        var ledger = Ledger()
        let (_, first) = try ledger.activeReceivable(face: 1_000_000_00)
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 600_000_00)) == nil)
        let second = ledger.child(first, 0)
        #expect(try ledger.submit(C.tier2, .transfer(fragment: second, to: C.tier3, amount: 300_000_00)) == nil)
        let third = ledger.child(second, 0)
        #expect(try ledger.submit(C.tier3, .transfer(fragment: third, to: C.tier2, amount: 100_000_00)) == nil)
        let remainder = ledger.child(third, 1)   // tier3 keeps 200,000.00
        let answer = try ledger.ask(remainder, amount: 100_000_00)
        #expect(answer.eligible, "\(answer.failures)")
        #expect(answer.result(.chainOfTitle)?.outcome == .pass)
        #expect(answer.title.map(\.signer) == [C.core, C.tier1, C.tier2, C.tier3])
        #expect(answer.title.map(\.holder) == [C.tier1, C.tier2, C.tier3, C.tier3])
        #expect(answer.title.map(\.amount) == [1_000_000_00, 600_000_00, 300_000_00, 200_000_00])
        #expect(answer.summary?.generation == 3)
    }

    @Test func aBrokenChainOfTitleFails() throws {
        var ledger = Ledger()
        let (_, first) = try ledger.activeReceivable()
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 100_00)) == nil)
        let child = ledger.child(first, 0)
        var broken = ledger.state
        broken.fragments[child]!.createdBy = Hash(w0: 9, w1: 9, w2: 9, w3: 9)
        let answer = try ledger.ask(child, amount: 50_00, state: broken)
        #expect(answer.result(.chainOfTitle)?.outcome == .fail)
        #expect(answer.result(.chainOfTitle)!.message.contains("is not committed"))
    }

    @Test func theParentOfASplitIsNoLongerFinanceable() throws {
        var ledger = Ledger()
        let (_, first) = try ledger.activeReceivable(face: 1_000_000_00)
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 400_000_00)) == nil)
        let parent = try ledger.ask(first, amount: 100_000_00)
        #expect(!parent.eligible)
        #expect(parent.result(.fragmentActive)?.outcome == .fail)
        #expect(parent.result(.fragmentActive)!.message.contains("split"))
        #expect(try ledger.ask(ledger.child(first, 1), amount: 100_000_00).eligible)
    }

    @Test func aLockedFragmentFailsFragmentActiveExceptForTheBankAsked() throws {
        var ledger = Ledger()
        let (_, fragment) = try ledger.activeReceivable()
        #expect(try ledger.submit(C.tier1, .requestFinancing(fragment: fragment, bank: C.bankB, amount: Money(minor: 100_00, .cny))) == nil)
        let answer = try ledger.ask(fragment, amount: 100_00)
        #expect(answer.result(.fragmentActive)?.outcome == .fail)
        #expect(answer.result(.fragmentActive)!.message.contains("pending financing request to bank-b"))
        // bank-b itself asks in order to decide the request: the lock is its own.
        var policyB = Self.policy
        policyB.bank = C.bankB
        let own = try ledger.ask(fragment, bank: C.bankB, amount: 100_00, policy: policyB)
        #expect(own.result(.fragmentActive)?.outcome == .pass)
        #expect(own.eligible, "\(own.failures)")
    }

    @Test func aFragmentFinancedByBankAIsRefusedForBankBAsAlreadyFinanced() throws {
        var ledger = Ledger()
        let (_, fragment) = try ledger.activeReceivable(face: 1_000_000_00)
        #expect(try ledger.ask(fragment, amount: 500_000_00).result(.notFinanced)?.outcome == .pass)
        let request = ledger.tx.make(C.tier1, .requestFinancing(fragment: fragment, bank: C.bankA, amount: Money(minor: 500_000_00, .cny)))
        try ledger.commit([request])
        #expect(try ledger.submit(C.bankA, .approveFinancing(request: request.id, advance: 500_000_00)) == nil)
        var policyB = Self.policy
        policyB.bank = C.bankB
        let answer = try ledger.ask(fragment, bank: C.bankB, amount: 500_000_00, policy: policyB)
        #expect(!answer.eligible)
        #expect(answer.result(.notFinanced)?.outcome == .fail)
        #expect(answer.result(.notFinanced)!.message.hasPrefix("already financed by bank-a"))
    }

    @Test func aFrozenFragmentFailsUntilUnfrozen() throws {
        var ledger = Ledger()
        let (_, fragment) = try ledger.activeReceivable()
        #expect(try ledger.submit(C.regulator, .freeze(fragment: fragment, reason: "court order 2026-17")) == nil)
        #expect(try ledger.ask(fragment, amount: 100_00).result(.notFrozen)?.outcome == .fail)
        #expect(try ledger.submit(C.regulator, .unfreeze(fragment: fragment, reason: "order lifted")) == nil)
        #expect(try ledger.ask(fragment, amount: 100_00).result(.notFrozen)?.outcome == .pass)
    }

    @Test func aMaturedReceivableFails() throws {
        var ledger = Ledger()
        let (_, fragment) = try ledger.activeReceivable(maturity: "2026-03-01")
        #expect(try ledger.ask(fragment, amount: 100_00).result(.notMatured)?.outcome == .pass)
        ledger.date = "2026-03-01"
        try ledger.commit([])
        let answer = try ledger.ask(fragment, amount: 100_00)
        #expect(answer.result(.notMatured)?.outcome == .fail)
        #expect(answer.result(.notMatured)!.message.contains("matured on 2026-03-01"))
    }

    @Test func theAmountMustBePositiveAndWithinOutstanding() throws {
        var ledger = Ledger()
        let (_, fragment) = try ledger.activeReceivable(face: 1_000_00)
        #expect(try ledger.ask(fragment, amount: 900_00).result(.amountWithinOutstanding)?.outcome == .pass)
        #expect(try ledger.ask(fragment, amount: 1_000_01).result(.amountWithinOutstanding)?.outcome == .fail)
        #expect(try ledger.ask(fragment, amount: 0).result(.amountWithinOutstanding)?.outcome == .fail)
    }

    @Test func theCurrencyMustMatch() throws {
        var ledger = Ledger()
        let (_, fragment) = try ledger.activeReceivable()
        #expect(try ledger.ask(fragment, amount: 100_00).result(.currencyMatches)?.outcome == .pass)
        let answer = try ledger.ask(fragment, amount: 100_00, currency: .usd)
        #expect(answer.result(.currencyMatches)?.outcome == .fail)
        #expect(!answer.eligible)
    }

    @Test func theHolderMustBeActiveAndNotTheDebtor() throws {
        var ledger = Ledger()
        let (_, fragment) = try ledger.activeReceivable()
        #expect(try ledger.ask(fragment, amount: 100_00).result(.holderEligible)?.outcome == .pass)
        var debtorHolds = ledger.state
        debtorHolds.fragments[fragment]!.holder = C.core
        #expect(try ledger.ask(fragment, amount: 100_00, state: debtorHolds).result(.holderEligible)!.message.contains("is the debtor itself"))
        #expect(try ledger.submit(C.operatorID, .setMemberStatus(member: C.tier1, status: .blacklisted, reason: "fraud")) == nil)
        let answer = try ledger.ask(fragment, amount: 100_00)
        #expect(answer.result(.holderEligible)?.outcome == .fail)
        #expect(answer.result(.holderEligible)!.message.contains("blacklisted"))
    }

    @Test func theDebtorMustBeActive() throws {
        var ledger = Ledger()
        let (_, fragment) = try ledger.activeReceivable()
        #expect(try ledger.ask(fragment, amount: 100_00).result(.debtorEligible)?.outcome == .pass)
        #expect(try ledger.submit(C.operatorID, .setMemberStatus(member: C.core, status: .suspended, reason: "review")) == nil)
        #expect(try ledger.ask(fragment, amount: 100_00).result(.debtorEligible)?.outcome == .fail)
    }

    @Test func theBankMustBeAnActiveBank() throws {
        var ledger = Ledger()
        let (_, fragment) = try ledger.activeReceivable()
        #expect(try ledger.ask(fragment, amount: 100_00).result(.bankEligible)?.outcome == .pass)
        var notBank = Self.policy
        notBank.bank = C.tier2
        let answer = try ledger.ask(fragment, bank: C.tier2, amount: 100_00, policy: notBank)
        #expect(answer.result(.bankEligible)?.outcome == .fail)
        #expect(answer.result(.bankEligible)!.message.contains("is not a bank"))
        #expect(try ledger.submit(C.operatorID, .setMemberStatus(member: C.bankA, status: .suspended, reason: "licence review")) == nil)
        #expect(try ledger.ask(fragment, amount: 100_00).result(.bankEligible)?.outcome == .fail)
    }

    @Test func everyInvoiceMustBeBoundHereAndValid() throws {
        var ledger = Ledger()
        let (root, fragment) = try ledger.activeReceivable(invoice: "555")
        #expect(try ledger.ask(fragment, amount: 100_00).result(.invoicesBound)?.outcome == .pass)
        let key = ledger.root(root).invoiceKeys[0]
        #expect(try ledger.submit(C.verifier, .attestInvoice(key, status: .voided, evidenceHash: nil)) == nil)
        let answer = try ledger.ask(fragment, amount: 100_00)
        #expect(answer.result(.invoicesBound)?.outcome == .fail)
        #expect(answer.result(.invoicesBound)!.message.contains("voided"))
        var elsewhere = ledger.state
        elsewhere.invoices[key]!.status = .normal
        elsewhere.invoices[key]!.boundRoot = ReceivableID(Hash(w0: 5, w1: 5, w2: 5, w3: 5))
        #expect(try ledger.ask(fragment, amount: 100_00, state: elsewhere).result(.invoicesBound)!.message.contains("is bound to receivable"))
    }

    @Test func invoicesMustCoverTheFace() throws {
        var ledger = Ledger()
        let (root, fragment) = try ledger.activeReceivable(face: 1_000_00)
        #expect(try ledger.ask(fragment, amount: 100_00).result(.invoicesCoverFace)?.outcome == .pass)
        var short = ledger.state
        let key = ledger.root(root).invoiceKeys[0]
        short.invoices[key]!.invoice.amountIncludingTax = Money(minor: 999_99, .cny)
        #expect(try ledger.ask(fragment, amount: 100_00, state: short).result(.invoicesCoverFace)?.outcome == .fail)
    }

    // MARK: Policy rules

    @Test func thePolicyMustBeTheBanksAndInTheCurrency() throws {
        var ledger = Ledger()
        let (_, fragment) = try ledger.activeReceivable()
        #expect(try ledger.ask(fragment, amount: 100_00).result(.policyApplies)?.outcome == .pass)
        var other = Self.policy
        other.bank = C.bankB
        #expect(try ledger.ask(fragment, amount: 100_00, policy: other).result(.policyApplies)?.outcome == .fail)
        var dollars = Self.policy
        dollars.currency = .usd
        let answer = try ledger.ask(fragment, amount: 100_00, policy: dollars)
        #expect(answer.result(.policyApplies)?.outcome == .fail)
        #expect(answer.maxAdvance == Money(minor: 0, .cny))
    }

    @Test func minimumDaysToMaturityFailsBelowAndWarnsInTheBand() throws {
        var ledger = Ledger()
        let (_, soon) = try ledger.activeReceivable(invoice: "1", maturity: "2026-01-20")     // 10 days
        let (_, near) = try ledger.activeReceivable(invoice: "2", maturity: "2026-01-30")     // 20 days: band 15..<25
        let (_, far) = try ledger.activeReceivable(invoice: "3", maturity: "2026-03-01")
        #expect(try ledger.ask(soon, amount: 100_00).result(.minDaysToMaturity)?.outcome == .fail)
        let warned = try ledger.ask(near, amount: 100_00)
        #expect(warned.result(.minDaysToMaturity)?.outcome == .warn)
        #expect(warned.eligible, "a warning does not block")
        #expect(try ledger.ask(far, amount: 100_00).result(.minDaysToMaturity)?.outcome == .pass)
    }

    @Test func maximumTenor() throws {
        var ledger = Ledger()
        let (_, long) = try ledger.activeReceivable(invoice: "1", maturity: "2027-03-01")
        let (_, short) = try ledger.activeReceivable(invoice: "2", maturity: "2026-12-01")
        #expect(try ledger.ask(long, amount: 100_00).result(.maxTenor)?.outcome == .fail)
        #expect(try ledger.ask(short, amount: 100_00).result(.maxTenor)?.outcome == .pass)
    }

    @Test func theAdvanceRateCapsTheAmount() throws {
        var ledger = Ledger()
        let (_, fragment) = try ledger.activeReceivable(face: 1_000_00)
        #expect(try ledger.ask(fragment, amount: 900_00).result(.advanceRate)?.outcome == .pass)
        let answer = try ledger.ask(fragment, amount: 900_01)
        #expect(answer.result(.advanceRate)?.outcome == .fail)
        #expect(answer.maxAdvance == Money(minor: 900_00, .cny))
    }

    @Test func theCreditLineIsUsedUpAcrossSeveralFinancings() throws {
        var ledger = Ledger()
        var policy = Self.policy
        policy.creditLines = [C.core: MinorUnits(2_000_000_00)]
        var fragments: [FragmentID] = []
        for number in 1...3 {
            fragments.append(try ledger.activeReceivable(face: 1_000_000_00, invoice: "\(number)").1)
        }
        for fragment in fragments.prefix(2) {
            let answer = try ledger.ask(fragment, amount: 700_000_00, policy: policy)
            #expect(answer.eligible, "\(answer.failures)")
            let request = ledger.tx.make(C.tier1, .requestFinancing(fragment: fragment, bank: C.bankA, amount: Money(minor: 700_000_00, .cny)))
            try ledger.commit([request])
            #expect(try ledger.submit(C.bankA, .approveFinancing(request: request.id, advance: 700_000_00)) == nil)
        }
        #expect(ledger.state.financedExposure(bank: C.bankA, debtor: C.core, currency: .cny) == 1_400_000_00)
        let third = try ledger.ask(fragments[2], amount: 700_000_00, policy: policy)
        #expect(!third.eligible)
        #expect(third.result(.creditLine)?.outcome == .fail)
        #expect(third.result(.creditLine)!.message.contains("exhausted"))
        #expect(third.maxAdvance == Money(minor: 600_000_00, .cny))
        #expect(try ledger.ask(fragments[2], amount: 600_000_00, policy: policy).eligible)
        // Another bank's line is its own.
        var policyB = policy
        policyB.bank = C.bankB
        #expect(try ledger.ask(fragments[2], bank: C.bankB, amount: 700_000_00, policy: policyB).result(.creditLine)?.outcome == .pass)
        // No line on the debtor at all.
        var noLine = policy
        noLine.creditLines = [:]
        #expect(try ledger.ask(fragments[2], amount: 100_00, policy: noLine).result(.creditLine)!.message.contains("no credit line"))
    }

    @Test func theSupplierConcentrationLimit() throws {
        var ledger = Ledger()
        var policy = Self.policy
        policy.supplierLimits = [C.tier1: MinorUnits(500_000_00)]
        let (_, a) = try ledger.activeReceivable(face: 1_000_000_00, invoice: "1")
        let (_, b) = try ledger.activeReceivable(face: 1_000_000_00, invoice: "2")
        #expect(try ledger.ask(a, amount: 400_000_00, policy: policy).result(.supplierConcentration)?.outcome == .pass)
        let request = ledger.tx.make(C.tier1, .requestFinancing(fragment: a, bank: C.bankA, amount: Money(minor: 400_000_00, .cny)))
        try ledger.commit([request])
        #expect(try ledger.submit(C.bankA, .approveFinancing(request: request.id, advance: 400_000_00)) == nil)
        let answer = try ledger.ask(b, amount: 200_000_00, policy: policy)
        #expect(answer.result(.supplierConcentration)?.outcome == .fail)
        #expect(answer.maxAdvance == Money(minor: 100_000_00, .cny))
    }

    @Test func aDebtorWithAnOverdueReceivableTaintsItsOtherReceivables() throws {
        var ledger = Ledger()
        _ = try ledger.activeReceivable(face: 100_000_00, invoice: "1", maturity: "2026-02-01")
        let (_, healthy) = try ledger.activeReceivable(face: 900_000_00, invoice: "2", maturity: "2026-07-01")
        #expect(try ledger.ask(healthy, amount: 100_00).result(.debtorOverdue)?.outcome == .pass)
        ledger.date = "2026-02-10"
        try ledger.commit([])   // the first receivable is now unpaid 9 days after maturity
        let answer = try ledger.ask(healthy, amount: 100_00)
        #expect(answer.result(.debtorOverdue)?.outcome == .fail)
        #expect(answer.result(.debtorOverdue)!.message.contains("100,000.00 CNY overdue of 1,000,000.00 CNY"))
        #expect(!answer.eligible)
        var lenient = Self.policy
        lenient.excludeDebtorsWithOverdue = false
        #expect(try ledger.ask(healthy, amount: 100_00, policy: lenient).result(.debtorOverdue)?.outcome == .warn)
        var threshold = Self.policy
        threshold.overdueShareTriggerBps = 2_000   // 10 % overdue is below a 20 % trigger
        #expect(try ledger.ask(healthy, amount: 100_00, policy: threshold).result(.debtorOverdue)?.outcome == .warn)
        var grace = Self.policy
        grace.overdueGraceDays = 30
        #expect(try ledger.ask(healthy, amount: 100_00, policy: grace).result(.debtorOverdue)?.outcome == .pass)
    }

    // MARK: Batch, pricing, policy file

    @Test func aBatchGivesOneAnswerPerFragmentInOrder() throws {
        var ledger = Ledger()
        let (_, a) = try ledger.activeReceivable(invoice: "1")
        let (_, b) = try ledger.activeReceivable(invoice: "2")
        let questions = [a, FragmentID(Hash(w0: 7, w1: 7, w2: 7, w3: 7)), b].map {
            EligibilityEngine.Question(fragment: $0, bank: C.bankA, amount: Money(minor: 100_00, .cny))
        }
        let engine = EligibilityEngine(genesis: ledger.consortium.genesis, suite: ledger.consortium.suite)
        let answers = try engine.evaluate(batch: questions, asOf: ledger.asOf, policy: Self.policy, state: ledger.state,
                                          aggregates: ledger.state, history: ledger.history)
        #expect(answers.map(\.eligible) == [true, false, true])
        #expect(answers[0] == (try ledger.ask(a, amount: 100_00)))
    }

    @Test func discountRoundsUpAndOverflowIsCaught() {
        // 1.00 CNY at 4.50 % for 1 day on ACT/360 = 0.0125 fen → 1 fen.
        #expect(Pricing.discount(advance: 100, rateBps: 450, days: 1, basis: 360) == 1)
        // Exact results are not rounded.
        #expect(Pricing.discount(advance: 3_600_000, rateBps: 100, days: 360, basis: 360) == 36_000)
        #expect(Pricing.discount(advance: 3_650_000, rateBps: 100, days: 365, basis: 365) == 36_500)
        #expect(Pricing.discount(advance: 0, rateBps: 450, days: 100, basis: 360) == 0)
        // The intermediate product exceeds 64 bits but the result fits.
        #expect(Pricing.discount(advance: MinorUnits(Int64.max / 2), rateBps: 100, days: 360, basis: 360) == MinorUnits(Int64.max / 200 + 1))
        // The result itself does not fit.
        #expect(Pricing.discount(advance: MinorUnits(Int64.max), rateBps: 100_000, days: 36_500, basis: 360) == nil)
        #expect(Pricing.advanceLimit(outstanding: 1_000_01, rateBps: 9_000) == 900_00)
        #expect(Pricing.advanceLimit(outstanding: MinorUnits(Int64.max), rateBps: 10_000) == MinorUnits(Int64.max))
    }

    @Test func aPolicyFileIsValidatedWithEveryProblemNamed() throws {
        let good = EligibilityPolicy.Document(
            bank: "bank-a", currency: "CNY", minDaysToMaturity: 15, maxTenorDays: 360, advanceRateBps: 8_000,
            discountRateBps: 450, dayCountBasis: 365, creditLines: ["core-enterprise": "50000000.00"],
            supplierLimits: ["tier1-supplier": "2000000"], overdue: .init(excludeDebtors: true, shareTriggerBps: 500, graceDays: 5),
            maturityWarningBandDays: 7)
        let policy = try EligibilityPolicy.validated(good)
        #expect(policy.creditLine(for: C.core) == 50_000_000_00 && policy.supplierLimit(for: C.tier1) == 2_000_000_00)
        #expect(policy.dayCountBasis == 365 && policy.overdueShareTriggerBps == 500 && policy.overdueGraceDays == 5)
        var bad = good
        bad.bank = nil
        bad.dayCountBasis = 366
        bad.advanceRateBps = 12_000
        bad.creditLines = ["core-enterprise": "12.345"]
        #expect {
            try EligibilityPolicy.validated(bad)
        } throws: { error in
            let problems = (error as? PolicyError)?.problems ?? []
            return problems.contains("missing field \"bank\"") && problems.contains { $0.contains("12.345") }
        }
        var ranges = good
        ranges.dayCountBasis = 366
        ranges.advanceRateBps = 12_000
        #expect {
            try EligibilityPolicy.validated(ranges)
        } throws: { error in
            let problems = (error as? PolicyError)?.problems ?? []
            return problems.count == 2 && problems.contains { $0.hasPrefix("dayCountBasis") } && problems.contains { $0.hasPrefix("advanceRateBps") }
        }
        // The sample file in docs parses and validates.
        let sample = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/examples/bank-policy.json")
        let document = try JSONDecoder().decode(EligibilityPolicy.Document.self, from: Data(contentsOf: sample))
        #expect(try EligibilityPolicy.validated(document).bank == C.bankA)
    }
}

// MARK: Helpers

extension Ledger {
    var history: MemoryChainHistory {
        var history = MemoryChainHistory()
        for (block, result) in zip(chain.blocks, chain.results) { history.append(block, receipts: result.receipts) }
        return history
    }

    var asOf: AsOf { AsOf(tip: chain.tip, utcOffsetMinutes: consortium.genesis.utcOffsetMinutes) }

    /// Asks at the chain's tip, with the memory state (or a tampered copy of it).
    func ask(_ fragment: FragmentID, bank: MemberID = TestConsortium.bankA, amount: Int64, currency: CurrencyCode = .cny,
             policy: EligibilityPolicy = EligibilityTests.policy, state: MemoryLedgerState? = nil) throws -> EligibilityAnswer {
        let engine = EligibilityEngine(genesis: consortium.genesis, suite: consortium.suite)
        let state = state ?? self.state
        return try engine.evaluate(.init(fragment: fragment, bank: bank, amount: Money(minor: amount, currency)), asOf: asOf,
                                   policy: policy, state: state, aggregates: state, history: history)
    }
}
