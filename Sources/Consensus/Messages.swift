import LedgerCore

// The consensus messages, their signatures and their canonical encodings.
//
// Every message is signed by the validator that sends it. Signatures are attachments: each
// message has a digest over its canonical fields (with a kind tag and the chain id, so no
// signature can be replayed as another kind or on another chain), and the signature is over
// `SigningDomain.….message(for: digest)`:
//
// | message      | domain             | digest over                                              |
// |--------------|--------------------|----------------------------------------------------------|
// | pre-prepare  | consensusMessage   | "pre-prepare", chain, view, height, block hash            |
// | prepare      | consensusMessage   | "prepare", chain, view, height, block hash, replica       |
// | commit       | commitVote         | `CommitCertificate.voteDigest(chain, height, view, hash)` |
// | checkpoint   | checkpoint         | "checkpoint", chain, height, block hash                   |
// | view-change  | consensusMessage   | "view-change", chain, every field but the signature       |
// | new-view     | consensusMessage   | "new-view", chain, every field but the signature          |
// | request      | (the client's own transaction signature)                                       |
//
// A commit message *is* a commit vote: 2f+1 of them are a `CommitCertificate` as they stand.

/// The primary's signature binding one block hash to one (view, height). A prepare carries the
/// primary's proposal signature it prepared, so two prepares for different blocks at the same
/// (view, height) prove that the primary equivocated.
public struct ProposalSignature: Hashable, Sendable, CanonicalCodable {
    public var view: View
    public var height: Height
    public var blockHash: Hash
    public var signature: Signature

    public init(view: View, height: Height, blockHash: Hash, signature: Signature) {
        self.view = view
        self.height = height
        self.blockHash = blockHash
        self.signature = signature
    }

    public static func digest(chainID: String, view: View, height: Height, blockHash: Hash, suite: any CryptoSuite) -> Hash {
        var writer = CanonicalWriter(capacity: 96)
        writer.write("pre-prepare"); writer.write(chainID); writer.write(view); writer.write(height); writer.write(blockHash)
        return suite.hash(writer.bytes)
    }

    public static func sign(chainID: String, view: View, height: Height, blockHash: Hash, key: any SigningKey,
                            suite: any CryptoSuite) throws -> ProposalSignature {
        let digest = Self.digest(chainID: chainID, view: view, height: height, blockHash: blockHash, suite: suite)
        return ProposalSignature(view: view, height: height, blockHash: blockHash,
                                 signature: try key.signature(for: SigningDomain.consensusMessage.message(for: digest)))
    }

    /// Whether the primary of `view` signed this.
    public func isValid(chainID: String, validators: ValidatorSet, suite: any CryptoSuite) -> Bool {
        guard let primary = validators.validator(at: validators.primary(of: view)) else { return false }
        let digest = Self.digest(chainID: chainID, view: view, height: height, blockHash: blockHash, suite: suite)
        return suite.isValidSignature(signature, for: SigningDomain.consensusMessage.message(for: digest), publicKey: primary.publicKey)
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(view); writer.write(height); writer.write(blockHash); writer.write(signature)
    }
    public init(from reader: inout CanonicalReader) throws {
        view = try reader.read(); height = try reader.read(); blockHash = try reader.read(); signature = try reader.read()
    }
}

/// PRE-PREPARE: the primary of `view` proposes `block` at `height` (= the block's height).
public struct PrePrepare: Hashable, Sendable {
    public var block: Block
    /// The primary's signature over (view, height, block hash).
    public var proposal: ProposalSignature

    public init(block: Block, proposal: ProposalSignature) {
        self.block = block
        self.proposal = proposal
    }

    public var view: View { proposal.view }
    public var height: Height { proposal.height }
    public var blockHash: Hash { proposal.blockHash }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(proposal)
        block.encode(to: &writer)
    }
    public init(from reader: inout CanonicalReader, suite: any CryptoSuite) throws {
        proposal = try reader.read()
        block = try Block(from: &reader, suite: suite)
    }
}

/// PREPARE: a backup accepted the primary's proposal for (view, height).
public struct Prepare: Hashable, Sendable, CanonicalCodable {
    public var proposal: ProposalSignature
    public var replica: ValidatorIndex
    public var signature: Signature

    public init(proposal: ProposalSignature, replica: ValidatorIndex, signature: Signature) {
        self.proposal = proposal
        self.replica = replica
        self.signature = signature
    }

    public var view: View { proposal.view }
    public var height: Height { proposal.height }
    public var blockHash: Hash { proposal.blockHash }

    public static func digest(chainID: String, view: View, height: Height, blockHash: Hash, replica: ValidatorIndex,
                              suite: any CryptoSuite) -> Hash {
        var writer = CanonicalWriter(capacity: 96)
        writer.write("prepare"); writer.write(chainID); writer.write(view); writer.write(height); writer.write(blockHash)
        writer.write(replica)
        return suite.hash(writer.bytes)
    }

    public static func sign(proposal: ProposalSignature, chainID: String, replica: ValidatorIndex, key: any SigningKey,
                            suite: any CryptoSuite) throws -> Prepare {
        let digest = Self.digest(chainID: chainID, view: proposal.view, height: proposal.height, blockHash: proposal.blockHash,
                                 replica: replica, suite: suite)
        return Prepare(proposal: proposal, replica: replica,
                       signature: try key.signature(for: SigningDomain.consensusMessage.message(for: digest)))
    }

    /// Whether `replica` signed this prepare (the embedded proposal signature is checked separately).
    public func isValid(chainID: String, validators: ValidatorSet, suite: any CryptoSuite) -> Bool {
        guard let validator = validators.validator(at: replica) else { return false }
        let digest = Self.digest(chainID: chainID, view: view, height: height, blockHash: blockHash, replica: replica, suite: suite)
        return suite.isValidSignature(signature, for: SigningDomain.consensusMessage.message(for: digest), publicKey: validator.publicKey)
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(proposal); writer.write(replica); writer.write(signature)
    }
    public init(from reader: inout CanonicalReader) throws {
        proposal = try reader.read(); replica = try reader.read(); signature = try reader.read()
    }
}

/// COMMIT: a replica prepared the block and votes to commit it. The vote is exactly a
/// `CommitVote` of a `CommitCertificate`.
public struct Commit: Hashable, Sendable, CanonicalCodable {
    public var view: View
    public var height: Height
    public var blockHash: Hash
    public var vote: CommitVote

    public init(view: View, height: Height, blockHash: Hash, vote: CommitVote) {
        self.view = view
        self.height = height
        self.blockHash = blockHash
        self.vote = vote
    }

    public var replica: ValidatorIndex { vote.validator }

    public static func sign(chainID: String, view: View, height: Height, blockHash: Hash, replica: ValidatorIndex,
                            key: any SigningKey, suite: any CryptoSuite) throws -> Commit {
        Commit(view: view, height: height, blockHash: blockHash,
               vote: try CommitCertificate.vote(chainID: chainID, height: height, view: view, blockHash: blockHash,
                                                validator: replica, key: key, suite: suite))
    }

    public func isValid(chainID: String, validators: ValidatorSet, suite: any CryptoSuite) -> Bool {
        guard let validator = validators.validator(at: replica) else { return false }
        let digest = CommitCertificate.voteDigest(chainID: chainID, height: height, view: view, blockHash: blockHash, suite: suite)
        return suite.isValidSignature(vote.signature, for: SigningDomain.commitVote.message(for: digest), publicKey: validator.publicKey)
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(view); writer.write(height); writer.write(blockHash); writer.write(vote)
    }
    public init(from reader: inout CanonicalReader) throws {
        view = try reader.read(); height = try reader.read(); blockHash = try reader.read(); vote = try reader.read()
    }
}

/// CHECKPOINT: a replica committed the block `blockHash` at `height` (a multiple of K). The
/// block hash commits to the state digest, so this is PBFT's state digest.
public struct Checkpoint: Hashable, Sendable, CanonicalCodable {
    public var height: Height
    public var blockHash: Hash
    public var replica: ValidatorIndex
    public var signature: Signature

    public init(height: Height, blockHash: Hash, replica: ValidatorIndex, signature: Signature) {
        self.height = height
        self.blockHash = blockHash
        self.replica = replica
        self.signature = signature
    }

    public static func digest(chainID: String, height: Height, blockHash: Hash, suite: any CryptoSuite) -> Hash {
        var writer = CanonicalWriter(capacity: 96)
        writer.write("checkpoint"); writer.write(chainID); writer.write(height); writer.write(blockHash)
        return suite.hash(writer.bytes)
    }

    public static func sign(chainID: String, height: Height, blockHash: Hash, replica: ValidatorIndex, key: any SigningKey,
                            suite: any CryptoSuite) throws -> Checkpoint {
        let digest = Self.digest(chainID: chainID, height: height, blockHash: blockHash, suite: suite)
        return Checkpoint(height: height, blockHash: blockHash, replica: replica,
                          signature: try key.signature(for: SigningDomain.checkpoint.message(for: digest)))
    }

    public func isValid(chainID: String, validators: ValidatorSet, suite: any CryptoSuite) -> Bool {
        guard let validator = validators.validator(at: replica) else { return false }
        let digest = Self.digest(chainID: chainID, height: height, blockHash: blockHash, suite: suite)
        return suite.isValidSignature(signature, for: SigningDomain.checkpoint.message(for: digest), publicKey: validator.publicKey)
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(height); writer.write(blockHash); writer.write(replica); writer.write(signature)
    }
    public init(from reader: inout CanonicalReader) throws {
        height = try reader.read(); blockHash = try reader.read(); replica = try reader.read(); signature = try reader.read()
    }
}

/// A stable checkpoint: 2f+1 matching checkpoint messages. Height 0 (genesis) needs none.
public struct CheckpointCertificate: Hashable, Sendable, CanonicalCodable {
    public var height: Height
    public var blockHash: Hash
    /// Sorted by replica, one per replica.
    public var checkpoints: [Checkpoint]

    public init(height: Height, blockHash: Hash, checkpoints: [Checkpoint]) {
        self.height = height
        self.blockHash = blockHash
        self.checkpoints = checkpoints.sorted { $0.replica < $1.replica }
    }

    /// Nil when valid, else why not. Genesis (height 0) must carry the genesis hash.
    public func problem(chainID: String, genesisHash: Hash, validators: ValidatorSet, suite: any CryptoSuite) -> String? {
        if height == .genesis { return blockHash == genesisHash ? nil : "genesis checkpoint with a foreign hash" }
        var seen = Set<ValidatorIndex>()
        for checkpoint in checkpoints {
            guard checkpoint.height == height, checkpoint.blockHash == blockHash else { return "checkpoint for another block" }
            guard seen.insert(checkpoint.replica).inserted else { return "two checkpoints from \(checkpoint.replica)" }
            guard checkpoint.isValid(chainID: chainID, validators: validators, suite: suite) else {
                return "bad checkpoint signature from \(checkpoint.replica)"
            }
        }
        return seen.count >= validators.quorum ? nil : "\(seen.count) checkpoint signatures, \(validators.quorum) needed"
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(height); writer.write(blockHash); writer.write(checkpoints)
    }
    public init(from reader: inout CanonicalReader) throws {
        height = try reader.read(); blockHash = try reader.read(); checkpoints = try reader.readArray()
    }
}

/// A block that prepared in some view: the primary's pre-prepare and 2f matching prepares from
/// distinct backups.
public struct PreparedCertificate: Hashable, Sendable {
    public var prePrepare: PrePrepare
    /// Sorted by replica.
    public var prepares: [Prepare]

    public init(prePrepare: PrePrepare, prepares: [Prepare]) {
        self.prePrepare = prePrepare
        self.prepares = prepares.sorted { $0.replica < $1.replica }
    }

    public var view: View { prePrepare.view }
    public var height: Height { prePrepare.height }
    public var blockHash: Hash { prePrepare.blockHash }

    /// Nil when valid, else why not.
    public func problem(chainID: String, validators: ValidatorSet, suite: any CryptoSuite) -> String? {
        guard prePrepare.block.header.height == height, prePrepare.block.hash(suite: suite) == blockHash else {
            return "prepared certificate whose block does not match its proposal"
        }
        guard prePrepare.proposal.isValid(chainID: chainID, validators: validators, suite: suite) else {
            return "prepared certificate with a bad proposal signature"
        }
        let primary = validators.primary(of: view)
        var seen = Set<ValidatorIndex>()
        for prepare in prepares {
            guard prepare.proposal == prePrepare.proposal else { return "prepare for another proposal" }
            guard prepare.replica != primary, seen.insert(prepare.replica).inserted else { return "duplicate or primary prepare" }
            guard prepare.isValid(chainID: chainID, validators: validators, suite: suite) else {
                return "bad prepare signature from \(prepare.replica)"
            }
        }
        return seen.count >= validators.quorum - 1 ? nil : "\(seen.count) prepares, \(validators.quorum - 1) needed"
    }

    public func encode(to writer: inout CanonicalWriter) {
        prePrepare.encode(to: &writer)
        writer.write(prepares)
    }
    public init(from reader: inout CanonicalReader, suite: any CryptoSuite) throws {
        prePrepare = try PrePrepare(from: &reader, suite: suite)
        prepares = try reader.readArray()
    }

    // MARK: Without the block's transactions (in view changes)

    /// True when the certificate carries only the block's header, not its transactions (see
    /// `withoutBody`). Such a certificate proves the same thing (the proposal and prepares sign
    /// the block hash, the hash of the header), but its block cannot be executed.
    public var omitsBody: Bool { prePrepare.block.transactions.count != Int(prePrepare.block.header.transactionCount) }

    /// The certificate with the block's header only. A view change carries blocks the sender has
    /// already committed this way: whoever lacks one fetches it, certified, by catch-up. Without
    /// this a view change after a run of large blocks outgrew the frame cap and could not be sent.
    public func withoutBody() -> PreparedCertificate {
        PreparedCertificate(prePrepare: PrePrepare(block: Block(header: prePrepare.block.header, transactions: []),
                                                   proposal: prePrepare.proposal),
                            prepares: prepares)
    }

    /// The view-change form: a marker byte, then the whole certificate (0) or the header-only one (1).
    func encodeInViewChange(to writer: inout CanonicalWriter) {
        if omitsBody {
            writer.write(UInt8(1))
            writer.write(prePrepare.proposal)
            writer.write(prePrepare.block.header)
            writer.write(prepares)
        } else {
            writer.write(UInt8(0))
            encode(to: &writer)
        }
    }

    init(inViewChangeFrom reader: inout CanonicalReader, suite: any CryptoSuite) throws {
        switch try reader.readUInt8() {
        case 0:
            self = try PreparedCertificate(from: &reader, suite: suite)
        case 1:
            let proposal: ProposalSignature = try reader.read()
            let header: BlockHeader = try reader.read()
            // An empty block is always sent whole: one encoding per certificate.
            guard header.transactionCount > 0 else { throw reader.error("a header-only certificate for an empty block") }
            let prepares: [Prepare] = try reader.readArray()
            self = PreparedCertificate(prePrepare: PrePrepare(block: Block(header: header, transactions: []), proposal: proposal),
                                       prepares: prepares)
        case let marker:
            throw reader.error("unknown prepared-certificate form \(marker)")
        }
    }
}

/// VIEW-CHANGE: a replica asks to move to `newView`, with its stable checkpoint and every block
/// it prepared above it (the highest view's certificate per height).
public struct ViewChange: Hashable, Sendable {
    public var newView: View
    public var replica: ValidatorIndex
    public var checkpoint: CheckpointCertificate
    /// Sorted by height, at most one per height.
    public var prepared: [PreparedCertificate]
    public var signature: Signature

    public init(newView: View, replica: ValidatorIndex, checkpoint: CheckpointCertificate, prepared: [PreparedCertificate],
                signature: Signature) {
        self.newView = newView
        self.replica = replica
        self.checkpoint = checkpoint
        self.prepared = prepared.sorted { $0.height < $1.height }
        self.signature = signature
    }

    func writeBody(to writer: inout CanonicalWriter) {
        writer.write(newView); writer.write(replica); writer.write(checkpoint)
        writer.write(UInt32(prepared.count))
        for certificate in prepared { certificate.encodeInViewChange(to: &writer) }
    }

    public func digest(chainID: String, suite: any CryptoSuite) -> Hash {
        var writer = CanonicalWriter(capacity: 1024)
        writer.write("view-change"); writer.write(chainID)
        writeBody(to: &writer)
        return suite.hash(writer.bytes)
    }

    public static func sign(newView: View, replica: ValidatorIndex, checkpoint: CheckpointCertificate,
                            prepared: [PreparedCertificate], chainID: String, key: any SigningKey,
                            suite: any CryptoSuite) throws -> ViewChange {
        var message = ViewChange(newView: newView, replica: replica, checkpoint: checkpoint, prepared: prepared,
                                 signature: Signature(rawRepresentation: []))
        let digest = message.digest(chainID: chainID, suite: suite)
        message.signature = try key.signature(for: SigningDomain.consensusMessage.message(for: digest))
        return message
    }

    /// Nil when the signature and every certificate inside are valid, else why not.
    public func problem(chainID: String, genesisHash: Hash, validators: ValidatorSet, suite: any CryptoSuite) -> String? {
        guard let validator = validators.validator(at: replica) else { return "view change from a non-validator" }
        let digest = self.digest(chainID: chainID, suite: suite)
        guard suite.isValidSignature(signature, for: SigningDomain.consensusMessage.message(for: digest), publicKey: validator.publicKey) else {
            return "bad view-change signature"
        }
        if let problem = checkpoint.problem(chainID: chainID, genesisHash: genesisHash, validators: validators, suite: suite) {
            return problem
        }
        var last = checkpoint.height
        for certificate in prepared {
            guard certificate.height > last else { return "prepared certificates out of order or below the checkpoint" }
            guard certificate.view < newView else { return "prepared certificate from a view not before the new view" }
            if let problem = certificate.problem(chainID: chainID, validators: validators, suite: suite) { return problem }
            last = certificate.height
        }
        return nil
    }

    public func encode(to writer: inout CanonicalWriter) {
        writeBody(to: &writer)
        writer.write(signature)
    }
    public init(from reader: inout CanonicalReader, suite: any CryptoSuite) throws {
        newView = try reader.read(); replica = try reader.read(); checkpoint = try reader.read()
        let count = try reader.readCount()
        var prepared: [PreparedCertificate] = []
        for _ in 0..<count { prepared.append(try PreparedCertificate(inViewChangeFrom: &reader, suite: suite)) }
        self.prepared = prepared
        signature = try reader.read()
    }
}

/// NEW-VIEW: the primary of `view` shows 2f+1 view changes and re-proposes, with its proposal
/// signatures, the blocks every replica derives from them (`ViewChangeDecision`).
public struct NewView: Hashable, Sendable {
    public var view: View
    /// Sorted by replica, one per replica.
    public var viewChanges: [ViewChange]
    /// The re-proposals in height order, signed by the new primary.
    public var proposals: [ProposalSignature]
    public var signature: Signature

    public init(view: View, viewChanges: [ViewChange], proposals: [ProposalSignature], signature: Signature) {
        self.view = view
        self.viewChanges = viewChanges.sorted { $0.replica < $1.replica }
        self.proposals = proposals
        self.signature = signature
    }

    func writeBody(to writer: inout CanonicalWriter) {
        writer.write(view)
        writer.write(UInt32(viewChanges.count))
        for change in viewChanges { change.encode(to: &writer) }
        writer.write(proposals)
    }

    public func digest(chainID: String, suite: any CryptoSuite) -> Hash {
        var writer = CanonicalWriter(capacity: 4096)
        writer.write("new-view"); writer.write(chainID)
        writeBody(to: &writer)
        return suite.hash(writer.bytes)
    }

    public static func sign(view: View, viewChanges: [ViewChange], proposals: [ProposalSignature], chainID: String,
                            key: any SigningKey, suite: any CryptoSuite) throws -> NewView {
        var message = NewView(view: view, viewChanges: viewChanges, proposals: proposals, signature: Signature(rawRepresentation: []))
        let digest = message.digest(chainID: chainID, suite: suite)
        message.signature = try key.signature(for: SigningDomain.consensusMessage.message(for: digest))
        return message
    }

    public func hasValidSignature(chainID: String, validators: ValidatorSet, suite: any CryptoSuite) -> Bool {
        guard let primary = validators.validator(at: validators.primary(of: view)) else { return false }
        return suite.isValidSignature(signature, for: SigningDomain.consensusMessage.message(for: digest(chainID: chainID, suite: suite)),
                                      publicKey: primary.publicKey)
    }

    public func encode(to writer: inout CanonicalWriter) {
        writeBody(to: &writer)
        writer.write(signature)
    }
    public init(from reader: inout CanonicalReader, suite: any CryptoSuite) throws {
        view = try reader.read()
        let count = try reader.readCount()
        var changes: [ViewChange] = []
        for _ in 0..<count { changes.append(try ViewChange(from: &reader, suite: suite)) }
        viewChanges = changes
        proposals = try reader.readArray()
        signature = try reader.read()
    }
}

/// Any consensus message, as sent between validators.
///
/// Wire form: a version byte (1), a kind byte, then the message's canonical encoding.
public enum ConsensusMessage: Hashable, Sendable {
    case prePrepare(PrePrepare)
    case prepare(Prepare)
    case commit(Commit)
    case checkpoint(Checkpoint)
    case viewChange(ViewChange)
    case newView(NewView)
    /// A client transaction a backup forwards to the primary (PBFT's relayed request). Its
    /// authenticity is the client's own signature, checked by `ReplicaApplication.admit`.
    case request(SignedTransaction)

    public static let wireVersion: UInt8 = 1

    public var kind: String {
        switch self {
        case .prePrepare: "pre-prepare"
        case .prepare: "prepare"
        case .commit: "commit"
        case .checkpoint: "checkpoint"
        case .viewChange: "view-change"
        case .newView: "new-view"
        case .request: "request"
        }
    }

    /// The validator the message says it is from (the primary of the view for proposals); nil
    /// for a forwarded request, which names no validator.
    public func claimedSender(validators: ValidatorSet) -> ValidatorIndex? {
        switch self {
        case .prePrepare(let message): validators.primary(of: message.view)
        case .prepare(let message): message.replica
        case .commit(let message): message.replica
        case .checkpoint(let message): message.replica
        case .viewChange(let message): message.replica
        case .newView(let message): validators.primary(of: message.view)
        case .request: nil
        }
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(Self.wireVersion)
        switch self {
        case .prePrepare(let message): writer.write(UInt8(1)); message.encode(to: &writer)
        case .prepare(let message): writer.write(UInt8(2)); message.encode(to: &writer)
        case .commit(let message): writer.write(UInt8(3)); message.encode(to: &writer)
        case .checkpoint(let message): writer.write(UInt8(4)); message.encode(to: &writer)
        case .viewChange(let message): writer.write(UInt8(5)); message.encode(to: &writer)
        case .newView(let message): writer.write(UInt8(6)); message.encode(to: &writer)
        case .request(let transaction): writer.write(UInt8(7)); transaction.encode(to: &writer)
        }
    }

    public var wireBytes: [UInt8] {
        var writer = CanonicalWriter(capacity: 256)
        encode(to: &writer)
        return writer.bytes
    }

    public init(from reader: inout CanonicalReader, suite: any CryptoSuite) throws {
        let version = try reader.readUInt8()
        guard version == Self.wireVersion else { throw reader.error("unsupported consensus message version \(version)") }
        let tag = try reader.readUInt8()
        switch tag {
        case 1: self = .prePrepare(try PrePrepare(from: &reader, suite: suite))
        case 2: self = .prepare(try reader.read())
        case 3: self = .commit(try reader.read())
        case 4: self = .checkpoint(try reader.read())
        case 5: self = .viewChange(try ViewChange(from: &reader, suite: suite))
        case 6: self = .newView(try NewView(from: &reader, suite: suite))
        case 7: self = .request(try SignedTransaction(from: &reader, suite: suite))
        default: throw reader.error("unknown consensus message kind \(tag)")
        }
    }

    /// Decodes one whole message; trailing bytes are an error.
    public init(wireBytes: [UInt8], suite: any CryptoSuite) throws {
        var reader = CanonicalReader(wireBytes)
        try self.init(from: &reader, suite: suite)
        try reader.expectEnd()
    }
}
