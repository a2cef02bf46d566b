import ArgumentParser
import Foundation
import LedgerCore

struct Proof: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check evidence offline.",
        subcommands: [Verify.self]
    )

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify eligibility evidence against the genesis validator set alone.",
            discussion: """
            Checks, with nothing but the consortium's genesis file: every block's commit certificate
            (a quorum of genesis validators), the Merkle proof of every transaction to its block's
            transactionsRoot and of its committed receipt to resultsRoot, every signature against the
            signer's key (genesis, or a registration in the evidence), that the debtor itself
            confirmed the receivable, and that the chain of title links the root to the fragment.
            If the file carries an answer, checks that its as-of block and chain of title are the
            ones proven. Exits 0 when the evidence holds, 1 with the precise reason when it does not.
            """
        )
        @Argument(help: "The evidence file written by `scf query eligibility --evidence-out`.")
        var file: String
        @Option(help: "The consortium's genesis file.")
        var genesis: String = "Genesis/genesis.json"
        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            try await reportingErrors {
                let (genesis, suite) = try Genesisfile.load(genesis)
                let document = try Files.decodeJSON(EvidenceFile.self, from: file, what: "evidence file")
                let outcome: Result<VerifiedTitle, EvidenceError>
                if let bytes = [UInt8](hex: document.evidence) {
                    do {
                        let evidence = try EligibilityEvidence(canonicalBytes: bytes, suite: suite)
                        outcome = Result { () throws(EvidenceError) in try EvidenceVerifier(genesis: genesis, suite: suite).verify(evidence) }
                    } catch {
                        outcome = .failure(EvidenceError(.malformed, "the evidence bytes do not decode: \(error)"))
                    }
                } else {
                    outcome = .failure(EvidenceError(.malformed, "the evidence field is not hex"))
                }
                var result = outcome
                if case .success(let title) = outcome, let answer = document.answer {
                    if let problem = ProofCheck.answerMismatch(answer, title) { result = .failure(problem) }
                }
                if json {
                    struct Output: Encodable {
                        var valid: Bool; var code: String?; var reason: String?; var root: ReceivableID?; var fragment: FragmentID?
                        var holder: MemberID?; var debtor: MemberID?; var confirmation: Hash?; var asOfHeight: Height?; var asOfHash: Hash?
                        var links: [TitleLink]?
                    }
                    let output: Output
                    switch result {
                    case .success(let title):
                        output = Output(valid: true, root: title.root, fragment: title.fragment, holder: title.holder, debtor: title.terms.debtor,
                                        confirmation: title.confirmation, asOfHeight: title.asOfHeight, asOfHash: title.asOfHash, links: title.links)
                    case .failure(let error):
                        output = Output(valid: false, code: error.code.rawValue, reason: error.message)
                    }
                    print(String(decoding: try Files.encodeJSON(output), as: UTF8.self), terminator: "")
                } else {
                    switch result {
                    case .success(let title):
                        let terms = title.terms
                        print("VALID  evidence for fragment \(title.fragment.hash.short)… of receivable \(title.root.hash.short)…")
                        print("  \(terms.debtor) owes \(terms.face) to \(terms.creditor), maturing \(terms.maturity); confirmed by the debtor's own key (tx \(title.confirmation.short)…)")
                        print("  as of block \(title.asOfHeight) \(title.asOfHash.short)…, certified by a quorum of the \(genesis.validators.count) genesis validators")
                        var table = Table("#", "FRAGMENT", "BY", "SIGNER", "TO", "AMOUNT", "BLOCK")
                        for (index, link) in title.links.enumerated() {
                            table.add(String(index), link.fragment.hash.short + "…", link.kind, link.signer.rawValue, link.holder.rawValue,
                                      Money(link.amount, terms.face.currency).description, link.height.description)
                        }
                        print("\nChain of title (every transaction certified, included and committed):")
                        print(table.rendered)
                        print("\nNot proven by this evidence: events after the last transfer (a later financing, freeze or settlement);")
                        print("those are the answer's state rules. Re-execute the chain with `scf ledger verify` to check them independently.")
                    case .failure(let error):
                        print("INVALID  \(error.code.rawValue): \(error.message)")
                    }
                }
                if case .failure = result { throw ExitCode(1) }
            }
        }
    }
}

enum ProofCheck {
    /// An answer travelling with evidence must be about the proven fragment, at the proven block,
    /// with the proven chain of title.
    static func answerMismatch(_ answer: EligibilityAnswer, _ title: VerifiedTitle) -> EvidenceError? {
        guard answer.fragment == title.fragment else {
            return EvidenceError(.fragmentMismatch, "the answer is about fragment \(answer.fragment.hash.short)…, the evidence about \(title.fragment.hash.short)…")
        }
        guard answer.asOf.height == title.asOfHeight, answer.asOf.blockHash == title.asOfHash else {
            return EvidenceError(.afterAsOf, "the answer is as of block \(answer.asOf.height) \(answer.asOf.blockHash.short)…, the evidence as of \(title.asOfHeight) \(title.asOfHash.short)…")
        }
        guard answer.title == title.links else {
            return EvidenceError(.titleBroken, "the answer's chain of title differs from the one the evidence proves")
        }
        return nil
    }
}
