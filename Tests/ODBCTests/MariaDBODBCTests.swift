@testable import Adapters
import Foundation
import GatewayRuntime
import Journal
import ODBCSupport
import Testing

/// MariaDB through Connector/ODBC (`MariaDB Unicode`), with a legacy table in GBK.
@Suite("ODBC over MariaDB (GBK)", .enabled(if: MariaDBServer.available, MariaDBServer.skipReason))
struct MariaDBODBCTests {
    /// A fresh GBK database holding the case table (backtick names), and a connection to it.
    private func caseDatabase(timestampType: String = "DATETIME") throws -> (server: MariaDBServer, database: String, db: ODBCConnection) {
        let server = try MariaDBServer.server()
        let database = try server.createDatabase()
        let db = try ODBCConnection(connectionString: server.connectionString(database: database))
        try createCaseTable(db, name: "steps", timestampType: timestampType, quote: "`")
        return (server, database, db)
    }

    @Test("a GBK table's Chinese text arrives correct; incremental pull with backtick identifiers")
    func gbkTable() throws {
        let (server, database, db) = try caseDatabase()
        try db.execute("ALTER TABLE steps CONVERT TO CHARACTER SET gbk")
        for n in 1...30 {
            try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:\(String(format: "%02d", n))",
                           row: stepRow(n, at: "2026-01-05 08:52:00", handler: "二七区张怡", note: "窗口受理·补正"), quote: "`")
        }
        // Stored as GBK bytes: 二七区 = B6FE C6DF C7F8.
        let hex = try db.query("SELECT HEX(`办理人`), CHARSET(`办理人`) FROM steps WHERE id = 1")
        #expect(hex.rows.first?.first == "B6FEC6DFC7F8D5C5E2F9")
        #expect(hex.rows.first?.last == "gbk")
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: server.connectionString(database: database), mode: "incremental",
            query: caseSelect("steps", quote: "`"),
            extra: "watermark_column: updated_at\norder_by: [id]\nidentifier_quote: \"`\"\nlag: 5s\nbatch_rows: 8"))
        let adapter = try workspace.adapter()
        let report = try adapter.poll()
        #expect(report.counts.stored == 30)
        #expect(report.watermark == "2026-01-05 10:00:30")
        let second = try adapter.poll()
        #expect(second.counts.stored == 0)
        #expect(second.counts.rows == 6)  // 10:00:25 … 10:00:30 again (lag 5 s), as no-ops
        let bodies = try workspace.bodies(type: "Step")
        #expect(bodies.count == 30)
        #expect(bodies.allSatisfy { $0.contains("二七区张怡") && $0.contains("窗口受理·补正") })

        // Without identifier_quote the adapter asks the driver (`auto`): MariaDB quotes with backticks, and a
        // `"updated_at"` would have been a string literal here (no ANSI_QUOTES): SQLSTATE 42000 on every poll.
        #expect(db.identifierQuoteCharacter() == "`")
        let auto = try ODBCWorkspace(adapter: adapterYAML(
            connection: server.connectionString(database: database), mode: "incremental",
            query: caseSelect("steps", quote: "`"), extra: "watermark_column: updated_at\norder_by: [id]\nlag: 5s"))
        let first = try auto.adapter().poll()
        #expect(first.counts.stored == 30 && first.watermark == "2026-01-05 10:00:30")
        let again = try auto.adapter().poll()
        #expect(again.counts.rows == 6 && again.counts.stored == 0, "the bound applies: a quoted literal would compare as text")
    }

    @Test("text with characters whose UTF-8 ends in 0x98-0x9B (变 四 忙 据) arrives whole from a GBK table (Connector/ODBC reports their length short)")
    func charactersConnectorODBCCutsShort() throws {
        let (server, database, db) = try caseDatabase()
        try db.execute("ALTER TABLE steps CONVERT TO CHARACTER SET gbk")
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:01", row: stepRow(1, at: "2026-01-05 08:52:00"), quote: "`")
        // Written as hex literals: the statement's own text stays ASCII, whatever the driver does with parameters.
        try db.execute("UPDATE steps SET `办理人` = CONVERT(X'E58F98E58F98E58F98E58F98E58F98E58F98' USING utf8mb4), `备注` = CONVERT(X'E4B880E888ACEFBC8CE69D90E69699E8A681E6B182E58F8DE5A48DE58F98E69BB4E59B9BE5B79DE79C81E58F98E69BB4E799BBE8AEB0E58F98E58C96EFBC8CE68DAEE8AFB4E5BE88E5BF99' USING utf8mb4) WHERE id = 1")
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: server.connectionString(database: database), mode: "incremental",
            query: caseSelect("steps", quote: "`"), extra: "watermark_column: updated_at\norder_by: [id]\nidentifier_quote: \"`\""))
        #expect(try workspace.adapter().poll().counts.stored == 1)
        let body = try #require(try workspace.bodies(type: "Step").first)
        #expect(body.contains("<Name>变变变变变变</Name>") && body.contains("一般，材料要求反复变更四川省变更登记变化，据说很忙"), "\(body)")
    }

    @Test("a value Connector/ODBC cuts to its buffer while reporting it short fails with 01004, not cut in silence")
    func cutValueWithAShortLengthIsAnError() throws {
        let (_, _, db) = try caseDatabase()
        try db.execute("CREATE TABLE notes (id INT PRIMARY KEY, v TEXT) CHARACTER SET gbk")
        func bian(_ count: Int) -> String { "CONVERT(X'\(String(repeating: "E58F98", count: count))' USING utf8mb4)" }
        try db.execute("INSERT INTO notes VALUES (1, \(bian(12))), (2, \(bian(30))), (3, 'ab'), (4, '')")
        // max_column_chars 10: 20 UTF-16 units a value. 30 × 变 come as 20, with a length of 30 bytes (within 40).
        let cursor = try db.prepare("SELECT v FROM notes ORDER BY id").query([], rowArraySize: 1, maxColumnCharacters: 10)
        var values: [String] = []
        while let block = try cursor.next() {
            do {
                values.append(try block.text(row: 0, column: 0) ?? "NULL")
            } catch {
                values.append(error.diagnostics.first?.sqlState ?? "\(error)")
            }
        }
        #expect(values == [String(repeating: "变", count: 12), "01004", "ab", ""])
    }

    @Test("front table keyed by BINARY(16) and BIT(1): keys bind as bytes and bits, so rows are marked; binary values map as hex")
    func binaryAndBitColumns() async throws {
        let (server, database, db) = try caseDatabase()
        try db.execute("ALTER TABLE steps ADD uid BINARY(16), ADD flag BIT(1), ADD sig VARBINARY(8)")
        for n in 1...3 {
            try insertCase(db, table: "steps", id: n, updatedAt: "2026-01-05 10:00:00", row: stepRow(n, at: "2026-01-05 08:52:00"), quote: "`")
        }
        // A UUID key as MySQL applications store it; a zero byte first is what the driver's text conversion loses.
        try db.execute("UPDATE steps SET uid = UNHEX(CONCAT('00', LPAD(id, 30, '0'))), flag = id % 2, sig = x'00FF10'")
        let columns = caseColumns.dropLast().map { "`\($0)`" }.joined(separator: ", ")
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: server.connectionString(database: database), mode: "front-table",
            query: "SELECT uid, flag, \(columns), sig AS `备注` FROM steps WHERE rec_flag = 0",
            extra: "mark_statement: UPDATE steps SET rec_flag = 1 WHERE uid = ? AND flag = ?\nmark_keys: [uid, flag]"))
        let report = try workspace.adapter().poll()
        #expect(report.counts.stored == 3 && report.marked == 3)
        #expect(try db.query("SELECT count(*) FROM steps WHERE rec_flag = 1").rows == [["3"]])
        #expect(try workspace.bodies(type: "Step").allSatisfy { $0.contains("<Opinion>00FF10</Opinion>") })
        // mapping test shows the same text; BIT(1) reads as 0 and 1 (MariaDB writes the raw byte, 0x00 as nothing).
        try db.execute("UPDATE steps SET rec_flag = 0")
        let bits = try ODBCWorkspace(adapter: adapterYAML(
            connection: server.connectionString(database: database), mode: "snapshot",
            query: "SELECT \(columns), flag AS `备注` FROM steps ORDER BY id"))
        let sample = try await esgate(["mapping", "test", "--adapter", "db", "--config", bits.configPath])
        let opinions = sample.out.split(separator: "\n").compactMap { line in line.range(of: "<Opinion>").map { String(line[$0.upperBound...].prefix(1)) } }
        #expect(opinions == ["1", "0", "1"], "\(sample.out)\(sample.err)")
    }

    @Test("incremental: rows stamped with the zero date '0000-00-00 00:00:00' after the first poll are ingested, not skipped for good")
    func zeroDateRows() throws {
        let (server, database, db) = try caseDatabase(timestampType: "DATETIME(6)")
        // A legacy application in non-strict mode writes zero dates into a NOT NULL DATETIME(6) column.
        try db.execute("SET SESSION sql_mode = ''")
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00.250000", row: stepRow(1, at: "2026-01-05 08:52:00"), quote: "`")
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: server.connectionString(database: database), mode: "incremental",
            query: caseSelect("steps", quote: "`"), extra: "watermark_column: updated_at\norder_by: [id]"))
        let adapter = try workspace.adapter()
        #expect(try adapter.poll().watermark == "2026-01-05 10:00:00.250000")
        try insertCase(db, table: "steps", id: 2, updatedAt: "2026-01-05 10:00:00", row: stepRow(2, at: "2026-01-05 08:53:00"), quote: "`")
        try db.execute("UPDATE steps SET updated_at = '0000-00-00 00:00:00' WHERE id = 2")
        try insertCase(db, table: "steps", id: 3, updatedAt: "2026-01-05 10:00:00.250001", row: stepRow(3, at: "2026-01-05 08:54:00"), quote: "`")
        let second = try adapter.poll()
        #expect(second.counts.stored == 2, "the zero-dated row and the next one")
        #expect(second.withoutWatermark == 1)
        #expect(second.watermark == "2026-01-05 10:00:00.250001", "fractional seconds are kept")
        #expect(try workspace.journalDigest().records == 3)
    }

    /// One step row, locked by an open transaction of another connection (the department's nightly job; the
    /// server's innodb_lock_wait_timeout is 50 s): a `FOR UPDATE` read of it waits.
    private func lockedRow() throws -> (server: MariaDBServer, database: String, db: ODBCConnection, job: ODBCConnection) {
        let (server, database, db) = try caseDatabase()
        try insertCase(db, table: "steps", id: 1, updatedAt: "2026-01-05 10:00:00", row: stepRow(1, at: "2026-01-05 08:52:00"), quote: "`")
        let job = try ODBCConnection(connectionString: server.connectionString(database: database))
        try job.setAutocommit(false)
        try job.execute("UPDATE steps SET rec_flag = 2")
        return (server, database, db, job)
    }

    @Test("query_timeout stops a query waiting on a lock although Connector/ODBC ignores SQL_ATTR_QUERY_TIMEOUT", .timeLimit(.minutes(1)))
    func queryTimeout() throws {
        let (server, database, _, job) = try lockedRow()
        defer { job.rollback() }
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: server.connectionString(database: database), mode: "snapshot",
            query: caseSelect("steps", quote: "`") + " FOR UPDATE", extra: "query_timeout: 1s"))
        let adapter = try workspace.adapter()
        let started = ContinuousClock.now
        let error = #expect(throws: ODBCAdapterError.self) { try adapter.poll() }
        let waited = ContinuousClock.now - started
        #expect(waited < .seconds(10), "the poll gave up after about query_timeout, not after the server's lock wait: \(waited)")
        #expect(error?.sqlState == "HYT00")
        #expect(error?.description.contains("odbc.query_timeout") == true, "\(error.map { "\($0)" } ?? "")")
        #expect(adapter.status.failingSince != nil)
        // The lock is gone: the next poll reads the row.
        job.rollback()
        #expect(try adapter.poll().counts.stored == 1)
    }

    @Test("a stop cancels a query waiting on a lock (Connector/ODBC turns SQLCancel into KILL QUERY): the poll ends at once, not failing", .timeLimit(.minutes(1)))
    func stopCancelsAWaitingQuery() throws {
        let (server, database, db, job) = try lockedRow()
        defer { job.rollback() }
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: server.connectionString(database: database), mode: "snapshot",
            query: caseSelect("steps", quote: "`") + " FOR UPDATE"))
        let adapter = try workspace.adapter()
        final class Outcome: @unchecked Sendable {
            var result: Result<ODBCPollReport, ODBCAdapterError>?
        }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        let poller = Thread {
            outcome.result = Result { () throws(ODBCAdapterError) in try adapter.poll() }
            done.signal()
        }
        poller.start()
        // Until the poll's query waits on the lock.
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let waiting = try db.query("SELECT count(*) FROM information_schema.processlist WHERE info LIKE '%FOR UPDATE%' AND info NOT LIKE '%processlist%'")
            if waiting.rows.first?.first == "1" { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let stopped = ContinuousClock.now
        adapter.stopSignal.request()
        #expect(done.wait(timeout: .now() + 20) == .success, "the poll did not return after the stop")
        let took = ContinuousClock.now - stopped
        #expect(took < .seconds(10), "the poll ended \(took) after the stop, not after the server's 50 s lock wait")
        guard case .failure(let error) = outcome.result else {
            Issue.record("the poll did not fail: \(String(describing: outcome.result))")
            return
        }
        #expect(error.sqlState == "HY008", "\(error)")
        #expect(adapter.status.failingSince == nil, "a stop is not the source failing")
        #expect(try workspace.scalar("SELECT count(*) FROM records WHERE source = 'db'") == 0)
        // Raised for good: a later poll stops at once, before it connects.
        #expect(throws: ODBCAdapterError.self) { try adapter.poll() }
    }

    @Test("login_timeout: a server that accepts the connection but never answers fails the poll instead of hanging it",
          .timeLimit(.minutes(1)))
    func loginTimeoutOnSilentServer() throws {
        // A listening socket nobody accepts from: the kernel completes the TCP handshake, no greeting ever comes
        // (a hung server, a port forward to a dead host). Connector/ODBC waits for the greeting without a limit.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        #expect(listen(listener, 8) == 0)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: "Driver={MariaDB Unicode};Server=127.0.0.1;Port=\(port);Database=sp;Uid=esgate;Pwd=secret",
            mode: "snapshot", query: caseSelect("steps", quote: "`"), extra: "login_timeout: 1s"))
        let adapter = try workspace.adapter()
        let started = ContinuousClock.now
        let error = #expect(throws: ODBCAdapterError.self) { try adapter.poll() }
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(error?.sqlState == "HYT00")
        #expect(error?.field == "odbc.connection")
        #expect(error?.description.contains("login timeout") == true, "\(error.map { "\($0)" } ?? "")")
        #expect(error?.description.contains("secret") == false)
        #expect(adapter.status.failingSince != nil)
    }

    @Test("a bad password gives a clear error naming the adapter and the SQLSTATE")
    func badPassword() throws {
        let server = try MariaDBServer.server()
        let database = try server.createDatabase()
        let workspace = try ODBCWorkspace(adapter: adapterYAML(
            connection: server.connectionString(database: database, password: "wrong"), mode: "snapshot",
            query: caseSelect("steps", quote: "`")))
        let adapter = try workspace.adapter()
        let error = #expect(throws: ODBCAdapterError.self) { try adapter.poll() }
        #expect(error?.sqlState == "28000")
        #expect(error?.description.contains("adapter db") == true)
        #expect(error?.description.contains("PWD=***") == true || error?.description.contains("Pwd=***") == true)
        #expect(error?.description.contains("wrong") == false)
        // What to check: the driver says "Access denied"; the hint says where the password comes from.
        #expect(error?.description.contains("the server refused the user or password: check UID in odbc.connection; the password is the connection string's PWD") == true,
                "\(error.map { "\($0)" } ?? "no error")")
    }
}

