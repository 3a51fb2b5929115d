import Foundation
import Journal
import Testing
import TextSupport

private let header = "办件编号,事项编码,事项名称,部门编码,部门名称,申请人,证件号码,环节代码,环节名称,办理人,办理时间,承诺时限,法定时限,收费金额,备注"

private func row(_ caseNo: String, step: String = "02", remark: String = "") -> String {
    "\(caseNo),XK0008,城市道路占用许可,410103001,二七区行政服务中心,王伟,410103199001011230,\(step),环节,李娜,2026-01-05 08:37:00,7,20,,\(remark)"
}

/// `esgate quarantine …` on real drop files, through the binary.
@Suite struct QuarantineCommandTests {
    @Test func rowsThatDoNotDecodeAreShownDecodedAsFarAsPossibleWithIdentityNumbersMasked() async throws {
        let workspace = try Workspace(encoding: "gb18030")
        var bytes = try encode(header + "\r\n", as: .gb18030)
        // An invalid byte in the remark, and one inside the identity number itself.
        bytes += try encode(row("C1", remark: "坏"), as: .gb18030) + [0xFF, 0x20] + Array("\r\n".utf8)
        let split = row("C2").components(separatedBy: "4101031990")
        bytes += try encode(split[0] + "4101031990", as: .gb18030) + [0xFF] + encode(split[1] + "\r\n", as: .gb18030)
        try Data(bytes).write(to: workspace.drop.appendingPathComponent("bad.csv"))
        #expect(try await esgate(["run", "--once", "--config", workspace.configPath]).code == 0)

        let text = try await esgate(["quarantine", "list", "--config", workspace.configPath])
        let json = try await esgate(["quarantine", "list", "--json", "--config", workspace.configPath])
        #expect(text.code == 0 && json.code == 0, "\(text.err)\(json.err)")
        for output in [text.out, json.out] {
            #expect(!output.contains("199001011230") && !output.contains("3431303130333139"), "no identity number, plain or as hex: \(output)")
        }
        #expect(text.out.contains("C1,XK0008,城市道路占用许可,410103001,二七区行政服务中心,王伟,410103********1230,02,"), "\(text.out)")
        #expect(text.out.contains("坏\\xFF "), "the undecodable byte is shown escaped: \(text.out)")
        #expect(text.out.contains("C2,") && text.out.contains("410103****\\xFF"), "\(text.out)")
        // The stored bytes are untouched for a replay.
        let entries = try Journal(path: workspace.journalPath).quarantined()
        #expect(entries.count == 2 && entries.allSatisfy { $0.item.stage == .decode && $0.item.raw.contains(0xFF) })
    }

    @Test func dropClosesEntriesForGoodAndUnknownFiltersAreErrors() async throws {
        let workspace = try Workspace()
        try workspace.write("drop/a.csv", [header, row("C1"), row("C2", step: "77")].joined(separator: "\n") + "\n")
        #expect(try await esgate(["run", "--once", "--config", workspace.configPath]).code == 0)
        let config = ["--config", workspace.configPath]

        let unknownSource = try await esgate(["quarantine", "list", "--source", "nosuch"] + config)
        #expect(unknownSource.code == 2 && unknownSource.err.contains("no adapter named 'nosuch' (configured: drop)"), "\(unknownSource)")
        let unknownReplaySource = try await esgate(["quarantine", "replay", "--source", "nosuch"] + config)
        #expect(unknownReplaySource.code == 2 && unknownReplaySource.err.contains("no adapter named 'nosuch'"))
        let unknownId = try await esgate(["quarantine", "replay", "--id", "999"] + config)
        #expect(unknownId.code == 1 && unknownId.err.contains("#999 is unknown"), "\(unknownId)")

        #expect(try await esgate(["quarantine", "drop", "--id", "1"] + config).code == 2, "a drop needs a reason")
        #expect(try await esgate(["quarantine", "drop", "--help"]).code == 0)
        let drop = try await esgate(["quarantine", "drop", "--id", "1", "--id", "999", "--reason", "fixed at the source"] + config)
        #expect(drop.code == 1 && drop.out.contains("dropped 1 quarantined row(s)") && drop.err.contains("#999"), "\(drop)")
        #expect(try await esgate(["quarantine", "list"] + config).out.contains("no quarantined rows"))
        let status = try await esgate(["adapter", "status"] + config)
        #expect(status.out.contains("quarantined rows open: 0"), "\(status.out)")
        let all = try await esgate(["quarantine", "list", "--all", "--json"] + config)
        let listed = try JSONSerialization.jsonObject(with: Data(all.out.utf8)) as? [[String: Any]] ?? []
        #expect(listed.count == 1 && listed.first?["state"] as? String == "dropped")
        #expect(listed.first?["closedReason"] as? String == "dropped: fixed at the source")
        let again = try await esgate(["quarantine", "replay", "--id", "1"] + config)
        #expect(again.code == 1 && again.err.contains("#1 is dropped already"), "\(again)")
    }

    @Test func everyErrorOfARowIsListedAndMappingTestPrintsThemAll() async throws {
        let workspace = try Workspace()
        // No fee code nor fee name for XK0001, and three decimals for a fee.
        let bad = "C1,XK0001,x,410103001,x,王伟,410103199001011230,05,办结,李娜,2026-01-05 08:37:00,7,20,1.234,"
        try workspace.write("drop/a.csv", [header, bad].joined(separator: "\n") + "\n")
        #expect(try await esgate(["run", "--once", "--config", workspace.configPath]).code == 0)
        let json = try await esgate(["quarantine", "list", "--json", "--config", workspace.configPath])
        let listed = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [[String: Any]] ?? []
        let errors = listed.first?["errors"] as? [String] ?? []
        #expect(errors.count == 3 && errors.contains { $0.contains("Fee.Amount") } && errors.contains { $0.contains("Fee.FeeName") }, "\(json.out)")
        #expect(!json.out.contains("more)"))
        let text = try await esgate(["quarantine", "list", "--config", workspace.configPath])
        #expect(text.out.components(separatedBy: "\n    also: Fee.").count == 3, "\(text.out)")
        try workspace.write("b.csv", [header, bad].joined(separator: "\n") + "\n")
        let test = try await esgate(["mapping", "test", "--mapping", "gen-cases", "--file", workspace.root.appendingPathComponent("b.csv").path,
                                     "--config", workspace.configPath])
        #expect(test.code == 1 && test.out.components(separatedBy: "  ERROR Fee.").count == 4, "\(test.out)")
    }
}
