import Foundation
import ODBCSupport
import Testing

/// A connection closed while one of its statements or cursors is still referenced (the adapter drops its
/// connection after a failed poll while the reader thread is still letting go of its cursor) must leave the
/// statements of other connections alone: the driver manager hands a freed handle's address to the next new
/// statement, so a late free or reset of the stale handle would land on someone else's statement mid-fetch.
@Suite("ODBC handles outliving their connection", .enabled(if: sqliteDriverInstalled, "libsqliteodbc is not installed"))
struct HandleLifetimeTests {
    @Test("a statement and cursor released after their connection closed touch no other connection's statement; using them throws 08003")
    func staleHandlesAfterCloseTouchNothing() throws {
        let source = try SQLiteSource()
        let setup = try source.connect()
        try setup.execute("CREATE TABLE t (id INTEGER)")
        for n in 1...50 { try setup.execute("INSERT INTO t VALUES (?)", [.integer(Int64(n))]) }
        let expected = (1...50).map(String.init)
        for _ in 0..<20 {
            var closed: ODBCConnection? = try source.connect()
            var statement: ODBCStatement? = try #require(closed).prepare("SELECT id FROM t ORDER BY id")
            var cursor: ODBCCursor? = try #require(statement).query(rowArraySize: 10)
            _ = try #require(cursor).next()
            try #require(closed).close()
            #expect(throws: ODBCError.self) { _ = try #require(cursor).next() }
            #expect(throws: ODBCError.self) { try #require(statement).execute() }

            // This driver cannot disconnect while a statement exists (sqlite3_close is busy), so before close()
            // freed its statements itself their handles stayed allocated until released below: this checks 08003
            // and that nothing else is touched; the PostgreSQL suite below checks a freed address handed on.
            let open = try source.connect()
            let other = try open.prepare("SELECT id FROM t ORDER BY id")
            let reading = try other.query(rowArraySize: 10)
            cursor = nil
            statement = nil
            closed = nil
            // Had the releases above freed `other` (its address is the stale one), this statement would get its
            // handle, and `reading` would fetch this query's rows.
            let third = try open.prepare("SELECT 'third' AS id")
            let thirdCursor = try third.query(rowArraySize: 10)
            var ids: [String] = []
            while let block = try reading.next() {
                for row in 0..<block.count { ids.append(try block.text(row: row, column: 0) ?? "NULL") }
            }
            #expect(ids == expected)
            #expect(try thirdCursor.next()?.text(row: 0, column: 0) == "third")
            let again = try other.query(rowArraySize: 100)
            #expect(try again.next()?.count == 50)
        }
    }
}

/// The same over psqlODBC, where the hazard is real: SQLite's driver refuses to disconnect while a statement is
/// allocated (sqlite3_close is busy), so there the stale handle was never freed by the close and the test above
/// cannot tell a late free from a legitimate one. psqlODBC disconnects, the driver manager frees the statements
/// with it, and the freed address is soon handed to another connection's statement. In the serialized PostgreSQL
/// suite, which restarts the shared server in one test.
extension PostgresODBCTests {
    @Test("statements released after their connection closed leave the statements of another connection working")
    func staleHandlesAfterCloseLeaveOtherStatementsAlone() throws {
        let server = try PostgresServer.server()
        let connectionString = server.connectionString(database: try server.createDatabase(), fetch: 10)
        let setup = try ODBCConnection(connectionString: connectionString)
        try setup.execute("CREATE TABLE t (id INTEGER)")
        try setup.execute("INSERT INTO t SELECT generate_series(1, 50)")
        let expected = (1...50).map(String.init)
        for _ in 0..<5 {
            var closed: ODBCConnection? = try ODBCConnection(connectionString: connectionString)
            var stale: [(ODBCStatement, ODBCCursor)] = []
            for _ in 0..<8 {
                let statement = try #require(closed).prepare("SELECT id FROM t ORDER BY id")
                let cursor = try statement.query(rowArraySize: 10)
                _ = try cursor.next()
                stale.append((statement, cursor))
            }
            try #require(closed).close()
            // Statements of another connection, allocated after the close: some of them get the freed addresses.
            let open = try ODBCConnection(connectionString: connectionString)
            let others = try (0..<16).map { _ in try open.prepare("SELECT id FROM t ORDER BY id") }
            let readings = try others.map { try $0.query(rowArraySize: 10) }
            stale.removeAll()
            closed = nil
            for reading in readings {
                var ids: [String] = []
                while let block = try reading.next() {
                    for row in 0..<block.count { ids.append(try block.text(row: row, column: 0) ?? "NULL") }
                }
                #expect(ids == expected)
            }
        }
    }
}
