#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
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
///
/// Reports wall-clock rates and CPU cost per transaction: on a shared machine the wall clock
/// mostly measures the neighbours (and apply is bound by one fsync per block), while CPU time per
/// transaction is what the code costs.
public enum StoreBenchmark {
    public struct Phase: Sendable {
        public var transactions: Int
        public var wallSeconds: Double
        public var cpuSeconds: Double
        public var perSecond: Double { Double(transactions) / max(wallSeconds, 1e-9) }
        /// Transactions per second of CPU time (all threads).
        public var perCPUSecond: Double { Double(transactions) / max(cpuSeconds, 1e-9) }
        /// CPU microseconds per transaction.
        public var cpuMicroseconds: Double { cpuSeconds * 1e6 / Double(max(transactions, 1)) }
    }

    public struct Figures: Sendable, CustomStringConvertible {
        public var blocks: Int
        public var transactionsPerBlock: Int
        /// Generate, execute on the store with every signature checked, certify, append: a validator's work per block
        /// (the generation and certificate signing are included in CPU, not in `applyVerifying.wallSeconds`).
        public var applyVerifying: Phase
        /// The same with signatures trusted (checked once at mempool admission).
        public var applyTrusted: Phase
        /// Catch-up: the verified chain's blocks applied to a new store with `appendCertified`
        /// (re-executed trusting client signatures, `catchUpBatch` blocks per database transaction).
        public var catchUp: Phase
        public var catchUpBatch: Int
        /// `LedgerVerifier` on the file, signatures on all cores.
        public var verifyParallel: Phase
        /// `LedgerVerifier` on the file, signatures on one core.
        public var verifySequential: Phase
        /// Wall time of `append` alone per block (dominated by its fsync).
        public var appendMillisecondsPerBlock: Double
        /// CPU of `append` and of `execute` per transaction, signatures trusted.
        public var appendCPUMicroseconds: Double
        public var executeCPUMicroseconds: Double

        public var description: String {
            func line(_ name: String, _ phase: Phase) -> String {
                "\(name): \(Int(phase.perSecond)) tx/s wall (\(WriteChainTool.format(phase.wallSeconds)) s), \(Int(phase.perCPUSecond)) tx per CPU-second (\(Int(phase.cpuMicroseconds)) µs CPU/tx)"
            }
            return """
                \(blocks) blocks × \(transactionsPerBlock) transactions
                \(line("apply, signatures verified (execute on store + append)", applyVerifying))
                \(line("apply, signatures trusted  (execute on store + append)", applyTrusted))
                append alone: \(WriteChainTool.format(appendMillisecondsPerBlock)) ms wall per block (one SQLite transaction, fsync), \(WriteChainTool.format(appendCPUMicroseconds)) µs CPU per transaction (execute \(WriteChainTool.format(executeCPUMicroseconds)))
                \(line("catch-up, \(catchUpBatch) blocks per transaction", catchUp))
                \(line("verify, all cores", verifyParallel))
                \(line("verify, one core ", verifySequential))
                """
        }
    }

    /// CPU time of this process so far (all threads).
    public static func processCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// Writes two chains of `blocks` blocks into `directory` (one executing with signature checks,
    /// one trusting them), then verifies the first one twice (all cores, one core).
    public static func run(directory: String, blocks: Int, transactionsPerBlock: Int, seed: UInt64 = 1) throws -> Figures {
        func applying(_ name: String, _ policy: BlockExecutor.SignaturePolicy) throws -> (Phase, ChainWriter.Timings) {
            let timings = try WriteChainTool.run(path: directory + "/\(name).sqlite", blocks: blocks, transactionsPerBlock: transactionsPerBlock,
                                                 seed: seed, signatures: policy, progressEvery: .max) { _ in }
            let wall = WriteChainTool.seconds(timings.execute + timings.append)
            // CPU of the writing thread in execute and append only (generating, signing and
            // certifying the workload is not the validator's work).
            let cpu = WriteChainTool.seconds(timings.executeCPU + timings.appendCPU)
            return (Phase(transactions: timings.transactions, wallSeconds: wall, cpuSeconds: cpu), timings)
        }
        let (verifying, _) = try applying("bench-verify", .verify)
        let (trusted, trustedTimings) = try applying("bench-trusted", .trusted)
        let genesis = WriteChainTool.consortium(suppliers: WriteChainTool.defaultSuppliers).genesis
        func verification(parallel: Bool) throws -> Phase {
            let cpu = processCPUSeconds()
            let report = try LedgerVerifier(options: .init(parallelSignatures: parallel)).verify(path: directory + "/bench-verify.sqlite", genesis: genesis)
            guard report.isValid else { throw StoreError(.corrupt, "the benchmark chain did not verify: \(report.summary)") }
            return Phase(transactions: report.transactions, wallSeconds: report.seconds, cpuSeconds: processCPUSeconds() - cpu)
        }
        let catchUpBatch = 16
        let consortium = WriteChainTool.consortium(suppliers: WriteChainTool.defaultSuppliers)
        func catchUp() throws -> Phase {
            let source = try LedgerStore.open(path: directory + "/bench-verify.sqlite", genesis: genesis, suite: consortium.suite)
            defer { source.close() }
            let target = try LedgerStore.open(path: directory + "/bench-catch-up.sqlite", genesis: genesis, suite: consortium.suite)
            defer { target.close() }
            var batch: [CommittedBlock] = []
            var transactions = 0
            // Reading and decoding the blocks from the source file is counted too: a node decodes
            // the blocks it fetches from its peers.
            let cpu = processCPUSeconds()
            let clock = ContinuousClock()
            let start = clock.now
            try source.forEachBlock { committed in
                transactions += committed.block.transactions.count
                batch.append(committed)
                if batch.count == catchUpBatch {
                    try target.appendCertified(batch, executor: consortium.executor)
                    batch.removeAll(keepingCapacity: true)
                }
                return true
            }
            if !batch.isEmpty { try target.appendCertified(batch, executor: consortium.executor) }
            let wall = clock.now - start
            guard target.tip == source.tip else { throw StoreError(.corrupt, "catch-up ended at \(target.tip.height), not at the source's tip \(source.tip.height)") }
            return Phase(transactions: transactions, wallSeconds: WriteChainTool.seconds(wall), cpuSeconds: processCPUSeconds() - cpu)
        }
        let catchUpPhase = try catchUp()
        return Figures(blocks: blocks, transactionsPerBlock: transactionsPerBlock, applyVerifying: verifying, applyTrusted: trusted,
                       catchUp: catchUpPhase, catchUpBatch: catchUpBatch,
                       verifyParallel: try verification(parallel: true), verifySequential: try verification(parallel: false),
                       appendMillisecondsPerBlock: WriteChainTool.seconds(trustedTimings.append) * 1000 / Double(max(blocks, 1)),
                       appendCPUMicroseconds: WriteChainTool.seconds(trustedTimings.appendCPU) * 1e6 / Double(max(trustedTimings.transactions, 1)),
                       executeCPUMicroseconds: WriteChainTool.seconds(trustedTimings.executeCPU) * 1e6 / Double(max(trustedTimings.transactions, 1)))
    }
}
