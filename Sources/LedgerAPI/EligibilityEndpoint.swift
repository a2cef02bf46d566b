import Foundation
import Hummingbird
import LedgerCore
import LedgerStore
import Synchronization

/// `POST /v1/eligibility`: can a bank finance a fragment (or a morning's batch of fragments), for
/// how much, and why. The bank sends its own policy with the question; it is never stored. Answers
/// are as of this node's last committed block and named by its height and hash, so the same
/// question to any node at the same height gets the same bytes.
public struct EligibilityRequest: Codable, Sendable {
    /// One fragment, with `amount`.
    public var fragment: Hash?
    /// A batch; each fragment is asked for its whole outstanding amount.
    public var fragments: [Hash]?
    public var bank: String
    /// Amount in major units, e.g. "142500.00" (single question).
    public var amount: String?
    public var currency: String?
    /// The bank's policy (the format of docs/examples/bank-policy.json); without it only the
    /// ledger's rules apply.
    public var policy: EligibilityPolicy.Document?

    public init(fragment: Hash? = nil, fragments: [Hash]? = nil, bank: String, amount: String? = nil, currency: String? = nil,
                policy: EligibilityPolicy.Document? = nil) {
        self.fragment = fragment; self.fragments = fragments; self.bank = bank
        self.amount = amount; self.currency = currency; self.policy = policy
    }
}

/// The node's eligibility service, opened on first use (its own read-only connection).
final class EligibilityService: Sendable {
    let service = Mutex<StoreEligibility?>(nil)

    func with<T>(_ store: LedgerStore, _ body: (StoreEligibility) throws -> T) throws -> T {
        let eligibility = try service.withLock { cached in
            if let cached { return cached }
            let made = try StoreEligibility(store: store)
            cached = made
            return made
        }
        return try body(eligibility)
    }

    /// Drops the service and with it its connection (opened again on the next use).
    func close() { service.withLock { $0 = nil } }
}

extension LedgerAPI {
    func eligibility(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let question = try RequestParsing.eligibilityQuestion(try await body(of: request, hint: "; ask about fewer fragments per request"))
        let (bank, currency, policy) = (question.bank, question.currency, question.policy)
        let fragments: [FragmentID]
        switch question.subject {
        case .single(let fragment, let amount):
            let answer = try eligibilityService.with(store) {
                try $0.answer(.init(fragment: fragment, bank: bank, amount: amount), policy: policy)
            }
            return try json(answer)
        case .batch(let ids):
            fragments = ids
        }
        var questions: [EligibilityEngine.Question] = []
        for id in fragments {
            let outstanding = try store.fragment(id)?.outstanding ?? .zero
            questions.append(.init(fragment: id, bank: bank, amount: Money(outstanding, currency)))
        }
        let answers = try eligibilityService.with(store) { try $0.answers(questions, policy: policy) }
        return try json(answers)
    }
}

/// An invoice on the ledger with the receivable it backs and every verification attestation.
public struct InvoiceView: Codable, Sendable {
    public struct Attestation: Codable, Sendable {
        public var attester: MemberID
        /// debtor-confirmation or verifier.
        public var source: String
        public var status: String
        public var evidenceHash: Hash?
        public var transaction: Hash
        public var height: Height
    }
    public var invoice: Invoice
    public var key: String
    public var boundRoot: ReceivableID?
    /// normal, voided or red-reversed.
    public var status: String
    public var replacedBy: String?
    public var attestations: [Attestation]

    init(_ record: InvoiceRecord) {
        invoice = record.invoice
        key = record.invoice.key.description
        boundRoot = record.boundRoot
        status = record.status.description
        replacedBy = record.replacedBy?.description
        attestations = record.attestations.map {
            Attestation(attester: $0.attester, source: $0.source == .debtorConfirmation ? "debtor-confirmation" : "verifier",
                        status: $0.status.description, evidenceHash: $0.evidenceHash, transaction: $0.transaction, height: $0.height)
        }
    }
}

extension LedgerAPI {
    /// `GET /v1/invoices?key=CODE/NUMBER`, `?debtor=MEMBER` or `?seller=MEMBER`.
    func invoices(_ request: Request) throws -> [InvoiceView] {
        let query = request.uri.queryParameters
        if let text = query.get("key") {
            guard let key = InvoiceKey(text: text) else { throw APIError(.badRequest, "badQuery", "key must be CODE/NUMBER (letters and digits)") }
            guard let record = try store.invoice(key) else { throw APIError(.notFound, "unknownInvoice", "invoice \(text) is not on the ledger") }
            return [InvoiceView(record)]
        }
        let limit = min(query.get("limit").flatMap(Int.init) ?? 100, 1_000)
        for (name, isSeller) in [("seller", true), ("debtor", false)] {
            guard let text = query.get(name) else { continue }
            guard let id = MemberID(text), let member = try store.member(id) else {
                throw APIError(.notFound, "unknownMember", "\(text) is not a member")
            }
            let records = isSeller ? try store.invoices(sellerTaxID: member.creditCode, limit: limit)
                                   : try store.invoices(buyerTaxID: member.creditCode, limit: limit)
            return records.map(InvoiceView.init)
        }
        throw APIError(.badRequest, "badQuery", "give key=CODE/NUMBER, debtor= or seller=")
    }
}
