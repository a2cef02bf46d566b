import Foundation
import LedgerCore
@testable import LedgerStore
import LedgerTestKit
import Testing

/// The catch-up path (`appendCertified`) and the store's record cache.
@Suite struct CatchUpTests {
    let fixture = ChainFixture.shared
    var consortium: TestConsortium { fixture.consortium }

    /// Every row of every table of a data file, in a stable order, for comparing two files.
    func dump(_ path: String) throws -> [String: [[SQLValue]]] {
        let connection = try Connection(path: path, readOnly: true)
        var tables: [String: [[SQLValue]]] = [:]
        tables["block"] = try connection.statement("SELECT * FROM block ORDER BY height").map { $0.values }
        tables["transaction"] = try connection.statement("SELECT * FROM \"transaction\" ORDER BY height, position").map { $0.values }
        tables["meta"] = try connection.statement("SELECT * FROM meta").map { $0.values }
        for table in Schema.stateTables {
            tables[table.name] = try connection.statement(table.selectAllSQL).map { $0.values }
        }
        return tables
    }

    func blocks(of path: String) throws -> [CommittedBlock] { try fixture.blocks(in: path) }

    /// The fixture chain's final state, read through `store` (its cache, or its file).
    func expectTheChainsState(in store: LedgerStore) throws {
        for (id, fragment) in fixture.state.fragments { #expect(try store.fragment(id) == fragment) }
        for (id, nonce) in fixture.state.nonces { #expect(try store.nonce(of: id) == nonce) }
    }

    /// A store caught up on the whole fixture chain: its tip, its state, every row equal to the
    /// source file's (the store is closed for that), and the refused transactions' receipts.
    func expectTheSourceChain(in store: LedgerStore, at path: String, source: String, receipts: [[Receipt]]) throws {
        #expect(store.tip.height == Height(UInt64(fixture.blocks)))
        try expectTheChainsState(in: store)
        store.close()
        #expect(try dump(path) == dump(source))
        #expect(receipts.joined().count { !$0.isCommitted } == fixture.rejected)
    }

    @Test(arguments: [1, 5, 48])
    func catchUpLeavesExactlyTheRowsOfAppendingOneByOne(batchSize: Int) throws {
        let directory = TemporaryDirectory()
        let source = fixture.copy(into: directory)
        let chain = try blocks(of: source)
        #expect(chain.count == fixture.blocks)
        let path = directory.file("caught-up.sqlite")
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        var index = 0
        var receipts: [[Receipt]] = []
        while index < chain.count {
            let batch = Array(chain[index..<min(index + batchSize, chain.count)])
            let stored = try store.appendCertified(batch, executor: consortium.executor)
            #expect(stored.count == batch.count)
            receipts += stored
            index += batch.count
        }
        try expectTheSourceChain(in: store, at: path, source: source, receipts: receipts)
        let report = try LedgerVerifier().verify(path: path, genesis: consortium.genesis)
        #expect(report.isValid, "\(report.summary)")
    }

    /// The pipelined form (the next batch executes while the one before is written) leaves the
    /// same file as appending one by one.
    @Test(arguments: [1, 7, 48])
    func pipelinedBatchesLeaveExactlyTheRowsOfAppendingOneByOne(batchSize: Int) throws {
        let directory = TemporaryDirectory()
        let source = fixture.copy(into: directory)
        let chain = try blocks(of: source)
        let path = directory.file("caught-up.sqlite")
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        // A first call, then the rest in a second one (the second starts from a stored tip).
        let split = chain.count / 3
        var receipts: [[Receipt]] = []
        for part in [Array(chain[..<split]), Array(chain[split...])] {
            let batches = stride(from: 0, to: part.count, by: batchSize).map { Array(part[$0..<min($0 + batchSize, part.count)]) }
            let (stored, error) = store.appendCertified(batches: batches, executor: consortium.executor)
            #expect(error == nil, "\(String(describing: error))")
            #expect(stored.count == batches.count)
            receipts += Array(stored.joined())
        }
        try expectTheSourceChain(in: store, at: path, source: source, receipts: receipts)
        // Read back with a cold cache: every record from the file.
        let reopened = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        try expectTheChainsState(in: reopened)
    }

    /// Batches that join the pipeline through `more` (a node far behind hands it the blocks
    /// verified meanwhile) leave the same file as appending one by one. Small batches in many
    /// chunks: the writer stores batches while later ones execute, so their layers are dropped
    /// and their records read back from the store and its cache mid-call.
    @Test(arguments: [1, 5])
    func batchesJoiningThroughMoreLeaveExactlyTheRowsOfAppendingOneByOne(batchSize: Int) throws {
        let directory = TemporaryDirectory()
        let source = fixture.copy(into: directory)
        let chain = try blocks(of: source)
        let path = directory.file("caught-up.sqlite")
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        let batches = stride(from: 0, to: chain.count, by: batchSize).map { Array(chain[$0..<min($0 + batchSize, chain.count)]) }
        // The first two batches given, the rest three at a time with an empty batch among them.
        var next = 2
        var asked = 0
        let (stored, error) = store.appendCertified(batches: Array(batches[..<2]), executor: consortium.executor) {
            asked += 1
            guard next < batches.count else { return [] }
            defer { next += 3 }
            return [[]] + Array(batches[next..<min(next + 3, batches.count)])
        }
        #expect(error == nil, "\(String(describing: error))")
        #expect(stored.count == batches.count)
        #expect(asked == (batches.count - 2 + 2) / 3 + 1)   // once more after the last chunk, which answers none
        try expectTheSourceChain(in: store, at: path, source: source, receipts: Array(stored.joined()))
        let reopened = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        try expectTheChainsState(in: reopened)
    }

    /// A bad block in a batch that joined through `more`: the batches before it are stored,
    /// nothing from it on, and `more` is not asked again.
    @Test func aBadBlockJoiningThroughMoreStopsThePipeline() throws {
        let directory = TemporaryDirectory()
        var chain = try blocks(of: fixture.copy(into: directory))
        chain[25].block.header.stateDigest = Hash.zero
        let store = try LedgerStore.open(path: directory.file("caught-up.sqlite"), genesis: consortium.genesis, suite: consortium.suite)
        var chunks = stride(from: 10, to: 40, by: 10).map { [Array(chain[$0..<$0 + 10])] }[...]
        var asked = 0
        let (stored, error) = store.appendCertified(batches: [Array(chain[0..<10])], executor: consortium.executor) {
            asked += 1
            return chunks.popFirst() ?? []
        }
        #expect(stored.count == 2)
        #expect((error as? StoreError)?.code == .resultMismatch)
        #expect(asked == 2)
        #expect(store.tip.height == Height(20))
    }

    /// A bad block in a later batch: the batches before it are stored, nothing from it on.
    @Test func aPipelinedCallStoresTheBatchesBeforeABadOne() throws {
        let directory = TemporaryDirectory()
        let source = fixture.copy(into: directory)
        var chain = try blocks(of: source)
        chain[25].block.header.stateDigest = Hash.zero
        let path = directory.file("caught-up.sqlite")
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        let batches = stride(from: 0, to: 40, by: 10).map { Array(chain[$0..<$0 + 10]) }
        let (stored, error) = store.appendCertified(batches: batches, executor: consortium.executor)
        #expect(stored.count == 2)
        #expect((error as? StoreError)?.code == .resultMismatch)
        #expect(store.tip.height == Height(20))
        store.close()
        let reopened = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        #expect(reopened.tip.height == Height(20))
    }

    @Test func aBatchWithABadBlockWritesNothing() throws {
        let directory = TemporaryDirectory()
        let chain = try blocks(of: fixture.copy(into: directory))
        let path = directory.file("caught-up.sqlite")
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        try store.appendCertified(Array(chain[0..<10]), executor: consortium.executor)
        let before = try dump(path)

        // Block 15 claims another state digest (a quorum certified it anyway): the batch 11...16 fails at 15.
        var bad = chain[14].block
        bad.header.stateDigest = Hash.zero
        var batch = Array(chain[10..<16])
        batch[4] = CommittedBlock(block: bad, certificate: ChainBuilder(consortium: consortium).certify(bad))
        #expect {
            try store.appendCertified(batch, executor: consortium.executor)
        } throws: { error in
            (error as? StoreError)?.code == .resultMismatch && "\(error)".contains("certified block 15")
        }
        #expect(store.tip == ChainTip(header: chain[9].block.header, suite: consortium.suite))
        #expect(try dump(path) == before, "a failed batch must leave no row of its blocks")
        // Nothing of blocks 11-14 leaked into the cache either: the good batch applies and matches.
        try store.appendCertified(Array(chain[10...]), executor: consortium.executor)
        for (id, fragment) in fixture.state.fragments { #expect(try store.fragment(id) == fragment) }
        store.close()
        let other = TemporaryDirectory()
        #expect(try dump(path) == dump(fixture.copy(into: other)))
    }

    @Test func aBatchThatDoesNotExtendTheTipIsRefused() throws {
        let directory = TemporaryDirectory()
        let chain = try blocks(of: fixture.copy(into: directory))
        let store = try LedgerStore.open(path: directory.file("caught-up.sqlite"), genesis: consortium.genesis, suite: consortium.suite)
        defer { store.close() }
        #expect(throws: StoreError.self) { try store.appendCertified(Array(chain[1..<3]), executor: consortium.executor) }
        // A gap inside the batch.
        #expect(throws: StoreError.self) { try store.appendCertified([chain[0], chain[2]], executor: consortium.executor) }
        #expect(store.tip.height == .genesis)
        #expect(try store.appendCertified([], executor: consortium.executor).isEmpty)
    }

    @Test func theGenerationalCacheStaysBoundedAndKeepsWhatIsUsed() {
        var cache = GenerationalCache<Int, String?>(limit: 100)
        cache.insert(nil, for: -1)
        for key in 0..<10_000 {
            cache.insert("\(key)", for: key)
            // A key used all along survives every generation change.
            _ = cache.value(for: -1)
            #expect(cache.count <= 200)
        }
        #expect(cache.value(for: -1) == .some(nil), "a cached absence is a hit, not a miss")
        #expect(cache.value(for: 9_999) == "9999")
        #expect(cache.value(for: 0) == nil, "an old entry was dropped")
    }

    @Test func readsSeeEveryAppendedWriteThroughTheCache() throws {
        // Read every record before and after each block: a stale cache entry would show up as a mismatch.
        let directory = TemporaryDirectory()
        let chain = try blocks(of: fixture.copy(into: directory))
        let path = directory.file("applied.sqlite")
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        defer { store.close() }
        var state = MemoryLedgerState(genesis: consortium.genesis)
        let executor = consortium.executor
        for committed in chain {
            let result = try executor.validate(committed.block, on: store.tip, state: store, signatures: .trusted)
            try store.append(committed, result: result)
            state.apply(result.changes)
            for id in result.changes.fragments.keys { #expect(try store.fragment(id) == state.fragments[id]) }
            for id in result.changes.roots.keys { #expect(try store.root(id) == state.roots[id]) }
            for key in result.changes.invoices.keys { #expect(try store.invoice(key) == state.invoices[key]) }
            for id in result.changes.financingRequests.keys { #expect(try store.financingRequest(id) == state.financingRequests[id]) }
            for id in result.changes.nonces.keys { #expect(try store.nonce(of: id) == state.nonces[id]) }
        }
        // A second handle on the same file (no cache yet) reads the same.
        let reopened = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        defer { reopened.close() }
        for (id, fragment) in state.fragments { #expect(try reopened.fragment(id) == fragment) }
        for (id, root) in state.roots { #expect(try reopened.root(id) == root) }
    }
}

@Suite struct TransactionLookupTests {
    @Test func storedTransactionIDsAreFoundWithoutDecoding() throws {
        let fixture = ChainFixture.shared
        let directory = TemporaryDirectory()
        let store = try LedgerStore.open(path: fixture.copy(into: directory), genesis: fixture.consortium.genesis, suite: fixture.consortium.suite)
        defer { store.close() }
        let block = try #require(try store.block(at: Height(12))).block
        let stored = block.transactions.map(\.id)
        let unknown = [Hash(w0: 1, w1: 2, w2: 3, w3: 4), Hash.zero]
        #expect(try store.committedTransactionIDs(among: stored + unknown) == Set(stored))
        #expect(try store.committedTransactionIDs(among: []).isEmpty)
        for id in stored { #expect(try store.containsTransaction(id: id)) }
        for id in unknown { #expect(try !store.containsTransaction(id: id)) }
    }
}
