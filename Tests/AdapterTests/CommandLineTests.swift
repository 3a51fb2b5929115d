import Foundation
import SQLiteSupport
import Testing

/// Runs the esgate binary; returns exit code, standard output and standard error. Waits with Task.sleep, not by
/// blocking a thread: Swift Testing runs tests on the small cooperative pool, and a blocked thread starves others.
func esgate(_ arguments: [String], environment: [String: String] = [:]) async throws -> (code: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = try esgateBinary()
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { _, new in new }
    process.environment = env
    let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-out-\(UUID().uuidString)")
    let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-err-\(UUID().uuidString)")
    FileManager.default.createFile(atPath: outURL.path, contents: nil)
    FileManager.default.createFile(atPath: errURL.path, contents: nil)
    defer {
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
    }
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    try process.run()
    try await waitForExit(process, timeout: 600)
    return (process.terminationStatus, try String(contentsOf: outURL, encoding: .utf8), try String(contentsOf: errURL, encoding: .utf8))
}

/// Polls until the process exits; SIGKILLs it after `timeout` seconds.
func waitForExit(_ process: Process, timeout: TimeInterval) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning {
        if Date() > deadline { kill(process.processIdentifier, SIGKILL) }
        try await Task.sleep(for: .milliseconds(20))
    }
    process.waitUntilExit()
}

@Suite struct CommandLineTests {
    @Test func helpIsEverywhereAndUsageErrorsExitWithTwo() async throws {
        let top = try await esgate(["--help"])
        #expect(top.code == 0)
        #expect(top.out.contains("quarantine replay"))
        for command in [["run"], ["config", "check"], ["mapping", "test"], ["journal", "stats"], ["journal", "list"],
                        ["quarantine", "list"], ["quarantine", "replay"], ["version"]] {
            let help = try await esgate(command + ["--help"])
            #expect(help.code == 0, "\(command)")
            #expect(help.out.contains("USAGE: esgate \(command.joined(separator: " "))"))
        }
        #expect(try await esgate(["run", "--fast"]).code == 2)
        #expect(try await esgate(["frobnicate"]).code == 2)
        #expect(try await esgate(["mapping", "test", "--rows"]).code == 2)
        #expect(try await esgate(["version", "--json"]).out.contains("\"version\""))
    }

    /// Status commands fill in only a secret their shell lacks: an unset variable in a path (here the state
    /// directory) is still an error, and no journal is made under a placeholder's name and shown empty.
    @Test func statusNeedsTheVariablesOfPaths() async throws {
        let workspace = try Workspace()
        try workspace.write("gateway.yaml", "district: \"410103\"\nstate_dir: ${ESGATE_TEST_UNSET_STATE}\nsupervision: false\n")
        for command in [["status"], ["journal", "stats"], ["quarantine", "list"], ["deadletter", "list"]] {
            let result = try await esgate(command + ["--config", workspace.configPath])
            #expect(result.code == 1 && result.err.contains("environment variable ESGATE_TEST_UNSET_STATE is not set"), "\(command): \(result.out)\(result.err)")
        }
        let made = try FileManager.default.contentsOfDirectory(atPath: workspace.root.path)
        #expect(!made.contains { $0.contains("not set") }, "\(made)")
    }

    @Test func configCheckListsEveryErrorWithFileAndLine() async throws {
        let workspace = try Workspace()
        try workspace.write("gateway.yaml", "district: \"410103\"\nstate_dir: state\nlog_lvl: info\n")
        try workspace.write("adapters/drop.yaml", "kind: csv-drop\nmapping: no-such-mapping\ncsv:\n  folder: ../drop\n  ready: soon\n")
        let result = try await esgate(["config", "check", "--config", workspace.configPath])
        #expect(result.code == 1)
        #expect(result.out.contains("gateway.yaml:3: log_lvl: unknown key"))
        #expect(result.out.contains("drop.yaml:5: csv.ready: 'soon' is not one of"))
        #expect(result.out.contains("drop.yaml:2: mapping: no mapping named 'no-such-mapping'"))
        let json = try await esgate(["config", "check", "--json", "--config", workspace.configPath])
        let report = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any]
        #expect(report?["ok"] as? Bool == false)
        #expect((report?["errors"] as? [String])?.count == 3)
        try workspace.write("gateway.yaml", "district: \"410103\"\nstate_dir: state\n")
        try workspace.write("adapters/drop.yaml", "kind: csv-drop\nmapping: gen-cases\ncsv:\n  folder: ../drop\n")
        #expect(try await esgate(["config", "check", "--config", workspace.configPath]).code == 0)
    }

    @Test func mappingTestPrintsRecordsAndErrorsWithIdentityNumbersMasked() async throws {
        let workspace = try Workspace()
        let file = workspace.root.appendingPathComponent("sample.csv")
        try runGenerator(["--rows", "12", "--out", file.path])
        let result = try await esgate(["mapping", "test", "--config", workspace.configPath, "--mapping", "gen-cases",
                                 "--file", file.path, "--rows", "5"])
        #expect(result.code == 0, "\(result.err)")
        #expect(result.out.contains("<Application><CaseNo>"))
        #expect(result.out.contains("<IdNumber>410103********"))
        let digitsOnly = result.out.range(of: #"<IdNumber>\d{17}[\dX]</IdNumber>"#, options: .regularExpression)
        #expect(digitsOnly == nil, "no identity number in clear")
        #expect(result.out.contains("5 row(s) read"))
        #expect(!FileManager.default.fileExists(atPath: workspace.journalPath), "mapping test writes nothing")
    }

    @Test func runOnceThenStatsAndQuarantineAsJSON() async throws {
        let workspace = try Workspace()
        try workspace.generate("a.csv", rows: 300)
        try workspace.write("drop/b.csv", "办件编号,事项编码,事项名称,部门编码,部门名称,申请人,证件号码,环节代码,环节名称,办理人,办理时间,承诺时限,法定时限,收费金额,备注\n"
                            + "C9,XK0001,x,410103001,x,王伟,410103199001011230,77,x,李娜,2026-01-05 08:37:00,1,2,,\n")
        let run = try await esgate(["run", "--once", "--json", "--config", workspace.configPath])
        #expect(run.code == 0, "\(run.err)")
        let stats = try await esgate(["journal", "stats", "--json", "--config", workspace.configPath])
        let parsed = try JSONSerialization.jsonObject(with: Data(stats.out.utf8)) as? [String: Any]
        #expect((parsed?["records"] as? Int ?? 0) > 300)
        // Bodies are stored compact; the list prints them as XML, identity numbers masked, by type and after a seq.
        let records = try await esgate(["journal", "list", "--json", "--type", "Application", "--after", "1", "--limit", "3",
                                        "--config", workspace.configPath])
        #expect(records.code == 0, "\(records.err)")
        let listed = try JSONSerialization.jsonObject(with: Data(records.out.utf8)) as? [[String: Any]] ?? []
        #expect(listed.count == 3)
        #expect(listed.allSatisfy { $0["type"] as? String == "Application" && ($0["seq"] as? Int ?? 0) > 1 })
        #expect(listed.allSatisfy { ($0["xml"] as? String ?? "").hasPrefix("<Application><CaseNo>") })
        #expect(records.out.contains("<IdNumber>410103********"))
        #expect(records.out.range(of: #"<IdNumber>\d{17}[\dX]</IdNumber>"#, options: .regularExpression) == nil)
        let text = try await esgate(["journal", "list", "--limit", "1", "--config", workspace.configPath])
        #expect(text.out.hasPrefix("#1 Application "), "\(text.out)")
        #expect(text.out.hasSuffix("(the first 1 record(s); --after 1 for the next ones)\n"), "\(text.out)")
        // A key of several fields reads as they are, not with the journal's U+001F between them.
        let step = try await esgate(["journal", "list", "--type", "Step", "--limit", "1", "--config", workspace.configPath])
        #expect(step.out.range(of: #"^#\d+ Step \d+ / 0\d / 2026-"#, options: .regularExpression) != nil && !step.out.contains("\u{1F}"),
                "\(step.out)")
        let all = try await esgate(["journal", "list", "--limit", "100000", "--config", workspace.configPath])
        #expect(!all.out.contains("(the first"), "every record listed: no note about more")
        // The one quarantined row, listed with --limit 1: nothing more to list.
        let one = try await esgate(["quarantine", "list", "--limit", "1", "--config", workspace.configPath])
        #expect(one.out.hasPrefix("#1 [open]") && !one.out.contains("(the first"), "\(one.out)")
        let list = try await esgate(["quarantine", "list", "--json", "--config", workspace.configPath])
        #expect(list.out.contains("\"stage\" : \"map\""))
        #expect(list.out.contains("410103********1230"))
        #expect(!list.out.contains("410103199001011230"))
        let replay = try await esgate(["quarantine", "replay", "--config", workspace.configPath])
        #expect(replay.code == 1, "the unknown step code still fails")
    }

    /// `esgate run` on `workspace`, in the background (the caller stops it).
    func startGateway(_ workspace: Workspace) throws -> Process {
        let process = Process()
        process.executableURL = try esgateBinary()
        process.arguments = ["run", "--config", workspace.configPath]
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// An operator edits gateway.yaml or an adapter while `esgate run` runs: the gateway goes on with what it read
    /// at its start, and `status` says so instead of showing the edited files as if they ran.
    @Test func statusSaysWhenTheConfigurationChangedAfterTheRunningGatewayStarted() async throws {
        let workspace = try Workspace()
        let process = try startGateway(workspace)
        defer {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let lock = workspace.root.appendingPathComponent("state/esgate.lock").path
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline, !((try? String(contentsOfFile: lock, encoding: .utf8)) ?? "").contains("pid \(process.processIdentifier)") {
            try await Task.sleep(for: .milliseconds(100))
        }
        try #require(process.isRunning, "the gateway started and holds its lock")
        let before = try await esgate(["status", "--json", "--config", workspace.configPath])
        #expect(!before.out.contains("configurationNotice"), "\(before.out)")
        // No receiver configured: the key is there all the same, null.
        let parsed = try JSONSerialization.jsonObject(with: Data(before.out.utf8)) as? [String: Any]
        #expect(parsed?["uplink"] is NSNull && parsed?["adapters"] is [Any], "\(before.out)")
        // While esgate run runs, polls are due: once its first poll is done, status says when the next one is.
        var row: [String: Any]?
        for _ in 0..<300 {
            let status = try await esgate(["adapter", "status", "--json", "--config", workspace.configPath])
            row = (try JSONSerialization.jsonObject(with: Data(status.out.utf8)) as? [[String: Any]])?.first
            if row?["nextPollDue"] != nil { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(row?["gatewayRunning"] as? Bool == true && row?["nextPollDue"] is String && row?["pollOverdue"] as? Bool == false,
                "\(row.map { "\($0)" } ?? "no status")")
        // Edited after the start: a second later by its modification time.
        let adapter = workspace.root.appendingPathComponent("adapters/drop.yaml").path
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(2)], ofItemAtPath: adapter)
        let after = try await esgate(["status", "--json", "--config", workspace.configPath])
        #expect(after.out.contains("configurationNotice") && after.out.contains("drop.yaml") && after.out.contains("restart esgate"), "\(after.out)")
        let text = try await esgate(["adapter", "status", "--config", workspace.configPath])
        #expect(text.err.contains("warning: the running gateway (pid \(process.processIdentifier), esgate run"), "\(text.err)")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let stopped = try await esgate(["status", "--json", "--config", workspace.configPath])
        #expect(!stopped.out.contains("configurationNotice"), "no gateway runs: nothing to restart")
    }

    @Test func runWatchesTheFolderUntilStopped() async throws {
        let workspace = try Workspace()
        let process = try startGateway(workspace)
        defer {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try await Task.sleep(for: .milliseconds(500))
        try workspace.generate("late.csv.part", rows: 50)
        try FileManager.default.moveItem(at: workspace.drop.appendingPathComponent("late.csv.part"),
                                         to: workspace.drop.appendingPathComponent("late.csv"))
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && !workspace.names(in: workspace.archive).contains("late.csv") {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(workspace.names(in: workspace.archive).contains("late.csv"))
        #expect(process.isRunning, "the gateway keeps watching")
    }

    /// One gateway per state directory: a second `run` (or an `uplink run`) next to a running one would poll and
    /// push everything twice. It is refused, naming the holder; read-only commands still work; once the first
    /// gateway is gone (even by kill -9, the kernel drops its lock) the state directory is free again.
    @Test func aSecondGatewayOnTheSameStateDirectoryIsRefused() async throws {
        let workspace = try Workspace()
        let process = try startGateway(workspace)
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        let lockFile = workspace.root.appendingPathComponent("state/esgate.lock").path
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !((try? String(contentsOfFile: lockFile, encoding: .utf8)) ?? "").contains("pid \(process.processIdentifier)") {
            try await Task.sleep(for: .milliseconds(50))
        }
        for command in [["run", "--once"], ["uplink", "run", "--once"]] {
            let second = try await esgate(command + ["--config", workspace.configPath])
            #expect(second.code == 1, "\(command): \(second.out) \(second.err)")
            #expect(second.err.contains("another esgate is already running") && second.err.contains("pid \(process.processIdentifier), esgate run"),
                    "\(command): \(second.err)")
        }
        #expect(try await esgate(["journal", "stats", "--config", workspace.configPath]).code == 0)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try workspace.generate("after.csv", rows: 5)
        let after = try await esgate(["run", "--once", "--config", workspace.configPath])
        #expect(after.code == 0, "\(after.out) \(after.err)")
    }

    /// A supervision pass that fails (here: its table damaged) fails the run, but does not hide what was ingested
    /// nor stop the push that follows.
    @Test func runOnceWithAFailingSupervisionPassStillReportsTheIngestAndExitsOne() async throws {
        let workspace = try Workspace()
        try workspace.generate("first.csv", rows: 5)
        #expect(try await esgate(["run", "--once", "--config", workspace.configPath]).code == 0)
        try SQLiteDatabase(path: workspace.journalPath).execute("DROP TABLE sv_record; CREATE TABLE sv_record(x)")
        try workspace.generate("second.csv", rows: 7)
        let run = try await esgate(["run", "--once", "--config", workspace.configPath])
        #expect(run.code == 1, "\(run.out) \(run.err)")
        #expect(run.out.contains("second.csv: ingested 7 rows") && run.out.contains("supervision: error: "), "\(run.out)")
        #expect(run.out.contains("failed: the supervision pass failed"), "\(run.out)")
    }

    @Test func adapterStatusShowsHealthLastErrorAndQuarantine() async throws {
        let workspace = try Workspace()
        try workspace.generate("good.csv", rows: 20)
        #expect(try await esgate(["run", "--once", "--config", workspace.configPath]).code == 0)
        let healthy = try await esgate(["adapter", "status", "--config", workspace.configPath])
        #expect(healthy.code == 0)
        #expect(healthy.out.contains("drop (csv-drop) → mapping gen-cases"))
        #expect(!healthy.out.contains("last error"))
        #expect(healthy.out.contains("rows read: 20 by the last poll, 20 in all"), "\(healthy.out)")
        // After run --once no gateway runs: no poll is due, and none is late, however long ago the last was.
        #expect(healthy.out.contains("esgate run is not running: no poll is due") && !healthy.out.contains("next poll due"), "\(healthy.out)")
        let stale = Int64((Date().timeIntervalSince1970 - 600) * 1000)
        try SQLiteDatabase(path: workspace.journalPath).execute("UPDATE adapter_health SET last_poll_at = \(stale)")
        let quiet = try await esgate(["adapter", "status", "--json", "--config", workspace.configPath])
        let quietRows = try JSONSerialization.jsonObject(with: Data(quiet.out.utf8)) as? [[String: Any]]
        #expect(quietRows?.first?["pollOverdue"] as? Bool == false && quietRows?.first?["gatewayRunning"] as? Bool == false
                && quietRows?.first?["nextPollDue"] == nil, "\(quiet.out)")
        try workspace.write("drop/broken.csv", "a,b\n1,2\n")
        let rejected = try await esgate(["run", "--once", "--config", workspace.configPath])
        #expect(rejected.code == 1 && rejected.out.contains("failed: 1 file(s) rejected"), "a file refused whole fails the run: \(rejected.out)")
        let failing = try await esgate(["adapter", "status", "--json", "--config", workspace.configPath])
        #expect(failing.code == 1, "an adapter whose last poll failed makes status exit 1")
        let rows = try JSONSerialization.jsonObject(with: Data(failing.out.utf8)) as? [[String: Any]]
        let health = rows?.first?["health"] as? [String: Any]
        #expect((health?["lastError"] as? String)?.contains("broken.csv rejected") == true)
        #expect(health?["consecutiveFailures"] as? Int == 1)
        #expect(health?["failingSince"] != nil && health?["rowsRead"] as? Int == 20)
        // The overview: adapters and receivers in one command (none configured here), failing → exit 1.
        let overview = try await esgate(["gateway", "status", "--json", "--config", workspace.configPath])
        #expect(overview.code == 1)
        let object = try JSONSerialization.jsonObject(with: Data(overview.out.utf8)) as? [String: Any]
        #expect((object?["adapters"] as? [[String: Any]])?.first?["name"] as? String == "drop")
        #expect(object?["uplink"] is NSNull, "none configured: null, not a missing key")
        let text = try await esgate(["status", "--config", workspace.configPath])
        #expect(text.out.contains("adapters:") && text.out.contains("failure(s) in a row since") && text.out.contains("receivers:\n  none configured"), "\(text.out)")
    }
}
