import Foundation
import LedgerCore
@testable import LedgerStore
import Testing

/// The verifier's scratch file for the records it recomputes (DECISIONS 48): what it reads back is
/// always the latest write, before and after a flush, and the file is gone once released.
@Suite struct ScratchStateTests {
    let fixture = ChainFixture.shared

    @Test func readsAlwaysReturnTheLatestWriteAcrossFlushes() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("scratch.sqlite")
        let state = fixture.state
        do {
            let scratch = try ScratchState(path: path, flushLimit: 7)
            // Everything the fixture holds, a few records at a time (each apply may flush).
            let fragments = state.fragments.values.sorted { $0.id < $1.id }
            for chunk in stride(from: 0, to: fragments.count, by: 5) {
                var changes = StateChanges()
                for fragment in fragments[chunk..<min(chunk + 5, fragments.count)] { changes.fragments[fragment.id] = fragment }
                try scratch.apply(changes)
            }
            var rest = StateChanges()
            rest.roots = state.roots
            rest.invoices = state.invoices
            rest.financingRequests = state.financingRequests
            try scratch.apply(rest)
            for fragment in fragments { #expect(try scratch.fragment(fragment.id) == fragment) }
            for root in state.roots.values { #expect(try scratch.root(root.id) == root) }
            for (key, invoice) in state.invoices { #expect(try scratch.invoice(key) == invoice) }
            for (id, request) in state.financingRequests { #expect(try scratch.financingRequest(id) == request) }

            // A record read from the file (so cached), then changed: the change is read before
            // and after it is flushed, never the cached copy.
            try scratch.flush()
            let first = try #require(fragments.first)
            #expect(try scratch.fragment(first.id) == first)
            var changed = first
            changed.outstanding = MinorUnits(first.outstanding.value + 1)
            var change = StateChanges()
            change.fragments[first.id] = changed
            try scratch.apply(change)
            #expect(try scratch.fragment(first.id) == changed)
            try scratch.flush()
            #expect(try scratch.fragment(first.id) == changed)

            // A key first read as absent, then written.
            let unknown = FragmentID(Hash(bytes: Array(repeating: 0xCD, count: 32))!)
            #expect(try scratch.fragment(unknown) == nil)
            var invented = first
            invented.id = unknown
            change = StateChanges()
            change.fragments[unknown] = invented
            try scratch.apply(change)
            try scratch.flush()
            #expect(try scratch.fragment(unknown) == invented)

            try scratch.finish()
            #expect(scratch.counts[Schema.fragment.name] == fragments.count + 1)
            #expect(scratch.counts[Schema.root.name] == state.roots.count)
            #expect(scratch.counts[Schema.invoice.name] == state.invoices.count)
            #expect(scratch.counts[Schema.financingRequest.name] == state.financingRequests.count)
            #expect(FileManager.default.fileExists(atPath: path))
        }
        #expect(!FileManager.default.fileExists(atPath: path), "released scratch state removes its file")
    }

    @Test func itsOwnPrivateDirectoryIsMadeAndRemoved() throws {
        let parent = TemporaryDirectory()
        var made: String?
        do {
            let scratch = try ScratchState.make(in: parent.path)
            made = (scratch.path as NSString).deletingLastPathComponent
            let directory = try #require(made)
            #expect(LedgerVerifier.Options.isScratchDirectory((directory as NSString).lastPathComponent))
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: directory)[.posixPermissions] as? Int)
            #expect(mode == 0o700)
            try scratch.finish()
            #expect(FileManager.default.fileExists(atPath: scratch.path))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty, "the directory and file are gone")
        #expect(made != nil)
        #expect { try ScratchState.make(in: parent.file("no-such-directory")) } throws: { ($0 as? StoreError)?.code == .scratchFile }
    }

    @Test func aFileLeftByAnInterruptedRunIsReplaced() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("scratch.sqlite")
        try Array("not a database".utf8).withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: path)) }
        let scratch = try ScratchState(path: path)
        #expect(try scratch.fragment(FragmentID(Hash(bytes: Array(repeating: 1, count: 32))!)) == nil)
        try scratch.finish()
        #expect(scratch.counts[Schema.fragment.name] == 0)
    }
}
