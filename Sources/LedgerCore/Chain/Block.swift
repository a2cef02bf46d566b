/// A block header. The block hash is the suite's hash of the header's canonical bytes; the header
/// commits to the transactions (Merkle root of the signed transactions), to each transaction's
/// outcome (Merkle root of receipts) and to the state after execution (`stateDigest`).
public struct BlockHeader: Hashable, Sendable, Codable {
    public static let currentVersion: UInt8 = 1
    public var version: UInt8
    public var chainID: String
    public var height: Height
    public var previousHash: Hash
    public var transactionsRoot: Hash
    public var resultsRoot: Hash
    public var stateDigest: Hash
    /// Consensus time: the proposer's clock reading, checked by every validator to lie within a
    /// bound of its own and to be later than the previous block's.
    public var timestamp: ConsensusTime
    public var view: View
    public var proposer: ValidatorIndex
    public var transactionCount: UInt32

    public init(chainID: String, height: Height, previousHash: Hash, transactionsRoot: Hash, resultsRoot: Hash,
                stateDigest: Hash, timestamp: ConsensusTime, view: View, proposer: ValidatorIndex, transactionCount: UInt32) {
        self.version = BlockHeader.currentVersion
        self.chainID = chainID
        self.height = height
        self.previousHash = previousHash
        self.transactionsRoot = transactionsRoot
        self.resultsRoot = resultsRoot
        self.stateDigest = stateDigest
        self.timestamp = timestamp
        self.view = view
        self.proposer = proposer
        self.transactionCount = transactionCount
    }

    public func hash(suite: any CryptoSuite) -> Hash { suite.hash(canonicalBytes) }
}

extension BlockHeader: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(version); writer.write(chainID); writer.write(height); writer.write(previousHash)
        writer.write(transactionsRoot); writer.write(resultsRoot); writer.write(stateDigest)
        writer.write(timestamp); writer.write(view); writer.write(proposer); writer.write(transactionCount)
    }
    public init(from reader: inout CanonicalReader) throws {
        version = try reader.readUInt8()
        guard version == BlockHeader.currentVersion else { throw reader.error("unsupported block version \(version)") }
        chainID = try reader.readString(); height = try reader.read(); previousHash = try reader.read()
        transactionsRoot = try reader.read(); resultsRoot = try reader.read(); stateDigest = try reader.read()
        timestamp = try reader.read(); view = try reader.read(); proposer = try reader.read()
        transactionCount = try reader.readUInt32()
    }
}

/// A block: a header and its transactions in execution order.
public struct Block: Hashable, Sendable {
    public var header: BlockHeader
    public var transactions: [SignedTransaction]

    public init(header: BlockHeader, transactions: [SignedTransaction]) {
        self.header = header
        self.transactions = transactions
    }

    public func hash(suite: any CryptoSuite) -> Hash { header.hash(suite: suite) }

    public static func transactionsRoot(_ transactions: [SignedTransaction], suite: any CryptoSuite) -> Hash {
        MerkleTree.root(leaves: transactions.map { $0.merkleLeaf(suite: suite) }, suite: suite)
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(header)
        writer.write(UInt32(transactions.count))
        for transaction in transactions { transaction.encode(to: &writer) }
    }

    public var wireBytes: [UInt8] {
        var writer = CanonicalWriter(capacity: 256 + transactions.count * 320)
        encode(to: &writer)
        return writer.bytes
    }

    public init(from reader: inout CanonicalReader, suite: any CryptoSuite) throws {
        header = try reader.read()
        let count = try reader.readCount()
        guard count == Int(header.transactionCount) else {
            throw reader.error("header says \(header.transactionCount) transactions, body has \(count)")
        }
        var transactions: [SignedTransaction] = []
        transactions.reserveCapacity(count)
        for _ in 0..<count { transactions.append(try SignedTransaction(from: &reader, suite: suite)) }
        self.transactions = transactions
    }

    public init(wireBytes: [UInt8], suite: any CryptoSuite) throws {
        var reader = CanonicalReader(wireBytes)
        try self.init(from: &reader, suite: suite)
        try reader.expectEnd()
    }
}

/// One validator's signed commit vote for a block.
public struct CommitVote: Hashable, Sendable, Codable, CanonicalCodable {
    public var validator: ValidatorIndex
    public var signature: Signature
    public init(validator: ValidatorIndex, signature: Signature) {
        self.validator = validator
        self.signature = signature
    }
    public func encode(to writer: inout CanonicalWriter) { writer.write(validator); writer.write(signature) }
    public init(from reader: inout CanonicalReader) throws {
        validator = try reader.read(); signature = try reader.read()
    }
}

extension Signature: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let raw = [UInt8](hex: text) else {
            throw Swift.DecodingError.dataCorruptedError(in: container, debugDescription: "signature must be hex")
        }
        self.init(rawRepresentation: raw)
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawRepresentation.hexString)
    }
}

/// Proof that a block is final: the commit votes of a quorum (2f+1) of the genesis validators
/// over (chain id, height, view, block hash). Anyone holding genesis can check it offline.
public struct CommitCertificate: Hashable, Sendable, Codable {
    public var height: Height
    public var view: View
    public var blockHash: Hash
    /// Sorted by validator index, one vote per validator.
    public var votes: [CommitVote]

    public init(height: Height, view: View, blockHash: Hash, votes: [CommitVote]) {
        self.height = height
        self.view = view
        self.blockHash = blockHash
        self.votes = votes.sorted { $0.validator < $1.validator }
    }

    /// The digest each validator signs (in `SigningDomain.commitVote`) to vote for a block.
    public static func voteDigest(chainID: String, height: Height, view: View, blockHash: Hash, suite: any CryptoSuite) -> Hash {
        var writer = CanonicalWriter(capacity: 96)
        writer.write(chainID); writer.write(height); writer.write(view); writer.write(blockHash)
        return suite.hash(writer.bytes)
    }

    /// Signs a commit vote.
    public static func vote(chainID: String, height: Height, view: View, blockHash: Hash, validator: ValidatorIndex,
                            key: any SigningKey, suite: any CryptoSuite) throws -> CommitVote {
        let digest = voteDigest(chainID: chainID, height: height, view: view, blockHash: blockHash, suite: suite)
        return CommitVote(validator: validator, signature: try key.signature(for: SigningDomain.commitVote.message(for: digest)))
    }

    /// Checks that a quorum of distinct validators signed this block. Throws a precise reason.
    public func verify(validators: ValidatorSet, chainID: String, suite: any CryptoSuite) throws(CertificateError) {
        let digest = CommitCertificate.voteDigest(chainID: chainID, height: height, view: view, blockHash: blockHash, suite: suite)
        let message = SigningDomain.commitVote.message(for: digest)
        var seen = Set<ValidatorIndex>()
        var valid = 0
        for vote in votes {
            guard let validator = validators.validator(at: vote.validator) else {
                throw CertificateError(.unknownValidator, "vote from \(vote.validator), which is not a genesis validator")
            }
            guard seen.insert(vote.validator).inserted else {
                throw CertificateError(.duplicateVote, "two votes from validator \(validator.name)")
            }
            guard suite.isValidSignature(vote.signature, for: message, publicKey: validator.publicKey) else {
                throw CertificateError(.badSignature, "the vote of validator \(validator.name) does not verify")
            }
            valid += 1
        }
        guard valid >= validators.quorum else {
            throw CertificateError(.noQuorum, "\(valid) valid votes, \(validators.quorum) needed")
        }
    }
}

extension CommitCertificate: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(height); writer.write(view); writer.write(blockHash); writer.write(votes)
    }
    public init(from reader: inout CanonicalReader) throws {
        height = try reader.read(); view = try reader.read(); blockHash = try reader.read(); votes = try reader.readArray()
    }
}

public struct CertificateError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable { case unknownValidator, duplicateVote, badSignature, noQuorum, wrongBlock }
    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code.rawValue): \(message)" }
}

/// A block with the certificate that made it final.
public struct CommittedBlock: Hashable, Sendable {
    public var block: Block
    public var certificate: CommitCertificate
    public init(block: Block, certificate: CommitCertificate) {
        self.block = block
        self.certificate = certificate
    }
}

/// The outcome of one transaction in a block.
public struct Receipt: Hashable, Sendable, Codable {
    public var transaction: Hash
    /// nil when the transaction was applied.
    public var rejection: Rejection?

    public init(transaction: Hash, rejection: Rejection?) {
        self.transaction = transaction
        self.rejection = rejection
    }
    public var isCommitted: Bool { rejection == nil }
    public func merkleLeaf(suite: any CryptoSuite) -> Hash {
        // H(0x00 || canonical bytes), as `suite.leafHash(canonicalBytes)`, in one buffer.
        var writer = CanonicalWriter(capacity: 48)
        writer.write(UInt8(0))
        encode(to: &writer)
        return suite.hash(writer.bytes)
    }
}

extension Receipt: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(transaction)
        if let rejection {
            writer.write(UInt8(1)); writer.write(rejection.code.rawValue); writer.write(rejection.message)
        } else {
            writer.write(UInt8(0))
        }
    }
    public init(from reader: inout CanonicalReader) throws {
        transaction = try reader.read()
        switch try reader.readUInt8() {
        case 0: rejection = nil
        case 1:
            let raw = try reader.readString()
            guard let code = RejectionCode(rawValue: raw) else { throw reader.error("unknown rejection code \(raw)") }
            rejection = Rejection(code, try reader.readString())
        default: throw reader.error("bad receipt tag")
        }
    }
}
