import LedgerCore

/// The handshake two validators run inside TLS before any consensus frame flows.
///
/// Every handshake message is one frame (see ``Framing``) whose first byte is the message type.
/// Integers are big-endian, strings are UInt32-length-prefixed UTF-8 (LedgerCore's canonical
/// encoding). Both sides run the same steps at the same time:
///
/// 1. `hello`  = 0x01 ‖ version u16 ‖ suite code u8 ‖ chain id (string) ‖ genesis hash (32 bytes)
///              ‖ validator index u16 ‖ nonce (32 bytes, fresh per connection).
///    The type byte and the version are the first three bytes in every future version, so a
///    node can always tell a peer that it speaks another version.
/// 2. On the peer's hello, each side checks version, crypto suite, chain id, genesis hash, the
///    claimed validator index (known, not itself, the one it dialed or a higher one when it
///    accepted) and that the peer's TLS certificate common name is that validator's name in
///    genesis, then sends
///    `proof`  = 0x02 ‖ signature (bytes) over ``proofMessage(genesisHash:signer:verifier:signerNonce:verifierNonce:)``
///    signed with its consensus key from genesis: the peer's nonce is the challenge.
/// 3. On a valid proof, each side sends `accept` = 0x03. A side is established when it has both
///    verified the peer's proof and received the peer's accept; from then on every frame is an
///    opaque consensus frame. The accept step guarantees that a side only sends consensus frames
///    once the peer has accepted it, so a refusal can never be mistaken for a consensus frame.
/// 4. Any side may instead send `refuse` = 0x04 ‖ reason code u8 ‖ message (string) and close.
public enum HandshakeProtocol {
    /// The handshake version this build speaks.
    public static let version: UInt16 = 1
    /// Domain separation for the proof signature; distinct from every `SigningDomain` message,
    /// which start with "SCF-LEDGER-v1", so a handshake signature is never a valid ledger signature.
    public static let domainTag: [UInt8] = Array("SCF-HANDSHAKE-v1".utf8)
    /// Bytes in a handshake nonce.
    public static let nonceLength = 32
    /// Frames a peer sends before its first consensus frame: hello, proof, accept (or a refuse
    /// among them). The frame decoder caps them at ``maxHandshakeFrameLength``.
    static let peerHandshakeFrameCount = 3
    /// The largest handshake frame accepted; real ones are a few hundred bytes.
    public static let maxHandshakeFrameLength = 4096

    enum MessageType: UInt8 {
        case hello = 1, proof = 2, accept = 3, refuse = 4
    }

    /// The bytes a validator signs to prove its identity:
    /// "SCF-HANDSHAKE-v1" ‖ genesis hash ‖ signer index u16 ‖ verifier index u16 ‖ signer nonce ‖ verifier nonce.
    ///
    /// The genesis hash binds the chain (and so its id and suite); the two indices and the order
    /// of the nonces make a proof useless in the other direction or on another connection.
    public static func proofMessage(genesisHash: Hash, signer: ValidatorIndex, verifier: ValidatorIndex,
                                    signerNonce: [UInt8], verifierNonce: [UInt8]) -> [UInt8] {
        var writer = CanonicalWriter(capacity: 16 + 32 + 4 + 2 * nonceLength)
        writer.write(raw: domainTag)
        writer.write(genesisHash)
        writer.write(signer)
        writer.write(verifier)
        writer.write(raw: signerNonce)
        writer.write(raw: verifierNonce)
        return writer.bytes
    }

    struct Hello: Hashable, Sendable {
        var version: UInt16
        var suiteCode: UInt8
        var chainID: String
        var genesisHash: Hash
        var index: ValidatorIndex
        var nonce: [UInt8]

        var encoded: [UInt8] {
            var writer = CanonicalWriter(capacity: 128)
            writer.write(MessageType.hello.rawValue)
            writer.write(version)
            writer.write(suiteCode)
            writer.write(chainID)
            writer.write(genesisHash)
            writer.write(index)
            writer.write(raw: nonce)
            return writer.bytes
        }
    }

    static func encodeProof(_ signature: Signature) -> [UInt8] {
        var writer = CanonicalWriter(capacity: 8 + signature.rawRepresentation.count)
        writer.write(MessageType.proof.rawValue)
        writer.write(signature)
        return writer.bytes
    }

    static let acceptMessage: [UInt8] = [MessageType.accept.rawValue]

    static func encodeRefusal(_ refusal: HandshakeRefusal) -> [UInt8] {
        var writer = CanonicalWriter(capacity: 64)
        writer.write(MessageType.refuse.rawValue)
        writer.write(refusal.code.wireCode)
        // Bounded, so a refusal always fits in a handshake frame.
        var message = refusal.message
        if message.utf8.count > 1024 { message = String(decoding: message.utf8.prefix(1024), as: UTF8.self) }
        writer.write(message)
        return writer.bytes
    }
}

/// Why a connection was refused before it carried a consensus frame. Sent to the peer (when the
/// connection still allows it) and reported through ``TransportEvent/handshakeRefused(_:)``.
public struct HandshakeRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The peer speaks another handshake version.
        case versionMismatch
        /// The peer's chain uses another crypto suite (for example sm2-sm3 against ed25519-sha256).
        case cryptoSuiteMismatch
        /// The peer belongs to another chain id.
        case chainMismatch
        /// Same chain id, different genesis file.
        case genesisMismatch
        /// The claimed validator index is not in genesis.
        case unknownValidator
        /// The peer claims to be this node.
        case selfConnection
        /// The node dialed one validator and another answered.
        case unexpectedValidator
        /// A validator dialed a higher index; the rule is that the higher index dials the lower.
        case wrongDirection
        /// The TLS certificate's common name is not the claimed validator's name in genesis.
        case certificateNameMismatch
        /// The identity proof does not verify under the claimed validator's consensus key.
        case badSignature
        /// A handshake message could not be parsed.
        case malformedMessage
        /// A message arrived out of order.
        case protocolViolation
        /// The handshake did not finish in time.
        case timeout
        /// TLS failed: no certificate, a certificate from another CA, or not TLS at all.
        case tlsFailure
        /// This node could not sign its proof.
        case localFailure
        /// The peer refused this node; the message carries the peer's reason.
        case refusedByPeer

        /// The code on the wire. Fixed forever: never renumber, only add.
        var wireCode: UInt8 {
            switch self {
            case .versionMismatch: 1
            case .cryptoSuiteMismatch: 2
            case .chainMismatch: 3
            case .genesisMismatch: 4
            case .unknownValidator: 5
            case .selfConnection: 6
            case .unexpectedValidator: 7
            case .wrongDirection: 8
            case .certificateNameMismatch: 9
            case .badSignature: 10
            case .malformedMessage: 11
            case .protocolViolation: 12
            case .timeout: 13
            case .tlsFailure: 14
            case .localFailure: 15
            case .refusedByPeer: 16
            }
        }
        init?(wireCode: UInt8) {
            guard let match = Self.allCases.first(where: { $0.wireCode == wireCode }) else { return nil }
            self = match
        }
    }

    public var code: Code
    /// A sentence that says what is wrong and what to check.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
