import Adapters
import Foundation
import GatewayConfig
import GatewayModel
import Journal
import Mapping
import Monitoring
import ODBCSupport
import TextSupport
import Uplink

/// What one pass over the adapters did.
public struct RunSummary: Sendable, Codable {
    public var files: [FileReport] = []
    /// Files seen but not yet complete (still settling or waiting for a marker).
    public var waiting: [String] = []
    /// SOAP adapters polled (`run --once`: one poll each).
    public var sources: [SOAPPollReport] = []
    /// The supervision pass that followed ingestion (`run --once`).
    public var supervision: PassSummary?
    /// Why that pass failed, if it did (the push still follows).
    public var supervisionError: String?
    /// ODBC adapters' polls, and the polls that failed (adapter, SQLSTATE, message).
    public var polls: [ODBCPollReport] = []
    public var pollErrors: [String] = []
    /// `run --once`: each enabled receiver's push after ingesting (empty when none is configured).
    public var uplink: [DrainSummary] = []
    public var counts: IngestCounts {
        var total = files.reduce(into: IngestCounts()) { $0 += $1.counts }
        for source in sources { total += source.counts }
        for poll in polls { total += poll.counts }
        return total
    }

    /// Why this run counts as failed (exit 1 of `run --once`), empty when it did not: what was ingested stays
    /// ingested, but cron and monitoring must notice a source that could not be read, a file refused whole, and a
    /// receiver left failing.
    public var failures: [String] {
        var failures: [String] = []
        let rejected = files.filter { $0.outcome == .rejected }.count
        if rejected > 0 { failures.append("\(rejected) file(s) rejected") }
        let failedSources = pollErrors.count + sources.filter { $0.error != nil }.count
        if failedSources > 0 { failures.append("\(failedSources) source(s) could not be read") }
        if supervisionError != nil { failures.append("the supervision pass failed") }
        // Polls that read rows but hit what `adapter status` counts as a failure (a watermark no row can move, keys
        // or marks that cannot be used, deletions held back): the operator must act, so cron must see it.
        let troubled = polls.filter {
            $0.watermarkProblem != nil || $0.keyProblem != nil || $0.markProblem != nil || $0.deletionRefusal != nil
        }.map(\.adapter)
        if !troubled.isEmpty { failures.append("adapter(s) with a problem to fix: \(troubled.joined(separator: ", "))") }
        let failing = uplink.filter { !$0.drained }.map(\.receiver)
        if !failing.isEmpty { failures.append("receiver(s) failing: \(failing.joined(separator: ", "))") }
        return failures
    }
}

/// The pipeline assembled in one place: adapters → mappings → schema validation → journal.
public final class Gateway: Sendable {
    public let configuration: LoadedConfiguration
    let logger: Logger

    public init(configuration: LoadedConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func openJournal() throws(JournalError) -> Journal {
        try Journal(path: configuration.gateway.journalPath)
    }

    func makeCSVAdapter(_ adapter: AdapterConfiguration, journal: Journal) -> CSVDropAdapter? {
        guard adapter.enabled, adapter.kind == "csv-drop", let csv = adapter.csv,
              let plan = configuration.mappings[adapter.mapping] else { return nil }
        try? FileManager.default.createDirectory(atPath: csv.folder, withIntermediateDirectories: true)
        return CSVDropAdapter(name: adapter.name, settings: csv, plan: plan, schema: configuration.schema,
                              journal: journal, logger: logger)
    }

    func makeSOAPAdapter(_ adapter: AdapterConfiguration, journal: Journal) -> SOAPAdapter? {
        guard adapter.enabled, adapter.kind == "soap", let soap = adapter.soap,
              let plan = configuration.mappings[adapter.mapping] else { return nil }
        return SOAPAdapter(name: adapter.name, settings: soap, plan: plan, schema: configuration.schema,
                           journal: journal, logger: logger)
    }

    func makeODBCAdapter(_ adapter: AdapterConfiguration, journal: Journal) -> ODBCAdapter? {
        guard adapter.enabled, adapter.kind == "odbc", let odbc = adapter.odbc,
              let plan = configuration.mappings[adapter.mapping] else { return nil }
        return ODBCAdapter(name: adapter.name, settings: odbc, plan: plan, schema: configuration.schema,
                           journal: journal, logger: logger, mappingSpec: configuration.mappingSpecs[adapter.mapping],
                           file: adapter.file)
    }

    /// `esgate adapter reread NAME --from VALUE`: the adapter, set to poll once from `from` (or lower, where the
    /// saved watermark less the lag is lower), for rows that committed later than the lag allowed. Throws
    /// `RereadError` for what is wrong with the request, before anything connects: poll it with `pollOnce`.
    public func rereadAdapter(named name: String, from: String) throws -> ODBCAdapter {
        guard let adapter = configuration.adapters.first(where: { $0.name == name }) else {
            throw RereadError(message: "no adapter named '\(name)' (known: \(configuration.adapters.map(\.name).sorted().joined(separator: ", ")))")
        }
        guard adapter.kind == "odbc", adapter.enabled, let odbc = makeODBCAdapter(adapter, journal: try openJournal()) else {
            throw RereadError(message: "adapter \(name) is \(adapter.enabled ? "not an ODBC adapter (kind \(adapter.kind))" : "disabled")")
        }
        if let problem = try odbc.rereadProblem(from: from) { throw RereadError(message: problem) }
        odbc.rereadFrom = from
        return odbc
    }

    /// One poll of `odbc`, then its connection closed. The ODBC calls block: they run on a dispatch queue of
    /// their own, not a cooperative thread.
    public func pollOnce(_ odbc: ODBCAdapter) async throws -> ODBCPollReport {
        try await ODBCWorker(label: "poll-\(odbc.name)").run {
            defer { odbc.disconnect() }
            return try odbc.poll()
        }
    }

    /// `esgate run --once`: ingests everything that is complete now, waiting for files that are still settling
    /// (at most their settle time), then returns. Files waiting for a `.done` marker are left and reported.
    /// SOAP adapters are polled once (every page up to a short one); their errors are in `sources`.
    public func runOnce() throws(JournalError) -> RunSummary {
        let journal = try openJournal()
        var summary = RunSummary()
        for adapter in configuration.adapters {
            if let soap = makeSOAPAdapter(adapter, journal: journal) {
                summary.sources.append(soap.poll())
                continue
            }
            if let odbc = makeODBCAdapter(adapter, journal: journal) {
                do {
                    summary.polls.append(try odbc.poll())
                } catch {
                    logger.error("\(error)")
                    summary.pollErrors.append(error.description)
                }
                odbc.disconnect()
                continue
            }
            guard let csv = makeCSVAdapter(adapter, journal: journal) else { continue }
            var rounds = 0
            var files: [FileReport] = []
            while true {
                let (ready, waiting) = csv.scan()
                for name in ready { files.append(try csv.ingestFile(named: name)) }
                rounds += 1
                guard let wait = csv.nextSettleIn, !waiting.isEmpty, rounds < 1000 else {
                    summary.waiting += waiting.map { "\(adapter.name)/\($0)" }
                    break
                }
                Thread.sleep(forTimeInterval: min(max(wait, 0.05), 60))
            }
            csv.recordHealth(files)
            summary.files += files
        }
        return summary
    }

    /// `esgate run`: polls every adapter at its interval until cancelled.
    public func run() async throws {
        await withThrowingTaskGroup(of: Void.self) { group in
            for adapter in configuration.adapters where adapter.enabled {
                group.addTask { [self] in
                    try await self.pollLoop(adapter)
                }
            }
            if configuration.gateway.supervisionEnabled {
                group.addTask { [self] in try await self.supervisionLoop() }
            }
            while let result = await group.nextResult() {
                if case .failure(let error) = result, !(error is CancellationError) {
                    logger.error("adapter stopped: \(error)")
                }
            }
        }
    }

    private func pollLoop(_ adapter: AdapterConfiguration) async throws {
        // Each adapter has its own journal connection; SQLite serializes the writers (busy timeout).
        // A journal that cannot be opened now (locked, disk full) is retried at every poll, not given up.
        var opened: Journal?
        while opened == nil && !Task.isCancelled {
            do {
                opened = try openJournal()
            } catch {
                logger.error("adapter \(adapter.name): \(error); retrying")
                try await Task.sleep(for: adapter.pollInterval)
            }
        }
        guard let journal = opened else { return }
        if let soap = makeSOAPAdapter(adapter, journal: journal) {
            try await soapPollLoop(soap)
            return
        }
        if let odbc = makeODBCAdapter(adapter, journal: journal) {
            try await odbcLoop(odbc)
            return
        }
        guard let csv = makeCSVAdapter(adapter, journal: journal) else { return }
        logger.info("watching \(csv.settings.folder) for \(csv.settings.pattern) (adapter \(adapter.name), ready rule \(csv.settings.ready.rawValue))")
        while !Task.isCancelled {
            do {
                _ = try csv.poll()
            } catch {
                logger.error("adapter \(adapter.name): \(error); retrying at the next poll")
            }
            try await Task.sleep(for: csv.settings.pollInterval)
        }
    }

    /// Polls a SOAP adapter on its own thread (the calls block for up to the adapter's timeout; the cooperative
    /// pool must not), then waits the poll interval, or the backoff after a failure.
    private func soapPollLoop(_ soap: SOAPAdapter) async throws {
        logger.info("polling \(soap.settings.url) every \(soap.settings.pollInterval) (adapter \(soap.name), paging \(soap.settings.paging.rawValue))")
        let box = UncheckedAdapterBox(soap)
        while !Task.isCancelled {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let thread = Thread {
                    _ = box.adapter.poll()
                    continuation.resume()
                }
                thread.name = "esgate-soap-\(soap.name)"
                thread.start()
            }
            try await Task.sleep(for: soap.nextPollDelay)
        }
    }

    /// Polls an ODBC adapter on its own dispatch queue (ODBC calls block), backing off after failures:
    /// poll interval × 2^(failures − 1), at most `retry_cap`. A lost connection is re-opened at the next poll.
    private func odbcLoop(_ odbc: ODBCAdapter) async throws {
        let worker = ODBCWorker(label: odbc.name)
        logger.info("polling adapter \(odbc.name) (\(odbc.settings.mode.rawValue)) every \(odbc.settings.pollInterval)")
        defer { odbc.disconnect() }
        var failures = 0
        let stop = odbc.stopSignal
        while !Task.isCancelled {
            var delay = odbc.settings.pollInterval
            do {
                // A stop (SIGTERM) cancels a query still executing and ends a fetch at its next block, instead of
                // waiting for the poll to end: a slow query or a large backlog would hold the gateway up.
                let report = try await withTaskCancellationHandler {
                    try await worker.run { try odbc.poll() }
                } onCancel: {
                    stop.request()
                }
                // An incremental poll reads the rows of the lag window and of the last timestamp again every time:
                // a poll that changed nothing is logged at info only as the first success after failures, so an
                // idle source does not write a line per poll interval for ever.
                let line = "adapter \(odbc.name): \(report.counts.rows) rows, \(report.counts.stored) stored, \(report.counts.unchanged) unchanged, \(report.counts.quarantined) quarantined\(report.counts.alreadyQuarantined > 0 ? ", \(report.counts.alreadyQuarantined) already in quarantine" : "")\(report.deleted > 0 ? ", \(report.deleted) deleted" : "")\(report.watermark.map { ", watermark \($0)" } ?? "")"
                if report.counts.stored > 0 || report.counts.quarantined > 0 || report.marked > 0 || report.deleted > 0 {
                    logger.info(line)
                } else if failures > 0 {
                    logger.info(line + " (polling again after \(failures) failed poll\(failures == 1 ? "" : "s"))")
                } else if report.counts.rows > 0 {
                    logger.debug(line)
                }
                failures = 0
            } catch {
                if stop.isRequested { return }   // stopping: the adapter has said so
                failures += 1
                delay = odbc.settings.pollDelay(afterFailures: failures)
                logger.error("\(error); retrying in \(delay)")
            }
            try await Task.sleep(for: delay)
        }
    }

    // MARK: - Quarantine replay

    public struct ReplayReport: Sendable, Codable {
        public var replayed = 0
        public var stillFailing = 0
        public var stored = 0
        public var unchanged = 0
        /// Rows closed without storing anything: a key of theirs got a newer revision after they were quarantined.
        public var superseded = 0
        public var failures: [String] = []
        /// `#id file:line: superseded by Type key rev R (seq S)`, one per superseded row.
        public var supersededRows: [String] = []
        /// Records of replayed rows left out because their key got newer content since: `#id file:line: Type key
        /// kept at rev R (seq S)`. The row's other records were stored.
        public var supersededRecords: [String] = []
    }

    /// Re-runs quarantined rows through the current mappings: rows that now map and validate are journaled
    /// (idempotently) and marked replayed; rows one of whose keys got a newer revision since they were
    /// quarantined are closed as superseded without storing anything (their content is older than the journal's);
    /// the others stay with their new reason.
    public func replayQuarantine(source: String? = nil, ids: [Int64]? = nil) throws(JournalError) -> ReplayReport {
        let journal = try openJournal()
        var report = ReplayReport()
        let entries = try journal.quarantined(source: source, openOnly: true, ids: ids, limit: Int.max)
        for entry in entries {
            let item = entry.item
            guard let adapter = configuration.adapters.first(where: { $0.name == item.source }),
                  let plan = configuration.mappings[adapter.mapping] else {
                report.stillFailing += 1
                report.failures.append("#\(entry.id): no adapter named \(item.source) in the configuration")
                continue
            }
            // Rows are replayed oldest first, each in its own transaction: a row's check for newer revisions sees
            // what the rows before it stored.
            try journal.begin()
            do {
                switch try replay(entry, adapter: adapter, plan: plan, journal: journal) {
                case .stored(let counts, let seqs, let superseded):
                    try journal.resolveQuarantine(id: entry.id, stored: seqs)
                    report.supersededRecords += superseded.map {
                        Redaction.maskIdentityNumbers(in: "#\(entry.id) \(item.origin):\(item.line): not stored, superseded by \($0.description)")
                    }
                    report.replayed += 1
                    report.stored += counts.stored
                    report.unchanged += counts.unchanged
                case .superseded(let revision):
                    try journal.supersedeQuarantine(id: entry.id, by: revision)
                    report.superseded += 1
                    report.supersededRows.append(Redaction.maskIdentityNumbers(in: "#\(entry.id) \(item.origin):\(item.line): superseded by \(revision.description)"))
                case .failing(let failure):
                    try journal.retainQuarantine(id: entry.id, stage: failure.stage, recordType: failure.recordType,
                                                 field: failure.field, errors: failure.errors)
                    report.stillFailing += 1
                    report.failures.append(Redaction.maskIdentityNumbers(in: "#\(entry.id) \(item.origin):\(item.line): \(failure.errors.joined(separator: "; "))"))
                }
                try journal.commit()
            } catch {
                journal.rollback()
                throw error
            }
        }
        return report
    }

    struct ReplayFailure: Error {
        var stage: QuarantineItem.Stage
        var recordType = ""
        var field = ""
        var errors: [String]
    }

    enum ReplayOutcome {
        /// `seqs`: the records this replay added (nil when all were unchanged); `superseded`: records of the row
        /// left out because their key has newer content.
        case stored(IngestCounts, seqs: ClosedRange<Int64>?, superseded: [SupersedingRevision])
        case superseded(SupersedingRevision)
        case failing(ReplayFailure)
    }

    private func replay(_ entry: QuarantineEntry, adapter: AdapterConfiguration, plan: MappingPlan, journal: Journal) throws(JournalError) -> ReplayOutcome {
        let item = entry.item
        let fields: [String]
        switch CSVRowDecoding.fields(raw: item.raw, encoding: item.encoding, delimiter: adapter.csv?.delimiter ?? 44) {
        case .success(let decoded): fields = decoded
        case .failure(.decode(let message)): return .failing(ReplayFailure(stage: .decode, errors: [message]))
        case .failure(.parse(let message)): return .failing(ReplayFailure(stage: .parse, errors: [message]))
        }
        if let problem = csvShapeProblem(fields: fields, headerCount: item.header.count) {
            return .failing(ReplayFailure(stage: .parse, errors: [problem]))
        }
        let bound: BoundMapping
        switch plan.bind(header: item.header) {
        case .success(let mapping): bound = mapping
        case .failure(let error): return .failing(ReplayFailure(stage: .map, errors: [error.message]))
        }
        let prepared = RowPreparer(schema: configuration.schema, mapping: bound).prepare(fields, line: item.line) {
            RowOrigin(source: item.source, origin: item.origin, line: item.line, raw: item.raw, encoding: item.encoding, header: item.header)
        }
        // Record by record: one whose key got newer content in the journal since the row was quarantined was sent
        // again by the source, and this older version must not be stored over it; the row's other records (a
        // denormalized export repeats a case's header on every step row, and the header may change while the
        // step's own record never comes again) are stored.
        var built = Set<String>()
        var superseding: [SupersedingRevision] = []
        var fresh: [(record: NormalizedRecord, body: PreparedBody)] = []
        for (record, body) in zip(prepared.records, prepared.bodies) {
            built.insert(record.type + "\u{1F}" + record.key)
            if let revision = try journal.supersedingRevision(of: entry, type: record.type, key: record.key, digest: body.digest) {
                superseding.append(revision)
            } else {
                fresh.append((record, body))
            }
        }
        if let failed = prepared.quarantine {
            // Records that still fail have no content to compare, but their keys may be known (only the key
            // fields mapped): the row is done only when each of them has a newer revision; else it stays failing,
            // whole, as it was quarantined.
            let failingKeys = keysOfFailingRecords(fields, adapter: adapter, header: item.header).filter { !built.contains($0.type + "\u{1F}" + $0.key) }
            var everyFailingOneSuperseded = !failingKeys.isEmpty
            for (type, key) in failingKeys {
                if let revision = try journal.supersedingRevision(of: entry, type: type, key: key, digest: nil) {
                    superseding.append(revision)
                } else {
                    everyFailingOneSuperseded = false
                }
            }
            guard everyFailingOneSuperseded else {
                return .failing(ReplayFailure(stage: failed.stage, recordType: failed.recordType, field: failed.field, errors: failed.errors))
            }
        }
        if fresh.isEmpty, let first = superseding.first { return .superseded(first) }
        var counts = IngestCounts()
        var seqs: ClosedRange<Int64>?
        for (record, body) in fresh {
            switch try journal.append(record, source: item.source, origin: item.origin, line: item.line, prepared: body) {
            case .stored(_, let seq):
                counts.stored += 1
                seqs = seqs.map { min($0.lowerBound, seq)...max($0.upperBound, seq) } ?? seq...seq
            case .unchanged: counts.unchanged += 1
            }
        }
        return .stored(counts, seqs: seqs, superseded: superseding)
    }

    /// The record keys a row yields under the adapter's mapping cut down to its key fields: known even when
    /// another field of the record fails.
    private func keysOfFailingRecords(_ fields: [String], adapter: AdapterConfiguration, header: [String]) -> [(type: String, key: String)] {
        guard let spec = configuration.mappingSpecs[adapter.mapping],
              let keyPlan = ODBCAdapter.keyOnlyPlan(spec, schema: configuration.schema),
              case .success(let bound) = keyPlan.bind(header: header) else { return [] }
        return bound.map(fields).records.compactMap { draft in
            guard let recordType = configuration.schema.recordTypes[draft.type] else { return nil }
            return (draft.type, recordType.keyFields.map { draft[$0] ?? "" }.joined(separator: "\u{1F}"))
        }
    }

    // MARK: - Mapping test

    public struct MappingTestRow: Sendable, Codable {
        public var line: Int
        public var records: [String]
        public var errors: [String]

        /// One source row through the mapping and the schema, as `mapping test` shows it: records as PUI XML or
        /// the errors, identity numbers masked.
        static func mapped(_ fields: [String], line: Int, mapping: BoundMapping, schema: PUISchema) -> MappingTestRow {
            let validated = mapping.mapAndValidate(fields, schema: schema)
            return MappingTestRow(line: line, records: validated.records.map { Redaction.maskIdentityNumbers(in: $0.body) },
                                  errors: validated.errors.map { Redaction.maskIdentityNumbers(in: $0.message) })
        }
    }

    /// Maps the first `rows` rows of a file and returns each row's records (as PUI XML) or errors.
    /// Nothing is written to the journal. Identity numbers are masked in the output.
    public static func testMapping(plan: MappingPlan, schema: PUISchema, file: String, rows: Int,
                                   encoding: EncodingSetting, delimiter: UInt8 = 44, headerLine: Int = 1) -> Result<[MappingTestRow], FileReadError> {
        guard let data = FileManager.default.contents(atPath: file) else {
            return .failure(FileReadError(path: file, message: "cannot read the file"))
        }
        var bytes = [UInt8](data)
        var textEncoding: TextEncoding = encoding == .utf8 ? .utf8 : .gb18030
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
            bytes.removeFirst(3)
            textEncoding = .utf8
        } else if encoding == .auto {
            textEncoding = CSVDropAdapter.autoEncoding(head: Array(bytes.prefix(64 * 1024)))
        }
        let records = MappingTestRunner(bytes: bytes, encoding: textEncoding, delimiter: delimiter, headerLine: headerLine)
        return records.run(plan: plan, schema: schema, rows: rows, file: file)
    }
}

/// Splits an in-memory file into rows for `mapping test` (small inputs: the first N rows).
struct MappingTestRunner {
    let bytes: [UInt8]
    let encoding: TextEncoding
    let delimiter: UInt8
    /// As the adapter's `header_line`: rows above it, and blank rows before the header, are skipped.
    var headerLine = 1

    func run(plan: MappingPlan, schema: PUISchema, rows limit: Int, file: String) -> Result<[Gateway.MappingTestRow], FileReadError> {
        var rows: [(line: Int, raw: [UInt8])] = []
        var start = 0, line = 1, rowLine = 1, inQuotes = false
        for (index, byte) in bytes.enumerated() {
            if byte == 0x22 { inQuotes.toggle() }
            if byte == 0x0A {
                if inQuotes { line += 1; continue }
                var end = index
                if end > start, bytes[end - 1] == 0x0D { end -= 1 }
                rows.append((rowLine, Array(bytes[start..<end])))
                line += 1
                rowLine = line
                start = index + 1
                if rows.count > limit + headerLine + 20 { break }
            }
        }
        if rows.count <= limit + headerLine + 20, start < bytes.count { rows.append((rowLine, Array(bytes[start...]))) }
        guard let headerIndex = rows.firstIndex(where: { $0.line >= headerLine && !isBlankCSVRow($0.raw, delimiter: delimiter) }) else {
            return .failure(FileReadError(path: file, message: "the file is empty"))
        }
        let headerRow = rows[headerIndex]
        rows.removeFirst(headerIndex)
        let header: [String]
        switch CSVRowDecoding.fields(raw: headerRow.raw, encoding: encoding.rawValue, delimiter: delimiter) {
        case .success(let fields): header = fields
        case .failure(let error): return .failure(FileReadError(path: file, message: "header: \(error)"))
        }
        let bound: BoundMapping
        switch plan.bind(header: header) {
        case .success(let mapping): bound = mapping
        case .failure(let error): return .failure(FileReadError(path: file, message: error.message))
        }
        var result: [Gateway.MappingTestRow] = []
        for row in rows.dropFirst().prefix(limit) where !row.raw.isEmpty {
            switch CSVRowDecoding.fields(raw: row.raw, encoding: encoding.rawValue, delimiter: delimiter) {
            case .failure(let error):
                result.append(Gateway.MappingTestRow(line: row.line, records: [],
                                                     errors: [Redaction.maskIdentityNumbers(in: error.description)]))
            case .success(let fields):
                if let problem = csvShapeProblem(fields: fields, headerCount: header.count) {
                    result.append(Gateway.MappingTestRow(line: row.line, records: [], errors: [problem]))
                } else {
                    result.append(.mapped(fields, line: row.line, mapping: bound, schema: schema))
                }
            }
        }
        return .success(result)
    }
}

/// Hands a SOAP adapter to its polling thread. Only one thread uses it at a time: the loop awaits each poll
/// before it starts the next.
private final class UncheckedAdapterBox: @unchecked Sendable {
    let adapter: SOAPAdapter
    init(_ adapter: SOAPAdapter) { self.adapter = adapter }
}

/// Why `adapter reread` could not run: the adapter named is unknown, not ODBC or disabled.
public struct RereadError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}
