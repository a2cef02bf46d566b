import LedgerCore
import Testing

/// Inputs the libFuzzer targets under Fuzz/ found, kept as tests. Each input is the fuzzer's
/// file byte for byte: FuzzAPIRequest reads [mode][selector][payload], mode 4 is Money.parse
/// with currency CNY for selector 0 (mod 3).
@Suite struct FuzzRegressionTests {
    static func amountText(_ input: [UInt8]) -> String { String(decoding: input.dropFirst(2), as: UTF8.self) }

    @Test("Money.parse refuses a sign in the fraction: \"0.-1\" parsed as -1 minor units (fuzz finding)")
    func negativeFraction() {
        let input: [UInt8] = [0x04, 0x00, 0x30, 0x2E, 0x2D, 0x31]  // "0.-1"
        #expect(Money.parse(Self.amountText(input), .cny) == nil)
        #expect(Money.parse("1.-5", .cny) == nil)  // was 0.95
        #expect(Money.parse("1.+5", .cny) == nil)  // was 1.05
    }

    @Test("Money.parse refuses a sign on the whole part: \"+00\" parsed as 0 (fuzz finding)")
    func signedWholePart() {
        let input: [UInt8] = [0x04, 0x24, 0x2B, 0x30, 0x30]  // selector 0x24 = 36, 36 % 3 = 0: CNY; "+00"
        #expect(Money.parse(Self.amountText(input), .cny) == nil)
        #expect(Money.parse("-0", .cny) == nil)
        #expect(Money.parse("+1.00", .cny) == nil)
    }

    @Test("Money.parse still reads the amounts clients write")
    func plainAmounts() {
        #expect(Money.parse("142500.00", .cny) == Money(minor: 14_250_000, .cny))
        #expect(Money.parse("0.5", .cny) == Money(minor: 50, .cny))
        #expect(Money.parse("12", CurrencyCode("JPY")!) == Money(minor: 12, CurrencyCode("JPY")!))
        #expect(Money.parse("92233720368547758.07", .cny) == Money(minor: Int64.max, .cny))
        #expect(Money.parse("92233720368547758.08", .cny) == nil)
    }
}
