import Foundation
import ODBCSupport
import Testing

/// `esgate mapping test --adapter <odbc adapter>` through the real binary, against the SQLite ODBC driver.
@Suite("mapping test on an ODBC adapter", .enabled(if: sqliteDriverInstalled, "libsqliteodbc is not installed"))
struct MappingTestODBCTests {
    /// Row 1 is an application (two records, with an identity number), row 3 has an impossible time.
    private func fillSource(_ db: ODBCConnection, rows: Int) throws {
        for n in 1...rows {
            var row = stepRow(n, at: n == 3 ? "2026-13-05 08:52:00" : "2026-01-05 08:52:00")
            if n == 1 { row[7] = "01" }
            try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:0\(n)", row: row)
        }
    }

    @Test("prints the records of good rows and the error of a bad row for the first --rows rows; journal and watermark untouched")
    func recordsErrorsAndLimit() async throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        try fillSource(db, rows: 8)
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental",
                                                               query: caseSelect("steps") + " ORDER BY id",
                                                               extra: "watermark_column: updated_at\nbatch_rows: 3"))
        // A journal with state in it: records, a watermark, a quarantined row, the adapter's health.
        #expect(try workspace.adapter().poll().counts.quarantined == 1)
        try insertCase(db, table: "steps", id: 9, updatedAt: "2026-01-05 11:00:00", row: stepRow(9, at: "2026-01-05 09:00:00"))
        let before = try workspace.stateSnapshot()
        #expect(before.contains { $0.contains("source_offsets") && $0.contains("2026-01-05 10:00:08") })

        let text = try await esgate(["mapping", "test", "--config", workspace.configPath, "--adapter", "db", "--rows", "4"])
        #expect(text.code == 1, "a row with errors makes the exit code 1: \(text.err)")
        let lines = text.out.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0.hasPrefix("row ") } == ["row 1:", "row 2:", "row 3:", "row 4:"], "\(text.out)")
        #expect(text.out.contains("ok    <Application><CaseNo>410103006202601050000001</CaseNo>"))
        #expect(text.out.contains("ok    <Step><CaseNo>410103006202601050000004</CaseNo>"))
        #expect(text.out.contains("<IdNumber>410103********4271</IdNumber>"))
        #expect(!text.out.contains("410103195504044271"), "identity numbers stay masked")
        let error = lines.firstIndex(of: "row 3:").flatMap { lines.indices.contains($0 + 1) ? lines[$0 + 1] : nil } ?? ""
        #expect(error.hasPrefix("  ERROR Step.HandledAt (column 办理时间): '2026-13-05 08:52:00'"), "\(text.out)")
        #expect(lines.last == "4 row(s) read, 4 record(s), 1 row(s) with errors")

        let json = try await esgate(["mapping", "test", "--config", workspace.configPath, "--adapter", "db", "--rows", "2", "--json"])
        #expect(json.code == 0, "\(json.err)")
        let rows = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [[String: Any]]
        #expect(rows?.map { $0["line"] as? Int } == [1, 2])
        #expect(rows?.map { ($0["records"] as? [String])?.count } == [2, 1])
        #expect(!json.out.contains("410103195504044271"))

        #expect(try workspace.stateSnapshot() == before, "mapping test leaves the journal, the watermark and the health alone")
    }

    @Test("front-table adapter: no row is marked and no journal is created; errors exit 1, usage errors exit 2")
    func readOnlyAndErrors() async throws {
        let source = try SQLiteSource()
        let db = try source.connect()
        try fillSource(db, rows: 5)
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: source.connectionString, mode: "front-table", query: caseSelect("steps") + " WHERE rec_flag = 0 ORDER BY id",
            extra: "mark_statement: UPDATE steps SET rec_flag = 1 WHERE id = ?\nmark_keys: [id]"))
        let result = try await esgate(["mapping", "test", "--config", workspace.configPath, "--adapter", "db", "--rows", "2"])
        #expect(result.code == 0, "\(result.err)")
        #expect(result.out.contains("2 row(s) read, 3 record(s), 0 row(s) with errors"))
        #expect(try db.query("SELECT count(*) FROM steps WHERE rec_flag <> 0").rows.first?.first == "0")
        #expect(!FileManager.default.fileExists(atPath: workspace.journalPath), "mapping test opens no journal")

        let unknown = try await esgate(["mapping", "test", "--config", workspace.configPath, "--adapter", "nope"])
        #expect(unknown.code == 2)
        #expect(unknown.err.contains("no adapter named 'nope' (known: db)"))
        let withFile = try await esgate(["mapping", "test", "--config", workspace.configPath, "--adapter", "db", "--file", "x.csv"])
        #expect(withFile.code == 2)
        #expect(withFile.err.contains("--file does not apply to ODBC adapter 'db'"))
        #expect(try await esgate(["mapping", "test", "--config", workspace.configPath, "--adapter", "db", "--rows", "many"]).code == 2)
        let help = try await esgate(["mapping", "test", "--help"])
        #expect(help.code == 0)
        #expect(help.out.contains("ODBC adapter"))

        let missingFolder = NSTemporaryDirectory() + "esgate-missing-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: missingFolder) }   // the driver creates the folder
        let missing = missingFolder + "/src.db"
        try workspace.write("adapters/db.yaml", adapterYAML(connection: "Driver=\(sqliteDriver);Database=\(missing);NoCreat=1",
                                                           mode: "snapshot", query: caseSelect("steps")))
        let unreachable = try await esgate(["mapping", "test", "--config", workspace.configPath, "--adapter", "db"])
        #expect(unreachable.code == 1)
        #expect(unreachable.err.contains("adapter db (\(workspace.root.appendingPathComponent("adapters/db.yaml").path): odbc.connection): connect ("), "\(unreachable.err)")
        #expect(unreachable.err.contains("SQLSTATE "))
    }
}
