import Foundation
import LedgerCore
import LedgerStore
import LedgerTestKit
import Testing

/// Opt-in: too slow for every `swift test` in debug. Run with
/// `SCF_LONG_TESTS=1 swift test --filter LongChainTests` (release: add `-c release`).
@Suite struct LongChainTests {
    static var enabled: Bool { ProcessInfo.processInfo.environment["SCF_LONG_TESTS"] == "1" }
    static var benchmark: Bool { ProcessInfo.processInfo.environment["SCF_BENCH"] == "1" }

    @Test(.enabled(if: LongChainTests.enabled))
    func tenThousandGeneratedBlocksVerify() throws {
        let directory = TemporaryDirectory("long")
        let path = directory.file("ledger.sqlite")
        let clock = ContinuousClock()
        let start = clock.now
        let timings = try WriteChainTool.run(path: path, blocks: 10_000, transactionsPerBlock: 2, seed: 10_000, progressEvery: 1_000) { print($0) }
        let written = clock.now - start
        let consortium = WriteChainTool.consortium(suppliers: WriteChainTool.defaultSuppliers)
        let report = try LedgerVerifier(options: .init(progressInterval: 1_000)).verify(path: path, genesis: consortium.genesis) { progress in
            print("verified \(progress.height)/\(progress.lastHeight)")
        }
        print("10,000 blocks (\(timings.transactions) transactions) written in \(written); \(report.summary)")
        #expect(report.isValid, "\(report.summary)")
        #expect(report.verifiedBlocks == 10_000)
    }

    @Test(.enabled(if: LongChainTests.benchmark))
    func storeBenchmark() throws {
        let directory = TemporaryDirectory("bench")
        let blocks = Int(ProcessInfo.processInfo.environment["SCF_BENCH_BLOCKS"] ?? "") ?? 500
        let perBlock = Int(ProcessInfo.processInfo.environment["SCF_BENCH_TX_PER_BLOCK"] ?? "") ?? 20
        let figures = try StoreBenchmark.run(directory: directory.path, blocks: blocks, transactionsPerBlock: perBlock)
        print(figures)
    }
}
