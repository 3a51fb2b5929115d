import Foundation
import GatewayModel
@testable import SQLiteSupport
import Testing
@testable import Journal

/// A state directory of its own per test, removed at the end.
private struct StateFolder: ~Copyable {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-storage-\(UUID().uuidString)")
    var journal: String { url.appendingPathComponent("journal.sqlite").path }
    init() throws { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(at: url) }
}

private func record(_ n: Int) -> NormalizedRecord {
    NormalizedRecord(type: "Step", key: "C\(n)\u{1F}02\u{1F}2026-01-05T08:37:00+08:00",
                     body: "<Step><CaseNo>C\(n)</CaseNo><Opinion>\(String(repeating: "意见", count: 200))</Opinion></Step>")
}

private func openingError(_ path: String) -> String? {
    do {
        _ = try Journal(path: path, durable: false)
        return nil
    } catch {
        return error.description
    }
}

@Suite struct JournalIdentityTests {

    @Test func aDeletedJournalIsRefusedNotReplacedByAnEmptyOne() throws {
        let state = try StateFolder()
        _ = try Journal(path: state.journal, durable: false).append(record(1), source: "s", origin: nil, line: 1)
        try FileManager.default.removeItem(atPath: state.journal)
        let message = try #require(openingError(state.journal))
        #expect(message.contains("missing or empty") && message.contains("journal.sqlite.id"))
        #expect(!FileManager.default.fileExists(atPath: state.journal), "no empty journal is created in its place")
    }

    @Test func anEmptiedJournalFileIsRefused() throws {
        let state = try StateFolder()
        _ = try Journal(path: state.journal, durable: false).append(record(1), source: "s", origin: nil, line: 1)
        try Data().write(to: URL(fileURLWithPath: state.journal))
        #expect(openingError(state.journal)?.contains("missing or empty") == true)
    }

    @Test func aJournalOfAnotherStateDirectoryIsRefused() throws {
        let mine = try StateFolder(), other = try StateFolder()
        _ = try Journal(path: mine.journal, durable: false)
        _ = try Journal(path: other.journal, durable: false).append(record(1), source: "s", origin: nil, line: 1)
        try FileManager.default.removeItem(atPath: mine.journal)
        try FileManager.default.copyItem(atPath: other.journal, toPath: mine.journal)
        #expect(openingError(mine.journal)?.contains("comes from another gateway or another copy") == true)
    }

    @Test func aJournalMadeBeforeIdentitiesGetsItsMarkerAndKeepsItsRecords() throws {
        let state = try StateFolder()
        _ = try Journal(path: state.journal, durable: false).append(record(1), source: "s", origin: nil, line: 1)
        let raw = try SQLiteDatabase(path: state.journal)
        try raw.execute("DELETE FROM meta WHERE key = 'journal_id'")
        try FileManager.default.removeItem(atPath: state.journal + ".id")
        let journal = try Journal(path: state.journal, durable: false)
        #expect(try journal.stats().records == 1)
        let id = try raw.query("SELECT value FROM meta WHERE key = 'journal_id'").first?.first?.textValue
        let marker = try String(contentsOfFile: state.journal + ".id", encoding: .utf8)
        #expect(id != nil && marker == (id ?? "") + "\n")
    }

    @Test func aFirstStartCreatesTheJournalAndItsMarker() throws {
        let state = try StateFolder()
        _ = try Journal(path: state.journal, durable: false)
        #expect(openingError(state.journal) == nil, "a second opening finds the same journal")
        #expect(FileManager.default.fileExists(atPath: state.journal + ".id"))
    }
}

@Suite struct DiskFullTests {

    /// A full disk, simulated by capping the journal's pages: the batch that does not fit is rolled back whole, the
    /// error names the journal and what to do, and once there is room again the same batch is stored exactly once.
    @Test func aBatchThatDoesNotFitIsRolledBackAndStoredOnceWhenThereIsRoomAgain() throws {
        let state = try StateFolder()
        let journal = try Journal(path: state.journal, durable: false)
        let pages = try #require(try journal.database.query("PRAGMA page_count").first?.first?.intValue)
        _ = try journal.database.query("PRAGMA max_page_count=\(pages + 3)")
        func storeBatch() throws(JournalError) {
            try journal.batch { for n in 0..<400 { _ = try journal.append(record(n), source: "s", origin: "a.csv", line: n + 2) } }
        }
        var failure: JournalError?
        do { try storeBatch() } catch { failure = error }
        let message = try #require(failure?.description)
        #expect(message.contains("is full: free space there") && message.contains(state.journal))
        #expect(try journal.stats().records == 0, "nothing of the batch is stored")
        _ = try journal.database.query("PRAGMA max_page_count=1000000")
        try storeBatch()
        try storeBatch()
        #expect(try journal.stats().records == 400)
    }

    @Test func aFileSystemFailureNamesTheSystemError() {
        let error = SQLiteError(code: 4874, message: "disk I/O error", sql: "PRAGMA journal_mode=WAL", systemError: ENOSPC, path: "/s/journal.sqlite")
        #expect(error.description.contains("(No space left on device)") && error.description.contains("/s/journal.sqlite is full"))
        let readOnly = SQLiteError(code: 14, message: "unable to open database file", sql: nil, systemError: EROFS, path: "/s/journal.sqlite")
        #expect(readOnly.description.contains("Read-only file system") && readOnly.description.contains("cannot be written"))
    }
}
