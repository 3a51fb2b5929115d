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
            return Int64(raw).map { .seconds($0) }
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
        let day: Int, month: Int, year: Int, time: String
        if weekday.hasSuffix(","), tokens.count == 6, tokens[5] == "GMT",
           let d = number(tokens[1], digits: 2), let m = monthNumber(tokens[2]), let y = number(tokens[3], digits: 4) {
            (day, month, year, time) = (d, m, y, tokens[4])                          // Sun, 06 Nov 1994 08:49:37 GMT
        } else if weekday.hasSuffix(","), tokens.count == 4, tokens[3] == "GMT" {
            let parts = tokens[1].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, let d = number(parts[0], digits: 2), let m = monthNumber(parts[1]),
                  let yy = number(parts[2], digits: 2) else { return nil }
            // RFC 9110 §5.6.7: a two-digit year that would be more than 50 years in the future is in the past.
            let thisYear = civilYear(of: now)
            var y = thisYear - thisYear % 100 + yy
            if y > thisYear + 50 { y -= 100 }
            (day, month, year, time) = (d, m, y, tokens[2])                          // Sunday, 06-Nov-94 08:49:37 GMT
        } else if !weekday.hasSuffix(","), tokens.count == 5, let m = monthNumber(tokens[1]),
                  let d = number(tokens[2], digits: 1...2), let y = number(tokens[4], digits: 4) {
            (day, month, year, time) = (d, m, y, tokens[3])                          // Sun Nov  6 08:49:37 1994
        } else {
            return nil
        }
        let clock = time.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard clock.count == 3, let hour = number(clock[0], digits: 2), let minute = number(clock[1], digits: 2),
              let second = number(clock[2], digits: 2), hour < 24, minute < 60, second < 61,
              day >= 1, day <= CivilCalendar.daysInMonth(year: year, month: month) else { return nil }
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

    /// The Gregorian year (UTC) of `date`.
    private static func civilYear(of date: Date) -> Int {
        CivilCalendar.civilFromDays(Int((date.timeIntervalSince1970 / 86_400).rounded(.down))).year
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
