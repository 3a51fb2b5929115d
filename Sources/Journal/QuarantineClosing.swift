import Foundation
import GatewayModel
import SQLiteSupport

/// A revision that makes a quarantined row stale: a key of the row got newer content after it was quarantined.
public struct SupersedingRevision: Sendable, Equatable {
    public let type: String
    public let key: String
    public let rev: Int64
    public let seq: Int64

    /// `Step XH-001 / 03 rev 2 (seq 17)`, the key as people read it.
    public var description: String {
        "\(type) \(NormalizedRecord.displayKey(of: key)) rev \(rev) (seq \(seq))"
    }
}

extension Journal {
    /// Columns `quarantine` gained after its first release, as `CREATE TABLE` lists them.
    static let quarantineColumns: [(name: String, type: String)] = [
        ("errors", "TEXT"), ("journal_seq", "INTEGER"), ("closed_reason", "TEXT"),
        ("replay_first_seq", "INTEGER"), ("replay_last_seq", "INTEGER"),
    ]
    static var quarantineColumnsSQL: String { quarantineColumns.map { ", \($0.name) \($0.type)" }.joined() }

    /// Adds the newer columns to a journal made before them. Rows quarantined then get an estimated
    /// `journal_seq`: the last record of a chunk written before the row (a chunk is written at or after its
    /// records, so the estimate is never above the true value; a revision of the row's own batch written after
    /// it may then look newer, which a replay only acts on when its content differs).
    func ensureQuarantineColumns() throws {
        if quarantineColumnsReady { return }
        func missing() throws -> [(name: String, type: String)] {
            let present = Set(try database.query("PRAGMA table_info(quarantine)").compactMap { $0[1].textValue })
            return Self.quarantineColumns.filter { !present.contains($0.name) }
        }
        if try !missing().isEmpty {
            // Several connections may find the table old at once: the check is made again inside one write
            // transaction, so only the first of them changes it.
            func upgrade() throws {
                let columns = try missing()
                for column in columns {
                    try database.execute("ALTER TABLE quarantine ADD COLUMN \(column.name) \(column.type)")
                }
                if columns.contains(where: { $0.name == "journal_seq" }) {
                    try database.execute("""
                        UPDATE quarantine SET journal_seq = (SELECT coalesce(max(last_seq), 0) FROM record_chunks
                                                             WHERE ingested_at <= quarantine.created_at)
                        WHERE journal_seq IS NULL
                        """)
                }
            }
            if database.inTransaction { try upgrade() } else { try database.transaction { try upgrade() } }
        }
        quarantineColumnsReady = true
    }

    /// The revision of (type, key) that supersedes `entry`, if any: the key's latest content differs from
    /// `digest` (the row's record now; nil when the record does not build) and is newer than the row. A
    /// revision added by the replay of another quarantined row is as old as that row, not as its seq: of two
    /// rows held for one key, the later one wins whichever is replayed first.
    public func supersedingRevision(of entry: QuarantineEntry, type: String, key: String, digest: [UInt8]?) throws(JournalError) -> SupersedingRevision? {
        try wrap("look up revisions of \(type)") {
            try ensureQuarantineColumns()
            let heads = try database.query("SELECT rev, seq, digest FROM heads WHERE type = ?1 AND key = ?2", [.text(type), .text(key)])
            guard let head = heads.first, let rev = head[0].intValue, let seq = head[1].intValue,
                  case .blob(let stored) = head[2] else { return nil }
            if let digest, Array(stored.prefix(16)) == digest { return nil }
            var asOf = (seq: seq, entry: Int64(0))
            let replayed = try database.query("""
                SELECT journal_seq, id FROM quarantine
                WHERE state = 'replayed' AND replay_first_seq <= ?1 AND replay_last_seq >= ?1 LIMIT 1
                """, [.integer(seq)])
            if let row = replayed.first, let journalSeq = row[0].intValue, let id = row[1].intValue { asOf = (journalSeq, id) }
            let newer = asOf.seq > entry.journalSeq || (asOf.seq == entry.journalSeq && asOf.entry > entry.id)
            return newer ? SupersedingRevision(type: type, key: key, rev: rev, seq: seq) : nil
        }
    }

    /// Closes an open entry whose row is stale: nothing of it is stored.
    public func supersedeQuarantine(id: Int64, by revision: SupersedingRevision) throws(JournalError) {
        try wrap("close quarantine entry \(id)") {
            try ensureQuarantineColumns()
            try database.prepare("""
                UPDATE quarantine SET state = 'superseded', resolved_at = ?2, attempts = attempts + 1, closed_reason = ?3
                WHERE id = ?1 AND state = 'open'
                """).run([.integer(id), .integer(milliseconds), .text("superseded by \(revision.description)")])
        }
    }

    /// Operator drop: open entries among `ids` are closed as `dropped` with `reason`, and kept for audit.
    /// Returns the ids that were dropped.
    public func dropQuarantine(ids: [Int64], reason: String) throws(JournalError) -> [Int64] {
        try wrap("drop quarantine entries") {
            try ensureQuarantineColumns()
            let list = ids.map(String.init).joined(separator: ",")
            return try database.transaction {
                let open = try database.query("SELECT id FROM quarantine WHERE state = 'open' AND id IN (\(list)) ORDER BY id")
                    .compactMap { $0[0].intValue }
                try database.prepare("""
                    UPDATE quarantine SET state = 'dropped', resolved_at = ?1, closed_reason = ?2 WHERE state = 'open' AND id IN (\(list))
                    """).run([.integer(milliseconds), .text("dropped: \(reason)")])
                return open
            }
        }
    }
}
