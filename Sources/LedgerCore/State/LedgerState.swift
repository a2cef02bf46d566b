/// Read access to ledger state as of some point. Implemented in memory (`MemoryLedgerState`), over
/// SQLite (`LedgerStore`), and as an overlay of uncommitted changes (`OverlayState`), so the state
/// transition runs unchanged on all of them.
public protocol LedgerStateReader {
    func member(_ id: MemberID) throws -> Member?
    /// The last nonce the member used (0 before its first transaction).
    func nonce(of id: MemberID) throws -> UInt64
    func root(_ id: ReceivableID) throws -> ReceivableRoot?
    func fragment(_ id: FragmentID) throws -> Fragment?
    func invoice(_ key: InvoiceKey) throws -> InvoiceRecord?
    func financingRequest(_ id: Hash) throws -> FinancingRequest?
}

/// The records a block (or one transaction) wrote, keyed for lookup. Iteration for hashing and
/// persistence always goes through `sorted…` accessors, never dictionary order.
public struct StateChanges: Sendable, Equatable {
    public var members: [MemberID: Member] = [:]
    public var nonces: [MemberID: UInt64] = [:]
    public var roots: [ReceivableID: ReceivableRoot] = [:]
    public var fragments: [FragmentID: Fragment] = [:]
    public var invoices: [InvoiceKey: InvoiceRecord] = [:]
    public var financingRequests: [Hash: FinancingRequest] = [:]

    public init() {}

    public var isEmpty: Bool {
        members.isEmpty && nonces.isEmpty && roots.isEmpty && fragments.isEmpty && invoices.isEmpty && financingRequests.isEmpty
    }

    /// Later writes win.
    public mutating func merge(_ other: StateChanges) {
        Self.laterWins(&members, other.members)
        Self.laterWins(&nonces, other.nonces)
        Self.laterWins(&roots, other.roots)
        Self.laterWins(&fragments, other.fragments)
        Self.laterWins(&invoices, other.invoices)
        Self.laterWins(&financingRequests, other.financingRequests)
    }

    /// `mine.merge(theirs) { $1 }`, without the work when either side is empty: an empty side
    /// with no room reserved takes the other's storage as it is (a block on the committed head)
    /// instead of inserting its entries one by one, growing and rehashing as it goes.
    static func laterWins<Key, Value>(_ mine: inout [Key: Value], _ theirs: [Key: Value]) {
        if theirs.isEmpty { return }
        if mine.isEmpty, mine.capacity < theirs.count {
            mine = theirs
            return
        }
        mine.merge(theirs) { $1 }
    }

    /// Room for the writes of a block of `transactions` without growing on the way (what a
    /// transaction writes on average, rounded up: a fragment or two, a receivable, an invoice).
    public mutating func reserveCapacity(forTransactions transactions: Int) {
        guard transactions > 1 else { return }
        roots.reserveCapacity(transactions)
        fragments.reserveCapacity(transactions + transactions / 2)
        invoices.reserveCapacity(transactions)
    }

    public var sortedMembers: [Member] { members.keys.sorted().map { members[$0]! } }
    public var sortedNonces: [(MemberID, UInt64)] { nonces.keys.sorted().map { ($0, nonces[$0]!) } }
    public var sortedRoots: [ReceivableRoot] { roots.keys.sorted().map { roots[$0]! } }
    public var sortedFragments: [Fragment] { fragments.keys.sorted().map { fragments[$0]! } }
    public var sortedInvoices: [InvoiceRecord] { invoices.keys.sorted().map { invoices[$0]! } }
    public var sortedFinancingRequests: [FinancingRequest] { financingRequests.keys.sorted().map { financingRequests[$0]! } }

    /// Writes the canonical bytes of every write, sorted by kind then key (what the state digest
    /// commits to), and returns the writes in that order with where each record's own canonical
    /// bytes lie in `writer.bytes` (see `EncodedStateChanges`).
    public func encodeRecords(to writer: inout CanonicalWriter) -> EncodedStateChanges.Layout {
        func records<T: CanonicalEncodable & Sendable>(_ sorted: [T]) -> EncodedStateChanges.Records<T> {
            writer.write(UInt32(sorted.count))
            var ranges: [Range<Int>] = []
            ranges.reserveCapacity(sorted.count)
            for record in sorted {
                let start = writer.bytes.count
                record.encode(to: &writer)
                ranges.append(start..<writer.bytes.count)
            }
            return EncodedStateChanges.Records(sorted: sorted, ranges: ranges)
        }
        let members = records(sortedMembers)
        let nonces = sortedNonces
        writer.write(UInt32(nonces.count))
        for (id, nonce) in nonces { writer.write(id); writer.write(nonce) }
        return EncodedStateChanges.Layout(members: members, nonces: nonces, roots: records(sortedRoots), fragments: records(sortedFragments),
                                          invoices: records(sortedInvoices), financingRequests: records(sortedFinancingRequests))
    }
}

/// A block's state writes in the order the state digest hashed them, with the bytes it hashed.
///
/// Each record's canonical bytes are a slice of `bytes` (the digest's whole input), so the store
/// writes that slice as the record's row instead of sorting the writes and encoding every record a
/// second time (about 1.5% of a saturated cluster's CPU, DECISIONS 58). Built only by
/// `BlockExecutor.execute`, from the `StateChanges` it returns beside it.
public struct EncodedStateChanges: Sendable {
    /// One kind of record in key order, and where each one's canonical bytes lie in `bytes`
    /// (the sorted array is the one the encoding walked, not a copy).
    public struct Records<Record: Sendable>: Sendable {
        public let sorted: [Record]
        public let ranges: [Range<Int>]
    }

    public struct Layout: Sendable {
        public var members: Records<Member>
        public var nonces: [(MemberID, UInt64)]
        public var roots: Records<ReceivableRoot>
        public var fragments: Records<Fragment>
        public var invoices: Records<InvoiceRecord>
        public var financingRequests: Records<FinancingRequest>
    }

    /// The digest's input: a prefix, then every write.
    public let bytes: [UInt8]
    public let layout: Layout

    public init(bytes: [UInt8], layout: Layout) {
        self.bytes = bytes
        self.layout = layout
    }

    /// Each record of `records` with its own canonical bytes (what `canonicalBytes` would return for it).
    public func withBytes<Record, Row>(_ records: Records<Record>, _ row: (Record, [UInt8]) -> Row) -> [Row] {
        zip(records.sorted, records.ranges).map { row($0, Array(bytes[$1])) }
    }
}

/// Reads through uncommitted changes to a base state.
public struct OverlayState<Base: LedgerStateReader>: LedgerStateReader {
    public var base: Base
    public var changes: StateChanges

    public init(base: Base, changes: StateChanges = StateChanges()) {
        self.base = base
        self.changes = changes
    }

    public func member(_ id: MemberID) throws -> Member? { try changes.members[id] ?? base.member(id) }
    public func nonce(of id: MemberID) throws -> UInt64 { try changes.nonces[id] ?? base.nonce(of: id) }
    public func root(_ id: ReceivableID) throws -> ReceivableRoot? { try changes.roots[id] ?? base.root(id) }
    public func fragment(_ id: FragmentID) throws -> Fragment? { try changes.fragments[id] ?? base.fragment(id) }
    public func invoice(_ key: InvoiceKey) throws -> InvoiceRecord? { try changes.invoices[key] ?? base.invoice(key) }
    public func financingRequest(_ id: Hash) throws -> FinancingRequest? {
        try changes.financingRequests[id] ?? base.financingRequest(id)
    }
}

/// The whole ledger state in memory: for tests, the simulator and small chains.
public struct MemoryLedgerState: LedgerStateReader, Sendable, Equatable {
    public var members: [MemberID: Member] = [:]
    public var nonces: [MemberID: UInt64] = [:]
    public var roots: [ReceivableID: ReceivableRoot] = [:]
    public var fragments: [FragmentID: Fragment] = [:]
    public var invoices: [InvoiceKey: InvoiceRecord] = [:]
    public var financingRequests: [Hash: FinancingRequest] = [:]

    public init() {}

    public init(genesis: Genesis) {
        for member in genesis.members { members[member.id] = member }
    }

    public func member(_ id: MemberID) -> Member? { members[id] }
    public func nonce(of id: MemberID) -> UInt64 { nonces[id] ?? 0 }
    public func root(_ id: ReceivableID) -> ReceivableRoot? { roots[id] }
    public func fragment(_ id: FragmentID) -> Fragment? { fragments[id] }
    public func invoice(_ key: InvoiceKey) -> InvoiceRecord? { invoices[key] }
    public func financingRequest(_ id: Hash) -> FinancingRequest? { financingRequests[id] }

    public mutating func apply(_ changes: StateChanges) {
        members.merge(changes.members) { $1 }
        nonces.merge(changes.nonces) { $1 }
        roots.merge(changes.roots) { $1 }
        fragments.merge(changes.fragments) { $1 }
        invoices.merge(changes.invoices) { $1 }
        financingRequests.merge(changes.financingRequests) { $1 }
    }
}
