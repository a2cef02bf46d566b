// libFuzzer target: the HTTP API's request bodies, through the same functions the handlers call
// (Sources/LedgerAPI/RequestParsing.swift). Input: [mode][suite or currency][payload].
//   submission: POST /v1/transactions body → hex → SignedTransaction.
//   hex: the hex decoder alone.
//   eligibility: POST /v1/eligibility body, with the bank's policy document inside.
//   policy: a bank policy document alone (docs/examples/bank-policy.json), as the CLI reads it.
//   amount: Money.parse, which reads every amount a client writes in major units.
// Invariants: an accepted transaction re-encodes to the submitted bytes; hex round-trips; an
// accepted policy has no problems and no negative limit; an accepted amount is what the strict
// grammar digits[.digits] says it is, and never negative.
import Foundation
import FuzzSupport
@testable import LedgerAPI
import LedgerCore
import LedgerTestKit

enum Mode: UInt8, CaseIterable {
    case submission, hex, eligibility, policy, amount
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfAsked(APISeeds.all)
    return 0
}

let currencies = [CurrencyCode.cny, CurrencyCode.usd, CurrencyCode("JPY")!]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAPIRequest(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    var cursor = FuzzCursor(fuzzBytes(start, count))
    let mode = Mode(rawValue: cursor.byte() % UInt8(Mode.allCases.count))!
    let selector = cursor.byte()
    let payload = cursor.rest()
    switch mode {
    case .submission: checkSubmission(payload, FuzzFixtures.consortium(selector).suite)
    case .hex: checkHex(payload)
    case .eligibility: checkEligibility(payload)
    case .policy: checkPolicy(payload)
    case .amount: checkAmount(String(decoding: payload, as: UTF8.self), currencies[Int(selector) % currencies.count])
    }
    return 0
}

func checkSubmission(_ payload: [UInt8], _ suite: any CryptoSuite) {
    guard let transaction = try? RequestParsing.submission(Data(payload), suite: suite) else { return }
    let request = try? JSONDecoder().decode(SubmitRequest.self, from: Data(payload))
    invariant(request.flatMap { [UInt8](hex: $0.transaction) } == transaction.wireBytes,
              "an accepted submission does not re-encode to the submitted bytes")
    invariant(transaction.id == suite.hash(transaction.bodyBytes), "transaction id is not the hash of its body")
}

func checkHex(_ payload: [UInt8]) {
    let text = String(decoding: payload, as: UTF8.self)
    guard let bytes = [UInt8](hex: text) else { return }
    invariant(bytes.hexString == text.lowercased(), "hex \(text) decodes to \(bytes.hexString)")
}

func checkEligibility(_ payload: [UInt8]) {
    guard let question = try? RequestParsing.eligibilityQuestion(Data(payload)) else { return }
    checkPolicyValue(question.policy)
    let chain = EligibilityFixture.shared
    let questions: [EligibilityEngine.Question]
    switch question.subject {
    case .single(let fragment, let amount):
        invariant(amount.currency == question.currency, "amount in \(amount.currency), question in \(question.currency)")
        invariant(amount.amount.value >= 0, "an eligibility question for a negative amount \(amount) was accepted")
        questions = [.init(fragment: fragment, bank: question.bank, amount: amount)]
    case .batch(let fragments):
        invariant((1...RequestParsing.maxEligibilityBatch).contains(fragments.count), "a batch of \(fragments.count) fragments was accepted")
        // As the handler: each fragment for its whole outstanding amount.
        questions = fragments.prefix(64).map { id in
            .init(fragment: id, bank: question.bank, amount: Money(chain.state.fragments[id]?.outstanding ?? .zero, question.currency))
        }
    }
    // Then what the handler does with it: the engine's answers over a real chain (the workload
    // generator's receivables, transfers and financings), as of its tip.
    let answers: [EligibilityAnswer]
    do {
        answers = try chain.engine.evaluate(batch: questions, asOf: chain.asOf, policy: question.policy, state: chain.state,
                                            aggregates: chain.state, history: chain.history)
    } catch {
        invariant(false, "the eligibility engine threw on an in-memory chain: \(error)")
        return
    }
    invariant(answers.count == questions.count, "\(questions.count) questions, \(answers.count) answers")
    for (answer, asked) in zip(answers, questions) {
        invariant(answer.fragment == asked.fragment && answer.requested == asked.amount, "an answer to another question")
        invariant(!answer.eligible || answer.failures.isEmpty, "eligible with failed rules \(answer.failures.map(\.code))")
        if let advance = answer.maxAdvance {
            invariant(advance.amount.value >= 0, "negative maximum advance \(advance)")
            // The maximum advance is stated in the receivable's own currency (the engine's
            // design: "ask in CNY"); asked in another currency, the answer cannot be eligible.
            invariant(advance.currency == asked.amount.currency || !answer.eligible,
                      "eligible although asked in \(asked.amount.currency) with the advance in \(advance.currency)")
        }
        if let pricing = answer.pricing {
            invariant(pricing.advance.amount.value >= 0 && pricing.discount.amount.value >= 0 && pricing.netProceeds.amount.value >= 0,
                      "negative pricing \(pricing)")
            invariant(pricing.netProceeds.amount.value <= pricing.advance.amount.value, "net proceeds above the advance \(pricing)")
        }
        // Answers are named by their bytes: the same question gives the same bytes.
        invariant(EligibilityAnswer.canonicalBytesDecode(answer), "an answer does not survive its canonical encoding")
        _ = try? JSONEncoder().encode(answer)
    }
}

extension EligibilityAnswer {
    static func canonicalBytesDecode(_ answer: EligibilityAnswer) -> Bool {
        (try? EligibilityAnswer(canonicalBytes: answer.canonicalBytes)) == answer
    }
}

/// A chain for the eligibility engine to answer from: the workload generator's first blocks in
/// the Ed25519 consortium, executed and certified, with their history (built once).
final class EligibilityFixture: Sendable {
    static let shared = try! EligibilityFixture()
    let engine: EligibilityEngine
    let state: MemoryLedgerState
    let history: MemoryChainHistory
    let asOf: AsOf

    init() throws {
        let consortium = FuzzFixtures.ed25519
        var generator = WorkloadGenerator(consortium: consortium, seed: 11, transactionsPerBlock: 12)
        var builder = ChainBuilder(consortium: consortium)
        var history = MemoryChainHistory()
        for _ in 0..<12 {
            let next = generator.nextBlock()
            let (committed, result) = try builder.append(next.transactions, at: next.timestamp)
            generator.observe(result)
            history.append(committed, receipts: result.receipts)
        }
        engine = EligibilityEngine(genesis: consortium.genesis, suite: consortium.suite)
        state = builder.state
        self.history = history
        asOf = AsOf(tip: builder.tip, utcOffsetMinutes: consortium.genesis.utcOffsetMinutes)
    }
}

func checkPolicy(_ payload: [UInt8]) {
    guard let document = try? JSONDecoder().decode(EligibilityPolicy.Document.self, from: Data(payload)),
          let policy = try? EligibilityPolicy.validated(document) else { return }
    checkPolicyValue(policy)
}

func checkPolicyValue(_ policy: EligibilityPolicy) {
    invariant(policy.problems.isEmpty, "an accepted policy has problems: \(policy.problems)")
    invariant(policy.creditLines.values.allSatisfy { $0.value >= 0 } && (policy.defaultCreditLine?.value ?? 0) >= 0,
              "an accepted policy has a negative credit line")
    invariant(policy.supplierLimits.values.allSatisfy { $0.value >= 0 } && (policy.defaultSupplierLimit?.value ?? 0) >= 0,
              "an accepted policy has a negative supplier limit")
    _ = policy.digest(suite: FuzzFixtures.ed25519.suite)
}

/// The amount grammar, written independently of Money.parse: ASCII digits, optionally a point
/// and 1…minorDigits more digits; nil when the value does not fit in Int64 minor units.
func strictAmount(_ text: String, _ currency: CurrencyCode) -> Int64? {
    let digits = currency.minorDigits
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    func isDigits(_ part: Substring) -> Bool { !part.isEmpty && part.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } }
    guard parts.count <= 2, isDigits(parts[0]) else { return nil }
    var fractionDigits: [UInt8] = []
    if parts.count == 2 {
        guard isDigits(parts[1]), parts[1].utf8.count <= digits else { return nil }
        fractionDigits = Array(parts[1].utf8)
    }
    var value: Int64 = 0
    for digit in parts[0].utf8 + fractionDigits + [UInt8](repeating: 48, count: digits - fractionDigits.count) {
        let (times, o1) = value.multipliedReportingOverflow(by: 10)
        let (plus, o2) = times.addingReportingOverflow(Int64(digit - 48))
        guard !o1, !o2 else { return nil }
        value = plus
    }
    return value
}

func checkAmount(_ text: String, _ currency: CurrencyCode) {
    let parsed = Money.parse(text, currency)
    let expected = strictAmount(text, currency)
    invariant(parsed?.amount.value == expected,
              "Money.parse(\"\(text)\", \(currency)) = \(parsed.map { String($0.amount.value) } ?? "nil"), the grammar says \(expected.map(String.init) ?? "nil")")
    if let parsed { invariant(parsed.currency == currency, "parsed into another currency") }
}

enum APISeeds {
    static func all() throws -> [Seed] {
        var seeds: [Seed] = []
        func seed(_ mode: Mode, _ selector: UInt8, _ name: String, _ bytes: [UInt8]) {
            seeds.append(Seed(name, [mode.rawValue, selector] + bytes))
        }
        for (selector, consortium) in [(UInt8(0), FuzzFixtures.ed25519), (UInt8(1), FuzzFixtures.sm2)] {
            let sample = try SampleChain(consortium, blocks: 1, transactionsPerBlock: 3)
            for (index, transaction) in sample.transactions.enumerated() {
                let body = try JSONEncoder().encode(SubmitRequest(transaction: transaction.wireBytes.hexString))
                seed(.submission, selector, "submission-\(index)-\(consortium.suite.id)", Array(body))
            }
        }
        seed(.hex, 0, "hex", Array("00ff10Ab".utf8))
        let policy = Array("""
        {"comment":"sample","bank":"bank-a","currency":"CNY","minDaysToMaturity":15,"maxTenorDays":360,"advanceRateBps":9000,\
        "discountRateBps":450,"dayCountBasis":360,"creditLines":{"core-enterprise":"50000000.00"},"defaultCreditLine":"0.00",\
        "supplierLimits":{"tier1-supplier":"20000000.00"},"defaultSupplierLimit":"5000000.00",\
        "overdue":{"excludeDebtors":true,"shareTriggerBps":1,"graceDays":0},"maturityWarningBandDays":10}
        """.utf8)
        seed(.policy, 0, "policy", policy)
        let fragments = EligibilityFixture.shared.state.fragments.keys.sorted().compactMap { EligibilityFixture.shared.state.fragments[$0] }
        let fragment = fragments.first?.id.hash.hex ?? String(repeating: "ab", count: 32)
        for (index, live) in fragments.prefix(6).enumerated() {
            let amount = Money(live.outstanding, .cny).description.split(separator: " ")[0].replacingOccurrences(of: ",", with: "")
            seed(.eligibility, 0, "eligibility-fragment-\(index)",
                 Array(#"{"fragment":"\#(live.id.hash.hex)","bank":"bank-a","amount":"\#(amount)","policy":"#.utf8) + policy + [UInt8(ascii: "}")])
        }
        let batch = fragments.prefix(8).map { "\"\($0.id.hash.hex)\"" }.joined(separator: ",")
        seed(.eligibility, 0, "eligibility-batch-live", Array(#"{"fragments":[\#(batch)],"bank":"bank-b","policy":"#.utf8) + policy + [UInt8(ascii: "}")])
        seed(.eligibility, 0, "eligibility-single",
             Array(#"{"fragment":"\#(fragment)","bank":"bank-a","amount":"142500.00","currency":"CNY","policy":"#.utf8) + policy + [UInt8(ascii: "}")])
        seed(.eligibility, 0, "eligibility-batch", Array(#"{"fragments":["\#(fragment)","\#(String(repeating: "01", count: 32))"],"bank":"bank-b"}"#.utf8))
        for (index, text) in ["142500.00", "0.5", "12", "9223372036854775807", "92233720368547758.07"].enumerated() {
            seed(.amount, UInt8(index % 3), "amount-\(index)", Array(text.utf8))
        }
        return seeds
    }
}
