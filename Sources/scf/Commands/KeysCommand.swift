import ArgumentParser
import Foundation
import LedgerCore

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate and inspect signing keys.",
        discussion: "A key file holds a private key: it is written with mode 0600 and never leaves your machine.",
        subcommands: [Generate.self, Show.self]
    )

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Generate a new private key into a file (mode 0600).")

        @Option(name: .shortAndLong, help: "Where to write the key file.")
        var out: String
        @Option(help: "Crypto suite of the consortium: ed25519-sha256 (default) or sm2-sm3.")
        var suite: CryptoSuiteID = .ed25519SHA256
        @Flag(help: "Print JSON instead of a sentence.")
        var json = false

        func run() async throws {
            try await reportingErrors {
                let crypto = try CryptoSuites.make(suite)
                var seed = [UInt8](repeating: 0, count: 32)
                var generator = SystemRandomNumberGenerator()
                for index in seed.indices { seed[index] = UInt8.random(in: 0...255, using: &generator) }
                let privateKey = try crypto.privateKey(seed: seed)
                let publicKey = try crypto.signingKey(privateKey).publicKey
                let file = KeyFile(suite: suite, privateKey: privateKey.rawRepresentation.hexString, publicKey: publicKey)
                try Files.write(try Files.encodeJSON(file), to: out, secret: true)
                if json {
                    print(String(decoding: try Files.encodeJSON(["keyFile": out, "publicKey": publicKey.description]), as: UTF8.self), terminator: "")
                } else {
                    print("wrote \(out) (mode 0600)\npublic key: \(publicKey)")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the public key of a key file.")
        @Argument(help: "The key file.")
        var file: String

        func run() async throws {
            try await reportingErrors {
                let (keyFile, privateKey) = try KeyFile.load(file)
                let derived = try CryptoSuites.make(keyFile.suite).signingKey(privateKey).publicKey
                guard derived == keyFile.publicKey else {
                    throw CLIError("key file \(file) is inconsistent: its public key does not belong to its private key")
                }
                print(derived)
            }
        }
    }
}

/// Private key files other than `KeyFile`s (a node's TLS key): refused when anyone but the owner
/// can read or write them, like `KeyFile.load` does for signing keys.
enum SecretFiles {
    static func requireOwnerOnly(_ path: String, what: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw CLIError("cannot read the \(what) \(path): \(String(cString: strerror(errno)))")
        }
        if info.st_mode & 0o077 != 0 {
            throw CLIError("the \(what) \(path) can be read by other users (mode \(String(info.st_mode & 0o777, radix: 8))); run `chmod 600 \(path)` and try again")
        }
    }
}
