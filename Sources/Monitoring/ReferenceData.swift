// The province's ReferenceData (calendar and item catalog), read from a file with XMLSupport.
//
// pui-v1.md section 4: a gateway MUST NOT guess a calendar. Without reference data the engine runs with a calendar
// that covers no date at all, so every deadline question becomes a calendar-gap warning instead of a guess.

import Foundation
import Supervision
import XMLSupport

/// Calendar and catalog the rules run on, with where they came from.
public struct ReferenceData: Sendable {
    public let version: String
    public let calendar: WorkingCalendar
    public let catalog: ItemCatalog
    /// False when no usable reference data was found: no deadlines are computed.
    public let hasCalendar: Bool

    public init(version: String, calendar: WorkingCalendar, catalog: ItemCatalog, hasCalendar: Bool = true) {
        self.version = version
        self.calendar = calendar
        self.catalog = catalog
        self.hasCalendar = hasCalendar
    }

    /// No reference data: a calendar covering only the year 1 (so every real date is a gap) and an empty catalog.
    public static func none() throws(MonitoringError) -> ReferenceData {
        do {
            // Year 1 is a valid range for WorkingCalendar and no PUI time can fall in it.
            let calendar = try WorkingCalendar(firstYear: 1, lastYear: 1, days: [])
            return ReferenceData(version: "none", calendar: calendar, catalog: ItemCatalog(items: []), hasCalendar: false)
        } catch {
            throw .referenceData(file: "(none)", line: 0, message: "cannot build the empty calendar: \(error)")
        }
    }

    /// Reads a `ReferenceData` XML file.
    public static func load(file: String) throws(MonitoringError) -> ReferenceData {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw .referenceData(file: file, line: 0, message: "cannot read the file")
        }
        let document: XMLDocument
        do {
            document = try XMLDocument(bytes: [UInt8](data), url: file)
        } catch {
            throw .referenceData(file: file, line: error.line, message: error.message)
        }
        guard let root = document.root, root.name == "ReferenceData" else {
            throw .referenceData(file: file, line: 1, message: "the root element is not ReferenceData")
        }
        return try parse(root, file: file)
    }

    /// Builds calendar and catalog from a parsed `ReferenceData` element.
    public static func parse(_ root: XMLElement, file: String) throws(MonitoringError) -> ReferenceData {
        let version = root.attribute("version") ?? ""
        guard let calendarElement = root.child("Calendar") else {
            throw .referenceData(file: file, line: root.line, message: "no Calendar element")
        }
        guard let firstText = calendarElement.attribute("firstYear"), let firstYear = Int(firstText),
              let lastText = calendarElement.attribute("lastYear"), let lastYear = Int(lastText) else {
            throw .referenceData(file: file, line: calendarElement.line, message: "Calendar needs integer firstYear and lastYear")
        }
        var days: [CalendarDay] = []
        for element in calendarElement.children("Day") {
            guard let dateText = element.attribute("date"), let kindText = element.attribute("kind"),
                  let kind = CalendarDayKind(rawValue: kindText) else {
                throw .referenceData(file: file, line: element.line, message: "Day needs date and kind holiday|workday")
            }
            let date: CivilDate
            do {
                date = try CivilDate(parsing: dateText)
            } catch {
                throw .referenceData(file: file, line: element.line, message: "Day date '\(dateText)' is not YYYY-MM-DD")
            }
            days.append(CalendarDay(date: date, kind: kind, name: element.attribute("name")))
        }
        let calendar: WorkingCalendar
        do {
            calendar = try WorkingCalendar(firstYear: firstYear, lastYear: lastYear, days: days)
        } catch {
            throw .referenceData(file: file, line: calendarElement.line, message: "calendar: \(error)")
        }
        var items: [CatalogItem] = []
        for element in root.children("Item") {
            items.append(try item(element, file: file))
        }
        return ReferenceData(version: version, calendar: calendar, catalog: ItemCatalog(items: items))
    }

    private static func item(_ element: XMLElement, file: String) throws(MonitoringError) -> CatalogItem {
        func text(_ name: String) -> String? {
            element.child(name).map { $0.text.trimmingCharacters(in: .whitespacesAndNewlines) }
        }
        func fail(_ message: String) -> MonitoringError {
            .referenceData(file: file, line: element.line, message: "Item \(text("Code") ?? "?"): \(message)")
        }
        guard let code = text("Code"), !code.isEmpty else { throw fail("no Code") }
        guard let kind = text("Kind").flatMap(CatalogItem.Kind.init(rawValue:)) else { throw fail("Kind is not XK, ZS or CF") }
        func days(_ name: String) throws(MonitoringError) -> Int? {
            guard let value = text(name) else { return nil }
            guard let number = Int(value), number >= 0 else { throw fail("\(name) '\(value)' is not a number of days") }
            return number
        }
        func unit(_ name: String) throws(MonitoringError) -> LimitUnit? {
            guard let value = text(name) else { return nil }
            guard let unit = LimitUnit(rawValue: value) else { throw fail("\(name) '\(value)' is not W or N") }
            return unit
        }
        func money(_ value: String, _ what: String) throws(MonitoringError) -> Money {
            do { return try Money(parsing: value) } catch { throw fail("\(what) '\(value)' is not an amount") }
        }
        var fees: [String: Money] = [:]
        for fee in element.children("Fee") {
            guard let feeCode = fee.child("FeeCode")?.text, let standard = fee.child("Standard")?.text else {
                throw fail("Fee needs FeeCode and Standard")
            }
            fees[feeCode] = try money(standard, "Fee \(feeCode) Standard")
        }
        var violations: [String: FineRange] = [:]
        for violation in element.children("Violation") {
            guard let violationCode = violation.child("ViolationCode")?.text,
                  let minimum = violation.child("FineMin")?.text, let maximum = violation.child("FineMax")?.text else {
                throw fail("Violation needs ViolationCode, FineMin and FineMax")
            }
            violations[violationCode] = FineRange(minimum: try money(minimum, "FineMin"), maximum: try money(maximum, "FineMax"))
        }
        var rate: LevyRate?
        if let rateText = text("Rate") {
            do { rate = try LevyRate(parsing: rateText) } catch { throw fail("Rate '\(rateText)' is not a decimal") }
        }
        return CatalogItem(
            code: code, kind: kind, legalLimit: try days("LegalLimit"), legalUnit: try unit("LegalUnit"),
            promisedLimit: try days("PromisedLimit"), promisedUnit: try unit("PromisedUnit"), feeStandards: fees,
            rate: rate, remitLimit: try days("RemitLimit"), decisionLimit: try days("DecisionLimit"), violations: violations)
    }
}
