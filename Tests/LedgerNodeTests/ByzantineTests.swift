import Consensus
import Foundation
import LedgerCore
@testable import LedgerNode
import LedgerTestKit
import Synchronization
import Testing

/// One validator of four runs `ByzantineLinks` (what `scf node start --byzantine MODE` does) in an
/// in-memory network; the three honest ones must keep committing, hold the same block at every
/// height, never blame each other, and report what the protocol can prove.
@Suite(.serialized) struct ByzantineTests {
    struct Run {
        let consortium: TestConsortium
        let directory: String
        let network = MemoryNetwork()
        var factory: TransactionFactory
        let observed = Observed()
        var byzantine: ByzantineLinks!

        init(mode: ByzantineMode, byzantineIndex: UInt16 = 0) throws {
            consortium = TestConsortium(validators: 4, consensus: ConsensusParameters(checkpointInterval: 4, watermarkWindow: 64,
                                                                                       viewChangeTimeoutMilliseconds: 1_000,
                                                                                       maxViewChangeTimeoutMilliseconds: 3_000))
            directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("scf-byzantine-\(UUID().uuidString)")
            factory = TransactionFactory(consortium: consortium)
            for index in UInt16(0)..<4 {
                let me = ValidatorIndex(index)
                let honest = index != byzantineIndex
                let node = try ValidatorNode(configuration: .init(genesis: consortium.genesis, suite: consortium.suite, me: me,
                                                                  key: consortium.validatorKeys[Int(index)],
                                                                  dataDirectory: (directory as NSString).appendingPathComponent("node-\(index)"))) {
                    [observed] event in
                    guard honest else { return }
                    switch event {
                    case .misbehaviour(let culprit, let evidence): observed.reports.withLock { $0.append((index, culprit.value, evidence)) }
                    case .ignoredFrame: observed.ignoredFrames.add(1, ordering: .relaxed)
                    default: break
                    }
                }
                network.join(node)
                if !honest {
                    let links = ByzantineLinks(wrapping: MemoryNetwork.Links(network: network, me: me), mode: mode, genesis: consortium.genesis,
                                               suite: consortium.suite, me: me, key: consortium.validatorKeys[Int(index)])
                    node.attach(links)
                    links.startFlood(garbagePerTick: 20, interval: .milliseconds(20), oversizedLength: 1 << 20, oversizedEvery: 10)
                    byzantine = links
                }
            }
        }

        func node(_ index: UInt16) -> ValidatorNode { network.nodes.withLock { $0[ValidatorIndex(index)]! } }

        mutating func registration(_ number: Int) -> SignedTransaction {
            let key = TestConsortium.key(for: "byzantine-member-\(number)", suite: consortium.suite)
            let member = Member(id: MemberID("member-\(number)")!, legalName: "Member \(number) Ltd",
                                creditCode: TestConsortium.creditCode(for: "b\(number)"), roles: [.supplier], publicKey: key.publicKey)
            return factory.make(TestConsortium.operatorID, .registerMember(member))
        }

        func waitUntilHonestCommitted(_ id: Hash, honest: [UInt16], seconds: Double = 120) async throws -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if honest.allSatisfy({ if case .committed = node($0).status(of: id) { true } else { false } }) { return true }
                try await Task.sleep(for: .milliseconds(20))
            }
            return false
        }

        func cleanUp() {
            byzantine?.stopFlood()
            for node in network.nodes.withLock({ Array($0.values) }) { node.stop() }
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// What the honest nodes reported: who, and the evidence.
    final class Observed: Sendable {
        let reports = Mutex<[(reporter: UInt16, culprit: UInt16, evidence: Evidence)]>([])
        let ignoredFrames = Atomic<Int>(0)
    }

    @Test(.timeLimit(.minutes(4)), arguments: ByzantineMode.allCases)
    func honestValidatorsKeepCommittingAndAgree(mode: ByzantineMode) async throws {
        var run = try Run(mode: mode)
        defer { run.cleanUp() }
        let honest: [UInt16] = [1, 2, 3]
        for number in 0..<16 {
            let transaction = run.registration(number)
            #expect(await run.node(honest[number % 3]).submit(transaction) == nil)
            let committed = try await run.waitUntilHonestCommitted(transaction.id, honest: honest)
            #expect(committed, "\(mode): transaction \(number) did not commit on the honest nodes")
            if !committed { return }
        }
        // Same block at every height on the honest nodes.
        let height = honest.map { run.node($0).nodeStatus.height }.min()!
        #expect(height.value >= 16)
        for value in 1...height.value {
            let hashes = try honest.map { try run.node($0).store.block(at: Height(value))?.block.hash(suite: run.consortium.suite) }
            #expect(Set(hashes).count == 1 && hashes[0] != nil, "\(mode): honest nodes differ at height \(value)")
        }
        #expect(run.byzantine.tamperedFrames.load(ordering: .relaxed) > 0, "\(mode): the Byzantine node never misbehaved")
        let reports = run.observed.reports.withLock { $0 }
        #expect(reports.allSatisfy { $0.culprit == 0 }, "\(mode): an honest validator was blamed: \(reports.filter { $0.culprit != 0 })")
        let counted = honest.map { run.node($0).misbehaviourReports.load(ordering: .relaxed) }.reduce(0, +)
        #expect(counted == reports.count)
        func has(_ match: (Evidence) -> Bool) -> Bool { reports.contains { match($0.evidence) } }
        switch mode {
        case .equivocate:
            #expect(has { if case .equivocation = $0 { true } else { false } }, "equivocation was not reported")
        case .conflictingVotes:
            #expect(has { if case .conflictingCommits = $0 { true } else if case .conflictingCheckpoints = $0 { true } else { false } },
                    "conflicting votes were not reported")
        case .forgeSignatures:
            #expect(has { if case .badSignature = $0 { true } else { false } }, "bad signatures were not reported")
            #expect(has { if case .malformed = $0 { true } else { false } }, "votes claimed for another validator were not reported")
        case .replay:
            #expect(reports.isEmpty, "replayed genuine messages are not misbehaviour anyone can prove: \(reports.map(\.evidence))")
        case .flood:
            #expect(run.observed.ignoredFrames.load(ordering: .relaxed) > 0, "no garbage frame was ignored")
        }
    }
}
