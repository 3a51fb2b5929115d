// The supervision engine: consumes the journal (cursor "supervision") into per-subject facts, evaluates only the
// subjects that changed or whose timer is due, raises each alert at most once (the ledger survives restarts),
// appends alerts and scores to the journal as PUI records, and keeps score inputs up to date.
//
// Everything runs on the journal's own connection, so facts, alerts, journal records and the cursor commit
// together: a crash replays the uncommitted batch and produces the same outcome.

import Foundation
import GatewayModel
import Journal
import SQLiteSupport
import Supervision

/// What one supervision pass did.
public struct PassSummary: Sendable, Codable, Equatable {
    /// Journal records read past the cursor (own Alert/Score records included, and skipped).
    public var consumed = 0
    /// Records whose body could not be read as a PUI record (logged; the cursor moves on).
    public var unreadable = 0
    /// Subjects evaluated (changed or due).
    public var evaluated = 0
    public var alertsRaised = 0
    public var alertsResolved = 0
    /// Score records appended (new or changed).
    public var scoresUpdated = 0
    /// Rule evaluations that met a date outside the calendar (operational warnings).
    public var calendarGaps = 0
    public var seconds = 0.0

    public init() {}
}

/// The supervision engine over one journal. Not Sendable: it owns the journal connection; use it from one task.
public final class SupervisionEngine {
    /// The journal consumer name of the engine's cursor.
    public static let consumerName = "supervision"
    /// The `source` of the Alert and Score records the engine appends.
    public static let recordSource = "supervision"

    public let journal: Journal
    public let reference: ReferenceData
    public let rules: SupervisionRules
    let store: MonitoringStore
    let schema: PUISchema
    let logger: Logger
    let now: () -> BeijingTime
    /// Journal records per consume transaction, and subjects per evaluation transaction.
    public var batchSize = 1000

    private var summary = PassSummary()
    private var gapExample: String?

    func noteScoreUpdated() throws { summary.scoresUpdated += 1 }

    /// The wall clock, as a Beijing time.
    public static func systemNow() -> BeijingTime {
        BeijingTime(millisecondsSinceEpoch: Int64((Date().timeIntervalSince1970 * 1000).rounded()))
    }

    public init(journal: Journal, reference: ReferenceData, settings: SupervisionSettings = SupervisionSettings(),
                schema: PUISchema, logger: Logger = .silent,
                now: @escaping () -> BeijingTime = SupervisionEngine.systemNow) throws(MonitoringError) {
        self.journal = journal
        self.reference = reference
        self.rules = SupervisionRules(calendar: reference.calendar, catalog: reference.catalog, settings: settings)
        self.schema = schema
        self.logger = logger
        self.now = now
        store = try MonitoringStore(database: journal.connection)
        if !reference.hasCalendar {
            logger.warning("supervision: no reference data with a calendar (no reference_data file in gateway.yaml and no copy fetched from a receiver yet, or a file without one): no deadline is computed and every deadline rule reports a calendar gap until one is loaded (pui-v1.md section 4)")
        }
        try rearmCalendarGapsIfReferenceChanged()
    }

    /// When the reference data version changed (e.g. next year's calendar arrived), every subject that met a
    /// calendar gap is evaluated again.
    private func rearmCalendarGapsIfReferenceChanged() throws(MonitoringError) {
        try transaction("re-arm calendar gaps") {
            let known = try store.meta("reference_version")
            guard known != reference.version else { return }
            try store.database.execute("""
                INSERT INTO sv_schedule(subject_kind, subject_key, due_at)
                SELECT DISTINCT watch_kind, watch_key, 0 FROM sv_gap WHERE true
                ON CONFLICT(subject_kind, subject_key) DO UPDATE SET due_at = 0;
                DELETE FROM sv_gap;
                """)
            try store.setMeta("reference_version", reference.version)
        }
    }

    // MARK: - the pass

    /// One pass: consume new journal records, evaluate every subject that changed or is due at `now()`, then
    /// recompute the scores whose inputs changed.
    @discardableResult
    public func runPass() throws(MonitoringError) -> PassSummary {
        let started = Date()
        summary = PassSummary()
        gapExample = nil
        try consume()
        try evaluateDue(asOf: now())
        try recomputeScores()
        // Step the cursor over the Alert and Score records this pass appended, so its lag shows only real work.
        try consume()
        summary.seconds = Date().timeIntervalSince(started)
        if summary.calendarGaps > 0 {
            logger.warning("supervision: \(summary.calendarGaps) rule evaluation(s) met dates outside the reference calendar \(reference.hasCalendar ? "\(rules.calendar.firstYear)-\(rules.calendar.lastYear)" : "(none loaded)"); no deadline computed for them, e.g. \(gapExample ?? "?")")
        }
        if summary.alertsRaised > 0 || summary.scoresUpdated > 0 || summary.unreadable > 0 {
            logger.info("supervision: \(summary.consumed) records consumed, \(summary.evaluated) subjects evaluated, \(summary.alertsRaised) alerts raised, \(summary.alertsResolved) resolved, \(summary.scoresUpdated) scores updated")
        }
        return summary
    }

    /// The earliest due time in the timer index (for the run loop's sleep), nil when nothing is scheduled.
    public func nextDueAt() throws(MonitoringError) -> BeijingTime? {
        try storage("read timer index") {
            try store.database.query("SELECT min(due_at) FROM sv_schedule").first?.first?.intValue
                .map(BeijingTime.init(millisecondsSinceEpoch:))
        }
    }

    /// Number of subjects in the timer index (pending evaluations and armed timers).
    public func scheduledCount() throws(MonitoringError) -> Int {
        try storage("count timer index") {
            Int(try store.database.query("SELECT count(*) FROM sv_schedule").first?.first?.intValue ?? 0)
        }
    }

    // MARK: - consuming the journal

    private func consume() throws(MonitoringError) {
        while true {
            let entries: [JournalEntry]
            do {
                entries = try journal.entries(after: try journal.cursor(Self.consumerName), limit: batchSize)
            } catch {
                throw .journal(error)
            }
            guard let last = entries.last else { return }
            try transaction("consume journal records") {
                for entry in entries { try consume(entry) }
                try journal.advanceCursor(Self.consumerName, to: last.seq)
            }
            summary.consumed += entries.count
            if entries.count < batchSize { return }
        }
    }

    private func consume(_ entry: JournalEntry) throws {
        guard let routing = RecordRouting.byType[entry.type] else { return }  // Alert, Score: our own output
        var fields: [String: String]
        do {
            fields = try RecordBody.fields(of: entry.body).fields
        } catch {
            summary.unreadable += 1
            logger.error("supervision: journal seq \(entry.seq) (\(entry.type)) has an unreadable body: \(error); skipped")
            return
        }
        guard let subjectKey = fields[routing.subjectField], !subjectKey.isEmpty else {
            summary.unreadable += 1
            logger.error("supervision: journal seq \(entry.seq) (\(entry.type)) has no \(routing.subjectField); skipped")
            return
        }
        let subject = SubjectRef(kind: routing.subject, key: subjectKey)
        let previous = try store.rows(
            "SELECT rev, fields, first_seen_at FROM sv_record WHERE record_type = ?1 AND record_key = ?2",
            [.text(entry.type), .text(entry.key)]) { ($0.int(at: 0), $0.text(at: 1), $0.int(at: 2)) }.first
        if let previous, previous.0 >= entry.rev { return }  // a revision already consumed
        if let previous {
            for (name, value) in RecordBody.decode(previous.1) where name.hasPrefix("@") { fields[name] = value }
        }
        let firstSeen = previous?.2 ?? Int64((entry.ingestedAt.timeIntervalSince1970 * 1000).rounded())

        switch entry.type {
        case "Complaint":
            // TS01 needs when the complaint first left State 10, which later revisions overwrite.
            if fields["State"] != "10", fields["@leftReceivedAt"] == nil, let stateAt = fields["StateAt"] {
                fields["@leftReceivedAt"] = stateAt
            }
        case "Camera":
            try consumeCameraStatus(fields)
        case "Acceptance":
            if let window = fields["WindowNo"], !window.isEmpty, let dept = fields["DeptCode"],
               let acceptedAt = time(fields["AcceptedAt"]) {
                try store.run("""
                    INSERT INTO sv_window_use(dept, window_no, first_used_at) VALUES (?1, ?2, ?3)
                    ON CONFLICT(dept, window_no) DO UPDATE SET first_used_at = min(first_used_at, excluded.first_used_at)
                    """, [.text(dept), .text(window), .integer(acceptedAt.millisecondsSinceEpoch)])
                try store.schedule(SubjectRef(kind: .window, key: dept + "/" + window), dueAt: 0)
            }
        default:
            break
        }
        let eventAt = time(fields[routing.eventField])
        try store.run("""
            INSERT INTO sv_record(record_type, record_key, subject_kind, subject_key, rev, fields, event_at, first_seen_at)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
            ON CONFLICT(record_type, record_key) DO UPDATE SET subject_kind = excluded.subject_kind,
                subject_key = excluded.subject_key, rev = excluded.rev, fields = excluded.fields,
                event_at = excluded.event_at
            """, [.text(entry.type), .text(entry.key), .text(subject.kind.rawValue), .text(subject.key),
                  .integer(entry.rev), .text(RecordBody.encode(fields)),
                  eventAt.map { .integer($0.millisecondsSinceEpoch) } ?? .null, .integer(firstSeen)])
        try store.schedule(subject, dueAt: 0)
    }

    /// Turns a camera's status revisions into offline spells (SP01 episodes) and its window into coverage (SP02).
    private func consumeCameraStatus(_ fields: [String: String]) throws {
        guard let code = fields["CameraCode"], let statusAt = time(fields["StatusAt"]) else { return }
        if let window = fields["WindowNo"], !window.isEmpty {
            try store.run("INSERT OR IGNORE INTO sv_camera_window(window_no, camera_code) VALUES (?1, ?2)",
                          [.text(window), .text(code)])
            if store.database.changes > 0 {
                let depts = try store.rows("SELECT dept FROM sv_window_use WHERE window_no = ?1", [.text(window)]) { $0.text(at: 0) }
                for dept in depts { try store.schedule(SubjectRef(kind: .window, key: dept + "/" + window), dueAt: 0) }
            }
        }
        let openSince = try store.rows(
            "SELECT offline_since FROM sv_camera_spell WHERE camera_code = ?1 AND back_online_at IS NULL",
            [.text(code)]) { $0.int(at: 0) }.first
        let at = statusAt.millisecondsSinceEpoch
        if !boolean(fields["Online"]) {
            if openSince == nil {
                try store.run("""
                    INSERT OR IGNORE INTO sv_camera_spell(camera_code, offline_since, back_online_at, dept, settled)
                    VALUES (?1, ?2, NULL, ?3, 0)
                    """, [.text(code), .integer(at), .text(fields["DeptCode"] ?? "")])
            }
        } else if let openSince, at >= openSince {
            try store.run("UPDATE sv_camera_spell SET back_online_at = ?3 WHERE camera_code = ?1 AND offline_since = ?2",
                          [.text(code), .integer(openSince), .integer(at)])
        }
    }

    // MARK: - evaluating due subjects

    /// Evaluates every subject whose due time is at or before `asOf`, in batches, until none is left.
    public func evaluateDue(asOf: BeijingTime) throws(MonitoringError) {
        let limit = Int64(batchSize)
        while true {
            let due = try storage("read due subjects") {
                try store.rows("SELECT subject_kind, subject_key FROM sv_schedule WHERE due_at <= ?1 ORDER BY due_at LIMIT ?2",
                               [.integer(asOf.millisecondsSinceEpoch), .integer(limit)]) { ($0.text(at: 0), $0.text(at: 1)) }
            }
            if due.isEmpty { return }
            try transaction("evaluate due subjects") {
                for (kindText, key) in due {
                    guard let kind = SubjectKind(rawValue: kindText) else {
                        try store.run("DELETE FROM sv_schedule WHERE subject_kind = ?1 AND subject_key = ?2", [.text(kindText), .text(key)])
                        continue
                    }
                    let subject = SubjectRef(kind: kind, key: key)
                    let next = try evaluate(subject, asOf: asOf)
                    // A wake-up time is always after asOf; clamp defensively so a pass can never spin.
                    try store.reschedule(subject, dueAt: next.map { max($0.millisecondsSinceEpoch, asOf.millisecondsSinceEpoch + 1) })
                }
            }
            summary.evaluated += due.count
            if due.count < batchSize { return }
        }
    }

    func records(of subject: SubjectRef) throws -> [StoredRecord] {
        try store.rows("""
            SELECT record_type, record_key, rev, fields, first_seen_at FROM sv_record
            WHERE subject_kind = ?1 AND subject_key = ?2
            """, [.text(subject.kind.rawValue), .text(subject.key)]) {
            StoredRecord(type: $0.text(at: 0), key: $0.text(at: 1), rev: $0.int(at: 2), fields: RecordBody.decode($0.text(at: 3)),
                         firstSeenAt: BeijingTime(millisecondsSinceEpoch: $0.int(at: 4)))
        }
    }

    /// Evaluates one subject; returns when it must be evaluated again without a new record.
    private func evaluate(_ subject: SubjectRef, asOf: BeijingTime) throws -> BeijingTime? {
        let records = try records(of: subject)
        var result = RuleEvaluation()
        switch subject.kind {
        case .approvalCase:
            guard let facts = FactAssembly.approvalCase(subject.key, records: records) else { return nil }
            merge(rules.evaluateCase(facts, asOf: asOf), into: &result)
            lateReports(records, dept: facts.deptCode, into: &result)
            try updateCaseSummary(facts, asOf: asOf)
        case .levy:
            guard let facts = FactAssembly.levy(records) else { return nil }
            merge(rules.evaluateLevy(facts, asOf: asOf), into: &result)
            lateReports(records, dept: facts.deptCode, into: &result)
        case .penalty:
            guard let facts = FactAssembly.penalty(records) else { return nil }
            merge(rules.evaluatePenalty(facts, asOf: asOf), into: &result)
            lateReports(records, dept: facts.deptCode, into: &result)
        case .evaluation:
            guard let facts = FactAssembly.evaluation(records) else { return nil }
            merge(rules.evaluateRating(facts, asOf: asOf), into: &result)
            lateReports(records, dept: facts.deptCode, into: &result)
            try upsertScoreEvent("evaluation", key: facts.evaluationId, dept: facts.deptCode, at: facts.ratedAt,
                                 value: Int64(facts.rating))
            // PJ01 first (it may be raised right now), then PJ02 over the PJ01 alerts that exist.
            try apply(result, watch: subject, asOf: asOf)
            var followUps = RuleEvaluation()
            let pj01 = try store.rows("""
                SELECT alert_id, response_due, done_at FROM sv_alert
                WHERE watch_kind = 'evaluation' AND watch_key = ?1 AND rule = 'PJ01'
                """, [.text(subject.key)]) { row in
                (row.text(at: 0), row.isNull(at: 1) ? nil : row.int(at: 1), row.isNull(at: 2) ? nil : row.int(at: 2))
            }
            for (id, due, done) in pj01 {
                guard let due else { continue }
                merge(rules.evaluateBadRatingFollowUp(BadRatingFollowUpFacts(
                    pj01AlertId: AlertId(rawValue: id), evaluationId: facts.evaluationId, deptCode: facts.deptCode,
                    responseDue: BeijingTime(millisecondsSinceEpoch: due),
                    correctedOrClosedAt: done.map(BeijingTime.init(millisecondsSinceEpoch:))), asOf: asOf), into: &followUps)
            }
            try apply(followUps, watch: subject, asOf: asOf, clearGaps: false)
            return [result.nextCheckAt, followUps.nextCheckAt].compactMap { $0 }.min()
        case .complaint:
            guard let facts = FactAssembly.complaint(records) else { return nil }
            merge(rules.evaluateComplaint(facts, asOf: asOf), into: &result)
            lateReports(records, dept: facts.deptCode, into: &result)
            if facts.state == .closed, facts.substantiated == true {
                try upsertScoreEvent("complaint", key: facts.complaintNo, dept: facts.deptCode, at: facts.stateAt, value: 1)
            } else {
                try removeScoreEvent("complaint", key: facts.complaintNo)
            }
        case .camera:
            if let record = records.first(where: { $0.type == "Camera" }), let dept = record["DeptCode"] {
                lateReports(records, dept: dept, into: &result)
            }
            let spells = try store.rows("""
                SELECT offline_since, back_online_at, dept FROM sv_camera_spell WHERE camera_code = ?1 AND settled = 0
                """, [.text(subject.key)]) { ($0.int(at: 0), $0.isNull(at: 1) ? nil : $0.int(at: 1), $0.text(at: 2)) }
            for (since, back, dept) in spells {
                guard !dept.isEmpty else {
                    logger.warning("supervision: camera \(subject.key) has no DeptCode: SP01 cannot name a department")
                    continue
                }
                merge(rules.evaluateCameraOffline(CameraOfflineSpell(
                    cameraCode: subject.key, deptCode: dept, offlineSince: BeijingTime(millisecondsSinceEpoch: since),
                    backOnlineAt: back.map(BeijingTime.init(millisecondsSinceEpoch:))), asOf: asOf), into: &result)
                if back != nil {
                    try store.run("UPDATE sv_camera_spell SET settled = 1 WHERE camera_code = ?1 AND offline_since = ?2",
                                  [.text(subject.key), .integer(since)])
                }
            }
        case .window:
            guard let slash = subject.key.firstIndex(of: "/") else { return nil }
            let dept = String(subject.key[..<slash])
            let window = String(subject.key[subject.key.index(after: slash)...])
            guard let firstUsed = try store.rows("SELECT first_used_at FROM sv_window_use WHERE dept = ?1 AND window_no = ?2",
                                                 [.text(dept), .text(window)], { $0.int(at: 0) }).first else { return nil }
            let covered = try !store.rows("SELECT 1 FROM sv_camera_window WHERE window_no = ?1 LIMIT 1",
                                          [.text(window)], { $0.int(at: 0) }).isEmpty
            merge(rules.evaluateWindowCoverage(
                windowsInUse: [WindowUse(deptCode: dept, windowNo: window, firstUsedAt: BeijingTime(millisecondsSinceEpoch: firstUsed))],
                cameraWindowNos: covered ? [window] : [], asOf: asOf), into: &result)
        }
        try apply(result, watch: subject, asOf: asOf)
        return result.nextCheckAt
    }

    private func lateReports(_ records: [StoredRecord], dept: String, into result: inout RuleEvaluation) {
        for record in FactAssembly.reportedRecords(records, deptCode: dept) {
            merge(rules.evaluateLateReport(record), into: &result)
        }
    }

    private func merge(_ evaluation: RuleEvaluation, into result: inout RuleEvaluation) {
        result.alerts += evaluation.alerts
        result.calendarGaps += evaluation.calendarGaps
        result.clearedAlerts += evaluation.clearedAlerts
        if let next = evaluation.nextCheckAt { result.nextCheckAt = result.nextCheckAt.map { min($0, next) } ?? next }
    }

    /// Raises the new alerts, resolves cleared ones, and records calendar gaps of one subject's evaluation.
    private func apply(_ evaluation: RuleEvaluation, watch: SubjectRef, asOf: BeijingTime, clearGaps: Bool = true) throws {
        if clearGaps {
            try store.run("DELETE FROM sv_gap WHERE watch_kind = ?1 AND watch_key = ?2",
                          [.text(watch.kind.rawValue), .text(watch.key)])
        }
        for gap in evaluation.calendarGaps {
            let detail: String
            switch gap.gap {
            case .dateOutsideCalendar(let date, let first, let last):
                detail = "\(gap.rule.rawValue) \(gap.subjectKey): date \(date) "
                    + (reference.hasCalendar ? "outside the calendar \(first)-\(last)" : "with no calendar loaded")
            }
            try store.run("""
                INSERT OR REPLACE INTO sv_gap(watch_kind, watch_key, rule, detail, noted_at) VALUES (?1, ?2, ?3, ?4, ?5)
                """, [.text(watch.kind.rawValue), .text(watch.key), .text(gap.rule.rawValue), .text(detail),
                      .integer(asOf.millisecondsSinceEpoch)])
            summary.calendarGaps += 1
            if gapExample == nil { gapExample = detail }
        }
        for candidate in evaluation.alerts { try raise(candidate, watch: watch) }
        for id in evaluation.clearedAlerts { try resolve(id, asOf: asOf) }
    }

    // MARK: - alerts

    private func raise(_ candidate: AlertCandidate, watch: SubjectRef) throws {
        let known = try store.rows("SELECT 1 FROM sv_alert WHERE alert_id = ?1", [.text(candidate.id.rawValue)]) { $0.int(at: 0) }
        guard known.isEmpty else { return }
        let record = AlertRecord(raising: candidate)
        let rev: Int64
        do {
            rev = try appendAlert(record)
        } catch let error as MonitoringError {
            // Left unraised: the next evaluation of the subject tries again; the operator sees the log.
            logger.error("supervision: alert \(candidate.id) (\(candidate.rule.rawValue) on \(candidate.subjectKey)) not raised: \(error)")
            return
        }
        try store.run("""
            INSERT INTO sv_alert(alert_id, rule, level, subject_type, subject_key, watch_kind, watch_key, dept, raised_at,
                                 detail, response_due, state, state_at, explanation, rev, done_at)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, NULL, ?14, NULL)
            """, [.text(record.id.rawValue), .text(record.rule.rawValue), .text(record.level.rawValue),
                  .text(record.subjectType.rawValue), .text(record.subjectKey), .text(watch.kind.rawValue),
                  .text(watch.key), .text(record.deptCode), .integer(record.raisedAt.millisecondsSinceEpoch),
                  .text(record.detail), record.responseDue.map { .integer($0.millisecondsSinceEpoch) } ?? .null,
                  .text(record.state.rawValue), .integer(record.stateAt.millisecondsSinceEpoch), .integer(rev)])
        try audit(record.id, action: "raise", actor: "esgate", note: nil, from: nil, to: record.state, at: record.raisedAt, rev: rev)
        try store.markScoreDirty(period: Period(containing: record.raisedAt).description, dept: record.deptCode)
        summary.alertsRaised += 1
    }

    private func resolve(_ id: AlertId, asOf: BeijingTime) throws {
        guard let stored = try loadAlert(id.rawValue), stored.record.state == .open || stored.record.state == .acknowledged else { return }
        let resolved = try stored.record.applying(.resolve, at: max(asOf, stored.record.stateAt))
        try persist(resolved, from: stored.record.state, action: "resolve", actor: "esgate", note: nil)
        summary.alertsResolved += 1
    }

    /// Applies an operator's action (ack, correct, close) to an alert: new revision in the journal, audit entry,
    /// and the subject that raised it re-armed (PJ02 depends on when a PJ01 alert was corrected).
    @discardableResult
    public func act(on alertId: String, _ action: AlertAction, by actor: String, note: String?) throws(MonitoringError) -> AlertRecord {
        let trimmedActor = actor.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmedActor.isEmpty else { throw .invalidAction(message: "--by <who> must name the person acting") }
        if case .resolve = action { throw .invalidAction(message: "RESOLVED is set by the engine when a condition clears") }
        return try transaction("alert \(action.name) \(alertId)") {
            guard let stored = try loadAlert(alertId) else { throw MonitoringError.unknownAlert(id: alertId) }
            // An AlertTransitionError becomes MonitoringError.transition in `transaction`.
            let updated = try stored.record.applying(action, at: now())
            try persist(updated, from: stored.record.state, action: action.name, actor: trimmedActor, note: note)
            try store.schedule(stored.watch, dueAt: 0)
            return updated
        }
    }

    private func persist(_ record: AlertRecord, from previous: AlertState, action: String, actor: String, note: String?) throws {
        let rev = try appendAlert(record)
        let done = record.state == .corrected || record.state == .closed
        try store.run("""
            UPDATE sv_alert SET state = ?2, state_at = ?3, explanation = ?4, rev = ?5,
                done_at = CASE WHEN ?6 = 1 AND done_at IS NULL THEN ?3 ELSE done_at END
            WHERE alert_id = ?1
            """, [.text(record.id.rawValue), .text(record.state.rawValue), .integer(record.stateAt.millisecondsSinceEpoch),
                  record.explanation.map(SQLiteValue.text) ?? .null, .integer(rev), .integer(done ? 1 : 0)])
        try audit(record.id, action: action, actor: actor, note: note, from: previous, to: record.state, at: record.stateAt, rev: rev)
    }

    private func audit(_ id: AlertId, action: String, actor: String, note: String?, from: AlertState?, to: AlertState,
                       at: BeijingTime, rev: Int64) throws {
        try store.run("""
            INSERT INTO sv_alert_audit(alert_id, action, actor, note, from_state, to_state, at, rev)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
            """, [.text(id.rawValue), .text(action), .text(actor), note.map(SQLiteValue.text) ?? .null,
                  from.map { .text($0.rawValue) } ?? .null, .text(to.rawValue), .integer(at.millisecondsSinceEpoch),
                  .integer(rev)])
    }

    /// Validates the alert as a PUI record and appends it; returns the journal revision.
    private func appendAlert(_ record: AlertRecord) throws -> Int64 {
        var draft = DraftRecord(type: "Alert")
        draft["AlertId"] = record.id.rawValue
        draft["RuleCode"] = record.rule.rawValue
        draft["Level"] = record.level.rawValue
        draft["SubjectType"] = record.subjectType.rawValue
        draft["SubjectKey"] = record.subjectKey
        draft["DeptCode"] = record.deptCode
        draft["RaisedAt"] = record.raisedAt.description
        draft["Detail"] = record.detail
        draft["ResponseDue"] = record.responseDue?.description
        draft["State"] = record.state.rawValue
        draft["StateAt"] = record.stateAt.description
        draft["Explanation"] = record.explanation
        return try appendRecord(draft)
    }

    func appendRecord(_ draft: DraftRecord) throws -> Int64 {
        let normalized: NormalizedRecord
        switch schema.normalize(draft) {
        case .success(let record): normalized = record
        case .failure(let error):
            throw MonitoringError.invalidRecord(type: draft.type, key: draft.fields.first?.value ?? "?", field: error.field,
                                                message: error.message)
        }
        switch try journal.append(normalized, source: Self.recordSource, origin: nil, line: 0) {
        case .stored(let rev, _): return rev
        case .unchanged: return try journal.head(type: normalized.type, key: normalized.key)?.rev ?? 1
        }
    }

    /// An alert from the ledger, with the subject whose evaluation raised it.
    struct StoredAlert {
        var record: AlertRecord
        var watch: SubjectRef
        var doneAt: BeijingTime?
    }

    func loadAlert(_ id: String) throws -> StoredAlert? {
        try store.rows("""
            SELECT alert_id, rule, subject_type, subject_key, dept, raised_at, detail, response_due, state, state_at,
                   explanation, rev, watch_kind, watch_key, done_at
            FROM sv_alert WHERE alert_id = ?1
            """, [.text(id)]) { row throws -> StoredAlert in try Self.alert(from: row) }.first
    }

    static func alert(from row: SQLiteStatement) throws -> StoredAlert {
        let id = row.text(at: 0)
        guard let rule = RuleCode(rawValue: row.text(at: 1)), let subjectType = SubjectType(rawValue: row.text(at: 2)),
              let state = AlertState(rawValue: row.text(at: 8)), let watchKind = SubjectKind(rawValue: row.text(at: 12)) else {
            throw MonitoringError.storage(operation: "read alert \(id)", underlying: "unknown rule, subject type, state or subject kind in sv_alert")
        }
        let record = AlertRecord(
            id: AlertId(rawValue: id), rule: rule, subjectType: subjectType, subjectKey: row.text(at: 3),
            deptCode: row.text(at: 4), raisedAt: BeijingTime(millisecondsSinceEpoch: row.int(at: 5)), detail: row.text(at: 6),
            responseDue: row.isNull(at: 7) ? nil : BeijingTime(millisecondsSinceEpoch: row.int(at: 7)), state: state,
            stateAt: BeijingTime(millisecondsSinceEpoch: row.int(at: 9)), explanation: row.isNull(at: 10) ? nil : row.text(at: 10),
            revision: Int(row.int(at: 11)))
        return StoredAlert(record: record, watch: SubjectRef(kind: watchKind, key: row.text(at: 13)),
                           doneAt: row.isNull(at: 14) ? nil : BeijingTime(millisecondsSinceEpoch: row.int(at: 14)))
    }

    // MARK: - case summaries and score inputs

    private func updateCaseSummary(_ facts: ApprovalCaseFacts, asOf: BeijingTime) throws {
        var status: CaseClockStatus?
        if let input = facts.clockInput { status = try? CaseClock.status(of: input, calendar: rules.calendar, asOf: asOf) }
        var deadline: Int64?
        if case .due(_, let instant)? = status?.deadline { deadline = instant.millisecondsSinceEpoch }
        let accepted = facts.acceptance?.accepted == true ? facts.acceptance?.acceptedAt : nil
        let completedAt = facts.completion?.completedAt
        var daysUsed: Int64?
        if let accepted, let completedAt {
            daysUsed = workingDays(after: accepted.date, through: completedAt.date).map(Int64.init)
        }
        let fees = facts.fees.reduce(Int64(0)) { $0 + max(0, $1.amount.fen - $1.reduction.fen) }
        let overdue = status?.isOverdue ?? false
        let early = status?.isEarly ?? false
        try store.run("""
            INSERT OR REPLACE INTO sv_case(case_no, dept, item, accepted_at, completed_at, deadline, overdue, early, days_used, fees_fen)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
            """, [.text(facts.caseNo), .text(facts.deptCode), facts.itemCode.map(SQLiteValue.text) ?? .null,
                  accepted.map { .integer($0.millisecondsSinceEpoch) } ?? .null,
                  completedAt.map { .integer($0.millisecondsSinceEpoch) } ?? .null, deadline.map(SQLiteValue.integer) ?? .null,
                  .integer(overdue ? 1 : 0), .integer(early ? 1 : 0), daysUsed.map(SQLiteValue.integer) ?? .null, .integer(fees)])
        if let completedAt {
            try upsertScoreEvent("completion", key: facts.caseNo, dept: facts.deptCode, at: completedAt,
                                 value: (overdue ? 1 : 0) | (early ? 2 : 0))
        } else {
            try removeScoreEvent("completion", key: facts.caseNo)
        }
    }

    /// Working days after `start` up to and including `end`; nil when the calendar does not cover them.
    private func workingDays(after start: CivilDate, through end: CivilDate) -> Int? {
        guard end > start else { return 0 }
        var count = 0
        var day = start.adding(days: 1)
        while day <= end {
            guard let working = try? rules.calendar.isWorkingDay(day) else { return nil }
            if working { count += 1 }
            day = day.adding(days: 1)
        }
        return count
    }

    private func upsertScoreEvent(_ kind: String, key: String, dept: String, at: BeijingTime, value: Int64) throws {
        let old = try store.rows("SELECT dept, at, value FROM sv_score_event WHERE kind = ?1 AND subject_key = ?2",
                                 [.text(kind), .text(key)]) { ($0.text(at: 0), $0.int(at: 1), $0.int(at: 2)) }.first
        if let old, old.0 == dept, old.1 == at.millisecondsSinceEpoch, old.2 == value { return }
        try store.run("INSERT OR REPLACE INTO sv_score_event(kind, subject_key, dept, at, value) VALUES (?1, ?2, ?3, ?4, ?5)",
                      [.text(kind), .text(key), .text(dept), .integer(at.millisecondsSinceEpoch), .integer(value)])
        if let old {
            try store.markScoreDirty(period: Period(containing: BeijingTime(millisecondsSinceEpoch: old.1)).description, dept: old.0)
        }
        try store.markScoreDirty(period: Period(containing: at).description, dept: dept)
    }

    private func removeScoreEvent(_ kind: String, key: String) throws {
        let old = try store.rows("SELECT dept, at FROM sv_score_event WHERE kind = ?1 AND subject_key = ?2",
                                 [.text(kind), .text(key)]) { ($0.text(at: 0), $0.int(at: 1)) }.first
        guard let old else { return }
        try store.run("DELETE FROM sv_score_event WHERE kind = ?1 AND subject_key = ?2", [.text(kind), .text(key)])
        try store.markScoreDirty(period: Period(containing: BeijingTime(millisecondsSinceEpoch: old.1)).description, dept: old.0)
    }

    // MARK: - transactions

    /// Runs `body` in one journal transaction; any failure rolls everything back (facts, alerts, records, cursor).
    func transaction<T>(_ operation: String, _ body: () throws -> T) throws(MonitoringError) -> T {
        do {
            try journal.begin()
        } catch {
            throw .journal(error)
        }
        do {
            let result = try body()
            try journal.commit()
            return result
        } catch {
            journal.rollback()
            if let error = error as? MonitoringError { throw error }
            if let error = error as? JournalError { throw .journal(error) }
            if let error = error as? AlertTransitionError { throw .transition(error) }
            throw .storage(operation: operation, underlying: "\(error)")
        }
    }
}
