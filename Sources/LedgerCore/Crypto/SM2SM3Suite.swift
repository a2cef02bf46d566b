import COpenSSL
import Synchronization

/// SM2 signatures (GB/T 32918) with SM3 hashing (GB/T 32905): the Chinese national suite, on
/// the system OpenSSL 3 (libcrypto from Debian's libssl-dev).
///
/// Formats, chosen for interoperability with OpenSSL, GmSSL and the GM/T 0009 / 0010 profiles:
/// - `PublicKey.rawRepresentation`: the 65-byte uncompressed point `04 || X || Y` on the SM2
///   recommended curve (GB/T 32918.5). Compressed points are accepted on import and normalized.
/// - `PrivateKey.rawRepresentation`: the private scalar d as 32 big-endian bytes, 1 ≤ d ≤ n−2
///   (SM2 signing needs 1 + d to be invertible mod n, hence n−2 rather than n−1).
/// - `Signature.rawRepresentation`: DER `SEQUENCE { r INTEGER, s INTEGER }` (ECDSA-Sig-Value,
///   at most 72 bytes), exactly what `openssl pkeyutl -sign` and `openssl dgst -sign` write and
///   GM/T 0009 specifies. We keep DER rather than a fixed 64-byte `r || s` so that signatures
///   pass to and from the `openssl` tool, HSMs and other SDKs untouched. OpenSSL re-encodes the
///   parsed (r, s) on verify and rejects anything that is not the one DER encoding, so a
///   signature cannot be re-encoded into a second valid form.
/// - Key files: PKCS#8 `PrivateKeyInfo` and X.509 `SubjectPublicKeyInfo`, as DER or PEM
///   (`-----BEGIN PRIVATE KEY-----` / `-----BEGIN PUBLIC KEY-----`), the forms `openssl genpkey
///   -algorithm SM2` and `openssl pkey -pubout` write.
///
/// What is signed: SM2 signs e = SM3(Z_A || M), where Z_A = SM3(ENTL_A || ID_A || a || b || x_G ||
/// y_G || x_A || y_A) binds the signer's distinguishing identifier ID_A (ENTL_A is its length in
/// bits, two bytes big-endian) and public key. OpenSSL computes Z_A itself once we hand it the ID
/// (EVP_PKEY_CTX_set1_id, the "distid" parameter); `zValue(for:)` computes the same value in
/// Swift so tests can compare it with the published examples. The ID is chain-wide: the
/// standard's default "1234567812345678" (GM/T 0009) unless genesis names another, so a
/// signature made for one consortium's ID does not verify under another's.
///
/// Thread safety: the suite is immutable apart from the public-key cache behind a `Mutex`.
/// Parsed keys (EVP_PKEY) are shared read-only; each sign or verify creates and frees its own
/// EVP_MD_CTX and EVP_PKEY_CTX.
public final class SM2SM3Suite: CryptoSuite {
    public let id = CryptoSuiteID.sm2SM3

    /// The default distinguishing identifier of GM/T 0009 and GB/T 35276: "1234567812345678".
    public static let defaultDistinguishingID = "1234567812345678"
    /// ENTL_A is a 16-bit count of bits, so the standard allows up to 8191 bytes; OpenSSL 3.0
    /// refuses IDs of UINT16_MAX / 8 = 8191 bytes or more (SM2_R_ID_TOO_LARGE), so 8190.
    public static let maxDistinguishingIDBytes = 8190
    /// The longest DER ECDSA-Sig-Value for a 256-bit order: 2 + 2 × (2 + 33).
    static let maxSignatureBytes = 72

    /// The distinguishing identifier (UTF-8) every signature of this chain is bound to.
    public let distinguishingID: [UInt8]

    let sm3: OpenSSLDigestAlgorithm
    private let cache = Mutex<[[UInt8]: OpenSSLKey]>([:])
    private static let cacheLimit = 100_000

    /// - Parameter distinguishingID: the chain's SM2 ID from genesis; nil means
    ///   `defaultDistinguishingID`.
    public init(distinguishingID: String? = nil) throws {
        let idBytes = Array((distinguishingID ?? Self.defaultDistinguishingID).utf8)
        guard (1...Self.maxDistinguishingIDBytes).contains(idBytes.count) else {
            throw CryptoError(.invalidKey, "the SM2 distinguishing ID must be 1 to \(Self.maxDistinguishingIDBytes) bytes of UTF-8, got \(idBytes.count); fix sm2DistinguishingID in genesis or leave it out for the default")
        }
        self.distinguishingID = idBytes
        sm3 = try OpenSSLDigestAlgorithm(name: "SM3")
        // Fail now, with a sentence, if this OpenSSL was built without SM2.
        guard let signature = EVP_SIGNATURE_fetch(nil, "SM2", nil) else {
            throw OpenSSL.error(.unsupportedSuite, "the system OpenSSL has no SM2 signatures; install an OpenSSL 3 built with SM2 (Debian's libssl3 is)")
        }
        EVP_SIGNATURE_free(signature)
    }

    /// The distinguishing identifier as text (IDs from genesis are always UTF-8).
    public var distinguishingIDString: String { String(decoding: distinguishingID, as: UTF8.self) }

    // MARK: Hashing

    /// SM3 of `data` (GB/T 32905).
    public func hash(_ data: [UInt8]) -> Hash {
        var digest = [UInt8](repeating: 0, count: Hash.byteCount)
        var length: UInt32 = 0
        let ok = data.withUnsafeBytes { input in
            digest.withUnsafeMutableBufferPointer { output in
                EVP_Digest(input.baseAddress, input.count, output.baseAddress, &length, sm3.pointer, nil)
            }
        }
        // SM3 was fetched in init; a failure here means the process is out of memory or the
        // library is broken, not that the input was bad. There is no sensible hash to return.
        guard ok == 1, length == UInt32(Hash.byteCount), let hash = Hash(bytes: digest) else {
            fatalError("SM3 failed inside OpenSSL: \(OpenSSL.drainErrors())")
        }
        return hash
    }

    /// Z_A for `publicKey` under this suite's distinguishing ID, as GB/T 32918.2 defines it.
    public func zValue(for publicKey: PublicKey) throws -> Hash {
        guard publicKey.suite == id else {
            throw CryptoError(.wrongSuite, "the key is for \(publicKey.suite), this chain uses \(id)")
        }
        guard isValidPublicKey(publicKey) else { throw CryptoError(.invalidKey, "not an SM2 public key (expected 65 bytes 04||X||Y on the SM2 curve)") }
        return zValue(distinguishingID: distinguishingID, publicPoint: publicKey.rawRepresentation, curve: .recommended)
    }

    /// Z = SM3(ENTL || ID || a || b || x_G || y_G || x_A || y_A) on any curve (tests use the
    /// example curve of the IETF draft). `publicPoint` is 04 || X || Y.
    func zValue(distinguishingID: [UInt8], publicPoint: [UInt8], curve: SM2CurveParameters) -> Hash {
        precondition(publicPoint.count == 1 + 2 * curve.byteCount && publicPoint[0] == 4, "zValue needs an uncompressed point")
        let bits = distinguishingID.count * 8
        var input: [UInt8] = [UInt8(truncatingIfNeeded: bits >> 8), UInt8(truncatingIfNeeded: bits)]
        input += distinguishingID
        input += curve.a
        input += curve.b
        input += curve.gx
        input += curve.gy
        input += publicPoint.dropFirst()
        return hash(input)
    }

    // MARK: Keys

    /// A private key derived deterministically from 32 bytes of secret seed.
    ///
    /// How: the seed is expanded to 512 bits, T = SM3("SCF-LEDGER SM2 private key" || 0x01 ||
    /// seed) || SM3("SCF-LEDGER SM2 private key" || 0x02 || seed), and reduced into the valid
    /// range: d = (T mod (n − 2)) + 1, so 1 ≤ d ≤ n − 2. Reducing 512 bits (rather than the
    /// 256-bit seed itself) keeps the bias below 2^-250, as FIPS 186-5 A.2.1 does with its 64
    /// extra bits. The same seed always gives the same key; the caller supplies the randomness.
    public func privateKey(seed: [UInt8]) throws -> PrivateKey {
        guard seed.count == 32 else { throw CryptoError(.invalidKey, "an SM2 seed is 32 bytes, got \(seed.count)") }
        let tag = Array("SCF-LEDGER SM2 private key".utf8)
        var wide = hash(tag + [1] + seed).bytes + hash(tag + [2] + seed).bytes
        defer { wide.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
        let scalar = try SM2CurveParameters.recommended.reduceToPrivateScalar(wide)
        return PrivateKey(suite: id, rawRepresentation: scalar)
    }

    /// A fresh random private key from OpenSSL's SM2 key generation (its DRBG).
    public func generatePrivateKey() throws -> PrivateKey {
        guard let context = EVP_PKEY_CTX_new_from_name(nil, ("SM2" as StaticString).cString, nil) else {
            throw OpenSSL.error(.unsupportedSuite, "the system OpenSSL has no SM2 key generation")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1 else { throw OpenSSL.error(.library, "EVP_PKEY_keygen_init(SM2)") }
        for _ in 0..<8 {
            var generated: OpaquePointer?
            guard EVP_PKEY_generate(context, &generated) == 1, let generated else {
                throw OpenSSL.error(.library, "EVP_PKEY_generate(SM2)")
            }
            let key = OpenSSLKey(taking: generated)
            guard let scalar = key.bigNumberParameter("priv", width: 32) else {
                throw OpenSSL.error(.library, "reading the generated SM2 private key")
            }
            // OpenSSL 3 draws d from [1, n-2] for SM2; check rather than assume.
            if SM2CurveParameters.recommended.isValidPrivateScalar(scalar) {
                return PrivateKey(suite: id, rawRepresentation: scalar)
            }
        }
        throw CryptoError(.library, "OpenSSL kept generating SM2 scalars outside [1, n-2]")
    }

    public func signingKey(_ privateKey: PrivateKey) throws -> any SigningKey {
        try sm2SigningKey(privateKey)
    }

    /// The SM2 signing key for `privateKey`, with its public key derived (d·G).
    public func sm2SigningKey(_ privateKey: PrivateKey) throws -> SM2SigningKey {
        guard privateKey.suite == id else {
            throw CryptoError(.wrongSuite, "the key is for \(privateKey.suite), this chain uses \(id)")
        }
        let scalar = privateKey.rawRepresentation
        guard SM2CurveParameters.recommended.isValidPrivateScalar(scalar) else {
            throw CryptoError(.invalidKey, "not an SM2 private key: expected 32 big-endian bytes d with 1 <= d <= n-2")
        }
        let point = try SM2CurveParameters.recommended.publicPoint(forScalar: scalar)
        let key = try Self.makeKey(publicPoint: point, privateScalar: scalar)
        return SM2SigningKey(key: key, publicKey: PublicKey(suite: id, rawRepresentation: point),
                             distinguishingID: distinguishingID, sm3: sm3)
    }

    /// The public key belonging to `privateKey`.
    public func publicKey(for privateKey: PrivateKey) throws -> PublicKey {
        try sm2SigningKey(privateKey).publicKey
    }

    public func isValidPublicKey(_ key: PublicKey) -> Bool {
        key.suite == id && parsedPublicKey(key.rawRepresentation) != nil
    }

    // MARK: Verification

    public func isValidSignature(_ signature: Signature, for message: [UInt8], publicKey: PublicKey) -> Bool {
        let der = signature.rawRepresentation
        guard publicKey.suite == id, (8...Self.maxSignatureBytes).contains(der.count), der[0] == 0x30,
              let key = parsedPublicKey(publicKey.rawRepresentation) else { return false }
        do {
            return try Self.withSignatureContext(key: key, distinguishingID: distinguishingID, sm3: sm3, signing: false) { context in
                let result = der.withUnsafeBufferPointer { sig in
                    message.withUnsafeBufferPointer { msg in
                        EVP_DigestVerify(context, sig.baseAddress, sig.count, msg.baseAddress, msg.count)
                    }
                }
                // 0 is "does not verify", below 0 a malformed signature: both are a plain "no".
                if result != 1 { OpenSSL.clearErrors() }
                return result == 1
            }
        } catch {
            return false
        }
    }

    /// Parses (once) and caches a public key. Parsing costs about as much as a verification.
    private func parsedPublicKey(_ raw: [UInt8]) -> OpenSSLKey? {
        if let key = cache.withLock({ $0[raw] }) { return key }
        guard raw.count == 65, raw[0] == 4,
              let key = try? Self.makeKey(publicPoint: raw, privateScalar: nil) else {
            OpenSSL.clearErrors()
            return nil
        }
        cache.withLock { cache in
            if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[raw] = key
        }
        return key
    }

    // MARK: Key files (PKCS#8, SubjectPublicKeyInfo)

    /// PKCS#8 PrivateKeyInfo, DER.
    public func derRepresentation(of privateKey: PrivateKey) throws -> [UInt8] {
        try sm2SigningKey(privateKey).key.encoded(selection: scf_evp_pkey_selection_keypair(), format: "DER", structure: "PrivateKeyInfo")
    }

    /// PKCS#8 PrivateKeyInfo, PEM (`-----BEGIN PRIVATE KEY-----`).
    public func pemRepresentation(of privateKey: PrivateKey) throws -> String {
        let pem = try sm2SigningKey(privateKey).key.encoded(selection: scf_evp_pkey_selection_keypair(), format: "PEM", structure: "PrivateKeyInfo")
        return String(decoding: pem, as: UTF8.self)
    }

    /// SubjectPublicKeyInfo (id-ecPublicKey, curve SM2), DER.
    public func derRepresentation(of publicKey: PublicKey) throws -> [UInt8] {
        try publicKeyObject(publicKey).encoded(selection: scf_evp_pkey_selection_public_key(), format: "DER", structure: "SubjectPublicKeyInfo")
    }

    /// SubjectPublicKeyInfo, PEM (`-----BEGIN PUBLIC KEY-----`).
    public func pemRepresentation(of publicKey: PublicKey) throws -> String {
        let pem = try publicKeyObject(publicKey).encoded(selection: scf_evp_pkey_selection_public_key(), format: "PEM", structure: "SubjectPublicKeyInfo")
        return String(decoding: pem, as: UTF8.self)
    }

    /// Reads a PKCS#8 PrivateKeyInfo (DER). Encrypted keys are refused, never prompted for.
    public func privateKey(derRepresentation der: [UInt8]) throws -> PrivateKey {
        try importPrivateKey(der, format: "DER")
    }

    /// Reads a PEM `PRIVATE KEY` (PKCS#8), as `openssl genpkey -algorithm SM2` writes.
    public func privateKey(pemRepresentation pem: String) throws -> PrivateKey {
        try importPrivateKey(Array(pem.utf8), format: "PEM")
    }

    /// Reads a SubjectPublicKeyInfo (DER).
    public func publicKey(derRepresentation der: [UInt8]) throws -> PublicKey {
        try importPublicKey(der, format: "DER")
    }

    /// Reads a PEM `PUBLIC KEY`, as `openssl pkey -pubout` writes.
    public func publicKey(pemRepresentation pem: String) throws -> PublicKey {
        try importPublicKey(Array(pem.utf8), format: "PEM")
    }

    private func publicKeyObject(_ publicKey: PublicKey) throws -> OpenSSLKey {
        guard publicKey.suite == id else {
            throw CryptoError(.wrongSuite, "the key is for \(publicKey.suite), this chain uses \(id)")
        }
        guard let key = parsedPublicKey(publicKey.rawRepresentation) else {
            throw CryptoError(.invalidKey, "not an SM2 public key (expected 65 bytes 04||X||Y on the SM2 curve)")
        }
        return key
    }

    private func importPrivateKey(_ bytes: [UInt8], format: StaticString) throws -> PrivateKey {
        let decoded = try OpenSSLKey.decoded(bytes, selection: scf_evp_pkey_selection_keypair(), format: format, structure: "PrivateKeyInfo")
        try Self.requireSM2(decoded)
        guard let scalar = decoded.bigNumberParameter("priv", width: 32) else {
            throw OpenSSL.error(.invalidKey, "the \(format) key holds no SM2 private scalar")
        }
        let privateKey = PrivateKey(suite: id, rawRepresentation: scalar)
        let derived = try sm2SigningKey(privateKey).publicKey.rawRepresentation
        // A PKCS#8 file may carry the public key too; it must be the one d gives.
        if let stored = decoded.octetParameter("pub"), !stored.isEmpty,
           try SM2CurveParameters.recommended.uncompressed(stored) != derived {
            throw CryptoError(.invalidKey, "the \(format) private key file carries a public key that does not belong to its private key")
        }
        return privateKey
    }

    private func importPublicKey(_ bytes: [UInt8], format: StaticString) throws -> PublicKey {
        let decoded = try OpenSSLKey.decoded(bytes, selection: scf_evp_pkey_selection_public_key(), format: format, structure: "SubjectPublicKeyInfo")
        try Self.requireSM2(decoded)
        guard let encoded = decoded.octetParameter("pub") else {
            throw OpenSSL.error(.invalidKey, "the \(format) key holds no public point")
        }
        let key = PublicKey(suite: id, rawRepresentation: try SM2CurveParameters.recommended.uncompressed(encoded))
        guard isValidPublicKey(key) else { throw CryptoError(.invalidKey, "the \(format) public key is not a point on the SM2 curve") }
        return key
    }

    /// OpenSSL 3 decodes a key on the SM2 curve as type "SM2"; accept an "EC" key on the SM2
    /// curve too (other decoders label it so), and nothing else.
    private static func requireSM2(_ key: OpenSSLKey) throws {
        guard key.isA("SM2") || (key.isA("EC") && key.utf8Parameter("group") == "SM2") else {
            let curve = key.utf8Parameter("group").map { " on curve \($0)" } ?? ""
            throw CryptoError(.invalidKey, "the key is not an SM2 key\(curve); this chain uses SM2 on the GB/T 32918.5 curve")
        }
    }

    // MARK: OpenSSL plumbing

    /// An SM2 EVP_PKEY from a validated uncompressed point and, for signing, the scalar.
    static func makeKey(publicPoint: [UInt8], privateScalar: [UInt8]?) throws -> OpenSSLKey {
        var number: OpaquePointer?
        defer { if let number { BN_clear_free(number) } }
        if let privateScalar {
            // A secure-heap BIGNUM when the process has a secure heap, so OSSL_PARAM_BLD puts the
            // scalar in the block OSSL_PARAM_free clears (plain heap otherwise); the deferred
            // BN_clear_free wipes this copy either way.
            guard let secure = BN_secure_new() else { throw OpenSSL.error(.library, "BN_secure_new") }
            number = secure
            guard privateScalar.withUnsafeBufferPointer({ BN_bin2bn($0.baseAddress, Int32($0.count), secure) }) != nil else {
                throw OpenSSL.error(.library, "BN_bin2bn")
            }
        }
        let selection = privateScalar == nil ? scf_evp_pkey_selection_public_key() : scf_evp_pkey_selection_keypair()
        return try publicPoint.withUnsafeBufferPointer { point in
            // `point` and `number` stay alive until fromData returns, as OSSL_PARAM_BLD requires.
            try OpenSSLKey.fromData(type: "SM2", selection: selection) { builder in
                guard OSSL_PARAM_BLD_push_utf8_string(builder, ("group" as StaticString).cString, ("SM2" as StaticString).cString, 0) == 1,
                      OSSL_PARAM_BLD_push_octet_string(builder, ("pub" as StaticString).cString, point.baseAddress, point.count) == 1
                else { return false }
                if let number {
                    return OSSL_PARAM_BLD_push_BN(builder, ("priv" as StaticString).cString, number) == 1
                }
                return true
            }
        }
    }

    /// Runs `body` with a digest-sign or digest-verify context for SM2 with SM3 and the given
    /// distinguishing ID, and frees both contexts afterwards (as the SM2(7) manual page does it:
    /// the ID goes on the EVP_PKEY_CTX before the EVP_MD_CTX is initialized, so Z_A uses it).
    static func withSignatureContext<T>(key: OpenSSLKey, distinguishingID: [UInt8], sm3: OpenSSLDigestAlgorithm,
                                        signing: Bool, _ body: (OpaquePointer) throws -> T) throws -> T {
        guard let keyContext = EVP_PKEY_CTX_new_from_pkey(nil, key.pointer, nil) else {
            throw OpenSSL.error(.library, "EVP_PKEY_CTX_new_from_pkey(SM2)")
        }
        // The EVP_MD_CTX does not own a context given to it with EVP_MD_CTX_set_pkey_ctx, so it
        // is freed here, after the EVP_MD_CTX (defers run last-in, first-out).
        defer { EVP_PKEY_CTX_free(keyContext) }
        let idSet = distinguishingID.withUnsafeBytes { EVP_PKEY_CTX_set1_id(keyContext, $0.baseAddress, Int32($0.count)) }
        guard idSet == 1 else { throw OpenSSL.error(.library, "EVP_PKEY_CTX_set1_id (the SM2 distinguishing ID)") }
        guard let digestContext = EVP_MD_CTX_new() else { throw OpenSSL.error(.library, "EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(digestContext) }
        EVP_MD_CTX_set_pkey_ctx(digestContext, keyContext)
        let initialized = signing
            ? EVP_DigestSignInit(digestContext, nil, sm3.pointer, nil, key.pointer)
            : EVP_DigestVerifyInit(digestContext, nil, sm3.pointer, nil, key.pointer)
        guard initialized == 1 else {
            throw OpenSSL.error(.library, signing ? "EVP_DigestSignInit(SM2, SM3)" : "EVP_DigestVerifyInit(SM2, SM3)")
        }
        return try body(digestContext)
    }
}

/// A parsed SM2 private key, ready to sign many messages (from any thread).
public struct SM2SigningKey: SigningKey {
    let key: OpenSSLKey
    public let publicKey: PublicKey
    let distinguishingID: [UInt8]
    let sm3: OpenSSLDigestAlgorithm

    /// A DER-encoded SM2 signature over SM3(Z_A || message). SM2 signatures are randomized
    /// (OpenSSL draws k from its DRBG), so two signatures of one message differ.
    public func signature(for message: [UInt8]) throws -> Signature {
        try SM2SM3Suite.withSignatureContext(key: key, distinguishingID: distinguishingID, sm3: sm3, signing: true) { context in
            var der = [UInt8](repeating: 0, count: SM2SM3Suite.maxSignatureBytes + 8)
            var length = der.count
            let result = der.withUnsafeMutableBufferPointer { sig in
                message.withUnsafeBufferPointer { msg in
                    EVP_DigestSign(context, sig.baseAddress, &length, msg.baseAddress, msg.count)
                }
            }
            guard result == 1, length > 0, length <= SM2SM3Suite.maxSignatureBytes else {
                throw OpenSSL.error(.signingFailed, "SM2 signing")
            }
            return Signature(rawRepresentation: Array(der.prefix(length)))
        }
    }
}

/// The domain parameters of an SM2 curve (big-endian, `byteCount` bytes each).
struct SM2CurveParameters: Sendable {
    var p: [UInt8], a: [UInt8], b: [UInt8], n: [UInt8], gx: [UInt8], gy: [UInt8]
    var byteCount: Int { p.count }

    /// The recommended 256-bit curve of GB/T 32918.5-2017 (OpenSSL's "SM2", OID 1.2.156.10197.1.301).
    static let recommended = SM2CurveParameters(
        p: [UInt8](hex: "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF")!,
        a: [UInt8](hex: "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC")!,
        b: [UInt8](hex: "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93")!,
        n: [UInt8](hex: "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123")!,
        gx: [UInt8](hex: "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7")!,
        gy: [UInt8](hex: "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0")!)

    /// Whether `scalar` is 32 bytes with 1 <= d <= n-2 (big-endian comparison).
    func isValidPrivateScalar(_ scalar: [UInt8]) -> Bool {
        guard scalar.count == n.count, scalar.contains(where: { $0 != 0 }) else { return false }
        var nMinus1 = n
        nMinus1[nMinus1.count - 1] -= 1 // n is odd, so no borrow
        return scalar.lexicographicallyPrecedes(nMinus1)
    }

    /// d = (value mod (n-2)) + 1, as `byteCount` big-endian bytes.
    func reduceToPrivateScalar(_ value: [UInt8]) throws -> [UInt8] {
        guard let context = BN_CTX_new() else { throw OpenSSL.error(.library, "BN_CTX_new") }
        defer { BN_CTX_free(context) }
        guard let wide = value.withUnsafeBufferPointer({ BN_bin2bn($0.baseAddress, Int32($0.count), nil) }) else {
            throw OpenSSL.error(.library, "BN_bin2bn")
        }
        defer { BN_clear_free(wide) }
        guard let modulus = n.withUnsafeBufferPointer({ BN_bin2bn($0.baseAddress, Int32($0.count), nil) }) else {
            throw OpenSSL.error(.library, "BN_bin2bn")
        }
        defer { BN_free(modulus) }
        guard let scalar = BN_new() else { throw OpenSSL.error(.library, "BN_new") }
        defer { BN_clear_free(scalar) }
        var out = [UInt8](repeating: 0, count: byteCount)
        guard BN_sub_word(modulus, 2) == 1,
              BN_nnmod(scalar, wide, modulus, context) == 1,
              BN_add_word(scalar, 1) == 1,
              out.withUnsafeMutableBufferPointer({ BN_bn2binpad(scalar, $0.baseAddress, Int32($0.count)) }) == Int32(byteCount)
        else { throw OpenSSL.error(.library, "reducing the seed to an SM2 scalar") }
        return out
    }

    /// Runs `body` with this curve as an EC_GROUP (the named SM2 group for `recommended`).
    func withGroup<T>(_ body: (OpaquePointer, OpaquePointer) throws -> T) throws -> T {
        guard let context = BN_CTX_new() else { throw OpenSSL.error(.library, "BN_CTX_new") }
        defer { BN_CTX_free(context) }
        let group: OpaquePointer
        if p == Self.recommended.p && a == Self.recommended.a && b == Self.recommended.b && gx == Self.recommended.gx {
            guard let named = EC_GROUP_new_by_curve_name(NID_sm2) else { throw OpenSSL.error(.unsupportedSuite, "the system OpenSSL has no SM2 curve") }
            group = named
        } else {
            group = try explicitGroup(context)
        }
        defer { EC_GROUP_free(group) }
        return try body(group, context)
    }

    private func explicitGroup(_ context: OpaquePointer) throws -> OpaquePointer {
        var numbers: [OpaquePointer] = []
        defer { numbers.forEach { BN_free($0) } }
        for bytes in [p, a, b, n, [1]] {
            guard let number = bytes.withUnsafeBufferPointer({ BN_bin2bn($0.baseAddress, Int32($0.count), nil) }) else {
                throw OpenSSL.error(.library, "BN_bin2bn")
            }
            numbers.append(number)
        }
        guard let group = EC_GROUP_new_curve_GFp(numbers[0], numbers[1], numbers[2], context) else {
            throw OpenSSL.error(.invalidKey, "EC_GROUP_new_curve_GFp")
        }
        var ok = false
        defer { if !ok { EC_GROUP_free(group) } }
        guard let generator = EC_POINT_new(group) else { throw OpenSSL.error(.library, "EC_POINT_new") }
        defer { EC_POINT_free(generator) }
        let encoded = [4] + gx + gy
        guard encoded.withUnsafeBufferPointer({ EC_POINT_oct2point(group, generator, $0.baseAddress, $0.count, context) }) == 1,
              EC_GROUP_set_generator(group, generator, numbers[3], numbers[4]) == 1 else {
            throw OpenSSL.error(.invalidKey, "setting the curve's generator")
        }
        ok = true
        return group
    }

    /// d·G as 04 || X || Y.
    func publicPoint(forScalar scalar: [UInt8]) throws -> [UInt8] {
        try withGroup { group, context in
            guard let number = scalar.withUnsafeBufferPointer({ BN_bin2bn($0.baseAddress, Int32($0.count), nil) }) else {
                throw OpenSSL.error(.library, "BN_bin2bn")
            }
            defer { BN_clear_free(number) }
            guard let point = EC_POINT_new(group) else { throw OpenSSL.error(.library, "EC_POINT_new") }
            defer { EC_POINT_free(point) }
            guard EC_POINT_mul(group, point, number, nil, nil, context) == 1 else {
                throw OpenSSL.error(.library, "EC_POINT_mul (deriving the SM2 public key)")
            }
            return try encodeUncompressed(group, point, context)
        }
    }

    /// Any SEC1 encoding of a point (compressed, uncompressed, hybrid) as 04 || X || Y, after
    /// checking the point is on the curve.
    func uncompressed(_ encoded: [UInt8]) throws -> [UInt8] {
        try withGroup { group, context in
            guard let point = EC_POINT_new(group) else { throw OpenSSL.error(.library, "EC_POINT_new") }
            defer { EC_POINT_free(point) }
            guard encoded.withUnsafeBufferPointer({ EC_POINT_oct2point(group, point, $0.baseAddress, $0.count, context) }) == 1 else {
                throw OpenSSL.error(.invalidKey, "the public key is not a point on the SM2 curve")
            }
            return try encodeUncompressed(group, point, context)
        }
    }

    private func encodeUncompressed(_ group: OpaquePointer, _ point: OpaquePointer, _ context: OpaquePointer) throws -> [UInt8] {
        guard EC_POINT_is_at_infinity(group, point) == 0 else { throw CryptoError(.invalidKey, "the point at infinity is not a public key") }
        var out = [UInt8](repeating: 0, count: 1 + 2 * byteCount)
        let written = out.withUnsafeMutableBufferPointer {
            EC_POINT_point2oct(group, point, POINT_CONVERSION_UNCOMPRESSED, $0.baseAddress, $0.count, context)
        }
        guard written == out.count else { throw OpenSSL.error(.library, "EC_POINT_point2oct") }
        return out
    }
}
