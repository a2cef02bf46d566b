import Consensus
import Foundation
import LedgerCore
@testable import LedgerNode
import LedgerTestKit
import Testing

/// The replica state is saved incrementally (a snapshot and a log of changes): what `load` finds
/// after any sequence of saves, a torn last record or a compaction is exactly the last state saved.
@Suite struct ReplicaStateFileTests {
    let consortium = TestConsortium(validators: 4)
    var chainID: String { consortium.genesis.chainID }
    var suite: any CryptoSuite { consortium.suite }

    func temporaryDirectory() throws -> String {
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("scf-replica-state-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A block of `count` member registrations at `height` (its content only matters for size).
    func prePrepare(height: UInt64, view: UInt64 = 0, transactions count: Int, tag: String = "") throws -> PrePrepare {
        var factory = TransactionFactory(consortium: consortium)
        var application = LedgerApplication(genesis: consortium.genesis, suite: suite)
        let candidates = (0..<count).map { number in
            let key = TestConsortium.key(for: "state-\(tag)-\(height)-\(number)", suite: suite)
            let id = MemberID("state-\(tag)-\(height)-\(number)")!
            return factory.make(TestConsortium.operatorID, .registerMember(Member(id: id, legalName: "State \(number) Ltd",
                                                                                  creditCode: TestConsortium.creditCode(for: id.rawValue),
                                                                                  roles: [.supplier], publicKey: key.publicKey)))
        }
        let genesisTip = BlockExecutor.genesisTip(genesis: consortium.genesis, suite: suite)
        var block = try application.propose(candidates, on: genesisTip, timestamp: TestConsortium.genesisTime.adding(milliseconds: 1_000),
                                            view: View(view), proposer: ValidatorIndex(UInt16(view % 4)))
        block.header.height = Height(height)   // the file does not validate chains
        let hash = block.hash(suite: suite)
        let proposal = try ProposalSignature.sign(chainID: chainID, view: View(view), height: Height(height), blockHash: hash,
                                                  key: consortium.validatorKeys[Int(view % 4)], suite: suite)
        return PrePrepare(block: block, proposal: proposal)
    }

    func prepared(_ prePrepare: PrePrepare) throws -> PreparedCertificate {
        let primary = Int(prePrepare.view.value % 4)
        let prepares = try (0..<4).filter { $0 != primary }.prefix(2).map {
            try Prepare.sign(proposal: prePrepare.proposal, chainID: chainID, replica: ValidatorIndex(UInt16($0)),
                             key: consortium.validatorKeys[$0], suite: suite)
        }
        return PreparedCertificate(prePrepare: prePrepare, prepares: Array(prepares))
    }

    func checkpoint(at height: UInt64, hash: Hash) throws -> CheckpointCertificate {
        let votes = try (0..<3).map {
            try Checkpoint.sign(chainID: chainID, height: Height(height), blockHash: hash, replica: ValidatorIndex(UInt16($0)),
                                key: consortium.validatorKeys[$0], suite: suite)
        }
        return CheckpointCertificate(height: Height(height), blockHash: hash, checkpoints: votes)
    }

    var genesisCheckpoint: CheckpointCertificate {
        CheckpointCertificate(height: .genesis, blockHash: BlockExecutor.genesisTip(genesis: consortium.genesis, suite: suite).hash,
                              checkpoints: [])
    }

    /// A primary's and a backup's life: propose, prepare, view change, checkpoint.
    func states() throws -> [PersistentState] {
        let own = try prePrepare(height: 1, transactions: 40)
        let other = try prePrepare(height: 2, view: 1, transactions: 5, tag: "other")
        var state = PersistentState(view: View(0), viewChangeTarget: nil, viewChangeAttempt: 0, stableCheckpoint: genesisCheckpoint,
                                    prepared: [], sentPrepares: [], lastNewView: nil)
        var states = [state]
        state.ownProposals = [own]
        states.append(state)
        state.prepared = [try prepared(own)]
        states.append(state)
        state.sentPrepares = [other.proposal]
        state.prepared.append(try prepared(other))
        states.append(state)
        state.viewChangeTarget = View(1)
        state.viewChangeAttempt = 1
        states.append(state)
        state.stableCheckpoint = try checkpoint(at: 1, hash: own.blockHash)
        state.prepared = [try prepared(other)]
        state.ownProposals = []
        states.append(state)
        return states
    }

    @Test func everySaveIsWhatALaterLoadFinds() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = ReplicaStateFile(directory: directory, suite: suite)
        #expect(try file.load() == nil)
        for state in try states() {
            try file.save(state)
            #expect(try ReplicaStateFile(directory: directory, suite: suite).load() == state)
        }
        // Every save above wrote, and was timed; saving the same state again writes, flushes and
        // times nothing.
        #expect(file.writtenSaves.count == (try states().count))
        #expect(file.writtenSaves.seconds > 0)
        let flushes = file.flushes.load(ordering: .relaxed)
        let saves = file.writtenSaves.count
        try file.save(try states().last!)
        #expect(file.flushes.load(ordering: .relaxed) == flushes)
        #expect(file.writtenSaves.count == saves)
    }

    @Test func aBlockIsWrittenOnceNotOnEveryChange() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = ReplicaStateFile(directory: directory, suite: suite)
        _ = try file.load()
        let states = try states()
        try file.save(states[0])
        let snapshot = try #require(FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int)
        func logSize() throws -> Int { try #require(FileManager.default.attributesOfItem(atPath: file.logPath)[.size] as? Int) }
        let empty = try logSize()
        try file.save(states[1])   // the own proposal: its block enters the log
        let afterProposal = try logSize()
        let blockBytes = states[1].ownProposals[0].block.transactions.reduce(0) { $0 + $1.wireBytes.count }
        #expect(afterProposal - empty > blockBytes)
        try file.save(states[2])   // prepared on that proposal: only the prepares
        #expect(try logSize() - afterProposal < blockBytes / 4)
        // The snapshot was not rewritten.
        #expect(try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int == snapshot)
        #expect(try ReplicaStateFile(directory: directory, suite: suite).load() == states[2])
    }

    @Test func aTornLastRecordIsIgnored() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = ReplicaStateFile(directory: directory, suite: suite)
        _ = try file.load()
        let states = try states()
        for state in states.prefix(4) { try file.save(state) }
        let complete = try #require(FileManager.default.contents(atPath: file.logPath))
        try file.save(states[4])
        let longer = try #require(FileManager.default.contents(atPath: file.logPath))
        // A crash in the middle of writing the last record: part of it reached the disk.
        for cut in [complete.count + 3, complete.count + 9, longer.count - 1] {
            try longer.prefix(cut).write(to: URL(fileURLWithPath: file.logPath))
            #expect(try ReplicaStateFile(directory: directory, suite: suite).load() == states[3])
        }
        // A flipped byte in the last record: its checksum fails.
        var damaged = longer
        damaged[longer.count - 2] ^= 0x40
        try damaged.write(to: URL(fileURLWithPath: file.logPath))
        #expect(try ReplicaStateFile(directory: directory, suite: suite).load() == states[3])
    }

    @Test func compactionWritesASnapshotAndAnOlderLogIsIgnored() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = ReplicaStateFile(directory: directory, suite: suite, compactionThreshold: 0)
        _ = try file.load()
        let states = try states()
        try file.save(states[0])
        try file.save(states[1])   // the log is now more than twice the snapshot
        let oldLog = try #require(FileManager.default.contents(atPath: file.logPath))
        try file.save(states[2])   // so this save compacts: a new snapshot, a fresh log
        #expect(try ReplicaStateFile(directory: directory, suite: suite).load() == states[2])
        // A crash after the new snapshot but before the new log replaced the old one: the old
        // log names the old snapshot and is ignored.
        try oldLog.write(to: URL(fileURLWithPath: file.logPath))
        #expect(try ReplicaStateFile(directory: directory, suite: suite).load() == states[2])
        // Reopened, the node starts a fresh snapshot on its first save and goes on from there.
        let reopened = ReplicaStateFile(directory: directory, suite: suite, compactionThreshold: 0)
        #expect(try reopened.load() == states[2])
        for state in states.dropFirst(3) {
            try reopened.save(state)
            #expect(try ReplicaStateFile(directory: directory, suite: suite).load() == state)
        }
    }
}
