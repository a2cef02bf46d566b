import Foundation
import LedgerCore
@testable import LedgerStore
import LedgerTestKit
import Testing

/// The verifier's start-up mode (`checksClientSignatures: false`): client signatures are vouched
/// for by the commit certificates, everything else is checked as in the full run.
@Suite struct TrustedSignatureVerifierTests {
    let fixture = ChainFixture.shared
    var consortium: TestConsortium { fixture.consortium }

    func verify(_ path: String, checksClientSignatures: Bool) throws -> VerificationReport {
        try LedgerVerifier(options: .init(progressInterval: 10, batchSize: 16, checksClientSignatures: checksClientSignatures))
            .verify(path: path, genesis: consortium.genesis)
    }

    @Test func aGoodChainVerifiesTheSameWithTrustedSignatures() throws {
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        let full = try verify(path, checksClientSignatures: true)
        let trusted = try verify(path, checksClientSignatures: false)
        #expect(full.isValid && trusted.isValid, "\(full.summary) / \(trusted.summary)")
        #expect(trusted.verifiedBlocks == full.verifiedBlocks)
        #expect(trusted.transactions == full.transactions)
        #expect(trusted.rejectedTransactions == full.rejectedTransactions)
        #expect(trusted.tip == full.tip)
    }

    /// A client signature changed in the stored block (and its transaction row, so the rows agree)
    /// is caught without checking client signatures: the signed transaction is a leaf of the
    /// transactions root the certificate vouches for.
    @Test(arguments: [true, false])
    func aChangedClientSignatureIsCaught(checksClientSignatures: Bool) throws {
        let height: Int64 = 23
        let directory = TemporaryDirectory()
        let path = fixture.copy(into: directory)
        try tamper(path) { connection in
            guard case .blob(let wire) = try column(connection, "SELECT wire FROM block WHERE height = ?", [.integer(height)])[0] else {
                Issue.record("no block \(height)")
                return
            }
            let block = try Block(wireBytes: wire, suite: consortium.suite)
            let last = try #require(block.transactions.last)
            let signature = last.signature.rawRepresentation
            // The signature's bytes as they sit at the end of the block's wire encoding.
            let range = try #require(wire.lastRange(of: signature))
            var changed = wire
            changed[range.lowerBound + 5] ^= 0x01
            try connection.statement("UPDATE block SET wire = ? WHERE height = ?").bind(.blob(changed), .integer(height)).run()
        }
        let report = try verify(path, checksClientSignatures: checksClientSignatures)
        let failure = try #require(report.failure)
        #expect(failure.height == Height(UInt64(height)), "\(failure)")
        #expect(report.verifiedBlocks == Int(height) - 1)
    }
}

private extension Array where Element == UInt8 {
    func lastRange(of needle: [UInt8]) -> Range<Int>? {
        guard !needle.isEmpty, needle.count <= count else { return nil }
        for start in stride(from: count - needle.count, through: 0, by: -1) where self[start..<(start + needle.count)].elementsEqual(needle) {
            return start..<(start + needle.count)
        }
        return nil
    }
}
