import Foundation
import Synchronization
import CryptoSupport
import GatewayModel
@testable import SQLiteSupport
import Testing
@testable import Journal

private func temporaryJournal() throws -> (Journal, URL) {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-journal-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return (try Journal(path: folder.appendingPathComponent("journal.sqlite").path), folder)
}

private func step(_ caseNo: String, opinion: String) -> NormalizedRecord {
    NormalizedRecord(type: "Step", key: "\(caseNo)\u{1F}02\u{1F}2026-01-05T08:37:00+08:00",
                     body: "<Step><CaseNo>\(caseNo)</CaseNo><Opinion>\(opinion)</Opinion></Step>")
}

@Suite struct RevisionTests {

    /// A journal whose `adapter_health` table predates "failing since", rows read and lag gets those columns in
    /// place; the old row keeps its values.
    @Test func adapterHealthOfAnOlderJournalGainsItsNewColumns() throws {
        let path = NSTemporaryDirectory() + "esgate-health-\(UUID().uuidString).sqlite"
        defer { for file in [path, path + ".id"] { try? FileManager.default.removeItem(atPath: file) } }
        let journal = try Journal(path: path, durable: false)
        let raw = try SQLiteDatabase(path: path)
        try raw.execute("""
            CREATE TABLE adapter_health(
                adapter TEXT PRIMARY KEY, kind TEXT NOT NULL, last_poll_at INTEGER, last_success_at INTEGER,
                last_error TEXT, last_error_at INTEGER, consecutive_failures INTEGER NOT NULL DEFAULT 0);
            INSERT INTO adapter_health VALUES ('old', 'csv-drop', 1000, NULL, 'x', 1000, 3);
            """)
        let before = try #require(try journal.adapterHealth().first)
        #expect(before.adapter == "old" && before.consecutiveFailures == 3 && before.rowsRead == 0 && before.failingSince == nil)
        try journal.recordPoll(adapter: "old", kind: "csv-drop", PollOutcome(error: "y", rows: 7))
        let after = try #require(try journal.adapterHealth().first)
        #expect(after.consecutiveFailures == 4 && after.lastPollRows == 7 && after.rowsRead == 7)
        #expect(after.failingSince == Date(timeIntervalSince1970: 1), "a run that began before the column existed: since its last known error")
        try journal.recordPoll(adapter: "old", kind: "csv-drop", PollOutcome(rows: 5, lagSeconds: 12.5))
        let healthy = try #require(try journal.adapterHealth().first)
        #expect(healthy.consecutiveFailures == 0 && healthy.rowsRead == 12 && healthy.lagSeconds == 12.5)
        try journal.recordPoll(adapter: "old", kind: "csv-drop", PollOutcome(error: "z"))
        let failing = try #require(try journal.adapterHealth().first)
        #expect(failing.failingSince == failing.lastErrorAt && failing.lagSeconds == 12.5 && failing.lastPollRows == nil)
    }

    /// One connection per adapter: after an upgrade they all find the old table at once, and each must record
    /// its poll (no "duplicate column name" for the ones that lose the race).
    @Test func adaptersUpgradingTheHealthTableTogetherAllRecordTheirPolls() throws {
        for round in 0..<5 {
            let path = NSTemporaryDirectory() + "esgate-health-race-\(UUID().uuidString).sqlite"
            defer { for file in [path, path + ".id"] { try? FileManager.default.removeItem(atPath: file) } }
            _ = try Journal(path: path, durable: false)
            try SQLiteDatabase(path: path).execute("""
                CREATE TABLE adapter_health(
                    adapter TEXT PRIMARY KEY, kind TEXT NOT NULL, last_poll_at INTEGER, last_success_at INTEGER,
                    last_error TEXT, last_error_at INTEGER, consecutive_failures INTEGER NOT NULL DEFAULT 0)
                """)
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 6) { index in
                do {
                    let journal = try Journal(path: path, durable: false)
                    try journal.recordPoll(adapter: "a\(index)", kind: "odbc", PollOutcome(rows: index))
                } catch {
                    failures.withLock { $0.append("round \(round), adapter \(index): \(error)") }
                }
            }
            #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
            #expect(try Journal(path: path).adapterHealth().map(\.rowsRead).sorted() == [0, 1, 2, 3, 4, 5])
        }
    }
    @Test func sameContentAddsNothingChangedContentAddsARevision() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        let first = try journal.batch { try journal.append(step("C1", opinion: "a"), source: "s", origin: "f.csv", line: 2) }
        #expect(first == .stored(rev: 1, seq: 1))
        let again = try journal.batch { try journal.append(step("C1", opinion: "a"), source: "s", origin: "g.csv", line: 9) }
        #expect(again == .unchanged)
        let changed = try journal.batch { try journal.append(step("C1", opinion: "b"), source: "s", origin: "g.csv", line: 9) }
        #expect(changed == .stored(rev: 2, seq: 2))
        let back = try journal.batch { try journal.append(step("C1", opinion: "a"), source: "s", origin: "h.csv", line: 3) }
        #expect(back == .stored(rev: 3, seq: 3), "returning to an older content is a change too")
        let other = try journal.batch { try journal.append(step("C2", opinion: "a"), source: "s", origin: "h.csv", line: 4) }
        #expect(other == .stored(rev: 1, seq: 4), "revisions count per key")
        let entries = try journal.entries(after: 0)
        #expect(entries.map(\.rev) == [1, 2, 3, 1])
        #expect(entries[1].origin == "g.csv")
        #expect(entries[1].line == 9)
        #expect(try journal.head(type: "Step", key: step("C1", opinion: "").key)?.rev == 3)
    }

    @Test func headsKeep16DigestBytesAndStillReadTheFull32OfEarlierVersions() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        let record = step("C1", opinion: "a")
        #expect(try journal.batch { try journal.append(record, source: "s", origin: nil, line: 1) } == .stored(rev: 1, seq: 1))
        let db = try SQLiteDatabase(path: journal.path)
        #expect(try db.query("SELECT length(digest) FROM heads").first?.first?.intValue == 16)
        // A head as an earlier version wrote it: the whole SHA-256.
        try db.prepare("UPDATE heads SET digest = ?1").run([.blob(Digest.sha256(record.body))])
        #expect(try journal.batch { try journal.append(record, source: "s", origin: nil, line: 2) } == .unchanged,
                "the same content is recognized against a 32-byte digest")
        #expect(try journal.batch { try journal.append(step("C1", opinion: "b"), source: "s", origin: nil, line: 3) }
                == .stored(rev: 2, seq: 2))
        #expect(try db.query("SELECT length(digest) FROM heads").first?.first?.intValue == 16)
    }

    @Test func aRolledBackBatchLeavesNoTrace() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        struct Boom: Error {}
        #expect(throws: JournalError.self) {
            try journal.batch {
                _ = try journal.append(step("C1", opinion: "a"), source: "s", origin: nil, line: 1)
                throw Boom()
            }
        }
        #expect(try journal.entries(after: 0).isEmpty)
        #expect(try journal.batch { try journal.append(step("C1", opinion: "a"), source: "s", origin: nil, line: 1) } == .stored(rev: 1, seq: 1))
    }
}

@Suite struct CursorAndQuarantineTests {
    @Test func cursorsOnlyMoveForward() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        for index in 1...5 { _ = try journal.batch { try journal.append(step("C\(index)", opinion: "x"), source: "s", origin: nil, line: index) } }
        #expect(try journal.cursor("uplink:province") == 0)
        try journal.advanceCursor("uplink:province", to: 3)
        try journal.advanceCursor("uplink:province", to: 2)
        #expect(try journal.cursor("uplink:province") == 3)
        #expect(try journal.entries(after: 3).map(\.seq) == [4, 5])
        let stats = try journal.stats()
        #expect(stats.cursors == [JournalStats.CursorPosition(consumer: "uplink:province", seq: 3, lag: 2)])
        #expect(stats.records == 5)
    }

    @Test func quarantineKeepsRawBytesAndHeaderAndCanBeResolved() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        let raw: [UInt8] = [0xB6, 0xFE, 0xC6, 0xDF, 0x2C, 0xFF]
        try journal.batch {
            try journal.quarantine(QuarantineItem(source: "drop", mapping: "m", origin: "a.csv", line: 7, stage: .decode,
                                                  recordType: "", field: "", reason: "bad byte", raw: raw,
                                                  encoding: "gb18030", header: ["办件编号", "备注"]))
        }
        let entry = try #require(try journal.quarantined().first)
        #expect(entry.item.raw == raw)
        #expect(entry.item.header == ["办件编号", "备注"])
        #expect(entry.item.line == 7)
        try journal.resolveQuarantine(id: entry.id)
        #expect(try journal.quarantined().isEmpty)
        #expect(try journal.quarantined(openOnly: false).first?.state == "replayed")
    }

    /// Two rows held for one key: the later one's content wins whichever is replayed first, and a newer
    /// ingested revision supersedes both; identical content never does.
    @Test func theLaterOfTwoQuarantinedRowsWinsWhicheverIsReplayedFirst() throws {
        for laterFirst in [false, true] {
            let (journal, folder) = try temporaryJournal()
            defer { try? FileManager.default.removeItem(at: folder) }
            func hold(_ line: Int) throws {
                try journal.batch {
                    try journal.quarantine(QuarantineItem(source: "drop", mapping: "m", origin: "a.csv", line: line, stage: .map,
                                                          recordType: "Step", field: "StepName", reason: "not in code table",
                                                          raw: Array("row \(line)".utf8), encoding: "utf-8", header: []))
                }
            }
            _ = try journal.append(step("C0", opinion: "before both"), source: "drop", origin: "a.csv", line: 1)
            try hold(2)
            try hold(3)
            let entries = try journal.quarantined()
            let (earlier, later) = (entries[0], entries[1])
            let contents = [earlier.id: step("C0", opinion: "earlier"), later.id: step("C0", opinion: "later")]
            func replay(_ entry: QuarantineEntry) throws -> SupersedingRevision? {
                let record = try #require(contents[entry.id])
                if let revision = try journal.supersedingRevision(of: entry, type: record.type, key: record.key,
                                                                  digest: Journal.contentDigest(of: record.body)) {
                    try journal.supersedeQuarantine(id: entry.id, by: revision)
                    return revision
                }
                guard case .stored(_, let seq) = try journal.append(record, source: "drop", origin: "a.csv", line: 0) else { return nil }
                try journal.resolveQuarantine(id: entry.id, stored: seq...seq)
                return nil
            }
            if laterFirst {
                #expect(try replay(later) == nil)
                #expect(try replay(earlier)?.rev == 2, "the later row's replay is newer than the earlier row")
            } else {
                #expect(try replay(earlier) == nil)
                #expect(try replay(later) == nil, "the earlier row's replay is older than the later row")
            }
            #expect(try journal.entries(after: 0).last?.body.contains("later") == true)
            // A revision ingested after both supersedes an entry, unless it has the entry's own content.
            let fresh = try #require(try journal.quarantined(openOnly: false).first)
            _ = try journal.append(step("C0", opinion: "newest"), source: "drop", origin: "b.csv", line: 2)
            #expect(try journal.supersedingRevision(of: fresh, type: "Step", key: step("C0", opinion: "").key, digest: nil) != nil)
            #expect(try journal.supersedingRevision(of: fresh, type: "Step", key: step("C0", opinion: "").key,
                                                    digest: Journal.contentDigest(of: step("C0", opinion: "newest").body)) == nil)
        }
    }

    /// A quarantine table from before `journal_seq` and the other new columns gains them; its rows get the seq
    /// of the last chunk written before them, and read back with their one reason as their errors.
    @Test func quarantineOfAnOlderJournalGainsItsNewColumns() throws {
        let path = NSTemporaryDirectory() + "esgate-quarantine-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm", ".id"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        do {
            let journal = try Journal(path: path, durable: false, now: { Date(timeIntervalSince1970: 100) })
            _ = try journal.append(step("C1", opinion: "a"), source: "drop", origin: "a.csv", line: 2)
            _ = try journal.append(step("C2", opinion: "a"), source: "drop", origin: "a.csv", line: 3)
        }
        let raw = try SQLiteDatabase(path: path)
        try raw.execute("""
            ALTER TABLE quarantine DROP COLUMN errors; ALTER TABLE quarantine DROP COLUMN journal_seq;
            ALTER TABLE quarantine DROP COLUMN closed_reason; ALTER TABLE quarantine DROP COLUMN replay_first_seq;
            ALTER TABLE quarantine DROP COLUMN replay_last_seq;
            INSERT INTO quarantine(source, mapping, origin, line, stage, record_type, field, reason, raw, encoding, header, created_at)
            VALUES ('drop', 'm', 'a.csv', 4, 'map', 'Step', 'StepName', 'old reason', x'41', 'utf-8', '', 100000),
                   ('drop', 'm', 'a.csv', 5, 'map', 'Step', 'StepName', 'older reason', x'42', 'utf-8', '', 99999);
            """)
        let entries = try Journal(path: path, durable: false).quarantined()
        #expect(entries.map(\.journalSeq) == [2, 0], "written at 100 s: after both records; at 99.999 s: before them")
        #expect(entries.first?.item.errors == ["old reason"])
    }

    @Test func reopeningTheJournalKeepsEverything() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try journal.batch { try journal.append(step("C1", opinion: "a"), source: "s", origin: nil, line: 1) }
        let reopened = try Journal(path: journal.path)
        #expect(try reopened.batch { try reopened.append(step("C1", opinion: "a"), source: "s", origin: nil, line: 1) } == .unchanged)
        #expect(try reopened.batch { try reopened.append(step("C1", opinion: "b"), source: "s", origin: nil, line: 1) } == .stored(rev: 2, seq: 2))
    }

    /// `esgate run` on a new state directory: the adapters, the supervision and the uplink open the journal at
    /// once. The tables were created one statement at a time, so a connection could find the meta table and not
    /// the cursors (its first query failed, and the uplink waited ten seconds before its first push); an esgate
    /// stopped at that moment left such a journal behind. Opening one creates what is missing.
    @Test func aJournalWhoseTablesWereHalfCreatedGetsTheRestWhenOpened() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        let raw = try SQLiteDatabase(path: journal.path)
        try raw.execute("DROP TABLE cursors; DROP TABLE quarantine")
        let reopened = try Journal(path: journal.path)
        #expect(try reopened.cursor("uplink:province") == 0)
        try reopened.advanceCursor("uplink:province", to: 5)
        #expect(try reopened.cursor("uplink:province") == 5)
        #expect(try reopened.quarantined().isEmpty)
    }

    /// The same at start-up, with real connections racing (the creation is now one transaction).
    @Test func connectionsOpeningANewJournalTogetherEachSeeEveryTable() throws {
        for round in 0..<20 {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-journal-race-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: folder) }
            let path = folder.appendingPathComponent("journal.sqlite").path
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 4) { index in
                // The others open the journal as soon as the first one has created its file, while it is
                // still creating the tables.
                if index > 0 { while !FileManager.default.fileExists(atPath: path) { usleep(50) } }
                do {
                    let journal = try Journal(path: path)
                    _ = try journal.cursor("uplink:province")
                    _ = try journal.quarantined()
                } catch {
                    failures.withLock { $0.append("round \(round): \(error)") }
                }
            }
            #expect(failures.withLock { $0 } == [])
        }
    }
}

@Suite struct DeletionTests {
    @Test func aDeletionIsANewRevisionCarryingTheLastContent() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        let record = step("C1", opinion: "a")
        _ = try journal.batch { try journal.append(record, source: "cams", origin: nil, line: 1) }
        let deleted = try journal.batch { try journal.appendDeletion(type: "Step", key: record.key, source: "cams", origin: "snapshot") }
        #expect(deleted == .stored(rev: 2, seq: 2))
        #expect(try journal.batch { try journal.appendDeletion(type: "Step", key: record.key, source: "cams", origin: "snapshot") } == .unchanged,
                "a withdrawn key is not withdrawn twice")
        #expect(try journal.appendDeletion(type: "Step", key: "unknown", source: "cams", origin: nil) == .unchanged)
        let back = try journal.batch { try journal.append(record, source: "cams", origin: nil, line: 1) }
        #expect(back == .stored(rev: 3, seq: 3), "the same content re-appearing after a delete is a new revision")
        let entries = try journal.entries(after: 0)
        #expect(entries.map(\.deleted) == [false, true, false])
        #expect(entries[1].body == record.body)
    }
}

@Suite struct MigrationTests {
    /// A journal as schema version 1 wrote it: digest per record, heads without a record pointer.
    @Test func aVersion1JournalIsMigratedAndKeepsCountingRevisions() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-journal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("journal.sqlite").path
        do {
            let old = try SQLiteDatabase(path: path)
            try old.execute("""
                CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                INSERT INTO meta VALUES ('schema_version', '1');
                CREATE TABLE heads(type TEXT NOT NULL, key TEXT NOT NULL, rev INTEGER NOT NULL, digest BLOB NOT NULL,
                    PRIMARY KEY(type, key)) WITHOUT ROWID;
                CREATE TABLE records(seq INTEGER PRIMARY KEY, type TEXT NOT NULL, key TEXT NOT NULL, rev INTEGER NOT NULL,
                    digest BLOB NOT NULL, body TEXT NOT NULL, source TEXT NOT NULL, origin TEXT, line INTEGER,
                    ingested_at INTEGER NOT NULL);
                CREATE TABLE files(sha256 TEXT PRIMARY KEY, source TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
                    state TEXT NOT NULL, offset INTEGER NOT NULL DEFAULT 0, line INTEGER NOT NULL DEFAULT 1,
                    rows INTEGER NOT NULL DEFAULT 0, records INTEGER NOT NULL DEFAULT 0, quarantined INTEGER NOT NULL DEFAULT 0,
                    encoding TEXT, reason TEXT, started_at INTEGER NOT NULL, finished_at INTEGER);
                CREATE TABLE source_offsets(source TEXT PRIMARY KEY, position TEXT NOT NULL, updated_at INTEGER NOT NULL);
                CREATE TABLE quarantine(id INTEGER PRIMARY KEY, source TEXT NOT NULL, mapping TEXT NOT NULL, origin TEXT NOT NULL,
                    line INTEGER NOT NULL, stage TEXT NOT NULL, record_type TEXT NOT NULL, field TEXT NOT NULL,
                    reason TEXT NOT NULL, raw BLOB NOT NULL, encoding TEXT NOT NULL, header TEXT NOT NULL,
                    state TEXT NOT NULL DEFAULT 'open', attempts INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,
                    resolved_at INTEGER);
                CREATE TABLE cursors(consumer TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated_at INTEGER NOT NULL);
                """)
            let a1 = step("C1", opinion: "a"), a2 = step("C1", opinion: "b"), b1 = step("C2", opinion: "a")
            for (seq, record, rev) in [(1, a1, 1), (2, b1, 1), (3, a2, 2)] {
                try old.prepare("INSERT INTO records VALUES (?1, 'Step', ?2, ?3, ?4, ?5, 's', NULL, 0, 0)")
                    .run([.integer(Int64(seq)), .text(record.key), .integer(Int64(rev)), .blob(Digest.sha256(record.body)), .text(record.body)])
            }
            for (record, rev) in [(a2, 2), (b1, 1)] {
                try old.prepare("INSERT INTO heads VALUES ('Step', ?1, ?2, ?3)")
                    .run([.text(record.key), .integer(Int64(rev)), .blob(Digest.sha256(record.body))])
            }
            try old.execute("INSERT INTO cursors VALUES ('uplink:province', 2, 0)")
        }
        let journal = try Journal(path: path)
        #expect(try journal.cursor("uplink:province") == 2)
        #expect(try journal.entries(after: 0).map(\.rev) == [1, 1, 2])
        #expect(try journal.batch { try journal.append(step("C1", opinion: "b"), source: "s", origin: nil, line: 0) } == .unchanged)
        #expect(try journal.batch { try journal.append(step("C1", opinion: "c"), source: "s", origin: nil, line: 0) } == .stored(rev: 3, seq: 4))
        // The head of C2 points at its record (seq 2): a deletion carries that record's content.
        #expect(try journal.batch { try journal.appendDeletion(type: "Step", key: step("C2", opinion: "").key, source: "s", origin: nil) }
            == .stored(rev: 2, seq: 5))
        #expect(try journal.entries(after: 4).first?.body == step("C2", opinion: "a").body)
        let reopened = try Journal(path: path)
        #expect(try reopened.entries(after: 0).count == 5)
    }
}

@Suite struct WriteTurnTests {
    /// A writer that commits and begins again at once must not keep the lock from a writer already waiting:
    /// SQLite's own busy retry gives no such guarantee (the uplink starved behind a long ingest).
    @Test func aWaitingWriterGetsTheNextTurn() async throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = journal.path
        let events = EventLog()
        let first = Thread {
            guard let db = try? SQLiteDatabase(path: path) else { return }
            try? db.beginWrite()
            events.append("A1")
            // Hold the turn until the second writer is queued behind it, then commit and ask again at once.
            while WriteTurns.shared(for: path).queued < 2 { Thread.sleep(forTimeInterval: 0.001) }
            try? db.commitWrite()
            try? db.beginWrite()
            events.append("A2")
            try? db.commitWrite()
        }
        first.start()
        while !events.contains("A1") { try await Task.sleep(for: .milliseconds(5)) }
        let second = Thread {
            guard let db = try? SQLiteDatabase(path: path) else { return }
            try? db.beginWrite()
            events.append("B")
            try? db.commitWrite()
        }
        second.start()
        while events.count < 3 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(events.all == ["A1", "B", "A2"])
    }
}

private final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func append(_ item: String) { lock.withLock { items.append(item) } }
    func contains(_ item: String) -> Bool { lock.withLock { items.contains(item) } }
    var count: Int { lock.withLock { items.count } }
    var all: [String] { lock.withLock { items } }
}
