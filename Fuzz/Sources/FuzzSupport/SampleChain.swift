import Consensus
import LedgerCore
import LedgerTestKit

/// Real encodings for the seed corpora: a short chain executed and certified by LedgerTestKit's
/// workload generator (every operation kind it makes, accepted and rejected), and one of each
/// consensus message about its blocks, signed with the consortium's validator keys.
public struct SampleChain {
    public let consortium: TestConsortium
    public private(set) var blocks: [CommittedBlock] = []
    public var transactions: [SignedTransaction] { blocks.flatMap(\.block.transactions) }

    public init(_ consortium: TestConsortium, blocks count: Int = 4, transactionsPerBlock: Int = 6) throws {
        self.consortium = consortium
        var generator = WorkloadGenerator(consortium: consortium, seed: 7, transactionsPerBlock: transactionsPerBlock)
        var builder = ChainBuilder(consortium: consortium)
        for _ in 0..<count {
            let next = generator.nextBlock()
            let (committed, result) = try builder.append(next.transactions, at: next.timestamp)
            generator.observe(result)
            blocks.append(committed)
        }
    }

    var chainID: String { consortium.genesis.chainID }
    var suite: any CryptoSuite { consortium.suite }

    /// One of each consensus message kind, about the sample's blocks.
    public func consensusMessages() throws -> [ConsensusMessage] {
        let keys = consortium.validatorKeys
        let validators = consortium.validatorSet
        let genesisHash = consortium.genesis.hash(suite: suite)
        let block = blocks[0].block
        let hash = block.hash(suite: suite)
        let height = block.header.height
        let view = View(0)
        let primary = Int(validators.primary(of: view).value)
        let proposal = try ProposalSignature.sign(chainID: chainID, view: view, height: height, blockHash: hash,
                                                  key: keys[primary], suite: suite)
        let prePrepare = PrePrepare(block: block, proposal: proposal)
        let prepares = try (0..<validators.count).filter { $0 != primary }.map {
            try Prepare.sign(proposal: proposal, chainID: chainID, replica: ValidatorIndex(UInt16($0)), key: keys[$0], suite: suite)
        }
        let commit = try Commit.sign(chainID: chainID, view: view, height: height, blockHash: hash, replica: ValidatorIndex(1),
                                     key: keys[1], suite: suite)
        let checkpoint = try Checkpoint.sign(chainID: chainID, height: height, blockHash: hash, replica: ValidatorIndex(2),
                                             key: keys[2], suite: suite)
        let genesisCheckpoint = CheckpointCertificate(height: Height(0), blockHash: genesisHash, checkpoints: [])
        let prepared = PreparedCertificate(prePrepare: prePrepare, prepares: prepares)
        let newViewNumber = View(1)
        let changes = try (0..<validators.quorum).map { index in
            try ViewChange.sign(newView: newViewNumber, replica: ValidatorIndex(UInt16(index)), checkpoint: genesisCheckpoint,
                                prepared: index == 0 ? [prepared] : [], chainID: chainID, key: keys[index], suite: suite)
        }
        let newPrimary = Int(validators.primary(of: newViewNumber).value)
        let reproposal = try ProposalSignature.sign(chainID: chainID, view: newViewNumber, height: height, blockHash: hash,
                                                    key: keys[newPrimary], suite: suite)
        let newView = try NewView.sign(view: newViewNumber, viewChanges: changes, proposals: [reproposal], chainID: chainID,
                                       key: keys[newPrimary], suite: suite)
        return [.prePrepare(prePrepare), .prepare(prepares[0]), .commit(commit), .checkpoint(checkpoint),
                .viewChange(changes[0]), .newView(newView), .request(blocks[0].block.transactions[0])]
    }

    /// A replica's persistent state that holds every kind of record.
    public func persistentState() throws -> PersistentState {
        let messages = try consensusMessages()
        var prePrepare: PrePrepare?
        var prepares: [Prepare] = []
        var newView: NewView?
        for message in messages {
            switch message {
            case .prePrepare(let value): prePrepare = value
            case .prepare(let value): prepares.append(value)
            case .newView(let value): newView = value
            default: break
            }
        }
        let genesisCheckpoint = CheckpointCertificate(height: Height(0), blockHash: consortium.genesis.hash(suite: suite), checkpoints: [])
        return PersistentState(view: View(1), viewChangeTarget: View(2), viewChangeAttempt: 1, stableCheckpoint: genesisCheckpoint,
                               prepared: [PreparedCertificate(prePrepare: prePrepare!, prepares: prepares)],
                               sentPrepares: [prePrepare!.proposal], lastNewView: newView, ownProposals: [prePrepare!])
    }
}
