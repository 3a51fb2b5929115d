// XK01-XK08: each rule raised at its boundary and silent just on the other side. Dates over the real 2026
// calendar (see CaseClockTests for the holiday facts).

import Testing
@testable import Supervision

/// Case accepted Thu 2026-02-12 10:00, 5 W, item XK0001 (catalog: promised 10 W, legal 20 W): deadline date
/// 2026-02-26 (counted 13, 14 make-up, 24, 25, 26), deadline 2026-02-27T00:00.
func springFestivalCase(completedAt: String? = nil) throws -> ApprovalCaseFacts {
    ApprovalCaseFacts(
        caseNo: "C2026021201", deptCode: testDept, itemCode: "XK0001", appliedAt: try time("2026-02-12T09:00:00"),
        acceptance: AcceptanceFacts(accepted: true, acceptedAt: try time("2026-02-12T10:00:00"), promisedLimit: 5,
                                    promisedUnit: .workingDays, legalLimit: 20, legalUnit: .workingDays),
        completion: try completedAt.map { CompletionFacts(granted: true, completedAt: try time($0)) })
}

@Suite struct DeadlineRuleTests {
    @Test func xk01PromptAtMidnightOfTheDeadlineDate() throws {
        let rules = try testRules()
        let facts = try springFestivalCase()
        // One second before 00:00 of the deadline date 02-26: nothing yet, wake at 02-26 00:00.
        let before = rules.evaluateCase(facts, asOf: try time("2026-02-25T23:59:59"))
        #expect(before.alerts.isEmpty)
        #expect(before.nextCheckAt == (try time("2026-02-26T00:00:00")))
        // At 00:00: a prompt raised at that moment, no ResponseDue (P).
        let at = rules.evaluateCase(facts, asOf: try time("2026-02-26T00:00:00"))
        let prompt = try #require(at.alerts(of: .xk01).first)
        #expect(at.alerts.map(\.rule) == [.xk01])
        #expect(prompt.level == .prompt)
        #expect(prompt.raisedAt == (try time("2026-02-26T00:00:00")))
        #expect(prompt.responseDue == nil)
        #expect(prompt.subjectType == .approvalCase)
        #expect(prompt.subjectKey == "C2026021201")
        // XK02 is next: the deadline 02-27 00:00.
        #expect(at.nextCheckAt == (try time("2026-02-27T00:00:00")))
    }

    @Test func xk01NotForACaseCompletedBeforeItsDeadlineDate() throws {
        let result = try testRules().evaluateCase(springFestivalCase(completedAt: "2026-02-25T18:00:00"),
                                                  asOf: time("2026-03-31T00:00:00"))
        #expect(result.alerts.isEmpty)
        #expect(result.nextCheckAt == nil)
    }

    @Test func xk02RaisedInRealTimeWithoutAnyNewRecord() throws {
        let rules = try testRules()
        let facts = try springFestivalCase()
        // The same facts, only the clock moves.
        #expect(rules.evaluateCase(facts, asOf: try time("2026-02-26T23:59:59")).alerts(of: .xk02).isEmpty)
        let overdue = rules.evaluateCase(facts, asOf: try time("2026-02-27T00:00:00"))
        let red = try #require(overdue.alerts(of: .xk02).first)
        #expect(red.level == .red)
        #expect(red.raisedAt == (try time("2026-02-27T00:00:00")))
        // ResponseDue: end of the 3rd working day after Fri 02-27: Sat 02-28 make-up (1), Mon 03-02 (2),
        // Tue 03-03 (3) -> 2026-03-04T00:00.
        #expect(red.responseDue == (try time("2026-03-04T00:00:00")))
        // Re-evaluating later gives the same identity: the caller raises it once.
        let later = rules.evaluateCase(facts, asOf: try time("2026-03-20T00:00:00"))
        #expect(later.alerts(of: .xk02).first?.id == red.id)
        #expect(later.alerts(of: .xk02).first?.raisedAt == red.raisedAt)
    }

    @Test(arguments: [
        ("2026-02-27T00:00:00", true),   // completed exactly at the deadline: overdue
        ("2026-02-26T23:59:59", false),  // the last second of the deadline date: on time
    ])
    func xk02ForLateCompletion(completedAt: String, raised: Bool) throws {
        let result = try testRules().evaluateCase(springFestivalCase(completedAt: completedAt), asOf: time("2026-03-31T00:00:00"))
        #expect(result.alerts(of: .xk02).isEmpty == !raised)
    }

    @Test func xk01AndXk02CanBeDisabled() throws {
        var settings = SupervisionSettings()
        settings.enabledRules.remove(.xk02)
        let result = try testRules(settings).evaluateCase(springFestivalCase(), asOf: time("2026-03-31T00:00:00"))
        #expect(result.alerts.map(\.rule) == [.xk01])
        #expect(result.nextCheckAt == nil)
    }

    @Test func suspendedCaseRaisesNothing() throws {
        var facts = try springFestivalCase()
        // Notice on Fri 02-13 with no receipt: counted 02-13 only, then suspended.
        facts.supplementNotices = [try time("2026-02-13T11:00:00")]
        let result = try testRules().evaluateCase(facts, asOf: time("2026-06-30T00:00:00"))
        #expect(result.alerts.isEmpty)
        #expect(result.nextCheckAt == nil)
    }

    @Test func calendarGapIsAWarningNotADeadline() throws {
        // Accepted Mon 2026-12-28, 5 W: the count needs 2027-01-01.
        let facts = ApprovalCaseFacts(
            caseNo: "C2026122801", deptCode: testDept, itemCode: "XK0001",
            acceptance: AcceptanceFacts(accepted: true, acceptedAt: try time("2026-12-28T09:00:00"), promisedLimit: 5,
                                        promisedUnit: .workingDays, legalLimit: 20, legalUnit: .workingDays))
        let result = try testRules().evaluateCase(facts, asOf: time("2027-01-15T00:00:00"))
        #expect(result.alerts.isEmpty)
        let gap = CalendarError.dateOutsideCalendar(date: try day("2027-01-01"), firstYear: 2010, lastYear: 2026)
        #expect(result.calendarGaps == [
            CalendarGapWarning(rule: .xk01, subjectKey: "C2026122801", gap: gap),
            CalendarGapWarning(rule: .xk02, subjectKey: "C2026122801", gap: gap),
        ])
    }

    @Test func lZeroPromptsAtAcceptance() throws {
        // L = 0 accepted Sat 02-14 10:00: deadline date 02-14; the prompt moment is the acceptance itself.
        var facts = try springFestivalCase()
        facts.acceptance?.promisedLimit = 0
        facts.acceptance?.acceptedAt = try time("2026-02-14T10:00:00")
        facts.appliedAt = try time("2026-02-14T09:00:00")
        let result = try testRules().evaluateCase(facts, asOf: time("2026-02-14T12:00:00"))
        #expect(result.alerts.map(\.rule) == [.xk01])
        #expect(result.alerts.first?.raisedAt == (try time("2026-02-14T10:00:00")))
        #expect(result.nextCheckAt == (try time("2026-02-15T00:00:00")))
    }
}

@Suite struct RecordRuleTests {
    let asOf: BeijingTime

    init() throws {
        asOf = try time("2026-03-02T10:00:00")
    }

    @Test(arguments: [
        (nil as String?, true),   // no reason at all
        ("", true),               // empty
        (" \u{3000}\t", true),    // blank: ASCII and ideographic spaces
        ("材料不齐全", false),       // a reason
    ])
    func xk03RefusalWithoutReason(reason: String?, raised: Bool) throws {
        var facts = try springFestivalCase()
        facts.acceptance?.accepted = false
        facts.acceptance?.reason = reason
        let result = try testRules().evaluateCase(facts, asOf: asOf)
        #expect(result.alerts(of: .xk03).count == (raised ? 1 : 0))
        // A refused case has no clock, so no XK01/XK02 either.
        #expect(result.alerts(of: .xk02).isEmpty)
    }

    @Test func xk03CompletionRefusedWithoutReasonIsItsOwnEpisode() throws {
        var facts = try springFestivalCase()
        facts.completion = CompletionFacts(granted: false, reason: "  ", completedAt: try time("2026-02-24T10:00:00"))
        let granted = try springFestivalCase(completedAt: "2026-02-24T10:00:00")
        let result = try testRules().evaluateCase(facts, asOf: asOf)
        let alert = try #require(result.alerts(of: .xk03).first)
        #expect(alert.episode == "completion")
        #expect(alert.level == .yellow)
        #expect(try testRules().evaluateCase(granted, asOf: asOf).alerts(of: .xk03).isEmpty)
    }

    /// Catalog XK0001: promised 10 W, legal 20 W. Acceptance on Mon 2026-03-02 for the cross-unit rows.
    @Test(arguments: [
        // Equal to the catalog promise is not "exceeding".
        (10, LimitUnit.workingDays, 20, LimitUnit.workingDays, false),
        // One working day more than the catalog promise.
        (11, .workingDays, 20, .workingDays, true),
        // Within the catalog but above the acceptance's own LegalLimit of 8 W.
        (9, .workingDays, 8, .workingDays, true),
        // 15 N from 03-02 ends Tue 03-17; 10 W ends Mon 03-16 (03,04,05,06,09,10,11,12,13,16): longer.
        (15, .naturalDays, 20, .workingDays, true),
        // 14 N ends Mon 03-16: the same date as 10 W, not longer.
        (14, .naturalDays, 20, .workingDays, false),
    ])
    func xk04PromisedLimitAgainstCatalogAndLegal(promised: Int, unit: LimitUnit, legal: Int, legalUnit: LimitUnit, raised: Bool) throws {
        var facts = try springFestivalCase()
        facts.acceptance = AcceptanceFacts(accepted: true, acceptedAt: try time("2026-03-02T09:00:00"), promisedLimit: promised,
                                           promisedUnit: unit, legalLimit: legal, legalUnit: legalUnit)
        let result = try testRules().evaluateCase(facts, asOf: asOf)
        #expect(result.alerts(of: .xk04).count == (raised ? 1 : 0))
    }

    /// Fee F0001 of XK0001 has the standard 10.00.
    @Test(arguments: [
        ("F0001", "10.00", "0.00", "", false),          // exactly the standard
        ("F0001", "10.01", "0.00", "", true),           // one fen over
        ("F0001", "12.00", "2.00", "减免[2026]3号", false), // 12.00 - 2.00 = 10.00
        ("F0001", "12.00", "1.99", "减免[2026]3号", true),  // 12.00 - 1.99 = 10.01
        ("F9999", "1.00", "0.00", "", true),            // a fee the item does not list
    ])
    func xk05FeeAboveStandardOrUnlisted(code: String, amount: String, reduction: String, approval: String, raised: Bool) throws {
        var facts = try springFestivalCase()
        facts.fees = [FeeFacts(feeCode: code, amount: try Money(parsing: amount), reduction: try Money(parsing: reduction),
                               reductionApproval: approval, chargedAt: try time("2026-02-24T10:00:00"))]
        let result = try testRules().evaluateCase(facts, asOf: asOf)
        #expect(result.alerts(of: .xk05).count == (raised ? 1 : 0))
        #expect(result.alerts(of: .xk05).allSatisfy { $0.level == .red && $0.episode == "fee:\(code)" })
    }

    @Test(arguments: [
        ("0.01", nil as String?, true),   // the smallest reduction without approval
        ("0.01", "  ", true),             // a blank approval is none
        ("0.01", "减免[2026]3号", false),
        ("0.00", nil, false),             // no reduction
    ])
    func xk06ReductionWithoutApprovalOnFees(reduction: String, approval: String?, raised: Bool) throws {
        var facts = try springFestivalCase()
        facts.fees = [FeeFacts(feeCode: "F0001", amount: try Money(parsing: "10.00"), reduction: try Money(parsing: reduction),
                               reductionApproval: approval, chargedAt: try time("2026-02-24T10:00:00"))]
        let result = try testRules().evaluateCase(facts, asOf: asOf)
        #expect(result.alerts(of: .xk06).count == (raised ? 1 : 0))
    }

    /// Applied Tue 2026-02-10 09:00. 5th working day after: 11 (1), 12 (2), 13 (3), 14 make-up (4), then 15-23
    /// rest days, 24 (5). Acceptance is due by 2026-02-25T00:00.
    @Test(arguments: [
        ("2026-02-24T17:00:00", [String](), false),            // on the 5th working day
        ("2026-02-25T08:30:00", [String](), true),             // the day after
        ("2026-02-25T08:30:00", ["2026-02-13T10:00:00"], false), // a supplement notice in between excuses it
    ])
    func xk07LateAcceptance(acceptedAt: String, notices: [String], raised: Bool) throws {
        var facts = try springFestivalCase()
        facts.appliedAt = try time("2026-02-10T09:00:00")
        facts.acceptance?.acceptedAt = try time(acceptedAt)
        facts.supplementNotices = try notices.map(time)
        facts.supplementReceipts = try notices.isEmpty ? [] : [time("2026-02-24T09:00:00")]
        let result = try testRules().evaluateCase(facts, asOf: asOf)
        #expect(result.alerts(of: .xk07).filter { $0.episode == "late-acceptance" }.count == (raised ? 1 : 0))
    }

    @Test(arguments: [
        ("2026-02-12T09:59:59", true),   // a step one second before AcceptedAt 10:00
        ("2026-02-12T10:00:00", false),  // at AcceptedAt is not before it
    ])
    func xk07RecordBeforeAcceptance(stepAt: String, raised: Bool) throws {
        var facts = try springFestivalCase()
        facts.stepTimes = [try time(stepAt)]
        let result = try testRules().evaluateCase(facts, asOf: asOf)
        #expect(result.alerts(of: .xk07).filter { $0.episode == "before-acceptance" }.count == (raised ? 1 : 0))
    }

    @Test(arguments: [
        ("2026-03-03T10:00:00", 24, false),  // exactly 24 hours: not more than 24
        ("2026-03-03T10:00:01", 24, true),   // one second more
        ("2026-03-03T11:00:00", 48, false),  // 25 hours with the threshold configured to 48
    ])
    func xk08LateReport(firstSeenAt: String, hours: Int, raised: Bool) throws {
        var settings = SupervisionSettings()
        settings.lateReportHours = hours
        let record = ReportedRecordFacts(recordType: "Step", recordKey: "C1/02/2026-03-02T10:00:00+08:00",
                                         deptCode: testDept, eventAt: try time("2026-03-02T10:00:00"),
                                         firstSeenAt: try time(firstSeenAt))
        let result = try testRules(settings).evaluateLateReport(record)
        #expect(result.alerts(of: .xk08).count == (raised ? 1 : 0))
        if let alert = result.alerts.first {
            #expect(alert.subjectType == .record)
            #expect(alert.raisedAt == (try time(firstSeenAt)))
            // End of the 3rd working day after Tue 03-03: 04 (1), 05 (2), 06 (3) -> 03-07 00:00.
            #expect(alert.responseDue == (try time("2026-03-07T00:00:00")))
        }
    }

    @Test func responseDueBeyondTheCalendarIsLeftOutWithAWarning() throws {
        // Raised Wed 2026-12-30: 31 (1), then 2027-01-01 is outside the calendar. The alert still stands.
        let record = ReportedRecordFacts(recordType: "Step", recordKey: "C9", deptCode: testDept,
                                         eventAt: try time("2026-12-28T10:00:00"), firstSeenAt: try time("2026-12-30T10:00:00"))
        let result = try testRules().evaluateLateReport(record)
        #expect(result.alerts.count == 1)
        #expect(result.alerts.first?.responseDue == nil)
        #expect(result.calendarGaps.map(\.rule) == [.xk08])
    }
}
