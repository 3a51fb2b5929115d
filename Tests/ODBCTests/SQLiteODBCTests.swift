@testable import Adapters
import Foundation
import GatewayConfig
import GatewayModel
import GatewayRuntime
import Journal
import ODBCSupport
import SQLiteSupport
import Testing

/// An SQLite database reached through the SQLite ODBC driver (libsqliteodbc), one file per test.
final class SQLiteSource {
    let path: String
    var connectionString: String { "Driver=\(sqliteDriver);Database=\(path);Timeout=5000" }

    init() throws {
        path = NSTemporaryDirectory() + "esgate-odbc-src-\(UUID().uuidString).db"
        let connection = try ODBCConnection(connectionString: connectionString)
        try createCaseTable(connection, name: "steps", timestampType: "TEXT")
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func connect() throws -> ODBCConnection { try ODBCConnection(connectionString: connectionString) }
}

func adapterYAML(connection: String, mode: String, query: String, extra: String = "") -> String {
    """
    name: db
    kind: odbc
    mapping: gen-cases
    odbc:
      connection: "\(connection.replacingOccurrences(of: "\"", with: "\\\""))"
      mode: \(mode)
      query: '\(query.replacingOccurrences(of: "'", with: "''"))'
      poll_interval: 100ms
    \(extra.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
    """
}

/// A source with `count` case steps stamped `updatedAt`, and a workspace whose one adapter reads them. The source
/// must outlive the test (its file goes with it).
func stepsSource(_ count: Int, updatedAt: String, mode: String, extra: String,
                 query: String = caseSelect("steps")) throws -> (SQLiteSource, ODBCConnection, ODBCWorkspace) {
    let source = try SQLiteSource()
    let db = try source.connect()
    for n in 1...count { try insertCase(db, table: "steps", id: n, updatedAt: updatedAt, row: stepRow(n, at: "2026-01-05 08:52:00")) }
    let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: mode,
                                                           query: query, extra: extra))
    return (source, db, workspace)
}

/// Steps 1...count in a front table flagged by (id, 备注), ordered by id; the rows matching `condition` have no 备注.
func frontTableWithNullKeys(count: Int, where condition: String, batchRows: Int) throws -> (SQLiteSource, ODBCConnection, ODBCWorkspace) {
    let source = try SQLiteSource()
    let db = try source.connect()
    for n in 1...count { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00", note: "v1")) }
    try db.execute("UPDATE steps SET \"备注\" = NULL WHERE \(condition)")
    let workspace = try ODBCWorkspace(adapter: adapterYAML(
        connection: source.connectionString, mode: "front-table", query: caseSelect("steps") + " WHERE rec_flag = 0 ORDER BY id",
        extra: "mark_statement: UPDATE steps SET rec_flag = 1 WHERE id = ? AND \"备注\" = ?\nmark_keys: [id, 备注]\nbatch_rows: \(batchRows)"))
    return (source, db, workspace)
}

@Suite("ODBC over the SQLite driver", .enabled(if: sqliteDriverInstalled, "libsqliteodbc is not installed"))
struct SQLiteODBCTests {
    @Test("wrapper: UTF-16 parameters and block fetch round-trip Chinese text incl. 𠀀; NULL; SQLSTATE errors")
    func wrapperRoundTrip() throws {
        let source = try SQLiteSource()
        let connection = try source.connect()
        try connection.execute("CREATE TABLE t (id INTEGER, name VARCHAR(20), note TEXT)")
        let names = ["二七区", "𠀀𠀁", "郑州市 金水区", "Ünïcødé", "", "a,b\"c"]
        for (index, name) in names.enumerated() {
            try connection.execute("INSERT INTO t VALUES (?, ?, ?)", [.integer(Int64(index)), .text(name), index == 2 ? .null : .text("备注\(index)")])
        }
        let statement = try connection.prepare("SELECT id, name, note FROM t WHERE id >= ? ORDER BY id")
        let cursor = try statement.query([.integer(0)], rowArraySize: 4)
        #expect(cursor.columns.map(\.name) == ["id", "name", "note"])
        var read: [[String?]] = []
        var blocks = 0
        while let block = try cursor.next() {
            blocks += 1
            for row in 0..<block.count { read.append(try (0..<3).map { try block.text(row: row, column: $0) }) }
        }
        #expect(blocks == 2)
        #expect(read.map { $0[1] } == names)
        #expect(read[2][2] == nil)
        #expect(read[3][2] == "备注3")

        let bad = #expect(throws: ODBCError.self) { try connection.execute("SELECT * FROM no_such_table") }
        #expect(bad?.sqlState.isEmpty == false)
        #expect(bad?.description.contains("no_such_table") == true)
    }

    @Test("incremental: a late row inside the lag window arrives once; equal timestamps survive a crash at a batch boundary")
    func incrementalLateRowsAndTies() throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        // 500 rows sharing one timestamp, read in batches of 200.
        for n in 1...500 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        let yaml = adapterYAML(connection: source.connectionString, mode: "incremental", query: caseSelect("steps"),
                               extra: "watermark_column: updated_at\norder_by: [id]\nlag: 10m\nbatch_rows: 200\nfetch_rows: 64")
        let workspace = try ODBCWorkspace(adapter: yaml)
        let crashing = try workspace.adapter()
        crashing.afterCommit = { batches in if batches == 1 { throw FixtureError(message: "simulated kill -9") } }
        #expect(throws: ODBCAdapterError.self) { try crashing.poll() }
        #expect(try workspace.scalar("SELECT count(*) FROM records") == 200)
        #expect(try Journal(path: workspace.journalPath).sourceOffset("db") == "2026-01-05 10:00:00")

        let restarted = try workspace.adapter()
        let report = try restarted.poll()
        #expect(report.counts.rows == 500)
        #expect(report.counts.stored == 300)
        #expect(report.counts.unchanged == 200)
        let afterRestart = try workspace.journalDigest()
        #expect(afterRestart.records == 500)

        // The same rows read without a crash give the same journal.
        let reference = try ODBCWorkspace(adapter: yaml)
        _ = try reference.adapter().poll()
        #expect(try reference.journalDigest() == afterRestart)

        // Later rows, then a row whose transaction "committed late" with an older timestamp (inside the lag).
        try insertCase(db, table: "steps", id: 501, updatedAt: "2026-01-05 10:05:00", row: stepRow(501, at: "2026-01-05 08:52:00"))
        #expect(try restarted.poll().counts.stored == 1)
        #expect(try Journal(path: workspace.journalPath).sourceOffset("db") == "2026-01-05 10:05:00")
        try insertCase(db, table: "steps", id: 502, updatedAt: "2026-01-05 10:01:00", row: stepRow(502, at: "2026-01-05 08:52:00"))
        let late = try restarted.poll()
        #expect(late.counts.stored == 1)
        #expect(late.watermark == "2026-01-05 10:05:00")
        // Nothing new: every re-read row is a no-op.
        #expect(try restarted.poll().counts.stored == 0)
        #expect(try workspace.journalDigest().records == 502)
        // A changed row inside the window becomes a new revision.
        try db.execute("UPDATE steps SET \"备注\" = '已补正', updated_at = '2026-01-05 10:06:00' WHERE id = 7")
        #expect(try restarted.poll().counts.stored == 1)
        #expect(try workspace.scalar("SELECT max(rev) FROM records") == 2)
    }

    @Test("snapshot: the second poll is a no-op; a changed row is one new revision")
    func snapshotNoOp() throws {
        let (source, db, workspace) = try stepsSource(30, updatedAt: "2026-01-05 10:00:00", mode: "snapshot", extra: "batch_rows: 7")
        defer { withExtendedLifetime(source) {} }
        let adapter = try workspace.adapter()
        let first = try adapter.poll()
        #expect(first.counts.stored == 30)
        #expect(first.batches == 5)
        let second = try adapter.poll()
        #expect(second.counts.stored == 0)
        #expect(second.counts.unchanged == 30)
        try db.execute("UPDATE steps SET \"办理人\" = '张怡' WHERE id = 3")
        #expect(try adapter.poll().counts.stored == 1)
    }

    @Test("front table: rows are marked only after they are journaled; a crash in between re-reads them as no-ops")
    func frontTable() throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        for n in 1...25 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: source.connectionString, mode: "front-table", query: caseSelect("steps") + " WHERE rec_flag = 0 ORDER BY id",
            extra: "mark_statement: UPDATE steps SET rec_flag = 1 WHERE id = ?\nmark_keys: [id]\nbatch_rows: 10"))
        let crashing = try workspace.adapter()
        crashing.afterCommit = { batches in if batches == 2 { throw FixtureError(message: "crash between journal and flag") } }
        #expect(throws: ODBCAdapterError.self) { try crashing.poll() }
        // Round 1 journaled and marked; round 2 journaled but not marked.
        #expect(try workspace.scalar("SELECT count(*) FROM records") == 20)
        #expect(try db.query("SELECT count(*) FROM steps WHERE rec_flag = 1").rows.first?.first == "10")

        let restarted = try workspace.adapter()
        let report = try restarted.poll()
        #expect(report.counts.rows == 15)
        #expect(report.counts.unchanged == 10)
        #expect(report.counts.stored == 5)
        #expect(report.marked == 15)
        #expect(try db.query("SELECT count(*) FROM steps WHERE rec_flag = 0").rows.first?.first == "0")
        #expect(try workspace.journalDigest().records == 25)
        #expect(try restarted.poll().counts.rows == 0)
    }

    @Test("front table: a row with a NULL mark key is journaled and reported, not left to fail a later poll")
    func frontTableNullMarkKey() throws {
        let (source, db, workspace) = try frontTableWithNullKeys(count: 6, where: "id = 3", batchRows: 10)
        defer { withExtendedLifetime(source) {} }
        let adapter = try workspace.adapter()
        let first = try adapter.poll()
        // The round after the one that read to the end sees the unmarkable row again: it is not stored or counted twice.
        #expect(first.counts.rows == 6 && first.counts.stored == 6 && first.marked == 5 && first.unmarkable == 1, "\(first)")
        #expect(first.markProblem?.contains("mark key 备注") == true, "\(first.markProblem ?? "-")")
        #expect(adapter.status.lastError?.contains("mark key 备注") == true)
        // The next poll reads the row again (unchanged in the journal) and says so again; it does not fail.
        let second = try adapter.poll()
        #expect(second.counts.rows == 1 && second.counts.unchanged == 1 && second.unmarkable == 1, "\(second)")
        // Once the department gives the row its key, it is marked and the problem is gone.
        try db.execute("UPDATE steps SET \"备注\" = 'v1' WHERE id = 3")
        let fixed = try adapter.poll()
        #expect(fixed.marked == 1 && fixed.markProblem == nil && adapter.status.lastError == nil, "\(fixed)")
        #expect(try db.query("SELECT count(*) FROM steps WHERE rec_flag = 0").rows.first?.first == "0")
    }

    @Test("front table: more rows with a NULL mark key than batch_rows, ordered first, do not keep the rows behind them unread")
    func frontTableUnmarkableRowsDoNotStarveTheOthers() throws {
        let (source, db, workspace) = try frontTableWithNullKeys(count: 7, where: "id <= 3", batchRows: 2)
        defer { withExtendedLifetime(source) {} }
        let first = try workspace.adapter().poll()
        #expect(first.marked == 4 && first.counts.stored == 7 && first.counts.rows == 7, "\(first)")
        #expect(try db.query("SELECT count(*) FROM steps WHERE rec_flag = 0").rows.first?.first == "3", "only the three without a key")
        #expect(first.markProblem?.contains("mark key 备注") == true)
    }

    /// With `batch_rows` 50 the five rows are one round that reads to the end of the result: the poll used to end
    /// there, "5 marked", and every later poll read and marked the same rows again without a word.
    @Test("front table: a mark statement that sets another column than the query filters on fails the poll instead of looping for ever",
          arguments: [(batchRows: 2, journaled: 2), (batchRows: 50, journaled: 5)])
    func frontTableMarkThatDoesNotTakeRowsOut(batchRows: Int, journaled: Int) throws {
        let (source, _, workspace) = try stepsSource(5, updatedAt: "2026-01-05 10:00:00", mode: "front-table",
            extra: "mark_statement: UPDATE steps SET updated_at = '2026-01-06 00:00:00' WHERE id = ?\nmark_keys: [id]\nbatch_rows: \(batchRows)",
            query: caseSelect("steps") + " WHERE rec_flag = 0 ORDER BY id")
        defer { withExtendedLifetime(source) {} }
        do {
            _ = try workspace.adapter().poll()
            Issue.record("the poll ended although no row left the query")
        } catch {
            #expect("\(error)".contains("odbc.mark_statement") && "\(error)".contains("returns them again"), "\(error)")
        }
        #expect(try workspace.journalDigest().records == journaled, "the rows read were journaled once")
    }

    /// The department rewrites a row in the very transaction that marks it (a trigger stands in for its system):
    /// the next round reads the row again, with new content.
    @Test("front table: a row rewritten by the department right after its mark is a new revision, once; rewritten again and again, the poll fails",
          arguments: [(rewrites: 1, fails: false), (rewrites: 100, fails: true)])
    func frontTableRowRewrittenAfterItsMark(rewrites: Int, fails: Bool) throws {
        let (source, db, workspace) = try stepsSource(4, updatedAt: "2026-01-05 10:00:00", mode: "front-table",
            extra: "mark_statement: UPDATE steps SET rec_flag = 1 WHERE id = ?\nmark_keys: [id]\nbatch_rows: 10",
            query: caseSelect("steps") + " WHERE rec_flag = 0 ORDER BY id")
        defer { withExtendedLifetime(source) {} }
        try db.execute("CREATE TABLE rewrites (n INTEGER)")
        try db.execute("INSERT INTO rewrites VALUES (0)")
        try db.execute("""
            CREATE TRIGGER rewrite AFTER UPDATE OF rec_flag ON steps
            WHEN new.id = 3 AND new.rec_flag = 1 AND (SELECT n FROM rewrites) < \(rewrites)
            BEGIN
              UPDATE rewrites SET n = n + 1;
              UPDATE steps SET rec_flag = 0, "备注" = '改' || (SELECT n FROM rewrites) WHERE id = 3;
            END
            """)
        let adapter = try workspace.adapter()
        if fails {
            let error = #expect(throws: ODBCAdapterError.self) { try adapter.poll() }
            #expect(error?.field == "odbc.mark_statement" && error?.description.contains("returns them again") == true, "\(error.map { "\($0)" } ?? "no error")")
            return
        }
        let poll = try adapter.poll()
        #expect(poll.counts.stored == 5 && poll.marked == 5 && poll.keyProblem == nil, "four rows, and row 3's rewrite as its second revision: \(poll)")
        #expect(try db.query("SELECT count(*) FROM steps WHERE rec_flag = 0").rows.first?.first == "0")
        #expect(try workspace.bodies(type: "Step").contains { $0.contains("<Opinion>改1</Opinion>") })
    }

    @Test("front table: two rows of one round that map to one record key with different content are reported")
    func frontTableTwoRowsOneKey() throws {
        let (source, db, workspace) = try stepsSource(3, updatedAt: "2026-01-05 10:00:00", mode: "front-table",
            extra: "mark_statement: UPDATE steps SET rec_flag = 1 WHERE id = ?\nmark_keys: [id]\nbatch_rows: 10",
            query: caseSelect("steps") + " WHERE rec_flag = 0 ORDER BY id")
        defer { withExtendedLifetime(source) {} }
        // Row 4 repeats row 2's case, step and time (the Step record's key) with another note.
        try insertCase(db, table: "steps", id: 4, updatedAt: "2026-01-05 10:00:00", row: stepRow(2, at: "2026-01-05 08:52:00", note: "另一行"))
        let poll = try workspace.adapter().poll()
        #expect(poll.marked == 4 && poll.keyProblem?.contains("two source rows map to the same record key") == true
                && poll.keyProblem?.contains("the later row became the next revision") == true, "\(poll)")
    }

    @Test("bad rows are quarantined once (not once per re-read) and replay works on them")
    func quarantineAndReplay() throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        var bad = stepRow(2, at: "2026-01-05 08:52:00", note: "含逗号,和\"引号\"")
        bad[7] = "09"  // a step code the mapping does not route (the schema knows it)
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: stepRow(1, at: "2026-01-05 08:52:00"))
        try insertCase(db, table: "steps", id: 2, updatedAt: "2026-01-05 10:00:00", row: bad)
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental",
                                                               query: caseSelect("steps"), extra: "watermark_column: updated_at\nlag: 1h"))
        let adapter = try workspace.adapter()
        #expect(try adapter.poll().counts.quarantined == 1)
        // The lag window reads both rows again: the good one is unchanged, the bad one already held, and the
        // counts say so (rows add up).
        let again = try adapter.poll().counts
        #expect(again.rows == 2 && again.unchanged == 1 && again.quarantined == 0 && again.alreadyQuarantined == 1, "\(again)")
        #expect(try workspace.scalar("SELECT count(*) FROM quarantine") == 1)

        // Teach the mapping the code, then replay: the raw values (a UTF-8 CSV line) map now.
        let mappingPath = workspace.root.appendingPathComponent("mappings/gen-cases.yaml").path
        let mapping = try String(contentsOfFile: mappingPath, encoding: .utf8)
        try workspace.write("mappings/gen-cases.yaml", mapping.replacingOccurrences(of: "in: [\"02\", \"03\", \"04\"]", with: "in: [\"02\", \"03\", \"04\", \"09\"]"))
        let gateway = Gateway(configuration: try workspace.loaded(), logger: .silent)
        let replay = try gateway.replayQuarantine()
        #expect(replay.replayed == 1, "\(replay)")
        #expect(replay.stored == 1)
        #expect(try workspace.bodies(type: "Step").contains { $0.contains("含逗号,和\"引号\"") || $0.contains("含逗号,和&quot;引号&quot;") })
    }

    @Test("replay closes a row as superseded when its key got a newer revision since, and still stores the others")
    func replayDoesNotStoreOverANewerRevision() throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        // Step names go through a code table that lacks 'ZZ': such rows are quarantined (map stage).
        var stale = stepRow(1, at: "2026-01-05 08:52:00", handler: "旧名字")
        stale[8] = "ZZ"
        var untouched = stepRow(2, at: "2026-01-05 08:52:00")
        untouched[8] = "ZZ"
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: stale)
        try insertCase(db, table: "steps", id: 2, updatedAt: "2026-01-05 10:00:00", row: untouched)
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental",
                                                               query: caseSelect("steps"), extra: "watermark_column: updated_at"))
        let mappingPath = workspace.root.appendingPathComponent("mappings/gen-cases.yaml").path
        let mapping = try String(contentsOfFile: mappingPath, encoding: .utf8)
        func withStepNames(_ names: String) -> String {
            mapping.replacingOccurrences(of: "      StepName: 环节名称", with: "      StepName: { column: 环节名称, code_table: step_name }")
                .replacingOccurrences(of: "code_tables:\n", with: "code_tables:\n  step_name: { map: { \(names) } }\n")
        }
        try workspace.write("mappings/gen-cases.yaml", withStepNames("承办: 承办"))
        let adapter = try workspace.adapter()
        #expect(try adapter.poll().counts.quarantined == 2)

        // The department corrects row 1 at the source; the next poll stores it as rev 1.
        try db.execute("UPDATE steps SET \"环节名称\" = '承办', \"办理人\" = '新名字', updated_at = '2026-01-05 11:00:00' WHERE id = 1")
        #expect(try adapter.poll().counts.stored == 1)

        // Then the code table learns ZZ, and the operator replays both rows.
        try workspace.write("mappings/gen-cases.yaml", withStepNames("承办: 承办, ZZ: 承办"))
        let replay = try Gateway(configuration: try workspace.loaded(), logger: .silent).replayQuarantine(source: "db")
        #expect(replay.superseded == 1 && replay.replayed == 1 && replay.stored == 1 && replay.stillFailing == 0, "\(replay)")
        #expect(replay.supersededRows.first?.contains("superseded by Step 410103006202601050000001 / 02 / 2026-01-05T08:52:00+08:00 rev 1") == true,
                "\(replay.supersededRows)")
        let steps = try workspace.bodies(type: "Step")
        #expect(steps.count == 2, "no second revision of the corrected row")
        #expect(steps.contains { $0.contains("新名字") } && !steps.contains { $0.contains("旧名字") })
        let entries = try Journal(path: workspace.journalPath).quarantined(openOnly: false)
        #expect(entries.map(\.state) == ["superseded", "replayed"])
        #expect(entries.first?.closedReason?.hasPrefix("superseded by Step ") == true)
    }

    @Test("replay leaves out only the records a newer revision superseded: the row's step is stored, its older case header is not")
    func replaySupersedesRecordByRecord() throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        // A denormalized export: every step row carries its case's header, mapped to an Application too. Row 1's
        // step name is not in the code table yet (its Step quarantined); then a row of the same case brings a
        // changed header (the applicant renamed): the Application's newer revision.
        var first = stepRow(1, at: "2026-01-05 08:52:00")
        first[8] = "ZZ"
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: first)
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental",
                                                               query: caseSelect("steps"), extra: "watermark_column: updated_at"))
        let mappingPath = workspace.root.appendingPathComponent("mappings/gen-cases.yaml").path
        let mapping = try String(contentsOfFile: mappingPath, encoding: .utf8)
            .replacingOccurrences(of: "  - type: Application\n    when:\n      - { column: 环节代码, in: [\"01\"] }",
                                  with: "  - type: Application\n    when:\n      - { column: 环节代码, in: [\"01\", \"02\", \"03\"] }")
        func withStepNames(_ names: String) -> String {
            mapping.replacingOccurrences(of: "      StepName: 环节名称", with: "      StepName: { column: 环节名称, code_table: step_name }")
                .replacingOccurrences(of: "code_tables:\n", with: "code_tables:\n  step_name: { map: { \(names) } }\n")
        }
        try workspace.write("mappings/gen-cases.yaml", withStepNames("承办: 承办, 审核: 审核"))
        let adapter = try workspace.adapter()
        #expect(try adapter.poll().counts.quarantined == 1)
        var renamed = stepRow(1, at: "2026-01-06 09:00:00")
        renamed[5] = "史强丽新"
        renamed[7] = "03"
        renamed[8] = "审核"
        try insertCase(db, table: "steps", id: 2, updatedAt: "2026-01-06 10:00:00", row: renamed)
        #expect(try adapter.poll().counts.stored == 2, "the Application (rev 1, new name) and the step 03")

        try workspace.write("mappings/gen-cases.yaml", withStepNames("承办: 承办, 审核: 审核, ZZ: 承办"))
        let replay = try Gateway(configuration: try workspace.loaded(), logger: .silent).replayQuarantine(source: "db")
        #expect(replay.replayed == 1 && replay.stored == 1 && replay.superseded == 0 && replay.stillFailing == 0, "\(replay)")
        #expect(replay.supersededRecords.count == 1 && replay.supersededRecords.first?.contains("superseded by Application") == true,
                "\(replay.supersededRecords)")
        let steps = try workspace.bodies(type: "Step")
        #expect(steps.count == 2, "step 02 of the quarantined row is stored: \(steps.count)")
        let applications = try workspace.bodies(type: "Application")
        // Rev 1 came with the first poll (the row's valid records are stored, its failing one quarantined), rev 2 with
        // the renamed header; the replay adds no third revision with the old name over it.
        #expect(applications.count == 2 && applications.last?.contains("史强丽新") == true, "the newer header stays: \(applications)")
    }

    @Test("quarantine list shows a database row's key columns: its odbc:N line is only its place in the poll")
    func quarantinedDatabaseRowsShowTheirKeyColumns() async throws {
        let (source, db, workspace) = try stepsSource(1, updatedAt: "2026-01-05 10:00:00", mode: "incremental", extra: "watermark_column: updated_at")
        defer { withExtendedLifetime(source) {} }
        try insertCase(db, table: "steps", id: 2, updatedAt: "2026-01-05 10:00:00", row: stepRow(2, at: "2026-01-05 25:00:00"))
        #expect(try workspace.adapter().poll().counts.quarantined == 1)
        let text = try await esgate(["quarantine", "list", "--config", workspace.configPath])
        #expect(text.code == 0, "\(text.err)")
        #expect(text.out.contains(" db odbc:2 map: "), "\(text.out)")
        #expect(text.out.contains("\n    key: 办件编号=410103006202601050000002, 环节代码=02, 办理时间=2026-01-05 25:00:00\n"), "\(text.out)")
        let json = try await esgate(["quarantine", "list", "--json", "--config", workspace.configPath])
        #expect(json.out.contains("\"key\" : \"办件编号=410103006202601050000002, 环节代码=02, 办理时间=2026-01-05 25:00:00\""), "\(json.out)")
    }

    @Test("a watermark column no row can be read from is the adapter's error, not a silent full re-read each poll")
    func unreadableWatermarkColumn() throws {
        let (source, db, workspace) = try stepsSource(4, updatedAt: "N/A", mode: "incremental", extra: "watermark_column: updated_at")
        defer { withExtendedLifetime(source) {} }
        let adapter = try workspace.adapter()
        let report = try adapter.poll()
        #expect(report.counts.stored == 4, "the rows are stored all the same")
        #expect(report.watermarkProblem?.contains("none of the 4 rows read holds a value of watermark_type timestamp (e.g. 'N/A')") == true)
        let health = try #require(try Journal(path: workspace.journalPath).adapterHealth().first)
        #expect(health.consecutiveFailures == 1 && health.lastError?.contains("odbc.watermark_column") == true)
        // One row with a readable time: the watermark moves, and the adapter is healthy again.
        try insertCase(db, table: "steps", id: 5, updatedAt: "2026-01-05 10:00:00", row: stepRow(5, at: "2026-01-05 08:52:00"))
        let next = try adapter.poll()
        #expect(next.watermarkProblem == nil && next.watermark == "2026-01-05 10:00:00")
        #expect(try Journal(path: workspace.journalPath).adapterHealth().first?.consecutiveFailures == 0)
        // Timeouts: ODBC's whole seconds, 0 meaning none; a fraction is rounded up, never down to "no limit".
        #expect(ODBCAdapter.wholeSeconds(.milliseconds(500)) == 1 && ODBCAdapter.wholeSeconds(.seconds(2)) == 2
                && ODBCAdapter.wholeSeconds(.zero) == 0)
    }

    @Test("a driver that cannot connect gives an error naming the adapter and the SQLSTATE; the next poll retries")
    func connectionFailure() throws {
        let missing = NSTemporaryDirectory() + "esgate-missing-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: missing) }   // the driver creates the folder
        let path = missing + "/src.db"
        let yaml = adapterYAML(connection: "Driver=\(sqliteDriver);Database=\(path);NoCreat=1", mode: "snapshot", query: caseSelect("steps"))
        let workspace = try ODBCWorkspace(adapter: yaml)
        let adapter = try workspace.adapter()
        let error = #expect(throws: ODBCAdapterError.self) { try adapter.poll() }
        #expect(error?.description.contains("adapter db") == true)
        #expect(error?.sqlState?.count == 5)
        #expect(adapter.status.consecutiveFailures == 1)
        // The journal keeps when the failures began, across further failures: `adapter status` shows "since".
        let first = try #require(try Journal(path: workspace.journalPath).adapterHealth().first)
        #expect(first.consecutiveFailures == 1 && first.failingSince != nil && first.failingSince == first.lastErrorAt)
        Thread.sleep(forTimeInterval: 0.01)
        #expect(throws: ODBCAdapterError.self) { try adapter.poll() }
        let second = try #require(try Journal(path: workspace.journalPath).adapterHealth().first)
        #expect(second.consecutiveFailures == 2 && second.failingSince == first.failingSince)
        let secondError = try #require(second.lastErrorAt)
        #expect(secondError > (try #require(first.failingSince)))
        // The database appears: the next poll connects.
        try FileManager.default.createDirectory(atPath: missing, withIntermediateDirectories: true)
        let connection = try ODBCConnection(connectionString: "Driver=\(sqliteDriver);Database=\(path)")
        try createCaseTable(connection, name: "steps", timestampType: "TEXT")
        try insertCase(connection, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: stepRow(1, at: "2026-01-05 08:52:00"))
        #expect(try adapter.poll().counts.stored == 1)
        #expect(adapter.status.lastError == nil)
        let healthy = try #require(try Journal(path: workspace.journalPath).adapterHealth().first)
        #expect(healthy.consecutiveFailures == 0 && healthy.failingSince == nil)
        #expect(healthy.lastPollRows == 1 && healthy.rowsRead == 1)
        #expect(healthy.lagSeconds == nil, "a snapshot has no watermark to trail")
    }

    @Test("Gateway.runOnce polls ODBC adapters and reports their counts and failures")
    func gatewayRunOnce() throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        for n in 1...5 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:0\(n)", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental",
                                                               query: caseSelect("steps"), extra: "watermark_column: updated_at"))
        let gateway = Gateway(configuration: try workspace.loaded(), logger: .silent)
        let summary = try gateway.runOnce()
        #expect(summary.polls.count == 1)
        #expect(summary.counts.stored == 5)
        #expect(summary.polls.first?.watermark == "2026-01-05 10:00:05")
        #expect(summary.pollErrors.isEmpty)
        // Rows read and lag, kept for `adapter status`: the watermark is Beijing time (the mapping's default zone).
        let health = try #require(try Journal(path: workspace.journalPath).adapterHealth().first)
        #expect(health.lastPollRows == 5 && health.rowsRead == 5)
        let watermarkInstant = Date(timeIntervalSince1970: 1_767_578_405)   // 2026-01-05T02:00:05Z
        let expectedLag = Date().timeIntervalSince(watermarkInstant)
        #expect(abs(try #require(health.lagSeconds) - expectedLag) < 120)
        try db.execute("DROP TABLE steps")
        Thread.sleep(forTimeInterval: 0.1)
        let failed = try gateway.runOnce()
        #expect(failed.polls.isEmpty)
        #expect(failed.pollErrors.first?.contains("adapter db") == true)
        // A failed poll does not pull the watermark along: the gateway trails the source by more now, and the lag
        // says so (a database down for an hour must not show the lag of its last good poll).
        let failing = try #require(try Journal(path: workspace.journalPath).adapterHealth().first)
        #expect(failing.consecutiveFailures == 1)
        #expect(try #require(failing.lagSeconds) >= (try #require(health.lagSeconds)) + 0.09)
    }

    @Test("esgate run: a poll that only re-reads the last timestamp (nothing new) logs nothing at info")
    func idlePollsAreQuiet() async throws {
        let (source, db, workspace) = try stepsSource(3, updatedAt: "2026-01-05 10:00:00", mode: "incremental",
                                                     extra: "watermark_column: updated_at\nlag: 1m")
        defer { withExtendedLifetime((source, db)) {} }
        let log = RecordingLogHandler()
        let gateway = Gateway(configuration: try workspace.loaded(), logger: Logger(component: "esgate", minimum: .info, handler: log))
        let run = Task { try await gateway.run() }
        // poll_interval 100ms: wait for at least three polls (each reading the three rows of the watermark's second
        // again), however busy the machine is, rather than for a fixed time.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, (try Journal(path: workspace.journalPath).adapterHealth().first?.rowsRead ?? 0) < 9 {
            try await Task.sleep(for: .milliseconds(100))
        }
        run.cancel()
        _ = await run.result
        let polls = log.lines.filter { $0.contains("adapter db: ") }
        #expect(polls.count == 1, "only the poll that stored something: \(polls)")
        #expect(polls.first?.contains("3 rows, 3 stored") == true)
        #expect(try Journal(path: workspace.journalPath).adapterHealth().first?.rowsRead ?? 0 >= 9, "it did poll")
    }

    @Test("esgate run --once exits 1 when an ODBC poll failed (the database is gone), so cron and monitoring notice")
    func runOnceExitCodeOnPollFailure() async throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        for n in 1...3 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:0\(n)", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental",
                                                               query: caseSelect("steps"), extra: "watermark_column: updated_at"))
        let healthy = try await esgate(["run", "--once", "--config", workspace.configPath])
        #expect(healthy.code == 0, "\(healthy.out)\(healthy.err)")
        try db.execute("DROP TABLE steps")
        let failed = try await esgate(["run", "--once", "--config", workspace.configPath])
        #expect(failed.code == 1, "\(failed.out)\(failed.err)")
        #expect(failed.out.contains("adapter db ("), "the error is printed as before: \(failed.out)")
        #expect(failed.out.contains("total: "), "and the summary: \(failed.out)")
        let json = try await esgate(["run", "--once", "--json", "--config", workspace.configPath])
        #expect(json.code == 1)
        #expect(json.out.contains("\"pollErrors\""))
    }

    @Test("config check names a missing password_file with its adapter file and line, and says it contacted no source")
    func configCheckNamesAMissingPasswordFile() async throws {
        let source = try SQLiteSource()
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "snapshot",
                                                               query: caseSelect("steps"), extra: "password_file: secrets/db.pass"))
        let missing = try await esgate(["config", "check", "--config", workspace.configPath])
        let adapterFile = workspace.root.appendingPathComponent("adapters/db.yaml").path
        #expect(missing.code == 1 && missing.out.contains("\(adapterFile):") && missing.out.contains("odbc.password_file: ")
                && missing.out.contains("secrets/db.pass: no such file"), "\(missing.out)\(missing.err)")
        try FileManager.default.createDirectory(at: workspace.root.appendingPathComponent("adapters/secrets"), withIntermediateDirectories: true)
        try workspace.write("adapters/secrets/db.pass", "pw\n")
        let fine = try await esgate(["config", "check", "--config", workspace.configPath])
        #expect(fine.code == 0 && fine.out.contains("no source was contacted: `esgate mapping test --adapter NAME`"), "\(fine.out)\(fine.err)")
    }

    @Test("status and list commands work from a shell without the service's secrets; run still needs them")
    func statusWithoutTheServicesSecrets() async throws {
        let source = try SQLiteSource()
        _ = try source.connect()
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString + ";PWD=${ESGATE_TEST_UNSET_SECRET}",
                                                               mode: "snapshot", query: caseSelect("steps"), extra: ""))
        for command in [["adapter", "status"], ["status"], ["journal", "stats"], ["quarantine", "list"], ["alert", "list"]] {
            let result = try await esgate(command + ["--config", workspace.configPath])
            #expect(result.code == 0 && !result.err.contains("is not set"), "\(command): \(result.err)")
        }
        let run = try await esgate(["run", "--once", "--config", workspace.configPath])
        #expect(run.code == 1 && run.err.contains("environment variable ESGATE_TEST_UNSET_SECRET is not set"), "\(run.err)")
    }

    @Test("esgate run --once exits 1 when a poll read rows but its watermark cannot move (adapter status counts it failed)")
    func runOnceExitCodeOnWatermarkProblem() async throws {
        let (source, _, workspace) = try stepsSource(2, updatedAt: "N/A", mode: "incremental", extra: "watermark_column: updated_at")
        defer { withExtendedLifetime(source) {} }
        let run = try await esgate(["run", "--once", "--config", workspace.configPath])
        #expect(run.code == 1, "\(run.out)\(run.err)")
        #expect(run.out.contains("db: problem to fix: ") && run.out.contains("failed: adapter(s) with a problem to fix: db"), "\(run.out)")
    }

    @Test("configuration: strict odbc section")
    func configurationErrors() throws {
        let workspace = try ODBCWorkspace(adapter: """
            name: db
            kind: odbc
            mapping: gen-cases
            odbc:
              connection: "DSN=x;PWD=${DB_PASSWORD}"
              mode: front-table
              query: SELECT 1
              mark_statement: UPDATE t SET f = 1 WHERE a = ? AND b = ?
              mark_keys: [a]
              colour: blue
            """)
        #expect(throws: (any Error).self) { try workspace.loaded() }
        switch loadConfiguration(path: workspace.configPath, environment: ["DB_PASSWORD": "x"]) {
        case .success: Issue.record("expected errors")
        case .failure(let errors):
            let text = errors.description
            #expect(text.contains("odbc.mark_keys"))
            #expect(text.contains("odbc.colour"))
        }
    }

    @Test("two source rows that map to one record key with different content are the adapter's error, not silent churn")
    func rowsSharingARecordKey() throws {
        let (source, db, workspace) = try stepsSource(3, updatedAt: "2026-01-05 10:00:00", mode: "snapshot", extra: "batch_rows: 2")
        defer { withExtendedLifetime(source) {} }
        // Row 9 repeats row 2's case, step and time (the Step record's key) with another note.
        try insertCase(db, table: "steps", id: 9, updatedAt: "2026-01-05 10:00:00", row: stepRow(2, at: "2026-01-05 08:52:00", note: "补正"))
        let adapter = try workspace.adapter()
        let first = try adapter.poll()
        #expect(first.keyProblem?.contains("1 record(s) stored twice under one key") == true, "\(first.keyProblem ?? "-")")
        #expect(first.keyProblem?.contains("Step 410103006202601050000002") == true)
        // Every poll stores both again: that is what the error is about.
        let second = try adapter.poll()
        #expect(second.counts.stored >= 2 && second.keyProblem != nil)
        let health = try #require(try Journal(path: workspace.journalPath).adapterHealth().first)
        #expect(health.consecutiveFailures == 2 && health.lastError?.contains("two source rows map to the same record key") == true)
        // The department removes the duplicate: one more revision, then quiet and healthy.
        try db.execute("DELETE FROM steps WHERE id = 9")
        #expect(try adapter.poll().keyProblem == nil)
        let quiet = try adapter.poll()
        #expect(quiet.counts.stored == 0 && quiet.keyProblem == nil)
        #expect(try Journal(path: workspace.journalPath).adapterHealth().first?.consecutiveFailures == 0)
    }

    @Test("column names in the adapter file: wrong case, quoted, with DESC, or two result columns of one name fail naming the key and what to change")
    func columnNamesThatDoNotFit() async throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: stepRow(1, at: "2026-01-05 08:52:00"))
        // A join's two note columns: the mapping reads 备注, and would silently have taken the first.
        let twice = caseSelect("steps", extra: "updated_at, id, \"办理人\" AS \"备注\"")
        let cases: [(mode: String, query: String, extra: String, field: String, says: String)] = [
            ("incremental", caseSelect("steps"), "watermark_column: UPDATED_AT", "odbc.watermark_column", "the query returns updated_at"),
            ("incremental", caseSelect("steps"), "watermark_column: updated_at\norder_by: [id desc]", "odbc.order_by", "without quotes, ASC/DESC"),
            ("incremental", caseSelect("steps"), "watermark_column: '\"updated_at\"'", "odbc.watermark_column", "bare column name"),
            ("snapshot", twice, "", "mapping", "/mappings/gen-cases.yaml) is 2 columns of the query (positions 3, 18)"),
            ("front-table", caseSelect("steps"), "mark_statement: UPDATE steps SET rec_flag = 1 WHERE id = ?\nmark_keys: [ID]", "odbc.mark_keys", "the query returns id"),
        ]
        // Spaces around a name are no difference to the mapping (nor to the check).
        let padded = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "snapshot",
                                                            query: caseSelect("steps").replacingOccurrences(of: "\"备注\"", with: "\"备注\" AS \" 备注 \"")))
        #expect(try padded.adapter().poll().counts.stored == 1)
        for (mode, query, extra, field, says) in cases {
            let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: mode, query: query, extra: extra))
            let error = #expect(throws: ODBCAdapterError.self) { try workspace.adapter().poll() }
            #expect(error?.field == field && error?.description.contains(says) == true, "\(error.map { "\($0)" } ?? "no error")")
            // mapping test says it before going live.
            let sample = try await esgate(["mapping", "test", "--adapter", "db", "--config", workspace.configPath])
            #expect(sample.code == 1 && sample.err.contains(": \(field)): ") && sample.err.contains(says), "\(sample.out)\(sample.err)")
        }
        // Several at once: mapping test names every one, so one run shows all there is to fix.
        let several = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental", query: twice,
                                                             extra: "watermark_column: UPDATED_AT\norder_by: [ID]"))
        let all = try await esgate(["mapping", "test", "--adapter", "db", "--config", several.configPath])
        #expect(all.code == 1 && all.err.contains(": mapping): ") && all.err.contains(": odbc.watermark_column): ")
                && all.err.contains(": odbc.order_by): "), "\(all.err)")
    }

    @Test("adapter reread: a row that committed later than the lag is read from an earlier watermark, once; the watermark stays")
    func rereadFromAnEarlierWatermark() async throws {
        let (source, db, workspace) = try stepsSource(3, updatedAt: "2026-01-05 10:00:00", mode: "incremental",
                                                     extra: "watermark_column: updated_at\norder_by: [id]\nlag: 10m")
        defer { withExtendedLifetime(source) {} }
        #expect(try await esgate(["run", "--once", "--config", workspace.configPath]).code == 0)
        // Stamped an hour before the watermark: past the lag, so a poll never reads it.
        try insertCase(db, table: "steps", id: 4, updatedAt: "2026-01-05 09:00:00", row: stepRow(4, at: "2026-01-05 08:52:00"))
        let missed = try await esgate(["run", "--once", "--json", "--config", workspace.configPath])
        #expect(missed.code == 0 && missed.out.contains("\"stored\" : 0"), "\(missed.out)")
        let reread = try await esgate(["adapter", "reread", "db", "--from", "2026-01-05 08:00:00", "--config", workspace.configPath])
        #expect(reread.code == 0 && reread.out.contains("db (odbc incremental): 4 rows, 1 records stored, 3 unchanged")
                && reread.out.contains("watermark 2026-01-05 10:00:00"), "\(reread.out)\(reread.err)")
        #expect(try workspace.journalDigest().records == 4)
        #expect(try Journal(path: workspace.journalPath).sourceOffset("db") == "2026-01-05 10:00:00", "the watermark did not move back")
        // Usage errors, said before anything connects or is recorded: a value that is no timestamp, an adapter that
        // is not there, an adapter that has not polled yet (its first poll reads everything).
        let badValue = try await esgate(["adapter", "reread", "db", "--from", "yesterday", "--config", workspace.configPath])
        #expect(badValue.code == 2 && badValue.err.contains("--from 'yesterday' is not a value of watermark_type timestamp"), "\(badValue.err)")
        #expect(try Journal(path: workspace.journalPath).adapterHealth().first?.consecutiveFailures == 0, "a usage error is no failed poll")
        let fresh = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental", query: caseSelect("steps"),
                                                           extra: "watermark_column: updated_at"))
        let first = try await esgate(["adapter", "reread", "db", "--from", "2026-01-05 08:00:00", "--config", fresh.configPath])
        #expect(first.code == 2 && first.err.contains("has no watermark yet: its first poll reads everything"), "\(first.err)")
        let unknown = try await esgate(["adapter", "reread", "nope", "--from", "2026-01-05 08:00:00", "--config", workspace.configPath])
        #expect(unknown.code == 2 && unknown.err.contains("no adapter named 'nope' (known: db)"), "\(unknown.err)")
    }

    @Test("adapter status keeps the last error after a recovery, and says it is cleared")
    func lastErrorAfterRecovery() async throws {
        let (source, _, workspace) = try stepsSource(2, updatedAt: "2026-01-05 10:00:00", mode: "snapshot", extra: "",
                                                     query: caseSelect("no_such_table"))
        defer { withExtendedLifetime(source) {} }
        #expect(try await esgate(["run", "--once", "--config", workspace.configPath]).code == 1)
        let failing = try await esgate(["adapter", "status", "--config", workspace.configPath])
        #expect(failing.out.contains("failure(s) in a row") && failing.out.contains("last error (") && !failing.out.contains("cleared"), "\(failing.out)")
        try workspace.write("adapters/db.yaml", adapterYAML(connection: source.connectionString, mode: "snapshot", query: caseSelect("steps")))
        #expect(try await esgate(["run", "--once", "--config", workspace.configPath]).code == 0)
        let recovered = try await esgate(["adapter", "status", "--config", workspace.configPath])
        #expect(recovered.out.contains("cleared: the polls since have succeeded)") && recovered.out.contains("no_such_table"), "\(recovered.out)")
    }

    @Test("a driver name that is not installed: the error names odbc.connection and how to list the installed drivers")
    func driverNameNotInstalled() async throws {
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: "Driver={PostgreSQL Unicod};Server=127.0.0.1", mode: "snapshot",
                                                               query: caseSelect("steps")))
        let error = #expect(throws: ODBCAdapterError.self) { try workspace.adapter().poll() }
        #expect(error?.field == "odbc.connection" && error?.hint?.contains("`odbcinst -q -d` lists the drivers") == true,
                "\(error.map { "\($0)" } ?? "no error")")
        let sample = try await esgate(["mapping", "test", "--adapter", "db", "--config", workspace.configPath])
        #expect(sample.code == 1 && sample.err.contains("PostgreSQL Unicod") && sample.err.contains("odbcinst -q -d"), "\(sample.err)")
    }

    @Test("mapping test says when the watermark column holds no value of watermark_type, which a poll finds only after reading the whole table")
    func watermarkTypeThatDoesNotFitTheColumn() async throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        for id in 1...3 {
            try insertCase(db, table: "steps", id: id, updatedAt: "2026-01-05 10:00:0\(id)", row: stepRow(id, at: "2026-01-05 08:52:00"))
        }
        let query = caseSelect("steps", extra: "updated_at, id")
        let cases: [(extra: String, field: String, says: String)] = [
            ("watermark_column: updated_at\nwatermark_type: integer", "odbc.watermark_type", "(e.g. '2026-01-05 10:00:01'), so a poll could not move the watermark and would read every row again; set watermark_type: timestamp"),
            ("watermark_column: id\nwatermark_type: timestamp", "odbc.watermark_type", "none of the 3 value(s) sampled is a value of watermark_type timestamp (e.g. '1')"),
            ("watermark_column: 事项名称", "odbc.watermark_column", "(e.g. '建设工程规划许可'), so a poll could not move the watermark and would read every row again; pick a watermark_column that holds timestamps or integers"),
        ]
        for (extra, field, says) in cases {
            let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental", query: query, extra: extra))
            let sample = try await esgate(["mapping", "test", "--adapter", "db", "--config", workspace.configPath])
            #expect(sample.code == 1 && sample.err.contains(": \(field)): ") && sample.err.contains(says), "\(sample.out)\(sample.err)")
        }
        // A column that is NULL in every row sampled (rows from before it was filled) says nothing: no verdict.
        let empty = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental", query: query,
                                                           extra: "watermark_column: 备注\nwatermark_type: integer"))
        let unknown = try await esgate(["mapping", "test", "--adapter", "db", "--config", empty.configPath])
        #expect(unknown.code == 0, "\(unknown.out)\(unknown.err)")
        let fitting = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental", query: query,
                                                             extra: "watermark_column: id\nwatermark_type: integer"))
        let sample = try await esgate(["mapping", "test", "--adapter", "db", "--config", fitting.configPath])
        #expect(sample.code == 0, "\(sample.out)\(sample.err)")
    }

    @Test("a value longer than max_column_chars: the error points at odbc.max_column_chars and the row of the result, not of the fetched block")
    func valueLongerThanMaxColumnChars() throws {
        let (source, db, workspace) = try stepsSource(3, updatedAt: "2026-01-05 10:00:00", mode: "snapshot",
                                                      extra: "max_column_chars: 100\nfetch_rows: 2")
        defer { withExtendedLifetime(source) {} }
        try db.execute("UPDATE steps SET \"备注\" = ? WHERE id = 3", [.text(String(repeating: "补", count: 300))])
        let error = #expect(throws: ODBCAdapterError.self) { try workspace.adapter().poll() }
        #expect(error?.field == "odbc.max_column_chars" && error?.sqlState == "01004", "\(error.map { "\($0)" } ?? "no error")")
        #expect(error?.description.contains("value of column 备注 in row 3 of the result is longer than max_column_chars (100)") == true,
                "\(error.map { "\($0)" } ?? "no error")")
    }

    @Test("the query as a subquery: trailing terminators go, also before comments; quoted and commented ; stay")
    func subqueryText() {
        let cases: [(String, String)] = [
            ("SELECT 1;", "SELECT 1"), ("SELECT 1 ;  \n", "SELECT 1"), ("SELECT 1;;", "SELECT 1"),
            ("SELECT 1 ; -- nightly view", "SELECT 1"), ("SELECT 1; /* a; b */ ", "SELECT 1"),
            ("SELECT 1 -- a;b", "SELECT 1 -- a;b"), ("SELECT ';' AS x", "SELECT ';' AS x"),
            ("SELECT \"a;b\" FROM t;", "SELECT \"a;b\" FROM t"), ("SELECT 1; SELECT 2", "SELECT 1; SELECT 2"),
            ("SELECT 'it''s;' AS x ;", "SELECT 'it''s;' AS x"),
        ]
        for (query, expected) in cases { #expect(ODBCAdapter.subquery(query) == expected, "\(query)") }
        // A statement on its own gets a line break after a final -- comment; ? in literals and comments are text.
        #expect(SQLText.statement("SELECT 1 -- why?; ") == "SELECT 1 -- why?;\n")
        #expect(SQLText.statement("SELECT '--' AS x;") == "SELECT '--' AS x")
        #expect(SQLText.parameterMarkers("UPDATE t SET a = '?', b = `?` /* ? */ WHERE id = ? -- ?") == ["?"])
        #expect(SQLText.parameterMarkers("SELECT a::text, b[lo:hi], ':x' FROM t WHERE c = :dept AND d IN (:x1)") == [":dept", ":x1"])
    }

    @Test("watermark text, ordering and lag arithmetic")
    func watermarks() throws {
        #expect(Watermark(parsing: "2026-01-05 10:00:00", kind: .timestamp)?.text == "2026-01-05 10:00:00")
        #expect(Watermark(parsing: "2026-01-05T10:00:00.5", kind: .timestamp)?.text == "2026-01-05 10:00:00.500000")
        #expect(Watermark(parsing: "2024-03-01 00:00:00", kind: .timestamp)?.lowered(lag: .seconds(1), lagIds: 0).text == "2024-02-29 23:59:59")
        #expect(Watermark(parsing: "1969-12-31 23:59:59.25", kind: .timestamp)?.text == "1969-12-31 23:59:59.250000")
        #expect(Watermark(parsing: "120", kind: .integer)?.lowered(lag: .zero, lagIds: 20).text == "100")
        #expect(Watermark(parsing: "yesterday", kind: .timestamp) == nil)
        #expect(Watermark(parsing: "120.0000000000", kind: .integer)?.text == "120")
        #expect(Watermark(parsing: "120.5", kind: .integer) == nil)
        #expect(Watermark(parsing: "120.", kind: .integer)?.text == "120")
    }
}
