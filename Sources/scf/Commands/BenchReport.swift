import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerAPI
import LedgerCore
import LedgerNode
import LedgerTestKit

/// The bench's cluster: `LocalConsortium`'s files and processes, with the genesis and validator
/// keys of the deterministic `TestConsortium` (so the pre-signed workload is valid on it) and a
/// consensus clock set to the consortium's genesis day.
final class BenchCluster: @unchecked Sendable {
    /// The processes this bench started; nil when it targets nodes given by URL.
    let local: LocalConsortium?
    let directory: String
    let urls: [URL]
    let genesisHash: Hash
    private var clockOffset: Int64

    /// A new cluster directory: genesis, keys, TLS and node configurations (`LocalConsortium`'s),
    /// with the test consortium's genesis and validator keys and a clock offset file.
    init(directory: String, consortium test: TestConsortium) throws {
        let local = try LocalConsortium(directory: directory, suite: test.suite,
                                        genesisDate: test.genesis.genesisTime.businessDate(utcOffsetMinutes: test.genesis.utcOffsetMinutes))
        self.local = local
        self.directory = directory
        genesisHash = test.genesis.hash(suite: test.suite)
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        try Files.write(try Files.encodeJSON(test.genesis), to: path("genesis.json"), overwrite: true)
        for (index, validator) in test.genesis.validators.enumerated() {
            // The same derivation as TestConsortium.key(for: "validator/N").
            let seed = Ed25519SHA256Suite().hash(Array("scf-test-seed/validator/\(index)".utf8)).bytes
            let privateKey = try test.suite.privateKey(seed: seed)
            let key = try test.suite.signingKey(privateKey)
            guard key.publicKey == validator.publicKey else {
                throw CLIError("the bench cannot derive validator \(index)'s key of the test consortium; TestConsortium's key derivation changed")
            }
            try Files.write(try Files.encodeJSON(KeyFile(suite: test.suite.id, privateKey: privateKey.rawRepresentation.hexString, publicKey: key.publicKey)),
                            to: path("keys/node-\(index).key"), secret: true, overwrite: true)
        }
        urls = local.apiPorts.map { URL(string: "http://127.0.0.1:\($0)")! }
        // One hour into the genesis day, so the script's dates are the cluster's.
        let target = test.genesis.genesisTime.adding(milliseconds: 3_600_000).millisecondsSinceEpoch
        clockOffset = target - ValidatorNode.wallClock().millisecondsSinceEpoch
        try local.setClockOffset(milliseconds: clockOffset)
    }

    /// Nodes started by hand from a directory `scf bench --setup DIR` wrote (with
    /// `--clock-offset-file DIR/clock-offset`), reached at `urls`.
    init(existing directory: String, urls: [URL], consortium test: TestConsortium) throws {
        local = nil
        self.directory = directory
        self.urls = urls
        genesisHash = test.genesis.hash(suite: test.suite)
        let file = (directory as NSString).appendingPathComponent("clock-offset")
        guard let text = try? String(contentsOfFile: file, encoding: .utf8), let offset = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw CLIError("\(file) is missing or not a number; make the cluster with `scf bench --setup \(directory)` and start its nodes with the commands it prints")
        }
        clockOffset = offset
    }

    /// Starts the four nodes (or, for nodes given by URL, checks they run the bench's chain) and
    /// waits until each is connected to the other three.
    func start() async throws {
        if let local {
            for index in 0..<4 { try local.start(index) }
            for index in 0..<4 { try await local.waitUntilReady(index) }
            return
        }
        for url in urls {
            let deadline = Date().addingTimeInterval(60)
            while true {
                if let status = try? await status(url) {
                    guard status.genesisHash == genesisHash else {
                        throw CLIError("\(url) runs another chain (genesis \(status.genesisHash.short), the bench's is \(genesisHash.short)); start the nodes from `scf bench --setup DIR` with the same --signers")
                    }
                    if status.peersConnected.count >= urls.count - 1 { break }
                }
                guard Date() < deadline else { throw CLIError("\(url) did not answer with its peers connected within 60 s; is its node running?") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    func stopAll() { local?.stopAll() }

    func status(_ url: URL) async throws -> StatusView {
        let (data, _) = try await URLSession.shared.data(from: url.appendingPathComponent("v1/status"))
        return try JSONDecoder().decode(StatusView.self, from: data)
    }

    func height(_ index: Int) async throws -> Height { try await status(urls[index]).height }

    /// The local processes, for the scenarios that stop and restart one.
    func processes() throws -> LocalConsortium {
        guard let local else { throw CLIError("--catch-up stops and restarts a node, so it needs the cluster the bench starts itself (no --node)") }
        return local
    }

    /// Moves every node's consensus clock forward (read by the nodes within 100 ms).
    func jumpClock(days: Int32) throws {
        guard days > 0 else { return }
        clockOffset += Int64(days) * 86_400_000
        try Files.write(Data(String(clockOffset).utf8), to: (directory as NSString).appendingPathComponent("clock-offset"), overwrite: true)
    }

    /// The node processes this process started, by index (none for nodes given by URL).
    func pids() -> [Int: Int32] {
        guard local != nil else { return [:] }
        var found: [Int: Int32] = [:]
        for (pid, arguments) in ProcReader.children(of: getpid(), containing: "node start") {
            for index in 0..<4 where arguments.contains(where: { $0.hasSuffix("node-\(index).json") }) { found[index] = pid }
        }
        return found
    }

    struct NodeSample: Sendable {
        var proc: ProcSample?
        var metrics: [String: Double]
        var at: Date
    }

    func sampleNodes() async -> [NodeSample] {
        let pids = pids()
        var samples: [NodeSample] = []
        for index in urls.indices {
            var metrics: [String: Double] = [:]
            if let (data, _) = try? await URLSession.shared.data(from: urls[index].appendingPathComponent("metrics")) {
                metrics = MetricsText.parse(String(decoding: data, as: UTF8.self))
            }
            samples.append(NodeSample(proc: pids[index].flatMap(ProcReader.sample(pid:)), metrics: metrics, at: Date()))
        }
        return samples
    }

    static func figures(before: [NodeSample], after: [NodeSample]) -> [NodeFigures] {
        zip(before, after).enumerated().map { index, pair in
            let (start, end) = pair
            var figures = NodeFigures(name: "node-\(index)")
            let wall = end.at.timeIntervalSince(start.at)
            if let a = start.proc, let b = end.proc, wall > 0 {
                figures.cpuPercent = (b.cpuSeconds - a.cpuSeconds) / wall * 100
                figures.peakResidentMB = Double(b.peakResidentBytes) / 1_048_576
                figures.residentMB = Double(b.residentBytes) / 1_048_576
            }
            func delta(_ name: String) -> Double? {
                guard let a = start.metrics[name], let b = end.metrics[name] else { return nil }
                return b - a
            }
            let blocks = delta("scf_blocks_committed_total") ?? delta("scf_block_height")
            if let fsyncs = delta("scf_fsyncs_total"), let blocks, blocks > 0 { figures.fsyncsPerBlock = fsyncs / blocks }
            if let checks = delta("scf_client_signature_checks_total"), let committed = delta("scf_committed_transactions_total"), committed > 0 {
                figures.signatureChecksPerTransaction = checks / committed
            }
            if let a = start.proc, let b = end.proc, let committed = delta("scf_committed_transactions_total"), committed > 0 {
                figures.cpuMicrosecondsPerTransaction = (b.cpuSeconds - a.cpuSeconds) / committed * 1_000_000
            }
            if let seconds = delta("scf_client_signature_check_seconds_total"), let checks = delta("scf_client_signature_checks_total"),
               let committed = delta("scf_committed_transactions_total"), checks > 0, committed > 0 {
                figures.signatureCheckMicroseconds = seconds / checks * 1_000_000
                figures.signatureCPUMicrosecondsPerTransaction = seconds / committed * 1_000_000
            }
            figures.blocks = blocks.map { Int($0) }
            if let busy = delta("scf_queue_busy_seconds_total"), wall > 0 { figures.queueBusyPercent = busy / wall * 100 }
            if let seconds = delta("scf_block_store_seconds_total"), let stores = delta("scf_block_stores_total"), stores > 0 {
                figures.storeMillisecondsPerBlock = seconds / stores * 1000
            }
            if let seconds = delta("scf_replica_state_save_seconds_total"), let saves = delta("scf_replica_state_saves_total"), saves > 0 {
                figures.stateSaveMilliseconds = seconds / saves * 1000
                if let blocks, blocks > 0 { figures.stateSavesPerBlock = saves / blocks }
            }
            return figures
        }
    }
}

// MARK: Report

struct BenchReport: Codable, Sendable {
    var date: String
    var machine: String
    var cores: Int
    var memoryGiB: Double
    var build: String
    var signatureVerifiesPerSecond: Double = 0
    var verifyThreads = 2
    /// Verify rate ÷ 4 nodes: every node checks every signature once.
    var ceilingTransactionsPerSecond: Double = 0
    var sessions: [SessionReport] = []

    static func describingMachine() -> BenchReport {
        let cpu = ProcReader.read("/proc/cpuinfo")?.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown CPU"
        #if DEBUG
        let build = "debug"
        #else
        let build = "release"
        #endif
        return BenchReport(date: Date().formatted(.iso8601), machine: cpu, cores: ProcessInfo.processInfo.activeProcessorCount,
                           memoryGiB: Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824, build: build)
    }

    func table() -> String {
        var out = "scf bench, \(build) build, \(date)\n"
        out += "machine: \(machine), \(cores) cores, \(String(format: "%.0f", memoryGiB)) GiB (shared with whatever else runs)\n"
        out += String(format: "signature verification: %.0f verifies/s on %d threads; ceiling %.0f tx/s (÷ 4 nodes)\n",
                      signatureVerifiesPerSecond, verifyThreads, ceilingTransactionsPerSecond)
        if build == "debug" { out += "note: a debug build; real figures need `swift run -c release scf bench`\n" }
        for session in sessions { out += "\n" + session.table() }
        return out
    }
}

struct SessionReport: Codable, Sendable {
    var mode: String
    var offeredRate: Int?
    var offered = 0
    var committed = 0
    var seconds = 0.0
    var committedPerSecond = 0.0
    /// Against `ceilingUsed`: the mean of the ceiling measured before the run and right after
    /// this session's load (both kept for the report).
    var fractionOfCeiling: Double?
    var ceilingBeforeLoad: Double?
    var ceilingAfterLoad: Double?
    var ceilingUsed: Double?
    var latencyMilliseconds = LatencyFigures()
    /// From the scheduled offer to the request being sent (the load generator's own lag), and to
    /// the node's answer accepting it: the part of the commit latency spent before consensus.
    var offerLagMilliseconds = LatencyFigures()
    var answeredMilliseconds = LatencyFigures()
    var refused: [String: Int] = [:]
    var refusedExamples: [String: String] = [:]
    var notCommitted = 0
    var executionRejections = ExecutionCheck()
    var blocks = 0
    var meanBlockSize = 0.0
    var maxBlockSize = 0
    var usedBatchEndpoint = true
    var nodes: [NodeFigures] = []
    var mix: [String: Int] = [:]
    var scriptRejections: [String: Int] = [:]
    var replaced: [String: Int] = [:]
    var steps: [RampStep] = []
    var saturationCommittedPerSecond: Double?
    var stoppedAtSecond: Int?
    var catchUp: CatchUpReport?
    var errors: [String] = []
    var series: [LatencyPoint] = []
    /// Measured transactions sent in each second of the load (see `BenchLoad.Outcome.sentPerSecond`).
    var sentPerSecond: [Int] = []
    /// What a transaction costs a node, in the unit the ceiling is made of (see `CostPerTransaction`).
    var costPerTransaction: CostPerTransaction?

    init(mode: String, offeredRate: Int?) {
        self.mode = mode
        self.offeredRate = offeredRate
    }

    mutating func absorb(_ outcome: BenchLoad.Outcome, ceilingBefore: Double, ceilingAfter: Double) {
        let ceiling = (ceilingBefore + ceilingAfter) / 2
        ceilingBeforeLoad = ceilingBefore
        ceilingAfterLoad = ceilingAfter
        offered = outcome.offered
        committed = outcome.committed
        seconds = outcome.seconds
        committedPerSecond = Double(committed) / outcome.seconds
        ceilingUsed = ceiling > 0 ? ceiling : nil
        fractionOfCeiling = ceiling > 0 ? committedPerSecond / ceiling : nil
        latencyMilliseconds = LatencyFigures(outcome.latency)
        offerLagMilliseconds = LatencyFigures(outcome.offerLag)
        answeredMilliseconds = LatencyFigures(outcome.answered)
        refused = outcome.refused
        refusedExamples = outcome.refusedSamples
        notCommitted = outcome.unresolved
        blocks = outcome.blockSizes.count
        meanBlockSize = outcome.blockSizes.isEmpty ? 0 : Double(outcome.blockSizes.reduce(0, +)) / Double(outcome.blockSizes.count)
        maxBlockSize = outcome.blockSizes.max() ?? 0
        usedBatchEndpoint = outcome.usedBatchEndpoint
        stoppedAtSecond = outcome.stoppedAtSecond
        errors = outcome.errors
        series = outcome.latency.series
        sentPerSecond = outcome.sentPerSecond
    }

    /// Committed tx/s in each ramp step (commits seen from one second into the step to one second
    /// after it), and the highest of them: the saturation throughput.
    mutating func computeSteps(stepSeconds: Int, rates: [Int]) {
        var result: [RampStep] = []
        var second = 0
        while second < rates.count {
            let window = (second + 1)..<(second + stepSeconds + 1)
            let commits = series.filter { window.contains($0.second) }.reduce(0) { $0 + $1.committed }
            if let stopped = stoppedAtSecond, second > stopped { break }
            let sent = sentPerSecond.isEmpty ? nil : (second..<(second + stepSeconds)).reduce(0) { $0 + ($1 < sentPerSecond.count ? sentPerSecond[$1] : 0) }
            result.append(RampStep(offered: rates[second], sentPerSecond: sent.map { Double($0) / Double(stepSeconds) },
                                   committedPerSecond: Double(commits) / Double(stepSeconds)))
            second += stepSeconds
        }
        steps = result
        saturationCommittedPerSecond = result.map(\.committedPerSecond).max()
    }

    func table() -> String {
        func ms(_ value: Double?) -> String { value.map { String(format: "%.1f", $0) } ?? "n/a" }
        var out = mode == "ramp" ? "ramp to saturation\n" : "fixed open-loop load at \(offeredRate ?? 0) tx/s\n"
        out += "  offered              \(offered) transactions (\(usedBatchEndpoint ? "batch endpoint" : "one request each")), \(mix.values.reduce(0, +)) generated in all\n"
        out += String(format: "  committed            %d in %.1f s: %.0f tx/s", committed, seconds, committedPerSecond)
        if let fraction = fractionOfCeiling { out += String(format: " = %.0f%% of the ceiling", fraction * 100) }
        out += "\n"
        if let before = ceilingBeforeLoad, let after = ceilingAfterLoad, let used = ceilingUsed {
            out += String(format: "  ceiling              %.0f tx/s before the run, %.0f right after this load: %.0f, their mean, is the ceiling here\n", before, after, used)
        }
        if let saturation = saturationCommittedPerSecond {
            out += String(format: "  saturation           %.0f tx/s committed (best step)", saturation)
            if let used = ceilingUsed { out += String(format: " = %.0f%% of the ceiling", saturation / used * 100) }
            if let stopped = stoppedAtSecond { out += ", stopped offering at \(stopped) s" }
            if steps.allSatisfy({ $0.sentPerSecond != nil }) {
                out += "\n  steps                " + steps.map { String(format: "%d→%.0f→%.0f", $0.offered, $0.sentPerSecond!, $0.committedPerSecond) }.joined(separator: " ")
                    + " (scheduled→sent→committed tx/s; sent falls behind the schedule when transactions wait for what they depend on to commit)\n"
            } else {
                out += "\n  steps                " + steps.map { String(format: "%d→%.0f", $0.offered, $0.committedPerSecond) }.joined(separator: " ") + " (offered→committed tx/s)\n"
            }
        }
        let latency = latencyMilliseconds
        out += "  commit latency (ms)  p50 \(ms(latency.p50))  p90 \(ms(latency.p90))  p99 \(ms(latency.p99))  max \(ms(latency.max))  (from the scheduled offer to the block seen)\n"
        if offerLagMilliseconds.samples > 0 {
            out += "    of which           offer sent p50 \(ms(offerLagMilliseconds.p50))  p99 \(ms(offerLagMilliseconds.p99)); "
                + "accepted by the node p50 \(ms(answeredMilliseconds.p50))  p99 \(ms(answeredMilliseconds.p99))  (after the scheduled offer)\n"
        }
        out += "  refused at admission \(refused.values.reduce(0, +))" + (refused.isEmpty ? "" : ": " + refused.keys.sorted().map { "\($0) \(refused[$0]!)" }.joined(separator: ", ")) + "\n"
        for code in refusedExamples.keys.sorted() { out += "    e.g. \(code): \(refusedExamples[code]!.prefix(140))\n" }
        out += "  refused in blocks    \(executionRejections.rejectedByCode.values.reduce(0, +)) of \(executionRejections.checked) checked"
            + (executionRejections.rejectedByCode.isEmpty ? "" : ": " + executionRejections.rejectedByCode.keys.sorted().map { "\($0) \(executionRejections.rejectedByCode[$0]!)" }.joined(separator: ", ")) + "\n"
        out += "  not committed        \(notCommitted) (offered, still pending when the run ended)\n"
        out += String(format: "  blocks               %d with our transactions, %.1f transactions per block on average, %d at most\n", blocks, meanBlockSize, maxBlockSize)
        out += "  node     CPU (% of a core)  peak RSS (MB)  RSS (MB)  fsyncs/block  signature checks/tx\n"
        for node in nodes {
            out += "  \(node.name.padding(toLength: 8, withPad: " ", startingAt: 0)) "
                + (node.cpuPercent.map { String(format: "%17.0f", $0) } ?? String(repeating: " ", count: 14) + "n/a") + "  "
                + (node.peakResidentMB.map { String(format: "%13.0f", $0) } ?? String(repeating: " ", count: 10) + "n/a") + "  "
                + (node.residentMB.map { String(format: "%8.0f", $0) } ?? "     n/a") + "  "
                + (node.fsyncsPerBlock.map { String(format: "%12.2f", $0) } ?? "         n/a") + "  "
                + (node.signatureChecksPerTransaction.map { String(format: "%19.2f", $0) } ?? String(repeating: " ", count: 16) + "n/a") + "\n"
        }
        if let cost = costPerTransaction {
            out += String(format: "  cost per tx          %.0f µs of CPU per node (mean), of which its signature check %.0f µs; everything else %.0f µs = %.2f signature checks\n",
                          cost.cpuMicrosecondsPerNode, cost.signatureCheckMicroseconds, cost.otherMicrosecondsPerNode, cost.otherWorkInSignatureChecks)
            out += String(format: "                       (nodes that fill both cores commit at most 1/(1 + that) = %.0f%% of the ceiling; 60%% needs at most %.2f, 80%% %.2f)\n",
                          cost.attainableFractionOfCeiling * 100, CostPerTransaction.otherWorkAllowed(forFraction: 0.6), CostPerTransaction.otherWorkAllowed(forFraction: 0.8))
            if let check = cost.signatureCheckUnderLoadMicroseconds, let other = cost.measuredOtherMicrosecondsPerNode {
                out += String(format: "                       measured in the nodes: a signature check %.0f µs under this load; everything else %.0f µs (compare builds by this)\n",
                              check, other)
            }
        }
        if nodes.contains(where: { $0.queueBusyPercent != nil }) {
            out += "  node     queue busy  block write (ms)  state saves/block  state save (ms)\n"
            for node in nodes {
                out += "  \(node.name.padding(toLength: 8, withPad: " ", startingAt: 0)) "
                    + (node.queueBusyPercent.map { String(format: "%9.0f%%", $0) } ?? "       n/a") + "  "
                    + (node.storeMillisecondsPerBlock.map { String(format: "%16.2f", $0) } ?? String(repeating: " ", count: 13) + "n/a") + "  "
                    + (node.stateSavesPerBlock.map { String(format: "%17.2f", $0) } ?? String(repeating: " ", count: 14) + "n/a") + "  "
                    + (node.stateSaveMilliseconds.map { String(format: "%15.2f", $0) } ?? String(repeating: " ", count: 12) + "n/a") + "\n"
            }
            out += "    (the queue is each node's one serial stage: busy computing, flushing or waiting for a core; block write and\n"
            out += "     state save are the two flushed writes on a block's path, DECISIONS 51)\n"
        }
        let total = mix.values.reduce(0, +)
        if total > 0 {
            out += "  mix                  " + mix.keys.sorted { mix[$0]! > mix[$1]! }.map { "\($0) " + String(format: "%.0f%%", Double(mix[$0]!) * 100 / Double(total)) }.joined(separator: ", ") + "\n"
        }
        if !replaced.isEmpty {
            out += "  replaced in the script (refused by the rules, e.g. after the clock jump; a new receivable of the same signer instead): "
                + replaced.keys.sorted().map { "\($0) \(replaced[$0]!)" }.joined(separator: ", ") + "\n"
        }
        if !scriptRejections.isEmpty {
            out += "  refused when the script was generated: " + scriptRejections.keys.sorted().map { "\($0) \(scriptRejections[$0]!)" }.joined(separator: ", ") + "\n"
        }
        for error in errors { out += "  error: \(error)\n" }
        if let catchUp {
            out += "  catch-up             \(catchUp.node) " + String(format: "stopped while %d transactions (%d blocks) committed; restarted, caught up in %.2f s including the process start: %.0f tx/s of history",
                          catchUp.transactions, catchUp.blocks, catchUp.seconds, catchUp.transactionsPerSecond)
            if catchUp.secondsAfterAPIUp >= 0.05 {
                out += String(format: " (%.2f s, %.0f tx/s, after its API first answered)", catchUp.secondsAfterAPIUp,
                              Double(catchUp.transactions) / catchUp.secondsAfterAPIUp)
            }
            out += "\n"
            if let check = catchUp.executionRejections {
                let rejected = check.rejectedByCode.values.reduce(0, +)
                out += "  catch-up history     \(rejected) of \(check.checked) checked transactions refused in blocks"
                    + (check.rejectedByCode.isEmpty ? "" : ": " + check.rejectedByCode.keys.sorted().map { "\($0) \(check.rejectedByCode[$0]!)" }.joined(separator: ", "))
                    + "\n"
            }
        }
        return out
    }
}

struct LatencyFigures: Codable, Sendable, Equatable {
    var p50: Double?
    var p90: Double?
    var p99: Double?
    var max: Double?
    var samples = 0

    init() {}

    init(_ recorder: LatencyRecorder) {
        p50 = recorder.milliseconds(atPercentile: 50)
        p90 = recorder.milliseconds(atPercentile: 90)
        p99 = recorder.milliseconds(atPercentile: 99)
        max = recorder.maxMilliseconds
        samples = Int(recorder.count)
    }
}

struct NodeFigures: Codable, Sendable {
    var name: String
    var cpuPercent: Double?
    var peakResidentMB: Double?
    var residentMB: Double?
    var fsyncsPerBlock: Double?
    /// Client signatures verified per transaction committed (Δ of the two counters in /metrics).
    var signatureChecksPerTransaction: Double?
    /// The node's CPU time over the load divided by the transactions it committed meanwhile.
    var cpuMicrosecondsPerTransaction: Double?
    /// One client signature check's CPU time in the node during the load
    /// (Δ`scf_client_signature_check_seconds_total` ÷ Δ`scf_client_signature_checks_total`).
    var signatureCheckMicroseconds: Double?
    /// The CPU of those checks per transaction committed (the checks' share of `cpuMicrosecondsPerTransaction`).
    var signatureCPUMicrosecondsPerTransaction: Double?
    var blocks: Int?
    /// Share of the wall time the node's serial queue was busy (`scf_queue_busy_seconds_total`).
    var queueBusyPercent: Double?
    /// Mean time to write a block agreed live: its database transaction and flush.
    var storeMillisecondsPerBlock: Double?
    /// Mean time of a consensus-state save that wrote (encoding, write, flush), and saves per block.
    var stateSaveMilliseconds: Double?
    var stateSavesPerBlock: Double?
}

/// A transaction's cost to a node in signature checks, the unit of the ceiling.
///
/// Every node checks every client signature once, so with the nodes filling the machine's cores
/// each committed transaction costs the cores 4 × (s + o), where s is one signature check's CPU
/// time (the ceiling's own measurement: verifier threads ÷ verifies per second) and o everything
/// else a node does for it. The ceiling is cores ÷ 4s transactions per second, so the nodes reach
/// at most s ÷ (s + o) = 1 ÷ (1 + o/s) of it. o/s is that bound's one variable; o, in µs, is what a
/// change to the node moves, and it moves less with this shared machine's hour than throughput does
/// (s moves more: DECISIONS 57). CPU time counts the nodes' own processes only.
struct CostPerTransaction: Codable, Sendable, Equatable {
    let cpuMicrosecondsPerNode: Double
    let signatureCheckMicroseconds: Double
    // Derived in `init`, and stored (constants, so they cannot drift from the two above) so that
    // `--json` carries them.
    let otherMicrosecondsPerNode: Double
    let otherWorkInSignatureChecks: Double
    let attainableFractionOfCeiling: Double
    /// The same split measured inside the nodes during the load (means over the nodes that report
    /// it): one signature check's CPU there, and each node's CPU per transaction besides its checks.
    /// o above is the node's CPU less s measured on an otherwise idle machine, so it also carries
    /// what the load adds to each check (two cores shared by four nodes, their caches) and any
    /// change in the machine's speed between the ceiling's measurement and the load; this o does
    /// not, which makes it the figure to compare builds by (DECISIONS 58). Nil without the metric.
    let signatureCheckUnderLoadMicroseconds: Double?
    let measuredOtherMicrosecondsPerNode: Double?

    /// The other work per transaction per node, in signature checks, that allows `fraction` of the ceiling.
    static func otherWorkAllowed(forFraction fraction: Double) -> Double { 1 / fraction - 1 }

    /// From the nodes' figures (the mean of those that have one) and the ceiling in transactions
    /// per second measured with `threads` verifier threads; nil without either.
    init?(nodes: [NodeFigures], ceiling: Double?, threads: Int) {
        func mean(_ values: [Double]) -> Double? { values.isEmpty ? nil : values.reduce(0, +) / Double(values.count) }
        guard let perNode = mean(nodes.compactMap(\.cpuMicrosecondsPerTransaction)), let ceiling, ceiling > 0, threads > 0 else { return nil }
        cpuMicrosecondsPerNode = perNode
        signatureCheckMicroseconds = Double(threads) / (ceiling * 4) * 1_000_000
        otherMicrosecondsPerNode = cpuMicrosecondsPerNode - signatureCheckMicroseconds
        otherWorkInSignatureChecks = otherMicrosecondsPerNode / signatureCheckMicroseconds
        attainableFractionOfCeiling = 1 / (1 + max(0, otherWorkInSignatureChecks))
        signatureCheckUnderLoadMicroseconds = mean(nodes.compactMap(\.signatureCheckMicroseconds))
        measuredOtherMicrosecondsPerNode = mean(nodes.compactMap { node in
            node.cpuMicrosecondsPerTransaction.flatMap { cpu in node.signatureCPUMicrosecondsPerTransaction.map { cpu - $0 } }
        })
    }
}

struct ExecutionCheck: Codable, Sendable {
    var checked = 0
    var rejectedByCode: [String: Int] = [:]
}

struct RampStep: Codable, Sendable {
    var offered: Int
    /// Measured transactions the generator sent per second during the step: less than `offered`
    /// once it holds transactions back because what they depend on has not committed (a fragment
    /// cannot be passed on before it is held), so a step past saturation measures the script's
    /// dependencies as much as the cluster.
    var sentPerSecond: Double?
    var committedPerSecond: Double
}

struct CatchUpReport: Codable, Sendable {
    var node: String
    var transactions: Int
    var blocks: Int
    var seconds: Double
    var secondsAfterAPIUp: Double
    var refused = 0
    /// A sample of the history's transactions: how many committed as refused (a history of
    /// refusals replays faster than real work, so the figure is only meaningful when this is 0).
    var executionRejections: ExecutionCheck?
    /// Transactions of history per second, including the process start.
    var transactionsPerSecond: Double

    init(node: String, transactions: Int, blocks: Int, seconds: Double, secondsAfterAPIUp: Double) {
        self.node = node
        self.transactions = transactions
        self.blocks = blocks
        self.seconds = seconds
        self.secondsAfterAPIUp = secondsAfterAPIUp
        transactionsPerSecond = seconds > 0 ? Double(transactions) / seconds : 0
    }
}
