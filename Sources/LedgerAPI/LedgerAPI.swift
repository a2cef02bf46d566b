import Foundation
import Hummingbird
import LedgerCore
import LedgerNode
import LedgerStore

/// The client API of a node: HTTP/JSON, described by the OpenAPI document at `/openapi.json`.
///
/// Writes go through the node's admission checks (signature by a registered member, chain id,
/// nonce not yet used, pool capacity); reads come from the node's committed ledger. Every error
/// is a 4xx/5xx with `{"error": {"code", "message"}}`; a refused request changes nothing.
public struct LedgerAPI: Sendable {
    public let node: ValidatorNode
    /// Names of the validators this node is connected to (from the transport).
    public var peersConnected: @Sendable () -> [String]
    /// Largest request body accepted.
    public var maxBodyBytes = 4 << 20
    let eligibilityService = EligibilityService()

    public init(node: ValidatorNode, peersConnected: @escaping @Sendable () -> [String] = { [] }) {
        self.node = node
        self.peersConnected = peersConnected
    }

    /// Closes the connections the API opened itself (the eligibility service's), once it serves
    /// no more requests: before the node closes its store, so the store's close can fold the
    /// write-ahead log into the file.
    public func close() { eligibilityService.close() }

    var store: LedgerStore { node.store }
    var genesis: Genesis { node.configuration.genesis }
    var suite: any CryptoSuite { node.configuration.suite }

    /// The routes, for an `Application` or for tests.
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/health") { _, _ -> Response in
            if let halted = node.nodeStatus.halted {
                return try json(ErrorBody(error: .init(code: "halted", message: halted)), status: .serviceUnavailable)
            }
            return try json(["status": "ok"])
        }
        router.get("/openapi.json") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        }
        router.get("/metrics") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: metrics())))
        }
        router.get("/v1/status") { _, _ in try json(status()) }
        router.post("/v1/transactions") { request, context in try await submit(request, context: context) }
        router.post("/v1/transactions/batch") { request, context in try await submitBatch(request, context: context) }
        router.get("/v1/transactions/:id") { _, context in try json(transactionView(try hashParameter(context, "id"))) }
        router.get("/v1/receivables") { request, _ in try json(try listRoots(request)) }
        router.get("/v1/receivables/:id") { _, context in try json(try receivable(ReceivableID(try hashParameter(context, "id")))) }
        router.get("/v1/fragments") { request, _ in try json(try listFragments(request)) }
        router.get("/v1/fragments/:id") { _, context in try json(try fragment(FragmentID(try hashParameter(context, "id")))) }
        router.post("/v1/eligibility") { request, context in try await eligibility(request, context: context) }
        router.get("/v1/invoices") { request, _ in try json(try invoices(request)) }
        router.get("/v1/blocks/:height") { request, context in try await blockResponse(request, context: context) }
        router.get("/v1/blocks/:height/proofs/:id") { _, context in
            try json(try proof(height: try heightParameter(context), id: try hashParameter(context, "id")))
        }
        return router
    }

    // MARK: Handlers

    /// A request's whole body, refused with 413 `tooLarge` past `maxBodyBytes`.
    func body(of request: Request, hint: String = "") async throws -> Data {
        var request = request
        do {
            return Data(buffer: try await request.collectBody(upTo: maxBodyBytes))
        } catch {
            throw APIError(.contentTooLarge, "tooLarge", "the request body is larger than \(maxBodyBytes) bytes\(hint)")
        }
    }

    func submit(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let transaction = try RequestParsing.submission(try await body(of: request), suite: suite)
        if let rejection = await node.submit(transaction) {
            return try json(view(transaction, .rejected(height: nil, rejection)), status: rejection.code == .replayed ? .conflict : .unprocessableContent)
        }
        guard let timeout = waitTimeout(request) else { return try json(view(transaction, node.status(of: transaction.id)), status: .accepted) }
        let outcome = await node.waitForOutcome(of: transaction.id, timeout: timeout)
        switch outcome {
        case .committed: return try json(view(transaction, outcome), status: .ok)
        case .rejected: return try json(view(transaction, outcome), status: .unprocessableContent)
        default: return try json(view(transaction, outcome), status: .accepted)
        }
    }

    /// Most transactions one batch request may carry.
    public static let maxBatchTransactions = 1_000

    /// Many transactions in one request, admitted in request order (one signer's nonces may
    /// follow each other). Answers 200 with one result per transaction, in request order; a
    /// transaction that does not decode is refused alone (`malformedTransaction`), the others
    /// still go in. Waits for admission only: ask `/v1/transactions/{id}` for commitment.
    func submitBatch(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let entries = try RequestParsing.batch(try await body(of: request, hint: "; send fewer transactions per request"),
                                               suite: suite, limit: Self.maxBatchTransactions)
        var results: [BatchSubmitResult?] = Array(repeating: nil, count: entries.count)
        var decoded: [(index: Int, transaction: SignedTransaction)] = []
        for (index, entry) in entries.enumerated() {
            switch entry {
            case .success(let transaction): decoded.append((index, transaction))
            case .failure(let error): results[index] = BatchSubmitResult(id: nil, accepted: false, code: error.code, message: error.message)
            }
        }
        let answers = await node.submit(decoded.map(\.transaction))
        for ((index, transaction), rejection) in zip(decoded, answers) {
            if let rejection {
                results[index] = BatchSubmitResult(id: transaction.id, accepted: false, code: rejection.code.rawValue, message: rejection.message)
            } else {
                results[index] = BatchSubmitResult(id: transaction.id, accepted: true)
            }
        }
        return try json(BatchSubmitResponse(results: results.map { $0! }))
    }

    func view(_ transaction: SignedTransaction, _ status: ValidatorNode.TransactionStatus) -> TransactionView {
        var view = transactionView(transaction.id, status: status)
        view.signer = transaction.body.signer
        view.nonce = transaction.body.nonce
        view.kind = transaction.body.operation.kind
        return view
    }

    func transactionView(_ id: Hash, status given: ValidatorNode.TransactionStatus? = nil) -> TransactionView {
        let status = given ?? node.status(of: id)
        var view = TransactionView(id: id, status: "unknown")
        switch status {
        case .pending: view.status = "pending"
        case .committed(let height): view.status = "committed"; view.height = height
        case .rejected(let height, let rejection):
            view.status = "rejected"; view.height = height; view.code = rejection.code.rawValue; view.message = rejection.message
        case .unknown: view.status = "unknown"
        }
        if let stored = try? store.transaction(id: id) {
            view.signer = stored.transaction.body.signer
            view.nonce = stored.transaction.body.nonce
            view.kind = stored.transaction.body.operation.kind
        }
        return view
    }

    func status() -> StatusView {
        let status = node.nodeStatus
        let validators = genesis.validatorSet
        return StatusView(chainID: genesis.chainID, genesisHash: genesis.hash(suite: suite), cryptoSuite: suite.id.rawValue,
                          validator: validators.validator(at: node.configuration.me)?.name ?? "?", height: status.height,
                          headHash: status.headHash, view: status.view, primary: validators.validator(at: status.primary)?.name ?? "?",
                          isPrimary: status.isPrimary, pendingTransactions: status.pooled, catchingUp: status.catchingUp,
                          readModelIndexesSuspended: status.readModelIndexesSuspended, peersConnected: peersConnected(), halted: status.halted)
    }

    func receivable(_ id: ReceivableID) throws -> ReceivableDetail {
        guard let root = try store.root(id) else { throw APIError(.notFound, "unknownReceivable", "no receivable \(id) on this ledger") }
        let fragments = try store.fragments(ofRoot: id).sorted { ($0.generation, $0.id) < ($1.generation, $1.id) }
        var financing: [FinancingView] = []
        for fragment in fragments { financing += try store.financingRequests(fragment: fragment.id).map(FinancingView.init) }
        var ids = [id.hash] + [root.confirmationTx].compactMap { $0 } + fragments.map(\.createdBy)
        ids += financing.flatMap { [$0.id] + [$0.decisionTx].compactMap { $0 } }
        var seen = Set<Hash>()
        var history: [StoredTransaction] = []
        for transactionID in ids where seen.insert(transactionID).inserted {
            if let stored = try store.transaction(id: transactionID) { history.append(stored) }
        }
        for stored in try settlementsAndFreezes(of: root, fragments: fragments) where seen.insert(stored.transaction.id).inserted {
            history.append(stored)
        }
        history.sort { ($0.height, $0.position) < ($1.height, $1.position) }
        return ReceivableDetail(receivable: RootView(root), fragments: fragments.map { FragmentView($0, currency: root.currency) },
                                financing: financing, history: history.map(HistoryEntry.init))
    }

    /// Settlements are signed by the debtor, freezes by operators and regulators: find theirs that name this root or its fragments.
    func settlementsAndFreezes(of root: ReceivableRoot, fragments: [Fragment]) throws -> [StoredTransaction] {
        let fragmentIDs = Set(fragments.map(\.id))
        var out: [StoredTransaction] = []
        var signers = [root.debtor]
        signers += genesis.members.filter { $0.roles.contains(.operator_) || $0.roles.contains(.regulator) }.map(\.id)
        for holder in Set(fragments.map(\.holder)) { signers.append(holder) }
        for signer in Set(signers).sorted() {
            for stored in try store.transactions(signedBy: signer, limit: 10_000) {
                switch stored.transaction.body.operation {
                case .settle(let id, _, _) where id == root.id: out.append(stored)
                case .freeze(let id, _), .unfreeze(let id, _), .writeOff(let id, _):
                    if fragmentIDs.contains(id) { out.append(stored) }
                case .replaceInvoice(let id, _, _) where id == root.id: out.append(stored)
                default: break
                }
            }
        }
        return out
    }

    func fragment(_ id: FragmentID) throws -> FragmentDetail {
        guard let fragment = try store.fragment(id), let root = try store.root(fragment.root) else {
            throw APIError(.notFound, "unknownFragment", "no fragment \(id) on this ledger")
        }
        var steps: [ProvenanceStep] = []
        var current: Fragment? = fragment
        while let step = current {
            steps.append(ProvenanceStep(fragment: FragmentView(step, currency: root.currency),
                                        createdBy: try store.transaction(id: step.createdBy).map(HistoryEntry.init)))
            current = try step.parent.flatMap { try store.fragment($0) }
        }
        return FragmentDetail(fragment: FragmentView(fragment, currency: root.currency), provenance: steps, receivable: RootView(root))
    }

    func listFragments(_ request: Request) throws -> [FragmentView] {
        let query = request.uri.queryParameters
        let limit = min(query.get("limit").flatMap(Int.init) ?? 100, 1_000)
        let state = try query.get("state").map { text -> FragmentState in
            guard let state = FragmentState.allCases.first(where: { $0.description == text }) else {
                throw APIError(.badRequest, "badQuery", "state must be one of \(FragmentState.allCases.map(\.description).joined(separator: ", "))")
            }
            return state
        }
        let fragments: [Fragment]
        if let holder = query.get("holder") {
            guard let member = MemberID(holder) else { throw APIError(.badRequest, "badQuery", "\"\(holder)\" is not a member id") }
            fragments = try store.fragments(heldBy: member, in: state.map { [$0] }, limit: limit)
        } else if let state {
            fragments = try store.fragments(in: state, limit: limit)
        } else {
            throw APIError(.badRequest, "badQuery", "give holder= and/or state=")
        }
        var currencies: [ReceivableID: CurrencyCode] = [:]
        return try fragments.map { fragment in
            if currencies[fragment.root] == nil { currencies[fragment.root] = try store.root(fragment.root)?.currency ?? .cny }
            return FragmentView(fragment, currency: currencies[fragment.root]!)
        }
    }

    func listRoots(_ request: Request) throws -> [RootView] {
        let query = request.uri.queryParameters
        let limit = min(query.get("limit").flatMap(Int.init) ?? 100, 1_000)
        let status = try query.get("status").map { text -> RootStatus in
            guard let status = RootStatus.allCases.first(where: { $0.description == text }) else {
                throw APIError(.badRequest, "badQuery", "status must be one of \(RootStatus.allCases.map(\.description).joined(separator: ", "))")
            }
            return status
        }
        func member(_ name: String) throws -> MemberID? {
            guard let text = query.get(name) else { return nil }
            guard let id = MemberID(text) else { throw APIError(.badRequest, "badQuery", "\"\(text)\" is not a member id") }
            return id
        }
        func date(_ name: String) throws -> BusinessDate? {
            guard let text = query.get(name) else { return nil }
            guard let date = BusinessDate(text) else { throw APIError(.badRequest, "badQuery", "\(name) must be YYYY-MM-DD") }
            return date
        }
        let roots: [ReceivableRoot]
        if let debtor = try member("debtor") {
            roots = try store.roots(debtor: debtor, status: status, limit: limit)
        } else if let creditor = try member("creditor") {
            roots = try store.roots(creditor: creditor, status: status, limit: limit)
        } else if let from = try date("maturingFrom") {
            roots = try store.roots(maturingFrom: from, through: try date("maturingTo") ?? from.adding(days: 366), status: status, limit: limit)
        } else if let status {
            roots = try store.roots(status: status, limit: limit)
        } else {
            throw APIError(.badRequest, "badQuery", "give debtor=, creditor=, maturingFrom= (and maturingTo=) or status=")
        }
        return roots.map(RootView.init)
    }

    /// A committed block; with `?wait=true`, a block not committed yet is waited for (up to
    /// `timeout` seconds, 0.1-60, default 10) before the answer is 404.
    func blockResponse(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let height = try heightParameter(context)
        if let timeout = waitTimeout(request), store.tip.height < height {
            _ = await node.waitForHeight(height, timeout: timeout)
        }
        return try json(try block(height))
    }

    /// How long a request asks to wait: nil without `wait=true` (or `1`), else `timeout` seconds
    /// (0.1-60, default 10).
    func waitTimeout(_ request: Request) -> Duration? {
        let query = request.uri.queryParameters
        guard let wait = query.get("wait"), wait == "true" || wait == "1" else { return nil }
        let seconds = query.get("timeout").flatMap(Double.init).map { min(max($0, 0.1), 60) } ?? 10
        return .milliseconds(Int(seconds * 1000))
    }

    func block(_ height: Height) throws -> BlockView {
        guard let summary = try store.blockSummary(at: height) else {
            throw APIError(.notFound, "unknownBlock", "no block \(height); the head is \(store.tip.height)")
        }
        return BlockView(height: height, hash: summary.hash, header: summary.header,
                         transactions: summary.transactionIDs, certificate: summary.certificate)
    }

    func proof(height: Height, id: Hash) throws -> InclusionProofView {
        guard let committed = try store.block(at: height) else { throw APIError(.notFound, "unknownBlock", "no block \(height)") }
        guard let index = committed.block.transactions.firstIndex(where: { $0.id == id }),
              let stored = try store.transaction(id: id), stored.height == height else {
            throw APIError(.notFound, "unknownTransaction", "transaction \(id) is not in block \(height)")
        }
        let leaves = committed.block.transactions.map { $0.merkleLeaf(suite: suite) }
        let receipts = try store.transactions(inBlock: height).sorted { $0.position < $1.position }.map(\.receipt)
        guard let transactionProof = MerkleTree.proof(leaves: leaves, index: index, suite: suite),
              let receiptProof = MerkleTree.proof(leaves: receipts.map { $0.merkleLeaf(suite: suite) }, index: index, suite: suite) else {
            throw APIError(.internalServerError, "internal", "could not build the proof")
        }
        return InclusionProofView(transaction: id, height: height, blockHash: committed.certificate.blockHash, header: committed.block.header,
                                  certificate: committed.certificate, transactionBytes: committed.block.transactions[index].wireBytes.hexString,
                                  transactionProof: transactionProof, receipt: stored.receipt, receiptProof: receiptProof)
    }

    func metrics() -> String {
        let status = node.nodeStatus
        return """
        # HELP scf_block_height Height of the last committed block.
        # TYPE scf_block_height gauge
        scf_block_height \(status.height.value)
        # HELP scf_consensus_view Current PBFT view.
        # TYPE scf_consensus_view gauge
        scf_consensus_view \(status.view.value)
        # HELP scf_pending_transactions Transactions admitted and not yet committed.
        # TYPE scf_pending_transactions gauge
        scf_pending_transactions \(status.pooled)
        # HELP scf_peers_connected Validators this node is connected to.
        # TYPE scf_peers_connected gauge
        scf_peers_connected \(peersConnected().count)
        # HELP scf_dropped_peer_frames_total Frames from peers dropped because the node's queue was full.
        # TYPE scf_dropped_peer_frames_total counter
        scf_dropped_peer_frames_total \(node.droppedFrames.load(ordering: .relaxed))
        # HELP scf_misbehaviour_reports_total Misbehaviour by other validators this node detected and logged with evidence.
        # TYPE scf_misbehaviour_reports_total counter
        scf_misbehaviour_reports_total \(node.misbehaviourReports.load(ordering: .relaxed))
        # HELP scf_blocks_committed_total Blocks this node committed since it started.
        # TYPE scf_blocks_committed_total counter
        scf_blocks_committed_total \(node.blocksCommitted.load(ordering: .relaxed))
        # HELP scf_committed_transactions_total Transactions in the blocks this node committed since it started (refused ones included).
        # TYPE scf_committed_transactions_total counter
        scf_committed_transactions_total \(node.transactionsCommitted.load(ordering: .relaxed))
        # HELP scf_fsyncs_total Flushes to disk the node issued since it started: replica-state saves plus one per database commit (one per block agreed live, one per batch of up to 256 blocks or 8,000 transactions during catch-up); approximates SQLite's own (one WAL flush per commit, more at WAL checkpoints).
        # TYPE scf_fsyncs_total counter
        scf_fsyncs_total \(node.fsyncs)
        # HELP scf_client_signature_checks_total Client transaction signatures this node verified since it started (about one per transaction: a signature already checked is not checked again).
        # TYPE scf_client_signature_checks_total counter
        scf_client_signature_checks_total \(node.clientSignatureChecks.load(ordering: .relaxed))
        # HELP scf_client_signature_check_seconds_total CPU time the node's threads spent checking those signatures (each thread's own clock); with the count, what one check costs under load.
        # TYPE scf_client_signature_check_seconds_total counter
        scf_client_signature_check_seconds_total \(String(format: "%.6f", Double(node.clientSignatureCheckNanoseconds.load(ordering: .relaxed)) / 1e9))
        # HELP scf_queue_busy_seconds_total Time the node's serial queue spent on its inputs (peer messages, admitted transactions, timers, catch-up turns), computing, flushing to disk or waiting for a core; its rate is the share of the time the queue was busy.
        # TYPE scf_queue_busy_seconds_total counter
        scf_queue_busy_seconds_total \(String(format: "%.6f", node.queueBusy.seconds))
        # HELP scf_block_stores_total Blocks agreed live that this node wrote to its ledger (one database transaction with its flush each; catch-up batches not included).
        # TYPE scf_block_stores_total counter
        scf_block_stores_total \(node.blockStores.count)
        # HELP scf_block_store_seconds_total Time those writes took (the database transaction and its flush; executing the block not included).
        # TYPE scf_block_store_seconds_total counter
        scf_block_store_seconds_total \(String(format: "%.6f", node.blockStores.seconds))
        # HELP scf_replica_state_saves_total Saves of the consensus state that wrote to disk; each is flushed before anything that depends on it is sent.
        # TYPE scf_replica_state_saves_total counter
        scf_replica_state_saves_total \(node.stateSaves.count)
        # HELP scf_replica_state_save_seconds_total Time those saves took (encoding, write and flush).
        # TYPE scf_replica_state_save_seconds_total counter
        scf_replica_state_save_seconds_total \(String(format: "%.6f", node.stateSaves.seconds))
        # HELP scf_halted 1 if the node stopped on a storage failure.
        # TYPE scf_halted gauge
        scf_halted \(status.halted == nil ? 0 : 1)

        """
    }

    // MARK: Helpers

    func hashParameter(_ context: BasicRequestContext, _ name: String) throws -> Hash {
        let text = context.parameters.get(name) ?? ""
        guard let hash = Hash(hex: text) else { throw APIError(.badRequest, "badId", "\"\(text)\" is not a 64-character hex id") }
        return hash
    }

    func heightParameter(_ context: BasicRequestContext) throws -> Height {
        let text = context.parameters.get("height") ?? ""
        guard let value = UInt64(text), value > 0 else { throw APIError(.badRequest, "badHeight", "\"\(text)\" is not a block height (1 or more)") }
        return Height(value)
    }
}

/// A JSON response with sorted keys, so the same answer is the same bytes on every node.
func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let data = try encoder.encode(value)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// An API error: a status and `{"error": {"code", "message"}}`.
struct APIError: HTTPResponseError {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }
    func response(from request: Request, context: some RequestContext) throws -> Response {
        try json(ErrorBody(error: .init(code: code, message: message)), status: status)
    }
}
