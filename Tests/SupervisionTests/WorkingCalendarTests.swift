import Testing
@testable import Supervision

@Suite struct WorkingCalendarTests {
    @Test func officialCSVCoversTwentyTenToTwentyTwentySix() throws {
        let calendar = try officialCalendar()
        // The CSV's first entry is 2010-01-01 and its last 2026-10-10 (repeated lines included): range 2010...2026.
        #expect(calendar.firstYear == 2010)
        #expect(calendar.lastYear == 2026)
    }

    /// Each expectation read off the State Council notices as carried by calendar-cn.csv.
    @Test(arguments: [
        ("2026-02-13", true),   // Friday before the Spring Festival break
        ("2026-02-14", true),   // Saturday listed workday (make-up)
        ("2026-02-15", false),  // Sunday, not listed
        ("2026-02-16", false),  // Monday listed holiday (Spring Festival 16..20)
        ("2026-02-20", false),  // Friday listed holiday
        ("2026-02-23", false),  // Monday listed holiday (the 9th day of the break)
        ("2026-02-24", true),   // Tuesday, back to work
        ("2026-02-28", true),   // Saturday listed workday (make-up)
        ("2026-03-01", false),  // Sunday
        ("2026-09-20", true),   // Sunday listed workday before National Day
        ("2026-09-25", false),  // Friday listed holiday (Mid-autumn)
        ("2026-10-01", false),  // Thursday, National Day
        ("2026-10-07", false),  // Wednesday listed holiday
        ("2026-10-08", true),   // Thursday, not listed
        ("2026-10-10", true),   // Saturday listed workday
        ("2025-10-06", false),  // Monday listed holiday (Mid-autumn 2025)
        ("2026-12-31", true),   // Thursday, last covered day
    ])
    func workingDayStatus(date: String, expected: Bool) throws {
        #expect(try officialCalendar().isWorkingDay(day(date)) == expected)
    }

    @Test(arguments: ["2027-01-01", "2027-01-04", "2009-12-31"])
    func datesOutsideTheCalendarAreNotGuessed(date: String) throws {
        let calendar = try officialCalendar()
        let outside = try day(date)
        // 2027-01-04 is a plain Monday: a guessing calendar would say "working"; the spec forbids that.
        #expect(throws: CalendarError.dateOutsideCalendar(date: outside, firstYear: 2010, lastYear: 2026)) {
            try calendar.isWorkingDay(outside)
        }
    }

    @Test func nthWorkingDayAndItsEnd() throws {
        let calendar = try officialCalendar()
        // After Thu 2026-02-12: Fri 13 (1), Sat 14 make-up (2); 15 Sun, 16-20 holidays, 21-22 weekend, 23 holiday;
        // Tue 24 (3).
        #expect(try calendar.workingDay(3, after: day("2026-02-12")) == day("2026-02-24"))
        #expect(try calendar.workingDay(0, after: day("2026-02-15")) == day("2026-02-15"))
        #expect(try calendar.endOfWorkingDay(3, after: time("2026-02-12T15:00:00")) == time("2026-02-25T00:00:00"))
        // After Wed 2026-12-30: Thu 31 (1), then 2027-01-01 is outside the calendar.
        #expect(throws: CalendarError.self) { try calendar.workingDay(2, after: day("2026-12-30")) }
    }

    @Test func plainValuesInitializer() throws {
        let calendar = try WorkingCalendar(firstYear: 2026, lastYear: 2026, days: [
            CalendarDay(date: try day("2026-02-14"), kind: .workday, name: "Spring Festival"),
            CalendarDay(date: try day("2026-02-16"), kind: .holiday),
        ])
        #expect(try calendar.isWorkingDay(day("2026-02-14")))
        #expect(try !calendar.isWorkingDay(day("2026-02-16")))
        #expect(try calendar.isWorkingDay(day("2026-02-17")))  // not listed here: a plain Tuesday
        #expect(throws: CalendarError.self) { try calendar.isWorkingDay(day("2025-12-31")) }
    }

    @Test func csvWithWindowsLineEndsAndExplicitRange() throws {
        let text = "# comment\r\ndate,kind,name\r\n2026-01-01,holiday,New Year's Day\r\n2026-01-04,workday,\"New Year's Day\"\r\n"
        let calendar = try WorkingCalendar.parseCSV(text, firstYear: 2026, lastYear: 2027)
        #expect(calendar.lastYear == 2027)
        #expect(try calendar.isWorkingDay(day("2026-01-04")))   // Sunday listed workday
        #expect(try !calendar.isWorkingDay(day("2026-01-01")))
        #expect(try calendar.isWorkingDay(day("2027-01-04")))   // explicitly covered, plain Monday
    }

    @Test func repeatedLinesWithTheSameKindAreAccepted() throws {
        // The shipped CSV repeats its last three lines.
        let calendar = try WorkingCalendar.parseCSV("2026-10-10,workday,National Day\n2026-10-10,workday,National Day\n")
        #expect(try calendar.isWorkingDay(day("2026-10-10")))
    }

    @Test func conflictingKindsAreRejected() throws {
        let conflicting = try day("2026-10-10")
        #expect(throws: CalendarDataError.conflictingKinds(date: conflicting)) {
            try WorkingCalendar.parseCSV("2026-10-10,workday\n2026-10-10,holiday\n")
        }
    }

    @Test func malformedLinesNameTheirLineNumber() {
        #expect(throws: CalendarDataError.malformedLine(lineNumber: 3, line: "2026-10-10,day off", reason: "kind is not holiday or workday")) {
            try WorkingCalendar.parseCSV("date,kind,name\n2026-10-01,holiday\n2026-10-10,day off\n")
        }
        #expect(throws: CalendarDataError.malformedLine(lineNumber: 1, line: "2026/10/01,holiday", reason: "date is not YYYY-MM-DD")) {
            try WorkingCalendar.parseCSV("2026/10/01,holiday\n")
        }
        #expect(throws: CalendarDataError.noDays) { try WorkingCalendar.parseCSV("# nothing\n") }
    }

    @Test func entriesOutsideAnExplicitRangeAreRejected() throws {
        let entry = try day("2025-01-01")
        #expect(throws: CalendarDataError.dayOutsideYearRange(date: entry, firstYear: 2026, lastYear: 2026)) {
            try WorkingCalendar.parseCSV("2025-01-01,holiday\n", firstYear: 2026, lastYear: 2026)
        }
        #expect(throws: CalendarDataError.invalidYearRange(firstYear: 2027, lastYear: 2026)) {
            try WorkingCalendar(firstYear: 2027, lastYear: 2026, days: [])
        }
    }
}
