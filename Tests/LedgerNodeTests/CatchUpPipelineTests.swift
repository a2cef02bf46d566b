import Consensus
import Foundation
import LedgerCore
@testable import LedgerNode
import LedgerTestKit
import Synchronization
import Testing

/// The pipelined catch-up: only verified blocks reach the node, in order; bad answers are refused
/// and the rest is asked of another validator.
@Suite(.serialized) struct CatchUpPipelineTests {
    /// The same answer with the certificate of its middle block broken (one vote's signature).
    static func breakingMiddleCertificate(_ frame: [UInt8], suite: any CryptoSuite) -> [UInt8]? {
        guard NodeMessage.carriesBlocks(frame), case .blocks(var blocks) = try? NodeMessage(wireBytes: frame, suite: suite),
              !blocks.isEmpty else { return nil }
        let middle = blocks.count / 2
        var votes = blocks[middle].certificate.votes
        var raw = votes[0].signature.rawRepresentation
        raw[raw.count / 2] ^= 0x40
        votes[0].signature = Signature(rawRepresentation: raw)
        blocks[middle].certificate.votes = votes
        return NodeMessage.blocks(blocks).wireBytes
    }

    func isActive(_ pipeline: CatchUpPipeline) -> Bool { pipeline.active.load(ordering: .relaxed) }

    /// A node serves catch-up from the stored bytes without decoding them: those bytes must be
    /// exactly the block as catch-up encodes it, and decode back to the stored block.
    @Test func storedBytesAreTheBlockAsCatchUpSendsIt() async throws {
        var cluster = try TestCluster()
        defer { cluster.cleanUp() }
        _ = try await cluster.commitRegistrations(0...5, door: { _ in 0 }, waitEvery: 6)
        let store = cluster.node(0).store
        var served: [(wire: [UInt8], certificate: [UInt8])] = [], decoded: [CommittedBlock] = []
        try store.forEachEncodedBlock { _, wire, certificate in served.append((wire, certificate)); return true }
        try store.forEachBlock { decoded.append($0); return true }
        #expect(!served.isEmpty && served.count == decoded.count)
        let frame = NodeMessage.blocksFrame(served)
        #expect(frame == NodeMessage.blocks(decoded).wireBytes)
        guard case .blocks(let blocks) = try NodeMessage(wireBytes: frame, suite: cluster.consortium.suite) else {
            Issue.record("the frame does not decode as blocks"); return
        }
        #expect(blocks.map(\.block.header) == decoded.map(\.block.header))
        #expect(blocks.map(\.certificate) == decoded.map(\.certificate))
    }

    @Test(.timeLimit(.minutes(4)))
    func aPeerServingABadCertificateMidRangeIsRefusedAndTheNodeReachesTheTipFromAnHonestOne() async throws {
        var cluster = try TestCluster()
        defer { cluster.cleanUp() }
        // One signer's nonces: one door, in order; many small blocks.
        let target = try await cluster.leave(3, behindBy: 1...80, door: { _ in ValidatorIndex(0) }, waitEvery: 4)
        // Node 0 breaks every answer it sends node 3; the first answer anyone sends it is broken too,
        // so at least one refusal is certain whichever validator node 3 asks first.
        let suite = cluster.consortium.suite
        let brokenOnce = Atomic<Bool>(false)
        let tampered = Atomic<Int>(0)
        cluster.network.tamper.withLock {
            $0 = { frame, from, to in
                guard to == ValidatorIndex(3), NodeMessage.carriesBlocks(frame) else { return nil }
                guard from == ValidatorIndex(0) || brokenOnce.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged,
                      let broken = Self.breakingMiddleCertificate(frame, suite: suite) else { return nil }
                tampered.add(1, ordering: .relaxed)
                return broken
            }
        }
        let refusedFrom = Mutex<[ValidatorIndex]>([])
        let node = try ValidatorNode(configuration: .init(genesis: cluster.consortium.genesis, suite: suite, me: ValidatorIndex(3),
                                                          key: cluster.consortium.validatorKeys[3],
                                                          dataDirectory: cluster.dataDirectory(ValidatorIndex(3)))) { event in
            if case .ignoredFrame(let peer, let reason) = event, reason.contains("invalid certificate") {
                refusedFrom.withLock { $0.append(peer) }
            }
        }
        cluster.network.join(node)
        #expect(node.nodeStatus.height < target)
        try await cluster.waitForHeight(node, atLeast: target, seconds: 180)
        #expect(tampered.load(ordering: .relaxed) >= 1)
        // A tampered answer is either refused (its verified prefix kept) or, when it answers a
        // request another peer already answered (first requests are re-sent while links come up),
        // dropped as late: which one happens depends on timing. Either way none of its blocks may
        // reach the ledger, which the walk below checks block by block.
        #expect(refusedFrom.withLock { $0 }.count <= node.catchUp.refusals.load(ordering: .relaxed), "every certificate refusal is counted")
        #expect(node.nodeStatus.halted == nil)
        // Every block node 3 holds is the honest chain's, with a certificate that verifies.
        let honest = cluster.node(0).store
        var checked = 0
        try node.store.forEachBlock { committed in
            let same = try honest.block(at: committed.block.header.height)
            #expect(same?.block == committed.block)   // certificates may differ: any quorum certifies
            #expect(throws: Never.self) {
                try committed.certificate.verify(validators: cluster.consortium.genesis.validatorSet,
                                                 chainID: cluster.consortium.genesis.chainID, suite: suite)
            }
            checked += 1
            return true
        }
        #expect(checked >= Int(target.value))
        // It rejoined consensus: a new transaction commits everywhere, node 3 included.
        cluster.network.tamper.withLock { $0 = nil }
        let after = cluster.registration(200)
        #expect(await cluster.node(1).submit(after) == nil)
        try await cluster.waitUntilEveryoneCommitted(after.id)
        #expect(cluster.headsAgree())
    }

    /// Drives a pipeline by hand with real certified blocks: what it asks for, what it hands on.
    @Test(.timeLimit(.minutes(4)))
    func thePipelineHandsOnOnlyVerifiedBlocksInOrderAndAsksTheNextPeerAfterABadAnswer() async throws {
        var cluster = try TestCluster()
        defer { cluster.cleanUp() }
        for number in 0..<14 {
            let transaction = cluster.registration(number)
            #expect(await cluster.node(0).submit(transaction) == nil)
            try await cluster.waitUntilEveryoneCommitted(transaction.id)
        }
        var chain: [CommittedBlock] = []
        try cluster.node(0).store.forEachBlock { chain.append($0); return true }
        try #require(chain.count >= 10)
        let genesis = cluster.consortium.genesis
        let suite = cluster.consortium.suite
        let sent = Mutex<[(from: Height, limit: UInt32, peer: ValidatorIndex)]>([])
        let delivered = Mutex<[CatchUpPipeline.Run]>([])
        let refused = Mutex<[(ValidatorIndex, String)]>([])
        var settings = CatchUpPipeline.Settings()
        settings.firstRequestBlocks = 4
        settings.maxRequestBlocks = 8
        settings.runBlocks = 2
        settings.timeoutSeconds = 600
        let pipeline = CatchUpPipeline(genesis: genesis, suite: suite, label: "test.catch-up", settings: settings,
                                       send: { frame, peer in
                                           if case .blocksRequest(let from, let limit) = try? NodeMessage(wireBytes: frame, suite: suite) {
                                               sent.withLock { $0.append((from, limit, peer)) }
                                           }
                                           return true
                                       },
                                       deliver: { run in delivered.withLock { $0.append(run) } },
                                       refuse: { peer, reason in refused.withLock { $0.append((peer, reason)) } })
        func answer(_ blocks: ArraySlice<CommittedBlock>, from peer: UInt16) {
            pipeline.receive(NodeMessage.blocks(Array(blocks)).wireBytes, from: ValidatorIndex(peer))
            pipeline.queue.sync {}
        }
        func deliveredHeights() -> [UInt64] { delivered.withLock { $0.flatMap { $0.blocks.map(\.block.header.height.value) } } }
        func lastRequest() -> (from: Height, limit: UInt32, peer: ValidatorIndex)? { sent.withLock { $0.last } }

        pipeline.start(from: BlockExecutor.genesisTip(genesis: genesis, suite: suite), peers: [ValidatorIndex(1), ValidatorIndex(2)])
        pipeline.queue.sync {}
        #expect(isActive(pipeline))
        // The first request goes to every peer; the first to answer serves the rest.
        #expect(sent.withLock { $0.map(\.peer) } == [ValidatorIndex(1), ValidatorIndex(2)])
        #expect(sent.withLock { $0.allSatisfy { $0.from == Height(1) && $0.limit == 4 } })

        // Peer 2 has nothing (it is behind itself): not the end while peer 1 may still answer.
        answer([][...], from: 2)
        #expect(deliveredHeights().isEmpty)
        #expect(sent.withLock { $0.count } == 2)

        // Blocks 1–4 from peer 1, block 3's certificate broken: 1 and 2 go on, the rest is
        // asked of peer 2 from block 3.
        var broken = Array(chain[0..<4])
        var votes = broken[2].certificate.votes
        var raw = votes[0].signature.rawRepresentation
        raw[0] ^= 1
        votes[0].signature = Signature(rawRepresentation: raw)
        broken[2].certificate.votes = votes
        answer(broken[...], from: 1)
        #expect(deliveredHeights() == [1, 2])
        #expect(refused.withLock { $0.map(\.0) } == [ValidatorIndex(1)])
        #expect(refused.withLock { $0.last?.1.contains("invalid certificate") } == true)
        #expect(lastRequest()?.from == Height(3) && lastRequest()?.limit == 4 && lastRequest()?.peer == ValidatorIndex(2))

        // Peer 1's answer to the request it was sent before the refusal arrives late, and peer 1
        // was not asked this time: ignored.
        answer(chain[4..<8], from: 1)
        #expect(deliveredHeights() == [1, 2])

        // Blocks out of order from peer 2: refused at the first that does not follow; block 3 goes on.
        answer([chain[2], chain[4], chain[3]][...], from: 2)
        #expect(deliveredHeights() == [1, 2, 3])
        #expect(refused.withLock { $0.map(\.0) } == [ValidatorIndex(1), ValidatorIndex(2)])
        #expect(lastRequest()?.from == Height(4) && lastRequest()?.peer == ValidatorIndex(1))

        // An honest answer: handed on in runs, and the next range is asked for with a doubled limit.
        answer(chain[3..<7], from: 1)
        #expect(deliveredHeights() == [1, 2, 3, 4, 5, 6, 7])
        #expect(lastRequest()?.from == Height(8) && lastRequest()?.limit == 8 && lastRequest()?.peer == ValidatorIndex(1))

        // More blocks than asked for: refused, nothing handed on.
        answer(([chain[7]] + Array(repeating: chain[8], count: 8))[...], from: 1)
        #expect(deliveredHeights() == [1, 2, 3, 4, 5, 6, 7])
        #expect(refused.withLock { $0.count } == 3)
        #expect(lastRequest()?.from == Height(8) && lastRequest()?.limit == 4 && lastRequest()?.peer == ValidatorIndex(2))

        // The rest, each answer what was asked, then an empty answer: the pipeline ends once the
        // node has applied every run.
        var answers = 0
        while let request = lastRequest(), request.from.value <= UInt64(chain.count), answers < 20 {
            let start = Int(request.from.value) - 1
            answer(chain[start..<min(chain.count, start + Int(request.limit))], from: request.peer.value)
            answers += 1
        }
        #expect(deliveredHeights() == chain.map(\.block.header.height.value))
        #expect(refused.withLock { $0.count } == 3)
        #expect(lastRequest()?.from == chain.last!.block.header.height.next && lastRequest()?.peer == ValidatorIndex(2))
        answer([][...], from: 2)
        #expect(isActive(pipeline))
        for run in delivered.withLock({ $0 }) { pipeline.applied(run) }
        pipeline.queue.sync {}
        #expect(!isActive(pipeline))
    }
}
