import Foundation
import LedgerAPI
import LedgerCore
import LedgerNode

/// The supply-chain story on a real 4-validator consortium: four `scf node start` processes on
/// loopback, talking PBFT over mutual TLS, with every step a signed transaction submitted over
/// HTTP. One validator is killed (kill -9) mid-way and restarted; it catches up.
struct NetworkDemo {
    let consortium: LocalConsortium
    var step = 0

    static let core: MemberID = "core-enterprise", tier1: MemberID = "tier1-supplier", tier2: MemberID = "tier2-supplier"
    static let tier3: MemberID = "tier3-supplier", bankA: MemberID = "bank-a", bankB: MemberID = "bank-b"

    init(directory: String, suite: any CryptoSuite) throws {
        let today = ValidatorNode.wallClock().businessDate(utcOffsetMinutes: 480)
        consortium = try LocalConsortium(directory: directory, suite: suite, genesisDate: today)
    }

    func money(_ minor: Int64) -> String { Money(minor: minor, .cny).description }

    mutating func say(_ who: MemberID, _ text: String, _ outcome: (SignedTransaction, TransactionView), node: Int) {
        step += 1
        let (transaction, view) = outcome
        let result: String
        switch view.status {
        case "committed": result = "committed in block \(view.height?.description ?? "?")"
        case "rejected": result = "REFUSED \(view.code ?? "?"): \(view.message ?? "")"
        default: result = view.status
        }
        print("\(step). \(who): \(text)")
        print("   tx \(transaction.id.short)… via node-\(node): \(result)")
    }

    mutating func run() async throws {
        let consortium = self.consortium
        defer { consortium.stopAll() }
        let genesis = consortium.genesis, suite = consortium.suite
        print("SCF Ledger demo: 4 validators on loopback (PBFT over mutual TLS), chain \(genesis.chainID), suite \(suite.id)")
        print("data, keys and logs in \(consortium.directory)\n")
        for index in 0..<4 { try consortium.start(index) }
        for index in 0..<4 { try await consortium.waitUntilReady(index) }
        print("all 4 nodes are up and connected to each other\n")

        let today = ValidatorNode.wallClock().businessDate(utcOffsetMinutes: 480)
        let maturity = today.adding(days: 180)
        let face: Int64 = 1_000_000_00
        let tier1 = genesis.members.first { $0.id == Self.tier1 }!, core = genesis.members.first { $0.id == Self.core }!
        let invoice = Invoice(key: InvoiceKey(code: "3100261130", number: "00012345")!, type: .vatSpecial, issueDate: today,
                              sellerTaxID: tier1.creditCode, buyerTaxID: core.creditCode,
                              amountExcludingTax: Money(minor: 884_955_75, .cny), amountIncludingTax: Money(minor: face, .cny),
                              documentHash: suite.hash(Array("invoice 3100261130/00012345.pdf".utf8)))
        let terms = ReceivableTerms(debtor: Self.core, creditor: Self.tier1, face: Money(minor: face, .cny), issueDate: today, maturity: maturity,
                                    invoices: [invoice], documentHashes: [suite.hash(Array("purchase contract HX-2026-001".utf8))])
        let proposal = try await consortium.submit(Self.tier1, .proposeReceivable(terms), to: 0)
        say(Self.tier1, "proposes a receivable of \(money(face)) on \(Self.core), invoice \(invoice.key), maturing \(maturity)", proposal, node: 0)
        try require(proposal.1)
        let root = ReceivableID(proposal.0.id)
        let confirm = try await consortium.submit(Self.core, .confirmReceivable(root), to: 1)
        say(Self.core, "confirms it with its own key (确权)", confirm, node: 1)
        try require(confirm.1)
        let first = FragmentID.initial(of: root, suite: suite)
        let split1 = try await consortium.submit(Self.tier1, .transfer(fragment: first, to: Self.tier2, amount: 400_000_00), to: 2)
        say(Self.tier1, "splits off \(money(400_000_00)) to its supplier \(Self.tier2)", split1, node: 2)
        try require(split1.1)
        let toTier2 = FragmentID.child(of: first, index: 0, suite: suite)
        let split2 = try await consortium.submit(Self.tier2, .transfer(fragment: toTier2, to: Self.tier3, amount: 150_000_00), to: 3)
        say(Self.tier2, "splits off \(money(150_000_00)) to its supplier \(Self.tier3)", split2, node: 3)
        try require(split2.1)
        let toTier3 = FragmentID.child(of: toTier2, index: 0, suite: suite)

        consortium.kill(2)
        print("\n   … node-2 is killed (kill -9); the other three carry on …\n")
        let request = try await consortium.submit(Self.tier3, .requestFinancing(fragment: toTier3, bank: Self.bankA, amount: Money(minor: 142_500_00, .cny)), to: 0)
        say(Self.tier3, "asks \(Self.bankA) to finance its \(money(150_000_00)) fragment, requesting \(money(142_500_00))", request, node: 0)
        try require(request.1)
        // The bank reads the ledger of a node it trusts (node-0's file, read-only, while it runs).
        try DemoEligibility.show(ledgerPath: (consortium.directory as NSString).appendingPathComponent("data/node-0/ledger.sqlite"),
                                 fragment: toTier3, amount: 142_500_00)
        let approve = try await consortium.submit(Self.bankA, .approveFinancing(request: request.0.id, advance: 142_500_00), to: 1)
        say(Self.bankA, "approves and advances \(money(142_500_00)); it now holds the fragment", approve, node: 1)
        try require(approve.1)
        let double = try await consortium.submit(Self.tier3, .requestFinancing(fragment: toTier3, bank: Self.bankB, amount: Money(minor: 142_500_00, .cny)), to: 3)
        say(Self.tier3, "asks \(Self.bankB) to finance the same fragment (double financing)", double, node: 3)
        guard double.1.code == "alreadyFinanced" else { throw CLIError("double financing was not refused: \(double.1)") }

        try consortium.start(2)
        let head = try await consortium.status(0).height
        try await consortium.waitForHeight(2, head)
        print("\n   … node-2 restarts from its data directory and catches up to block \(head) …\n")

        let maturityTime = ConsensusTime(startOf: maturity, utcOffsetMinutes: 480).adding(milliseconds: 10 * 3_600_000)
        try consortium.setClockOffset(milliseconds: maturityTime.millisecondsSinceEpoch - ValidatorNode.wallClock().millisecondsSinceEpoch)
        try await Task.sleep(for: .milliseconds(500))
        print("   … every node's clock moves to the maturity date, \(maturity) …\n")
        let settle = try await consortium.submit(Self.core, .settle(root: root, amount: MinorUnits(face), paymentReference: "HX-PAY-\(maturity)"), to: 2)
        say(Self.core, "pays \(money(face)) at maturity", settle, node: 2)
        try require(settle.1)

        let detail = try await consortium.get(ReceivableDetail.self, node: 3, "/v1/receivables/\(root.hash.hex)")
        print("\nWho was paid what (as node-3 reports it):")
        var table = Table("FRAGMENT", "GEN", "HOLDER", "AMOUNT", "PAID", "STATE")
        for fragment in detail.fragments {
            table.add(fragment.id.hash.short, String(fragment.generation), fragment.holder.rawValue, money(fragment.amount.value),
                      fragment.state == "settled" ? money(fragment.amount.value) : "-", fragment.state)
        }
        print(table.rendered)
        print("\nReceivable \(root.hash.short)… is \(detail.receivable.status): \(money(detail.receivable.settled.value)) settled of \(money(face)).")

        let final = try await consortium.status(0).height
        for index in 0..<4 { try await consortium.waitForHeight(index, final) }
        print("\nHeads of the four nodes:")
        var heads: Set<Hash> = []
        for index in 0..<4 {
            let status = try await consortium.status(index)
            heads.insert(status.headHash)
            print("  node-\(index)  height \(status.height)  \(status.headHash)")
        }
        guard heads.count == 1 else { throw CLIError("the nodes' heads differ") }
        print("all equal.")
    }

    func require(_ view: TransactionView) throws {
        guard view.status == "committed" else {
            throw CLIError("the demo expected a commit, got \(view.status) \(view.code ?? "") \(view.message ?? "")")
        }
    }
}
