import LedgerCore

/// Builds a certified chain in memory: executes blocks with the real executor, signs commit
/// certificates with the consortium's validator keys, and keeps the state. For tests, the store,
/// `ledger verify` fixtures and benchmarks.
public struct ChainBuilder: Sendable {
    public let consortium: TestConsortium
    public let executor: BlockExecutor
    public private(set) var state: MemoryLedgerState
    public private(set) var tip: ChainTip
    public private(set) var blocks: [CommittedBlock] = []
    public private(set) var results: [ExecutionResult] = []
    /// Consensus time advances this much per block unless a block says otherwise.
    public var blockInterval: Int64 = 1_000
    /// Keep every block and result in memory (turn off for very long chains and stream them out).
    public var retainsBlocks = true

    public init(consortium: TestConsortium) {
        self.consortium = consortium
        self.executor = consortium.executor
        self.state = MemoryLedgerState(genesis: consortium.genesis)
        self.tip = BlockExecutor.genesisTip(genesis: consortium.genesis, suite: consortium.suite)
    }

    /// Executes `transactions` as the next block at `time` (default: previous + interval), certifies and applies it.
    @discardableResult
    public mutating func append(_ transactions: [SignedTransaction], at time: ConsensusTime? = nil) throws -> (CommittedBlock, ExecutionResult) {
        let timestamp = time ?? tip.timestamp.adding(milliseconds: blockInterval)
        let view = View(0)
        let proposer = consortium.validatorSet.primary(of: view)
        let (block, result) = try executor.makeBlock(candidates: transactions, on: tip, timestamp: timestamp, view: view,
                                                     proposer: proposer, state: state, signatures: .verify)
        let committed = CommittedBlock(block: block, certificate: certify(block))
        state.apply(result.changes)
        tip = ChainTip(header: block.header, suite: consortium.suite)
        if retainsBlocks {
            blocks.append(committed)
            results.append(result)
        }
        return (committed, result)
    }

    /// The receipt of the last block's transaction `index`.
    public func lastReceipt(_ index: Int = 0) -> Receipt? { results.last?.receipts[index] }

    /// A commit certificate signed by a quorum of the validators.
    public func certify(_ block: Block) -> CommitCertificate {
        let hash = block.hash(suite: consortium.suite)
        let votes = (0..<consortium.validatorSet.quorum).map { index in
            try! CommitCertificate.vote(chainID: consortium.genesis.chainID, height: block.header.height, view: block.header.view,
                                        blockHash: hash, validator: ValidatorIndex(UInt16(index)),
                                        key: consortium.validatorKeys[index], suite: consortium.suite)
        }
        return CommitCertificate(height: block.header.height, view: block.header.view, blockHash: hash, votes: votes)
    }

    /// Consensus time at the start of a business date (China time).
    public static func time(_ date: String, hour: Int64 = 10) -> ConsensusTime {
        ConsensusTime(startOf: BusinessDate(date)!, utcOffsetMinutes: 480).adding(milliseconds: hour * 3_600_000)
    }
}
