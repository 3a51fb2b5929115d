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
        guard let date = Self.httpDate(raw) else { return nil }
        let seconds = date.timeIntervalSince(now)
        return seconds > 0 ? .seconds(Int64(seconds.rounded(.up))) : .zero
    }

    /// An HTTP-date in any of its three forms (always GMT).
    static func httpDate(_ text: String) -> Date? {
        // asctime pads a one-digit day with a space: "Sun Nov  6 08:49:37 1994".
        let collapsed = text.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        for format in ["EEE, dd MMM yyyy HH:mm:ss 'GMT'", "EEEE, dd-MMM-yy HH:mm:ss 'GMT'", "EEE MMM d HH:mm:ss yyyy"] {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            if format.contains("yy'") || format.contains("-yy ") {
                // RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is in the past century.
                formatter.twoDigitStartDate = Date(timeIntervalSinceNow: -49 * 365.25 * 86400)
            }
            if let date = formatter.date(from: collapsed) { return date }
        }
        return nil
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
