import CryptoSupport
import Foundation
import GatewayConfig
import GatewayModel
import HTTPClientSupport
import Journal
import Mapping
import XMLSupport

/// What one poll of a SOAP adapter did.
public struct SOAPPollReport: Sendable, Codable {
    public var adapter: String
    /// Calls made (pages fetched).
    public var pages = 0
    public var counts = IngestCounts()
    /// Pages whose payload was refused (and quarantined).
    public var refusedPayloads = 0
    /// The watermark after the poll, as stored in the journal.
    public var watermark: String?
    /// Why the poll stopped early (typed error text), nil when it completed.
    public var error: String?

    public init(adapter: String) { self.adapter = adapter }
}

/// Health of a SOAP adapter across polls.
public struct SOAPAdapterStatus: Sendable, Codable, Equatable {
    public var lastPollAt: Date?
    public var lastSuccessAt: Date?
    public var lastError: String?
    public var lastErrorAt: Date?
    public var consecutiveFailures = 0
}

/// The adapter's position in the source, stored with `Journal.setSourceOffset` in the same transaction as
/// the page's records. `page`: next page to fetch (page paging). `since`: the committed watermark (since
/// paging); during a sweep (`{{page}}` in the template too) `sweepSince`/`sweepPage`/`sweepMax` say where
/// a restart continues.
public struct SOAPWatermark: Codable, Equatable, Sendable {
    public var page: Int?
    public var since: String?
    public var sweepSince: String?
    public var sweepPage: Int?
    public var sweepMax: String?

    public init(page: Int? = nil, since: String? = nil) {
        self.page = page
        self.since = since
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// Calls a legacy SOAP operation page by page and turns the records into source rows for a mapping.
/// Not Sendable: one poller at a time (the gateway gives each adapter its own task and journal connection).
public final class SOAPAdapter {
    public let name: String
    public let settings: SOAPSettings
    let plan: MappingPlan
    let schema: PUISchema
    let journal: Journal
    let logger: Logger
    let clock: () -> Date
    let nonce: () -> [UInt8]
    let builder: SOAPRequestBuilder
    let reader: SOAPResponseReader
    private var client: HTTPClient?
    public private(set) var status = SOAPAdapterStatus()
    public private(set) var lastFailure: SOAPAdapterError?

    public init(name: String, settings: SOAPSettings, plan: MappingPlan, schema: PUISchema, journal: Journal,
                logger: Logger, clock: @escaping () -> Date = Date.init, nonce: @escaping () -> [UInt8] = { randomNonce() }) {
        self.name = name
        self.settings = settings
        self.plan = plan
        self.schema = schema
        self.journal = journal
        self.logger = logger.with(component: "soap:\(name)")
        self.clock = clock
        self.nonce = nonce
        self.builder = SOAPRequestBuilder(settings: settings)
        self.reader = SOAPResponseReader(settings: settings)
    }

    /// Delay before the next poll: the poll interval after success, exponential backoff after failures.
    public var nextPollDelay: Duration {
        guard status.consecutiveFailures > 0 else { return settings.pollInterval }
        let exponent = min(status.consecutiveFailures - 1, 20)
        let delay = settings.retryBase * (1 << exponent)
        return min(delay, settings.retryCap)
    }

    /// Fetches pages until one comes back short (or `max_pages_per_poll`); never throws: the typed error is
    /// in the report, in `lastFailure` and in `status`, and the next poll retries from the watermark.
    public func poll() -> SOAPPollReport {
        var report = SOAPPollReport(adapter: name)
        status.lastPollAt = clock()
        do throws(SOAPAdapterError) {
            try pollPages(&report)
            status.lastSuccessAt = clock()
            status.lastError = nil
            status.consecutiveFailures = 0
            lastFailure = nil
        } catch {
            report.error = error.description
            status.lastError = error.description
            status.lastErrorAt = clock()
            status.consecutiveFailures += 1
            lastFailure = error
            logger.error("\(error); retrying at the next poll (in \(nextPollDelay))")
        }
        report.watermark = try? journal.sourceOffset(name)
        try? journal.recordPoll(adapter: name, kind: "soap", PollOutcome(error: report.error, rows: report.counts.rows))
        if report.pages > 0 {
            logger.info("\(report.pages) calls: \(report.counts.rows) records, \(report.counts.stored) stored, \(report.counts.unchanged) unchanged, \(report.counts.quarantined) quarantined")
        }
        return report
    }

    // MARK: - Paging

    func makeClient() throws(SOAPAdapterError) -> HTTPClient {
        if let client { return client }
        var password: String?
        if let file = settings.keyPassphraseFile {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw .configuration("cannot read key_passphrase_file \(file)")
            }
            password = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
        }
        // The passphrase file is read again for every request (a renewed key under a new passphrase needs no
        // restart); the read above makes an unreadable one fail here.
        let tls = HTTPClient.TLSConfiguration(caFile: settings.caFile, clientCertificateFile: settings.certificateFile,
                                              clientKeyFile: settings.keyFile, clientKeyPassword: password,
                                              clientKeyPasswordFile: settings.keyPassphraseFile)
        let made = HTTPClient(configuration: .init(connectTimeout: settings.connectTimeout, totalTimeout: settings.timeout,
                                                   tls: tls, allowPlaintextHTTP: settings.insecurePlaintext,
                                                   maxResponseBodyBytes: settings.maxResponseBytes))
        client = made
        return made
    }

    func loadWatermark() throws(SOAPAdapterError) -> SOAPWatermark {
        let stored: String?
        do throws(JournalError) { stored = try journal.sourceOffset(name) } catch { throw .journal(error) }
        guard let stored, !stored.isEmpty else { return SOAPWatermark() }
        do {
            return try JSONDecoder().decode(SOAPWatermark.self, from: Data(stored.utf8))
        } catch {
            throw .configuration("the stored watermark '\(stored)' is not a SOAP watermark (was the adapter renamed?)")
        }
    }

    private func pollPages(_ report: inout SOAPPollReport) throws(SOAPAdapterError) {
        let bound: BoundMapping
        switch plan.bind(header: settings.fields.map(\.column)) {
        case .success(let mapping): bound = mapping
        case .failure(let error): throw .configuration("mapping \(plan.name) does not fit the fields: \(error.message)")
        }
        let client = try makeClient()
        var mark = try loadWatermark()
        let usesPage = templatePlaceholders(settings.bodyTemplate).contains("page")
        let sinceIndex = settings.fields.firstIndex { $0.column == settings.sinceField }
        while report.pages < settings.maxPagesPerPoll {
            var page = settings.pageStart
            var since = settings.sinceInitial
            let label: String
            switch settings.paging {
            case .none:
                label = "call"
            case .page:
                page = mark.page ?? settings.pageStart
                label = "page \(page)"
            case .since:
                if usesPage {
                    since = mark.sweepSince ?? mark.since ?? settings.sinceInitial
                    page = mark.sweepPage ?? settings.pageStart
                    label = "since \(since) page \(page)"
                } else {
                    since = mark.since ?? settings.sinceInitial
                    label = "since \(since)"
                }
            }
            let request = builder.request(SOAPRequestValues(page: page, since: since, now: clock(), nonce: nonce()))
            let response: HTTPResponse
            do throws(HTTPClientError) { response = try client.sendBlocking(request) } catch { throw .transport(error) }
            report.pages += 1
            switch try reader.read(response) {
            case .refused(let problem):
                report.refusedPayloads += 1
                var next = mark
                let skip = settings.onRefusedPayload == .skip && settings.paging == .page
                if skip { next.page = page + 1 }
                let id = try quarantinePayload(response.body, label: label, problem: problem, watermark: skip ? next : nil)
                if skip {
                    logger.warning("\(label): payload refused and quarantined, skipped (on_refused_payload: skip): \(problem.reason)")
                    mark = next
                    continue
                }
                throw .refusedPayload("\(label): \(problem.reason)", quarantineID: id)
            case .rows(let rows):
                var next = mark
                let full = rows.count >= settings.pageSize
                var stalled: String?
                switch settings.paging {
                case .none:
                    break
                case .page:
                    next.page = full ? page + 1 : page
                case .since:
                    let largest = sinceIndex.flatMap { index in rows.compactMap { $0.indices.contains(index) ? $0[index] : nil }.filter { !$0.isEmpty }.max() }
                    if usesPage {
                        let sweepMax = [mark.sweepMax ?? since, largest ?? since].max() ?? since
                        if full {
                            next.since = mark.since ?? settings.sinceInitial
                            next.sweepSince = since
                            next.sweepPage = page + 1
                            next.sweepMax = sweepMax
                        } else {
                            next.since = sweepMax
                            next.sweepSince = nil
                            next.sweepPage = nil
                            next.sweepMax = nil
                        }
                    } else {
                        let advanced = max(since, largest ?? since)
                        next.since = advanced
                        if full && advanced == since {
                            stalled = "a full page of \(rows.count) records all at \(settings.sinceField) = \(since); add {{page}} to the request template so that one since value can be paged through"
                        }
                    }
                }
                try store(rows, bound: bound, label: label, watermark: settings.paging == .none ? nil : next, counts: &report.counts)
                mark = next
                if let stalled { throw .stalledSince(stalled) }
                if !full || settings.paging == .none { return }
            }
        }
    }

    /// Maps and validates a page's rows and stores them with the new watermark in one transaction.
    private func store(_ rows: [[String]], bound: BoundMapping, label: String, watermark: SOAPWatermark?,
                       counts: inout IngestCounts) throws(SOAPAdapterError) {
        let preparer = RowPreparer(schema: schema, mapping: bound)
        let header = settings.fields.map(\.column)
        let source = name
        let prepared = rows.enumerated().map { index, row in
            preparer.prepare(row, line: index + 1) {
                RowOrigin(source: source, origin: label, line: index + 1, raw: Array(csvLine(row).utf8), encoding: "utf-8", header: header)
            }
        }
        do throws(JournalError) {
            try journal.begin()
            do throws(JournalError) {
                for row in prepared { try journal.store(row, source: name, file: label, counts: &counts) }
                if let watermark { try journal.setSourceOffset(name, position: watermark.json) }
                try journal.commit()
            } catch {
                journal.rollback()
                throw error
            }
        } catch {
            throw .journal(error)
        }
    }

    /// Quarantines a refused response once (an identical response at a later poll is not quarantined
    /// again); with `watermark`, the watermark moves in the same transaction.
    private func quarantinePayload(_ body: [UInt8], label: String, problem: SOAPContentError,
                                   watermark: SOAPWatermark?) throws(SOAPAdapterError) -> Int64? {
        let digest = body.withUnsafeBytes { Digest.sha256($0) }.hexString.prefix(16)
        let origin = "\(label) sha256:\(digest)"
        do throws(JournalError) {
            let existing = try journal.quarantined(source: name, openOnly: true, limit: 100_000)
            if let known = existing.first(where: { $0.item.origin == origin }) {
                if let watermark { try journal.batch { try journal.setSourceOffset(name, position: watermark.json) } }
                return known.id
            }
            let item = QuarantineItem(source: name, mapping: plan.name, origin: origin, line: 0,
                                      stage: problem.stage == .decode ? .decode : .parse, recordType: "", field: "",
                                      reason: problem.reason, raw: Array(body.prefix(1 << 20)), encoding: "soap-response",
                                      header: [])
            try journal.begin()
            do throws(JournalError) {
                try journal.quarantine(item)
                if let watermark { try journal.setSourceOffset(name, position: watermark.json) }
                try journal.commit()
            } catch {
                journal.rollback()
                throw error
            }
            logger.error("\(label): payload quarantined: \(problem.reason)")
            return try journal.quarantined(source: name, openOnly: true, limit: 100_000).first { $0.item.origin == origin }?.id
        } catch {
            throw .journal(error)
        }
    }
}

