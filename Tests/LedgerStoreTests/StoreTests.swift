import Foundation
import LedgerCore
@testable import LedgerStore
import LedgerTestKit
import Testing

@Suite struct StoreTests {
    let consortium = ChainFixture.consortium

    @Test func migrationsRunOnAnEmptyFileAndOnlyOnce() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("ledger.sqlite")
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        #expect(store.tip == BlockExecutor.genesisTip(genesis: consortium.genesis, suite: consortium.suite))
        #expect(try store.members().map(\.id) == consortium.genesis.members.map(\.id).sorted())
        #expect(try store.member(TestConsortium.bankA) == consortium.member(TestConsortium.bankA))
        #expect(try store.nonce(of: TestConsortium.tier1) == 0)
        store.close()

        let reopened = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        #expect(reopened.tip.height == .genesis)
        reopened.close()

        try tamper(path) { connection in
            #expect(try column(connection, "SELECT id FROM migration ORDER BY rowid") == Schema.migrations.map { .text($0.id) })
            #expect(try column(connection, "PRAGMA journal_mode") == [.text("wal")])
            let tables = try column(connection, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            #expect(tables == ["block", "financingRequest", "fragment", "invoice", "member", "meta", "migration", "nonce",
                               "receivableRoot", "replicaState", "transaction"].map { .text($0) })
            #expect(try column(connection, "SELECT count(*) FROM meta") == [.integer(1)])
        }
    }

    @Test func anOlderFileGainsNewMigrationsWhenOpened() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("ledger.sqlite")
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        var writer = try ChainWriter(store: store, generator: WorkloadGenerator(consortium: consortium, seed: 8, transactionsPerBlock: 3))
        for _ in 0..<3 { try writer.writeBlock() }
        let tip = store.tip
        store.close()
        // Make it a file from before the replica-state migration shipped.
        try tamper(path) { try $0.execute("DROP TABLE replicaState; DELETE FROM migration WHERE id = 'v2-replica-state'") }
        let reopened = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        #expect(reopened.tip == tip)
        #expect(try reopened.replicaState() == nil)
        try reopened.saveReplicaState([1, 2, 3])
        #expect(try reopened.replicaState() == [1, 2, 3])
        reopened.close()
        try tamper(path) { connection in
            let ids = try column(connection, "SELECT id FROM migration ORDER BY rowid")
            #expect(ids.last == SQLValue.text("v2-replica-state"))
        }
    }

    @Test func theReplicaStateIsSavedAloneOrWithABlock() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("ledger.sqlite")
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        #expect(try store.replicaState() == nil)
        try store.saveReplicaState(Array("view 0".utf8))
        #expect(try store.replicaState() == Array("view 0".utf8))
        var chain = ChainBuilder(consortium: consortium)
        var generator = WorkloadGenerator(consortium: consortium, seed: 12, transactionsPerBlock: 2)
        let (block, result) = try generator.appendBlock(to: &chain)
        try store.append(block, result: result, replicaState: Array("view 1".utf8))
        let (next, nextResult) = try generator.appendBlock(to: &chain)
        try store.append(next, result: nextResult)
        store.close()
        let reopened = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        #expect(try reopened.replicaState() == Array("view 1".utf8))
        #expect(reopened.tip.height == Height(2))
    }

    @Test func theConnectionUsesWALWithFullSync() throws {
        let directory = TemporaryDirectory()
        let store = try LedgerStore.open(path: directory.file("ledger.sqlite"), genesis: consortium.genesis, suite: consortium.suite)
        defer { store.close() }
        #expect(try store.pragma("journal_mode") == .text("wal"))
        #expect(try store.pragma("synchronous") == .integer(2), "2 is FULL: the WAL is synced at every commit")
        #expect(try store.pragma("foreign_keys") == .integer(1))
    }

    @Test func sqliteDoesNotCountItsMemory() throws {
        let directory = TemporaryDirectory()
        let store = try LedgerStore.open(path: directory.file("ledger.sqlite"), genesis: consortium.genesis, suite: consortium.suite)
        defer { store.close() }
        // With statistics on, an open connection's page cache and schema are counted (> 0), under
        // a process-wide mutex taken on every allocation.
        #expect(Connection.sqliteMemoryCounted == 0)
    }

    @Test func anotherGenesisIsRefusedWithASentence() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("ledger.sqlite")
        try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite).close()
        let other = TestConsortium(extraSuppliers: 1, chainID: "another-chain")
        do {
            _ = try LedgerStore.open(path: path, genesis: other.genesis, suite: other.suite)
            Issue.record("opening with another genesis must fail")
        } catch let error as StoreError {
            #expect(error.code == .genesisMismatch)
            #expect(error.message.contains("scf-test"))
            #expect(error.message.contains("another-chain"))
            #expect(error.message.contains("use the data file of this chain"))
        }
    }

    @Test func aNewerSchemaIsRefused() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("ledger.sqlite")
        try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite).close()
        try tamper(path) { try $0.execute("INSERT INTO migration (id) VALUES ('v9-from-the-future')") }
        #expect { _ = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite) } throws: { error in
            (error as? StoreError)?.code == .newerSchema
        }
    }

    @Test func notALedgerFileIsRefused() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("notes.txt")
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: path))
        #expect { _ = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite) } throws: { error in
            (error as? StoreError)?.code == .corrupt
        }
    }

    @Test func appendThenReadBlocksAndTransactionsBack() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("ledger.sqlite")
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        var writer = try ChainWriter(store: store, generator: WorkloadGenerator(consortium: consortium, seed: 11, transactionsPerBlock: 7))
        var written: [(CommittedBlock, ExecutionResult)] = []
        for _ in 0..<30 { written.append(try writer.writeBlock()) }
        #expect(store.tip == ChainTip(header: written.last!.0.block.header, suite: consortium.suite))

        for (committed, result) in written {
            let height = committed.block.header.height
            #expect(try store.block(at: height) == committed)
            #expect(try store.blockHash(at: height) == committed.block.hash(suite: consortium.suite))
            let stored = try store.transactions(inBlock: height)
            #expect(stored.map(\.transaction) == committed.block.transactions)
            #expect(stored.map(\.receipt) == result.receipts)
            #expect(stored.map(\.position) == Array(0..<committed.block.transactions.count))
        }
        #expect(try store.block(at: Height(31)) == nil)
        #expect(try store.block(at: .genesis) == nil)
        #expect(try store.blockHash(at: .genesis) == store.genesisHash)

        // One transaction by id, with receipt, height and position.
        let (sample, sampleResult) = written[12]
        let stored = try #require(try store.transaction(id: sample.block.transactions[3].id))
        #expect(stored.transaction == sample.block.transactions[3])
        #expect(stored.receipt == sampleResult.receipts[3])
        #expect(stored.height == Height(13))
        #expect(stored.position == 3)
        #expect(try store.transaction(id: Hash.zero) == nil)

        // Streaming in order, in small batches, with an early stop.
        var heights: [UInt64] = []
        try store.forEachBlock(batchSize: 7) { block in
            heights.append(block.block.header.height.value)
            return true
        }
        #expect(heights == Array(1...30))
        var some: [UInt64] = []
        try store.forEachBlock(from: Height(5), through: Height(20), batchSize: 4) { block in
            some.append(block.block.header.height.value)
            return some.count < 10
        }
        #expect(some == Array(5...14))

        // Reopening gives the same chain.
        store.close()
        let reopened = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        #expect(reopened.tip == ChainTip(header: written.last!.0.block.header, suite: consortium.suite))
        #expect(try reopened.block(at: Height(30)) == written.last!.0)
        #expect(throws: StoreError.self) { try store.block(at: Height(1)) }
    }

    @Test func aReplayedTransactionIsStoredAgainAsRejected() throws {
        let directory = TemporaryDirectory()
        let store = try LedgerStore.open(path: directory.file("ledger.sqlite"), genesis: consortium.genesis, suite: consortium.suite)
        var chain = ChainBuilder(consortium: consortium)
        var factory = TransactionFactory(consortium: consortium)
        let terms = consortium.terms(face: 500_000_00, invoiceNumber: "R0001")
        let proposal = factory.make(TestConsortium.tier1, .proposeReceivable(terms))
        for transactions in [[proposal], [proposal]] {
            let (block, result) = try chain.append(transactions, at: chain.tip.timestamp.adding(milliseconds: 1_000))
            try store.append(block, result: result)
        }
        let all = try store.occurrences(of: proposal.id)
        #expect(all.map(\.height) == [Height(1), Height(2)])
        #expect(all[0].receipt.isCommitted)
        #expect(all[1].receipt.rejection?.code == .replayed)
        #expect(try store.transaction(id: proposal.id) == all[0])
    }

    @Test func appendRefusesABlockThatDoesNotExtendTheTip() throws {
        let directory = TemporaryDirectory()
        let store = try LedgerStore.open(path: directory.file("ledger.sqlite"), genesis: consortium.genesis, suite: consortium.suite)
        var chain = ChainBuilder(consortium: consortium)
        var generator = WorkloadGenerator(consortium: consortium, seed: 3, transactionsPerBlock: 4)
        let (first, firstResult) = try generator.appendBlock(to: &chain)
        let (second, secondResult) = try generator.appendBlock(to: &chain)

        #expect { try store.append(second, result: secondResult) } throws: { ($0 as? StoreError)?.code == .wrongHeight }
        try store.append(first, result: firstResult)
        #expect { try store.append(first, result: firstResult) } throws: { ($0 as? StoreError)?.code == .wrongHeight }

        // A block at the right height on another fork.
        var fork = ChainBuilder(consortium: consortium)
        var other = WorkloadGenerator(consortium: consortium, seed: 4, transactionsPerBlock: 4)
        _ = try other.appendBlock(to: &fork)
        let (forked, forkedResult) = try other.appendBlock(to: &fork)
        #expect { try store.append(forked, result: forkedResult) } throws: { ($0 as? StoreError)?.code == .wrongPreviousHash }

        // The result of another block, and a certificate for another block.
        #expect { try store.append(second, result: forkedResult) } throws: { ($0 as? StoreError)?.code == .resultMismatch }
        let misCertified = CommittedBlock(block: second.block, certificate: forked.certificate)
        #expect { try store.append(misCertified, result: secondResult) } throws: { ($0 as? StoreError)?.code == .resultMismatch }

        // Nothing of the refused blocks was written.
        #expect(store.tip.height == Height(1))
        #expect(try store.transactions(inBlock: Height(2)).isEmpty)
        try store.append(second, result: secondResult)
        #expect(store.tip == chain.tip)
    }

    @Test func stateReadsEqualTheInMemoryStateAfterManyBlocks() throws {
        let directory = TemporaryDirectory()
        let store = try LedgerStore.open(path: directory.file("ledger.sqlite"), genesis: consortium.genesis, suite: consortium.suite)
        var chain = ChainBuilder(consortium: consortium)
        chain.retainsBlocks = false
        var generator = WorkloadGenerator(consortium: consortium, seed: 2024, transactionsPerBlock: 10, blockInterval: 24 * 3_600_000)
        let executor = consortium.executor
        for _ in 0..<120 {
            let tip = store.tip
            let (block, memoryResult) = try generator.appendBlock(to: &chain)
            // Re-executing on the store must give the same roots and state digest as in memory.
            let storeResult = try executor.validate(block.block, on: tip, state: store, signatures: .trusted)
            #expect(storeResult.changes == memoryResult.changes)
            try store.append(block, result: storeResult)
        }
        #expect(store.tip == chain.tip)
        let state = chain.state
        #expect(generator.statistics.generated["settle", default: 0] > 0, "the chain should run long enough to settle receivables")
        #expect(state.fragments.count > 100)
        for (id, member) in state.members { #expect(try store.member(id) == member) }
        for (id, nonce) in state.nonces { #expect(try store.nonce(of: id) == nonce) }
        for (id, root) in state.roots { #expect(try store.root(id) == root) }
        for (id, fragment) in state.fragments { #expect(try store.fragment(id) == fragment) }
        for (key, invoice) in state.invoices { #expect(try store.invoice(key) == invoice) }
        for (id, request) in state.financingRequests { #expect(try store.financingRequest(id) == request) }
        #expect(try store.members().count == state.members.count)
        #expect(try store.root(ReceivableID(Hash.zero)) == nil)
        #expect(try store.fragment(FragmentID(Hash.zero)) == nil)
        #expect(try store.financingRequest(Hash.zero) == nil)
        #expect(try store.invoice(InvoiceKey(number: "NOPE")!) == nil)
    }

    /// `append` writes each record's slice of the state digest's input as its row (DECISIONS 58):
    /// the rows must be exactly those encoding every record again gives, and an edited result
    /// must not carry an encoding of what it no longer holds.
    @Test func rowsCutFromTheDigestsInputEqualRowsEncodedAgain() throws {
        var chain = ChainBuilder(consortium: consortium)
        chain.retainsBlocks = false
        var generator = WorkloadGenerator(consortium: consortium, seed: 58, transactionsPerBlock: 20, blockInterval: 24 * 3_600_000)
        var written = (roots: 0, fragments: 0, invoices: 0, requests: 0, nonces: 0)
        var last: ExecutionResult?
        for _ in 0..<80 {
            let (_, result) = try generator.appendBlock(to: &chain)
            let encoded = try #require(result.encodedChanges)
            let rows = StateRows(encoded)
            #expect(rows == StateRows(result.changes))
            written.roots += rows.roots.count
            written.fragments += rows.fragments.count
            written.invoices += rows.invoices.count
            written.requests += rows.financingRequests.count
            written.nonces += rows.nonces.count
            last = result
        }
        #expect(written.roots > 0 && written.fragments > 0 && written.invoices > 0 && written.requests > 0 && written.nonces > 0)
        var edited = try #require(last)
        let fragment = try #require(edited.changes.fragments.values.first)
        edited.changes.fragments[fragment.id] = nil
        #expect(edited.encodedChanges == nil, "an edited result must fall back to encoding its records")
    }

    @Test func everyReadModelQueryMatchesAFilterOverTheState() throws {
        let fixture = ChainFixture.shared
        let directory = TemporaryDirectory()
        let store = try LedgerStore.open(path: fixture.copy(into: directory), genesis: consortium.genesis, suite: consortium.suite)
        let state = fixture.state
        func byID<T>(_ values: some Sequence<T>, _ key: (T) -> Hash) -> [T] { values.sorted { key($0) < key($1) } }
        func byMaturity(_ values: some Sequence<ReceivableRoot>) -> [ReceivableRoot] {
            values.sorted { ($0.terms.maturity, $0.id) < ($1.terms.maturity, $1.id) }
        }

        let holders = Set(state.fragments.values.map(\.holder)).sorted()
        #expect(holders.count > 3)
        for holder in holders {
            let all = byID(state.fragments.values.filter { $0.holder == holder }, \.id.hash)
            #expect(try store.fragments(heldBy: holder) == all)
            #expect(try store.fragments(heldBy: holder, in: [.active, .locked, .financed]) == all.filter { $0.state.isLive })
        }
        #expect(try store.fragments(heldBy: TestConsortium.tier1, limit: 2).count == min(2, state.fragments.values.count { $0.holder == TestConsortium.tier1 }))
        #expect(try store.fragments(heldBy: TestConsortium.tier1, in: []) == [])
        for state_ in FragmentState.allCases {
            #expect(try store.fragments(in: state_) == byID(state.fragments.values.filter { $0.state == state_ }, \.id.hash))
        }
        for root in state.roots.values {
            let expected = state.fragments.values.filter { $0.root == root.id }
                .sorted { ($0.generation, $0.id) < ($1.generation, $1.id) }
            #expect(try store.fragments(ofRoot: root.id) == expected)
            for key in root.invoiceKeys { #expect(try store.invoice(key) == state.invoices[key]) }
        }

        #expect(try store.roots(debtor: TestConsortium.core) == byMaturity(state.roots.values))
        #expect(try store.roots(debtor: TestConsortium.tier1).isEmpty)
        for status in RootStatus.allCases {
            let expected = byMaturity(state.roots.values.filter { $0.status == status })
            #expect(try store.roots(status: status) == expected)
            #expect(try store.roots(debtor: TestConsortium.core, status: status) == expected)
        }
        for creditor in Set(state.roots.values.map(\.terms.creditor)) {
            #expect(try store.roots(creditor: creditor) == byMaturity(state.roots.values.filter { $0.terms.creditor == creditor }))
        }
        let maturities = state.roots.values.map(\.terms.maturity).sorted()
        let first = maturities[maturities.count / 4], last = maturities[maturities.count * 3 / 4]
        #expect(try store.roots(maturingFrom: first, through: last)
                == byMaturity(state.roots.values.filter { $0.terms.maturity >= first && $0.terms.maturity <= last }))
        #expect(try store.roots(maturingFrom: first, through: last, status: .active)
                == byMaturity(state.roots.values.filter { $0.terms.maturity >= first && $0.terms.maturity <= last && $0.status == .active }))

        let sellers = Set(state.invoices.values.map(\.invoice.sellerTaxID.rawValue))
        for seller in sellers {
            let code = UnifiedSocialCreditCode(seller)!
            #expect(try store.invoices(sellerTaxID: code) == state.invoices.values.filter { $0.invoice.sellerTaxID == code }.sorted { $0.invoice.key < $1.invoice.key })
        }
        let buyer = consortium.member(TestConsortium.core).creditCode
        #expect(try store.invoices(buyerTaxID: buyer) == state.invoices.values.sorted { $0.invoice.key < $1.invoice.key })

        #expect(!state.financingRequests.isEmpty)
        for bank in [TestConsortium.bankA, TestConsortium.bankB] {
            #expect(try store.financingRequests(bank: bank) == byID(state.financingRequests.values.filter { $0.bank == bank }, \.id))
            for status in FinancingStatus.allCases {
                #expect(try store.financingRequests(bank: bank, status: status)
                        == byID(state.financingRequests.values.filter { $0.bank == bank && $0.status == status }, \.id))
            }
        }
        for request in state.financingRequests.values {
            #expect(try store.financingRequests(fragment: request.fragment)
                    == byID(state.financingRequests.values.filter { $0.fragment == request.fragment }, \.id))
        }

        var bySigner: [MemberID: [SignedTransaction]] = [:]
        try store.forEachBlock { block in
            for transaction in block.block.transactions { bySigner[transaction.body.signer, default: []].append(transaction) }
            return true
        }
        #expect(bySigner.count > 5)
        for (signer, transactions) in bySigner {
            let stored = try store.transactions(signedBy: signer)
            #expect(stored.map(\.transaction) == transactions)
            #expect(stored.map(\.height) == stored.map(\.height).sorted())
            #expect(try store.transactions(signedBy: signer, limit: 1).map(\.transaction) == Array(transactions.prefix(1)))
        }
        let late = try store.transactions(signedBy: TestConsortium.core, from: Height(40))
        #expect(late.allSatisfy { $0.height >= Height(40) })
    }

    @Test func theStoreCanBeReadFromManyThreadsWhileAppending() async throws {
        let directory = TemporaryDirectory()
        let store = try LedgerStore.open(path: directory.file("ledger.sqlite"), genesis: consortium.genesis, suite: consortium.suite)
        var writer = try ChainWriter(store: store, generator: WorkloadGenerator(consortium: consortium, seed: 5, transactionsPerBlock: 4))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    var last = Height.genesis
                    for _ in 0..<200 {
                        let tip = store.tip
                        #expect(tip.height >= last)
                        last = tip.height
                        if tip.height > .genesis {
                            let block = try #require(try store.block(at: tip.height))
                            #expect(block.block.header.height == tip.height)
                        }
                        _ = try store.member(TestConsortium.tier1)
                    }
                }
            }
            for _ in 0..<20 { try writer.writeBlock() }
            try await group.waitForAll()
        }
        #expect(store.tip.height == Height(20))
    }
}
