import ArgumentParser
import Foundation
import LedgerCore

/// A user-facing failure: one sentence that says what went wrong and what to do, and an exit code.
struct CLIError: Error, CustomStringConvertible {
    var message: String
    var exitCode: Int32 = 1
    init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }
    var description: String { message }
}

extension AsyncParsableCommand {
    /// Runs `body`, turning every error into a sentence on standard error and an exit code.
    func reportingErrors(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as CLIError {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            throw ExitCode(error.exitCode)
        } catch let error as ExitCode {
            throw error
        } catch let error as CleanExit {
            throw error
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

enum Files {
    static func read(_ path: String, what: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("cannot read \(what) at \(path): no such file or not readable")
        }
        return data
    }

    /// Writes atomically; `secret` files get mode 0600 before any byte is written.
    static func write(_ data: Data, to path: String, secret: Bool = false, overwrite: Bool = false) throws {
        let manager = FileManager.default
        if manager.fileExists(atPath: path), !overwrite {
            throw CLIError("\(path) already exists; remove it first or choose another path (nothing was written)")
        }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try? manager.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let temporary = path + ".tmp-\(getpid())"
        guard manager.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: secret ? 0o600 : 0o644]) else {
            throw CLIError("cannot create \(path): check that the directory exists and is writable")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
        try handle.write(contentsOf: data)
        try handle.synchronize()
        try handle.close()
        guard rename(temporary, path) == 0 else {
            try? manager.removeItem(atPath: temporary)
            throw CLIError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    static func decodeJSON<T: Decodable>(_ type: T.Type, from path: String, what: String) throws -> T {
        let data = try read(path, what: what)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as Swift.DecodingError {
            throw CLIError("\(path) is not a valid \(what): \(describe(error))")
        }
    }

    static func describe(_ error: Swift.DecodingError) -> String {
        func at(_ path: [any CodingKey]) -> String {
            path.isEmpty ? "the top level" : path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing field \"\(key.stringValue)\" at \(at(context.codingPath))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(context.debugDescription) (at \(at(context.codingPath)))"
        @unknown default: return "\(error)"
        }
    }

    static func encodeJSON<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(value)
        data.append(0x0a)
        return data
    }
}

/// A private key file: JSON with the suite, the private key and the public key, mode 0600.
struct KeyFile: Codable {
    var suite: CryptoSuiteID
    var privateKey: String
    var publicKey: PublicKey

    static func load(_ path: String) throws -> (KeyFile, PrivateKey) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw CLIError("cannot read the key file \(path): \(String(cString: strerror(errno)))")
        }
        if info.st_mode & 0o077 != 0 {
            throw CLIError("key file \(path) can be read by other users (mode \(String(info.st_mode & 0o777, radix: 8))); run `chmod 600 \(path)` and try again")
        }
        let file = try Files.decodeJSON(KeyFile.self, from: path, what: "key file")
        guard let raw = [UInt8](hex: file.privateKey) else {
            throw CLIError("key file \(path) has a private key that is not hex")
        }
        return (file, PrivateKey(suite: file.suite, rawRepresentation: raw))
    }

    /// The key file's public key, or the public key of a file that holds only one (`{"publicKey": ...}`).
    static func publicKey(from path: String) throws -> PublicKey {
        struct PublicOnly: Codable { var publicKey: PublicKey }
        return try Files.decodeJSON(PublicOnly.self, from: path, what: "key file").publicKey
    }
}

/// A signed transaction as a file: the wire bytes in hex plus what a person needs to check it.
struct TransactionFile: Codable {
    var chainID: String
    var id: Hash
    var signer: MemberID
    var nonce: UInt64
    var kind: String
    var transaction: String

    init(_ transaction: SignedTransaction) {
        chainID = transaction.body.chainID
        id = transaction.id
        signer = transaction.body.signer
        nonce = transaction.body.nonce
        kind = transaction.body.operation.kind
        self.transaction = transaction.wireBytes.hexString
    }

    func decode(suite: any CryptoSuite) throws -> SignedTransaction {
        guard let bytes = [UInt8](hex: transaction) else { throw CLIError("the transaction field is not hex") }
        do {
            return try SignedTransaction(wireBytes: bytes, suite: suite)
        } catch let error as CanonicalDecodingError {
            throw CLIError("the transaction does not decode: \(error)")
        }
    }
}

enum Genesisfile {
    static func load(_ path: String) throws -> (Genesis, any CryptoSuite) {
        let genesis = try Files.decodeJSON(Genesis.self, from: path, what: "genesis file")
        let suite: any CryptoSuite
        do {
            suite = try CryptoSuites.make(for: genesis)
        } catch {
            throw CLIError("genesis \(path) asks for crypto suite \(genesis.cryptoSuite), which this build cannot use: \(error)")
        }
        let problems = genesis.problems(suite: suite)
        guard problems.isEmpty else {
            throw CLIError("genesis \(path) is not usable:\n  - " + problems.joined(separator: "\n  - "))
        }
        return (genesis, suite)
    }
}

/// Plain-text tables for people.
struct Table {
    var headers: [String]
    var rows: [[String]] = []

    init(_ headers: String...) { self.headers = headers }
    mutating func add(_ cells: String...) { rows.append(cells) }

    var rendered: String {
        var widths = headers.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
            }.joined(separator: "  ")
        }
        var lines = [line(headers), line(widths.map { String(repeating: "-", count: $0) })]
        lines += rows.map(line)
        return lines.joined(separator: "\n")
    }
}

extension CryptoSuiteID: ExpressibleByArgument {}
extension MemberID: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}
extension Hash: ExpressibleByArgument {
    public init?(argument: String) { self.init(hex: argument) }
}
extension CurrencyCode: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument.uppercased()) }
}
extension BusinessDate: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}
