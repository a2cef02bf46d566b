import LedgerCore
import NIOCore
import NIOSSL
import NIOTLS

/// The thin shell around ``HandshakeStateMachine`` for one connection: it feeds the machine the
/// TLS result and handshake frames, performs the actions it returns, and once the peer is
/// authenticated hands every frame to the transport without an async hop.
///
/// Pipeline: TLS handler → `IdleStateHandler` → `ByteToMessageHandler(FrameDecoder)` → this handler.
final class PeerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var machine: HandshakeStateMachine
    private let core: TransportCore
    private let direction: ConnectionDirection
    private var timeout: Scheduled<Void>?
    private var peer: ValidatorIndex?
    private var link: PeerLink?
    private var remoteAddress = "unknown"
    /// One event per connection that fails before it is authenticated.
    private var reported = false
    private var closeReason: String?

    init(core: TransportCore, direction: ConnectionDirection, role: HandshakeStateMachine.Role, nonce: [UInt8]) {
        self.core = core
        self.direction = direction
        self.machine = HandshakeStateMachine(configuration: core.handshakeConfiguration, role: role, localNonce: nonce)
    }

    private var knownPeer: ValidatorIndex? {
        if let peer { return peer }
        if case .dialer(let expected) = machine.role { return expected }
        return machine.claimedPeer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        noteRemoteAddress(context)
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: core.handshakeTimeout) {
            self.perform(self.machine.timedOut(), context: context)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        // A dialed channel learns its remote address only once connected.
        noteRemoteAddress(context)
        context.fireChannelActive()
    }

    private func noteRemoteAddress(_ context: ChannelHandlerContext) {
        if let address = context.channel.remoteAddress {
            remoteAddress = "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
        timeout = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent {
            // Before authentication the handshake timeout applies instead.
            guard let peer else { return }
            switch idle {
            case .write:
                // A connection that cannot take bytes has bytes pending: no keepalive needed.
                guard context.channel.isWritable else { return }
                var keepalive = context.channel.allocator.buffer(capacity: Framing.headerLength)
                Framing.writeFrame(EmptyCollection<UInt8>(), into: &keepalive)
                context.writeAndFlush(wrapOutboundOut(keepalive), promise: nil)
            case .read:
                // Paused on purpose (pauseReceiving): silence is ours, not the peer's.
                if (try? context.channel.syncOptions?.getOption(.autoRead)) == false { return }
                close(context, reason: "nothing received from \(peer) for \(core.configuration.idleTimeout); the peer is gone or stuck")
            case .all:
                break
            }
            return
        }
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            var peerName: String?
            if let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLHandler.self).peerCertificate,
               let der = try? certificate.toDERBytes() {
                peerName = commonName(ofDERCertificate: der)
            }
            perform(machine.tlsEstablished(peerCommonName: peerName), context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if let peer {
            // Empty frames are keepalives.
            if frame.readableBytes > 0 { core.deliver(InboundFrame(peer: peer, bytes: Array(frame.readableBytesView))) }
            return
        }
        guard !machine.isFinished else { return }  // refused: closing, ignore the rest
        perform(machine.receive(Array(frame.readableBytesView)), context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let link, context.channel.isWritable { link.writabilityRestored(context.channel) }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let frameError = error as? FrameError {
            if !reported {
                reported = true
                core.emit(.frameRejected(peer: knownPeer, remoteAddress: remoteAddress, reason: frameError))
            }
        } else if peer == nil {
            let isTLS = error is NIOSSLError || error is BoringSSLError
            let refusal = HandshakeRefusal(isTLS ? .tlsFailure : .protocolViolation,
                                           isTLS ? "TLS failed: \(error) (is the peer's certificate issued by this consortium's CA?)"
                                               : "connection error during the handshake: \(error)")
            report(refusal)
        }
        close(context, reason: "\(error)")
    }

    /// Closes the connection; an authenticated peer is detached at once (a TLS close can wait
    /// for the peer's close_notify), so frames are no longer routed here.
    private func close(_ context: ChannelHandlerContext, reason: String) {
        if closeReason == nil { closeReason = reason }
        if let peer { core.connectionClosed(peer: peer, channel: context.channel, reason: closeReason ?? reason) }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        timeout = nil
        if let peer {
            core.connectionClosed(peer: peer, channel: context.channel, reason: closeReason ?? "the connection closed")
        } else if !reported {
            report(HandshakeRefusal(.protocolViolation, "the peer closed the connection during the handshake"))
        }
        context.fireChannelInactive()
    }

    // MARK: - Actions

    private func perform(_ action: HandshakeStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .send(let message):
            context.writeAndFlush(wrapOutboundOut(frame(message, context: context)), promise: nil)
        case .established(let peer):
            timeout?.cancel()
            timeout = nil
            self.peer = peer
            self.link = core.established(peer: peer, channel: context.channel, direction: direction, remoteAddress: remoteAddress)
        case .refuse(let refusal, let notifyPeer):
            timeout?.cancel()
            timeout = nil
            report(refusal)
            if let notifyPeer {
                // Close once the refusal is written, or after a second if the peer does not
                // read it: a refused connection must not linger.
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(frame(notifyPeer, context: context))).whenComplete { _ in
                    channel.close(promise: nil)
                }
                context.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
        }
    }

    private func report(_ refusal: HandshakeRefusal) {
        guard !reported else { return }
        reported = true
        closeReason = "\(refusal)"
        core.emit(.handshakeRefused(peer: knownPeer, remoteAddress: remoteAddress, reason: refusal))
    }

    private func frame(_ message: [UInt8], context: ChannelHandlerContext) -> ByteBuffer {
        var buffer = context.channel.allocator.buffer(capacity: Framing.headerLength + message.count)
        Framing.writeFrame(message, into: &buffer)
        return buffer
    }
}
