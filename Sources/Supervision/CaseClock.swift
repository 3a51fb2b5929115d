// The case clock of an approval case, exactly as pui-v1.md section 5 defines it.
//
// Inputs are the case's events in any arrival order; everything is sorted here, so the result depends only on
// the set of events, never on the order the journal delivered them.

/// The unit of a time limit.
public enum LimitUnit: String, Sendable, Equatable {
    /// Working days of the official calendar.
    case workingDays = "W"
    /// Natural (calendar) days, with the Civil Code art. 203 rule for a last day that is not a working day.
    case naturalDays = "N"
}

/// The kind of a special procedure (`SpecialStart/Kind`).
public enum SpecialProcedureKind: Int, Sendable, Equatable {
    case hearing = 1
    case tender = 2
    case auction = 3
    case inspectionTestingQuarantine = 4
    case appraisal = 5
    case expertReview = 6
    /// An extension approved by the head of the organ: counted time, but adds `ExtensionDays` to the limit.
    case approvedExtension = 7
    case other = 9

    /// Every kind except the extension stops the clock (Administrative Licensing Law art. 45).
    public var pausesClock: Bool { self != .approvedExtension }
}

/// A `SpecialStart` record of a case.
public struct SpecialProcedureStart: Sendable, Equatable {
    public var kind: SpecialProcedureKind
    public var startedAt: BeijingTime
    /// `ExtensionDays`; only read for kind 7.
    public var extensionDays: Int

    public init(kind: SpecialProcedureKind, startedAt: BeijingTime, extensionDays: Int = 0) {
        self.kind = kind
        self.startedAt = startedAt
        self.extensionDays = extensionDays
    }
}

/// The records of one accepted (Decision 1) approval case that drive its clock.
public struct CaseClockInput: Sendable, Equatable {
    public var acceptedAt: BeijingTime
    public var promisedLimit: Int
    public var promisedUnit: LimitUnit
    public var supplementNotices: [BeijingTime]
    public var supplementReceipts: [BeijingTime]
    public var specialStarts: [SpecialProcedureStart]
    public var specialEnds: [BeijingTime]
    public var completedAt: BeijingTime?

    public init(
        acceptedAt: BeijingTime, promisedLimit: Int, promisedUnit: LimitUnit,
        supplementNotices: [BeijingTime] = [], supplementReceipts: [BeijingTime] = [],
        specialStarts: [SpecialProcedureStart] = [], specialEnds: [BeijingTime] = [],
        completedAt: BeijingTime? = nil
    ) {
        self.acceptedAt = acceptedAt
        self.promisedLimit = promisedLimit
        self.promisedUnit = promisedUnit
        self.supplementNotices = supplementNotices
        self.supplementReceipts = supplementReceipts
        self.specialStarts = specialStarts
        self.specialEnds = specialEnds
        self.completedAt = completedAt
    }

    /// L: the promised limit plus the ExtensionDays of every kind-7 SpecialStart.
    public var effectiveLimit: Int {
        promisedLimit + specialStarts.filter { $0.kind == .approvedExtension }.reduce(0) { $0 + max(0, $1.extensionDays) }
    }
}

/// A stretch during which the clock is stopped: `end` nil while the pause is still open.
public struct ClockPause: Sendable, Equatable {
    public var start: BeijingTime
    public var end: BeijingTime?
}

/// Where the deadline of a case stands.
public enum CaseDeadline: Sendable, Equatable {
    /// The deadline date is known; `deadline` is 00:00 of the date after it.
    case due(deadlineDate: CivilDate, deadline: BeijingTime)
    /// The limit is not yet used up and a pause is open, so no further date counts and no deadline exists yet.
    case suspended(pausedSince: BeijingTime)
}

/// The clock's verdict on a case at a moment.
public struct CaseClockStatus: Sendable, Equatable {
    /// L, the limit after extensions.
    public var limit: Int
    public var deadline: CaseDeadline
    /// Overdue: the deadline passed (as of the evaluation time) without a Completion, or CompletedAt is at or
    /// after the deadline.
    public var isOverdue: Bool
    /// Early: completed before 00:00 of the deadline date.
    public var isEarly: Bool
}

/// Section 5 case clock computations.
public enum CaseClock {
    /// The pause intervals of a case: each SupplementNotice to the next SupplementReceipt at or after it, and each
    /// SpecialStart of a pausing kind to the next SpecialEnd at or after it. Sorted by start.
    ///
    /// Section 5 pairs a start with "the next" end. Two starts before one end therefore share that end; this
    /// is the normative reading even where the schema's note on SpecialEnd ("closes the latest open
    /// SpecialStart") would pair nested procedures differently.
    public static func pauses(of input: CaseClockInput) -> [ClockPause] {
        let receipts = input.supplementReceipts.sorted()
        let specialEnds = input.specialEnds.sorted()
        var pauses: [ClockPause] = []
        for notice in input.supplementNotices {
            pauses.append(ClockPause(start: notice, end: firstTime(in: receipts, atOrAfter: notice)))
        }
        for start in input.specialStarts where start.kind.pausesClock {
            pauses.append(ClockPause(start: start.startedAt, end: firstTime(in: specialEnds, atOrAfter: start.startedAt)))
        }
        return pauses.sorted { $0.start < $1.start }
    }

    /// The deadline date and deadline of a case, or `.suspended` while an open pause holds the clock.
    ///
    /// Counted dates follow the start date (the date of AcceptedAt, never counted itself) and lie outside every
    /// pause, where a pause covers the dates after its start date up to and including its end date, and every
    /// date after its start date while it is open. Unit W counts working days only; unit N counts every date, and
    /// when the L-th is not a working day the next working day outside pauses becomes the deadline date.
    /// Throws when a date whose working-day status matters lies outside the calendar.
    public static func deadline(of input: CaseClockInput, calendar: WorkingCalendar) throws(CalendarError) -> CaseDeadline {
        let startDate = input.acceptedAt.date
        let limit = input.effectiveLimit
        guard limit > 0 else {
            return .due(deadlineDate: startDate, deadline: BeijingTime.startOfDay(startDate.adding(days: 1)))
        }
        let excluded = ExcludedDates(pauses: pauses(of: input))

        var date = startDate
        var counted = 0
        while counted < limit {
            date = date.adding(days: 1)
            if let openPause = excluded.openPauseCovering(date) { return .suspended(pausedSince: openPause) }
            if excluded.closedPausesCover(date) { continue }
            switch input.promisedUnit {
            case .workingDays:
                if try calendar.isWorkingDay(date) { counted += 1 }
            case .naturalDays:
                counted += 1
            }
        }
        if input.promisedUnit == .naturalDays {
            // Civil Code art. 203: a period whose last day is a rest day ends on the next working day.
            while try !calendar.isWorkingDay(date) || excluded.closedPausesCover(date) {
                date = date.adding(days: 1)
                if let openPause = excluded.openPauseCovering(date) { return .suspended(pausedSince: openPause) }
            }
        }
        return .due(deadlineDate: date, deadline: BeijingTime.startOfDay(date.adding(days: 1)))
    }

    /// Deadline, overdue and early for a case as of `asOf` (the evaluation time; only matters while the case has no
    /// Completion). While the clock is suspended the case is neither overdue nor early: no deadline date exists.
    public static func status(
        of input: CaseClockInput, calendar: WorkingCalendar, asOf: BeijingTime
    ) throws(CalendarError) -> CaseClockStatus {
        let deadline = try deadline(of: input, calendar: calendar)
        switch deadline {
        case .due(let deadlineDate, let deadlineInstant):
            let isOverdue: Bool
            let isEarly: Bool
            if let completedAt = input.completedAt {
                isOverdue = completedAt >= deadlineInstant
                isEarly = completedAt < BeijingTime.startOfDay(deadlineDate)
            } else {
                isOverdue = asOf >= deadlineInstant
                isEarly = false
            }
            return CaseClockStatus(limit: input.effectiveLimit, deadline: deadline, isOverdue: isOverdue, isEarly: isEarly)
        case .suspended:
            return CaseClockStatus(limit: input.effectiveLimit, deadline: deadline, isOverdue: false, isEarly: false)
        }
    }

    private static func firstTime(in sorted: [BeijingTime], atOrAfter time: BeijingTime) -> BeijingTime? {
        // Few events per case: a linear scan is clearer than a binary search here.
        sorted.first { $0 >= time }
    }
}

/// The dates a case's pauses remove from counting, as day-number ranges.
private struct ExcludedDates {
    /// Closed pauses as inclusive day ranges (start date + 1 ... end date); empty ranges dropped.
    private let closedRanges: [ClosedRange<Int>]
    /// The earliest open pause: every date after its start date is excluded.
    private let earliestOpenPause: BeijingTime?

    init(pauses: [ClockPause]) {
        var ranges: [ClosedRange<Int>] = []
        var earliestOpen: BeijingTime?
        for pause in pauses {
            let firstExcluded = pause.start.date.daysSinceEpoch + 1
            if let end = pause.end {
                let lastExcluded = end.date.daysSinceEpoch
                if lastExcluded >= firstExcluded { ranges.append(firstExcluded...lastExcluded) }
            } else if earliestOpen.map({ pause.start < $0 }) ?? true {
                earliestOpen = pause.start
            }
        }
        closedRanges = ranges
        earliestOpenPause = earliestOpen
    }

    func closedPausesCover(_ date: CivilDate) -> Bool {
        closedRanges.contains { $0.contains(date.daysSinceEpoch) }
    }

    /// The start of the open pause that excludes `date`, if any.
    func openPauseCovering(_ date: CivilDate) -> BeijingTime? {
        guard let open = earliestOpenPause, date > open.date else { return nil }
        return open
    }
}
