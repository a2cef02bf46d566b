import Foundation
import LedgerCore
@testable import LedgerStore
import LedgerTestKit
import Testing

/// The v3 row shapes (issue 6): transaction rows that point into the block's wire, the id index
/// on an 8-byte prefix, the narrow upserts of state rows, the page size of new files, and the
/// migration of a file an older scf wrote.
@Suite struct CompactRowsTests {
    let fixture = ChainFixture.shared
    var consortium: TestConsortium { fixture.consortium }

    func blocks(of path: String) throws -> [CommittedBlock] { try fixture.blocks(in: path) }

    @Test func theStoreEncodesBlocksByteForByteAsTheBlockDoesAndFindsEachTransactionInThem() throws {
        let directory = TemporaryDirectory()
        let chain = try blocks(of: fixture.copy(into: directory))
        #expect(chain.count == fixture.blocks)
        for committed in chain {
            let block = committed.block
            let (bytes, ranges) = Rows.wire(of: block)
            #expect(bytes == block.wireBytes)
            #expect(ranges.count == block.transactions.count)
            for (range, transaction) in zip(ranges, block.transactions) {
                #expect(Array(bytes[range]) == transaction.wireBytes)
            }
        }
    }

    /// Opens a copy of the fixture's ledger and passes it with the blocks it holds.
    func withFixtureStore(_ body: (LedgerStore, [CommittedBlock]) throws -> Void) throws {
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        let chain = try blocks(of: path)
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        defer { store.close() }
        try body(store, chain)
    }

    @Test func aTransactionIsServedFromItsBlockWithItsReceiptAndPlace() throws {
        try withFixtureStore { store, chain in try checkTransactionsAreServed(store, chain) }
    }

    func checkTransactionsAreServed(_ store: LedgerStore, _ chain: [CommittedBlock]) throws {
        for committed in chain {
            let height = committed.block.header.height
            let stored = try store.transactions(inBlock: height)
            #expect(stored.map(\.transaction) == committed.block.transactions)
            #expect(stored.map(\.position) == Array(0..<committed.block.transactions.count))
            for (position, transaction) in committed.block.transactions.enumerated() {
                let found = try #require(try store.transaction(id: transaction.id))
                // A replayed copy can sit later in the chain: the first occurrence is returned.
                #expect(found.height <= height)
                #expect(found.transaction == transaction)
                if found.height == height { #expect(found.position == position) }
                #expect(try store.containsTransaction(id: transaction.id))
            }
        }
        let signer = chain[3].block.transactions[0].body.signer
        let bySigner = try store.transactions(signedBy: signer)
        #expect(!bySigner.isEmpty)
        #expect(bySigner.allSatisfy { $0.transaction.body.signer == signer })
        #expect(bySigner.map { [$0.height.value, UInt64($0.position)] } == bySigner.map { [$0.height.value, UInt64($0.position)] }.sorted { $0.lexicographicallyPrecedes($1) })
    }

    /// A block listing (the API's `GET /v1/blocks/:height`) is read from the stored header and the
    /// transaction rows, and says exactly what decoding the whole block says.
    @Test func aBlockSummaryMatchesTheDecodedBlock() throws {
        try withFixtureStore { store, chain in
            for committed in chain {
                let summary = try #require(try store.blockSummary(at: committed.block.header.height))
                #expect(summary.height == committed.block.header.height)
                #expect(summary.hash == committed.block.hash(suite: consortium.suite))
                #expect(summary.header == committed.block.header)
                #expect(summary.transactionIDs == committed.block.transactions.map(\.id))
                #expect(summary.certificate == committed.certificate)
            }
            #expect(try store.blockSummary(at: store.tip.height.next) == nil)
        }
    }

    /// The index holds only 8 bytes of the id: an id sharing them with a stored one is not stored.
    @Test func anIdSharingTheIndexedPrefixIsNotMistakenForAStoredOne() throws {
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        let chain = try blocks(of: path)
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        defer { store.close() }
        let stored = chain[10].block.transactions[0].id
        var bytes = stored.bytes
        bytes[31] ^= 0xff
        let lookalike = try #require(Hash(bytes: bytes))
        #expect(Rows.idPrefix(lookalike) == Rows.idPrefix(stored))
        #expect(try store.containsTransaction(id: lookalike) == false)
        #expect(try store.transaction(id: lookalike) == nil)
        #expect(try store.committedTransactionIDs(among: [lookalike, stored]) == [stored])
    }

    @Test func aTransactionRowPointingAtOtherBytesIsReportedAsDamaged() throws {
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        let chain = try blocks(of: path)
        let target = chain[7].block.transactions[1]
        try tamper(path) { try $0.execute("UPDATE \"transaction\" SET wireOffset = wireOffset + 1 WHERE height = 8 AND position = 1") }
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        defer { store.close() }
        #expect(throws: StoreError.self) { try store.transaction(id: target.id) }
        let report = try LedgerVerifier().verify(path: path, genesis: consortium.genesis)
        #expect(report.failure?.code == .transactionRowsMismatch)
        #expect(report.failure?.height == Height(8))
    }

    @Test func newFilesUseTheSmallPageSizeAndOldFilesKeepTheirs() throws {
        let directory = TemporaryDirectory()
        let fresh = directory.file("fresh.sqlite")
        let store = try LedgerStore.open(path: fresh, genesis: consortium.genesis, suite: consortium.suite)
        #expect(try store.pragma("page_size") == .integer(Int64(Schema.newFilePageSize)))
        #expect(try store.pragma("wal_autocheckpoint") == .integer(Int64(40_960_000 / Schema.newFilePageSize)))
        store.close()
        let reopened = try LedgerStore.open(path: fresh, genesis: consortium.genesis, suite: consortium.suite, pageSize: 4096)
        #expect(try reopened.pragma("page_size") == .integer(Int64(Schema.newFilePageSize)))
        reopened.close()
        let large = directory.file("large.sqlite")
        let other = try LedgerStore.open(path: large, genesis: consortium.genesis, suite: consortium.suite, pageSize: 4096)
        #expect(try other.pragma("page_size") == .integer(4096))
        #expect(try other.pragma("wal_autocheckpoint") == .integer(10_000))
        other.close()
    }

    /// A narrow upsert leaves fixed columns alone; a row whose fixed column differs is written whole.
    @Test func aStateRowIsRewrittenWholeWhenAFixedColumnDiffers() throws {
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        let original = try #require(fixture.state.fragments.values.sorted { $0.id < $1.id }.first)
        let connection = try Connection(path: path, readOnly: false)
        func stored() throws -> [SQLValue] {
            try #require(try connection.statement("SELECT \(Schema.fragment.columnList) FROM fragment WHERE id = ?")
                .bind(SQLValue(original.id.hash)).map { $0.values }.first)
        }
        #expect(try stored() == Rows.fragment(original))

        var moved = original
        moved.holder = TestConsortium.tier3
        moved.outstanding = MinorUnits(1)
        try connection.writeTransaction { try LedgerStore.upsert([Rows.fragment(moved)], into: Schema.fragment, connection) }
        #expect(try stored() == Rows.fragment(moved))

        var regrown = moved
        regrown.amount = MinorUnits(moved.amount.value + 7)
        regrown.generation += 1
        try connection.writeTransaction { try LedgerStore.upsert([Rows.fragment(regrown)], into: Schema.fragment, connection) }
        #expect(try stored() == Rows.fragment(regrown))

        let count = try connection.statement("SELECT count(*) FROM fragment").map { $0.int64(0) }.first
        #expect(count == Int64(fixture.state.fragments.count))
    }

    /// A file written by scf before v3 (transaction rows holding their wire bytes, 4 KiB pages)
    /// opens, migrates, and then reads, appends and verifies like a new file.
    @Test func aFileFromBeforeVersion3MigratesAndVerifies() throws {
        let directory = TemporaryDirectory()
        let source = fixture.copy(into: directory)
        let chain = try blocks(of: source)
        let old = directory.file("old.sqlite")
        // The first 40 blocks, written by the current store, to copy into the old schema.
        let prefix = directory.file("prefix.sqlite")
        let written = try LedgerStore.open(path: prefix, genesis: consortium.genesis, suite: consortium.suite)
        try written.appendCertified(Array(chain[..<40]), executor: consortium.executor)
        written.close()

        // The old schema (only the migrations shipped before v3), filled with the fixture's rows;
        // each transaction row holds its own wire bytes, as the old store wrote them.
        do {
            let connection = try Connection(path: old, readOnly: false)
            try LedgerStore.setPageSizeIfNew(connection, 4096)
            try LedgerStore.configure(connection)
            let shipped = Schema.migrations.prefix { $0.id != "v3-compact-transaction-rows" }
            #expect(shipped.count == 3)
            try LedgerStore.migrate(connection, migrations: Array(shipped))
            try connection.execute("ATTACH DATABASE '\(prefix)' AS source")
            try connection.writeTransaction {
                for table in ["meta", "block", "member", "nonce", "receivableRoot", "fragment", "invoice", "financingRequest"] {
                    try connection.execute("INSERT INTO main.\"\(table)\" SELECT * FROM source.\"\(table)\"")
                }
                try connection.execute("""
                    INSERT INTO main."transaction" (height, position, id, signer, nonce, kind, status, reasonCode, reasonMessage, wire)
                    SELECT t.height, t.position, t.id, t.signer, t.nonce, t.kind, t.status, t.reasonCode, t.reasonMessage,
                           substr(b.wire, t.wireOffset + 1, t.wireLength)
                    FROM source."transaction" t JOIN source.block b ON b.height = t.height
                    """)
            }
            try connection.execute("DETACH DATABASE source")
            let wires = try connection.statement("SELECT wire FROM \"transaction\" ORDER BY height, position").map { $0.blob(0) }
            #expect(wires == chain[..<40].flatMap { $0.block.transactions.map(\.wireBytes) })
            #expect(try column(connection, "SELECT name FROM sqlite_master WHERE name = 'index_transaction_on_id'") == [.text("index_transaction_on_id")])
        }

        let store = try LedgerStore.open(path: old, genesis: consortium.genesis, suite: consortium.suite)
        #expect(store.tip.height == Height(40))
        #expect(try store.pragma("page_size") == .integer(4096))
        let sample = chain[20].block.transactions[2]
        #expect(try store.transaction(id: sample.id)?.transaction == sample)
        #expect(try store.transactions(inBlock: Height(21)).map(\.transaction) == chain[20].block.transactions)
        // The migrated file keeps growing like a new one, and ends with exactly its rows.
        try store.appendCertified(Array(chain[40...]), executor: consortium.executor)
        #expect(store.tip.height == Height(UInt64(fixture.blocks)))
        for (id, fragment) in fixture.state.fragments { #expect(try store.fragment(id) == fragment) }
        store.close()

        try tamper(old) { connection in
            #expect(try column(connection, "SELECT id FROM migration ORDER BY rowid") == Schema.migrations.map { .text($0.id) })
            let columns = try column(connection, "SELECT name FROM pragma_table_info('transaction') ORDER BY cid")
            #expect(columns == Schema.transaction.columns.map { .text($0) })
            let indexes = try column(connection, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'transaction' AND sql IS NOT NULL ORDER BY name")
            #expect(indexes == [.text("index_transaction_on_idPrefix"), .text("index_transaction_on_signer")])
            let new = try Connection(path: source, readOnly: true)
            for rows in ["SELECT * FROM \"transaction\" ORDER BY height, position", "SELECT * FROM block ORDER BY height", "SELECT * FROM meta"]
                + Schema.stateTables.map(\.selectAllSQL) {
                #expect(try connection.statement(rows).map { $0.values } == new.statement(rows).map { $0.values }, "\(rows)")
            }
        }
        let report = try LedgerVerifier().verify(path: old, genesis: consortium.genesis)
        #expect(report.isValid, "\(report.summary)")
        #expect(report.verifiedBlocks == fixture.blocks)
    }
}
