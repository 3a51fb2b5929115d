@testable import Adapters
import Foundation
import GatewayRuntime
import Journal
import Testing
import TextSupport

private let header = "办件编号,事项编码,事项名称,部门编码,部门名称,申请人,证件号码,环节代码,环节名称,办理人,办理时间,承诺时限,法定时限,收费金额,备注"

/// A GB18030 drop file with bad rows scattered through it, and what a single reader makes of every row: its line,
/// where the next row starts, and what must become of it. Chunks of a few dozen rows put bad rows into chunks
/// of every preparer.
struct MixedFile {
    enum Kind: Equatable {
        /// One Step record keyed by the row's case number.
        case good(caseNo: String)
        /// Quarantined with this stage (decode and parse keep the raw bytes).
        case quarantined(QuarantineItem.Stage)
        /// Quarantined at mapping or validation.
        case rejectedValue
    }

    struct Row {
        var line: Int
        var raw: [UInt8]
        var kind: Kind
        /// Byte offset just after the row's terminator.
        var endOffset: Int64
    }

    private(set) var bytes: [UInt8] = []
    private(set) var rows: [Row] = []
    /// Offset just after the header row: where row reading starts.
    private(set) var bodyOffset: Int64 = 0
    private var line = 1

    var goodRows: Int { rows.filter { if case .good = $0.kind { true } else { false } }.count }
    var quarantinedRows: Int { rows.count - goodRows }
    /// The line after the last row (what the file's progress says when it is done).
    var endLine: Int { line }

    init(rows count: Int) throws {
        append(try encode(header, as: .gb18030), kind: nil)
        bodyOffset = Int64(bytes.count)
        for index in 0..<count {
            let caseNo = "P\(100_000 + index)"
            func text(time: String = "2026-01-05 08:37:00", remark: String = "") -> String {
                "\(caseNo),XK0008,城市道路占用许可,410103001,二七区行政服务中心,王伟,410103199001011230,02,环节,李娜,\(time),7,20,,\(remark)"
            }
            switch index {
            case _ where index % 97 == 13:  // a byte sequence GB18030 does not have
                append(try encode(text(remark: "坏"), as: .gb18030) + [0xFF, 0x20], kind: .quarantined(.decode))
            case _ where index % 131 == 7:  // a surplus non-empty field
                append(try encode(text() + ",surplus", as: .gb18030), kind: .quarantined(.parse))
            case _ where index % 211 == 100:  // a month that does not exist
                append(try encode(text(time: "2026-13-05 08:37:00"), as: .gb18030), kind: .rejectedValue)
            case _ where index % 59 == 3:  // a quoted line break: the row spans two lines
                append(try encode(text(remark: "\"跨行\r\n备注\""), as: .gb18030), kind: .good(caseNo: caseNo), lines: 2)
            default:
                append(try encode(text(), as: .gb18030), kind: .good(caseNo: caseNo))
            }
            if index % 83 == 41 { append([], kind: nil) }           // blank lines are skipped, not counted
            if index % 251 == 250 { append(Array("\n\r\n".utf8), kind: nil, terminator: [], lines: 2) }
        }
        // The file ends inside an open quote: the rest is one quarantined row, kept raw.
        let tail = try encode("P999999,XK0008,\"不完整\r\n的行", as: .gb18030)
        append(tail, kind: .quarantined(.parse), terminator: [], lines: 2)
    }

    private mutating func append(_ row: [UInt8], kind: Kind?, terminator: [UInt8] = [0x0D, 0x0A], lines: Int = 1) {
        let start = line
        bytes += row + terminator
        line += lines
        if let kind { rows.append(Row(line: start, raw: row, kind: kind, endOffset: Int64(bytes.count))) }
    }

    func write(to url: URL) throws { try Data(bytes).write(to: url) }
}

/// What the writer sees of a prepared batch.
private struct SeenBatch: Equatable {
    struct Row: Equatable {
        var line: Int
        var keys: [String]
        var quarantine: QuarantineItem.Stage?
        var quarantineLine: Int?
        var raw: [UInt8]?
    }

    var rows: [Row]
    var endOffset: Int64
    var endLine: Int
    var isLast: Bool
}

@Suite struct ParallelPreparationTests {
    private func preparer(header: [String]) throws -> RowPreparer {
        let workspace = try Workspace()
        let loaded = try workspace.gateway().configuration
        let plan = try #require(loaded.mappings["gen-cases"])
        let bound = try plan.bind(header: header).get()
        return RowPreparer(schema: loaded.schema, mapping: bound)
    }

    /// Runs the preparing stage over `path` and takes every batch as the writer does, with `pause` called after
    /// each (to let the preparers run ahead, or not).
    private func prepareAll(path: String, from offset: Int64, preparers: Int, rowsPerChunk: Int, writerHelps: Bool = false,
                            helped: ((Int) -> Void)? = nil, pause: (Int) -> Void = { _ in }) throws -> [SeenBatch] {
        let fields = header.split(separator: ",").map(String.init)
        let channel = OrderedBatchChannel(capacity: 4, preparers: preparers + 1)
        let job = RowReadingJob(name: "mixed.csv", source: "drop", header: fields, encoding: .gb18030, delimiter: 0x2C,
                                preparer: try preparer(header: fields),
                                chunks: RawChunkSource(path: path, startOffset: offset, startLine: 2, rowsPerChunk: rowsPerChunk),
                                channel: channel, cpu: CPUTally())
        let stop = job.start(preparers: preparers, threadName: "test-prepare")
        defer { stop() }
        let feed = WriterFeed(job: job, index: preparers, helps: writerHelps)
        defer { helped?(feed.helped) }
        var seen: [SeenBatch] = []
        while let batch = try feed.next() {
            seen.append(SeenBatch(rows: batch.rows.map {
                SeenBatch.Row(line: $0.line, keys: $0.records.map(\.key), quarantine: $0.quarantine?.stage,
                              quarantineLine: $0.quarantine?.line, raw: $0.quarantine?.raw)
            }, endOffset: batch.endOffset, endLine: batch.endLine, isLast: batch.isLast))
            channel.recycle(batch)
            pause(seen.count)
            if batch.isLast { break }
        }
        return seen
    }

    /// With the writer preparing chunks itself while the next one is not ready (`WriterFeed`, as in an ingest),
    /// and without.
    @Test(.timeLimit(.minutes(2)), arguments: [1, 2, 3], [false, true])
    func batchesReachTheWriterInFileOrderWithTheOffsetsOfASingleReader(preparers: Int, writerHelps: Bool) throws {
        let file = try MixedFile(rows: 4000)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-mixed-\(UUID().uuidString).csv")
        try file.write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let rowsPerChunk = 37
        // A writer that now and then falls behind, so that preparers run ahead and wait for the window.
        var helped = 0
        let seen = try prepareAll(path: url.path, from: file.bodyOffset, preparers: preparers, rowsPerChunk: rowsPerChunk,
                                  writerHelps: writerHelps, helped: { helped = $0 }) {
            if $0 % 7 == 0 { Thread.sleep(forTimeInterval: 0.005) }
        }
        // One preparer cannot keep up with a writer that only takes: the writer prepares some chunks itself.
        if writerHelps && preparers == 1 { #expect(helped > 0) }
        if !writerHelps { #expect(helped == 0) }
        let expectedChunks = file.rows.count / rowsPerChunk + 1
        try #require(seen.count == expectedChunks, "a chunk per \(rowsPerChunk) rows, and a last one")
        #expect(seen.map(\.isLast) == Array(repeating: false, count: expectedChunks - 1) + [true])
        for (index, batch) in seen.enumerated() {
            let expected = file.rows[(index * rowsPerChunk)..<min((index + 1) * rowsPerChunk, file.rows.count)]
            #expect(batch.rows.map(\.line) == expected.map(\.line), "chunk \(index): the rows of the file, in order")
            if batch.isLast {
                #expect(batch.endOffset == Int64(file.bytes.count))
                #expect(batch.endLine == file.endLine)
            } else {
                // Where a restart continues: just after the chunk's last row (blank lines after it belong to the next).
                #expect(batch.endOffset == expected.last?.endOffset, "chunk \(index)")
                #expect(batch.endLine == (expected.last?.line ?? 0) + 1 + (expected.last?.raw.contains(0x0A) == true ? 1 : 0))
            }
            for (row, want) in zip(batch.rows, expected) {
                switch want.kind {
                case .good(let caseNo):
                    #expect(row.quarantine == nil, "line \(row.line)")
                    #expect(row.keys.count == 1 && row.keys[0].hasPrefix(caseNo), "line \(row.line): \(row.keys)")
                case .quarantined(let stage):
                    #expect(row.quarantine == stage, "line \(row.line)")
                    #expect(row.quarantineLine == want.line)
                    #expect(row.raw == want.raw, "line \(row.line): the raw bytes are the row's own")
                case .rejectedValue:
                    #expect(row.quarantine == .map || row.quarantine == .validate, "line \(row.line)")
                    #expect(row.quarantineLine == want.line)
                }
            }
        }
        // The same batches as one preparer makes (the reference: today's single reader).
        if preparers > 1 {
            let single = try prepareAll(path: url.path, from: file.bodyOffset, preparers: 1, rowsPerChunk: rowsPerChunk)
            #expect(seen == single)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aFileEndingAtAChunkBoundaryEndsWithAnEmptyLastBatch() throws {
        var text = header + "\n"
        for index in 0..<20 {
            text += "P\(index),XK0008,城市道路占用许可,410103001,二七区行政服务中心,王伟,410103199001011230,02,环节,李娜,2026-01-05 08:37:00,7,20,,\n"
        }
        text += "\n"
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-even-\(UUID().uuidString).csv")
        try Data(try encode(text, as: .gb18030)).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let bodyOffset = Int64(try encode(header + "\n", as: .gb18030).count)
        let seen = try prepareAll(path: url.path, from: bodyOffset, preparers: 2, rowsPerChunk: 10)
        #expect(seen.map(\.rows.count) == [10, 10, 0])
        #expect(seen.map(\.isLast) == [false, false, true])
        #expect(seen.last?.endOffset == Int64(try encode(text, as: .gb18030).count))
        #expect(seen.last?.endLine == 23)
        #expect(seen.flatMap { $0.rows.map(\.line) } == Array(2...21))
    }

    @Test(.timeLimit(.minutes(1)), arguments: [false, true])
    func aFileThatCannotBeOpenedFailsTheWriterAndStopsEveryPreparer(writerHelps: Bool) throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-missing-\(UUID().uuidString).csv")
        #expect(throws: FileReadError.self) {
            _ = try prepareAll(path: missing.path, from: 0, preparers: 2, rowsPerChunk: 10, writerHelps: writerHelps)
        }
    }

    /// The writer's own chunks never make it wait for itself: one beyond the slots is refused (and kept by the
    /// writer for later), not waited for.
    @Test func theWritersOfferOfAChunkBeyondTheSlotsIsRefusedNotWaitedFor() throws {
        let channel = OrderedBatchChannel(capacity: 2, preparers: 2)
        #expect(!channel.isNextReady)
        #expect(!channel.offer(PreparedBatch(endOffset: 0, endLine: 0, isLast: false, sequence: 2)))
        #expect(channel.offer(PreparedBatch(endOffset: 0, endLine: 0, isLast: false, sequence: 1)))
        #expect(!channel.isNextReady, "chunk 0 is still missing")
        #expect(channel.put(PreparedBatch(endOffset: 10, endLine: 2, isLast: false, sequence: 0)))
        #expect(channel.isNextReady)
        #expect(try channel.take()?.endOffset == 10)
        #expect(channel.offer(PreparedBatch(endOffset: 30, endLine: 4, isLast: true, sequence: 2)), "within the slots now")
        #expect(try channel.take()?.sequence == 1)
        #expect(try channel.take()?.endOffset == 30)
    }

    @Test(.timeLimit(.minutes(1)))
    func aWriterThatStopsEarlyStopsEveryPreparer() throws {
        let file = try MixedFile(rows: 3000)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-stop-\(UUID().uuidString).csv")
        try file.write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let fields = header.split(separator: ",").map(String.init)
        let channel = OrderedBatchChannel(capacity: 2, preparers: 2)
        let tally = CPUTally()
        let job = RowReadingJob(name: "mixed.csv", source: "drop", header: fields, encoding: .gb18030, delimiter: 0x2C,
                                preparer: try preparer(header: fields),
                                chunks: RawChunkSource(path: url.path, startOffset: file.bodyOffset, startLine: 2, rowsPerChunk: 20),
                                channel: channel, cpu: tally)
        let stop = job.start(preparers: 2, threadName: "test-stop")
        let first = try #require(try channel.take())
        #expect(first.rows.first?.line == 2)
        Thread.sleep(forTimeInterval: 0.05)  // both preparers are now blocked on the full window
        stop()  // returns only when both have stopped (else the time limit fails the test)
        #expect(tally.summary.contains("+"), "both preparers ran and stopped: \(tally.summary)")
    }
}

@Suite struct OrderedBatchChannelTests {
    private func batch(_ sequence: Int, preparer: Int = 0, last: Bool = false) -> PreparedBatch {
        PreparedBatch(rows: [PreparedRow(line: sequence)], endOffset: Int64(sequence * 10), endLine: sequence,
                      isLast: last, sequence: sequence, preparer: preparer)
    }

    @Test(.timeLimit(.minutes(1)))
    func batchesPutOutOfOrderAreTakenInOrderAndTheWindowIsBounded() throws {
        let channel = OrderedBatchChannel(capacity: 3, preparers: 2)
        #expect(channel.put(batch(2, preparer: 0)))
        #expect(channel.put(batch(1, preparer: 1)))
        // Sequence 3 lies outside the window (0…2) until the writer has taken 0: the put blocks.
        let putDone = DispatchSemaphore(value: 0)
        let third = batch(3, preparer: 1)
        Thread { if channel.put(third) { putDone.signal() } }.start()
        #expect(putDone.wait(timeout: .now() + 0.2) == .timedOut, "a chunk beyond the window waits")
        #expect(channel.put(batch(0, preparer: 0)))
        #expect(try channel.take()?.sequence == 0)
        #expect(putDone.wait(timeout: .now() + 10) == .success, "taking 0 opens the window for 3")
        #expect(try channel.take()?.sequence == 1)
        #expect(try channel.take()?.sequence == 2)
        #expect(try channel.take()?.sequence == 3)
    }

    @Test(.timeLimit(.minutes(1)))
    func aFailureReachesTheWriterOnlyAfterEveryEarlierBatch() throws {
        struct Broken: Error {}
        let channel = OrderedBatchChannel(capacity: 4, preparers: 2)
        #expect(channel.put(batch(1)))
        channel.fail(Broken(), at: 2)
        #expect(channel.put(batch(0)))
        #expect(try channel.take()?.sequence == 0)
        #expect(try channel.take()?.sequence == 1)
        #expect(throws: Broken.self) { try channel.take() }
    }

    @Test func spentBatchesGoBackToThePreparerThatMadeThem() {
        let channel = OrderedBatchChannel(capacity: 4, preparers: 2)
        channel.recycle(batch(0, preparer: 1))
        channel.recycle(batch(1, preparer: 0))
        channel.recycle(batch(2, preparer: 1))
        #expect(channel.spentCounts == [1, 2])
        channel.releaseSpent(of: 1)
        #expect(channel.spentCounts == [1, 0], "preparer 1 frees only what it made")
        channel.releaseSpent(of: 0)
        #expect(channel.spentCounts == [0, 0])
    }
}

/// The journal's view of a mixed file after ingest: what the writer stored, in journal order.
struct MixedFileOutcome: Equatable {
    struct Quarantined: Equatable {
        var line: Int
        var stage: QuarantineItem.Stage
        var raw: [UInt8]
    }

    /// (line, key) of the adapter's records by `seq`.
    var records: [String]
    var quarantine: [Quarantined]

    init(journalPath: String) throws {
        let journal = try Journal(path: journalPath)
        records = try journal.entries(after: 0, limit: 1_000_000).filter { $0.source == "drop" }.map { "\($0.line) \($0.key)" }
        quarantine = try journal.quarantined(limit: 1_000_000).map { Quarantined(line: $0.item.line, stage: $0.item.stage, raw: $0.item.raw) }
    }

    /// Checks the outcome against the file: records and quarantine entries in file order, each row once.
    func check(against file: MixedFile) {
        let goodRows = file.rows.compactMap { row -> (Int, String)? in
            if case .good(let caseNo) = row.kind { (row.line, caseNo) } else { nil }
        }
        #expect(records.count == goodRows.count, "one record per good row")
        #expect(zip(records, goodRows).allSatisfy { $0.hasPrefix("\($1.0) \($1.1)") }, "records in file order")
        if let first = zip(records, goodRows).first(where: { !$0.hasPrefix("\($1.0) \($1.1)") }) {
            Issue.record("first record out of order: \(first.0), expected line \(first.1.0) key \(first.1.1)…")
        }
        let bad = file.rows.filter { if case .good = $0.kind { false } else { true } }
        #expect(quarantine.map(\.line) == bad.map(\.line), "quarantine entries in file order, with their lines")
        for (entry, row) in zip(quarantine, bad) {
            switch row.kind {
            case .quarantined(let stage):
                #expect(entry.stage == stage, "line \(row.line)")
                #expect(entry.raw == row.raw, "line \(row.line): raw bytes")
            default:
                #expect(entry.stage == .map || entry.stage == .validate, "line \(row.line)")
            }
        }
    }
}

@Suite struct ParallelIngestTests {
    @Test func aMixedFileLandsInTheJournalInFileOrderAndEndsAtTheFileEnd() throws {
        // 100-row transactions of 100-row chunks: some 55 chunks, shared by the preparers as they come free.
        let workspace = try Workspace(batchRows: 100, encoding: "gb18030")
        let file = try MixedFile(rows: 5500)
        try file.write(to: workspace.drop.appendingPathComponent("mixed.csv"))
        let report = try #require(try workspace.gateway().runOnce().files.first)
        #expect(report.outcome == .ingested)
        #expect(report.counts.rows == file.rows.count)
        #expect(report.counts.stored == file.goodRows)
        #expect(report.counts.quarantined == file.quarantinedRows)
        try MixedFileOutcome(journalPath: workspace.journalPath).check(against: file)
        #expect(try workspace.scalar("SELECT offset FROM files") == Int64(file.bytes.count), "the stored offset is the file's end")
        #expect(try workspace.scalar("SELECT line FROM files") == Int64(file.endLine))
        #expect(try workspace.scalar("SELECT rows FROM files") == Int64(file.rows.count))
        #expect(try workspace.scalar("SELECT count(*) FROM files WHERE state = 'done'") == 1)
    }
}

@Suite struct BatchChannelTests {
    @Test(.timeLimit(.minutes(1)))
    func theReaderWaitsWhenTheBatchesWaitingWeighTheBudget() throws {
        // Capacity 8, but at most 25 bytes waiting: two batches of 10 fit, a third waits for a take.
        let channel = BatchChannel<[UInt8]>(capacity: 8, byteBudget: 25) { $0.count }
        defer { channel.cancel() }  // a failed expectation must not leave the putting thread blocked
        #expect(channel.put(Array(repeating: 1, count: 10)))
        #expect(channel.put(Array(repeating: 2, count: 10)))
        let putDone = DispatchSemaphore(value: 0)
        Thread { if channel.put(Array(repeating: 3, count: 10)) { putDone.signal() } }.start()
        #expect(putDone.wait(timeout: .now() + 0.2) == .timedOut, "a batch over the budget waits")
        #expect(try channel.take()?.first == 1)
        #expect(putDone.wait(timeout: .now() + 10) == .success, "taking one frees its bytes")
        #expect(try channel.take()?.first == 2)
        #expect(try channel.take()?.first == 3)
    }

    @Test(.timeLimit(.minutes(1)))
    func aBatchHeavierThanTheBudgetPassesAloneAndTheCountStillBounds() throws {
        let heavy = BatchChannel<[UInt8]>(capacity: 8, byteBudget: 25) { $0.count }
        #expect(heavy.put(Array(repeating: 9, count: 100)), "an empty channel takes any batch: the reader never stalls for good")
        #expect(try heavy.take()?.count == 100)

        let counted = BatchChannel<[UInt8]>(capacity: 2, byteBudget: 1_000) { $0.count }
        defer { counted.cancel() }
        #expect(counted.put([1]))
        #expect(counted.put([2]))
        let putDone = DispatchSemaphore(value: 0)
        Thread { if counted.put([3]) { putDone.signal() } }.start()
        #expect(putDone.wait(timeout: .now() + 0.2) == .timedOut, "the count bound holds below the byte budget")
        #expect(try counted.take() == [1])
        #expect(putDone.wait(timeout: .now() + 10) == .success)
    }

    @Test(.timeLimit(.minutes(1)))
    func cancellingWakesAReaderWaitingOnTheBudget() {
        let channel = BatchChannel<[UInt8]>(capacity: 8, byteBudget: 10) { $0.count }
        #expect(channel.put(Array(repeating: 1, count: 10)))
        let refused = DispatchSemaphore(value: 0)
        Thread { if !channel.put(Array(repeating: 2, count: 10)) { refused.signal() } }.start()
        #expect(refused.wait(timeout: .now() + 0.2) == .timedOut, "the put waits on the budget")
        channel.cancel()
        #expect(refused.wait(timeout: .now() + 10) == .success, "the writer gave up: the put returns false")
    }

    @Test(.timeLimit(.minutes(1)))
    func theBudgetComesBackInFullAfterManyRounds() throws {
        // Batches of changing weights put and taken in bursts; afterwards the whole budget, and no more, is free.
        let channel = BatchChannel<[UInt8]>(capacity: 100, byteBudget: 64) { $0.count }
        defer { channel.cancel() }
        for round in 0..<500 {
            let weights = [round % 7 + 1, round % 13 + 2, round % 5 + 3]
            for weight in weights { #expect(channel.put(Array(repeating: 0, count: weight))) }
            for weight in weights { #expect(try channel.take()?.count == weight) }
        }
        // 60 + 4 is the budget exactly: passes only if no bytes were left counted (a put would wait forever).
        #expect(channel.put(Array(repeating: 1, count: 60)))
        let fitted = DispatchSemaphore(value: 0)
        Thread { if channel.put(Array(repeating: 2, count: 4)) { fitted.signal() } }.start()
        #expect(fitted.wait(timeout: .now() + 10) == .success, "the full budget is free again")
        // One byte more waits: passes only if no bytes went missing from the count.
        let putDone = DispatchSemaphore(value: 0)
        Thread { if channel.put([3]) { putDone.signal() } }.start()
        #expect(putDone.wait(timeout: .now() + 0.2) == .timedOut, "65 bytes exceed the budget of 64")
        #expect(try channel.take()?.count == 60)
        #expect(putDone.wait(timeout: .now() + 10) == .success)
        #expect(try channel.take()?.count == 4)
        #expect(try channel.take()?.count == 1)
    }
}
