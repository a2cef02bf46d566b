import Consensus
import Dispatch
import Foundation
import LedgerCore
import Synchronization

/// How a deliberately Byzantine validator misbehaves (tests and fault drills only: `scf node start
/// --byzantine MODE`, a hidden option). The node runs the honest replica; `ByzantineLinks` rewrites
/// what it sends, signing with the node's own consensus key, so honest validators see exactly what
/// a compromised member could send.
public enum ByzantineMode: String, Sendable, CaseIterable, CustomStringConvertible {
    /// As primary, sends one signed block to some peers and a different signed block (same
    /// transactions, timestamp one millisecond later) for the same view and height to the others.
    case equivocate
    /// Besides each real commit and checkpoint, signs a conflicting one (another block hash for the
    /// same view and height) and sends it to half of the peers, before or after the real one.
    case conflictingVotes = "conflicting-votes"
    /// Corrupts the signature of every other consensus message, claims other validators' votes as
    /// its own link's, and relays client transactions (single or batched) with a broken signature.
    case forgeSignatures = "forge-signatures"
    /// Re-sends its own old messages (earlier heights and views) again and again.
    case replay
    /// Floods every peer with garbage frames and, every couple of seconds, a frame larger than the
    /// peers' frame cap. Its real messages still go out.
    case flood

    public var description: String { rawValue }

    /// Whether honest validators can prove this behaviour (signed evidence of a double vote).
    public var isAttributable: Bool { self == .equivocate || self == .conflictingVotes }
}

/// Links that pass a node's outgoing frames through a Byzantine behaviour before the real links.
public final class ByzantineLinks: PeerLinks, @unchecked Sendable {
    public let mode: ByzantineMode
    let inner: any PeerLinks
    let suite: any CryptoSuite
    let key: any SigningKey
    let me: ValidatorIndex
    let chainID: String
    let peers: [ValidatorIndex]

    struct State {
        var counter = 0
        /// Consensus frames this node sent, oldest first (for replay).
        var history: [[UInt8]] = []
        var historyStart = 0
        var floodTicks = 0
    }
    let state = Mutex(State())
    /// The flood's timer; guarded by `floodLock`.
    var floodTimer: DispatchSourceTimer?
    let floodLock = NSLock()
    /// Frames sent that an honest validator would not have sent (for the drill's own log).
    public let tamperedFrames = Atomic<Int>(0)
    static let historyLimit = 2_000

    public init(wrapping inner: any PeerLinks, mode: ByzantineMode, genesis: Genesis, suite: any CryptoSuite, me: ValidatorIndex,
                key: any SigningKey) {
        self.inner = inner
        self.mode = mode
        self.suite = suite
        self.key = key
        self.me = me
        chainID = genesis.chainID
        peers = genesis.validators.indices.map { ValidatorIndex(UInt16($0)) }.filter { $0 != me }
    }

    public func send(_ frame: [UInt8], to peer: ValidatorIndex) {
        for out in rewrite(frame, to: peer) { inner.send(out, to: peer) }
    }

    public func broadcast(_ frame: [UInt8]) {
        // Every behaviour may treat peers differently, so a broadcast is one send per peer.
        for peer in peers { send(frame, to: peer) }
    }

    /// What actually goes to `peer` instead of `frame`.
    func rewrite(_ frame: [UInt8], to peer: ValidatorIndex) -> [[UInt8]] {
        guard mode != .flood, let message = try? NodeMessage(wireBytes: frame, suite: suite) else { return [frame] }
        let counter = state.withLock { state -> Int in
            state.counter += 1
            return state.counter
        }
        // Peers in the "other half": every second peer in index order.
        let otherHalf = (peers.firstIndex(of: peer) ?? 0) % 2 == 1
        switch (mode, message) {
        case (.equivocate, .consensus(.prePrepare(let original))) where otherHalf:
            var block = original.block
            block.header.timestamp = block.header.timestamp.adding(milliseconds: 1)
            let hash = block.hash(suite: suite)
            guard let proposal = try? ProposalSignature.sign(chainID: chainID, view: original.view, height: original.height,
                                                             blockHash: hash, key: key, suite: suite) else { return [frame] }
            return tampered([NodeMessage.consensus(.prePrepare(PrePrepare(block: block, proposal: proposal))).wireBytes])

        case (.conflictingVotes, .consensus(.commit(let commit))) where otherHalf && commit.replica == me:
            let fake = suite.hash(Array("conflicting-commit/\(commit.view)/\(commit.height)".utf8))
            guard let second = try? Commit.sign(chainID: chainID, view: commit.view, height: commit.height, blockHash: fake,
                                                replica: me, key: key, suite: suite) else { return [frame] }
            let extra = NodeMessage.consensus(.commit(second)).wireBytes
            return tampered(counter % 2 == 0 ? [extra, frame] : [frame, extra])
        case (.conflictingVotes, .consensus(.checkpoint(let checkpoint))) where otherHalf && checkpoint.replica == me:
            let fake = suite.hash(Array("conflicting-checkpoint/\(checkpoint.height)".utf8))
            guard let second = try? Checkpoint.sign(chainID: chainID, height: checkpoint.height, blockHash: fake, replica: me,
                                                    key: key, suite: suite) else { return [frame] }
            return tampered([frame, NodeMessage.consensus(.checkpoint(second)).wireBytes])

        case (.forgeSignatures, .consensus(let consensus)):
            if counter % 5 == 0, case .commit(let commit) = consensus, let other = peers.first(where: { $0 != peer }) {
                // A vote claiming to be another validator's, over this node's own authenticated link.
                var claimed = commit
                claimed.vote = CommitVote(validator: other, signature: commit.vote.signature)
                return tampered([frame, NodeMessage.consensus(.commit(claimed)).wireBytes])
            }
            guard counter % 2 == 0, let corrupted = Self.corruptSignature(consensus) else { return [frame] }
            return tampered([NodeMessage.consensus(corrupted).wireBytes])
        case (.forgeSignatures, .transaction(let transaction)):
            let broken = SignedTransaction(body: transaction.body, signature: Self.flip(transaction.signature), suite: suite)
            return tampered([NodeMessage.transaction(broken).wireBytes])
        case (.forgeSignatures, .transactions(let transactions)):
            let broken = transactions.map { SignedTransaction(body: $0.body, signature: Self.flip($0.signature), suite: suite) }
            return tampered([NodeMessage.transactions(broken).wireBytes])

        case (.replay, .consensus):
            let old = state.withLock { state -> [[UInt8]] in
                state.history.append(frame)
                if state.history.count > Self.historyLimit { state.history.removeFirst(Self.historyLimit / 2) }
                // Every third message, re-send two old ones: one from far back, one recent.
                guard counter % 3 == 0, state.history.count > 8 else { return [] }
                let far = state.history[(counter / 3) % (state.history.count / 2)]
                let near = state.history[state.history.count - 1 - (counter % 8)]
                return [far, near]
            }
            if !old.isEmpty { tamperedFrames.add(old.count, ordering: .relaxed) }
            return [frame] + old
        default:
            return [frame]
        }
    }

    func tampered(_ frames: [[UInt8]]) -> [[UInt8]] {
        tamperedFrames.add(1, ordering: .relaxed)
        return frames
    }

    static func flip(_ signature: Signature) -> Signature {
        var raw = signature.rawRepresentation
        if !raw.isEmpty { raw[raw.count / 2] ^= 0x5A }
        return Signature(rawRepresentation: raw)
    }

    static func corruptSignature(_ message: ConsensusMessage) -> ConsensusMessage? {
        switch message {
        case .prePrepare(var m): m.proposal.signature = flip(m.proposal.signature); return .prePrepare(m)
        case .prepare(var m): m.signature = flip(m.signature); return .prepare(m)
        case .commit(var m): m.vote.signature = flip(m.vote.signature); return .commit(m)
        case .checkpoint(var m): m.signature = flip(m.signature); return .checkpoint(m)
        case .viewChange(var m): m.signature = flip(m.signature); return .viewChange(m)
        case .newView(var m): m.signature = flip(m.signature); return .newView(m)
        case .request: return nil
        }
    }

    // MARK: Flood

    /// Starts the flood (mode `.flood` only): every `interval`, `garbagePerTick` garbage frames of up
    /// to 4 KiB to every peer, and every `oversizedEvery` ticks one frame of `oversizedLength` bytes
    /// to the next peer in turn, the first one after ten ticks (peers cap frames below that, so they
    /// close the connection).
    public func startFlood(garbagePerTick: Int = 25, interval: DispatchTimeInterval = .milliseconds(50),
                           oversizedLength: Int, oversizedEvery: Int = 40) {
        guard mode == .flood else { return }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "scf.byzantine.flood"))
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [self] in
            let tick = state.withLock { state -> Int in
                state.floodTicks += 1
                return state.floodTicks
            }
            var generator = SystemRandomNumberGenerator()
            for peer in peers {
                for number in 0..<garbagePerTick {
                    var bytes = (0..<Int.random(in: 1...4_096, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                    // Half look like a consensus message of the current version, so decoding goes deeper.
                    if number % 2 == 0, bytes.count > 2 { bytes[0] = 1; bytes[1] = UInt8(1 + number % 4) }
                    inner.send(bytes, to: peer)
                }
                tamperedFrames.add(garbagePerTick, ordering: .relaxed)
            }
            if tick == 10 || tick % oversizedEvery == 0 {
                let peer = peers[(tick / oversizedEvery) % peers.count]
                inner.send([UInt8](repeating: 0xAB, count: oversizedLength), to: peer)
                tamperedFrames.add(1, ordering: .relaxed)
            }
        }
        floodLock.withLock { floodTimer = timer }
        timer.resume()
    }

    public func stopFlood() {
        floodLock.withLock {
            floodTimer?.cancel()
            floodTimer = nil
        }
    }
}
