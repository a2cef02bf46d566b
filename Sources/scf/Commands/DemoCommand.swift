import ArgumentParser
import Foundation
import LedgerCore
import LedgerStore

/// The supply-chain story on a real ledger: signed transactions, certified blocks in SQLite, and a
/// full offline verification at the end.
///
/// This runs in one process that holds the four validators' keys and certifies each block with
/// three of them; the same story over a 4-node PBFT consortium on TCP is issue 4's `scf demo`.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the supply-chain finance story end to end on a fresh 4-validator consortium.",
        discussion: """
        Starts four validator processes (`scf node start`) on loopback in a temporary directory, then a
        core enterprise confirms a receivable to its tier-1 supplier, which splits it down to tier 2 and
        tier 3; one validator is killed; tier 3 is financed by a bank; a second bank is refused the same
        fragment; the killed validator restarts and catches up; at maturity the core enterprise pays every
        holder. Every step is a signed transaction submitted over HTTP. The nodes' clocks jump to the
        maturity date for the settlement. It ends by comparing the four nodes' head hashes and stops
        every process it started. --in-process runs the same story in one process, without a network.
        """
    )

    @Option(help: "Keep the demo's data (genesis, keys, ledgers, logs) in this directory instead of a temporary one.")
    var keep: String?
    @Option(help: "Crypto suite: ed25519-sha256 or sm2-sm3.")
    var crypto: CryptoSuiteID = .ed25519SHA256
    @Flag(help: "Run the story in one process (certified blocks in SQLite, no network).")
    var inProcess = false

    func run() async throws {
        try await reportingErrors {
            let clock = ContinuousClock()
            let started = clock.now
            let directory = keep ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("scf-demo-\(getpid())")
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { if keep == nil { try? FileManager.default.removeItem(atPath: directory) } }
            if inProcess {
                var story = try DemoStory(directory: directory, suite: try CryptoSuites.make(crypto))
                try story.run()
            } else {
                var story = try NetworkDemo(directory: directory, suite: try CryptoSuites.make(crypto))
                try await story.run()
            }
            let elapsed = clock.now - started
            print("\nDone in \(elapsed.formatted(.units(allowed: [.seconds, .milliseconds], width: .abbreviated))).\(keep.map { " Data kept in \($0)." } ?? "")")
        }
    }
}

struct DemoStory {
    let directory: String
    let suite: any CryptoSuite
    let genesis: Genesis
    let store: LedgerStore
    let executor: BlockExecutor
    var keys: [MemberID: any SigningKey] = [:]
    let validatorKeys: [any SigningKey]
    var nonces: [MemberID: UInt64] = [:]
    var clock: ConsensusTime
    var step = 0

    static let core: MemberID = "core-enterprise", tier1: MemberID = "tier1-supplier", tier2: MemberID = "tier2-supplier"
    static let tier3: MemberID = "tier3-supplier", bankA: MemberID = "bank-a", bankB: MemberID = "bank-b"

    init(directory: String, suite: any CryptoSuite) throws {
        self.directory = directory
        self.suite = suite
        func newKey(_ name: String) throws -> any SigningKey {
            var generator = SystemRandomNumberGenerator()
            let seed = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let privateKey = try suite.privateKey(seed: seed)
            let key = try suite.signingKey(privateKey)
            let file = KeyFile(suite: suite.id, privateKey: privateKey.rawRepresentation.hexString, publicKey: key.publicKey)
            try Files.write(try Files.encodeJSON(file), to: (directory as NSString).appendingPathComponent("keys/\(name).key"),
                            secret: true, overwrite: true)
            return key
        }
        var members: [Member] = []
        for (id, name, roles, code) in LocalConsortium.members {
            let key = try newKey(id.rawValue)
            keys[id] = key
            members.append(Member(id: id, legalName: name, creditCode: UnifiedSocialCreditCode(code)!, roles: roles, publicKey: key.publicKey))
        }
        var validators: [Validator] = []
        var validatorKeys: [any SigningKey] = []
        for (index, owner) in LocalConsortium.validatorOwners.enumerated() {
            let key = try newKey("node-\(index)")
            validatorKeys.append(key)
            validators.append(Validator(name: "node-\(index)", member: owner, publicKey: key.publicKey))
        }
        self.validatorKeys = validatorKeys
        genesis = Genesis(chainID: "scf-demo", cryptoSuite: suite.id, genesisTime: ConsensusTime(startOf: BusinessDate("2026-01-05")!, utcOffsetMinutes: 480),
                          members: members, validators: validators)
        try Files.write(try Files.encodeJSON(genesis), to: (directory as NSString).appendingPathComponent("genesis.json"), overwrite: true)
        let ledgerPath = (directory as NSString).appendingPathComponent("ledger.sqlite")
        try? FileManager.default.removeItem(atPath: ledgerPath)
        store = try LedgerStore.open(path: ledgerPath, genesis: genesis, suite: suite)
        executor = BlockExecutor(genesis: genesis, suite: suite)
        clock = genesis.genesisTime.adding(milliseconds: 9 * 3_600_000)
    }

    /// Signs one transaction, puts it in the next block, certifies the block with a quorum of
    /// validator keys, stores it, and returns the receipt.
    mutating func commit(_ signer: MemberID, _ operation: LedgerOperation) throws -> (SignedTransaction, Receipt, Height) {
        let nonce = nonces[signer, default: 0] + 1
        nonces[signer] = nonce
        let transaction = try SignedTransaction.sign(TransactionBody(chainID: genesis.chainID, signer: signer, nonce: nonce, operation: operation),
                                                     with: keys[signer]!, suite: suite)
        clock = max(clock.adding(milliseconds: 60_000), store.tip.timestamp.adding(milliseconds: 1))
        let (block, result) = try executor.makeBlock(candidates: [transaction], on: store.tip, timestamp: clock, view: 0,
                                                     proposer: genesis.validatorSet.primary(of: 0), state: store, signatures: .verify)
        let hash = block.hash(suite: suite)
        let votes = try (0..<genesis.validatorSet.quorum).map { index in
            try CommitCertificate.vote(chainID: genesis.chainID, height: block.header.height, view: 0, blockHash: hash,
                                       validator: ValidatorIndex(UInt16(index)), key: validatorKeys[index], suite: suite)
        }
        try store.append(CommittedBlock(block: block, certificate: CommitCertificate(height: block.header.height, view: 0, blockHash: hash, votes: votes)),
                         result: result)
        return (transaction, result.receipts[0], block.header.height)
    }

    mutating func say(_ who: MemberID, _ text: String, _ outcome: (SignedTransaction, Receipt, Height)) {
        step += 1
        let (transaction, receipt, height) = outcome
        let result = receipt.rejection.map { "REFUSED \($0.code.rawValue): \($0.message)" } ?? "committed"
        print("\(step). \(who): \(text)")
        print("   tx \(transaction.id.short)… in block \(height): \(result)")
    }

    func money(_ minor: Int64) -> String { Money(minor: minor, .cny).description }

    mutating func run() throws {
        print("SCF Ledger demo: chain \(genesis.chainID), suite \(suite.id), 4 validators (quorum \(genesis.validatorSet.quorum)), data in \(directory)\n")
        let face: Int64 = 1_000_000_00
        let tier1 = genesis.members.first { $0.id == Self.tier1 }!, core = genesis.members.first { $0.id == Self.core }!
        let invoice = Invoice(key: InvoiceKey(code: "3100261130", number: "00012345")!, type: .vatSpecial, issueDate: BusinessDate("2026-01-05")!,
                              sellerTaxID: tier1.creditCode, buyerTaxID: core.creditCode,
                              amountExcludingTax: Money(minor: 884_955_75, .cny), amountIncludingTax: Money(minor: face, .cny),
                              documentHash: suite.hash(Array("invoice 3100261130/00012345.pdf".utf8)))
        let terms = ReceivableTerms(debtor: Self.core, creditor: Self.tier1, face: Money(minor: face, .cny), issueDate: BusinessDate("2026-01-05")!,
                                    maturity: BusinessDate("2026-07-06")!, invoices: [invoice],
                                    documentHashes: [suite.hash(Array("purchase contract HX-2026-001".utf8))])
        let proposal = try commit(Self.tier1, .proposeReceivable(terms))
        say(Self.tier1, "proposes a receivable of \(money(face)) on \(Self.core), invoice \(invoice.key), maturing 2026-07-06", proposal)
        let root = ReceivableID(proposal.0.id)
        say(Self.core, "confirms it with its own key (确权)", try commit(Self.core, .confirmReceivable(root)))
        let first = FragmentID.initial(of: root, suite: suite)
        say(Self.tier1, "splits off \(money(400_000_00)) to its supplier \(Self.tier2)",
            try commit(Self.tier1, .transfer(fragment: first, to: Self.tier2, amount: 400_000_00)))
        let toTier2 = FragmentID.child(of: first, index: 0, suite: suite)
        say(Self.tier2, "splits off \(money(150_000_00)) to its supplier \(Self.tier3)",
            try commit(Self.tier2, .transfer(fragment: toTier2, to: Self.tier3, amount: 150_000_00)))
        let toTier3 = FragmentID.child(of: toTier2, index: 0, suite: suite)
        let request = try commit(Self.tier3, .requestFinancing(fragment: toTier3, bank: Self.bankA, amount: Money(minor: 142_500_00, .cny)))
        say(Self.tier3, "asks \(Self.bankA) to finance its \(money(150_000_00)) fragment, requesting \(money(142_500_00))", request)
        try showEligibility(fragment: toTier3, amount: 142_500_00)
        say(Self.bankA, "approves and advances \(money(142_500_00)); it now holds the fragment",
            try commit(Self.bankA, .approveFinancing(request: request.0.id, advance: 142_500_00)))
        say(Self.tier3, "asks \(Self.bankB) to finance the same fragment (double financing)",
            try commit(Self.tier3, .requestFinancing(fragment: toTier3, bank: Self.bankB, amount: Money(minor: 142_500_00, .cny))))
        clock = ConsensusTime(startOf: BusinessDate("2026-07-06")!, utcOffsetMinutes: 480).adding(milliseconds: 10 * 3_600_000)
        print("\n   … the clock moves to the maturity date, 2026-07-06 …\n")
        say(Self.core, "pays \(money(face)) at maturity (reference HX-PAY-0706)",
            try commit(Self.core, .settle(root: root, amount: MinorUnits(face), paymentReference: "HX-PAY-0706")))

        print("\nWho was paid what:")
        var table = Table("FRAGMENT", "GEN", "HOLDER", "AMOUNT", "PAID", "STATE")
        for fragment in try store.fragments(ofRoot: root).sorted(by: { ($0.generation, $0.id) < ($1.generation, $1.id) }) {
            let paid = fragment.state == .settled ? money(fragment.amount.value) : "-"
            table.add(fragment.id.hash.short, String(fragment.generation), fragment.holder.rawValue, money(fragment.amount.value), paid, fragment.state.description)
        }
        print(table.rendered)
        let closed = try store.root(root)!
        print("\nReceivable \(root.hash.short)… is \(closed.status): \(money(closed.settled.value)) settled of \(money(face)).")

        print("\nVerifying the whole ledger from genesis (hashes, signatures, certificates, state)…")
        let report = try LedgerVerifier().verify(path: (directory as NSString).appendingPathComponent("ledger.sqlite"), genesis: genesis)
        if let failure = report.failure { throw CLIError("the demo ledger failed verification: \(failure)") }
        print("OK: \(report.verifiedBlocks) blocks, \(report.transactions) transactions; head \(report.tip.height) \(report.tip.hash)")
    }
}
