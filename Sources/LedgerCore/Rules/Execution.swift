/// The state transition function.
///
/// `BlockExecutor.execute` takes the state before a block and the block's transactions and
/// returns every record the block writes, one receipt per transaction and the commitments that go
/// in the header. It is a pure function of its inputs: no clock (time is the block's consensus
/// timestamp), no randomness, no dictionary order in anything hashed.
///
/// Block semantics (decided here, see docs/DECISIONS.md): a block is *applied deterministically*
/// even when some of its transactions break a rule. Each such transaction is recorded with a
/// rejected receipt (code and sentence) and changes nothing but its signer's nonce, which it
/// consumes so the same signed transaction can never be replayed to succeed later. Only faults
/// that prove the proposer wrong make the whole block invalid: a bad signature from a known
/// member, the same transaction twice, wrong roots or digest, wrong height or previous hash.
public struct BlockExecutor: Sendable {
    public let chainID: String
    public let utcOffsetMinutes: Int32
    public let suite: any CryptoSuite
    public let limits: ConsensusParameters

    public init(genesis: Genesis, suite: any CryptoSuite) {
        chainID = genesis.chainID
        utcOffsetMinutes = genesis.utcOffsetMinutes
        limits = genesis.consensus
        self.suite = suite
    }

    /// The state digest "after" genesis: every later digest chains from it.
    public static func genesisStateDigest(genesis: Genesis, suite: any CryptoSuite) -> Hash {
        var writer = CanonicalWriter()
        writer.write(raw: Array("SCF-STATE-GENESIS".utf8))
        writer.write(genesis.hash(suite: suite))
        return suite.hash(writer.bytes)
    }

    /// The tip of the chain at genesis (height 0).
    public static func genesisTip(genesis: Genesis, suite: any CryptoSuite) -> ChainTip {
        ChainTip(height: .genesis, hash: genesis.hash(suite: suite),
                 stateDigest: genesisStateDigest(genesis: genesis, suite: suite), timestamp: genesis.genesisTime)
    }

    /// How signatures are treated during execution.
    public enum SignaturePolicy: Sendable, Equatable {
        /// Check every signature; a bad one makes the block invalid (validators, `ledger verify`).
        case verify
        /// Check every signature and leave out transactions whose signature is bad (the primary building a block).
        case verifyAndDrop
        /// Signatures were already checked (mempool admission, or catch-up trusting commit certificates).
        case trusted
        /// Check every signature except those this node already checked at admission: a transaction
        /// is skipped only if both its id and its signature bytes are the ones admitted, so a primary
        /// cannot pass a forged signature under an admitted id.
        case verifyUnlessAdmitted([Hash: Signature])

        /// Whether `transaction`'s signature must be checked now.
        func mustCheck(_ transaction: SignedTransaction) -> Bool {
            switch self {
            case .trusted: false
            case .verifyUnlessAdmitted(let admitted): admitted[transaction.id] != transaction.signature
            case .verify, .verifyAndDrop: true
            }
        }
    }

    /// Executes transactions on top of `state`. Throws `BlockValidationError` only for faults that
    /// invalidate the block; rule violations become rejected receipts. `invariants` says how much
    /// of the ledger-wide invariants to check after the block (`InvariantCheck`): live validation
    /// checks the block's effect, a certified block none, `scf ledger verify` every touched record.
    public func execute<S: LedgerStateReader>(_ transactions: [SignedTransaction], context: BlockContext, state: S,
                                              signatures: SignaturePolicy = .verify, invariants: InvariantCheck = .touchedRecords) throws -> ExecutionResult {
        let writes = BlockWrites(base: state)
        writes.changes.reserveCapacity(forTransactions: transactions.count)
        var receipts: [Receipt] = []
        receipts.reserveCapacity(transactions.count)
        var included: [SignedTransaction] = []
        included.reserveCapacity(transactions.count)
        var seen = Set<Hash>()
        let today = context.timestamp.businessDate(utcOffsetMinutes: utcOffsetMinutes)

        for transaction in transactions {
            guard seen.insert(transaction.id).inserted else {
                if signatures == .verifyAndDrop { continue }
                throw BlockValidationError(.duplicateTransaction, "transaction \(transaction.id) appears twice in block \(context.height)")
            }
            var scope = Scope(block: writes, transaction: transaction, context: context, today: today, suite: suite)
            let outcome: Rejection?
            do {
                try scope.checkEnvelope(chainID: chainID, signatures: signatures)
                do {
                    try scope.apply()
                    outcome = nil
                } catch let rejection as Rejection {
                    outcome = rejection
                    scope.discardKeepingNonce()
                }
            } catch let rejection as Rejection {
                outcome = rejection
                scope.discardKeepingNonce()
            } catch let bad as BadSignature {
                if signatures == .verifyAndDrop { continue }
                throw BlockValidationError(.badSignature, "transaction \(transaction.id) from \(bad.signer) has an invalid signature")
            }
            writes.changes.merge(scope.pending)
            receipts.append(Receipt(transaction: transaction.id, rejection: outcome))
            included.append(transaction)
        }

        let overlay = OverlayState(base: state, changes: writes.changes)
        try InvariantChecker(before: state, after: overlay, rootsBefore: writes.rootsBefore, fragmentsBefore: writes.fragmentsBefore)
            .check(invariants)

        let transactionsRoot = Block.transactionsRoot(included, suite: suite)
        let resultsRoot = MerkleTree.root(leaves: receipts.map { $0.merkleLeaf(suite: suite) }, suite: suite)
        var writer = CanonicalWriter(capacity: 4096)
        writer.write(raw: Array("SCF-STATE".utf8))
        writer.write(context.previousStateDigest)
        writer.write(context.height)
        writer.write(resultsRoot)
        let layout = overlay.changes.encodeRecords(to: &writer)
        let stateDigest = suite.hash(writer.bytes)
        var result = ExecutionResult(transactions: included, receipts: receipts, changes: overlay.changes,
                                     transactionsRoot: transactionsRoot, resultsRoot: resultsRoot, stateDigest: stateDigest)
        result.encodedChanges = EncodedStateChanges(bytes: writer.bytes, layout: layout)
        return result
    }

    /// Builds the next block from candidate transactions (the primary's job). Transactions with a
    /// bad signature or repeated ids are left out; rule violations are included as rejected.
    public func makeBlock<S: LedgerStateReader>(candidates: [SignedTransaction], on tip: ChainTip, timestamp: ConsensusTime,
                                                view: View, proposer: ValidatorIndex, state: S,
                                                signatures: SignaturePolicy = .verifyAndDrop,
                                                invariants: InvariantCheck = .touchedRecords) throws -> (Block, ExecutionResult) {
        let context = BlockContext(chainID: chainID, height: tip.height.next, previousHash: tip.hash,
                                   previousStateDigest: tip.stateDigest, timestamp: timestamp, view: view, proposer: proposer)
        let limited = Array(candidates.prefix(Int(limits.maxBlockTransactions)))
        let result = try execute(limited, context: context, state: state, signatures: signatures, invariants: invariants)
        let header = BlockHeader(chainID: chainID, height: context.height, previousHash: tip.hash,
                                 transactionsRoot: result.transactionsRoot, resultsRoot: result.resultsRoot,
                                 stateDigest: result.stateDigest, timestamp: timestamp, view: view, proposer: proposer,
                                 transactionCount: UInt32(result.transactions.count))
        return (Block(header: header, transactions: result.transactions), result)
    }

    /// Checks a block proposed on top of `tip` and executes it: chain, height, previous hash,
    /// monotonic timestamp, limits, every signature (unless trusted), and that the header's
    /// transaction root, result root and state digest are what execution gives.
    public func validate<S: LedgerStateReader>(_ block: Block, on tip: ChainTip, state: S,
                                               signatures: SignaturePolicy = .verify, invariants: InvariantCheck = .touchedRecords) throws -> ExecutionResult {
        let header = block.header
        guard header.chainID == chainID else {
            throw BlockValidationError(.wrongChain, "block is for chain \(header.chainID), this is \(chainID)")
        }
        guard header.height == tip.height.next else {
            throw BlockValidationError(.wrongHeight, "block has height \(header.height), expected \(tip.height.next)")
        }
        guard header.previousHash == tip.hash else {
            throw BlockValidationError(.wrongPreviousHash, "block \(header.height) links to \(header.previousHash.short), the previous block is \(tip.hash.short)")
        }
        guard header.timestamp > tip.timestamp else {
            throw BlockValidationError(.badTimestamp, "block \(header.height) time \(header.timestamp) is not after the previous block's \(tip.timestamp)")
        }
        guard block.transactions.count <= Int(limits.maxBlockTransactions), Int(header.transactionCount) == block.transactions.count else {
            throw BlockValidationError(.tooManyTransactions, "block \(header.height) has \(block.transactions.count) transactions (limit \(limits.maxBlockTransactions), header says \(header.transactionCount))")
        }
        let context = BlockContext(chainID: chainID, height: header.height, previousHash: header.previousHash,
                                   previousStateDigest: tip.stateDigest, timestamp: header.timestamp,
                                   view: header.view, proposer: header.proposer)
        let policy: SignaturePolicy = signatures == .verifyAndDrop ? .verify : signatures
        let result = try execute(block.transactions, context: context, state: state, signatures: policy, invariants: invariants)
        guard result.transactionsRoot == header.transactionsRoot else {
            throw BlockValidationError(.transactionsRootMismatch, "block \(header.height): transactions do not match the header's Merkle root")
        }
        guard result.resultsRoot == header.resultsRoot else {
            throw BlockValidationError(.resultsRootMismatch, "block \(header.height): transaction outcomes differ from the header's results root")
        }
        guard result.stateDigest == header.stateDigest else {
            throw BlockValidationError(.stateDigestMismatch, "block \(header.height): state after execution differs from the header's state digest")
        }
        return result
    }
}

/// What a block is executed against.
public struct BlockContext: Hashable, Sendable {
    public var chainID: String
    public var height: Height
    public var previousHash: Hash
    public var previousStateDigest: Hash
    public var timestamp: ConsensusTime
    public var view: View
    public var proposer: ValidatorIndex

    public init(chainID: String, height: Height, previousHash: Hash, previousStateDigest: Hash, timestamp: ConsensusTime,
                view: View, proposer: ValidatorIndex) {
        self.chainID = chainID
        self.height = height
        self.previousHash = previousHash
        self.previousStateDigest = previousStateDigest
        self.timestamp = timestamp
        self.view = view
        self.proposer = proposer
    }
}

/// The last block of a chain, as the next block needs it.
public struct ChainTip: Hashable, Sendable, Codable {
    public var height: Height
    public var hash: Hash
    public var stateDigest: Hash
    public var timestamp: ConsensusTime

    public init(height: Height, hash: Hash, stateDigest: Hash, timestamp: ConsensusTime) {
        self.height = height
        self.hash = hash
        self.stateDigest = stateDigest
        self.timestamp = timestamp
    }

    public init(header: BlockHeader, suite: any CryptoSuite) {
        self.init(height: header.height, hash: header.hash(suite: suite), stateDigest: header.stateDigest, timestamp: header.timestamp)
    }
}

/// Everything executing a block produced.
public struct ExecutionResult: Sendable {
    /// The transactions executed (all of them, unless a `verifyAndDrop` run left some out).
    public var transactions: [SignedTransaction]
    public var receipts: [Receipt]
    public var changes: StateChanges {
        didSet { encodedChanges = nil }
    }
    /// `changes` sorted and encoded as the state digest hashed them, for the store to write
    /// without encoding them again; nil once `changes` is replaced or edited.
    public internal(set) var encodedChanges: EncodedStateChanges?
    public var transactionsRoot: Hash
    public var resultsRoot: Hash
    public var stateDigest: Hash
}

/// Why a whole block is invalid.
public struct BlockValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case wrongChain, wrongHeight, wrongPreviousHash, badTimestamp, tooManyTransactions, badSignature
        case duplicateTransaction, transactionsRootMismatch, resultsRootMismatch, stateDigestMismatch
        case invariantViolated, malformed, badCertificate
    }
    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code.rawValue): \(message)" }
}

struct BadSignature: Error { let signer: MemberID }
