import Foundation
import LedgerCore

/// The transactions whose client signatures are being checked at this moment, by id, so that a
/// second check of the same transaction can wait for the first instead of running beside it.
///
/// Deadlock-free by construction: a caller claims what nobody else is checking, checks and
/// releases all of it, and only then waits for the rest; so a waiter holds no claim anyone could
/// be waiting for.
final class SignaturesInFlight: @unchecked Sendable {
    private let condition = NSCondition()
    private var checking = Set<Hash>()

    /// Claims the transactions no other call is checking (`mine`, to be released after checking),
    /// and returns apart those another call is checking (or that appear twice in `transactions`).
    func claim(_ transactions: [SignedTransaction]) -> (mine: [SignedTransaction], othersChecking: [SignedTransaction]) {
        condition.lock()
        defer { condition.unlock() }
        var mine: [SignedTransaction] = []
        var others: [SignedTransaction] = []
        for transaction in transactions {
            if checking.insert(transaction.id).inserted { mine.append(transaction) } else { others.append(transaction) }
        }
        return (mine, others)
    }

    /// Ends a claim and wakes the calls waiting for any of it.
    func release(_ transactions: [SignedTransaction]) {
        guard !transactions.isEmpty else { return }
        condition.lock()
        for transaction in transactions { checking.remove(transaction.id) }
        condition.broadcast()
        condition.unlock()
    }

    /// Returns once no call is checking any of `transactions`.
    func waitUntilChecked(_ transactions: [SignedTransaction]) {
        condition.lock()
        while transactions.contains(where: { checking.contains($0.id) }) { condition.wait() }
        condition.unlock()
    }

    /// Transactions claimed now (tests).
    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return checking.count
    }
}
