import CryptoSupport
import Foundation
import GatewayModel
import HTTPServerSupport
import SQLiteSupport
import Uplink
import XMLSupport

/// How the sandbox receiver behaves, including the misbehaviour tests ask for.
public struct SandboxOptions: Sendable {
    /// The receiver's own division code: packages for another Receiver get E105.
    public var receiverCode: String = "410000"
    /// Catalog for R201/R202 and what GetReferenceData serves (nil: no catalog checks).
    public var referenceDataFile: String?
    /// The first N SubmitPackage requests are answered `failStatus` with `Retry-After: retryAfterSeconds`.
    public var failFirst: Int = 0
    public var failStatus: Int = 503
    public var retryAfterSeconds: Int = 1
    /// Each SubmitPackage request fails with 503 at this probability (0...1), before anything is stored.
    public var failRate: Double = 0
    /// The first N SubmitPackage requests get a retryable soap:Server fault E500.
    public var serverFaultFirst: Int = 0
    /// The first N packages stored are answered only after `dropDelay` (the client times out: "unknown whether stored").
    public var dropAfterStore: Int = 0
    public var dropDelay: Duration = .seconds(65)
    /// Every answer is delayed by this much.
    public var delay: Duration = .zero
    /// Benchmarks: answer every SubmitPackage with a receipt accepting RecordCount records, without parsing,
    /// checking or storing anything (so that the gateway is measured, not the receiver).
    public var acknowledgeOnly: Bool = false
    /// Records whose times lie further ahead than this are rejected R205.
    public var clockTolerance: TimeInterval = 300
    /// Tests: records that pass the real checks are rejected with `rejectCode` when SM3(type|key|rev) is 0 modulo
    /// this (1: every record; 0: never). Picked by type, key and rev, a record is rejected again when resent
    /// unchanged, in any package (spec §3); a new revision of it may pass.
    public var rejectEvery: Int = 0
    /// The code of those rejections (a pui:Code, e.g. R201).
    public var rejectCode: String = "R201"

    public init() {}
}

/// Why the sandbox could not start.
public struct SandboxError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "receive: \(message)" }
}

/// What the sandbox holds for one record key (tests and operators).
public struct SandboxRecord: Sendable, Equatable {
    public let type: String
    public let key: String
    public let rev: Int64
    public let packageId: String
}

/// A PUI receiver for tests, demos and operators (`esgate receive`): mutual TLS with CN = Sender (E102), schema
/// (E100), digest (E101), PackageId reuse (E103), size (E104), Receiver (E105); per-record R201/R202/R204/R205;
/// idempotent receipts; everything it accepts stored in its own SQLite file.
public final class SandboxReceiver: @unchecked Sendable {
    // All mutable state (the connection and the counters) is guarded by `lock`: the HTTP server calls `handle`
    // from one thread per connection.
    private let lock = NSLock()
    private let database: SQLiteDatabase
    private let validator: XMLSchemaValidator
    private let schema: PUISchema
    private let options: SandboxOptions
    private let reference: ReferenceData?
    private let referenceXML: String?
    private let logger: Logger
    private let now: @Sendable () -> Date
    private var submitRequests = 0
    private var storedPackages = 0
    private var serverFaults = 0
    private var failures = 0
    private var acknowledgedRecords = 0

    public init(databasePath: String, options: SandboxOptions, logger: Logger = .silent,
                now: @escaping @Sendable () -> Date = Date.init) throws(SandboxError) {
        // Options that cannot do what they say are refused here rather than misbehaving unasked.
        guard options.receiverCode.utf8.count == 6, options.receiverCode.utf8.allSatisfy({ (48...57).contains($0) }) else {
            throw SandboxError("receiver code '\(options.receiverCode)' is not a 6-digit division code (every package would get E105)")
        }
        guard (0...1).contains(options.failRate) else { throw SandboxError("fail rate \(options.failRate): must be 0...1") }
        guard (100...599).contains(options.failStatus) else { throw SandboxError("fail status \(options.failStatus): must be an HTTP status, 100...599") }
        guard options.rejectEvery >= 0 else { throw SandboxError("reject every \(options.rejectEvery): must not be negative") }
        // pui:Code, or the receipts would not be valid against the schema.
        guard (1...32).contains(options.rejectCode.utf8.count),
              options.rejectCode.utf8.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 95 || $0 == 45 || $0 == 46 }) else {
            throw SandboxError("reject code '\(options.rejectCode)' is not a PUI code ([0-9A-Za-z_.-], 1 to 32 characters)")
        }
        self.options = options
        self.logger = logger.with(component: "receive")
        self.now = now
        do {
            schema = try PUISchema.shipped()
            validator = try XMLSchemaValidator(schemaText: schema.schemaText)
        } catch {
            throw SandboxError("schema: \(error)")
        }
        if let file = options.referenceDataFile {
            do {
                reference = try ReferenceData.load(file: file, validator: validator)
            } catch {
                throw SandboxError(error.description)
            }
            // The element in its exclusive canonical form, embedded in GetReferenceDataResponse: it carries its own
            // namespace declarations whatever prefix (or default namespace) the file uses, and no XML declaration.
            do {
                let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
                let canonical = try XMLDocument(bytes: bytes, url: file).exclusiveCanonicalForm(ofElement: "ReferenceData", namespace: puiNamespace)
                referenceXML = String(decoding: canonical, as: UTF8.self)
            } catch {
                throw SandboxError("\(file): \(error)")
            }
        } else {
            reference = nil
            referenceXML = nil
        }
        do {
            let directory = (databasePath as NSString).deletingLastPathComponent
            if !directory.isEmpty { try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
            database = try SQLiteDatabase(path: databasePath)
            try database.execute("PRAGMA journal_mode=WAL")
            try database.execute("PRAGMA synchronous=FULL")
            try database.execute("""
                CREATE TABLE IF NOT EXISTS sandbox_packages(
                    package_id TEXT PRIMARY KEY, sender TEXT NOT NULL, digest TEXT NOT NULL, record_count INTEGER NOT NULL,
                    received_at TEXT NOT NULL, response BLOB NOT NULL, request BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS sandbox_records(
                    type TEXT NOT NULL, key TEXT NOT NULL, rev INTEGER NOT NULL, op TEXT NOT NULL, package_id TEXT NOT NULL,
                    body TEXT NOT NULL, PRIMARY KEY(type, key)) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS sandbox_deliveries(
                    package_id TEXT NOT NULL, idx INTEGER NOT NULL, type TEXT NOT NULL, key TEXT NOT NULL, rev INTEGER NOT NULL,
                    outcome TEXT NOT NULL, PRIMARY KEY(package_id, idx)) WITHOUT ROWID;
                """)
        } catch {
            throw SandboxError("database \(databasePath): \(error)")
        }
    }

    // MARK: - Inspection

    /// Submit requests seen (any outcome).
    public var requestCount: Int { lock.withLock { submitRequests } }

    /// Every key with the highest revision held.
    public func records() -> [SandboxRecord] {
        lock.withLock {
            ((try? database.query("SELECT type, key, rev, package_id FROM sandbox_records ORDER BY type, key")) ?? []).map {
                SandboxRecord(type: $0[0].textValue ?? "", key: $0[1].textValue ?? "", rev: $0[2].intValue ?? 0,
                              packageId: $0[3].textValue ?? "")
            }
        }
    }

    /// Stored packages: id → digest.
    public func packages() -> [String: String] {
        lock.withLock {
            var result: [String: String] = [:]
            for row in (try? database.query("SELECT package_id, digest FROM sandbox_packages")) ?? [] {
                result[row[0].textValue ?? ""] = row[1].textValue ?? ""
            }
            return result
        }
    }

    /// How many times each (type, key, rev) was accepted (exactly-once checks: every value must be 1).
    public func acceptanceCounts() -> [String: Int] {
        lock.withLock {
            var result: [String: Int] = [:]
            for row in (try? database.query("SELECT type, key, rev, count(*) FROM sandbox_deliveries WHERE outcome = 'accepted' GROUP BY type, key, rev")) ?? [] {
                result["\(row[0].textValue ?? "")|\(row[1].textValue ?? "")|\(row[2].intValue ?? 0)"] = Int(row[3].intValue ?? 0)
            }
            return result
        }
    }

    // MARK: - Handling

    /// The HTTP handler (pass to `HTTPServer`).
    public func handle(_ request: HTTPServerRequest) -> HTTPServerResponse {
        let response = respond(request)
        if options.delay > .zero { Thread.sleep(forTimeInterval: seconds(options.delay)) }
        return response
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private func soap(_ status: Int, _ body: [UInt8], headers: [(name: String, value: String)] = []) -> HTTPServerResponse {
        HTTPServerResponse(status: status, headers: [("Content-Type", PUIWire.contentType)] + headers, body: body)
    }

    private func clientFault(_ code: String, _ message: String) -> HTTPServerResponse {
        logger.info("refused: \(code) \(message)")
        return soap(500, PUIWire.fault(code: code, retryable: false, message: message))
    }

    private func respond(_ request: HTTPServerRequest) -> HTTPServerResponse {
        guard request.method == "POST" else {
            return HTTPServerResponse(status: 405, headers: [("Allow", "POST")], body: Array("POST only\n".utf8))
        }
        let action = request.header("SOAPAction")?.trimmingCharacters(in: .whitespaces) ?? ""
        switch action {
        case PUIWire.referenceDataAction:
            return referenceData(request)
        case PUIWire.submitAction:
            return submit(request)
        default:
            return clientFault("E100", "unknown SOAPAction \(action.isEmpty ? "(none)" : action)")
        }
    }

    /// GetReferenceData(Division, KnownVersion?) (spec §4), checked like SubmitPackage: Content-Type, size, UTF-8,
    /// SOAP 1.1 document/literal wrapped, schema (E100/E104). Strict reading of E102 ("sender not authorised for
    /// this certificate"): the Division asked for must be the client certificate's CN, as a package's Sender.
    private func referenceData(_ request: HTTPServerRequest) -> HTTPServerResponse {
        let document: XMLDocument, wrapper: XMLElement
        switch unwrap(request, operation: "GetReferenceData") {
        case .request(let parsed, let element): (document, wrapper) = (parsed, element)
        case .fault(let response): return response
        }
        if let first = validator.validate(document, element: "GetReferenceData", namespace: puiNamespace).first {
            return clientFault("E100", "not valid against pui-v1.xsd: \(first)")
        }
        let division = wrapper.child("Division")?.text ?? ""
        if let cn = request.clientCertificateCommonName, cn != division {
            return clientFault("E102", "division \(division) is not authorised for the certificate \(cn.isEmpty ? "without a CN" : "CN=\(cn)")")
        }
        guard let reference, let referenceXML else {
            return soap(500, PUIWire.fault(code: "E500", retryable: true, message: "no reference data configured"))
        }
        let known = wrapper.child("KnownVersion")?.text
        let payload = known == reference.version
            ? "<pui:GetReferenceDataResponse xmlns:pui=\"\(puiNamespace)\"/>"
            : "<pui:GetReferenceDataResponse xmlns:pui=\"\(puiNamespace)\">\(referenceXML)</pui:GetReferenceDataResponse>"
        return soap(200, Array(PUIWire.envelope(payload).utf8))
    }

    private func submit(_ request: HTTPServerRequest) -> HTTPServerResponse {
        // Fault injection, before anything is stored.
        let injected: HTTPServerResponse? = lock.withLock {
            submitRequests += 1
            if failures < options.failFirst {
                failures += 1
                return soap(options.failStatus, Array("busy (injected)\n".utf8), headers: [("Retry-After", "\(options.retryAfterSeconds)")])
            }
            if options.failRate > 0 && Double.random(in: 0..<1) < options.failRate {
                return soap(503, Array("busy (random)\n".utf8), headers: [("Retry-After", "\(options.retryAfterSeconds)")])
            }
            if serverFaults < options.serverFaultFirst {
                serverFaults += 1
                return soap(500, PUIWire.fault(code: "E500", retryable: true, message: "internal error (injected)"))
            }
            return nil
        }
        if let injected { return injected }
        if options.acknowledgeOnly { return acknowledge(request.body) }
        let document: XMLDocument, wrapper: XMLElement
        switch unwrap(request, operation: "SubmitPackage") {
        case .request(let parsed, let element): (document, wrapper) = (parsed, element)
        case .fault(let response): return response
        }
        // The only pui:Package and pui:Body of the request. Strict reading: another pui:Body (in a soap:Header, say)
        // is refused, so that the digest (spec §2) can only be the package's own Body's.
        guard let root = document.root, PUIWireHelpers.count(root, "Package") == 1, PUIWireHelpers.count(root, "Body") == 1 else {
            return clientFault("E100", "the soap:Body must hold exactly one pui:SubmitPackage with its pui:Package and pui:Body, and nothing else may")
        }
        let errors = validator.validate(document, element: "SubmitPackage", namespace: puiNamespace)
        if let first = errors.first { return clientFault("E100", "not valid against pui-v1.xsd: \(first)") }
        guard let package = wrapper.child("Package"), let head = package.child("Head"), let body = package.child("Body") else {
            return clientFault("E100", "no pui:Package")
        }
        let packageId = head.child("PackageId")?.text ?? ""
        let sender = head.child("Sender")?.text ?? ""
        let receiverCode = head.child("Receiver")?.text ?? ""
        let claimed = head.child("Digest")?.text ?? ""
        let recordCount = (head.child("RecordCount")?.text).flatMap(PUIWire.xsdInteger) ?? -1
        if let cn = request.clientCertificateCommonName, cn != sender {
            return clientFault("E102", "sender \(sender) is not authorised for the certificate \(cn.isEmpty ? "without a CN" : "CN=\(cn)")")
        }
        guard packageId.hasPrefix(sender + "-") else {
            return clientFault("E100", "PackageId \(packageId) does not start with the Sender \(sender)")
        }
        guard receiverCode == options.receiverCode else {
            return clientFault("E105", "wrong Receiver \(receiverCode): this receiver is \(options.receiverCode)")
        }
        let canonical: [UInt8]
        do { canonical = try document.exclusiveCanonicalForm(ofElement: "Body", namespace: puiNamespace) } catch {
            return clientFault("E100", "cannot canonicalize pui:Body: \(error)")
        }
        let digest = Digest.sm3(canonical).hexString
        guard digest == claimed else {
            return clientFault("E101", "SM3 of the canonical Body (\(digest)) does not match Head/Digest")
        }
        guard recordCount == body.children.count else {
            return clientFault("E100", "RecordCount \(recordCount) but the Body holds \(body.children.count) records")
        }
        let stored: (response: [UInt8], drop: Bool)
        do {
            stored = try lock.withLock { () throws -> (response: [UInt8], drop: Bool) in
                if let row = try database.query("SELECT digest, response FROM sandbox_packages WHERE package_id = ?1", [.text(packageId)]).first {
                    guard row[0].textValue == digest else {
                        return (PUIWire.fault(code: "E103", retryable: false, message: "PackageId \(packageId) was already used with another body"), false)
                    }
                    logger.info("\(packageId): resent with the same digest, original receipt returned")
                    if case .blob(let bytes) = row[1] { return (bytes, false) }
                    return ([], false)
                }
                let receipt = try store(packageId: packageId, sender: sender, digest: digest, body: body, request: request.body)
                storedPackages += 1
                return (PUIWire.receiptResponse(receipt), storedPackages <= options.dropAfterStore)
            }
        } catch {
            logger.error("\(packageId): \(error)")
            return soap(500, PUIWire.fault(code: "E500", retryable: true, message: "internal error: \(error)"))
        }
        if stored.response.starts(with: Array("<?xml".utf8)), PUIWire.parseFault(stored.response) != nil {
            return soap(500, stored.response)
        }
        if stored.drop {
            logger.info("\(packageId): stored; answering only after \(seconds(options.dropDelay)) s (injected)")
            Thread.sleep(forTimeInterval: seconds(options.dropDelay))
        }
        return soap(200, stored.response)
    }

    private enum Unwrapped {
        case request(XMLDocument, XMLElement)
        case fault(HTTPServerResponse)
    }

    /// What every request must be (spec §1, pui-v1.wsdl): Content-Type `text/xml; charset=utf-8`, at most 8 MiB
    /// (E104), UTF-8 without a DTD, a SOAP 1.1 envelope whose soap:Body holds exactly one element, the document's
    /// only pui:`operation` (document/literal wrapped); E100 otherwise. The document and that wrapper element.
    private func unwrap(_ request: HTTPServerRequest, operation: String) -> Unwrapped {
        if let problem = Self.contentTypeProblem(request.header("Content-Type")) { return .fault(clientFault("E100", problem)) }
        guard request.body.count <= PUIWire.maxRequestBytes else {
            return .fault(clientFault("E104", "request body of \(request.body.count) bytes exceeds 8 MiB"))
        }
        let document: XMLDocument
        switch Self.parse(request.body) {
        case .success(let parsed): document = parsed
        case .failure(let problem): return .fault(clientFault("E100", problem.message))
        }
        guard let root = document.root, root.name == "Envelope", root.namespace == PUIWire.soapNamespace else {
            return .fault(clientFault("E100", "not a SOAP 1.1 envelope ({\(PUIWire.soapNamespace)}Envelope)"))
        }
        guard let soapBody = root.children.first(where: { $0.name == "Body" && $0.namespace == PUIWire.soapNamespace }),
              soapBody.children.count == 1, let wrapper = soapBody.children.first,
              wrapper.name == operation, wrapper.namespace == puiNamespace,
              PUIWireHelpers.count(root, operation) == 1 else {
            return .fault(clientFault("E100", "the soap:Body must hold exactly one pui:\(operation)"))
        }
        return .request(document, wrapper)
    }

    /// Parses a request body as spec §1 and SOAP 1.1 allow it: UTF-8 ("Bodies are UTF-8; the XML declaration, when
    /// present, says UTF-8"; a UTF-8 byte order mark is fine) and without a document type declaration (SOAP 1.1
    /// §3: "A SOAP message MUST NOT contain a Document Type Declaration"). Another encoding is refused even when
    /// the declaration names it correctly: the province need not decode it.
    static func parse(_ body: [UInt8]) -> Result<XMLDocument, SandboxError> {
        guard String(validating: body, as: UTF8.self) != nil else {
            return .failure(SandboxError("the body is not UTF-8 (spec §1: bodies are UTF-8)"))
        }
        if let encoding = declaredEncoding(body), encoding.lowercased() != "utf-8" {
            return .failure(SandboxError("the XML declaration says encoding \(encoding) (spec §1: it says UTF-8)"))
        }
        do {
            return .success(try XMLDocument.untrusted(utf8: body, limit: Int.max))
        } catch {
            switch error {
            case .documentTypeDeclaration:
                return .failure(SandboxError("a document type declaration (SOAP 1.1 §3: a SOAP message must not contain one)"))
            case .malformed(let detail):
                return .failure(SandboxError("not well-formed: \(detail)"))
            case .tooLarge:
                return .failure(SandboxError("not well-formed: \(error)"))
            }
        }
    }

    /// The `encoding` of the XML declaration at the start of `body` (after a UTF-8 byte order mark), if any.
    static func declaredEncoding(_ body: [UInt8]) -> String? {
        var bytes = body[...]
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        guard bytes.starts(with: Array("<?xml".utf8)), let end = bytes.firstRange(of: Array("?>".utf8)) else { return nil }
        let declaration = String(decoding: bytes[bytes.startIndex..<end.lowerBound], as: UTF8.self)
        guard let name = declaration.range(of: "encoding") else { return nil }
        let rest = declaration[name.upperBound...].drop { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "=" }
        guard let quote = rest.first, quote == "\"" || quote == "'" else { return nil }
        return String(rest.dropFirst().prefix { $0 != quote })
    }

    /// Why a request's Content-Type is not spec §1's `text/xml; charset=utf-8` (media type and charset compared
    /// case-insensitively, parameters in any spacing, the charset possibly quoted); nil when it is.
    static func contentTypeProblem(_ value: String?) -> String? {
        guard let value else { return "no Content-Type: expected text/xml; charset=utf-8" }
        let parts = value.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        let charset = parts.dropFirst().compactMap { parameter -> String? in
            guard let equals = parameter.firstIndex(of: "="),
                  parameter[..<equals].trimmingCharacters(in: .whitespaces).lowercased() == "charset" else { return nil }
            return parameter[parameter.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                .trimmingCharacters(in: CharacterSet(charactersIn: "\"")).lowercased()
        }.first
        guard parts.first?.lowercased() == "text/xml", charset == "utf-8" else {
            return "Content-Type \(value): expected text/xml; charset=utf-8 (SOAP 1.1)"
        }
        return nil
    }

    /// `acknowledgeOnly`: a receipt from PackageId and RecordCount found by a byte search.
    private func acknowledge(_ body: [UInt8]) -> HTTPServerResponse {
        func text(of element: String) -> String? {
            let open = Array("<pui:\(element)>".utf8)
            guard let first = open.first, body.count >= open.count else { return nil }
            var index = 0
            while index + open.count <= body.count {
                if body[index] == first && body[index..<index + open.count].elementsEqual(open) {
                    let start = index + open.count
                    guard let end = body[start...].firstIndex(of: UInt8(ascii: "<")) else { return nil }
                    return String(decoding: body[start..<end], as: UTF8.self)
                }
                index += 1
            }
            return nil
        }
        guard let packageId = text(of: "PackageId"), let count = text(of: "RecordCount").flatMap({ Int($0) }) else {
            return clientFault("E100", "no PackageId or RecordCount")
        }
        lock.withLock {
            storedPackages += 1
            acknowledgedRecords += count
        }
        return soap(200, PUIWire.receiptResponse(Receipt(packageId: packageId, receivedAt: beijingTimestamp(now()), accepted: count,
                                                         duplicates: 0, rejected: [])))
    }

    /// Applies the records and stores the package with its receipt, in one transaction. Caller holds `lock`.
    private func store(packageId: String, sender: String, digest: String, body: XMLElement, request: [UInt8]) throws -> Receipt {
        let receivedAt = beijingTimestamp(now())
        var accepted = 0
        var duplicates = 0
        var rejected: [Receipt.Rejection] = []
        try database.transaction {
            let deliver = try database.prepare("INSERT INTO sandbox_deliveries(package_id, idx, type, key, rev, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            let lookup = try database.prepare("SELECT rev FROM sandbox_records WHERE type = ?1 AND key = ?2")
            let upsert = try database.prepare("""
                INSERT INTO sandbox_records(type, key, rev, op, package_id, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                ON CONFLICT(type, key) DO UPDATE SET rev = excluded.rev, op = excluded.op, package_id = excluded.package_id,
                    body = excluded.body
                """)
            for (offset, record) in body.children.enumerated() {
                let index = offset + 1
                let rev = record.attribute("rev").flatMap(PUIWire.xsdInteger).map(Int64.init) ?? 0
                let op = record.attribute("op") ?? "upsert"
                let key = recordKey(record)
                if let problem = check(record) ?? injectedRejection(type: record.name, key: key, rev: rev) {
                    rejected.append(Receipt.Rejection(index: index, code: problem.code, field: problem.field, message: problem.message))
                    try deliver.run([.text(packageId), .integer(Int64(index)), .text(record.name), .text(key), .integer(rev), .text(problem.code)])
                    continue
                }
                try lookup.bind([.text(record.name), .text(key)])
                let held = try lookup.step() ? lookup.int(at: 0) : 0
                lookup.reset()
                let outcome: String
                if rev <= held {
                    duplicates += 1
                    outcome = "duplicate"
                } else {
                    accepted += 1
                    outcome = "accepted"
                    try upsert.run([.text(record.name), .text(key), .integer(rev), .text(op), .text(packageId), .text(serializeRecord(record))])
                }
                try deliver.run([.text(packageId), .integer(Int64(index)), .text(record.name), .text(key), .integer(rev), .text(outcome)])
            }
            let receipt = Receipt(packageId: packageId, receivedAt: receivedAt, accepted: accepted, duplicates: duplicates, rejected: rejected)
            try database.prepare("""
                INSERT INTO sandbox_packages(package_id, sender, digest, record_count, received_at, response, request)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                """).run([.text(packageId), .text(sender), .text(digest), .integer(Int64(body.children.count)), .text(receivedAt),
                          .blob(PUIWire.receiptResponse(receipt)), .blob(request)])
        }
        logger.info("\(packageId) from \(sender): \(accepted) accepted, \(duplicates) duplicates, \(rejected.count) rejected")
        return Receipt(packageId: packageId, receivedAt: receivedAt, accepted: accepted, duplicates: duplicates, rejected: rejected)
    }

    private func serializeRecord(_ element: XMLElement) -> String {
        var out = "<" + element.name
        for attribute in element.attributes { out += " \(attribute.name)=\"\(xmlEscape(attribute.value))\"" }
        out += ">"
        if element.children.isEmpty { out += xmlEscape(element.text) } else { for child in element.children { out += serializeRecord(child) } }
        return out + "</" + element.name + ">"
    }

    /// The record's key: its key fields' values joined by U+001F (as the gateway's journal keys them). Values are
    /// read as the schema reads them: a key time (xs:dateTime) collapses its whitespace, so `<HandledAt> …+08:00
    /// </HandledAt>` is the same key as `<HandledAt>…+08:00</HandledAt>`; the other key types' patterns allow no
    /// whitespace at all.
    private func recordKey(_ record: XMLElement) -> String {
        let fields = schema.recordTypes[record.name]?.keyFields ?? []
        return fields.map { path -> String in
            var element: XMLElement? = record
            for part in path.split(separator: ".") { element = element?.child(String(part)) }
            return element.map { Self.collapsed($0.text) } ?? ""
        }.joined(separator: "\u{1F}")
    }

    /// XSD's whitespace collapse for values without inner whitespace: leading and trailing space, tab, CR, LF dropped.
    static func collapsed(_ text: String) -> String {
        text.trimmingCharacters(in: CharacterSet(charactersIn: " \t\r\n"))
    }

    /// `rejectEvery`/`rejectCode`: the rejection asked for, for the records it picks.
    private func injectedRejection(type: String, key: String, rev: Int64) -> (code: String, field: String?, message: String)? {
        guard options.rejectEvery > 0 else { return nil }
        let hash = Digest.sm3("\(type)\u{1F}\(key)\u{1F}\(rev)").prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard hash % UInt64(options.rejectEvery) == 0 else { return nil }
        return (options.rejectCode, nil, "rejected on request (--reject-every \(options.rejectEvery) --reject-code \(options.rejectCode))")
    }

    /// The first per-record problem (spec §3), or nil.
    private func check(_ record: XMLElement) -> (code: String, field: String?, message: String)? {
        if let reference {
            let codes = reference.catalogCodes
            if let item = record.child("ItemCode"), !codes.items.contains(item.text) {
                return ("R201", "ItemCode", "item \(item.text) is not in the catalog (reference data \(reference.version))")
            }
            if let fee = record.child("FeeCode"), !codes.fees.contains(fee.text) {
                return ("R201", "FeeCode", "fee \(fee.text) is not in the catalog (reference data \(reference.version))")
            }
            if let violation = record.child("ViolationCode"), !codes.violations.contains(violation.text) {
                return ("R201", "ViolationCode", "violation \(violation.text) is not in the catalog (reference data \(reference.version))")
            }
            if let dept = record.child("DeptCode"), !reference.departments.contains(dept.text) {
                return ("R202", "DeptCode", "department \(dept.text) is not registered for this district")
            }
        }
        for person in record.children where person.child("IdType") != nil && person.child("IdNumber") != nil {
            if person.child("IdType")?.text == "01", let number = person.child("IdNumber")?.text, !Self.residentIdValid(number) {
                return ("R204", "\(person.name)/IdNumber", "check character does not match")
            }
        }
        let limit = now().addingTimeInterval(options.clockTolerance)
        if let late = Self.firstTime(in: record, after: limit, path: "") {
            return ("R205", late, "time is more than 5 minutes after the receiver's clock")
        }
        return nil
    }

    /// Elements that are deadlines, not event times: they lie in the future by design, so R205 ignores them
    /// (reading R205's "a time" as the record's event times; a receiver rejecting every alert's ResponseDue
    /// could never accept a yellow or red card).
    static let deadlineElements: Set<String> = ["ResponseDue"]

    private static func firstTime(in element: XMLElement, after limit: Date, path: String) -> String? {
        for child in element.children where !deadlineElements.contains(child.name) {
            let childPath = path.isEmpty ? child.name : path + "/" + child.name
            if child.children.isEmpty {
                // As the schema reads an xs:dateTime: whitespace collapsed (` 2099-…+08:00\n` is a time too).
                let text = collapsed(child.text)
                if text.hasSuffix("+08:00"), let date = parseTimestamp(text), date > limit { return childPath }
            } else if let found = firstTime(in: child, after: limit, path: childPath) {
                return found
            }
        }
        return nil
    }

    /// GB 11643 resident identity number: 17 digits and an ISO 7064 MOD 11-2 check character.
    public static func residentIdValid(_ number: String) -> Bool { ResidentIdentityNumber.isValid(number.utf8) }
}

/// Small XML helpers shared with the Uplink module's wire code.
enum PUIWireHelpers {
    /// How many elements named `name` in the pui namespace the tree holds.
    static func count(_ element: XMLElement, _ name: String) -> Int {
        (element.name == name && element.namespace == puiNamespace ? 1 : 0) + element.children.reduce(0) { $0 + count($1, name) }
    }

    static func find(_ element: XMLElement, _ name: String) -> XMLElement? {
        if element.name == name && element.namespace == puiNamespace { return element }
        for child in element.children {
            if let found = find(child, name) { return found }
        }
        return nil
    }
}

/// `esgate receive` as a running server.
public final class SandboxServer: Sendable {
    public let receiver: SandboxReceiver
    public let server: HTTPServer

    /// Starts serving. `tls` nil serves plain HTTP (tests only).
    public init(receiver: SandboxReceiver, host: String = "127.0.0.1", port: UInt16 = 0,
                tls: HTTPServerConfiguration.TLS?, errorLog: (@Sendable (String) -> Void)? = nil) throws(SandboxError) {
        self.receiver = receiver
        do {
            // Above 8 MiB so that an oversize package is answered E104 by the handler; a body beyond even this
            // limit gets the same E104 fault from the server (a plain 413 would read as "resend", spec §1 table).
            let tooLarge = HTTPServerResponse(status: 500, headers: [("Content-Type", PUIWire.contentType)],
                                              body: PUIWire.fault(code: "E104", retryable: false,
                                                                  message: "request body exceeds 8 MiB"))
            server = try HTTPServer(configuration: HTTPServerConfiguration(host: host, port: port, tls: tls,
                                                                           maxRequestBodyBytes: 16 << 20,
                                                                           tooLargeResponse: tooLarge),
                                    errorLog: errorLog) { request in receiver.handle(request) }
        } catch {
            throw SandboxError(error.description)
        }
    }

    public var port: UInt16 { server.port }

    public func stop() { server.stop() }
}
