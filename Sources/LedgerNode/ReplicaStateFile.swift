import Consensus
import Foundation
import LedgerCore

/// The replica's persistent state (view, prepared certificates, …) in one file in the data
/// directory, replaced atomically: written to a temporary file, flushed to disk, renamed over the
/// old one, and the directory flushed, so a crash leaves either the old or the new state.
public struct ReplicaStateFile: Sendable {
    public let path: String
    public let suite: any CryptoSuite

    public init(directory: String, suite: any CryptoSuite) {
        path = (directory as NSString).appendingPathComponent("replica.state")
        self.suite = suite
    }

    public func load() throws -> PersistentState? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        var reader = CanonicalReader([UInt8](data))
        let state = try PersistentState(from: &reader, suite: suite)
        try reader.expectEnd()
        return state
    }

    public func save(_ state: PersistentState) throws {
        let temporary = path + ".tmp"
        let bytes = state.canonicalBytes
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw NodeError(.storage, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard count > 0 else {
                close(fd)
                throw NodeError(.storage, "cannot write \(temporary): \(String(cString: strerror(errno)))")
            }
            written += count
        }
        guard fsync(fd) == 0 else {
            close(fd)
            throw NodeError(.storage, "cannot flush \(temporary) to disk: \(String(cString: strerror(errno)))")
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw NodeError(.storage, "cannot replace \(path): \(String(cString: strerror(errno)))") }
        let directory = open((path as NSString).deletingLastPathComponent, O_RDONLY)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }
}

/// A node failure, with a sentence that says what to do.
public struct NodeError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable { case configuration, storage, network, halted }
    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}
