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
}

/// A bounded hand-over between the reading thread and the journal writer (NSCondition-guarded).
/// The reader blocks when `capacity` batches wait; the writer blocks when none does.
final class BatchChannel<Batch: Sendable>: @unchecked Sendable {
    // All state below is guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [Batch] = []
    /// Batches the writer is done with, handed back so that their memory is freed on the reading thread that
    /// allocated it (glibc frees across threads under an arena lock, which slowed the writer measurably).
    private var spent: [Batch] = []
    private var failure: Error?
    private var cancelled = false
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// False when the writer gave up (the reader should stop).
    func put(_ batch: Batch) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while queue.count >= capacity && !cancelled { condition.wait() }
        if cancelled { return false }
        queue.append(batch)
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
            let batch = queue.removeFirst()
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
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        body()
        done.signal()
    }
    thread.name = name
    thread.start()
    return {
        channel.cancel()
        done.wait()
    }
}

/// The reading stage of a CSV drop ingest: raw rows → decoded fields → mapped and validated records, in batches.
/// Runs on its own thread; owns its reader and decoder.
struct RowReadingJob: Sendable {
    let path: String
    let name: String
    let source: String
    let startOffset: Int64
    let startLine: Int
    let header: [String]
    let encoding: TextEncoding
    let delimiter: UInt8
    let batchRows: Int
    let preparer: RowPreparer
    let channel: BatchChannel<PreparedBatch>

    func run() {
        do {
            let reader = try CSVRowReader(path: path, startOffset: startOffset, startLine: startLine)
            let decoder = try TextDecoder(encoding)
            var fields = CSVFieldBuffer()
            let scratch = RowScratch()
            let origins = RowOrigins(source: source, name: name, encoding: encoding.rawValue, header: header)
            while true {
                channel.releaseSpent()
                var batch = PreparedBatch(endOffset: reader.offset, endLine: reader.line, isLast: false)
                batch.rows.reserveCapacity(batchRows)
                while batch.rows.count < batchRows {
                    guard let row = try reader.next() else { batch.isLast = true; break }
                    if row.bytes.isEmpty { continue }  // blank line
                    batch.rows.append(prepare(row, decoder: decoder, fields: &fields, scratch: scratch, origins: origins))
                }
                batch.endOffset = reader.offset
                batch.endLine = reader.line
                guard channel.put(batch), !batch.isLast else { return }
            }
        } catch {
            channel.fail(error)
        }
    }

    private func prepare(_ row: RawRow, decoder: TextDecoder, fields: inout CSVFieldBuffer, scratch: RowScratch,
                         origins: RowOrigins) -> PreparedRow {
        // Captures one reference, not this struct: a closure over `self` copied (and retained) every field per row.
        let origin = { origins.origin(of: row) }
        func quarantined(_ stage: QuarantineItem.Stage, _ reason: String) -> PreparedRow {
            var prepared = PreparedRow(line: row.line)
            prepared.quarantine = preparer.quarantineItem(origin(), stage: stage, recordType: "", field: "", reason: reason)
            return prepared
        }
        if row.unterminatedQuote {
            return quarantined(.parse, "unterminated quoted field: the file ends inside quotes")
        }
        let utf8: UnsafeBufferPointer<UInt8>
        do {
            utf8 = try decoder.decodedUTF8(row.bytes)
        } catch {
            return quarantined(.decode, "row does not decode as \(encoding.rawValue): \(error)")
        }
        do throws(CSVShapeError) {
            try splitCSVFields(utf8, delimiter: delimiter, into: &fields)
        } catch {
            return quarantined(.parse, error.message)
        }
        if fields.count > header.count, fields.ranges[header.count...].contains(where: { !$0.isEmpty }) {
            return quarantined(.parse, "row has \(fields.count) fields, the header has \(header.count)")
        }
        return fields.bytes.withUnsafeBufferPointer { bytes in
            fields.ranges.withUnsafeBufferPointer { ranges in
                preparer.prepare(fieldBytes: bytes, fieldRanges: ranges, line: row.line, scratch: scratch, origin: origin)
            }
        }
    }
}

/// What a row's origin shares with every other row of the file; makes the `RowOrigin` of a row that needs one.
private final class RowOrigins {
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

    func origin(of row: RawRow) -> RowOrigin {
        RowOrigin(source: source, origin: name, line: row.line, raw: Array(row.bytes), encoding: encoding, header: header)
    }
}
