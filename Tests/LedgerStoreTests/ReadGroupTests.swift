import Dispatch
import Foundation
import LedgerCore
@testable import LedgerStore
import LedgerTestKit
import Synchronization
import Testing

/// `LedgerStore.readTogether`: reads share a read transaction, and writes still go through.
@Suite struct ReadGroupTests {
    let consortium = ChainFixture.shared.consortium

    @Test func readsShareATransactionThatAWriteEndsAndTheNextReadReopens() throws {
        let directory = TemporaryDirectory()
        let store = try LedgerStore.open(path: directory.file("ledger.sqlite"), genesis: consortium.genesis, suite: consortium.suite)
        defer { store.close() }
        var writer = try ChainWriter(store: store, generator: WorkloadGenerator(consortium: consortium, seed: 5, transactionsPerBlock: 7))
        for _ in 0..<3 { _ = try writer.writeBlock() }
        #expect(!store.holdsGroupedRead)
        try store.readTogether {
            _ = try store.block(at: Height(2))
            #expect(store.holdsGroupedRead, "a read in a group opens the shared read transaction")
            try store.readTogether {
                _ = try store.transactions(inBlock: Height(1))
                #expect(store.holdsGroupedRead)
            }
            #expect(store.holdsGroupedRead, "an inner group's end leaves the outer group's transaction open")
            // Executing a block reads state (joining the group), then appending it ends the
            // shared transaction before its own write.
            let (written, _) = try writer.writeBlock()
            #expect(!store.holdsGroupedRead)
            #expect(try store.block(at: Height(4)) == written, "the next read sees the write")
            #expect(store.holdsGroupedRead)
        }
        #expect(!store.holdsGroupedRead)
        // Nothing left open: a full checkpoint is not held back by a reader.
        #expect(try store.pragma("wal_checkpoint(FULL)") == .integer(0))
    }

    @Test func aGroupOnOneThreadAlwaysSeesWhatAnotherThreadAppended() throws {
        let directory = TemporaryDirectory()
        let store = try LedgerStore.open(path: directory.file("ledger.sqlite"), genesis: consortium.genesis, suite: consortium.suite)
        defer { store.close() }
        let writer = Mutex(try ChainWriter(store: store, generator: WorkloadGenerator(consortium: consortium, seed: 9, transactionsPerBlock: 5)))
        let problems = Mutex<[String]>([])
        let done = Atomic<Bool>(false)
        DispatchQueue.concurrentPerform(iterations: 2) { role in
            if role == 0 {
                defer { done.store(true, ordering: .releasing) }
                for _ in 0..<15 {
                    do { _ = try writer.withLock { try $0.writeBlock() } } catch { problems.withLock { $0.append("append: \(error)") } }
                }
            } else {
                // Each group reads the block at the tip it just saw: a snapshot older than that tip
                // (a shared transaction not ended by the other thread's write) would not have it.
                while !done.load(ordering: .acquiring) {
                    store.readTogether {
                        for _ in 0..<5 {
                            let tip = store.tip
                            guard tip.height.value > 0 else { continue }
                            do {
                                if try store.block(at: tip.height) == nil { problems.withLock { $0.append("block \(tip.height) not visible") } }
                            } catch {
                                problems.withLock { $0.append("read: \(error)") }
                            }
                        }
                    }
                }
            }
        }
        #expect(problems.withLock { $0 }.isEmpty, "\(problems.withLock { $0 }.prefix(5))")
        #expect(store.tip.height == Height(15))
    }
}
