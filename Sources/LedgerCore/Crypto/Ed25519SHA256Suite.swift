@preconcurrency import Crypto
import Synchronization

/// Ed25519 (RFC 8032) signatures and SHA-256, from swift-crypto.
///
/// Parsing a public key can cost as much as a verification, so parsed keys are cached (bounded).
public final class Ed25519SHA256Suite: CryptoSuite {
    public let id = CryptoSuiteID.ed25519SHA256
    private let cache = Mutex<[[UInt8]: Curve25519.Signing.PublicKey]>([:])
    private static let cacheLimit = 200_000

    public init() {}

    public func hash(_ data: [UInt8]) -> Hash {
        let digest = SHA256.hash(data: data)
        return digest.withUnsafeBytes { Hash(bytes: $0)! }
    }

    public func privateKey(seed: [UInt8]) throws -> PrivateKey {
        guard seed.count == 32 else { throw CryptoError(.invalidKey, "an Ed25519 seed is 32 bytes, got \(seed.count)") }
        return PrivateKey(suite: id, rawRepresentation: seed)
    }

    public func signingKey(_ privateKey: PrivateKey) throws -> any SigningKey {
        guard privateKey.suite == id else {
            throw CryptoError(.wrongSuite, "the key is for \(privateKey.suite), this chain uses \(id)")
        }
        do {
            return Ed25519SigningKey(key: try Curve25519.Signing.PrivateKey(rawRepresentation: privateKey.rawRepresentation))
        } catch {
            throw CryptoError(.invalidKey, "not an Ed25519 private key: \(error)")
        }
    }

    public func isValidSignature(_ signature: Signature, for message: [UInt8], publicKey: PublicKey) -> Bool {
        guard publicKey.suite == id, signature.rawRepresentation.count == 64,
              let key = parsed(publicKey.rawRepresentation) else { return false }
        return key.isValidSignature(signature.rawRepresentation, for: message)
    }

    public func isValidPublicKey(_ key: PublicKey) -> Bool {
        key.suite == id && parsed(key.rawRepresentation) != nil
    }

    private func parsed(_ raw: [UInt8]) -> Curve25519.Signing.PublicKey? {
        if let key = cache.withLock({ $0[raw] }) { return key }
        guard raw.count == 32, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else { return nil }
        cache.withLock { cache in
            if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[raw] = key
        }
        return key
    }
}

struct Ed25519SigningKey: SigningKey {
    let key: Curve25519.Signing.PrivateKey
    var publicKey: PublicKey { PublicKey(suite: .ed25519SHA256, rawRepresentation: Array(key.publicKey.rawRepresentation)) }
    func signature(for message: [UInt8]) throws -> Signature {
        Signature(rawRepresentation: Array(try key.signature(for: message)))
    }
}
