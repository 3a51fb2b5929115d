import Foundation
import Journal
import Testing
import TextSupport

private let header = "办件编号,事项编码,事项名称,部门编码,部门名称,申请人,证件号码,环节代码,环节名称,办理人,办理时间,承诺时限,法定时限,收费金额,备注"

private func row(_ caseNo: String, step: String = "02", remark: String = "") -> String {
    "\(caseNo),XK0008,城市道路占用许可,410103001,二七区行政服务中心,王伟,410103199001011237,\(step),环节,李娜,2026-01-05 08:37:00,7,20,,\(remark)"
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
            #expect(!output.contains("199001011237") && !output.contains("3431303130333139"), "no identity number, plain or as hex: \(output)")
        }
        #expect(text.out.contains("C1,XK0008,城市道路占用许可,410103001,二七区行政服务中心,王伟,410103********1237,02,"), "\(text.out)")
        #expect(text.out.contains("坏\\xFF "), "the undecodable byte is shown escaped: \(text.out)")
        #expect(text.out.contains("C2,") && text.out.contains("410103****\\xFF"), "\(text.out)")
        // The stored bytes are untouched for a replay.
        let entries = try Journal(path: workspace.journalPath).quarantined()
        #expect(entries.count == 2 && entries.allSatisfy { $0.item.stage == .decode && $0.item.raw.contains(0xFF) })
    }
}
