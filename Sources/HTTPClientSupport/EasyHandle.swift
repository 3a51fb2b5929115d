internal import CCurl
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Process-wide `curl_global_init`, run once: a global `let` is initialised lazily and exactly once.
let curlGlobalInit: Int = Int(esg_curl_global_init().rawValue)

/// Set by the async wrapper when its task is cancelled; polled by the transfer's progress callback.
final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func cancel() { flag.store(true, ordering: .relaxed) }
    var isCancelled: Bool { flag.load(ordering: .relaxed) }
}

/// Per-transfer state reached from libcurl's callbacks through `Unmanaged` userdata.
/// Only touched by the thread running `curl_easy_perform`.
private final class TransferState {
    let maxBodyBytes: Int
    let cancellation: CancellationFlag?
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []
    var bodyTooLarge = false
    var cancelled = false
    /// A status line (interim or final) arrived: the server answered something.
    var answered = false

    init(maxBodyBytes: Int, cancellation: CancellationFlag?) {
        self.maxBodyBytes = maxBodyBytes
        self.cancellation = cancellation
    }

    /// One raw header line ("Name: value\r\n", or a status line starting a new response).
    func addHeaderLine(_ line: UnsafeBufferPointer<UInt8>) {
        let text = String(decoding: line, as: UTF8.self)
        if text.hasPrefix("HTTP/") {
            answered = true
            headers.removeAll()   // a new (possibly final, after 100 Continue) response begins
            return
        }
        guard let colon = text.firstIndex(of: ":") else { return }
        let name = String(text[..<colon]).trimmingASCIIWhitespace()
        let value = String(text[text.index(after: colon)...]).trimmingASCIIWhitespace()
        if !name.isEmpty { headers.append((name: name, value: value)) }
    }
}

// MARK: - C callback bridges (non-capturing; the state arrives as Unmanaged userdata)

/// CURLOPT_WRITEFUNCTION: append body bytes; returning less than offered aborts with CURLE_WRITE_ERROR.
private let writeBody: curl_write_callback = { data, size, count, userdata in
    guard let userdata else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(userdata).takeUnretainedValue()
    let n = size * count
    guard n > 0, let data else { return 0 }
    if state.body.count + n > state.maxBodyBytes {
        state.bodyTooLarge = true
        return 0
    }
    UnsafeRawPointer(data).withMemoryRebound(to: UInt8.self, capacity: n) {
        state.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: n))
    }
    return n
}

/// CURLOPT_HEADERFUNCTION: one complete header line per call.
private let writeHeader: curl_write_callback = { data, size, count, userdata in
    guard let userdata else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(userdata).takeUnretainedValue()
    let n = size * count
    guard n > 0, let data else { return n }
    UnsafeRawPointer(data).withMemoryRebound(to: UInt8.self, capacity: n) {
        state.addHeaderLine(UnsafeBufferPointer(start: $0, count: n))
    }
    return n
}

/// CURLOPT_XFERINFOFUNCTION: non-zero aborts the transfer (CURLE_ABORTED_BY_CALLBACK) once cancelled.
private let checkCancellation: curl_xferinfo_callback = { userdata, _, _, _, _ in
    guard let userdata else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(userdata).takeUnretainedValue()
    if state.cancellation?.isCancelled == true {
        state.cancelled = true
        return 1
    }
    return 0
}

// MARK: - Easy handle

/// Owns one `CURL *` easy handle and its error buffer. Not thread-safe: `HTTPClient` checks a handle out of
/// its pool for exactly one transfer at a time, which is why the unchecked `Sendable` is sound (libcurl
/// allows moving an easy handle between threads as long as it is used by one thread at a time).
/// Reusing the handle (after `curl_easy_reset`) keeps its connection cache: keep-alive reuse.
final class EasyHandle: @unchecked Sendable {
    private let handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init() throws(HTTPClientError) {
        _ = curlGlobalInit
        guard let h = curl_easy_init() else {
            throw .other(CurlFailure(code: 2, message: "curl_easy_init failed", url: ""))
        }
        handle = h
        errorBuffer = .allocate(capacity: esg_curl_error_size)
        errorBuffer.initialize(repeating: 0, count: esg_curl_error_size)
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Runs one transfer. Validation of URL and headers is done by the caller.
    func perform(_ request: HTTPRequest, configuration: HTTPClient.Configuration,
                 cancellation: CancellationFlag?) throws(HTTPClientError) -> HTTPResponse {
        curl_easy_reset(handle)
        errorBuffer[0] = 0
        let url = request.url
        let state = TransferState(maxBodyBytes: configuration.maxResponseBodyBytes, cancellation: cancellation)

        var headerList: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(headerList) }
        for (name, value) in request.headers {
            // "Name;" is curl's spelling of a header with an empty value ("Name:" would remove it).
            let line = value.isEmpty ? "\(name);" : "\(name): \(value)"
            guard let appended = curl_slist_append(headerList, line) else {
                throw .other(CurlFailure(code: 27, message: "out of memory building header list", url: url))
            }
            headerList = appended
        }

        return try withExtendedLifetime(state) { () throws(HTTPClientError) -> HTTPResponse in
            let userdata = Unmanaged.passUnretained(state).toOpaque()
            try setPointer(CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer), url)
            try setString(CURLOPT_URL, url, url)
            try setString(CURLOPT_PROTOCOLS_STR, configuration.allowPlaintextHTTP ? "http,https" : "https", url)
            try setLong(CURLOPT_NOSIGNAL, 1, url)
            try setLong(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1), url)
            try setLong(CURLOPT_TCP_KEEPALIVE, 1, url)
            try setLong(CURLOPT_CONNECTTIMEOUT_MS, configuration.connectTimeout.wholeMilliseconds, url)
            try setLong(CURLOPT_TIMEOUT_MS, configuration.totalTimeout.wholeMilliseconds, url)
            try setString(CURLOPT_PROXY, configuration.proxy ?? "", url)   // "" disables proxies and *_proxy env vars
            if let agent = configuration.userAgent { try setString(CURLOPT_USERAGENT, agent, url) }

            // TLS: 1.2 or later, peer and host name verified, optional client certificate.
            let tls = configuration.tls
            try setLong(CURLOPT_SSLVERSION, Int(CURL_SSLVERSION_TLSv1_2), url)
            try setLong(CURLOPT_SSL_VERIFYPEER, 1, url)
            try setLong(CURLOPT_SSL_VERIFYHOST, 2, url)
            if let ca = tls.caFile { try setString(CURLOPT_CAINFO, ca, url) }
            if let cert = tls.clientCertificateFile {
                try setString(CURLOPT_SSLCERT, cert, url)
                try setString(CURLOPT_SSLCERTTYPE, "PEM", url)
            }
            if let key = tls.clientKeyFile {
                try setString(CURLOPT_SSLKEY, key, url)
                try setString(CURLOPT_SSLKEYTYPE, "PEM", url)
            }
            if let file = tls.clientKeyPasswordFile {
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw HTTPClientError.invalidRequest("cannot read the client key's passphrase file \(file)")
                }
                try setString(CURLOPT_KEYPASSWD, String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines), url)
            } else if let password = tls.clientKeyPassword {
                try setString(CURLOPT_KEYPASSWD, password, url)
            }

            try check(esg_curl_setopt_write_function(handle, CURLOPT_WRITEFUNCTION, writeBody), "CURLOPT_WRITEFUNCTION", url)
            try setPointer(CURLOPT_WRITEDATA, userdata, url)
            try check(esg_curl_setopt_write_function(handle, CURLOPT_HEADERFUNCTION, writeHeader), "CURLOPT_HEADERFUNCTION", url)
            try setPointer(CURLOPT_HEADERDATA, userdata, url)
            if cancellation != nil {
                try check(esg_curl_setopt_xferinfo_function(handle, checkCancellation), "CURLOPT_XFERINFOFUNCTION", url)
                try setPointer(CURLOPT_XFERINFODATA, userdata, url)
                try setLong(CURLOPT_NOPROGRESS, 0, url)
            }
            if let headerList { try check(esg_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList), "CURLOPT_HTTPHEADER", url) }

            let code: CURLcode
            switch request.method {
            case .get:
                try setLong(CURLOPT_HTTPGET, 1, url)
                code = curl_easy_perform(handle)
            case .post:
                // CURLOPT_POSTFIELDS is not copied: the bytes must stay valid until curl_easy_perform returns.
                // An empty body still needs a valid pointer (NULL would make curl read stdin).
                let bytes = request.body.isEmpty ? [UInt8(0)] : request.body
                try setLong(CURLOPT_POST, 1, url)
                try check(esg_curl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)),
                          "CURLOPT_POSTFIELDSIZE_LARGE", url)
                let outcome = bytes.withUnsafeBytes { raw -> Result<CURLcode, HTTPClientError> in
                    let pointer = UnsafeMutableRawPointer(mutating: raw.baseAddress)
                    let set = esg_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, pointer)
                    guard set == CURLE_OK else { return .failure(setupFailure(set, "CURLOPT_POSTFIELDS", url)) }
                    let rc = curl_easy_perform(handle)
                    _ = esg_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, nil)   // never leave a dangling pointer
                    return .success(rc)
                }
                code = try outcome.get()
            }

            guard code == CURLE_OK else {
                var osErrno = 0
                _ = esg_curl_getinfo_long(handle, CURLINFO_OS_ERRNO, &osErrno)
                var newConnections = 0
                _ = esg_curl_getinfo_long(handle, CURLINFO_NUM_CONNECTS, &newConnections)
                throw HTTPClientError.classify(
                    code: Int(code.rawValue), detail: errorText(), url: url, osErrno: Int32(truncatingIfNeeded: osErrno),
                    closedUnansweredAfterHandshake: newConnections > 0 && !state.answered && url.lowercased().hasPrefix("https:"),
                    responseTooLarge: state.bodyTooLarge, cancelled: state.cancelled,
                    codeText: String(cString: curl_easy_strerror(code)))
            }
            var status = 0
            try check(esg_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status), "CURLINFO_RESPONSE_CODE", url)
            return HTTPResponse(status: status, headers: state.headers, body: state.body)
        }
    }

    // MARK: helpers: one checking wrapper per setopt flavour

    private func errorText() -> String {
        let bytes = UnsafeBufferPointer(start: errorBuffer, count: esg_curl_error_size)
        return String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .trimmingASCIIWhitespace()
    }

    private func setupFailure(_ code: CURLcode, _ what: String, _ url: String) -> HTTPClientError {
        let text = String(cString: curl_easy_strerror(code))
        return .other(CurlFailure(code: Int(code.rawValue), message: "\(what): \(text)", url: url))
    }

    private func check(_ code: CURLcode, _ what: String, _ url: String) throws(HTTPClientError) {
        guard code == CURLE_OK else { throw setupFailure(code, what, url) }
    }

    private func setLong(_ option: CURLoption, _ value: Int, _ url: String) throws(HTTPClientError) {
        try check(esg_curl_setopt_long(handle, option, value), "setting option \(option.rawValue)", url)
    }

    private func setString(_ option: CURLoption, _ value: String, _ url: String) throws(HTTPClientError) {
        // libcurl copies string options (except CURLOPT_POSTFIELDS, which is not set through here).
        let code = value.withCString { esg_curl_setopt_string(handle, option, $0) }
        try check(code, "setting option \(option.rawValue)", url)
    }

    private func setPointer(_ option: CURLoption, _ value: UnsafeMutableRawPointer?, _ url: String) throws(HTTPClientError) {
        try check(esg_curl_setopt_pointer(handle, option, value), "setting option \(option.rawValue)", url)
    }
}

extension Duration {
    /// Whole milliseconds, at least 1 (0 would mean "no timeout" to libcurl), saturating.
    var wholeMilliseconds: Int {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 1 }
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return Int.max }
        return max(1, Int(clamping: ms + attoseconds / 1_000_000_000_000_000))
    }
}
