import CryptoSupport
import Foundation
import TestSupport
import GatewayConfig
import GatewayModel
import GatewayRuntime
import SQLiteSupport
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A complete gateway installation in a temporary folder: gateway.yaml, one CSV drop adapter, the shipped
/// mappings, a drop folder and a state folder. One per test, so tests run in parallel.
final class Workspace {
    let root: URL
    var drop: URL { root.appendingPathComponent("drop") }
    var archive: URL { drop.appendingPathComponent("archive") }
    var rejected: URL { drop.appendingPathComponent("rejected") }
    var journalPath: String { root.appendingPathComponent("state/journal.sqlite").path }
    var configPath: String { root.appendingPathComponent("gateway.yaml").path }

    /// `csvSettings`: more lines of the adapter's `csv:` section (e.g. `header_line: 3`).
    init(ready: String = "rename", settle: String = "1s", batchRows: Int = 500, encoding: String = "auto",
         csvSettings: [String] = []) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-test-\(UUID().uuidString)")
        let manager = FileManager.default
        try manager.createDirectory(at: root.appendingPathComponent("adapters"), withIntermediateDirectories: true)
        try manager.createDirectory(at: drop, withIntermediateDirectories: true)
        try manager.copyItem(at: repositoryRoot.appendingPathComponent("mappings"), to: root.appendingPathComponent("mappings"))
        try write("gateway.yaml", "district: \"410103\"\nstate_dir: state\nlog_level: error\n")
        try write("adapters/drop.yaml", """
            name: drop
            kind: csv-drop
            mapping: gen-cases
            csv:
              folder: ../drop
              ready: \(ready)
              settle_time: \(settle)
              poll_interval: 100ms
              encoding: \(encoding)
              batch_rows: \(batchRows)
            """ + csvSettings.map { "\n  " + $0 }.joined())
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func write(_ relative: String, _ text: String) throws {
        try Data(text.utf8).write(to: root.appendingPathComponent(relative))
    }

    func read(_ relative: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(relative), encoding: .utf8)
    }

    func gateway() throws -> Gateway {
        switch loadConfiguration(path: configPath, environment: [:]) {
        case .success(let loaded): return Gateway(configuration: loaded, logger: .silent)
        case .failure(let errors): throw errors
        }
    }

    /// Writes legacy export rows made by the shipped generator (tools/gen_cases.py).
    @discardableResult
    func generate(_ name: String, rows: Int, arguments: [String] = []) throws -> URL {
        let target = drop.appendingPathComponent(name)
        try runGenerator(["--rows", "\(rows)", "--out", target.path] + arguments)
        return target
    }

    func names(in folder: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
    }

    /// Everything the adapter put in the journal that matters for exactly-once: every (type, key, rev, body), in
    /// key order. Supervision's own records (alerts, scores) depend on the clock and are left out.
    func journalDigest() throws -> (records: Int, digest: String) {
        try TestSupport.journalDigest(path: journalPath, source: "drop")
    }

    func bodies(where condition: String = "1") throws -> [String] {
        try journalBodies(path: journalPath, where: condition)
    }

    func scalar(_ sql: String) throws -> Int64 {
        try journalScalar(path: journalPath, sql)
    }
}

func runGenerator(_ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", repositoryRoot.appendingPathComponent("tools/gen_cases.py").path] + arguments
    try process.run()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
}

/// The esgate executable built by `swift build` (the Makefile builds it before the tests).
func esgateBinary() throws -> URL {
    if let path = ProcessInfo.processInfo.environment["ESGATE_BIN"] { return URL(fileURLWithPath: path) }
    let candidate = repositoryRoot.appendingPathComponent(".build/debug/esgate")
    guard FileManager.default.isExecutableFile(atPath: candidate.path) else {
        throw BinaryMissing(path: candidate.path)
    }
    return candidate
}

struct BinaryMissing: Error, CustomStringConvertible {
    let path: String
    var description: String { "\(path) not found: run `swift build` first (make test does)" }
}
