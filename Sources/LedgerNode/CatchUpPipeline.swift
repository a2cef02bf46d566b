import Consensus
import Dispatch
import Foundation
import LedgerCore
import Synchronization

/// Catch-up as a pipeline, so a node far behind keeps both cores busy.
///
/// Three stages run at once: a peer reads and sends the next range of blocks (asked for as soon
/// as the previous answer arrives, before it is checked); this pipeline decodes an answer and
/// checks every block's chain link and commit certificate (against the genesis validators) on its
/// own queue, handing each verified run to the node in order; the node's queue executes and
/// stores verified runs (`StoreApplication.storeCertified`, one database transaction per run)
/// and commits them in the replica. Only blocks this pipeline verified reach the node, and only
/// in height order from the node's head, so a block whose certificate does not verify is never
/// applied and none is applied twice (the node skips heights it already holds).
///
/// Bounds: one request outstanding at a time; answers are sized by the peer in bytes
/// (`ValidatorNode.maxCatchUpResponseBytes`) and by the block count asked for, which starts small
/// so the first blocks arrive quickly, then aims at `answerGoalBytes` (doubling from its first
/// value, from the last answer's bytes per block) up to `maxRequestBlocks`; the next range is
/// asked for only while verified blocks waiting for the node, plus the largest possible answer,
/// stay under `maxBufferedBytes`. Verified blocks go to the node in runs of at most `runBlocks`
/// blocks or `runTransactions` transactions, so it starts applying before a large answer is checked.
///
/// A peer that answers with something undecodable, more blocks than asked, blocks that do not
/// link, or a certificate that does not verify is refused (reported as an ignored frame with the
/// reason): the blocks before the bad one are kept (each was verified on its own), and the rest
/// is asked of the next peer. So is a peer that does not answer within `timeoutSeconds`. After
/// three failures per peer in a row the pipeline stops; the replica asks again when it next
/// finds itself behind. An empty answer means the peer has nothing above what was asked: the
/// pipeline ends once the node has applied what it holds.
///
/// A run the node cannot apply (it does not re-execute to its header, or the node's head moved
/// to another block) makes the node report the failure: the pipeline starts a new epoch from the
/// node's head with the next peer, and the node drops runs of the old epoch still on their way.
final class CatchUpPipeline: @unchecked Sendable {
    struct Settings: Sendable {
        var firstRequestBlocks: UInt32 = 8
        var maxRequestBlocks: UInt32 = 1024
        /// Bytes the second answer aims at; doubled per answer up to `maxAnswerGoalBytes`.
        var firstAnswerGoalBytes = 1 << 20
        var maxAnswerGoalBytes = 4 << 20
        /// Verified blocks not yet applied, plus room for one answer of the frame cap. Counted in
        /// wire bytes, but held decoded (several times larger): 24 MiB kept a restarted node
        /// catching up 150,000 transactions at 270-275 MB against 293-312 with 48, at the same
        /// speed within the runs' spread (DECISIONS 52).
        var maxBufferedBytes = 24 << 20
        /// Largest answer a peer may send (the transport's frame cap).
        var maxAnswerBytes = 8 << 20
        /// Blocks checked and handed to the node together.
        var runBlocks = 64
        var runTransactions = 2_000
        var timeoutSeconds = 5.0
        /// Retry delay when the node has no links yet (a restart asks before the transport is
        /// attached, which takes a fraction of a second): a cheap check, so a short one.
        var unsentRetrySeconds = 0.05
        /// Transactions fetched in one catch-up from which the node counts as far behind (see `farBehind`).
        var farBehindTransactions = ValidatorNode.Configuration.defaultFarBehindTransactions
    }

    /// Blocks this pipeline verified, in height order, for the node to apply.
    struct Run: Sendable {
        var epoch: UInt64
        var blocks: [CommittedBlock]
        /// Share of the answer's bytes, released when the node reports the run applied.
        var bytes: Int
        var peer: ValidatorIndex
    }

    let settings: Settings
    let validators: ValidatorSet
    let chainID: String
    let suite: any CryptoSuite
    let queue: DispatchQueue
    /// Sends a frame to a peer; false if the node has no links yet.
    let send: @Sendable ([UInt8], ValidatorIndex) -> Bool
    /// Hands a verified run to the node (called on `queue`, in height order).
    let deliver: @Sendable (Run) -> Void
    /// A refused answer or an unresponsive peer, with the reason (for the node's events).
    let refuse: @Sendable (ValidatorIndex, String) -> Void
    /// Called on `queue` when a catch-up ends (done, given up or stopped), after `active` is false.
    var ended: (@Sendable () -> Void)?

    /// Whether a catch-up is under way (read by the node's status from any thread).
    let active = Atomic<Bool>(false)
    /// Whether this catch-up has fetched `settings.farBehindTransactions` or more: the node is far behind,
    /// not just a few blocks (a backup's timer asks for catch-up often in normal operation).
    let farBehind = Atomic<Bool>(false)
    /// Whether this catch-up has fetched any block: the node's head is known to be behind.
    let fetchedBlocks = Atomic<Bool>(false)
    /// Transactions this catch-up has fetched (written on the pipeline's queue, read by the node's).
    let fetchedTransactions = Atomic<Int>(0)
    /// Runs of an earlier epoch are dropped by the node.
    let epoch = Atomic<UInt64>(0)
    /// Answers refused since the node started (for tests and metrics).
    let refusals = Atomic<Int>(0)

    // State below is touched only on `queue`.
    var running = false
    var peers: [ValidatorIndex] = []
    var attempt = 0
    var failures = 0
    /// The last verified block (the node's head when the epoch began).
    var frontier: ChainTip
    /// The next height to ask for (above `frontier` while an answer is being checked).
    var nextRequest = Height(1)
    var limit: UInt32
    var answerGoal = 0
    /// The request waiting for its answer; `peer` nil: asked of every peer, the first answer wins.
    var outstanding: (serial: UInt64, peer: ValidatorIndex?, from: Height, limit: UInt32)?
    /// Peers that answered a request to every peer with nothing.
    var emptyAnswers: Set<ValidatorIndex> = []
    var serial: UInt64 = 0
    var bufferedBytes = 0
    var exhausted = false

    init(genesis: Genesis, suite: any CryptoSuite, label: String, settings: Settings = Settings(),
         send: @escaping @Sendable ([UInt8], ValidatorIndex) -> Bool, deliver: @escaping @Sendable (Run) -> Void,
         refuse: @escaping @Sendable (ValidatorIndex, String) -> Void) {
        self.settings = settings
        self.validators = genesis.validatorSet
        self.chainID = genesis.chainID
        self.suite = suite
        self.queue = DispatchQueue(label: label)
        self.send = send
        self.deliver = deliver
        self.refuse = refuse
        self.frontier = BlockExecutor.genesisTip(genesis: genesis, suite: suite)
        self.limit = settings.firstRequestBlocks
    }

    // MARK: From the node

    /// Starts catching up from the node's head, asking `peers` in order. Ignored while running.
    func start(from head: ChainTip, peers: [ValidatorIndex]) {
        guard !peers.isEmpty else { return }
        active.store(true, ordering: .sequentiallyConsistent)
        queue.async { [self] in
            guard !running else { return }
            running = true
            self.peers = peers
            attempt = 0
            failures = 0
            bufferedBytes = 0
            exhausted = false
            begin(from: head)
        }
    }

    /// A `blocks` frame from a peer (any thread).
    func receive(_ frame: [UInt8], from peer: ValidatorIndex) {
        queue.async { [self] in answer(frame, from: peer) }
    }

    /// The node applied (or dropped) a run of this epoch: its bytes leave the buffer.
    func applied(_ run: Run) {
        queue.async { [self] in
            guard running, run.epoch == epoch.load(ordering: .relaxed) else { return }
            bufferedBytes -= run.bytes
            requestIfRoom()
            finishIfDone()
        }
    }

    /// The node could not apply a run of `epoch`: start again from its head with the next peer.
    func applyFailed(epoch failed: UInt64, head: ChainTip, reason: String) {
        queue.async { [self] in
            guard running, failed == epoch.load(ordering: .relaxed) else { return }
            let peer = peers[attempt % peers.count]
            refuse(peer, reason)
            refusals.add(1, ordering: .relaxed)
            bufferedBytes = 0
            exhausted = false
            attempt += 1
            failures += 1
            guard failures < peers.count * 3 else { return end() }
            begin(from: head)
        }
    }

    func stop() {
        queue.sync { end() }
    }

    // MARK: On the pipeline's queue

    func begin(from head: ChainTip) {
        epoch.add(1, ordering: .relaxed)
        frontier = head
        nextRequest = head.height.next
        limit = settings.firstRequestBlocks
        answerGoal = settings.firstAnswerGoalBytes
        outstanding = nil
        requestIfRoom(everyPeer: true)
    }

    func end() {
        running = false
        outstanding = nil
        epoch.add(1, ordering: .relaxed)
        fetchedTransactions.store(0, ordering: .relaxed)
        active.store(false, ordering: .sequentiallyConsistent)
        farBehind.store(false, ordering: .sequentiallyConsistent)
        fetchedBlocks.store(false, ordering: .sequentiallyConsistent)
        ended?()
    }

    func finishIfDone() {
        if running, exhausted, outstanding == nil, bufferedBytes <= 0 { end() }
    }

    /// Asks the current peer for the next range, if the buffer has room for its answer. The first
    /// request of an epoch goes to every peer and the first to answer serves the rest: a peer that
    /// is not connected yet (a restarted node's links come up one by one) or is slow is not waited for.
    func requestIfRoom(everyPeer: Bool = false) {
        guard running, outstanding == nil, !exhausted, bufferedBytes + settings.maxAnswerBytes <= settings.maxBufferedBytes else { return }
        serial += 1
        let peer = everyPeer && peers.count > 1 ? nil : peers[attempt % peers.count]
        let request = (serial: serial, peer: peer, from: nextRequest, limit: limit)
        outstanding = request
        emptyAnswers = []
        let frame = NodeMessage.blocksRequest(from: request.from, limit: request.limit).wireBytes
        var anySent = false
        for target in peer.map({ [$0] }) ?? peers { anySent = send(frame, target) || anySent }
        let sent = anySent
        queue.asyncAfter(deadline: .now() + (sent ? settings.timeoutSeconds : settings.unsentRetrySeconds)) { [self] in
            guard running, let current = outstanding, current.serial == request.serial else { return }
            if sent {
                fail(peer ?? peers[attempt % peers.count],
                     "no answer to a catch-up request from height \(request.from) within \(settings.timeoutSeconds) s; asking another validator")
            } else {
                outstanding = nil   // no links yet: ask again, not a failure of the peer
                requestIfRoom(everyPeer: everyPeer)
            }
        }
    }

    /// Refuses the current answer or peer and asks the next peer from the last verified block.
    func fail(_ peer: ValidatorIndex, _ reason: String) {
        refuse(peer, reason)
        refusals.add(1, ordering: .relaxed)
        outstanding = nil
        nextRequest = frontier.height.next
        limit = settings.firstRequestBlocks
        answerGoal = settings.firstAnswerGoalBytes
        attempt += 1
        failures += 1
        guard failures < peers.count * 3 else { return end() }
        requestIfRoom()
    }

    func answer(_ frame: [UInt8], from peer: ValidatorIndex) {
        guard running, let request = outstanding, request.peer == nil || request.peer == peer else { return }   // unsolicited or late
        let blocks: [CommittedBlock]
        do {
            guard case .blocks(let decoded) = try NodeMessage(wireBytes: frame, suite: suite) else { return }
            blocks = decoded
        } catch {
            return fail(peer, "undecodable catch-up answer: \(error)")
        }
        guard let first = blocks.first else {
            // Nothing above what was asked: done once the node has applied what it holds. Asked
            // of every peer, one that is behind itself may answer so: wait for the others.
            if request.peer == nil {
                emptyAnswers.insert(peer)
                guard emptyAnswers.count == peers.count else { return }
            }
            outstanding = nil
            exhausted = true
            return finishIfDone()
        }
        // An answer to an earlier request of this peer (it was slow, then asked again): not ours.
        guard first.block.header.height == request.from else { return }
        guard blocks.count <= Int(request.limit) else {
            return fail(peer, "a catch-up answer of \(blocks.count) blocks to a request for \(request.limit); refused")
        }
        if request.peer == nil, let index = peers.firstIndex(of: peer) { attempt = index }   // the first to answer serves the rest
        let fetched = fetchedTransactions.add(blocks.reduce(0) { $0 + $1.block.transactions.count }, ordering: .relaxed).newValue
        fetchedBlocks.store(true, ordering: .sequentiallyConsistent)
        if fetched >= settings.farBehindTransactions { farBehind.store(true, ordering: .sequentiallyConsistent) }
        // Ask for the next range now, so the peer reads and sends it while these are checked.
        outstanding = nil
        let bytesPerBlock = frame.count / blocks.count + 1
        bufferedBytes += bytesPerBlock * blocks.count
        nextRequest = Height(request.from.value + UInt64(blocks.count))
        limit = UInt32(min(max(1, answerGoal / bytesPerBlock), Int(settings.maxRequestBlocks)))
        answerGoal = min(answerGoal * 2, settings.maxAnswerGoalBytes)
        requestIfRoom()
        var start = 0
        while start < blocks.count {
            let end = Self.runEnd(blocks, from: start, blocks: settings.runBlocks, transactions: settings.runTransactions)
            let run = Array(blocks[start..<end])
            let (verified, problem) = verify(run)
            if !verified.isEmpty {
                failures = 0
                deliver(Run(epoch: epoch.load(ordering: .relaxed), blocks: verified, bytes: bytesPerBlock * verified.count, peer: peer))
            }
            if let problem {
                bufferedBytes -= bytesPerBlock * (blocks.count - start - verified.count)
                // The request already sent may be to this peer, for blocks after the bad one: drop it.
                return fail(peer, problem)
            }
            start = end
        }
    }

    /// `list` cut into consecutive runs, each ending as `runEnd` says.
    static func runs(_ list: [CommittedBlock], blocks: Int, transactions: Int) -> [[CommittedBlock]] {
        var runs: [[CommittedBlock]] = []
        var start = 0
        while start < list.count {
            let end = runEnd(list, from: start, blocks: blocks, transactions: transactions)
            runs.append(Array(list[start..<end]))
            start = end
        }
        return runs
    }

    /// Where a run starting at `start` ends: after `blocks` blocks, or after the block that brings
    /// it to `transactions` transactions, whichever comes first (at least one block).
    static func runEnd(_ list: [CommittedBlock], from start: Int, blocks: Int, transactions: Int) -> Int {
        var end = start, count = 0
        while end < list.count, end - start < blocks, end == start || count < transactions {
            count += list[end].block.transactions.count
            end += 1
        }
        return end
    }

    /// The leading blocks of `run` that extend `frontier` with a valid certificate each (advancing
    /// `frontier`), and why the next one was refused, if one was.
    func verify(_ run: [CommittedBlock]) -> ([CommittedBlock], String?) {
        var tip = frontier
        var linked: [(CommittedBlock, ChainTip)] = []
        var problem: String?
        for committed in run {
            let header = committed.block.header
            guard header.height == tip.height.next, header.previousHash == tip.hash, header.chainID == chainID else {
                problem = "catch-up block \(header.height) does not follow block \(tip.height) \(tip.hash.short) of chain \"\(chainID)\"; refused"
                break
            }
            let next = ChainTip(header: header, suite: suite)
            guard committed.certificate.height == header.height, committed.certificate.blockHash == next.hash else {
                problem = "the certificate sent with catch-up block \(header.height) is not that block's; refused"
                break
            }
            linked.append((committed, next))
            tip = next
        }
        // Certificates on every core: three or more signatures per block dominate the check.
        let candidates = linked
        let failed = Mutex<(index: Int, error: CertificateError)?>(nil)
        let workers = min(candidates.count, ValidatorNode.cores)
        if workers > 0 {
            let validators = validators, chainID = chainID, suite = suite
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var index = worker
                while index < candidates.count {
                    do throws(CertificateError) {
                        try candidates[index].0.certificate.verify(validators: validators, chainID: chainID, suite: suite)
                    } catch {
                        failed.withLock { if $0 == nil || $0!.index > index { $0 = (index, error) } }
                    }
                    index += workers
                }
            }
        }
        var count = candidates.count
        if let bad = failed.withLock({ $0 }) {
            count = bad.index
            problem = "catch-up block \(candidates[bad.index].0.block.header.height) has an invalid certificate (\(bad.error)); refused"
        }
        if count > 0 { frontier = candidates[count - 1].1 }
        return (candidates.prefix(count).map(\.0), problem)
    }
}
