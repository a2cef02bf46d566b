/// The workload's seeded generator (SplitMix64): the same seed gives the same chain, on every
/// platform and run. Never the system generator.
struct WorkloadRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in `range`.
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func int64(_ range: ClosedRange<Int64>) -> Int64 { Int64.random(in: range, using: &self) }

    /// True with probability `percent` / 100.
    mutating func chance(_ percent: Int) -> Bool { int(0...99) < percent }

    /// An index picked with the given weights (zero weights are never picked).
    mutating func weighted(_ weights: [Int]) -> Int {
        let total = weights.reduce(0, +)
        precondition(total > 0, "at least one weight must be positive")
        var pick = int(0...(total - 1))
        for (index, weight) in weights.enumerated() {
            if pick < weight { return index }
            pick -= weight
        }
        return weights.count - 1
    }
}

/// A set with O(1) insert, remove and uniform random pick, whose order depends only on the
/// sequence of operations (never on hashing), so picks are reproducible.
struct PickableSet<Element: Hashable & Sendable>: Sendable {
    private(set) var elements: [Element] = []
    private var positions: [Element: Int] = [:]

    var isEmpty: Bool { elements.isEmpty }
    var count: Int { elements.count }
    func contains(_ element: Element) -> Bool { positions[element] != nil }

    mutating func insert(_ element: Element) {
        guard positions[element] == nil else { return }
        positions[element] = elements.count
        elements.append(element)
    }

    mutating func remove(_ element: Element) {
        guard let index = positions.removeValue(forKey: element) else { return }
        let last = elements.removeLast()
        if index < elements.count {
            elements[index] = last
            positions[last] = index
        }
    }

    func randomElement(using random: inout WorkloadRandom) -> Element? {
        elements.isEmpty ? nil : elements[random.int(0...(elements.count - 1))]
    }
}
