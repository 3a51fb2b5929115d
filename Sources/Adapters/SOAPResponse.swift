import Foundation
import GatewayConfig
import HTTPClientSupport
import Journal
import TextSupport
import XMLSupport

/// A SOAP Fault as the service sent it (1.1 faultcode/faultstring, or 1.2 Code/Reason).
public struct SOAPFault: Sendable, Equatable, CustomStringConvertible {
    public var version: SOAPVersion
    public var code: String
    public var subcode: String
    public var reason: String
    public var detail: String
    public var httpStatus: Int

    public var description: String {
        var text = "SOAP \(version.rawValue) fault \(code)"
        if !subcode.isEmpty { text += "/\(subcode)" }
        text += ": \(reason)"
        if !detail.isEmpty { text += " (detail: \(detail.prefix(300)))" }
        return text + " [HTTP \(httpStatus)]"
    }
}

/// Why a poll of a SOAP adapter stopped. Every case is retried at a later poll (with backoff); nothing is skipped.
public enum SOAPAdapterError: Error, CustomStringConvertible, Sendable {
    /// No HTTP response: connect failure, TLS failure, timeout, response too large.
    case transport(HTTPClientError)
    /// An HTTP error status without a SOAP Fault in the body.
    case httpStatus(Int, excerpt: String)
    /// The service answered with a SOAP Fault.
    case fault(SOAPFault)
    /// The page's payload was refused and quarantined (entry id when newly quarantined).
    case refusedPayload(String, quarantineID: Int64?)
    /// Since paging cannot advance: a full page whose records all carry the current since value.
    case stalledSince(String)
    /// The adapter's own settings cannot work with this response (bad XPath, mapping does not bind).
    case configuration(String)
    case journal(JournalError)

    public var description: String {
        switch self {
        case .transport(let error): return "transport: \(error)"
        case .httpStatus(let status, let excerpt): return "HTTP \(status) without a SOAP fault: \(excerpt)"
        case .fault(let fault): return fault.description
        case .refusedPayload(let reason, let id): return "payload refused\(id.map { " (quarantine #\($0))" } ?? ""): \(reason)"
        case .stalledSince(let message): return "since paging stalled: \(message)"
        case .configuration(let message): return "configuration: \(message)"
        case .journal(let error): return "journal: \(error)"
        }
    }
}

/// The charset rule for a SOAP response body (documented in docs/adapters.md, "SOAP"):
/// 1. A UTF-8 byte-order mark means UTF-8; a UTF-16/32 one is refused.
/// 2. Otherwise the HTTP `Content-Type` charset and the XML declaration's `encoding` are read. Labels outside
///    UTF-8 and the GB family (GB2312, GBK, CP936, EUC-CN, GB18030: all decoded as GB18030) are refused.
/// 3. If only one is present it is used; if neither, UTF-8 (the XML default). If both name the same family,
///    that family.
/// 4. If they disagree, the bytes decide: pure ASCII or valid UTF-8 → UTF-8 (GB text with any Chinese
///    character is practically never valid UTF-8); otherwise GB18030, which must then decode without error.
/// The result is always UTF-8 text, and the parser is told so (the declaration is then ignored).
public enum SOAPCharset {
    public struct Decision: Sendable, Equatable {
        public var encoding: TextEncoding
        public var note: String
    }

    /// `charset=` of a Content-Type value.
    public static func headerCharset(_ contentType: String?) -> String? {
        guard let contentType else { return nil }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let parts = parameter.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces).lowercased() == "charset" else { continue }
            return parts[1].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
        }
        return nil
    }

    /// `encoding="…"` of the XML declaration at the start of `bytes` (after an optional BOM), if any.
    public static func declaredEncoding(_ bytes: [UInt8]) -> String? {
        var start = 0
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { start = 3 }
        guard bytes.count >= start + 5, Array(bytes[start..<(start + 5)]) == Array("<?xml".utf8) else { return nil }
        guard let end = bytes[start...].prefix(512).firstIndex(of: UInt8(ascii: ">")) else { return nil }
        let declaration = String(decoding: bytes[start..<end], as: UTF8.self)
        guard let range = declaration.range(of: "encoding") else { return nil }
        var rest = declaration[range.upperBound...].drop { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        guard rest.first == "=" else { return nil }
        rest = rest.dropFirst().drop { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        guard let quote = rest.first, quote == "\"" || quote == "'" else { return nil }
        rest = rest.dropFirst()
        guard let close = rest.firstIndex(of: quote) else { return nil }
        return String(rest[..<close])
    }

    static func family(_ label: String, origin: String) -> Result<TextEncoding, SOAPContentError> {
        if let encoding = TextEncoding(label: label.trimmingCharacters(in: .whitespaces)) { return .success(encoding) }
        return .failure(SOAPContentError(stage: .decode, reason: "unsupported charset '\(label)' in the \(origin) (supported: UTF-8, GB2312, GBK, GB18030)"))
    }

    /// Applies the rule to a response body.
    public static func decide(body: [UInt8], contentType: String?) -> Result<Decision, SOAPContentError> {
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { return .success(Decision(encoding: .utf8, note: "UTF-8 byte-order mark")) }
        if body.starts(with: [0xFE, 0xFF]) || body.starts(with: [0xFF, 0xFE]) {
            return .failure(SOAPContentError(stage: .decode, reason: "UTF-16 responses are not supported"))
        }
        let headerLabel = headerCharset(contentType)
        let declaredLabel = declaredEncoding(body)
        var header: TextEncoding?
        var declared: TextEncoding?
        if let headerLabel {
            switch family(headerLabel, origin: "HTTP Content-Type") {
            case .success(let encoding): header = encoding
            case .failure(let error): return .failure(error)
            }
        }
        if let declaredLabel {
            switch family(declaredLabel, origin: "XML declaration") {
            case .success(let encoding): declared = encoding
            case .failure(let error): return .failure(error)
            }
        }
        switch (header, declared) {
        case (nil, nil): return .success(Decision(encoding: .utf8, note: "no charset given: UTF-8"))
        case (let one?, nil), (nil, let one?): return .success(Decision(encoding: one, note: "declared \(one.rawValue)"))
        case (let h?, let d?) where h == d: return .success(Decision(encoding: h, note: "header and declaration agree"))
        default:
            let valid = body.withUnsafeBytes { TextDecoder.firstInvalidUTF8($0) } == nil
            let note = "HTTP charset '\(headerLabel ?? "")' and XML declaration '\(declaredLabel ?? "")' disagree"
            return .success(Decision(encoding: valid ? .utf8 : .gb18030,
                                     note: note + (valid ? "; the bytes are valid UTF-8" : "; the bytes are not UTF-8: GB18030")))
        }
    }

    /// Decodes to UTF-8 bytes, failing on any invalid sequence.
    public static func utf8Bytes(_ body: [UInt8], as encoding: TextEncoding) -> Result<[UInt8], SOAPContentError> {
        var bytes = body
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        do {
            let decoder = try TextDecoder(encoding)
            let text = try bytes.withUnsafeBytes { (buffer) throws(DecodingError) in try decoder.decode(buffer) }
            return .success(Array(text.utf8))
        } catch {
            return .failure(SOAPContentError(stage: .decode, reason: "does not decode as \(encoding.rawValue): \(error)"))
        }
    }
}

/// Why a response's content was refused (quarantined): a decode, parse or shape problem.
public struct SOAPContentError: Error, Sendable, CustomStringConvertible {
    public enum Stage: String, Sendable { case decode, parse }
    public var stage: Stage
    public var reason: String
    public var description: String { reason }
}

/// What one page's response held.
public enum SOAPPageContent {
    /// Rows of field values in `fields` order.
    case rows([[String]])
    case refused(SOAPContentError)
}

/// Turns HTTP responses into rows: status and fault handling, charset rule, safe parsing, payload unwrapping,
/// XPath extraction.
public struct SOAPResponseReader: Sendable {
    public let settings: SOAPSettings
    private var namespaces: [XPathNamespace] { settings.namespaces.map { XPathNamespace(prefix: $0.prefix, uri: $0.uri) } }

    public init(settings: SOAPSettings) { self.settings = settings }

    /// Faults, HTTP errors and bad settings throw; refused content is returned for quarantine.
    public func read(_ response: HTTPResponse) throws(SOAPAdapterError) -> SOAPPageContent {
        let parsed = parseEnvelope(response)
        if let document = try? parsed.get(), let fault = fault(in: document, status: response.status) {
            throw .fault(fault)
        }
        guard (200..<300).contains(response.status) else {
            let excerpt = String(decoding: response.body.prefix(300), as: UTF8.self)
                .replacingOccurrences(of: "\n", with: " ")
            throw .httpStatus(response.status, excerpt: excerpt)
        }
        switch parsed {
        case .failure(let error): return .refused(error)
        case .success(let envelope):
            do {
                return try extract(from: envelope)
            } catch let error as SOAPContentError {
                return .refused(error)
            } catch let error as XMLError {
                throw .configuration(error.description)
            } catch {
                throw .configuration("\(error)")
            }
        }
    }

    /// Charset rule → UTF-8 → untrusted parse → must be a SOAP envelope.
    func parseEnvelope(_ response: HTTPResponse) -> Result<XMLDocument, SOAPContentError> {
        let decision: SOAPCharset.Decision
        switch SOAPCharset.decide(body: response.body, contentType: response.header("Content-Type")) {
        case .success(let value): decision = value
        case .failure(let error): return .failure(error)
        }
        let utf8: [UInt8]
        switch SOAPCharset.utf8Bytes(response.body, as: decision.encoding) {
        case .success(let bytes): utf8 = bytes
        case .failure(let error):
            return .failure(SOAPContentError(stage: .decode, reason: "response (\(decision.note)) \(error.reason)"))
        }
        let document: XMLDocument
        do {
            document = try XMLDocument.untrusted(utf8: utf8, limit: settings.maxResponseBytes * 2)
        } catch {
            return .failure(SOAPContentError(stage: .parse, reason: "response envelope \(error)"))
        }
        let roots = (try? document.strings("namespace-uri(/*)")) ?? []
        let localName = (try? document.strings("local-name(/*)"))?.first ?? ""
        guard localName == "Envelope", let uri = roots.first,
              uri == SOAPNamespace.envelope11 || uri == SOAPNamespace.envelope12 else {
            return .failure(SOAPContentError(stage: .parse, reason: "the response is not a SOAP envelope (root element '\(localName)')"))
        }
        return .success(document)
    }

    func fault(in document: XMLDocument, status: Int) -> SOAPFault? {
        let base = "/*[local-name()='Envelope']/*[local-name()='Body']/*[local-name()='Fault']"
        guard let count = try? document.strings("count(\(base))").first, count != "0" else { return nil }
        func value(_ path: String) -> String {
            ((try? document.strings("normalize-space(\(base)/\(path))"))?.first) ?? ""
        }
        let uri = (try? document.strings("namespace-uri(/*)"))?.first ?? ""
        if uri == SOAPNamespace.envelope12 {
            return SOAPFault(version: .v12, code: value("*[local-name()='Code']/*[local-name()='Value']"),
                             subcode: value("*[local-name()='Code']/*[local-name()='Subcode']/*[local-name()='Value']"),
                             reason: value("*[local-name()='Reason']/*[local-name()='Text'][1]"),
                             detail: value("*[local-name()='Detail']"), httpStatus: status)
        }
        return SOAPFault(version: .v11, code: value("faultcode"), subcode: "", reason: value("faultstring"),
                         detail: value("detail"), httpStatus: status)
    }

    /// The records of a parsed envelope (inline) or of its inner document (escaped / base64).
    func extract(from envelope: XMLDocument) throws -> SOAPPageContent {
        let source: XMLDocument
        switch settings.payload {
        case .inline:
            source = envelope
        case .escaped, .base64:
            let selected = try envelope.strings(settings.payloadPath, namespaces: namespaces)
            guard let payload = selected.first else {
                throw SOAPContentError(stage: .parse, reason: "payload_path '\(settings.payloadPath)' selects nothing in the response")
            }
            if payload.allSatisfy(\.isWhitespace) { return .rows([]) }
            source = try innerDocument(payload)
        }
        let rows = try source.table(records: settings.recordPath, fields: settings.fields.map(\.path), namespaces: namespaces)
        return .rows(rows)
    }

    /// Parses the inner document. Escaped: the text is already characters, so its declaration (often
    /// `encoding="gb2312"`) is ignored. Base64: the bytes are in the encoding their declaration names.
    func innerDocument(_ payload: String) throws -> XMLDocument {
        var utf8: [UInt8]
        switch settings.payload {
        case .base64:
            guard let data = Data(base64Encoded: payload, options: .ignoreUnknownCharacters) else {
                throw SOAPContentError(stage: .decode, reason: "payload is not valid base64")
            }
            let bytes = [UInt8](data)
            var encoding = TextEncoding.utf8
            if !bytes.starts(with: [0xEF, 0xBB, 0xBF]), let label = SOAPCharset.declaredEncoding(bytes) {
                switch SOAPCharset.family(label, origin: "inner document's declaration") {
                case .success(let value): encoding = value
                case .failure(let error): throw error
                }
            }
            switch SOAPCharset.utf8Bytes(bytes, as: encoding) {
            case .success(let decoded): utf8 = decoded
            case .failure(let error): throw SOAPContentError(stage: .decode, reason: "inner document \(error.reason)")
            }
        default:
            utf8 = Array(payload.utf8)
            if utf8.starts(with: [0xEF, 0xBB, 0xBF]) { utf8.removeFirst(3) }
        }
        do {
            return try XMLDocument.untrusted(utf8: utf8, limit: settings.maxResponseBytes * 2)
        } catch {
            throw SOAPContentError(stage: .parse, reason: "inner document \(error)")
        }
    }
}
