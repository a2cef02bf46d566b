import LedgerCore
import Synchronization
import Testing
@testable import PeerNetwork

/// Rough figures for the transport on loopback (TLS included). They print, and assert only a
/// floor far below what the machine does, so a busy machine does not fail them.
extension LoopbackTests {
@Suite(.timeLimit(.minutes(1))) struct ThroughputTests {
    final class Box: Sendable {
        let transport = Mutex<PeerTransport?>(nil)
        let count = Atomic<Int>(0)
        let done = Atomic<Bool>(false)
    }

    /// v0 echoes every frame back; v1 keeps `window` pings in flight for `seconds`.
    static func pingPong(window: Int, seconds: Double) async throws -> Double {
        let echo = Box(), pinger = Box()
        let configuration0 = Fixtures.configuration(0)
        let transport0 = try PeerTransport(configuration: configuration0, consensusKey: Fixtures.consortium.validatorKeys[0],
                                           credentials: Fixtures.credentials[0], eventLoopGroup: Fixtures.group,
                                           onFrame: { frame in _ = echo.transport.withLock { $0?.send(frame.bytes, to: frame.peer) } })
        echo.transport.withLock { $0 = transport0 }
        try await transport0.start()
        let port = transport0.listeningAddress!.port
        let transport1 = try PeerTransport(
            configuration: Fixtures.configuration(1, peers: [0: PeerAddress(host: "127.0.0.1", port: port)]),
            consensusKey: Fixtures.consortium.validatorKeys[1], credentials: Fixtures.credentials[1], eventLoopGroup: Fixtures.group,
            onFrame: { frame in
                pinger.count.add(1, ordering: .relaxed)
                if !pinger.done.load(ordering: .relaxed) { _ = pinger.transport.withLock { $0?.send(frame.bytes, to: 0) } }
            })
        pinger.transport.withLock { $0 = transport1 }
        try await transport1.start()
        try await waitUntil("connection") { transport1.connectedPeers == [0] && transport0.connectedPeers == [1] }

        let ping = [UInt8](repeating: 7, count: 64)
        let start = ContinuousClock.now
        for _ in 0..<window { transport1.send(ping, to: 0) }
        try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        pinger.done.store(true, ordering: .relaxed)
        let elapsed = ContinuousClock.now - start
        let roundTrips = pinger.count.load(ordering: .relaxed)
        await transport1.shutdown()
        await transport0.shutdown()
        let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(roundTrips) / secs
    }

    @Test func roundTripsPerSecond() async throws {
        let sequential = try await Self.pingPong(window: 1, seconds: 0.5)
        let pipelined = try await Self.pingPong(window: 64, seconds: 0.5)
        print("PeerNetwork loopback+TLS: \(Int(sequential)) sequential round trips/s, \(Int(pipelined)) round trips/s with 64 in flight")
        #expect(sequential > 100)
        #expect(pipelined > 100)
    }

    @Test func oneWayThroughput() async throws {
        let received = Box()
        let frames = 50_000, size = 256
        let tweak: (inout PeerTransportConfiguration) -> Void = {
            $0.outboundQueueFrameLimit = frames
            $0.outboundQueueByteLimit = 256 << 20
        }
        var configuration0 = Fixtures.configuration(0)
        tweak(&configuration0)
        let transport0 = try PeerTransport(configuration: configuration0, consensusKey: Fixtures.consortium.validatorKeys[0],
                                           credentials: Fixtures.credentials[0], eventLoopGroup: Fixtures.group,
                                           onFrame: { _ in received.count.add(1, ordering: .relaxed) })
        try await transport0.start()
        var configuration1 = Fixtures.configuration(1, peers: [0: PeerAddress(host: "127.0.0.1", port: transport0.listeningAddress!.port)])
        tweak(&configuration1)
        let transport1 = try PeerTransport(configuration: configuration1, consensusKey: Fixtures.consortium.validatorKeys[1],
                                           credentials: Fixtures.credentials[1], eventLoopGroup: Fixtures.group, onFrame: { _ in })
        try await transport1.start()
        try await waitUntil("connection") { transport1.connectedPeers == [0] && transport0.connectedPeers == [1] }

        let frame = [UInt8](repeating: 3, count: size)
        let start = ContinuousClock.now
        for _ in 0..<frames { transport1.send(frame, to: 0) }
        let enqueued = ContinuousClock.now - start
        try await waitUntil("all frames", seconds: 30) { received.count.load(ordering: .relaxed) == frames }
        let elapsed = ContinuousClock.now - start
        await transport1.shutdown()
        await transport0.shutdown()
        let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let enqueueSecs = Double(enqueued.components.seconds) + Double(enqueued.components.attoseconds) / 1e18
        print("PeerNetwork loopback+TLS: \(frames) frames of \(size) B in \(String(format: "%.3f", secs)) s = "
              + "\(Int(Double(frames) / secs)) frames/s, \(String(format: "%.1f", Double(frames * size) / secs / 1e6)) MB/s; "
              + "send() took \(Int(enqueueSecs * 1e9 / Double(frames))) ns per frame")
        #expect(transport1.queueStatus(for: 0)?.droppedFrames == 0)
    }
}
}
