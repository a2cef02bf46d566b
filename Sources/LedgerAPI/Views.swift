import LedgerCore
import LedgerStore

// JSON shapes of the API. States are strings, amounts integer minor units with their currency,
// ids lowercase hex. Field names never change once shipped; add fields, never rename.

public struct ErrorBody: Codable, Sendable {
    public struct Detail: Codable, Sendable {
        public var code: String
        public var message: String
    }
    public var error: Detail
}

public struct SubmitRequest: Codable, Sendable {
    /// The signed transaction's wire bytes in hex (what `scf tx … --out FILE` writes in its `transaction` field).
    public var transaction: String
    public init(transaction: String) { self.transaction = transaction }
}

/// `POST /v1/transactions/batch`: signed transactions' wire bytes in hex, at most 1,000.
public struct BatchSubmitRequest: Codable, Sendable {
    public var transactions: [String]
    public init(transactions: [String]) { self.transactions = transactions }
}

/// One transaction's admission in a batch: accepted, or refused with a reason code and sentence.
public struct BatchSubmitResult: Codable, Sendable, Equatable {
    /// Nil when the transaction did not decode.
    public var id: Hash?
    public var accepted: Bool
    public var code: String?
    public var message: String?
    public init(id: Hash?, accepted: Bool, code: String? = nil, message: String? = nil) {
        self.id = id
        self.accepted = accepted
        self.code = code
        self.message = message
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)   // null when it did not decode, as the contract says
        try container.encode(accepted, forKey: .accepted)
        try container.encodeIfPresent(code, forKey: .code)
        try container.encodeIfPresent(message, forKey: .message)
    }
}

/// The answer to a batch: one result per transaction, in request order.
public struct BatchSubmitResponse: Codable, Sendable {
    public var results: [BatchSubmitResult]
    public init(results: [BatchSubmitResult]) { self.results = results }
}

public struct TransactionView: Codable, Sendable, Equatable {
    public var id: Hash
    /// pending, committed, rejected or unknown.
    public var status: String
    public var height: Height?
    public var code: String?
    public var message: String?
    public var signer: MemberID?
    public var nonce: UInt64?
    public var kind: String?
}

public struct StatusView: Codable, Sendable {
    public var chainID: String
    public var genesisHash: Hash
    public var cryptoSuite: String
    public var validator: String
    public var height: Height
    public var headHash: Hash
    public var view: View
    public var primary: String
    public var isPrimary: Bool
    public var pendingTransactions: Int
    public var catchingUp: Bool
    /// A bulk catch-up dropped the read-model indexes: queries answer the same, by scanning, until it
    /// ends. Optional so that clients read the status of nodes from before the field (nil: false).
    public var readModelIndexesSuspended: Bool?
    public var peersConnected: [String]
    public var halted: String?
}

public struct FragmentView: Codable, Sendable {
    public var id: FragmentID
    public var root: ReceivableID
    public var parent: FragmentID?
    public var generation: UInt32
    public var holder: MemberID
    public var amount: MinorUnits
    public var outstanding: MinorUnits
    public var currency: CurrencyCode
    public var state: String
    public var frozen: Bool
    public var financingRequest: Hash?
    public var createdBy: Hash

    init(_ fragment: Fragment, currency: CurrencyCode) {
        id = fragment.id; root = fragment.root; parent = fragment.parent; generation = fragment.generation
        holder = fragment.holder; amount = fragment.amount; outstanding = fragment.outstanding; self.currency = currency
        state = fragment.state.description; frozen = fragment.frozen; financingRequest = fragment.financingRequest
        createdBy = fragment.createdBy
    }
}

public struct RootView: Codable, Sendable {
    public var id: ReceivableID
    public var debtor: MemberID
    public var creditor: MemberID
    public var face: Money
    public var issueDate: BusinessDate
    public var maturity: BusinessDate
    public var recourse: String
    public var status: String
    public var initiator: MemberID
    public var confirmationTx: Hash?
    public var settled: MinorUnits
    public var writtenOff: MinorUnits
    public var liveFragments: [FragmentID]
    public var invoices: [String]
    public var documentHashes: [Hash]

    init(_ root: ReceivableRoot) {
        id = root.id; debtor = root.debtor; creditor = root.terms.creditor; face = root.terms.face
        issueDate = root.terms.issueDate; maturity = root.terms.maturity; recourse = root.terms.recourse.description
        status = root.status.description; initiator = root.initiator; confirmationTx = root.confirmationTx
        settled = root.settled; writtenOff = root.writtenOff; liveFragments = root.liveFragments
        invoices = root.invoiceKeys.map(\.description); documentHashes = root.terms.documentHashes
    }
}

public struct HistoryEntry: Codable, Sendable {
    public var transaction: Hash
    public var kind: String
    public var signer: MemberID
    public var height: Height
    /// committed, or the reason code it was refused with.
    public var outcome: String

    init(_ stored: StoredTransaction) {
        transaction = stored.transaction.id
        kind = stored.transaction.body.operation.kind
        signer = stored.transaction.body.signer
        height = stored.height
        outcome = stored.receipt.rejection?.code.rawValue ?? "committed"
    }
}

public struct FinancingView: Codable, Sendable {
    public var id: Hash
    public var fragment: FragmentID
    public var applicant: MemberID
    public var bank: MemberID
    public var requested: Money
    public var status: String
    public var advance: MinorUnits?
    public var decisionTx: Hash?
    public var reason: String?

    init(_ request: FinancingRequest) {
        id = request.id; fragment = request.fragment; applicant = request.applicant; bank = request.bank
        requested = request.requested; status = request.status.description; advance = request.advance
        decisionTx = request.decisionTx; reason = request.reason
    }
}

public struct ReceivableDetail: Codable, Sendable {
    public var receivable: RootView
    public var fragments: [FragmentView]
    public var financing: [FinancingView]
    /// Every transaction that created or changed it, oldest first.
    public var history: [HistoryEntry]
}

public struct FragmentDetail: Codable, Sendable {
    public var fragment: FragmentView
    /// From this fragment back to the root's first fragment, each with the transaction that created it.
    public var provenance: [ProvenanceStep]
    public var receivable: RootView
}

public struct ProvenanceStep: Codable, Sendable {
    public var fragment: FragmentView
    public var createdBy: HistoryEntry?
}

public struct BlockView: Codable, Sendable {
    public var height: Height
    public var hash: Hash
    public var header: BlockHeader
    public var transactions: [Hash]
    public var certificate: CommitCertificate
}

public struct InclusionProofView: Codable, Sendable {
    public var transaction: Hash
    public var height: Height
    public var blockHash: Hash
    public var header: BlockHeader
    public var certificate: CommitCertificate
    /// The signed transaction's wire bytes (hex): its Merkle leaf is H(0x00 || these bytes).
    public var transactionBytes: String
    public var transactionProof: MerkleProof
    public var receipt: Receipt
    public var receiptProof: MerkleProof
}
