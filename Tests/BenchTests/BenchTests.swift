import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import LedgerCore
import LedgerTestKit
@testable import scf
import Testing

/// The parts of `scf bench` that need no processes: percentiles, the SVG chart, /proc and metrics
/// parsing, and the generated workload's mix and ordering.
@Suite struct BenchTests {
    @Test func aLocalClusterGetsDifferentPorts() throws {
        // Each port is checked free on its own; drawn one by one, two of a cluster's eight once
        // came out the same (one node could not listen). A thousand at once must all differ.
        let ports = try LocalConsortium.freePorts(1_000)
        #expect(Set(ports).count == 1_000)
        #expect(ports.allSatisfy { $0 > 0 && $0 < 65_536 })
    }

    @Test func percentilesComeFromTheHistogram() {
        var recorder = LatencyRecorder()
        for millisecond in 1...1_000 { recorder.record(latencyMicroseconds: UInt64(millisecond) * 1_000, second: millisecond / 500) }
        #expect(recorder.count == 1_000)
        let p50 = recorder.milliseconds(atPercentile: 50)!
        let p99 = recorder.milliseconds(atPercentile: 99)!
        #expect(abs(p50 - 500) <= 1)
        #expect(abs(p99 - 990) <= 1)
        #expect(abs(recorder.maxMilliseconds! - 1_000) <= 1)
        let series = recorder.series
        #expect(series.map(\.committed) == [499, 500, 1])
        #expect(series[0].p99! < series[1].p50!)
        #expect(LatencyRecorder().milliseconds(atPercentile: 50) == nil)
    }

    @Test func latenciesBeyondTheRangeAreClampedNotLost() {
        var recorder = LatencyRecorder()
        recorder.record(latencyMicroseconds: 0, second: 0)
        recorder.record(latencyMicroseconds: LatencyRecorder.highest * 2, second: 3)
        #expect(recorder.count == 2)
        #expect(recorder.series.count == 4)
    }

    @Test func theTableSplitsLatencyIntoOfferAndAcceptance() {
        var outcome = BenchLoad.Outcome()
        for millisecond in 1...100 {
            outcome.latency.record(latencyMicroseconds: UInt64(millisecond) * 1_000, second: 0)
            outcome.offerLag.record(latencyMicroseconds: UInt64(millisecond) * 100, second: -1)
            outcome.answered.record(latencyMicroseconds: UInt64(millisecond) * 300, second: -1)
        }
        outcome.seconds = 1
        var session = SessionReport(mode: "fixed", offeredRate: 100)
        session.absorb(outcome, ceilingBefore: 1_000, ceilingAfter: 1_000)
        #expect(session.offerLagMilliseconds.samples == 100)
        #expect(abs(session.offerLagMilliseconds.p50! - 5) <= 0.1)
        #expect(abs(session.answeredMilliseconds.p99! - 29.7) <= 0.1)
        let table = session.table()
        #expect(table.contains("offer sent p50 5.0"))
        #expect(table.contains("accepted by the node p50 15.0"))
        // A run that measured no offers (the old figures, or no load) prints no such line.
        var empty = SessionReport(mode: "fixed", offeredRate: 100)
        empty.absorb(BenchLoad.Outcome(), ceilingBefore: 1_000, ceilingAfter: 1_000)
        #expect(!empty.table().contains("offer sent"))
    }

    /// Each node's queue busy share and the mean of its two flushed writes, from the differences
    /// of its counters over the load, and the table line they print in.
    @Test func nodeFiguresShowTheQueueAndTheFlushedWrites() {
        let start = Date(timeIntervalSince1970: 1_000)
        let before = BenchCluster.NodeSample(proc: nil, metrics: [
            "scf_blocks_committed_total": 100, "scf_queue_busy_seconds_total": 1.0, "scf_block_stores_total": 100,
            "scf_block_store_seconds_total": 0.2, "scf_replica_state_saves_total": 300, "scf_replica_state_save_seconds_total": 0.3,
        ], at: start)
        let after = BenchCluster.NodeSample(proc: nil, metrics: [
            "scf_blocks_committed_total": 600, "scf_queue_busy_seconds_total": 9.0, "scf_block_stores_total": 600,
            "scf_block_store_seconds_total": 1.45, "scf_replica_state_saves_total": 1_300, "scf_replica_state_save_seconds_total": 1.3,
        ], at: start.addingTimeInterval(10))
        let figures = BenchCluster.figures(before: [before], after: [after])
        #expect(figures.count == 1)
        #expect(abs((figures[0].queueBusyPercent ?? 0) - 80) < 1e-9)
        #expect(abs((figures[0].storeMillisecondsPerBlock ?? 0) - 2.5) < 1e-9)
        #expect(abs((figures[0].stateSaveMilliseconds ?? 0) - 1.0) < 1e-9)
        #expect(abs((figures[0].stateSavesPerBlock ?? 0) - 2.0) < 1e-9)
        var session = SessionReport(mode: "fixed", offeredRate: 100)
        session.nodes = figures
        let table = session.table()
        #expect(table.contains("queue busy  block write (ms)  state saves/block  state save (ms)"))
        #expect(table.contains("node-0          80%              2.50               2.00             1.00"))
        // Nodes without the counters (an older scf behind --node) print no such line.
        session.nodes = BenchCluster.figures(before: [BenchCluster.NodeSample(proc: nil, metrics: [:], at: start)],
                                             after: [BenchCluster.NodeSample(proc: nil, metrics: [:], at: start.addingTimeInterval(10))])
        #expect(!session.table().contains("queue busy"))
    }

    /// CPU per committed transaction from each node's process time and commit counter, and the
    /// bound it puts on the fraction of the ceiling, in signature checks.
    @Test func costPerTransactionIsCountedInSignatureChecks() throws {
        let start = Date(timeIntervalSince1970: 1_000)
        func sample(cpu: Double, committed: Double, at seconds: Double) -> BenchCluster.NodeSample {
            BenchCluster.NodeSample(proc: ProcSample(cpuSeconds: cpu, peakResidentBytes: 0, residentBytes: 0),
                                    metrics: ["scf_committed_transactions_total": committed], at: start.addingTimeInterval(seconds))
        }
        // Two nodes: 3 s and 5 s of CPU for 10,000 transactions: 300 and 500 µs each, 400 on average.
        let figures = BenchCluster.figures(before: [sample(cpu: 1, committed: 5_000, at: 0), sample(cpu: 2, committed: 5_000, at: 0)],
                                           after: [sample(cpu: 4, committed: 15_000, at: 10), sample(cpu: 7, committed: 15_000, at: 10)])
        #expect(abs((figures[0].cpuMicrosecondsPerTransaction ?? 0) - 300) < 1e-6)
        #expect(abs((figures[1].cpuMicrosecondsPerTransaction ?? 0) - 500) < 1e-6)
        // A ceiling of 5,000 tx/s is 20,000 verifies/s on 2 threads: 100 µs of a core per check.
        let cost = CostPerTransaction(nodes: figures, ceiling: 5_000, threads: 2)
        #expect(cost != nil)
        #expect(abs((cost?.signatureCheckMicroseconds ?? 0) - 100) < 1e-9)
        #expect(abs((cost?.otherMicrosecondsPerNode ?? 0) - 300) < 1e-9)
        #expect(abs((cost?.otherWorkInSignatureChecks ?? 0) - 3) < 1e-9)
        #expect(abs((cost?.attainableFractionOfCeiling ?? 0) - 0.25) < 1e-9)
        #expect(abs(CostPerTransaction.otherWorkAllowed(forFraction: 0.6) - 2.0 / 3.0) < 1e-9)
        // Cross-check: a node whose other work is exactly what 60% allows reaches 60%.
        let sixty = CostPerTransaction(nodes: [NodeFigures(name: "n", cpuMicrosecondsPerTransaction: 100 + 100 * 2.0 / 3.0)], ceiling: 5_000, threads: 2)
        #expect(abs((sixty?.attainableFractionOfCeiling ?? 0) - 0.6) < 1e-9)
        var session = SessionReport(mode: "fixed", offeredRate: 100)
        session.costPerTransaction = cost
        #expect(session.table().contains("400 µs of CPU per node (mean), of which its signature check 100 µs; everything else 300 µs = 3.00 signature checks"))
        #expect(session.table().contains("= 25% of the ceiling; 60% needs at most 0.67, 80% 0.25"))
        // --json carries the derived figures too.
        let json = String(decoding: try JSONEncoder().encode(session), as: UTF8.self)
        #expect(json.contains("\"otherWorkInSignatureChecks\":3") && json.contains("\"attainableFractionOfCeiling\":0.25"))
        // Measured in the nodes: 1.2 s of checks for 10,000 checks and 10,000 committed is 120 µs
        // a check under load, so node 0's other work is 300 - 120 = 180 µs and node 1's 380.
        func measured(cpu: Double, committed: Double, checkSeconds: Double, at seconds: Double) -> BenchCluster.NodeSample {
            BenchCluster.NodeSample(proc: ProcSample(cpuSeconds: cpu, peakResidentBytes: 0, residentBytes: 0),
                                    metrics: ["scf_committed_transactions_total": committed, "scf_client_signature_checks_total": committed,
                                              "scf_client_signature_check_seconds_total": checkSeconds],
                                    at: start.addingTimeInterval(seconds))
        }
        let inNodes = BenchCluster.figures(
            before: [measured(cpu: 1, committed: 5_000, checkSeconds: 0.5, at: 0), measured(cpu: 2, committed: 5_000, checkSeconds: 0.6, at: 0)],
            after: [measured(cpu: 4, committed: 15_000, checkSeconds: 1.7, at: 10), measured(cpu: 7, committed: 15_000, checkSeconds: 1.8, at: 10)])
        #expect(abs((inNodes[0].signatureCheckMicroseconds ?? 0) - 120) < 1e-6)
        let split = try #require(CostPerTransaction(nodes: inNodes, ceiling: 5_000, threads: 2))
        #expect(abs((split.signatureCheckUnderLoadMicroseconds ?? 0) - 120) < 1e-6)
        #expect(abs((split.measuredOtherMicrosecondsPerNode ?? 0) - 280) < 1e-6)
        session.costPerTransaction = split
        #expect(session.table().contains("measured in the nodes: a signature check 120 µs under this load; everything else 280 µs"))
        #expect(cost?.measuredOtherMicrosecondsPerNode == nil, "no figure without the metric")
        // No process figures (nodes given by URL on another machine) or no ceiling: no figure.
        #expect(CostPerTransaction(nodes: [NodeFigures(name: "n")], ceiling: 5_000, threads: 2) == nil)
        #expect(CostPerTransaction(nodes: figures, ceiling: nil, threads: 2) == nil)
    }

    @Test func rampStepsShowWhatWasSentBesideTheSchedule() {
        var session = SessionReport(mode: "ramp", offeredRate: nil)
        // Commits are counted from a second into a step to a second after it; sends in the step.
        session.series = (0..<5).map { LatencyPoint(second: $0, committed: [0, 10, 10, 16, 4][$0], p50: 1, p99: 1) }
        session.sentPerSecond = [10, 10, 20, 8]
        session.computeSteps(stepSeconds: 2, rates: [10, 10, 20, 20])
        #expect(session.steps.map(\.offered) == [10, 20])
        #expect(session.steps.map(\.sentPerSecond) == [10, 14])
        #expect(session.steps.map(\.committedPerSecond) == [10, 10])
        #expect(session.saturationCommittedPerSecond == 10)
        #expect(session.table().contains("10→10→10 20→14→10 (scheduled→sent→committed tx/s"))
        // A report read back from an older run, without sends, keeps the old form.
        session.sentPerSecond = []
        session.computeSteps(stepSeconds: 2, rates: [10, 10, 20, 20])
        #expect(session.table().contains("10→10 20→10 (offered→committed tx/s)"))
    }

    final class XMLCheck: NSObject, XMLParserDelegate {
        var elements: [String: Int] = [:]
        func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            elements[elementName, default: 0] += 1
        }
    }

    @Test func theChartIsWellFormedSVG() throws {
        let points = (0..<30).map { LatencyPoint(second: $0, committed: 900 + $0, p50: 20 + Double($0), p99: $0 == 5 ? nil : 80 + Double($0)) }
        let svg = LatencyPlot.svg(points: points, title: "a <title> & \"quotes\"")
        let check = XMLCheck()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = check
        #expect(parser.parse(), "the SVG does not parse as XML")
        #expect(check.elements["svg"] == 1)
        #expect(check.elements["polyline"] == 3)
        #expect(svg.contains("&lt;title&gt; &amp; &quot;quotes&quot;"))
        let empty = XMLParser(data: Data(LatencyPlot.svg(points: [], title: "empty").utf8))
        #expect(empty.parse())
    }

    @Test func niceAxisMaxima() {
        #expect(LatencyPlot.niceCeiling(0) == 1)
        #expect(LatencyPlot.niceCeiling(3) == 5)
        #expect(LatencyPlot.niceCeiling(120) == 200)
        #expect(LatencyPlot.niceCeiling(1_000) == 1_000)
        #expect(LatencyPlot.niceCeiling(0.03) == 0.05)
    }

    @Test func procStatFieldsAreCountedAfterTheCommandName() {
        // comm with a space and a parenthesis, as a process may name itself.
        let line = "4242 (scf node) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 123456789 5000 18446744073709551615"
        #expect(ProcReader.cpuTicks(statLine: line) == 325)
        #expect(ProcReader.parentPID(statLine: line) == 1)
        #expect(ProcReader.cpuTicks(statLine: "garbage") == nil)
    }

    @Test func procStatusMemoryInBytes() {
        let status = "Name:\tscf\nVmPeak:\t  300000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t9\n"
        #expect(ProcReader.statusBytes("VmHWM", statusText: status) == 204_800 * 1024)
        #expect(ProcReader.statusBytes("VmRSS", statusText: status) == 100 * 1_048_576)
        #expect(ProcReader.statusBytes("VmSwap", statusText: status) == nil)
    }

    @Test func ownProcessCanBeSampled() throws {
        let sample = try #require(ProcReader.sample(pid: getpid()))
        #expect(sample.peakResidentBytes >= sample.residentBytes)
        #expect(sample.residentBytes > 1_000_000)
        #expect(sample.cpuSeconds >= 0)
    }

    @Test func metricsTextSkipsCommentsAndReadsValues() {
        let text = """
        # HELP scf_block_height Height of the last committed block.
        # TYPE scf_block_height gauge
        scf_block_height 42
        scf_fsyncs_total 84
        scf_halted 0
        malformed
        """
        let values = MetricsText.parse(text)
        #expect(values == ["scf_block_height": 42, "scf_fsyncs_total": 84, "scf_halted": 0])
    }

    @Test func signersStayOnOneNode() {
        let ids: [MemberID] = ["core-enterprise", "bank-a", "supplier-17", "supplier-18"]
        for id in ids {
            let slot = BenchLoad.slot(of: id, count: 4)
            #expect((0..<4).contains(slot))
            #expect(BenchLoad.slot(of: id, count: 4) == slot)
        }
        #expect(Set((0..<200).map { BenchLoad.slot(of: MemberID("supplier-\($0)")!, count: 4) }).count == 4)
    }

    @Test func theScriptHasARealisticMixInSignerOrder() throws {
        let consortium = TestConsortium(extraSuppliers: 24, chainID: "scf-bench")
        let script = try BenchScript.make(consortium: consortium, seed: 7, warmUp: Array(repeating: 60, count: 4),
                                          measured: Array(repeating: 60, count: 6), jumpDays: 125)
        #expect(script.rounds.count == 10)
        #expect(script.rounds.filter(\.measured).count == 6)
        #expect(script.measuredCount == 360)
        let total = script.mix.values.reduce(0, +)
        #expect(total == 600)
        for kind in ["propose", "confirm", "transfer", "requestFinancing", "approveFinancing", "settle"] {
            #expect((script.mix[kind] ?? 0) > 0, "no \(kind) in the mix \(script.mix)")
        }
        #expect(script.mix["invalid"] == nil)
        // Every transaction of the script is valid when executed in order: nothing is refused.
        #expect(script.scriptRejections.values.reduce(0, +) <= total / 50, "\(script.scriptRejections)")
        // Each signer's nonces stay in increasing order across the whole script.
        var last: [MemberID: UInt64] = [:]
        for round in script.rounds {
            for item in round.transactions {
                let transaction = try SignedTransaction(wireBytes: item.wire, suite: consortium.suite)
                #expect(transaction.body.nonce == last[item.signer, default: 0] + 1)
                last[item.signer] = transaction.body.nonce
            }
        }
        // Later rounds depend on earlier ones: some transactions are held to the second half.
        #expect(script.rounds.dropFirst().contains { $0.firstDependent < $0.transactions.count })
    }

    @Test func dependentTransactionsComeAfterIndependentOnes() {
        let consortium = TestConsortium()
        var factory = TransactionFactory(consortium: consortium)
        let root = ReceivableID(consortium.suite.hash(Array("root".utf8)))
        let other = ReceivableID(consortium.suite.hash(Array("other".utf8)))
        let confirmChanged = factory.make(TestConsortium.core, .confirmReceivable(root))
        let confirmOther = factory.make(TestConsortium.core, .confirmReceivable(other))
        let bankThing = factory.make(TestConsortium.bankA, .confirmReceivable(other))
        var changed = ChangedRecords()
        changed.ids.insert(root.hash)
        let round = BenchScript.orderRound([confirmChanged, confirmOther, bankThing], after: changed, measured: true)
        // The core enterprise's second transaction follows its first (nonce order); the bank's goes first.
        #expect(round.transactions.map(\.id) == [bankThing.id, confirmChanged.id, confirmOther.id])
        #expect(round.firstDependent == 1)
        #expect(changed.touches(.confirmReceivable(root)))
        #expect(!changed.touches(.confirmReceivable(other)))
    }

    @Test func aReplayPrintsALineForEachFurther100000Transactions() {
        let start = ContinuousClock.now
        var progress = ReplayProgress(total: 450_000, start: start)
        let none = progress.line(after: 60_000, now: start + .seconds(3))
        #expect(none == nil)
        let first = progress.line(after: 50_000, now: start + .seconds(5))
        #expect(first == "    110000 of 450000 transactions: 5.00 s since the last line")
        // A step past two marks (200,000 and 300,000) prints once, timed from the previous line…
        let second = progress.line(after: 200_000, now: start + .seconds(12))
        #expect(second == "    310000 of 450000 transactions: 7.00 s since the last line")
        // …and the next line waits for 400,000.
        let early = progress.line(after: 60_000, now: start + .seconds(14))
        #expect(early == nil)
        // The last stretch prints nothing: the round's total line follows it.
        let last = progress.line(after: 80_000, now: start + .seconds(17))
        #expect(last == nil)
        #expect(progress.done == 450_000)
    }
}
