import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerAPI
import LedgerCore
import LedgerNode
import LedgerTestKit
import PeerNetwork

/// The fault harness's Swift half (`Tests/Fault/harness.sh` makes the network namespaces and calls
/// it): `setup` writes a consortium whose validators listen on the harness's addresses, `run`
/// starts the validators inside their namespaces, drives the load, injects the faults and checks.
struct FaultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fault",
        abstract: "Fault harness on real validator processes in network namespaces (see Tests/Fault/harness.sh).",
        shouldDisplay: false,
        subcommands: [FaultSetup.self, FaultRun.self]
    )
}

/// What `fault setup` leaves in the work directory for `fault run`.
struct FaultLayout: Codable {
    var nodes: [String]
    var peerPort: Int
    var apiPort: Int
    var signers: Int
}

enum FaultKeys {
    /// Load signers' keys come from their names, so `run` needs no key files for them.
    static func key(_ name: String, suite: any CryptoSuite) throws -> any SigningKey {
        try suite.signingKey(try suite.privateKey(seed: suite.hash(Array("scf-fault-harness/\(name)".utf8)).bytes))
    }

    static func creditCode(_ prefix: String, _ number: Int) -> UnifiedSocialCreditCode {
        let body = Array((prefix + String(format: "%09d", number)).utf8)
        return UnifiedSocialCreditCode(String(decoding: body + [UnifiedSocialCreditCode.checkCharacter(for: body[0..<17])!], as: UTF8.self))!
    }
}

struct FaultSetup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "Write genesis, keys, the CA, TLS certificates and node configurations for the fault harness."
    )
    @Option(help: "The work directory.") var dir: String
    @Option(help: "A validator's IP address (four, in order).") var node: [String]
    @Option(help: "Load signers (suppliers in genesis).") var signers = 48
    @Option(help: "Port validators listen on for each other.") var peerPort = 7000
    @Option(help: "Port of each validator's client API.") var apiPort = 8000

    func run() async throws {
        try await reportingErrors {
            guard node.count == 4 else { throw CLIError("give four --node addresses, one per validator") }
            let suite = Ed25519SHA256Suite()
            func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }
            let core = Member(id: "core-enterprise", legalName: "Huaxia Heavy Industries Co., Ltd", creditCode: UnifiedSocialCreditCode("913100001322000012")!,
                              roles: [.coreEnterprise], publicKey: try FaultKeys.key("core-enterprise", suite: suite).publicKey)
            let operatorMember = Member(id: "operator", legalName: "SCF Consortium Operations Co., Ltd", creditCode: UnifiedSocialCreditCode("91310000MA1K000006")!,
                                        roles: [.operator_], publicKey: try FaultKeys.key("operator", suite: suite).publicKey)
            var members = [operatorMember, core]
            for number in 0..<signers {
                members.append(Member(id: MemberID("load-\(number)")!, legalName: "Load Supplier \(number) Ltd", creditCode: FaultKeys.creditCode("91320000", number),
                                      roles: [.supplier], publicKey: try FaultKeys.key("load-\(number)", suite: suite).publicKey))
            }
            var validators: [Validator] = []
            for index in 0..<4 {
                var generator = SystemRandomNumberGenerator()
                let privateKey = try suite.privateKey(seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
                let key = try suite.signingKey(privateKey)
                try Files.write(try Files.encodeJSON(KeyFile(suite: suite.id, privateKey: privateKey.rawRepresentation.hexString, publicKey: key.publicKey)),
                                to: path("keys/node-\(index).key"), secret: true, overwrite: true)
                validators.append(Validator(name: "node-\(index)", member: index % 2 == 0 ? "core-enterprise" : "operator", publicKey: key.publicKey))
            }
            let today = ValidatorNode.wallClock().businessDate(utcOffsetMinutes: 480)
            let genesis = Genesis(chainID: "scf-fault", cryptoSuite: suite.id, genesisTime: ConsensusTime(startOf: today.adding(days: -1), utcOffsetMinutes: 480),
                                  members: members, validators: validators,
                                  consensus: ConsensusParameters(viewChangeTimeoutMilliseconds: 1_000, maxViewChangeTimeoutMilliseconds: 8_000))
            try Files.write(try Files.encodeJSON(genesis), to: path("genesis.json"), overwrite: true)
            try FileManager.default.createDirectory(atPath: path("tls"), withIntermediateDirectories: true)
            let ca = try ConsortiumCA.generate()
            for index in 0..<4 {
                let name = "node-\(index)"
                let credentials = try ca.issueNodeCredentials(validatorName: name, ipAddresses: [node[index]])
                try credentials.write(certificateFile: path("tls/\(name).crt"), privateKeyFile: path("tls/\(name).key"), caCertificateFile: path("tls/ca.crt"))
                var peers: [String: String] = [:]
                for other in 0..<4 where other != index { peers["node-\(other)"] = "\(node[other]):\(peerPort)" }
                let config = NodeConfig(validator: name, genesis: "genesis.json", dataDirectory: "data/\(name)", consensusKey: "keys/\(name).key",
                                        listen: "\(node[index]):\(peerPort)", api: "\(node[index]):\(apiPort)", peers: peers,
                                        tls: .init(certificate: "tls/\(name).crt", privateKey: "tls/\(name).key", ca: "tls/ca.crt"))
                try Files.write(try Files.encodeJSON(config), to: path("\(name).json"), overwrite: true)
            }
            try Files.write(try Files.encodeJSON(FaultLayout(nodes: node, peerPort: peerPort, apiPort: apiPort, signers: signers)),
                            to: path("layout.json"), overwrite: true)
            print("wrote the fault harness consortium in \(dir)")
        }
    }
}

struct FaultRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Start the validators in their namespaces, drive load, inject each fault, heal and check; print a table.",
        discussion: "Run inside the harness's client namespace, as root, by Tests/Fault/harness.sh. Exits 1 if any phase fails."
    )
    @Option(help: "The work directory written by `fault setup`.") var dir: String
    @Option(help: "short (CI, a few minutes) or long.") var mode = "short"
    @Option(help: "Seed for every random choice of the run (which node, when).") var seed: UInt64 = 1
    @Option(help: "The scf executable the validators run.") var scf: String
    @Option(help: "Prefix of the harness's namespaces (validator i is in PREFIXnI).") var netnsPrefix = "scfh-"
    @Option(help: "The faketime wrapper (Debian's faketime package), for the clock-skew phases.") var faketime = "/usr/bin/faketime"
    @Option(help: "The validator whose data directory is a small tmpfs of its own.") var diskNode = 3
    @Option(help: "Offered load, transactions per second (open loop).") var rate: Double?
    @Option(help: "Peak resident memory bound per validator process, MiB.") var memoryBoundMib = 512

    func run() async throws {
        try await reportingErrors {
            let layout = try Files.decodeJSON(FaultLayout.self, from: (dir as NSString).appendingPathComponent("layout.json"), what: "fault harness layout")
            let long = mode == "long"
            guard long || mode == "short" else { throw CLIError("--mode is short or long") }
            let cluster = FaultCluster(directory: dir, scf: scf, prefix: netnsPrefix, faketime: faketime, layout: layout)
            let load = try FaultLoad(cluster: cluster, signers: layout.signers)
            var harness = FaultScenario(cluster: cluster, load: load, long: long, random: SimulationRandom(seed: seed),
                                        diskNode: diskNode, memoryBoundKiB: memoryBoundMib * 1024, rate: rate ?? (long ? 30 : 20))
            defer { cluster.stopAll() }
            let passed = try await harness.run()
            if !passed { throw ExitCode(1) }
        }
    }
}

/// The four validator processes, their namespaces, the network faults and the client API.
final class FaultCluster: @unchecked Sendable {
    let directory: String
    let scf: String
    let prefix: String
    let faketime: String
    let layout: FaultLayout
    let session: URLSession
    private let lock = NSLock()
    private var processes: [Int: Process] = [:]
    private var peakKiB: [Int: Int] = [:]
    private var blackholes: [(Int, Int)] = []
    private var shaped: Set<Int> = []
    private var nftables: Set<Int> = []

    init(directory: String, scf: String, prefix: String, faketime: String, layout: FaultLayout) {
        self.directory = directory
        self.scf = scf
        self.prefix = prefix
        self.faketime = faketime
        self.layout = layout
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 128
        configuration.timeoutIntervalForRequest = 20
        session = URLSession(configuration: configuration)
    }

    var nodes: Range<Int> { 0..<layout.nodes.count }
    func namespace(_ index: Int) -> String { "\(prefix)n\(index)" }
    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
    func dataDirectory(_ index: Int) -> String { path("data/node-\(index)") }

    // MARK: Processes

    /// Starts validator `index` in its namespace; with `clockOffsetSeconds`, under libfaketime.
    func start(_ index: Int, clockOffsetSeconds: Int? = nil) throws {
        try FileManager.default.createDirectory(atPath: path("logs"), withIntermediateDirectories: true)
        let log = path("logs/node-\(index).log")
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        handle.write(Data("---- harness: starting node-\(index)\(clockOffsetSeconds.map { " with its clock \($0) s off" } ?? "") at \(Date())\n".utf8))
        var arguments = ["netns", "exec", namespace(index)]
        if let offset = clockOffsetSeconds {
            // Through the faketime wrapper, not LD_PRELOAD alone: libfaketime's constructor calls
            // setenv("FAKETIME_SHARED") unless the wrapper set it, which moves `environ`, and Swift
            // then finds no command-line arguments (swiftlang/swift#76080). The wrapper forks: the
            // node is its child (`nodeProcess`). Timers keep the real monotonic clock.
            arguments += ["env", "FAKETIME_DONT_FAKE_MONOTONIC=1", faketime, "-f", "\(offset >= 0 ? "+" : "")\(offset)s"]
        }
        arguments += [scf, "node", "start", "--config", path("node-\(index).json")]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        try? handle.close()
        lock.withLock { processes[index] = process }
    }

    func isRunning(_ index: Int) -> Bool { lock.withLock { processes[index]?.isRunning ?? false } }

    /// The validator's own process id: the started process, or its child when faketime forked it.
    func nodeProcess(_ pid: Int32) -> Int32 {
        guard let command = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8), command.hasPrefix("faketime") else { return pid }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let child = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, Int32(fields[1]) == pid { return child }
        }
        return pid
    }

    /// Sends `signal` (kill -9 by default); after SIGTERM, kill -9 if it has not exited in 10 s.
    func kill(_ index: Int, signal: Int32 = SIGKILL) {
        sampleMemory()
        guard let process = lock.withLock({ processes.removeValue(forKey: index) }) else { return }
        let node = nodeProcess(process.processIdentifier)
        Foundation.kill(node, signal)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            Foundation.kill(node, SIGKILL)
            Foundation.kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }

    func stopAll() {
        healNetwork()
        for index in nodes { kill(index, signal: SIGTERM) }
    }

    /// Peak resident memory (VmHWM) of each running validator, kept as the maximum since `takePeak`.
    func sampleMemory() {
        let running = lock.withLock { processes.filter { $0.value.isRunning }.map { ($0.key, $0.value.processIdentifier) } }
        for (index, started) in running {
            let pid = nodeProcess(started)
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                  let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                  let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { continue }
            lock.withLock { peakKiB[index] = max(peakKiB[index] ?? 0, kib) }
        }
    }

    func takePeak() -> Int {
        sampleMemory()
        return lock.withLock {
            defer { peakKiB = [:] }
            return peakKiB.values.max() ?? 0
        }
    }

    // MARK: Network faults

    @discardableResult
    func command(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CLIError("\(executable) \(arguments.joined(separator: " ")) failed: \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return output
    }

    /// Cuts the link between two validators both ways: a blackhole route in each namespace.
    func cut(_ a: Int, _ b: Int) throws {
        try command("/usr/sbin/ip", ["-n", namespace(a), "route", "add", "blackhole", "\(layout.nodes[b])/32"])
        try command("/usr/sbin/ip", ["-n", namespace(b), "route", "add", "blackhole", "\(layout.nodes[a])/32"])
        lock.withLock { blackholes.append((a, b)) }
    }

    /// Whether this kernel has the netem queueing discipline (many VM kernels leave it out).
    lazy var hasNetem: Bool = {
        let probe = "\(prefix)probe"
        defer { _ = try? command("/usr/sbin/ip", ["netns", "del", probe]) }
        do {
            try command("/usr/sbin/ip", ["netns", "add", probe])
            try command("/usr/sbin/ip", ["-n", probe, "link", "set", "lo", "up"])
            try command("/usr/sbin/tc", ["-n", probe, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
            return true
        } catch {
            return false
        }
    }()

    /// Packet loss and delay on every validator's link. With netem: loss and jittered delay on
    /// egress. Without it: nftables drops that share of packets on ingress and a token bucket
    /// (tbf) slows egress, which queues and delays packets under load.
    func degrade(lossPercent: Int, delayMilliseconds: Int, jitterMilliseconds: Int) throws -> String {
        for index in nodes {
            if hasNetem {
                try command("/usr/sbin/tc", ["-n", namespace(index), "qdisc", "replace", "dev", "eth0", "root", "netem",
                                             "delay", "\(delayMilliseconds)ms", "\(jitterMilliseconds)ms", "loss", "\(lossPercent)%"])
            } else {
                try command("/usr/sbin/ip", ["netns", "exec", namespace(index), "nft",
                                             "add table inet scfh; add chain inet scfh input { type filter hook input priority 0; }; add rule inet scfh input numgen random mod 100 < \(lossPercent) drop"])
                lock.withLock { _ = nftables.insert(index) }
                try command("/usr/sbin/tc", ["-n", namespace(index), "qdisc", "replace", "dev", "eth0", "root", "tbf",
                                             "rate", "2mbit", "burst", "16kb", "latency", "\(delayMilliseconds * 5)ms"])
            }
            lock.withLock { _ = shaped.insert(index) }
        }
        return hasNetem ? "netem loss \(lossPercent)% delay \(delayMilliseconds)±\(jitterMilliseconds) ms"
                        : "nft drop \(lossPercent)% + tbf 2 Mbit/s (no netem in this kernel)"
    }

    /// Removes every partition, loss and shaping rule.
    func healNetwork() {
        let (cuts, queues, tables) = lock.withLock {
            defer { blackholes = []; shaped = []; nftables = [] }
            return (blackholes, shaped, nftables)
        }
        for (a, b) in cuts {
            _ = try? command("/usr/sbin/ip", ["-n", namespace(a), "route", "del", "blackhole", "\(layout.nodes[b])/32"])
            _ = try? command("/usr/sbin/ip", ["-n", namespace(b), "route", "del", "blackhole", "\(layout.nodes[a])/32"])
        }
        for index in queues.sorted() { _ = try? command("/usr/sbin/tc", ["-n", namespace(index), "qdisc", "del", "dev", "eth0", "root"]) }
        for index in tables.sorted() { _ = try? command("/usr/sbin/ip", ["netns", "exec", namespace(index), "nft", "delete table inet scfh"]) }
    }

    // MARK: Client API

    func url(_ index: Int, _ path: String) -> URL { URL(string: "http://\(layout.nodes[index]):\(layout.apiPort)\(path)")! }

    func status(_ index: Int, timeout: Double = 3) async -> StatusView? {
        var request = URLRequest(url: url(index, "/v1/status"))
        request.timeoutInterval = timeout
        guard let (data, _) = try? await session.data(for: request) else { return nil }
        return try? JSONDecoder().decode(StatusView.self, from: data)
    }

    func statuses() async -> [StatusView?] {
        await withTaskGroup(of: (Int, StatusView?).self) { group in
            for index in nodes { group.addTask { (index, await self.status(index)) } }
            var out = [StatusView?](repeating: nil, count: nodes.count)
            for await (index, status) in group { out[index] = status }
            return out
        }
    }

    func waitUntilAnswering(_ index: Int, seconds: Double = 60) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if await status(index, timeout: 1) != nil { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }
}
