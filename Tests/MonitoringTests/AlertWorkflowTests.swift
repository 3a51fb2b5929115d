// The correction workflow: each action is a new Alert revision in the journal and an audit log entry.

import Foundation
import Journal
import Monitoring
import Supervision
import Testing

@Suite struct AlertWorkflowTests {
    /// An overdue case: 1 W from Mon 2026-03-02 → deadline date Tue 03-03, deadline 03-04 00:00.
    private func overdueCase() throws -> (Fixture, String) {
        let f = try Fixture(start: "2026-03-02T09:00:00")
        try f.acceptance("W1", acceptedAt: "2026-03-02T09:00:00", limit: 1)
        try f.pass(at: "2026-03-04T00:00:30")
        let id = try #require(try f.alerts("XK02").first).alertId
        return (f, id)
    }

    @Test func ackCorrectCloseWriteRevisionsAndTheAuditLog() throws {
        let (f, id) = try overdueCase()
        // (time, action, expected state, expected journal rev)
        let steps: [(String, AlertAction, String, Int64)] = [
            ("2026-03-04T10:00:00", .acknowledge(explanation: "材料退回补正，已补录"), "ACKED", 2),
            ("2026-03-05T10:00:00", .markCorrected, "CORRECTED", 3),
            ("2026-03-06T10:00:00", .close, "CLOSED", 4),
        ]
        for (time, action, state, rev) in steps {
            f.clock.now = try at(time)
            let record = try f.engine.act(on: id, action, by: action == .close ? "监察局 王" : "窗口 李", note: "note \(state)")
            #expect(record.state.rawValue == state)
            #expect(record.stateAt.description == time + "+08:00")
            let head = try #require(try f.journal.head(type: "Alert", key: id))
            #expect(head.rev == rev)
            let last = try #require(try f.journalEntries("Alert").last)
            #expect(last.body.contains("<State>\(state)</State>") && last.rev == rev)
        }
        let detail = try f.engine.alertDetail(id)
        #expect(detail.alert.state == "CLOSED" && detail.alert.rev == 4)
        #expect(detail.alert.explanation == "材料退回补正，已补录")
        #expect(detail.audit.map(\.action) == ["raise", "ack", "correct", "close"])
        #expect(detail.audit.map(\.actor) == ["esgate", "窗口 李", "窗口 李", "监察局 王"])
        #expect(detail.audit.map(\.toState) == ["OPEN", "ACKED", "CORRECTED", "CLOSED"])
        #expect(detail.audit[1].at == "2026-03-04T10:00:00+08:00" && detail.audit[1].note == "note ACKED")
        #expect(detail.timeline.map(\.recordType) == ["Acceptance"])
        #expect(detail.timeline.allSatisfy { !$0.fields.keys.contains { $0.hasPrefix("Applicant") } })
    }

    @Test(arguments: [
        // (actions already done, action tried, what must fail)
        ([AlertAction](), AlertAction.close, "notAllowed"),
        ([], .markCorrected, "notAllowed"),
        ([], .acknowledge(explanation: "  \u{3000} "), "blank"),
        ([.acknowledge(explanation: "ok")], .acknowledge(explanation: "again"), "notAllowed"),
        ([.acknowledge(explanation: "ok"), .markCorrected, .close], .close, "notAllowed"),
    ])
    func disallowedActionsChangeNothing(done: [AlertAction], action: AlertAction, failure: String) throws {
        let (f, id) = try overdueCase()
        f.clock.now = try at("2026-03-04T12:00:00")
        for previous in done { try f.engine.act(on: id, previous, by: "tester", note: nil) }
        let revBefore = try f.journal.head(type: "Alert", key: id)?.rev
        #expect {
            try f.engine.act(on: id, action, by: "tester", note: nil)
        } throws: { error in
            guard case MonitoringError.transition(let transition) = error else { return false }
            switch (transition, failure) {
            case (.notAllowed, "notAllowed"), (.blankExplanation, "blank"): return true
            default: return false
            }
        }
        #expect(try f.journal.head(type: "Alert", key: id)?.rev == revBefore)
        #expect(try f.engine.alertDetail(id).audit.count == 1 + done.count)
    }

    @Test func unknownAlertAndMissingActorAreErrors() throws {
        let (f, id) = try overdueCase()
        #expect(throws: MonitoringError.self) { try f.engine.act(on: "XK02-nope", .close, by: "x", note: nil) }
        #expect(throws: MonitoringError.self) { try f.engine.act(on: id, .markCorrected, by: "  ", note: nil) }
        #expect(throws: MonitoringError.self) { try f.engine.alertDetail("XK02-nope") }
    }

    /// PJ02 watches the PJ01 alert's workflow: corrected before ResponseDue → no red card.
    /// Rated Mon 2026-03-02 → ResponseDue = end of the 15th working day after: 03-03..03-20 holds 14 working days
    /// (3-6, 9-13, 16-20), the 15th is Mon 03-23 → ResponseDue 2026-03-24T00:00.
    @Test(arguments: [(true, 0), (false, 1)])
    func pj02DependsOnTheCorrection(correctInTime: Bool, pj02: Int) throws {
        let f = try Fixture(start: "2026-03-02T10:00:00")
        try f.evaluation("EV1", rating: 1, ratedAt: "2026-03-02T10:00:00")
        try f.pass(at: "2026-03-02T10:01:00")
        let pj01 = try #require(try f.alerts("PJ01").first)
        #expect(pj01.responseDue == "2026-03-24T00:00:00+08:00")
        if correctInTime {
            f.clock.now = try at("2026-03-10T09:00:00")
            try f.engine.act(on: pj01.alertId, .acknowledge(explanation: "已回访"), by: "窗口", note: nil)
            try f.engine.act(on: pj01.alertId, .markCorrected, by: "窗口", note: nil)
        }
        try f.pass(at: "2026-03-24T00:00:20")
        #expect(try f.alerts("PJ02").count == pj02)
    }
}
