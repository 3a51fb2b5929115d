import Foundation
import Synchronization

/// A blocking HTTP(S) client over libcurl, with mutual TLS, and an async wrapper that keeps the blocking
/// call off Swift's cooperative thread pool.
///
/// One client per receiver: it keeps a few idle curl handles, so consecutive requests reuse the
/// connection (keep-alive). Safe to use from several threads and tasks at once.
///
/// ```swift
/// let client = HTTPClient(configuration: .init(tls: .init(caFile: "ca.pem",
///     clientCertificateFile: "client.pem", clientKeyFile: "client.key")))
/// let response = try await client.send(.post("https://127.0.0.1:8443/pui", body: bytes))
/// ```
public final class HTTPClient: Sendable {
    /// TLS settings. TLS 1.2 or later is always required and the server is always verified (chain and host name).
    public struct TLSConfiguration: Sendable, Equatable {
        /// PEM file of the CA(s) the server certificate must chain to; `nil` uses the system trust store.
        public var caFile: String?
        /// PEM client certificate presented to the server (mutual TLS).
        public var clientCertificateFile: String?
        /// PEM private key of the client certificate.
        public var clientKeyFile: String?
        /// Passphrase of an encrypted client key.
        public var clientKeyPassword: String?
        /// File holding that passphrase (its content without surrounding line breaks), read for every request as
        /// the certificate and key files are: a key renewed with a new passphrase works without a restart.
        /// Takes precedence over `clientKeyPassword`.
        public var clientKeyPasswordFile: String?

        public init(caFile: String? = nil, clientCertificateFile: String? = nil, clientKeyFile: String? = nil,
                    clientKeyPassword: String? = nil, clientKeyPasswordFile: String? = nil) {
            self.caFile = caFile
            self.clientCertificateFile = clientCertificateFile
            self.clientKeyFile = clientKeyFile
            self.clientKeyPassword = clientKeyPassword
            self.clientKeyPasswordFile = clientKeyPasswordFile
        }
    }

    /// Client settings.
    public struct Configuration: Sendable {
        /// Time allowed for TCP connect + TLS handshake.
        public var connectTimeout: Duration
        /// Time allowed for the whole request, connect included.
        public var totalTimeout: Duration
        public var tls: TLSConfiguration
        /// Allow `http://` URLs (tests only: a receiver marked `insecure_plaintext`). Default: HTTPS only.
        public var allowPlaintextHTTP: Bool
        /// Larger response bodies abort the transfer with `.responseTooLarge`.
        public var maxResponseBodyBytes: Int
        /// Explicit proxy URL; `nil` means no proxy (the `*_proxy` environment variables are ignored).
        public var proxy: String?
        /// `User-Agent` header; `nil` sends none.
        public var userAgent: String?

        public init(connectTimeout: Duration = .seconds(10), totalTimeout: Duration = .seconds(60),
                    tls: TLSConfiguration = TLSConfiguration(), allowPlaintextHTTP: Bool = false,
                    maxResponseBodyBytes: Int = 64 << 20, proxy: String? = nil, userAgent: String? = "esgate") {
            self.connectTimeout = connectTimeout
            self.totalTimeout = totalTimeout
            self.tls = tls
            self.allowPlaintextHTTP = allowPlaintextHTTP
            self.maxResponseBodyBytes = maxResponseBodyBytes
            self.proxy = proxy
            self.userAgent = userAgent
        }
    }

    public let configuration: Configuration
    /// Idle easy handles (each keeps its live connections); at most `maxIdleHandles` are kept.
    private let idleHandles = Mutex<[EasyHandle]>([])
    private static let maxIdleHandles = 4

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Sends `request` and blocks the calling thread until the response arrived or the transfer failed.
    /// Do not call this from the cooperative pool (an `async` context); use `send(_:)` there.
    /// - Returns: the response, whatever its status.
    /// - Throws: `HTTPClientError` when there is no HTTP response.
    public func sendBlocking(_ request: HTTPRequest) throws(HTTPClientError) -> HTTPResponse {
        try sendBlocking(request, cancellation: nil)
    }

    /// Sends `request` on a dedicated thread (never on the cooperative pool) and suspends until done.
    /// Cancelling the calling task aborts the transfer with `.cancelled`.
    public func send(_ request: HTTPRequest) async throws(HTTPClientError) -> HTTPResponse {
        let flag = CancellationFlag()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<HTTPResponse, HTTPClientError>, Never>) in
                let thread = Thread { [self] in
                    continuation.resume(returning: Result { () throws(HTTPClientError) -> HTTPResponse in
                        try self.sendBlocking(request, cancellation: flag)
                    })
                }
                thread.name = "esgate.http-client"
                thread.start()
            }
        } onCancel: {
            flag.cancel()
        }
        return try result.get()
    }

    // MARK: - Internals

    func sendBlocking(_ request: HTTPRequest, cancellation: CancellationFlag?) throws(HTTPClientError) -> HTTPResponse {
        try validate(request)
        if cancellation?.isCancelled == true {
            throw .cancelled(CurlFailure(code: 42, message: "cancelled before the transfer started", url: request.url))
        }
        let handle: EasyHandle
        if let pooled = idleHandles.withLock({ $0.popLast() }) {
            handle = pooled
        } else {
            handle = try EasyHandle()
        }
        let response = try handle.perform(request, configuration: configuration, cancellation: cancellation)
        // Only a handle whose transfer completed goes back to the pool; a failed one is dropped with its
        // connections (deinit → curl_easy_cleanup).
        idleHandles.withLock { if $0.count < Self.maxIdleHandles { $0.append(handle) } }
        return response
    }

    private func validate(_ request: HTTPRequest) throws(HTTPClientError) {
        let lower = request.url.lowercased()
        if lower.hasPrefix("http://") {
            guard configuration.allowPlaintextHTTP else {
                throw .invalidRequest("plain HTTP refused for \(request.url): only https:// is allowed")
            }
        } else if !lower.hasPrefix("https://") {
            throw .invalidRequest("unsupported URL \(request.url): expected https://")
        }
        let forbidden: (Unicode.Scalar) -> Bool = { $0 == "\r" || $0 == "\n" || $0 == "\0" }
        if request.url.unicodeScalars.contains(where: { forbidden($0) || $0 == " " }) {
            throw .invalidRequest("URL contains whitespace or control characters")
        }
        for (name, value) in request.headers {
            if name.isEmpty || name.unicodeScalars.contains(where: { forbidden($0) || $0 == ":" || $0 == " " || $0 == ";" })
                || value.unicodeScalars.contains(where: forbidden) {
                throw .invalidRequest("invalid header field \"\(name)\"")
            }
        }
        if configuration.maxResponseBodyBytes < 0 {
            throw .invalidRequest("maxResponseBodyBytes must not be negative")
        }
    }
}
