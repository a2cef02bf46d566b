import LedgerCore

/// The database schema and how each record maps to a row.
///
/// Naming follows GRDB's guide: singular camelCase tables and columns, `id` primary keys,
/// indexes named `index_<table>_on_<columns>`. Every state table keeps the record's canonical
/// LedgerCore encoding in `record` (the source of truth, decoded on read) next to the columns
/// queries filter on; the verifier recomputes both and compares them with what is stored.
///
/// Migrations have string identifiers that never change once shipped; a new schema change is a
/// new migration appended to `Schema.migrations`, never an edit of an old one.
enum Schema {
    struct Migration {
        let id: String
        let sql: String
        /// Work SQL alone cannot do (run after `sql`, in the same transaction).
        var body: (@Sendable (Connection) throws -> Void)? = nil
    }

    /// The page size of NEW data files (an existing file keeps the one it was created with).
    ///
    /// Most of what a block writes lands on B-tree pages chosen by random keys (transaction ids,
    /// fragment ids, index entries of updated records): each such write dirties a page of its
    /// own, and the WAL holds whole pages, so the bytes written per block scale with the page
    /// size, not with the bytes changed. Measured on 500 blocks of 100 generated transactions
    /// (docs/DECISIONS.md 23): WAL per block 2.32 MB with 4 KiB pages, 1.54 MB with 2 KiB,
    /// 1.04 MB with 1 KiB; but smaller pages mean more pages, so more write calls (SQLite writes
    /// each WAL frame with two) and deeper trees: 1,263, 1,661 and 2,239 write calls per block.
    /// 2 KiB halves the bytes of the old 4 KiB files for about the write calls they made.
    /// State tables stay rowid tables so that every row fits a page (a 2 KiB table page holds a
    /// row of up to 2,013 bytes; an index or WITHOUT ROWID page only 488 before spilling).
    static let newFilePageSize = 2048

    static let migrations: [Migration] = [
        Migration(id: "v1-ledger-tables", sql: """
            CREATE TABLE meta (
                id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
                chainID TEXT NOT NULL,
                cryptoSuite TEXT NOT NULL,
                genesis BLOB NOT NULL,
                genesisHash BLOB NOT NULL,
                tipHeight INTEGER NOT NULL,
                tipHash BLOB NOT NULL,
                tipStateDigest BLOB NOT NULL,
                tipTimestamp INTEGER NOT NULL
            );
            CREATE TABLE block (
                height INTEGER PRIMARY KEY NOT NULL,
                hash BLOB NOT NULL UNIQUE,
                header BLOB NOT NULL,
                wire BLOB NOT NULL,
                certificate BLOB NOT NULL,
                timestamp INTEGER NOT NULL,
                transactionCount INTEGER NOT NULL
            );
            CREATE TABLE "transaction" (
                height INTEGER NOT NULL REFERENCES block(height),
                position INTEGER NOT NULL,
                id BLOB NOT NULL,
                signer TEXT NOT NULL,
                nonce INTEGER NOT NULL,
                kind TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('committed', 'rejected')),
                reasonCode TEXT,
                reasonMessage TEXT,
                wire BLOB NOT NULL,
                UNIQUE (height, position)
            );
            CREATE INDEX index_transaction_on_id ON "transaction"(id);
            CREATE TABLE member (
                id TEXT PRIMARY KEY NOT NULL,
                status TEXT NOT NULL,
                roles INTEGER NOT NULL,
                record BLOB NOT NULL
            );
            CREATE TABLE nonce (
                id TEXT PRIMARY KEY NOT NULL,
                value INTEGER NOT NULL
            );
            CREATE TABLE receivableRoot (
                id BLOB PRIMARY KEY NOT NULL,
                debtor TEXT NOT NULL,
                creditor TEXT NOT NULL,
                initiator TEXT NOT NULL,
                status TEXT NOT NULL,
                currency TEXT NOT NULL,
                face INTEGER NOT NULL,
                settled INTEGER NOT NULL,
                writtenOff INTEGER NOT NULL,
                issueDate TEXT NOT NULL,
                maturity TEXT NOT NULL,
                record BLOB NOT NULL
            );
            CREATE TABLE fragment (
                id BLOB PRIMARY KEY NOT NULL,
                root BLOB NOT NULL,
                parent BLOB,
                generation INTEGER NOT NULL,
                holder TEXT NOT NULL,
                state TEXT NOT NULL,
                frozen INTEGER NOT NULL,
                amount INTEGER NOT NULL,
                outstanding INTEGER NOT NULL,
                financingRequest BLOB,
                record BLOB NOT NULL
            );
            CREATE TABLE invoice (
                id TEXT PRIMARY KEY NOT NULL,
                code TEXT NOT NULL,
                number TEXT NOT NULL,
                sellerTaxID TEXT NOT NULL,
                buyerTaxID TEXT NOT NULL,
                boundRoot BLOB,
                status TEXT NOT NULL,
                currency TEXT NOT NULL,
                amountIncludingTax INTEGER NOT NULL,
                record BLOB NOT NULL
            );
            CREATE TABLE financingRequest (
                id BLOB PRIMARY KEY NOT NULL,
                fragment BLOB NOT NULL,
                root BLOB NOT NULL,
                applicant TEXT NOT NULL,
                bank TEXT NOT NULL,
                status TEXT NOT NULL,
                currency TEXT NOT NULL,
                requested INTEGER NOT NULL,
                advance INTEGER,
                record BLOB NOT NULL
            );
            """),
        Migration(id: "v1-read-model-indexes", sql: """
            CREATE INDEX index_transaction_on_signer ON "transaction"(signer, height, position);
            CREATE INDEX index_receivableRoot_on_debtor ON receivableRoot(debtor);
            CREATE INDEX index_receivableRoot_on_creditor ON receivableRoot(creditor);
            CREATE INDEX index_receivableRoot_on_maturity ON receivableRoot(maturity);
            CREATE INDEX index_receivableRoot_on_status ON receivableRoot(status);
            CREATE INDEX index_fragment_on_holder_state ON fragment(holder, state);
            CREATE INDEX index_fragment_on_root ON fragment(root);
            CREATE INDEX index_fragment_on_state ON fragment(state);
            CREATE UNIQUE INDEX index_invoice_on_code_number ON invoice(code, number);
            CREATE INDEX index_invoice_on_sellerTaxID ON invoice(sellerTaxID);
            CREATE INDEX index_invoice_on_buyerTaxID ON invoice(buyerTaxID);
            CREATE INDEX index_invoice_on_boundRoot ON invoice(boundRoot);
            CREATE INDEX index_financingRequest_on_bank_status ON financingRequest(bank, status);
            CREATE INDEX index_financingRequest_on_fragment ON financingRequest(fragment);
            """),
        // The consensus replica's crash-recovery state (view, prepared certificates, …) as the
        // Consensus module encodes it; opaque to the store, written with each block or on its own.
        Migration(id: "v2-replica-state", sql: """
            CREATE TABLE replicaState (
                id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
                record BLOB NOT NULL
            );
            """),
        // Cheaper transaction rows (issue 6). The table is clustered on (height, position) (rows
        // arrive in that order, so inserts append), its signed bytes are no longer copied (they
        // are the slice wireOffset..<wireOffset+wireLength of the block's wire), and the id is
        // found through an index on its first 8 bytes (`idPrefix`, half the size of an index on
        // the 32-byte id; the row's full id is compared on every lookup). The foreign key to
        // block is gone: it cost a lookup per inserted row, and the verifier checks that every
        // row belongs to a stored block. Two invoice indexes no query uses are dropped.
        Migration(id: "v3-compact-transaction-rows", sql: """
            CREATE TABLE transactionV3 (
                height INTEGER NOT NULL,
                position INTEGER NOT NULL,
                id BLOB NOT NULL,
                idPrefix INTEGER NOT NULL,
                signer TEXT NOT NULL,
                nonce INTEGER NOT NULL,
                kind TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('committed', 'rejected')),
                reasonCode TEXT,
                reasonMessage TEXT,
                wireOffset INTEGER NOT NULL,
                wireLength INTEGER NOT NULL,
                PRIMARY KEY (height, position)
            ) WITHOUT ROWID;
            """, body: { connection in
                // Each old row held its transaction's wire bytes, and a block's wire ends with its
                // transactions' wire bytes in order: a row's offset is the block wire's length
                // minus the lengths of this and every later transaction of the block.
                let select = try connection.statement("""
                    SELECT t.height, t.position, t.id, t.signer, t.nonce, t.kind, t.status, t.reasonCode, t.reasonMessage,
                           length(b.wire) - SUM(length(t.wire)) OVER (PARTITION BY t.height ORDER BY t.position DESC), length(t.wire)
                    FROM "transaction" t JOIN block b ON b.height = t.height
                    """)
                let insert = try connection.statement(transaction.insertSQL.replacingOccurrences(of: "\"transaction\"", with: "transactionV3"))
                while let row = try select.next() {
                    var values = row.values
                    guard case .blob(let id) = values[2], let hash = Hash(bytes: id) else {
                        throw StoreError(.corrupt, "\(connection.path) has a transaction row with a damaged id (block \(values[0])); run `scf ledger verify` on it")
                    }
                    values.insert(.integer(Rows.idPrefix(hash)), at: 3)
                    try insert.bind(values).run()
                }
                try connection.execute("""
                    DROP TABLE "transaction";
                    ALTER TABLE transactionV3 RENAME TO "transaction";
                    CREATE INDEX index_transaction_on_idPrefix ON "transaction"(idPrefix);
                    CREATE INDEX index_transaction_on_signer ON "transaction"(signer, height, position);
                    DROP INDEX index_invoice_on_code_number;
                    DROP INDEX index_invoice_on_boundRoot;
                    """)
            }),
        // One fragment index for the holder and state filters instead of two (DECISIONS 56). A
        // fragment's holder changes only when a bank finances it, but its state changes at nearly
        // every step (a transfer or split closes it), and each change rewrote an entry in both old
        // indexes, each on a page of its own once the file is large. Led by the state, the one
        // index still serves a state alone; a holder's query names the states
        // (`LedgerStore.fragments(heldBy:in:)` names all of them when asked for none). IF EXISTS:
        // a node stopped during a bulk catch-up has its read-model indexes dropped.
        Migration(id: "v4-one-fragment-state-holder-index", sql: """
            DROP INDEX IF EXISTS index_fragment_on_holder_state;
            DROP INDEX IF EXISTS index_fragment_on_state;
            CREATE INDEX IF NOT EXISTS index_fragment_on_state_holder ON fragment(state, holder);
            """),
    ]

    /// The read-model indexes: what the API's queries by party, holder, status, date and signer
    /// use, as the migrations above leave them. Execution never reads through them (it looks
    /// records up by key, and transactions by the `idPrefix` index, which is not one of these),
    /// so a bulk catch-up may drop them and build them again at its end
    /// (`LedgerStore.suspendReadModelIndexes`, DECISIONS 45). A test checks this list against
    /// the indexes a new file has: a migration that adds or drops one must change it too.
    static let readModelIndexes: [(name: String, columns: String)] = [
        ("index_transaction_on_signer", #""transaction"(signer, height, position)"#),
        ("index_receivableRoot_on_debtor", "receivableRoot(debtor)"),
        ("index_receivableRoot_on_creditor", "receivableRoot(creditor)"),
        ("index_receivableRoot_on_maturity", "receivableRoot(maturity)"),
        ("index_receivableRoot_on_status", "receivableRoot(status)"),
        ("index_fragment_on_state_holder", "fragment(state, holder)"),
        ("index_fragment_on_root", "fragment(root)"),
        ("index_invoice_on_sellerTaxID", "invoice(sellerTaxID)"),
        ("index_invoice_on_buyerTaxID", "invoice(buyerTaxID)"),
        ("index_financingRequest_on_bank_status", "financingRequest(bank, status)"),
        ("index_financingRequest_on_fragment", "financingRequest(fragment)"),
    ]

    /// A state table: its name and columns, key first and `record` last.
    /// The SQL of each statement is built once here: the connection's statement cache is keyed by
    /// the SQL text, so building it again for every row or read would cost more than the lookup.
    struct Table {
        let name: String
        let columns: [String]
        let quotedName: String
        let columnList: String
        /// Insert, or update every column when the key exists.
        let upsertSQL: String
        /// Insert, or update only the columns that change over a record's life when the key
        /// exists and every column in `fixedColumns` still holds the stored value; otherwise it
        /// changes nothing (`Connection.changes` is 0) and `upsertSQL` must run instead. An index
        /// is rewritten by an UPDATE only when one of its columns is assigned, so leaving the
        /// fixed columns (a fragment's root, a receivable's debtor and maturity, …) out spares
        /// their indexes a delete and insert, each on a page of its own, for every updated record.
        /// Nil when the table has no fixed columns worth sparing.
        let narrowUpsertSQL: String?
        /// Insert a new row (the key must not exist yet).
        let insertSQL: String
        let selectRecordSQL: String
        let selectAllSQL: String

        init(name: String, columns: [String], fixedColumns: [String] = []) {
            self.name = name
            self.columns = columns
            quotedName = "\"\(name)\""
            columnList = columns.joined(separator: ", ")
            let placeholders = Array(repeating: "?", count: columns.count).joined(separator: ", ")
            let updates = columns.dropFirst().map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
            let insert = "INSERT INTO \(quotedName) (\(columnList)) VALUES (\(placeholders))"
            upsertSQL = "\(insert) ON CONFLICT(\(columns[0])) DO UPDATE SET \(updates)"
            if fixedColumns.isEmpty {
                narrowUpsertSQL = nil
            } else {
                let changing = columns.dropFirst().filter { !fixedColumns.contains($0) }.map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
                let unchanged = fixedColumns.map { "\($0) IS excluded.\($0)" }.joined(separator: " AND ")
                narrowUpsertSQL = "\(insert) ON CONFLICT(\(columns[0])) DO UPDATE SET \(changing) WHERE \(unchanged)"
            }
            insertSQL = insert
            selectRecordSQL = "SELECT record FROM \(quotedName) WHERE \(columns[0]) = ?"
            selectAllSQL = "SELECT \(columnList) FROM \(quotedName) ORDER BY \(columns[0])"
        }
    }

    static let block = Table(name: "block", columns: ["height", "hash", "header", "wire", "certificate", "timestamp", "transactionCount"])
    static let transaction = Table(name: "transaction", columns: ["height", "position", "id", "idPrefix", "signer", "nonce", "kind", "status",
                                                                  "reasonCode", "reasonMessage", "wireOffset", "wireLength"])
    static let member = Table(name: "member", columns: ["id", "status", "roles", "record"])
    static let nonce = Table(name: "nonce", columns: ["id", "value"])
    // Fixed columns: what never changes once a record exists (its identity, parties, amounts and
    // dates). The narrow upsert re-checks them, so a record that did change one is still written whole.
    static let root = Table(name: "receivableRoot", columns: ["id", "debtor", "creditor", "initiator", "status", "currency", "face",
                                                             "settled", "writtenOff", "issueDate", "maturity", "record"],
                            fixedColumns: ["debtor", "creditor", "initiator", "currency", "face", "issueDate", "maturity"])
    static let fragment = Table(name: "fragment", columns: ["id", "root", "parent", "generation", "holder", "state", "frozen", "amount",
                                                            "outstanding", "financingRequest", "record"],
                                fixedColumns: ["root", "parent", "generation", "amount"])
    static let invoice = Table(name: "invoice", columns: ["id", "code", "number", "sellerTaxID", "buyerTaxID", "boundRoot", "status",
                                                          "currency", "amountIncludingTax", "record"],
                               fixedColumns: ["code", "number", "sellerTaxID", "buyerTaxID", "currency", "amountIncludingTax"])
    static let financingRequest = Table(name: "financingRequest", columns: ["id", "fragment", "root", "applicant", "bank", "status",
                                                                            "currency", "requested", "advance", "record"],
                                        fixedColumns: ["fragment", "root", "applicant", "bank", "currency", "requested"])

    static let stateTables = [member, nonce, root, fragment, invoice, financingRequest]
}

// MARK: Rows: what each record looks like in its table (written by the store, recomputed by the verifier)

extension SQLValue {
    init(_ hash: Hash) { self = .blob(hash.bytes) }
    init(_ hash: Hash?) { self = hash.map { .blob($0.bytes) } ?? .null }
    init(_ id: MemberID) { self = .text(id.rawValue) }
    init(_ amount: MinorUnits) { self = .integer(amount.value) }
    init(_ amount: MinorUnits?) { self = amount.map { .integer($0.value) } ?? .null }
    init(_ height: Height) { self = .integer(Int64(bitPattern: height.value)) }
    init(unsigned value: UInt64) { self = .integer(Int64(bitPattern: value)) }
    init(_ date: BusinessDate) { self = .text(date.description) }
    init(_ text: String?) { self = text.map { .text($0) } ?? .null }
}

enum Rows {
    static func block(_ committed: CommittedBlock, hash: Hash, wire: [UInt8]) -> [SQLValue] {
        let header = committed.block.header
        return [SQLValue(header.height), SQLValue(hash), .blob(header.canonicalBytes), .blob(wire),
                .blob(committed.certificate.canonicalBytes), .integer(header.timestamp.millisecondsSinceEpoch),
                .integer(Int64(header.transactionCount))]
    }

    /// The first 8 bytes of a transaction id as a signed integer: the key of the id index.
    static func idPrefix(_ id: Hash) -> Int64 {
        var value: UInt64 = 0
        for byte in id.bytes.prefix(8) { value = value << 8 | UInt64(byte) }
        return Int64(bitPattern: value)
    }

    /// The block's wire bytes and where each transaction's wire bytes sit in them.
    ///
    /// Encodes exactly as `Block.encode(to:)` (header, count, then each transaction) and notes
    /// the range each transaction's encoding takes, so the transaction rows can point into the
    /// block's wire instead of holding a copy (a test checks the bytes equal `Block.wireBytes`).
    static func wire(of block: Block) -> (bytes: [UInt8], ranges: [Range<Int>]) {
        var writer = CanonicalWriter(capacity: 256 + block.transactions.count * 320)
        writer.write(block.header)
        writer.write(UInt32(block.transactions.count))
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(block.transactions.count)
        for transaction in block.transactions {
            let start = writer.bytes.count
            transaction.encode(to: &writer)
            ranges.append(start..<writer.bytes.count)
        }
        return (writer.bytes, ranges)
    }

    static func transaction(_ transaction: SignedTransaction, receipt: Receipt, height: Height, position: Int, wire: Range<Int>) -> [SQLValue] {
        let body = transaction.body
        return [SQLValue(height), .integer(Int64(position)), SQLValue(transaction.id), .integer(idPrefix(transaction.id)),
                SQLValue(body.signer), SQLValue(unsigned: body.nonce), .text(body.operation.kind),
                .text(receipt.isCommitted ? "committed" : "rejected"), SQLValue(receipt.rejection?.code.rawValue),
                SQLValue(receipt.rejection?.message), .integer(Int64(wire.lowerBound)), .integer(Int64(wire.count))]
    }

    static func member(_ member: Member, record: [UInt8]? = nil) -> [SQLValue] {
        [SQLValue(member.id), .text(member.status.description), .integer(Int64(member.roles.rawValue)), .blob(record ?? member.canonicalBytes)]
    }

    static func nonce(_ id: MemberID, _ value: UInt64) -> [SQLValue] { [SQLValue(id), SQLValue(unsigned: value)] }

    static func root(_ root: ReceivableRoot, record: [UInt8]? = nil) -> [SQLValue] {
        [SQLValue(root.id.hash), SQLValue(root.debtor), SQLValue(root.terms.creditor), SQLValue(root.initiator),
         .text(root.status.description), .text(root.currency.code), SQLValue(root.terms.face.amount), SQLValue(root.settled),
         SQLValue(root.writtenOff), SQLValue(root.terms.issueDate), SQLValue(root.terms.maturity), .blob(record ?? root.canonicalBytes)]
    }

    static func fragment(_ fragment: Fragment, record: [UInt8]? = nil) -> [SQLValue] {
        [SQLValue(fragment.id.hash), SQLValue(fragment.root.hash), SQLValue(fragment.parent?.hash), .integer(Int64(fragment.generation)),
         SQLValue(fragment.holder), .text(fragment.state.description), .integer(fragment.frozen ? 1 : 0), SQLValue(fragment.amount),
         SQLValue(fragment.outstanding), SQLValue(fragment.financingRequest), .blob(record ?? fragment.canonicalBytes)]
    }

    static func invoiceID(_ key: InvoiceKey) -> SQLValue { .text(key.description) }

    static func invoice(_ invoiceRecord: InvoiceRecord, record: [UInt8]? = nil) -> [SQLValue] {
        let invoice = invoiceRecord.invoice
        return [invoiceID(invoice.key), .text(invoice.key.code), .text(invoice.key.number), .text(invoice.sellerTaxID.rawValue),
                .text(invoice.buyerTaxID.rawValue), SQLValue(invoiceRecord.boundRoot?.hash), .text(invoiceRecord.status.description),
                .text(invoice.amountIncludingTax.currency.code), SQLValue(invoice.amountIncludingTax.amount), .blob(record ?? invoiceRecord.canonicalBytes)]
    }

    static func financingRequest(_ request: FinancingRequest, record: [UInt8]? = nil) -> [SQLValue] {
        [SQLValue(request.id), SQLValue(request.fragment.hash), SQLValue(request.root.hash), SQLValue(request.applicant),
         SQLValue(request.bank), .text(request.status.description), .text(request.requested.currency.code),
         SQLValue(request.requested.amount), SQLValue(request.advance), .blob(record ?? request.canonicalBytes)]
    }
}

/// A block's or a batch's state writes as rows, each table's in key order (a deterministic file
/// layout). Built before the write: catch-up builds them on its executing thread, so its writer
/// thread, the stage that limits it, only binds them; `append` builds them before it takes the
/// connection's lock.
struct StateRows: Equatable {
    var members: [[SQLValue]]
    var nonces: [[SQLValue]]
    var roots: [[SQLValue]]
    var fragments: [[SQLValue]]
    var invoices: [[SQLValue]]
    var financingRequests: [[SQLValue]]

    init(_ changes: StateChanges) {
        members = changes.sortedMembers.map { Rows.member($0) }
        nonces = changes.sortedNonces.map(Rows.nonce)
        roots = changes.sortedRoots.map { Rows.root($0) }
        fragments = changes.sortedFragments.map { Rows.fragment($0) }
        invoices = changes.sortedInvoices.map { Rows.invoice($0) }
        financingRequests = changes.sortedFinancingRequests.map { Rows.financingRequest($0) }
    }

    /// The same rows from the writes as the executor sorted and encoded them for the state digest:
    /// each record's blob is its slice of the digest's input, not a second encoding.
    init(_ encoded: EncodedStateChanges) {
        let layout = encoded.layout
        members = encoded.withBytes(layout.members) { Rows.member($0, record: $1) }
        nonces = layout.nonces.map(Rows.nonce)
        roots = encoded.withBytes(layout.roots) { Rows.root($0, record: $1) }
        fragments = encoded.withBytes(layout.fragments) { Rows.fragment($0, record: $1) }
        invoices = encoded.withBytes(layout.invoices) { Rows.invoice($0, record: $1) }
        financingRequests = encoded.withBytes(layout.financingRequests) { Rows.financingRequest($0, record: $1) }
    }
}
