@testable import Adapters
import Foundation
import GatewayModel
import GatewayRuntime
import Testing

@Suite struct DropFolderFaultTests {

    /// The workspace's CSV drop adapter, on its own, so that a test can hook into one file's ingest.
    func dropAdapter(_ workspace: Workspace) throws -> CSVDropAdapter {
        let gateway = try workspace.gateway()
        let configuration = gateway.configuration
        let adapter = try #require(configuration.adapters.first { $0.csv != nil })
        return CSVDropAdapter(name: adapter.name, settings: try #require(adapter.csv),
                              plan: try #require(configuration.mappings[adapter.mapping]), schema: configuration.schema,
                              journal: try gateway.openJournal(), logger: .silent)
    }

    /// A writer renames a new export over the name while the old one is being read: the old content is stored under
    /// its own hash, and the new file stays in the drop folder for the next poll instead of being archived unread.
    @Test func aFileReplacedWhileItIsReadIsNotArchivedUnread() throws {
        let workspace = try Workspace()
        let first = try workspace.generate("cases.csv", rows: 300)
        let second = try workspace.generate("next.csv.part", rows: 200, arguments: ["--seed", "99"])
        let csv = try dropAdapter(workspace)
        csv.afterHashing = { _ = rename(second.path, first.path) }
        let report = try csv.ingestFile(named: "cases.csv")
        #expect(report.outcome == .ingested && report.counts.rows == 300, "the file as hashed is read")
        #expect(workspace.names(in: workspace.drop).contains("cases.csv"), "the replacement waits in the drop folder")
        csv.afterHashing = nil
        let next = try csv.ingestFile(named: "cases.csv")
        #expect(next.outcome == .ingested && next.counts.rows == 200)
        #expect(workspace.names(in: workspace.archive) == ["cases.csv"])
    }

    /// An export dropped again unchanged, and a new one renamed over its name while the old one is hashed: the
    /// duplicate is not archived under the name, which would archive the new export unread.
    @Test func aFileReplacedWhileADuplicateIsHashedIsNotArchivedUnread() throws {
        let workspace = try Workspace()
        let first = try workspace.generate("cases.csv", rows: 300)
        let copy = try Data(contentsOf: first)
        let csv = try dropAdapter(workspace)
        #expect(try csv.ingestFile(named: "cases.csv").outcome == .ingested)
        try copy.write(to: first)
        let second = try workspace.generate("next.csv.part", rows: 200, arguments: ["--seed", "99"])
        try expectReplacementWaits(csv, workspace, replacing: first, with: second, outcome: .duplicate)
    }

    /// `second` renamed over `first` after `first` was hashed: `first` ends as `outcome`, and the replacement is
    /// left in the drop folder and read whole by the next ingest.
    func expectReplacementWaits(_ csv: CSVDropAdapter, _ workspace: Workspace, replacing first: URL, with second: URL,
                                outcome: FileReport.Outcome) throws {
        csv.afterHashing = { _ = rename(second.path, first.path) }
        #expect(try csv.ingestFile(named: first.lastPathComponent).outcome == outcome)
        #expect(workspace.names(in: workspace.drop).contains(first.lastPathComponent), "the replacement waits in the drop folder")
        csv.afterHashing = nil
        let next = try csv.ingestFile(named: first.lastPathComponent)
        #expect(next.outcome == .ingested && next.counts.rows == 200, "the new export is read")
    }

    /// A refused file (its header does not fit the mapping) replaced by a good export while it is read: the good
    /// export is not moved to the rejected folder.
    @Test func aFileReplacedWhileARefusedOneIsReadIsNotRejected() throws {
        let workspace = try Workspace()
        let first = workspace.drop.appendingPathComponent("cases.csv")
        try Data("x,y\n1,2\n".utf8).write(to: first)
        let second = try workspace.generate("next.csv.part", rows: 200)
        let csv = try dropAdapter(workspace)
        try expectReplacementWaits(csv, workspace, replacing: first, with: second, outcome: .rejected)
    }
}

@Suite struct ForeignNameTests {

    /// A name in GBK bytes (办件.csv, as a Windows sender writes it) is not left out of the listing: it is renamed to
    /// its text and ingested.
    @Test func aFileNamedInGBKIsRenamedAndIngested() throws {
        let workspace = try Workspace()
        let utf8Name = try workspace.generate("cases.csv.part", rows: 50)
        let gbkName = Array((workspace.drop.path + "/").utf8) + [0xB0, 0xEC, 0xBC, 0xFE] + Array(".csv".utf8)
        #expect(rename(utf8Name.path, (gbkName + [0]).map { CChar(bitPattern: $0) }) == 0)
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.name == "办件.csv" && report.outcome == .ingested && report.counts.rows == 50)
        #expect(workspace.names(in: workspace.archive) == ["办件.csv"])
    }

    /// A file already under the decoded name (the sender's own export) is never replaced by the renaming: the GBK
    /// one stays as it is, named in the reason.
    @Test func anExistingFileUnderTheDecodedNameIsNotReplaced() throws {
        let workspace = try Workspace()
        let gbk = try workspace.generate("gbk.csv.part", rows: 5)
        let gbkName = Array((workspace.drop.path + "/").utf8) + [0xB0, 0xEC, 0xBC, 0xFE] + Array(".csv".utf8)
        #expect(rename(gbk.path, (gbkName + [0]).map { CChar(bitPattern: $0) }) == 0)
        try workspace.write("drop/办件.csv", "kept\n")
        let result = ForeignNames.normalize(in: workspace.drop.path)
        #expect(result.renamed.isEmpty && result.failed.count == 1 && result.failed.first?.contains("which exists") == true, "\(result)")
        #expect(try workspace.read("drop/办件.csv") == "kept\n")
    }

    @Test func aNameThatIsNeitherUTF8NorGB18030IsEscaped() {
        #expect(ForeignNames.decoded([0x61, 0x81, 0x2E, 0x63]) == "a%81.c")
        #expect(ForeignNames.decoded([0xB0, 0xEC]) == "办")
    }
}
