import LedgerCore
import NIOCore
import NIOEmbedded
import Synchronization
import Testing
@testable import PeerNetwork

/// The drop-oldest policy of a peer's outbound queue, without a connection.
@Suite struct OutboundQueueTests {
    @Test func frameLimitDropsTheOldest() {
        let link = PeerLink(peer: 1, frameLimit: 3, byteLimit: 1 << 20)
        #expect(link.enqueue([1]).0 == .enqueued)
        #expect(link.enqueue([2]).0 == .enqueued)
        #expect(link.enqueue([3]).0 == .enqueued)
        let (result, started) = link.enqueue([4])
        #expect(result == .enqueuedDroppingOldest(1))
        #expect(started)
        #expect(link.enqueue([5]).overflowStarted == false)  // one report per episode
        let status = link.status
        #expect(status.frames == 3 && status.bytes == 3 && status.droppedFrames == 2 && !status.connected)
    }

    @Test func byteLimitDropsAsManyAsNeeded() {
        let link = PeerLink(peer: 2, frameLimit: 100, byteLimit: 10)
        for _ in 0..<5 { _ = link.enqueue([0, 0]) }
        #expect(link.status.bytes == 10)
        #expect(link.enqueue(Array(repeating: 9, count: 7)).0 == .enqueuedDroppingOldest(4))
        #expect(link.status.frames == 2 && link.status.bytes == 9)
    }

    /// After a long outage the peer catches up from blocks: frames older than the age limit are
    /// dropped when its connection comes up, younger ones are kept for it.
    @Test func framesOlderThanTheAgeLimitAreDroppedWhenTheConnectionComesUp() async throws {
        let clock = Atomic<UInt64>(1_000_000_000)
        let link = PeerLink(peer: 1, frameLimit: 100, byteLimit: 1 << 20, maxAge: .seconds(2), now: { clock.load(ordering: .relaxed) })
        _ = link.enqueue([1])
        _ = link.enqueue([2, 2])
        clock.add(1_500_000_000, ordering: .relaxed)
        _ = link.enqueue([3, 3, 3])
        clock.add(1_000_000_000, ordering: .relaxed)   // the first two are now 2.5 s old, the third 1 s
        let channel = EmbeddedChannel()
        _ = link.attach(channel)
        let status = link.status
        #expect(status.droppedFrames == 2)
        #expect(status.connected)
        try channel.embeddedEventLoop.run()
        // What was kept went out: the third frame only, behind its 4-byte length header.
        var written: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { written += Array(buffer.readableBytesView) }
        #expect(written.suffix(3) == [3, 3, 3] && written.count == Framing.headerLength + 3)
        #expect(link.status.frames == 0 && link.status.bytes == 0)
        _ = try? channel.finish()
    }

    @Test func sendValidatesBeforeQueueing() throws {
        let transport = try PeerTransport(configuration: Fixtures.configuration(1), consensusKey: Fixtures.consortium.validatorKeys[1],
                                          credentials: Fixtures.credentials[1], onFrame: { _ in })
        #expect(transport.trySend([1], to: 0) == .notRunning)
        #expect(transport.trySend([1], to: 1) == .unknownPeer)
        #expect(transport.trySend([1], to: 9) == .unknownPeer)
        #expect(transport.trySend([], to: 0) == .emptyFrame)
        #expect(transport.trySend(Array(repeating: 0, count: Framing.defaultMaxFrameLength + 1), to: 0) == .frameTooLarge)
        #expect(transport.queueStatus(for: 0)?.frames == 0)
    }
}
