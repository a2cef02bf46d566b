import LedgerCore

/// A host and TCP port.
public struct PeerAddress: Hashable, Sendable, Codable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses "host:port", "[ipv6]:port"; nil when the port is missing or out of range.
    public init?(_ text: String) {
        let host: Substring, port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let number = Int(port), (0...65_535).contains(number) else { return nil }
        self.init(host: String(host), port: number)
    }
}

/// Capped exponential backoff between dial attempts: `initialDelay × 2^failures`, at most
/// `maximumDelay`, spread by ±`jitter` so restarted nodes do not dial in lock step.
public struct ReconnectBackoff: Hashable, Sendable {
    public var initialDelay: Duration
    public var maximumDelay: Duration
    /// Fraction of the delay added or removed at random, 0...1.
    public var jitter: Double

    public init(initialDelay: Duration = .milliseconds(100), maximumDelay: Duration = .seconds(5), jitter: Double = 0.2) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.jitter = jitter
    }

    /// The wait before the next attempt after `failures` consecutive failed attempts (0 after a
    /// connection that worked). `jitterSample` is a random number in -1...1 from the caller.
    public func delay(afterFailures failures: Int, jitterSample: Double) -> Duration {
        let exponent = min(max(failures, 0), 30)
        let base = min(initialDelay * (1 << exponent), maximumDelay)
        let factor = 1 + min(max(jitter, 0), 1) * min(max(jitterSample, -1), 1)
        let nanoseconds = (Double(base.components.seconds) * 1e9 + Double(base.components.attoseconds) / 1e9) * factor
        return min(max(.nanoseconds(Int64(nanoseconds)), .zero), maximumDelay)
    }
}

/// Everything a ``PeerTransport`` needs besides keys and certificates.
public struct PeerTransportConfiguration: Sendable {
    /// The chain: its validators (names, consensus keys, order), chain id and suite.
    public var genesis: Genesis
    /// This node's position in `genesis.validators`.
    public var localIndex: ValidatorIndex
    /// Where to listen. Port 0 lets the OS pick; read it back from ``PeerTransport/listeningAddress``.
    public var listenAddress: PeerAddress
    /// Addresses of the other validators. Only validators with a lower index are dialed (the
    /// connection rule: the higher index dials the lower), so entries for higher indices are
    /// optional and unused.
    public var peers: [ValidatorIndex: PeerAddress]
    /// Largest frame payload sent or accepted. Every node of a chain should use the same value.
    public var maxFrameLength: Int = Framing.defaultMaxFrameLength
    /// Frames held per peer before the oldest is dropped.
    public var outboundQueueFrameLimit: Int = 8192
    /// Bytes held per peer before the oldest frames are dropped; at least `maxFrameLength`.
    public var outboundQueueByteLimit: Int = 64 << 20
    /// Frames queued for a peer longer than this are dropped when its connection comes up (see
    /// `PeerLink`): a short outage loses nothing, a long one leaves the peer to catch up from blocks.
    public var outboundQueueMaxAge: Duration = .seconds(2)
    /// Time from TCP connect to an authenticated peer; slower connections are closed.
    public var handshakeTimeout: Duration = .seconds(5)
    public var connectTimeout: Duration = .seconds(3)
    public var reconnectBackoff = ReconnectBackoff()
    /// An authenticated connection that has written nothing for this long sends a keepalive
    /// (an empty frame).
    public var keepaliveInterval: Duration = .seconds(2)
    /// An authenticated connection that has read nothing (not even a keepalive) for this long is
    /// closed; dialers then redial. Must exceed `keepaliveInterval`.
    public var idleTimeout: Duration = .seconds(10)
    /// Inbound connections still in TLS or the handshake at once; more are closed on accept.
    public var maxPendingInboundConnections: Int = 64
    /// Bytes buffered in a connection (after TLS) above which the transport stops writing to it
    /// and lets frames wait in the bounded queue instead.
    public var writeBufferHighWaterMark: Int = 1 << 20

    public init(genesis: Genesis, localIndex: ValidatorIndex, listenAddress: PeerAddress,
                peers: [ValidatorIndex: PeerAddress] = [:]) {
        self.genesis = genesis
        self.localIndex = localIndex
        self.listenAddress = listenAddress
        self.peers = peers
    }

    /// Every problem with this configuration, as sentences.
    public var problems: [String] {
        var problems: [String] = []
        if genesis.validatorSet.validator(at: localIndex) == nil {
            problems.append("localIndex \(localIndex.value) is not a validator: genesis has \(genesis.validators.count)")
        }
        if peers[localIndex] != nil { problems.append("peers lists this node itself (\(localIndex))") }
        for (index, address) in peers.sorted(by: { $0.key < $1.key }) {
            if genesis.validatorSet.validator(at: index) == nil { problems.append("peers lists \(index), which is not in genesis") }
            if !(1...65_535).contains(address.port) { problems.append("peer \(index) has port \(address.port)") }
        }
        if !(0...65_535).contains(listenAddress.port) { problems.append("listen port \(listenAddress.port) is out of range") }
        if maxFrameLength < 1 || maxFrameLength > Int(UInt32.max) { problems.append("maxFrameLength must be 1...\(UInt32.max)") }
        if outboundQueueFrameLimit < 1 { problems.append("outboundQueueFrameLimit must be positive") }
        if outboundQueueMaxAge < .zero { problems.append("outboundQueueMaxAge must not be negative") }
        if outboundQueueByteLimit < maxFrameLength { problems.append("outboundQueueByteLimit must be at least maxFrameLength") }
        if keepaliveInterval <= .zero || idleTimeout <= keepaliveInterval {
            problems.append("idleTimeout must exceed keepaliveInterval, which must be positive")
        }
        if maxPendingInboundConnections < 1 { problems.append("maxPendingInboundConnections must be positive") }
        if writeBufferHighWaterMark < 1024 { problems.append("writeBufferHighWaterMark must be at least 1024") }
        return problems
    }
}

/// Which side opened a connection.
public enum ConnectionDirection: String, Sendable, Hashable {
    /// This node dialed the peer (the peer has the lower index).
    case outbound
    /// The peer dialed this node.
    case inbound
}

/// A consensus frame from an authenticated validator.
public struct InboundFrame: Sendable, Hashable {
    public var peer: ValidatorIndex
    public var bytes: [UInt8]
    public init(peer: ValidatorIndex, bytes: [UInt8]) {
        self.peer = peer
        self.bytes = bytes
    }
}

/// What happened to a connection, for logs and metrics. Delivered on event-loop threads.
public enum TransportEvent: Sendable, CustomStringConvertible {
    case listening(PeerAddress)
    /// The peer passed TLS and the handshake; frames flow.
    case connected(peer: ValidatorIndex, direction: ConnectionDirection, remoteAddress: String)
    /// An authenticated connection closed.
    case disconnected(peer: ValidatorIndex, reason: String)
    /// A connection was closed before it was authenticated (TLS or handshake). `peer` is the
    /// validator dialed, or the one the peer claimed once its hello passed the checks.
    case handshakeRefused(peer: ValidatorIndex?, remoteAddress: String, reason: HandshakeRefusal)
    /// A connection sent bytes that are not a valid frame and was closed.
    case frameRejected(peer: ValidatorIndex?, remoteAddress: String, reason: FrameError)
    /// Dialing a peer failed; the next attempt follows after `retryIn`.
    case dialFailed(peer: ValidatorIndex, address: PeerAddress, error: String, retryIn: Duration)
    /// A peer's outbound queue is full and its oldest frames are being dropped. Reported once per
    /// episode: again only after the queue has drained.
    case outboundQueueOverflow(peer: ValidatorIndex)

    public var description: String {
        switch self {
        case .listening(let address): "listening on \(address)"
        case .connected(let peer, let direction, let remote): "connected to \(peer) (\(direction.rawValue), \(remote))"
        case .disconnected(let peer, let reason): "disconnected from \(peer): \(reason)"
        case .handshakeRefused(let peer, let remote, let reason):
            "refused \(peer.map { "\($0) " } ?? "")at \(remote): \(reason)"
        case .frameRejected(let peer, let remote, let reason):
            "rejected a frame from \(peer.map { "\($0) " } ?? "")at \(remote): \(reason)"
        case .dialFailed(let peer, let address, let error, let retry): "dialing \(peer) at \(address) failed (\(error)); retry in \(retry)"
        case .outboundQueueOverflow(let peer): "outbound queue to \(peer) is full; dropping its oldest frames"
        }
    }
}

/// What `send` did with a frame.
public enum SendResult: Sendable, Hashable {
    /// Queued for the peer (written at once when the connection has room).
    case enqueued
    /// Queued, after dropping this many of the oldest queued frames to stay within the limits.
    case enqueuedDroppingOldest(Int)
    /// Not a validator of this chain, or this node itself.
    case unknownPeer
    /// Larger than `maxFrameLength`; the peer would close the connection, so it is not sent.
    case frameTooLarge
    /// Empty frames are reserved for keepalives.
    case emptyFrame
    /// The transport is not running.
    case notRunning
}

/// A snapshot of one peer's outbound queue.
public struct OutboundQueueStatus: Sendable, Hashable {
    public var frames: Int
    public var bytes: Int
    /// Frames dropped since the transport started.
    public var droppedFrames: UInt64
    public var connected: Bool
}
