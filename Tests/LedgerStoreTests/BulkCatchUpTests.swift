import Foundation
import LedgerCore
@testable import LedgerStore
import LedgerTestKit
import Testing

/// A bulk catch-up's suspended read-model indexes (DECISIONS 45).
@Suite struct BulkCatchUpTests {
    let fixture = ChainFixture.shared
    var consortium: TestConsortium { fixture.consortium }

    /// The names and definitions of a data file's indexes that SQLite did not make itself.
    func indexes(_ path: String) throws -> [String: String] {
        let connection = try Connection(path: path, readOnly: true)
        let rows = try connection.statement("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
            .map { ($0.text(0), $0.text(1)) }
        return Dictionary(uniqueKeysWithValues: rows)
    }

    /// What the API's queries answer, for every party, holder, state and root of the fixture chain.
    func queryAnswers(_ store: LedgerStore) throws -> [String] {
        var answers: [String] = []
        let members = try store.members().map(\.id)
        for member in members {
            answers.append("\(try store.roots(debtor: member).map(\.id)) \(try store.roots(creditor: member, status: .active).map(\.id))")
            answers.append("\(try store.fragments(heldBy: member).map(\.id)) \(try store.financingRequests(bank: member).map(\.id))")
            answers.append("\(try store.transactions(signedBy: member).map(\.transaction.id))")
        }
        for root in fixture.state.roots.keys.sorted() {
            let fragments = try store.fragments(ofRoot: root)
            answers.append("\(fragments.map(\.id))")
            for fragment in fragments { answers.append("\(try store.financingRequests(fragment: fragment.id).map(\.id))") }
        }
        for state in FragmentState.allCases { answers.append("\(try store.fragments(in: state).map(\.id))") }
        for status in RootStatus.allCases { answers.append("\(try store.roots(status: status).map(\.id))") }
        let maturities = fixture.state.roots.values.map(\.terms.maturity).sorted()
        if let first = maturities.first, let last = maturities.last {
            let middle = maturities[maturities.count / 2]
            answers.append("\(try store.roots(maturingFrom: first, through: middle).map(\.id))")
            answers.append("\(try store.roots(maturingFrom: middle, through: last, status: .closed).map(\.id))")
        }
        let invoices = fixture.state.invoices.values.map(\.invoice)
        let codes = Dictionary(invoices.flatMap { [($0.sellerTaxID.rawValue, $0.sellerTaxID), ($0.buyerTaxID.rawValue, $0.buyerTaxID)] },
                               uniquingKeysWith: { first, _ in first })
        #expect(!codes.isEmpty)
        for (_, code) in codes.sorted(by: { $0.key < $1.key }) {
            answers.append("\(try store.invoices(sellerTaxID: code).map(\.invoice.key)) \(try store.invoices(buyerTaxID: code).map(\.invoice.key))")
        }
        return answers
    }

    /// The list the store drops and builds is exactly the set of indexes the migrations leave,
    /// less the transaction-id index that execution and admission read through.
    @Test func theReadModelIndexListIsWhatANewFileHas() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("new.sqlite")
        try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite).close()
        var expected = Dictionary(uniqueKeysWithValues: Schema.readModelIndexes.map { ($0.name, "CREATE INDEX \($0.name) ON \($0.columns)") })
        expected["index_transaction_on_idPrefix"] = #"CREATE INDEX index_transaction_on_idPrefix ON "transaction"(idPrefix)"#
        #expect(try indexes(path) == expected)
    }

    /// One index, led by the state, serves a holder's fragments (in given states or in any) and
    /// a state's, and each answers what filtering every fragment would (DECISIONS 56).
    @Test func fragmentQueriesGoThroughTheOneStateHolderIndex() throws {
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        defer { store.close() }
        let fragments = fixture.state.fragments.values.sorted { $0.id < $1.id }
        #expect(Set(fragments.map(\.state)).count > 2)
        for member in try store.members().map(\.id) {
            let held = fragments.filter { $0.holder == member }
            #expect(try store.fragments(heldBy: member).map(\.id) == held.map(\.id))
            #expect(try store.fragments(heldBy: member, in: [.active, .financed]).map(\.id)
                    == held.filter { $0.state == .active || $0.state == .financed }.map(\.id))
            #expect(try store.fragments(heldBy: member, in: []).isEmpty)
        }
        for state in FragmentState.allCases {
            #expect(try store.fragments(in: state).map(\.id) == fragments.filter { $0.state == state }.map(\.id))
        }
        let connection = try Connection(path: path, readOnly: true)
        for (condition, arguments) in [LedgerStore.heldByFilter("x", nil), LedgerStore.heldByFilter("x", [.locked]),
                                       ("state = ?", [.text(FragmentState.active.description)])] {
            let plan = try connection.statement("EXPLAIN QUERY PLAN SELECT record FROM fragment WHERE \(condition) ORDER BY id")
                .bind(arguments).map { $0.text(3) }
            #expect(plan.contains { $0.contains("index_fragment_on_state_holder") }, "\(condition): \(plan)")
        }
    }

    /// Catching up the whole chain with the indexes suspended leaves, once they are built again,
    /// exactly the file of appending one by one; meanwhile every query answers the same.
    @Test func aBulkCatchUpLeavesTheSameFileAndQueriesAnswerTheSameMeanwhile() throws {
        let directory = TemporaryDirectory()
        let source = fixture.copy(into: directory)
        let chain = try fixture.blocks(in: source)
        let reference = try LedgerStore.open(path: source, genesis: consortium.genesis, suite: consortium.suite)
        let expectedAnswers = try queryAnswers(reference)
        reference.close()

        let path = directory.file("bulk.sqlite")
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        #expect(try store.storedTransactionCount() == 0)
        try store.suspendReadModelIndexes()
        try store.suspendReadModelIndexes()   // no effect the second time
        #expect(store.readModelIndexesSuspended)
        #expect(try indexes(path).keys.sorted() == ["index_transaction_on_idPrefix"])
        let batches = stride(from: 0, to: chain.count, by: 7).map { Array(chain[$0..<min($0 + 7, chain.count)]) }
        let (stored, error) = store.appendCertified(batches: batches, executor: consortium.executor)
        #expect(error == nil, "\(String(describing: error))")
        #expect(stored.count == batches.count)
        #expect(try store.storedTransactionCount() == fixture.transactions)
        #expect(try queryAnswers(store) == expectedAnswers)

        try store.restoreReadModelIndexes()
        #expect(!store.readModelIndexesSuspended)
        #expect(try queryAnswers(store) == expectedAnswers)
        #expect(try store.pragma("integrity_check") == .text("ok"))   // every index holds exactly its table's rows
        store.close()
        #expect(try indexes(path) == indexes(source))
        #expect(try CatchUpTests().dump(path) == CatchUpTests().dump(source))
        let report = try LedgerVerifier().verify(path: path, genesis: consortium.genesis)
        #expect(report.isValid, "\(report.summary)")
    }

    /// A node that stops mid-way through a bulk catch-up (its store closed, or the process
    /// killed, before the indexes are built again) finds them built when it opens the file; a
    /// tool that opens the file (perhaps while the node runs) leaves them as they are.
    @Test func theNodesOpenBuildsTheIndexesAFileWasLeftWithout() throws {
        let directory = TemporaryDirectory()
        let source = fixture.copy(into: directory)
        let chain = try fixture.blocks(in: source)
        let path = directory.file("cut-short.sqlite")
        let store = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        try store.suspendReadModelIndexes()
        try store.appendCertified(Array(chain.prefix(20)), executor: consortium.executor)
        store.close()
        #expect(try indexes(path).count == 1)
        let tool = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite)
        tool.close()
        #expect(try indexes(path).count == 1)

        let reopened = try LedgerStore.open(path: path, genesis: consortium.genesis, suite: consortium.suite, buildingMissingIndexes: true)
        #expect(!reopened.readModelIndexesSuspended)
        #expect(try indexes(path) == indexes(source))
        try reopened.appendCertified(Array(chain.dropFirst(20)), executor: consortium.executor)
        reopened.close()
        let report = try LedgerVerifier().verify(path: path, genesis: consortium.genesis)
        #expect(report.isValid, "\(report.summary)")
    }
}
