internal import CODBC
import Foundation

// MARK: - Errors

/// One diagnostic record of an ODBC call.
public struct ODBCDiagnostic: Sendable, Equatable, CustomStringConvertible {
    /// Five-character SQLSTATE, e.g. "08001" (cannot connect), "28P01" (PostgreSQL bad password), "42P01".
    public let sqlState: String
    /// The driver's or server's own code.
    public let nativeCode: Int32
    public let message: String

    public var description: String { "[\(sqlState)] (native \(nativeCode)) \(message)" }
}

/// A failed ODBC call: what we were doing, and every diagnostic record the driver left.
public struct ODBCError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    public let diagnostics: [ODBCDiagnostic]
    /// The statement text, when the failure belongs to one.
    public let sql: String?
    /// A text value did not fit a buffer sized from the size the driver declares for its column (SQLSTATE
    /// 01004): reading with `declaredTextSizes: false` makes the buffer `maxColumnCharacters` long.
    public let exceedsDeclaredSize: Bool

    public init(operation: String, diagnostics: [ODBCDiagnostic], sql: String? = nil, exceedsDeclaredSize: Bool = false) {
        self.operation = operation
        self.diagnostics = diagnostics
        self.sql = sql
        self.exceedsDeclaredSize = exceedsDeclaredSize
    }

    /// `operation` given up because its connection's `ODBCStopSignal` was raised (SQLSTATE HY008, operation
    /// canceled).
    static func stopped(_ operation: String, sql: String? = nil) -> ODBCError {
        ODBCError(operation: operation, diagnostics: [ODBCDiagnostic(sqlState: "HY008", nativeCode: 0, message: "stopped: the gateway is shutting down")], sql: sql)
    }

    /// `operation` attempted on a closed connection or on a statement or cursor of one (SQLSTATE 08003).
    static func closedConnection(_ operation: String, sql: String? = nil) -> ODBCError {
        ODBCError(operation: operation, diagnostics: [ODBCDiagnostic(sqlState: "08003", nativeCode: 0, message: "connection is closed")], sql: sql)
    }

    /// The first record's SQLSTATE, or "HY000" when the driver left none.
    public var sqlState: String { diagnostics.first?.sqlState ?? "HY000" }
    public var nativeCode: Int32 { diagnostics.first?.nativeCode ?? 0 }
    public var message: String { diagnostics.first?.message ?? "no diagnostic from the driver" }

    /// SQLSTATE class 08 (connection exception) or a communication link failure: the connection is gone.
    public var isConnectionFailure: Bool {
        diagnostics.contains { $0.sqlState.hasPrefix("08") || $0.sqlState == "HYT01" || $0.sqlState == "57P01" }
    }

    public var description: String {
        var text = "\(operation): SQLSTATE \(sqlState)"
        if let first = diagnostics.first { text += " (native \(first.nativeCode)): \(first.message)" } else { text += ": \(message)" }
        if diagnostics.count > 1 { text += " (+\(diagnostics.count - 1) more: " + diagnostics.dropFirst().map(\.description).joined(separator: "; ") + ")" }
        if let sql { text += " [query: \(sql.prefix(200))]" }
        return text
    }
}

// MARK: - Values

/// A statement parameter. Text goes to the driver as UTF-16 (SQL_C_WCHAR), never as narrow characters.
public enum ODBCParameter: Sendable, Hashable {
    case null
    case integer(Int64)
    case text(String)
    /// A timestamp as text `yyyy-MM-dd HH:mm:ss[.ffffff]`, declared to the driver as SQL_TYPE_TIMESTAMP so that
    /// it compares with timestamp columns without a cast.
    case timestamp(String)
    /// Bytes, for a binary column (a BINARY(16) key): SQL_C_BINARY as SQL_VARBINARY.
    case binary([UInt8])
}

/// Settings of a connection.
public struct ODBCConnectionOptions: Sendable {
    /// Seconds to wait for the login (0: the driver's default).
    public var loginTimeout: Int
    /// Seconds a statement may run before the driver cancels it (0: no limit).
    public var queryTimeout: Int

    public init(loginTimeout: Int = 15, queryTimeout: Int = 0) {
        self.loginTimeout = loginTimeout
        self.queryTimeout = queryTimeout
    }
}

// MARK: - Locale

/// A UTF-8 LC_CTYPE locale for the calling thread while ODBC runs. Drivers and the driver manager convert SQL
/// text and column names between UTF-16 and narrow characters with the C library, which follows LC_CTYPE:
/// under the "C" locale libsqliteodbc turns `办件编号` in a statement into garbage. `uselocale` is per thread,
/// so the process locale is left alone.
private final class UTF8Locale: @unchecked Sendable {
    let handle: locale_t?
    init() {
        handle = newlocale(LC_CTYPE_MASK, "C.UTF-8", nil) ?? newlocale(LC_CTYPE_MASK, "en_US.UTF-8", nil)
    }
}

private let utf8Locale = UTF8Locale()

/// Runs `body` with the thread's LC_CTYPE set to UTF-8, then restores the thread's previous locale.
func withUTF8Locale<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
    guard let locale = utf8Locale.handle else { return try body() }
    let previous = uselocale(locale)
    defer { if let previous { uselocale(previous) } }
    return try body()
}

// MARK: - UTF-16 helpers

func utf16Units(_ text: String) -> [UInt16] {
    var units = Array(text.utf16)
    units.append(0)
    return units
}

func diagnostics(handleType: Int16, handle: UnsafeMutableRawPointer?) -> [ODBCDiagnostic] {
    guard let handle else { return [] }
    var result: [ODBCDiagnostic] = []
    var record: Int16 = 1
    while record < 20 {
        var state = [UInt16](repeating: 0, count: 6)
        var native: Int32 = 0
        var message = [UInt16](repeating: 0, count: 1024)
        var length: Int16 = 0
        let rc = SQLGetDiagRecW(handleType, handle, record, &state, &native, &message, Int16(message.count), &length)
        guard codbc_succeeded(rc) != 0 else { break }
        let used = min(Int(length), message.count - 1)
        let stateText = String(decoding: state.prefix { $0 != 0 }, as: UTF16.self)
        let text = String(decoding: message.prefix(max(0, used)).prefix { $0 != 0 }, as: UTF16.self)
        result.append(ODBCDiagnostic(sqlState: stateText, nativeCode: native, message: text))
        record += 1
    }
    return result
}

// MARK: - Connection

/// One SQLDriverConnectW on a thread of its own, so that the caller can stop waiting when the driver ignores its
/// login timeout. An attempt given up on frees its handles (disconnecting first if it did connect) whenever the
/// driver returns.
private final class LoginAttempt: @unchecked Sendable {
    /// Seconds past the login timeout before giving up: a driver that enforces the timeout reports it itself.
    static let grace = 2
    private let environment: UnsafeMutableRawPointer
    private let connection: UnsafeMutableRawPointer
    private let input: [UInt16]
    private let lock = NSLock()
    private let done = DispatchSemaphore(value: 0)
    private var result: Int16?
    private var abandoned = false

    init(environment: UnsafeMutableRawPointer, connection: UnsafeMutableRawPointer, connectionString: String) {
        self.environment = environment
        self.connection = connection
        input = utf16Units(connectionString)
    }

    /// The driver's return code, or nil when it did not return within `seconds` (nil: wait as long as it takes,
    /// on the calling thread).
    func run(waiting seconds: Int?) -> Int16? {
        guard let seconds else { return connect() }
        let thread = Thread { [self] in
            let rc = withUTF8Locale { connect() }
            lock.lock()
            defer { lock.unlock() }
            if abandoned {
                if codbc_succeeded(rc) != 0 { SQLDisconnect(connection) }
                SQLFreeHandle(CODBC_HANDLE_DBC, connection)
                SQLFreeHandle(CODBC_HANDLE_ENV, environment)
            } else {
                result = rc
                done.signal()
            }
        }
        thread.name = "esgate-odbc-login"
        thread.start()
        _ = done.wait(timeout: .now() + .seconds(seconds))
        lock.lock()
        defer { lock.unlock() }
        if result == nil { abandoned = true }
        return result
    }

    private func connect() -> Int16 {
        var input = self.input
        var output = [UInt16](repeating: 0, count: 2048)
        var outLength: Int16 = 0
        return SQLDriverConnectW(connection, nil, &input, Int16(clamping: input.count - 1), &output, Int16(output.count),
                                 &outLength, CODBC_DRIVER_NOPROMPT)
    }
}

/// Stops what a group of connections is doing, from another thread. `request()` raises the flag at once; every
/// execute or fetch that starts after it fails with SQLSTATE HY008, and an SQLExecute that is running is
/// cancelled (SQLCancel, which ODBC allows from another thread: psqlODBC asks the server to cancel, MariaDB
/// Connector/ODBC sends KILL QUERY). For a prompt graceful stop of `esgate run` (SIGTERM): an adapter's batch in
/// hand commits or rolls back as a unit, and what was not committed is read again at the next poll.
///
/// Only statements inside SQLExecute are cancelled, never one between calls or inside SQLFetch: Connector/ODBC
/// answers SQLCancel on such a statement by closing its cursor from the cancelling thread (freeing the result a
/// fetch may be reading). A fetch loop stops at its next block instead. The cancels run on a background queue (a
/// cancel opens a connection to the server, which may be what hangs), and are repeated every half second while a
/// statement is still executing: a cancel that reaches a statement just before the driver starts it has no effect.
///
/// Unchecked Sendable: its state is guarded by `lock`. Connections are held weakly; the cancels run outside the
/// lock, so that it is never held while waiting on a connection's own lock.
public final class ODBCStopSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var requested = false
    private var connections: [ObjectIdentifier: WeakConnection] = [:]

    private struct WeakConnection {
        weak var connection: ODBCConnection?
    }

    /// How often, and for how long at most, executing statements are cancelled again.
    static let cancelInterval = 0.5
    static let cancelAttempts = 120

    public init() {}

    public var isRequested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return requested
    }

    /// Raises the signal (for good) and cancels, in the background, what the registered connections execute.
    public func request() {
        lock.lock()
        let first = !requested
        requested = true
        lock.unlock()
        guard first else { return }
        DispatchQueue.global().async { [self] in
            for attempt in 0..<Self.cancelAttempts {
                lock.lock()
                let live = connections.values.compactMap(\.connection)
                lock.unlock()
                let executing = live.map { $0.cancelExecutingStatements() }.contains(true)
                guard executing, attempt + 1 < Self.cancelAttempts else { return }
                Thread.sleep(forTimeInterval: Self.cancelInterval)
            }
        }
    }

    func register(_ connection: ODBCConnection) {
        lock.lock()
        defer { lock.unlock() }
        connections[ObjectIdentifier(connection)] = WeakConnection(connection: connection)
    }

    func unregister(_ connection: ODBCConnection) {
        lock.lock()
        defer { lock.unlock() }
        connections[ObjectIdentifier(connection)] = nil
    }
}

/// One ODBC connection (its own environment handle too). Calls block: run them off Swift's cooperative pool
/// (`ODBCConnection.run` / `ODBCWorker`). Not safe for concurrent use (`close()` included: it must not run while
/// another thread is inside a call on the connection or one of its statements); it may move between threads.
public final class ODBCConnection: @unchecked Sendable {
    private var environment: UnsafeMutableRawPointer?
    private var connection: UnsafeMutableRawPointer?
    /// Statement handles allocated on this connection and not yet freed, guarded by `statementsLock`. A statement
    /// or cursor can be released on another thread after `close()` (its last reference held by a reader thread
    /// that is just ending), and `SQLDisconnect` has freed its handle by then; the driver manager may already have
    /// given that address to a statement of another connection. Freeing or resetting such a stale handle would
    /// hit that other statement mid-fetch, so every free and reset that can run from a deinit goes through
    /// `withLiveStatement`/`freeStatement`, which act only on handles still listed here.
    private let statementsLock = NSLock()
    private var liveStatements = Set<UnsafeMutableRawPointer>()
    /// The statements inside SQLExecute (guarded by `statementsLock`): the only ones a stop cancels.
    private var executingStatements = Set<UnsafeMutableRawPointer>()
    public let options: ODBCConnectionOptions
    /// The connection string with `PWD=`/`Password=` values masked, for messages.
    public let redactedConnectionString: String
    /// Raised to stop this connection's work from another thread (nil: it runs each call to its end).
    let stopSignal: ODBCStopSignal?

    /// Connects with a full connection string (`Driver={PostgreSQL Unicode};Server=…;PWD=…` or `DSN=…`).
    public init(connectionString: String, options: ODBCConnectionOptions = ODBCConnectionOptions(),
                stopSignal: ODBCStopSignal? = nil) throws(ODBCError) {
        self.options = options
        self.redactedConnectionString = ODBCConnection.redact(connectionString)
        self.stopSignal = stopSignal
        if stopSignal?.isRequested == true { throw ODBCError.stopped("connect (\(redactedConnectionString))") }
        try withUTF8Locale { () throws(ODBCError) in try open(connectionString) }
        stopSignal?.register(self)
    }

    /// Whether `stopSignal` was raised: calls that would start new work give up instead.
    var isStopRequested: Bool { stopSignal?.isRequested == true }

    /// Marks `handle` as inside SQLExecute, unless a stop was requested: false then, and it must not start. One
    /// critical section with the stop's cancel pass, so that a statement either sees the stop or is cancelled.
    func beginExecuting(_ handle: UnsafeMutableRawPointer) -> Bool {
        statementsLock.lock()
        defer { statementsLock.unlock() }
        if isStopRequested { return false }
        executingStatements.insert(handle)
        return true
    }

    func endExecuting(_ handle: UnsafeMutableRawPointer) {
        statementsLock.lock()
        defer { statementsLock.unlock() }
        executingStatements.remove(handle)
    }

    /// SQLCancel on the statements inside SQLExecute (the lock keeps their handles from being freed meanwhile);
    /// whether there were any.
    func cancelExecutingStatements() -> Bool {
        statementsLock.lock()
        defer { statementsLock.unlock() }
        for statement in executingStatements where liveStatements.contains(statement) { SQLCancel(statement) }
        return !executingStatements.isEmpty
    }

    private func open(_ connectionString: String) throws(ODBCError) {
        var env: SQLHANDLE?
        guard codbc_succeeded(SQLAllocHandle(CODBC_HANDLE_ENV, nil, &env)) != 0, let env else {
            throw ODBCError(operation: "allocate an ODBC environment", diagnostics: [])
        }
        environment = env
        SQLSetEnvAttr(env, CODBC_ATTR_ODBC_VERSION, SQLPOINTER(bitPattern: UInt(CODBC_OV_ODBC3)), 0)
        var dbc: SQLHANDLE?
        guard codbc_succeeded(SQLAllocHandle(CODBC_HANDLE_DBC, env, &dbc)) != 0, let dbc else {
            let found = ODBCSupport.diagnostics(handleType: CODBC_HANDLE_ENV, handle: env)
            SQLFreeHandle(CODBC_HANDLE_ENV, env)
            environment = nil
            throw ODBCError(operation: "allocate an ODBC connection", diagnostics: found)
        }
        connection = dbc
        if options.loginTimeout > 0 {
            SQLSetConnectAttrW(dbc, CODBC_ATTR_LOGIN_TIMEOUT, SQLPOINTER(bitPattern: UInt(options.loginTimeout)), 0)
            SQLSetConnectAttrW(dbc, CODBC_ATTR_CONNECTION_TIMEOUT, SQLPOINTER(bitPattern: UInt(options.loginTimeout)), 0)
        }
        let attempt = LoginAttempt(environment: env, connection: dbc, connectionString: connectionString)
        guard let rc = attempt.run(waiting: options.loginTimeout > 0 ? options.loginTimeout + LoginAttempt.grace : nil) else {
            // The driver did not return within its login timeout (MariaDB Connector/ODBC applies it to the TCP
            // connect only, and waits for ever on a server that accepts but never answers): give up; the attempt
            // frees its handles when the driver returns.
            connection = nil
            environment = nil
            throw ODBCError(operation: "connect (\(redactedConnectionString))", diagnostics: [ODBCDiagnostic(
                sqlState: "HYT00", nativeCode: 0,
                message: "login timeout of \(options.loginTimeout) s expired: the server accepted the connection but did not answer (the driver kept waiting; given up after \(options.loginTimeout + LoginAttempt.grace) s)")])
        }
        guard codbc_succeeded(rc) != 0 else {
            let found = ODBCSupport.diagnostics(handleType: CODBC_HANDLE_DBC, handle: dbc)
            SQLFreeHandle(CODBC_HANDLE_DBC, dbc)
            SQLFreeHandle(CODBC_HANDLE_ENV, env)
            connection = nil
            environment = nil
            throw ODBCError(operation: "connect (\(redactedConnectionString))", diagnostics: found)
        }
    }

    deinit { close() }

    /// Disconnects and frees the handles (idempotent).
    /// Frees the statements still open on it first, so that none of their handles outlives the connection.
    public func close() {
        stopSignal?.unregister(self)
        statementsLock.lock()
        defer { statementsLock.unlock() }
        for statement in liveStatements { SQLFreeHandle(CODBC_HANDLE_STMT, statement) }
        liveStatements.removeAll()
        if let connection {
            SQLDisconnect(connection)
            SQLFreeHandle(CODBC_HANDLE_DBC, connection)
        }
        if let environment { SQLFreeHandle(CODBC_HANDLE_ENV, environment) }
        connection = nil
        environment = nil
    }

    /// A new statement handle, listed as live until `freeStatement` or `close`.
    func allocateStatement() -> UnsafeMutableRawPointer? {
        statementsLock.lock()
        defer { statementsLock.unlock() }
        guard let connection else { return nil }
        var handle: SQLHANDLE?
        guard codbc_succeeded(SQLAllocHandle(CODBC_HANDLE_STMT, connection, &handle)) != 0, let handle else { return nil }
        liveStatements.insert(handle)
        return handle
    }

    /// Frees `handle` unless `close()` already did.
    func freeStatement(_ handle: UnsafeMutableRawPointer) {
        statementsLock.lock()
        defer { statementsLock.unlock() }
        guard liveStatements.remove(handle) != nil else { return }
        SQLFreeHandle(CODBC_HANDLE_STMT, handle)
    }

    /// Runs `body` on `handle` only while it is still a live statement of this connection.
    func withLiveStatement(_ handle: UnsafeMutableRawPointer, _ body: (UnsafeMutableRawPointer) -> Void) {
        statementsLock.lock()
        defer { statementsLock.unlock() }
        guard liveStatements.contains(handle) else { return }
        body(handle)
    }

    /// Whether `handle` is still a live statement of this connection (not freed by `close()`).
    func isLive(_ handle: UnsafeMutableRawPointer) -> Bool {
        statementsLock.lock()
        defer { statementsLock.unlock() }
        return liveStatements.contains(handle)
    }

    public var isOpen: Bool { connection != nil }

    /// `PWD=secret` → `PWD=***` (also `Password=`, braces included). Inside braces `}}` is an escaped `}` (how
    /// `password_file` writes one), so a `;` after it is still part of the password. An unbraced password that
    /// holds a `;` (`PWD=${ENV}`) leaves pieces without `=` after it: they are masked with it.
    public static func redact(_ connectionString: String) -> String {
        var parts: [String] = []
        var current = ""
        var inBraces = false
        let characters = Array(connectionString)
        var index = 0
        while index < characters.count {
            let character = characters[index]
            index += 1
            if inBraces {
                current.append(character)
                if character == "}" {
                    if index < characters.count && characters[index] == "}" {
                        current.append("}")
                        index += 1
                    } else {
                        inBraces = false
                    }
                }
            } else if character == ";" {
                parts.append(current)
                current = ""
            } else {
                if character == "{" { inBraces = true }
                current.append(character)
            }
        }
        if !current.isEmpty { parts.append(current) }
        var masking = false
        var kept: [String] = []
        for part in parts {
            guard let equals = part.firstIndex(of: "=") else {
                if !masking { kept.append(part) }
                continue
            }
            let key = part[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            masking = ["pwd", "password"].contains(key)
            kept.append(masking ? part[..<equals] + "=***" : part)
        }
        return kept.joined(separator: ";")
    }

    func error(_ operation: String, sql: String? = nil) -> ODBCError {
        ODBCError(operation: operation, diagnostics: ODBCSupport.diagnostics(handleType: CODBC_HANDLE_DBC, handle: connection), sql: sql)
    }

    func handle() throws(ODBCError) -> UnsafeMutableRawPointer {
        guard let connection else {
            throw ODBCError.closedConnection("use a closed connection")
        }
        return connection
    }

    /// The character the driver quotes identifiers with (`SQL_IDENTIFIER_QUOTE_CHAR`: `"` for PostgreSQL, Oracle
    /// and SQL Server, `` ` `` for MySQL/MariaDB); nil when the driver does not say or does not quote (" ").
    public func identifierQuoteCharacter() -> String? {
        guard let text = info(CODBC_IDENTIFIER_QUOTE_CHAR, units: 8)?.trimmingCharacters(in: .whitespaces) else { return nil }
        return text.isEmpty ? nil : text
    }

    /// A text item of SQLGetInfoW; nil when the driver does not give it.
    private func info(_ type: UInt16, units capacity: Int) -> String? {
        guard let dbc = connection else { return nil }
        var buffer = [UInt16](repeating: 0, count: capacity)
        var length: Int16 = 0
        let rc = SQLGetInfoW(dbc, type, &buffer, Int16(buffer.count * 2), &length)
        guard codbc_succeeded(rc) != 0, length > 0 else { return nil }
        return String(decoding: buffer.prefix(min(Int(length) / 2, buffer.count - 1)), as: UTF16.self)
    }

    /// The driver's file name (`SQL_DRIVER_NAME`, e.g. `libmaodbc.so`, `psqlodbcw.so`); nil when it does not say.
    public func driverName() -> String? {
        info(CODBC_DRIVER_NAME, units: 256)
    }

    /// Autocommit on (the default) or off (then `commit()` / `rollback()`).
    public func setAutocommit(_ on: Bool) throws(ODBCError) {
        let dbc = try handle()
        let value = on ? CODBC_AUTOCOMMIT_ON : CODBC_AUTOCOMMIT_OFF
        guard codbc_succeeded(SQLSetConnectAttrW(dbc, CODBC_ATTR_AUTOCOMMIT, SQLPOINTER(bitPattern: UInt(value)), 0)) != 0 else {
            throw error("set autocommit \(on ? "on" : "off")")
        }
    }

    public func commit() throws(ODBCError) {
        let dbc = try handle()
        guard codbc_succeeded(SQLEndTran(CODBC_HANDLE_DBC, dbc, CODBC_COMMIT)) != 0 else { throw error("commit") }
    }

    public func rollback() {
        if let connection { SQLEndTran(CODBC_HANDLE_DBC, connection, CODBC_ROLLBACK) }
    }

    /// Prepares a statement (parameters as `?`).
    public func prepare(_ sql: String) throws(ODBCError) -> ODBCStatement {
        try withUTF8Locale { () throws(ODBCError) in try ODBCStatement(connection: self, sql: sql) }
    }

    /// Runs a statement without a result set; returns the affected row count (-1 when the driver does not say).
    @discardableResult
    public func execute(_ sql: String, _ parameters: [ODBCParameter] = []) throws(ODBCError) -> Int {
        let statement = try prepare(sql)
        return try statement.execute(parameters)
    }

    /// Runs a query and returns every row as text (small results: tests, code tables).
    public func query(_ sql: String, _ parameters: [ODBCParameter] = []) throws(ODBCError) -> (columns: [String], rows: [[String?]]) {
        let statement = try prepare(sql)
        let cursor = try statement.query(parameters, rowArraySize: 256)
        var rows: [[String?]] = []
        while let batch = try cursor.next() {
            for row in 0..<batch.count {
                var values: [String?] = []
                for column in 0..<batch.columnCount { values.append(try batch.text(row: row, column: column)) }
                rows.append(values)
            }
        }
        return (cursor.columns.map(\.name), rows)
    }
}

// MARK: - Off the cooperative pool

/// Runs blocking ODBC work on its own serial dispatch queue (one per adapter), so that a slow login or a long
/// fetch never holds one of Swift's cooperative threads.
public final class ODBCWorker: Sendable {
    private let queue: DispatchQueue

    public init(label: String) {
        queue = DispatchQueue(label: "esgate.odbc.\(label)")
    }

    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try body() })
            }
        }
    }
}

/// Hands memory freed by this process back to the system. A pull runs three allocating threads (fetch, mapping,
/// journal writer), each with its own glibc arena; what one frees stays mapped in its arena until trimmed, which
/// held a long pull at the edge of its 100 MB budget. Cheap when called once per committed batch.
public func releaseFreedHeapMemory() {
    codbc_trim_heap()
}
