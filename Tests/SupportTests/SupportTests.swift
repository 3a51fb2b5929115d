import CryptoSupport
import Foundation
import SQLiteSupport
import Testing
import TextSupport
import XMLSupport
import YAMLSupport

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

@Suite struct CryptoTests {
    @Test func sm3MatchesTheStandardVector() {
        #expect(Digest.sm3("abc").hexString == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
    }

    @Test func sha256MatchesTheStandardVector() throws {
        #expect(Digest.sha256("abc").hexString == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let streaming = try StreamingDigest(.sha256)
        streaming.update("a")
        streaming.update("bc")
        #expect(streaming.finish().hexString == Digest.sha256("abc").hexString)
    }
}

@Suite struct TextTests {
    @Test func decodesGB18030IncludingFourByteSequences() throws {
        let text = "二七区行政服务中心 王𠀀伟 €"
        let bytes = try encode(text, as: .gb18030)
        #expect(bytes.count != text.utf8.count)
        let decoder = try TextDecoder(.gb18030)
        let decoded = try bytes.withUnsafeBytes { buffer in try decoder.decode(buffer) }
        #expect(decoded == text)
    }

    @Test func invalidGB18030BytesAreReportedWithTheirOffset() throws {
        let decoder = try TextDecoder(.gb18030)
        let bytes: [UInt8] = Array("ab".utf8) + [0xFF, 0x30] + Array("cd".utf8)
        #expect(throws: DecodingError.self) {
            try bytes.withUnsafeBytes { buffer in _ = try decoder.decode(buffer) }
        }
        do {
            _ = try bytes.withUnsafeBytes { buffer in try decoder.decode(buffer) }
        } catch {
            #expect((error as? DecodingError)?.offset == 2)
        }
    }

    @Test func truncatedSequenceIsAnError() throws {
        let decoder = try TextDecoder(.gb18030)
        let bytes: [UInt8] = try encode("王", as: .gb18030).dropLast()
        #expect(throws: DecodingError.self) {
            try bytes.withUnsafeBytes { buffer in _ = try decoder.decode(buffer) }
        }
    }

    @Test func invalidUTF8IsFound() {
        let valid = Array("二七区".utf8)
        #expect(valid.withUnsafeBytes { TextDecoder.firstInvalidUTF8($0) } == nil)
        let overlong: [UInt8] = [0x41, 0xC0, 0xAF]
        #expect(overlong.withUnsafeBytes { TextDecoder.firstInvalidUTF8($0) } == 1)
        let surrogate: [UInt8] = [0xED, 0xA0, 0x80]
        #expect(surrogate.withUnsafeBytes { TextDecoder.firstInvalidUTF8($0) } == 0)
    }

    @Test func identityNumbersAreMaskedToFirstSixAndLastFour() {
        #expect(Redaction.maskIdNumber("410103199001011234") == "410103********1234")
        let text = "申请人 410103199001011234 和 41010390010112X 及办件 410103001202601050000001"
        let masked = Redaction.maskIdentityNumbers(in: text)
        #expect(!masked.contains("199001011234"))
        #expect(masked.contains("410103********1234"))
        #expect(masked.contains("410103001202601050000001"), "a 24-digit case number is not an identity number")
        #expect(Redaction.maskIdentityNumbers(in: "<IdNumber>E12345678</IdNumber>") == "<IdNumber>*********</IdNumber>")
        let json = #"{"seconds" : 12.345678901234567, "id" : "410103199001011234"}"#
        #expect(Redaction.maskIdentityNumbers(in: json) == #"{"seconds" : 12.345678901234567, "id" : "410103********1234"}"#,
                "decimal fractions in JSON are numbers, not identity numbers")
        let many = (1...3).map { "{\"xml\":\"<A><IdNumber>E1234567\($0)</IdNumber></A>\"}" }.joined(separator: ",")
        #expect(Redaction.maskIdentityNumbers(in: many) == (1...3).map { _ in "{\"xml\":\"<A><IdNumber>*********</IdNumber></A>\"}" }.joined(separator: ","))
        #expect(Redaction.maskIdentityNumbers(in: "<IdNumber>E1234567 unclosed") == "<IdNumber>E1234567 unclosed")
        // Typed with full-width digits (an IME's), alone or mixed with ASCII ones: still masked.
        let wide = Redaction.maskIdentityNumbers(in: "证件号码 ４１０１０３１９９００１０１１２３０ 与 41010319900101129ｘ，")
        #expect(wide == "证件号码 ４１０１０３********１２３０ 与 410103********129ｘ，", "\(wide)")
        // Full-width brackets and ASCII digits beside a full-width one do not make a number part of a longer word.
        #expect(Redaction.maskIdentityNumbers(in: "证件［410103199001011230］号＿410103199001011230，４410103199001011230")
                == "证件［410103********1230］号＿410103********1230，４410103********1230")
    }
}

@Suite struct YAMLTests {
    @Test func nodesCarryTheirLines() throws {
        let node = try parseYAML("a: 1\nb:\n  - x\n  - \"01\"\nc: {d: e}\n")
        guard case .mapping(let pairs, _) = node else { Issue.record("not a mapping"); return }
        #expect(pairs.count == 3)
        #expect(pairs[1].key.mark.line == 2)
        guard case .sequence(let items, _) = pairs[1].value else { Issue.record("not a sequence"); return }
        #expect(items[1] == .scalar("01", .init(line: 4, column: 5), plain: false))
        #expect(items[1].mark.line == 4)
    }

    @Test func syntaxErrorsHaveALine() {
        do {
            _ = try parseYAML("a: 1\nb: [unclosed\nc: 3\n")
            Issue.record("expected a syntax error")
        } catch {
            #expect(error.line >= 2)
        }
    }

    @Test func duplicateKeysAreRejected() {
        #expect(throws: YAMLError.self) { try parseYAML("a: 1\na: 2\n") }
    }
}

@Suite struct SQLiteTests {
    @Test func preparedStatementsRoundTripValues() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let db = try SQLiteDatabase(path: directory.appendingPathComponent("t.sqlite").path)
        try db.execute("CREATE TABLE t(a INTEGER, b TEXT, c BLOB)")
        try db.prepare("INSERT INTO t VALUES (?1, ?2, ?3)").run([.integer(7), .text("二七区"), .blob([0, 1, 255])])
        let rows = try db.query("SELECT a, b, c FROM t")
        #expect(rows == [[.integer(7), .text("二七区"), .blob([0, 1, 255])]])
        #expect(throws: SQLiteError.self) { try db.execute("INSERT INTO missing VALUES (1)") }
    }
}

@Suite struct XMLTests {
    @Test func exclusiveCanonicalFormMatchesTheSpecVector() throws {
        let package = try Data(contentsOf: fixtures.appendingPathComponent("package.xml"))
        let expected = try Data(contentsOf: fixtures.appendingPathComponent("package-body.c14n"))
        let document = try XMLDocument(bytes: [UInt8](package))
        let canonical = try document.exclusiveCanonicalForm(ofElement: "Body", namespace: "urn:cn-esup:pui:1")
        #expect(canonical == [UInt8](expected))
        #expect(Digest.sm3(canonical).hexString == "d361cfd383424b38878dde7571717d44de1f6a07692c7f30917a7c671dd047be")
    }

    @Test func externalEntitiesAreNotExpanded() throws {
        let secret = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-secret-\(UUID().uuidString)")
        try Data("TOPSECRET".utf8).write(to: secret)
        defer { try? FileManager.default.removeItem(at: secret) }
        let text = "<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x SYSTEM \"file://\(secret.path)\">]><a>&x;</a>"
        let document = try XMLDocument(text: text)
        #expect(document.root?.text.contains("TOPSECRET") == false)
    }

    @Test func xsdPatternsUseXMLSchemaSemantics() throws {
        let time = try XSDRegularExpression(#"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?\+08:00"#)
        #expect(time.matches("2026-01-05T08:37:00+08:00"))
        #expect(time.matches("2026-01-05T08:37:00.5+08:00"))
        #expect(!time.matches("2026-01-05T08:37:00Z"))
        #expect(!time.matches("x2026-01-05T08:37:00+08:00"), "XSD patterns are anchored")
        let dept = try XSDRegularExpression("[0-9A-Z]{9}|[0-9A-Z]{18}")
        #expect(dept.matches("410103001"))
        #expect(!dept.matches("4101030011"))
    }
}
