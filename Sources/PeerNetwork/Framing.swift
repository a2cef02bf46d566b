import NIOCore

/// Wire framing between validators: every frame is a 4-byte big-endian length followed by that
/// many payload bytes. Lengths above the configured cap close the connection before any of the
/// payload is buffered, so a peer cannot make this process allocate more than the cap.
public enum Framing {
    /// Bytes in a frame header.
    public static let headerLength = 4
    /// The default largest payload accepted or sent: 8 MiB, twice the default block size limit.
    public static let defaultMaxFrameLength = 8 << 20

    /// Appends `payload` to `buffer` as one frame.
    @inlinable
    public static func writeFrame(_ payload: some Collection<UInt8>, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(truncatingIfNeeded: payload.count), endianness: .big)
        buffer.writeBytes(payload)
    }
}

/// Why inbound bytes were not a valid frame. The connection that sent them is closed.
public struct FrameError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// The length prefix is above the cap.
        case frameTooLarge
    }
    public var code: Code
    /// The announced payload length.
    public var length: Int
    /// The cap in force.
    public var limit: Int

    public static func frameTooLarge(length: Int, limit: Int) -> FrameError {
        FrameError(code: .frameTooLarge, length: length, limit: limit)
    }

    public var description: String {
"frameTooLarge: the peer announced a frame of \(length) bytes, the limit is \(limit); the connection is closed "
            + "(handshake frames are capped at a few KiB; for consensus frames, raise maxFrameLength on every node "
            + "if frames this large are legitimate)"
    }
}

/// Splits the inbound byte stream into frame payloads (zero-copy slices of the read buffer).
///
/// A length prefix above the cap throws ``FrameError`` as soon as the four header bytes have
/// arrived; the pipeline's error handling then closes the connection. The first
/// `leadingFrameCount` frames of a stream can have a smaller cap: the transport uses it for the
/// peer's three handshake messages, so a peer that has not proved its identity yet cannot make
/// this node buffer more than a few KiB. Empty frames are allowed and decode to an empty buffer.
public struct FrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = ByteBuffer

    public let maxFrameLength: Int
    public let leadingFrameLimit: Int
    private var leadingFramesLeft: Int

    /// - Parameters:
    ///   - maxFrameLength: the largest payload accepted.
    ///   - leadingFrameCount: how many frames at the start of the stream get `leadingFrameLimit`.
    ///   - leadingFrameLimit: the cap for those frames.
    public init(maxFrameLength: Int = Framing.defaultMaxFrameLength, leadingFrameCount: Int = 0, leadingFrameLimit: Int = 0) {
        precondition(maxFrameLength >= 0 && maxFrameLength <= Int(UInt32.max), "maxFrameLength must fit in 32 bits")
        self.maxFrameLength = maxFrameLength
        self.leadingFrameLimit = min(max(leadingFrameLimit, 0), maxFrameLength)
        self.leadingFramesLeft = max(leadingFrameCount, 0)
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try nextFrame(&buffer) else { return .needMoreData }
        context.fireChannelRead(NIOAny(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A partial frame at end of stream is discarded: the peer went away mid-frame.
        try decode(context: context, buffer: &buffer)
    }

    /// The next complete frame in `buffer`, nil if more bytes are needed.
    mutating func nextFrame(_ buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else { return nil }
        let payloadLength = Int(length)
        let limit = leadingFramesLeft > 0 ? leadingFrameLimit : maxFrameLength
        guard payloadLength <= limit else {
            throw FrameError.frameTooLarge(length: payloadLength, limit: limit)
        }
        guard buffer.readableBytes >= Framing.headerLength + payloadLength else { return nil }
        buffer.moveReaderIndex(forwardBy: Framing.headerLength)
        if leadingFramesLeft > 0 { leadingFramesLeft -= 1 }
        return buffer.readSlice(length: payloadLength)
    }
}
