import LedgerCore

/// The handshake of one connection as a pure state machine: no channel, no clock, no randomness.
/// The connection handler feeds it the TLS result and each handshake frame and performs the
/// action it returns. The local nonce comes from the shell. See ``HandshakeProtocol``.
struct HandshakeStateMachine: Sendable {
    /// What this node knows and claims.
    struct Configuration: Sendable {
        var protocolVersion: UInt16 = HandshakeProtocol.version
        var chainID: String
        var suite: any CryptoSuite
        var genesisHash: Hash
        var validators: ValidatorSet
        var localIndex: ValidatorIndex
        /// This node's consensus key; its public key is validator `localIndex`'s key in genesis.
        var signingKey: any SigningKey

        init(genesis: Genesis, suite: any CryptoSuite, localIndex: ValidatorIndex, signingKey: any SigningKey) {
            self.chainID = genesis.chainID
            self.suite = suite
            self.genesisHash = genesis.hash(suite: suite)
            self.validators = genesis.validatorSet
            self.localIndex = localIndex
            self.signingKey = signingKey
        }
    }

    /// Which side of the connection rule this node is on.
    enum Role: Hashable, Sendable {
        /// This node dialed the validator it expects to answer.
        case dialer(expecting: ValidatorIndex)
        /// This node accepted the connection; the peer must have a higher index.
        case acceptor
    }

    enum Action: Equatable, Sendable {
        case none
        /// Write this handshake message as one frame.
        case send([UInt8])
        /// The peer is authenticated as this validator: consensus frames may flow.
        case established(ValidatorIndex)
        /// Close the connection, after writing `notifyPeer` as one frame when present.
        case refuse(HandshakeRefusal, notifyPeer: [UInt8]?)
    }

    private enum State: Sendable {
        case awaitingTLS
        case awaitingHello(peerCommonName: String?)
        case awaitingProof(peer: ValidatorIndex, peerNonce: [UInt8])
        case awaitingAccept(peer: ValidatorIndex)
        case established(ValidatorIndex)
        case refused
    }

    let configuration: Configuration
    let role: Role
    private let localNonce: [UInt8]
    private var state: State = .awaitingTLS

    init(configuration: Configuration, role: Role, localNonce: [UInt8]) {
        precondition(localNonce.count == HandshakeProtocol.nonceLength, "the shell must supply a 32-byte nonce")
        self.configuration = configuration
        self.role = role
        self.localNonce = localNonce
    }

    /// The authenticated peer, once established.
    var establishedPeer: ValidatorIndex? {
        if case .established(let peer) = state { return peer }
        return nil
    }

    var isFinished: Bool {
        switch state {
        case .established, .refused: true
        default: false
        }
    }

    /// The peer index claimed in a hello that passed the checks, if any (for logs).
    var claimedPeer: ValidatorIndex? {
        switch state {
        case .awaitingProof(let peer, _), .awaitingAccept(let peer), .established(let peer): peer
        default: nil
        }
    }

    /// TLS finished and verified the peer's certificate against the consortium CA.
    mutating func tlsEstablished(peerCommonName: String?) -> Action {
        guard case .awaitingTLS = state else {
            return refuse(.protocolViolation, "TLS finished twice on one connection")
        }
        state = .awaitingHello(peerCommonName: peerCommonName)
        let hello = HandshakeProtocol.Hello(
            version: configuration.protocolVersion, suiteCode: configuration.suite.id.code,
            chainID: configuration.chainID, genesisHash: configuration.genesisHash,
            index: configuration.localIndex, nonce: localNonce)
        return .send(hello.encoded)
    }

    /// The shell's handshake deadline passed.
    mutating func timedOut() -> Action {
        if isFinished { return .none }
        return refuse(.timeout, "the peer did not finish the handshake in time")
    }

    /// One handshake frame from the peer.
    mutating func receive(_ frame: [UInt8]) -> Action {
        if case .refused = state { return .none }
        if case .established = state {
            return refuse(.protocolViolation, "handshake message after the handshake finished")
        }
        guard frame.count <= HandshakeProtocol.maxHandshakeFrameLength else {
            return refuse(.malformedMessage, "handshake frame of \(frame.count) bytes exceeds \(HandshakeProtocol.maxHandshakeFrameLength)")
        }
        var reader = CanonicalReader(frame)
        reader.maxBytesLength = HandshakeProtocol.maxHandshakeFrameLength
        guard let typeByte = try? reader.readUInt8(), let type = HandshakeProtocol.MessageType(rawValue: typeByte) else {
            return refuse(.malformedMessage, "not an SCF handshake message (first byte \(frame.first.map { String($0) } ?? "missing"))")
        }
        if type == .refuse {
            return peerRefused(&reader)
        }
        switch (state, type) {
        case (.awaitingHello(let commonName), .hello):
            return receiveHello(&reader, peerCommonName: commonName)
        case (.awaitingProof(let peer, let peerNonce), .proof):
            return receiveProof(&reader, peer: peer, peerNonce: peerNonce)
        case (.awaitingAccept(let peer), .accept):
            guard reader.isAtEnd else { return refuse(.malformedMessage, "accept message with trailing bytes") }
            state = .established(peer)
            return .established(peer)
        default:
            return refuse(.protocolViolation, "unexpected \(type) message while \(stateName)")
        }
    }

    // MARK: - Steps

    private mutating func receiveHello(_ reader: inout CanonicalReader, peerCommonName: String?) -> Action {
        guard let version = try? reader.readUInt16() else {
            return refuse(.malformedMessage, "hello without a version")
        }
        guard version == configuration.protocolVersion else {
            return refuse(.versionMismatch,
                          "the peer speaks handshake version \(version), this node speaks \(configuration.protocolVersion); "
                              + "run the same release on both nodes")
        }
        let hello: HandshakeProtocol.Hello
        do {
            let suiteCode = try reader.readUInt8()
            let chainID = try reader.readString()
            let genesisHash: Hash = try reader.read()
            let index: ValidatorIndex = try reader.read()
            let nonce = Array(try reader.readRaw(count: HandshakeProtocol.nonceLength))
            try reader.expectEnd()
            hello = .init(version: version, suiteCode: suiteCode, chainID: chainID, genesisHash: genesisHash, index: index, nonce: nonce)
        } catch {
            return refuse(.malformedMessage, "malformed hello: \(error)")
        }

        let localSuite = configuration.suite.id
        guard hello.suiteCode == localSuite.code else {
            let peerSuite = CryptoSuiteID(code: hello.suiteCode).map { "\($0)" } ?? "an unknown suite (code \(hello.suiteCode))"
            return refuse(.cryptoSuiteMismatch,
                          "the peer's chain uses crypto suite \(peerSuite), this chain uses \(localSuite); "
                              + "it runs another consortium's genesis")
        }
        guard hello.chainID == configuration.chainID else {
            return refuse(.chainMismatch, "the peer is on chain \"\(hello.chainID)\", this node is on \"\(configuration.chainID)\"")
        }
        guard hello.genesisHash == configuration.genesisHash else {
            return refuse(.genesisMismatch,
                          "the peer's genesis hash is \(hello.genesisHash.short)…, this node's is \(configuration.genesisHash.short)…; "
                              + "both run chain \"\(configuration.chainID)\" from different genesis files")
        }
        guard let validator = configuration.validators.validator(at: hello.index) else {
            return refuse(.unknownValidator,
                          "the peer claims validator index \(hello.index.value), genesis has \(configuration.validators.count) validators")
        }
        guard hello.index != configuration.localIndex else {
            return refuse(.selfConnection, "the peer claims to be this node (\(hello.index)); check the peer addresses")
        }
        switch role {
        case .dialer(let expected) where hello.index != expected:
            return refuse(.unexpectedValidator,
                          "this node dialed \(expected) but \(hello.index) (\(validator.name)) answered; check the peer addresses")
        case .acceptor where hello.index < configuration.localIndex:
            return refuse(.wrongDirection,
                          "\(hello.index) dialed \(configuration.localIndex), but the higher index dials the lower one; "
                              + "\(configuration.localIndex) dials \(hello.index)")
        default:
            break
        }
        guard let peerCommonName, peerCommonName == validator.name else {
            return refuse(.certificateNameMismatch,
                          "the peer claims \(hello.index) (\"\(validator.name)\") but its TLS certificate is for "
                              + (peerCommonName.map { "\"\($0)\"" } ?? "no common name"))
        }

        let message = HandshakeProtocol.proofMessage(
            genesisHash: configuration.genesisHash, signer: configuration.localIndex, verifier: hello.index,
            signerNonce: localNonce, verifierNonce: hello.nonce)
        let signature: Signature
        do {
            signature = try configuration.signingKey.signature(for: message)
        } catch {
            return refuse(.localFailure, "this node could not sign its handshake proof: \(error)")
        }
        state = .awaitingProof(peer: hello.index, peerNonce: hello.nonce)
        return .send(HandshakeProtocol.encodeProof(signature))
    }

    private mutating func receiveProof(_ reader: inout CanonicalReader, peer: ValidatorIndex, peerNonce: [UInt8]) -> Action {
        let signature: Signature
        do {
            signature = try reader.read()
            try reader.expectEnd()
        } catch {
            return refuse(.malformedMessage, "malformed proof: \(error)")
        }
        // `peer` passed the index check in receiveHello.
        let publicKey = configuration.validators.validator(at: peer)!.publicKey
        let message = HandshakeProtocol.proofMessage(
            genesisHash: configuration.genesisHash, signer: peer, verifier: configuration.localIndex,
            signerNonce: peerNonce, verifierNonce: localNonce)
        guard configuration.suite.isValidSignature(signature, for: message, publicKey: publicKey) else {
            return refuse(.badSignature,
                          "the peer's proof does not verify under \(peer)'s consensus key in genesis; "
                              + "it holds the TLS certificate but not the validator key")
        }
        state = .awaitingAccept(peer: peer)
        return .send(HandshakeProtocol.acceptMessage)
    }

    private mutating func peerRefused(_ reader: inout CanonicalReader) -> Action {
        state = .refused
        let code = (try? reader.readUInt8()).flatMap(HandshakeRefusal.Code.init(wireCode:))
        let text = (try? reader.readString()) ?? ""
        let reason = code.map { "\($0.rawValue): \(text)" } ?? "unknown reason: \(text)"
        return .refuse(HandshakeRefusal(.refusedByPeer, "the peer refused this node: \(reason)"), notifyPeer: nil)
    }

    private mutating func refuse(_ code: HandshakeRefusal.Code, _ message: String) -> Action {
        // Before TLS there is no channel to tell the peer on.
        let canNotify: Bool
        if case .awaitingTLS = state { canNotify = false } else { canNotify = true }
        state = .refused
        let refusal = HandshakeRefusal(code, message)
        return .refuse(refusal, notifyPeer: canNotify ? HandshakeProtocol.encodeRefusal(refusal) : nil)
    }

    private var stateName: String {
        switch state {
        case .awaitingTLS: "waiting for TLS"
        case .awaitingHello: "waiting for hello"
        case .awaitingProof: "waiting for proof"
        case .awaitingAccept: "waiting for accept"
        case .established: "established"
        case .refused: "refused"
        }
    }
}
