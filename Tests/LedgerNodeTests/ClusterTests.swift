import Foundation
import LedgerCore
@testable import LedgerNode
import LedgerTestKit
import Synchronization
import Testing

/// Validators in one process, joined by an in-memory network that can cut a node off.
final class MemoryNetwork: Sendable {
    let nodes = Mutex<[ValidatorIndex: ValidatorNode]>([:])

    struct Links: PeerLinks {
        let network: MemoryNetwork
        let me: ValidatorIndex
        func send(_ frame: [UInt8], to peer: ValidatorIndex) { network.deliver(frame, from: me, to: peer) }
        func broadcast(_ frame: [UInt8]) {
            for peer in network.nodes.withLock({ Array($0.keys) }) where peer != me { network.deliver(frame, from: me, to: peer) }
        }
    }

    /// Rewrites a frame in flight (nil: deliver it as sent).
    let tamper = Mutex<(@Sendable (_ frame: [UInt8], _ from: ValidatorIndex, _ to: ValidatorIndex) -> [UInt8]?)?>(nil)

    /// Which frames to hold back instead of delivering (nil: none), until `release`.
    let hold = Mutex<(@Sendable (_ frame: [UInt8], _ from: ValidatorIndex, _ to: ValidatorIndex) -> Bool)?>(nil)
    let held = Mutex<[([UInt8], ValidatorIndex, ValidatorIndex)]>([])

    /// Stops holding frames back and delivers the held ones, in the order they were sent.
    func release() {
        hold.withLock { $0 = nil }
        for (frame, from, to) in held.withLock({ held in defer { held = [] }; return held }) { deliver(frame, from: from, to: to) }
    }

    func deliver(_ frame: [UInt8], from: ValidatorIndex, to: ValidatorIndex) {
        guard nodes.withLock({ $0[from] != nil }), let node = nodes.withLock({ $0[to] }) else { return }
        if let hold = hold.withLock({ $0 }), hold(frame, from, to) {
            held.withLock { $0.append((frame, from, to)) }
            return
        }
        let rewritten = tamper.withLock { $0 }.flatMap { $0(frame, from, to) }
        node.receive(rewritten ?? frame, from: from)
    }

    func join(_ node: ValidatorNode) {
        let me = node.configuration.me
        node.attach(Links(network: self, me: me))
        nodes.withLock { $0[me] = node }
    }

    func cut(_ index: ValidatorIndex) -> ValidatorNode? {
        let node = nodes.withLock { $0.removeValue(forKey: index) }
        node?.stop()
        return node
    }
}

struct TestCluster {
    let consortium: TestConsortium
    let directory: String
    let network = MemoryNetwork()
    var factory: TransactionFactory

    init(validators: Int = 4) throws {
        consortium = TestConsortium(validators: validators, consensus: ConsensusParameters(checkpointInterval: 16, watermarkWindow: 64,
                                                                                           viewChangeTimeoutMilliseconds: 1_000,
                                                                                           maxViewChangeTimeoutMilliseconds: 3_000))
        directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("scf-cluster-\(UUID().uuidString)")
        factory = TransactionFactory(consortium: consortium)
        for index in 0..<validators { try start(ValidatorIndex(UInt16(index))) }
    }

    func dataDirectory(_ index: ValidatorIndex) -> String { (directory as NSString).appendingPathComponent("node-\(index.value)") }

    @discardableResult
    func start(_ index: ValidatorIndex, farBehindTransactions: Int = ValidatorNode.Configuration.defaultFarBehindTransactions,
               events: (@Sendable (ValidatorNode.Event) -> Void)? = nil) throws -> ValidatorNode {
        let node = try ValidatorNode(configuration: .init(genesis: consortium.genesis, suite: consortium.suite, me: index,
                                                          key: consortium.validatorKeys[Int(index.value)],
                                                          dataDirectory: dataDirectory(index), farBehindTransactions: farBehindTransactions),
                                     events: events)
        network.join(node)
        return node
    }

    func node(_ index: ValidatorIndex) -> ValidatorNode { network.nodes.withLock { $0[index]! } }
    var running: [ValidatorNode] { network.nodes.withLock { nodes in nodes.keys.sorted().map { nodes[$0]! } } }

    /// A proposal by a fresh supplier-free transaction: member registrations by the operator.
    mutating func registration(_ number: Int) -> SignedTransaction {
        let key = TestConsortium.key(for: "cluster-member-\(number)", suite: consortium.suite)
        let member = Member(id: MemberID("member-\(number)")!, legalName: "Member \(number) Ltd",
                            creditCode: TestConsortium.creditCode(for: "m\(number)"), roles: [.supplier], publicKey: key.publicKey)
        return factory.make(TestConsortium.operatorID, .registerMember(member))
    }

    /// Waits until every running node has committed `id` (or fails after `seconds`).
    func waitUntilEveryoneCommitted(_ id: Hash, seconds: Double = 120) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if running.allSatisfy({ if case .committed = $0.status(of: id) { true } else { false } }) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("transaction \(id.short) not committed everywhere in \(seconds)s: \(running.map { ($0.configuration.me, $0.status(of: id), $0.nodeStatus.height) })")
    }

    /// Commits registrations `before` everywhere (the first on its own), cuts node `behind` off,
    /// and commits registrations `numbers` on the others (as `commitRegistrations`); the height
    /// they reached.
    mutating func leave(_ behind: ValidatorIndex, behindBy numbers: ClosedRange<Int>, door: (Int) -> ValidatorIndex,
                        waitEvery: Int, before: ClosedRange<Int> = 0...0) async throws -> Height {
        let first = registration(before.lowerBound)
        #expect(await node(0).submit(first) == nil)
        try await waitUntilEveryoneCommitted(first.id)
        if before.count > 1 { _ = try await commitRegistrations((before.lowerBound + 1)...before.upperBound, door: door, waitEvery: waitEvery) }
        _ = network.cut(behind)
        _ = try await commitRegistrations(numbers, door: door, waitEvery: waitEvery)
        return node(0).nodeStatus.height
    }

    /// Commits registrations `numbers`, each submitted to `door(number)`, waiting until every
    /// running node has committed after each `waitEvery` of them (small blocks); the last id.
    mutating func commitRegistrations(_ numbers: ClosedRange<Int>, door: (Int) -> ValidatorIndex, waitEvery: Int) async throws -> Hash {
        var last = Hash.zero
        for number in numbers {
            let transaction = registration(number)
            #expect(await node(door(number)).submit(transaction) == nil)
            last = transaction.id
            if number % waitEvery == 0 { try await waitUntilEveryoneCommitted(last) }
        }
        try await waitUntilEveryoneCommitted(last)
        return last
    }

    func waitForHeight(_ node: ValidatorNode, atLeast height: Height, seconds: Double = 120) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, node.nodeStatus.height < height { try await Task.sleep(for: .milliseconds(20)) }
        #expect(node.nodeStatus.height >= height, "node \(node.configuration.me) is at \(node.nodeStatus.height), wanted \(height)")
    }

    func headsAgree() -> Bool {
        let heads = running.map { $0.store.tip }
        return Set(heads.map(\.hash)).count == 1
    }

    func cleanUp() {
        for node in running { node.stop() }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite(.serialized) struct ClusterTests {
    @Test func fourNodesCommitTransactionsSubmittedToAnyNode() async throws {
        var cluster = try TestCluster()
        defer { cluster.cleanUp() }
        var last = Hash.zero
        for number in 0..<12 {
            let transaction = cluster.registration(number)
            #expect(await cluster.node(ValidatorIndex(UInt16(number % 4))).submit(transaction) == nil)
            last = transaction.id
        }
        try await cluster.waitUntilEveryoneCommitted(last)
        let outcome = await cluster.node(2).waitForOutcome(of: last, timeout: .seconds(5))
        guard case .committed = outcome else { Issue.record("waitForOutcome said \(outcome)"); return }
        // Equal heads once all have the same height.
        let height = cluster.running.map { $0.nodeStatus.height }.max()!
        for node in cluster.running { try await cluster.waitForHeight(node, atLeast: height) }
        #expect(cluster.headsAgree())
        for node in cluster.running { #expect(try node.store.member("member-11") != nil) }
    }

    @Test func aReplayedOrForgedTransactionIsRefusedAtTheDoor() async throws {
        var cluster = try TestCluster()
        defer { cluster.cleanUp() }
        let transaction = cluster.registration(1)
        #expect(await cluster.node(0).submit(transaction) == nil)
        try await cluster.waitUntilEveryoneCommitted(transaction.id)
        #expect(await cluster.node(1).submit(transaction)?.code == .replayed)
        let stranger = TestConsortium.key(for: "stranger", suite: cluster.consortium.suite)
        let forged = cluster.factory.forge(TestConsortium.operatorID, .withdrawReceivable(ReceivableID(.zero)), nonce: 9, key: stranger)
        #expect(await cluster.node(1).submit(forged)?.code == .badSignature)
    }

    /// A relay that arrives after its transaction committed is no longer dropped by a store lookup
    /// in the admission stage (DECISIONS 43: only relays parked during a catch-up are looked up);
    /// the pool's checks must still refuse it, so it is never pooled again.
    @Test func aLateRelayOfACommittedTransactionIsNotPooledAgain() async throws {
        var cluster = try TestCluster()
        defer { cluster.cleanUp() }
        let transaction = cluster.registration(1)
        #expect(await cluster.node(0).submit(transaction) == nil)
        try await cluster.waitUntilEveryoneCommitted(transaction.id)
        let node = cluster.node(1)
        node.receive(NodeMessage.transactions([transaction]).wireBytes, from: ValidatorIndex(0))
        // The same transaction from a client, behind the relay in the admission stage's order.
        #expect(await node.submit(transaction)?.code == .replayed)
        #expect(node.nodeStatus.pooled == 0)
        guard case .committed = node.status(of: transaction.id) else { Issue.record("\(node.status(of: transaction.id))"); return }
    }

    @Test func aTransactionThatBreaksARuleIsRefusedAtAdmission() async throws {
        var cluster = try TestCluster()
        defer { cluster.cleanUp() }
        // tier1 does not hold this fragment (it does not exist): refused now, with the rule's code.
        let transfer = cluster.factory.make(TestConsortium.tier1, .transfer(fragment: FragmentID(.zero), to: TestConsortium.tier2, amount: 1))
        let rejection = await cluster.node(0).submit(transfer)
        #expect(rejection?.code == .unknownFragment)
        #expect(cluster.node(0).status(of: transfer.id) == .unknown)
    }

    /// A client that saw its transaction commit on one validator may send the next one, which
    /// depends on it, to another validator that has not executed that block yet. That node must
    /// not refuse it on its stale state: it admits it and the block's execution decides.
    @Test func aNodeBehindByABlockInFlightAdmitsWhatDependsOnIt() async throws {
        var cluster = try TestCluster()
        defer { cluster.cleanUp() }
        let consortium = cluster.consortium
        let terms = consortium.terms(face: 1_000_000_00, invoiceNumber: "7001", issue: "2026-01-02", maturity: "2099-12-31")
        let proposal = cluster.factory.make(TestConsortium.tier1, .proposeReceivable(terms))
        #expect(await cluster.node(0).submit(proposal) == nil)
        try await cluster.waitUntilEveryoneCommitted(proposal.id)

        // Node 3 gets every proposal and prepare but no commit: it holds the next block in flight.
        let suite = consortium.suite
        cluster.network.hold.withLock {
            $0 = { frame, _, to in
                guard to == ValidatorIndex(3), case .consensus(.commit)? = try? NodeMessage(wireBytes: frame, suite: suite) else { return false }
                return true
            }
        }
        let root = ReceivableID(proposal.id)
        let confirm = cluster.factory.make(TestConsortium.core, .confirmReceivable(root))
        #expect(await cluster.node(1).submit(confirm) == nil)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, !(0..<3).allSatisfy({ index in
            if case .committed = cluster.node(ValidatorIndex(UInt16(index))).status(of: confirm.id) { true } else { false }
        }) { try await Task.sleep(for: .milliseconds(10)) }
        #expect(cluster.node(3).status(of: confirm.id) == .pending)

        // The fragment the confirmation creates is not on node 3's committed state yet.
        let fragment = FragmentID.initial(of: root, suite: suite)
        let transfer = cluster.factory.make(TestConsortium.tier1, .transfer(fragment: fragment, to: TestConsortium.tier2, amount: 400_000_00))
        #expect(await cluster.node(3).submit(transfer) == nil)
        cluster.network.release()
        // Committed everywhere, not refused: the transfer was valid once the block executed.
        try await cluster.waitUntilEveryoneCommitted(transfer.id)
    }

    @Test func aStoppedNodeRestartsFromItsDataAndCatchesUp() async throws {
        var cluster = try TestCluster()
        defer { cluster.cleanUp() }
        let target = try await cluster.leave(3, behindBy: 1...60, door: { ValidatorIndex(UInt16($0 % 3)) }, waitEvery: 10)
        // Restart node 3 from its own data directory: it catches up from its peers.
        let restarted = try cluster.start(3)
        #expect(restarted.nodeStatus.height < target)
        let after = cluster.registration(100)
        #expect(await cluster.node(0).submit(after) == nil)
        try await cluster.waitUntilEveryoneCommitted(after.id)
        #expect(cluster.headsAgree())
    }

    @Test func aNodeWithAnEmptyDataDirectorySyncsFromGenesis() async throws {
        var cluster = try TestCluster()
        defer { cluster.cleanUp() }
        _ = cluster.network.cut(2)
        try FileManager.default.removeItem(atPath: cluster.dataDirectory(2))
        var last = Hash.zero
        for number in 0..<30 {
            let transaction = cluster.registration(number)
            #expect(await cluster.node(ValidatorIndex(UInt16([0, 1, 3][number % 3]))).submit(transaction) == nil)
            last = transaction.id
        }
        try await cluster.waitUntilEveryoneCommitted(last)
        let fresh = try cluster.start(2)
        #expect(fresh.nodeStatus.height == .genesis)
        let after = cluster.registration(99)
        #expect(await cluster.node(0).submit(after) == nil)
        try await cluster.waitUntilEveryoneCommitted(after.id)
        #expect(cluster.headsAgree())
    }

    /// A node far behind with a history large against its ledger drops its read-model indexes
    /// for the catch-up and builds them again when it ends (DECISIONS 45); its queries answer as
    /// its peers' do, before and after.
    @Test func aBulkCatchUpDropsTheReadModelIndexesAndBuildsThemAgain() async throws {
        var cluster = try TestCluster()
        defer { cluster.cleanUp() }
        let target = try await cluster.leave(3, behindBy: 1...40, door: { ValidatorIndex(UInt16($0 % 3)) }, waitEvery: 10)
        let seen = Mutex<[Bool]>([])
        // Far behind from the first fetched transaction on, so this short history (40 against a
        // ledger of 1) makes a bulk catch-up.
        let restarted = try cluster.start(3, farBehindTransactions: 1) { event in
            if case .readModelIndexes(let suspended, _) = event { seen.withLock { $0.append(suspended) } }
        }
        try await cluster.waitForHeight(restarted, atLeast: target)
        let deadline = ContinuousClock.now + .seconds(60)
        while restarted.nodeStatus.readModelIndexesSuspended || restarted.nodeStatus.catchingUp, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        // Dropped, then built again (a later catch-up of a block or two is no bulk one: it
        // fetches less than half the ledger).
        #expect(seen.withLock { Array($0.prefix(2)) } == [true, false])
        #expect(!restarted.nodeStatus.readModelIndexesSuspended)
        #expect(try restarted.store.missingReadModelIndexes().isEmpty)
        #expect(try restarted.store.transactions(signedBy: TestConsortium.operatorID).map(\.transaction.id)
                == cluster.node(0).store.transactions(signedBy: TestConsortium.operatorID).map(\.transaction.id))
        #expect(try restarted.store.member("member-7") != nil)
        let after = cluster.registration(99)
        #expect(await cluster.node(0).submit(after) == nil)
        try await cluster.waitUntilEveryoneCommitted(after.id)
        #expect(cluster.headsAgree())
    }

    /// A catch-up short against the node's ledger (10 transactions onto 31) keeps the indexes,
    /// even with the node counting as far behind from its first fetched transaction.
    @Test func aShortCatchUpKeepsTheReadModelIndexes() async throws {
        var cluster = try TestCluster()
        defer { cluster.cleanUp() }
        let target = try await cluster.leave(3, behindBy: 31...40, door: { ValidatorIndex(UInt16($0 % 3)) }, waitEvery: 5, before: 0...30)
        let seen = Mutex<[Bool]>([])
        let restarted = try cluster.start(3, farBehindTransactions: 1) { event in
            if case .readModelIndexes(let suspended, _) = event { seen.withLock { $0.append(suspended) } }
        }
        try await cluster.waitForHeight(restarted, atLeast: target)
        #expect(seen.withLock { $0 }.isEmpty)
        #expect(try restarted.store.missingReadModelIndexes().isEmpty)
    }

    @Test func losingThePrimaryChangesTheViewAndKeepsCommitting() async throws {
        var cluster = try TestCluster()
        defer { cluster.cleanUp() }
        let first = cluster.registration(0)
        #expect(await cluster.node(1).submit(first) == nil)
        try await cluster.waitUntilEveryoneCommitted(first.id)
        let primary = cluster.node(0).nodeStatus.primary
        _ = cluster.network.cut(primary)
        let next = cluster.registration(1)
        let survivor = cluster.running[0]
        #expect(await survivor.submit(next) == nil)
        try await cluster.waitUntilEveryoneCommitted(next.id)
        #expect(survivor.nodeStatus.view > 0)
        #expect(cluster.headsAgree())
    }
}

@Suite struct NodeInputTests {
    @Test func aFloodOfFramesIsBoundedAndGarbageIsIgnored() async throws {
        let cluster = try TestCluster()
        defer { cluster.cleanUp() }
        let node = cluster.node(0)
        // Garbage from a peer is reported and ignored, never a crash.
        node.receive([0xff, 0x00, 0x13], from: 1)
        node.queue.sync {}   // that frame's group is done before the queue is held (a group takes every frame waiting)
        // While the node is busy, a flood beyond the queue bound is dropped and counted instead of queued.
        // The flood starts only once the hold runs: a drain a peer's frame scheduled just before it
        // would otherwise, on a loaded machine, start late and take half the flood with it (CI saw
        // no frame dropped once).
        let busy = DispatchSemaphore(value: 0)
        let holding = DispatchSemaphore(value: 0)
        node.queue.async {
            holding.signal()
            busy.wait()
        }
        holding.wait()
        for _ in 0..<(ValidatorNode.maxQueuedFrames + 5_000) { node.receive([0xff], from: 2) }
        // Peers' frames that were queued before the hold leave the count on other queues (catch-up
        // answers, relays) while the flood runs, so a few more of it may fit: the bound is what holds.
        #expect(node.queuedFrames.load(ordering: .relaxed) <= ValidatorNode.maxQueuedFrames)
        #expect(node.droppedFrames.load(ordering: .relaxed) > 0)
        busy.signal()
        // The node keeps working.
        var factory = cluster.factory
        let transaction = factory.make(TestConsortium.operatorID, .setMemberStatus(member: TestConsortium.tier3, status: .suspended, reason: "KYC"))
        #expect(await node.submit(transaction) == nil)
        try await cluster.waitUntilEveryoneCommitted(transaction.id)
    }
}
