import CryptoSupport
import Foundation
import GatewayModel
import SQLiteSupport
import Testing
@testable import Journal

/// A small deterministic generator, so that a failing case can be replayed from its seed.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Text as the journal stores it: canonical escaping, Chinese, non-BMP, TAB and LF kept raw.
private let textPieces = ["A", "7", " ", "\t", "\n", "&amp;", "&lt;", "&gt;", "&#xD;", "&quot;", "\"", "'", "张", "备注",
                          "𠀀", "—", "=", "/", "?", "!", "x-y_z.0"]
private let unknownNames = ["Extra", "Zz", "X", "New_Element", "v2.Field", "Name2", "名称"]

private func randomElement(_ rng: inout SplitMix64, depth: Int) -> String {
    let useTable = rng.next() % 5 != 0
    let name = useTable ? StoredBody.elementNames.randomElement(using: &rng) ?? "Name"
                        : unknownNames.randomElement(using: &rng) ?? "X"
    var content = ""
    let children = depth < 3 ? Int(rng.next() % 4) : 0
    if children == 0 {
        for _ in 0..<Int(rng.next() % 6) { content += textPieces.randomElement(using: &rng) ?? "" }
    } else {
        for _ in 0..<children {
            if rng.next() % 4 == 0 { content += textPieces.randomElement(using: &rng) ?? "" }   // mixed content
            content += randomElement(&rng, depth: depth + 1)
        }
    }
    return "<\(name)>\(content)</\(name)>"
}

/// Whether every start tag of `xml` is closed by an end tag of the same name, innermost first.
private func tagsBalance(_ xml: String) -> Bool {
    var open: [Substring] = []
    var rest = Substring(xml)
    while let lt = rest.firstIndex(of: "<") {
        guard let gt = rest[lt...].firstIndex(of: ">") else { return false }
        let tag = rest[rest.index(after: lt)..<gt]
        if tag.hasPrefix("/") {
            guard open.popLast() == tag.dropFirst() else { return false }
        } else {
            open.append(tag)
        }
        rest = rest[rest.index(after: gt)...]
    }
    return open.isEmpty
}

private func temporaryJournal() throws -> (Journal, URL) {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-body-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return (try Journal(path: folder.appendingPathComponent("journal.sqlite").path), folder)
}

@Suite struct StoredBodyTests {
    static let application = "<Application><CaseNo>410103006202601050000001</CaseNo><ItemCode>XK0009</ItemCode>"
        + "<ItemName>建设工程规划许可</ItemName><DeptCode>410103006</DeptCode><Applicant><Name>史强丽</Name><IdType>01</IdType>"
        + "<IdNumber>410103195504044271</IdNumber></Applicant><Channel>1</Channel>"
        + "<AppliedAt>2026-01-05T08:37:00+08:00</AppliedAt></Application>"

    @Test func aRecordRoundTripsAndShrinksByMoreThanHalf() throws {
        let compact = try #require(StoredBody.encode(Self.application))
        #expect(compact.first == 0x01)
        #expect(StoredBody.xml(compact) == Self.application)
        #expect(compact.count * 2 < Self.application.utf8.count, "\(compact.count) of \(Self.application.utf8.count) bytes")
    }

    @Test func randomBodiesRoundTripExactly() throws {
        var rng = SplitMix64(state: 20261204)
        var encoded = 0
        for _ in 0..<20_000 {
            let xml = randomElement(&rng, depth: 0)
            let compact = try #require(StoredBody.encode(xml), "declined: \(xml)")
            encoded += 1
            let back = StoredBody.xml(compact)
            #expect(back == xml)
            if back != xml { break }
        }
        #expect(encoded == 20_000)
    }

    @Test(arguments: [
        "<Step id=\"1\"><CaseNo>1</CaseNo></Step>",          // attributes
        "<Step><CaseNo/></Step>",                             // empty-element tag
        "<Step><!-- note --><CaseNo>1</CaseNo></Step>",       // comment
        "<Step><?pi x?></Step>",                              // processing instruction
        "<Step><CaseNo>1</Name></Step>",                      // end tag names another element
        "<Step><CaseNo>1</CaseNo>",                           // unclosed
        "<Step>1</Step></Step>",                              // one end tag too many
        "text<Step></Step>",                                  // does not start with a tag
        "<Step>a\u{01}b</Step>",                              // a byte the compact form uses as a marker
        "<Step ><CaseNo>1</CaseNo></Step>",                   // space in a tag
        "<Step><CaseNo>1</CaseNo></Step><Step></Step>",       // two roots are kept too, but as they are
    ])
    func whatTheEncoderDeclinesIsStoredAsXMLAndReadBackUnchanged(xml: String) throws {
        if let compact = StoredBody.encode(xml) {
            // Only well-formed sequences of plain tags may be encoded; they must come back byte for byte.
            #expect(StoredBody.xml(compact) == xml)
        } else {
            #expect(StoredBody.xml(Array(xml.utf8)) == xml)
        }
    }

    @Test func damagedCompactBodiesDecodeWithoutCrashingAndStayBalanced() {
        var rng = SplitMix64(state: 7)
        let compact = StoredBody.encode(Self.application) ?? []
        for _ in 0..<5_000 {
            var bytes = compact
            // Cut, flip and splice: what a damaged page or a newer writer could leave.
            bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1))))
            for _ in 0..<Int(rng.next() % 4) where !bytes.isEmpty {
                bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            if bytes.first != 0x01 { bytes.insert(0x01, at: 0) }
            var decoded: [UInt8] = []
            let complete = bytes.withUnsafeBufferPointer { StoredBody.appendXML(of: $0, to: &decoded) }
            if bytes.count < compact.count && Array(compact.prefix(bytes.count)) == bytes {
                #expect(!complete, "a body cut short is reported damaged")
            }
            let xml = StoredBody.xml(bytes)
            #expect(tagsBalance(xml), "every element opened is closed, innermost first: \(xml)")
        }
    }

    @Test func decodingReportsWhetherTheWholeBodyWasThere() throws {
        let compact = try #require(StoredBody.encode(Self.application))
        func complete(_ bytes: [UInt8]) -> Bool {
            var out: [UInt8] = []
            return bytes.withUnsafeBufferPointer { StoredBody.appendXML(of: $0, to: &out) }
        }
        #expect(complete(compact))
        #expect(complete(Array(Self.application.utf8)), "XML bodies are taken as they are")
        #expect(!complete(Array(compact.dropLast())), "root never closed")
        #expect(!complete(compact + [0x05]), "an end tag without a start")
        #expect(!complete(compact + Array("x".utf8)), "bytes after the root")
        #expect(!complete([0x01, 0x02, 0xFF, 0x05]), "a code the table does not have")
        #expect(!complete([0x01, 0x02, 0x04] + Array("a<b".utf8) + [0x05]), "a raw < in text")
        #expect(StoredBody.encode("<Step><CaseNo>1</CaseNo></Step><Step></Step>") == nil, "one element per body")
    }

    /// Journals on disk hold these codes: the table may only grow at its end.
    @Test func elementNamesAreFrozen() {
        let released = StoredBody.elementNames.prefix(131).joined(separator: ",")
        #expect(Digest.sha256(released).hexString == "3f1a38b06dadd4203aa2808c168c383afbb2d7fec7590ef0048f657f4b3cdbf6")
        #expect(StoredBody.elementNames.count >= 131 && StoredBody.elementNames.count <= 256)
        #expect(Set(StoredBody.elementNames).count == StoredBody.elementNames.count, "names are unique")
    }

    @Test func theJournalStoresCompactBodiesAndReadsOldXMLBodiesToo() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        let record = NormalizedRecord(type: "Application", key: "410103006202601050000001", body: Self.application)
        #expect(try journal.batch { try journal.append(record, source: "s", origin: "f.csv", line: 2) } == .stored(rev: 1, seq: 1))
        // A row as a version-2 journal stored it: the XML itself, as text.
        let older = "<Step><CaseNo>C9</CaseNo><Opinion>同意 &amp; 转</Opinion></Step>"
        let db = try SQLiteDatabase(path: journal.path)
        try db.execute("""
            INSERT INTO records(seq, type, key, rev, op, body, source, origin, line, ingested_at)
            VALUES (2, 'Step', 'C9', 1, 0, '\(older)', 's', 'old.csv', 3, 0)
            """)
        let storage = try db.query("SELECT typeof(body), length(CAST(body AS BLOB)) FROM records ORDER BY seq")
        #expect(storage.map { $0[0].textValue } == ["blob", "text"])
        #expect((storage[0][1].intValue ?? 0) * 2 < Int64(Self.application.utf8.count))
        #expect(try journal.entries(after: 0).map(\.body) == [Self.application, older])
        // The same content again is unchanged: the digest is of the XML, whatever the stored form.
        #expect(try journal.batch { try journal.append(record, source: "s", origin: "g.csv", line: 5) } == .unchanged)
    }
}

@Suite struct SchemaVersionTests {
    @Test func aVersion2JournalIsMarked3AndANewerOneIsRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-version-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("journal.sqlite").path
        let journal = try Journal(path: path)
        let record = NormalizedRecord(type: "Step", key: "C1", body: "<Step><CaseNo>C1</CaseNo></Step>")
        _ = try journal.batch { try journal.append(record, source: "s", origin: nil, line: 1) }
        let db = try SQLiteDatabase(path: path)
        func version() throws -> String? { try db.query("SELECT value FROM meta WHERE key = 'schema_version'").first?.first?.textValue }
        #expect(try version() == "3", "compact bodies: an esgate that knows only schema 2 must refuse this file")
        // Written by the previous version: same tables, XML bodies only.
        try db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        let upgraded = try Journal(path: path)
        #expect(try version() == "3")
        #expect(try upgraded.entries(after: 0).map(\.body) == [record.body])
        try db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
        #expect(throws: JournalError.self) { try Journal(path: path) }
    }
}

@Suite struct PageSizeTests {
    @Test func aNewJournalUses16KiBPagesAnExistingOneKeepsItsOwn() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-page-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let fresh = folder.appendingPathComponent("new.sqlite").path
        _ = try Journal(path: fresh)
        #expect(try SQLiteDatabase(path: fresh).query("PRAGMA page_size").first?.first?.intValue == Int64(Journal.pageSize))
        // A journal created with SQLite's default pages (as earlier versions did) opens and takes records as before.
        let older = folder.appendingPathComponent("old.sqlite").path
        let db = try SQLiteDatabase(path: older)
        try db.execute("PRAGMA page_size=4096")
        try db.execute("PRAGMA journal_mode=WAL")
        try db.execute("CREATE TABLE early(x)")
        let journal = try Journal(path: older)
        let record = NormalizedRecord(type: "Step", key: "C1", body: "<Step><CaseNo>C1</CaseNo></Step>")
        #expect(try journal.batch { try journal.append(record, source: "s", origin: nil, line: 1) } == .stored(rev: 1, seq: 1))
        #expect(try db.query("PRAGMA page_size").first?.first?.intValue == 4096)
    }
}
