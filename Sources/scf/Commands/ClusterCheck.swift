import ArgumentParser
import CSQLite
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerAPI
import LedgerCore
import LedgerNode
import PeerNetwork

/// Fault scenarios on real validator processes over loopback, run by the test suite
/// (`Tests/LedgerNodeTests/ProcessClusterTests.swift`) and by hand. Exits non-zero on the first
/// scenario that fails, with the reason.
struct ClusterCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster-check",
        abstract: "Run crash, restart and catch-up scenarios on four real validator processes.",
        shouldDisplay: false
    )

    @Option(help: "Blocks to commit while a node is down before it restarts.") var blocks = 500
    @Option(help: "Keep the data here.") var keep: String?
    @Option(help: "Instead of the scenarios, offer this many transactions as load and report committed throughput.") var load: Int?
    @Option(help: "With --load: how many signers submit at once.") var signers = 16
    @Option(help: "Instead of the scenarios, run node-0 with `--byzantine MODE` under steady load (equivocate, conflicting-votes, forge-signatures, replay, flood).")
    var byzantine: ByzantineMode?
    @Option(help: "With --byzantine: how many transactions the load submits.") var transactions = 30
    @Flag(help: "Instead of the scenarios, tamper with a stopped node's ledger (an amount, a deleted transaction, swapped blocks): it must refuse to start, and `scf node resync` must bring it back.")
    var tamper = false
    @Flag(help: "Instead of the scenarios, check key file permissions, where the API binds, the write endpoint, and that no log holds a private key.")
    var security = false

    func run() async throws {
        try await reportingErrors {
            let directory = keep ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("scf-cluster-check-\(getpid())")
            defer { if keep == nil { try? FileManager.default.removeItem(atPath: directory) } }
            var check = try Scenarios(consortium: LocalConsortium(directory: directory, suite: Ed25519SHA256Suite(),
                                                                   genesisDate: ValidatorNode.wallClock().businessDate(utcOffsetMinutes: 480)))
            defer { check.consortium.stopAll() }
            if security {
                try await check.security()
            } else if tamper {
                try await check.tampering()
            } else if let byzantine {
                try await check.byzantine(byzantine, transactions: transactions)
            } else if let load {
                try await check.throughput(transactions: load, signers: signers)
            } else {
                try await check.run(blocks: blocks)
            }
        }
    }
}

struct Scenarios {
    let consortium: LocalConsortium
    var committed: [Hash] = []
    var next = 0

    func log(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }

    /// A member registration by the operator: always valid, one per block when submitted with wait.
    mutating func register(via node: Int) async throws -> TransactionView {
        next += 1
        let key = try consortium.suite.signingKey(try consortium.suite.privateKey(seed: consortium.suite.hash(Array("m\(next)".utf8)).bytes))
        let digits = String(format: "%09d", next)
        let body = Array(("91310000" + digits).utf8)
        let check = UnifiedSocialCreditCode.checkCharacter(for: body[0..<17])!
        let member = Member(id: MemberID("member-\(next)")!, legalName: "Member \(next) Ltd",
                            creditCode: UnifiedSocialCreditCode(String(decoding: body + [check], as: UTF8.self))!,
                            roles: [.supplier], publicKey: key.publicKey)
        let (transaction, view) = try await consortium.submit("operator", .registerMember(member), to: node)
        guard view.status == "committed" else { throw CLIError("registration via node-\(node) was \(view.status) \(view.code ?? "") \(view.message ?? "")") }
        committed.append(transaction.id)
        return view
    }

    func headsAgree(_ nodes: [Int], seconds: Double = 60) async throws -> Height {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let statuses = try await nodes.asyncMap { try await consortium.status($0) }
            if Set(statuses.map(\.headHash)).count == 1 { return statuses[0].height }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CLIError("heads of nodes \(nodes) did not agree within \(Int(seconds)) s")
    }

    /// Every transaction the API reported committed is committed on every node, at one height, once.
    func noCommittedTransactionLost(_ nodes: [Int]) async throws {
        for id in committed {
            var heights = Set<Height>()
            for node in nodes {
                let view = try await consortium.get(TransactionView.self, node: node, "/v1/transactions/\(id.hex)")
                guard view.status == "committed", let height = view.height else {
                    throw CLIError("transaction \(id.short) reported committed is \(view.status) on node-\(node)")
                }
                heights.insert(height)
            }
            guard heights.count == 1 else { throw CLIError("transaction \(id.short) is at different heights: \(heights)") }
        }
    }

    mutating func run(blocks: Int) async throws {
        for index in 0..<4 { try consortium.start(index) }
        for index in 0..<4 { try await consortium.waitUntilReady(index) }

        log("scenario: transactions submitted to any node commit on all")
        for round in 0..<8 { _ = try await register(via: round % 4) }
        log("  ok: \(committed.count) committed, heads agree at \(try await headsAgree([0, 1, 2, 3]))")

        log("scenario: kill -9 of a non-primary")
        let primary = Int(try await consortium.status(0).view.value % 4)
        let backup = (primary + 3) % 4
        consortium.kill(backup)
        let alive = (0..<4).filter { $0 != backup }
        for round in 0..<10 { _ = try await register(via: alive[round % alive.count]) }
        try consortium.start(backup)
        try await consortium.waitUntilReady(backup)
        let height1 = try await headsAgree([0, 1, 2, 3])
        try await noCommittedTransactionLost([0, 1, 2, 3])
        log("  ok: node-\(backup) killed and restarted; heads agree at \(height1); no committed transaction lost")

        log("scenario: kill -9 of the primary (view change)")
        let oldPrimary = Int(try await consortium.status(0).view.value % 4)
        consortium.kill(oldPrimary)
        let survivors = (0..<4).filter { $0 != oldPrimary }
        let started = Date()
        for round in 0..<6 { _ = try await register(via: survivors[round % survivors.count]) }
        let view = try await consortium.status(survivors[0]).view
        guard view.value % 4 != UInt64(oldPrimary) else { throw CLIError("the view did not change after the primary was killed") }
        log(String(format: "  view changed to %llu; 6 transactions committed in %.1f s without the old primary", view.value, Date().timeIntervalSince(started)))
        try consortium.start(oldPrimary)
        try await consortium.waitUntilReady(oldPrimary)
        let height2 = try await headsAgree([0, 1, 2, 3])
        try await noCommittedTransactionLost([0, 1, 2, 3])
        log("  ok: old primary restarted; heads agree at \(height2); no committed transaction lost")

        log("scenario: a node down for \(blocks) blocks catches up")
        let lagging = (Int(try await consortium.status(0).view.value % 4) + 2) % 4
        consortium.kill(lagging)
        let others = (0..<4).filter { $0 != lagging }
        let before = try await consortium.status(others[0]).height
        for round in 0..<blocks { _ = try await register(via: others[round % others.count]) }
        let target = try await consortium.status(others[0]).height
        let restart = Date()
        try consortium.start(lagging)
        try await consortium.waitForHeight(lagging, target, seconds: 120)
        let seconds = Date().timeIntervalSince(restart)
        let height3 = try await headsAgree([0, 1, 2, 3])
        log(String(format: "  ok: node-%d caught up %llu blocks in %.2f s (%.0f blocks/s, including process start); heads agree at %llu",
                   lagging, target.value - before.value, seconds, Double(target.value - before.value) / seconds, height3.value))

        log("scenario: a node with an empty data directory syncs from genesis")
        let fresh = (lagging + 1) % 4
        consortium.kill(fresh)
        try FileManager.default.removeItem(atPath: (consortium.directory as NSString).appendingPathComponent("data/node-\(fresh)"))
        let syncStart = Date()
        try consortium.start(fresh)
        try await consortium.waitForHeight(fresh, height3, seconds: 120)
        let syncSeconds = Date().timeIntervalSince(syncStart)
        _ = try await register(via: fresh)
        let height4 = try await headsAgree([0, 1, 2, 3])
        try await noCommittedTransactionLost([0, 1, 2, 3])
        log(String(format: "  ok: node-%d synced %llu blocks from genesis in %.2f s (%.0f blocks/s); heads agree at %llu",
                   fresh, height3.value, syncSeconds, Double(height3.value) / syncSeconds, height4.value))
        log("all scenarios passed: \(committed.count) transactions committed, none lost")
    }
}

extension Scenarios {
    /// Registers `signers` suppliers, then each proposes receivables (its own nonce order, one HTTP
    /// request after another, all signers at once), and measures how fast they commit.
    mutating func throughput(transactions: Int, signers: Int) async throws {
        for index in 0..<4 { try consortium.start(index) }
        for index in 0..<4 { try await consortium.waitUntilReady(index) }
        let suite = consortium.suite
        let core = consortium.genesis.members.first { $0.id == "core-enterprise" }!
        var keys: [(Member, any SigningKey)] = []
        for number in 0..<signers {
            let key = try suite.signingKey(try suite.privateKey(seed: suite.hash(Array("load-\(number)".utf8)).bytes))
            let body = Array(("91320000" + String(format: "%09d", number)).utf8)
            let member = Member(id: MemberID("load-supplier-\(number)")!, legalName: "Load Supplier \(number)",
                                creditCode: UnifiedSocialCreditCode(String(decoding: body + [UnifiedSocialCreditCode.checkCharacter(for: body[0..<17])!], as: UTF8.self))!,
                                roles: [.supplier], publicKey: key.publicKey)
            let (_, view) = try await consortium.submit("operator", .registerMember(member), to: number % 4)
            guard view.status == "committed" else { throw CLIError("registering a load signer: \(view)") }
            keys.append((member, key))
        }
        let today = ValidatorNode.wallClock().businessDate(utcOffsetMinutes: 480)
        let perSigner = max(1, transactions / signers)
        var batches: [[SignedTransaction]] = []
        for (signerIndex, (member, key)) in keys.enumerated() {
            var batch: [SignedTransaction] = []
            for number in 1...perSigner {
                let face = Money(minor: Int64(1_000_00 + number), .cny)
                let invoice = Invoice(key: InvoiceKey(code: "L\(signerIndex)", number: String(number))!, type: .vatSpecial, issueDate: today,
                                      sellerTaxID: member.creditCode, buyerTaxID: core.creditCode, amountExcludingTax: face, amountIncludingTax: face,
                                      documentHash: suite.hash(Array("\(signerIndex)/\(number)".utf8)))
                let terms = ReceivableTerms(debtor: core.id, creditor: member.id, face: face, issueDate: today, maturity: today.adding(days: 90),
                                            invoices: [invoice])
                batch.append(try SignedTransaction.sign(TransactionBody(chainID: consortium.genesis.chainID, signer: member.id, nonce: UInt64(number),
                                                                        operation: .proposeReceivable(terms)), with: key, suite: suite))
            }
            batches.append(batch)
        }
        let total = batches.reduce(0) { $0 + $1.count }
        let startHeight = try await consortium.status(0).height
        log("offering \(total) signed proposals from \(signers) signers at once (no waiting per request)…")
        let started = Date()
        let consortium = self.consortium
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, batch) in batches.enumerated() {
                group.addTask {
                    for transaction in batch { try await consortium.post(transaction, to: index % 4) }
                }
            }
            try await group.waitForAll()
        }
        let offered = Date().timeIntervalSince(started)
        // Wait for each signer's last transaction: nonces are in order, so the rest are in before it.
        var committed = 0, rejected = 0
        for batch in batches {
            let last = batch.last!.id
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline {
                let view = try await consortium.get(TransactionView.self, node: 0, "/v1/transactions/\(last.hex)")
                if view.status == "committed" || view.status == "rejected" { break }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        for batch in batches {
            for transaction in batch {
                let view = try await consortium.get(TransactionView.self, node: 0, "/v1/transactions/\(transaction.id.hex)")
                if view.status == "committed" { committed += 1 } else if view.status == "rejected" { rejected += 1 }
            }
        }
        let endHeight = try await consortium.status(0).height
        log(String(format: "offered %d in %.2f s; %d committed, %d refused, %d missing after %.2f s: %.0f committed tx/s over %llu blocks",
                   total, offered, committed, rejected, total - committed - rejected, elapsed, Double(committed) / elapsed,
                   endHeight.value - startHeight.value))
        guard committed + rejected == total else { throw CLIError("\(total - committed - rejected) transactions were lost") }
    }
}

extension Scenarios {
    /// node-0 runs `scf node start --byzantine MODE`; the three honest nodes take a steady load.
    /// Passes when every transaction commits on all three, they hold the same block at every
    /// height, no honest node is ever reported, node-0 did misbehave (its own log counts the frames),
    /// and the honest nodes show what they saw: misbehaviour with evidence for what the protocol
    /// can prove (equivocation, conflicting votes, bad signatures), ignored frames and closed
    /// connections for a flood.
    mutating func byzantine(_ mode: ByzantineMode, transactions: Int) async throws {
        let honest = [1, 2, 3]
        let byzantineNode = try ByzantineProcess(consortium: consortium, index: 0, mode: mode)
        defer { byzantineNode.stop() }
        for index in honest { try consortium.start(index) }
        // A flooding node's links are closed again and again; honest nodes need only each other.
        for index in honest { try await consortium.waitUntilReady(index, peers: mode == .flood ? 2 : 3) }
        if mode != .flood { try await consortium.waitUntilReady(0) }
        log("scenario: node-0 is Byzantine (\(mode)); \(transactions) transactions through the honest nodes")
        let started = Date()
        for round in 0..<transactions { _ = try await register(via: honest[round % honest.count]) }
        let seconds = Date().timeIntervalSince(started)
        let height = try await headsAgree(honest)
        try await noCommittedTransactionLost(honest)
        for number in 1...max(1, Int(height.value)) {
            let hashes = try await honest.asyncMap { try await consortium.get(BlockView.self, node: $0, "/v1/blocks/\(number)").hash }
            guard Set(hashes).count == 1 else { throw CLIError("honest nodes hold different blocks at height \(number): \(hashes)") }
        }
        log(String(format: "  ok: %d transactions committed in %.1f s; nodes 1-3 hold the same block at every height 1-%llu",
                   transactions, seconds, height.value))

        // The Byzantine node logs its count every two seconds; a flood's first oversized frame goes
        // out after half a second and its effects reach the honest logs a little later on a busy machine.
        let settle = Date().addingTimeInterval(60)
        repeat {
            try await Task.sleep(for: .seconds(1))
            let logs = try (0..<4).map { try String(contentsOfFile: consortium.logPath($0), encoding: .utf8) }
            let counted = logs[0].contains("misbehaving frames sent so far")
            let flooded = mode != .flood || (logs[1...].joined().contains("ignored a frame from node-0") && logs[1...].joined().contains("frameTooLarge"))
            if counted && flooded { break }
        } while Date() < settle
        let byzantineLog = try String(contentsOfFile: consortium.logPath(0), encoding: .utf8)
        guard byzantineLog.contains("BYZANTINE TEST MODE \(mode)") else { throw CLIError("node-0 did not start in Byzantine mode; see \(consortium.logPath(0))") }
        let sent = byzantineLog.split(separator: "\n").compactMap { line -> Int? in
            guard let range = line.range(of: "misbehaving frames sent so far") else { return nil }
            return Int(line[..<range.lowerBound].split(separator: " ").last ?? "")
        }.max() ?? 0
        guard sent > 0 else { throw CLIError("node-0 never misbehaved (no tampered frame sent), so this run proves nothing") }

        var reports: [Int] = [], lines: [String] = []
        for index in honest {
            let metrics = try await consortium.text(node: index, "/metrics")
            let value = metrics.split(separator: "\n").first { $0.hasPrefix("scf_misbehaviour_reports_total ") }
                .flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
            reports.append(value)
            lines.append(try String(contentsOfFile: consortium.logPath(index), encoding: .utf8))
        }
        let all = lines.joined(separator: "\n")
        for index in honest where all.contains("MISBEHAVIOUR by node-\(index):") {
            throw CLIError("an honest node (node-\(index)) was reported as misbehaving; see the logs in \(consortium.directory)/logs")
        }
        func count(_ text: String) -> Int { all.components(separatedBy: text).count - 1 }
        let evidence = ["equivocation", "conflicting-commits", "conflicting-checkpoints", "bad-signature", "malformed", "invalid-proposal"]
            .map { ($0, count("MISBEHAVIOUR by node-0: \($0)")) }.filter { $0.1 > 0 }
        log("  node-0 sent \(sent) misbehaving frames; honest scf_misbehaviour_reports_total: \(reports); evidence in logs: "
            + (evidence.isEmpty ? "none" : evidence.map { "\($0.0) ×\($0.1)" }.joined(separator: ", "))
            + "; ignored frames logged: \(count("ignored a frame from node-0")); connections closed on oversized frames: \(count("frameTooLarge"))")
        switch mode {
        case .equivocate:
            guard reports.reduce(0, +) > 0, count("MISBEHAVIOUR by node-0: equivocation") > 0 else {
                throw CLIError("no honest node reported node-0's equivocation")
            }
        case .conflictingVotes:
            guard reports.reduce(0, +) > 0, count("MISBEHAVIOUR by node-0: conflicting-") > 0 else {
                throw CLIError("no honest node reported node-0's conflicting votes")
            }
        case .forgeSignatures:
            guard reports.reduce(0, +) > 0, count("MISBEHAVIOUR by node-0: bad-signature") > 0 else {
                throw CLIError("no honest node reported node-0's forged signatures")
            }
        case .replay:
            break   // replayed genuine messages are ignored as stale or duplicate: nothing to prove, nothing lost
        case .flood:
            guard count("ignored a frame from node-0") > 0, count("frameTooLarge") > 0 else {
                throw CLIError("the honest nodes did not log the flood (ignored frames and connections closed on oversized frames)")
            }
        }
        log("byzantine scenario passed: \(mode), \(committed.count) transactions committed, none lost, honest nodes agree")
    }
}

extension Scenarios {
    /// Three edits of node-3's stopped ledger, one after the other. For each: `scf node start`
    /// refuses it (non-zero exit, nothing served) naming the first bad block, `scf ledger verify`
    /// names the same block, `scf node resync` moves the data aside, and the restarted node catches
    /// up from its peers to the same head as the others.
    mutating func tampering() async throws {
        for index in 0..<4 { try consortium.start(index) }
        for index in 0..<4 { try await consortium.waitUntilReady(index) }
        for round in 0..<6 { _ = try await register(via: round % 4) }
        // A receivable gives the state tables an amount to change.
        let suite = consortium.suite
        let today = ValidatorNode.wallClock().businessDate(utcOffsetMinutes: 480)
        let creditor = consortium.genesis.members.first { $0.id == "tier1-supplier" }!
        let debtor = consortium.genesis.members.first { $0.id == "core-enterprise" }!
        let face = Money(minor: 1_234_567_00, .cny)
        let invoice = Invoice(key: InvoiceKey(code: "T1", number: "1")!, type: .vatSpecial, issueDate: today, sellerTaxID: creditor.creditCode,
                              buyerTaxID: debtor.creditCode, amountExcludingTax: face, amountIncludingTax: face,
                              documentHash: suite.hash(Array("tamper-invoice".utf8)))
        let terms = ReceivableTerms(debtor: debtor.id, creditor: creditor.id, face: face, issueDate: today, maturity: today.adding(days: 90),
                                    invoices: [invoice])
        let (proposal, proposalView) = try await consortium.submit(creditor.id, .proposeReceivable(terms), to: 1)
        guard proposalView.status == "committed", let receivableHeight = proposalView.height else {
            throw CLIError("the receivable proposal was \(proposalView.status) \(proposalView.code ?? "") \(proposalView.message ?? "")")
        }
        committed.append(proposal.id)
        for round in 0..<4 { _ = try await register(via: round % 4) }
        let registrationHeight = try await consortium.get(TransactionView.self, node: 0, "/v1/transactions/\(committed[2].hex)").height!
        let head = try await headsAgree([0, 1, 2, 3])
        let swapLow = Height(2), swapHigh = Height(min(head.value, 5))

        let edits: [(name: String, height: Height, sql: String)] = [
            ("a changed amount in a state table (receivableRoot.face)", receivableHeight,
             "UPDATE receivableRoot SET face = face + 100000"),
            ("a deleted transaction", registrationHeight,
             "DELETE FROM \"transaction\" WHERE height = \(registrationHeight.value) AND position = 0"),
            ("two swapped blocks (\(swapLow) and \(swapHigh))", swapLow, """
                UPDATE block SET height = -1 WHERE height = \(swapLow.value); UPDATE "transaction" SET height = -1 WHERE height = \(swapLow.value);
                UPDATE block SET height = \(swapLow.value) WHERE height = \(swapHigh.value);
                UPDATE "transaction" SET height = \(swapLow.value) WHERE height = \(swapHigh.value);
                UPDATE block SET height = \(swapHigh.value) WHERE height = -1; UPDATE "transaction" SET height = \(swapHigh.value) WHERE height = -1;
                """),
        ]
        let victim = 3
        let config = (consortium.directory as NSString).appendingPathComponent("node-\(victim).json")
        let data = (consortium.directory as NSString).appendingPathComponent("data/node-\(victim)")
        let ledger = (data as NSString).appendingPathComponent("ledger.sqlite")
        let seal = ledger + ".seal"
        let nodeLog = (consortium.directory as NSString).appendingPathComponent("logs/node-\(victim).log")
        log("scenario: a clean stop seals node-\(victim)'s ledger, and the next start uses the seal instead of re-executing it")
        consortium.stop(victim)
        guard FileManager.default.fileExists(atPath: seal) else { throw CLIError("node-\(victim) stopped cleanly but left no seal at \(seal)") }
        try consortium.start(victim)   // starts its log afresh
        try await consortium.waitUntilReady(victim)
        let startLog = String(decoding: FileManager.default.contents(atPath: nodeLog) ?? Data(), as: UTF8.self)
        guard startLog.contains("ledger unchanged since this node sealed it"), !startLog.contains("ledger verified:") else {
            throw CLIError("node-\(victim) did not start from its seal:\n\(startLog.suffix(2_000))")
        }
        guard !FileManager.default.fileExists(atPath: seal) else { throw CLIError("node-\(victim) kept its seal after starting from it") }
        _ = try await register(via: victim)
        log("  ok: sealed at its clean stop, started without re-executing, the seal removed; heads agree at \(try await headsAgree([0, 1, 2, 3]))")

        for (number, edit) in edits.enumerated() {
            log("scenario: \(edit.name) in node-\(victim)'s ledger\(number == 0 ? " after a clean stop (so over a sealed file)" : "")")
            if number == 0 {
                consortium.stop(victim)
                guard FileManager.default.fileExists(atPath: seal) else { throw CLIError("node-\(victim) stopped cleanly but left no seal") }
            } else {
                consortium.kill(victim)
            }
            try Self.execute(edit.sql, on: ledger)

            // Every other edit is checked with the recomputed records in a scratch file (DECISIONS 48),
            // as on a large ledger, and the node's start finds a scratch directory a crashed check left.
            let scratch = number % 2 == 1
            let verify = try CommandRun(consortium.executable, ["ledger", "verify", "--data", ledger]
                                        + (scratch ? ["--records-in-memory", "0", "--scratch-directory", data] : []), seconds: 120)
            guard verify.status == 1, verify.output.contains("FAILED at block \(edit.height):") else {
                throw CLIError("`scf ledger verify` did not name block \(edit.height) (exit \(verify.status)):\n\(verify.output)")
            }
            let leftover = (data as NSString).appendingPathComponent(".scf-verify-leftover")
            if scratch { try FileManager.default.createDirectory(atPath: leftover, withIntermediateDirectories: false) }
            // The last edit's start is given a scratch directory that does not exist: the check
            // must fall back to memory and still refuse the ledger.
            let scratchFails = number == edits.count - 1
            let refused = try CommandRun(consortium.executable, ["node", "start", "--config", config]
                                         + (scratch || scratchFails ? ["--check-records-in-memory", "0"] : [])
                                         + (scratchFails ? ["--check-scratch-directory", data + "/no-such-directory"] : []), seconds: 120)
            if scratchFails, !refused.output.contains("checking again with the whole state in memory") {
                throw CLIError("`scf node start` did not fall back to memory when its scratch file could not be made:\n\(refused.output)")
            }
            if let left = try FileManager.default.contentsOfDirectory(atPath: data).first(where: { $0.hasPrefix(".scf-verify-") }) {
                throw CLIError("a verification left \(left) in \(data) (the node's start removes leftovers, and each check its own)")
            }
            guard refused.status != 0, refused.output.contains("FAILED verification at block \(edit.height) "),
                  refused.output.contains("scf node resync --config \(config)") else {
                throw CLIError("`scf node start` did not refuse the tampered ledger at block \(edit.height) (exit \(refused.status)):\n\(refused.output)")
            }
            guard !refused.output.contains("client API on") else { throw CLIError("the node served its API from a tampered ledger:\n\(refused.output)") }
            if number == 0, !refused.output.contains("not using the ledger's seal (the file changed since") {
                throw CLIError("`scf node start` did not say why it set the seal of the edited file aside:\n\(refused.output)")
            }
            let reason = refused.output.split(separator: "\n").first { $0.contains("FAILED verification") }.map(String.init) ?? ""
            log("  refused at start (exit \(refused.status)): \(reason.prefix(220))…")

            let resync = try CommandRun(consortium.executable, ["node", "resync", "--config", config], seconds: 60)
            guard resync.status == 0, let moved = try FileManager.default.contentsOfDirectory(atPath: (data as NSString).deletingLastPathComponent)
                .first(where: { $0.hasPrefix("node-\(victim).quarantine-") && !$0.contains("-checked-") }) else {
                throw CLIError("`scf node resync` failed (exit \(resync.status)):\n\(resync.output)")
            }
            guard resync.output.contains("kept this validator's replica state") else {
                throw CLIError("`scf node resync` did not keep the validator's own votes:\n\(resync.output)")
            }
            let quarantined = ((data as NSString).deletingLastPathComponent as NSString).appendingPathComponent(moved)
            guard FileManager.default.fileExists(atPath: (quarantined as NSString).appendingPathComponent("ledger.sqlite")) else {
                throw CLIError("the quarantine folder \(quarantined) has no ledger in it")
            }
            // Later edits look for a fresh quarantine folder: move this one out of the way.
            try FileManager.default.moveItem(atPath: quarantined, toPath: quarantined + "-checked-\(edit.height)")

            let target = try await consortium.status(0).height
            let started = Date()
            try consortium.start(victim)
            try await consortium.waitForHeight(victim, target, seconds: 120)
            _ = try await register(via: victim)
            let agreed = try await headsAgree([0, 1, 2, 3])
            try await noCommittedTransactionLost([0, 1, 2, 3])
            log(String(format: "  resynced: node-%d caught up %llu blocks in %.1f s; heads agree at %llu; the bad ledger is kept in %@",
                       victim, target.value, Date().timeIntervalSince(started), agreed.value, moved))
        }
        log("tamper scenario passed: \(edits.count) edits refused at start and repaired by resync")
    }

    /// Runs SQL on a ledger file directly (what an attacker or a careless operator could do).
    static func execute(_ sql: String, on path: String) throws {
        var db: OpaquePointer?
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK, let db else {
            throw CLIError("cannot open \(path) to tamper with it")
        }
        defer { sqlite3_close(db) }
        var error: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(db, sql, nil, nil, &error) == SQLITE_OK else {
            let message = error.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(error)
            throw CLIError("tampering with \(path) failed: \(message)")
        }
    }
}

extension Scenarios {
    /// Keys and access on real processes: key files others can read are refused with the fix, the
    /// API and the peer port listen only on the configured loopback address, a transaction from a
    /// non-member is refused with a code, no admin path answers, and after a run (transactions, a
    /// refused key, shutdown) no node's log holds any private key in hex, base64 or PEM form.
    mutating func security() async throws {
        let directory = consortium.directory
        func file(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        let config = file("node-0.json")
        var refusals: [String] = []
        for (key, mode, what) in [(file("keys/node-0.key"), mode_t(0o644), "consensus key"), (file("tls/node-0.key"), mode_t(0o640), "TLS private key")] {
            chmod(key, mode)
            let refused = try CommandRun(consortium.executable, ["node", "start", "--config", config], seconds: 60)
            chmod(key, 0o600)
            refusals.append(refused.output)
            guard refused.status != 0, refused.output.contains("chmod 600 "), refused.output.contains((key as NSString).lastPathComponent), !refused.output.contains("client API on") else {
                throw CLIError("`scf node start` did not refuse a \(what) with mode \(String(mode, radix: 8)) (exit \(refused.status)):\n\(refused.output)")
            }
            log("  ok: a \(what) with mode \(String(mode, radix: 8)) is refused: \(refused.output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last ?? "")")
        }

        for index in 0..<4 { try consortium.start(index) }
        for index in 0..<4 { try await consortium.waitUntilReady(index) }
        for round in 0..<6 { _ = try await register(via: round % 4) }

        // Bound where configured: 127.0.0.1 answers, another loopback address does not.
        let nodeConfig = try NodeConfig.load(config).0
        for (what, text) in [("API", nodeConfig.api), ("peer port", nodeConfig.listen)] {
            let address = try NodeConfig.address(text, what: what)
            guard NodeCommand.Resync.isListening(address), !NodeCommand.Resync.isListening(PeerAddress(host: "127.0.0.2", port: address.port)) else {
                throw CLIError("node-0's \(what) does not listen only on \(address)")
            }
        }
        log("  ok: API and peer port listen on 127.0.0.1 only (as configured), not on 127.0.0.2")

        // The write endpoint takes only members' signatures.
        let outsiderKey = try consortium.suite.signingKey(try consortium.suite.privateKey(seed: consortium.suite.hash(Array("outsider".utf8)).bytes))
        let outsider = try SignedTransaction.sign(TransactionBody(chainID: consortium.genesis.chainID, signer: "outsider-ltd", nonce: 1,
                                                                  operation: .withdrawReceivable(ReceivableID(.zero))), with: outsiderKey, suite: consortium.suite)
        let (status, view) = try await consortium.postRaw(outsider, to: 1)
        guard (400..<500).contains(status), view?.code == "unknownMember" else {
            throw CLIError("a non-member's transaction got HTTP \(status) \(view?.code ?? "no code")")
        }
        for path in ["/admin", "/clock-offset", "/v1/clock-offset", "/v1/config", "/v1/keys", "/v1/shutdown", "/debug"] {
            for method in ["GET", "POST"] {
                var request = URLRequest(url: consortium.url(0, path))
                request.httpMethod = method
                let (_, response) = try await URLSession.shared.data(for: request)
                let code = (response as? HTTPURLResponse)?.statusCode ?? 0
                guard code == 404 || code == 405 else { throw CLIError("\(method) \(path) answered \(code)") }
            }
        }
        log("  ok: a non-member's transaction is refused with HTTP \(status) unknownMember; no admin path answers")

        consortium.stopAll()
        var secrets: [(String, String)] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: file("keys")).sorted() where name.hasSuffix(".key") {
            let key = try JSONDecoder().decode(KeyFile.self, from: try Files.read(file("keys/\(name)"), what: "key"))
            let raw = [UInt8](hex: key.privateKey) ?? []
            secrets.append(("\(name) private key (hex)", key.privateKey.lowercased()))
            secrets.append(("\(name) private key (HEX)", key.privateKey.uppercased()))
            secrets.append(("\(name) private key (base64)", Data(raw).base64EncodedString()))
            secrets.append(("\(name) private key (base64url)", Data(raw).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")))
        }
        for index in 0..<4 {
            let pem = try String(contentsOfFile: file("tls/node-\(index).key"), encoding: .utf8)
            let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
            secrets.append(("tls/node-\(index).key PEM", body))
            for line in pem.split(separator: "\n") where !line.hasPrefix("-----") { secrets.append(("tls/node-\(index).key PEM line", String(line))) }
            if let der = Data(base64Encoded: body) { secrets.append(("tls/node-\(index).key DER (hex)", der.map { String(format: "%02x", $0) }.joined())) }
        }
        // Whole secrets, and every 32-character window of them (a key printed in part).
        var needles: [(String, String)] = []
        for (what, secret) in secrets {
            needles.append((what, secret))
            if secret.count > 32 {
                let characters = Array(secret)
                for start in stride(from: 0, through: characters.count - 32, by: 8) { needles.append((what, String(characters[start..<start + 32]))) }
            }
        }
        var scanned = 0
        let outputs = try (0..<4).map { ("node-\($0)'s log", try String(contentsOfFile: consortium.logPath($0), encoding: .utf8)) }
            + refusals.map { ("the refused start's output", $0) }
        for (source, text) in outputs {
            scanned += text.utf8.count
            for marker in ["PRIVATE KEY", "privateKey"] where text.contains(marker) {
                throw CLIError("\(source) contains \"\(marker)\"")
            }
            for (what, needle) in needles where text.contains(needle) {
                throw CLIError("\(source) contains the \(what)")
            }
        }
        log("  ok: \(scanned) bytes of node logs and refused-start output hold none of \(secrets.count) private key forms (\(needles.count) patterns)")
        log("security scenario passed")
    }
}

/// A command run to completion (or killed after `seconds`), with its output and exit status.
struct CommandRun {
    var status: Int32
    var output: String

    init(_ executable: String, _ arguments: [String], seconds: Double) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let file = (NSTemporaryDirectory() as NSString).appendingPathComponent("scf-command-\(getpid())-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: file, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            try? handle.close()
            throw CLIError("`scf \(arguments.joined(separator: " "))` still ran after \(Int(seconds)) s: \((try? String(contentsOfFile: file, encoding: .utf8)) ?? "")")
        }
        process.waitUntilExit()
        try? handle.close()
        status = process.terminationStatus
        output = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
    }
}

/// A `scf node start --byzantine MODE` process for one of the consortium's validators.
final class ByzantineProcess {
    let process = Process()

    init(consortium: LocalConsortium, index: Int, mode: ByzantineMode) throws {
        try FileManager.default.createDirectory(atPath: (consortium.directory as NSString).appendingPathComponent("logs"), withIntermediateDirectories: true)
        let log = consortium.logPath(index)
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.executableURL = URL(fileURLWithPath: consortium.executable)
        process.arguments = ["node", "start", "--config", (consortium.directory as NSString).appendingPathComponent("node-\(index).json"),
                             "--byzantine", mode.rawValue]
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
}

extension LocalConsortium {
    func logPath(_ index: Int) -> String { (directory as NSString).appendingPathComponent("logs/node-\(index).log") }

    /// Submits without waiting; the HTTP status and the decoded answer.
    func postRaw(_ transaction: SignedTransaction, to index: Int) async throws -> (Int, TransactionView?) {
        var request = URLRequest(url: url(index, "/v1/transactions"))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONEncoder().encode(SubmitRequest(transaction: transaction.wireBytes.hexString))
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, try? JSONDecoder().decode(TransactionView.self, from: data))
    }

    /// A GET answered as text (for /metrics).
    func text(node index: Int, _ path: String) async throws -> String {
        let (data, _) = try await URLSession.shared.data(from: url(index, path))
        return String(decoding: data, as: UTF8.self)
    }

    /// Submits without waiting for the outcome.
    func post(_ transaction: SignedTransaction, to index: Int) async throws {
        var request = URLRequest(url: url(index, "/v1/transactions"))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONEncoder().encode(SubmitRequest(transaction: transaction.wireBytes.hexString))
        let (data, _) = try await URLSession.shared.data(for: request)
        if let view = try? JSONDecoder().decode(TransactionView.self, from: data), view.status == "rejected" {
            throw CLIError("node-\(index) refused \(transaction.id.short): \(view.code ?? "") \(view.message ?? "")")
        }
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
