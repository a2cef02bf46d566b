#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import LedgerCore

/// A validator's signed statement that its ledger file is, byte for byte, the one it closed at a
/// clean stop (DECISIONS 47). A node that finds its own valid seal at start, over a file that
/// still hashes to it, skips re-executing the ledger (DECISIONS 16): the check would only repeat
/// what this node already did when it committed those blocks, and any change to the file since
/// then, by anyone without this validator's key, changes the digest. Anything else (no seal, a
/// seal of another validator or chain, a bad signature, a write-ahead log beside the file, a
/// file that differs) falls back to the full check. A seal is used once: the node removes it
/// before it opens the file for writing, so a crash later cannot leave a stale one in force.
///
/// The digest is the suite's hash over the file's size and the suite's hash of each 8 MiB piece
/// of it, so it needs no streaming hash API and runs at the hash's speed with flat memory.
public struct LedgerSeal: Codable, Sendable, Equatable {
    public var chainID: String
    public var validator: String
    public var height: UInt64
    public var tipHash: String
    public var fileBytes: UInt64
    public var fileDigest: String
    public var signature: String

    /// Why the file at `ledger` cannot be sealed, or its seal used, whatever its bytes: SQLite
    /// would read more than those bytes when it opens it. A write-ahead log that is not empty, or
    /// any rollback journal, beside it is applied on opening (a journal planted beside a sealed
    /// file would change it after the digest was checked), and a symbolic link puts them beside
    /// its target instead.
    /// Nil when only the file itself counts.
    public static func unsealable(_ ledger: String) -> String? {
        var status = stat()
        guard lstat(ledger, &status) == 0 else { return "the file cannot be read" }
        guard status.st_mode & S_IFMT == S_IFREG else { return "the ledger is not a regular file (a symbolic link?)" }
        var side = stat()
        // An empty log (a read-only connection leaves one) holds nothing to apply.
        if lstat(ledger + "-wal", &side) == 0, side.st_mode & S_IFMT != S_IFREG || side.st_size > 0 {
            return "a write-ahead log lies beside the file"
        }
        // A WAL-mode file never has a journal: any is suspect.
        if lstat(ledger + "-journal", &side) == 0 { return "a rollback journal lies beside the file" }
        return nil
    }

    /// The file's identity and last change, to tell whether anything wrote it meanwhile.
    public static func identity(_ ledger: String) -> [Int] {
        var status = stat()
        guard lstat(ledger, &status) == 0 else { return [] }
        #if canImport(Darwin)
        let (modified, changed) = (status.st_mtimespec, status.st_ctimespec)
        #else
        let (modified, changed) = (status.st_mtim, status.st_ctim)
        #endif
        return [Int(status.st_dev), Int(status.st_ino), Int(status.st_size), Int(modified.tv_sec), Int(modified.tv_nsec),
                Int(changed.tv_sec), Int(changed.tv_nsec)]
    }

    /// Where the seal of the ledger file `ledger` lives.
    public static func path(forLedger ledger: String) -> String { ledger + ".seal" }

    static let pieceBytes = 8 << 20

    /// The digest of the file at `path` and its size.
    public static func digest(ofFile path: String, suite: any CryptoSuite) throws -> (bytes: UInt64, digest: Hash) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw StoreError(.cannotOpen, "cannot read \(path) to seal or check it")
        }
        defer { try? handle.close() }
        var size: UInt64 = 0
        var pieces: [UInt8] = []
        while true {
            let piece: Data
            do {
                guard let read = try handle.read(upToCount: pieceBytes), !read.isEmpty else { break }
                piece = read
            } catch {
                throw StoreError(.cannotOpen, "cannot read \(path) to seal or check it: \(error)")
            }
            size += UInt64(piece.count)
            pieces.append(contentsOf: suite.hash([UInt8](piece)).bytes)
        }
        var input = Array("scf-ledger-file-v1".utf8)
        withUnsafeBytes(of: size.bigEndian) { input.append(contentsOf: $0) }
        input.append(contentsOf: pieces)
        return (size, suite.hash(input))
    }

    /// What the signature covers: every field but the signature, under its own signing domain.
    func signedMessage(suite: any CryptoSuite) -> [UInt8] {
        var writer = CanonicalWriter()
        writer.write(chainID)
        writer.write(validator)
        writer.write(height)
        writer.write(tipHash)
        writer.write(fileBytes)
        writer.write(fileDigest)
        return SigningDomain.ledgerSeal.message(for: suite.hash(writer.bytes))
    }

    /// Seals the closed ledger file `ledger` whose last block is `tip`.
    public static func seal(ledger: String, chainID: String, validator: String, tip: ChainTip, key: any SigningKey,
                            suite: any CryptoSuite) throws -> LedgerSeal {
        let (bytes, digest) = try digest(ofFile: ledger, suite: suite)
        var seal = LedgerSeal(chainID: chainID, validator: validator, height: tip.height.value, tipHash: tip.hash.hex,
                              fileBytes: bytes, fileDigest: digest.hex, signature: "")
        seal.signature = try key.signature(for: seal.signedMessage(suite: suite)).rawRepresentation.hexString
        return seal
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// The seal at `path`, or nil when there is none or it does not parse.
    public static func load(_ path: String) -> LedgerSeal? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(LedgerSeal.self, from: data)
    }

    /// Nil when this seal, signed by `publicKey` for `validator` on `chainID`, still matches the
    /// ledger file `ledger`; otherwise why it cannot be used.
    public func mismatch(ledger: String, chainID: String, validator: String, publicKey: PublicKey, suite: any CryptoSuite) -> String? {
        guard self.chainID == chainID, self.validator == validator else {
            return "it was made by \(self.validator) on chain \(self.chainID), not \(validator) on \(chainID)"
        }
        guard let bytes = [UInt8](hex: signature),
              suite.isValidSignature(Signature(rawRepresentation: bytes), for: signedMessage(suite: suite), publicKey: publicKey) else {
            return "its signature is not \(validator)'s"
        }
        if let why = Self.unsealable(ledger) { return why }
        guard let (bytes, digest) = try? Self.digest(ofFile: ledger, suite: suite) else { return "the file cannot be read" }
        guard bytes == fileBytes, digest.hex == fileDigest else {
            return "the file changed since (\(bytes) bytes, digest \(digest.short); sealed \(fileBytes) bytes, \(Hash(hex: fileDigest)?.short ?? "?"))"
        }
        return nil
    }
}
