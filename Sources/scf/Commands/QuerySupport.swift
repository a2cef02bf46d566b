import ArgumentParser
import Foundation
import LedgerCore
import LedgerStore

/// Opening a local ledger file for queries, and loading a bank's policy file.
enum LedgerFile {
    /// Opens the ledger in `path` (a file, or a node's data directory holding ledger.sqlite) with
    /// the genesis stored in it.
    static func open(_ data: String) throws -> LedgerStore {
        var path = data
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            path = (path as NSString).appendingPathComponent("ledger.sqlite")
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw CLIError("no ledger file at \(path); pass --data with a node's ledger.sqlite or data directory")
        }
        do {
            let genesis = try LedgerStore.genesis(inFile: path)
            let suite = try CryptoSuites.make(for: genesis)
            return try LedgerStore.open(path: path, genesis: genesis, suite: suite)
        } catch let error as StoreError {
            throw CLIError("cannot open \(path): \(error.message)")
        }
    }
}

enum PolicyFile {
    /// Loads and checks a JSON policy file; every problem is reported at once.
    static func load(_ path: String) throws -> EligibilityPolicy {
        let data = try Files.read(path, what: "policy file")
        if path.hasSuffix(".toml") {
            throw CLIError("\(path): TOML policies are not supported yet; write the policy as JSON (see docs/examples/bank-policy.json)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data), let fields = object as? [String: Any] else {
            throw CLIError("\(path) is not a JSON object; see docs/examples/bank-policy.json for the format")
        }
        let unknown = fields.keys.filter { !EligibilityPolicy.knownFields.contains($0) }.sorted()
        var problems = unknown.map { "unknown field \"\($0)\" (known: \(EligibilityPolicy.knownFields.sorted().joined(separator: ", ")))" }
        let document: EligibilityPolicy.Document
        do {
            document = try JSONDecoder().decode(EligibilityPolicy.Document.self, from: data)
        } catch let error as Swift.DecodingError {
            problems.append(Files.describe(error))
            throw CLIError("policy \(path) is not usable:\n  - " + problems.joined(separator: "\n  - "))
        }
        var policy: EligibilityPolicy?
        switch Result<EligibilityPolicy, PolicyError>(catching: { () throws(PolicyError) in try EligibilityPolicy.validated(document) }) {
        case .success(let valid): policy = valid
        case .failure(let error): problems += error.problems
        }
        guard problems.isEmpty, let policy else {
            throw CLIError("policy \(path) is not usable:\n  - " + problems.joined(separator: "\n  - "))
        }
        return policy
    }

    /// The policy used when no file is given: ledger rules only (no line, tenor or rate limits),
    /// priced at 0 %.
    static func ledgerRulesOnly(bank: MemberID, currency: CurrencyCode) -> EligibilityPolicy {
        EligibilityPolicy(bank: bank, currency: currency, minDaysToMaturity: 0, maxTenorDays: 36_500, advanceRateBps: 10_000,
                          discountRateBps: 0, dayCountBasis: 360, defaultCreditLine: MinorUnits(Int64.max),
                          excludeDebtorsWithOverdue: false, overdueShareTriggerBps: 10_000, maturityWarningBandDays: 0)
    }
}

/// The evidence file `scf query eligibility --evidence-out` writes and `scf proof verify` reads:
/// readable fields for people, the answer, and the canonical evidence bytes in hex (the only part
/// the verifier trusts).
struct EvidenceFile: Codable {
    struct Entry: Codable {
        var role: String
        var id: Hash
        var kind: String
        var signer: MemberID
        var height: Height
    }
    var format = "scf-eligibility-evidence/1"
    var chainID: String
    var genesisHash: Hash
    var fragment: FragmentID
    var root: ReceivableID
    var asOfHeight: Height
    var asOfHash: Hash
    var transactions: [Entry]
    var answer: EligibilityAnswer?
    /// The answer's canonical bytes in hex (what "byte-identical on every node" compares).
    var answerCanonical: String?
    var evidence: String

    init(evidence: EligibilityEvidence, answer: EligibilityAnswer?, suite: any CryptoSuite) {
        chainID = evidence.chainID
        genesisHash = evidence.genesisHash
        fragment = evidence.fragment
        root = evidence.root
        asOfHeight = evidence.asOfHeader.height
        asOfHash = evidence.asOfHeader.hash(suite: suite)
        func entry(_ role: String, _ proven: ProvenTransaction) -> Entry {
            Entry(role: role, id: proven.transaction.id, kind: proven.transaction.body.operation.kind,
                  signer: proven.transaction.body.signer, height: proven.header.height)
        }
        transactions = evidence.registrations.map { entry("registration", $0) } + [entry("creation", evidence.creation), entry("activation", evidence.activation)]
            + evidence.title.enumerated().map { entry("title-\($0.offset + 1)", $0.element.transfer) }
        self.answer = answer
        answerCanonical = answer?.canonicalBytes.hexString
        self.evidence = evidence.canonicalBytes.hexString
    }
}

extension FragmentID: ExpressibleByArgument {
    public init?(argument: String) {
        guard let hash = Hash(hex: argument) else { return nil }
        self.init(hash)
    }
}

extension Money {
    /// For tables: "-" for nil.
    static func text(_ money: Money?) -> String { money?.description ?? "-" }
}
