/// An amount in a currency's minor units (fen, cents). Never floating point.
public struct MinorUnits: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    public var value: Int64
    public init(_ value: Int64) { self.value = value }
    public init(integerLiteral value: Int64) { self.value = value }
    public static let zero = MinorUnits(0)
    public static func < (lhs: MinorUnits, rhs: MinorUnits) -> Bool { lhs.value < rhs.value }
    public var description: String { String(value) }

    /// Checked addition: nil on overflow.
    public func adding(_ other: MinorUnits) -> MinorUnits? {
        let (sum, overflow) = value.addingReportingOverflow(other.value)
        return overflow ? nil : MinorUnits(sum)
    }
    /// Checked subtraction: nil on overflow.
    public func subtracting(_ other: MinorUnits) -> MinorUnits? {
        let (difference, overflow) = value.subtractingReportingOverflow(other.value)
        return overflow ? nil : MinorUnits(difference)
    }
}

extension MinorUnits: CanonicalCodable, Codable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(value) }
    public init(from reader: inout CanonicalReader) throws { value = try reader.readInt64() }
    public init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(Int64.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// An ISO 4217 alphabetic code: three upper-case ASCII letters.
public struct CurrencyCode: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let code: String
    public init?(_ code: String) {
        guard code.utf8.count == 3, code.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else { return nil }
        self.code = code
    }
    public static let cny = CurrencyCode("CNY")!
    public static let usd = CurrencyCode("USD")!
    public var description: String { code }
    public static func < (lhs: CurrencyCode, rhs: CurrencyCode) -> Bool { lhs.code < rhs.code }
    /// Minor-unit digits for display (2 for most currencies, 0 for JPY and KRW).
    public var minorDigits: Int { ["JPY", "KRW", "VND"].contains(code) ? 0 : 2 }
}

extension CurrencyCode: CanonicalCodable, Codable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(code) }
    public init(from reader: inout CanonicalReader) throws {
        let text = try reader.readString()
        guard let currency = CurrencyCode(text) else { throw reader.error("\"\(text)\" is not an ISO 4217 code") }
        self = currency
    }
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let currency = CurrencyCode(text) else {
            throw Swift.DecodingError.dataCorruptedError(in: container, debugDescription: "\"\(text)\" is not a three-letter ISO 4217 code")
        }
        self = currency
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(code)
    }
}

/// An amount with its currency. Arithmetic is checked: overflow and currency mismatch are errors.
public struct Money: Hashable, Sendable, CustomStringConvertible, Codable {
    public var amount: MinorUnits
    public var currency: CurrencyCode

    public init(_ amount: MinorUnits, _ currency: CurrencyCode) {
        self.amount = amount
        self.currency = currency
    }
    public init(minor: Int64, _ currency: CurrencyCode) { self.init(MinorUnits(minor), currency) }

    public enum ArithmeticError: Error, Equatable, Sendable {
        case currencyMismatch(CurrencyCode, CurrencyCode)
        case overflow
    }

    public func adding(_ other: Money) throws(ArithmeticError) -> Money {
        guard currency == other.currency else { throw .currencyMismatch(currency, other.currency) }
        guard let sum = amount.adding(other.amount) else { throw .overflow }
        return Money(sum, currency)
    }

    public func subtracting(_ other: Money) throws(ArithmeticError) -> Money {
        guard currency == other.currency else { throw .currencyMismatch(currency, other.currency) }
        guard let difference = amount.subtracting(other.amount) else { throw .overflow }
        return Money(difference, currency)
    }

    /// "1,234.56 CNY" style, exact (no floating point).
    public var description: String { Money.format(amount, currency) }

    public static func format(_ amount: MinorUnits, _ currency: CurrencyCode) -> String {
        let digits = currency.minorDigits
        let negative = amount.value < 0
        let magnitude = amount.value.magnitude
        var scale: UInt64 = 1
        for _ in 0..<digits { scale *= 10 }
        let whole = magnitude / scale, fraction = magnitude % scale
        var wholeText = String(whole)
        var grouped = ""
        while wholeText.count > 3 {
            grouped = "," + wholeText.suffix(3) + grouped
            wholeText.removeLast(3)
        }
        grouped = wholeText + grouped
        var text = negative ? "-" + grouped : grouped
        if digits > 0 {
            let fractionText = String(fraction)
            text += "." + String(repeating: "0", count: digits - fractionText.count) + fractionText
        }
        return text + " " + currency.code
    }

    /// Parses "1234.56" (or "1234") in the currency's major units into exact minor units.
    public static func parse(_ text: String, _ currency: CurrencyCode) -> Money? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let wholePart = parts.first, !wholePart.isEmpty,
              wholePart.allSatisfy({ $0.isASCII && $0.isWholeNumber }), let whole = Int64(wholePart), whole >= 0 else { return nil }
        var fraction: Int64 = 0
        let digits = currency.minorDigits
        if parts.count == 2 {
            let fractionText = parts[1]
            guard fractionText.count <= digits, !fractionText.isEmpty, fractionText.allSatisfy({ $0.isASCII && $0.isWholeNumber }),
                  let value = Int64(fractionText) else { return nil }
            fraction = value
            for _ in fractionText.count..<digits { fraction *= 10 }
        }
        var scale: Int64 = 1
        for _ in 0..<digits { scale *= 10 }
        let (scaled, overflow1) = whole.multipliedReportingOverflow(by: scale)
        let (total, overflow2) = scaled.addingReportingOverflow(fraction)
        guard !overflow1, !overflow2 else { return nil }
        return Money(minor: total, currency)
    }
}

extension Money: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(amount)
        writer.write(currency)
    }
    public init(from reader: inout CanonicalReader) throws {
        self.init(try reader.read(MinorUnits.self), try reader.read(CurrencyCode.self))
    }
}
