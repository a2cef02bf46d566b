import ArgumentParser
import Foundation
import LedgerAPI
import LedgerCore

/// Options every `scf tx` subcommand shares: who signs, for which chain, with which nonce.
struct SigningOptions: ParsableArguments {
    @Option(help: "The consortium's genesis file (gives the chain id and crypto suite).")
    var genesis: String = "Genesis/genesis.json"
    @Option(help: "Your key file (mode 0600).")
    var key: String
    @Option(help: "Your member id (default: the genesis member whose key this is).")
    var signer: MemberID?
    @Option(help: "Your next nonce: 1 for your first transaction, then +1 each time.")
    var nonce: UInt64
    @Option(name: .shortAndLong, help: "Write the signed transaction to this file instead of standard output.")
    var out: String?
    @Flag(help: "Print the signed transaction as JSON (the default when writing to standard output).")
    var json = false
    @Option(help: "Submit the signed transaction to this node's API (e.g. http://127.0.0.1:8100) and wait for the outcome.")
    var node: String?
    @Option(help: "With --node: seconds to wait for the transaction to commit.")
    var wait: Double = 15

    func sign(_ operation: LedgerOperation) throws {
        let (genesis, suite) = try Genesisfile.load(genesis)
        let (keyFile, privateKey) = try KeyFile.load(key)
        guard keyFile.suite == genesis.cryptoSuite else {
            throw CLIError("your key is \(keyFile.suite) but chain \(genesis.chainID) uses \(genesis.cryptoSuite); generate a key with --suite \(genesis.cryptoSuite)")
        }
        let signingKey = try suite.signingKey(privateKey)
        let signerID: MemberID
        if let signer {
            signerID = signer
        } else if let member = genesis.members.first(where: { $0.publicKey == signingKey.publicKey }) {
            signerID = member.id
        } else {
            throw CLIError("your key does not belong to any genesis member; pass --signer with your member id")
        }
        guard nonce > 0 else { throw CLIError("nonces start at 1") }
        let body = TransactionBody(chainID: genesis.chainID, signer: signerID, nonce: nonce, operation: operation)
        let transaction = try SignedTransaction.sign(body, with: signingKey, suite: suite)
        let data = try Files.encodeJSON(TransactionFile(transaction))
        if let node {
            if let out { try Files.write(data, to: out) }
            let view = try NodeClient(base: node).submit(transaction, waitSeconds: wait)
            if json {
                print(String(decoding: try Files.encodeJSON(view), as: UTF8.self), terminator: "")
            } else {
                switch view.status {
                case "committed": print("\(operation.kind) by \(signerID) committed in block \(view.height?.description ?? "?")\ntransaction id \(transaction.id)")
                case "rejected": print("\(operation.kind) by \(signerID) REFUSED \(view.code ?? ""): \(view.message ?? "")\ntransaction id \(transaction.id)")
                default: print("\(operation.kind) by \(signerID) is \(view.status) (not committed within \(Int(wait)) s; check with the transaction id)\ntransaction id \(transaction.id)")
                }
            }
            if view.status == "rejected" { throw ExitCode(3) }
            return
        }
        if let out {
            try Files.write(data, to: out)
            if json { print(String(decoding: data, as: UTF8.self), terminator: "") } else {
                print("signed \(operation.kind) by \(signerID) (nonce \(nonce)) → \(out)\ntransaction id \(transaction.id)")
            }
        } else {
            print(String(decoding: data, as: UTF8.self), terminator: "")
        }
    }
}

/// An amount in major units ("1234.56") with its currency.
struct AmountOptions: ParsableArguments {
    @Option(help: "Amount in major units, e.g. 1234.56.")
    var amount: String
    @Option(help: "ISO 4217 currency code.")
    var currency: CurrencyCode = .cny

    func money() throws -> Money {
        guard let money = Money.parse(amount, currency) else {
            throw CLIError("\"\(amount)\" is not an amount in \(currency) (use digits and at most \(currency.minorDigits) decimals, e.g. 1234.56)")
        }
        return money
    }
}

struct Tx: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build and sign transactions offline. Your key never leaves this machine.",
        discussion: """
        Each subcommand signs one transaction with --key and prints it (or writes it with --out).
        Ids of receivables, fragments and requests are the 64-hex-character ids shown by queries.
        """,
        subcommands: [
            Propose.self, Issue.self, Confirm.self, Accept.self, Reject.self, Withdraw.self,
            Transfer.self, RequestFinancing.self, ApproveFinancing.self, RejectFinancing.self,
            Settle.self, WriteOff.self, Freeze.self, Unfreeze.self,
            AttestInvoice.self, ReplaceInvoice.self, RegisterMember.self, SetMemberStatus.self, Inspect.self,
        ]
    )

    struct Propose: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Supplier: propose a receivable the debtor must confirm.",
                                                        discussion: "The terms file is JSON: see docs/examples/terms.json.")
        @Option(help: "The receivable terms (JSON: debtor, creditor, face, issueDate, maturity, invoices, documentHashes, recourse).")
        var terms: String
        @OptionGroup var signing: SigningOptions
        func run() async throws {
            try await reportingErrors { try signing.sign(.proposeReceivable(try Files.decodeJSON(ReceivableTerms.self, from: terms, what: "terms file"))) }
        }
    }

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Debtor: issue a receivable to a supplier, who must accept it.")
        @Option(help: "The receivable terms (JSON).")
        var terms: String
        @OptionGroup var signing: SigningOptions
        func run() async throws {
            try await reportingErrors { try signing.sign(.issueReceivable(try Files.decodeJSON(ReceivableTerms.self, from: terms, what: "terms file"))) }
        }
    }

    struct Confirm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Debtor: confirm a proposed receivable (确权).")
        @Argument(help: "Receivable id.") var receivable: Hash
        @OptionGroup var signing: SigningOptions
        func run() async throws { try await reportingErrors { try signing.sign(.confirmReceivable(ReceivableID(receivable))) } }
    }

    struct Accept: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Supplier: accept a receivable the debtor issued to you.")
        @Argument(help: "Receivable id.") var receivable: Hash
        @OptionGroup var signing: SigningOptions
        func run() async throws { try await reportingErrors { try signing.sign(.acceptReceivable(ReceivableID(receivable))) } }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Counterparty: reject a proposed or issued receivable.")
        @Argument(help: "Receivable id.") var receivable: Hash
        @Option(help: "Why, for the other party.") var reason: String
        @OptionGroup var signing: SigningOptions
        func run() async throws { try await reportingErrors { try signing.sign(.rejectReceivable(ReceivableID(receivable), reason: reason)) } }
    }

    struct Withdraw: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Initiator: withdraw a receivable the other party has not acted on.")
        @Argument(help: "Receivable id.") var receivable: Hash
        @OptionGroup var signing: SigningOptions
        func run() async throws { try await reportingErrors { try signing.sign(.withdrawReceivable(ReceivableID(receivable))) } }
    }

    struct Transfer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Holder: transfer a fragment, whole or split, to another member.",
            discussion: "An amount below the fragment's outstanding amount splits it: the rest stays with you as a new fragment.")
        @Argument(help: "Fragment id.") var fragment: Hash
        @Option(help: "The member receiving it.") var to: MemberID
        @OptionGroup var amount: AmountOptions
        @OptionGroup var signing: SigningOptions
        func run() async throws {
            try await reportingErrors { try signing.sign(.transfer(fragment: FragmentID(fragment), to: to, amount: try amount.money().amount)) }
        }
    }

    struct RequestFinancing: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Holder: ask a bank to finance a fragment (locks it until the bank decides).")
        @Argument(help: "Fragment id.") var fragment: Hash
        @Option(help: "The bank.") var bank: MemberID
        @OptionGroup var amount: AmountOptions
        @OptionGroup var signing: SigningOptions
        func run() async throws {
            try await reportingErrors { try signing.sign(.requestFinancing(fragment: FragmentID(fragment), bank: bank, amount: try amount.money())) }
        }
    }

    struct ApproveFinancing: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Bank: approve a financing request; you become the holder.")
        @Argument(help: "Financing request id (the request transaction's id).") var request: Hash
        @Option(help: "Advance in major units.") var advance: String
        @Option(help: "Currency of the advance.") var currency: CurrencyCode = .cny
        @OptionGroup var signing: SigningOptions
        func run() async throws {
            try await reportingErrors {
                guard let money = Money.parse(advance, currency) else {
                    throw CLIError("\"\(advance)\" is not an amount in \(currency), e.g. 1234.56")
                }
                try signing.sign(.approveFinancing(request: request, advance: money.amount))
            }
        }
    }

    struct RejectFinancing: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Bank (or the applicant): close a pending financing request and unlock the fragment.")
        @Argument(help: "Financing request id.") var request: Hash
        @Option(help: "Why.") var reason: String
        @OptionGroup var signing: SigningOptions
        func run() async throws { try await reportingErrors { try signing.sign(.rejectFinancing(request: request, reason: reason)) } }
    }

    struct Settle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Debtor: record a payment at or after maturity, shared among all current holders.",
            discussion: "A payment below the total outstanding is shared pro rata to what each holder is owed.")
        @Argument(help: "Receivable id.") var receivable: Hash
        @OptionGroup var amount: AmountOptions
        @Option(help: "Your bank payment reference.") var reference: String
        @OptionGroup var signing: SigningOptions
        func run() async throws {
            try await reportingErrors {
                try signing.sign(.settle(root: ReceivableID(receivable), amount: try amount.money().amount, paymentReference: reference))
            }
        }
    }

    struct WriteOff: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Holder: write off what is still outstanding on a matured fragment.")
        @Argument(help: "Fragment id.") var fragment: Hash
        @Option(help: "Why.") var reason: String
        @OptionGroup var signing: SigningOptions
        func run() async throws { try await reportingErrors { try signing.sign(.writeOff(fragment: FragmentID(fragment), reason: reason)) } }
    }

    struct Freeze: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Operator or regulator: freeze a fragment (court order, dispute).")
        @Argument(help: "Fragment id.") var fragment: Hash
        @Option(help: "Why (e.g. the court order number).") var reason: String
        @OptionGroup var signing: SigningOptions
        func run() async throws { try await reportingErrors { try signing.sign(.freeze(fragment: FragmentID(fragment), reason: reason)) } }
    }

    struct Unfreeze: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Operator or regulator: lift a freeze.")
        @Argument(help: "Fragment id.") var fragment: Hash
        @Option(help: "Why.") var reason: String
        @OptionGroup var signing: SigningOptions
        func run() async throws { try await reportingErrors { try signing.sign(.unfreeze(fragment: FragmentID(fragment), reason: reason)) } }
    }

    struct AttestInvoice: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Invoice verifier: record what you found when you checked an invoice.")
        @Argument(help: "Invoice as CODE/NUMBER (or NUMBER for digital invoices).") var invoice: String
        @Option(help: "normal, voided or red-reversed.") var status: String
        @Option(help: "Hash of the evidence you keep (e.g. the tax authority's response).") var evidenceHash: Hash?
        @OptionGroup var signing: SigningOptions
        func run() async throws {
            try await reportingErrors {
                guard let key = InvoiceKey(text: invoice) else { throw CLIError("\"\(invoice)\" is not CODE/NUMBER (letters and digits)") }
                guard let parsed = InvoiceStatus.allCases.first(where: { $0.description == status }) else {
                    throw CLIError("status must be normal, voided or red-reversed")
                }
                try signing.sign(.attestInvoice(key, status: parsed, evidenceHash: evidenceHash))
            }
        }
    }

    struct ReplaceInvoice: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Creditor or holder: replace a voided or red-reversed invoice on a receivable.")
        @Argument(help: "Receivable id.") var receivable: Hash
        @Option(help: "The invoice to replace, CODE/NUMBER.") var old: String
        @Option(help: "The new invoice (JSON).") var invoice: String
        @OptionGroup var signing: SigningOptions
        func run() async throws {
            try await reportingErrors {
                guard let key = InvoiceKey(text: old) else { throw CLIError("\"\(old)\" is not CODE/NUMBER") }
                let new = try Files.decodeJSON(Invoice.self, from: invoice, what: "invoice file")
                try signing.sign(.replaceInvoice(root: ReceivableID(receivable), old: key, new: new))
            }
        }
    }

    struct RegisterMember: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Operator: admit a new member.")
        @Option(help: "The new member's id (a-z 0-9 - _ .).") var id: MemberID
        @Option(help: "Legal name.") var name: String
        @Option(help: "Unified social credit code (18 characters).") var creditCode: String
        @Option(help: "Comma-separated roles: core-enterprise, supplier, bank, operator, regulator, invoice-verifier.") var roles: String
        @Option(help: "The member's public key as suite:hex, or a path to its key file.") var publicKey: String
        @OptionGroup var signing: SigningOptions
        func run() async throws {
            try await reportingErrors {
                guard let code = UnifiedSocialCreditCode(creditCode) else {
                    throw CLIError("\(creditCode) is not a valid unified social credit code (check the 18th character)")
                }
                guard let parsedRoles = Roles(names: roles.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }),
                      !parsedRoles.isEmpty else {
                    throw CLIError("roles must be a comma-separated list of: \(Roles.named.map(\.0).joined(separator: ", "))")
                }
                let key = try PublicKey(text: publicKey) ?? KeyFile.publicKey(from: publicKey)
                try signing.sign(.registerMember(Member(id: id, legalName: name, creditCode: code, roles: parsedRoles, publicKey: key)))
            }
        }
    }

    struct SetMemberStatus: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Operator: suspend, blacklist or reinstate a member.")
        @Argument(help: "Member id.") var member: MemberID
        @Option(help: "active, suspended or blacklisted.") var status: String
        @Option(help: "Why.") var reason: String
        @OptionGroup var signing: SigningOptions
        func run() async throws {
            try await reportingErrors {
                guard let parsed = MemberStatus.allCases.first(where: { $0.description == status }) else {
                    throw CLIError("status must be active, suspended or blacklisted")
                }
                try signing.sign(.setMemberStatus(member: member, status: parsed, reason: reason))
            }
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Decode a signed transaction file and check its signature against genesis.")
        @Argument(help: "The transaction file.") var file: String
        @Option(help: "The genesis file.") var genesis: String = "Genesis/genesis.json"
        func run() async throws {
            try await reportingErrors {
                let (genesisValue, suite) = try Genesisfile.load(genesis)
                let transaction = try Files.decodeJSON(TransactionFile.self, from: file, what: "transaction file").decode(suite: suite)
                let body = transaction.body
                print("id        \(transaction.id)")
                print("chain     \(body.chainID)\(body.chainID == genesisValue.chainID ? "" : "  (NOT this chain: \(genesisValue.chainID))")")
                print("signer    \(body.signer)  nonce \(body.nonce)")
                print("operation \(body.operation.kind)")
                if let member = genesisValue.members.first(where: { $0.id == body.signer }) {
                    let valid = transaction.hasValidSignature(publicKey: member.publicKey, suite: suite)
                    print("signature \(valid ? "valid" : "INVALID") for \(member.id)'s genesis key")
                    if !valid { throw ExitCode(1) }
                } else {
                    print("signature not checked: \(body.signer) is not a genesis member")
                }
            }
        }
    }
}
