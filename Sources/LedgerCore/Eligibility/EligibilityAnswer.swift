/// Every eligibility rule, with a stable code (the raw value never changes once shipped).
/// Hard rules come from the ledger; policy rules from the bank's policy file.
public enum EligibilityRuleCode: String, Sendable, Codable, CaseIterable, CanonicalCodable {
    // Hard rules (the ledger)
    /// The fragment exists on the ledger as of the height.
    case fragmentKnown
    /// The receivable was made binding by a transaction signed with the debtor's own key.
    case debtorConfirmed
    /// The fragment traces back to its root through committed transfers and splits.
    case chainOfTitle
    /// The fragment is a live claim, not locked by a pending financing request, not closed
    /// (split, transferred, settled, written off).
    case fragmentActive
    /// Not already financed (or pledged) by any bank.
    case notFinanced
    /// Not frozen by an operator or regulator (court order, dispute).
    case notFrozen
    /// The receivable has not matured at the as-of consensus time.
    case notMatured
    /// The amount asked for is positive and within the fragment's outstanding amount.
    case amountWithinOutstanding
    /// The request is in the receivable's currency.
    case currencyMatches
    /// The holder is an active member, not blacklisted, and not the debtor.
    case holderEligible
    /// The debtor is an active member.
    case debtorEligible
    /// The bank is an active member with the bank role.
    case bankEligible
    /// Every invoice of the root is bound to this root only and valid (not voided or reversed).
    case invoicesBound
    /// The invoices' totals cover the face value.
    case invoicesCoverFace
    // Policy rules (the bank's file)
    /// The policy file is the asking bank's and in the receivable's currency.
    case policyApplies
    /// At least `minDaysToMaturity` days to maturity (a warning inside the warning band).
    case minDaysToMaturity
    /// At most `maxTenorDays` days to maturity.
    case maxTenor
    /// The amount asked for is within outstanding × advance rate.
    case advanceRate
    /// The bank's exposure to the debtor plus this advance fits the debtor's credit line.
    case creditLine
    /// The bank's exposure to the supplier plus this advance fits the concentration limit.
    case supplierConcentration
    /// The debtor's overdue share on the ledger is below the policy's trigger.
    case debtorOverdue

    public var isHardRule: Bool {
        switch self {
        case .policyApplies, .minDaysToMaturity, .maxTenor, .advanceRate, .creditLine, .supplierConcentration, .debtorOverdue: false
        default: true
        }
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(rawValue) }
    public init(from reader: inout CanonicalReader) throws {
        let raw = try reader.readString()
        guard let code = EligibilityRuleCode(rawValue: raw) else { throw reader.error("unknown eligibility rule \(raw)") }
        self = code
    }
}

public enum RuleOutcome: String, Sendable, Codable, CanonicalCodable {
    case pass, warn, fail
    public func encode(to writer: inout CanonicalWriter) { writer.write(rawValue) }
    public init(from reader: inout CanonicalReader) throws {
        let raw = try reader.readString()
        guard let outcome = RuleOutcome(rawValue: raw) else { throw reader.error("unknown rule outcome \(raw)") }
        self = outcome
    }
}

/// One rule's result: its code, pass/warn/fail and a sentence a banker can act on.
public struct RuleResult: Hashable, Sendable, Codable, CanonicalCodable {
    public var code: EligibilityRuleCode
    public var outcome: RuleOutcome
    public var message: String

    public init(_ code: EligibilityRuleCode, _ outcome: RuleOutcome, _ message: String) {
        self.code = code
        self.outcome = outcome
        self.message = message
    }
    public func encode(to writer: inout CanonicalWriter) { writer.write(code); writer.write(outcome); writer.write(message) }
    public init(from reader: inout CanonicalReader) throws {
        code = try reader.read(); outcome = try reader.read(); message = try reader.readString()
    }
}

/// The committed block an answer is computed at.
public struct AsOf: Hashable, Sendable, Codable, CanonicalCodable {
    public var height: Height
    public var blockHash: Hash
    /// The block's consensus timestamp: the only "now" the rules use.
    public var timestamp: ConsensusTime
    /// The business date of that timestamp in the consortium's time zone.
    public var businessDate: BusinessDate

    public init(height: Height, blockHash: Hash, timestamp: ConsensusTime, utcOffsetMinutes: Int32) {
        self.height = height
        self.blockHash = blockHash
        self.timestamp = timestamp
        self.businessDate = timestamp.businessDate(utcOffsetMinutes: utcOffsetMinutes)
    }
    public init(tip: ChainTip, utcOffsetMinutes: Int32) {
        self.init(height: tip.height, blockHash: tip.hash, timestamp: tip.timestamp, utcOffsetMinutes: utcOffsetMinutes)
    }
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(height); writer.write(blockHash); writer.write(timestamp); writer.write(businessDate)
    }
    public init(from reader: inout CanonicalReader) throws {
        height = try reader.read(); blockHash = try reader.read(); timestamp = try reader.read(); businessDate = try reader.read()
    }
}

/// The indicative price of advancing `advance` until maturity.
public struct IndicativePricing: Hashable, Sendable, Codable, CanonicalCodable {
    /// The amount priced: the requested amount, capped at the maximum advance.
    public var advance: Money
    /// Days from the as-of business date to maturity (actual days).
    public var days: Int32
    public var discountRateBps: Int64
    public var dayCountBasis: Int64
    /// advance × rate × days / (basis × 10000), rounded up to the minor unit (see `Pricing`).
    public var discount: Money
    /// advance − discount: what the supplier receives.
    public var netProceeds: Money

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(advance); writer.write(days); writer.write(discountRateBps); writer.write(dayCountBasis)
        writer.write(discount); writer.write(netProceeds)
    }
    public init(advance: Money, days: Int32, discountRateBps: Int64, dayCountBasis: Int64, discount: Money, netProceeds: Money) {
        self.advance = advance; self.days = days; self.discountRateBps = discountRateBps; self.dayCountBasis = dayCountBasis
        self.discount = discount; self.netProceeds = netProceeds
    }
    public init(from reader: inout CanonicalReader) throws {
        advance = try reader.read(); days = try reader.readInt32(); discountRateBps = try reader.readInt64()
        dayCountBasis = try reader.readInt64(); discount = try reader.read(); netProceeds = try reader.read()
    }
}

/// What the fragment is, as the ledger says, for a banker reading the answer.
public struct FragmentSummary: Hashable, Sendable, Codable, CanonicalCodable {
    public var root: ReceivableID
    public var debtor: MemberID
    public var creditor: MemberID
    public var holder: MemberID
    public var face: Money
    public var outstanding: Money
    public var state: String
    public var generation: UInt32
    public var maturity: BusinessDate
    public var confirmationTx: Hash?

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(root); writer.write(debtor); writer.write(creditor); writer.write(holder); writer.write(face)
        writer.write(outstanding); writer.write(state); writer.write(generation); writer.write(maturity); writer.write(confirmationTx)
    }
    public init(root: ReceivableID, debtor: MemberID, creditor: MemberID, holder: MemberID, face: Money, outstanding: Money,
                state: String, generation: UInt32, maturity: BusinessDate, confirmationTx: Hash?) {
        self.root = root; self.debtor = debtor; self.creditor = creditor; self.holder = holder; self.face = face
        self.outstanding = outstanding; self.state = state; self.generation = generation; self.maturity = maturity
        self.confirmationTx = confirmationTx
    }
    public init(from reader: inout CanonicalReader) throws {
        root = try reader.read(); debtor = try reader.read(); creditor = try reader.read(); holder = try reader.read()
        face = try reader.read(); outstanding = try reader.read(); state = try reader.readString()
        generation = try reader.readUInt32(); maturity = try reader.read(); confirmationTx = try reader.readOptional()
    }
}

/// One link of the chain of title: the transaction that created a fragment and who signed it.
public struct TitleLink: Hashable, Sendable, Codable, CanonicalCodable {
    public var fragment: FragmentID
    /// The transaction that created it (confirm/accept for the first fragment, a transfer after).
    public var transaction: Hash
    public var kind: String
    public var signer: MemberID
    public var holder: MemberID
    public var amount: MinorUnits
    public var height: Height

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(fragment); writer.write(transaction); writer.write(kind); writer.write(signer); writer.write(holder)
        writer.write(amount); writer.write(height)
    }
    public init(fragment: FragmentID, transaction: Hash, kind: String, signer: MemberID, holder: MemberID, amount: MinorUnits, height: Height) {
        self.fragment = fragment; self.transaction = transaction; self.kind = kind; self.signer = signer
        self.holder = holder; self.amount = amount; self.height = height
    }
    public init(from reader: inout CanonicalReader) throws {
        fragment = try reader.read(); transaction = try reader.read(); kind = try reader.readString(); signer = try reader.read()
        holder = try reader.read(); amount = try reader.read(); height = try reader.read()
    }
}

/// The answer to "can `bank` finance `amount` of `fragment`?", as of one committed block.
///
/// `canonicalBytes` is the byte-identical form: every node that holds the same chain gives the
/// same bytes for the same question, policy and height. The JSON form (Codable) is for people and
/// programs; it carries the same fields.
public struct EligibilityAnswer: Hashable, Sendable, Codable, CanonicalCodable {
    public static let currentVersion: UInt8 = 1
    public var version: UInt8
    public var fragment: FragmentID
    public var bank: MemberID
    public var requested: Money
    public var asOf: AsOf
    /// The digest of the policy the answer used (`EligibilityPolicy.digest`).
    public var policyDigest: Hash
    /// True when no rule fails (warnings do not make a fragment ineligible).
    public var eligible: Bool
    /// Every rule evaluated, in a fixed order.
    public var rules: [RuleResult]
    /// The most the bank can advance: min(outstanding × advance rate, remaining credit line,
    /// remaining supplier limit); nil when the fragment is unknown.
    public var maxAdvance: Money?
    public var pricing: IndicativePricing?
    public var summary: FragmentSummary?
    /// Root → … → this fragment; empty when the fragment is unknown.
    public var title: [TitleLink]

    public init(fragment: FragmentID, bank: MemberID, requested: Money, asOf: AsOf, policyDigest: Hash, eligible: Bool,
                rules: [RuleResult], maxAdvance: Money?, pricing: IndicativePricing?, summary: FragmentSummary?, title: [TitleLink]) {
        self.version = Self.currentVersion
        self.fragment = fragment; self.bank = bank; self.requested = requested; self.asOf = asOf; self.policyDigest = policyDigest
        self.eligible = eligible; self.rules = rules; self.maxAdvance = maxAdvance; self.pricing = pricing
        self.summary = summary; self.title = title
    }

    public var failures: [RuleResult] { rules.filter { $0.outcome == .fail } }
    public var warnings: [RuleResult] { rules.filter { $0.outcome == .warn } }
    public func result(_ code: EligibilityRuleCode) -> RuleResult? { rules.first { $0.code == code } }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(version); writer.write(fragment); writer.write(bank); writer.write(requested); writer.write(asOf)
        writer.write(policyDigest); writer.write(eligible); writer.write(rules); writer.write(maxAdvance); writer.write(pricing)
        writer.write(summary); writer.write(title)
    }
    public init(from reader: inout CanonicalReader) throws {
        version = try reader.readUInt8()
        guard version == Self.currentVersion else { throw reader.error("unsupported eligibility answer version \(version)") }
        fragment = try reader.read(); bank = try reader.read(); requested = try reader.read(); asOf = try reader.read()
        policyDigest = try reader.read(); eligible = try reader.readBool(); rules = try reader.readArray()
        maxAdvance = try reader.readOptional(); pricing = try reader.readOptional(); summary = try reader.readOptional()
        title = try reader.readArray()
    }
}
