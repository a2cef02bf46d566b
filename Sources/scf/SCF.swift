import ArgumentParser

@main
struct SCF: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scf",
        abstract: "SCF Ledger: a consortium ledger for supply-chain finance.",
        discussion: """
        Members keep one hash-chained, signed ledger of receivables, debtor confirmations, transfers,
        financings and settlements. Private keys stay on your machine: transactions are signed locally.
        """,
        subcommands: [Demo.self, NodeCommand.self, ClusterCheck.self, Keys.self, GenesisCommand.self, NetworkCommand.self, Tx.self, Query.self, Proof.self, LedgerCommand.self, Dev.self, FaultCommand.self, Bench.self]
    )
}
