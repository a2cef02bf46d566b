/// A bank's financing policy: the rules it adds to the ledger's hard rules. The bank owns it and
/// keeps it off the ledger (a JSON file; see docs/ELIGIBILITY.md and docs/examples/bank-policy.json).
///
/// Amounts are exact minor units of `currency`; rates are basis points (1 bp = 0.01 %). A policy
/// is checked once, on load (`EligibilityPolicy.load(json:)` or `problems`), so the engine can
/// trust every field.
public struct EligibilityPolicy: Hashable, Sendable {
    /// The bank this policy belongs to (answers for another bank are refused).
    public var bank: MemberID
    /// The currency of every amount in the policy; receivables in another currency fail `creditLine`.
    public var currency: CurrencyCode
    /// The receivable must mature at least this many days after the as-of business date.
    public var minDaysToMaturity: Int32
    /// ... and at most this many days after it (the longest financing the bank offers).
    public var maxTenorDays: Int32
    /// How much of the outstanding amount the bank advances, in basis points (8000 = 80 %).
    public var advanceRateBps: Int64
    /// Annual discount rate in basis points (450 = 4.50 % a year).
    public var discountRateBps: Int64
    /// Day-count basis: 360 (ACT/360) or 365 (ACT/365 Fixed).
    public var dayCountBasis: Int64
    /// Credit line per debtor; a debtor without a line gets `defaultCreditLine` (nil: no line, fail).
    public var creditLines: [MemberID: MinorUnits]
    public var defaultCreditLine: MinorUnits?
    /// Concentration limit: the most the bank will have advanced to one supplier (the holder who
    /// sells the receivable), per supplier or by default. nil: no limit.
    public var supplierLimits: [MemberID: MinorUnits]
    public var defaultSupplierLimit: MinorUnits?
    /// Refuse debtors whose overdue share (overdue / outstanding on the ledger, in bps) is at least
    /// `overdueShareTriggerBps`; a smaller non-zero share is a warning. Overdue means unpaid
    /// `overdueGraceDays` days after maturity.
    public var excludeDebtorsWithOverdue: Bool
    public var overdueShareTriggerBps: Int64
    public var overdueGraceDays: Int32
    /// Warn when days to maturity are within this many days above `minDaysToMaturity`.
    public var maturityWarningBandDays: Int32

    public init(bank: MemberID, currency: CurrencyCode = .cny, minDaysToMaturity: Int32 = 15, maxTenorDays: Int32 = 360,
                advanceRateBps: Int64 = 9_000, discountRateBps: Int64 = 450, dayCountBasis: Int64 = 360,
                creditLines: [MemberID: MinorUnits] = [:], defaultCreditLine: MinorUnits? = nil,
                supplierLimits: [MemberID: MinorUnits] = [:], defaultSupplierLimit: MinorUnits? = nil,
                excludeDebtorsWithOverdue: Bool = true, overdueShareTriggerBps: Int64 = 1, overdueGraceDays: Int32 = 0,
                maturityWarningBandDays: Int32 = 10) {
        self.bank = bank
        self.currency = currency
        self.minDaysToMaturity = minDaysToMaturity
        self.maxTenorDays = maxTenorDays
        self.advanceRateBps = advanceRateBps
        self.discountRateBps = discountRateBps
        self.dayCountBasis = dayCountBasis
        self.creditLines = creditLines
        self.defaultCreditLine = defaultCreditLine
        self.supplierLimits = supplierLimits
        self.defaultSupplierLimit = defaultSupplierLimit
        self.excludeDebtorsWithOverdue = excludeDebtorsWithOverdue
        self.overdueShareTriggerBps = overdueShareTriggerBps
        self.overdueGraceDays = overdueGraceDays
        self.maturityWarningBandDays = maturityWarningBandDays
    }

    public func creditLine(for debtor: MemberID) -> MinorUnits? { creditLines[debtor] ?? defaultCreditLine }
    public func supplierLimit(for supplier: MemberID) -> MinorUnits? { supplierLimits[supplier] ?? defaultSupplierLimit }

    /// Every problem with the policy, as sentences; empty when it is usable.
    public var problems: [String] {
        var problems: [String] = []
        if minDaysToMaturity < 0 { problems.append("minDaysToMaturity must be 0 or more, got \(minDaysToMaturity)") }
        if maxTenorDays <= 0 { problems.append("maxTenorDays must be positive, got \(maxTenorDays)") }
        if maxTenorDays < minDaysToMaturity {
            problems.append("maxTenorDays (\(maxTenorDays)) is below minDaysToMaturity (\(minDaysToMaturity)): nothing could ever be financed")
        }
        if !(1...10_000).contains(advanceRateBps) { problems.append("advanceRateBps must be 1-10000 (0.01 %-100 %), got \(advanceRateBps)") }
        if !(0...100_000).contains(discountRateBps) { problems.append("discountRateBps must be 0-100000 (0-1000 % a year), got \(discountRateBps)") }
        if dayCountBasis != 360 && dayCountBasis != 365 { problems.append("dayCountBasis must be 360 or 365, got \(dayCountBasis)") }
        for (debtor, line) in creditLines.sorted(by: { $0.key < $1.key }) where line.value < 0 {
            problems.append("creditLines.\(debtor) must not be negative")
        }
        if let line = defaultCreditLine, line.value < 0 { problems.append("defaultCreditLine must not be negative") }
        for (supplier, limit) in supplierLimits.sorted(by: { $0.key < $1.key }) where limit.value < 0 {
            problems.append("supplierLimits.\(supplier) must not be negative")
        }
        if let limit = defaultSupplierLimit, limit.value < 0 { problems.append("defaultSupplierLimit must not be negative") }
        if !(1...10_000).contains(overdueShareTriggerBps) {
            problems.append("overdueShareTriggerBps must be 1-10000 (1 = any overdue amount), got \(overdueShareTriggerBps)")
        }
        if overdueGraceDays < 0 { problems.append("overdueGraceDays must be 0 or more, got \(overdueGraceDays)") }
        if maturityWarningBandDays < 0 { problems.append("maturityWarningBandDays must be 0 or more, got \(maturityWarningBandDays)") }
        return problems
    }

    /// The policy's digest: answers name the policy they were computed with.
    public func digest(suite: any CryptoSuite) -> Hash { suite.hash(canonicalBytes) }
}

extension EligibilityPolicy: CanonicalEncodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(UInt8(1))
        writer.write(bank); writer.write(currency); writer.write(minDaysToMaturity); writer.write(maxTenorDays)
        writer.write(advanceRateBps); writer.write(discountRateBps); writer.write(dayCountBasis)
        writer.write(UInt32(creditLines.count))
        for (debtor, line) in creditLines.sorted(by: { $0.key < $1.key }) { writer.write(debtor); writer.write(line) }
        writer.write(defaultCreditLine)
        writer.write(UInt32(supplierLimits.count))
        for (supplier, limit) in supplierLimits.sorted(by: { $0.key < $1.key }) { writer.write(supplier); writer.write(limit) }
        writer.write(defaultSupplierLimit)
        writer.write(excludeDebtorsWithOverdue); writer.write(overdueShareTriggerBps); writer.write(overdueGraceDays)
        writer.write(maturityWarningBandDays)
    }
}

/// Why a policy file cannot be used: every problem found, each a sentence.
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var problems: [String]
    public init(_ problems: [String]) { self.problems = problems }
    public var description: String { "the policy is not usable:\n  - " + problems.joined(separator: "\n  - ") }
}

extension EligibilityPolicy {
    /// The JSON form of a policy file, decoded by the caller (LedgerCore has no JSON parser; the
    /// CLI uses Foundation's). Amounts are strings in major units ("5000000.00") so a banker can
    /// read them and no float ever touches money. Every field is optional here so that `validated`
    /// can report all missing ones at once.
    public struct Document: Codable, Sendable {
        public var bank: String?
        public var currency: String?
        public var minDaysToMaturity: Int?
        public var maxTenorDays: Int?
        public var advanceRateBps: Int?
        public var discountRateBps: Int?
        public var dayCountBasis: Int?
        public var creditLines: [String: String]?
        public var defaultCreditLine: String?
        public var supplierLimits: [String: String]?
        public var defaultSupplierLimit: String?
        public var overdue: Overdue?
        public var maturityWarningBandDays: Int?
        public var comment: String?

        public init(bank: String? = nil, currency: String? = nil, minDaysToMaturity: Int? = nil, maxTenorDays: Int? = nil,
                    advanceRateBps: Int? = nil, discountRateBps: Int? = nil, dayCountBasis: Int? = nil,
                    creditLines: [String: String]? = nil, defaultCreditLine: String? = nil,
                    supplierLimits: [String: String]? = nil, defaultSupplierLimit: String? = nil,
                    overdue: Overdue? = nil, maturityWarningBandDays: Int? = nil) {
            self.bank = bank; self.currency = currency; self.minDaysToMaturity = minDaysToMaturity
            self.maxTenorDays = maxTenorDays; self.advanceRateBps = advanceRateBps; self.discountRateBps = discountRateBps
            self.dayCountBasis = dayCountBasis; self.creditLines = creditLines; self.defaultCreditLine = defaultCreditLine
            self.supplierLimits = supplierLimits; self.defaultSupplierLimit = defaultSupplierLimit; self.overdue = overdue
            self.maturityWarningBandDays = maturityWarningBandDays
        }

        public struct Overdue: Codable, Sendable {
            public var excludeDebtors: Bool?
            public var shareTriggerBps: Int?
            public var graceDays: Int?
            public init(excludeDebtors: Bool? = nil, shareTriggerBps: Int? = nil, graceDays: Int? = nil) {
                self.excludeDebtors = excludeDebtors; self.shareTriggerBps = shareTriggerBps; self.graceDays = graceDays
            }
        }
    }

    /// The top-level fields a policy file may have (anything else is a typo and is refused).
    public static let knownFields: Set<String> = [
        "bank", "currency", "minDaysToMaturity", "maxTenorDays", "advanceRateBps", "discountRateBps", "dayCountBasis",
        "creditLines", "defaultCreditLine", "supplierLimits", "defaultSupplierLimit", "overdue", "maturityWarningBandDays",
        "comment",
    ]

    /// Checks a decoded policy file. Throws `PolicyError` listing every problem (missing required
    /// fields, bad member ids or amounts, out-of-range rates), never a partial policy.
    public static func validated(_ file: Document) throws(PolicyError) -> EligibilityPolicy {
        var problems: [String] = []
        func required<T>(_ value: T?, _ name: String) -> T? {
            if value == nil { problems.append("missing field \"\(name)\"") }
            return value
        }
        let bank = required(file.bank, "bank").flatMap { text -> MemberID? in
            guard let id = MemberID(text) else { problems.append("bank \"\(text)\" is not a member id"); return nil }
            return id
        }
        let currency = required(file.currency, "currency").flatMap { text -> CurrencyCode? in
            guard let code = CurrencyCode(text) else { problems.append("currency \"\(text)\" is not an ISO 4217 code like \"CNY\""); return nil }
            return code
        }
        func amount(_ text: String, _ name: String) -> MinorUnits? {
            guard let currency else { return nil }
            guard let money = Money.parse(text, currency) else {
                problems.append("\(name) \"\(text)\" is not an amount in \(currency) (write it like \"5000000.00\")")
                return nil
            }
            return money.amount
        }
        func map(_ values: [String: String]?, _ name: String) -> [MemberID: MinorUnits] {
            var out: [MemberID: MinorUnits] = [:]
            for (key, text) in (values ?? [:]).sorted(by: { $0.key < $1.key }) {
                guard let id = MemberID(key) else { problems.append("\(name) has \"\(key)\", which is not a member id"); continue }
                if let value = amount(text, "\(name).\(key)") { out[id] = value }
            }
            return out
        }
        func int32(_ value: Int?, _ name: String, default fallback: Int32) -> Int32 {
            guard let value else { return fallback }
            guard let narrow = Int32(exactly: value) else { problems.append("\(name) \(value) is out of range"); return fallback }
            return narrow
        }
        let lines = map(file.creditLines, "creditLines")
        let limits = map(file.supplierLimits, "supplierLimits")
        let defaultLine = file.defaultCreditLine.flatMap { amount($0, "defaultCreditLine") }
        let defaultLimit = file.defaultSupplierLimit.flatMap { amount($0, "defaultSupplierLimit") }
        let minDays = int32(required(file.minDaysToMaturity, "minDaysToMaturity"), "minDaysToMaturity", default: 0)
        let maxTenor = int32(required(file.maxTenorDays, "maxTenorDays"), "maxTenorDays", default: 1)
        let advance = required(file.advanceRateBps, "advanceRateBps") ?? 1
        let discount = required(file.discountRateBps, "discountRateBps") ?? 0
        let basis = required(file.dayCountBasis, "dayCountBasis") ?? 360
        if file.creditLines == nil && file.defaultCreditLine == nil {
            problems.append("give creditLines (per debtor) or defaultCreditLine: without a line nothing can be financed")
        }
        let band = int32(file.maturityWarningBandDays, "maturityWarningBandDays", default: 0)
        let grace = int32(file.overdue?.graceDays, "overdue.graceDays", default: 0)
        guard problems.isEmpty, let bank, let currency else { throw PolicyError(problems) }
        let policy = EligibilityPolicy(
            bank: bank, currency: currency, minDaysToMaturity: minDays, maxTenorDays: maxTenor,
            advanceRateBps: Int64(advance), discountRateBps: Int64(discount), dayCountBasis: Int64(basis),
            creditLines: lines, defaultCreditLine: defaultLine, supplierLimits: limits, defaultSupplierLimit: defaultLimit,
            excludeDebtorsWithOverdue: file.overdue?.excludeDebtors ?? true,
            overdueShareTriggerBps: Int64(file.overdue?.shareTriggerBps ?? 1), overdueGraceDays: grace,
            maturityWarningBandDays: band)
        let checks = policy.problems
        guard checks.isEmpty else { throw PolicyError(checks) }
        return policy
    }
}
