// ZS01-ZS03, CF01-CF04, PJ01-PJ02, TS01-TS02, SP01-SP02 at their boundaries, over the real 2026 calendar.

import Testing
@testable import Supervision

/// Levy of item ZS0001 (Rate 0.015, RemitLimit 3 W): Base 1234.50, so AmountDue should be 18.5175 -> 18.52.
func levy(
    item: String = "ZS0001", base: String = "1234.50", due: String = "18.52", collected: String = "18.52",
    reduction: String = "0.00", approval: String? = nil, collectedAt: String? = "2026-02-12T15:00:00",
    remittedAt: String? = nil
) throws -> LevyFacts {
    LevyFacts(levyNo: "L2026001", itemCode: item, deptCode: testDept, base: try Money(parsing: base),
              amountDue: try Money(parsing: due), amountCollected: try Money(parsing: collected),
              reduction: try Money(parsing: reduction), reductionApproval: approval,
              assessedAt: try time("2026-02-12T09:00:00"), collectedAt: try collectedAt.map(time),
              remittedAt: try remittedAt.map(time))
}

@Suite struct LevyRuleTests {
    @Test(arguments: [
        ("ZS0001", "1234.50", "18.52", false),  // 1234.50 x 0.015 = 18.5175 -> 18.52
        ("ZS0001", "1234.50", "18.51", true),   // truncation instead of rounding
        ("ZS0002", "0.10", "0.01", false),      // 0.10 x 0.05 = 0.005 -> half-up 0.01
        ("ZS0002", "0.10", "0.00", true),       // banker's rounding would give this
    ])
    func zs01AmountDueAgainstBaseTimesRate(item: String, base: String, due: String, raised: Bool) throws {
        let facts = try levy(item: item, base: base, due: due, collected: due)
        let result = try testRules().evaluateLevy(facts, asOf: time("2026-02-12T16:00:00"))
        #expect(result.alerts(of: .zs01).count == (raised ? 1 : 0))
    }

    @Test(arguments: [
        ("18.00", "0.52", "2026-02-12T15:00:00" as String?, false),  // 18.00 + 0.52 = 18.52
        ("18.00", "0.50", "2026-02-12T15:00:00", true),              // 18.50 != 18.52
        ("0.00", "0.00", nil, false),                                // not collected yet: not judged
    ])
    func zs02CollectedPlusReductionAgainstDue(collected: String, reduction: String, collectedAt: String?, raised: Bool) throws {
        let facts = try levy(collected: collected, reduction: reduction, approval: "批[2026]1号", collectedAt: collectedAt)
        let result = try testRules().evaluateLevy(facts, asOf: time("2026-02-12T16:00:00"))
        #expect(result.alerts(of: .zs02).count == (raised ? 1 : 0))
        #expect(result.alerts(of: .xk06).isEmpty)
    }

    /// Collected Thu 2026-02-12 15:00, RemitLimit 3: Fri 13 (1), Sat 14 make-up (2), Tue 24 (3) -> remit by
    /// 2026-02-25T00:00.
    @Test(arguments: [
        ("2026-02-24T23:59:59" as String?, "2026-03-31T00:00:00", false),  // remitted on the 3rd working day
        ("2026-02-25T00:00:00", "2026-03-31T00:00:00", true),              // remitted at the limit: too late
        (nil, "2026-02-24T12:00:00", false),                                // still in time
        (nil, "2026-02-25T00:00:00", true),                                 // the limit passes unremitted
    ])
    func zs03RemittanceLimit(remittedAt: String?, asOf: String, raised: Bool) throws {
        let result = try testRules().evaluateLevy(levy(remittedAt: remittedAt), asOf: time(asOf))
        #expect(result.alerts(of: .zs03).count == (raised ? 1 : 0))
        if raised {
            #expect(result.alerts(of: .zs03).first?.raisedAt == (try time("2026-02-25T00:00:00")))
        } else if remittedAt == nil {
            #expect(result.nextCheckAt == (try time("2026-02-25T00:00:00")))
        }
    }

    @Test func xk06ReductionWithoutApprovalOnALevy() throws {
        let result = try testRules().evaluateLevy(levy(collected: "18.00", reduction: "0.52"), asOf: time("2026-02-12T16:00:00"))
        let alert = try #require(result.alerts(of: .xk06).first)
        #expect(alert.subjectType == .levy)
        #expect(alert.subjectKey == "L2026001")
        #expect(result.alerts(of: .zs02).isEmpty)
    }
}

/// Penalty of violation V0001 (2000.00..50000.00, DecisionLimit 90) filed Wed 2026-01-07 10:00.
/// Decision deadline date: 01-07 + 90 days = 04-07 (24 days to 01-31, 28 in February, 31 in March, 7 in April);
/// deadline 2026-04-08T00:00; CF02 prompt 10 days earlier, 2026-03-29T00:00.
func penalty(fine: String? = nil, decidedAt: String? = nil, hearing: Bool = false, steps: [(PenaltyStage, String)] = []) throws -> PenaltyFacts {
    PenaltyFacts(caseNo: "P2026001", deptCode: testDept, violationCode: "V0001", filedAt: try time("2026-01-07T10:00:00"),
                 hearingRequested: hearing, fineAmount: try fine.map { try Money(parsing: $0) },
                 decidedAt: try decidedAt.map(time),
                 steps: try steps.map { PenaltyStepFacts(stage: $0.0, handledAt: try time($0.1)) })
}

@Suite struct PenaltyRuleTests {
    @Test(arguments: [("2000.00", false), ("50000.00", false), ("1999.99", true), ("50000.01", true)])
    func cf01FineOutsideTheRange(fine: String, raised: Bool) throws {
        let result = try testRules().evaluatePenalty(penalty(fine: fine, decidedAt: "2026-02-10T10:00:00"), asOf: time("2026-02-10T12:00:00"))
        #expect(result.alerts(of: .cf01).count == (raised ? 1 : 0))
    }

    @Test(arguments: [
        // undecided one second before the prompt moment: nothing, wake at the prompt
        (nil as String?, "2026-03-28T23:59:59", [RuleCode]()),
        // undecided at the prompt moment
        (nil, "2026-03-29T00:00:00", [.cf02]),
        // undecided one second before the deadline: only the prompt
        (nil, "2026-04-07T23:59:59", [.cf02]),
        // undecided at the deadline
        (nil, "2026-04-08T00:00:00", [.cf02, .cf03]),
        // decided before the prompt moment: nothing ever
        ("2026-03-28T17:00:00", "2026-06-01T00:00:00", []),
        // decided between prompt and deadline: the prompt only
        ("2026-04-07T23:59:00", "2026-06-01T00:00:00", [.cf02]),
        // decided exactly at the deadline: late
        ("2026-04-08T00:00:00", "2026-06-01T00:00:00", [.cf02, .cf03]),
    ])
    func cf02AndCf03DecisionDeadline(decidedAt: String?, asOf: String, expected: [RuleCode]) throws {
        let result = try testRules().evaluatePenalty(penalty(decidedAt: decidedAt), asOf: time(asOf))
        #expect(result.alerts.map(\.rule) == expected)
        if let prompt = result.alerts(of: .cf02).first {
            #expect(prompt.raisedAt == (try time("2026-03-29T00:00:00")))
            #expect(prompt.level == .prompt)
        }
        if let red = result.alerts(of: .cf03).first {
            #expect(red.raisedAt == (try time("2026-04-08T00:00:00")))
        }
    }

    @Test func cf02WakesAtThePromptMoment() throws {
        let result = try testRules().evaluatePenalty(penalty(), asOf: time("2026-03-28T23:59:59"))
        #expect(result.nextCheckAt == (try time("2026-03-29T00:00:00")))
    }

    @Test(arguments: [
        // notice before the decision
        (false, [(PenaltyStage.priorNotice, "2026-02-01T10:00:00"), (.decision, "2026-02-10T10:00:00")], [String]()),
        // no notice
        (false, [(.decision, "2026-02-10T10:00:00")], ["prior-notice"]),
        // a notice at the same instant is not before the decision
        (false, [(.priorNotice, "2026-02-10T10:00:00"), (.decision, "2026-02-10T10:00:00")], ["prior-notice"]),
        // hearing requested and held before the decision
        (true, [(.priorNotice, "2026-02-01T10:00:00"), (.hearing, "2026-02-05T10:00:00"), (.decision, "2026-02-10T10:00:00")], []),
        // hearing requested, held only after the decision
        (true, [(.priorNotice, "2026-02-01T10:00:00"), (.decision, "2026-02-10T10:00:00"), (.hearing, "2026-02-11T10:00:00")], ["hearing"]),
        // no decision yet: nothing to judge
        (true, [(.filed, "2026-01-07T10:00:00")], []),
    ])
    func cf04NoticeAndHearingBeforeDecision(hearing: Bool, steps: [(PenaltyStage, String)], episodes: [String]) throws {
        let result = try testRules().evaluatePenalty(penalty(hearing: hearing, steps: steps), asOf: time("2026-02-12T10:00:00"))
        #expect(result.alerts(of: .cf04).map(\.episode) == episodes)
    }
}

@Suite struct EvaluationAndComplaintRuleTests {
    @Test(arguments: [(1, true), (2, true), (3, false), (5, false)])
    func pj01BadRating(rating: Int, raised: Bool) throws {
        let evaluation = EvaluationFacts(evaluationId: "E1", deptCode: testDept, rating: rating, ratedAt: try time("2026-02-12T10:00:00"))
        let result = try testRules().evaluateRating(evaluation, asOf: time("2026-02-12T10:05:00"))
        #expect(result.alerts(of: .pj01).count == (raised ? 1 : 0))
        if let alert = result.alerts.first {
            // 15 working days after Thu 02-12: 13 (1), 14 make-up (2), 24 (3), 25 (4), 26 (5), 27 (6),
            // Sat 28 make-up (7), 03-02 (8), 03 (9), 04 (10), 05 (11), 06 (12), 09 (13), 10 (14), 11 (15)
            // -> due 2026-03-12T00:00.
            #expect(alert.responseDue == (try time("2026-03-12T00:00:00")))
            #expect(alert.subjectType == .evaluation)
        }
    }

    @Test(arguments: [
        ("2026-03-11T23:59:59" as String?, "2026-04-01T00:00:00", false),  // corrected just in time
        ("2026-03-12T00:00:00", "2026-04-01T00:00:00", true),              // corrected at ResponseDue: late
        (nil, "2026-03-11T12:00:00", false),                                // still open, still in time
        (nil, "2026-03-12T00:00:00", true),                                 // ResponseDue passes
    ])
    func pj02FollowUpOfTheBadRating(doneAt: String?, asOf: String, raised: Bool) throws {
        let followUp = BadRatingFollowUpFacts(
            pj01AlertId: AlertId(rule: .pj01, subjectType: .evaluation, subjectKey: "E1", episode: ""),
            evaluationId: "E1", deptCode: testDept, responseDue: try time("2026-03-12T00:00:00"),
            correctedOrClosedAt: try doneAt.map(time))
        let result = try testRules().evaluateBadRatingFollowUp(followUp, asOf: time(asOf))
        #expect(result.alerts(of: .pj02).count == (raised ? 1 : 0))
        if let red = result.alerts.first {
            #expect(red.level == .red)
            // End of the 3rd working day after Thu 03-12: 13 (1), 16 (2), 17 (3) -> 03-18 00:00.
            #expect(red.responseDue == (try time("2026-03-18T00:00:00")))
        }
    }

    /// Received Mon 2026-09-28 10:00. 5th working day: 29 (1), 30 (2), 10-08 (3), 10-09 (4), Sat 10-10 make-up (5):
    /// decide by 2026-10-11T00:00.
    @Test(arguments: [
        (ComplaintState.received, nil as String?, "2026-10-10T23:59:59", false),
        (.received, nil, "2026-10-11T00:00:00", true),
        (.accepted, "2026-10-10T16:00:00", "2026-10-20T00:00:00", false),
        (.accepted, "2026-10-11T00:00:00", "2026-10-20T00:00:00", true),
    ])
    func ts01AcceptanceDecisionLimit(state: ComplaintState, leftAt: String?, asOf: String, raised: Bool) throws {
        let complaint = ComplaintFacts(complaintNo: "T1", deptCode: testDept, receivedAt: try time("2026-09-28T10:00:00"),
                                       state: state, stateAt: try time(leftAt ?? "2026-09-28T10:00:00"),
                                       leftReceivedStateAt: try leftAt.map(time))
        let result = try testRules().evaluateComplaint(complaint, asOf: time(asOf))
        #expect(result.alerts(of: .ts01).count == (raised ? 1 : 0))
        if let alert = result.alerts.first {
            #expect(alert.raisedAt == (try time("2026-10-11T00:00:00")))
        } else if state == .received {
            #expect(result.nextCheckAt == (try time("2026-10-11T00:00:00")))
        }
    }

    @Test(arguments: [
        (ComplaintState.notAccepted, nil as String?, true),
        (.notAccepted, "  ", true),
        (.notAccepted, "不属于本机关受理范围", false),
        (.accepted, nil, false),
    ])
    func ts02NotAcceptedWithoutReply(state: ComplaintState, reply: String?, raised: Bool) throws {
        let complaint = ComplaintFacts(complaintNo: "T2", deptCode: testDept, receivedAt: try time("2026-03-02T10:00:00"),
                                       state: state, stateAt: try time("2026-03-03T10:00:00"), reply: reply)
        let result = try testRules().evaluateComplaint(complaint, asOf: time("2026-03-03T11:00:00"))
        #expect(result.alerts(of: .ts02).count == (raised ? 1 : 0))
    }
}

@Suite struct VideoRuleTests {
    let camera = "41010300001310000001"

    /// Supervised hours 08:30-17:30 on working days, threshold 30 minutes within one day.
    @Test(arguments: [
        // Mon 03-02 offline 08:10, back 08:59:59: 29 min 59 s inside the hours.
        ("2026-03-02T08:10:00", "2026-03-02T08:59:59" as String?, "2026-03-02T12:00:00", nil as String?),
        // back at 09:00: exactly 30 minutes inside (08:30-09:00) -> raised at 09:00.
        ("2026-03-02T08:10:00", "2026-03-02T09:00:00", "2026-03-02T12:00:00", "2026-03-02T09:00:00"),
        // Sat 03-07 to Sun 03-08 evening: weekend, not supervised.
        ("2026-03-07T09:00:00", "2026-03-08T18:00:00", "2026-03-09T12:00:00", nil),
        // Spring Festival holiday Mon 02-16, all day.
        ("2026-02-16T08:00:00", "2026-02-16T18:00:00", "2026-02-17T12:00:00", nil),
        // Fri 03-06 17:10 to Mon 03-09 08:50: 20 minutes on each working day, never 30 on one day.
        ("2026-03-06T17:10:00", "2026-03-09T08:50:00", "2026-03-09T12:00:00", nil),
        // Make-up Saturday 02-28, offline from 10:00 and still offline: raised at 10:30.
        ("2026-02-28T10:00:00", nil, "2026-02-28T10:30:00", "2026-02-28T10:30:00"),
        // Offline from Sun 03-01 20:00: Monday's hours start 08:30, so raised at 09:00.
        ("2026-03-01T20:00:00", nil, "2026-03-02T09:30:00", "2026-03-02T09:00:00"),
    ])
    func sp01OfflineWithinSupervisedHours(offlineSince: String, backOnlineAt: String?, asOf: String, raisedAt: String?) throws {
        let spell = CameraOfflineSpell(cameraCode: camera, deptCode: testDept, offlineSince: try time(offlineSince),
                                       backOnlineAt: try backOnlineAt.map(time))
        let result = try testRules().evaluateCameraOffline(spell, asOf: time(asOf))
        #expect(result.alerts.map(\.raisedAt) == (try raisedAt.map { [try time($0)] } ?? []))
        // A spell that ended clears its alert (RESOLVED); an ongoing one does not.
        #expect(result.clearedAlerts == ((raisedAt != nil && backOnlineAt != nil) ? result.alerts.map(\.id) : []))
    }

    @Test func sp01WaitsForTheThresholdAndEachSpellIsAnEpisode() throws {
        let rules = try testRules()
        let spell = CameraOfflineSpell(cameraCode: camera, deptCode: testDept, offlineSince: try time("2026-02-28T10:00:00"))
        let early = rules.evaluateCameraOffline(spell, asOf: try time("2026-02-28T10:29:59"))
        #expect(early.alerts.isEmpty)
        #expect(early.nextCheckAt == (try time("2026-02-28T10:30:00")))
        let later = CameraOfflineSpell(cameraCode: camera, deptCode: testDept, offlineSince: try time("2026-03-02T10:00:00"))
        let first = try #require(rules.evaluateCameraOffline(spell, asOf: try time("2026-02-28T11:00:00")).alerts.first)
        let second = try #require(rules.evaluateCameraOffline(later, asOf: try time("2026-03-02T11:00:00")).alerts.first)
        #expect(first.id != second.id)
    }

    @Test func sp01ThresholdAndHoursAreConfigurable() throws {
        var settings = SupervisionSettings()
        settings.cameraOfflineMinutes = 60
        settings.supervisedHoursStartMinute = 9 * 60
        // Offline Mon 03-02 08:00..09:59: inside 09:00-17:30 only 59 minutes.
        let spell = CameraOfflineSpell(cameraCode: camera, deptCode: testDept, offlineSince: try time("2026-03-02T08:00:00"),
                                       backOnlineAt: try time("2026-03-02T09:59:00"))
        #expect(try testRules(settings).evaluateCameraOffline(spell, asOf: time("2026-03-02T12:00:00")).alerts.isEmpty)
    }

    @Test func sp02WindowWithoutCamera() throws {
        let uses = [
            WindowUse(deptCode: testDept, windowNo: "W01", firstUsedAt: try time("2026-03-02T09:00:00")),
            WindowUse(deptCode: testDept, windowNo: "W02", firstUsedAt: try time("2026-03-02T09:30:00")),
            WindowUse(deptCode: testDept, windowNo: "W02", firstUsedAt: try time("2026-03-03T09:30:00")),
        ]
        let result = try testRules().evaluateWindowCoverage(windowsInUse: uses, cameraWindowNos: ["W01"], asOf: time("2026-03-03T10:00:00"))
        // W01 is covered; W02 is not and raises once although used twice.
        #expect(result.alerts.map(\.subjectKey) == ["\(testDept)/W02"])
        #expect(result.alerts.first?.subjectType == .window)
        let covered = try testRules().evaluateWindowCoverage(windowsInUse: uses, cameraWindowNos: ["W01", "W02"], asOf: time("2026-03-03T10:00:00"))
        #expect(covered.alerts.isEmpty)
    }
}

@Suite struct RuleTableTests {
    /// The level and subject of each rule as printed in section 6.
    @Test func levelsAndSubjectsMatchTheSpecTable() {
        let table = RuleCode.allCases.map { "\($0.rawValue)\($0.level.rawValue)\($0.subjectType.rawValue)" }
        #expect(table == [
            "XK01Pcase", "XK02Rcase", "XK03Ycase", "XK04Ycase", "XK05Rcase", "XK06Ycase", "XK07Ycase", "XK08Yrecord",
            "ZS01Rlevy", "ZS02Ylevy", "ZS03Ylevy", "CF01Rpenalty", "CF02Ppenalty", "CF03Rpenalty", "CF04Ypenalty",
            "PJ01Yevaluation", "PJ02Revaluation", "TS01Ycomplaint", "TS02Ycomplaint", "SP01Ycamera", "SP02Ywindow",
        ])
    }

    @Test func everyRuleCanBeDisabled() throws {
        var settings = SupervisionSettings()
        settings.enabledRules = []
        let rules = try testRules(settings)
        let asOf = try time("2026-12-01T00:00:00")
        var facts = try springFestivalCase()
        facts.acceptance?.accepted = false
        #expect(rules.evaluateCase(facts, asOf: asOf) == RuleEvaluation())
        #expect(rules.evaluateCase(try springFestivalCase(), asOf: asOf) == RuleEvaluation())
        #expect(rules.evaluateLevy(try levy(due: "1.00", reduction: "0.52"), asOf: asOf) == RuleEvaluation())
        #expect(rules.evaluatePenalty(try penalty(fine: "1.00"), asOf: asOf) == RuleEvaluation())
    }
}

@Suite struct CatalogTests {
    @Test func violationBelongsToTheSmallestItemCodeListingIt() throws {
        let range = FineRange(minimum: try Money(parsing: "1.00"), maximum: try Money(parsing: "2.00"))
        let catalog = ItemCatalog(items: [
            CatalogItem(code: "CF0009", kind: .penalty, decisionLimit: 30, violations: ["V1": range]),
            CatalogItem(code: "CF0002", kind: .penalty, decisionLimit: 60, violations: ["V1": range]),
        ])
        #expect(catalog.violation("V1")?.item.code == "CF0002")
        #expect(catalog.violation("V2") == nil)
    }

    @Test func unknownViolationFallsBackToTheStatutoryNinetyDays() throws {
        // V9999 is not in the catalog: CF01 cannot be judged, CF03 uses 90 days: filed 01-07 -> deadline date
        // 04-07, deadline 04-08 00:00.
        var facts = try penalty(fine: "1.00")
        facts.violationCode = "V9999"
        let result = try testRules().evaluatePenalty(facts, asOf: time("2026-04-08T00:00:00"))
        #expect(result.alerts.map(\.rule) == [.cf02, .cf03])
    }
}
