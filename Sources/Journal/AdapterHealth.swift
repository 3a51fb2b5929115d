import Foundation
import SQLiteSupport

/// How an adapter's polls have gone, kept in the journal so that `esgate adapter status` sees it from any process.
public struct AdapterHealth: Sendable, Codable, Equatable {
    public let adapter: String
    public let kind: String
    public let lastPollAt: Date?
    public let lastSuccessAt: Date?
    public let lastError: String?
    public let lastErrorAt: Date?
    public let consecutiveFailures: Int
    /// When the current run of failed polls began (nil while the last poll succeeded): "failing since".
    public let failingSince: Date?
    /// Source rows the last poll read (nil when it did not say), and all polls together.
    public let lastPollRows: Int?
    public let rowsRead: Int
    /// How far the adapter trails its source, in seconds, as of the last poll that could tell: for an ODBC
    /// incremental pull over a timestamp, the poll's time minus the watermark (the newest row's time), also when
    /// the poll failed (the watermark stays, so the lag grows while the database cannot be read).
    public let lagSeconds: Double?
}

/// What one poll did, for `Journal.recordPoll`.
public struct PollOutcome: Sendable {
    /// nil for a successful poll.
    public var error: String?
    /// Source rows read by the poll, when the adapter counts them.
    public var rows: Int?
    /// See `AdapterHealth.lagSeconds`; nil keeps the last known value.
    public var lagSeconds: Double?

    public init(error: String? = nil, rows: Int? = nil, lagSeconds: Double? = nil) {
        self.error = error
        self.rows = rows
        self.lagSeconds = lagSeconds
    }
}

extension Journal {
    private static let healthColumns: [(name: String, type: String)] = [
        ("failing_since", "INTEGER"), ("last_poll_rows", "INTEGER"), ("rows_read", "INTEGER NOT NULL DEFAULT 0"),
        ("lag_seconds", "REAL"),
    ]

    private func ensureHealthTable() throws {
        if healthTableReady { return }
        func missingColumns() throws -> [(name: String, type: String)] {
            let present = Set(try database.query("PRAGMA table_info(adapter_health)").compactMap { $0[1].textValue })
            return present.isEmpty ? [("", "")] : Self.healthColumns.filter { !present.contains($0.name) }
        }
        if try !missingColumns().isEmpty {
            // Several connections (one per adapter, a status command) may find the table missing or old at once:
            // the check is made again inside one write transaction, so only the first of them changes it.
            func upgrade() throws {
                try database.execute("""
                    CREATE TABLE IF NOT EXISTS adapter_health(
                        adapter TEXT PRIMARY KEY, kind TEXT NOT NULL, last_poll_at INTEGER, last_success_at INTEGER,
                        last_error TEXT, last_error_at INTEGER, consecutive_failures INTEGER NOT NULL DEFAULT 0)
                    """)
                // Columns added after the table's first release: added in place to journals that have it already.
                for column in try missingColumns() where !column.name.isEmpty {
                    try database.execute("ALTER TABLE adapter_health ADD COLUMN \(column.name) \(column.type)")
                }
            }
            if database.inTransaction { try upgrade() } else { try database.transaction { try upgrade() } }
        }
        healthTableReady = true
    }

    /// Records the outcome of one poll: `error` nil for success.
    public func recordPoll(adapter: String, kind: String, error: String?) throws(JournalError) {
        try recordPoll(adapter: adapter, kind: kind, PollOutcome(error: error))
    }

    /// Records the outcome of one poll. A failure keeps the time the current run of failures began.
    public func recordPoll(adapter: String, kind: String, _ outcome: PollOutcome) throws(JournalError) {
        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded())
        let rows: SQLiteValue = outcome.rows.map { .integer(Int64($0)) } ?? .null
        let lag: SQLiteValue = outcome.lagSeconds.map { .real($0) } ?? .null
        do {
            try ensureHealthTable()
            if let error = outcome.error {
                try database.prepare("""
                    INSERT INTO adapter_health(adapter, kind, last_poll_at, last_error, last_error_at, consecutive_failures,
                                               failing_since, last_poll_rows, rows_read, lag_seconds)
                    VALUES (?1, ?2, ?3, ?4, ?3, 1, ?3, ?5, COALESCE(?5, 0), ?6)
                    ON CONFLICT(adapter) DO UPDATE SET kind = excluded.kind, last_poll_at = excluded.last_poll_at,
                        last_error = excluded.last_error, last_error_at = excluded.last_error_at,
                        consecutive_failures = adapter_health.consecutive_failures + 1,
                        -- A run that began before this column existed: at least since its last known error.
                        failing_since = CASE WHEN adapter_health.consecutive_failures > 0
                                             THEN COALESCE(adapter_health.failing_since, adapter_health.last_error_at,
                                                           excluded.last_error_at)
                                             ELSE excluded.last_error_at END,
                        last_poll_rows = excluded.last_poll_rows,
                        rows_read = adapter_health.rows_read + COALESCE(excluded.last_poll_rows, 0),
                        lag_seconds = COALESCE(excluded.lag_seconds, adapter_health.lag_seconds)
                    """).run([.text(adapter), .text(kind), .integer(now), .text(error), rows, lag])
            } else {
                try database.prepare("""
                    INSERT INTO adapter_health(adapter, kind, last_poll_at, last_success_at, consecutive_failures,
                                               failing_since, last_poll_rows, rows_read, lag_seconds)
                    VALUES (?1, ?2, ?3, ?3, 0, NULL, ?4, COALESCE(?4, 0), ?5)
                    ON CONFLICT(adapter) DO UPDATE SET kind = excluded.kind, last_poll_at = excluded.last_poll_at,
                        last_success_at = excluded.last_success_at, consecutive_failures = 0, failing_since = NULL,
                        last_poll_rows = excluded.last_poll_rows,
                        rows_read = adapter_health.rows_read + COALESCE(excluded.last_poll_rows, 0),
                        lag_seconds = COALESCE(excluded.lag_seconds, adapter_health.lag_seconds)
                    """).run([.text(adapter), .text(kind), .integer(now), rows, lag])
            }
        } catch {
            throw JournalError(operation: "record poll of \(adapter)", underlying: "\(error)")
        }
    }

    /// Every adapter's health, by name.
    public func adapterHealth() throws(JournalError) -> [AdapterHealth] {
        do {
            try ensureHealthTable()
            func date(_ value: SQLiteValue) -> Date? { value.intValue.map { Date(timeIntervalSince1970: Double($0) / 1000) } }
            return try database.query("""
                SELECT adapter, kind, last_poll_at, last_success_at, last_error, last_error_at, consecutive_failures,
                       failing_since, last_poll_rows, rows_read, lag_seconds
                FROM adapter_health ORDER BY adapter
                """).map { row in
                AdapterHealth(adapter: row[0].textValue ?? "", kind: row[1].textValue ?? "", lastPollAt: date(row[2]),
                              lastSuccessAt: date(row[3]), lastError: row[4].textValue, lastErrorAt: date(row[5]),
                              consecutiveFailures: Int(row[6].intValue ?? 0), failingSince: date(row[7]),
                              lastPollRows: row[8].intValue.map { Int($0) }, rowsRead: Int(row[9].intValue ?? 0),
                              lagSeconds: row[10].realValue)
            }
        } catch {
            throw JournalError(operation: "read adapter health", underlying: "\(error)")
        }
    }
}
