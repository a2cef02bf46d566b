import Foundation
import LedgerCore
import LedgerTestKit
import Testing

@Suite struct Ed25519SuiteTests {
    let suite = Ed25519SHA256Suite()

    @Test func rfc8032Vectors() throws {
        let rows = try VectorFiles.rows("ed25519-rfc8032.txt")
        #expect(rows.count == 3)
        for row in rows {
            let secret = [UInt8](hex: row[0])!, message = row[2] == "-" ? [] : [UInt8](hex: row[2])!
            let key = try suite.signingKey(try suite.privateKey(seed: secret))
            #expect(key.publicKey.rawRepresentation.hexString == row[1])
            let signature = try key.signature(for: message)
            #expect(signature.rawRepresentation.hexString == row[3])
            #expect(suite.isValidSignature(Signature(rawRepresentation: [UInt8](hex: row[3])!), for: message, publicKey: key.publicKey))
            var flipped = signature.rawRepresentation
            flipped[5] ^= 1
            #expect(!suite.isValidSignature(Signature(rawRepresentation: flipped), for: message, publicKey: key.publicKey))
        }
    }

    @Test func sha256Vectors() throws {
        for row in try VectorFiles.rows("sha256.txt") {
            let message = row[0] == "-" ? [] : [UInt8](hex: row[0])!
            #expect(suite.hash(message).hex == row[1])
        }
    }

    /// The word-loading forms of `Hash(bytes:)` agree with the generic one, byte order included.
    @Test func hashFromBytesIsTheSameWhicheverFormBuildsIt() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let generic = Hash(bytes: bytes[...])   // an ArraySlice takes the generic form
            #expect(generic != nil)
            #expect(Hash(bytes: bytes) == generic)
            #expect(bytes.withUnsafeBytes { Hash(bytes: $0) } == generic)
            #expect(generic?.bytes == bytes)
            #expect(Hash(hex: bytes.map { String(format: "%02x", $0) }.joined()) == generic)
        }
        for count in [0, 1, 31, 33, 64] {
            let bytes = [UInt8](repeating: 7, count: count)
            #expect(Hash(bytes: bytes) == nil)
            #expect(Hash(bytes: bytes[...]) == nil)
            #expect(bytes.withUnsafeBytes { Hash(bytes: $0) } == nil)
        }
    }

    /// A hash feeds only its first word to the hasher, but stays a key of its own whenever any
    /// word differs, and the ids that wrap it keep that.
    @Test func hashesThatShareTheirFirstWordAreStillDistinctKeys() {
        let base = Hash(w0: 1, w1: 2, w2: 3, w3: 4)
        let variants = [base, Hash(w0: 1, w1: 9, w2: 3, w3: 4), Hash(w0: 1, w1: 2, w2: 9, w3: 4), Hash(w0: 1, w1: 2, w2: 3, w3: 9)]
        #expect(Set(variants).count == 4)
        #expect(Set(variants.map(FragmentID.init)).count == 4)
        var ages: [Hash: Int] = [:]
        for (age, hash) in variants.enumerated() { ages[hash] = age }
        #expect(variants.map { ages[$0] } == [0, 1, 2, 3])
        #expect(base.hashValue == Hash(w0: 1, w1: 2, w2: 3, w3: 4).hashValue)
        #expect(ages[Hash(w0: 1, w1: 2, w2: 3, w3: 5)] == nil)
    }

    @Test func badKeysAndSignaturesAreFalseNotCrashes() {
        let key = PublicKey(suite: .ed25519SHA256, rawRepresentation: [1, 2, 3])
        #expect(!suite.isValidPublicKey(key))
        #expect(!suite.isValidSignature(Signature(rawRepresentation: []), for: [1], publicKey: key))
        let otherSuite = PublicKey(suite: .sm2SM3, rawRepresentation: Array(repeating: 4, count: 65))
        #expect(!suite.isValidSignature(Signature(rawRepresentation: Array(repeating: 0, count: 64)), for: [1], publicKey: otherSuite))
        #expect(throws: CryptoError.self) { try suite.privateKey(seed: [1, 2]) }
    }

    @Test func signingDomainsSeparateTransactionsFromVotes() {
        let digest = suite.hash([42])
        #expect(SigningDomain.transaction.message(for: digest) != SigningDomain.commitVote.message(for: digest))
    }

    @Test func privateKeyDescriptionNeverShowsTheSecret() throws {
        let key = try suite.privateKey(seed: Array(repeating: 0xab, count: 32))
        #expect(!String(describing: key).contains("abab"))
    }
}

@Suite struct GoldenEncodingTests {
    /// Fixed values whose canonical bytes are frozen in Vectors/encoding-v1.txt.
    static func samples() throws -> [(String, [UInt8])] {
        let consortium = TestConsortium()
        var factory = TransactionFactory(consortium: consortium)
        let terms = consortium.terms(face: 12_345_67, invoiceNumber: "00012345", maturity: "2026-06-30")
        let propose = factory.make(TestConsortium.tier1, .proposeReceivable(terms))
        let transfer = factory.make(TestConsortium.tier1, .transfer(fragment: FragmentID(consortium.suite.hash([1])), to: TestConsortium.tier2, amount: 500_00))
        var chain = ChainBuilder(consortium: consortium)
        let (committed, result) = try chain.append([propose, transfer], at: ChainBuilder.time("2026-01-06"))
        return [
            ("genesis-hash", consortium.genesis.hash(suite: consortium.suite).bytes),
            ("transaction-body-propose", propose.bodyBytes),
            ("transaction-id-propose", propose.id.bytes),
            ("signed-transaction-transfer", transfer.wireBytes),
            ("block-header", committed.block.header.canonicalBytes),
            ("block-hash", committed.block.hash(suite: consortium.suite).bytes),
            ("commit-certificate", committed.certificate.canonicalBytes),
            ("receipts-root", result.resultsRoot.bytes),
            ("member-record", consortium.member(TestConsortium.bankA).canonicalBytes),
        ]
    }

    @Test func canonicalBytesMatchTheGoldenFile() throws {
        let samples = try Self.samples()
        if VectorFiles.regenerate {
            try VectorFiles.write("encoding-v1.txt", header: "# Canonical encoding v1 golden vectors: name, hex bytes. Never edit by hand; a change here is a breaking format change.",
                                  table: samples.map { ($0.0, $0.1.hexString) })
        }
        let golden = try VectorFiles.table("encoding-v1.txt")
        #expect(golden.count == samples.count)
        for (name, bytes) in samples {
            #expect(golden[name] == bytes.hexString, "canonical encoding of \(name) changed")
        }
    }

    @Test func goldenBytesDecodeBackToEqualValues() throws {
        let golden = try VectorFiles.table("encoding-v1.txt")
        let suite = Ed25519SHA256Suite()
        let body = try TransactionBody(canonicalBytes: [UInt8](hex: golden["transaction-body-propose"]!)!)
        #expect(body.canonicalBytes.hexString == golden["transaction-body-propose"])
        #expect(suite.hash(body.canonicalBytes).hex == golden["transaction-id-propose"])
        let signed = try SignedTransaction(wireBytes: [UInt8](hex: golden["signed-transaction-transfer"]!)!, suite: suite)
        #expect(signed.wireBytes.hexString == golden["signed-transaction-transfer"])
        let header = try BlockHeader(canonicalBytes: [UInt8](hex: golden["block-header"]!)!)
        #expect(header.hash(suite: suite).hex == golden["block-hash"])
        let certificate = try CommitCertificate(canonicalBytes: [UInt8](hex: golden["commit-certificate"]!)!)
        #expect(certificate.blockHash.hex == golden["block-hash"])
        try certificate.verify(validators: TestConsortium().validatorSet, chainID: "scf-test", suite: suite)
    }

    @Test func everyOperationRoundTrips() throws {
        let consortium = TestConsortium()
        let suite = consortium.suite
        let h = suite.hash([7])
        let invoice = consortium.invoice("9", seller: TestConsortium.tier1, buyer: TestConsortium.core, includingTax: Money(minor: 100, .cny))
        let operations: [LedgerOperation] = [
            .registerMember(consortium.member(TestConsortium.tier3)),
            .setMemberStatus(member: TestConsortium.tier3, status: .blacklisted, reason: "r"),
            .proposeReceivable(consortium.terms(face: 1, invoiceNumber: "1")),
            .issueReceivable(consortium.terms(face: 1, invoiceNumber: "2")),
            .confirmReceivable(ReceivableID(h)), .acceptReceivable(ReceivableID(h)),
            .rejectReceivable(ReceivableID(h), reason: "no"), .withdrawReceivable(ReceivableID(h)),
            .transfer(fragment: FragmentID(h), to: TestConsortium.tier2, amount: 5),
            .requestFinancing(fragment: FragmentID(h), bank: TestConsortium.bankA, amount: Money(minor: 5, .cny)),
            .approveFinancing(request: h, advance: 4), .rejectFinancing(request: h, reason: "x"),
            .settle(root: ReceivableID(h), amount: 9, paymentReference: "ref"), .writeOff(fragment: FragmentID(h), reason: "w"),
            .freeze(fragment: FragmentID(h), reason: "f"), .unfreeze(fragment: FragmentID(h), reason: "u"),
            .attestInvoice(invoice.key, status: .redReversed, evidenceHash: h), .attestInvoice(invoice.key, status: .normal, evidenceHash: nil),
            .replaceInvoice(root: ReceivableID(h), old: invoice.key, new: invoice),
        ]
        for operation in operations {
            let decoded = try LedgerOperation(canonicalBytes: operation.canonicalBytes)
            #expect(decoded == operation, "\(operation.kind) did not round-trip")
        }
    }

    @Test func decodingIsStrict() throws {
        let consortium = TestConsortium()
        var factory = TransactionFactory(consortium: consortium)
        let bytes = factory.make(TestConsortium.tier1, .withdrawReceivable(ReceivableID(.zero))).wireBytes
        #expect(throws: CanonicalDecodingError.self) { try SignedTransaction(wireBytes: bytes + [0], suite: consortium.suite) }
        #expect(throws: CanonicalDecodingError.self) { try SignedTransaction(wireBytes: Array(bytes.dropLast()), suite: consortium.suite) }
        #expect(throws: CanonicalDecodingError.self) { try SignedTransaction(wireBytes: [0xff, 0xff, 0xff, 0xff], suite: consortium.suite) }
        var unknownTag = consortium.terms(face: 1, invoiceNumber: "1").canonicalBytes
        unknownTag[unknownTag.count - 1] = 9 // recourse code
        #expect(throws: CanonicalDecodingError.self) { try ReceivableTerms(canonicalBytes: unknownTag) }
        #expect(throws: CanonicalDecodingError.self) { try LedgerOperation(canonicalBytes: [200]) }
        #expect(throws: CanonicalDecodingError.self) { try Hash(canonicalBytes: [1, 2, 3]) }
    }

    @Test func randomBytesNeverCrashTheDecoders() {
        var rng = SeededGenerator(seed: 7)
        let suite = Ed25519SHA256Suite()
        for length in 0..<400 {
            let bytes = (0..<(length % 97)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? SignedTransaction(wireBytes: bytes, suite: suite)
            _ = try? Block(wireBytes: bytes, suite: suite)
            _ = try? CommitCertificate(canonicalBytes: bytes)
            _ = try? Genesis(canonicalBytes: bytes)
        }
    }
}

@Suite struct MerkleTests {
    let suite = Ed25519SHA256Suite()

    @Test(arguments: [1, 2, 3, 4, 5, 7, 8, 13, 64, 100])
    func everyLeafHasAValidProof(count: Int) throws {
        let leaves = (0..<count).map { suite.leafHash([UInt8(truncatingIfNeeded: $0), 1]) }
        let root = MerkleTree.root(leaves: leaves, suite: suite)
        for index in 0..<count {
            let proof = try #require(MerkleTree.proof(leaves: leaves, index: index, suite: suite))
            #expect(proof.verifies(leaf: leaves[index], root: root, suite: suite))
            let decoded = try MerkleProof(canonicalBytes: proof.canonicalBytes)
            #expect(decoded == proof)
            #expect(!proof.verifies(leaf: suite.leafHash([99, 99]), root: root, suite: suite))
        }
    }

    @Test func oddLeafIsPromotedNotDuplicated() {
        let a = suite.leafHash([1]), b = suite.leafHash([2]), c = suite.leafHash([3])
        #expect(MerkleTree.root(leaves: [a, b, c], suite: suite) != MerkleTree.root(leaves: [a, b, c, c], suite: suite))
        #expect(MerkleTree.root(leaves: [a], suite: suite) == a)
    }
}

@Suite struct DomainValueTests {
    @Test(arguments: ["91110108551385082Q", "914403001922038216", "91330100799655058B", "9144030071526726XG"])
    func realUnifiedSocialCreditCodesValidate(code: String) {
        #expect(UnifiedSocialCreditCode(code) != nil)
    }

    @Test(arguments: ["91110108551385082A", "9111010855138508Q", "91110108551385082QQ", "9I110108551385082Q", ""])
    func badCreditCodesAreRefused(code: String) {
        #expect(UnifiedSocialCreditCode(code) == nil)
    }

    @Test func businessDatesParseStrictlyAndRoundTrip() {
        #expect(BusinessDate("2026-02-29") == nil)
        #expect(BusinessDate("2024-02-29")?.description == "2024-02-29")
        #expect(BusinessDate("2026-13-01") == nil)
        #expect(BusinessDate("2026-1-01") == nil)
        #expect(BusinessDate("1970-01-01")?.daysSinceEpoch == 0)
        for days in stride(from: -25_000, through: 30_000, by: 37) {
            let date = BusinessDate(daysSinceEpoch: Int32(days))
            #expect(BusinessDate(date.description) == date)
        }
        #expect(BusinessDate("2026-01-31")!.adding(days: 1).description == "2026-02-01")
    }

    @Test func consensusTimeMapsToTheConsortiumsBusinessDay() {
        // 2026-03-01 16:30 UTC is already 2026-03-02 00:30 in China.
        let time = ConsensusTime(startOf: BusinessDate("2026-03-01")!, utcOffsetMinutes: 0).adding(milliseconds: 16 * 3_600_000 + 1_800_000)
        #expect(time.businessDate(utcOffsetMinutes: 480).description == "2026-03-02")
        #expect(time.businessDate(utcOffsetMinutes: 0).description == "2026-03-01")
    }

    @Test func moneyParsesAndFormatsExactly() {
        #expect(Money.parse("1234.5", .cny) == Money(minor: 123450, .cny))
        #expect(Money.parse("0.01", .cny) == Money(minor: 1, .cny))
        #expect(Money.parse("1.234", .cny) == nil)
        #expect(Money.parse("-1", .cny) == nil)
        #expect(Money.parse("1e5", .cny) == nil)
        #expect(Money.parse("99999999999999999999", .cny) == nil)
        #expect(Money(minor: 123456789, .cny).description == "1,234,567.89 CNY")
        #expect(Money(minor: 5, .cny).description == "0.05 CNY")
        #expect(CurrencyCode("cny") == nil && CurrencyCode("CNYX") == nil)
    }

    @Test func memberIDsAndInvoiceKeysAreRestricted() {
        // Through String values: `MemberID("literal")` would be literal coercion (SE-0213), not validation.
        let valid = "bank-a", spaced = "Bank A"
        #expect(MemberID(valid) != nil)
        #expect(MemberID(spaced) == nil)
        #expect(MemberID(String(repeating: "a", count: 65)) == nil)
        #expect(InvoiceKey(text: "3100261130/00012345")?.code == "3100261130")
        #expect(InvoiceKey(text: "24312000000012345678")?.code == "")
        #expect(InvoiceKey(number: "12 34") == nil)
    }

    @Test func genesisProblemsAreReportedAsSentences() {
        var genesis = TestConsortium().genesis
        #expect(genesis.problems(suite: Ed25519SHA256Suite()).isEmpty)
        genesis.members.append(genesis.members[0])
        genesis.validators.append(genesis.validators[0])
        genesis.chainID = "has space"
        let problems = genesis.problems(suite: Ed25519SHA256Suite())
        #expect(problems.contains { $0.contains("listed twice") })
        #expect(problems.contains { $0.contains("used twice") })
        #expect(problems.contains { $0.contains("chainID") })
    }

    @Test func quorumSizes() {
        for (n, f, q) in [(1, 0, 1), (4, 1, 3), (5, 1, 4), (7, 2, 5), (10, 3, 7)] {
            let set = TestConsortium(validators: n).validatorSet
            #expect(set.faultTolerance == f && set.quorum == q, "n=\(n)")
        }
    }
}
