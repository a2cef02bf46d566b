@testable import LedgerCore
import LedgerTestKit
import Testing

/// `StateChanges.merge` takes shortcuts when a side is empty (`laterWins`) and a block reserves
/// room for its writes; every combination must give what merging entry by entry gives.
@Suite struct StateChangesTests {
    static let members: [MemberID] = [TestConsortium.core, TestConsortium.bankA, TestConsortium.bankB, TestConsortium.tier1]

    /// Changes that write the given nonces and fragments (each fragment under its id).
    static func changes(nonces: [(MemberID, UInt64)], fragments: [Fragment]) -> StateChanges {
        var changes = StateChanges()
        for (member, nonce) in nonces { changes.nonces[member] = nonce }
        for fragment in fragments { changes.fragments[fragment.id] = fragment }
        return changes
    }

    /// Entry by entry, later wins: what `merge` must equal.
    static func reference(_ earlier: StateChanges, _ later: StateChanges) -> StateChanges {
        var result = earlier
        for (key, value) in later.nonces { result.nonces[key] = value }
        for (key, value) in later.fragments { result.fragments[key] = value }
        return result
    }

    @Test func mergeGivesWhatMergingEntryByEntryGivesWhicheverSideIsEmptyOrReserved() throws {
        let split = try InvariantCheckTests.Split()
        let kept = split.ledger.fragment(split.kept)
        let sent = split.ledger.fragment(split.sent)
        var keptLater = kept
        keptLater.outstanding = MinorUnits(kept.outstanding.value - 1)

        let empty = StateChanges()
        var reserved = StateChanges()
        reserved.reserveCapacity(forTransactions: 64)
        #expect(reserved.isEmpty && reserved.fragments.capacity >= 64)
        let earlier = Self.changes(nonces: [(Self.members[0], 3), (Self.members[1], 7)], fragments: [kept])
        // Overlaps `earlier` on one nonce and one fragment, adds one of each.
        let later = Self.changes(nonces: [(Self.members[1], 8), (Self.members[2], 1)], fragments: [keptLater, sent])

        for mine in [empty, reserved, earlier] {
            for theirs in [empty, reserved, later, earlier] {
                var merged = mine
                merged.merge(theirs)
                let expected = Self.reference(mine, theirs)
                #expect(merged.nonces == expected.nonces)
                #expect(merged.fragments == expected.fragments)
            }
        }
        var merged = earlier
        merged.merge(later)
        #expect(merged.nonces[Self.members[1]] == 8 && merged.nonces[Self.members[0]] == 3 && merged.nonces.count == 3)
        #expect(merged.fragments[kept.id] == keptLater && merged.fragments.count == 2)
        // Merged into a reserved block, its room is kept (the block goes on growing into it).
        var block = reserved
        block.merge(later)
        #expect(block.fragments.capacity >= 64 && block.fragments.count == 2)
    }
}
