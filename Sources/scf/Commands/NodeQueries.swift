import ArgumentParser
import Foundation
import LedgerAPI
import LedgerCore

/// The node to ask, and the output form.
struct NodeOptions: ParsableArguments {
    @Option(help: "The node's API, e.g. http://127.0.0.1:8100.") var node: String = "http://127.0.0.1:8100"
    @Flag(help: "Print JSON instead of a table.") var json = false

    var client: NodeClient { NodeClient(base: node) }

    func printJSON<T: Encodable>(_ value: T) throws {
        print(String(decoding: try Files.encodeJSON(value), as: UTF8.self), terminator: "")
    }
}

func money(_ minor: MinorUnits, _ currency: CurrencyCode) -> String { Money(minor, currency).description }

struct NodeStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "A node's height, head, view, primary and peers.")
    @OptionGroup var options: NodeOptions
    func run() async throws {
        try await reportingErrors {
            let status = try options.client.get(StatusView.self, "/v1/status")
            if options.json { return try options.printJSON(status) }
            print("""
            node      \(status.validator)\(status.halted.map { "  HALTED: \($0)" } ?? "")
            chain     \(status.chainID) (\(status.cryptoSuite)), genesis \(status.genesisHash.short)
            height    \(status.height)  head \(status.headHash)
            view      \(status.view)  primary \(status.primary)\(status.isPrimary ? " (this node)" : "")
            pending   \(status.pendingTransactions) transactions\(status.catchingUp ? ", catching up" : "")\(status.readModelIndexesSuspended == true ? " (read-model indexes dropped until it ends)" : "")
            peers     \(status.peersConnected.isEmpty ? "none connected" : status.peersConnected.joined(separator: ", "))
            """)
        }
    }
}

struct NodeReceivableCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "receivable", abstract: "A receivable with its fragments, financing and history.")
    @Argument(help: "Receivable id.") var id: Hash
    @OptionGroup var options: NodeOptions
    func run() async throws {
        try await reportingErrors {
            let detail = try options.client.get(ReceivableDetail.self, "/v1/receivables/\(id.hex)")
            if options.json { return try options.printJSON(detail) }
            let root = detail.receivable
            print("receivable \(root.id)")
            print("  \(root.status): \(root.creditor) is owed \(root.face) by \(root.debtor), issued \(root.issueDate), matures \(root.maturity)")
            print("  settled \(money(root.settled, root.face.currency)), written off \(money(root.writtenOff, root.face.currency)); invoices \(root.invoices.joined(separator: ", "))\n")
            var fragments = Table("FRAGMENT", "GEN", "HOLDER", "AMOUNT", "OUTSTANDING", "STATE")
            for fragment in detail.fragments {
                fragments.add(fragment.id.hash.short, String(fragment.generation), fragment.holder.rawValue, money(fragment.amount, fragment.currency),
                              money(fragment.outstanding, fragment.currency), fragment.state + (fragment.frozen ? " (frozen)" : ""))
            }
            print(fragments.rendered + "\n")
            var history = Table("BLOCK", "TRANSACTION", "KIND", "SIGNER", "OUTCOME")
            for entry in detail.history {
                history.add(String(entry.height.value), entry.transaction.short, entry.kind, entry.signer.rawValue, entry.outcome)
            }
            print(history.rendered)
        }
    }
}

struct NodeFragmentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fragments", abstract: "Fragments held by a member and/or in a state.")
    @Option(help: "Holder's member id.") var holder: String?
    @Option(help: "active, locked, financed, transferred, split, settled or written-off.") var state: String?
    @OptionGroup var options: NodeOptions
    func run() async throws {
        try await reportingErrors {
            let query = [holder.map { "holder=\($0)" }, state.map { "state=\($0)" }].compactMap { $0 }.joined(separator: "&")
            let fragments = try options.client.get([FragmentView].self, "/v1/fragments?\(query)")
            if options.json { return try options.printJSON(fragments) }
            var table = Table("FRAGMENT", "RECEIVABLE", "GEN", "HOLDER", "OUTSTANDING", "STATE")
            for fragment in fragments {
                table.add(fragment.id.description, fragment.root.hash.short, String(fragment.generation), fragment.holder.rawValue,
                          money(fragment.outstanding, fragment.currency), fragment.state)
            }
            print(table.rendered)
        }
    }
}

struct NodeBlockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "block", abstract: "A committed block: header, transactions and certificate.")
    @Argument(help: "Block height.") var height: UInt64
    @OptionGroup var options: NodeOptions
    func run() async throws {
        try await reportingErrors {
            let block = try options.client.get(BlockView.self, "/v1/blocks/\(height)")
            if options.json { return try options.printJSON(block) }
            print("block \(block.height) \(block.hash)")
            print("  previous \(block.header.previousHash)\n  state    \(block.header.stateDigest)")
            print("  view \(block.header.view), proposer v\(block.header.proposer.value), \(block.transactions.count) transactions")
            print("  certified by validators \(block.certificate.votes.map { String($0.validator.value) }.joined(separator: ", "))")
            for id in block.transactions { print("  tx \(id)") }
        }
    }
}
