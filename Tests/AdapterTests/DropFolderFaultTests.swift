@testable import Adapters
import Foundation
import GatewayModel
import GatewayRuntime
import Testing

@Suite struct DropFolderFaultTests {

    /// A writer renames a new export over the name while the old one is being read: the old content is stored under
    /// its own hash, and the new file stays in the drop folder for the next poll instead of being archived unread.
    @Test func aFileReplacedWhileItIsReadIsNotArchivedUnread() throws {
        let workspace = try Workspace()
        let first = try workspace.generate("cases.csv", rows: 300)
        let second = try workspace.generate("next.csv.part", rows: 200, arguments: ["--seed", "99"])
        let gateway = try workspace.gateway()
        let configuration = gateway.configuration
        let adapter = try #require(configuration.adapters.first { $0.csv != nil })
        let csv = CSVDropAdapter(name: adapter.name, settings: try #require(adapter.csv),
                                 plan: try #require(configuration.mappings[adapter.mapping]), schema: configuration.schema,
                                 journal: try gateway.openJournal(), logger: .silent)
        csv.afterHashing = { _ = rename(second.path, first.path) }
        let report = try csv.ingestFile(named: "cases.csv")
        #expect(report.outcome == .ingested && report.counts.rows == 300, "the file as hashed is read")
        #expect(workspace.names(in: workspace.drop).contains("cases.csv"), "the replacement waits in the drop folder")
        csv.afterHashing = nil
        let next = try csv.ingestFile(named: "cases.csv")
        #expect(next.outcome == .ingested && next.counts.rows == 200)
        #expect(workspace.names(in: workspace.archive) == ["cases.csv"])
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

    @Test func aNameThatIsNeitherUTF8NorGB18030IsEscaped() {
        #expect(ForeignNames.decoded([0x61, 0x81, 0x2E, 0x63]) == "a%81.c")
        #expect(ForeignNames.decoded([0xB0, 0xEC]) == "办")
    }
}
