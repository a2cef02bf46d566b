/// An invoice's identity: the invoice code (发票代码; empty for fully digital invoices) and number
/// (发票号码). ASCII letters and digits only, so two byte strings can never name one invoice.
public struct InvoiceKey: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public var code: String
    public var number: String

    public init?(code: String = "", number: String) {
        guard InvoiceKey.isField(code, allowEmpty: true), InvoiceKey.isField(number, allowEmpty: false) else { return nil }
        self.code = code
        self.number = number
    }

    static func isField(_ text: String, allowEmpty: Bool) -> Bool {
        (allowEmpty || !text.isEmpty) && text.utf8.count <= 32
            && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) }
    }

    /// "code/number", or just the number when there is no code.
    public var description: String { code.isEmpty ? number : "\(code)/\(number)" }

    public init?(text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: self.init(number: String(parts[0]))
        case 2: self.init(code: String(parts[0]), number: String(parts[1]))
        default: return nil
        }
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.code, lhs.number) < (rhs.code, rhs.number) }
}

extension InvoiceKey: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(code); writer.write(number) }
    public init(from reader: inout CanonicalReader) throws {
        let code = try reader.readString(), number = try reader.readString()
        guard let key = InvoiceKey(code: code, number: number) else { throw reader.error("invalid invoice code or number") }
        self = key
    }
}

public enum InvoiceType: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// 增值税专用发票
    case vatSpecial = 1
    /// 增值税普通发票
    case vatOrdinary = 2
    /// 全面数字化的电子发票
    case digital = 3
    case other = 4
    public var description: String {
        switch self {
        case .vatSpecial: "vat-special"
        case .vatOrdinary: "vat-ordinary"
        case .digital: "digital"
        case .other: "other"
        }
    }
}

/// A commercial invoice behind a receivable.
public struct Invoice: Hashable, Sendable, Codable {
    public var key: InvoiceKey
    public var type: InvoiceType
    public var issueDate: BusinessDate
    public var sellerTaxID: UnifiedSocialCreditCode
    public var buyerTaxID: UnifiedSocialCreditCode
    public var amountExcludingTax: Money
    public var amountIncludingTax: Money
    /// Hash of the invoice document (PDF/OFD) kept off the ledger.
    public var documentHash: Hash

    public init(key: InvoiceKey, type: InvoiceType, issueDate: BusinessDate, sellerTaxID: UnifiedSocialCreditCode,
                buyerTaxID: UnifiedSocialCreditCode, amountExcludingTax: Money, amountIncludingTax: Money, documentHash: Hash) {
        self.key = key
        self.type = type
        self.issueDate = issueDate
        self.sellerTaxID = sellerTaxID
        self.buyerTaxID = buyerTaxID
        self.amountExcludingTax = amountExcludingTax
        self.amountIncludingTax = amountIncludingTax
        self.documentHash = documentHash
    }
}

extension Invoice: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(key); writer.write(type.rawValue); writer.write(issueDate); writer.write(sellerTaxID)
        writer.write(buyerTaxID); writer.write(amountExcludingTax); writer.write(amountIncludingTax); writer.write(documentHash)
    }
    public init(from reader: inout CanonicalReader) throws {
        key = try reader.read()
        let raw = try reader.readUInt8()
        guard let type = InvoiceType(rawValue: raw) else { throw reader.error("unknown invoice type \(raw)") }
        self.type = type
        issueDate = try reader.read(); sellerTaxID = try reader.read(); buyerTaxID = try reader.read()
        amountExcludingTax = try reader.read(); amountIncludingTax = try reader.read(); documentHash = try reader.read()
    }
}

public enum InvoiceStatus: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case normal = 1
    /// 作废
    case voided = 2
    /// 红冲 (reversed by a red-letter invoice)
    case redReversed = 3
    public var description: String {
        switch self {
        case .normal: "normal"
        case .voided: "voided"
        case .redReversed: "red-reversed"
        }
    }
}

/// A member's statement that it checked an invoice, and what it found.
public struct InvoiceAttestation: Hashable, Sendable, Codable, CanonicalCodable {
    public enum Source: UInt8, Sendable, Codable {
        /// The debtor confirmed the receivable the invoice backs.
        case debtorConfirmation = 1
        /// A member with the invoice-verifier role checked it (e.g. against the tax authority).
        case verifier = 2
    }
    public var attester: MemberID
    public var source: Source
    public var status: InvoiceStatus
    public var evidenceHash: Hash?
    public var transaction: Hash
    public var height: Height

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(attester); writer.write(source.rawValue); writer.write(status.rawValue)
        writer.write(evidenceHash); writer.write(transaction); writer.write(height)
    }
    public init(attester: MemberID, source: Source, status: InvoiceStatus, evidenceHash: Hash?, transaction: Hash, height: Height) {
        self.attester = attester; self.source = source; self.status = status
        self.evidenceHash = evidenceHash; self.transaction = transaction; self.height = height
    }
    public init(from reader: inout CanonicalReader) throws {
        attester = try reader.read()
        guard let source = Source(rawValue: try reader.readUInt8()) else { throw reader.error("unknown attestation source") }
        self.source = source
        guard let status = InvoiceStatus(rawValue: try reader.readUInt8()) else { throw reader.error("unknown invoice status") }
        self.status = status
        evidenceHash = try reader.readOptional(); transaction = try reader.read(); height = try reader.read()
    }
}

/// An invoice on the ledger: the invoice, the root it is bound to, its status and attestations.
public struct InvoiceRecord: Hashable, Sendable, Codable {
    public var invoice: Invoice
    /// The root this invoice backs; nil once released (rejected or withdrawn proposal) or replaced.
    public var boundRoot: ReceivableID?
    public var status: InvoiceStatus
    public var attestations: [InvoiceAttestation]
    /// Set when the holder replaced this invoice on its root with another one.
    public var replacedBy: InvoiceKey?
}

extension InvoiceRecord: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(invoice); writer.write(boundRoot); writer.write(status.rawValue)
        writer.write(attestations); writer.write(replacedBy)
    }
    public init(from reader: inout CanonicalReader) throws {
        invoice = try reader.read(); boundRoot = try reader.readOptional()
        guard let status = InvoiceStatus(rawValue: try reader.readUInt8()) else { throw reader.error("unknown invoice status") }
        self.status = status
        attestations = try reader.readArray(); replacedBy = try reader.readOptional()
    }
}
