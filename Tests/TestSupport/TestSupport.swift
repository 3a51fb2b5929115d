import CryptoSupport
import Foundation
import Journal
import SQLiteSupport

// Helpers shared by the test targets (a library target, not a test target: test targets cannot import each other).

/// Runs a short-lived command to completion, capturing stdout and stderr together.
public func runProcess(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The first line a peer process prints (its port, for peers started on port 0), read until a newline or EOF.
/// `port` is nil when the line is not a number (the peer died or printed an error); `line` says what came.
public func readPortLine(_ pipe: Pipe) -> (port: Int?, line: String) {
    var line = Data()
    while !line.contains(UInt8(ascii: "\n")) {
        let chunk = pipe.fileHandleForReading.availableData
        if chunk.isEmpty { break }   // EOF: the peer died
        line.append(chunk)
    }
    let text = String(decoding: line, as: UTF8.self)
    return (Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), text)
}

/// A read-only connection to a journal with its records laid out one row each in a TEMP table `records`
/// (seq, type, key, rev, op, body, source, origin, line, ingested_at; body as stored: compact or XML bytes), so that
/// tests can ask SQL questions of records that the journal keeps in chunks (`record_chunks`).
public func openJournalForInspection(path: String) throws -> SQLiteDatabase {
    let db = try SQLiteDatabase(path: path, readOnly: true)
    try db.execute("""
        CREATE TEMP TABLE records(seq INTEGER PRIMARY KEY, type TEXT NOT NULL, key TEXT NOT NULL, rev INTEGER NOT NULL,
            op INTEGER NOT NULL, body BLOB NOT NULL, source TEXT NOT NULL, origin TEXT, line INTEGER, ingested_at INTEGER NOT NULL)
        """)
    let insert = try db.prepare("INSERT INTO temp.records VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")
    let chunks = try db.prepare("SELECT first_seq, source, origin, ingested_at, types, data FROM main.record_chunks ORDER BY first_seq")
    while try chunks.step() {
        let source = chunks.text(at: 1)
        let origin: SQLiteValue = chunks.isNull(at: 2) ? .null : .text(chunks.text(at: 2))
        let ingestedAt = chunks.int(at: 3)
        try chunks.withBytes(at: 5) { data in
            try RecordChunkCodec.decode(types: chunks.text(at: 4), data: data, firstSeq: chunks.int(at: 0)) { seq, record in
                try insert.run([.integer(seq), .text(record.type), .text(record.key), .integer(record.rev),
                                .integer(record.deleted ? 1 : 0), .blob(record.storedBody), .text(source), origin,
                                .integer(Int64(record.line)), .integer(ingestedAt)])
                return true
            }
        }
    }
    return db
}

/// What an adapter put in a journal that matters for exactly-once: every (type, key, rev, body) of `source`, in
/// key order, as a count and a SHA-256.
public func journalDigest(path: String, source: String) throws -> (records: Int, digest: String) {
    let db = try openJournalForInspection(path: path)
    let statement = try db.prepare("SELECT type, key, rev, body FROM records WHERE source = ?1 ORDER BY type, key, rev")
    try statement.bind([.text(source)])
    let digest = try StreamingDigest(.sha256)
    var count = 0
    while try statement.step() {
        count += 1
        let body = statement.withBytes(at: 3) { StoredBody.xml($0) }
        digest.update("\(statement.text(at: 0))|\(statement.text(at: 1))|\(statement.int(at: 2))|\(body)\n")
    }
    return (count, digest.finish().hexString)
}

/// The XML bodies of a journal's records matching an SQL condition on `records` (see `openJournalForInspection`),
/// in seq order (the journal stores bodies in a compact form, so SQL cannot search their text).
public func journalBodies(path: String, where condition: String = "1") throws -> [String] {
    let db = try openJournalForInspection(path: path)
    let statement = try db.prepare("SELECT body FROM records WHERE \(condition) ORDER BY seq")
    var bodies: [String] = []
    while try statement.step() { bodies.append(statement.withBytes(at: 0) { StoredBody.xml($0) }) }
    return bodies
}

/// A `records.body` value read with `SQLiteDatabase.query` as XML (compact bodies are blobs).
public func storedBodyXML(_ value: SQLiteValue) -> String {
    switch value {
    case .text(let text): return text
    case .blob(let bytes): return StoredBody.xml(bytes)
    default: return ""
    }
}

/// The first column of the first row of a query on a journal (or -1).
public func journalScalar(path: String, _ sql: String) throws -> Int64 {
    let db = try openJournalForInspection(path: path)
    return try db.query(sql).first?.first?.intValue ?? -1
}

public struct InspectionError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Rewrites the stored body of record `seq` in its chunk (to damage it, as a disk or a careless hand might):
/// the chunk is decoded, the body replaced by `transform(body)`, and the chunk encoded and written back.
public func rewriteStoredBody(path: String, seq: Int64, _ transform: ([UInt8]) -> [UInt8]) throws {
    let db = try SQLiteDatabase(path: path)
    guard let row = try db.query("""
        SELECT first_seq, types, data FROM record_chunks WHERE first_seq <= ?1 ORDER BY first_seq DESC LIMIT 1
        """, [.integer(seq)]).first, let first = row[0].intValue, case .text(let types) = row[1], case .blob(let data) = row[2] else {
        throw InspectionError(message: "no chunk holds seq \(seq)")
    }
    var records: [ChunkedRecord] = []
    var found = false
    try data.withUnsafeBytes { bytes in
        try RecordChunkCodec.decode(types: types, data: bytes, firstSeq: first) { current, record in
            var record = record
            if current == seq {
                record.storedBody = transform(record.storedBody)
                found = true
            }
            records.append(record)
            return true
        }
    }
    guard found else { throw InspectionError(message: "no record with seq \(seq)") }
    let encoded = RecordChunkCodec.encode(records)
    try db.prepare("UPDATE record_chunks SET types = ?2, data = ?3 WHERE first_seq = ?1")
        .run([.integer(first), .text(encoded.types), .blob(encoded.data)])
}
