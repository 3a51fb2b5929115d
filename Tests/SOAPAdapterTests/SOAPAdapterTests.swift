import Adapters
import CryptoSupport
import Foundation
import GatewayConfig
import GatewayRuntime
import HTTPClientSupport
import Journal
import Testing
import TextSupport
import XMLSupport

@Suite struct SOAPUnitTests {
    @Test func usernameTokenDigestMatchesThePublishedAlgorithm() {
        // Computed independently with Python hashlib: b64encode(sha1(nonce + created + password)).
        let digest = usernameTokenDigest(nonce: Array(0..<16), created: "2024-03-01T01:02:03.456Z", password: "口令-Secret1")
        #expect(digest == "Dxi8p66n61DpG6oRQXJJOt0Ne2U=")
        #expect(Digest.sha1(Array("abc".utf8)).hexString == "a9993e364706816aba3e25717850c26c9cd0d89d")
    }

    @Test func charsetRule() throws {
        let utf8Body = Array("<?xml version=\"1.0\" encoding=\"gb2312\"?><a>王芳</a>".utf8)
        let decided = try SOAPCharset.decide(body: utf8Body, contentType: "text/xml; charset=utf-8").get()
        #expect(decided.encoding == .utf8)
        var gbk: [UInt8] = Array("<?xml version=\"1.0\" encoding=\"gbk\"?><a>".utf8) + [0xCD, 0xF5, 0xB7, 0xBC] + Array("</a>".utf8)
        #expect(try SOAPCharset.decide(body: gbk, contentType: "text/xml; charset=utf-8").get().encoding == .gb18030)
        #expect(try SOAPCharset.decide(body: gbk, contentType: "text/xml").get().encoding == .gb18030)
        gbk = [0xEF, 0xBB, 0xBF] + Array("<a/>".utf8)
        #expect(try SOAPCharset.decide(body: gbk, contentType: "text/xml; charset=gbk").get().encoding == .utf8)
        #expect(throws: SOAPContentError.self) { try SOAPCharset.decide(body: Array("<a/>".utf8), contentType: "text/xml; charset=iso-8859-1").get() }
        #expect(SOAPCharset.declaredEncoding(Array("<?xml version='1.0' encoding = 'GB2312' ?><a/>".utf8)) == "GB2312")
    }

    @Test func untrustedParsingRefusesEveryDTD() {
        let xxe = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>"
        #expect(throws: UntrustedXMLError.self) { try XMLDocument.untrusted(utf8: Array(xxe.utf8)) }
        let lower = "<!doctype r><r/>"
        #expect(throws: UntrustedXMLError.self) { try XMLDocument.untrusted(utf8: Array(lower.utf8)) }
        // A DOCTYPE inside a comment or CDATA is text, not a declaration.
        let harmless = "<r><!-- <!DOCTYPE x> --><![CDATA[<!DOCTYPE y>]]></r>"
        #expect(throws: Never.self) { try XMLDocument.untrusted(utf8: Array(harmless.utf8)) }
    }

    @Test func requestHeadersForEachActionStyle() {
        var settings = SOAPSettings(url: "https://x/y", bodyTemplate: "<a>{{page}}&amp;{{since}}</a>", recordPath: "//a", fields: [("a", "a")])
        settings.action = "http://tempuri.org/GetCases"
        let values = SOAPRequestValues(page: 3, since: "<2024>", now: Date(timeIntervalSince1970: 0), nonce: Array(0..<16))
        func header(_ name: String) -> String? { SOAPRequestBuilder(settings: settings).headers().first { $0.name == name }?.value }
        #expect(header("SOAPAction") == "\"http://tempuri.org/GetCases\"")
        settings.actionStyle = .unquoted
        #expect(header("SOAPAction") == "http://tempuri.org/GetCases")
        settings.actionStyle = .empty
        #expect(header("SOAPAction") == "\"\"")
        settings.actionStyle = .none
        #expect(header("SOAPAction") == nil)
        settings.version = .v12
        settings.actionStyle = .quoted
        #expect(header("Content-Type") == "application/soap+xml; charset=utf-8; action=\"http://tempuri.org/GetCases\"")
        #expect(header("SOAPAction") == nil)
        #expect(SOAPRequestBuilder(settings: settings).renderBody(values) == "<a>3&amp;&lt;2024&gt;</a>")
    }

    @Test func theShippedExamplePassesTheConfigurationCheck() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-soap-example-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        for folder in ["adapters", "mappings"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        let examples = repositoryRoot.appendingPathComponent("docs/examples/soap")
        try FileManager.default.copyItem(at: examples.appendingPathComponent("adapter-permits-soap.yaml"),
                                         to: root.appendingPathComponent("adapters/permits-soap.yaml"))
        try FileManager.default.copyItem(at: examples.appendingPathComponent("mapping-permits-soap.yaml"),
                                         to: root.appendingPathComponent("mappings/permits-soap.yaml"))
        try Data("district: \"410103\"\nstate_dir: state\n".utf8).write(to: root.appendingPathComponent("gateway.yaml"))
        let result = loadConfiguration(path: root.appendingPathComponent("gateway.yaml").path, environment: ["PERMITS_SOAP_PASSWORD": "x"])
        switch result {
        case .success(let loaded):
            #expect(loaded.adapters.first?.soap?.payload == .escaped)
            #expect(loaded.adapters.first?.soap?.bodyTemplate.contains("{{page}}") == true)
        case .failure(let errors):
            Issue.record("example does not check: \(errors)")
        }
    }

    @Test func configurationErrorsAreLocated() throws {
        let workspace = try SOAPWorkspace(soap: """
            url: ftp://x
            request_template: "<t:Get>{{pgae}}</t:Get>"
            paging: since
            record_path: //q:Case
            fields:
              办件编号: t:CaseNo
            bogus: 1
            """)
        do {
            _ = try workspace.loaded()
            Issue.record("expected configuration errors")
        } catch let errors as ConfigErrors {
            let text = errors.description
            #expect(text.contains("soap.url: must be an http(s) URL"))
            #expect(text.contains("unknown placeholder {{pgae}}"))
            #expect(text.contains("paging: since needs {{since}}"))
            #expect(text.contains("since_field: required when paging is since"))
            #expect(text.contains("prefix 'q' is used in '//q:Case' but not declared"))
            #expect(text.contains("soap.bogus: unknown key"))
        }
    }
}

@Suite struct SOAPPeerTests {
    @Test func documentLiteralTwentyPagesArriveExactlyOnce() throws {
        let peer = try SOAPPeer()
        let workspace = try SOAPWorkspace(soap: documentLiteral(peer))
        let report = try workspace.adapter().poll()
        #expect(report.error == nil)
        #expect(report.pages == 21)  // 20 full pages, then an empty one
        let records = try workspace.records()
        #expect(records.count == 100)
        #expect(Set(records.map(\.key)).count == 100)
        #expect(records.allSatisfy { $0.rev == 1 })
        #expect(records.contains { $0.body.contains("李镕") && $0.body.contains("税务登记证核发") })
        let stats = try peer.stats()
        #expect(stats.soapactions.allSatisfy { $0 == "\"urn:esgate:test/GetCases\"" })
        // A second poll re-reads only the last (empty) page: nothing new, nothing duplicated.
        let again = try workspace.adapter().poll()
        #expect(again.pages == 1 && again.counts.stored == 0)
        #expect(try workspace.records().count == 100)
    }

    @Test func aFaultStopsThePollAndARestartResumesWithoutLossOrDuplicates() throws {
        let peer = try SOAPPeer()
        try peer.control("fault_page=8&times=1")
        let workspace = try SOAPWorkspace(soap: documentLiteral(peer, extra: "retry_base: 2s"))
        let first = try workspace.adapter()
        let report = first.poll()
        let error = try #require(report.error)
        #expect(error.contains("ORA-00054"))
        #expect(error.contains("Server.Busy"))
        #expect(first.status.lastError?.contains("数据库忙") == true)
        #expect(first.status.consecutiveFailures == 1)
        #expect(first.nextPollDelay == .seconds(2))
        if case .fault(let fault) = first.lastFailure {
            #expect(fault.reason == "数据库忙，请稍后再试 (ORA-00054: resource busy)")
            #expect(fault.httpStatus == 500)
        } else {
            Issue.record("expected a typed SOAP fault, got \(String(describing: first.lastFailure))")
        }
        #expect(try workspace.records().count == 35)
        #expect(report.watermark == "{\"page\":8}")
        // "Restart": a new adapter on a new journal connection continues at page 8.
        let second = try workspace.adapter().poll()
        #expect(second.error == nil)
        let records = try workspace.records()
        #expect(records.count == 100 && Set(records.map(\.key)).count == 100 && records.allSatisfy { $0.rev == 1 })
        let pages = try peer.stats().calls.compactMap(\.page)
        #expect(pages == Array(1...8) + Array(8...21))
    }

    @Test func rpcLiteralWithAnUnquotedSOAPAction() throws {
        let peer = try SOAPPeer()
        let soap = """
            url: \(peer.url("/rpc"))
            insecure_plaintext: true
            action: urn:esgate:rpc#GetCases
            action_style: unquoted
            namespaces:
              r: urn:esgate:rpc
            request_template: "<r:GetCases><page>{{page}}</page><pageSize>{{page_size}}</pageSize></r:GetCases>"
            paging: page
            page_size: 7
            record_path: /*/*/r:GetCasesResponse/return/item
            fields:
              办件编号: CaseNo
              事项编码: ItemCode
              事项名称: ItemName
              申请人: Applicant
              证件号码: IdNumber
              申请时间: AppliedAt
            """
        let workspace = try SOAPWorkspace(soap: soap)
        let report = try workspace.adapter().poll()
        #expect(report.error == nil)
        #expect(try workspace.records().count == 100)
        #expect(report.pages == 15)  // 14 full pages of 7, then 2 records
        // The same service refuses a quoted SOAPAction with a fault: shown, typed, nothing stored.
        let quoted = try SOAPWorkspace(soap: soap.replacingOccurrences(of: "action_style: unquoted", with: "action_style: quoted"))
        let refused = try quoted.adapter().poll()
        #expect(refused.error?.contains("SOAPAction must be unquoted") == true)
        #expect(try quoted.records().isEmpty)
    }

    @Test func soap12() throws {
        let peer = try SOAPPeer()
        let workspace = try SOAPWorkspace(soap: documentLiteral(peer, path: "/soap12", extra: "version: \"1.2\""))
        let report = try workspace.adapter().poll()
        #expect(report.error == nil)
        #expect(try workspace.records().count == 100)
        let stats = try peer.stats()
        #expect(stats.content_types.allSatisfy { $0 == "application/soap+xml; charset=utf-8; action=\"urn:esgate:test/GetCases\"" })
        #expect(stats.soapactions.allSatisfy { $0 == nil })
    }

    @Test func escapedInnerDocumentDeclaringGB2312() throws {
        let peer = try SOAPPeer()
        let soap = """
            url: \(peer.url("/doc"))
            insecure_plaintext: true
            action: ""
            action_style: empty
            namespaces:
              t: urn:esgate:test
            request_template: "<t:GetCasesXml><t:page>{{page}}</t:page><t:pageSize>{{page_size}}</t:pageSize></t:GetCasesXml>"
            paging: page
            page_size: 10
            payload: escaped
            payload_path: //t:GetCasesXmlResult
            \(innerFields)
            """
        let workspace = try SOAPWorkspace(soap: soap)
        let report = try workspace.adapter().poll()
        #expect(report.error == nil)
        let records = try workspace.records()
        #expect(records.count == 100)
        #expect(records.filter { $0.body.contains("<Name>李镕</Name>") }.count == 10)
        #expect(records.allSatisfy { $0.body.contains("税务登记证核发") })
        #expect(try peer.stats().soapactions.allSatisfy { $0 == "\"\"" })
    }

    @Test func base64InnerDocumentInGBKBytes() throws {
        let peer = try SOAPPeer()
        let soap = """
            url: \(peer.url("/doc"))
            insecure_plaintext: true
            namespaces:
              t: urn:esgate:test
            request_template: "<t:GetCasesBase64><t:page>{{page}}</t:page><t:pageSize>{{page_size}}</t:pageSize></t:GetCasesBase64>"
            paging: page
            page_size: 25
            payload: base64
            payload_path: //t:GetCasesBase64Result
            \(innerFields)
            """
        let workspace = try SOAPWorkspace(soap: soap)
        let report = try workspace.adapter().poll()
        #expect(report.error == nil)
        let records = try workspace.records()
        #expect(records.count == 100)
        #expect(records.filter { $0.body.contains("<Name>李镕</Name>") }.count == 10)
        #expect(records.filter { $0.body.contains("<Name>王芳</Name>") }.count == 10)
    }

    @Test func wsSecurityUsernameTokenDigestIsVerifiedByThePeer() throws {
        let peer = try SOAPPeer()
        let auth = """
            auth: wsse-digest
            username: esgate
            password: 口令-Secret1
            wsse_timestamp: true
            """
        let workspace = try SOAPWorkspace(soap: documentLiteral(peer, path: "/secure", extra: auth))
        let report = try workspace.adapter().poll()
        #expect(report.error == nil)
        #expect(try workspace.records().count == 100)
        let stats = try peer.stats()
        #expect(stats.auth_ok == 21)
        #expect(stats.auth_failed.isEmpty)
        // A wrong password: the peer's digest check fails, the fault is typed and shown.
        let wrong = try SOAPWorkspace(soap: documentLiteral(peer, path: "/secure", extra: auth.replacingOccurrences(of: "口令-Secret1", with: "wrong")))
        let refused = try wrong.adapter().poll()
        #expect(refused.error?.contains("Client.Authentication") == true)
        #expect(refused.error?.contains("digest mismatch") == true)
        // A replayed nonce is refused too (the peer remembers nonces).
        let replay = try SOAPWorkspace(soap: documentLiteral(peer, path: "/secure", extra: auth))
        let fixed = try replay.adapter(nonce: { [UInt8](repeating: 7, count: 16) })
        _ = fixed.poll()
        #expect(fixed.status.lastError?.contains("nonce replayed") == true)
    }

    @Test func sinceSweepThenIncrementalChanges() throws {
        let peer = try SOAPPeer()
        let soap = """
            url: \(peer.url("/doc"))
            insecure_plaintext: true
            namespaces:
              t: urn:esgate:test
            request_template: "<t:GetChanges><t:since>{{since}}</t:since><t:page>{{page}}</t:page><t:pageSize>{{page_size}}</t:pageSize></t:GetChanges>"
            paging: since
            since_field: 更新时间
            since_initial: "2000-01-01T00:00:00"
            page_size: 5
            record_path: //t:Case
            fields:
              办件编号: t:CaseNo
              事项编码: t:ItemCode
              事项名称: t:ItemName
              申请人: t:Applicant
              证件号码: t:IdNumber
              申请时间: t:AppliedAt
              更新时间: t:UpdatedAt
            """
        let workspace = try SOAPWorkspace(soap: soap)
        let adapter = try workspace.adapter()
        let first = adapter.poll()
        #expect(first.error == nil)
        #expect(try workspace.records().count == 100)
        #expect(first.watermark == "{\"since\":\"2024-03-01T09:50:00\"}")
        try peer.control("add=3")
        let second = adapter.poll()
        #expect(second.error == nil)
        #expect(second.counts.stored == 3)
        let records = try workspace.records()
        #expect(records.count == 103 && records.allSatisfy { $0.rev == 1 })
        let sinces = try peer.stats().calls.filter { $0.op == "GetChanges" }.compactMap(\.since)
        #expect(sinces.suffix(1) == ["2024-03-01T09:50:00"])
    }

    @Test(arguments: ["xxe", "laughs"])
    func hostileInnerDocumentsAreQuarantinedAndTheAdapterKeepsRunning(kind: String) throws {
        let peer = try SOAPPeer()
        let soap = """
            url: \(peer.url("/doc"))
            insecure_plaintext: true
            namespaces:
              t: urn:esgate:test
            parameters:
              kind: \(kind)
            request_template: "<t:GetEvilXml><t:kind>{{kind}}</t:kind></t:GetEvilXml>"
            payload: escaped
            payload_path: //t:GetEvilXmlResult
            \(innerFields)
            """
        let workspace = try SOAPWorkspace(soap: soap)
        let adapter = try workspace.adapter()
        let report = adapter.poll()
        #expect(report.refusedPayloads == 1)
        #expect(report.error?.contains("DTD") == true)
        if case .refusedPayload = adapter.lastFailure {} else { Issue.record("expected refusedPayload, got \(String(describing: adapter.lastFailure))") }
        // The next poll gets the same payload: refused again, quarantined only once.
        let again = adapter.poll()
        #expect(again.refusedPayloads == 1)
        let quarantine = try workspace.quarantine()
        #expect(quarantine.count == 1)
        #expect(quarantine.first?.reason.contains("DTD") == true)
        #expect(try workspace.records().isEmpty)
        for entry in quarantine { #expect(!entry.raw.contains("root:x:0:0") && !entry.reason.contains("root:")) }
    }

    @Test(arguments: ["xxe", "laughs"])
    func hostileEnvelopesAreQuarantined(kind: String) throws {
        let peer = try SOAPPeer()
        let soap = """
            url: \(peer.url("/raw/\(kind)"))
            insecure_plaintext: true
            request_template: "<Get/>"
            \(innerFields.replacingOccurrences(of: "/Cases/Case", with: "//Case"))
            """
        let workspace = try SOAPWorkspace(soap: soap)
        let report = try workspace.adapter().poll()
        #expect(report.error?.contains("DTD") == true)
        #expect(try workspace.records().isEmpty)
        let quarantine = try workspace.quarantine()
        #expect(quarantine.count == 1)
        #expect(quarantine.allSatisfy { !$0.raw.contains("root:x:0:0") })
    }

    @Test(arguments: ["conflict-utf8", "conflict-gbk"])
    func disagreeingCharsetsFollowTheRuleWithoutGarbling(kind: String) throws {
        let peer = try SOAPPeer()
        let soap = """
            url: \(peer.url("/raw/\(kind)"))
            insecure_plaintext: true
            request_template: "<Get/>"
            \(innerFields.replacingOccurrences(of: "/Cases/Case", with: "//Case"))
            """
        let workspace = try SOAPWorkspace(soap: soap)
        let report = try workspace.adapter().poll()
        #expect(report.error == nil)
        let records = try workspace.records()
        #expect(records.count == 5)
        #expect(records.contains { $0.body.contains("<Name>李镕</Name>") })
        #expect(records.allSatisfy { $0.body.contains("税务登记证核发") })
    }

    @Test func runOnceReportsSOAPSources() throws {
        let peer = try SOAPPeer()
        let workspace = try SOAPWorkspace(soap: documentLiteral(peer))
        let gateway = Gateway(configuration: try workspace.loaded(), logger: .silent)
        let summary = try gateway.runOnce()
        #expect(summary.sources.count == 1)
        #expect(summary.sources.first?.counts.stored == 100)
        #expect(summary.counts.stored == 100)
    }

    @Test func connectionRefusedIsATypedTransportError() throws {
        let workspace = try SOAPWorkspace(soap: """
            url: http://127.0.0.1:9/doc
            insecure_plaintext: true
            request_template: "<Get/>"
            \(innerFields)
            """)
        let adapter = try workspace.adapter()
        let report = adapter.poll()
        #expect(report.error?.hasPrefix("transport:") == true)
        if case .transport(.connectionRefused) = adapter.lastFailure {} else { Issue.record("got \(String(describing: adapter.lastFailure))") }
    }
}

@Suite struct SOAPMappingTestTests {
    /// `esgate mapping test --adapter permits-soap --file response.xml`: a saved response goes through the adapter's
    /// own reading rules (escaped inner document declaring gb2312, record XPath) and the mapping, nothing written.
    @Test func aSavedResponseIsMappedWithTheAdaptersRules() throws {
        let examples = repositoryRoot.appendingPathComponent("docs/examples/soap")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-soap-mt-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        for folder in ["adapters", "mappings"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(at: examples.appendingPathComponent("adapter-permits-soap.yaml"),
                                         to: root.appendingPathComponent("adapters/permits-soap.yaml"))
        try FileManager.default.copyItem(at: examples.appendingPathComponent("mapping-permits-soap.yaml"),
                                         to: root.appendingPathComponent("mappings/permits-soap.yaml"))
        try Data("district: \"410103\"\nstate_dir: state\n".utf8).write(to: root.appendingPathComponent("gateway.yaml"))
        let loaded = try loadConfiguration(path: root.appendingPathComponent("gateway.yaml").path,
                                           environment: ["PERMITS_SOAP_PASSWORD": "x"]).get()
        let soap = try #require(loaded.adapters.first?.soap)
        let plan = try #require(loaded.mappings["permits-soap"])
        let rows = try Gateway.testMapping(plan: plan, schema: loaded.schema, soap: soap,
                                           responseFile: examples.appendingPathComponent("response-permits-soap.xml").path,
                                           rows: 10).get()
        #expect(rows.count == 3)
        #expect(rows[0].records.first?.contains("<ItemName>食品流通许可</ItemName>") == true)
        #expect(rows[0].records.first?.contains("<IdNumber>410103********1230</IdNumber>") == true, "15 → 18 digits, masked")
        #expect(rows[1].errors.isEmpty)
        #expect(rows[2].records.isEmpty)
        #expect(rows[2].errors.first?.contains("AppliedAt") == true, "2024-02-30 does not exist")
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("state/journal.sqlite").path))
    }
}
