// Section 7 worked by hand:
// Total = 100 − 10·R − 5·Y − 3·⌊P/3⌋ − 2·CS − bad − min(5, late) + min(5, ⌊10·early/completed⌋), clamped 0..100.

import Testing
@testable import Supervision

struct ScoreExample: Sendable, CustomTestStringConvertible {
    var name: String
    var tallies: ScoreTallies
    var total: Int
    var grade: Grade
    var onTimeRate: String
    var satisfactionRate: String
    var testDescription: String { name }
}

func tallies(
    completed: Int = 0, onTime: Int = 0, early: Int = 0, prompts: Int = 0, yellow: Int = 0, red: Int = 0,
    substantiated: Int = 0, satisfied: Int = 0, dissatisfied: Int = 0, late: Int = 0
) -> ScoreTallies {
    var t = ScoreTallies()
    t.casesCompleted = completed
    t.completedOnTime = onTime
    t.completedEarly = early
    t.prompts = prompts
    t.yellowCards = yellow
    t.redCards = red
    t.complaintsSubstantiated = substantiated
    t.evaluationsSatisfied = satisfied
    t.evaluationsDissatisfied = dissatisfied
    t.lateReports = late
    return t
}

let scoreExamples: [ScoreExample] = [
    // 100 − 0 − 5·1 − 3·⌊4/3⌋=3 − 2·1 − 1 − min(5,2)=2 + min(5,⌊30/8⌋=3) = 100−5−3−2−1−2+3 = 90 -> A.
    // OnTimeRate 7/8 = 0.8750; SatisfactionRate 9/10 = 0.9000.
    ScoreExample(name: "mixed month", tallies: tallies(completed: 8, onTime: 7, early: 3, prompts: 4, yellow: 1,
                 substantiated: 1, satisfied: 9, dissatisfied: 1, late: 2),
                 total: 90, grade: .a, onTimeRate: "0.8750", satisfactionRate: "0.9000"),
    // Nothing happened: both rates 1 ("when none"), no bonus without cases: 100 -> A.
    ScoreExample(name: "empty month", tallies: tallies(), total: 100, grade: .a, onTimeRate: "1.0000", satisfactionRate: "1.0000"),
    // 100 + min(5, ⌊10·10/10⌋ = 10) = 105, clamped to 100.
    ScoreExample(name: "clamped at 100", tallies: tallies(completed: 10, onTime: 10, early: 10),
                 total: 100, grade: .a, onTimeRate: "1.0000", satisfactionRate: "1.0000"),
    // 100 − 10·12 = −20, clamped to 0 -> D. OnTimeRate 2/3 = 0.66666.. -> 0.6667.
    ScoreExample(name: "clamped at 0", tallies: tallies(completed: 3, onTime: 2, red: 12),
                 total: 0, grade: .d, onTimeRate: "0.6667", satisfactionRate: "1.0000"),
    // Prompts are charged per full three: ⌊5/3⌋ = 1 -> 97; LateReports capped: min(5, 7) = 5 -> 92.
    ScoreExample(name: "prompt floor and late cap", tallies: tallies(prompts: 5, late: 7),
                 total: 92, grade: .a, onTimeRate: "1.0000", satisfactionRate: "1.0000"),
    // Early bonus floor: ⌊10·2/7⌋ = ⌊2.857⌋ = 2; 2 yellow cards −10: 100 − 10 + 2 = 92. All 7 on time.
    ScoreExample(name: "early bonus floors", tallies: tallies(completed: 7, onTime: 7, early: 2, yellow: 2),
                 total: 92, grade: .a, onTimeRate: "1.0000", satisfactionRate: "1.0000"),
    // 10 bad ratings: 90 -> A (the A threshold itself). Satisfaction 0/10 = 0.0000.
    ScoreExample(name: "90 is A", tallies: tallies(dissatisfied: 10), total: 90, grade: .a, onTimeRate: "1.0000", satisfactionRate: "0.0000"),
    // 11 bad ratings: 89 -> B. Satisfaction 5/16 = 0.3125.
    ScoreExample(name: "89 is B", tallies: tallies(satisfied: 5, dissatisfied: 11), total: 89, grade: .b, onTimeRate: "1.0000", satisfactionRate: "0.3125"),
    // 2 red: 80 -> B.
    ScoreExample(name: "80 is B", tallies: tallies(red: 2), total: 80, grade: .b, onTimeRate: "1.0000", satisfactionRate: "1.0000"),
    // 2 red, 1 bad rating: 79 -> C. Satisfaction 0/1.
    ScoreExample(name: "79 is C", tallies: tallies(red: 2, dissatisfied: 1), total: 79, grade: .c, onTimeRate: "1.0000", satisfactionRate: "0.0000"),
    // 4 red: 60 -> C. OnTimeRate 1/32 = 0.03125 -> 0.0313 (half-up).
    ScoreExample(name: "60 is C", tallies: tallies(completed: 32, onTime: 1, red: 4), total: 60, grade: .c, onTimeRate: "0.0313", satisfactionRate: "1.0000"),
    // 4 red and 1 bad rating: 100 − 40 − 1 = 59 -> D.
    ScoreExample(name: "59 is D", tallies: tallies(red: 4, dissatisfied: 1), total: 59, grade: .d, onTimeRate: "1.0000", satisfactionRate: "0.0000"),
    // Substantiated complaints cost 2 each: 100 − 2·3 = 94.
    ScoreExample(name: "substantiated complaints", tallies: tallies(substantiated: 3), total: 94, grade: .a, onTimeRate: "1.0000", satisfactionRate: "1.0000"),
]

@Suite struct MonthlyScoreTests {
    @Test(arguments: scoreExamples)
    func totalGradeAndRates(_ example: ScoreExample) throws {
        let score = try MonthlyScore(period: Period(parsing: "2026-02"), deptCode: testDept, tallies: example.tallies)
        #expect(score.total == example.total)
        #expect(score.totalText == "\(example.total).0")
        #expect(score.grade == example.grade)
        #expect(score.onTimeRate.description == example.onTimeRate)
        #expect(score.satisfactionRate.description == example.satisfactionRate)
    }

    @Test func impossibleTalliesAreRefused() throws {
        #expect(throws: ScoreInputError.subsetExceedsWhole(subset: "CompletedOnTime", subsetValue: 3, whole: "CasesCompleted", wholeValue: 2)) {
            try MonthlyScore(period: Period(parsing: "2026-02"), deptCode: testDept, tallies: tallies(completed: 2, onTime: 3))
        }
        #expect(throws: ScoreInputError.negativeCount(field: "RedCards", value: -1)) {
            try MonthlyScore(period: Period(parsing: "2026-02"), deptCode: testDept, tallies: tallies(red: -1))
        }
    }

    @Test func tallyCountsEachEventInTheMonthOfItsTime() throws {
        let february = try Period(parsing: "2026-02")
        let otherDept = "410103002"
        func alert(_ rule: RuleCode, _ raisedAt: String, dept: String = testDept) throws -> AlertRecord {
            AlertRecord(raising: AlertCandidate(rule: rule, subjectKey: "S-\(rule.rawValue)-\(raisedAt)", deptCode: dept,
                                                raisedAt: try time(raisedAt), detail: "", responseDue: nil))
        }
        let completions = [
            CompletionOutcome(deptCode: testDept, completedAt: try time("2026-02-03T10:00:00"), isOverdue: false, isEarly: true),
            CompletionOutcome(deptCode: testDept, completedAt: try time("2026-02-27T10:00:00"), isOverdue: true, isEarly: false),
            CompletionOutcome(deptCode: testDept, completedAt: try time("2026-02-28T23:59:59"), isOverdue: false, isEarly: false),
            CompletionOutcome(deptCode: testDept, completedAt: try time("2026-03-01T00:00:00"), isOverdue: false, isEarly: true), // March
            CompletionOutcome(deptCode: otherDept, completedAt: try time("2026-02-10T10:00:00"), isOverdue: false, isEarly: true), // other dept
        ]
        let evaluations = [
            EvaluationFacts(evaluationId: "E1", deptCode: testDept, rating: 5, ratedAt: try time("2026-02-10T10:00:00")),
            EvaluationFacts(evaluationId: "E2", deptCode: testDept, rating: 3, ratedAt: try time("2026-02-11T10:00:00")),
            EvaluationFacts(evaluationId: "E3", deptCode: testDept, rating: 2, ratedAt: try time("2026-02-12T10:00:00")),
            EvaluationFacts(evaluationId: "E4", deptCode: testDept, rating: 1, ratedAt: try time("2026-01-31T23:59:59")), // January
        ]
        let alerts = [
            try alert(.xk01, "2026-02-26T00:00:00"), try alert(.cf02, "2026-02-01T00:00:00"),
            try alert(.xk03, "2026-02-10T10:00:00"), try alert(.xk02, "2026-02-27T00:00:00"),
            try alert(.xk08, "2026-02-05T10:00:00"), try alert(.xk08, "2026-02-06T10:00:00"),
            try alert(.xk02, "2026-03-01T00:00:00"),                    // March
            try alert(.pj01, "2026-02-12T10:05:00", dept: otherDept),   // other dept
        ]
        let complaints = [
            ComplaintFacts(complaintNo: "T1", deptCode: testDept, receivedAt: try time("2026-01-20T10:00:00"), state: .closed,
                           stateAt: try time("2026-02-20T10:00:00"), substantiated: true),
            ComplaintFacts(complaintNo: "T2", deptCode: testDept, receivedAt: try time("2026-02-02T10:00:00"), state: .closed,
                           stateAt: try time("2026-02-21T10:00:00"), substantiated: false),
            ComplaintFacts(complaintNo: "T3", deptCode: testDept, receivedAt: try time("2026-02-02T10:00:00"), state: .replied,
                           stateAt: try time("2026-02-21T10:00:00"), substantiated: true),  // not closed
        ]
        let counted = MonthlyScore.tally(period: february, deptCode: testDept, completions: completions,
                                         evaluations: evaluations, alerts: alerts, closedComplaints: complaints)
        // February, this department: 3 completions (02-03 early, 02-27 overdue, 02-28 on time), 2 on time, 1 early;
        // prompts XK01 + CF02 = 2; yellow XK03 = 1; red XK02 (02-27) = 1; XK08 twice = 2 late reports;
        // evaluations E1 (5) and E2 (3) satisfied, E3 (2) dissatisfied, E4 is January; 1 substantiated closed
        // complaint (T2 not substantiated, T3 not closed).
        #expect(counted == tallies(completed: 3, onTime: 2, early: 1, prompts: 2, yellow: 1, red: 1, substantiated: 1,
                                   satisfied: 2, dissatisfied: 1, late: 2))
        // 100 − 10 − 5 − 3·⌊2/3⌋=0 − 2 − 1 − 2 + min(5, ⌊10/3⌋ = 3) = 83 -> B; on time 2/3 = 0.6667; satisfied 2/3.
        let score = try MonthlyScore(period: february, deptCode: testDept, tallies: counted)
        #expect(score.total == 83)
        #expect(score.grade == .b)
        #expect(score.onTimeRate.description == "0.6667")
        #expect(score.satisfactionRate.description == "0.6667")
    }
}
