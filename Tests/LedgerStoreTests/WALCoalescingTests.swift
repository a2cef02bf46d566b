import Foundation
import LedgerCore
@testable import LedgerStore
import LedgerTestKit
import Testing

/// The VFS that gathers a writing connection's WAL writes (`scf_sqlite_coalescing_vfs`,
/// docs/DECISIONS.md 40): fewer write calls, and nothing a reader or a restart could miss.
@Suite struct WALCoalescingTests {
    let fixture = ChainFixture.shared
    var consortium: TestConsortium { fixture.consortium }

    /// Writes `blocks` generated blocks to a fresh file and calls `each` after every one.
    func writeChain(at path: String, blocks: Int, each: (LedgerStore, Height) throws -> Void = { _, _ in }) throws {
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        defer { store.close() }
        var writer = try ChainWriter(store: store, generator: WorkloadGenerator(consortium: consortium, seed: 11,
                                                                                transactionsPerBlock: 40,
                                                                                blockInterval: 48 * 3_600_000))
        for _ in 0..<blocks {
            let (block, _) = try writer.writeBlock()
            try each(store, block.block.header.height)
        }
    }

    @Test func walFramesReachTheFileInFewWriteCalls() throws {
        let directory = TemporaryDirectory("wal")
        let before = Connection.walWriteCalls
        try writeChain(at: directory.file("ledger.sqlite"), blocks: 12)
        let after = Connection.walWriteCalls
        let asked = after.sqlite - before.sqlite
        let made = after.file - before.file
        // Other tests write at the same time; their writes are gathered the same way.
        #expect(asked > 200, "SQLite wrote \(asked) times to WAL files")
        #expect(made * 4 < asked, "\(made) write calls reached the files for the \(asked) SQLite made")
    }

    @Test func aReaderSeesEveryBlockAsSoonAsItIsCommitted() throws {
        let directory = TemporaryDirectory("wal")
        let path = directory.file("ledger.sqlite")
        var reader: Connection?
        try writeChain(at: path, blocks: 10) { store, height in
            // A separate read-only connection (the API's kind) opened before the block was written
            // reads it, and every row of it, from the WAL right after the commit.
            if reader == nil { reader = try Connection(path: path, readOnly: true) }
            let rows = try #require(reader).statement("SELECT height, hash FROM block WHERE height = ?").bind([.integer(Int64(height.value))]).map { $0.values }
            #expect(rows.count == 1, "block \(height) not visible to a reader after its commit")
            let count = try #require(reader).statement("SELECT COUNT(*) FROM \"transaction\" WHERE height = ?").bind([.integer(Int64(height.value))]).map { $0.values }
            let stored = try store.transactions(inBlock: height).count
            #expect(count.first?.first == .integer(Int64(stored)) && stored > 0)
        }
    }

    @Test func aCheckpointedFileIsWholeAfterReopening() throws {
        let directory = TemporaryDirectory("wal")
        let path = directory.file("ledger.sqlite")
        try writeChain(at: path, blocks: 8) { store, height in
            // Checkpoints in the middle of the chain copy frames (read back from the WAL) into the file.
            guard height.value % 3 == 0 else { return }
            let busy = try store.pragma("wal_checkpoint(FULL)")
            #expect(busy == .integer(0), "the checkpoint was blocked")
        }
        let connection = try Connection(path: path, readOnly: true)
        let check = try connection.statement("PRAGMA integrity_check").map { $0.values }
        #expect(check.first?.first == .text("ok"), "integrity_check: \(check)")
        let report = try LedgerVerifier().verify(path: path, genesis: consortium.genesis)
        #expect(report.isValid, "\(report.summary)")
        #expect(report.tip.height == Height(8))
    }
}
