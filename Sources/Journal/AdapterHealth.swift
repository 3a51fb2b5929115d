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
}

extension Journal {
    private func ensureHealthTable() throws {
        try database.execute("""
            CREATE TABLE IF NOT EXISTS adapter_health(
                adapter TEXT PRIMARY KEY, kind TEXT NOT NULL, last_poll_at INTEGER, last_success_at INTEGER,
                last_error TEXT, last_error_at INTEGER, consecutive_failures INTEGER NOT NULL DEFAULT 0)
            """)
    }

    /// Records the outcome of one poll: `error` nil for success.
    public func recordPoll(adapter: String, kind: String, error: String?) throws(JournalError) {
        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded())
        do {
            try ensureHealthTable()
            if let error {
                try database.prepare("""
                    INSERT INTO adapter_health(adapter, kind, last_poll_at, last_error, last_error_at, consecutive_failures)
                    VALUES (?1, ?2, ?3, ?4, ?3, 1)
                    ON CONFLICT(adapter) DO UPDATE SET kind = excluded.kind, last_poll_at = excluded.last_poll_at,
                        last_error = excluded.last_error, last_error_at = excluded.last_error_at,
                        consecutive_failures = adapter_health.consecutive_failures + 1
                    """).run([.text(adapter), .text(kind), .integer(now), .text(error)])
            } else {
                try database.prepare("""
                    INSERT INTO adapter_health(adapter, kind, last_poll_at, last_success_at, consecutive_failures)
                    VALUES (?1, ?2, ?3, ?3, 0)
                    ON CONFLICT(adapter) DO UPDATE SET kind = excluded.kind, last_poll_at = excluded.last_poll_at,
                        last_success_at = excluded.last_success_at, consecutive_failures = 0
                    """).run([.text(adapter), .text(kind), .integer(now)])
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
                SELECT adapter, kind, last_poll_at, last_success_at, last_error, last_error_at, consecutive_failures
                FROM adapter_health ORDER BY adapter
                """).map { row in
                AdapterHealth(adapter: row[0].textValue ?? "", kind: row[1].textValue ?? "", lastPollAt: date(row[2]),
                              lastSuccessAt: date(row[3]), lastError: row[4].textValue, lastErrorAt: date(row[5]),
                              consecutiveFailures: Int(row[6].intValue ?? 0))
            }
        } catch {
            throw JournalError(operation: "read adapter health", underlying: "\(error)")
        }
    }
}
