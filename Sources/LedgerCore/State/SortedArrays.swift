/// Binary search and set difference on collections kept sorted (a root's live fragments, a
/// debtor's maturities), without building a `Set` for each question.
extension RandomAccessCollection where Element: Comparable {
    /// The index of the first element not less than `value` (`endIndex` if there is none), in a
    /// collection sorted in ascending order.
    @inlinable
    public func sortedInsertionIndex(of value: Element) -> Index {
        var low = startIndex, high = endIndex
        while low < high {
            let middle = index(low, offsetBy: distance(from: low, to: high) / 2)
            if self[middle] < value { low = index(after: middle) } else { high = middle }
        }
        return low
    }

    /// Whether a collection sorted in ascending order holds `value`.
    @inlinable
    public func sortedContains(_ value: Element) -> Bool {
        let found = sortedInsertionIndex(of: value)
        return found < endIndex && self[found] == value
    }
}

extension Array where Element: Comparable {
    /// The elements in exactly one of two arrays sorted in ascending order without repeats, in order.
    @inlinable
    public func sortedSymmetricDifference(_ other: [Element]) -> [Element] {
        var result: [Element] = []
        var i = 0, j = 0
        while i < count || j < other.count {
            if j == other.count || (i < count && self[i] < other[j]) {
                result.append(self[i]); i += 1
            } else if i == count || other[j] < self[i] {
                result.append(other[j]); j += 1
            } else {
                i += 1; j += 1
            }
        }
        return result
    }
}
