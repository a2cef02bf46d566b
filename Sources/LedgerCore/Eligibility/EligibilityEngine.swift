/// Financing eligibility: can `bank` advance `amount` against `fragment`, as of one committed block?
///
/// The engine is a pure function of its inputs: the ledger state as of the block (a
/// `LedgerStateReader`), the block itself (`AsOf`: height, hash, consensus time), the bank's policy,
/// the aggregates the credit-line, concentration and overdue rules need, and the chain history for
/// the confirmation and chain-of-title rules. No clock, no randomness, no dictionary order: every
/// node holding the same chain gives byte-identical answers (`EligibilityAnswer.canonicalBytes`).
///
/// Every rule is evaluated (not only up to the first failure) so a banker sees everything that
/// blocks a financing at once; the answer is eligible when no rule fails. Warnings do not block.
/// The engine does not re-verify signatures: blocks were verified when they were committed; the
/// offline evidence verifier (`EvidenceVerifier`) re-checks them for a bank that trusts no node.
public struct EligibilityEngine: Sendable {
    public let utcOffsetMinutes: Int32
    public let suite: any CryptoSuite

    public init(genesis: Genesis, suite: any CryptoSuite) {
        self.utcOffsetMinutes = genesis.utcOffsetMinutes
        self.suite = suite
    }

    /// One question.
    public struct Question: Hashable, Sendable {
        public var fragment: FragmentID
        public var bank: MemberID
        public var amount: Money
        public init(fragment: FragmentID, bank: MemberID, amount: Money) {
            self.fragment = fragment
            self.bank = bank
            self.amount = amount
        }
    }

    public func evaluate<S: LedgerStateReader, A: EligibilityAggregates, H: ChainHistory>(
        _ question: Question, asOf: AsOf, policy: EligibilityPolicy, state: S, aggregates: A, history: H
    ) throws -> EligibilityAnswer {
        let policyDigest = policy.digest(suite: suite)
        var rules: [RuleResult] = []
        func add(_ code: EligibilityRuleCode, _ outcome: RuleOutcome, _ message: String) {
            rules.append(RuleResult(code, outcome, message))
        }
        let today = asOf.businessDate
        guard let fragment = try state.fragment(question.fragment), let root = try state.root(fragment.root) else {
            add(.fragmentKnown, .fail, "no fragment \(question.fragment.hash.short)… on the ledger at height \(asOf.height); check the id, or ask again after the block that creates it")
            return EligibilityAnswer(fragment: question.fragment, bank: question.bank, requested: question.amount, asOf: asOf,
                                     policyDigest: policyDigest, eligible: false, rules: rules, maxAdvance: nil, pricing: nil,
                                     summary: nil, title: [])
        }
        let currency = root.currency
        func money(_ amount: MinorUnits) -> String { Money(amount, currency).description }
        add(.fragmentKnown, .pass, "fragment \(fragment.id.hash.short)… of receivable \(root.id.hash.short)… is on the ledger")

        // Confirmation by the debtor's own key.
        let (confirmedOutcome, confirmedMessage) = try confirmation(root: root, history: history)
        add(.debtorConfirmed, confirmedOutcome, confirmedMessage)

        // Chain of title.
        let (titleOutcome, titleMessage, title) = try chainOfTitle(fragment: fragment, root: root, state: state, history: history)
        add(.chainOfTitle, titleOutcome, titleMessage)

        // Fragment state.
        switch fragment.state {
        case .active, .financed:
            add(.fragmentActive, .pass, "the fragment is a live claim of \(money(fragment.outstanding)) held by \(fragment.holder)")
        case .locked:
            let pending = try fragment.financingRequest.flatMap { try state.financingRequest($0) }
            let to = pending.map { " to \($0.bank)" } ?? ""
            if let pending, pending.bank == question.bank, pending.status == .pending {
                // The bank asked is the one whose decision the fragment waits for: this answer informs it.
                add(.fragmentActive, .pass, "locked by \(pending.applicant)'s pending request to \(pending.bank) (\(pending.id.short)…) for \(pending.requested): this answer is for deciding it")
            } else {
                add(.fragmentActive, .fail, "the fragment is locked by a pending financing request\(to) (\(fragment.financingRequest?.short ?? "?")…); it can be financed by someone else only after that request is rejected or withdrawn")
            }
        case .split, .transferred:
            add(.fragmentActive, .fail, "the fragment was \(fragment.state == .split ? "split" : "transferred whole") and no longer exists as a claim; ask about its children (the current pieces) instead")
        case .settled:
            add(.fragmentActive, .fail, "the fragment was settled by the debtor; there is nothing left to finance")
        case .writtenOff:
            add(.fragmentActive, .fail, "the fragment was written off by its holder; there is nothing left to finance")
        }
        if fragment.state == .financed {
            let by = try fragment.financingRequest.flatMap { try state.financingRequest($0) }?.bank ?? fragment.holder
            add(.notFinanced, .fail, "already financed by \(by)\(by == question.bank ? " (this bank)" : ""); a receivable can be financed only once")
        } else {
            add(.notFinanced, .pass, "not financed or pledged")
        }
        add(.notFrozen, fragment.frozen ? .fail : .pass,
            fragment.frozen ? "the fragment is frozen by an operator or regulator (dispute or court order); it cannot be financed until unfrozen" : "not frozen or disputed")

        // Maturity.
        let days = Int32(clamping: today.days(until: root.terms.maturity))
        if today < root.terms.maturity {
            add(.notMatured, .pass, "matures on \(root.terms.maturity), \(days) days after \(today)")
        } else {
            add(.notMatured, .fail, "matured on \(root.terms.maturity) (as of \(today)); a matured receivable can only be settled or written off")
        }

        // Amount and currency.
        let requested = question.amount.amount
        if requested <= .zero {
            add(.amountWithinOutstanding, .fail, "the amount asked for must be positive, got \(question.amount)")
        } else if requested > fragment.outstanding {
            add(.amountWithinOutstanding, .fail, "\(question.amount) is more than the \(money(fragment.outstanding)) outstanding on the fragment; ask for at most that")
        } else {
            add(.amountWithinOutstanding, .pass, "\(question.amount) is within the \(money(fragment.outstanding)) outstanding")
        }
        if question.amount.currency == currency {
            add(.currencyMatches, .pass, "the receivable and the request are in \(currency)")
        } else {
            add(.currencyMatches, .fail, "the receivable is in \(currency), the request in \(question.amount.currency); ask in \(currency)")
        }

        // Parties.
        let holder = try state.member(fragment.holder)
        if fragment.holder == root.debtor {
            add(.holderEligible, .fail, "the holder \(fragment.holder) is the debtor itself; a debtor cannot finance its own debt")
        } else if let holder, holder.status == .active {
            add(.holderEligible, .pass, "the holder \(holder.id) is an active member")
        } else {
            add(.holderEligible, .fail, "the holder \(fragment.holder) is \(holder?.status.description ?? "not a member"); no financing can be done with it")
        }
        let debtor = try state.member(root.debtor)
        if let debtor, debtor.status == .active {
            add(.debtorEligible, .pass, "the debtor \(debtor.id) is an active member")
        } else {
            add(.debtorEligible, .fail, "the debtor \(root.debtor) is \(debtor?.status.description ?? "not a member"); its receivables cannot be financed")
        }
        let bank = try state.member(question.bank)
        if let bank, bank.status == .active, bank.roles.contains(.bank), bank.id != fragment.holder || fragment.state == .financed {
            add(.bankEligible, .pass, "\(bank.id) is an active bank")
        } else if let bank, bank.status == .active, bank.roles.contains(.bank) {
            add(.bankEligible, .fail, "\(bank.id) already holds this fragment; a bank cannot finance its own claim")
        } else if let bank, bank.status == .active {
            add(.bankEligible, .fail, "\(bank.id) is not a bank (roles: \(bank.roles)); only a member with the bank role can finance")
        } else {
            add(.bankEligible, .fail, "\(question.bank) is \(bank?.status.description ?? "not a member"); it cannot finance")
        }

        // Invoices.
        var boundProblems: [String] = []
        var covered = Int64(0)
        var coverOverflow = false
        for key in root.invoiceKeys {
            guard let record = try state.invoice(key) else { boundProblems.append("invoice \(key) is missing from the ledger"); continue }
            if record.boundRoot != root.id {
                boundProblems.append("invoice \(key) is bound to \(record.boundRoot.map { "receivable \($0.hash.short)…" } ?? "no receivable")")
            }
            if record.status != .normal { boundProblems.append("invoice \(key) is \(record.status)") }
            if record.replacedBy != nil { boundProblems.append("invoice \(key) was replaced") }
            if record.invoice.amountIncludingTax.currency == currency {
                let (sum, overflow) = covered.addingReportingOverflow(record.invoice.amountIncludingTax.amount.value)
                covered = sum
                coverOverflow = coverOverflow || overflow
            }
        }
        if root.invoiceKeys.isEmpty { boundProblems.append("the receivable has no invoice") }
        if boundProblems.isEmpty {
            add(.invoicesBound, .pass, "\(root.invoiceKeys.count) invoice\(root.invoiceKeys.count == 1 ? "" : "s") bound to this receivable only, all valid")
        } else {
            add(.invoicesBound, .fail, boundProblems.joined(separator: "; ") + "; the holder must replace the invoice before financing")
        }
        if !coverOverflow && covered >= root.terms.face.amount.value {
            add(.invoicesCoverFace, .pass, "invoices total \(money(MinorUnits(covered))), covering the face value \(root.terms.face)")
        } else {
            add(.invoicesCoverFace, .fail, "invoices total \(money(MinorUnits(covered))), less than the face value \(root.terms.face)")
        }

        // Policy.
        var policyProblems: [String] = []
        if policy.bank != question.bank { policyProblems.append("the policy is \(policy.bank)'s, the question is for \(question.bank)") }
        if policy.currency != currency { policyProblems.append("the policy's amounts are in \(policy.currency), the receivable in \(currency)") }
        add(.policyApplies, policyProblems.isEmpty ? .pass : .fail,
            policyProblems.isEmpty ? "policy \(policyDigest.short)… of \(policy.bank) in \(policy.currency)" : policyProblems.joined(separator: "; ") + "; use the right policy file")

        if days < policy.minDaysToMaturity {
            add(.minDaysToMaturity, .fail, "\(days) days to maturity, the policy needs at least \(policy.minDaysToMaturity)")
        } else if Int64(days) < Int64(policy.minDaysToMaturity) + Int64(policy.maturityWarningBandDays) {
            add(.minDaysToMaturity, .warn, "\(days) days to maturity, close to the policy's minimum of \(policy.minDaysToMaturity) (warning band \(policy.maturityWarningBandDays) days); decide quickly")
        } else {
            add(.minDaysToMaturity, .pass, "\(days) days to maturity, at least \(policy.minDaysToMaturity)")
        }
        if days > policy.maxTenorDays {
            add(.maxTenor, .fail, "\(days) days to maturity, longer than the policy's maximum tenor of \(policy.maxTenorDays) days")
        } else {
            add(.maxTenor, .pass, "\(days) days to maturity, within the maximum tenor of \(policy.maxTenorDays) days")
        }

        let advanceLimit = Pricing.advanceLimit(outstanding: fragment.outstanding, rateBps: policy.advanceRateBps)
        if requested <= advanceLimit {
            add(.advanceRate, .pass, "\(question.amount) is within \(percent(policy.advanceRateBps)) of the outstanding \(money(fragment.outstanding)) (\(money(advanceLimit)))")
        } else {
            add(.advanceRate, .fail, "\(question.amount) is more than \(percent(policy.advanceRateBps)) of the outstanding \(money(fragment.outstanding)); at most \(money(advanceLimit))")
        }

        var remaining = advanceLimit
        let debtorUsed = try aggregates.financedExposure(bank: question.bank, debtor: root.debtor, currency: currency)
        if let line = policy.creditLine(for: root.debtor), policy.currency == currency {
            let left = MinorUnits(max(0, line.value - debtorUsed.value))
            remaining = min(remaining, left)
            if requested.value <= left.value {
                add(.creditLine, .pass, "\(question.bank) has \(money(debtorUsed)) outstanding on \(root.debtor); with this advance \(money(MinorUnits(debtorUsed.value &+ requested.value))) of the \(money(line)) line, \(money(left)) was free")
            } else {
                add(.creditLine, .fail, "credit line on \(root.debtor) exhausted: \(money(debtorUsed)) used of \(money(line)), \(money(left)) free, \(question.amount) asked")
            }
        } else {
            remaining = .zero
            add(.creditLine, .fail, "the policy has no credit line on \(root.debtor) in \(currency); nothing can be advanced against its receivables")
        }

        if let limit = policy.supplierLimit(for: fragment.holder) {
            let used = try aggregates.financedExposure(bank: question.bank, supplier: fragment.holder, currency: currency)
            let left = MinorUnits(max(0, limit.value - used.value))
            remaining = min(remaining, left)
            if requested.value <= left.value {
                add(.supplierConcentration, .pass, "\(money(used)) advanced to \(fragment.holder), limit \(money(limit)), \(money(left)) free")
            } else {
                add(.supplierConcentration, .fail, "concentration limit on \(fragment.holder) reached: \(money(used)) advanced of \(money(limit)), \(money(left)) free, \(question.amount) asked")
            }
        } else {
            add(.supplierConcentration, .pass, "the policy sets no concentration limit on \(fragment.holder)")
        }

        let cutoff = today.adding(days: -policy.overdueGraceDays)
        let overdue = try aggregates.overdueBalance(debtor: root.debtor, currency: currency, maturedBefore: cutoff)
        let share = overdue.shareBps
        if overdue.overdue.value <= 0 {
            add(.debtorOverdue, .pass, "\(root.debtor) has no overdue receivables on the ledger")
        } else if policy.excludeDebtorsWithOverdue && max(share, 1) >= policy.overdueShareTriggerBps {
            add(.debtorOverdue, .fail, "\(root.debtor) has \(money(overdue.overdue)) overdue of \(money(overdue.outstanding)) outstanding (\(percent(share))), at or above the policy's trigger of \(percent(policy.overdueShareTriggerBps)); its receivables are excluded")
        } else {
            add(.debtorOverdue, .warn, "\(root.debtor) has \(money(overdue.overdue)) overdue of \(money(overdue.outstanding)) outstanding (\(percent(share))); below the policy's trigger, but watch it")
        }

        let eligible = !rules.contains { $0.outcome == .fail }
        // What the bank could advance at most: only meaningful on a financeable fragment.
        let hardFailure = rules.contains { $0.outcome == .fail && $0.code.isHardRule && $0.code != .amountWithinOutstanding && $0.code != .currencyMatches }
        let maxAdvance = hardFailure || policy.currency != currency ? MinorUnits.zero : remaining
        var pricing: IndicativePricing?
        let priced = min(requested.value > 0 ? requested : maxAdvance, maxAdvance)
        if priced > .zero, days > 0,
           let discount = Pricing.discount(advance: priced, rateBps: policy.discountRateBps, days: days, basis: policy.dayCountBasis) {
            pricing = IndicativePricing(advance: Money(priced, currency), days: days, discountRateBps: policy.discountRateBps,
                                        dayCountBasis: policy.dayCountBasis, discount: Money(discount, currency),
                                        netProceeds: Money(MinorUnits(priced.value - discount.value), currency))
        }
        let summary = FragmentSummary(root: root.id, debtor: root.debtor, creditor: root.terms.creditor, holder: fragment.holder,
                                      face: root.terms.face, outstanding: Money(fragment.outstanding, currency),
                                      state: fragment.state.description, generation: fragment.generation,
                                      maturity: root.terms.maturity, confirmationTx: root.confirmationTx)
        return EligibilityAnswer(fragment: fragment.id, bank: question.bank, requested: question.amount, asOf: asOf,
                                 policyDigest: policyDigest, eligible: eligible, rules: rules,
                                 maxAdvance: Money(maxAdvance, currency), pricing: pricing, summary: summary, title: title)
    }

    /// Whether the root was made binding by a transaction the debtor signed: a `confirm` of a
    /// proposal, or the debtor's own `issue`.
    func confirmation<H: ChainHistory>(root: ReceivableRoot, history: H) throws -> (RuleOutcome, String) {
        guard let txID = root.confirmationTx else {
            return (.fail, "receivable \(root.id.hash.short)… has no debtor confirmation; the debtor \(root.debtor) must confirm it first")
        }
        guard let located = try history.locate(txID), located.receipt.isCommitted else {
            return (.fail, "the confirmation transaction \(txID.short)… is not committed on this ledger")
        }
        let body = located.transaction.body
        guard body.signer == root.debtor else {
            return (.fail, "the confirmation \(txID.short)… was signed by \(body.signer), not by the debtor \(root.debtor)")
        }
        switch body.operation {
        case .confirmReceivable(let id) where id == root.id:
            return (.pass, "confirmed by the debtor \(root.debtor) with its own key in block \(located.height) (tx \(txID.short)…)")
        case .issueReceivable where ReceivableID(txID) == root.id:
            return (.pass, "issued by the debtor \(root.debtor) with its own key in block \(located.height) (tx \(txID.short)…)")
        default:
            return (.fail, "transaction \(txID.short)… signed by \(root.debtor) does not confirm receivable \(root.id.hash.short)…")
        }
    }

    /// Walks from the fragment back to its root through parent links and checks that each link is
    /// a committed transaction that derives the child's id (`FragmentID.child`) and was signed by
    /// the parent's holder.
    func chainOfTitle<S: LedgerStateReader, H: ChainHistory>(fragment: Fragment, root: ReceivableRoot, state: S,
                                                              history: H) throws -> (RuleOutcome, String, [TitleLink]) {
        var lineage: [Fragment] = [fragment]
        var current = fragment
        while let parentID = current.parent {
            guard lineage.count <= 10_000, let parent = try state.fragment(parentID) else {
                return (.fail, "fragment \(current.id.hash.short)… names parent \(parentID.hash.short)…, which is not on the ledger", [])
            }
            lineage.append(parent)
            current = parent
        }
        lineage.reverse()
        var links: [TitleLink] = []
        for (offset, link) in lineage.enumerated() {
            guard let located = try history.locate(link.createdBy), located.receipt.isCommitted else {
                return (.fail, "the transaction \(link.createdBy.short)… that created fragment \(link.id.hash.short)… is not committed on this ledger", links)
            }
            let body = located.transaction.body
            // Who received the fragment when it was created (before any financing moved it).
            let receivedBy: MemberID
            if offset == 0 {
                guard link.id == FragmentID.initial(of: root.id, suite: suite), link.root == root.id else {
                    return (.fail, "the first fragment \(link.id.hash.short)… is not the initial fragment of receivable \(root.id.hash.short)…", links)
                }
                receivedBy = root.terms.creditor
            } else {
                let parent = lineage[offset - 1]
                guard case .transfer(let moved, let to, let amount) = body.operation, moved == parent.id else {
                    return (.fail, "fragment \(link.id.hash.short)… was not created by a transfer of its parent \(parent.id.hash.short)…", links)
                }
                guard body.signer == parent.holder else {
                    return (.fail, "the transfer \(located.transaction.id.short)… of \(parent.id.hash.short)… was signed by \(body.signer), not its holder \(parent.holder)", links)
                }
                let index: UInt8 = link.id == FragmentID.child(of: parent.id, index: 0, suite: suite) ? 0 : 1
                receivedBy = index == 0 ? to : body.signer
                guard link.id == FragmentID.child(of: parent.id, index: index, suite: suite),
                      link.holder == receivedBy || link.state == .financed,
                      link.amount == (index == 0 ? amount : MinorUnits(parent.amount.value - amount.value)) else {
                    return (.fail, "fragment \(link.id.hash.short)… does not derive from the transfer \(located.transaction.id.short)… of its parent", links)
                }
            }
            links.append(TitleLink(fragment: link.id, transaction: located.transaction.id, kind: body.operation.kind, signer: body.signer,
                                   holder: receivedBy, amount: link.amount, height: located.height))
        }
        let steps = links.count - 1
        return (.pass, steps == 0 ? "the fragment is the receivable's first fragment, held since the debtor's confirmation"
                    : "traces to the root through \(steps) transfer\(steps == 1 ? "" : "s"): " + links.map { "\($0.holder)" }.joined(separator: " → "), links)
    }

    func percent(_ bps: Int64) -> String {
        let whole = bps / 100, fraction = bps % 100
        return "\(whole).\(fraction < 10 ? "0" : "")\(fraction) %"
    }

    /// Many questions at the same height (a bank's morning screening): one answer per question, in order.
    public func evaluate<S: LedgerStateReader, A: EligibilityAggregates, H: ChainHistory>(
        batch questions: [Question], asOf: AsOf, policy: EligibilityPolicy, state: S, aggregates: A, history: H
    ) throws -> [EligibilityAnswer] {
        // Members and roots repeat across a screening (a few parties, many fragments per root):
        // read each once. Safe because every question is answered at the same height.
        let cached = BatchStateCache(base: state)
        let located = BatchHistoryCache(base: history)
        return try questions.map { try evaluate($0, asOf: asOf, policy: policy, state: cached, aggregates: aggregates, history: located) }
    }
}

/// Locates each transaction once for the length of one batch (a root's confirmation is also its
/// first fragment's creation, and siblings share ancestors).
final class BatchHistoryCache<Base: ChainHistory>: ChainHistory {
    let base: Base
    private var located: [Hash: LocatedTransaction?] = [:]
    init(base: Base) { self.base = base }
    func locate(_ id: Hash) throws -> LocatedTransaction? {
        if let known = located[id] { return known }
        let value = try base.locate(id)
        located[id] = value
        return value
    }
    func committedBlock(at height: Height) throws -> CommittedBlock? { try base.committedBlock(at: height) }
    func receipts(at height: Height) throws -> [Receipt] { try base.receipts(at: height) }
    func registration(of member: MemberID) throws -> Hash? { try base.registration(of: member) }
}

/// Reads through to a state once per member and root for the length of one batch.
final class BatchStateCache<Base: LedgerStateReader>: LedgerStateReader {
    let base: Base
    private var members: [MemberID: Member?] = [:]
    private var roots: [ReceivableID: ReceivableRoot?] = [:]

    init(base: Base) { self.base = base }

    func member(_ id: MemberID) throws -> Member? {
        if let known = members[id] { return known }
        let value = try base.member(id)
        members[id] = value
        return value
    }
    func root(_ id: ReceivableID) throws -> ReceivableRoot? {
        if let known = roots[id] { return known }
        let value = try base.root(id)
        roots[id] = value
        return value
    }
    func nonce(of id: MemberID) throws -> UInt64 { try base.nonce(of: id) }
    func fragment(_ id: FragmentID) throws -> Fragment? { try base.fragment(id) }
    func invoice(_ key: InvoiceKey) throws -> InvoiceRecord? { try base.invoice(key) }
    func financingRequest(_ id: Hash) throws -> FinancingRequest? { try base.financingRequest(id) }
}
