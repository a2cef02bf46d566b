/// The aggregate questions the credit-line, concentration and overdue rules ask of the ledger.
/// A store answers them with indexed SQL (or a per-height cache); `MemoryLedgerState` by scanning.
/// Every answer is as of the same height as the `LedgerStateReader` passed with it.
public protocol EligibilityAggregates {
    /// The bank's exposure to a debtor in one currency: over the fragments the bank holds as
    /// financed (approved requests by this bank, fragment still `financed`) on receivables owed by
    /// `debtor`, the sum of min(advance, outstanding): what the bank advanced and is still at risk.
    func financedExposure(bank: MemberID, debtor: MemberID, currency: CurrencyCode) throws -> MinorUnits
    /// The same, over financings whose applicant (the supplier who sold the fragment) is `supplier`.
    func financedExposure(bank: MemberID, supplier: MemberID, currency: CurrencyCode) throws -> MinorUnits
    /// What the debtor still owes on its active receivables in `currency` (face − settled − written
    /// off), and how much of that is on receivables that matured before `maturedBefore`.
    func overdueBalance(debtor: MemberID, currency: CurrencyCode, maturedBefore: BusinessDate) throws -> OverdueBalance
}

public struct OverdueBalance: Hashable, Sendable {
    public var overdue: MinorUnits
    public var outstanding: MinorUnits
    public init(overdue: MinorUnits, outstanding: MinorUnits) {
        self.overdue = overdue
        self.outstanding = outstanding
    }

    /// overdue / outstanding in basis points, rounded down (0 when nothing is outstanding).
    public var shareBps: Int64 {
        guard outstanding.value > 0, overdue.value > 0 else { return 0 }
        let product = overdue.value.multipliedFullWidth(by: 10_000)
        return outstanding.value.dividingFullWidth(product).quotient
    }
}

/// A committed or refused transaction with its receipt and place in the chain.
public struct LocatedTransaction: Hashable, Sendable {
    public var transaction: SignedTransaction
    public var receipt: Receipt
    public var height: Height
    public var position: Int
    public init(transaction: SignedTransaction, receipt: Receipt, height: Height, position: Int) {
        self.transaction = transaction
        self.receipt = receipt
        self.height = height
        self.position = position
    }
}

/// Finds transactions and blocks: what the confirmation and chain-of-title rules and the evidence
/// builder need beyond state.
public protocol ChainHistory {
    /// The first occurrence of a transaction id at or below the as-of height (a replayed copy later
    /// is refused and does not count), or nil.
    func locate(_ id: Hash) throws -> LocatedTransaction?
    /// The block at `height` with its certificate.
    func committedBlock(at height: Height) throws -> CommittedBlock?
    /// The receipts of the block at `height`, in block order.
    func receipts(at height: Height) throws -> [Receipt]
    /// The committed `registerMember` transaction that admitted `member`, or nil (genesis members).
    func registration(of member: MemberID) throws -> Hash?
}

// MARK: In memory

extension MemoryLedgerState: EligibilityAggregates {
    public func financedExposure(bank: MemberID, debtor: MemberID, currency: CurrencyCode) -> MinorUnits {
        exposure(bank: bank, currency: currency) { request, _ in roots[request.root]?.debtor == debtor }
    }

    public func financedExposure(bank: MemberID, supplier: MemberID, currency: CurrencyCode) -> MinorUnits {
        exposure(bank: bank, currency: currency) { request, _ in request.applicant == supplier }
    }

    private func exposure(bank: MemberID, currency: CurrencyCode, _ include: (FinancingRequest, Fragment) -> Bool) -> MinorUnits {
        var total = Int64(0)
        for request in financingRequests.values where request.bank == bank && request.status == .approved && request.requested.currency == currency {
            guard let fragment = fragments[request.fragment], fragment.state == .financed, fragment.holder == bank,
                  fragment.financingRequest == request.id, include(request, fragment) else { continue }
            total = total.addingReportingOverflow(min(request.advance?.value ?? 0, fragment.outstanding.value)).partialValue
        }
        return MinorUnits(total)
    }

    public func overdueBalance(debtor: MemberID, currency: CurrencyCode, maturedBefore: BusinessDate) -> OverdueBalance {
        var overdue = Int64(0), outstanding = Int64(0)
        for root in roots.values where root.debtor == debtor && root.status == .active && root.currency == currency {
            let owed = root.terms.face.amount.value - root.settled.value - root.writtenOff.value
            outstanding += owed
            if root.terms.maturity < maturedBefore { overdue += owed }
        }
        return OverdueBalance(overdue: MinorUnits(overdue), outstanding: MinorUnits(outstanding))
    }
}

/// A chain kept in memory (blocks and their receipts), for tests and for answering "as of" an
/// older height by replaying blocks.
public struct MemoryChainHistory: ChainHistory, Sendable {
    public private(set) var blocks: [CommittedBlock] = []
    public private(set) var receiptsByHeight: [[Receipt]] = []
    private var index: [Hash: (height: Int, position: Int)] = [:]
    private var registrations: [MemberID: Hash] = [:]

    public init() {}

    /// Adds the next block (height = count + 1) and its receipts.
    public mutating func append(_ block: CommittedBlock, receipts: [Receipt]) {
        let height = blocks.count
        for (position, (transaction, receipt)) in zip(block.block.transactions, receipts).enumerated() {
            if index[transaction.id] == nil { index[transaction.id] = (height, position) }
            if receipt.isCommitted, case .registerMember(let member) = transaction.body.operation, registrations[member.id] == nil {
                registrations[member.id] = transaction.id
            }
        }
        blocks.append(block)
        receiptsByHeight.append(receipts)
    }

    public var height: Height { Height(UInt64(blocks.count)) }

    public func locate(_ id: Hash) -> LocatedTransaction? {
        guard let (height, position) = index[id] else { return nil }
        return LocatedTransaction(transaction: blocks[height].block.transactions[position], receipt: receiptsByHeight[height][position],
                                  height: Height(UInt64(height + 1)), position: position)
    }

    public func committedBlock(at height: Height) -> CommittedBlock? {
        guard height.value >= 1, height.value <= UInt64(blocks.count) else { return nil }
        return blocks[Int(height.value) - 1]
    }

    public func receipts(at height: Height) -> [Receipt] {
        guard height.value >= 1, height.value <= UInt64(blocks.count) else { return [] }
        return receiptsByHeight[Int(height.value) - 1]
    }

    public func registration(of member: MemberID) -> Hash? { registrations[member] }
}

// MARK: Pricing

/// Discount arithmetic in integer minor units.
///
/// discount = advance × rateBps × days / (basis × 10 000), computed exactly in 128 bits
/// (`multipliedFullWidth`) and rounded UP to the next minor unit when not exact: the bank never
/// earns less than its quoted rate, and the supplier pays at most one minor unit (1 fen) more
/// than the exact figure. Net proceeds = advance − discount. The maximum advance is
/// outstanding × advanceRateBps / 10 000 rounded DOWN: the bank never advances more than its rate.
public enum Pricing {
    /// nil when the result does not fit in 64 bits (an amount no real receivable has).
    public static func discount(advance: MinorUnits, rateBps: Int64, days: Int32, basis: Int64) -> MinorUnits? {
        guard advance.value >= 0, rateBps >= 0, days >= 0, basis > 0 else { return nil }
        let (factor, overflow) = rateBps.multipliedReportingOverflow(by: Int64(days))
        guard !overflow else { return nil }
        let product = advance.value.multipliedFullWidth(by: factor)
        let divisor = basis * 10_000
        // The quotient fits in Int64 only when product < divisor × 2^63.
        guard product.high >= 0, (product.high << 1) | Int64(product.low >> 63) < divisor else { return nil }
        let (quotient, remainder) = divisor.dividingFullWidth(product)
        if remainder == 0 { return MinorUnits(quotient) }
        let (up, overflowUp) = quotient.addingReportingOverflow(1)
        return overflowUp ? nil : MinorUnits(up)
    }

    /// outstanding × rateBps / 10 000, rounded down.
    public static func advanceLimit(outstanding: MinorUnits, rateBps: Int64) -> MinorUnits {
        guard outstanding.value > 0, rateBps > 0 else { return .zero }
        let product = outstanding.value.multipliedFullWidth(by: rateBps)
        return MinorUnits(Int64(10_000).dividingFullWidth(product).quotient)
    }
}
