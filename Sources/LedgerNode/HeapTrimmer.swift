import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Gives memory the C allocator keeps but no longer uses back to the system, every few seconds,
/// and caps how many arenas it keeps it in (`limitArenas`).
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
    private typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    /// glibc's `M_ARENA_MAX` (malloc.h).
    private static let arenaMaxParameter: Int32 = -8

    /// Caps glibc's malloc arenas at one per processor (at least 2) instead of its default of eight
    /// per processor, unless the environment already sets `MALLOC_ARENA_MAX`. Call it first thing
    /// in a long-running process, before its threads allocate: it bounds the arenas created from
    /// then on. Each arena keeps its own free pages, so with a node's many allocating threads the
    /// default left tens of megabytes resident between trims: offering 3,000 tx/s to four nodes on
    /// 2 cores, peaks of 193-219 MB per node with the default against 161-177 MB with 2 arenas,
    /// throughput the same within the machine's noise; after 1,000,000 transactions of overload,
    /// peaks of 220-313 MB against 192-225 (DECISIONS 54). Returns the cap set, or nil if none was
    /// (the environment's is kept, or the allocator is not glibc's).
    @discardableResult
    public static func limitArenas(processors: Int = ProcessInfo.processInfo.activeProcessorCount,
                                   environment: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        #if canImport(Glibc)
        guard environment["MALLOC_ARENA_MAX"] == nil, let mallopt = glibcFunction("mallopt", as: Mallopt.self) else { return nil }
        let arenas = max(2, processors)
        return mallopt(arenaMaxParameter, Int32(clamping: arenas)) == 1 ? arenas : nil
        #else
        return nil
        #endif
    }

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
        guard let mallocTrim = glibcFunction("malloc_trim", as: Trim.self) else { return false }
        return mallocTrim(0) == 1
        #else
        return false
        #endif
    }

    #if canImport(Glibc)
    /// A C library function looked up at run time (`RTLD_DEFAULT`): the Glibc module does not
    /// export glibc's malloc extensions, and another allocator may lack them.
    private static func glibcFunction<F>(_ name: String, as type: F.Type) -> F? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), name).map { unsafeBitCast($0, to: type) }
    }
    #endif
}
