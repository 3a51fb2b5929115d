/// What libcurl reported for a failed transfer: the CURLcode, its text, curl's detail message and the URL.
public struct CurlFailure: Sendable, Equatable, CustomStringConvertible {
    /// The raw `CURLcode` (e.g. 7 couldn't connect, 28 timeout, 35 TLS connect error, 56 receive error,
    /// 58 local certificate problem, 60 server certificate not trusted).
    public let code: Int
    /// Human-readable message: `curl_easy_strerror` plus curl's error buffer detail when present.
    public let message: String
    /// The request URL.
    public let url: String

    public init(code: Int, message: String, url: String) {
        self.code = code
        self.message = message
        self.url = url
    }

    public var description: String { "\(message) (CURLcode \(code), \(url))" }
}

/// Why an `HTTPClient` request produced no HTTP response.
///
/// Any HTTP status (including 4xx/5xx) is a response, not an error. Per PUI v1 §1, every case except
/// `invalidRequest` and `tlsConfigurationInvalid` means "unknown whether stored: resend the same package later".
public enum HTTPClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The request was refused before any network activity (bad URL, plaintext not allowed, header injection).
    case invalidRequest(String)
    /// Host name could not be resolved (CURLcode 6, or 5 for a proxy).
    case hostNotFound(CurlFailure)
    /// TCP connection actively refused: nobody listens on that port (CURLcode 7 with ECONNREFUSED).
    case connectionRefused(CurlFailure)
    /// Could not connect for another reason: unreachable network or host (CURLcode 7).
    case couldNotConnect(CurlFailure)
    /// Connect timeout or total timeout elapsed (CURLcode 28).
    case timedOut(CurlFailure)
    /// The server's certificate did not verify against the configured CA, or its name does not match
    /// the URL's host (CURLcode 60).
    case serverCertificateUntrusted(CurlFailure)
    /// The server refused our client certificate (missing, untrusted, expired): a TLS alert such as
    /// `certificate required`, `bad certificate`, `unknown ca`, `certificate expired`. Under TLS 1.3 this
    /// arrives after the client finished its side of the handshake, so it may carry CURLcode 56 instead of 35.
    case clientCertificateRejected(CurlFailure)
    /// Any other TLS handshake / protocol failure (CURLcode 35, 56 with a TLS alert, 59, 80, 83, 98 ...).
    case tlsHandshakeFailed(CurlFailure)
    /// Our own TLS files are unusable: client certificate / key (CURLcode 58) or CA file (77).
    case tlsConfigurationInvalid(CurlFailure)
    /// The connection broke after it was established: empty reply, send or receive failure (52, 55, 56).
    case connectionLost(CurlFailure)
    /// The response body exceeded `Configuration.maxResponseBodyBytes` (the transfer was aborted).
    case responseTooLarge(CurlFailure)
    /// The calling task was cancelled; the transfer was aborted (CURLcode 42).
    case cancelled(CurlFailure)
    /// Any other libcurl failure.
    case other(CurlFailure)

    /// libcurl's diagnostic, or `nil` for `invalidRequest`.
    public var curlFailure: CurlFailure? {
        switch self {
        case .invalidRequest: return nil
        case .hostNotFound(let f), .connectionRefused(let f), .couldNotConnect(let f), .timedOut(let f),
             .serverCertificateUntrusted(let f), .clientCertificateRejected(let f), .tlsHandshakeFailed(let f),
             .tlsConfigurationInvalid(let f), .connectionLost(let f), .responseTooLarge(let f),
             .cancelled(let f), .other(let f):
            return f
        }
    }

    /// The raw CURLcode, or `nil` for `invalidRequest`.
    public var curlCode: Int? { curlFailure?.code }

    /// True for every TLS / certificate problem (server or client side, handshake or local files).
    public var isTLSFailure: Bool {
        switch self {
        case .serverCertificateUntrusted, .clientCertificateRejected, .tlsHandshakeFailed, .tlsConfigurationInvalid:
            return true
        default:
            return false
        }
    }

    public var description: String {
        switch self {
        case .invalidRequest(let reason): return "invalid request: \(reason)"
        case .hostNotFound(let f): return "host not found: \(f)"
        case .connectionRefused(let f): return "connection refused: \(f)"
        case .couldNotConnect(let f): return "could not connect: \(f)"
        case .timedOut(let f): return "timed out: \(f)"
        case .serverCertificateUntrusted(let f): return "server certificate not trusted: \(f)"
        case .clientCertificateRejected(let f): return "client certificate rejected by the server: \(f)"
        case .tlsHandshakeFailed(let f): return "TLS handshake failed: \(f)"
        case .tlsConfigurationInvalid(let f): return "TLS configuration unusable: \(f)"
        case .connectionLost(let f): return "connection lost: \(f)"
        case .responseTooLarge(let f): return "response too large: \(f)"
        case .cancelled(let f): return "cancelled: \(f)"
        case .other(let f): return "transfer failed: \(f)"
        }
    }
}

extension HTTPClientError {
    /// TLS alert texts (OpenSSL's wording) meaning the server did not accept our client certificate.
    private static let clientCertificateAlerts = [
        "certificate required", "bad certificate", "unknown ca", "certificate unknown", "certificate expired",
        "certificate revoked", "unsupported certificate", "access denied",
    ]

    /// Said of a connection the server closed without a word: under TLS 1.3 the client's certificate is checked
    /// after the client finished its handshake, and the JDK's HTTPS server (likely the province's stack) then
    /// closes without a TLS alert, so curl reports only an empty reply or a reset. Without this the operator read
    /// "connection lost" and looked for a network fault.
    static let closedUnansweredHint = "the receiver closed a new TLS connection without answering: under TLS 1.3 this is "
        + "also how a receiver refuses our client certificate" + refusedCertificateCauses
    /// Under TLS 1.2 the same refusal ends the handshake itself, and OpenSSL sees only the closed socket
    /// (SSL_ERROR_SYSCALL), not an alert that would make it `clientCertificateRejected`.
    static let closedInHandshakeHint = "the receiver closed the connection during the TLS handshake without an alert: this is "
        + "also how the JDK's HTTPS server refuses our client certificate" + refusedCertificateCauses
    private static let refusedCertificateCauses = " (its CA not trusted there, expired, revoked, or not the one it expects)"

    /// Maps a failed transfer to a case. `osErrno` is CURLINFO_OS_ERRNO; `closedUnansweredAfterHandshake` is set when
    /// the transfer opened a new TLS connection and the server sent no status line; `responseTooLarge` is set when
    /// our write callback stopped the transfer; `cancelled` when our progress callback did.
    static func classify(code: Int, detail: String, url: String, osErrno: Int32, closedUnansweredAfterHandshake: Bool = false,
                         responseTooLarge: Bool, cancelled: Bool, codeText: String) -> HTTPClientError {
        var message = detail.isEmpty ? codeText : "\(codeText): \(detail)"
        let lower = detail.lowercased()
        // OpenSSL library errors ("error:0A00045C:SSL routines::tlsv13 alert certificate required"), as opposed
        // to a plain reset seen through SSL_read ("SSL_read: Connection reset by peer").
        let tlsAlert = lower.contains("alert") || lower.contains("ssl routines")
        let clientCertAlert = clientCertificateAlerts.contains { lower.contains("alert \($0)") || lower.contains("alert_\($0.replacingSpaces())") }
        if closedUnansweredAfterHandshake, [52, 55, 56].contains(code), !tlsAlert { message += "; " + closedUnansweredHint }
        if code == 35, !tlsAlert, lower.contains("ssl_error_syscall") { message += "; " + closedInHandshakeHint }
        let failure = CurlFailure(code: code, message: message, url: url)
        switch code {
        case 3: return .invalidRequest(failure.description)
        case 5, 6: return .hostNotFound(failure)
        case 7: return osErrno == 111 /* ECONNREFUSED */ ? .connectionRefused(failure) : .couldNotConnect(failure)
        case 28: return .timedOut(failure)
        case 60: return .serverCertificateUntrusted(failure)
        case 58, 77: return .tlsConfigurationInvalid(failure)
        case 23 where responseTooLarge: return .responseTooLarge(failure)
        case 42 where cancelled: return .cancelled(failure)
        case 35, 53, 54, 59, 64, 66, 80, 82, 83, 90, 91, 98:
            return clientCertAlert ? .clientCertificateRejected(failure) : .tlsHandshakeFailed(failure)
        case 56 where tlsAlert:
            return clientCertAlert ? .clientCertificateRejected(failure) : .tlsHandshakeFailed(failure)
        case 18, 52, 55, 56: return .connectionLost(failure)
        default: return .other(failure)
        }
    }
}

extension String {
    fileprivate func replacingSpaces() -> String { String(map { $0 == " " ? "_" : $0 }) }
}
