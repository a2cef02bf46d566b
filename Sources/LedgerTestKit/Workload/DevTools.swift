import LedgerCore
import LedgerStore

/// `scf dev write-chain`: writes a generated chain into a new data file, block by block, and says
/// how far it got. The crash-safety test kills it (kill -9) while it writes.
public enum WriteChainTool {
    /// The consortium behind every generated chain: the sample members plus `suppliers` extra
    /// suppliers. Whoever reopens or verifies the file needs the same number.
    public static func consortium(suppliers: Int) -> TestConsortium { TestConsortium(extraSuppliers: suppliers) }

    public static let defaultSuppliers = 24

    /// Writes `blocks` blocks of `transactionsPerBlock` generated transactions into `path`, which
    /// must not hold a chain yet. Calls `report` with a line every `progressEvery` blocks and at the end.
    @discardableResult
    public static func run(path: String, blocks: Int, transactionsPerBlock: Int, seed: UInt64, suppliers: Int = defaultSuppliers,
                           blockInterval: Int64 = 3_600_000, signatures: BlockExecutor.SignaturePolicy = .trusted,
                           progressEvery: Int = 100, report: (String) -> Void) throws -> ChainWriter.Timings {
        let consortium = consortium(suppliers: suppliers)
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        defer { store.close() }
        let generator = WorkloadGenerator(consortium: consortium, seed: seed, transactionsPerBlock: transactionsPerBlock,
                                          blockInterval: blockInterval)
        var writer = try ChainWriter(store: store, generator: generator, signatures: signatures)
        let clock = ContinuousClock()
        let start = clock.now
        let every = max(1, progressEvery)
        for index in stride(from: 1, through: blocks, by: 1) {
            let (block, _) = try writer.writeBlock()
            if index % every == 0 || index == blocks {
                let seconds = Self.seconds(clock.now - start)
                report("height \(block.block.header.height) of \(blocks), \(writer.timings.transactions) transactions, \(format(seconds)) s, \(Int(Double(writer.timings.transactions) / max(seconds, 1e-9))) tx/s")
            }
        }
        let stats = writer.generator.statistics
        report("wrote \(blocks) blocks, \(stats.transactions) transactions (\(stats.rejected) rejected by rule) to \(path), tip \(store.tip.hash.short)")
        return writer.timings
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func format(_ value: Double) -> String { String(Double(Int(value * 100)) / 100) }
}

/// `scf dev bench-store`: how fast blocks are applied (executor on the store + append) and verified.
public enum StoreBenchmark {
    public struct Figures: Sendable, CustomStringConvertible {
        public var blocks: Int
        public var transactions: Int
        /// Executing on the store with signature checks, then appending: what a validator does per block.
        public var applyVerifyingPerSecond: Double
        /// Executing on the store with signatures trusted (already checked at admission), then appending.
        public var applyTrustedPerSecond: Double
        /// Append alone (one database transaction with fsync), per transaction.
        public var appendPerSecond: Double
        /// `LedgerVerifier` on the file, signatures on all cores.
        public var verifyParallelPerSecond: Double
        /// `LedgerVerifier` on the file, signatures on one core.
        public var verifySequentialPerSecond: Double
        public var verifyParallelSeconds: Double
        public var verifySequentialSeconds: Double

        public var description: String {
            func rate(_ value: Double) -> String { String(Int(value.rounded())) }
            return """
                \(blocks) blocks, \(transactions) transactions
                apply (execute on store, signatures verified + append): \(rate(applyVerifyingPerSecond)) tx/s
                apply (execute on store, signatures trusted + append):  \(rate(applyTrustedPerSecond)) tx/s
                append alone (one SQLite transaction + fsync per block): \(rate(appendPerSecond)) tx/s
                verify (all cores):  \(rate(verifyParallelPerSecond)) tx/s, \(WriteChainTool.format(verifyParallelSeconds)) s
                verify (one core):   \(rate(verifySequentialPerSecond)) tx/s, \(WriteChainTool.format(verifySequentialSeconds)) s
                """
        }
    }

    /// Writes two chains of `blocks` blocks into `directory` (one executing with signature checks,
    /// one trusting them), then verifies the first one twice (all cores, one core).
    public static func run(directory: String, blocks: Int, transactionsPerBlock: Int, seed: UInt64 = 1) throws -> Figures {
        let verifying = try WriteChainTool.run(path: directory + "/bench-verify.sqlite", blocks: blocks, transactionsPerBlock: transactionsPerBlock,
                                               seed: seed, signatures: .verify, progressEvery: .max) { _ in }
        let trusted = try WriteChainTool.run(path: directory + "/bench-trusted.sqlite", blocks: blocks, transactionsPerBlock: transactionsPerBlock,
                                             seed: seed, signatures: .trusted, progressEvery: .max) { _ in }
        let genesis = WriteChainTool.consortium(suppliers: WriteChainTool.defaultSuppliers).genesis
        let parallel = try LedgerVerifier(options: .init(parallelSignatures: true)).verify(path: directory + "/bench-verify.sqlite", genesis: genesis)
        let sequential = try LedgerVerifier(options: .init(parallelSignatures: false)).verify(path: directory + "/bench-verify.sqlite", genesis: genesis)
        guard parallel.isValid, sequential.isValid else {
            throw StoreError(.corrupt, "the benchmark chain did not verify: \(parallel.summary)")
        }
        func perSecond(_ count: Int, _ duration: Duration) -> Double { Double(count) / max(WriteChainTool.seconds(duration), 1e-9) }
        return Figures(blocks: blocks, transactions: verifying.transactions,
                       applyVerifyingPerSecond: perSecond(verifying.transactions, verifying.execute + verifying.append),
                       applyTrustedPerSecond: perSecond(trusted.transactions, trusted.execute + trusted.append),
                       appendPerSecond: perSecond(trusted.transactions, trusted.append),
                       verifyParallelPerSecond: Double(parallel.transactions) / parallel.seconds,
                       verifySequentialPerSecond: Double(sequential.transactions) / sequential.seconds,
                       verifyParallelSeconds: parallel.seconds, verifySequentialSeconds: sequential.seconds)
    }
}
