import CivilTime
import Foundation
import GatewayModel
import XMLSupport

/// PUI v1 wire constants and the SOAP 1.1 framing (spec §1).
public enum PUIWire {
    public static let soapNamespace = "http://schemas.xmlsoap.org/soap/envelope/"
    public static let submitAction = "\"urn:cn-esup:pui:1#SubmitPackage\""
    public static let referenceDataAction = "\"urn:cn-esup:pui:1#GetReferenceData\""
    public static let contentType = "text/xml; charset=utf-8"
    /// Request body limit (spec §1).
    public static let maxRequestBytes = 8 << 20
    /// Records per package (spec §1).
    public static let maxRecords = 1000

    /// The headers of a SOAP request with this action.
    public static func headers(action: String) -> [(name: String, value: String)] {
        [("Content-Type", contentType), ("SOAPAction", action)]
    }

    static let envelopeOpen = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        + "<soap:Envelope xmlns:soap=\"\(soapNamespace)\"><soap:Body>"
    static let envelopeClose = "</soap:Body></soap:Envelope>"

    /// A SOAP envelope around `payload` (an element in the pui namespace written with the `pui:` prefix).
    public static func envelope(_ payload: String) -> String {
        envelopeOpen + payload + envelopeClose
    }

    /// `GetReferenceData` request body.
    public static func referenceDataRequest(division: String, knownVersion: String?) -> [UInt8] {
        var payload = "<pui:GetReferenceData xmlns:pui=\"\(puiNamespace)\"><pui:Division>\(xmlEscape(division))</pui:Division>"
        if let knownVersion { payload += "<pui:KnownVersion>\(xmlEscape(knownVersion))</pui:KnownVersion>" }
        payload += "</pui:GetReferenceData>"
        return Array(envelope(payload).utf8)
    }

    /// A SOAP fault (spec §1): `soap:Client` for non-retryable codes, `soap:Server` otherwise. The message is
    /// made a valid `pui:Error` text (see `text2000`), also for faultstring.
    public static func fault(code: String, retryable: Bool, message: String) -> [UInt8] {
        let message = text2000(message)
        let payload = "<soap:Fault><faultcode>soap:\(retryable ? "Server" : "Client")</faultcode>"
            + "<faultstring>\(xmlEscape(message))</faultstring>"
            + "<detail><pui:Error xmlns:pui=\"\(puiNamespace)\" code=\"\(xmlEscape(code))\" retryable=\"\(retryable)\">"
            + "\(xmlEscape(message))</pui:Error></detail></soap:Fault>"
        return Array(envelope(payload).utf8)
    }

    /// Text for a `pui:Error` or `pui:Rejected` (pui:Text2000): at most 2000 characters (Unicode code points, as
    /// XSD counts them; longer text is cut and ends in "…"), and characters XML 1.0 cannot carry (C0 controls but
    /// tab, LF and CR; U+FFFE, U+FFFF) replaced by U+FFFD. Messages quote what a request held (a value the schema
    /// refused, a SOAPAction header): without this, the fault itself was invalid or not even well-formed.
    public static func text2000(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var count = 0
        for scalar in text.unicodeScalars {
            if count == 2000 {
                out.removeLast()
                out.append("…")
                break
            }
            let value = scalar.value
            let allowed = value >= 0x20 ? value != 0xFFFE && value != 0xFFFF : value == 0x09 || value == 0x0A || value == 0x0D
            out.append(allowed ? scalar : "\u{FFFD}")
            count += 1
        }
        return String(out)
    }

    /// A `SubmitPackageResponse` envelope with a receipt.
    public static func receiptResponse(_ receipt: Receipt) -> [UInt8] {
        var payload = "<pui:SubmitPackageResponse xmlns:pui=\"\(puiNamespace)\"><pui:Receipt packageId=\"\(xmlEscape(receipt.packageId))\""
            + " receivedAt=\"\(xmlEscape(receipt.receivedAt))\" accepted=\"\(receipt.accepted)\" duplicates=\"\(receipt.duplicates)\">"
        for rejection in receipt.rejected {
            payload += "<pui:Rejected index=\"\(rejection.index)\" code=\"\(xmlEscape(rejection.code))\""
            if let field = rejection.field { payload += " field=\"\(xmlEscape(field))\"" }
            payload += ">\(xmlEscape(text2000(rejection.message)))</pui:Rejected>"
        }
        payload += "</pui:Receipt></pui:SubmitPackageResponse>"
        return Array(envelope(payload).utf8)
    }
}

/// A per-package receipt (spec §3).
public struct Receipt: Sendable, Equatable, Codable {
    public struct Rejection: Sendable, Equatable, Codable {
        public var index: Int
        public var code: String
        public var field: String?
        public var message: String
        public init(index: Int, code: String, field: String?, message: String) {
            self.index = index
            self.code = code
            self.field = field
            self.message = message
        }
    }
    public var packageId: String
    public var receivedAt: String
    public var accepted: Int
    public var duplicates: Int
    public var rejected: [Rejection]

    public init(packageId: String, receivedAt: String, accepted: Int, duplicates: Int, rejected: [Rejection]) {
        self.packageId = packageId
        self.receivedAt = receivedAt
        self.accepted = accepted
        self.duplicates = duplicates
        self.rejected = rejected
    }
}

/// A SOAP fault's PUI detail.
public struct PUIFault: Sendable, Equatable {
    /// `soap:Client` or `soap:Server` (prefix stripped: "Client" / "Server").
    public var faultCode: String
    public var faultString: String
    /// `pui:Error/@code`, e.g. E101; nil when the fault carries no PUI detail.
    public var code: String?
    public var retryable: Bool
    public var message: String
}

/// What a receiver's HTTP response means for the package (spec §1 table).
public enum SubmitOutcome: Sendable, Equatable {
    /// 200 with a receipt.
    case receipt(Receipt)
    /// 500 Client fault, not retryable: the package is refused as a whole.
    case refused(PUIFault)
    /// Anything to retry with the same package: Server fault, 503/429, other statuses, transport failures.
    case retry(reason: String, retryAfter: Duration?)
}

/// Why a response could not be understood.
public struct WireError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension PUIWire {
    /// The first element named `name` in the pui namespace (or any namespace when `namespace` is nil), depth-first.
    static func find(_ element: XMLElement, _ name: String, namespace: String? = puiNamespace) -> XMLElement? {
        if element.name == name && (namespace == nil || element.namespace == namespace) { return element }
        for child in element.children {
            if let found = find(child, name, namespace: namespace) { return found }
        }
        return nil
    }

    /// An xs:integer-derived value as the schema reads it: whitespace collapses (leading and trailing XML
    /// whitespace, i.e. space, tab, CR and LF, is dropped; other Unicode spaces are not whitespace to XSD) and a
    /// leading sign is allowed.
    public static func xsdInteger(_ text: String) -> Int? {
        Int(text.trimmingCharacters(in: xmlWhitespace))
    }

    private static let xmlWhitespace = CharacterSet(charactersIn: " \t\r\n")

    /// Parses a receipt out of a `SubmitPackageResponse` envelope.
    public static func parseReceipt(_ body: [UInt8]) throws(WireError) -> Receipt {
        let root: XMLElement?
        do { root = try XMLDocument(bytes: body, url: "response.xml").root } catch { throw WireError("response is not well-formed XML: \(error)") }
        guard let root, let receipt = find(root, "Receipt") else { throw WireError("response has no pui:Receipt") }
        guard let packageId = receipt.attribute("packageId"), let receivedAt = receipt.attribute("receivedAt"),
              let accepted = receipt.attribute("accepted").flatMap(xsdInteger), accepted >= 0,
              let duplicates = receipt.attribute("duplicates").flatMap(xsdInteger), duplicates >= 0 else {
            throw WireError("pui:Receipt lacks packageId, receivedAt, accepted or duplicates")
        }
        var rejected: [Receipt.Rejection] = []
        for element in receipt.children("Rejected") {
            guard let index = element.attribute("index").flatMap(xsdInteger), index >= 1,
                  let code = element.attribute("code") else {
                throw WireError("pui:Rejected without a valid index or code")
            }
            rejected.append(Receipt.Rejection(index: index, code: code, field: element.attribute("field"), message: element.text))
        }
        return Receipt(packageId: packageId, receivedAt: receivedAt, accepted: accepted, duplicates: duplicates, rejected: rejected)
    }

    /// `Client`, or a more specific Client fault in SOAP 1.1's dot notation (§4.4.1: `Client.Authentication`).
    static func isClientFaultCode(_ localName: String) -> Bool {
        localName == "Client" || localName.hasPrefix("Client.")
    }

    /// Parses a SOAP fault; nil when the body is not one.
    public static func parseFault(_ body: [UInt8]) -> PUIFault? {
        guard let root = try? XMLDocument(bytes: body, url: "fault.xml").root,
              let fault = find(root, "Fault", namespace: soapNamespace) else { return nil }
        // faultcode is an xs:QName: its whitespace collapses (a pretty-printed `<faultcode>\n  soap:Client\n</faultcode>`
        // is `soap:Client`).
        let rawCode = fault.child("faultcode")?.text.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        let faultCode = rawCode.split(separator: ":").last.map(String.init) ?? rawCode
        let faultString = fault.child("faultstring")?.text ?? ""
        guard let error = find(fault, "Error") else {
            return PUIFault(faultCode: faultCode, faultString: faultString, code: nil, retryable: !isClientFaultCode(faultCode),
                            message: faultString)
        }
        // Strict reading of the spec table: only a detail that says retryable="false" (xs:boolean: also "0") refuses
        // the package for good. An Error without the attribute (JAXB omits a null Boolean) or with a value that
        // is no xs:boolean does not say so: the package is resent, not all its records made dead letters.
        let retryableText = error.attribute("retryable")?.trimmingCharacters(in: .whitespacesAndNewlines)
        let retryable = retryableText != "false" && retryableText != "0"
        return PUIFault(faultCode: faultCode, faultString: faultString, code: error.attribute("code"),
                        retryable: retryable, message: error.text)
    }

    /// SOAP 1.2's envelope namespace: not PUI v1's, but what a SOAP stack bound to 1.2 by mistake answers with.
    static let soap12Namespace = "http://www.w3.org/2003/05/soap-envelope"

    /// What a response body that is neither a receipt nor a SOAP 1.1 fault holds, for the operator: the retry
    /// reason is all they see, and "HTTP 500 without a SOAP fault" did not tell a receiver bound to SOAP 1.2 (its
    /// fault carries the real code, e.g. E101) from an application server's HTML error page (an OutOfMemoryError).
    /// At most 300 characters of text, markup dropped, whitespace collapsed.
    public static func describeUnexpectedBody(_ body: [UInt8]) -> String {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A }) { return "empty body" }
        if let root = try? XMLDocument(bytes: body, url: "response.xml").root {
            if root.namespace == soap12Namespace, let fault = find(root, "Fault", namespace: soap12Namespace) {
                let code = find(fault, "Value", namespace: soap12Namespace)?.text ?? ""
                let reason = find(fault, "Text", namespace: soap12Namespace)?.text ?? ""
                let detail = find(fault, "Error").map { " \($0.attribute("code") ?? "") \($0.text)" } ?? ""
                return "a SOAP 1.2 fault (PUI v1 is SOAP 1.1: the receiver's binding is wrong): "
                    + excerpt("\(code) \(reason);\(detail)")
            }
            // A SOAP 1.1 envelope: what its Body holds is the useful name (a receipt in another namespace, say).
            if root.namespace == soapNamespace, let payload = root.child("Body")?.children.first {
                return "a SOAP 1.1 envelope whose Body holds " + describeElement(payload)
            }
            return describeElement(root)
        }
        return "body: " + excerpt(withoutMarkup(String(decoding: body, as: UTF8.self)))
    }

    private static func describeElement(_ element: XMLElement) -> String {
        "XML element \(element.name) (\(element.namespace ?? "no namespace")): " + excerpt(allText(element))
    }

    private static func allText(_ element: XMLElement) -> String {
        element.children.reduce(element.text) { $0 + " " + allText($1) }
    }

    /// The text of an HTML or broken XML page: what lies outside `<…>`.
    private static func withoutMarkup(_ text: String) -> String {
        var out = ""
        var inTag = false
        for character in text {
            if character == "<" { inTag = true; out.append(" ") } else if character == ">" { inTag = false } else if !inTag { out.append(character) }
        }
        return out
    }

    private static func excerpt(_ text: String) -> String {
        let collapsed = text.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
        let limited = collapsed.count > 300 ? String(collapsed.prefix(300)) + "…" : collapsed
        return "\"" + text2000(limited) + "\""
    }

    /// Classifies an HTTP response to SubmitPackage exactly per the spec §1 table. A 200 whose receipt does not
    /// parse, or does not match the package (id, counts), is treated as "unknown whether stored": resend.
    public static func classify(status: Int, body: [UInt8], retryAfter: Duration?, packageId: String,
                                recordCount: Int) -> SubmitOutcome {
        switch status {
        case 200:
            do {
                let receipt = try parseReceipt(body)
                guard receipt.packageId == packageId else {
                    return .retry(reason: "receipt names package \(receipt.packageId), expected \(packageId)", retryAfter: nil)
                }
                guard receipt.accepted + receipt.duplicates + receipt.rejected.count == recordCount else {
                    return .retry(reason: "receipt counts \(receipt.accepted)+\(receipt.duplicates)+\(receipt.rejected.count) do not add up to RecordCount \(recordCount)", retryAfter: nil)
                }
                guard receipt.rejected.allSatisfy({ $0.index >= 1 && $0.index <= recordCount }) else {
                    return .retry(reason: "receipt rejects an index outside 1...\(recordCount)", retryAfter: nil)
                }
                // Counts that add up with an index named twice leave one record neither accepted nor rejected.
                var seen = Set<Int>()
                if let twice = receipt.rejected.first(where: { !seen.insert($0.index).inserted }) {
                    return .retry(reason: "receipt rejects index \(twice.index) more than once", retryAfter: nil)
                }
                return .receipt(receipt)
            } catch {
                return .retry(reason: "HTTP 200 without a usable receipt: \(error); \(describeUnexpectedBody(body))", retryAfter: nil)
            }
        case 500:
            guard let fault = parseFault(body) else {
                return .retry(reason: "HTTP 500 without a SOAP 1.1 fault: \(describeUnexpectedBody(body))", retryAfter: retryAfter)
            }
            // Strict reading: only a Client fault whose pui:Error says retryable="false" refuses the package.
            if isClientFaultCode(fault.faultCode) && !fault.retryable && fault.code != nil {
                return .refused(fault)
            }
            // A receiver that answers E503 (overloaded) with a Retry-After is asking for the wait a 503 asks for.
            return .retry(reason: "receiver fault \(fault.code ?? fault.faultCode): \(fault.message)", retryAfter: retryAfter)
        case 503, 429:
            return .retry(reason: "HTTP \(status) (busy)", retryAfter: retryAfter)
        default:
            return .retry(reason: "HTTP \(status): \(describeUnexpectedBody(body))", retryAfter: retryAfter)
        }
    }
}


/// Parses a BeijingTime (or any `YYYY-MM-DDTHH:MM:SS[.fff]±HH:MM`) into a Date.
public func parseTimestamp(_ text: String) -> Date? {
    let bytes = Array(text.utf8)
    guard bytes.count >= 25 else { return nil }
    func number(_ range: Range<Int>) -> Int? {
        var value = 0
        for index in range {
            let byte = bytes[index]
            guard byte >= 48 && byte <= 57 else { return nil }
            value = value * 10 + Int(byte - 48)
        }
        return value
    }
    guard let year = number(0..<4), bytes[4] == 45, let month = number(5..<7), bytes[7] == 45, let day = number(8..<10),
          bytes[10] == 84, let hour = number(11..<13), bytes[13] == 58, let minute = number(14..<16), bytes[16] == 58,
          let second = number(17..<19) else { return nil }
    var index = 19
    var fraction = 0.0
    if bytes[index] == 46 {
        index += 1
        var scale = 0.1
        while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
            fraction += Double(bytes[index] - 48) * scale
            scale /= 10
            index += 1
        }
    }
    guard bytes.count == index + 6, bytes[index] == 43 || bytes[index] == 45,
          let offsetHours = number(index + 1..<index + 3), bytes[index + 3] == 58,
          let offsetMinutes = number(index + 4..<index + 6) else { return nil }
    let sign = bytes[index] == 43 ? 1 : -1
    let days = Int64(CivilCalendar.daysFromCivil(year, month, day))
    let local = Double(days * 86400 + Int64(hour * 3600 + minute * 60 + second)) + fraction
    return Date(timeIntervalSince1970: local - Double(sign * (offsetHours * 3600 + offsetMinutes * 60)))
}

