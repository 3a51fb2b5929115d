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

            // The next statement allocated gets the address the close freed (glibc hands it out again at once).
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
