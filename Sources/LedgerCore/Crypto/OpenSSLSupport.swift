import COpenSSL

// Small, owned wrappers around the system OpenSSL 3 (libcrypto) objects the SM2/SM3 suite keeps.
//
// Rules at this C boundary:
// - every object OpenSSL hands us is freed on every path, by the owning wrapper's `deinit` or by a
//   `defer` placed right after the allocation succeeds;
// - every failure is turned into a `CryptoError` carrying OpenSSL's own reason strings, and the
//   thread's error queue is left empty afterwards, so a stale error is never reported later;
// - OpenSSL 3.0 keeps some `const char *` arguments by pointer rather than copying them (the key
//   type of EVP_PKEY_CTX_new_from_name, encoder/decoder formats and structures, OSSL_PARAM_BLD
//   names and values). Swift's String-to-pointer bridging only lives for the call, so those
//   arguments are `StaticString`s here (static, NUL-terminated storage, see `cString`);
// - objects shared between threads (`OpenSSLKey`, `OpenSSLDigestAlgorithm`) are never mutated
//   after construction. OpenSSL 3 documents EVP_PKEY and fetched EVP_MD objects as safe for
//   concurrent use when nobody modifies them; every operation creates its own EVP_MD_CTX and
//   EVP_PKEY_CTX.

enum OpenSSL {
    /// Drains the calling thread's OpenSSL error queue into one string (oldest error first).
    static func drainErrors() -> String {
        var reasons: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            buffer.withUnsafeMutableBufferPointer { raw in
                ERR_error_string_n(code, raw.baseAddress, raw.count)
            }
            let text = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            reasons.append(text)
        }
        return reasons.isEmpty ? "OpenSSL gave no reason" : reasons.joined(separator: "; ")
    }

    /// A `CryptoError` for a failed OpenSSL call, with OpenSSL's reasons appended.
    static func error(_ code: CryptoError.Code = .library, _ what: String) -> CryptoError {
        CryptoError(code, "\(what) (OpenSSL: \(drainErrors()))")
    }

    /// Forgets queued errors after an expected failure (a bad signature is an answer, not an error).
    static func clearErrors() { ERR_clear_error() }
}

/// One EVP_PKEY, freed when the last reference goes.
///
/// `@unchecked Sendable`: the key is fully built before the wrapper is created and never mutated
/// afterwards; OpenSSL 3 allows concurrent sign/verify operations on an unmodified EVP_PKEY
/// (each operation takes its own reference through its own EVP_PKEY_CTX).
final class OpenSSLKey: @unchecked Sendable {
    let pointer: OpaquePointer

    /// Takes ownership of `pointer`.
    init(taking pointer: OpaquePointer) { self.pointer = pointer }

    deinit { EVP_PKEY_free(pointer) }
}

/// A fetched digest implementation (EVP_MD), fetched once and shared.
///
/// `@unchecked Sendable`: a fetched EVP_MD is immutable and reference counted atomically.
final class OpenSSLDigestAlgorithm: @unchecked Sendable {
    let pointer: OpaquePointer

    init(name: String) throws {
        guard let md = EVP_MD_fetch(nil, name, nil) else {
            throw OpenSSL.error(.unsupportedSuite, "the system OpenSSL has no \(name) digest")
        }
        pointer = md
    }

    deinit { EVP_MD_free(pointer) }
}

extension OpenSSLKey {
    /// Builds a key of `type` ("SM2") from OSSL_PARAMs, as EVP_PKEY_fromdata does.
    ///
    /// `push` adds the parameters to the builder. OSSL_PARAM_BLD keeps the *pointers* it is given
    /// (names and values) until OSSL_PARAM_BLD_to_param, which runs inside this function: so
    /// names must be `StaticString`s (`cString`), and value buffers must outlive this call
    /// (call `fromData` from inside the caller's `withUnsafeBufferPointer`).
    static func fromData(type: StaticString, selection: Int32, _ push: (OpaquePointer) -> Bool) throws -> OpenSSLKey {
        guard let builder = OSSL_PARAM_BLD_new() else { throw OpenSSL.error(.library, "OSSL_PARAM_BLD_new") }
        defer { OSSL_PARAM_BLD_free(builder) }
        guard push(builder) else { throw OpenSSL.error(.invalidKey, "could not build the \(type) key parameters") }
        guard let params = OSSL_PARAM_BLD_to_param(builder) else { throw OpenSSL.error(.library, "OSSL_PARAM_BLD_to_param") }
        // OpenSSL 3.0 has no OSSL_PARAM_clear_free; OSSL_PARAM_free clears the block that holds
        // values pushed from secure memory (see `makeKey`, which uses BN_secure_new).
        defer { OSSL_PARAM_free(params) }
        guard let context = EVP_PKEY_CTX_new_from_name(nil, type.cString, nil) else {
            throw OpenSSL.error(.unsupportedSuite, "the system OpenSSL has no \(type) key type")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_fromdata_init(context) == 1 else { throw OpenSSL.error(.library, "EVP_PKEY_fromdata_init(\(type))") }
        var key: OpaquePointer?
        guard EVP_PKEY_fromdata(context, &key, selection, params) == 1, let key else {
            throw OpenSSL.error(.invalidKey, "OpenSSL rejected the \(type) key")
        }
        return OpenSSLKey(taking: key)
    }

    /// Encodes the key with an OSSL_ENCODER: `format` "DER" or "PEM", `structure`
    /// "PrivateKeyInfo" (PKCS#8) or "SubjectPublicKeyInfo".
    func encoded(selection: Int32, format: StaticString, structure: StaticString) throws -> [UInt8] {
        guard let encoder = OSSL_ENCODER_CTX_new_for_pkey(pointer, selection, format.cString, structure.cString, nil) else {
            throw OpenSSL.error(.library, "OSSL_ENCODER_CTX_new_for_pkey(\(format), \(structure))")
        }
        defer { OSSL_ENCODER_CTX_free(encoder) }
        guard OSSL_ENCODER_CTX_get_num_encoders(encoder) > 0 else {
            throw OpenSSL.error(.library, "the system OpenSSL cannot write this key as \(format) \(structure)")
        }
        guard let bio = BIO_new(BIO_s_mem()) else { throw OpenSSL.error(.library, "BIO_new") }
        defer { BIO_free(bio) }
        guard OSSL_ENCODER_to_bio(encoder, bio) == 1 else {
            throw OpenSSL.error(.library, "writing the key as \(format) \(structure)")
        }
        return try readAll(bio)
    }

    /// Decodes a key from DER or PEM bytes with an OSSL_DECODER. `structure` as for `encoded`.
    static func decoded(_ bytes: [UInt8], selection: Int32, format: StaticString, structure: StaticString) throws -> OpenSSLKey {
        // The decoder context keeps the EVP_PKEY ** it is given and writes through it later, in
        // OSSL_DECODER_from_data, so the slot must have a stable address (an `&local` argument
        // is only valid for the one call).
        let slot = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: 1)
        slot.initialize(to: nil)
        defer { slot.deallocate() }
        guard let decoder = OSSL_DECODER_CTX_new_for_pkey(slot, format.cString, structure.cString, nil, selection, nil, nil) else {
            throw OpenSSL.error(.library, "OSSL_DECODER_CTX_new_for_pkey(\(format), \(structure))")
        }
        defer { OSSL_DECODER_CTX_free(decoder) }
        let ok = bytes.withUnsafeBufferPointer { buffer -> Bool in
            var data = buffer.baseAddress
            var length = buffer.count
            return OSSL_DECODER_from_data(decoder, &data, &length) == 1
        }
        guard ok, let key = slot.pointee else {
            if let key = slot.pointee { EVP_PKEY_free(key) }
            throw OpenSSL.error(.invalidKey, "not a \(format) \(structure) key")
        }
        return OpenSSLKey(taking: key)
    }

    /// The key's algorithm name as OpenSSL sees it ("SM2", "EC", ...).
    func isA(_ name: String) -> Bool { EVP_PKEY_is_a(pointer, name) == 1 }

    /// A UTF-8 string parameter of the key ("group" gives the curve name).
    func utf8Parameter(_ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 80)
        var length = 0
        let ok = buffer.withUnsafeMutableBufferPointer {
            EVP_PKEY_get_utf8_string_param(pointer, name, $0.baseAddress, $0.count, &length) == 1
        }
        guard ok else { OpenSSL.clearErrors(); return nil }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// An octet-string parameter of the key ("pub" gives the encoded public point).
    func octetParameter(_ name: String, capacity: Int = 160) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: capacity)
        var length = 0
        let ok = buffer.withUnsafeMutableBufferPointer {
            EVP_PKEY_get_octet_string_param(pointer, name, $0.baseAddress, $0.count, &length) == 1
        }
        guard ok else { OpenSSL.clearErrors(); return nil }
        return Array(buffer.prefix(length))
    }

    /// A big-number parameter of the key as `width` big-endian bytes ("priv" gives the scalar).
    func bigNumberParameter(_ name: String, width: Int) -> [UInt8]? {
        var number: OpaquePointer?
        guard EVP_PKEY_get_bn_param(pointer, name, &number) == 1, let number else {
            OpenSSL.clearErrors()
            return nil
        }
        defer { BN_clear_free(number) }
        var out = [UInt8](repeating: 0, count: width)
        let written = out.withUnsafeMutableBufferPointer { BN_bn2binpad(number, $0.baseAddress, Int32(width)) }
        return written == width ? out : nil
    }
}

/// Reads everything a memory BIO holds.
private func readAll(_ bio: OpaquePointer) throws -> [UInt8] {
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1024)
    while true {
        let count = chunk.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, Int32($0.count)) }
        if count <= 0 { break }
        out.append(contentsOf: chunk.prefix(Int(count)))
    }
    OpenSSL.clearErrors()
    guard !out.isEmpty else { throw CryptoError(.library, "OpenSSL wrote an empty key encoding") }
    return out
}

extension StaticString {
    /// The literal as a NUL-terminated C string in static storage: valid for the whole run, so it
    /// can be handed to OpenSSL APIs that keep the pointer (OSSL_PARAM_BLD, OSSL_PARAM).
    var cString: UnsafePointer<CChar> {
        precondition(hasPointerRepresentation, "a one-scalar StaticString has no C string storage")
        return UnsafeRawPointer(utf8Start).assumingMemoryBound(to: CChar.self)
    }
}
