import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerAPI
import LedgerCore
import LedgerNode
import LedgerTestKit
import Synchronization

/// `scf bench`: starts a local four-node cluster, offers a realistic pre-signed load open-loop and
/// reports committed throughput against this machine's signature-verification ceiling, commit
/// latency, refusals, CPU and memory per node, block size and fsyncs per block; optionally ramps to
/// saturation, runs at half of it, and times a restarted node's catch-up. See docs/BENCHMARKS.md.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure a local 4-node cluster: throughput, commit latency, catch-up and memory.",
        discussion: """
        Real figures need a release build: swift run -c release scf bench. Examples:
          scf bench --rate 1000 --duration 20          fixed open-loop load
          scf bench --ramp                             raise the rate until the cluster falls behind
          scf bench --half-load                        ramp, then a fresh cluster at half the saturation rate
          scf bench --rate 1000 --catch-up 20000       then stop a node, commit 20,000 more, time its catch-up
          scf bench --rate 2000 --transactions 1000000 the long memory run
          scf bench --smoke                            a few seconds, for CI (no speed assertion)
        """
    )

    @Option(help: "Offer this many transactions per second, open-loop (fixed-rate mode).") var rate = 1_000
    @Option(help: "Seconds of measured load at --rate.") var duration = 20
    @Option(help: "Offer this many transactions in all at --rate (overrides --duration; for the memory run).") var transactions: Int?
    @Flag(help: "Ramp the rate up step by step until the cluster falls behind; report the saturation throughput.") var ramp = false
    @Flag(help: "Ramp to saturation, then measure latency on a fresh cluster at half that rate.") var halfLoad = false
    @Option(help: "With --ramp: first rate.") var rampFrom = 500
    @Option(help: "With --ramp: rate added each step.") var rampStep = 500
    @Option(help: "With --ramp: highest rate offered.") var rampTo = 8_000
    @Option(help: "With --ramp: seconds per step.") var stepSeconds = 3
    @Option(help: "After the load: stop one node, commit this many transactions, restart it and time its catch-up.") var catchUp: Int?
    @Option(help: "Distinct supplier signers besides the core enterprise, banks, regulator and verifier.") var signers = 200
    @Option(help: "Seconds of unmeasured warm-up load (creates receivables that mature and are settled in the measured load).") var warmUp = 3
    @Option(help: "Seed of the generated workload.") var seed: UInt64 = 1
    @Option(help: "Seconds of signature verification to measure the ceiling.") var verifySeconds = 2.0
    @Flag(help: "Print the report as JSON.") var json = false
    @Option(help: "Write a latency-over-time chart (SVG) of the last load to this file.") var plot: String?
    @Flag(help: "A short run for CI: low rate, a few seconds, catch-up of a few hundred transactions; no speed assertion.") var smoke = false
    @Option(help: "Keep the cluster's files here (default: a temporary directory, removed at the end).") var keep: String?
    @Option(help: "Only write a cluster directory for nodes you start yourself (prints the commands), then stop.") var setup: String?
    @Option(name: .customLong("node"), help: "Target this running node's API instead of starting a cluster (four times, with --cluster).") var nodes: [String] = []
    @Option(help: "With --node: the directory `scf bench --setup` wrote (genesis, clock offset file).") var cluster: String?
    @Option(help: "Only time catch-up's apply stage: replay every block of this ledger file (e.g. a node's from --keep) into fresh files, batch by batch and pipelined; needs --genesis.") var replay: String?
    @Option(help: "With --replay: the chain's genesis file.") var genesis: String?

    func validate() throws {
        guard rate > 0, duration > 0, rampFrom > 0, rampStep > 0, rampTo >= rampFrom, stepSeconds > 0, signers >= 4, warmUp >= 0 else {
            throw ValidationError("rates, durations and --signers (at least 4) must be positive, and --ramp-to at least --ramp-from")
        }
        if let transactions, transactions <= 0 { throw ValidationError("--transactions must be positive") }
        if let catchUp, catchUp <= 0 { throw ValidationError("--catch-up must be positive") }
        if catchUp != nil, ramp, !halfLoad {
            throw ValidationError("--catch-up runs after a fixed-rate load: use it with --rate, or with --half-load (its fixed half)")
        }
        if !nodes.isEmpty {
            guard nodes.count == 4, cluster != nil else { throw ValidationError("--node takes the four nodes' API URLs, with --cluster DIR from `scf bench --setup DIR`") }
            guard nodes.allSatisfy({ URL(string: $0)?.scheme == "http" }) else { throw ValidationError("--node takes http URLs such as http://127.0.0.1:8100") }
            guard catchUp == nil else { throw ValidationError("--catch-up stops and restarts a node, so it needs the cluster the bench starts itself (no --node)") }
        }
    }

    func run() async throws {
        try await reportingErrors {
            if let replay {
                guard let genesis else { throw CLIError("--replay needs --genesis FILE, the chain's genesis") }
                try BenchReplay.run(ledger: replay, genesisFile: genesis)
                return
            }
            if let setup {
                try BenchRunner.setUp(directory: setup, signers: signers)
                return
            }
            var settings = BenchSettings(command: self)
            if smoke { settings.makeSmoke() }
            let report = try await BenchRunner(settings: settings).run()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                FileHandle.standardOutput.write(try encoder.encode(report) + Data("\n".utf8))
            } else {
                FileHandle.standardOutput.write(Data(report.table().utf8))
            }
            if let plot, let last = report.sessions.last {
                let title = "scf bench \(last.mode) \(last.offeredRate.map { "at \($0) tx/s" } ?? ""): commit latency and throughput (\(report.build) build)"
                try Files.write(Data(LatencyPlot.svg(points: last.series, title: title).utf8), to: plot, overwrite: true)
                FileHandle.standardError.write(Data("wrote \(plot)\n".utf8))
            }
        }
    }
}

/// The options a run needs, after --smoke.
struct BenchSettings: Sendable {
    var rate: Int
    var duration: Int
    var transactions: Int?
    var ramp: Bool
    var halfLoad: Bool
    var rampFrom: Int, rampStep: Int, rampTo: Int, stepSeconds: Int
    var catchUp: Int?
    var signers: Int
    var warmUp: Int
    var seed: UInt64
    var verifySeconds: Double
    var keep: String?
    var nodes: [URL]
    var clusterDirectory: String?
    var quiet: Bool
    var checkExecution = 2_000

    init(command: Bench) {
        rate = command.rate; duration = command.duration; transactions = command.transactions
        ramp = command.ramp || command.halfLoad; halfLoad = command.halfLoad
        rampFrom = command.rampFrom; rampStep = command.rampStep; rampTo = command.rampTo; stepSeconds = command.stepSeconds
        catchUp = command.catchUp; signers = command.signers; warmUp = command.warmUp; seed = command.seed
        verifySeconds = command.verifySeconds; keep = command.keep; quiet = command.json
        nodes = command.nodes.compactMap { URL(string: $0) }; clusterDirectory = command.cluster
    }

    mutating func makeSmoke() {
        rate = min(rate, 100); duration = min(duration, 3); transactions = nil
        ramp = false; halfLoad = false
        catchUp = min(catchUp ?? 300, 300); signers = min(signers, 40); warmUp = min(warmUp, 2)
        verifySeconds = min(verifySeconds, 0.5); checkExecution = 200
    }
}

struct BenchRunner {
    let settings: BenchSettings

    func log(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

    func run() async throws -> BenchReport {
        var report = BenchReport.describingMachine()
        if settings.ramp {
            let rampSession = try await session(mode: .ramp, first: true, report: &report)
            report.sessions.append(rampSession)
            if settings.halfLoad, let saturation = rampSession.saturationCommittedPerSecond {
                let half = max(1, Int(saturation / 2))
                log("half load: \(half) tx/s on a fresh cluster")
                report.sessions.append(try await session(mode: .fixed(rate: half), first: false, report: &report))
            }
        } else {
            report.sessions.append(try await session(mode: .fixed(rate: settings.rate), first: true, report: &report))
        }
        return report
    }

    static func consortium(signers: Int) -> TestConsortium {
        TestConsortium(suite: Ed25519SHA256Suite(), extraSuppliers: signers, chainID: "scf-bench")
    }

    /// `scf bench --setup DIR`: the cluster's files, and how to start its nodes and bench them.
    static func setUp(directory: String, signers: Int) throws {
        let cluster = try BenchCluster(directory: directory, consortium: consortium(signers: signers))
        guard let local = cluster.local else { return }
        var text = "wrote a bench cluster to \(directory) (\(signers) signers). Start each node, e.g. in four terminals:\n"
        for index in 0..<4 {
            text += "  scf node start --config \(directory)/node-\(index).json --clock-offset-file \(directory)/clock-offset\n"
        }
        text += "then bench them (the same --signers; run it within a day: the nodes' clock starts at the genesis day):\n"
        text += "  scf bench --cluster \(directory) --signers \(signers)" + local.apiPorts.map { " --node http://127.0.0.1:\($0)" }.joined() + "\n"
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    enum Mode {
        case fixed(rate: Int)
        case ramp
    }

    /// One cluster, one script: warm-up, clock jump, measured load, optional catch-up.
    func session(mode: Mode, first: Bool, report: inout BenchReport) async throws -> SessionReport {
        let test = Self.consortium(signers: settings.signers)
        let cluster: BenchCluster
        let directory: String
        if let existing = settings.clusterDirectory, !settings.nodes.isEmpty {
            guard first else { throw CLIError("--half-load runs its second half on a fresh cluster, so it needs the cluster the bench starts itself (no --node)") }
            directory = existing
            cluster = try BenchCluster(existing: existing, urls: settings.nodes, consortium: test)
        } else {
            directory = settings.keep.map { first ? $0 : $0 + "-2" }
                ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("scf-bench-\(getpid())-\(first ? 1 : 2)")
            try? FileManager.default.removeItem(atPath: directory)
            cluster = try BenchCluster(directory: directory, consortium: test)
        }
        defer {
            cluster.stopAll()
            if settings.keep == nil && cluster.local != nil { try? FileManager.default.removeItem(atPath: directory) }
        }

        // Sizes of the rounds (one round = one second of load).
        let measured: [Int]
        let offeredRate: Int?
        switch mode {
        case .fixed(let rate):
            offeredRate = rate
            if let total = settings.transactions {
                measured = Array(repeating: rate, count: total / rate) + (total % rate > 0 ? [total % rate] : [])
            } else {
                measured = Array(repeating: rate, count: settings.duration)
            }
        case .ramp:
            offeredRate = nil
            measured = stride(from: settings.rampFrom, through: settings.rampTo, by: settings.rampStep)
                .flatMap { Array(repeating: $0, count: settings.stepSeconds) }
        }
        let warmUpRate = min(measured.first ?? 100, 1_000)
        let warmUp = Array(repeating: warmUpRate, count: settings.warmUp)
        // Catch-up follows fixed-rate loads only: a ramp stops offering at saturation, so the
        // script's later rounds would follow nonces that were never offered and every catch-up
        // transaction would commit as refused (nonceGap), a cheaper history than a real one.
        let catchUpRounds = offeredRate.flatMap { rate in
            settings.catchUp.map { total in Array(repeating: rate, count: total / rate) + (total % rate > 0 ? [total % rate] : []) }
        } ?? []
        let totalCount = (warmUp + measured + catchUpRounds).reduce(0, +)
        log("generating \(totalCount) signed transactions from \(test.genesis.members.count) members…")
        let generationStart = Date()
        var lastShown = 0
        let script = try BenchScript.make(consortium: test, seed: settings.seed, warmUp: warmUp, measured: measured + catchUpRounds,
                                          jumpDays: 125) { done, total in
            if done - lastShown >= 100_000 {
                lastShown = done
                log("  \(done) of \(total)")
            }
        }
        log(String(format: "  done in %.1f s", Date().timeIntervalSince(generationStart)))
        let warmUpRounds = Array(script.rounds.prefix(warmUp.count))
        let mainRounds = Array(script.rounds.dropFirst(warmUp.count).prefix(measured.count))
        let catchUpScript = Array(script.rounds.dropFirst(warmUp.count + measured.count))

        log(cluster.local == nil ? "checking the 4 nodes at \(cluster.urls.map(\.absoluteString).joined(separator: ", "))…" : "starting 4 nodes in \(directory)…")
        try await cluster.start()

        let sample = Array(script.rounds.flatMap(\.transactions).prefix(256))
        if first {
            log(String(format: "measuring signature verification on 2 threads for %.1f s…", settings.verifySeconds))
            let verifies = try BenchCeiling.verifyRate(sample: sample, consortium: test, seconds: settings.verifySeconds, threads: 2)
            report.signatureVerifiesPerSecond = verifies
            report.ceilingTransactionsPerSecond = verifies / 4
            log(String(format: "  %.0f verifies/s; ceiling %.0f tx/s (÷ 4 nodes)", verifies, verifies / 4))
        }

        // Warm-up, then the clock jump that makes the warm-up's receivables mature.
        if !warmUpRounds.isEmpty {
            log("warm-up: \(warmUpRounds.count) s at \(warmUpRate) tx/s (not measured)…")
            let height = try await cluster.height(0)
            let warm = BenchLoad(nodes: cluster.urls, follow: cluster.urls[0], log: log)
            let outcome = await warm.run(rounds: warmUpRounds, fromHeight: height, drainSeconds: 60)
            if outcome.unresolved > 0 { log("  \(outcome.unresolved) warm-up transactions not committed after 60 s") }
            try cluster.jumpClock(days: script.jumpDays)
            try await Task.sleep(for: .milliseconds(500))
        }

        var session = SessionReport(mode: offeredRate == nil ? "ramp" : "fixed", offeredRate: offeredRate)
        session.mix = script.mix
        session.scriptRejections = script.scriptRejections
        session.replaced = script.replaced
        let before = await cluster.sampleNodes()
        let startHeight = try await cluster.height(0)
        switch mode {
        case .fixed(let rate): log("load: \(mainRounds.count) s at \(rate) tx/s open-loop, \(script.rounds.dropFirst(warmUp.count).prefix(measured.count).reduce(0) { $0 + $1.transactions.count }) transactions…")
        case .ramp: log("ramp: \(settings.rampFrom) to \(settings.rampTo) tx/s, +\(settings.rampStep) every \(settings.stepSeconds) s, until more than 3 s of load is in flight or held back…")
        }
        let load = BenchLoad(nodes: cluster.urls, follow: cluster.urls[0], log: log)
        let outcome = await load.run(rounds: mainRounds, fromHeight: startHeight,
                                     saturationBacklogSeconds: offeredRate == nil ? 3 : nil, drainSeconds: offeredRate == nil ? 15 : 60)
        let after = await cluster.sampleNodes()
        // This machine is shared, and its verify rate moves by a third within minutes: measured
        // again right after the load, the fraction is of the mean of the two readings.
        let verifiesAfter = try BenchCeiling.verifyRate(sample: sample, consortium: test, seconds: settings.verifySeconds, threads: 2)
        log(String(format: "  after the load: %.0f verifies/s; ceiling %.0f tx/s", verifiesAfter, verifiesAfter / 4))
        session.absorb(outcome, ceilingBefore: report.ceilingTransactionsPerSecond, ceilingAfter: verifiesAfter / 4)
        session.nodes = BenchCluster.figures(before: before, after: after)
        session.costPerTransaction = CostPerTransaction(nodes: session.nodes, ceiling: session.ceilingUsed, threads: report.verifyThreads)
        if offeredRate == nil { session.computeSteps(stepSeconds: settings.stepSeconds, rates: measured) }
        session.executionRejections = await checkExecution(ids: outcome.committedIDs, cluster: cluster)

        if !catchUpScript.isEmpty, let catchUp = settings.catchUp {
            session.catchUp = try await runCatchUp(cluster: cluster, rounds: catchUpScript, requested: catchUp)
        }
        return session
    }

    /// Asks the followed node for the outcome of (up to `checkExecution`) committed transactions:
    /// blocks list ids only, and some are committed as refused by the rules.
    func checkExecution(ids: [Hash], cluster: BenchCluster) async -> ExecutionCheck {
        let step = max(1, ids.count / max(1, settings.checkExecution))
        let sample = stride(from: 0, to: ids.count, by: step).map { ids[$0] }
        var check = ExecutionCheck()
        let session = URLSession(configuration: .ephemeral)
        await withTaskGroup(of: String?.self) { group in
            var next = 0
            func add() {
                guard next < sample.count else { return }
                let id = sample[next]
                next += 1
                group.addTask {
                    guard let (data, _) = try? await session.data(from: cluster.urls[0].appendingPathComponent("v1/transactions/\(id.hex)")),
                          let view = try? JSONDecoder().decode(TransactionView.self, from: data) else { return "unreadable" }
                    return view.status == "rejected" ? (view.code ?? "rejected") : nil
                }
            }
            for _ in 0..<16 { add() }
            while let result = await group.next() {
                check.checked += 1
                if let code = result { check.rejectedByCode[code, default: 0] += 1 }
                add()
            }
        }
        return check
    }

    /// Stops a node that is not the primary, commits the catch-up rounds on the other three,
    /// restarts it and times how long it takes to reach their height (and, after a bulk
    /// catch-up, to build its read-model indexes again).
    func runCatchUp(cluster: BenchCluster, rounds: [BenchRound], requested: Int) async throws -> CatchUpReport {
        let processes = try cluster.processes()
        let status = try await processes.status(0)
        let primary = Int(status.primary.split(separator: "-").last.flatMap { Int($0) } ?? 0)
        let lagging = (primary + 2) % 4
        let others = (0..<4).filter { $0 != lagging }
        log("catch-up: stopping node-\(lagging) (kill -9), committing \(requested) transactions on the other three…")
        processes.kill(lagging)
        let startHeight = try await cluster.height(others[0])
        let load = BenchLoad(nodes: others.map { cluster.urls[$0] }, follow: cluster.urls[others[0]], log: log)
        let outcome = await load.run(rounds: rounds, fromHeight: startHeight, drainSeconds: 120)
        let target = try await cluster.height(others[0])
        log("  \(outcome.committed) committed in \(target.value - startHeight.value) blocks; restarting node-\(lagging)…")
        let restarted = Date()
        try processes.start(lagging)
        var firstAnswer: Date?
        var reached: Date?
        let deadline = Date().addingTimeInterval(600)
        while Date() < deadline {
            // Caught up: at their height, with the read-model indexes a bulk catch-up drops
            // (DECISIONS 45) built again, so the time includes building them.
            if let status = try? await cluster.status(cluster.urls[lagging]) {
                if firstAnswer == nil { firstAnswer = Date() }
                if status.height >= target, status.readModelIndexesSuspended != true { reached = Date(); break }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        guard let reached else { throw CLIError("node-\(lagging) did not catch up to height \(target) within 600 s; see \(cluster.directory)/logs/node-\(lagging).log") }
        let seconds = reached.timeIntervalSince(restarted)
        let afterStart = firstAnswer.map { reached.timeIntervalSince($0) } ?? seconds
        var report = CatchUpReport(node: "node-\(lagging)", transactions: outcome.committed, blocks: Int(target.value - startHeight.value),
                                   seconds: seconds, secondsAfterAPIUp: afterStart)
        report.refused = outcome.refused.values.reduce(0, +)
        report.executionRejections = await checkExecution(ids: outcome.committedIDs, cluster: cluster)
        log(String(format: "  caught up %d transactions (%d blocks) in %.2f s including process start: %.0f tx/s",
                   report.transactions, report.blocks, seconds, report.transactionsPerSecond))
        return report
    }
}

/// This machine's signature-verification rate with the suite the chain uses.
enum BenchCeiling {
    static func verifyRate(sample: [BenchTransaction], consortium: TestConsortium, seconds: Double, threads: Int) throws -> Double {
        let suite = consortium.suite
        let work: [(SignedTransaction, PublicKey)] = try sample.map { item in
            (try SignedTransaction(wireBytes: item.wire, suite: suite), consortium.member(item.signer).publicKey)
        }
        guard !work.isEmpty else { return 0 }
        let counts = Mutex<[Int]>(Array(repeating: 0, count: threads))
        let failures = Mutex(0)
        let started = DispatchTime.now().uptimeNanoseconds
        let limit = started + UInt64(seconds * 1e9)
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            var done = 0, bad = 0
            var index = thread
            while DispatchTime.now().uptimeNanoseconds < limit {
                for _ in 0..<16 {
                    let (transaction, key) = work[index % work.count]
                    if !transaction.hasValidSignature(publicKey: key, suite: suite) { bad += 1 }
                    index += 1
                    done += 1
                }
            }
            counts.withLock { $0[thread] = done }
            failures.withLock { $0 += bad }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        guard failures.withLock({ $0 }) == 0 else { throw CLIError("signatures of the generated workload did not verify; the bench's consortium keys are inconsistent") }
        return Double(counts.withLock { $0.reduce(0, +) }) / elapsed
    }
}

