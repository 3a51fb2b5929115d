import Foundation

/// One request as the handler sees it, body complete.
public struct HTTPServerRequest: Sendable {
    /// HTTP method, e.g. "POST".
    public let method: String
    /// Request path without the query string, e.g. "/pui".
    public let path: String
    /// Request header fields in received order.
    public let headers: [(name: String, value: String)]
    /// The complete request body (at most `maxRequestBodyBytes`).
    public let body: [UInt8]
    /// Subject CN of the client certificate, verified against the configured client CA (empty when that
    /// certificate has no CN); `nil` when the server does not require client certificates (or runs plain HTTP).
    public let clientCertificateCommonName: String?

    public init(method: String, path: String, headers: [(name: String, value: String)], body: [UInt8],
                clientCertificateCommonName: String?) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.clientCertificateCommonName = clientCertificateCommonName
    }

    /// The value of the first header field named `name` (case-insensitive), if any.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }
}

/// What the handler answers.
public struct HTTPServerResponse: Sendable {
    /// Status code, 100...599 (anything else is sent as 500).
    public var status: Int
    /// Header fields; names and values must not contain CR or LF (an invalid field turns the answer into a 500).
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Server settings.
public struct HTTPServerConfiguration: Sendable {
    /// TLS material, PEM text (not paths).
    public struct TLS: Sendable {
        /// Server certificate (chain), PEM.
        public var certificatePEM: String
        /// Server private key, PEM, unencrypted.
        public var privateKeyPEM: String
        /// CA(s) client certificates must chain to, PEM. When set, a client certificate is REQUIRED and
        /// verified during the handshake: a client without one, or with one from another CA, fails the
        /// handshake. When `nil`, no client certificate is requested.
        public var clientCAPEM: String?

        public init(certificatePEM: String, privateKeyPEM: String, clientCAPEM: String? = nil) {
            self.certificatePEM = certificatePEM
            self.privateKeyPEM = privateKeyPEM
            self.clientCAPEM = clientCAPEM
        }

        /// Reads the PEM files.
        public init(certificateFile: String, privateKeyFile: String, clientCAFile: String? = nil) throws(HTTPServerError) {
            self.init(certificatePEM: try Self.read(certificateFile), privateKeyPEM: try Self.read(privateKeyFile),
                      clientCAPEM: try clientCAFile.map { (path) throws(HTTPServerError) in try Self.read(path) })
        }

        private static func read(_ path: String) throws(HTTPServerError) -> String {
            do {
                return try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw .cannotReadFile(path: path, reason: "\(error)")
            }
        }
    }

    /// IPv4 address to bind, dotted quad. Default loopback only.
    public var host: String
    /// Port; 0 picks a free port (see `HTTPServer.port`).
    public var port: UInt16
    /// HTTPS when set, plain HTTP otherwise.
    public var tls: TLS?
    /// Larger request bodies are answered 413 (or `tooLargeResponse`) without calling the handler.
    public var maxRequestBodyBytes: Int
    /// Idle connections are closed after this many seconds (0: never).
    public var connectionTimeoutSeconds: UInt32
    /// The answer to a body over `maxRequestBodyBytes` when a protocol prescribes its own (a SOAP fault);
    /// nil: a plain-text 413.
    public var tooLargeResponse: HTTPServerResponse?

    public init(host: String = "127.0.0.1", port: UInt16 = 0, tls: TLS? = nil,
                maxRequestBodyBytes: Int = 8 << 20, connectionTimeoutSeconds: UInt32 = 30,
                tooLargeResponse: HTTPServerResponse? = nil) {
        self.host = host
        self.port = port
        self.tls = tls
        self.maxRequestBodyBytes = maxRequestBodyBytes
        self.connectionTimeoutSeconds = connectionTimeoutSeconds
        self.tooLargeResponse = tooLargeResponse
    }
}

/// Why the server could not start.
public enum HTTPServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A PEM file could not be read.
    case cannotReadFile(path: String, reason: String)
    /// The configuration is unusable before anything was tried (bad address, empty PEM, negative limit).
    case invalidConfiguration(String)
    /// libmicrohttpd refused to start: port in use, address not local, or TLS material rejected by GnuTLS.
    case startFailed(String)

    public var description: String {
        switch self {
        case .cannotReadFile(let path, let reason): return "cannot read \(path): \(reason)"
        case .invalidConfiguration(let reason): return "invalid HTTP server configuration: \(reason)"
        case .startFailed(let reason): return "HTTP server failed to start: \(reason)"
        }
    }
}
