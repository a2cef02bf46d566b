/// The signed part of a transaction. Its canonical bytes are hashed for the id and signed.
public struct TransactionBody: Hashable, Sendable {
    public static let currentVersion: UInt8 = 1
    public var version: UInt8
    /// The chain this transaction is for; a transaction for another chain is refused.
    public var chainID: String
    public var signer: MemberID
    /// Per-signer sequence number: the signer's first transaction has nonce 1, each next one +1.
    public var nonce: UInt64
    public var operation: LedgerOperation

    public init(chainID: String, signer: MemberID, nonce: UInt64, operation: LedgerOperation, version: UInt8 = TransactionBody.currentVersion) {
        self.version = version
        self.chainID = chainID
        self.signer = signer
        self.nonce = nonce
        self.operation = operation
    }
}

extension TransactionBody: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(version); writer.write(chainID); writer.write(signer); writer.write(nonce); writer.write(operation)
    }
    public init(from reader: inout CanonicalReader) throws {
        version = try reader.readUInt8()
        guard version == TransactionBody.currentVersion else { throw reader.error("unsupported transaction version \(version)") }
        chainID = try reader.readString(); signer = try reader.read(); nonce = try reader.readUInt64()
        operation = try reader.read()
    }
}

/// A transaction with its signature. `id` is the suite's hash of the body's canonical bytes;
/// the signature is over `SigningDomain.transaction.message(for: id)`.
public struct SignedTransaction: Hashable, Sendable {
    public let body: TransactionBody
    public let signature: Signature
    public let id: Hash
    /// The canonical body bytes exactly as hashed.
    public let bodyBytes: [UInt8]

    public init(body: TransactionBody, signature: Signature, suite: any CryptoSuite) {
        self.body = body
        self.signature = signature
        self.bodyBytes = body.canonicalBytes
        self.id = suite.hash(bodyBytes)
    }

    /// Builds and signs a transaction.
    public static func sign(_ body: TransactionBody, with key: any SigningKey, suite: any CryptoSuite) throws -> SignedTransaction {
        let bytes = body.canonicalBytes
        let id = suite.hash(bytes)
        let signature = try key.signature(for: SigningDomain.transaction.message(for: id))
        return SignedTransaction(body: body, signature: signature, id: id, bodyBytes: bytes)
    }

    private init(body: TransactionBody, signature: Signature, id: Hash, bodyBytes: [UInt8]) {
        self.body = body; self.signature = signature; self.id = id; self.bodyBytes = bodyBytes
    }

    /// Wire form: length-prefixed body bytes, then the signature.
    public var wireBytes: [UInt8] {
        var writer = CanonicalWriter(capacity: bodyBytes.count + 80)
        encode(to: &writer)
        return writer.bytes
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(bytes: bodyBytes)
        writer.write(signature)
    }

    /// Decodes one transaction from a reader (inside a block or a request).
    public init(from reader: inout CanonicalReader, suite: any CryptoSuite) throws {
        let bodyBytes = try reader.readBytes()
        let body = try TransactionBody(canonicalBytes: bodyBytes)
        let signature: Signature = try reader.read()
        self.init(body: body, signature: signature, id: suite.hash(bodyBytes), bodyBytes: bodyBytes)
    }

    /// Decodes a whole byte string holding one transaction.
    public init(wireBytes: [UInt8], suite: any CryptoSuite) throws {
        var reader = CanonicalReader(wireBytes)
        try self.init(from: &reader, suite: suite)
        try reader.expectEnd()
    }

    /// Checks the signature against a public key.
    public func hasValidSignature(publicKey: PublicKey, suite: any CryptoSuite) -> Bool {
        suite.isValidSignature(signature, for: SigningDomain.transaction.message(for: id), publicKey: publicKey)
    }

    /// The Merkle leaf committed in the block's transaction root: the whole signed transaction.
    public func merkleLeaf(suite: any CryptoSuite) -> Hash {
        // H(0x00 || wire bytes), as `suite.leafHash(wireBytes)`, encoded once into one buffer.
        var writer = CanonicalWriter(capacity: bodyBytes.count + signature.rawRepresentation.count + 9)
        writer.write(UInt8(0))
        encode(to: &writer)
        return suite.hash(writer.bytes)
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.id == rhs.id && lhs.signature == rhs.signature }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
}
