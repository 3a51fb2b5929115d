import Foundation
import HTTPClientSupport
import HTTPServerSupport
import SandboxReceiver
import Testing
import Uplink

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
}
