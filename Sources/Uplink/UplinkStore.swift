import Foundation
import GatewayModel
import Journal
import SQLiteSupport

/// An uplink storage failure, with the operation that failed.
public struct UplinkError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let underlying: String
    public init(operation: String, underlying: String) {
        self.operation = operation
        self.underlying = underlying
    }
    public var description: String { "uplink: \(operation): \(underlying)" }
}

/// A package as fixed before its first send.
public struct StoredPackage: Sendable, Equatable {
    public enum State: String, Sendable, Codable { case pending, receipted, refused }
    public let receiver: String
    public let packageId: String
    public let n: Int64
    public let firstSeq: Int64
    public let lastSeq: Int64
    public let recordCount: Int
    public let digest: String
    /// The exact request body (SOAP envelope) sent on every attempt; emptied once the package is resolved. Read
    /// from the store, the envelope without its records when `recordsAt` is set (see `UplinkStore.insertFixed`).
    public let request: [UInt8]
    public let state: State
    public let attempts: Int
    public let nextAttemptAt: Date?
    public let lastError: String?
    public let createdAt: Date
    /// When it was last sent (nil before its first attempt).
    public var lastAttemptAt: Date? = nil
    /// Where the records go back into `request`; nil when it is whole.
    public var recordsAt: Int? = nil
}

extension StoredPackage {
    /// The same package with `request` whole.
    func with(request: [UInt8]) -> StoredPackage {
        StoredPackage(receiver: receiver, packageId: packageId, n: n, firstSeq: firstSeq, lastSeq: lastSeq, recordCount: recordCount,
                      digest: digest, request: request, state: state, attempts: attempts, nextAttemptAt: nextAttemptAt,
                      lastError: lastError, createdAt: createdAt, lastAttemptAt: lastAttemptAt, recordsAt: nil)
    }
}

/// One record of a package (its 1-based index in the Body and its journal identity).
public struct PackageMember: Sendable, Equatable {
    public let index: Int
    public let seq: Int64
    public let type: String
    public let key: String
    public let rev: Int64
}

/// A record the receiver refused (or a package refused as a whole), kept visible until a newer revision
/// is delivered or an operator drops it.
public struct DeadLetter: Sendable, Equatable, Codable {
    public let id: Int64
    public let receiver: String
    public let packageId: String?
    public let index: Int?
    public let seq: Int64
    public let type: String
    /// Key fields joined by " / " (identity numbers are masked by whoever prints it).
    public let key: String
    public let rev: Int64
    public let code: String
    public let field: String?
    public let message: String
    public let state: String
    public let createdAt: Date
}

/// The receiver's connection state as operators see it.
public struct ReceiverState: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable { case idle, connected, backingOff = "backing_off" }
    public var kind: Kind
    public var failingSince: Date?
    public var consecutiveFailures: Int
    public var lastError: String?
    public var lastSuccessAt: Date?
    public var nextRetryAt: Date?
}

/// The uplink's own tables, in the journal's database file (one connection per worker; not Sendable).
///
/// Tables: `uplink_sequences` (last PackageId number per receiver, never reused), `uplink_packages` (every
/// package fixed before its first send, with its exact bytes until resolved and its membership: the journal
/// seqs of its records in Body order, `member_seqs`), `uplink_package_records` (membership of packages fixed by
/// schema version 1, read only), `uplink_dead_letters`, `uplink_receivers` (connection state), `uplink_resend` (dead letters an
/// operator put back in the receiver's queue, sent before the journal continues).
public final class UplinkStore {
    let database: SQLiteDatabase
    public static let schemaVersion = 3

    public init(path: String) throws(UplinkError) {
        do {
            try Journal.refuseLostJournal(at: path)
            database = try SQLiteDatabase(path: path)
            try database.execute("PRAGMA page_size=\(Journal.pageSize)")   // when the uplink creates the journal file
            try database.execute("PRAGMA journal_mode=WAL")
            try database.execute("PRAGMA synchronous=FULL")
            try Self.migrate(database)
        } catch {
            throw UplinkError(operation: "open \(path)", underlying: "\(error)")
        }
    }

    /// One transaction, so that receivers opening the store together (one uplink per receiver) see either none
    /// or all of it, and the version-2 column is added once.
    static func migrate(_ database: SQLiteDatabase) throws {
        try database.transaction { try createOrUpgrade(database) }
    }

    private static func createOrUpgrade(_ database: SQLiteDatabase) throws {
        try database.execute("""
            CREATE TABLE IF NOT EXISTS uplink_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT OR IGNORE INTO uplink_meta(key, value) VALUES ('schema_version', '\(schemaVersion)');
            CREATE TABLE IF NOT EXISTS uplink_sequences(receiver TEXT PRIMARY KEY, last_n INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS uplink_packages(
                receiver TEXT NOT NULL, package_id TEXT NOT NULL, n INTEGER NOT NULL,
                first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, record_count INTEGER NOT NULL,
                digest TEXT NOT NULL, request BLOB NOT NULL, state TEXT NOT NULL,
                created_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_attempt_at INTEGER,
                next_attempt_at INTEGER, last_error TEXT, accepted INTEGER, duplicates INTEGER, rejected INTEGER,
                fault_code TEXT, resolved_at INTEGER, member_seqs BLOB,
                PRIMARY KEY(receiver, package_id));
            CREATE INDEX IF NOT EXISTS uplink_packages_by_state ON uplink_packages(receiver, state, n);
            -- The last packaged (and resolved) seq, asked at every package: without it each ask read every package
            -- row of the receiver (pending ones through their request's overflow pages), a cost growing with
            -- every package ever sent.
            -- (Without `state`: building the index then reads no row past its request blob.)
            CREATE INDEX IF NOT EXISTS uplink_packages_by_last_seq ON uplink_packages(receiver, last_seq);
            CREATE TABLE IF NOT EXISTS uplink_package_records(
                receiver TEXT NOT NULL, package_id TEXT NOT NULL, idx INTEGER NOT NULL, seq INTEGER NOT NULL,
                type TEXT NOT NULL, key TEXT NOT NULL, rev INTEGER NOT NULL,
                PRIMARY KEY(receiver, package_id, idx)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS uplink_dead_letters(
                id INTEGER PRIMARY KEY, receiver TEXT NOT NULL, package_id TEXT, idx INTEGER, seq INTEGER NOT NULL,
                type TEXT NOT NULL, key TEXT NOT NULL, rev INTEGER NOT NULL, code TEXT NOT NULL, field TEXT,
                message TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'open', created_at INTEGER NOT NULL,
                resolved_at INTEGER);
            CREATE INDEX IF NOT EXISTS uplink_dead_letters_by_key ON uplink_dead_letters(receiver, type, key, state);
            -- Every receipt asks whether the receiver has open dead letters; resolved ones pile up over the years.
            CREATE INDEX IF NOT EXISTS uplink_dead_letters_open ON uplink_dead_letters(receiver) WHERE state = 'open';
            CREATE TABLE IF NOT EXISTS uplink_resend(
                id INTEGER PRIMARY KEY, receiver TEXT NOT NULL, seq INTEGER NOT NULL, dead_letter INTEGER NOT NULL,
                queued_at INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS uplink_resend_by_receiver ON uplink_resend(receiver, id);
            CREATE TABLE IF NOT EXISTS uplink_receivers(
                receiver TEXT PRIMARY KEY, state TEXT NOT NULL, failing_since INTEGER, consecutive_failures INTEGER NOT NULL,
                last_error TEXT, last_success_at INTEGER, next_retry_at INTEGER, updated_at INTEGER NOT NULL);
            """)
        // Version 2: membership as one blob per package instead of a row per record (a package costs one row);
        // a store created by version 1 gets the column here. Version 3: a package fixed from now on keeps its
        // envelope only, the records going back in at `records_at` (NULL: `request` is the whole request, as
        // version 2 stored it). The journal's schema 5 makes an earlier esgate refuse the file, rather than send
        // an envelope without its records.
        let columns = try database.query("PRAGMA table_info(uplink_packages)").compactMap { $0.count > 1 ? $0[1].textValue : nil }
        if !columns.contains("member_seqs") {
            try database.execute("ALTER TABLE uplink_packages ADD COLUMN member_seqs BLOB")
        }
        if !columns.contains("records_at") {
            try database.execute("ALTER TABLE uplink_packages ADD COLUMN records_at INTEGER")
        }
        try database.execute("UPDATE uplink_meta SET value = '\(schemaVersion)' WHERE key = 'schema_version' AND value <> '\(schemaVersion)'")
    }

    /// Journal seqs as a blob: the first seq and then each difference to the previous one, as LEB128 varints
    /// (a package of consecutive records costs about one byte per record).
    static func encodeSeqs(_ seqs: [Int64]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(seqs.count + 8)
        var previous: Int64 = 0
        for seq in seqs {
            var delta = UInt64(bitPattern: seq &- previous)
            previous = seq
            repeat {
                let low = UInt8(delta & 0x7f)
                delta >>= 7
                out.append(delta == 0 ? low : low | 0x80)
            } while delta != 0
        }
        return out
    }

    static func decodeSeqs(_ bytes: [UInt8]) -> [Int64]? {
        var seqs: [Int64] = []
        var previous: Int64 = 0
        var value: UInt64 = 0
        var shift: UInt64 = 0
        for byte in bytes {
            guard shift < 64 else { return nil }
            value |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 {
                previous = previous &+ Int64(bitPattern: value)
                seqs.append(previous)
                value = 0
                shift = 0
            } else {
                shift += 7
            }
        }
        return shift == 0 ? seqs : nil
    }

    func wrap<T>(_ operation: String, _ body: () throws -> T) throws(UplinkError) -> T {
        do {
            return try body()
        } catch let error as UplinkError {
            throw error
        } catch {
            throw UplinkError(operation: operation, underlying: "\(error)")
        }
    }

    static func ms(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
    static func date(_ value: SQLiteValue) -> Date? { value.intValue.map { Date(timeIntervalSince1970: Double($0) / 1000) } }

    // MARK: - Packages

    /// The highest journal seq covered by any package of this receiver (0 when none).
    public func lastPackagedSeq(receiver: String) throws(UplinkError) -> Int64 {
        try wrap("read last packaged seq") {
            try database.query("SELECT max(last_seq) FROM uplink_packages WHERE receiver = ?1", [.text(receiver)])
                .first?.first?.intValue ?? 0
        }
    }

    /// The highest journal seq of a resolved (receipted or refused) package.
    public func lastResolvedSeq(receiver: String) throws(UplinkError) -> Int64 {
        try wrap("read last resolved seq") {
            try database.query("SELECT max(last_seq) FROM uplink_packages WHERE receiver = ?1 AND state <> 'pending'",
                               [.text(receiver)]).first?.first?.intValue ?? 0
        }
    }

    private static let packageColumns = """
        receiver, package_id, n, first_seq, last_seq, record_count, digest, request, state, attempts, next_attempt_at,
        last_error, created_at, last_attempt_at, records_at
        """

    private static func package(_ row: [SQLiteValue]) -> StoredPackage? {
        guard row.count >= 15, let n = row[2].intValue, let first = row[3].intValue, let last = row[4].intValue,
              let count = row[5].intValue, let state = row[8].textValue.flatMap(StoredPackage.State.init) else { return nil }
        var request: [UInt8] = []
        if case .blob(let bytes) = row[7] { request = bytes }
        return StoredPackage(receiver: row[0].textValue ?? "", packageId: row[1].textValue ?? "", n: n, firstSeq: first,
                             lastSeq: last, recordCount: Int(count), digest: row[6].textValue ?? "", request: request,
                             state: state, attempts: Int(row[9].intValue ?? 0), nextAttemptAt: date(row[10]),
                             lastError: row[11].textValue, createdAt: date(row[12]) ?? Date(timeIntervalSince1970: 0),
                             lastAttemptAt: date(row[13]), recordsAt: row[14].intValue.map { Int($0) })
    }

    /// The oldest unresolved package of the receiver (at most one is pending at a time).
    public func pendingPackage(receiver: String) throws(UplinkError) -> StoredPackage? {
        try wrap("read pending package") {
            try database.query("SELECT \(Self.packageColumns) FROM uplink_packages WHERE receiver = ?1 AND state = 'pending' ORDER BY n LIMIT 1",
                               [.text(receiver)]).first.flatMap(Self.package)
        }
    }

    public func package(receiver: String, packageId: String) throws(UplinkError) -> StoredPackage? {
        try wrap("read package") {
            try database.query("SELECT \(Self.packageColumns) FROM uplink_packages WHERE receiver = ?1 AND package_id = ?2",
                               [.text(receiver), .text(packageId)]).first.flatMap(Self.package)
        }
    }

    /// Every package of a receiver, oldest first (tests and diagnostics).
    public func packages(receiver: String) throws(UplinkError) -> [StoredPackage] {
        try wrap("list packages") {
            try database.query("SELECT \(Self.packageColumns) FROM uplink_packages WHERE receiver = ?1 ORDER BY n",
                               [.text(receiver)]).compactMap(Self.package)
        }
    }

    /// The journal seqs of a package's records in Body order, as stored when it was fixed (version 2 and later).
    public func memberSeqs(receiver: String, packageId: String) throws(UplinkError) -> [Int64] {
        try wrap("read package members") {
            guard let seqs = try storedSeqs(receiver: receiver, packageId: packageId) else {
                throw UplinkError(operation: "read package members", underlying: "\(packageId): no membership blob (fixed by schema 1)")
            }
            return seqs
        }
    }

    /// `member_seqs` decoded; nil for a package fixed by schema 1 (membership rows instead), an error when damaged.
    private func storedSeqs(receiver: String, packageId: String) throws -> [Int64]? {
        let row = try database.query("SELECT member_seqs FROM uplink_packages WHERE receiver = ?1 AND package_id = ?2",
                                     [.text(receiver), .text(packageId)]).first
        guard let row, case .blob(let blob) = row[0] else { return nil }
        guard let seqs = Self.decodeSeqs(blob) else {
            throw UplinkError(operation: "read package members", underlying: "\(packageId): membership blob is damaged")
        }
        return seqs
    }

    /// The journal entries of a package's records, in Body order, to put its request together again. A failure
    /// with the reason when the journal cannot give them all back (a damaged chunk or file, a record gone): that
    /// will not change by waiting. Anything else (busy, an I/O error) is thrown, to be tried again.
    public func memberEntries(receiver: String, packageId: String) throws(UplinkError) -> Result<[JournalEntry], PackageBuildError> {
        let seqs = try memberSeqs(receiver: receiver, packageId: packageId)
        do {
            let entries = try Journal.entries(in: database, seqs: seqs)
            guard entries.map(\.seq) == seqs else {
                return .failure(PackageBuildError(message: "\(seqs.count - entries.count) of its \(seqs.count) records are no longer in the journal"))
            }
            return .success(entries)
        } catch let damage as RecordChunkDamage {
            return .failure(PackageBuildError(message: damage.description))
        } catch let error as SQLiteError where error.isCorruption {
            return .failure(PackageBuildError(message: "the journal cannot read its records back: \(error)"))
        } catch {
            throw UplinkError(operation: "read the records of \(packageId)", underlying: "\(error)")
        }
    }

    /// A dead letter for every record of a package, also for one whose type and key the journal can no longer
    /// tell (a damaged chunk): that one is named by its journal seq.
    private func membersNamingEveryRecord(receiver: String, packageId: String) throws -> [PackageMember] {
        // Packages fixed by schema 1 have no seq blob; their membership rows are all there is.
        guard let seqs = try storedSeqs(receiver: receiver, packageId: packageId) else {
            return try members(receiver: receiver, packageId: packageId)
        }
        let known = (try? Journal.entries(in: database, seqs: seqs)) ?? []
        let bySeq = Dictionary(known.map { ($0.seq, $0) }, uniquingKeysWith: { first, _ in first })
        return seqs.enumerated().map { index, seq in
            let member = bySeq[seq]
            return PackageMember(index: index + 1, seq: seq, type: member?.type ?? "(unreadable)",
                                 key: member?.key ?? "journal seq \(seq)", rev: member?.rev ?? 0)
        }
    }

    public func members(receiver: String, packageId: String) throws(UplinkError) -> [PackageMember] {
        try wrap("read package members") {
            guard let seqs = try storedSeqs(receiver: receiver, packageId: packageId) else {
                return try database.query("SELECT idx, seq, type, key, rev FROM uplink_package_records WHERE receiver = ?1 AND package_id = ?2 ORDER BY idx",
                                          [.text(receiver), .text(packageId)]).map {
                    PackageMember(index: Int($0[0].intValue ?? 0), seq: $0[1].intValue ?? 0, type: $0[2].textValue ?? "",
                                  key: $0[3].textValue ?? "", rev: $0[4].intValue ?? 0)
                }
            }
            guard !seqs.isEmpty else { return [] }
            var identities: [Int64: (type: String, key: String, rev: Int64)] = [:]
            for entry in try Journal.entries(in: database, seqs: seqs) { identities[entry.seq] = (entry.type, entry.key, entry.rev) }
            return seqs.enumerated().compactMap { index, seq in
                identities[seq].map { PackageMember(index: index + 1, seq: seq, type: $0.type, key: $0.key, rev: $0.rev) }
            }
        }
    }

    /// Makes the receiver's next PackageId number at least `first` (never lowers it): `first_package_number`.
    public func raiseSequence(receiver: String, nextAtLeast first: Int64) throws(UplinkError) {
        try wrap("raise sequence") {
            try database.transaction {
                try database.run("""
                    INSERT INTO uplink_sequences(receiver, last_n) VALUES (?1, ?2)
                    ON CONFLICT(receiver) DO UPDATE SET last_n = max(last_n, excluded.last_n)
                    """, [.text(receiver), .integer(first - 1)])
            }
        }
    }

    /// The next PackageId number of the receiver (read only; `fix` consumes it).
    public func nextNumber(receiver: String) throws(UplinkError) -> Int64 {
        try wrap("read sequence") {
            (try database.query("SELECT last_n FROM uplink_sequences WHERE receiver = ?1", [.text(receiver)])
                .first?.first?.intValue ?? 0) + 1
        }
    }

    /// Fixes a package in one transaction: consumes its number, stores its envelope, digest and membership, and
    /// dead-letters records held back locally (not schema-valid). After this the bytes never change.
    public func fix(receiver: String, _ built: BuiltPackage, dequeue: [Int64] = [], now: Date) throws(UplinkError) {
        try wrap("fix package \(built.packageId)") {
            try database.transaction {
                try deleteQueued(dequeue)
                try insertFixed(receiver: receiver, built, now: now)
            }
        }
    }

    /// A package built ahead (while the previous one was on the wire), to be fixed in the transaction that
    /// resolves the previous one: one commit per package instead of two.
    public struct FixAhead: Sendable {
        public var package: BuiltPackage
        /// The journal seq the package continues from: it is only fixed if no other package took that place.
        public var after: Int64
        public init(package: BuiltPackage, after: Int64) {
            self.package = package
            self.after = after
        }
    }

    /// Stores the package without its records (`request` holds the envelope, `records_at` where they go): the
    /// journal keeps them, and writing them again into SQLite was most of what a package cost the uplink's disk
    /// and its commit (≈0.5 MB per package, twice with the checkpoint). A resend puts them back and checks the
    /// digest (`PackageBuilder.request(envelope:recordsAt:digest:entries:)`).
    private func insertFixed(receiver: String, _ built: BuiltPackage, now: Date) throws {
        try database.run("""
            INSERT INTO uplink_sequences(receiver, last_n) VALUES (?1, ?2)
            ON CONFLICT(receiver) DO UPDATE SET last_n = max(last_n, excluded.last_n)
            """, [.text(receiver), .integer(built.n)])
        let seqs = built.memberSeqs
        try database.run("""
            INSERT INTO uplink_packages(receiver, package_id, n, first_seq, last_seq, record_count, digest, request,
                                        state, created_at, member_seqs, records_at)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?10, ?11)
            """, [.text(receiver), .text(built.packageId), .integer(built.n), .integer(seqs.first ?? 0),
                  .integer(max(seqs.last ?? 0, built.heldBack.map(\.member.seq).max() ?? 0)),
                  .integer(Int64(seqs.count)), .text(built.digest), .blob(PackageBuilder.envelope(of: built)),
                  .integer(Self.ms(now)), .blob(Self.encodeSeqs(seqs)), .integer(Int64(built.records.lowerBound))])
        for held in built.heldBack {
            try insertDeadLetter(receiver: receiver, packageId: nil, member: held.member, code: held.code,
                                 field: held.field, message: held.message, now: now)
        }
    }

    /// Fixes `ahead` inside the current transaction when it still is the receiver's next package (its number is
    /// the next one, nothing is pending, and the journal position after the last package and the cursor is
    /// `after`); returns whether it was fixed.
    private func fixAheadIfStillNext(_ ahead: FixAhead?, receiver: String, consumer: String?, now: Date) throws -> Bool {
        guard let ahead else { return false }
        let lastN = try database.query("SELECT last_n FROM uplink_sequences WHERE receiver = ?1", [.text(receiver)]).first?.first?.intValue ?? 0
        let lastPackaged = try database.query("SELECT max(last_seq) FROM uplink_packages WHERE receiver = ?1", [.text(receiver)]).first?.first?.intValue ?? 0
        let cursor = try consumer.flatMap {
            try database.query("SELECT seq FROM cursors WHERE consumer = ?1", [.text($0)]).first?.first?.intValue
        } ?? 0
        let lastSeq = max(lastPackaged, cursor)
        let pending = try database.query("SELECT 1 FROM uplink_packages WHERE receiver = ?1 AND state = 'pending' LIMIT 1", [.text(receiver)])
        let queued = try database.query("SELECT 1 FROM uplink_resend WHERE receiver = ?1 LIMIT 1", [.text(receiver)])
        guard ahead.package.n == lastN + 1, lastSeq == ahead.after, pending.isEmpty, queued.isEmpty else { return false }
        try insertFixed(receiver: receiver, ahead.package, now: now)
        return true
    }

    /// Dead-letters records that never made it into a package (every candidate was held back).
    public func holdBack(receiver: String, records: [(member: PackageMember, code: String, field: String?, message: String)],
                         dequeue: [Int64] = [], now: Date) throws(UplinkError) {
        try wrap("hold back records") {
            try database.transaction {
                try deleteQueued(dequeue)
                for held in records {
                    try insertDeadLetter(receiver: receiver, packageId: nil, member: held.member, code: held.code,
                                         field: held.field, message: held.message, now: now)
                }
            }
        }
    }

    private func insertDeadLetter(receiver: String, packageId: String?, member: PackageMember, code: String, field: String?,
                                  message: String, now: Date) throws {
        try database.run("""
            INSERT INTO uplink_dead_letters(receiver, package_id, idx, seq, type, key, rev, code, field, message, created_at)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
            """, [.text(receiver), packageId.map(SQLiteValue.text) ?? .null,
                      packageId == nil ? .null : .integer(Int64(member.index)), .integer(member.seq), .text(member.type),
                      .text(member.key), .integer(member.rev), .text(code), field.map(SQLiteValue.text) ?? .null,
                      .text(message), .integer(Self.ms(now))])
    }

    /// What else a resolved package's transaction records: the consumer's journal cursor moves to the package's
    /// last seq and the receiver's state is saved, so that resolving a package costs one commit.
    public struct Resolution: Sendable {
        public var consumer: String
        public var state: ReceiverState
        public init(consumer: String, state: ReceiverState) {
            self.consumer = consumer
            self.state = state
        }
    }

    /// Applies a receipt: the package is resolved, its rejected records become dead letters, older dead letters
    /// of the keys delivered now are superseded, and `resolution` is recorded. One transaction.
    /// `ahead` is fixed in the same transaction when it still is the next package; returns whether it was.
    @discardableResult
    public func applyReceipt(receiver: String, package: StoredPackage, receipt: Receipt, now: Date,
                             resolution: Resolution? = nil, fixing ahead: FixAhead? = nil) throws(UplinkError) -> Bool {
        try wrap("apply receipt \(package.packageId)") {
            // Membership is only needed when something refers to a record: a rejection, or open dead letters
            // that this delivery may supersede.
            let needsMembers = try !receipt.rejected.isEmpty || hasOpenDeadLetters(receiver: receiver)
            let members = needsMembers ? try members(receiver: receiver, packageId: package.packageId) : []
            return try database.transaction { () throws -> Bool in
                try database.run("""
                    UPDATE uplink_packages SET state = 'receipted', accepted = ?3, duplicates = ?4, rejected = ?5,
                        resolved_at = ?6, request = x'', last_error = NULL, next_attempt_at = NULL
                    WHERE receiver = ?1 AND package_id = ?2
                    """, [.text(receiver), .text(package.packageId), .integer(Int64(receipt.accepted)),
                              .integer(Int64(receipt.duplicates)), .integer(Int64(receipt.rejected.count)), .integer(Self.ms(now))])
                var rejectedIndexes = Set<Int>()
                for rejection in receipt.rejected {
                    guard let member = members.first(where: { $0.index == rejection.index }) else { continue }
                    rejectedIndexes.insert(rejection.index)
                    try insertDeadLetter(receiver: receiver, packageId: package.packageId, member: member, code: rejection.code,
                                         field: rejection.field, message: rejection.message, now: now)
                }
                for member in members where !rejectedIndexes.contains(member.index) {
                    try database.run("""
                        UPDATE uplink_dead_letters SET state = 'superseded', resolved_at = ?5
                        WHERE receiver = ?1 AND type = ?2 AND key = ?3 AND rev < ?4 AND state = 'open'
                        """, [.text(receiver), .text(member.type), .text(member.key), .integer(member.rev), .integer(Self.ms(now))])
                }
                try record(resolution, lastSeq: package.lastSeq, receiver: receiver, now: now)
                return try fixAheadIfStillNext(ahead, receiver: receiver, consumer: resolution?.consumer, now: now)
            }
        }
    }

    /// Applies a non-retryable fault: every record of the package becomes a dead letter with the fault code.
    public func applyRefusal(receiver: String, package: StoredPackage, fault: PUIFault, now: Date,
                             resolution: Resolution? = nil) throws(UplinkError) {
        try wrap("apply refusal \(package.packageId)") {
            let members = try membersNamingEveryRecord(receiver: receiver, packageId: package.packageId)
            let code = fault.code ?? "SOAP-\(fault.faultCode)"
            try database.transaction {
                try database.run("""
                    UPDATE uplink_packages SET state = 'refused', fault_code = ?3, last_error = ?4, resolved_at = ?5,
                        request = x'', next_attempt_at = NULL
                    WHERE receiver = ?1 AND package_id = ?2
                    """, [.text(receiver), .text(package.packageId), .text(code), .text(fault.message), .integer(Self.ms(now))])
                for member in members {
                    try insertDeadLetter(receiver: receiver, packageId: package.packageId, member: member, code: code,
                                         field: nil, message: "package refused: \(fault.message)", now: now)
                }
                try record(resolution, lastSeq: package.lastSeq, receiver: receiver, now: now)
            }
        }
    }

    private func record(_ resolution: Resolution?, lastSeq: Int64, receiver: String, now: Date) throws {
        guard let resolution else { return }
        try database.run(Journal.advanceCursorSQL, [.text(resolution.consumer), .integer(lastSeq), .integer(Self.ms(now))])
        try writeReceiverState(receiver, resolution.state, now: now)
    }

    /// Records a failed attempt and when the next one is due.
    public func recordAttemptFailure(receiver: String, packageId: String, error: String, nextAttempt: Date, now: Date) throws(UplinkError) {
        try wrap("record attempt") {
            try database.run("""
                UPDATE uplink_packages SET attempts = attempts + 1, last_attempt_at = ?3, next_attempt_at = ?4, last_error = ?5
                WHERE receiver = ?1 AND package_id = ?2
                """, [.text(receiver), .text(packageId), .integer(Self.ms(now)), .integer(Self.ms(nextAttempt)), .text(error)])
        }
    }

    // MARK: - Dead letters

    public func deadLetters(receiver: String? = nil, includeResolved: Bool = false, limit: Int = 1000) throws(UplinkError) -> [DeadLetter] {
        try wrap("list dead letters") {
            var conditions: [String] = []
            var bindings: [SQLiteValue] = []
            if !includeResolved { conditions.append("state = 'open'") }
            if let receiver { bindings.append(.text(receiver)); conditions.append("receiver = ?\(bindings.count)") }
            bindings.append(.integer(Int64(limit)))
            let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            return try database.query("""
                SELECT id, receiver, package_id, idx, seq, type, key, rev, code, field, message, state, created_at
                FROM uplink_dead_letters \(whereClause) ORDER BY id LIMIT ?\(bindings.count)
                """, bindings).map { row in
                DeadLetter(id: row[0].intValue ?? 0, receiver: row[1].textValue ?? "", packageId: row[2].textValue,
                           index: row[3].intValue.map { Int($0) }, seq: row[4].intValue ?? 0, type: row[5].textValue ?? "",
                           key: NormalizedRecord.displayKey(of: row[6].textValue ?? ""),
                           rev: row[7].intValue ?? 0, code: row[8].textValue ?? "", field: row[9].textValue,
                           message: row[10].textValue ?? "", state: row[11].textValue ?? "",
                           createdAt: Self.date(row[12]) ?? Date(timeIntervalSince1970: 0))
            }
        }
    }

    /// Whether any dead letter of the receiver is open (one probe of the partial index, not a count).
    func hasOpenDeadLetters(receiver: String) throws -> Bool {
        !(try database.query("SELECT 1 FROM uplink_dead_letters INDEXED BY uplink_dead_letters_open WHERE receiver = ?1 AND state = 'open' LIMIT 1",
                             [.text(receiver)])).isEmpty
    }

    public func openDeadLetterCount(receiver: String) throws(UplinkError) -> Int {
        try wrap("count dead letters") {
            Int(try database.query("SELECT count(*) FROM uplink_dead_letters WHERE receiver = ?1 AND state = 'open'",
                                   [.text(receiver)]).first?.first?.intValue ?? 0)
        }
    }

    /// Operator drop: the dead letters leave the open list (kept as 'dropped' for audit). Returns how many.
    public func dropDeadLetters(ids: [Int64]?, receiver: String?, now: Date) throws(UplinkError) -> Int {
        try wrap("drop dead letters") {
            var conditions = ["state = 'open'"]
            var bindings: [SQLiteValue] = [.integer(Self.ms(now))]
            if let receiver { bindings.append(.text(receiver)); conditions.append("receiver = ?\(bindings.count)") }
            if let ids { conditions.append("id IN (" + ids.map(String.init).joined(separator: ",") + ")") }
            try database.prepare("UPDATE uplink_dead_letters SET state = 'dropped', resolved_at = ?1 WHERE " + conditions.joined(separator: " AND "))
                .run(bindings)
            return database.changes
        }
    }

    /// Operator resend: puts the records of open dead letters back in their receiver's queue as they are (the
    /// same journal revision), e.g. after the province fixed its catalog. The dead letters become 'resent'; if
    /// the receiver rejects a record again, a new dead letter appears. Returns how many were queued.
    public func resendDeadLetters(ids: [Int64]?, receiver: String?, now: Date) throws(UplinkError) -> Int {
        try wrap("resend dead letters") {
            var conditions = ["d.state = 'open'"]
            var bindings: [SQLiteValue] = [.integer(Self.ms(now))]
            if let receiver { bindings.append(.text(receiver)); conditions.append("d.receiver = ?\(bindings.count)") }
            if let ids { conditions.append("d.id IN (" + ids.map(String.init).joined(separator: ",") + ")") }
            let selection = conditions.joined(separator: " AND ")
            var queued = 0
            try database.transaction {
                // A record already waiting in the queue is not queued twice.
                try database.run("""
                    INSERT INTO uplink_resend(receiver, seq, dead_letter, queued_at)
                    SELECT d.receiver, d.seq, min(d.id), ?1 FROM uplink_dead_letters d
                    WHERE \(selection)
                      AND NOT EXISTS (SELECT 1 FROM uplink_resend r WHERE r.receiver = d.receiver AND r.seq = d.seq)
                    GROUP BY d.receiver, d.seq ORDER BY d.seq
                    """, bindings)
                try database.prepare("UPDATE uplink_dead_letters AS d SET state = 'resent', resolved_at = ?1 WHERE " + selection)
                    .run(bindings)
                queued = database.changes
            }
            return queued
        }
    }

    /// Records waiting to be resent to the receiver, oldest first: (queue id, journal seq).
    public func queuedResends(receiver: String, limit: Int) throws(UplinkError) -> [(id: Int64, seq: Int64)] {
        try wrap("read resend queue") {
            try database.query("SELECT id, seq FROM uplink_resend WHERE receiver = ?1 ORDER BY id LIMIT ?2",
                               [.text(receiver), .integer(Int64(limit))]).map { ($0[0].intValue ?? 0, $0[1].intValue ?? 0) }
        }
    }

    public func queuedResendCount(receiver: String) throws(UplinkError) -> Int {
        try wrap("count resend queue") {
            Int(try database.query("SELECT count(*) FROM uplink_resend WHERE receiver = ?1", [.text(receiver)]).first?.first?.intValue ?? 0)
        }
    }

    /// Removes queue entries (their records are in a fixed package now, or gone from the journal).
    public func dequeueResends(_ ids: [Int64]) throws(UplinkError) {
        try wrap("dequeue resends") { try deleteQueued(ids) }
    }

    private func deleteQueued(_ ids: [Int64]) throws {
        guard !ids.isEmpty else { return }
        try database.execute("DELETE FROM uplink_resend WHERE id IN (" + ids.map(String.init).joined(separator: ",") + ")")
    }

    // MARK: - Receiver state

    public func receiverState(_ receiver: String) throws(UplinkError) -> ReceiverState {
        try wrap("read receiver state") {
            guard let row = try database.query("""
                SELECT state, failing_since, consecutive_failures, last_error, last_success_at, next_retry_at
                FROM uplink_receivers WHERE receiver = ?1
                """, [.text(receiver)]).first else {
                return ReceiverState(kind: .idle, failingSince: nil, consecutiveFailures: 0, lastError: nil, lastSuccessAt: nil, nextRetryAt: nil)
            }
            return ReceiverState(kind: row[0].textValue.flatMap(ReceiverState.Kind.init) ?? .idle, failingSince: Self.date(row[1]),
                                 consecutiveFailures: Int(row[2].intValue ?? 0), lastError: row[3].textValue,
                                 lastSuccessAt: Self.date(row[4]), nextRetryAt: Self.date(row[5]))
        }
    }

    public func saveReceiverState(_ receiver: String, _ state: ReceiverState, now: Date) throws(UplinkError) {
        try wrap("save receiver state") { try writeReceiverState(receiver, state, now: now) }
    }

    private func writeReceiverState(_ receiver: String, _ state: ReceiverState, now: Date) throws {
            try database.run("""
                INSERT INTO uplink_receivers(receiver, state, failing_since, consecutive_failures, last_error, last_success_at,
                                             next_retry_at, updated_at)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                ON CONFLICT(receiver) DO UPDATE SET state = excluded.state, failing_since = excluded.failing_since,
                    consecutive_failures = excluded.consecutive_failures, last_error = excluded.last_error,
                    last_success_at = excluded.last_success_at, next_retry_at = excluded.next_retry_at,
                    updated_at = excluded.updated_at
                """, [.text(receiver), .text(state.kind.rawValue), state.failingSince.map { .integer(Self.ms($0)) } ?? .null,
                          .integer(Int64(state.consecutiveFailures)), state.lastError.map(SQLiteValue.text) ?? .null,
                          state.lastSuccessAt.map { .integer(Self.ms($0)) } ?? .null,
                          state.nextRetryAt.map { .integer(Self.ms($0)) } ?? .null, .integer(Self.ms(now))])
    }

    // MARK: - Journal figures (read-only use of the journal's `record_chunks` table in the same file)

    /// Journal records after `seq`, optionally of some types only.
    public func journalCount(after seq: Int64, types: [String]) throws(UplinkError) -> Int {
        try wrap("count journal records") {
            try Journal.recordCount(in: database, after: seq, types: types)
        }
    }

    public func journalLastSeq() throws(UplinkError) -> Int64 {
        try wrap("read journal last seq") {
            try Journal.lastSeq(in: database)
        }
    }

    /// The last resolved package (status).
    public func lastResolvedPackage(receiver: String) throws(UplinkError) -> (id: String, state: String, records: Int, accepted: Int?, duplicates: Int?, rejected: Int?, faultCode: String?, at: Date?)? {
        try wrap("read last package") {
            guard let row = try database.query("""
                SELECT package_id, state, record_count, accepted, duplicates, rejected, fault_code, resolved_at
                FROM uplink_packages WHERE receiver = ?1 AND state <> 'pending' ORDER BY n DESC LIMIT 1
                """, [.text(receiver)]).first else { return nil }
            return (row[0].textValue ?? "", row[1].textValue ?? "", Int(row[2].intValue ?? 0), row[3].intValue.map { Int($0) },
                    row[4].intValue.map { Int($0) }, row[5].intValue.map { Int($0) }, row[6].textValue, Self.date(row[7]))
        }
    }
}
