/// A seeded pseudo-random generator (xoshiro256**, seeded through SplitMix64): the only source
/// of randomness in the simulator, so a seed replays a run exactly.
public struct SimulationRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in 0..<bound (bound > 0), without modulo bias worth caring about in a simulator.
    public mutating func below(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        return next() % bound
    }

    /// Uniform in the closed range.
    public mutating func between(_ low: Int64, _ high: Int64) -> Int64 {
        guard high > low else { return low }
        return low + Int64(below(UInt64(high - low) + 1))
    }

    /// True with probability `permille` / 1000.
    public mutating func chance(_ permille: Int) -> Bool {
        permille > 0 && Int(below(1000)) < permille
    }

    /// A deterministic shuffle (Fisher-Yates).
    public mutating func shuffled<T>(_ values: [T]) -> [T] {
        var values = values
        guard values.count > 1 else { return values }
        for index in stride(from: values.count - 1, to: 0, by: -1) {
            let other = Int(below(UInt64(index + 1)))
            values.swapAt(index, other)
        }
        return values
    }
}
