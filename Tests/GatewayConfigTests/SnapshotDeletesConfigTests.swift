import Foundation
import Testing
@testable import GatewayConfig

@Suite struct SnapshotDeletesConfigTests {
    private func load(_ odbc: String, query: String = "SELECT 1") throws -> (AdapterConfiguration?, [String], String) {
        let folder = try TempFolder()
        let file = try folder.write("adapters/db.yaml", "name: db\nkind: odbc\nmapping: cases\nodbc:\n  connection: DSN=x\n  query: \(query)\n" + odbc)
        var errors: [ConfigError] = []
        let adapter = AdapterConfiguration.load(file: file, environment: [:], errors: &errors)
        return (adapter, errors.map(\.description), file)
    }

    @Test func deletesIsOffByDefaultAndReadsWithItsLimit() throws {
        let (plain, plainErrors, _) = try load("  mode: snapshot\n")
        #expect(plainErrors.isEmpty)
        #expect(plain?.odbc?.snapshotDeletes == false)
        #expect(plain?.odbc?.maxDeletePercent == 50)
        let (adapter, errors, _) = try load("  mode: snapshot\n  deletes: true\n  max_delete_percent: 20\n")
        #expect(errors.isEmpty)
        #expect(adapter?.odbc?.snapshotDeletes == true)
        #expect(adapter?.odbc?.maxDeletePercent == 20)
    }

    @Test func deletesOutsideSnapshotsAndBadLimitsAreErrorsWithTheirLine() throws {
        let (_, incremental, file) = try load("  mode: incremental\n  watermark_column: t\n  deletes: true\n  max_delete_percent: 10\n")
        #expect(incremental.contains { $0.hasPrefix("\(file):9: odbc.deletes: applies only to mode snapshot") }, "\(incremental)")
        #expect(incremental.contains { $0.hasPrefix("\(file):10: odbc.max_delete_percent: applies only to mode snapshot") }, "\(incremental)")
        let (_, withoutDeletes, file2) = try load("  mode: snapshot\n  max_delete_percent: 10\n")
        #expect(withoutDeletes == ["\(file2):8: odbc.max_delete_percent: applies only with deletes: true"])
        let (_, outOfRange, file3) = try load("  mode: snapshot\n  deletes: yes\n  max_delete_percent: 150\n")
        #expect(outOfRange.count == 1 && outOfRange.first?.hasPrefix("\(file3):9: odbc.max_delete_percent") == true, "\(outOfRange)")
        let (_, notABoolean, file4) = try load("  mode: snapshot\n  deletes: sometimes\n")
        #expect(notABoolean.first?.hasPrefix("\(file4):8: odbc.deletes: expected true or false") == true, "\(notABoolean)")
    }

    /// Not about deletes: the other checks of the odbc section's SQL.
    @Test func parameterMarkersOutsideLiteralsAndCommentsAreErrors() throws {
        let (_, marked, file) = try load("  mode: snapshot\n", query: "\"SELECT a FROM t WHERE dept = ? AND b = 'why?' -- or :name?\"")
        #expect(marked == ["\(file):6: odbc.query: has a parameter marker ? outside quotes and comments, but esgate binds no value to the query: write the value into it"])
        let (_, oracle, _) = try load("  mode: snapshot\n", query: "SELECT a FROM t WHERE dept = :dept")
        #expect(oracle.first?.contains("parameter marker :dept") == true, "\(oracle)")
        let (_, fine, _) = try load("  mode: front-table\n  mark_statement: \"UPDATE t SET f = 1, note = 'sent?' WHERE id = ? -- ok?\"\n  mark_keys: [id]\n",
                                    query: "\"SELECT a::text, ':x?' FROM t /* ? */\"")
        #expect(fine.isEmpty, "\(fine)")
    }

    /// SQL Server's bracketed identifiers (identifier_quote "[") may hold any character: a ? or :name inside one
    /// is part of a column name, not a parameter marker, and a valid query must not be refused for it.
    @Test func markersInsideBracketedIdentifiersAreNotErrors() throws {
        let (_, fine, _) = try load("  mode: snapshot\n", query: "\"SELECT [Rate?], [Fee :Code] FROM [dbo].[Fees]\"")
        #expect(fine.isEmpty, "\(fine)")
        let (_, marked, _) = try load("  mode: snapshot\n", query: "\"SELECT [Rate?] FROM [Fees] WHERE dept = ?\"")
        #expect(marked.count == 1 && marked.first?.contains("parameter marker ?") == true, "\(marked)")
    }

    /// Without knowing the server, what one dialect quotes must not refuse a valid query: MySQL's backslash escape,
    /// PostgreSQL's dollar quotes and nested comments; nor a SQL Server view's TOP 100 PERCENT or OFFSET 0 ROWS,
    /// which limit nothing. A marker or limit in plain code is still found, and a limit after a literal that the
    /// two readings end in different places too (a missed limit loses rows without a word).
    @Test func whatADialectQuotesIsNoMarkerAndLimitsThatKeepEveryRowAreNone() throws {
        #expect(SQLText.parameterMarkers("SELECT a FROM t WHERE note <> 'it\\'s ok?' AND b = 1") == [])
        #expect(SQLText.parameterMarkers("SELECT $$ why? $$ AS q, a FROM t") == [])
        #expect(SQLText.parameterMarkers("SELECT $body$ why? $$ $body$ AS q, col$1 FROM t WHERE b = ?") == ["?"])
        #expect(SQLText.parameterMarkers("SELECT a /* outer /* inner */ still? */ FROM t") == [])
        #expect(SQLText.parameterMarkers("SELECT a FROM t WHERE note = 'x' AND b = ?") == ["?"])
        #expect(SQLText.rowLimit("SELECT TOP 100 PERCENT a FROM t ORDER BY a") == nil)
        #expect(SQLText.rowLimit("SELECT a FROM t ORDER BY a OFFSET 0 ROWS") == nil)
        #expect(SQLText.rowLimit("SELECT a FROM t WHERE note = 'it\\'s' LIMIT 5") == "LIMIT")
        #expect(SQLText.rowLimit("SELECT TOP 50 PERCENT a FROM t") == "TOP")
    }

    @Test func aRowLimitAroundAnIncrementalQueryIsAnError() throws {
        for (query, limit) in [("SELECT a FROM t ORDER BY a LIMIT 1000", "LIMIT"), ("SELECT TOP 100 a FROM t", "TOP"),
                               ("\"SELECT a FROM t UNION ALL SELECT a FROM u OFFSET 0 ROWS FETCH NEXT 5 ROWS ONLY\"", "FETCH NEXT"),
                               ("SELECT a FROM t WHERE ROWNUM <= 100", "ROWNUM")] {
            let (_, errors, file) = try load("  mode: incremental\n  watermark_column: a\n", query: query)
            #expect(errors.count == 1 && errors.first?.hasPrefix("\(file):6: odbc.query: \(limit) limits the rows of the whole query") == true, "\(errors)")
        }
        // Inside parentheses, literals and comments, in a name, or in another mode: no error.
        for (mode, query) in [("incremental", "\"SELECT a, 'limit 1' FROM t WHERE a IN (SELECT b FROM u LIMIT 1) -- top 5\""),
                              ("incremental", "SELECT unlimited, top_level, top, offset FROM t"), ("snapshot", "SELECT a FROM t LIMIT 10")] {
            let (_, errors, _) = try load("  mode: \(mode)\n" + (mode == "incremental" ? "  watermark_column: a\n" : ""), query: query)
            #expect(errors.isEmpty, "\(query): \(errors)")
        }
    }
}
