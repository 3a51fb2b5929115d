import Adapters
import Foundation
import GatewayConfig
import GatewayModel
import GatewayRuntime
import Journal
import Supervision
import Testing
import TextSupport

private let header = "办件编号,事项编码,事项名称,部门编码,部门名称,申请人,证件号码,环节代码,环节名称,办理人,办理时间,承诺时限,法定时限,收费金额,备注"

private func row(_ caseNo: String, step: String, handler: String = "李娜", remark: String = "", fee: String = "") -> String {
    "\(caseNo),XK0008,城市道路占用许可,410103001,二七区行政服务中心,王伟,410103199001011230,\(step),环节,\(handler),2026-01-05 08:37:00,7,20,\(fee),\(remark)"
}

@Suite struct EncodingAndFormatTests {
    @Test func gb18030WithCRLFAndQuotedNewlinesIngestsEveryRow() throws {
        let workspace = try Workspace()
        try workspace.generate("cases.csv", rows: 3000, arguments: ["--quirks"])
        let summary = try workspace.gateway().runOnce()
        let report = try #require(summary.files.first)
        #expect(report.outcome == .ingested)
        #expect(report.encoding == "gb18030")
        #expect(report.counts.rows == 3000)
        #expect(report.counts.quarantined == 0)
        #expect(try workspace.scalar("SELECT count(*) FROM records") == Int64(report.counts.stored))
        let bodies = try workspace.bodies()
        #expect(bodies.contains { $0.contains("跨行\n备注") }, "a line break inside quotes stays inside the field")
        #expect(bodies.contains { $0.contains("含逗号,的备注") })
        #expect(bodies.contains { $0.contains("带\"引号\"的备注") })
        #expect(workspace.names(in: workspace.archive) == ["cases.csv"])
        #expect(!workspace.names(in: workspace.drop).contains("cases.csv"))
    }

    @Test func utf8WithBOMAndLFGivesTheSameJournalAsGB18030WithCRLF() throws {
        let gb = try Workspace()
        try gb.generate("cases.csv", rows: 2000, arguments: ["--quirks"])
        _ = try gb.gateway().runOnce()
        let utf8 = try Workspace()
        let file = try utf8.generate("cases.csv", rows: 2000, arguments: ["--quirks", "--encoding", "utf-8", "--lf"])
        #expect(try Data(contentsOf: file).starts(with: [0xEF, 0xBB, 0xBF]), "the quirky UTF-8 export has a BOM")
        let report = try #require(try utf8.gateway().runOnce().files.first)
        #expect(report.encoding == "utf-8")
        let a = try gb.journalDigest(), b = try utf8.journalDigest()
        #expect(a.records > 2000)
        #expect(a.records == b.records)
        #expect(a.digest == b.digest)
    }

    @Test func invalidBytesQuarantineTheRowWithItsRawBytesNotTheFile() throws {
        let workspace = try Workspace(encoding: "gb18030")
        var bytes = try encode(header + "\r\n" + row("C1", step: "02") + "\r\n", as: .gb18030)
        let badRow = try encode(row("C2", step: "02", remark: "坏"), as: .gb18030) + [0xFF, 0x20]
        bytes += badRow + Array("\r\n".utf8)
        bytes += try encode(row("C3", step: "02") + "\r\n", as: .gb18030)
        try Data(bytes).write(to: workspace.drop.appendingPathComponent("bad.csv"))
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.outcome == .ingested)
        #expect(report.counts.rows == 3)
        #expect(report.counts.stored == 2)
        #expect(report.counts.quarantined == 1)
        let journal = try Journal(path: workspace.journalPath)
        let entry = try #require(try journal.quarantined().first)
        #expect(entry.item.stage == .decode)
        #expect(entry.item.line == 3)
        #expect(entry.item.origin == "bad.csv")
        #expect(entry.item.raw == badRow, "the raw bytes are kept exactly for a later replay")
        #expect(entry.item.reason.contains("gb18030"))
    }

    @Test func unreadableHeaderRejectsTheFileWithAReason() throws {
        let workspace = try Workspace()
        try workspace.write("drop/wrong.csv", "a,b,c\n1,2,3\n")
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.outcome == .rejected)
        #expect(workspace.names(in: workspace.rejected) == ["wrong.csv", "wrong.csv.reason.txt"])
        let reason = try workspace.read("drop/rejected/wrong.csv.reason.txt")
        #expect(reason.contains("header lacks column(s) 办件编号"))
    }

    /// What a department's office software saves instead of a GB18030 or UTF-8 CSV: Excel's "Unicode text"
    /// (UTF-16LE with a BOM, tab-separated), the same without a BOM, UTF-32, or the workbook itself. Each file is
    /// rejected with what it is and how to convert it, not as "does not decode as gb18030 at byte 0".
    @Test(arguments: [
        ("unicode.csv", [0xFF, 0xFE] as [UInt8], "utf-16le", "UTF-16 little-endian (byte-order mark FF FE)", "iconv -f UTF-16 -t UTF-8 unicode.csv"),
        ("nobom.csv", [], "utf-16le", "UTF-16 or UTF-32 without a byte-order mark", "iconv -f UTF-16LE -t UTF-8 nobom.csv"),
        ("big.csv", [0xFE, 0xFF], "utf-16be", "UTF-16 big-endian", "iconv -f UTF-16 -t UTF-8 big.csv"),
        ("wide.csv", [0xFF, 0xFE, 0, 0], "utf-32le", "UTF-32 little-endian", "iconv -f UTF-32 -t UTF-8 wide.csv"),
        ("book.csv", [0x50, 0x4B, 0x03, 0x04, 0x14, 0x00], "", "a ZIP archive (an Excel .xlsx workbook?)", "save the sheet as CSV"),
    ])
    func wideUnicodeTextsAndWorkbooksAreRejectedNamingWhatTheyAre(name: String, prefix: [UInt8], encoding: String,
                                                                   form: String, hint: String) throws {
        let workspace = try Workspace()
        let text = header + "\r\n" + row("C1", step: "02") + "\r\n"
        let body: [UInt8] = encoding.isEmpty ? [] : Array(text.data(using: encoding == "utf-16le" ? .utf16LittleEndian
            : encoding == "utf-16be" ? .utf16BigEndian : .utf32LittleEndian) ?? Data())
        try Data(prefix + body).write(to: workspace.root.appendingPathComponent("drop/\(name)"))
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.outcome == .rejected)
        let reason = try workspace.read("drop/rejected/\(name).reason.txt")
        #expect(reason.contains("the file is \(form)"), "\(reason)")
        #expect(reason.contains(hint), "\(reason)")
        #expect(try Journal(path: workspace.journalPath).quarantined().isEmpty, "a file refused whole, not row by row")
    }

    /// Department exports put a title line above the header, or blank rows. A title is named in the rejection
    /// (with the `header_line` that reads the file); with it set the file is read, its lines numbered as in the
    /// file. Blank rows before the header (empty, or a spreadsheet's `,,,,`) are skipped as the docs say.
    @Test func aTitleAboveTheHeaderIsNamedAndHeaderLineReadsTheFile() throws {
        let title = "二七区行政审批办件明细 导出时间:2026-01-05,,,\n"
        let body = header + "\n" + row("C1", step: "02") + "\n" + row("C2", step: "02").replacingOccurrences(of: "2026-01-05 08:37:00", with: "2026/1/5") + "\n"
        let plain = try Workspace()
        try plain.write("drop/titled.csv", title + body)
        let refused = try #require(try plain.gateway().runOnce().files.first)
        #expect(refused.outcome == .rejected)
        #expect(try plain.read("drop/rejected/titled.csv.reason.txt").contains("line 2 has them: a title above the header? set csv.header_line: 2"))

        let read = try Workspace(csvSettings: ["header_line: 2"])
        try read.write("drop/titled.csv", title + "\n,,,,\n" + body)
        let report = try #require(try read.gateway().runOnce().files.first)
        #expect(report.outcome == .ingested && report.counts.stored == 1 && report.counts.quarantined == 1)
        #expect(try Journal(path: read.journalPath).quarantined().first?.item.line == 6, "the bad date's row is line 6 of the file")
    }

    /// `mapping test --file` reads a file as the adapter would: its `header_line`, and a short row refused.
    @Test func mappingTestReadsTheHeaderWhereTheAdapterDoes() throws {
        let workspace = try Workspace()
        let file = workspace.root.appendingPathComponent("titled.csv").path
        try workspace.write("titled.csv", "明细,,\n\n" + header + "\n" + row("C1", step: "02") + "\n" + "C2,XK0008\n")
        let loaded = try workspace.gateway().configuration
        let plan = try #require(loaded.mappings["gen-cases"])
        let rows = try Gateway.testMapping(plan: plan, schema: loaded.schema, file: file, rows: 10, encoding: .auto, headerLine: 2).get()
        #expect(rows.map(\.line) == [4, 5])
        #expect(rows.first?.errors == [] && rows.first?.records.count == 1)
        #expect(rows.last?.errors.first?.contains("row has 2 fields, the header has 15") == true, "\(rows.last?.errors ?? [])")
        guard case .failure(let refused) = Gateway.testMapping(plan: plan, schema: loaded.schema, file: file, rows: 10, encoding: .auto) else {
            Issue.record("the title read as the header")
            return
        }
        #expect(refused.description.contains("header lacks column(s)"))
    }

    /// A UTF-8 export with one value pasted in GBK: the header decides the encoding, so the one row is quarantined
    /// (with its bytes) and the rest ingested, instead of the file read as GB18030 and refused at its header.
    @Test func aUTF8FileWithOneGBKValueQuarantinesThatRowOnly() throws {
        let workspace = try Workspace()
        let gbkRemark = try encode(row("C2", step: "02", remark: "补正"), as: .gb18030)
        let bytes = Array((header + "\n" + row("C1", step: "02", remark: "说明") + "\n").utf8) + gbkRemark + [0x0A]
            + Array((row("C3", step: "02") + "\n").utf8)
        // Also below a blank line: the first line with Chinese in it decides.
        for (name, prefix) in [("mixed.csv", ""), ("blank-first.csv", "\r\n")] {
            try Data(Array(prefix.utf8) + bytes).write(to: workspace.root.appendingPathComponent("drop/\(name)"))
            let report = try #require(try workspace.gateway().runOnce().files.first)
            #expect(report.outcome == .ingested && report.encoding == "utf-8", "\(name)")
            #expect(report.counts.quarantined == 1, "\(name)")
        }
        let entry = try #require(try Journal(path: workspace.journalPath).quarantined().first)
        #expect(entry.item.stage == .decode && entry.item.line == 3)
    }

    /// A stray quote opens a field that never closes: the rest of the file is one quarantined "row". Its reason
    /// says how many lines that is, so it is not taken for one bad line.
    @Test func anUnclosedQuoteSaysHowManyLinesItHolds() throws {
        let workspace = try Workspace()
        let stray = row("C2", step: "02").replacingOccurrences(of: ",王伟,", with: ",\"王伟,")
        try workspace.write("drop/stray.csv", [header, row("C1", step: "02"), stray, row("C3", step: "02"), row("C4", step: "02")].joined(separator: "\n") + "\n")
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.counts.stored == 1 && report.counts.quarantined == 1)
        let reason = try #require(try Journal(path: workspace.journalPath).quarantined().first?.item.reason)
        #expect(reason.contains("a quote opened in line 3 is never closed, so the 3 lines from line 3 to the end of the file are held here as one row"), "\(reason)")
    }

    /// A spreadsheet cuts long case numbers to 15 significant digits: two cases become one key, and the second
    /// case's Application replaces the first's as its revision 2, without a trace. Such replacements within one
    /// file are counted and named; a corrected file dropped later replaces records without that warning.
    @Test func aKeyGivenTwoContentsWithinOneFileIsCountedAndNamed() throws {
        let workspace = try Workspace()
        let merged = "410103005202601000000000"
        try workspace.write("drop/cut.csv", [header, row(merged, step: "01"), row(merged, step: "02"),
                                              row(merged, step: "01", handler: "赵六")].joined(separator: "\n") + "\n")
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.counts.changedWithinFile == 1, "line 4's Acceptance (another handler) replaces line 2's")
        let first = report.counts.firstChangedWithinFile ?? "-"
        #expect(first.hasPrefix("Acceptance ") && first.hasSuffix("at line 4"), "\(first)")
        try workspace.write("drop/corrected.csv", [header, row(merged, step: "01", handler: "钱七")].joined(separator: "\n") + "\n")
        let later = try #require(try workspace.gateway().runOnce().files.first)
        #expect(later.counts.stored > 0 && later.counts.changedWithinFile == 0)
    }

    /// An identity number that fails its check character (a spreadsheet zeroed its last digits) is quarantined
    /// by the ingest itself, on its fast path, not only by `mapping test`.
    @Test func anIdentityNumberFailingItsCheckCharacterIsQuarantinedAtIngest() throws {
        let workspace = try Workspace()
        let bad = row("C2", step: "01").replacingOccurrences(of: "410103199001011230", with: "410103199001011000")
        try workspace.write("drop/ids.csv", [header, row("C1", step: "01"), bad].joined(separator: "\n") + "\n")
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.counts.quarantined == 1)
        let entry = try #require(try Journal(path: workspace.journalPath).quarantined().first)
        #expect(entry.item.line == 3 && entry.item.reason.contains("check character"), "\(entry.item.reason)")
        #expect(!entry.item.reason.contains("410103199001011000"))
    }

    @Test func blankRowsBeforeTheHeaderAreSkipped() throws {
        let workspace = try Workspace()
        try workspace.write("drop/blank.csv", "\r\n,,,,,\r\n" + header + "\r\n" + row("C1", step: "02") + "\r\n")
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.outcome == .ingested && report.counts.stored == 1)
    }

    /// Lines ending in CR alone read as one long header: the reason says so, short, instead of listing the file.
    @Test func aFileWithCROnlyLineEndsIsRejectedSayingSo() throws {
        let workspace = try Workspace()
        // CR CR LF (a doubled line end) is not CR alone: read.
        try workspace.write("drop/crcrlf.csv", header + "\r\r\n" + row("C1", step: "02") + "\r\r\n")
        #expect(try #require(try workspace.gateway().runOnce().files.first).outcome == .ingested)
        try workspace.write("drop/mac.csv", header + "\r" + row("C1", step: "02") + "\r" + row("C2", step: "02") + "\r")
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.outcome == .rejected)
        let reason = try workspace.read("drop/rejected/mac.csv.reason.txt")
        #expect(reason.contains("the lines end with CR alone"), "\(reason)")
        #expect(reason.utf8.count < 1000)
    }

    /// A column the mapping reads that appears twice in the header: which one to read is unknown; the file is
    /// refused naming the column and its places, not read from the first one.
    @Test func aColumnTheMappingReadsTwiceInTheHeaderRejectsTheFile() throws {
        let workspace = try Workspace()
        try workspace.write("drop/twice.csv", header + ",办理时间\n" + row("C1", step: "02") + ",2026-01-06 09:00:00\n")
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.outcome == .rejected)
        #expect(try workspace.read("drop/rejected/twice.csv.reason.txt").contains("column 办理时间, which mapping gen-cases reads, appears 2 times in the header (columns 11, 16)"))
    }

    /// A row one field short (a field or a delimiter lost in the export) used to be padded with empty fields: its
    /// values after the gap were stored in the wrong columns (a Completion without its fee). It is quarantined.
    @Test func aRowWithFewerFieldsThanTheHeaderIsQuarantinedNotPadded() throws {
        let workspace = try Workspace()
        var short = row("C2", step: "05", fee: "350.00").split(separator: ",", omittingEmptySubsequences: false)
        short.remove(at: 12)   // 法定时限: the fee moves into 法定时限's place, 收费金额 takes 备注's
        try workspace.write("drop/short.csv", header + "\n" + row("C1", step: "02") + "\n" + short.joined(separator: ",") + "\n")
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.counts.stored == 1 && report.counts.quarantined == 1)
        let entry = try #require(try Journal(path: workspace.journalPath).quarantined().first)
        #expect(entry.item.stage == .parse && entry.item.line == 3)
        #expect(entry.item.reason.contains("row has 14 fields, the header has 15"), "\(entry.item.reason)")
    }

    @Test func rowsWithExtraNonEmptyFieldsAreQuarantinedButTrailingEmptyColumnsAreFine() throws {
        let workspace = try Workspace()
        try workspace.write("drop/shape.csv", header + "\n" + row("C1", step: "02") + ",,\n" + row("C2", step: "02") + ",surplus\n")
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.counts.stored == 1)
        #expect(report.counts.quarantined == 1)
        #expect(try Journal(path: workspace.journalPath).quarantined().first?.item.stage == .parse)
    }
}

@Suite struct FileLifecycleTests {
    /// A clock the test moves by hand.
    final class TestClock: @unchecked Sendable {
        var now = Date(timeIntervalSince1970: 1_767_600_000)
    }

    private func adapter(_ workspace: Workspace, clock: TestClock) throws -> CSVDropAdapter {
        let loaded = try workspace.gateway().configuration
        let settings = try #require(loaded.adapters.first?.csv)
        let plan = try #require(loaded.mappings["gen-cases"])
        return CSVDropAdapter(name: "drop", settings: settings, plan: plan, schema: loaded.schema,
                              journal: try Journal(path: workspace.journalPath), logger: .silent, clock: { clock.now })
    }

    @Test func aFileStillGrowingIsNotReadUntilItSettles() throws {
        let workspace = try Workspace(ready: "settle", settle: "10s")
        let clock = TestClock()
        let adapter = try adapter(workspace, clock: clock)
        let path = workspace.drop.appendingPathComponent("growing.csv")
        try Data((header + "\n" + row("C1", step: "02") + "\n").utf8).write(to: path)
        #expect(adapter.scan().ready.isEmpty, "first sight starts the settle clock")
        clock.now += 9
        #expect(adapter.scan().ready.isEmpty)
        // The writer appends more: the clock restarts even though 10 s have passed since first sight.
        let handle = try FileHandle(forWritingTo: path)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data((row("C2", step: "03") + "\n").utf8))
        try handle.close()
        clock.now += 2
        #expect(adapter.scan().ready.isEmpty)
        clock.now += 9
        #expect(adapter.scan().ready.isEmpty)
        clock.now += 1.5
        #expect(adapter.scan().ready == ["growing.csv"])
        let reports = try adapter.poll()
        #expect(reports.first?.counts.rows == 2, "both the first and the appended row were read")
    }

    @Test func markerRuleWaitsForTheDoneFile() throws {
        let workspace = try Workspace(ready: "marker")
        try workspace.write("drop/a.csv", header + "\n" + row("C1", step: "02") + "\n")
        let first = try workspace.gateway().runOnce()
        #expect(first.files.isEmpty)
        #expect(first.waiting == ["drop/a.csv"])
        try workspace.write("drop/a.csv.done", "")
        let second = try workspace.gateway().runOnce()
        #expect(second.files.map(\.outcome) == [.ingested])
        #expect(workspace.names(in: workspace.drop).filter { $0.hasPrefix("a.csv") }.isEmpty, "file and marker are gone")
    }

    @Test func temporaryNamesAreIgnoredUntilRenamed() throws {
        let workspace = try Workspace(ready: "rename")
        try workspace.write("drop/a.csv.part", header + "\n" + row("C1", step: "02") + "\n")
        #expect(try workspace.gateway().runOnce().files.isEmpty)
        try FileManager.default.moveItem(at: workspace.drop.appendingPathComponent("a.csv.part"),
                                         to: workspace.drop.appendingPathComponent("a.csv"))
        #expect(try workspace.gateway().runOnce().files.map(\.outcome) == [.ingested])
    }

    @Test func aReDroppedIdenticalFileIsIngestedOnce() throws {
        let workspace = try Workspace()
        let file = try workspace.generate("night-1.csv", rows: 500)
        let bytes = try Data(contentsOf: file)
        let first = try workspace.gateway().runOnce()
        #expect(first.files.map(\.outcome) == [.ingested])
        let before = try workspace.journalDigest()
        try bytes.write(to: workspace.drop.appendingPathComponent("night-1-copy.csv"))
        let second = try workspace.gateway().runOnce()
        #expect(second.files.map(\.outcome) == [.duplicate])
        #expect(try workspace.journalDigest() == before)
        #expect(workspace.names(in: workspace.archive).contains("night-1-copy.csv.reason.txt"))
    }

    @Test func changedContentMakesANewRevisionAndTheRestIsUnchanged() throws {
        let workspace = try Workspace()
        let rows = [row("C1", step: "01"), row("C1", step: "02"), row("C1", step: "03")]
        try workspace.write("drop/a.csv", ([header] + rows).joined(separator: "\n") + "\n")
        _ = try workspace.gateway().runOnce()
        var changed = rows
        changed[1] = row("C1", step: "02", handler: "赵敏")
        try workspace.write("drop/b.csv", ([header] + changed).joined(separator: "\n") + "\n")
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.counts.stored == 1)
        #expect(report.counts.unchanged == 3)
        let journal = try Journal(path: workspace.journalPath)
        let steps = try journal.entries(after: 0, types: ["Step"])
        #expect(steps.map(\.rev) == [1, 1, 2])
        #expect(steps.last?.body.contains("赵敏") == true)
    }
}

@Suite struct QuarantineReplayTests {
    @Test func rowsQuarantinedByAMappingGapAreStoredAfterTheMappingIsFixed() throws {
        let workspace = try Workspace()
        // Break the mapping: the fee code of XK0008 is missing from its code table.
        let tablePath = "mappings/tables/fee-codes.csv"
        let original = try workspace.read(tablePath)
        try workspace.write(tablePath, original.replacingOccurrences(of: "XK0008,F000801\n", with: ""))
        try workspace.write("drop/a.csv", [header, row("C1", step: "01"), row("C1", step: "05", fee: "120.00")].joined(separator: "\n") + "\n")
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.counts.quarantined == 1)
        #expect(report.counts.stored == 3, "Application, Acceptance and the Completion of the quarantined row are stored")
        let journal = try Journal(path: workspace.journalPath)
        let entry = try #require(try journal.quarantined().first)
        #expect(entry.item.field == "FeeCode")
        #expect(entry.item.line == 3)
        #expect(entry.item.reason.contains("not in code table fee_code"))

        // Replaying before the fix changes nothing and keeps the row.
        let early = try workspace.gateway().replayQuarantine()
        #expect(early.stillFailing == 1)
        #expect(try journal.quarantined().count == 1)

        try workspace.write(tablePath, original)
        let replay = try workspace.gateway().replayQuarantine()
        #expect(replay.replayed == 1)
        #expect(replay.stored == 1, "the Fee")
        #expect(replay.unchanged == 1, "the Completion was already stored")
        #expect(try journal.quarantined().isEmpty)
        let fee = try #require(try journal.entries(after: 0, types: ["Fee"]).first)
        #expect(fee.body.contains("<FeeCode>F000801</FeeCode>"))
        #expect(fee.line == 3)
    }
}

@Suite struct SupervisionWiringTests {
    @Test func gatewayYamlThresholdsReachTheEngine() throws {
        let workspace = try Workspace()
        try workspace.write("gateway.yaml", """
            district: "410103"
            state_dir: state
            log_level: error
            supervision:
              late_report_hours: 48
              disabled_rules: [XK01, XK08]
            """)
        try workspace.generate("a.csv", rows: 200)
        let gateway = try workspace.gateway()
        #expect(gateway.supervisionSettings.lateReportHours == 48)
        #expect(!gateway.supervisionSettings.isEnabled(.xk01))
        #expect(gateway.supervisionSettings.isEnabled(.xk02))
        _ = try gateway.runOnce()
        let pass = try gateway.superviseOnce()
        #expect(pass.consumed > 200)
        // The January 2026 sample is months old: with XK08 enabled every record would be a late report.
        let alerts = try workspace.bodies(where: "type = 'Alert'")
        #expect(!alerts.contains { $0.contains("<RuleCode>XK08</RuleCode>") })
        #expect(!alerts.contains { $0.contains("<RuleCode>XK01</RuleCode>") })
    }

    @Test func theUplinksFetchedReferenceDataIsUsedWhenNoneIsConfigured() throws {
        let workspace = try Workspace()
        #expect(try workspace.gateway().loadReferenceData().hasCalendar == false, "no file, nothing fetched: no calendar")
        try FileManager.default.createDirectory(at: workspace.root.appendingPathComponent("state"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("reference/reference-data.xml"),
                                         to: workspace.root.appendingPathComponent("state/reference-data.xml"))
        let reference = try workspace.gateway().loadReferenceData()
        #expect(reference.hasCalendar)
        #expect(reference.version == "2026.12-1")
    }

    /// `esgate run` started without reference data: the uplink fetches the first copy a moment later (and a new
    /// version every `reference_refresh`). The running engine must switch to it, not run without a calendar until
    /// a restart, and the subjects that met a calendar gap are evaluated again.
    @Test func theRunningEngineTakesUpReferenceDataFetchedAfterStart() throws {
        let workspace = try Workspace()
        try workspace.generate("a.csv", rows: 200)
        let gateway = try workspace.gateway()
        _ = try gateway.runOnce()
        let ticker = try gateway.makeSupervisionTicker(journal: try gateway.openJournal())
        let first = try ticker.runPass()
        #expect(first.calendarGaps > 0, "no calendar yet")
        #expect(ticker.engine.reference.hasCalendar == false)

        // What the uplink does after GetReferenceData: the file appears in the state folder.
        try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("reference/reference-data.xml"),
                                         to: workspace.root.appendingPathComponent("state/reference-data.xml"))
        let second = try ticker.runPass()
        #expect(ticker.engine.reference.hasCalendar)
        #expect(ticker.engine.reference.version == "2026.12-1")
        #expect(second.evaluated > 0, "the subjects with calendar gaps are evaluated again")
        #expect(second.calendarGaps == 0)
        #expect(try ticker.runPass().evaluated == 0, "an unchanged file is not loaded again")
    }
}
