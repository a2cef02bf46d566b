import Foundation
import LedgerCore
import LedgerNode
import LedgerStore

/// `scf bench --replay LEDGER --genesis FILE`: catch-up's apply stage alone, on a real ledger.
/// Replays every block of the file into fresh files twice each way: batch after batch (one
/// database transaction per batch of `ValidatorNode.catchUpBatches`, executed then written),
/// and pipelined as a catching-up node applies them (turns of up to `catchUpTurnTransactions`,
/// the next batch executed while the one before is written). No network, no certificate
/// checks: what is left is re-execution and SQLite.
enum BenchReplay {
    static func run(ledger: String, genesisFile: String) throws {
        let genesis = try Genesisfile.load(genesisFile).0
        let suite = try CryptoSuites.make(for: genesis)
        let original = try LedgerStore.open(path: ledger, genesis: genesis, suite: suite)
        defer { original.close() }
        var blocks: [CommittedBlock] = []
        try original.forEachBlock { blocks.append($0); return true }
        let transactions = blocks.reduce(0) { $0 + $1.block.transactions.count }
        guard transactions > 0 else { throw CLIError("\(ledger) holds no transactions to replay") }
        let batches = ValidatorNode.catchUpBatches(blocks)
        let executor = BlockExecutor(genesis: genesis, suite: suite)
        let perTurn = max(1, ValidatorNode.catchUpTurnTransactions / ValidatorNode.catchUpBatchTransactions)
        let directory = NSTemporaryDirectory() + "scf-replay-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        print("replaying \(transactions) transactions in \(blocks.count) blocks (\(batches.count) batches) of \(ledger)")
        for round in 1...2 {
            for pipelined in [false, true] {
                let store = try LedgerStore.open(path: "\(directory)/\(round)-\(pipelined).sqlite", genesis: genesis, suite: suite)
                let start = ContinuousClock.now
                if pipelined {
                    var index = 0
                    while index < batches.count {
                        let turn = Array(batches[index..<min(index + perTurn, batches.count)])
                        if let error = store.appendCertified(batches: turn, executor: executor).error { throw error }
                        index += turn.count
                    }
                } else {
                    for batch in batches { try store.appendCertified(batch, executor: executor) }
                }
                let seconds = (ContinuousClock.now - start) / .seconds(1)
                guard store.tip == original.tip else { throw CLIError("the replay ended at block \(store.tip.height), not at the ledger's tip") }
                store.close()
                print("  round \(round), \(pipelined ? "pipelined   " : "batch by batch"): \(String(format: "%.2f", seconds)) s = \(Int(Double(transactions) / seconds)) tx/s")
            }
        }
    }
}
