// Plain inputs of the supervision rules: settings, the item catalog, and one fact struct per subject.
//
// The rules never read the journal; whoever assembles these structs (from journal state, in any arrival order)
// decides nothing about the rules' meaning.

/// Configurable thresholds (section 6 brackets, with their defaults) and the switch per rule.
public struct SupervisionSettings: Sendable, Equatable {
    /// Rules that are evaluated; a disabled rule returns no alert, no warning and no wake-up time.
    public var enabledRules: Set<RuleCode> = Set(RuleCode.allCases)
    /// XK08: a record first seen more than this many hours after its event time is a late report.
    public var lateReportHours = 24
    /// CF02: the prompt comes this many natural days before the decision deadline.
    public var penaltyPromptDaysBeforeDecisionDeadline = 10
    /// CF02/CF03: decision limit in natural days when the catalog names none for the violation (Penalty Law 2021
    /// art. 60: 90 days from filing).
    public var defaultPenaltyDecisionLimitDays = 90
    /// PJ01: working days after RatedAt for verifying and rectifying a bad rating.
    public var badRatingResponseWorkingDays = 15
    /// TS01: working days after ReceivedAt for deciding on a complaint's acceptance.
    public var complaintAcceptanceWorkingDays = 5
    /// SP01: minutes offline within supervised hours before the alert.
    public var cameraOfflineMinutes = 30
    /// SP01: supervised hours on working days, as minutes after 00:00 (08:30 and 17:30).
    public var supervisedHoursStartMinute = 8 * 60 + 30
    public var supervisedHoursEndMinute = 17 * 60 + 30
    /// Default ResponseDue of Y and R alerts: the end of this working day after RaisedAt.
    public var responseWorkingDays = 3

    public init() {}

    public func isEnabled(_ rule: RuleCode) -> Bool { enabledRules.contains(rule) }
}

/// A fine range of a violation in the catalog.
public struct FineRange: Sendable, Equatable {
    public var minimum: Money
    public var maximum: Money

    public init(minimum: Money, maximum: Money) {
        self.minimum = minimum
        self.maximum = maximum
    }
}

/// One catalog item (`ReferenceData/Item`), with only the fields the rules read.
public struct CatalogItem: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case licensing = "XK", levy = "ZS", penalty = "CF"
    }

    public var code: String
    public var kind: Kind
    public var legalLimit: Int?
    public var legalUnit: LimitUnit?
    public var promisedLimit: Int?
    public var promisedUnit: LimitUnit?
    /// Fee standards by FeeCode (Standard 0 = free).
    public var feeStandards: [String: Money]
    public var rate: LevyRate?
    /// Working days after CollectedAt for remitting a levy.
    public var remitLimit: Int?
    /// Natural days from filing for a penalty decision.
    public var decisionLimit: Int?
    /// Fine ranges by ViolationCode.
    public var violations: [String: FineRange]

    public init(
        code: String, kind: Kind, legalLimit: Int? = nil, legalUnit: LimitUnit? = nil, promisedLimit: Int? = nil,
        promisedUnit: LimitUnit? = nil, feeStandards: [String: Money] = [:], rate: LevyRate? = nil,
        remitLimit: Int? = nil, decisionLimit: Int? = nil, violations: [String: FineRange] = [:]
    ) {
        self.code = code
        self.kind = kind
        self.legalLimit = legalLimit
        self.legalUnit = legalUnit
        self.promisedLimit = promisedLimit
        self.promisedUnit = promisedUnit
        self.feeStandards = feeStandards
        self.rate = rate
        self.remitLimit = remitLimit
        self.decisionLimit = decisionLimit
        self.violations = violations
    }
}

/// The item catalog of the reference data.
public struct ItemCatalog: Sendable, Equatable {
    public private(set) var items: [String: CatalogItem]
    /// ViolationCode → code of the item listing it: a PenaltyCase names its violation, not its item.
    private var itemCodeByViolation: [String: String]

    /// Later items with a repeated code replace earlier ones. A violation listed by two items belongs to the one
    /// with the smaller code, so the lookup never depends on dictionary order.
    public init(items: [CatalogItem]) {
        var byCode: [String: CatalogItem] = [:]
        for item in items { byCode[item.code] = item }
        var byViolation: [String: String] = [:]
        // Descending order: the smallest code writes last and wins.
        for (code, item) in byCode.sorted(by: { $0.key > $1.key }) {
            for violationCode in item.violations.keys { byViolation[violationCode] = code }
        }
        self.items = byCode
        self.itemCodeByViolation = byViolation
    }

    public func item(_ code: String) -> CatalogItem? { items[code] }

    /// The penalty item listing `violationCode` and that violation's fine range.
    public func violation(_ violationCode: String) -> (item: CatalogItem, range: FineRange)? {
        guard let code = itemCodeByViolation[violationCode], let item = items[code],
              let range = item.violations[violationCode] else { return nil }
        return (item, range)
    }
}

// MARK: - approval cases

/// The `Acceptance` record of a case.
public struct AcceptanceFacts: Sendable, Equatable {
    /// Decision 1.
    public var accepted: Bool
    public var reason: String?
    public var windowNo: String?
    public var acceptedAt: BeijingTime
    public var promisedLimit: Int
    public var promisedUnit: LimitUnit
    public var legalLimit: Int
    public var legalUnit: LimitUnit

    public init(
        accepted: Bool, reason: String? = nil, windowNo: String? = nil, acceptedAt: BeijingTime,
        promisedLimit: Int, promisedUnit: LimitUnit, legalLimit: Int, legalUnit: LimitUnit
    ) {
        self.accepted = accepted
        self.reason = reason
        self.windowNo = windowNo
        self.acceptedAt = acceptedAt
        self.promisedLimit = promisedLimit
        self.promisedUnit = promisedUnit
        self.legalLimit = legalLimit
        self.legalUnit = legalUnit
    }
}

/// The `Completion` record of a case.
public struct CompletionFacts: Sendable, Equatable {
    /// Result 1.
    public var granted: Bool
    public var reason: String?
    public var completedAt: BeijingTime

    public init(granted: Bool, reason: String? = nil, completedAt: BeijingTime) {
        self.granted = granted
        self.reason = reason
        self.completedAt = completedAt
    }
}

/// A `Fee` record of a case.
public struct FeeFacts: Sendable, Equatable {
    public var feeCode: String
    public var amount: Money
    public var reduction: Money
    public var reductionApproval: String?
    public var chargedAt: BeijingTime

    public init(feeCode: String, amount: Money, reduction: Money = .zero, reductionApproval: String? = nil, chargedAt: BeijingTime) {
        self.feeCode = feeCode
        self.amount = amount
        self.reduction = reduction
        self.reductionApproval = reductionApproval
        self.chargedAt = chargedAt
    }
}

/// Everything the XK01-XK07 rules read about one approval case.
public struct ApprovalCaseFacts: Sendable, Equatable {
    public var caseNo: String
    /// The department answering for the case (Acceptance/DeptCode, else Application/DeptCode).
    public var deptCode: String
    public var itemCode: String?
    public var appliedAt: BeijingTime?
    public var acceptance: AcceptanceFacts?
    public var supplementNotices: [BeijingTime]
    public var supplementReceipts: [BeijingTime]
    public var specialStarts: [SpecialProcedureStart]
    public var specialEnds: [BeijingTime]
    /// HandledAt of the case's Step records.
    public var stepTimes: [BeijingTime]
    public var completion: CompletionFacts?
    public var fees: [FeeFacts]

    public init(
        caseNo: String, deptCode: String, itemCode: String? = nil, appliedAt: BeijingTime? = nil,
        acceptance: AcceptanceFacts? = nil, supplementNotices: [BeijingTime] = [], supplementReceipts: [BeijingTime] = [],
        specialStarts: [SpecialProcedureStart] = [], specialEnds: [BeijingTime] = [], stepTimes: [BeijingTime] = [],
        completion: CompletionFacts? = nil, fees: [FeeFacts] = []
    ) {
        self.caseNo = caseNo
        self.deptCode = deptCode
        self.itemCode = itemCode
        self.appliedAt = appliedAt
        self.acceptance = acceptance
        self.supplementNotices = supplementNotices
        self.supplementReceipts = supplementReceipts
        self.specialStarts = specialStarts
        self.specialEnds = specialEnds
        self.stepTimes = stepTimes
        self.completion = completion
        self.fees = fees
    }

    /// The clock input, when the case was accepted (Decision 1); a refused case has no clock.
    public var clockInput: CaseClockInput? {
        guard let acceptance, acceptance.accepted else { return nil }
        return CaseClockInput(
            acceptedAt: acceptance.acceptedAt, promisedLimit: acceptance.promisedLimit,
            promisedUnit: acceptance.promisedUnit, supplementNotices: supplementNotices,
            supplementReceipts: supplementReceipts, specialStarts: specialStarts, specialEnds: specialEnds,
            completedAt: completion?.completedAt)
    }
}

/// A record as the gateway first saw it (XK08).
public struct ReportedRecordFacts: Sendable, Equatable {
    /// The PUI record type, e.g. `Step`.
    public var recordType: String
    /// The record's key fields joined, e.g. `C001/02/2026-01-05T08:37:00+08:00`.
    public var recordKey: String
    public var deptCode: String
    /// The record's own event time (AcceptedAt, HandledAt, ...).
    public var eventAt: BeijingTime
    public var firstSeenAt: BeijingTime

    public init(recordType: String, recordKey: String, deptCode: String, eventAt: BeijingTime, firstSeenAt: BeijingTime) {
        self.recordType = recordType
        self.recordKey = recordKey
        self.deptCode = deptCode
        self.eventAt = eventAt
        self.firstSeenAt = firstSeenAt
    }
}

// MARK: - levy and penalty

/// A `Levy` record.
public struct LevyFacts: Sendable, Equatable {
    public var levyNo: String
    public var itemCode: String
    public var deptCode: String
    public var base: Money
    public var amountDue: Money
    public var amountCollected: Money
    public var reduction: Money
    public var reductionApproval: String?
    public var assessedAt: BeijingTime
    public var collectedAt: BeijingTime?
    public var remittedAt: BeijingTime?

    public init(
        levyNo: String, itemCode: String, deptCode: String, base: Money, amountDue: Money, amountCollected: Money,
        reduction: Money = .zero, reductionApproval: String? = nil, assessedAt: BeijingTime,
        collectedAt: BeijingTime? = nil, remittedAt: BeijingTime? = nil
    ) {
        self.levyNo = levyNo
        self.itemCode = itemCode
        self.deptCode = deptCode
        self.base = base
        self.amountDue = amountDue
        self.amountCollected = amountCollected
        self.reduction = reduction
        self.reductionApproval = reductionApproval
        self.assessedAt = assessedAt
        self.collectedAt = collectedAt
        self.remittedAt = remittedAt
    }
}

/// A penalty stage (`PenaltyStage`).
public enum PenaltyStage: Int, Sendable, Equatable {
    case filed = 10, investigation = 20, legalReview = 30, priorNotice = 40, hearing = 45, decision = 50
    case service = 60, enforcement = 70, closed = 80
}

/// A `PenaltyStep` record.
public struct PenaltyStepFacts: Sendable, Equatable {
    public var stage: PenaltyStage
    public var handledAt: BeijingTime

    public init(stage: PenaltyStage, handledAt: BeijingTime) {
        self.stage = stage
        self.handledAt = handledAt
    }
}

/// A `PenaltyCase` with its steps.
public struct PenaltyFacts: Sendable, Equatable {
    public var caseNo: String
    public var deptCode: String
    public var violationCode: String
    public var filedAt: BeijingTime
    public var hearingRequested: Bool
    public var fineAmount: Money?
    public var decidedAt: BeijingTime?
    public var steps: [PenaltyStepFacts]

    public init(
        caseNo: String, deptCode: String, violationCode: String, filedAt: BeijingTime, hearingRequested: Bool = false,
        fineAmount: Money? = nil, decidedAt: BeijingTime? = nil, steps: [PenaltyStepFacts] = []
    ) {
        self.caseNo = caseNo
        self.deptCode = deptCode
        self.violationCode = violationCode
        self.filedAt = filedAt
        self.hearingRequested = hearingRequested
        self.fineAmount = fineAmount
        self.decidedAt = decidedAt
        self.steps = steps
    }

    /// When the case was decided: DecidedAt, else the first Stage 50 step.
    public var decisionTime: BeijingTime? {
        decidedAt ?? steps.filter { $0.stage == .decision }.map(\.handledAt).min()
    }
}

// MARK: - window service, complaints, video

/// An `Evaluation` record.
public struct EvaluationFacts: Sendable, Equatable {
    public var evaluationId: String
    public var deptCode: String
    /// 1 very dissatisfied ... 5 very satisfied.
    public var rating: Int
    public var ratedAt: BeijingTime

    public init(evaluationId: String, deptCode: String, rating: Int, ratedAt: BeijingTime) {
        self.evaluationId = evaluationId
        self.deptCode = deptCode
        self.rating = rating
        self.ratedAt = ratedAt
    }
}

/// A PJ01 alert as PJ02 needs to see it.
public struct BadRatingFollowUpFacts: Sendable, Equatable {
    public var pj01AlertId: AlertId
    public var evaluationId: String
    public var deptCode: String
    public var responseDue: BeijingTime
    /// When the PJ01 alert reached CORRECTED or CLOSED, if it did.
    public var correctedOrClosedAt: BeijingTime?

    public init(pj01AlertId: AlertId, evaluationId: String, deptCode: String, responseDue: BeijingTime, correctedOrClosedAt: BeijingTime?) {
        self.pj01AlertId = pj01AlertId
        self.evaluationId = evaluationId
        self.deptCode = deptCode
        self.responseDue = responseDue
        self.correctedOrClosedAt = correctedOrClosedAt
    }
}

/// A complaint's state (`ComplaintState`).
public enum ComplaintState: Int, Sendable, Equatable {
    case received = 10, accepted = 20, notAccepted = 21, transferred = 30, investigated = 40, replied = 50, closed = 60
}

/// A `Complaint` as the rules see it: its latest revision plus when it first left State 10.
public struct ComplaintFacts: Sendable, Equatable {
    public var complaintNo: String
    public var deptCode: String
    public var receivedAt: BeijingTime
    public var state: ComplaintState
    public var stateAt: BeijingTime
    public var reply: String?
    public var substantiated: Bool?
    /// StateAt of the first revision whose State was not 10. When nil and the state is no longer 10, the current
    /// StateAt is used: the latest moment the complaint can have left State 10.
    public var leftReceivedStateAt: BeijingTime?

    public init(
        complaintNo: String, deptCode: String, receivedAt: BeijingTime, state: ComplaintState, stateAt: BeijingTime,
        reply: String? = nil, substantiated: Bool? = nil, leftReceivedStateAt: BeijingTime? = nil
    ) {
        self.complaintNo = complaintNo
        self.deptCode = deptCode
        self.receivedAt = receivedAt
        self.state = state
        self.stateAt = stateAt
        self.reply = reply
        self.substantiated = substantiated
        self.leftReceivedStateAt = leftReceivedStateAt
    }
}

/// One continuous spell of a camera reporting Online false.
public struct CameraOfflineSpell: Sendable, Equatable {
    public var cameraCode: String
    /// The department the alert goes to (the camera's DeptCode, or the hall's owner when the camera has none).
    public var deptCode: String
    /// StatusAt of the first Online false of the spell.
    public var offlineSince: BeijingTime
    /// StatusAt of the first Online true after it; nil while still offline.
    public var backOnlineAt: BeijingTime?

    public init(cameraCode: String, deptCode: String, offlineSince: BeijingTime, backOnlineAt: BeijingTime? = nil) {
        self.cameraCode = cameraCode
        self.deptCode = deptCode
        self.offlineSince = offlineSince
        self.backOnlineAt = backOnlineAt
    }
}

/// A window number used by at least one Acceptance of a department (SP02).
public struct WindowUse: Sendable, Equatable {
    public var deptCode: String
    public var windowNo: String
    /// AcceptedAt of the first Acceptance using it.
    public var firstUsedAt: BeijingTime

    public init(deptCode: String, windowNo: String, firstUsedAt: BeijingTime) {
        self.deptCode = deptCode
        self.windowNo = windowNo
        self.firstUsedAt = firstUsedAt
    }
}
