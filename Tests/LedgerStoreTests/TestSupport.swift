import Foundation
import LedgerCore
@testable import LedgerStore
import LedgerTestKit
import Testing

/// A fresh folder under the system temporary directory, removed when the value goes away.
final class TemporaryDirectory: Sendable {
    let path: String

    init(_ name: String = "store") {
        path = NSTemporaryDirectory() + "scf-\(name)-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A small generated chain written to a data file once, copied by each test that tampers with it.
struct ChainFixture: Sendable {
    let consortium: TestConsortium
    let template: String
    let blocks: Int
    let transactions: Int
    let rejected: Int
    let statistics: WorkloadStatistics
    /// The block that last wrote each fragment.
    let lastFragmentWrite: [FragmentID: Height]
    /// The final state, computed in memory alongside.
    let state: MemoryLedgerState
    private let directory: TemporaryDirectory

    static let consortium = TestConsortium(extraSuppliers: 12)
    static let shared: ChainFixture = try! ChainFixture(blocks: 48, transactionsPerBlock: 6, seed: 7)

    /// Two days of consensus time per block, so receivables mature and get settled within the chain.
    init(blocks: Int, transactionsPerBlock: Int, seed: UInt64, blockInterval: Int64 = 48 * 3_600_000) throws {
        consortium = ChainFixture.consortium
        directory = TemporaryDirectory("fixture")
        template = directory.file("template.sqlite")
        let store = try LedgerStore.open(path: template, genesis: consortium.genesis, suite: consortium.suite)
        var writer = try ChainWriter(store: store, generator: WorkloadGenerator(consortium: consortium, seed: seed,
                                                                                transactionsPerBlock: transactionsPerBlock,
                                                                                blockInterval: blockInterval))
        var writes: [FragmentID: Height] = [:]
        var state = MemoryLedgerState(genesis: consortium.genesis)
        var rejected = 0
        for _ in 0..<blocks {
            let (block, result) = try writer.writeBlock()
            for id in result.changes.fragments.keys { writes[id] = block.block.header.height }
            state.apply(result.changes)
            rejected += result.receipts.count { !$0.isCommitted }
        }
        store.close()
        self.blocks = blocks
        self.transactions = writer.timings.transactions
        self.rejected = rejected
        self.statistics = writer.generator.statistics
        self.lastFragmentWrite = writes
        self.state = state
    }

    /// Every block stored in a data file of this fixture's chain, in height order.
    func blocks(in path: String) throws -> [CommittedBlock] {
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        defer { store.close() }
        var blocks: [CommittedBlock] = []
        try store.forEachBlock { blocks.append($0); return true }
        return blocks
    }

    /// A private copy of the template data file.
    func copy(into directory: TemporaryDirectory) -> String {
        let path = directory.file("ledger.sqlite")
        try! FileManager.default.copyItem(atPath: template, toPath: path)
        return path
    }
}

/// Runs raw SQL on a data file, to tamper with it the way an attacker or a bad disk would.
func tamper(_ path: String, _ body: (Connection) throws -> Void) throws {
    let connection = try Connection(path: path, readOnly: false)
    try body(connection)
}

/// Every value of one column of a query, as raw SQL values.
func column(_ connection: Connection, _ sql: String, _ arguments: [SQLValue] = []) throws -> [SQLValue] {
    try connection.statement(sql).bind(arguments).map { $0.value(0) }
}

extension Height {
    static func + (lhs: Height, rhs: UInt64) -> Height { Height(lhs.value + rhs) }
}
