import Consensus
import Dispatch
import Foundation
import LedgerCore
import LedgerStore
import Synchronization

/// The shell that runs one validator: it owns the PBFT replica and the store-backed application,
/// feeds them every input on one serial queue (messages, client transactions, timers, fetched
/// blocks), and performs their directives in order: persist the replica state (fsync) before
/// sending anything that depends on it, then send, then arm timers. Committed blocks are in SQLite
/// before the replica reports them (one database transaction per block; during catch-up one per
/// batch of up to 256 fetched blocks or 8,000 transactions).
///
/// Throughput: frames that queued up while the node was busy are taken together and their
/// directives performed as one group: one replica-state flush (the latest state covers every
/// earlier one) before any of the group's sends. Client transactions pass an admission stage
/// first that checks their signatures on every core, in arrival order, once per transaction id,
/// so the serial queue only does the cheap checks (nonce, duplicates, rule dry run). Admitted
/// client transactions are relayed to the other validators in batches, one frame for many.
///
/// It also serves catch-up: peers ask for committed blocks with certificates, and a node behind
/// fetches them in batches, re-executes them (trusting the certificates for client signatures),
/// and rejoins consensus without a restart. Fetching and certificate checks run in a pipeline on
/// their own queue (`CatchUpPipeline`) while this queue applies the blocks already verified.
public final class ValidatorNode: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var genesis: Genesis
        public var suite: any CryptoSuite
        public var me: ValidatorIndex
        public var key: any SigningKey
        public var dataDirectory: String
        /// The node's clock reading; the replica only compares it with proposals' timestamps.
        public var clock: @Sendable () -> ConsensusTime
        public var maxPoolSize: Int
        /// How long a primary waits for a full block before it proposes a smaller one. 10 ms by
        /// default: at half the saturation rate, 5 ms made blocks a third smaller and more of them,
        /// and the queueing their fixed costs added lengthened p50 more than the shorter wait
        /// saved (DECISIONS 51); at low rates it adds about 5 ms of latency.
        public var batchDelayMilliseconds: UInt64
        /// Blocks a primary keeps in flight before the earliest commits.
        public var pipelineDepth: UInt64
        /// How long a signature check waits for the same transaction's check running elsewhere in
        /// the node before it checks the signature itself (`SignaturesInFlight`).
        public var signatureWaitMilliseconds: UInt64
        /// Transactions one catch-up must fetch before the node counts as far behind: it then parks
        /// relays, lets later runs join a catch-up turn, and may go bulk (`suspendReadModelIndexesIfBulk`).
        public var farBehindTransactions: Int
        public static let defaultFarBehindTransactions = 5_000

        public init(genesis: Genesis, suite: any CryptoSuite, me: ValidatorIndex, key: any SigningKey, dataDirectory: String,
                    clock: @escaping @Sendable () -> ConsensusTime = ValidatorNode.wallClock, maxPoolSize: Int = 50_000,
                    batchDelayMilliseconds: UInt64 = 10, pipelineDepth: UInt64 = 4, signatureWaitMilliseconds: UInt64 = 50,
                    farBehindTransactions: Int = Configuration.defaultFarBehindTransactions) {
            self.genesis = genesis
            self.suite = suite
            self.me = me
            self.key = key
            self.dataDirectory = dataDirectory
            self.clock = clock
            self.maxPoolSize = maxPoolSize
            self.batchDelayMilliseconds = batchDelayMilliseconds
            self.pipelineDepth = pipelineDepth
            self.signatureWaitMilliseconds = signatureWaitMilliseconds
            self.farBehindTransactions = farBehindTransactions
        }
    }

    /// What happened, for logs and metrics. Emitted on the node's queue; handlers must be quick.
    public enum Event: Sendable {
        case committed(height: Height, transactions: Int, rejected: Int)
        case viewChanged(View)
        case misbehaviour(ValidatorIndex, Evidence)
        case catchUp(from: Height, to: Height, peer: ValidatorIndex)
        case ignoredFrame(from: ValidatorIndex, reason: String)
        /// A bulk catch-up dropped the read-model indexes (`seconds` nil) or built them again (in
        /// `seconds`; DECISIONS 45).
        case readModelIndexes(suspended: Bool, seconds: Double?)
        case halted(NodeError)
    }

    /// Where a submitted transaction stands.
    public enum TransactionStatus: Sendable, Equatable {
        case pending
        case committed(height: Height)
        case rejected(height: Height?, Rejection)
        case unknown
    }

    /// Cores to spread signature checks over, read once: Foundation reads the cgroup's CPU quota
    /// from files on every call, which showed in profiles when it ran per admitted group.
    static let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)

    public static let wallClock: @Sendable () -> ConsensusTime = {
        ConsensusTime(millisecondsSinceEpoch: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)))
    }

    public let configuration: Configuration
    public let store: LedgerStore
    let queue: DispatchQueue
    let servingQueue: DispatchQueue
    let admissionQueue: DispatchQueue
    let stateFile: ReplicaStateFile
    var replica: Replica
    var application: StoreApplication
    var links: (any PeerLinks)?
    var timers: [ReplicaTimer.Kind: (ReplicaTimer, DispatchWorkItem)] = [:]
    /// Fetches and verifies catch-up blocks on its own queue; the node's queue applies them.
    var catchUp: CatchUpPipeline!
    /// Verified catch-up runs waiting for the node's queue, in height order.
    let catchUpInbox = Mutex<[CatchUpPipeline.Run]>([])
    /// The catch-up epoch whose ledger size `suspendReadModelIndexesIfBulk` read, and that size.
    var bulkCatchUpCheck: (epoch: UInt64, ledgerTransactions: Int)?
    /// The links, for the catch-up pipeline's requests (sent from its own queue).
    let sharedLinks = Mutex<(any PeerLinks)?>(nil)
    var waiters: [Hash: [CheckedContinuation<TransactionStatus, Never>]] = [:]
    /// Clients waiting for a block to commit (`waitForHeight`), each with a token for its timeout.
    var heightWaiters: [(height: Height, token: UInt64, continuation: CheckedContinuation<Bool, Never>)] = []
    var lastHeightWaiterToken: UInt64 = 0
    /// Most clients waiting for a block at once; more are answered at once.
    static let maxHeightWaiters = 1_024
    /// Transactions admitted here and not yet committed or dropped.
    var pending = Set<Hash>()
    var dropped: [Hash: Rejection] = [:]
    var droppedOrder: [Hash] = []
    var eventHandler: (@Sendable (Event) -> Void)?
    public private(set) var haltReason: NodeError?
    private var lastView: View
    /// Directives collected from the inputs of one group, performed together by `flush`.
    var collected: [Directive] = []
    /// Client transactions admitted in this group, relayed to the other validators by `flush`.
    var relay: [SignedTransaction] = []
    /// Frames from peers waiting for the queue, taken as one group.
    let inbox = Mutex<[(frame: [UInt8], peer: ValidatorIndex)]>([])
    /// Transaction batches waiting for the admission stage, in arrival order.
    let admissionInbox = Mutex<[Submission]>([])
    /// Transaction ids this node has taken into admission recently (bounded): a copy relayed by
    /// another validator is not checked a second time. A relayed copy arrives within a second or
    /// two; 65,536 ids are many seconds of load at any rate this machine reaches.
    let seen = Mutex(SeenIDs(limit: 65_536))
    /// Client signatures this node found valid recently, with the key each verified against, by
    /// transaction id (bounded, oldest forgotten first). A transaction reaches a node twice, in a
    /// relay and inside a proposal, in either order and often while the other copy is still
    /// queued; whichever is checked first spares the other its check (`verifySignatures`).
    let checkedSignatures = Mutex(CheckedSignatures(limit: 32_768))
    /// Transactions whose signatures a `verifySignatures` call is checking right now: the memo
    /// only helps once a check has finished, and under load the two copies are often checked at
    /// the same time (admission and a proposal's validation run on different queues).
    let signaturesInFlight: SignaturesInFlight
    /// Frames from peers waiting for the queue. Past `maxQueuedFrames` new frames are dropped
    /// (PBFT recovers lost messages by retransmission and catch-up), so a flood cannot exhaust memory.
    let queuedFrames = Atomic<Int>(0)
    public static let maxQueuedFrames = 20_000
    /// Frames dropped because the queue was full (for metrics).
    public let droppedFrames = Atomic<Int>(0)
    /// Misbehaviour this node has detected and reported, with evidence, since it started (for metrics).
    public let misbehaviourReports = Atomic<Int>(0)
    /// Blocks and transactions committed since the node started (for metrics).
    public let blocksCommitted = Atomic<Int>(0)
    public let transactionsCommitted = Atomic<Int>(0)
    /// Client signatures this node verified (each should be about one per transaction it commits:
    /// a signature already checked is remembered, whichever copy of the transaction came first).
    public let clientSignatureChecks = Atomic<Int>(0)
    /// CPU time the checking threads spent in those checks, in nanoseconds (each thread's own
    /// clock, read around every group of checks): with `clientSignatureChecks`, what one check costs
    /// while the node is under load, and what the node's other work is (DECISIONS 58).
    public let clientSignatureCheckNanoseconds = Atomic<Int>(0)
    /// Database commits of blocks since the node started (each one SQLite WAL commit with a flush).
    let storeCommits = Atomic<Int>(0)
    /// Flushes to disk the node asked for since it started: replica-state saves plus one per block
    /// commit (SQLite's own count is close to that: one WAL flush per commit, more at checkpoints).
    public var fsyncs: Int { stateFile.flushes.load(ordering: .relaxed) + storeCommits.load(ordering: .relaxed) }
    /// The node's queue at work on its inputs (peer messages, admitted transactions, timers,
    /// catch-up turns): the rate of its time is the share of wall time the node's one serial stage
    /// is busy, computing, flushing to disk or waiting for a core (`scf_queue_busy_seconds_total`).
    public let queueBusy = DurationCounter()
    /// Blocks agreed live that this node wrote (the database transaction and its flush; execution
    /// not included), kept by the application (`scf_block_store_seconds_total`).
    public let blockStores = DurationCounter()
    /// Consensus-state saves that wrote to disk (`ReplicaStateFile.save`).
    public var stateSaves: DurationCounter { stateFile.writtenSaves }
    /// Most transactions one relay frame carries.
    public static let maxRelayBatch = 2_000
    /// Largest catch-up response (bytes of encoded blocks; at least one block is always sent).
    public static let maxCatchUpResponseBytes = 4 << 20

    /// Client transactions waiting for admission: from a client of this node (answered through
    /// `reply`) or relayed by another validator.
    struct Submission: Sendable {
        var transactions: [SignedTransaction]
        var reply: (@Sendable ([Rejection?]) -> Void)?
        /// A relay frame from a peer, decoded by the admission stage.
        var frame: (bytes: [UInt8], peer: ValidatorIndex)?
        /// A relay parked while the node caught up (`park`): mostly committed since it arrived.
        var parked = false

        init(transactions: [SignedTransaction], reply: (@Sendable ([Rejection?]) -> Void)?) {
            self.transactions = transactions
            self.reply = reply
        }
        init(frame: [UInt8], from peer: ValidatorIndex) {
            transactions = []
            self.frame = (frame, peer)
        }
    }

    /// A bounded map keyed by transaction id, oldest forgotten first: a dictionary plus a ring of
    /// the ids in insertion order, both allocated once at `limit` (about 6 MB for 65,536 ids
    /// without values; about 7 MB for 32,768 checked signatures).
    struct RecentIDs<Value> {
        var entries: [Hash: Value]
        var ring: [Hash]
        /// Where the next id goes in `ring` (the oldest once the ring is full).
        var next = 0
        let limit: Int
        init(limit: Int) {
            self.limit = max(1, limit)
            entries = Dictionary(minimumCapacity: self.limit)
            ring = []
            ring.reserveCapacity(self.limit)
        }
        /// Whether the id is new (and remembers it with `value`; a known id keeps its value).
        mutating func insert(_ id: Hash, _ value: Value) -> Bool {
            guard entries[id] == nil else { return false }
            entries[id] = value
            if ring.count < limit {
                ring.append(id)
            } else {
                entries[ring[next]] = nil
                ring[next] = id
            }
            next = (next + 1) % limit
            return true
        }
        mutating func remove(_ id: Hash) { entries[id] = nil }
    }

    /// Transaction ids recently taken into admission.
    typealias SeenIDs = RecentIDs<Void>

    /// Signatures found valid, by transaction id.
    typealias CheckedSignatures = RecentIDs<CheckedSignature>

    struct CheckedSignature {
        var signature: Signature
        var key: PublicKey
    }

    /// Opens the node's ledger and replica state in its data directory and restarts the replica
    /// from them (a fresh directory starts at genesis).
    public init(configuration: Configuration, events: (@Sendable (Event) -> Void)? = nil) throws {
        self.configuration = configuration
        signaturesInFlight = SignaturesInFlight(timeout: Double(configuration.signatureWaitMilliseconds) / 1_000)
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        store = try LedgerStore.open(path: (configuration.dataDirectory as NSString).appendingPathComponent("ledger.sqlite"),
                                     genesis: configuration.genesis, suite: configuration.suite, buildingMissingIndexes: true)
        stateFile = ReplicaStateFile(directory: configuration.dataDirectory, suite: configuration.suite)
        let persisted = try stateFile.load()
        application = StoreApplication(store: store, genesis: configuration.genesis, suite: configuration.suite, clock: configuration.clock,
                                       blockStores: blockStores)
        // The node relays every admitted transaction to all validators itself, so the replica
        // need not forward each one to the primary as well.
        replica = Replica(configuration: ReplicaConfiguration(genesis: configuration.genesis, suite: configuration.suite,
                                                               me: configuration.me, key: configuration.key,
                                                               maxPoolSize: configuration.maxPoolSize,
                                                               pipelineDepth: configuration.pipelineDepth,
                                                               batchDelayMilliseconds: configuration.batchDelayMilliseconds,
                                                               forwardsRequests: false))
        lastView = persisted?.view ?? View(0)
        queue = DispatchQueue(label: "scf.node.\(configuration.me.value)")
        servingQueue = DispatchQueue(label: "scf.node.\(configuration.me.value).serving")
        admissionQueue = DispatchQueue(label: "scf.node.\(configuration.me.value).admission")
        eventHandler = events
        var catchUpSettings = CatchUpPipeline.Settings()
        catchUpSettings.farBehindTransactions = configuration.farBehindTransactions
        catchUp = CatchUpPipeline(
            genesis: configuration.genesis, suite: configuration.suite, label: "scf.node.\(configuration.me.value).catch-up",
            settings: catchUpSettings,
            send: { [weak self] frame, peer in
                guard let links = self?.sharedLinks.withLock({ $0 }) else { return false }
                links.send(frame, to: peer)
                return true
            },
            deliver: { [weak self] run in self?.deliverCatchUp(run) },
            refuse: { [weak self] peer, reason in
                guard let node = self else { return }
                node.queue.async { node.emit(.ignoredFrame(from: peer, reason: reason)) }
            })
        catchUp.ended = { [weak self] in
            guard let self else { return }
            releaseParkedRelays()
            queue.async { [self] in restoreReadModelIndexes() }
        }
        // A proposal's transactions not admitted here yet: checked on every core (and once).
        application.checkedElsewhere = { [weak self] transactions in
            guard let self else { return [:] }
            let valid = verifySignatures(transactions)
            var found: [Hash: Signature] = [:]
            for transaction in transactions where valid[transaction.id] != nil { found[transaction.id] = transaction.signature }
            return found
        }
        let head = store.tip
        queue.sync {
            let output = replica.onRestart(persisted: persisted, head: head, now: configuration.clock(), application: &application)
            perform(output)
        }
    }

    /// Connects the node to its peers; frames from them go to `receive(_:from:)`.
    public func attach(_ links: any PeerLinks) {
        queue.sync {
            self.links = links
            sharedLinks.withLock { $0 = links }
        }
    }

    // MARK: Inputs

    /// A frame from an authenticated peer.
    public func receive(_ frame: [UInt8], from peer: ValidatorIndex) {
        guard queuedFrames.add(1, ordering: .relaxed).newValue <= Self.maxQueuedFrames else {
            queuedFrames.subtract(1, ordering: .relaxed)
            droppedFrames.add(1, ordering: .relaxed)
            return
        }
        // Relayed client transactions go straight to the admission stage, so they keep their
        // order with the transactions clients submit here (one signer's nonces in sequence).
        if NodeMessage.carriesTransactions(frame) {
            if !park(frame, from: peer) { enqueueAdmission(Submission(frame: frame, from: peer)) }
            return
        }
        // Catch-up answers go to the pipeline, which decodes and verifies them on its own queue.
        if NodeMessage.carriesBlocks(frame) {
            catchUp.queue.async { [self] in
                queuedFrames.subtract(1, ordering: .relaxed)
                catchUp.answer(frame, from: peer)
            }
            return
        }
        let first = inbox.withLock { inbox in
            inbox.append((frame, peer))
            return inbox.count == 1
        }
        if first { queue.async { [self] in drainInbox() } }
    }

    /// Relayed transactions that arrived while catching up, for admission once it ends (bounded).
    let parkedRelays = Mutex<(frames: [(frame: [UInt8], peer: ValidatorIndex)], bytes: Int)>(([], 0))
    /// Bytes of relays parked at most; past it, new relays are dropped (the other validators keep
    /// them in their pools).
    static let maxParkedRelayBytes = 64 << 20

    /// While catching up from far behind, keeps a relay frame for later: after a restart the peers
    /// deliver every relay they queued while this node was down, mostly committed since, and this
    /// node cannot judge them on its old state anyway; checking their signatures took a core from
    /// the catch-up. Once it ends, `releaseParkedRelays` admits them, dropping the committed ones
    /// unchecked. Only far behind (`CatchUpPipeline.farBehind`): a node a few blocks behind keeps
    /// admitting relays at once, so they stay in order with what clients submit to it directly.
    func park(_ frame: [UInt8], from peer: ValidatorIndex) -> Bool {
        parkedRelays.withLock { parked in
            guard catchUp.farBehind.load(ordering: .sequentiallyConsistent) else { return false }
            queuedFrames.subtract(1, ordering: .relaxed)
            if parked.bytes + frame.count <= Self.maxParkedRelayBytes {
                parked.frames.append((frame, peer))
                parked.bytes += frame.count
            } else {
                droppedFrames.add(1, ordering: .relaxed)
            }
            return true
        }
    }

    func releaseParkedRelays() {
        let frames = parkedRelays.withLock { parked in
            defer { parked = ([], 0) }
            return parked.frames
        }
        for (frame, peer) in frames {
            queuedFrames.add(1, ordering: .relaxed)   // `drainAdmission` counts it out
            var submission = Submission(frame: frame, from: peer)
            submission.parked = true
            enqueueAdmission(submission)
        }
    }

    /// Handles every frame that arrived since the last group, then performs their directives.
    func drainInbox() {
        let frames = inbox.withLock { inbox in
            defer { inbox = [] }
            return inbox
        }
        queuedFrames.subtract(frames.count, ordering: .relaxed)
        guard haltReason == nil else { return }
        // The group's reads of the store (executing proposals, committed-id checks) share read
        // transactions (`LedgerStore.readTogether`).
        queueBusy.time { store.readTogether { handle(frames) } }
    }

    func handle(_ frames: [(frame: [UInt8], peer: ValidatorIndex)]) {
        for (frame, peer) in frames {
            let message: NodeMessage
            do {
                message = try NodeMessage(wireBytes: frame, suite: configuration.suite)
            } catch {
                emit(.ignoredFrame(from: peer, reason: "undecodable frame: \(error)"))
                continue
            }
            switch message {
            case .consensus(let consensus):
                collect(replica.onMessage(consensus, from: peer, now: configuration.clock(), application: &application))
            case .transaction(let transaction):
                enqueueAdmission(Submission(transactions: [transaction], reply: nil))   // not reached: `receive` routes these
            case .transactions(let transactions):
                enqueueAdmission(Submission(transactions: transactions, reply: nil))
            case .blocksRequest(let from, let limit):
                serveBlocks(from: from, limit: limit, to: peer)
            case .blocks:
                catchUp.receive(frame, from: peer)   // not reached: `receive` routes these
            }
        }
        flush()
    }

    /// A client transaction: admitted into the pool and relayed to every validator, or refused
    /// with a reason. Waits only for admission, not for commitment. Blocks the caller until the
    /// node's queue takes it (never call it on that queue); from an event loop use the async form.
    public func submit(_ transaction: SignedTransaction) -> Rejection? {
        let answer = Mutex<Rejection?>(nil)
        let done = DispatchSemaphore(value: 0)
        enqueueAdmission(Submission(transactions: [transaction]) { results in
            answer.withLock { $0 = results.first ?? nil }
            done.signal()
        })
        done.wait()
        return answer.withLock { $0 }
    }

    /// The same without blocking the calling thread (for the HTTP server's event loops).
    public func submit(_ transaction: SignedTransaction) async -> Rejection? {
        await submit([transaction]).first ?? nil
    }

    /// Many client transactions at once, admitted in order (a signer's nonces may follow each
    /// other in one batch); one answer per transaction: nil if admitted (or already pooled).
    public func submit(_ transactions: [SignedTransaction]) async -> [Rejection?] {
        guard !transactions.isEmpty else { return [] }
        return await withCheckedContinuation { continuation in
            enqueueAdmission(Submission(transactions: transactions) { continuation.resume(returning: $0) })
        }
    }

    // MARK: Admission

    func enqueueAdmission(_ submission: Submission) {
        let first = admissionInbox.withLock { inbox in
            inbox.append(submission)
            return inbox.count == 1
        }
        if first { admissionQueue.async { [self] in drainAdmission() } }
    }

    /// The admission stage: checks the client signatures of everything waiting, spread over the
    /// cores, then hands the batch to the node's queue in arrival order. A transaction id seen
    /// recently is not checked again here (the queue drops a duplicate cheaply), and a copy
    /// relayed by a peer is not passed on at all.
    func drainAdmission() {
        var submissions = admissionInbox.withLock { inbox in
            defer { inbox = [] }
            return inbox
        }
        var undecodable: [(ValidatorIndex, String)] = []
        for index in submissions.indices {
            guard let (frame, peer) = submissions[index].frame else { continue }
            queuedFrames.subtract(1, ordering: .relaxed)
            do {
                switch try NodeMessage(wireBytes: frame, suite: configuration.suite) {
                case .transaction(let transaction): submissions[index].transactions = [transaction]
                case .transactions(let transactions): submissions[index].transactions = transactions
                default: break
                }
            } catch {
                undecodable.append((peer, "undecodable frame: \(error)"))
            }
        }
        // Relays parked during a catch-up, or arriving while one runs, are mostly committed here
        // already: those are dropped before their signatures are checked (a client's own
        // submission still gets its answer from the pool's checks). A live relay is almost never
        // committed yet, and the pool's checks refuse it if it is (`replayed`), so it is not looked
        // up here as well: at half load that second lookup of every relayed id was 2% of a node.
        let mostlyCommitted = catchUp.active.load(ordering: .relaxed) || submissions.contains { $0.parked }
        let relayed = mostlyCommitted ? submissions.filter { $0.reply == nil }.flatMap(\.transactions) : []
        if !relayed.isEmpty, let committed = try? store.committedTransactionIDs(among: relayed.map(\.id)), !committed.isEmpty {
            for index in submissions.indices where submissions[index].reply == nil {
                submissions[index].transactions.removeAll { committed.contains($0.id) }
            }
        }
        var toCheck: [SignedTransaction] = []
        seen.withLock { seen in
            for index in submissions.indices {
                if submissions[index].reply == nil {
                    submissions[index].transactions = submissions[index].transactions.filter { seen.insert($0.id) }
                    toCheck += submissions[index].transactions
                } else {
                    for transaction in submissions[index].transactions where seen.insert(transaction.id) { toCheck.append(transaction) }
                }
            }
        }
        let verified = verifySignatures(toCheck)
        let ready = submissions
        let problems = undecodable
        queue.async { [self] in
            for (peer, reason) in problems { emit(.ignoredFrame(from: peer, reason: reason)) }
            admit(ready, verified: verified)
        }
    }

    /// The signer's registered key for each transaction whose signature verifies with it. A key
    /// is only a hint: the queue uses it if the signer's key in the ledger is still the same.
    /// Signatures checked recently (`checkedSignatures`) are not checked again; those checked
    /// now are remembered. Runs on the admission stage's queue and on the node's.
    ///
    /// Two calls often hold the same transaction at the same time (a relay's admission and the
    /// proposal carrying it, on different queues): each transaction is claimed just before its
    /// check (`SignaturesInFlight`), so one the other call is checking at that moment is left to
    /// it, waited for (at most `signatureWaitMilliseconds`, a single check takes a fraction of a
    /// millisecond) and read from the memo afterwards; what is still not there (an invalid
    /// signature, other bytes under the same id) is checked here. At saturation backups checked
    /// 1.16-1.18 signatures per committed transaction before, 1.00 for the primary
    /// (`scf_client_signature_checks_total`).
    func verifySignatures(_ submitted: [SignedTransaction]) -> [Hash: PublicKey] {
        guard !submitted.isEmpty else { return [:] }
        let (known, unchecked) = rememberedSignatures(submitted)
        guard !unchecked.isEmpty else { return known }
        var (verified, othersChecking) = checkSignatures(unchecked)
        if !othersChecking.isEmpty {
            signaturesInFlight.waitUntilChecked(othersChecking)
            let (found, missing) = rememberedSignatures(othersChecking)
            verified.merge(found) { first, _ in first }
            verified.merge(checkSignatures(missing, claiming: false).verified) { first, _ in first }
        }
        return known.merging(verified) { first, _ in first }
    }

    /// How many transactions a signature checker claims, looks up and remembers under one lock.
    static let signatureClaimGroup = 16

    /// The memo's keys for the transactions it holds (same id, same signature bytes), and the rest.
    func rememberedSignatures(_ transactions: [SignedTransaction]) -> (known: [Hash: PublicKey], unchecked: [SignedTransaction]) {
        var known: [Hash: PublicKey] = [:]
        var unchecked: [SignedTransaction] = []
        checkedSignatures.withLock { memo in
            for transaction in transactions {
                if let key = Self.rememberedKey(transaction, in: memo) { known[transaction.id] = key } else { unchecked.append(transaction) }
            }
        }
        return (known, unchecked)
    }

    /// The calling thread's CPU time so far (two reads per group of 16 checks cost well under 1%
    /// of the checks they time).
    static func threadCPUNanoseconds() -> Int {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return time.tv_sec * 1_000_000_000 + time.tv_nsec
    }

    /// Checks the signatures against the signers' registered keys, on every core, and remembers
    /// the valid ones. With `claiming`, each transaction is claimed just before its check and
    /// looked up in the memo once claimed (another call may have checked it meanwhile); one
    /// another call is checking at that moment is returned in `othersChecking`, unchecked.
    func checkSignatures(_ transactions: [SignedTransaction], claiming: Bool = true)
        -> (verified: [Hash: PublicKey], othersChecking: [SignedTransaction]) {
        var lookup: [MemberID: PublicKey] = [:]
        for transaction in transactions where lookup[transaction.body.signer] == nil {
            if let member = try? store.member(transaction.body.signer) { lookup[transaction.body.signer] = member.publicKey }
        }
        let keys = lookup
        let suite = configuration.suite
        let chunks = min(transactions.count, ValidatorNode.cores * 4)
        let results = Mutex<(verified: [Hash: PublicKey], othersChecking: [SignedTransaction])>(([:], []))
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            var local: [Hash: PublicKey] = [:]
            var deferred: [SignedTransaction] = []
            var checks = 0
            var checkNanoseconds = 0
            // A chunk takes every `chunks`-th transaction, a group of them at a time: the claims,
            // the memo's lookups and its updates take one lock per group, not one per
            // transaction (at saturation the per-transaction locks were 1% of the CPU, mostly
            // contention between the two queues that check signatures).
            var group: [(transaction: SignedTransaction, key: PublicKey)] = []
            group.reserveCapacity(Self.signatureClaimGroup)
            var index = chunk
            while index < transactions.count {
                group.removeAll(keepingCapacity: true)
                while index < transactions.count, group.count < Self.signatureClaimGroup {
                    let transaction = transactions[index]
                    index += chunks
                    if let key = keys[transaction.body.signer] { group.append((transaction, key)) }
                }
                if claiming {
                    let claims = signaturesInFlight.tryClaim(group.lazy.map(\.transaction.id))
                    let mine = zip(group, claims).filter { $0.1 }.map(\.0)
                    deferred += zip(group, claims).filter { !$0.1 }.map(\.0.transaction)
                    // Another call may have checked some of them meanwhile: those are done.
                    let remembered = checkedSignatures.withLock { memo in mine.map { Self.rememberedKey($0.transaction, in: memo) } }
                    var done: [Hash] = []
                    group.removeAll(keepingCapacity: true)
                    for (entry, key) in zip(mine, remembered) {
                        if let key { local[entry.transaction.id] = key; done.append(entry.transaction.id) } else { group.append(entry) }
                    }
                    signaturesInFlight.release(done)
                }
                var valid: [(Hash, CheckedSignature)] = []
                let started = group.isEmpty ? 0 : Self.threadCPUNanoseconds()
                for (transaction, key) in group {
                    checks += 1
                    if transaction.hasValidSignature(publicKey: key, suite: suite) {
                        local[transaction.id] = key
                        valid.append((transaction.id, CheckedSignature(signature: transaction.signature, key: key)))
                    }
                }
                if !group.isEmpty { checkNanoseconds += Self.threadCPUNanoseconds() - started }
                if !valid.isEmpty { checkedSignatures.withLock { memo in for (id, checked) in valid { _ = memo.insert(id, checked) } } }
                if claiming { signaturesInFlight.release(group.map(\.transaction.id)) }
            }
            clientSignatureChecks.add(checks, ordering: .relaxed)
            clientSignatureCheckNanoseconds.add(checkNanoseconds, ordering: .relaxed)
            results.withLock {
                $0.verified.merge(local) { first, _ in first }
                $0.othersChecking += deferred
            }
        }
        return results.withLock { $0 }
    }

    /// The key the memo holds for this exact signature, if any.
    static func rememberedKey(_ transaction: SignedTransaction, in memo: CheckedSignatures) -> PublicKey? {
        guard let entry = memo.entries[transaction.id], entry.signature == transaction.signature else { return nil }
        return entry.key
    }

    /// On the node's queue: pool admission (nonce, duplicates, rules) of checked transactions.
    func admit(_ submissions: [Submission], verified: [Hash: PublicKey]) {
        guard haltReason == nil || submissions.contains(where: { $0.reply != nil }) else { return }
        let answers = queueBusy.time { store.readTogether {
            let answers = admitGroup(submissions, verified: verified)
            // Relay (and persist, and send) before answering: a client that then submits its next
            // nonce to another validator finds this one already on its way.
            flush()
            return answers
        } }
        for (submission, answer) in zip(submissions, answers) { submission.reply?(answer) }
    }

    /// Pool admission of a group of submissions (a submission with a `reply` is a client's own;
    /// without, another validator's relay); one answer per transaction, per submission. Collects
    /// the directives and the relays without performing them.
    func admitGroup(_ submissions: [Submission], verified: [Hash: PublicKey]) -> [[Rejection?]] {
        // One replica call for the whole group: it admits each transaction in order, then
        // proposes, votes and persists once (per transaction, the primary used to rebuild its
        // candidate block for every admission).
        var transactions: [SignedTransaction] = []
        var fromClients = Set<Hash>()
        for submission in submissions {
            transactions += submission.transactions
            if submission.reply != nil { for transaction in submission.transactions { fromClients.insert(transaction.id) } }
        }
        var outcomes: [Outcome] = []
        if haltReason == nil, !transactions.isEmpty {
            application.admissionGroup = StoreApplication.AdmissionGroup(
                preverified: verified,
                headIsCurrent: replica.inFlightHeights.isEmpty && !catchUp.fetchedBlocks.load(ordering: .relaxed),
                fromClients: fromClients, committed: try? store.committedTransactionIDs(among: transactions.map(\.id)))
            let (results, output) = replica.onClientRequests(transactions, now: configuration.clock(), application: &application)
            application.admissionGroup = nil
            collect(output)
            outcomes = results
        }
        let rejections = application.takeAdmissionRejections()
        var replies: [[Rejection?]] = []
        var index = 0
        for submission in submissions {
            var answers: [Rejection?] = []
            answers.reserveCapacity(submission.transactions.count)
            for transaction in submission.transactions {
                let answer: Rejection?
                if let haltReason {
                    answer = Rejection(.invalidState, "this node has stopped: \(haltReason.message)")
                } else {
                    switch outcomes[index] {
                    case .accepted:
                        pending.insert(transaction.id)
                        if submission.reply != nil { relay.append(transaction) }
                        answer = nil
                    case .ignored:
                        answer = nil
                    case .rejected(let reason):
                        answer = rejections[transaction.id] ?? Rejection(.invalidState, reason)
                    case .misbehaving:
                        answer = Rejection(.invalidState, "refused")
                    }
                }
                index += 1
                if answer != nil { seen.withLock { $0.remove(transaction.id) } }
                answers.append(answer)
            }
            replies.append(answers)
        }
        return replies
    }

    /// Waits until the transaction commits or is refused, or `timeout` passes (then `.pending`).
    public func waitForOutcome(of id: Hash, timeout: Duration) async -> TransactionStatus {
        let current = status(of: id)
        if current != .pending && current != .unknown { return current }
        return await withCheckedContinuation { continuation in
            queue.async { [self] in
                let now = statusOnQueue(of: id)
                if now != .pending && now != .unknown {
                    continuation.resume(returning: now)
                    return
                }
                waiters[id, default: []].append(continuation)
                queue.asyncAfter(deadline: .now() + timeout.seconds) { [self] in
                    guard var list = waiters[id], !list.isEmpty else { return }
                    list.removeFirst().resume(returning: .pending)
                    waiters[id] = list.isEmpty ? nil : list
                }
            }
        }
    }

    /// Waits until the committed head reaches `height` (true) or `timeout` passes (false): a
    /// long poll for a client following the chain, instead of asking again every few milliseconds.
    public func waitForHeight(_ height: Height, timeout: Duration) async -> Bool {
        await withCheckedContinuation { continuation in
            queue.async { [self] in
                guard store.tip.height < height else { return continuation.resume(returning: true) }
                guard haltReason == nil, heightWaiters.count < Self.maxHeightWaiters else { return continuation.resume(returning: false) }
                lastHeightWaiterToken += 1
                let token = lastHeightWaiterToken
                heightWaiters.append((height, token, continuation))
                queue.asyncAfter(deadline: .now() + timeout.seconds) { [self] in
                    guard let index = heightWaiters.firstIndex(where: { $0.token == token }) else { return }
                    heightWaiters.remove(at: index).continuation.resume(returning: false)
                }
            }
        }
    }

    /// Resumes the clients waiting for a height the head has reached.
    func wakeHeightWaiters() {
        let tip = store.tip.height
        guard heightWaiters.contains(where: { $0.height <= tip }) else { return }
        var waiting: [(height: Height, token: UInt64, continuation: CheckedContinuation<Bool, Never>)] = []
        for waiter in heightWaiters {
            if waiter.height <= tip { waiter.continuation.resume(returning: true) } else { waiting.append(waiter) }
        }
        heightWaiters = waiting
    }

    /// Where a transaction stands on this node.
    public func status(of id: Hash) -> TransactionStatus {
        queue.sync { statusOnQueue(of: id) }
    }

    func statusOnQueue(of id: Hash) -> TransactionStatus {
        if let stored = try? store.transaction(id: id) {
            if let rejection = stored.receipt.rejection { return .rejected(height: stored.height, rejection) }
            return .committed(height: stored.height)
        }
        if let rejection = dropped[id] { return .rejected(height: nil, rejection) }
        return pending.contains(id) ? .pending : .unknown
    }

    public struct Status: Sendable {
        public var height: Height
        public var headHash: Hash
        public var view: View
        public var primary: ValidatorIndex
        public var isPrimary: Bool
        public var pooled: Int
        public var catchingUp: Bool
        /// The read-model indexes are dropped for a bulk catch-up (queries scan until it ends).
        public var readModelIndexesSuspended: Bool
        public var halted: String?
    }

    public var nodeStatus: Status {
        queue.sync {
            Status(height: store.tip.height, headHash: store.tip.hash, view: replica.view,
                   primary: configuration.genesis.validatorSet.primary(of: replica.view), isPrimary: replica.isPrimary,
                   pooled: pending.count, catchingUp: catchUp.active.load(ordering: .relaxed),
                   readModelIndexesSuspended: store.readModelIndexesSuspended, halted: haltReason?.message)
        }
    }

    /// Stops timers and intake. The store stays open until the node is released.
    public func stop() {
        queue.sync {
            for (_, timer) in timers { timer.1.cancel() }
            timers = [:]
            catchUp.stop()
            links = nil
            sharedLinks.withLock { $0 = nil }
            haltReason = haltReason ?? NodeError(.halted, "the node was stopped")
            for (_, list) in waiters { for waiter in list { waiter.resume(returning: .pending) } }
            waiters = [:]
            for waiter in heightWaiters { waiter.continuation.resume(returning: false) }
            heightWaiters = []
        }
    }

    // MARK: Directives

    /// Performs one output at once.
    func perform(_ output: ReplicaOutput) {
        collect(output)
        flush()
    }

    /// Adds an output's directives to the current group.
    func collect(_ output: ReplicaOutput) {
        collected += output.directives
    }

    /// Performs the group's directives: the latest replica state first (one flush; it includes
    /// every earlier state of the group, so sending anything after it is as safe as sending each
    /// output's messages after its own persist), then the rest in order.
    func flush() {
        let directives = collected
        collected = []
        if haltReason == nil, !relay.isEmpty {
            var start = 0
            while start < relay.count {
                let end = min(relay.count, start + Self.maxRelayBatch)
                links?.broadcast(NodeMessage.transactions(Array(relay[start..<end])).wireBytes)
                start = end
            }
        }
        relay = []
        if let state = directives.last(where: { if case .persist = $0 { true } else { false } }), case .persist(let latest) = state {
            do {
                try stateFile.save(latest)
            } catch {
                halt(NodeError(.storage, "cannot persist the replica state: \(error); free disk space and restart the node"))
                return
            }
        }
        for directive in directives {
            guard haltReason == nil else { return }
            switch directive {
            case .persist:
                break
            case .send(let message, let peer):
                links?.send(NodeMessage.consensus(message).wireBytes, to: peer)
            case .broadcast(let message):
                links?.broadcast(NodeMessage.consensus(message).wireBytes)
            case .scheduleTimer(let replicaTimer, let milliseconds):
                timers[replicaTimer.kind]?.1.cancel()
                let item = DispatchWorkItem { [weak self] in self?.fire(replicaTimer) }
                timers[replicaTimer.kind] = (replicaTimer, item)
                queue.asyncAfter(deadline: .now() + .milliseconds(Int(min(milliseconds, 3_600_000))), execute: item)
            case .cancelTimer(let replicaTimer):
                if let current = timers[replicaTimer.kind], current.0 == replicaTimer {
                    current.1.cancel()
                    timers[replicaTimer.kind] = nil
                }
            case .commit(let committed):
                blocksCommitted.add(1, ordering: .relaxed)
                transactionsCommitted.add(committed.block.transactions.count, ordering: .relaxed)
            case .requestStateTransfer(let request):
                startCatchUp(request)
            case .reportMisbehaviour(let validator, let evidence):
                misbehaviourReports.add(1, ordering: .relaxed)
                emit(.misbehaviour(validator, evidence))
            case .dropTransaction(let id, let rejection):
                remember(dropped: id, rejection)
            }
        }
        storeCommits.store(application.databaseCommits, ordering: .relaxed)
        if let failure = application.failure {
            halt(NodeError(.storage, "cannot store a committed block: \(failure); the node stops so it can restart and catch up"))
            return
        }
        if !heightWaiters.isEmpty { wakeHeightWaiters() }
        for (height, receipts) in application.takeCommitted() {
            let rejected = receipts.filter { !$0.isCommitted }.count
            emit(.committed(height: height, transactions: receipts.count, rejected: rejected))
            guard !waiters.isEmpty || !pending.isEmpty else { continue }
            for receipt in receipts {
                pending.remove(receipt.transaction)
                guard !waiters.isEmpty, let list = waiters.removeValue(forKey: receipt.transaction) else { continue }
                let status: TransactionStatus = receipt.rejection.map { .rejected(height: height, $0) } ?? .committed(height: height)
                for waiter in list { waiter.resume(returning: status) }
            }
        }
        if replica.view != lastView {
            lastView = replica.view
            emit(.viewChanged(replica.view))
        }
    }

    func fire(_ replicaTimer: ReplicaTimer) {
        guard haltReason == nil, let current = timers[replicaTimer.kind], current.0 == replicaTimer else { return }
        timers[replicaTimer.kind] = nil
        queueBusy.time { store.readTogether { perform(replica.onTimer(replicaTimer, now: configuration.clock(), application: &application)) } }
    }

    func remember(dropped id: Hash, _ rejection: Rejection) {
        pending.remove(id)
        dropped[id] = rejection
        droppedOrder.append(id)
        if droppedOrder.count > 100_000 {
            for old in droppedOrder.prefix(50_000) { dropped[old] = nil }
            droppedOrder.removeFirst(50_000)
        }
        if let list = waiters.removeValue(forKey: id) {
            for waiter in list { waiter.resume(returning: .rejected(height: nil, rejection)) }
        }
    }

    func halt(_ error: NodeError) {
        guard haltReason == nil else { return }
        haltReason = error
        for (_, timer) in timers { timer.1.cancel() }
        catchUp.stop()
        emit(.halted(error))
    }

    func emit(_ event: Event) { eventHandler?(event) }

    // MARK: Catch-up

    func startCatchUp(_ request: StateTransferRequest) {
        let peers = request.peers.isEmpty
            ? configuration.genesis.validatorSet.validators.indices.map { ValidatorIndex(UInt16($0)) }.filter { $0 != configuration.me }
            : request.peers
        catchUp.start(from: store.tip, peers: peers)
    }

    /// A verified run from the catch-up pipeline (on its queue): queued for the node's queue.
    func deliverCatchUp(_ run: CatchUpPipeline.Run) {
        let first = catchUpInbox.withLock { inbox in
            inbox.append(run)
            return inbox.count == 1
        }
        if first { queue.async { [self] in applyCatchUp() } }
    }

    /// Blocks and transactions the node's queue applies in one turn at most (more wait for the
    /// next turn, so consensus messages and status reads are not held up for long). A turn's
    /// batches go through the store's execute/write pipeline, which drains at the end of the
    /// turn, so a longer turn overlaps more: `scf bench --replay` of a bench ledger gave about
    /// 25,000 tx/s with turns of 16,000 transactions in batches of 2,000, 30,000 with 32,000 in
    /// batches of 4,000, 37,000 with 64,000 in batches of 8,000. 32,000 holds the queue about a second.
    /// On the slower machine of 2026-12-06, with the writer only binding prebuilt rows, batches of
    /// 8,000 in turns of 32,000 replayed 23,500-24,700 tx/s against 20,400-22,800 with 4,000 (and
    /// 16,000 gave fewer batches to overlap: 20,800-23,400), so batches are now 8,000 (DECISIONS 38).
    static let catchUpTurnBlocks = 2048
    public static let catchUpTurnTransactions = 32_000

    /// Transactions of runs verified while a turn executes that may join it (see `applyCatchUp`).
    public static let catchUpTurnExtraTransactions = 2 * catchUpTurnTransactions

    /// Takes the next turn's runs from the inbox; also whether more are left.
    func takeCatchUpTurn() -> (runs: [CatchUpPipeline.Run], more: Bool) {
        catchUpInbox.withLock { inbox in
            var count = 0, blocks = 0, transactions = 0
            while count < inbox.count, blocks < Self.catchUpTurnBlocks, transactions < Self.catchUpTurnTransactions {
                blocks += inbox[count].blocks.count
                transactions += inbox[count].blocks.reduce(0) { $0 + $1.block.transactions.count }
                count += 1
            }
            defer { inbox.removeFirst(count) }
            return (Array(inbox.prefix(count)), inbox.count > count)
        }
    }

    /// On the node's queue: executes, stores and commits verified catch-up runs. The runs'
    /// certificates were checked by the pipeline; the replica checks the chain links again and
    /// commits what `storeVerified` stored without executing it again.
    ///
    /// While the node is far behind, runs verified while the turn executes join it (up to
    /// `catchUpTurnExtraTransactions`): the store's writer is the slower stage, so when the turn's
    /// last batch is executed the writer still has batches to write, and waiting for it to finish
    /// before executing the next turn left a core idle (perf of a bench catch-up: about 0.25 s of
    /// the 2.9 s at each turn's end, DECISIONS 42). The replica hears of the blocks once all are written.
    func applyCatchUp() { queueBusy.time { applyCatchUpTurn() } }

    func applyCatchUpTurn() {
        // The turn before held up to `catchUpTurnTransactions + catchUpTurnExtraTransactions`
        // transactions, decoded, executed and written, all freed once it returned. The allocator
        // keeps freed pages for reuse and gives them back only when trimmed (every 10 s), so each
        // turn started from the last one's peak: a 150,000-transaction catch-up peaked at 428 MB
        // without these trims, 345 MB with them (DECISIONS 50). The last turn is followed by a
        // trim of its own.
        HeapTrimmer.trim()
        let (runs, more) = takeCatchUpTurn()
        if more { queue.async { [self] in applyCatchUp() } }
        let epoch = catchUp.epoch.load(ordering: .relaxed)
        var taken = runs
        defer { for run in taken { catchUp.applied(run) } }
        guard haltReason == nil else { return }
        let current = runs.filter { $0.epoch == epoch }
        var blocks = current.flatMap(\.blocks)
        guard let first = blocks.first, let last = blocks.last else { return }
        emit(.catchUp(from: first.block.header.height, to: last.block.header.height, peer: current[0].peer))
        suspendReadModelIndexesIfBulk(epoch: epoch)
        var extra = 0
        storeVerified(blocks) { [self] in
            guard extra < Self.catchUpTurnExtraTransactions, catchUp.farBehind.load(ordering: .relaxed) else { return [] }
            suspendReadModelIndexesIfBulk(epoch: epoch)
            let (runs, _) = takeCatchUpTurn()
            taken += runs
            let current = runs.filter { $0.epoch == epoch }
            let joining = current.flatMap(\.blocks)
            guard let from = joining.first, let to = joining.last else { return [] }
            emit(.catchUp(from: from.block.header.height, to: to.block.header.height, peer: current[0].peer))
            extra += joining.reduce(0) { $0 + $1.block.transactions.count }
            blocks += joining
            return joining
        }
        collect(replica.onCommittedBlocks(blocks, now: configuration.clock(), application: &application, certificatesVerified: true))
        if application.hasStoredUncommitted {
            // Not reached: the replica makes the same checks as `storeVerified` before it commits.
            halt(NodeError(.storage, "the ledger holds catch-up blocks the consensus state did not commit; restart the node to resume from its ledger"))
            return
        }
        if let end = blocks.last, store.tip.height < end.block.header.height {
            catchUp.applyFailed(epoch: epoch, head: store.tip,
                                reason: "certified blocks \(first.block.header.height)–\(end.block.header.height) did not apply on block \(store.tip.height); asking another validator")
        }
        flush()
        if !more { queue.async { HeapTrimmer.trim() } }
    }

    /// A bulk catch-up (DECISIONS 45): once the history this catch-up fetched reaches
    /// `bulkCatchUpShare` of the transactions the ledger held when it began (and the node is far
    /// behind), the store drops its read-model indexes, and builds them again when the catch-up
    /// ends. Maintaining them row by row cost about 15 µs a transaction of catch-up's writer
    /// against about 4 µs a row of the whole ledger to build them once, so a catch-up that adds
    /// more than about a third of the ledger gains; half leaves a margin (the fetched history only
    /// grows as the catch-up goes on). On the node's queue.
    func suspendReadModelIndexesIfBulk(epoch: UInt64) {
        guard !store.readModelIndexesSuspended, catchUp.farBehind.load(ordering: .relaxed) else { return }
        if bulkCatchUpCheck?.epoch != epoch {
            guard let count = try? store.storedTransactionCount() else { return }
            bulkCatchUpCheck = (epoch, count)
        }
        guard let ledger = bulkCatchUpCheck?.ledgerTransactions,
              Double(catchUp.fetchedTransactions.load(ordering: .relaxed)) >= Self.bulkCatchUpShare * Double(ledger) else { return }
        // If they cannot be dropped, the catch-up goes on with them (only slower).
        if (try? store.suspendReadModelIndexes()) != nil { emit(.readModelIndexes(suspended: true, seconds: nil)) }
    }

    static let bulkCatchUpShare = 0.5

    /// Builds the read-model indexes again once a bulk catch-up ended (on the node's queue).
    func restoreReadModelIndexes() {
        guard store.readModelIndexesSuspended, haltReason == nil else { return }
        let started = ContinuousClock.now
        do {
            try store.restoreReadModelIndexes()
            emit(.readModelIndexes(suspended: false, seconds: (ContinuousClock.now - started).seconds))
        } catch {
            halt(NodeError(.storage, "could not build the read-model indexes again after a bulk catch-up: \(error); restart the node (opening the ledger builds them)"))
        }
    }

    /// Blocks and transactions stored per database transaction during catch-up (at most).
    static let catchUpBatch = 256
    public static let catchUpBatchTransactions = 8_000
    /// Batches a turn is cut into at least, while each keeps `catchUpMinBatchTransactions`: the
    /// store executes a batch while it writes the one before, so a turn of one batch (the first
    /// turns of a catch-up are small: the first answers are) would not overlap the two at all.
    static let catchUpBatchesPerTurn = 4
    static let catchUpMinBatchTransactions = 1_000

    /// Consecutive blocks (a turn's) cut into catch-up's database batches: at most `catchUpBatch`
    /// blocks and `catchUpBatchTransactions` transactions each, smaller for a small turn so it
    /// still has `catchUpBatchesPerTurn` of them (none below `catchUpMinBatchTransactions`).
    public static func catchUpBatches(_ blocks: [CommittedBlock]) -> [[CommittedBlock]] {
        let transactions = blocks.reduce(0) { $0 + $1.block.transactions.count }
        let perBatch = min(catchUpBatchTransactions, max(catchUpMinBatchTransactions, transactions / catchUpBatchesPerTurn))
        return CatchUpPipeline.runs(blocks, blocks: catchUpBatch, transactions: perBatch)
    }

    /// A long run of blocks cut as a catching-up node's queue takes it in turns: at most
    /// `catchUpTurnBlocks` blocks and about `catchUpTurnTransactions` transactions each (for
    /// `scf bench --replay`; the node cuts its inbox of verified runs the same way, and lets
    /// later turns join one while it is far behind: `applyCatchUp`).
    public static func catchUpTurns(_ blocks: [CommittedBlock]) -> [[CommittedBlock]] {
        CatchUpPipeline.runs(blocks, blocks: catchUpTurnBlocks, transactions: catchUpTurnTransactions)
    }

    /// Catch-up's fast path: stores the run of verified blocks that extends the committed head in
    /// database transactions of up to `catchUpBatch` blocks, before the replica is told, so a node
    /// far behind does not flush to disk once per block. Every block's certificate was verified by
    /// the pipeline; the chain link to the head is checked here (live consensus may have committed
    /// some of them meanwhile: those are skipped). A batch that does not re-execute to its headers
    /// stores nothing. The caller then hands all the blocks to the replica, which commits the
    /// stored ones without executing them again (the commit it reports is already durable) and
    /// executes and commits or rejects the rest as before. Certified blocks are final, so storing
    /// one at a height the replica is still voting on is safe: the replica commits it in the same
    /// turn of the queue and drops any other block it held at that height. `more` supplies blocks
    /// that join the same pipeline once these are executed (see `applyCatchUp`), asked again
    /// until it returns none.
    func storeVerified(_ blocks: [CommittedBlock], more: () -> [CommittedBlock] = { [] }) {
        let suite = configuration.suite
        var tip = store.tip
        /// The leading blocks of `list` that extend `tip` (advancing it) and whether all of them do
        /// (blocks at or below the head are skipped).
        func extending(_ list: [CommittedBlock]) -> (run: [CommittedBlock], whole: Bool) {
            var run: [CommittedBlock] = []
            for committed in list {
                let header = committed.block.header
                if header.height <= tip.height { continue }
                guard header.height == tip.height.next, header.previousHash == tip.hash else { return (run, false) }
                let next = ChainTip(header: header, suite: suite)
                guard committed.certificate.blockHash == next.hash else { return (run, false) }
                run.append(committed)
                tip = next
            }
            return (run, true)
        }
        var (run, whole) = extending(blocks)
        guard run.count > 1 else { return }   // one block: the replica's own path costs the same
        // On failure the batches before the bad one are stored; the replica finds and rejects
        // the block that does not re-execute. Blocks joining later are stored only while every
        // block so far extended the chain (the rest reach the replica all the same).
        try? application.storeCertified(batches: Self.catchUpBatches(run)) {
            guard whole else { return [] }
            let joining: [CommittedBlock]
            (joining, whole) = extending(more())
            return joining.isEmpty ? [] : Self.catchUpBatches(joining)
        }
    }

    func serveBlocks(from: Height, limit: UInt32, to peer: ValidatorIndex) {
        servingQueue.async { [self] in
            let count = Int(min(limit, NodeMessage.maxBlocksPerResponse))
            var encoded: [(wire: [UInt8], certificate: [UInt8])] = []
            var bytes = 0
            let tip = store.tip.height
            if from > .genesis, from <= tip, count > 0 {
                // Read in batches (one query per batch, not per block), stopping at the byte budget.
                let through = Height(min(tip.value, from.value + UInt64(count) - 1))
                // Stored bytes as they are (block wire, then certificate): the asker decodes and
                // checks every block anyway, so this node need not decode them to encode them again.
                try? store.forEachEncodedBlock(from: from, through: through, batchSize: min(count, 128)) { _, wire, certificate in
                    let size = wire.count + certificate.count
                    if !encoded.isEmpty, bytes + size > Self.maxCatchUpResponseBytes { return false }
                    encoded.append((wire, certificate))
                    bytes += size
                    return encoded.count < count && bytes < Self.maxCatchUpResponseBytes
                }
            }
            // Answer even when there is nothing to send, so the asker does not wait for a timeout.
            // An error while reading sends the blocks read so far; the asker asks again from there.
            sharedLinks.withLock { $0 }?.send(NodeMessage.blocksFrame(encoded), to: peer)
        }
    }
}

extension ValidatorNode.RecentIDs where Value == Void {
    /// Whether the id is new (and remembers it).
    mutating func insert(_ id: Hash) -> Bool { insert(id, ()) }
}

extension Duration {
    /// The duration in seconds, for a Dispatch deadline.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
