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
/// before the replica reports them (one database transaction per block).
///
/// It also serves catch-up: peers ask for committed blocks with certificates, and a node behind
/// fetches them in batches, re-executes them (trusting the certificates for client signatures),
/// and rejoins consensus without a restart.
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

        public init(genesis: Genesis, suite: any CryptoSuite, me: ValidatorIndex, key: any SigningKey, dataDirectory: String,
                    clock: @escaping @Sendable () -> ConsensusTime = ValidatorNode.wallClock, maxPoolSize: Int = 50_000) {
            self.genesis = genesis
            self.suite = suite
            self.me = me
            self.key = key
            self.dataDirectory = dataDirectory
            self.clock = clock
            self.maxPoolSize = maxPoolSize
        }
    }

    /// What happened, for logs and metrics. Emitted on the node's queue; handlers must be quick.
    public enum Event: Sendable {
        case committed(height: Height, transactions: Int, rejected: Int)
        case viewChanged(View)
        case misbehaviour(ValidatorIndex, Evidence)
        case catchUp(from: Height, to: Height, peer: ValidatorIndex)
        case ignoredFrame(from: ValidatorIndex, reason: String)
        case halted(NodeError)
    }

    /// Where a submitted transaction stands.
    public enum TransactionStatus: Sendable, Equatable {
        case pending
        case committed(height: Height)
        case rejected(height: Height?, Rejection)
        case unknown
    }

    public static let wallClock: @Sendable () -> ConsensusTime = {
        ConsensusTime(millisecondsSinceEpoch: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)))
    }

    public let configuration: Configuration
    public let store: LedgerStore
    let queue: DispatchQueue
    let servingQueue: DispatchQueue
    let stateFile: ReplicaStateFile
    var replica: Replica
    var application: StoreApplication
    var links: (any PeerLinks)?
    var timer: (ReplicaTimer, DispatchWorkItem)?
    var catchUp: (from: Height, peers: [ValidatorIndex], attempt: Int, retry: DispatchWorkItem)?
    var waiters: [Hash: [CheckedContinuation<TransactionStatus, Never>]] = [:]
    /// Transactions admitted here and not yet committed or dropped.
    var pending = Set<Hash>()
    var dropped: [Hash: Rejection] = [:]
    var droppedOrder: [Hash] = []
    var eventHandler: (@Sendable (Event) -> Void)?
    public private(set) var haltReason: NodeError?
    private var lastView: View
    /// Frames from peers waiting for the queue. Past `maxQueuedFrames` new frames are dropped
    /// (PBFT recovers lost messages by retransmission and catch-up), so a flood cannot exhaust memory.
    let queuedFrames = Atomic<Int>(0)
    public static let maxQueuedFrames = 20_000
    /// Frames dropped because the queue was full (for metrics).
    public let droppedFrames = Atomic<Int>(0)
    /// Misbehaviour this node has detected and reported, with evidence, since it started (for metrics).
    public let misbehaviourReports = Atomic<Int>(0)

    /// Opens the node's ledger and replica state in its data directory and restarts the replica
    /// from them (a fresh directory starts at genesis).
    public init(configuration: Configuration, events: (@Sendable (Event) -> Void)? = nil) throws {
        self.configuration = configuration
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        store = try LedgerStore.open(path: (configuration.dataDirectory as NSString).appendingPathComponent("ledger.sqlite"),
                                     genesis: configuration.genesis, suite: configuration.suite)
        stateFile = ReplicaStateFile(directory: configuration.dataDirectory, suite: configuration.suite)
        let persisted = try stateFile.load()
        application = StoreApplication(store: store, genesis: configuration.genesis, suite: configuration.suite, clock: configuration.clock)
        replica = Replica(configuration: ReplicaConfiguration(genesis: configuration.genesis, suite: configuration.suite,
                                                               me: configuration.me, key: configuration.key,
                                                               maxPoolSize: configuration.maxPoolSize))
        lastView = persisted?.view ?? View(0)
        queue = DispatchQueue(label: "scf.node.\(configuration.me.value)")
        servingQueue = DispatchQueue(label: "scf.node.\(configuration.me.value).serving")
        eventHandler = events
        let head = store.tip
        queue.sync {
            let output = replica.onRestart(persisted: persisted, head: head, now: configuration.clock(), application: &application)
            perform(output)
        }
    }

    /// Connects the node to its peers; frames from them go to `receive(_:from:)`.
    public func attach(_ links: any PeerLinks) {
        queue.sync { self.links = links }
    }

    // MARK: Inputs

    /// A frame from an authenticated peer.
    public func receive(_ frame: [UInt8], from peer: ValidatorIndex) {
        guard queuedFrames.add(1, ordering: .relaxed).newValue <= Self.maxQueuedFrames else {
            queuedFrames.subtract(1, ordering: .relaxed)
            droppedFrames.add(1, ordering: .relaxed)
            return
        }
        queue.async { [self] in
            queuedFrames.subtract(1, ordering: .relaxed)
            guard haltReason == nil else { return }
            let message: NodeMessage
            do {
                message = try NodeMessage(wireBytes: frame, suite: configuration.suite)
            } catch {
                emit(.ignoredFrame(from: peer, reason: "undecodable frame: \(error)"))
                return
            }
            let now = configuration.clock()
            switch message {
            case .consensus(let consensus):
                perform(replica.onMessage(consensus, from: peer, now: now, application: &application))
            case .transaction(let transaction):
                let output = replica.onClientRequest(transaction, now: now, application: &application)
                if output.outcome == .accepted { pending.insert(transaction.id) }
                perform(output)
            case .blocksRequest(let from, let limit):
                serveBlocks(from: from, limit: limit, to: peer)
            case .blocks(let blocks):
                receiveBlocks(blocks, from: peer, now: now)
            }
        }
    }

    /// A client transaction: admitted into the pool and relayed to every validator, or refused
    /// with a reason. Waits only for admission, not for commitment. Blocks the caller until the
    /// node's queue takes it; from an event loop use the async form.
    public func submit(_ transaction: SignedTransaction) -> Rejection? {
        queue.sync { admit(transaction) }
    }

    /// The same without blocking the calling thread (for the HTTP server's event loops).
    public func submit(_ transaction: SignedTransaction) async -> Rejection? {
        await withCheckedContinuation { continuation in
            queue.async { [self] in continuation.resume(returning: admit(transaction)) }
        }
    }

    func admit(_ transaction: SignedTransaction) -> Rejection? {
        if let haltReason { return Rejection(.invalidState, "this node has stopped: \(haltReason.message)") }
        let output = replica.onClientRequest(transaction, now: configuration.clock(), application: &application)
        switch output.outcome {
        case .accepted:
            pending.insert(transaction.id)
            links?.broadcast(NodeMessage.transaction(transaction).wireBytes)
            perform(output)
            return nil
        case .ignored:
            perform(output)
            return nil
        case .rejected(let reason):
            perform(output)
            return application.lastAdmissionRejection ?? Rejection(.invalidState, reason)
        case .misbehaving:
            perform(output)
            return Rejection(.invalidState, "refused")
        }
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
                let (seconds, attoseconds) = timeout.components
                let delay = Double(seconds) + Double(attoseconds) / 1e18
                queue.asyncAfter(deadline: .now() + delay) { [self] in
                    guard var list = waiters[id], !list.isEmpty else { return }
                    list.removeFirst().resume(returning: .pending)
                    waiters[id] = list.isEmpty ? nil : list
                }
            }
        }
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
        public var halted: String?
    }

    public var nodeStatus: Status {
        queue.sync {
            Status(height: store.tip.height, headHash: store.tip.hash, view: replica.view,
                   primary: configuration.genesis.validatorSet.primary(of: replica.view), isPrimary: replica.isPrimary,
                   pooled: pending.count, catchingUp: catchUp != nil, halted: haltReason?.message)
        }
    }

    /// Stops timers and intake. The store stays open until the node is released.
    public func stop() {
        queue.sync {
            timer?.1.cancel()
            timer = nil
            catchUp?.retry.cancel()
            catchUp = nil
            links = nil
            haltReason = haltReason ?? NodeError(.halted, "the node was stopped")
            for (_, list) in waiters { for waiter in list { waiter.resume(returning: .pending) } }
            waiters = [:]
        }
    }

    // MARK: Directives

    func perform(_ output: ReplicaOutput) {
        for directive in output.directives {
            guard haltReason == nil else { return }
            switch directive {
            case .persist(let state):
                do {
                    try stateFile.save(state)
                } catch {
                    halt(NodeError(.storage, "cannot persist the replica state: \(error); free disk space and restart the node"))
                    return
                }
            case .send(let message, let peer):
                links?.send(NodeMessage.consensus(message).wireBytes, to: peer)
            case .broadcast(let message):
                links?.broadcast(NodeMessage.consensus(message).wireBytes)
            case .scheduleTimer(let replicaTimer, let milliseconds):
                timer?.1.cancel()
                let item = DispatchWorkItem { [weak self] in self?.fire(replicaTimer) }
                timer = (replicaTimer, item)
                queue.asyncAfter(deadline: .now() + .milliseconds(Int(min(milliseconds, 3_600_000))), execute: item)
            case .cancelTimer(let replicaTimer):
                if let current = timer, current.0 == replicaTimer {
                    current.1.cancel()
                    timer = nil
                }
            case .commit:
                break
            case .requestStateTransfer(let request):
                startCatchUp(request)
            case .reportMisbehaviour(let validator, let evidence):
                misbehaviourReports.add(1, ordering: .relaxed)
                emit(.misbehaviour(validator, evidence))
            case .dropTransaction(let id, let rejection):
                remember(dropped: id, rejection)
            }
        }
        if let failure = application.failure {
            halt(NodeError(.storage, "cannot store a committed block: \(failure); the node stops so it can restart and catch up"))
            return
        }
        for (height, receipts) in application.takeCommitted() {
            let rejected = receipts.filter { !$0.isCommitted }.count
            emit(.committed(height: height, transactions: receipts.count, rejected: rejected))
            for receipt in receipts {
                pending.remove(receipt.transaction)
                guard let list = waiters.removeValue(forKey: receipt.transaction) else { continue }
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
        guard haltReason == nil, let current = timer, current.0 == replicaTimer else { return }
        timer = nil
        perform(replica.onTimer(replicaTimer, now: configuration.clock(), application: &application))
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
        timer?.1.cancel()
        catchUp?.retry.cancel()
        emit(.halted(error))
    }

    func emit(_ event: Event) { eventHandler?(event) }

    // MARK: Catch-up

    func startCatchUp(_ request: StateTransferRequest) {
        let peers = request.peers.isEmpty
            ? configuration.genesis.validatorSet.validators.indices.map { ValidatorIndex(UInt16($0)) }.filter { $0 != configuration.me }
            : request.peers
        guard catchUp == nil, !peers.isEmpty else { return }
        requestBlocks(from: max(request.from, store.tip.height.next), peers: peers, attempt: 0)
    }

    func requestBlocks(from: Height, peers: [ValidatorIndex], attempt: Int) {
        let peer = peers[attempt % peers.count]
        let retry = DispatchWorkItem { [weak self] in
            guard let self, let current = self.catchUp, current.attempt == attempt else { return }
            self.catchUp = nil
            if attempt + 1 < peers.count * 3 { self.requestBlocks(from: self.store.tip.height.next, peers: peers, attempt: attempt + 1) }
        }
        catchUp = (from, peers, attempt, retry)
        links?.send(NodeMessage.blocksRequest(from: from, limit: NodeMessage.maxBlocksPerResponse).wireBytes, to: peer)
        queue.asyncAfter(deadline: .now() + 2, execute: retry)
    }

    func receiveBlocks(_ blocks: [CommittedBlock], from peer: ValidatorIndex, now: ConsensusTime) {
        guard let current = catchUp else { return }
        current.retry.cancel()
        catchUp = nil
        // An empty answer: that peer has nothing above our head.
        guard let first = blocks.first, let last = blocks.last else { return }
        emit(.catchUp(from: first.block.header.height, to: last.block.header.height, peer: peer))
        perform(replica.onCommittedBlocks(blocks, now: now, application: &application))
        if blocks.count == Int(NodeMessage.maxBlocksPerResponse), haltReason == nil {
            requestBlocks(from: store.tip.height.next, peers: current.peers, attempt: current.attempt)
        }
    }

    func serveBlocks(from: Height, limit: UInt32, to peer: ValidatorIndex) {
        servingQueue.async { [self] in
            var blocks: [CommittedBlock] = []
            var height = from
            while blocks.count < Int(min(limit, NodeMessage.maxBlocksPerResponse)), let block = try? store.block(at: height) {
                blocks.append(block)
                height = height.next
            }
            // Answer even when there is nothing to send, so the asker does not wait for a timeout.
            let frame = NodeMessage.blocks(blocks).wireBytes
            queue.async { [self] in links?.send(frame, to: peer) }
        }
    }
}
