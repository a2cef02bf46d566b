// libFuzzer target: the bytes a peer sends on a validator connection, after TLS.
// Input: [flags][cap high][cap low][chunking seed][stream…]
//   flags bit 0: crypto suite; bit 1: this node dialed validator 1 (else it accepted).
//   cap: maxFrameLength = cap * 16 bytes (so frames above the cap are reachable).
// The stream goes through the real pipeline decoder (ByteToMessageHandler(FrameDecoder) in an
// EmbeddedChannel, as PeerTransport installs it: the first 3 frames capped at 4096 bytes), in
// chunks whose sizes come from the chunking seed. Invariants:
//   - the frames and the frameTooLarge error are exactly those of a reference parser of the
//     whole stream, whatever the chunking (no frame lost, merged, reordered or invented);
//   - an oversized length prefix is refused as soon as its header arrives, never buffered;
//   - the handshake state machine fed those frames (as PeerConnectionHandler does) never sends
//     a frame above the handshake cap, establishes only the validator whose hello it checked,
//     ignores everything after a refusal, and its refusals are understood by a peer.
import FuzzSupport
import LedgerCore
import LedgerTestKit
import NIOCore
import NIOEmbedded
@testable import PeerNetwork

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfAsked(FrameSeeds.all)
    return 0
}

/// What this node is in the harness: validator 0 of the test consortium, with a fixed nonce.
enum Local {
    static let nonce = [UInt8](repeating: 0x5A, count: HandshakeProtocol.nonceLength)
    static let peerNonce = [UInt8](repeating: 0xA5, count: HandshakeProtocol.nonceLength)
    static let index = ValidatorIndex(0)
    static let peerIndex = ValidatorIndex(1)
    static let handshakeFrames = HandshakeProtocol.peerHandshakeFrameCount
    static let handshakeCap = HandshakeProtocol.maxHandshakeFrameLength

    static func configuration(_ consortium: TestConsortium) -> HandshakeStateMachine.Configuration {
        HandshakeStateMachine.Configuration(genesis: consortium.genesis, suite: consortium.suite, localIndex: index,
                                            signingKey: consortium.validatorKeys[Int(index.value)])
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrame(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    var cursor = FuzzCursor(fuzzBytes(start, count))
    let flags = cursor.byte()
    let maxFrameLength = Int(cursor.uint16()) * 16
    var chunkState = UInt64(cursor.byte()) &+ 0x9E37_79B9_7F4A_7C15
    let stream = cursor.rest()

    let expected = ReferenceParser.parse(stream, maxFrameLength: maxFrameLength)
    let decoded = decodeInChunks(stream, maxFrameLength: maxFrameLength, chunkState: &chunkState)
    invariant(decoded.frames == expected.frames,
              "decoder produced \(decoded.frames.count) frames \(decoded.frames.map(\.count)), the stream holds \(expected.frames.count) \(expected.frames.map(\.count))")
    invariant(decoded.error == expected.error,
              "decoder error \(String(describing: decoded.error)), expected \(String(describing: expected.error))")

    runHandshake(expected.frames, consortium: FuzzFixtures.consortium(flags),
                 role: flags & 2 == 0 ? .acceptor : .dialer(expecting: Local.peerIndex))
    return 0
}

/// The framing rule, written independently of FrameDecoder: u32 big-endian length, payload;
/// the first `handshakeFrames` frames capped at min(4096, cap), the rest at the cap.
enum ReferenceParser {
    struct Result: Equatable {
        var frames: [[UInt8]] = []
        /// (announced length, limit) of the refused header.
        var error: FrameErrorSummary?
    }

    static func parse(_ stream: [UInt8], maxFrameLength: Int) -> Result {
        var result = Result()
        var offset = 0
        while stream.count - offset >= 4 {
            let length = stream[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            let limit = result.frames.count < Local.handshakeFrames ? min(Local.handshakeCap, maxFrameLength) : maxFrameLength
            guard length <= limit else {
                result.error = FrameErrorSummary(length: length, limit: limit)
                return result
            }
            guard stream.count - offset - 4 >= length else { return result }
            result.frames.append(Array(stream[offset + 4..<offset + 4 + length]))
            offset += 4 + length
        }
        return result
    }
}

struct FrameErrorSummary: Equatable {
    var length: Int
    var limit: Int
}

func decodeInChunks(_ stream: [UInt8], maxFrameLength: Int, chunkState: inout UInt64) -> ReferenceParser.Result {
    let decoder = FrameDecoder(maxFrameLength: maxFrameLength, leadingFrameCount: Local.handshakeFrames,
                               leadingFrameLimit: Local.handshakeCap)
    let channel = EmbeddedChannel()
    // As PeerTransport: the buffer may hold a whole frame plus slack.
    try! channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(decoder, maximumBufferSize: maxFrameLength + (1 << 20)))
    var result = ReferenceParser.Result()
    func drain() {
        while let frame = try! channel.readInbound(as: ByteBuffer.self) { result.frames.append(Array(frame.readableBytesView)) }
    }
    var offset = 0
    while offset < stream.count, result.error == nil {
        // splitmix64: chunk sizes 1…64, with the occasional whole remainder.
        chunkState &+= 0x9E37_79B9_7F4A_7C15
        var z = chunkState
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        let size = z % 8 == 0 ? stream.count - offset : Int(z % 64) + 1
        let end = min(stream.count, offset + size)
        var buffer = channel.allocator.buffer(capacity: end - offset)
        buffer.writeBytes(stream[offset..<end])
        offset = end
        do {
            try channel.writeInbound(buffer)
        } catch let error as FrameError {
            invariant(error.code == .frameTooLarge, "unexpected frame error \(error)")
            result.error = FrameErrorSummary(length: error.length, limit: error.limit)
            // The header alone must trigger the refusal: the oversized payload is never awaited.
        } catch {
            invariant(false, "the frame decoder threw \(error)")
        }
        drain()
    }
    if result.error == nil {
        // End of stream: a partial frame is dropped, never delivered.
        do {
            _ = try channel.finish()
        } catch let error as FrameError {
            result.error = FrameErrorSummary(length: error.length, limit: error.limit)
        } catch {
            invariant(false, "closing the frame decoder threw \(error)")
        }
        drain()
    } else {
        _ = try? channel.finish()
    }
    return result
}

func runHandshake(_ frames: [[UInt8]], consortium: TestConsortium, role: HandshakeStateMachine.Role) {
    var machine = HandshakeStateMachine(configuration: Local.configuration(consortium), role: role, localNonce: Local.nonce)
    let peerName = consortium.genesis.validators[Int(Local.peerIndex.value)].name
    check(machine.tlsEstablished(peerCommonName: peerName), consortium: consortium, after: nil)
    var index = 0
    for frame in frames {
        // PeerConnectionHandler hands the machine every frame until it finishes.
        guard !machine.isFinished else { break }
        let action = machine.receive(frame)
        check(action, consortium: consortium, after: frame)
        if case .established(let peer) = action {
            invariant(peer == Local.peerIndex, "established \(peer), but only validator 1 can prove its identity here")
            invariant(index >= 2, "established after \(index + 1) frames, before hello, proof and accept")
            invariant(machine.establishedPeer == peer, "the machine does not remember its established peer")
        }
        index += 1
    }
    if machine.isFinished {
        // Once finished, the machine ignores or refuses the rest; it never establishes again.
        let after = machine.receive(frames.last ?? [])
        if case .established = after { invariant(false, "established twice") }
        if case .send = after { invariant(false, "sent a handshake message after finishing") }
    }
}

func check(_ action: HandshakeStateMachine.Action, consortium: TestConsortium, after frame: [UInt8]?) {
    switch action {
    case .none, .established:
        break
    case .send(let message):
        invariant(message.count <= Local.handshakeCap, "sends a \(message.count)-byte handshake frame; the peer accepts \(Local.handshakeCap)")
    case .refuse(let refusal, let notifyPeer):
        guard let notifyPeer else { return }
        invariant(notifyPeer.count <= Local.handshakeCap, "refusal frame of \(notifyPeer.count) bytes is above the handshake cap")
        // The peer must understand the refusal: a fresh machine reports the same reason code.
        var peer = HandshakeStateMachine(configuration: Local.configuration(consortium), role: .acceptor, localNonce: Local.peerNonce)
        _ = peer.tlsEstablished(peerCommonName: nil)
        guard case .refuse(let received, let reply) = peer.receive(notifyPeer) else {
            invariant(false, "a refusal frame is not read as a refusal: \(hexPreview(notifyPeer))")
            return
        }
        invariant(received.code == .refusedByPeer && reply == nil, "a refusal was answered with \(received)")
        invariant(received.message.contains(refusal.code.rawValue), "the refusal's reason code \(refusal.code) was lost: \(received.message)")
    }
}

enum FrameSeeds {
    static func all() throws -> [Seed] {
        var seeds: [Seed] = []
        let cap = UInt16.max  // the largest cap the input can name: 1 MiB
        for (selector, consortium) in [(UInt8(0), FuzzFixtures.ed25519), (UInt8(1), FuzzFixtures.sm2)] {
            let tag = consortium.suite.id.rawValue
            let configuration = Local.configuration(consortium)
            let hello = HandshakeProtocol.Hello(version: HandshakeProtocol.version, suiteCode: consortium.suite.id.code,
                                                chainID: consortium.genesis.chainID, genesisHash: configuration.genesisHash,
                                                index: Local.peerIndex, nonce: Local.peerNonce)
            let proofMessage = HandshakeProtocol.proofMessage(genesisHash: configuration.genesisHash, signer: Local.peerIndex,
                                                              verifier: Local.index, signerNonce: Local.peerNonce,
                                                              verifierNonce: Local.nonce)
            let proof = HandshakeProtocol.encodeProof(try consortium.validatorKeys[Int(Local.peerIndex.value)].signature(for: proofMessage))
            let sample = try SampleChain(consortium, blocks: 1, transactionsPerBlock: 2)
            let consensus = try sample.consensusMessages()[1].wireBytes
            func stream(_ frames: [[UInt8]]) -> [UInt8] {
                var buffer = ByteBuffer()
                for frame in frames { Framing.writeFrame(frame, into: &buffer) }
                return Array(buffer.readableBytesView)
            }
            for (role, roleFlag) in [("acceptor", UInt8(0)), ("dialer", UInt8(2))] {
                func seed(_ name: String, _ bytes: [UInt8], cap: UInt16 = cap) {
                    seeds.append(Seed("\(name)-\(role)-\(tag)", [selector | roleFlag, UInt8(cap >> 8), UInt8(cap & 0xFF), 7] + bytes))
                }
                seed("handshake-established", stream([hello.encoded, proof, HandshakeProtocol.acceptMessage, consensus, []]))
                seed("handshake-refused", stream([HandshakeProtocol.encodeRefusal(HandshakeRefusal(.chainMismatch, "another chain"))]))
                seed("hello-only-partial", stream([hello.encoded]) + [0, 0, 1])
                if selector == 0 {
                    seed("oversized-handshake-frame", [0, 0, 0x10, 0x01] + [UInt8](repeating: 1, count: 8))
                    seed("oversized-consensus-frame", stream([hello.encoded, proof, HandshakeProtocol.acceptMessage]) + [0, 0, 0x40, 0],
                         cap: 64)
                }
            }
        }
        return seeds
    }
}
