import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing
@testable import PeerNetwork

@Suite struct FramingTests {
    static func frame(_ payload: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        Framing.writeFrame(payload, into: &buffer)
        return buffer
    }

    @Test func decoderPassesTheVerifier() throws {
        let payloads: [[UInt8]] = [
            Array("hello".utf8), [], [0, 0, 0, 0], Array(repeating: 0xAB, count: 1000), Array(0...255),
        ]
        var pairs = payloads.map { (Self.frame($0), [ByteBuffer(bytes: $0)]) }
        // Two frames in one write come out as two frames.
        var two = Self.frame([1, 2, 3])
        two.writeImmutableBuffer(Self.frame([4]))
        pairs.append((two, [ByteBuffer(bytes: [1, 2, 3]), ByteBuffer(bytes: [4])]))
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder(maxFrameLength: 4096) }
    }

    @Test func decoderWithAHandshakeCapPassesTheVerifier() throws {
        // Three small leading frames, then a larger one, as a peer sends its handshake and then consensus frames.
        var stream = Self.frame(Array(repeating: 1, count: 100))
        stream.writeImmutableBuffer(Self.frame([2]))
        stream.writeImmutableBuffer(Self.frame([3]))
        stream.writeImmutableBuffer(Self.frame(Array(repeating: 4, count: 300)))
        let outputs = [ByteBuffer(bytes: Array(repeating: 1, count: 100)), ByteBuffer(bytes: [2]), ByteBuffer(bytes: [3]),
                       ByteBuffer(bytes: Array(repeating: 4, count: 300))]
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: [(stream, outputs)]) {
            FrameDecoder(maxFrameLength: 4096, leadingFrameCount: 3, leadingFrameLimit: 100)
        }
    }

    @Test func leadingFramesHaveTheSmallerCap() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameLength: 4096, leadingFrameCount: 3, leadingFrameLimit: 128)))
        try channel.writeInbound(Self.frame(Array(repeating: 1, count: 128)))
        #expect(try channel.readInbound(as: ByteBuffer.self)?.readableBytes == 128)
        #expect(throws: FrameError.frameTooLarge(length: 129, limit: 128)) { try channel.writeInbound(Self.frame(Array(repeating: 1, count: 129))) }
        _ = try? channel.finish()
    }

    @Test func frameAtTheCapIsAcceptedAndOneByteMoreIsNot() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameLength: 64)))
        try channel.writeInbound(Self.frame(Array(repeating: 1, count: 64)))
        #expect(try channel.readInbound(as: ByteBuffer.self)?.readableBytes == 64)

        // Only the header of an oversized frame is needed to reject it.
        var header = ByteBuffer()
        header.writeInteger(UInt32(65))
        #expect(throws: FrameError.frameTooLarge(length: 65, limit: 64)) { try channel.writeInbound(header) }
        _ = try? channel.finish()
    }

    @Test func hugeLengthPrefixIsRejectedWithoutBuffering() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        #expect(throws: FrameError.self) { try channel.writeInbound(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF])) }
        _ = try? channel.finish()
    }

    @Test func partialFrameAtEndOfStreamIsDropped() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 9, 1, 2]))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}
