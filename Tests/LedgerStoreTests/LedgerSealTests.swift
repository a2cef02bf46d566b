import Foundation
import LedgerCore
@testable import LedgerStore
import LedgerTestKit
import Testing

/// The seal a node writes over its ledger file at a clean stop (DECISIONS 47): usable only by the
/// validator that made it, on its chain, over the very bytes it sealed.
@Suite struct LedgerSealTests {
    let fixture = ChainFixture.shared
    var consortium: TestConsortium { fixture.consortium }
    var chainID: String { consortium.genesis.chainID }
    var suite: any CryptoSuite { consortium.suite }

    func sealed(in directory: TemporaryDirectory) throws -> (ledger: String, seal: LedgerSeal) {
        let ledger = fixture.copy(into: directory)
        let tip = try LedgerVerifier().verify(path: ledger, genesis: consortium.genesis).tip
        let seal = try LedgerSeal.seal(ledger: ledger, chainID: chainID, validator: "node-1", tip: tip,
                                       key: consortium.validatorKeys[1], suite: suite)
        return (ledger, seal)
    }

    var ownKey: PublicKey { consortium.validatorKeys[1].publicKey }

    @Test func aSealMatchesTheFileItWasMadeOverAndSurvivesAWriteAndALoad() throws {
        let directory = TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let (ledger, seal) = try sealed(in: directory)
        #expect(seal.height == UInt64(fixture.blocks))
        #expect(seal.mismatch(ledger: ledger, chainID: chainID, validator: "node-1", publicKey: ownKey, suite: suite) == nil)
        let path = LedgerSeal.path(forLedger: ledger)
        try seal.write(to: path)
        #expect(LedgerSeal.load(path) == seal)
        #expect(LedgerSeal.load(path + ".absent") == nil)
    }

    @Test func anyChangedByteOfTheFileVoidsIt() throws {
        let directory = TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let (ledger, seal) = try sealed(in: directory)
        var bytes = try #require(FileManager.default.contents(atPath: ledger))
        for offset in [0, bytes.count / 2, bytes.count - 1] {
            bytes[offset] ^= 0x01
            try bytes.write(to: URL(fileURLWithPath: ledger))
            let why = seal.mismatch(ledger: ledger, chainID: chainID, validator: "node-1", publicKey: ownKey, suite: suite)
            #expect(why?.contains("the file changed since") == true, "offset \(offset): \(why ?? "accepted")")
            bytes[offset] ^= 0x01
        }
        try bytes.write(to: URL(fileURLWithPath: ledger))
        #expect(seal.mismatch(ledger: ledger, chainID: chainID, validator: "node-1", publicKey: ownKey, suite: suite) == nil)
        // A file grown by a byte, with the same leading bytes.
        try (bytes + [0]).write(to: URL(fileURLWithPath: ledger))
        #expect(seal.mismatch(ledger: ledger, chainID: chainID, validator: "node-1", publicKey: ownKey, suite: suite) != nil)
    }

    @Test func anotherValidatorsChainsOrForgedSealIsRefused() throws {
        let directory = TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let (ledger, seal) = try sealed(in: directory)
        // Another validator's key, name or chain.
        #expect(seal.mismatch(ledger: ledger, chainID: chainID, validator: "node-1", publicKey: consortium.validatorKeys[2].publicKey,
                              suite: suite)?.contains("signature") == true)
        #expect(seal.mismatch(ledger: ledger, chainID: chainID, validator: "node-2", publicKey: ownKey, suite: suite) != nil)
        #expect(seal.mismatch(ledger: ledger, chainID: "another-chain", validator: "node-1", publicKey: ownKey, suite: suite) != nil)
        // Any signed field changed, or the signature itself.
        var edited = [seal, seal, seal, seal]
        edited[0].height += 1
        edited[1].fileDigest = String(repeating: "0", count: 64)
        edited[2].tipHash = String(repeating: "a", count: 64)
        edited[3].signature = String(edited[3].signature.dropLast(2)) + (edited[3].signature.hasSuffix("00") ? "01" : "00")
        for seal in edited {
            #expect(seal.mismatch(ledger: ledger, chainID: chainID, validator: "node-1", publicKey: ownKey, suite: suite) != nil)
        }
        // A seal re-signed by another validator for this one's name.
        let forged = try LedgerSeal.seal(ledger: ledger, chainID: chainID, validator: "node-1",
                                         tip: ChainTip(height: Height(seal.height), hash: try #require(Hash(hex: seal.tipHash)),
                                                       stateDigest: .zero, timestamp: ConsensusTime(millisecondsSinceEpoch: 0)),
                                         key: consortium.validatorKeys[2], suite: suite)
        #expect(forged.mismatch(ledger: ledger, chainID: chainID, validator: "node-1", publicKey: ownKey, suite: suite)?.contains("signature") == true)
    }

    /// SQLite reads more than the file's bytes when a write-ahead log or a rollback journal lies
    /// beside it (a planted journal would be replayed after the digest was checked), or when the
    /// ledger is a link (they would lie beside its target): none of these is sealed or accepted.
    @Test(arguments: ["-wal", "-journal"])
    func aLogOrJournalBesideTheFileVoidsIt(suffix: String) throws {
        let directory = TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let (ledger, seal) = try sealed(in: directory)
        // An empty write-ahead log holds nothing to apply (a read-only connection leaves one); an empty journal is still refused.
        for contents in suffix == "-wal" ? [Data([1, 2, 3])] : [Data([1, 2, 3]), Data()] {
            try contents.write(to: URL(fileURLWithPath: ledger + suffix))
            let why = seal.mismatch(ledger: ledger, chainID: chainID, validator: "node-1", publicKey: ownKey, suite: suite)
            #expect(why?.contains("lies beside the file") == true, "\(contents.count) bytes: \(why ?? "accepted")")
            #expect(LedgerSeal.unsealable(ledger) != nil)
        }
        try Data().write(to: URL(fileURLWithPath: ledger + "-wal"))
        try? FileManager.default.removeItem(atPath: ledger + "-journal")
        #expect(seal.mismatch(ledger: ledger, chainID: chainID, validator: "node-1", publicKey: ownKey, suite: suite) == nil)
        #expect(LedgerSeal.unsealable(ledger) == nil)
    }

    @Test func aLedgerThatIsALinkIsNeverSealedNorAccepted() throws {
        let directory = TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let (ledger, seal) = try sealed(in: directory)
        let link = directory.file("linked.sqlite")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: ledger)
        #expect(LedgerSeal.unsealable(link)?.contains("not a regular file") == true)
        #expect(seal.mismatch(ledger: link, chainID: chainID, validator: "node-1", publicKey: ownKey, suite: suite) != nil)
        #expect(seal.mismatch(ledger: ledger, chainID: chainID, validator: "node-1", publicKey: ownKey, suite: suite) == nil)
    }

    @Test func theFilesIdentityChangesWhenItIsWritten() throws {
        let directory = TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let (ledger, _) = try sealed(in: directory)
        let before = LedgerSeal.identity(ledger)
        #expect(before.count == 7)
        #expect(LedgerSeal.identity(ledger) == before)
        let handle = try #require(FileHandle(forWritingAtPath: ledger))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0]))
        try handle.close()
        #expect(LedgerSeal.identity(ledger) != before)
    }
}
