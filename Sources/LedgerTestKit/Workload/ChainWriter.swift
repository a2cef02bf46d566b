#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LedgerCore
import LedgerStore

/// Writes a generated chain into a `LedgerStore`: the generator proposes transactions, the
/// executor runs them directly on the store, the test validators certify the block, and the store
/// appends it. Used by `scf dev write-chain`, the store's tests and the storage benchmark.
public struct ChainWriter: Sendable {
    public let store: LedgerStore
    public private(set) var generator: WorkloadGenerator
    /// How execution treats signatures: `.trusted` (the generator signs correctly; a node checks
    /// signatures once at admission), or `.verify` to include the checks in the timing.
    public var signatures: BlockExecutor.SignaturePolicy
    public private(set) var timings = Timings()
    private let certifier: ChainBuilder
    private let executor: BlockExecutor

    /// Where the time goes, summed over every block written.
    public struct Timings: Sendable {
        /// Generating and signing transactions.
        public var generate: Duration = .zero
        /// `BlockExecutor.makeBlock` on the store (state reads through SQLite).
        public var execute: Duration = .zero
        /// Signing the commit certificate.
        public var certify: Duration = .zero
        /// `LedgerStore.append` (one database transaction with fsync).
        public var append: Duration = .zero
        /// CPU time (user and system) of the writing thread in `execute` and in `append`: what
        /// the validator's work costs, whatever else the machine is doing.
        public var executeCPU: Duration = .zero
        public var appendCPU: Duration = .zero
        public var transactions = 0
        public var blocks = 0
    }

    /// CPU time of the calling thread so far.
    public static func threadCPU() -> Duration {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return .seconds(time.tv_sec) + .nanoseconds(time.tv_nsec)
    }

    /// The store must be new (at genesis) and opened with `generator.consortium.genesis`.
    public init(store: LedgerStore, generator: WorkloadGenerator, signatures: BlockExecutor.SignaturePolicy = .trusted) throws {
        guard store.genesisHash == generator.consortium.genesis.hash(suite: generator.consortium.suite) else {
            throw StoreError(.genesisMismatch, "the store was opened with another genesis than the generator's consortium")
        }
        guard store.tip.height == .genesis else {
            throw StoreError(.wrongHeight, "\(store.path) already holds \(store.tip.height) blocks; a generated chain starts from genesis, so give a new file")
        }
        self.store = store
        self.generator = generator
        self.signatures = signatures
        self.certifier = ChainBuilder(consortium: generator.consortium)
        self.executor = generator.consortium.executor
    }

    /// Generates, executes, certifies and appends one block.
    @discardableResult
    public mutating func writeBlock() throws -> (CommittedBlock, ExecutionResult) {
        let clock = ContinuousClock()
        var mark = clock.now
        func lap() -> Duration {
            let now = clock.now
            defer { mark = now }
            return now - mark
        }
        let next = generator.nextBlock()
        timings.generate += lap()
        let tip = store.tip
        let view = View(0)
        var cpu = Self.threadCPU()
        let (block, result) = try executor.makeBlock(candidates: next.transactions, on: tip, timestamp: next.timestamp, view: view,
                                                     proposer: generator.consortium.validatorSet.primary(of: view), state: store,
                                                     signatures: signatures)
        timings.execute += lap()
        timings.executeCPU += Self.threadCPU() - cpu
        let committed = CommittedBlock(block: block, certificate: certifier.certify(block))
        timings.certify += lap()
        cpu = Self.threadCPU()
        try store.append(committed, result: result)
        timings.appendCPU += Self.threadCPU() - cpu
        timings.append += lap()
        generator.observe(result)
        timings.transactions += block.transactions.count
        timings.blocks += 1
        return (committed, result)
    }
}
