import Foundation
import LedgerCore
import LedgerStore
import LedgerTestKit
import Synchronization
import Testing

/// Crash safety: a writer killed with SIGKILL at random moments leaves a file that reopens at its
/// last whole block and verifies from genesis.
///
/// The writer is the built `scf dev write-chain`, found next to the test bundle (or at
/// `$SCF_BINARY`). When that binary is missing, or was built without `dev write-chain`, the test
/// relaunches its own test binary as the writer (the env-gated `writerForCrashTest` below runs the
/// same `WriteChainTool` code), so the test does not depend on build order.
@Suite(.serialized) struct CrashTests {
    static let suppliers = 6
    static let childEnvironment = "SCF_STORE_CRASH_WRITER"

    @Test func aWriterKilledAtRandomMomentsLeavesOnlyWholeBlocks() throws {
        let writer = try #require(Writer.find(), """
            cannot find a writer to kill: neither the scf binary (build it with `swift build --product scf`, or set SCF_BINARY) \
            nor this test binary could be located
            """)
        let seed = UInt64(ProcessInfo.processInfo.environment["SCF_CRASH_SEED"] ?? "") ?? 20_261_121
        var random = SplitMix(seed: seed)
        print("crash test: writer \(writer.description), seed \(seed)")
        let consortium = WriteChainTool.consortium(suppliers: Self.suppliers)
        var heights: [UInt64] = []
        for round in 0..<6 {
            let directory = TemporaryDirectory("crash")
            let path = directory.file("ledger.sqlite")
            let child = try writer.launch(path: path, seed: UInt64(round + 1), suppliers: Self.suppliers)
            // Round 0 kills during start-up (opening, migrations); the others once blocks are flowing.
            if round > 0 {
                let started = child.waitForLine(prefix: "height ", timeout: .seconds(120))
                #expect(started, "round \(round): the writer printed no progress within 120 s; output: \(child.output.suffix(400))")
            }
            let delay = round == 0 ? random.next() % 60 : 50 + random.next() % 1_500
            Thread.sleep(forTimeInterval: Double(delay) / 1_000)
            let printed = child.lastPrintedHeight
            child.kill()
            #expect(child.killedBySignal, "round \(round): the writer should die of SIGKILL, not exit on its own")

            // Reopen: the tip is a whole block, at least as far as the writer said it got.
            let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
            let tip = store.tip
            #expect(tip.height.value >= printed, "round \(round): the writer reported block \(printed) written, the file has \(tip.height)")
            if tip.height > .genesis {
                let block = try #require(try store.block(at: tip.height))
                #expect(ChainTip(header: block.block.header, suite: consortium.suite) == tip)
                #expect(try store.transactions(inBlock: tip.height).count == block.block.transactions.count)
            }
            #expect(try store.block(at: tip.height.next) == nil)
            #expect(try store.transactions(inBlock: tip.height.next).isEmpty)
            store.close()

            let report = try LedgerVerifier().verify(path: path, genesis: consortium.genesis)
            #expect(report.isValid, "round \(round): \(report.summary)")
            #expect(report.tip == tip)
            print("crash test round \(round): killed after \(delay) ms at printed height \(printed); reopened at \(tip.height); verified")
            heights.append(tip.height.value)
        }
        #expect(heights.dropFirst().allSatisfy { $0 > 0 }, "every round but the first should have written blocks: \(heights)")
    }

    /// Not a test on its own: the writer the crash test launches when no `scf` binary with
    /// `dev write-chain` is available. Runs only when the crash test sets its environment variable.
    @Test(.enabled(if: ProcessInfo.processInfo.environment[CrashTests.childEnvironment] != nil))
    func writerForCrashTest() throws {
        let fields = ProcessInfo.processInfo.environment[Self.childEnvironment]!.split(separator: "|").map(String.init)
        try #require(fields.count == 5)
        try WriteChainTool.run(path: fields[0], blocks: Int(fields[1])!, transactionsPerBlock: Int(fields[2])!, seed: UInt64(fields[3])!,
                               suppliers: Int(fields[4])!, progressEvery: 5) { line in
            print(line)
            fflush(nil)
        }
    }
}

/// How to start a chain writer: the scf binary, or this test binary in writer mode.
struct Writer: CustomStringConvertible {
    var executable: String
    var usesSCF: Bool

    var description: String { usesSCF ? "\(executable) dev write-chain" : "\(executable) (test binary in writer mode; scf with dev write-chain not found)" }

    static func find() -> Writer? {
        let environment = ProcessInfo.processInfo.environment
        let testBinary = currentExecutable()
        var candidates: [String] = []
        if let explicit = environment["SCF_BINARY"] { candidates.append(explicit) }
        if let testBinary {
            // Linux: <scratch>/<triple>/debug/scf-ledgerPackageTests.xctest; macOS: …/debug/X.xctest/Contents/MacOS/X.
            var folder = URL(fileURLWithPath: testBinary).deletingLastPathComponent()
            for _ in 0..<4 {
                candidates.append(folder.appendingPathComponent("scf").path)
                folder.deleteLastPathComponent()
            }
        }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) && supportsWriteChain(candidate) {
            return Writer(executable: candidate, usesSCF: true)
        }
        return testBinary.map { Writer(executable: $0, usesSCF: false) }
    }

    static func currentExecutable() -> String? {
        if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return resolved }
        return Bundle.main.executablePath ?? CommandLine.arguments.first.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    }

    static func supportsWriteChain(_ scf: String) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: scf)
        process.arguments = ["dev", "write-chain", "--help"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        // An scf without the subcommand prints the `dev` group's help and also exits 0.
        let help = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return process.terminationStatus == 0 && help.contains("--transactions-per-block")
    }

    func launch(path: String, seed: UInt64, suppliers: Int) throws -> Child {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        let blocks = 1_000_000, transactions = 8
        var environment = ProcessInfo.processInfo.environment
        if usesSCF {
            process.arguments = ["dev", "write-chain", "--data", path, "--blocks", String(blocks), "--transactions-per-block", String(transactions),
                                 "--seed", String(seed), "--suppliers", String(suppliers), "--progress-every", "5"]
        } else {
            process.arguments = ["--testing-library", "swift-testing", "--filter", "writerForCrashTest"]
            environment[CrashTests.childEnvironment] = "\(path)|\(blocks)|\(transactions)|\(seed)|\(suppliers)"
        }
        process.environment = environment
        return try Child(process)
    }
}

/// A running writer whose output is collected as it comes.
final class Child: Sendable {
    private let process: Process
    private let collected = OutputBuffer()

    init(_ process: Process) throws {
        nonisolated(unsafe) let process = process
        self.process = process
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        let collected = self.collected
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                return
            }
            collected.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    var output: String { collected.text.withLock { $0 } }

    /// The last "height N …" line the writer printed (it prints after `append` returned).
    var lastPrintedHeight: UInt64 {
        let lines = output.split(separator: "\n").filter { $0.hasPrefix("height ") }
        guard let last = lines.last else { return 0 }
        return UInt64(last.split(separator: " ")[1]) ?? 0
    }

    func waitForLine(prefix: String, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if output.split(separator: "\n").contains(where: { $0.hasPrefix(prefix) }) { return true }
            if !process.isRunning { return false }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return false
    }

    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    var killedBySignal: Bool { process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL }
}

final class OutputBuffer: Sendable {
    let text = Mutex<String>("")
}

/// The crash test's own seeded generator (its seed is printed so a failing run can be replayed).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
