import Foundation
import LedgerCore
import LedgerTestKit

/// Stops the run when a property every decoder promises does not hold. libFuzzer reports the
/// trap like any crash and saves the input as `crash-<sha1>`, so an invariant failure is a finding
/// exactly like an out-of-bounds read.
@inline(never)
public func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                      file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError("fuzz invariant violated: \(message())", file: file, line: line) }
}

/// The bytes libFuzzer hands to `LLVMFuzzerTestOneInput`.
public func fuzzBytes(_ start: UnsafeRawPointer?, _ count: Int) -> [UInt8] {
    guard let start, count > 0 else { return [] }
    return Array(UnsafeRawBufferPointer(start: start, count: count))
}

/// Fixtures shared by the targets: the deterministic test consortium of LedgerTestKit (the same
/// keys and genesis the unit tests use), in both crypto suites. Built once, on first use.
public enum FuzzFixtures {
    public static let ed25519 = TestConsortium(suite: Ed25519SHA256Suite())
    public static let sm2 = TestConsortium(suite: try! SM2SM3Suite())

    /// The consortium a selector byte names: even is Ed25519/SHA-256, odd is SM2/SM3.
    public static func consortium(_ selector: UInt8) -> TestConsortium { selector & 1 == 0 ? ed25519 : sm2 }
}

/// A named input for the seed corpus.
public struct Seed: Sendable {
    public var name: String
    public var bytes: [UInt8]
    public init(_ name: String, _ bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }
}

/// Seed corpus generation. When `SCF_FUZZ_WRITE_SEEDS=DIR` is set, the target's
/// `LLVMFuzzerInitialize` writes `seeds()` into DIR (one file each) and exits, so the committed
/// corpus under Fuzz/Corpus/TARGET is produced from real encodings by the same binary
/// (`Fuzz/run.sh --write-seeds`).
public func writeSeedsIfAsked(_ seeds: () throws -> [Seed]) {
    guard let directory = ProcessInfo.processInfo.environment["SCF_FUZZ_WRITE_SEEDS"], !directory.isEmpty else { return }
    do {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let all = try seeds()
        for seed in all {
            let path = (directory as NSString).appendingPathComponent(seed.name)
            guard FileManager.default.createFile(atPath: path, contents: Data(seed.bytes)) else {
                fatalError("cannot write seed \(path)")
            }
        }
        print("wrote \(all.count) seeds to \(directory)")
        exit(0)
    } catch {
        fatalError("seed generation failed: \(error)")
    }
}

/// Reads an input left to right: selector bytes first, then the payload.
public struct FuzzCursor {
    public private(set) var bytes: ArraySlice<UInt8>
    public init(_ bytes: [UInt8]) { self.bytes = bytes[...] }

    public var isEmpty: Bool { bytes.isEmpty }

    /// The next byte, 0 when the input is exhausted.
    public mutating func byte() -> UInt8 {
        guard let first = bytes.first else { return 0 }
        bytes = bytes.dropFirst()
        return first
    }

    /// A big-endian UInt16 from the next two bytes.
    public mutating func uint16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    /// The next `count` bytes (fewer at the end of the input).
    public mutating func take(_ count: Int) -> [UInt8] {
        let taken = bytes.prefix(max(count, 0))
        bytes = bytes.dropFirst(taken.count)
        return Array(taken)
    }

    /// Everything left.
    public mutating func rest() -> [UInt8] {
        defer { bytes = bytes[bytes.endIndex...] }
        return Array(bytes)
    }
}

/// A byte string in a form that makes invariant messages readable.
public func hexPreview(_ bytes: [UInt8], limit: Int = 96) -> String {
    bytes.count <= limit ? bytes.hexString : bytes.prefix(limit).hexString + "…(\(bytes.count) bytes)"
}

/// Whether a canonical value decoded from `input` re-encodes to exactly `input`.
public func checkRoundTrip(_ what: String, input: [UInt8], reencoded: [UInt8]) {
    invariant(reencoded == input, "\(what) is not canonical: decoded \(hexPreview(input)) re-encodes as \(hexPreview(reencoded))")
}
