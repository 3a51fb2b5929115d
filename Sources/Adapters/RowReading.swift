import Foundation
import Journal
import Mapping
import TextSupport

/// Prepared rows up to a file position: written to the journal in one transaction.
struct PreparedBatch: Sendable {
    var rows: [PreparedRow] = []
    /// Byte offset and line just after the batch's last row: where a restart continues.
    var endOffset: Int64
    var endLine: Int
    var isLast: Bool
    /// Hand-over bookkeeping, not seen by the writer: the chunk's place in file order (0, 1, 2, …) and the
    /// preparer thread that made it (its memory goes back there to be freed).
    var sequence = 0
    var preparer = 0
}

/// A bounded hand-over between the reading thread and the journal writer (NSCondition-guarded).
/// The reader blocks when `capacity` batches wait, or when a `byteBudget` is set and the batches waiting would
/// weigh more (by `weight`, taken once at `put`); the writer blocks when none waits. The budget bounds waiting
/// batches only, and an empty channel takes any batch, so batches heavier than the budget pass one at a time.
final class BatchChannel<Batch: Sendable>: @unchecked Sendable {
    // All state below is guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [(batch: Batch, bytes: Int)] = []
    /// Batches the writer is done with, handed back so that their memory is freed on the reading thread that
    /// allocated it (glibc frees across threads under an arena lock, which slowed the writer measurably).
    private var spent: [Batch] = []
    private var failure: Error?
    private var cancelled = false
    private let capacity: Int
    private let byteBudget: Int
    private let weight: @Sendable (Batch) -> Int
    private var queuedBytes = 0

    init(capacity: Int, byteBudget: Int = .max, weight: @escaping @Sendable (Batch) -> Int = { _ in 0 }) {
        self.capacity = capacity
        self.byteBudget = byteBudget
        self.weight = weight
    }

    /// False when the writer gave up (the reader should stop).
    func put(_ batch: Batch) -> Bool {
        let bytes = weight(batch)
        condition.lock()
        defer { condition.unlock() }
        while !cancelled && (queue.count >= capacity || (!queue.isEmpty && bytes > byteBudget - queuedBytes)) {
            condition.wait()
        }
        if cancelled { return false }
        queue.append((batch, bytes))
        queuedBytes += bytes
        condition.broadcast()
        return true
    }

    func fail(_ error: Error) {
        condition.lock()
        failure = error
        condition.broadcast()
        condition.unlock()
    }

    /// The next batch; nil after cancellation; rethrows the reader's failure once its batches are drained.
    func take() throws -> Batch? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && failure == nil && !cancelled { condition.wait() }
        if !queue.isEmpty {
            let (batch, bytes) = queue.removeFirst()
            queuedBytes -= bytes
            condition.broadcast()
            return batch
        }
        if let failure { throw failure }
        return nil
    }

    /// The writer returns a written batch for the reader to release.
    func recycle(_ batch: Batch) {
        condition.lock()
        spent.append(batch)
        condition.unlock()
    }

    /// Called by the reader: drops the spent batches on this thread.
    func releaseSpent() {
        condition.lock()
        let released = spent
        spent.removeAll()
        condition.unlock()
        withExtendedLifetime(released) {}
    }

    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }
}

/// Starts a producer thread for a batch channel. The returned closure, called when the writer is done (normally
/// or by an error), cancels the channel and waits until the producer has stopped, so no thread outlives its ingest.
func startProducer<Batch>(named name: String, channel: BatchChannel<Batch>, _ body: @escaping @Sendable () -> Void) -> () -> Void {
    startThreads(named: name, count: 1, cancel: { channel.cancel() }) { _ in body() }
}

/// Starts `count` threads running `body(index)`. The returned closure calls `cancel` (which must make every body
/// return soon) and waits until all of them have stopped, so no thread outlives the work it was started for.
func startThreads(named name: String, count: Int, cancel: @escaping () -> Void,
                  _ body: @escaping @Sendable (Int) -> Void) -> () -> Void {
    let done = DispatchSemaphore(value: 0)
    for index in 0..<count {
        let work = ThreadWork(body)
        let thread = Thread {
            work.run(index)
            done.signal()
        }
        thread.name = count == 1 ? name : "\(name)-\(index)"
        thread.start()
    }
    return {
        cancel()
        for _ in 0..<count { done.wait() }
    }
}

/// One thread's body, dropped as soon as it returns. A `Thread` keeps its closure until the thread object itself
/// goes, which is after the joiner moved on: what the body captured (an ODBC cursor and its statement, open
/// files) would then be released on the dying thread, late and out of order (after the adapter closed the
/// connection, say). Dropping it before `done` is signalled releases all of it before the joiner continues.
private final class ThreadWork: @unchecked Sendable {
    // Set before the thread starts, then touched by that thread only.
    private var body: (@Sendable (Int) -> Void)?

    init(_ body: @escaping @Sendable (Int) -> Void) { self.body = body }

    func run(_ index: Int) {
        body?(index)
        body = nil
    }
}

/// The hand-over from several preparer threads to the journal writer, in file order (NSCondition-guarded).
/// Preparers finish chunks out of order; each chunk carries its sequence number and waits in the slot of that
/// number until the writer has taken every earlier one. Only the `capacity` sequence numbers from the writer's
/// next one on have slots: a preparer whose chunk lies beyond them blocks in `put`, so memory stays bounded
/// however far one preparer runs ahead of the other. The writer's side is that of `BatchChannel`.
final class OrderedBatchChannel: @unchecked Sendable {
    // All state below is guarded by `condition`.
    private let condition = NSCondition()
    /// Slot `s % capacity` holds chunk `s` for `next ≤ s < next + capacity`.
    private var slots: [PreparedBatch?]
    /// The sequence number the writer takes next.
    private var next = 0
    /// Batches the writer is done with, per preparer: each is freed on the thread that allocated it (glibc frees
    /// across threads under an arena lock, which slowed the writer measurably).
    private var spent: [[PreparedBatch]]
    /// A preparer's failure and the sequence number of the chunk it could not make: the writer gets every
    /// earlier chunk first, as from a single reader.
    private var failure: (error: Error, sequence: Int)?
    private var cancelled = false
    /// Preparers blocked in `put`: the writer wakes them only then.
    private var waitingPreparers = 0
    private let capacity: Int

    init(capacity: Int, preparers: Int) {
        self.capacity = max(1, capacity)
        slots = Array(repeating: nil, count: self.capacity)
        spent = Array(repeating: [], count: max(1, preparers))
    }

    /// Whether `take` would return (or throw) at once: the writer prepares a chunk itself when not.
    var isNextReady: Bool {
        condition.lock()
        defer { condition.unlock() }
        return slots[next % capacity] != nil || failure.map { $0.sequence <= next } == true || cancelled
    }

    /// `put` for the writer, which must never wait for itself: false (nothing placed) when the chunk lies beyond
    /// the slots; the writer keeps it and offers it again after its next `take`.
    func offer(_ batch: PreparedBatch) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard batch.sequence < next + capacity || cancelled else { return false }
        if !cancelled { slots[batch.sequence % capacity] = batch }
        return true
    }

    /// False when the writer gave up (the preparer should stop).
    func put(_ batch: PreparedBatch) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while batch.sequence >= next + capacity && !cancelled {
            waitingPreparers += 1
            condition.wait()
            waitingPreparers -= 1
        }
        if cancelled { return false }
        slots[batch.sequence % capacity] = batch
        // Only the chunk the writer waits for can wake it.
        if batch.sequence == next { condition.broadcast() }
        return true
    }

    /// A preparer could not make chunk `sequence` (nor any later one).
    func fail(_ error: Error, at sequence: Int) {
        condition.lock()
        // The earliest failure wins: it is the one a single reader would have met.
        if failure.map({ sequence < $0.sequence }) ?? true { failure = (error, sequence) }
        condition.broadcast()
        condition.unlock()
    }

    /// The next batch in file order; nil after cancellation; rethrows a preparer's failure once every batch
    /// before the failed chunk has been taken.
    func take() throws -> PreparedBatch? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            var batch: PreparedBatch?
            swap(&batch, &slots[next % capacity])
            if let batch {
                next += 1
                if waitingPreparers > 0 { condition.broadcast() }
                return batch
            }
            if let failure, failure.sequence <= next { throw failure.error }
            if cancelled { return nil }
            condition.wait()
        }
    }

    /// The writer returns a written batch for its preparer to release.
    func recycle(_ batch: PreparedBatch) {
        condition.lock()
        spent[min(max(batch.preparer, 0), spent.count - 1)].append(batch)
        condition.unlock()
    }

    /// Called by preparer `index`: drops the batches it made that the writer is done with, on this thread.
    func releaseSpent(of index: Int) {
        condition.lock()
        var released: [PreparedBatch] = []
        if spent.indices.contains(index) { swap(&released, &spent[index]) }
        condition.unlock()
        withExtendedLifetime(released) {}
    }

    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }

    /// Spent batches waiting for each preparer (for tests).
    var spentCounts: [Int] {
        condition.lock()
        defer { condition.unlock() }
        return spent.map(\.count)
    }
}

/// Raw rows of one chunk, copied out of the reader's buffer: cheap to cut (a scan for row ends and a copy),
/// so the preparers can take turns cutting while the costly part runs in parallel.
struct RawChunk {
    struct Row {
        /// The row's bytes (without the line terminator) in `bytes`.
        var range: Range<Int>
        /// 1-based line where the row starts.
        var line: Int
        var unterminatedQuote: Bool
    }

    var bytes: [UInt8] = []
    var rows: [Row] = []
    /// Byte offset and line just after the chunk's last row.
    var endOffset: Int64 = 0
    var endLine = 0
    var isLast = false
    var sequence = 0
}

/// A failure to read the file, and the chunk it stopped.
struct ChunkReadFailure: Error {
    let error: Error
    let sequence: Int
}

/// Cuts a file into raw chunks of ≤ `rowsPerChunk` non-blank rows, in file order, for whichever preparer asks
/// next. The preparers take turns here (under a lock): cutting is one sequential scan (quotes decide where a row
/// ends) and a copy, while preparing the rows of different chunks is independent. No reader thread of its own:
/// that would be a fourth thread on two cores and one more hand-over for the cheapest part of the work (two
/// preparers that cut for themselves prepare 1M rows in ≈ 2.1 s against ≈ 3.8 s for one). Chunk boundaries,
/// offsets and lines are those a single reader produces: a chunk ends after `rowsPerChunk` non-blank rows or at
/// the end of the file (the last chunk has `isLast`, possibly no rows).
final class RawChunkSource: @unchecked Sendable {
    // All state below is guarded by `lock`.
    private let lock = NSLock()
    private let path: String
    private let startOffset: Int64
    private let startLine: Int
    private let rowsPerChunk: Int
    /// Opened by the first cut, closed after the last one.
    private var reader: CSVRowReader?
    private var nextSequence = 0
    /// The last chunk has been cut, or reading failed: there is nothing more to cut.
    private var exhausted = false

    init(path: String, startOffset: Int64, startLine: Int, rowsPerChunk: Int) {
        self.path = path
        self.startOffset = startOffset
        self.startLine = startLine
        self.rowsPerChunk = max(1, rowsPerChunk)
    }

    /// Refills `chunk` (reusing its storage) with the next chunk. False when there is none; throws a
    /// `ChunkReadFailure` when the file cannot be read (and there will be no more chunks).
    func cut(into chunk: inout RawChunk) throws(ChunkReadFailure) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if exhausted { return false }
        chunk.bytes.removeAll(keepingCapacity: true)
        chunk.rows.removeAll(keepingCapacity: true)
        chunk.isLast = false
        chunk.sequence = nextSequence
        nextSequence += 1
        do {
            let reader: CSVRowReader
            if let open = self.reader {
                reader = open
            } else {
                reader = try CSVRowReader(path: path, startOffset: startOffset, startLine: startLine)
                self.reader = reader
            }
            while chunk.rows.count < rowsPerChunk {
                guard let row = try reader.next() else { chunk.isLast = true; break }
                if row.bytes.isEmpty { continue }  // blank line
                let start = chunk.bytes.count
                chunk.bytes.append(contentsOf: row.bytes.assumingMemoryBound(to: UInt8.self))
                chunk.rows.append(RawChunk.Row(range: start..<chunk.bytes.count, line: row.line,
                                               unterminatedQuote: row.unterminatedQuote))
            }
            chunk.endOffset = reader.offset
            chunk.endLine = reader.line
        } catch {
            exhausted = true
            reader = nil
            throw ChunkReadFailure(error: error, sequence: chunk.sequence)
        }
        if chunk.isLast {
            exhausted = true
            reader = nil
        }
        return true
    }
}

/// The preparing stage of a CSV drop ingest: raw rows → decoded fields → mapped and validated records, in
/// batches. `run(preparer:)` runs on each of the preparer threads; every thread owns its decoder and buffers
/// (they are not thread-safe), and all share the chunk source and the ordered channel to the writer.
struct RowReadingJob: Sendable {
    let name: String
    let source: String
    let header: [String]
    let encoding: TextEncoding
    let delimiter: UInt8
    let preparer: RowPreparer
    let chunks: RawChunkSource
    let channel: OrderedBatchChannel
    /// Each preparer thread's CPU time is added here when it stops (for the writer's debug line).
    let cpu: CPUTally

    /// Starts `count` preparer threads. The returned closure cancels the channel and waits until every preparer
    /// has stopped: no thread outlives the ingest, also when the writer fails.
    func start(preparers count: Int, threadName: String) -> () -> Void {
        startThreads(named: threadName, count: max(1, count), cancel: { channel.cancel() }) { index in
            run(preparer: index)
        }
    }

    /// One preparer thread: cuts the next chunk, prepares its rows, hands the batch over; until the file ends,
    /// reading fails or the writer cancels.
    func run(preparer index: Int) {
        defer { cpu.add(threadCPUSeconds()) }
        guard let state = makePreparer(index: index) else { return }
        while true {
            channel.releaseSpent(of: index)
            guard let batch = prepareNext(with: state) else { return }
            guard channel.put(batch), !batch.isLast else { return }
        }
    }

    /// A thread's own decoder and buffers (preparer `index`); nil when the decoder cannot be made (reported to
    /// the channel when `reporting`: the writer, which only helps, then just does not).
    func makePreparer(index: Int, reporting: Bool = true) -> ChunkPreparer? {
        do {
            return ChunkPreparer(index: index, decoder: try TextDecoder(encoding),
                                 origins: RowOrigins(source: source, name: name, encoding: encoding.rawValue, header: header))
        } catch {
            if reporting { channel.fail(error, at: 0) }
            return nil
        }
    }

    /// Cuts the next chunk and prepares its rows; nil when there is none left, or reading failed (reported to
    /// the channel, which hands the writer every chunk before the failure first).
    func prepareNext(with state: ChunkPreparer) -> PreparedBatch? {
        do throws(ChunkReadFailure) {
            guard try chunks.cut(into: &state.chunk) else { return nil }
        } catch {
            channel.fail(error.error, at: error.sequence)
            return nil
        }
        let chunk = state.chunk
        var batch = PreparedBatch(endOffset: chunk.endOffset, endLine: chunk.endLine, isLast: chunk.isLast,
                                  sequence: chunk.sequence, preparer: state.index)
        batch.rows.reserveCapacity(chunk.rows.count)
        chunk.bytes.withUnsafeBytes { bytes in
            for row in chunk.rows {
                batch.rows.append(prepare(row, bytes: UnsafeRawBufferPointer(rebasing: bytes[row.range]),
                                          decoder: state.decoder, fields: &state.fields, scratch: state.scratch,
                                          origins: state.origins))
            }
        }
        return batch
    }

    private func prepare(_ row: RawChunk.Row, bytes: UnsafeRawBufferPointer, decoder: TextDecoder,
                         fields: inout CSVFieldBuffer, scratch: RowScratch, origins: RowOrigins) -> PreparedRow {
        // Captures one reference, not this struct: a closure over `self` copied (and retained) every field per row.
        let line = row.line
        let origin = { origins.origin(line: line, raw: bytes) }
        func quarantined(_ stage: QuarantineItem.Stage, _ reason: String) -> PreparedRow {
            var prepared = PreparedRow(line: line)
            prepared.quarantine = preparer.quarantineItem(origin(), stage: stage, recordType: "", field: "", reason: reason)
            return prepared
        }
        if row.unterminatedQuote {
            // Everything after the quote is this one "row": say how much, so that it is not taken for one bad line.
            var end = bytes.count
            while end > 0, bytes[end - 1] == 0x0A || bytes[end - 1] == 0x0D { end -= 1 }
            let lines = bytes[..<end].reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
            let span = lines > 1 ? "the \(lines) lines from line \(line) to the end of the file are held here as one row" : "held here as one row"
            return quarantined(.parse, "unterminated quoted field: a quote opened in line \(line) is never closed, so \(span); close the quote (or double it inside a field) and drop the file again")
        }
        let utf8: UnsafeBufferPointer<UInt8>
        do {
            utf8 = try decoder.decodedUTF8(bytes)
        } catch {
            return quarantined(.decode, "row does not decode as \(encoding.rawValue): \(error)")
        }
        do throws(CSVShapeError) {
            try splitCSVFields(utf8, delimiter: delimiter, into: &fields)
        } catch {
            return quarantined(.parse, error.message)
        }
        if fields.count != header.count,
           let problem = csvShapeProblem(fieldCount: fields.count, headerCount: header.count,
                                         extraFieldsHoldText: fields.ranges.dropFirst(header.count).contains { !$0.isEmpty }) {
            return quarantined(.parse, problem)
        }
        return fields.bytes.withUnsafeBufferPointer { fieldBytes in
            fields.ranges.withUnsafeBufferPointer { ranges in
                preparer.prepare(fieldBytes: fieldBytes, fieldRanges: ranges, line: line, scratch: scratch, origin: origin)
            }
        }
    }
}

/// CPU seconds added up across threads.
final class CPUTally: @unchecked Sendable {
    private let lock = NSLock()
    private var total: Double = 0
    private var parts: [Double] = []

    func add(_ seconds: Double) {
        lock.lock()
        total += seconds
        parts.append(seconds)
        lock.unlock()
    }

    /// E.g. "4.10 s (2.06 + 2.04)".
    var summary: String {
        lock.lock()
        defer { lock.unlock() }
        let each = parts.map { String(format: "%.2f", $0) }.joined(separator: " + ")
        return String(format: "%.2f s", total) + (parts.count > 1 ? " (\(each))" : "")
    }
}

/// The writer's side of the hand-over: batches in file order and, while the one it needs next is not ready, the
/// writer prepares the next chunk itself (as preparer number `index`; the channel needs a slot of spent batches
/// for it) instead of waiting. On two cores the writer waited for the one preparer ≈15% of an ingest, while a
/// second preparer thread preempted the writer and made the ingest slower (docs/benchmarks.md).
final class WriterFeed {
    private let job: RowReadingJob
    private let index: Int
    private let own: ChunkPreparer?
    private var helping: Bool
    /// A chunk prepared beyond the channel's slots (the writer must never wait for itself), offered again
    /// before each take.
    private var parked: PreparedBatch?
    /// Chunks the writer prepared, and the time it still waited.
    private(set) var helped = 0
    private(set) var waiting: TimeInterval = 0

    init(job: RowReadingJob, index: Int, helps: Bool = true) {
        self.job = job
        self.index = index
        own = helps ? job.makePreparer(index: index, reporting: false) : nil
        helping = own != nil
    }

    /// The next batch in file order; nil after cancellation; rethrows a preparer's failure as `take` does.
    func next() throws -> PreparedBatch? {
        let channel = job.channel
        channel.releaseSpent(of: index)
        if let batch = parked, channel.offer(batch) { parked = nil }
        while helping, parked == nil, !channel.isNextReady, let own {
            guard let batch = job.prepareNext(with: own) else {
                helping = false
                break
            }
            helped += 1
            if batch.isLast { helping = false }
            if !channel.offer(batch) { parked = batch }
        }
        let started = Date()
        defer { waiting += Date().timeIntervalSince(started) }
        return try channel.take()
    }
}

/// One thread's means to prepare chunks: its decoder and buffers are not thread-safe.
final class ChunkPreparer {
    let index: Int
    let decoder: TextDecoder
    let origins: RowOrigins
    var fields = CSVFieldBuffer()
    let scratch = RowScratch()
    var chunk = RawChunk()

    init(index: Int, decoder: TextDecoder, origins: RowOrigins) {
        self.index = index
        self.decoder = decoder
        self.origins = origins
    }
}

/// What a row's origin shares with every other row of the file; makes the `RowOrigin` of a row that needs one.
final class RowOrigins {
    let source: String
    let name: String
    let encoding: String
    let header: [String]

    init(source: String, name: String, encoding: String, header: [String]) {
        self.source = source
        self.name = name
        self.encoding = encoding
        self.header = header
    }

    func origin(line: Int, raw: UnsafeRawBufferPointer) -> RowOrigin {
        RowOrigin(source: source, origin: name, line: line, raw: Array(raw), encoding: encoding, header: header)
    }
}
