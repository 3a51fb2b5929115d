import Foundation
import Testing

@Suite struct CrashRecoveryTests {
    /// Runs `esgate run --once` in the workspace; kills it with SIGKILL once the journal shows `killAfterRows`
    /// committed rows, or lets it finish when nil. Returns true if it was killed.
    private func runGateway(_ workspace: Workspace, killAfterRows: Int64?) async throws -> Bool {
        let process = Process()
        process.executableURL = try esgateBinary()
        process.arguments = ["run", "--once", "--config", workspace.configPath]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var killed = false
        let deadline = Date().addingTimeInterval(600)
        while process.isRunning && Date() < deadline {
            if let threshold = killAfterRows, !killed,
               let rows = try? workspace.scalar("SELECT coalesce(sum(rows), 0) FROM files"), rows >= threshold {
                kill(process.processIdentifier, SIGKILL)
                killed = true
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return killed
    }

    @Test(.timeLimit(.minutes(10)))
    func killDashNineDuringALargeFileLosesAndDuplicatesNothing() async throws {
        let rows = 200_000
        // Reference: the same file ingested without interruption.
        let reference = try Workspace(batchRows: 2000)
        let file = try reference.generate("big.csv", rows: rows)
        let crashed = try Workspace(batchRows: 2000)
        try FileManager.default.copyItem(at: file, to: crashed.drop.appendingPathComponent("big.csv"))
        #expect(try await runGateway(reference, killAfterRows: nil) == false)

        #expect(try await runGateway(crashed, killAfterRows: 40_000), "the gateway was killed mid-file")
        let committed = try crashed.scalar("SELECT rows FROM files")
        #expect(committed >= 40_000 && committed < Int64(rows), "killed in the middle: \(committed) rows committed")
        #expect(crashed.names(in: crashed.drop).contains("big.csv"), "an unfinished file stays in the drop folder")

        #expect(try await runGateway(crashed, killAfterRows: nil) == false)
        #expect(try crashed.scalar("SELECT rows FROM files") == Int64(rows), "every row counted exactly once")
        #expect(try crashed.scalar("SELECT count(*) FROM quarantine") == 0)
        let expected = try reference.journalDigest()
        let actual = try crashed.journalDigest()
        #expect(actual.records == expected.records)
        #expect(actual.digest == expected.digest)
        #expect(try crashed.scalar("SELECT max(rev) FROM records WHERE source = 'drop'") == 1, "no record was re-stored as a new revision")
        #expect(crashed.names(in: crashed.archive) == ["big.csv"])
    }

    /// The same with bad rows, blank lines and multi-line rows spread over the chunks of both preparers: after
    /// the resumed run every row is stored or quarantined exactly once, in file order.
    @Test(.timeLimit(.minutes(10)))
    func killDashNineDuringAMixedFileResumesWithEveryRowOnce() async throws {
        let file = try MixedFile(rows: 60_000)
        let reference = try Workspace(batchRows: 500, encoding: "gb18030")
        try file.write(to: reference.drop.appendingPathComponent("mixed.csv"))
        let crashed = try Workspace(batchRows: 500, encoding: "gb18030")
        try file.write(to: crashed.drop.appendingPathComponent("mixed.csv"))
        #expect(try await runGateway(reference, killAfterRows: nil) == false)

        #expect(try await runGateway(crashed, killAfterRows: 15_000), "the gateway was killed mid-file")
        let committed = try crashed.scalar("SELECT rows FROM files")
        #expect(committed >= 15_000 && committed < Int64(file.rows.count), "killed in the middle: \(committed) rows committed")

        #expect(try await runGateway(crashed, killAfterRows: nil) == false)
        #expect(try crashed.scalar("SELECT rows FROM files") == Int64(file.rows.count), "every row counted exactly once")
        #expect(try crashed.scalar("SELECT offset FROM files") == Int64(file.bytes.count))
        let outcome = try MixedFileOutcome(journalPath: crashed.journalPath)
        outcome.check(against: file)
        #expect(outcome == (try MixedFileOutcome(journalPath: reference.journalPath)))
        #expect(try crashed.journalDigest() == (try reference.journalDigest()))
        #expect(crashed.names(in: crashed.archive) == ["mixed.csv"])
    }
}
