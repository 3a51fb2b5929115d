import Foundation
import GatewayModel
import HTTPClientSupport
import XMLSupport

/// The province's reference data (spec §4) as plain Swift values: working calendar and item catalog.
public struct ReferenceData: Sendable, Equatable {
    public struct CalendarDay: Sendable, Equatable {
        public enum Kind: String, Sendable { case holiday, workday }
        /// `YYYY-MM-DD`.
        public var date: String
        public var kind: Kind
        public var name: String?
    }

    public struct Calendar: Sendable, Equatable {
        public var firstYear: Int
        public var lastYear: Int
        /// Exceptions to the Monday-Friday week.
        public var days: [CalendarDay]
    }

    public struct Fee: Sendable, Equatable {
        public var code: String
        public var name: String
        /// Yuan, decimal text as in the file (e.g. "10.00").
        public var standard: String
    }

    public struct Violation: Sendable, Equatable {
        public var code: String
        public var name: String
        public var fineMin: String
        public var fineMax: String
    }

    public struct Item: Sendable, Equatable {
        public enum Kind: String, Sendable { case licensing = "XK", levy = "ZS", penalty = "CF" }
        public var code: String
        public var name: String
        public var kind: Kind
        public var deptCodes: [String]
        public var legalLimit: Int?
        public var legalUnit: String?
        public var promisedLimit: Int?
        public var promisedUnit: String?
        public var fees: [Fee]
        public var rate: String?
        public var remitLimit: Int?
        public var decisionLimit: Int?
        public var violations: [Violation]
    }

    public var version: String
    public var calendar: Calendar
    public var items: [Item]

    /// Every item code, fee code and violation code of the catalog (R201 checks).
    public var catalogCodes: (items: Set<String>, fees: Set<String>, violations: Set<String>) {
        (Set(items.map(\.code)), Set(items.flatMap { $0.fees.map(\.code) }), Set(items.flatMap { $0.violations.map(\.code) }))
    }

    /// Every department code that appears in the catalog (R202 checks).
    public var departments: Set<String> { Set(items.flatMap(\.deptCodes)) }
}

/// Why reference data could not be used.
public struct ReferenceDataError: Error, CustomStringConvertible, Sendable {
    public let source: String
    public let message: String
    public init(source: String, message: String) {
        self.source = source
        self.message = message
    }
    public var description: String { "reference data (\(source)): \(message)" }
}

extension ReferenceData {
    /// Parses and schema-validates a standalone `pui:ReferenceData` document.
    public static func parse(_ bytes: [UInt8], source: String, validator: XMLSchemaValidator? = nil) throws(ReferenceDataError) -> ReferenceData {
        let document: XMLDocument
        do { document = try XMLDocument(bytes: bytes, url: source) } catch {
            throw ReferenceDataError(source: source, message: "not well-formed: \(error)")
        }
        if let validator {
            let errors = validator.validate(document)
            if let first = errors.first {
                throw ReferenceDataError(source: source, message: "not valid against pui-v1.xsd: \(first) (\(errors.count) error(s))")
            }
        }
        guard let root = document.root, root.name == "ReferenceData", root.namespace == puiNamespace else {
            throw ReferenceDataError(source: source, message: "root element is not pui:ReferenceData")
        }
        return try from(root, source: source)
    }

    /// Converts a parsed `pui:ReferenceData` element.
    public static func from(_ root: XMLElement, source: String) throws(ReferenceDataError) -> ReferenceData {
        guard let version = root.attribute("version") else {
            throw ReferenceDataError(source: source, message: "ReferenceData has no version")
        }
        guard let calendarElement = root.child("Calendar"),
              let firstYear = calendarElement.attribute("firstYear").flatMap({ Int($0) }),
              let lastYear = calendarElement.attribute("lastYear").flatMap({ Int($0) }) else {
            throw ReferenceDataError(source: source, message: "Calendar with firstYear and lastYear is required")
        }
        var days: [CalendarDay] = []
        for day in calendarElement.children("Day") {
            guard let date = day.attribute("date"), let kind = day.attribute("kind").flatMap(CalendarDay.Kind.init) else {
                throw ReferenceDataError(source: source, message: "line \(day.line): Day needs date and kind (holiday|workday)")
            }
            days.append(CalendarDay(date: date, kind: kind, name: day.attribute("name")))
        }
        var items: [Item] = []
        for element in root.children("Item") {
            func text(_ name: String) -> String? { element.child(name)?.text.trimmingCharacters(in: .whitespacesAndNewlines) }
            guard let code = text("Code"), let name = text("Name"), let kind = text("Kind").flatMap(Item.Kind.init) else {
                throw ReferenceDataError(source: source, message: "line \(element.line): Item needs Code, Name and Kind")
            }
            let fees = element.children("Fee").map { fee in
                Fee(code: fee.child("FeeCode")?.text ?? "", name: fee.child("FeeName")?.text ?? "",
                    standard: fee.child("Standard")?.text ?? "")
            }
            let violations = element.children("Violation").map { v in
                Violation(code: v.child("ViolationCode")?.text ?? "", name: v.child("ViolationName")?.text ?? "",
                          fineMin: v.child("FineMin")?.text ?? "", fineMax: v.child("FineMax")?.text ?? "")
            }
            items.append(Item(code: code, name: name, kind: kind, deptCodes: element.children("DeptCode").map(\.text),
                              legalLimit: text("LegalLimit").flatMap { Int($0) }, legalUnit: text("LegalUnit"),
                              promisedLimit: text("PromisedLimit").flatMap { Int($0) }, promisedUnit: text("PromisedUnit"),
                              fees: fees, rate: text("Rate"), remitLimit: text("RemitLimit").flatMap { Int($0) },
                              decisionLimit: text("DecisionLimit").flatMap { Int($0) }, violations: violations))
        }
        return ReferenceData(version: version, calendar: Calendar(firstYear: firstYear, lastYear: lastYear, days: days), items: items)
    }

    /// Loads a file (a configured `reference_data`, or the last good copy).
    public static func load(file: String, validator: XMLSchemaValidator? = nil) throws(ReferenceDataError) -> ReferenceData {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ReferenceDataError(source: file, message: "cannot read the file")
        }
        return try parse(Array(data), source: file, validator: validator)
    }
}

/// Serializes an element tree in the pui namespace with the `pui:` prefix (used to store a fetched
/// ReferenceData as a standalone file). Foreign-namespace elements keep no prefix and are not expected.
func serializePUI(_ element: XMLElement, declareNamespace: Bool = true) -> String {
    let name = element.namespace == puiNamespace ? "pui:" + element.name : element.name
    var out = "<" + name
    if declareNamespace { out += " xmlns:pui=\"\(puiNamespace)\"" }
    for attribute in element.attributes { out += " \(attribute.name)=\"\(xmlEscape(attribute.value))\"" }
    out += ">"
    if element.children.isEmpty {
        out += xmlEscape(element.text)
    } else {
        out += "\n"
        for child in element.children { out += serializePUI(child, declareNamespace: false) + "\n" }
    }
    return out + "</" + name + ">"
}

/// Where the gateway gets its reference data: a configured file, or GetReferenceData with the last good copy
/// kept in the state directory (`reference-data.xml`).
public final class ReferenceDataSource: @unchecked Sendable {
    // `current` and `lastError` are guarded by `lock`: status readers and the refresh loop share them.
    private let lock = NSLock()
    private var storedCurrent: ReferenceData?
    private var storedLastError: String?

    public let configuredFile: String?
    public let cacheFile: String
    let validator: XMLSchemaValidator?
    let logger: Logger

    /// The outcome of the last GetReferenceData (`reference-data-fetch.json` beside the copy): the fetch runs in
    /// `esgate run`, and `esgate uplink status` is another process.
    public let fetchOutcomeFile: String

    /// What `fetchOutcomeFile` holds. Times are Beijing timestamps.
    public struct FetchOutcome: Sendable, Codable, Equatable {
        public var lastAttempt: String
        public var lastSuccess: String?
        public var error: String?
    }

    public init(configuredFile: String?, stateDirectory: String, validator: XMLSchemaValidator?, logger: Logger) {
        self.configuredFile = configuredFile
        self.cacheFile = (stateDirectory as NSString).appendingPathComponent("reference-data.xml")
        self.fetchOutcomeFile = (stateDirectory as NSString).appendingPathComponent("reference-data-fetch.json")
        self.validator = validator
        self.logger = logger
    }

    public var current: ReferenceData? { lock.withLock { storedCurrent } }
    public var lastError: String? { lock.withLock { storedLastError } }

    /// Loads the configured file or the cached copy (start-up; no network).
    @discardableResult
    public func loadLocal() -> ReferenceData? {
        let file = configuredFile ?? cacheFile
        guard configuredFile != nil || FileManager.default.fileExists(atPath: cacheFile) else { return nil }
        do {
            let data = try ReferenceData.load(file: file, validator: validator)
            lock.withLock { storedCurrent = data; storedLastError = nil }
            return data
        } catch {
            lock.withLock { storedLastError = error.description }
            logger.warning(error.description)
            return nil
        }
    }

    /// The last fetch's outcome as written by whichever process fetched (nil: never fetched, or a configured file).
    public func lastFetchOutcome() -> FetchOutcome? {
        guard configuredFile == nil, let data = FileManager.default.contents(atPath: fetchOutcomeFile) else { return nil }
        return try? JSONDecoder().decode(FetchOutcome.self, from: data)
    }

    private func recordFetchOutcome(error: String?) {
        let now = beijingTimestamp(Date())
        let previous = lastFetchOutcome()
        let outcome = FetchOutcome(lastAttempt: now, lastSuccess: error == nil ? now : previous?.lastSuccess, error: error)
        do {
            try FileManager.default.createDirectory(atPath: (fetchOutcomeFile as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try JSONEncoder().encode(outcome).write(to: URL(fileURLWithPath: fetchOutcomeFile), options: .atomic)
        } catch {
            logger.warning("cannot store the reference data fetch outcome in \(fetchOutcomeFile): \(error)")
        }
    }

    /// GetReferenceData(Division, KnownVersion) from a receiver. A configured file wins: nothing is fetched.
    /// On success the new copy replaces the cache file atomically; on failure the last good copy stays in use.
    /// Either way the outcome is kept in `fetchOutcomeFile` for status.
    @discardableResult
    public func refresh(client: HTTPClient, url: String, division: String) async -> ReferenceData? {
        if configuredFile != nil { return current ?? loadLocal() }
        if current == nil { loadLocal() }
        let data = await fetch(client: client, url: url, division: division)
        recordFetchOutcome(error: lastError)
        return data
    }

    private func fetch(client: HTTPClient, url: String, division: String) async -> ReferenceData? {
        let known = current?.version
        let request = HTTPRequest.post(url, headers: PUIWire.headers(action: PUIWire.referenceDataAction),
                                       body: PUIWire.referenceDataRequest(division: division, knownVersion: known))
        do {
            let response = try await client.send(request)
            guard response.status == 200 else {
                // A SOAP fault says why (E102 for a certificate the province does not know, …): keep its words.
                // Anything else (a SOAP 1.2 fault, an application server's HTML page) is described, not dropped.
                let fault = PUIWire.parseFault(response.body).map { fault in
                    ": \(fault.code ?? "soap:\(fault.faultCode)") \(fault.message.isEmpty ? fault.faultString : fault.message)"
                } ?? ": \(PUIWire.describeUnexpectedBody(response.body))"
                throw ReferenceDataError(source: url, message: "HTTP \(response.status)\(fault)")
            }
            let root: XMLElement?
            do { root = try XMLDocument(bytes: response.body, url: "reference-response.xml").root } catch {
                throw ReferenceDataError(source: url, message: "response not well-formed: \(error)")
            }
            guard let root, let wrapper = PUIWire.find(root, "GetReferenceDataResponse") else {
                throw ReferenceDataError(source: url, message: "no GetReferenceDataResponse in the answer")
            }
            lock.withLock { storedLastError = nil }
            guard let element = wrapper.child("ReferenceData") else {
                logger.info("reference data \(known ?? "-") is current")
                return current
            }
            let text = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + serializePUI(element) + "\n"
            let data = try ReferenceData.parse(Array(text.utf8), source: url, validator: validator)
            try? FileManager.default.createDirectory(atPath: (cacheFile as NSString).deletingLastPathComponent,
                                                     withIntermediateDirectories: true)
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: cacheFile), options: .atomic)
            } catch {
                logger.warning("cannot store reference data in \(cacheFile): \(error)")
            }
            lock.withLock { storedCurrent = data }
            logger.info("reference data version \(data.version) (\(data.items.count) items, calendar \(data.calendar.firstYear)-\(data.calendar.lastYear))")
            return data
        } catch let error as ReferenceDataError {
            lock.withLock { storedLastError = error.description }
            logger.warning("\(error); using \(known.map { "version \($0)" } ?? "no reference data")")
        } catch {
            lock.withLock { storedLastError = "\(error)" }
            logger.warning("reference data fetch from \(url) failed: \(error); using \(known.map { "version \($0)" } ?? "no reference data")")
        }
        return current
    }
}
