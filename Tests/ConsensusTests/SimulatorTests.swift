#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import Consensus
import LedgerCore
import LedgerTestKit
import Testing

/// Runs one seed; on a violation, replays it with tracing and prints the seed, plan and trace.
func runSeed(_ configuration: SimulationConfiguration) -> SimulationReport {
    let report = Simulation(configuration).run()
    guard !report.passed else { return report }
    var traced = configuration
    traced.trace = true
    let replay = Simulation(traced).run()
    print(replay.description)
    print("trace (last 400 events) of seed \(configuration.seed):")
    for line in replay.trace.suffix(400) { print(line) }
    return report
}

@Test func simulatorSmoke() {
    let report = runSeed(SimulationConfiguration(seed: 1, nodes: 4, transactions: 6))
    print(report)
    #expect(report.passed, "\(report)")
}

@Test func simulatorExplore() {
    guard let text = Environment.value("SCF_SIM_EXPLORE"), let count = UInt64(text) else { return }
    let start = UInt64(Environment.value("SCF_SIM_START") ?? "0") ?? 0
    var failures: [UInt64] = []
    var steps = 0
    for seed in start..<(start + count) {
        let nodes = seed % 3 == 2 ? 7 : 4
        let report = Simulation(.mixed(seed: seed, nodes: nodes)).run()
        steps += report.steps
        if !report.passed {
            failures.append(seed)
            if failures.count <= 5 { print(report) }
        }
    }
    print("explored \(count) seeds, \(steps) steps, failures: \(failures)")
}

enum Environment {
    static func value(_ name: String) -> String? {
        guard let pointer = getenv(name) else { return nil }
        return String(cString: pointer)
    }
}
