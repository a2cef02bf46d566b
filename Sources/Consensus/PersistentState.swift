import LedgerCore

/// What a replica must find again after a crash (committed blocks are stored separately, by the
/// `.commit` directive): its view, the view change it is in, its stable checkpoint, what it
/// prepared (so a later view change still carries it) and which proposals it sent prepares for
/// (so it never prepares two blocks for one view and height), and the last new-view message.
public struct PersistentState: Hashable, Sendable {
    public static let version: UInt8 = 1
    public var view: View
    public var viewChangeTarget: View?
    public var viewChangeAttempt: UInt32
    public var stableCheckpoint: CheckpointCertificate
    /// Sorted by height.
    public var prepared: [PreparedCertificate]
    /// Sorted by height: the proposal this replica sent a prepare for, per height.
    public var sentPrepares: [ProposalSignature]
    public var lastNewView: NewView?
    /// Sorted by height: the blocks this replica proposed as primary of `view` and has not yet
    /// committed, so a restarted primary never proposes a second block for a height.
    public var ownProposals: [PrePrepare]

    public init(view: View, viewChangeTarget: View?, viewChangeAttempt: UInt32, stableCheckpoint: CheckpointCertificate,
                prepared: [PreparedCertificate], sentPrepares: [ProposalSignature], lastNewView: NewView?,
                ownProposals: [PrePrepare] = []) {
        self.ownProposals = ownProposals.sorted { $0.height < $1.height }
        self.view = view
        self.viewChangeTarget = viewChangeTarget
        self.viewChangeAttempt = viewChangeAttempt
        self.stableCheckpoint = stableCheckpoint
        self.prepared = prepared.sorted { $0.height < $1.height }
        self.sentPrepares = sentPrepares.sorted { $0.height < $1.height }
        self.lastNewView = lastNewView
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(Self.version)
        writer.write(view); writer.write(viewChangeTarget); writer.write(viewChangeAttempt); writer.write(stableCheckpoint)
        writer.write(UInt32(prepared.count))
        for certificate in prepared { certificate.encode(to: &writer) }
        writer.write(sentPrepares)
        if let lastNewView {
            writer.write(UInt8(1)); lastNewView.encode(to: &writer)
        } else {
            writer.write(UInt8(0))
        }
        writer.write(UInt32(ownProposals.count))
        for proposal in ownProposals { proposal.encode(to: &writer) }
    }

    public var canonicalBytes: [UInt8] {
        var writer = CanonicalWriter(capacity: 1024)
        encode(to: &writer)
        return writer.bytes
    }

    public init(from reader: inout CanonicalReader, suite: any CryptoSuite) throws {
        let version = try reader.readUInt8()
        guard version == Self.version else { throw reader.error("unsupported replica state version \(version)") }
        view = try reader.read(); viewChangeTarget = try reader.readOptional(); viewChangeAttempt = try reader.readUInt32()
        stableCheckpoint = try reader.read()
        let count = try reader.readCount()
        var prepared: [PreparedCertificate] = []
        for _ in 0..<count { prepared.append(try PreparedCertificate(from: &reader, suite: suite)) }
        self.prepared = prepared
        sentPrepares = try reader.readArray()
        switch try reader.readUInt8() {
        case 0: lastNewView = nil
        case 1: lastNewView = try NewView(from: &reader, suite: suite)
        default: throw reader.error("optional tag must be 0 or 1")
        }
        let proposalCount = try reader.readCount()
        var proposals: [PrePrepare] = []
        for _ in 0..<proposalCount { proposals.append(try PrePrepare(from: &reader, suite: suite)) }
        ownProposals = proposals
    }

    public init(canonicalBytes: [UInt8], suite: any CryptoSuite) throws {
        var reader = CanonicalReader(canonicalBytes)
        try self.init(from: &reader, suite: suite)
        try reader.expectEnd()
    }
}
