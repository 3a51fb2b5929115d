// Time-driven alerts from journal data, driven by an injectable clock: raised when the deadline passes with no
// new record, at most once, also across a restart and after the same case is ingested again.

import Foundation
import Journal
import Monitoring
import Supervision
import Testing

@Suite struct RealTimeAlertTests {
    /// Case C1 accepted Tue 2026-02-10 09:30 with 5 working days (records arrive out of order: Step first).
    /// Hand count (start date never counted): Wed 11 (1), Thu 12 (2), Fri 13 (3), Sat 14 make-up workday (4),
    /// Sun 15 rest, Mon 16-Fri 20 Spring Festival, Sat 21/Sun 22 rest, Mon 23 holiday, Tue 24 (5).
    /// Deadline date 2026-02-24 → XK01 at 2026-02-24T00:00, deadline (XK02) 2026-02-25T00:00.
    @Test func xk02RaisedAtTheDeadlineWithoutANewRecordAndOnlyOnce() throws {
        let f = try Fixture(start: "2026-02-10T09:00:00")
        try f.step("C1", handledAt: "2026-02-10T10:00:00")
        try f.acceptance("C1", acceptedAt: "2026-02-10T09:30:00", limit: 5)
        try f.application("C1", appliedAt: "2026-02-10T09:20:00")

        // (now, subjects evaluated, XK01 count, XK02 count)
        let ticks: [(String, Int, Int, Int)] = [
            ("2026-02-10T11:00:00", 1, 0, 0),  // the new case is evaluated once; timer armed at 02-24 00:00
            ("2026-02-12T11:00:00", 0, 0, 0),  // nothing due: the tick touches no subject
            ("2026-02-23T23:59:59", 0, 0, 0),  // one second before the prompt
            ("2026-02-24T00:00:30", 1, 1, 0),  // XK01 within a minute of 00:00 of the deadline date
            ("2026-02-24T23:59:00", 0, 1, 0),
            ("2026-02-25T00:00:40", 1, 1, 1),  // XK02 within a minute of the deadline, no new record
            ("2026-02-26T09:00:00", 0, 1, 1),  // nothing re-armed after the last deadline
        ]
        for (now, evaluated, xk01, xk02) in ticks {
            let summary = try f.pass(at: now)
            #expect(summary.evaluated == evaluated, "evaluated at \(now)")
            #expect(try f.alerts("XK01").count == xk01, "XK01 at \(now)")
            #expect(try f.alerts("XK02").count == xk02, "XK02 at \(now)")
        }
        let xk02 = try #require(try f.alerts("XK02").first)
        #expect(xk02.raisedAt == "2026-02-25T00:00:00+08:00")
        #expect(xk02.level == "R" && xk02.state == "OPEN" && xk02.deptCode == dept)
        // ResponseDue: end of the 3rd working day after Wed 02-25: Thu 26, Fri 27, Sat 28 (make-up) → 03-01 00:00.
        #expect(xk02.responseDue == "2026-03-01T00:00:00+08:00")
        let alertRecords = try f.journalEntries("Alert")
        #expect(alertRecords.count == 2)
        #expect(alertRecords.allSatisfy { $0.rev == 1 && $0.source == SupervisionEngine.recordSource })

        // Restart, then the same case again: identical content (unchanged) and a changed Application (rev 2).
        try f.restart()
        try f.application("C1", appliedAt: "2026-02-10T09:20:00")
        try f.acceptance("C1", acceptedAt: "2026-02-10T09:30:00", limit: 5)
        try f.append("Application", [
            "CaseNo": "C1", "ItemCode": "XK0001", "ItemName": "事项（更正）", "DeptCode": dept, "Applicant.Name": "张三",
            "Applicant.IdType": "02", "Applicant.IdNumber": "E12345678", "Channel": "1", "AppliedAt": "2026-02-10T09:20:00+08:00",
        ], seen: "2026-02-26T10:00:00")
        let afterRestart = try f.pass(at: "2026-02-26T10:05:00")
        #expect(afterRestart.evaluated == 1)
        #expect(afterRestart.alertsRaised == 0)
        #expect(try f.alerts("XK01").count == 1 && f.alerts("XK02").count == 1)
        #expect(try f.journalEntries("Alert").count == 2)
    }

    /// Deadlines as the engine sees them through journal records; XK02's RaisedAt is the deadline itself.
    @Test(arguments: [
        // L = 0: the deadline date is the start date → 00:00 of the next date.
        ("Z0", "2026-02-10T09:30:00", 0, "W", [(String, String)](), "2026-02-11T00:00:00+08:00"),
        // 3 N from Thu 02-12: 13 (1), 14 (2), Sun 15 (3) is a rest day → next working day Tue 02-24 (16-20 and 23
        // holidays, 21/22 weekend) → deadline 02-25 00:00 (Civil Code art. 203).
        ("N3", "2026-02-12T10:00:00", 3, "N", [], "2026-02-25T00:00:00+08:00"),
        // 3 W from Mon 03-02 with a supplement pause 03-03 10:00 → 03-05 15:00: 03-03 counts (1), 04 and 05 are
        // inside the pause, Fri 06 (2), Mon 09 (3) → deadline 03-10 00:00.
        ("P3", "2026-03-02T09:00:00", 3, "W",
         [("SupplementNotice", "2026-03-03T10:00:00"), ("SupplementReceipt", "2026-03-05T15:00:00")],
         "2026-03-10T00:00:00+08:00"),
        // 2 W from Tue 09-29 across National Day: Wed 30 (1), 10-01/02 holidays, 03/04 weekend, 05-07 holidays,
        // Thu 08 (2) → deadline 10-09 00:00.
        ("ND", "2026-09-29T09:00:00", 2, "W", [], "2026-10-09T00:00:00+08:00"),
        // 2 W from Fri 10-09 with the make-up Saturday: Sat 10 (1), Mon 12 (2) → deadline 10-13 00:00.
        ("MU", "2026-10-09T09:00:00", 2, "W", [], "2026-10-13T00:00:00+08:00"),
    ])
    func xk02AtTheHandComputedDeadline(caseNo: String, acceptedAt: String, limit: Int, unit: String,
                                      pauses: [(String, String)], deadline: String) throws {
        let f = try Fixture(start: acceptedAt)
        try f.acceptance(caseNo, acceptedAt: acceptedAt, limit: limit, unit: unit)
        for (type, time) in pauses {
            let field = type == "SupplementNotice" ? "NotifiedAt" : "ReceivedAt"
            try f.append(type, ["CaseNo": caseNo, field: time + "+08:00", "Handler.Name": "李四"], seen: time)
        }
        try f.pass(at: acceptedAt)
        let due = try at(deadline)
        try f.pass(at: due.adding(minutes: -1).description)
        #expect(try f.alerts("XK02").isEmpty, "not before \(deadline)")
        try f.pass(at: due.adding(milliseconds: 30_000).description)
        #expect(try f.alerts("XK02").map(\.raisedAt) == [deadline])
    }

    /// Without reference data no deadline is guessed: no XK01/XK02, a calendar gap, and a warning at start.
    @Test func noCalendarMeansNoDeadlineAndAWarning() throws {
        let f = try Fixture(start: "2026-02-10T09:00:00", reference: try ReferenceData.none())
        try f.acceptance("C9", acceptedAt: "2026-02-10T09:30:00", limit: 5)
        let summary = try f.pass(at: "2026-06-01T00:00:00")
        #expect(summary.calendarGaps >= 1)
        #expect(try f.alerts("XK01").isEmpty && f.alerts("XK02").isEmpty)
        #expect(f.log.lines.contains { $0.contains("no reference data") })
    }
}
