import Dispatch
import Synchronization

/// Operations of one kind and the time they took, for a pair of metrics (`…_total` and
/// `…_seconds_total`). Monotonic time (the node's shell, never the deterministic core); safe to
/// share between threads: the node's queue records, the metrics endpoint reads.
public final class DurationCounter: Sendable {
    private let operations = Atomic<Int>(0)
    private let nanoseconds = Atomic<Int>(0)

    public init() {}

    public var count: Int { operations.load(ordering: .relaxed) }
    public var seconds: Double { Double(nanoseconds.load(ordering: .relaxed)) / 1e9 }

    /// A monotonic reading to pass to `record(since:)`.
    public static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Counts one operation that began at `start`.
    public func record(since start: UInt64) {
        operations.add(1, ordering: .relaxed)
        nanoseconds.add(Int(Self.now() &- start), ordering: .relaxed)
    }

    /// Runs `work` and counts it.
    public func time<T>(_ work: () throws -> T) rethrows -> T {
        let start = Self.now()
        defer { record(since: start) }
        return try work()
    }
}
