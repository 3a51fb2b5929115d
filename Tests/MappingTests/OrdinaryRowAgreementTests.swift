import Foundation
import GatewayConfig
import GatewayModel
import Journal
import Testing
@testable import Mapping

/// The one-pass byte path for ordinary rows against the general mapping → normalize path on random rows.
@Suite struct OrdinaryRowAgreementTests {
    @Test func ordinaryPathEqualsGeneralPath() throws {
        let schema = try PUISchema.shipped()
        let yaml = """
            code_tables:
              names: { map: { A1: 承办, A2: 审核, "  ": 空 }, default: 其他 }
              people: { map: { X: 张三, Y: "a&b<c>" }, pass_through: true }
              strict: { map: { XK0001: F1, XK0002: "F 2" } }
            records:
              - type: Application
                when:
                  - { column: CODE, in: ["01", "1"] }
                fields:
                  CaseNo: CASE
                  ItemCode: ITEM
                  ItemName: { column: ITEM, code_table: names }
                  DeptCode: { column: DEPT, default: "410103001" }
                  Applicant.Name: WHO
                  Applicant.IdType: { constant: "01" }
                  Applicant.IdNumber: { column: ID, id18: true }
                  Channel: { constant: "1" }
                  AppliedAt: { column: WHEN, datetime: ["yyyy-MM-dd HH:mm:ss", "yyyy/M/d H:mm", "yyyyMMddHHmmss"] }
              - type: Acceptance
                when:
                  - { column: CODE, in: ["01"] }
                fields:
                  CaseNo: CASE
                  DeptCode: DEPT
                  Decision: { constant: "1" }
                  Handler.Name: { column: WHO, code_table: people, trim: false }
                  AcceptedAt: { column: WHEN, datetime: "yyyy-MM-dd HH:mm:ss.SSS", utc_offset: "+00:00" }
                  PromisedLimit: { column: LIMIT, integer: true }
                  PromisedUnit: { constant: W }
                  LegalLimit: { column: LIMIT, integer: true }
                  LegalUnit: { constant: W }
              - type: Step
                when:
                  - { column: CODE, not_in: ["01", "05"] }
                fields:
                  CaseNo: CASE
                  StepCode: { column: CODE, default: "09" }
                  StepName: { column: CODE, code_table: names }
                  Handler.Name: WHO
                  HandledAt: { column: WHEN, datetime: ["yyyy-MM-dd HH:mm:ss", "yyyy/M/d H:mm"], utc_offset: "+09:30" }
                  Opinion: NOTE
              - type: Fee
                when:
                  - { column: CODE, in: ["05"] }
                  - { column: AMT, nonzero: true }
                fields:
                  CaseNo: CASE
                  FeeCode: { column: ITEM, code_table: strict }
                  FeeName: { column: ITEM, code_table: names }
                  Amount: { column: AMT, decimal: 2 }
                  ChargedAt: { column: WHEN, datetime: "yyyy-MM-dd HH:mm:ss" }
              - type: Completion
                when:
                  - { column: CODE, in: ["05"] }
                  - { column: NOTE, blank: false }
                fields:
                  CaseNo: CASE
                  Result: { constant: "1" }
                  Handler.Name: WHO
                  CompletedAt: { column: WHEN, datetime: "yyyy-MM-dd HH:mm:ss" }
            """
        var errors: [ConfigError] = []
        let spec = try #require(MappingSpec.parse(yaml, file: "/tmp/scratch.yaml", errors: &errors))
        #expect(errors.isEmpty, "\(errors)")
        let plan = try MappingPlan.compile(spec, schema: schema).get()
        let header = ["CASE", "WHEN", "WHO", "LIMIT", "CODE", "ID", "AMT", "ITEM", "DEPT", "NOTE"]
        let mapping = try plan.bind(header: header).get()
        let pools: [[String]] = [
            ["C-1", "C2", " C-2 ", "410103006202601050000001", "C 1", "长号", "", "\u{3000}C3\u{3000}", String(repeating: "X", count: 65), "c&d"],
            ["2026-01-05 08:37:00", "2026/1/5 8:37", "20260105083700", "2026-02-30 08:00:00", "2026-01-05 08:37:00.5", "2026-01-05 08:37:00.250",
             "2025-12-31 20:15:30.5", "0001-01-01 00:00:00", "9999-12-31 23:59:59", " 2026-01-05 08:37:00", "", "x"],
            ["王", "李四", "X", "Y", " X ", "", "a\u{1}b", "e\u{301}", "\u{FFFF}", String(repeating: "长", count: 65), "tab\there", "line\r\nbreak", "A&B<C>"],
            ["15", "015", "0", "3650", "3651", "1.5", "15.0", "-1", "", "abc", "1,000"],
            ["01", "1", "02", " 03 ", "05", "\u{3000}05", "11", "", "99"],
            ["410103199001011230", "41010319900101129x", "410103199001011237", "410103199001011000", "410103900101123", "12345", "４１０", "41010319900101129X", "abcdefghijklmnopqr", ""],
            ["120.00", "0", "0.00", "1,200.5", "12.345", "-5", "9999999999999", "", " ", "1e3", "N/A", "-0.00", "0,000.00", "-", "３５０.00", "￥0.00", "￥350"],
            ["XK0001", "XK0002", "A1", "A2", "ZZ", "", "  ", "长"],
            ["410103001", "91410103MA1234567X", " 410103001", "41010300", "", "91410103ma1234567x"],
            ["", "ok", "申请人补充说明", "  ", "&<>\r", String(repeating: "长", count: 2001)],
        ]
        var rng = SystemRandomNumberGenerator()
        let scratch = RowScratch()
        var ordinaryCount = 0, generalOnly = 0, compared = 0, compactCompared = 0
        for _ in 0..<60000 {   // 400,000 were run once; 60,000 keep the suite quick
            var row = pools.map { $0[Int.random(in: 0..<10, using: &rng) < 7 ? Int.random(in: 0..<min(2, $0.count), using: &rng) : Int.random(in: 0..<$0.count, using: &rng)] }
            if Int.random(in: 0..<20, using: &rng) == 0 { row.removeLast(Int.random(in: 1...4, using: &rng)) }
            let outcome = mapping.map(row)
            var general: [NormalizedRecord]? = nil
            if outcome.errors.isEmpty {
                var records: [NormalizedRecord] = []
                for draft in outcome.records {
                    guard case .success(let record) = schema.normalize(draft) else { records = []; break }
                    records.append(record)
                }
                if records.count == outcome.records.count, !records.isEmpty || outcome.records.isEmpty { general = records }
            }
            let ordinary = mapping.normalizeOrdinaryRow(row, schema: schema, scratch: scratch)
            compared += 1
            // The journal's variant: the same records, and each compact body written alongside is exactly what
            // the journal's encoder makes of the XML.
            var rowBytes: [UInt8] = []
            var rowRanges: [Range<Int>] = []
            for field in row {
                rowRanges.append(rowBytes.count..<(rowBytes.count + field.utf8.count))
                rowBytes.append(contentsOf: field.utf8)
            }
            let forJournal = rowBytes.withUnsafeBufferPointer { bytes in
                rowRanges.withUnsafeBufferPointer { ranges in
                    mapping.normalizeOrdinaryRowForJournal(fieldBytes: bytes, fieldRanges: ranges, schema: schema, scratch: scratch)
                }
            }
            #expect(forJournal?.records == ordinary, "row \(row)")
            if let forJournal {
                #expect(forJournal.compactBodies.count == forJournal.records.count)
                for (record, compact) in zip(forJournal.records, forJournal.compactBodies) {
                    #expect(compact != nil && compact == StoredBody.encode(record.body), "\(record.body)")
                    compactCompared += 1
                }
            }
            if let ordinary {
                ordinaryCount += 1
                #expect(general == ordinary, "row \(row)")
            } else if general != nil {
                generalOnly += 1
                if generalOnly < 15 { print("general only: \(row)") }
            }
        }
        print("ordinary \(ordinaryCount), general-only \(generalOnly) of \(compared)")
        #expect(ordinaryCount > 1000)
        #expect(compactCompared > 1000)
    }
}
