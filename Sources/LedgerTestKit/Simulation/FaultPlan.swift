import LedgerCore

/// How a Byzantine validator misbehaves in the simulator. It runs the honest replica inside and
/// tampers with what it sends.
public enum ByzantineBehavior: String, Sendable, CaseIterable, CustomStringConvertible {
    /// As primary, sends one block to half the replicas and another (same transactions, a later
    /// timestamp) to the rest, both signed.
    case equivocatingPrimary
    /// Votes for both: besides its real prepares and commits, signs conflicting ones (for any
    /// other proposal it has seen at that height, or a made-up block) and sends them to half.
    case doubleVoter
    /// Corrupts the signatures of some of its messages and relays others' messages as if they
    /// were its own.
    case forger
    /// Replays its old messages from earlier views and sends votes far outside the watermarks.
    case staleViewSpammer
    /// Sends nothing at all while it is the primary.
    case silentPrimary
    /// Its clock is far outside the skew bound, so its proposals carry timestamps no correct
    /// replica accepts (not provable misbehaviour: only the timer gets it replaced).
    case skewedClock

    public var description: String { rawValue }
}

/// A network partition: `groups` cannot talk to each other from `start` to `end` (virtual ms).
public struct Partition: Sendable, CustomStringConvertible {
    public var start: UInt64
    public var end: UInt64
    public var groups: [[Int]]
    public init(start: UInt64, end: UInt64, groups: [[Int]]) {
        self.start = start
        self.end = end
        self.groups = groups
    }
    public func separates(_ a: Int, _ b: Int) -> Bool {
        guard let ga = groups.firstIndex(where: { $0.contains(a) }), let gb = groups.firstIndex(where: { $0.contains(b) }) else { return false }
        return ga != gb
    }
    public var description: String { "partition \(groups) \(start)-\(end)ms" }
}

/// A crash of `node` at `at`, restarted from its persisted state at `restartAt`.
public struct Crash: Sendable, CustomStringConvertible {
    public var node: Int
    public var at: UInt64
    public var restartAt: UInt64
    public init(node: Int, at: UInt64, restartAt: UInt64) {
        self.node = node
        self.at = at
        self.restartAt = restartAt
    }
    public var description: String { "crash v\(node) \(at)-\(restartAt)ms" }
}

/// Everything that goes wrong in one run, all of it before `end` (virtual ms). After `end` the
/// network heals, crashed nodes restart, and only the Byzantine validators stay faulty.
public struct FaultPlan: Sendable, CustomStringConvertible {
    public var end: UInt64
    /// Per mille of messages dropped, duplicated, delayed by `longDelay`.
    public var dropPermille: Int = 0
    public var duplicatePermille: Int = 0
    public var delayPermille: Int = 0
    public var longDelay: ClosedRange<Int64> = 200...1_500
    /// Normal one-way latency; the spread reorders messages.
    public var latency: ClosedRange<Int64> = 2...20
    public var partitions: [Partition] = []
    public var crashes: [Crash] = []
    /// Per node, milliseconds added to its clock reading (honest skews stay within the bound).
    public var clockSkew: [Int64]
    public var byzantine: [Int: ByzantineBehavior] = [:]

    public init(nodes: Int, end: UInt64) {
        self.end = end
        clockSkew = Array(repeating: 0, count: nodes)
    }

    /// No faults at all.
    public static func none(nodes: Int) -> FaultPlan { FaultPlan(nodes: nodes, end: 0) }

    /// A random mix of faults for `nodes` validators. At most f nodes are Byzantine; crashes and
    /// partitions may hit anyone (they heal by `end`).
    public static func mixed(nodes: Int, random: inout SimulationRandom, end: UInt64 = 2_500, maxSkew: Int64 = 1_000) -> FaultPlan {
        var plan = FaultPlan(nodes: nodes, end: end)
        let f = (nodes - 1) / 3
        if random.chance(600) { plan.dropPermille = Int(random.between(5, 150)) }
        if random.chance(500) { plan.duplicatePermille = Int(random.between(5, 150)) }
        if random.chance(500) { plan.delayPermille = Int(random.between(5, 100)) }
        if random.chance(300) { plan.latency = 1...Int64(random.between(30, 120)) }
        if random.chance(400) {
            let start = UInt64(random.between(0, Int64(end) / 2))
            let length = UInt64(random.between(200, Int64(end) / 2))
            let order = random.shuffled(Array(0..<nodes))
            let cut = Int(random.between(1, Int64(nodes - 1)))
            plan.partitions.append(Partition(start: start, end: min(end, start + length),
                                             groups: [Array(order[..<cut]).sorted(), Array(order[cut...]).sorted()]))
        }
        let byzantineCount = random.chance(550) ? Int(random.between(1, Int64(f))) : 0
        let order = random.shuffled(Array(0..<nodes))
        for node in order.prefix(byzantineCount) {
            let behaviors = ByzantineBehavior.allCases
            plan.byzantine[node] = behaviors[Int(random.below(UInt64(behaviors.count)))]
        }
        if random.chance(450) {
            // Usually at most f crash; sometimes many or all honest nodes do (safety must hold and
            // everything must recover from persisted state alone).
            let most = random.chance(250) ? nodes - byzantineCount : max(1, f)
            let crashCount = Int(random.between(1, Int64(most)))
            for node in order.dropFirst(byzantineCount).prefix(crashCount) {
                let at = UInt64(random.between(0, Int64(end) * 3 / 4))
                let restart = min(end, at + UInt64(random.between(100, Int64(end))))
                plan.crashes.append(Crash(node: node, at: at, restartAt: restart))
            }
        }
        if random.chance(400) {
            for node in 0..<nodes { plan.clockSkew[node] = random.between(-maxSkew / 3, maxSkew / 3) }
        }
        for (node, behavior) in plan.byzantine where behavior == .skewedClock {
            plan.clockSkew[node] = (random.chance(500) ? 1 : -1) * maxSkew * random.between(3, 30)
        }
        return plan
    }

    public var description: String {
        var parts: [String] = []
        if dropPermille > 0 { parts.append("drop \(dropPermille)‰") }
        if duplicatePermille > 0 { parts.append("duplicate \(duplicatePermille)‰") }
        if delayPermille > 0 { parts.append("delay \(delayPermille)‰ by \(longDelay)ms") }
        parts.append("latency \(latency)ms")
        parts += partitions.map(\.description)
        parts += crashes.map(\.description)
        if clockSkew.contains(where: { $0 != 0 }) { parts.append("skew \(clockSkew)") }
        for node in byzantine.keys.sorted() { parts.append("byzantine v\(node) \(byzantine[node]!)") }
        return "faults until \(end)ms: " + parts.joined(separator: ", ")
    }
}
