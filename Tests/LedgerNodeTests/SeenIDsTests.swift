import LedgerCore
@testable import LedgerNode
import Testing

/// The admission stage's memory of recently seen transaction ids: bounded, oldest forgotten first.
@Suite struct SeenIDsTests {
    static func id(_ n: Int) -> Hash { Hash(w0: UInt64(n), w1: 7, w2: 0, w3: 1) }

    /// Inserts each id in turn; true for each one that was new.
    static func insert(_ numbers: [Int], into seen: inout ValidatorNode.SeenIDs) -> [Bool] {
        numbers.map { seen.insert(id($0)) }
    }

    @Test func anIDIsNewOnceThenSeenUntilItIsTheOldestPastTheLimit() {
        var seen = ValidatorNode.SeenIDs(limit: 4)
        #expect(Self.insert([1, 1], into: &seen) == [true, false], "a second copy is not new")
        #expect(Self.insert([2, 3, 4, 2], into: &seen) == [true, true, true, false])
        // A fifth id pushes out the oldest (1), and only it.
        #expect(Self.insert([5], into: &seen) == [true])
        #expect(seen.entries.count == 4)
        #expect(Self.insert([3, 4, 5], into: &seen) == [false, false, false])
        #expect(Self.insert([1, 1], into: &seen) == [true, false], "the oldest was forgotten, so it is new again")
    }

    @Test func memoryStaysAtTheLimitWhateverTheHistory() {
        var seen = ValidatorNode.SeenIDs(limit: 1_000)
        _ = Self.insert(Array(0..<50_000), into: &seen)
        #expect(seen.entries.count == 1_000)
        #expect(seen.ring.count == 1_000)
        #expect(seen.ring.capacity < 2_000, "the ring never grows past the limit")
        let recent = Self.insert(Array(49_000..<50_000), into: &seen)
        #expect(recent.allSatisfy { !$0 }, "the last 1,000 ids are all remembered")
        #expect(Self.insert([48_999], into: &seen) == [true])
    }

    @Test func aRemovedIDIsNewAgain() {
        var seen = ValidatorNode.SeenIDs(limit: 8)
        #expect(Self.insert([1], into: &seen) == [true])
        seen.remove(Self.id(1))
        #expect(Self.insert([1], into: &seen) == [true])
    }
}
