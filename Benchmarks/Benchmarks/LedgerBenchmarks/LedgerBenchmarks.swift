import Benchmark
import Foundation
import LedgerCore
import LedgerStore
import LedgerTestKit

// Micro-benchmarks of the ledger's hot paths: canonical encoding and decoding, transaction and
// block hashing, Merkle roots and proofs, the state transition per transaction, the SQLite block
// write, and eligibility queries. Inputs come from the workload generator (a realistic mix),
// built once per process before the measurements.
//
// SCF_BENCH_SMOKE=1 runs each benchmark for a few iterations only (CI: it must run, not measure).

let smoke = ProcessInfo.processInfo.environment["SCF_BENCH_SMOKE"] != nil

/// A generated chain of realistic blocks, and what the benchmarks take from it.
struct Fixture: @unchecked Sendable {
    let consortium: TestConsortium
    let blocks: [CommittedBlock]
    let results: [ExecutionResult]
    let transactions: [SignedTransaction]
    let largeBlock: CommittedBlock
    let stateBeforeLargeBlock: MemoryLedgerState
    let largeBlockTransactions: [SignedTransaction]
    let largeBlockTimestamp: ConsensusTime

    static let shared: Fixture = {
        let consortium = TestConsortium(extraSuppliers: 64, chainID: "scf-microbench")
        var chain = ChainBuilder(consortium: consortium)
        var generator = WorkloadGenerator(consortium: consortium, seed: 11, transactionsPerBlock: 50, invalidPercent: 5)
        for _ in 0..<(smoke ? 40 : 200) { _ = try! generator.appendBlock(to: &chain) }
        // One more block of 500 transactions, kept apart to measure the state transition on it.
        let state = chain.state
        generator.transactionsPerBlock = 500
        let next = generator.nextBlock()
        let (large, _) = try! chain.append(next.transactions, at: next.timestamp)
        return Fixture(consortium: consortium, blocks: chain.blocks, results: chain.results,
                       transactions: chain.blocks.flatMap(\.block.transactions), largeBlock: large,
                       stateBeforeLargeBlock: state, largeBlockTransactions: next.transactions, largeBlockTimestamp: next.timestamp)
    }()
}

/// A fresh SQLite store in a temporary directory.
func temporaryStore(_ consortium: TestConsortium, name: String) throws -> (LedgerStore, String) {
    let directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("scf-microbench-\(getpid())-\(name)")
    try? FileManager.default.removeItem(atPath: directory)
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let store = try LedgerStore.open(path: (directory as NSString).appendingPathComponent("ledger.sqlite"),
                                     genesis: consortium.genesis, suite: consortium.suite)
    return (store, directory)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .cpuTotal],
        timeUnits: .microseconds,
        warmupIterations: smoke ? 0 : 3,
        maxDuration: smoke ? .milliseconds(200) : .seconds(2),
        maxIterations: smoke ? 3 : 10_000
    )
    let perItem = Benchmark.Configuration(scalingFactor: .kilo)

    // MARK: Encoding and decoding

    Benchmark("Transaction encode (wire bytes) ×1000", configuration: perItem) { benchmark in
        let transactions = Fixture.shared.transactions
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations { blackHole(transactions[index % transactions.count].wireBytes) }
    }

    Benchmark("Transaction decode and check id ×1000", configuration: perItem) { benchmark in
        let fixture = Fixture.shared
        let wires = fixture.transactions.prefix(1_000).map(\.wireBytes)
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            blackHole(try SignedTransaction(wireBytes: wires[index % wires.count], suite: fixture.consortium.suite))
        }
    }

    Benchmark("Block encode and decode (500 transactions)") { benchmark in
        let fixture = Fixture.shared
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var writer = CanonicalWriter()
            fixture.largeBlock.block.encode(to: &writer)
            blackHole(try Block(wireBytes: writer.bytes, suite: fixture.consortium.suite))
        }
    }

    // MARK: Hashing

    Benchmark("Transaction hash (id of the wire bytes) ×1000", configuration: perItem) { benchmark in
        let fixture = Fixture.shared
        let wires = fixture.transactions.prefix(1_000).map(\.wireBytes)
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations { blackHole(fixture.consortium.suite.hash(wires[index % wires.count])) }
    }

    Benchmark("Block header hash ×1000", configuration: perItem) { benchmark in
        let fixture = Fixture.shared
        let headers = fixture.blocks.map(\.block.header)
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations { blackHole(headers[index % headers.count].hash(suite: fixture.consortium.suite)) }
    }

    // MARK: Merkle

    Benchmark("Merkle root of a 500-transaction block") { benchmark in
        let fixture = Fixture.shared
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(Block.transactionsRoot(fixture.largeBlockTransactions, suite: fixture.consortium.suite))
        }
    }

    Benchmark("Merkle proof build and verify (1024 leaves) ×1000", configuration: perItem) { benchmark in
        let suite = Fixture.shared.consortium.suite
        let leaves = (0..<1_024).map { suite.hash(Array("leaf-\($0)".utf8)) }
        let root = MerkleTree.root(leaves: leaves, suite: suite)
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            let leaf = index % leaves.count
            let proof = MerkleTree.proof(leaves: leaves, index: leaf, suite: suite)!
            precondition(proof.verifies(leaf: leaves[leaf], root: root, suite: suite))
        }
    }

    // MARK: State transition

    for (label, policy) in [("signatures trusted", BlockExecutor.SignaturePolicy.trusted), ("signatures verified", .verify)] {
        Benchmark("State transition: execute a 500-transaction block (\(label))") { benchmark in
            let fixture = Fixture.shared
            let executor = fixture.consortium.executor
            let header = fixture.largeBlock.block.header
            let context = BlockContext(chainID: header.chainID, height: header.height, previousHash: header.previousHash,
                                       previousStateDigest: fixture.blocks[fixture.blocks.count - 2].block.header.stateDigest,
                                       timestamp: fixture.largeBlockTimestamp, view: header.view, proposer: header.proposer)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try executor.execute(fixture.largeBlockTransactions, context: context, state: fixture.stateBeforeLargeBlock,
                                               signatures: policy))
            }
        }
    }

    // MARK: SQLite

    Benchmark("SQLite block write (50 transactions, one db transaction, fsync)",
              configuration: .init(maxIterations: smoke ? 3 : 200)) { benchmark in
        let fixture = Fixture.shared
        let (store, directory) = try temporaryStore(fixture.consortium, name: "write")
        defer {
            store.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
        var next = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            guard next < fixture.blocks.count else { break }
            try store.append(fixture.blocks[next], result: fixture.results[next])
            next += 1
        }
    }

    // MARK: Eligibility

    Benchmark("Eligibility query (one fragment, warm aggregates)",
              configuration: .init(maxIterations: smoke ? 3 : 2_000)) { benchmark in
        let fixture = Fixture.shared
        let (store, directory) = try temporaryStore(fixture.consortium, name: "eligibility")
        defer {
            store.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
        for (block, result) in zip(fixture.blocks, fixture.results) { try store.append(block, result: result) }
        let service = try StoreEligibility(store: store)
        defer { service.close() }
        let fragments = try fixture.blocks.indices.flatMap { height in
            fixture.results[height].changes.sortedFragments.filter { $0.state == .active && !$0.frozen }.map(\.id)
        }.filter { try store.fragment($0)?.state == .active }
        precondition(!fragments.isEmpty, "the generated chain has no live fragment to ask about")
        let policy = EligibilityPolicy(bank: TestConsortium.bankA, currency: .cny, minDaysToMaturity: 10, maxTenorDays: 360,
                                       advanceRateBps: 9_000, discountRateBps: 450, dayCountBasis: 360,
                                       creditLines: [TestConsortium.core: MinorUnits(50_000_000_000_00)],
                                       defaultSupplierLimit: MinorUnits(1_000_000_000_00), excludeDebtorsWithOverdue: true)
        let questions = fragments.map {
            EligibilityEngine.Question(fragment: $0, bank: TestConsortium.bankA, amount: Money(minor: 10_000_00, .cny))
        }
        _ = try service.answer(questions[0], policy: policy)
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations { blackHole(try service.answer(questions[index % questions.count], policy: policy)) }
    }
}
