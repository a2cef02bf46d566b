// libFuzzer target: what one validator decodes from another's frames and from its own state
// files. Input: [mode][suite][payload].
//   nodeMessage / consensusMessage: NodeMessage(wireBytes:) and ConsensusMessage(wireBytes:),
//     then every check the replica runs on a decoded message (signatures, certificates).
//   persistentState: PersistentState(canonicalBytes:) (replica.state).
//   replicaLog: the payload is a list of [u16 length][record] that the harness frames with valid
//     CRCs after the log header of the sample state's snapshot, so the records reach the decoder
//     instead of failing the checksum; ReplicaStateFile.replay must not trap, and the state it
//     returns must survive difference → frame → replay unchanged.
// Invariants: decoded values re-encode to the same bytes (NodeMessage.blocksRequest clamps its
// limit to 256 by design, so that one is compared after the clamp).
import Consensus
import FuzzSupport
import LedgerCore
@testable import LedgerNode
import LedgerTestKit

enum Mode: UInt8, CaseIterable {
    case nodeMessage, consensusMessage, persistentState, replicaLog
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfAsked(NodeMessageSeeds.all)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNodeMessage(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    var cursor = FuzzCursor(fuzzBytes(start, count))
    let mode = Mode(rawValue: cursor.byte() % UInt8(Mode.allCases.count))!
    let selector = cursor.byte()
    let consortium = FuzzFixtures.consortium(selector)
    switch mode {
    case .nodeMessage: checkNodeMessage(cursor.rest(), consortium)
    case .consensusMessage: checkConsensusMessage(cursor.rest(), consortium)
    case .persistentState: checkPersistentState(cursor.rest(), consortium)
    case .replicaLog: checkReplicaLog(&cursor, selector: selector)
    }
    return 0
}

func checkNodeMessage(_ payload: [UInt8], _ consortium: TestConsortium) {
    guard let message = try? NodeMessage(wireBytes: payload, suite: consortium.suite) else { return }
    _ = message.kind
    switch message {
    case .consensus(let inner):
        checkConsensus(inner, consortium)
        checkRoundTrip("NodeMessage.consensus", input: payload, reencoded: message.wireBytes)
    case .transaction(let transaction):
        invariant(transaction.id == consortium.suite.hash(transaction.bodyBytes), "relayed transaction id is not its body hash")
        checkRoundTrip("NodeMessage.transaction", input: payload, reencoded: message.wireBytes)
    case .transactions(let transactions):
        invariant(transactions.count <= NodeMessage.maxTransactionsPerFrame, "\(transactions.count) transactions decoded from one relay frame")
        for transaction in transactions {
            invariant(transaction.id == consortium.suite.hash(transaction.bodyBytes), "relayed transaction id is not its body hash")
        }
        checkRoundTrip("NodeMessage.transactions", input: payload, reencoded: message.wireBytes)
    case .blocksRequest(_, let limit):
        invariant(limit <= NodeMessage.maxBlocksPerResponse, "a blocks request decoded with limit \(limit) above the cap")
        var clamped = payload
        let requested = clamped.suffix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let expected = min(requested, NodeMessage.maxBlocksPerResponse)
        clamped.replaceSubrange((clamped.count - 4)..., with: withUnsafeBytes(of: expected.bigEndian, Array.init))
        checkRoundTrip("NodeMessage.blocksRequest", input: clamped, reencoded: message.wireBytes)
    case .blocks(let blocks):
        invariant(blocks.count <= Int(NodeMessage.maxBlocksPerResponse), "\(blocks.count) blocks decoded from one response")
        for committed in blocks {
            invariant(Int(committed.block.header.transactionCount) == committed.block.transactions.count, "block count mismatch")
            try? committed.certificate.verify(validators: consortium.validatorSet, chainID: consortium.genesis.chainID,
                                              suite: consortium.suite)
        }
        checkRoundTrip("NodeMessage.blocks", input: payload, reencoded: message.wireBytes)
    }
}

func checkConsensusMessage(_ payload: [UInt8], _ consortium: TestConsortium) {
    guard let message = try? ConsensusMessage(wireBytes: payload, suite: consortium.suite) else { return }
    checkConsensus(message, consortium)
    checkRoundTrip("ConsensusMessage", input: payload, reencoded: message.wireBytes)
}

/// The checks a replica runs on a message before acting on it; none may trap on hostile values.
func checkConsensus(_ message: ConsensusMessage, _ consortium: TestConsortium) {
    let suite = consortium.suite
    let chainID = consortium.genesis.chainID
    let validators = consortium.validatorSet
    let genesisHash = consortium.genesis.hash(suite: suite)
    _ = message.kind
    if let sender = message.claimedSender(validators: validators), case .prePrepare = message {
        invariant(validators.validator(at: sender) != nil, "the primary of a view is not a validator")
    }
    switch message {
    case .prePrepare(let prePrepare):
        _ = prePrepare.proposal.isValid(chainID: chainID, validators: validators, suite: suite)
        _ = prePrepare.block.hash(suite: suite)
        _ = Block.transactionsRoot(prePrepare.block.transactions, suite: suite)
    case .prepare(let prepare):
        _ = prepare.isValid(chainID: chainID, validators: validators, suite: suite)
        _ = prepare.proposal.isValid(chainID: chainID, validators: validators, suite: suite)
    case .commit(let commit):
        _ = commit.isValid(chainID: chainID, validators: validators, suite: suite)
    case .checkpoint(let checkpoint):
        _ = checkpoint.isValid(chainID: chainID, validators: validators, suite: suite)
    case .viewChange(let change):
        _ = change.problem(chainID: chainID, genesisHash: genesisHash, validators: validators, suite: suite)
    case .newView(let newView):
        _ = newView.hasValidSignature(chainID: chainID, validators: validators, suite: suite)
        for change in newView.viewChanges {
            _ = change.problem(chainID: chainID, genesisHash: genesisHash, validators: validators, suite: suite)
        }
        for proposal in newView.proposals { _ = proposal.isValid(chainID: chainID, validators: validators, suite: suite) }
    case .request(let transaction):
        invariant(transaction.id == suite.hash(transaction.bodyBytes), "forwarded request id is not its body hash")
    }
}

func checkPersistentState(_ payload: [UInt8], _ consortium: TestConsortium) {
    guard let state = try? PersistentState(canonicalBytes: payload, suite: consortium.suite) else { return }
    checkRoundTrip("PersistentState", input: payload, reencoded: state.canonicalBytes)
}

/// Snapshot states the log records are replayed onto, one per suite (built once).
enum LogFixtures {
    static let ed25519 = try! SampleChain(FuzzFixtures.ed25519, blocks: 1, transactionsPerBlock: 2).persistentState()
    static let sm2 = try! SampleChain(FuzzFixtures.sm2, blocks: 1, transactionsPerBlock: 2).persistentState()
}

func checkReplicaLog(_ cursor: inout FuzzCursor, selector: UInt8) {
    let consortium = FuzzFixtures.consortium(selector)
    let suite = consortium.suite
    let snapshot = selector & 1 == 0 ? LogFixtures.ed25519 : LogFixtures.sm2
    let snapshotBytes = snapshot.canonicalBytes
    let digest = Array(suite.hash(snapshotBytes).bytes.prefix(16))
    var log = ReplicaStateFile.magic + digest
    while !cursor.isEmpty {
        let length = Int(cursor.uint16())
        ReplicaStateFile.frame(cursor.take(length), into: &log)
    }
    guard let replayed = try? ReplicaStateFile.replay(log, onto: snapshot, snapshotDigest: digest, suite: suite) else { return }
    // What replay rebuilt must be a state the node can save and find again.
    let again = try? PersistentState(canonicalBytes: replayed.canonicalBytes, suite: suite)
    invariant(again == replayed, "a replayed replica state does not survive its own snapshot encoding")
    var roundTrip = ReplicaStateFile.magic + digest
    for record in ReplicaStateFile.difference(from: snapshot, to: replayed) { ReplicaStateFile.frame(record, into: &roundTrip) }
    let rebuilt = try? ReplicaStateFile.replay(roundTrip, onto: snapshot, snapshotDigest: digest, suite: suite)
    invariant(rebuilt == replayed, "difference(snapshot → replayed state) does not replay to the same state")
}

enum NodeMessageSeeds {
    static func all() throws -> [Seed] {
        var seeds: [Seed] = []
        for (selector, consortium) in [(UInt8(0), FuzzFixtures.ed25519), (UInt8(1), FuzzFixtures.sm2)] {
            let tag = consortium.suite.id.rawValue
            func seed(_ mode: Mode, _ name: String, _ bytes: [UInt8]) {
                seeds.append(Seed("\(name)-\(tag)", [mode.rawValue, selector] + bytes))
            }
            let sample = try SampleChain(consortium, blocks: 2, transactionsPerBlock: 3)
            for message in try sample.consensusMessages() {
                seed(.consensusMessage, "consensus-\(message.kind)", message.wireBytes)
                seed(.nodeMessage, "node-consensus-\(message.kind)", NodeMessage.consensus(message).wireBytes)
            }
            seed(.nodeMessage, "node-transaction", NodeMessage.transaction(sample.transactions[0]).wireBytes)
            seed(.nodeMessage, "node-transactions", NodeMessage.transactions(Array(sample.transactions.prefix(3))).wireBytes)
            seed(.nodeMessage, "node-blocks-request", NodeMessage.blocksRequest(from: Height(1), limit: 64).wireBytes)
            seed(.nodeMessage, "node-blocks", NodeMessage.blocks(sample.blocks).wireBytes)
            let state = try sample.persistentState()
            seed(.persistentState, "persistent-state", state.canonicalBytes)
            // Log records: the difference from the fixture snapshot to an empty-ish state and back.
            let snapshot = selector & 1 == 0 ? LogFixtures.ed25519 : LogFixtures.sm2
            let emptier = PersistentState(view: View(3), viewChangeTarget: nil, viewChangeAttempt: 0,
                                          stableCheckpoint: snapshot.stableCheckpoint, prepared: [], sentPrepares: [],
                                          lastNewView: nil, ownProposals: [])
            for (name, target) in [("log-to-empty", emptier), ("log-to-sample", state)] {
                var payload: [UInt8] = []
                for record in ReplicaStateFile.difference(from: snapshot, to: target) {
                    payload += withUnsafeBytes(of: UInt16(truncatingIfNeeded: record.count).bigEndian, Array.init) + record
                }
                seed(.replicaLog, name, payload)
            }
        }
        return seeds
    }
}
