import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerAPI
import LedgerCore
import PeerNetwork

/// A throwaway consortium on this machine's loopback for the demo and tests: member and validator
/// keys, genesis, the consortium CA and node certificates, node configurations on free ports, and
/// `scf node start` processes it starts, kills and restarts.
final class LocalConsortium: @unchecked Sendable {
    let directory: String
    let executable: String
    let genesis: Genesis
    let suite: any CryptoSuite
    let memberKeys: [MemberID: any SigningKey]
    let apiPorts: [Int]
    private var processes: [Int: Process] = [:]
    private var nonces: [MemberID: UInt64] = [:]
    /// The highest block a submission was answered from (see `submit`).
    private var lastCommitted: Height?

    static let members: [(MemberID, String, Roles, String)] = [
        ("operator", "SCF Consortium Operations Co., Ltd", [.operator_], "91310000MA1K000006"),
        ("core-enterprise", "Huaxia Heavy Industries Co., Ltd", [.coreEnterprise], "913100001322000012"),
        ("bank-a", "First Commercial Bank Shanghai Branch", [.bank, .invoiceVerifier], "91310000MA1B00002P"),
        ("bank-b", "Second Merchants Bank Shanghai Branch", [.bank], "91310000MA1B00003T"),
        ("tier1-supplier", "Tier-1 Components Co., Ltd", [.supplier], "91320500MA1T10004A"),
        ("tier2-supplier", "Tier-2 Castings Co., Ltd", [.supplier], "91320500MA1T200055"),
        ("tier3-supplier", "Tier-3 Fasteners Workshop", [.supplier], "92320500MA1T30006W"),
    ]
    static let validatorOwners: [MemberID] = ["core-enterprise", "bank-a", "bank-b", "tier1-supplier"]

    init(directory: String, suite: any CryptoSuite, genesisDate: BusinessDate) throws {
        self.directory = directory
        self.suite = suite
        executable = LocalConsortium.ownExecutable()
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        func newKey(_ file: String) throws -> any SigningKey {
            var generator = SystemRandomNumberGenerator()
            let privateKey = try suite.privateKey(seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
            let key = try suite.signingKey(privateKey)
            try Files.write(try Files.encodeJSON(KeyFile(suite: suite.id, privateKey: privateKey.rawRepresentation.hexString, publicKey: key.publicKey)),
                            to: path(file), secret: true, overwrite: true)
            return key
        }
        var keys: [MemberID: any SigningKey] = [:]
        var members: [Member] = []
        for (id, name, roles, code) in Self.members {
            let key = try newKey("keys/\(id).key")
            keys[id] = key
            members.append(Member(id: id, legalName: name, creditCode: UnifiedSocialCreditCode(code)!, roles: roles, publicKey: key.publicKey))
        }
        var validators: [Validator] = []
        for (index, owner) in Self.validatorOwners.enumerated() {
            validators.append(Validator(name: "node-\(index)", member: owner, publicKey: try newKey("keys/node-\(index).key").publicKey))
        }
        memberKeys = keys
        genesis = Genesis(chainID: "scf-demo", cryptoSuite: suite.id, genesisTime: ConsensusTime(startOf: genesisDate, utcOffsetMinutes: 480),
                          members: members, validators: validators,
                          consensus: ConsensusParameters(viewChangeTimeoutMilliseconds: 1_000, maxViewChangeTimeoutMilliseconds: 8_000))
        try Files.write(try Files.encodeJSON(genesis), to: path("genesis.json"), overwrite: true)
        try FileManager.default.createDirectory(atPath: path("tls"), withIntermediateDirectories: true)
        let ca = try ConsortiumCA.generate()
        let ports = try LocalConsortium.freePorts(8)
        let peerPorts = Array(ports[0..<4])
        apiPorts = Array(ports[4..<8])
        for index in 0..<4 {
            let name = "node-\(index)"
            let credentials = try ca.issueNodeCredentials(validatorName: name)
            try credentials.write(certificateFile: path("tls/\(name).crt"), privateKeyFile: path("tls/\(name).key"), caCertificateFile: path("tls/ca.crt"))
            chmod(path("tls/\(name).key"), 0o600)
            var peers: [String: String] = [:]
            for other in 0..<4 where other != index { peers["node-\(other)"] = "127.0.0.1:\(peerPorts[other])" }
            let config = NodeConfig(validator: name, genesis: "genesis.json", dataDirectory: "data/\(name)", consensusKey: "keys/\(name).key",
                                    listen: "127.0.0.1:\(peerPorts[index])", api: "127.0.0.1:\(apiPorts[index])", peers: peers,
                                    tls: .init(certificate: "tls/\(name).crt", privateKey: "tls/\(name).key", ca: "tls/ca.crt"))
            try Files.write(try Files.encodeJSON(config), to: path("\(name).json"), overwrite: true)
        }
        try Files.write(Data("0".utf8), to: path("clock-offset"), overwrite: true)
    }

    /// Starts node `index` (`scf node start`), its log in logs/node-N.log.
    func start(_ index: Int) throws {
        try FileManager.default.createDirectory(atPath: (directory as NSString).appendingPathComponent("logs"), withIntermediateDirectories: true)
        let log = (directory as NSString).appendingPathComponent("logs/node-\(index).log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["node", "start", "--config", (directory as NSString).appendingPathComponent("node-\(index).json"),
                             "--clock-offset-file", (directory as NSString).appendingPathComponent("clock-offset")]
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        processes[index] = process
    }

    /// kill -9: no chance to flush or say goodbye.
    func kill(_ index: Int) {
        guard let process = processes.removeValue(forKey: index) else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then wait: the node stops cleanly (and seals its ledger, DECISIONS 47).
    func stop(_ index: Int) {
        guard let process = processes.removeValue(forKey: index) else { return }
        process.terminate()
        process.waitUntilExit()
    }

    func stopAll() {
        for (_, process) in processes { process.terminate() }
        for (_, process) in processes { process.waitUntilExit() }
        processes = [:]
    }

    /// Moves every node's consensus clock forward by this many milliseconds from now on.
    func setClockOffset(milliseconds: Int64) throws {
        try Files.write(Data(String(milliseconds).utf8), to: (directory as NSString).appendingPathComponent("clock-offset"), overwrite: true)
    }

    // MARK: Client

    func url(_ index: Int, _ path: String) -> URL { URL(string: "http://127.0.0.1:\(apiPorts[index])\(path)")! }

    func get<T: Decodable>(_ type: T.Type, node index: Int, _ path: String) async throws -> T {
        let (data, _) = try await URLSession.shared.data(from: url(index, path))
        return try JSONDecoder().decode(T.self, from: data)
    }

    func status(_ index: Int) async throws -> StatusView { try await get(StatusView.self, node: index, "/v1/status") }

    /// Signs `operation` as `signer` with its next nonce and submits it to node `index`, waiting for the outcome.
    func submit(_ signer: MemberID, _ operation: LedgerOperation, to index: Int) async throws -> (SignedTransaction, TransactionView) {
        // Read your writes: a node answers on the state it has executed, so wait until this one
        // holds the block of the last commit seen here (usually at once) before it is asked to
        // admit what may depend on it. (A node that is a block behind admits such a transaction
        // anyway and lets execution decide, but only for blocks it has been sent already.)
        if let seen = lastCommitted { try await waitForHeight(index, seen, seconds: 30) }
        let nonce = nonces[signer, default: 0] + 1
        nonces[signer] = nonce
        let transaction = try SignedTransaction.sign(TransactionBody(chainID: genesis.chainID, signer: signer, nonce: nonce, operation: operation),
                                                     with: memberKeys[signer]!, suite: suite)
        var request = URLRequest(url: url(index, "/v1/transactions?wait=true&timeout=60"))
        request.timeoutInterval = 120
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONEncoder().encode(SubmitRequest(transaction: transaction.wireBytes.hexString))
        let (data, _) = try await URLSession.shared.data(for: request)
        guard let view = try? JSONDecoder().decode(TransactionView.self, from: data) else {
            throw CLIError("node-\(index) answered: \(String(decoding: data, as: UTF8.self))")
        }
        if let height = view.height { lastCommitted = max(lastCommitted ?? height, height) }
        return (transaction, view)
    }

    /// Waits until `index` answers with `peers` peers connected (or `seconds` pass).
    func waitUntilReady(_ index: Int, peers: Int = 3, seconds: Double = 90) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let status = try? await status(index), status.peersConnected.count >= peers { return }
            // A node that stopped (a port taken, a bad file) will not come up: say so now.
            if let process = processes[index], !process.isRunning {
                throw CLIError("node-\(index) exited with status \(process.terminationStatus) while starting; \(logTail(index))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CLIError("node-\(index) did not come up in \(Int(seconds)) s; \(logTail(index))")
    }

    /// "the end of <log>:" and its last lines.
    func logTail(_ index: Int) -> String {
        let log = (directory as NSString).appendingPathComponent("logs/node-\(index).log")
        let tail = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").suffix(15).joined(separator: "\n") ?? "(no log)"
        return "the end of \(log):\n\(tail)"
    }

    /// Waits until node `index` has reached `height`.
    func waitForHeight(_ index: Int, _ height: Height, seconds: Double = 60) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let status = try? await status(index), status.height >= height { return }
            if let process = processes[index], !process.isRunning {
                throw CLIError("node-\(index) exited with status \(process.terminationStatus) before reaching height \(height); \(logTail(index))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CLIError("node-\(index) did not reach height \(height) in \(Int(seconds)) s; see \(directory)/logs/node-\(index).log")
    }

    // MARK: Helpers

    static func ownExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// `freePorts` draws several at once, all different: each is free when checked, and drawing
    /// them one by one could give the same port twice (two nodes then race for it, and one never
    /// comes up: about one cluster in 500).
    static func freePorts(_ count: Int) throws -> [Int] {
        var ports: [Int] = []
        var attempts = 0
        while ports.count < count {
            let port = try freePort()
            if !ports.contains(port) { ports.append(port) }
            attempts += 1
            guard attempts < count * 50 else { throw CLIError("cannot find \(count) different free ports on 127.0.0.1") }
        }
        return ports
    }

    /// A TCP port free on 127.0.0.1 right now, below the kernel's range of ephemeral ports
    /// (`/proc/sys/net/ipv4/ip_local_port_range`, 32768-60999 by default): a port the kernel hands
    /// out for `bind(0)` comes from that range, which is also where every outgoing connection's
    /// source port comes from, so between this check and the node's own bind a connection of
    /// another test or node could take it (a node that then cannot listen never comes up). Ports
    /// are drawn at random from 20000 up to that range, each tried with a bind; if the range starts
    /// too low for that, the kernel picks.
    static func freePort() throws -> Int {
        let low = ephemeralPortRangeStart()
        if low >= 21_000 {
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<200 {
                let port = Int.random(in: 20_000..<low, using: &generator)
                if try bindable(port) != nil { return port }
            }
        }
        guard let port = try bindable(0) else { throw CLIError("cannot bind a socket on 127.0.0.1 to find a free port") }
        return port
    }

    /// The first port of the kernel's ephemeral range (32768 when it cannot be read).
    static func ephemeralPortRangeStart() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
              let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first, let low = Int(first) else { return 32_768 }
        return low
    }

    /// Binds a socket to `port` on 127.0.0.1 (0: one the kernel picks) and closes it; the port
    /// bound, or nil if it is taken.
    static func bindable(_ port: Int) throws -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CLIError("cannot open a socket to find a free port") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { return nil }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
