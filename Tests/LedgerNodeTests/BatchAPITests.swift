import Foundation
import Hummingbird
import HummingbirdTesting
import LedgerAPI
import LedgerCore
import LedgerNode
import LedgerTestKit
import Testing

/// `POST /v1/transactions/batch`: many transactions per request, one result each, in order.
@Suite(.serialized) struct BatchAPITests {
    static func batchBody(_ items: [String]) -> ByteBuffer {
        let data = try! JSONEncoder().encode(BatchSubmitRequest(transactions: items))
        return ByteBuffer(bytes: data)
    }

    static func registration(_ factory: inout TransactionFactory, _ name: String) -> SignedTransaction {
        let key = TestConsortium.key(for: "batch-\(name)", suite: factory.consortium.suite)
        let member = Member(id: MemberID("batch-\(name)")!, legalName: "Batch \(name) Ltd", creditCode: TestConsortium.creditCode(for: "batch-\(name)"),
                            roles: [.supplier], publicKey: key.publicKey)
        return factory.make(TestConsortium.operatorID, .registerMember(member))
    }

    @Test func aBatchIsAdmittedInOrderWithOneResultPerTransaction() async throws {
        try await APITests.withAPI { client, cluster in
            var factory = cluster.factory
            // Consecutive nonces of one signer in one batch, a forgery, and two that do not decode.
            let first = Self.registration(&factory, "a")
            let second = Self.registration(&factory, "b")
            let forged = factory.forge(TestConsortium.operatorID, .setMemberStatus(member: TestConsortium.bankB, status: .blacklisted, reason: "x"),
                                       nonce: 50, key: TestConsortium.key(for: "not-the-operator", suite: cluster.consortium.suite))
            let items = [first.wireBytes.hexString, "zz", second.wireBytes.hexString, forged.wireBytes.hexString, "00ff"]
            try await client.execute(uri: "/v1/transactions/batch", method: .post, body: Self.batchBody(items)) { response in
                #expect(response.status == .ok, "\(String(buffer: response.body))")
                let results = try JSONDecoder().decode(BatchSubmitResponse.self, from: Data(buffer: response.body)).results
                #expect(results.count == 5)
                guard results.count == 5 else { return }
                #expect(results[0] == BatchSubmitResult(id: first.id, accepted: true))
                #expect(results[1].id == nil && !results[1].accepted && results[1].code == "malformedTransaction")
                #expect(results[2] == BatchSubmitResult(id: second.id, accepted: true))
                #expect(results[3].id == forged.id && !results[3].accepted && results[3].code == "badSignature")
                #expect(results[3].message?.isEmpty == false)
                #expect(results[4].id == nil && results[4].code == "malformedTransaction")
                // An undecodable transaction's id is an explicit null, as the contract says.
                let raw = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                let entries = raw?["results"] as? [[String: Any]]
                #expect(entries?[1]["id"] is NSNull)
            }
            try await cluster.waitUntilEveryoneCommitted(second.id)
            // The same batch again: already committed, refused as replayed.
            try await client.execute(uri: "/v1/transactions/batch", method: .post, body: Self.batchBody([first.wireBytes.hexString])) { response in
                let results = try JSONDecoder().decode(BatchSubmitResponse.self, from: Data(buffer: response.body)).results
                #expect(results.first?.accepted == false && results.first?.code == "replayed")
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                func value(_ name: String) -> Int? {
                    text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Int($0.split(separator: " ")[1]) }
                }
                #expect((value("scf_committed_transactions_total") ?? 0) >= 2)
                #expect((value("scf_blocks_committed_total") ?? 0) >= 1)
                #expect((value("scf_fsyncs_total") ?? 0) >= (value("scf_blocks_committed_total") ?? 0))
                // The node that admitted them checked the submitted signatures (the forgery's too).
                #expect((value("scf_client_signature_checks_total") ?? 0) >= 2)
                // Where a block's time goes: the queue's busy time, and the two flushed writes.
                func seconds(_ name: String) -> Double? {
                    text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
                }
                #expect((seconds("scf_queue_busy_seconds_total") ?? 0) > 0)
                #expect((value("scf_block_stores_total") ?? 0) >= 1)
                #expect((seconds("scf_block_store_seconds_total") ?? 0) > 0)
                #expect((value("scf_replica_state_saves_total") ?? 0) >= 1)
                #expect((seconds("scf_replica_state_save_seconds_total") ?? 0) > 0)
                // The CPU those checks took (an Ed25519 check is tens of microseconds, never a second).
                let checkSeconds = seconds("scf_client_signature_check_seconds_total") ?? 0
                #expect(checkSeconds > 0 && checkSeconds < Double(value("scf_client_signature_checks_total") ?? 0))
            }
        }
    }

    @Test func tooManyOrMalformedIsRefusedWhole() async throws {
        try await APITests.withAPI { client, _ in
            let tooMany = Array(repeating: "00", count: LedgerAPI.maxBatchTransactions + 1)
            try await client.execute(uri: "/v1/transactions/batch", method: .post, body: Self.batchBody(tooMany)) { response in
                #expect(response.status == .contentTooLarge)
                #expect(String(buffer: response.body).contains("tooManyTransactions"))
            }
            try await client.execute(uri: "/v1/transactions/batch", method: .post, body: ByteBuffer(string: #"{"transaction": "00"}"#)) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("malformedJSON"))
            }
            try await client.execute(uri: "/v1/transactions/batch", method: .post, body: Self.batchBody([])) { response in
                #expect(response.status == .ok)
                let results = try JSONDecoder().decode(BatchSubmitResponse.self, from: Data(buffer: response.body)).results
                #expect(results.isEmpty)
            }
        }
    }
}
