import LedgerCore

/// What the replica needs from the ledger: admit client transactions, build and check blocks,
/// learn what committed. The replica passes it in on every call (`inout`), so the replica stays a
/// plain value and tests can use a trivial application.
///
/// Speculation: the replica validates a block only on top of a parent that is committed or that
/// this application validated (or proposed) earlier in the same view, so an implementation keeps
/// the state after each validated block keyed by block hash until `commit` or
/// `discardSpeculative`.
public protocol ReplicaApplication {
    /// Whether a client transaction may enter the pool (nil) or why not (bad signature, wrong
    /// chain, already committed). Called once per transaction id.
    mutating func admit(_ transaction: SignedTransaction) -> Rejection?

    /// Builds the block after `parent` from `candidates` (in pool order). Transactions left out of
    /// the block are dropped from the pool.
    mutating func propose(_ candidates: [SignedTransaction], on parent: ChainTip, timestamp: ConsensusTime, view: View,
                          proposer: ValidatorIndex) throws -> Block

    /// Checks and executes a block on top of `parent`: every rule, signature and root. `certified`
    /// is true for blocks that arrive with a valid commit certificate (catch-up), whose client
    /// signatures may be trusted.
    mutating func validate(_ block: Block, on parent: ChainTip, certified: Bool) throws

    /// The block (validated earlier) is final; apply it to the committed state.
    mutating func commit(_ block: CommittedBlock)

    /// A view change dropped every uncommitted block; forget their speculative state.
    mutating func discardSpeculative()
}
