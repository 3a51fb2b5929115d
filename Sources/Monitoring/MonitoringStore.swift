// The engine's own tables, in the journal's database, on the journal's connection: facts, the timer index, the
// alert ledger, the audit log, score inputs. Migrations are additive and idempotent.

import SQLiteSupport

/// Prepared statements and the schema of the supervision tables. Not Sendable (one connection).
final class MonitoringStore {
    let database: SQLiteDatabase
    private var statements: [String: SQLiteStatement] = [:]

    static let schemaVersion = 1

    init(database: SQLiteDatabase) throws(MonitoringError) {
        self.database = database
        try storage("migrate supervision tables") { try migrate() }
    }

    /// One transaction: the supervision opens its tables while the adapters and the uplink open the journal,
    /// and none of them must see half of them.
    private func migrate() throws {
        try database.transaction { try createTables() }
    }

    private func createTables() throws {
        try database.execute("""
            CREATE TABLE IF NOT EXISTS sv_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT OR IGNORE INTO sv_meta(key, value) VALUES ('schema_version', '\(Self.schemaVersion)');
            -- Latest revision of every consumed record, fields flattened (name US value US ...), grouped by subject.
            CREATE TABLE IF NOT EXISTS sv_record(
                record_type TEXT NOT NULL, record_key TEXT NOT NULL,
                subject_kind TEXT NOT NULL, subject_key TEXT NOT NULL,
                rev INTEGER NOT NULL, fields TEXT NOT NULL, event_at INTEGER, first_seen_at INTEGER NOT NULL,
                PRIMARY KEY(record_type, record_key)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS sv_record_subject ON sv_record(subject_kind, subject_key);
            -- Timer index: when each subject must be evaluated next (0: it changed, evaluate at the next pass).
            -- A subject with nothing pending has no row, so a tick reads only what is due.
            CREATE TABLE IF NOT EXISTS sv_schedule(
                subject_kind TEXT NOT NULL, subject_key TEXT NOT NULL, due_at INTEGER NOT NULL,
                PRIMARY KEY(subject_kind, subject_key)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS sv_schedule_due ON sv_schedule(due_at);
            -- Camera offline spells (SP01 episodes); settled once closed and evaluated.
            CREATE TABLE IF NOT EXISTS sv_camera_spell(
                camera_code TEXT NOT NULL, offline_since INTEGER NOT NULL, back_online_at INTEGER, dept TEXT,
                settled INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(camera_code, offline_since)) WITHOUT ROWID;
            -- SP02: windows used by acceptances, and windows that have a camera.
            CREATE TABLE IF NOT EXISTS sv_window_use(
                dept TEXT NOT NULL, window_no TEXT NOT NULL, first_used_at INTEGER NOT NULL,
                PRIMARY KEY(dept, window_no)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS sv_window_use_no ON sv_window_use(window_no);
            CREATE TABLE IF NOT EXISTS sv_camera_window(
                window_no TEXT NOT NULL, camera_code TEXT NOT NULL, PRIMARY KEY(window_no, camera_code)) WITHOUT ROWID;
            -- Every alert ever raised (the at-most-once ledger, keyed by AlertId) with its current state and the
            -- subject whose evaluation raised it (watch_*), so that an operator action can re-arm that subject.
            CREATE TABLE IF NOT EXISTS sv_alert(
                alert_id TEXT PRIMARY KEY, rule TEXT NOT NULL, level TEXT NOT NULL, subject_type TEXT NOT NULL,
                subject_key TEXT NOT NULL, watch_kind TEXT NOT NULL, watch_key TEXT NOT NULL, dept TEXT NOT NULL,
                raised_at INTEGER NOT NULL, detail TEXT NOT NULL, response_due INTEGER, state TEXT NOT NULL,
                state_at INTEGER NOT NULL, explanation TEXT, rev INTEGER NOT NULL, done_at INTEGER);
            CREATE INDEX IF NOT EXISTS sv_alert_state ON sv_alert(state, raised_at);
            CREATE INDEX IF NOT EXISTS sv_alert_dept ON sv_alert(dept, raised_at);
            CREATE INDEX IF NOT EXISTS sv_alert_watch ON sv_alert(watch_kind, watch_key);
            -- Who did what to which alert, and when (raises by the engine included).
            CREATE TABLE IF NOT EXISTS sv_alert_audit(
                id INTEGER PRIMARY KEY, alert_id TEXT NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL,
                note TEXT, from_state TEXT, to_state TEXT NOT NULL, at INTEGER NOT NULL, rev INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS sv_alert_audit_alert ON sv_alert_audit(alert_id, id);
            -- Per approval case: what statistics and scores need, refreshed at every evaluation of the case.
            CREATE TABLE IF NOT EXISTS sv_case(
                case_no TEXT PRIMARY KEY, dept TEXT NOT NULL, item TEXT, accepted_at INTEGER, completed_at INTEGER,
                deadline INTEGER, overdue INTEGER NOT NULL DEFAULT 0, early INTEGER NOT NULL DEFAULT 0,
                days_used INTEGER, fees_fen INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
            -- Score inputs by event time: completion (value: 1 overdue | 2 early), evaluation (value: rating),
            -- complaint (closed and substantiated).
            CREATE TABLE IF NOT EXISTS sv_score_event(
                kind TEXT NOT NULL, subject_key TEXT NOT NULL, dept TEXT NOT NULL, at INTEGER NOT NULL,
                value INTEGER NOT NULL, PRIMARY KEY(kind, subject_key)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS sv_score_event_dept ON sv_score_event(dept, kind, at);
            CREATE TABLE IF NOT EXISTS sv_score_dirty(period TEXT NOT NULL, dept TEXT NOT NULL,
                PRIMARY KEY(period, dept)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS sv_score(
                period TEXT NOT NULL, dept TEXT NOT NULL, cases_completed INTEGER NOT NULL,
                completed_on_time INTEGER NOT NULL, completed_early INTEGER NOT NULL, on_time_rate TEXT NOT NULL,
                prompts INTEGER NOT NULL, yellow_cards INTEGER NOT NULL, red_cards INTEGER NOT NULL,
                complaints_substantiated INTEGER NOT NULL, evaluations INTEGER NOT NULL,
                evaluations_dissatisfied INTEGER NOT NULL, satisfaction_rate TEXT NOT NULL,
                late_reports INTEGER NOT NULL, total INTEGER NOT NULL, grade TEXT NOT NULL, rev INTEGER NOT NULL,
                PRIMARY KEY(period, dept)) WITHOUT ROWID;
            -- Calendar gaps (operational warnings): re-armed when the reference data version changes.
            CREATE TABLE IF NOT EXISTS sv_gap(
                watch_kind TEXT NOT NULL, watch_key TEXT NOT NULL, rule TEXT NOT NULL, detail TEXT NOT NULL,
                noted_at INTEGER NOT NULL, PRIMARY KEY(watch_kind, watch_key, rule)) WITHOUT ROWID;
            """)
    }

    /// A cached prepared statement.
    func statement(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        if let cached = statements[sql] { return cached }
        let prepared = try database.prepare(sql)
        statements[sql] = prepared
        return prepared
    }

    /// Runs a write statement.
    func run(_ sql: String, _ values: [SQLiteValue]) throws(SQLiteError) {
        try statement(sql).run(values)
    }

    /// Rows of a query, read with `row` while the statement is positioned.
    func rows<T>(_ sql: String, _ values: [SQLiteValue], _ row: (SQLiteStatement) throws -> T) throws -> [T] {
        let prepared = try statement(sql)
        try prepared.bind(values)
        defer { prepared.reset() }
        var result: [T] = []
        while try prepared.step() { result.append(try row(prepared)) }
        return result
    }

    func meta(_ key: String) throws(SQLiteError) -> String? {
        try database.query("SELECT value FROM sv_meta WHERE key = ?1", [.text(key)]).first?.first?.textValue
    }

    func setMeta(_ key: String, _ value: String) throws(SQLiteError) {
        try run("INSERT INTO sv_meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [.text(key), .text(value)])
    }

    /// Marks a subject for evaluation at `dueAt` (milliseconds), keeping an earlier due time.
    func schedule(_ subject: SubjectRef, dueAt: Int64) throws(SQLiteError) {
        try run("""
            INSERT INTO sv_schedule(subject_kind, subject_key, due_at) VALUES (?1, ?2, ?3)
            ON CONFLICT(subject_kind, subject_key) DO UPDATE SET due_at = min(due_at, excluded.due_at)
            """, [.text(subject.kind.rawValue), .text(subject.key), .integer(dueAt)])
    }

    /// Replaces a subject's due time (after its evaluation): `nil` removes it from the index.
    func reschedule(_ subject: SubjectRef, dueAt: Int64?) throws(SQLiteError) {
        if let dueAt {
            try run("""
                INSERT INTO sv_schedule(subject_kind, subject_key, due_at) VALUES (?1, ?2, ?3)
                ON CONFLICT(subject_kind, subject_key) DO UPDATE SET due_at = excluded.due_at
                """, [.text(subject.kind.rawValue), .text(subject.key), .integer(dueAt)])
        } else {
            try run("DELETE FROM sv_schedule WHERE subject_kind = ?1 AND subject_key = ?2",
                    [.text(subject.kind.rawValue), .text(subject.key)])
        }
    }

    func markScoreDirty(period: String, dept: String) throws(SQLiteError) {
        try run("INSERT OR IGNORE INTO sv_score_dirty(period, dept) VALUES (?1, ?2)", [.text(period), .text(dept)])
    }
}
