import Foundation
import Testing
import XMLSupport
@testable import GatewayModel

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private let schema: PUISchema? = try? PUISchema.shipped()

/// Serializes a draft in the given field order without any checks, so that libxml2 can judge what
/// esgate's validator would refuse to serialize.
private func looseXML(_ draft: DraftRecord) -> String {
    var xml = "<pui:\(draft.type) rev=\"1\">"
    var openGroup: String?
    for (path, value) in draft.fields {
        let parts = path.split(separator: ".").map(String.init)
        let group = parts.count > 1 ? parts[0] : nil
        if openGroup != group {
            if let openGroup { xml += "</pui:\(openGroup)>" }
            if let group { xml += "<pui:\(group)>" }
            openGroup = group
        }
        let name = parts.last ?? path
        xml += "<pui:\(name)>\(xmlEscape(value))</pui:\(name)>"
    }
    if let openGroup { xml += "</pui:\(openGroup)>" }
    return xml + "</pui:\(draft.type)>"
}

private func package(_ records: [String]) -> String {
    """
    <?xml version="1.0" encoding="UTF-8"?>
    <pui:Package xmlns:pui="urn:cn-esup:pui:1" version="1.0"><pui:Head><pui:PackageId>410103-1</pui:PackageId>\
    <pui:Sender>410103</pui:Sender><pui:Receiver>410000</pui:Receiver><pui:CreatedAt>2026-01-06T12:30:00+08:00</pui:CreatedAt>\
    <pui:RecordCount>\(records.count)</pui:RecordCount><pui:Digest alg="SM3">\(String(repeating: "0", count: 64))</pui:Digest>\
    </pui:Head><pui:Body>\(records.joined())</pui:Body></pui:Package>
    """
}

/// libxml2's verdict on one record.
private func libxmlAccepts(_ recordXML: String, _ libxml: XMLSchemaValidator) -> Bool {
    guard let document = try? XMLDocument(text: package([recordXML])) else { return false }
    return libxml.validate(document).isEmpty
}

private let validRecords: [DraftRecord] = [
    DraftRecord(type: "Application", fields: [
        ("CaseNo", "410103001202601050000001"), ("ItemCode", "XK0001"), ("ItemName", "食品流通许可"),
        ("DeptCode", "410103001"), ("Applicant.Name", "王伟"), ("Applicant.IdType", "01"),
        ("Applicant.IdNumber", "410103199001011230"), ("Channel", "1"), ("AppliedAt", "2026-01-05T08:37:00+08:00")]),
    DraftRecord(type: "Acceptance", fields: [
        ("CaseNo", "410103001202601050000001"), ("DeptCode", "410103001"), ("Decision", "1"),
        ("Handler.Name", "李娜"), ("AcceptedAt", "2026-01-05T08:37:00+08:00"), ("PromisedLimit", "10"),
        ("PromisedUnit", "W"), ("LegalLimit", "20"), ("LegalUnit", "W")]),
    DraftRecord(type: "Fee", fields: [
        ("CaseNo", "C-1"), ("FeeCode", "F000801"), ("FeeName", "城市道路占用费"), ("Amount", "120.00"),
        ("Reduction", "0"), ("ChargedAt", "2026-01-09T10:00:00.250+08:00")]),
    DraftRecord(type: "Score", fields: [
        ("Period", "2026-01"), ("DeptCode", "91410103MA1234567X"), ("CasesCompleted", "10"), ("CompletedOnTime", "9"),
        ("CompletedEarly", "3"), ("OnTimeRate", "0.9"), ("Prompts", "0"), ("YellowCards", "1"), ("RedCards", "0"),
        ("ComplaintsSubstantiated", "0"), ("Evaluations", "4"), ("SatisfactionRate", "1"), ("LateReports", "0"),
        ("Total", "95.0"), ("Grade", "A")]),
    DraftRecord(type: "Camera", fields: [
        ("CameraCode", "41010300001320000001"), ("Name", "一号窗口"), ("HallCode", "H01"), ("Online", "true"),
        ("StatusAt", "2026-01-05T08:37:00+08:00")]),
]

/// Values that probe every facet kind: lexical forms, lengths, digits, ranges, patterns, whitespace rules.
private let probes: [String] = [
    "", " ", "x", "01", "1", "0", "-0", "+5", " 5 ", "5 ", "1.5", "1.50", "1.234", "1.2300", "-1", "00012", "0.00",
    "999999999999.99", "1000000000000", "3650", "3651", "true", "false", "TRUE", "W", "N", "w", "upsert",
    "2026-01-05T08:37:00+08:00", "2026-02-30T08:00:00+08:00", "2026-01-05T08:37:00Z", "2026-01-05T24:00:00+08:00",
    "2026-01-05 08:37:00", "2026-01-05T08:37:00.1234+08:00", " 2026-01-05T08:37:00+08:00", "2026-01",
    "2026-13", "２０２６-01", "410103001", "41010300", "91410103MA1234567X", "abc_DEF-1.2", "a b",
    String(repeating: "长", count: 64), String(repeating: "长", count: 65), String(repeating: "x", count: 33),
    "41010300001320000001", "A&B<C>", "line\nbreak", "tab\there",
]

@Suite struct SchemaValidationTests {
    @Test func embeddedSchemaIsTheShippedFile() throws {
        let file = try String(contentsOf: repositoryRoot.appendingPathComponent("schema/pui-v1.xsd"), encoding: .utf8)
        #expect(file == embeddedPUISchema + "\n", "run `make schema` after changing schema/pui-v1.xsd")
    }

    @Test func keysComeFromTheSchemaAnnotations() throws {
        let schema = try #require(schema)
        #expect(schema.recordTypes.count == 17)
        #expect(schema.recordTypes["Step"]?.keyFields == ["CaseNo", "StepCode", "HandledAt"])
        #expect(schema.recordTypes["Fee"]?.keyFields == ["CaseNo", "FeeCode"])
        #expect(schema.recordTypes["Score"]?.keyFields == ["Period", "DeptCode"])
        #expect(schema.recordTypes["SpecialEnd"]?.keyFields == ["CaseNo", "EndedAt"])
    }

    @Test func validRecordsPassBothValidators() throws {
        let schema = try #require(schema)
        let libxml = try XMLSchemaValidator(schemaText: embeddedPUISchema)
        for draft in validRecords {
            let result = schema.normalize(draft)
            guard case .success(let record) = result else { Issue.record("\(draft.type): \(result)"); continue }
            #expect(libxmlAccepts(record.wireXML(rev: 1).replacingOccurrences(of: " xmlns=\"urn:cn-esup:pui:1\"", with: "")
                .replacingOccurrences(of: "<", with: "<pui:").replacingOccurrences(of: "<pui:/", with: "</pui:"), libxml))
            #expect(libxmlAccepts(looseXML(draft), libxml))
        }
    }

    /// The Swift validator must give libxml2's verdict for every field of every probe value.
    @Test func swiftValidatorAgreesWithLibxml2() throws {
        let schema = try #require(schema)
        let libxml = try XMLSchemaValidator(schemaText: embeddedPUISchema)
        var disagreements: [String] = []
        var checked = 0
        for draft in validRecords {
            for index in draft.fields.indices {
                for probe in probes {
                    var mutated = draft
                    mutated.fields[index].value = probe
                    let swiftAccepts: Bool
                    if case .success = schema.normalize(mutated) { swiftAccepts = true } else { swiftAccepts = false }
                    let libxml2Accepts = libxmlAccepts(looseXML(mutated), libxml)
                    checked += 1
                    if swiftAccepts != libxml2Accepts {
                        disagreements.append("\(draft.type).\(draft.fields[index].path) = '\(probe)': swift \(swiftAccepts), libxml2 \(libxml2Accepts)")
                    }
                }
                // Removing a field: required ones must fail in both.
                var removed = draft
                removed.fields.remove(at: index)
                let swiftAccepts: Bool
                if case .success = schema.normalize(removed) { swiftAccepts = true } else { swiftAccepts = false }
                if swiftAccepts != libxmlAccepts(looseXML(removed), libxml) {
                    disagreements.append("\(draft.type) without \(draft.fields[index].path)")
                }
            }
        }
        #expect(checked > 1500)
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements:\n\(disagreements.prefix(40).joined(separator: "\n"))")
    }

    @Test func errorsNameTheFieldAndTheFacet() throws {
        let schema = try #require(schema)
        var draft = validRecords[0]
        draft["AppliedAt"] = "2026-02-30T08:00:00+08:00"
        guard case .failure(let error) = schema.normalize(draft) else { Issue.record("accepted an impossible date"); return }
        #expect(error.field == "AppliedAt")
        #expect(error.message.contains("dateTime"))
        draft = validRecords[0]
        draft["Applicant.Extra"] = "x"
        guard case .failure(let unknown) = schema.normalize(draft) else { Issue.record("accepted an unknown field"); return }
        #expect(unknown.field == "Applicant.Extra")
    }

    @Test func fieldOrderOfTheDraftDoesNotMatter() throws {
        let schema = try #require(schema)
        let draft = validRecords[1]
        let shuffled = DraftRecord(type: draft.type, fields: draft.fields.reversed())
        #expect(try schema.normalize(draft).get() == schema.normalize(shuffled).get())
        #expect(try schema.normalize(draft).get().key == "410103001202601050000001")
    }
}

@Suite struct SimplePatternTests {
    /// The fast matcher must agree with libxml2's XSD regular expressions on every schema pattern it accepts.
    @Test func agreesWithLibxml2OnEverySchemaPattern() throws {
        let patterns = ["[0-9]{6}", "[0-9A-Z]{9}|[0-9A-Z]{18}", #"[0-9A-Za-z_\-\.]{1,32}"#, #"[0-9A-Za-z_\-]{1,64}"#,
                        #"[0-9A-Za-z\-]{1,64}"#, "[0-9a-f]{64}", "[0-9]{20}"]
        let samples = ["", "1", "410103", "4101031", "41010", "410103001", "91410103MA1234567X", "91410103ma1234567x",
                       "abc_DEF-1.2", "a b", "a.b", "a-b", "a_b", "a+b", "长", "٤١٠١٠٣", "４１０１０３",
                       String(repeating: "a", count: 32), String(repeating: "a", count: 33), String(repeating: "f", count: 64),
                       String(repeating: "F", count: 64), "41010300001320000001", "4101030000132000000", "\\", "]", "-", "."]
        var compared = 0
        for pattern in patterns {
            let simple = try #require(SimplePattern(pattern), "\(pattern) should use the fast path")
            let libxml = try XSDRegularExpression(pattern)
            for sample in samples {
                #expect(simple.matches(sample) == libxml.matches(sample), "\(pattern) on '\(sample)'")
                compared += 1
            }
        }
        #expect(compared == patterns.count * samples.count)
        #expect(SimplePattern(#"\d{4}-(0[1-9]|1[0-2])"#) == nil, "\\d and groups go to libxml2")
        #expect(SimplePattern("[0-9]{6}-[0-9]{1,18}") == nil, "several atoms go to libxml2")
    }
}

/// docs/record-types.md is what a mapping author reads instead of the schema: it must name every record type,
/// its key and every field path of the shipped schema (`make schema` writes it with tools/record_types_doc.py).
@Test func theRecordTypesPageNamesEveryTypeKeyAndFieldOfTheShippedSchema() throws {
    let schema = try PUISchema.shipped()
    let page = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/record-types.md"), encoding: .utf8)
    /// Each leaf's path and how the page must say it is needed.
    func paths(_ elements: [ElementDeclaration], prefix: String = "", optionalParent: Bool = false) -> [(path: String, need: String)] {
        elements.flatMap { element -> [(path: String, need: String)] in
            let optional = element.minOccurs == 0
            switch element.content {
            case .simple:
                var need = optional ? "optional" : optionalParent ? "required with \(prefix.dropLast())" : "required"
                if element.maxOccurs != 1 { need += ", repeated" }
                return [(prefix + element.name, need)]
            case .complex(let name):
                return paths(schema.complexTypes[name] ?? [], prefix: prefix + element.name + ".", optionalParent: optionalParent || optional)
            }
        }
    }
    #expect(schema.recordTypes.count >= 17)
    for (name, record) in schema.recordTypes {
        guard let section = page.components(separatedBy: "\n### \(name)\n").dropFirst().first?.components(separatedBy: "\n### ").first else {
            Issue.record("no section ### \(name) in docs/record-types.md: run make schema")
            continue
        }
        #expect(section.contains("Key: \(record.keyFields.joined(separator: ", "))."), "key of \(name)")
        for (path, need) in paths(record.elements) {
            let row = section.split(separator: "\n").first { $0.hasPrefix("| `\(path)` |") }
            #expect(row?.hasSuffix("| \(need) |") == true, "\(name).\(path) should read '\(need)' in docs/record-types.md (\(row ?? "missing")): run make schema")
        }
    }
}
