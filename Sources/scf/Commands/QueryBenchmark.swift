import ArgumentParser
#if SCF_DEV_TOOLS
import Foundation
import LedgerCore
import LedgerStore
import LedgerTestKit

/// `scf query bench-eligibility` (hidden): builds a ledger of at least --fragments fragments and
/// reports eligibility query latency (p50/p99) for single questions and the time of a batch.
///
/// The ledger is real: signed transactions (test-consortium keys) in certified blocks appended
/// to SQLite through `LedgerStore.append`. Each receivable is proposed by a supplier, confirmed by
/// the core enterprise and split once to another supplier, so it has three fragments (the closed
/// parent and two live children); a few thousand children are financed by bank-a so the credit
/// line and concentration rules have exposure to add up. Blocks are executed on an in-memory copy
/// of the state (the executor trusts the generator's signatures) to keep the build quick.
struct BenchEligibility: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-eligibility",
        abstract: "Benchmark eligibility queries on a generated ledger of N fragments.",
        shouldDisplay: false
    )
    @Option(help: "The ledger file (built if missing or empty, reused otherwise).")
    var data: String
    @Option(help: "Build at least this many fragments (3 per receivable).")
    var fragments: Int = 1_000_000
    @Option(help: "Receivables per batch (each block holds proposals, confirmations and splits of three batches).")
    var perBatch: Int = 5_000
    @Option(help: "How many live fragments bank-a finances.")
    var financed: Int = 5_000
    @Option(help: "Single queries to time.")
    var singles: Int = 5_000
    @Option(help: "Questions in the batch.")
    var batchSize: Int = 10_000
    @Option(help: "Extra suppliers in the consortium.")
    var suppliers: Int = 200

    func run() async throws {
        try await reportingErrors {
            let consortium = Self.consortium(suppliers: suppliers)
            let store = try LedgerStore.open(path: data, genesis: consortium.genesis, suite: consortium.suite)
            defer { store.close() }
            let roots = (fragments + 2) / 3
            if store.tip.height == .genesis {
                try build(store: store, consortium: consortium, roots: roots)
            } else {
                print("reusing \(data) at block \(store.tip.height)")
            }
            try measure(store: store, consortium: consortium, roots: roots)
        }
    }

    static func consortium(suppliers: Int) -> TestConsortium {
        TestConsortium(extraSuppliers: suppliers, chainID: "scf-bench-eligibility",
                       consensus: ConsensusParameters(maxBlockTransactions: 100_000, maxBlockBytes: 256 << 20))
    }

    static func supplier(_ index: Int, of count: Int) -> MemberID { MemberID("supplier-\(index % count)")! }

    /// The three fragments of receivable `index` (its root id is its proposal's id).
    static func invoiceNumber(_ index: Int) -> String { "B\(index)" }

    func build(store: LedgerStore, consortium: TestConsortium, roots: Int) throws {
        let clock = ContinuousClock()
        let started = clock.now
        let executor = consortium.executor
        var state = MemoryLedgerState(genesis: consortium.genesis)
        var tip = store.tip
        var factory = TransactionFactory(consortium: consortium)
        var time = TestConsortium.genesisTime.adding(milliseconds: 9 * 3_600_000)
        var proposals: [[SignedTransaction]] = []
        var fragmentsBuilt = 0
        let certifier = ChainBuilder(consortium: consortium)
        let batches = (roots + perBatch - 1) / perBatch
        func commit(_ transactions: [SignedTransaction]) throws {
            time = time.adding(milliseconds: 1_000)
            let (block, result) = try executor.makeBlock(candidates: transactions, on: tip, timestamp: time, view: 0,
                                                         proposer: consortium.validatorSet.primary(of: 0), state: state,
                                                         signatures: .trusted)
            if let refused = result.receipts.first(where: { !$0.isCommitted }) {
                throw CLIError("the benchmark generator made a refused transaction: \(refused.rejection!)")
            }
            try store.append(CommittedBlock(block: block, certificate: certifier.certify(block)), result: result)
            state.apply(result.changes)
            tip = ChainTip(header: block.header, suite: consortium.suite)
        }
        // Block b: proposals of batch b, confirmations of batch b-1, splits of batch b-2.
        for step in 0..<(batches + 2) {
            var transactions: [SignedTransaction] = []
            if step < batches {
                var batch: [SignedTransaction] = []
                for index in (step * perBatch)..<min(roots, (step + 1) * perBatch) {
                    let creditor = Self.supplier(index, of: suppliers)
                    let terms = consortium.terms(creditor: creditor, face: 100_000_00 + Int64(index % 1000) * 100,
                                                 invoiceNumber: Self.invoiceNumber(index), issue: "2026-01-02",
                                                 maturity: BusinessDate("2026-03-01")!.adding(days: Int32(index % 240)).description)
                    batch.append(factory.make(creditor, .proposeReceivable(terms)))
                }
                proposals.append(batch)
                transactions += batch
            }
            if step >= 1, step - 1 < batches {
                for proposal in proposals[step - 1] {
                    transactions.append(factory.make(TestConsortium.core, .confirmReceivable(ReceivableID(proposal.id))))
                }
            }
            if step >= 2 {
                for (offset, proposal) in proposals[step - 2].enumerated() {
                    let index = (step - 2) * perBatch + offset
                    let holder = Self.supplier(index, of: suppliers), to = Self.supplier(index + 1, of: suppliers)
                    let first = FragmentID.initial(of: ReceivableID(proposal.id), suite: consortium.suite)
                    transactions.append(factory.make(holder, .transfer(fragment: first, to: to, amount: 40_000_00)))
                    fragmentsBuilt += 3
                }
                proposals[step - 2] = []
            }
            try commit(transactions)
            print("block \(tip.height): \(transactions.count) tx, \(fragmentsBuilt) fragments so far (\(Self.seconds(clock.now - started)) s)")
        }
        // Financings by bank-a: request (the holder of child 0) then approval.
        var requests: [SignedTransaction] = []
        for index in 0..<min(financed, roots) {
            let child = try Self.child(index, 0, store: store, consortium: consortium)
            let holder = Self.supplier(index + 1, of: suppliers)
            requests.append(factory.make(holder, .requestFinancing(fragment: child, bank: TestConsortium.bankA, amount: Money(minor: 30_000_00, .cny))))
        }
        if !requests.isEmpty {
            try commit(requests)
            try commit(requests.map { factory.make(TestConsortium.bankA, .approveFinancing(request: $0.id, advance: 30_000_00)) })
        }
        print("built \(fragmentsBuilt) fragments (\(roots) receivables, \(requests.count) financed) in \(tip.height) blocks, \(Self.seconds(clock.now - started)) s")
    }

    /// Child `index` of receivable number `n`: found through the root's invoice (the generator's numbering).
    static func child(_ n: Int, _ index: UInt8, store: LedgerStore, consortium: TestConsortium) throws -> FragmentID {
        guard let record = try store.invoice(InvoiceKey(code: "3100261130", number: invoiceNumber(n))!), let root = record.boundRoot else {
            throw CLIError("receivable \(n) is not in the benchmark ledger; delete the file and build it again")
        }
        return FragmentID.child(of: FragmentID.initial(of: root, suite: consortium.suite), index: index, suite: consortium.suite)
    }

    func measure(store: LedgerStore, consortium: TestConsortium, roots: Int) throws {
        let service = try StoreEligibility(store: store)
        defer { service.close() }
        let count = try service.fragmentCount()
        print("ledger: \(count) fragments, tip block \(store.tip.height)")
        let policy = EligibilityPolicy(bank: TestConsortium.bankA, currency: .cny, minDaysToMaturity: 10, maxTenorDays: 360,
                                       advanceRateBps: 9_000, discountRateBps: 450, dayCountBasis: 360,
                                       creditLines: [TestConsortium.core: MinorUnits(50_000_000_000_00)],
                                       defaultSupplierLimit: MinorUnits(1_000_000_000_00), excludeDebtorsWithOverdue: true)
        var generator = SplitMix(seed: 42)
        func question() throws -> EligibilityEngine.Question {
            let n = Int(generator.next() % UInt64(roots))
            let child = try Self.child(n, UInt8(generator.next() % 2), store: store, consortium: consortium)
            return EligibilityEngine.Question(fragment: child, bank: TestConsortium.bankA, amount: Money(minor: 10_000_00, .cny))
        }
        let clock = ContinuousClock()
        // Cold: the first question pays for the aggregates (bank exposure, debtor book) at this height.
        let first = try question()
        var started = clock.now
        let firstAnswer = try service.answer(first, policy: policy)
        let cold = clock.now - started
        print("cold first query (aggregates built for this height): \(Self.milliseconds(cold)) ms, eligible \(firstAnswer.eligible)")

        let questions = try (0..<singles).map { _ in try question() }
        var latencies: [Duration] = []
        latencies.reserveCapacity(questions.count)
        var eligible = 0
        for question in questions {
            started = clock.now
            let answer = try service.answer(question, policy: policy)
            latencies.append(clock.now - started)
            if answer.eligible { eligible += 1 }
        }
        latencies.sort()
        func percentile(_ p: Double) -> Duration { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        print("single: \(questions.count) queries, p50 \(Self.milliseconds(percentile(0.50))) ms, p99 \(Self.milliseconds(percentile(0.99))) ms, max \(Self.milliseconds(latencies.last!)) ms (\(eligible) eligible)")

        let batch = try (0..<batchSize).map { _ in try question() }
        var batchTimes: [Duration] = []
        for _ in 0..<3 {
            started = clock.now
            let answers = try service.answers(batch, policy: policy)
            batchTimes.append(clock.now - started)
            precondition(answers.count == batch.count)
        }
        print("batch of \(batch.count): \(batchTimes.map { "\(Self.milliseconds($0)) ms" }.joined(separator: ", ")) (3 runs)")

        started = clock.now
        let evidence = try service.evidence(for: first.fragment)
        let evidenceTime = clock.now - started
        started = clock.now
        _ = try EvidenceVerifier(genesis: consortium.genesis, suite: consortium.suite).verify(evidence)
        print("evidence for one fragment: built in \(Self.milliseconds(evidenceTime)) ms (\(evidence.canonicalBytes.count) bytes), verified offline in \(Self.milliseconds(clock.now - started)) ms")
    }

    static func seconds(_ duration: Duration) -> String { String(format: "%.1f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18) }
    static func milliseconds(_ duration: Duration) -> String {
        String(format: "%.3f", Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15)
    }
}

/// A tiny seeded generator (the benchmark must pick the same fragments every run).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
#else
struct BenchEligibility: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-eligibility", shouldDisplay: false)
    func run() async throws {
        throw ValidationError("this scf was built without SCF_DEV_TOOLS; the eligibility benchmark needs LedgerTestKit")
    }
}
#endif
