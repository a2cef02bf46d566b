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
    }

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
        /// Insert a new row (the key must not exist yet).
        let insertSQL: String
        let selectRecordSQL: String
        let selectAllSQL: String

        init(name: String, columns: [String]) {
            self.name = name
            self.columns = columns
            quotedName = "\"\(name)\""
            columnList = columns.joined(separator: ", ")
            let placeholders = Array(repeating: "?", count: columns.count).joined(separator: ", ")
            let updates = columns.dropFirst().map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
            upsertSQL = "INSERT INTO \(quotedName) (\(columnList)) VALUES (\(placeholders)) ON CONFLICT(\(columns[0])) DO UPDATE SET \(updates)"
            insertSQL = "INSERT INTO \(quotedName) (\(columnList)) VALUES (\(placeholders))"
            selectRecordSQL = "SELECT record FROM \(quotedName) WHERE \(columns[0]) = ?"
            selectAllSQL = "SELECT \(columnList) FROM \(quotedName) ORDER BY \(columns[0])"
        }
    }

    static let block = Table(name: "block", columns: ["height", "hash", "header", "wire", "certificate", "timestamp", "transactionCount"])
    static let transaction = Table(name: "transaction", columns: ["height", "position", "id", "signer", "nonce", "kind", "status",
                                                                  "reasonCode", "reasonMessage", "wire"])
    static let member = Table(name: "member", columns: ["id", "status", "roles", "record"])
    static let nonce = Table(name: "nonce", columns: ["id", "value"])
    static let root = Table(name: "receivableRoot", columns: ["id", "debtor", "creditor", "initiator", "status", "currency", "face",
                                                             "settled", "writtenOff", "issueDate", "maturity", "record"])
    static let fragment = Table(name: "fragment", columns: ["id", "root", "parent", "generation", "holder", "state", "frozen", "amount",
                                                            "outstanding", "financingRequest", "record"])
    static let invoice = Table(name: "invoice", columns: ["id", "code", "number", "sellerTaxID", "buyerTaxID", "boundRoot", "status",
                                                          "currency", "amountIncludingTax", "record"])
    static let financingRequest = Table(name: "financingRequest", columns: ["id", "fragment", "root", "applicant", "bank", "status",
                                                                            "currency", "requested", "advance", "record"])

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
    static func block(_ committed: CommittedBlock, hash: Hash) -> [SQLValue] {
        let header = committed.block.header
        return [SQLValue(header.height), SQLValue(hash), .blob(header.canonicalBytes), .blob(committed.block.wireBytes),
                .blob(committed.certificate.canonicalBytes), .integer(header.timestamp.millisecondsSinceEpoch),
                .integer(Int64(header.transactionCount))]
    }

    static func transaction(_ transaction: SignedTransaction, receipt: Receipt, height: Height, position: Int) -> [SQLValue] {
        let body = transaction.body
        return [SQLValue(height), .integer(Int64(position)), SQLValue(transaction.id), SQLValue(body.signer), SQLValue(unsigned: body.nonce),
                .text(body.operation.kind), .text(receipt.isCommitted ? "committed" : "rejected"),
                SQLValue(receipt.rejection?.code.rawValue), SQLValue(receipt.rejection?.message), .blob(transaction.wireBytes)]
    }

    static func member(_ member: Member) -> [SQLValue] {
        [SQLValue(member.id), .text(member.status.description), .integer(Int64(member.roles.rawValue)), .blob(member.canonicalBytes)]
    }

    static func nonce(_ id: MemberID, _ value: UInt64) -> [SQLValue] { [SQLValue(id), SQLValue(unsigned: value)] }

    static func root(_ root: ReceivableRoot) -> [SQLValue] {
        [SQLValue(root.id.hash), SQLValue(root.debtor), SQLValue(root.terms.creditor), SQLValue(root.initiator),
         .text(root.status.description), .text(root.currency.code), SQLValue(root.terms.face.amount), SQLValue(root.settled),
         SQLValue(root.writtenOff), SQLValue(root.terms.issueDate), SQLValue(root.terms.maturity), .blob(root.canonicalBytes)]
    }

    static func fragment(_ fragment: Fragment) -> [SQLValue] {
        [SQLValue(fragment.id.hash), SQLValue(fragment.root.hash), SQLValue(fragment.parent?.hash), .integer(Int64(fragment.generation)),
         SQLValue(fragment.holder), .text(fragment.state.description), .integer(fragment.frozen ? 1 : 0), SQLValue(fragment.amount),
         SQLValue(fragment.outstanding), SQLValue(fragment.financingRequest), .blob(fragment.canonicalBytes)]
    }

    static func invoiceID(_ key: InvoiceKey) -> SQLValue { .text(key.description) }

    static func invoice(_ record: InvoiceRecord) -> [SQLValue] {
        let invoice = record.invoice
        return [invoiceID(invoice.key), .text(invoice.key.code), .text(invoice.key.number), .text(invoice.sellerTaxID.rawValue),
                .text(invoice.buyerTaxID.rawValue), SQLValue(record.boundRoot?.hash), .text(record.status.description),
                .text(invoice.amountIncludingTax.currency.code), SQLValue(invoice.amountIncludingTax.amount), .blob(record.canonicalBytes)]
    }

    static func financingRequest(_ request: FinancingRequest) -> [SQLValue] {
        [SQLValue(request.id), SQLValue(request.fragment.hash), SQLValue(request.root.hash), SQLValue(request.applicant),
         SQLValue(request.bank), .text(request.status.description), .text(request.requested.currency.code),
         SQLValue(request.requested.amount), SQLValue(request.advance), .blob(request.canonicalBytes)]
    }
}
