import CSQLite
import Foundation
import LedgerCore
import Synchronization

/// The large part of the state a verification recomputes, kept in a scratch SQLite file instead of
/// memory: receivables, fragments, invoices and financing requests (members and nonces, one per
/// member, stay in memory). A ledger's state grows with its history, and holding all of it in
/// memory made a node restarted on a million-transaction ledger peak at 1 GB during its start-up
/// check; with the scratch file the check's memory no longer grows with the ledger (DECISIONS 48).
///
/// Writes collect in memory (the latest value of each record) and go to the file in one
/// transaction once `flushLimit` records are waiting; reads look at those first, then at a
/// bounded cache of records read from the file, then at the file. The file is only a working copy:
/// no journal, no flush to disk, and it is deleted when the state is released. Only the thread
/// that executes blocks uses this object; a comparison opens read-only connections of its own
/// (`reader()`) once `finish()` has written everything.
final class ScratchState: @unchecked Sendable {
    /// The state tables kept in the file, each as (id, record): the id as the ledger's own table
    /// holds it, the record's canonical bytes.
    static let tables = [Schema.root, Schema.fragment, Schema.invoice, Schema.financingRequest]

    let path: String
    private var connection: Connection?
    private var pending = StateChanges()
    private var pendingCount = 0
    let flushLimit: Int
    // Records read from the file, as the node's store caches them (`StateCache`): up to two
    // generations of each, some 20 MB in all.
    private var roots = GenerationalCache<ReceivableID, ReceivableRoot?>(limit: 8_192)
    private var fragments = GenerationalCache<FragmentID, Fragment?>(limit: 8_192)
    private var invoices = GenerationalCache<InvoiceKey, InvoiceRecord?>(limit: 4_096)
    private var financingRequests = GenerationalCache<Hash, FinancingRequest?>(limit: 2_048)
    /// Rows per table once `finish()` ran, by table name.
    private(set) var counts: [String: Int] = [:]

    /// The private directory the file is in, removed with it (nil: the caller chose the path).
    private let directory: String?

    /// Creates an empty scratch file at `path`, replacing any file a run that did not finish left there.
    init(path: String, flushLimit: Int = 20_000, directory: String? = nil) throws {
        self.path = path
        self.flushLimit = max(1, flushLimit)
        self.directory = directory
        Self.remove(path)
        let connection = try Connection(path: path, readOnly: false)
        // Exclusive: the lock is taken once, not (with a look for a hot journal) around every
        // lookup, which took 13% of a full verify in system calls. `finish()` closes the
        // connection, which releases it for the readers.
        try connection.execute("""
            PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -\(Self.cacheKiB)
            """)
        for table in Self.tables {
            // No declared type: the id keeps the ledger table's type (text or blob), so lookups by
            // the ledger's own key values find it.
            try connection.execute("CREATE TABLE \(table.quotedName) (id PRIMARY KEY NOT NULL, record BLOB NOT NULL)")
        }
        self.connection = connection
    }

    /// A scratch file in a new private directory (`.scf-verify-XXXXXX`, mode 0700, made by
    /// `mkdtemp`, so no other user can place or link a file where it goes) in `parent` (nil: the
    /// system's temporary directory); both are removed when the state is released.
    static func make(in parent: String?, flushLimit: Int = 20_000) throws -> ScratchState {
        let parent = parent ?? FileManager.default.temporaryDirectory.path
        var template = Array((parent as NSString).appendingPathComponent(namePrefix + "XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw StoreError(.scratchFile, """
                cannot make the verifier's scratch directory in \(parent) (\(String(cString: strerror(errno)))); \
                free disk space there or name a writable one (scf ledger verify --scratch-directory)
                """)
        }
        let directory = String(cString: made)
        let path = (directory as NSString).appendingPathComponent("state.sqlite")
        do {
            return try guarded(path, "created") { try ScratchState(path: path, flushLimit: flushLimit, directory: directory) }
        } catch {
            rmdir(directory)
            throw error
        }
    }

    /// Runs `body`, reporting any failure as the scratch file's (`StoreError.Code.scratchFile`).
    static func guarded<T>(_ path: String, _ doing: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as StoreError where error.code == .scratchFile {
            throw error
        } catch {
            throw StoreError(.scratchFile, """
                the verifier's scratch file \(path) could not be \(doing) (\(error)); free disk space there, or name \
                another directory (scf ledger verify --scratch-directory) or hold more in memory (--records-in-memory)
                """)
        }
    }

    deinit {
        connection = nil
        Self.remove(path)
        if let directory { rmdir(directory) }
    }

    /// SQLite's page cache for the file (a miss reads the kernel's page cache: 64 MB instead
    /// took 50 MB more memory and saved no time).
    static let cacheKiB = 16_000

    /// How the scratch directories' names begin.
    static let namePrefix = ".scf-verify-"

    static func remove(_ path: String) {
        for suffix in ["", "-journal", "-wal", "-shm"] { unlink(path + suffix) }
    }

    // MARK: Reads (the executing thread)

    func root(_ id: ReceivableID) throws -> ReceivableRoot? {
        try lookup(id, pending.roots, &roots, Schema.root, SQLValue(id.hash))
    }

    func fragment(_ id: FragmentID) throws -> Fragment? {
        try lookup(id, pending.fragments, &fragments, Schema.fragment, SQLValue(id.hash))
    }

    func invoice(_ key: InvoiceKey) throws -> InvoiceRecord? {
        try lookup(key, pending.invoices, &invoices, Schema.invoice, Rows.invoiceID(key))
    }

    func financingRequest(_ id: Hash) throws -> FinancingRequest? {
        try lookup(id, pending.financingRequests, &financingRequests, Schema.financingRequest, SQLValue(id))
    }

    /// A waiting write, else a cached read, else the file (then cached, absence included).
    private func lookup<Key: Hashable, Record: CanonicalDecodable>(_ key: Key, _ waiting: [Key: Record],
                                                                   _ cache: inout GenerationalCache<Key, Record?>,
                                                                   _ table: Schema.Table, _ sqlKey: @autoclosure () -> SQLValue) throws -> Record? {
        if let record = waiting[key] { return record }
        if let cached = cache.value(for: key) { return cached }
        let record: Record? = try read(table, sqlKey())
        cache.insert(record, for: key)
        return record
    }

    private func read<Record: CanonicalDecodable>(_ table: Schema.Table, _ key: SQLValue) throws -> Record? {
        guard let connection else { throw StoreError(.closed, "the verifier's scratch file \(path) was closed") }
        return try Self.record(table, key, connection: connection)
    }

    static func record<Record: CanonicalDecodable>(_ table: Schema.Table, _ key: SQLValue, connection: Connection) throws -> Record? {
        try guarded(connection.path, "read") { try unguardedRecord(table, key, connection: connection) }
    }

    private static func unguardedRecord<Record: CanonicalDecodable>(_ table: Schema.Table, _ key: SQLValue,
                                                                    connection: Connection) throws -> Record? {
        // The ledger table's own lookup (its key column is `id` too), a string built once.
        let statement = try connection.statement(table.selectRecordSQL).bind(key)
        defer { statement.reset() }
        guard let row = try statement.next() else { return nil }
        do {
            return try Record(canonicalBytes: row.blob(0))
        } catch {
            throw StoreError(.scratchFile, "the verifier's scratch file \(connection.path) holds a \(table.name) record \(key) that does not decode (\(error)); is the disk failing?")
        }
    }

    // MARK: Writes

    /// Takes a block's writes (the record tables among them); writes the waiting ones to the file
    /// once there are `flushLimit` of them.
    func apply(_ changes: StateChanges) throws {
        pendingCount += changes.roots.count + changes.fragments.count + changes.invoices.count + changes.financingRequests.count
        pending.roots.merge(changes.roots) { $1 }
        pending.fragments.merge(changes.fragments) { $1 }
        pending.invoices.merge(changes.invoices) { $1 }
        pending.financingRequests.merge(changes.financingRequests) { $1 }
        if pendingCount >= flushLimit { try flush() }
    }

    /// Writes every waiting record, in key order, in one transaction.
    func flush() throws {
        guard pendingCount > 0 else { return }
        try Self.guarded(path, "written") { try unguardedFlush() }
    }

    private func unguardedFlush() throws {
        guard let connection else { throw StoreError(.closed, "the verifier's scratch file \(path) was closed") }
        let written = pending
        try connection.writeTransaction {
            func write(_ table: Schema.Table, _ rows: [(SQLValue, [UInt8])]) throws {
                guard !rows.isEmpty else { return }
                let statement = try connection.statement("INSERT OR REPLACE INTO \(table.quotedName) (id, record) VALUES (?, ?)")
                for (key, record) in rows { try statement.bind(key, .blob(record)).run() }
            }
            try write(Schema.root, written.sortedRoots.map { (SQLValue($0.id.hash), $0.canonicalBytes) })
            try write(Schema.fragment, written.sortedFragments.map { (SQLValue($0.id.hash), $0.canonicalBytes) })
            try write(Schema.invoice, written.sortedInvoices.map { (Rows.invoiceID($0.invoice.key), $0.canonicalBytes) })
            try write(Schema.financingRequest, written.sortedFinancingRequests.map { (SQLValue($0.id), $0.canonicalBytes) })
        }
        // The cache holds records as the file had them: a record just written replaces its copy.
        for (id, record) in written.roots where roots.value(for: id) != nil { roots.insert(record, for: id) }
        for (id, record) in written.fragments where fragments.value(for: id) != nil { fragments.insert(record, for: id) }
        for (key, record) in written.invoices where invoices.value(for: key) != nil { invoices.insert(record, for: key) }
        for (id, record) in written.financingRequests where financingRequests.value(for: id) != nil {
            financingRequests.insert(record, for: id)
        }
        pending = StateChanges()
        pendingCount = 0
    }

    /// Writes what waits, counts each table's rows and closes the writing connection; after it,
    /// `reader()` sees the whole state (and the state is read only through readers).
    func finish() throws {
        try flush()
        try Self.guarded(path, "read") { try count() }
        connection = nil
    }

    private func count() throws {
        guard let connection else { throw StoreError(.closed, "the verifier's scratch file \(path) was closed") }
        for table in Self.tables {
            counts[table.name] = try connection.statement("SELECT count(*) FROM \(table.quotedName)").map { Int($0.int64(0)) }.first ?? 0
        }
    }

    /// A read-only connection to the file, for one thread, in one read transaction for its life
    /// (the file no longer changes): a lookup then takes no lock of its own.
    func reader() throws -> Connection {
        try Self.guarded(path, "opened") {
            let connection = try Connection(path: path, readOnly: true)
            try connection.control("BEGIN DEFERRED")
            return connection
        }
    }
}

/// The state a verification recomputes: all in memory, or with its record tables in a scratch
/// file (`ScratchState`) and only members and nonces in memory.
struct RecomputedState: LedgerStateReader, Sendable {
    var memory: MemoryLedgerState
    let scratch: ScratchState?

    init(genesis: Genesis, scratch: ScratchState? = nil) {
        memory = MemoryLedgerState(genesis: genesis)
        self.scratch = scratch
    }

    func member(_ id: MemberID) -> Member? { memory.members[id] }
    func nonce(of id: MemberID) -> UInt64 { memory.nonce(of: id) }
    func root(_ id: ReceivableID) throws -> ReceivableRoot? {
        if let scratch { return try scratch.root(id) }
        return memory.roots[id]
    }
    func fragment(_ id: FragmentID) throws -> Fragment? {
        if let scratch { return try scratch.fragment(id) }
        return memory.fragments[id]
    }
    func invoice(_ key: InvoiceKey) throws -> InvoiceRecord? {
        if let scratch { return try scratch.invoice(key) }
        return memory.invoices[key]
    }
    func financingRequest(_ id: Hash) throws -> FinancingRequest? {
        if let scratch { return try scratch.financingRequest(id) }
        return memory.financingRequests[id]
    }

    mutating func apply(_ changes: StateChanges) throws {
        guard let scratch else { return memory.apply(changes) }
        memory.members.merge(changes.members) { $1 }
        memory.nonces.merge(changes.nonces) { $1 }
        try scratch.apply(changes)
    }
}
