// libFuzzer target: LedgerCore's canonical decoders for what arrives from clients and peers
// (SignedTransaction, TransactionBody, Block, CommitCertificate) and for genesis (canonical and
// JSON). Input: [mode][suite][payload]. Besides "does not crash", every decoded value must
// re-encode to exactly the bytes it came from (the encoding is canonical), the transaction id
// must be the hash of the body bytes, and the checks that run on decoded values (signature and
// certificate verification, genesis validation) must answer without trapping.
import Foundation
import FuzzSupport
import LedgerCore
import LedgerTestKit

enum Mode: UInt8, CaseIterable {
    case signedTransaction, transactionBody, block, commitCertificate, genesis, genesisJSON
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfAsked(TransactionSeeds.all)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTransaction(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    var cursor = FuzzCursor(fuzzBytes(start, count))
    let mode = Mode(rawValue: cursor.byte() % UInt8(Mode.allCases.count))!
    let consortium = FuzzFixtures.consortium(cursor.byte())
    let payload = cursor.rest()
    checkDecoders(mode, payload, consortium)
    return 0
}

func checkDecoders(_ mode: Mode, _ payload: [UInt8], _ consortium: TestConsortium) {
    let suite = consortium.suite
    switch mode {
    case .signedTransaction:
        guard let transaction = try? SignedTransaction(wireBytes: payload, suite: suite) else { return }
        checkTransaction(transaction, consortium)
        checkRoundTrip("SignedTransaction", input: payload, reencoded: transaction.wireBytes)

    case .transactionBody:
        guard let body = try? TransactionBody(canonicalBytes: payload) else { return }
        checkRoundTrip("TransactionBody", input: payload, reencoded: body.canonicalBytes)
        _ = body.operation.kind

    case .block:
        guard let block = try? Block(wireBytes: payload, suite: suite) else { return }
        invariant(Int(block.header.transactionCount) == block.transactions.count, "block decoded with a count unlike its header's")
        for transaction in block.transactions { checkTransaction(transaction, consortium) }
        _ = Block.transactionsRoot(block.transactions, suite: suite)
        _ = block.hash(suite: suite)
        checkRoundTrip("Block", input: payload, reencoded: block.wireBytes)

    case .commitCertificate:
        guard let certificate = try? CommitCertificate(canonicalBytes: payload) else { return }
        checkRoundTrip("CommitCertificate", input: payload, reencoded: certificate.canonicalBytes)
        do {
            try certificate.verify(validators: consortium.validatorSet, chainID: consortium.genesis.chainID, suite: suite)
            // Only a quorum of genuine validator signatures verifies; the fuzzer cannot forge them,
            // so a certificate that verifies must be one it copied from the seeds.
            invariant(certificate.votes.count >= consortium.validatorSet.quorum, "a certificate with too few votes verified")
        } catch {}

    case .genesis:
        guard let genesis = try? Genesis(canonicalBytes: payload) else { return }
        checkRoundTrip("Genesis", input: payload, reencoded: genesis.canonicalBytes)
        checkGenesis(genesis, suite)

    case .genesisJSON:
        guard let genesis = try? JSONDecoder().decode(Genesis.self, from: Data(payload)) else { return }
        checkGenesis(genesis, suite)
        // The JSON form carries the same value as the canonical one.
        let canonical = genesis.canonicalBytes
        guard let again = try? Genesis(canonicalBytes: canonical) else {
            invariant(false, "a genesis read from JSON does not decode from its own canonical bytes")
            return
        }
        invariant(again == genesis, "genesis changed through its canonical encoding")
        if let json = try? JSONEncoder().encode(genesis), let back = try? JSONDecoder().decode(Genesis.self, from: json) {
            invariant(back == genesis, "genesis changed through its JSON encoding")
        } else {
            invariant(false, "a genesis read from JSON cannot be written and read back as JSON")
        }
    }
}

func checkTransaction(_ transaction: SignedTransaction, _ consortium: TestConsortium) {
    let suite = consortium.suite
    invariant(transaction.id == suite.hash(transaction.bodyBytes), "transaction id is not the hash of its body bytes")
    invariant(transaction.body.canonicalBytes == transaction.bodyBytes, "transaction body bytes are not canonical")
    let key = consortium.genesis.members.first { $0.id == transaction.body.signer }?.publicKey
        ?? consortium.genesis.members[0].publicKey
    _ = transaction.hasValidSignature(publicKey: key, suite: suite)
    _ = transaction.merkleLeaf(suite: suite)
}

func checkGenesis(_ genesis: Genesis, _ suite: any CryptoSuite) {
    let problems = genesis.problems(suite: suite)
    _ = genesis.hash(suite: suite)
    if problems.isEmpty {
        // A genesis without problems is one a node would start from: the validator arithmetic must hold.
        let validators = genesis.validatorSet
        invariant(validators.count > 0, "a genesis without problems has no validators")
        invariant(validators.quorum <= validators.count && validators.quorum > 2 * validators.faultTolerance,
                  "quorum \(validators.quorum) is not a PBFT quorum of \(validators.count)")
        _ = validators.primary(of: View(UInt64.max))
    }
}

enum TransactionSeeds {
    static func all() throws -> [Seed] {
        var seeds: [Seed] = []
        for (selector, consortium) in [(UInt8(0), FuzzFixtures.ed25519), (UInt8(1), FuzzFixtures.sm2)] {
            let tag = consortium.suite.id.rawValue
            func seed(_ mode: Mode, _ name: String, _ bytes: [UInt8]) {
                seeds.append(Seed("\(name)-\(tag)", [mode.rawValue, selector] + bytes))
            }
            let sample = try SampleChain(consortium)
            for (index, transaction) in sample.transactions.enumerated() {
                seed(.signedTransaction, "tx-\(index)-\(transaction.body.operation.kind)", transaction.wireBytes)
                if index < 3 { seed(.transactionBody, "body-\(index)", transaction.bodyBytes) }
            }
            for (index, committed) in sample.blocks.enumerated() {
                seed(.block, "block-\(index)", committed.block.wireBytes)
                seed(.commitCertificate, "certificate-\(index)", committed.certificate.canonicalBytes)
            }
            seed(.genesis, "genesis", consortium.genesis.canonicalBytes)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            seed(.genesisJSON, "genesis-json", Array(try encoder.encode(consortium.genesis)))
        }
        return seeds
    }
}
