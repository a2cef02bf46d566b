import Foundation
import LedgerCore
import LedgerNode
import LedgerStore

/// `scf bench --replay LEDGER --genesis FILE`: catch-up's apply stage alone, on a real ledger.
/// Replays every block of the file into fresh files twice each way: batch after batch (one
/// database transaction per batch of `ValidatorNode.catchUpBatches`, executed then written),
/// and pipelined as a catching-up node far behind applies them (turns cut by
/// `ValidatorNode.catchUpTurns`, later turns joining one as in `ValidatorNode.applyCatchUp`, the
/// next batch executed while the one before is written), and pipelined in bulk as such a node
/// replays a history large against its ledger: read-model indexes dropped first and built again
/// at the end, the building timed with the rest (DECISIONS 45). No network, no certificate
/// checks: what is left is re-execution and SQLite.
enum BenchReplay {
    enum Mode: String, CaseIterable {
        case batchByBatch = "batch by batch"
        case pipelined = "pipelined     "
        case bulk = "pipelined bulk"
    }

    static func run(ledger: String, genesisFile: String) throws {
        let genesis = try Genesisfile.load(genesisFile).0
        let suite = try CryptoSuites.make(for: genesis)
        let original = try LedgerStore.open(path: ledger, genesis: genesis, suite: suite)
        defer { original.close() }
        var blocks: [CommittedBlock] = []
        try original.forEachBlock { blocks.append($0); return true }
        let transactions = blocks.reduce(0) { $0 + $1.block.transactions.count }
        guard transactions > 0 else { throw CLIError("\(ledger) holds no transactions to replay") }
        let turns = ValidatorNode.catchUpTurns(blocks)
        let batches = turns.map(ValidatorNode.catchUpBatches)
        let executor = BlockExecutor(genesis: genesis, suite: suite)
        let directory = NSTemporaryDirectory() + "scf-replay-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        print("replaying \(transactions) transactions in \(blocks.count) blocks (\(turns.count) turns, \(batches.joined().count) batches) of \(ledger)")
        for round in 1...2 {
            for mode in Mode.allCases {
                let store = try LedgerStore.open(path: "\(directory)/\(round)-\(mode).sqlite", genesis: genesis, suite: suite)
                let start = ContinuousClock.now
                var progress = ReplayProgress(total: transactions, start: start)
                if mode == .bulk { try store.suspendReadModelIndexes() }
                if mode != .batchByBatch {
                    // As a node far behind: later turns join a turn's pipeline, up to
                    // `catchUpTurnExtraTransactions` of them, before its writes are waited for.
                    var next = 0
                    while next < batches.count {
                        let first = batches[next]
                        next += 1
                        var extra = 0
                        let result = store.appendCertified(batches: first, executor: executor) {
                            guard next < batches.count, extra < ValidatorNode.catchUpTurnExtraTransactions else { return [] }
                            defer { next += 1 }
                            extra += batches[next].joined().reduce(0) { $0 + $1.block.transactions.count }
                            return batches[next]
                        }
                        if let error = result.error { throw error }
                        progress.add(result.stored.joined().reduce(0) { $0 + $1.count })
                    }
                } else {
                    for batch in batches.joined() {
                        try store.appendCertified(batch, executor: executor)
                        progress.add(batch.reduce(0) { $0 + $1.block.transactions.count })
                    }
                }
                var building = ""
                if mode == .bulk {
                    let built = ContinuousClock.now
                    try store.restoreReadModelIndexes()
                    building = String(format: " (building the indexes %.2f s of it)", (ContinuousClock.now - built) / .seconds(1))
                }
                let seconds = (ContinuousClock.now - start) / .seconds(1)
                guard store.tip == original.tip else { throw CLIError("the replay ended at block \(store.tip.height), not at the ledger's tip") }
                store.close()
                print("  round \(round), \(mode.rawValue): \(String(format: "%.2f", seconds)) s = \(Int(Double(transactions) / seconds)) tx/s\(building)")
            }
        }
    }
}

/// Prints how long each further 100,000 transactions of a replay took: a long ledger replays for
/// minutes, and the time per 100,000 shows whether the store slows down as it grows (it does:
/// docs/BENCHMARKS.md, "The store slows as the ledger grows").
struct ReplayProgress {
    static let step = 100_000
    let total: Int
    private(set) var done = 0
    private var nextMark = ReplayProgress.step
    private var last: ContinuousClock.Instant

    init(total: Int, start: ContinuousClock.Instant) {
        self.total = total
        last = start
    }

    /// Counts `transactions` more as replayed and prints the line `line(after:now:)` returns.
    mutating func add(_ transactions: Int) {
        if let line = line(after: transactions, now: .now) { print(line) }
    }

    /// The line to print once another 100,000 transactions are done (none for the last stretch:
    /// the round's total follows it), with the time since the previous line or the start.
    mutating func line(after transactions: Int, now: ContinuousClock.Instant) -> String? {
        done += transactions
        guard done >= nextMark, done < total else { return nil }
        let seconds = (now - last) / .seconds(1)
        last = now
        nextMark = (done / Self.step + 1) * Self.step
        return "    \(done) of \(total) transactions: \(String(format: "%.2f", seconds)) s since the last line"
    }
}
