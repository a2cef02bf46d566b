import ArgumentParser
import Consensus
import Foundation
import Hummingbird
import LedgerAPI
import LedgerCore
import LedgerNode
import LedgerStore
import PeerNetwork
import Synchronization

/// A node's configuration file (JSON). Relative paths are relative to the file's directory.
struct NodeConfig: Codable {
    struct TLS: Codable {
        var certificate: String
        var privateKey: String
        var ca: String
    }
    /// The validator's name in genesis.
    var validator: String
    var genesis: String
    var dataDirectory: String
    /// The validator's consensus key file (mode 0600).
    var consensusKey: String
    /// host:port for the other validators (TCP, mutual TLS).
    var listen: String
    /// host:port for the client API (HTTP/JSON).
    var api: String
    /// Every other validator's name and host:port.
    var peers: [String: String]
    var tls: TLS

    static func load(_ path: String) throws -> (NodeConfig, URL) {
        let config = try Files.decodeJSON(NodeConfig.self, from: path, what: "node configuration")
        return (config, URL(fileURLWithPath: path).deletingLastPathComponent())
    }

    static func resolve(_ path: String, against base: URL) -> String {
        path.hasPrefix("/") ? path : base.appendingPathComponent(path).standardizedFileURL.path
    }

    static func address(_ text: String, what: String) throws -> PeerAddress {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
            throw CLIError("\(what) \"\(text)\" must be host:port")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return PeerAddress(host: host, port: port)
    }
}

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run a validator node, write its configuration, or ask a running node.",
        subcommands: [Init.self, Start.self, Resync.self, NodeStatusCommand.self, NodeReceivableCommand.self, NodeFragmentsCommand.self, NodeBlockCommand.self]
    )

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a node's configuration file (and its consensus key, unless one exists).",
            discussion: """
            The TLS certificate comes from the consortium's CA: `scf network issue` makes it (see README,
            "Running a real consortium"). Paths are written relative to the configuration file.
            """
        )
        @Option(help: "Where to write the configuration.") var out: String
        @Option(help: "The validator's name in genesis.") var validator: String
        @Option(help: "The genesis file.") var genesis: String
        @Option(help: "The consensus key file (created if missing).") var key: String
        @Option(help: "Data directory.") var data: String
        @Option(help: "host:port to listen on for validators.") var listen: String
        @Option(help: "host:port for the client API (loopback unless you put a proxy or firewall in front of it).") var api = "127.0.0.1:8080"
        @Option(help: "Another validator as NAME=host:port (repeat for each).") var peer: [String] = []
        @Option(help: "Directory holding this node's TLS files (NAME.crt, NAME.key, ca.crt).") var tlsDir: String

        func run() async throws {
            try await reportingErrors {
                let (genesisValue, suite) = try Genesisfile.load(genesis)
                guard genesisValue.validatorSet.index(named: validator) != nil else {
                    throw CLIError("genesis has no validator named \(validator); its validators are \(genesisValue.validators.map(\.name).joined(separator: ", "))")
                }
                if !FileManager.default.fileExists(atPath: key) {
                    var generator = SystemRandomNumberGenerator()
                    let privateKey = try suite.privateKey(seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
                    let file = KeyFile(suite: suite.id, privateKey: privateKey.rawRepresentation.hexString,
                                       publicKey: try suite.signingKey(privateKey).publicKey)
                    try Files.write(try Files.encodeJSON(file), to: key, secret: true)
                    print("wrote a new consensus key to \(key); its public key must be this validator's key in genesis:\n  \(file.publicKey)")
                }
                // The node's TLS key never leaves this machine: make it and a request for the CA.
                let tlsKey = "\(tlsDir)/\(validator).key", request = "\(tlsDir)/\(validator).csr"
                if !FileManager.default.fileExists(atPath: tlsKey) {
                    let (keyPEM, requestPEM) = try ConsortiumCA.makeCertificateRequest(validatorName: validator)
                    try Files.write(Data(keyPEM.utf8), to: tlsKey, secret: true)
                    try Files.write(Data(requestPEM.utf8), to: request, overwrite: true)
                    print("wrote this node's TLS key \(tlsKey) (mode 0600) and certificate request \(request);")
                    print("send the request to the consortium operator: scf network issue --csr \(validator).csr --ca-dir CA --ip <this node's IP> --out DIR")
                    print("and put the \(validator).crt and ca.crt it returns in \(tlsDir)/")
                }
                var peers: [String: String] = [:]
                for entry in peer {
                    let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
                    guard parts.count == 2 else { throw CLIError("--peer \(entry) must be NAME=host:port") }
                    _ = try NodeConfig.address(parts[1], what: "peer \(parts[0])")
                    peers[parts[0]] = parts[1]
                }
                _ = try NodeConfig.address(listen, what: "--listen")
                _ = try NodeConfig.address(api, what: "--api")
                let base = URL(fileURLWithPath: out).deletingLastPathComponent().standardizedFileURL
                func relative(_ path: String) -> String {
                    let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
                    return absolute.hasPrefix(base.path + "/") ? String(absolute.dropFirst(base.path.count + 1)) : absolute
                }
                let config = NodeConfig(validator: validator, genesis: relative(genesis), dataDirectory: relative(data),
                                        consensusKey: relative(key), listen: listen, api: api, peers: peers,
                                        tls: .init(certificate: relative("\(tlsDir)/\(validator).crt"),
                                                   privateKey: relative("\(tlsDir)/\(validator).key"), ca: relative("\(tlsDir)/ca.crt")))
                try Files.write(try Files.encodeJSON(config), to: out, overwrite: true)
                print("wrote \(out)")
            }
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a validator: consensus with its peers over mutual TLS, and the client API.",
            discussion: """
            Logs go to standard error. SIGINT or SIGTERM stops intake, closes connections and the ledger.
            A node stopped for a while, or started with an empty data directory, catches up from its peers.
            """
        )
        @Option(help: "The node's configuration file.") var config: String
        @Option(help: .hidden) var clockOffsetFile: String?
        /// Test and fault drills only: this node misbehaves on purpose (see `ByzantineMode`).
        @Option(help: .hidden) var byzantine: ByzantineMode?
        /// The start-up check's in-memory budget (`LedgerVerifier.Options.recordsInMemory`); tests
        /// set 0 to run the check with its records in a scratch file on a small ledger.
        @Option(help: .hidden) var checkRecordsInMemory: Int?
        /// Where the start-up check's scratch file goes instead of the data directory (tests name
        /// one that does not exist, to see the check fall back to memory).
        @Option(help: .hidden) var checkScratchDirectory: String?

        func run() async throws {
            // Before the node's threads allocate (see `HeapTrimmer.limitArenas`).
            HeapTrimmer.limitArenas()
            try await reportingErrors { try await runNode() }
        }

        func runNode() async throws {
            let (config, base) = try NodeConfig.load(self.config)
            let path = { NodeConfig.resolve($0, against: base) }
            let (genesis, suite) = try Genesisfile.load(path(config.genesis))
            let validators = genesis.validatorSet
            guard let me = validators.index(named: config.validator) else {
                throw CLIError("genesis has no validator named \(config.validator)")
            }
            let (keyFile, privateKey) = try KeyFile.load(path(config.consensusKey))
            let key = try suite.signingKey(privateKey)
            guard keyFile.suite == genesis.cryptoSuite, key.publicKey == validators.validator(at: me)?.publicKey else {
                throw CLIError("the consensus key \(config.consensusKey) is not \(config.validator)'s key in genesis; use the key whose public key genesis lists")
            }
            var peers: [ValidatorIndex: PeerAddress] = [:]
            for (name, address) in config.peers {
                guard let index = validators.index(named: name) else { throw CLIError("peer \(name) is not a validator in genesis") }
                peers[index] = try NodeConfig.address(address, what: "peer \(name)")
            }
            try SecretFiles.requireOwnerOnly(path(config.tls.privateKey), what: "TLS private key")
            let credentials: NodeCredentials
            do {
                credentials = try NodeCredentials.load(certificateFile: path(config.tls.certificate), privateKeyFile: path(config.tls.privateKey),
                                                       caCertificateFile: path(config.tls.ca))
            } catch {
                throw CLIError("cannot load this node's TLS files (\(config.tls.certificate), \(config.tls.privateKey), \(config.tls.ca)): \(error); make them with `scf network issue`")
            }
            let name = config.validator
            let log = NodeLog(name: name)
            log.info("starting \(name) (validator \(me.value) of \(validators.count)) on chain \(genesis.chainID), suite \(suite.id)")
            if let byzantine {
                log.info("WARNING: BYZANTINE TEST MODE \(byzantine): this node misbehaves on purpose (--byzantine is for tests and fault drills only; never run it in a consortium)")
            }

            // Nothing is served and no vote is cast from a ledger this node cannot verify.
            try verifyLedgerBeforeStart(dataDirectory: path(config.dataDirectory), genesis: genesis, validator: config.validator,
                                        publicKey: key.publicKey, suite: suite, log: log)
            // The check held the recomputed state (up to its in-memory budget); give the allocator's
            // free pages back now.
            HeapTrimmer.trim()

            // The demo moves every node's clock forward together (to reach a maturity date) through a
            // shared offset file; a real node uses the wall clock.
            let clock = clockOffsetFile.map { OffsetClock(file: $0).now } ?? ValidatorNode.wallClock
            let node = try ValidatorNode(configuration: .init(genesis: genesis, suite: suite, me: me, key: key,
                                                              dataDirectory: path(config.dataDirectory), clock: clock)) { event in
                log.event(event, validators: validators)
            }
            log.info("ledger at height \(node.store.tip.height), head \(node.store.tip.hash.short)")
            var transportConfiguration = PeerTransportConfiguration(genesis: genesis, localIndex: me,
                                                                    listenAddress: try NodeConfig.address(config.listen, what: "listen"),
                                                                    peers: peers)
            transportConfiguration.maxFrameLength = Int(genesis.consensus.maxBlockBytes) * 2 + (1 << 20)
            let honestFrameCap = transportConfiguration.maxFrameLength
            if byzantine == .flood {
                // So this node's own transport lets its oversized frames out; honest peers close on them.
                transportConfiguration.maxFrameLength = honestFrameCap * 2
            }
            let transport = try PeerTransport(configuration: transportConfiguration, consensusKey: key, credentials: credentials,
                                              onFrame: { frame in node.receive(frame.bytes, from: frame.peer) },
                                              onEvent: { event in log.info("network: \(event)") })
            let links: any PeerLinks
            if let byzantine {
                let byzantineLinks = ByzantineLinks(wrapping: TransportLinks(transport: transport), mode: byzantine, genesis: genesis,
                                                    suite: suite, me: me, key: key)
                byzantineLinks.startFlood(oversizedLength: honestFrameCap + 1)
                links = byzantineLinks
            } else {
                links = TransportLinks(transport: transport)
            }
            node.attach(links)
            try await transport.start()
            let byzantineReporter = (links as? ByzantineLinks).map { byzantineLinks in
                Task {
                    var last = 0
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(2))
                        let sent = byzantineLinks.tamperedFrames.load(ordering: .relaxed)
                        if sent != last { log.info("byzantine \(byzantineLinks.mode): \(sent) misbehaving frames sent so far") }
                        last = sent
                    }
                }
            }

            let heapTrimmer = HeapTrimmer.start()

            let apiAddress = try NodeConfig.address(config.api, what: "api")
            let api = LedgerAPI(node: node, peersConnected: {
                transport.connectedPeers.compactMap { validators.validator(at: $0)?.name }.sorted()
            })
            let app = Application(router: api.router(),
                                  configuration: .init(address: .hostname(apiAddress.host, port: apiAddress.port), serverName: "scf-\(name)"),
                                  onServerRunning: { _ in log.info("client API on http://\(apiAddress)") })
            try await app.runService()
            log.info("stopping")
            byzantineReporter?.cancel()
            heapTrimmer.cancel()
            (links as? ByzantineLinks)?.stopFlood()
            node.stop()
            await transport.shutdown()
            let tip = node.store.tip
            api.close()   // its read-only connection would keep the write-ahead log from being folded in
            node.store.close()
            // `stop` records that it stopped unless a failure halted the node first.
            if node.haltReason?.code == .halted {
                sealLedger(dataDirectory: path(config.dataDirectory), genesis: genesis, validator: config.validator, tip: tip,
                           key: key, suite: suite, log: log)
            }
            log.info("stopped")
            if let reason = node.haltReason, reason.code != .halted { throw CLIError(reason.message) }
        }
    }
}

extension NodeCommand.Start {
    /// Runs the `LedgerVerifier` over the node's ledger: every hash, commit certificate, receipt,
    /// transaction row and state row from genesis, re-executing every block. Client signatures are
    /// trusted because the certificates are checked (they commit to every signed transaction, see
    /// `LedgerVerifier.Options.checksClientSignatures`); `scf ledger verify` re-checks those too.
    /// On a failure the node does not start: the error names the first bad block and how to resync
    /// from peers.
    func verifyLedgerBeforeStart(dataDirectory: String, genesis: Genesis, validator: String, publicKey: PublicKey,
                                 suite: any CryptoSuite, log: NodeLog) throws {
        let ledger = (dataDirectory as NSString).appendingPathComponent("ledger.sqlite")
        guard FileManager.default.fileExists(atPath: ledger) else {
            unlink(LedgerSeal.path(forLedger: ledger))
            log.info("no ledger in \(dataDirectory) yet: starting from genesis and syncing from peers")
            return
        }
        if startsFromSeal(ledger: ledger, genesis: genesis, validator: validator, publicKey: publicKey, suite: suite, log: log) { return }
        let resync = """
            This node will not serve or vote on a ledger it cannot verify. To resync from the other validators: \
            `scf node resync --config \(config)` (moves \(dataDirectory) aside into a dated quarantine folder, deleting nothing, \
            and keeps keys and configuration), then `scf node start --config \(config)` again: the node fetches every block \
            from its peers and checks each commit certificate. `scf ledger verify --data \(ledger)` shows the same report.
            """
        log.info("verifying the ledger in \(ledger) before starting")
        // A check this node did not finish (a crash, a kill) may have left its scratch directory.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dataDirectory)) ?? [] where LedgerVerifier.Options.isScratchDirectory(name) {
            try? FileManager.default.removeItem(atPath: (dataDirectory as NSString).appendingPathComponent(name))
        }
        var lastLogged = ContinuousClock.now
        // A large ledger's recomputed records go to a scratch file in the data directory, so the
        // check's memory stays flat however long the history (DECISIONS 48).
        var options = LedgerVerifier.Options(progressInterval: 1_000, checksClientSignatures: false, checksInvariants: false,
                                             recordsInMemory: checkRecordsInMemory ?? LedgerVerifier.Options.defaultRecordsInMemory,
                                             scratchDirectory: checkScratchDirectory ?? dataDirectory)
        func verify() throws -> VerificationReport {
            try LedgerVerifier(options: options).verify(path: ledger, genesis: genesis) { progress in
                guard ContinuousClock.now - lastLogged >= .seconds(5) else { return }
                lastLogged = ContinuousClock.now
                log.info("verifying: block \(progress.height) of \(progress.lastHeight), \(progress.transactions) transactions")
            }
        }
        let report: VerificationReport
        do {
            do {
                report = try verify()
            } catch let error as StoreError where error.code == .scratchFile {
                // A disk too full for the scratch file (perhaps why the node stopped) must not keep
                // it from starting: check in memory instead, as before DECISIONS 48.
                log.info("the check's scratch file failed (\(error.message)); checking again with the whole state in memory, which takes about 1.2 KB per record row")
                options.recordsInMemory = nil
                report = try verify()
            }
        } catch {
            throw CLIError("cannot read the ledger \(ledger): \(error). \(resync)", exitCode: 3)
        }
        if let failure = report.failure {
            let good = failure.height.value > 0 ? failure.height.value - 1 : 0
            let verified = good == 0 ? "No block verified" : good == 1 ? "Block 1 verified" : "Blocks 1-\(good) verified"
            throw CLIError("""
                the ledger \(ledger) FAILED verification at block \(failure.height) (\(failure.code.rawValue)): \(failure.message). \
                \(verified). \(resync)
                """, exitCode: 3)
        }
        log.info(String(format: "ledger verified: %d blocks, %d transactions, head %@ in %.2f s",
                        report.verifiedBlocks, report.transactions, report.tip.hash.short, report.seconds))
    }

    /// Whether a seal this validator wrote at its clean stop, over a file that has not changed
    /// since, stands for the check (DECISIONS 47). A seal is used once: removed here, before the
    /// file is opened, whatever it says.
    func startsFromSeal(ledger: String, genesis: Genesis, validator: String, publicKey: PublicKey, suite: any CryptoSuite,
                        log: NodeLog) -> Bool {
        let path = LedgerSeal.path(forLedger: ledger)
        let seal = LedgerSeal.load(path)
        guard unlink(path) == 0 else {
            if errno != ENOENT {
                log.info("cannot remove the seal \(path) (\(String(cString: strerror(errno)))), so it is not used: verifying the whole ledger")
            }
            return false
        }
        guard let seal else {
            log.info("the seal \(path) does not parse: verifying the whole ledger")
            return false
        }
        let started = ContinuousClock.now
        if let why = seal.mismatch(ledger: ledger, chainID: genesis.chainID, validator: validator, publicKey: publicKey, suite: suite) {
            log.info("not using the ledger's seal (\(why)): verifying the whole ledger")
            return false
        }
        log.info(String(format: "ledger unchanged since this node sealed it at its clean stop (block %llu, %@; file digest checked in %.2f s): not re-executed; `scf ledger verify` checks everything",
                        seal.height, String(seal.tipHash.prefix(12)), (ContinuousClock.now - started).seconds))
        return true
    }

    /// After a clean stop: seals the closed ledger file so the next start need not re-execute it
    /// (DECISIONS 47). Not when `LedgerSeal.unsealable` objects (a log or journal left beside it,
    /// a link) or the file moved while it was hashed: the next start checks the whole ledger then,
    /// as after a crash.
    func sealLedger(dataDirectory: String, genesis: Genesis, validator: String, tip: ChainTip, key: any SigningKey,
                    suite: any CryptoSuite, log: NodeLog) {
        let ledger = (dataDirectory as NSString).appendingPathComponent("ledger.sqlite")
        let started = ContinuousClock.now
        guard FileManager.default.fileExists(atPath: ledger) else { return }
        if let why = LedgerSeal.unsealable(ledger) {
            log.info("not sealing the ledger: \(why) (a connection still open, perhaps another process's); the next start checks the whole ledger")
            return
        }
        do {
            let before = LedgerSeal.identity(ledger)
            let seal = try LedgerSeal.seal(ledger: ledger, chainID: genesis.chainID, validator: validator, tip: tip, key: key, suite: suite)
            guard LedgerSeal.identity(ledger) == before, LedgerSeal.unsealable(ledger) == nil else {
                log.info("not sealing the ledger: something wrote to it while it was being sealed; the next start checks the whole ledger")
                return
            }
            try seal.write(to: LedgerSeal.path(forLedger: ledger))
            log.info(String(format: "sealed the ledger at block %llu for a fast next start (%.2f s)", tip.height.value,
                            (ContinuousClock.now - started).seconds))
        } catch {
            log.info("could not seal the ledger (\(error)); the next start checks the whole ledger")
        }
    }
}

extension NodeCommand {
    struct Resync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move a stopped node's ledger aside so it syncs again from its peers.",
            discussion: """
            For a ledger that fails verification (`scf node start` refuses it and names the first bad block).
            Moves the data directory into DATA.quarantine-YYYYMMDDTHHMMSSZ next to it (nothing is deleted:
            keep it for inspection), keeps the keys and the configuration, and copies everything but the
            ledger (the replica state: this validator's own votes) into a fresh data directory so it
            cannot contradict them. The next `scf node start` fetches every block from the other validators,
            checking each commit certificate. Stop the node first.
            """
        )
        @Option(help: "The node's configuration file.") var config: String

        func run() async throws {
            try await reportingErrors {
                let (config, base) = try NodeConfig.load(self.config)
                let data = NodeConfig.resolve(config.dataDirectory, against: base)
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: data, isDirectory: &isDirectory), isDirectory.boolValue else {
                    throw CLIError("there is no data directory at \(data): nothing to move aside; `scf node start --config \(self.config)` syncs from genesis")
                }
                let listen = try NodeConfig.address(config.listen, what: "listen")
                if Self.isListening(listen) {
                    throw CLIError("something is listening on \(listen) (this node's peer address): stop the node before resyncing it (nothing was moved)")
                }
                let stamp = Date().formatted(Date.VerbatimFormatStyle(
                    format: "\(year: .defaultDigits)\(month: .twoDigits)\(day: .twoDigits)T\(hour: .twoDigits(clock: .twentyFourHour, hourCycle: .zeroBased))\(minute: .twoDigits)\(second: .twoDigits)Z",
                    timeZone: .gmt, calendar: Calendar(identifier: .gregorian)))
                var quarantine = data + ".quarantine-" + stamp
                var suffix = 1
                while FileManager.default.fileExists(atPath: quarantine) {
                    suffix += 1
                    quarantine = data + ".quarantine-" + stamp + "-\(suffix)"
                }
                guard rename(data, quarantine) == 0 else {
                    throw CLIError("cannot move \(data) to \(quarantine): \(String(cString: strerror(errno))) (nothing was changed)")
                }
                print("moved \(data) to \(quarantine) (kept for inspection; nothing was deleted)")
                try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                // Everything but the ledger comes back: the replica state (snapshot and log, this
                // validator's own votes) so the resynced node cannot contradict what it signed.
                let suite = try Genesisfile.load(NodeConfig.resolve(config.genesis, against: base)).1
                var kept: [String] = []
                for name in try FileManager.default.contentsOfDirectory(atPath: quarantine).sorted() where !name.hasPrefix("ledger.sqlite") {
                    try FileManager.default.copyItem(atPath: (quarantine as NSString).appendingPathComponent(name),
                                                     toPath: (data as NSString).appendingPathComponent(name))
                    kept.append(name)
                }
                if !kept.isEmpty {
                    if (try? ReplicaStateFile(directory: data, suite: suite).load()) != nil {
                        print("kept this validator's replica state (its own votes): \(kept.joined(separator: ", "))")
                    } else {
                        for name in kept { try? FileManager.default.removeItem(atPath: (data as NSString).appendingPathComponent(name)) }
                        print("warning: the replica state in \(quarantine) does not load; the node starts without it")
                    }
                }
                print("keys and configuration are unchanged. Next: scf node start --config \(self.config)")
                print("the node syncs every block from its peers, checking each commit certificate, and then rejoins consensus.")
            }
        }

        /// Whether a TCP connect to `address` succeeds (IPv4 literals only; otherwise assume not).
        static func isListening(_ address: PeerAddress) -> Bool {
            var target = sockaddr_in()
            target.sin_family = sa_family_t(AF_INET)
            target.sin_port = in_port_t(UInt16(address.port).bigEndian)
            guard inet_pton(AF_INET, address.host, &target.sin_addr) == 1 else { return false }
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            let result = withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            return result == 0
        }
    }
}

/// Wall clock plus an offset in milliseconds read from a file (re-read at most every 100 ms).
final class OffsetClock: Sendable {
    let file: String
    let cache = Mutex<(offset: Int64, readAt: UInt64)>((0, 0))
    init(file: String) { self.file = file }

    @Sendable func now() -> ConsensusTime {
        let uptime = DispatchTime.now().uptimeNanoseconds
        let offset = cache.withLock { cached -> Int64 in
            if cached.readAt == 0 || uptime - cached.readAt > 100_000_000 {
                let text = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
                cached = (text.flatMap(Int64.init) ?? 0, uptime)
            }
            return cached.offset
        }
        return ValidatorNode.wallClock().adding(milliseconds: offset)
    }
}

/// The node's links to its peers over the TLS transport.
struct TransportLinks: PeerLinks {
    let transport: PeerTransport
    func send(_ frame: [UInt8], to peer: ValidatorIndex) { transport.send(frame, to: peer) }
    func broadcast(_ frame: [UInt8]) { transport.broadcast(frame) }
}

extension ByzantineMode: ExpressibleByArgument {}

/// One line per event on standard error, with a UTC timestamp and the node's name. Never logs keys.
/// Repeated ignored frames and misbehaviour reports (a hostile peer can cause thousands a second)
/// are logged in full ten times per peer and kind, then at most once every five seconds with a
/// count of the lines left out, so a flood cannot fill the disk through the log.
struct NodeLog: Sendable {
    let name: String
    let limiter = LogLimiter()

    func info(_ message: String) {
        let time = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        FileHandle.standardError.write(Data("\(time) \(name) \(message)\n".utf8))
    }

    func limited(_ key: String, _ message: @autoclosure () -> String) {
        guard let suppressed = limiter.admit(key) else { return }
        info(message() + (suppressed > 0 ? " (\(suppressed) similar lines left out since the last one)" : ""))
    }

    func event(_ event: ValidatorNode.Event, validators: ValidatorSet) {
        switch event {
        case .committed(let height, let transactions, let rejected):
            if transactions > 0 || height.value % 100 == 0 {
                info("committed block \(height): \(transactions) transactions\(rejected > 0 ? " (\(rejected) refused by rule)" : "")")
            }
        case .viewChanged(let view):
            info("view \(view): primary is \(validators.validator(at: validators.primary(of: view))?.name ?? "?")")
        case .misbehaviour(let validator, let evidence):
            let who = validators.validator(at: validator)?.name ?? "\(validator)"
            limited("misbehaviour/\(validator)/\(Self.kind(of: evidence))", "MISBEHAVIOUR by \(who): \(Self.kind(of: evidence)): \(evidence)")
        case .catchUp(let from, let to, let peer):
            info("catching up: blocks \(from)-\(to) from \(validators.validator(at: peer)?.name ?? "\(peer)")")
        case .ignoredFrame(let peer, let reason):
            limited("ignored/\(peer)", "ignored a frame from \(validators.validator(at: peer)?.name ?? "\(peer)"): \(reason)")
        case .readModelIndexes(suspended: true, _):
            info("bulk catch-up: read-model indexes dropped until it ends (queries by party, holder or status scan meanwhile)")
        case .readModelIndexes(suspended: false, let seconds):
            info(String(format: "bulk catch-up ended: read-model indexes built again in %.2f s", seconds ?? 0))
        case .halted(let error):
            info("HALTED: \(error.message)")
        }
    }

    static func kind(of evidence: Evidence) -> String {
        switch evidence {
        case .equivocation: "equivocation"
        case .conflictingPrepares: "conflicting-prepares"
        case .conflictingCommits: "conflicting-commits"
        case .conflictingCheckpoints: "conflicting-checkpoints"
        case .invalidProposal: "invalid-proposal"
        case .badSignature: "bad-signature"
        case .malformed: "malformed"
        }
    }
}

/// Decides which of many similar log lines to write: the first `burst` per key, then one every
/// `interval` seconds per key.
final class LogLimiter: Sendable {
    let burst: Int
    let interval: Double
    let entries = Mutex<[String: (count: Int, lastLogged: Double, suppressed: Int)]>([:])

    init(burst: Int = 10, interval: Double = 5) {
        self.burst = burst
        self.interval = interval
    }

    /// nil: leave this line out; otherwise how many lines of this key were left out before it.
    func admit(_ key: String) -> Int? {
        let now = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
        return entries.withLock { entries -> Int? in
            var entry = entries[key] ?? (0, 0, 0)
            entry.count += 1
            defer { entries[key] = entry }
            if entry.count <= burst || now - entry.lastLogged >= interval {
                let suppressed = entry.suppressed
                entry.lastLogged = now
                entry.suppressed = 0
                return suppressed
            }
            entry.suppressed += 1
            return nil
        }
    }
}
