/// A block height. Genesis is height 0; the first block is 1.
public struct Height: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByIntegerLiteral, Codable, CanonicalCodable {
    public var value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public init(integerLiteral value: UInt64) { self.value = value }
    public static let genesis = Height(0)
    public var next: Height { Height(value + 1) }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }
    public var description: String { String(value) }
    public func encode(to writer: inout CanonicalWriter) { writer.write(value) }
    public init(from reader: inout CanonicalReader) throws { value = try reader.readUInt64() }
    public init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(UInt64.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// A PBFT view number. The primary of view v is validator v mod n.
public struct View: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByIntegerLiteral, Codable, CanonicalCodable {
    public var value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public init(integerLiteral value: UInt64) { self.value = value }
    public var next: View { View(value + 1) }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }
    public var description: String { String(value) }
    public func encode(to writer: inout CanonicalWriter) { writer.write(value) }
    public init(from reader: inout CanonicalReader) throws { value = try reader.readUInt64() }
    public init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(UInt64.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// A validator's position in the genesis validator list (0-based).
public struct ValidatorIndex: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByIntegerLiteral, Codable, CanonicalCodable {
    public var value: UInt16
    public init(_ value: UInt16) { self.value = value }
    public init(integerLiteral value: UInt16) { self.value = value }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }
    public var description: String { "v\(value)" }
    public func encode(to writer: inout CanonicalWriter) { writer.write(value) }
    public init(from reader: inout CanonicalReader) throws { value = try reader.readUInt16() }
    public init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(UInt16.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}
