import CryptoSupport
import Foundation
import HTTPClientSupport
import HTTPServerSupport
import SandboxReceiver
import TestSupport
import Testing
import Uplink
import XMLSupport

/// `esgate receive` as another district's gateway meets it before going live: it must answer exactly as the spec
/// says a receiver answers (pui-v1.md §1-4, pui-v1.xsd) and be strict where the spec is strict.
@Suite struct SandboxSpecTests {
    static let example = "/work/shared/spec/examples/soap-request.xml"
    static let exampleDigest = "d361cfd383424b38878dde7571717d44de1f6a07692c7f30917a7c671dd047be"

    static func submit(_ receiver: SandboxReceiver, _ body: [UInt8], action: String = PUIWire.submitAction,
                       commonName: String? = nil) -> HTTPServerResponse {
        receiver.handle(HTTPServerRequest(method: "POST", path: "/pui",
                                          headers: [("Content-Type", PUIWire.contentType), ("SOAPAction", action)],
                                          body: body, clientCertificateCommonName: commonName))
    }

    /// The request with its Head/Digest replaced by the SM3 of the exclusive C14N of its pui:Body.
    static func withDigest(_ request: String) throws -> String {
        let document = try XMLDocument(bytes: Array(request.utf8), preserveWhitespace: true)
        let digest = Digest.sm3(try document.exclusiveCanonicalForm(ofElement: "Body", namespace: "urn:cn-esup:pui:1")).hexString
        return request.replacingOccurrences(of: exampleDigest, with: digest)
    }

    static func client(_ environment: TestEnvironment, _ name: String = "client") -> HTTPClient {
        HTTPClient(configuration: HTTPClient.Configuration(connectTimeout: .seconds(5), totalTimeout: .seconds(60),
                                                           tls: HTTPClient.TLSConfiguration(caFile: environment.cert("ca.pem"),
                                                                                            clientCertificateFile: environment.cert("\(name).pem"),
                                                                                            clientKeyFile: environment.cert("\(name).key"))))
    }

    /// Spec §1: a request body over 8 MiB is refused E104 (a Client fault: "not resend it unchanged"). Beyond the
    /// HTTP server's own limit (16 MiB) the sandbox answered a plain-text 413, which the spec table reads as
    /// "other: resend the same package" — a gateway under test would resend it for ever.
    @Test func bodyBeyondTheHTTPServersLimitIsRefusedE104() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let server = try environment.sandbox()
        defer { server.stop() }
        let example = try String(contentsOfFile: Self.example, encoding: .utf8)
        // A comment before the envelope: 17 MiB, well-formed, the package itself unchanged.
        let padded = Array(example.replacingOccurrences(of: "<soap:Envelope", with: "<!--" + String(repeating: "x", count: 17 << 20) + "--><soap:Envelope").utf8)
        let client = Self.client(environment)
        // With libcurl's default "Expect: 100-continue" (answered before the body) and without it (answered after
        // the body was read and thrown away).
        for expect in [[], [("Expect", "")]] as [[(name: String, value: String)]] {
            let response = try await client.send(.post(url(server.port), headers: PUIWire.headers(action: PUIWire.submitAction) + expect, body: padded))
            #expect(response.status == 500, "Expect \(expect.isEmpty ? "default" : "off"): \(response.status)")
            let fault = PUIWire.parseFault(response.body)
            #expect(fault?.code == "E104" && fault?.faultCode == "Client" && fault?.retryable == false,
                    "\(String(decoding: response.body.prefix(300), as: UTF8.self))")
        }
        #expect(server.receiver.packages().isEmpty)
    }
}
