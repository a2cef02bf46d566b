import Foundation
import Synchronization
import Testing
@testable import LedgerCore

/// The SM2/SM3 suite: published vectors, interop with the `openssl` tool, round trips, misuse.
@Suite struct SM2SM3Tests {
    static let standardID = "1234567812345678"

    // MARK: Published vectors

    @Test func sm3MatchesGBT32905Examples() throws {
        let suite = try SM2SM3Suite()
        let blocks = try SM2VectorFile.blocks(named: "sm3-gbt32905")
        #expect(blocks.count == 2)
        for block in blocks {
            let message = try #require([UInt8](hex: try block.value("Msg")))
            #expect(suite.hash(message).hex == (try block.value("Digest")).lowercased(), "\(block.source)")
        }
    }

    @Test func sm3OfEmptyInputAndThroughTheFactory() throws {
        let suite = try CryptoSuites.make(.sm2SM3)
        #expect(suite.id == .sm2SM3)
        // Not a published vector here: only checks the empty input takes the same path as others.
        #expect(suite.hash([]) == suite.hash(Array<UInt8>()))
        #expect(suite.hash(Array("abc".utf8)).hex == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
    }

    @Test func annexAExampleOnTheRecommendedCurve() throws {
        let vector = try #require(try SM2VectorFile.blocks(named: "sm2-gbt32918-annexA").first)
        let suite = try SM2SM3Suite(distinguishingID: try vector.value("ID"))
        let message = Array(try vector.value("Msg").utf8)

        // The published private key gives the published public key.
        let privateKey = PrivateKey(suite: .sm2SM3, rawRepresentation: try vector.bytes("PrivateKey"))
        let publicKey = try suite.publicKey(for: privateKey)
        let expectedPoint = [4] + (try vector.bytes("PublicKeyX")) + (try vector.bytes("PublicKeyY"))
        #expect(publicKey.rawRepresentation == expectedPoint)

        // Z_A and e = SM3(Z_A || M) as the standard prints them.
        let z = try suite.zValue(for: publicKey)
        #expect(z.bytes == (try vector.bytes("ZA")))
        #expect(suite.hash(z.bytes + message).bytes == (try vector.bytes("E")))

        // The published (r, s), DER-encoded, verifies through OpenSSL's SM2 provider...
        let r = try vector.bytes("R"), s = try vector.bytes("S")
        let signature = Signature(rawRepresentation: SM2DER.ecdsaSignature(r: r, s: s))
        #expect(suite.isValidSignature(signature, for: message, publicKey: publicKey))
        // ...and through the textbook formula.
        #expect(try SM2CurveParameters.recommended.referenceVerify(e: try vector.bytes("E"), r: r, s: s, publicPoint: expectedPoint))

        // It is bound to the message, the key and the ID.
        #expect(!suite.isValidSignature(signature, for: message + [0], publicKey: publicKey))
        let otherKey = try suite.publicKey(for: try suite.privateKey(seed: Array(repeating: 7, count: 32)))
        #expect(!suite.isValidSignature(signature, for: message, publicKey: otherKey))
        let otherID = try SM2SM3Suite(distinguishingID: "ALICE123@YAHOO.COM")
        #expect(!otherID.isValidSignature(signature, for: message, publicKey: publicKey))
    }

    @Test func draftShenExampleOnTheExampleCurve() throws {
        let vector = try #require(try SM2VectorFile.blocks(named: "sm2-draft-shen-example").first)
        let curve = SM2CurveParameters(p: try vector.bytes("P"), a: try vector.bytes("A"), b: try vector.bytes("B"),
                                       n: try vector.bytes("N"), gx: try vector.bytes("Gx"), gy: try vector.bytes("Gy"))
        let suite = try SM2SM3Suite()
        let id = Array(try vector.value("ID").utf8)
        let message = Array(try vector.value("Msg").utf8)
        let point = [4] + (try vector.bytes("PublicKeyX")) + (try vector.bytes("PublicKeyY"))

        #expect(try curve.publicPoint(forScalar: try vector.bytes("PrivateKey")) == point)
        let z = suite.zValue(distinguishingID: id, publicPoint: point, curve: curve)
        #expect(z.bytes == (try vector.bytes("ZA")))
        let e = suite.hash(z.bytes + message).bytes
        #expect(e == (try vector.bytes("E")))
        let r = try vector.bytes("R"), s = try vector.bytes("S")
        #expect(try curve.referenceVerify(e: e, r: r, s: s, publicPoint: point))
        var tampered = s
        tampered[31] ^= 1
        #expect(try !curve.referenceVerify(e: e, r: r, s: tampered, publicPoint: point))
    }

    // MARK: Interop with the openssl command-line tool

    @Test(.enabled(if: SM2OpenSSLTool.isAvailable), arguments: [nil, "SCF-CONSORTIUM-2026"] as [String?])
    func ourSignatureVerifiesWithOpenSSLTool(distinguishingID: String?) throws {
        let suite = try SM2SM3Suite(distinguishingID: distinguishingID)
        let id = distinguishingID ?? Self.standardID
        let privateKey = try suite.generatePrivateKey()
        let signingKey = try suite.signingKey(privateKey)
        let message = Array("receivable R-2026-0042 transferred to supplier 7".utf8)
        let signature = try signingKey.signature(for: message)

        let dir = try SM2TemporaryDirectory()
        try dir.write("pub.pem", Array(try suite.pemRepresentation(of: signingKey.publicKey).utf8))
        try dir.write("msg.bin", message)
        try dir.write("sig.der", signature.rawRepresentation)

        let verify = try SM2OpenSSLTool.run(["pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin",
                                          "-inkey", dir.path("pub.pem"), "-in", dir.path("msg.bin"),
                                          "-sigfile", dir.path("sig.der"), "-pkeyopt", "distid:\(id)"])
        #expect(verify.status == 0, "\(verify.output)")
        #expect(verify.output.contains("Signature Verified Successfully"))

        let dgst = try SM2OpenSSLTool.run(["dgst", "-sm3", "-verify", dir.path("pub.pem"), "-sigopt", "distid:\(id)",
                                        "-signature", dir.path("sig.der"), dir.path("msg.bin")])
        #expect(dgst.status == 0, "\(dgst.output)")
        #expect(dgst.output.contains("Verified OK"))

        // The tool agrees the ID is part of what was signed.
        let wrongID = try SM2OpenSSLTool.run(["pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin",
                                           "-inkey", dir.path("pub.pem"), "-in", dir.path("msg.bin"),
                                           "-sigfile", dir.path("sig.der"), "-pkeyopt", "distid:\(id)-other"])
        #expect(wrongID.status != 0)

        // Our private key file is one the tool can sign with, and that signature verifies here.
        try dir.write("priv.pem", Array(try suite.pemRepresentation(of: privateKey).utf8))
        let sign = try SM2OpenSSLTool.run(["pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", dir.path("priv.pem"),
                                        "-in", dir.path("msg.bin"), "-pkeyopt", "distid:\(id)", "-out", dir.path("tool.der")])
        #expect(sign.status == 0, "\(sign.output)")
        let toolSignature = Signature(rawRepresentation: try dir.read("tool.der"))
        #expect(suite.isValidSignature(toolSignature, for: message, publicKey: signingKey.publicKey))
    }

    @Test(.enabled(if: SM2OpenSSLTool.isAvailable), arguments: [nil, "SCF-CONSORTIUM-2026"] as [String?])
    func openSSLToolSignatureVerifiesHere(distinguishingID: String?) throws {
        let suite = try SM2SM3Suite(distinguishingID: distinguishingID)
        let id = distinguishingID ?? Self.standardID
        let dir = try SM2TemporaryDirectory()
        let message = Array("invoice INV-88 confirmed by debtor".utf8)
        try dir.write("msg.bin", message)

        #expect(try SM2OpenSSLTool.run(["genpkey", "-algorithm", "SM2", "-out", dir.path("tool.pem")]).status == 0)
        #expect(try SM2OpenSSLTool.run(["pkey", "-in", dir.path("tool.pem"), "-pubout", "-out", dir.path("tool.pub.pem")]).status == 0)
        // `pkey -outform DER` writes the SEC1 ECPrivateKey; `pkcs8 -topk8 -nocrypt` writes PKCS#8.
        #expect(try SM2OpenSSLTool.run(["pkey", "-in", dir.path("tool.pem"), "-outform", "DER", "-out", dir.path("tool.sec1.der")]).status == 0)
        #expect(try SM2OpenSSLTool.run(["pkcs8", "-topk8", "-nocrypt", "-in", dir.path("tool.pem"), "-outform", "DER", "-out", dir.path("tool.der")]).status == 0)
        #expect(try SM2OpenSSLTool.run(["pkey", "-pubin", "-in", dir.path("tool.pub.pem"), "-outform", "DER", "-out", dir.path("tool.pub.der")]).status == 0)

        // The tool's key files import, and agree with each other.
        let privateKey = try suite.privateKey(pemRepresentation: String(decoding: try dir.read("tool.pem"), as: UTF8.self))
        let publicKey = try suite.publicKey(pemRepresentation: String(decoding: try dir.read("tool.pub.pem"), as: UTF8.self))
        #expect(try suite.publicKey(for: privateKey) == publicKey)
        #expect(try suite.privateKey(derRepresentation: try dir.read("tool.der")).rawRepresentation == privateKey.rawRepresentation)
        // OpenSSL's decoder also takes the SEC1 form; accepting it does no harm.
        #expect(try suite.privateKey(derRepresentation: try dir.read("tool.sec1.der")).rawRepresentation == privateKey.rawRepresentation)
        #expect(try suite.publicKey(derRepresentation: try dir.read("tool.pub.der")) == publicKey)
        // Our DER encodings are byte-identical to the tool's.
        #expect(try suite.derRepresentation(of: privateKey) == (try dir.read("tool.der")))
        #expect(try suite.derRepresentation(of: publicKey) == (try dir.read("tool.pub.der")))

        let pkeyutl = try SM2OpenSSLTool.run(["pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", dir.path("tool.pem"),
                                           "-in", dir.path("msg.bin"), "-pkeyopt", "distid:\(id)", "-out", dir.path("a.sig")])
        #expect(pkeyutl.status == 0, "\(pkeyutl.output)")
        let dgst = try SM2OpenSSLTool.run(["dgst", "-sm3", "-sign", dir.path("tool.pem"), "-sigopt", "distid:\(id)",
                                        "-out", dir.path("b.sig"), dir.path("msg.bin")])
        #expect(dgst.status == 0, "\(dgst.output)")
        for file in ["a.sig", "b.sig"] {
            let signature = Signature(rawRepresentation: try dir.read(file))
            #expect(suite.isValidSignature(signature, for: message, publicKey: publicKey), "\(file)")
            #expect(!suite.isValidSignature(signature, for: message + [1], publicKey: publicKey), "\(file)")
            let otherID = try SM2SM3Suite(distinguishingID: id + "-other")
            #expect(!otherID.isValidSignature(signature, for: message, publicKey: publicKey), "\(file)")
        }
    }

    // MARK: Round trips

    @Test func generateSignVerify() throws {
        let suite = try SM2SM3Suite()
        let privateKey = try suite.generatePrivateKey()
        #expect(privateKey.rawRepresentation.count == 32)
        #expect(privateKey.description == "PrivateKey(sm2-sm3, redacted)")
        let key = try suite.signingKey(privateKey)
        #expect(key.publicKey.rawRepresentation.count == 65 && key.publicKey.rawRepresentation[0] == 4)
        #expect(suite.isValidPublicKey(key.publicKey))
        for message in [[], Array("a".utf8), Array(repeating: 0xAB, count: 10_000)] as [[UInt8]] {
            let signature = try key.signature(for: message)
            #expect(signature.rawRepresentation.first == 0x30 && signature.rawRepresentation.count <= 72)
            #expect(suite.isValidSignature(signature, for: message, publicKey: key.publicKey))
        }
        // Randomized: two signatures of one message differ, and both verify.
        let message = SigningDomain.transaction.message(for: suite.hash(Array("tx".utf8)))
        let first = try key.signature(for: message), second = try key.signature(for: message)
        #expect(first != second)
        #expect(suite.isValidSignature(second, for: message, publicKey: key.publicKey))
        // Two generated keys differ.
        #expect(try suite.generatePrivateKey().rawRepresentation != privateKey.rawRepresentation)
    }

    @Test func seedDerivationIsDeterministicAndInRange() throws {
        let suite = try SM2SM3Suite()
        let seed = (0..<32).map { UInt8($0) }
        let a = try suite.privateKey(seed: seed), b = try suite.privateKey(seed: seed)
        #expect(a.rawRepresentation == b.rawRepresentation)
        #expect(a.suite == .sm2SM3)
        #expect(try suite.privateKey(seed: seed.reversed()).rawRepresentation != a.rawRepresentation)
        // All-0xFF and all-zero seeds still land in [1, n-2].
        for filler in [0x00, 0xFF, 0x80] as [UInt8] {
            let key = try suite.privateKey(seed: Array(repeating: filler, count: 32))
            #expect(SM2CurveParameters.recommended.isValidPrivateScalar(key.rawRepresentation))
            _ = try suite.signingKey(key)
        }
        #expect(throws: CryptoError.self) { try suite.privateKey(seed: Array(repeating: 1, count: 31)) }
        // The same seed gives the same key whatever the chain's ID (the ID only changes Z_A).
        #expect(try SM2SM3Suite(distinguishingID: "X").privateKey(seed: seed).rawRepresentation == a.rawRepresentation)
    }

    @Test func reductionEdgesOfTheScalarRange() throws {
        let curve = SM2CurveParameters.recommended
        let n = curve.n
        var nMinus2 = n; nMinus2[31] -= 2
        var nMinus1 = n; nMinus1[31] -= 1
        // (n-2) mod (n-2) + 1 = 1; (n-3) mod (n-2) + 1 = n-2: both ends are reachable.
        #expect(try curve.reduceToPrivateScalar(nMinus2) == [UInt8](repeating: 0, count: 31) + [1])
        var nMinus3 = n; nMinus3[31] -= 3
        #expect(try curve.reduceToPrivateScalar(nMinus3) == nMinus2)
        #expect(curve.isValidPrivateScalar(nMinus2))
        #expect(!curve.isValidPrivateScalar(nMinus1))
        #expect(!curve.isValidPrivateScalar(n))
        #expect(!curve.isValidPrivateScalar([UInt8](repeating: 0, count: 32)))
        #expect(!curve.isValidPrivateScalar([UInt8](repeating: 1, count: 31)))
        let suite = try SM2SM3Suite()
        for bad in [n, nMinus1, [UInt8](repeating: 0, count: 32), [UInt8](repeating: 0xFF, count: 32), [1]] {
            #expect(throws: CryptoError.self) { try suite.signingKey(PrivateKey(suite: .sm2SM3, rawRepresentation: bad)) }
        }
    }

    @Test func keyFilesRoundTrip() throws {
        let suite = try SM2SM3Suite()
        let privateKey = try suite.privateKey(seed: Array(repeating: 42, count: 32))
        let publicKey = try suite.publicKey(for: privateKey)

        let privatePEM = try suite.pemRepresentation(of: privateKey)
        #expect(privatePEM.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        #expect(try suite.privateKey(pemRepresentation: privatePEM).rawRepresentation == privateKey.rawRepresentation)
        let privateDER = try suite.derRepresentation(of: privateKey)
        #expect(privateDER.first == 0x30)
        #expect(try suite.privateKey(derRepresentation: privateDER).rawRepresentation == privateKey.rawRepresentation)

        let publicPEM = try suite.pemRepresentation(of: publicKey)
        #expect(publicPEM.hasPrefix("-----BEGIN PUBLIC KEY-----\n"))
        #expect(try suite.publicKey(pemRepresentation: publicPEM) == publicKey)
        let publicDER = try suite.derRepresentation(of: publicKey)
        #expect(try suite.publicKey(derRepresentation: publicDER) == publicKey)
        // SubjectPublicKeyInfo ends with the 65-byte point in a BIT STRING.
        #expect(Array(publicDER.suffix(65)) == publicKey.rawRepresentation)
        // The SM2 curve OID 1.2.156.10197.1.301 is in there.
        #expect(publicDER.firstRange(of: [0x06, 0x08, 0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x01, 0x82, 0x2D]) != nil)

        // Keys from files sign and verify like the originals.
        let imported = try suite.signingKey(try suite.privateKey(pemRepresentation: privatePEM))
        let signature = try imported.signature(for: [1, 2, 3])
        #expect(suite.isValidSignature(signature, for: [1, 2, 3], publicKey: try suite.publicKey(derRepresentation: publicDER)))
    }

    @Test(.enabled(if: SM2OpenSSLTool.isAvailable)) func foreignKeyFilesAreRefused() throws {
        let suite = try SM2SM3Suite()
        let dir = try SM2TemporaryDirectory()
        #expect(try SM2OpenSSLTool.run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", dir.path("p256.pem")]).status == 0)
        #expect(try SM2OpenSSLTool.run(["pkey", "-in", dir.path("p256.pem"), "-pubout", "-out", dir.path("p256.pub.pem")]).status == 0)
        #expect(try SM2OpenSSLTool.run(["genpkey", "-algorithm", "ED25519", "-out", dir.path("ed.pem")]).status == 0)
        for file in ["p256.pem", "ed.pem"] {
            let error = #expect(throws: CryptoError.self) {
                try suite.privateKey(pemRepresentation: String(decoding: try dir.read(file), as: UTF8.self))
            }
            #expect(error?.code == .invalidKey, "\(file)")
        }
        #expect(throws: CryptoError.self) {
            try suite.publicKey(pemRepresentation: String(decoding: try dir.read("p256.pub.pem"), as: UTF8.self))
        }
        // An encrypted PKCS#8 file is refused rather than prompting for a passphrase.
        #expect(try SM2OpenSSLTool.run(["genpkey", "-algorithm", "SM2", "-aes-256-cbc", "-pass", "pass:secret", "-out", dir.path("enc.pem")]).status == 0)
        #expect(throws: CryptoError.self) {
            try suite.privateKey(pemRepresentation: String(decoding: try dir.read("enc.pem"), as: UTF8.self))
        }
    }

    @Test func openSSLErrorsCarryOpenSSLReasons() throws {
        let suite = try SM2SM3Suite()
        let error = #expect(throws: CryptoError.self) { try suite.publicKey(derRepresentation: [0x30, 0x03, 0x02, 0x01, 0x01]) }
        #expect(error?.code == .invalidKey)
        #expect(error?.message.contains("OpenSSL:") == true)
        let garbage = #expect(throws: CryptoError.self) { try suite.privateKey(pemRepresentation: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n") }
        #expect(garbage?.message.contains("OpenSSL:") == true)
        // A point off the curve, rejected by OpenSSL when the key is built, with its reason.
        var offCurve = try suite.publicKey(for: try suite.privateKey(seed: Array(repeating: 3, count: 32))).rawRepresentation
        offCurve[64] ^= 1
        let rejected = #expect(throws: CryptoError.self) { try SM2SM3Suite.makeKey(publicPoint: offCurve, privateScalar: nil) }
        #expect(rejected?.code == .invalidKey)
        #expect(rejected?.message.contains("point is not on curve") == true, "\(rejected?.message ?? "")")
    }

    // MARK: Failures that must fail

    @Test func tamperingFails() throws {
        let suite = try SM2SM3Suite()
        let key = try suite.signingKey(try suite.privateKey(seed: Array(repeating: 9, count: 32)))
        let message = Array("settle R-1 at maturity".utf8)
        let signature = try key.signature(for: message)
        #expect(suite.isValidSignature(signature, for: message, publicKey: key.publicKey))

        // Every single-byte flip of the signature fails.
        for index in signature.rawRepresentation.indices {
            var bytes = signature.rawRepresentation
            bytes[index] ^= 0x01
            #expect(!suite.isValidSignature(Signature(rawRepresentation: bytes), for: message, publicKey: key.publicKey), "byte \(index)")
        }
        // Every single-byte flip of the message fails.
        for index in message.indices {
            var bytes = message
            bytes[index] ^= 0x20
            #expect(!suite.isValidSignature(signature, for: bytes, publicKey: key.publicKey), "byte \(index)")
        }
        // Wrong key, wrong suite tag, wrong ID, truncated or empty signature.
        let other = try suite.publicKey(for: try suite.privateKey(seed: Array(repeating: 10, count: 32)))
        #expect(!suite.isValidSignature(signature, for: message, publicKey: other))
        #expect(!suite.isValidSignature(signature, for: message, publicKey: PublicKey(suite: .ed25519SHA256, rawRepresentation: key.publicKey.rawRepresentation)))
        #expect(!(try SM2SM3Suite(distinguishingID: "1234567812345679")).isValidSignature(signature, for: message, publicKey: key.publicKey))
        #expect(!suite.isValidSignature(Signature(rawRepresentation: Array(signature.rawRepresentation.dropLast())), for: message, publicKey: key.publicKey))
        #expect(!suite.isValidSignature(Signature(rawRepresentation: []), for: message, publicKey: key.publicKey))
        #expect(!suite.isValidSignature(Signature(rawRepresentation: Array(repeating: 0x30, count: 200)), for: message, publicKey: key.publicKey))
    }

    @Test func nonCanonicalEncodingsOfAValidSignatureFail() throws {
        let suite = try SM2SM3Suite()
        let key = try suite.signingKey(try suite.privateKey(seed: Array(repeating: 11, count: 32)))
        let message: [UInt8] = [1, 2, 3]
        let der = try key.signature(for: message).rawRepresentation
        let (r, s) = try #require(SM2DER.parseECDSASignature(der))
        #expect(SM2DER.ecdsaSignature(r: r, s: s) == der)
        // Same (r, s) with a long-form outer length (valid BER, not DER).
        let longForm = [0x30, 0x81, der[1]] + der.dropFirst(2)
        #expect(!suite.isValidSignature(Signature(rawRepresentation: Array(longForm)), for: message, publicKey: key.publicKey))
        // Same (r, s) with a superfluous leading zero on r.
        let paddedR = SM2DER.sequence(SM2DER.integer([0, 0] + r.drop(while: { $0 == 0 })) + SM2DER.integer(s))
        #expect(!suite.isValidSignature(Signature(rawRepresentation: paddedR), for: message, publicKey: key.publicKey))
        // Trailing garbage.
        #expect(!suite.isValidSignature(Signature(rawRepresentation: der + [0]), for: message, publicKey: key.publicKey))
    }

    @Test func invalidPublicKeysAreRejected() throws {
        let suite = try SM2SM3Suite()
        let good = try suite.publicKey(for: try suite.privateKey(seed: Array(repeating: 5, count: 32)))
        #expect(suite.isValidPublicKey(good))
        var offCurve = good.rawRepresentation
        offCurve[40] ^= 0x04
        var compressedTag = good.rawRepresentation
        compressedTag[0] = 2
        for raw in [offCurve, compressedTag, Array(good.rawRepresentation.dropFirst()), [], [4] + Array(repeating: 0, count: 64)] {
            #expect(!suite.isValidPublicKey(PublicKey(suite: .sm2SM3, rawRepresentation: raw)))
        }
        #expect(!suite.isValidPublicKey(PublicKey(suite: .ed25519SHA256, rawRepresentation: good.rawRepresentation)))
        // An Ed25519 key is refused with the right code.
        let ed = try Ed25519SHA256Suite().privateKey(seed: Array(repeating: 1, count: 32))
        let error = #expect(throws: CryptoError.self) { try suite.signingKey(ed) }
        #expect(error?.code == .wrongSuite)
    }

    // MARK: Distinguishing IDs and the factory

    @Test func distinguishingIDsGiveDifferentZValues() throws {
        let privateKey = try SM2SM3Suite().privateKey(seed: Array(repeating: 1, count: 32))
        let ids = [nil, "1234567812345678", "ALICE123@YAHOO.COM", "SCF-CONSORTIUM-2026", "1"] as [String?]
        var zValues: [String: Hash] = [:]
        for id in ids {
            let suite = try SM2SM3Suite(distinguishingID: id)
            zValues[id ?? "(default)"] = try suite.zValue(for: try suite.publicKey(for: privateKey))
        }
        #expect(zValues["(default)"] == zValues["1234567812345678"])
        let distinct = Set(ids.dropFirst().map { zValues[$0!]! })
        #expect(distinct.count == ids.count - 1)
        // Z also depends on the key.
        let suite = try SM2SM3Suite()
        let other = try suite.publicKey(for: try suite.privateKey(seed: Array(repeating: 2, count: 32)))
        #expect(try suite.zValue(for: other) != zValues["(default)"])
    }

    @Test func factoryBuildsTheSuiteFromGenesisSettings() throws {
        let defaultSuite = try #require(try CryptoSuites.make(.sm2SM3) as? SM2SM3Suite)
        #expect(defaultSuite.distinguishingIDString == Self.standardID)
        let custom = try #require(try CryptoSuites.make(.sm2SM3, sm2DistinguishingID: "BANK-A@SCF") as? SM2SM3Suite)
        #expect(custom.distinguishingIDString == "BANK-A@SCF")
        #expect(throws: CryptoError.self) { try CryptoSuites.make(.sm2SM3, sm2DistinguishingID: "") }
        #expect(throws: CryptoError.self) { try CryptoSuites.make(.sm2SM3, sm2DistinguishingID: String(repeating: "x", count: 8191)) }
        // The longest ID OpenSSL takes still signs and verifies, and is not confused with a shorter one.
        let longest = try SM2SM3Suite(distinguishingID: String(repeating: "x", count: 8190))
        let longKey = try longest.signingKey(try longest.privateKey(seed: Array(repeating: 8, count: 32)))
        let longSignature = try longKey.signature(for: [7])
        #expect(longest.isValidSignature(longSignature, for: [7], publicKey: longKey.publicKey))
        #expect(!(try SM2SM3Suite(distinguishingID: String(repeating: "x", count: 8189))).isValidSignature(longSignature, for: [7], publicKey: longKey.publicKey))

        // A signature made under one chain's ID is not valid on a chain with another.
        let key = try custom.signingKey(try custom.privateKey(seed: Array(repeating: 4, count: 32)))
        let signature = try key.signature(for: [9])
        #expect(custom.isValidSignature(signature, for: [9], publicKey: key.publicKey))
        #expect(!defaultSuite.isValidSignature(signature, for: [9], publicKey: key.publicKey))
    }

    // MARK: Concurrency

    @Test func concurrentSigningAndVerification() async throws {
        let suite = try SM2SM3Suite()
        let keys = try (0..<4).map { try suite.signingKey(try suite.privateKey(seed: Array(repeating: UInt8($0 + 20), count: 32))) }
        let results = await withTaskGroup(of: Bool.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var ok = true
                    for round in 0..<25 {
                        let key = keys[(worker + round) % keys.count]
                        let message = Array("worker \(worker) round \(round)".utf8)
                        guard let signature = try? key.signature(for: message) else { return false }
                        ok = ok && suite.isValidSignature(signature, for: message, publicKey: key.publicKey)
                        ok = ok && !suite.isValidSignature(signature, for: message + [0], publicKey: key.publicKey)
                        ok = ok && suite.hash(message) == suite.hash(message)
                    }
                    return ok
                }
            }
            var all: [Bool] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results == Array(repeating: true, count: 8))
    }

    // MARK: Throughput (a measurement, not an assertion)

    /// Sign and verify rates of both suites on one core, and verification on two threads. Run
    /// in release: `SCF_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter
    /// SM2SM3Tests/signAndVerifyRates` (prints the numbers; `SCF_BENCH_SECONDS` sets the time).
    ///
    /// "per CPU-second" divides by the thread's own CPU time, so it stays meaningful when other
    /// builds share the machine; "wall" is what this run actually got.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SCF_BENCH"] != nil))
    func signAndVerifyRates() throws {
        let seconds = Double(ProcessInfo.processInfo.environment["SCF_BENCH_SECONDS"] ?? "") ?? 2
        var lines: [String] = []
        for suite in [Ed25519SHA256Suite() as any CryptoSuite, try SM2SM3Suite()] {
            let rates = try SM2CryptoRates.measure(suite, seconds: seconds)
            let verify = rates.verify.perCPUSecond
            lines.append("""
                \(suite.id): sign \(Int(rates.sign.perCPUSecond))/CPU-s (\(Int(rates.sign.perWallSecond))/s wall), \
                verify \(Int(verify))/CPU-s (\(Int(rates.verify.perWallSecond))/s wall); \
                2 threads verify \(Int(rates.parallelVerifyPerWallSecond))/s wall; \
                4-node ceiling on 2 cores ≈ \(Int(verify * 1.85 / 4)) tx/s (verify × 1.85 ÷ 4); \
                hash \(Int(rates.smallHash.perCPUSecond)) × 64 B/CPU-s, \(Int(rates.bulkHashMBPerCPUSecond)) MB/CPU-s on 64 KiB
                """)
        }
        print(lines.joined(separator: "\n"))
    }
}

/// Measures a suite's sign and verify rates.
private enum SM2CryptoRates {
    struct Rate { var perCPUSecond: Double, perWallSecond: Double }
    struct Rates { var sign: Rate, verify: Rate, parallelVerifyPerWallSecond: Double, smallHash: Rate, bulkHashMBPerCPUSecond: Double }

    /// CPU time used by the calling thread, in seconds.
    static func threadCPUTime() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// Runs `batch` (which does 64 operations) for about `seconds` of wall time.
    static func rate(seconds: Double, _ batch: () throws -> Void) rethrows -> Rate {
        let clock = ContinuousClock()
        let start = clock.now, cpuStart = threadCPUTime()
        var count = 0
        while clock.now - start < .seconds(seconds) {
            try batch()
            count += 64
        }
        let wall = (clock.now - start) / .seconds(1), cpu = threadCPUTime() - cpuStart
        return Rate(perCPUSecond: Double(count) / cpu, perWallSecond: Double(count) / wall)
    }

    static func measure(_ suite: any CryptoSuite, seconds: Double) throws -> Rates {
        let key = try suite.signingKey(try suite.privateKey(seed: Array(repeating: 77, count: 32)))
        // What a validator signs and checks: a domain-tagged 32-byte digest.
        let messages = (0..<64).map { SigningDomain.transaction.message(for: suite.hash([UInt8($0)])) }
        let signatures = try messages.map { try key.signature(for: $0) }
        // Warm the public-key cache, as a validator's would be.
        _ = suite.isValidSignature(signatures[0], for: messages[0], publicKey: key.publicKey)

        let sign = try rate(seconds: seconds) {
            for message in messages { _ = try key.signature(for: message) }
        }
        @Sendable func verifyBatch() {
            for index in messages.indices {
                precondition(suite.isValidSignature(signatures[index], for: messages[index], publicKey: key.publicKey),
                             "a benchmark signature did not verify")
            }
        }
        let verify = rate(seconds: seconds, verifyBatch)
        let parallel = Mutex<Double>(0)
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            let result = rate(seconds: seconds, verifyBatch)
            parallel.withLock { $0 += result.perWallSecond }
        }
        let small = [UInt8](repeating: 0x5A, count: 64), bulk = [UInt8](repeating: 0xA5, count: 64 * 1024)
        let smallHash = rate(seconds: seconds / 2) { for _ in 0..<64 { _ = suite.hash(small) } }
        let bulkHash = rate(seconds: seconds / 2) { for _ in 0..<64 { _ = suite.hash(bulk) } }
        return Rates(sign: sign, verify: verify, parallelVerifyPerWallSecond: parallel.withLock { $0 },
                     smallHash: smallHash, bulkHashMBPerCPUSecond: bulkHash.perCPUSecond * Double(bulk.count) / 1e6)
    }
}

// MARK: Helpers

/// Blocks of `Key = value` lines from a file in Vectors/, separated by blank lines.
private struct SM2VectorFile {
    struct Block {
        var fields: [String: String]
        var source: String { fields["Source"] ?? "?" }
        func value(_ key: String) throws -> String {
            guard let value = fields[key] else { throw VectorError(message: "vector block \(source) has no \(key)") }
            return value
        }
        func bytes(_ key: String) throws -> [UInt8] {
            guard let bytes = [UInt8](hex: try value(key)) else { throw VectorError(message: "\(key) in \(source) is not hex") }
            return bytes
        }
    }
    struct VectorError: Error, CustomStringConvertible { var message: String; var description: String { message } }

    static func blocks(named name: String) throws -> [Block] {
        guard let url = Bundle.module.url(forResource: name, withExtension: "txt", subdirectory: "Vectors") else {
            throw VectorError(message: "Vectors/\(name).txt is not in the test bundle")
        }
        let text = try String(contentsOf: url, encoding: .utf8)
        var blocks: [Block] = []
        var current: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("#") { continue }
            if trimmed.isEmpty {
                if !current.isEmpty { blocks.append(Block(fields: current)); current = [:] }
                continue
            }
            guard let equals = trimmed.firstIndex(of: "=") else { throw VectorError(message: "bad line in \(name): \(trimmed)") }
            current[trimmed[..<equals].trimmingCharacters(in: .whitespaces)] = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        }
        if !current.isEmpty { blocks.append(Block(fields: current)) }
        return blocks
    }
}

/// Just enough DER for ECDSA-Sig-Value in tests.
private enum SM2DER {
    static func length(_ count: Int) -> [UInt8] { count < 128 ? [UInt8(count)] : [0x81, UInt8(count)] }
    static func integer(_ magnitude: [UInt8]) -> [UInt8] { [0x02] + length(magnitude.count) + magnitude }
    static func sequence(_ body: [UInt8]) -> [UInt8] { [0x30] + length(body.count) + body }
    /// The canonical encoding of a non-negative big-endian integer.
    static func canonicalInteger(_ value: [UInt8]) -> [UInt8] {
        var bytes = Array(value.drop(while: { $0 == 0 }))
        if bytes.isEmpty || bytes[0] & 0x80 != 0 { bytes.insert(0, at: 0) }
        return integer(bytes)
    }
    static func ecdsaSignature(r: [UInt8], s: [UInt8]) -> [UInt8] { sequence(canonicalInteger(r) + canonicalInteger(s)) }
    static func parseECDSASignature(_ der: [UInt8]) -> (r: [UInt8], s: [UInt8])? {
        guard der.count >= 8, der[0] == 0x30, Int(der[1]) == der.count - 2, der[2] == 0x02 else { return nil }
        let rLength = Int(der[3])
        guard der.count > 5 + rLength, der[4 + rLength] == 0x02 else { return nil }
        let sLength = Int(der[5 + rLength])
        guard der.count == 6 + rLength + sLength else { return nil }
        return (Array(der[4..<(4 + rLength)]), Array(der[(6 + rLength)...]))
    }
}

/// The `openssl` command-line tool, run through Foundation's Process.
private enum SM2OpenSSLTool {
    static let path = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static var isAvailable: Bool { path != nil }

    struct Result { var status: Int32; var output: String }

    static func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path ?? "/usr/bin/openssl")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }
}

/// A directory under the system temporary directory, removed when the value goes away.
private final class SM2TemporaryDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("scf-sm2-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func write(_ name: String, _ bytes: [UInt8]) throws { try Data(bytes).write(to: url.appendingPathComponent(name)) }
    func read(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: url.appendingPathComponent(name))) }
}
