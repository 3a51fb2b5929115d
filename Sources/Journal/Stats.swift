import Foundation
import SQLiteSupport

/// A summary of the journal for operators (`esgate journal stats`).
public struct JournalStats: Sendable, Codable, Equatable {
    public struct TypeCount: Sendable, Codable, Equatable {
        public let type: String
        /// Stored revisions of this type.
        public let records: Int
        /// Distinct keys.
        public let keys: Int
    }
    public struct FileCount: Sendable, Codable, Equatable {
        public let state: String
        public let files: Int
        public let rows: Int
    }
    public struct QuarantineCount: Sendable, Codable, Equatable {
        public let source: String
        public let stage: String
        public let state: String
        public let rows: Int
    }
    public struct CursorPosition: Sendable, Codable, Equatable {
        public let consumer: String
        public let seq: Int
        /// Records stored after the cursor.
        public let lag: Int
    }

    public let path: String
    public let lastSeq: Int
    public let records: Int
    public let types: [TypeCount]
    public let files: [FileCount]
    public let quarantine: [QuarantineCount]
    public let cursors: [CursorPosition]
}

extension Journal {
    public func stats() throws(JournalError) -> JournalStats {
        do {
            try writePendingChunk()
            return try database.readTransaction { try readStats() }
        } catch {
            throw JournalError(operation: "stats", underlying: "\(error)")
        }
    }

    /// The figures of `stats`, read in one snapshot: during an ingest, counts read by separate queries showed more
    /// records than the last seq.
    private func readStats() throws -> JournalStats {
        func int(_ value: SQLiteValue) -> Int { Int(value.intValue ?? 0) }
        func text(_ value: SQLiteValue) -> String { value.textValue ?? "" }
        let lastSeq = Int(try Self.lastSeq(in: database))
        let keys = Dictionary(uniqueKeysWithValues: try database.query("SELECT type, count(*) FROM heads GROUP BY type")
            .map { (text($0[0]), int($0[1])) })
        let recordsByType = try Self.recordCountsByType(in: database)
        let total = recordsByType.values.reduce(0, +)
        let types = recordsByType.keys.sorted().map {
            JournalStats.TypeCount(type: $0, records: recordsByType[$0] ?? 0, keys: keys[$0] ?? 0)
        }
        let files = try database.query("SELECT state, count(*), coalesce(sum(rows), 0) FROM files GROUP BY state ORDER BY state").map {
            JournalStats.FileCount(state: text($0[0]), files: int($0[1]), rows: int($0[2]))
        }
        let quarantine = try database.query("""
            SELECT source, stage, state, count(*) FROM quarantine GROUP BY source, stage, state ORDER BY source, stage, state
            """).map { JournalStats.QuarantineCount(source: text($0[0]), stage: text($0[1]), state: text($0[2]), rows: int($0[3])) }
        let cursors = try database.query("SELECT consumer, seq FROM cursors ORDER BY consumer").map {
            JournalStats.CursorPosition(consumer: text($0[0]), seq: int($0[1]), lag: 0)
        }.map { cursor in
            let lag = try Self.recordCount(in: database, after: Int64(cursor.seq), types: [])
            return JournalStats.CursorPosition(consumer: cursor.consumer, seq: cursor.seq, lag: lag)
        }
        return JournalStats(path: path, lastSeq: lastSeq, records: total, types: types, files: files,
                            quarantine: quarantine, cursors: cursors)
    }
}
