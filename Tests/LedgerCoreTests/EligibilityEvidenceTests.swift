import LedgerCore
import LedgerTestKit
import Testing

/// Evidence for an eligibility answer, checked offline against genesis alone: a valid proof
/// verifies; a flipped byte, a missing transfer or a certificate from a non-validator fails with a
/// precise reason.
@Suite struct EligibilityEvidenceTests {
    typealias C = TestConsortium

    /// A receivable split three times down the chain, each step in a block with two other
    /// transactions (so every Merkle proof has siblings); returns the ledger and the last fragment.
    static func story(suite: any CryptoSuite = Ed25519SHA256Suite()) throws -> (Ledger, FragmentID) {
        var ledger = Ledger(suite: suite, extraSuppliers: 2)
        var fillers = 0
        func step(_ transaction: SignedTransaction) throws {
            var block = [transaction]
            for index in 0..<2 {
                fillers += 1
                let supplier = MemberID("supplier-\(index)")!
                let terms = ledger.consortium.terms(creditor: supplier, face: 1_000_00, invoiceNumber: "F\(fillers)")
                block.append(ledger.tx.make(supplier, .proposeReceivable(terms)))
            }
            block.swapAt(0, fillers % 3)
            #expect(try ledger.commit(block).allSatisfy { $0 == nil })
        }
        let terms = ledger.consortium.terms(face: 1_000_000_00, invoiceNumber: "1")
        let proposal = ledger.tx.make(C.tier1, .proposeReceivable(terms))
        try step(proposal)
        let root = ReceivableID(proposal.id)
        try step(ledger.tx.make(C.core, .confirmReceivable(root)))
        let first = FragmentID.initial(of: root, suite: ledger.consortium.suite)
        try step(ledger.tx.make(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 600_000_00)))
        let second = ledger.child(first, 0)
        try step(ledger.tx.make(C.tier2, .transfer(fragment: second, to: C.tier3, amount: 300_000_00)))
        let third = ledger.child(second, 0)
        try step(ledger.tx.make(C.tier3, .transfer(fragment: third, to: C.tier2, amount: 100_000_00)))
        _ = try ledger.activeReceivable(face: 5_000_00, invoice: "99")   // later blocks, so as-of is not the last transfer's
        return (ledger, ledger.child(third, 1))
    }

    static func evidence(_ ledger: Ledger, _ fragment: FragmentID) throws -> EligibilityEvidence {
        try EvidenceBuilder.build(fragment: fragment, asOf: ledger.chain.tip.height, genesis: ledger.consortium.genesis,
                                  suite: ledger.consortium.suite, state: ledger.state, history: ledger.history)
    }

    static func verify(_ ledger: Ledger, _ evidence: EligibilityEvidence) throws(EvidenceError) -> VerifiedTitle {
        try EvidenceVerifier(genesis: ledger.consortium.genesis, suite: ledger.consortium.suite).verify(evidence)
    }

    @Test(arguments: allSuites) func aValidProofVerifiesOfflineAndMatchesTheAnswer(suite: CryptoSuiteID) throws {
        let (ledger, fragment) = try Self.story(suite: try CryptoSuites.make(suite))
        let evidence = try Self.evidence(ledger, fragment)
        #expect(evidence.title.count == 3 && evidence.title.map(\.childIndex) == [0, 0, 1])
        let title = try Self.verify(ledger, evidence)
        #expect(title.fragment == fragment && title.holder == C.tier3 && title.amount == 200_000_00)
        #expect(title.terms.debtor == C.core && title.asOfHeight == ledger.chain.tip.height && title.asOfHash == ledger.chain.tip.hash)
        #expect(title.links.map(\.signer) == [C.core, C.tier1, C.tier2, C.tier3])
        // The answer's chain of title is exactly the one the evidence proves.
        let answer = try ledger.ask(fragment, amount: 100_000_00)
        #expect(answer.title == title.links)
        // The canonical bytes decode back to the same evidence, which verifies again.
        let decoded = try EligibilityEvidence(canonicalBytes: evidence.canonicalBytes, suite: ledger.consortium.suite)
        #expect(decoded == evidence)
        #expect(try Self.verify(ledger, decoded) == title)
    }

    @Test func everyFlippedByteIsCaught() throws {
        let (ledger, fragment) = try Self.story()
        let bytes = try Self.evidence(ledger, fragment).canonicalBytes
        var checked = 0
        // Every 5th byte plus the first 64 (version, chain id, genesis hash, ids).
        for position in Set(Array(0..<64) + Array(stride(from: 0, to: bytes.count, by: 5))).sorted() {
            var flipped = bytes
            flipped[position] ^= 0x01
            let decoded: EligibilityEvidence
            do {
                decoded = try EligibilityEvidence(canonicalBytes: flipped, suite: ledger.consortium.suite)
            } catch {
                checked += 1
                continue   // refused as malformed
            }
            #expect(throws: EvidenceError.self, "a flip at byte \(position) of \(bytes.count) went unnoticed") {
                try Self.verify(ledger, decoded)
            }
            checked += 1
        }
        #expect(checked > bytes.count / 5)
    }

    @Test func flippedBytesGivePreciseReasons() throws {
        let (ledger, fragment) = try Self.story()
        let evidence = try Self.evidence(ledger, fragment)
        func code(_ change: (inout EligibilityEvidence) -> Void) -> EvidenceError? {
            var copy = evidence
            change(&copy)
            do {
                _ = try Self.verify(ledger, copy)
                return nil
            } catch {
                return error
            }
        }
        func flip(_ hash: Hash) -> Hash {
            var bytes = hash.bytes
            bytes[0] ^= 1
            return Hash(bytes: bytes)!
        }
        let sibling = code { $0.title[1].transfer.transactionProof.steps[0].sibling = flip($0.title[1].transfer.transactionProof.steps[0].sibling) }
        #expect(sibling?.code == .transactionNotInBlock)
        #expect(sibling?.message.contains("transfer 2 of the chain of title") == true)
        let receipt = code { $0.creation.receiptProof.steps[0].sibling = flip($0.creation.receiptProof.steps[0].sibling) }
        #expect(receipt?.code == .receiptNotInBlock)
        let header = code { $0.activation.header.resultsRoot = flip($0.activation.header.resultsRoot) }
        #expect(header?.code == .certificateMismatch)
        var signature = evidence.title[0].transfer.transaction.signature.rawRepresentation
        signature[3] ^= 1
        let forged = SignedTransaction(body: evidence.title[0].transfer.transaction.body, signature: Signature(rawRepresentation: signature),
                                       suite: ledger.consortium.suite)
        // The block's Merkle leaf is the whole signed transaction, so a changed signature is a
        // transaction the block does not hold.
        let badSignature = code { $0.title[0].transfer.transaction = forged }
        #expect(badSignature?.code == .transactionNotInBlock)
        #expect(badSignature?.message.contains("transfer 1 of the chain of title") == true)
        let genesis = code { $0.genesisHash = flip($0.genesisHash) }
        #expect(genesis?.code == .wrongGenesis)
        let refused = code { $0.title[2].transfer.receipt = Receipt(transaction: $0.title[2].transfer.transaction.id, rejection: Rejection(.notHolder, "x")) }
        #expect(refused?.code == .transactionRefused)
    }

    @Test func aMissingTransferBreaksTheChainOfTitle() throws {
        let (ledger, fragment) = try Self.story()
        var evidence = try Self.evidence(ledger, fragment)
        evidence.title.remove(at: 1)
        #expect {
            try Self.verify(ledger, evidence)
        } throws: { error in
            guard let error = error as? EvidenceError else { return false }
            return error.code == .titleBroken && error.message.contains("transfer 2 of the chain of title moves fragment")
                && error.message.contains("a transfer is missing")
        }
        var truncated = try Self.evidence(ledger, fragment)
        truncated.title.removeLast()
        #expect {
            try Self.verify(ledger, truncated)
        } throws: { error in
            (error as? EvidenceError)?.code == .fragmentMismatch
        }
    }

    @Test func aCertificateFromANonValidatorFails() throws {
        let (ledger, fragment) = try Self.story()
        var evidence = try Self.evidence(ledger, fragment)
        let consortium = ledger.consortium
        let outsider = TestConsortium.key(for: "not-a-validator", suite: consortium.suite)
        let header = evidence.title[0].transfer.header
        let hash = header.hash(suite: consortium.suite)
        // The outsider signs as validator index 7, which genesis does not have.
        let stranger = try CommitCertificate.vote(chainID: consortium.genesis.chainID, height: header.height, view: header.view,
                                                  blockHash: hash, validator: 7, key: outsider, suite: consortium.suite)
        var certificate = evidence.title[0].transfer.certificate
        certificate.votes = Array(certificate.votes.dropLast()) + [stranger]
        evidence.title[0].transfer.certificate = certificate
        #expect {
            try Self.verify(ledger, evidence)
        } throws: { error in
            guard let error = error as? EvidenceError else { return false }
            return error.code == .certificateInvalid && error.message.contains("not a genesis validator")
        }
        // Signing as a real validator's index with the outsider's key fails too.
        let impostor = try CommitCertificate.vote(chainID: consortium.genesis.chainID, height: header.height, view: header.view,
                                                  blockHash: hash, validator: 0, key: outsider, suite: consortium.suite)
        var second = try Self.evidence(ledger, fragment)
        second.asOfCertificate.votes = [impostor] + second.asOfCertificate.votes.dropFirst()
        #expect {
            try Self.verify(ledger, second)
        } throws: { error in
            (error as? EvidenceError)?.code == .certificateInvalid && "\(error)".contains("does not verify")
        }
        // Too few votes.
        var thin = try Self.evidence(ledger, fragment)
        thin.creation.certificate.votes.removeLast()
        #expect {
            try Self.verify(ledger, thin)
        } throws: { error in
            (error as? EvidenceError)?.code == .certificateInvalid && "\(error)".contains("needed")
        }
    }

    @Test func aMemberRegisteredAfterGenesisIsProvenByItsRegistration() throws {
        var ledger = Ledger()
        let (_, first) = try ledger.activeReceivable(face: 1_000_000_00)
        let newKey = TestConsortium.key(for: "member/tier4-supplier", suite: ledger.consortium.suite)
        let newcomer = Member(id: "tier4-supplier", legalName: "Tier-4 Springs Ltd", creditCode: TestConsortium.creditCode(for: "tier4-supplier"),
                              roles: [.supplier], publicKey: newKey.publicKey)
        #expect(try ledger.submit(C.operatorID, .registerMember(newcomer)) == nil)
        #expect(try ledger.submit(C.tier1, .transfer(fragment: first, to: "tier4-supplier", amount: 300_000_00)) == nil)
        let received = ledger.child(first, 0)
        let body = TransactionBody(chainID: ledger.consortium.genesis.chainID, signer: "tier4-supplier", nonce: 1,
                                   operation: .transfer(fragment: received, to: C.tier2, amount: 100_000_00))
        try ledger.commit([try SignedTransaction.sign(body, with: newKey, suite: ledger.consortium.suite)])
        let last = ledger.child(received, 0)
        let evidence = try Self.evidence(ledger, last)
        #expect(evidence.registrations.count == 1)
        #expect(try Self.verify(ledger, evidence).holder == C.tier2)
        var without = evidence
        without.registrations = []
        #expect {
            try Self.verify(ledger, without)
        } throws: { error in
            (error as? EvidenceError)?.code == .unknownSigner
        }
    }
}
