import LedgerCore
import LedgerTestKit
import Testing

/// Every crypto suite the ledger supports: rule and property tests run on each.
let allSuites = CryptoSuiteID.allCases

/// A chain with the sample consortium plus helpers that submit one transaction per block and
/// return its receipt, so each rule test reads as the story it checks.
struct Ledger {
    var chain: ChainBuilder
    var tx: TransactionFactory
    var consortium: TestConsortium { chain.consortium }
    var state: MemoryLedgerState { chain.state }
    /// Business date used for the next block (China time, 10:00).
    var date = "2026-01-10"

    init(suite: any CryptoSuite = Ed25519SHA256Suite(), extraSuppliers: Int = 0) {
        let consortium = TestConsortium(suite: suite, extraSuppliers: extraSuppliers)
        chain = ChainBuilder(consortium: consortium)
        tx = TransactionFactory(consortium: consortium)
    }

    /// Signs and commits one transaction; returns its rejection (nil if applied).
    @discardableResult
    mutating func submit(_ signer: MemberID, _ operation: LedgerOperation, nonce: UInt64? = nil) throws -> Rejection? {
        let transaction = tx.make(signer, operation, nonce: nonce)
        return try commit([transaction])[0]
    }

    /// Commits transactions as one block on `date`; returns each rejection.
    @discardableResult
    mutating func commit(_ transactions: [SignedTransaction]) throws -> [Rejection?] {
        let time = max(ChainBuilder.time(date), chain.tip.timestamp.adding(milliseconds: 1))
        let (_, result) = try chain.append(transactions, at: time)
        return result.receipts.map(\.rejection)
    }

    /// Proposes and confirms a receivable from `creditor` on the core enterprise; returns its root and first fragment.
    mutating func activeReceivable(face: Int64 = 1_000_000_00, creditor: MemberID = TestConsortium.tier1,
                                   invoice: String = "00000001", maturity: String = "2026-07-01") throws -> (ReceivableID, FragmentID) {
        let terms = consortium.terms(creditor: creditor, face: face, invoiceNumber: invoice, maturity: maturity)
        let proposal = tx.make(creditor, .proposeReceivable(terms))
        #expect(try commit([proposal])[0] == nil)
        let root = ReceivableID(proposal.id)
        #expect(try submit(TestConsortium.core, .confirmReceivable(root)) == nil)
        return (root, FragmentID.initial(of: root, suite: consortium.suite))
    }

    func fragment(_ id: FragmentID) -> Fragment { state.fragments[id]! }
    func root(_ id: ReceivableID) -> ReceivableRoot { state.roots[id]! }
    func child(_ id: FragmentID, _ index: UInt8) -> FragmentID { FragmentID.child(of: id, index: index, suite: consortium.suite) }
}

extension Optional where Wrapped == Rejection {
    var code: RejectionCode? { self?.code }
}
