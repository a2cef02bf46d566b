import Consensus
import LedgerCore
import LedgerTestKit
import Testing

/// Every consensus message, taken from a real run so it carries real blocks and signatures.
func sampleMessages() -> (messages: [ConsensusMessage], state: PersistentState, suite: any CryptoSuite) {
    var cluster = Cluster()
    cluster.submitNew()
    cluster.run(drop: { _, _, message in isCommit(message) })
    cluster.crash(0)
    for index in 1..<4 { cluster.fireTimer(index) }
    cluster.run(drop: { _, _, message in isCommit(message) })
    for index in 1..<4 { cluster.fireTimer(index) }
    cluster.run()
    for _ in 0..<3 {
        cluster.submitNew()
        cluster.run()
    }
    var messages: [ConsensusMessage] = []
    var kinds = Set<String>()
    var recorded = cluster
    recorded.submitNew()
    while !recorded.network.isEmpty {
        let entry = recorded.network.removeFirst()
        if kinds.insert(entry.message.kind).inserted { messages.append(entry.message) }
        recorded.deliver(entry.message, from: entry.from, to: entry.to)
    }
    if let newView = cluster.persisted[1]?.lastNewView {
        messages.append(.newView(newView))
        messages.append(.viewChange(newView.viewChanges[0]))
    }
    let head = cluster.replicas[1].head
    let checkpoint = try! Checkpoint.sign(chainID: cluster.consortium.genesis.chainID, height: head.height, blockHash: head.hash,
                                          replica: 1, key: cluster.consortium.validatorKeys[1], suite: cluster.consortium.suite)
    messages.append(.checkpoint(checkpoint))
    return (messages, cluster.persisted[1]!, cluster.consortium.suite)
}

@Suite struct Encoding {
    @Test func everyMessageKindRoundTrips() throws {
        let (messages, _, suite) = sampleMessages()
        #expect(Set(messages.map(\.kind)) == ["pre-prepare", "prepare", "commit", "checkpoint", "view-change", "new-view", "request"])
        for message in messages {
            let bytes = message.wireBytes
            #expect(bytes.first == ConsensusMessage.wireVersion)
            let decoded = try ConsensusMessage(wireBytes: bytes, suite: suite)
            #expect(decoded == message, "\(message.kind)")
            #expect(decoded.wireBytes == bytes)
        }
    }

    @Test func persistentStateRoundTrips() throws {
        let (_, state, suite) = sampleMessages()
        #expect(state.lastNewView != nil && state.view == 1)
        let decoded = try PersistentState(canonicalBytes: state.canonicalBytes, suite: suite)
        #expect(decoded == state)
    }

    @Test func truncatedCorruptedOrUnknownBytesAreErrorsNotCrashes() {
        let (messages, state, suite) = sampleMessages()
        for message in messages {
            let bytes = message.wireBytes
            for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 97)) {
                #expect(throws: (any Error).self) { try ConsensusMessage(wireBytes: Array(bytes.prefix(length)), suite: suite) }
            }
            #expect(throws: (any Error).self) { try ConsensusMessage(wireBytes: bytes + [0], suite: suite) }
            var wrongVersion = bytes; wrongVersion[0] = 9
            #expect(throws: (any Error).self) { try ConsensusMessage(wireBytes: wrongVersion, suite: suite) }
            var wrongKind = bytes; wrongKind[1] = 77
            #expect(throws: (any Error).self) { try ConsensusMessage(wireBytes: wrongKind, suite: suite) }
            // Flipping bytes may still decode (to a message whose signature then fails), never crash.
            var random = SimulationRandom(seed: UInt64(bytes.count))
            for _ in 0..<50 {
                var mutated = bytes
                mutated[Int(random.below(UInt64(mutated.count)))] ^= UInt8(truncatingIfNeeded: random.next() | 1)
                _ = try? ConsensusMessage(wireBytes: mutated, suite: suite)
            }
        }
        let stateBytes = state.canonicalBytes
        #expect(throws: (any Error).self) { try PersistentState(canonicalBytes: Array(stateBytes.dropLast()), suite: suite) }
    }

    @Test func aCommitMessageIsExactlyACertificateVote() throws {
        var cluster = Cluster()
        cluster.submitNew()
        cluster.run()
        let committed = try #require(cluster.chains[2].first)
        // The certificate was assembled from commit messages as they stood.
        try committed.certificate.verify(validators: cluster.consortium.validatorSet, chainID: cluster.consortium.genesis.chainID,
                                         suite: cluster.consortium.suite)
        let vote = try CommitCertificate.vote(chainID: cluster.consortium.genesis.chainID, height: 1, view: 0,
                                              blockHash: committed.certificate.blockHash, validator: 1,
                                              key: cluster.consortium.validatorKeys[1], suite: cluster.consortium.suite)
        let commit = try Commit.sign(chainID: cluster.consortium.genesis.chainID, view: 0, height: 1,
                                     blockHash: committed.certificate.blockHash, replica: 1,
                                     key: cluster.consortium.validatorKeys[1], suite: cluster.consortium.suite)
        #expect(commit.vote == vote)   // Ed25519 signatures are deterministic
    }

    @Test func signaturesAreDomainSeparated() throws {
        let consortium = TestConsortium()
        let suite = consortium.suite, chainID = consortium.genesis.chainID, key = consortium.validatorKeys[0]
        let hash = suite.hash([7])
        let proposal = try ProposalSignature.sign(chainID: chainID, view: 4, height: 1, blockHash: hash, key: key, suite: suite)
        #expect(proposal.isValid(chainID: chainID, validators: consortium.validatorSet, suite: suite))
        // The same signature does not pass as a checkpoint, on another chain, or for another view.
        let checkpoint = Checkpoint(height: 1, blockHash: hash, replica: 0, signature: proposal.signature)
        #expect(!checkpoint.isValid(chainID: chainID, validators: consortium.validatorSet, suite: suite))
        #expect(!proposal.isValid(chainID: "other-chain", validators: consortium.validatorSet, suite: suite))
        var otherView = proposal
        otherView.view = 8   // also the primary of view 8 (8 mod 4 = 0)
        #expect(!otherView.isValid(chainID: chainID, validators: consortium.validatorSet, suite: suite))
    }
}
