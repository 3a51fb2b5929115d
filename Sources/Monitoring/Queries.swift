// Read side for operators: alert lists and details (with the subject's timeline and audit trail), statistics.

import SQLiteSupport
import Supervision

/// One alert as listed.
public struct AlertRow: Sendable, Codable, Equatable {
    public var alertId: String
    public var rule: String
    public var level: String
    public var subjectType: String
    public var subjectKey: String
    public var deptCode: String
    public var raisedAt: String
    public var responseDue: String?
    public var state: String
    public var stateAt: String
    public var explanation: String?
    public var detail: String
    public var rev: Int64
}

/// One entry of an alert's audit trail.
public struct AuditRow: Sendable, Codable, Equatable {
    public var action: String
    public var actor: String
    public var note: String?
    public var fromState: String?
    public var toState: String
    public var at: String
    public var rev: Int64
}

/// One record of a subject's timeline (personal fields left out).
public struct TimelineRow: Sendable, Codable, Equatable {
    public var at: String?
    public var recordType: String
    public var key: String
    public var rev: Int64
    public var firstSeenAt: String
    public var fields: [String: String]
}

/// `alert show`: the alert, why it fired, what happened to it, and the subject's records in time order.
public struct AlertDetail: Sendable, Codable, Equatable {
    public var alert: AlertRow
    public var subject: String
    public var audit: [AuditRow]
    public var timeline: [TimelineRow]
}

/// Filters of `alert list`.
public struct AlertFilter: Sendable {
    public var level: String?
    public var dept: String?
    public var state: String?
    public var limit: Int

    public init(level: String? = nil, dept: String? = nil, state: String? = nil, limit: Int = 200) {
        self.level = level
        self.dept = dept
        self.state = state
        self.limit = limit
    }
}

/// `stats`: grouping.
public enum StatisticsGrouping: String, Sendable, CaseIterable {
    case dept, item, period
}

/// One line of `stats`: the bulletin's figures for one department, item or month.
public struct StatisticsRow: Sendable, Codable, Equatable {
    public var group: String
    public var casesAccepted = 0
    public var casesCompleted = 0
    public var completedOnTime = 0
    /// CompletedOnTime / CasesCompleted, four decimals; "1.0000" when nothing was completed.
    public var onTimeRate = "1.0000"
    /// Average working days from acceptance to completion over completed cases the calendar covers.
    public var averageWorkingDays: Double?
    public var prompts = 0
    public var yellowCards = 0
    public var redCards = 0
    /// Fees of completed cases (Amount − Reduction), yuan with two decimals.
    public var feesCollected = "0.00"

    init(group: String) { self.group = group }
}

/// Fields never shown in a timeline (personal data, pui-v1.md section 8).
private let personalFieldPrefixes = ["Applicant.", "Payer.", "Party.", "Complainant"]

extension SupervisionEngine {
    private static func timeKey(_ text: String?) -> Int64 {
        text.flatMap { try? BeijingTime(parsing: $0) }?.millisecondsSinceEpoch ?? Int64.min
    }

    private static func text(_ ms: Int64) -> String { BeijingTime(millisecondsSinceEpoch: ms).description }

    private static let alertColumns = """
        alert_id, rule, level, subject_type, subject_key, dept, raised_at, response_due, state, state_at, explanation,
        detail, rev
        """

    private static func alertRow(_ row: SQLiteStatement) -> AlertRow {
        AlertRow(alertId: row.text(at: 0), rule: row.text(at: 1), level: row.text(at: 2), subjectType: row.text(at: 3),
                 subjectKey: row.text(at: 4), deptCode: row.text(at: 5), raisedAt: text(row.int(at: 6)),
                 responseDue: row.isNull(at: 7) ? nil : text(row.int(at: 7)), state: row.text(at: 8),
                 stateAt: text(row.int(at: 9)), explanation: row.isNull(at: 10) ? nil : row.text(at: 10),
                 detail: row.text(at: 11), rev: row.int(at: 12))
    }

    /// Alerts, newest first.
    public func alerts(_ filter: AlertFilter = AlertFilter()) throws(MonitoringError) -> [AlertRow] {
        try storage("list alerts") {
            var conditions: [String] = []
            var values: [SQLiteValue] = []
            for (column, value) in [("level", filter.level), ("dept", filter.dept), ("state", filter.state)] {
                guard let value else { continue }
                // Levels and states are upper-case codes; accept "open" or "y" as typed.
                values.append(.text(column == "dept" ? value : value.uppercased()))
                conditions.append("\(column) = ?\(values.count)")
            }
            values.append(.integer(Int64(filter.limit)))
            let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            return try store.rows("""
                SELECT \(Self.alertColumns) FROM sv_alert \(whereClause) ORDER BY raised_at DESC, alert_id LIMIT ?\(values.count)
                """, values, Self.alertRow)
        }
    }

    /// One alert with its audit trail and the timeline of the subject that raised it.
    public func alertDetail(_ id: String) throws(MonitoringError) -> AlertDetail {
        try storage("show alert \(id)") {
            guard let alert = try store.rows("SELECT \(Self.alertColumns) FROM sv_alert WHERE alert_id = ?1",
                                             [.text(id)], Self.alertRow).first,
                  let stored = try loadAlert(id) else { throw MonitoringError.unknownAlert(id: id) }
            let audit = try store.rows("""
                SELECT action, actor, note, from_state, to_state, at, rev FROM sv_alert_audit WHERE alert_id = ?1 ORDER BY id
                """, [.text(id)]) { row in
                AuditRow(action: row.text(at: 0), actor: row.text(at: 1), note: row.isNull(at: 2) ? nil : row.text(at: 2),
                         fromState: row.isNull(at: 3) ? nil : row.text(at: 3), toState: row.text(at: 4),
                         at: Self.text(row.int(at: 5)), rev: row.int(at: 6))
            }
            let timeline = try records(of: stored.watch).map { record in
                TimelineRow(at: record.eventAt?.description, recordType: record.type, key: record.displayKey, rev: record.rev,
                            firstSeenAt: record.firstSeenAt.description,
                            fields: record.fields.filter { field in
                                !field.key.hasPrefix("@") && !personalFieldPrefixes.contains { field.key.hasPrefix($0) }
                            })
            }.sorted { (Self.timeKey($0.at), lifeOrder($0.recordType)) < (Self.timeKey($1.at), lifeOrder($1.recordType)) }
            return AlertDetail(alert: alert, subject: stored.watch.description, audit: audit, timeline: timeline)
        }
    }

    /// Bulletin statistics grouped by department, catalog item, or month (each figure by the month of its own
    /// event: acceptance, completion, raising).
    public func statistics(by grouping: StatisticsGrouping) throws(MonitoringError) -> [StatisticsRow] {
        try storage("statistics") {
            func month(_ column: String) -> String { "strftime('%Y-%m', \(column) / 1000 + 28800, 'unixepoch')" }
            let acceptedGroup, completedGroup: String
            switch grouping {
            case .dept: (acceptedGroup, completedGroup) = ("dept", "dept")
            case .item: (acceptedGroup, completedGroup) = ("coalesce(item, '-')", "coalesce(item, '-')")
            case .period: (acceptedGroup, completedGroup) = (month("accepted_at"), month("completed_at"))
            }
            var rows: [String: StatisticsRow] = [:]
            func update(_ group: String, _ change: (inout StatisticsRow) -> Void) {
                var row = rows[group] ?? StatisticsRow(group: group)
                change(&row)
                rows[group] = row
            }
            for (group, count) in try store.rows(
                "SELECT \(acceptedGroup), count(*) FROM sv_case WHERE accepted_at IS NOT NULL GROUP BY 1", [],
                { ($0.text(at: 0), Int($0.int(at: 1))) }) {
                update(group) { $0.casesAccepted = count }
            }
            for (group, completed, onTime, average, fees) in try store.rows("""
                SELECT \(completedGroup), count(*), sum(overdue = 0), avg(days_used), sum(fees_fen) FROM sv_case
                WHERE completed_at IS NOT NULL GROUP BY 1
                """, [], { row in
                (row.text(at: 0), Int(row.int(at: 1)), Int(row.int(at: 2)),
                 number(row.value(at: 3)),
                 row.int(at: 4))
            }) {
                update(group) {
                    $0.casesCompleted = completed
                    $0.completedOnTime = onTime
                    $0.onTimeRate = FourDecimalRate(numerator: onTime, denominator: completed).description
                    $0.averageWorkingDays = average.map { ($0 * 100).rounded() / 100 }
                    $0.feesCollected = Money(fen: fees).description
                }
            }
            let alertSQL: String
            switch grouping {
            case .dept: alertSQL = "SELECT dept, level, count(*) FROM sv_alert WHERE rule <> 'XK08' GROUP BY 1, 2"
            case .item:
                alertSQL = """
                    SELECT coalesce(c.item, '-'), a.level, count(*) FROM sv_alert a
                    LEFT JOIN sv_case c ON a.subject_type = 'case' AND c.case_no = a.subject_key
                    WHERE a.rule <> 'XK08' GROUP BY 1, 2
                    """
            case .period: alertSQL = "SELECT \(month("raised_at")), level, count(*) FROM sv_alert WHERE rule <> 'XK08' GROUP BY 1, 2"
            }
            for (group, level, count) in try store.rows(alertSQL, [], { ($0.text(at: 0), $0.text(at: 1), Int($0.int(at: 2))) }) {
                update(group) { row in
                    switch AlertLevel(rawValue: level) {
                    case .prompt?: row.prompts += count
                    case .yellow?: row.yellowCards += count
                    case .red?: row.redCards += count
                    case nil: break
                    }
                }
            }
            return rows.values.sorted { $0.group < $1.group }
        }
    }
}

private func number(_ value: SQLiteValue) -> Double? {
    switch value {
    case .real(let number): return number
    case .integer(let number): return Double(number)
    default: return nil
    }
}

/// Records with the same time are listed in the order a case lives them (Application before Acceptance).
private func lifeOrder(_ type: String) -> Int {
    let order = ["Application", "Acceptance", "SupplementNotice", "SupplementReceipt", "Step", "SpecialStart", "SpecialEnd",
                 "Completion", "Fee", "Levy", "PenaltyCase", "PenaltyStep", "Evaluation", "Complaint", "Camera"]
    return order.firstIndex(of: type) ?? order.count
}
