// Shared helpers: the official calendar fixture (a copy of spec/reference/calendar-cn.csv), a small catalog, and
// terse constructors for dates and times used by the hand-computed tables.

import Foundation
import Testing
@testable import Supervision

/// A Beijing time from `YYYY-MM-DDTHH:MM:SS` (offset +08:00 implied, as for legacy local times).
func time(_ text: String) throws -> BeijingTime { try BeijingTime(parsing: text) }

/// A date from `YYYY-MM-DD`.
func day(_ text: String) throws -> CivilDate { try CivilDate(parsing: text) }

/// The real calendar 2010-2026 as shipped with the spec.
func officialCalendar() throws -> WorkingCalendar {
    let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent("calendar-cn.csv")
    let text = try String(contentsOf: fixture, encoding: .utf8)
    return try WorkingCalendar.parseCSV(text)
}

/// Catalog used by the rule tests (values in the style of spec/reference/reference-data.xml).
func testCatalog() throws -> ItemCatalog {
    ItemCatalog(items: [
        // XK0001: LegalLimit 20 W, PromisedLimit 10 W, one fee F0001 with standard 10.00.
        CatalogItem(code: "XK0001", kind: .licensing, legalLimit: 20, legalUnit: .workingDays, promisedLimit: 10,
                    promisedUnit: .workingDays, feeStandards: ["F0001": try Money(parsing: "10.00")]),
        // ZS0001: Rate 0.015, remit within 3 working days.
        CatalogItem(code: "ZS0001", kind: .levy, rate: try LevyRate(parsing: "0.015000"), remitLimit: 3),
        // ZS0002: Rate 0.05, to test rounding exactly half a fen.
        CatalogItem(code: "ZS0002", kind: .levy, rate: try LevyRate(parsing: "0.05"), remitLimit: 1),
        // CF0001: violation V0001 fined 2000.00..50000.00, decision within 90 natural days of filing.
        CatalogItem(code: "CF0001", kind: .penalty, decisionLimit: 90,
                    violations: ["V0001": FineRange(minimum: try Money(parsing: "2000.00"), maximum: try Money(parsing: "50000.00"))]),
    ])
}

func testRules(_ settings: SupervisionSettings = SupervisionSettings()) throws -> SupervisionRules {
    SupervisionRules(calendar: try officialCalendar(), catalog: try testCatalog(), settings: settings)
}

let testDept = "410103001"
