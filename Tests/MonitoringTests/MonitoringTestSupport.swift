// A temp journal, a controllable clock, a small reference calendar and catalog, and terse record builders.

import Foundation
import GatewayModel
import Journal
import Monitoring
import Supervision
import Testing

/// Reference data for the tests: the 2026 calendar (Spring Festival and National Day as the State Council's
/// notice has them) and two catalog items.
let referenceXML = """
    <?xml version="1.0" encoding="UTF-8"?>
    <pui:ReferenceData xmlns:pui="urn:cn-esup:pui:1" version="test-1">
      <pui:Calendar firstYear="2026" lastYear="2026">
        <pui:Day date="2026-01-01" kind="holiday"/><pui:Day date="2026-01-02" kind="holiday"/>
        <pui:Day date="2026-01-04" kind="workday"/>
        <pui:Day date="2026-02-14" kind="workday" name="Spring Festival"/>
        <pui:Day date="2026-02-16" kind="holiday"/><pui:Day date="2026-02-17" kind="holiday"/>
        <pui:Day date="2026-02-18" kind="holiday"/><pui:Day date="2026-02-19" kind="holiday"/>
        <pui:Day date="2026-02-20" kind="holiday"/><pui:Day date="2026-02-23" kind="holiday"/>
        <pui:Day date="2026-02-28" kind="workday"/>
        <pui:Day date="2026-09-20" kind="workday" name="National Day"/>
        <pui:Day date="2026-09-25" kind="holiday"/>
        <pui:Day date="2026-10-01" kind="holiday"/><pui:Day date="2026-10-02" kind="holiday"/>
        <pui:Day date="2026-10-05" kind="holiday"/><pui:Day date="2026-10-06" kind="holiday"/>
        <pui:Day date="2026-10-07" kind="holiday"/><pui:Day date="2026-10-10" kind="workday"/>
      </pui:Calendar>
      <pui:Item><pui:Code>XK0001</pui:Code><pui:Name>食品流通许可</pui:Name><pui:Kind>XK</pui:Kind>
        <pui:LegalLimit>20</pui:LegalLimit><pui:LegalUnit>W</pui:LegalUnit>
        <pui:PromisedLimit>10</pui:PromisedLimit><pui:PromisedUnit>W</pui:PromisedUnit></pui:Item>
      <pui:Item><pui:Code>XK0006</pui:Code><pui:Name>税务登记证核发</pui:Name><pui:Kind>XK</pui:Kind>
        <pui:LegalLimit>30</pui:LegalLimit><pui:LegalUnit>W</pui:LegalUnit>
        <pui:PromisedLimit>3</pui:PromisedLimit><pui:PromisedUnit>W</pui:PromisedUnit>
        <pui:Fee><pui:FeeCode>F000601</pui:FeeCode><pui:FeeName>工本费</pui:FeeName><pui:Standard>10.00</pui:Standard></pui:Fee></pui:Item>
    </pui:ReferenceData>
    """

let dept = "410103001"

func at(_ text: String) throws -> BeijingTime { try BeijingTime(parsing: text) }

/// The test's clock: `now` drives the engine, `ingestAt` the journal's ingested_at (XK08's "first seen").
final class TestClock: @unchecked Sendable {
    var now: BeijingTime
    var ingestAt: BeijingTime

    init(_ start: BeijingTime) {
        now = start
        ingestAt = start
    }

    var ingestDate: Date { Date(timeIntervalSince1970: Double(ingestAt.millisecondsSinceEpoch) / 1000) }
}

/// A temp folder with a journal file; removed when the fixture is released.
final class Fixture {
    let directory: String
    let clock: TestClock
    let schema: PUISchema
    let reference: ReferenceData
    let log = RecordingLogHandler()
    private(set) var journal: Journal
    private(set) var engine: SupervisionEngine

    init(start: String, reference: ReferenceData? = nil) throws {
        directory = NSTemporaryDirectory() + "monitoring-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        clock = TestClock(try at(start))
        schema = try PUISchema.shipped()
        if let reference {
            self.reference = reference
        } else {
            let file = directory + "/reference.xml"
            try referenceXML.write(toFile: file, atomically: true, encoding: .utf8)
            self.reference = try ReferenceData.load(file: file)
        }
        (journal, engine) = try Fixture.open(directory: directory, clock: clock, schema: schema, reference: self.reference, log: log)
    }

    private static func open(directory: String, clock: TestClock, schema: PUISchema, reference: ReferenceData,
                             log: RecordingLogHandler) throws -> (Journal, SupervisionEngine) {
        let journal = try Journal(path: directory + "/journal.sqlite", durable: false, now: { clock.ingestDate })
        let engine = try SupervisionEngine(journal: journal, reference: reference, schema: schema,
                                           logger: Logger(component: "test", minimum: .debug, handler: log),
                                           now: { clock.now })
        return (journal, engine)
    }

    /// A new process: fresh connections and a fresh engine on the same files.
    func restart() throws {
        (journal, engine) = try Fixture.open(directory: directory, clock: clock, schema: schema, reference: reference, log: log)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// Validates and appends a record as an adapter would, first seen at `seen` (default: the event time + 1 h).
    @discardableResult
    func append(_ type: String, _ fields: KeyValuePairs<String, String>, seen: String? = nil) throws -> AppendOutcome {
        var draft = DraftRecord(type: type)
        for (path, value) in fields { draft[path] = value }
        switch schema.normalize(draft) {
        case .failure(let error): throw error
        case .success(let record):
            if let seen { clock.ingestAt = try at(seen) }
            return try journal.append(record, source: "test", origin: nil, line: 0)
        }
    }

    /// Runs one pass at `time`.
    @discardableResult
    func pass(at time: String) throws -> PassSummary {
        clock.now = try at(time)
        return try engine.runPass()
    }

    func alerts(_ rule: String) throws -> [AlertRow] {
        try engine.alerts(AlertFilter(limit: 10_000)).filter { $0.rule == rule }
    }

    /// Journal entries of a type (all revisions), in order.
    func journalEntries(_ type: String) throws -> [JournalEntry] {
        try journal.entries(after: 0, limit: 100_000, types: [type])
    }
}

// MARK: - record builders (gen_cases-style approval case)

extension Fixture {
    func application(_ caseNo: String, item: String = "XK0001", appliedAt: String, seen: String? = nil) throws {
        try append("Application", [
            "CaseNo": caseNo, "ItemCode": item, "ItemName": "事项", "DeptCode": dept, "Applicant.Name": "张三",
            "Applicant.IdType": "02", "Applicant.IdNumber": "E12345678", "Channel": "1", "AppliedAt": appliedAt + "+08:00",
        ], seen: seen ?? appliedAt)
    }

    func acceptance(_ caseNo: String, acceptedAt: String, limit: Int, unit: String = "W", seen: String? = nil) throws {
        try append("Acceptance", [
            "CaseNo": caseNo, "DeptCode": dept, "Decision": "1", "Handler.Name": "李四",
            "AcceptedAt": acceptedAt + "+08:00", "PromisedLimit": String(limit), "PromisedUnit": unit,
            "LegalLimit": "20", "LegalUnit": "W",
        ], seen: seen ?? acceptedAt)
    }

    func completion(_ caseNo: String, completedAt: String, seen: String? = nil) throws {
        try append("Completion", [
            "CaseNo": caseNo, "Result": "1", "Handler.Name": "王五", "CompletedAt": completedAt + "+08:00",
        ], seen: seen ?? completedAt)
    }

    func step(_ caseNo: String, code: String = "02", handledAt: String, seen: String? = nil) throws {
        try append("Step", [
            "CaseNo": caseNo, "StepCode": code, "StepName": "承办", "Handler.Name": "赵六", "HandledAt": handledAt + "+08:00",
        ], seen: seen ?? handledAt)
    }

    func evaluation(_ id: String, rating: Int, ratedAt: String) throws {
        try append("Evaluation", [
            "EvaluationId": id, "DeptCode": dept, "Rating": String(rating), "Channel": "1", "RatedAt": ratedAt + "+08:00",
        ], seen: ratedAt)
    }
}
