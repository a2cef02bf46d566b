#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import LedgerCore
import Synchronization

/// Offline verification of a ledger data file, for auditors and operators (`scf ledger verify`).
///
/// From genesis, for every block in height order: decodes the stored block and certificate,
/// checks the block row (hash, header bytes, timestamp, count) against the block, checks the commit
/// certificate against the genesis validators, re-executes the block with
/// `BlockExecutor.validate` on an in-memory state (so every signature, Merkle root, receipt and the
/// state digest are recomputed), and checks the stored transaction rows and receipts against the
/// block and the re-execution. At the end it compares every row of every state table (the record
/// and each indexed column) with the recomputed state, the tables in parallel, and the stored tip
/// with the last block.
///
/// It stops at the first bad block and names it. A state row that differs is attributed to the
/// last block that wrote that record (genesis for an untouched genesis member), which a second
/// pass over the blocks finds: a ledger that verifies does not pay for tracking every record's
/// last writer.
///
/// Signatures (transaction signatures and certificate votes) and decoding, about 80% of the work,
/// run ahead on helper threads (one per extra core) while the calling thread executes blocks in
/// order with the signatures already known good; the next batch's rows are read meanwhile on a
/// connection of their own. The calling thread never waits for a helper: if
/// the next block is still in a helper's hands it prepares later blocks itself, and the block
/// itself when nothing else is left, so a loaded machine (a descheduled helper) costs no more than
/// a single-core run. A block with a signer the helpers could not check (one registered in the same
/// batch, or a bad signature) is executed with full signature checks, so the outcome and the error
/// message are exactly those of a sequential run.
public struct LedgerVerifier: Sendable {
    public struct Options: Sendable {
        /// Call the progress callback every this many blocks (and once at the end).
        public var progressInterval: Int
        /// Check signatures on all cores.
        public var parallelSignatures: Bool
        /// Blocks read and signature-checked together (at most).
        public var batchSize: Int
        /// Transactions read and signature-checked together (at most; a block larger than this is
        /// a batch of its own): with the read-ahead, two batches are decoded at once, so this
        /// bounds that memory whatever the blocks' size.
        public var batchTransactions: Int
        /// Check every client transaction's signature (the default, and what `scf ledger verify`
        /// does). When false, client signatures are trusted because each block's commit certificate
        /// is checked: the certificate signs the block hash, which commits to the transactions root,
        /// a Merkle root over every signed transaction including its signature bytes, so a changed
        /// signature fails the block's root or certificate check. Everything else (hashes,
        /// certificates, re-execution, receipts, rows, state) is checked the same. A node's start-up
        /// check uses this: about a third of the cost of the full check.
        public var checksClientSignatures: Bool
        /// Re-check the ledger-wide invariants after each block (the default, and what `scf ledger
        /// verify` does). When false, they are trusted for the same reason: each block's checked
        /// certificate shows a quorum executed it with the check and agreed on its state digest,
        /// which re-execution must reproduce. A node's start-up check skips them too.
        public var checksInvariants: Bool
        /// The most record rows (receivables, fragments, invoices and financing requests, as the
        /// file counts them) whose recomputed state is held in memory, at roughly a kilobyte each.
        /// A larger ledger recomputes them into a scratch file in `scratchDirectory` instead
        /// (`ScratchState`): memory then stays flat however long the history, for a slower run.
        /// Nil: always in memory.
        public var recordsInMemory: Int?
        /// Where the scratch file goes (created and deleted by the run; nil: the system's
        /// temporary directory). A node uses its data directory.
        public var scratchDirectory: String?
        /// Record writes the scratch file collects before it writes them (tests set it low, so a
        /// small chain's records are read back from the file).
        var scratchFlushLimit = 20_000

        /// The default `recordsInMemory`: about 170 MB of recomputed state (a 303,000-transaction
        /// bench ledger holds 398,000 record rows, and its state took about 460 MB in memory), so a
        /// node's start-up check stays under the 300 MB a running node stays under.
        public static let defaultRecordsInMemory = 150_000

        /// Whether `name` is a scratch directory a verification made (one left by an interrupted run can go).
        public static func isScratchDirectory(_ name: String) -> Bool { name.hasPrefix(ScratchState.namePrefix) }

        public init(progressInterval: Int = 1_000, parallelSignatures: Bool = true, batchSize: Int = 256, batchTransactions: Int = 16_384,
                    checksClientSignatures: Bool = true, checksInvariants: Bool = true,
                    recordsInMemory: Int? = Options.defaultRecordsInMemory, scratchDirectory: String? = nil) {
            self.progressInterval = max(1, progressInterval)
            self.parallelSignatures = parallelSignatures
            self.batchSize = max(1, batchSize)
            self.batchTransactions = max(1, batchTransactions)
            self.checksClientSignatures = checksClientSignatures
            self.checksInvariants = checksInvariants
            self.recordsInMemory = recordsInMemory.map { max(0, $0) }
            self.scratchDirectory = scratchDirectory
        }
    }

    public var options: Options

    public init(options: Options = Options()) {
        self.options = options
    }

    /// Verifies the ledger in `path`.
    ///
    /// - Parameters:
    ///   - genesis: the genesis the caller trusts (from the consortium's genesis file). When nil, the
    ///     genesis stored in the file is used, and the report's `genesisHash` must be compared with
    ///     the published one by hand.
    ///   - progress: called every `options.progressInterval` blocks on the calling thread.
    /// - Returns: a report; `failure` names the first bad block, or is nil when the whole file verifies.
    /// - Throws: `StoreError` when the file cannot be read as a ledger at all.
    public func verify(path: String, genesis trusted: Genesis? = nil,
                       progress: ((VerificationProgress) -> Void)? = nil) throws -> VerificationReport {
        let clock = ContinuousClock()
        let start = clock.now
        let connection = try Connection(path: path, readOnly: true)
        let meta: LedgerStore.Meta
        do {
            guard let stored = try LedgerStore.readMeta(connection) else {
                throw StoreError(.corrupt, "\(path) has no chain in it (its meta row is missing); it is not a ledger data file")
            }
            meta = stored
        } catch let error as StoreError where error.code == .sqlite {
            throw StoreError(.corrupt, "\(path) is not a ledger data file (\(error.message))")
        }
        let storedGenesis: Genesis
        do {
            storedGenesis = try Genesis(canonicalBytes: meta.genesisBytes)
        } catch {
            throw StoreError(.corrupt, "the genesis stored in \(path) does not decode (\(error)); verify with the consortium's genesis file")
        }
        let genesis = trusted ?? storedGenesis
        let suite: any CryptoSuite
        do {
            suite = try CryptoSuites.make(for: genesis)
        } catch {
            throw StoreError(.suiteMismatch, "this build cannot verify the \(genesis.cryptoSuite) suite the genesis names (\(error))")
        }
        var run = Run(path: path, genesis: genesis, suite: suite, options: options, clock: clock, start: start)
        let storedHash = storedGenesis.hash(suite: suite)
        if meta.genesisHash != run.genesisHash || storedHash != run.genesisHash || meta.chainID != genesis.chainID {
            return run.report(failure: VerificationFailure(height: .genesis, code: .genesisMismatch, message: """
                the file was made from genesis \(meta.genesisHash.short) (stored genesis hashes to \(storedHash.short)), \
                not the trusted genesis \(run.genesisHash.short); this is another chain or the file was edited
                """))
        }
        if let failure = try run.verifyBlocks(connection, progress: progress) {
            return run.report(failure: failure)
        }
        if let failure = try run.verifyEnd(connection, meta: meta) {
            return run.report(failure: failure)
        }
        if let progress { progress(run.progress(lastHeight: run.tip.height)) }
        return run.report(failure: nil)
    }
}

/// Where a verification stands.
public struct VerificationProgress: Sendable {
    /// The last block verified.
    public var height: Height
    /// The last block in the file.
    public var lastHeight: Height
    public var transactions: Int
    public var elapsed: Duration
    public var fraction: Double { lastHeight.value == 0 ? 1 : Double(height.value) / Double(lastHeight.value) }
}

/// Why a ledger file failed verification, and the first block that is bad.
public struct VerificationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The file's genesis is not the trusted one.
        case genesisMismatch
        /// A height between 1 and the last block has no block.
        case missingBlock
        /// The stored block or certificate bytes do not decode, or sit at the wrong height.
        case malformedBlock
        /// The block row's hash, header, timestamp or count disagrees with the block bytes.
        case blockRowMismatch
        /// The commit certificate is not a quorum of valid genesis-validator votes for this block.
        case badCertificate
        /// Re-execution refused the block (signature, link, roots, state digest, invariants...).
        case invalidBlock
        /// The transaction rows (or their receipts) disagree with the block and its re-execution.
        case transactionRowsMismatch
        /// A state table row disagrees with the recomputed state.
        case stateMismatch
        /// The stored tip is not the last block, or rows exist beyond it.
        case tipMismatch
    }
    /// The first bad block (0 means genesis).
    public var height: Height
    public var code: Code
    public var message: String

    public init(height: Height, code: Code, message: String) {
        self.height = height
        self.code = code
        self.message = message
    }

    public var description: String { "block \(height): \(code.rawValue): \(message)" }
}

/// What a verification found.
public struct VerificationReport: Sendable {
    public var path: String
    public var chainID: String
    public var genesisHash: Hash
    /// Blocks that passed every per-block check (all of them when the file verifies).
    public var verifiedBlocks: Int
    public var transactions: Int
    public var rejectedTransactions: Int
    /// The last block that verified.
    public var tip: ChainTip
    public var elapsed: Duration
    /// The first bad block, or nil when the whole file verifies.
    public var failure: VerificationFailure?

    public var isValid: Bool { failure == nil }

    public var seconds: Double {
        Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// One line for people.
    public var summary: String {
        let time = String(Double(Int(seconds * 100)) / 100)
        if let failure {
            return "FAILED at block \(failure.height): \(failure.code.rawValue): \(failure.message) (\(verifiedBlocks) blocks checked before it, \(time) s)"
        }
        let rate = seconds > 0 ? Int(Double(transactions) / seconds) : 0
        return "OK: chain \(chainID), \(verifiedBlocks) blocks, \(transactions) transactions (\(rejectedTransactions) rejected), tip \(tip.height) \(tip.hash.short), verified in \(time) s (\(rate) tx/s)"
    }
}

// MARK: - The verification run

private struct Run {
    let path: String
    let genesis: Genesis
    let genesisHash: Hash
    let suite: any CryptoSuite
    let executor: BlockExecutor
    let validators: ValidatorSet
    let options: LedgerVerifier.Options
    let clock: ContinuousClock
    let start: ContinuousClock.Instant

    var state: RecomputedState
    var tip: ChainTip
    var verifiedBlocks = 0
    var transactions = 0
    var rejected = 0
    var lastHeight = Height.genesis
    /// Per state table, keys whose last writer is wanted (nil: none; the first pass records
    /// nothing, so a ledger that verifies pays nothing for blaming a bad row on its block).
    var watched: [String: Set<SQLValue>]?
    /// The last block to verify, when not the file's last (the second pass stops where the first did).
    var stopHeight: Height?
    /// Per state table: the block that last wrote each watched row key.
    var lastWritten: [String: [SQLValue: Height]] = [:]

    init(path: String, genesis: Genesis, suite: any CryptoSuite, options: LedgerVerifier.Options, clock: ContinuousClock,
         start: ContinuousClock.Instant) {
        self.path = path
        self.genesis = genesis
        self.genesisHash = genesis.hash(suite: suite)
        self.suite = suite
        self.executor = BlockExecutor(genesis: genesis, suite: suite)
        self.validators = genesis.validatorSet
        self.options = options
        self.clock = clock
        self.start = start
        self.state = RecomputedState(genesis: genesis)
        self.tip = BlockExecutor.genesisTip(genesis: genesis, suite: suite)
    }

    func report(failure: VerificationFailure?) -> VerificationReport {
        VerificationReport(path: path, chainID: genesis.chainID, genesisHash: genesisHash, verifiedBlocks: verifiedBlocks,
                           transactions: transactions, rejectedTransactions: rejected, tip: tip, elapsed: clock.now - start,
                           failure: failure)
    }

    func progress(lastHeight: Height) -> VerificationProgress {
        VerificationProgress(height: tip.height, lastHeight: lastHeight, transactions: transactions, elapsed: clock.now - start)
    }

    // MARK: Blocks

    mutating func verifyBlocks(_ connection: Connection, progress: ((VerificationProgress) -> Void)?) throws -> VerificationFailure? {
        let maxStatement = try connection.statement("SELECT max(height) FROM block")
        if let row = try maxStatement.next(), !row.isNull(0) { lastHeight = Height(UInt64(bitPattern: row.int64(0))) }
        if let stopHeight, stopHeight < lastHeight { lastHeight = stopHeight }
        maxStatement.reset()
        try prepareState(connection)
        // The next batch's rows are read on a connection of their own while this one is verified.
        let reader = try BatchReader(path: path, ahead: options.parallelSignatures)
        defer { reader.cancel() }
        let batches = try batchRanges(connection)
        var nextBatch = 0
        func range(from first: UInt64) -> ClosedRange<UInt64>? {
            guard nextBatch < batches.count else { return nil }
            defer { nextBatch += 1 }
            return batches[nextBatch]
        }
        var pending = range(from: 1).map(reader.read)
        while let current = pending {
            let (next, end) = (current.heights.lowerBound, current.heights.upperBound)
            let (blockRows, transactionRows) = try current.rows()
            pending = range(from: end + 1).map(reader.read)
            var rowsByHeight: [UInt64: [SQLValue]] = [:]
            for row in blockRows { if case .integer(let height) = row[0] { rowsByHeight[UInt64(bitPattern: height)] = row } }
            var transactionsByHeight: [UInt64: [[SQLValue]]] = [:]
            for row in transactionRows { if case .integer(let height) = row[0] { transactionsByHeight[UInt64(bitPattern: height), default: []].append(row) } }

            let prepared = prepareBatch(heights: next...end, rows: rowsByHeight)
            defer { prepared.cancel() }
            for index in 0..<prepared.count {
                let item = prepared.take(index)
                if let failure = try verifyBlock(item, transactionRows: transactionsByHeight[item.height.value] ?? []) {
                    return failure
                }
                if let progress, item.height.value % UInt64(options.progressInterval) == 0 {
                    progress(self.progress(lastHeight: lastHeight))
                }
            }
        }
        return nil
    }

    /// Heights 1 through the last, cut into batches of at most `batchSize` blocks and, as the
    /// block rows state their transaction counts, `batchTransactions` transactions (a wrong count
    /// only changes a batch's size: the block still fails its own checks). At the first missing
    /// height the batches end with a batch that reaches it (verification stops there, as missing),
    /// so a damaged height, however large, never makes more batches than the file has blocks.
    func batchRanges(_ connection: Connection) throws -> [ClosedRange<UInt64>] {
        var ranges: [ClosedRange<UInt64>] = []
        let most = UInt64(options.batchSize)
        func append(_ from: UInt64, _ to: UInt64) {
            var start = from
            while start <= to {
                let end = min(to, start + most - 1)
                ranges.append(start...end)
                start = end + 1
            }
        }
        var first: UInt64 = 1, count = 0, expected: UInt64 = 1
        let statement = try connection.statement("SELECT height, transactionCount FROM block WHERE height >= 1 AND height <= ? ORDER BY height")
            .bind(SQLValue(lastHeight))
        while let row = try statement.next() {
            let height = UInt64(bitPattern: row.int64(0)), size = Int(min(max(row.int64(1), 0), Int64(Int32.max)))
            guard height == expected else { break }
            if height > first, height - first + 1 > most || count + size > options.batchTransactions {
                append(first, height - 1)
                (first, count) = (height, 0)
            }
            count += size
            expected = height + 1
        }
        // Up to the last block, or to the first missing height.
        if first <= lastHeight.value { append(first, min(lastHeight.value, expected)) }
        return ranges
    }

    /// Chooses where the recomputed state lives from the record rows the file holds (memory up to
    /// `Options.recordsInMemory`, else a scratch file), and sizes the in-memory tables for those
    /// rows, so they do not grow by doubling (each growth copies every record into fresh pages: a
    /// fifth of the verifying thread's time on a 300,000-transaction ledger). A damaged count only
    /// costs memory or time: it is capped, and the tables still grow past it if they must.
    mutating func prepareState(_ connection: Connection) throws {
        func rows(_ table: Schema.Table) throws -> Int {
            let statement = try connection.statement("SELECT count(*) FROM \(table.quotedName)")
            defer { statement.reset() }
            guard let row = try statement.next() else { return 0 }
            return Int(min(max(row.int64(0), 0), 4_000_000))
        }
        let counts = try connection.readTransaction {
            try [Schema.nonce, Schema.root, Schema.fragment, Schema.invoice, Schema.financingRequest].map(rows)
        }
        state.memory.nonces.reserveCapacity(counts[0])
        if let limit = options.recordsInMemory, counts.dropFirst().reduce(0, +) > limit {
            state = RecomputedState(genesis: genesis, scratch: try ScratchState.make(in: options.scratchDirectory, flushLimit: options.scratchFlushLimit))
            return
        }
        state.memory.roots.reserveCapacity(counts[1])
        state.memory.fragments.reserveCapacity(counts[2])
        state.memory.invoices.reserveCapacity(counts[3])
        state.memory.financingRequests.reserveCapacity(counts[4])
    }

    /// Decodes a batch of blocks and checks their rows, certificates and transaction signatures,
    /// with helpers on the other cores working ahead of the caller.
    func prepareBatch(heights: ClosedRange<UInt64>, rows: [UInt64: [SQLValue]]) -> PreparationQueue {
        let first = heights.lowerBound
        let keys = state.memory.members.mapValues(\.publicKey)
        let suite = suite, validators = validators, chainID = genesis.chainID
        let checksClientSignatures = options.checksClientSignatures
        let helpers = options.parallelSignatures ? max(1, PreparationQueue.processorCount - 1) : 0
        return PreparationQueue(count: heights.count, helpers: heights.count > 1 ? helpers : 0) { index in
            let height = first + UInt64(index)
            return PreparedBlock.prepare(height: Height(height), row: rows[height], keys: keys, validators: validators,
                                         chainID: chainID, suite: suite, checksClientSignatures: checksClientSignatures)
        }
    }

    mutating func verifyBlock(_ item: PreparedBlock, transactionRows: [[SQLValue]]) throws -> VerificationFailure? {
        let height = item.height
        let committed: CommittedBlock
        switch item.outcome {
        case .failure(let failure): return failure
        case .success(let block): committed = block
        }
        let block = committed.block
        // Signatures were checked with the keys known at the start of the batch; keys never change
        // once registered, but confirm each key is still the signer's before trusting the check.
        let trusted = item.signaturesChecked && item.keysUsed.allSatisfy { state.memory.members[$0.0]?.publicKey == $0.1 }
        let result: ExecutionResult
        do {
            result = try executor.validate(block, on: tip, state: state, signatures: trusted ? .trusted : .verify,
                                           invariants: options.checksInvariants ? .touchedRecords : .none)
        } catch let error as BlockValidationError {
            return VerificationFailure(height: height, code: .invalidBlock, message: error.description)
        } catch let error as StoreError where error.code == .scratchFile {
            // A fault of this run, not of the block.
            throw error
        } catch {
            return VerificationFailure(height: height, code: .invalidBlock, message: "re-execution failed: \(error)")
        }
        guard transactionRows.count == block.transactions.count else {
            return VerificationFailure(height: height, code: .transactionRowsMismatch, message: """
                the block holds \(block.transactions.count) transactions but the transaction table has \(transactionRows.count) rows for it
                """)
        }
        for (position, (transaction, receipt)) in zip(block.transactions, result.receipts).enumerated() {
            let expected = Rows.transaction(transaction, receipt: receipt, height: height, position: position,
                                            wire: item.transactionRanges[position])
            if let difference = Run.difference(stored: transactionRows[position], expected: expected, columns: Schema.transaction.columns) {
                return VerificationFailure(height: height, code: .transactionRowsMismatch,
                                           message: "transaction \(position) (\(transaction.id.short)): \(difference)")
            }
        }
        try state.apply(result.changes)
        if watched != nil { record(result.changes, at: height) }
        tip = ChainTip(height: height, hash: item.hash, stateDigest: block.header.stateDigest, timestamp: block.header.timestamp)
        verifiedBlocks += 1
        transactions += block.transactions.count
        rejected += result.receipts.count { !$0.isCommitted }
        return nil
    }

    mutating func record(_ changes: StateChanges, at height: Height) {
        func mark(_ table: Schema.Table, _ key: SQLValue) {
            if watched?[table.name]?.contains(key) == true { lastWritten[table.name, default: [:]][key] = height }
        }
        for id in changes.members.keys { mark(Schema.member, SQLValue(id)) }
        for id in changes.nonces.keys { mark(Schema.nonce, SQLValue(id)) }
        for id in changes.roots.keys { mark(Schema.root, SQLValue(id.hash)) }
        for id in changes.fragments.keys { mark(Schema.fragment, SQLValue(id.hash)) }
        for key in changes.invoices.keys { mark(Schema.invoice, Rows.invoiceID(key)) }
        for id in changes.financingRequests.keys { mark(Schema.financingRequest, SQLValue(id)) }
    }

    /// Which column differs, as a sentence, or nil when the rows are equal.
    static func difference(stored: [SQLValue], expected: [SQLValue], columns: [String]) -> String? {
        guard stored != expected else { return nil }
        guard stored.count == expected.count else { return "the row has \(stored.count) columns, expected \(expected.count)" }
        for (index, column) in columns.enumerated() where stored[index] != expected[index] {
            return "column \(column) is \(stored[index]) in the file but \(expected[index]) when recomputed"
        }
        return "the row differs"
    }

    // MARK: End of chain: tip, stray rows, state tables

    mutating func verifyEnd(_ connection: Connection, meta: LedgerStore.Meta) throws -> VerificationFailure? {
        guard meta.tip == tip else {
            return VerificationFailure(height: Swift.max(meta.tip.height, tip.height.next), code: .tipMismatch, message: """
                the stored tip is block \(meta.tip.height) \(meta.tip.hash.short) but the last block is \(tip.height) \(tip.hash.short)
                """)
        }
        let stray = try connection.statement("SELECT count(*) FROM \"transaction\" WHERE height < 1 OR height > ?")
            .bind(SQLValue(tip.height)).map { $0.int64(0) }.first ?? 0
        if stray > 0 {
            return VerificationFailure(height: tip.height.next, code: .tipMismatch,
                                       message: "\(stray) transaction rows belong to no stored block")
        }
        // Each state table is compared on a connection and thread of its own.
        try state.scratch?.finish()
        let found = try Run.compareStateTables(path: path, state: state, parallel: options.parallelSignatures)
        guard !found.isEmpty else { return nil }
        // A row differs: verify the blocks again, this time noting which block last wrote each
        // differing row, and blame the earliest (an untouched genesis member on genesis, an
        // invented row on the tip). The blocks verified once, so they verify again.
        state = RecomputedState(genesis: genesis)   // not needed any more (nor its scratch file): the second pass holds its own
        var again = Run(path: path, genesis: genesis, suite: suite, options: options, clock: clock, start: start)
        again.watched = Dictionary(grouping: found, by: \.table).mapValues { Set($0.map(\.key)) }
        again.stopHeight = tip.height
        if let failure = try again.verifyBlocks(connection, progress: nil) { return failure }
        var worst: VerificationFailure?
        for mismatch in found {
            let height = again.lastWritten[mismatch.table]?[mismatch.key] ?? (mismatch.recomputed ? .genesis : tip.height)
            if worst == nil || height < worst!.height {
                worst = VerificationFailure(height: height, code: .stateMismatch,
                                            message: "\(mismatch.table) row \(mismatch.key): \(mismatch.message) (last written by block \(height))")
            }
        }
        if found.count > 1 { worst?.message += "; \(found.count - 1) more state rows differ" }
        return worst
    }

    /// A state row that differs from the state recomputed from the blocks.
    struct StateMismatch: Sendable {
        var table: String
        var key: SQLValue
        var message: String
        /// Whether the recomputed state has a record with this key.
        var recomputed: Bool
    }

    /// Every state table's rows compared with `state`'s records, tables in `Schema.stateTables`
    /// order; with `parallel`, on every core at once (the largest tables first), each table
    /// read on a connection of its own.
    static func compareStateTables(path: String, state: RecomputedState, parallel: Bool) throws -> [StateMismatch] {
        let tables = Schema.stateTables
        let sizes = tables.map { state.scratch?.counts[$0.name] ?? records(of: $0, in: state.memory).count }
        let largestFirst = tables.indices.sorted { sizes[$0] > sizes[$1] }
        let results = Mutex<[Result<[StateMismatch], any Error>?]>(Array(repeating: nil, count: tables.count))
        let compare = { @Sendable (slot: Int) in
            let index = largestFirst[slot]
            let result = Result { try compareStateTable(tables[index], path: path, state: state) }
            results.withLock { $0[index] = result }
        }
        if parallel, PreparationQueue.processorCount > 1 {
            DispatchQueue.concurrentPerform(iterations: tables.count, execute: compare)
        } else {
            for slot in tables.indices { compare(slot) }
        }
        return try results.withLock { $0 }.flatMap { try $0!.get() }
    }

    /// What the comparison needs of one state table's records in the recomputed state: how many
    /// there are, the row stored under a key (nil when no record has that key, or `key` is not how
    /// this table writes it: a record's row is found under its key as `Rows` writes it, and under
    /// no other spelling), and every record's key as its row holds it.
    struct Records {
        let count: Int
        let row: (SQLValue) throws -> [SQLValue]?
        let keys: () throws -> [SQLValue]
    }

    /// `records(of:in:)` of a recomputed state: a record table kept in a scratch file is read
    /// there, on a connection of the caller's own (one per table compared).
    static func records(of table: Schema.Table, in state: RecomputedState) throws -> Records {
        guard let scratch = state.scratch, ScratchState.tables.contains(where: { $0.name == table.name }) else {
            return records(of: table, in: state.memory)
        }
        let reader = try scratch.reader()
        func view<Record: CanonicalDecodable>(_ type: Record.Type, row: @escaping (Record) -> [SQLValue]) -> Records {
            Records(count: scratch.counts[table.name] ?? 0,
                    row: { stored in
                        guard let record: Record = try ScratchState.record(table, stored, connection: reader) else { return nil }
                        let row = row(record)
                        return row.first == stored ? row : nil
                    },
                    keys: { try ScratchState.guarded(scratch.path, "read") { try reader.statement("SELECT id FROM \(table.quotedName)").map { $0.value(0) } } })
        }
        switch table.name {
        case Schema.root.name: return view(ReceivableRoot.self, row: { Rows.root($0) })
        case Schema.fragment.name: return view(Fragment.self, row: { Rows.fragment($0) })
        case Schema.invoice.name: return view(InvoiceRecord.self, row: { Rows.invoice($0) })
        default: return view(FinancingRequest.self, row: { Rows.financingRequest($0) })
        }
    }

    static func records(of table: Schema.Table, in state: MemoryLedgerState) -> Records {
        func view<Key: Hashable, Record>(_ records: [Key: Record], key: @escaping (SQLValue) -> Key?, sqlKey: @escaping (Key) -> SQLValue,
                                         row: @escaping (Key, Record) -> [SQLValue]) -> Records {
            Records(count: records.count,
                    row: { stored in
                        guard let id = key(stored), let record = records[id] else { return nil }
                        let row = row(id, record)
                        return row.first == stored ? row : nil
                    },
                    keys: { records.keys.map(sqlKey) })
        }
        let hash = { (key: SQLValue) -> Hash? in if case .blob(let bytes) = key { Hash(bytes: bytes) } else { nil } }
        let member = { (key: SQLValue) -> MemberID? in if case .text(let text) = key { MemberID(text) } else { nil } }
        switch table.name {
        case Schema.member.name: return view(state.members, key: member, sqlKey: { SQLValue($0) }, row: { Rows.member($1) })
        case Schema.nonce.name: return view(state.nonces, key: member, sqlKey: { SQLValue($0) }, row: Rows.nonce)
        case Schema.root.name:
            return view(state.roots, key: { hash($0).map(ReceivableID.init) }, sqlKey: { SQLValue($0.hash) }, row: { Rows.root($1) })
        case Schema.fragment.name:
            return view(state.fragments, key: { hash($0).map(FragmentID.init) }, sqlKey: { SQLValue($0.hash) }, row: { Rows.fragment($1) })
        case Schema.invoice.name:
            return view(state.invoices, key: { if case .text(let text) = $0 { InvoiceKey(text: text) } else { nil } },
                        sqlKey: Rows.invoiceID, row: { Rows.invoice($1) })
        case Schema.financingRequest.name:
            return view(state.financingRequests, key: hash, sqlKey: { SQLValue($0) }, row: { Rows.financingRequest($1) })
        default: return Records(count: 0, row: { _ in nil }, keys: { [] })
        }
    }

    /// `table`'s rows that differ from `state`, by key, then the missing ones by key. Each stored
    /// row is compared with the row its record makes, built as it is needed: nothing the size of
    /// the table is held beside the state (a million-transaction ledger's tables as rows took more
    /// memory than its whole state). Keys are unique under the table's primary key, so counting
    /// the rows that found their record shows whether any are missing; a file whose table lost
    /// that key (an edited schema) is compared again keeping every key seen, so a key stored twice
    /// is reported as well.
    static func compareStateTable(_ table: Schema.Table, path: String, state: RecomputedState) throws -> [StateMismatch] {
        let connection = try Connection(path: path, readOnly: true)
        return try connection.readTransaction {
            let distinct = try connection.statement("SELECT count(DISTINCT \(table.columns[0])), count(*) FROM \(table.quotedName)")
                .map { $0.int64(0) == $0.int64(1) }.first ?? false
            return try compareStateTable(table, connection: connection, state: state, keepingKeys: !distinct)
        }
    }

    private static func compareStateTable(_ table: Schema.Table, connection: Connection, state: RecomputedState,
                                          keepingKeys: Bool) throws -> [StateMismatch] {
        let records = try records(of: table, in: state)
        var found: [StateMismatch] = []
        var matched = 0
        var seen = Set<SQLValue>()
        // In the table's own order: the order of the key would look every row up through the key's index.
        let statement = try connection.statement("SELECT \(table.columnList) FROM \(table.quotedName)")
        while let row = try statement.next() {
            let stored = row.values
            let key = stored.first ?? .null
            guard !keepingKeys || seen.insert(key).inserted, let wanted = try records.row(key) else {
                found.append(StateMismatch(table: table.name, key: key, message: "is not in the state recomputed from the blocks", recomputed: false))
                continue
            }
            matched += 1
            if let difference = Run.difference(stored: stored, expected: wanted, columns: table.columns) {
                found.append(StateMismatch(table: table.name, key: key, message: difference, recomputed: true))
            }
        }
        // Named in the key's order, so of several bad rows the same one is named whatever the file's order.
        found.sort { $0.key.description < $1.key.description }
        guard matched < records.count else { return found }
        if !keepingKeys {
            seen = Set(try connection.statement("SELECT \(table.columns[0]) FROM \(table.quotedName)").map { $0.value(0) })
        }
        for key in try records.keys().filter({ !seen.contains($0) }).sorted(by: { $0.description < $1.description }) {
            found.append(StateMismatch(table: table.name, key: key, message: "is missing from the file", recomputed: true))
        }
        return found
    }
}

/// Reads batches of block and transaction rows on a connection and thread of its own, so the
/// verifying thread finds the next batch read while it verifies the one before.
final class BatchReader: @unchecked Sendable {
    /// A batch's block rows and transaction rows, in height (and position) order.
    typealias Batch = (blocks: [[SQLValue]], transactions: [[SQLValue]])

    /// One batch being read.
    final class Pending: @unchecked Sendable {
        let heights: ClosedRange<UInt64>
        private let done = DispatchSemaphore(value: 0)
        fileprivate var result: Result<Batch, any Error>?

        init(heights: ClosedRange<UInt64>) { self.heights = heights }

        fileprivate func finish(_ result: Result<Batch, any Error>) {
            self.result = result
            done.signal()
        }

        /// The batch's block rows and transaction rows, in height (and position) order; waits for them.
        func rows() throws -> Batch {
            done.wait()
            done.signal()   // a second call returns at once
            return try result!.get()
        }
    }

    /// Touched only on `queue` (or only by the caller, without one).
    private let connection: Connection
    /// Nil: each batch is read on the calling thread when it is asked for (`--single-core`).
    private let queue: DispatchQueue?
    /// Set when the verifier stops early: batches asked for and not started are not read.
    private let cancelled = Atomic<Bool>(false)

    init(path: String, ahead: Bool) throws {
        connection = try Connection(path: path, readOnly: true)
        queue = ahead ? DispatchQueue(label: "scf.verifier.reader", qos: .userInitiated) : nil
    }

    func cancel() { cancelled.store(true, ordering: .relaxed) }

    func read(_ heights: ClosedRange<UInt64>) -> Pending {
        let pending = Pending(heights: heights)
        guard let queue else {
            pending.finish(Result { try rows(heights) })
            return pending
        }
        queue.async { [self] in
            pending.finish(cancelled.load(ordering: .relaxed) ? .failure(CancellationError()) : Result { try rows(heights) })
        }
        return pending
    }

    private func rows(_ heights: ClosedRange<UInt64>) throws -> Batch {
        try connection.readTransaction {
            let bounds: [SQLValue] = [.integer(Int64(heights.lowerBound)), .integer(Int64(heights.upperBound))]
            let blocks = try connection.statement(
                "SELECT \(Schema.block.columnList) FROM block WHERE height >= ? AND height <= ? ORDER BY height")
                .bind(bounds).map { $0.values }
            let transactions = try connection.statement(
                "SELECT \(Schema.transaction.columnList) FROM \"transaction\" WHERE height >= ? AND height <= ? ORDER BY height, position")
                .bind(bounds).map { $0.values }
            return (blocks, transactions)
        }
    }
}

/// One block after the parallel phase: decoded and checked as far as possible without state.
struct PreparedBlock: Sendable {
    var height: Height
    var outcome: Result<CommittedBlock, VerificationFailure>
    var hash: Hash = .zero
    /// Every transaction signature verified against `keysUsed`.
    var signaturesChecked = false
    var keysUsed: [(MemberID, PublicKey)] = []
    /// Where each transaction sits in the block's wire (the transaction rows point there).
    var transactionRanges: [Range<Int>] = []

    static func prepare(height: Height, row: [SQLValue]?, keys: [MemberID: PublicKey], validators: ValidatorSet,
                        chainID: String, suite: any CryptoSuite, checksClientSignatures: Bool = true) -> PreparedBlock {
        func fail(_ code: VerificationFailure.Code, _ message: String) -> PreparedBlock {
            PreparedBlock(height: height, outcome: .failure(VerificationFailure(height: height, code: code, message: message)))
        }
        guard let row, row.count == Schema.block.columns.count else {
            return fail(.missingBlock, "there is no block \(height), but later blocks exist")
        }
        guard case .blob(let wire) = row[3], case .blob(let certificateBytes) = row[4] else {
            return fail(.malformedBlock, "the block or certificate column is not a byte string")
        }
        let committed: CommittedBlock
        do {
            committed = CommittedBlock(block: try Block(wireBytes: wire, suite: suite),
                                       certificate: try CommitCertificate(canonicalBytes: certificateBytes))
        } catch {
            return fail(.malformedBlock, "the stored block does not decode: \(error)")
        }
        let block = committed.block
        guard block.header.height == height else {
            return fail(.malformedBlock, "the block stored at height \(height) says it is block \(block.header.height)")
        }
        let hash = block.hash(suite: suite)
        let encoded = Rows.wire(of: block)
        if let difference = Run.difference(stored: row, expected: Rows.block(committed, hash: hash, wire: encoded.bytes), columns: Schema.block.columns) {
            return fail(.blockRowMismatch, difference)
        }
        let certificate = committed.certificate
        guard certificate.height == height, certificate.blockHash == hash else {
            return fail(.badCertificate, "the certificate is for block \(certificate.height) \(certificate.blockHash.short), not this block \(hash.short)")
        }
        do {
            try certificate.verify(validators: validators, chainID: chainID, suite: suite)
        } catch {
            return fail(.badCertificate, error.description)
        }
        var prepared = PreparedBlock(height: height, outcome: .success(committed), hash: hash)
        prepared.transactionRanges = encoded.ranges
        guard checksClientSignatures else {
            // Vouched for by the certificate just checked (see `Options.checksClientSignatures`).
            prepared.signaturesChecked = true
            return prepared
        }
        var checked = true
        var used: [MemberID: PublicKey] = [:]
        for transaction in block.transactions {
            guard let key = keys[transaction.body.signer], transaction.hasValidSignature(publicKey: key, suite: suite) else {
                checked = false
                break
            }
            used[transaction.body.signer] = key
        }
        prepared.signaturesChecked = checked
        prepared.keysUsed = used.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return prepared
    }
}

/// Blocks of one batch being prepared, taken in order by the verifying thread while helpers work
/// ahead. No barrier: `take` never waits for a helper.
final class PreparationQueue: Sendable {
    private struct State {
        /// The next block nobody has started.
        var next = 0
        /// Blocks before this one were taken.
        var taken = 0
        var results: [PreparedBlock?]
    }

    let count: Int
    private let work: @Sendable (Int) -> PreparedBlock
    private let state: Mutex<State>

    static var processorCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    init(count: Int, helpers: Int, work: @escaping @Sendable (Int) -> PreparedBlock) {
        self.count = count
        self.work = work
        self.state = Mutex(State(results: Array(repeating: nil, count: count)))
        for _ in 0..<helpers {
            DispatchQueue.global(qos: .userInitiated).async { [self] in
                while let index = claim() { store(index, work(index)) }
            }
        }
    }

    /// Stops the helpers after the blocks they are on (the caller found a bad block).
    func cancel() {
        state.withLock { $0.next = count }
    }

    private func claim() -> Int? {
        state.withLock { state in
            guard state.next < count else { return nil }
            defer { state.next += 1 }
            return state.next
        }
    }

    private func store(_ index: Int, _ prepared: PreparedBlock) {
        state.withLock { state in
            if index >= state.taken { state.results[index] = prepared }
        }
    }

    /// Block `index` prepared. Blocks must be taken in order, each once.
    func take(_ index: Int) -> PreparedBlock {
        enum Step: Sendable { case ready(PreparedBlock), prepareItself, prepareLater(Int) }
        while true {
            let step: Step = state.withLock { state in
                if let ready = state.results[index] {
                    state.results[index] = nil
                    state.taken = index + 1
                    return .ready(ready)
                }
                if state.next <= index {
                    // Nobody started it: it is ours.
                    state.next = index + 1
                    state.taken = index + 1
                    return .prepareItself
                }
                if state.next < count {
                    // A helper has it: prepare a later block meanwhile instead of waiting.
                    defer { state.next += 1 }
                    return .prepareLater(state.next)
                }
                // Nothing else left: do it too rather than wait for a helper that may not be running.
                state.taken = index + 1
                return .prepareItself
            }
            switch step {
            case .ready(let prepared): return prepared
            case .prepareItself: return work(index)
            case .prepareLater(let later): store(later, work(later))
            }
        }
    }
}
