import Consensus
import LedgerCore
import LedgerTestKit
import Testing

/// The primary fills blocks: a full block goes out at once, a partial one only when the batch
/// timer fires (a directive; the replica reads no clock).
@Suite struct Batching {
    static let consensus = ConsensusParameters(checkpointInterval: 4, watermarkWindow: 8, maxBlockTransactions: 3,
                                               viewChangeTimeoutMilliseconds: 1_000, maxViewChangeTimeoutMilliseconds: 8_000)

    func prePrepares(_ cluster: Cluster, from primary: Int = 0) -> [PrePrepare] {
        cluster.network.compactMap { entry in
            if entry.from == primary, entry.to == 1, case .prePrepare(let message) = entry.message { message } else { nil }
        }
    }

    @Test func aFullBlockIsProposedWithoutWaiting() throws {
        var cluster = Cluster(consensus: Self.consensus, batchDelayMilliseconds: 50)
        let first = cluster.submitNew(to: [0])
        let second = cluster.submitNew(to: [0])
        #expect(prePrepares(cluster).isEmpty, "two of three: the primary waits")
        #expect(cluster.batchTimers[0] != nil)
        let third = cluster.submitNew(to: [0])
        let proposals = prePrepares(cluster)
        #expect(proposals.count == 1)
        #expect(proposals.first?.block.transactions.map(\.id) == [first.id, second.id, third.id])
        cluster.run()
        #expect(cluster.chains.allSatisfy { $0.count == 1 })
        #expect(cluster.chainsAgree())
    }

    @Test func aPartialBlockIsProposedWhenTheBatchTimerFires() throws {
        var cluster = Cluster(consensus: Self.consensus, batchDelayMilliseconds: 50)
        let transaction = cluster.submitNew(to: [0])
        #expect(prePrepares(cluster).isEmpty)
        let timer = try #require(cluster.batchTimers[0])
        #expect(timer.kind == .batch)
        // A stale batch timer (an older generation) changes nothing.
        let stale = cluster.replicas[0].onTimer(ReplicaTimer(generation: timer.generation &- 1, kind: .batch), now: cluster.now,
                                                application: &cluster.applications[0])
        #expect(stale.outcome == .ignored(.duplicate))
        #expect(stale.messages.isEmpty)
        cluster.fireBatchTimer(0)
        let proposals = prePrepares(cluster)
        #expect(proposals.count == 1)
        #expect(proposals.first?.block.transactions.map(\.id) == [transaction.id])
        cluster.run()
        #expect(cluster.applications.allSatisfy { $0.committedIDs.contains(transaction.id) })
        // The next partial block waits for a timer of its own.
        let next = cluster.submitNew(to: [0])
        #expect(prePrepares(cluster).isEmpty)
        cluster.fireBatchTimer(0)
        cluster.run()
        #expect(cluster.applications.allSatisfy { $0.committedIDs.contains(next.id) })
        #expect(cluster.chainsAgree())
    }

    /// The primary's scan of its pool resumes after what it already proposed; every transaction
    /// is still proposed once, in arrival order, while blocks are in flight and after they commit.
    @Test func eachPoolTransactionIsProposedOnceInArrivalOrder() {
        var cluster = Cluster(consensus: Self.consensus, batchDelayMilliseconds: 50)
        var submitted: [Hash] = []
        // Three full blocks go out at once; the tenth transaction waits for the batch timer.
        for _ in 0..<10 { submitted.append(cluster.submitNew(to: [0]).id) }
        cluster.fireBatchTimer(0)
        cluster.run()
        for _ in 0..<11 { submitted.append(cluster.submitNew(to: [0]).id) }
        cluster.fireBatchTimer(0)
        cluster.run()
        for chain in cluster.chains {
            #expect(chain.flatMap { $0.block.transactions.map(\.id) } == submitted)
        }
        #expect(cluster.chains[0].count >= 7, "blocks of at most 3")
        #expect(cluster.chainsAgree())
    }

    /// An admission group given to the replica at once (`onClientRequests`, as the node's shell
    /// does) is admitted and proposed exactly as one transaction at a time: the same outcome for
    /// each, in order, and the same blocks. The primary decides whether a full block waits from its
    /// count of unproposed pool transactions, so this also fails if that count drifts.
    @Test func aGroupOfRequestsIsAdmittedAndProposedAsOneAtATime() {
        var single = Cluster(consensus: Self.consensus, batchDelayMilliseconds: 50)
        var grouped = Cluster(consensus: Self.consensus, batchDelayMilliseconds: 50)
        var transactions = (0..<8).map { _ in single.makeTransaction() }
        for _ in transactions { _ = grouped.makeTransaction() }
        transactions.insert(transactions[2], at: 5)   // a duplicate within the group
        for transaction in transactions { single.submit(transaction, to: [0]) }
        let (outcomes, output) = grouped.replicas[0].onClientRequests(transactions, now: grouped.now, application: &grouped.applications[0])
        grouped.perform(output, at: 0)
        #expect(outcomes == single.outcomes.map(\.outcome))
        #expect(outcomes[5] == .ignored(.duplicate))
        let expected = prePrepares(single).map { $0.block.transactions.map(\.id) }
        #expect(expected.count == 2, "two full blocks of three; the last two wait for the batch timer")
        #expect(prePrepares(grouped).map { $0.block.transactions.map(\.id) } == expected)
        #expect(grouped.batchTimers[0] != nil)
        single.fireBatchTimer(0)
        grouped.fireBatchTimer(0)
        single.run()
        grouped.run()
        #expect(grouped.chains[0].map { $0.block.transactions.map(\.id) } == single.chains[0].map { $0.block.transactions.map(\.id) })
        #expect(grouped.chains[0].flatMap { $0.block.transactions.map(\.id) }.count == 8)
        #expect(grouped.chainsAgree())
        // After the view's blocks commit, a second group proposes from an empty count again.
        let more = (0..<4).map { _ in grouped.makeTransaction() }
        let (again, next) = grouped.replicas[0].onClientRequests(more, now: grouped.now, application: &grouped.applications[0])
        grouped.perform(next, at: 0)
        #expect(again.allSatisfy { $0 == .accepted })
        #expect(prePrepares(grouped).last?.block.transactions.map(\.id) == Array(more.prefix(3)).map(\.id))
    }

    @Test func withoutABatchDelayTheFirstTransactionIsProposedAtOnce() {
        var cluster = Cluster(consensus: Self.consensus)
        cluster.submitNew(to: [0])
        #expect(prePrepares(cluster).count == 1)
        #expect(cluster.batchTimers.allSatisfy { $0 == nil })
    }

    @Test func aBackupThatDoesNotForwardRequestsLeavesRelayingToItsShell() {
        let consortium = TestConsortium(validators: 4, consensus: Self.consensus)
        var replica = Replica(configuration: ReplicaConfiguration(genesis: consortium.genesis, suite: consortium.suite, me: 2,
                                                                  key: consortium.validatorKeys[2], forwardsRequests: false))
        var application = LedgerApplication(genesis: consortium.genesis, suite: consortium.suite)
        var factory = TransactionFactory(consortium: consortium)
        let key = TestConsortium.key(for: "batching-member", suite: consortium.suite)
        let member = Member(id: "batching-member", legalName: "Batching Member Ltd", creditCode: TestConsortium.creditCode(for: "batching"),
                            roles: [.supplier], publicKey: key.publicKey)
        let output = replica.onClientRequest(factory.make(TestConsortium.operatorID, .registerMember(member)),
                                             now: TestConsortium.genesisTime.adding(milliseconds: 60_000), application: &application)
        #expect(output.outcome == .accepted)
        #expect(output.messages.isEmpty)
        #expect(replica.pendingTransactionCount == 1)
    }
}

/// The simulator's fault mix with batching on: crashes, partitions, view changes and Byzantine
/// replicas while primaries wait for full blocks.
@Test(arguments: 0..<4)
func simulatorMixedFaultsWithBatching(chunk: Int) {
    var failures: [UInt64] = []
    var seed = UInt64(1_000 + chunk)
    while seed < 1_060 {
        var configuration = SimulationConfiguration.mixed(seed: seed, nodes: SeedMix.nodes(for: seed), transactions: 24)
        configuration.batchDelayMilliseconds = 40
        if !runSeed(configuration).passed { failures.append(seed) }
        seed += 4
    }
    #expect(failures.isEmpty, "failing seeds with batching: \(failures)")
}
