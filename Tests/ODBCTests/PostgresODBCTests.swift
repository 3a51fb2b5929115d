@testable import Adapters
import Foundation
import GatewayRuntime
import Journal
import ODBCSupport
import Testing

/// PostgreSQL 15 through psqlODBC (`{PostgreSQL Unicode}`, UseDeclareFetch=1): one server for the process,
/// one database per test.
/// Serialized: one test restarts the shared server.
@Suite("ODBC over PostgreSQL", .serialized, .enabled(if: PostgresServer.available, PostgresServer.skipReason))
struct PostgresODBCTests {
    struct Source {
        let server: PostgresServer
        let database: String
        var connectionString: String { server.connectionString(database: database, fetch: 100) }

        init() throws {
            server = try PostgresServer.server()
            database = try server.createDatabase()
            let connection = try connect()
            try createCaseTable(connection, name: "steps")
        }

        func connect() throws -> ODBCConnection { try ODBCConnection(connectionString: connectionString) }

        /// Inserts `rows` step rows (ids 1…rows, one Step record each) stamped `updatedAt`, an SQL expression of `n`.
        func insertSteps(_ rows: Int, updatedAt: String) throws {
            let names = caseColumns.map { "\"\($0)\"" }.joined(separator: ", ")
            let template = stepRow(0, at: "2026-01-05 08:52:00").dropFirst().map { "'\($0)'" }.joined(separator: ", ")
            try connect().execute("INSERT INTO steps (id, updated_at, \(names)) SELECT n, \(updatedAt), '41010300620260105' || lpad(n::text, 7, '0'), \(template) FROM generate_series(1, \(rows)) n")
        }
    }

    @Test("Chinese text incl. 𠀀 round-trips through parameters, block fetch and the adapter into the journal")
    func chineseRoundTrip() throws {
        let source = try Source()
        let db = try source.connect()
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00",
                       row: stepRow(1, at: "2026-01-05 08:52:00", handler: "𠀀张怡", note: "二七区·郑州 «补正»"))
        let read = try db.query("SELECT \"办理人\", \"备注\" FROM steps WHERE id = ?", [.integer(1)])
        #expect(read.columns == ["办理人", "备注"])
        #expect(read.rows.first?.first == "𠀀张怡")
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental",
                                                               query: caseSelect("steps"), extra: "watermark_column: updated_at"))
        let report = try workspace.adapter().poll()
        #expect(report.counts.stored == 1)
        #expect(report.watermark == "2026-01-05 10:00:00")
        let body = try workspace.bodies(type: "Step").first ?? ""
        #expect(body.contains("𠀀张怡"))
        #expect(body.contains("二七区·郑州 «补正»"))
    }

    @Test("a row whose transaction commits after a later row was pulled is delivered exactly once")
    func lateCommit() throws {
        let source = try Source()
        let early = try source.connect()
        let late = try source.connect()
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental",
                                                               query: caseSelect("steps"),
                                                               extra: "watermark_column: updated_at\norder_by: [id]\nlag: 2m"))
        let adapter = try workspace.adapter()
        // The late transaction stamps its row at 10:00:00 but has not committed yet…
        try late.setAutocommit(false)
        try insertCase(late, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: stepRow(1, at: "2026-01-05 08:52:00"))
        // …while a row stamped 10:00:30 commits and is pulled.
        try insertCase(early, table: "steps", id: 2, updatedAt: "2026-01-05 10:00:30", row: stepRow(2, at: "2026-01-05 08:52:00"))
        let first = try adapter.poll()
        #expect(first.counts.stored == 1)
        #expect(first.watermark == "2026-01-05 10:00:30")
        try late.commit()
        let second = try adapter.poll()
        #expect(second.counts.stored == 1)
        #expect(second.counts.unchanged == 1)
        #expect(try adapter.poll().counts.stored == 0)
        #expect(try workspace.journalDigest().records == 2)
    }

    @Test("500 rows with one timestamp, batches of 200, a crash after the first batch: all 500, no duplicates")
    func equalTimestampsCrash() throws {
        let source = try Source()
        let db = try source.connect()
        try db.setAutocommit(false)
        for n in 1...500 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        try db.commit()
        let yaml = adapterYAML(connection: source.connectionString, mode: "incremental", query: caseSelect("steps"),
                               extra: "watermark_column: updated_at\nbatch_rows: 200\nfetch_rows: 50")
        let workspace = try ODBCWorkspace(adapter: yaml)
        let crashing = try workspace.adapter()
        crashing.afterCommit = { batches in if batches == 1 { throw FixtureError(message: "simulated kill -9") } }
        #expect(throws: ODBCAdapterError.self) { try crashing.poll() }
        #expect(try workspace.journalDigest().records == 200)
        let report = try workspace.adapter().poll()
        #expect(report.counts.rows == 500)
        let reference = try ODBCWorkspace(adapter: yaml)
        _ = try reference.adapter().poll()
        let digest = try workspace.journalDigest()
        #expect(digest.records == 500)
        #expect(digest == (try reference.journalDigest()))
    }

    @Test("kill -9 of a real `esgate run` after its first batch of rows sharing one timestamp: the restart journals every row once",
          .timeLimit(.minutes(2)))
    func killDashNineEqualTimestamps() async throws {
        // The in-process test above uses 500 rows; a real process pulls those in ~20 ms (debug build), too short
        // a window to land a kill between the first and the last commit every time. 20,000 rows sharing the
        // timestamp keep the pull going for about a second and a half, in the same batches of 200.
        let rows = 20_000
        let source = try Source()
        try source.insertSteps(rows, updatedAt: "TIMESTAMP '2026-01-05 10:00:00'")
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: source.server.connectionString(database: source.database, fetch: 50), mode: "incremental",
            query: caseSelect("steps"), extra: "watermark_column: updated_at\norder_by: [id]\nbatch_rows: 200\nfetch_rows: 50"))
        // The journal does not exist until the gateway has opened it: that counts as nothing committed.
        func committed() -> Int { Int((try? workspace.scalar("SELECT count(*) FROM records WHERE source = 'db'")) ?? 0) }

        // mapping test on the same adapter first: three rows of the 20,000, and no journal yet.
        let sample = try await esgate(["mapping", "test", "--config", workspace.configPath, "--adapter", "db", "--rows", "3"])
        #expect(sample.code == 0, "\(sample.err)")
        #expect(sample.out.hasSuffix("3 row(s) read, 3 record(s), 0 row(s) with errors\n"), "\(sample.out)")
        #expect(!FileManager.default.fileExists(atPath: workspace.journalPath))

        let first = try EsgateProcess(["run", "--config", workspace.configPath])
        var seen: [Int] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while first.isRunning, ContinuousClock.now < deadline {
            let count = committed()
            if seen.last != count { seen.append(count) }
            if count > 0 && count < rows {
                first.kill9()
                break
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        try await first.wait()
        let afterKill = committed()
        #expect(afterKill > 0 && afterKill < rows, "killed mid-pull: \(afterKill) of \(rows) rows committed (seen \(seen)) \(first.errorOutput)")
        #expect(afterKill % 200 == 0, "only whole batches are committed")
        #expect(try Journal(path: workspace.journalPath).sourceOffset("db") == "2026-01-05 10:00:00")

        let restart = try EsgateProcess(["run", "--once", "--config", workspace.configPath])
        #expect(try await restart.wait() == 0, "\(restart.errorOutput)")
        #expect(restart.output.contains("db (odbc incremental): \(rows) rows, \(rows - afterKill) records stored, \(afterKill) unchanged, 0 quarantined"),
                "the restart reads the shared timestamp again and stores only what was missing: \(restart.output)")
        #expect(committed() == rows)
        #expect(try workspace.scalar("SELECT count(DISTINCT key) FROM records WHERE source = 'db'") == Int64(rows))
        #expect(try workspace.scalar("SELECT count(*) FROM (SELECT type, key, rev FROM records GROUP BY type, key, rev HAVING count(*) > 1)") == 0)
        #expect(try workspace.scalar("SELECT max(rev) FROM records") == 1, "no row came back as a second revision")
        #expect(try workspace.scalar("SELECT count(*) FROM quarantine") == 0)
    }

    /// The stop tests read the gateway's info lines (the workspace logs errors only).
    private func logAtInfo(_ workspace: ODBCWorkspace) throws {
        let text = try String(contentsOfFile: workspace.configPath, encoding: .utf8)
        try text.replacingOccurrences(of: "log_level: error", with: "log_level: info")
            .write(toFile: workspace.configPath, atomically: true, encoding: .utf8)
    }

    @Test("SIGTERM while the query runs: `esgate run` cancels it (SQLCancel) and stops within seconds, not after the query; nothing is committed",
          .timeLimit(.minutes(2)))
    func sigtermCancelsARunningQuery() async throws {
        let source = try Source()
        let db = try source.connect()
        try source.insertSteps(50, updatedAt: "TIMESTAMP '2026-01-05 10:00:00'")
        // The server sleeps 60 s before the first row: a slow query, as a department's report view can be.
        let slow = caseSelect("steps s CROSS JOIN (SELECT pg_sleep(60)) z", extra: "s.updated_at, s.id")
            .replacingOccurrences(of: ", \"", with: ", s.\"")
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: source.server.connectionString(database: source.database), mode: "incremental",
            query: slow, extra: "watermark_column: updated_at\norder_by: [id]\nquery_timeout: 300s"))
        try logAtInfo(workspace)
        func sleepingQueries() throws -> Int {
            let result = try db.query("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND state = 'active' AND pid <> pg_backend_pid()")
            return Int(result.rows.first?.first.flatMap { $0 } ?? "") ?? -1
        }
        let gateway = try EsgateProcess(["run", "--config", workspace.configPath])
        // Wait until the query is running on the server, then stop the gateway.
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline, try sleepingQueries() == 0 {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try sleepingQueries() == 1)
        #expect(gateway.isRunning, "\(gateway.errorOutput)")
        let stopped = ContinuousClock.now
        kill(gateway.pid, SIGTERM)
        let code = try await gateway.wait(timeout: .seconds(45))
        let took = ContinuousClock.now - stopped
        #expect(code == 0, "\(gateway.errorOutput)")
        #expect(took < .seconds(15), "stopped after \(took), not when the 60 s query would have ended: \(gateway.errorOutput)")
        #expect(gateway.errorOutput.contains("poll stopped for shutdown after 0 rows"), "\(gateway.errorOutput)")
        #expect(!gateway.errorOutput.contains(" error ["), "a stop is not logged as the adapter's failure: \(gateway.errorOutput)")
        // The server no longer runs it either.
        #expect(try sleepingQueries() == 0)
        #expect(try workspace.scalar("SELECT count(*) FROM records WHERE source = 'db'") == 0)
        #expect(try Journal(path: workspace.journalPath).sourceOffset("db") == nil)
    }

    @Test("SIGTERM mid-pull: `esgate run` stops before the poll's end, whole batches committed; the next run stores only the rest",
          .timeLimit(.minutes(2)))
    func sigtermMidPull() async throws {
        let rows = 20_000
        let source = try Source()
        let db = try source.connect()
        try source.insertSteps(rows, updatedAt: "TIMESTAMP '2026-01-05 10:00:00' + n * INTERVAL '1 second'")
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: source.server.connectionString(database: source.database, fetch: 50), mode: "incremental",
            query: caseSelect("steps"), extra: "watermark_column: updated_at\norder_by: [id]\nbatch_rows: 200\nfetch_rows: 50"))
        try logAtInfo(workspace)
        func committed() -> Int { Int((try? workspace.scalar("SELECT count(*) FROM records WHERE source = 'db'")) ?? 0) }
        let gateway = try EsgateProcess(["run", "--config", workspace.configPath])
        let deadline = ContinuousClock.now + .seconds(60)
        while gateway.isRunning, ContinuousClock.now < deadline, committed() == 0 {
            try await Task.sleep(for: .milliseconds(2))
        }
        kill(gateway.pid, SIGTERM)
        #expect(try await gateway.wait(timeout: .seconds(45)) == 0, "\(gateway.errorOutput)")
        let afterStop = committed()
        // Before stops cancelled polls, the gateway finished the poll first: all 20,000.
        #expect(afterStop > 0 && afterStop < rows, "stopped mid-pull: \(afterStop) of \(rows) rows committed \(gateway.errorOutput)")
        #expect(afterStop % 200 == 0, "only whole batches are committed")
        #expect(gateway.errorOutput.contains("poll stopped for shutdown"), "\(gateway.errorOutput)")
        // The watermark is that of the last committed row.
        let mark = try #require(try Journal(path: workspace.journalPath).sourceOffset("db"))
        let expected = try db.query("SELECT to_char(TIMESTAMP '2026-01-05 10:00:00' + \(afterStop) * INTERVAL '1 second', 'YYYY-MM-DD HH24:MI:SS')")
        #expect(mark == expected.rows.first?.first.flatMap { $0 })

        let restart = try EsgateProcess(["run", "--once", "--config", workspace.configPath])
        #expect(try await restart.wait() == 0, "\(restart.errorOutput)")
        #expect(committed() == rows)
        #expect(try workspace.scalar("SELECT count(DISTINCT key) FROM records WHERE source = 'db'") == Int64(rows))
        #expect(try workspace.scalar("SELECT max(rev) FROM records") == 1, "no row came back as a second revision")
    }

    @Test("server restarted mid-pull: the poll fails with a connection error, the next one reconnects; no loss, no duplicates")
    func serverRestart() throws {
        let source = try Source()
        let db = try source.connect()
        try db.setAutocommit(false)
        // More rows than the pipeline holds ahead of the writer (fetch, mapping and writer hand-overs), so that
        // the restart hits a fetch that still needs the server.
        let rows = 3000
        for n in 1...rows { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:\(String(format: "%02d", n % 60))", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        try db.commit()
        db.close()
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: source.connectionString, mode: "incremental",
                                                               query: caseSelect("steps"),
                                                               extra: "watermark_column: updated_at\norder_by: [id]\nbatch_rows: 100\nfetch_rows: 100"))
        let adapter = try workspace.adapter()
        adapter.afterCommit = { batches in if batches == 2 { try source.server.restart() } }
        let error = #expect(throws: ODBCAdapterError.self) { try adapter.poll() }
        #expect(error?.sqlState != nil)
        // The query is fine: the error names the adapter file, not odbc.query / watermark_column / order_by.
        #expect(error?.field == nil, "\(error?.description ?? "")")
        #expect(error?.description.hasPrefix("adapter db (\(workspace.root.appendingPathComponent("adapters/db.yaml").path)): ") == true,
                "\(error?.description ?? "")")
        adapter.afterCommit = nil
        // At least two batches (200 rows) were committed with their watermark (the reader may have had more
        // ready); the rest comes now, starting at the watermark itself: the committed rows of that second
        // (50 rows a second) come again, as no-ops.
        let committed = try workspace.journalDigest().records
        #expect(committed >= 200 && committed < rows)
        let report = try adapter.poll()
        #expect(report.counts.stored == rows - committed)
        #expect(report.counts.unchanged == (committed - 1) % 50 + 1)
        #expect(try workspace.journalDigest().records == rows)
    }

    @Test("front table: flags set only for journaled rows; a crash between journal and flag re-reads them unchanged")
    func frontTable() throws {
        let source = try Source()
        let db = try source.connect()
        for n in 1...12 { try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00")) }
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: source.connectionString, mode: "front-table", query: caseSelect("steps") + " WHERE rec_flag = 0 ORDER BY id",
            extra: "mark_statement: UPDATE steps SET rec_flag = 1 WHERE id = ?\nmark_keys: [id]\nbatch_rows: 5"))
        let crashing = try workspace.adapter()
        crashing.afterCommit = { _ in throw FixtureError(message: "crash before marking") }
        #expect(throws: ODBCAdapterError.self) { try crashing.poll() }
        #expect(try db.query("SELECT count(*) FROM steps WHERE rec_flag = 1").rows.first?.first == "0")
        #expect(try workspace.journalDigest().records == 5)
        let report = try workspace.adapter().poll()
        #expect(report.marked == 12)
        #expect(report.counts.unchanged == 5)
        #expect(report.counts.stored == 7)
        #expect(try db.query("SELECT count(*) FROM steps WHERE rec_flag = 1").rows.first?.first == "12")
    }

    @Test("front table with a version column in mark_keys: a row the department updates between read and mark stays unflagged, and its new content is journaled")
    func frontTableRowChangedBeforeMark() throws {
        let source = try Source()
        let db = try source.connect()
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: stepRow(1, at: "2026-01-05 08:52:00"))
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: source.connectionString, mode: "front-table", query: caseSelect("steps") + " WHERE rec_flag = 0 ORDER BY id",
            extra: "mark_statement: UPDATE steps SET rec_flag = 1 WHERE id = ? AND updated_at = ?\nmark_keys: [id, updated_at]"))
        let adapter = try workspace.adapter()
        // The department rewrites the row after the gateway read it and before it marks it.
        adapter.afterCommit = { _ in
            adapter.afterCommit = nil
            try db.execute("UPDATE steps SET \"办理人\" = '张怡', updated_at = TIMESTAMP '2026-01-05 10:05:00' WHERE id = 1")
        }
        let report = try adapter.poll()
        #expect(report.marked == 1, "the changed row is read again in the same poll and marked then")
        #expect(report.counts.stored == 2)
        #expect(try db.query("SELECT rec_flag FROM steps WHERE id = 1").rows.first?.first == "1")
        let bodies = try workspace.bodies(type: "Step")
        #expect(bodies.count == 2 && bodies.contains { $0.contains("张怡") }, "both versions are journaled: \(bodies)")
        #expect(adapter.status.lastError == nil)
    }

    @Test("a database that cannot be reached gives an error naming the adapter and SQLSTATE; retried at the next poll")
    func connectionFailure() throws {
        let server = try PostgresServer.server()
        let name = "late_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let workspace = try ODBCWorkspace(adapter: adapterYAML(connection: server.connectionString(database: name),
                                                               mode: "snapshot", query: caseSelect("steps")))
        let adapter = try workspace.adapter()
        let error = #expect(throws: ODBCAdapterError.self) { try adapter.poll() }
        #expect(error?.description.contains("adapter db") == true)
        #expect(error?.description.contains("SQLSTATE") == true)
        #expect(error?.description.contains(name) == true)
        #expect(adapter.status.failingSince != nil)
        let admin = try ODBCConnection(connectionString: server.connectionString(database: "postgres"))
        try admin.execute("CREATE DATABASE \(name)")
        let connection = try ODBCConnection(connectionString: server.connectionString(database: name))
        try createCaseTable(connection, name: "steps")
        try insertCase(connection, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: stepRow(1, at: "2026-01-05 08:52:00"))
        #expect(try adapter.poll().counts.stored == 1)
        #expect(adapter.status.failingSince == nil)
    }
}
