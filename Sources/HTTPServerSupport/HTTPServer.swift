internal import CGnuTLS
internal import CMicroHTTPD
import Foundation
import Synchronization

/// An embedded HTTP(S) server over libmicrohttpd (one thread per connection), optionally requiring and
/// verifying client certificates (mutual TLS).
///
/// The handler runs on the connection's thread with the complete request body; it may block.
///
/// ```swift
/// let server = try HTTPServer(configuration: .init(tls: tls)) { request in
///     HTTPServerResponse(status: 200, body: Array("hello \(request.clientCertificateCommonName ?? "-")".utf8))
/// }
/// defer { server.stop() }
/// print(server.port)
/// ```
public final class HTTPServer: Sendable {
    /// Request handler: called once per request whose body fits `maxRequestBodyBytes`.
    public typealias Handler = @Sendable (HTTPServerRequest) -> HTTPServerResponse

    /// The bound TCP port (the real one when the configuration asked for port 0).
    public let port: UInt16
    /// True when serving HTTPS.
    public let isTLS: Bool

    private let running: Mutex<RunningDaemon?>

    /// Per connection, for MHD's read buffer and request state. Its default (32 KiB) hands a package of half a
    /// megabyte to the handler in many small pieces, one loop of the connection's thread each; 256 KiB cut the
    /// round trip of such a package measurably (docs/benchmarks.md, end to end), for a few connections at a time.
    static let connectionMemoryLimit = 256 * 1024

    /// Binds and starts serving immediately.
    /// - Parameters:
    ///   - errorLog: receives libmicrohttpd's error messages (failed TLS handshakes, bind errors...);
    ///     called from server threads. Messages logged while starting are also put into `startFailed`.
    /// - Throws: `HTTPServerError` when the configuration is unusable or the daemon does not start.
    public init(configuration: HTTPServerConfiguration, errorLog: (@Sendable (String) -> Void)? = nil,
                handler: @escaping Handler) throws(HTTPServerError) {
        try Self.validate(configuration)
        let requireClientCertificate = configuration.tls?.clientCAPEM != nil
        let context = ServerContext(handler: handler, maxBodyBytes: configuration.maxRequestBodyBytes,
                                    tooLargeResponse: configuration.tooLargeResponse,
                                    requireClientCertificate: requireClientCertificate, errorLog: errorLog)
        let strings = CStringStore()
        let tls = configuration.tls
        let key = strings.keep(tls?.privateKeyPEM)
        let cert = strings.keep(tls?.certificatePEM)
        let trust = strings.keep(tls?.clientCAPEM)
        // TLS 1.2 or later (PUI v1 §1).
        let priorities = strings.keep(tls == nil ? nil : "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2")

        let contextRef = Unmanaged.passRetained(context)
        let logger = UnsafeMutablePointer<esg_mhd_logger>.allocate(capacity: 1)
        logger.initialize(to: esg_mhd_logger(fn: logBridge, cls: contextRef.toOpaque()))

        let daemon = configuration.host.withCString { host in
            esg_mhd_start_daemon(
                esg_mhd_flags_threaded, host, configuration.port,
                accessBridge, contextRef.toOpaque(),
                completedBridge, nil,
                requireClientCertificate ? notifyBridge : nil, nil,
                logger,
                key, cert, trust, priorities,
                configuration.connectionTimeoutSeconds, Self.connectionMemoryLimit)
        }
        context.finishStartup()
        guard let daemon else {
            let messages = context.startupMessages
            logger.deallocate()
            contextRef.release()
            // The daemon binds an address it was given whole, and its message then names "port 0": the port is
            // already in ours.
            let detail = messages.isEmpty ? "" : ": " + messages.map {
                $0.replacingOccurrences(of: "Failed to bind to port 0: ", with: "cannot bind: ")
            }.joined(separator: "; ")
            throw .startFailed("cannot serve on \(configuration.host):\(configuration.port)\(detail)")
        }
        let bound = esg_mhd_bound_port(daemon)
        let handle = RunningDaemon(daemon: daemon, context: contextRef, logger: logger, strings: strings)
        guard bound != 0 else {
            handle.stop()
            throw .startFailed("libmicrohttpd did not report the bound port")
        }
        port = bound
        isTLS = tls != nil
        running = Mutex(handle)
    }

    /// Stops accepting, waits for in-flight requests to finish, then frees the daemon. Idempotent.
    public func stop() {
        let handle = running.withLock { current -> RunningDaemon? in
            let taken = current
            current = nil
            return taken
        }
        handle?.stop()
    }

    deinit {
        stop()
    }

    private static func validate(_ configuration: HTTPServerConfiguration) throws(HTTPServerError) {
        if configuration.maxRequestBodyBytes < 0 {
            throw .invalidConfiguration("maxRequestBodyBytes must not be negative")
        }
        let parts = configuration.host.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count != 4 || !parts.allSatisfy({ UInt8($0) != nil }) {
            throw .invalidConfiguration("host must be an IPv4 address, got \"\(configuration.host)\"")
        }
        if let tls = configuration.tls {
            if !tls.certificatePEM.contains("-----BEGIN CERTIFICATE-----") {
                throw .invalidConfiguration("TLS certificate is not a PEM certificate")
            }
            if !tls.privateKeyPEM.contains("PRIVATE KEY-----") {
                throw .invalidConfiguration("TLS private key is not a PEM private key")
            }
            if let ca = tls.clientCAPEM, !ca.contains("-----BEGIN CERTIFICATE-----") {
                throw .invalidConfiguration("client CA is not a PEM certificate")
            }
        }
    }
}

// MARK: - Lifetime

/// What a running daemon owns. The unchecked `Sendable` is sound: it is created once, kept under the
/// server's mutex and stopped exactly once by whoever takes it out.
private struct RunningDaemon: @unchecked Sendable {
    let daemon: OpaquePointer
    let context: Unmanaged<ServerContext>
    let logger: UnsafeMutablePointer<esg_mhd_logger>
    let strings: CStringStore

    /// MHD_stop_daemon joins every connection thread, so after it no callback can run: only then are the
    /// callback context and the logger released.
    func stop() {
        MHD_stop_daemon(daemon)
        logger.deallocate()
        context.release()
        withExtendedLifetime(strings) {}
    }
}

/// NUL-terminated copies of strings handed to libmicrohttpd, kept until the daemon is stopped.
private final class CStringStore: @unchecked Sendable {
    private var pointers: [UnsafeMutablePointer<CChar>] = []

    func keep(_ string: String?) -> UnsafePointer<CChar>? {
        guard let string, let copy = strdup(string) else { return nil }
        pointers.append(copy)
        return UnsafePointer(copy)
    }

    deinit {
        for pointer in pointers { free(pointer) }
    }
}

// MARK: - Per-daemon and per-request state

/// Reached from every C callback through the daemon's `Unmanaged` userdata; used from many connection threads.
final class ServerContext: Sendable {
    let handler: HTTPServer.Handler
    let maxBodyBytes: Int
    let tooLargeResponse: HTTPServerResponse?
    let requireClientCertificate: Bool
    private let errorLog: (@Sendable (String) -> Void)?
    private let startup = Mutex<(starting: Bool, messages: [String])>((true, []))

    init(handler: @escaping HTTPServer.Handler, maxBodyBytes: Int, tooLargeResponse: HTTPServerResponse?,
         requireClientCertificate: Bool, errorLog: (@Sendable (String) -> Void)?) {
        self.handler = handler
        self.maxBodyBytes = maxBodyBytes
        self.tooLargeResponse = tooLargeResponse
        self.requireClientCertificate = requireClientCertificate
        self.errorLog = errorLog
    }

    func log(_ message: String) {
        startup.withLock { if $0.starting { $0.messages.append(message) } }
        errorLog?(message)
    }

    func finishStartup() { startup.withLock { $0.starting = false } }
    var startupMessages: [String] { startup.withLock { $0.messages } }

    /// Bytes of a too-large body read and thrown away before the connection is dropped instead.
    var drainLimit: Int { max(maxBodyBytes, 1 << 20) }

    // The three phases of MHD's access handler for one request.

    func headersReceived(_ connection: OpaquePointer, _ state: RequestState) -> MHD_Result {
        guard let length = connection.headerValue("Content-Length").flatMap({ Int($0) }) else { return .YES }
        if length > maxBodyBytes {
            state.tooLarge = true
            // With "Expect: 100-continue" the client has not sent the body yet: answer now, MHD then closes
            // the connection without reading it. Otherwise the body is drained first (see bodyChunk).
            if connection.headerValue("Expect")?.lowercased() == "100-continue" {
                state.responded = true
                return connection.queue(tooLarge)
            }
        } else {
            state.body.reserveCapacity(length)
        }
        return .YES
    }

    func bodyChunk(_ chunk: UnsafeRawBufferPointer, _ state: RequestState) -> MHD_Result {
        state.received += chunk.count
        if !state.tooLarge && state.received > maxBodyBytes {
            state.tooLarge = true
            state.body = []
        }
        if state.tooLarge {
            // Drain (discard) so the 413 can be read cleanly, but not without bound.
            return state.received > maxBodyBytes + drainLimit ? .NO : .YES
        }
        state.body.append(contentsOf: chunk)
        return .YES
    }

    func requestComplete(_ connection: OpaquePointer, method: String, path: String, _ state: RequestState) -> MHD_Result {
        state.responded = true
        if state.tooLarge { return connection.queue(tooLarge) }
        var commonName: String? = nil
        if requireClientCertificate {
            switch connection.verifiedPeerCommonName() {
            case .success(let cn):
                commonName = cn
            case .failure(let reason):
                log("client certificate not accepted: \(reason)")
                return connection.queue(HTTPServerResponse(status: 403, headers: [("Content-Type", "text/plain")],
                                                           body: Array("client certificate not accepted\n".utf8)))
            }
        }
        let request = HTTPServerRequest(method: method, path: path, headers: connection.requestHeaders(),
                                        body: state.body, clientCertificateCommonName: commonName)
        state.body = []
        return connection.queue(handler(request))
    }

    /// The configured answer to an oversize body, or a plain 413.
    var tooLarge: HTTPServerResponse {
        tooLargeResponse ?? HTTPServerResponse(status: 413, headers: [("Content-Type", "text/plain")],
                                               body: Array("request body exceeds \(maxBodyBytes) bytes\n".utf8))
    }
}

/// Per-request state, stored in MHD's `con_cls` slot (retained) and released by the completion callback.
/// Only touched by the thread serving its connection.
final class RequestState {
    var body: [UInt8] = []
    var received = 0
    var tooLarge = false
    var responded = false
}

// MARK: - C callback bridges (non-capturing; context through Unmanaged userdata)

/// MHD_AccessHandlerCallback. MHD calls it (1) once the headers are in, with `*con_cls == NULL`;
/// (2) for each chunk of body, with `*upload_data_size > 0` (we must consume it: set it to 0);
/// (3) once more with `*upload_data_size == 0`, when the response must be queued.
private let accessBridge: MHD_AccessHandlerCallback = { cls, connection, url, method, _, uploadData, uploadDataSize, conCls in
    guard let cls, let connection, let uploadDataSize, let conCls else { return .NO }
    let server = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
    guard let raw = conCls.pointee else {
        let state = RequestState()
        conCls.pointee = Unmanaged.passRetained(state).toOpaque()
        return server.headersReceived(connection, state)
    }
    let state = Unmanaged<RequestState>.fromOpaque(raw).takeUnretainedValue()
    let size = uploadDataSize.pointee
    if size > 0 {
        uploadDataSize.pointee = 0
        guard let uploadData else { return .NO }
        return server.bodyChunk(UnsafeRawBufferPointer(start: uploadData, count: size), state)
    }
    if state.responded { return .YES }
    return server.requestComplete(connection, method: method.map { String(cString: $0) } ?? "",
                                  path: url.map { String(cString: $0) } ?? "/", state)
}

/// MHD_RequestCompletedCallback: balances the `passRetained` of the access handler's first call.
private let completedBridge: MHD_RequestCompletedCallback = { _, _, conCls, _ in
    guard let conCls, let raw = conCls.pointee else { return }
    Unmanaged<RequestState>.fromOpaque(raw).release()
    conCls.pointee = nil
}

/// MHD_NotifyConnectionCallback, installed only when client certificates are required: before the TLS
/// handshake, switch MHD's "request a certificate" to "require and verify one".
/// It also gives the connection its `ConnectionIdentity` (MHD's socket context), released when it closes.
private let notifyBridge: MHD_NotifyConnectionCallback = { _, connection, socketContext, code in
    switch code {
    case .CONNECTION_NOTIFY_STARTED:
        guard let connection, let session = esg_mhd_tls_session(connection) else { return }
        esg_gnutls_require_verified_client_certificate(session)
        socketContext?.pointee = Unmanaged.passRetained(ConnectionIdentity()).toOpaque()
    case .CONNECTION_NOTIFY_CLOSED:
        guard let socketContext, let raw = socketContext.pointee else { return }
        Unmanaged<ConnectionIdentity>.fromOpaque(raw).release()
        socketContext.pointee = nil
    default:
        return
    }
}

/// The verified client certificate's CN of one TLS connection, kept from its first request. The handshake has
/// verified the certificate; verifying the chain again and parsing it at every request (an ECDSA check) took
/// about a third of an acknowledging receiver's CPU. The cache holds while the connection presents the same
/// certificate bytes, and for a minute at most, so that a certificate expiring during a long connection is
/// still noticed. Only the thread serving the connection touches it.
final class ConnectionIdentity {
    static let maximumAge: TimeInterval = 60
    var certificate: [UInt8] = []
    var commonName = ""
    var verifiedAt = Date.distantPast

    func cached(for presented: UnsafeBufferPointer<UInt8>, now: Date) -> String? {
        guard !certificate.isEmpty, now.timeIntervalSince(verifiedAt) < Self.maximumAge,
              now >= verifiedAt, certificate.elementsEqual(presented) else { return nil }
        return commonName
    }
}

/// esg_mhd_log_fn: forwards libmicrohttpd's formatted error messages.
private let logBridge: esg_mhd_log_fn = { cls, message in
    guard let cls, let message else { return }
    let server = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
    server.log(String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines))
}

/// MHD_KeyValueIterator target for `requestHeaders()`.
private final class HeaderCollector {
    var fields: [(name: String, value: String)] = []
}

// MARK: - Connection helpers (MHD_Connection *)

extension OpaquePointer {
    fileprivate func headerValue(_ name: String) -> String? {
        name.withCString { MHD_lookup_connection_value(self, .HEADER_KIND, $0) }.map { String(cString: $0) }
    }

    fileprivate func requestHeaders() -> [(name: String, value: String)] {
        let collector = HeaderCollector()
        withExtendedLifetime(collector) {
            _ = MHD_get_connection_values(self, .HEADER_KIND, { cls, _, key, value in
                guard let cls, let key else { return .YES }
                let collector = Unmanaged<HeaderCollector>.fromOpaque(cls).takeUnretainedValue()
                collector.fields.append((name: String(cString: key), value: value.map { String(cString: $0) } ?? ""))
                return .YES
            }, Unmanaged.passUnretained(collector).toOpaque())
        }
        return collector.fields
    }

    /// Subject CN of the verified client certificate of this TLS connection; empty when the verified certificate
    /// has no CN (the handler decides what that means: a PUI receiver answers E102, not an HTTP 403).
    fileprivate func verifiedPeerCommonName() -> Result<String, PeerCertificateError> {
        guard let session = esg_mhd_tls_session(self) else { return .failure(.init(reason: "not a TLS connection")) }
        let identity = esg_mhd_socket_context(self).map { Unmanaged<ConnectionIdentity>.fromOpaque($0).takeUnretainedValue() }
        var size = 0
        let presented = esg_gnutls_peer_certificate(session, &size).map { UnsafeBufferPointer(start: $0, count: size) }
        let now = Date()
        if let identity, let presented, let commonName = identity.cached(for: presented, now: now) {
            return .success(commonName)
        }
        let verified = verifyPeerCommonName(session)
        if let identity, let presented, case .success(let commonName) = verified {
            identity.certificate = Array(presented)
            identity.commonName = commonName
            identity.verifiedAt = now
        }
        return verified
    }

    private func verifyPeerCommonName(_ session: UnsafeMutableRawPointer) -> Result<String, PeerCertificateError> {
        var buffer = [CChar](repeating: 0, count: 256)
        var size = buffer.count
        let rc = esg_gnutls_verified_peer_common_name(session, &buffer, &size)
        if rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE { return .success("") }
        guard rc == 0 else { return .failure(.init(reason: String(cString: esg_gnutls_strerror(rc)))) }
        return .success(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// Queues `response` (copied by MHD). Invalid statuses or header fields become a plain 500.
    fileprivate func queue(_ response: HTTPServerResponse) -> MHD_Result {
        let isValidField: (String) -> Bool = { !$0.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" } }
        let valid = (100...599).contains(response.status)
            && response.headers.allSatisfy { !$0.name.isEmpty && !$0.name.contains(":") && isValidField($0.name) && isValidField($0.value) }
        let answer = valid ? response : HTTPServerResponse(status: 500, body: Array("invalid response\n".utf8))
        let created: OpaquePointer? = answer.body.withUnsafeBytes { raw in
            MHD_create_response_from_buffer(raw.count, UnsafeMutableRawPointer(mutating: raw.baseAddress),
                                            .RESPMEM_MUST_COPY)
        }
        guard let mhdResponse = created else { return .NO }
        defer { MHD_destroy_response(mhdResponse) }
        for (name, value) in answer.headers where MHD_add_response_header(mhdResponse, name, value) != .YES {
            return .NO
        }
        return MHD_queue_response(self, UInt32(answer.status), mhdResponse)
    }
}

private struct PeerCertificateError: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}
