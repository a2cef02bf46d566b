import Consensus
import LedgerCore

/// The replica application backed by the real state transition: `BlockExecutor` over a
/// `MemoryLedgerState`, with the speculative state of every block in flight kept as the changes
/// from the committed state up to that block.
///
/// Its committed part (`state`, `tip`, `committedIDs`) stands for what a node keeps on disk; a
/// crash loses only the speculative part (`discardSpeculative`).
public struct LedgerApplication: ReplicaApplication, Sendable {
    public let executor: BlockExecutor
    public private(set) var state: MemoryLedgerState
    public private(set) var tip: ChainTip
    public private(set) var committedIDs: Set<Hash> = []
    /// Receipts of committed transactions that were refused by a rule, by transaction id.
    public private(set) var rejections: [Hash: Rejection] = [:]
    var speculative: [Hash: Speculative] = [:]
    /// Receipts of validated, not yet committed blocks, by block hash.
    var pendingReceipts: [Hash: [Receipt]] = [:]

    struct Speculative: Sendable {
        var tip: ChainTip
        /// This block's own writes.
        var changes: StateChanges
        /// Writes from the committed state up to and including this block.
        var cumulative: StateChanges
    }

    public init(genesis: Genesis, suite: any CryptoSuite) {
        executor = BlockExecutor(genesis: genesis, suite: suite)
        state = MemoryLedgerState(genesis: genesis)
        tip = BlockExecutor.genesisTip(genesis: genesis, suite: suite)
    }

    var suite: any CryptoSuite { executor.suite }

    public mutating func admit(_ transaction: SignedTransaction) -> Rejection? {
        if committedIDs.contains(transaction.id) {
            return Rejection(.replayed, "transaction \(transaction.id.short) is already committed")
        }
        guard transaction.body.chainID == executor.chainID else {
            return Rejection(.wrongChain, "transaction is for chain \(transaction.body.chainID)")
        }
        if let member = state.member(transaction.body.signer),
           !transaction.hasValidSignature(publicKey: member.publicKey, suite: suite) {
            return Rejection(.badSignature, "the signature of \(transaction.body.signer) does not verify")
        }
        return nil
    }

    func changes(upTo parent: ChainTip) throws -> StateChanges {
        if parent.hash == tip.hash { return StateChanges() }
        guard let entry = speculative[parent.hash] else {
            throw BlockValidationError(.wrongPreviousHash, "parent \(parent.hash.short) is neither committed nor validated")
        }
        return entry.cumulative
    }

    public mutating func propose(_ candidates: [SignedTransaction], on parent: ChainTip, timestamp: ConsensusTime, view: View,
                                 proposer: ValidatorIndex) throws -> Block {
        let before = try changes(upTo: parent)
        let fresh = candidates.filter { !committedIDs.contains($0.id) }
        let (block, result) = try executor.makeBlock(candidates: fresh, on: parent, timestamp: timestamp, view: view, proposer: proposer,
                                                     state: OverlayState(base: state, changes: before), signatures: .verifyAndDrop)
        remember(block, result: result, before: before)
        return block
    }

    public mutating func validate(_ block: Block, on parent: ChainTip, certified: Bool) throws {
        let before = try changes(upTo: parent)
        if let duplicate = block.transactions.first(where: { committedIDs.contains($0.id) }) {
            throw BlockValidationError(.duplicateTransaction, "transaction \(duplicate.id.short) is already committed")
        }
        let result = try executor.validate(block, on: parent, state: OverlayState(base: state, changes: before),
                                           signatures: certified ? .trusted : .verify)
        remember(block, result: result, before: before)
    }

    mutating func remember(_ block: Block, result: ExecutionResult, before: StateChanges) {
        var cumulative = before
        cumulative.merge(result.changes)
        let blockTip = ChainTip(header: block.header, suite: suite)
        speculative[blockTip.hash] = Speculative(tip: blockTip, changes: result.changes, cumulative: cumulative)
        pendingReceipts[blockTip.hash] = result.receipts
    }

    public mutating func commit(_ committed: CommittedBlock) {
        let hash = committed.certificate.blockHash
        if let entry = speculative[hash] {
            state.apply(entry.changes)
        } else if let result = try? executor.validate(committed.block, on: tip, state: state, signatures: .trusted) {
            state.apply(result.changes)
            pendingReceipts[hash] = result.receipts
        }
        for receipt in pendingReceipts[hash] ?? [] {
            if let rejection = receipt.rejection { rejections[receipt.transaction] = rejection }
        }
        for transaction in committed.block.transactions { committedIDs.insert(transaction.id) }
        tip = ChainTip(header: committed.block.header, suite: suite)
        // Blocks at or below the new tip are final or dead.
        for (key, entry) in speculative where entry.tip.height <= tip.height {
            speculative[key] = nil
            pendingReceipts[key] = nil
        }
    }

    public mutating func discardSpeculative() {
        speculative = [:]
        pendingReceipts = [:]
    }
}
