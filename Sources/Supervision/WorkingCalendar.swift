import Foundation

// The official working calendar (PUI ReferenceData/Calendar, or the same data as CSV).
//
// pui-v1.md section 5: a working day is Monday to Friday unless listed `holiday`, plus any date listed `workday`.
// Section 4: a gateway MUST NOT guess a calendar, so every question about a date outside firstYear...lastYear
// throws `CalendarError.dateOutsideCalendar` instead of falling back to the plain Monday-Friday week.

/// How the official calendar lists a date that deviates from the Monday-Friday week.
public enum CalendarDayKind: String, Sendable, Equatable {
    /// A statutory rest day (usually on Monday-Friday).
    case holiday
    /// A Saturday or Sunday worked in lieu (调休).
    case workday
}

/// One `Day` entry of the reference calendar.
public struct CalendarDay: Sendable, Equatable {
    public var date: CivilDate
    public var kind: CalendarDayKind
    public var name: String?

    public init(date: CivilDate, kind: CalendarDayKind, name: String? = nil) {
        self.date = date
        self.kind = kind
        self.name = name
    }
}

/// A question the calendar cannot answer without guessing.
public enum CalendarError: Error, Equatable, Sendable {
    /// `date` lies outside the years the reference calendar covers: report it as an operational warning.
    case dateOutsideCalendar(date: CivilDate, firstYear: Int, lastYear: Int)
}

/// Reference calendar data that cannot be turned into a calendar; line numbers are 1-based.
public enum CalendarDataError: Error, Equatable, Sendable {
    case invalidYearRange(firstYear: Int, lastYear: Int)
    case dayOutsideYearRange(date: CivilDate, firstYear: Int, lastYear: Int)
    /// The same date listed once as holiday and once as workday.
    case conflictingKinds(date: CivilDate)
    case malformedLine(lineNumber: Int, line: String, reason: String)
    /// The CSV text holds no day at all, so no year range can be derived from it.
    case noDays
}

/// Working days of the official calendar for the years `firstYear...lastYear`.
public struct WorkingCalendar: Sendable {
    public let firstYear: Int
    public let lastYear: Int
    /// Deviations from the Monday-Friday week, keyed by `CivilDate.daysSinceEpoch` for cheap lookups in clock loops.
    private let exceptions: [Int: CalendarDayKind]
    private let firstCoveredDay: Int
    private let lastCoveredDay: Int

    /// Builds the calendar from the ReferenceData `Calendar` element's values.
    ///
    /// A date listed twice with the same kind is accepted (the shipped CSV repeats a few lines); with different
    /// kinds it is an error, because either answer would be a guess.
    public init(firstYear: Int, lastYear: Int, days: [CalendarDay]) throws(CalendarDataError) {
        guard firstYear <= lastYear, firstYear >= 1, lastYear <= 9999 else {
            throw .invalidYearRange(firstYear: firstYear, lastYear: lastYear)
        }
        var exceptions: [Int: CalendarDayKind] = [:]
        for day in days {
            guard (firstYear...lastYear).contains(day.date.year) else {
                throw .dayOutsideYearRange(date: day.date, firstYear: firstYear, lastYear: lastYear)
            }
            if let earlier = exceptions[day.date.daysSinceEpoch], earlier != day.kind {
                throw .conflictingKinds(date: day.date)
            }
            exceptions[day.date.daysSinceEpoch] = day.kind
        }
        self.firstYear = firstYear
        self.lastYear = lastYear
        self.exceptions = exceptions
        self.firstCoveredDay = CivilDate.daysFromCivil(year: firstYear, month: 1, day: 1)
        self.lastCoveredDay = CivilDate.daysFromCivil(year: lastYear, month: 12, day: 31)
    }

    /// Parses the CSV form of the reference calendar (`spec/reference/calendar-cn.csv`): `#` comment lines, an
    /// optional `date,kind,name` header, then one `YYYY-MM-DD,holiday|workday[,name]` per line.
    ///
    /// The CSV carries no explicit year range. Pass `firstYear`/`lastYear` when the source states them; otherwise
    /// the range is the first to the last year that has an entry (every year of the State Council's notices has
    /// at least one weekday holiday, so a covered year never has zero entries).
    public static func parseCSV(
        _ text: String, firstYear: Int? = nil, lastYear: Int? = nil
    ) throws(CalendarDataError) -> WorkingCalendar {
        var days: [CalendarDay] = []
        var lineNumber = 0
        // "\r\n" is a single Character in Swift, so split on every newline form, not just "\n".
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            let line = rawLine.trimmingSpacesAndCarriageReturns()
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false)
                .map { $0.trimmingSpacesAndCarriageReturns() }
            if days.isEmpty, fields.first?.lowercased() == "date" { continue }  // header
            guard fields.count >= 2 else {
                throw .malformedLine(lineNumber: lineNumber, line: line, reason: "expected date,kind[,name]")
            }
            let date: CivilDate
            do {
                date = try CivilDate(parsing: fields[0])
            } catch {
                throw .malformedLine(lineNumber: lineNumber, line: line, reason: "date is not YYYY-MM-DD")
            }
            guard let kind = CalendarDayKind(rawValue: fields[1]) else {
                throw .malformedLine(lineNumber: lineNumber, line: line, reason: "kind is not holiday or workday")
            }
            let name = fields.count > 2 ? unquoted(fields[2]) : nil
            days.append(CalendarDay(date: date, kind: kind, name: name?.isEmpty == true ? nil : name))
        }
        let years = days.map(\.date.year)
        guard let minYear = years.min(), let maxYear = years.max() else {
            if let firstYear, let lastYear {
                return try WorkingCalendar(firstYear: firstYear, lastYear: lastYear, days: [])
            }
            throw .noDays
        }
        return try WorkingCalendar(firstYear: firstYear ?? minYear, lastYear: lastYear ?? maxYear, days: days)
    }

    /// Whether `date` lies in `firstYear...lastYear`.
    public func covers(_ date: CivilDate) -> Bool {
        (firstCoveredDay...lastCoveredDay).contains(date.daysSinceEpoch)
    }

    /// Whether `date` is a working day; throws for a date the calendar does not cover.
    public func isWorkingDay(_ date: CivilDate) throws(CalendarError) -> Bool {
        guard covers(date) else {
            throw .dateOutsideCalendar(date: date, firstYear: firstYear, lastYear: lastYear)
        }
        switch exceptions[date.daysSinceEpoch] {
        case .holiday?: return false
        case .workday?: return true
        case nil: return !date.isWeekend
        }
    }

    /// The `count`-th working day after `date` (`date` itself never counts; `count` 0 returns `date`).
    public func workingDay(_ count: Int, after date: CivilDate) throws(CalendarError) -> CivilDate {
        var current = date
        var found = 0
        while found < count {
            current = current.adding(days: 1)
            if try isWorkingDay(current) { found += 1 }
        }
        return current
    }

    /// 00:00 of the date after the `count`-th working day after `time`'s date: "the end of the n-th working day
    /// after" in the spec (ResponseDue, TS01, ZS03).
    public func endOfWorkingDay(_ count: Int, after time: BeijingTime) throws(CalendarError) -> BeijingTime {
        BeijingTime.startOfDay(try workingDay(count, after: time.date).adding(days: 1))
    }
}

private func unquoted(_ text: String) -> String {
    guard text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\"") else { return text }
    return String(text.dropFirst().dropLast()).replacingOccurrences(of: "\"\"", with: "\"")
}

extension StringProtocol {
    /// Drops the spaces, tabs and carriage returns that CSV exports from Windows leave around fields.
    func trimmingSpacesAndCarriageReturns() -> String {
        let isPadding: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isPadding($0) }), let last = lastIndex(where: { !isPadding($0) })
        else { return "" }
        return String(self[first...last])
    }
}
