import LedgerCore
import LedgerTestKit
import Testing

/// One test per lifecycle rule: the allowed path, then each refusal with its reason code. Every
/// test runs once per crypto suite (Ed25519/SHA-256 and SM2/SM3), so both chains obey the same rules.
@Suite struct LifecycleRuleTests {
    typealias C = TestConsortium

    // MARK: Propose, confirm, issue, accept, reject, withdraw

    @Test(arguments: allSuites) func proposeThenConfirmCreatesFirstFragmentForCreditor(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (root, fragment) = try ledger.activeReceivable(face: 500_00)
        let record = ledger.root(root)
        #expect(record.status == .active)
        #expect(record.confirmationTx != nil)
        #expect(record.liveFragments == [fragment])
        let first = ledger.fragment(fragment)
        #expect(first.holder == C.tier1 && first.outstanding == 500_00 && first.generation == 0 && first.parent == nil)
        let invoice = ledger.state.invoices[record.invoiceKeys[0]]!
        #expect(invoice.boundRoot == root)
        #expect(invoice.attestations.map(\.source) == [.debtorConfirmation])
    }

    @Test(arguments: allSuites) func onlyTheDebtorCanConfirm(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let terms = ledger.consortium.terms(face: 100_00, invoiceNumber: "1")
        let proposal = ledger.tx.make(C.tier1, .proposeReceivable(terms))
        try ledger.commit([proposal])
        let root = ReceivableID(proposal.id)
        #expect(try ledger.submit(C.bankA, .confirmReceivable(root)).code == .notDebtor)
        #expect(try ledger.submit(C.tier1, .confirmReceivable(root)).code == .notDebtor)
        #expect(ledger.root(root).status == .proposed)
    }

    @Test(arguments: allSuites) func onlyTheCreditorCanProposeAndMustBeASupplier(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let terms = ledger.consortium.terms(face: 100_00, invoiceNumber: "1")
        #expect(try ledger.submit(C.tier2, .proposeReceivable(terms)).code == .notCreditor)
        let bankTerms = ledger.consortium.terms(creditor: C.bankA, face: 100_00, invoiceNumber: "2")
        #expect(try ledger.submit(C.bankA, .proposeReceivable(bankTerms)).code == .notAuthorized)
        #expect(ledger.state.roots.isEmpty)
    }

    @Test(arguments: allSuites) func issueByDebtorThenAcceptByCreditor(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let terms = ledger.consortium.terms(face: 250_00, invoiceNumber: "7")
        let issue = ledger.tx.make(C.core, .issueReceivable(terms))
        try ledger.commit([issue])
        let root = ReceivableID(issue.id)
        #expect(ledger.root(root).status == .issued)
        #expect(ledger.root(root).confirmationTx == issue.id)
        #expect(try ledger.submit(C.tier2, .acceptReceivable(root)).code == .notCreditor)
        #expect(try ledger.submit(C.tier1, .acceptReceivable(root)) == nil)
        #expect(ledger.root(root).status == .active)
        #expect(try ledger.submit(C.tier1, .acceptReceivable(root)).code == .invalidState)
    }

    @Test(arguments: allSuites) func issueMustBeSignedByTheDebtor(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let terms = ledger.consortium.terms(face: 250_00, invoiceNumber: "7")
        #expect(try ledger.submit(C.tier1, .issueReceivable(terms)).code == .notDebtor)
    }

    @Test(arguments: allSuites) func counterpartyRejectsAndInvoiceIsReleased(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let terms = ledger.consortium.terms(face: 100_00, invoiceNumber: "9")
        let proposal = ledger.tx.make(C.tier1, .proposeReceivable(terms))
        try ledger.commit([proposal])
        let root = ReceivableID(proposal.id)
        #expect(try ledger.submit(C.tier1, .rejectReceivable(root, reason: "no")).code == .notCounterparty)
        #expect(try ledger.submit(C.core, .rejectReceivable(root, reason: "goods not received")) == nil)
        #expect(ledger.root(root).status == .rejected)
        #expect(ledger.state.invoices.values.first!.boundRoot == nil)
        #expect(try ledger.submit(C.core, .confirmReceivable(root)).code == .invalidState)
        // The released invoice can back a corrected proposal.
        #expect(try ledger.submit(C.tier1, .proposeReceivable(terms)) == nil)
    }

    @Test(arguments: allSuites) func initiatorWithdrawsBeforeCounterpartyActs(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let terms = ledger.consortium.terms(face: 100_00, invoiceNumber: "10")
        let proposal = ledger.tx.make(C.tier1, .proposeReceivable(terms))
        try ledger.commit([proposal])
        let root = ReceivableID(proposal.id)
        #expect(try ledger.submit(C.core, .withdrawReceivable(root)).code == .notInitiator)
        #expect(try ledger.submit(C.tier1, .withdrawReceivable(root)) == nil)
        #expect(ledger.root(root).status == .withdrawn)
        #expect(try ledger.submit(C.tier1, .withdrawReceivable(root)).code == .invalidState)
    }

    @Test(arguments: allSuites) func termsAreValidated(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let c = ledger.consortium
        var zero = c.terms(face: 100_00, invoiceNumber: "20"); zero.face = Money(minor: 0, .cny)
        #expect(try ledger.submit(C.tier1, .proposeReceivable(zero)).code == .invalidAmount)
        let backwards = c.terms(face: 100_00, invoiceNumber: "21", issue: "2026-01-02", maturity: "2026-01-01")
        #expect(try ledger.submit(C.tier1, .proposeReceivable(backwards)).code == .invalidTerms)
        let matured = c.terms(face: 100_00, invoiceNumber: "22", issue: "2026-01-02", maturity: "2026-01-08")
        #expect(try ledger.submit(C.tier1, .proposeReceivable(matured)).code == .matured)
        var uncovered = c.terms(face: 100_00, invoiceNumber: "23"); uncovered.face = Money(minor: 200_00, .cny)
        #expect(try ledger.submit(C.tier1, .proposeReceivable(uncovered)).code == .invalidTerms)
        var noInvoice = c.terms(face: 100_00, invoiceNumber: "24"); noInvoice.invoices = []
        #expect(try ledger.submit(C.tier1, .proposeReceivable(noInvoice)).code == .invalidTerms)
        var usd = c.terms(face: 100_00, invoiceNumber: "25"); usd.face = Money(minor: 100_00, .usd)
        #expect(try ledger.submit(C.tier1, .proposeReceivable(usd)).code == .currencyMismatch)
        var wrongSeller = c.terms(face: 100_00, invoiceNumber: "26")
        wrongSeller.invoices[0].sellerTaxID = c.member(C.tier2).creditCode
        #expect(try ledger.submit(C.tier1, .proposeReceivable(wrongSeller)).code == .invoiceInvalid)
        let selfDebt = c.terms(debtor: C.tier1, creditor: C.tier1, face: 100_00, invoiceNumber: "27")
        #expect(try ledger.submit(C.tier1, .proposeReceivable(selfDebt)).code == .invalidTerms)
        #expect(ledger.state.roots.isEmpty)
        #expect(ledger.state.invoices.isEmpty)
    }

    @Test(arguments: allSuites) func anInvoiceBacksOnlyOneReceivable(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        _ = try ledger.activeReceivable(face: 100_00, invoice: "42")
        let again = ledger.consortium.terms(face: 100_00, invoiceNumber: "42")
        #expect(try ledger.submit(C.tier1, .proposeReceivable(again)).code == .invoiceAlreadyBound)
    }

    @Test(arguments: allSuites) func unknownReceivableAndUnknownMember(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let missing = ReceivableID(ledger.consortium.suite.hash([1, 2, 3]))
        #expect(try ledger.submit(C.core, .confirmReceivable(missing)).code == .unknownReceivable)
        let terms = ledger.consortium.terms(debtor: "nobody", face: 100_00, invoiceNumber: "1")
        #expect(try ledger.submit(C.tier1, .proposeReceivable(terms)).code == .unknownMember)
    }

    // MARK: Transfers and splits

    @Test(arguments: allSuites) func wholeTransferClosesParentAndCreatesOneChild(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (root, first) = try ledger.activeReceivable(face: 300_00)
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 300_00)) == nil)
        #expect(ledger.fragment(first).state == .transferred)
        let child = ledger.fragment(ledger.child(first, 0))
        #expect(child.holder == C.tier2 && child.outstanding == 300_00 && child.generation == 1 && child.parent == first)
        #expect(ledger.root(root).liveFragments == [child.id])
    }

    @Test(arguments: allSuites) func splitCreatesTransferredPartAndRemainder(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (root, first) = try ledger.activeReceivable(face: 300_00)
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 120_00)) == nil)
        #expect(ledger.fragment(first).state == .split)
        let part = ledger.fragment(ledger.child(first, 0)), rest = ledger.fragment(ledger.child(first, 1))
        #expect(part.holder == C.tier2 && part.outstanding == 120_00)
        #expect(rest.holder == C.tier1 && rest.outstanding == 180_00)
        #expect(ledger.root(root).liveFragments == [part.id, rest.id].sorted())
    }

    @Test(arguments: allSuites) func splitThatExceedsOutstandingIsRefused(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (_, first) = try ledger.activeReceivable(face: 300_00)
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 300_01)).code == .amountExceedsOutstanding)
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 0)).code == .invalidAmount)
        #expect(ledger.fragment(first).state == .active)
    }

    @Test(arguments: allSuites) func onlyTheHolderCanTransfer(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (_, first) = try ledger.activeReceivable()
        #expect(try ledger.submit(C.tier2, .transfer(fragment: first, to: C.tier3, amount: 1)).code == .notHolder)
        #expect(try ledger.submit(C.core, .transfer(fragment: first, to: C.tier3, amount: 1)).code == .notHolder)
    }

    @Test(arguments: allSuites) func transferToTheDebtorOrSelfIsRefused(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (_, first) = try ledger.activeReceivable()
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: C.core, amount: 1)).code == .transferToDebtor)
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier1, amount: 1)).code == .transferToSelf)
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: "stranger", amount: 1)).code == .unknownMember)
    }

    @Test(arguments: allSuites) func transferOfAClosedParentIsRefused(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (_, first) = try ledger.activeReceivable(face: 300_00)
        try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 100_00))
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier3, amount: 1)).code == .fragmentClosed)
    }

    @Test(arguments: allSuites) func transferAfterMaturityIsRefused(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (_, first) = try ledger.activeReceivable(maturity: "2026-03-01")
        ledger.date = "2026-03-01"
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 1)).code == .matured)
    }

    @Test(arguments: allSuites) func transferToABlacklistedPartyIsRefused(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (_, first) = try ledger.activeReceivable()
        #expect(try ledger.submit(C.operatorID, .setMemberStatus(member: C.tier2, status: .blacklisted, reason: "fraud")) == nil)
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 1)).code == .counterpartyNotActive)
    }

    // MARK: Financing

    mutating func financed(_ ledger: inout Ledger) throws -> (ReceivableID, FragmentID, Hash) {
        let (root, first) = try ledger.activeReceivable(face: 100_000_00)
        let request = ledger.tx.make(C.tier1, .requestFinancing(fragment: first, bank: C.bankA, amount: Money(minor: 90_000_00, .cny)))
        #expect(try ledger.commit([request])[0] == nil)
        return (root, first, request.id)
    }

    @Test(arguments: allSuites) func requestLocksAndApprovalMakesBankTheHolder(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        var copy = self
        let (_, fragment, request) = try copy.financed(&ledger)
        #expect(ledger.fragment(fragment).state == .locked)
        #expect(ledger.state.financingRequests[request]!.status == .pending)
        #expect(try ledger.submit(C.bankA, .approveFinancing(request: request, advance: 88_000_00)) == nil)
        let after = ledger.fragment(fragment)
        #expect(after.state == .financed && after.holder == C.bankA && after.financingRequest == request)
        #expect(ledger.state.financingRequests[request]!.advance == 88_000_00)
    }

    @Test(arguments: allSuites) func doubleFinancingIsRefused(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        var copy = self
        let (_, fragment, request) = try copy.financed(&ledger)
        // While pending, the fragment is locked.
        #expect(try ledger.submit(C.tier1, .requestFinancing(fragment: fragment, bank: C.bankB, amount: Money(minor: 1, .cny))).code == .fragmentLocked)
        try ledger.submit(C.bankA, .approveFinancing(request: request, advance: 90_000_00))
        // Once financed, nobody can finance it again, not even the new holder.
        #expect(try ledger.submit(C.tier1, .requestFinancing(fragment: fragment, bank: C.bankB, amount: Money(minor: 1, .cny))).code == .alreadyFinanced)
        #expect(try ledger.submit(C.bankA, .approveFinancing(request: request, advance: 1)).code == .invalidState)
    }

    @Test(arguments: allSuites) func transferOfAFinancedFragmentIsRefused(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        var copy = self
        let (_, fragment, request) = try copy.financed(&ledger)
        #expect(try ledger.submit(C.tier1, .transfer(fragment: fragment, to: C.tier2, amount: 1)).code == .fragmentLocked)
        try ledger.submit(C.bankA, .approveFinancing(request: request, advance: 90_000_00))
        #expect(try ledger.submit(C.bankA, .transfer(fragment: fragment, to: C.tier2, amount: 1)).code == .alreadyFinanced)
        #expect(try ledger.submit(C.tier1, .transfer(fragment: fragment, to: C.tier2, amount: 1)).code == .alreadyFinanced)
    }

    @Test(arguments: allSuites) func onlyTheAskedBankDecides(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        var copy = self
        let (_, _, request) = try copy.financed(&ledger)
        #expect(try ledger.submit(C.bankB, .approveFinancing(request: request, advance: 1)).code == .notBank)
        #expect(try ledger.submit(C.bankB, .rejectFinancing(request: request, reason: "x")).code == .notBank)
        #expect(try ledger.submit(C.bankA, .approveFinancing(request: request, advance: 90_000_01)).code == .amountExceedsOutstanding)
    }

    @Test(arguments: allSuites) func bankRejectionUnlocksTheFragment(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        var copy = self
        let (_, fragment, request) = try copy.financed(&ledger)
        #expect(try ledger.submit(C.bankA, .rejectFinancing(request: request, reason: "debtor over limit")) == nil)
        #expect(ledger.fragment(fragment).state == .active)
        #expect(ledger.state.financingRequests[request]!.status == .rejected)
        #expect(try ledger.submit(C.tier1, .transfer(fragment: fragment, to: C.tier2, amount: 1)) == nil)
    }

    @Test(arguments: allSuites) func financingRequestChecks(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (_, fragment) = try ledger.activeReceivable(face: 100_00)
        #expect(try ledger.submit(C.tier1, .requestFinancing(fragment: fragment, bank: C.tier2, amount: Money(minor: 1, .cny))).code == .notBank)
        #expect(try ledger.submit(C.tier1, .requestFinancing(fragment: fragment, bank: C.bankA, amount: Money(minor: 1, .usd))).code == .currencyMismatch)
        #expect(try ledger.submit(C.tier1, .requestFinancing(fragment: fragment, bank: C.bankA, amount: Money(minor: 100_01, .cny))).code == .amountExceedsOutstanding)
        #expect(try ledger.submit(C.tier2, .requestFinancing(fragment: fragment, bank: C.bankA, amount: Money(minor: 1, .cny))).code == .notHolder)
        #expect(ledger.fragment(fragment).state == .active)
    }

    // MARK: Settlement and write-off

    @Test(arguments: allSuites) func settlementBeforeMaturityIsRefused(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (root, _) = try ledger.activeReceivable(face: 100_00, maturity: "2026-03-01")
        ledger.date = "2026-02-28"
        #expect(try ledger.submit(C.core, .settle(root: root, amount: 100_00, paymentReference: "W1")).code == .notMatured)
        ledger.date = "2026-03-01"
        #expect(try ledger.submit(C.tier1, .settle(root: root, amount: 100_00, paymentReference: "W1")).code == .notDebtor)
        #expect(try ledger.submit(C.core, .settle(root: root, amount: 100_01, paymentReference: "W1")).code == .amountExceedsOutstanding)
        #expect(try ledger.submit(C.core, .settle(root: root, amount: 100_00, paymentReference: "W1")) == nil)
        #expect(ledger.root(root).status == .closed)
        #expect(try ledger.submit(C.core, .settle(root: root, amount: 1, paymentReference: "W2")).code == .invalidState)
    }

    @Test(arguments: allSuites) func partialSettlementPaysEachHolderProRata(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (root, first) = try ledger.activeReceivable(face: 1_000, maturity: "2026-03-01")
        try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 333))
        let toTier2 = ledger.child(first, 0), kept = ledger.child(first, 1)
        try ledger.submit(C.tier2, .transfer(fragment: toTier2, to: C.tier3, amount: 111))
        let toTier3 = ledger.child(toTier2, 0), kept2 = ledger.child(toTier2, 1)
        ledger.date = "2026-03-02"
        #expect(try ledger.submit(C.core, .settle(root: root, amount: 500, paymentReference: "PART-1")) == nil)
        let paid = [kept, kept2, toTier3].map { id in ledger.fragment(id).amount.value - ledger.fragment(id).outstanding.value }
        #expect(paid.reduce(0, +) == 500)
        // 667 : 222 : 111 of 1000 → about 333.5, 111, 55.5; rounding never overpays anyone.
        #expect(abs(paid[0] - 333) <= 1 && abs(paid[1] - 111) <= 1 && abs(paid[2] - 55) <= 1)
        #expect(ledger.root(root).settled == 500 && ledger.root(root).status == .active)
        #expect(try ledger.submit(C.core, .settle(root: root, amount: 500, paymentReference: "PART-2")) == nil)
        #expect(ledger.root(root).status == .closed)
        for id in [kept, kept2, toTier3] { #expect(ledger.fragment(id).state == .settled) }
    }

    @Test(arguments: allSuites) func settlementPaysTheFinancingBankAndLapsesPendingRequests(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (root, first) = try ledger.activeReceivable(face: 1_000, maturity: "2026-03-01")
        try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 400))
        let toTier2 = ledger.child(first, 0), kept = ledger.child(first, 1)
        let request = ledger.tx.make(C.tier2, .requestFinancing(fragment: toTier2, bank: C.bankA, amount: Money(minor: 380, .cny)))
        try ledger.commit([request])
        try ledger.submit(C.bankA, .approveFinancing(request: request.id, advance: 380))
        let pending = ledger.tx.make(C.tier1, .requestFinancing(fragment: kept, bank: C.bankB, amount: Money(minor: 500, .cny)))
        try ledger.commit([pending])
        ledger.date = "2026-03-01"
        #expect(try ledger.submit(C.core, .settle(root: root, amount: 1_000, paymentReference: "FULL")) == nil)
        #expect(ledger.fragment(toTier2).holder == C.bankA && ledger.fragment(toTier2).state == .settled)
        #expect(ledger.state.financingRequests[pending.id]!.status == .lapsed)
    }

    @Test(arguments: allSuites) func writeOffAfterMaturityByHolder(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (root, first) = try ledger.activeReceivable(face: 1_000, maturity: "2026-03-01")
        #expect(try ledger.submit(C.tier1, .writeOff(fragment: first, reason: "debtor insolvent")).code == .notMatured)
        ledger.date = "2026-04-01"
        #expect(try ledger.submit(C.tier2, .writeOff(fragment: first, reason: "x")).code == .notHolder)
        #expect(try ledger.submit(C.tier1, .writeOff(fragment: first, reason: "debtor insolvent")) == nil)
        #expect(ledger.root(root).writtenOff == 1_000 && ledger.root(root).status == .closed)
    }

    // MARK: Freeze

    @Test(arguments: allSuites) func frozenFragmentCannotMoveBeFinancedOrSettled(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (root, first) = try ledger.activeReceivable(face: 1_000, maturity: "2026-03-01")
        #expect(try ledger.submit(C.tier1, .freeze(fragment: first, reason: "x")).code == .notAuthorized)
        #expect(try ledger.submit(C.operatorID, .freeze(fragment: first, reason: "court order 2026-17")) == nil)
        #expect(try ledger.submit(C.operatorID, .freeze(fragment: first, reason: "again")).code == .invalidState)
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 1)).code == .fragmentFrozen)
        #expect(try ledger.submit(C.tier1, .requestFinancing(fragment: first, bank: C.bankA, amount: Money(minor: 1, .cny))).code == .fragmentFrozen)
        ledger.date = "2026-03-01"
        #expect(try ledger.submit(C.core, .settle(root: root, amount: 1_000, paymentReference: "W")).code == .fragmentFrozen)
        #expect(try ledger.submit(C.regulator, .unfreeze(fragment: first, reason: "order lifted")) == nil)
        #expect(try ledger.submit(C.regulator, .unfreeze(fragment: first, reason: "again")).code == .notFrozen)
        #expect(try ledger.submit(C.core, .settle(root: root, amount: 1_000, paymentReference: "W")) == nil)
    }

    // MARK: Members

    @Test(arguments: allSuites) func operatorRegistersSuspendsAndBlacklists(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let key = TestConsortium.key(for: "new-member", suite: ledger.consortium.suite)
        let newcomer = Member(id: "tier4-supplier", legalName: "Tier-4 Springs", creditCode: TestConsortium.creditCode(for: "t4"),
                              roles: [.supplier], publicKey: key.publicKey)
        #expect(try ledger.submit(C.tier1, .registerMember(newcomer)).code == .notAuthorized)
        #expect(try ledger.submit(C.operatorID, .registerMember(newcomer)) == nil)
        #expect(try ledger.submit(C.operatorID, .registerMember(newcomer)).code == .duplicateMember)
        #expect(try ledger.submit(C.operatorID, .setMemberStatus(member: C.tier3, status: .suspended, reason: "KYC expired")) == nil)
        #expect(ledger.state.members[C.tier3]!.status == .suspended)
        let terms = ledger.consortium.terms(creditor: C.tier3, face: 1, invoiceNumber: "1")
        #expect(try ledger.submit(C.tier3, .proposeReceivable(terms)).code == .signerNotActive)
        #expect(try ledger.submit(C.operatorID, .setMemberStatus(member: C.operatorID, status: .suspended, reason: "x")).code == .invalidMember)
        #expect(try ledger.submit(C.operatorID, .setMemberStatus(member: C.tier3, status: .active, reason: "KYC renewed")) == nil)
        #expect(try ledger.submit(C.tier3, .proposeReceivable(terms)).code != .signerNotActive)
    }

    @Test(arguments: allSuites) func blacklistedDebtorCannotConfirmOrIssue(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let terms = ledger.consortium.terms(face: 100, invoiceNumber: "1")
        let proposal = ledger.tx.make(C.tier1, .proposeReceivable(terms))
        try ledger.commit([proposal])
        try ledger.submit(C.operatorID, .setMemberStatus(member: C.core, status: .blacklisted, reason: "fraud"))
        #expect(try ledger.submit(C.core, .confirmReceivable(ReceivableID(proposal.id))).code == .signerNotActive)
        #expect(try ledger.submit(C.tier1, .proposeReceivable(ledger.consortium.terms(face: 100, invoiceNumber: "2"))).code == .counterpartyNotActive)
    }

    @Test(arguments: allSuites) func registeringAKeyOfTheWrongSuiteIsRefused(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let bad = Member(id: "bad-key", legalName: "Bad Key Ltd", creditCode: TestConsortium.creditCode(for: "bk"),
                         roles: [.supplier], publicKey: PublicKey(suite: .ed25519SHA256, rawRepresentation: [1, 2, 3]))
        #expect(try ledger.submit(C.operatorID, .registerMember(bad)).code == .invalidMember)
    }

    // MARK: Invoices

    @Test(arguments: allSuites) func verifierVoidsInvoiceAndHolderReplacesIt(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (root, first) = try ledger.activeReceivable(face: 1_000_00, invoice: "500")
        let key = ledger.root(root).invoiceKeys[0]
        #expect(try ledger.submit(C.tier1, .attestInvoice(key, status: .voided, evidenceHash: nil)).code == .notAuthorized)
        #expect(try ledger.submit(C.verifier, .attestInvoice(key, status: .voided, evidenceHash: ledger.consortium.suite.hash([9]))) == nil)
        #expect(ledger.state.invoices[key]!.status == .voided)
        #expect(try ledger.submit(C.verifier, .attestInvoice(key, status: .normal, evidenceHash: nil)).code == .invoiceInvalid)
        // A root with a voided invoice cannot be financed until the invoice is replaced.
        #expect(try ledger.submit(C.tier1, .requestFinancing(fragment: first, bank: C.bankA, amount: Money(minor: 1, .cny))).code == .invoiceInvalid)
        let replacement = ledger.consortium.invoice("501", seller: C.tier1, buyer: C.core, includingTax: Money(minor: 1_000_00, .cny))
        #expect(try ledger.submit(C.tier2, .replaceInvoice(root: root, old: key, new: replacement)).code == .notHolder)
        #expect(try ledger.submit(C.tier1, .replaceInvoice(root: root, old: key, new: replacement)) == nil)
        #expect(ledger.root(root).invoiceKeys == [replacement.key])
        #expect(ledger.state.invoices[key]!.boundRoot == nil && ledger.state.invoices[key]!.replacedBy == replacement.key)
        #expect(try ledger.submit(C.tier1, .requestFinancing(fragment: first, bank: C.bankA, amount: Money(minor: 1, .cny))) == nil)
    }

    @Test(arguments: allSuites) func aValidInvoiceCannotBeReplaced(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let (root, _) = try ledger.activeReceivable(face: 1_000_00, invoice: "600")
        let key = ledger.root(root).invoiceKeys[0]
        let replacement = ledger.consortium.invoice("601", seller: C.tier1, buyer: C.core, includingTax: Money(minor: 1_000_00, .cny))
        #expect(try ledger.submit(C.tier1, .replaceInvoice(root: root, old: key, new: replacement)).code == .invoiceStillValid)
    }

    // MARK: Envelope: replay, chain id, nonce, signatures

    @Test(arguments: allSuites) func replayedTransactionIsRefusedWithAClearReason(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let terms = ledger.consortium.terms(face: 100, invoiceNumber: "1")
        let proposal = ledger.tx.make(C.tier1, .proposeReceivable(terms))
        #expect(try ledger.commit([proposal])[0] == nil)
        let replay = try ledger.commit([proposal])[0]
        #expect(replay.code == .replayed)
        #expect(replay?.message.contains("already used") == true)
        #expect(ledger.state.roots.count == 1)
    }

    @Test(arguments: allSuites) func duplicateTransactionInOneBlockInvalidatesTheBlock(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let proposal = ledger.tx.make(C.tier1, .proposeReceivable(ledger.consortium.terms(face: 100, invoiceNumber: "1")))
        let context = BlockContext(chainID: "scf-test", height: 1, previousHash: ledger.chain.tip.hash,
                                   previousStateDigest: ledger.chain.tip.stateDigest, timestamp: ChainBuilder.time("2026-01-10"),
                                   view: 0, proposer: 0)
        #expect(throws: BlockValidationError.self) {
            try ledger.consortium.executor.execute([proposal, proposal], context: context, state: ledger.state)
        }
    }

    @Test(arguments: allSuites) func wrongChainIDIsRefusedWithoutConsumingTheNonce(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let foreign = ledger.tx.make(C.tier1, .withdrawReceivable(ReceivableID(.zero)), nonce: 1, chainID: "other-chain")
        #expect(try ledger.commit([foreign])[0].code == .wrongChain)
        #expect(ledger.state.nonce(of: C.tier1) == 0)
    }

    @Test(arguments: allSuites) func nonceGapIsRefused(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        #expect(try ledger.submit(C.tier1, .withdrawReceivable(ReceivableID(.zero)), nonce: 5).code == .nonceGap)
        #expect(ledger.state.nonce(of: C.tier1) == 0)
    }

    @Test(arguments: allSuites) func ruleRejectionConsumesTheNonce(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        #expect(try ledger.submit(C.tier1, .withdrawReceivable(ReceivableID(.zero))).code == .unknownReceivable)
        #expect(ledger.state.nonce(of: C.tier1) == 1)
    }

    @Test(arguments: allSuites) func unknownSignerIsRefused(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let stranger = TestConsortium.key(for: "stranger", suite: ledger.consortium.suite)
        let forged = ledger.tx.forge("stranger", .withdrawReceivable(ReceivableID(.zero)), nonce: 1, key: stranger)
        #expect(try ledger.commit([forged])[0].code == .unknownMember)
    }

    @Test(arguments: allSuites) func forgedSignatureInvalidatesTheBlockButIsDroppedByTheProposer(suite: CryptoSuiteID) throws {
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let stranger = TestConsortium.key(for: "stranger", suite: ledger.consortium.suite)
        let forged = ledger.tx.forge(C.core, .withdrawReceivable(ReceivableID(.zero)), nonce: 1, key: stranger)
        #expect(throws: BlockValidationError.self) { try ledger.commit([forged]) }
        let (block, _) = try ledger.consortium.executor.makeBlock(candidates: [forged], on: ledger.chain.tip,
                                                                  timestamp: ChainBuilder.time("2026-01-10"), view: 0, proposer: 0,
                                                                  state: ledger.state)
        #expect(block.transactions.isEmpty)
    }

    // MARK: Money

    @Test(arguments: allSuites) func overflowIsAnErrorNeverAWrap(suite: CryptoSuiteID) throws {
        let max = Money(minor: Int64.max, .cny)
        #expect(throws: Money.ArithmeticError.overflow) { try max.adding(Money(minor: 1, .cny)) }
        #expect(throws: Money.ArithmeticError.currencyMismatch(.cny, .usd)) { try max.adding(Money(minor: 1, .usd)) }
        #expect(MinorUnits(Int64.min).subtracting(1) == nil)
        // Invoice totals that would overflow are refused as a transaction, not a crash.
        var ledger = Ledger(suite: try CryptoSuites.make(suite))
        let c = ledger.consortium
        var terms = c.terms(face: Int64.max, invoiceNumber: "1")
        terms.invoices.append(c.invoice("2", seller: C.tier1, buyer: C.core, includingTax: Money(minor: Int64.max, .cny)))
        #expect(try ledger.submit(C.tier1, .proposeReceivable(terms)).code == .overflow)
    }
}

/// A validator checks each client signature once: at admission. A block carrying an admitted
/// transaction skips that check only when id and signature bytes both match what was admitted.
@Suite struct SignatureOncePolicyTests {
    func setUp() -> (Ledger, SignedTransaction, BlockContext) {
        var ledger = Ledger()
        let transaction = ledger.tx.make(TestConsortium.tier1, .proposeReceivable(ledger.consortium.terms(face: 100, invoiceNumber: "1")))
        let tip = ledger.chain.tip
        let context = BlockContext(chainID: "scf-test", height: tip.height.next, previousHash: tip.hash, previousStateDigest: tip.stateDigest,
                                   timestamp: ChainBuilder.time("2026-01-10"), view: 0, proposer: 0)
        return (ledger, transaction, context)
    }

    @Test func anAdmittedSignatureIsNotCheckedAgain() throws {
        let (ledger, transaction, context) = setUp()
        // Same id and signature as admitted, but the signature is garbage: only skipping can accept it.
        let garbage = try SignedTransaction(wireBytes: Self.withSignature(transaction, [UInt8](repeating: 7, count: 64)),
                                            suite: ledger.consortium.suite)
        let result = try ledger.consortium.executor.execute([garbage], context: context, state: ledger.state,
                                                            signatures: .verifyUnlessAdmitted([garbage.id: garbage.signature]))
        #expect(result.receipts.first?.isCommitted == true)
        #expect(throws: BlockValidationError.self) {
            try ledger.consortium.executor.execute([garbage], context: context, state: ledger.state, signatures: .verify)
        }
    }

    @Test func aForgedSignatureUnderAnAdmittedIdIsStillCaught() throws {
        let (ledger, transaction, context) = setUp()
        let forged = try SignedTransaction(wireBytes: Self.withSignature(transaction, [UInt8](repeating: 9, count: 64)),
                                           suite: ledger.consortium.suite)
        #expect(forged.id == transaction.id)
        #expect(throws: BlockValidationError.self) {
            try ledger.consortium.executor.execute([forged], context: context, state: ledger.state,
                                                   signatures: .verifyUnlessAdmitted([transaction.id: transaction.signature]))
        }
    }

    static func withSignature(_ transaction: SignedTransaction, _ signature: [UInt8]) -> [UInt8] {
        var writer = CanonicalWriter()
        writer.write(bytes: transaction.bodyBytes)
        writer.write(Signature(rawRepresentation: signature))
        return writer.bytes
    }
}
