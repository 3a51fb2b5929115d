import Foundation
import GatewayModel
@testable import GatewayRuntime
import Journal
import Synchronization
import Testing

/// Log lines kept for a test to look at.
private final class CapturedLog: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func write(_ severity: LogSeverity, _ message: String) { lock.withLock { lines.append(message) } }
    func contains(_ text: String) -> Bool { lock.withLock { lines.contains { $0.contains(text) } } }
    var text: String { lock.withLock { lines.joined(separator: "\n") } }
}

@Suite struct SupervisionStartTests {

    /// Supervision that cannot open the journal at start (a full disk; here a journal moved away) tries again
    /// instead of stopping for the rest of the run.
    @Test func supervisionStartsOnceTheJournalCanBeOpened() async throws {
        let workspace = try Workspace()
        try workspace.generate("cases.csv", rows: 20)
        let configuration = try workspace.gateway().configuration
        _ = try Gateway(configuration: configuration, logger: .silent).runOnce()
        let journalPath = configuration.gateway.journalPath
        try FileManager.default.moveItem(atPath: journalPath, toPath: journalPath + ".away")
        let log = CapturedLog()
        let gateway = Gateway(configuration: configuration, logger: Logger(component: "test", minimum: .error, handler: log))
        let ended = Mutex(false)
        let loop = Task {
            defer { ended.withLock { $0 = true } }
            try await gateway.supervisionLoop(maximumTick: .milliseconds(20))
        }
        defer { loop.cancel() }
        // Generous limits, not timings: a full test run on two cores makes the first pass slow.
        var deadline = Date().addingTimeInterval(120)
        while !log.contains("supervision cannot start"), !ended.withLock({ $0 }), Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(!ended.withLock { $0 }, "the loop must not end when the journal cannot be opened")
        try FileManager.default.moveItem(atPath: journalPath + ".away", toPath: journalPath)
        let journal = try Journal(path: journalPath)
        deadline = Date().addingTimeInterval(120)
        while try journal.cursor("supervision") == 0, !ended.withLock({ $0 }), Date() < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(try journal.cursor("supervision") > 0, "\(log.text)")
    }
}
