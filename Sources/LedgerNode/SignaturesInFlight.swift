import Foundation
import LedgerCore

/// The transactions whose client signatures are being checked at this moment, by id, so that a
/// second check of the same transaction can wait for the first instead of running beside it.
///
/// A transaction is claimed just before its check and released right after (its result already
/// in the memo); a checker claims a few at a time (`ValidatorNode.signatureClaimGroup`), so a
/// claim lasts at most that many signature checks. Deadlock-free: a caller waits only after
/// releasing every claim of its own, and the wait is bounded (`waitUntilChecked`).
final class SignaturesInFlight: @unchecked Sendable {
    private let condition = NSCondition()
    private var checking = Set<Hash>()
    /// How long `waitUntilChecked` waits at most, in seconds.
    let timeout: TimeInterval

    init(timeout: TimeInterval = 0.05) { self.timeout = timeout }

    /// Claims each of a few transactions about to be checked, under one lock; true where
    /// claimed, false where another call is checking it now.
    func tryClaim(_ ids: some Sequence<Hash>) -> [Bool] {
        condition.lock()
        defer { condition.unlock() }
        return ids.map { checking.insert($0).inserted }
    }

    /// Ends claims (after their results are in the memo) under one lock, and wakes the calls
    /// waiting for any of them.
    func release(_ ids: some Collection<Hash>) {
        guard !ids.isEmpty else { return }
        condition.lock()
        for id in ids { checking.remove(id) }
        condition.broadcast()
        condition.unlock()
    }

    /// Returns once no call is checking any of `transactions`, or after `timeout` seconds (the
    /// caller then checks what is still unchecked itself, so a stalled checker cannot hold up the
    /// node's queue for longer than that).
    func waitUntilChecked(_ transactions: [SignedTransaction]) {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        while transactions.contains(where: { checking.contains($0.id) }) {
            if !condition.wait(until: deadline) { break }
        }
        condition.unlock()
    }

    /// Transactions claimed now (tests).
    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return checking.count
    }
}
