import Foundation
@testable import LedgerNode
import Testing

@Suite struct HeapTrimmerTests {
    /// One arena per processor, never fewer than two; an operator's `MALLOC_ARENA_MAX` wins.
    @Test func arenasAreCappedPerProcessorUnlessTheEnvironmentSaysOtherwise() {
        #if canImport(Glibc)
        #expect(HeapTrimmer.limitArenas(processors: 1, environment: [:]) == 2)
        #expect(HeapTrimmer.limitArenas(processors: 6, environment: [:]) == 6)
        #expect(HeapTrimmer.limitArenas(processors: 6, environment: ["MALLOC_ARENA_MAX": "4"]) == nil)
        // Leave this test process as a node would be on this machine.
        HeapTrimmer.limitArenas(environment: [:])
        #else
        #expect(HeapTrimmer.limitArenas(processors: 1, environment: [:]) == nil)
        #endif
    }
}
