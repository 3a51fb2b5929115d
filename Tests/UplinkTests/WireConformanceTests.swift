import CryptoSupport
import Foundation
import HTTPClientSupport
import HTTPServerSupport
import SandboxReceiver
import Testing
import Uplink
import XMLSupport

/// Valid answers of a receiver other than esgate's own sandbox (spec pui-v1.md §1, §3; SOAP 1.1; XSD 1.0
/// whitespace rules), and requests the sandbox must refuse.
@Suite struct WireConformanceTests {
    /// A Client fault as a pretty-printing SOAP stack writes it: faultcode is an xs:QName, whose whitespace
    /// collapses, so `\n  soap:Client\n` is `soap:Client`.
    @Test func prettyPrintedClientFaultRefusesThePackage() {
        let body = Array("""
            <?xml version="1.0" encoding="UTF-8"?>
            <SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
              <SOAP-ENV:Body>
                <SOAP-ENV:Fault>
                  <faultcode>
                    SOAP-ENV:Client
                  </faultcode>
                  <faultstring>digest mismatch</faultstring>
                  <detail>
                    <pui:Error xmlns:pui="urn:cn-esup:pui:1" code="E101" retryable="false">SM3 differs</pui:Error>
                  </detail>
                </SOAP-ENV:Fault>
              </SOAP-ENV:Body>
            </SOAP-ENV:Envelope>
            """.utf8)
        let outcome = PUIWire.classify(status: 500, body: body, retryAfter: nil, packageId: "410103-1", recordCount: 1)
        guard case .refused(let fault) = outcome else {
            Issue.record("a Client fault E101 with retryable=\"false\" must refuse the package, got \(outcome)")
            return
        }
        #expect(fault.code == "E101" && fault.faultCode == "Client")
    }

    /// SOAP 1.1 §4.4.1: fault codes extend with dots, "what is to the left of the dot is a more generic fault
    /// code" (e.g. Client.Authentication). A receiver answering `soap:Client.Schema` with a non-retryable
    /// pui:Error E100 refused the package; resending it unchanged for ever is what the spec forbids.
    @Test func dottedClientFaultCodeRefusesThePackage() {
        let body = Array("""
            <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>
            <faultcode>soap:Client.Schema</faultcode><faultstring>invalid</faultstring>
            <detail><pui:Error xmlns:pui="urn:cn-esup:pui:1" code="E100" retryable="false">not valid</pui:Error></detail>
            </soap:Fault></soap:Body></soap:Envelope>
            """.utf8)
        let outcome = PUIWire.classify(status: 500, body: body, retryAfter: nil, packageId: "410103-1", recordCount: 1)
        guard case .refused(let fault) = outcome else {
            Issue.record("a Client.* fault E100 with retryable=\"false\" must refuse the package, got \(outcome)")
            return
        }
        #expect(fault.code == "E100")
        // A dotted Server fault stays retryable.
        let server = Array(String(decoding: body, as: UTF8.self).replacingOccurrences(of: "Client.Schema", with: "Server.Busy")
            .replacingOccurrences(of: "retryable=\"false\"", with: "retryable=\"true\"").utf8)
        if case .refused = PUIWire.classify(status: 500, body: server, retryAfter: nil, packageId: "410103-1", recordCount: 1) {
            Issue.record("a Server.* fault must be retried")
        }
    }

    /// Receipt counts are xs:nonNegativeInteger / xs:positiveInteger: surrounding whitespace collapses and a
    /// leading '+' is allowed, so this receipt is schema-valid and must be applied, not resent for ever.
    @Test func receiptWithCollapsibleWhitespaceInItsCountsIsApplied() {
        let body = Array("""
            <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
            <p:SubmitPackageResponse xmlns:p="urn:cn-esup:pui:1">
              <p:Receipt packageId="410103-7" receivedAt="2026-01-06T12:30:02+08:00" accepted=" 2 " duplicates="+0">
                <p:Rejected index=" 3" code="R204" field="Applicant/IdNumber">check character does not match</p:Rejected>
              </p:Receipt>
            </p:SubmitPackageResponse></soap:Body></soap:Envelope>
            """.utf8)
        let outcome = PUIWire.classify(status: 200, body: body, retryAfter: nil, packageId: "410103-7", recordCount: 3)
        guard case .receipt(let receipt) = outcome else {
            Issue.record("a schema-valid receipt must be applied, got \(outcome)")
            return
        }
        #expect(receipt.accepted == 2 && receipt.duplicates == 0)
        #expect(receipt.rejected.map(\.index) == [3])
    }
}

@Suite struct RetryAfterTests {
    /// A receiver's Retry-After is untrusted input: an absurd value must not crash the gateway (it did: the
    /// delay in milliseconds overflowed Int64 and trapped), and is still honoured as "a long wait".
    @Test func hugeRetryAfterDoesNotCrashTheBackoff() throws {
        let response = HTTPResponse(status: 503, headers: [("Retry-After", "99999999999999999")])
        let retryAfter = try #require(response.retryAfter)
        let delay = Backoff(base: .seconds(1), cap: .seconds(300)).delay(failures: 1, retryAfter: retryAfter)
        #expect(delay >= .seconds(86400 * 365))
    }

    /// docs/uplink.md: "a wait longer than a year is read as a year". delay-seconds past Int64 are such a wait too
    /// (RFC 9111 §1.2.2 reads an unrepresentable delta-seconds as the greatest value), not an unreadable one
    /// that would leave only the short first backoff.
    @Test func delaySecondsBeyondInt64AreALongWait() throws {
        let response = HTTPResponse(status: 503, headers: [("Retry-After", "99999999999999999999999")])
        let retryAfter = try #require(response.retryAfter)
        let delay = Backoff(base: .seconds(1), cap: .seconds(300)).delay(failures: 1, retryAfter: retryAfter)
        #expect(delay >= .seconds(86400 * 365))
    }
}

extension RetryAfterTests {
    /// RFC 9110 §10.2.3: Retry-After = HTTP-date / delay-seconds, and a recipient must accept every HTTP-date
    /// form (§5.6.7). A receiver behind a stock HTTP front end answering 503 with a date must be waited for
    /// ("wait at least Retry-After", spec §1), not retried on the gateway's short first backoff.
    @Test func retryAfterAsHTTPDateIsHonoured() throws {
        let now = try #require(parseTimestamp("2026-12-05T08:00:00+08:00"))   // 00:00:00 GMT
        for value in ["Sat, 05 Dec 2026 00:10:00 GMT", "Saturday, 05-Dec-26 00:10:00 GMT", "Sat Dec  5 00:10:00 2026"] {
            let response = HTTPResponse(status: 503, headers: [("retry-after", value)])
            #expect(response.retryAfter(now: now) == .seconds(600), "\(value)")
        }
        #expect(HTTPResponse(status: 503, headers: [("Retry-After", "Fri, 04 Dec 2026 23:00:00 GMT")]).retryAfter(now: now) == .zero)
        #expect(HTTPResponse(status: 503, headers: [("Retry-After", "7")]).retryAfter(now: now) == .seconds(7))
        #expect(HTTPResponse(status: 503, headers: [("Retry-After", "soon")]).retryAfter(now: now) == nil)
    }

    /// A Java receiver (the province's likely stack) formats the header with java.time's
    /// `DateTimeFormatter.RFC_1123_DATE_TIME`, which writes a one-digit day on the 1st to the 9th of a month: the
    /// JDK-stack trial saw "Sat, 5 Dec 2026 07:22:41 GMT" ignored and the package resent after 0.7 s.
    @Test func retryAfterFromJavaTimeRFC1123FormatterIsHonoured() throws {
        let now = try #require(parseTimestamp("2026-12-05T15:22:29+08:00"))
        #expect(HTTPResponse(status: 503, headers: [("Retry-After", "Sat, 5 Dec 2026 07:22:41 GMT")]).retryAfter(now: now) == .seconds(12))
        #expect(HTTPResponse(status: 429, headers: [("Retry-After", "Tue, 1 Dec 2026 00:00:00 GMT")]).retryAfter(now: now) == .zero)
    }

    /// The three forms at RFC 9110's own example instant, two-digit years on both sides of the 50-year rule, and
    /// dates or forms that are not HTTP-dates (no wait is read from them: the gateway's own backoff applies).
    @Test func httpDateFormsAreReadExactlyAndImpossibleDatesAreNot() throws {
        let epoch = Date(timeIntervalSince1970: 0)
        func wait(_ value: String, now: Date = epoch) -> Duration? {
            HTTPResponse(status: 503, headers: [("Retry-After", value)]).retryAfter(now: now)
        }
        for value in ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun Nov 6 08:49:37 1994",
                      "Sun, 6 Nov 1994 08:49:37 GMT"] {
            #expect(wait(value) == .seconds(784_111_777), "\(value)")
        }
        #expect(wait("Thu, 29 Feb 2024 00:00:00 GMT") == .seconds(1_709_164_800))
        #expect(wait("Fri, 31 Dec 1999 23:59:59 GMT") == .seconds(946_684_799))
        let in2026 = try #require(parseTimestamp("2026-12-05T08:00:00+08:00"))
        // From 2026, "30" is 2030 (not more than 50 years ahead) and "77" is 1977 (2077 would be).
        #expect(wait("Tuesday, 01-Jan-30 00:00:00 GMT", now: in2026) == .seconds(1_893_456_000 - 1_796_428_800))
        #expect(wait("Saturday, 01-Jan-77 00:00:00 GMT", now: in2026) == .zero)
        #expect(wait("Saturday, 01-Jan-77 00:00:00 GMT", now: epoch) == .seconds(220_924_800))
        for value in ["Wed, 29 Feb 2023 00:00:00 GMT", "Mon, 31 Nov 2026 00:00:00 GMT", "Sun, 06 Nov 1994 08:49:37 UTC",
                      "Sun, 006 Nov 1994 08:49:37 GMT", "Sun, 06 nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
                      "Sun, 06 Nov 94 08:49:37 GMT", "Sunday, 06-Nov-1994 08:49:37 GMT", "Sun Nov 06 08:49 1994", "GMT", "1.5"] {
            #expect(wait(value) == nil, "\(value)")
        }
    }

    /// RFC 9110 §5.6.7: an rfc850-date's two-digit year is the most recent year whose timestamp does not appear to
    /// be more than 50 years in the future. That is decided by the whole timestamp, not the calendar year alone,
    /// and it can lie in the next century as well as in this one.
    @Test func twoDigitYearsAreTheLatestNotMoreThanFiftyYearsAhead() throws {
        func wait(_ value: String, now: String) throws -> Duration? {
            HTTPResponse(status: 503, headers: [("Retry-After", value)]).retryAfter(now: try #require(parseTimestamp(now)))
        }
        // 2076-12-31 is 50 years and 26 days after 2026-12-05: more than 50 years ahead, so 1976 (no wait).
        #expect(try wait("Thursday, 31-Dec-76 00:00:00 GMT", now: "2026-12-05T00:00:00+00:00") == .zero)
        // Exactly 50 years ahead is not more than 50: 2076.
        #expect(try wait("Saturday, 05-Dec-76 00:00:00 GMT", now: "2026-12-05T00:00:00+00:00") == .seconds(1_577_923_200))
        // Two minutes before 2100: "00" is the next day (2100), not a century ago.
        #expect(try wait("Friday, 01-Jan-00 00:01:00 GMT", now: "2099-12-31T23:59:00+00:00") == .seconds(120))
        // From 2080, "20" is 2120 (40 years ahead), not 2020 (60 years ago).
        #expect(try wait("Monday, 01-Jan-20 00:00:00 GMT", now: "2080-01-01T00:00:00+00:00") == .seconds(1_262_217_600))
    }
}

extension WireConformanceTests {
    /// A receipt whose counts add up but which rejects the same index twice (3 records: 1 accepted, index 2
    /// rejected twice) says nothing about one record: it is neither accepted nor rejected, and the same record
    /// became two dead letters. Like counts that do not add up, it is "unknown whether stored": resend (the
    /// receiver answers the original receipt, or a corrected one), never resolve the package on it.
    @Test func receiptRejectingTheSameIndexTwiceIsNotApplied() {
        let body = Array("""
            <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
            <pui:SubmitPackageResponse xmlns:pui="urn:cn-esup:pui:1">
            <pui:Receipt packageId="410103-7" receivedAt="2026-01-06T12:30:02+08:00" accepted="1" duplicates="0">
            <pui:Rejected index="2" code="R202" field="DeptCode">not registered</pui:Rejected>
            <pui:Rejected index="2" code="R201" field="ItemCode">not in the catalog</pui:Rejected>
            </pui:Receipt></pui:SubmitPackageResponse></soap:Body></soap:Envelope>
            """.utf8)
        let outcome = PUIWire.classify(status: 200, body: body, retryAfter: nil, packageId: "410103-7", recordCount: 3)
        guard case .retry(let reason, _) = outcome else {
            Issue.record("a receipt rejecting index 2 twice was applied: \(outcome)")
            return
        }
        #expect(reason.contains("index 2"), "\(reason)")
    }
}

@Suite struct SandboxStrictnessTests {
    static func submit(_ receiver: SandboxReceiver, _ body: [UInt8]) -> HTTPServerResponse {
        receiver.handle(HTTPServerRequest(method: "POST", path: "/pui",
                                          headers: [("Content-Type", PUIWire.contentType), ("SOAPAction", PUIWire.submitAction)],
                                          body: body, clientCertificateCommonName: nil))
    }

    /// Spec §1: SOAP 1.1, document/literal wrapped (WSDL: the request is a soap:Envelope whose soap:Body holds
    /// pui:SubmitPackage). A sandbox that accepts a bare pui:Package, a Package outside SubmitPackage or a SOAP
    /// 1.2 envelope lets a gateway pass that the province will refuse.
    @Test func requestsOutsideTheSOAP11SubmitPackageWrapperAreRefusedE100() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        let receiver = try SandboxReceiver(databasePath: environment.path("sandbox.sqlite"), options: SandboxOptions())
        let example = try String(contentsOfFile: "/work/shared/spec/examples/soap-request.xml", encoding: .utf8)
        let packageStart = try #require(example.range(of: "<pui:Package "))
        let packageEnd = try #require(example.range(of: "</pui:Package>"))
        let package = String(example[packageStart.lowerBound..<packageEnd.upperBound])
            .replacingOccurrences(of: "<pui:Package ", with: "<pui:Package xmlns:pui=\"urn:cn-esup:pui:1\" ")
        let soap11 = "http://schemas.xmlsoap.org/soap/envelope/"
        let soap12 = "http://www.w3.org/2003/05/soap-envelope"
        let wrong = [
            "bare Package": package,
            "Package without SubmitPackage": "<s:Envelope xmlns:s=\"\(soap11)\"><s:Body>\(package)</s:Body></s:Envelope>",
            "SOAP 1.2 envelope": example.replacingOccurrences(of: soap11, with: soap12),
            "SubmitPackage outside the SOAP Body": "<s:Envelope xmlns:s=\"\(soap11)\"><s:Header><pui:SubmitPackage xmlns:pui=\"urn:cn-esup:pui:1\">\(package)</pui:SubmitPackage></s:Header><s:Body/></s:Envelope>",
        ]
        for (what, body) in wrong.sorted(by: { $0.key < $1.key }) {
            let response = Self.submit(receiver, Array(body.utf8))
            #expect(response.status == 500, "\(what): answered \(response.status)")
            #expect(PUIWire.parseFault(response.body)?.code == "E100", "\(what)")
        }
        #expect(receiver.packages().isEmpty)
        // The spec's own example request is accepted.
        #expect(Self.submit(receiver, Array(example.utf8)).status == 200)
    }

    /// RecordCount (xs:positiveInteger) and the records' rev (xs:positiveInteger) collapse their whitespace:
    /// `<pui:RecordCount> 4 </pui:RecordCount>` and `rev=" 3"` are schema-valid. The sandbox must read them as
    /// 4 and 3 (it answered E100 "RecordCount -1", and counted a rev it could not read as a duplicate).
    @Test func integersWithCollapsibleWhitespaceAreReadAsTheSchemaReadsThem() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        let receiver = try SandboxReceiver(databasePath: environment.path("sandbox.sqlite"), options: SandboxOptions())
        var example = try String(contentsOfFile: "/work/shared/spec/examples/soap-request.xml", encoding: .utf8)
        example = example.replacingOccurrences(of: "<pui:RecordCount>4</pui:RecordCount>", with: "<pui:RecordCount> 4 </pui:RecordCount>")
            .replacingOccurrences(of: "<pui:Completion rev=\"2\">", with: "<pui:Completion rev=\" 3\">")
        // The Body changed: put its new digest in place.
        let document = try XMLDocument(bytes: Array(example.utf8), preserveWhitespace: true)
        let digest = Digest.sm3(try document.exclusiveCanonicalForm(ofElement: "Body", namespace: "urn:cn-esup:pui:1")).hexString
        example = example.replacingOccurrences(of: "d361cfd383424b38878dde7571717d44de1f6a07692c7f30917a7c671dd047be", with: digest)
        let response = Self.submit(receiver, Array(example.utf8))
        #expect(response.status == 200, "\(String(decoding: response.body, as: UTF8.self))")
        #expect(receiver.records().first { $0.type == "Completion" }?.rev == 3)
    }

    /// Spec §1: `Content-Type: text/xml; charset=utf-8` (SOAP 1.1's media type). A request in another media type
    /// (SOAP 1.2's application/soap+xml, none at all) or another charset must be refused; the same media type
    /// spelled differently (case, spaces, quoted charset) is the same and accepted.
    @Test func contentTypeOtherThanTextXMLUTF8IsRefused() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        let receiver = try SandboxReceiver(databasePath: environment.path("sandbox.sqlite"), options: SandboxOptions())
        let example = Array(try String(contentsOfFile: "/work/shared/spec/examples/soap-request.xml", encoding: .utf8).utf8)
        func post(_ contentType: String?) -> HTTPServerResponse {
            var headers = [("SOAPAction", PUIWire.submitAction)]
            if let contentType { headers.append(("Content-Type", contentType)) }
            return receiver.handle(HTTPServerRequest(method: "POST", path: "/pui", headers: headers, body: example,
                                                     clientCertificateCommonName: nil))
        }
        for wrong in ["application/soap+xml; charset=utf-8", "text/plain", "text/xml; charset=iso-8859-1", nil] {
            let response = post(wrong)
            #expect(response.status == 500 && PUIWire.parseFault(response.body)?.code == "E100", "\(wrong ?? "(none)"): \(response.status)")
        }
        #expect(receiver.packages().isEmpty)
        #expect(post("Text/XML;Charset=\"UTF-8\"").status == 200)
    }
}

/// Answers seen from a receiver on the JDK stack (JAX-WS / Tomcat shapes) that are not in the spec table's shape:
/// the package is resent, and the retry reason, which is all an operator sees, must say what came back.
extension WireConformanceTests {
    static func retryReason(_ outcome: SubmitOutcome) -> String? {
        if case .retry(let reason, _) = outcome { return reason }
        return nil
    }

    @Test func unexpectedAnswersAreDescribedInTheRetryReason() throws {
        let soap12 = Array("""
            <?xml version='1.0' encoding='UTF-8'?><S:Envelope xmlns:S="http://www.w3.org/2003/05/soap-envelope"><S:Body><S:Fault>
            <S:Code><S:Value>S:Sender</S:Value></S:Code><S:Reason><S:Text xml:lang="en">digest mismatch</S:Text></S:Reason>
            <S:Detail><ns2:Error xmlns:ns2="urn:cn-esup:pui:1" code="E101" retryable="false">SM3 differs</ns2:Error></S:Detail>
            </S:Fault></S:Body></S:Envelope>
            """.utf8)
        let reason12 = try #require(Self.retryReason(PUIWire.classify(status: 500, body: soap12, retryAfter: nil, packageId: "p", recordCount: 1)))
        #expect(reason12.contains("SOAP 1.2") && reason12.contains("E101") && reason12.contains("digest mismatch"), "\(reason12)")

        let html = Array("""
            <!doctype html><html><head><title>HTTP Status 500 – Internal Server Error</title></head><body>
            <h1>HTTP Status 500</h1><p><b>Message</b> java.lang.OutOfMemoryError: Java heap space</p></body></html>
            """.utf8)
        let reasonHTML = try #require(Self.retryReason(PUIWire.classify(status: 500, body: html, retryAfter: nil, packageId: "p", recordCount: 1)))
        #expect(reasonHTML.contains("java.lang.OutOfMemoryError: Java heap space") && !reasonHTML.contains("<p>"), "\(reasonHTML)")

        let empty = try #require(Self.retryReason(PUIWire.classify(status: 500, body: [], retryAfter: nil, packageId: "p", recordCount: 1)))
        #expect(empty.contains("empty body"), "\(empty)")

        // A 200 that is not a receipt (a WSDL page from a wrong URL, say) names what it is.
        let wsdl = Array("<wsdl:definitions xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\">PUI</wsdl:definitions>".utf8)
        let reason200 = try #require(Self.retryReason(PUIWire.classify(status: 200, body: wsdl, retryAfter: nil, packageId: "p", recordCount: 1)))
        #expect(reason200.contains("definitions") && reason200.contains("http://schemas.xmlsoap.org/wsdl/"), "\(reason200)")

        // Any other status too: a 400 carrying a SOAP 1.1 Client fault (not the spec's 500) is resent, with its words.
        let client400 = Array(String(decoding: PUIWire.fault(code: "E100", retryable: false, message: "not valid against the schema"), as: UTF8.self).utf8)
        let reason400 = try #require(Self.retryReason(PUIWire.classify(status: 400, body: client400, retryAfter: nil, packageId: "p", recordCount: 1)))
        #expect(reason400.hasPrefix("HTTP 400") && reason400.contains("not valid against the schema"), "\(reason400)")

        // A receipt in another namespace (a typo in the receiver's JAXB package-info): the Body's element is named.
        let typo = Array("""
            <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><p:SubmitPackageResponse xmlns:p="urn:cn-esup:pui:1.0">
            <p:Receipt packageId="p" receivedAt="2026-01-06T12:30:02+08:00" accepted="1" duplicates="0"/></p:SubmitPackageResponse></soap:Body></soap:Envelope>
            """.utf8)
        let reasonTypo = try #require(Self.retryReason(PUIWire.classify(status: 200, body: typo, retryAfter: nil, packageId: "p", recordCount: 1)))
        #expect(reasonTypo.contains("whose Body holds XML element SubmitPackageResponse (urn:cn-esup:pui:1.0)"), "\(reasonTypo)")

        // Long pages are cut: the reason stays one readable line.
        let long = Array(("<html><body>" + String(repeating: "x ", count: 5000) + "</body></html>").utf8)
        let reasonLong = try #require(Self.retryReason(PUIWire.classify(status: 500, body: long, retryAfter: nil, packageId: "p", recordCount: 1)))
        #expect(reasonLong.count < 500, "\(reasonLong.count)")
    }
}

extension WireConformanceTests {
    /// E503 is "overloaded (retryable)" (spec §1): a receiver answering it as a 500 Server fault with a
    /// Retry-After asks for the same wait as a 503 does; it was dropped and the package resent on the first backoff.
    @Test func serverFaultAndOtherFiveHundredsKeepTheirRetryAfter() {
        let fault = PUIWire.fault(code: "E503", retryable: true, message: "overloaded")
        guard case .retry(_, let wait) = PUIWire.classify(status: 500, body: fault, retryAfter: .seconds(30), packageId: "p", recordCount: 1) else {
            Issue.record("a Server fault is retried")
            return
        }
        #expect(wait == .seconds(30))
        guard case .retry(_, let plain) = PUIWire.classify(status: 500, body: Array("busy".utf8), retryAfter: .seconds(9), packageId: "p", recordCount: 1) else {
            Issue.record("a 500 without a fault is retried")
            return
        }
        #expect(plain == .seconds(9))
    }
}

extension WireConformanceTests {
    /// A JAXB-marshalled pui:Error whose `retryable` Boolean was left null has no attribute. The spec refuses a
    /// package only on a detail that says retryable="false"; the JDK-stack trial saw a Client fault E500 without
    /// the attribute turn all 251 records of the package into dead letters.
    @Test func clientFaultWithoutRetryableIsResentNotRefused() {
        let body = Array("""
            <S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><S:Fault>
            <faultcode>S:Client</faultcode><faultstring>internal error</faultstring>
            <detail><ns2:Error xmlns:ns2="urn:cn-esup:pui:1" code="E500">internal error</ns2:Error></detail>
            </S:Fault></S:Body></S:Envelope>
            """.utf8)
        if case .refused = PUIWire.classify(status: 500, body: body, retryAfter: nil, packageId: "p", recordCount: 1) {
            Issue.record("a Client fault whose pui:Error does not say retryable=\"false\" must be resent")
        }
        let invalid = Array(String(decoding: body, as: UTF8.self).replacingOccurrences(of: "code=\"E500\"", with: "code=\"E500\" retryable=\"False\"").utf8)
        if case .refused = PUIWire.classify(status: 500, body: invalid, retryAfter: nil, packageId: "p", recordCount: 1) {
            Issue.record("retryable=\"False\" is no xs:boolean: not a refusal")
        }
        let stated = Array(String(decoding: body, as: UTF8.self).replacingOccurrences(of: "code=\"E500\"", with: "code=\"E101\" retryable=\" 0 \"").utf8)
        guard case .refused(let fault) = PUIWire.classify(status: 500, body: stated, retryAfter: nil, packageId: "p", recordCount: 1) else {
            Issue.record("retryable=\" 0 \" (xs:boolean false, whitespace collapsed) refuses the package")
            return
        }
        #expect(fault.code == "E101")
    }
}
