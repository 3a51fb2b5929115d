import Testing
@testable import Supervision

@Suite struct CivilDateTests {
    @Test func knownWeekdays() throws {
        // 1970-01-01 was a Thursday; 2026-01-01 a Thursday; 2026-02-14 a Saturday; 2026-10-01 a Thursday
        // (273 days after 2026-01-01, a multiple of 7); 2000-02-29 exists (leap, divisible by 400), a Tuesday.
        #expect(CivilDate(daysSinceEpoch: 0).isoWeekday == 4)
        #expect(try day("2026-01-01").isoWeekday == 4)
        #expect(try day("2026-02-14").isoWeekday == 6)
        #expect(try day("2026-10-01").isoWeekday == 4)
        #expect(try day("2000-02-29").isoWeekday == 2)
        #expect(try day("1969-12-31").daysSinceEpoch == -1)
    }

    @Test func arithmeticCrossesMonthAndYearEnds() throws {
        #expect(try day("2026-02-28").adding(days: 1) == day("2026-03-01"))  // 2026 is not a leap year
        #expect(try day("2024-02-28").adding(days: 1) == day("2024-02-29"))
        #expect(try day("2026-12-31").adding(days: 1) == day("2027-01-01"))
        #expect(try day("2026-01-07").adding(days: 90) == day("2026-04-07"))  // 24 + 28 + 31 + 7 days
        #expect(try day("2026-03-05").description == "2026-03-05")
    }

    @Test(arguments: ["2026-02-29", "2026-13-01", "2026-1-01", "20260101", "2026-04-31", ""])
    func invalidDatesAreRejected(_ text: String) {
        #expect(throws: TimeParseError.invalidDate(text: text)) { try CivilDate(parsing: text) }
    }
}

@Suite struct BeijingTimeTests {
    @Test func parsesWireFormLegacyFormAndOtherZones() throws {
        let wire = try time("2026-01-05T08:37:00+08:00")
        #expect(wire.date == (try day("2026-01-05")))
        #expect(wire.description == "2026-01-05T08:37:00+08:00")
        // A legacy time without a zone is Beijing time; a space may separate date and time.
        #expect(try time("2026-01-05 08:37:00") == wire)
        // 00:37 UTC is 08:37 in Beijing; 02:37 at +02:00 is 00:37 UTC.
        #expect(try time("2026-01-05T00:37:00Z") == wire)
        #expect(try time("2026-01-05T02:37:00+02:00") == wire)
        // 2026-01-04T20:00Z is already 2026-01-05 04:00 in Beijing: the date is Beijing's.
        #expect(try time("2026-01-04T20:00:00Z").date == (try day("2026-01-05")))
        // Milliseconds survive and print.
        let fractional = try time("2026-01-04T23:59:59.5+08:00")
        #expect(fractional.millisecondOfDay == 86_399_500)
        #expect(fractional.description == "2026-01-04T23:59:59.500+08:00")
    }

    @Test(arguments: ["2026-01-05T24:00:00+08:00", "2026-01-05T08:37", "2026-01-05T08:37:00+8", "2026-02-30T00:00:00",
                      "2026-01-05T08:37:00.+08:00", "x"])
    func invalidTimesAreRejected(_ text: String) {
        #expect(throws: TimeParseError.invalidTime(text: text)) { try BeijingTime(parsing: text) }
    }

    @Test func periodContainsByBeijingDate() throws {
        let january = try Period(parsing: "2026-01")
        #expect(january.contains(try time("2026-01-31T23:59:59")))
        #expect(!january.contains(try time("2026-02-01T00:00:00")))
        // 2026-01-31T16:00Z is 2026-02-01 00:00 in Beijing: February.
        #expect(!january.contains(try time("2026-01-31T16:00:00Z")))
        #expect(january.description == "2026-01")
        #expect(throws: TimeParseError.self) { try Period(parsing: "2026-13") }
    }
}

@Suite struct DecimalTests {
    @Test func moneyParsesToFen() throws {
        #expect(try Money(parsing: "120").fen == 12_000)
        #expect(try Money(parsing: "120.5").fen == 12_050)
        #expect(try Money(parsing: "0.01").fen == 1)
        #expect(try Money(parsing: "999999999999.99").fen == 99_999_999_999_999)
        #expect(try Money(parsing: "120.5").description == "120.50")
    }

    @Test(arguments: ["-1", "1.234", "1e3", "", ".5", "5.", "1,00", "１２"])
    func invalidMoneyIsRejected(_ text: String) {
        #expect(throws: DecimalParseError.invalidDecimal(text: text, maximumFractionDigits: 2)) { try Money(parsing: text) }
    }

    /// Base x Rate rounded half-up to the fen, worked by hand.
    @Test(arguments: [
        // 1234.50 x 0.015 = 18.5175 -> 18.52 (the third decimal 7 rounds up)
        ("1234.50", "0.015", "18.52"),
        // 0.10 x 0.05 = 0.005 exactly half a fen -> half-up gives 0.01 (banker's rounding would give 0.00)
        ("0.10", "0.05", "0.01"),
        // 0.30 x 0.05 = 0.015 -> 0.02 (half-up; banker's would also give 0.02, so this guards the other side)
        ("0.30", "0.05", "0.02"),
        // 100.00 x 0.020000 = 2.00 exactly
        ("100.00", "0.020000", "2.00"),
        // 0.01 x 0.000001 = 0.00000001 -> 0.00
        ("0.01", "0.000001", "0.00"),
        // the largest Money x 2 fits in the 128-bit intermediate: 1999999999999.98
        ("999999999999.99", "2", "1999999999999.98"),
    ])
    func levyRateRoundsHalfUp(base: String, rate: String, expected: String) throws {
        #expect(try LevyRate(parsing: rate).apply(to: Money(parsing: base)).description == expected)
    }

    @Test func rateOverflowIsAnErrorNotATrap() {
        #expect(throws: DecimalParseError.self) { try LevyRate(parsing: "99999999999999") }
    }

    @Test func fourDecimalRatesRoundHalfUp() {
        #expect(FourDecimalRate(numerator: 7, denominator: 8).description == "0.8750")
        #expect(FourDecimalRate(numerator: 2, denominator: 3).description == "0.6667")  // 0.66666..
        #expect(FourDecimalRate(numerator: 1, denominator: 3).description == "0.3333")
        #expect(FourDecimalRate(numerator: 1, denominator: 32).description == "0.0313")  // 0.03125, half-up
        #expect(FourDecimalRate(numerator: 0, denominator: 0).description == "1.0000")  // "1 when none"
        #expect(FourDecimalRate(numerator: 5, denominator: 5).description == "1.0000")
    }
}
