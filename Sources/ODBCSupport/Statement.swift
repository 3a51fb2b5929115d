internal import CODBC
import Foundation

/// A result column as the driver describes it.
public struct ODBCColumn: Sendable, Equatable {
    public let name: String
    /// The driver's SQL type code (SQL_VARCHAR = 12, SQL_WVARCHAR = -9, SQL_TYPE_TIMESTAMP = 93, …).
    public let sqlType: Int
    /// Declared size in characters (0 when unknown).
    public let size: Int
    public let nullable: Bool
}

/// A prepared statement. Parameter buffers live on the heap until the statement is re-bound or freed.
public final class ODBCStatement {
    let connection: ODBCConnection
    private var statement: UnsafeMutableRawPointer?
    public let sql: String
    /// Heap buffers handed to SQLBindParameter; they must outlive SQLExecute.
    private var parameterBuffers: [UnsafeMutableRawPointer] = []
    /// Counts the cursors opened on this statement: only the newest may unbind the columns when it goes away.
    var cursorGeneration = 0
    /// SQL_ATTR_MAX_ROWS last given to the driver; it stays on the statement until changed.
    private var maxRowsApplied = 0
    /// Seconds after which SQLExecute is cancelled from another thread, when the driver did not take
    /// SQL_ATTR_QUERY_TIMEOUT (0: the driver enforces it, or there is none).
    private var cancelAfter = 0

    init(connection: ODBCConnection, sql: String) throws(ODBCError) {
        self.connection = connection
        self.sql = sql
        _ = try connection.handle()
        guard let stmt = connection.allocateStatement() else {
            throw connection.error("allocate a statement", sql: sql)
        }
        statement = stmt
        if connection.options.queryTimeout > 0 {
            // A driver that does not enforce the timeout says so: MariaDB Connector/ODBC 3.1 answers 01S02 ("changed
            // to default (no timeout)"). Then the statement cancels itself when the time is up (`Watchdog`).
            let rc = SQLSetStmtAttrW(stmt, CODBC_ATTR_QUERY_TIMEOUT, SQLPOINTER(bitPattern: UInt(connection.options.queryTimeout)), 0)
            if rc != CODBC_SUCCESS { cancelAfter = connection.options.queryTimeout }
        }
        var text = utf16Units(sql)
        guard codbc_succeeded(SQLPrepareW(stmt, &text, CODBC_NTS)) != 0 else { throw error("prepare") }
    }

    deinit {
        if let statement { connection.freeStatement(statement) }
        freeParameters()
    }

    private func freeParameters() {
        for buffer in parameterBuffers { buffer.deallocate() }
        parameterBuffers = []
    }

    func error(_ operation: String) -> ODBCError {
        ODBCError(operation: operation, diagnostics: diagnostics(handleType: CODBC_HANDLE_STMT, handle: statement), sql: sql)
    }

    func handle() throws(ODBCError) -> UnsafeMutableRawPointer {
        guard let statement, connection.isLive(statement) else {
            throw ODBCError.closedConnection("use a statement of a closed connection", sql: sql)
        }
        return statement
    }

    /// Closes an open cursor (keeps the statement prepared).
    public func closeCursor() {
        if let statement { connection.withLiveStatement(statement) { SQLFreeStmt($0, CODBC_CLOSE) } }
    }

    private func heap(bytes: Int) -> UnsafeMutableRawPointer {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 8), alignment: 8)
        parameterBuffers.append(buffer)
        return buffer
    }

    private func bind(_ parameters: [ODBCParameter]) throws(ODBCError) {
        let stmt = try handle()
        SQLFreeStmt(stmt, CODBC_RESET_PARAMS)
        freeParameters()
        for (offset, parameter) in parameters.enumerated() {
            let number = UInt16(offset + 1)
            let indicator = heap(bytes: MemoryLayout<Int>.size).bindMemory(to: Int.self, capacity: 1)
            let rc: Int16
            switch parameter {
            case .null:
                indicator.pointee = CODBC_NULL_DATA
                let buffer = heap(bytes: 2)
                rc = SQLBindParameter(stmt, number, CODBC_PARAM_INPUT, CODBC_C_WCHAR, CODBC_WVARCHAR, 1, 0, buffer, 2, indicator)
            case .integer(let value):
                let buffer = heap(bytes: 8)
                buffer.storeBytes(of: value, as: Int64.self)
                indicator.pointee = 8
                rc = SQLBindParameter(stmt, number, CODBC_PARAM_INPUT, CODBC_C_SBIGINT, CODBC_BIGINT, 0, 0, buffer, 8, indicator)
            case .binary(let bytes):
                let buffer = heap(bytes: bytes.count)
                buffer.copyMemory(from: bytes, byteCount: bytes.count)
                indicator.pointee = bytes.count
                rc = SQLBindParameter(stmt, number, CODBC_PARAM_INPUT, CODBC_C_BINARY, CODBC_VARBINARY,
                                      UInt(max(bytes.count, 1)), 0, buffer, bytes.count, indicator)
            case .text(let text), .timestamp(let text):
                let units = Array(text.utf16)
                let bytes = (units.count + 1) * 2
                let buffer = heap(bytes: bytes)
                let typed = buffer.bindMemory(to: UInt16.self, capacity: units.count + 1)
                for (index, unit) in units.enumerated() { typed[index] = unit }
                typed[units.count] = 0
                indicator.pointee = units.count * 2
                if case .timestamp = parameter {
                    // Column size 26 and 6 fractional digits: yyyy-MM-dd HH:mm:ss.ffffff.
                    let fraction: Int16 = text.contains(".") ? 6 : 0
                    rc = SQLBindParameter(stmt, number, CODBC_PARAM_INPUT, CODBC_C_WCHAR, CODBC_TYPE_TIMESTAMP,
                                          fraction > 0 ? 26 : 19, fraction, buffer, bytes, indicator)
                } else {
                    rc = SQLBindParameter(stmt, number, CODBC_PARAM_INPUT, CODBC_C_WCHAR, CODBC_WVARCHAR,
                                          UInt(max(units.count, 1)), 0, buffer, bytes, indicator)
                }
            }
            guard codbc_succeeded(rc) != 0 else { throw error("bind parameter \(number)") }
        }
    }

    /// Executes without a result set; returns the affected row count (-1 when unknown).
    @discardableResult
    public func execute(_ parameters: [ODBCParameter] = []) throws(ODBCError) -> Int {
        try withUTF8Locale { () throws(ODBCError) in try executeInLocale(parameters) }
    }

    private func executeInLocale(_ parameters: [ODBCParameter]) throws(ODBCError) -> Int {
        let stmt = try handle()
        SQLFreeStmt(stmt, CODBC_CLOSE)
        try bind(parameters)
        let rc = try executeWithinTimeout(stmt)
        if rc == CODBC_NO_DATA { return 0 }  // a searched UPDATE/DELETE that touched no row
        guard codbc_succeeded(rc) != 0 else { throw error("execute") }
        var count: Int = -1
        SQLRowCount(stmt, &count)
        SQLFreeStmt(stmt, CODBC_CLOSE)
        return count
    }

    /// Executes a query and returns a cursor fetching `rowArraySize` rows per driver call (block fetch into
    /// UTF-16 column arrays). Text columns longer than `maxColumnCharacters` fail with SQLSTATE 01004.
    /// `maxRows` > 0 asks the driver to produce at most that many rows (SQL_ATTR_MAX_ROWS), so a sample of a
    /// large table does not make the server or the driver produce the whole result; it is a hint, the caller
    /// still stops reading after its rows.
    /// Text columns get buffers of the size the driver declares when that is below `maxColumnCharacters` (small
    /// buffers, many rows per fetch); some drivers declare a placeholder (psqlODBC: 255 for an unbounded varchar)
    /// and return longer values, which then fail with `exceedsDeclaredSize`: `declaredTextSizes: false` gives
    /// every text column `maxColumnCharacters`. Long types (text, CLOB) always get `maxColumnCharacters`.
    public func query(_ parameters: [ODBCParameter] = [], rowArraySize: Int = 1000, maxColumnCharacters: Int = 4000,
                      memoryBudgetBytes: Int = 48 << 20, maxRows: Int = 0, declaredTextSizes: Bool = true) throws(ODBCError) -> ODBCCursor {
        try withUTF8Locale { () throws(ODBCError) in
            try queryInLocale(parameters, rowArraySize: rowArraySize, maxColumnCharacters: maxColumnCharacters,
                              memoryBudgetBytes: memoryBudgetBytes, maxRows: maxRows, declaredTextSizes: declaredTextSizes)
        }
    }

    private func queryInLocale(_ parameters: [ODBCParameter], rowArraySize: Int, maxColumnCharacters: Int,
                               memoryBudgetBytes: Int, maxRows: Int, declaredTextSizes: Bool) throws(ODBCError) -> ODBCCursor {
        let stmt = try handle()
        SQLFreeStmt(stmt, CODBC_CLOSE)
        SQLFreeStmt(stmt, CODBC_UNBIND)
        // The previous cursor's fetched-count and status arrays go with it (its deinit leaves a re-used statement
        // alone): the driver must not keep pointers to them, even when this result has no columns to bind.
        SQLSetStmtAttrW(stmt, CODBC_ATTR_ROWS_FETCHED_PTR, nil, 0)
        SQLSetStmtAttrW(stmt, CODBC_ATTR_ROW_STATUS_PTR, nil, 0)
        let limit = max(0, maxRows)
        // Only when it changes: the attribute outlives the execution, and most statements never set it. A driver
        // that refuses it still returns correct rows; the caller then simply stops reading early.
        if limit != maxRowsApplied,
           codbc_succeeded(SQLSetStmtAttrW(stmt, CODBC_ATTR_MAX_ROWS, SQLPOINTER(bitPattern: UInt(limit)), 0)) != 0 {
            maxRowsApplied = limit
        }
        try bind(parameters)
        let rc = try executeWithinTimeout(stmt)
        guard codbc_succeeded(rc) != 0 || rc == CODBC_NO_DATA else { throw error("execute query") }
        cursorGeneration += 1
        return try ODBCCursor(statement: self, handle: stmt, rowArraySize: rowArraySize,
                              maxColumnCharacters: maxColumnCharacters, memoryBudgetBytes: memoryBudgetBytes,
                              declaredTextSizes: declaredTextSizes)
    }
}

extension ODBCStatement {
    /// SQLExecute, cancelled after `cancelAfter` seconds when the driver does not enforce the query timeout
    /// itself. A cancelled execution throws HYT00 (timeout expired), whatever the driver made of the cancel.
    fileprivate func executeWithinTimeout(_ stmt: UnsafeMutableRawPointer) throws(ODBCError) -> Int16 {
        guard connection.beginExecuting(stmt) else { throw ODBCError.stopped("execute", sql: sql) }
        defer { connection.endExecuting(stmt) }
        let rc = try executeWatched(stmt)
        // Cancelled for a stop: say so, whatever the driver made of the cancel.
        if codbc_succeeded(rc) == 0, connection.isStopRequested {
            SQLFreeStmt(stmt, CODBC_CLOSE)
            throw ODBCError.stopped("execute", sql: sql)
        }
        return rc
    }

    private func executeWatched(_ stmt: UnsafeMutableRawPointer) throws(ODBCError) -> Int16 {
        guard cancelAfter > 0 else { return SQLExecute(stmt) }
        let watchdog = Watchdog(statement: stmt)
        watchdog.arm(after: cancelAfter)
        let rc = SQLExecute(stmt)
        guard !watchdog.disarm() else {
            let cause = codbc_succeeded(rc) != 0 ? "" : diagnostics(handleType: CODBC_HANDLE_STMT, handle: stmt).first.map { " (the driver: \($0.message))" } ?? ""
            SQLFreeStmt(stmt, CODBC_CLOSE)
            throw ODBCError(operation: "execute", diagnostics: [ODBCDiagnostic(
                sqlState: "HYT00", nativeCode: 0,
                message: "query timeout of \(cancelAfter) s expired; the driver does not enforce SQL_ATTR_QUERY_TIMEOUT, so the statement was cancelled (SQLCancel)\(cause)")],
                sql: sql)
        }
        return rc
    }
}

/// Cancels a running SQLExecute from a dispatch thread once its time is up (ODBC allows SQLCancel from another
/// thread; MariaDB Connector/ODBC turns it into KILL QUERY on a connection of its own). The lock keeps the cancel
/// from reaching a statement whose execution already returned.
private final class Watchdog: @unchecked Sendable {
    private let lock = NSLock()
    private var statement: UnsafeMutableRawPointer?
    private var fired = false

    init(statement: UnsafeMutableRawPointer) { self.statement = statement }

    func arm(after seconds: Int) {
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(seconds)) { [self] in
            lock.lock()
            defer { lock.unlock() }
            guard let statement else { return }
            fired = true
            SQLCancel(statement)
        }
    }

    /// Stops the watchdog; whether it cancelled the execution.
    func disarm() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        statement = nil
        return fired
    }
}

/// An open result set with bound column arrays. The buffers are heap-allocated and freed with the cursor.
public final class ODBCCursor {
    let statement: ODBCStatement
    private let stmt: UnsafeMutableRawPointer
    public let columns: [ODBCColumn]
    /// Rows per fetch actually used (the request, reduced to stay within the memory budget).
    public let rowArraySize: Int
    /// Per column: UTF-16 units per row slot (incl. the terminator), data buffer, length/indicator array.
    let widths: [Int]
    /// Per column: whether its buffer has the size the driver declares (rather than `maxColumnCharacters`).
    let sizedByDriver: [Bool]
    /// Per column: how its value is fetched and made text.
    let encodings: [ValueEncoding]
    /// MariaDB Connector/ODBC (3.1.15 here) reports a length one byte short for each character of a text value
    /// whose UTF-8 form ends in 0x98-0x9B (变 四 忙 据 and 320 more), while the buffer holds the whole value and its
    /// terminator: "变变变变变变" came as "变变变". For this driver a text value runs to its terminator.
    let textRunsToTerminator: Bool
    let maxColumnCharacters: Int
    let data: [UnsafeMutablePointer<UInt16>]
    let indicators: [UnsafeMutablePointer<Int>]
    private let fetched: UnsafeMutablePointer<UInt>
    private let status: UnsafeMutablePointer<UInt16>
    private var finished = false
    private let generation: Int
    /// Rows of the result fetched before the current block, so that an error can say which row of the result.
    private var rowsFetched = 0

    init(statement: ODBCStatement, handle stmt: UnsafeMutableRawPointer, rowArraySize requested: Int,
         maxColumnCharacters: Int, memoryBudgetBytes: Int, declaredTextSizes: Bool = true) throws(ODBCError) {
        self.statement = statement
        self.maxColumnCharacters = maxColumnCharacters
        self.stmt = stmt
        generation = statement.cursorGeneration
        var count: Int16 = 0
        guard codbc_succeeded(SQLNumResultCols(stmt, &count)) != 0 else { throw statement.error("count result columns") }
        var columns: [ODBCColumn] = []
        for index in 0..<Int(count) {
            var name = [UInt16](repeating: 0, count: 512)
            var nameLength: Int16 = 0
            var type: Int16 = 0
            var size: UInt = 0
            var digits: Int16 = 0
            var nullable: Int16 = 0
            let rc = SQLDescribeColW(stmt, UInt16(index + 1), &name, Int16(name.count), &nameLength, &type, &size, &digits, &nullable)
            guard codbc_succeeded(rc) != 0 else { throw statement.error("describe column \(index + 1)") }
            let units = Array(name.prefix(max(0, min(Int(nameLength), name.count))).prefix { $0 != 0 })
            let text = ODBCCursor.columnName(units)
            columns.append(ODBCColumn(name: text, sqlType: Int(type), size: Int(size), nullable: nullable != 0))
        }
        self.columns = columns
        // Characters may take two UTF-16 units (𠀀 is a surrogate pair); numbers and timestamps need ~40. The
        // declared size of a long type (SQL_LONGVARCHAR, SQL_WLONGVARCHAR, SQL_LONGVARBINARY) is a driver default,
        // not a limit.
        let sizedByDriver = columns.map { column in
            column.size > 0 && column.size <= maxColumnCharacters && ![-1, -10, -4].contains(column.sqlType)
                && (declaredTextSizes || !ODBCCursor.sizesThatMayLie.contains(column.sqlType))
        }
        let encodings = columns.map { ValueEncoding(sqlType: $0.sqlType) }
        self.encodings = encodings
        textRunsToTerminator = statement.connection.driverName()?.lowercased().contains("maodbc") ?? false
        self.sizedByDriver = sizedByDriver
        let widths = columns.indices.map { index -> Int in
            let characters = sizedByDriver[index] ? max(columns[index].size, 40) : maxColumnCharacters
            return characters * 2 + 1
        }
        self.widths = widths
        let rowBytes = max(1, widths.reduce(0, +) * 2 + columns.count * MemoryLayout<Int>.size)
        let rows = max(1, min(requested, memoryBudgetBytes / rowBytes))
        self.rowArraySize = rows
        data = widths.map { UnsafeMutablePointer<UInt16>.allocate(capacity: $0 * rows) }
        indicators = widths.map { _ in UnsafeMutablePointer<Int>.allocate(capacity: rows) }
        fetched = UnsafeMutablePointer<UInt>.allocate(capacity: 1)
        fetched.pointee = 0
        status = UnsafeMutablePointer<UInt16>.allocate(capacity: rows)
        guard !columns.isEmpty else { finished = true; return }
        SQLSetStmtAttrW(stmt, CODBC_ATTR_ROW_BIND_TYPE, SQLPOINTER(bitPattern: UInt(CODBC_BIND_BY_COLUMN)), 0)
        guard codbc_succeeded(SQLSetStmtAttrW(stmt, CODBC_ATTR_ROW_ARRAY_SIZE, SQLPOINTER(bitPattern: UInt(rows)), 0)) != 0 else {
            throw statement.error("set the row array size to \(rows)")
        }
        SQLSetStmtAttrW(stmt, CODBC_ATTR_ROWS_FETCHED_PTR, SQLPOINTER(fetched), 0)
        SQLSetStmtAttrW(stmt, CODBC_ATTR_ROW_STATUS_PTR, SQLPOINTER(status), 0)
        for index in columns.indices {
            let rc = SQLBindCol(stmt, UInt16(index + 1), encodings[index].cType, SQLPOINTER(data[index]), widths[index] * 2, indicators[index])
            guard codbc_succeeded(rc) != 0 else { throw statement.error("bind column \(index + 1) (\(columns[index].name))") }
        }
    }

    deinit {
        // A newer cursor on the same statement has re-bound the columns and attributes: leave them alone. (Our
        // buffers are no longer referenced by the driver in that case, because binding replaced them.)
        if generation == statement.cursorGeneration {
            statement.connection.withLiveStatement(stmt) { stmt in
                SQLFreeStmt(stmt, CODBC_CLOSE)
                SQLFreeStmt(stmt, CODBC_UNBIND)
                SQLSetStmtAttrW(stmt, CODBC_ATTR_ROWS_FETCHED_PTR, nil, 0)
                SQLSetStmtAttrW(stmt, CODBC_ATTR_ROW_STATUS_PTR, nil, 0)
                SQLSetStmtAttrW(stmt, CODBC_ATTR_ROW_ARRAY_SIZE, SQLPOINTER(bitPattern: UInt(1)), 0)
            }
        }
        for buffer in data { buffer.deallocate() }
        for buffer in indicators { buffer.deallocate() }
        fetched.deallocate()
        status.deallocate()
    }

    public var columnCount: Int { columns.count }

    /// Types whose declared size drivers get wrong: text and binary (psqlODBC declares an unbounded varchar 255,
    /// SQLite's driver 255 for any column, BLOBs included) and NUMERIC/DECIMAL (psqlODBC declares an unconstrained
    /// numeric 28 digits, whatever it holds).
    static let sizesThatMayLie: Set<Int> = [1, 12, -8, -9, -2, -3, 2, 3]

    /// libsqliteodbc widens the UTF-8 bytes of column names to UTF-16 units one by one ("办" arrives as three
    /// units E5 8A 9E). A name whose units are all below 0x100, include some above 0x7F and form valid UTF-8
    /// is decoded as that UTF-8; any other name is taken as the UTF-16 it is.
    static func columnName(_ units: [UInt16]) -> String {
        if units.allSatisfy({ $0 < 0x100 }) && units.contains(where: { $0 >= 0x80 }) {
            let bytes = units.map { UInt8(truncatingIfNeeded: $0) }
            if let text = String(validating: bytes, as: UTF8.self) { return text }
        }
        return String(decoding: units, as: UTF16.self)
    }

    /// Fetches the next block; nil at the end (the cursor is then closed). The block's values are valid until
    /// the next call.
    public func next() throws(ODBCError) -> ODBCRowBlock? {
        try withUTF8Locale { () throws(ODBCError) in try fetchInLocale() }
    }

    private func fetchInLocale() throws(ODBCError) -> ODBCRowBlock? {
        guard !finished else { return nil }
        guard statement.connection.isLive(stmt) else {
            finished = true
            throw ODBCError.closedConnection("fetch", sql: statement.sql)
        }
        if statement.connection.isStopRequested {
            finished = true
            throw ODBCError.stopped("fetch", sql: statement.sql)
        }
        fetched.pointee = 0
        let rc = SQLFetch(stmt)
        if rc == CODBC_NO_DATA {
            finished = true
            SQLFreeStmt(stmt, CODBC_CLOSE)
            // The end of a result cut short by a stop is not its end (a snapshot would withdraw what it never read).
            if statement.connection.isStopRequested { throw ODBCError.stopped("fetch", sql: statement.sql) }
            return nil
        }
        guard codbc_succeeded(rc) != 0 else {
            finished = true
            // Cancelled for a stop: say so, whatever the driver made of the cancel.
            if statement.connection.isStopRequested { throw ODBCError.stopped("fetch", sql: statement.sql) }
            throw statement.error("fetch")
        }
        let count = Int(fetched.pointee)
        for row in 0..<count where status[row] == CODBC_ROW_ERROR {
            throw ODBCError(operation: "fetch row \(row + 1) of the block", diagnostics: diagnostics(handleType: CODBC_HANDLE_STMT, handle: stmt), sql: statement.sql)
        }
        defer { rowsFetched += count }
        return ODBCRowBlock(cursor: self, count: count, rowsBefore: rowsFetched)
    }

    /// Stops reading (the rest of the result set is discarded).
    public func close() {
        finished = true
        statement.connection.withLiveStatement(stmt) { SQLFreeStmt($0, CODBC_CLOSE) }
    }
}

/// The rows of one block fetch: read them before fetching the next block.
public struct ODBCRowBlock {
    let cursor: ODBCCursor
    public let count: Int
    /// Rows of the result before this block.
    let rowsBefore: Int

    public var columnCount: Int { cursor.columns.count }

    /// The value as text; nil for SQL NULL. A value longer than its column buffer throws (SQLSTATE 01004).
    public func text(row: Int, column: Int) throws(ODBCError) -> String? {
        let length = cursor.indicators[column][row]
        if length == CODBC_NULL_DATA { return nil }
        let width = cursor.widths[column]
        let capacityBytes = (width - 1) * 2
        guard length >= 0, length <= capacityBytes else { throw tooLong(row: row, column: column) }
        let start = cursor.data[column] + row * width
        if let bytes = bytes(start, length: length, column: column) {
            var out: [UInt8] = []
            ValueEncoding.appendHex(of: bytes, to: &out)
            return String(decoding: out, as: UTF8.self)
        }
        guard let units = textUnits(start, length: length, width: width) else { throw tooLong(row: row, column: column) }
        if cursor.encodings[column] == .bit, let bit = ValueEncoding.bit(units) { return bit }
        return ODBCRowBlock.string(utf16: units)
    }

    /// SQLSTATE 01004: the value of `column` in `row` does not fit its buffer.
    private func tooLong(row: Int, column: Int) -> ODBCError {
        let name = cursor.columns[column].name
        let declared = cursor.sizedByDriver[column]
        let limit = declared ? "the \(cursor.columns[column].size) characters the driver declares for the column"
                             : "max_column_chars (\(cursor.maxColumnCharacters))"
        return ODBCError(operation: "read column \(name)", diagnostics: [ODBCDiagnostic(
            sqlState: "01004", nativeCode: 0,
            message: "value of column \(name) in row \(rowsBefore + row + 1) of the result is longer than \(limit)\(declared ? "" : "; raise max_column_chars")")],
            sql: cursor.statement.sql, exceedsDeclaredSize: declared)
    }

    /// A text value's UTF-16 units: `length` bytes, or up to the terminator where the driver's length is known to
    /// fall short (`ODBCCursor.textRunsToTerminator`) and no terminator follows it. Nil when that terminator is the
    /// buffer's last unit: a short length then passed the size check for a value the driver had to cut to the
    /// buffer (MariaDB: 30 such characters in a buffer of 20 came as 20, length 30 bytes, and no 01004).
    private func textUnits(_ start: UnsafeMutablePointer<UInt16>, length: Int, width: Int) -> UnsafeBufferPointer<UInt16>? {
        var count = length / 2
        if cursor.textRunsToTerminator, count < width, start[count] != 0 {
            var end = count + 1
            while end < width, start[end] != 0 { end += 1 }
            if end >= width - 1 { return nil }
            count = end
        }
        return UnsafeBufferPointer(start: start, count: count)
    }

    /// The value of a binary column as the bytes the driver wrote; nil for other columns.
    private func bytes(_ start: UnsafeMutablePointer<UInt16>, length: Int, column: Int) -> UnsafeBufferPointer<UInt8>? {
        guard cursor.encodings[column] == .hex else { return nil }
        return UnsafeBufferPointer(start: UnsafeRawPointer(start).assumingMemoryBound(to: UInt8.self), count: length)
    }

    /// The value as a statement parameter of the column's kind (a front table's mark key): NULL, an integer for
    /// an integer or bit column, the bytes of a binary column, else the text.
    public func parameter(row: Int, column: Int) throws(ODBCError) -> ODBCParameter {
        if cursor.encodings[column] == .hex {
            let length = cursor.indicators[column][row]
            if length == CODBC_NULL_DATA { return .null }
            guard length >= 0, length <= (cursor.widths[column] - 1) * 2 else { throw tooLong(row: row, column: column) }
            return bytes(cursor.data[column] + row * cursor.widths[column], length: length, column: column).map { .binary(Array($0)) } ?? .null
        }
        guard let text = try text(row: row, column: column) else { return .null }
        if [4, 5, -5, -6, -7].contains(cursor.columns[column].sqlType), let number = Int64(text) { return .integer(number) }
        return .text(text)
    }

    /// Appends the value as UTF-8 to `out` without making a String; false for SQL NULL (nothing appended).
    /// The same length check as `text`.
    public func appendUTF8(row: Int, column: Int, to out: inout [UInt8]) throws(ODBCError) -> Bool {
        let length = cursor.indicators[column][row]
        if length == CODBC_NULL_DATA { return false }
        let width = cursor.widths[column]
        let capacityBytes = (width - 1) * 2
        guard length >= 0, length <= capacityBytes else { throw tooLong(row: row, column: column) }
        if let bytes = bytes(cursor.data[column] + row * width, length: length, column: column) {
            ValueEncoding.appendHex(of: bytes, to: &out)
            return true
        }
        guard let units = textUnits(cursor.data[column] + row * width, length: length, width: width) else {
            throw tooLong(row: row, column: column)
        }
        if cursor.encodings[column] == .bit, let bit = ValueEncoding.bit(units) {
            out.append(contentsOf: bit.utf8)
            return true
        }
        guard !units.isEmpty else { return true }
        // Transcoded into a temporary buffer (on the stack up to 1 KB, else the heap), then appended in one copy:
        // growing `out` by a filler and cutting it back cost a loop per byte.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: units.count * 3) { buffer in
            let written = ODBCRowBlock.transcode(units, into: buffer)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<written]))
        }
        return true
    }

    /// UTF-16 → String by transcoding straight into the string's UTF-8 storage (the generic
    /// `String(decoding:as: UTF16.self)` takes a slow path per code unit). Lone surrogates become U+FFFD.
    static func string(utf16 units: UnsafeBufferPointer<UInt16>) -> String {
        if units.isEmpty { return "" }
        return String(unsafeUninitializedCapacity: units.count * 3) { transcode(units, into: $0) }
    }

    /// Writes the UTF-8 of `units` into `buffer` (at least 3 bytes per unit); returns the bytes written.
    static func transcode(_ units: UnsafeBufferPointer<UInt16>, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        var out = 0
        var index = 0
        let count = units.count
        while index < count {
            let unit = UInt32(units[index])
            index += 1
            if unit < 0x80 {
                buffer[out] = UInt8(unit)
                out += 1
            } else if unit < 0x800 {
                buffer[out] = UInt8(0xC0 | (unit >> 6))
                buffer[out + 1] = UInt8(0x80 | (unit & 0x3F))
                out += 2
            } else if unit >= 0xD800 && unit < 0xDC00, index < count, units[index] >= 0xDC00, units[index] < 0xE000 {
                let scalar = 0x10000 + ((unit - 0xD800) << 10) + (UInt32(units[index]) - 0xDC00)
                index += 1
                buffer[out] = UInt8(0xF0 | (scalar >> 18))
                buffer[out + 1] = UInt8(0x80 | ((scalar >> 12) & 0x3F))
                buffer[out + 2] = UInt8(0x80 | ((scalar >> 6) & 0x3F))
                buffer[out + 3] = UInt8(0x80 | (scalar & 0x3F))
                out += 4
            } else {
                let scalar = (unit >= 0xD800 && unit < 0xE000) ? 0xFFFD : unit
                buffer[out] = UInt8(0xE0 | (scalar >> 12))
                buffer[out + 1] = UInt8(0x80 | ((scalar >> 6) & 0x3F))
                buffer[out + 2] = UInt8(0x80 | (scalar & 0x3F))
                out += 3
            }
        }
        return out
    }
}

/// How a column's values are fetched, and made text for the mapping, where drivers disagree. Binary columns
/// come as bytes and become upper-case hex: as text MariaDB writes a BLOB's bytes as if they were characters (a
/// leading zero byte gives an empty string), psqlODBC bytea as lower-case hex, SQLite's driver X'…'. A bit comes
/// as text, "0" or "1", but MariaDB writes BIT(1) as the raw byte: 0x01, and 0x00 ends its string, so it reads
/// as an empty text; those become "0" and "1".
enum ValueEncoding: Equatable {
    case text
    /// SQL_BINARY, SQL_VARBINARY, SQL_LONGVARBINARY: fetched as SQL_C_BINARY.
    case hex
    /// SQL_BIT.
    case bit

    init(sqlType: Int) {
        switch sqlType {
        case -2, -3, -4: self = .hex
        case -7: self = .bit
        default: self = .text
        }
    }

    var cType: Int16 { self == .hex ? CODBC_C_BINARY : CODBC_C_WCHAR }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    static func appendHex(of bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        let digits = hexDigits
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
    }

    /// A bit the driver wrote as a raw byte (or as nothing, for 0); nil for ordinary text such as "1".
    static func bit(_ units: UnsafeBufferPointer<UInt16>) -> String? {
        switch units.count {
        case 0: return "0"
        case 1 where units[0] <= 1: return units[0] == 0 ? "0" : "1"
        default: return nil
        }
    }
}
