#if canImport(Glibc)
import Glibc
#endif

/// Gives memory the C allocator keeps but no longer uses back to the system, every few seconds.
///
/// glibc's malloc keeps freed memory in per-thread arenas for reuse and returns it to the kernel
/// only from the top of the main heap. A node allocates on many threads (network event loops,
/// the admission stage's parallel signature checks, the store's writer), so after a burst the
/// arenas hold tens of megabytes of free pages that still count as the process's resident memory.
/// `malloc_trim(0)` releases free pages in every arena (measured on a bench node after 160,000
/// transactions: 34-61 MB of 188-208 MB anonymous memory). It walks the free lists under the arena
/// locks, which takes well under a millisecond here, so running it every 10 s costs nothing
/// measurable. Not part of the Swift Glibc module, so it is looked up at run time; without glibc
/// (macOS) this does nothing. See docs/DECISIONS.md.
public enum HeapTrimmer {
    private typealias Trim = @convention(c) (Int) -> Int32

    /// Trims every `interval` until the task is cancelled.
    public static func start(every interval: Duration = .seconds(10)) -> Task<Void, Never> {
        Task.detached(priority: .background) {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                trim()
            }
        }
    }

    /// Releases free allocator memory now; returns whether any was released.
    @discardableResult
    public static func trim() -> Bool {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return false }
        return unsafeBitCast(symbol, to: Trim.self)(0) == 1
        #else
        return false
        #endif
    }
}
