import CryptoSupport
import GatewayModel
import Journal
import Mapping
import TextSupport

/// Counts of what ingestion did, per file or per run.
public struct IngestCounts: Sendable, Equatable, Codable {
    public var rows = 0
    /// Records stored as a new key or a new revision.
    public var stored = 0
    /// Records identical to their key's latest revision (nothing added).
    public var unchanged = 0
    /// Rows held in quarantine.
    public var quarantined = 0
    /// Rows read again that quarantine already holds (a database row in the lag window, a snapshot, a front-table
    /// retry): not held twice, counted so that the rows add up.
    public var alreadyQuarantined = 0
    /// Records that replaced a revision stored from the same file: one key given two contents in one export (a
    /// key column cut short, as a spreadsheet's 15 significant digits do to case numbers, or a row corrected
    /// within the export). Stored all the same, the later row as the newer revision; counted so that it shows.
    public var changedWithinFile = 0
    /// The first of them: type, key (identity numbers masked) and line.
    public var firstChangedWithinFile: String?

    public init() {}

    public static func += (a: inout IngestCounts, b: IngestCounts) {
        a.rows += b.rows
        a.stored += b.stored
        a.unchanged += b.unchanged
        a.quarantined += b.quarantined
        a.alreadyQuarantined += b.alreadyQuarantined
        a.changedWithinFile += b.changedWithinFile
        a.firstChangedWithinFile = a.firstChangedWithinFile ?? b.firstChangedWithinFile
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

/// One source row after mapping and validation: the records to store and, when anything failed, the row's
/// quarantine entry. Records that did validate are stored even then (idempotently), so that a replay of the
/// row only adds what was missing.
public struct PreparedRow: Sendable {
    public var line: Int
    public var records: [NormalizedRecord] = []
    /// Digest and stored form of each record's body, computed while preparing so that the journal writer does not have to.
    public var bodies: [PreparedBody] = []
    public var quarantine: QuarantineItem?

    public init(line: Int) { self.line = line }
}

/// The pure part of every source row's path: mapping → schema validation. No I/O, so it can run on its own
/// thread ahead of the journal writer.
public struct RowPreparer: Sendable {
    public let schema: PUISchema
    public let mapping: BoundMapping

    public init(schema: PUISchema, mapping: BoundMapping) {
        self.schema = schema
        self.mapping = mapping
    }

    public func prepare(_ fields: [String], line: Int, origin: () -> RowOrigin) -> PreparedRow {
        prepare(fields, line: line, scratch: RowScratch(), origin: origin)
    }

    /// `prepare` with buffers reused across the rows of one thread. Ordinary rows are mapped, validated and
    /// serialized in one pass on bytes; any other row takes the general path (map, then normalize each draft),
    /// which gives the same records and words the quarantine reasons.
    public func prepare(_ fields: [String], line: Int, scratch: RowScratch, origin: () -> RowOrigin) -> PreparedRow {
        if let records = mapping.normalizeOrdinaryRow(fields, schema: schema, scratch: scratch) {
            return prepared(records, line: line)
        }
        return prepareInGeneral(fields, line: line, origin: origin)
    }

    /// `prepare` for a row split into UTF-8 bytes (`fieldRanges` index `fieldBytes`): ordinary rows never become
    /// Strings field by field.
    public func prepare(fieldBytes: UnsafeBufferPointer<UInt8>, fieldRanges: UnsafeBufferPointer<Range<Int>>, line: Int,
                        scratch: RowScratch, origin: () -> RowOrigin) -> PreparedRow {
        if let ordinary = mapping.normalizeOrdinaryRowForJournal(fieldBytes: fieldBytes, fieldRanges: fieldRanges, schema: schema,
                                                                 scratch: scratch) {
            return prepared(ordinary.records, compactBodies: ordinary.compactBodies, line: line)
        }
        let fields = fieldRanges.map { String(decoding: UnsafeBufferPointer(rebasing: fieldBytes[$0]), as: UTF8.self) }
        return prepareInGeneral(fields, line: line, origin: origin)
    }

    /// `compactBodies`: the records' compact bodies as their serializer wrote them (nil: the journal's encoder
    /// makes them from the XML).
    private func prepared(_ records: [NormalizedRecord], compactBodies: [[UInt8]?]? = nil, line: Int) -> PreparedRow {
        var prepared = PreparedRow(line: line)
        prepared.bodies.reserveCapacity(records.count)
        for (index, record) in records.enumerated() {
            if let compactBodies, index < compactBodies.count {
                prepared.bodies.append(PreparedBody(record.body, compact: compactBodies[index]))
            } else {
                prepared.bodies.append(PreparedBody(record.body))
            }
        }
        prepared.records = records
        return prepared
    }

    /// Map, then validate each draft: the authority for every row, and the one that words quarantine reasons
    /// (every error of the row, the first of them as its reason).
    private func prepareInGeneral(_ fields: [String], line: Int, origin: () -> RowOrigin) -> PreparedRow {
        var prepared = PreparedRow(line: line)
        let validated = mapping.mapAndValidate(fields, schema: schema)
        for record in validated.records {
            prepared.records.append(record)
            prepared.bodies.append(PreparedBody(record.body))
        }
        if let first = validated.errors.first {
            prepared.quarantine = quarantineItem(origin(), stage: first.stage == .map ? .map : .validate, recordType: first.recordType,
                                                 field: first.field, reason: first.message, errors: validated.errors.map(\.message))
        }
        return prepared
    }

    public func quarantineItem(_ origin: RowOrigin, stage: QuarantineItem.Stage, recordType: String, field: String,
                               reason: String, errors: [String] = []) -> QuarantineItem {
        QuarantineItem(source: origin.source, mapping: mapping.plan.name, origin: origin.origin, line: origin.line,
                       stage: stage, recordType: recordType, field: field, reason: reason, errors: errors, raw: origin.raw,
                       encoding: origin.encoding, header: origin.header)
    }
}

extension Journal {
    /// Stores a prepared row inside the caller's transaction and counts what happened; `stored` sees each record
    /// that became a new revision.
    /// `sameFileFrom`: the first seq this file's records got (a CSV file's ingest), to count keys given two
    /// contents within it.
    public func store(_ row: PreparedRow, source: String, file: String, counts: inout IngestCounts,
                      sameFileFrom: Int64? = nil, stored: ((NormalizedRecord) -> Void)? = nil) throws(JournalError) {
        counts.rows += 1
        for index in row.records.indices {
            switch try append(row.records[index], source: source, origin: file, line: row.line,
                              prepared: index < row.bodies.count ? row.bodies[index] : nil) {
            case .stored:
                counts.stored += 1
                if let sameFileFrom, let replaced = replacedSeq, replaced >= sameFileFrom {
                    counts.changedWithinFile += 1
                    if counts.firstChangedWithinFile == nil {
                        let record = row.records[index]
                        counts.firstChangedWithinFile = "\(record.type) \(Redaction.maskIdentityNumbers(in: record.displayKey)) at line \(row.line)"
                    }
                }
                stored?(row.records[index])
            case .unchanged: counts.unchanged += 1
            }
        }
        if let item = row.quarantine {
            counts.quarantined += 1
            try quarantine(item)
        }
    }
}
