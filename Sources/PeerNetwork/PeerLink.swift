import LedgerCore
import NIOCore
import Synchronization

/// One peer's outbound side: a bounded queue that outlives connections, and the peer's current
/// authenticated connection, if any.
///
/// Queue policy: drop-oldest. `send` never blocks and never fails for a full queue; when the
/// queue holds `frameLimit` frames or `byteLimit` bytes, the oldest frames are dropped to make
/// room. Consensus tolerates lost messages (it retransmits through view changes and catch-up),
/// and the newest messages are the useful ones. The queue survives reconnects, so a short
/// outage loses only what was in flight; but frames older than `maxAge` when a connection comes
/// up are dropped then (counted as dropped): after a long outage the peer catches up from blocks,
/// and hours of stale relays and votes would only cost it work (a restarted validator used to
/// spend seconds checking the signatures of relayed transactions long committed). Frames move from the queue into the connection only
/// while the connection is writable (its buffered bytes are under the high-water mark), so a
/// peer that stops reading holds at most the queue limits plus one write batch of memory here.
final class PeerLink: Sendable {
    let peer: ValidatorIndex
    let frameLimit: Int
    let byteLimit: Int
    /// Frames queued longer than this (nanoseconds) are dropped when a connection comes up.
    let maxAgeNanoseconds: UInt64
    /// Monotonic nanoseconds (injectable for tests).
    let now: @Sendable () -> UInt64

    /// Frames are coalesced into writes of about this many bytes.
    static let batchBytes = 128 << 10
    /// Batches written per event-loop turn before yielding to other work.
    static let batchesPerTurn = 8

    private struct State {
        /// Each frame with when it was queued (`now()`).
        var queue = CircularBuffer<(frame: [UInt8], queuedAt: UInt64)>(initialCapacity: 16)
        var queuedBytes = 0
        var channel: (any Channel)?
        var drainScheduled = false
        var droppedTotal: UInt64 = 0
        var overflowing = false
        var establishedCount: UInt64 = 0
        var receivingPaused = false
    }

    private let state = Mutex(State())

    init(peer: ValidatorIndex, frameLimit: Int, byteLimit: Int, maxAge: Duration = .seconds(2),
         now: @escaping @Sendable () -> UInt64 = { NIODeadline.now().uptimeNanoseconds }) {
        self.peer = peer
        self.frameLimit = frameLimit
        self.byteLimit = byteLimit
        let (seconds, attoseconds) = maxAge.components
        self.maxAgeNanoseconds = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        self.now = now
    }

    /// Queues `frame`; the second value is true when this call started an overflow episode.
    func enqueue(_ frame: [UInt8]) -> (SendResult, overflowStarted: Bool) {
        let (result, overflowStarted, channelToDrain): (SendResult, Bool, (any Channel)?) = state.withLock { state in
            var dropped = 0
            while !state.queue.isEmpty
                && (state.queue.count >= frameLimit || state.queuedBytes + frame.count > byteLimit) {
                state.queuedBytes -= state.queue.removeFirst().frame.count
                dropped += 1
            }
            state.queue.append((frame, now()))
            state.queuedBytes += frame.count
            var started = false
            if dropped > 0 {
                state.droppedTotal += UInt64(dropped)
                if !state.overflowing {
                    state.overflowing = true
                    started = true
                }
            }
            var drain: (any Channel)?
            if let channel = state.channel, !state.drainScheduled {
                state.drainScheduled = true
                drain = channel
            }
            return (dropped == 0 ? .enqueued : .enqueuedDroppingOldest(dropped), started, drain)
        }
        if let channelToDrain {
            channelToDrain.eventLoop.execute { self.drain(channelToDrain) }
        }
        return (result, overflowStarted)
    }

    /// Makes `channel` the peer's connection; returns the connection it replaces.
    func attach(_ channel: any Channel) -> (replaced: (any Channel)?, receivingPaused: Bool) {
        let time = now()
        let (replaced, paused, drainNow): ((any Channel)?, Bool, Bool) = state.withLock { state in
            while let oldest = state.queue.first, time &- oldest.queuedAt > maxAgeNanoseconds {
                state.queuedBytes -= state.queue.removeFirst().frame.count
                state.droppedTotal += 1
            }
            let old = state.channel
            state.channel = channel
            state.establishedCount += 1
            state.drainScheduled = !state.queue.isEmpty
            return (old, state.receivingPaused, state.drainScheduled)
        }
        if drainNow { channel.eventLoop.execute { self.drain(channel) } }
        return (replaced, paused)
    }

    /// Forgets `channel` if it is the current connection; true when it was.
    func detach(_ channel: any Channel) -> Bool {
        state.withLock { state in
            guard let current = state.channel, current === channel else { return false }
            state.channel = nil
            state.drainScheduled = false
            return true
        }
    }

    /// The connection became writable again: resume moving frames into it.
    func writabilityRestored(_ channel: any Channel) {
        let start = state.withLock { state -> Bool in
            guard let current = state.channel, current === channel, !state.drainScheduled, !state.queue.isEmpty else { return false }
            state.drainScheduled = true
            return true
        }
        if start { channel.eventLoop.execute { self.drain(channel) } }
    }

    var currentChannel: (any Channel)? { state.withLock { $0.channel } }
    var establishedCount: UInt64 { state.withLock { $0.establishedCount } }

    var status: OutboundQueueStatus {
        state.withLock {
            OutboundQueueStatus(frames: $0.queue.count, bytes: $0.queuedBytes, droppedFrames: $0.droppedTotal, connected: $0.channel != nil)
        }
    }

    /// Sets the inbound pause flag; returns the current connection to apply it to.
    func setReceivingPaused(_ paused: Bool) -> (any Channel)? {
        state.withLock { state in
            state.receivingPaused = paused
            return state.channel
        }
    }

    /// Moves queued frames into `channel` while it stays the current, writable connection.
    /// Runs on `channel`'s event loop.
    private func drain(_ channel: any Channel) {
        var batches = 0
        while true {
            let batch: [[UInt8]]? = state.withLock { state in
                guard let current = state.channel, current === channel else { return nil }
                guard channel.isWritable else {
                    // Resumed by writabilityRestored.
                    state.drainScheduled = false
                    return nil
                }
                if state.queue.isEmpty {
                    state.drainScheduled = false
                    state.overflowing = false
                    return nil
                }
                if batches >= Self.batchesPerTurn {
                    return []  // yield the loop, keep drainScheduled
                }
                var taken: [[UInt8]] = []
                var bytes = 0
                while let next = state.queue.first?.frame, taken.isEmpty || bytes + next.count <= Self.batchBytes {
                    taken.append(state.queue.removeFirst().frame)
                    state.queuedBytes -= next.count
                    bytes += next.count
                }
                return taken
            }
            guard let batch else { return }
            if batch.isEmpty {
                channel.eventLoop.execute { self.drain(channel) }
                return
            }
            batches += 1
            write(batch, to: channel)
        }
    }

    private func write(_ frames: [[UInt8]], to channel: any Channel) {
        var size = 0
        for frame in frames { size += Framing.headerLength + frame.count }
        var buffer = channel.allocator.buffer(capacity: size)
        for frame in frames { Framing.writeFrame(frame, into: &buffer) }
        channel.writeAndFlush(buffer, promise: nil)
    }
}
