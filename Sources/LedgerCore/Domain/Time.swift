/// A calendar date with no time zone: days since 1970-01-01 in the proleptic Gregorian calendar.
/// Maturities and issue dates are business dates; they are compared, never converted to instants.
public struct BusinessDate: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var daysSinceEpoch: Int32
    public init(daysSinceEpoch: Int32) { self.daysSinceEpoch = daysSinceEpoch }

    /// Parses `YYYY-MM-DD`; nil for anything else, including 2026-02-30.
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }),
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]) else { return nil }
        self.init(year: year, month: month, day: day)
    }

    public init?(year: Int, month: Int, day: Int) {
        guard (1900...9999).contains(year), (1...12).contains(month),
              (1...BusinessDate.daysInMonth(year: year, month: month)).contains(day) else { return nil }
        // Howard Hinnant's days_from_civil.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        daysSinceEpoch = Int32(era * 146097 + doe - 719468)
    }

    public var components: (year: Int, month: Int, day: Int) {
        let z = Int(daysSinceEpoch) + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    public var description: String {
        let (year, month, day) = components
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
    }

    public static func < (lhs: BusinessDate, rhs: BusinessDate) -> Bool { lhs.daysSinceEpoch < rhs.daysSinceEpoch }

    public func adding(days: Int32) -> BusinessDate { BusinessDate(daysSinceEpoch: daysSinceEpoch + days) }
    public func days(until other: BusinessDate) -> Int { Int(other.daysSinceEpoch) - Int(daysSinceEpoch) }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}

extension BusinessDate: CanonicalCodable, Codable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(daysSinceEpoch) }
    public init(from reader: inout CanonicalReader) throws { daysSinceEpoch = try reader.readInt32() }
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let date = BusinessDate(text) else {
            throw Swift.DecodingError.dataCorruptedError(in: container, debugDescription: "\"\(text)\" is not a date of the form YYYY-MM-DD")
        }
        self = date
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Consensus time: milliseconds since the Unix epoch, as agreed in a committed block header.
/// The only "now" the ledger's rules ever see.
public struct ConsensusTime: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var millisecondsSinceEpoch: Int64
    public init(millisecondsSinceEpoch: Int64) { self.millisecondsSinceEpoch = millisecondsSinceEpoch }
    public static func < (lhs: ConsensusTime, rhs: ConsensusTime) -> Bool { lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch }

    /// The business date at this instant in a zone `utcOffsetMinutes` east of UTC (genesis sets it;
    /// +480 for China Standard Time).
    public func businessDate(utcOffsetMinutes: Int32) -> BusinessDate {
        let local = millisecondsSinceEpoch + Int64(utcOffsetMinutes) * 60_000
        let day = local >= 0 ? local / 86_400_000 : (local - 86_399_999) / 86_400_000
        return BusinessDate(daysSinceEpoch: Int32(clamping: day))
    }

    /// Midnight at the start of `date` in the given zone.
    public init(startOf date: BusinessDate, utcOffsetMinutes: Int32) {
        millisecondsSinceEpoch = Int64(date.daysSinceEpoch) * 86_400_000 - Int64(utcOffsetMinutes) * 60_000
    }

    public func adding(milliseconds: Int64) -> ConsensusTime { ConsensusTime(millisecondsSinceEpoch: millisecondsSinceEpoch + milliseconds) }
    public var description: String { "\(millisecondsSinceEpoch)ms" }
}

extension ConsensusTime: CanonicalCodable, Codable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(millisecondsSinceEpoch) }
    public init(from reader: inout CanonicalReader) throws { millisecondsSinceEpoch = try reader.readInt64() }
    public init(from decoder: any Decoder) throws { millisecondsSinceEpoch = try decoder.singleValueContainer().decode(Int64.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(millisecondsSinceEpoch)
    }
}
