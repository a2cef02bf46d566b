import ArgumentParser
import Foundation
import LedgerCore

/// The consortium described for `scf genesis create`: like a genesis file, but keys may be given
/// as paths to key files (only their public part is read).
struct GenesisSpec: Codable {
    struct MemberSpec: Codable {
        var id: MemberID
        var legalName: String
        var creditCode: UnifiedSocialCreditCode
        var roles: Roles
        var publicKey: PublicKey?
        var keyFile: String?
    }
    struct ValidatorSpec: Codable {
        var name: String
        var member: MemberID
        var publicKey: PublicKey?
        var keyFile: String?
    }
    var chainID: String
    var cryptoSuite: CryptoSuiteID?
    var sm2DistinguishingID: String?
    /// The first business date of the chain (YYYY-MM-DD); genesis time is its midnight.
    var genesisDate: BusinessDate
    var utcOffsetMinutes: Int32?
    var members: [MemberSpec]
    var validators: [ValidatorSpec]
    var consensus: ConsensusParameters?
}

struct GenesisCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "genesis",
        abstract: "Create and inspect the genesis file that starts a consortium chain.",
        subcommands: [Create.self, Show.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a genesis file from a consortium spec (members, roles, keys, validators).",
            discussion: "See Genesis/consortium.json for a spec. Key paths in it are relative to the spec file."
        )
        @Option(help: "The consortium spec (JSON).")
        var spec: String
        @Option(name: .shortAndLong, help: "Where to write the genesis file.")
        var out: String
        @Option(help: "Crypto suite (overrides the spec): ed25519-sha256 or sm2-sm3.")
        var crypto: CryptoSuiteID?
        @Option(help: "Chain id (overrides the spec).")
        var chainID: String?
        @Flag(help: "Replace an existing genesis file.")
        var force = false

        func run() async throws {
            try await reportingErrors {
                let spec = try Files.decodeJSON(GenesisSpec.self, from: self.spec, what: "consortium spec")
                let base = URL(fileURLWithPath: self.spec).deletingLastPathComponent()
                func key(_ inline: PublicKey?, _ file: String?, _ owner: String) throws -> PublicKey {
                    if let inline { return inline }
                    guard let file else { throw CLIError("\(owner) needs a publicKey or a keyFile") }
                    let path = file.hasPrefix("/") ? file : base.appendingPathComponent(file).path
                    return try KeyFile.publicKey(from: path)
                }
                let suiteID = crypto ?? spec.cryptoSuite ?? .ed25519SHA256
                let members = try spec.members.map { member in
                    Member(id: member.id, legalName: member.legalName, creditCode: member.creditCode, roles: member.roles,
                           publicKey: try key(member.publicKey, member.keyFile, "member \(member.id)"))
                }
                let validators = try spec.validators.map { validator in
                    Validator(name: validator.name, member: validator.member,
                              publicKey: try key(validator.publicKey, validator.keyFile, "validator \(validator.name)"))
                }
                let offset = spec.utcOffsetMinutes ?? 480
                let genesis = Genesis(chainID: chainID ?? spec.chainID, cryptoSuite: suiteID, sm2DistinguishingID: spec.sm2DistinguishingID,
                                      genesisTime: ConsensusTime(startOf: spec.genesisDate, utcOffsetMinutes: offset),
                                      utcOffsetMinutes: offset, members: members, validators: validators,
                                      consensus: spec.consensus ?? ConsensusParameters())
                let suite = try CryptoSuites.make(for: genesis)
                let problems = genesis.problems(suite: suite)
                guard problems.isEmpty else {
                    throw CLIError("the consortium spec is not usable (nothing was written):\n  - " + problems.joined(separator: "\n  - "))
                }
                try Files.write(try Files.encodeJSON(genesis), to: out, overwrite: force)
                print("wrote \(out): chain \(genesis.chainID), \(genesis.members.count) members, \(genesis.validators.count) validators (tolerates \(genesis.validatorSet.faultTolerance) faulty), suite \(genesis.cryptoSuite)")
                print("genesis hash \(genesis.hash(suite: suite))")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a genesis file: chain, suite, members, validators, hash.")
        @Argument(help: "The genesis file.")
        var file: String
        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            try await reportingErrors {
                let (genesis, suite) = try Genesisfile.load(file)
                if json {
                    struct Summary: Encodable { var hash: Hash; var genesis: Genesis }
                    print(String(decoding: try Files.encodeJSON(Summary(hash: genesis.hash(suite: suite), genesis: genesis)), as: UTF8.self), terminator: "")
                    return
                }
                let set = genesis.validatorSet
                print("chain        \(genesis.chainID)")
                print("crypto suite \(genesis.cryptoSuite)")
                print("genesis hash \(genesis.hash(suite: suite))")
                print("genesis date \(genesis.genesisTime.businessDate(utcOffsetMinutes: genesis.utcOffsetMinutes)) (UTC\(genesis.utcOffsetMinutes >= 0 ? "+" : "")\(Double(genesis.utcOffsetMinutes) / 60))")
                print("validators   \(set.count) (quorum \(set.quorum), tolerates \(set.faultTolerance) faulty)\n")
                var members = Table("MEMBER", "ROLES", "CREDIT CODE", "LEGAL NAME")
                for member in genesis.members { members.add(member.id.rawValue, member.roles.description, member.creditCode.rawValue, member.legalName) }
                print(members.rendered + "\n")
                var validators = Table("#", "VALIDATOR", "RUN BY", "KEY")
                for (index, validator) in genesis.validators.enumerated() {
                    validators.add(String(index), validator.name, validator.member.rawValue, String(validator.publicKey.description.prefix(40)) + "…")
                }
                print(validators.rendered)
            }
        }
    }
}
