import LedgerCore
import Synchronization

// Eligibility over the SQLite ledger: the store answers the engine's state reads (it is a
// `LedgerStateReader`), its chain-history questions (transactions, blocks, receipts) through its
// public API, and the aggregate questions (exposure per debtor and supplier, overdue share) with
// grouped SQL on a second, read-only connection, cached per tip height.

extension LedgerStore: ChainHistory {
    public func locate(_ id: Hash) throws -> LocatedTransaction? {
        try transaction(id: id).map {
            LocatedTransaction(transaction: $0.transaction, receipt: $0.receipt, height: $0.height, position: $0.position)
        }
    }

    public func committedBlock(at height: Height) throws -> CommittedBlock? { try block(at: height) }

    public func receipts(at height: Height) throws -> [Receipt] { try transactions(inBlock: height).map(\.receipt) }

    /// Looks through the `registerMember` transactions of every member with the operator role.
    public func registration(of member: MemberID) throws -> Hash? {
        for candidate in try members() where candidate.roles.contains(.operator_) {
            for stored in try transactions(signedBy: candidate.id) where stored.receipt.isCommitted {
                if case .registerMember(let registered) = stored.transaction.body.operation, registered.id == member {
                    return stored.transaction.id
                }
            }
        }
        return nil
    }

    /// The genesis a ledger file was created from (read from the file itself, so a query needs no
    /// genesis file; check it against the consortium's published genesis with `scf ledger verify --genesis`).
    public static func genesis(inFile path: String) throws -> Genesis {
        let connection = try Connection(path: path, readOnly: true)
        guard let meta = try readMeta(connection) else {
            throw StoreError(.corrupt, "\(path) holds no chain (no meta row); is it a ledger file?")
        }
        do {
            return try Genesis(canonicalBytes: meta.genesisBytes)
        } catch {
            throw StoreError(.corrupt, "the genesis stored in \(path) does not decode (\(error)); run `scf ledger verify` on it")
        }
    }
}

/// Eligibility answers from a ledger file, at its tip.
///
/// Aggregates are computed with one grouped SQL query per bank (its approved, still-financed
/// requests joined to their fragments and roots) and one per debtor and currency (its active
/// receivables), then kept in memory until the tip moves. A node answering many questions pays
/// each query once per block; a batch pays it once for all its questions.
public final class StoreEligibility: EligibilityAggregates, Sendable {
    public let store: LedgerStore
    public let engine: EligibilityEngine
    private let aggregates: Mutex<Cache>

    private struct Exposure {
        var byDebtor: [MemberID: [CurrencyCode: Int64]] = [:]
        var bySupplier: [MemberID: [CurrencyCode: Int64]] = [:]
    }

    /// Active receivables of one debtor in one currency, by maturity, with running totals.
    private struct DebtorBook {
        var maturities: [Int32] = []
        /// prefix[i] = owed on the first i receivables (by maturity).
        var prefix: [Int64] = [0]
        var total: Int64 { prefix.last ?? 0 }
    }

    /// Only touched under the mutex.
    private final class Cache: @unchecked Sendable {
        var height: Height?
        var connection: Connection?
        var exposures: [MemberID: Exposure] = [:]
        var books: [String: DebtorBook] = [:]
    }

    public init(store: LedgerStore) throws {
        self.store = store
        self.engine = EligibilityEngine(genesis: store.genesis, suite: store.suite)
        let cache = Cache()
        cache.connection = try Connection(path: store.path, readOnly: true)
        self.aggregates = Mutex(cache)
    }

    /// The block answers are computed at: the store's tip.
    public var asOf: AsOf { AsOf(tip: store.tip, utcOffsetMinutes: store.genesis.utcOffsetMinutes) }

    public func answer(_ question: EligibilityEngine.Question, policy: EligibilityPolicy) throws -> EligibilityAnswer {
        try consistent { asOf in
            try engine.evaluate(question, asOf: asOf, policy: policy, state: store, aggregates: self, history: store)
        }
    }

    public func answers(_ questions: [EligibilityEngine.Question], policy: EligibilityPolicy) throws -> [EligibilityAnswer] {
        try consistent { asOf in
            try engine.evaluate(batch: questions, asOf: asOf, policy: policy, state: store, aggregates: self, history: store)
        }
    }

    public func evidence(for fragment: FragmentID) throws -> EligibilityEvidence {
        try consistent { asOf in
            try EvidenceBuilder.build(fragment: fragment, asOf: asOf.height, genesis: store.genesis, suite: store.suite,
                                      state: store, history: store)
        }
    }

    /// Runs `body` at the tip and runs it again if a block was appended meanwhile, so an answer
    /// never mixes two heights.
    private func consistent<T>(_ body: (AsOf) throws -> T) throws -> T {
        for _ in 0..<10 {
            let before = asOf
            let value = try body(before)
            if store.tip.height == before.height { return value }
        }
        throw StoreError(.busy, "blocks kept arriving while the answer was computed (10 tries); ask again, or ask --as-of a fixed height")
    }

    private func withCache<T: Sendable>(_ body: (Cache, Connection) throws -> T) throws -> T {
        let height = store.tip.height
        return try aggregates.withLock { cache in
            if cache.height != height {
                cache.height = height
                cache.exposures = [:]
                cache.books = [:]
            }
            guard let connection = cache.connection else {
                throw StoreError(.closed, "the eligibility reader of \(store.path) was closed")
            }
            return try body(cache, connection)
        }
    }

    private func exposure(bank: MemberID, _ cache: Cache, _ connection: Connection) throws -> Exposure {
        if let known = cache.exposures[bank] { return known }
        var exposure = Exposure()
        let statement = try connection.statement("""
            SELECT r.debtor, fr.applicant, fr.currency, MIN(COALESCE(fr.advance, 0), f.outstanding)
            FROM financingRequest fr
            JOIN fragment f ON f.id = fr.fragment
            JOIN receivableRoot r ON r.id = fr.root
            WHERE fr.bank = ? AND fr.status = 'approved' AND f.state = 'financed' AND f.holder = fr.bank AND f.financingRequest = fr.id
            """).bind(.text(bank.rawValue))
        while let row = try statement.next() {
            guard let debtor = MemberID(row.text(0)), let supplier = MemberID(row.text(1)), let currency = CurrencyCode(row.text(2)) else {
                throw StoreError(.corrupt, "a financing request row of \(bank) names an invalid member or currency; run `scf ledger verify` on \(store.path)")
            }
            let amount = row.int64(3)
            exposure.byDebtor[debtor, default: [:]][currency, default: 0] &+= amount
            exposure.bySupplier[supplier, default: [:]][currency, default: 0] &+= amount
        }
        cache.exposures[bank] = exposure
        return exposure
    }

    public func financedExposure(bank: MemberID, debtor: MemberID, currency: CurrencyCode) throws -> MinorUnits {
        try withCache { cache, connection in
            MinorUnits(try exposure(bank: bank, cache, connection).byDebtor[debtor]?[currency] ?? 0)
        }
    }

    public func financedExposure(bank: MemberID, supplier: MemberID, currency: CurrencyCode) throws -> MinorUnits {
        try withCache { cache, connection in
            MinorUnits(try exposure(bank: bank, cache, connection).bySupplier[supplier]?[currency] ?? 0)
        }
    }

    public func overdueBalance(debtor: MemberID, currency: CurrencyCode, maturedBefore: BusinessDate) throws -> OverdueBalance {
        try withCache { cache, connection in
            let key = debtor.rawValue + "/" + currency.code
            var book: DebtorBook
            if let known = cache.books[key] {
                book = known
            } else {
                book = DebtorBook()
                let statement = try connection.statement("""
                    SELECT maturity, face - settled - writtenOff FROM receivableRoot
                    WHERE debtor = ? AND status = 'active' AND currency = ? ORDER BY maturity
                    """).bind(.text(debtor.rawValue), .text(currency.code))
                while let row = try statement.next() {
                    guard let maturity = BusinessDate(row.text(0)) else {
                        throw StoreError(.corrupt, "a receivable of \(debtor) has an invalid maturity; run `scf ledger verify` on \(store.path)")
                    }
                    book.maturities.append(maturity.daysSinceEpoch)
                    book.prefix.append(book.prefix.last! &+ row.int64(1))
                }
                cache.books[key] = book
            }
            // Receivables maturing strictly before the cutoff: those before the first at or after it.
            let low = book.maturities.sortedInsertionIndex(of: maturedBefore.daysSinceEpoch)
            return OverdueBalance(overdue: MinorUnits(book.prefix[low]), outstanding: MinorUnits(book.total))
        }
    }

    /// How many fragments (live and closed) the ledger holds: for benchmarks and reports.
    public func fragmentCount() throws -> Int {
        try withCache { _, connection in
            let statement = try connection.statement("SELECT COUNT(*) FROM fragment")
            defer { statement.reset() }
            return Int(try statement.next()?.int64(0) ?? 0)
        }
    }

    /// Closes the aggregate connection (the store stays open).
    public func close() {
        aggregates.withLock { $0.connection = nil }
    }
}

/// Answers as of a height below the tip: replays the stored certified blocks 1…height into memory
/// (each block re-executed; signatures were checked when the blocks were committed) and evaluates
/// there. Linear in the chain's length: for audits and for checking an old answer, not for hot paths.
public struct ReplayedLedger: Sendable {
    public var state: MemoryLedgerState
    public var history: MemoryChainHistory
    public var asOf: AsOf

    public init(store: LedgerStore, through height: Height) throws {
        guard height <= store.tip.height else {
            throw StoreError(.wrongHeight, "the ledger's tip is block \(store.tip.height); it has no block \(height) yet")
        }
        let genesis = store.genesis, suite = store.suite
        let executor = BlockExecutor(genesis: genesis, suite: suite)
        var state = MemoryLedgerState(genesis: genesis)
        var history = MemoryChainHistory()
        var tip = BlockExecutor.genesisTip(genesis: genesis, suite: suite)
        if height > .genesis {
            try store.forEachBlock(through: height) { committed in
                let result = try executor.validate(committed.block, on: tip, state: state, signatures: .trusted)
                state.apply(result.changes)
                history.append(committed, receipts: result.receipts)
                tip = ChainTip(header: committed.block.header, suite: suite)
                return true
            }
        }
        self.state = state
        self.history = history
        self.asOf = AsOf(tip: tip, utcOffsetMinutes: genesis.utcOffsetMinutes)
    }
}
