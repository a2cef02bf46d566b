import LedgerCore
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// The validator-to-validator transport: moves opaque consensus frames between the validators of
/// one chain over mutually authenticated TLS 1.3, with a handshake that binds each connection to
/// a validator index from genesis. It knows nothing about consensus.
///
/// - Connection rule: every pair of validators has one connection, opened by the validator with
///   the higher index, which dials every lower index and keeps redialing with capped
///   exponential backoff. Validator 0 only listens. A listener refuses a validator with a lower
///   index (`wrongDirection`). When a peer reconnects while its old connection still looks
///   open, the newer authenticated connection replaces the older.
/// - Outbound: ``send(_:to:)`` queues a frame in the peer's bounded drop-oldest queue (see
///   ``PeerTransportConfiguration/outboundQueueFrameLimit``) and returns at once; it never
///   blocks and never awaits. Frames queued while a peer is disconnected are sent when it
///   reconnects, if they are still in the queue and younger than
///   ``PeerTransportConfiguration/outboundQueueMaxAge``.
/// - Inbound: `onFrame` is called on an event-loop thread for every frame from an authenticated
///   peer, in order per peer, and concurrently for different peers. It must return quickly
///   (hand the frame to your own queue); while it runs, that connection reads nothing.
///   ``pauseReceiving(from:)`` stops reading from a peer for back-pressure.
/// - Events: `onEvent` reports connections, refusals, rejected frames, dial failures and queue
///   overflows, also on event-loop threads.
/// - Liveness: a connection that has written nothing for `keepaliveInterval` sends an empty
///   frame (empty frames are keepalives and never reach `onFrame`); a connection that has read
///   nothing for `idleTimeout` is closed, so a peer that vanished without closing its socket is
///   noticed and redialed.
///
/// A transport runs once: after ``shutdown()``, make a new one (with the same listen port to be
/// found again by the peers that dial it). Shut the transport down before its event loop group,
/// and do not rely on the callbacks stopping at the exact moment `shutdown()` returns.
public final class PeerTransport: Sendable {
    private let core: TransportCore

    /// - Parameters:
    ///   - configuration: chain, position, addresses and limits.
    ///   - consensusKey: this validator's consensus signing key; its public key must be the one
    ///     genesis lists for `configuration.localIndex`.
    ///   - credentials: this node's TLS key and certificate (common name = its validator name)
    ///     and the consortium CA certificate, the only trust root.
    ///   - eventLoopGroup: where connections run; not shut down by the transport.
    ///   - onFrame: called for each inbound frame, on an event-loop thread.
    ///   - onEvent: called for each event, on an event-loop thread.
    public init(configuration: PeerTransportConfiguration, consensusKey: any SigningKey, credentials: NodeCredentials,
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                onFrame: @escaping @Sendable (InboundFrame) -> Void,
                onEvent: @escaping @Sendable (TransportEvent) -> Void = { _ in }) throws {
        core = try TransportCore(configuration: configuration, consensusKey: consensusKey, credentials: credentials,
                                 group: eventLoopGroup, onFrame: onFrame, onEvent: onEvent)
    }

    /// Binds the listener and starts dialing the lower-index peers. Returns once listening.
    public func start() async throws {
        try await core.start()
    }

    /// The address the listener is bound to (with the OS-picked port), once started.
    public var listeningAddress: PeerAddress? { core.listeningAddress }

    public var localIndex: ValidatorIndex { core.configuration.localIndex }

    /// Queues `frame` for `peer`. Never blocks; see the queue policy in the type's documentation.
    /// Frames that cannot be queued (unknown peer, empty, too large, not running) are dropped;
    /// use ``trySend(_:to:)`` to learn what happened.
    public func send(_ frame: [UInt8], to peer: ValidatorIndex) {
        _ = core.send(frame, to: peer)
    }

    /// ``send(_:to:)`` that reports what it did with the frame.
    @discardableResult
    public func trySend(_ frame: [UInt8], to peer: ValidatorIndex) -> SendResult {
        core.send(frame, to: peer)
    }

    /// Queues `frame` for every other validator.
    public func broadcast(_ frame: [UInt8]) {
        core.broadcast(frame)
    }

    /// Validators with an authenticated connection now, in index order.
    public var connectedPeers: [ValidatorIndex] { core.connectedPeers }

    /// The state of `peer`'s outbound queue, nil for a validator that is not a peer.
    public func queueStatus(for peer: ValidatorIndex) -> OutboundQueueStatus? { core.links[peer]?.status }

    /// Stops reading from `peer` (TCP back-pressure reaches the peer, whose own queue then drops
    /// its oldest frames). Lasts across reconnects until ``resumeReceiving(from:)``.
    public func pauseReceiving(from peer: ValidatorIndex) { core.setReceivingPaused(true, from: peer) }

    public func resumeReceiving(from peer: ValidatorIndex) { core.setReceivingPaused(false, from: peer) }

    /// Stops listening and dialing, closes every connection and waits until they are closed.
    /// Queued frames are discarded.
    public func shutdown() async {
        await core.shutdown()
    }
}

/// The transport's shared state and the shell logic behind ``PeerTransport``; connection
/// handlers call back into it.
final class TransportCore: Sendable {
    let configuration: PeerTransportConfiguration
    let handshakeConfiguration: HandshakeStateMachine.Configuration
    let handshakeTimeout: TimeAmount
    let links: [ValidatorIndex: PeerLink]
    private let peerOrder: [ValidatorIndex]
    private let serverTLS: NIOSSLContext
    private let clientTLS: NIOSSLContext
    private let group: any EventLoopGroup
    private let onFrame: @Sendable (InboundFrame) -> Void
    private let onEvent: @Sendable (TransportEvent) -> Void

    private enum Phase { case idle, starting, running, stopped }

    private struct ConnectionRecord {
        var channel: any Channel
        var direction: ConnectionDirection
        var authenticated = false
    }

    private struct State {
        var phase = Phase.idle
        var serverChannel: (any Channel)?
        var listeningAddress: PeerAddress?
        var connections: [ObjectIdentifier: ConnectionRecord] = [:]
        var redials: [ValidatorIndex: Scheduled<Void>] = [:]
    }

    private let state = Mutex(State())
    /// `state.phase == .running`, readable without the lock on the send path.
    private let running = Atomic<Bool>(false)

    init(configuration: PeerTransportConfiguration, consensusKey: any SigningKey, credentials: NodeCredentials,
         group: any EventLoopGroup, onFrame: @escaping @Sendable (InboundFrame) -> Void,
         onEvent: @escaping @Sendable (TransportEvent) -> Void) throws {
        let problems = configuration.problems
        guard problems.isEmpty else {
            throw PeerNetworkError(.invalidConfiguration, problems.joined(separator: "; "))
        }
        let genesis = configuration.genesis
        let suite: any CryptoSuite
        do {
            suite = try CryptoSuites.make(for: genesis)
        } catch {
            throw PeerNetworkError(.invalidConfiguration, "cannot use genesis crypto suite \(genesis.cryptoSuite): \(error)")
        }
        let validator = genesis.validatorSet.validator(at: configuration.localIndex)!
        guard consensusKey.publicKey == validator.publicKey else {
            throw PeerNetworkError(.invalidCredentials,
                                   "the consensus key is not \(configuration.localIndex)'s (\(validator.name)) key in genesis; "
                                       + "check the key file and localIndex")
        }
        let commonName = try credentials.commonName()
        guard commonName == validator.name else {
            throw PeerNetworkError(.invalidCredentials,
                                   "the TLS certificate is for \"\(commonName)\" but \(configuration.localIndex) is \"\(validator.name)\" "
                                       + "in genesis; issue the node certificate for the validator's name")
        }
        let (server, client) = try makeTLSContexts(credentials)
        self.configuration = configuration
        self.handshakeConfiguration = .init(genesis: genesis, suite: suite, localIndex: configuration.localIndex, signingKey: consensusKey)
        self.handshakeTimeout = TimeAmount(configuration.handshakeTimeout)
        var links: [ValidatorIndex: PeerLink] = [:]
        for position in genesis.validators.indices where position != Int(configuration.localIndex.value) {
            let index = ValidatorIndex(UInt16(position))
            links[index] = PeerLink(peer: index, frameLimit: configuration.outboundQueueFrameLimit,
                                    byteLimit: configuration.outboundQueueByteLimit, maxAge: configuration.outboundQueueMaxAge)
        }
        self.links = links
        self.peerOrder = links.keys.sorted()
        self.serverTLS = server
        self.clientTLS = client
        self.group = group
        self.onFrame = onFrame
        self.onEvent = onEvent
    }

    // MARK: - Lifecycle

    func start() async throws {
        try state.withLock { state in
            guard state.phase == .idle else {
                throw PeerNetworkError(.invalidState, "start() was already called on this transport; make a new one to restart")
            }
            state.phase = .starting
        }
        let listen = configuration.listenAddress
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: waterMark)
            .childChannelInitializer { [self] channel in
                configure(channel, direction: .inbound, role: .acceptor)
            }
        let server: any Channel
        do {
            server = try await bootstrap.bind(host: listen.host, port: listen.port).get()
        } catch {
            state.withLock { $0.phase = .idle }
            throw PeerNetworkError(.bindFailed, "cannot listen on \(listen): \(error)")
        }
        let address = PeerAddress(host: server.localAddress?.ipAddress ?? listen.host, port: server.localAddress?.port ?? listen.port)
        let proceed = state.withLock { state -> Bool in
            guard state.phase == .starting else { return false }  // shut down meanwhile
            state.phase = .running
            running.store(true, ordering: .releasing)
            state.serverChannel = server
            state.listeningAddress = address
            return true
        }
        guard proceed else {
            try? await server.close()
            throw PeerNetworkError(.invalidState, "the transport was shut down while starting")
        }
        emit(.listening(address))
        for peer in peerOrder where peer < configuration.localIndex {
            if configuration.peers[peer] != nil { dial(peer, failures: 0) }
        }
    }

    func shutdown() async {
        let (server, channels, redials) = state.withLock { state in
            state.phase = .stopped
            running.store(false, ordering: .releasing)
            let result = (state.serverChannel, state.connections.values.map(\.channel), Array(state.redials.values))
            state.serverChannel = nil
            state.redials = [:]
            return result
        }
        for redial in redials { redial.cancel() }
        if let server { try? await server.close() }
        for channel in channels { channel.close(promise: nil) }
        for channel in channels { try? await channel.closeFuture.get() }
    }

    var listeningAddress: PeerAddress? { state.withLock { $0.listeningAddress } }

    private var isRunning: Bool { running.load(ordering: .acquiring) }

    private var waterMark: ChannelOptions.Types.WriteBufferWaterMark {
        let high = configuration.writeBufferHighWaterMark
        return .init(low: high / 2, high: high)
    }

    // MARK: - Sending

    func send(_ frame: [UInt8], to peer: ValidatorIndex) -> SendResult {
        guard let link = links[peer] else { return .unknownPeer }
        guard !frame.isEmpty else { return .emptyFrame }
        guard frame.count <= configuration.maxFrameLength else { return .frameTooLarge }
        guard isRunning else { return .notRunning }
        let (result, overflowStarted) = link.enqueue(frame)
        if overflowStarted { emit(.outboundQueueOverflow(peer: peer)) }
        return result
    }

    func broadcast(_ frame: [UInt8]) {
        guard !frame.isEmpty, frame.count <= configuration.maxFrameLength, isRunning else { return }
        for peer in peerOrder {
            let (_, overflowStarted) = links[peer]!.enqueue(frame)
            if overflowStarted { emit(.outboundQueueOverflow(peer: peer)) }
        }
    }

    var connectedPeers: [ValidatorIndex] {
        peerOrder.filter { links[$0]!.currentChannel != nil }
    }

    func setReceivingPaused(_ paused: Bool, from peer: ValidatorIndex) {
        guard let channel = links[peer]?.setReceivingPaused(paused) else { return }
        channel.setOption(.autoRead, value: !paused).whenComplete { _ in
            if !paused { channel.read() }
        }
    }

    // MARK: - Connections

    /// Builds the pipeline of a new connection; runs on its event loop.
    private func configure(_ channel: any Channel, direction: ConnectionDirection, role: HandshakeStateMachine.Role) -> EventLoopFuture<Void> {
        let admitted = state.withLock { state -> Bool in
            guard state.phase == .running || (state.phase == .starting && direction == .inbound) else { return false }
            if direction == .inbound {
                let pending = state.connections.values.count { !$0.authenticated && $0.direction == .inbound }
                guard pending < configuration.maxPendingInboundConnections else { return false }
            }
            state.connections[ObjectIdentifier(channel)] = ConnectionRecord(channel: channel, direction: direction)
            return true
        }
        guard admitted else {
            return channel.close()
        }
        channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
        }
        let nonce = (0..<HandshakeProtocol.nonceLength).map { _ in UInt8.random(in: .min ... .max) }
        return channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            switch direction {
            case .inbound: try sync.addHandler(NIOSSLServerHandler(context: serverTLS))
            case .outbound: try sync.addHandler(NIOSSLClientHandler(context: clientTLS, serverHostname: nil))
            }
            // Before the decoder, so that any bytes from the peer count as life, even the first
            // part of a large frame on a slow link.
            try sync.addHandler(IdleStateHandler(readTimeout: TimeAmount(configuration.idleTimeout),
                                                 writeTimeout: TimeAmount(configuration.keepaliveInterval)))
            let decoder = FrameDecoder(maxFrameLength: configuration.maxFrameLength,
                                       leadingFrameCount: HandshakeProtocol.peerHandshakeFrameCount,
                                       leadingFrameLimit: HandshakeProtocol.maxHandshakeFrameLength)
            try sync.addHandler(ByteToMessageHandler(decoder, maximumBufferSize: configuration.maxFrameLength + (1 << 20)))
            try sync.addHandler(PeerConnectionHandler(core: self, direction: direction, role: role, nonce: nonce))
        }
    }

    /// Dials `peer` now; on failure or after the connection ends, dials again after a backoff.
    private func dial(_ peer: ValidatorIndex, failures: Int) {
        guard isRunning, let address = configuration.peers[peer], let link = links[peer] else { return }
        let loop = group.next()
        let establishedBefore = link.establishedCount
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelOption(.writeBufferWaterMark, value: waterMark)
            .channelInitializer { [self] channel in
                configure(channel, direction: .outbound, role: .dialer(expecting: peer))
            }
        bootstrap.connect(host: address.host, port: address.port).whenComplete { [self] result in
            switch result {
            case .success(let channel):
                channel.closeFuture.whenComplete { [self] _ in
                    // A connection that got through the handshake resets the backoff.
                    let worked = link.establishedCount != establishedBefore
                    scheduleRedial(peer, failures: worked ? 0 : failures + 1, error: worked ? nil : "closed before the handshake finished")
                }
            case .failure(let error):
                scheduleRedial(peer, failures: failures + 1, error: "\(error)")
            }
        }
    }

    private func scheduleRedial(_ peer: ValidatorIndex, failures: Int, error: String?) {
        guard let address = configuration.peers[peer] else { return }
        let delay = configuration.reconnectBackoff.delay(afterFailures: max(failures - 1, 0), jitterSample: Double.random(in: -1...1))
        let loop = group.next()
        let scheduled = state.withLock { locked -> Bool in
            guard locked.phase == .running else { return false }
            locked.redials[peer] = loop.scheduleTask(in: TimeAmount(delay)) { [self] in
                _ = state.withLock { $0.redials.removeValue(forKey: peer) }
                dial(peer, failures: failures)
            }
            return true
        }
        if scheduled, let error {
            emit(.dialFailed(peer: peer, address: address, error: error, retryIn: delay))
        }
    }

    /// A connection authenticated `peer`. Returns the peer's link for the handler.
    func established(peer: ValidatorIndex, channel: any Channel, direction: ConnectionDirection, remoteAddress: String) -> PeerLink {
        let link = links[peer]!
        let running = state.withLock { state -> Bool in
            state.connections[ObjectIdentifier(channel)]?.authenticated = true
            return state.phase == .running || state.phase == .starting
        }
        guard running else {
            channel.close(promise: nil)
            return link
        }
        let (replaced, paused) = link.attach(channel)
        if paused { channel.setOption(.autoRead, value: false).whenComplete { _ in } }
        if let replaced {
            // The peer restarted while its old connection still looked open: newest wins.
            emit(.disconnected(peer: peer, reason: "replaced by a newer connection from the same validator"))
            replaced.close(promise: nil)
        }
        emit(.connected(peer: peer, direction: direction, remoteAddress: remoteAddress))
        return link
    }

    /// An authenticated connection closed.
    func connectionClosed(peer: ValidatorIndex, channel: any Channel, reason: String) {
        if links[peer]?.detach(channel) == true {
            emit(.disconnected(peer: peer, reason: reason))
        }
    }

    func deliver(_ frame: InboundFrame) {
        onFrame(frame)
    }

    func emit(_ event: TransportEvent) {
        onEvent(event)
    }
}

/// The server and client TLS contexts: TLS 1.3 only, our certificate, and the consortium CA as
/// the only trust root on both sides. Both sides require and verify the peer's certificate
/// chain (`noHostnameVerification`): a validator's identity is its certificate's common name,
/// checked against genesis in the handshake, not the address it was reached at, so operators
/// can move nodes between addresses without reissuing certificates.
func makeTLSContexts(_ credentials: NodeCredentials) throws -> (server: NIOSSLContext, client: NIOSSLContext) {
    let chain: [NIOSSLCertificate], key: NIOSSLPrivateKey, roots: [NIOSSLCertificate]
    do {
        chain = try NIOSSLCertificate.fromPEMBytes(Array(credentials.certificatePEM.utf8))
        key = try NIOSSLPrivateKey(bytes: Array(credentials.privateKeyPEM.utf8), format: .pem)
        roots = try NIOSSLCertificate.fromPEMBytes(Array(credentials.caCertificatePEM.utf8))
    } catch {
        throw PeerNetworkError(.invalidCredentials, "cannot load the node's TLS certificate, key or CA certificate: \(error)")
    }
    guard !chain.isEmpty, !roots.isEmpty else {
        throw PeerNetworkError(.invalidCredentials, "the node certificate or CA certificate PEM holds no certificate")
    }
    var server = TLSConfiguration.makeServerConfigurationWithMTLS(
        certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key), trustRoots: .certificates(roots))
    server.minimumTLSVersion = .tlsv13
    server.certificateVerification = .noHostnameVerification
    // Closing waits this long at most for the peer's close_notify; a stuck peer never sends it.
    server.shutdownTimeout = .seconds(1)

    var client = TLSConfiguration.makeClientConfiguration()
    client.minimumTLSVersion = .tlsv13
    client.certificateVerification = .noHostnameVerification
    client.trustRoots = .certificates(roots)
    client.certificateChain = chain.map { .certificate($0) }
    client.privateKey = .privateKey(key)
    client.shutdownTimeout = .seconds(1)
    do {
        return (try NIOSSLContext(configuration: server), try NIOSSLContext(configuration: client))
    } catch {
        throw PeerNetworkError(.invalidCredentials, "the TLS key does not fit the certificate or is unusable: \(error)")
    }
}
