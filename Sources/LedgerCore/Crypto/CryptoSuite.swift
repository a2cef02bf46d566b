/// The signature and hash algorithms of a chain, chosen once in genesis.
public enum CryptoSuiteID: String, Sendable, CaseIterable, Codable, CustomStringConvertible {
    /// Ed25519 signatures (RFC 8032) and SHA-256, from swift-crypto. The default.
    case ed25519SHA256 = "ed25519-sha256"
    /// SM2 signatures (GB/T 32918) and SM3 hashing (GB/T 32905), the Chinese national suite.
    case sm2SM3 = "sm2-sm3"

    public var description: String { rawValue }
    public var code: UInt8 {
        switch self {
        case .ed25519SHA256: 1
        case .sm2SM3: 2
        }
    }
    public init?(code: UInt8) {
        guard let match = Self.allCases.first(where: { $0.code == code }) else { return nil }
        self = match
    }
}

/// A public key in its suite's raw representation (32 bytes for Ed25519, 65-byte uncompressed
/// point for SM2). Tagged with the suite, so a key of one suite is never checked with another.
public struct PublicKey: Hashable, Sendable, CustomStringConvertible {
    public var suite: CryptoSuiteID
    public var rawRepresentation: [UInt8]
    public init(suite: CryptoSuiteID, rawRepresentation: [UInt8]) {
        self.suite = suite
        self.rawRepresentation = rawRepresentation
    }
    public var description: String { "\(suite):\(rawRepresentation.hexString)" }
}

extension PublicKey: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(suite.code)
        writer.write(bytes: rawRepresentation)
    }
    public init(from reader: inout CanonicalReader) throws {
        let code = try reader.readUInt8()
        guard let suite = CryptoSuiteID(code: code) else { throw reader.error("unknown crypto suite code \(code)") }
        self.init(suite: suite, rawRepresentation: try reader.readBytes())
    }
}

extension PublicKey: Codable {
    /// JSON form: `"ed25519-sha256:<hex>"`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let key = PublicKey(text: text) else {
            throw Swift.DecodingError.dataCorruptedError(in: container, debugDescription: "expected \"<suite>:<hex>\", got \"\(text)\"")
        }
        self = key
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
    public init?(text: String) {
        let parts = text.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let suite = CryptoSuiteID(rawValue: String(parts[0])),
              let raw = [UInt8](hex: String(parts[1])) else { return nil }
        self.init(suite: suite, rawRepresentation: raw)
    }
}

/// A signature: an attachment to canonical bytes, never part of what is hashed.
public struct Signature: Hashable, Sendable, CustomStringConvertible {
    public var rawRepresentation: [UInt8]
    public init(rawRepresentation: [UInt8]) { self.rawRepresentation = rawRepresentation }
    public var description: String { rawRepresentation.hexString }
}

extension Signature: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(bytes: rawRepresentation) }
    public init(from reader: inout CanonicalReader) throws {
        let raw = try reader.readBytes()
        guard raw.count <= 256 else { throw reader.error("signature of \(raw.count) bytes is too long") }
        self.init(rawRepresentation: raw)
    }
}

/// Secret key material. Its description never shows the bytes, so it cannot leak into a log.
public struct PrivateKey: Sendable, CustomStringConvertible {
    public var suite: CryptoSuiteID
    public var rawRepresentation: [UInt8]
    public init(suite: CryptoSuiteID, rawRepresentation: [UInt8]) {
        self.suite = suite
        self.rawRepresentation = rawRepresentation
    }
    public var description: String { "PrivateKey(\(suite), redacted)" }
}

/// A parsed private key ready to sign many messages.
public protocol SigningKey: Sendable {
    var publicKey: PublicKey { get }
    func signature(for message: [UInt8]) throws -> Signature
}

/// One signature scheme and one hash function, behind which the rest of the ledger is generic.
public protocol CryptoSuite: Sendable {
    var id: CryptoSuiteID { get }
    /// The suite's 256-bit hash of `data`.
    func hash(_ data: [UInt8]) -> Hash
    /// A private key derived from 32 bytes of secret seed material (the caller supplies the randomness).
    func privateKey(seed: [UInt8]) throws -> PrivateKey
    /// Parses a private key for signing.
    func signingKey(_ privateKey: PrivateKey) throws -> any SigningKey
    /// Whether `signature` is valid for `message` under `publicKey`. Never throws on bad input.
    func isValidSignature(_ signature: Signature, for message: [UInt8], publicKey: PublicKey) -> Bool
    /// Whether `key` parses as a public key of this suite.
    func isValidPublicKey(_ key: PublicKey) -> Bool
}

/// Errors from the crypto layer, with a sentence that says what to do.
public struct CryptoError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable { case invalidKey, wrongSuite, signingFailed, unsupportedSuite, library }
    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code.rawValue): \(message)" }
}

/// What a signature is over. Each kind of signed object has its own tag, so a signature on a
/// transaction can never be replayed as a consensus vote or a certificate signature.
public enum SigningDomain: UInt8, Sendable {
    case transaction = 1
    case consensusMessage = 2
    case commitVote = 3
    case checkpoint = 4
    /// A validator's seal over its own ledger file at a clean stop (`LedgerSeal`): never sent to
    /// anyone, checked only by the node that made it.
    case ledgerSeal = 5

    public func message(for digest: Hash) -> [UInt8] {
        var out: [UInt8] = Array("SCF-LEDGER-v1".utf8)
        out.append(rawValue)
        out.append(contentsOf: digest.bytes)
        return out
    }
}

extension CryptoSuite {
    /// Merkle leaf hash: H(0x00 || data), so a leaf can never pass for an inner node.
    public func leafHash(_ data: [UInt8]) -> Hash {
        var input: [UInt8] = [0]
        input.append(contentsOf: data)
        return hash(input)
    }

    /// Merkle inner node: H(0x01 || left || right).
    public func nodeHash(_ left: Hash, _ right: Hash) -> Hash {
        var writer = CanonicalWriter(capacity: 65)
        writer.write(UInt8(1))
        writer.write(left)
        writer.write(right)
        return hash(writer.bytes)
    }
}

/// Makes the suite named in genesis.
public enum CryptoSuites {
    public static func make(_ id: CryptoSuiteID, sm2DistinguishingID: String? = nil) throws -> any CryptoSuite {
        switch id {
        case .ed25519SHA256: return Ed25519SHA256Suite()
        case .sm2SM3: return try SM2SM3Suite(distinguishingID: sm2DistinguishingID)
        }
    }

    /// The suite a genesis file asks for.
    public static func make(for genesis: Genesis) throws -> any CryptoSuite {
        try make(genesis.cryptoSuite, sm2DistinguishingID: genesis.sm2DistinguishingID)
    }
}
