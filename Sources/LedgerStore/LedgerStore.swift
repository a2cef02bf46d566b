import CSQLite
import Dispatch
import LedgerCore
import Synchronization

/// The ledger on disk: blocks with their certificates, every transaction with its receipt, and the
/// current state, in one SQLite file.
///
/// Durability: WAL journal with `synchronous=FULL`, and exactly one database transaction per block
/// (block row, transaction rows with receipts, every state change and the new tip). SQLite makes
/// that transaction atomic and durable once `append` returns, so after a crash or power loss at any
/// point a reopened store holds either the old tip or the new one, never part of a block.
///
/// Thread safety: a `LedgerStore` may be shared between threads and tasks. It owns a single
/// connection behind a `Mutex`; every call that uses it takes the lock for its whole duration, so
/// calls are serialized and each sees the state before or after any block, never in the middle.
/// (A state read answered from the record cache takes only the cache's lock; the cache changes
/// only after a write commits. Catch-up's `appendCertified(batches:)` also opens a read-only
/// connection of its own for the duration of the call.) Executing a
/// block *on* the store and then appending it is two calls: the caller (the node's single writer)
/// must not interleave another append between them; `append` re-checks height and previous hash
/// and refuses a block that no longer extends the tip. Other processes may read the file at the
/// same time (WAL readers see only committed blocks); only one process may write.
///
/// The store conforms to `LedgerStateReader`, so `BlockExecutor` runs directly on it.
public final class LedgerStore: Sendable, LedgerStateReader {
    /// The genesis this file was created from (checked on every open).
    public let genesis: Genesis
    public let genesisHash: Hash
    public let suite: any CryptoSuite
    /// The path of the data file.
    public let path: String

    private final class Inner {
        var connection: Connection?
        var tip: ChainTip
        /// Open `readTogether` calls: while above zero, reads on the connection share a read transaction.
        var readGroups = 0
        /// Whether `suspendReadModelIndexes` dropped the read-model indexes (until `restoreReadModelIndexes`).
        var indexesSuspended = false
        init(connection: Connection, tip: ChainTip) {
            self.connection = connection
            self.tip = tip
        }
    }

    private let inner: Mutex<Inner>
    /// Decoded state records, written through by `append` (see `StateCache`). Its own lock, so a
    /// hit does not wait for a write holding `inner`. Lock order: `inner`, then `cache`; a write
    /// updates the cache after its commit while still holding `inner`, and a miss reads the row
    /// and caches it under `inner` too, so the cache never holds a value older than the file's.
    private let cache = Mutex(StateCache())

    private init(path: String, genesis: Genesis, genesisHash: Hash, suite: any CryptoSuite, connection: consuming sending Connection, tip: ChainTip) {
        self.path = path
        self.genesis = genesis
        self.genesisHash = genesisHash
        self.suite = suite
        self.inner = Mutex(Inner(connection: connection, tip: tip))
    }

    // MARK: Opening

    /// Opens the ledger in `path`, creating the file and its tables for a new chain, or migrating an
    /// older file. Refuses a file made from another genesis.
    ///
    /// - Parameter buildingMissingIndexes: first build every read-model index the file lacks: a
    ///   node that stopped during a bulk catch-up left them dropped (`suspendReadModelIndexes`).
    ///   For the process that writes the file (the node); a tool reading a running node's file
    ///   must not, as the build would hold the file's write lock for as long as it lasts (its
    ///   queries answer the same without the indexes, only more slowly).
    public static func open(path: String, genesis: Genesis, suite: any CryptoSuite, buildingMissingIndexes: Bool = false) throws -> LedgerStore {
        try open(path: path, genesis: genesis, suite: suite, pageSize: Schema.newFilePageSize, buildingMissingIndexes: buildingMissingIndexes)
    }

    /// `open`, creating a new file with `pageSize`-byte pages (tests and measurements compare sizes).
    static func open(path: String, genesis: Genesis, suite: any CryptoSuite, pageSize: Int,
                     buildingMissingIndexes: Bool = false) throws -> LedgerStore {
        guard suite.id == genesis.cryptoSuite else {
            throw StoreError(.suiteMismatch, "genesis asks for the \(genesis.cryptoSuite) crypto suite but \(suite.id) was given; open the store with the suite genesis names")
        }
        let connection = try Connection(path: path, readOnly: false)
        try setPageSizeIfNew(connection, pageSize)
        try configure(connection)
        try migrate(connection)
        if buildingMissingIndexes { try createMissingReadModelIndexes(connection) }
        let genesisHash = genesis.hash(suite: suite)
        let tip: ChainTip
        if let meta = try readMeta(connection) {
            guard meta.genesisHash == genesisHash else {
                throw StoreError(.genesisMismatch, """
                    \(path) holds chain "\(meta.chainID)" with genesis \(meta.genesisHash.short), not chain "\(genesis.chainID)" \
                    with genesis \(genesisHash.short); use the data file of this chain, or a new file for a new chain
                    """)
            }
            tip = meta.tip
            try checkTip(tip, connection)
        } else {
            tip = BlockExecutor.genesisTip(genesis: genesis, suite: suite)
            try connection.writeTransaction {
                try connection.statement("""
                    INSERT INTO meta (id, chainID, cryptoSuite, genesis, genesisHash, tipHeight, tipHash, tipStateDigest, tipTimestamp)
                    VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)
                    """).bind(.text(genesis.chainID), .text(genesis.cryptoSuite.rawValue), .blob(genesis.canonicalBytes),
                              SQLValue(genesisHash), SQLValue(tip.height), SQLValue(tip.hash), SQLValue(tip.stateDigest),
                              .integer(tip.timestamp.millisecondsSinceEpoch)).run()
                let upsert = try connection.statement(Schema.member.upsertSQL)
                for member in genesis.members.sorted(by: { $0.id < $1.id }) {
                    try upsert.bind(Rows.member(member)).run()
                }
            }
        }
        return LedgerStore(path: path, genesis: genesis, genesisHash: genesisHash, suite: suite, connection: connection, tip: tip)
    }

    /// A file with no tables yet gets `pageSize`-byte pages (see `Schema.newFilePageSize`). It must
    /// happen before anything is written, WAL mode included; an existing file keeps its size.
    static func setPageSizeIfNew(_ connection: Connection, _ pageSize: Int) throws {
        guard case .integer(0) = try connection.pragma("page_count") else { return }
        try connection.execute("PRAGMA page_size = \(pageSize)")
    }

    /// WAL and full fsync: a block acknowledged by `append` survives power loss.
    ///
    /// Checkpoints (copying the WAL into the main file) run every 40 MB of WAL (10,000 pages of
    /// 4 KiB) instead of SQLite's 1,000 pages: a block dirties a few hundred pages, many of them
    /// the same index pages block after block, and each checkpoint writes every page once however
    /// many blocks changed it, so rarer checkpoints write far fewer bytes. Durability is unchanged
    /// (the WAL is synced at every commit).
    ///
    /// The page cache is 16 MB: it is a node's largest single allocation (heaptrack counted the
    /// full cap in use on a bench node), and pages it drops are still in the kernel's page cache,
    /// so a miss costs a read system call, not a disk read.
    static func configure(_ connection: Connection) throws {
        guard case .text(let mode) = try connection.pragma("journal_mode = WAL"), mode.lowercased() == "wal" else {
            throw StoreError(.sqlite, "\(connection.path) cannot use write-ahead logging (is it on a network file system?); put the data file on a local disk")
        }
        guard case .integer(let pageSize) = try connection.pragma("page_size"), pageSize > 0 else {
            throw StoreError(.corrupt, "\(connection.path) reports no page size; it is not a ledger data file")
        }
        try connection.execute("""
            PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -16000; \
            PRAGMA wal_autocheckpoint = \(40_960_000 / pageSize)
            """)
    }

    /// Applies every migration the file does not have yet, each in its own transaction.
    /// `migrations`: all of them; tests pass the first few to make a file as an older scf wrote it.
    static func migrate(_ connection: Connection, migrations: [Schema.Migration] = Schema.migrations) throws {
        try connection.execute("CREATE TABLE IF NOT EXISTS migration (id TEXT PRIMARY KEY NOT NULL)")
        let applied = try connection.statement("SELECT id FROM migration").map { $0.text(0) }
        let known = Set(Schema.migrations.map(\.id))
        if let unknown = applied.first(where: { !known.contains($0) }) {
            throw StoreError(.newerSchema, "\(connection.path) was written by a newer version of scf (it has migration \"\(unknown)\"); upgrade scf to open it")
        }
        for migration in migrations where !applied.contains(migration.id) {
            try connection.writeTransaction {
                try connection.execute(migration.sql)
                try migration.body?(connection)
                try connection.statement("INSERT INTO migration (id) VALUES (?)").bind(.text(migration.id)).run()
            }
        }
    }

    /// The read-model indexes the file lacks.
    static func missingReadModelIndexes(_ connection: Connection) throws -> [(name: String, columns: String)] {
        let existing = Set(try connection.statement("SELECT name FROM sqlite_master WHERE type = 'index'").map { $0.text(0) })
        return Schema.readModelIndexes.filter { !existing.contains($0.name) }
    }

    /// Creates the read-model indexes the file lacks (none, unless a bulk catch-up was cut short),
    /// in one transaction.
    static func createMissingReadModelIndexes(_ connection: Connection) throws {
        let missing = try missingReadModelIndexes(connection)
        guard !missing.isEmpty else { return }
        try connection.writeTransaction {
            for index in missing { try connection.execute("CREATE INDEX \(index.name) ON \(index.columns)") }
        }
    }

    struct Meta {
        var chainID: String
        var genesisBytes: [UInt8]
        var genesisHash: Hash
        var tip: ChainTip
    }

    static func readMeta(_ connection: Connection) throws -> Meta? {
        let statement = try connection.statement(
            "SELECT chainID, genesis, genesisHash, tipHeight, tipHash, tipStateDigest, tipTimestamp FROM meta WHERE id = 1")
        guard let row = try statement.next() else { return nil }
        defer { statement.reset() }
        guard let genesisHash = Hash(bytes: row.blob(2)), let tipHash = Hash(bytes: row.blob(4)), let digest = Hash(bytes: row.blob(5)) else {
            throw StoreError(.corrupt, "the meta row of \(connection.path) is damaged; restore the file from a backup or re-sync from peers")
        }
        let tip = ChainTip(height: Height(UInt64(bitPattern: row.int64(3))), hash: tipHash, stateDigest: digest,
                           timestamp: ConsensusTime(millisecondsSinceEpoch: row.int64(6)))
        return Meta(chainID: row.text(0), genesisBytes: row.blob(1), genesisHash: genesisHash, tip: tip)
    }

    /// The tip in `meta` must name the highest stored block (both are written in one transaction).
    static func checkTip(_ tip: ChainTip, _ connection: Connection) throws {
        let statement = try connection.statement("SELECT height, hash FROM block ORDER BY height DESC LIMIT 1")
        let last = try statement.next().map { (Height(UInt64(bitPattern: $0.int64(0))), Hash(bytes: $0.blob(1))) }
        statement.reset()
        let height = last?.0 ?? .genesis
        guard height == tip.height, last == nil || last?.1 == tip.hash else {
            throw StoreError(.corrupt, "\(connection.path) says its tip is block \(tip.height) but its last block is \(height); the file was edited or damaged, run `scf ledger verify` on it")
        }
    }

    /// Closes the connection. Later calls throw `StoreError.Code.closed`. Also happens on deinit.
    public func close() {
        inner.withLock {
            $0.connection = nil
            cache.withLock { $0.removeAll() }
        }
    }

    /// Runs `body` with the store's connection under its lock; a read (`reading`) inside
    /// `readTogether` joins the group's read transaction.
    private func withConnection<T: Sendable>(reading: Bool = true, _ body: (Connection) throws -> T) throws -> T {
        try inner.withLock { inner throws -> T in
            guard let connection = inner.connection else {
                throw StoreError(.closed, "the ledger store \(path) was closed; open it again")
            }
            if reading, inner.readGroups > 0 { try connection.joinReadGroup() }
            return try body(connection)
        }
    }

    /// Runs `body`, whose reads of the store share read transactions instead of each being one of
    /// its own (each takes and releases the WAL's read lock with two `fcntl` calls; a backup at
    /// saturation read about 300 times per block, state records and nonces for each transaction it
    /// admitted or executed). Writes, here or from another thread, still go through: a write ends
    /// the shared read transaction first, and the next read opens another that sees it. The store's
    /// connection is the only one that writes the file, so a shared snapshot is never stale. Calls
    /// nest. Keep `body` short: an open read transaction holds checkpoints back to its snapshot.
    public func readTogether<T>(_ body: () throws -> T) rethrows -> T {
        inner.withLock { $0.readGroups += 1 }
        defer {
            inner.withLock { inner in
                inner.readGroups -= 1
                // A failed COMMIT of a read transaction leaves nothing to undo; the next write's
                // BEGIN would report a transaction still open.
                if inner.readGroups == 0 { try? inner.connection?.endReadGroup() }
            }
        }
        return try body()
    }

    /// Whether the store's connection holds a group's shared read transaction (tests).
    var holdsGroupedRead: Bool { inner.withLock { $0.connection?.inReadGroup ?? false } }

    /// A PRAGMA's value on the store's own connection (for tests and diagnostics).
    func pragma(_ name: String) throws -> SQLValue {
        try withConnection { try $0.pragma(name) }
    }

    // MARK: Chain

    /// The last stored block (height 0 and the genesis hash before the first block).
    public var tip: ChainTip { inner.withLock { $0.tip } }

    /// Stores a committed block with its execution result, all in one database transaction: the
    /// block, one row per transaction with its receipt, every state change and the new tip.
    ///
    /// Checks first that the block extends the tip (height and previous hash), that the
    /// certificate is for this block and that `result` is this block's execution (same
    /// transactions, receipts and state digest). It does not re-verify the certificate's
    /// signatures or re-execute the block: callers append what they executed or validated.
    ///
    /// - Parameter replicaState: the consensus replica's recovery state to store in the same
    ///   transaction (see `saveReplicaState(_:)`), or nil to leave it as it is.
    public func append(_ committed: CommittedBlock, result: ExecutionResult, replicaState: [UInt8]? = nil) throws {
        let checked = try check(committed, result: result)
        let rows = result.encodedChanges.map(StateRows.init) ?? StateRows(result.changes)
        try inner.withLock { inner throws in
            guard let connection = inner.connection else {
                throw StoreError(.closed, "the ledger store \(path) was closed; open it again")
            }
            try checkExtends(committed.block.header, tip: inner.tip)
            try connection.writeTransaction {
                try Self.writeBlockRows(checked, to: connection)
                try LedgerStore.write(rows, to: connection)
                if let replicaState { try LedgerStore.writeReplicaState(replicaState, to: connection) }
                try Self.writeTip(checked.tip, to: connection)
            }
            inner.tip = checked.tip
            cache.withLock { $0.apply(result.changes) }
        }
    }

    /// Catch-up: executes certified blocks on the store, trusting their client signatures, and
    /// stores them all in one database transaction. Returns each block's execution result.
    ///
    /// For a node that is behind and fetches committed blocks from its peers. Every block is
    /// re-executed (`BlockExecutor.validate` with `.trusted` signatures: roots, receipts and state
    /// digest are recomputed and must match the header) on the store plus the writes of the
    /// earlier blocks of the batch, and its certificate must name it (height and hash), as in
    /// `append`. Client signatures are not checked: the commit certificate vouches that a quorum
    /// of validators checked them. The certificate's own signatures are NOT checked here; the
    /// caller verifies each certificate against the genesis validators before calling (as it does
    /// before `append`).
    ///
    /// Atomicity: the whole batch is one SQLite transaction (rows of every block, the net state
    /// writes and the tip of the last block), so after a crash or power loss the file holds either
    /// none of the batch or all of it, never part of a block. State rows are written once per
    /// batch with their final value, which gives exactly the rows that appending the blocks one by
    /// one would leave. Throws without writing anything if any block fails.
    ///
    /// - Parameter replicaState: stored in the same transaction, as in `append`.
    /// Returns each block's receipts.
    @discardableResult
    public func appendCertified(_ blocks: [CommittedBlock], executor: BlockExecutor, replicaState: [UInt8]? = nil) throws -> [[Receipt]] {
        guard !blocks.isEmpty else { return [] }
        let batch = try executeCertified(blocks, on: tip, over: OverlayState(base: self, changes: StateChanges()), executor: executor)
        try writeCertified(batch, replicaState: replicaState)
        return batch.receipts
    }

    /// `appendCertified` for consecutive batches, each its own database transaction, with the
    /// next batch executed while the one before is written: execution runs on the calling thread,
    /// on the store plus the writes of every earlier batch of the call not yet stored (a batch
    /// stored is read from the store), and the writes run in order on a writer thread.
    /// On two cores a node catching up spends about as long executing as writing, so this nearly
    /// halves its time per transaction.
    ///
    /// `more` is asked for further batches once the given ones are executed, again and again
    /// until it returns none, before the call waits for the writes: blocks that arrive while the
    /// writer is still busy join the pipeline instead of waiting for it to drain (the blocks must
    /// continue the chain of the batches before them).
    ///
    /// Atomicity is per batch, as in `appendCertified`. Returns the receipts of the batches that
    /// were stored, per block, in order (the given batches, then those `more` returned, empty ones
    /// skipped), and the error that stopped the rest, if any: a batch that does not execute to its
    /// headers, or a write that fails, stores nothing of that batch or those after it, and `more`
    /// is not asked again. A batch keeps only its blocks' receipts (`CertifiedBatch`), so what
    /// the call returns grows by receipts alone.
    public func appendCertified(batches: [[CommittedBlock]], executor: BlockExecutor,
                                more: () -> [[CommittedBlock]] = { [] }) -> (stored: [[[Receipt]]], error: (any Error)?) {
        let writer = DispatchQueue(label: "scf.store.writer")
        let reader: SnapshotReader
        do {
            reader = try SnapshotReader(store: self)
        } catch {
            return ([], error)
        }
        let written = Mutex<(results: [[[Receipt]]], error: (any Error)?)>(([], nil))
        // The writes of this call's batches not yet stored, one layer per batch (the first is
        // batch `stored`): merging them into one set instead copied every record again for each
        // batch (and the growing dictionaries' fresh pages faulted in), about a sixth of the
        // executing thread's time. A stored batch's layer is dropped: its writes are in the store
        // and its cache (both updated before the writer counts the batch), so lookups stay short
        // however long the call runs.
        var layers: [StateChanges] = []
        var stored = 0
        var tip = self.tip
        var executionError: (any Error)?
        var queued = batches[...]
        while true {
            if written.withLock({ $0.error != nil }) { break }
            if queued.isEmpty {
                queued = more()[...]
                if queued.isEmpty { break }
            }
            let blocks = queued.removeFirst()
            if blocks.isEmpty { continue }
            let storedNow = written.withLock { $0.results.count }
            layers.removeFirst(storedNow - stored)
            stored = storedNow
            do {
                let batch = try executeCertified(blocks, on: tip, over: LayeredState(base: reader, layers: layers), executor: executor)
                layers.append(batch.changes)
                tip = batch.last
                writer.async { [self] in
                    guard written.withLock({ $0.error == nil }) else { return }
                    do {
                        try writeCertified(batch, replicaState: nil)
                        written.withLock { $0.results.append(batch.receipts) }
                    } catch {
                        written.withLock { $0.error = error }
                    }
                }
            } catch {
                executionError = error
                break
            }
        }
        writer.sync {}
        let outcome = written.withLock { $0 }
        return (outcome.results, outcome.error ?? executionError)
    }

    /// Certified blocks executed and checked, ready to be written in one database transaction.
    /// Of each block's `ExecutionResult` only the receipts are kept: a result also holds every
    /// record the block wrote, which `changes` already has merged, and a far-behind node's
    /// pipelined call runs for up to 96,000 transactions, so keeping the results made a catch-up's
    /// memory grow by about 3 KB a transaction until the call returned (DECISIONS 50).
    private struct CertifiedBatch: @unchecked Sendable {
        var blocks: [CommittedBlock]
        var receipts: [[Receipt]]
        var checked: [CheckedBlock]
        /// The batch's own state writes, each record once with its final value.
        var changes: StateChanges
        /// `changes` as rows, built by the executing thread so the writer only binds them.
        var rows: StateRows
        var start: ChainTip
        var last: ChainTip
    }

    /// Re-executes `blocks` from `start` on `state` (the store, plus in a pipelined call the writes
    /// of earlier batches not necessarily stored yet) and the writes of the batch's earlier blocks.
    private func executeCertified<Base: LedgerStateReader>(_ blocks: [CommittedBlock], on start: ChainTip, over state: Base,
                                                           executor: BlockExecutor) throws -> CertifiedBatch {
        var tip = start
        var changes = StateChanges()
        var receipts: [[Receipt]] = []
        var checked: [CheckedBlock] = []
        receipts.reserveCapacity(blocks.count)
        checked.reserveCapacity(blocks.count)
        for committed in blocks {
            try checkExtends(committed.block.header, tip: tip)
            let result: ExecutionResult
            do {
                // Certified: client signatures and the invariants are vouched for by the quorum
                // (DECISIONS 10 and 35); the header's roots and state digest are still compared.
                result = try executor.validate(committed.block, on: tip, state: OverlayState(base: state, changes: changes),
                                               signatures: .trusted, invariants: .none)
            } catch let error as BlockValidationError {
                throw StoreError(.resultMismatch, "certified block \(committed.block.header.height) does not re-execute to its header (\(error)); the peer sent a wrong block or this store is damaged, run `scf ledger verify` on \(path)")
            }
            let blockCheck = try check(committed, result: result)
            changes.merge(result.changes)
            tip = blockCheck.tip
            receipts.append(result.receipts)
            checked.append(blockCheck)
        }
        return CertifiedBatch(blocks: blocks, receipts: receipts, checked: checked, changes: changes, rows: StateRows(changes),
                              start: start, last: tip)
    }

    /// Writes an executed batch in one database transaction, if the tip is still where it started.
    private func writeCertified(_ batch: CertifiedBatch, replicaState: [UInt8]?) throws {
        try inner.withLock { inner throws in
            guard let connection = inner.connection else {
                throw StoreError(.closed, "the ledger store \(path) was closed; open it again")
            }
            guard inner.tip == batch.start else {
                throw StoreError(.wrongHeight, "another block was appended (tip is now \(inner.tip.height)) while this batch executed on block \(batch.start.height); execute the batch again")
            }
            try connection.writeTransaction {
                for index in batch.blocks.indices {
                    try Self.writeBlockRows(batch.checked[index], to: connection)
                }
                try LedgerStore.write(batch.rows, to: connection)
                if let replicaState { try LedgerStore.writeReplicaState(replicaState, to: connection) }
                try Self.writeTip(batch.last, to: connection)
            }
            inner.tip = batch.last
            cache.withLock { $0.apply(batch.changes) }
        }
    }

    /// A block that passed `check`: its row, its transactions' rows, the tip after it.
    private struct CheckedBlock {
        var row: [SQLValue]
        var transactionRows: [[SQLValue]]
        var tip: ChainTip
    }

    /// The checks `append` makes before writing: the certificate names the block, the result is
    /// the block's. Returns the block row and the tip after it.
    private func check(_ committed: CommittedBlock, result: ExecutionResult) throws -> CheckedBlock {
        let block = committed.block
        let header = block.header
        let hash = block.hash(suite: suite)
        guard committed.certificate.blockHash == hash, committed.certificate.height == header.height else {
            throw StoreError(.resultMismatch, "the certificate is for block \(committed.certificate.height) \(committed.certificate.blockHash.short), not block \(header.height) \(hash.short); pass the certificate that finalized this block")
        }
        guard result.transactions.count == block.transactions.count, result.receipts.count == block.transactions.count,
              result.stateDigest == header.stateDigest, result.resultsRoot == header.resultsRoot,
              zip(result.receipts, block.transactions).allSatisfy({ $0.transaction == $1.id }) else {
            throw StoreError(.resultMismatch, "the execution result given with block \(header.height) is not this block's (transactions, receipts or state digest differ); execute or validate the block and pass its result")
        }
        let wire = Rows.wire(of: block)
        var transactionRows: [[SQLValue]] = []
        transactionRows.reserveCapacity(block.transactions.count)
        for (position, (transaction, receipt)) in zip(block.transactions, result.receipts).enumerated() {
            transactionRows.append(Rows.transaction(transaction, receipt: receipt, height: header.height, position: position,
                                                    wire: wire.ranges[position]))
        }
        return CheckedBlock(row: Rows.block(committed, hash: hash, wire: wire.bytes), transactionRows: transactionRows,
                            tip: ChainTip(height: header.height, hash: hash, stateDigest: header.stateDigest, timestamp: header.timestamp))
    }

    private func checkExtends(_ header: BlockHeader, tip: ChainTip) throws {
        guard header.height == tip.height.next else {
            throw StoreError(.wrongHeight, "block \(header.height) does not follow the stored tip \(tip.height); append block \(tip.height.next) next")
        }
        guard header.previousHash == tip.hash else {
            throw StoreError(.wrongPreviousHash, "block \(header.height) links to \(header.previousHash.short) but the stored tip \(tip.height) is \(tip.hash.short); this block is from another fork or chain")
        }
    }

    /// The block row and one row per transaction with its receipt.
    private static func writeBlockRows(_ checked: CheckedBlock, to connection: Connection) throws {
        try connection.statement(Schema.block.insertSQL).bind(checked.row).run()
        let insertTransaction = try connection.statement(Schema.transaction.insertSQL)
        for row in checked.transactionRows { try insertTransaction.bind(row).run() }
    }

    private static let updateTipSQL = "UPDATE meta SET tipHeight = ?, tipHash = ?, tipStateDigest = ?, tipTimestamp = ? WHERE id = 1"

    private static func writeTip(_ tip: ChainTip, to connection: Connection) throws {
        try connection.statement(updateTipSQL).bind(SQLValue(tip.height), SQLValue(tip.hash), SQLValue(tip.stateDigest),
                                                     .integer(tip.timestamp.millisecondsSinceEpoch)).run()
    }

    // MARK: Read-model indexes (bulk catch-up)

    /// Whether the read-model indexes are dropped for a bulk catch-up (`suspendReadModelIndexes`).
    public var readModelIndexesSuspended: Bool { inner.withLock { $0.indexesSuspended } }

    /// Drops the read-model indexes (`Schema.readModelIndexes`) until `restoreReadModelIndexes`,
    /// for a node about to store a history large against its ledger (DECISIONS 45).
    ///
    /// Keeping twelve indexes current row by row was a third of catch-up's writer, the stage that
    /// paces it; building an index once from the finished table sorts its entries and writes each
    /// page once, several times cheaper per row. Nothing else changes: execution never reads
    /// through these indexes, every query still answers the same (by scanning its table, so more
    /// slowly, until they are back), and none of them is unique, so no write that would be refused
    /// with them is accepted without them. A query that scans holds the store's lock meanwhile, so
    /// heavy querying slows the catch-up. If the process stops before the restore, the node's next
    /// `open` (`buildingMissingIndexes`) builds them. No effect if they are already suspended.
    public func suspendReadModelIndexes() throws {
        try inner.withLock { inner throws in
            guard let connection = inner.connection else {
                throw StoreError(.closed, "the ledger store \(path) was closed; open it again")
            }
            guard !inner.indexesSuspended else { return }
            try connection.writeTransaction {
                for index in Schema.readModelIndexes { try connection.execute("DROP INDEX IF EXISTS \(index.name)") }
            }
            inner.indexesSuspended = true
        }
    }

    /// Builds the read-model indexes again after `suspendReadModelIndexes`, in one transaction
    /// (about 4 µs per row on this project's machine: 0.3 s for a ledger of 73,000 transactions).
    /// No effect if they are not suspended.
    public func restoreReadModelIndexes() throws {
        try inner.withLock { inner throws in
            guard let connection = inner.connection else {
                throw StoreError(.closed, "the ledger store \(path) was closed; open it again")
            }
            guard inner.indexesSuspended else { return }
            try Self.createMissingReadModelIndexes(connection)
            inner.indexesSuspended = false
        }
    }

    /// The read-model indexes the file lacks, by name (none unless they are suspended, or the file
    /// was left by a bulk catch-up cut short and opened without `buildingMissingIndexes`).
    public func missingReadModelIndexes() throws -> [String] {
        try withConnection { try Self.missingReadModelIndexes($0).map(\.name) }
    }

    /// How many transactions the ledger holds, committed and refused (a scan of the smallest
    /// index, so its time grows with the ledger).
    public func storedTransactionCount() throws -> Int {
        try withConnection { connection -> Int in
            let statement = try connection.statement(#"SELECT count(*) FROM "transaction""#)
            defer { statement.reset() }
            return Int(try statement.next()?.int64(0) ?? 0)
        }
    }

    // MARK: Consensus replica state

    /// Durably stores the consensus replica's recovery state (what it prepared, its view, …) in
    /// its own transaction: when this returns, the state survives a crash or power loss, so the
    /// replica may send the message that depended on it. The bytes are the Consensus module's
    /// encoding; the store does not read them.
    public func saveReplicaState(_ bytes: [UInt8]) throws {
        try withConnection(reading: false) { connection in
            try connection.writeTransaction { try LedgerStore.writeReplicaState(bytes, to: connection) }
        }
    }

    /// The last replica state saved, or nil if none was.
    public func replicaState() throws -> [UInt8]? {
        try withConnection { connection -> [UInt8]? in
            let statement = try connection.statement("SELECT record FROM replicaState WHERE id = 1")
            guard let row = try statement.next() else { return nil }
            defer { statement.reset() }
            return row.blob(0)
        }
    }

    static func writeReplicaState(_ bytes: [UInt8], to connection: Connection) throws {
        try connection.statement("INSERT INTO replicaState (id, record) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET record = excluded.record")
            .bind(.blob(bytes)).run()
    }

    /// Upserts every changed record, in key order (deterministic file layout).
    static func write(_ rows: StateRows, to connection: Connection) throws {
        if !rows.members.isEmpty {
            let statement = try connection.statement(Schema.member.upsertSQL)
            for row in rows.members { try statement.bind(row).run() }
        }
        if !rows.nonces.isEmpty {
            let statement = try connection.statement(Schema.nonce.upsertSQL)
            for row in rows.nonces { try statement.bind(row).run() }
        }
        if !rows.roots.isEmpty { try upsert(rows.roots, into: Schema.root, connection) }
        if !rows.fragments.isEmpty { try upsert(rows.fragments, into: Schema.fragment, connection) }
        if !rows.invoices.isEmpty { try upsert(rows.invoices, into: Schema.invoice, connection) }
        if !rows.financingRequests.isEmpty {
            try upsert(rows.financingRequests, into: Schema.financingRequest, connection)
        }
    }

    /// Inserts or updates each row with the table's narrow upsert, and writes the whole row when
    /// that changed nothing (an existing row whose fixed columns differ: see `Schema.Table`).
    static func upsert(_ rows: [[SQLValue]], into table: Schema.Table, _ connection: Connection) throws {
        guard let narrowSQL = table.narrowUpsertSQL else {
            let statement = try connection.statement(table.upsertSQL)
            for row in rows { try statement.bind(row).run() }
            return
        }
        let narrow = try connection.statement(narrowSQL)
        for row in rows {
            try narrow.bind(row).run()
            if connection.changes == 0 { try connection.statement(table.upsertSQL).bind(row).run() }
        }
    }

    /// The block at `height` with its certificate, or nil above the tip (and at genesis).
    public func block(at height: Height) throws -> CommittedBlock? {
        let raw = try withConnection { connection -> (wire: [UInt8], certificate: [UInt8])? in
            let statement = try connection.statement("SELECT wire, certificate FROM block WHERE height = ?").bind(SQLValue(height))
            guard let row = try statement.next() else { return nil }
            defer { statement.reset() }
            return (row.blob(0), row.blob(1))
        }
        guard let raw else { return nil }
        return try decodeBlock(height: height, wire: raw.wire, certificate: raw.certificate)
    }

    /// A block's hash, header, transaction ids (in block order) and certificate, or nil above the
    /// tip: what a block listing shows, read from the stored header and the transaction rows
    /// without decoding and hashing every transaction of the block (the verifier checks the rows'
    /// ids against the block's transactions).
    public func blockSummary(at height: Height) throws -> BlockSummary? {
        let raw = try withConnection { connection -> (hash: [UInt8], header: [UInt8], certificate: [UInt8], ids: [[UInt8]])? in
            let statement = try connection.statement("SELECT hash, header, certificate FROM block WHERE height = ?").bind(SQLValue(height))
            guard let row = try statement.next() else { return nil }
            let found = (row.blob(0), row.blob(1), row.blob(2))
            statement.reset()
            let ids = try connection.statement("SELECT id FROM \"transaction\" WHERE height = ? ORDER BY position").bind(SQLValue(height)).map { $0.blob(0) }
            return (found.0, found.1, found.2, ids)
        }
        guard let raw else { return nil }
        do {
            guard let hash = Hash(bytes: raw.hash) else { throw StoreError(.corrupt, "the stored hash is \(raw.hash.count) bytes") }
            let ids = try raw.ids.map { bytes in
                guard let id = Hash(bytes: bytes) else { throw StoreError(.corrupt, "a transaction id is \(bytes.count) bytes") }
                return id
            }
            let header = try BlockHeader(canonicalBytes: raw.header)
            guard ids.count == Int(header.transactionCount) else {
                throw StoreError(.corrupt, "\(ids.count) transaction rows for a header that counts \(header.transactionCount)")
            }
            return BlockSummary(height: height, hash: hash, header: header, transactionIDs: ids,
                                certificate: try CommitCertificate(canonicalBytes: raw.certificate))
        } catch {
            throw StoreError(.corrupt, "stored block \(height) does not decode (\(error)); run `scf ledger verify` on \(path)")
        }
    }

    /// The hash of the block at `height` (the genesis hash at height 0), or nil above the tip.
    public func blockHash(at height: Height) throws -> Hash? {
        if height == .genesis { return genesisHash }
        return try withConnection { connection -> Hash? in
            let statement = try connection.statement("SELECT hash FROM block WHERE height = ?").bind(SQLValue(height))
            guard let row = try statement.next() else { return nil }
            defer { statement.reset() }
            return Hash(bytes: row.blob(0))
        }
    }

    private func decodeBlock(height: Height, wire: [UInt8], certificate: [UInt8]) throws -> CommittedBlock {
        do {
            let block = try Block(wireBytes: wire, suite: suite)
            return CommittedBlock(block: block, certificate: try CommitCertificate(canonicalBytes: certificate))
        } catch {
            throw StoreError(.corrupt, "stored block \(height) does not decode (\(error)); run `scf ledger verify` on \(path)")
        }
    }

    /// Streams blocks in height order, `from` through `through` (default: the tip as it is when the
    /// call starts), reading `batchSize` blocks at a time so memory stays flat on long chains. The
    /// lock is not held while `body` runs. Return `false` from `body` to stop early.
    public func forEachBlock(from start: Height = Height(1), through end: Height? = nil, batchSize: Int = 256,
                             _ body: (CommittedBlock) throws -> Bool) throws {
        try forEachEncodedBlock(from: start, through: end, batchSize: batchSize) { height, wire, certificate in
            try body(try decodeBlock(height: height, wire: wire, certificate: certificate))
        }
    }

    /// `forEachBlock` without decoding: each block's canonical wire bytes and its certificate's
    /// canonical bytes as stored (their concatenation is the block as catch-up sends it). For a
    /// node serving catch-up, which would otherwise decode every transaction only to encode it again.
    public func forEachEncodedBlock(from start: Height = Height(1), through end: Height? = nil, batchSize: Int = 256,
                                    _ body: (_ height: Height, _ wire: [UInt8], _ certificate: [UInt8]) throws -> Bool) throws {
        let last = end ?? tip.height
        var next = max(start.value, 1)
        while next <= last.value {
            let rows = try withConnection { connection -> [(Int64, [UInt8], [UInt8])] in
                let statement = try connection.statement("SELECT height, wire, certificate FROM block WHERE height >= ? AND height <= ? ORDER BY height LIMIT ?")
                    .bind(SQLValue(unsigned: next), SQLValue(last), .integer(Int64(max(batchSize, 1))))
                return try statement.map { ($0.int64(0), $0.blob(1), $0.blob(2)) }
            }
            guard !rows.isEmpty else { return }
            for (height, wire, certificate) in rows {
                guard try body(Height(UInt64(height)), wire, certificate) else { return }
            }
            next = UInt64(rows.last!.0) + 1
        }
    }

    // MARK: Transactions

    /// The transaction with this id, with its receipt and place in the chain. A replayed copy of a
    /// transaction can appear again in a later block (rejected as `replayed`), so an id is not
    /// unique: this returns the first occurrence, the one that counts. `occurrences(of:)` lists all.
    public func transaction(id: Hash) throws -> StoredTransaction? {
        try occurrences(of: id, limit: 1).first
    }

    /// Whether a transaction with this id is stored (committed or rejected). Cheaper than
    /// `transaction(id:)`: one index lookup, nothing decoded.
    public func containsTransaction(id: Hash) throws -> Bool {
        try !committedTransactionIDs(among: [id]).isEmpty
    }

    /// The ids among `ids` that are already stored, in one lock and one prepared statement
    /// (for a node checking a proposed block or its pool for transactions already committed).
    ///
    /// The lookups share one read transaction: each query outside a transaction is a read
    /// transaction of its own, which takes and releases the WAL's read lock with `fcntl` calls
    /// (about a quarter of a backup's system calls at 1,500 tx/s were `fcntl`).
    public func committedTransactionIDs(among ids: [Hash]) throws -> Set<Hash> {
        guard !ids.isEmpty else { return [] }
        return try withConnection { connection -> Set<Hash> in
            let lookUp = { () throws -> Set<Hash> in
                let statement = try connection.statement(Self.containsTransactionSQL)
                var found = Set<Hash>()
                for id in ids {
                    statement.reset()
                    if try statement.bind(.integer(Rows.idPrefix(id)), SQLValue(id)).next() != nil {
                        found.insert(id)
                    }
                }
                statement.reset()
                return found
            }
            return ids.count > 1 && connection.isAutocommit ? try connection.readTransaction(lookUp) : try lookUp()
        }
    }

    private static let containsTransactionSQL = "SELECT 1 FROM \"transaction\" WHERE idPrefix = ? AND id = ? LIMIT 1"

    /// Every stored occurrence of a transaction id, in chain order.
    public func occurrences(of id: Hash, limit: Int? = nil) throws -> [StoredTransaction] {
        try transactions(where: "t.idPrefix = ? AND t.id = ?", [.integer(Rows.idPrefix(id)), SQLValue(id)], limit: limit)
    }

    /// The transactions of one block with their receipts, in block order.
    public func transactions(inBlock height: Height) throws -> [StoredTransaction] {
        try transactions(where: "t.height = ?", [SQLValue(height)], limit: nil)
    }

    /// Transactions signed by `signer`, in chain order, from block `start` on.
    public func transactions(signedBy signer: MemberID, from start: Height = Height(1), limit: Int? = nil) throws -> [StoredTransaction] {
        try transactions(where: "t.signer = ? AND t.height >= ?", [SQLValue(signer), SQLValue(start)], limit: limit)
    }

    private func transactions(where condition: String, _ arguments: [SQLValue], limit: Int?) throws -> [StoredTransaction] {
        let rows = try withConnection { connection -> [[SQLValue]] in
            // The signed bytes are read from the block's wire (see migration v3-compact-transaction-rows).
            let statement = try connection.statement("""
                SELECT t.height, t.position, t.status, t.reasonCode, t.reasonMessage, substr(b.wire, t.wireOffset + 1, t.wireLength), t.id
                FROM "transaction" t JOIN block b ON b.height = t.height
                WHERE \(condition) ORDER BY t.height, t.position LIMIT ?
                """).bind(arguments + [.integer(Int64(limit ?? -1))])
            return try statement.map { $0.values }
        }
        return try rows.map { row in
            guard case .integer(let height) = row[0], case .integer(let position) = row[1], case .text(let status) = row[2],
                  case .blob(let wire) = row[5], let transaction = try? SignedTransaction(wireBytes: wire, suite: suite),
                  row[6] == SQLValue(transaction.id) else {
                throw StoreError(.corrupt, "the transaction row at block \(row[0]) position \(row[1]) does not match the block's bytes; run `scf ledger verify` on \(path)")
            }
            var rejection: Rejection?
            if status == "rejected" {
                guard case .text(let raw) = row[3], let code = RejectionCode(rawValue: raw), case .text(let message) = row[4] else {
                    throw StoreError(.corrupt, "stored transaction \(transaction.id.short) has a damaged receipt; run `scf ledger verify` on \(path)")
                }
                rejection = Rejection(code, message)
            }
            return StoredTransaction(transaction: transaction, receipt: Receipt(transaction: transaction.id, rejection: rejection),
                                     height: Height(UInt64(height)), position: Int(position))
        }
    }

    // MARK: State (LedgerStateReader)

    private func records<T: CanonicalDecodable & Sendable>(_ table: Schema.Table, where condition: String, _ arguments: [SQLValue],
                                                           orderBy order: String = "id", limit: Int?) throws -> [T] {
        let blobs = try withConnection { connection -> [[UInt8]] in
            let statement = try connection.statement(
                "SELECT record FROM \(table.quotedName) WHERE \(condition) ORDER BY \(order) LIMIT ?").bind(arguments + [.integer(Int64(limit ?? -1))])
            return try statement.map { $0.blob(0) }
        }
        return try blobs.map { bytes in
            do {
                return try T(canonicalBytes: bytes)
            } catch {
                throw StoreError(.corrupt, "a \(table.name) row does not decode (\(error)); run `scf ledger verify` on \(path)")
            }
        }
    }

    /// A state record through the cache: the cached value (or cached absence), else the row read
    /// and decoded, then cached, both under the connection's lock, so a write cannot commit
    /// between the read and the caching (a write updates the cache under that lock too).
    ///
    /// `snapshot`: read a miss on this read-only connection instead, without the connection's
    /// lock (only for `SnapshotReader`: see there why caching what it read is safe in that use).
    fileprivate func cachedRecord<T: CachedRecord>(_ key: T.Key, reading snapshot: Connection? = nil) throws -> T? {
        try throughCache(reading: snapshot, lookup: { T.cached(key, in: &$0) }, remember: { T.cache($1, for: key, in: &$0) }) { connection in
            try Self.readRecord(T.table, T.sqlKey(key), connection: connection, path: path)
        }
    }

    /// A cached value, else `read` on the store's connection under its lock (or on `snapshot`),
    /// then remembered in the cache.
    private func throughCache<Value: Sendable>(reading snapshot: Connection?, lookup: @Sendable (inout StateCache) -> Value?,
                                               remember: @Sendable (inout StateCache, Value) -> Void,
                                               read: (Connection) throws -> Value) throws -> Value {
        if let cached = cache.withLock({ lookup(&$0) }) { return cached }
        if let snapshot {
            let value = try read(snapshot)
            cache.withLock { remember(&$0, value) }
            return value
        }
        return try withConnection { connection in
            let value = try read(connection)
            cache.withLock { remember(&$0, value) }
            return value
        }
    }

    private static func readRecord<T: CanonicalDecodable>(_ table: Schema.Table, _ key: SQLValue, connection: Connection, path: String) throws -> T? {
        let statement = try connection.statement(table.selectRecordSQL).bind(key)
        guard let row = try statement.next() else { return nil }
        defer { statement.reset() }
        do {
            return try T(canonicalBytes: row.blob(0))
        } catch {
            throw StoreError(.corrupt, "the \(table.name) row \(key) does not decode (\(error)); run `scf ledger verify` on \(path)")
        }
    }

    public func member(_ id: MemberID) throws -> Member? { try cachedRecord(id) }

    public func nonce(of id: MemberID) throws -> UInt64 { try nonce(of: id, reading: nil) }

    fileprivate func nonce(of id: MemberID, reading snapshot: Connection?) throws -> UInt64 {
        try throughCache(reading: snapshot, lookup: { $0.nonces.value(for: id) }, remember: { $0.nonces.insert($1, for: id) }) { connection in
            let statement = try connection.statement(Self.selectNonceSQL).bind(SQLValue(id))
            guard let row = try statement.next() else { return 0 }
            defer { statement.reset() }   // after reading the row: it is a view on the statement
            return UInt64(bitPattern: row.int64(0))
        }
    }

    static let selectNonceSQL = "SELECT value FROM nonce WHERE id = ?"

    public func root(_ id: ReceivableID) throws -> ReceivableRoot? { try cachedRecord(id) }
    public func fragment(_ id: FragmentID) throws -> Fragment? { try cachedRecord(id) }
    public func invoice(_ key: InvoiceKey) throws -> InvoiceRecord? { try cachedRecord(key) }
    public func financingRequest(_ id: Hash) throws -> FinancingRequest? {
        try cachedRecord(id)
    }

    // MARK: Read-model queries

    /// Every member, by id.
    public func members() throws -> [Member] { try records(Schema.member, where: "1", [], limit: nil) }

    /// Fragments held by `holder`, optionally only in the given states (e.g. the live ones), by id.
    public func fragments(heldBy holder: MemberID, in states: [FragmentState]? = nil, limit: Int? = nil) throws -> [Fragment] {
        let (condition, arguments) = Self.heldByFilter(holder, states)
        return try records(Schema.fragment, where: condition, arguments, limit: limit)
    }

    /// The condition of `fragments(heldBy:in:)`. The fragment index leads with the state, so a
    /// query for no states in particular names them all (a test checks SQLite reads the index).
    static func heldByFilter(_ holder: MemberID, _ states: [FragmentState]?) -> (String, [SQLValue]) {
        let (condition, arguments) = stateFilter(states ?? FragmentState.allCases)
        return ("holder = ?" + condition, [SQLValue(holder)] + arguments)
    }

    /// Every fragment of a receivable (its whole lineage, live and closed), by generation then id.
    public func fragments(ofRoot root: ReceivableID, limit: Int? = nil) throws -> [Fragment] {
        try records(Schema.fragment, where: "root = ?", [SQLValue(root.hash)], orderBy: "generation, id", limit: limit)
    }

    /// Fragments in one state (e.g. every financed fragment), by id.
    public func fragments(in state: FragmentState, limit: Int? = nil) throws -> [Fragment] {
        try records(Schema.fragment, where: "state = ?", [.text(state.description)], limit: limit)
    }

    /// Receivables owed by `debtor`, optionally only in one status, by maturity then id.
    public func roots(debtor: MemberID, status: RootStatus? = nil, limit: Int? = nil) throws -> [ReceivableRoot] {
        let (condition, arguments) = Self.statusFilter(status)
        return try records(Schema.root, where: "debtor = ?" + condition, [SQLValue(debtor)] + arguments, orderBy: "maturity, id", limit: limit)
    }

    /// Receivables whose original creditor is `creditor`, optionally only in one status, by maturity then id.
    public func roots(creditor: MemberID, status: RootStatus? = nil, limit: Int? = nil) throws -> [ReceivableRoot] {
        let (condition, arguments) = Self.statusFilter(status)
        return try records(Schema.root, where: "creditor = ?" + condition, [SQLValue(creditor)] + arguments, orderBy: "maturity, id", limit: limit)
    }

    /// Receivables maturing between two dates (both included), optionally only in one status, by maturity then id.
    public func roots(maturingFrom first: BusinessDate, through last: BusinessDate, status: RootStatus? = nil,
                      limit: Int? = nil) throws -> [ReceivableRoot] {
        let (condition, arguments) = Self.statusFilter(status)
        return try records(Schema.root, where: "maturity >= ? AND maturity <= ?" + condition,
                           [SQLValue(first), SQLValue(last)] + arguments, orderBy: "maturity, id", limit: limit)
    }

    /// Receivables in one status, by maturity then id.
    public func roots(status: RootStatus, limit: Int? = nil) throws -> [ReceivableRoot] {
        try records(Schema.root, where: "status = ?", [.text(status.description)], orderBy: "maturity, id", limit: limit)
    }

    /// Invoices issued by the seller with this unified social credit code, by key.
    public func invoices(sellerTaxID: UnifiedSocialCreditCode, limit: Int? = nil) throws -> [InvoiceRecord] {
        try records(Schema.invoice, where: "sellerTaxID = ?", [.text(sellerTaxID.rawValue)], orderBy: "code, number", limit: limit)
    }

    /// Invoices addressed to the buyer with this unified social credit code, by key.
    public func invoices(buyerTaxID: UnifiedSocialCreditCode, limit: Int? = nil) throws -> [InvoiceRecord] {
        try records(Schema.invoice, where: "buyerTaxID = ?", [.text(buyerTaxID.rawValue)], orderBy: "code, number", limit: limit)
    }

    /// Financing requests addressed to `bank`, optionally only in one status (e.g. pending), by id.
    public func financingRequests(bank: MemberID, status: FinancingStatus? = nil, limit: Int? = nil) throws -> [FinancingRequest] {
        let (condition, arguments) = Self.statusFilter(status)
        return try records(Schema.financingRequest, where: "bank = ?" + condition, [SQLValue(bank)] + arguments, limit: limit)
    }

    /// Every financing request made on a fragment, by id.
    public func financingRequests(fragment: FragmentID, limit: Int? = nil) throws -> [FinancingRequest] {
        try records(Schema.financingRequest, where: "fragment = ?", [SQLValue(fragment.hash)], limit: limit)
    }

    private static func stateFilter(_ states: [FragmentState]) -> (String, [SQLValue]) {
        guard !states.isEmpty else { return (" AND 0", []) }
        let placeholders = Array(repeating: "?", count: states.count).joined(separator: ", ")
        return (" AND state IN (\(placeholders))", states.map { .text($0.description) })
    }

    private static func statusFilter(_ status: (some CustomStringConvertible)?) -> (String, [SQLValue]) {
        guard let status else { return ("", []) }
        return (" AND status = ?", [.text(status.description)])
    }
}

/// A stored transaction: the signed transaction, its receipt and where it sits in the chain.
public struct StoredTransaction: Hashable, Sendable {
    public var transaction: SignedTransaction
    public var receipt: Receipt
    public var height: Height
    /// Index in its block (0-based).
    public var position: Int

    public init(transaction: SignedTransaction, receipt: Receipt, height: Height, position: Int) {
        self.transaction = transaction
        self.receipt = receipt
        self.height = height
        self.position = position
    }
}

/// A reader over `base` and layers of writes on top of it, the last layer newest: a record is
/// read from the newest layer that wrote it, else from `base`.
private struct LayeredState<Base: LedgerStateReader>: LedgerStateReader {
    let base: Base
    let layers: [StateChanges]

    private func newest<Value>(_ lookup: (StateChanges) -> Value?) -> Value? {
        for layer in layers.reversed() { if let value = lookup(layer) { return value } }
        return nil
    }

    func member(_ id: MemberID) throws -> Member? { try newest { $0.members[id] } ?? base.member(id) }
    func nonce(of id: MemberID) throws -> UInt64 { try newest { $0.nonces[id] } ?? base.nonce(of: id) }
    func root(_ id: ReceivableID) throws -> ReceivableRoot? { try newest { $0.roots[id] } ?? base.root(id) }
    func fragment(_ id: FragmentID) throws -> Fragment? { try newest { $0.fragments[id] } ?? base.fragment(id) }
    func invoice(_ key: InvoiceKey) throws -> InvoiceRecord? { try newest { $0.invoices[key] } ?? base.invoice(key) }
    func financingRequest(_ id: Hash) throws -> FinancingRequest? {
        try newest { $0.financingRequests[id] } ?? base.financingRequest(id)
    }
}

/// The state a pipelined catch-up batch executes on (`LedgerStore.appendCertified(batches:)`):
/// the store's cache, else a read-only connection of its own, never the store's connection, which
/// the writer thread holds while it writes the batch before (waiting for it would undo the
/// overlap). Caching what this connection read is safe only there: while the call runs, every
/// write to the file is a batch of the same call, whose changes the executor reads first through
/// its overlay, so a record read here is one no pending batch changes, and the committed value
/// this connection sees is the current one.
private final class SnapshotReader: LedgerStateReader, @unchecked Sendable {
    let store: LedgerStore
    let connection: Connection

    init(store: LedgerStore) throws {
        self.store = store
        connection = try Connection(path: store.path, readOnly: true)
    }

    func member(_ id: MemberID) throws -> Member? { try store.cachedRecord(id, reading: connection) }
    func nonce(of id: MemberID) throws -> UInt64 { try store.nonce(of: id, reading: connection) }
    func root(_ id: ReceivableID) throws -> ReceivableRoot? { try store.cachedRecord(id, reading: connection) }
    func fragment(_ id: FragmentID) throws -> Fragment? { try store.cachedRecord(id, reading: connection) }
    func invoice(_ key: InvoiceKey) throws -> InvoiceRecord? { try store.cachedRecord(key, reading: connection) }
    func financingRequest(_ id: Hash) throws -> FinancingRequest? { try store.cachedRecord(id, reading: connection) }
}

/// A committed block as listed: its header, certificate and transaction ids (see `blockSummary(at:)`).
public struct BlockSummary: Hashable, Sendable {
    public var height: Height
    public var hash: Hash
    public var header: BlockHeader
    public var transactionIDs: [Hash]
    public var certificate: CommitCertificate
}
