@testable import Adapters
import Foundation
import GatewayRuntime
import Journal
import ODBCSupport
import Testing

/// Legacy tables and queries as a department's DBA writes them, on the shared PostgreSQL server (in the
/// serialized PostgreSQL suite, which restarts that server in one test).
extension PostgresODBCTests {
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
}
