import Foundation
import LedgerCore
@testable import LedgerNode
import LedgerStore
import LedgerTestKit
import Testing

/// A transaction that reaches a node both relayed and inside a proposal has its signature checked
/// once: whichever copy is checked first is remembered, and the other uses that.
@Suite struct CheckedSignaturesTests {
    static let consortium = TestConsortium()

    /// The same body (so the same id) signed by the signer and by someone else.
    static func pair() -> (genuine: SignedTransaction, forged: SignedTransaction) {
        var factory = TransactionFactory(consortium: consortium)
        let operation = LedgerOperation.proposeReceivable(consortium.terms(face: 100, invoiceNumber: "1"))
        let genuine = factory.make(TestConsortium.tier1, operation, nonce: 1)
        let forged = factory.forge(TestConsortium.tier1, operation, nonce: 1,
                                   key: TestConsortium.key(for: "mallory", suite: consortium.suite))
        return (genuine, forged)
    }

    /// A folder of its own under the temporary directory (not created).
    static func temporaryDirectory() -> String {
        (NSTemporaryDirectory() as NSString).appendingPathComponent("scf-checked-\(UUID().uuidString)")
    }

    /// Runs `body` with a node alone (no links) in a temporary folder, to call its signature
    /// check directly; stops the node and removes the folder afterwards.
    static func withNode<T>(signatureWaitMilliseconds: UInt64 = 50, _ body: (ValidatorNode) async throws -> T) async throws -> T {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let node = try ValidatorNode(configuration: .init(genesis: consortium.genesis, suite: consortium.suite, me: ValidatorIndex(0),
                                                          key: consortium.validatorKeys[0], dataDirectory: directory,
                                                          signatureWaitMilliseconds: signatureWaitMilliseconds))
        defer { node.stop() }
        return try await body(node)
    }

    @Test func aSignatureIsCheckedOnceAndOnlyThatExactSignatureCounts() async throws {
        try await Self.withNode { node in
            let (genuine, forged) = Self.pair()
            let key = Self.consortium.member(TestConsortium.tier1).publicKey
            #expect(node.verifySignatures([forged]).isEmpty)
            #expect(node.verifySignatures([genuine]) == [genuine.id: key])
            #expect(node.checkedSignatures.withLock { $0.entries[genuine.id]?.signature } == genuine.signature, "remembered")
            #expect(node.verifySignatures([forged]).isEmpty, "a forged signature under a checked id is checked, and fails")
            // What is remembered is not checked again: a (planted) entry for the forged signature is
            // taken as is, which only a skipped check can explain.
            node.checkedSignatures.withLock { memo in
                memo.remove(forged.id)
                _ = memo.insert(forged.id, ValidatorNode.CheckedSignature(signature: forged.signature, key: key))
            }
            #expect(node.verifySignatures([forged]) == [forged.id: key])
        }
    }

    /// Two checks of the same transactions at the same time (admission and a proposal's
    /// validation under load) verify each signature once: the second waits for the first.
    @Test func concurrentChecksOfTheSameTransactionsVerifyEachSignatureOnce() async throws {
        // A wait long enough for any check here, however slow the machine, so the count is exact.
        try await Self.withNode(signatureWaitMilliseconds: 60_000) { node in
            var factory = TransactionFactory(consortium: Self.consortium)
            let transactions = (1...400).map { number in
                factory.make(TestConsortium.tier1, .proposeReceivable(Self.consortium.terms(face: 100, invoiceNumber: "\(number)")))
            }
            let key = Self.consortium.member(TestConsortium.tier1).publicKey
            // Overlapping halves, each checked by several calls at once, in different orders.
            let calls = [Array(transactions[..<300]), Array(transactions[100...].reversed()), transactions, Array(transactions[50..<350])]
            let results = await withTaskGroup(of: [Hash: PublicKey].self) { group in
                for call in calls { group.addTask { node.verifySignatures(call) } }
                return await group.reduce(into: []) { $0.append($1) }
            }
            for result in results { #expect(result.values.allSatisfy { $0 == key }) }
            #expect(results.map(\.count).sorted() == calls.map(\.count).sorted())
            #expect(node.clientSignatureChecks.load(ordering: .relaxed) == transactions.count)
            #expect(node.signaturesInFlight.count == 0)
        }
    }

    @Test func aClaimedTransactionIsWaitedForAndThenReleased() async {
        let inFlight = SignaturesInFlight(timeout: 60)
        let (genuine, forged) = Self.pair()   // one id, two signatures: the id is what is claimed
        #expect(inFlight.tryClaim([genuine.id]) == [true])
        #expect(inFlight.tryClaim([forged.id]) == [false], "claimed by the first")
        let waiter = Task.detached { inFlight.waitUntilChecked([forged]); return true }
        try? await Task.sleep(for: .milliseconds(50))
        inFlight.release([genuine.id])
        #expect(await waiter.value)
        #expect(inFlight.count == 0)
        #expect(inFlight.tryClaim([forged.id]) == [true], "free again once released")
        // A claim never released is waited for only until the timeout.
        let short = SignaturesInFlight(timeout: 0.05)
        #expect(short.tryClaim([genuine.id]) == [true])
        let started = ContinuousClock.now
        short.waitUntilChecked([genuine])
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    /// A checker claims a group under one lock: what another call holds (or the group holds
    /// twice) is left out, and releasing the group frees exactly what it claimed.
    @Test func aGroupIsClaimedAndReleasedTogether() {
        let inFlight = SignaturesInFlight(timeout: 60)
        let (genuine, forged) = Self.pair()
        var factory = TransactionFactory(consortium: Self.consortium)
        let other = factory.make(TestConsortium.tier1, .proposeReceivable(Self.consortium.terms(face: 5, invoiceNumber: "6999")))
        #expect(inFlight.tryClaim([other.id]) == [true])
        #expect(inFlight.tryClaim([genuine.id, other.id, forged.id]) == [true, false, false], "held by another call, or twice in the group")
        #expect(inFlight.count == 2)
        inFlight.release([genuine.id])
        #expect(inFlight.count == 1)
        #expect(inFlight.tryClaim([other.id]) == [false], "a group's release leaves other claims alone")
        inFlight.release([Hash]())
        inFlight.release([other.id])
        #expect(inFlight.count == 0)
    }

    /// The same transaction twice in one call (a client's batch) is checked once.
    @Test func aTransactionTwiceInOneCallIsCheckedOnce() async throws {
        try await Self.withNode(signatureWaitMilliseconds: 60_000) { node in
            var factory = TransactionFactory(consortium: Self.consortium)
            let transactions = (1...40).map { number in
                factory.make(TestConsortium.tier1, .proposeReceivable(Self.consortium.terms(face: 100, invoiceNumber: "\(7000 + number)")))
            }
            // 40 apart: with 8 chunks (4 per core on 2 cores) a copy lands in its original's chunk
            // and group; with other core counts, in another chunk checked at the same time.
            let verified = node.verifySignatures(transactions + transactions)
            #expect(verified.count == transactions.count)
            #expect(node.clientSignatureChecks.load(ordering: .relaxed) == transactions.count)
            #expect(node.signaturesInFlight.count == 0)
        }
    }

    @Test func theMemoryIsBoundedOldestForgottenFirst() {
        var memo = ValidatorNode.CheckedSignatures(limit: 100)
        let genuine = Self.pair().genuine
        let entry = ValidatorNode.CheckedSignature(signature: genuine.signature, key: Self.consortium.member(TestConsortium.tier1).publicKey)
        for n in 0..<1_000 { _ = memo.insert(Hash(w0: UInt64(n), w1: 1, w2: 2, w3: 3), entry) }
        #expect(memo.entries.count == 100)
        #expect(memo.ring.capacity < 200)
        #expect(memo.entries[Hash(w0: 999, w1: 1, w2: 2, w3: 3)] != nil)
        #expect(memo.entries[Hash(w0: 899, w1: 1, w2: 2, w3: 3)] == nil)
        let again = memo.insert(Hash(w0: 999, w1: 1, w2: 2, w3: 3), entry)
        #expect(!again, "a known id keeps its first entry")
    }

    /// A block carrying a transaction whose signature does not verify: refused, unless the shell
    /// vouches for that exact signature (which is what lets a checked transaction skip a second
    /// check; a real shell only vouches for valid ones).
    @Test func validatingAProposalSkipsSignaturesTheShellVouchesFor() throws {
        let directory = Self.temporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let consortium = Self.consortium
        func application(_ name: String) throws -> StoreApplication {
            let store = try LedgerStore.open(path: directory + "/\(name).sqlite", genesis: consortium.genesis, suite: consortium.suite)
            return StoreApplication(store: store, genesis: consortium.genesis, suite: consortium.suite)
        }
        let forged = Self.pair().forged
        // The proposer trusts its pool's checks, so a block with the forged transaction can be made.
        var proposer = try application("proposer")
        let tip = proposer.store.tip
        let block = try proposer.propose([forged], on: tip, timestamp: tip.timestamp.adding(milliseconds: 3_600_000),
                                         view: View(0), proposer: ValidatorIndex(0))
        #expect(block.transactions.map(\.id) == [forged.id])

        var plain = try application("plain")
        #expect(throws: BlockValidationError.self) { try plain.validate(block, on: tip, certified: false) }

        var reported = try application("reported")
        reported.checkedElsewhere = { transactions in
            Dictionary(uniqueKeysWithValues: transactions.map { ($0.id, $0.signature) })
        }
        try reported.validate(block, on: tip, certified: false)

        var otherSignature = try application("other")
        let genuine = Self.pair().genuine
        otherSignature.checkedElsewhere = { _ in [genuine.id: genuine.signature] }
        #expect(throws: BlockValidationError.self, "a different signature checked under the same id does not count") {
            try otherSignature.validate(block, on: tip, certified: false)
        }
    }
}

/// Admission answers a client with the rules' verdict (a dry run on the committed state); a copy
/// another validator relayed was judged there and is not run again here.
@Suite struct AdmissionDryRunTests {
    @Test func onlyAClientsOwnSubmissionIsDryRunAgainstTheRules() async throws {
        try await CheckedSignaturesTests.withNode { node in
            let consortium = CheckedSignaturesTests.consortium
            var factory = TransactionFactory(consortium: consortium)
            // The debtor confirms a receivable nobody proposed: signed and next in nonce, but against the rules.
            let confirm = factory.make(TestConsortium.core, .confirmReceivable(ReceivableID(consortium.suite.hash([7]))), nonce: 1)
            let asClient = node.queue.sync { node.admit(confirm, fromClient: true) }
            #expect(asClient?.code == .unknownReceivable, "got \(String(describing: asClient))")
            let relayed = node.queue.sync { node.admit(confirm, fromClient: false) }
            #expect(relayed == nil, "a relayed copy enters the pool; its block's execution judges it")
            #expect(node.queue.sync { node.pending.contains(confirm.id) })
        }
    }
}

extension ValidatorNode {
    /// One transaction through the node's group admission, as a client's submission or a peer's
    /// relay: its answer, nil if admitted (or already pooled). On the node's queue; the
    /// directives are performed with the next group.
    func admit(_ transaction: SignedTransaction, fromClient: Bool) -> Rejection? {
        let reply: (@Sendable ([Rejection?]) -> Void)? = fromClient ? { @Sendable _ in } : nil
        return admitGroup([Submission(transactions: [transaction], reply: reply)], verified: [:])[0][0]
    }
}
