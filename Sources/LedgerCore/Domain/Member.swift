/// A member's identifier on the ledger: 1-64 characters of `a-z`, `0-9`, `-`, `_` and `.`.
public struct MemberID: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String

    public init?(_ rawValue: String) {
        guard MemberID.isValid(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    /// For literals in tests and fixtures; traps on an invalid literal (a programmer error).
    public init(stringLiteral value: String) {
        precondition(MemberID.isValid(value), "invalid member id literal \(value)")
        rawValue = value
    }

    public static func isValid(_ text: String) -> Bool {
        let utf8 = text.utf8
        return (1...64).contains(utf8.count) && utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                || c == UInt8(ascii: "-") || c == UInt8(ascii: "_") || c == UInt8(ascii: ".")
        }
    }

    public var description: String { rawValue }
    public static func < (lhs: MemberID, rhs: MemberID) -> Bool { lhs.rawValue < rhs.rawValue }
}

extension MemberID: CanonicalCodable, Codable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(rawValue) }
    public init(from reader: inout CanonicalReader) throws {
        let text = try reader.readString()
        guard let id = MemberID(text) else { throw reader.error("\"\(text)\" is not a valid member id") }
        self = id
    }
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let id = MemberID(text) else {
            throw Swift.DecodingError.dataCorruptedError(in: container, debugDescription: "\"\(text)\" is not a member id (1-64 of a-z 0-9 - _ .)")
        }
        self = id
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// The 18-character unified social credit code (统一社会信用代码, GB 32100-2015) with its check
/// character validated: weights 3^i mod 31 over the first 17 characters of the 31-character
/// alphabet that omits I, O, Z, S and V.
public struct UnifiedSocialCreditCode: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    static let alphabet = Array("0123456789ABCDEFGHJKLMNPQRTUWXY".utf8)
    static let weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]

    public init?(_ text: String) {
        guard UnifiedSocialCreditCode.isValid(text) else { return nil }
        rawValue = text
    }

    public static func isValid(_ text: String) -> Bool {
        let chars = Array(text.utf8)
        guard chars.count == 18 else { return false }
        guard let check = checkCharacter(for: chars[0..<17]) else { return false }
        return chars[17] == check
    }

    /// The check character the first 17 characters call for, or nil if one is not in the alphabet.
    public static func checkCharacter(for first17: ArraySlice<UInt8>) -> UInt8? {
        var sum = 0
        for (index, char) in first17.enumerated() {
            guard let value = alphabet.firstIndex(of: char) else { return nil }
            sum += value * weights[index]
        }
        return alphabet[(31 - sum % 31) % 31]
    }

    public var description: String { rawValue }
}

extension UnifiedSocialCreditCode: CanonicalCodable, Codable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(rawValue) }
    public init(from reader: inout CanonicalReader) throws {
        let text = try reader.readString()
        guard let code = UnifiedSocialCreditCode(text) else { throw reader.error("\"\(text)\" is not a valid unified social credit code") }
        self = code
    }
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let code = UnifiedSocialCreditCode(text) else {
            throw Swift.DecodingError.dataCorruptedError(in: container, debugDescription: "\"\(text)\" is not a valid unified social credit code (18 characters, check character last)")
        }
        self = code
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// What a member may do. A member can hold several roles (a bank that also verifies invoices).
public struct Roles: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let coreEnterprise = Roles(rawValue: 1 << 0)
    public static let supplier = Roles(rawValue: 1 << 1)
    public static let bank = Roles(rawValue: 1 << 2)
    public static let operator_ = Roles(rawValue: 1 << 3)
    public static let regulator = Roles(rawValue: 1 << 4)
    /// May attest invoices (checked against the tax authority's service).
    public static let invoiceVerifier = Roles(rawValue: 1 << 5)

    public static let named: [(String, Roles)] = [
        ("core-enterprise", .coreEnterprise), ("supplier", .supplier), ("bank", .bank),
        ("operator", .operator_), ("regulator", .regulator), ("invoice-verifier", .invoiceVerifier),
    ]

    public var names: [String] { Roles.named.filter { contains($0.1) }.map(\.0) }
    public var description: String { names.joined(separator: ",") }

    public init?(names: [String]) {
        var roles = Roles()
        for name in names {
            guard let match = Roles.named.first(where: { $0.0 == name }) else { return nil }
            roles.insert(match.1)
        }
        self = roles
    }
}

extension Roles: CanonicalCodable, Codable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(rawValue) }
    public init(from reader: inout CanonicalReader) throws {
        let raw = try reader.readUInt16()
        guard raw & ~0x3f == 0 else { throw reader.error("unknown role bits \(raw)") }
        self.init(rawValue: raw)
    }
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let names = try container.decode([String].self)
        guard let roles = Roles(names: names) else {
            throw Swift.DecodingError.dataCorruptedError(in: container, debugDescription: "roles must be from: \(Roles.named.map(\.0).joined(separator: ", "))")
        }
        self = roles
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(names)
    }
}

public enum MemberStatus: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case active = 1
    case suspended = 2
    case blacklisted = 3
    public var description: String {
        switch self {
        case .active: "active"
        case .suspended: "suspended"
        case .blacklisted: "blacklisted"
        }
    }
}

/// A consortium member: an institution with a key that signs its transactions.
public struct Member: Hashable, Sendable, Codable {
    public var id: MemberID
    public var legalName: String
    public var creditCode: UnifiedSocialCreditCode
    public var roles: Roles
    public var publicKey: PublicKey
    public var status: MemberStatus

    public init(id: MemberID, legalName: String, creditCode: UnifiedSocialCreditCode, roles: Roles,
                publicKey: PublicKey, status: MemberStatus = .active) {
        self.id = id
        self.legalName = legalName
        self.creditCode = creditCode
        self.roles = roles
        self.publicKey = publicKey
        self.status = status
    }

    public var isActive: Bool { status == .active }
}

extension Member: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(id)
        writer.write(legalName)
        writer.write(creditCode)
        writer.write(roles)
        writer.write(publicKey)
        writer.write(status.rawValue)
    }
    public init(from reader: inout CanonicalReader) throws {
        id = try reader.read()
        legalName = try reader.readString()
        creditCode = try reader.read()
        roles = try reader.read()
        publicKey = try reader.read()
        let raw = try reader.readUInt8()
        guard let status = MemberStatus(rawValue: raw) else { throw reader.error("unknown member status \(raw)") }
        self.status = status
    }
}
