// Benchmark of the supervision engine over many open approval cases (docs/monitoring.md, "Benchmark").
//
//   monitoring-bench [--cases N] [--dir PATH] [--keep]
//
// Generates N accepted, never-completed cases (one Acceptance each, PromisedLimit 1..100 working days, all accepted
// on Mon 2026-03-02, so each deadline date holds ~1% of the cases), then measures:
//   1. appending the records to the journal;
//   2. the first pass (consume every record, evaluate every case once, arm the timers);
//   3. opening the engine again (what a restart costs: the state is on disk, nothing is rebuilt in memory);
//   4. a tick with nothing due (median of 5);
//   5. a tick when ~1% of the cases reach 00:00 of their deadline date (XK01 raised for each);
// and prints the peak RSS.

import Foundation
import GatewayModel
import Journal
import Monitoring
import Supervision

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
}

func argument(_ name: String) -> String? {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: "--" + name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

func peakResidentMegabytes() -> String {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return "?" }
    let kilobytes = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
    return String(format: "%.0f MB", Double(kilobytes) / 1024)
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = Date()
    try body()
    return Date().timeIntervalSince(start)
}

final class Clock: @unchecked Sendable {
    var now: BeijingTime
    init(_ now: BeijingTime) { self.now = now }
}

func run() throws {
    let cases = Int(argument("cases") ?? "") ?? 1_000_000
    let directory = argument("dir") ?? "bench-work/monitoring"
    try? FileManager.default.removeItem(atPath: directory)
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let path = directory + "/journal.sqlite"

    let accepted = try BeijingTime(parsing: "2026-03-02T09:00:00+08:00")
    let clock = Clock(accepted.adding(hours: 1))
    let ingestedAt = Date(timeIntervalSince1970: Double(accepted.adding(hours: 1).millisecondsSinceEpoch) / 1000)
    let schema = try PUISchema.shipped()
    // A plain Monday-Friday calendar is enough for timing; no catalog.
    let reference = ReferenceData(version: "bench", calendar: try WorkingCalendar(firstYear: 2026, lastYear: 2027, days: []),
                                  catalog: ItemCatalog(items: []))
    print("monitoring-bench: \(cases) open cases in \(path)")

    var journal = try Journal(path: path, durable: true, now: { ingestedAt })
    let appendTime = try seconds {
        var index = 0
        while index < cases {
            try journal.begin()
            for _ in 0..<min(10_000, cases - index) {
                var draft = DraftRecord(type: "Acceptance")
                draft["CaseNo"] = "B\(index)"
                draft["DeptCode"] = "41010300\(1 + index % 7)"
                draft["Decision"] = "1"
                draft["Handler.Name"] = "bench"
                draft["AcceptedAt"] = accepted.description
                draft["PromisedLimit"] = String(1 + index % 100)
                draft["PromisedUnit"] = "W"
                draft["LegalLimit"] = "200"
                draft["LegalUnit"] = "W"
                guard case .success(let record) = schema.normalize(draft) else { throw BenchFailure(description: "invalid draft") }
                _ = try journal.append(record, source: "bench", origin: nil, line: index)
                index += 1
            }
            try journal.commit()
        }
    }
    print(String(format: "append %d Acceptance records: %.1f s", cases, appendTime))

    var engine = try SupervisionEngine(journal: journal, reference: reference, schema: schema, now: { clock.now })
    var first = PassSummary()
    let firstTime = try seconds { first = try engine.runPass() }
    print(String(format: "first pass (consume + evaluate every case): %.1f s, %d evaluated, %d alerts", firstTime, first.evaluated, first.alertsRaised))

    let reopenTime = try seconds {
        journal = try Journal(path: path, durable: true, now: { ingestedAt })
        engine = try SupervisionEngine(journal: journal, reference: reference, schema: schema, now: { clock.now })
    }
    print(String(format: "restart (open journal + engine): %.3f s; %d subjects in the timer index", reopenTime, try engine.scheduledCount()))

    var idle: [Double] = []
    for minute in 1...5 {
        clock.now = accepted.adding(hours: 2).adding(minutes: minute)
        idle.append(try seconds { _ = try engine.runPass() })
    }
    print(String(format: "tick, nothing due (median of 5): %.4f s", idle.sorted()[2]))

    // The L = 1 group: deadline date Tue 03-03, XK01 at 2026-03-03T00:00.
    clock.now = try BeijingTime(parsing: "2026-03-03T00:00:30+08:00")
    var due = PassSummary()
    let dueTime = try seconds { due = try engine.runPass() }
    print(String(format: "tick, %d due (%.2f%%): %.2f s, %d alerts raised", due.evaluated,
                 100 * Double(due.evaluated) / Double(max(cases, 1)), dueTime, due.alertsRaised))
    print("peak RSS: \(peakResidentMegabytes())")
    if !CommandLine.arguments.contains("--keep") { try? FileManager.default.removeItem(atPath: directory) }
}

do {
    try run()
} catch {
    FileHandle.standardError.write(Data("monitoring-bench: \(error)\n".utf8))
    exit(1)
}
