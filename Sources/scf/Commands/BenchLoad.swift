import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerAPI
import LedgerCore
import Synchronization

/// Offers a bench script's rounds open-loop: transaction i of round k is due at k s + i/n s after
/// the start, whether or not earlier ones have committed. Each signer's transactions go to one
/// node, in order (a batch per node at a time, or one request at a time per lane when the node has
/// no batch endpoint). A follower reads blocks from one node as heights advance and stamps every
/// transaction id in a block with the time the block was seen: latency = seen − due.
final class BenchLoad: @unchecked Sendable {
    struct Item {
        let transaction: BenchTransaction
        let due: UInt64
        let measured: Bool
        let round: Int
        /// The round whose transactions must all have committed (or been refused) before this one
        /// is offered: the previous round for a transaction that touches what it changed, the one
        /// before for the rest. A client cannot pass on a fragment before it holds it.
        let waitsFor: Int
    }

    struct Outcome: Sendable {
        var offered = 0
        var refused: [String: Int] = [:]
        var refusedSamples: [String: String] = [:]
        var committed = 0
        var unresolved = 0
        var latency = LatencyRecorder()
        /// From the scheduled offer to the request carrying it being sent: the load generator's
        /// own lag (waiting for an earlier batch's answer, or for what the transaction depends on).
        var offerLag = LatencyRecorder()
        /// From the scheduled offer to the node's answer accepting it (admission, signature checked).
        var answered = LatencyRecorder()
        /// Seconds from the start of the load to the last measured commit seen (or to the end of the schedule).
        var seconds = 0.0
        var blockSizes: [Int] = []
        var committedIDs: [Hash] = []
        /// Offered transactions per second of the schedule (measured rounds only).
        var offeredPerSecond: [Int] = []
        /// Measured transactions actually sent, by the second of the load they were sent in: below
        /// the schedule when the generator held transactions back for what they depend on.
        var sentPerSecond: [Int] = []
        /// Set when the load stopped offering early because the cluster fell behind (ramp).
        var stoppedAtSecond: Int?
        var usedBatchEndpoint = true
        var errors: [String] = []
    }

    let nodes: [URL]
    let follow: URL
    let session: URLSession
    /// One per node, used only by that node's submitting thread.
    private let transports: [BenchTransport]
    /// Used only by the thread that follows blocks.
    private let followTransport: BenchTransport
    let log: @Sendable (String) -> Void
    private let lock = NSLock()
    private var pending: [Hash: (due: UInt64, measured: Bool)] = [:]
    private var outcome = Outcome()
    private var start: UInt64 = 0
    private var lastCommit: UInt64 = 0
    private let stop = Atomic<Bool>(false)
    private let offeringStopped = Atomic<Bool>(false)
    private let batchUnsupported = Atomic<Bool>(false)
    /// Per round: transactions not yet offered or offered and unresolved; when the last was offered.
    private var roundOpen: [Int] = []
    private var roundLastOffer: [UInt64] = []
    private var roundOf: [Hash: Int] = [:]
    private var offeredAll = 0
    /// A round counts as resolved this long after its last offer even if some transaction of it never shows up.
    static let roundGiveUp: UInt64 = 5_000_000_000

    /// - Parameters: nodes: API base URLs to spread signers over; follow: the node whose blocks are read.
    init(nodes: [URL], follow: URL, log: @escaping @Sendable (String) -> Void) {
        self.nodes = nodes
        self.follow = follow
        self.log = log
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 64
        configuration.timeoutIntervalForRequest = 120
        configuration.timeoutIntervalForResource = 600
        // The load generator shares the machine with the nodes it measures: no response cache
        // and no cookies, which URLSession would otherwise look up and store for every batch.
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        let session = URLSession(configuration: configuration)
        self.session = session
        transports = nodes.map { BenchTransport(base: $0, session: session) }
        followTransport = BenchTransport(base: follow, session: session)
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// A signer's node and lane: a stable function of its id, so its transactions stay in order.
    static func slot(of signer: MemberID, count: Int) -> Int { slot(of: signer.rawValue, count: count) }

    static func slot(of name: String, count: Int) -> Int {
        var hash: UInt64 = 1469598103934665603
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 1099511628211 }
        return Int(hash % UInt64(max(1, count)))
    }

    /// Runs the rounds and returns what happened. `saturationBacklogSeconds`: stop offering when
    /// more than this many seconds' worth of transactions are offered and not yet committed (ramp).
    func run(rounds: [BenchRound], fromHeight: Height, saturationBacklogSeconds: Double? = nil,
             drainSeconds: Double = 30) async -> Outcome {
        var perNode: [[Item]] = Array(repeating: [], count: nodes.count)
        var offeredPerSecond: [Int] = []
        for (index, round) in rounds.enumerated() {
            let count = round.transactions.count
            for (position, transaction) in round.transactions.enumerated() {
                let due = UInt64(index) * 1_000_000_000 + UInt64(position) * 1_000_000_000 / UInt64(max(1, count))
                perNode[Self.slot(of: transaction.signer, count: nodes.count)].append(
                    Item(transaction: transaction, due: due, measured: round.measured, round: index,
                         waitsFor: position >= round.firstDependent ? index - 1 : index - 2))
            }
            if round.measured { offeredPerSecond.append(count) }
        }
        lock.withLock {
            outcome.offeredPerSecond = offeredPerSecond
            roundOpen = rounds.map(\.transactions.count)
            roundLastOffer = Array(repeating: 0, count: rounds.count)
        }
        start = Self.now()
        let scheduleEnd = Double(rounds.count)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await onOwnThread("bench-follow") { self.followBlocks(from: fromHeight.next) } }
            group.addTask { await self.watch(saturationBacklogSeconds: saturationBacklogSeconds, rates: rounds.map(\.transactions.count)) }
            await withTaskGroup(of: Void.self) { submitters in
                for (node, items) in perNode.enumerated() where !items.isEmpty {
                    submitters.addTask {
                        let rest = await onOwnThread("bench-submit-\(node)") { self.submitBatches(items, to: node) }
                        if rest < items.count { await self.submitSingly(Array(items[rest...]), to: node) }
                    }
                }
            }
            // Everything offered: wait for the rest to commit, then stop following.
            let deadline = Self.now() + UInt64(drainSeconds * 1e9)
            while Self.now() < deadline, lock.withLock({ !pending.isEmpty }) {
                try? await Task.sleep(for: .milliseconds(20))
            }
            stop.store(true, ordering: .relaxed)
        }
        return lock.withLock {
            var result = outcome
            result.unresolved = pending.count
            let end = lastCommit > start ? Double(lastCommit - start) / 1e9 : scheduleEnd
            result.seconds = max(end, 0.001)
            result.usedBatchEndpoint = !batchUnsupported.load(ordering: .relaxed)
            return result
        }
    }

    // MARK: Offering

    private func waitUntil(_ due: UInt64) async {
        let target = start + due
        let now = Self.now()
        if target > now { try? await Task.sleep(nanoseconds: target - now) }
    }

    private static func sleep(nanoseconds: UInt64) {
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0, errno == EINTR { request = remaining }
    }

    /// Offers a node's items in batches, on the calling thread (blocking). Returns the index of the
    /// first item not offered: `items.count`, or where the node turned out to have no batch
    /// endpoint and the rest must go one by one.
    private func submitBatches(_ items: [Item], to node: Int) -> Int {
        var index = 0
        while index < items.count, !offeringStopped.load(ordering: .relaxed) {
            if batchUnsupported.load(ordering: .relaxed) { return index }
            let target = start + items[index].due
            let now = Self.now()
            if target > now { Self.sleep(nanoseconds: target - now) }
            while !offeringStopped.load(ordering: .relaxed), !isResolved(items[index].waitsFor) {
                Self.sleep(nanoseconds: 2_000_000)
            }
            let elapsed = Self.now() - start
            var end = index
            while end < items.count, end - index < 1_000, items[end].due <= elapsed, isResolved(items[end].waitsFor) { end += 1 }
            guard postBatch(Array(items[index..<end]), to: node) else { return index }
            index = end
        }
        return items.count
    }

    /// Whether every transaction of `round` committed or was refused (or the round timed out).
    private func isResolved(_ round: Int) -> Bool {
        guard round >= 0 else { return true }
        return lock.withLock {
            guard round < roundOpen.count else { return true }
            if roundOpen[round] <= 0 { return true }
            let last = roundLastOffer[round]
            return last > 0 && Self.now() > last + Self.roundGiveUp
        }
    }

    /// Under the lock: one transaction of the round is resolved (committed or refused).
    private func resolve(_ id: Hash) {
        if let round = roundOf.removeValue(forKey: id), round < roundOpen.count { roundOpen[round] -= 1 }
    }

    private func markOffered(_ batch: ArraySlice<Item>) {
        lock.withLock {
            let now = Self.now()
            offeredAll += batch.count
            for item in batch {
                roundOf[item.transaction.id] = item.round
                if item.round < roundLastOffer.count { roundLastOffer[item.round] = now }
                pending[item.transaction.id] = (item.due, item.measured)
                if item.measured {
                    outcome.offered += 1
                    outcome.offerLag.record(latencyMicroseconds: lag(of: item, at: now), second: -1)
                    let second = Int((now - start) / 1_000_000_000)
                    while outcome.sentPerSecond.count <= second { outcome.sentPerSecond.append(0) }
                    outcome.sentPerSecond[second] += 1
                }
            }
        }
    }

    /// Microseconds from the item's scheduled offer to `time` (0 if not yet due).
    private func lag(of item: Item, at time: UInt64) -> UInt64 {
        time > start + item.due ? (time - start - item.due) / 1_000 : 0
    }

    private func markAnswered(_ batch: [Item]) {
        let now = Self.now()
        lock.withLock {
            for item in batch where item.measured {
                outcome.answered.record(latencyMicroseconds: lag(of: item, at: now), second: -1)
            }
        }
    }

    private func markRefused(_ item: Item, code: String, message: String) {
        lock.withLock {
            guard pending.removeValue(forKey: item.transaction.id) != nil else { return }
            resolve(item.transaction.id)
            if item.measured {
                outcome.refused[code, default: 0] += 1
                if outcome.refusedSamples[code] == nil { outcome.refusedSamples[code] = message }
            }
        }
    }

    private func noteError(_ text: String) {
        lock.withLock { if outcome.errors.count < 10 { outcome.errors.append(text) } }
    }

    struct BatchAnswer: Decodable {
        struct Result: Decodable {
            var id: String
            var accepted: Bool
            var code: String?
            var message: String?
        }
        var results: [Result]
    }

    private static let resultsKey = Array(#""results""#.utf8)
    private static let falseLiteral = Array("false".utf8)

    /// Whether a batch answer lists results and none of them is `false` (refused).
    static func allAccepted(_ answer: [UInt8]) -> Bool {
        answer.firstRange(of: resultsKey) != nil && answer.firstRange(of: falseLiteral) == nil
    }

    /// Posts one batch; false when the node has no batch endpoint (the caller switches to single posts).
    private func postBatch(_ batch: [Item], to node: Int) -> Bool {
        var body = [UInt8]()
        body.reserveCapacity(batch.reduce(32) { $0 + $1.transaction.wire.count * 2 + 3 })
        body.append(contentsOf: Array(#"{"transactions":["#.utf8))
        for (position, item) in batch.enumerated() {
            if position > 0 { body.append(UInt8(ascii: ",")) }
            body.append(UInt8(ascii: "\""))
            item.transaction.wire.appendHex(to: &body)
            body.append(UInt8(ascii: "\""))
        }
        body.append(contentsOf: Array("]}".utf8))
        markOffered(batch[...])
        do {
            let (status, data) = try transports[node].send("POST", "/v1/transactions/batch", body: body)
            if status == 404 || status == 405 {
                lock.withLock {
                    for item in batch {
                        pending[item.transaction.id] = nil
                        roundOf[item.transaction.id] = nil
                        if item.measured { outcome.offered -= 1 }
                    }
                }
                if !batchUnsupported.exchange(true, ordering: .relaxed) {
                    log("  node answers 404 to POST /v1/transactions/batch: offering one transaction per request instead")
                }
                return false
            }
            // Every transaction accepted: nothing in the answer to read (decoding it cost more
            // than the rest of handling a batch).
            if status == 200, Self.allAccepted(data) {
                markAnswered(batch)
                return true
            }
            guard let answer = try? JSONDecoder().decode(BatchAnswer.self, from: Data(data)) else {
                let text = String(decoding: data.prefix(200), as: UTF8.self)
                noteError("batch to \(nodes[node]) answered \(status): \(text)")
                for item in batch { markRefused(item, code: "http\(status)", message: text) }
                return true
            }
            for (item, result) in zip(batch, answer.results) where !result.accepted {
                markRefused(item, code: result.code ?? "refused", message: result.message ?? "")
            }
            markAnswered(zip(batch, answer.results).filter { $0.1.accepted }.map(\.0))
        } catch {
            noteError("batch to \(nodes[node]): \(error)")
            for item in batch { markRefused(item, code: "unreachable", message: "\(error)") }
        }
        return true
    }

    /// Fallback without the batch endpoint: 16 lanes per node, each signer on one lane, one request at a time.
    private func submitSingly(_ items: [Item], to node: Int) async {
        let laneCount = 16
        var lanes: [[Item]] = Array(repeating: [], count: laneCount)
        for item in items { lanes[Self.slot(of: item.transaction.signer.rawValue + "#lane", count: laneCount)].append(item) }
        await withTaskGroup(of: Void.self) { group in
            for lane in lanes where !lane.isEmpty {
                group.addTask {
                    for item in lane {
                        if self.offeringStopped.load(ordering: .relaxed) { return }
                        await self.waitUntil(item.due)
                        while !self.offeringStopped.load(ordering: .relaxed), !self.isResolved(item.waitsFor) {
                            try? await Task.sleep(for: .milliseconds(2))
                        }
                        await self.postOne(item, to: node)
                    }
                }
            }
        }
    }

    private func postOne(_ item: Item, to node: Int) async {
        var request = URLRequest(url: nodes[node].appendingPathComponent("v1/transactions"))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(#"{"transaction":""#.utf8) + Data(item.transaction.wire.hexString.utf8) + Data(#""}"#.utf8)
        markOffered([item][...])
        do {
            let (data, _) = try await session.data(for: request)
            if let view = try? JSONDecoder().decode(TransactionView.self, from: data), view.status == "rejected", view.height == nil {
                markRefused(item, code: view.code ?? "refused", message: view.message ?? "")
            } else {
                markAnswered([item])
            }
        } catch {
            noteError("post to \(nodes[node]): \(error.localizedDescription)")
            markRefused(item, code: "unreachable", message: error.localizedDescription)
        }
    }

    // MARK: Following blocks

    /// Reads blocks as they commit, on the calling thread (blocking).
    private func followBlocks(from first: Height) {
        var height = first
        while !stop.load(ordering: .relaxed) {
            guard let block = fetchBlock(height) else {
                Self.sleep(nanoseconds: 3_000_000)
                continue
            }
            let seen = Self.now()
            lock.withLock {
                var ours = 0
                for id in block.transactions {
                    guard let entry = pending.removeValue(forKey: id) else { continue }
                    resolve(id)
                    guard entry.measured else { continue }
                    ours += 1
                    outcome.committed += 1
                    outcome.committedIDs.append(id)
                    let latency = seen > start + entry.due ? (seen - start - entry.due) / 1_000 : 0
                    outcome.latency.record(latencyMicroseconds: latency, second: Int((seen - start) / 1_000_000_000))
                    lastCommit = seen
                }
                if ours > 0 { outcome.blockSizes.append(block.transactions.count) }
            }
            height = height.next
        }
    }

    /// What the follower reads of a block (the decoder skips the header and certificate).
    struct BlockTransactions: Decodable {
        var transactions: [Hash]
    }

    private func fetchBlock(_ height: Height) -> BlockTransactions? {
        // A long poll: the node answers when the block commits (a node without it answers 404
        // at once, and the follower asks again after a pause).
        guard let (status, data) = try? followTransport.send("GET", "/v1/blocks/\(height.value)?wait=true&timeout=1"), status == 200 else { return nil }
        return try? JSONDecoder().decode(BlockTransactions.self, from: Data(data))
    }

    // MARK: Progress and saturation

    private func watch(saturationBacklogSeconds: Double?, rates: [Int]) async {
        var lastReport = Self.now()
        var lastCommitted = 0
        while !stop.load(ordering: .relaxed) {
            try? await Task.sleep(for: .milliseconds(250))
            let now = Self.now()
            let second = Int((now - start) / 1_000_000_000)
            let (committed, backlog, offered) = lock.withLock { (outcome.committed, pending.count, offeredAll) }
            if let limit = saturationBacklogSeconds, !offeringStopped.load(ordering: .relaxed), second < rates.count {
                let rate = Double(max(1, rates[second]))
                // Behind: in flight, plus due but held back because what it depends on has not committed.
                let fraction = Double((now - start) % 1_000_000_000) / 1e9
                let due = rates.prefix(second).reduce(0, +) + Int(Double(rates[second]) * fraction)
                if Double(backlog + max(0, due - offered)) > limit * rate {
                    offeringStopped.store(true, ordering: .relaxed)
                    lock.withLock { outcome.stoppedAtSecond = second }
                    log("  stopped offering at \(second) s: \(backlog) transactions offered and not committed (over \(Int(limit)) s of load at \(Int(rate)) tx/s)")
                }
            }
            if now - lastReport >= 5_000_000_000 {
                let rate = Double(committed - lastCommitted) / (Double(now - lastReport) / 1e9)
                let offeredNow = second < rates.count ? rates[second] : 0
                log(String(format: "  %4d s: offering %d tx/s, %d committed so far (%.0f tx/s over the last 5 s), %d in flight",
                           second, offeredNow, committed, rate, backlog))
                lastReport = now
                lastCommitted = committed
            }
        }
    }
}

/// How the load generator reaches one node, from one thread at a time: a keep-alive connection of
/// its own for a plain `http://` node, URLSession (waited for) otherwise.
final class BenchTransport: @unchecked Sendable {
    let base: URL
    let session: URLSession
    private let connection: BenchHTTPConnection?

    init(base: URL, session: URLSession) {
        self.base = base
        self.session = session
        connection = BenchHTTPConnection(url: base)
    }

    /// Sends a request and waits for its answer. `path` starts with "/".
    func send(_ method: String, _ path: String, body: [UInt8] = []) throws -> (status: Int, body: [UInt8]) {
        if let connection { return try connection.request(method, path, body: body) }
        let text = base.absoluteString.hasSuffix("/") ? String(base.absoluteString.dropLast()) : base.absoluteString
        guard let url = URL(string: text + path) else { throw BenchHTTPConnection.Failure(description: "bad URL \(text)\(path)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        if method == "POST" {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(body)
        }
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Result<(Int, [UInt8]), any Error>?>(nil)
        session.dataTask(with: request) { data, response, error in
            let outcome: Result<(Int, [UInt8]), any Error> = if let error {
                .failure(error)
            } else {
                .success(((response as? HTTPURLResponse)?.statusCode ?? 0, [UInt8](data ?? Data())))
            }
            result.withLock { $0 = outcome }
            done.signal()
        }.resume()
        done.wait()
        return try result.withLock { $0! }.get()
    }
}
