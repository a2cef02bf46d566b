import LedgerCore

/// Produces a realistic, mostly valid stream of signed transactions over a `TestConsortium`, block
/// by block, for long chains, the store's tests and benchmarks.
///
/// The story it plays: tier-1 suppliers propose receivables on the core enterprise, backed by one
/// or two VAT invoices (sometimes the core enterprise issues them and the supplier accepts); the
/// core enterprise confirms most proposals and rejects a few; holders pass fragments down the
/// supply chain (tier 1 → 2 → 3 → 4), whole or split; holders ask banks for financing and banks
/// approve most requests; the invoice verifier attests invoices; the regulator freezes and later
/// unfreezes the odd fragment; at maturity the core enterprise settles (sometimes in two
/// payments) and a holder occasionally writes off instead. A small share of transactions is
/// deliberately wrong (transfer to the debtor, more than outstanding, confirm by a non-debtor,
/// financing from a non-bank or of a financed fragment, a reused invoice, a replay), so chains
/// carry rejected receipts too.
///
/// Determinism: everything comes from the seed; the generator's model of the ledger is updated
/// only from `observe(_:)` in sorted order, so the same seed always gives the same chain.
///
/// Use: `let block = generator.nextBlock()`, execute `block.transactions` at `block.timestamp`,
/// then `generator.observe(result)` before asking for the next block.
public struct WorkloadGenerator: Sendable {
    public let consortium: TestConsortium
    public private(set) var factory: TransactionFactory
    /// Transactions in each block.
    public var transactionsPerBlock: Int
    /// Consensus time between blocks (default one hour, so a 10,000-block chain spans about 14
    /// months and receivables mature and get settled along the way).
    public var blockInterval: Int64
    /// Share of (non-settlement) transactions that are deliberately invalid, in percent.
    public var invalidPercent: Int
    /// The timestamp of the last block produced (genesis time before the first).
    public private(set) var timestamp: ConsensusTime
    public private(set) var statistics = WorkloadStatistics()

    private var random: WorkloadRandom
    private let utcOffset: Int32
    private let debtor: MemberID
    private let banks: [MemberID]
    private let suppliers: [MemberID]
    private let tierOf: [MemberID: Int]
    private let suppliersByTier: [Int: [MemberID]]
    private let creditCodes: [MemberID: UnifiedSocialCreditCode]

    // The model: what the generator knows of the ledger after the last observed block.
    private var roots: [ReceivableID: ReceivableRoot] = [:]
    private var fragments: [FragmentID: Fragment] = [:]
    private var requests: [Hash: FinancingRequest] = [:]
    private var proposed = PickableSet<ReceivableID>()
    private var issued = PickableSet<ReceivableID>()
    private var active = PickableSet<ReceivableID>()
    private var matured = PickableSet<ReceivableID>()
    private var movable = PickableSet<FragmentID>()
    private var financed = PickableSet<FragmentID>()
    private var frozen = PickableSet<FragmentID>()
    private var pending = PickableSet<Hash>()
    private var maturing: [Int32: [ReceivableID]] = [:]
    private var lastMaturityDay: Int32
    private var invoiceCounter = 0
    private var previousBlock: [SignedTransaction] = []

    // Per block: ids already used, so two transactions of one block do not fight over a record.
    private var touched = Set<Hash>()
    private var replayedThisBlock = false

    /// - Parameters:
    ///   - consortium: usually `TestConsortium(extraSuppliers: n)`; extra suppliers spread over tiers 1-4.
    ///   - seed: the only source of randomness.
    public init(consortium: TestConsortium, seed: UInt64, transactionsPerBlock: Int = 8,
                blockInterval: Int64 = 3_600_000, invalidPercent: Int = 5) {
        self.consortium = consortium
        self.factory = TransactionFactory(consortium: consortium)
        self.transactionsPerBlock = max(1, transactionsPerBlock)
        self.blockInterval = blockInterval
        self.invalidPercent = min(max(invalidPercent, 0), 50)
        self.timestamp = consortium.genesis.genesisTime
        self.random = WorkloadRandom(seed: seed ^ 0x5CF_1ED6_E700_0000)
        self.utcOffset = consortium.genesis.utcOffsetMinutes
        self.debtor = TestConsortium.core
        let members = consortium.genesis.members
        self.banks = members.filter { $0.roles.contains(.bank) }.map(\.id)
        let suppliers = members.filter { $0.roles.contains(.supplier) }.map(\.id)
        self.suppliers = suppliers
        var tierOf: [MemberID: Int] = [TestConsortium.tier1: 1, TestConsortium.tier2: 2, TestConsortium.tier3: 3]
        for id in suppliers where tierOf[id] == nil {
            let number = Int(id.rawValue.split(separator: "-").last ?? "") ?? 0
            tierOf[id] = 1 + number % 4
        }
        self.tierOf = tierOf
        var byTier: [Int: [MemberID]] = [:]
        for id in suppliers { byTier[tierOf[id]!, default: []].append(id) }
        self.suppliersByTier = byTier
        self.creditCodes = Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0.creditCode) })
        self.lastMaturityDay = consortium.genesis.genesisTime.businessDate(utcOffsetMinutes: consortium.genesis.utcOffsetMinutes).daysSinceEpoch
    }

    /// The transactions of the next block and the consensus time to execute them at.
    public mutating func nextBlock() -> WorkloadBlock {
        timestamp = timestamp.adding(milliseconds: blockInterval)
        let today = timestamp.businessDate(utcOffsetMinutes: utcOffset)
        promoteMatured(through: today)
        touched.removeAll(keepingCapacity: true)
        replayedThisBlock = false
        var transactions: [SignedTransaction] = []
        transactions.reserveCapacity(transactionsPerBlock)
        var settlementSlots = max(1, transactionsPerBlock / 3)
        while settlementSlots > 0, transactions.count < transactionsPerBlock, let settlement = makeSettlement(today) {
            transactions.append(settlement)
            settlementSlots -= 1
        }
        while transactions.count < transactionsPerBlock {
            transactions.append(makeTransaction(today))
        }
        previousBlock = transactions
        return WorkloadBlock(timestamp: timestamp, transactions: transactions)
    }

    /// Learns what the last block did. Call it with the block's result before `nextBlock()`.
    public mutating func observe(_ result: ExecutionResult) {
        statistics.blocks += 1
        statistics.transactions += result.receipts.count
        for receipt in result.receipts {
            if let rejection = receipt.rejection {
                statistics.rejected += 1
                statistics.rejectionsByCode[rejection.code.rawValue, default: 0] += 1
            }
        }
        for root in result.changes.sortedRoots { update(root) }
        for fragment in result.changes.sortedFragments { update(fragment) }
        for request in result.changes.sortedFinancingRequests { update(request) }
    }

    // MARK: Model updates

    private mutating func update(_ root: ReceivableRoot) {
        let wasActive = roots[root.id]?.status == .active
        switch root.status {
        case .proposed:
            roots[root.id] = root
            proposed.insert(root.id)
        case .issued:
            roots[root.id] = root
            issued.insert(root.id)
        case .active:
            roots[root.id] = root
            proposed.remove(root.id)
            issued.remove(root.id)
            active.insert(root.id)
            if !wasActive {
                let day = root.terms.maturity.daysSinceEpoch
                if day <= lastMaturityDay { matured.insert(root.id) } else { maturing[day, default: []].append(root.id) }
            }
        case .rejected, .withdrawn, .closed:
            roots[root.id] = nil
            proposed.remove(root.id)
            issued.remove(root.id)
            active.remove(root.id)
            matured.remove(root.id)
        }
    }

    private mutating func update(_ fragment: Fragment) {
        let id = fragment.id
        guard fragment.state.isLive else {
            fragments[id] = nil
            movable.remove(id)
            financed.remove(id)
            frozen.remove(id)
            return
        }
        fragments[id] = fragment
        if fragment.state == .active, !fragment.frozen, tierOf[fragment.holder] != nil { movable.insert(id) } else { movable.remove(id) }
        if fragment.state == .financed { financed.insert(id) } else { financed.remove(id) }
        if fragment.frozen { frozen.insert(id) } else { frozen.remove(id) }
    }

    private mutating func update(_ request: FinancingRequest) {
        if request.status == .pending {
            requests[request.id] = request
            pending.insert(request.id)
        } else {
            requests[request.id] = nil
            pending.remove(request.id)
        }
    }

    private mutating func promoteMatured(through today: BusinessDate) {
        guard today.daysSinceEpoch > lastMaturityDay else { return }
        for day in (lastMaturityDay + 1)...today.daysSinceEpoch {
            for id in maturing.removeValue(forKey: day) ?? [] where roots[id]?.status == .active {
                matured.insert(id)
            }
        }
        lastMaturityDay = today.daysSinceEpoch
    }

    // MARK: Choosing transactions

    private enum Kind: Int, CaseIterable {
        case propose, issue, confirm, accept, rejectProposal, withdraw, transfer, requestFinancing, approveFinancing
        case rejectFinancing, attest, freeze, unfreeze, invalid
    }

    private mutating func makeTransaction(_ today: BusinessDate) -> SignedTransaction {
        var weights: [Int] = Kind.allCases.map { kind in
            switch kind {
            case .propose: 14
            case .issue: 3
            case .confirm: proposed.isEmpty ? 0 : 8 + min(proposed.count, 24)
            case .accept: issued.isEmpty ? 0 : 2 + min(issued.count, 6)
            case .rejectProposal: proposed.isEmpty ? 0 : 1
            case .withdraw: proposed.isEmpty ? 0 : 1
            case .transfer: movable.isEmpty ? 0 : 30
            case .requestFinancing: movable.isEmpty ? 0 : 9
            case .approveFinancing: pending.isEmpty ? 0 : 4 + min(pending.count, 8)
            case .rejectFinancing: pending.isEmpty ? 0 : 2
            case .attest: active.isEmpty ? 0 : 2
            case .freeze: movable.isEmpty || frozen.count >= 4 ? 0 : 1
            case .unfreeze: frozen.isEmpty ? 0 : 2
            case .invalid: 0
            }
        }
        let valid = weights.reduce(0, +)
        weights[Kind.invalid.rawValue] = invalidPercent >= 100 ? 1 : valid * invalidPercent / (100 - invalidPercent)
        for _ in 0..<8 {
            let kind = Kind(rawValue: random.weighted(weights))!
            if let transaction = make(kind, today) {
                statistics.generated[kindName(kind), default: 0] += 1
                if kind == .invalid { statistics.intendedInvalid += 1 }
                return transaction
            }
        }
        statistics.generated["propose", default: 0] += 1
        return propose(today, issuedByDebtor: false)
    }

    private func kindName(_ kind: Kind) -> String { "\(kind)" }

    private mutating func make(_ kind: Kind, _ today: BusinessDate) -> SignedTransaction? {
        switch kind {
        case .propose: return propose(today, issuedByDebtor: false)
        case .issue: return propose(today, issuedByDebtor: true)
        case .confirm:
            guard let root = pickRoot(from: proposed) else { return nil }
            return sign(root.debtor, .confirmReceivable(root.id))
        case .accept:
            guard let root = pickRoot(from: issued) else { return nil }
            return sign(root.terms.creditor, .acceptReceivable(root.id))
        case .rejectProposal:
            guard let root = pickRoot(from: proposed) else { return nil }
            return sign(root.debtor, .rejectReceivable(root.id, reason: "goods not received in full"))
        case .withdraw:
            guard let root = pickRoot(from: proposed) else { return nil }
            return sign(root.initiator, .withdrawReceivable(root.id))
        case .transfer:
            guard let fragment = pickMovable(today) else { return nil }
            let recipient = recipient(after: fragment.holder)
            let amount: MinorUnits
            if fragment.outstanding.value < 2 || random.chance(40) {
                amount = fragment.outstanding
            } else {
                amount = MinorUnits(max(1, min(fragment.outstanding.value - 1, fragment.outstanding.value * Int64(random.int(10...90)) / 100)))
            }
            return sign(fragment.holder, .transfer(fragment: fragment.id, to: recipient, amount: amount))
        case .requestFinancing:
            guard let fragment = pickMovable(today, minimumDaysLeft: 3) else { return nil }
            let bank = banks[random.int(0...(banks.count - 1))]
            let amount = max(1, fragment.outstanding.value * 9 / 10)
            return sign(fragment.holder, .requestFinancing(fragment: fragment.id, bank: bank, amount: Money(minor: amount, roots[fragment.root]?.currency ?? .cny)))
        case .approveFinancing, .rejectFinancing:
            for _ in 0..<4 {
                guard let id = pending.randomElement(using: &random), let request = requests[id],
                      !touched.contains(id), !touched.contains(request.fragment.hash) else { continue }
                guard let root = roots[request.root], root.terms.maturity > today else { continue }
                touched.insert(id)
                touched.insert(request.fragment.hash)
                if kind == .approveFinancing {
                    return sign(request.bank, .approveFinancing(request: id, advance: MinorUnits(max(1, request.requested.amount.value * 97 / 100))))
                }
                let signer = random.chance(70) ? request.bank : request.applicant
                return sign(signer, .rejectFinancing(request: id, reason: signer == request.bank ? "credit line for this debtor is used up" : "no longer needed"))
            }
            return nil
        case .attest:
            guard let root = pickRoot(from: active, touching: false), let key = root.invoiceKeys.first else { return nil }
            let attester = random.chance(50) ? TestConsortium.verifier : TestConsortium.bankA
            return sign(attester, .attestInvoice(key, status: .normal, evidenceHash: consortium.suite.hash(Array("tax-check/\(key)".utf8))))
        case .freeze:
            guard let fragment = pickMovable(today) else { return nil }
            return sign(TestConsortium.regulator, .freeze(fragment: fragment.id, reason: "court order pending review"))
        case .unfreeze:
            for _ in 0..<4 {
                guard let id = frozen.randomElement(using: &random), !touched.contains(id.hash) else { continue }
                touched.insert(id.hash)
                return sign(TestConsortium.regulator, .unfreeze(fragment: id, reason: "court order lifted"))
            }
            return nil
        case .invalid:
            return makeInvalid(today)
        }
    }

    /// A transaction that breaks one rule; it is included and rejected with a reason code.
    private mutating func makeInvalid(_ today: BusinessDate) -> SignedTransaction? {
        switch random.int(0...6) {
        case 0:
            guard let fragment = pickMovable(today) else { return nil }
            return sign(fragment.holder, .transfer(fragment: fragment.id, to: debtor, amount: fragment.outstanding))
        case 1:
            guard let fragment = pickMovable(today) else { return nil }
            return sign(fragment.holder, .transfer(fragment: fragment.id, to: recipient(after: fragment.holder),
                                                   amount: MinorUnits(fragment.outstanding.value + Int64(random.int(1...10_000)))))
        case 2:
            guard let root = pickRoot(from: proposed, touching: false) else { return nil }
            return sign(suppliers[random.int(0...(suppliers.count - 1))], .confirmReceivable(root.id))
        case 3:
            guard let fragment = pickMovable(today) else { return nil }
            return sign(fragment.holder, .requestFinancing(fragment: fragment.id, bank: recipient(after: fragment.holder),
                                                           amount: Money(fragment.outstanding, .cny)))
        case 4:
            guard !replayedThisBlock, let old = previousBlock.first else { return nil }
            replayedThisBlock = true
            return old
        case 5:
            guard let root = pickRoot(from: active, touching: false), let invoice = root.terms.invoices.first else { return nil }
            var terms = root.terms
            terms.invoices = [invoice]
            terms.issueDate = min(terms.issueDate, today)
            terms.maturity = today.adding(days: 60)
            return sign(terms.creditor, .proposeReceivable(terms))
        default:
            for _ in 0..<4 {
                guard let id = financed.randomElement(using: &random), !touched.contains(id.hash), let fragment = fragments[id] else { continue }
                return sign(suppliers[random.int(0...(suppliers.count - 1))],
                            .requestFinancing(fragment: id, bank: banks[0], amount: Money(fragment.outstanding, .cny)))
            }
            return nil
        }
    }

    /// Settles (or writes off part of) a matured receivable, or unfreezes what blocks its settlement.
    private mutating func makeSettlement(_ today: BusinessDate) -> SignedTransaction? {
        for _ in 0..<4 {
            guard let id = matured.randomElement(using: &random), !touched.contains(id.hash) else { continue }
            guard let root = roots[id], root.status == .active else {
                matured.remove(id)
                continue
            }
            let live = root.liveFragments.compactMap { fragments[$0] }
            guard live.count == root.liveFragments.count, !live.contains(where: { touched.contains($0.id.hash) }) else { continue }
            if let icy = live.first(where: \.frozen) {
                touched.insert(icy.id.hash)
                return sign(TestConsortium.regulator, .unfreeze(fragment: icy.id, reason: "released for settlement at maturity"))
            }
            touched.insert(id.hash)
            for fragment in live { touched.insert(fragment.id.hash) }
            if live.count > 1, random.chance(8), let victim = live.first(where: { $0.state != .locked }) {
                statistics.generated["writeOff", default: 0] += 1
                return sign(victim.holder, .writeOff(fragment: victim.id, reason: "holder gave up collecting"))
            }
            let total = live.reduce(Int64(0)) { $0 + $1.outstanding.value }
            guard total > 0 else { continue }
            let amount = total >= 2 && random.chance(15) ? total / 2 : total
            statistics.generated["settle", default: 0] += 1
            return sign(root.debtor, .settle(root: id, amount: MinorUnits(amount), paymentReference: "WIRE-\(today)-\(id.hash.short)"))
        }
        return nil
    }

    // MARK: Building blocks

    private mutating func sign(_ signer: MemberID, _ operation: LedgerOperation) -> SignedTransaction {
        factory.make(signer, operation)
    }

    private mutating func pickRoot(from set: PickableSet<ReceivableID>, touching: Bool = true) -> ReceivableRoot? {
        for _ in 0..<4 {
            guard let id = set.randomElement(using: &random), !touched.contains(id.hash), let root = roots[id] else { continue }
            if touching { touched.insert(id.hash) }
            return root
        }
        return nil
    }

    /// A live, unfrozen, unlocked fragment held by a supplier, on a receivable not yet matured.
    private mutating func pickMovable(_ today: BusinessDate, minimumDaysLeft: Int32 = 0) -> Fragment? {
        for _ in 0..<6 {
            guard let id = movable.randomElement(using: &random), !touched.contains(id.hash), let fragment = fragments[id] else { continue }
            guard let root = roots[fragment.root], root.terms.maturity > today.adding(days: minimumDaysLeft) else {
                if roots[fragment.root].map({ $0.terms.maturity <= today }) ?? true { movable.remove(id) }
                continue
            }
            touched.insert(id.hash)
            return fragment
        }
        return nil
    }

    /// A supplier one tier further down the chain (or any other supplier from the last tier).
    private mutating func recipient(after holder: MemberID) -> MemberID {
        let tier = tierOf[holder] ?? 0
        var candidates = (suppliersByTier[tier + 1] ?? []).filter { $0 != holder }
        if candidates.isEmpty { candidates = suppliers.filter { $0 != holder } }
        return candidates[random.int(0...(candidates.count - 1))]
    }

    private mutating func propose(_ today: BusinessDate, issuedByDebtor: Bool) -> SignedTransaction {
        let creditors = suppliersByTier[1] ?? [TestConsortium.tier1]
        let creditor = creditors[random.int(0...(creditors.count - 1))]
        let face = random.int64(50...20_000) * 10_000
        let issueDate = today.adding(days: -Int32(random.int(0...5)))
        let maturity = today.adding(days: Int32(random.int(30...120)))
        var invoices: [Invoice] = []
        if face >= 200_000, random.chance(25) {
            let first = face / 100 * Int64(random.int(30...70))
            invoices.append(invoice(seller: creditor, amount: first, issued: issueDate))
            invoices.append(invoice(seller: creditor, amount: face - first, issued: issueDate))
        } else {
            invoices.append(invoice(seller: creditor, amount: face, issued: issueDate))
        }
        let terms = ReceivableTerms(debtor: debtor, creditor: creditor, face: Money(minor: face, .cny), issueDate: issueDate,
                                    maturity: maturity, invoices: invoices,
                                    documentHashes: [consortium.suite.hash(Array("contract/\(invoices[0].key)".utf8))],
                                    recourse: random.chance(70) ? .withRecourse : .withoutRecourse)
        return issuedByDebtor ? sign(debtor, .issueReceivable(terms)) : sign(creditor, .proposeReceivable(terms))
    }

    private mutating func invoice(seller: MemberID, amount: Int64, issued: BusinessDate) -> Invoice {
        invoiceCounter += 1
        let digital = random.chance(30)
        let key = InvoiceKey(code: digital ? "" : "4403261130", number: "W\(invoiceCounter)")!
        return Invoice(key: key, type: digital ? .digital : .vatSpecial, issueDate: issued, sellerTaxID: creditCodes[seller]!,
                       buyerTaxID: creditCodes[debtor]!, amountExcludingTax: Money(minor: max(1, amount * 100 / 113), .cny),
                       amountIncludingTax: Money(minor: amount, .cny),
                       documentHash: consortium.suite.hash(Array("invoice-pdf/\(key)".utf8)))
    }
}

/// One block's worth of generated transactions.
public struct WorkloadBlock: Sendable {
    public var timestamp: ConsensusTime
    public var transactions: [SignedTransaction]
}

/// What a generator produced and what the ledger made of it.
public struct WorkloadStatistics: Sendable, Equatable {
    public var blocks = 0
    public var transactions = 0
    public var rejected = 0
    /// Transactions generated, by kind of intent ("transfer", "settle", "invalid", …).
    public var generated: [String: Int] = [:]
    /// Rejected receipts by reason code.
    public var rejectionsByCode: [String: Int] = [:]
    /// Transactions generated to break a rule on purpose.
    public var intendedInvalid = 0
}

extension WorkloadGenerator {
    /// Generates, executes (signatures checked) and certifies the next block on an in-memory chain.
    @discardableResult
    public mutating func appendBlock(to chain: inout ChainBuilder) throws -> (CommittedBlock, ExecutionResult) {
        let next = nextBlock()
        let (block, result) = try chain.append(next.transactions, at: next.timestamp)
        observe(result)
        return (block, result)
    }
}
