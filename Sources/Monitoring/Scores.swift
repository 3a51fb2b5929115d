// Monthly scores (pui-v1.md section 7): recomputed for the (period, department) pairs whose inputs changed and
// appended to the journal as `Score` records (a new revision only when the content changed).

import GatewayModel
import SQLiteSupport
import Supervision

/// A department's monthly score as stored and listed.
public struct ScoreRow: Sendable, Codable, Equatable {
    public var period: String
    public var deptCode: String
    public var casesCompleted: Int
    public var completedOnTime: Int
    public var completedEarly: Int
    public var onTimeRate: String
    public var prompts: Int
    public var yellowCards: Int
    public var redCards: Int
    public var complaintsSubstantiated: Int
    public var evaluations: Int
    public var evaluationsDissatisfied: Int
    public var satisfactionRate: String
    public var lateReports: Int
    public var total: Int
    public var grade: String
    /// Revision of the Score record in the journal.
    public var rev: Int64
}

extension SupervisionEngine {
    /// Recomputes every dirty (period, department) score.
    func recomputeScores() throws(MonitoringError) {
        while true {
            let dirty = try storage("read dirty scores") {
                try store.rows("SELECT period, dept FROM sv_score_dirty LIMIT ?1", [.integer(Int64(batchSize))]) {
                    ($0.text(at: 0), $0.text(at: 1))
                }
            }
            if dirty.isEmpty { return }
            try transaction("recompute scores") {
                for (period, dept) in dirty {
                    if try recomputeScore(period: period, dept: dept) { try noteScoreUpdated() }
                    try store.run("DELETE FROM sv_score_dirty WHERE period = ?1 AND dept = ?2", [.text(period), .text(dept)])
                }
            }
            if dirty.count < batchSize { return }
        }
    }

    /// The tallies of one department and month from the score inputs and the alert ledger.
    func tallies(period: Period, dept: String) throws -> ScoreTallies {
        let start = BeijingTime.startOfDay(try CivilDate(year: period.year, month: period.month, day: 1))
        let next = period.month == 12 ? try CivilDate(year: period.year + 1, month: 1, day: 1)
            : try CivilDate(year: period.year, month: period.month + 1, day: 1)
        let range: [SQLiteValue] = [.text(dept), .integer(start.millisecondsSinceEpoch),
                                    .integer(BeijingTime.startOfDay(next).millisecondsSinceEpoch)]
        var tallies = ScoreTallies()
        for row in try store.rows("""
            SELECT count(*), coalesce(sum((value & 1) = 0), 0), coalesce(sum((value & 2) <> 0), 0) FROM sv_score_event
            WHERE dept = ?1 AND kind = 'completion' AND at >= ?2 AND at < ?3
            """, range, { ($0.int(at: 0), $0.int(at: 1), $0.int(at: 2)) }) {
            tallies.casesCompleted = Int(row.0)
            tallies.completedOnTime = Int(row.1)
            tallies.completedEarly = Int(row.2)
        }
        for row in try store.rows("""
            SELECT coalesce(sum(value >= 3), 0), coalesce(sum(value < 3), 0) FROM sv_score_event
            WHERE dept = ?1 AND kind = 'evaluation' AND at >= ?2 AND at < ?3
            """, range, { ($0.int(at: 0), $0.int(at: 1)) }) {
            tallies.evaluationsSatisfied = Int(row.0)
            tallies.evaluationsDissatisfied = Int(row.1)
        }
        tallies.complaintsSubstantiated = Int(try store.rows("""
            SELECT count(*) FROM sv_score_event WHERE dept = ?1 AND kind = 'complaint' AND at >= ?2 AND at < ?3
            """, range, { $0.int(at: 0) }).first ?? 0)
        for (isLateReport, level, count) in try store.rows("""
            SELECT rule = 'XK08', level, count(*) FROM sv_alert WHERE dept = ?1 AND raised_at >= ?2 AND raised_at < ?3
            GROUP BY 1, 2
            """, range, { ($0.int(at: 0) != 0, $0.text(at: 1), Int($0.int(at: 2))) }) {
            if isLateReport {
                tallies.lateReports += count
                continue
            }
            switch AlertLevel(rawValue: level) {
            case .prompt?: tallies.prompts += count
            case .yellow?: tallies.yellowCards += count
            case .red?: tallies.redCards += count
            case nil: break
            }
        }
        return tallies
    }

    /// Recomputes one score; true when a new Score revision was appended.
    private func recomputeScore(period periodText: String, dept: String) throws -> Bool {
        let period = try Period(parsing: periodText)
        let score = try MonthlyScore(period: period, deptCode: dept, tallies: try tallies(period: period, dept: dept))
        var draft = DraftRecord(type: "Score")
        draft["Period"] = period.description
        draft["DeptCode"] = dept
        draft["CasesCompleted"] = String(score.tallies.casesCompleted)
        draft["CompletedOnTime"] = String(score.tallies.completedOnTime)
        draft["CompletedEarly"] = String(score.tallies.completedEarly)
        draft["OnTimeRate"] = score.onTimeRate.description
        draft["Prompts"] = String(score.tallies.prompts)
        draft["YellowCards"] = String(score.tallies.yellowCards)
        draft["RedCards"] = String(score.tallies.redCards)
        draft["ComplaintsSubstantiated"] = String(score.tallies.complaintsSubstantiated)
        draft["Evaluations"] = String(score.tallies.evaluations)
        draft["SatisfactionRate"] = score.satisfactionRate.description
        draft["LateReports"] = String(score.tallies.lateReports)
        draft["Total"] = score.totalText
        draft["Grade"] = score.grade.rawValue
        let previousRev = try store.rows("SELECT rev FROM sv_score WHERE period = ?1 AND dept = ?2",
                                         [.text(period.description), .text(dept)], { $0.int(at: 0) }).first
        let rev = try appendRecord(draft)
        let t = score.tallies
        try store.run("""
            INSERT OR REPLACE INTO sv_score(period, dept, cases_completed, completed_on_time, completed_early, on_time_rate,
                prompts, yellow_cards, red_cards, complaints_substantiated, evaluations, evaluations_dissatisfied,
                satisfaction_rate, late_reports, total, grade, rev)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
            """, [.text(period.description), .text(dept), .integer(Int64(t.casesCompleted)), .integer(Int64(t.completedOnTime)),
                  .integer(Int64(t.completedEarly)), .text(score.onTimeRate.description), .integer(Int64(t.prompts)),
                  .integer(Int64(t.yellowCards)), .integer(Int64(t.redCards)), .integer(Int64(t.complaintsSubstantiated)),
                  .integer(Int64(t.evaluations)), .integer(Int64(t.evaluationsDissatisfied)),
                  .text(score.satisfactionRate.description), .integer(Int64(t.lateReports)), .integer(Int64(score.total)),
                  .text(score.grade.rawValue), .integer(rev)])
        return previousRev != rev
    }

    /// Stored scores, optionally of one period, ordered by period and department.
    public func scores(period: String? = nil) throws(MonitoringError) -> [ScoreRow] {
        try storage("list scores") {
            var sql = """
                SELECT period, dept, cases_completed, completed_on_time, completed_early, on_time_rate, prompts,
                       yellow_cards, red_cards, complaints_substantiated, evaluations, evaluations_dissatisfied,
                       satisfaction_rate, late_reports, total, grade, rev FROM sv_score
                """
            var values: [SQLiteValue] = []
            if let period {
                sql += " WHERE period = ?1"
                values.append(.text(period))
            }
            sql += " ORDER BY period, dept"
            return try store.rows(sql, values) { row in
                ScoreRow(period: row.text(at: 0), deptCode: row.text(at: 1), casesCompleted: Int(row.int(at: 2)),
                         completedOnTime: Int(row.int(at: 3)), completedEarly: Int(row.int(at: 4)), onTimeRate: row.text(at: 5),
                         prompts: Int(row.int(at: 6)), yellowCards: Int(row.int(at: 7)), redCards: Int(row.int(at: 8)),
                         complaintsSubstantiated: Int(row.int(at: 9)), evaluations: Int(row.int(at: 10)),
                         evaluationsDissatisfied: Int(row.int(at: 11)), satisfactionRate: row.text(at: 12),
                         lateReports: Int(row.int(at: 13)), total: Int(row.int(at: 14)), grade: row.text(at: 15),
                         rev: row.int(at: 16))
            }
        }
    }
}
