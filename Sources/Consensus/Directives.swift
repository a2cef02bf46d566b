import LedgerCore

/// What the replica asks its shell to do, in order. The shell performs them one after another:
/// a `.persist` always comes before any send in the same list (a replica persists what it
/// prepared before it sends a commit), commits come in height order.
public enum Directive: Hashable, Sendable {
    /// Make this durable before performing anything after it in the list.
    case persist(PersistentState)
    case send(ConsensusMessage, to: ValidatorIndex)
    /// Send to every other validator.
    case broadcast(ConsensusMessage)
    /// Arm the replica's timer of that kind (replacing any earlier one of the same kind); call
    /// `onTimer` when it fires.
    case scheduleTimer(ReplicaTimer, afterMilliseconds: UInt64)
    case cancelTimer(ReplicaTimer)
    /// The block is final: store it with its certificate. The application was already told
    /// (`ReplicaApplication.commit`).
    case commit(CommittedBlock)
    /// Fetch committed blocks with their certificates from `request.from` upward from one of the
    /// peers, and hand them to `onCommittedBlocks`.
    case requestStateTransfer(StateTransferRequest)
    /// A validator provably (or, for bad signatures, by its authenticated link) misbehaved.
    case reportMisbehaviour(ValidatorIndex, Evidence)
    /// A client transaction left the pool without being committed (refused at proposal time).
    case dropTransaction(Hash, Rejection)
}

/// One of the replica's timers. A fired timer whose generation is not the latest of its kind is
/// ignored.
public struct ReplicaTimer: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: UInt8, Hashable, Sendable, CaseIterable {
        /// Progress: retransmit, then change view (armed while work is outstanding).
        case progress
        /// Batching: the primary proposes a block that is not full once this fires
        /// (`ReplicaConfiguration.batchDelayMilliseconds`).
        case batch
    }
    public var generation: UInt64
    public var kind: Kind
    public init(generation: UInt64, kind: Kind = .progress) {
        self.generation = generation
        self.kind = kind
    }
    public var description: String { kind == .progress ? "timer#\(generation)" : "batch-timer#\(generation)" }
}

/// A catch-up request: the committed blocks from `from` on (up to `target` if known).
public struct StateTransferRequest: Hashable, Sendable {
    public var from: Height
    /// The highest height the replica knows is committed, when it knows one.
    public var target: Height?
    /// Peers to ask, in the order to try them.
    public var peers: [ValidatorIndex]
    public init(from: Height, target: Height?, peers: [ValidatorIndex]) {
        self.from = from
        self.target = target
        self.peers = peers
    }
}

/// Proof (or the link-level fact) that a validator misbehaved.
public enum Evidence: Hashable, Sendable {
    /// The primary signed two different blocks for one (view, height).
    case equivocation(ProposalSignature, ProposalSignature)
    /// A replica signed two different prepares for one (view, height).
    case conflictingPrepares(Prepare, Prepare)
    /// A replica signed two different commits for one (view, height).
    case conflictingCommits(Commit, Commit)
    /// A replica signed two different checkpoints for one height.
    case conflictingCheckpoints(Checkpoint, Checkpoint)
    /// The primary signed a proposal that fails a deterministic check (not the clock).
    case invalidProposal(ProposalSignature, reason: String)
    /// A message over an authenticated link carried a signature that does not verify.
    case badSignature(kind: String)
    /// A message over an authenticated link claimed to be from someone else or was malformed.
    case malformed(kind: String, reason: String)
}

/// Why a message was not used.
public enum IgnoreReason: String, Hashable, Sendable {
    case notValidator, staleView, futureView, outsideWatermarks, duplicate, alreadyCommitted, notInView, staleCheckpoint
    /// A vote agreeing with a quorum this replica already holds: not needed, so not checked.
    case quorumReached
}

/// The answer to one input.
public enum Outcome: Hashable, Sendable {
    case accepted
    case ignored(IgnoreReason)
    case rejected(String)
    case misbehaving(ValidatorIndex, Evidence)
}

/// What an entry point returns: how the input was taken, and the directives to perform.
public struct ReplicaOutput: Hashable, Sendable {
    public var outcome: Outcome
    public var directives: [Directive]
    public init(outcome: Outcome = .accepted, directives: [Directive] = []) {
        self.outcome = outcome
        self.directives = directives
    }

    /// Messages this output sends, with their destination (nil = broadcast).
    public var messages: [(ConsensusMessage, ValidatorIndex?)] {
        directives.compactMap {
            switch $0 {
            case .send(let message, let to): (message, to)
            case .broadcast(let message): (message, nil)
            default: nil
            }
        }
    }
    public var commits: [CommittedBlock] {
        directives.compactMap { if case .commit(let block) = $0 { block } else { nil } }
    }
}
