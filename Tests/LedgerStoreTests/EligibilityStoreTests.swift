import Foundation
import LedgerCore
@testable import LedgerStore
import LedgerTestKit
import Testing

/// Eligibility over SQLite: the same certified blocks replayed into several independent stores
/// (as several nodes of a cluster would hold them) give byte-identical answers and evidence, equal
/// to the in-memory engine's, at the tip and as of older heights.
@Suite struct EligibilityStoreTests {
    typealias C = TestConsortium

    static let policy = EligibilityPolicy(
        bank: C.bankA, currency: .cny, minDaysToMaturity: 15, maxTenorDays: 360, advanceRateBps: 9_000, discountRateBps: 450,
        dayCountBasis: 365, creditLines: [C.core: MinorUnits(3_000_000_00)], supplierLimits: [C.tier2: MinorUnits(100_000_00)],
        excludeDebtorsWithOverdue: true, overdueShareTriggerBps: 5_000, overdueGraceDays: 0, maturityWarningBandDays: 10)

    /// A chain with receivables, splits down three tiers, a financing, a pending request and an
    /// overdue receivable; and the memory state after each block.
    struct Story {
        var chain: ChainBuilder
        var states: [MemoryLedgerState]
        var histories: [MemoryChainHistory]
    }

    static func story() throws -> Story {
        let consortium = TestConsortium()
        var chain = ChainBuilder(consortium: consortium)
        var tx = TransactionFactory(consortium: consortium)
        var states: [MemoryLedgerState] = [chain.state]
        var histories = [MemoryChainHistory()]
        var day = 10
        func commit(_ transactions: [SignedTransaction], date: String? = nil) throws {
            let time = ChainBuilder.time(date ?? "2026-01-\(day)")
            let (block, result) = try chain.append(transactions, at: max(time, chain.tip.timestamp.adding(milliseconds: 1)))
            let refused = result.receipts.compactMap(\.rejection)
            #expect(refused.isEmpty, "\(refused)")
            states.append(chain.state)
            var history = histories.last!
            history.append(block, receipts: result.receipts)
            histories.append(history)
            day += 1
        }
        let suite = consortium.suite
        var roots: [ReceivableID] = []
        for (number, maturity) in [("1", "2026-07-01"), ("2", "2026-09-01"), ("3", "2026-01-25")] {
            let proposal = tx.make(C.tier1, .proposeReceivable(consortium.terms(face: 1_000_000_00, invoiceNumber: number, maturity: maturity)))
            try commit([proposal])
            try commit([tx.make(C.core, .confirmReceivable(ReceivableID(proposal.id)))])
            roots.append(ReceivableID(proposal.id))
        }
        let first = FragmentID.initial(of: roots[0], suite: suite)
        try commit([tx.make(C.tier1, .transfer(fragment: first, to: C.tier2, amount: 600_000_00))])
        let second = FragmentID.child(of: first, index: 0, suite: suite)
        try commit([tx.make(C.tier2, .transfer(fragment: second, to: C.tier3, amount: 250_000_00)),
                    tx.make(C.verifier, .attestInvoice(chain.state.roots[roots[0]]!.invoiceKeys[0], status: .normal, evidenceHash: nil))])
        let third = FragmentID.child(of: second, index: 0, suite: suite)
        let request = tx.make(C.tier3, .requestFinancing(fragment: third, bank: C.bankA, amount: Money(minor: 200_000_00, .cny)))
        try commit([request])
        try commit([tx.make(C.bankA, .approveFinancing(request: request.id, advance: 200_000_00))])
        let other = FragmentID.initial(of: roots[1], suite: suite)
        try commit([tx.make(C.tier1, .requestFinancing(fragment: other, bank: C.bankB, amount: Money(minor: 100_000_00, .cny)))])
        // The third receivable matures on 2026-01-25 and is not paid: the debtor becomes overdue.
        try commit([], date: "2026-01-28")
        return Story(chain: chain, states: states, histories: histories)
    }

    /// Replays the certified blocks into a fresh store the way a catching-up node does: check the
    /// certificate, validate the block against the store's own state, append.
    static func replay(_ chain: ChainBuilder, into path: String) throws -> LedgerStore {
        let consortium = chain.consortium
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        for committed in chain.blocks {
            try committed.certificate.verify(validators: consortium.validatorSet, chainID: consortium.genesis.chainID, suite: consortium.suite)
            let result = try consortium.executor.validate(committed.block, on: store.tip, state: store, signatures: .verify)
            try store.append(committed, result: result)
        }
        return store
    }

    static func questions(_ state: MemoryLedgerState) -> [EligibilityEngine.Question] {
        state.fragments.keys.sorted().flatMap { id in
            [C.bankA, C.bankB].map { EligibilityEngine.Question(fragment: id, bank: $0, amount: Money(minor: 150_000_00, .cny)) }
        } + [EligibilityEngine.Question(fragment: FragmentID(Hash(w0: 1, w1: 1, w2: 1, w3: 1)), bank: C.bankA, amount: Money(minor: 1, .cny))]
    }

    @Test func theSameQueryOnEveryNodeGivesByteIdenticalAnswers() throws {
        let story = try Self.story()
        let directory = TemporaryDirectory("eligibility")
        let nodes = try (0..<3).map { try Self.replay(story.chain, into: directory.file("node-\($0).sqlite")) }
        defer { nodes.forEach { $0.close() } }
        let questions = Self.questions(story.chain.state)
        #expect(questions.count == 15)   // 7 fragments × 2 banks + an unknown one
        let engine = EligibilityEngine(genesis: story.chain.consortium.genesis, suite: story.chain.consortium.suite)
        let asOf = AsOf(tip: story.chain.tip, utcOffsetMinutes: 480)
        let memory = try engine.evaluate(batch: questions, asOf: asOf, policy: Self.policy, state: story.chain.state,
                                         aggregates: story.chain.state, history: story.histories.last!)
        let expected = memory.map(\.canonicalBytes)
        for node in nodes {
            let service = try StoreEligibility(store: node)
            #expect(service.asOf == asOf)
            let batch = try service.answers(questions, policy: Self.policy)
            #expect(batch.map(\.canonicalBytes) == expected)
            // One at a time gives the same bytes as the batch.
            let singles = try questions.map { try service.answer($0, policy: Self.policy) }
            #expect(singles.map(\.canonicalBytes) == expected)
            service.close()
        }
        // The story exercises every outcome.
        #expect(memory.contains { $0.eligible })
        #expect(memory.contains { $0.result(.notFinanced)?.outcome == .fail })
        #expect(memory.contains { $0.result(.fragmentActive)?.outcome == .fail })
        #expect(memory.contains { $0.result(.debtorOverdue)?.outcome == .fail } || memory.contains { $0.result(.debtorOverdue)?.outcome == .warn })
        #expect(memory.contains { $0.result(.supplierConcentration)?.outcome == .fail })
    }

    @Test func evidenceIsByteIdenticalOnEveryNodeAndVerifiesOffline() throws {
        let story = try Self.story()
        let directory = TemporaryDirectory("eligibility-evidence")
        let nodes = try (0..<3).map { try Self.replay(story.chain, into: directory.file("node-\($0).sqlite")) }
        defer { nodes.forEach { $0.close() } }
        let consortium = story.chain.consortium
        let verifier = EvidenceVerifier(genesis: consortium.genesis, suite: consortium.suite)
        for id in story.chain.state.fragments.keys.sorted() {
            let memory = try EvidenceBuilder.build(fragment: id, asOf: story.chain.tip.height, genesis: consortium.genesis,
                                                   suite: consortium.suite, state: story.chain.state, history: story.histories.last!)
            for node in nodes {
                let service = try StoreEligibility(store: node)
                #expect(try service.evidence(for: id).canonicalBytes == memory.canonicalBytes)
                service.close()
            }
            let title = try verifier.verify(memory)
            #expect(title.fragment == id)
        }
    }

    @Test func answersAsOfAnOlderHeightReplayTheChain() throws {
        let story = try Self.story()
        let directory = TemporaryDirectory("eligibility-asof")
        let store = try Self.replay(story.chain, into: directory.file("ledger.sqlite"))
        defer { store.close() }
        let engine = EligibilityEngine(genesis: store.genesis, suite: store.suite)
        for height in [3, 9, Int(store.tip.height.value)] {
            let replayed = try ReplayedLedger(store: store, through: Height(UInt64(height)))
            #expect(replayed.state == story.states[height])
            let expectedAsOf = AsOf(tip: ChainTip(header: story.chain.blocks[height - 1].block.header, suite: store.suite), utcOffsetMinutes: 480)
            #expect(replayed.asOf == expectedAsOf)
            let questions = Self.questions(story.states[height])
            let fromStore = try engine.evaluate(batch: questions, asOf: replayed.asOf, policy: Self.policy, state: replayed.state,
                                                aggregates: replayed.state, history: replayed.history)
            let fromMemory = try engine.evaluate(batch: questions, asOf: expectedAsOf, policy: Self.policy, state: story.states[height],
                                                 aggregates: story.states[height], history: story.histories[height])
            #expect(fromStore.map(\.canonicalBytes) == fromMemory.map(\.canonicalBytes))
        }
        #expect(throws: StoreError.self) { try ReplayedLedger(store: store, through: store.tip.height.next) }
    }

    @Test func storeAggregatesEqualTheMemoryScan() throws {
        let story = try Self.story()
        let directory = TemporaryDirectory("eligibility-aggregates")
        let store = try Self.replay(story.chain, into: directory.file("ledger.sqlite"))
        defer { store.close() }
        let service = try StoreEligibility(store: store)
        defer { service.close() }
        let state = story.chain.state
        for bank in [C.bankA, C.bankB] {
            #expect(try service.financedExposure(bank: bank, debtor: C.core, currency: .cny) == state.financedExposure(bank: bank, debtor: C.core, currency: .cny))
            for supplier in [C.tier1, C.tier2, C.tier3] {
                #expect(try service.financedExposure(bank: bank, supplier: supplier, currency: .cny)
                        == state.financedExposure(bank: bank, supplier: supplier, currency: .cny))
            }
        }
        #expect(try service.financedExposure(bank: C.bankA, debtor: C.core, currency: .cny) == 200_000_00)
        for date in ["2026-01-01", "2026-01-25", "2026-01-26", "2026-12-31"] {
            let cutoff = BusinessDate(date)!
            #expect(try service.overdueBalance(debtor: C.core, currency: .cny, maturedBefore: cutoff)
                    == state.overdueBalance(debtor: C.core, currency: .cny, maturedBefore: cutoff))
        }
        #expect(try service.overdueBalance(debtor: C.core, currency: .cny, maturedBefore: BusinessDate("2026-01-28")!).overdue == 1_000_000_00)
        #expect(try service.fragmentCount() == state.fragments.count)
    }

    @Test func theGenesisIsReadFromTheLedgerFile() throws {
        let story = try Self.story()
        let directory = TemporaryDirectory("eligibility-genesis")
        let store = try Self.replay(story.chain, into: directory.file("ledger.sqlite"))
        store.close()
        #expect(try LedgerStore.genesis(inFile: directory.file("ledger.sqlite")) == story.chain.consortium.genesis)
    }
}
