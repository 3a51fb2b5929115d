import CryptoSupport
import Foundation
import GatewayConfig
import GatewayModel
import Journal
import Mapping
import TextSupport

/// What happened to one dropped file.
public struct FileReport: Sendable, Codable, Equatable {
    public enum Outcome: String, Sendable, Codable {
        case ingested, duplicate, rejected
    }
    public var name: String
    public var outcome: Outcome
    public var encoding: String?
    public var counts: IngestCounts
    public var reason: String?
    public var seconds: Double
}

/// A file seen in the drop folder, and whether it may be read yet.
struct Observation {
    var size: Int64
    var modified: Date
    var unchangedSince: Date
}

/// Watches a folder for legacy CSV exports and ingests each complete file exactly once.
public final class CSVDropAdapter {
    public let name: String
    public let settings: CSVDropSettings
    let plan: MappingPlan
    let schema: PUISchema
    let journal: Journal
    let logger: Logger
    let clock: () -> Date
    private var observations: [String: Observation] = [:]

    public init(name: String, settings: CSVDropSettings, plan: MappingPlan, schema: PUISchema, journal: Journal,
                logger: Logger, clock: @escaping () -> Date = Date.init) {
        self.name = name
        self.settings = settings
        self.plan = plan
        self.schema = schema
        self.journal = journal
        self.logger = logger.with(component: "csv-drop:\(name)")
        self.clock = clock
    }

    // MARK: - Folder scanning

    /// Files matching the pattern that are not temporary names, markers, or hidden; oldest first (then by name),
    /// so that exports are ingested in the order they were written.
    func candidates() -> [String] {
        let foreign = ForeignNames.normalize(in: settings.folder)
        for line in foreign.renamed { logger.warning("renamed a file whose name is not UTF-8: \(line)") }
        for line in foreign.failed { logger.error("a file whose name is not UTF-8 is not taken: \(line)") }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: settings.folder)) ?? []
        let files = names.filter { name in
            !name.hasPrefix(".") && !name.hasSuffix(".done") && !name.hasSuffix(".tmp") && !name.hasSuffix(".part")
                && !name.hasSuffix(".reason.txt") && fnmatch(settings.pattern, name, 0) == 0
                && isRegularFile((settings.folder as NSString).appendingPathComponent(name))
        }
        let modified = Dictionary(uniqueKeysWithValues: files.map { name in
            (name, (try? FileManager.default.attributesOfItem(atPath: (settings.folder as NSString).appendingPathComponent(name)))?[.modificationDate] as? Date ?? .distantPast)
        })
        return files.sorted { a, b in
            let ma = modified[a] ?? .distantPast, mb = modified[b] ?? .distantPast
            return ma == mb ? a < b : ma < mb
        }
    }

    private func isRegularFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
    }

    /// Splits candidates into those complete per the ready rule and those still to wait for.
    public func scan() -> (ready: [String], waiting: [String]) {
        var ready: [String] = []
        var waiting: [String] = []
        let now = clock()
        var seen = Set<String>()
        for name in candidates() {
            let path = (settings.folder as NSString).appendingPathComponent(name)
            seen.insert(path)
            switch settings.ready {
            case .rename:
                ready.append(name)
            case .marker:
                if FileManager.default.fileExists(atPath: path + ".done") { ready.append(name) } else { waiting.append(name) }
            case .settle:
                guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { continue }
                let size = (attributes[.size] as? NSNumber)?.int64Value ?? -1
                let modified = attributes[.modificationDate] as? Date ?? .distantPast
                if var known = observations[path], known.size == size, known.modified == modified {
                    if now.timeIntervalSince(known.unchangedSince) >= settings.settleTime.seconds {
                        ready.append(name)
                    } else {
                        waiting.append(name)
                    }
                    known.size = size
                    observations[path] = known
                } else {
                    // New, or changed since the last look: (re)start the settle clock. Our own clock, not the
                    // mtime, because copies from Windows keep the source's old mtime.
                    observations[path] = Observation(size: size, modified: modified, unchangedSince: now)
                    waiting.append(name)
                }
            }
        }
        observations = observations.filter { seen.contains($0.key) }
        return (ready, waiting)
    }

    /// Time until the earliest waiting file may settle (for `run --once`).
    public var nextSettleIn: TimeInterval? {
        guard settings.ready == .settle, !observations.isEmpty else { return nil }
        let now = clock()
        return observations.values.map { settings.settleTime.seconds - now.timeIntervalSince($0.unchangedSince) }.min().map { max(0, $0) }
    }

    /// Scans once and ingests every ready file; the outcome is kept as the adapter's health in the journal.
    public func poll() throws(JournalError) -> [FileReport] {
        var reports: [FileReport] = []
        do {
            for name in scan().ready {
                reports.append(try ingestFile(named: name))
            }
        } catch {
            try? journal.recordPoll(adapter: name, kind: "csv-drop", error: error.description)
            throw error
        }
        recordHealth(reports)
        return reports
    }

    /// Keeps the outcome of a poll as the adapter's health: a rejected file counts as a failed poll.
    public func recordHealth(_ reports: [FileReport]) {
        let rejected = reports.filter { $0.outcome == .rejected }.map { "\($0.name) rejected: \($0.reason ?? "")" }
        let rows = reports.reduce(0) { $0 + $1.counts.rows }
        try? journal.recordPoll(adapter: name, kind: "csv-drop",
                                PollOutcome(error: rejected.isEmpty ? nil : rejected.joined(separator: "; "), rows: rows))
    }

    // MARK: - One file

    /// Tests only: runs after the file was hashed, before it is looked up as a duplicate and before its rows are read.
    var afterHashing: (() -> Void)?

    public func ingestFile(named fileName: String) throws(JournalError) -> FileReport {
        let path = (settings.folder as NSString).appendingPathComponent(fileName)
        let started = Date()
        func report(_ outcome: FileReport.Outcome, encoding: String? = nil, counts: IngestCounts = IngestCounts(), reason: String? = nil) -> FileReport {
            FileReport(name: fileName, outcome: outcome, encoding: encoding, counts: counts, reason: reason,
                       seconds: Date().timeIntervalSince(started))
        }
        // Hash, encoding check and rows all read the file opened here: a writer that renames a new export over the
        // name meanwhile must not have its rows stored under the old content's hash, nor its file archived unread.
        let pinned = PinnedFile(path: path)
        let sha: String
        let size: Int64
        do {
            (sha, size) = try hashFile(pinned.readingPath)
        } catch {
            let reason = pinned.naming(error.description)
            reject(path: path, pinned: pinned, sha: nil, size: 0, reason: reason)
            return report(.rejected, reason: reason)
        }
        afterHashing?()
        if let known = try journal.fileProgress(sha256: sha), known.state == .done {
            let reason = "same content (SHA-256 \(sha.prefix(16))…) as \(known.name), already ingested"
            logger.info("\(fileName): \(reason); not ingested again")
            // Moved by its name: only while the name still holds the file that was hashed, or a new export
            // renamed over it meanwhile would be archived unread.
            if case .replaced(let change) = pinned.changeSinceOpened() {
                logger.warning("\(fileName): \(change) while it was hashed; left in the drop folder: it is read at the next poll")
            } else {
                move(path, to: settings.archiveFolder, reason: reason)
            }
            return report(.duplicate, reason: reason)
        }
        let encoding: TextEncoding
        switch detectEncoding(pinned.readingPath, name: fileName) {
        case .success(let detected): encoding = detected
        case .failure(let error):
            let reason = pinned.naming(error.description)
            reject(path: path, pinned: pinned, sha: sha, size: size, reason: reason)
            return report(.rejected, reason: reason)
        }
        do {
            let counts = try ingest(path: pinned.readingPath, name: fileName, sha: sha, size: size, encoding: encoding)
            switch pinned.changeSinceOpened() {
            case nil:
                move(path, to: settings.archiveFolder, reason: nil)
            case .removed:
                logger.warning("\(fileName): removed from the drop folder while it was read; the file as it was opened was read to its end")
            case .replaced(let change):
                logger.error("\(fileName): \(change) while it was read; left in the drop folder: it is read again at the next poll (rows that did not change add nothing)")
            }
            logger.info("\(fileName): ingested \(counts.rows) rows (\(encoding.rawValue)): \(counts.stored) records stored, \(counts.unchanged) unchanged, \(counts.quarantined) rows quarantined")
            if counts.changedWithinFile > 0 {
                logger.warning("\(fileName): \(counts.changedWithinFile) record(s) replaced one stored from this same file (first: \(counts.firstChangedWithinFile ?? "?")): one key with two contents in one export; a key column cut short (a spreadsheet keeps 15 significant digits of a long number) merges different cases under one key; a row corrected within the export is harmless. The later row is stored as the newer revision")
            }
            return report(.ingested, encoding: encoding.rawValue, counts: counts)
        } catch let error as FileRejection {
            let reason = pinned.naming(error.reason)
            reject(path: path, pinned: pinned, sha: sha, size: size, reason: reason)
            return report(.rejected, encoding: encoding.rawValue, reason: reason)
        } catch let error as JournalError {
            throw error
        } catch {
            throw JournalError(operation: "ingest \(fileName)", underlying: pinned.naming("\(error)"))
        }
    }

    struct FileRejection: Error { let reason: String }

    /// A header row's fields (decoded, split, a UTF-8 BOM removed), or what is wrong with it.
    private func splitHeader(_ raw: [UInt8], decoder: TextDecoder) -> Result<[String], FileRejection> {
        var bytes = raw
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        var header: [String] = []
        do {
            let decoded = try bytes.withUnsafeBytes { (bytes) throws(DecodingError) in try decoder.decode(bytes) }
            var utf8 = Array(decoded.utf8)
            try utf8.withUnsafeMutableBufferPointer { (buffer) throws(CSVShapeError) in
                try splitCSVFields(UnsafeBufferPointer(buffer), delimiter: settings.delimiter, into: &header)
            }
        } catch let error as DecodingError {
            return .failure(FileRejection(reason: "does not decode as \(decoder.encoding.rawValue): \(error)"))
        } catch {
            return .failure(FileRejection(reason: "is malformed: \(error)"))
        }
        return .success(header)
    }

    /// When the header lacks columns: whether one of the next lines has them all (a title line above the header),
    /// named with the `header_line` that reads it.
    private func headerHint(after reader: CSVRowReader, decoder: TextDecoder) -> String {
        for _ in 0..<20 {
            guard let row = try? reader.next() else { break }
            guard case .success(let fields) = splitHeader(Array(row.bytes), decoder: decoder),
                  case .success = plan.bind(header: fields) else { continue }
            return "; line \(row.line) has them: a title above the header? set csv.header_line: \(row.line) in the adapter"
        }
        return ""
    }

    /// Threads preparing rows for the journal writer. Preparing a 1M-row file takes ≈3.7 s of CPU, writing it
    /// ≈2.7 s, and two preparers prepare 1.8× as fast as one: with a core to spare for each thread, the writer is
    /// the only limit. On two cores the writer and one preparer already keep both busy: a second preparer there
    /// preempted the writer (the limiting stage) and made the ingest ≈5% slower; lowering its priority made it
    /// neutral but would let any other busy thread starve the chunk the writer waits for. So: one preparer per
    /// core left after the writer's, at most two. Not a setting: there is nothing to tune.
    static let preparerThreads = min(2, max(1, ProcessInfo.processInfo.activeProcessorCount - 1))

    /// Streams the file into the journal in batches; each batch commits its rows, quarantine entries and the
    /// file's new offset in one transaction, so a crash resumes at the last committed row.
    private func ingest(path: String, name: String, sha: String, size: Int64, encoding: TextEncoding) throws -> IngestCounts {
        let decoder = try TextDecoder(encoding)
        // The header is always read from the start of the file, also when resuming.
        let headerReader = try CSVRowReader(path: path, bufferSize: 64 * 1024)
        // Lines above `header_line` (an export's title) are skipped, and so are blank lines before the header
        // (empty, or only delimiters and spaces, as a spreadsheet saves an empty row).
        var candidate = try headerReader.next()
        while let row = candidate, row.line < settings.headerLine || isBlankCSVRow(row.bytes, delimiter: settings.delimiter) { candidate = try headerReader.next() }
        guard let headerRow = candidate else { throw FileRejection(reason: "the file is empty (no header row)") }
        let headerBytes = Array(headerRow.bytes)
        // A CR inside the row not followed by LF (CRs at its end are the line break's, as in CR CR LF).
        let headerContent = headerBytes.count - (headerBytes.reversed().prefix { $0 == 0x0D }.count)
        if (0..<headerContent).contains(where: { headerBytes[$0] == 0x0D && headerBytes[$0 + 1] != 0x0A }) {
            // LF ends a row: a file whose lines end in CR alone (classic Mac OS) reads as one long "header".
            throw FileRejection(reason: "the lines end with CR alone (classic Mac OS line ends): esgate reads CRLF or LF; convert the file, e.g. `tr '\\r' '\\n' < \(name) > \(name).lf.csv`, and drop the result")
        }
        let header: [String]
        switch splitHeader(headerBytes, decoder: decoder) {
        case .success(let fields): header = fields
        case .failure(let problem): throw FileRejection(reason: "header row (line \(headerRow.line)) \(problem.reason)")
        }
        let bound: BoundMapping
        switch plan.bind(header: header) {
        case .success(let mapping): bound = mapping
        case .failure(let error): throw FileRejection(reason: error.message + headerHint(after: headerReader, decoder: decoder))
        }
        let resumeAt = headerRow.endOffset
        let firstDataLine = headerReader.line
        var progress = try journal.fileProgress(sha256: sha)
        if progress == nil || progress?.state == .rejected {
            try journal.batch { try journal.startFile(sha256: sha, source: self.name, name: name, size: size, encoding: encoding.rawValue) }
            if progress?.state == .rejected { try journal.batch { try journal.finishFile(sha256: sha, state: .ingesting) } }
            progress = try journal.fileProgress(sha256: sha)
        }
        let startOffset = max(progress?.offset ?? 0, resumeAt)
        let startLine = startOffset == resumeAt ? firstDataLine : (progress?.line ?? firstDataLine)
        if startOffset > resumeAt {
            logger.info("\(name): resuming at line \(startLine) (byte \(startOffset) of \(size)) after an interrupted run")
        }
        // Rows are prepared (decoded, split, mapped, validated, serialized, digested) on `preparerThreads`
        // threads, which take turns cutting the file into chunks of ≤ 1000 raw rows and then prepare their chunks
        // in parallel; this thread writes the chunks in file order, `batch_rows` rows (records, quarantine entries,
        // the file's new offset) per transaction. At most four chunks wait to be written (plus one being prepared
        // per thread), so memory stays bounded whatever the file size.
        let preparerThreads = Self.preparerThreads
        // The writer prepares too (`WriterFeed`), as preparer number `preparerThreads`.
        let channel = OrderedBatchChannel(capacity: 4, preparers: preparerThreads + 1)
        let preparing = RowReadingJob(name: name, source: self.name, header: header, encoding: encoding,
                                      delimiter: settings.delimiter, preparer: RowPreparer(schema: schema, mapping: bound),
                                      chunks: RawChunkSource(path: path, startOffset: startOffset, startLine: startLine,
                                                             rowsPerChunk: min(settings.batchRows, 1000)),
                                      channel: channel, cpu: CPUTally())
        var total = IngestCounts()
        var lastReport = Date()
        let writeStarted = Date()
        let writerCPUStarted = threadCPUSeconds()
        let feed = WriterFeed(job: preparing, index: preparerThreads)
        // Where this file's records begin (of this run, when it resumes an interrupted one).
        let fileStartSeq = try journal.lastSeq() + 1
        defer {
            // Which stage limits throughput: a writer that mostly waits is fed too slowly, and vice versa.
            // Logged after the preparers stopped (defers run in reverse), so their CPU time is complete.
            logger.debug("\(name): writer waited \(String(format: "%.2f", feed.waiting)) s of \(String(format: "%.2f", Date().timeIntervalSince(writeStarted))) s for the reader and prepared \(feed.helped) chunk(s) itself; writer CPU \(String(format: "%.2f", threadCPUSeconds() - writerCPUStarted)) s; \(preparerThreads) preparers CPU \(preparing.cpu.summary)")
        }
        let stopPreparers = preparing.start(preparers: preparerThreads, threadName: "esgate-read-\(name)")
        defer { stopPreparers() }
        func nextChunk() throws -> PreparedBatch? { try feed.next() }
        // One transaction covers `batchRows` rows (one fsync), made of smaller chunks handed over by the reader,
        // so that few rows are in memory at a time. When another writer waits (the uplink fixing a package, the
        // supervision engine), the batch ends at the chunk boundary: a file of a million rows must not keep the
        // province waiting until it is through.
        var finished = false
        while !finished {
            var counts = IngestCounts()
            var position: (offset: Int64, line: Int)?
            try journal.begin()
            do {
                while counts.rows < settings.batchRows, let chunk = try nextChunk() {
                    // By index: a for-in over the rows would copy (retain and release) every row on this, the busiest thread.
                    for index in chunk.rows.indices {
                        try journal.store(chunk.rows[index], source: self.name, file: name, counts: &counts, sameFileFrom: fileStartSeq)
                    }
                    position = (chunk.endOffset, chunk.endLine)
                    finished = chunk.isLast
                    channel.recycle(chunk)
                    if finished || journal.othersWaitingToWrite { break }
                }
                if position == nil { finished = true }  // the reader stopped (cancelled)
                if let position {
                    try journal.advanceFile(sha256: sha, offset: position.offset, line: position.line, rows: counts.rows,
                                            records: counts.stored, quarantined: counts.quarantined)
                }
                if finished { try journal.finishFile(sha256: sha, state: .done) }
                try journal.commit()
            } catch {
                journal.rollback()
                throw error
            }
            total += counts
            if Date().timeIntervalSince(lastReport) >= 5, let position {
                lastReport = Date()
                let percent = size > 0 ? Int(Double(position.offset) * 100 / Double(size)) : 100
                logger.info("\(name): \(percent)% (\(total.rows) rows this run, line \(position.line))")
            }
        }
        return total
    }

    // MARK: - Encoding, hashing, moving

    /// The encoding rule: `utf-8` and `gb18030` are taken as configured, except that a UTF-8 byte-order mark
    /// always means UTF-8; `auto` as `autoEncoding` decides. A file that is no GB18030 or UTF-8 text at all
    /// (UTF-16, a workbook) fails, saying what it is.
    /// `name` is the file's name in the drop folder (`path` may be the pinned descriptor's).
    func detectEncoding(_ path: String, name: String) -> Result<TextEncoding, FileReadError> {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            return .failure(FileReadError(path: path, message: "cannot open for reading"))
        }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 64 * 1024)) ?? Data()
        let bytes = [UInt8](head)
        if let unreadable = Self.unreadableForm(bytes) {
            return .failure(FileReadError(path: path, message: "the file is \(unreadable.form); esgate reads GB18030 and UTF-8 exports: \(unreadable.hint.replacingOccurrences(of: "FILE", with: name))"))
        }
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { return .success(.utf8) }
        switch settings.encoding {
        case .utf8: return .success(.utf8)
        case .gb18030: return .success(.gb18030)
        case .auto: return .success(Self.autoEncoding(head: bytes))
        }
    }

    /// `encoding: auto` from the first 64 KiB of a file (without a BOM). A header with Chinese in it decides: valid
    /// UTF-8 is UTF-8, anything else GB18030 (a GBK line is practically never valid UTF-8), so that one stray GBK
    /// value in a UTF-8 export quarantines its row instead of turning the whole file into GB18030, where the UTF-8
    /// header does not decode. A header in ASCII (pinyin column names) decides nothing: then the whole 64 KiB must
    /// be valid UTF-8 for UTF-8.
    public static func autoEncoding(head bytes: [UInt8]) -> TextEncoding {
        // The first line with Chinese in it: the header, or a title above it (blank and ASCII lines come first
        // in some exports); a title is in the file's encoding as much as the header is.
        var lineStart = 0
        while lineStart < bytes.count {
            let lineEnd = bytes[lineStart...].firstIndex(of: 0x0A) ?? bytes.count
            let line = bytes[lineStart..<lineEnd]
            if line.contains(where: { $0 >= 0x80 }) {
                let invalid = line.withUnsafeBytes { TextDecoder.firstInvalidUTF8($0) }
                // A line cut at the 64 KiB boundary may end inside a character.
                return invalid.map { $0 < line.count - 3 || lineEnd < bytes.count } ?? false ? .gb18030 : .utf8
            }
            lineStart = lineEnd + 1
        }
        // A multi-byte character cut at the 64 KiB boundary is not evidence against UTF-8.
        let invalid = bytes.withUnsafeBytes { TextDecoder.firstInvalidUTF8($0) }
        if let invalid, invalid < bytes.count - 3 || bytes.count < 64 * 1024 { return .gb18030 }
        return .utf8
    }

    /// What a file that is not a GB18030 or UTF-8 text is, named for an operator: a workbook saved as it is, or a
    /// text in UTF-16/UTF-32 (Excel's "Unicode text" is UTF-16LE with a BOM); nil for anything else. Without a
    /// byte-order mark, a NUL byte in the first line gives a wide form away: GB18030 and UTF-8 text has none.
    static func unreadableForm(_ bytes: [UInt8]) -> (form: String, hint: String)? {
        func convert(_ from: String) -> String { "convert it, e.g. `iconv -f \(from) -t UTF-8 FILE > FILE.utf8.csv`, and drop the result (Excel's \u{201C}Unicode text\u{201D} is also tab-separated: delimiter: \"\\t\")" }
        if bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            return ("a ZIP archive (an Excel .xlsx workbook?), not a CSV export", "save the sheet as CSV (GB18030 or UTF-8) and drop that")
        }
        if bytes.starts(with: [0xD0, 0xCF, 0x11, 0xE0]) {
            return ("an OLE2 compound file (an Excel .xls workbook?), not a CSV export", "save the sheet as CSV (GB18030 or UTF-8) and drop that")
        }
        if bytes.starts(with: [0xFF, 0xFE, 0x00, 0x00]) { return ("UTF-32 little-endian (byte-order mark FF FE 00 00)", convert("UTF-32")) }
        if bytes.starts(with: [0x00, 0x00, 0xFE, 0xFF]) { return ("UTF-32 big-endian (byte-order mark 00 00 FE FF)", convert("UTF-32")) }
        if bytes.starts(with: [0xFF, 0xFE]) { return ("UTF-16 little-endian (byte-order mark FF FE)", convert("UTF-16")) }
        if bytes.starts(with: [0xFE, 0xFF]) { return ("UTF-16 big-endian (byte-order mark FE FF)", convert("UTF-16")) }
        if bytes.prefix(4096).prefix(while: { $0 != 0x0A }).contains(0) {
            return ("UTF-16 or UTF-32 without a byte-order mark (NUL bytes in its first line)", convert("UTF-16LE"))
        }
        return nil
    }

    private func hashFile(_ path: String) throws(FileReadError) -> (String, Int64) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw FileReadError(path: path, message: "cannot open for reading (permissions?)")
        }
        defer { try? handle.close() }
        do {
            let digest = try StreamingDigest(.sha256)
            var size: Int64 = 0
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                size += Int64(chunk.count)
                chunk.withUnsafeBytes { digest.update($0) }
            }
            return (digest.finish().hexString, size)
        } catch {
            throw FileReadError(path: path, message: "cannot read: \(error)")
        }
    }

    private func reject(path: String, pinned: PinnedFile, sha: String?, size: Int64, reason: String) {
        logger.error("\((path as NSString).lastPathComponent): rejected: \(reason)")
        if let sha {
            do { try journal.rejectFile(sha256: sha, source: name, name: (path as NSString).lastPathComponent, size: size, reason: reason) } catch {
                logger.error("cannot record the rejection in the journal: \(error)")
            }
        }
        // Moved by its name: a new export renamed over it meanwhile is not the file that was refused.
        if case .replaced(let change) = pinned.changeSinceOpened() {
            logger.warning("\((path as NSString).lastPathComponent): \(change) while it was read; left in the drop folder: it is read at the next poll")
            return
        }
        move(path, to: settings.rejectedFolder, reason: reason)
    }

    /// Moves a file (and its `.done` marker) into `folder`, never overwriting; writes `NAME.reason.txt` beside
    /// it when a reason is given.
    private func move(_ path: String, to folder: String, reason: String?) {
        let manager = FileManager.default
        do {
            try manager.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let name = (path as NSString).lastPathComponent
            var target = (folder as NSString).appendingPathComponent(name)
            if manager.fileExists(atPath: target) {
                let stamp = Int(Date().timeIntervalSince1970 * 1000)
                target = (folder as NSString).appendingPathComponent("\(stamp)-\(name)")
            }
            try manager.moveItem(atPath: path, toPath: target)
            if manager.fileExists(atPath: path + ".done") {
                try? manager.removeItem(atPath: path + ".done")
            }
            if let reason {
                try Data((Redaction.maskIdentityNumbers(in: reason) + "\n").utf8).write(to: URL(fileURLWithPath: target + ".reason.txt"))
            }
        } catch {
            logger.error("cannot move \(path) to \(folder): \(error)")
        }
    }
}

extension Duration {
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}

// MARK: - Replay support

/// Re-reads a quarantined CSV row from its raw bytes (used by `esgate quarantine replay`).
public enum CSVRowDecoding {
    public enum Failure: Error, CustomStringConvertible {
        case decode(String)
        case parse(String)
        public var description: String {
            switch self {
            case .decode(let message), .parse(let message): return message
            }
        }
    }

    public static func fields(raw: [UInt8], encoding: String, delimiter: UInt8 = 44) -> Result<[String], Failure> {
        guard let textEncoding = TextEncoding(label: encoding) else { return .failure(.decode("unknown encoding \(encoding)")) }
        do {
            let decoder = try TextDecoder(textEncoding)
            var fields: [String] = []
            let decoded = try raw.withUnsafeBytes { (bytes) throws(DecodingError) in try decoder.decode(bytes) }
            var utf8 = Array(decoded.utf8)
            do {
                try utf8.withUnsafeMutableBufferPointer { (buffer) throws(CSVShapeError) in
                    try splitCSVFields(UnsafeBufferPointer(buffer), delimiter: delimiter, into: &fields)
                }
            } catch {
                return .failure(.parse(error.message))
            }
            return .success(fields)
        } catch {
            return .failure(.decode("row does not decode as \(encoding): \(error)"))
        }
    }
}

/// CPU time of the calling thread (user + system), for the writer's debug line: on a shared machine it varies
/// less than wall time.
func threadCPUSeconds() -> Double {
    var time = timespec()
    guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time) == 0 else { return 0 }
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}
