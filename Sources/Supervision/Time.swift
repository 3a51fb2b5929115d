// Civil dates and Beijing-time instants.
//
// The clock math of pui-v1.md section 5 works on calendar dates in China Standard Time (UTC+08:00, no daylight
// saving since 1991). Foundation's Date/Calendar would drag the process time zone and ICU into every comparison,
// so dates are plain day counts and instants are milliseconds since the Unix epoch with a fixed +08:00 offset.

import CivilTime

/// A date of the proleptic Gregorian calendar, stored as days since 1970-01-01.
///
/// Day arithmetic is integer addition; year, month and day are derived on demand.
public struct CivilDate: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Days since 1970-01-01 (negative before it).
    public let daysSinceEpoch: Int

    /// The date `daysSinceEpoch` days after 1970-01-01.
    public init(daysSinceEpoch: Int) {
        self.daysSinceEpoch = daysSinceEpoch
    }

    /// A validated date; throws for a month or day that does not exist (e.g. 2026-02-29).
    public init(year: Int, month: Int, day: Int) throws(TimeParseError) {
        guard (1...12).contains(month), day >= 1, day <= CivilDate.daysInMonth(year: year, month: month) else {
            throw .invalidDate(text: "\(year)-\(month)-\(day)")
        }
        daysSinceEpoch = CivilDate.daysFromCivil(year: year, month: month, day: day)
    }

    /// Parses `YYYY-MM-DD`.
    public init(parsing text: String) throws(TimeParseError) {
        let bytes = Array(text.utf8)
        guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
              let year = digits(bytes, 0, 4), let month = digits(bytes, 5, 2), let day = digits(bytes, 8, 2)
        else { throw .invalidDate(text: text) }
        do {
            try self.init(year: year, month: month, day: day)
        } catch {
            throw .invalidDate(text: text)
        }
    }

    public var year: Int { components.year }
    public var month: Int { components.month }
    public var day: Int { components.day }

    /// ISO weekday: 1 Monday ... 7 Sunday.
    public var isoWeekday: Int {
        // 1970-01-01 was a Thursday (ISO 4).
        let zeroBasedFromMonday = ((daysSinceEpoch + 3) % 7 + 7) % 7
        return zeroBasedFromMonday + 1
    }

    /// Saturday or Sunday.
    public var isWeekend: Bool { isoWeekday >= 6 }

    /// The date `days` days later (earlier when negative).
    public func adding(days: Int) -> CivilDate {
        CivilDate(daysSinceEpoch: daysSinceEpoch + days)
    }

    /// `YYYY-MM-DD`.
    public var description: String {
        let c = components
        return "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))"
    }

    public static func < (lhs: CivilDate, rhs: CivilDate) -> Bool { lhs.daysSinceEpoch < rhs.daysSinceEpoch }

    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int { CivilCalendar.daysFromCivil(year, month, day) }

    var components: (year: Int, month: Int, day: Int) { CivilCalendar.civilFromDays(daysSinceEpoch) }

    static func daysInMonth(year: Int, month: Int) -> Int { CivilCalendar.daysInMonth(year: year, month: month) }
}

/// An instant, read and written in China Standard Time (UTC+08:00).
public struct BeijingTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public let millisecondsSinceEpoch: Int64

    static let offsetMilliseconds: Int64 = 8 * 3_600_000
    static let millisecondsPerDay: Int64 = 86_400_000

    public init(millisecondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
    }

    /// The instant at `hour:minute:second` Beijing time on `date`. Components are added arithmetically, so
    /// `hour: 24` is 00:00 of the next date.
    public init(_ date: CivilDate, hour: Int = 0, minute: Int = 0, second: Int = 0) {
        let local = Int64(date.daysSinceEpoch) * BeijingTime.millisecondsPerDay
            + Int64(hour) * 3_600_000 + Int64(minute) * 60_000 + Int64(second) * 1000
        millisecondsSinceEpoch = local - BeijingTime.offsetMilliseconds
    }

    /// 00:00 Beijing time of `date`.
    public static func startOfDay(_ date: CivilDate) -> BeijingTime { BeijingTime(date) }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff]` followed by `+08:00`, another `±HH:MM` offset or `Z` (converted to
    /// Beijing time), or by nothing (a legacy local time, which PUI says is Beijing time). A space may replace `T`.
    public init(parsing text: String) throws(TimeParseError) {
        let bytes = Array(text.utf8)
        guard bytes.count >= 19, bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: " "),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
              let hour = digits(bytes, 11, 2), let minute = digits(bytes, 14, 2), let second = digits(bytes, 17, 2),
              hour < 24, minute < 60, second < 60
        else { throw .invalidTime(text: text) }
        let date: CivilDate
        do {
            date = try CivilDate(parsing: String(decoding: bytes[0..<10], as: UTF8.self))
        } catch {
            throw .invalidTime(text: text)
        }
        var index = 19
        var milliseconds: Int64 = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            var fractionDigits = 0
            index += 1
            while index < bytes.count, let digit = digitValue(bytes[index]) {
                if fractionDigits < 3 { milliseconds = milliseconds * 10 + Int64(digit) }
                fractionDigits += 1
                index += 1
            }
            guard fractionDigits > 0 else { throw .invalidTime(text: text) }
            // Scale "5" and "50" to 500 ms; digits beyond milliseconds were ignored above.
            var scaledDigits = min(fractionDigits, 3)
            while scaledDigits < 3 {
                milliseconds *= 10
                scaledDigits += 1
            }
        }
        // Offset of the written time from UTC; legacy times without a zone are Beijing time.
        var offsetMilliseconds = BeijingTime.offsetMilliseconds
        if index < bytes.count {
            let rest = bytes[index...]
            if rest.count == 1, rest.first == UInt8(ascii: "Z") {
                offsetMilliseconds = 0
            } else if rest.count == 6, let sign = rest.first,
                      sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-"),
                      bytes[index + 3] == UInt8(ascii: ":"),
                      let offsetHours = digits(bytes, index + 1, 2), let offsetMinutes = digits(bytes, index + 4, 2),
                      offsetHours <= 14, offsetMinutes < 60 {
                let magnitude = Int64(offsetHours * 3_600_000 + offsetMinutes * 60_000)
                offsetMilliseconds = sign == UInt8(ascii: "+") ? magnitude : -magnitude
            } else {
                throw .invalidTime(text: text)
            }
        }
        let writtenLocal = Int64(date.daysSinceEpoch) * BeijingTime.millisecondsPerDay
            + Int64(hour) * 3_600_000 + Int64(minute) * 60_000 + Int64(second) * 1000 + milliseconds
        millisecondsSinceEpoch = writtenLocal - offsetMilliseconds
    }

    private var beijingLocalMilliseconds: Int64 { millisecondsSinceEpoch + BeijingTime.offsetMilliseconds }

    /// The Beijing calendar date of this instant.
    public var date: CivilDate {
        let days = beijingLocalMilliseconds >= 0
            ? beijingLocalMilliseconds / BeijingTime.millisecondsPerDay
            : (beijingLocalMilliseconds - BeijingTime.millisecondsPerDay + 1) / BeijingTime.millisecondsPerDay
        return CivilDate(daysSinceEpoch: Int(days))
    }

    /// Milliseconds since 00:00 Beijing time of `date`.
    public var millisecondOfDay: Int64 {
        beijingLocalMilliseconds - Int64(date.daysSinceEpoch) * BeijingTime.millisecondsPerDay
    }

    /// The instant `milliseconds` later.
    public func adding(milliseconds: Int64) -> BeijingTime {
        BeijingTime(millisecondsSinceEpoch: millisecondsSinceEpoch + milliseconds)
    }

    /// The instant `minutes` later.
    public func adding(minutes: Int) -> BeijingTime { adding(milliseconds: Int64(minutes) * 60_000) }

    /// The instant `hours` later.
    public func adding(hours: Int) -> BeijingTime { adding(milliseconds: Int64(hours) * 3_600_000) }

    /// PUI wire form: `2026-01-05T08:37:00+08:00`, with `.fff` only when the milliseconds are not zero.
    public var description: String {
        let ofDay = millisecondOfDay
        let hour = Int(ofDay / 3_600_000)
        let minute = Int(ofDay / 60_000 % 60)
        let second = Int(ofDay / 1000 % 60)
        let milli = Int(ofDay % 1000)
        let fraction = milli == 0 ? "" : "." + pad(milli, 3)
        return "\(date)T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))\(fraction)+08:00"
    }

    public static func < (lhs: BeijingTime, rhs: BeijingTime) -> Bool {
        lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch
    }
}

/// A date or time text that is not in the expected form; `text` is the offending input.
public enum TimeParseError: Error, Equatable, Sendable {
    case invalidDate(text: String)
    case invalidTime(text: String)
}

/// A calendar month `YYYY-MM`, the period of a monthly score.
public struct Period: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let year: Int
    public let month: Int

    public init(year: Int, month: Int) throws(TimeParseError) {
        guard (1...12).contains(month), (1...9999).contains(year) else {
            throw .invalidDate(text: "\(year)-\(month)")
        }
        self.year = year
        self.month = month
    }

    /// Parses `YYYY-MM`.
    public init(parsing text: String) throws(TimeParseError) {
        let bytes = Array(text.utf8)
        guard bytes.count == 7, bytes[4] == UInt8(ascii: "-"),
              let year = digits(bytes, 0, 4), let month = digits(bytes, 5, 2)
        else { throw .invalidDate(text: text) }
        try self.init(year: year, month: month)
    }

    /// The month (Beijing time) an instant falls in.
    public init(containing time: BeijingTime) {
        let date = time.date
        year = date.year
        month = date.month
    }

    /// Whether the instant falls in this month, Beijing time.
    public func contains(_ time: BeijingTime) -> Bool {
        let date = time.date
        return date.year == year && date.month == month
    }

    public var description: String { "\(pad(year, 4))-\(pad(month, 2))" }

    public static func < (lhs: Period, rhs: Period) -> Bool {
        (lhs.year, lhs.month) < (rhs.year, rhs.month)
    }
}

// MARK: - small text helpers shared by the parsers of this module

func digitValue(_ byte: UInt8) -> Int? {
    byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") ? Int(byte - UInt8(ascii: "0")) : nil
}

/// The decimal value of `count` ASCII digits at `start`, or nil if any is not a digit.
func digits(_ bytes: [UInt8], _ start: Int, _ count: Int) -> Int? {
    guard start >= 0, start + count <= bytes.count else { return nil }
    var value = 0
    for index in start..<(start + count) {
        guard let digit = digitValue(bytes[index]) else { return nil }
        value = value * 10 + digit
    }
    return value
}

func pad(_ value: Int, _ width: Int) -> String {
    let text = String(value)
    return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
}
