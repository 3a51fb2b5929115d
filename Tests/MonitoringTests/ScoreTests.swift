// Monthly scores from journal data (pui-v1.md section 7), recomputed and re-sent when late data changes them.

import Foundation
import Journal
import Monitoring
import Supervision
import Testing

@Suite struct ScoreTests {
    /// Four cases of department 410103001, all accepted Mon 2026-03-02 09:00 with 3 W: deadline date Thu 03-05
    /// (03, 04, 05), deadline 03-06 00:00, XK01 moment 03-05 00:00, early = completed before 03-05 00:00.
    ///   S1 completed 03-03 10:00: early, on time, no alert.
    ///   S2 completed 03-05 10:00: on time, not early; open at 00:00 of its deadline date → XK01 (P).
    ///   S3 completed 03-06 09:00: overdue → XK01 (P) + XK02 (R).
    ///   S4 still open at the pass on 03-10 → XK01 (P) + XK02 (R).
    /// Evaluations: EV1 rated 5, EV2 rated 2 (→ PJ01, Y, raised at the pass in March).
    /// March tallies: completed 3, on time 2, early 1, prompts 3, yellow 1, red 2, evaluations 2 (1 bad).
    /// Total = 100 − 10·2 − 5·1 − 3·⌊3/3⌋ − 2·0 − 1 − min(5, 0) + min(5, ⌊10·1/3⌋) = 100−20−5−3−1+3 = 74 → C.
    /// OnTimeRate 2/3 = 0.6667, SatisfactionRate 1/2 = 0.5000.
    /// Then S4 completes late on 03-11: completed 4, on time 2, early 1 → OnTimeRate 0.5000, early bonus
    /// ⌊10/4⌋ = 2 → Total 73 → C, Score rev 2 (no new alert: XK01/XK02 of S4 exist already).
    @Test func scoreFromJournalDataAndItsRecomputation() throws {
        let f = try Fixture(start: "2026-03-02T09:00:00")
        for caseNo in ["S1", "S2", "S3", "S4"] {
            try f.application(caseNo, appliedAt: "2026-03-02T08:50:00")
            try f.acceptance(caseNo, acceptedAt: "2026-03-02T09:00:00", limit: 3)
        }
        try f.completion("S1", completedAt: "2026-03-03T10:00:00")
        try f.completion("S2", completedAt: "2026-03-05T10:00:00")
        try f.completion("S3", completedAt: "2026-03-06T09:00:00")
        try f.evaluation("EV1", rating: 5, ratedAt: "2026-03-03T11:00:00")
        try f.evaluation("EV2", rating: 2, ratedAt: "2026-03-04T11:00:00")
        try f.pass(at: "2026-03-10T12:00:00")

        let score = try #require(try f.engine.scores(period: "2026-03").first)
        let expected: [(String, Int, Int)] = [
            ("casesCompleted", score.casesCompleted, 3), ("completedOnTime", score.completedOnTime, 2),
            ("completedEarly", score.completedEarly, 1), ("prompts", score.prompts, 3),
            ("yellowCards", score.yellowCards, 1), ("redCards", score.redCards, 2), ("evaluations", score.evaluations, 2),
            ("lateReports", score.lateReports, 0), ("total", score.total, 74), ("rev", Int(score.rev), 1),
        ]
        for (name, actual, value) in expected { #expect(actual == value, "\(name)") }
        #expect(score.onTimeRate == "0.6667" && score.satisfactionRate == "0.5000" && score.grade == "C")
        let record = try #require(try f.journalEntries("Score").last)
        #expect(record.body.contains("<Total>74.0</Total>") && record.body.contains("<Grade>C</Grade>"))

        // A pass with nothing new does not re-send the score.
        try f.pass(at: "2026-03-10T12:01:00")
        #expect(try f.journalEntries("Score").count == 1)

        try f.completion("S4", completedAt: "2026-03-11T10:00:00", seen: "2026-03-11T10:30:00")
        let late = try f.pass(at: "2026-03-11T11:00:00")
        #expect(late.alertsRaised == 0 && late.scoresUpdated == 1)
        let updated = try #require(try f.engine.scores(period: "2026-03").first)
        #expect(updated.casesCompleted == 4 && updated.onTimeRate == "0.5000" && updated.total == 73 && updated.rev == 2)

        // Statistics by department (same data): 4 accepted, 4 completed, 2 on time; fees none.
        let stats = try #require(try f.engine.statistics(by: .dept).first)
        #expect(stats.group == dept && stats.casesAccepted == 4 && stats.casesCompleted == 4 && stats.completedOnTime == 2)
        #expect(stats.prompts == 3 && stats.yellowCards == 1 && stats.redCards == 2)
        // Working days used: S1 1 (03), S2 3, S3 4, S4 7 (03-06, 09, 10, 11) → 15 / 4 = 3.75.
        #expect(stats.averageWorkingDays == 3.75)
    }

    /// XK08: a record first seen more than 24 hours after its event time counts as a late report.
    @Test(arguments: [("2026-03-03T09:00:00", 0), ("2026-03-03T09:00:01", 1)])
    func lateReportsCount(seen: String, late: Int) throws {
        let f = try Fixture(start: "2026-03-02T09:00:00")
        try f.acceptance("L1", acceptedAt: "2026-03-02T09:00:00", limit: 10, seen: seen)
        try f.pass(at: "2026-03-03T12:00:00")
        #expect(try f.alerts("XK08").count == late)
        // No alert and no completion: no score at all for the month (nothing to report).
        #expect(try f.engine.scores(period: "2026-03").first?.lateReports ?? 0 == late)
    }
}
