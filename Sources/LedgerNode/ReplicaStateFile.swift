import Consensus
import Foundation
import LedgerCore
import Synchronization

/// The replica's persistent state (view, prepared certificates, …) in the data directory, saved
/// incrementally so a block is written once, not on every change.
///
/// Two files:
/// - `replica.state`: a full snapshot (`PersistentState.canonicalBytes`), replaced atomically
///   (temporary file, flush, rename, directory flush).
/// - `replica.log`: what changed since that snapshot, one record per change (a new prepared
///   certificate, a prepare sent, the view, …), appended and flushed with `fdatasync` before
///   `save` returns. The log starts with a digest of the snapshot it extends, so a log left over
///   from before a newer snapshot is ignored.
///
/// `save` compares the state with the last one saved and appends only the difference; a block
/// enters the log once (a primary's own proposal is not written again when it becomes prepared).
/// When the log has grown past twice the snapshot (and at least `compactionThreshold`), the next
/// save writes a new snapshot and starts an empty log. A crash while appending leaves a torn last
/// record (it fails its checksum and is ignored): nothing was sent on the strength of it, since
/// the node sends only after `save` returns.
public final class ReplicaStateFile: @unchecked Sendable {
    public let path: String
    public let logPath: String
    public let suite: any CryptoSuite
    /// The log is folded into a new snapshot once it is larger than this and than twice the snapshot.
    public var compactionThreshold: Int

    /// The state as the files hold it (nil before the first save).
    public private(set) var saved: PersistentState?
    /// Flushes to disk this file issued (fsync/fdatasync), for metrics.
    public let flushes = Atomic<Int>(0)
    /// Saves that wrote something, and the time they took (encoding, write and flush): the wait
    /// a node adds before it may send what depends on them.
    public let writtenSaves = DurationCounter()
    var log: Int32 = -1
    var logSize = 0
    var snapshotSize = 0

    public init(directory: String, suite: any CryptoSuite, compactionThreshold: Int = 16 << 20) {
        path = (directory as NSString).appendingPathComponent("replica.state")
        logPath = (directory as NSString).appendingPathComponent("replica.log")
        self.suite = suite
        self.compactionThreshold = compactionThreshold
    }

    deinit { if log >= 0 { close(log) } }

    /// The last state saved: the snapshot with the log's valid records applied.
    public func load() throws -> PersistentState? {
        let snapshot = FileManager.default.contents(atPath: path).map { [UInt8]($0) }
        var state: PersistentState?
        if let snapshot {
            state = try PersistentState(canonicalBytes: snapshot, suite: suite)
            snapshotSize = snapshot.count
        }
        if let data = FileManager.default.contents(atPath: logPath) {
            state = try Self.replay([UInt8](data), onto: state, snapshotDigest: digest(snapshot ?? []), suite: suite)
        }
        saved = state
        return state
    }

    /// Makes `state` durable: appends what changed since the last save to the log and flushes it
    /// (or writes a new snapshot when the log is due for compaction). Nothing to write, no flush.
    public func save(_ state: PersistentState) throws {
        if let saved, saved == state { return }
        let start = DurationCounter.now()
        // The first save after opening starts a fresh snapshot and log; so does a long log.
        if log < 0 || saved == nil || logSize > max(compactionThreshold, 2 * snapshotSize) {
            try writeSnapshot(state)
            writtenSaves.record(since: start)
            return
        }
        let records = Self.difference(from: saved!, to: state)
        guard !records.isEmpty else {
            self.saved = state
            return
        }
        var bytes: [UInt8] = []
        for record in records { Self.frame(record, into: &bytes) }
        try append(bytes)
        saved = state
        writtenSaves.record(since: start)
    }

    // MARK: Snapshot

    func writeSnapshot(_ state: PersistentState) throws {
        let bytes = state.canonicalBytes
        try writeAtomically(bytes, to: path)
        snapshotSize = bytes.count
        // A fresh log that names this snapshot; an older log (other digest) is ignored by `load`.
        if log >= 0 { close(log); log = -1 }
        let temporary = logPath + ".tmp"
        var header = Array(Self.magic)
        header += digest(bytes)
        try writeAtomically(header, to: temporary, rename: logPath)
        log = open(logPath, O_WRONLY | O_APPEND)
        guard log >= 0 else { throw NodeError(.storage, "cannot open \(logPath): \(String(cString: strerror(errno)))") }
        logSize = header.count
        saved = state
    }

    func writeAtomically(_ bytes: [UInt8], to target: String, rename destination: String? = nil) throws {
        let temporary = destination == nil ? target + ".tmp" : target
        let final = destination ?? target
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw NodeError(.storage, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try writeAll(bytes, to: fd, name: temporary)
        flushes.add(1, ordering: .relaxed)
        guard fsync(fd) == 0 else {
            throw NodeError(.storage, "cannot flush \(temporary) to disk: \(String(cString: strerror(errno)))")
        }
        guard rename(temporary, final) == 0 else { throw NodeError(.storage, "cannot replace \(final): \(String(cString: strerror(errno)))") }
        let directory = open((final as NSString).deletingLastPathComponent, O_RDONLY)
        if directory >= 0 {
            flushes.add(1, ordering: .relaxed)
            fsync(directory)
            close(directory)
        }
    }

    func append(_ bytes: [UInt8]) throws {
        try writeAll(bytes, to: log, name: logPath)
        flushes.add(1, ordering: .relaxed)
        guard fdatasync(log) == 0 else {
            throw NodeError(.storage, "cannot flush \(logPath) to disk: \(String(cString: strerror(errno)))")
        }
        logSize += bytes.count
    }

    func writeAll(_ bytes: [UInt8], to fd: Int32, name: String) throws {
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { throw NodeError(.storage, "cannot write \(name): \(String(cString: strerror(errno)))") }
            written += count
        }
    }

    func digest(_ bytes: [UInt8]) -> [UInt8] { Array(suite.hash(bytes).bytes.prefix(16)) }

    // MARK: Log records

    static let magic: [UInt8] = Array("SCF-REPLICA-LOG1".utf8)

    enum Tag: UInt8 {
        case views = 1, checkpoint, prepared, preparedOnOwnProposal, removePrepared, sentPrepare, removeSentPrepare,
             ownProposal, removeOwnProposal, newView
    }

    /// The records that turn `old` into `new`, in an order `replay` can apply.
    static func difference(from old: PersistentState, to new: PersistentState) -> [[UInt8]] {
        var records: [[UInt8]] = []
        func record(_ tag: Tag, _ body: (inout CanonicalWriter) -> Void) {
            var writer = CanonicalWriter(capacity: 128)
            writer.write(tag.rawValue)
            body(&writer)
            records.append(writer.bytes)
        }
        if old.view != new.view || old.viewChangeTarget != new.viewChangeTarget || old.viewChangeAttempt != new.viewChangeAttempt {
            record(.views) { $0.write(new.view); $0.write(new.viewChangeTarget); $0.write(new.viewChangeAttempt) }
        }
        if old.stableCheckpoint != new.stableCheckpoint { record(.checkpoint) { $0.write(new.stableCheckpoint) } }
        if old.lastNewView != new.lastNewView {
            record(.newView) { writer in
                if let view = new.lastNewView { writer.write(UInt8(1)); view.encode(to: &writer) } else { writer.write(UInt8(0)) }
            }
        }
        // Own proposals before prepared certificates, which may refer to them.
        let oldProposals = Dictionary(old.ownProposals.map { ($0.height.value, $0) }, uniquingKeysWith: { $1 })
        let newProposals = Dictionary(new.ownProposals.map { ($0.height.value, $0) }, uniquingKeysWith: { $1 })
        for proposal in new.ownProposals where oldProposals[proposal.height.value] != proposal {
            record(.ownProposal) { proposal.encode(to: &$0) }
        }
        let oldPrepared = Dictionary(old.prepared.map { ($0.height.value, $0) }, uniquingKeysWith: { $1 })
        for certificate in new.prepared where oldPrepared[certificate.height.value] != certificate {
            if newProposals[certificate.height.value] == certificate.prePrepare {
                record(.preparedOnOwnProposal) { $0.write(certificate.height); $0.write(certificate.prepares) }
            } else {
                record(.prepared) { certificate.encode(to: &$0) }
            }
        }
        let newPreparedHeights = Set(new.prepared.map(\.height.value))
        for certificate in old.prepared where !newPreparedHeights.contains(certificate.height.value) {
            record(.removePrepared) { $0.write(certificate.height) }
        }
        for proposal in old.ownProposals where newProposals[proposal.height.value] == nil {
            record(.removeOwnProposal) { $0.write(proposal.height) }
        }
        let oldSent = Dictionary(old.sentPrepares.map { ($0.height.value, $0) }, uniquingKeysWith: { $1 })
        let newSent = Set(new.sentPrepares.map(\.height.value))
        for proposal in new.sentPrepares where oldSent[proposal.height.value] != proposal {
            record(.sentPrepare) { $0.write(proposal) }
        }
        for proposal in old.sentPrepares where !newSent.contains(proposal.height.value) {
            record(.removeSentPrepare) { $0.write(proposal.height) }
        }
        return records
    }

    /// A record on disk: length (4 bytes), CRC-32 of the record (4 bytes), the record.
    static func frame(_ record: [UInt8], into bytes: inout [UInt8]) {
        var writer = CanonicalWriter(capacity: 8)
        writer.write(UInt32(record.count))
        writer.write(CRC32.checksum(record))
        bytes += writer.bytes
        bytes += record
    }

    /// Applies the log's records to the snapshot's state. Stops at the first torn or damaged
    /// record (the tail of a crashed append); ignores a log that belongs to another snapshot.
    static func replay(_ log: [UInt8], onto snapshot: PersistentState?, snapshotDigest: [UInt8],
                       suite: any CryptoSuite) throws -> PersistentState? {
        guard log.count >= magic.count + 16, Array(log[0..<magic.count]) == magic,
              Array(log[magic.count..<magic.count + 16]) == snapshotDigest, var state = snapshot else { return snapshot }
        var prepared = Dictionary(state.prepared.map { ($0.height.value, $0) }, uniquingKeysWith: { $1 })
        var sent = Dictionary(state.sentPrepares.map { ($0.height.value, $0) }, uniquingKeysWith: { $1 })
        var proposals = Dictionary(state.ownProposals.map { ($0.height.value, $0) }, uniquingKeysWith: { $1 })
        var offset = magic.count + 16
        while offset + 8 <= log.count {
            var header = CanonicalReader(Array(log[offset..<offset + 8]))
            let length = Int(try header.readUInt32())
            let checksum = try header.readUInt32()
            guard offset + 8 + length <= log.count else { break }
            let record = Array(log[offset + 8..<offset + 8 + length])
            guard CRC32.checksum(record) == checksum, let tag = record.first.flatMap(Tag.init(rawValue:)) else { break }
            offset += 8 + length
            var reader = CanonicalReader(record)
            _ = try reader.readUInt8()
            switch tag {
            case .views:
                state.view = try reader.read(); state.viewChangeTarget = try reader.readOptional()
                state.viewChangeAttempt = try reader.readUInt32()
            case .checkpoint: state.stableCheckpoint = try reader.read()
            case .newView:
                state.lastNewView = try reader.readUInt8() == 1 ? try NewView(from: &reader, suite: suite) : nil
            case .prepared:
                let certificate = try PreparedCertificate(from: &reader, suite: suite)
                prepared[certificate.height.value] = certificate
            case .preparedOnOwnProposal:
                let height: Height = try reader.read()
                let prepares: [Prepare] = try reader.readArray()
                guard let proposal = proposals[height.value] else {
                    throw NodeError(.storage, "replica log: prepared certificate at \(height) refers to a proposal the log does not hold")
                }
                prepared[height.value] = PreparedCertificate(prePrepare: proposal, prepares: prepares)
            case .removePrepared: prepared[try reader.read(Height.self).value] = nil
            case .sentPrepare:
                let proposal: ProposalSignature = try reader.read()
                sent[proposal.height.value] = proposal
            case .removeSentPrepare: sent[try reader.read(Height.self).value] = nil
            case .ownProposal:
                let proposal = try PrePrepare(from: &reader, suite: suite)
                proposals[proposal.height.value] = proposal
            case .removeOwnProposal: proposals[try reader.read(Height.self).value] = nil
            }
            try reader.expectEnd()
        }
        return PersistentState(view: state.view, viewChangeTarget: state.viewChangeTarget, viewChangeAttempt: state.viewChangeAttempt,
                               stableCheckpoint: state.stableCheckpoint, prepared: Array(prepared.values),
                               sentPrepares: Array(sent.values), lastNewView: state.lastNewView, ownProposals: Array(proposals.values))
    }
}

/// CRC-32 (IEEE 802.3), for the replica log's torn-write detection.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { table in
            bytes.withUnsafeBufferPointer { buffer in
                for byte in buffer { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
            }
        }
        return crc ^ 0xFFFF_FFFF
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
