import Foundation
import LedgerCore

/// The request bodies the API reads from clients, parsed and validated without the node or the
/// store: the decode-and-check half of the handlers, kept apart so that the fuzz target
/// `Fuzz/Sources/FuzzAPIRequest` runs exactly what a handler runs on untrusted bytes. Every
/// refusal is the handler's `APIError` (400 with a code and a sentence).
enum RequestParsing {
    /// `POST /v1/transactions`: `{"transaction": "<hex>"}` → the signed transaction. Decoding only;
    /// the signature, nonce and chain id are checked at admission.
    static func submission(_ body: Data, suite: any CryptoSuite) throws(APIError) -> SignedTransaction {
        let submission: SubmitRequest
        do {
            submission = try JSONDecoder().decode(SubmitRequest.self, from: body)
        } catch {
            throw APIError(.badRequest, "malformedJSON", "the body must be JSON {\"transaction\": \"<hex>\"} as written by `scf tx … --out FILE`: \(error)")
        }
        return try transaction(hex: submission.transaction, suite: suite)
    }

    /// `POST /v1/transactions/batch`: `{"transactions": ["<hex>", …]}` → one entry per element, in
    /// request order: the decoded transaction, or why that element does not decode (the others
    /// still go on). A body that is not such JSON, or holds more than `limit`, is refused whole.
    static func batch(_ body: Data, suite: any CryptoSuite, limit: Int) throws(APIError) -> [Result<SignedTransaction, APIError>] {
        let batch: BatchSubmitRequest
        do {
            batch = try JSONDecoder().decode(BatchSubmitRequest.self, from: body)
        } catch {
            throw APIError(.badRequest, "malformedJSON", "the body must be JSON {\"transactions\": [\"<hex>\", …]}: \(error)")
        }
        guard batch.transactions.count <= limit else {
            throw APIError(.contentTooLarge, "tooManyTransactions",
                           "\(batch.transactions.count) transactions in one request; send at most \(limit) per request")
        }
        return batch.transactions.enumerated().map { index, text in
            guard let bytes = [UInt8](hex: text) else {
                return .failure(APIError(.badRequest, "malformedTransaction", "transaction \(index) is not hex; send the wire bytes as lowercase hex"))
            }
            do {
                return .success(try SignedTransaction(wireBytes: bytes, suite: suite))
            } catch {
                return .failure(APIError(.badRequest, "malformedTransaction", "transaction \(index) does not decode: \(error)"))
            }
        }
    }

    /// A signed transaction's wire bytes in hex (the `transaction` field).
    static func transaction(hex: String, suite: any CryptoSuite) throws(APIError) -> SignedTransaction {
        guard let bytes = [UInt8](hex: hex) else {
            throw APIError(.badRequest, "malformedTransaction", "the transaction field must be hex")
        }
        do {
            return try SignedTransaction(wireBytes: bytes, suite: suite)
        } catch {
            throw APIError(.badRequest, "malformedTransaction", "the transaction does not decode: \(error)")
        }
    }

    /// A `POST /v1/eligibility` body, checked: who asks, in which currency, under which policy, about what.
    struct EligibilityQuestion: Sendable {
        enum Subject: Sendable {
            /// One fragment for an amount.
            case single(FragmentID, Money)
            /// 1 to 50,000 fragments, each for its whole outstanding amount.
            case batch([FragmentID])
        }
        var bank: MemberID
        var currency: CurrencyCode
        var policy: EligibilityPolicy
        var subject: Subject
    }

    /// Most fragments one eligibility request may ask about.
    static let maxEligibilityBatch = 50_000

    static func eligibilityQuestion(_ body: Data) throws(APIError) -> EligibilityQuestion {
        let question: EligibilityRequest
        do {
            question = try JSONDecoder().decode(EligibilityRequest.self, from: body)
        } catch {
            throw APIError(.badRequest, "malformedJSON", "the body must be JSON {\"fragment\" or \"fragments\", \"bank\", \"amount\", \"currency\", \"policy\"}: \(error)")
        }
        guard let bank = MemberID(question.bank) else { throw APIError(.badRequest, "badQuery", "\"\(question.bank)\" is not a member id") }
        guard let currency = CurrencyCode(question.currency ?? "CNY") else {
            throw APIError(.badRequest, "badQuery", "currency must be a three-letter ISO 4217 code")
        }
        let policy: EligibilityPolicy
        if let document = question.policy {
            do {
                policy = try EligibilityPolicy.validated(document)
            } catch {
                throw APIError(.badRequest, "badPolicy", "\(error)")
            }
        } else {
            policy = EligibilityPolicy(bank: bank, currency: currency, minDaysToMaturity: 0, maxTenorDays: 36_500, advanceRateBps: 10_000,
                                       discountRateBps: 0, dayCountBasis: 360, defaultCreditLine: MinorUnits(Int64.max),
                                       excludeDebtorsWithOverdue: false, overdueShareTriggerBps: 10_000, maturityWarningBandDays: 0)
        }
        if let fragment = question.fragment {
            guard let text = question.amount, let amount = Money.parse(text, currency) else {
                throw APIError(.badRequest, "badQuery", "a single question needs \"amount\" in major units, e.g. \"142500.00\"")
            }
            return EligibilityQuestion(bank: bank, currency: currency, policy: policy, subject: .single(FragmentID(fragment), amount))
        }
        guard let fragments = question.fragments, !fragments.isEmpty, fragments.count <= maxEligibilityBatch else {
            throw APIError(.badRequest, "badQuery", "give \"fragment\" with \"amount\", or \"fragments\" (1 to 50,000 ids)")
        }
        return EligibilityQuestion(bank: bank, currency: currency, policy: policy, subject: .batch(fragments.map(FragmentID.init)))
    }
}
