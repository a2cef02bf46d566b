import Consensus
import LedgerCore

/// Settings of one simulated run.
public struct SimulationConfiguration: Sendable {
    public var seed: UInt64
    public var nodes: Int
    /// Client transactions submitted during the fault phase (all valid), plus one forged one that
    /// must never commit when `includeForgedTransaction` is set.
    public var transactions: Int
    public var includeForgedTransaction: Bool
    public var faults: FaultPlan
    /// After the faults end, every honest replica must commit every submitted transaction within this.
    public var livenessBound: UInt64
    public var consensus: ConsensusParameters
    public var pipelineDepth: UInt64
    /// The client sends uncommitted transactions again this often.
    public var clientRetransmit: UInt64
    /// The client sends each transaction (and each retransmission) to one random validator only,
    /// relying on backups forwarding it to the primary; otherwise to every validator.
    public var clientSendsToOne: Bool = false
    /// Guard against message storms.
    public var maxSteps: Int
    /// Keep a readable trace of every event (used when replaying a failing seed).
    public var trace: Bool
    /// Sign with real Ed25519 instead of the ideal-signature stand-in (`SimulationSuite`); about
    /// ten times slower per step, so for a few seeds only.
    public var realSignatures: Bool = false
    /// The primary waits this long for a full block (`ReplicaConfiguration.batchDelayMilliseconds`).
    public var batchDelayMilliseconds: UInt64 = 0

    public static let defaultConsensus = ConsensusParameters(checkpointInterval: 4, watermarkWindow: 8, maxBlockTransactions: 16,
                                                             viewChangeTimeoutMilliseconds: 300, maxViewChangeTimeoutMilliseconds: 2_400,
                                                             maxClockSkewMilliseconds: 1_000)

    public init(seed: UInt64, nodes: Int = 4, transactions: Int = 8, includeForgedTransaction: Bool = true, faults: FaultPlan? = nil,
                livenessBound: UInt64 = 30_000, consensus: ConsensusParameters = SimulationConfiguration.defaultConsensus,
                pipelineDepth: UInt64 = 4, clientRetransmit: UInt64 = 600, maxSteps: Int = 400_000, trace: Bool = false) {
        self.seed = seed
        self.nodes = nodes
        self.transactions = transactions
        self.includeForgedTransaction = includeForgedTransaction
        self.faults = faults ?? .none(nodes: nodes)
        self.livenessBound = livenessBound
        self.consensus = consensus
        self.pipelineDepth = pipelineDepth
        self.clientRetransmit = clientRetransmit
        self.maxSteps = maxSteps
        self.trace = trace
    }

    /// A run with a random mix of faults drawn from the seed.
    public static func mixed(seed: UInt64, nodes: Int, transactions: Int = 8, faultWindow: UInt64 = 2_500) -> SimulationConfiguration {
        var random = SimulationRandom(seed: seed ^ 0x5EED_FA17)
        let plan = FaultPlan.mixed(nodes: nodes, random: &random, end: faultWindow)
        var configuration = SimulationConfiguration(seed: seed, nodes: nodes, transactions: transactions, faults: plan)
        configuration.clientSendsToOne = random.chance(500)
        return configuration
    }
}

/// What a run found.
public struct SimulationReport: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var nodes: Int
    public var plan: String
    public var steps: Int = 0
    public var virtualTime: UInt64 = 0
    public var messagesDelivered: Int = 0
    public var committedHeight: UInt64 = 0
    public var viewChanges: UInt64 = 0
    public var stateTransfers: Int = 0
    public var misbehaviourReports: Int = 0
    /// Virtual milliseconds from submission to the first honest commit, per transaction.
    public var commitLatencies: [UInt64] = []
    public var violation: String?
    public var trace: [String] = []

    public var passed: Bool { violation == nil }

    public var description: String {
        var text = "seed \(seed) n=\(nodes): \(passed ? "ok" : "VIOLATION: \(violation!)")\n  \(plan)\n"
        text += "  steps \(steps), virtual \(virtualTime)ms, height \(committedHeight), max view \(viewChanges), "
        text += "transfers \(stateTransfers), misbehaviour reports \(misbehaviourReports)"
        return text
    }
}

/// The deterministic simulator: one thread, virtual time, a seeded generator, n replicas running
/// the real `Replica` and `LedgerApplication`, a client, and a fault plan. Invariants are checked
/// after every step; on a violation the report carries the seed and (when tracing) the trace.
public final class Simulation {
    public let configuration: SimulationConfiguration
    let consortium: TestConsortium
    let suite: any CryptoSuite
    var random: SimulationRandom
    var queue = EventQueue()
    var now: UInt64 = 0
    var nodes: [SimulationNode] = []
    var report: SimulationReport
    var transactions: [SignedTransaction] = []
    var submittedAt: [UInt64?] = []
    var firstCommitAt: [Hash: UInt64] = [:]
    var transactionIndex: [Hash: Int] = [:]
    var forged: SignedTransaction?
    var globalChain: [Hash] = []
    var genesisHash: Hash

    enum Event {
        case deliver(from: Int, to: Int, ConsensusMessage)
        case timer(node: Int, ReplicaTimer, epoch: Int)
        case client(node: Int, SignedTransaction)
        case submit(index: Int)
        case syncRequest(requester: Int, peer: Int, from: Height)
        case syncResponse(node: Int, [CommittedBlock])
        case crash(node: Int)
        case restart(node: Int)
        case clientRetransmit
    }

    public init(_ configuration: SimulationConfiguration) {
        self.configuration = configuration
        suite = configuration.realSignatures ? Ed25519SHA256Suite() : SimulationSuite()
        consortium = TestConsortium(suite: suite, validators: configuration.nodes, chainID: "scf-sim",
                                    consensus: configuration.consensus)
        random = SimulationRandom(seed: configuration.seed)
        report = SimulationReport(seed: configuration.seed, nodes: configuration.nodes,
                                  plan: configuration.faults.description + (configuration.clientSendsToOne ? ", client sends to one node" : ""))
        genesisHash = BlockExecutor.genesisTip(genesis: consortium.genesis, suite: suite).hash
        for index in 0..<configuration.nodes {
            let replicaConfiguration = ReplicaConfiguration(genesis: consortium.genesis, suite: suite, me: ValidatorIndex(UInt16(index)),
                                                            key: consortium.validatorKeys[index], pipelineDepth: configuration.pipelineDepth,
                                                            batchDelayMilliseconds: configuration.batchDelayMilliseconds)
            nodes.append(SimulationNode(replica: Replica(configuration: replicaConfiguration),
                                        application: LedgerApplication(genesis: consortium.genesis, suite: suite),
                                        byzantine: configuration.faults.byzantine[index]))
        }
        makeTransactions()
    }

    var honest: [Int] { (0..<nodes.count).filter { nodes[$0].byzantine == nil } }

    func makeTransactions() {
        var factory = TransactionFactory(consortium: consortium)
        for index in 0..<configuration.transactions {
            let transaction: SignedTransaction
            if index % 2 == 0 {
                let id = MemberID("sim-\(configuration.seed % 100_000)-\(index)")!
                let key = TestConsortium.key(for: "sim-member/\(index)", suite: suite)
                let member = Member(id: id, legalName: "Simulated Supplier \(index)", creditCode: TestConsortium.creditCode(for: id.rawValue),
                                    roles: [.supplier], publicKey: key.publicKey)
                transaction = factory.make(TestConsortium.operatorID, .registerMember(member))
            } else {
                let terms = consortium.terms(face: Int64(10_000_00 + index), invoiceNumber: "\(40_000_000 + index)")
                transaction = factory.make(TestConsortium.tier1, .proposeReceivable(terms))
            }
            transactionIndex[transaction.id] = transactions.count
            transactions.append(transaction)
        }
        submittedAt = Array(repeating: nil, count: transactions.count)
        if configuration.includeForgedTransaction {
            let wrongKey = TestConsortium.key(for: "not-the-operator", suite: suite)
            forged = factory.forge(TestConsortium.operatorID, .setMemberStatus(member: TestConsortium.bankB, status: .blacklisted,
                                                                                reason: "forged"), nonce: 999, key: wrongKey)
        }
    }

    // MARK: - Running

    /// Runs until every honest replica committed every transaction after the faults ended, or a
    /// violation, or the liveness bound.
    public func run() -> SimulationReport {
        let plan = configuration.faults
        let window = max(plan.end, 400)
        for index in transactions.indices {
            schedule(at: UInt64(random.between(0, Int64(window))), .submit(index: index))
        }
        if let forged {
            schedule(at: UInt64(random.between(0, Int64(window))), .client(node: -1, forged))
        }
        for crash in plan.crashes {
            schedule(at: crash.at, .crash(node: crash.node))
            schedule(at: max(crash.restartAt, crash.at + 1), .restart(node: crash.node))
        }
        schedule(at: configuration.clientRetransmit, .clientRetransmit)
        let deadline = plan.end + configuration.livenessBound
        while let (time, event) = queue.pop() {
            now = time
            if now > deadline { break }
            report.steps += 1
            if report.steps > configuration.maxSteps {
                fail("step limit of \(configuration.maxSteps) reached (message storm?)")
                break
            }
            handle(event)
            if report.violation != nil { break }
            if now >= plan.end, allCommitted() { break }
        }
        report.virtualTime = now
        if report.violation == nil, !allCommitted() {
            let missing = honest.map { node in
                "v\(node): height \(nodes[node].chain.count), view \(nodes[node].replica.view)\(nodes[node].replica.viewChangeTarget.map { "→\($0)" } ?? ""), missing \(transactions.filter { !nodes[node].application.committedIDs.contains($0.id) }.count)"
            }
            fail("liveness: not every honest replica committed every transaction within \(configuration.livenessBound)ms after the faults ended (\(missing.joined(separator: "; ")))")
        }
        report.committedHeight = UInt64(globalChain.count)
        report.viewChanges = honest.map { nodes[$0].replica.view.value }.max() ?? 0
        for (index, transaction) in transactions.enumerated() {
            if let submitted = submittedAt[index], let first = firstCommitAt[transaction.id], first >= submitted {
                report.commitLatencies.append(first - submitted)
            }
        }
        return report
    }

    func allCommitted() -> Bool {
        submittedAt.allSatisfy { $0 != nil } && honest.allSatisfy { node in
            nodes[node].up && transactions.allSatisfy { nodes[node].application.committedIDs.contains($0.id) }
        }
    }

    func schedule(at time: UInt64, _ event: Event) { queue.push(time: time, event) }

    func clock(_ node: Int) -> ConsensusTime {
        TestConsortium.genesisTime.adding(milliseconds: Int64(now) + 60_000 + configuration.faults.clockSkew[node])
    }

    var faultsActive: Bool { now < configuration.faults.end }

    func trace(_ text: @autoclosure () -> String) {
        if configuration.trace { report.trace.append("[\(now)ms] \(text())") }
    }

    func fail(_ message: String) {
        if report.violation == nil {
            report.violation = message
            trace("VIOLATION: \(message)")
        }
    }

    func handle(_ event: Event) {
        switch event {
        case .deliver(let from, let to, let message):
            guard nodes[to].up else { return }
            report.messagesDelivered += 1
            let node = nodes[to]
            node.observe(message)
            let output = node.replica.onMessage(message, from: ValidatorIndex(UInt16(from)), now: clock(to), application: &node.application)
            trace("v\(from)→v\(to) \(describe(message)) → \(describe(output.outcome))")
            perform(output, at: to)
        case .timer(let index, let timer, let epoch):
            let node = nodes[index]
            guard node.up, node.epoch == epoch else { return }
            let output = node.replica.onTimer(timer, now: clock(index), application: &node.application)
            if case .accepted = output.outcome { trace("v\(index) \(timer) fired (view \(node.replica.view))") }
            perform(output, at: index)
        case .submit(let index):
            submittedAt[index] = now
            trace("client submits tx#\(index) \(transactions[index].id.short)")
            if configuration.clientSendsToOne {
                clientSend(transactions[index], to: Int(random.below(UInt64(nodes.count))))
            } else {
                for node in 0..<nodes.count { clientSend(transactions[index], to: node) }
            }
        case .client(let index, let transaction):
            if index < 0 {
                for node in 0..<nodes.count { clientSend(transaction, to: node) }
                return
            }
            let node = nodes[index]
            guard node.up else { return }
            let output = node.replica.onClientRequest(transaction, now: clock(index), application: &node.application)
            perform(output, at: index)
        case .syncRequest(let requester, let peer, let from):
            guard nodes[peer].up else { return }
            let chain = nodes[peer].chain
            let start = Int(from.value) - 1
            guard start >= 0, start < chain.count else { return }
            var blocks = Array(chain[start..<min(chain.count, start + 32)])
            if nodes[peer].byzantine == .forger, !blocks.isEmpty {
                blocks[0].certificate.votes = blocks[0].certificate.votes.map {
                    CommitVote(validator: $0.validator, signature: Signature(rawRepresentation: Array($0.signature.rawRepresentation.reversed())))
                }
            }
            transmit(.syncResponse(node: requester, blocks), from: peer, to: requester)
        case .syncResponse(let index, let blocks):
            let node = nodes[index]
            guard node.up else { return }
            report.stateTransfers += 1
            let output = node.replica.onCommittedBlocks(blocks, now: clock(index), application: &node.application)
            trace("v\(index) state transfer of \(blocks.count) blocks from \(blocks.first?.block.header.height.description ?? "-") → \(describe(output.outcome))")
            perform(output, at: index)
        case .crash(let index):
            let node = nodes[index]
            guard node.up else { return }
            node.up = false
            node.epoch += 1
            trace("v\(index) crashes")
        case .restart(let index):
            let node = nodes[index]
            guard !node.up else { return }
            node.up = true
            node.epoch += 1
            node.replica = Replica(configuration: node.replica.configuration)
            let output = node.replica.onRestart(persisted: node.persisted, head: node.application.tip, now: clock(index),
                                                application: &node.application)
            trace("v\(index) restarts at height \(node.chain.count), view \(node.replica.view)")
            perform(output, at: index)
        case .clientRetransmit:
            for (index, transaction) in transactions.enumerated() where submittedAt[index] != nil {
                let lacking = honest.filter { !nodes[$0].application.committedIDs.contains(transaction.id) }
                guard !lacking.isEmpty else { continue }
                if configuration.clientSendsToOne {
                    clientSend(transaction, to: lacking[Int(random.below(UInt64(lacking.count)))])
                } else {
                    for node in lacking { clientSend(transaction, to: node) }
                }
            }
            schedule(at: now + configuration.clientRetransmit, .clientRetransmit)
        }
        if case .deliver(_, let to, _) = event { checkView(to) } else { for index in nodes.indices { checkView(index) } }
    }

    func checkView(_ index: Int) {
        let node = nodes[index]
        guard node.byzantine == nil, node.up else { return }
        let view = node.replica.view
        if view < node.highestView {
            fail("view went back at v\(index): \(node.highestView) → \(view)")
        }
        node.highestView = max(node.highestView, view)
    }

    // MARK: - Directives

    func perform(_ output: ReplicaOutput, at index: Int) {
        let node = nodes[index]
        for directive in output.directives {
            switch directive {
            case .persist(let state):
                node.persisted = state
            case .send(let message, let to):
                send(message, from: index, to: Int(to.value))
            case .broadcast(let message):
                for other in nodes.indices where other != index { send(message, from: index, to: other) }
            case .scheduleTimer(let timer, let delay):
                schedule(at: now + delay, .timer(node: index, timer, epoch: node.epoch))
            case .cancelTimer:
                break
            case .commit(let committed):
                record(committed, at: index)
            case .requestStateTransfer(let request):
                // Ask every peer: any one honest answer with valid certificates is enough.
                for peer in request.peers.map({ Int($0.value) }) {
                    transmit(.syncRequest(requester: index, peer: peer, from: request.from), from: index, to: peer)
                }
            case .reportMisbehaviour(let culprit, let evidence):
                report.misbehaviourReports += 1
                trace("v\(index) reports \(culprit): \(evidence)")
                if node.byzantine == nil, nodes[Int(culprit.value)].byzantine == nil {
                    fail("honest v\(index) accuses honest \(culprit): \(evidence)")
                }
            case .dropTransaction:
                break
            }
        }
    }

    /// Safety checks on every commit by an honest replica.
    func record(_ committed: CommittedBlock, at index: Int) {
        let node = nodes[index]
        let block = committed.block
        let hash = block.hash(suite: suite)
        let height = Int(block.header.height.value)
        trace("v\(index) commits height \(height) \(hash.short) (\(block.transactions.count) tx, view \(committed.certificate.view))")
        if node.byzantine != nil {
            node.chain.append(committed)
            return
        }
        guard height == node.chain.count + 1 else {
            fail("v\(index) committed height \(height) after \(node.chain.count)")
            return
        }
        let previous = node.chain.last.map { $0.block.hash(suite: suite) } ?? genesisHash
        guard block.header.previousHash == previous else {
            fail("v\(index) committed block \(height) that does not extend its chain")
            return
        }
        if height <= globalChain.count {
            if globalChain[height - 1] != hash {
                fail("agreement: v\(index) committed \(hash.short) at height \(height), another honest replica committed \(globalChain[height - 1].short)")
                return
            }
        } else {
            globalChain.append(hash)
        }
        guard committed.certificate.blockHash == hash, committed.certificate.height == block.header.height else {
            fail("v\(index) committed block \(height) with a certificate for another block")
            return
        }
        do {
            try committed.certificate.verify(validators: consortium.validatorSet, chainID: consortium.genesis.chainID, suite: suite)
        } catch {
            fail("v\(index) committed block \(height) with an invalid certificate: \(error)")
            return
        }
        node.chain.append(committed)
        for transaction in block.transactions {
            if transaction.id == forged?.id { fail("a forged transaction was committed at height \(height)") }
            if firstCommitAt[transaction.id] == nil { firstCommitAt[transaction.id] = now }
        }
    }

    // MARK: - Network

    func clientSend(_ transaction: SignedTransaction, to node: Int) {
        if faultsActive, random.chance(configuration.faults.dropPermille) { return }
        schedule(at: now + UInt64(random.between(configuration.faults.latency.lowerBound, configuration.faults.latency.upperBound)),
                 .client(node: node, transaction))
    }

    /// A consensus message from a replica, through its Byzantine behaviour (if any) and the network.
    func send(_ message: ConsensusMessage, from: Int, to: Int) {
        let node = nodes[from]
        if let behavior = node.byzantine {
            for tampered in node.tamper(message, to: to, behavior: behavior, random: &random, suite: suite,
                                        chainID: consortium.genesis.chainID, validators: consortium.validatorSet) {
                transmit(.deliver(from: from, to: to, tampered), from: from, to: to)
            }
        } else {
            transmit(.deliver(from: from, to: to, message), from: from, to: to)
        }
    }

    func transmit(_ event: Event, from: Int, to: Int) {
        let plan = configuration.faults
        if faultsActive {
            if plan.partitions.contains(where: { $0.start <= now && now < $0.end && $0.separates(from, to) }) { return }
            if random.chance(plan.dropPermille) { return }
        }
        var delay = UInt64(random.between(plan.latency.lowerBound, plan.latency.upperBound))
        if faultsActive, random.chance(plan.delayPermille) {
            delay += UInt64(random.between(plan.longDelay.lowerBound, plan.longDelay.upperBound))
        }
        schedule(at: now + delay, event)
        if faultsActive, random.chance(plan.duplicatePermille) {
            schedule(at: now + delay + UInt64(random.between(0, 50)), event)
        }
    }

    // MARK: - Trace formatting

    func describe(_ message: ConsensusMessage) -> String {
        switch message {
        case .prePrepare(let m): "pre-prepare(v\(m.view) h\(m.height) \(m.blockHash.short) \(m.block.transactions.count)tx)"
        case .prepare(let m): "prepare(v\(m.view) h\(m.height) \(m.blockHash.short) by \(m.replica))"
        case .commit(let m): "commit(v\(m.view) h\(m.height) \(m.blockHash.short) by \(m.replica))"
        case .checkpoint(let m): "checkpoint(h\(m.height) \(m.blockHash.short) by \(m.replica))"
        case .viewChange(let m): "view-change(to \(m.newView) by \(m.replica), cp \(m.checkpoint.height), prepared \(m.prepared.map(\.height.value)))"
        case .newView(let m): "new-view(\(m.view), \(m.viewChanges.count) vcs, reproposals \(m.proposals.map(\.height.value)))"
        case .request(let transaction): "request(\(transaction.id.short))"
        }
    }

    func describe(_ outcome: Outcome) -> String {
        switch outcome {
        case .accepted: "ok"
        case .ignored(let reason): "ignored(\(reason.rawValue))"
        case .rejected(let reason): "rejected(\(reason))"
        case .misbehaving(let who, _): "misbehaving(\(who))"
        }
    }
}

/// One simulated validator: the replica, its application, and what survives a crash.
final class SimulationNode {
    var replica: Replica
    var application: LedgerApplication
    var up = true
    var epoch = 0
    /// The last `.persist` performed.
    var persisted: PersistentState?
    /// Committed blocks as stored.
    var chain: [CommittedBlock] = []
    var highestView = View(0)
    let byzantine: ByzantineBehavior?
    /// For Byzantine behaviours: what it sent and saw.
    var sentLog: [ConsensusMessage] = []
    var seenProposals: [UInt64: [ProposalSignature]] = [:]
    var received: [ConsensusMessage] = []

    init(replica: Replica, application: LedgerApplication, byzantine: ByzantineBehavior?) {
        self.replica = replica
        self.application = application
        self.byzantine = byzantine
    }

    func observe(_ message: ConsensusMessage) {
        guard byzantine != nil else { return }
        switch message {
        case .prePrepare(let m): note(m.proposal)
        case .prepare(let m): note(m.proposal)
        default: break
        }
        if received.count < 64 { received.append(message) }
    }

    func note(_ proposal: ProposalSignature) {
        var list = seenProposals[proposal.height.value] ?? []
        if !list.contains(proposal) { list.append(proposal) }
        seenProposals[proposal.height.value] = list
    }

    /// What a Byzantine node actually sends to `to` instead of `message`.
    func tamper(_ message: ConsensusMessage, to: Int, behavior: ByzantineBehavior, random: inout SimulationRandom,
                suite: any CryptoSuite, chainID: String, validators: ValidatorSet) -> [ConsensusMessage] {
        let me = replica.me
        let key = replica.configuration.key
        if sentLog.count < 200 { sentLog.append(message) }
        switch behavior {
        case .silentPrimary:
            return validators.primary(of: replica.viewChangeTarget ?? replica.view) == me ? [] : [message]
        case .skewedClock:
            return [message]   // the fault is its clock reading (FaultPlan.clockSkew)
        case .equivocatingPrimary:
            guard case .prePrepare(let original) = message, to % 2 == 1 else { return [message] }
            var block = original.block
            block.header.timestamp = block.header.timestamp.adding(milliseconds: 1)
            let hash = block.hash(suite: suite)
            guard let proposal = try? ProposalSignature.sign(chainID: chainID, view: original.view, height: original.height,
                                                             blockHash: hash, key: key, suite: suite) else { return [message] }
            note(proposal)
            return [.prePrepare(PrePrepare(block: block, proposal: proposal))]
        case .doubleVoter:
            switch message {
            case .prepare(let prepare) where to % 2 == 1:
                let other = (seenProposals[prepare.height.value] ?? []).first { $0.view == prepare.view && $0.blockHash != prepare.blockHash }
                guard let other, let second = try? Prepare.sign(proposal: other, chainID: chainID, replica: me, key: key, suite: suite) else {
                    return [message]
                }
                return [message, .prepare(second)]
            case .commit(let commit) where to % 2 == 1:
                let other = (seenProposals[commit.height.value] ?? []).first { $0.view == commit.view && $0.blockHash != commit.blockHash }
                let fake = other?.blockHash ?? suite.hash(Array("fake-block/\(commit.height)/\(commit.view)".utf8))
                guard let second = try? Commit.sign(chainID: chainID, view: commit.view, height: commit.height, blockHash: fake,
                                                    replica: me, key: key, suite: suite) else { return [message] }
                return random.chance(500) ? [.commit(second), message] : [message, .commit(second)]
            default:
                return [message]
            }
        case .forger:
            if random.chance(100), let relayed = received.last { return [relayed, message] }
            guard random.chance(300) else { return [message] }
            return [corruptSignature(message)]
        case .staleViewSpammer:
            var out = [message]
            if random.chance(300), !sentLog.isEmpty {
                out.append(sentLog[Int(random.below(UInt64(sentLog.count)))])
            }
            if random.chance(200) {
                let far = Height(replica.highWatermark.value + 1 + random.below(1_000))
                if let commit = try? Commit.sign(chainID: chainID, view: View(random.below(3)), height: far,
                                                 blockHash: suite.hash(Array("spam/\(far)".utf8)), replica: me, key: key, suite: suite) {
                    out.append(.commit(commit))
                }
            }
            if random.chance(100), let change = try? ViewChange.sign(newView: View(random.below(2)), replica: me,
                                                                     checkpoint: replica.stableCheckpoint, prepared: [],
                                                                     chainID: chainID, key: key, suite: suite) {
                out.append(.viewChange(change))
            }
            return out
        }
    }

    func corruptSignature(_ message: ConsensusMessage) -> ConsensusMessage {
        func flip(_ signature: Signature) -> Signature {
            var raw = signature.rawRepresentation
            if !raw.isEmpty { raw[0] ^= 0x5A }
            return Signature(rawRepresentation: raw)
        }
        switch message {
        case .prePrepare(var m): m.proposal.signature = flip(m.proposal.signature); return .prePrepare(m)
        case .prepare(var m): m.signature = flip(m.signature); return .prepare(m)
        case .commit(var m): m.vote.signature = flip(m.vote.signature); return .commit(m)
        case .checkpoint(var m): m.signature = flip(m.signature); return .checkpoint(m)
        case .viewChange(var m): m.signature = flip(m.signature); return .viewChange(m)
        case .newView(var m): m.signature = flip(m.signature); return .newView(m)
        case .request: return message
        }
    }
}

/// A binary min-heap of events ordered by (time, insertion order), so equal times keep FIFO order.
struct EventQueue {
    private var heap: [(time: UInt64, sequence: UInt64, event: Simulation.Event)] = []
    private var sequence: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }

    mutating func push(time: UInt64, _ event: Simulation.Event) {
        sequence += 1
        heap.append((time, sequence, event))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(child, parent) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (UInt64, Simulation.Event)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count, less(left, smallest) { smallest = left }
            if right < heap.count, less(right, smallest) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return (top.time, top.event)
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        (heap[a].time, heap[a].sequence) < (heap[b].time, heap[b].sequence)
    }
}
