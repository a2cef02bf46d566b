import Crypto
import Foundation
import LedgerCore
import LedgerTestKit
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization
import X509
@testable import PeerNetwork

/// Fails a test with a message instead of hanging it.
struct TimeoutError: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Polls `condition` every few milliseconds until it holds or `seconds` pass.
func waitUntil(_ what: String, seconds: Double = 10, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while !condition() {
        guard ContinuousClock.now < deadline else { throw TimeoutError(what: what) }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// Waits for a channel to close, failing after `seconds`.
func waitForClose(_ channel: any Channel, seconds: Double = 10) async throws {
    try await waitUntil("the connection to close", seconds: seconds) { !channel.isActive }
    try? await channel.closeFuture.get()
}

/// Records a transport's frames and events for assertions.
final class Recorder: Sendable {
    private struct State {
        var frames: [InboundFrame] = []
        var events: [TransportEvent] = []
    }
    private let state = Mutex(State())

    var onFrame: @Sendable (InboundFrame) -> Void { { frame in self.state.withLock { $0.frames.append(frame) } } }
    var onEvent: @Sendable (TransportEvent) -> Void { { event in self.state.withLock { $0.events.append(event) } } }

    var frames: [InboundFrame] { state.withLock { $0.frames } }
    var events: [TransportEvent] { state.withLock { $0.events } }
    var frameCount: Int { state.withLock { $0.frames.count } }

    func frames(from peer: ValidatorIndex) -> [[UInt8]] { frames.filter { $0.peer == peer }.map(\.bytes) }

    var refusals: [HandshakeRefusal] {
        events.compactMap { if case .handshakeRefused(_, _, let reason) = $0 { reason } else { nil } }
    }
    var rejectedFrames: [FrameError] {
        events.compactMap { if case .frameRejected(_, _, let reason) = $0 { reason } else { nil } }
    }
    var overflows: Int {
        events.count { if case .outboundQueueOverflow = $0 { true } else { false } }
    }
    var eventLog: String { events.map { "\($0)" }.joined(separator: "\n") }
}

/// The shared test consortium and its TLS material (made once: key generation is not free).
enum Fixtures {
    static let consortium = TestConsortium(validators: 4)
    static let ca = try! ConsortiumCA.generate(name: "SCF Test Consortium CA")
    static let credentials: [NodeCredentials] = (0..<4).map {
        try! ca.issueNodeCredentials(validatorName: "node-\($0)")
    }
    static let group = MultiThreadedEventLoopGroup.singleton

    static func configuration(_ index: Int, peers: [ValidatorIndex: PeerAddress] = [:], port: Int = 0) -> PeerTransportConfiguration {
        var configuration = PeerTransportConfiguration(
            genesis: consortium.genesis, localIndex: ValidatorIndex(UInt16(index)),
            listenAddress: PeerAddress(host: "127.0.0.1", port: port), peers: peers)
        configuration.reconnectBackoff = ReconnectBackoff(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(300))
        configuration.handshakeTimeout = .seconds(3)
        return configuration
    }
}

/// Transports for validators 0..<count on loopback, started in index order so each one knows
/// the OS-picked ports of the lower indices it dials.
final class Cluster {
    var transports: [PeerTransport?]
    let recorders: [Recorder]
    var ports: [Int]
    let tweak: (inout PeerTransportConfiguration) -> Void

    init(count: Int, tweak: @escaping (inout PeerTransportConfiguration) -> Void = { _ in }) {
        transports = Array(repeating: nil, count: count)
        recorders = (0..<count).map { _ in Recorder() }
        ports = Array(repeating: 0, count: count)
        self.tweak = tweak
    }

    static func start(count: Int, tweak: @escaping (inout PeerTransportConfiguration) -> Void = { _ in }) async throws -> Cluster {
        let cluster = Cluster(count: count, tweak: tweak)
        for index in 0..<count { try await cluster.start(index) }
        return cluster
    }

    func start(_ index: Int) async throws {
        var peers: [ValidatorIndex: PeerAddress] = [:]
        for lower in 0..<index { peers[ValidatorIndex(UInt16(lower))] = PeerAddress(host: "127.0.0.1", port: ports[lower]) }
        var configuration = Fixtures.configuration(index, peers: peers, port: ports[index])
        tweak(&configuration)
        let transport = try PeerTransport(
            configuration: configuration, consensusKey: Fixtures.consortium.validatorKeys[index],
            credentials: Fixtures.credentials[index], eventLoopGroup: Fixtures.group,
            onFrame: recorders[index].onFrame, onEvent: recorders[index].onEvent)
        try await transport.start()
        ports[index] = transport.listeningAddress!.port
        transports[index] = transport
    }

    func transport(_ index: Int) -> PeerTransport { transports[index]! }

    func stop(_ index: Int) async {
        await transports[index]?.shutdown()
        transports[index] = nil
    }

    func shutdown() async {
        for index in transports.indices { await stop(index) }
    }

    /// Every running transport is connected to every other running one.
    func waitFullyConnected(seconds: Double = 10) async throws {
        let running = transports.indices.filter { transports[$0] != nil }
        try await waitUntil("all \(running.count) transports to connect", seconds: seconds) {
            running.allSatisfy { index in
                Set(transport(index).connectedPeers) == Set(running.filter { $0 != index }.map { ValidatorIndex(UInt16($0)) })
            }
        }
    }
}

/// A TLS or plain TCP client that is not a validator, for the refusal tests.
enum RogueClient {
    /// Connects with TLS 1.3 presenting `credentials` (or no certificate), trusting any server certificate.
    static func connectTLS(port: Int, credentials: NodeCredentials?) async throws -> any Channel {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.certificateVerification = .none
        if let credentials {
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(credentials.certificatePEM.utf8)).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(credentials.privateKeyPEM.utf8), format: .pem))
        }
        let context = try NIOSSLContext(configuration: tls)
        return try await ClientBootstrap(group: Fixtures.group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    /// Connects with plain TCP.
    static func connectTCP(port: Int) async throws -> any Channel {
        try await ClientBootstrap(group: Fixtures.group).connect(host: "127.0.0.1", port: port).get()
    }

    static func write(_ bytes: [UInt8], to channel: any Channel) async throws {
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        try await channel.writeAndFlush(buffer).get()
    }

    /// A self-signed end-entity certificate and key, as PEM, that no consortium CA issued.
    static func selfSignedCredentials(name: String) throws -> NodeCredentials {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let subject = try DistinguishedName { CommonName(name) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(86_400),
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
            },
            issuerPrivateKey: key)
        let pem = try certificate.serializeAsPEM().pemString
        return NodeCredentials(certificatePEM: pem, privateKeyPEM: try key.serializeAsPEM().pemString, caCertificatePEM: pem)
    }
}

/// A validator run by hand: TLS with a real node certificate, then the real handshake state
/// machine, then nothing at all: it never reads and never writes (no keepalives). Stands for a
/// peer that is stuck or hostile after authenticating.
enum SilentPeer {
    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        var machine: HandshakeStateMachine
        let listenerName: String
        let established: EventLoopPromise<ValidatorIndex>

        init(machine: HandshakeStateMachine, listenerName: String, established: EventLoopPromise<ValidatorIndex>) {
            self.machine = machine
            self.listenerName = listenerName
            self.established = established
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
                perform(machine.tlsEstablished(peerCommonName: listenerName), context: context)
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            perform(machine.receive(Array(unwrapInboundIn(data).readableBytesView)), context: context)
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            established.fail(error)
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            established.fail(TimeoutError(what: "a handshake on a connection that closed"))
        }

        private func perform(_ action: HandshakeStateMachine.Action, context: ChannelHandlerContext) {
            switch action {
            case .none: break
            case .send(let message):
                var buffer = context.channel.allocator.buffer(capacity: message.count + 4)
                Framing.writeFrame(message, into: &buffer)
                context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            case .established(let peer):
                // From here on: silence. Stop reading, so TCP back-pressure reaches the sender.
                context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
                established.succeed(peer)
            case .refuse(let reason, _):
                established.fail(reason)
                context.close(promise: nil)
            }
        }
    }

    /// Dials `port` as validator `index` and runs the handshake; returns once authenticated.
    static func connect(port: Int, as index: Int, to listener: Int) async throws -> any Channel {
        let credentials = Fixtures.credentials[index]
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.certificateVerification = .noHostnameVerification
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(credentials.caCertificatePEM.utf8)))
        tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(credentials.certificatePEM.utf8)).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(credentials.privateKeyPEM.utf8), format: .pem))
        let context = try NIOSSLContext(configuration: tls)
        let consortium = Fixtures.consortium
        let configuration = HandshakeStateMachine.Configuration(
            genesis: consortium.genesis, suite: consortium.suite, localIndex: ValidatorIndex(UInt16(index)),
            signingKey: consortium.validatorKeys[index])
        let nonce = (0..<32).map { _ in UInt8.random(in: 0...255) }
        let loop = Fixtures.group.next()
        let established = loop.makePromise(of: ValidatorIndex.self)
        let channel = try await ClientBootstrap(group: loop)
            .channelOption(.socketOption(.so_rcvbuf), value: 16 << 10)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let machine = HandshakeStateMachine(configuration: configuration,
                                                        role: .dialer(expecting: ValidatorIndex(UInt16(listener))), localNonce: nonce)
                    try channel.pipeline.syncOperations.addHandlers(
                        NIOSSLClientHandler(context: context, serverHostname: nil),
                        ByteToMessageHandler(FrameDecoder()),
                        Handler(machine: machine, listenerName: "node-\(listener)", established: established))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        _ = try await established.futureResult.get()
        return channel
    }
}
