// Commands of the supervision bureau and the departments: alerts and their correction workflow, monthly scores,
// statistics. Registered in `commandTable` (Commands.swift) through `monitoringCommandTable`.

import Foundation
import Journal
import Monitoring
import Supervision
import TextSupport

private let configOption = OptionSpec.value("config", "file", "gateway.yaml to use (default: $ESGATE_CONFIG, else ./gateway.yaml).")
private let jsonOption = OptionSpec.flag("json", "Print machine-readable JSON.")
private let alertActionOptions: [OptionSpec] = [
    configOption,
    .value("by", "who", "Who acts (kept in the audit log). Required."),
    .value("explanation", "text", "The department's explanation (required for ack; a note for correct and close)."),
    .value("note", "text", "Same as --explanation."),
    jsonOption,
]
private let alertIdArgument = [(name: "id", help: "The AlertId, e.g. XK02-3f1c…")]

private let alertListOptions: [OptionSpec] = [
    configOption, .value("level", "P|Y|R", "Only this level."), .value("dept", "code", "Only this department."),
    .value("state", "state", "Only this state: OPEN, ACKED, CORRECTED, CLOSED, RESOLVED."),
    .value("limit", "n", "At most this many alerts, newest first (default 200)."), jsonOption,
]

/// The supervision commands, with `alerts …` and `scores` accepted as the issue spells them.
let monitoringCommandTable: [CommandSpec] = {
    var table: [CommandSpec] = [
        CommandSpec(path: ["alert", "list"], abstract: "List alerts by level, department and state, newest first.",
                    options: alertListOptions),
        CommandSpec(path: ["alert", "show"], abstract: "Show an alert: why it fired, its audit trail and the case's timeline.",
                    options: [configOption, jsonOption], positionals: alertIdArgument),
        CommandSpec(path: ["alert", "ack"], abstract: "Record the department's explanation (OPEN → ACKED).",
                    options: alertActionOptions, positionals: alertIdArgument),
        CommandSpec(path: ["alert", "correct"], abstract: "Record that the correction is done (ACKED → CORRECTED).",
                    options: alertActionOptions, positionals: alertIdArgument),
        CommandSpec(path: ["alert", "close"], abstract: "Close the alert (supervision bureau; CORRECTED → CLOSED).",
                    options: alertActionOptions, positionals: alertIdArgument),
        CommandSpec(path: ["score", "list"], abstract: "Monthly scores and grades per department (pui-v1.md section 7).",
                    options: [configOption, .value("period", "YYYY-MM", "Only this month."), jsonOption]),
        CommandSpec(path: ["stats"], abstract: "Bulletin statistics: cases, on-time rate, working days, alerts, fees.",
                    discussion: "Each figure counts by the month of its own event (acceptance, completion, raising). XK08 late reports are not counted as alerts here.",
                    options: [configOption, .value("by", "dept|item|period", "Grouping (default dept)."), jsonOption]),
    ]
    let aliases = table.filter { $0.path.first == "alert" }.map { spec in
        CommandSpec(path: ["alerts"] + spec.path.dropFirst(), abstract: "Same as 'esgate \(spec.path.joined(separator: " "))'.",
                    options: spec.options.filter { $0.name != "help" }, positionals: spec.positionals)
    }
    table += aliases
    table.append(CommandSpec(path: ["scores"], abstract: "Same as 'esgate score list'.",
                             options: [configOption, .value("period", "YYYY-MM", "Only this month."), jsonOption]))
    return table
}()

private func masked(_ text: String) -> String { Redaction.maskIdentityNumbers(in: text) }

/// Runs a supervision command; nil when `path` is not one of them.
func executeMonitoringCommand(_ path: [String], _ options: ParsedOptions) throws -> Int32? {
    var path = path
    if path.first == "alerts" { path[0] = "alert" }
    if path == ["scores"] { path = ["score", "list"] }
    guard monitoringCommandTable.contains(where: { $0.path == path }) else { return nil }

    // Listing and showing never connect to a source: like status, they need no secret from the environment.
    let readOnly = path == ["alert", "list"] || path == ["alert", "show"] || path == ["score", "list"] || path == ["stats"]
    guard let loaded = loadOrReport(options, readOnly: readOnly) else { return ExitCode.failure.rawValue }
    let gateway = Gateway(configuration: loaded, logger: .silent)
    let engine = try gateway.makeSupervisionEngine(journal: try gateway.openJournal())
    let json = options.flag("json")

    switch path {
    case ["alert", "list"]:
        let rows = try engine.alerts(AlertFilter(level: options.value("level"), dept: options.value("dept"),
                                                 state: options.value("state"), limit: try options.integer("limit", default: 200)))
        if json { writeJSON(rows); return 0 }
        if rows.isEmpty { write("no alerts"); return 0 }
        for row in rows {
            write("\(row.alertId)  \(row.level) \(row.rule) \(row.state.padding(toLength: 9, withPad: " ", startingAt: 0)) dept \(row.deptCode)  \(row.subjectType) \(masked(row.subjectKey))  raised \(row.raisedAt)\(row.responseDue.map { "  due \($0)" } ?? "")")
        }
        write("\(rows.count) alert(s)")
        return 0

    case ["alert", "show"]:
        guard let id = options.positional.first else { throw UsageError("the alert id is required") }
        let detail = try engine.alertDetail(id)
        if json { writeJSON(detail); return 0 }
        let alert = detail.alert
        var text = """
            \(alert.alertId)  rule \(alert.rule), level \(alert.level), rev \(alert.rev)
              subject:     \(alert.subjectType) \(masked(alert.subjectKey)) (department \(alert.deptCode))
              raised:      \(alert.raisedAt)\(alert.responseDue.map { ", response due \($0)" } ?? "")
              state:       \(alert.state) since \(alert.stateAt)
              why:         \(masked(alert.detail))

            """
        if let explanation = alert.explanation { text += "  explanation: \(masked(explanation))\n" }
        text += "\naudit trail:\n"
        for entry in detail.audit {
            text += "  \(entry.at)  \(entry.action.padding(toLength: 8, withPad: " ", startingAt: 0)) by \(entry.actor): \(entry.fromState ?? "-") → \(entry.toState) (rev \(entry.rev))\(entry.note.map { "  \"\(masked($0))\"" } ?? "")\n"
        }
        text += "\ntimeline of \(detail.subject):\n"
        for record in detail.timeline {
            let fields = record.fields.filter { !$0.key.hasSuffix("At") }.sorted { $0.key < $1.key }
                .map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            text += "  \(record.at ?? "?")  \(record.recordType.padding(toLength: 17, withPad: " ", startingAt: 0)) rev \(record.rev)  \(masked(fields))  (first seen \(record.firstSeenAt))\n"
        }
        write(text)
        return 0

    case ["alert", "ack"], ["alert", "correct"], ["alert", "close"]:
        guard let id = options.positional.first else { throw UsageError("the alert id is required") }
        guard let actor = options.value("by") else { throw UsageError("--by <who> is required") }
        let note = options.value("explanation") ?? options.value("note")
        let action: AlertAction
        switch path[1] {
        case "ack":
            guard let note else { throw UsageError("ack needs --explanation <text>") }
            action = .acknowledge(explanation: note)
        case "correct": action = .markCorrected
        default: action = .close
        }
        let record = try engine.act(on: id, action, by: actor, note: note)
        if json {
            writeJSON(["alertId": record.id.rawValue, "state": record.state.rawValue, "stateAt": record.stateAt.description,
                            "rev": String(record.revision)])
        } else {
            write("\(record.id): \(record.state.rawValue) at \(record.stateAt) (rev \(record.revision)), by \(actor)")
        }
        return 0

    case ["score", "list"]:
        if let period = options.value("period"), (try? Period(parsing: period)) == nil {
            throw UsageError("--period expects YYYY-MM, got '\(period)'")
        }
        let rows = try engine.scores(period: options.value("period"))
        if json { writeJSON(rows); return 0 }
        if rows.isEmpty { write("no scores"); return 0 }
        write("period   dept       total grade completed on-time early  rate    P  Y  R  late compl. evals satisf. rev")
        for row in rows {
            let cells: [String] = [
                row.period, row.deptCode.padding(toLength: 10, withPad: " ", startingAt: 0),
                String(row.total).leftPadded(5), row.grade.leftPadded(5), String(row.casesCompleted).leftPadded(9),
                String(row.completedOnTime).leftPadded(7), String(row.completedEarly).leftPadded(5), row.onTimeRate,
                String(row.prompts).leftPadded(2), String(row.yellowCards).leftPadded(2), String(row.redCards).leftPadded(2),
                String(row.lateReports).leftPadded(5), String(row.complaintsSubstantiated).leftPadded(6),
                String(row.evaluations).leftPadded(5), row.satisfactionRate.leftPadded(8), String(row.rev).leftPadded(3),
            ]
            write(cells.joined(separator: " "))
        }
        return 0

    case ["stats"]:
        let byText = options.value("by") ?? "dept"
        guard let grouping = StatisticsGrouping(rawValue: byText) else { throw UsageError("--by must be dept, item or period") }
        let rows = try engine.statistics(by: grouping)
        if json { writeJSON(rows); return 0 }
        if rows.isEmpty { write("no cases yet"); return 0 }
        write("\(byText.padding(toLength: 10, withPad: " ", startingAt: 0)) accepted completed on-time  rate   avg-wd     P     Y     R  fees")
        for row in rows {
            let average = row.averageWorkingDays.map { String(format: "%.2f", $0) } ?? "-"
            write([row.group.padding(toLength: 10, withPad: " ", startingAt: 0), String(row.casesAccepted).leftPadded(8),
                    String(row.casesCompleted).leftPadded(9), String(row.completedOnTime).leftPadded(7), row.onTimeRate,
                    average.leftPadded(6), String(row.prompts).leftPadded(5), String(row.yellowCards).leftPadded(5),
                    String(row.redCards).leftPadded(5), row.feesCollected].joined(separator: " "))
        }
        return 0

    default:
        return nil
    }
}

private extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
