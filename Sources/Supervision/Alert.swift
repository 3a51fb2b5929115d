// Alerts: the rules' output (candidates with a stable identity) and the life of an alert once raised.

import Foundation

/// Alert level (PUI `AlertLevel`).
public enum AlertLevel: String, Sendable, Equatable, CaseIterable {
    /// 提示: a prompt.
    case prompt = "P"
    /// 黄牌: a yellow card.
    case yellow = "Y"
    /// 红牌: a red card.
    case red = "R"
}

/// What an alert is about (`Alert/SubjectType`).
public enum SubjectType: String, Sendable, Equatable {
    case approvalCase = "case"
    case record
    case levy
    case penalty
    case evaluation
    case complaint
    case camera
    case window
}

/// The 21 supervision rules of pui-v1.md section 6, with their fixed level and subject type.
public enum RuleCode: String, Sendable, Equatable, CaseIterable, Comparable {
    case xk01 = "XK01", xk02 = "XK02", xk03 = "XK03", xk04 = "XK04", xk05 = "XK05", xk06 = "XK06", xk07 = "XK07"
    case xk08 = "XK08"
    case zs01 = "ZS01", zs02 = "ZS02", zs03 = "ZS03"
    case cf01 = "CF01", cf02 = "CF02", cf03 = "CF03", cf04 = "CF04"
    case pj01 = "PJ01", pj02 = "PJ02"
    case ts01 = "TS01", ts02 = "TS02"
    case sp01 = "SP01", sp02 = "SP02"

    /// The level the section 6 table assigns.
    public var level: AlertLevel {
        switch self {
        case .xk01, .cf02: return .prompt
        case .xk02, .xk05, .zs01, .cf01, .cf03, .pj02: return .red
        default: return .yellow
        }
    }

    /// The subject the section 6 table assigns. XK06 also covers levies; those alerts use `.levy` (see
    /// `SupervisionRules.evaluateLevy`).
    public var subjectType: SubjectType {
        switch self {
        case .xk01, .xk02, .xk03, .xk04, .xk05, .xk06, .xk07: return .approvalCase
        case .xk08: return .record
        case .zs01, .zs02, .zs03: return .levy
        case .cf01, .cf02, .cf03, .cf04: return .penalty
        case .pj01, .pj02: return .evaluation
        case .ts01, .ts02: return .complaint
        case .sp01: return .camera
        case .sp02: return .window
        }
    }

    /// Whether the condition can clear by itself, ending the alert as RESOLVED (section 6: SP01).
    public var clearsByItself: Bool { self == .sp01 }

    public static func < (lhs: RuleCode, rhs: RuleCode) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The identity of an alert (`AlertId`, pattern `[0-9A-Za-z_\-]{1,64}`).
///
/// Derived from rule, subject and episode only, never from times or arrival order, so re-evaluating the same
/// facts (again after a restart, or after records are ingested twice) yields the same id and the journal can
/// raise each alert at most once.
public struct AlertId: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// `<RuleCode>-<first 32 hex digits of SHA-256(rule, subject type, subject key, episode)>`: 37 characters.
    /// The 128-bit hash keeps collisions out of reach even for millions of alerts; the rule prefix keeps ids
    /// readable in lists.
    public init(rule: RuleCode, subjectType: SubjectType, subjectKey: String, episode: String) {
        // Unit separators keep ("a", "bc") and ("ab", "c") apart.
        let material = [rule.rawValue, subjectType.rawValue, subjectKey, episode].joined(separator: "\u{1F}")
        rawValue = rule.rawValue + "-" + SHA256.hexDigest(of: Array(material.utf8)).prefix(32)
    }

    /// Wraps an id read back from the journal.
    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    public var description: String { rawValue }

    public static func < (lhs: AlertId, rhs: AlertId) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// An alert a rule wants raised. The caller raises it only if no alert with the same `id` exists.
public struct AlertCandidate: Sendable, Equatable {
    public var id: AlertId
    public var rule: RuleCode
    public var level: AlertLevel { rule.level }
    public var subjectType: SubjectType
    public var subjectKey: String
    /// What distinguishes repeated occurrences on one subject (e.g. a camera's offline spell); "" for rules that
    /// fire at most once per subject.
    public var episode: String
    public var deptCode: String
    /// When the condition became true (time-driven rules) or was detected (record-driven rules: the evaluation
    /// time, except XK08 which uses the time the record was first seen).
    public var raisedAt: BeijingTime
    /// Why the rule fired, in words an operator can check against the records (at most 2000 characters).
    public var detail: String
    /// Y and R alerts: when the department's answer is due. Nil for prompts, and when the calendar does not cover
    /// the dates needed (the evaluation then carries a `CalendarGapWarning`).
    public var responseDue: BeijingTime?

    public init(
        rule: RuleCode, subjectType: SubjectType? = nil, subjectKey: String, episode: String = "",
        deptCode: String, raisedAt: BeijingTime, detail: String, responseDue: BeijingTime?
    ) {
        let subjectType = subjectType ?? rule.subjectType
        self.id = AlertId(rule: rule, subjectType: subjectType, subjectKey: subjectKey, episode: episode)
        self.rule = rule
        self.subjectType = subjectType
        self.subjectKey = subjectKey
        self.episode = episode
        self.deptCode = deptCode
        self.raisedAt = raisedAt
        self.detail = clipped(detail, toCharacters: 2000)
        self.responseDue = responseDue
    }
}

/// Alert state (PUI `AlertState`).
public enum AlertState: String, Sendable, Equatable, CaseIterable {
    case open = "OPEN"
    case acknowledged = "ACKED"
    case corrected = "CORRECTED"
    case closed = "CLOSED"
    case resolved = "RESOLVED"

    /// CLOSED and RESOLVED end an alert's life.
    public var isFinal: Bool { self == .closed || self == .resolved }
}

/// Something done to an alert.
public enum AlertAction: Sendable, Equatable {
    /// The department answers; the explanation must not be blank.
    case acknowledge(explanation: String)
    /// The department reports the correction done.
    case markCorrected
    /// The supervision bureau closes the alert.
    case close
    /// The condition cleared by itself (only rules whose condition can clear, i.e. SP01).
    case resolve
}

/// An action the alert's current state does not allow.
public enum AlertTransitionError: Error, Equatable, Sendable {
    case notAllowed(alertId: AlertId, from: AlertState, action: String)
    case blankExplanation(alertId: AlertId)
    /// RESOLVED is only for conditions that clear by themselves; other alerts go through CORRECTED and CLOSED.
    case ruleCannotResolveByItself(alertId: AlertId, rule: RuleCode)
    /// The action's time is before the alert's current StateAt: a clock or ordering fault the caller must see.
    case timeBeforeCurrentState(alertId: AlertId, stateAt: BeijingTime, actionAt: BeijingTime)
}

/// An alert as the district keeps and reports it (PUI `Alert`), with its revision.
public struct AlertRecord: Sendable, Equatable {
    public let id: AlertId
    public let rule: RuleCode
    public var level: AlertLevel { rule.level }
    public let subjectType: SubjectType
    public let subjectKey: String
    public let deptCode: String
    public let raisedAt: BeijingTime
    public let detail: String
    public let responseDue: BeijingTime?
    public private(set) var state: AlertState
    public private(set) var stateAt: BeijingTime
    public private(set) var explanation: String?
    /// The record's `rev`: 1 when raised, +1 on every change.
    public private(set) var revision: Int

    /// A newly raised alert: OPEN at its RaisedAt, revision 1.
    public init(raising candidate: AlertCandidate) {
        id = candidate.id
        rule = candidate.rule
        subjectType = candidate.subjectType
        subjectKey = candidate.subjectKey
        deptCode = candidate.deptCode
        raisedAt = candidate.raisedAt
        detail = candidate.detail
        responseDue = candidate.responseDue
        state = .open
        stateAt = candidate.raisedAt
        explanation = nil
        revision = 1
    }

    /// Restores an alert read back from storage.
    public init(
        id: AlertId, rule: RuleCode, subjectType: SubjectType, subjectKey: String, deptCode: String,
        raisedAt: BeijingTime, detail: String, responseDue: BeijingTime?, state: AlertState, stateAt: BeijingTime,
        explanation: String?, revision: Int
    ) {
        self.id = id
        self.rule = rule
        self.subjectType = subjectType
        self.subjectKey = subjectKey
        self.deptCode = deptCode
        self.raisedAt = raisedAt
        self.detail = detail
        self.responseDue = responseDue
        self.state = state
        self.stateAt = stateAt
        self.explanation = explanation
        self.revision = revision
    }

    /// The alert after `action` at `time`: OPEN → ACKED → CORRECTED → CLOSED, and OPEN or ACKED → RESOLVED for
    /// a condition that cleared by itself. Every change sets StateAt and increments the revision.
    public func applying(_ action: AlertAction, at time: BeijingTime) throws(AlertTransitionError) -> AlertRecord {
        guard time >= stateAt else {
            throw .timeBeforeCurrentState(alertId: id, stateAt: stateAt, actionAt: time)
        }
        var next = self
        switch (state, action) {
        case (.open, .acknowledge(let explanation)):
            let trimmed = explanation.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { throw .blankExplanation(alertId: id) }
            next.state = .acknowledged
            next.explanation = clipped(explanation, toCharacters: 2000)
        case (.acknowledged, .markCorrected):
            next.state = .corrected
        case (.corrected, .close):
            next.state = .closed
        case (.open, .resolve), (.acknowledged, .resolve):
            guard rule.clearsByItself else { throw .ruleCannotResolveByItself(alertId: id, rule: rule) }
            next.state = .resolved
        default:
            throw .notAllowed(alertId: id, from: state, action: action.name)
        }
        next.stateAt = time
        next.revision += 1
        return next
    }
}

extension AlertAction {
    /// The action's name in errors and audit lines.
    public var name: String {
        switch self {
        case .acknowledge: return "ack"
        case .markCorrected: return "correct"
        case .close: return "close"
        case .resolve: return "resolve"
        }
    }
}

/// `text` cut to `limit` XSD characters. XSD lengths count Unicode scalars, not Swift's grapheme clusters, so a
/// grapheme-based prefix could still exceed a `Text2000` field.
func clipped(_ text: String, toCharacters limit: Int) -> String {
    guard text.unicodeScalars.count > limit else { return text }
    var view = String.UnicodeScalarView()
    view.append(contentsOf: text.unicodeScalars.prefix(limit))
    return String(view)
}
