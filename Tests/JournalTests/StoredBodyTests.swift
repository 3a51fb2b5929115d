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

    /// Content is scanned eight bytes at a time: a tag or a marker byte at any offset in a word must be found.
    @Test func markerBytesAndTagsAreFoundAtEveryOffsetOfTheContent() throws {
        for length in 0..<40 {
            for position in 0..<max(1, length) {
                var text = Array(repeating: UInt8(ascii: "x"), count: length)
                if length > 0 { text[position] = UInt8(ascii: "y") }
                let plain = "<Step><Opinion>" + String(decoding: text, as: UTF8.self) + "</Opinion></Step>"
                let compact = try #require(StoredBody.encode(plain))
                #expect(StoredBody.xml(compact) == plain)
                for marker: UInt8 in [0x01, 0x05] where length > 0 {
                    var marked = text
                    marked[position] = marker
                    #expect(StoredBody.encode("<Step><Opinion>" + String(decoding: marked, as: UTF8.self) + "</Opinion></Step>") == nil,
                            "marker byte \(marker) at \(position) of \(length)")
                }
            }
        }
        // Multi-byte text next to the tag that ends it, across a word boundary.
        for prefix in 0..<9 {
            let xml = "<Step><Opinion>" + String(repeating: "a", count: prefix) + "同意办理" + "</Opinion><CaseNo>1</CaseNo></Step>"
            #expect(StoredBody.encode(xml).map { StoredBody.xml($0) } == xml)
        }
    }

    /// Bodies nest three levels in the PUI; deeper ones (up to a limit) still encode, beyond it they stay XML.
    @Test func nestingBeyondTheLimitIsStoredAsXML() {
        func nested(_ depth: Int) -> String {
            String(repeating: "<Step>", count: depth) + "x" + String(repeating: "</Step>", count: depth)
        }
        #expect(StoredBody.encode(nested(StoredBody.maxEncodedDepth)).map { StoredBody.xml($0) } == nested(StoredBody.maxEncodedDepth))
        #expect(StoredBody.encode(nested(StoredBody.maxEncodedDepth + 1)) == nil)
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
        // A record as earlier versions stored it: the XML itself.
        let older = "<Step><CaseNo>C9</CaseNo><Opinion>同意 &amp; 转</Opinion></Step>"
        let chunk = RecordChunkCodec.encode([ChunkedRecord(type: "Step", key: "C9", rev: 1, deleted: false, line: 3,
                                                           storedBody: Array(older.utf8))])
        let db = try SQLiteDatabase(path: journal.path)
        try db.prepare("INSERT INTO record_chunks VALUES (2, 2, 's', 'old.csv', 0, ?1, ?2)").run([.text(chunk.types), .blob(chunk.data)])
        let entries = try journal.entries(after: 0)
        #expect(entries.first?.storedBody.first == StoredBody.compactFormMarker)
        #expect((entries.first?.storedBody.count ?? 0) * 2 < Self.application.utf8.count)
        #expect(entries.last?.storedBody == Array(older.utf8))
        #expect(entries.map(\.body) == [Self.application, older])
        // The same content again is unchanged: the digest is of the XML, whatever the stored form.
        #expect(try journal.batch { try journal.append(record, source: "s", origin: "g.csv", line: 5) } == .unchanged)
    }
}

@Suite struct SchemaVersionTests {
    /// A journal of schema 2 or 3 (a `records` row per record, XML or compact bodies) is converted to chunks when
    /// opened: every record reads back the same, revisions keep counting, and a newer schema is refused.
    @Test(arguments: ["2", "3"]) func anOlderJournalIsConvertedToChunksAndANewerOneIsRefused(version from: String) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-version-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("journal.sqlite").path
        let current = try Journal(path: path)
        let db = try SQLiteDatabase(path: path)
        func version() throws -> String? { try db.query("SELECT value FROM meta WHERE key = 'schema_version'").first?.first?.textValue }
        #expect(try version() == "5")
        // The tables of schema 3: a records row each. 300 records from two sources and three files, so that the
        // conversion must split chunks at the size limit and wherever the source or origin changes.
        try db.execute("""
            DROP TABLE record_chunks;
            CREATE TABLE records(seq INTEGER PRIMARY KEY, type TEXT NOT NULL, key TEXT NOT NULL, rev INTEGER NOT NULL,
                op INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL, source TEXT NOT NULL, origin TEXT, line INTEGER,
                ingested_at INTEGER NOT NULL);
            """)
        // Records 140 on were ingested an hour later (another poll): they must not take the earlier time.
        func ingestedAt(_ seq: Int64) -> Int64 { 1_700_000_000_000 + seq + (seq >= 140 ? 3_600_000 : 0) }
        var expected: [(seq: Int64, type: String, key: String, rev: Int64, deleted: Bool, body: String, source: String, origin: String?, line: Int)] = []
        let insert = try db.prepare("INSERT INTO records VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")
        let insertHead = try db.prepare("INSERT OR REPLACE INTO heads VALUES (?1, ?2, ?3, ?4, ?5)")
        for seq in Int64(1)...300 {
            let key = "C\(seq % 250)", type = seq % 3 == 0 ? "Step" : "Application"
            let rev: Int64 = seq > 250 ? 2 : 1
            let body = "<\(type)><CaseNo>\(key)</CaseNo><N>\(seq)</N></\(type)>"
            let source = seq <= 200 ? "drop" : "db"
            let origin: String? = seq <= 150 ? "a.csv" : (seq <= 200 ? "b.csv" : nil)
            // Schema 3 stored compact bodies as blobs, schema 2 XML as text; both may be in one file.
            let stored: SQLiteValue = from == "3" && seq % 2 == 0 ? .blob(StoredBody.encode(body) ?? Array(body.utf8)) : .text(body)
            try insert.run([.integer(seq), .text(type), .text(key), .integer(rev), .integer(seq == 299 ? 1 : 0), stored, .text(source),
                            origin.map(SQLiteValue.text) ?? .null, .integer(seq + 1), .integer(ingestedAt(seq))])
            try insertHead.run([.text(type), .text(key), .integer(rev), .blob(Journal.contentDigest(of: body)), .integer(seq)])
            expected.append((seq, type, key, rev, seq == 299, body, source, origin, Int(seq + 1)))
        }
        try db.execute("UPDATE meta SET value = '\(from)' WHERE key = 'schema_version'")
        _ = current
        let upgraded = try Journal(path: path)
        #expect(try version() == "5")
        #expect(try db.query("SELECT count(*) FROM sqlite_master WHERE name = 'records'").first?.first?.intValue == 0)
        #expect(try db.query("SELECT first_seq, last_seq FROM record_chunks ORDER BY first_seq").map { $0.compactMap(\.intValue) }
                == [[1, 128], [129, 139], [140, 150], [151, 200], [201, 300]],
                "≤ 128 records a chunk, split where the source, origin or ingest time changes")
        let entries = try upgraded.entries(after: 0, limit: 1000)
        #expect(entries.count == 300)
        for (entry, want) in zip(entries, expected) {
            #expect(entry.seq == want.seq && entry.type == want.type && entry.key == want.key && entry.rev == want.rev)
            #expect(entry.deleted == want.deleted && entry.body == want.body && entry.source == want.source)
            #expect(entry.origin == want.origin && entry.line == want.line)
            #expect(abs(Int64((entry.ingestedAt.timeIntervalSince1970 * 1000).rounded()) - ingestedAt(entry.seq)) <= 1000)
        }
        #expect(try upgraded.entries(seqs: [299, 7, 128, 129]).map(\.seq) == [7, 128, 129, 299])
        #expect(try upgraded.recordCount(after: 100, types: ["Step"]) == expected.filter { $0.seq > 100 && $0.type == "Step" }.count)
        // Revisions continue from the converted heads; new records follow the last converted seq.
        let last = expected[expected.count - 2]
        #expect(try upgraded.batch { try upgraded.append(NormalizedRecord(type: last.type, key: last.key, body: "<\(last.type)><CaseNo>\(last.key)</CaseNo><N>new</N></\(last.type)>"), source: "db", origin: nil, line: 1) }
                == .stored(rev: last.rev + 1, seq: 301))
        try db.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
        #expect(throws: JournalError.self) { try Journal(path: path) }
    }

    /// Schema 4 → 5 converts nothing: the number only makes an esgate of schema 4 refuse the file, since the
    /// uplink's packages fixed from now on keep their envelope only. Records read back unchanged.
    @Test func aSchema4JournalIsMarked5WithItsRecordsUnchanged() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-version-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("journal.sqlite").path
        let journal = try Journal(path: path)
        _ = try journal.batch {
            try journal.append(NormalizedRecord(type: "Application", key: "C1", body: "<Application><CaseNo>C1</CaseNo></Application>"),
                               source: "drop", origin: "a.csv", line: 2)
        }
        let before = try journal.entries(after: 0)
        let db = try SQLiteDatabase(path: path)
        try db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
        let reopened = try Journal(path: path)
        #expect(try db.query("SELECT value FROM meta WHERE key = 'schema_version'").first?.first?.textValue == "5")
        #expect(try reopened.entries(after: 0) == before)
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

    /// The log is checkpointed every 128 MiB whatever the page size, and cut back to that after a checkpoint.
    @Test func theLogIsCheckpointedEvery128MiBWhateverThePageSize() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-wal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let journal = try Journal(path: folder.appendingPathComponent("journal.sqlite").path)
        let pages = try journal.database.query("PRAGMA wal_autocheckpoint").first?.first?.intValue ?? 0
        #expect(pages * Int64(Journal.pageSize) == 128 << 20)
        #expect(try journal.database.query("PRAGMA journal_size_limit").first?.first?.intValue == 128 << 20)
    }
}

/// The compact body the ordinary-row path writes while serializing a record (`RecordLayout`) against the journal's
/// own encoder, for names in the table and not, a nested group present and absent, and text that needs escaping.
@Suite struct CompactBodyFromLayoutTests {
    static let xsd = """
        <xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:test" elementFormDefault="qualified">
          <xs:complexType name="Body"><xs:choice>
            <xs:element name="Odd" type="OddType"/>
            <xs:element name="Step" type="OddType"/>
          </xs:choice></xs:complexType>
          <xs:complexType name="OddType">
            <xs:annotation><xs:documentation>Key: CaseNo.</xs:documentation></xs:annotation>
            <xs:sequence>
              <xs:element name="CaseNo" type="xs:string"/>
              <xs:element name="NotInTheTable" type="xs:string" minOccurs="0"/>
              <xs:element name="AVeryLongElementNameBeyondThirtyTwoBytes" type="xs:string" minOccurs="0"/>
              <xs:element name="Outer" type="OuterType" minOccurs="0"/>
              <xs:element name="Amount" type="xs:decimal" minOccurs="0"/>
              <xs:element name="\u{212A}ind" type="xs:string" minOccurs="0"/>
            </xs:sequence>
          </xs:complexType>
          <xs:complexType name="OuterType">
            <xs:sequence>
              <xs:element name="Name" type="xs:string" minOccurs="0"/>
              <xs:element name="Inner" type="InnerType" minOccurs="0"/>
            </xs:sequence>
          </xs:complexType>
          <xs:complexType name="InnerType">
            <xs:sequence><xs:element name="Code" type="xs:string" minOccurs="0"/></xs:sequence>
          </xs:complexType>
        </xs:schema>
        """

    @Test func theLayoutsCompactBodyIsTheEncodersForEveryShape() throws {
        let schema = try PUISchema(xsd: Self.xsd)
        // "\u{212A}ind" (KELVIN SIGN) is canonically equivalent to the table's "Kind" but not the same bytes: the
        // encoder writes it literally, and so must the layout.
        let paths = ["CaseNo", "NotInTheTable", "AVeryLongElementNameBeyondThirtyTwoBytes", "Outer.Name", "Outer.Inner.Code", "Amount",
                     "\u{212A}ind"]
        let values: [[String?]] = [
            ["C-1", "x", "y", "张三", "K1", "12.50", "k"],
            ["C-2", nil, nil, nil, nil, nil, nil],                  // optional elements and the whole group absent
            ["C-3", "a&b<c>\r", "", nil, "内", nil, nil],           // escapes, an empty value, a group with one member
            ["C-4", nil, "长长长", "n", nil, "0", nil],
        ]
        var compared = 0
        for type in ["Odd", "Step"] {
            let layout = try #require(RecordLayout(schema: schema, type: type, paths: paths))
            for row in values {
                var arena: [UInt8] = []
                var ranges: [FieldValueRange] = []
                for value in row {
                    guard let value else { ranges.append(.absent); continue }
                    ranges.append(FieldValueRange(start: arena.count, count: value.utf8.count))
                    arena.append(contentsOf: value.utf8)
                }
                let laidOut = try #require(arena.withUnsafeBufferPointer { bytes in
                    ranges.withUnsafeBufferPointer { layout.normalizeWithCompactBody(arena: bytes, values: $0) }
                }, "\(row)")
                let compact = try #require(laidOut.compactBody)
                #expect(compact == StoredBody.encode(laidOut.record.body), "\(laidOut.record.body)")
                #expect(StoredBody.xml(compact) == laidOut.record.body)
                // Names outside the table are written literally, table names by code ("Step", "CaseNo" are).
                let literalNamePresent = type == "Odd" || row[1] != nil || row[2] != nil || row[3] != nil || row[4] != nil || row[6] != nil
                #expect(compact.contains(CompactBodyForm.literalStart) == literalNamePresent, "\(type) \(row)")
                #expect(compact.starts(with: type == "Step" ? [CompactBodyForm.marker, CompactBodyForm.namedStart] : [CompactBodyForm.marker, CompactBodyForm.literalStart]))
                compared += 1
            }
        }
        #expect(compared == 8)
    }
}

/// The accumulator the package builders decode records into, against an array given the same pieces.
@Suite struct ByteAccumulatorTests {
    @Test func itHoldsWhatAnArrayWouldThroughGrowthAndTruncation() {
        var rng = SystemRandomNumberGenerator()
        var accumulator = ByteAccumulator(capacity: 1)   // grows from the smallest buffer
        var reference: [UInt8] = []
        for round in 0..<5000 {
            switch Int.random(in: 0..<10, using: &rng) {
            case 0:
                let keep = Int.random(in: 0...reference.count, using: &rng)
                accumulator.truncate(to: keep)
                reference.removeSubrange(keep...)
            case 1:
                let byte = UInt8.random(in: 0...255, using: &rng)
                accumulator.append(byte: byte)
                reference.append(byte)
            case 2:
                let text = "第\(round)段 <x>"
                accumulator.append(text)
                reference.append(contentsOf: text.utf8)
            default:
                let piece = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if Bool.random(using: &rng) { accumulator.append(piece) } else { piece.withUnsafeBufferPointer { accumulator.append($0) } }
                reference.append(contentsOf: piece)
            }
            #expect(accumulator.count == reference.count)
        }
        #expect(accumulator.makeArray() == reference)
        #expect(accumulator.withUnsafeBufferPointer { Array($0) } == reference)
    }

    @Test func aCompactRecordDecodesIntoAnAccumulatorAfterWhatItHolds() throws {
        let xml = "<Step><CaseNo>A&amp;B</CaseNo><StepName>受理</StepName><Unknown>x</Unknown></Step>"
        let compact = try #require(StoredBody.encode(xml))
        let root = Array("Step".utf8), attributes = Array(#" rev="3""#.utf8)
        var accumulator = ByteAccumulator(capacity: 2)
        accumulator.append(byte: 0x41)
        func decode(_ stored: [UInt8]) -> Bool {
            stored.withUnsafeBufferPointer { stored in
                root.withUnsafeBufferPointer { r in attributes.withUnsafeBufferPointer { StoredBody.appendCompactRecord(of: stored, root: r, attributes: $0, to: &accumulator) } }
            }
        }
        #expect(decode(compact))
        #expect(String(decoding: accumulator.makeArray(), as: UTF8.self)
            == #"A<Step rev="3"><CaseNo>A&amp;B</CaseNo><StepName>受理</StepName><Unknown>x</Unknown></Step>"#)
        // A damaged body (cut short) leaves the accumulator as it was.
        let before = accumulator.makeArray()
        #expect(!decode(Array(compact.dropLast(3))))
        #expect(accumulator.makeArray() == before)
    }
}
