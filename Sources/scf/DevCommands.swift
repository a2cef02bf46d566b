import ArgumentParser

// `dev write-chain` and `dev bench-store` drive the workload generator, which lives in
// LedgerTestKit. They are compiled when Package.swift gives scf that dependency and defines
// SCF_DEV_TOOLS:
//
//     .executableTarget(name: "scf", dependencies: [..., "LedgerTestKit"],
//                       swiftSettings: [.define("SCF_DEV_TOOLS")]),
//
// Without it, `scf dev` is an empty group and the crash-safety test runs the same writer
// (`WriteChainTool`) from its own test binary instead.
#if SCF_DEV_TOOLS
import Foundation
import LedgerCore
import LedgerStore
import LedgerTestKit

/// Developer and test tooling (hidden from --help).
struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Developer tools: generate chains for tests and benchmarks.",
        shouldDisplay: false,
        subcommands: [WriteChain.self, BenchStore.self]
    )

    /// Writes a generated chain with the workload generator and the store (the crash-safety test
    /// kills it while it writes).
    struct WriteChain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "write-chain",
            abstract: "Write a generated chain of signed, certified blocks into a new ledger file.",
            discussion: """
            The chain uses the test consortium (sample members plus --suppliers extra suppliers, keys derived
            from their names) and a seeded workload: proposals, confirmations, transfers and splits down the
            tiers, financing, settlement at maturity, and a few transactions refused by rule. Prints a line
            every --progress-every blocks. Verify the result with `scf ledger verify --data FILE`.
            """
        )
        @Option(help: "The ledger file to create (it must not hold a chain yet).")
        var data: String
        @Option(help: "How many blocks to write.")
        var blocks: Int
        @Option(name: .customLong("transactions-per-block"), help: "Transactions in each block.")
        var transactionsPerBlock: Int
        @Option(help: "Seed of the workload generator (the same seed writes the same chain).")
        var seed: UInt64 = 1
        @Option(help: "Extra suppliers in the test consortium.")
        var suppliers: Int = WriteChainTool.defaultSuppliers
        @Option(name: .customLong("progress-every"), help: "Print progress every this many blocks.")
        var progressEvery: Int = 100
        @Flag(name: .customLong("verify-signatures"), help: "Check every signature while executing (slower; the default trusts the generator's).")
        var verifySignatures = false

        func validate() throws {
            guard blocks > 0, transactionsPerBlock > 0 else { throw ValidationError("--blocks and --transactions-per-block must be positive") }
            guard progressEvery > 0 else { throw ValidationError("--progress-every must be positive") }
        }

        func run() async throws {
            do {
                try WriteChainTool.run(path: data, blocks: blocks, transactionsPerBlock: transactionsPerBlock, seed: seed,
                                       suppliers: suppliers, signatures: verifySignatures ? .verify : .trusted,
                                       progressEvery: progressEvery) { line in
                    print(line)
                    fflush(nil)
                }
            } catch let error as StoreError {
                throw ValidationError(error.message)
            }
        }
    }

    /// Prints how fast blocks are applied and verified on this machine.
    struct BenchStore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench-store",
            abstract: "Measure apply (executor on the store + append) and verify throughput, per transaction."
        )
        @Option(help: "How many blocks to write and verify.")
        var blocks: Int = 1_000
        @Option(name: .customLong("transactions-per-block"), help: "Transactions in each block.")
        var transactionsPerBlock: Int = 20
        @Option(help: "Folder for the benchmark's ledger files (default: a new temporary folder, removed afterwards).")
        var directory: String?

        func run() async throws {
            let folder = directory ?? (NSTemporaryDirectory() + "scf-bench-store-\(UUID().uuidString)")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { if directory == nil { try? FileManager.default.removeItem(atPath: folder) } }
            do {
                print(try StoreBenchmark.run(directory: folder, blocks: blocks, transactionsPerBlock: transactionsPerBlock))
            } catch let error as StoreError {
                throw ValidationError(error.message)
            }
        }
    }
}

#else

/// Developer and test tooling (hidden from --help). Build scf with SCF_DEV_TOOLS for its commands.
struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Developer tools: generate chains for tests and benchmarks (this build has none).",
        shouldDisplay: false,
        subcommands: []
    )
}
#endif
