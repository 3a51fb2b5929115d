// From CSV rows through the shipped adapter (adapters/gen-cases-drop.yaml) and mapping (mappings/gen-cases.yaml)
// to alerts: the gateway ingests, the engine supervises with a controllable clock.

import Foundation
import GatewayConfig
import GatewayModel
import GatewayRuntime
import Journal
import Monitoring
import Supervision
import Testing

@Suite struct CSVEndToEndTests {
    /// Case CSV1 (item XK0006, department 410103001) accepted Tue 2026-02-10 09:30 with 承诺时限 5 (W): as in
    /// RealTimeAlertTests, deadline date 2026-02-24 and deadline 2026-02-25T00:00 across the Spring Festival.
    /// The case never completes; XK02 must appear at the deadline without any further row, exactly once.
    @Test func csvRowsToXK02() throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let directory = NSTemporaryDirectory() + "monitoring-csv-" + UUID().uuidString
        let drop = directory + "/drop"
        try FileManager.default.createDirectory(atPath: drop, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try referenceXML.write(toFile: directory + "/reference.xml", atomically: true, encoding: .utf8)
        try """
            district: "410103"
            state_dir: state
            adapters_dir: \(repository)/adapters
            mappings_dir: \(repository)/mappings
            reference_data: reference.xml
            receivers: []
            """.write(toFile: directory + "/gateway.yaml", atomically: true, encoding: .utf8)
        let header = "办件编号,事项编码,事项名称,部门编码,部门名称,申请人,证件号码,环节代码,环节名称,办理人,办理时间,承诺时限,法定时限,收费金额,备注"
        let rows = [
            "CSV1,XK0006,税务登记证核发,410103001,二七区行政服务中心,张三,410103198001010014,01,受理,李四,2026-02-10 09:30:00,5,20,,",
            "CSV1,XK0006,税务登记证核发,410103001,二七区行政服务中心,张三,410103198001010014,02,承办,王五,2026-02-11 10:00:00,5,20,,",
        ]
        let file = drop + "/cases.csv"
        try ([header] + rows).joined(separator: "\r\n").appending("\r\n").write(toFile: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -600)], ofItemAtPath: file)

        let loaded: LoadedConfiguration
        switch loadConfiguration(path: directory + "/gateway.yaml", environment: ["ESGATE_DROP": drop]) {
        case .success(let configuration): loaded = configuration
        case .failure(let errors): Issue.record("configuration: \(errors.description)"); return
        }
        let gateway = Gateway(configuration: loaded, logger: .silent)
        let ingested = try gateway.runOnce()
        #expect(ingested.counts.stored == 3)  // Application + Acceptance (row 01), Step (row 02)

        let clock = TestClock(try at("2026-02-10T12:00:00"))
        var engine = try gateway.makeSupervisionEngine(journal: try gateway.openJournal(), now: { clock.now })
        #expect(engine.reference.version == "test-1")
        // (now, XK02 alerts)
        let ticks: [(String, Int)] = [
            ("2026-02-10T12:00:00", 0), ("2026-02-24T23:59:30", 0), ("2026-02-25T00:00:45", 1), ("2026-02-25T08:00:00", 1),
        ]
        for (now, xk02) in ticks {
            clock.now = try at(now)
            try engine.runPass()
            #expect(try engine.alerts(AlertFilter(limit: 1000)).filter { $0.rule == "XK02" }.count == xk02, "at \(now)")
        }
        // A restart and the same file dropped again: nothing new is raised.
        try ([header] + rows).joined(separator: "\r\n").appending("\r\n").write(toFile: drop + "/again.csv", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -600)], ofItemAtPath: drop + "/again.csv")
        _ = try gateway.runOnce()
        engine = try gateway.makeSupervisionEngine(journal: try gateway.openJournal(), now: { clock.now })
        clock.now = try at("2026-02-26T08:00:00")
        let pass = try engine.runPass()
        #expect(pass.alertsRaised == 0)
        let xk02 = try engine.alerts(AlertFilter(limit: 1000)).filter { $0.rule == "XK02" }
        #expect(xk02.map(\.subjectKey) == ["CSV1"] && xk02.map(\.raisedAt) == ["2026-02-25T00:00:00+08:00"])
        // The timeline shows the case's records, never the applicant's identity number.
        let detail = try engine.alertDetail(try #require(xk02.first).alertId)
        #expect(detail.timeline.map(\.recordType) == ["Application", "Acceptance", "Step"])
        #expect(!detail.timeline.contains { $0.fields.values.contains("410103198001010014") })
    }
}
