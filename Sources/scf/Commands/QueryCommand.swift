import ArgumentParser
import Foundation
import LedgerCore
import LedgerStore

struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the ledger: eligibility and invoices from a ledger file; status, receivables, fragments and blocks from a node.",
        discussion: """
        eligibility, invoice and invoices read a node's ledger file (--data ledger.sqlite or the node's
        data directory), as of its last committed block unless --as-of names an older one. status,
        receivable, fragments and block ask a running node's API (--node URL). Tables by default,
        JSON with --json.
        """,
        subcommands: [Eligibility.self, InvoiceCommand.self, Invoices.self, NodeStatusCommand.self, NodeReceivableCommand.self,
                      NodeFragmentsCommand.self, NodeBlockCommand.self, BenchEligibility.self]
    )

    // MARK: eligibility

    struct Eligibility: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Can a bank finance a fragment, for how much, and why (or why not)?",
            discussion: """
            Evaluates every hard rule of the ledger and every rule of the bank's policy file, as of one
            committed block, and prints each result with a reason, the maximum advance, the indicative
            discount and net proceeds, and the chain of title. Exits 0 when eligible, 3 when not.

            Batch (a bank's morning screening): --batch FILE with one fragment id per line, optionally
            followed by an amount ("<id> 95000.00"); a line without an amount asks for the most the
            policy's advance rate allows. One answer per line, in order.

            --evidence-out writes the evidence (root confirmation, chain of title, Merkle proofs and
            commit certificates) that `scf proof verify` checks offline against the genesis alone.
            """
        )
        @Argument(help: "The fragment id (64 hex characters).")
        var fragment: FragmentID?
        @Option(help: "The ledger file or node data directory.")
        var data: String
        @Option(help: "The bank that would finance.")
        var bank: MemberID
        @Option(help: "Amount to advance, in major units (e.g. 142500.00).")
        var amount: String?
        @Option(help: "Currency of --amount.")
        var currency: CurrencyCode = .cny
        @Option(help: "The bank's policy file (JSON). Without it only the ledger's rules apply.")
        var policy: String?
        @Option(name: .customLong("as-of"), help: "Answer as of this block height (default: the last block). Older heights replay the chain.")
        var asOf: UInt64?
        @Option(help: "A file of fragment ids (one per line, optional amount after a space) to screen in one go.")
        var batch: String?
        @Option(name: .customLong("evidence-out"), help: "Write the evidence for this answer to this file (JSON).")
        var evidenceOut: String?
        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            guard (fragment == nil) != (batch == nil) else { throw ValidationError("give either a fragment id or --batch FILE") }
            if fragment != nil && amount == nil { throw ValidationError("--amount is required for a single fragment") }
            if batch != nil && evidenceOut != nil { throw ValidationError("--evidence-out works with a single fragment, not --batch") }
        }

        func run() async throws {
            try await reportingErrors {
                let store = try LedgerFile.open(data)
                defer { store.close() }
                let policy = try self.policy.map { try PolicyFile.load($0) } ?? PolicyFile.ledgerRulesOnly(bank: bank, currency: currency)
                if let batch {
                    try runBatch(store: store, policy: policy, file: batch)
                } else if let fragment {
                    try runSingle(store: store, policy: policy, fragment: fragment)
                }
            }
        }

        func parseAmount(_ text: String) throws -> Money {
            guard let money = Money.parse(text, currency) else {
                throw CLIError("\"\(text)\" is not an amount in \(currency) (digits and at most \(currency.minorDigits) decimals, e.g. 1234.56)")
            }
            return money
        }

        /// Evaluates at the tip with the store, or below it on a replayed copy.
        /// A question whose amount may be left to the policy (screening: the most the advance rate allows).
        typealias Draft = (fragment: FragmentID, amount: Money?)

        func questions<S: LedgerStateReader>(_ drafts: [Draft], policy: EligibilityPolicy, state: S) throws -> [EligibilityEngine.Question] {
            try drafts.map { draft in
                if let amount = draft.amount { return EligibilityEngine.Question(fragment: draft.fragment, bank: bank, amount: amount) }
                let outstanding = try state.fragment(draft.fragment)?.outstanding ?? .zero
                return EligibilityEngine.Question(fragment: draft.fragment, bank: bank,
                                                  amount: Money(Pricing.advanceLimit(outstanding: outstanding, rateBps: policy.advanceRateBps), currency))
            }
        }

        func evaluate(store: LedgerStore, policy: EligibilityPolicy, _ drafts: [Draft])
            throws -> ([EligibilityAnswer], () throws -> EligibilityEvidence?) {
            if let asOf, asOf < store.tip.height.value {
                let replayed = try ReplayedLedger(store: store, through: Height(asOf))
                let questions = try questions(drafts, policy: policy, state: replayed.state)
                let engine = EligibilityEngine(genesis: store.genesis, suite: store.suite)
                let answers = try engine.evaluate(batch: questions, asOf: replayed.asOf, policy: policy, state: replayed.state,
                                                  aggregates: replayed.state, history: replayed.history)
                return (answers, {
                    guard let question = questions.first else { return nil }
                    return try EvidenceBuilder.build(fragment: question.fragment, asOf: replayed.asOf.height, genesis: store.genesis,
                                                     suite: store.suite, state: replayed.state, history: replayed.history)
                })
            }
            if let asOf, asOf > store.tip.height.value {
                throw CLIError("the ledger's last block is \(store.tip.height); there is no block \(asOf) yet")
            }
            let service = try StoreEligibility(store: store)
            let questions = try questions(drafts, policy: policy, state: store)
            let answers = try service.answers(questions, policy: policy)
            return (answers, {
                guard let question = questions.first else { return nil }
                return try service.evidence(for: question.fragment)
            })
        }

        func runSingle(store: LedgerStore, policy: EligibilityPolicy, fragment: FragmentID) throws {
            let (answers, evidence) = try evaluate(store: store, policy: policy, [(fragment, try parseAmount(amount ?? "0"))])
            let answer = answers[0]
            if let evidenceOut {
                guard answer.summary != nil else { throw CLIError("fragment \(fragment.hash.short)… is not on the ledger; there is no evidence to write") }
                guard let built = try evidence() else { return }
                try Files.write(try Files.encodeJSON(EvidenceFile(evidence: built, answer: answer, suite: store.suite)), to: evidenceOut, overwrite: true)
            }
            if json {
                print(String(decoding: try Files.encodeJSON(answer), as: UTF8.self), terminator: "")
            } else {
                print(EligibilityReport.render(answer, policyGiven: self.policy != nil))
                if let evidenceOut { print("\nEvidence written to \(evidenceOut); check it offline with `scf proof verify \(evidenceOut) --genesis GENESIS`.") }
            }
            if !answer.eligible { throw ExitCode(3) }
        }

        func runBatch(store: LedgerStore, policy: EligibilityPolicy, file: String) throws {
            let text = String(decoding: try Files.read(file, what: "batch file"), as: UTF8.self)
            var drafts: [Draft] = []
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).map(String.init)
                guard let first = words.first, !first.hasPrefix("#") else { continue }
                guard let id = FragmentID(argument: first) else {
                    throw CLIError("\(file) line \(number + 1): \"\(first)\" is not a fragment id (64 hex characters)")
                }
                drafts.append((id, words.count > 1 ? try parseAmount(words[1]) : try amount.map(parseAmount)))
            }
            let clock = ContinuousClock()
            let started = clock.now
            let (answers, _) = try evaluate(store: store, policy: policy, drafts)
            let elapsed = clock.now - started
            if json {
                print(String(decoding: try Files.encodeJSON(answers), as: UTF8.self), terminator: "")
                return
            }
            var table = Table("FRAGMENT", "ELIGIBLE", "ASKED", "MAX ADVANCE", "NET PROCEEDS", "FAILED / WARNED")
            for answer in answers {
                let notes = answer.failures.map(\.code.rawValue) + answer.warnings.map { "\($0.code.rawValue)(warn)" }
                table.add(answer.fragment.hash.short + "…", answer.eligible ? "yes" : "no", answer.requested.description,
                          Money.text(answer.maxAdvance), Money.text(answer.pricing?.netProceeds), notes.joined(separator: ","))
            }
            let asOfText = answers.first.map { "block \($0.asOf.height) \($0.asOf.blockHash.short)… (\($0.asOf.businessDate))" } ?? "-"
            print("Screening for \(bank) as of \(asOfText): \(answers.filter(\.eligible).count) of \(answers.count) eligible")
            print(table.rendered)
            print(String(format: "\n%d answers in %.1f ms", answers.count, Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000))
        }
    }

    // MARK: invoices

    struct InvoiceCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "invoice",
            abstract: "Show an invoice, the receivable it backs, every verification and its status."
        )
        @Argument(help: "The invoice: CODE/NUMBER, or NUMBER for a fully digital invoice.")
        var key: String
        @Option(help: "The ledger file or node data directory.")
        var data: String
        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            try await reportingErrors {
                guard let invoiceKey = InvoiceKey(text: key) else {
                    throw CLIError("\"\(key)\" is not an invoice key: CODE/NUMBER or NUMBER, letters and digits only")
                }
                let store = try LedgerFile.open(data)
                defer { store.close() }
                guard let record = try store.invoice(invoiceKey) else {
                    throw CLIError("invoice \(invoiceKey) is not on the ledger")
                }
                let root = try record.boundRoot.flatMap { try store.root($0) }
                if json {
                    struct Output: Encodable {
                        var invoice: Invoice; var status: String; var verification: String; var boundRoot: ReceivableID?
                        var debtor: MemberID?; var creditor: MemberID?; var face: Money?; var maturity: BusinessDate?
                        var replacedBy: String?; var attestations: [InvoiceAttestation]
                    }
                    print(String(decoding: try Files.encodeJSON(Output(
                        invoice: record.invoice, status: record.status.description, verification: InvoiceView.verification(record),
                        boundRoot: record.boundRoot, debtor: root?.debtor, creditor: root?.terms.creditor, face: root?.terms.face,
                        maturity: root?.terms.maturity, replacedBy: record.replacedBy?.description, attestations: record.attestations)),
                                 as: UTF8.self), terminator: "")
                    return
                }
                let invoice = record.invoice
                print("Invoice \(invoice.key) (\(invoice.type)), issued \(invoice.issueDate)")
                print("  seller \(invoice.sellerTaxID)  buyer \(invoice.buyerTaxID)")
                print("  amount \(invoice.amountExcludingTax) excluding tax, \(invoice.amountIncludingTax) including tax")
                print("  document hash \(invoice.documentHash)")
                print("  status \(record.status); verification: \(InvoiceView.verification(record))")
                if let replaced = record.replacedBy { print("  replaced by invoice \(replaced)") }
                if let root {
                    print("  backs receivable \(root.id) (\(root.status)): \(root.debtor) owes \(root.terms.creditor) \(root.terms.face), maturing \(root.terms.maturity)")
                } else {
                    print("  backs no receivable (released or replaced)")
                }
                var table = Table("ATTESTER", "SOURCE", "FOUND", "BLOCK", "TRANSACTION", "EVIDENCE")
                for attestation in record.attestations {
                    table.add(attestation.attester.rawValue, attestation.source == .verifier ? "verifier" : "debtor-confirmation",
                              attestation.status.description, attestation.height.description, attestation.transaction.short + "…",
                              attestation.evidenceHash.map { $0.short + "…" } ?? "-")
                }
                print("\nAttestations:")
                print(record.attestations.isEmpty ? "  none" : table.rendered)
            }
        }
    }

    struct Invoices: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List invoices by debtor (buyer) or seller, with their verification state."
        )
        @Option(help: "The debtor (buyer) member id.")
        var debtor: MemberID?
        @Option(help: "The seller member id.")
        var seller: MemberID?
        @Option(help: "The ledger file or node data directory.")
        var data: String
        @Option(help: "At most this many invoices.")
        var limit: Int = 1_000
        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            guard (debtor == nil) != (seller == nil) else { throw ValidationError("give exactly one of --debtor or --seller") }
        }

        func run() async throws {
            try await reportingErrors {
                let store = try LedgerFile.open(data)
                defer { store.close() }
                let who = (debtor ?? seller)!
                guard let member = try store.member(who) else { throw CLIError("\(who) is not a member of this consortium") }
                let records = debtor != nil ? try store.invoices(buyerTaxID: member.creditCode, limit: limit)
                    : try store.invoices(sellerTaxID: member.creditCode, limit: limit)
                if json {
                    struct Row: Encodable {
                        var key: String; var issueDate: BusinessDate; var amountIncludingTax: Money; var status: String
                        var verification: String; var boundRoot: ReceivableID?; var attestations: Int
                    }
                    print(String(decoding: try Files.encodeJSON(records.map {
                        Row(key: $0.invoice.key.description, issueDate: $0.invoice.issueDate, amountIncludingTax: $0.invoice.amountIncludingTax,
                            status: $0.status.description, verification: InvoiceView.verification($0), boundRoot: $0.boundRoot,
                            attestations: $0.attestations.count)
                    }), as: UTF8.self), terminator: "")
                    return
                }
                var table = Table("INVOICE", "ISSUED", "AMOUNT", "STATUS", "VERIFICATION", "RECEIVABLE")
                for record in records {
                    table.add(record.invoice.key.description, record.invoice.issueDate.description, record.invoice.amountIncludingTax.description,
                              record.status.description, InvoiceView.verification(record), record.boundRoot.map { $0.hash.short + "…" } ?? "-")
                }
                print("\(records.count) invoice\(records.count == 1 ? "" : "s") \(debtor != nil ? "owed by" : "issued by") \(who) (\(member.creditCode))")
                print(table.rendered)
            }
        }
    }
}

enum InvoiceView {
    /// "verified by X", "debtor-confirmed", "unverified", or the bad status a verifier found.
    static func verification(_ record: InvoiceRecord) -> String {
        let verifiers = record.attestations.filter { $0.source == .verifier }
        if let bad = verifiers.last(where: { $0.status != .normal }) { return "\(bad.status) per \(bad.attester)" }
        if !verifiers.isEmpty { return "verified by " + Set(verifiers.map(\.attester.rawValue)).sorted().joined(separator: ",") }
        if record.attestations.contains(where: { $0.source == .debtorConfirmation }) { return "debtor-confirmed" }
        return "unverified"
    }
}

/// The eligibility answer as a report for people.
enum EligibilityReport {
    static func render(_ answer: EligibilityAnswer, policyGiven: Bool) -> String {
        var lines: [String] = []
        lines.append("Fragment \(answer.fragment)")
        lines.append("Bank \(answer.bank), asking \(answer.requested), as of block \(answer.asOf.height) \(answer.asOf.blockHash.short)… (\(answer.asOf.businessDate))")
        if let summary = answer.summary {
            lines.append("Receivable \(summary.root.hash.short)…: \(summary.debtor) owes \(summary.face) to \(summary.creditor), maturing \(summary.maturity); this fragment: \(summary.outstanding) held by \(summary.holder) (\(summary.state))")
        }
        lines.append("")
        lines.append(answer.eligible ? (answer.warnings.isEmpty ? "ELIGIBLE" : "ELIGIBLE, with warnings") : "NOT ELIGIBLE")
        lines.append("")
        var table = Table("RULE", "KIND", "RESULT", "REASON")
        for rule in answer.rules {
            table.add(rule.code.rawValue, rule.code.isHardRule ? "ledger" : "policy", rule.outcome.rawValue.uppercased(), rule.message)
        }
        lines.append(table.rendered)
        if !policyGiven { lines.append("(no --policy given: ledger rules only, no credit line, tenor or rate limits)") }
        lines.append("")
        lines.append("Maximum advance: \(Money.text(answer.maxAdvance))")
        if let pricing = answer.pricing {
            lines.append("Indicative discount on \(pricing.advance): \(pricing.discount) (\(pricing.discountRateBps) bp a year, ACT/\(pricing.dayCountBasis), \(pricing.days) days); net proceeds \(pricing.netProceeds)")
        }
        if !answer.title.isEmpty {
            lines.append("\nChain of title (root → fragment):")
            var title = Table("#", "FRAGMENT", "BY", "SIGNER", "TO", "AMOUNT", "BLOCK", "TRANSACTION")
            let currency = answer.summary?.face.currency ?? answer.requested.currency
            for (index, link) in answer.title.enumerated() {
                title.add(String(index), link.fragment.hash.short + "…", link.kind, link.signer.rawValue, link.holder.rawValue,
                          Money(link.amount, currency).description, link.height.description, link.transaction.short + "…")
            }
            lines.append(title.rendered)
        }
        return lines.joined(separator: "\n")
    }
}
