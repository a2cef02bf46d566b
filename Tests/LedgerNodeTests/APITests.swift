import Foundation
import Hummingbird
import HummingbirdTesting
import LedgerAPI
import LedgerCore
import LedgerNode
import LedgerTestKit
import Testing

/// Every endpoint of the client API, against a 4-node in-process cluster (node 0 serves HTTP).
@Suite(.serialized) struct APITests {
    static func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(buffer: response.body))
    }

    static func body(_ transaction: SignedTransaction) -> ByteBuffer {
        ByteBuffer(string: #"{"transaction": "\#(transaction.wireBytes.hexString)"}"#)
    }

    /// Runs `test` with a cluster whose node 0 serves the API.
    static func withAPI(_ test: @Sendable (any TestClientProtocol, TestCluster) async throws -> Void) async throws {
        let cluster = try TestCluster()
        defer { cluster.cleanUp() }
        let api = LedgerAPI(node: cluster.node(0), peersConnected: { ["node-1", "node-2", "node-3"] })
        let app = Application(router: api.router())
        try await app.test(.router) { client in try await test(client, cluster) }
    }

    @Test func healthStatusOpenAPIAndMetrics() async throws {
        try await Self.withAPI { client, _ in
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/status", method: .get) { response in
                #expect(response.status == .ok)
                let status = try Self.decode(StatusView.self, response)
                #expect(status.chainID == "scf-test" && status.validator == "node-0" && status.peersConnected.count == 3)
            }
            try await client.execute(uri: "/openapi.json", method: .get) { response in
                let document = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                let paths = (document?["paths"] as? [String: Any]) ?? [:]
                for path in ["/health", "/metrics", "/v1/status", "/v1/transactions", "/v1/transactions/{id}", "/v1/receivables",
                             "/v1/receivables/{id}", "/v1/fragments", "/v1/fragments/{id}", "/v1/blocks/{height}",
                             "/v1/blocks/{height}/proofs/{id}", "/v1/eligibility", "/v1/invoices", "/v1/transactions/batch"] {
                    #expect(paths[path] != nil, "the OpenAPI document does not describe \(path)")
                }
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(String(buffer: response.body).contains("scf_block_height"))
            }
        }
    }

    @Test func submitWaitThenQueryEverything() async throws {
        try await Self.withAPI { client, cluster in
            var factory = cluster.factory
            let consortium = cluster.consortium
            let terms = consortium.terms(face: 500_000_00, invoiceNumber: "77", issue: "2026-01-02", maturity: "2027-12-31")
            let proposal = factory.make(TestConsortium.tier1, .proposeReceivable(terms))
            try await client.execute(uri: "/v1/transactions?wait=true&timeout=60", method: .post, body: Self.body(proposal)) { response in
                #expect(response.status == .ok, "\(String(buffer: response.body))")
                let view = try Self.decode(TransactionView.self, response)
                #expect(view.status == "committed" && view.kind == "propose" && view.signer == TestConsortium.tier1)
            }
            let root = ReceivableID(proposal.id)
            let confirm = factory.make(TestConsortium.core, .confirmReceivable(root))
            try await client.execute(uri: "/v1/transactions?wait=true&timeout=60", method: .post, body: Self.body(confirm)) { #expect($0.status == .ok) }
            let first = FragmentID.initial(of: root, suite: consortium.suite)
            let split = factory.make(TestConsortium.tier1, .transfer(fragment: first, to: TestConsortium.tier2, amount: 100_000_00))
            try await client.execute(uri: "/v1/transactions?wait=true&timeout=60", method: .post, body: Self.body(split)) { #expect($0.status == .ok) }
            // A transaction that breaks a rule is refused at admission, with the rule's code.
            let tooMuch = factory.make(TestConsortium.tier1, .transfer(fragment: first, to: TestConsortium.tier2, amount: 1))
            try await client.execute(uri: "/v1/transactions?wait=true&timeout=60", method: .post, body: Self.body(tooMuch)) { response in
                #expect(response.status == .unprocessableContent)
                let view = try Self.decode(TransactionView.self, response)
                #expect(view.status == "rejected" && view.code == "fragmentClosed" && view.height == nil)
            }
            try await client.execute(uri: "/v1/transactions/\(split.id.hex)", method: .get) { response in
                let decoded = try Self.decode(TransactionView.self, response)
                #expect(decoded.status == "committed")
            }
            try await client.execute(uri: "/v1/receivables/\(root.hash.hex)", method: .get) { response in
                #expect(response.status == .ok)
                let detail = try Self.decode(ReceivableDetail.self, response)
                #expect(detail.receivable.status == "active" && detail.fragments.count == 3)
                #expect(detail.history.map(\.kind) == ["propose", "confirm", "transfer"])
            }
            let toTier2 = FragmentID.child(of: first, index: 0, suite: consortium.suite)
            try await client.execute(uri: "/v1/fragments/\(toTier2.hash.hex)", method: .get) { response in
                let detail = try Self.decode(FragmentDetail.self, response)
                #expect(detail.provenance.map(\.fragment.generation) == [1, 0])
                #expect(detail.provenance.first?.createdBy?.signer == TestConsortium.tier1)
            }
            try await client.execute(uri: "/v1/fragments?holder=tier2-supplier&state=active", method: .get) { response in
                let decoded = try Self.decode([FragmentView].self, response)
                #expect(decoded.map(\.id) == [toTier2])
            }
            try await client.execute(uri: "/v1/receivables?debtor=core-enterprise", method: .get) { response in
                let decoded = try Self.decode([RootView].self, response)
                #expect(decoded.map(\.id) == [root])
            }
            try await client.execute(uri: "/v1/receivables?maturingFrom=2027-12-01&maturingTo=2027-12-31", method: .get) { response in
                let decoded = try Self.decode([RootView].self, response)
                #expect(decoded.count == 1)
            }
            try await client.execute(uri: "/v1/invoices?key=3100261130/77", method: .get) { response in
                #expect(response.status == .ok, "\(String(buffer: response.body))")
                let invoices = try Self.decode([InvoiceView].self, response)
                #expect(invoices.first?.boundRoot == root && invoices.first?.status == "normal")
                #expect(invoices.first?.attestations.map(\.source) == ["debtor-confirmation"])
            }
            try await client.execute(uri: "/v1/invoices?seller=tier1-supplier", method: .get) { response in
                let decoded = try Self.decode([InvoiceView].self, response)
                #expect(decoded.count == 1)
            }
            try await client.execute(uri: "/v1/invoices?key=3100261130/99999", method: .get) { #expect($0.status == .notFound) }
            let height = try #require(try cluster.node(0).store.transaction(id: split.id)?.height)
            try await client.execute(uri: "/v1/blocks/\(height.value)", method: .get) { response in
                let block = try Self.decode(BlockView.self, response)
                #expect(block.transactions.contains(split.id))
                try block.certificate.verify(validators: consortium.validatorSet, chainID: consortium.genesis.chainID, suite: consortium.suite)
            }
            try await client.execute(uri: "/v1/blocks/\(height.value)/proofs/\(split.id.hex)", method: .get) { response in
                let proof = try Self.decode(InclusionProofView.self, response)
                let leaf = consortium.suite.leafHash([UInt8](hex: proof.transactionBytes)!)
                #expect(proof.transactionProof.verifies(leaf: leaf, root: proof.header.transactionsRoot, suite: consortium.suite))
                #expect(proof.receiptProof.verifies(leaf: proof.receipt.merkleLeaf(suite: consortium.suite), root: proof.header.resultsRoot,
                                                    suite: consortium.suite))
                #expect(proof.receipt.isCommitted)
            }
        }
    }

    /// `GET /v1/blocks/:height?wait=true` answers when the block commits (a long poll), and 404
    /// when the timeout passes first.
    @Test func aBlockCanBeWaitedFor() async throws {
        try await Self.withAPI { client, cluster in
            var factory = cluster.factory
            let next = cluster.node(0).store.tip.height.next
            let started = ContinuousClock.now
            try await client.execute(uri: "/v1/blocks/\(next.value + 50)?wait=true&timeout=0.3", method: .get) { response in
                #expect(response.status == .notFound)
            }
            #expect(ContinuousClock.now - started >= .milliseconds(290), "answered before the timeout")
            let terms = cluster.consortium.terms(face: 1_000_00, invoiceNumber: "88", issue: "2026-01-02", maturity: "2027-06-30")
            let proposal = factory.make(TestConsortium.tier1, .proposeReceivable(terms))
            async let waited: BlockView = client.execute(uri: "/v1/blocks/\(next.value)?wait=true&timeout=60", method: .get) { response in
                #expect(response.status == .ok)
                return try Self.decode(BlockView.self, response)
            }
            try await Task.sleep(for: .milliseconds(100))
            try await client.execute(uri: "/v1/transactions", method: .post, body: Self.body(proposal)) { #expect($0.status == .accepted) }
            let block = try await waited
            #expect(block.height == next && block.transactions == [proposal.id])
        }
    }

    @Test func badRequestsGetA4xxWithAReason() async throws {
        try await Self.withAPI { client, cluster in
            var factory = cluster.factory
            func expectError(_ uri: String, _ status: HTTPResponse.Status, _ code: String,
                             method: HTTPRequest.Method = .get, body: ByteBuffer? = nil) async throws {
                try await client.execute(uri: uri, method: method, body: body) { response in
                    #expect(response.status == status, "\(uri): \(String(buffer: response.body))")
                    let error = try Self.decode(ErrorBody.self, response)
                    #expect(error.error.code == code && !error.error.message.isEmpty)
                }
            }
            try await expectError("/v1/transactions", .badRequest, "malformedJSON", method: .post, body: ByteBuffer(string: "{not json"))
            try await expectError("/v1/transactions", .badRequest, "malformedTransaction", method: .post, body: ByteBuffer(string: #"{"transaction": "zz"}"#))
            try await expectError("/v1/transactions", .badRequest, "malformedTransaction", method: .post, body: ByteBuffer(string: #"{"transaction": "00ff"}"#))
            try await expectError("/v1/receivables/\(Hash.zero.hex)", .notFound, "unknownReceivable")
            try await expectError("/v1/fragments/\(Hash.zero.hex)", .notFound, "unknownFragment")
            try await expectError("/v1/receivables/xyz", .badRequest, "badId")
            try await expectError("/v1/blocks/0", .badRequest, "badHeight")
            try await expectError("/v1/blocks/999999", .notFound, "unknownBlock")
            try await expectError("/v1/fragments", .badRequest, "badQuery")
            try await expectError("/v1/fragments?state=shiny", .badRequest, "badQuery")
            try await expectError("/v1/receivables?debtor=Not%20An%20Id", .badRequest, "badQuery")

            // A bad signature is refused at the door and changes nothing.
            let stranger = TestConsortium.key(for: "stranger", suite: cluster.consortium.suite)
            let forged = factory.forge(TestConsortium.core, .withdrawReceivable(ReceivableID(.zero)), nonce: 1, key: stranger)
            try await client.execute(uri: "/v1/transactions", method: .post, body: Self.body(forged)) { response in
                #expect(response.status == .unprocessableContent)
                let decoded = try Self.decode(TransactionView.self, response)
                #expect(decoded.code == "badSignature")
            }
            // A replayed transaction is refused with its own status.
            let registration = factory.make(TestConsortium.operatorID, .setMemberStatus(member: TestConsortium.tier3, status: .suspended, reason: "KYC"))
            try await client.execute(uri: "/v1/transactions?wait=true&timeout=60", method: .post, body: Self.body(registration)) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/transactions", method: .post, body: Self.body(registration)) { response in
                #expect(response.status == .conflict)
                let decoded = try Self.decode(TransactionView.self, response)
                #expect(decoded.code == "replayed")
            }
            try await client.execute(uri: "/v1/transactions/\(Hash.zero.hex)", method: .get) { response in
                let decoded = try Self.decode(TransactionView.self, response)
                #expect(decoded.status == "unknown")
            }
        }
    }
}

@Suite(.serialized) struct EligibilityAPITests {
    @Test func theSameQuestionGetsByteIdenticalAnswersFromEveryNode() async throws {
        var cluster = try TestCluster()
        defer { cluster.cleanUp() }
        let consortium = cluster.consortium
        let terms = consortium.terms(face: 200_000_00, invoiceNumber: "901", issue: "2026-01-02", maturity: "2027-12-31")
        let proposal = cluster.factory.make(TestConsortium.tier1, .proposeReceivable(terms))
        #expect(await cluster.node(0).submit(proposal) == nil)
        try await cluster.waitUntilEveryoneCommitted(proposal.id)
        let root = ReceivableID(proposal.id)
        let confirm = cluster.factory.make(TestConsortium.core, .confirmReceivable(root))
        #expect(await cluster.node(1).submit(confirm) == nil)
        try await cluster.waitUntilEveryoneCommitted(confirm.id)
        let height = cluster.running.map { $0.nodeStatus.height }.max()!
        for node in cluster.running { try await cluster.waitForHeight(node, atLeast: height) }

        let fragment = FragmentID.initial(of: root, suite: consortium.suite)
        let question = EligibilityRequest(fragment: fragment.hash, bank: "bank-a", amount: "150000.00", currency: "CNY")
        let body = ByteBuffer(bytes: try JSONEncoder().encode(question))
        var answers: [Data] = []
        for node in cluster.running {
            let app = Application(router: LedgerAPI(node: node).router())
            let answer = try await app.test(.router) { client in
                try await client.execute(uri: "/v1/eligibility", method: .post, body: body) { response in
                    #expect(response.status == .ok, "\(String(buffer: response.body))")
                    return Data(buffer: response.body)
                }
            }
            answers.append(answer)
        }
        #expect(answers.count == 4 && Set(answers).count == 1, "the four nodes answered differently")
        let answer = try JSONSerialization.jsonObject(with: answers[0]) as? [String: Any]
        #expect(answer?["eligible"] as? Bool == true)

        // A batch, and a bad request.
        let app = Application(router: LedgerAPI(node: cluster.node(2)).router())
        try await app.test(.router) { client in
            let batch = ByteBuffer(bytes: try JSONEncoder().encode(EligibilityRequest(fragments: [fragment.hash, Hash.zero], bank: "bank-a")))
            try await client.execute(uri: "/v1/eligibility", method: .post, body: batch) { response in
                #expect(response.status == .ok)
                let list = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [[String: Any]]
                #expect(list?.count == 2 && list?[0]["eligible"] as? Bool == true && list?[1]["eligible"] as? Bool == false)
            }
            try await client.execute(uri: "/v1/eligibility", method: .post, body: ByteBuffer(string: #"{"bank": "bank-a"}"#)) { response in
                #expect(response.status == .badRequest)
            }
        }
    }
}
