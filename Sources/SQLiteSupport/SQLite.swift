internal import CSQLite
import Foundation

/// An SQLite failure, keeping the extended result code, the statement it came from, the operating system's error
/// behind it and the database file.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let message: String
    public let sql: String?
    /// errno of the system call that failed (ENOSPC, EROFS, EACCES…), 0 when none did.
    public let systemError: Int32
    /// The database file, when the failure is one of a connection.
    public let path: String?

    /// The file's content is damaged (SQLITE_CORRUPT, SQLITE_NOTADB): reading it again will not help.
    public var isCorruption: Bool { [SQLITE_CORRUPT, SQLITE_NOTADB].contains(code & 0xFF) }

    init(code: Int32, message: String, sql: String?, systemError: Int32 = 0, path: String? = nil) {
        self.code = code
        self.message = message
        self.sql = sql
        self.systemError = systemError
        self.path = path
    }

    public var description: String {
        // "disk I/O error" alone does not tell a full disk from a read-only one: the system's words do.
        let system = systemError == 0 ? "" : " (\(String(cString: strerror(systemError))))"
        let statement = sql.map { " (in: \($0.prefix(120)))" } ?? ""
        return "sqlite error \(code): \(message)\(system)\(statement)" + (storageAdvice.map { ": \($0)" } ?? "")
    }

    /// True when another connection holds the lock (SQLITE_BUSY / SQLITE_LOCKED families).
    public var isBusy: Bool { (code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED }

    /// True when the file system holding the database is full.
    public var isDiskFull: Bool { (code & 0xff) == SQLITE_FULL || systemError == ENOSPC || systemError == EDQUOT }

    /// What the operator can do about a storage failure; nil for the others.
    var storageAdvice: String? {
        let folder = path.map { "the folder of \($0)" } ?? "the database's folder"
        if isDiskFull {
            return "the file system holding \(folder) is full: free space there; nothing committed is lost and esgate goes on where it stopped"
        }
        if (code & 0xff) == SQLITE_READONLY || systemError == EROFS || systemError == EACCES || systemError == EPERM {
            return "\(folder) cannot be written (a read-only file system, or files owned by another user): esgate must run as the user that owns the state directory and its files"
        }
        if (code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB {
            return "the database file is damaged: stop esgate and restore it from a backup (docs/journal.md, Operations: storage)"
        }
        return nil
    }
}

/// errno behind a failure that comes from the file system. SQLite keeps the last failed system call's errno per
/// connection, also when a later failure has nothing to do with it, so it is only read for those failures.
private func systemError(_ rc: Int32, _ handle: OpaquePointer?) -> Int32 {
    switch rc & 0xff {
    case SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_READONLY: return sqlite3_system_errno(handle)
    default: return 0
    }
}

/// A value bound to or read from a statement.
public enum SQLiteValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// One connection. Not Sendable: a connection belongs to one task or thread at a time.
public final class SQLiteDatabase {
    fileprivate var handle: OpaquePointer?
    public let path: String
    private let busyLimitSeconds: Double

    /// Process-wide settings, applied once before the first connection opens.
    private static let configured: Bool = {
        _ = esgate_sqlite_disable_memory_statistics()
        return true
    }()

    /// Applies the process-wide settings now. `sqlite3_config` must not race another thread starting SQLite
    /// (an ODBC driver built on the same libsqlite3, for one), so the executable calls this first thing;
    /// opening a connection applies them too, for libraries and tests.
    public static func configureProcess() {
        _ = configured
    }

    /// Opens (creating if needed) the database at `path`. `busyTimeoutMilliseconds` makes writers wait for each other.
    public init(path: String, readOnly: Bool = false, busyTimeoutMilliseconds: Int32 = 10_000) throws(SQLiteError) {
        _ = Self.configured
        self.path = path
        let flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            let osError = db.map { systemError(rc, $0) } ?? 0
            sqlite3_close_v2(db)
            throw SQLiteError(code: rc, message: "\(message): \(path)", sql: nil, systemError: osError, path: path)
        }
        sqlite3_extended_result_codes(db, 1)
        esgate_sqlite_set_busy_limit(db, busyTimeoutMilliseconds)
        busyLimitSeconds = Double(busyTimeoutMilliseconds) / 1000
        handle = db
    }

    deinit {
        if holdsWriteTurn { writeTurns.release() }
        sqlite3_close_v2(handle)
    }

    fileprivate func error(_ rc: Int32, sql: String?) -> SQLiteError {
        SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(handle)), sql: sql, systemError: systemError(rc, handle), path: path)
    }

    /// Runs one or more statements without results.
    public func execute(_ sql: String) throws(SQLiteError) {
        var errmsg: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errmsg)
        if rc != SQLITE_OK {
            let message = errmsg.map { String(cString: $0) } ?? "error"
            sqlite3_free(errmsg)
            throw SQLiteError(code: rc, message: message, sql: sql, systemError: systemError(rc, handle), path: path)
        }
    }

    public func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        try SQLiteStatement(database: self, sql: sql)
    }

    /// Statements `query` and `run` prepared before, by their SQL: an uplink step asks a dozen small questions
    /// per package, and compiling each one anew was a few percent of a push's CPU on its critical thread.
    /// Only these two use it, and each runs its statement to the end before it returns, so a cached statement
    /// is never in use twice. At most `statementCacheLimit`; SQL with values written into it would otherwise
    /// grow it without end.
    private var statementCache: [String: SQLiteStatement] = [:]
    private static let statementCacheLimit = 64

    private func cachedStatement(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        if let statement = statementCache[sql] { return statement }
        let statement = try prepare(sql)
        if statementCache.count >= Self.statementCacheLimit { statementCache.removeAll() }
        statementCache[sql] = statement
        return statement
    }

    /// Runs one statement with `values` bound to its parameters, ignoring rows; prepared once per connection.
    public func run(_ sql: String, _ values: [SQLiteValue] = []) throws(SQLiteError) {
        let statement = try cachedStatement(sql)
        defer { statement.reset() }   // drops the bound values (a package's bytes) until the next use
        try statement.run(values)
    }

    /// Whether a transaction is open on this connection (SQLite is not in autocommit mode).
    public var inTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Runs `body` inside BEGIN IMMEDIATE … COMMIT, rolling back when it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try beginWrite()
        do {
            let result = try body()
            try commitWrite()
            return result
        } catch {
            rollbackWrite()
            throw error
        }
    }

    /// Runs `body`'s reads in one read transaction (BEGIN … COMMIT): they see one snapshot of the file, so figures
    /// read by several queries agree while another connection writes.
    public func readTransaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN")
        defer { try? execute("COMMIT") }
        return try body()
    }

    /// Whether this connection holds its file's write turn (between `beginWrite` and commit/rollback).
    private var holdsWriteTurn = false
    private lazy var writeTurns = WriteTurns.shared(for: path)

    /// BEGIN IMMEDIATE, after waiting for this process's earlier writers of the same file in arrival order.
    /// SQLite's own busy waiting is not fair: a writer that commits and begins again at once (an ingest) would
    /// keep the lock from the others (the uplink, supervision) for as long as it runs.
    public func beginWrite() throws(SQLiteError) {
        guard writeTurns.acquire(timeout: busyLimitSeconds) else {
            throw SQLiteError(code: SQLITE_BUSY, message: "database is locked: another writer of this process held it for \(Int(busyLimitSeconds)) s", sql: "BEGIN IMMEDIATE")
        }
        do {
            try execute("BEGIN IMMEDIATE")
            holdsWriteTurn = true
        } catch {
            writeTurns.release()
            throw error
        }
    }

    /// True when another connection of this process is waiting for this file's write turn: a long batch can
    /// commit early and let it in.
    public var othersWaitingToWrite: Bool { writeTurns.queued > (holdsWriteTurn ? 1 : 0) }

    public func commitWrite() throws(SQLiteError) {
        try execute("COMMIT")
        endWriteTurn()
    }

    public func rollbackWrite() {
        try? execute("ROLLBACK")
        endWriteTurn()
    }

    private func endWriteTurn() {
        if holdsWriteTurn {
            holdsWriteTurn = false
            writeTurns.release()
        }
    }

    /// Convenience: all rows of a query as arrays of values.
    public func query(_ sql: String, _ bindings: [SQLiteValue] = []) throws(SQLiteError) -> [[SQLiteValue]] {
        let statement = try cachedStatement(sql)
        // Reset at once, also after an error: a statement left on a row would keep its read transaction open.
        defer { statement.reset() }
        try statement.bind(bindings)
        var rows: [[SQLiteValue]] = []
        while try statement.step() {
            rows.append((0..<statement.columnCount).map { statement.value(at: $0) })
        }
        return rows
    }

    public var changes: Int { Int(sqlite3_changes(handle)) }
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
}

/// A prepared statement, reused across executions (reset happens on bind).
public final class SQLiteStatement {
    /// Its connection, for error messages. Not the `SQLiteDatabase`: that one keeps its `query` statements, and a
    /// reference back would keep both alive for ever. sqlite3_close_v2 keeps the connection until its last
    /// statement is finalized, so a statement outliving its `SQLiteDatabase` is finalized safely; it is not to be
    /// run after that (no caller does).
    private let connection: OpaquePointer?
    private let path: String
    private var handle: OpaquePointer?
    public let sql: String

    fileprivate init(database: SQLiteDatabase, sql: String) throws(SQLiteError) {
        connection = database.handle
        path = database.path
        self.sql = sql
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(database.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK else { throw error(rc) }
        handle = statement
    }

    private func error(_ rc: Int32) -> SQLiteError {
        SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(connection)), sql: sql, systemError: systemError(rc, connection), path: path)
    }

    deinit { sqlite3_finalize(handle) }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    /// Resets the statement and binds the values to parameters 1…n.
    public func bind(_ values: [SQLiteValue]) throws(SQLiteError) {
        reset()
        for (offset, value) in values.enumerated() {
            try bind(value, at: Int32(offset + 1))
        }
    }

    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    public func bind(_ value: SQLiteValue, at index: Int32) throws(SQLiteError) {
        let rc: Int32
        switch value {
        case .null: rc = sqlite3_bind_null(handle, index)
        case .integer(let v): rc = sqlite3_bind_int64(handle, index, v)
        case .real(let v): rc = sqlite3_bind_double(handle, index, v)
        case .text(let v): rc = bindText(v, at: index)
        case .blob(let v):
            rc = v.withUnsafeBytes { sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), Self.transient) }
        }
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    // Hot path helpers that avoid building SQLiteValue enums.
    public func bind(int value: Int64, at index: Int32) throws(SQLiteError) {
        let rc = sqlite3_bind_int64(handle, index, value)
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    public func bind(text value: String, at index: Int32) throws(SQLiteError) {
        let rc = bindText(value, at: index)
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    public func bind(bytes value: UnsafeRawBufferPointer, at index: Int32) throws(SQLiteError) {
        let rc = sqlite3_bind_blob(handle, index, value.baseAddress, Int32(value.count), Self.transient)
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    private func bindText(_ value: String, at index: Int32) -> Int32 {
        var value = value
        return value.withUTF8 { buffer in
            sqlite3_bind_text(handle, index, UnsafeRawPointer(buffer.baseAddress)?.assumingMemoryBound(to: CChar.self),
                              Int32(buffer.count), Self.transient)
        }
    }

    /// Steps once; true when a row is available.
    @discardableResult
    public func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw error(rc)
    }

    /// Runs a statement that returns no rows (or ignores them) and resets it.
    public func run(_ values: [SQLiteValue] = []) throws(SQLiteError) {
        try bind(values)
        while try step() {}
        sqlite3_reset(handle)
    }

    public var columnCount: Int { Int(sqlite3_column_count(handle)) }

    public func int(at column: Int) -> Int64 { sqlite3_column_int64(handle, Int32(column)) }

    public func isNull(at column: Int) -> Bool { sqlite3_column_type(handle, Int32(column)) == SQLITE_NULL }

    public func text(at column: Int) -> String {
        guard let pointer = sqlite3_column_text(handle, Int32(column)) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, Int32(column)))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }

    /// The column's bytes (text or blob) without a copy; valid only inside `body`.
    public func withBytes<T>(at column: Int, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        let pointer = sqlite3_column_blob(handle, Int32(column))
        let count = Int(sqlite3_column_bytes(handle, Int32(column)))
        return try body(UnsafeRawBufferPointer(start: count > 0 ? pointer : nil, count: count))
    }

    public func blob(at column: Int) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, Int32(column)))
        guard count > 0, let pointer = sqlite3_column_blob(handle, Int32(column)) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    public func value(at column: Int) -> SQLiteValue {
        switch sqlite3_column_type(handle, Int32(column)) {
        case SQLITE_INTEGER: return .integer(int(at: column))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(handle, Int32(column)))
        case SQLITE_TEXT: return .text(text(at: column))
        case SQLITE_BLOB: return .blob(blob(at: column))
        default: return .null
        }
    }
}

extension SQLiteValue {
    public var intValue: Int64? { if case .integer(let v) = self { return v } else { return nil } }
    public var realValue: Double? {
        switch self {
        case .real(let v): return v
        case .integer(let v): return Double(v)
        default: return nil
        }
    }
    public var textValue: String? {
        switch self {
        case .text(let v): return v
        case .integer(let v): return String(v)
        case .real(let v): return String(v)
        default: return nil
        }
    }
}

/// The write turns of one database file among this process's connections: first come, first served. Waiters
/// that give up (timeout) leave the queue, so one stuck writer cannot wedge the others for longer than their limit.
final class WriteTurns: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [UInt64] = []   // the head holds the turn
    private var nextTicket: UInt64 = 0

    private static let registryLock = NSLock()
    nonisolated(unsafe) private static var registry: [String: WriteTurns] = [:]

    static func shared(for path: String) -> WriteTurns {
        let key = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
        return registryLock.withLock {
            if let turns = registry[key] { return turns }
            let turns = WriteTurns()
            registry[key] = turns
            return turns
        }
    }

    func acquire(timeout: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let ticket = nextTicket
        nextTicket += 1
        queue.append(ticket)
        let deadline = Date(timeIntervalSinceNow: timeout)
        while queue.first != ticket {
            if !condition.wait(until: deadline) && queue.first != ticket {
                queue.removeAll { $0 == ticket }
                condition.broadcast()
                return false
            }
        }
        return true
    }

    /// Holder and waiters (tests).
    var queued: Int { condition.withLock { queue.count } }

    func release() {
        condition.lock()
        if !queue.isEmpty { queue.removeFirst() }
        condition.broadcast()
        condition.unlock()
    }
}
