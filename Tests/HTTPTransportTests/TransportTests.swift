import Foundation
@testable import HTTPClientSupport
@testable import HTTPServerSupport
import Synchronization
import Testing

/// Real TLS handshakes on loopback between HTTPClient (libcurl/OpenSSL) and HTTPServer (libmicrohttpd/GnuTLS)
/// or a Python peer, with certificates generated in the test run.
@Suite struct TransportTests {
    static let soapHeaders = [(name: "Content-Type", value: "text/xml; charset=utf-8"),
                              (name: "SOAPAction", value: "\"urn:cn-esup:pui:1#SubmitPackage\"")]

    /// Echoes what the receiver saw: client CN, method, path, SOAPAction and body size.
    static let echo: HTTPServer.Handler = { request in
        let text = "cn=\(request.clientCertificateCommonName ?? "-") method=\(request.method) path=\(request.path) "
            + "soapaction=\(request.header("soapaction") ?? "-") len=\(request.body.count)"
        return HTTPServerResponse(status: 200, headers: [("Content-Type", "text/plain")], body: Array(text.utf8))
    }

    func client(_ tls: HTTPClient.TLSConfiguration, totalTimeout: Duration = .seconds(20)) -> HTTPClient {
        HTTPClient(configuration: .init(connectTimeout: .seconds(5), totalTimeout: totalTimeout, tls: tls))
    }

    @Test func mutualTLSHandshakeSucceedsAndServerSeesClientCN() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        let server = try HTTPServer(configuration: .init(tls: try certs.serverTLS()), handler: Self.echo)
        defer { server.stop() }
        #expect(server.port != 0)
        #expect(server.isTLS)

        let http = client(certs.clientTLS())
        let body = Array("<soap:Envelope/>".utf8)
        for _ in 0..<3 {   // repeated requests exercise the pooled handle (keep-alive reuse)
            let response = try await http.send(.post("https://127.0.0.1:\(server.port)/pui", headers: Self.soapHeaders, body: body))
            #expect(response.status == 200)
            #expect(String(decoding: response.body, as: UTF8.self)
                == "cn=410103 method=POST path=/pui soapaction=\"urn:cn-esup:pui:1#SubmitPackage\" len=\(body.count)")
            #expect(response.header("content-type") == "text/plain")
        }
        // Host name "localhost" is in the SAN too; GET and the blocking call work as well.
        let get = try http.sendBlocking(.get("https://localhost:\(server.port)/status"))
        #expect(get.status == 200)
        #expect(String(decoding: get.body, as: UTF8.self).hasPrefix("cn=410103 method=GET path=/status"))
    }

    /// The receiver keeps each connection's verified client CN instead of verifying the chain at every request
    /// (`ConnectionIdentity`). Two gateways with certificates of their own (one CA, CNs 410103 and 410104) send
    /// in turn over their kept-alive connections: each request is still seen with its own sender's CN.
    @Test func interleavedClientsOnTheirOwnConnectionsAreEachSeenWithTheirOwnCN() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        // A second client certificate from the same CA: make-certs.sh keeps a CA it finds.
        let other = certs.directory.appendingPathComponent("other").path
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        for name in ["ca.pem", "ca.key"] { try FileManager.default.copyItem(atPath: certs.path(name), toPath: other + "/" + name) }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("certs/make-certs.sh").path
        #expect(try run("/bin/bash", [script, other, "410104"]).status == 0)
        let server = try HTTPServer(configuration: .init(tls: try certs.serverTLS()), handler: Self.echo)
        defer { server.stop() }
        let first = client(certs.clientTLS())
        let second = client(HTTPClient.TLSConfiguration(caFile: certs.path("ca.pem"), clientCertificateFile: other + "/client.pem",
                                                        clientKeyFile: other + "/client.key"))
        for _ in 0..<3 {
            for (http, cn) in [(first, "410103"), (second, "410104")] {
                let response = try await http.send(.post("https://127.0.0.1:\(server.port)/pui", headers: Self.soapHeaders, body: [1]))
                #expect(String(decoding: response.body, as: UTF8.self).hasPrefix("cn=\(cn) "))
            }
        }
    }

    /// A client key renewed under a new passphrase (key file and passphrase file replaced while the gateway runs)
    /// is used from the next connection on: the passphrase file is read for every request, as the key file is.
    /// It was read once at start, and every new connection then failed until a restart.
    @Test func aKeyRenewedWithANewPassphraseIsUsedWithoutARestart() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        let key = certs.path("client-encrypted.key"), passphrase = certs.path("client.pass")
        func encrypt(_ secret: String) throws {
            #expect(try run("/usr/bin/openssl", ["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", certs.path("client.key"),
                                                 "-out", key, "-passout", "pass:" + secret]).status == 0)
            try Data((secret + "\n").utf8).write(to: URL(fileURLWithPath: passphrase))
        }
        try encrypt("first-secret")
        // The server closes every connection after its answer, so each request makes a new TLS handshake.
        let server = try HTTPServer(configuration: .init(tls: try certs.serverTLS())) { request in
            var response = Self.echo(request)
            response.headers.append((name: "Connection", value: "close"))
            return response
        }
        defer { server.stop() }
        let http = client(HTTPClient.TLSConfiguration(caFile: certs.path("ca.pem"), clientCertificateFile: certs.path("client.pem"),
                                                      clientKeyFile: key, clientKeyPasswordFile: passphrase))
        let url = "https://127.0.0.1:\(server.port)/pui"
        #expect(try await http.send(.post(url, headers: Self.soapHeaders, body: [1])).status == 200)
        try encrypt("second-secret")
        let renewed = try await http.send(.post(url, headers: Self.soapHeaders, body: [1]))
        #expect(renewed.status == 200 && String(decoding: renewed.body, as: UTF8.self).hasPrefix("cn=410103 "))
    }

    /// What the per-connection cache answers: only for the same certificate bytes, for a minute at most, and
    /// not when the clock went back behind the verification.
    @Test func aConnectionsCachedIdentityHoldsOnlyForTheSameCertificateAndAMinute() {
        let identity = ConnectionIdentity()
        let verified = Date(timeIntervalSince1970: 1_800_000_000)
        let der: [UInt8] = [0x30, 0x82, 1, 2, 3]
        der.withUnsafeBufferPointer { #expect(identity.cached(for: $0, now: verified) == nil, "nothing verified yet") }
        identity.certificate = der
        identity.commonName = "410103"
        identity.verifiedAt = verified
        der.withUnsafeBufferPointer { bytes in
            #expect(identity.cached(for: bytes, now: verified.addingTimeInterval(59)) == "410103")
            #expect(identity.cached(for: bytes, now: verified.addingTimeInterval(60)) == nil, "verified again after a minute")
            #expect(identity.cached(for: bytes, now: verified.addingTimeInterval(-1)) == nil, "clock set back")
        }
        ([0x30, 0x82, 1, 2, 4] as [UInt8]).withUnsafeBufferPointer {
            #expect(identity.cached(for: $0, now: verified) == nil, "another certificate")
        }
    }

    /// A port already taken is what an operator meets most when starting `esgate receive`: the error names the
    /// address asked for and the cause, not libmicrohttpd's "port 0".
    @Test func portInUseNamesTheAddressAndTheCause() throws {
        let first = try HTTPServer(configuration: .init(), handler: Self.echo)
        defer { first.stop() }
        do {
            let second = try HTTPServer(configuration: .init(port: first.port), handler: Self.echo)
            second.stop()
            Issue.record("a second server bound port \(first.port)")
        } catch {
            #expect(error.description.contains("cannot serve on 127.0.0.1:\(first.port): cannot bind: Address already in use"),
                    "\(error.description)")
            #expect(!error.description.contains("port 0"), "\(error.description)")
        }
    }

    @Test func clientWithoutCertificateIsRefusedDuringHandshake() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        let handled = Atomic<Int>(0)
        let server = try HTTPServer(configuration: .init(tls: try certs.serverTLS())) { request in
            handled.add(1, ordering: .relaxed)
            return Self.echo(request)
        }
        defer { server.stop() }

        do {
            let response = try await client(certs.clientTLS(client: nil))
                .send(.post("https://127.0.0.1:\(server.port)/pui", body: Array("x".utf8)))
            Issue.record("expected a TLS failure, got HTTP \(response.status)")
        } catch {
            #expect(error.isTLSFailure, "\(error)")
            #expect(error.curlCode == 56 || error.curlCode == 35, "\(error)")
            if case .clientCertificateRejected = error {} else { Issue.record("expected clientCertificateRejected, got \(error)") }
        }
        #expect(handled.load(ordering: .relaxed) == 0)
    }

    @Test func clientCertificateFromAnotherCAOrExpiredIsRefused() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        let server = try HTTPServer(configuration: .init(tls: try certs.serverTLS()), handler: Self.echo)
        defer { server.stop() }

        for name in ["rogue-client", "expired-client"] {
            do {
                let response = try await client(certs.clientTLS(client: name))
                    .send(.post("https://127.0.0.1:\(server.port)/pui", body: Array("x".utf8)))
                Issue.record("\(name): expected a TLS failure, got HTTP \(response.status)")
            } catch {
                #expect(error.isTLSFailure, "\(name): \(error)")
                if case .clientCertificateRejected = error {} else { Issue.record("\(name): got \(error)") }
            }
        }
    }

    @Test func clientTrustingTheWrongCAFailsAsUntrustedServer() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        let server = try HTTPServer(configuration: .init(tls: try certs.serverTLS()), handler: Self.echo)
        defer { server.stop() }

        do {
            _ = try await client(certs.clientTLS(ca: "rogue-ca.pem"))
                .send(.post("https://127.0.0.1:\(server.port)/pui", body: []))
            Issue.record("expected serverCertificateUntrusted")
        } catch {
            #expect(error.curlCode == 60, "\(error)")
            if case .serverCertificateUntrusted = error {} else { Issue.record("got \(error)") }
            #expect(error.isTLSFailure)
        }
    }

    @Test func busyReceiverRetryAfterIsSurfaced() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        let server = try HTTPServer(configuration: .init(tls: try certs.serverTLS())) { _ in
            HTTPServerResponse(status: 503, headers: [("Retry-After", "7")], body: Array("busy".utf8))
        }
        defer { server.stop() }

        let response = try await client(certs.clientTLS())
            .send(.post("https://127.0.0.1:\(server.port)/pui", headers: Self.soapHeaders, body: Array("x".utf8)))
        #expect(response.status == 503)
        #expect(response.header("Retry-After") == "7")
        #expect(response.retryAfter == .seconds(7))
        #expect(String(decoding: response.body, as: UTF8.self) == "busy")
    }

    @Test func oversizeBodyIsAnswered413WithoutCallingTheHandler() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        let handled = Atomic<Int>(0)
        let limit = 4096
        let server = try HTTPServer(configuration: .init(tls: try certs.serverTLS(), maxRequestBodyBytes: limit)) { request in
            handled.add(1, ordering: .relaxed)
            return Self.echo(request)
        }
        defer { server.stop() }
        let http = client(certs.clientTLS())
        let url = "https://127.0.0.1:\(server.port)/pui"

        let atLimit = try await http.send(.post(url, body: [UInt8](repeating: 0x41, count: limit)))
        #expect(atLimit.status == 200)
        #expect(String(decoding: atLimit.body, as: UTF8.self).hasSuffix("len=\(limit)"))

        // Small excess: the body is sent at once and drained; large excess: curl sends
        // "Expect: 100-continue" and the 413 arrives before the body is sent.
        for size in [limit + 1, 2 << 20] {
            let response = try await http.send(.post(url, body: [UInt8](repeating: 0x42, count: size)))
            #expect(response.status == 413, "size \(size)")
        }
        #expect(handled.load(ordering: .relaxed) == 1)
    }

    @Test func clientTalksMutualTLSToIndependentPythonPeer() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        let peer = try PythonTLSPeer(certificates: certs)
        defer { peer.stop() }

        let body = Array("<soap:Envelope>\u{4E2D}\u{6587}</soap:Envelope>".utf8)
        let response = try await client(certs.clientTLS())
            .send(.post("https://127.0.0.1:\(peer.port)/pui", headers: Self.soapHeaders, body: body))
        #expect(response.status == 200)
        #expect(String(decoding: response.body, as: UTF8.self)
            == "cn=410103 len=\(body.count) soapaction=\"urn:cn-esup:pui:1#SubmitPackage\"")

        do {
            _ = try await client(certs.clientTLS(client: nil)).send(.post("https://127.0.0.1:\(peer.port)/pui", body: body))
            Issue.record("python peer accepted a client without certificate")
        } catch {
            // Python closes the socket right after its alert; if the request the client already sent is
            // still unread, the kernel resets the connection and the client may see that instead.
            var lost = false
            if case .connectionLost = error { lost = true }
            #expect(error.isTLSFailure || lost, "\(error)")
        }
    }

    /// The JDK's HTTPS server refusing a client certificate under TLS 1.3 just closes the connection: curl says
    /// "Empty reply from server". The error says what that can mean instead of only "connection lost".
    @Test func newConnectionClosedWithoutAnswerHintsAtTheClientCertificate() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        let peer = try PythonTLSPeer(certificates: certs, script: PythonTLSPeer.silentScript)
        defer { peer.stop() }
        do {
            _ = try await client(certs.clientTLS()).send(.post("https://127.0.0.1:\(peer.port)/pui", headers: Self.soapHeaders, body: Array("x".utf8)))
            Issue.record("the silent peer answered")
        } catch {
            if case .connectionLost = error {} else { Issue.record("got \(error)") }
            #expect(error.description.contains("refuses our client certificate"), "\(error)")
        }
    }

    /// The JDK's HTTPS server refusing a client certificate under TLS 1.2 closes the socket mid-handshake; this is
    /// libcurl's report of it in the JDK-stack trial (OpenSSL 3.0, curl 7.88).
    @Test func handshakeClosedWithoutAlertHintsAtTheClientCertificate() {
        let error = HTTPClientError.classify(code: 35, detail: "OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to 127.0.0.1:44713",
                                             url: "https://127.0.0.1:44713/pui", osErrno: 0, responseTooLarge: false, cancelled: false,
                                             codeText: "SSL connect error")
        if case .tlsHandshakeFailed = error {} else { Issue.record("got \(error)") }
        #expect(error.description.contains("during the TLS handshake without an alert") && error.description.contains("client certificate"))
        // An alert names its own cause: no hint.
        let alert = HTTPClientError.classify(code: 35, detail: "error:0A000410:SSL routines::sslv3 alert handshake failure",
                                             url: "https://h/", osErrno: 0, responseTooLarge: false, cancelled: false, codeText: "SSL connect error")
        #expect(!alert.description.contains("without an alert"))
    }

    @Test func connectionRefusedAndTimeoutAreClassified() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        let server = try HTTPServer(configuration: .init(tls: try certs.serverTLS())) { request in
            Thread.sleep(forTimeInterval: 1.5)
            return Self.echo(request)
        }
        let port = server.port
        do {
            _ = try await client(certs.clientTLS(), totalTimeout: .milliseconds(300))
                .send(.post("https://127.0.0.1:\(port)/pui", body: []))
            Issue.record("expected a timeout")
        } catch {
            if case .timedOut = error {} else { Issue.record("got \(error)") }
            #expect(error.curlCode == 28)
        }
        server.stop()

        do {
            _ = try await client(certs.clientTLS()).send(.get("https://127.0.0.1:\(port)/"))
            Issue.record("expected connection refused")
        } catch {
            if case .connectionRefused = error {} else { Issue.record("got \(error)") }
            #expect(error.curlCode == 7)
            #expect(!error.isTLSFailure)
        }
    }

    @Test func cancellingTheTaskAbortsTheTransfer() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        // The server holds its answer until the test has its outcome (at most 20 s): a transfer that was not
        // aborted would then succeed. Nothing depends on how soon a sleeping task wakes on a busy test pool.
        let received = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let server = try HTTPServer(configuration: .init(tls: try certs.serverTLS())) { request in
            received.signal()
            _ = release.wait(timeout: .now() + 20)
            return Self.echo(request)
        }
        defer { server.stop() }
        defer { release.signal() }
        let http = client(certs.clientTLS())
        let task = Task { try await http.send(.get("https://127.0.0.1:\(server.port)/slow")) }
        var waited = 0
        while received.wait(timeout: .now()) == .timedOut, waited < 2000 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        task.cancel()
        let result = await task.result
        switch result {
        case .success(let response): Issue.record("expected cancellation, got HTTP \(response.status)")
        case .failure(let error):
            guard let error = error as? HTTPClientError, case .cancelled = error else {
                Issue.record("expected .cancelled, got \(error)")
                return
            }
        }
    }

    @Test func plaintextAndMalformedRequestsAreRefusedBeforeSending() throws {
        let http = HTTPClient()
        #expect(throws: HTTPClientError.self) { try http.sendBlocking(.get("http://127.0.0.1:1/")) }
        #expect(throws: HTTPClientError.self) { try http.sendBlocking(.get("ftp://127.0.0.1/")) }
        #expect(throws: HTTPClientError.self) {
            try http.sendBlocking(.post("https://127.0.0.1:1/", headers: [(name: "X", value: "a\r\nInjected: 1")], body: []))
        }
    }

    @Test func plainHTTPServerAndInsecureClientForTests() async throws {
        let server = try HTTPServer(configuration: .init(), handler: Self.echo)
        defer { server.stop() }
        #expect(!server.isTLS)
        let http = HTTPClient(configuration: .init(allowPlaintextHTTP: true))
        let response = try await http.send(.post("http://127.0.0.1:\(server.port)/x", body: Array("abc".utf8)))
        #expect(response.status == 200)
        #expect(String(decoding: response.body, as: UTF8.self) == "cn=- method=POST path=/x soapaction=- len=3")
    }

    @Test func serverStartFailuresAreTyped() throws {
        #expect(throws: HTTPServerError.self) { try HTTPServer(configuration: .init(host: "localhost"), handler: Self.echo) }
        let busy = try HTTPServer(configuration: .init(), handler: Self.echo)
        defer { busy.stop() }
        do {
            _ = try HTTPServer(configuration: .init(port: busy.port), handler: Self.echo)
            Issue.record("second bind on port \(busy.port) succeeded")
        } catch {
            guard case .startFailed(let message) = error else { Issue.record("got \(error)"); return }
            #expect(message.contains("\(busy.port)"))
        }
    }
}
