// Worked examples of the section 5 case clock over the real 2026 calendar. Each row says which dates count.
//
// 2026 facts used below (from calendar-cn.csv): Spring Festival holidays Mon 02-16..Fri 02-20 and Mon 02-23,
// make-up workdays Sat 02-14 and Sat 02-28; National Day holidays Fri 09-25 (Mid-autumn), Thu 10-01, Fri 10-02,
// Mon 10-05..Wed 10-07, make-up workdays Sun 09-20 and Sat 10-10. 2026-03-02 is a Monday.

import Testing
@testable import Supervision

struct ClockExample: Sendable, CustomTestStringConvertible {
    var name: String
    var acceptedAt: String
    var limit: Int
    var unit: LimitUnit
    var notices: [String] = []
    var receipts: [String] = []
    var specialStarts: [(kind: SpecialProcedureKind, at: String, extensionDays: Int)] = []
    var specialEnds: [String] = []
    /// The expected deadline date, or nil when the clock must be suspended.
    var expectedDeadlineDate: String?

    var testDescription: String { name }

    func input(completedAt: BeijingTime? = nil) throws -> CaseClockInput {
        CaseClockInput(
            acceptedAt: try time(acceptedAt), promisedLimit: limit, promisedUnit: unit,
            supplementNotices: try notices.map(time), supplementReceipts: try receipts.map(time),
            specialStarts: try specialStarts.map {
                SpecialProcedureStart(kind: $0.kind, startedAt: try time($0.at), extensionDays: $0.extensionDays)
            },
            specialEnds: try specialEnds.map(time), completedAt: completedAt)
    }
}

let clockExamples: [ClockExample] = [
    ClockExample(
        // Start Thu 02-12 (not counted). Counted: Fri 02-13 (1), Sat 02-14 make-up (2); Sun 15, holidays 16-20,
        // weekend 21-22 and holiday 23 do not count; Tue 02-24 (3), Wed 25 (4), Thu 26 (5).
        name: "W across the Spring Festival", acceptedAt: "2026-02-12T10:00:00", limit: 5, unit: .workingDays,
        expectedDeadlineDate: "2026-02-26"),
    ClockExample(
        // Start Mon 09-28. Counted: Tue 09-29 (1), Wed 09-30 (2); 10-01..10-07 holidays or weekend; Thu 10-08 (3),
        // Fri 10-09 (4), Sat 10-10 make-up (5).
        name: "W across National Day ends on a make-up Saturday", acceptedAt: "2026-09-28T09:00:00", limit: 5,
        unit: .workingDays, expectedDeadlineDate: "2026-10-10"),
    ClockExample(
        // Start Fri 09-18. Sat 09-19 no; Sun 09-20 make-up (1); Mon 21 (2); Tue 22 (3). Without the make-up
        // Sunday it would be 09-23.
        name: "W uses the make-up Sunday 09-20", acceptedAt: "2026-09-18T16:00:00", limit: 3, unit: .workingDays,
        expectedDeadlineDate: "2026-09-22"),
    ClockExample(
        // Start Tue 02-10. Natural dates 02-11..02-17: the 7th is Tue 02-17, a holiday. Next working day: 18-20
        // holidays, 21-22 weekend, 23 holiday, so Tue 02-24 (Civil Code art. 203).
        name: "N whose last day is a Spring Festival holiday", acceptedAt: "2026-02-10T09:00:00", limit: 7,
        unit: .naturalDays, expectedDeadlineDate: "2026-02-24"),
    ClockExample(
        // Start Sat 02-07. Natural dates 02-08..02-14: the 7th is Sat 02-14, a make-up workday, so it stays.
        name: "N whose last day is a make-up Saturday", acceptedAt: "2026-02-07T09:00:00", limit: 7,
        unit: .naturalDays, expectedDeadlineDate: "2026-02-14"),
    ClockExample(
        // Start Mon 03-02. 03-03..03-07: the 5th is Sat 03-07; Sun 03-08 not working; Mon 03-09.
        name: "N whose last day is a plain Saturday", acceptedAt: "2026-03-02T09:00:00", limit: 5,
        unit: .naturalDays, expectedDeadlineDate: "2026-03-09"),
    ClockExample(
        // L = 0: the deadline date is the start date itself, even a make-up Saturday.
        name: "L = 0", acceptedAt: "2026-02-14T10:00:00", limit: 0, unit: .workingDays,
        expectedDeadlineDate: "2026-02-14"),
    ClockExample(
        // Start Mon 03-02. Notice Tue 03-03 15:00, receipt Thu 03-05 09:00: 03-04 and 03-05 (after the notice
        // date, up to and including the receipt date) do not count. Counted: Tue 03-03 (1, the pause's own start
        // date counts), Fri 03-06 (2), Mon 09 (3), Tue 10 (4), Wed 11 (5). Without the pause: 03-09.
        name: "supplement pause on working days", acceptedAt: "2026-03-02T09:00:00", limit: 5, unit: .workingDays,
        notices: ["2026-03-03T15:00:00"], receipts: ["2026-03-05T09:00:00"], expectedDeadlineDate: "2026-03-11"),
    ClockExample(
        // Start Mon 02-09. Notice on holiday Mon 02-16, receipt on holiday Mon 02-23: excluded 02-17..02-23, all of
        // them rest days anyway. Counted W: 10, 11, 12, 13, 14 (make-up), 24, 25, 26 -> 8th is 02-26, as without
        // the pause.
        name: "W supplement pause from holiday to holiday changes nothing", acceptedAt: "2026-02-09T09:00:00",
        limit: 8, unit: .workingDays, notices: ["2026-02-16T10:00:00"], receipts: ["2026-02-23T11:00:00"],
        expectedDeadlineDate: "2026-02-26"),
    ClockExample(
        // Same pause, unit N, L = 10. Counted: 02-10..02-16 (7 dates; 02-16 is the notice date and counts),
        // 02-17..02-23 excluded, 02-24 (8), 25 (9), 26 (10): Thu 02-26, a working day. Without the pause the 10th
        // date would be 02-19 (holiday), moved to 02-24.
        name: "N supplement pause from holiday to holiday", acceptedAt: "2026-02-09T09:00:00", limit: 10,
        unit: .naturalDays, notices: ["2026-02-16T10:00:00"], receipts: ["2026-02-23T11:00:00"],
        expectedDeadlineDate: "2026-02-26"),
    ClockExample(
        // Start Mon 09-21. Special procedure (kind 4, inspection) from holiday Fri 09-25 to holiday Tue 10-06:
        // excluded 09-26..10-06, which removes the working days 09-28, 09-29, 09-30. Counted: 22 (1), 23 (2),
        // 24 (3); 09-25 holiday; 10-07 holiday; Thu 10-08 (4), Fri 10-09 (5). Without the pause: 09-29.
        name: "special pause from holiday to holiday", acceptedAt: "2026-09-21T09:00:00", limit: 5,
        unit: .workingDays, specialStarts: [(.inspectionTestingQuarantine, "2026-09-25T10:00:00", 0)],
        specialEnds: ["2026-10-06T16:00:00"], expectedDeadlineDate: "2026-10-09"),
    ClockExample(
        // Start Mon 03-02, 5 W. Notice Wed 03-04 with no receipt: counted 03-03 (1), 03-04 (2); every later date is
        // inside the open pause, so the limit is never reached: suspended.
        name: "open supplement pause suspends the clock", acceptedAt: "2026-03-02T09:00:00", limit: 5,
        unit: .workingDays, notices: ["2026-03-04T10:00:00"], expectedDeadlineDate: nil),
    ClockExample(
        // Start Mon 03-02, 2 W: counted 03-03 (1), 03-04 (2). A hearing opened on 03-04 with no end excludes
        // only dates after 03-04, so the deadline date 03-04 stands.
        name: "open pause starting on the deadline date leaves it", acceptedAt: "2026-03-02T09:00:00", limit: 2,
        unit: .workingDays, specialStarts: [(.hearing, "2026-03-04T10:00:00", 0)], expectedDeadlineDate: "2026-03-04"),
    ClockExample(
        // Start Mon 03-02, 5 W plus a kind-7 extension of 3 days on Fri 03-06 (not a pause): L = 8. Counted:
        // 03, 04, 05, 06, 09, 10, 11, 12. Without the extension: 03-09.
        name: "extension kind 7 adds days and does not pause", acceptedAt: "2026-03-02T09:00:00", limit: 5,
        unit: .workingDays, specialStarts: [(.approvedExtension, "2026-03-06T10:00:00", 3)],
        expectedDeadlineDate: "2026-03-12"),
    ClockExample(
        // Two notices before one receipt both pair with it ("the next SupplementReceipt"): pauses 03-03..03-05
        // and 03-04..03-05 exclude 03-04 and 03-05. Arrival order is scrambled on purpose. Same dates as the
        // single-pause example: 03-11.
        name: "two notices share the next receipt, any order", acceptedAt: "2026-03-02T09:00:00", limit: 5,
        unit: .workingDays, notices: ["2026-03-04T09:00:00", "2026-03-03T15:00:00"],
        receipts: ["2026-03-05T09:00:00"], expectedDeadlineDate: "2026-03-11"),
    ClockExample(
        // A receipt before the notice does not close it: the notice on 03-03 has no later receipt, so the clock
        // is suspended after 03-03 (counted: 03-03 only).
        name: "a receipt before the notice does not close it", acceptedAt: "2026-03-02T09:00:00", limit: 5,
        unit: .workingDays, notices: ["2026-03-03T15:00:00"], receipts: ["2026-03-03T09:00:00"],
        expectedDeadlineDate: nil),
]

@Suite struct CaseClockTests {
    @Test(arguments: clockExamples)
    func deadlineDates(_ example: ClockExample) throws {
        let deadline = try CaseClock.deadline(of: example.input(), calendar: officialCalendar())
        if let expected = example.expectedDeadlineDate {
            let expectedDate = try day(expected)
            // The deadline is the end of the deadline date: 00:00 of the next date.
            #expect(deadline == .due(deadlineDate: expectedDate, deadline: BeijingTime.startOfDay(expectedDate.adding(days: 1))))
        } else {
            guard case .suspended = deadline else {
                Issue.record("expected a suspended clock, got \(deadline)")
                return
            }
        }
    }

    @Test func openPauseReportsWhenItStarted() throws {
        let example = clockExamples[11]
        #expect(try CaseClock.deadline(of: example.input(), calendar: officialCalendar())
            == .suspended(pausedSince: time("2026-03-04T10:00:00")))
    }

    /// "W across the Spring Festival": deadline date 2026-02-26, deadline 2026-02-27T00:00.
    @Test(arguments: [
        // Completed at 00:00 of the deadline date: not before it, so not early; before the deadline: on time.
        ("2026-02-26T00:00:00", false, false),
        // One second before 00:00 of the deadline date: early.
        ("2026-02-25T23:59:59", false, true),
        // Last second of the deadline date: on time, not early.
        ("2026-02-26T23:59:59", false, false),
        // Exactly at the deadline: overdue ("at or after the deadline").
        ("2026-02-27T00:00:00", true, false),
    ])
    func overdueAndEarlyAtTheirBoundaries(completedAt: String, overdue: Bool, early: Bool) throws {
        let input = try clockExamples[0].input(completedAt: time(completedAt))
        // asOf is irrelevant once completed: use a time long after.
        let status = try CaseClock.status(of: input, calendar: officialCalendar(), asOf: time("2026-12-01T00:00:00"))
        #expect(status.isOverdue == overdue)
        #expect(status.isEarly == early)
    }

    @Test func openCaseBecomesOverdueExactlyAtTheDeadline() throws {
        let input = try clockExamples[0].input()
        let calendar = try officialCalendar()
        #expect(try !CaseClock.status(of: input, calendar: calendar, asOf: time("2026-02-26T23:59:59.999")).isOverdue)
        #expect(try CaseClock.status(of: input, calendar: calendar, asOf: time("2026-02-27T00:00:00")).isOverdue)
    }

    @Test func lZeroCompletedSameDayIsOnTimeAndNextMidnightOverdue() throws {
        // L = 0 accepted Sat 02-14 10:00: deadline date 02-14, deadline 02-15 00:00.
        let calendar = try officialCalendar()
        let sameDay = try clockExamples[6].input(completedAt: time("2026-02-14T17:00:00"))
        let status = try CaseClock.status(of: sameDay, calendar: calendar, asOf: time("2026-03-01T00:00:00"))
        #expect(!status.isOverdue)
        #expect(!status.isEarly)  // nothing can complete before 00:00 of its own start date after acceptance
        let nextMidnight = try clockExamples[6].input(completedAt: time("2026-02-15T00:00:00"))
        #expect(try CaseClock.status(of: nextMidnight, calendar: calendar, asOf: time("2026-03-01T00:00:00")).isOverdue)
    }

    @Test func suspendedClockIsNeitherOverdueNorEarly() throws {
        let input = try clockExamples[11].input()
        let status = try CaseClock.status(of: input, calendar: officialCalendar(), asOf: time("2026-12-31T23:00:00"))
        #expect(!status.isOverdue)
        #expect(!status.isEarly)
    }

    @Test func openPauseAfterTheDeadlineDoesNotRescueTheCase() throws {
        // Start Mon 03-02, 2 W: deadline date 03-04, deadline 03-05 00:00. A notice on Fri 03-06 (no receipt)
        // comes after the deadline date, so the deadline stands and the case is overdue as of 03-10.
        var input = try clockExamples[12].input()
        input.specialStarts = []
        input.supplementNotices = [try time("2026-03-06T10:00:00")]
        let status = try CaseClock.status(of: input, calendar: officialCalendar(), asOf: time("2026-03-10T09:00:00"))
        #expect(status.deadline == .due(deadlineDate: try day("2026-03-04"), deadline: try time("2026-03-05T00:00:00")))
        #expect(status.isOverdue)
    }

    @Test func datesBeyondTheCalendarAreReportedNotGuessed() throws {
        let calendar = try officialCalendar()
        // Start Mon 2026-12-28, 5 W: 29 (1), 30 (2), 31 (3), then 2027-01-01 is outside 2010..2026.
        let working = CaseClockInput(acceptedAt: try time("2026-12-28T09:00:00"), promisedLimit: 5, promisedUnit: .workingDays)
        #expect(throws: CalendarError.dateOutsideCalendar(date: try day("2027-01-01"), firstYear: 2010, lastYear: 2026)) {
            try CaseClock.deadline(of: working, calendar: calendar)
        }
        // 3 N: 29, 30, 31; Thu 2026-12-31 is a covered working day: fine.
        let natural = CaseClockInput(acceptedAt: try time("2026-12-28T09:00:00"), promisedLimit: 3, promisedUnit: .naturalDays)
        #expect(try CaseClock.deadline(of: natural, calendar: calendar)
            == .due(deadlineDate: day("2026-12-31"), deadline: time("2027-01-01T00:00:00")))
        // 4 N: the 4th date 2027-01-01 needs its working-day status: outside the calendar.
        let naturalBeyond = CaseClockInput(acceptedAt: try time("2026-12-28T09:00:00"), promisedLimit: 4, promisedUnit: .naturalDays)
        #expect(throws: CalendarError.self) { try CaseClock.deadline(of: naturalBeyond, calendar: calendar) }
    }

    @Test func pausesPairEachStartWithTheNextEnd() throws {
        let input = try clockExamples[14].input()
        #expect(CaseClock.pauses(of: input) == [
            ClockPause(start: try time("2026-03-03T15:00:00"), end: try time("2026-03-05T09:00:00")),
            ClockPause(start: try time("2026-03-04T09:00:00"), end: try time("2026-03-05T09:00:00")),
        ])
    }
}
