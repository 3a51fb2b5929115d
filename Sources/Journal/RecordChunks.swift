import Foundation
import SQLiteSupport

// Records are stored in chunks: one `record_chunks` row holds up to `RecordChunkBuilder.maxRecords` consecutive
// records (seq first_seq…last_seq) of one source and origin, written in one transaction. A row per record cost
// SQLite's per-row work (a VDBE program, a B-tree insert, ten bound values) a million times per million records,
// about a fifth of the journal writer's CPU in a large ingest (docs/benchmarks.md); a chunk pays it once per
// hundred records. Seqs stay per record: cursors, heads and package memberships point at records, not chunks.
//
// `types` lists the chunk's record types with their counts, so that counting by type needs no decoding.
// `data` is, per record in seq order:
//   varint type index (into `types`) · varint key length · key (UTF-8) · varint rev · byte op (1 = delete) ·
//   varint line · varint body length · body (as `StoredBody` stores it)
// preceded by one format byte. Varints are unsigned LEB128 of the value's 64-bit pattern.

/// A record as a chunk holds it, before it becomes a `JournalEntry`.
public struct ChunkedRecord: Sendable, Equatable {
    public var type: String
    public var key: String
    public var rev: Int64
    public var deleted: Bool
    public var line: Int
    /// The body as `StoredBody` stores it (compact or XML).
    public var storedBody: [UInt8]

    public init(type: String, key: String, rev: Int64, deleted: Bool, line: Int, storedBody: [UInt8]) {
        self.type = type
        self.key = key
        self.rev = rev
        self.deleted = deleted
        self.line = line
        self.storedBody = storedBody
    }
}

/// A record lent by `Journal.forEachEntry`: its body points into the chunk being read, valid only during the
/// call it is passed to.
public struct BorrowedJournalEntry {
    public let seq: Int64
    public let type: String
    public let rev: Int64
    public let deleted: Bool
    /// As `JournalEntry.storedBody`.
    public let storedBody: UnsafeBufferPointer<UInt8>
}

/// A chunk whose bytes do not decode (damaged storage): named by its first seq, never a crash.
public struct RecordChunkDamage: Error, CustomStringConvertible, Sendable {
    public let firstSeq: Int64
    public let detail: String
    public var description: String { "record chunk at seq \(firstSeq) is damaged: \(detail)" }
}

/// Encoding and decoding of one chunk. Public so that tools and tests can read and rewrite chunks as the
/// journal does.
public enum RecordChunkCodec {
    /// The first byte of `data`: the layout above. A new layout needs a new number and a journal schema version.
    public static let formatVersion: UInt8 = 1
    static let typeSeparator = "\u{1E}"
    static let countSeparator = "\u{1F}"

    /// The `types` column: each type and its count, in type-index order.
    public static func typesColumn(names: [String], counts: [Int]) -> String {
        zip(names, counts).map { $0 + countSeparator + String($1) }.joined(separator: typeSeparator)
    }

    /// The `types` column read back: names in index order and their counts; nil when damaged.
    public static func parseTypes(_ column: String) -> [(name: String, count: Int)]? {
        if column.isEmpty { return [] }
        var result: [(name: String, count: Int)] = []
        for entry in column.split(separator: Character(typeSeparator), omittingEmptySubsequences: false) {
            let parts = entry.split(separator: Character(countSeparator), omittingEmptySubsequences: false)
            guard parts.count == 2, let count = Int(parts[1]), count >= 0 else { return nil }
            result.append((String(parts[0]), count))
        }
        return result
    }

    /// `records` encoded as one chunk: (types column, data).
    public static func encode(_ records: [ChunkedRecord]) -> (types: String, data: [UInt8]) {
        var builder = RecordChunkBuilder()
        for record in records {
            record.storedBody.withUnsafeBytes {
                builder.add(type: record.type, key: record.key, rev: record.rev, deleted: record.deleted, line: record.line, body: $0)
            }
        }
        return (builder.typesColumn, builder.data)
    }

    /// Calls `body` with each record of a chunk and its seq, in order, until it returns false.
    public static func decode(types column: String, data: UnsafeRawBufferPointer, firstSeq: Int64,
                              _ body: (Int64, ChunkedRecord) throws -> Bool) throws {
        guard let types = parseTypes(column) else {
            throw RecordChunkDamage(firstSeq: firstSeq, detail: "unreadable types column")
        }
        try decode(types: types, data: data, firstSeq: firstSeq, body)
    }

    /// `decode` with the types column already parsed (a reader that filtered the chunk by type has).
    static func decode(types: [(name: String, count: Int)], data: UnsafeRawBufferPointer, firstSeq: Int64,
                       _ body: (Int64, ChunkedRecord) throws -> Bool) throws {
        try decodeViews(types: types, data: data, firstSeq: firstSeq) { seq, view in
            guard let key = String(validating: view.key, as: UTF8.self) else {
                throw RecordChunkDamage(firstSeq: firstSeq, detail: "bad key at byte \(view.keyOffset)")
            }
            let record = ChunkedRecord(type: types[view.typeIndex].name, key: key, rev: view.rev, deleted: view.deleted,
                                       line: view.line, storedBody: Array(view.storedBody))
            return try body(seq, record)
        }
    }

    /// One record as its bytes lie in a chunk: valid only while the chunk's bytes are.
    struct RecordView {
        let typeIndex: Int
        /// UTF-8, not yet validated.
        let key: UnsafeRawBufferPointer
        let keyOffset: Int
        let rev: Int64
        let deleted: Bool
        let line: Int
        let storedBody: UnsafeRawBufferPointer
    }

    /// `decode` without copying: each record's key and body point into `data`.
    static func decodeViews(types: [(name: String, count: Int)], data: UnsafeRawBufferPointer, firstSeq: Int64,
                            _ body: (Int64, RecordView) throws -> Bool) throws {
        func damaged(_ detail: String) -> RecordChunkDamage { RecordChunkDamage(firstSeq: firstSeq, detail: detail) }
        guard data.first == formatVersion else { throw damaged("unknown format \(data.first.map(String.init) ?? "(empty)")") }
        var reader = ChunkReader(buffer: data, position: 1)
        var seq = firstSeq
        // The types column counts the records: a chunk cut short at a record boundary still decodes, and only
        // this tells that records are missing.
        let expected = types.reduce(0) { $0 + $1.count }
        var decoded = 0
        while reader.position < data.count {
            guard let typeIndex = reader.varint(), typeIndex < UInt64(types.count) else { throw damaged("bad type index at byte \(reader.position)") }
            let keyOffset = reader.position
            guard let key = reader.view() else { throw damaged("bad key at byte \(reader.position)") }
            guard let rev = reader.varint(), let op = reader.byte(), let line = reader.varint(), let stored = reader.view() else {
                throw damaged("truncated record at byte \(reader.position)")
            }
            let record = RecordView(typeIndex: Int(typeIndex), key: key, keyOffset: keyOffset, rev: Int64(bitPattern: rev),
                                    deleted: op == 1, line: Int(Int64(bitPattern: line)), storedBody: stored)
            decoded += 1
            guard decoded <= expected else { throw damaged("more records than its types column counts (\(expected))") }
            guard try body(seq, record) else { return }
            seq += 1
        }
        guard decoded == expected else { throw damaged("\(decoded) records where its types column counts \(expected)") }
    }
}

/// Bounds-checked reading of a chunk's bytes.
private struct ChunkReader {
    let buffer: UnsafeRawBufferPointer
    var position: Int

    mutating func byte() -> UInt8? {
        guard position < buffer.count else { return nil }
        defer { position += 1 }
        return buffer[position]
    }

    mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while shift < 64 {
            guard let byte = byte() else { return nil }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

    /// A length-prefixed run of bytes, in place.
    mutating func view() -> UnsafeRawBufferPointer? {
        guard let length = varint(), length <= UInt64(buffer.count - position) else { return nil }
        let start = position
        position += Int(length)
        return UnsafeRawBufferPointer(rebasing: buffer[start..<position])
    }
}

/// The chunk being filled by the journal's writer.
struct RecordChunkBuilder {
    /// Flush limits: enough records that SQLite's per-row work is negligible, few enough that reading one record
    /// (a deletion's last content, a package member) decodes little.
    static let maxRecords = 128
    static let maxBytes = 64 * 1024

    private(set) var count = 0
    private(set) var data: [UInt8] = [RecordChunkCodec.formatVersion]
    private var typeNames: [String] = []
    private var typeCounts: [Int] = []

    var isFull: Bool { count >= Self.maxRecords || data.count >= Self.maxBytes }
    var typesColumn: String { RecordChunkCodec.typesColumn(names: typeNames, counts: typeCounts) }

    mutating func add(type: String, key: String, rev: Int64, deleted: Bool, line: Int, body: UnsafeRawBufferPointer) {
        let index: Int
        if let known = typeNames.firstIndex(of: type) {
            index = known
        } else {
            index = typeNames.count
            typeNames.append(type)
            typeCounts.append(0)
        }
        typeCounts[index] += 1
        appendVarint(UInt64(index))
        var key = key
        key.withUTF8 { utf8 in
            appendVarint(UInt64(utf8.count))
            data.append(contentsOf: utf8)
        }
        appendVarint(UInt64(bitPattern: rev))
        data.append(deleted ? 1 : 0)
        appendVarint(UInt64(bitPattern: Int64(line)))
        appendVarint(UInt64(body.count))
        data.append(contentsOf: body)
        count += 1
    }

    mutating func reset() {
        count = 0
        data.removeAll(keepingCapacity: true)
        data.append(RecordChunkCodec.formatVersion)
        typeNames.removeAll(keepingCapacity: true)
        typeCounts.removeAll(keepingCapacity: true)
    }

    private mutating func appendVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            data.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        data.append(UInt8(value))
    }
}

// MARK: - Reading chunks (any connection to a journal file: the journal's own, the uplink store's, a read-only one)

extension Journal {
    static let chunkColumns = "first_seq, source, origin, ingested_at, types, data"

    /// Decodes the chunk rows of `statement` (selecting `chunkColumns`) into entries with seq > `after` whose type
    /// is in `types` (nil: all), until `limit` entries.
    static func readChunks(_ statement: SQLiteStatement, after: Int64 = 0, types: Set<String>? = nil, limit: Int = .max,
                           into result: inout [JournalEntry]) throws {
        while result.count < limit, try statement.step() {
            try appendEntries(ofRow: statement, after: after, types: types, limit: limit, into: &result)
        }
    }

    /// The entries of the chunk row `statement` is on, as `readChunks` selects them.
    static func appendEntries(ofRow statement: SQLiteStatement, after: Int64, types: Set<String>?, limit: Int,
                              into result: inout [JournalEntry]) throws {
        let firstSeq = statement.int(at: 0)
        // Parsed once: for the type filter and for decoding.
        guard let listed = RecordChunkCodec.parseTypes(statement.text(at: 4)) else {
            throw RecordChunkDamage(firstSeq: firstSeq, detail: "unreadable types column")
        }
        if let types, !listed.contains(where: { types.contains($0.name) }) { return }
        let source = statement.text(at: 1)
        let origin = statement.isNull(at: 2) ? nil : statement.text(at: 2)
        let ingestedAt = Date(timeIntervalSince1970: Double(statement.int(at: 3)) / 1000)
        try statement.withBytes(at: 5) { data in
            try RecordChunkCodec.decode(types: listed, data: data, firstSeq: firstSeq) { seq, record in
                if seq > after, types?.contains(record.type) ?? true {
                    result.append(JournalEntry(seq: seq, type: record.type, key: record.key, rev: record.rev,
                                               deleted: record.deleted, storedBody: record.storedBody, source: source,
                                               origin: origin, line: record.line, ingestedAt: ingestedAt))
                }
                return result.count < limit
            }
        }
    }

    /// Entries after `seq` in seq order, of `types` only when given.
    static func entries(in database: SQLiteDatabase, after seq: Int64, limit: Int, types: [String]?) throws -> [JournalEntry] {
        guard seq < .max, limit > 0 else { return [] }
        // The chunk holding seq + 1 starts at or before it: the scan starts there (first_seq is the rowid).
        let start = try chunkStart(in: database, containing: seq + 1) ?? seq + 1
        // `last_seq > seq`: a consumer that is caught up (the usual poll) decodes nothing.
        let scan = try database.prepare(
            "SELECT \(chunkColumns) FROM record_chunks WHERE first_seq >= ?1 AND last_seq > ?2 ORDER BY first_seq")
        try scan.bind([.integer(start), .integer(seq)])
        var result: [JournalEntry] = []
        try readChunks(scan, after: seq, types: types.flatMap { $0.isEmpty ? nil : Set($0) }, limit: limit, into: &result)
        return result
    }

    /// `entries(in:after:limit:types:)` lent one at a time, without a `JournalEntry` (nor a copy of its body) per
    /// record; until `limit` entries or `body` returns false.
    static func forEachEntry(in database: SQLiteDatabase, after seq: Int64, limit: Int, types: [String]?,
                             _ body: (BorrowedJournalEntry) -> Bool) throws {
        guard seq < .max, limit > 0 else { return }
        let start = try chunkStart(in: database, containing: seq + 1) ?? seq + 1
        let scan = try database.prepare(
            "SELECT first_seq, types, data FROM record_chunks WHERE first_seq >= ?1 AND last_seq > ?2 ORDER BY first_seq")
        try scan.bind([.integer(start), .integer(seq)])
        let wanted = types.flatMap { $0.isEmpty ? nil : Set($0) }
        var lent = 0
        var stopped = false
        while !stopped, lent < limit, try scan.step() {
            let firstSeq = scan.int(at: 0)
            guard let listed = RecordChunkCodec.parseTypes(scan.text(at: 1)) else {
                throw RecordChunkDamage(firstSeq: firstSeq, detail: "unreadable types column")
            }
            if let wanted, !listed.contains(where: { wanted.contains($0.name) }) { continue }
            try scan.withBytes(at: 2) { data in
                try RecordChunkCodec.decodeViews(types: listed, data: data, firstSeq: firstSeq) { recordSeq, view in
                    guard recordSeq > seq else { return true }
                    // The check `entries` makes: a chunk whose key is not text is damaged, here as there.
                    guard view.key.allSatisfy({ $0 < 0x80 }) || String(validating: view.key, as: UTF8.self) != nil else {
                        throw RecordChunkDamage(firstSeq: firstSeq, detail: "bad key at byte \(view.keyOffset)")
                    }
                    let type = listed[view.typeIndex].name
                    if let wanted, !wanted.contains(type) { return true }
                    lent += 1
                    let stored = view.storedBody.assumingMemoryBound(to: UInt8.self)
                    guard body(BorrowedJournalEntry(seq: recordSeq, type: type, rev: view.rev, deleted: view.deleted,
                                                    storedBody: stored)) else {
                        stopped = true
                        return false
                    }
                    return lent < limit
                }
            }
        }
    }

    /// The first seq of the chunk holding `seq`, if any chunk starts at or before it.
    static func chunkStart(in database: SQLiteDatabase, containing seq: Int64) throws -> Int64? {
        try database.query("SELECT first_seq FROM record_chunks WHERE first_seq <= ?1 ORDER BY first_seq DESC LIMIT 1",
                           [.integer(seq)]).first?.first?.intValue
    }

    /// The entries with these seqs, in seq order (missing seqs are left out). Each chunk is decoded once.
    public static func entries(in database: SQLiteDatabase, seqs: [Int64]) throws -> [JournalEntry] {
        let wanted = Set(seqs)
        var result: [JournalEntry] = []
        let chunk = try database.prepare(
            "SELECT \(chunkColumns), last_seq FROM record_chunks WHERE first_seq <= ?1 ORDER BY first_seq DESC LIMIT 1")
        var covered: Int64 = .min
        for seq in wanted.sorted() where seq > covered {
            chunk.reset()
            try chunk.bind([.integer(seq)])
            guard try chunk.step() else { continue }
            let last = chunk.int(at: 6)
            covered = max(seq, last)
            guard seq <= last else { continue }
            var decoded: [JournalEntry] = []
            try appendEntries(ofRow: chunk, after: seq - 1, types: nil, limit: .max, into: &decoded)
            result.append(contentsOf: decoded.filter { wanted.contains($0.seq) })
        }
        chunk.reset()
        return result
    }

    /// The seq of the newest record (0 for an empty journal).
    public static func lastSeq(in database: SQLiteDatabase) throws -> Int64 {
        try database.query("SELECT last_seq FROM record_chunks ORDER BY first_seq DESC LIMIT 1").first?.first?.intValue ?? 0
    }

    /// How many records have a seq after `seq` (of `types` only, when not empty). Whole chunks are counted from
    /// their `types` column; only the chunk that `seq` falls in is decoded.
    public static func recordCount(in database: SQLiteDatabase, after seq: Int64, types: [String]) throws -> Int {
        let wanted = Set(types)
        var count = 0
        guard seq < .max else { return 0 }
        // From the chunk holding seq + 1 on (first_seq is the rowid): `last_seq > seq` alone has no index to use.
        let start = try chunkStart(in: database, containing: seq + 1) ?? seq + 1
        let statement = try database.prepare(
            "SELECT first_seq, last_seq, types FROM record_chunks WHERE first_seq >= ?2 AND last_seq > ?1 ORDER BY first_seq")
        try statement.bind([.integer(seq), .integer(start)])
        while try statement.step() {
            let first = statement.int(at: 0), last = statement.int(at: 1)
            if first > seq {
                if wanted.isEmpty {
                    count += Int(last - first + 1)
                } else if let listed = RecordChunkCodec.parseTypes(statement.text(at: 2)) {
                    count += listed.filter { wanted.contains($0.name) }.reduce(0) { $0 + $1.count }
                }
            } else if wanted.isEmpty {
                count += Int(last - seq)
            } else {
                var partial: [JournalEntry] = []
                let chunk = try database.prepare("SELECT \(chunkColumns) FROM record_chunks WHERE first_seq = ?1")
                try chunk.bind([.integer(first)])
                try readChunks(chunk, after: seq, types: wanted, into: &partial)
                count += partial.count
            }
        }
        return count
    }

    /// Records per type, from the chunks' `types` columns.
    static func recordCountsByType(in database: SQLiteDatabase) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        let statement = try database.prepare("SELECT types FROM record_chunks")
        while try statement.step() {
            for entry in RecordChunkCodec.parseTypes(statement.text(at: 0)) ?? [] { counts[entry.name, default: 0] += entry.count }
        }
        return counts
    }
}
