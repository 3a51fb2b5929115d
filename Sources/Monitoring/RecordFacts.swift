// Journal records as the engine keeps them: the latest revision's fields, flattened, grouped by subject, and the
// assembly of the Supervision module's fact structs from them (pure; any arrival order gives the same facts).

import Supervision
import XMLSupport

/// What the rules evaluate together: an approval case, a levy, a penalty case, an evaluation, a complaint, a camera,
/// or a window (SP02). Its key is what the timer index and the facts tables are keyed by.
public enum SubjectKind: String, Sendable, CaseIterable, Codable {
    case approvalCase = "case"
    case levy, penalty, evaluation, complaint, camera, window
}

/// A subject: kind and key (e.g. `case` / `410103001202601050000001`).
public struct SubjectRef: Hashable, Sendable, Codable, CustomStringConvertible {
    public var kind: SubjectKind
    public var key: String

    public init(kind: SubjectKind, key: String) {
        self.kind = kind
        self.key = key
    }

    public var description: String { "\(kind.rawValue) \(key)" }
}

/// How each consumed record type maps to its subject, and which field is its event time (XK08, timelines).
public struct RecordRouting: Sendable {
    public let subject: SubjectKind
    /// The field holding the subject key.
    public let subjectField: String
    /// The field holding the record's own event time.
    public let eventField: String

    /// The record types the engine consumes. `Alert` and `Score` are its own output and never consumed.
    public static let byType: [String: RecordRouting] = [
        "Application": RecordRouting(subject: .approvalCase, subjectField: "CaseNo", eventField: "AppliedAt"),
        "Acceptance": RecordRouting(subject: .approvalCase, subjectField: "CaseNo", eventField: "AcceptedAt"),
        "Step": RecordRouting(subject: .approvalCase, subjectField: "CaseNo", eventField: "HandledAt"),
        "SupplementNotice": RecordRouting(subject: .approvalCase, subjectField: "CaseNo", eventField: "NotifiedAt"),
        "SupplementReceipt": RecordRouting(subject: .approvalCase, subjectField: "CaseNo", eventField: "ReceivedAt"),
        "SpecialStart": RecordRouting(subject: .approvalCase, subjectField: "CaseNo", eventField: "StartedAt"),
        "SpecialEnd": RecordRouting(subject: .approvalCase, subjectField: "CaseNo", eventField: "EndedAt"),
        "Completion": RecordRouting(subject: .approvalCase, subjectField: "CaseNo", eventField: "CompletedAt"),
        "Fee": RecordRouting(subject: .approvalCase, subjectField: "CaseNo", eventField: "ChargedAt"),
        "Levy": RecordRouting(subject: .levy, subjectField: "LevyNo", eventField: "AssessedAt"),
        "PenaltyCase": RecordRouting(subject: .penalty, subjectField: "CaseNo", eventField: "FiledAt"),
        "PenaltyStep": RecordRouting(subject: .penalty, subjectField: "CaseNo", eventField: "HandledAt"),
        "Evaluation": RecordRouting(subject: .evaluation, subjectField: "EvaluationId", eventField: "RatedAt"),
        "Complaint": RecordRouting(subject: .complaint, subjectField: "ComplaintNo", eventField: "ReceivedAt"),
        "Camera": RecordRouting(subject: .camera, subjectField: "CameraCode", eventField: "StatusAt"),
    ]
}

/// The latest revision of one record, flattened: `Handler.Name` for nested elements. Fields starting with `@` are
/// derived by the engine across revisions (e.g. `@leftReceivedAt` of a complaint).
public struct StoredRecord: Sendable, Equatable {
    public var type: String
    /// The journal key (fields joined by U+001F).
    public var key: String
    public var rev: Int64
    public var fields: [String: String]
    /// When the gateway first stored any revision of this key (XK08).
    public var firstSeenAt: BeijingTime

    public init(type: String, key: String, rev: Int64, fields: [String: String], firstSeenAt: BeijingTime) {
        self.type = type
        self.key = key
        self.rev = rev
        self.fields = fields
        self.firstSeenAt = firstSeenAt
    }

    public subscript(_ field: String) -> String? { fields[field] }

    /// The key for people and for Alert SubjectKey: fields joined by `/`.
    public var displayKey: String { key.split(separator: "\u{1F}", omittingEmptySubsequences: false).joined(separator: "/") }

    /// The record's own event time, if its type has one and it parses.
    public var eventAt: BeijingTime? {
        RecordRouting.byType[type].flatMap { Monitoring.time(fields[$0.eventField]) }
    }

    func time(_ field: String) -> BeijingTime? { Monitoring.time(fields[field]) }
}

func time(_ text: String?) -> BeijingTime? {
    guard let text, !text.isEmpty else { return nil }
    return try? BeijingTime(parsing: text)
}

func money(_ text: String?) -> Money? {
    guard let text, !text.isEmpty else { return nil }
    return try? Money(parsing: text)
}

func boolean(_ text: String?) -> Bool { text == "true" || text == "1" }

// MARK: - flattening and field encoding

enum RecordBody {
    /// Parses a journal body (`<Type><Field>…</Field></Type>`, no namespace) into flattened fields.
    static func fields(of body: String) throws(XMLError) -> (type: String, fields: [String: String]) {
        let document = try XMLDocument(text: body)
        guard let root = document.root else { throw XMLError(line: 0, message: "empty record body") }
        var fields: [String: String] = [:]
        for child in root.children {
            if child.children.isEmpty {
                fields[child.name] = child.text
            } else {
                for grandchild in child.children { fields[child.name + "." + grandchild.name] = grandchild.text }
            }
        }
        return (root.name, fields)
    }

    // Stored as name US value US name US value …: U+001F cannot occur in XML text, so no escaping is needed.
    static func encode(_ fields: [String: String]) -> String {
        fields.sorted { $0.key < $1.key }.map { $0.key + "\u{1F}" + $0.value }.joined(separator: "\u{1F}")
    }

    static func decode(_ text: String) -> [String: String] {
        guard !text.isEmpty else { return [:] }
        let parts = text.split(separator: "\u{1F}", omittingEmptySubsequences: false)
        var fields: [String: String] = [:]
        fields.reserveCapacity(parts.count / 2)
        var index = 0
        while index + 1 < parts.count {
            fields[String(parts[index])] = String(parts[index + 1])
            index += 2
        }
        return fields
    }
}

// MARK: - assembling rule inputs

/// Builds the Supervision module's fact structs from a subject's stored records. Pure.
public enum FactAssembly {
    /// The approval case, or nil while neither Application nor Acceptance names its department.
    public static func approvalCase(_ caseNo: String, records: [StoredRecord]) -> ApprovalCaseFacts? {
        let application = records.first { $0.type == "Application" }
        let acceptanceRecord = records.first { $0.type == "Acceptance" }
        guard let dept = acceptanceRecord?["DeptCode"] ?? application?["DeptCode"] else { return nil }
        var facts = ApprovalCaseFacts(caseNo: caseNo, deptCode: dept, itemCode: application?["ItemCode"],
                                      appliedAt: application?.time("AppliedAt"))
        if let record = acceptanceRecord, let acceptedAt = record.time("AcceptedAt"),
           let promised = record["PromisedLimit"].flatMap({ Int($0) }),
           let promisedUnit = record["PromisedUnit"].flatMap(LimitUnit.init(rawValue:)),
           let legal = record["LegalLimit"].flatMap({ Int($0) }),
           let legalUnit = record["LegalUnit"].flatMap(LimitUnit.init(rawValue:)) {
            facts.acceptance = AcceptanceFacts(
                accepted: record["Decision"] == "1", reason: record["Reason"], windowNo: record["WindowNo"],
                acceptedAt: acceptedAt, promisedLimit: promised, promisedUnit: promisedUnit, legalLimit: legal,
                legalUnit: legalUnit)
        }
        for record in records {
            switch record.type {
            case "SupplementNotice": if let at = record.time("NotifiedAt") { facts.supplementNotices.append(at) }
            case "SupplementReceipt": if let at = record.time("ReceivedAt") { facts.supplementReceipts.append(at) }
            case "SpecialStart":
                if let at = record.time("StartedAt"),
                   let kind = record["Kind"].flatMap({ Int($0) }).flatMap(SpecialProcedureKind.init(rawValue:)) {
                    facts.specialStarts.append(SpecialProcedureStart(
                        kind: kind, startedAt: at, extensionDays: record["ExtensionDays"].flatMap { Int($0) } ?? 0))
                }
            case "SpecialEnd": if let at = record.time("EndedAt") { facts.specialEnds.append(at) }
            case "Step": if let at = record.time("HandledAt") { facts.stepTimes.append(at) }
            case "Completion":
                if let at = record.time("CompletedAt") {
                    facts.completion = CompletionFacts(granted: record["Result"] == "1", reason: record["Reason"], completedAt: at)
                }
            case "Fee":
                if let code = record["FeeCode"], let amount = money(record["Amount"]), let at = record.time("ChargedAt") {
                    facts.fees.append(FeeFacts(feeCode: code, amount: amount, reduction: money(record["Reduction"]) ?? .zero,
                                               reductionApproval: record["ReductionApproval"], chargedAt: at))
                }
            default: break
            }
        }
        // Deterministic order whatever the storage order.
        facts.supplementNotices.sort()
        facts.supplementReceipts.sort()
        facts.specialStarts.sort { $0.startedAt < $1.startedAt }
        facts.specialEnds.sort()
        facts.stepTimes.sort()
        facts.fees.sort { $0.feeCode < $1.feeCode }
        return facts
    }

    /// XK08 inputs: every record of the subject with an event time, answered for by `deptCode`.
    public static func reportedRecords(_ records: [StoredRecord], deptCode: String) -> [ReportedRecordFacts] {
        records.compactMap { record in
            guard let eventAt = record.eventAt else { return nil }
            return ReportedRecordFacts(recordType: record.type, recordKey: record.displayKey, deptCode: deptCode,
                                       eventAt: eventAt, firstSeenAt: record.firstSeenAt)
        }
    }

    public static func levy(_ records: [StoredRecord]) -> LevyFacts? {
        guard let record = records.first(where: { $0.type == "Levy" }), let levyNo = record["LevyNo"],
              let item = record["ItemCode"], let dept = record["DeptCode"], let base = money(record["Base"]),
              let due = money(record["AmountDue"]), let collected = money(record["AmountCollected"]),
              let assessedAt = record.time("AssessedAt") else { return nil }
        return LevyFacts(levyNo: levyNo, itemCode: item, deptCode: dept, base: base, amountDue: due,
                         amountCollected: collected, reduction: money(record["Reduction"]) ?? .zero,
                         reductionApproval: record["ReductionApproval"], assessedAt: assessedAt,
                         collectedAt: record.time("CollectedAt"), remittedAt: record.time("RemittedAt"))
    }

    public static func penalty(_ records: [StoredRecord]) -> PenaltyFacts? {
        guard let record = records.first(where: { $0.type == "PenaltyCase" }), let caseNo = record["CaseNo"],
              let dept = record["DeptCode"], let violation = record["ViolationCode"],
              let filedAt = record.time("FiledAt") else { return nil }
        let steps = records.filter { $0.type == "PenaltyStep" }.compactMap { step -> PenaltyStepFacts? in
            guard let stage = step["Stage"].flatMap({ Int($0) }).flatMap(PenaltyStage.init(rawValue:)),
                  let at = step.time("HandledAt") else { return nil }
            return PenaltyStepFacts(stage: stage, handledAt: at)
        }.sorted { ($0.handledAt, $0.stage.rawValue) < ($1.handledAt, $1.stage.rawValue) }
        return PenaltyFacts(caseNo: caseNo, deptCode: dept, violationCode: violation, filedAt: filedAt,
                            hearingRequested: boolean(record["HearingRequested"]), fineAmount: money(record["FineAmount"]),
                            decidedAt: record.time("DecidedAt"), steps: steps)
    }

    public static func evaluation(_ records: [StoredRecord]) -> EvaluationFacts? {
        guard let record = records.first(where: { $0.type == "Evaluation" }), let id = record["EvaluationId"],
              let dept = record["DeptCode"], let rating = record["Rating"].flatMap({ Int($0) }),
              let ratedAt = record.time("RatedAt") else { return nil }
        return EvaluationFacts(evaluationId: id, deptCode: dept, rating: rating, ratedAt: ratedAt)
    }

    public static func complaint(_ records: [StoredRecord]) -> ComplaintFacts? {
        guard let record = records.first(where: { $0.type == "Complaint" }), let number = record["ComplaintNo"],
              let dept = record["DeptCode"], let receivedAt = record.time("ReceivedAt"),
              let state = record["State"].flatMap({ Int($0) }).flatMap(ComplaintState.init(rawValue:)),
              let stateAt = record.time("StateAt") else { return nil }
        var substantiated: Bool?
        if let text = record["Substantiated"] { substantiated = boolean(text) }
        return ComplaintFacts(complaintNo: number, deptCode: dept, receivedAt: receivedAt, state: state, stateAt: stateAt,
                              reply: record["Reply"], substantiated: substantiated,
                              leftReceivedStateAt: record.time("@leftReceivedAt"))
    }
}
