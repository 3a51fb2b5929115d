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

    /// Spec §2: the digest is the SM3 of the exc-C14N of the package's `pui:Body`. The sandbox canonicalized the
    /// first `pui:Body` of the whole document, so a `pui:Body` in a soap:Header with its own digest in Head/Digest
    /// got the real Body stored unchecked. Strict reading (as for pui:SubmitPackage and pui:Package): the request
    /// holds exactly one `pui:Body`, the package's.
    @Test func digestIsOfThePackagesBodyNotOfAnotherPuiBodyInTheEnvelope() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        let receiver = try SandboxReceiver(databasePath: environment.path("sandbox.sqlite"), options: SandboxOptions())
        let example = try String(contentsOfFile: Self.example, encoding: .utf8)
        let decoy = "<pui:Body xmlns:pui=\"urn:cn-esup:pui:1\"><pui:Nothing></pui:Nothing></pui:Body>"
        let decoyDigest = Digest.sm3(Array(decoy.utf8)).hexString   // already canonical
        let tampered = example
            .replacingOccurrences(of: "<soap:Body>", with: "<soap:Header>\(decoy)</soap:Header><soap:Body>")
            .replacingOccurrences(of: Self.exampleDigest, with: decoyDigest)
            .replacingOccurrences(of: "SB2026-000123", with: "FORGED-000123")
        let response = Self.submit(receiver, Array(tampered.utf8))
        #expect(response.status == 500, "\(String(decoding: response.body, as: UTF8.self))")
        #expect(PUIWire.parseFault(response.body)?.code == "E100")
        #expect(receiver.packages().isEmpty)
        // The same header with the true digest of the package's Body is no reason to store another Body either way:
        // the example itself is still accepted.
        #expect(Self.submit(receiver, Array(example.utf8)).status == 200)
    }

    /// Spec §1: "Bodies are UTF-8; the XML declaration, when present, says UTF-8"; SOAP 1.1 §3: "A SOAP message
    /// MUST NOT contain a Document Type Declaration". The sandbox decoded GB18030 and UTF-16 bodies, accepted a
    /// declaration naming another encoding and a DOCTYPE: a gateway passing here would be refused by the province.
    @Test func bodiesNotInUTF8OrWithADoctypeAreRefusedE100() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        let receiver = try SandboxReceiver(databasePath: environment.path("sandbox.sqlite"), options: SandboxOptions())
        let example = try String(contentsOfFile: Self.example, encoding: .utf8)
        let declaration = "<?xml version='1.0' encoding='UTF-8'?>"
        #expect(example.hasPrefix(declaration))
        func declared(_ encoding: String) -> String {
            example.replacingOccurrences(of: declaration, with: "<?xml version='1.0' encoding='\(encoding)'?>")
        }
        // The same characters in GB18030 (iconv; Foundation has no reliable GB encodings) and UTF-16LE with a BOM:
        // decoded, they are the example, digest included.
        try declared("GB18030").write(toFile: environment.path("utf8.xml"), atomically: true, encoding: .utf8)
        let converted = try runProcess("/bin/sh", ["-c", "iconv -f UTF-8 -t GB18030 '\(environment.path("utf8.xml"))' > '\(environment.path("gb.xml"))'"])
        #expect(converted.status == 0)
        let gb18030 = Array(try #require(FileManager.default.contents(atPath: environment.path("gb.xml"))))
        let utf16: [UInt8] = [0xFF, 0xFE] + declared("UTF-16").utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let wrong: [(String, [UInt8])] = [
            ("GB18030 body", gb18030),
            ("UTF-16 body", utf16),
            ("ISO-8859-1 declared", Array(declared("ISO-8859-1").utf8)),
            ("DOCTYPE", Array(example.replacingOccurrences(of: "<soap:Envelope", with: "<!DOCTYPE soap:Envelope>\n<soap:Envelope").utf8)),
        ]
        for (what, body) in wrong {
            let response = Self.submit(receiver, body)
            #expect(response.status == 500 && PUIWire.parseFault(response.body)?.code == "E100",
                    "\(what): \(response.status) \(String(decoding: response.body, as: UTF8.self))")
        }
        #expect(receiver.packages().isEmpty)
        // UTF-8 spelled in lower case, with a byte order mark, or without a declaration: accepted (one package id).
        #expect(Self.submit(receiver, [0xEF, 0xBB, 0xBF] + Array(declared("utf-8").utf8)).status == 200)
        #expect(Self.submit(receiver, Array(example.replacingOccurrences(of: declaration + "\n", with: "").utf8)).status == 200)
    }

    /// pui-v1.xsd: `pui:Error` is a Text2000 (at most 2000 characters). An E100 whose message quoted a long
    /// offending value (or a long SOAPAction) gave a fault detail that is not valid against the schema, and one
    /// quoting a control character a fault that is not well-formed.
    @Test func faultDetailsAreValidAgainstTheSchemaWhateverTheRequest() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        let receiver = try SandboxReceiver(databasePath: environment.path("sandbox.sqlite"), options: SandboxOptions())
        let validator = try makeValidator()
        let example = try String(contentsOfFile: Self.example, encoding: .utf8)
        let responses = [
            Self.submit(receiver, Array(try Self.withDigest(example.replacingOccurrences(of: "XK0005", with: String(repeating: "界", count: 5000))).utf8)),
            Self.submit(receiver, Array(example.utf8), action: "\"" + String(repeating: "a", count: 3000) + "\""),
            // A control character in a header (libmicrohttpd passes it on): the fault was not even well-formed.
            Self.submit(receiver, Array(example.utf8), action: "\"a\u{1}b\""),
        ]
        for response in responses {
            #expect(response.status == 500)
            let document = try XMLDocument(bytes: response.body)
            #expect(validator.validate(document, element: "Error", namespace: "urn:cn-esup:pui:1").isEmpty,
                    "\(String(decoding: response.body.prefix(300), as: UTF8.self))")
        }
    }

    /// xs:dateTime collapses whitespace: `<AppliedAt> 2099-…+08:00 </AppliedAt>` is schema-valid and is the time
    /// 2099-…. The sandbox read the raw text: a future time escaped R205, and a key time with whitespace made a
    /// new key, so a lower revision of a key it already held was accepted instead of counted a duplicate (§2).
    @Test func timesWithCollapsibleWhitespaceAreReadAsTheSchemaReadsThem() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        let receiver = try SandboxReceiver(databasePath: environment.path("sandbox.sqlite"), options: SandboxOptions())
        let example = try String(contentsOfFile: Self.example, encoding: .utf8)
        let future = example.replacingOccurrences(of: "<pui:AppliedAt>2026-01-05T08:51:00+08:00</pui:AppliedAt>",
                                                  with: "<pui:AppliedAt>\n  2099-01-05T08:51:00+08:00 </pui:AppliedAt>")
        let first = try PUIWire.parseReceipt(Self.submit(receiver, Array(try Self.withDigest(future).utf8)).body)
        #expect(first.rejected.map(\.code) == ["R205"] && first.rejected.first?.index == 1
                && first.rejected.first?.field == "AppliedAt", "\(first)")
        // The example again (its Application now in the past: accepted), with whitespace around the Step's HandledAt
        // (key CaseNo, StepCode, HandledAt): the sandbox holds rev 1 of that key already, so it is a duplicate.
        let again = example.replacingOccurrences(of: "410103-1<", with: "410103-2<")
            .replacingOccurrences(of: "<pui:HandledAt>2026-01-05T11:16:00+08:00</pui:HandledAt>",
                                  with: "<pui:HandledAt> 2026-01-05T11:16:00+08:00\n</pui:HandledAt>")
        let second = try PUIWire.parseReceipt(Self.submit(receiver, Array(try Self.withDigest(again).utf8)).body)
        #expect(second.accepted == 1 && second.duplicates == 3 && second.rejected.isEmpty, "\(second)")
        #expect(receiver.records().filter { $0.type == "Step" }.count == 1)
    }

    /// GetReferenceData is a PUI operation like SubmitPackage (spec §1, WSDL): SOAP 1.1 with the spec's
    /// Content-Type, a schema-valid pui:GetReferenceData, and the Division the client certificate names (E102,
    /// strict reading of "sender not authorised for this certificate"). The sandbox served the reference data
    /// to anything: an empty body, a bare element, another district, "abc".
    @Test func getReferenceDataRequestsAreCheckedLikeSubmitPackage() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        var options = SandboxOptions()
        options.referenceDataFile = "/work/shared/spec/reference/reference-data.xml"
        let server = try environment.sandbox(options)
        defer { server.stop() }
        let client = Self.client(environment)
        func ask(_ body: [UInt8], contentType: String = PUIWire.contentType) async throws -> HTTPResponse {
            try await client.send(.post(url(server.port), headers: [("Content-Type", contentType), ("SOAPAction", PUIWire.referenceDataAction)], body: body))
        }
        let good = PUIWire.referenceDataRequest(division: "410103", knownVersion: nil)
        let wrong: [(String, [UInt8], String, String)] = [
            ("empty body", [], PUIWire.contentType, "E100"),
            ("not well-formed", Array("<soap:Envelope".utf8), PUIWire.contentType, "E100"),
            ("bare element", Array("<pui:GetReferenceData xmlns:pui=\"urn:cn-esup:pui:1\"><pui:Division>410103</pui:Division></pui:GetReferenceData>".utf8), PUIWire.contentType, "E100"),
            ("Division not a division code", PUIWire.referenceDataRequest(division: "abc", knownVersion: nil), PUIWire.contentType, "E100"),
            ("SOAP 1.2 Content-Type", good, "application/soap+xml; charset=utf-8", "E100"),
            ("another district than the certificate", PUIWire.referenceDataRequest(division: "410104", knownVersion: nil), PUIWire.contentType, "E102"),
        ]
        for (what, body, contentType, code) in wrong {
            let response = try await ask(body, contentType: contentType)
            let fault = PUIWire.parseFault(response.body)
            #expect(response.status == 500 && fault?.code == code && fault?.faultCode == "Client" && fault?.retryable == false,
                    "\(what): \(response.status) \(String(decoding: response.body.prefix(300), as: UTF8.self))")
        }
        let served = try await ask(good)
        #expect(served.status == 200 && String(decoding: served.body, as: UTF8.self).contains("<pui:ReferenceData"))
        let current = try await ask(PUIWire.referenceDataRequest(division: "410103", knownVersion: "2026.12-1"))
        #expect(current.status == 200 && !String(decoding: current.body, as: UTF8.self).contains("ReferenceData "))
    }

    /// Spec §1: the client certificate must carry CN=<Sender>; a package whose Sender differs from it is refused
    /// E102. A certificate from the trusted CA without any CN got a plain-text 403 from the HTTP server, which the
    /// spec table reads as "other: resend" — the gateway would resend for ever instead of learning E102.
    @Test func verifiedClientCertificateWithoutACommonNameIsRefusedE102() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let key = environment.path("nocn.key"), csr = environment.path("nocn.csr"), cert = environment.path("nocn.pem")
        let ext = environment.path("nocn.ext")
        try "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
            .write(toFile: ext, atomically: true, encoding: .utf8)
        let made = try runProcess("/bin/sh", ["-c", """
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out '\(key)' 2>&1 && \
            openssl req -new -key '\(key)' -subj '/O=410103' -out '\(csr)' 2>&1 && \
            openssl x509 -req -in '\(csr)' -CA '\(environment.cert("ca.pem"))' -CAkey '\(environment.cert("ca.key"))' \
                -set_serial 0x5151 -days 30 -extfile '\(ext)' -out '\(cert)' 2>&1
            """])
        #expect(made.status == 0, "\(made.output)")
        let server = try environment.sandbox()
        defer { server.stop() }
        let client = HTTPClient(configuration: HTTPClient.Configuration(
            connectTimeout: .seconds(5), totalTimeout: .seconds(30),
            tls: HTTPClient.TLSConfiguration(caFile: environment.cert("ca.pem"), clientCertificateFile: cert, clientKeyFile: key)))
        let example = Array(try String(contentsOfFile: Self.example, encoding: .utf8).utf8)
        let response = try await client.send(.post(url(server.port), headers: PUIWire.headers(action: PUIWire.submitAction), body: example))
        let fault = PUIWire.parseFault(response.body)
        #expect(response.status == 500 && fault?.code == "E102" && fault?.faultCode == "Client" && fault?.retryable == false,
                "\(response.status) \(String(decoding: response.body.prefix(300), as: UTF8.self))")
        #expect(server.receiver.packages().isEmpty)
    }

    /// The sandbox is meant to be told to misbehave for tests, rejecting records by code included (as the Python
    /// peer's --reject-every/--reject-code), so that a gateway's handling of rejections can be tried without
    /// crafting bad data. It had no such option. A rejection picks records by type, key and rev: the same record
    /// is rejected again when resent unchanged (spec §3), in any package.
    @Test func recordsCanBeRejectedWithAGivenCodeOnRequest() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        var options = SandboxOptions()
        options.rejectEvery = 1
        options.rejectCode = "R299"
        let receiver = try SandboxReceiver(databasePath: environment.path("all.sqlite"), options: options)
        let example = try String(contentsOfFile: Self.example, encoding: .utf8)
        let all = try PUIWire.parseReceipt(Self.submit(receiver, Array(example.utf8)).body)
        #expect(all.accepted == 0 && all.duplicates == 0 && all.rejected.map(\.index) == [1, 2, 3, 4]
                && all.rejected.allSatisfy { $0.code == "R299" && !$0.message.isEmpty }, "\(all)")
        #expect(receiver.records().isEmpty)
        // About every 2nd record (by type, key, rev) of 40 Applications: the same ones in another package with the
        // same records.
        options.rejectEvery = 2
        let some = try SandboxReceiver(databasePath: environment.path("some.sqlite"), options: options)
        let application = try #require(example.range(of: "<pui:Application rev=\"1\">").flatMap { start in
            example.range(of: "</pui:Application>").map { String(example[start.lowerBound..<$0.upperBound]) } })
        let records = (1...40).map { application.replacingOccurrences(of: "410103005202601050000002", with: "A\($0)") }
        let bodyStart = try #require(example.range(of: "<pui:Body>")), bodyEnd = try #require(example.range(of: "</pui:Body>"))
        let forty = try Self.withDigest(example.replacingCharacters(in: bodyStart.upperBound..<bodyEnd.lowerBound, with: records.joined(separator: "\n"))
            .replacingOccurrences(of: "<pui:RecordCount>4<", with: "<pui:RecordCount>40<"))
        let first = try PUIWire.parseReceipt(Self.submit(some, Array(forty.utf8)).body)
        let again = try PUIWire.parseReceipt(Self.submit(some, Array(forty.replacingOccurrences(of: "410103-1<", with: "410103-2<").utf8)).body)
        #expect(first.accepted + first.rejected.count == 40 && !first.rejected.isEmpty && first.accepted > 0, "\(first)")
        #expect(again.rejected.map(\.index) == first.rejected.map(\.index) && again.duplicates == first.accepted, "\(again)")
        #expect(some.records().count == first.accepted)
    }

    /// Options that cannot do what they say are refused at start: a --receiver-code that is no division code
    /// (every package then got E105), a --fail-rate outside 0...1, a --fail-status outside 100...599 (answered as a
    /// plain 500 "invalid response" by the HTTP server instead).
    @Test func optionsThatCannotWorkAreRefusedAtStart() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        var cases: [(String, SandboxOptions)] = []
        var options = SandboxOptions()
        options.receiverCode = "41000"
        cases.append(("receiver code of 5 digits", options))
        options = SandboxOptions()
        options.failRate = 1.5
        cases.append(("fail rate 1.5", options))
        options = SandboxOptions()
        options.failStatus = 99
        cases.append(("fail status 99", options))
        for (what, options) in cases {
            #expect(throws: SandboxError.self, "\(what)") {
                _ = try SandboxReceiver(databasePath: environment.path("sandbox.sqlite"), options: options)
            }
        }
    }

    /// A ReferenceData file is any document the schema accepts: with a default namespace instead of the `pui:`
    /// prefix it loaded (the catalog checks used it), but GetReferenceData answered a retryable E500 "no reference
    /// data configured", so a gateway under test retried for ever. The element is now served in its canonical form.
    @Test func referenceDataFileWithoutThePuiPrefixIsServed() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        let sample = try String(contentsOfFile: "/work/shared/spec/reference/reference-data.xml", encoding: .utf8)
        let unprefixed = sample.replacingOccurrences(of: "<pui:", with: "<").replacingOccurrences(of: "</pui:", with: "</")
            .replacingOccurrences(of: "xmlns:pui=", with: "xmlns=")
        try unprefixed.write(toFile: environment.path("reference.xml"), atomically: true, encoding: .utf8)
        var options = SandboxOptions()
        options.referenceDataFile = environment.path("reference.xml")
        let receiver = try SandboxReceiver(databasePath: environment.path("sandbox.sqlite"), options: options)
        let response = Self.submit(receiver, PUIWire.referenceDataRequest(division: "410103", knownVersion: nil),
                                   action: PUIWire.referenceDataAction)
        #expect(response.status == 200, "\(String(decoding: response.body.prefix(400), as: UTF8.self))")
        let document = try XMLDocument(bytes: response.body)
        #expect(try makeValidator().validate(document, element: "GetReferenceDataResponse", namespace: "urn:cn-esup:pui:1").isEmpty)
        let served = try #require(document.root.flatMap { PUIWireFind.element($0, "ReferenceData") })
        #expect(served.attribute("version") == "2026.12-1" && served.children("Item").count == 16)
    }
}

/// Depth-first search for an element in the pui namespace (test helper).
enum PUIWireFind {
    static func element(_ element: XMLElement, _ name: String) -> XMLElement? {
        if element.name == name && element.namespace == "urn:cn-esup:pui:1" { return element }
        for child in element.children {
            if let found = Self.element(child, name) { return found }
        }
        return nil
    }
}
