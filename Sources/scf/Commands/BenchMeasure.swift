import Foundation
import Histogram

/// Commit latencies in microseconds (HdrHistogram, 3 significant digits, up to 10 minutes), overall
/// and per second of the run for the plot.
struct LatencyRecorder: Sendable {
    static let highest: UInt64 = 600_000_000
    private(set) var overall = LatencyRecorder.newHistogram()
    /// Per second of commit time since the start of the measured load.
    private(set) var perSecond: [Histogram<UInt64>] = []

    static func newHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: highest, numberOfSignificantValueDigits: .three)
    }

    /// - Parameters: latency: microseconds from the scheduled offer to the commit being seen;
    ///   second: which second of the run the commit was seen in.
    mutating func record(latencyMicroseconds: UInt64, second: Int) {
        let value = min(max(latencyMicroseconds, 1), Self.highest)
        _ = overall.record(value)
        guard second >= 0 else { return }
        while perSecond.count <= second { perSecond.append(Self.newHistogram()) }
        _ = perSecond[second].record(value)
    }

    var count: UInt64 { overall.totalCount }

    /// Latency at `percentile` (0-100) in milliseconds, nil without samples.
    func milliseconds(atPercentile percentile: Double) -> Double? {
        count == 0 ? nil : Double(overall.valueAtPercentile(percentile)) / 1_000
    }

    var maxMilliseconds: Double? { count == 0 ? nil : Double(overall.max) / 1_000 }

    /// One point per second: commits seen in that second, and their p50 and p99 latency (ms).
    var series: [LatencyPoint] {
        perSecond.enumerated().map { second, histogram in
            histogram.totalCount == 0
                ? LatencyPoint(second: second, committed: 0, p50: nil, p99: nil)
                : LatencyPoint(second: second, committed: Int(histogram.totalCount),
                               p50: Double(histogram.valueAtPercentile(50)) / 1_000, p99: Double(histogram.valueAtPercentile(99)) / 1_000)
        }
    }
}

struct LatencyPoint: Codable, Sendable, Equatable {
    var second: Int
    var committed: Int
    var p50: Double?
    var p99: Double?
}

/// Reading a process's CPU time and memory from /proc (Linux).
enum ProcReader {
    /// user + system CPU time in clock ticks from the text of /proc/PID/stat. The command name
    /// (field 2) may contain spaces and parentheses, so fields are counted after the last ')'.
    static func cpuTicks(statLine: String) -> UInt64? {
        guard let close = statLine.lastIndex(of: ")") else { return nil }
        let fields = statLine[statLine.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // After ')': state(3) ppid(4) … utime(14) stime(15): indices 11 and 12 here.
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user + system
    }

    /// The parent process id from /proc/PID/stat.
    static func parentPID(statLine: String) -> Int32? {
        guard let close = statLine.lastIndex(of: ")") else { return nil }
        let fields = statLine[statLine.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        return fields.count > 1 ? Int32(fields[1]) : nil
    }

    /// A "Name:   123 kB" field of /proc/PID/status, in bytes.
    static func statusBytes(_ name: String, statusText: String) -> UInt64? {
        for line in statusText.split(separator: "\n") where line.hasPrefix(name + ":") {
            let parts = line.dropFirst(name.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let value = parts.first.flatMap({ UInt64($0) }) else { return nil }
            let unit = parts.count > 1 ? parts[1].lowercased() : ""
            switch unit {
            case "kb": return value * 1024
            case "mb": return value * 1024 * 1024
            default: return value
            }
        }
        return nil
    }

    static func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    static var ticksPerSecond: Double { Double(sysconf(Int32(_SC_CLK_TCK))) }

    /// A process's CPU seconds so far, peak and current resident memory in bytes.
    static func sample(pid: Int32) -> ProcSample? {
        guard let stat = read("/proc/\(pid)/stat"), let ticks = cpuTicks(statLine: stat),
              let status = read("/proc/\(pid)/status") else { return nil }
        return ProcSample(cpuSeconds: Double(ticks) / ticksPerSecond, peakResidentBytes: statusBytes("VmHWM", statusText: status) ?? 0,
                          residentBytes: statusBytes("VmRSS", statusText: status) ?? 0)
    }

    /// Child processes of `parent` whose command line contains `marker`, with their arguments.
    static func children(of parent: Int32, containing marker: String) -> [(pid: Int32, arguments: [String])] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var found: [(Int32, [String])] = []
        for entry in entries {
            guard let pid = Int32(entry), let stat = read("/proc/\(pid)/stat"), parentPID(statLine: stat) == parent,
                  let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
            let arguments = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if arguments.joined(separator: " ").contains(marker) { found.append((pid, arguments)) }
        }
        return found.sorted { $0.0 < $1.0 }
    }
}

struct ProcSample: Sendable, Equatable {
    var cpuSeconds: Double
    var peakResidentBytes: UInt64
    var residentBytes: UInt64
}

/// The counters of a node's Prometheus text (`/metrics`): "name value" lines, comments skipped.
enum MetricsText {
    static func parse(_ text: String) -> [String: Double] {
        var values: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let value = Double(parts[1]) else { continue }
            values[String(parts[0])] = value
        }
        return values
    }
}

/// A latency-over-time chart as a standalone SVG: p50 and p99 commit latency (left axis, ms) and
/// committed transactions per second (right axis), one point per second.
enum LatencyPlot {
    static func svg(points: [LatencyPoint], title: String, width: Int = 900, height: Int = 420) -> String {
        let left = 70.0, right = 70.0, top = 40.0, bottom = 50.0
        let plotWidth = Double(width) - left - right, plotHeight = Double(height) - top - bottom
        let seconds = max(1, points.count - 1)
        let latencyMax = niceCeiling(points.compactMap(\.p99).max() ?? 1)
        let rateMax = niceCeiling(Double(points.map(\.committed).max() ?? 1))
        func x(_ second: Int) -> Double { left + plotWidth * Double(second) / Double(seconds) }
        func yLatency(_ ms: Double) -> Double { top + plotHeight * (1 - min(ms, latencyMax) / latencyMax) }
        func yRate(_ rate: Double) -> Double { top + plotHeight * (1 - min(rate, rateMax) / rateMax) }
        func polyline(_ values: [(Int, Double)], _ y: (Double) -> Double, colour: String, dash: String = "") -> String {
            guard !values.isEmpty else { return "" }
            let coordinates = values.map { String(format: "%.1f,%.1f", x($0.0), y($0.1)) }.joined(separator: " ")
            let dashing = dash.isEmpty ? "" : " stroke-dasharray=\"\(dash)\""
            return "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\"\(dashing) points=\"\(coordinates)\"/>\n"
        }
        var out = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" font-family="sans-serif" font-size="12">
        <rect x="0" y="0" width="\(width)" height="\(height)" fill="white"/>
        <text x="\(Int(left))" y="22" font-size="15">\(escape(title))</text>

        """
        out += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#888\"/>\n", left, top, plotWidth, plotHeight)
        for step in 0...4 {
            let fraction = Double(step) / 4
            let y = top + plotHeight * (1 - fraction)
            out += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, y, left + plotWidth, y)
            out += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", left - 6, y + 4) + label(latencyMax * fraction) + "</text>\n"
            out += String(format: "<text x=\"%.1f\" y=\"%.1f\">", left + plotWidth + 6, y + 4) + label(rateMax * fraction) + "</text>\n"
        }
        let tick = max(1, seconds / 10)
        for second in stride(from: 0, through: seconds, by: tick) {
            out += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", x(second), top + plotHeight + 18, second)
        }
        out += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">seconds since the load started</text>\n", left + plotWidth / 2, Double(height) - 10)
        out += String(format: "<text transform=\"translate(16,%.1f) rotate(-90)\" text-anchor=\"middle\">commit latency (ms)</text>\n", top + plotHeight / 2)
        out += String(format: "<text transform=\"translate(%.1f,%.1f) rotate(90)\" text-anchor=\"middle\">committed tx/s</text>\n", Double(width) - 14, top + plotHeight / 2)
        out += polyline(points.map { ($0.second, Double($0.committed)) }, yRate, colour: "#999", dash: "4 3")
        out += polyline(points.compactMap { point in point.p50.map { (point.second, $0) } }, yLatency, colour: "#1f77b4")
        out += polyline(points.compactMap { point in point.p99.map { (point.second, $0) } }, yLatency, colour: "#d62728")
        let legendY = top + 16
        out += String(format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#1f77b4\">p50</text>\n", left + 10, legendY)
        out += String(format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#d62728\">p99</text>\n", left + 50, legendY)
        out += String(format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#777\">committed tx/s</text>\n", left + 90, legendY)
        out += "</svg>\n"
        return out
    }

    /// 1, 2 or 5 times a power of ten, at least `value`.
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        let power = pow(10, floor(log10(value)))
        for factor in [1.0, 2.0, 5.0, 10.0] where factor * power >= value { return factor * power }
        return 10 * power
    }

    static func label(_ value: Double) -> String {
        value >= 100 || value == value.rounded() ? String(format: "%.0f", value) : String(format: "%.1f", value)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
