import Foundation

/// Reads and (on request) writes the golden vector files kept beside the tests.
enum VectorFiles {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors")

    /// Non-comment, non-empty lines split on spaces.
    static func rows(_ name: String) throws -> [[String]] {
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        return text.split(separator: "\n").map(String.init)
            .filter { !$0.hasPrefix("#") && !$0.trimmingCharacters(in: .whitespaces).isEmpty }
            .map { $0.split(separator: " ").map(String.init) }
    }

    /// `name value` pairs.
    static func table(_ name: String) throws -> [String: String] {
        var table: [String: String] = [:]
        for row in try rows(name) where row.count == 2 { table[row[0]] = row[1] }
        return table
    }

    /// SCF_REGENERATE_VECTORS=1 rewrites golden files from the current encoder (only when the
    /// format is changed on purpose, with a version bump).
    static var regenerate: Bool { ProcessInfo.processInfo.environment["SCF_REGENERATE_VECTORS"] == "1" }

    static func write(_ name: String, header: String, table: [(String, String)]) throws {
        let body = table.map { "\($0.0) \($0.1)" }.joined(separator: "\n")
        try (header + "\n" + body + "\n").write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }
}
