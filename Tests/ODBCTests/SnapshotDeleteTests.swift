@testable import Adapters
import Foundation
import GatewayModel
import GatewayRuntime
import Journal
import ODBCSupport
import SQLiteSupport
import TestSupport
import Testing
import Uplink
import XMLSupport

// MARK: - Helpers

/// The revisions of step row `n`'s record (the gen-cases Step key starts with the case number): rev, op, body.
func stepRevisions(_ workspace: ODBCWorkspace, _ n: Int) throws -> [(rev: Int64, op: Int64, body: String)] {
    let db = try openJournalForInspection(path: workspace.journalPath)
    let caseNo = "41010300620260105" + String(format: "%07d", n)
    let statement = try db.prepare("SELECT rev, op, body FROM records WHERE type = 'Step' AND key LIKE ?1 ORDER BY seq")
    try statement.bind([.text(caseNo + "%")])
    var revisions: [(rev: Int64, op: Int64, body: String)] = []
    while try statement.step() {
        revisions.append((statement.int(at: 0), statement.int(at: 1), statement.withBytes(at: 2) { StoredBody.xml($0) }))
    }
    return revisions
}

func snapshotYAML(_ connection: String, _ extra: String = "", query: String = caseSelect("steps")) -> String {
    adapterYAML(connection: connection, mode: "snapshot", query: query, extra: "deletes: true\nbatch_rows: 3\nfetch_rows: 4\n" + extra)
}

/// A handler name longer than the schema's 64 characters: the row maps, its Step fails validation on a field
/// that is not part of the key.
let overlongHandler = String(repeating: "张", count: 70)

/// Builds one PUI package of every journal entry after `seq` and checks it against the schema.
func packageText(_ workspace: ODBCWorkspace, after seq: Int64 = 0) throws -> String {
    let journal = try Journal(path: workspace.journalPath)
    let validator = try XMLSchemaValidator(schemaText: try PUISchema.shipped().schemaText)
    let builder = PackageBuilder(sender: "410103", receiver: "410000", validator: validator)
    let candidates = builder.select(try journal.entries(after: seq), packageId: "410103-1")
    let built = try #require(try builder.build(n: 1, candidates: candidates, now: Date()))
    let document = try XMLDocument(bytes: built.request, preserveWhitespace: true)
    #expect(validator.validate(document, element: "Package", namespace: puiNamespace).isEmpty)
    return String(decoding: built.request, as: UTF8.self)
}

func occurrences(of needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

// MARK: - SQLite driver

@Suite("snapshot deletes over the SQLite driver", .enabled(if: sqliteDriverInstalled, "libsqliteodbc is not installed"))
struct SnapshotDeleteTests {
    @Test("removed rows become one delete revision each (last content, rev + 1); no change adds nothing; a returning row is a new upsert; the package says op=\"delete\"")
    func removedRowsAreWithdrawnOnce() throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        for n in 1...10 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        let workspace = try ODBCWorkspace(adapter: snapshotYAML(source.connectionString))
        let adapter = try workspace.adapter()
        let first = try adapter.poll()
        #expect(first.counts.stored == 10)
        #expect(first.batches == 1, "records and deletions of a poll are one journal transaction")
        #expect(first.deletes && first.deleted == 0)

        try db.execute("DELETE FROM steps WHERE id IN (3, 7)")
        let second = try adapter.poll()
        #expect(second.deleted == 2)
        #expect(second.counts.stored == 0 && second.counts.unchanged == 8)
        for n in [3, 7] {
            let revisions = try stepRevisions(workspace, n)
            #expect(revisions.map(\.rev) == [1, 2])
            #expect(revisions.map(\.op) == [0, 1])
            #expect(revisions.first?.body == revisions.last?.body)
        }
        let withdrawn = try Journal(path: workspace.journalPath).entries(after: 10)
        #expect(withdrawn.count == 2 && withdrawn.allSatisfy { $0.deleted && $0.rev == 2 && $0.source == "db" })

        let third = try adapter.poll()
        #expect(third.deleted == 0 && third.counts.stored == 0)
        #expect(try workspace.scalar("SELECT count(*) FROM records") == 12)
        #expect(try workspace.scalar("SELECT count(*) FROM snapshot_keys WHERE source = 'db'") == 8)

        // The uplink sends the two withdrawals as op="delete" records, in a schema-valid package.
        let package = try packageText(workspace, after: 10)
        #expect(occurrences(of: "op=\"delete\"", in: package) == 2)
        #expect(package.contains("rev=\"2\""))

        try insertCase(db, table: "steps", id: 3, updatedAt: "2026-01-05 11:00:00", row: stepRow(3, at: "2026-01-05 08:52:00"))
        let back = try adapter.poll()
        #expect(back.counts.stored == 1 && back.deleted == 0)
        #expect(try stepRevisions(workspace, 3).map(\.op) == [0, 1, 0])
        #expect(try stepRevisions(workspace, 3).last?.rev == 3)
        #expect(try workspace.scalar("SELECT count(*) FROM snapshot_keys WHERE source = 'db'") == 9)
        // A fresh process (new adapter, new journal connection) finds nothing to do either.
        let restarted = try workspace.adapter().poll()
        #expect(restarted.deleted == 0 && restarted.counts.stored == 0)
    }

    @Test("the mass-deletion guard: an emptied table or too many missing rows withdraw nothing and show as the adapter's error")
    func massDeletionGuard() throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        for n in 1...10 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        let workspace = try ODBCWorkspace(adapter: snapshotYAML(source.connectionString))
        let adapter = try workspace.adapter()
        _ = try adapter.poll()

        try db.execute("DELETE FROM steps")
        let emptied = try adapter.poll()
        #expect(emptied.deleted == 0 && emptied.deletionsRefused == 10)
        #expect(emptied.deletionRefusal?.contains("10 of 10") == true)
        #expect(adapter.status.lastError?.contains("max_delete_percent") == true)
        #expect(adapter.status.consecutiveFailures == 1)
        let health = try #require(try Journal(path: workspace.journalPath).adapterHealth().first { $0.adapter == "db" })
        #expect(health.lastError?.contains("max_delete_percent") == true)
        #expect(health.consecutiveFailures == 1)
        #expect(try workspace.scalar("SELECT count(*) FROM records WHERE op = 1") == 0)
        #expect(try workspace.scalar("SELECT count(*) FROM snapshot_keys") == 10)

        // Four rows come back: six of ten missing is still more than 50 %.
        for n in 1...4 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        let most = try adapter.poll()
        #expect(most.deletionsRefused == 6 && most.deleted == 0)
        #expect(adapter.status.consecutiveFailures == 2)

        // The operator confirms by raising the limit: the six go, and the adapter is healthy again.
        try workspace.write("adapters/db.yaml", snapshotYAML(source.connectionString, "max_delete_percent: 60"))
        let confirmed = try workspace.adapter()
        let report = try confirmed.poll()
        #expect(report.deleted == 6 && report.deletionRefusal == nil)
        #expect(confirmed.status.lastError == nil)
        let healed = try #require(try Journal(path: workspace.journalPath).adapterHealth().first { $0.adapter == "db" })
        #expect(healed.consecutiveFailures == 0)
        #expect(try workspace.scalar("SELECT count(*) FROM records WHERE op = 1") == 6)
    }

    @Test("a quarantined row is not a removed row: its key stays; when its key itself is bad, its record type's deletions wait")
    func quarantinedRowsKeepTheirKeys() throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        for n in 1...8 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        let workspace = try ODBCWorkspace(adapter: snapshotYAML(source.connectionString))
        let adapter = try workspace.adapter()
        _ = try adapter.poll()

        // Row 2 fails the schema on a field outside the key; row 8 is really gone.
        try db.execute("UPDATE steps SET \"办理人\" = ? WHERE id = 2", [.text(overlongHandler)])
        try db.execute("DELETE FROM steps WHERE id = 8")
        let bad = try adapter.poll()
        #expect(bad.counts.quarantined == 1)
        #expect(bad.deleted == 1 && bad.deletionsHeld == 0)
        #expect(try stepRevisions(workspace, 2).map(\.op) == [0])
        #expect(try stepRevisions(workspace, 8).map(\.op) == [0, 1])
        // The same bad row at the next poll: still held once, still not withdrawn.
        let again = try adapter.poll()
        #expect(again.deleted == 0 && again.counts.quarantined == 0)
        #expect(try workspace.scalar("SELECT count(*) FROM quarantine") == 1)

        // Row 3's time (part of the Step key) no longer parses: its key is unknown, so no Step key is
        // provably gone. Row 7 leaves meanwhile: it waits, and so does row 3's old key.
        try db.execute("UPDATE steps SET \"办理时间\" = 'yesterday' WHERE id = 3")
        try db.execute("DELETE FROM steps WHERE id = 7")
        let unknownKey = try adapter.poll()
        #expect(unknownKey.counts.quarantined == 1)
        #expect(unknownKey.deleted == 0 && unknownKey.deletionsHeld == 2)
        #expect(try stepRevisions(workspace, 7).map(\.op) == [0])

        // Row 3 is repaired: row 7 goes now, row 3 stays.
        try db.execute("UPDATE steps SET \"办理时间\" = '2026-01-05 08:52:00' WHERE id = 3")
        let repaired = try adapter.poll()
        #expect(repaired.deleted == 1 && repaired.deletionsHeld == 0)
        #expect(try stepRevisions(workspace, 7).map(\.op) == [0, 1])
        #expect(try stepRevisions(workspace, 3).map(\.op) == [0])

        // A row that no record route takes: not even its type is known, nothing is withdrawn.
        try db.execute("UPDATE steps SET \"环节代码\" = '09' WHERE id = 4")
        try db.execute("DELETE FROM steps WHERE id = 1")
        let unrouted = try adapter.poll()
        #expect(unrouted.deleted == 0 && unrouted.deletionsHeld == 2)
        #expect(try workspace.scalar("SELECT count(*) FROM records WHERE op = 1") == 2)
    }

    @Test("a read that fails half-way stores and withdraws nothing; the next complete read does both")
    func failedReadDeletesNothing() throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        for n in 1...10 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        let workspace = try ODBCWorkspace(adapter: snapshotYAML(source.connectionString))
        _ = try workspace.adapter().poll()
        try db.execute("DELETE FROM steps WHERE id IN (9, 10)")
        try db.execute("UPDATE steps SET \"办理人\" = '张怡' WHERE id = 1")

        // abs(INT64_MIN) is an SQLite runtime error: the query fails at row 5, after rows were fetched.
        let failing = caseSelect("steps", extra: "updated_at, id, CASE WHEN id = 5 THEN abs(-9223372036854775807 - 1) ELSE 0 END AS boom") + " ORDER BY id"
        try workspace.write("adapters/db.yaml", snapshotYAML(source.connectionString, query: failing))
        let broken = try workspace.adapter()
        #expect(throws: ODBCAdapterError.self) { try broken.poll() }
        #expect(try workspace.scalar("SELECT count(*) FROM records") == 10)
        #expect(try workspace.scalar("SELECT count(*) FROM snapshot_keys") == 10)

        try workspace.write("adapters/db.yaml", snapshotYAML(source.connectionString))
        let report = try workspace.adapter().poll()
        #expect(report.deleted == 2 && report.counts.stored == 1)
    }

    @Test("snapshots without deletes and other modes keep no snapshot keys")
    func withoutDeletesNothingIsWithdrawn() throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        for n in 1...4 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "snapshot", query: caseSelect("steps")))
        let adapter = try workspace.adapter()
        _ = try adapter.poll()
        try db.execute("DELETE FROM steps WHERE id = 2")
        let report = try adapter.poll()
        #expect(!report.deletes && report.deleted == 0)
        #expect(try workspace.scalar("SELECT count(*) FROM records WHERE op = 1") == 0)
    }

    @Test("esgate run --once prints the deletions of a snapshot poll, in text and JSON")
    func runOncePrintsDeletions() async throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        for n in 1...4 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        let workspace = try ODBCWorkspace(adapter: snapshotYAML(source.connectionString))
        let first = try await esgate(["run", "--once", "--config", workspace.configPath])
        #expect(first.code == 0, "\(first.err)")
        #expect(first.out.contains("db (odbc snapshot): 4 rows, 4 records stored, 0 unchanged, 0 quarantined, 0 deleted"), "\(first.out)")
        try db.execute("DELETE FROM steps WHERE id = 4")
        let second = try await esgate(["run", "--once", "--json", "--config", workspace.configPath])
        #expect(second.code == 0, "\(second.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(second.out.utf8)) as? [String: Any])
        let polls = try #require(json["polls"] as? [[String: Any]])
        #expect(polls.first?["deleted"] as? Int == 1)
        #expect(try workspace.scalar("SELECT count(*) FROM records WHERE op = 1") == 1)
    }
}

// MARK: - PostgreSQL

extension PostgresODBCTests {
    @Test("snapshot deletes over PostgreSQL: withdrawals once, re-appearance, quarantined row kept, mass-deletion guard")
    func snapshotDeletes() throws {
        let source = try Source()
        let db = try source.connect()
        for n in 1...20 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        let workspace = try ODBCWorkspace(adapter: snapshotYAML(source.connectionString, query: caseSelect("steps") + " ORDER BY id"))
        let adapter = try workspace.adapter()
        #expect(try adapter.poll().counts.stored == 20)

        try db.execute("DELETE FROM steps WHERE id IN (4, 5, 6)")
        try db.execute("UPDATE steps SET \"办理人\" = ? WHERE id = 9", [.text(overlongHandler)])
        let removed = try adapter.poll()
        #expect(removed.deleted == 3 && removed.counts.quarantined == 1)
        #expect(try stepRevisions(workspace, 9).map(\.op) == [0])
        for n in 4...6 {
            let revisions = try stepRevisions(workspace, n)
            #expect(revisions.map(\.rev) == [1, 2] && revisions.map(\.op) == [0, 1])
            #expect(revisions.first?.body == revisions.last?.body)
        }
        let unchanged = try adapter.poll()
        #expect(unchanged.deleted == 0 && unchanged.counts.stored == 0)

        try insertCase(db, table: "steps", id: 5, updatedAt: "2026-01-05 11:00:00", row: stepRow(5, at: "2026-01-05 08:52:00"))
        #expect(try adapter.poll().counts.stored == 1)
        #expect(try stepRevisions(workspace, 5).map(\.rev) == [1, 2, 3])

        try db.execute("DELETE FROM steps")
        let emptied = try adapter.poll()
        #expect(emptied.deleted == 0 && emptied.deletionsRefused == 18)
        #expect(adapter.status.lastError?.contains("max_delete_percent") == true)
        #expect(try workspace.scalar("SELECT count(*) FROM records WHERE op = 1") == 3)
        #expect(occurrences(of: "op=\"delete\"", in: try packageText(workspace)) == 3)
    }
}
