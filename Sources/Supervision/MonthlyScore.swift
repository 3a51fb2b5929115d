// The monthly performance score of a department, exactly as pui-v1.md section 7 defines it.
//
// Every term of Total is an integer (the floors and counts), so Total is computed in integers and only written
// with one decimal; the two rates are integer ten-thousandths. No binary floating point anywhere.

/// Score grade (PUI `Grade`).
public enum Grade: String, Sendable, Equatable {
    case a = "A", b = "B", c = "C", d = "D"

    /// A from 90, B from 80, C from 60, D below 60.
    public init(total: Int) {
        switch total {
        case 90...: self = .a
        case 80..<90: self = .b
        case 60..<80: self = .c
        default: self = .d
        }
    }
}

/// The counts one month of one department contributes to its score.
public struct ScoreTallies: Sendable, Equatable {
    /// Completions in the month.
    public var casesCompleted = 0
    /// Of those, not overdue.
    public var completedOnTime = 0
    /// Of those, early.
    public var completedEarly = 0
    /// Alerts other than XK08 raised in the month, by level.
    public var prompts = 0
    public var yellowCards = 0
    public var redCards = 0
    /// Complaints closed (State 60) in the month with Substantiated true.
    public var complaintsSubstantiated = 0
    /// Evaluations in the month rated 3-5.
    public var evaluationsSatisfied = 0
    /// Evaluations in the month rated 1-2.
    public var evaluationsDissatisfied = 0
    /// XK08 alerts raised in the month.
    public var lateReports = 0

    public init() {}

    /// All evaluations of the month.
    public var evaluations: Int { evaluationsSatisfied + evaluationsDissatisfied }
}

/// Tallies that cannot come from real data.
public enum ScoreInputError: Error, Equatable, Sendable {
    case negativeCount(field: String, value: Int)
    /// A subset count larger than its whole, e.g. CompletedOnTime above CasesCompleted.
    case subsetExceedsWhole(subset: String, subsetValue: Int, whole: String, wholeValue: Int)
}

/// A completed case as the score counts it.
public struct CompletionOutcome: Sendable, Equatable {
    public var deptCode: String
    public var completedAt: BeijingTime
    public var isOverdue: Bool
    public var isEarly: Bool

    public init(deptCode: String, completedAt: BeijingTime, isOverdue: Bool, isEarly: Bool) {
        self.deptCode = deptCode
        self.completedAt = completedAt
        self.isOverdue = isOverdue
        self.isEarly = isEarly
    }
}

/// The `Score` of one department for one month.
public struct MonthlyScore: Sendable, Equatable {
    public var period: Period
    public var deptCode: String
    public var tallies: ScoreTallies
    public var onTimeRate: FourDecimalRate
    public var satisfactionRate: FourDecimalRate
    /// Total points, 0...100 (an integer by construction).
    public var total: Int
    public var grade: Grade

    /// Total as written on the wire: one decimal, `85.0`.
    public var totalText: String { "\(total).0" }

    /// Computes rates, Total and Grade from the month's tallies.
    ///
    /// Total = 100 − 10·RedCards − 5·YellowCards − 3·⌊Prompts/3⌋ − 2·ComplaintsSubstantiated − (Evaluations rated
    /// 1-2) − min(5, LateReports) + min(5, ⌊10·CompletedEarly / CasesCompleted⌋), clamped to 0...100. With no
    /// completed case the early bonus is 0 (the quotient is undefined; no case, no bonus).
    public init(period: Period, deptCode: String, tallies: ScoreTallies) throws(ScoreInputError) {
        try MonthlyScore.validate(tallies)
        self.period = period
        self.deptCode = deptCode
        self.tallies = tallies
        onTimeRate = FourDecimalRate(numerator: tallies.completedOnTime, denominator: tallies.casesCompleted)
        satisfactionRate = FourDecimalRate(numerator: tallies.evaluationsSatisfied, denominator: tallies.evaluations)
        let earlyBonus = tallies.casesCompleted > 0
            ? min(5, (10 * tallies.completedEarly) / tallies.casesCompleted)
            : 0
        let raw = 100
            - 10 * tallies.redCards
            - 5 * tallies.yellowCards
            - 3 * (tallies.prompts / 3)
            - 2 * tallies.complaintsSubstantiated
            - tallies.evaluationsDissatisfied
            - min(5, tallies.lateReports)
            + earlyBonus
        total = min(100, max(0, raw))
        grade = Grade(total: total)
    }

    /// Counts the month's events of one department, each by the time of its event: completions by CompletedAt,
    /// evaluations by RatedAt, alerts by RaisedAt, complaints by the StateAt of their closing revision.
    public static func tally(
        period: Period, deptCode: String, completions: [CompletionOutcome], evaluations: [EvaluationFacts],
        alerts: [AlertRecord], closedComplaints: [ComplaintFacts]
    ) -> ScoreTallies {
        var tallies = ScoreTallies()
        for completion in completions where completion.deptCode == deptCode && period.contains(completion.completedAt) {
            tallies.casesCompleted += 1
            if !completion.isOverdue { tallies.completedOnTime += 1 }
            if completion.isEarly { tallies.completedEarly += 1 }
        }
        for evaluation in evaluations where evaluation.deptCode == deptCode && period.contains(evaluation.ratedAt) {
            if evaluation.rating >= 3 { tallies.evaluationsSatisfied += 1 } else { tallies.evaluationsDissatisfied += 1 }
        }
        for alert in alerts where alert.deptCode == deptCode && period.contains(alert.raisedAt) {
            if alert.rule == .xk08 {
                tallies.lateReports += 1
                continue
            }
            switch alert.level {
            case .prompt: tallies.prompts += 1
            case .yellow: tallies.yellowCards += 1
            case .red: tallies.redCards += 1
            }
        }
        for complaint in closedComplaints
        where complaint.deptCode == deptCode && complaint.state == .closed && complaint.substantiated == true
            && period.contains(complaint.stateAt) {
            tallies.complaintsSubstantiated += 1
        }
        return tallies
    }

    private static func validate(_ tallies: ScoreTallies) throws(ScoreInputError) {
        let counts: [(String, Int)] = [
            ("CasesCompleted", tallies.casesCompleted), ("CompletedOnTime", tallies.completedOnTime),
            ("CompletedEarly", tallies.completedEarly), ("Prompts", tallies.prompts),
            ("YellowCards", tallies.yellowCards), ("RedCards", tallies.redCards),
            ("ComplaintsSubstantiated", tallies.complaintsSubstantiated),
            ("evaluationsSatisfied", tallies.evaluationsSatisfied),
            ("evaluationsDissatisfied", tallies.evaluationsDissatisfied), ("LateReports", tallies.lateReports),
        ]
        for (field, value) in counts where value < 0 {
            throw .negativeCount(field: field, value: value)
        }
        for (subset, value) in [("CompletedOnTime", tallies.completedOnTime), ("CompletedEarly", tallies.completedEarly)]
        where value > tallies.casesCompleted {
            throw .subsetExceedsWhole(subset: subset, subsetValue: value, whole: "CasesCompleted", wholeValue: tallies.casesCompleted)
        }
    }
}
