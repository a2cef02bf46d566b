import Foundation
import Hummingbird
import HummingbirdTesting
import LedgerAPI
import LedgerCore
import LedgerNode
import LedgerTestKit
import Testing

/// Access to a node: the API's write endpoint takes only transactions signed by a registered,
/// active member's own key, and there is nothing else to write to. The process-level checks (key
/// file permissions, where the API binds, no secret in any log line) are in
/// `KeyAccessProcessTests` below, which runs `scf cluster-check --security`.
@Suite(.serialized) struct KeyAccessTests {
    @Test func onlyTransactionsSignedByRegisteredActiveMembersAreAccepted() async throws {
        try await APITests.withAPI { client, cluster in
            var factory = cluster.factory
            func expectRefused(_ transaction: SignedTransaction, _ code: String) async throws {
                try await client.execute(uri: "/v1/transactions?wait=true&timeout=30", method: .post, body: APITests.body(transaction)) { response in
                    #expect((400..<500).contains(response.status.code), "\(code): \(response.status) \(String(buffer: response.body))")
                    let view = try APITests.decode(TransactionView.self, response)
                    #expect(view.status == "rejected" && view.code == code, "\(String(buffer: response.body))")
                    #expect(view.message?.isEmpty == false)
                }
                #expect(cluster.node(0).status(of: transaction.id) != .pending)
            }
            // Someone who is not a member, signing with their own key.
            let outsiderKey = TestConsortium.key(for: "outsider", suite: cluster.consortium.suite)
            let outsider = factory.forge("outsider-ltd", .withdrawReceivable(ReceivableID(.zero)), nonce: 1, key: outsiderKey)
            try await expectRefused(outsider, "unknownMember")
            // A member's name with somebody else's key.
            let impostor = factory.forge(TestConsortium.operatorID, .setMemberStatus(member: TestConsortium.bankB, status: .blacklisted, reason: "x"),
                                         nonce: 1, key: outsiderKey)
            try await expectRefused(impostor, "badSignature")
            // A member the operator suspended can no longer sign (except settlement).
            let suspend = factory.make(TestConsortium.operatorID, .setMemberStatus(member: TestConsortium.tier3, status: .suspended, reason: "KYC review"))
            try await client.execute(uri: "/v1/transactions?wait=true&timeout=60", method: .post, body: APITests.body(suspend)) { #expect($0.status == .ok) }
            let bySuspended = factory.make(TestConsortium.tier3, .proposeReceivable(cluster.consortium.terms(
                creditor: TestConsortium.tier3, face: 1_000_00, invoiceNumber: "S1", issue: "2026-01-02", maturity: "2027-12-31")))
            try await expectRefused(bySuspended, "signerNotActive")
            // Nothing the impostor or outsider sent reached the ledger.
            #expect(try cluster.node(0).store.member(TestConsortium.bankB)?.status == .active)
        }
    }

    @Test func thereAreNoAdminEndpoints() async throws {
        try await APITests.withAPI { client, _ in
            // The only writes submit signed transactions (POST /v1/eligibility is a read-only question).
            for path in ["/admin", "/v1/admin", "/debug", "/debug/pprof", "/v1/config", "/v1/keys", "/v1/peers", "/v1/clock",
                         "/v1/clock-offset", "/clock-offset", "/v1/shutdown", "/shutdown", "/v1/validators", "/v1/members",
                         "/v1/state", "/v1/replica", "/v1/resync", "/v1/transactions/\(Hash.zero.hex)"] {
                for method: HTTPRequest.Method in [.post, .put, .delete, .patch] {
                    try await client.execute(uri: path, method: method, body: ByteBuffer(string: "{}")) { response in
                        #expect(response.status == .notFound || response.status == .methodNotAllowed,
                                "\(method) \(path) answered \(response.status)")
                    }
                }
            }
            try await client.execute(uri: "/openapi.json", method: .get) { response in
                let document = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                let paths = (document?["paths"] as? [String: [String: Any]]) ?? [:]
                var writes: [String] = []
                for (path, operations) in paths {
                    for method in operations.keys where ["post", "put", "patch", "delete"].contains(method) { writes.append("\(method) \(path)") }
                }
                // Submitting signed transactions (one, or a batch of them) and asking the read-only
                // eligibility question; nothing else.
                let allowed: Set = ["post /v1/eligibility", "post /v1/transactions", "post /v1/transactions/batch"]
                #expect(writes.contains("post /v1/transactions") && Set(writes).isSubset(of: allowed), "write operations: \(writes.sorted())")
            }
        }
    }
}

/// Real `scf node start` processes: refuses key files others can read (consensus and TLS), binds
/// the API only where configured, and writes no private key material to its log.
@Suite struct KeyAccessProcessTests {
    @Test(.timeLimit(.minutes(5)))
    func keyFilesBindingAndLogsOnRealProcesses() throws {
        let (status, text) = try ProcessClusterTests.runClusterCheck(["--security"])
        #expect(status == 0, "scf cluster-check --security failed:\n\(text)")
        #expect(text.contains("security scenario passed"))
    }
}
