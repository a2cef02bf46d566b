import Foundation
import Testing

/// Four real `scf node start` processes on loopback: commits through any node, kill -9 of a backup
/// and of the primary with no committed transaction lost, a node down for 500 blocks catching up,
/// and a node with an empty data directory syncing from genesis; a Byzantine validator; a tampered
/// ledger refused at start and repaired by resync. The scenarios live in `scf cluster-check`
/// (Sources/scf/Commands/ClusterCheck.swift) so they can also be run by hand.
@Suite struct ProcessClusterTests {
    static func scfBinary() -> String? {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = testBinary.deletingLastPathComponent()
        // Inside an .xctest bundle on some platforms; the products sit next to the bundle.
        while directory.pathExtension == "xctest" || directory.lastPathComponent == "MacOS" || directory.lastPathComponent == "Contents" {
            directory.deleteLastPathComponent()
        }
        let candidates = [ProcessInfo.processInfo.environment["SCF_BINARY"], directory.appendingPathComponent("scf").path].compactMap { $0 }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `scf cluster-check ARGUMENTS` to completion: its exit status and everything it printed.
    static func runClusterCheck(_ arguments: [String]) throws -> (Int32, String) {
        guard let scf = scfBinary() else {
            Issue.record("the scf binary is not built next to the tests; run `swift build` first or set SCF_BINARY")
            return (-1, "")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: scf)
        process.arguments = ["cluster-check"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        print(text)
        return (process.terminationStatus, text)
    }

    @Test(.timeLimit(.minutes(5)))
    func crashRestartAndCatchUpOnRealProcesses() throws {
        let (status, text) = try Self.runClusterCheck(["--blocks", "500"])
        #expect(status == 0, "scf cluster-check failed:\n\(text)")
        #expect(text.contains("all scenarios passed"))
    }

    /// The modes the protocol can prove (equivocation) and the one aimed at the transport (flood);
    /// the others run by hand: `scf cluster-check --byzantine conflicting-votes|forge-signatures|replay`.
    @Test(.timeLimit(.minutes(5)), arguments: ["equivocate", "flood"])
    func aByzantineValidatorCannotStopOrSplitTheHonestOnes(mode: String) throws {
        let (status, text) = try Self.runClusterCheck(["--byzantine", mode, "--transactions", "24"])
        #expect(status == 0, "scf cluster-check --byzantine \(mode) failed:\n\(text)")
        #expect(text.contains("byzantine scenario passed: \(mode)"))
    }

    @Test(.timeLimit(.minutes(6)))
    func aTamperedLedgerIsRefusedAtStartAndResyncedFromPeers() throws {
        let (status, text) = try Self.runClusterCheck(["--tamper"])
        #expect(status == 0, "scf cluster-check --tamper failed:\n\(text)")
        #expect(text.contains("tamper scenario passed"))
    }
}
