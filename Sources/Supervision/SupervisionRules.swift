// The 21 supervision rules of pui-v1.md section 6, as pure functions of plain facts and an evaluation time.
//
// Conventions shared by every rule:
// - A time-driven rule (XK01, XK02, ZS03, CF02, CF03, PJ02, TS01, SP01) decides "was the condition true at
//   moment T" from the facts alone, so late-arriving records give the same answer as real-time evaluation. Its
//   RaisedAt is T, and while T lies ahead the evaluation names T in `nextCheckAt` for the caller's timer index.
// - A record-driven rule raises at `asOf`, the time of the evaluation that detected it; the caller keeps the first
//   raise (AlertId is the same on every re-evaluation), so a later re-evaluation changes nothing.
// - "The end of the n-th working day after X" is 00:00 of the date after that working day.
// - A date the calendar does not cover is never guessed: the affected rule stays silent and the evaluation carries
//   a `CalendarGapWarning` for the operators.

import Foundation

/// A rule that could not be evaluated (or an alert that lacks its ResponseDue) because of a calendar gap.
public struct CalendarGapWarning: Sendable, Equatable {
    public var rule: RuleCode
    public var subjectKey: String
    public var gap: CalendarError

    public init(rule: RuleCode, subjectKey: String, gap: CalendarError) {
        self.rule = rule
        self.subjectKey = subjectKey
        self.gap = gap
    }
}

/// The outcome of evaluating rules over one subject.
public struct RuleEvaluation: Sendable, Equatable {
    /// Alerts whose condition holds; raise each whose `id` is not yet known.
    public var alerts: [AlertCandidate] = []
    /// Operational warnings: dates the calendar could not answer.
    public var calendarGaps: [CalendarGapWarning] = []
    /// The earliest future moment at which the same facts would raise a further alert (a deadline, a prompt
    /// moment); nil when only new records can change the outcome. Key for the caller's timer index.
    public var nextCheckAt: BeijingTime?
    /// Alerts whose condition cleared by itself (SP01): apply `AlertAction.resolve` if still OPEN or ACKED.
    public var clearedAlerts: [AlertId] = []

    public init() {}

    /// The alerts of one rule, for tests and explanations.
    public func alerts(of rule: RuleCode) -> [AlertCandidate] { alerts.filter { $0.rule == rule } }

    mutating func checkAgain(at time: BeijingTime) {
        nextCheckAt = nextCheckAt.map { min($0, time) } ?? time
    }
}

/// The supervision rules over one calendar, catalog and settings.
public struct SupervisionRules: Sendable {
    public let calendar: WorkingCalendar
    public let catalog: ItemCatalog
    public let settings: SupervisionSettings

    public init(calendar: WorkingCalendar, catalog: ItemCatalog, settings: SupervisionSettings = SupervisionSettings()) {
        self.calendar = calendar
        self.catalog = catalog
        self.settings = settings
    }

    // MARK: - approval cases: XK01-XK07

    /// XK01-XK07 for one approval case as of `asOf`.
    public func evaluateCase(_ facts: ApprovalCaseFacts, asOf: BeijingTime) -> RuleEvaluation {
        var result = RuleEvaluation()
        evaluateDeadlines(facts, asOf: asOf, into: &result)
        evaluateMissingReasons(facts, asOf: asOf, into: &result)
        evaluatePromisedLimit(facts, asOf: asOf, into: &result)
        evaluateFees(facts, asOf: asOf, into: &result)
        evaluateTiming(facts, asOf: asOf, into: &result)
        return result
    }

    /// XK01 (prompt at 00:00 of the deadline date of an open case) and XK02 (overdue).
    private func evaluateDeadlines(_ facts: ApprovalCaseFacts, asOf: BeijingTime, into result: inout RuleEvaluation) {
        guard isEnabled(.xk01) || isEnabled(.xk02), let input = facts.clockInput else { return }
        let status: CaseClockStatus
        do {
            status = try CaseClock.status(of: input, calendar: calendar, asOf: asOf)
        } catch {
            for rule in [RuleCode.xk01, .xk02] where isEnabled(rule) {
                result.calendarGaps.append(CalendarGapWarning(rule: rule, subjectKey: facts.caseNo, gap: error))
            }
            return
        }
        // A suspended clock has no deadline date: nothing is due until the pause ends (a new record).
        guard case .due(let deadlineDate, let deadline) = status.deadline else { return }
        let limitText = "limit \(status.limit) \(input.promisedUnit.rawValue) from acceptance on \(input.acceptedAt.date)"

        if isEnabled(.xk01) {
            // With L = 0 the deadline date is the acceptance date: the case is on its last day from acceptance on.
            let promptAt = max(BeijingTime.startOfDay(deadlineDate), input.acceptedAt)
            let completedByThen = input.completedAt.map { $0 <= promptAt } ?? false
            if !completedByThen {
                if asOf >= promptAt {
                    raise(.xk01, subjectKey: facts.caseNo, dept: facts.deptCode, at: promptAt,
                          detail: "Case \(facts.caseNo) open on its deadline date \(deadlineDate) (\(limitText)); due by \(deadline).",
                          into: &result)
                } else {
                    result.checkAgain(at: promptAt)
                }
            }
        }
        if isEnabled(.xk02) {
            if status.isOverdue {
                let how = input.completedAt.map { "completed at \($0), at or after" } ?? "not completed by"
                raise(.xk02, subjectKey: facts.caseNo, dept: facts.deptCode, at: deadline,
                      detail: "Case \(facts.caseNo) \(how) its deadline \(deadline) (deadline date \(deadlineDate), \(limitText)).",
                      into: &result)
            } else if input.completedAt == nil {
                result.checkAgain(at: deadline)
            }
        }
    }

    /// XK03: a refusal (Acceptance Decision 0 or Completion Result 0) with an empty or blank Reason.
    private func evaluateMissingReasons(_ facts: ApprovalCaseFacts, asOf: BeijingTime, into result: inout RuleEvaluation) {
        guard isEnabled(.xk03) else { return }
        if let acceptance = facts.acceptance, !acceptance.accepted, isBlank(acceptance.reason) {
            raise(.xk03, subjectKey: facts.caseNo, episode: "acceptance", dept: facts.deptCode, at: asOf,
                  detail: "Acceptance of case \(facts.caseNo) refused (Decision 0) without a reason.", into: &result)
        }
        if let completion = facts.completion, !completion.granted, isBlank(completion.reason) {
            raise(.xk03, subjectKey: facts.caseNo, episode: "completion", dept: facts.deptCode, at: asOf,
                  detail: "Completion of case \(facts.caseNo) refused (Result 0) without a reason.", into: &result)
        }
    }

    /// XK04: PromisedLimit longer than the catalog's PromisedLimit, the catalog's LegalLimit, or the case's own
    /// LegalLimit.
    private func evaluatePromisedLimit(_ facts: ApprovalCaseFacts, asOf: BeijingTime, into result: inout RuleEvaluation) {
        guard isEnabled(.xk04), let acceptance = facts.acceptance else { return }
        let promised = TimeLimit(days: acceptance.promisedLimit, unit: acceptance.promisedUnit)
        var bounds: [(name: String, limit: TimeLimit)] = []
        if let item = facts.itemCode.flatMap(catalog.item) {
            if let days = item.promisedLimit, let unit = item.promisedUnit {
                bounds.append(("catalog PromisedLimit", TimeLimit(days: days, unit: unit)))
            }
            if let days = item.legalLimit, let unit = item.legalUnit {
                bounds.append(("catalog LegalLimit", TimeLimit(days: days, unit: unit)))
            }
        }
        bounds.append(("LegalLimit of the acceptance", TimeLimit(days: acceptance.legalLimit, unit: acceptance.legalUnit)))

        var exceeded: [String] = []
        for bound in bounds {
            do {
                if try promised.isLonger(than: bound.limit, from: acceptance.acceptedAt, calendar: calendar) {
                    exceeded.append("\(bound.name) \(bound.limit)")
                }
            } catch {
                result.calendarGaps.append(CalendarGapWarning(rule: .xk04, subjectKey: facts.caseNo, gap: error))
            }
        }
        guard !exceeded.isEmpty else { return }
        raise(.xk04, subjectKey: facts.caseNo, dept: facts.deptCode, at: asOf,
              detail: "Case \(facts.caseNo): PromisedLimit \(promised) exceeds \(exceeded.joined(separator: " and ")).",
              into: &result)
    }

    /// XK05 (fee above the standard, or a FeeCode the item does not list) and XK06 (reduction without approval).
    private func evaluateFees(_ facts: ApprovalCaseFacts, asOf: BeijingTime, into result: inout RuleEvaluation) {
        // An item missing from the catalog is rejected upstream (R201); without it no fee can be judged.
        let item = facts.itemCode.flatMap(catalog.item)
        for fee in facts.fees {
            let episode = "fee:\(fee.feeCode)"
            if isEnabled(.xk05), let item {
                if let standard = item.feeStandards[fee.feeCode] {
                    let charged = fee.amount - fee.reduction
                    if charged > standard {
                        raise(.xk05, subjectKey: facts.caseNo, episode: episode, dept: facts.deptCode, at: asOf,
                              detail: "Case \(facts.caseNo) fee \(fee.feeCode): Amount \(fee.amount) minus Reduction \(fee.reduction) = \(charged) exceeds the standard \(standard).",
                              into: &result)
                    }
                } else {
                    raise(.xk05, subjectKey: facts.caseNo, episode: episode, dept: facts.deptCode, at: asOf,
                          detail: "Case \(facts.caseNo) fee \(fee.feeCode) is not listed for item \(item.code).",
                          into: &result)
                }
            }
            if isEnabled(.xk06), fee.reduction > .zero, isBlank(fee.reductionApproval) {
                raise(.xk06, subjectKey: facts.caseNo, episode: episode, dept: facts.deptCode, at: asOf,
                      detail: "Case \(facts.caseNo) fee \(fee.feeCode): Reduction \(fee.reduction) without ReductionApproval.",
                      into: &result)
            }
        }
    }

    /// XK07: a record of the case timed before AcceptedAt (steps, special procedures, completion, fees; a
    /// supplement notice may legitimately precede acceptance), or acceptance later than the end of the 5th working
    /// day after AppliedAt with no SupplementNotice in between (Administrative Licensing Law art. 32).
    private func evaluateTiming(_ facts: ApprovalCaseFacts, asOf: BeijingTime, into result: inout RuleEvaluation) {
        guard isEnabled(.xk07), let acceptance = facts.acceptance else { return }
        let acceptedAt = acceptance.acceptedAt
        let laterRecordTimes = facts.stepTimes + facts.specialStarts.map(\.startedAt) + facts.specialEnds
            + (facts.completion.map { [$0.completedAt] } ?? []) + facts.fees.map(\.chargedAt)
        if let earliest = laterRecordTimes.min(), earliest < acceptedAt {
            raise(.xk07, subjectKey: facts.caseNo, episode: "before-acceptance", dept: facts.deptCode, at: asOf,
                  detail: "Case \(facts.caseNo) has a record at \(earliest), before its AcceptedAt \(acceptedAt).",
                  into: &result)
        }
        guard let appliedAt = facts.appliedAt else { return }
        let statutoryAcceptanceWorkingDays = 5
        do {
            let acceptBy = try calendar.endOfWorkingDay(statutoryAcceptanceWorkingDays, after: appliedAt)
            let noticeInBetween = facts.supplementNotices.contains { $0 >= appliedAt && $0 <= acceptedAt }
            if acceptedAt >= acceptBy, !noticeInBetween {
                raise(.xk07, subjectKey: facts.caseNo, episode: "late-acceptance", dept: facts.deptCode, at: asOf,
                      detail: "Case \(facts.caseNo) applied at \(appliedAt), accepted at \(acceptedAt): after \(acceptBy), the end of the \(statutoryAcceptanceWorkingDays)th working day, with no supplement notice in between.",
                      into: &result)
            }
        } catch {
            result.calendarGaps.append(CalendarGapWarning(rule: .xk07, subjectKey: facts.caseNo, gap: error))
        }
    }

    // MARK: - XK08

    /// XK08: a record first seen more than [24] hours after its event time.
    public func evaluateLateReport(_ record: ReportedRecordFacts) -> RuleEvaluation {
        var result = RuleEvaluation()
        guard isEnabled(.xk08) else { return result }
        let allowed = Int64(settings.lateReportHours) * 3_600_000
        let delay = record.firstSeenAt.millisecondsSinceEpoch - record.eventAt.millisecondsSinceEpoch
        if delay > allowed {
            raise(.xk08, subjectKey: "\(record.recordType):\(record.recordKey)", dept: record.deptCode,
                  at: record.firstSeenAt,
                  detail: "\(record.recordType) \(record.recordKey) of \(record.eventAt) first seen at \(record.firstSeenAt), more than \(settings.lateReportHours) hours later.",
                  into: &result)
        }
        return result
    }

    // MARK: - levy: ZS01-ZS03 and XK06

    /// ZS01-ZS03 and the levy half of XK06 (whose alerts have subject type `levy`, keyed by LevyNo, because a
    /// levy is not an approval case).
    public func evaluateLevy(_ levy: LevyFacts, asOf: BeijingTime) -> RuleEvaluation {
        var result = RuleEvaluation()
        let item = catalog.item(levy.itemCode)
        if isEnabled(.zs01), let rate = item?.rate {
            let expected = rate.apply(to: levy.base)
            if levy.amountDue != expected {
                raise(.zs01, subjectKey: levy.levyNo, dept: levy.deptCode, at: asOf,
                      detail: "Levy \(levy.levyNo): AmountDue \(levy.amountDue) differs from Base \(levy.base) x catalog Rate \(rate) = \(expected).",
                      into: &result)
            }
        }
        // Before collection AmountCollected is not yet meaningful, so ZS02 waits for CollectedAt.
        if isEnabled(.zs02), levy.collectedAt != nil, levy.amountCollected + levy.reduction != levy.amountDue {
            raise(.zs02, subjectKey: levy.levyNo, dept: levy.deptCode, at: asOf,
                  detail: "Levy \(levy.levyNo): AmountCollected \(levy.amountCollected) + Reduction \(levy.reduction) differs from AmountDue \(levy.amountDue).",
                  into: &result)
        }
        if isEnabled(.zs03), let collectedAt = levy.collectedAt, let remitLimit = item?.remitLimit {
            do {
                let remitBy = try calendar.endOfWorkingDay(remitLimit, after: collectedAt)
                let detail = "Levy \(levy.levyNo) collected at \(collectedAt) not remitted by \(remitBy) (\(remitLimit) working days)."
                if let remittedAt = levy.remittedAt {
                    if remittedAt >= remitBy {
                        raise(.zs03, subjectKey: levy.levyNo, dept: levy.deptCode, at: remitBy,
                              detail: detail + " Remitted at \(remittedAt).", into: &result)
                    }
                } else if asOf >= remitBy {
                    raise(.zs03, subjectKey: levy.levyNo, dept: levy.deptCode, at: remitBy, detail: detail, into: &result)
                } else {
                    result.checkAgain(at: remitBy)
                }
            } catch {
                result.calendarGaps.append(CalendarGapWarning(rule: .zs03, subjectKey: levy.levyNo, gap: error))
            }
        }
        if isEnabled(.xk06), levy.reduction > .zero, isBlank(levy.reductionApproval) {
            raise(.xk06, subjectType: .levy, subjectKey: levy.levyNo, dept: levy.deptCode, at: asOf,
                  detail: "Levy \(levy.levyNo): Reduction \(levy.reduction) without ReductionApproval.", into: &result)
        }
        return result
    }

    // MARK: - penalty: CF01-CF04

    /// CF01-CF04 for one penalty case. The decision deadline is the end of the date FiledAt + DecisionLimit natural
    /// days; the CF02 prompt comes [10] × 24 hours before that deadline.
    public func evaluatePenalty(_ penalty: PenaltyFacts, asOf: BeijingTime) -> RuleEvaluation {
        var result = RuleEvaluation()
        let violation = catalog.violation(penalty.violationCode)
        if isEnabled(.cf01), let fine = penalty.fineAmount, let range = violation?.range,
           fine < range.minimum || fine > range.maximum {
            raise(.cf01, subjectKey: penalty.caseNo, dept: penalty.deptCode, at: asOf,
                  detail: "Penalty \(penalty.caseNo): fine \(fine) outside \(range.minimum)..\(range.maximum) for violation \(penalty.violationCode).",
                  into: &result)
        }

        let decisionLimit = violation?.item.decisionLimit ?? settings.defaultPenaltyDecisionLimitDays
        let deadlineDate = penalty.filedAt.date.adding(days: decisionLimit)
        let deadline = BeijingTime.startOfDay(deadlineDate.adding(days: 1))
        let decidedAt = penalty.decisionTime
        if isEnabled(.cf02) {
            let promptAt = max(deadline.adding(hours: -24 * settings.penaltyPromptDaysBeforeDecisionDeadline), penalty.filedAt)
            let decidedByThen = decidedAt.map { $0 <= promptAt } ?? false
            if !decidedByThen {
                if asOf >= promptAt {
                    raise(.cf02, subjectKey: penalty.caseNo, dept: penalty.deptCode, at: promptAt,
                          detail: "Penalty \(penalty.caseNo) filed at \(penalty.filedAt) undecided \(settings.penaltyPromptDaysBeforeDecisionDeadline) days before its decision deadline \(deadline) (\(decisionLimit) days).",
                          into: &result)
                } else {
                    result.checkAgain(at: promptAt)
                }
            }
        }
        if isEnabled(.cf03) {
            let detail = "Penalty \(penalty.caseNo) filed at \(penalty.filedAt) undecided at its decision deadline \(deadline) (\(decisionLimit) days)."
            if let decidedAt {
                if decidedAt >= deadline {
                    raise(.cf03, subjectKey: penalty.caseNo, dept: penalty.deptCode, at: deadline,
                          detail: detail + " Decided at \(decidedAt).", into: &result)
                }
            } else if asOf >= deadline {
                raise(.cf03, subjectKey: penalty.caseNo, dept: penalty.deptCode, at: deadline, detail: detail, into: &result)
            } else {
                result.checkAgain(at: deadline)
            }
        }
        if isEnabled(.cf04),
           let decisionStep = penalty.steps.filter({ $0.stage == .decision }).map(\.handledAt).min() {
            let hadNotice = penalty.steps.contains { $0.stage == .priorNotice && $0.handledAt < decisionStep }
            if !hadNotice {
                raise(.cf04, subjectKey: penalty.caseNo, episode: "prior-notice", dept: penalty.deptCode, at: asOf,
                      detail: "Penalty \(penalty.caseNo) decided at \(decisionStep) without a prior notice (stage 40) before it.",
                      into: &result)
            }
            let hadHearing = penalty.steps.contains { $0.stage == .hearing && $0.handledAt < decisionStep }
            if penalty.hearingRequested, !hadHearing {
                raise(.cf04, subjectKey: penalty.caseNo, episode: "hearing", dept: penalty.deptCode, at: asOf,
                      detail: "Penalty \(penalty.caseNo) decided at \(decisionStep) without the requested hearing (stage 45) before it.",
                      into: &result)
            }
        }
        return result
    }

    // MARK: - evaluations: PJ01-PJ02

    /// PJ01: a rating of 1 or 2; ResponseDue is the end of the [15]-th working day after RatedAt.
    public func evaluateRating(_ evaluation: EvaluationFacts, asOf: BeijingTime) -> RuleEvaluation {
        var result = RuleEvaluation()
        guard isEnabled(.pj01), evaluation.rating == 1 || evaluation.rating == 2 else { return result }
        var responseDue: BeijingTime?
        do {
            responseDue = try calendar.endOfWorkingDay(settings.badRatingResponseWorkingDays, after: evaluation.ratedAt)
        } catch {
            result.calendarGaps.append(CalendarGapWarning(rule: .pj01, subjectKey: evaluation.evaluationId, gap: error))
        }
        result.alerts.append(AlertCandidate(
            rule: .pj01, subjectKey: evaluation.evaluationId, deptCode: evaluation.deptCode, raisedAt: asOf,
            detail: "Evaluation \(evaluation.evaluationId) rated \(evaluation.rating) at \(evaluation.ratedAt).",
            responseDue: responseDue))
        return result
    }

    /// PJ02: a PJ01 alert not CORRECTED or CLOSED by its ResponseDue.
    public func evaluateBadRatingFollowUp(_ followUp: BadRatingFollowUpFacts, asOf: BeijingTime) -> RuleEvaluation {
        var result = RuleEvaluation()
        guard isEnabled(.pj02) else { return result }
        let due = followUp.responseDue
        let late: Bool
        if let doneAt = followUp.correctedOrClosedAt {
            late = doneAt >= due
        } else {
            late = asOf >= due
            if !late { result.checkAgain(at: due) }
        }
        if late {
            raise(.pj02, subjectKey: followUp.evaluationId, episode: followUp.pj01AlertId.rawValue,
                  dept: followUp.deptCode, at: due,
                  detail: "Alert \(followUp.pj01AlertId) on evaluation \(followUp.evaluationId) not corrected or closed by \(due).",
                  into: &result)
        }
        return result
    }

    // MARK: - complaints: TS01-TS02

    /// TS01 (still State 10 at the end of the [5]-th working day after ReceivedAt) and TS02 (State 21 without a
    /// Reply).
    public func evaluateComplaint(_ complaint: ComplaintFacts, asOf: BeijingTime) -> RuleEvaluation {
        var result = RuleEvaluation()
        if isEnabled(.ts01) {
            do {
                let decideBy = try calendar.endOfWorkingDay(settings.complaintAcceptanceWorkingDays, after: complaint.receivedAt)
                let leftReceived = complaint.leftReceivedStateAt ?? (complaint.state == .received ? nil : complaint.stateAt)
                let late: Bool
                if let leftReceived {
                    late = leftReceived >= decideBy
                } else {
                    late = asOf >= decideBy
                    if !late { result.checkAgain(at: decideBy) }
                }
                if late {
                    raise(.ts01, subjectKey: complaint.complaintNo, dept: complaint.deptCode, at: decideBy,
                          detail: "Complaint \(complaint.complaintNo) received at \(complaint.receivedAt) still undecided (State 10) at \(decideBy).",
                          into: &result)
                }
            } catch {
                result.calendarGaps.append(CalendarGapWarning(rule: .ts01, subjectKey: complaint.complaintNo, gap: error))
            }
        }
        if isEnabled(.ts02), complaint.state == .notAccepted, isBlank(complaint.reply) {
            raise(.ts02, subjectKey: complaint.complaintNo, dept: complaint.deptCode, at: asOf,
                  detail: "Complaint \(complaint.complaintNo) not accepted (State 21) without a reply.", into: &result)
        }
        return result
    }

    // MARK: - video: SP01-SP02

    /// SP01: a camera offline for [30] minutes or more within [08:30, 17:30) of one working day. Each offline spell
    /// is an episode; when the spell has ended, its alert is listed in `clearedAlerts` (to be RESOLVED).
    public func evaluateCameraOffline(_ spell: CameraOfflineSpell, asOf: BeijingTime) -> RuleEvaluation {
        var result = RuleEvaluation()
        guard isEnabled(.sp01) else { return result }
        let threshold = Int64(settings.cameraOfflineMinutes) * 60_000
        let spellEnd = spell.backOnlineAt
        // Offline spells longer than a month are past any holiday break; stop there instead of walking for ever.
        let lastDay = spellEnd?.date ?? asOf.date.adding(days: 31)
        var day = spell.offlineSince.date
        var firedAt: BeijingTime?
        while day <= lastDay {
            let isWorkingDay: Bool
            do {
                isWorkingDay = try calendar.isWorkingDay(day)
            } catch {
                result.calendarGaps.append(CalendarGapWarning(rule: .sp01, subjectKey: spell.cameraCode, gap: error))
                return result
            }
            if isWorkingDay {
                let windowStart = BeijingTime(day, minute: settings.supervisedHoursStartMinute)
                let windowEnd = BeijingTime(day, minute: settings.supervisedHoursEndMinute)
                let offlineFrom = max(windowStart, spell.offlineSince)
                let offlineUntil = min(windowEnd, spellEnd ?? windowEnd)
                if offlineUntil.millisecondsSinceEpoch - offlineFrom.millisecondsSinceEpoch >= threshold {
                    firedAt = offlineFrom.adding(milliseconds: threshold)
                    break
                }
            }
            day = day.adding(days: 1)
        }
        guard let firedAt else { return result }
        if asOf >= firedAt {
            let id = raise(.sp01, subjectKey: spell.cameraCode, episode: spell.offlineSince.description,
                           dept: spell.deptCode, at: firedAt,
                           detail: "Camera \(spell.cameraCode) offline since \(spell.offlineSince), \(settings.cameraOfflineMinutes) minutes within supervised hours at \(firedAt).",
                           into: &result)
            if spellEnd != nil { result.clearedAlerts.append(id) }
        } else {
            result.checkAgain(at: firedAt)
        }
        return result
    }

    /// SP02: a window number used by an Acceptance with no Camera of that WindowNo. Subject key `DEPT/WINDOW`, so
    /// each department answers for its own windows.
    public func evaluateWindowCoverage(
        windowsInUse: [WindowUse], cameraWindowNos: Set<String>, asOf: BeijingTime
    ) -> RuleEvaluation {
        var result = RuleEvaluation()
        guard isEnabled(.sp02) else { return result }
        var seen: Set<String> = []
        for use in windowsInUse.sorted(by: { $0.firstUsedAt < $1.firstUsedAt })
        where !cameraWindowNos.contains(use.windowNo) {
            let key = "\(use.deptCode)/\(use.windowNo)"
            guard seen.insert(key).inserted else { continue }
            raise(.sp02, subjectKey: key, dept: use.deptCode, at: asOf,
                  detail: "Window \(use.windowNo) of department \(use.deptCode), used since \(use.firstUsedAt), has no camera.",
                  into: &result)
        }
        return result
    }

    // MARK: - helpers

    private func isEnabled(_ rule: RuleCode) -> Bool { settings.isEnabled(rule) }

    /// Appends the alert with the default ResponseDue (none for prompts; else the end of the [3]-rd working day
    /// after RaisedAt), recording a calendar gap instead of guessing one. Returns the alert's id.
    @discardableResult
    private func raise(
        _ rule: RuleCode, subjectType: SubjectType? = nil, subjectKey: String, episode: String = "", dept: String,
        at raisedAt: BeijingTime, detail: String, into result: inout RuleEvaluation
    ) -> AlertId {
        var responseDue: BeijingTime?
        if rule.level != .prompt {
            do {
                responseDue = try calendar.endOfWorkingDay(settings.responseWorkingDays, after: raisedAt)
            } catch {
                result.calendarGaps.append(CalendarGapWarning(rule: rule, subjectKey: subjectKey, gap: error))
            }
        }
        let candidate = AlertCandidate(
            rule: rule, subjectType: subjectType, subjectKey: subjectKey, episode: episode, deptCode: dept,
            raisedAt: raisedAt, detail: detail, responseDue: responseDue)
        result.alerts.append(candidate)
        return candidate.id
    }
}

/// Empty, or only white space (including the ideographic space U+3000 of Chinese input methods).
func isBlank(_ text: String?) -> Bool {
    guard let text else { return true }
    return text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
}

/// A time limit with its unit, compared by the deadline date it gives from a given acceptance.
struct TimeLimit: CustomStringConvertible {
    var days: Int
    var unit: LimitUnit

    var description: String { "\(days) \(unit.rawValue)" }

    /// Whether this limit allows more time than `other`. With one unit the numbers compare; across units
    /// (W against N) the numbers mean different things, so the deadline dates from `acceptedAt` are compared.
    func isLonger(than other: TimeLimit, from acceptedAt: BeijingTime, calendar: WorkingCalendar) throws(CalendarError) -> Bool {
        if unit == other.unit { return days > other.days }
        let mine = try CaseClock.deadline(
            of: CaseClockInput(acceptedAt: acceptedAt, promisedLimit: days, promisedUnit: unit), calendar: calendar)
        let theirs = try CaseClock.deadline(
            of: CaseClockInput(acceptedAt: acceptedAt, promisedLimit: other.days, promisedUnit: other.unit), calendar: calendar)
        guard case .due(let myDate, _) = mine, case .due(let theirDate, _) = theirs else { return false }
        return myDate > theirDate
    }
}
