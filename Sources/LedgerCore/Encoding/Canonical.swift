/// Canonical binary encoding.
///
/// Every value that is hashed, signed or sent has exactly one byte representation:
/// fixed-width big-endian integers, `UInt32`-length-prefixed byte strings and UTF-8 strings,
/// `UInt32`-count-prefixed arrays in the order the caller gives (callers sort where order is not
/// meaningful), a one-byte tag for enum cases and optionals. There are no maps, no floats and no
/// optional padding, so two encoders can never disagree. Decoding is strict: trailing bytes,
/// unknown tags, over-long lengths and invalid UTF-8 are errors, never guesses.
public struct CanonicalWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func write(_ value: UInt8) { bytes.append(value) }
    public mutating func write(_ value: Bool) { bytes.append(value ? 1 : 0) }
    public mutating func write(_ value: UInt16) { appendBigEndian(value) }
    public mutating func write(_ value: UInt32) { appendBigEndian(value) }
    public mutating func write(_ value: UInt64) { appendBigEndian(value) }
    public mutating func write(_ value: Int64) { appendBigEndian(UInt64(bitPattern: value)) }
    public mutating func write(_ value: Int32) { appendBigEndian(UInt32(bitPattern: value)) }

    /// Length-prefixed bytes.
    public mutating func write(bytes value: some Collection<UInt8>) {
        write(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    /// Raw bytes with no length prefix (fixed-size fields such as hashes).
    public mutating func write(raw value: some Collection<UInt8>) {
        bytes.append(contentsOf: value)
    }

    public mutating func write(_ value: String) {
        // The same bytes as `write(bytes: Array(value.utf8))`, without the temporary array.
        var value = value
        value.withUTF8 { utf8 in
            write(UInt32(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    public mutating func write<T: CanonicalEncodable>(_ value: T) {
        value.encode(to: &self)
    }

    public mutating func write<T: CanonicalEncodable>(_ value: T?) {
        if let value {
            write(UInt8(1))
            value.encode(to: &self)
        } else {
            write(UInt8(0))
        }
    }

    public mutating func write<T: CanonicalEncodable>(_ values: [T]) {
        write(UInt32(values.count))
        for value in values { value.encode(to: &self) }
    }

    public mutating func write(_ values: [String]) {
        write(UInt32(values.count))
        for value in values { write(value) }
    }

    private mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }
}

/// Why a byte string is not a canonical encoding of the expected value.
public struct CanonicalDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public init(_ message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }
    public var description: String { "malformed encoding at byte \(offset): \(message)" }
}

/// A strict reader over canonical bytes. Limits bound every allocation a hostile input could ask for.
public struct CanonicalReader: Sendable {
    public let bytes: [UInt8]
    public private(set) var offset: Int
    /// Largest length prefix accepted for one byte string.
    public var maxBytesLength = 16 << 20
    /// Largest element count accepted for one array.
    public var maxArrayCount = 1 << 20

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.offset = 0
    }

    public var isAtEnd: Bool { offset == bytes.count }
    public var remaining: Int { bytes.count - offset }

    public func error(_ message: String) -> CanonicalDecodingError { CanonicalDecodingError(message, offset: offset) }

    public mutating func readUInt8() throws -> UInt8 {
        guard offset < bytes.count else { throw error("unexpected end of input") }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readBool() throws -> Bool {
        switch try readUInt8() {
        case 0: return false
        case 1: return true
        default: throw error("boolean must be 0 or 1")
        }
    }

    public mutating func readUInt16() throws -> UInt16 { try readBigEndian() }
    public mutating func readUInt32() throws -> UInt32 { try readBigEndian() }
    public mutating func readUInt64() throws -> UInt64 { try readBigEndian() }
    public mutating func readInt64() throws -> Int64 { Int64(bitPattern: try readBigEndian()) }
    public mutating func readInt32() throws -> Int32 { Int32(bitPattern: try readBigEndian()) }

    public mutating func readRaw(count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else { throw error("needs \(count) bytes, \(remaining) left") }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }

    public mutating func readBytes() throws -> [UInt8] {
        let count = Int(try readUInt32())
        guard count <= maxBytesLength else { throw error("byte string of \(count) bytes exceeds the limit") }
        return Array(try readRaw(count: count))
    }

    public mutating func readString() throws -> String {
        let raw = try readBytes()
        guard let string = String(validating: raw, as: UTF8.self) else { throw error("invalid UTF-8") }
        return string
    }

    public mutating func read<T: CanonicalDecodable>(_ type: T.Type = T.self) throws -> T {
        try T(from: &self)
    }

    public mutating func readOptional<T: CanonicalDecodable>(_ type: T.Type = T.self) throws -> T? {
        switch try readUInt8() {
        case 0: return nil
        case 1: return try T(from: &self)
        default: throw error("optional tag must be 0 or 1")
        }
    }

    public mutating func readArray<T: CanonicalDecodable>(_ type: T.Type = T.self) throws -> [T] {
        let count = try readCount()
        var values: [T] = []
        values.reserveCapacity(Swift.min(count, 1024))
        for _ in 0..<count { values.append(try T(from: &self)) }
        return values
    }

    public mutating func readStrings() throws -> [String] {
        let count = try readCount()
        var values: [String] = []
        for _ in 0..<count { values.append(try readString()) }
        return values
    }

    public mutating func readCount() throws -> Int {
        let count = Int(try readUInt32())
        guard count <= maxArrayCount, count <= remaining else {
            throw error("array of \(count) elements cannot fit in \(remaining) remaining bytes")
        }
        return count
    }

    public func expectEnd() throws {
        guard isAtEnd else { throw error("\(remaining) trailing bytes") }
    }

    private mutating func readBigEndian<T: FixedWidthInteger>() throws -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw error("unexpected end of input") }
        var value: T = 0
        for index in offset..<(offset + size) { value = (value << 8) | T(bytes[index]) }
        offset += size
        return value
    }
}

public protocol CanonicalEncodable {
    func encode(to writer: inout CanonicalWriter)
}

public protocol CanonicalDecodable {
    init(from reader: inout CanonicalReader) throws
}

public typealias CanonicalCodable = CanonicalEncodable & CanonicalDecodable

extension CanonicalEncodable {
    /// The canonical bytes of this value.
    public var canonicalBytes: [UInt8] {
        var writer = CanonicalWriter()
        encode(to: &writer)
        return writer.bytes
    }
}

extension CanonicalDecodable {
    /// Decodes a whole byte string; trailing bytes are an error.
    public init(canonicalBytes: [UInt8]) throws {
        var reader = CanonicalReader(canonicalBytes)
        self = try Self(from: &reader)
        try reader.expectEnd()
    }
}

extension String: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(self) }
    public init(from reader: inout CanonicalReader) throws { self = try reader.readString() }
}

extension UInt64: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(self) }
    public init(from reader: inout CanonicalReader) throws { self = try reader.readUInt64() }
}

extension UInt32: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(self) }
    public init(from reader: inout CanonicalReader) throws { self = try reader.readUInt32() }
}
