import LedgerCore
import Synchronization

/// An ideal-signature stand-in for the simulator: SHA-256 hashing as in the default suite, and a
/// "signature" that is a keyed hash only the holder of the secret can make. Verification looks the
/// secret up by public key in a table filled when keys are made, which is what an ideal signature
/// scheme promises (no one can sign for a key it does not hold) at a fraction of Ed25519's cost,
/// so thousands of seeds run in a debug build. Never use outside simulations.
///
/// It reports the `ed25519-sha256` id so genesis and keys look like the default suite's.
public final class SimulationSuite: CryptoSuite {
    public let id = CryptoSuiteID.ed25519SHA256
    private let hasher = Ed25519SHA256Suite()
    private let secrets = Mutex<[[UInt8]: [UInt8]]>([:])

    public init() {}

    public func hash(_ data: [UInt8]) -> Hash { hasher.hash(data) }

    public func privateKey(seed: [UInt8]) throws -> PrivateKey {
        guard seed.count == 32 else { throw CryptoError(.invalidKey, "a simulation seed is 32 bytes, got \(seed.count)") }
        return PrivateKey(suite: id, rawRepresentation: seed)
    }

    public func signingKey(_ privateKey: PrivateKey) throws -> any SigningKey {
        let publicRaw = hasher.hash(Array("sim-public/".utf8) + privateKey.rawRepresentation).bytes
        secrets.withLock { $0[publicRaw] = privateKey.rawRepresentation }
        return SimulationKey(secret: privateKey.rawRepresentation, publicKey: PublicKey(suite: id, rawRepresentation: publicRaw),
                             hasher: hasher)
    }

    public func isValidSignature(_ signature: Signature, for message: [UInt8], publicKey: PublicKey) -> Bool {
        guard publicKey.suite == id, signature.rawRepresentation.count == 32,
              let secret = secrets.withLock({ $0[publicKey.rawRepresentation] }) else { return false }
        return hasher.hash(secret + message).bytes == signature.rawRepresentation
    }

    public func isValidPublicKey(_ key: PublicKey) -> Bool {
        key.suite == id && secrets.withLock { $0[key.rawRepresentation] != nil }
    }
}

struct SimulationKey: SigningKey {
    let secret: [UInt8]
    let publicKey: PublicKey
    let hasher: Ed25519SHA256Suite
    func signature(for message: [UInt8]) throws -> Signature {
        Signature(rawRepresentation: hasher.hash(secret + message).bytes)
    }
}
