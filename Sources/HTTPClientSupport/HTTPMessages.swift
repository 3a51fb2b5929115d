import CivilTime
import Foundation

/// A request for `HTTPClient`: method, absolute URL, header fields and body bytes.
public struct HTTPRequest: Sendable {
    /// The methods the client sends.
    public enum Method: String, Sendable {
        case get = "GET"
        case post = "POST"
    }

    public var method: Method
    /// Absolute `https://` URL (`http://` only when the client allows plaintext).
    public var url: String
    /// Header fields in sending order. Names and values must not contain CR, LF or NUL.
    public var headers: [(name: String, value: String)]
    /// Request body; sent for POST (may be empty), ignored for GET.
    public var body: [UInt8]

    public init(method: Method, url: String, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }

    /// A POST of `body` to `url`.
    public static func post(_ url: String, headers: [(name: String, value: String)] = [], body: [UInt8]) -> HTTPRequest {
        HTTPRequest(method: .post, url: url, headers: headers, body: body)
    }

    /// A GET of `url`.
    public static func get(_ url: String, headers: [(name: String, value: String)] = []) -> HTTPRequest {
        HTTPRequest(method: .get, url: url, headers: headers)
    }
}

/// A complete HTTP response: any status (4xx/5xx are responses, not errors), header fields, body.
public struct HTTPResponse: Sendable {
    /// HTTP status code, e.g. 200, 500, 503.
    public var status: Int
    /// Header fields of the final response (interim `100 Continue` headers are dropped), in received order.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The value of the first header field named `name` (case-insensitive), if any.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    /// `Retry-After` from now (see `retryAfter(now:)`).
    public var retryAfter: Duration? { retryAfter(now: Date()) }

    /// `Retry-After` as a wait from `now`: delay-seconds (what PUI v1 §1 sends) or an HTTP-date (RFC 9110
    /// §10.2.3; IMF-fixdate and the obsolete RFC 850 and asctime forms, §5.6.7), a date in the past being no
    /// wait. `nil` when absent or unreadable (the caller falls back to its own backoff).
    public func retryAfter(now: Date) -> Duration? {
        guard let raw = header("Retry-After")?.trimmingASCIIWhitespace(), !raw.isEmpty else { return nil }
        if raw.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            // More seconds than an Int64 holds is still a wait (the longest), not an unreadable value that would
            // leave only the short first backoff (as RFC 9111 §1.2.2 reads an unrepresentable delta-seconds).
            return .seconds(Int64(raw) ?? .max)
        }
        guard let date = Self.httpDate(raw, now: now) else { return nil }
        let seconds = date.timeIntervalSince(now)
        return seconds > 0 ? .seconds(Int64(seconds.rounded(.up))) : .zero
    }

    /// An HTTP-date in any of its three forms (always GMT), read by arithmetic: Foundation's `DateFormatter` would
    /// load ICU's data (some megabytes resident) for a header that is rare. The weekday is not checked against
    /// the date (RFC 9110 lets a recipient ignore it); an impossible date (31 Nov) is refused.
    static func httpDate(_ text: String, now: Date = Date()) -> Date? {
        // asctime pads a one-digit day with a space: "Sun Nov  6 08:49:37 1994".
        let tokens = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let weekday = tokens.first, weekday.utf8.allSatisfy({ isLetter($0) || $0 == UInt8(ascii: ",") }) else { return nil }
        let day: Int, month: Int, time: String
        var year: Int
        var twoDigitYear = false
        // The day may have one digit: RFC 1123 dates (RFC 822 §5.1: 1*2DIGIT) allow it, and java.time's
        // RFC_1123_DATE_TIME, which a Java receiver uses for this header, writes "Sat, 5 Dec 2026 …" on days 1-9.
        if weekday.hasSuffix(","), tokens.count == 6, tokens[5] == "GMT",
           let d = number(tokens[1], digits: 1...2), let m = monthNumber(tokens[2]), let y = number(tokens[3], digits: 4) {
            (day, month, year, time) = (d, m, y, tokens[4])                          // Sun, 06 Nov 1994 08:49:37 GMT
        } else if weekday.hasSuffix(","), tokens.count == 4, tokens[3] == "GMT" {
            let parts = tokens[1].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, let d = number(parts[0], digits: 2), let m = monthNumber(parts[1]),
                  let yy = number(parts[2], digits: 2) else { return nil }
            (day, month, year, time) = (d, m, yy, tokens[2])                         // Sunday, 06-Nov-94 08:49:37 GMT
            twoDigitYear = true
        } else if !weekday.hasSuffix(","), tokens.count == 5, let m = monthNumber(tokens[1]),
                  let d = number(tokens[2], digits: 1...2), let y = number(tokens[4], digits: 4) {
            (day, month, year, time) = (d, m, y, tokens[3])                          // Sun Nov  6 08:49:37 1994
        } else {
            return nil
        }
        let clock = time.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard clock.count == 3, let hour = number(clock[0], digits: 2), let minute = number(clock[1], digits: 2),
              let second = number(clock[2], digits: 2), hour < 24, minute < 60, second < 61 else { return nil }
        if twoDigitYear {
            year = Self.fullYear(year, month: month, day: day, secondOfDay: hour * 3600 + minute * 60 + second, now: now)
        }
        guard day >= 1, day <= CivilCalendar.daysInMonth(year: year, month: month) else { return nil }
        let days = CivilCalendar.daysFromCivil(year, month, day)
        return Date(timeIntervalSince1970: Double(days * 86_400 + hour * 3600 + minute * 60 + min(second, 59)))
    }

    private static func isLetter(_ byte: UInt8) -> Bool { (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") }

    private static func number(_ text: String, digits: Int) -> Int? { number(text, digits: digits...digits) }

    private static func number(_ text: String, digits: ClosedRange<Int>) -> Int? {
        guard digits.contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return Int(text)
    }

    /// "Jan" … "Dec" (case-sensitive, as the grammar has them) → 1 … 12.
    private static func monthNumber(_ text: String) -> Int? {
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].firstIndex(of: text).map { $0 + 1 }
    }

    /// RFC 9110 §5.6.7: a two-digit year whose timestamp appears to be more than 50 years in the future is the most
    /// recent past year with those digits. So the year is the latest one with those last two digits whose timestamp
    /// is at most 50 years after `now`: that compares whole timestamps (31 Dec 2076 is more than 50 years after
    /// 5 Dec 2026), and near a century's end it lies in the next century ("00" seen in 2099 is 2100).
    private static func fullYear(_ twoDigits: Int, month: Int, day: Int, secondOfDay: Int, now: Date) -> Int {
        let nowSeconds = Int((now.timeIntervalSince1970).rounded(.down))
        let nowDays = Int((Double(nowSeconds) / 86_400).rounded(.down))
        let today = CivilCalendar.civilFromDays(nowDays)
        let limitYear = today.year + 50
        var year = limitYear - ((limitYear % 100) + 100) % 100 + twoDigits
        if year > limitYear { year -= 100 }
        // Same year as the limit: later in the year than now (month, day, time of day) is beyond it.
        if year == limitYear,
           (month, day, secondOfDay) > (today.month, today.day, nowSeconds - nowDays * 86_400) { year -= 100 }
        return year
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A }
        let bytes = Array(utf8)
        guard let first = bytes.firstIndex(where: { !isSpace($0) }),
              let last = bytes.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
