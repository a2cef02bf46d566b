import LedgerCore

// # The PBFT replica
//
// ## Terms
// - n = 3f+1 validators, fixed in genesis; a quorum is 2f+1 (`ValidatorSet.quorum`). The primary
//   of view v is validator v mod n.
// - One batch is one block, and the PBFT sequence number *is* the block height, so "sequence
//   number h" and "block at height h" are the same thing.
// - Low watermark = height of the stable checkpoint; high watermark = low + `watermarkWindow`.
//   Only heights in (low, high] are in play.
//
// ## Normal case
// 1. A client sends a signed transaction to one or more validators; each admits it into its pool
//    (`ReplicaApplication.admit`: signature, chain, not yet committed), and a backup forwards what
//    it admits to the primary (REQUEST) once, and again after a timeout or a view change.
// 2. The primary builds a block on top of its tip (the last committed block or the last block it
//    proposed in this view) from pool transactions (`propose`), and broadcasts PRE-PREPARE: the
//    block and its signature over (view, height, block hash).
// 3. A backup accepts the pre-prepare if it is from the primary of its current view, inside the
//    watermarks, the first for that (view, height), and the block is valid on top of its parent:
//    the parent is the committed head or the previous height's validated block in this view, the
//    timestamp is within `maxClockSkewMilliseconds` of the backup's own clock reading (`now`,
//    passed in) and after the parent's, and the application re-executes it (every signature, every
//    rule, the roots and state digest). It then broadcasts PREPARE, which carries the primary's
//    proposal signature.
// 4. Prepared = pre-prepare + 2f matching prepares from distinct backups. The replica persists the
//    prepared certificate (`.persist` comes before the sends in the same output) and broadcasts
//    COMMIT, which is exactly a `CommitVote` for `CommitCertificate`.
// 5. Committed = a validated block + 2f+1 matching commits: those votes are the block's
//    certificate. Blocks are committed strictly in height order (`.commit`).
// Several heights are in flight at once (pipelining, up to `pipelineDepth` and the high
// watermark): pre-prepares and prepares overlap freely.
//
// ## Checkpoints and garbage collection
// After committing a height that is a multiple of K (`checkpointInterval`) a replica broadcasts a
// signed CHECKPOINT of the block hash (which commits to the state digest). 2f+1 matching ones make
// the checkpoint stable: the low watermark moves up and slots, prepared certificates and votes at
// or below it are dropped. A stable checkpoint above the replica's head makes it catch up.
//
// ## View change
// A replica arms its timer while it has work outstanding (pool transactions or uncommitted
// proposals); each committed block restarts it. The first expiry retransmits the replica's own
// proposals, votes and checkpoints and asks for state transfer (a lagging replica catches up here
// instead of blaming the primary); the second expiry starts a view change to v+1: VIEW-CHANGE
// carries the stable checkpoint certificate and every prepared certificate above it. A provable
// fault of the primary (equivocation, an invalid proposal) starts the view change at once.
// Timeouts double per attempt (`viewChangeTimeoutMilliseconds` … `maxViewChangeTimeoutMilliseconds`)
// and reset when a block commits. f+1 view changes for higher views make a replica join the
// (f+1)-th highest of them. The primary of the new view collects 2f+1 view changes, and broadcasts
// NEW-VIEW with them and its signed re-proposals; every replica recomputes the re-proposals from
// the view changes (`ViewChangeDecision`) and refuses a new view that differs. While changing to
// view w, a replica retransmits its VIEW-CHANGE on each expiry and moves on to w+1 only on the
// second expiry after a quorum has left the older views (replicas already asking for a later view
// count). Pre-prepares, prepares and commits of a view not yet installed are buffered (bounded,
// per sender) and replayed when it is. Replicas that already committed a re-proposed block vote
// for it again in the new view, so the replicas still missing it can commit it there.
//
// ## State transfer
// A replica that learns that blocks above its head are committed (a stable checkpoint, a commit
// quorum beyond its next height, a new view's checkpoint, f+1 messages above its high watermark,
// a timer expiry, a restart) emits `.requestStateTransfer`. The shell fetches committed blocks with
// their certificates from peers and hands them to `onCommittedBlocks`, which checks the chain
// links and certificates, re-executes the blocks and commits them, then rejoins.
//
// ## How this differs from the PBFT paper (Castro & Liskov, OSDI 1999) and why
// - Sequence numbers are block heights and blocks are hash-chained, so a block can only be
//   validated on top of its parent. Hence: (a) a backup validates heights in order and waits for
//   the parent; (b) a replica sends COMMIT for h only when h-1 is committed or has a commit quorum
//   at this replica, so a block with a certificate always has a certified parent; (c) the new view
//   re-proposes the longest hash-linked run of highest-view prepared certificates above the
//   checkpoint and drops everything after the first gap or broken link, instead of filling gaps
//   with null requests (a certified block is never after a gap or a broken link, by (b)).
// - Commit messages are the certificate votes, so a committed block carries a certificate that
//   anyone can check offline with genesis alone, and a lagging replica catches up from those
//   certificates rather than from checkpoints of the whole state.
// - Prepares carry the primary's proposal signature, so conflicting prepares prove equivocation
//   and replace the primary at once instead of after a timeout.
// - Re-proposed blocks keep their original header (view, proposer, timestamp); the clock bound is
//   checked only for fresh proposals, since a re-proposal was already accepted by 2f+1 replicas.
// - No client replies or read-only optimisation: clients learn commitment from committed blocks.
// - View changes carry whole prepared blocks rather than digests (no separate fetch).
// - A lone replica never escalates past a view change that no quorum joined; it retransmits and
//   is answered with the current NEW-VIEW by replicas already in that view or later (so NEW-VIEW
//   may be relayed by any replica; the new primary's signature is what makes it valid).
// - A backup's timer first tries retransmission and catch-up before it blames the primary.
// - Besides its prepared certificates, a replica persists the blocks it proposed as primary and
//   the proposal it prepared per height, and rebuilds the current view's re-proposals from the
//   persisted NEW-VIEW after a restart, so a restart never makes it sign two blocks for one
//   (view, height) — the paper's replicas keep their whole log in stable storage instead.
//
// ## What it assumes
// At most f Byzantine validators; authenticated links (the `from` of `onMessage` is the peer the
// transport authenticated); a shell that performs directives in order; clocks within the skew
// bound for liveness (never needed for safety).
//
// The replica never reads a clock, never draws random numbers, performs no I/O and never lets
// Set or Dictionary order decide what it sends, hashes or the order of its directives.

/// Static configuration of one replica.
public struct ReplicaConfiguration: Sendable {
    public var chainID: String
    public var validators: ValidatorSet
    public var parameters: ConsensusParameters
    public var me: ValidatorIndex
    public var suite: any CryptoSuite
    public var key: any SigningKey
    /// The chain at height 0.
    public var genesisTip: ChainTip
    /// Pool capacity; transactions beyond it are refused.
    public var maxPoolSize: Int
    /// Blocks the primary keeps in flight at most (also bounded by the watermark window).
    public var pipelineDepth: UInt64
    /// How long the primary waits for a block to fill (`maxBlockTransactions`) before it proposes
    /// what the pool has. 0 proposes as soon as anything is pooled. A full block never waits.
    public var batchDelayMilliseconds: UInt64
    /// Whether a backup sends each transaction it admits to the primary at once. A shell that
    /// relays every admitted transaction to all validators itself turns this off; pool
    /// transactions are still forwarded after a timeout or a view change.
    public var forwardsRequests: Bool

    public init(genesis: Genesis, suite: any CryptoSuite, me: ValidatorIndex, key: any SigningKey,
                maxPoolSize: Int = 20_000, pipelineDepth: UInt64 = 4, batchDelayMilliseconds: UInt64 = 0,
                forwardsRequests: Bool = true) {
        chainID = genesis.chainID
        validators = genesis.validatorSet
        parameters = genesis.consensus
        self.me = me
        self.suite = suite
        self.key = key
        genesisTip = BlockExecutor.genesisTip(genesis: genesis, suite: suite)
        self.maxPoolSize = maxPoolSize
        self.pipelineDepth = max(1, pipelineDepth)
        self.batchDelayMilliseconds = batchDelayMilliseconds
        self.forwardsRequests = forwardsRequests
    }
}

/// The re-proposals a new view must carry, derived from its 2f+1 view changes.
public struct ViewChangeDecision: Hashable, Sendable {
    /// The highest stable checkpoint among the view changes.
    public var checkpoint: CheckpointCertificate
    /// Height-ordered, hash-linked blocks above the checkpoint to re-propose.
    public var chain: [PreparedCertificate]

    public init(viewChanges: [ViewChange]) {
        var best = viewChanges.first?.checkpoint ?? CheckpointCertificate(height: .genesis, blockHash: .zero, checkpoints: [])
        for change in viewChanges where change.checkpoint.height > best.height { best = change.checkpoint }
        var byHeight: [UInt64: PreparedCertificate] = [:]
        for change in viewChanges {
            for certificate in change.prepared where certificate.height > best.height {
                if let current = byHeight[certificate.height.value] {
                    if certificate.view > current.view
                        || (certificate.view == current.view && certificate.blockHash < current.blockHash) {
                        byHeight[certificate.height.value] = certificate
                    }
                } else {
                    byHeight[certificate.height.value] = certificate
                }
            }
        }
        var chain: [PreparedCertificate] = []
        var height = best.height.next
        var previous = best.blockHash
        while let certificate = byHeight[height.value], certificate.prePrepare.block.header.previousHash == previous {
            chain.append(certificate)
            previous = certificate.blockHash
            height = height.next
        }
        checkpoint = best
        self.chain = chain
    }
}

/// A PBFT replica as a pure state machine: inputs go in through `on…`, directives come out.
public struct Replica: Sendable {
    public let configuration: ReplicaConfiguration

    /// The current view (the last one installed).
    public private(set) var view: View = View(0)
    /// The view this replica is changing to; nil in normal operation.
    public private(set) var viewChangeTarget: View?
    /// The last committed block.
    public private(set) var head: ChainTip
    public private(set) var stableCheckpoint: CheckpointCertificate
    public private(set) var viewChangeAttempt: UInt32 = 0

    var slots: [UInt64: Slot] = [:]
    var prepared: [UInt64: PreparedCertificate] = [:]
    var sentPrepares: [UInt64: ProposalSignature] = [:]
    var lastNewView: NewView?
    var ownProposals: [UInt64: PrePrepare] = [:]
    /// Hashes of the blocks committed above the stable checkpoint.
    var recentlyCommitted: [UInt64: Hash] = [:]
    /// Votes this replica sent in the current view for re-proposed blocks it had already
    /// committed, so that replicas still missing them can commit them in this view.
    var votesForCommitted: [UInt64: [ConsensusMessage]] = [:]
    /// Normal-case messages for views this replica has not installed yet, per sender (bounded),
    /// replayed when it installs that view: a new primary's first pre-prepares often overtake its
    /// NEW-VIEW.
    var futureMessages: [ValidatorIndex: [ConsensusMessage]] = [:]
    var replayFuture = false
    var checkpointVotes: [UInt64: [ValidatorIndex: Checkpoint]] = [:]
    var ownCheckpoints: [UInt64: Checkpoint] = [:]
    var latestViewChange: [ValidatorIndex: ViewChange] = [:]
    var newViewSentFor: View?
    var pool: [Hash: SignedTransaction] = [:]
    var poolOrder: [Hash] = []
    var proposed: Set<Hash> = []
    /// Every id in `poolOrder` before this index was proposed or has left the pool when last
    /// looked at, so `propose` starts its scan here instead of walking every in-flight
    /// transaction again (at saturation the pool holds thousands). Back to 0 whenever ids leave
    /// `proposed` while staying in the pool (a view change) or `poolOrder` is rebuilt.
    var poolScanStart = 0
    /// Pool transactions not in `proposed`: what the primary could still put in a block. Kept
    /// exact by every change to `pool` and `proposed` (`addToPool`, `removeFromPool`,
    /// `markProposed`, `clearProposed`), so `propose` learns whether a full block is waiting
    /// without walking the pool. It used to build the candidate list first: on a primary waiting
    /// for its batch timer that meant copying up to a block's worth of pool transactions for every
    /// client transaction admitted, about 30% of the primary's CPU at 2,000 tx/s.
    var unproposedCount = 0
    var timerGeneration: UInt64 = 0
    var timerArmed = false
    var timerStage = 0
    var batchGeneration: UInt64 = 0
    var batchTimerArmed = false
    /// The batch timer fired: the next proposal may be a block that is not full.
    var batchDue = false
    var staleAnswers: [ValidatorIndex: ConsensusTime] = [:]
    var aheadReports: [ValidatorIndex: Height] = [:]
    var lastSyncFrom: Height?
    var dirty = false
    var madeProgress = false

    enum Validation: Sendable { case pending, valid, invalid, clockRejected }

    struct Slot: Sendable {
        var prePrepare: PrePrepare?
        var validation = Validation.pending
        var tip: ChainTip?
        var carriedOver = false
        var prepares: [ValidatorIndex: Prepare] = [:]
        var commits: [ValidatorIndex: Commit] = [:]
        var isPrepared = false
        var ownPrepare: Prepare?
        var ownCommit: Commit?

        var hash: Hash? { prePrepare?.blockHash }
        func commitCount(for hash: Hash) -> Int { commits.values.reduce(0) { $0 + ($1.blockHash == hash ? 1 : 0) } }
        func prepareCount(for hash: Hash) -> Int { prepares.values.reduce(0) { $0 + ($1.blockHash == hash ? 1 : 0) } }
    }

    public init(configuration: ReplicaConfiguration) {
        self.configuration = configuration
        head = configuration.genesisTip
        stableCheckpoint = CheckpointCertificate(height: .genesis, blockHash: configuration.genesisTip.hash, checkpoints: [])
    }

    // MARK: - Read-only views for shells and tests

    public var me: ValidatorIndex { configuration.me }
    public var validators: ValidatorSet { configuration.validators }
    public var isPrimary: Bool { viewChangeTarget == nil && validators.primary(of: view) == me }
    public var lowWatermark: Height { stableCheckpoint.height }
    public var highWatermark: Height { Height(stableCheckpoint.height.value + configuration.parameters.watermarkWindow) }
    public var pendingTransactionCount: Int { pool.count }
    /// Heights above the head this replica holds a proposal for in the current view.
    public var inFlightHeights: [Height] {
        slots.keys.sorted().filter { $0 > head.height.value && slots[$0]?.prePrepare != nil }.map { Height($0) }
    }
    /// Heights this replica holds a prepared certificate for.
    public var preparedHeights: [Height] { prepared.keys.sorted().map { Height($0) } }
    public var persistentState: PersistentState {
        PersistentState(view: view, viewChangeTarget: viewChangeTarget, viewChangeAttempt: viewChangeAttempt,
                        stableCheckpoint: stableCheckpoint, prepared: prepared.keys.sorted().map { prepared[$0]! },
                        sentPrepares: sentPrepares.keys.sorted().map { sentPrepares[$0]! }, lastNewView: lastNewView,
                        ownProposals: ownProposals.keys.sorted().map { ownProposals[$0]! })
    }

    var quorum: Int { validators.quorum }
    var f: Int { validators.faultTolerance }
    var chainID: String { configuration.chainID }
    var suite: any CryptoSuite { configuration.suite }
    var params: ConsensusParameters { configuration.parameters }

    func timeout(attempt: UInt32) -> UInt64 {
        let base = max(1, params.viewChangeTimeoutMilliseconds)
        let cap = max(base, params.maxViewChangeTimeoutMilliseconds)
        let shift = min(attempt, 30)
        let grown = base.multipliedReportingOverflow(by: UInt64(1) << UInt64(shift))
        return grown.overflow ? cap : min(grown.partialValue, cap)
    }

    /// The timeout the replica uses now (for shells and tests).
    public var currentTimeoutMilliseconds: UInt64 { timeout(attempt: viewChangeAttempt) }

    // MARK: - Entry points

    /// A client transaction arrived.
    public mutating func onClientRequest<A: ReplicaApplication>(_ transaction: SignedTransaction, now: ConsensusTime,
                                                                application: inout A) -> ReplicaOutput {
        var (outcomes, out) = onClientRequests([transaction], now: now, application: &application)
        out.outcome = outcomes[0]
        return out
    }

    /// Many client transactions at once, in order: each is admitted exactly as by
    /// `onClientRequest` (one outcome per transaction, in the same order), then the replica
    /// proposes, votes and persists once for the whole group instead of once per transaction.
    /// The output's own `outcome` is `.accepted`; the per-transaction ones are in `outcomes`.
    public mutating func onClientRequests<A: ReplicaApplication>(_ transactions: [SignedTransaction], now: ConsensusTime,
                                                                 application: inout A) -> (outcomes: [Outcome], output: ReplicaOutput) {
        var out = ReplicaOutput()
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(transactions.count)
        for transaction in transactions { outcomes.append(admit(transaction, application: &application, into: &out)) }
        finish(now: now, application: &application, into: &out)
        return (outcomes, out)
    }

    /// Pool admission; a backup forwards a newly admitted transaction to the primary once.
    mutating func admit<A: ReplicaApplication>(_ transaction: SignedTransaction, application: inout A,
                                               into out: inout ReplicaOutput) -> Outcome {
        if pool[transaction.id] != nil { return .ignored(.duplicate) }
        if pool.count >= configuration.maxPoolSize {
            return .rejected("the pool is full (\(configuration.maxPoolSize) transactions); retry later")
        }
        if let rejection = application.admit(transaction) { return .rejected(rejection.description) }
        addToPool(transaction)
        if configuration.forwardsRequests, viewChangeTarget == nil, validators.primary(of: view) != me {
            out.directives.append(.send(.request(transaction), to: validators.primary(of: view)))
        }
        return .accepted
    }

    /// Forwards pool transactions the primary has not proposed yet (after a view change or a
    /// timeout), at most `limit` of them.
    func forwardPool(limit: Int = 256, into out: inout ReplicaOutput) {
        guard viewChangeTarget == nil, validators.primary(of: view) != me else { return }
        var sent = 0
        for id in poolOrder where sent < limit && !proposed.contains(id) {
            guard let transaction = pool[id] else { continue }
            out.directives.append(.send(.request(transaction), to: validators.primary(of: view)))
            sent += 1
        }
    }

    /// A consensus message from validator `from` (as authenticated by the transport).
    public mutating func onMessage<A: ReplicaApplication>(_ message: ConsensusMessage, from: ValidatorIndex, now: ConsensusTime,
                                                          application: inout A) -> ReplicaOutput {
        var out = ReplicaOutput()
        if validators.validator(at: from) == nil || from == me {
            out.outcome = .ignored(.notValidator)
            return out
        }
        // A NEW-VIEW is relayed by whoever answers a lagging replica; its primary's signature
        // vouches for it. A forwarded request is vouched for by its client's signature.
        if let claimed = message.claimedSender(validators: validators), claimed != from, !isNewView(message) {
            out.outcome = misbehaving(from, .malformed(kind: message.kind, reason: "sent by \(from) but claims another sender"), into: &out)
            return out
        }
        switch message {
        case .prePrepare(let message): out.outcome = handlePrePrepare(message, from: from, now: now, application: &application, into: &out)
        case .prepare(let message): out.outcome = handlePrepare(message, from: from, into: &out)
        case .commit(let message): out.outcome = handleCommit(message, from: from, into: &out)
        case .checkpoint(let message): out.outcome = handleCheckpoint(message, from: from, into: &out)
        case .viewChange(let message): out.outcome = handleViewChange(message, from: from, now: now, application: &application, into: &out)
        case .newView(let message): out.outcome = handleNewView(message, from: from, application: &application, into: &out)
        case .request(let transaction): out.outcome = admit(transaction, application: &application, into: &out)
        }
        if out.outcome == .ignored(.futureView) { buffer(message, from: from) }
        finish(now: now, application: &application, into: &out)
        return out
    }

    /// The replica's timer fired.
    public mutating func onTimer<A: ReplicaApplication>(_ timer: ReplicaTimer, now: ConsensusTime, application: inout A) -> ReplicaOutput {
        var out = ReplicaOutput()
        if timer.kind == .batch {
            guard batchTimerArmed, timer.generation == batchGeneration else {
                out.outcome = .ignored(.duplicate)
                return out
            }
            batchTimerArmed = false
            batchDue = true
            finish(now: now, application: &application, into: &out)
            return out
        }
        guard timerArmed, timer.generation == timerGeneration else {
            out.outcome = .ignored(.duplicate)
            return out
        }
        timerArmed = false
        if let target = viewChangeTarget {
            // A quorum has given up on the views before `target` (replicas already asking for a
            // later view count too: they left this one), so a primary that does not deliver a
            // NEW-VIEW is skipped. Counting exact matches only deadlocked a replica that had moved on.
            let joined = latestViewChange.values.reduce(0) { $0 + ($1.newView >= target ? 1 : 0) } >= quorum
            if joined && timerStage >= 1 {
                startViewChange(to: target.next, into: &out)
            } else {
                timerStage += 1
                if let own = latestViewChange[me] { out.directives.append(.broadcast(.viewChange(own))) }
                requestSync(target: nil, force: true, into: &out)
                arm(into: &out)
            }
        } else if timerStage == 0 {
            timerStage = 1
            retransmit(into: &out)
            requestSync(target: nil, force: true, into: &out)
            arm(into: &out)
        } else {
            startViewChange(to: view.next, into: &out)
        }
        finish(now: now, application: &application, into: &out)
        return out
    }

    /// Committed blocks with certificates, fetched by the shell after `.requestStateTransfer`.
    /// `certificatesVerified`: the shell has already checked every certificate against the genesis
    /// validators (catch-up verifies them on another core), so they are not checked again here.
    public mutating func onCommittedBlocks<A: ReplicaApplication>(_ blocks: [CommittedBlock], now: ConsensusTime, application: inout A,
                                                                  certificatesVerified: Bool = false) -> ReplicaOutput {
        var out = ReplicaOutput()
        var applied = 0
        var latestCertifiedView = View(0)
        for committed in blocks.sorted(by: { $0.block.header.height < $1.block.header.height }) {
            let header = committed.block.header
            if header.height <= head.height { continue }
            guard header.height == head.height.next else { break }
            let hash = committed.block.hash(suite: suite)
            guard committed.certificate.blockHash == hash, committed.certificate.height == header.height,
                  header.previousHash == head.hash, header.chainID == chainID else {
                out.outcome = .rejected("block \(header.height) does not extend the chain or does not match its certificate")
                break
            }
            do {
                if !certificatesVerified { try committed.certificate.verify(validators: validators, chainID: chainID, suite: suite) }
            } catch {
                out.outcome = .rejected("block \(header.height) has an invalid certificate: \(error)")
                break
            }
            do {
                try application.validate(committed.block, on: head, certified: true)
            } catch {
                out.outcome = .rejected("certified block \(header.height) fails validation: \(error)")
                break
            }
            if let slot = slots[header.height.value], slot.hash != hash {
                // Our proposal at this height lost: drop it and everything built on it.
                for key in slots.keys where key >= header.height.value { slots[key] = nil }
            }
            commitBlock(committed, tip: ChainTip(header: header, suite: suite), application: &application, into: &out)
            applied += 1
            latestCertifiedView = max(latestCertifiedView, committed.certificate.view)
        }
        // Blocks certified in a later view: this replica's view is stale. Ask for that view; the
        // replicas in it answer with their NEW-VIEW.
        if latestCertifiedView > (viewChangeTarget ?? view) { startViewChange(to: latestCertifiedView, into: &out) }
        if applied == 0, case .accepted = out.outcome, !blocks.isEmpty { out.outcome = .ignored(.alreadyCommitted) }
        finish(now: now, application: &application, into: &out)
        return out
    }

    /// Restart after a crash: `persisted` is the last `.persist` performed (nil if none), `head` the
    /// last committed block the shell stored. Everything else (pool, votes, timers) was lost.
    public mutating func onRestart<A: ReplicaApplication>(persisted: PersistentState?, head: ChainTip, now: ConsensusTime,
                                                          application: inout A) -> ReplicaOutput {
        var out = ReplicaOutput()
        let generation = timerGeneration
        let batchGeneration = self.batchGeneration
        self = Replica(configuration: configuration)
        timerGeneration = generation &+ 1
        self.batchGeneration = batchGeneration &+ 1
        self.head = head
        application.discardSpeculative()
        if let persisted {
            view = persisted.view
            viewChangeTarget = persisted.viewChangeTarget
            viewChangeAttempt = persisted.viewChangeAttempt
            stableCheckpoint = persisted.stableCheckpoint
            lastNewView = persisted.lastNewView
            for certificate in persisted.prepared where certificate.height > stableCheckpoint.height {
                prepared[certificate.height.value] = certificate
            }
            for proposal in persisted.sentPrepares where proposal.height > stableCheckpoint.height {
                sentPrepares[proposal.height.value] = proposal
            }
            if viewChangeTarget == nil {
                // Re-enter the current view's re-proposals (a restarted new primary must not
                // propose other blocks at those heights), then what this replica proposed or
                // prepared in the view, to finish those heights.
                if let newView = lastNewView, newView.view == view {
                    let decision = ViewChangeDecision(viewChanges: newView.viewChanges)
                    let bodies = knownBodies(newView)
                    for (certificate, proposal) in zip(decision.chain, newView.proposals) where certificate.height > head.height {
                        // A header-only block missing here was committed elsewhere: the catch-up
                        // requested below fetches it.
                        guard let block = certificate.omitsBody ? bodies[certificate.blockHash] : certificate.prePrepare.block else { continue }
                        var slot = Slot(prePrepare: PrePrepare(block: block, proposal: proposal))
                        slot.carriedOver = true
                        slots[certificate.height.value] = slot
                    }
                }
                for proposal in persisted.ownProposals where proposal.view == view && proposal.height > head.height {
                    ownProposals[proposal.height.value] = proposal
                    var slot = slots[proposal.height.value] ?? Slot(prePrepare: proposal)
                    slot.carriedOver = true
                    slots[proposal.height.value] = slot
                }
                for (height, certificate) in prepared where certificate.view == view && height > head.height.value {
                    var slot = slots[height] ?? Slot(prePrepare: certificate.prePrepare)
                    slot.carriedOver = true
                    for prepare in certificate.prepares { slot.prepares[prepare.replica] = prepare }
                    slots[height] = slot
                }
            } else if let target = viewChangeTarget {
                let change = makeViewChange(to: target)
                latestViewChange[me] = change
                out.directives.append(.broadcast(.viewChange(change)))
            }
        }
        requestSync(target: stableCheckpoint.height > head.height ? stableCheckpoint.height : nil, force: true, into: &out)
        finish(now: now, application: &application, into: &out)
        retransmit(into: &out)   // what it proposed before the crash may never have arrived
        return out
    }

    // MARK: - Normal case

    mutating func handlePrePrepare<A: ReplicaApplication>(_ message: PrePrepare, from: ValidatorIndex, now: ConsensusTime,
                                                         application: inout A, into out: inout ReplicaOutput) -> Outcome {
        if let outcome = checkViewAndWatermarks(view: message.view, height: message.height, from: from) { return outcome }
        // Votes and proposals for a committed height change nothing: they are dropped before
        // their signatures are checked (a quarter to a third of the votes arrive after the
        // block committed on a quorum of the others).
        if message.height <= head.height { return .ignored(.alreadyCommitted) }
        guard message.proposal.isValid(chainID: chainID, validators: validators, suite: suite) else {
            return misbehaving(from, .badSignature(kind: "pre-prepare"), into: &out)
        }
        guard message.block.header.height == message.height, message.block.hash(suite: suite) == message.blockHash else {
            return misbehaving(from, .invalidProposal(message.proposal, reason: "the block does not match the signed proposal"), into: &out)
        }
        let key = message.height.value
        var slot = slots[key] ?? Slot()
        if let existing = slot.prePrepare {
            if existing.blockHash == message.blockHash { return .ignored(.duplicate) }
            return equivocation(existing.proposal, message.proposal, into: &out)
        }
        // A prepare we already hold for this height may prove the primary signed something else.
        if let conflicting = slot.prepares.values.sorted(by: { $0.replica < $1.replica }).first(where: { $0.blockHash != message.blockHash }) {
            slot.prePrepare = message
            slots[key] = slot
            return equivocation(message.proposal, conflicting.proposal, into: &out)
        }
        slot.prePrepare = message
        slots[key] = slot
        return .accepted
    }

    mutating func handlePrepare(_ message: Prepare, from: ValidatorIndex, into out: inout ReplicaOutput) -> Outcome {
        if let outcome = checkViewAndWatermarks(view: message.view, height: message.height, from: from) { return outcome }
        guard message.replica != validators.primary(of: message.view) else {
            return misbehaving(from, .malformed(kind: "prepare", reason: "the primary does not send prepares"), into: &out)
        }
        if message.height <= head.height { return .ignored(.alreadyCommitted) }
        let key = message.height.value
        var slot = slots[key] ?? Slot()
        // Once prepared, another prepare for the same block adds nothing (the prepared
        // certificate is already made); only a conflicting one is worth checking, as evidence.
        if slot.isPrepared, slot.hash == message.blockHash, slot.prepares[message.replica] == nil { return .ignored(.quorumReached) }
        guard message.isValid(chainID: chainID, validators: validators, suite: suite) else {
            return misbehaving(from, .badSignature(kind: "prepare"), into: &out)
        }
        // The proposal signature a prepare carries was checked already if it is exactly the one
        // of the pre-prepare held for this height.
        guard slot.prePrepare?.proposal == message.proposal || message.proposal.isValid(chainID: chainID, validators: validators, suite: suite) else {
            return misbehaving(from, .malformed(kind: "prepare", reason: "carries a proposal signature the primary did not make"), into: &out)
        }
        if let existing = slot.prepares[message.replica] {
            if existing == message { return .ignored(.duplicate) }
            if existing.blockHash != message.blockHash {
                return misbehaving(message.replica, .conflictingPrepares(existing, message), into: &out)
            }
            return .ignored(.duplicate)
        }
        slot.prepares[message.replica] = message
        slots[key] = slot
        if let mine = slot.prePrepare, mine.blockHash != message.blockHash {
            return equivocation(mine.proposal, message.proposal, into: &out)
        }
        return .accepted
    }

    mutating func handleCommit(_ message: Commit, from: ValidatorIndex, into out: inout ReplicaOutput) -> Outcome {
        if let outcome = checkViewAndWatermarks(view: message.view, height: message.height, from: from) { return outcome }
        if message.height <= head.height { return .ignored(.alreadyCommitted) }
        let key = message.height.value
        var slot = slots[key] ?? Slot()
        // A block with a commit quorum needs no more votes for it (the certificate takes a quorum).
        if slot.commits[message.replica] == nil, slot.commitCount(for: message.blockHash) >= quorum { return .ignored(.quorumReached) }
        guard message.isValid(chainID: chainID, validators: validators, suite: suite) else {
            return misbehaving(from, .badSignature(kind: "commit"), into: &out)
        }
        if let existing = slot.commits[message.replica] {
            if existing.blockHash != message.blockHash {
                return misbehaving(message.replica, .conflictingCommits(existing, message), into: &out)
            }
            return .ignored(.duplicate)
        }
        slot.commits[message.replica] = message
        slots[key] = slot
        // A commit quorum for a block we cannot commit ourselves: catch up from certificates.
        if slot.commitCount(for: message.blockHash) >= quorum,
           message.height.value > head.height.value + 1 || (slot.hash != nil && slot.hash != message.blockHash) {
            requestSync(target: message.height, force: false, into: &out)
        }
        return .accepted
    }

    /// Common checks for the normal-case messages; nil means go on.
    mutating func checkViewAndWatermarks(view messageView: View, height: Height, from: ValidatorIndex) -> Outcome? {
        if messageView < view { return .ignored(.staleView) }
        if messageView > view || viewChangeTarget != nil { return .ignored(viewChangeTarget != nil && messageView <= view ? .notInView : .futureView) }
        if height <= lowWatermark { return .ignored(.outsideWatermarks) }
        if height > highWatermark {
            aheadReports[from] = max(aheadReports[from] ?? .genesis, height)
            return .ignored(.outsideWatermarks)
        }
        return nil
    }

    // MARK: - Checkpoints

    mutating func handleCheckpoint(_ message: Checkpoint, from: ValidatorIndex, into out: inout ReplicaOutput) -> Outcome {
        let interval = max(1, params.checkpointInterval)
        guard message.height > stableCheckpoint.height else { return .ignored(.staleCheckpoint) }
        guard message.height.value % interval == 0 else {
            return misbehaving(from, .malformed(kind: "checkpoint", reason: "height \(message.height) is not a multiple of \(interval)"), into: &out)
        }
        guard message.height.value <= highWatermark.value + params.watermarkWindow else {
            aheadReports[from] = max(aheadReports[from] ?? .genesis, message.height)
            return .ignored(.outsideWatermarks)
        }
        guard message.isValid(chainID: chainID, validators: validators, suite: suite) else {
            return misbehaving(from, .badSignature(kind: "checkpoint"), into: &out)
        }
        var votes = checkpointVotes[message.height.value] ?? [:]
        if let existing = votes[message.replica] {
            if existing.blockHash != message.blockHash {
                return misbehaving(message.replica, .conflictingCheckpoints(existing, message), into: &out)
            }
            return .ignored(.duplicate)
        }
        votes[message.replica] = message
        checkpointVotes[message.height.value] = votes
        considerCheckpoint(at: message.height, hash: message.blockHash, into: &out)
        return .accepted
    }

    mutating func considerCheckpoint(at height: Height, hash: Hash, into out: inout ReplicaOutput) {
        guard height > stableCheckpoint.height, let votes = checkpointVotes[height.value] else { return }
        let matching = votes.keys.sorted().compactMap { votes[$0] }.filter { $0.blockHash == hash }
        guard matching.count >= quorum else { return }
        adoptStableCheckpoint(CheckpointCertificate(height: height, blockHash: hash, checkpoints: Array(matching.prefix(quorum))),
                              into: &out)
    }

    mutating func adoptStableCheckpoint(_ certificate: CheckpointCertificate, into out: inout ReplicaOutput) {
        guard certificate.height > stableCheckpoint.height else { return }
        stableCheckpoint = certificate
        dirty = true
        let height = certificate.height.value
        for key in slots.keys where key <= height { slots[key] = nil }
        for key in prepared.keys where key <= height { prepared[key] = nil }
        for key in sentPrepares.keys where key <= height { sentPrepares[key] = nil }
        for key in ownProposals.keys where key <= height { ownProposals[key] = nil }
        for key in recentlyCommitted.keys where key <= height { recentlyCommitted[key] = nil }
        for key in votesForCommitted.keys where key <= height { votesForCommitted[key] = nil }
        for key in checkpointVotes.keys where key <= height { checkpointVotes[key] = nil }
        for key in ownCheckpoints.keys where key <= height { ownCheckpoints[key] = nil }
        for (replica, reported) in aheadReports where reported <= highWatermark { aheadReports[replica] = nil }
        if certificate.height > head.height { requestSync(target: certificate.height, force: false, into: &out) }
    }

    // MARK: - View change

    mutating func startViewChange(to target: View, into out: inout ReplicaOutput) {
        let current = viewChangeTarget ?? view
        guard target > current else { return }
        viewChangeTarget = target
        viewChangeAttempt &+= 1
        dirty = true
        timerStage = 0
        if timerArmed {
            out.directives.append(.cancelTimer(ReplicaTimer(generation: timerGeneration)))
            timerArmed = false
        }
        let change = makeViewChange(to: target)
        latestViewChange[me] = change
        out.directives.append(.broadcast(.viewChange(change)))
        arm(into: &out)
    }

    /// Every block prepared above the stable checkpoint, as PBFT requires; those this replica has
    /// already committed go header-only (`PreparedCertificate.withoutBody`): the decision needs
    /// only their hashes and links, and a replica that lacks one fetches it with its commit
    /// certificate. So a view change carries at most the pipeline's uncommitted blocks in full.
    func makeViewChange(to target: View) -> ViewChange {
        let certificates = prepared.keys.sorted().compactMap { prepared[$0] }
            .filter { $0.height > stableCheckpoint.height && $0.view < target }
            .map { $0.height <= head.height ? $0.withoutBody() : $0 }
        return try! ViewChange.sign(newView: target, replica: me, checkpoint: stableCheckpoint, prepared: certificates,
                                    chainID: chainID, key: configuration.key, suite: suite)
    }

    mutating func handleViewChange<A: ReplicaApplication>(_ message: ViewChange, from: ValidatorIndex, now: ConsensusTime,
                                                         application: inout A, into out: inout ReplicaOutput) -> Outcome {
        if viewChangeTarget == nil, message.newView <= view {
            // A replica behind us: show it the view we are in, at most once per timeout.
            if let newView = lastNewView, newView.view == view {
                let last = staleAnswers[from]
                let spacing = Int64(params.viewChangeTimeoutMilliseconds / 2)
                if last == nil || now.millisecondsSinceEpoch - last!.millisecondsSinceEpoch >= spacing {
                    staleAnswers[from] = now
                    out.directives.append(.send(.newView(newView), to: from))
                }
            }
            return .ignored(.staleView)
        }
        if let target = viewChangeTarget, message.newView < target, message.newView <= view { return .ignored(.staleView) }
        if let existing = latestViewChange[from], existing.newView >= message.newView {
            return .ignored(existing == message ? .duplicate : .staleView)
        }
        if let problem = message.problem(chainID: chainID, genesisHash: configuration.genesisTip.hash, validators: validators, suite: suite) {
            return misbehaving(from, problem.contains("signature") ? .badSignature(kind: "view-change") : .malformed(kind: "view-change", reason: problem),
                               into: &out)
        }
        latestViewChange[from] = message
        if message.checkpoint.height > stableCheckpoint.height, message.checkpoint.height <= head.height {
            adoptStableCheckpoint(message.checkpoint, into: &out)
        }
        // f+1 replicas want a later view: at least one of them is correct, so join.
        let current = viewChangeTarget ?? view
        let higher = latestViewChange.filter { $0.key != me && $0.value.newView > current }.map(\.value.newView).sorted(by: >)
        if higher.count >= f + 1 {
            startViewChange(to: higher[f], into: &out)
        }
        tryNewView(application: &application, into: &out)
        return .accepted
    }

    /// The new primary sends NEW-VIEW once 2f+1 replicas asked for its view.
    mutating func tryNewView<A: ReplicaApplication>(application: inout A, into out: inout ReplicaOutput) {
        guard let target = viewChangeTarget, validators.primary(of: target) == me, newViewSentFor != target else { return }
        let changes = latestViewChange.keys.sorted().compactMap { latestViewChange[$0] }.filter { $0.newView == target }
        guard changes.count >= quorum else { return }
        let chosen = Array(changes.prefix(quorum))
        let decision = ViewChangeDecision(viewChanges: chosen)
        let proposals = decision.chain.map {
            try! ProposalSignature.sign(chainID: chainID, view: target, height: $0.height, blockHash: $0.blockHash,
                                        key: configuration.key, suite: suite)
        }
        let message = try! NewView.sign(view: target, viewChanges: chosen, proposals: proposals, chainID: chainID,
                                        key: configuration.key, suite: suite)
        newViewSentFor = target
        out.directives.append(.broadcast(.newView(message)))
        install(message, decision: decision, application: &application, into: &out)
    }

    mutating func handleNewView<A: ReplicaApplication>(_ message: NewView, from: ValidatorIndex, application: inout A,
                                                      into out: inout ReplicaOutput) -> Outcome {
        if let target = viewChangeTarget {
            if message.view < target { return .ignored(.staleView) }
        } else if message.view <= view {
            return .ignored(message.view == view ? .duplicate : .staleView)
        }
        guard message.hasValidSignature(chainID: chainID, validators: validators, suite: suite) else {
            return misbehaving(from, .badSignature(kind: "new-view"), into: &out)
        }
        var seen = Set<ValidatorIndex>()
        for change in message.viewChanges {
            guard change.newView == message.view, seen.insert(change.replica).inserted else {
                return misbehaving(from, .malformed(kind: "new-view", reason: "view changes for another view or repeated"), into: &out)
            }
            if let problem = change.problem(chainID: chainID, genesisHash: configuration.genesisTip.hash, validators: validators, suite: suite) {
                return misbehaving(from, .malformed(kind: "new-view", reason: "carries an invalid view change: \(problem)"), into: &out)
            }
        }
        guard seen.count >= quorum else {
            return misbehaving(from, .malformed(kind: "new-view", reason: "\(seen.count) view changes, \(quorum) needed"), into: &out)
        }
        let decision = ViewChangeDecision(viewChanges: message.viewChanges)
        guard decision.chain.count == message.proposals.count else {
            return misbehaving(from, .malformed(kind: "new-view", reason: "re-proposals differ from what the view changes call for"), into: &out)
        }
        for (certificate, proposal) in zip(decision.chain, message.proposals) {
            guard proposal.view == message.view, proposal.height == certificate.height, proposal.blockHash == certificate.blockHash,
                  proposal.isValid(chainID: chainID, validators: validators, suite: suite) else {
                return misbehaving(from, .malformed(kind: "new-view", reason: "re-proposal at \(certificate.height) differs"), into: &out)
            }
        }
        install(message, decision: decision, application: &application, into: &out)
        return .accepted
    }

    /// Whole blocks this replica can use for a NEW-VIEW's header-only certificates, by hash: from
    /// the view changes it carries, this replica's prepared certificates and its pre-prepares.
    func knownBodies(_ message: NewView) -> [Hash: Block] {
        var bodies: [Hash: Block] = [:]
        for change in message.viewChanges {
            for certificate in change.prepared where !certificate.omitsBody { bodies[certificate.blockHash] = certificate.prePrepare.block }
        }
        for certificate in prepared.values where !certificate.omitsBody { bodies[certificate.blockHash] = certificate.prePrepare.block }
        for slot in slots.values {
            if let prePrepare = slot.prePrepare { bodies[prePrepare.blockHash] = prePrepare.block }
        }
        return bodies
    }

    mutating func install<A: ReplicaApplication>(_ message: NewView, decision: ViewChangeDecision, application: inout A,
                                                into out: inout ReplicaOutput) {
        view = message.view
        viewChangeTarget = nil
        lastNewView = message
        dirty = true
        staleAnswers = [:]
        timerStage = 0
        if timerArmed {
            out.directives.append(.cancelTimer(ReplicaTimer(generation: timerGeneration)))
            timerArmed = false
        }
        for (replica, change) in latestViewChange where change.newView <= view { latestViewChange[replica] = nil }
        if decision.checkpoint.height > stableCheckpoint.height { adoptStableCheckpoint(decision.checkpoint, into: &out) }
        let bodies = knownBodies(message)
        slots = [:]
        clearProposed()
        ownProposals = [:]
        application.discardSpeculative()
        votesForCommitted = [:]
        replayFuture = true
        for (certificate, proposal) in zip(decision.chain, message.proposals) where certificate.height <= head.height {
            // Already committed here: vote for it again in this view, for those still missing it.
            guard recentlyCommitted[certificate.height.value] == certificate.blockHash else { continue }
            var votes: [ConsensusMessage] = []
            if validators.primary(of: view) != me {
                let prepare = try! Prepare.sign(proposal: proposal, chainID: chainID, replica: me, key: configuration.key, suite: suite)
                sentPrepares[certificate.height.value] = proposal
                votes.append(.prepare(prepare))
            }
            votes.append(.commit(try! Commit.sign(chainID: chainID, view: view, height: certificate.height, blockHash: certificate.blockHash,
                                                  replica: me, key: configuration.key, suite: suite)))
            votesForCommitted[certificate.height.value] = votes
            for vote in votes { out.directives.append(.broadcast(vote)) }
        }
        var missingBody: Height?
        for (certificate, proposal) in zip(decision.chain, message.proposals) where certificate.height > head.height {
            guard let block = certificate.omitsBody ? bodies[certificate.blockHash] : certificate.prePrepare.block else {
                // Only a replica that had committed it sends a block header-only, so it is
                // committed and certified: catch-up fetches it.
                missingBody = missingBody ?? certificate.height
                continue
            }
            var slot = Slot(prePrepare: PrePrepare(block: block, proposal: proposal))
            slot.carriedOver = true
            slots[certificate.height.value] = slot
            for transaction in block.transactions { markProposed(transaction.id) }
        }
        if let missingBody {
            let lastHeaderOnly = decision.chain.last(where: { $0.omitsBody })?.height ?? missingBody
            requestSync(target: max(missingBody, lastHeaderOnly, decision.checkpoint.height), force: true, into: &out)
        } else if decision.checkpoint.height > head.height {
            requestSync(target: decision.checkpoint.height, force: false, into: &out)
        }
        forwardPool(into: &out)   // the new primary may never have seen them
    }

    // MARK: - Progress

    func isNewView(_ message: ConsensusMessage) -> Bool { if case .newView = message { true } else { false } }

    mutating func buffer(_ message: ConsensusMessage, from: ValidatorIndex) {
        let messageView: View
        switch message {
        case .prePrepare(let m): messageView = m.view
        case .prepare(let m): messageView = m.view
        case .commit(let m): messageView = m.view
        default: return
        }
        guard messageView.value <= (viewChangeTarget ?? view).value + UInt64(validators.count) else { return }
        var list = futureMessages[from] ?? []
        guard list.count < Int(params.watermarkWindow) * 3 + 8 else { return }
        list.append(message)
        futureMessages[from] = list
    }

    /// Feeds buffered messages for the view just installed through the normal handlers.
    mutating func replayFutureMessages(now: ConsensusTime, application: inout some ReplicaApplication, into out: inout ReplicaOutput) {
        guard replayFuture else { return }
        replayFuture = false
        let buffered = futureMessages
        futureMessages = [:]
        for sender in buffered.keys.sorted() {
            for message in buffered[sender]! {
                let messageView: View
                switch message {
                case .prePrepare(let m): messageView = m.view
                case .prepare(let m): messageView = m.view
                case .commit(let m): messageView = m.view
                default: continue
                }
                if messageView > view {
                    buffer(message, from: sender)
                } else if messageView == view {
                    switch message {
                    case .prePrepare(let m): _ = handlePrePrepare(m, from: sender, now: now, application: &application, into: &out)
                    case .prepare(let m): _ = handlePrepare(m, from: sender, into: &out)
                    case .commit(let m): _ = handleCommit(m, from: sender, into: &out)
                    default: break
                    }
                }
            }
        }
    }

    /// Runs after every input: validate, prepare, commit, execute, propose, persist, timers.
    mutating func finish<A: ReplicaApplication>(now: ConsensusTime, application: inout A, into out: inout ReplicaOutput) {
        tryNewView(application: &application, into: &out)
        if viewChangeTarget == nil { replayFutureMessages(now: now, application: &application, into: &out) }
        if viewChangeTarget == nil {
            var changed = true
            while changed {
                changed = validateSlots(now: now, application: &application, into: &out)
                changed = vote(into: &out) || changed
                changed = executeCommitted(application: &application, into: &out) || changed
                changed = propose(now: now, application: &application, into: &out) || changed
            }
        }
        // f+1 replicas are beyond our high watermark: we are behind, catch up.
        let ahead = aheadReports.values.filter { $0 > highWatermark }.sorted(by: >)
        if ahead.count >= f + 1 { requestSync(target: ahead[f], force: false, into: &out) }
        refreshTimer(into: &out)
        if dirty {
            dirty = false
            out.directives.insert(.persist(persistentState), at: 0)
        }
    }

    /// Validates pending proposals in height order on top of their parents. Returns whether any changed.
    mutating func validateSlots<A: ReplicaApplication>(now: ConsensusTime, application: inout A, into out: inout ReplicaOutput) -> Bool {
        var changed = false
        var parent = head
        var height = head.height.value + 1
        while var slot = slots[height], let prePrepare = slot.prePrepare {
            switch slot.validation {
            case .valid:
                parent = slot.tip!
                height += 1
                continue
            case .invalid, .clockRejected:
                return changed
            case .pending:
                break
            }
            let header = prePrepare.block.header
            if let sent = sentPrepares[height], sent.view == view, sent.blockHash != prePrepare.blockHash {
                slot.validation = .invalid   // we prepared another block here before a restart
                slots[height] = slot
                return true
            }
            var failure: String?
            // Blaming the primary needs proof. A block that does not link to our committed head
            // proves nothing when that head came from elsewhere (catch-up, a later view) while this
            // replica still sits in an older view; only a break with the primary's own previous
            // proposal in this view does.
            var provable = true
            if header.previousHash != parent.hash || header.height != Height(height) {
                failure = "block \(height) does not link to its parent \(parent.hash.short)"
                provable = height != head.height.value + 1
            } else if header.timestamp <= parent.timestamp {
                failure = "block \(height) timestamp is not after its parent's"
            } else if !slot.carriedOver,
                      abs(header.timestamp.millisecondsSinceEpoch - now.millisecondsSinceEpoch) > Int64(clamping: params.maxClockSkewMilliseconds) {
                slot.validation = .clockRejected
                slots[height] = slot
                return true
            } else {
                do {
                    try application.validate(prePrepare.block, on: parent, certified: false)
                } catch {
                    failure = "\(error)"
                }
            }
            if let failure {
                slot.validation = .invalid
                slots[height] = slot
                if !slot.carriedOver, provable {
                    _ = misbehaving(validators.primary(of: view), .invalidProposal(prePrepare.proposal, reason: failure), into: &out)
                    startViewChange(to: view.next, into: &out)
                }
                return true
            }
            slot.validation = .valid
            slot.tip = ChainTip(height: header.height, hash: prePrepare.blockHash, stateDigest: header.stateDigest, timestamp: header.timestamp)
            slots[height] = slot
            for transaction in prePrepare.block.transactions { markProposed(transaction.id) }
            parent = slot.tip!
            height += 1
            changed = true
        }
        return changed
    }

    /// Sends prepares and commits that became due. Returns whether anything changed.
    mutating func vote(into out: inout ReplicaOutput) -> Bool {
        var changed = false
        let primary = validators.primary(of: view)
        for height in slots.keys.sorted() where height > head.height.value {
            guard var slot = slots[height], let prePrepare = slot.prePrepare, slot.validation == .valid else { continue }
            let hash = prePrepare.blockHash
            if me != primary, slot.ownPrepare == nil {
                let prepare = try! Prepare.sign(proposal: prePrepare.proposal, chainID: chainID, replica: me,
                                                key: configuration.key, suite: suite)
                slot.ownPrepare = prepare
                slot.prepares[me] = prepare
                sentPrepares[height] = prePrepare.proposal
                dirty = true
                out.directives.append(.broadcast(.prepare(prepare)))
                changed = true
            }
            if !slot.isPrepared, slot.prepareCount(for: hash) >= quorum - 1 {
                slot.isPrepared = true
                let matching = slot.prepares.keys.sorted().compactMap { slot.prepares[$0] }.filter { $0.blockHash == hash && $0.replica != primary }
                prepared[height] = PreparedCertificate(prePrepare: prePrepare, prepares: Array(matching.prefix(quorum - 1)))
                dirty = true
                changed = true
            }
            let parentCertified = height == head.height.value + 1
                || (slots[height - 1].map { $0.hash != nil && $0.commitCount(for: $0.hash!) >= quorum } ?? false)
            if slot.isPrepared, slot.ownCommit == nil, parentCertified {
                let commit = try! Commit.sign(chainID: chainID, view: view, height: Height(height), blockHash: hash, replica: me,
                                              key: configuration.key, suite: suite)
                slot.ownCommit = commit
                slot.commits[me] = commit
                out.directives.append(.broadcast(.commit(commit)))
                changed = true
            }
            slots[height] = slot
        }
        return changed
    }

    /// Commits, in height order, every validated block that has a commit quorum.
    mutating func executeCommitted<A: ReplicaApplication>(application: inout A, into out: inout ReplicaOutput) -> Bool {
        var changed = false
        while let slot = slots[head.height.value + 1], slot.validation == .valid, let prePrepare = slot.prePrepare,
              slot.commitCount(for: prePrepare.blockHash) >= quorum {
            let votes = slot.commits.keys.sorted().compactMap { slot.commits[$0] }.filter { $0.blockHash == prePrepare.blockHash }
            let certificate = CommitCertificate(height: prePrepare.height, view: view, blockHash: prePrepare.blockHash,
                                                votes: votes.prefix(quorum).map(\.vote))
            commitBlock(CommittedBlock(block: prePrepare.block, certificate: certificate), tip: slot.tip!,
                        application: &application, into: &out)
            changed = true
        }
        return changed
    }

    mutating func commitBlock<A: ReplicaApplication>(_ committed: CommittedBlock, tip: ChainTip, application: inout A,
                                                    into out: inout ReplicaOutput) {
        application.commit(committed)
        out.directives.append(.commit(committed))
        head = tip
        recentlyCommitted[tip.height.value] = tip.hash
        slots[tip.height.value] = nil
        // A committed height's own proposal is no longer needed, but forgetting it is not worth a
        // write of its own: a restart ignores proposals at or below the committed head.
        ownProposals[tip.height.value] = nil
        for transaction in committed.block.transactions {
            removeFromPool(transaction.id)
            proposed.remove(transaction.id)
        }
        madeProgress = true
        viewChangeAttempt = 0
        let interval = max(1, params.checkpointInterval)
        if tip.height.value % interval == 0 {
            let checkpoint = try! Checkpoint.sign(chainID: chainID, height: tip.height, blockHash: tip.hash, replica: me,
                                                  key: configuration.key, suite: suite)
            ownCheckpoints[tip.height.value] = checkpoint
            var votes = checkpointVotes[tip.height.value] ?? [:]
            votes[me] = checkpoint
            checkpointVotes[tip.height.value] = votes
            out.directives.append(.broadcast(.checkpoint(checkpoint)))
            considerCheckpoint(at: tip.height, hash: tip.hash, into: &out)
        }
    }

    /// The primary fills its pipeline from the pool. Returns whether it proposed.
    mutating func propose<A: ReplicaApplication>(now: ConsensusTime, application: inout A, into out: inout ReplicaOutput) -> Bool {
        guard isPrimary else { return false }
        var changed = false
        while true {
            // Build only on a chain this replica has fully validated: no gap above the head, and
            // never at or below the stable checkpoint (a replica still catching up must not propose).
            guard head.height >= stableCheckpoint.height else { return changed }
            var tip = head
            var height = head.height.value + 1
            let top = slots.keys.filter { $0 > head.height.value && slots[$0]?.prePrepare != nil }.max() ?? head.height.value
            while height <= top {
                guard let slot = slots[height], slot.prePrepare != nil, slot.validation == .valid, let slotTip = slot.tip else { return changed }
                tip = slotTip
                height += 1
            }
            guard Height(height) <= highWatermark, height - head.height.value - 1 < configuration.pipelineDepth else { return changed }
            // Never sign a second block for a height of this view (its first one may have been
            // superseded by blocks committed in a later view while this replica lagged behind).
            guard ownProposals[height] == nil else { return changed }
            compactPool()
            assert(unproposedCount == pool.keys.reduce(0) { $0 + (proposed.contains($1) ? 0 : 1) }, "unproposedCount drifted")
            let limit = Int(params.maxBlockTransactions)
            guard unproposedCount > 0 else { return changed }
            // Wait for a full block, at most the batch delay (a timer, so the replica reads no clock).
            if unproposedCount < limit, configuration.batchDelayMilliseconds > 0, !batchDue {
                armBatchTimer(into: &out)
                return changed
            }
            var candidates: [SignedTransaction] = []
            candidates.reserveCapacity(min(unproposedCount, limit))
            var index = poolScanStart
            var settled = true   // every id so far was proposed or gone
            while index < poolOrder.count && candidates.count < limit {
                let id = poolOrder[index]
                if !proposed.contains(id), let transaction = pool[id] {
                    candidates.append(transaction)
                    settled = false
                }
                index += 1
                if settled { poolScanStart = index }
            }
            guard !candidates.isEmpty else { return changed }
            let timestamp = max(now, tip.timestamp.adding(milliseconds: 1))
            let block: Block
            do {
                block = try application.propose(candidates, on: tip, timestamp: timestamp, view: view, proposer: me)
            } catch {
                return changed
            }
            let included = Set(block.transactions.map(\.id))
            for candidate in candidates where !included.contains(candidate.id) {
                removeFromPool(candidate.id)
                out.directives.append(.dropTransaction(candidate.id, Rejection(.badSignature, "left out of block \(height) by the proposer")))
            }
            guard !block.transactions.isEmpty else { continue }
            let hash = block.hash(suite: suite)
            let proposal = try! ProposalSignature.sign(chainID: chainID, view: view, height: Height(height), blockHash: hash,
                                                       key: configuration.key, suite: suite)
            let prePrepare = PrePrepare(block: block, proposal: proposal)
            var slot = slots[height] ?? Slot()
            slot.prePrepare = prePrepare
            slot.validation = .valid
            slot.tip = ChainTip(height: Height(height), hash: hash, stateDigest: block.header.stateDigest, timestamp: block.header.timestamp)
            slots[height] = slot
            ownProposals[height] = prePrepare
            dirty = true
            batchDue = false
            for id in included { markProposed(id) }
            out.directives.append(.broadcast(.prePrepare(prePrepare)))
            changed = true
        }
    }

    mutating func armBatchTimer(into out: inout ReplicaOutput) {
        guard !batchTimerArmed else { return }
        batchGeneration &+= 1
        batchTimerArmed = true
        out.directives.append(.scheduleTimer(ReplicaTimer(generation: batchGeneration, kind: .batch),
                                             afterMilliseconds: configuration.batchDelayMilliseconds))
    }

    // The pool and `proposed` change only through these, which keep `unproposedCount` exact (and
    // through `proposed.remove` of a committed id, once `removeFromPool` has taken it out).

    mutating func addToPool(_ transaction: SignedTransaction) {
        if pool.updateValue(transaction, forKey: transaction.id) == nil, !proposed.contains(transaction.id) { unproposedCount += 1 }
        poolOrder.append(transaction.id)
    }

    mutating func removeFromPool(_ id: Hash) {
        if pool.removeValue(forKey: id) != nil, !proposed.contains(id) { unproposedCount -= 1 }
    }

    mutating func markProposed(_ id: Hash) {
        if proposed.insert(id).inserted, pool[id] != nil { unproposedCount -= 1 }
    }

    /// A view change: nothing in the pool counts as proposed any more.
    mutating func clearProposed() {
        proposed = []
        poolScanStart = 0
        unproposedCount = pool.count
    }

    mutating func compactPool() {
        if poolOrder.count > 64 && poolOrder.count > 2 * pool.count {
            poolOrder = poolOrder.filter { pool[$0] != nil }
            poolScanStart = 0
        }
    }

    // MARK: - Timers, retransmission, catch-up

    var hasOutstandingWork: Bool {
        !pool.isEmpty || slots.contains { $0.key > head.height.value && $0.value.prePrepare != nil }
    }

    mutating func arm(into out: inout ReplicaOutput) {
        timerGeneration &+= 1
        timerArmed = true
        out.directives.append(.scheduleTimer(ReplicaTimer(generation: timerGeneration), afterMilliseconds: timeout(attempt: viewChangeAttempt)))
    }

    mutating func refreshTimer(into out: inout ReplicaOutput) {
        defer { madeProgress = false }
        if viewChangeTarget != nil {
            if !timerArmed { arm(into: &out) }
            return
        }
        if hasOutstandingWork {
            if !timerArmed {
                timerStage = 0
                arm(into: &out)
            } else if madeProgress {
                out.directives.append(.cancelTimer(ReplicaTimer(generation: timerGeneration)))
                timerStage = 0
                arm(into: &out)
            }
        } else if timerArmed {
            out.directives.append(.cancelTimer(ReplicaTimer(generation: timerGeneration)))
            timerArmed = false
            timerStage = 0
        }
    }

    /// Sends again what this replica said about the heights still open, in case it was lost.
    func retransmit(into out: inout ReplicaOutput) {
        forwardPool(into: &out)
        for height in votesForCommitted.keys.sorted() {
            for vote in votesForCommitted[height]! { out.directives.append(.broadcast(vote)) }
        }
        for height in slots.keys.sorted() where height > head.height.value {
            guard let slot = slots[height] else { continue }
            if isPrimary, let prePrepare = ownProposals[height], slot.validation == .valid {
                out.directives.append(.broadcast(.prePrepare(prePrepare)))
            }
            if let prepare = slot.ownPrepare { out.directives.append(.broadcast(.prepare(prepare))) }
            if let commit = slot.ownCommit { out.directives.append(.broadcast(.commit(commit))) }
        }
        for height in ownCheckpoints.keys.sorted() where height > stableCheckpoint.height.value {
            out.directives.append(.broadcast(.checkpoint(ownCheckpoints[height]!)))
        }
        if isPrimary, let newView = lastNewView, newView.view == view, !newView.proposals.isEmpty {
            out.directives.append(.broadcast(.newView(newView)))
        }
    }

    mutating func requestSync(target: Height?, force: Bool, into out: inout ReplicaOutput) {
        let from = head.height.next
        if !force, lastSyncFrom == from { return }
        lastSyncFrom = from
        let n = UInt16(validators.count)
        let peers = (1..<max(n, 1)).map { ValidatorIndex((me.value + $0) % n) }
        out.directives.append(.requestStateTransfer(StateTransferRequest(from: from, target: target, peers: peers)))
    }

    // MARK: - Faults

    mutating func misbehaving(_ replica: ValidatorIndex, _ evidence: Evidence, into out: inout ReplicaOutput) -> Outcome {
        out.directives.append(.reportMisbehaviour(replica, evidence))
        return .misbehaving(replica, evidence)
    }

    mutating func equivocation(_ first: ProposalSignature, _ second: ProposalSignature, into out: inout ReplicaOutput) -> Outcome {
        let primary = validators.primary(of: first.view)
        let outcome = misbehaving(primary, .equivocation(first, second), into: &out)
        if viewChangeTarget == nil, first.view == view { startViewChange(to: view.next, into: &out) }
        return outcome
    }
}
