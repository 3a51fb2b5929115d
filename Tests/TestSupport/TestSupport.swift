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

/// What an adapter put in a journal that matters for exactly-once: every (type, key, rev, body) of `source`, in
/// key order, as a count and a SHA-256.
public func journalDigest(path: String, source: String) throws -> (records: Int, digest: String) {
    let db = try SQLiteDatabase(path: path, readOnly: true)
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

/// The XML bodies of a journal's records matching an SQL condition on `records`, in seq order (the journal stores
/// bodies in a compact form, so SQL cannot search their text).
public func journalBodies(path: String, where condition: String = "1") throws -> [String] {
    let db = try SQLiteDatabase(path: path, readOnly: true)
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
    let db = try SQLiteDatabase(path: path, readOnly: true)
    return try db.query(sql).first?.first?.intValue ?? -1
}
