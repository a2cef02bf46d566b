import ArgumentParser
import Foundation
import LedgerCore
import LedgerStore

struct LedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Audit a node's ledger offline.",
        subcommands: [Verify.self]
    )

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-check every hash, signature, certificate, invariant and the state from genesis.",
            discussion: """
            Reads the ledger file read-only. Exits 0 when the whole chain verifies; otherwise prints the
            first bad block and why, and exits 1. With --genesis, the file's genesis must equal yours
            (use the consortium's published genesis to be sure you audit the right chain).
            """
        )
        @Option(help: "The ledger file (ledger.sqlite in a node's data directory), or the data directory.")
        var data: String
        @Option(help: "The consortium's genesis file to check the ledger against.")
        var genesis: String?
        @Flag(help: "Print the report as JSON.")
        var json = false
        @Flag(help: "Check signatures on one core only.")
        var singleCore = false
        @Option(help: ArgumentHelp("""
            Hold the recomputed state in memory up to this many record rows (receivables, fragments, invoices, \
            financing requests; about 1 KB each); a larger ledger's records go to a scratch file instead, so memory \
            stays flat (0: always the scratch file).
            """, valueName: "rows"))
        var recordsInMemory = LedgerVerifier.Options.defaultRecordsInMemory
        @Option(help: ArgumentHelp("Where the scratch file goes (removed at the end). Default: the system's temporary directory.",
                                   valueName: "directory"))
        var scratchDirectory: String?

        func validate() throws {
            guard recordsInMemory >= 0 else { throw ValidationError("--records-in-memory must be 0 or more, not \(recordsInMemory)") }
            if let scratchDirectory {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: scratchDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
                    throw ValidationError("--scratch-directory \(scratchDirectory) is not a directory")
                }
            }
        }

        func run() async throws {
            try await reportingErrors {
                var path = data
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                    path = (path as NSString).appendingPathComponent("ledger.sqlite")
                }
                guard FileManager.default.fileExists(atPath: path) else { throw CLIError("no ledger file at \(path)") }
                let trusted = try genesis.map { try Genesisfile.load($0).0 }
                let verifier = LedgerVerifier(options: .init(progressInterval: 500, parallelSignatures: !singleCore,
                                                             recordsInMemory: recordsInMemory, scratchDirectory: scratchDirectory))
                let bar = ProgressBar(enabled: !json && isatty(STDERR_FILENO) != 0)
                let report = try verifier.verify(path: path, genesis: trusted) { progress in
                    bar.update(fraction: progress.fraction, label: "block \(progress.height)/\(progress.lastHeight), \(progress.transactions) tx")
                }
                bar.finish()
                if json {
                    struct Output: Encodable {
                        var valid: Bool; var chainID: String; var genesisHash: Hash; var blocks: Int; var transactions: Int
                        var rejectedTransactions: Int; var headHeight: Height; var headHash: Hash; var seconds: Double
                        var firstBadBlock: Height?; var reason: String?; var code: String?
                    }
                    print(String(decoding: try Files.encodeJSON(Output(
                        valid: report.isValid, chainID: report.chainID, genesisHash: report.genesisHash, blocks: report.verifiedBlocks,
                        transactions: report.transactions, rejectedTransactions: report.rejectedTransactions,
                        headHeight: report.tip.height, headHash: report.tip.hash, seconds: report.seconds,
                        firstBadBlock: report.failure?.height, reason: report.failure?.message, code: report.failure?.code.rawValue)), as: UTF8.self),
                          terminator: "")
                } else if let failure = report.failure {
                    print("FAILED at block \(failure.height): \(failure.code.rawValue): \(failure.message)")
                    print("blocks 1-\(max(0, Int(failure.height.value) - 1)) verified; this ledger cannot be trusted from block \(failure.height) on.")
                    print("To repair a node, stop it, move its data directory aside and let it resync from its peers.")
                } else {
                    let rate = report.seconds > 0 ? Int(Double(report.transactions) / report.seconds) : 0
                    print("OK  chain \(report.chainID), genesis \(report.genesisHash.short)")
                    print("    \(report.verifiedBlocks) blocks, \(report.transactions) transactions (\(report.rejectedTransactions) refused by rule, as recorded)")
                    print("    head \(report.tip.height) \(report.tip.hash)")
                    print(String(format: "    verified in %.2f s (%d tx/s)", report.seconds, rate))
                }
                if !report.isValid { throw ExitCode(1) }
            }
        }
    }
}

/// A one-line progress bar on standard error (only when it is a terminal).
final class ProgressBar: @unchecked Sendable {
    private let enabled: Bool
    private var drawn = false
    init(enabled: Bool) { self.enabled = enabled }

    func update(fraction: Double, label: String) {
        guard enabled else { return }
        let width = 30
        let filled = max(0, min(width, Int(fraction * Double(width))))
        let line = "\r[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            + String(format: "%3d%% ", Int(fraction * 100)) + label
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }

    func finish() {
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
