import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerAPI
import LedgerCore
import LedgerNode

/// Open-loop load for the fault harness: transactions arrive at a fixed rate whatever the cluster
/// does (arrivals queue up per signer while it cannot commit). Each signer submits its next
/// transaction (a receivable proposal, its next nonce) once the previous one is settled, and
/// resubmits the same signed transaction to another validator until the API reports it committed
/// or refused, as a real client would; so one transaction may reach several validators, and the
/// ledger must still hold it once.
final class FaultLoad: @unchecked Sendable {
    enum Outcome: Equatable {
        case committed(Height)
        case refused(String)
    }

    struct Record {
        var id: Hash
        var signer: Int
        var nonce: UInt64
        var phase: Int
        var outcome: Outcome?
        var resolvedPhase: Int?
    }

    let cluster: FaultCluster
    let suite: any CryptoSuite
    let chainID: String
    let signers: [(member: MemberID, key: any SigningKey, creditCode: UnifiedSocialCreditCode)]
    let debtor: MemberID
    let debtorCreditCode: UnifiedSocialCreditCode
    private let lock = NSLock()
    private var backlog: [Int]
    private var nonces: [UInt64]
    private var inFlight = 0
    private var phase = 0
    private var paused = true
    private var stopped = false
    private var records: [Record] = []
    private var offered: [Int: Int] = [:]
    private var posts = 0
    private var tasks: [Task<Void, Never>] = []

    init(cluster: FaultCluster, signers count: Int) throws {
        self.cluster = cluster
        let genesis = try Genesisfile.load(cluster.path("genesis.json"))
        suite = genesis.1
        chainID = genesis.0.chainID
        var signers: [(MemberID, any SigningKey, UnifiedSocialCreditCode)] = []
        for number in 0..<count {
            signers.append((MemberID("load-\(number)")!, try FaultKeys.key("load-\(number)", suite: genesis.1), FaultKeys.creditCode("91320000", number)))
        }
        self.signers = signers
        debtor = "core-enterprise"
        debtorCreditCode = genesis.0.members.first { $0.id == "core-enterprise" }!.creditCode
        backlog = Array(repeating: 0, count: count)
        nonces = Array(repeating: 0, count: count)
    }

    // MARK: Control

    /// Starts the arrival clock (paused until `resume`) and one worker per signer.
    func start(rate: Double) {
        let arrivals = Task { [self] in
            var credit = 0.0, next = 0
            var last = Date()
            while !isStopped {
                try? await Task.sleep(for: .milliseconds(10))
                let now = Date()
                let elapsed = now.timeIntervalSince(last)
                last = now
                lock.withLock {
                    guard !paused else { credit = 0; return }
                    credit += elapsed * rate
                    while credit >= 1 {
                        credit -= 1
                        backlog[next % backlog.count] += 1
                        next += 1
                        offered[phase, default: 0] += 1
                    }
                }
            }
        }
        tasks.append(arrivals)
        for signer in signers.indices {
            tasks.append(Task { [self] in await work(signer) })
        }
    }

    var isStopped: Bool { lock.withLock { stopped } }

    func begin(phase number: Int) { lock.withLock { phase = number; paused = false } }
    func pause() { lock.withLock { paused = true } }

    func stop() async {
        lock.withLock { stopped = true; paused = true }
        for task in tasks { await task.value }
        tasks = []
    }

    /// Waits until every arrival so far is settled (committed or refused); false on timeout.
    func drain(seconds: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if lock.withLock({ inFlight == 0 && backlog.allSatisfy { $0 == 0 } }) { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    // MARK: Figures

    struct Figures {
        var offered = 0, committed = 0, refused = 0, unsettled = 0, posts = 0
        var refusals: [String] = []
    }

    func figures(phase number: Int) -> Figures {
        lock.withLock {
            var figures = Figures(offered: offered[number] ?? 0, posts: posts)
            for record in records where record.resolvedPhase == number {
                switch record.outcome {
                case .committed: figures.committed += 1
                case .refused(let reason): figures.refused += 1; figures.refusals.append(reason)
                case nil: break
                }
            }
            figures.unsettled = backlog.reduce(0, +) + inFlight
            return figures
        }
    }

    /// Every transaction the API reported committed, with the height it reported.
    func reportedCommitted() -> [(Hash, Height)] {
        lock.withLock { records.compactMap { record in if case .committed(let height) = record.outcome { (record.id, height) } else { nil } } }
    }

    var totalOffered: Int { lock.withLock { offered.values.reduce(0, +) } }

    // MARK: Workers

    private func work(_ signer: Int) async {
        while true {
            let nonce: UInt64? = lock.withLock {
                guard !stopped, backlog[signer] > 0 else { return nil }
                backlog[signer] -= 1
                inFlight += 1
                nonces[signer] += 1
                return nonces[signer]
            }
            guard let nonce else {
                if isStopped { return }
                try? await Task.sleep(for: .milliseconds(20))
                continue
            }
            guard let transaction = try? makeTransaction(signer: signer, nonce: nonce) else {
                lock.withLock { inFlight -= 1 }
                continue
            }
            let index = lock.withLock {
                records.append(Record(id: transaction.id, signer: signer, nonce: nonce, phase: phase))
                return records.count - 1
            }
            let outcome = await settle(transaction, signer: signer)
            lock.withLock {
                records[index].outcome = outcome
                records[index].resolvedPhase = outcome == nil ? nil : phase
                inFlight -= 1
            }
            if outcome == nil { return }
        }
    }

    private func makeTransaction(signer: Int, nonce: UInt64) throws -> SignedTransaction {
        let (member, key, creditCode) = signers[signer]
        let today = ValidatorNode.wallClock().businessDate(utcOffsetMinutes: 480)
        let face = Money(minor: Int64(10_000_00 + Int(nonce)), .cny)
        let invoice = Invoice(key: InvoiceKey(code: "F\(signer)", number: String(nonce))!, type: .vatSpecial, issueDate: today,
                              sellerTaxID: creditCode, buyerTaxID: debtorCreditCode, amountExcludingTax: face, amountIncludingTax: face,
                              documentHash: suite.hash(Array("fault/\(signer)/\(nonce)".utf8)))
        let terms = ReceivableTerms(debtor: debtor, creditor: member, face: face, issueDate: today, maturity: today.adding(days: 90), invoices: [invoice])
        return try SignedTransaction.sign(TransactionBody(chainID: chainID, signer: member, nonce: nonce, operation: .proposeReceivable(terms)),
                                          with: key, suite: suite)
    }

    /// Submits until the API says committed or refused; nil only when the load is stopped first.
    private func settle(_ transaction: SignedTransaction, signer: Int) async -> Outcome? {
        var attempt = 0
        var admissionRefusals = 0
        let body = (try? JSONEncoder().encode(SubmitRequest(transaction: transaction.wireBytes.hexString))) ?? Data()
        while !isStopped {
            let node = (signer + attempt) % cluster.nodes.count
            attempt += 1
            var request = URLRequest(url: cluster.url(node, "/v1/transactions?wait=true&timeout=5"))
            request.httpMethod = "POST"
            request.timeoutInterval = 15
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = body
            lock.withLock { posts += 1 }
            guard let (data, _) = try? await cluster.session.data(for: request) else {
                try? await Task.sleep(for: .milliseconds(300))
                continue
            }
            guard let view = try? JSONDecoder().decode(TransactionView.self, from: data) else {
                // An error body (a halted node, a full pool): try another validator.
                try? await Task.sleep(for: .milliseconds(300))
                continue
            }
            switch view.status {
            case "committed":
                if let height = view.height { return .committed(height) }
            case "rejected" where view.code == "replayed":
                // An earlier copy got in (sent to another validator before): find where.
                for other in cluster.nodes {
                    if let found = await lookUp(transaction.id, on: other), case .committed = found { return found }
                }
                try? await Task.sleep(for: .milliseconds(300))
            case "rejected" where view.height != nil:
                return .refused("\(view.code ?? "?") at height \(view.height!): \(view.message ?? "")")
            case "rejected":
                // Refused at admission by this validator; a lagging one may see older state.
                admissionRefusals += 1
                if admissionRefusals >= 8 { return .refused("\(view.code ?? "?") at admission: \(view.message ?? "")") }
                try? await Task.sleep(for: .milliseconds(300))
            default:
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        return nil
    }

    private func lookUp(_ id: Hash, on node: Int) async -> Outcome? {
        var request = URLRequest(url: cluster.url(node, "/v1/transactions/\(id.hex)"))
        request.timeoutInterval = 5
        guard let (data, _) = try? await cluster.session.data(for: request),
              let view = try? JSONDecoder().decode(TransactionView.self, from: data) else { return nil }
        if view.status == "committed", let height = view.height { return .committed(height) }
        return nil
    }
}
