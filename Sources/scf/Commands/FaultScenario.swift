import Foundation
import LedgerAPI
import LedgerCore
import LedgerTestKit

/// The fault harness's phases. Each phase injects its fault under load, heals, stops the arrivals
/// until every submitted transaction is settled, and then checks the cluster: equal head hashes,
/// every transaction the API reported committed present exactly once (at the reported height) in
/// every validator's ledger file, `scf ledger verify` on every validator's data, peak resident
/// memory under the bound, and the phase's own expectation (progress, or none during a 2|2 split).
struct FaultScenario {
    enum Phase: String, CaseIterable {
        case baseline, lossAndDelay = "loss+delay", isolatePrimary = "isolate-primary", split = "split-2|2", killRandom = "kill-9-random",
             killDuringWrite = "kill-9-mid-write", diskFull = "disk-full", skewWithin = "skew-within", skewBeyond = "skew-beyond"
    }

    struct Result {
        var phase: String
        var fault = ""
        var seconds = 0.0
        var figures = FaultLoad.Figures()
        var lost = 0
        var duplicated = 0
        var headsEqual = false
        var height: UInt64 = 0
        var verified = 0
        var peakKiB = 0
        var notes: [String] = []
        var problems: [String] = []
        var passed: Bool { problems.isEmpty }
    }

    let cluster: FaultCluster
    let load: FaultLoad
    let long: Bool
    var random: SimulationRandom
    let diskNode: Int
    let memoryBoundKiB: Int
    let rate: Double
    var results: [Result] = []
    var skewed: Int?
    let started = Date()

    init(cluster: FaultCluster, load: FaultLoad, long: Bool, random: SimulationRandom, diskNode: Int, memoryBoundKiB: Int, rate: Double) {
        self.cluster = cluster
        self.load = load
        self.long = long
        self.random = random
        self.diskNode = diskNode
        self.memoryBoundKiB = memoryBoundKiB
        self.rate = rate
    }

    /// How long each fault lasts.
    var window: Double { long ? 60 : 10 }
    var nodes: [Int] { Array(cluster.nodes) }

    func say(_ text: String) {
        let elapsed = Int(Date().timeIntervalSince(started))
        FileHandle.standardOutput.write(Data(String(format: "[%02d:%02d] %@\n", elapsed / 60, elapsed % 60, text).utf8))
    }

    mutating func run() async throws -> Bool {
        say("validators \(cluster.layout.nodes.joined(separator: ", ")); load \(Int(rate)) tx/s open loop over \(cluster.layout.signers) signers; "
            + "fault window \(Int(window)) s; memory bound \(memoryBoundKiB / 1024) MiB; netem \(cluster.hasNetem ? "available" : "not in this kernel (nftables + tbf instead)")")
        for index in nodes { try cluster.start(index) }
        for index in nodes {
            guard await cluster.waitUntilAnswering(index, seconds: 120) else {
                throw CLIError("node-\(index) did not answer in 120 s; see \(cluster.path("logs/node-\(index).log"))")
            }
        }
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, !(await cluster.statuses().allSatisfy({ ($0?.peersConnected.count ?? 0) == 3 })) {
            try await Task.sleep(for: .milliseconds(200))
        }
        say("cluster up: 4 validators connected")
        load.start(rate: rate)
        for (number, phase) in Phase.allCases.enumerated() {
            say("phase \(number + 1) \(phase.rawValue): start")
            let result = await run(phase, number: number)
            results.append(result)
            say("phase \(number + 1) \(phase.rawValue): \(result.passed ? "ok" : "FAILED: " + result.problems.joined(separator: "; "))")
        }
        results.append(await finish())
        printTable()
        return results.allSatisfy(\.passed)
    }

    // MARK: One phase

    mutating func run(_ phase: Phase, number: Int) async -> Result {
        var result = Result(phase: phase.rawValue)
        let begun = Date()
        load.begin(phase: number)
        do {
            try await inject(phase, into: &result)
        } catch {
            result.problems.append("injecting the fault failed: \(error)")
        }
        cluster.healNetwork()
        load.pause()
        for index in nodes where !cluster.isRunning(index) {
            result.problems.append("node-\(index) exited on its own; see \(cluster.path("logs/node-\(index).log")); restarted")
            try? cluster.start(index)
        }
        if !(await load.drain(seconds: long ? 300 : 150)) {
            result.problems.append("\(load.figures(phase: number).unsettled) transactions still unsettled after healing")
        }
        await check(into: &result)
        result.figures = load.figures(phase: number)
        if result.figures.refused > 0 {
            result.problems.append("\(result.figures.refused) valid transactions refused, e.g. \(result.figures.refusals[0])")
        }
        result.seconds = Date().timeIntervalSince(begun)
        return result
    }

    func sleep(_ seconds: Double) async {
        try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
    }

    /// The highest head among `among` that answer.
    func height(_ among: [Int]) async -> UInt64 {
        var best: UInt64 = 0
        for index in among { if let status = await cluster.status(index) { best = max(best, status.height.value) } }
        return best
    }

    func currentPrimary() async -> Int? {
        var votes: [Int: Int] = [:]
        for status in await cluster.statuses() {
            if let status, let index = Int(status.primary.dropFirst("node-".count)) { votes[index, default: 0] += 1 }
        }
        return votes.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key
    }

    func pick(_ candidates: [Int], _ random: inout SimulationRandom) -> Int {
        candidates[Int(random.below(UInt64(candidates.count)))]
    }

    mutating func expectProgress(_ among: [Int], during seconds: Double, into result: inout Result, what: String) async {
        let before = await height(among)
        await sleep(seconds)
        let after = await height(among)
        result.notes.append("\(what): height \(before) → \(after)")
        if after <= before { result.problems.append("no block committed \(what)") }
    }

    mutating func inject(_ phase: Phase, into result: inout Result) async throws {
        switch phase {
        case .baseline:
            result.fault = "none"
            await expectProgress(nodes, during: long ? 20 : 8, into: &result, what: "without faults")

        case .lossAndDelay:
            result.fault = try cluster.degrade(lossPercent: 5, delayMilliseconds: 40, jitterMilliseconds: 20)
            await expectProgress(nodes, during: window, into: &result, what: "with loss and delay")

        case .isolatePrimary:
            guard let primary = await currentPrimary() else { throw CLIError("no validator answered with its primary") }
            let others = nodes.filter { $0 != primary }
            for other in others { try cluster.cut(primary, other) }
            result.fault = "node-\(primary) (primary) cut off"
            await expectProgress(others, during: window, into: &result, what: "without the old primary")
            if let now = await currentPrimary() { result.notes.append("primary after: node-\(now)") }

        case .split:
            let partner = 1 + Int(random.below(3))
            let left = [0, partner], right = nodes.filter { !left.contains($0) }
            for a in left { for b in right { try cluster.cut(a, b) } }
            result.fault = "{\(left.map(String.init).joined(separator: ","))}|{\(right.map(String.init).joined(separator: ","))}"
            await sleep(3)   // blocks whose votes were already on the wire may still land
            let frozen = await cluster.statuses().map { $0?.height.value }
            await sleep(max(3, window - 3))
            let later = await cluster.statuses().map { $0?.height.value }
            result.notes.append("heights during the split: \(frozen.map { $0.map(String.init) ?? "-" }) → \(later.map { $0.map(String.init) ?? "-" })")
            // A validator may still fetch, from its own side, a block certified before the split;
            // no block may be committed above the highest one that existed when the split began.
            if (later.compactMap { $0 }.max() ?? 0) > (frozen.compactMap { $0 }.max() ?? 0) {
                result.problems.append("a block was committed while the validators were split 2|2 (no quorum on either side)")
            }
            cluster.healNetwork()
            let atHeal = await height(nodes)
            let deadline = Date().addingTimeInterval(long ? 120 : 60)
            while Date() < deadline, await height(nodes) <= atHeal { await sleep(0.2) }
            let after = await height(nodes)
            result.notes.append("after healing: height \(atHeal) → \(after)")
            if after <= atHeal { result.problems.append("no progress within \(long ? 120 : 60) s after healing the split") }

        case .killRandom:
            let interval = 3.0
            var kills = 0
            let before = await height(nodes)
            let end = Date().addingTimeInterval(window)
            while Date() < end {
                let victim = pick(nodes, &random)
                cluster.kill(victim)
                kills += 1
                await sleep(interval)
                try cluster.start(victim)
                _ = await cluster.waitUntilAnswering(victim, seconds: 60)
                await sleep(1)
            }
            var after = await height(nodes)
            result.fault = "\(kills)× kill -9, one every \(Int(interval + 1)) s"
            result.notes.append("height \(before) → \(after)")
            if after <= before {
                // With one node down at a time a quorum remains, but each killed primary costs a
                // view change whose timeout doubles with consecutive changes, so a short window can
                // pass without a commit. What must hold is bounded recovery once the kills stop.
                let stalledAt = Date()
                let deadline = stalledAt.addingTimeInterval(long ? 120 : 60)
                while Date() < deadline, await height(nodes) <= before { await sleep(0.2) }
                after = await height(nodes)
                if after <= before {
                    result.problems.append("no block committed while nodes were killed one at a time, nor within \(long ? 120 : 60) s after the last restart")
                } else {
                    result.notes.append("no commit during the kills (view changes); progress \(String(format: "%.1f", Date().timeIntervalSince(stalledAt))) s after the last restart: height → \(after)")
                }
            }

        case .killDuringWrite:
            var kills = 0, midCommit = 0
            let before = await height(nodes)
            let end = Date().addingTimeInterval(window)
            while Date() < end {
                let victim = pick(nodes, &random)
                // Kill right after the victim's head moves, while the next block is being written.
                if let start = await cluster.status(victim, timeout: 1)?.height {
                    let watch = Date().addingTimeInterval(3)
                    while Date() < watch, let now = await cluster.status(victim, timeout: 1)?.height, now == start {
                        try? await Task.sleep(for: .milliseconds(5))
                    }
                    if Date() < watch { midCommit += 1 }
                }
                try? await Task.sleep(for: .milliseconds(Int(random.below(15))))
                cluster.kill(victim)
                kills += 1
                try cluster.start(victim)
                _ = await cluster.waitUntilAnswering(victim, seconds: 60)
                await sleep(0.5 + Double(random.below(1000)) / 1000)
            }
            let after = await height(nodes)
            result.fault = "\(kills)× kill -9 as blocks commit"
            result.notes.append("\(midCommit) of \(kills) kills within 15 ms of the victim committing a block; height \(before) → \(after)")
            if after <= before { result.problems.append("no block committed") }

        case .diskFull:
            let victim = diskNode
            let ballast = cluster.dataDirectory(victim) + "/harness-ballast"
            let filled = try fill(ballast)
            result.fault = "node-\(victim) data tmpfs full (\(filled / 1024) KiB ballast)"
            let others = nodes.filter { $0 != victim }
            let before = await height(others)
            var halted: String?
            let end = Date().addingTimeInterval(window)
            while Date() < end {
                if halted == nil, let status = await cluster.status(victim, timeout: 1), let reason = status.halted { halted = reason }
                if halted == nil, !cluster.isRunning(victim) { halted = "process exited" }
                await sleep(0.5)
            }
            let after = await height(others)
            result.notes.append("others: height \(before) → \(after)")
            if after <= before { result.problems.append("the other validators stopped committing") }
            if let halted { result.notes.append("node-\(victim) halted: \(halted)") } else {
                result.problems.append("node-\(victim) did not halt with its disk full")
            }
            try FileManager.default.removeItem(atPath: ballast)
            cluster.kill(victim, signal: SIGTERM)
            try cluster.start(victim)
            _ = await cluster.waitUntilAnswering(victim, seconds: 60)

        case .skewWithin, .skewBeyond:
            let bound = try skewBoundSeconds()
            if let skewed {
                cluster.kill(skewed, signal: SIGTERM)
                try cluster.start(skewed)
                _ = await cluster.waitUntilAnswering(skewed, seconds: 60)
                self.skewed = nil
            }
            // The skewed validator is the next primary; then the current primary is killed, so the
            // skewed one leads the new view and its proposals carry its clock.
            guard let primary = await currentPrimary() else { throw CLIError("no validator answered with its primary") }
            let victim = (primary + 1) % nodes.count
            let offset = phase == .skewWithin ? max(1, bound / 2) : bound * 6
            cluster.kill(victim, signal: SIGTERM)
            try cluster.start(victim, clockOffsetSeconds: offset)
            _ = await cluster.waitUntilAnswering(victim, seconds: 60)
            await sleep(2)
            let led = await makePrimary(victim)
            result.fault = "node-\(victim) clock +\(offset) s (bound \(bound) s)\(led ? ", made primary" : "")"
            let others = nodes.filter { $0 != victim }
            let before = await height(phase == .skewWithin ? nodes : others)
            var samples = 0, leading = 0
            var views: Set<UInt64> = []
            let end = Date().addingTimeInterval(window)
            while Date() < end {
                for status in await cluster.statuses() {
                    guard let status else { continue }
                    views.insert(status.view.value)
                    samples += 1
                    if status.primary == "node-\(victim)" { leading += 1 }
                }
                await sleep(0.5)
            }
            var after = await height(phase == .skewWithin ? nodes : others)
            var waitedBeyond = 0.0
            if phase == .skewBeyond, after <= before {
                // Deposing the skewed primary takes one view-change timeout, and the timeout has
                // doubled for every view that changed without a commit, here the ones `makePrimary`
                // forced (2, 4, 8, 16 s …, up to the genesis's cap): wait up to that cap for the
                // others to move on, and report how long it took.
                let started = Date()
                let cap = try Genesisfile.load(cluster.path("genesis.json")).0.consensus.maxViewChangeTimeoutMilliseconds
                let deadline = started.addingTimeInterval(Double(cap) / 1_000 + 5)
                while Date() < deadline, after <= before {
                    await sleep(0.5)
                    after = await height(others)
                }
                waitedBeyond = Date().timeIntervalSince(started)
            }
            result.notes.append("node-\(victim) was primary in \(leading) of \(samples) status samples; views \(views.min() ?? 0)-\(views.max() ?? 0); height \(before) → \(after)"
                                + (waitedBeyond > 0 ? " (the others moved on \(Int(waitedBeyond)) s after the \(Int(window)) s window: the view-change timeout had grown with the views forced before)" : ""))
            if after <= before { result.problems.append("no block committed with node-\(victim)'s clock \(offset) s ahead") }
            if phase == .skewWithin {
                skewed = victim   // stays skewed through the checks: it must keep up
            } else {
                cluster.kill(victim, signal: SIGTERM)
                try cluster.start(victim)
                _ = await cluster.waitUntilAnswering(victim, seconds: 60)
            }
        }
    }

    /// Kills the primary (kill -9, restarted at once) until `victim` leads the view; up to 3 times.
    func makePrimary(_ victim: Int) async -> Bool {
        for _ in 0..<3 {
            guard let primary = await currentPrimary() else { return false }
            if primary == victim { return true }
            cluster.kill(primary)
            try? cluster.start(primary)
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                if await currentPrimary() == victim { return true }
                await sleep(0.2)
            }
        }
        return await currentPrimary() == victim
    }

    func skewBoundSeconds() throws -> Int {
        let (genesis, _) = try Genesisfile.load(cluster.path("genesis.json"))
        return Int(genesis.consensus.maxClockSkewMilliseconds / 1000)
    }

    /// Takes all the free space of the file system holding `path`; returns the bytes taken.
    func fill(_ path: String) throws -> Int {
        let fd = open(path, O_CREAT | O_WRONLY, 0o600)
        guard fd >= 0 else { throw CLIError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var size = 0, chunk = 1 << 30
        while chunk >= 4096 {
            if posix_fallocate(fd, off_t(size), off_t(chunk)) == 0 { size += chunk } else { chunk /= 2 }
        }
        return size
    }

    // MARK: Checks

    /// Waits for every validator to answer with the same head; then the ledger files, verify, memory.
    mutating func check(into result: inout Result) async {
        let deadline = Date().addingTimeInterval(long ? 180 : 120)
        var last: [StatusView?] = []
        while Date() < deadline {
            last = await cluster.statuses()
            let heads = Set(last.map { $0?.headHash })
            if last.allSatisfy({ $0 != nil && $0!.halted == nil }), heads.count == 1 {
                result.headsEqual = true
                result.height = last[0]!.height.value
                break
            }
            await sleep(0.25)
        }
        if !result.headsEqual {
            result.problems.append("heads differ after healing: " + last.enumerated().map { index, status in
                "node-\(index) " + (status.map { "\($0.height) \($0.headHash.short)\($0.halted.map { " halted: \($0)" } ?? "")" } ?? "no answer")
            }.joined(separator: ", "))
        }
        checkLedgers(into: &result)
        verify(into: &result)
        result.peakKiB = cluster.takePeak()
        if result.peakKiB > memoryBoundKiB {
            result.problems.append("a validator's peak RSS \(result.peakKiB / 1024) MiB exceeded the \(memoryBoundKiB / 1024) MiB bound")
        }
    }

    /// Every transaction the API reported committed is in every validator's ledger exactly once, at
    /// the height the API reported; no transaction is committed twice.
    func checkLedgers(into result: inout Result) {
        let reported = load.reportedCommitted()
        var lost = Set<Hash>(), duplicated = Set<String>(), moved = Set<Hash>()
        for index in nodes {
            let file = cluster.dataDirectory(index) + "/ledger.sqlite"
            guard let output = try? cluster.command("/usr/bin/sqlite3", ["-readonly", "-batch", "-noheader", "-separator", " ", file,
                                                                         "SELECT lower(hex(id)), height FROM \"transaction\" WHERE status = 'committed';"]) else {
                result.problems.append("cannot read node-\(index)'s ledger file \(file) with sqlite3")
                continue
            }
            var heights: [String: [UInt64]] = [:]
            for line in output.split(separator: "\n") {
                let parts = line.split(separator: " ")
                guard parts.count == 2, let height = UInt64(parts[1]) else { continue }
                heights[String(parts[0]), default: []].append(height)
            }
            for (id, found) in heights where found.count > 1 { duplicated.insert(id) }
            for (id, height) in reported {
                guard let found = heights[id.hex] else { lost.insert(id); continue }
                if !found.contains(height.value) { moved.insert(id) }
            }
        }
        result.lost = lost.count
        result.duplicated = duplicated.count
        if !lost.isEmpty { result.problems.append("\(lost.count) transactions reported committed are missing from a ledger, e.g. \(lost.first!.hex)") }
        if !duplicated.isEmpty { result.problems.append("\(duplicated.count) transactions committed more than once") }
        if !moved.isEmpty { result.problems.append("\(moved.count) transactions are at another height than the API reported, e.g. \(moved.first!.hex)") }
    }

    /// `scf ledger verify` on every validator's data directory, all at once.
    func verify(into result: inout Result) {
        var running: [(Int, Process, Pipe)] = []
        for index in nodes {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: cluster.scf)
            process.arguments = ["ledger", "verify", "--data", cluster.dataDirectory(index), "--genesis", cluster.path("genesis.json"), "--json", "--single-core"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            do { try process.run() } catch {
                result.problems.append("cannot run scf ledger verify: \(error)")
                continue
            }
            running.append((index, process, pipe))
        }
        for (index, process, pipe) in running {
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            struct Report: Decodable { var valid: Bool; var headHeight: Height; var reason: String? }
            if process.terminationStatus == 0, let report = try? JSONDecoder().decode(Report.self, from: output), report.valid {
                result.verified += 1
            } else {
                result.problems.append("scf ledger verify failed on node-\(index): \(String(decoding: output.prefix(400), as: UTF8.self))")
            }
        }
    }

    /// Stops the load and every validator, then checks their files once more.
    mutating func finish() async -> Result {
        var result = Result(phase: "final (stopped)")
        result.fault = "SIGTERM all"
        let begun = Date()
        await load.stop()
        let peak = cluster.takePeak()
        cluster.stopAll()
        checkLedgers(into: &result)
        verify(into: &result)
        var heads: Set<String> = []
        for index in nodes {
            if let output = try? cluster.command("/usr/bin/sqlite3", ["-readonly", "-batch", "-noheader", cluster.dataDirectory(index) + "/ledger.sqlite",
                                                                      "SELECT tipHeight || ' ' || lower(hex(tipHash)) FROM meta;"]) {
                heads.insert(output.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        result.headsEqual = heads.count == 1
        result.height = heads.first.flatMap { UInt64($0.split(separator: " ").first ?? "") } ?? 0
        if !result.headsEqual { result.problems.append("the stopped validators' files end at different heads: \(heads.sorted())") }
        result.peakKiB = peak
        result.figures.committed = load.reportedCommitted().count
        result.figures.offered = load.totalOffered
        result.seconds = Date().timeIntervalSince(begun)
        return result
    }

    // MARK: Report

    func printTable() {
        func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text : text + String(repeating: " ", count: width - text.count) }
        func lpad(_ text: String, _ width: Int) -> String { text.count >= width ? text : String(repeating: " ", count: width - text.count) + text }
        var lines = ["", pad("#", 3) + pad("phase", 18) + pad("fault", 48) + lpad("secs", 6) + lpad("tx sub", 8) + lpad("tx com", 8) + lpad("lost", 6)
                     + lpad("dup", 5) + lpad("heads", 7) + lpad("height", 8) + lpad("verify", 8) + lpad("peak MiB", 10) + "  verdict"]
        lines.append(String(repeating: "-", count: lines[1].count + 2))
        for (number, result) in results.enumerated() {
            let fault = result.fault.count > 46 ? String(result.fault.prefix(45)) + "…" : result.fault
            lines.append(pad(number == results.count - 1 ? "" : "\(number + 1)", 3) + pad(result.phase, 18) + pad(fault, 48)
                         + lpad(String(format: "%.0f", result.seconds), 6) + lpad("\(result.figures.offered)", 8) + lpad("\(result.figures.committed)", 8)
                         + lpad("\(result.lost)", 6) + lpad("\(result.duplicated)", 5) + lpad(result.headsEqual ? "equal" : "DIFF", 7)
                         + lpad("\(result.height)", 8) + lpad("\(result.verified)/4", 8) + lpad("\(result.peakKiB / 1024)", 10)
                         + "  " + (result.passed ? "ok" : "FAIL"))
        }
        lines.append("")
        for (number, result) in results.enumerated() {
            let label = number == results.count - 1 ? result.phase : "\(number + 1) \(result.phase)"
            if !result.fault.isEmpty && result.fault.count > 46 { lines.append("\(label): fault: \(result.fault)") }
            for note in result.notes { lines.append("\(label): \(note)") }
            for problem in result.problems { lines.append("\(label): FAILED: \(problem)") }
        }
        let final = results.last!
        let lost = results.map(\.lost).max() ?? 0, duplicated = results.map(\.duplicated).max() ?? 0
        lines.append("")
        lines.append("total: \(final.figures.offered) transactions offered, \(final.figures.committed) reported committed through the faults, "
                     + "\(lost) lost, \(duplicated) duplicated; \(load.figures(phase: -1).posts) submissions (resubmissions included); "
                     + "\(results.filter(\.passed).count)/\(results.count) verdicts ok")
        FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }
}
