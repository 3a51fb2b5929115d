import Foundation
import TestSupport
import GatewayModel
import HTTPClientSupport
import HTTPServerSupport
import Journal
import SandboxReceiver
import Testing
import Uplink
import XMLSupport

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
let fixturesDirectory = testsDirectory.appendingPathComponent("Fixtures")
let packageRoot = testsDirectory.deletingLastPathComponent().deletingLastPathComponent()

func fixture(_ name: String) -> String { fixturesDirectory.appendingPathComponent(name).path }

/// The shared certificates' folder, removed when the test process exits (Swift Testing has no run-wide teardown).
nonisolated(unsafe) private var sharedCertificatesDirectory: String?

/// Certificates for the whole test run (certs/make-certs.sh into a fresh temp dir).
let sharedCertificates: Result<String, TestFailure> = {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-uplink-certs-\(UUID().uuidString)").path
    sharedCertificatesDirectory = directory
    atexit { if let directory = sharedCertificatesDirectory { try? FileManager.default.removeItem(atPath: directory) } }
    do {
        let result = try runProcess("/bin/bash", [packageRoot.appendingPathComponent("certs/make-certs.sh").path, directory])
        guard result.status == 0 else { return .failure(TestFailure("make-certs.sh failed: \(result.output)")) }
        return .success(directory)
    } catch {
        return .failure(TestFailure("make-certs.sh: \(error)"))
    }
}()

/// One temp dir per test: certificates (certs/make-certs.sh), journal, receiver databases.
struct TestEnvironment {
    let directory: URL

    static func make(certificates: Bool = true) throws -> TestEnvironment {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-uplink-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if certificates {
            // Generated once per test process (make-certs.sh costs seconds on a busy machine), linked per test.
            let shared = try sharedCertificates.get()
            try FileManager.default.createSymbolicLink(atPath: directory.appendingPathComponent("certs").path,
                                                       withDestinationPath: shared)
        }
        return TestEnvironment(directory: directory)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    func cert(_ name: String) -> String { directory.appendingPathComponent("certs").appendingPathComponent(name).path }
    var journalPath: String { path("state/journal.sqlite") }

    func serverTLS() throws -> HTTPServerConfiguration.TLS {
        try HTTPServerConfiguration.TLS(certificateFile: cert("server.pem"), privateKeyFile: cert("server.key"),
                                        clientCAFile: cert("ca.pem"))
    }

    /// Uplink settings for a receiver at `url`, with fast retries for tests.
    func settings(name: String, url: String, client: String = "client", sender: String = "410103",
                  receiverCode: String = "410000", timeout: Duration = .seconds(30)) -> UplinkSettings {
        let tls = HTTPClient.TLSConfiguration(caFile: cert("ca.pem"), clientCertificateFile: cert("\(client).pem"),
                                              clientKeyFile: cert("\(client).key"))
        var settings = UplinkSettings(name: name, url: url, sender: sender, receiverCode: receiverCode,
                                      client: HTTPClient.Configuration(connectTimeout: .seconds(5), totalTimeout: timeout, tls: tls))
        settings.retryBase = .milliseconds(50)
        settings.retryCap = .seconds(2)
        return settings
    }

    /// An in-process sandbox receiver over mutual TLS.
    func sandbox(_ options: SandboxOptions = SandboxOptions(), database: String = "sandbox.sqlite") throws -> SandboxServer {
        let receiver = try SandboxReceiver(databasePath: path(database), options: options)
        return try SandboxServer(receiver: receiver, tls: try serverTLS())
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

func url(_ port: some BinaryInteger) -> String { "https://127.0.0.1:\(port)/pui" }

func makeValidator() throws -> XMLSchemaValidator {
    try XMLSchemaValidator(schemaText: try PUISchema.shipped().schemaText)
}

let sharedSchema: Result<PUISchema, SchemaError> = Result { () throws(SchemaError) in try PUISchema.shipped() }

/// A valid resident identity number built from 17 digits (ISO 7064 MOD 11-2).
func residentId(_ first17: String) -> String {
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    let sum = zip(first17.compactMap { $0.wholeNumberValue }, weights).reduce(0) { $0 + $1.0 * $1.1 }
    return first17 + String(Array("10X98765432")[sum % 11])
}

/// An Application record (valid against the schema).
func application(_ caseNo: String, itemCode: String = "XK0001", idNumber: String? = nil,
                 appliedAt: String = "2026-01-05T08:51:00+08:00", itemName: String = "食品流通许可") throws -> NormalizedRecord {
    let schema = try sharedSchema.get()
    let draft = DraftRecord(type: "Application", fields: [
        ("CaseNo", caseNo), ("ItemCode", itemCode), ("ItemName", itemName), ("DeptCode", "410103001"),
        ("Applicant.Name", "汪振"), ("Applicant.IdType", "01"),
        ("Applicant.IdNumber", idNumber ?? residentId("41010319561228299")), ("Channel", "1"), ("AppliedAt", appliedAt),
    ])
    switch schema.normalize(draft) {
    case .success(let record): return record
    case .failure(let error): throw TestFailure("test record invalid: \(error)")
    }
}

/// Appends `count` Application records C<prefix><i> to the journal.
@discardableResult
/// `count` Application records from source "test"; with `origin`, record i comes from line i + 1 of that file.
func fillJournal(_ path: String, count: Int, prefix: String = "C", start: Int = 1, origin: String? = nil) throws -> [NormalizedRecord] {
    let journal = try Journal(path: path, durable: false)
    var records: [NormalizedRecord] = []
    for i in start..<(start + count) { records.append(try application("\(prefix)\(i)")) }
    try journal.batch {
        for (offset, record) in records.enumerated() {
            _ = try journal.append(record, source: "test", origin: origin, line: origin == nil ? 0 : offset + 2)
        }
    }
    return records
}

/// The independent Python receiver (Fixtures/pui_peer.py). Killed with SIGKILL (PLATFORM.md gotcha 8).
final class PythonReceiver {
    let process = Process()
    let port: Int
    let statsPath: String

    /// `faults`: pui_peer.py's fault options, e.g. ["--busy-rate", "0.05", "--late-rate", "0.1"].
    init(environment: TestEnvironment, receiverCode: String = "410000", failFirst: Int = 0, faults: [String] = [],
         stats: String = "peer-stats.json") throws {
        statsPath = environment.path(stats)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", fixture("pui_peer.py"), environment.cert("server.pem"), environment.cert("server.key"),
                             environment.cert("ca.pem"), fixture("pui-v1.xsd"), receiverCode, "\(failFirst)", statsPath] + faults
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.standardError
        try process.run()
        let first = readPortLine(stdout)
        guard let port = first.port else {
            kill(process.processIdentifier, SIGKILL)
            throw TestFailure("python receiver did not start (is lxml installed? pip install lxml): \(first.line)")
        }
        self.port = port
    }

    struct Stats: Decodable {
        let requests: Int
        let injected: Int
        let packages: [String: String]
        let faults: [String]
        let resent: Int
        let accepted: Int
        let duplicates: Int
        let records: [String: Int]
        let bad_headers: Int
        /// Injected faults by kind: busy (503 + Retry-After), fault (E500), drop (connection closed), late (stored, answered too late).
        let injected_kinds: [String: Int]
        /// Resends that came sooner than the Retry-After of a 503 for the same package.
        let early_retries: Int
        /// "Type|key|rev" → code, for records the peer rejected in a receipt.
        let rejected: [String: String]
        /// "Type|key|rev" accepted more than once (must stay empty).
        let accepted_twice: [String]
        /// Each refusal's code and message, in order.
        let fault_messages: [String]
        /// Requests that ended before their Content-Length (the client went away mid-send).
        let incomplete: Int
    }

    func stats() throws -> Stats { try PythonReceiver.stats(at: statsPath) }

    static func stats(at statsPath: String) throws -> Stats {
        guard let data = FileManager.default.contents(atPath: statsPath) else { throw TestFailure("no peer stats") }
        return try JSONDecoder().decode(Stats.self, from: data)
    }

    /// The request count, retrying while the peer is rewriting its stats file.
    func requestsEventually() async throws -> Int {
        for _ in 0..<200 {
            if let stats = try? stats() { return stats.requests }
            try await Task.sleep(for: .milliseconds(10))
        }
        return try stats().requests
    }

    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
