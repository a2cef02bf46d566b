import LedgerCore

/// A bounded map that keeps recently used entries: two generations, the current one and the one
/// before. A hit in the old generation moves the entry to the current one; when the current one is
/// full it becomes the old one and the previous old one is dropped. Memory is at most twice
/// `limit` entries whatever the history, and a working set smaller than `limit` stays cached.
struct GenerationalCache<Key: Hashable, Value> {
    private var current: [Key: Value] = [:]
    private var previous: [Key: Value] = [:]
    let limit: Int

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    var count: Int { current.count + previous.count }

    mutating func value(for key: Key) -> Value? {
        if let value = current[key] { return value }
        guard let value = previous.removeValue(forKey: key) else { return nil }
        insert(value, for: key)
        return value
    }

    mutating func insert(_ value: Value, for key: Key) {
        if current.count >= limit, current[key] == nil {
            previous = current
            current = [:]
            current.reserveCapacity(limit)
        }
        current[key] = value
    }

    mutating func removeAll() {
        current = [:]
        previous = [:]
    }
}

/// Decoded state records the store read or wrote, so executing a block does not go back to SQLite
/// (and decode the record again) for the members, nonces, receivables and fragments it keeps
/// touching. Absent records are cached too (as nil): a new receivable's invoices are looked up
/// before they exist.
///
/// Correctness rests on the store being the only writer of its file (one process writes, see
/// `LedgerStore`): every write goes through `append` or `appendCertified`, which update the
/// cache after their database transaction commits, so the cache never holds a value the file
/// does not. It has a lock of its own (see `LedgerStore.cache`), taken after the connection's
/// lock whenever both are held. Bounded per kind (`GenerationalCache`), so it does not grow with
/// history.
struct StateCache {
    // Limits: a few seconds of blocks at thousands of transactions per second touch fewer records
    // than this. heaptrack on a bench node measured about 50 MB of decoded records at twice these
    // limits, a sixth of a node's memory budget; at these, about 25 MB (two generations of each).
    var members = GenerationalCache<MemberID, Member?>(limit: 4_096)
    var nonces = GenerationalCache<MemberID, UInt64>(limit: 4_096)
    var roots = GenerationalCache<ReceivableID, ReceivableRoot?>(limit: 4_096)
    var fragments = GenerationalCache<FragmentID, Fragment?>(limit: 8_192)
    var invoices = GenerationalCache<InvoiceKey, InvoiceRecord?>(limit: 4_096)
    var financingRequests = GenerationalCache<Hash, FinancingRequest?>(limit: 2_048)

    /// Records what a committed block wrote.
    mutating func apply(_ changes: StateChanges) {
        for (id, member) in changes.members { members.insert(member, for: id) }
        for (id, nonce) in changes.nonces { nonces.insert(nonce, for: id) }
        for (id, root) in changes.roots { roots.insert(root, for: id) }
        for (id, fragment) in changes.fragments { fragments.insert(fragment, for: id) }
        for (key, record) in changes.invoices { invoices.insert(record, for: key) }
        for (id, request) in changes.financingRequests { financingRequests.insert(request, for: id) }
    }

    mutating func removeAll() {
        members.removeAll(); nonces.removeAll(); roots.removeAll()
        fragments.removeAll(); invoices.removeAll(); financingRequests.removeAll()
    }
}

/// A record kind the store caches: its table, key column and slot in `StateCache`.
protocol CachedRecord: CanonicalDecodable, Sendable {
    associatedtype Key: Hashable & Sendable
    static var table: Schema.Table { get }
    static func sqlKey(_ key: Key) -> SQLValue
    static func cached(_ key: Key, in cache: inout StateCache) -> Self??
    static func cache(_ value: Self?, for key: Key, in cache: inout StateCache)
}

extension Member: CachedRecord {
    static var table: Schema.Table { Schema.member }
    static func sqlKey(_ key: MemberID) -> SQLValue { SQLValue(key) }
    static func cached(_ key: MemberID, in cache: inout StateCache) -> Member?? { cache.members.value(for: key) }
    static func cache(_ value: Member?, for key: MemberID, in cache: inout StateCache) { cache.members.insert(value, for: key) }
}

extension ReceivableRoot: CachedRecord {
    static var table: Schema.Table { Schema.root }
    static func sqlKey(_ key: ReceivableID) -> SQLValue { SQLValue(key.hash) }
    static func cached(_ key: ReceivableID, in cache: inout StateCache) -> ReceivableRoot?? { cache.roots.value(for: key) }
    static func cache(_ value: ReceivableRoot?, for key: ReceivableID, in cache: inout StateCache) { cache.roots.insert(value, for: key) }
}

extension Fragment: CachedRecord {
    static var table: Schema.Table { Schema.fragment }
    static func sqlKey(_ key: FragmentID) -> SQLValue { SQLValue(key.hash) }
    static func cached(_ key: FragmentID, in cache: inout StateCache) -> Fragment?? { cache.fragments.value(for: key) }
    static func cache(_ value: Fragment?, for key: FragmentID, in cache: inout StateCache) { cache.fragments.insert(value, for: key) }
}

extension InvoiceRecord: CachedRecord {
    static var table: Schema.Table { Schema.invoice }
    static func sqlKey(_ key: InvoiceKey) -> SQLValue { Rows.invoiceID(key) }
    static func cached(_ key: InvoiceKey, in cache: inout StateCache) -> InvoiceRecord?? { cache.invoices.value(for: key) }
    static func cache(_ value: InvoiceRecord?, for key: InvoiceKey, in cache: inout StateCache) { cache.invoices.insert(value, for: key) }
}

extension FinancingRequest: CachedRecord {
    static var table: Schema.Table { Schema.financingRequest }
    static func sqlKey(_ key: Hash) -> SQLValue { SQLValue(key) }
    static func cached(_ key: Hash, in cache: inout StateCache) -> FinancingRequest?? { cache.financingRequests.value(for: key) }
    static func cache(_ value: FinancingRequest?, for key: Hash, in cache: inout StateCache) { cache.financingRequests.insert(value, for: key) }
}
