@testable import Adapters
import Foundation
import GatewayRuntime
import Journal
import ODBCSupport
import Testing

/// Legacy tables and queries as a department's DBA writes them, on the shared PostgreSQL server (in the
/// serialized PostgreSQL suite, which restarts that server in one test).
extension PostgresODBCTests {
    /// A source whose steps table, changed by `alter`, holds step 1 stamped 2026-01-05 10:00:00.
    private func oneStep(after alter: String) throws -> (Source, ODBCConnection) {
        let source = try Source()
        let db = try source.connect()
        try db.execute(alter)
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: stepRow(1, at: "2026-01-05 08:52:00"))
        return (source, db)
    }

    @Test("incremental: a query copied from a SQL console with a trailing semicolon or line comment is wrapped correctly")
    func queryWithTrailingSemicolonOrComment() throws {
        let source = try Source()
        let db = try source.connect()
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: stepRow(1, at: "2026-01-05 08:52:00"))
        for query in [caseSelect("steps") + " WHERE id > 0;  \n", caseSelect("steps") + " WHERE id > 0 -- real cases only"] {
            let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental",
                                                                   query: query, extra: "watermark_column: updated_at\norder_by: [id]"))
            let adapter = try workspace.adapter()
            #expect(try adapter.poll().counts.stored == 1, "\(query)")
            #expect(try adapter.poll().counts.unchanged == 1, "the second poll binds the watermark: \(query)")
        }
    }

    @Test("snapshot, front-table and mapping test: a query ending in a -- comment, and a ? inside a literal of the mark statement")
    func trailingCommentOutsideIncremental() async throws {
        let source = try Source()
        let db = try source.connect()
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: stepRow(1, at: "2026-01-05 08:52:00"))
        // psqlODBC appends to the statement text: a final -- comment would swallow that ("Error while executing the query").
        let query = caseSelect("steps") + " WHERE rec_flag = 0 -- unsent rows? ask 李工"
        let snapshot = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "snapshot", query: query))
        #expect(try snapshot.adapter().poll().counts.stored == 1)
        let sample = try await esgate(["mapping", "test", "--adapter", "db", "--config", snapshot.configPath])
        #expect(sample.code == 0 && sample.out.contains("1 row(s) read"), "\(sample.out)\(sample.err)")
        // The ? in the literal is text, not a second parameter: config check counts one.
        let front = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "front-table", query: query,
                                                           extra: "mark_statement: UPDATE steps SET rec_flag = 1, \"备注\" = '已报送?' WHERE id = ?\nmark_keys: [id]"))
        let check = try await esgate(["config", "check", "--config", front.configPath])
        #expect(check.code == 0, "\(check.out)\(check.err)")
        let report = try front.adapter().poll()
        #expect(report.counts.stored == 1 && report.marked == 1)
        #expect(try db.query("SELECT rec_flag, \"备注\" FROM steps").rows == [["1", "已报送?"]])
    }

    @Test("incremental over an id kept in NUMERIC(38,10): its text '3.0000000000' is the integer 3, so the watermark moves")
    func integerWatermarkInNumericColumn() throws {
        let source = try Source()
        let db = try source.connect()
        try db.execute("ALTER TABLE steps ADD seq NUMERIC(38,10)")
        for n in 1...3 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        try db.execute("UPDATE steps SET seq = id")
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental",
                                                               query: caseSelect("steps", extra: "seq"),
                                                               extra: "watermark_column: seq\nwatermark_type: integer"))
        let adapter = try workspace.adapter()
        let first = try adapter.poll()
        #expect(first.counts.stored == 3 && first.watermark == "3" && first.watermarkProblem == nil && first.withoutWatermark == 0)
        let second = try adapter.poll()
        #expect(second.counts.rows == 1 && second.counts.unchanged == 1, "the bound applies: only seq >= 3 is read again")
    }

    @Test("incremental over a timestamp kept in a VARCHAR column (the docs' 办理时间 example): later polls bind it as text")
    func watermarkInTextColumn() throws {
        let source = try Source()
        let db = try source.connect()
        // 办理时间 is VARCHAR(100) in this table, as in many legacy systems; 50 rows share one minute.
        for n in 1...50 {
            try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00",
                           row: stepRow(n, at: "2026-01-05 08:52:\(String(format: "%02d", n % 60))"))
        }
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental",
                                                               query: caseSelect("steps"),
                                                               extra: "watermark_column: 办理时间\norder_by: [id]\nlag: 10s"))
        let adapter = try workspace.adapter()
        let first = try adapter.poll()
        #expect(first.counts.stored == 50)
        #expect(first.watermark == "2026-01-05 08:52:50")
        try insertCase(db, table: "steps", id: 51, updatedAt: "2026-01-05 10:00:00", row: stepRow(51, at: "2026-01-05 08:53:10"))
        let second = try adapter.poll()
        #expect(second.counts.stored == 1)
        #expect(second.watermark == "2026-01-05 08:53:10")
        // A restarted process (no type known yet) binds it as text too.
        let third = try workspace.adapter().poll()
        #expect(third.counts.stored == 0)
        #expect(third.counts.rows >= 1 && third.counts.rows < 51, "only the last minute or so is read again: \(third.counts.rows)")
        #expect(try workspace.journalDigest().records == 51)
    }

    @Test("text longer than the size the driver declares (unbounded varchar, long text) is read up to max_column_chars")
    func textLongerThanDeclaredSize() throws {
        let source = try Source()
        let db = try source.connect()
        // psqlODBC declares an unbounded varchar as 255 characters and text as 8190, whatever the values hold.
        try db.execute("ALTER TABLE steps ALTER COLUMN \"备注\" TYPE varchar, ADD COLUMN \"材料\" text")
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00",
                       row: stepRow(1, at: "2026-01-05 08:52:00", note: String(repeating: "补", count: 600)))
        try db.execute("UPDATE steps SET \"材料\" = repeat('材', 17000)")
        let query = caseSelect("steps", extra: "updated_at, id, \"材料\"")
        let columns = try db.prepare(query).query([], maxColumnCharacters: 20_000).columns
        #expect(columns.first { $0.name == "备注" }?.size == 255)
        #expect(columns.first { $0.name == "材料" }?.size == 8190)
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "snapshot",
                                                               query: query, extra: "max_column_chars: 20000"))
        let report = try workspace.adapter().poll()
        #expect(report.counts.rows == 1)
        #expect(report.counts.stored + report.counts.quarantined >= 1)
        // A value longer than max_column_chars still fails, and the message says which limit it hit.
        let strict = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "snapshot",
                                                            query: query, extra: "max_column_chars: 5000"))
        let error = #expect(throws: ODBCAdapterError.self) { try strict.adapter().poll() }
        #expect(error?.sqlState == "01004")
        #expect(error?.description.contains("材料") == true)
        #expect(error?.description.contains("max_column_chars") == true)
    }

    @Test("an unconstrained numeric holding more digits than the 28 psqlODBC declares is read, not failed on every poll")
    func numericLongerThanDeclared() throws {
        let (source, db) = try oneStep(after: "ALTER TABLE steps ADD amount numeric")
        try db.execute("UPDATE steps SET amount = 1.5e100")
        // The amount in the place of the last column, 备注, which the mapping puts into Opinion.
        let columns = caseColumns.dropLast().map { "\"\($0)\"" }.joined(separator: ", ")
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "snapshot",
                                                               query: "SELECT \(columns), amount AS \"备注\" FROM steps"))
        #expect(try workspace.adapter().poll().counts.stored == 1)
        #expect(try workspace.bodies(type: "Step").first?.contains("<Opinion>15" + String(repeating: "0", count: 99) + "</Opinion>") == true)
    }

    @Test("incremental: a row stamped years ahead (a typo in the year) does not carry the watermark past every later row")
    func futureTimestampDoesNotStallTheFeed() throws {
        let source = try Source()
        let db = try source.connect()
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: stepRow(1, at: "2026-01-05 08:52:00"))
        try insertCase(db, table: "steps", id: 2, updatedAt: "2062-01-05 10:00:00", row: stepRow(2, at: "2026-01-05 08:52:00"))
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental",
                                                               query: caseSelect("steps"),
                                                               extra: "watermark_column: updated_at\norder_by: [id]\nlag: 10m"))
        let adapter = try workspace.adapter()
        let first = try adapter.poll()
        #expect(first.counts.stored == 2, "the row is ingested all the same")
        #expect(first.watermark == "2026-01-05 10:00:00")
        try insertCase(db, table: "steps", id: 3, updatedAt: "2026-01-05 10:05:00", row: stepRow(3, at: "2026-01-05 08:52:00"))
        let second = try adapter.poll()
        #expect(second.counts.stored == 1, "the row written after it is not skipped")
        #expect(second.watermark == "2026-01-05 10:05:00")
        #expect(try workspace.journalDigest().records == 3)
    }

    @Test("incremental: a row without a timestamp (NULL) written after the first poll is ingested and counted, not skipped for good")
    func rowsWithoutWatermarkAfterTheFirstPoll() throws {
        let (source, db) = try oneStep(after: "ALTER TABLE steps ALTER COLUMN updated_at DROP NOT NULL")
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental",
                                                               query: caseSelect("steps"),
                                                               extra: "watermark_column: updated_at\norder_by: [id]"))
        let adapter = try workspace.adapter()
        #expect(try adapter.poll().counts.stored == 1)
        // The department's application inserts a row and stamps it later (or never).
        try insertCase(db, table: "steps", id: 2, updatedAt: "2026-01-05 11:00:00", row: stepRow(2, at: "2026-01-05 08:53:00"))
        try db.execute("UPDATE steps SET updated_at = NULL WHERE id = 2")
        let second = try adapter.poll()
        #expect(second.counts.stored == 1, "the NULL-stamped row is read, not lost")
        #expect(second.withoutWatermark == 1)
        #expect(second.watermark == "2026-01-05 10:00:00", "it does not move the watermark")
        #expect(try workspace.journalDigest().records == 2)
        // Read again by every poll (a no-op), and stamped at last: its new time moves the watermark.
        let third = try adapter.poll()
        #expect(third.counts.stored == 0 && third.counts.unchanged == 2 && third.withoutWatermark == 1)
        try db.execute("UPDATE steps SET updated_at = TIMESTAMP '2026-01-05 11:00:00' WHERE id = 2")
        let fourth = try adapter.poll()
        #expect(fourth.withoutWatermark == 0 && fourth.watermark == "2026-01-05 11:00:00")
        #expect(try workspace.journalDigest().records == 2)
    }

    @Test("a required field whose column is NULL is quarantined with the adapter, the row's values, the field and the column")
    func requiredFieldNullNamesTheColumn() async throws {
        let source = try Source()
        let db = try source.connect()
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: stepRow(1, at: "2026-01-05 08:52:00"))
        try db.execute("UPDATE steps SET \"办件编号\" = NULL WHERE id = 1")
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "snapshot", query: caseSelect("steps")))
        #expect(try workspace.adapter().poll().counts.quarantined == 1)
        let entry = try #require(try Journal(path: workspace.journalPath).quarantined(source: "db", openOnly: true, limit: 10).first)
        #expect(entry.item.source == "db" && entry.item.recordType == "Step" && entry.item.field == "CaseNo")
        #expect(entry.item.reason.contains("Step.CaseNo (column 办件编号)"), "\(entry.item.reason)")
        // What the operator reads, and what mapping test says about the same row.
        let list = try await esgate(["quarantine", "list", "--config", workspace.configPath])
        #expect(list.out.contains("db odbc:1 validate: Step.CaseNo (column 办件编号): missing"), "\(list.out)")
        let sample = try await esgate(["mapping", "test", "--adapter", "db", "--config", workspace.configPath])
        #expect(sample.out.contains("ERROR Step.CaseNo (column 办件编号): missing"), "\(sample.out)")
    }

    @Test("a bad query, mark statement or connection: the error names the adapter file and the field, with the SQLSTATE")
    func errorsNameFileAndField() throws {
        let source = try Source()
        let cases: [(yaml: String, field: String, state: String)] = [
            (adapterYAML(connection: source.connectionString, mode: "snapshot", query: "SELEC * FROM steps"), "odbc.query", "42601"),
            (adapterYAML(connection: source.connectionString, mode: "front-table", query: caseSelect("steps") + " WHERE rec_flag = 0",
                         extra: "mark_statement: UPDATE steps SET rec_flagx = 1 WHERE id = ?\nmark_keys: [id]"), "odbc.mark_statement", "42703"),
            (adapterYAML(connection: source.server.connectionString(database: "no_such_db"), mode: "snapshot", query: caseSelect("steps")),
             "odbc.connection", "08001"),
        ]
        let db = try source.connect()
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: stepRow(1, at: "2026-01-05 08:52:00"))
        for (yaml, field, state) in cases {
            let workspace = try ODBCWorkspace(adapter: yaml)
            let error = #expect(throws: ODBCAdapterError.self) { try workspace.adapter().poll() }
            let text = error?.description ?? ""
            #expect(text.hasPrefix("adapter db (\(workspace.root.appendingPathComponent("adapters/db.yaml").path): \(field)): "), "\(text)")
            #expect(error?.sqlState == state, "\(text)")
        }
    }
}
