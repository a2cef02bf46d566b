import Foundation
import LedgerCore
@testable import LedgerStore
import LedgerTestKit
import Testing

@Suite struct VerifierTests {
    let fixture = ChainFixture.shared
    var consortium: TestConsortium { fixture.consortium }

    /// `scratch`: the recomputed records go to a scratch file (as a node does on a large ledger).
    /// The scratch file then takes writes three at a time, so records are read back from it.
    func verify(_ path: String, parallel: Bool = true, scratch: Bool = false) throws -> VerificationReport {
        var options = LedgerVerifier.Options(progressInterval: 10, parallelSignatures: parallel, batchSize: 16,
                                             recordsInMemory: scratch ? 0 : nil,
                                             scratchDirectory: scratch ? (path as NSString).deletingLastPathComponent : nil)
        options.scratchFlushLimit = 3
        return try LedgerVerifier(options: options).verify(path: path, genesis: consortium.genesis)
    }

    /// A scratch file that cannot be made is an error of the run, never a verdict on a block.
    @Test func aScratchFileThatCannotBeMadeIsAnErrorNotAVerdict() throws {
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        let options = LedgerVerifier.Options(recordsInMemory: 0, scratchDirectory: directory.file("no-such-directory"))
        #expect { try LedgerVerifier(options: options).verify(path: path, genesis: consortium.genesis) } throws: { error in
            guard let error = error as? StoreError else { return false }
            return error.code == .scratchFile && error.message.contains("--scratch-directory")
        }
    }

    /// Batches are cut by transactions as well as blocks (a batch of one block when one block
    /// alone exceeds the limit); the outcome does not depend on the cut.
    @Test(arguments: [1, 7, 100])
    func batchesCutByTransactionsVerifyTheSame(batchTransactions: Int) throws {
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        let report = try LedgerVerifier(options: .init(progressInterval: 10, batchSize: 16, batchTransactions: batchTransactions))
            .verify(path: path, genesis: consortium.genesis)
        #expect(report.failure == nil, "\(report.summary)")
        #expect(report.verifiedBlocks == fixture.blocks)
        #expect(report.transactions == fixture.transactions)
        try forgeSignature(in: path, height: 29, position: 0)
        let forged = try LedgerVerifier(options: .init(progressInterval: 10, batchSize: 16, batchTransactions: batchTransactions))
            .verify(path: path, genesis: consortium.genesis)
        #expect(forged.failure?.height == Height(29), "\(forged.summary)")
    }

    /// With the records in a scratch file the report is the same, and the file is gone afterwards.
    @Test(arguments: [true, false])
    func aGoodChainVerifiesWithItsRecordsInAScratchFile(parallel: Bool) throws {
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        let inMemory = try verify(path, parallel: parallel)
        let scratch = try verify(path, parallel: parallel, scratch: true)
        #expect(scratch.failure == nil, "\(scratch.summary)")
        #expect(scratch.verifiedBlocks == inMemory.verifiedBlocks)
        #expect(scratch.transactions == inMemory.transactions)
        #expect(scratch.rejectedTransactions == inMemory.rejectedTransactions)
        #expect(scratch.tip == inMemory.tip)
        let left = try FileManager.default.contentsOfDirectory(atPath: (path as NSString).deletingLastPathComponent)
        #expect(!left.contains { $0.hasPrefix(".scf-verify") }, "\(left)")
        // The default budget keeps this small fixture in memory; the scratch run above did not.
        #expect(fixture.state.fragments.count < LedgerVerifier.Options.defaultRecordsInMemory)
    }

    @Test(arguments: [true, false])
    func aGoodChainVerifies(parallel: Bool) throws {
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        var seen: [UInt64] = []
        let report = try LedgerVerifier(options: .init(progressInterval: 10, parallelSignatures: parallel, batchSize: 16))
            .verify(path: path, genesis: consortium.genesis) { seen.append($0.height.value) }
        #expect(report.failure == nil, "\(report.summary)")
        #expect(report.isValid)
        #expect(report.verifiedBlocks == fixture.blocks)
        #expect(report.transactions == fixture.transactions)
        #expect(report.rejectedTransactions == fixture.rejected)
        #expect(fixture.rejected > 0, "the workload should include rejected transactions")
        #expect(fixture.statistics.generated["settle", default: 0] > 0, "the fixture should settle receivables")
        #expect(report.tip.height == Height(UInt64(fixture.blocks)))
        #expect(seen == [10, 20, 30, 40, 48])
        #expect(report.summary.hasPrefix("OK"))
        // Without a trusted genesis the stored one is used, and named in the report.
        let selfTrusting = try LedgerVerifier().verify(path: path)
        #expect(selfTrusting.isValid)
        #expect(selfTrusting.genesisHash == consortium.genesis.hash(suite: consortium.suite))
    }

    @Test func aFlippedByteInAStoredBlockIsCaught() throws {
        for (height, offset) in [(17, 40), (23, 300), (31, -20)] {
            let directory = TemporaryDirectory()
            let path = fixture.copy(into: directory)
            try tamper(path) { connection in
                guard case .blob(var wire) = try column(connection, "SELECT wire FROM block WHERE height = ?", [.integer(Int64(height))])[0] else {
                    Issue.record("no block \(height)")
                    return
                }
                let index = offset >= 0 ? offset : wire.count + offset
                wire[index] ^= 0x01
                try connection.statement("UPDATE block SET wire = ? WHERE height = ?").bind(.blob(wire), .integer(Int64(height))).run()
            }
            let report = try verify(path)
            let failure = try #require(report.failure)
            #expect(failure.height == Height(UInt64(height)), "\(failure)")
            #expect(report.verifiedBlocks == height - 1)
            #expect(report.summary.contains("FAILED at block \(height)"))
        }
    }

    @Test func aFlippedByteInAStoredHeaderColumnIsCaught() throws {
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        try tamper(path) { connection in
            guard case .blob(var header) = try column(connection, "SELECT header FROM block WHERE height = 9")[0] else { return }
            header[header.count - 1] ^= 0x80
            try connection.statement("UPDATE block SET header = ? WHERE height = 9").bind(.blob(header)).run()
        }
        let failure = try #require(try verify(path).failure)
        #expect(failure.height == Height(9))
        #expect(failure.code == .blockRowMismatch)
        #expect(failure.message.contains("header"))
    }

    @Test func aRemovedTransactionRowIsCaught() throws {
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        try tamper(path) { try $0.execute("DELETE FROM \"transaction\" WHERE height = 12 AND position = 2") }
        let failure = try #require(try verify(path).failure)
        #expect(failure.height == Height(12))
        #expect(failure.code == .transactionRowsMismatch)
    }

    @Test func aTransactionRemovedFromTheBlockItselfIsCaught() throws {
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        var block = try #require(try store.block(at: Height(21))).block
        store.close()
        block.transactions.remove(at: 1)
        block.header.transactionCount -= 1
        try tamper(path) { connection in
            try connection.statement("UPDATE block SET wire = ?, header = ?, transactionCount = ? WHERE height = 21")
                .bind(.blob(block.wireBytes), .blob(block.header.canonicalBytes), .integer(Int64(block.header.transactionCount))).run()
            try connection.execute("DELETE FROM \"transaction\" WHERE height = 21 AND position = 1")
            try connection.execute("UPDATE \"transaction\" SET position = position - 1 WHERE height = 21 AND position > 1")
        }
        let failure = try #require(try verify(path).failure)
        #expect(failure.height == Height(21))
        // The block's hash no longer matches its row and certificate.
        #expect([.blockRowMismatch, .badCertificate].contains(failure.code), "\(failure)")
    }

    @Test func aForgedCertificateIsCaught() throws {
        let forger = TestConsortium.key(for: "forger", suite: consortium.suite)
        let scratch = TemporaryDirectory()
        let store = try LedgerStore.open(path: fixture.copy(into: scratch), genesis: consortium.genesis, suite: consortium.suite)
        let original = try #require(try store.block(at: Height(30)))
        let previous = try #require(try store.block(at: Height(29)))
        store.close()
        let hash = original.block.hash(suite: consortium.suite)
        let forgedVotes = try (0..<3).map { index in
            try CommitCertificate.vote(chainID: consortium.genesis.chainID, height: Height(30), view: original.block.header.view,
                                       blockHash: hash, validator: ValidatorIndex(UInt16(index)), key: forger, suite: consortium.suite)
        }
        let cases: [(String, CommitCertificate)] = [
            ("forged signatures", CommitCertificate(height: Height(30), view: original.block.header.view, blockHash: hash, votes: forgedVotes)),
            ("too few votes", CommitCertificate(height: Height(30), view: original.block.header.view, blockHash: hash,
                                                votes: Array(original.certificate.votes.prefix(2)))),
            ("another block's votes", previous.certificate),
        ]
        for (name, certificate) in cases {
            let directory = TemporaryDirectory()
            let path = fixture.copy(into: directory)
            try tamper(path) { connection in
                try connection.statement("UPDATE block SET certificate = ? WHERE height = 30").bind(.blob(certificate.canonicalBytes)).run()
            }
            let failure = try #require(try verify(path).failure, "\(name)")
            #expect(failure.height == Height(30), "\(name)")
            #expect(failure.code == .badCertificate, "\(name): \(failure)")
        }
    }

    @Test(arguments: [true, false])
    func aForgedTransactionSignatureIsCaughtEvenUnderAValidCertificate(parallel: Bool) throws {
        // A Byzantine quorum certifies a block whose transaction carries a forged signature: the
        // certificate checks out, the block's roots are recomputed to match, only the signature is bad.
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        try forgeSignature(in: path, height: 26, position: 2)
        let failure = try #require(try verify(path, parallel: parallel).failure)
        #expect(failure.height == Height(26))
        #expect(failure.code == .invalidBlock)
        #expect(failure.message.contains("badSignature"), "\(failure)")
    }

    /// Replaces transaction `position` of block `height` by one with the same id and a forged
    /// signature, under a valid certificate for the changed block (a Byzantine quorum).
    func forgeSignature(in path: String, height: Int, position: Int) throws {
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        var block = try #require(try store.block(at: Height(UInt64(height)))).block
        store.close()
        let original = block.transactions[position]
        let forged = TransactionFactory(consortium: consortium).forge(original.body.signer, original.body.operation,
                                                                       nonce: original.body.nonce,
                                                                       key: TestConsortium.key(for: "forger", suite: consortium.suite))
        #expect(forged.id == original.id)
        block.transactions[position] = forged
        block.header.transactionsRoot = Block.transactionsRoot(block.transactions, suite: consortium.suite)
        let certified = CommittedBlock(block: block, certificate: ChainBuilder(consortium: consortium).certify(block))
        try tamper(path) { connection in
            try connection.statement("UPDATE block SET hash = ?, header = ?, wire = ?, certificate = ? WHERE height = ?")
                .bind(Array(Rows.block(certified, hash: block.hash(suite: consortium.suite), wire: block.wireBytes)[1...4]) + [.integer(Int64(height))]).run()
            // The row points into the block's wire; keep it pointing at the forged transaction.
            let range = Rows.wire(of: block).ranges[position]
            try connection.statement("UPDATE \"transaction\" SET wireOffset = ?, wireLength = ? WHERE height = ? AND position = ?")
                .bind(.integer(Int64(range.lowerBound)), .integer(Int64(range.count)), .integer(Int64(height)), .integer(Int64(position))).run()
        }
    }

    /// Helpers check signatures of later blocks while the verifying thread executes earlier ones:
    /// whichever forged block they reach first, the report names the first bad block of the chain.
    @Test(arguments: [(5, 40), (20, 21), (33, 34), (3, 47)])
    func theFirstOfTwoForgedBlocksIsNamed(blocks: (Int, Int)) throws {
        for parallel in [true, false] {
            let directory = TemporaryDirectory()
            let path = fixture.copy(into: directory)
            try forgeSignature(in: path, height: blocks.1, position: 1)
            try forgeSignature(in: path, height: blocks.0, position: 0)
            let report = try LedgerVerifier(options: .init(progressInterval: 10, parallelSignatures: parallel, batchSize: 8))
                .verify(path: path, genesis: consortium.genesis)
            let failure = try #require(report.failure)
            #expect(failure.height == Height(UInt64(blocks.0)), "parallel \(parallel): \(failure)")
            #expect(failure.message.contains("badSignature"), "\(failure)")
            #expect(report.verifiedBlocks == blocks.0 - 1)
        }
    }

    /// Only the later block is forged: every block before it verifies, the later one is named.
    @Test(arguments: [true, false])
    func aForgedSignatureLateInTheChainIsNamed(parallel: Bool) throws {
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        try forgeSignature(in: path, height: 47, position: 3)
        let report = try LedgerVerifier(options: .init(parallelSignatures: parallel, batchSize: 64)).verify(path: path, genesis: consortium.genesis)
        let failure = try #require(report.failure)
        #expect(failure.height == Height(47), "\(failure)")
        #expect(report.verifiedBlocks == 46)
    }

    @Test(arguments: [false, true])
    func anEditedAmountInAStateTableIsCaughtAndBlamedOnTheBlockThatWroteIt(scratch: Bool) throws {
        // A live fragment last written in the middle of the chain.
        let candidates = fixture.state.fragments.values.filter { $0.state.isLive && $0.outstanding.value > 1 }
            .sorted { (fixture.lastFragmentWrite[$0.id]!, $0.id) < (fixture.lastFragmentWrite[$1.id]!, $1.id) }
        let fragment = try #require(candidates.first { fixture.lastFragmentWrite[$0.id]! >= Height(10) })
        let writer = fixture.lastFragmentWrite[fragment.id]!
        #expect(writer < Height(UInt64(fixture.blocks)))

        // 1. Only the indexed column.
        do {
            let directory = TemporaryDirectory()
            let path = fixture.copy(into: directory)
            try tamper(path) { connection in
                try connection.statement("UPDATE fragment SET outstanding = outstanding + 100 WHERE id = ?").bind(.blob(fragment.id.hash.bytes)).run()
            }
            let report = try verify(path, scratch: scratch)
            let failure = try #require(report.failure)
            #expect(failure.code == .stateMismatch)
            #expect(failure.height == writer, "\(failure)")
            #expect(failure.message.contains("outstanding"))
            #expect(report.verifiedBlocks == fixture.blocks, "every block is fine; the state table is not")
        }
        // 2. The canonical record and the column together, consistently.
        do {
            let directory = TemporaryDirectory()
            let path = fixture.copy(into: directory)
            var edited = fragment
            edited.outstanding = MinorUnits(fragment.outstanding.value - 1)
            try tamper(path) { connection in
                try connection.statement(Schema.fragment.upsertSQL).bind(Rows.fragment(edited)).run()
            }
            let failure = try #require(try verify(path, scratch: scratch).failure)
            #expect(failure.code == .stateMismatch)
            #expect(failure.height == writer)
        }
        // 3. A row deleted, and one invented.
        do {
            let directory = TemporaryDirectory()
            let path = fixture.copy(into: directory)
            try tamper(path) { connection in
                try connection.statement("DELETE FROM fragment WHERE id = ?").bind(.blob(fragment.id.hash.bytes)).run()
            }
            let failure = try #require(try verify(path, scratch: scratch).failure)
            #expect(failure.code == .stateMismatch)
            #expect(failure.height == writer)
            #expect(failure.message.contains("missing"))
        }
        do {
            let directory = TemporaryDirectory()
            let path = fixture.copy(into: directory)
            try tamper(path) { connection in
                try connection.statement(Schema.nonce.upsertSQL).bind(Rows.nonce(TestConsortium.regulator, 9_999)).run()
            }
            let failure = try #require(try verify(path, scratch: scratch).failure)
            #expect(failure.code == .stateMismatch)
            #expect(failure.message.contains("nonce"))
        }
    }

    /// The verifier learns which block last wrote a differing row in a second pass over the
    /// blocks (the first records nothing), on one core or several.
    @Test(arguments: [true, false], [false, true])
    func aRowNoBlockWroteIsBlamedOnGenesisAndAnInventedRowOnTheTip(parallel: Bool, scratch: Bool) throws {
        // Genesis members no block of the fixture changed.
        let untouched = consortium.genesis.members.filter { fixture.state.members[$0.id] == $0 }.sorted { $0.id < $1.id }
        let member = try #require(untouched.first)
        let invented = Hash(bytes: Array(repeating: 0xAB, count: 32))!
        try #require(fixture.state.fragments[FragmentID(invented)] == nil)
        let editMember = { (connection: Connection) throws in
            try connection.statement("UPDATE member SET roles = roles + 1024 WHERE id = ?").bind(SQLValue(member.id)).run()
        }
        let inventFragment = { (connection: Connection) throws in
            let any = try #require(fixture.state.fragments.values.sorted { $0.id < $1.id }.first)
            var row = Rows.fragment(any)
            row[0] = .blob(invented.bytes)
            try connection.statement(Schema.fragment.insertSQL).bind(row).run()
        }
        for (edits, height, phrase) in [([editMember], Height.genesis, "member row"),
                                        ([inventFragment], Height(UInt64(fixture.blocks)), "is not in the state recomputed"),
                                        ([inventFragment, editMember], Height.genesis, "; 1 more state rows differ")] {
            let directory = TemporaryDirectory()
            let path = fixture.copy(into: directory)
            try tamper(path) { connection in for edit in edits { try edit(connection) } }
            let report = try verify(path, parallel: parallel, scratch: scratch)
            let failure = try #require(report.failure)
            #expect(failure.code == .stateMismatch)
            #expect(failure.height == height, "\(failure)")
            #expect(failure.message.contains(phrase), "\(failure)")
            #expect(report.verifiedBlocks == fixture.blocks)
        }
        // A row moved to another key: the key it has names no record, and its record's row is missing.
        let invoice = try #require(fixture.state.invoices.keys.sorted().first)
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        try tamper(path) { connection in
            try connection.statement("UPDATE invoice SET id = id || '0' WHERE id = ?").bind(Rows.invoiceID(invoice)).run()
        }
        let report = try verify(path, parallel: parallel, scratch: scratch)
        let failure = try #require(report.failure)
        #expect(failure.code == .stateMismatch)
        #expect(failure.message.contains("invoice row \(Rows.invoiceID(invoice)): is missing from the file"), "\(failure)")
        #expect(failure.message.contains("; 1 more state rows differ"), "\(failure)")
        #expect(failure.height < Height(UInt64(fixture.blocks)) && failure.height > .genesis,
                "blamed on the block that wrote the invoice, not the tip or genesis: \(failure)")
    }

    /// A state table rebuilt without its primary key can hold a row twice; the copy is caught, and
    /// so is a row deleted beside it (a count of matched rows alone would balance the two).
    @Test(arguments: [true, false], [false, true])
    func aRowStoredTwiceIsCaughtInATableThatLostItsKey(parallel: Bool, scratch: Bool) throws {
        let written = fixture.state.fragments.keys.sorted().filter { fixture.lastFragmentWrite[$0]! >= Height(5) }
        let (twice, deleted) = (try #require(written.first), try #require(written.last))
        let (twiceWriter, deletedWriter) = (fixture.lastFragmentWrite[twice]!, fixture.lastFragmentWrite[deleted]!)
        for deleting in [false, true] {
            let directory = TemporaryDirectory()
            let path = fixture.copy(into: directory)
            try tamper(path) { connection in
                try connection.execute("""
                    CREATE TABLE fragmentCopy AS SELECT * FROM fragment;
                    DROP TABLE fragment;
                    ALTER TABLE fragmentCopy RENAME TO fragment;
                    """)
                try connection.statement("INSERT INTO fragment SELECT * FROM fragment WHERE id = ?").bind(SQLValue(twice.hash)).run()
                if deleting { try connection.statement("DELETE FROM fragment WHERE id = ?").bind(SQLValue(deleted.hash)).run() }
            }
            let report = try verify(path, parallel: parallel, scratch: scratch)
            let failure = try #require(report.failure)
            #expect(failure.code == .stateMismatch)
            #expect(failure.height == (deleting ? min(twiceWriter, deletedWriter) : twiceWriter), "\(failure)")
            #expect(failure.message.contains(deleting ? "; 1 more state rows differ" : "is not in the state recomputed"), "\(failure)")
            #expect(report.verifiedBlocks == fixture.blocks)
        }
    }

    @Test func aDeletedLastBlockOrAnotherGenesisIsReported() throws {
        do {
            let directory = TemporaryDirectory()
            let path = fixture.copy(into: directory)
            try tamper(path) { try $0.execute("DELETE FROM \"transaction\" WHERE height = 48; DELETE FROM block WHERE height = 48") }
            let failure = try #require(try verify(path).failure)
            #expect(failure.code == .tipMismatch)
            #expect(failure.height == Height(48))
        }
        do {
            let directory = TemporaryDirectory()
            let path = fixture.copy(into: directory)
            try tamper(path) { try $0.execute("DELETE FROM \"transaction\" WHERE height = 20; DELETE FROM block WHERE height = 20") }
            let failure = try #require(try verify(path).failure)
            #expect(failure.code == .missingBlock)
            #expect(failure.height == Height(20))
        }
        // A block row moved to a far height (a flipped high bit) or below 1: the missing height is
        // named at once, without a batch for every height of the gap.
        for (moved, to, missing) in [(48, Int64(1) << 40, 48), (30, Int64(1) << 62, 30), (1, -5, 1)] {
            let directory = TemporaryDirectory()
            let path = fixture.copy(into: directory)
            try tamper(path) { try $0.statement("UPDATE block SET height = ? WHERE height = ?").bind(.integer(to), .integer(Int64(moved))).run() }
            let failure = try #require(try verify(path).failure)
            #expect(failure.code == .missingBlock || failure.code == .tipMismatch, "\(failure)")
            #expect(failure.height == Height(UInt64(missing)), "\(failure)")
        }
        do {
            let other = TestConsortium(extraSuppliers: 12, chainID: "another-chain")
            let directory = TemporaryDirectory()
            let report = try LedgerVerifier().verify(path: fixture.copy(into: directory), genesis: other.genesis)
            #expect(report.failure?.code == .genesisMismatch)
            #expect(report.failure?.height == .genesis)
        }
        let empty = TemporaryDirectory()
        #expect(throws: StoreError.self) {
            try LedgerVerifier().verify(path: empty.file("missing.sqlite"))
        }
    }
}
