/// A receivable root's id: the id of the transaction that proposed or issued it.
public struct ReceivableID: Hashable, Sendable, Comparable, CustomStringConvertible, Codable, CanonicalCodable {
    public var hash: Hash
    public init(_ hash: Hash) { self.hash = hash }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.hash < rhs.hash }
    public var description: String { hash.hex }
    public func encode(to writer: inout CanonicalWriter) { writer.write(hash) }
    public init(from reader: inout CanonicalReader) throws { hash = try reader.read() }
    public init(from decoder: any Decoder) throws { hash = try Hash(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try hash.encode(to: encoder) }
}

/// A fragment's id, derived from its parent (or root) and its position, so every node derives the same id.
public struct FragmentID: Hashable, Sendable, Comparable, CustomStringConvertible, Codable, CanonicalCodable {
    public var hash: Hash
    public init(_ hash: Hash) { self.hash = hash }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.hash < rhs.hash }
    public var description: String { hash.hex }
    public func encode(to writer: inout CanonicalWriter) { writer.write(hash) }
    public init(from reader: inout CanonicalReader) throws { hash = try reader.read() }
    public init(from decoder: any Decoder) throws { hash = try Hash(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try hash.encode(to: encoder) }

    /// The first fragment of a root, created when the receivable becomes active.
    public static func initial(of root: ReceivableID, suite: any CryptoSuite) -> FragmentID {
        derive(tag: 0, parent: root.hash, index: 0, suite: suite)
    }

    /// Child `index` of a fragment closed by a transfer (0 = transferred part, 1 = remainder).
    public static func child(of parent: FragmentID, index: UInt8, suite: any CryptoSuite) -> FragmentID {
        derive(tag: 1, parent: parent.hash, index: index, suite: suite)
    }

    private static func derive(tag: UInt8, parent: Hash, index: UInt8, suite: any CryptoSuite) -> FragmentID {
        var writer = CanonicalWriter(capacity: 48)
        writer.write(raw: Array("SCF-FRAGMENT".utf8))
        writer.write(tag)
        writer.write(parent)
        writer.write(index)
        return FragmentID(suite.hash(writer.bytes))
    }
}

/// Whether a financier can claim against the original creditor if the debtor does not pay.
public enum Recourse: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case withRecourse = 1
    case withoutRecourse = 2
    public var description: String { self == .withRecourse ? "with-recourse" : "without-recourse" }
}

/// The terms of a receivable as proposed by a supplier or issued by a debtor.
public struct ReceivableTerms: Hashable, Sendable, Codable {
    public var debtor: MemberID
    public var creditor: MemberID
    public var face: Money
    public var issueDate: BusinessDate
    public var maturity: BusinessDate
    public var invoices: [Invoice]
    public var documentHashes: [Hash]
    public var recourse: Recourse

    public init(debtor: MemberID, creditor: MemberID, face: Money, issueDate: BusinessDate, maturity: BusinessDate,
                invoices: [Invoice], documentHashes: [Hash] = [], recourse: Recourse = .withRecourse) {
        self.debtor = debtor
        self.creditor = creditor
        self.face = face
        self.issueDate = issueDate
        self.maturity = maturity
        self.invoices = invoices
        self.documentHashes = documentHashes
        self.recourse = recourse
    }
}

extension ReceivableTerms: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(debtor); writer.write(creditor); writer.write(face)
        writer.write(issueDate); writer.write(maturity); writer.write(invoices)
        writer.write(documentHashes); writer.write(recourse.rawValue)
    }
    public init(from reader: inout CanonicalReader) throws {
        debtor = try reader.read(); creditor = try reader.read(); face = try reader.read()
        issueDate = try reader.read(); maturity = try reader.read(); invoices = try reader.readArray()
        documentHashes = try reader.readArray()
        let raw = try reader.readUInt8()
        guard let recourse = Recourse(rawValue: raw) else { throw reader.error("unknown recourse \(raw)") }
        self.recourse = recourse
    }
}

public enum RootStatus: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Proposed by the creditor, waiting for the debtor's confirmation.
    case proposed = 1
    /// Issued by the debtor, waiting for the creditor's acceptance.
    case issued = 2
    /// Confirmed by the debtor and live: its fragments can move, be financed and be settled.
    case active = 3
    case rejected = 4
    case withdrawn = 5
    /// Every fragment settled or written off.
    case closed = 6

    public var description: String {
        switch self {
        case .proposed: "proposed"
        case .issued: "issued"
        case .active: "active"
        case .rejected: "rejected"
        case .withdrawn: "withdrawn"
        case .closed: "closed"
        }
    }
}

/// The immutable heart of a receivable plus its running totals. Terms never change once active;
/// fragments inherit them by reference to the root.
public struct ReceivableRoot: Hashable, Sendable, Codable {
    public var id: ReceivableID
    public var terms: ReceivableTerms
    public var status: RootStatus
    /// Who created it (the creditor for a proposal, the debtor for an issue).
    public var initiator: MemberID
    /// The debtor's own signed transaction that made it binding (confirm, or issue).
    public var confirmationTx: Hash?
    public var settled: MinorUnits
    public var writtenOff: MinorUnits
    /// Fragments that are not closed, sorted by id.
    public var liveFragments: [FragmentID]
    /// Invoice keys currently bound to this root (replacements update it).
    public var invoiceKeys: [InvoiceKey]

    public var debtor: MemberID { terms.debtor }
    public var currency: CurrencyCode { terms.face.currency }
}

extension ReceivableRoot: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(id); writer.write(terms); writer.write(status.rawValue); writer.write(initiator)
        writer.write(confirmationTx); writer.write(settled); writer.write(writtenOff)
        writer.write(liveFragments); writer.write(invoiceKeys)
    }
    public init(from reader: inout CanonicalReader) throws {
        id = try reader.read(); terms = try reader.read()
        let raw = try reader.readUInt8()
        guard let status = RootStatus(rawValue: raw) else { throw reader.error("unknown root status \(raw)") }
        self.status = status
        initiator = try reader.read(); confirmationTx = try reader.readOptional()
        settled = try reader.read(); writtenOff = try reader.read()
        liveFragments = try reader.readArray(); invoiceKeys = try reader.readArray()
    }
}

public enum FragmentState: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Held and free to transfer, split or finance.
    case active = 1
    /// A financing request is pending: it cannot move until the bank decides.
    case locked = 2
    /// Financed: the bank holds it and it cannot move.
    case financed = 3
    /// Closed by a whole transfer; its child carries on.
    case transferred = 4
    /// Closed by a split; its two children carry on.
    case split = 5
    case settled = 6
    case writtenOff = 7

    public var isLive: Bool { self == .active || self == .locked || self == .financed }
    public var description: String {
        switch self {
        case .active: "active"
        case .locked: "locked"
        case .financed: "financed"
        case .transferred: "transferred"
        case .split: "split"
        case .settled: "settled"
        case .writtenOff: "written-off"
        }
    }
}

/// A piece of a receivable held by one member. Splits close the parent and create two children.
public struct Fragment: Hashable, Sendable, Codable {
    public var id: FragmentID
    public var root: ReceivableID
    public var parent: FragmentID?
    public var generation: UInt32
    public var holder: MemberID
    /// The amount when the fragment was created.
    public var amount: MinorUnits
    /// What is still owed on it: amount less partial settlements.
    public var outstanding: MinorUnits
    public var state: FragmentState
    /// Frozen by an operator or regulator (a court order, a dispute); orthogonal to `state`.
    public var frozen: Bool
    /// The pending financing request that locks it, or the approved one that financed it.
    public var financingRequest: Hash?
    /// The transaction that created it.
    public var createdBy: Hash
}

extension Fragment: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(id); writer.write(root); writer.write(parent); writer.write(generation)
        writer.write(holder); writer.write(amount); writer.write(outstanding); writer.write(state.rawValue)
        writer.write(frozen); writer.write(financingRequest); writer.write(createdBy)
    }
    public init(from reader: inout CanonicalReader) throws {
        id = try reader.read(); root = try reader.read(); parent = try reader.readOptional()
        generation = try reader.readUInt32(); holder = try reader.read(); amount = try reader.read()
        outstanding = try reader.read()
        let raw = try reader.readUInt8()
        guard let state = FragmentState(rawValue: raw) else { throw reader.error("unknown fragment state \(raw)") }
        self.state = state
        frozen = try reader.readBool(); financingRequest = try reader.readOptional(); createdBy = try reader.read()
    }
}

public enum FinancingStatus: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case pending = 1, approved = 2, rejected = 3, lapsed = 4
    public var description: String {
        switch self {
        case .pending: "pending"
        case .approved: "approved"
        case .rejected: "rejected"
        case .lapsed: "lapsed"
        }
    }
}

/// A holder's request that a bank finance a fragment, and the bank's decision.
public struct FinancingRequest: Hashable, Sendable, Codable {
    /// The id of the request transaction.
    public var id: Hash
    public var fragment: FragmentID
    public var root: ReceivableID
    public var applicant: MemberID
    public var bank: MemberID
    public var requested: Money
    public var status: FinancingStatus
    /// The amount the bank advances, set on approval.
    public var advance: MinorUnits?
    public var decisionTx: Hash?
    public var reason: String?
}

extension FinancingRequest: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(id); writer.write(fragment); writer.write(root); writer.write(applicant); writer.write(bank)
        writer.write(requested); writer.write(status.rawValue); writer.write(advance); writer.write(decisionTx); writer.write(reason)
    }
    public init(from reader: inout CanonicalReader) throws {
        id = try reader.read(); fragment = try reader.read(); root = try reader.read()
        applicant = try reader.read(); bank = try reader.read(); requested = try reader.read()
        let raw = try reader.readUInt8()
        guard let status = FinancingStatus(rawValue: raw) else { throw reader.error("unknown financing status \(raw)") }
        self.status = status
        advance = try reader.readOptional(); decisionTx = try reader.readOptional(); reason = try reader.readOptional()
    }
}
