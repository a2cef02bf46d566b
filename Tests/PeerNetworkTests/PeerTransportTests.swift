import LedgerCore
import NIOCore
import NIOPosix
import NIOSSL
import Testing
@testable import PeerNetwork

/// Everything that opens sockets runs one test at a time, so timing-based tests (idle
/// timeouts, throughput figures) do not compete with each other for the two cores.
@Suite(.serialized) struct LoopbackTests {}

/// Real transports on loopback (127.0.0.1, OS-picked ports) with TLS and the handshake.
extension LoopbackTests {
@Suite(.timeLimit(.minutes(1))) struct PeerTransportTests {
    static func payload(from: Int, to: Int, sequence: Int = 0, size: Int = 16) -> [UInt8] {
        [UInt8(from), UInt8(to), UInt8(truncatingIfNeeded: sequence >> 8), UInt8(truncatingIfNeeded: sequence)]
            + Array(repeating: UInt8(truncatingIfNeeded: from &* 16 &+ to), count: max(size - 4, 0))
    }

    /// Sends one frame between every ordered pair and waits until each arrived, tagged with the sender.
    static func exchangeEveryPair(_ cluster: Cluster, among indices: [Int], sequence: Int) async throws {
        for from in indices {
            for to in indices where to != from {
                #expect(cluster.transport(from).trySend(payload(from: from, to: to, sequence: sequence), to: ValidatorIndex(UInt16(to))) == .enqueued)
            }
        }
        for to in indices {
            for from in indices where from != to {
                let expected = payload(from: from, to: to, sequence: sequence)
                try await waitUntil("frame \(sequence) from \(from) at \(to)") {
                    cluster.recorders[to].frames(from: ValidatorIndex(UInt16(from))).contains(expected)
                }
            }
        }
    }

    @Test func fourValidatorsConnectAndExchangeFramesBothWays() async throws {
        let cluster = try await Cluster.start(count: 4)
        do {
            try await cluster.waitFullyConnected()
            try await Self.exchangeEveryPair(cluster, among: [0, 1, 2, 3], sequence: 1)
            // Exactly one connection per pair: three connected events per node, inbound from
            // higher indices and outbound to lower ones.
            for index in 0..<4 {
                let connects = cluster.recorders[index].events.compactMap { event -> (ValidatorIndex, ConnectionDirection)? in
                    if case .connected(let peer, let direction, _) = event { (peer, direction) } else { nil }
                }
                #expect(connects.count == 3, "\(cluster.recorders[index].eventLog)")
                for (peer, direction) in connects {
                    #expect(direction == (Int(peer.value) < index ? .outbound : .inbound))
                }
                #expect(cluster.recorders[index].refusals.isEmpty, "\(cluster.recorders[index].eventLog)")
            }
            // Broadcast reaches every other validator.
            cluster.transport(2).broadcast([9, 9, 9])
            for index in [0, 1, 3] {
                try await waitUntil("broadcast at \(index)") { cluster.recorders[index].frames(from: 2).contains([9, 9, 9]) }
            }
            // Frames from one peer arrive in order.
            for sequence in 0..<500 { cluster.transport(3).send(Self.payload(from: 3, to: 0, sequence: sequence + 100), to: 0) }
            try await waitUntil("500 ordered frames") { cluster.recorders[0].frames(from: 3).count >= 501 }
            let sequences = cluster.recorders[0].frames(from: 3).dropFirst().map { Int($0[2]) << 8 | Int($0[3]) }
            #expect(sequences == Array(100..<600))
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    @Test func restartedTransportIsReconnected() async throws {
        let cluster = try await Cluster.start(count: 4)
        do {
            try await cluster.waitFullyConnected()
            for stopped in [2, 0] {
                await cluster.stop(stopped)
                let others = [0, 1, 2, 3].filter { $0 != stopped }
                try await waitUntil("the others to notice \(stopped) left") {
                    others.allSatisfy { !cluster.transport($0).connectedPeers.contains(ValidatorIndex(UInt16(stopped))) }
                }
                // Same listen port, so the validators that dial it find it again.
                try await cluster.start(stopped)
                try await cluster.waitFullyConnected()
                try await Self.exchangeEveryPair(cluster, among: [0, 1, 2, 3], sequence: 10 + stopped)
            }
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    @Test func clientsWithoutAConsortiumCertificateAreRefused() async throws {
        let cluster = try await Cluster.start(count: 2)
        do {
            try await cluster.waitFullyConnected()
            let port = cluster.ports[0]
            let recorder = cluster.recorders[0]

            // A self-signed certificate, named like a real validator.
            let selfSigned = try await RogueClient.connectTLS(port: port, credentials: try RogueClient.selfSignedCredentials(name: "node-3"))
            try? await RogueClient.write([0, 0, 0, 3, 1, 2, 3], to: selfSigned)
            try await waitForClose(selfSigned)

            // A certificate from another CA, for a real validator name.
            let otherCA = try ConsortiumCA.generate(name: "Impostor CA")
            let foreign = try await RogueClient.connectTLS(port: port, credentials: try otherCA.issueNodeCredentials(validatorName: "node-2"))
            try? await RogueClient.write([0, 0, 0, 3, 1, 2, 3], to: foreign)
            try await waitForClose(foreign)

            // No certificate at all.
            let anonymous = try await RogueClient.connectTLS(port: port, credentials: nil)
            try? await RogueClient.write([0, 0, 0, 3, 1, 2, 3], to: anonymous)
            try await waitForClose(anonymous)

            try await waitUntil("three TLS refusals") { recorder.refusals.count { $0.code == .tlsFailure } >= 3 }
            #expect(recorder.frames(from: 1).isEmpty)
            #expect(recorder.frameCount == 0)
            #expect(cluster.transport(0).connectedPeers == [1])
            try await Self.exchangeEveryPair(cluster, among: [0, 1], sequence: 1)
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    @Test func garbageAndOversizedFramesCloseOnlyThatConnection() async throws {
        let cluster = try await Cluster.start(count: 3) { $0.maxFrameLength = 1 << 20; $0.outboundQueueByteLimit = 4 << 20 }
        do {
            try await cluster.waitFullyConnected()
            let port = cluster.ports[0]
            let recorder = cluster.recorders[0]

            // Plain TCP garbage: not TLS at all.
            let tcp = try await RogueClient.connectTCP(port: port)
            try? await RogueClient.write(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8) + Array(repeating: 0xEE, count: 512), to: tcp)
            try await waitForClose(tcp)

            // Plain TCP with an oversized length prefix.
            let tcpHuge = try await RogueClient.connectTCP(port: port)
            try? await RogueClient.write([0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3], to: tcpHuge)
            try await waitForClose(tcpHuge)
            try await waitUntil("two TLS refusals") { recorder.refusals.count { $0.code == .tlsFailure } >= 2 }

            // With a genuine consortium certificate (for a validator name, but without its
            // consensus key): an oversized length prefix, then garbage in a well-formed frame.
            let insider = try Fixtures.ca.issueNodeCredentials(validatorName: "node-3")
            let huge = try await RogueClient.connectTLS(port: port, credentials: insider)
            try? await RogueClient.write([0xFF, 0xFF, 0xFF, 0xF0], to: huge)
            try await waitForClose(huge)
            try await waitUntil("an oversized frame rejection") {
                recorder.rejectedFrames.contains { $0.code == .frameTooLarge && $0.length == 0xFFFF_FFF0 }
            }

            // Before the handshake, frames are capped at 4 KiB whatever maxFrameLength says.
            let early = try await RogueClient.connectTLS(port: port, credentials: insider)
            try? await RogueClient.write([0, 0, 0x13, 0x88] + Array(repeating: 1, count: 5000), to: early)
            try await waitForClose(early)
            try await waitUntil("a handshake-sized frame rejection") {
                recorder.rejectedFrames.contains { $0.length == 5000 && $0.limit == HandshakeProtocol.maxHandshakeFrameLength }
            }

            let garbage = try await RogueClient.connectTLS(port: port, credentials: insider)
            try? await RogueClient.write([0, 0, 0, 6, 0xDE, 0xAD, 0xBE, 0xEF, 0, 1], to: garbage)
            try await waitForClose(garbage)
            try await waitUntil("a malformed handshake refusal") { recorder.refusals.contains { $0.code == .malformedMessage } }

            #expect(recorder.frameCount == 0)
            #expect(cluster.transport(0).connectedPeers == [1, 2])
            try await Self.exchangeEveryPair(cluster, among: [0, 1, 2], sequence: 2)
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    @Test func queueToAPeerThatStopsReadingStaysBounded() async throws {
        let frameLimit = 64, byteLimit = 1 << 20
        let cluster = try await Cluster.start(count: 2) {
            $0.maxFrameLength = 256 << 10
            $0.outboundQueueFrameLimit = frameLimit
            $0.outboundQueueByteLimit = byteLimit
            $0.writeBufferHighWaterMark = 64 << 10
        }
        do {
            try await cluster.waitFullyConnected()
            cluster.transport(0).pauseReceiving(from: 1)
            try await Task.sleep(for: .milliseconds(20))
            let sender = cluster.transport(1)
            var sent = 0
            var maxFrames = 0, maxBytes = 0
            // Keep sending 16 KiB frames until the queue has had to drop (socket buffers fill first).
            let deadline = ContinuousClock.now + .seconds(20)
            while (sender.queueStatus(for: 0)?.droppedFrames ?? 0) < 100, ContinuousClock.now < deadline {
                for _ in 0..<64 {
                    sender.send(Self.payload(from: 1, to: 0, sequence: sent, size: 16 << 10), to: 0)
                    sent += 1
                }
                let status = try #require(sender.queueStatus(for: 0))
                maxFrames = max(maxFrames, status.frames)
                maxBytes = max(maxBytes, status.bytes)
                try await Task.sleep(for: .milliseconds(1))
            }
            let status = try #require(sender.queueStatus(for: 0))
            #expect(status.droppedFrames >= 100, "sent \(sent) frames without overflowing")
            #expect(maxFrames <= frameLimit)
            #expect(maxBytes <= byteLimit)
            #expect(cluster.recorders[1].overflows >= 1)
            #expect(status.connected)

            // Reading again delivers what was kept, the newest frame included, in order.
            let last = Self.payload(from: 1, to: 0, sequence: sent - 1, size: 16 << 10)
            cluster.transport(0).resumeReceiving(from: 1)
            try await waitUntil("the newest frame") { cluster.recorders[0].frames(from: 1).last == last }
            let received = cluster.recorders[0].frames(from: 1).map { Int($0[2]) << 8 | Int($0[3]) }
            #expect(received.count < sent)
            #expect(received == received.sorted())
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    @Test func peerThatNeverReadsIsBoundedThenDroppedWhenSilent() async throws {
        let frameLimit = 64, byteLimit = 1 << 20
        let cluster = try await Cluster.start(count: 1) {
            $0.maxFrameLength = 256 << 10
            $0.outboundQueueFrameLimit = frameLimit
            $0.outboundQueueByteLimit = byteLimit
            $0.writeBufferHighWaterMark = 64 << 10
            $0.keepaliveInterval = .milliseconds(100)
            $0.idleTimeout = .milliseconds(1500)
        }
        do {
            let silent = try await SilentPeer.connect(port: cluster.ports[0], as: 1, to: 0)
            let transport = cluster.transport(0)
            try await waitUntil("v1 to be connected") { transport.connectedPeers == [1] }
            var sent = 0, maxFrames = 0, maxBytes = 0
            let deadline = ContinuousClock.now + .seconds(20)
            while (transport.queueStatus(for: 1)?.droppedFrames ?? 0) < 100, ContinuousClock.now < deadline {
                for _ in 0..<64 {
                    transport.send(Self.payload(from: 0, to: 1, sequence: sent, size: 16 << 10), to: 1)
                    sent += 1
                }
                let status = try #require(transport.queueStatus(for: 1))
                maxFrames = max(maxFrames, status.frames)
                maxBytes = max(maxBytes, status.bytes)
                try await Task.sleep(for: .milliseconds(1))
            }
            #expect((transport.queueStatus(for: 1)?.droppedFrames ?? 0) >= 100, "sent \(sent) frames without overflowing")
            #expect(maxFrames <= frameLimit && maxBytes <= byteLimit)
            #expect(cluster.recorders[0].overflows >= 1)

            // It sends no keepalives either: the idle timeout closes it.
            try await waitUntil("the silent peer to be dropped", seconds: 10) { transport.connectedPeers.isEmpty }
            let reasons = cluster.recorders[0].events.compactMap { if case .disconnected(1, let reason) = $0 { reason } else { nil } }
            #expect(reasons.count == 1 && reasons[0].contains("nothing received"), "\(reasons)")
            // The silent peer reads nothing, so it only notices once it reads again.
            try await silent.setOption(.autoRead, value: true).get()
            silent.read()
            try await waitForClose(silent)
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    @Test func idleConnectionsStayUpOnKeepalives() async throws {
        let cluster = try await Cluster.start(count: 2) {
            $0.keepaliveInterval = .milliseconds(100)
            $0.idleTimeout = .milliseconds(800)
        }
        do {
            try await cluster.waitFullyConnected()
            try await Task.sleep(for: .milliseconds(2000))
            for recorder in cluster.recorders {
                let connects = recorder.events.count { if case .connected = $0 { true } else { false } }
                let disconnects = recorder.events.count { if case .disconnected = $0 { true } else { false } }
                #expect(connects == 1 && disconnects == 0, "\(recorder.eventLog)")
                #expect(recorder.frameCount == 0)  // keepalives are not frames
            }
            #expect(cluster.transport(1).trySend([], to: 0) == .emptyFrame)
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    @Test func dialerRefusesAServerWithoutAConsortiumCertificate() async throws {
        // A TLS server with a certificate for "node-0" from another CA, where v1 expects v0.
        let impostor = try ConsortiumCA.generate(name: "Impostor CA").issueNodeCredentials(validatorName: "node-0")
        let context = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(impostor.certificatePEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(impostor.privateKeyPEM.utf8), format: .pem))))
        let server = try await ServerBootstrap(group: Fixtures.group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let recorder = Recorder()
        let transport = try PeerTransport(
            configuration: Fixtures.configuration(1, peers: [0: PeerAddress(host: "127.0.0.1", port: server.localAddress!.port!)]),
            consensusKey: Fixtures.consortium.validatorKeys[1], credentials: Fixtures.credentials[1],
            onFrame: recorder.onFrame, onEvent: recorder.onEvent)
        do {
            try await transport.start()
            // Refused, then redialed with backoff, and refused again.
            try await waitUntil("two refusals of the impostor") {
                recorder.events.count { if case .handshakeRefused(0, _, let reason) = $0 { reason.code == .tlsFailure } else { false } } >= 2
            }
            #expect(recorder.events.contains { if case .dialFailed(0, _, _, _) = $0 { true } else { false } })
            #expect(transport.connectedPeers.isEmpty)
        } catch {
            await transport.shutdown()
            try? await server.close()
            throw error
        }
        await transport.shutdown()
        try? await server.close()
    }

    @Test func aNewerConnectionFromTheSameValidatorReplacesTheOld() async throws {
        // v1's old connection is stuck (it neither reads nor writes); v1 restarts and dials again.
        let cluster = Cluster(count: 2)
        try await cluster.start(0)
        let stuck = try await SilentPeer.connect(port: cluster.ports[0], as: 1, to: 0)
        do {
            try await waitUntil("the stuck v1 to be connected") { cluster.transport(0).connectedPeers == [1] }
            try await cluster.start(1)
            // Frames sent before the switch would go into the stuck connection and be lost.
            try await waitUntil("v0 to take the new connection") {
                cluster.transport(1).connectedPeers == [0]
                    && cluster.recorders[0].events.count { if case .connected(1, _, _) = $0 { true } else { false } } == 2
            }
            try await Self.exchangeEveryPair(cluster, among: [0, 1], sequence: 1)
            let log = cluster.recorders[0].events.compactMap { event -> String? in
                switch event {
                case .connected(1, _, _): "connected"
                case .disconnected(1, let reason): reason.contains("replaced") ? "replaced" : "disconnected"
                default: nil
                }
            }
            #expect(log == ["connected", "replaced", "connected"], "\(cluster.recorders[0].eventLog)")
            #expect(cluster.transport(0).connectedPeers == [1])
        } catch {
            stuck.close(promise: nil)
            await cluster.shutdown()
            throw error
        }
        stuck.close(promise: nil)
        await cluster.shutdown()
    }

    @Test func silentClientsAreClosedAtTheHandshakeTimeout() async throws {
        let cluster = try await Cluster.start(count: 1) { $0.handshakeTimeout = .milliseconds(300) }
        do {
            // One that never starts TLS, one that finishes TLS and then says nothing.
            let tcp = try await RogueClient.connectTCP(port: cluster.ports[0])
            let tls = try await RogueClient.connectTLS(port: cluster.ports[0], credentials: Fixtures.ca.issueNodeCredentials(validatorName: "node-2"))
            try await waitForClose(tcp, seconds: 5)
            try await waitForClose(tls, seconds: 5)
            try await waitUntil("two timeouts") { cluster.recorders[0].refusals.count { $0.code == .timeout } == 2 }
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    @Test func misconfigurationIsReportedAtInit() throws {
        let consortium = Fixtures.consortium
        // The consensus key of another validator.
        #expect(throws: PeerNetworkError.self) {
            try PeerTransport(configuration: Fixtures.configuration(1), consensusKey: consortium.validatorKeys[2],
                              credentials: Fixtures.credentials[1], onFrame: { _ in })
        }
        // A certificate for another validator's name.
        #expect(throws: PeerNetworkError.self) {
            try PeerTransport(configuration: Fixtures.configuration(1), consensusKey: consortium.validatorKeys[1],
                              credentials: Fixtures.credentials[2], onFrame: { _ in })
        }
        // Not a validator.
        #expect(throws: PeerNetworkError.self) {
            try PeerTransport(configuration: Fixtures.configuration(7), consensusKey: consortium.validatorKeys[1],
                              credentials: Fixtures.credentials[1], onFrame: { _ in })
        }
    }
}
}
