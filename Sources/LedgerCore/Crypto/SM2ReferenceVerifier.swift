import COpenSSL

extension SM2CurveParameters {
    /// Textbook SM2 verification (GB/T 32918.2-2016, section 7.1, steps B1-B7) with plain
    /// EC_POINT arithmetic, on any prime curve.
    ///
    /// Not used on the ledger's path (`SM2SM3Suite.isValidSignature` goes through OpenSSL's SM2
    /// signature provider). Tests use it to check published examples on the IETF draft's example
    /// curve, which OpenSSL 3.0 will not load as an SM2 key (its SM2 key type accepts only the
    /// recommended curve), and to cross-check the provider against the formula.
    ///
    /// - Parameters:
    ///   - e: SM3(Z_A || M), big-endian.
    ///   - r, s: the signature's two integers, big-endian.
    ///   - publicPoint: 04 || X || Y.
    func referenceVerify(e: [UInt8], r: [UInt8], s: [UInt8], publicPoint: [UInt8]) throws -> Bool {
        try withGroup { group, context in
            var numbers: [OpaquePointer] = []
            defer { numbers.forEach { BN_free($0) } }
            func number(_ bytes: [UInt8]) throws -> OpaquePointer {
                guard let value = bytes.withUnsafeBufferPointer({ BN_bin2bn($0.baseAddress, Int32($0.count), nil) }) else {
                    throw OpenSSL.error(.library, "BN_bin2bn")
                }
                numbers.append(value)
                return value
            }
            func fresh() throws -> OpaquePointer {
                guard let value = BN_new() else { throw OpenSSL.error(.library, "BN_new") }
                numbers.append(value)
                return value
            }
            let order = try number(n), rValue = try number(r), sValue = try number(s), eValue = try number(e)
            // B1, B2: r and s in [1, n-1].
            for value in [rValue, sValue] where BN_is_zero(value) == 1 || BN_cmp(value, order) >= 0 {
                return false
            }
            // B5: t = (r + s) mod n, not 0.
            let t = try fresh()
            guard BN_mod_add(t, rValue, sValue, order, context) == 1 else { throw OpenSSL.error(.library, "BN_mod_add") }
            if BN_is_zero(t) == 1 { return false }
            // B6: (x1, y1) = [s]G + [t]P_A.
            guard let publicKey = EC_POINT_new(group), let sum = EC_POINT_new(group) else {
                throw OpenSSL.error(.library, "EC_POINT_new")
            }
            defer { EC_POINT_free(publicKey); EC_POINT_free(sum) }
            guard publicPoint.withUnsafeBufferPointer({ EC_POINT_oct2point(group, publicKey, $0.baseAddress, $0.count, context) }) == 1 else {
                throw OpenSSL.error(.invalidKey, "the public key is not a point on the curve")
            }
            guard EC_POINT_mul(group, sum, sValue, publicKey, t, context) == 1 else { throw OpenSSL.error(.library, "EC_POINT_mul") }
            if EC_POINT_is_at_infinity(group, sum) == 1 { return false }
            let x1 = try fresh()
            guard EC_POINT_get_affine_coordinates(group, sum, x1, nil, context) == 1 else {
                throw OpenSSL.error(.library, "EC_POINT_get_affine_coordinates")
            }
            // B7: R = (e + x1) mod n; valid when R = r.
            let expected = try fresh()
            guard BN_mod_add(expected, eValue, x1, order, context) == 1 else { throw OpenSSL.error(.library, "BN_mod_add") }
            return BN_cmp(expected, rValue) == 0
        }
    }
}
