import Foundation
import SQLiteSupport

/// Which journal a state directory holds: an id in `meta` (`journal_id`) and the same id in a file beside the
/// journal (`journal.sqlite.id`). SQLite creates an empty database wherever it is asked to open a missing or empty
/// file, and replays any `-wal` file it finds next to a database without checking that the log belongs to it. A
/// journal lost to a failed disk, a bad restore or a wrong mount would then be replaced by an empty one without a
/// word: every database source pulled again from its start and every record sent to the province again. The file
/// outside the database is what survives such a loss and tells it apart from a first start.
enum JournalIdentity {
    static func markerPath(_ journalPath: String) -> String { journalPath + ".id" }

    /// The id the marker holds; nil when there is no marker (a first start, or a journal made before identities).
    static func recorded(_ journalPath: String) -> String? {
        guard let data = FileManager.default.contents(atPath: markerPath(journalPath)) else { return nil }
        let id = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return id.isEmpty ? nil : id
    }

    private static func size(_ path: String) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
    }

    /// Called before SQLite opens (and would create) the file: a marker without a journal (file missing or empty,
    /// and no log to recover it from) is a lost journal, not a first start.
    static func refuseLost(_ journalPath: String) throws(JournalError) {
        guard let id = recorded(journalPath), size(journalPath) == 0, size(journalPath + "-wal") == 0 else { return }
        let marker = markerPath(journalPath)
        throw JournalError(operation: "open \(journalPath)",
                           underlying: "the journal is missing or empty, but \(marker) says journal \(id) was kept here. Restore journal.sqlite (with its -wal file, if the backup has one) and start esgate again. Only to start over with an empty journal on purpose (every database source is then read again from its start and every record sent again) remove \(marker)")
    }

    /// Called after the journal is open and migrated: gives a journal without an id one (the marker's, for a journal
    /// restored from a backup made before identities, else a new one), writes a missing marker, and refuses a journal
    /// whose id is not the marker's.
    static func check(_ database: SQLiteDatabase, journalPath: String) throws {
        let marker = recorded(journalPath)
        var id = try storedID(database)
        if id == nil {
            try database.transaction {
                try database.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('journal_id', '\(marker ?? UUID().uuidString)')")
            }
            id = try storedID(database)
        }
        guard let id else { return }
        if let marker {
            guard marker != id else { return }
            throw JournalError(operation: "open \(journalPath)",
                               underlying: "this is journal \(id), but \(markerPath(journalPath)) says this state directory keeps journal \(marker): journal.sqlite (or the -wal file beside it) comes from another gateway or another copy. Stop esgate and put the right journal.sqlite back; a -wal file that does not belong to it must be removed before")
        }
        try write(id, to: markerPath(journalPath))
    }

    private static func storedID(_ database: SQLiteDatabase) throws -> String? {
        try database.query("SELECT value FROM meta WHERE key = 'journal_id'").first?.first?.textValue
    }

    /// Written to a temporary name, flushed and renamed, so that a crash leaves the old marker or the whole new one.
    private static func write(_ id: String, to path: String) throws {
        let temporary = path + ".\(UUID().uuidString).tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data((id + "\n").utf8)),
              let handle = FileHandle(forUpdatingAtPath: temporary) else {
            throw JournalError(operation: "write \(path)", underlying: "cannot create \(temporary): \(String(cString: strerror(errno)))")
        }
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        try handle.synchronize()
        try handle.close()
        guard rename(temporary, path) == 0 else {
            throw JournalError(operation: "write \(path)", underlying: String(cString: strerror(errno)))
        }
    }
}

extension Journal {
    /// For other openers of the journal file (the uplink's store): refuses to let SQLite create an empty database
    /// where a journal was lost.
    public static func refuseLostJournal(at path: String) throws(JournalError) {
        try JournalIdentity.refuseLost(path)
    }
}
