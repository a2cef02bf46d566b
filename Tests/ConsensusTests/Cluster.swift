import Consensus
import LedgerCore
import LedgerTestKit

/// Four (or n) pure replicas in one test, with messages shuttled by hand: the nio-http2 style of
/// state-machine test. Nothing is random; the test decides what is delivered, dropped or fired.
struct Cluster {
    let consortium: TestConsortium
    var replicas: [Replica]
    var applications: [LedgerApplication]
    var persisted: [PersistentState?]
    var chains: [[CommittedBlock]]
    var timers: [ReplicaTimer?]
    var batchTimers: [ReplicaTimer?]
    var down: Set<Int> = []
    /// Messages sent and not yet delivered, in send order.
    var network: [(from: Int, to: Int, message: ConsensusMessage)] = []
    var reports: [(reporter: Int, culprit: ValidatorIndex, evidence: Evidence)] = []
    var outcomes: [(node: Int, outcome: Outcome)] = []
    var stateTransfers: [(node: Int, request: StateTransferRequest)] = []
    var nowMilliseconds: Int64 = 0
    /// Whether catch-up requests are answered (from the first live peer with the blocks).
    var servesCatchUp = true
    var factory: TransactionFactory
    var memberCount = 0

    init(nodes: Int = 4, consensus: ConsensusParameters = ConsensusParameters(checkpointInterval: 4, watermarkWindow: 8,
                                                                               viewChangeTimeoutMilliseconds: 1_000,
                                                                               maxViewChangeTimeoutMilliseconds: 8_000),
         pipelineDepth: UInt64 = 4, batchDelayMilliseconds: UInt64 = 0, suite: any CryptoSuite = Ed25519SHA256Suite()) {
        let consortium = TestConsortium(suite: suite, validators: nodes, consensus: consensus)
        self.consortium = consortium
        factory = TransactionFactory(consortium: consortium)
        replicas = (0..<nodes).map { index in
            Replica(configuration: ReplicaConfiguration(genesis: consortium.genesis, suite: consortium.suite,
                                                        me: ValidatorIndex(UInt16(index)), key: consortium.validatorKeys[index],
                                                        pipelineDepth: pipelineDepth, batchDelayMilliseconds: batchDelayMilliseconds))
        }
        applications = (0..<nodes).map { _ in LedgerApplication(genesis: consortium.genesis, suite: consortium.suite) }
        persisted = Array(repeating: nil, count: nodes)
        chains = Array(repeating: [], count: nodes)
        timers = Array(repeating: nil, count: nodes)
        batchTimers = Array(repeating: nil, count: nodes)
    }

    var count: Int { replicas.count }
    var now: ConsensusTime { TestConsortium.genesisTime.adding(milliseconds: 60_000 + nowMilliseconds) }

    /// A fresh, valid client transaction (the operator registers a new member).
    mutating func makeTransaction() -> SignedTransaction {
        memberCount += 1
        let id = MemberID("member-\(memberCount)")!
        let key = TestConsortium.key(for: "cluster-member/\(memberCount)", suite: consortium.suite)
        let member = Member(id: id, legalName: "Member \(memberCount) Ltd", creditCode: TestConsortium.creditCode(for: id.rawValue),
                            roles: [.supplier], publicKey: key.publicKey)
        return factory.make(TestConsortium.operatorID, .registerMember(member))
    }

    /// The client sends a transaction to the given replicas (all that are up by default).
    @discardableResult
    mutating func submit(_ transaction: SignedTransaction, to targets: [Int]? = nil) -> SignedTransaction {
        for index in targets ?? Array(0..<count) where !down.contains(index) {
            let output = replicas[index].onClientRequest(transaction, now: now, application: &applications[index])
            perform(output, at: index)
        }
        return transaction
    }

    @discardableResult
    mutating func submitNew(to targets: [Int]? = nil) -> SignedTransaction { submit(makeTransaction(), to: targets) }

    mutating func perform(_ output: ReplicaOutput, at index: Int) {
        outcomes.append((index, output.outcome))
        for directive in output.directives {
            switch directive {
            case .persist(let state): persisted[index] = state
            case .send(let message, let to): network.append((index, Int(to.value), message))
            case .broadcast(let message):
                for other in 0..<count where other != index { network.append((index, other, message)) }
            case .scheduleTimer(let timer, _):
                if timer.kind == .batch { batchTimers[index] = timer } else { timers[index] = timer }
            case .cancelTimer(let timer):
                if timers[index] == timer { timers[index] = nil }
                if batchTimers[index] == timer { batchTimers[index] = nil }
            case .commit(let block): chains[index].append(block)
            case .requestStateTransfer(let request): stateTransfers.append((index, request))
            case .reportMisbehaviour(let culprit, let evidence): reports.append((index, culprit, evidence))
            case .dropTransaction: break
            }
        }
    }

    /// Delivers one message now.
    mutating func deliver(_ message: ConsensusMessage, from: Int, to: Int) {
        guard !down.contains(to) else { return }
        let output = replicas[to].onMessage(message, from: ValidatorIndex(UInt16(from)), now: now, application: &applications[to])
        perform(output, at: to)
    }

    /// Delivers everything in flight (and whatever that sends) in FIFO order, dropping what
    /// `drop` says and anything to or from a down replica.
    /// Messages matching `hold` are delivered only once nothing else is left (reordering).
    mutating func run(maxSteps: Int = 100_000, drop: (Int, Int, ConsensusMessage) -> Bool = { _, _, _ in false },
                      hold: (Int, Int, ConsensusMessage) -> Bool = { _, _, _ in false }) {
        var steps = 0
        var held: [(from: Int, to: Int, message: ConsensusMessage)] = []
        var holding = true
        while steps < maxSteps {
            if network.isEmpty {
                guard !held.isEmpty else { break }
                network = held
                held = []
                holding = false
            }
            let (from, to, message) = network.removeFirst()
            steps += 1
            if down.contains(from) || down.contains(to) || drop(from, to, message) { continue }
            if holding, hold(from, to, message) {
                held.append((from, to, message))
                continue
            }
            deliver(message, from: from, to: to)
            serveStateTransfers()
        }
    }

    /// Answers catch-up requests from the first live peer with a longer chain.
    mutating func serveStateTransfers() {
        while servesCatchUp, !stateTransfers.isEmpty {
            let (index, request) = stateTransfers.removeFirst()
            guard !down.contains(index) else { continue }
            for peer in request.peers.map({ Int($0.value) }) where !down.contains(peer) && chains[peer].count >= Int(request.from.value) {
                let blocks = Array(chains[peer][(Int(request.from.value) - 1)...])
                let output = replicas[index].onCommittedBlocks(blocks, now: now, application: &applications[index])
                perform(output, at: index)
                break
            }
        }
    }

    /// Fires replica `index`'s armed timer (as if its timeout passed).
    mutating func fireTimer(_ index: Int) {
        guard let timer = timers[index], !down.contains(index) else { return }
        timers[index] = nil
        nowMilliseconds += Int64(replicas[index].currentTimeoutMilliseconds)
        let output = replicas[index].onTimer(timer, now: now, application: &applications[index])
        perform(output, at: index)
        serveStateTransfers()
    }

    /// Fires replica `index`'s armed batch timer (as if the batch delay passed).
    mutating func fireBatchTimer(_ index: Int) {
        guard let timer = batchTimers[index], !down.contains(index) else { return }
        batchTimers[index] = nil
        let output = replicas[index].onTimer(timer, now: now, application: &applications[index])
        perform(output, at: index)
    }

    mutating func crash(_ index: Int) {
        down.insert(index)
        timers[index] = nil
        batchTimers[index] = nil
    }

    /// Restarts from what was persisted: the last `.persist` and the committed chain.
    mutating func restart(_ index: Int) {
        down.remove(index)
        replicas[index] = Replica(configuration: replicas[index].configuration)
        applications[index].discardSpeculative()
        let output = replicas[index].onRestart(persisted: persisted[index], head: applications[index].tip, now: now,
                                               application: &applications[index])
        perform(output, at: index)
        serveStateTransfers()
    }

    func hashes(_ index: Int) -> [Hash] { chains[index].map { $0.block.hash(suite: consortium.suite) } }

    /// Every certificate of every chain verifies, and all chains are prefixes of the longest.
    func chainsAgree() -> Bool {
        let longest = (0..<count).map { hashes($0) }.max { $0.count < $1.count } ?? []
        for index in 0..<count {
            guard hashes(index) == Array(longest.prefix(chains[index].count)) else { return false }
            for block in chains[index] {
                guard (try? block.certificate.verify(validators: consortium.validatorSet, chainID: consortium.genesis.chainID,
                                                     suite: consortium.suite)) != nil else { return false }
            }
        }
        return true
    }
}
