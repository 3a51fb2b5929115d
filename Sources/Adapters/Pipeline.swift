import GatewayModel
import Journal
import Mapping

/// Counts of what ingestion did, per file or per run.
public struct IngestCounts: Sendable, Equatable, Codable {
    public var rows = 0
    /// Records stored as a new key or a new revision.
    public var stored = 0
    /// Records identical to their key's latest revision (nothing added).
    public var unchanged = 0
    /// Rows held in quarantine.
    public var quarantined = 0

    public init() {}

    public static func += (a: inout IngestCounts, b: IngestCounts) {
        a.rows += b.rows
        a.stored += b.stored
        a.unchanged += b.unchanged
        a.quarantined += b.quarantined
    }
}

/// Where a row came from, for records and quarantine entries.
public struct RowOrigin: Sendable {
    public var source: String
    public var origin: String
    public var line: Int
    public var raw: [UInt8]
    public var encoding: String
    public var header: [String]

    public init(source: String, origin: String, line: Int, raw: [UInt8], encoding: String, header: [String]) {
        self.source = source
        self.origin = origin
        self.line = line
        self.raw = raw
        self.encoding = encoding
        self.header = header
    }
}

/// The path every source row takes: mapping → schema validation → journal, or quarantine with the reason.
/// Runs inside the caller's journal transaction, so rows and the source's progress commit together.
public struct RowPipeline {
    public let schema: PUISchema
    public let mapping: BoundMapping
    public let journal: Journal

    public init(schema: PUISchema, mapping: BoundMapping, journal: Journal) {
        self.schema = schema
        self.mapping = mapping
        self.journal = journal
    }

    /// Maps, validates and stores one row. The row is quarantined as a whole when any of its records fails,
    /// so that a replay re-runs exactly the row; records that did validate are still stored (idempotently).
    public func ingest(_ fields: [String], origin: @autoclosure () -> RowOrigin, line: Int, source: String,
                       file: String, counts: inout IngestCounts) throws(JournalError) -> [NormalizedRecord] {
        counts.rows += 1
        let outcome = mapping.map(fields)
        var stored: [NormalizedRecord] = []
        var failure: (stage: QuarantineItem.Stage, type: String, field: String, reason: String)?
        if let error = outcome.errors.first {
            failure = (.map, error.recordType, error.field, error.description)
        }
        for draft in outcome.records {
            switch schema.normalize(draft) {
            case .success(let record):
                switch try journal.append(record, source: source, origin: file, line: line) {
                case .stored: counts.stored += 1
                case .unchanged: counts.unchanged += 1
                }
                stored.append(record)
            case .failure(let error):
                if failure == nil { failure = (.validate, error.recordType, error.field, error.description) }
            }
        }
        if let failure {
            let extra = outcome.errors.count > 1 ? " (+\(outcome.errors.count - 1) more)" : ""
            try quarantine(origin(), stage: failure.stage, recordType: failure.type, field: failure.field,
                           reason: failure.reason + extra, counts: &counts)
        }
        return stored
    }

    public func quarantine(_ origin: RowOrigin, stage: QuarantineItem.Stage, recordType: String, field: String,
                           reason: String, counts: inout IngestCounts) throws(JournalError) {
        counts.quarantined += 1
        try journal.quarantine(QuarantineItem(
            source: origin.source, mapping: mapping.plan.name, origin: origin.origin, line: origin.line, stage: stage,
            recordType: recordType, field: field, reason: reason, raw: origin.raw, encoding: origin.encoding,
            header: origin.header))
    }
}
