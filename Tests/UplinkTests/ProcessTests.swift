import Foundation
import Journal
import Testing
import Uplink

// The esgate binary as a separate process against the independent Python receiver: kill -9 mid-push, an expired
// client certificate, the dead-letter commands. Processes are waited for with Task.sleep (never blocking a
// cooperative thread) and stopped with SIGKILL (PLATFORM.md gotcha 8).

func esgateExecutable() throws -> URL {
    if let path = ProcessInfo.processInfo.environment["ESGATE_BIN"] { return URL(fileURLWithPath: path) }
    let candidate = packageRoot.appendingPathComponent(".build/debug/esgate")
    guard FileManager.default.isExecutableFile(atPath: candidate.path) else {
        throw TestFailure("\(candidate.path) not found: run `swift build` first")
    }
    return candidate
}

/// Starts esgate with output to files in the test directory.
func startEsgate(_ arguments: [String], environment: TestEnvironment, log: String) throws -> Process {
    let process = Process()
    process.executableURL = try esgateExecutable()
    process.arguments = arguments
    let out = environment.path(log)
    _ = FileManager.default.createFile(atPath: out, contents: nil)
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
    handle.seekToEndOfFile()
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    return process
}

/// Runs blocking work on a thread of its own, off Swift's cooperative pool, and returns its result.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// Polls until the process exits; SIGKILLs it after `timeout` seconds.
func waitUntilExited(_ process: Process, timeout: TimeInterval) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning {
        if Date() > deadline { kill(process.processIdentifier, SIGKILL) }
        try await Task.sleep(for: .milliseconds(20))
    }
    process.waitUntilExit()
}

/// Runs esgate to completion; returns its exit code and output (stdout and stderr together).
func runEsgate(_ arguments: [String], environment: TestEnvironment, timeout: TimeInterval = 300) async throws -> (code: Int32, output: String) {
    let log = "esgate-\(UUID().uuidString).log"
    let process = try startEsgate(arguments, environment: environment, log: log)
    try await waitUntilExited(process, timeout: timeout)
    return (process.terminationStatus, (try? String(contentsOfFile: environment.path(log), encoding: .utf8)) ?? "")
}

extension TestEnvironment {
    /// gateway.yaml with one receiver at `port`; reference data from a file (the Python peer serves no
    /// GetReferenceData). `retry_cap` above `--max-wait 0`: a failing receiver ends `--once` at once.
    func writeGatewayConfig(port: Int, client: String = "client", retryCap: String = "1s") throws -> String {
        for folder in ["adapters", "mappings", "state"] {
            try FileManager.default.createDirectory(atPath: path(folder), withIntermediateDirectories: true)
        }
        let yaml = """
            district: "410103"
            state_dir: state
            log_level: info
            supervision: false
            reference_data: \(fixture("reference-data.xml"))
            retry_base: 50ms
            retry_cap: \(retryCap)
            receivers:
              - name: province
                url: https://127.0.0.1:\(port)/pui
                division: "410000"
                ca_file: \(cert("ca.pem"))
                cert_file: \(cert("\(client).pem"))
                key_file: \(cert("\(client).key"))
                connect_timeout: 5s
                timeout: 10s

            """
        try yaml.write(toFile: path("gateway.yaml"), atomically: true, encoding: .utf8)
        return path("gateway.yaml")
    }
}

/// The first receiver's status; `uplink status` exits 1 while a receiver is failing, which these tests look at.
func uplinkStatus(_ config: String, environment: TestEnvironment) async throws -> [String: Any] {
    let result = try await runEsgate(["uplink", "status", "--json", "--config", config], environment: environment)
    guard result.code <= 1, let start = result.output.firstIndex(of: "{"),
          let object = try JSONSerialization.jsonObject(with: Data(result.output[start...].utf8)) as? [String: Any],
          let status = object["status"] as? [String: Any], let receivers = status["receivers"] as? [[String: Any]],
          let first = receivers.first else {
        throw TestFailure("uplink status failed: \(result.output)")
    }
    return first
}

@Suite struct GatewayProcessTests {
    /// The gateway process is killed with SIGKILL at random moments of a push (mid-request, between a receipt
    /// and the cursor, while fixing a package) and restarted: nothing lost, nothing twice, no PackageId reused
    /// with other bytes (the receiver would answer E103).
    @Test func killNineDuringAPushAndRestartLosesNothingAndReusesNoPackageId() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let total = 20_000
        try fillJournal(environment.journalPath, count: total)
        // Every answer takes at least 1 s, so the 20 packages of the push take 20 s or more, while the five rounds
        // below run at most 5 × 3 s from the first request: the kills land inside the push. The rounds are timed
        // on a thread of their own: a Task.sleep could wake seconds late while other tests hold Swift's
        // cooperative threads, and the push would then end before the kills.
        let peer = try PythonReceiver(environment: environment, faults: ["--delay", "1.0", "--seed", "3", "--fault-rate", "0.1"])
        defer { peer.stop() }
        let config = try environment.writeGatewayConfig(port: peer.port)
        let statsPath = peer.statsPath
        let kills = try await onOwnThread { () throws -> Int in
            var generator = SystemRandomNumberGenerator()
            var kills = 0
            for round in 0..<5 {
                let process = try startEsgate(["uplink", "run", "--config", config], environment: environment, log: "run-\(round).log")
                if round == 0 {
                    // A loaded machine may take seconds to start the first push: the rounds count from its first
                    // request.
                    var waited = 0
                    while waited < 600, process.isRunning, ((try? PythonReceiver.stats(at: statsPath).requests) ?? 0) == 0 {
                        Thread.sleep(forTimeInterval: 0.05)
                        waited += 1
                    }
                }
                // Killed at a random moment: mid-request, between a receipt and the cursor, or while fixing a package.
                Thread.sleep(forTimeInterval: Double.random(in: 1.2...3.0, using: &generator))
                if process.isRunning {
                    kill(process.processIdentifier, SIGKILL)
                    kills += 1
                }
                process.waitUntilExit()
            }
            return kills
        }
        #expect(kills == 5)
        _ = try await peer.requestsEventually()
        let midway = try peer.stats()
        #expect(midway.accepted > 0 && midway.accepted < total, "the kills came during the push (\(midway.accepted) accepted)")
        let finish = try await runEsgate(["uplink", "run", "--once", "--config", config], environment: environment)
        #expect(finish.code == 0, "\(finish.output)")
        let stats = try peer.stats()
        #expect(stats.faults.isEmpty, "no E103 or other refusal: \(stats.fault_messages)")
        #expect(stats.accepted == total && stats.duplicates == 0 && stats.accepted_twice.isEmpty)
        #expect(stats.records.count == total && stats.records.values.allSatisfy { $0 == 1 })
        let journal = try Journal(path: environment.journalPath)
        let keys = Set(try journal.entries(after: 0, limit: total + 1).map { "Application|\($0.key)" })
        #expect(Set(stats.records.keys) == keys)
        let store = try UplinkStore(path: environment.journalPath)
        let packages = try store.packages(receiver: "province")
        #expect(packages.allSatisfy { $0.state == .receipted })
        #expect(stats.packages == Dictionary(uniqueKeysWithValues: packages.map { ($0.packageId, $0.digest) }))
        let status = try await uplinkStatus(config, environment: environment)
        #expect(status["lag"] as? Int == 0 && status["cursor"] as? Int == total)
    }

    /// An expired client certificate: the receiver refuses the handshake; the uplink says why, keeps the package;
    /// after the configuration names a valid certificate, the same package is delivered.
    @Test func expiredClientCertificateFailsClearlyThenTheFixedConfigurationDelivers() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 1500)
        let peer = try PythonReceiver(environment: environment)
        defer { peer.stop() }
        let expired = try environment.writeGatewayConfig(port: peer.port, client: "expired-client", retryCap: "30s")
        let failed = try await runEsgate(["uplink", "run", "--once", "--max-wait", "0", "--config", expired], environment: environment)
        #expect(failed.code == 1)
        #expect(failed.output.contains("client certificate") && failed.output.contains("expired on 2020-01-02"), "\(failed.output)")
        let status = try await uplinkStatus(expired, environment: environment)
        #expect((status["lastError"] as? String)?.contains("expired on") == true)
        #expect(status["state"] as? String == "backing_off" && status["lag"] as? Int == 1500)
        #expect((status["pending"] as? [String: Any])?["packageId"] as? String == "410103-1")
        let check = try await runEsgate(["certs", "check", "--config", expired], environment: environment)
        #expect(check.code == 1 && check.output.contains("expired on"))
        #expect(check.output.contains("chains to") && !check.output.contains("does not chain"),
                "an expired certificate from the configured CA is expired, not from another CA: \(check.output)")
        #expect(try peer.stats().packages.isEmpty, "nothing got through")
        // Fixed configuration: the same pending package, then the rest.
        let fixed = try environment.writeGatewayConfig(port: peer.port, client: "client")
        let delivered = try await runEsgate(["uplink", "run", "--once", "--config", fixed], environment: environment)
        #expect(delivered.code == 0, "\(delivered.output)")
        let stats = try peer.stats()
        #expect(stats.faults.isEmpty && stats.accepted == 1500 && stats.records.count == 1500)
        #expect(stats.packages.keys.sorted() == ["410103-1", "410103-2"])
        #expect(try await uplinkStatus(fixed, environment: environment)["lag"] as? Int == 0)
    }

    @Test func deadLetterCommandsListAndResendThroughTheBinary() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 300, origin: "cases.csv")
        // First the receiver rejects some records (R201); later it no longer does.
        let strict = try PythonReceiver(environment: environment, faults: ["--reject-every", "7"], stats: "strict.json")
        let config = try environment.writeGatewayConfig(port: strict.port)
        #expect(try await runEsgate(["uplink", "run", "--once", "--config", config], environment: environment).code == 0)
        let rejected = try strict.stats().rejected.count
        strict.stop()
        #expect(rejected > 0)
        let list = try await runEsgate(["deadletter", "list", "--json", "--config", config], environment: environment)
        #expect(list.code == 0 && list.output.components(separatedBy: "\"R201\"").count - 1 == rejected, "\(list.output)")
        // Times in JSON as in the rest of esgate's output: Beijing time with its offset, not UTC "Z".
        #expect(list.output.range(of: #""createdAt" : "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00""#, options: .regularExpression) != nil
                && !list.output.contains("Z\""), "\(list.output)")
        // Each names where its record came from: the source to correct.
        #expect(list.output.components(separatedBy: "\"file\" : \"cases.csv\"").count - 1 == rejected, "\(list.output)")
        let text = try await runEsgate(["deadletter", "list", "--config", config], environment: environment)
        #expect(text.output.range(of: #"rev 1 \(from test cases\.csv:\d+\): R201"#, options: .regularExpression) != nil, "\(text.output)")
        #expect(try await runEsgate(["deadletter", "resend", "--config", config], environment: environment).code == 2)
        // An id that is no open dead letter, and a receiver that is not configured: said, not a quiet "queued 0".
        let unknown = try await runEsgate(["deadletter", "resend", "--id", "999999", "--config", config], environment: environment)
        #expect(unknown.code == 1 && unknown.output.contains("1 of the given id(s) are not open dead letters"), "\(unknown.output)")
        let nobody = try await runEsgate(["deadletter", "drop", "--all", "--receiver", "nobody", "--config", config], environment: environment)
        #expect(nobody.code == 2 && nobody.output.contains("no receiver named nobody"), "\(nobody.output)")
        let lenient = try PythonReceiver(environment: environment, stats: "lenient.json")
        defer { lenient.stop() }
        _ = try environment.writeGatewayConfig(port: lenient.port)
        let resend = try await runEsgate(["deadletter", "resend", "--all", "--json", "--config", config], environment: environment)
        #expect(resend.code == 0 && resend.output.contains("\"resent\" : \(rejected)"), "\(resend.output)")
        #expect(try await uplinkStatus(config, environment: environment)["resendQueued"] as? Int == rejected)
        #expect(try await runEsgate(["uplink", "run", "--once", "--config", config], environment: environment).code == 0)
        let stats = try lenient.stats()
        #expect(stats.accepted == rejected && stats.packages.keys.sorted() == ["410103-2"])
        let after = try await runEsgate(["deadletter", "list", "--config", config], environment: environment)
        #expect(after.output.contains("no dead letters"))
    }
}
