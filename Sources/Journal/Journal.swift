import CryptoSupport
import Foundation
import GatewayModel
import SQLiteSupport

/// A journal failure, with the operation that failed.
public struct JournalError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let underlying: String
    public var description: String { "journal: \(operation): \(underlying)" }

    public init(operation: String, underlying: String) {
        self.operation = operation
        self.underlying = underlying
    }
}

/// What appending a record did.
public enum AppendOutcome: Sendable, Equatable {
    /// A new key (rev 1) or changed content (rev + 1).
    case stored(rev: Int64, seq: Int64)
    /// Identical content is already the latest revision of the key: nothing was added.
    case unchanged
}

/// What the journal needs of a record's body beyond the body: its content digest and its stored form. Computed
/// where the record is made (an adapter's reader thread), so the journal's single writer does not.
public struct PreparedBody: Sendable {
    /// `Journal.contentDigest(of: body)`.
    public let digest: [UInt8]
    /// `StoredBody.encode(body)`; nil stores the XML.
    public let compact: [UInt8]?

    public init(_ body: String) {
        digest = Journal.contentDigest(of: body)
        compact = StoredBody.encode(body)
    }

    /// For a body whose compact form its producer wrote alongside it (`RecordLayout.normalizeWithCompactBody`):
    /// exactly `StoredBody.encode(body)`, or nil to store the XML.
    public init(_ body: String, compact: [UInt8]?) {
        digest = Journal.contentDigest(of: body)
        self.compact = compact
    }
}

/// A journal entry as consumers read it.
public struct JournalEntry: Sendable, Equatable {
    public let seq: Int64
    public let type: String
    public let key: String
    public let rev: Int64
    /// This revision withdraws the key (PUI `op="delete"`); the body is the key's last content.
    public let deleted: Bool
    /// The body as stored (see `StoredBody`): compact, or XML for what the encoder declined and older journals.
    /// Consumers that only copy records onward (the uplink) decode these bytes straight into their output.
    public let storedBody: [UInt8]
    /// The record as PUI XML, decoded from `storedBody` on each access.
    public var body: String { StoredBody.xml(storedBody) }
    public let source: String
    public let origin: String?
    public let line: Int
    public let ingestedAt: Date
}

/// Where a quarantined row came from and why it is held back.
public struct QuarantineItem: Sendable {
    public enum Stage: String, Sendable {
        /// Bytes that do not decode in the file's encoding.
        case decode
        /// Malformed CSV structure (e.g. an unterminated quote at end of file).
        case parse
        /// The mapping could not build a record (bad date, unknown code, no route).
        case map
        /// The record does not satisfy the PUI schema.
        case validate
    }
    public var source: String
    public var mapping: String
    public var origin: String
    public var line: Int
    public var stage: Stage
    public var recordType: String
    public var field: String
    /// The first of `errors`, kept on its own for the one-line views (status, logs).
    public var reason: String
    /// Every error of the row, in the order the mapping and the schema found them.
    public var errors: [String]
    /// The row exactly as read (undecoded bytes), so that a replay starts from the source.
    public var raw: [UInt8]
    public var encoding: String
    /// The file's header row (decoded), needed to map the row again.
    public var header: [String]

    public init(source: String, mapping: String, origin: String, line: Int, stage: Stage, recordType: String,
                field: String, reason: String, errors: [String] = [], raw: [UInt8], encoding: String, header: [String]) {
        self.source = source
        self.mapping = mapping
        self.origin = origin
        self.line = line
        self.stage = stage
        self.recordType = recordType
        self.field = field
        self.reason = reason
        self.errors = errors.isEmpty ? [reason] : errors
        self.raw = raw
        self.encoding = encoding
        self.header = header
    }
}

/// A stored quarantine entry.
public struct QuarantineEntry: Sendable {
    public let id: Int64
    public let item: QuarantineItem
    /// `open`, `replayed`, `superseded` (a newer revision of its record arrived first) or `dropped` (by an operator).
    public let state: String
    public let attempts: Int
    public let createdAt: Date
    /// The journal's last seq when the row was quarantined (the row's own good records included): a revision of
    /// one of its keys after it is newer than the row. Estimated from the time for rows quarantined before it was kept.
    public let journalSeq: Int64
    /// Why a superseded or dropped entry was closed.
    public let closedReason: String?
}

/// Progress of one dropped file, keyed by its content hash.
public struct FileProgress: Sendable, Equatable {
    public enum State: String, Sendable { case ingesting, done, rejected }
    public let sha256: String
    public let source: String
    public let name: String
    public let state: State
    /// Byte offset just after the last row committed.
    public let offset: Int64
    /// Physical line where the next row starts.
    public let line: Int
    public let rows: Int
    public let records: Int
    public let quarantined: Int
}

/// The durable local log (SQLite, WAL, synchronous=FULL). Not Sendable: one connection per task.
public final class Journal {
    public let path: String
    let database: SQLiteDatabase
    private var insertHead: SQLiteStatement?
    private var bumpHead: SQLiteStatement?
    private var readHead: SQLiteStatement?
    /// The seq of the revision the last `append` replaced (nil: a new key, or unchanged). A writer compares it
    /// with where its file began: a key given two contents within one export.
    public private(set) var replacedSeq: Int64?
    private var insertChunk: SQLiteStatement?
    /// Records appended in this transaction and not yet written: they go to `record_chunks` a chunk at a time
    /// (`RecordChunks.swift`), when the chunk is full, its source or origin changes, something reads records on
    /// this connection, or the transaction commits.
    private var pendingChunk = RecordChunkBuilder()
    /// `adapter_health` is known to exist with all its columns (checked once per connection).
    var healthTableReady = false
    /// `quarantine` is known to have the columns added after its first release (checked once per connection).
    var quarantineColumnsReady = false
    private var pendingSource = ""
    private var pendingOrigin: String?
    /// The seq the next record gets. Assigned by the journal (not SQLite's rowid choice) so that a new key's head
    /// can point at its record in the same single INSERT; read afresh at every BEGIN IMMEDIATE, since other
    /// connections (supervision, replays) append too.
    private var nextSeq: Int64 = 0
    private var insertQuarantine: SQLiteStatement?
    /// Internal, not private: extensions that must run inside the caller's transaction (snapshot closing) check it.
    var inTransaction = false
    private let now: () -> Date

    /// 3: `records.body` may hold compact bodies (`StoredBody`), which esgate's schema 2 would read as XML text;
    /// a version 2 journal is upgraded by its number alone (its XML bodies stay readable). Growing
    /// `StoredBody.elementNames` needs a new version too, so that an older esgate refuses codes it cannot read.
    /// 4: records are stored in chunks (`record_chunks`, see RecordChunks.swift) instead of a `records` row each;
    /// older journals are converted when opened.
    public static let schemaVersion = 5

    /// Page size of a new journal file. Under WAL every page is written twice (log, then checkpoint) with a
    /// system call per page and frame; 16 KiB pages cut the writer's CPU of a 1M-row ingest by ≈9% against
    /// SQLite's default 4 KiB (docs/benchmarks.md), while a small commit (an uplink receipt) still touches few bytes.
    public static let pageSize = 16384

    /// Log bytes between automatic checkpoints, whatever the page size.
    static let walCheckpointBytes: Int64 = 128 << 20

    /// Opens or creates the journal. `synchronous` FULL is the production setting: a committed batch survives
    /// power loss; tests may pass `false` for NORMAL only where durability is not what they test.
    public init(path: String, durable: Bool = true, now: @escaping () -> Date = Date.init) throws(JournalError) {
        self.path = path
        self.now = now
        do {
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            try JournalIdentity.refuseLost(path)
            let db = try SQLiteDatabase(path: path)
            database = db
            // Several connections (adapters, supervision, uplink) open the journal at start-up together; switching
            // to WAL and creating tables can return SQLITE_BUSY without consulting the busy timeout, so retry.
            // Takes effect only when this connection creates the file (WAL fixes the page size afterwards).
            try db.execute("PRAGMA page_size=\(Self.pageSize)")
            try Self.retryingWhileBusy { try db.execute("PRAGMA journal_mode=WAL") }
            try db.execute("PRAGMA synchronous=\(durable ? "FULL" : "NORMAL")")
            try db.execute("PRAGMA foreign_keys=ON")
            // A 16 MiB page cache keeps the hot part of the heads index in memory during large ingests within
            // the RSS budget (100 MB). Checkpoints every 128 MiB of WAL (not SQLite's 4 MiB) mean fewer database
            // fsyncs: the ingest figures in docs/benchmarks.md were measured so (8192 pages of 16 KiB). The interval
            // is set in bytes, whatever the page size of an older journal, and the size limit gives the file back
            // after a checkpoint, so the log beside the journal stays near 128 MiB.
            try db.execute("PRAGMA cache_size=-16384")
            let pageSize = try db.query("PRAGMA page_size").first?.first?.intValue ?? Int64(Self.pageSize)
            try db.execute("PRAGMA wal_autocheckpoint=\(Self.walCheckpointBytes / max(pageSize, 512))")
            try db.execute("PRAGMA journal_size_limit=\(Self.walCheckpointBytes)")
            try Self.retryingWhileBusy { try migrate() }
            try Self.retryingWhileBusy { try JournalIdentity.check(db, journalPath: path) }
        } catch let error as JournalError {
            throw error
        } catch let error as SQLiteError {
            throw JournalError(operation: "open \(path)", underlying: error.description)
        } catch {
            throw JournalError(operation: "open \(path)", underlying: "\(error)")
        }
    }

    /// A read-only connection to an existing journal: no migration, no writes (`SQLITE_OPEN_READONLY`). For a
    /// reader that must not share another connection, e.g. the uplink's package pre-builder on its own thread.
    public init(readingOnly path: String) throws(JournalError) {
        self.path = path
        self.now = Date.init
        do {
            database = try SQLiteDatabase(path: path, readOnly: true)
            // A sequential reader: a small cache (SQLite drops it whenever another connection commits anyway).
            try database.execute("PRAGMA cache_size=-2048")
        } catch {
            throw JournalError(operation: "open \(path) read-only", underlying: error.description)
        }
    }

    /// Runs `body` again while SQLite answers BUSY/LOCKED, for up to about ten seconds.
    private static func retryingWhileBusy(_ body: () throws -> Void) throws {
        var attempt = 0
        while true {
            do {
                try body()
                return
            } catch {
                guard let sqliteError = error as? SQLiteError, sqliteError.isBusy, attempt < 200 else { throw error }
                attempt += 1
                usleep(50_000)
            }
        }
    }

    private func migrate() throws {
        if try database.query("SELECT 1 FROM sqlite_master WHERE name = 'meta'").isEmpty {
            try createTablesAtomically()
            return
        }
        guard let version = try storedSchemaVersion() else { return try createTablesAtomically() }
        if version > Self.schemaVersion {
            throw JournalError(operation: "open \(path)",
                               underlying: "journal schema \(version) was written by a newer esgate (this one knows \(Self.schemaVersion))")
        }
        if version == 1 {
            try migrateFromVersion1()
        }
        if version <= 3 {
            // Version 2 → 3 converts nothing (XML bodies stay readable; the number makes an esgate of version 2
            // refuse compact bodies); 3 → 4 moves the records into chunks.
            try migrateRecordsToChunks()
        } else if version == 4 {
            // 4 → 5 converts nothing either: the uplink's packages fixed from now on keep their envelope only
            // (UplinkStore schema 3), and an esgate of version 4 would send that envelope without its records.
            try database.execute("UPDATE meta SET value = '\(Self.schemaVersion)' WHERE key = 'schema_version'")
        }
        // Earlier versions created the tables one statement at a time: a connection opening the new journal at
        // the same moment (or a retry after BUSY) could find the meta table and stop there, without the tables
        // created after it, and so could an esgate stopped at that moment. Whatever is missing is created now
        // (after the migrations above, so a journal they just converted is checked too).
        if try storedSchemaVersion() == Self.schemaVersion {
            let present = Set(try database.query("SELECT name FROM sqlite_master WHERE type = 'table'").compactMap { $0.first?.textValue })
            if !Self.tableNames.allSatisfy(present.contains) { try createTablesAtomically() }
        }
    }

    /// The tables `createTables` makes.
    static let tableNames = ["meta", "heads", "record_chunks", "files", "source_offsets", "quarantine", "cursors"]

    /// All tables or none, as other connections see it: they open a new journal together at start-up.
    private func createTablesAtomically() throws {
        try database.transaction { try createTables() }
    }

    private func storedSchemaVersion() throws -> Int? {
        try database.query("SELECT value FROM meta WHERE key = 'schema_version'").first?.first?.textValue.flatMap { Int($0) }
    }

    private func createTables() throws {
        try database.execute("""
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '\(Self.schemaVersion)');
            INSERT OR IGNORE INTO meta(key, value) VALUES ('journal_id', '\(UUID().uuidString)');
            -- The latest revision, content digest and record of every key: the revision check is one INSERT OR
            -- IGNORE for a new key. Keyed by text, not by a hash: legacy keys mostly grow (case numbers, dates),
            -- so text-ordered inserts land near the end of the B-tree, where a hash would scatter them.
            CREATE TABLE IF NOT EXISTS heads(
                type TEXT NOT NULL, key TEXT NOT NULL, rev INTEGER NOT NULL, digest BLOB NOT NULL, seq INTEGER NOT NULL,
                PRIMARY KEY(type, key)) WITHOUT ROWID;
            -- Every stored revision, in ingest order, a chunk of consecutive seqs per row (RecordChunks.swift);
            -- seq is what consumers' cursors point at.
            \(Self.recordChunksTableSQL)
            CREATE TABLE IF NOT EXISTS files(
                sha256 TEXT PRIMARY KEY, source TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
                state TEXT NOT NULL, offset INTEGER NOT NULL DEFAULT 0, line INTEGER NOT NULL DEFAULT 1,
                rows INTEGER NOT NULL DEFAULT 0, records INTEGER NOT NULL DEFAULT 0,
                quarantined INTEGER NOT NULL DEFAULT 0, encoding TEXT, reason TEXT,
                started_at INTEGER NOT NULL, finished_at INTEGER);
            -- Positions of non-file sources (e.g. database watermarks), committed with their records.
            CREATE TABLE IF NOT EXISTS source_offsets(
                source TEXT PRIMARY KEY, position TEXT NOT NULL, updated_at INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS quarantine(
                id INTEGER PRIMARY KEY, source TEXT NOT NULL, mapping TEXT NOT NULL, origin TEXT NOT NULL,
                line INTEGER NOT NULL, stage TEXT NOT NULL, record_type TEXT NOT NULL, field TEXT NOT NULL,
                reason TEXT NOT NULL, raw BLOB NOT NULL, encoding TEXT NOT NULL, header TEXT NOT NULL,
                state TEXT NOT NULL DEFAULT 'open', attempts INTEGER NOT NULL DEFAULT 0,
                created_at INTEGER NOT NULL, resolved_at INTEGER\(Self.quarantineColumnsSQL));
            CREATE INDEX IF NOT EXISTS quarantine_open ON quarantine(state, source);
            CREATE TABLE IF NOT EXISTS cursors(
                consumer TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated_at INTEGER NOT NULL);
            """)
    }

    /// Version 1 kept a digest per record and no record pointer in heads: records lose the digest column and gain
    /// `op`, heads gain the seq of each key's latest record (one sort of the records, not a query per key).
    private func migrateFromVersion1() throws {
        try database.transaction {
            // Another connection may have migrated while this one waited for the write lock.
            guard try storedSchemaVersion() == 1 else { return }
            try database.execute("""
                ALTER TABLE records DROP COLUMN digest;
                ALTER TABLE records ADD COLUMN op INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE heads ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
                UPDATE heads SET seq = latest.seq
                FROM (SELECT type, key, max(seq) AS seq FROM records GROUP BY type, key) AS latest
                WHERE heads.type = latest.type AND heads.key = latest.key;
                UPDATE meta SET value = '2' WHERE key = 'schema_version';
                """)
        }
    }

    static let recordChunksTableSQL = """
        CREATE TABLE IF NOT EXISTS record_chunks(
            first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, source TEXT NOT NULL, origin TEXT,
            ingested_at INTEGER NOT NULL, types TEXT NOT NULL, data BLOB NOT NULL);
        """

    /// Versions 1-3 kept a `records` row per record: they become chunks of consecutive records of one source and
    /// origin ingested within a second (a chunk takes the time of its first record), in one transaction, and
    /// `records` is dropped.
    private func migrateRecordsToChunks() throws {
        try database.transaction {
            guard let version = try storedSchemaVersion(), version <= 3 else { return }
            try database.execute(Self.recordChunksTableSQL)
            let read = try database.prepare(
                "SELECT seq, type, key, rev, op, body, source, origin, line, ingested_at FROM records ORDER BY seq")
            let write = try database.prepare(
                "INSERT INTO record_chunks(first_seq, last_seq, source, origin, ingested_at, types, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            var builder = RecordChunkBuilder()
            var first: (seq: Int64, source: String, origin: String?, at: Int64)?
            var last: Int64 = 0
            func flush() throws {
                guard let chunk = first, builder.count > 0 else { return }
                try write.bind([.integer(chunk.seq), .integer(last), .text(chunk.source), chunk.origin.map(SQLiteValue.text) ?? .null,
                                .integer(chunk.at), .text(builder.typesColumn), .blob(builder.data)])
                try write.step()
                write.reset()
                builder.reset()
                first = nil
            }
            while try read.step() {
                let seq = read.int(at: 0)
                let source = read.text(at: 6)
                let origin = read.isNull(at: 7) ? nil : read.text(at: 7)
                // A chunk holds consecutive seqs of one source and origin, ingested within a second of each other
                // (the chunk keeps one time: records of polls hours apart must not take an earlier one).
                let ingestedAt = read.int(at: 9)
                if let chunk = first, builder.isFull || chunk.source != source || chunk.origin != origin || seq != last + 1
                    || abs(ingestedAt - chunk.at) > 1000 {
                    try flush()
                }
                if first == nil { first = (seq, source, origin, ingestedAt) }
                read.withBytes(at: 5) { body in
                    builder.add(type: read.text(at: 1), key: read.text(at: 2), rev: read.int(at: 3), deleted: read.int(at: 4) == 1,
                                line: Int(read.int(at: 8)), body: body)
                }
                last = seq
            }
            try flush()
            read.reset()
            try database.execute("DROP TABLE records")
            try database.execute("UPDATE meta SET value = '\(Self.schemaVersion)' WHERE key = 'schema_version'")
        }
        // The conversion's transaction grew the WAL to the size of the chunks; give that space back now rather
        // than keep a file of that size for as long as a connection is open.
        _ = try? database.query("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// The label is an autoclosure: it is only built when something failed (append runs per record).
    func wrap<T>(_ operation: @autoclosure () -> String, _ body: () throws -> T) throws(JournalError) -> T {
        do {
            return try body()
        } catch let error as JournalError {
            throw error
        } catch {
            throw JournalError(operation: operation(), underlying: "\(error)")
        }
    }

    var milliseconds: Int64 { Int64((now().timeIntervalSince1970 * 1000).rounded()) }

    // MARK: - Transactions

    /// Starts a write batch (BEGIN IMMEDIATE). Records, quarantine entries and source progress written until
    /// `commit()` become durable together, or not at all.
    public func begin() throws(JournalError) {
        try wrap("begin") {
            try database.beginWrite()
            do {
                nextSeq = try Self.lastSeq(in: database) + 1
                pendingChunk.reset()
            } catch {
                // Never leave a transaction (and the write turn) open behind a failed begin.
                database.rollbackWrite()
                throw error
            }
            inTransaction = true
        }
    }

    public func commit() throws(JournalError) {
        try wrap("commit") {
            try writePendingChunk()
            try database.commitWrite()
        }
        inTransaction = false
    }

    /// True when another writer of this process waits for the journal (the uplink, supervision): a large batch
    /// commits at its next chunk boundary instead of holding the lock to its full size.
    public var othersWaitingToWrite: Bool { database.othersWaitingToWrite }

    /// Runs one append in its own transaction when the caller has none, so that a head and its record are
    /// always written together.
    private func inOwnTransactionIfNeeded<T>(_ body: () throws(JournalError) -> T) throws(JournalError) -> T {
        if inTransaction { return try body() }
        return try batch { try body() }
    }

    public func rollback() {
        if inTransaction { database.rollbackWrite() }
        inTransaction = false
        pendingChunk.reset()
    }

    /// Runs `body` in one transaction.
    public func batch<T>(_ body: () throws -> T) throws(JournalError) -> T {
        try begin()
        do {
            let result = try body()
            try commit()
            return result
        } catch {
            rollback()
            if let error = error as? JournalError { throw error }
            throw JournalError(operation: "batch", underlying: "\(error)")
        }
    }

    // MARK: - Records

    /// Appends a validated record: rev 1 for a new key, rev + 1 when the content changed, nothing when the
    /// content is identical to the key's latest revision.
    /// `prepared` is what the caller already computed off the writer's thread: the SHA-256 of `record.body` and its
    /// stored form (`StoredBody.encode`, nil when it stays XML).
    public func append(_ record: NormalizedRecord, source: String, origin: String?, line: Int,
                       prepared: PreparedBody? = nil) throws(JournalError) -> AppendOutcome {
        try inOwnTransactionIfNeeded { () throws(JournalError) -> AppendOutcome in
            try wrap("append \(record.type)") {
                let prepared = prepared ?? PreparedBody(record.body)
                guard let rev = try nextRevision(type: record.type, key: record.key, digest: prepared.digest) else { return .unchanged }
                return .stored(rev: rev, seq: try insert(record, compact: prepared.compact, rev: rev, deleted: false,
                                                         source: source, origin: origin, line: line))
            }
        }
    }

    /// Withdraws a key (a row gone from a snapshot source): a new revision with `op="delete"` carrying the key's
    /// last content. Nothing happens when the key is unknown or already withdrawn.
    public func appendDeletion(type: String, key: String, source: String, origin: String?, line: Int = 0) throws(JournalError) -> AppendOutcome {
        try inOwnTransactionIfNeeded { () throws(JournalError) -> AppendOutcome in
            try wrap("append deletion of \(type)") {
                guard let latest = try latestRecord(type: type, key: key), !latest.deleted else { return .unchanged }
                let body = latest.body
                let digest = Self.deletionDigest(body)
                guard let rev = try nextRevision(type: type, key: key, digest: digest) else { return .unchanged }
                let record = NormalizedRecord(type: type, key: key, body: body)
                // A compact body is carried over byte for byte (a damaged one stays recognisably damaged rather than
                // re-encoded from what could be decoded of it); an XML one is encoded like any new body.
                let compact = latest.storedBody.first == StoredBody.compactFormMarker ? latest.storedBody : StoredBody.encode(body)
                return .stored(rev: rev, seq: try insert(record, compact: compact, rev: rev, deleted: true,
                                                         source: source, origin: origin, line: line))
            }
        }
    }

    /// A deletion's content digest differs from the digest of the same body stored as an upsert, so that a key
    /// re-appearing with its old content after a delete is a new revision again.
    static func deletionDigest(_ body: String) -> [UInt8] { contentDigest(of: "delete\u{1F}" + body) }

    /// What `heads` keeps to tell changed content from identical content: the first 16 bytes of the body's
    /// SHA-256 (a change goes unnoticed with probability 2^-128). Half the bytes of the full digest make every
    /// head smaller, which the writer of a large ingest feels (≈6% of its CPU). Heads written by earlier
    /// versions hold all 32 bytes; the comparison reads their first 16.
    public static func contentDigest(of body: String) -> [UInt8] { Array(Digest.sha256(body).prefix(16)) }

    /// Settles the revision of (type, key) for content `digest` and points its head at the record about to be
    /// inserted at `nextSeq`: 1 for a new key, latest + 1 for changed content, nil when unchanged.
    private func nextRevision(type: String, key: String, digest: [UInt8]) throws -> Int64? {
        if insertHead == nil {
            // New keys are the common case of an ingest: a plain INSERT OR IGNORE (no RETURNING, which makes
            // SQLite buffer results) settles them; only existing keys read their head, and update it when changed.
            insertHead = try database.prepare("INSERT OR IGNORE INTO heads(type, key, rev, digest, seq) VALUES (?1, ?2, 1, ?3, ?4)")
            // An existing key: its head is read once (as cheap as the conditional update it replaced, which also
            // had to find it) for whether the content is new and which revision it replaces.
            readHead = try database.prepare("SELECT seq, substr(digest, 1, 16) = ?3 FROM heads WHERE type = ?1 AND key = ?2")
            bumpHead = try database.prepare("UPDATE heads SET rev = rev + 1, digest = ?3, seq = ?4 WHERE type = ?1 AND key = ?2 RETURNING rev")
        }
        guard let insertHead, let readHead, let bumpHead else { return nil }
        replacedSeq = nil
        insertHead.reset()
        try insertHead.bind(text: type, at: 1)
        try insertHead.bind(text: key, at: 2)
        try digest.withUnsafeBytes { try insertHead.bind(bytes: $0, at: 3) }
        try insertHead.bind(int: nextSeq, at: 4)
        try insertHead.step()
        insertHead.reset()
        if database.changes == 1 { return 1 }
        readHead.reset()
        try readHead.bind(text: type, at: 1)
        try readHead.bind(text: key, at: 2)
        try digest.withUnsafeBytes { try readHead.bind(bytes: $0, at: 3) }
        guard try readHead.step() else {
            readHead.reset()
            return nil
        }
        let previousSeq = readHead.int(at: 0), unchanged = readHead.int(at: 1) != 0
        readHead.reset()
        if unchanged { return nil }
        replacedSeq = previousSeq
        bumpHead.reset()
        try bumpHead.bind(text: type, at: 1)
        try bumpHead.bind(text: key, at: 2)
        try digest.withUnsafeBytes { try bumpHead.bind(bytes: $0, at: 3) }
        try bumpHead.bind(int: nextSeq, at: 4)
        guard try bumpHead.step() else {
            bumpHead.reset()
            return nil
        }
        let rev = bumpHead.int(at: 0)
        while try bumpHead.step() {}
        bumpHead.reset()
        return rev
    }

    private func insert(_ record: NormalizedRecord, compact: [UInt8]?, rev: Int64, deleted: Bool, source: String, origin: String?,
                        line: Int) throws -> Int64 {
        if pendingChunk.count > 0, pendingChunk.isFull || source != pendingSource || origin != pendingOrigin {
            try writePendingChunk()
        }
        if pendingChunk.count == 0 {
            pendingSource = source
            pendingOrigin = origin
        }
        let seq = nextSeq
        if let compact {
            compact.withUnsafeBytes { pendingChunk.add(type: record.type, key: record.key, rev: rev, deleted: deleted, line: line, body: $0) }
        } else {
            var body = record.body
            body.withUTF8 { utf8 in
                pendingChunk.add(type: record.type, key: record.key, rev: rev, deleted: deleted, line: line, body: UnsafeRawBufferPointer(utf8))
            }
        }
        nextSeq += 1
        return seq
    }

    /// Writes the records appended since the last chunk as one `record_chunks` row (their seqs end at nextSeq - 1).
    func writePendingChunk() throws {
        guard pendingChunk.count > 0 else { return }
        if insertChunk == nil {
            insertChunk = try database.prepare("""
                INSERT INTO record_chunks(first_seq, last_seq, source, origin, ingested_at, types, data)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                """)
        }
        guard let insertChunk else { return }
        insertChunk.reset()
        try insertChunk.bind(int: nextSeq - Int64(pendingChunk.count), at: 1)
        try insertChunk.bind(int: nextSeq - 1, at: 2)
        try insertChunk.bind(text: pendingSource, at: 3)
        if let pendingOrigin { try insertChunk.bind(text: pendingOrigin, at: 4) } else { try insertChunk.bind(.null, at: 4) }
        try insertChunk.bind(int: milliseconds, at: 5)
        try insertChunk.bind(text: pendingChunk.typesColumn, at: 6)
        try pendingChunk.data.withUnsafeBytes { try insertChunk.bind(bytes: $0, at: 7) }
        try insertChunk.step()
        insertChunk.reset()
        pendingChunk.reset()
    }

    /// The latest record of a key (via its head), if any.
    private func latestRecord(type: String, key: String) throws -> JournalEntry? {
        guard let seq = try headSeq(type: type, key: key) else { return nil }
        return try entries(seqs: [seq]).first
    }

    /// The seq of a key's latest record.
    private func headSeq(type: String, key: String) throws -> Int64? {
        try database.query("SELECT seq FROM heads WHERE type = ?1 AND key = ?2", [.text(type), .text(key)]).first?.first?.intValue
    }

    /// Entries after `seq`, in order.
    public func entries(after seq: Int64, limit: Int = 1000, types: [String]? = nil) throws(JournalError) -> [JournalEntry] {
        try wrap("read entries") {
            try writePendingChunk()
            return try Self.entries(in: database, after: seq, limit: limit, types: types)
        }
    }

    /// `entries(after:limit:types:)` lent one at a time until `body` returns false: for a consumer that copies
    /// records onward without keeping them (the uplink's package builder), no entry or body is allocated.
    public func forEachEntry(after seq: Int64, limit: Int = 1000, types: [String]? = nil,
                             _ body: (BorrowedJournalEntry) -> Bool) throws(JournalError) {
        try wrap("read entries") {
            try writePendingChunk()
            try Self.forEachEntry(in: database, after: seq, limit: limit, types: types, body)
        }
    }

    /// The entries with these seqs, in seq order (missing seqs are left out).
    public func entries(seqs: [Int64]) throws(JournalError) -> [JournalEntry] {
        guard !seqs.isEmpty else { return [] }
        return try wrap("read entries") {
            // Only when a wanted record is still pending: a snapshot's deletions each read one earlier record,
            // and flushing for every one of them would cut the chunk into single records.
            let firstPending = nextSeq - Int64(pendingChunk.count)
            if pendingChunk.count > 0, seqs.contains(where: { $0 >= firstPending }) { try writePendingChunk() }
            return try Self.entries(in: database, seqs: seqs)
        }
    }

    /// The seq of the newest record (0 for an empty journal).
    public func lastSeq() throws(JournalError) -> Int64 {
        try wrap("read last seq") {
            try writePendingChunk()
            return try Self.lastSeq(in: database)
        }
    }

    /// How many records have a seq after `seq`, of `types` only when not empty.
    public func recordCount(after seq: Int64, types: [String] = []) throws(JournalError) -> Int {
        try wrap("count records") {
            try writePendingChunk()
            return try Self.recordCount(in: database, after: seq, types: types)
        }
    }

    /// The latest revision of a key, if any, and the content digest behind it.
    public func head(type: String, key: String) throws(JournalError) -> (rev: Int64, digest: String)? {
        try wrap("read head") {
            let rows = try database.query("SELECT rev, digest FROM heads WHERE type = ?1 AND key = ?2", [.text(type), .text(key)])
            guard let row = rows.first, let rev = row[0].intValue, case .blob(let digest) = row[1] else { return nil }
            return (rev, digest.hexString)
        }
    }

    // MARK: - Quarantine

    public func quarantine(_ item: QuarantineItem) throws(JournalError) {
        try wrap("quarantine") {
            try ensureQuarantineColumns()
            if insertQuarantine == nil {
                insertQuarantine = try database.prepare("""
                    INSERT INTO quarantine(source, mapping, origin, line, stage, record_type, field, reason, raw, encoding, header,
                                           created_at, errors, journal_seq)
                    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                    """)
            }
            guard let statement = insertQuarantine else { return }
            // Inside a batch the row's own records were appended just before (Journal.store): they are at or
            // below this seq, so a replay never takes them for a newer revision.
            let journalSeq = inTransaction ? nextSeq - 1 : try Self.lastSeq(in: database)
            try statement.bind([
                .text(item.source), .text(item.mapping), .text(item.origin), .integer(Int64(item.line)),
                .text(item.stage.rawValue), .text(item.recordType), .text(item.field), .text(item.reason),
                .blob(item.raw), .text(item.encoding), .text(Self.encodeHeader(item.header)), .integer(milliseconds),
                .text(Self.encodeHeader(item.errors)), .integer(journalSeq),
            ])
            try statement.step()
            statement.reset()
        }
    }

    /// Whether a row with these raw bytes from `source` is already in quarantine (open or replayed). Sources
    /// that re-read rows (database lag windows, snapshots, front tables after a crash) use it so that one bad
    /// row is held once, not once per poll.
    public func isQuarantined(source: String, raw: [UInt8]) throws(JournalError) -> Bool {
        try wrap("look up quarantine") {
            !(try database.query("SELECT 1 FROM quarantine WHERE source = ?1 AND raw = ?2 LIMIT 1",
                                 [.text(source), .blob(raw)])).isEmpty
        }
    }

    /// Quarantine entries, newest last; `openOnly` hides those closed (replayed, superseded, dropped); `ids`
    /// limits them to these entries.
    public func quarantined(source: String? = nil, openOnly: Bool = true, ids: [Int64]? = nil, limit: Int = 1000) throws(JournalError) -> [QuarantineEntry] {
        try wrap("list quarantine") {
            try ensureQuarantineColumns()
            var conditions: [String] = []
            var bindings: [SQLiteValue] = []
            if openOnly { conditions.append("state = 'open'") }
            if let source { bindings.append(.text(source)); conditions.append("source = ?\(bindings.count)") }
            if let ids { conditions.append("id IN (" + ids.map(String.init).joined(separator: ",") + ")") }
            bindings.append(.integer(Int64(limit)))
            let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            let statement = try database.prepare("""
                SELECT id, source, mapping, origin, line, stage, record_type, field, reason, raw, encoding, header,
                       state, attempts, created_at, errors, journal_seq, closed_reason
                FROM quarantine \(whereClause) ORDER BY id LIMIT ?\(bindings.count)
                """)
            try statement.bind(bindings)
            var result: [QuarantineEntry] = []
            while try statement.step() {
                let item = QuarantineItem(
                    source: statement.text(at: 1), mapping: statement.text(at: 2), origin: statement.text(at: 3),
                    line: Int(statement.int(at: 4)), stage: QuarantineItem.Stage(rawValue: statement.text(at: 5)) ?? .map,
                    recordType: statement.text(at: 6), field: statement.text(at: 7), reason: statement.text(at: 8),
                    errors: statement.isNull(at: 15) ? [] : Self.decodeHeader(statement.text(at: 15)),
                    raw: statement.blob(at: 9), encoding: statement.text(at: 10),
                    header: Self.decodeHeader(statement.text(at: 11)))
                result.append(QuarantineEntry(id: statement.int(at: 0), item: item, state: statement.text(at: 12),
                                              attempts: Int(statement.int(at: 13)),
                                              createdAt: Date(timeIntervalSince1970: Double(statement.int(at: 14)) / 1000),
                                              journalSeq: statement.int(at: 16),
                                              closedReason: statement.isNull(at: 17) ? nil : statement.text(at: 17)))
            }
            return result
        }
    }

    /// Marks a quarantine entry replayed successfully; `stored` are the seqs its replay added (none when every
    /// record was unchanged), so that a later replay can tell how old their content is.
    public func resolveQuarantine(id: Int64, stored: ClosedRange<Int64>? = nil) throws(JournalError) {
        try wrap("resolve quarantine") {
            try ensureQuarantineColumns()
            try database.prepare("""
                UPDATE quarantine SET state = 'replayed', resolved_at = ?2, attempts = attempts + 1,
                    replay_first_seq = ?3, replay_last_seq = ?4 WHERE id = ?1
                """).run([.integer(id), .integer(milliseconds), stored.map { .integer($0.lowerBound) } ?? .null,
                          stored.map { .integer($0.upperBound) } ?? .null])
        }
    }

    /// Records a failed replay: the entry stays open with the new reason (the first of `errors`).
    public func retainQuarantine(id: Int64, stage: QuarantineItem.Stage, recordType: String, field: String, errors: [String]) throws(JournalError) {
        try wrap("update quarantine") {
            try ensureQuarantineColumns()
            try database.prepare("""
                UPDATE quarantine SET stage = ?2, record_type = ?3, field = ?4, reason = ?5, errors = ?6, attempts = attempts + 1
                WHERE id = ?1
                """).run([.integer(id), .text(stage.rawValue), .text(recordType), .text(field), .text(errors.first ?? ""),
                          .text(Self.encodeHeader(errors))])
        }
    }

    // Header and error lists are stored as U+001F-separated text: it cannot occur in a decoded CSV header, and
    // error messages are built from such text.
    static func encodeHeader(_ header: [String]) -> String { header.joined(separator: "\u{1F}") }
    static func decodeHeader(_ text: String) -> [String] {
        text.isEmpty ? [] : text.split(separator: "\u{1F}", omittingEmptySubsequences: false).map(String.init)
    }

    // MARK: - Files and offsets

    public func fileProgress(sha256: String) throws(JournalError) -> FileProgress? {
        try wrap("read file progress") {
            let statement = try database.prepare(
                "SELECT sha256, source, name, state, offset, line, rows, records, quarantined FROM files WHERE sha256 = ?1")
            try statement.bind([.text(sha256)])
            guard try statement.step() else { return nil }
            return FileProgress(sha256: statement.text(at: 0), source: statement.text(at: 1), name: statement.text(at: 2),
                                state: FileProgress.State(rawValue: statement.text(at: 3)) ?? .ingesting,
                                offset: statement.int(at: 4), line: Int(statement.int(at: 5)), rows: Int(statement.int(at: 6)),
                                records: Int(statement.int(at: 7)), quarantined: Int(statement.int(at: 8)))
        }
    }

    public func startFile(sha256: String, source: String, name: String, size: Int64, encoding: String) throws(JournalError) {
        try wrap("start file") {
            try database.prepare("""
                INSERT INTO files(sha256, source, name, size, state, encoding, started_at) VALUES (?1, ?2, ?3, ?4, 'ingesting', ?5, ?6)
                ON CONFLICT(sha256) DO NOTHING
                """).run([.text(sha256), .text(source), .text(name), .integer(size), .text(encoding), .integer(milliseconds)])
        }
    }

    /// Records how far a file has been ingested; call inside the batch that wrote its rows.
    public func advanceFile(sha256: String, offset: Int64, line: Int, rows: Int, records: Int, quarantined: Int) throws(JournalError) {
        try wrap("advance file") {
            try database.prepare("""
                UPDATE files SET offset = ?2, line = ?3, rows = rows + ?4, records = records + ?5, quarantined = quarantined + ?6
                WHERE sha256 = ?1
                """).run([.text(sha256), .integer(offset), .integer(Int64(line)), .integer(Int64(rows)),
                          .integer(Int64(records)), .integer(Int64(quarantined))])
        }
    }

    public func finishFile(sha256: String, state: FileProgress.State, reason: String? = nil) throws(JournalError) {
        try wrap("finish file") {
            try database.prepare("UPDATE files SET state = ?2, reason = ?3, finished_at = ?4 WHERE sha256 = ?1")
                .run([.text(sha256), .text(state.rawValue), reason.map(SQLiteValue.text) ?? .null, .integer(milliseconds)])
        }
    }

    /// Records a rejected file that never got as far as ingesting (unreadable, header mismatch).
    public func rejectFile(sha256: String, source: String, name: String, size: Int64, reason: String) throws(JournalError) {
        try wrap("reject file") {
            try database.prepare("""
                INSERT INTO files(sha256, source, name, size, state, reason, started_at, finished_at)
                VALUES (?1, ?2, ?3, ?4, 'rejected', ?5, ?6, ?6)
                ON CONFLICT(sha256) DO UPDATE SET state = 'rejected', reason = excluded.reason, finished_at = excluded.finished_at
                """).run([.text(sha256), .text(source), .text(name), .integer(size), .text(reason), .integer(milliseconds)])
        }
    }

    public func sourceOffset(_ source: String) throws(JournalError) -> String? {
        try wrap("read source offset") {
            try database.query("SELECT position FROM source_offsets WHERE source = ?1", [.text(source)]).first?.first?.textValue
        }
    }

    /// Saves a source position; call inside the batch that wrote the records read up to it.
    public func setSourceOffset(_ source: String, position: String) throws(JournalError) {
        try wrap("save source offset") {
            try database.prepare("""
                INSERT INTO source_offsets(source, position, updated_at) VALUES (?1, ?2, ?3)
                ON CONFLICT(source) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at
                """).run([.text(source), .text(position), .integer(milliseconds)])
        }
    }

    // MARK: - Consumer cursors

    public func cursor(_ consumer: String) throws(JournalError) -> Int64 {
        try wrap("read cursor") {
            try database.query("SELECT seq FROM cursors WHERE consumer = ?1", [.text(consumer)]).first?.first?.intValue ?? 0
        }
    }

    /// Moves cursor ?1 forward to seq ?2 (never backward) at ?3 (ms); public so that a consumer keeping its own
    /// tables in the journal's file can move its cursor in the same transaction as its own bookkeeping.
    public static let advanceCursorSQL = """
        INSERT INTO cursors(consumer, seq, updated_at) VALUES (?1, ?2, ?3)
        ON CONFLICT(consumer) DO UPDATE SET seq = max(cursors.seq, excluded.seq), updated_at = excluded.updated_at
        """

    /// Moves a consumer's cursor forward (never backward).
    public func advanceCursor(_ consumer: String, to seq: Int64) throws(JournalError) {
        try wrap("advance cursor") {
            try database.prepare(Self.advanceCursorSQL).run([.text(consumer), .integer(seq), .integer(milliseconds)])
        }
    }
}
