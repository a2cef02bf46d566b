/// A 32-byte digest from the chain's crypto suite (SHA-256 or SM3).
///
/// Stored as four big-endian words so equality and hashing are cheap; `bytes` gives the digest
/// in its usual byte order and `description` in lowercase hex.
public struct Hash: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    public static let zero = Hash(w0: 0, w1: 0, w2: 0, w3: 0)
    public static let byteCount = 32

    public init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        self.w0 = w0; self.w1 = w1; self.w2 = w2; self.w3 = w3
    }

    /// Wraps exactly 32 bytes: four word loads. Other modules get this for byte arrays and raw
    /// buffers, where the generic form below would run unspecialized, byte by byte through the
    /// iterator's witness table (a sixth of a start-up check's samples once).
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count == 32 else { return nil }
        self.init(w0: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                  w1: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                  w2: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
                  w3: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self)))
    }

    /// Wraps exactly 32 bytes.
    public init?(bytes: [UInt8]) {
        guard let hash = bytes.withUnsafeBytes({ Hash(bytes: $0) }) else { return nil }
        self = hash
    }

    /// Wraps exactly 32 bytes.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0
        for (index, byte) in bytes.enumerated() {
            switch index >> 3 {
            case 0: w0 = (w0 << 8) | UInt64(byte)
            case 1: w1 = (w1 << 8) | UInt64(byte)
            case 2: w2 = (w2 << 8) | UInt64(byte)
            default: w3 = (w3 << 8) | UInt64(byte)
            }
        }
        self.init(w0: w0, w1: w1, w2: w2, w3: w3)
    }

    /// Parses 64 hex characters.
    public init?(hex: String) {
        guard let bytes = [UInt8](hex: hex) else { return nil }
        self.init(bytes: bytes)
    }

    public var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            raw.storeBytes(of: w0.bigEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: w1.bigEndian, toByteOffset: 8, as: UInt64.self)
            raw.storeBytes(of: w2.bigEndian, toByteOffset: 16, as: UInt64.self)
            raw.storeBytes(of: w3.bigEndian, toByteOffset: 24, as: UInt64.self)
            count = 32
        }
    }

    public var hex: String { bytes.hexString }
    public var description: String { hex }
    /// The first 8 hex characters, for tables and logs.
    public var short: String { String(hex.prefix(12)) }

    public static func < (lhs: Hash, rhs: Hash) -> Bool {
        (lhs.w0, lhs.w1, lhs.w2, lhs.w3) < (rhs.w0, rhs.w1, rhs.w2, rhs.w3)
    }

    /// Feeds the hasher the first word only. A digest's bits are already uniform, so 64 of them
    /// spread dictionary keys as well as 256 do, and the hasher stays seeded per process, so a
    /// client grinding transaction ids still cannot aim at a bucket. Equality still compares all
    /// four words. A node hashes these keys millions of times a second (the state cache, a
    /// block's changes, signature memos); one word instead of four made a lookup in a
    /// 1,000-entry dictionary take 33 ns instead of 45 (DECISIONS 55).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(w0)
    }
}

extension Hash: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(w0); writer.write(w1); writer.write(w2); writer.write(w3)
    }
    public init(from reader: inout CanonicalReader) throws {
        self.init(w0: try reader.readUInt64(), w1: try reader.readUInt64(),
                  w2: try reader.readUInt64(), w3: try reader.readUInt64())
    }
}

extension Hash: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let hash = Hash(hex: text) else {
            throw Swift.DecodingError.dataCorruptedError(in: container, debugDescription: "expected 64 hex characters, got \"\(text)\"")
        }
        self = hash
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

extension Array where Element == UInt8 {
    /// Parses an even-length hex string (upper or lower case); nil on anything else.
    public init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = hexValue(utf8[index]), let low = hexValue(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        self = out
    }
}

private let hexDigits = Array("0123456789abcdef".utf8)

extension Collection where Element == UInt8 {
    public var hexString: String {
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        appendHex(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the lowercase hex digits of these bytes to `out` as UTF-8 (no String built).
    public func appendHex(to out: inout [UInt8]) {
        for byte in self {
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0x0f)])
        }
    }
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}
