import Consensus
import LedgerCore
import LedgerStore

/// The replica's application on a node: the real state transition over the node's SQLite ledger.
///
/// Committed state lives in the `LedgerStore`; every block validated or proposed but not yet
/// committed keeps its execution result and the writes from the committed head up to it, keyed by
/// block hash, so the next height can be validated on top of it (pipelining) without touching
/// disk. `commit` appends the block, its receipts and its writes to the store in one database
/// transaction. A crash loses only the speculative part, which the replica can rebuild.
///
/// Catch-up: `storeCertified` appends a run of certified blocks fetched from peers in one
/// database transaction before the replica hears of them; the replica then validates and commits
/// them as usual, and `validate`/`commit` answer for those blocks from what was stored (nothing is
/// executed or written a second time).
///
/// A store failure on commit (disk full, I/O error) cannot be answered by the replica, which has
/// already decided; it is kept in `failure` and the node stops, to restart and catch up.
public struct StoreApplication: ReplicaApplication {
    public let store: LedgerStore
    public let executor: BlockExecutor
    public private(set) var failure: (any Error)?
    /// Receipts of the blocks committed since the shell last took them (for waiters and metrics).
    public private(set) var committedSinceLastTake: [(Height, [Receipt])] = []
    var speculative: [Hash: Speculative] = [:]
    /// Certified blocks already stored by `storeCertified` that the replica has not committed yet,
    /// by block hash, with their receipts.
    var stored: [Hash: (height: Height, receipts: [Receipt])] = [:]
    /// Database transactions that appended blocks (one per `commit`, one per `storeCertified` batch).
    public private(set) var databaseCommits = 0
    /// Blocks agreed live that `commit` stored, and the time their database transactions took
    /// (execution not included).
    public let blockStores: DurationCounter

    struct Speculative {
        var tip: ChainTip
        var result: ExecutionResult
        /// Writes from the committed head up to and including this block.
        var cumulative: StateChanges
    }

    /// The node's clock: admission dry runs happen at the time the next block will carry.
    let clock: @Sendable () -> ConsensusTime

    public init(store: LedgerStore, genesis: Genesis, suite: any CryptoSuite,
                clock: @escaping @Sendable () -> ConsensusTime = ValidatorNode.wallClock, blockStores: DurationCounter = DurationCounter()) {
        self.store = store
        self.blockStores = blockStores
        self.executor = BlockExecutor(genesis: genesis, suite: suite)
        self.clock = clock
    }

    var suite: any CryptoSuite { executor.suite }

    /// Why transactions offered to `admit` were refused, by id (the replica keeps only a
    /// sentence); the shell takes them after each admission group (`takeAdmissionRejections`).
    public private(set) var admissionRejections: [Hash: Rejection] = [:]

    public mutating func takeAdmissionRejections() -> [Hash: Rejection] {
        defer { admissionRejections = [:] }
        return admissionRejections
    }

    /// Transactions whose signature this node checked at admission, not yet committed: a block
    /// carrying them is validated without checking those signatures again (bounded).
    var admitted: [Hash: Signature] = [:]
    static let admittedLimit = 200_000

    /// Of the given transactions, those whose exact signature the shell has checked and found
    /// valid against the signer's registered key (now, in parallel, or earlier in its admission
    /// stage), by id. Set by the shell; `validate` then does not check them itself.
    public var checkedElsewhere: (@Sendable ([SignedTransaction]) -> [Hash: Signature])?

    /// What the shell knows about the admission group the replica is admitting: set around one
    /// `Replica.onClientRequests` call. Outside a group (nil) every transaction is checked on its
    /// own against the store, its signature included, and dry-run against every rule.
    public struct AdmissionGroup: Sendable {
        /// Transactions whose signature the node's admission stage already checked, with the key
        /// it verified against: `admit` skips the check when that is still the signer's
        /// registered key.
        public var preverified: [Hash: PublicKey]
        /// Whether this node's committed state is known to be current: no proposal above the
        /// head is waiting to execute and no catch-up is fetching blocks. Only then does admission
        /// dry-run a transaction against every rule. A node that is a block or two behind would
        /// otherwise refuse, say, a transfer of a fragment another validator has already
        /// committed (the client saw that commit and moved on to this node); while behind, the
        /// transaction enters the pool and its execution gives the definitive answer.
        public var headIsCurrent: Bool
        /// The ids this node's clients submitted. Only those are dry-run against every rule: a
        /// client's own submission gets the rules' verdict as its answer; a copy another validator
        /// relayed was judged by that validator when its client submitted it (the verdict here
        /// would be answered to nobody, and the block's execution still judges it).
        public var fromClients: Set<Hash>
        /// The group's transactions already stored, looked up once for the whole group (nothing
        /// commits while the replica admits a group) rather than one query per transaction; nil
        /// if that lookup failed, so each is looked up (and the failure reported) on its own.
        public var committed: Set<Hash>?

        public init(preverified: [Hash: PublicKey], headIsCurrent: Bool, fromClients: Set<Hash>, committed: Set<Hash>?) {
            self.preverified = preverified
            self.headIsCurrent = headIsCurrent
            self.fromClients = fromClients
            self.committed = committed
        }
    }

    public var admissionGroup: AdmissionGroup?

    public mutating func admit(_ transaction: SignedTransaction) -> Rejection? {
        let rejection = check(transaction)
        if let rejection {
            admissionRejections[transaction.id] = rejection
        } else {
            if admitted.count >= Self.admittedLimit { admitted.removeAll(keepingCapacity: true) }
            admitted[transaction.id] = transaction.signature
        }
        return rejection
    }

    func check(_ transaction: SignedTransaction) -> Rejection? {
        guard transaction.body.chainID == executor.chainID else {
            return Rejection(.wrongChain, "this transaction is for chain \"\(transaction.body.chainID)\", this ledger is \"\(executor.chainID)\"")
        }
        do {
            if try admissionGroup?.committed.map({ $0.contains(transaction.id) }) ?? store.containsTransaction(id: transaction.id) {
                return Rejection(.replayed, "transaction \(transaction.id.short) was already committed; read its receipt with GET /v1/transactions/\(transaction.id) instead of submitting it again")
            }
            guard let signer = try store.member(transaction.body.signer) else {
                return Rejection(.unknownMember, "\(transaction.body.signer) is not a member of this consortium")
            }
            let checked = admissionGroup?.preverified[transaction.id] == signer.publicKey
            guard checked || transaction.hasValidSignature(publicKey: signer.publicKey, suite: suite) else {
                return Rejection(.badSignature, "the signature does not verify with \(signer.id)'s registered \(suite.id) key; this chain uses \(suite.id): sign again with your own \(suite.id) key")
            }
            let used = try store.nonce(of: signer.id)
            guard transaction.body.nonce > used else {
                return Rejection(.replayed, "nonce \(transaction.body.nonce) of \(signer.id) was already used")
            }
            // The signer's next transaction is checked against every rule on the latest committed
            // state, so an obvious refusal is answered now rather than committed as refused. Later
            // nonces depend on transactions still in the pool and are checked when they execute,
            // and so is everything while the head is behind (see `AdmissionGroup.headIsCurrent`),
            // and a relayed copy (`AdmissionGroup.fromClients`).
            let judged = admissionGroup.map { $0.headIsCurrent && $0.fromClients.contains(transaction.id) } ?? true
            if judged, transaction.body.nonce == used + 1, let rejection = try dryRun(transaction) { return rejection }
        } catch {
            return Rejection(.invalidState, "the node could not read its ledger: \(error)")
        }
        return nil
    }

    /// Executes the transaction alone on the committed state, at the next block's height and the
    /// node's clock reading (at least just after the head), and returns its refusal if any. Changes nothing.
    func dryRun(_ transaction: SignedTransaction) throws -> Rejection? {
        let tip = store.tip
        let context = BlockContext(chainID: executor.chainID, height: tip.height.next, previousHash: tip.hash,
                                   previousStateDigest: tip.stateDigest, timestamp: max(clock(), tip.timestamp.adding(milliseconds: 1)),
                                   view: View(0), proposer: ValidatorIndex(0))
        return try executor.execute([transaction], context: context, state: store, signatures: .trusted, invariants: .blockEffect)
            .receipts.first?.rejection
    }

    func changes(upTo parent: ChainTip) throws -> StateChanges {
        if parent.hash == store.tip.hash { return StateChanges() }
        guard let entry = speculative[parent.hash] else {
            throw BlockValidationError(.wrongPreviousHash, "parent \(parent.hash.short) is neither committed nor validated here")
        }
        return entry.cumulative
    }

    public mutating func propose(_ candidates: [SignedTransaction], on parent: ChainTip, timestamp: ConsensusTime, view: View,
                                 proposer: ValidatorIndex) throws -> Block {
        let before = try changes(upTo: parent)
        let committed = try store.committedTransactionIDs(among: candidates.map(\.id))
        let fresh = committed.isEmpty ? candidates : candidates.filter { !committed.contains($0.id) }
        // Signatures were checked once at admission; the proposer does not check them again.
        let (block, result) = try executor.makeBlock(candidates: fresh, on: parent, timestamp: timestamp, view: view, proposer: proposer,
                                                     state: OverlayState(base: store, changes: before), signatures: .trusted,
                                                     invariants: .blockEffect)
        remember(block, result: result, before: before)
        return block
    }

    public mutating func validate(_ block: Block, on parent: ChainTip, certified: Bool) throws {
        // A certified block this node already stored during catch-up was executed then.
        if certified, !stored.isEmpty, stored[block.hash(suite: suite)] != nil { return }
        let before = try changes(upTo: parent)
        let committed = try store.committedTransactionIDs(among: block.transactions.map(\.id))
        if let duplicate = block.transactions.first(where: { committed.contains($0.id) }) {
            throw BlockValidationError(.duplicateTransaction, "transaction \(duplicate.id.short) is already committed")
        }
        if !certified, let checkedElsewhere {
            // Transactions not admitted here yet (their relayed copy is still queued, or checked
            // and waiting behind this proposal): the shell checks them on every core, or reports
            // that it already did. Those it does not vouch for are checked by the executor. A
            // member's key never changes once registered, so the committed key the shell checks
            // against is the key execution would use (a member registered in a block not yet
            // committed has no committed key: the executor checks its transactions).
            let unadmitted = block.transactions.filter { admitted[$0.id] != $0.signature }
            if !unadmitted.isEmpty {
                for (id, signature) in checkedElsewhere(unadmitted) { admitted[id] = signature }
            }
        }
        let result = try executor.validate(block, on: parent, state: OverlayState(base: store, changes: before),
                                           signatures: certified ? .trusted : .verifyUnlessAdmitted(admitted), invariants: certified ? .none : .blockEffect)
        remember(block, result: result, before: before)
    }

    mutating func remember(_ block: Block, result: ExecutionResult, before: StateChanges) {
        var cumulative = before
        cumulative.merge(result.changes)
        let tip = ChainTip(header: block.header, suite: suite)
        speculative[tip.hash] = Speculative(tip: tip, result: result, cumulative: cumulative)
    }

    public mutating func commit(_ committed: CommittedBlock) {
        guard failure == nil else { return }
        let hash = committed.certificate.blockHash
        if let done = stored.removeValue(forKey: hash) {
            // Stored by `storeCertified`, durable before the replica was told.
            committedSinceLastTake.append((done.height, done.receipts))
            for transaction in committed.block.transactions { admitted[transaction.id] = nil }
            return
        }
        do {
            let result: ExecutionResult
            if let entry = speculative[hash] {
                result = entry.result
            } else {
                result = try executor.validate(committed.block, on: store.tip, state: store, signatures: .trusted)
            }
            try blockStores.time { try store.append(committed, result: result) }
            databaseCommits += 1
            committedSinceLastTake.append((committed.block.header.height, result.receipts))
            for transaction in committed.block.transactions { admitted[transaction.id] = nil }
        } catch {
            failure = error
            return
        }
        // Later speculative blocks keep their cumulative writes: the part this block wrote is now in
        // the store with the same values, and anything they wrote again is newer.
        let head = store.tip.height
        speculative = speculative.filter { $0.value.tip.height > head }
    }

    public mutating func discardSpeculative() {
        speculative = [:]
    }

    /// Catch-up: re-executes certified blocks that extend the committed head (client signatures
    /// trusted) and stores each batch in one database transaction, executing the next batch while
    /// the one before is written (`LedgerStore.appendCertified(batches:executor:more:)`; `more`
    /// supplies further batches continuing the chain, asked for before the writes are waited
    /// for). The caller must have verified each certificate against the genesis validators, and
    /// must then hand the same blocks to the replica (`onCommittedBlocks`), which commits the
    /// stored ones through `validate` and `commit` without executing or writing them again.
    /// Throws if a batch does not re-execute to its headers (or cannot be written): the batches
    /// before it are stored and recorded, nothing of it or after it is.
    public mutating func storeCertified(batches: [[CommittedBlock]], more: () -> [[CommittedBlock]] = { [] }) throws {
        var given = batches.filter { !$0.isEmpty }
        let (results, error) = store.appendCertified(batches: batches, executor: executor) {
            let next = more()
            given += next.filter { !$0.isEmpty }
            return next
        }
        for (blocks, batchResults) in zip(given, results) {
            databaseCommits += 1
            for (committed, receipts) in zip(blocks, batchResults) {
                stored[committed.certificate.blockHash] = (committed.block.header.height, receipts)
            }
        }
        let head = store.tip.height
        speculative = speculative.filter { $0.value.tip.height > head }
        if let error { throw error }
    }

    /// Whether blocks stored by `storeCertified` still wait for the replica to commit them.
    public var hasStoredUncommitted: Bool { !stored.isEmpty }

    /// Takes the receipts of blocks committed since the last call.
    public mutating func takeCommitted() -> [(Height, [Receipt])] {
        defer { committedSinceLastTake = [] }
        return committedSinceLastTake
    }
}
