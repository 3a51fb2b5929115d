import Adapters
import Foundation
import TestSupport
import GatewayConfig
import GatewayModel
import GatewayRuntime
import HTTPClientSupport
import Journal
import SQLiteSupport
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The legacy SOAP services (Fixtures/soap_peer.py: spyne + a plain rpc/literal handler), one per test, on a
/// loopback port chosen by the kernel. Killed with SIGKILL (PLATFORM.md gotcha 8).
final class SOAPPeer {
    let process = Process()
    let port: Int

    init() throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", fixtures.appendingPathComponent("soap_peer.py").path]
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        let first = readPortLine(stdout)
        guard let port = first.port else {
            kill(process.processIdentifier, SIGKILL)
            throw TestFailure("the SOAP peer did not start (pip install spyne lxml): '\(first.line)'")
        }
        self.port = port
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    private func get(_ path: String) throws -> [UInt8] {
        let client = HTTPClient(configuration: .init(allowPlaintextHTTP: true))
        let response = try client.sendBlocking(.get(url(path)))
        guard response.status == 200 else { throw TestFailure("GET \(path): HTTP \(response.status)") }
        return response.body
    }

    func control(_ query: String) throws { _ = try get("/control?\(query)") }

    struct Stats: Decodable {
        struct Call: Decodable {
            let op: String
            let page: Int?
            let pageSize: Int?
            let since: String?
            let kind: String?
        }
        let requests: [String]
        let calls: [Call]
        let soapactions: [String?]
        let content_types: [String?]
        let auth_ok: Int
        let auth_failed: [String]
    }

    func stats() throws -> Stats { try JSONDecoder().decode(Stats.self, from: Data(try get("/stats"))) }
}

/// A gateway installation in a temporary folder with one SOAP adapter and the test mapping.
final class SOAPWorkspace {
    let root: URL
    var journalPath: String { root.appendingPathComponent("state/journal.sqlite").path }
    var configPath: String { root.appendingPathComponent("gateway.yaml").path }

    /// `soap` is the body of the adapter's `soap:` section (indented by two spaces here).
    init(soap: String, name: String = "legacy") throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-soap-\(UUID().uuidString)")
        let manager = FileManager.default
        try manager.createDirectory(at: root.appendingPathComponent("adapters"), withIntermediateDirectories: true)
        try manager.createDirectory(at: root.appendingPathComponent("mappings"), withIntermediateDirectories: true)
        try manager.createDirectory(at: root.appendingPathComponent("state"), withIntermediateDirectories: true)
        try write("gateway.yaml", "district: \"410103\"\nstate_dir: state\nlog_level: error\nsupervision: false\n")
        try write("mappings/soap-cases.yaml", """
            name: soap-cases
            description: test cases from the legacy SOAP service
            records:
              - type: Application
                fields:
                  CaseNo: 办件编号
                  ItemCode: 事项编码
                  ItemName: 事项名称
                  DeptCode: { constant: "410103001" }
                  Applicant.Name: 申请人
                  Applicant.IdType: { constant: "01" }
                  Applicant.IdNumber: { column: 证件号码, id18: true }
                  Channel: { constant: "2" }
                  AppliedAt: { column: 申请时间, datetime: "yyyy-MM-dd HH:mm:ss" }
            """)
        let indented = soap.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n")
        try write("adapters/\(name).yaml", "name: \(name)\nkind: soap\nmapping: soap-cases\nsoap:\n\(indented)\n")
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func write(_ relative: String, _ text: String) throws {
        try Data(text.utf8).write(to: root.appendingPathComponent(relative))
    }

    func loaded() throws -> LoadedConfiguration {
        switch loadConfiguration(path: configPath, environment: [:]) {
        case .success(let loaded): return loaded
        case .failure(let errors): throw errors
        }
    }

    /// A fresh adapter on a fresh journal connection (what a restarted gateway gets).
    func adapter(nonce: @escaping () -> [UInt8] = { randomNonce() }) throws -> SOAPAdapter {
        let loaded = try loaded()
        guard let configuration = loaded.adapters.first, let soap = configuration.soap,
              let plan = loaded.mappings[configuration.mapping] else { throw TestFailure("no SOAP adapter configured") }
        let journal = try Journal(path: journalPath, durable: false)
        return SOAPAdapter(name: configuration.name, settings: soap, plan: plan, schema: loaded.schema, journal: journal,
                           logger: .silent, nonce: nonce)
    }

    /// (key, rev, body) of every record the adapter stored.
    func records() throws -> [(key: String, rev: Int64, body: String)] {
        let db = try openJournalForInspection(path: journalPath)
        return try db.query("SELECT key, rev, body FROM records ORDER BY key, rev").map {
            ($0[0].textValue ?? "", $0[1].intValue ?? -1, storedBodyXML($0[2]))
        }
    }

    func quarantine() throws -> [(origin: String, reason: String, raw: String)] {
        let db = try SQLiteDatabase(path: journalPath, readOnly: true)
        return try db.query("SELECT origin, reason, raw FROM quarantine ORDER BY id").map {
            ($0[0].textValue ?? "", $0[1].textValue ?? "", $0[2].textValue ?? $0[2].blobText)
        }
    }
}

extension SQLiteValue {
    var blobText: String {
        if case .blob(let bytes) = self { return String(decoding: bytes, as: UTF8.self) }
        return ""
    }
}

/// The adapter's `soap:` section for the spyne service's document/literal operations.
func documentLiteral(_ peer: SOAPPeer, operation: String = "GetCases", path: String = "/doc", extra: String = "") -> String {
    """
    url: \(peer.url(path))
    insecure_plaintext: true
    action: urn:esgate:test/\(operation)
    namespaces:
      t: urn:esgate:test
    request_template: "<t:\(operation)><t:page>{{page}}</t:page><t:pageSize>{{page_size}}</t:pageSize></t:\(operation)>"
    paging: page
    page_size: 5
    record_path: //t:Case
    fields:
      办件编号: t:CaseNo
      事项编码: t:ItemCode
      事项名称: t:ItemName
      申请人: t:Applicant
      证件号码: t:IdNumber
      申请时间: t:AppliedAt
    \(extra)
    """
}

/// Fields of the inner documents (no namespace).
let innerFields = """
    record_path: /Cases/Case
    fields:
      办件编号: CaseNo
      事项编码: ItemCode
      事项名称: ItemName
      申请人: Applicant
      证件号码: IdNumber
      申请时间: AppliedAt
    """
