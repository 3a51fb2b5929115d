import Foundation
import GatewayModel
import Journal
import SQLiteSupport
import Testing

private func chunkJournal() throws -> (Journal, URL) {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-chunk-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return (try Journal(path: folder.appendingPathComponent("journal.sqlite").path, durable: false), folder)
}

private func record(_ type: String, _ n: Int, _ text: String = "x") -> NormalizedRecord {
    NormalizedRecord(type: type, key: "K\(n)", body: "<\(type)><CaseNo>K\(n)</CaseNo><Opinion>\(text) \(n)</Opinion></\(type)>")
}

@Suite struct RecordChunkTests {
    @Test func randomChunksRoundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<60 {
            let records = (0..<Int.random(in: 1...200, using: &generator)).map { i in
                ChunkedRecord(type: ["Application", "Step", "类型", ""].randomElement(using: &generator) ?? "Step",
                              key: String(repeating: "键k\u{1F}", count: Int.random(in: 0...40, using: &generator)) + "\(i)",
                              rev: Int64.random(in: Int64.min...Int64.max, using: &generator),
                              deleted: Bool.random(using: &generator), line: Int.random(in: -5...Int.max, using: &generator),
                              storedBody: (0..<Int.random(in: 0...400, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
            }
            let chunk = RecordChunkCodec.encode(records)
            var decoded: [(Int64, ChunkedRecord)] = []
            try chunk.data.withUnsafeBytes { data in
                try RecordChunkCodec.decode(types: chunk.types, data: data, firstSeq: 1000) { decoded.append(($0, $1)); return true }
            }
            #expect(decoded.map(\.1) == records)
            #expect(decoded.map(\.0) == Array(1000..<(1000 + Int64(records.count))))
        }
    }

    /// Damaged storage (truncated, bytes changed, a mangled types column) is reported, never a crash or a read
    /// past the end.
    @Test func damagedChunksAreReportedNotCrashedOn() throws {
        let records = (0..<50).map { ChunkedRecord(type: $0 % 2 == 0 ? "Application" : "Step", key: "K\($0)", rev: 1, deleted: false,
                                                   line: $0, storedBody: Array("<Step><CaseNo>\($0)</CaseNo></Step>".utf8)) }
        let chunk = RecordChunkCodec.encode(records)
        var damagedSeen = 0
        for trial in 0..<2000 {
            var data = chunk.data
            var types = chunk.types
            switch trial % 3 {
            case 0: data = Array(data.prefix(Int.random(in: 0..<data.count)))
            case 1:
                for _ in 0..<Int.random(in: 1...4) { data[Int.random(in: 0..<data.count)] = UInt8.random(in: 0...255) }
            default: types = String(types.shuffled())
            }
            do {
                var count = 0
                try data.withUnsafeBytes { bytes in
                    try RecordChunkCodec.decode(types: types, data: bytes, firstSeq: 1) { _, _ in count += 1; return true }
                }
                #expect(count == 50, "a chunk that decodes without complaint has all its records")
            } catch let error as RecordChunkDamage {
                damagedSeen += 1
                #expect(error.description.contains("record chunk at seq 1 is damaged"))
            }
        }
        #expect(damagedSeen > 500)
    }

    /// Records are written a chunk at a time, but a reader on the same connection sees every record appended so
    /// far, a rollback leaves nothing, and chunks split at the size limit and where the source or origin changes.
    @Test func chunksFormAsRecordsArriveAndReadersSeeEveryRecord() throws {
        let (journal, folder) = try chunkJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        try journal.begin()
        for n in 1...300 { _ = try journal.append(record(n % 3 == 0 ? "Step" : "Application", n), source: "a", origin: "f1", line: n) }
        // Read inside the transaction: the records not yet in a chunk are visible too.
        #expect(try journal.entries(after: 250, limit: 100).map(\.seq) == Array(251...300))
        for n in 301...310 {
            _ = try journal.append(record("Step", n), source: "a", origin: "f2", line: n)
            // Reading an earlier record (as a snapshot's deletion does) does not cut the chunk being filled.
            if n == 305 { #expect(try journal.entries(seqs: [3]).map(\.seq) == [3]) }
        }
        for n in 311...320 { _ = try journal.append(record("Step", n), source: "b", origin: "f2", line: n) }
        try journal.commit()
        let db = try SQLiteDatabase(path: journal.path)
        let chunks = try db.query("SELECT first_seq, last_seq FROM record_chunks ORDER BY first_seq").map { $0.compactMap(\.intValue) }
        #expect(chunks == [[1, 128], [129, 256], [257, 300], [301, 310], [311, 320]])
        let all = try journal.entries(after: 0, limit: 1000)
        #expect(all.map(\.seq) == Array(1...320))
        #expect(all.map(\.line) == Array(1...320))
        #expect(all[299].origin == "f1" && all[300].origin == "f2" && all[310].source == "b")
        // Type filters, limits and starting points inside a chunk agree with filtering every record.
        for after in [0, 1, 127, 128, 129, 200, 300, 319, 320] as [Int64] {
            for limit in [1, 7, 128, 1000] {
                let expected = all.filter { $0.seq > after && $0.type == "Step" }.prefix(limit).map(\.seq)
                #expect(try journal.entries(after: after, limit: limit, types: ["Step"]).map(\.seq) == Array(expected))
            }
            #expect(try journal.recordCount(after: after, types: ["Step"]) == all.filter { $0.seq > after && $0.type == "Step" }.count)
            #expect(try journal.recordCount(after: after) == all.filter { $0.seq > after }.count)
        }
        #expect(try journal.entries(seqs: [320, 1, 128, 129, 999, 257]).map(\.seq) == [1, 128, 129, 257, 320])
        #expect(try journal.lastSeq() == 320)
        // A rolled-back batch leaves no chunk, and the next records take the seqs it would have used.
        try journal.begin()
        for n in 321...400 { _ = try journal.append(record("Step", n), source: "a", origin: "f3", line: n) }
        journal.rollback()
        #expect(try journal.lastSeq() == 320)
        #expect(try journal.batch { try journal.append(record("Step", 500), source: "a", origin: "f3", line: 1) } == .stored(rev: 1, seq: 321))
        let stats = try journal.stats()
        #expect(stats.records == 321 && stats.lastSeq == 321)
        #expect(stats.types.map(\.type) == ["Application", "Step"])
        #expect(stats.types.map(\.records) == [200, 121])
    }

    /// A large body (over the chunk's byte limit on its own) is a chunk of its own and reads back whole.
    @Test func aBodyLargerThanAChunkIsStoredWhole() throws {
        let (journal, folder) = try chunkJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        let big = String(repeating: "长文本", count: 40_000)
        try journal.batch {
            _ = try journal.append(record("Step", 1), source: "a", origin: nil, line: 1)
            _ = try journal.append(record("Step", 2, big), source: "a", origin: nil, line: 2)
            _ = try journal.append(record("Step", 3), source: "a", origin: nil, line: 3)
        }
        #expect(try journal.entries(after: 0).map(\.body) == [record("Step", 1).body, record("Step", 2, big).body, record("Step", 3).body])
        let db = try SQLiteDatabase(path: journal.path)
        #expect(try db.query("SELECT first_seq, last_seq FROM record_chunks ORDER BY first_seq").map { $0.compactMap(\.intValue) }
                == [[1, 2], [3, 3]])
    }
}
