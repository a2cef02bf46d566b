import Consensus
import LedgerCore
import LedgerTestKit
import Testing

func isCommit(_ message: ConsensusMessage) -> Bool { if case .commit = message { true } else { false } }
func isNewView(_ message: ConsensusMessage) -> Bool { if case .newView = message { true } else { false } }
func isCheckpoint(_ message: ConsensusMessage) -> Bool { if case .checkpoint = message { true } else { false } }

@Suite struct NormalCase {
    @Test func oneTransactionCommitsEverywhereWithAQuorumCertificate() throws {
        var cluster = Cluster()
        let transaction = cluster.submitNew()
        cluster.run()
        for index in 0..<4 { #expect(cluster.chains[index].count == 1) }
        #expect(cluster.chainsAgree())
        let committed = try #require(cluster.chains[1].first)
        #expect(committed.block.transactions.map(\.id) == [transaction.id])
        #expect(committed.block.header.proposer == 0 && committed.block.header.view == 0)
        #expect(committed.certificate.votes.count == cluster.consortium.validatorSet.quorum)
        #expect(cluster.applications.allSatisfy { $0.committedIDs.contains(transaction.id) && $0.rejections.isEmpty })
        #expect(cluster.reports.isEmpty)
        // Nothing outstanding: every timer is cancelled.
        #expect(cluster.timers.allSatisfy { $0 == nil })
    }

    @Test func aTransactionSentToOneBackupIsForwardedToThePrimaryAndCommits() {
        var cluster = Cluster()
        let transaction = cluster.submitNew(to: [2])
        #expect(cluster.network.count == 1)
        guard case .request(let forwarded) = cluster.network.first?.message, cluster.network.first?.to == 0 else {
            Issue.record("expected a forwarded request to the primary, got \(cluster.network)")
            return
        }
        #expect(forwarded == transaction)
        cluster.run()
        #expect(cluster.applications.allSatisfy { $0.committedIDs.contains(transaction.id) })
        #expect(cluster.chainsAgree())
    }

    @Test func aPreparedCertificateIsPersistedBeforeTheCommitIsSent() throws {
        var cluster = Cluster()
        cluster.submitNew(to: [0])
        let prePrepare = try #require(cluster.network.first { $0.to == 1 }?.message)
        cluster.network.removeAll()
        cluster.deliver(prePrepare, from: 0, to: 1)
        cluster.deliver(prePrepare, from: 0, to: 2)
        let prepareFrom2 = try #require(cluster.network.first { $0.from == 2 && $0.to == 1 }?.message)
        let output = cluster.replicas[1].onMessage(prepareFrom2, from: 2, now: cluster.now, application: &cluster.applications[1])
        let persistIndex = try #require(output.directives.firstIndex {
            if case .persist(let state) = $0 { state.prepared.map(\.height) == [1] } else { false }
        })
        let commitIndex = try #require(output.directives.firstIndex {
            if case .broadcast(.commit) = $0 { true } else { false }
        })
        #expect(persistIndex < commitIndex)
    }

    @Test func pipelinedHeightsAreInFlightTogetherAndCommitInOrder() {
        var cluster = Cluster(pipelineDepth: 4)
        let transactions = (0..<6).map { _ in cluster.submitNew(to: [0]) }
        #expect(cluster.replicas[0].inFlightHeights == [1, 2, 3, 4])
        // Deliver only the pre-prepares: every backup holds four heights at once.
        let prePrepares = cluster.network
        cluster.network.removeAll()
        for (from, to, message) in prePrepares { cluster.deliver(message, from: from, to: to) }
        for index in 1..<4 { #expect(cluster.replicas[index].inFlightHeights == [1, 2, 3, 4]) }
        cluster.run()
        #expect(cluster.chainsAgree())
        for index in 0..<4 {
            #expect(cluster.chains[index].map(\.block.header.height.value) == Array(1...UInt64(cluster.chains[index].count)))
            #expect(transactions.allSatisfy { cluster.applications[index].committedIDs.contains($0.id) })
        }
        #expect(cluster.chains[0].count == 5)   // four single-transaction blocks, then the last two together
    }

    @Test func checkpointsBecomeStableMoveTheWatermarksAndCollectGarbage() throws {
        var cluster = Cluster()   // K = 4, window 8
        for _ in 0..<9 {
            cluster.submitNew()
            cluster.run()
        }
        for index in 0..<4 {
            let replica = cluster.replicas[index]
            #expect(replica.head.height == 9)
            #expect(replica.stableCheckpoint.height == 8)
            #expect(replica.lowWatermark == 8 && replica.highWatermark == 16)
            #expect(replica.preparedHeights.allSatisfy { $0 > 8 })
            #expect(replica.persistentState.sentPrepares.allSatisfy { $0.height > 8 })
            #expect(replica.stableCheckpoint.problem(chainID: cluster.consortium.genesis.chainID,
                                                     genesisHash: replica.configuration.genesisTip.hash,
                                                     validators: cluster.consortium.validatorSet, suite: cluster.consortium.suite) == nil)
        }
        // A vote for a collected height is answered, not acted on.
        let old = try Commit.sign(chainID: cluster.consortium.genesis.chainID, view: 0, height: 3, blockHash: .zero, replica: 2,
                                  key: cluster.consortium.validatorKeys[2], suite: cluster.consortium.suite)
        let output = cluster.replicas[1].onMessage(.commit(old), from: 2, now: cluster.now, application: &cluster.applications[1])
        #expect(output.outcome == .ignored(.outsideWatermarks))
        #expect(output.directives.isEmpty)
    }

    @Test func thePrimaryStopsAtTheHighWatermarkUntilACheckpointIsStable() {
        var cluster = Cluster()   // K = 4, window 8
        for _ in 0..<10 {
            cluster.submitNew()
            cluster.run(drop: { _, _, message in isCheckpoint(message) })
        }
        #expect(cluster.chains.allSatisfy { $0.count == 8 })
        #expect(cluster.replicas[0].pendingTransactionCount == 2)
        // The first timer expiry retransmits the replicas' checkpoints.
        for index in 0..<4 { cluster.fireTimer(index) }
        cluster.run()
        #expect(cluster.replicas.allSatisfy { $0.stableCheckpoint.height == 8 })
        #expect(cluster.chains.allSatisfy { $0.count >= 9 })
        #expect(cluster.applications.allSatisfy { $0.committedIDs.count == 10 })
        #expect(cluster.chainsAgree())
    }
}

@Suite struct ViewChanges {
    @Test func aCrashedPrimaryIsReplacedAndTheClusterMakesProgress() {
        var cluster = Cluster()
        cluster.submitNew()
        cluster.run()
        cluster.crash(0)
        let transaction = cluster.submitNew()
        cluster.run()
        #expect(cluster.chains[1].count == 1)
        for index in 1..<4 { cluster.fireTimer(index) }   // retransmit and ask to catch up
        cluster.run()
        for index in 1..<4 { cluster.fireTimer(index) }   // view change
        cluster.run()
        for index in 1..<4 {
            #expect(cluster.replicas[index].view == 1 && cluster.replicas[index].viewChangeTarget == nil)
            #expect(cluster.chains[index].count == 2)
            #expect(cluster.applications[index].committedIDs.contains(transaction.id))
        }
        #expect(cluster.chains[1][1].block.header.proposer == 1)
        #expect(cluster.chains[1][1].certificate.view == 1)
        #expect(cluster.chainsAgree())
        #expect(cluster.reports.isEmpty)
    }

    @Test func anEquivocatingPrimaryIsDetectedAndReplaced() throws {
        var cluster = Cluster()
        let transaction = cluster.submitNew()
        let suite = cluster.consortium.suite
        // The primary sends its block to v1 and a different, equally signed one to v2 and v3.
        for (position, entry) in cluster.network.enumerated() where entry.from == 0 && entry.to != 1 {
            guard case .prePrepare(let original) = entry.message else { continue }
            var block = original.block
            block.header.timestamp = block.header.timestamp.adding(milliseconds: 1)
            let proposal = try ProposalSignature.sign(chainID: cluster.consortium.genesis.chainID, view: 0, height: 1,
                                                      blockHash: block.hash(suite: suite), key: cluster.consortium.validatorKeys[0],
                                                      suite: suite)
            cluster.network[position].message = .prePrepare(PrePrepare(block: block, proposal: proposal))
        }
        cluster.run()
        let accusers = Set(cluster.reports.filter {
            if case .equivocation = $0.evidence { $0.culprit == 0 } else { false }
        }.map(\.reporter))
        #expect(accusers.isSuperset(of: [1, 2, 3]))
        for index in 1..<4 {
            #expect(cluster.replicas[index].view >= 1)
            #expect(cluster.replicas[index].viewChangeTarget == nil)
            #expect(cluster.applications[index].committedIDs.contains(transaction.id))
        }
        #expect(cluster.chainsAgree())
    }

    @Test func aPreparedButUncommittedBlockSurvivesTheViewChange() throws {
        var cluster = Cluster()
        let transaction = cluster.submitNew()
        cluster.run(drop: { _, _, message in isCommit(message) })
        #expect(cluster.chains.allSatisfy { $0.isEmpty })
        let prepared = try #require(cluster.persisted[1]?.prepared.first)
        #expect(prepared.height == 1)
        cluster.crash(0)
        for index in 1..<4 { cluster.fireTimer(index) }
        cluster.run(drop: { _, _, message in isCommit(message) })
        for index in 1..<4 { cluster.fireTimer(index) }
        cluster.run()
        for index in 1..<4 {
            let committed = try #require(cluster.chains[index].first)
            #expect(committed.block.hash(suite: cluster.consortium.suite) == prepared.blockHash)
            #expect(committed.block.header.proposer == 0)       // the original proposal, re-proposed
            #expect(committed.certificate.view == 1)             // committed in the new view
            #expect(cluster.applications[index].committedIDs.contains(transaction.id))
        }
        #expect(cluster.chainsAgree())
    }

    @Test func theViewChangeTimeoutDoublesPerAttemptAndIsCapped() {
        var cluster = Cluster()   // 1 s base, 8 s cap
        cluster.crash(0)
        cluster.submitNew()
        var timeouts: [UInt64] = [cluster.replicas[1].currentTimeoutMilliseconds]
        for _ in 0..<6 {
            for index in 1..<4 { cluster.fireTimer(index) }
            cluster.run(drop: { _, _, message in isNewView(message) })
            for index in 1..<4 { cluster.fireTimer(index) }
            cluster.run(drop: { _, _, message in isNewView(message) })
            timeouts.append(cluster.replicas[1].currentTimeoutMilliseconds)
        }
        #expect(timeouts.first == 1_000)
        #expect(timeouts.contains(2_000) && timeouts.contains(4_000))
        #expect(timeouts.last == 8_000)
        #expect(zip(timeouts, timeouts.dropFirst()).allSatisfy { $0 <= $1 })
        // Views only went forward; once new views get through, the cluster commits.
        let before = cluster.replicas[1].viewChangeTarget ?? cluster.replicas[1].view
        for _ in 0..<4 where cluster.chains[1].isEmpty {
            for index in 1..<4 { cluster.fireTimer(index) }
            cluster.run()
        }
        #expect(cluster.replicas[1].view >= before)
        #expect(cluster.chains[1].count == 1)
        #expect(cluster.chainsAgree())
    }
}

@Suite struct CatchUp {
    @Test func aRestartedReplicaCatchesUpFromCertificatesAndRejoins() {
        var cluster = Cluster()
        cluster.submitNew()
        cluster.run()
        cluster.crash(3)
        for _ in 0..<6 {
            cluster.submitNew()
            cluster.run()
        }
        #expect(cluster.chains[0].count == 7 && cluster.chains[3].count == 1)
        cluster.restart(3)
        #expect(cluster.chains[3].count == 7)
        #expect(cluster.applications[3].state == cluster.applications[0].state)
        // It takes part again: with v0 down, v1..v3 still need v3's votes.
        cluster.crash(0)
        let transaction = cluster.submitNew()
        for _ in 0..<2 {
            for index in 1..<4 { cluster.fireTimer(index) }
            cluster.run()
        }
        #expect(cluster.applications[3].committedIDs.contains(transaction.id))
        #expect(cluster.chainsAgree())
    }

    @Test func aRestartedPrimaryNeverProposesTwoBlocksForOneHeight() throws {
        var cluster = Cluster()
        cluster.submitNew()
        let firstProposal = try #require(cluster.network.first?.message)
        cluster.network.removeAll()    // lost with the crash
        cluster.crash(0)
        cluster.restart(0)
        cluster.submitNew()
        cluster.run()
        #expect(cluster.reports.isEmpty)
        #expect(cluster.chainsAgree())
        guard case .prePrepare(let first) = firstProposal else { Issue.record("expected a pre-prepare"); return }
        #expect(cluster.chains[1].first?.block.hash(suite: cluster.consortium.suite) == first.blockHash)
    }
}

@Suite struct BadInput {
    @Test func messagesFromNonValidatorsAreIgnored() throws {
        var cluster = Cluster()
        cluster.submitNew(to: [0])
        let message = try #require(cluster.network.first?.message)
        let output = cluster.replicas[1].onMessage(message, from: 9, now: cluster.now, application: &cluster.applications[1])
        #expect(output.outcome == .ignored(.notValidator))
        #expect(output.directives.isEmpty)
    }

    @Test func aForgedSignatureIsMisbehaviourOfTheSender() throws {
        var cluster = Cluster()
        cluster.submitNew(to: [0])
        guard case .prePrepare(var prePrepare) = try #require(cluster.network.first?.message) else { return }
        prePrepare.proposal.signature.rawRepresentation[0] ^= 1
        let output = cluster.replicas[1].onMessage(.prePrepare(prePrepare), from: 0, now: cluster.now, application: &cluster.applications[1])
        #expect(output.outcome == .misbehaving(0, .badSignature(kind: "pre-prepare")))
        #expect(cluster.replicas[1].inFlightHeights.isEmpty)
    }

    @Test func aMessageClaimingAnotherSenderIsRejected() throws {
        var cluster = Cluster()
        cluster.submitNew(to: [0])
        let message = try #require(cluster.network.first?.message)
        let output = cluster.replicas[1].onMessage(message, from: 2, now: cluster.now, application: &cluster.applications[1])
        guard case .misbehaving(2, .malformed) = output.outcome else { Issue.record("got \(output.outcome)"); return }
    }

    @Test func staleViewsAndHeightsOutsideTheWatermarksAreIgnored() throws {
        var cluster = Cluster()
        let keys = cluster.consortium.validatorKeys, chainID = cluster.consortium.genesis.chainID, suite = cluster.consortium.suite
        let far = try Commit.sign(chainID: chainID, view: 0, height: 500, blockHash: .zero, replica: 2, key: keys[2], suite: suite)
        #expect(cluster.replicas[1].onMessage(.commit(far), from: 2, now: cluster.now, application: &cluster.applications[1]).outcome
                == .ignored(.outsideWatermarks))
        // Move everyone to view 1, then replay a view-0 vote.
        cluster.crash(0)
        cluster.submitNew()
        for _ in 0..<2 {
            for index in 1..<4 { cluster.fireTimer(index) }
            cluster.run()
        }
        #expect(cluster.replicas[1].view == 1)
        let stale = try Commit.sign(chainID: chainID, view: 0, height: 2, blockHash: .zero, replica: 2, key: keys[2], suite: suite)
        #expect(cluster.replicas[1].onMessage(.commit(stale), from: 2, now: cluster.now, application: &cluster.applications[1]).outcome
                == .ignored(.staleView))
        let staleChange = try ViewChange.sign(newView: 1, replica: 3, checkpoint: cluster.replicas[3].stableCheckpoint, prepared: [],
                                              chainID: chainID, key: keys[3], suite: suite)
        #expect(cluster.replicas[1].onMessage(.viewChange(staleChange), from: 3, now: cluster.now, application: &cluster.applications[1]).outcome
                == .ignored(.staleView))
    }

    @Test func twoDifferentVotesFromOneReplicaAreEvidence() throws {
        var cluster = Cluster()
        cluster.submitNew(to: [0])
        let keys = cluster.consortium.validatorKeys, chainID = cluster.consortium.genesis.chainID, suite = cluster.consortium.suite
        let first = try Commit.sign(chainID: chainID, view: 0, height: 1, blockHash: suite.hash([1]), replica: 2, key: keys[2], suite: suite)
        let second = try Commit.sign(chainID: chainID, view: 0, height: 1, blockHash: suite.hash([2]), replica: 2, key: keys[2], suite: suite)
        _ = cluster.replicas[1].onMessage(.commit(first), from: 2, now: cluster.now, application: &cluster.applications[1])
        let output = cluster.replicas[1].onMessage(.commit(second), from: 2, now: cluster.now, application: &cluster.applications[1])
        #expect(output.outcome == .misbehaving(2, .conflictingCommits(first, second)))
        #expect(output.directives.contains(.reportMisbehaviour(2, .conflictingCommits(first, second))))
    }

    /// Votes that cannot change anything are dropped before their signatures are checked: for a
    /// committed height, or agreeing with a quorum already held. A vote that disagrees with the
    /// quorum is still checked (it may be evidence).
    @Test func votesBeyondAQuorumAreNotCheckedButDisagreeingOnesAre() throws {
        var cluster = Cluster(nodes: 7)
        let keys = cluster.consortium.validatorKeys, chainID = cluster.consortium.genesis.chainID, suite = cluster.consortium.suite
        let quorum = cluster.consortium.validatorSet.quorum
        let agreed = suite.hash([1]), other = suite.hash([2])
        let voters = [0, 2, 3, 4, 5, 6].map { ValidatorIndex(UInt16($0)) }
        for voter in voters.prefix(quorum) {
            let commit = try Commit.sign(chainID: chainID, view: 0, height: 2, blockHash: agreed, replica: voter, key: keys[Int(voter.value)], suite: suite)
            #expect(cluster.replicas[1].onMessage(.commit(commit), from: voter, now: cluster.now, application: &cluster.applications[1]).outcome == .accepted)
        }
        let last = voters[quorum]
        var forgedAgreeing = try Commit.sign(chainID: chainID, view: 0, height: 2, blockHash: agreed, replica: last, key: keys[Int(last.value)], suite: suite)
        forgedAgreeing.vote.signature.rawRepresentation[0] ^= 1
        #expect(cluster.replicas[1].onMessage(.commit(forgedAgreeing), from: last, now: cluster.now, application: &cluster.applications[1]).outcome
                == .ignored(.quorumReached))
        var forgedOther = try Commit.sign(chainID: chainID, view: 0, height: 2, blockHash: other, replica: last, key: keys[Int(last.value)], suite: suite)
        forgedOther.vote.signature.rawRepresentation[0] ^= 1
        #expect(cluster.replicas[1].onMessage(.commit(forgedOther), from: last, now: cluster.now, application: &cluster.applications[1]).outcome
                == .misbehaving(last, .badSignature(kind: "commit")))
    }

    @Test func preparesAfterPreparedAndVotesForCommittedHeightsAreDropped() throws {
        var cluster = Cluster()
        let keys = cluster.consortium.validatorKeys, chainID = cluster.consortium.genesis.chainID, suite = cluster.consortium.suite
        cluster.submitNew(to: [0])
        guard case .prePrepare(let prePrepare) = try #require(cluster.network.first { $0.to == 1 }?.message) else {
            Issue.record("expected a pre-prepare")
            return
        }
        cluster.network.removeAll()
        for index in 1...2 { cluster.deliver(.prePrepare(prePrepare), from: 0, to: index) }
        // A prepare whose proposal is not the one held (a forged proposal signature) is still refused.
        var forgedProposal = prePrepare.proposal
        forgedProposal.signature.rawRepresentation[0] ^= 1
        let carrying = try Prepare.sign(proposal: forgedProposal, chainID: chainID, replica: 3, key: keys[3], suite: suite)
        guard case .misbehaving(3, .malformed) = cluster.replicas[1].onMessage(.prepare(carrying), from: 3, now: cluster.now,
                                                                              application: &cluster.applications[1]).outcome else {
            Issue.record("a prepare carrying a forged proposal was not refused")
            return
        }
        let fromTwo = try Prepare.sign(proposal: prePrepare.proposal, chainID: chainID, replica: 2, key: keys[2], suite: suite)
        #expect(cluster.replicas[1].onMessage(.prepare(fromTwo), from: 2, now: cluster.now, application: &cluster.applications[1]).outcome == .accepted)
        #expect(cluster.replicas[1].preparedHeights == [1])
        var late = try Prepare.sign(proposal: prePrepare.proposal, chainID: chainID, replica: 3, key: keys[3], suite: suite)
        late.signature.rawRepresentation[0] ^= 1
        #expect(cluster.replicas[1].onMessage(.prepare(late), from: 3, now: cluster.now, application: &cluster.applications[1]).outcome
                == .ignored(.quorumReached))
        // Once a block is committed, even a forged vote for its height is only stale.
        var committed = Cluster()
        committed.submitNew()
        committed.run()
        let block = try #require(committed.chains[1].first)
        var stale = try Commit.sign(chainID: chainID, view: 0, height: 1, blockHash: block.certificate.blockHash, replica: 3, key: keys[3], suite: suite)
        stale.vote.signature.rawRepresentation[0] ^= 1
        #expect(committed.replicas[1].onMessage(.commit(stale), from: 3, now: committed.now, application: &committed.applications[1]).outcome
                == .ignored(.alreadyCommitted))
    }

    @Test func aProposalOutsideTheClockBoundIsNotPrepared() throws {
        var cluster = Cluster()
        cluster.submitNew(to: [0])
        let message = try #require(cluster.network.first { $0.to == 1 }?.message)
        cluster.network.removeAll()
        cluster.nowMilliseconds += 60_000   // v1's clock is a minute ahead of the proposal
        cluster.deliver(message, from: 0, to: 1)
        #expect(!cluster.network.contains { $0.from == 1 })
        #expect(cluster.reports.isEmpty)     // a clock disagreement is not proof of anything
    }
}

/// Replica-level versions of what the simulator found, so each stays fixed even if the simulator's
/// random draws change.
@Suite struct SimulatorFindings {
    /// Seeds 3, 5, 10: a NEW-VIEW relayed to a lagging replica by a replica that is not the new
    /// primary was refused, and the honest relay accused.
    @Test func aNewViewRelayedByAnotherReplicaBringsALaggardIntoTheView() {
        var cluster = Cluster()
        cluster.crash(0)
        cluster.submitNew(to: [1, 2, 3])
        let cutOff: (Int, Int, ConsensusMessage) -> Bool = { from, to, _ in from == 3 || to == 3 }
        for _ in 0..<2 {
            for index in 1..<3 { cluster.fireTimer(index) }
            cluster.run(drop: cutOff)
        }
        // v1 and v2 alone cannot change the view; v3 joins late and only hears from v2.
        cluster.fireTimer(3)
        cluster.run(drop: { from, to, _ in from == 1 && to == 3 })
        cluster.fireTimer(3)
        cluster.run(drop: { from, to, _ in from == 1 && to == 3 })
        #expect(cluster.replicas[1].view == 1 && cluster.replicas[2].view == 1)
        if cluster.replicas[3].view != 1 {
            // v3 asked for view 1 before the others: answered by v2's relay of the NEW-VIEW.
            cluster.fireTimer(3)
            cluster.run(drop: { from, to, _ in from == 1 && to == 3 })
        }
        #expect(cluster.replicas[3].view == 1 && cluster.replicas[3].viewChangeTarget == nil)
        #expect(!cluster.reports.contains { $0.culprit != 0 })
        #expect(cluster.chainsAgree())
    }

    /// Seeds 140, 146, 148, 164, 219: a new primary behind the new view's checkpoint proposed on
    /// its stale head, then again after catching up (two blocks for one height).
    @Test func aNewPrimaryBehindTheCheckpointWaitsUntilItCaughtUp() throws {
        var cluster = Cluster()   // K = 4
        let isolate1: (Int, Int, ConsensusMessage) -> Bool = { from, to, _ in from == 1 || to == 1 }
        for _ in 0..<4 {
            cluster.submitNew(to: [0, 2, 3])
            cluster.run(drop: isolate1)
        }
        #expect(cluster.replicas[2].stableCheckpoint.height == 4 && cluster.chains[1].isEmpty)
        cluster.crash(0)
        cluster.servesCatchUp = false
        let transaction = cluster.submitNew(to: [1, 2, 3])
        for _ in 0..<2 {
            for index in 1..<4 { cluster.fireTimer(index) }
            cluster.run()
        }
        #expect(cluster.replicas[1].view == 1 && cluster.replicas[1].head.height == 0)
        #expect(!cluster.network.contains { if case .prePrepare = $0.message { true } else { false } })
        #expect(cluster.reports.isEmpty)
        // Once it has the certified blocks, it proposes above the checkpoint.
        cluster.servesCatchUp = true
        cluster.serveStateTransfers()
        if cluster.chains[1].count < 4 { cluster.fireTimer(1); cluster.serveStateTransfers() }
        cluster.run()
        for index in 1..<4 {
            #expect(cluster.applications[index].committedIDs.contains(transaction.id))
            #expect(cluster.chains[index].count == 5)
        }
        #expect(cluster.reports.isEmpty)
        #expect(cluster.chainsAgree())
    }

    /// Seed 504: replicas that had committed a re-proposed block skipped it in the new view, so
    /// the replicas missing it could never prepare it (and catch-up only reached a forger).
    @Test func replicasThatCommittedAReproposedBlockVoteForItAgain() throws {
        var cluster = Cluster()
        let transaction = cluster.submitNew()
        cluster.run(drop: { _, to, message in isCommit(message) && (to == 1 || to == 2) })
        #expect(cluster.chains[0].count == 1 && cluster.chains[3].count == 1)
        #expect(cluster.chains[1].isEmpty && cluster.chains[2].isEmpty)
        cluster.crash(0)
        cluster.servesCatchUp = false
        cluster.submitNew(to: [1, 2, 3])
        for _ in 0..<2 {
            for index in 1..<4 { cluster.fireTimer(index) }
            cluster.run()
        }
        for index in 1..<3 {
            let first = try #require(cluster.chains[index].first)
            #expect(first.certificate.view == 1)
            #expect(cluster.applications[index].committedIDs.contains(transaction.id))
        }
        #expect(cluster.chainsAgree())
    }

    /// Seed 2060: a new primary's first pre-prepare overtook its NEW-VIEW and was dropped as
    /// "future view"; it is now buffered and replayed once the view is installed.
    @Test func aPrePrepareThatOvertakesItsNewViewIsKept() {
        var cluster = Cluster()
        cluster.crash(0)
        let transaction = cluster.submitNew(to: [1, 2, 3])
        for index in 1..<4 { cluster.fireTimer(index) }
        cluster.run()
        for index in 1..<4 { cluster.fireTimer(index) }
        cluster.run(hold: { from, to, message in from == 1 && to == 3 && isNewView(message) })
        #expect(cluster.replicas[3].view == 1)
        for index in 1..<4 { #expect(cluster.applications[index].committedIDs.contains(transaction.id)) }
        #expect(cluster.outcomes.contains { $0.node == 3 && $0.outcome == .ignored(.futureView) })
        #expect(cluster.chainsAgree())
    }

    /// Long-run seed 4985 (n = 7): a new primary crashed after its NEW-VIEW and, restarted, had
    /// forgotten the re-proposals it had signed, so it signed another block for one of those heights.
    @Test func aRestartedNewPrimaryKeepsItsReproposals() throws {
        var cluster = Cluster()
        cluster.submitNew()
        cluster.run(drop: { _, _, message in isCommit(message) })
        let prepared = try #require(cluster.persisted[2]?.prepared.first)
        cluster.crash(0)
        for index in 1..<4 { cluster.fireTimer(index) }
        cluster.run(drop: { _, _, message in isCommit(message) })
        for index in 1..<4 { cluster.fireTimer(index) }
        cluster.run(drop: { from, _, message in from == 1 && isNewView(message) })   // the NEW-VIEW is lost
        #expect(cluster.replicas[1].view == 1 && cluster.replicas[1].inFlightHeights == [1])
        cluster.crash(1)
        cluster.network.removeAll { $0.from == 1 }
        cluster.restart(1)
        #expect(cluster.replicas[1].inFlightHeights == [1])
        let transaction = cluster.submitNew(to: [1])
        cluster.run()
        for index in 1..<4 {
            #expect(cluster.chains[index].first?.block.hash(suite: cluster.consortium.suite) == prepared.blockHash)
            #expect(cluster.applications[index].committedIDs.contains(transaction.id))
        }
        #expect(!cluster.reports.contains { if case .equivocation = $0.evidence { true } else { false } })
        #expect(cluster.chainsAgree())
    }

    /// Long-run seed 7089 (n = 4): with a silent primary for view 1, one replica moved on to view 2
    /// and the other two, counting only view-change messages for exactly view 1, never saw a
    /// quorum to move on themselves: a deadlock. Replicas asking for later views now count.
    @Test func replicasThatMovedToALaterViewStillCountForLeavingThisOne() {
        var cluster = Cluster()
        cluster.crash(1)    // the primary of view 1 never speaks
        cluster.crash(0)
        let transaction = cluster.submitNew(to: [2, 3])
        for _ in 0..<2 {
            for index in [2, 3] { cluster.fireTimer(index) }
            cluster.run()
        }
        #expect(cluster.replicas[2].viewChangeTarget == 1 && cluster.replicas[3].viewChangeTarget == 1)
        cluster.restart(0)
        for index in [2, 3] { cluster.fireTimer(index) }   // retransmitted view changes bring v0 along
        cluster.run()
        #expect(cluster.replicas[0].viewChangeTarget == 1)
        cluster.fireTimer(2)                                 // v2 gives up on view 1 first
        cluster.run()
        #expect(cluster.replicas[2].viewChangeTarget == 2)
        for _ in 0..<3 {
            for index in [0, 3] { cluster.fireTimer(index) }
            cluster.run()
        }
        for index in [0, 2, 3] {
            #expect(cluster.replicas[index].view == 2 && cluster.replicas[index].viewChangeTarget == nil)
            #expect(cluster.applications[index].committedIDs.contains(transaction.id))
        }
        #expect(cluster.chainsAgree())
    }

    /// Long-run seeds 11972 and others (n = 7): a primary cut off in view 0 caught up to blocks
    /// committed in view 1; it then signed a second view-0 block for a height it had already
    /// proposed, and replicas still in view 0 accused it of proposals that did not link to their
    /// caught-up head. Now it never re-signs a height, and later-view certificates bring it along.
    @Test func aStalePrimaryThatCaughtUpNeitherReproposesNorIsBlamedAndRejoins() {
        var cluster = Cluster()
        let cutOff0: (Int, Int, ConsensusMessage) -> Bool = { from, to, _ in from == 0 || to == 0 }
        let first = cluster.submitNew(), second = cluster.submitNew()
        #expect(cluster.replicas[0].inFlightHeights == [1, 2])
        cluster.run(drop: cutOff0)
        for _ in 0..<2 {
            for index in 1..<4 { cluster.fireTimer(index) }
            cluster.run(drop: cutOff0)
        }
        #expect(cluster.replicas[1].view == 1 && cluster.replicas[0].view == 0)
        #expect(cluster.applications[1].committedIDs.isSuperset(of: [first.id, second.id]))
        // v0 is reachable again; its timer retransmits and asks to catch up.
        cluster.fireTimer(0)
        cluster.run()
        #expect(cluster.chains[0].count == cluster.chains[1].count)
        #expect(cluster.replicas[0].view == 1 && cluster.replicas[0].viewChangeTarget == nil)
        #expect(cluster.reports.isEmpty)
        let third = cluster.submitNew()
        cluster.run()
        #expect(cluster.applications.allSatisfy { $0.committedIDs.contains(third.id) })
        #expect(cluster.reports.isEmpty)
        #expect(cluster.chainsAgree())
    }
}
