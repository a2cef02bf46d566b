/// One transaction's view of state while it executes: reads see its own pending writes first,
/// then the block's earlier writes, then the state before the block. A rejected transaction's
/// pending writes are dropped (all but the nonce), so bad input never changes state.
/// The state before a block and the writes of its transactions so far. A class, so that each
/// transaction's `Scope` reads it by reference: merging a transaction's writes then mutates the
/// block's dictionaries in place, where a copy held by the scope would make every merge copy all of
/// them (quadratic in the block's size).
final class BlockWrites<S: LedgerStateReader> {
    let base: S
    var changes = StateChanges()
    /// Roots and fragments as the base held them before the block, for those the block read
    /// (nil: it has none by that id): a record read again comes from here, and the invariant check
    /// compares the block's writes with these instead of reading them from the base a second time.
    private(set) var rootsBefore: [ReceivableID: ReceivableRoot?] = [:]
    private(set) var fragmentsBefore: [FragmentID: Fragment?] = [:]

    init(base: S) {
        self.base = base
    }

    func member(_ id: MemberID) throws -> Member? { try changes.members[id] ?? base.member(id) }
    func nonce(of id: MemberID) throws -> UInt64 { try changes.nonces[id] ?? base.nonce(of: id) }
    func root(_ id: ReceivableID) throws -> ReceivableRoot? {
        if let written = changes.roots[id] { return written }
        if let known = rootsBefore[id] { return known }
        let value = try base.root(id)
        rootsBefore[id] = .some(value)
        return value
    }
    func fragment(_ id: FragmentID) throws -> Fragment? {
        if let written = changes.fragments[id] { return written }
        if let known = fragmentsBefore[id] { return known }
        let value = try base.fragment(id)
        fragmentsBefore[id] = .some(value)
        return value
    }
    func invoice(_ key: InvoiceKey) throws -> InvoiceRecord? { try changes.invoices[key] ?? base.invoice(key) }
    func financingRequest(_ id: Hash) throws -> FinancingRequest? { try changes.financingRequests[id] ?? base.financingRequest(id) }
}

struct Scope<S: LedgerStateReader> {
    let block: BlockWrites<S>
    let transaction: SignedTransaction
    let context: BlockContext
    let today: BusinessDate
    let suite: any CryptoSuite
    var pending = StateChanges()
    private(set) var signer: Member?

    init(block: BlockWrites<S>, transaction: SignedTransaction, context: BlockContext, today: BusinessDate, suite: any CryptoSuite) {
        self.block = block
        self.transaction = transaction
        self.context = context
        self.today = today
        self.suite = suite
    }

    var body: TransactionBody { transaction.body }
    var txID: Hash { transaction.id }

    // MARK: Reads and writes

    func member(_ id: MemberID) throws -> Member? { try pending.members[id] ?? block.member(id) }
    func root(_ id: ReceivableID) throws -> ReceivableRoot? { try pending.roots[id] ?? block.root(id) }
    func fragment(_ id: FragmentID) throws -> Fragment? { try pending.fragments[id] ?? block.fragment(id) }
    func invoice(_ key: InvoiceKey) throws -> InvoiceRecord? { try pending.invoices[key] ?? block.invoice(key) }
    func request(_ id: Hash) throws -> FinancingRequest? { try pending.financingRequests[id] ?? block.financingRequest(id) }

    mutating func put(_ value: Member) { pending.members[value.id] = value }
    mutating func put(_ value: ReceivableRoot) { pending.roots[value.id] = value }
    mutating func put(_ value: Fragment) { pending.fragments[value.id] = value }
    mutating func put(_ value: InvoiceRecord) { pending.invoices[value.invoice.key] = value }
    mutating func put(_ value: FinancingRequest) { pending.financingRequests[value.id] = value }

    mutating func discardKeepingNonce() {
        let nonce = pending.nonces
        pending = StateChanges()
        pending.nonces = nonce
    }

    // MARK: Envelope

    /// Chain, signer, signature and nonce. A wrong chain, unknown signer or wrong nonce changes
    /// nothing; once the nonce is right it is consumed, whatever happens next.
    mutating func checkEnvelope(chainID: String, signatures: BlockExecutor.SignaturePolicy) throws {
        guard body.chainID == chainID else {
            throw Rejection(.wrongChain, "this transaction is for chain \"\(body.chainID)\", this ledger is \"\(chainID)\"; sign it again with the right --chain-id")
        }
        guard let signer = try member(body.signer) else {
            throw Rejection(.unknownMember, "\(body.signer) is not a member of this consortium; ask the operator to register it first")
        }
        if signatures.mustCheck(transaction), !transaction.hasValidSignature(publicKey: signer.publicKey, suite: suite) {
            throw BadSignature(signer: signer.id)
        }
        let last = try block.nonce(of: signer.id)
        guard body.nonce > last else {
            throw Rejection(.replayed, "nonce \(body.nonce) of \(signer.id) was already used (last used: \(last)); this transaction was already processed or replayed")
        }
        guard body.nonce == last + 1 else {
            throw Rejection(.nonceGap, "\(signer.id) must use nonce \(last + 1) next, this transaction has \(body.nonce); submit the missing transactions first")
        }
        pending.nonces[signer.id] = body.nonce
        self.signer = signer
        guard signer.status == .active || (signer.status == .suspended && isSettlement) else {
            throw Rejection(.signerNotActive, "\(signer.id) is \(signer.status) and cannot sign transactions; contact the consortium operator")
        }
    }

    private var isSettlement: Bool {
        if case .settle = body.operation { return true }
        return false
    }

    // MARK: Operations

    mutating func apply() throws {
        guard let signer else { preconditionFailure("checkEnvelope must run first") }
        switch body.operation {
        case .registerMember(let member): try registerMember(member, by: signer)
        case .setMemberStatus(let id, let status, let reason): try setMemberStatus(id, status, reason, by: signer)
        case .proposeReceivable(let terms): try createReceivable(terms, by: signer, issuedByDebtor: false)
        case .issueReceivable(let terms): try createReceivable(terms, by: signer, issuedByDebtor: true)
        case .confirmReceivable(let id): try activate(id, by: signer, expecting: .proposed)
        case .acceptReceivable(let id): try activate(id, by: signer, expecting: .issued)
        case .rejectReceivable(let id, let reason): try close(id, by: signer, reason: reason, withdraw: false)
        case .withdrawReceivable(let id): try close(id, by: signer, reason: "withdrawn", withdraw: true)
        case .transfer(let fragment, let to, let amount): try transfer(fragment, to: to, amount: amount, by: signer)
        case .requestFinancing(let fragment, let bank, let amount): try requestFinancing(fragment, bank: bank, amount: amount, by: signer)
        case .approveFinancing(let request, let advance): try approveFinancing(request, advance: advance, by: signer)
        case .rejectFinancing(let request, let reason): try rejectFinancing(request, reason: reason, by: signer)
        case .settle(let root, let amount, let reference): try settle(root, amount: amount, reference: reference, by: signer)
        case .writeOff(let fragment, let reason): try writeOff(fragment, reason: reason, by: signer)
        case .freeze(let fragment, let reason): try setFrozen(fragment, true, reason: reason, by: signer)
        case .unfreeze(let fragment, let reason): try setFrozen(fragment, false, reason: reason, by: signer)
        case .attestInvoice(let key, let status, let evidence): try attestInvoice(key, status: status, evidence: evidence, by: signer)
        case .replaceInvoice(let root, let old, let new): try replaceInvoice(root, old: old, new: new, by: signer)
        }
    }

    // MARK: Members

    mutating func registerMember(_ new: Member, by signer: Member) throws {
        try requireRole(signer, .operator_, "register members")
        guard try member(new.id) == nil else {
            throw Rejection(.duplicateMember, "member id \(new.id) is already taken; choose another id")
        }
        guard new.publicKey.suite == suite.id, suite.isValidPublicKey(new.publicKey) else {
            throw Rejection(.invalidMember, "the public key of \(new.id) is not a valid \(suite.id) key")
        }
        guard !new.roles.isEmpty, new.status == .active else {
            throw Rejection(.invalidMember, "a new member needs at least one role and starts active")
        }
        try requireText(new.legalName, "legal name", max: 200)
        put(new)
    }

    mutating func setMemberStatus(_ id: MemberID, _ status: MemberStatus, _ reason: String, by signer: Member) throws {
        try requireRole(signer, .operator_, "suspend, blacklist or reinstate members")
        guard var target = try member(id) else {
            throw Rejection(.unknownMember, "\(id) is not a member")
        }
        guard id != signer.id else {
            throw Rejection(.invalidMember, "an operator cannot change its own status; another operator must do it")
        }
        guard target.status != status else {
            throw Rejection(.invalidState, "\(id) is already \(status)")
        }
        try requireText(reason, "reason", max: 500)
        target.status = status
        put(target)
    }

    // MARK: Receivables

    mutating func createReceivable(_ terms: ReceivableTerms, by signer: Member, issuedByDebtor: Bool) throws {
        if issuedByDebtor {
            guard signer.id == terms.debtor else {
                throw Rejection(.notDebtor, "only the debtor \(terms.debtor) can issue this receivable, not \(signer.id)")
            }
        } else {
            guard signer.id == terms.creditor else {
                throw Rejection(.notCreditor, "only the creditor \(terms.creditor) can propose this receivable, not \(signer.id)")
            }
            try requireRole(signer, .supplier, "propose receivables")
        }
        guard terms.debtor != terms.creditor else {
            throw Rejection(.invalidTerms, "debtor and creditor must be different members")
        }
        let counterpartyID = issuedByDebtor ? terms.creditor : terms.debtor
        let counterparty = try activeCounterparty(counterpartyID)
        let debtor = issuedByDebtor ? signer : counterparty
        let creditor = issuedByDebtor ? counterparty : signer
        guard terms.face.amount > .zero else {
            throw Rejection(.invalidAmount, "the face amount must be positive, got \(terms.face)")
        }
        guard terms.maturity > terms.issueDate else {
            throw Rejection(.invalidTerms, "maturity \(terms.maturity) must be after the issue date \(terms.issueDate)")
        }
        guard terms.issueDate <= today else {
            throw Rejection(.invalidTerms, "issue date \(terms.issueDate) is in the future (today is \(today))")
        }
        guard terms.maturity > today else {
            throw Rejection(.matured, "maturity \(terms.maturity) has already passed (today is \(today))")
        }
        guard !terms.invoices.isEmpty, terms.invoices.count <= 100 else {
            throw Rejection(.invalidTerms, "a receivable needs between 1 and 100 invoices, got \(terms.invoices.count)")
        }
        guard terms.documentHashes.count <= 32 else {
            throw Rejection(.invalidTerms, "at most 32 document hashes, got \(terms.documentHashes.count)")
        }
        let keys = terms.invoices.map(\.key)
        guard Set(keys).count == keys.count else {
            throw Rejection(.invalidTerms, "an invoice is listed twice")
        }
        var covered = MinorUnits.zero
        for invoice in terms.invoices {
            try checkInvoice(invoice, currency: terms.face.currency, seller: creditor, buyer: debtor)
            guard let sum = covered.adding(invoice.amountIncludingTax.amount) else {
                throw Rejection(.overflow, "invoice totals overflow")
            }
            covered = sum
        }
        guard covered >= terms.face.amount else {
            throw Rejection(.invalidTerms, "invoices total \(Money(covered, terms.face.currency)), less than the face amount \(terms.face)")
        }
        let id = ReceivableID(txID)
        for invoice in terms.invoices {
            try bindInvoice(invoice, to: id)
        }
        put(ReceivableRoot(id: id, terms: terms, status: issuedByDebtor ? .issued : .proposed, initiator: signer.id,
                           confirmationTx: issuedByDebtor ? txID : nil, settled: .zero, writtenOff: .zero,
                           liveFragments: [], invoiceKeys: keys.sorted()))
    }

    /// Confirm (debtor, on a proposal) or accept (creditor, on an issue): the receivable becomes
    /// active and its first fragment goes to the creditor.
    mutating func activate(_ id: ReceivableID, by signer: Member, expecting status: RootStatus) throws {
        var root = try requireRoot(id)
        guard root.status == status else {
            throw Rejection(.invalidState, "receivable \(id.hash.short) is \(root.status); only a \(status) receivable can be \(status == .proposed ? "confirmed" : "accepted")")
        }
        if status == .proposed {
            guard signer.id == root.debtor else {
                throw Rejection(.notDebtor, "only the debtor \(root.debtor) can confirm this receivable, not \(signer.id)")
            }
            _ = try activeCounterparty(root.terms.creditor)
            root.confirmationTx = txID
        } else {
            guard signer.id == root.terms.creditor else {
                throw Rejection(.notCreditor, "only the creditor \(root.terms.creditor) can accept this receivable, not \(signer.id)")
            }
            _ = try activeCounterparty(root.debtor)
        }
        guard today < root.terms.maturity else {
            throw Rejection(.matured, "receivable \(id.hash.short) matured on \(root.terms.maturity)")
        }
        let fragment = Fragment(id: FragmentID.initial(of: id, suite: suite), root: id, parent: nil, generation: 0,
                                holder: root.terms.creditor, amount: root.terms.face.amount, outstanding: root.terms.face.amount,
                                state: .active, frozen: false, financingRequest: nil, createdBy: txID)
        root.status = .active
        root.liveFragments = [fragment.id]
        put(fragment)
        put(root)
        for key in root.invoiceKeys {
            guard var record = try invoice(key) else { continue }
            record.attestations.append(InvoiceAttestation(attester: root.debtor, source: .debtorConfirmation, status: record.status,
                                                          evidenceHash: nil, transaction: root.confirmationTx ?? txID, height: context.height))
            put(record)
        }
    }

    /// Reject (the counterparty) or withdraw (the initiator) a receivable that is not yet active.
    mutating func close(_ id: ReceivableID, by signer: Member, reason: String, withdraw: Bool) throws {
        var root = try requireRoot(id)
        guard root.status == .proposed || root.status == .issued else {
            throw Rejection(.invalidState, "receivable \(id.hash.short) is \(root.status); only a proposed or issued receivable can be \(withdraw ? "withdrawn" : "rejected")")
        }
        if withdraw {
            guard signer.id == root.initiator else {
                throw Rejection(.notInitiator, "only \(root.initiator), who created it, can withdraw receivable \(id.hash.short)")
            }
            root.status = .withdrawn
        } else {
            let counterparty = root.status == .proposed ? root.debtor : root.terms.creditor
            guard signer.id == counterparty else {
                throw Rejection(.notCounterparty, "only \(counterparty) can reject receivable \(id.hash.short)")
            }
            try requireText(reason, "reason", max: 500)
            root.status = .rejected
        }
        for key in root.invoiceKeys {
            guard var record = try invoice(key), record.boundRoot == id else { continue }
            record.boundRoot = nil
            put(record)
        }
        put(root)
    }

    // MARK: Transfers

    mutating func transfer(_ id: FragmentID, to recipient: MemberID, amount: MinorUnits, by signer: Member) throws {
        var parent = try requireMovable(id, by: signer, action: "transfer")
        var root = try requireRoot(parent.root)
        guard amount > .zero else {
            throw Rejection(.invalidAmount, "the amount to transfer must be positive, got \(amount)")
        }
        guard amount <= parent.outstanding else {
            throw Rejection(.amountExceedsOutstanding, "cannot transfer \(Money(amount, root.currency)): fragment \(id.hash.short) has \(Money(parent.outstanding, root.currency)) outstanding")
        }
        guard recipient != root.debtor else {
            throw Rejection(.transferToDebtor, "\(recipient) is the debtor of this receivable; a debtor cannot hold its own debt")
        }
        guard recipient != signer.id else {
            throw Rejection(.transferToSelf, "\(signer.id) already holds fragment \(id.hash.short)")
        }
        _ = try activeCounterparty(recipient)
        try requireNotMatured(root)
        var children: [Fragment] = []
        let transferred = Fragment(id: FragmentID.child(of: id, index: 0, suite: suite), root: root.id, parent: id,
                                   generation: parent.generation + 1, holder: recipient, amount: amount, outstanding: amount,
                                   state: .active, frozen: false, financingRequest: nil, createdBy: txID)
        children.append(transferred)
        if amount < parent.outstanding {
            let remainder = parent.outstanding.subtracting(amount)!
            children.append(Fragment(id: FragmentID.child(of: id, index: 1, suite: suite), root: root.id, parent: id,
                                     generation: parent.generation + 1, holder: parent.holder, amount: remainder, outstanding: remainder,
                                     state: .active, frozen: false, financingRequest: nil, createdBy: txID))
            parent.state = .split
        } else {
            parent.state = .transferred
        }
        root.liveFragments.removeAll { $0 == id }
        root.liveFragments.append(contentsOf: children.map(\.id))
        root.liveFragments.sort()
        put(parent)
        children.forEach { put($0) }
        put(root)
    }

    // MARK: Financing

    mutating func requestFinancing(_ id: FragmentID, bank bankID: MemberID, amount: Money, by signer: Member) throws {
        var fragment = try requireMovable(id, by: signer, action: "finance")
        let root = try requireRoot(fragment.root)
        let bank = try activeCounterparty(bankID)
        guard bank.roles.contains(.bank) else {
            throw Rejection(.notBank, "\(bankID) is not a bank; financing can only be requested from a member with the bank role")
        }
        guard bankID != signer.id else {
            throw Rejection(.invalidTerms, "a holder cannot request financing from itself")
        }
        guard amount.currency == root.currency else {
            throw Rejection(.currencyMismatch, "the receivable is in \(root.currency), the request in \(amount.currency)")
        }
        guard amount.amount > .zero else {
            throw Rejection(.invalidAmount, "the amount requested must be positive, got \(amount)")
        }
        guard amount.amount <= fragment.outstanding else {
            throw Rejection(.amountExceedsOutstanding, "cannot request \(amount): fragment \(id.hash.short) has \(Money(fragment.outstanding, root.currency)) outstanding")
        }
        try requireNotMatured(root)
        for key in root.invoiceKeys {
            if let record = try invoice(key), record.status != .normal {
                throw Rejection(.invoiceInvalid, "invoice \(key) is \(record.status); the holder must replace it before this receivable can be financed")
            }
        }
        fragment.state = .locked
        fragment.financingRequest = txID
        put(fragment)
        put(FinancingRequest(id: txID, fragment: id, root: root.id, applicant: signer.id, bank: bankID, requested: amount,
                             status: .pending, advance: nil, decisionTx: nil, reason: nil))
    }

    mutating func approveFinancing(_ requestID: Hash, advance: MinorUnits, by signer: Member) throws {
        var request = try requirePending(requestID)
        guard signer.id == request.bank else {
            throw Rejection(.notBank, "only \(request.bank), the bank asked, can approve this request")
        }
        guard var fragment = try fragment(request.fragment), fragment.state == .locked, fragment.financingRequest == requestID else {
            throw Rejection(.invalidState, "the fragment of this request is no longer locked for it")
        }
        guard !fragment.frozen else {
            throw Rejection(.fragmentFrozen, "fragment \(fragment.id.hash.short) is frozen; it cannot be financed until unfrozen")
        }
        let root = try requireRoot(fragment.root)
        try requireNotMatured(root)
        guard advance > .zero, advance <= request.requested.amount else {
            throw Rejection(.amountExceedsOutstanding, "the advance must be positive and at most the \(request.requested) requested, got \(Money(advance, root.currency))")
        }
        _ = try activeCounterparty(request.applicant)
        fragment.state = .financed
        fragment.holder = request.bank
        request.status = .approved
        request.advance = advance
        request.decisionTx = txID
        put(fragment)
        put(request)
    }

    /// The bank refuses, or the applicant withdraws, a pending request; the fragment is unlocked.
    mutating func rejectFinancing(_ requestID: Hash, reason: String, by signer: Member) throws {
        var request = try requirePending(requestID)
        guard signer.id == request.bank || signer.id == request.applicant else {
            throw Rejection(.notBank, "only \(request.bank) (the bank) or \(request.applicant) (the applicant) can close this request")
        }
        try requireText(reason, "reason", max: 500)
        if var fragment = try fragment(request.fragment), fragment.state == .locked, fragment.financingRequest == requestID {
            fragment.state = .active
            fragment.financingRequest = nil
            put(fragment)
        }
        request.status = .rejected
        request.reason = reason
        request.decisionTx = txID
        put(request)
    }

    // MARK: Settlement and write-off

    mutating func settle(_ id: ReceivableID, amount: MinorUnits, reference: String, by signer: Member) throws {
        var root = try requireRoot(id)
        guard signer.id == root.debtor else {
            throw Rejection(.notDebtor, "only the debtor \(root.debtor) can settle this receivable, not \(signer.id)")
        }
        guard root.status == .active else {
            throw Rejection(.invalidState, "receivable \(id.hash.short) is \(root.status); only an active receivable can be settled")
        }
        guard today >= root.terms.maturity else {
            throw Rejection(.notMatured, "receivable \(id.hash.short) matures on \(root.terms.maturity); it can be settled from that date (today is \(today))")
        }
        guard amount > .zero else {
            throw Rejection(.invalidAmount, "the amount paid must be positive, got \(amount)")
        }
        try requireText(reference, "payment reference", max: 128)
        var fragments: [Fragment] = []
        var total = MinorUnits.zero
        for fragmentID in root.liveFragments {
            guard let fragment = try fragment(fragmentID) else { continue }
            guard !fragment.frozen else {
                throw Rejection(.fragmentFrozen, "fragment \(fragmentID.hash.short) is frozen; it must be unfrozen before the receivable is settled")
            }
            fragments.append(fragment)
            guard let sum = total.adding(fragment.outstanding) else { throw Rejection(.overflow, "outstanding amounts overflow") }
            total = sum
        }
        guard total > .zero else {
            throw Rejection(.nothingOutstanding, "nothing is outstanding on receivable \(id.hash.short)")
        }
        guard amount <= total else {
            throw Rejection(.amountExceedsOutstanding, "cannot pay \(Money(amount, root.currency)): \(Money(total, root.currency)) is outstanding")
        }
        // Pro rata to what each holder is owed, rounding down; the remaining minor units go one
        // each to fragments in id order. Deterministic and never pays a fragment more than it is owed.
        var shares = fragments.map { fragment -> Int64 in
            let product = fragment.outstanding.value.multipliedFullWidth(by: amount.value)
            return total.value.dividingFullWidth(product).quotient
        }
        var left = amount.value - shares.reduce(0, +)
        var index = 0
        while left > 0 {
            if shares[index] < fragments[index].outstanding.value {
                shares[index] += 1
                left -= 1
            }
            index = (index + 1) % fragments.count
        }
        for (offset, var fragment) in fragments.enumerated() {
            fragment.outstanding = MinorUnits(fragment.outstanding.value - shares[offset])
            if fragment.state == .locked, let requestID = fragment.financingRequest, var request = try request(requestID) {
                // A pending financing request is moot once the debtor pays.
                request.status = .lapsed
                request.reason = "the receivable was settled while the request was pending"
                request.decisionTx = txID
                put(request)
                fragment.financingRequest = nil
                fragment.state = .active
            }
            if fragment.outstanding == .zero {
                fragment.state = .settled
                root.liveFragments.removeAll { $0 == fragment.id }
            }
            put(fragment)
        }
        root.settled = root.settled.adding(amount)!
        if root.liveFragments.isEmpty { root.status = .closed }
        put(root)
    }

    mutating func writeOff(_ id: FragmentID, reason: String, by signer: Member) throws {
        var fragment = try requireFragment(id)
        guard signer.id == fragment.holder else {
            throw Rejection(.notHolder, "only the holder \(fragment.holder) can write off fragment \(id.hash.short)")
        }
        try requireLive(fragment)
        guard fragment.state != .locked else {
            throw Rejection(.fragmentLocked, "fragment \(id.hash.short) has a pending financing request; close it first")
        }
        guard !fragment.frozen else {
            throw Rejection(.fragmentFrozen, "fragment \(id.hash.short) is frozen")
        }
        var root = try requireRoot(fragment.root)
        guard today >= root.terms.maturity else {
            throw Rejection(.notMatured, "a receivable can be written off only after it matures on \(root.terms.maturity)")
        }
        try requireText(reason, "reason", max: 500)
        root.writtenOff = root.writtenOff.adding(fragment.outstanding)!
        fragment.outstanding = .zero
        fragment.state = .writtenOff
        root.liveFragments.removeAll { $0 == id }
        if root.liveFragments.isEmpty { root.status = .closed }
        put(fragment)
        put(root)
    }

    mutating func setFrozen(_ id: FragmentID, _ frozen: Bool, reason: String, by signer: Member) throws {
        guard signer.roles.contains(.operator_) || signer.roles.contains(.regulator) else {
            throw Rejection(.notAuthorized, "\(signer.id) cannot \(frozen ? "freeze" : "unfreeze") fragments; only an operator or regulator can")
        }
        var fragment = try requireFragment(id)
        try requireLive(fragment)
        guard fragment.frozen != frozen else {
            throw frozen ? Rejection(.invalidState, "fragment \(id.hash.short) is already frozen")
                : Rejection(.notFrozen, "fragment \(id.hash.short) is not frozen")
        }
        try requireText(reason, "reason", max: 500)
        fragment.frozen = frozen
        put(fragment)
    }

    // MARK: Invoices

    mutating func attestInvoice(_ key: InvoiceKey, status: InvoiceStatus, evidence: Hash?, by signer: Member) throws {
        try requireRole(signer, .invoiceVerifier, "attest invoices")
        guard var record = try invoice(key) else {
            throw Rejection(.unknownInvoice, "invoice \(key) is not on the ledger")
        }
        guard record.status == .normal || status == record.status else {
            throw Rejection(.invoiceInvalid, "invoice \(key) is \(record.status); a voided or red-reversed invoice cannot become \(status) again")
        }
        record.status = status
        record.attestations.append(InvoiceAttestation(attester: signer.id, source: .verifier, status: status,
                                                      evidenceHash: evidence, transaction: txID, height: context.height))
        put(record)
    }

    mutating func replaceInvoice(_ id: ReceivableID, old: InvoiceKey, new: Invoice, by signer: Member) throws {
        var root = try requireRoot(id)
        guard root.status == .active else {
            throw Rejection(.invalidState, "receivable \(id.hash.short) is \(root.status); invoices can be replaced only on an active receivable")
        }
        var isHolder = signer.id == root.terms.creditor
        for fragmentID in root.liveFragments where !isHolder {
            isHolder = try fragment(fragmentID)?.holder == signer.id
        }
        guard isHolder else {
            throw Rejection(.notHolder, "only the original creditor or a current holder can replace an invoice of receivable \(id.hash.short)")
        }
        guard root.invoiceKeys.contains(old), var oldRecord = try invoice(old) else {
            throw Rejection(.invoiceNotOnReceivable, "invoice \(old) does not back receivable \(id.hash.short)")
        }
        guard oldRecord.status != .normal else {
            throw Rejection(.invoiceStillValid, "invoice \(old) is still valid; only a voided or red-reversed invoice can be replaced")
        }
        guard let creditor = try member(root.terms.creditor), let debtor = try member(root.debtor) else {
            throw Rejection(.unknownMember, "a party of receivable \(id.hash.short) is no longer a member")
        }
        try checkInvoice(new, currency: root.currency, seller: creditor, buyer: debtor)
        var covered = new.amountIncludingTax.amount
        for key in root.invoiceKeys where key != old {
            if let amount = try invoice(key)?.invoice.amountIncludingTax.amount { covered = covered.adding(amount) ?? covered }
        }
        guard covered >= root.terms.face.amount else {
            throw Rejection(.invalidTerms, "with the new invoice the invoices total \(Money(covered, root.currency)), less than the face amount \(root.terms.face)")
        }
        try bindInvoice(new, to: id)
        oldRecord.boundRoot = nil
        oldRecord.replacedBy = new.key
        put(oldRecord)
        root.invoiceKeys = (root.invoiceKeys.filter { $0 != old } + [new.key]).sorted()
        put(root)
    }

    func checkInvoice(_ invoice: Invoice, currency: CurrencyCode, seller: Member, buyer: Member) throws {
        guard invoice.amountExcludingTax.currency == currency, invoice.amountIncludingTax.currency == currency else {
            throw Rejection(.currencyMismatch, "invoice \(invoice.key) is not in \(currency)")
        }
        guard invoice.amountExcludingTax.amount > .zero, invoice.amountIncludingTax.amount >= invoice.amountExcludingTax.amount else {
            throw Rejection(.invoiceInvalid, "invoice \(invoice.key): amounts must be positive and including tax at least excluding tax")
        }
        guard invoice.sellerTaxID == seller.creditCode else {
            throw Rejection(.invoiceInvalid, "invoice \(invoice.key) names seller \(invoice.sellerTaxID), but the creditor \(seller.id) is \(seller.creditCode)")
        }
        guard invoice.buyerTaxID == buyer.creditCode else {
            throw Rejection(.invoiceInvalid, "invoice \(invoice.key) names buyer \(invoice.buyerTaxID), but the debtor \(buyer.id) is \(buyer.creditCode)")
        }
        guard invoice.issueDate <= today else {
            throw Rejection(.invoiceInvalid, "invoice \(invoice.key) is dated \(invoice.issueDate), in the future")
        }
    }

    mutating func bindInvoice(_ invoice: Invoice, to id: ReceivableID) throws {
        if var existing = try self.invoice(invoice.key) {
            guard existing.boundRoot == nil else {
                throw Rejection(.invoiceAlreadyBound, "invoice \(invoice.key) already backs receivable \(existing.boundRoot!.hash.short); an invoice can back only one receivable")
            }
            guard existing.status == .normal, existing.replacedBy == nil else {
                throw Rejection(.invoiceInvalid, "invoice \(invoice.key) is \(existing.replacedBy == nil ? existing.status.description : "replaced") and cannot back a receivable")
            }
            guard existing.invoice == invoice else {
                throw Rejection(.invoiceInvalid, "invoice \(invoice.key) differs from the invoice of that number already on the ledger")
            }
            existing.boundRoot = id
            put(existing)
        } else {
            put(InvoiceRecord(invoice: invoice, boundRoot: id, status: .normal, attestations: [], replacedBy: nil))
        }
    }

    // MARK: Shared checks

    func requireRole(_ member: Member, _ role: Roles, _ action: String) throws {
        guard member.roles.contains(role) else {
            throw Rejection(.notAuthorized, "\(member.id) (\(member.roles)) cannot \(action); that needs the \(role) role")
        }
    }

    func requireText(_ text: String, _ what: String, max: Int) throws {
        guard !text.isEmpty, text.utf8.count <= max else {
            throw Rejection(.invalidTerms, "the \(what) must be 1 to \(max) bytes")
        }
    }

    func activeCounterparty(_ id: MemberID) throws -> Member {
        guard let member = try member(id) else {
            throw Rejection(.unknownMember, "\(id) is not a member of this consortium")
        }
        guard member.status == .active else {
            throw Rejection(.counterpartyNotActive, "\(id) is \(member.status); no business can be done with it")
        }
        return member
    }

    func requireRoot(_ id: ReceivableID) throws -> ReceivableRoot {
        guard let root = try root(id) else {
            throw Rejection(.unknownReceivable, "no receivable \(id.hash.short) on this ledger")
        }
        return root
    }

    func requireFragment(_ id: FragmentID) throws -> Fragment {
        guard let fragment = try fragment(id) else {
            throw Rejection(.unknownFragment, "no fragment \(id.hash.short) on this ledger")
        }
        return fragment
    }

    func requirePending(_ id: Hash) throws -> FinancingRequest {
        guard let request = try request(id) else {
            throw Rejection(.unknownRequest, "no financing request \(id.short) on this ledger")
        }
        guard request.status == .pending else {
            throw Rejection(.invalidState, "financing request \(id.short) is already \(request.status)")
        }
        return request
    }

    func requireLive(_ fragment: Fragment) throws {
        guard fragment.state.isLive else {
            throw Rejection(.fragmentClosed, "fragment \(fragment.id.hash.short) is \(fragment.state) and no longer exists as a claim")
        }
    }

    /// Held by the signer, live, not frozen, locked or financed.
    func requireMovable(_ id: FragmentID, by signer: Member, action: String) throws -> Fragment {
        let fragment = try requireFragment(id)
        guard fragment.state != .financed else {
            throw Rejection(.alreadyFinanced, "fragment \(id.hash.short) is already financed by \(fragment.holder); it cannot be \(action == "finance" ? "financed again" : "transferred")")
        }
        guard fragment.holder == signer.id else {
            throw Rejection(.notHolder, "\(signer.id) does not hold fragment \(id.hash.short); \(fragment.holder) does")
        }
        try requireLive(fragment)
        guard !fragment.frozen else {
            throw Rejection(.fragmentFrozen, "fragment \(id.hash.short) is frozen; it cannot \(action == "finance" ? "be financed" : "move") until unfrozen")
        }
        guard fragment.state != .locked else {
            throw Rejection(.fragmentLocked, "fragment \(id.hash.short) has a pending financing request; wait for the bank's decision")
        }
        return fragment
    }

    func requireNotMatured(_ root: ReceivableRoot) throws {
        guard today < root.terms.maturity else {
            throw Rejection(.matured, "receivable \(root.id.hash.short) matured on \(root.terms.maturity); it can only be settled now")
        }
    }
}
