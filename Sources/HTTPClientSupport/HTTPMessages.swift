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

    /// `Retry-After` as delta-seconds (PUI v1 §1 sends seconds). `nil` when absent or not a non-negative
    /// integer (an HTTP-date is not interpreted: the caller falls back to its own backoff).
    public var retryAfter: Duration? {
        guard let raw = header("Retry-After")?.trimmingASCIIWhitespace(), !raw.isEmpty,
              raw.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let seconds = Int64(raw) else { return nil }
        return .seconds(seconds)
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
