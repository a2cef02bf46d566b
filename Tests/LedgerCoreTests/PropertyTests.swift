import LedgerCore
import LedgerTestKit
import Testing

/// SplitMix64: a small seeded generator so every run of a property test is reproducible.
struct SeededGenerator: RandomNumberGenerator {
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

/// Whole-ledger invariants, checked over every record (the executor checks touched records per block).
func checkGlobalInvariants(_ state: MemoryLedgerState) {
    var owner: [FragmentID: ReceivableID] = [:]
    for root in state.roots.values {
        if root.status == .active || root.status == .closed {
            var total = root.settled.value + root.writtenOff.value
            for id in root.liveFragments {
                #expect(owner.updateValue(root.id, forKey: id) == nil, "fragment \(id) is live in two roots")
                let fragment = state.fragments[id]!
                #expect(fragment.state.isLive)
                total += fragment.outstanding.value
            }
            #expect(total == root.terms.face.amount.value, "conservation broken for \(root.id)")
        }
        for key in root.invoiceKeys where root.status != .rejected && root.status != .withdrawn {
            #expect(state.invoices[key]?.boundRoot == root.id)
        }
    }
    for fragment in state.fragments.values where fragment.state.isLive {
        #expect(owner[fragment.id] == fragment.root, "live fragment \(fragment.id) missing from its root")
        if fragment.state == .financed {
            #expect(state.financingRequests[fragment.financingRequest!]?.status == .approved)
        }
    }
    var bound: [InvoiceKey: ReceivableID] = [:]
    for record in state.invoices.values {
        if let root = record.boundRoot { bound[record.invoice.key] = root }
    }
    #expect(Set(bound.keys).count == bound.count)
}

/// Picks a plausible operation from the current state. Most are valid; some break a rule on purpose.
struct RandomStory {
    var ledger: Ledger
    var rng: SeededGenerator
    var invoiceCounter = 0
    let suppliers: [MemberID] = [TestConsortium.tier1, TestConsortium.tier2, TestConsortium.tier3, "supplier-0", "supplier-1", "supplier-2"]
    let banks: [MemberID] = [TestConsortium.bankA, TestConsortium.bankB]

    init(seed: UInt64, suite: any CryptoSuite = Ed25519SHA256Suite()) {
        ledger = Ledger(suite: suite, extraSuppliers: 3)
        rng = SeededGenerator(seed: seed)
    }

    var liveFragments: [Fragment] {
        ledger.state.fragments.values.filter { $0.state.isLive }.sorted { $0.id < $1.id }
    }

    mutating func step() throws {
        let state = ledger.state
        let live = liveFragments
        let active = live.filter { $0.state == .active && !$0.frozen }
        switch Int.random(in: 0..<10, using: &rng) {
        case 0, 1:
            invoiceCounter += 1
            let creditor = suppliers.randomElement(using: &rng)!
            let face = Int64.random(in: 1...5_000_000, using: &rng)
            let today = BusinessDate(ledger.date)!
            let maturity = today.adding(days: Int32.random(in: 20...120, using: &rng))
            let terms = ledger.consortium.terms(creditor: creditor, face: face, invoiceNumber: String(invoiceCounter),
                                                issue: ledger.date, maturity: maturity.description)
            let proposal = ledger.tx.make(creditor, .proposeReceivable(terms))
            try ledger.commit([proposal])
            if Int.random(in: 0..<5, using: &rng) > 0 {
                try ledger.submit(TestConsortium.core, .confirmReceivable(ReceivableID(proposal.id)))
            }
        case 2, 3, 4:
            guard let fragment = active.randomElement(using: &rng) else { return }
            let to = (suppliers + banks).randomElement(using: &rng)!
            let amount = Int64.random(in: 1...(fragment.outstanding.value + 2), using: &rng)
            try ledger.submit(fragment.holder, .transfer(fragment: fragment.id, to: to, amount: MinorUnits(amount)))
        case 5:
            guard let fragment = active.randomElement(using: &rng) else { return }
            let amount = Int64.random(in: 1...fragment.outstanding.value, using: &rng)
            try ledger.submit(fragment.holder, .requestFinancing(fragment: fragment.id, bank: banks.randomElement(using: &rng)!,
                                                                 amount: Money(minor: amount, .cny)))
        case 6:
            let pending = state.financingRequests.values.filter { $0.status == .pending }.sorted { $0.id < $1.id }
            guard let request = pending.randomElement(using: &rng) else { return }
            if Bool.random(using: &rng) {
                try ledger.submit(request.bank, .approveFinancing(request: request.id, advance: request.requested.amount))
            } else {
                try ledger.submit(request.bank, .rejectFinancing(request: request.id, reason: "policy"))
            }
        case 7:
            guard let fragment = live.randomElement(using: &rng) else { return }
            if fragment.frozen {
                try ledger.submit(TestConsortium.regulator, .unfreeze(fragment: fragment.id, reason: "lifted"))
            } else {
                try ledger.submit(TestConsortium.operatorID, .freeze(fragment: fragment.id, reason: "review"))
            }
        case 8:
            // Time passes; the debtor pays some of what has matured.
            ledger.date = BusinessDate(ledger.date)!.adding(days: Int32.random(in: 1...15, using: &rng)).description
            let today = BusinessDate(ledger.date)!
            let roots = state.roots.values.filter { $0.status == .active && $0.terms.maturity <= today }.sorted { $0.id < $1.id }
            guard let root = roots.randomElement(using: &rng) else { return }
            let owed = root.terms.face.amount.value - root.settled.value - root.writtenOff.value
            guard owed > 0 else { return }
            try ledger.submit(TestConsortium.core, .settle(root: root.id, amount: MinorUnits(Int64.random(in: 1...owed, using: &rng)),
                                                           paymentReference: "PAY-\(invoiceCounter)"))
        default:
            try badTransactionChangesNothing()
        }
    }

    /// Submits a transaction that must be refused and checks state did not change (but the nonce).
    mutating func badTransactionChangesNothing() throws {
        let before = ledger.state
        let live = liveFragments
        var candidates: [(MemberID, LedgerOperation)] = []
        if let fragment = live.randomElement(using: &rng) {
            let stranger = suppliers.first { $0 != fragment.holder }!
            candidates.append((stranger, .transfer(fragment: fragment.id, to: TestConsortium.tier3, amount: 1)))
            candidates.append((fragment.holder, .transfer(fragment: fragment.id, to: TestConsortium.tier3,
                                                          amount: MinorUnits(fragment.outstanding.value + 1))))
            candidates.append((fragment.holder, .transfer(fragment: fragment.id, to: TestConsortium.core, amount: 1)))
            candidates.append((stranger, .requestFinancing(fragment: fragment.id, bank: TestConsortium.bankA, amount: Money(minor: 1, .cny))))
        }
        if let root = before.roots.values.sorted(by: { $0.id < $1.id }).randomElement(using: &rng) {
            candidates.append((TestConsortium.tier2, .settle(root: root.id, amount: 1, paymentReference: "X")))
            candidates.append((TestConsortium.bankA, .confirmReceivable(root.id)))
        }
        candidates.append((TestConsortium.tier1, .approveFinancing(request: Hash(w0: rng.next(), w1: 0, w2: 0, w3: 0), advance: 1)))
        candidates.append((TestConsortium.tier1, .freeze(fragment: FragmentID(.zero), reason: "x")))
        let (signer, operation) = candidates.randomElement(using: &rng)!
        let rejection = try ledger.submit(signer, operation)
        #expect(rejection != nil, "expected \(operation.kind) by \(signer) to be refused")
        var after = ledger.state
        after.nonces = before.nonces
        #expect(after == before, "a refused \(operation.kind) changed state")
    }
}

@Suite struct PropertyTests {
    @Test(arguments: allSuites, 0..<8)
    func randomValidSequencesKeepEveryInvariant(suite: CryptoSuiteID, seed: UInt64) throws {
        var story = RandomStory(seed: seed, suite: try CryptoSuites.make(suite))
        for _ in 0..<150 {
            try story.step()
            checkGlobalInvariants(story.ledger.state)
        }
        // The story must really exercise the lifecycle, not just be refused over and over.
        var committed: [String: Int] = [:]
        for (committedBlock, result) in zip(story.ledger.chain.blocks, story.ledger.chain.results) {
            for (transaction, receipt) in zip(committedBlock.block.transactions, result.receipts) where receipt.isCommitted {
                committed[transaction.body.operation.kind, default: 0] += 1
            }
        }
        for kind in ["propose", "confirm", "transfer", "request-financing", "settle"] {
            #expect(committed[kind, default: 0] > 0, "seed \(seed) committed no \(kind): \(committed)")
        }
    }

    @Test(arguments: allSuites)
    func sameBlocksGiveTheSameStateDigestOnAnotherNode(suite: CryptoSuiteID) throws {
        var story = RandomStory(seed: 99, suite: try CryptoSuites.make(suite))
        for _ in 0..<80 { try story.step() }
        // Replay the certified chain from genesis on a fresh executor and state: same digest at every height.
        let consortium = story.ledger.consortium
        var state = MemoryLedgerState(genesis: consortium.genesis)
        var tip = BlockExecutor.genesisTip(genesis: consortium.genesis, suite: consortium.suite)
        for committed in story.ledger.chain.blocks {
            try committed.certificate.verify(validators: consortium.validatorSet, chainID: consortium.genesis.chainID, suite: consortium.suite)
            let result = try consortium.executor.validate(committed.block, on: tip, state: state)
            state.apply(result.changes)
            tip = ChainTip(header: committed.block.header, suite: consortium.suite)
        }
        #expect(tip == story.ledger.chain.tip)
        #expect(state == story.ledger.state)
    }
}
