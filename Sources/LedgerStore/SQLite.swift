import CSQLite
import CSQLiteVFS

/// `SQLITE_TRANSIENT` is a macro Swift cannot import: it tells SQLite to copy bound bytes.
let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite value, as bound to a statement or read from a row. Rows are compared as arrays of
/// these (the verifier recomputes every row it expects and compares it with what is stored).
enum SQLValue: Hashable, Sendable, CustomStringConvertible {
    case null
    case integer(Int64)
    case text(String)
    case blob([UInt8])

    var description: String {
        switch self {
        case .null: "NULL"
        case .integer(let value): String(value)
        case .text(let value): "'\(value)'"
        case .blob(let value): value.count <= 40 ? "x'\(value.hexString)'" : "x'\(value.prefix(16).hexString)…' (\(value.count) bytes)"
        }
    }
}

/// One SQLite connection with a cache of prepared statements, reused across blocks.
///
/// Not thread-safe: a `Connection` is always owned by exactly one `Mutex` (the store's) or one
/// caller (the verifier).
final class Connection {
    let handle: OpaquePointer
    let path: String
    private var statements: [String: Statement] = [:]

    init(path: String, readOnly: Bool) throws(StoreError) {
        var db: OpaquePointer?
        scf_sqlite_configure()
        let flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        // A writing connection's WAL writes are gathered into few calls (`scf_sqlite_coalescing_vfs`:
        // SQLite writes every frame with two); nil (the default VFS) if it could not be registered.
        let vfs = readOnly ? nil : scf_sqlite_coalescing_vfs()
        let code = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, vfs)
        guard code == SQLITE_OK, let db else {
            let reason = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(code))
            if let db { sqlite3_close_v2(db) }
            throw StoreError(.cannotOpen, "cannot open the ledger data file \(path) (\(reason)); check that the path exists and is writable")
        }
        handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 5_000)
    }

    deinit {
        for statement in statements.values { sqlite3_finalize(statement.handle) }
        sqlite3_close_v2(handle)
    }

    /// The bytes SQLite counts as allocated in this process: 0 when its memory statistics are off
    /// (`scf_sqlite_configure`).
    static var sqliteMemoryCounted: Int64 {
        var current: Int64 = 0, highest: Int64 = 0
        sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &current, &highest, 0)
        return current
    }

    var lastMessage: String { String(cString: sqlite3_errmsg(handle)) }

    /// Rows the last completed INSERT, UPDATE or DELETE changed.
    var changes: Int { Int(sqlite3_changes(handle)) }

    /// Write calls this process's writing connections made to their WAL files, and the calls SQLite
    /// asked for (two per frame); the difference is what `scf_sqlite_coalescing_vfs` gathered.
    static var walWriteCalls: (file: Int, sqlite: Int) {
        var file: Int64 = 0, sqlite: Int64 = 0
        scf_sqlite_coalescing_counts(&file, &sqlite)
        return (Int(file), Int(sqlite))
    }

    /// Pages written to the WAL (or the rollback journal's file) by this connection so far: the
    /// WAL cost of what it committed (tests and measurements).
    var pagesWritten: Int {
        var current: Int32 = 0, highest: Int32 = 0
        sqlite3_db_status(handle, SQLITE_DBSTATUS_CACHE_WRITE, &current, &highest, 0)
        return Int(current)
    }

    func error(_ code: Int32, _ doing: String) -> StoreError {
        let kind: StoreError.Code
        switch code & 0xff {
        case SQLITE_CORRUPT, SQLITE_NOTADB: kind = .corrupt
        case SQLITE_BUSY, SQLITE_LOCKED: kind = .busy
        case SQLITE_FULL, SQLITE_IOERR: kind = .io
        case SQLITE_READONLY: kind = .readOnly
        default: kind = .sqlite
        }
        let hint: String
        switch kind {
        case .corrupt: hint = "the file is damaged or not a ledger; restore it from a backup or re-sync from peers"
        case .busy: hint = "another process holds the ledger open for writing; stop it and retry"
        case .io: hint = "check free disk space and the disk's health"
        case .readOnly: hint = "the file or its folder is read-only; fix its permissions"
        default: hint = "this is a bug or a damaged file; keep the file and report it"
        }
        return StoreError(kind, "SQLite error \(code) while \(doing) in \(path): \(lastMessage); \(hint)")
    }

    /// Runs one or more statements that return no rows (schema, pragmas); BEGIN and COMMIT go
    /// through `control`, which keeps them prepared.
    func execute(_ sql: String) throws(StoreError) {
        let code = sqlite3_exec(handle, sql, nil, nil, nil)
        guard code == SQLITE_OK else { throw error(code, "running \(sql.prefix(60))") }
    }

    /// Runs BEGIN, COMMIT or another single statement without rows from the statement cache: a
    /// node runs four of them per block and per group of reads, and `sqlite3_exec` parses and
    /// compiles its text every time (about 1% of a node's samples at half load).
    func control(_ sql: String) throws(StoreError) {
        try statement(sql).run()
    }

    /// A cached prepared statement, reset and ready to bind.
    func statement(_ sql: String) throws(StoreError) -> Statement {
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        var raw: OpaquePointer?
        let code = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &raw, nil)
        guard code == SQLITE_OK, let raw else { throw error(code, "preparing \(sql.prefix(80))") }
        let statement = Statement(handle: raw, connection: self, sql: sql)
        statements[sql] = statement
        return statement
    }

    /// Whether a read transaction opened by `joinReadGroup` is open, for the group's next reads.
    private(set) var inReadGroup = false

    /// A read of a group (`LedgerStore.readTogether`): the first one opens a read transaction that
    /// the next ones share, until the group ends or a write needs the connection. A statement run
    /// on its own is a read transaction of its own, and each one takes and releases the WAL's read
    /// lock with two `fcntl` calls: a backup at saturation made about 600 of them per block.
    func joinReadGroup() throws {
        guard !inReadGroup, isAutocommit else { return }
        try control("BEGIN DEFERRED")
        inReadGroup = true
    }

    /// Ends the group's read transaction, if one is open.
    func endReadGroup() throws {
        guard inReadGroup else { return }
        inReadGroup = false
        if !isAutocommit { try control("COMMIT") }
    }

    /// Runs `body` in one write transaction (BEGIN IMMEDIATE … COMMIT), rolling back on any error.
    /// A group's read transaction ends first (its later reads open another, seeing this write).
    func writeTransaction<T>(_ body: () throws -> T) throws -> T {
        try endReadGroup()
        try control("BEGIN IMMEDIATE")
        do {
            let value = try body()
            try control("COMMIT")
            return value
        } catch {
            if sqlite3_get_autocommit(handle) == 0 { sqlite3_exec(handle, "ROLLBACK", nil, nil, nil) }
            throw error
        }
    }

    /// Whether no transaction is open on this connection (each statement is then its own).
    var isAutocommit: Bool { sqlite3_get_autocommit(handle) != 0 }

    /// Runs `body` in one read transaction so every query sees the same snapshot.
    func readTransaction<T>(_ body: () throws -> T) throws -> T {
        try control("BEGIN DEFERRED")
        defer { if sqlite3_get_autocommit(handle) == 0 { try? control("COMMIT") } }
        return try body()
    }

    func pragma(_ name: String) throws(StoreError) -> SQLValue {
        let statement = try self.statement("PRAGMA \(name)")
        guard let row = try statement.next() else { return .null }
        defer { statement.reset() }
        return row.value(0)
    }
}

/// A prepared statement. Bind with `bind(_:)`, then `run()` or iterate rows with `next()`.
final class Statement {
    let handle: OpaquePointer
    unowned let connection: Connection
    let sql: String

    init(handle: OpaquePointer, connection: Connection, sql: String) {
        self.handle = handle
        self.connection = connection
        self.sql = sql
    }

    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    @discardableResult
    func bind(_ values: [SQLValue]) throws(StoreError) -> Statement {
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch value {
            case .null: code = sqlite3_bind_null(handle, index)
            case .integer(let number): code = sqlite3_bind_int64(handle, index, number)
            case .text(let text): code = sqlite3_bind_text(handle, index, text, -1, sqliteTransient)
            case .blob(let bytes):
                code = bytes.withUnsafeBytes { buffer in
                    // A zero-length blob must still be a blob, not NULL: bind a non-nil pointer.
                    sqlite3_bind_blob(handle, index, buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(buffer.count), sqliteTransient)
                }
            }
            guard code == SQLITE_OK else { throw connection.error(code, "binding parameter \(index) of \(sql.prefix(60))") }
        }
        return self
    }

    @discardableResult
    func bind(_ values: SQLValue...) throws(StoreError) -> Statement { try bind(values) }

    /// Runs a statement that returns no rows.
    func run() throws(StoreError) {
        let code = sqlite3_step(handle)
        defer { sqlite3_reset(handle) }
        guard code == SQLITE_DONE || code == SQLITE_ROW else { throw connection.error(code, "running \(sql.prefix(80))") }
    }

    /// The next row, or nil when done (the statement is then reset).
    func next() throws(StoreError) -> Row? {
        let code = sqlite3_step(handle)
        if code == SQLITE_ROW { return Row(handle: handle) }
        sqlite3_reset(handle)
        guard code == SQLITE_DONE else { throw connection.error(code, "reading \(sql.prefix(80))") }
        return nil
    }

    /// Every row, mapped.
    func map<T>(_ transform: (Row) throws -> T) throws -> [T] {
        var out: [T] = []
        while let row = try next() { out.append(try transform(row)) }
        return out
    }
}

/// The current row of a statement; valid until the statement steps again.
struct Row {
    let handle: OpaquePointer

    var count: Int32 { sqlite3_column_count(handle) }
    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    func text(_ column: Int32) -> String {
        guard let pointer = sqlite3_column_text(handle, column) else { return "" }
        let length = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
    }
    func blob(_ column: Int32) -> [UInt8] {
        let length = Int(sqlite3_column_bytes(handle, column))
        guard length > 0, let pointer = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }
    func value(_ column: Int32) -> SQLValue {
        switch sqlite3_column_type(handle, column) {
        case SQLITE_NULL: .null
        case SQLITE_INTEGER: .integer(int64(column))
        case SQLITE_BLOB: .blob(blob(column))
        case SQLITE_FLOAT: .text(String(sqlite3_column_double(handle, column)))
        default: .text(text(column))
        }
    }
    var values: [SQLValue] { (0..<count).map { value($0) } }
}
