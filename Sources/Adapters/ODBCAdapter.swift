import CivilTime
import Foundation
import GatewayConfig
import GatewayModel
import Journal
import Mapping
import ODBCSupport

/// Why an ODBC poll failed, with the adapter, the query and the driver's SQLSTATE when there is one.
public struct ODBCAdapterError: Error, CustomStringConvertible, Sendable {
    public enum Cause: Sendable {
        /// The driver or server failed (connect, prepare, fetch, mark).
        case database(ODBCError)
        /// The journal failed; nothing of the batch was committed.
        case journal(JournalError)
        /// The configuration does not fit what the query returns.
        case configuration(String)
    }
    public let adapter: String
    public let cause: Cause
    /// The adapter's file and the key in it that the failure points at (`odbc.query`, `odbc.mark_statement`, …).
    public var file: String?
    public var field: String?
    /// What to check or change, when the driver's message alone does not say (a driver name not installed, say).
    public var hint: String?

    public init(adapter: String, cause: Cause, field: String? = nil, file: String? = nil, hint: String? = nil) {
        self.adapter = adapter
        self.cause = cause
        self.field = field
        self.file = file
        self.hint = hint
    }

    /// `adapter db (/etc/esgate/adapters/db.yaml: odbc.query)`.
    var subject: String {
        let place = [file, field].compactMap { $0 }.joined(separator: ": ")
        return place.isEmpty ? "adapter \(adapter)" : "adapter \(adapter) (\(place))"
    }

    /// The SQLSTATE of a database failure.
    public var sqlState: String? {
        if case .database(let error) = cause { return error.sqlState }
        return nil
    }

    public var description: String {
        let text: String
        switch cause {
        case .database(let error): text = "\(subject): \(error)"
        case .journal(let error): text = "\(subject): \(error)"
        case .configuration(let message): text = "\(subject): \(message)"
        }
        return hint.map { "\(text) (\($0))" } ?? text
    }
}

/// What one poll did.
public struct ODBCPollReport: Sendable, Codable, Equatable {
    public var adapter: String
    public var mode: String
    public var counts = IngestCounts()
    /// The watermark saved by this poll (incremental).
    public var watermark: String?
    /// Rows marked in the front table.
    public var marked = 0
    /// Journal transactions committed.
    public var batches = 0
    /// A snapshot with `deletes` that reached its end: the deletion counts below apply.
    public var deletes = false
    /// Snapshot with `deletes`: keys withdrawn (`op="delete"`) because their rows left the source.
    public var deleted = 0
    /// Snapshot with `deletes`: missing keys kept because a quarantined row of this poll may stand for them.
    public var deletionsHeld = 0
    /// Snapshot with `deletes`: missing keys not withdrawn because of `max_delete_percent`.
    public var deletionsRefused = 0
    /// Why the mass-deletion guard refused (also the adapter's last error until a poll passes).
    public var deletionRefusal: String?
    /// Incremental: no row of the poll had a readable watermark (also the adapter's last error until one has).
    public var watermarkProblem: String?
    /// Incremental: rows read whose watermark column was NULL, a zero date or not a value of `watermark_type`.
    /// They are ingested but do not move the watermark, and every poll reads them again.
    public var withoutWatermark = 0
    /// Records stored twice under one key in this poll: two source rows share a record key (also the adapter's
    /// last error until a poll has none).
    public var keyProblem: String?
    /// Front table: rows journaled but not markable, because a mark key is NULL (`= ?` never matches NULL); every
    /// poll reads them again. Also the adapter's last error until a poll has none.
    public var unmarkable = 0
    public var markProblem: String?
    public var seconds: Double = 0
}

/// Health of an ODBC adapter, for `esgate status`.
public struct ODBCAdapterStatus: Sendable, Codable, Equatable {
    public var lastPoll: Date?
    public var rowsRead = 0
    public var watermark: String?
    public var lastError: String?
    /// When the current run of failures began (nil while healthy).
    public var failingSince: Date?
    public var consecutiveFailures = 0
}

/// Pulls rows from a department database over ODBC into the journal, through a mapping.
///
/// Every mode relies on the journal's revision check: a row whose records are identical to their key's latest
/// revision adds nothing, so reading a row twice is harmless. That is what makes the lag window, the inclusive
/// watermark bound, snapshots and front-table crash recovery exactly-once.
///
/// Blocking: call `poll()` off Swift's cooperative pool (`ODBCWorker`). One poll at a time.
public final class ODBCAdapter: @unchecked Sendable {
    public let name: String
    public let settings: ODBCSettings
    /// Raised from another thread to stop a poll in hand (`esgate run` on SIGTERM): a statement still executing is
    /// cancelled, a fetch stops at its next block, the batch being written commits or rolls back as a unit, and
    /// the poll ends with the rest
    /// unread (the watermark, the front table's flags and snapshot deletions only follow committed rows, so the
    /// next poll reads it). Once raised, every later poll stops at once.
    public let stopSignal = ODBCStopSignal()
    /// The adapter's configuration file, named in errors.
    public let file: String?
    let plan: MappingPlan
    /// Snapshot with `deletes`: the mapping cut down to each record's key fields, so that the keys of a row
    /// failing the full mapping (a bad date, say) are still known and not taken for removed. nil without the
    /// mapping file: then any quarantined row holds back every deletion of its poll.
    let keyPlan: MappingPlan?
    let schema: PUISchema
    let journal: Journal
    let logger: Logger
    private var connection: ODBCConnection?
    public private(set) var status = ODBCAdapterStatus()
    /// Incremental: the query's columns, described once per connection (nil until then).
    private var queryColumns: [ODBCColumn]?
    /// The UTC offset of the watermark column's times, in minutes: that of the mapping field reading the column.
    let watermarkZoneMinutes: Int
    /// Record keys stored by the current poll, to find keys that two source rows share.
    private var repeatedKeys = RepeatedKeys()
    /// How column names are quoted in the SQL the adapter writes: `identifier_quote`, or the driver's own when
    /// that is `auto` (learnt at each connect).
    private var identifierQuote: String
    /// Text buffers sized from the driver's declared column sizes, until a value proved a declared size wrong.
    private var declaredTextSizes = true
    /// Tests: called after each journal commit with the number of batches committed in this poll; throwing
    /// there stops the poll as a crash would (front-table: before the rows are marked).
    public var afterCommit: ((Int) throws -> Void)?

    public init(name: String, settings: ODBCSettings, plan: MappingPlan, schema: PUISchema, journal: Journal,
                logger: Logger, mappingSpec: MappingSpec? = nil, file: String? = nil) {
        self.name = name
        self.settings = settings
        identifierQuote = settings.identifierQuote == "auto" ? "\"" : settings.identifierQuote
        self.file = file
        self.plan = plan
        keyPlan = settings.closesSnapshots ? mappingSpec.flatMap { ODBCAdapter.keyOnlyPlan($0, schema: schema) } : nil
        let watermarkField = mappingSpec?.records.lazy.flatMap(\.fields).first { $0.column != nil && $0.column == settings.watermarkColumn }
        watermarkZoneMinutes = watermarkField?.utcOffsetMinutes ?? 480
        self.schema = schema
        self.journal = journal
        self.logger = logger.with(component: "odbc:\(name)")
    }

    /// Drops the connection (the next poll reconnects).
    public func disconnect() {
        connection?.close()
        connection = nil
    }

    // MARK: - Poll

    /// Set for one poll by `esgate adapter reread` (after `rereadProblem` found none): an incremental poll reads
    /// from this watermark value (or from the usual bound, if that is lower) instead of from the saved watermark
    /// less the lag.
    public var rereadFrom: String?

    /// Why a re-read from `from` cannot be done, said before anything connects or is recorded: another mode, a
    /// value that is no watermark, or no poll yet (a first poll reads everything, or from initial_watermark:
    /// starting it at `from` instead would leave the rows below unread for good).
    public func rereadProblem(from: String) throws(JournalError) -> String? {
        guard settings.mode == .incremental else {
            return "adapter \(name) is in mode \(settings.mode.rawValue), which reads \(settings.mode == .snapshot ? "the whole table" : "every unmarked row") every poll: a re-read applies to mode incremental"
        }
        guard Watermark(parsing: from, kind: settings.watermarkKind) != nil else {
            return "--from '\(from)' is not a value of watermark_type \(settings.watermarkKind.rawValue) (adapter \(name))"
        }
        guard try journal.sourceOffset(name) != nil else {
            return "adapter \(name) has no watermark yet: its first poll reads everything (or from initial_watermark); run it first (esgate run --once)"
        }
        return nil
    }

    /// One poll in the configured mode. On any database failure the connection is dropped so that the next
    /// poll reconnects; nothing uncommitted is lost because the watermark only moves with committed rows.
    public func poll() throws(ODBCAdapterError) -> ODBCPollReport {
        let started = Date()
        var report = ODBCPollReport(adapter: name, mode: settings.mode.rawValue)
        repeatedKeys = RepeatedKeys()
        do {
            let connection = try connect()
            func pull() throws {
                switch settings.mode {
                case .incremental: try pullIncremental(connection, report: &report)
                case .snapshot: try pullSnapshot(connection, report: &report)
                case .frontTable: try pullFrontTable(connection, report: &report)
                }
            }
            do {
                try pull()
            } catch let error where declaredTextSizes && ODBCAdapter.exceedsDeclaredSize(error) {
                // The driver declared a text column shorter than its values (psqlODBC: 255 for an unbounded
                // varchar): from now on text columns get max_column_chars, and the poll runs again (what the
                // first run committed reads again as no-ops).
                declaredTextSizes = false
                logger.warning("\(error); reading text columns with buffers of max_column_chars (\(settings.maxColumnChars)) from now on")
                try pull()
            }
            report.seconds = Date().timeIntervalSince(started)
            status.lastPoll = Date()
            status.rowsRead += report.counts.rows
            if let watermark = report.watermark { status.watermark = watermark }
            // A refused mass deletion is not a failed poll (the records are stored), but it needs an operator,
            // so it shows as the adapter's error until a poll passes the guard.
            report.keyProblem = repeatedKeys.problem(frontTable: settings.mode == .frontTable)
            if let problem = report.keyProblem { logger.warning(problem) }
            if let problem = report.markProblem { logger.warning(problem) }
            let problems = [report.deletionRefusal, report.watermarkProblem, report.keyProblem, report.markProblem].compactMap { $0 }
            let problem = problems.isEmpty ? nil : "adapter \(name): " + problems.joined(separator: "; ")
            status.lastError = problem
            if problem == nil {
                status.failingSince = nil
                status.consecutiveFailures = 0
            } else {
                if status.failingSince == nil { status.failingSince = Date() }
                status.consecutiveFailures += 1
            }
            try? journal.recordPoll(adapter: name, kind: "odbc",
                                    PollOutcome(error: problem, rows: report.counts.rows, lagSeconds: lag(of: status.watermark ?? (try? journal.sourceOffset(name)))))
            return report
        } catch {
            let wrapped = wrap(error)
            if stopSignal.isRequested {
                // Not a failure of the source: the gateway is stopping. Nothing is recorded as the adapter's error.
                // Another failure that happened to coincide with the stop (the journal's disk, say) is still said.
                let other = wrapped.sqlState == "HY008" ? "" : " (with an error: \(wrapped))"
                logger.info("poll stopped for shutdown after \(report.counts.rows) rows (\(report.counts.stored) stored)\(other); committed batches stay, the rest is read at the next poll")
                disconnect()
                throw wrapped
            }
            // Rows a failed poll read are in `report` as far as it got (its committed batches are journaled).
            // The watermark stays where it was while the source cannot be read, so the lag keeps growing.
            try? journal.recordPoll(adapter: name, kind: "odbc",
                                    PollOutcome(error: wrapped.description, rows: report.counts.rows,
                                                lagSeconds: lag(of: status.watermark ?? (try? journal.sourceOffset(name)))))
            if case .database = wrapped.cause { disconnect() }
            status.lastPoll = Date()
            status.lastError = wrapped.description
            if status.failingSince == nil { status.failingSince = Date() }
            status.consecutiveFailures += 1
            throw wrapped
        }
    }

    /// Incremental over a timestamp: now minus the watermark, read in the zone the mapping gives the watermark
    /// column's times (Beijing unless it says otherwise). Nil for other modes and integer watermarks.
    func lag(of watermark: String?, now: Date = Date()) -> Double? {
        guard settings.mode == .incremental, settings.watermarkKind == .timestamp, let watermark,
              let value = Watermark(parsing: watermark, kind: .timestamp) else { return nil }
        let utc = Double(value.value) / 1_000_000 - Double(watermarkZoneMinutes) * 60
        return now.timeIntervalSince1970 - utc
    }

    /// A timeout for ODBC, which counts whole seconds and takes 0 for "no limit": a configured 500ms is one
    /// second, not none.
    static func wholeSeconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(seconds) + (attoseconds > 0 ? 1 : 0)
    }

    static func exceedsDeclaredSize(_ error: Error) -> Bool {
        switch error {
        case let error as ODBCError: return error.exceedsDeclaredSize
        case let error as ODBCAdapterError:
            if case .database(let inner) = error.cause { return inner.exceedsDeclaredSize }
            return false
        default: return false
        }
    }

    private func wrap(_ error: Error) -> ODBCAdapterError {
        var wrapped: ODBCAdapterError
        switch error {
        case let error as ODBCAdapterError: wrapped = error
        case let error as ODBCError: wrapped = ODBCAdapterError(adapter: name, cause: .database(error))
        case let error as JournalError: wrapped = ODBCAdapterError(adapter: name, cause: .journal(error))
        default: wrapped = ODBCAdapterError(adapter: name, cause: .configuration("\(error)"))
        }
        if wrapped.file == nil { wrapped.file = file }
        if wrapped.field == nil, case .database(let failure) = wrapped.cause {
            wrapped.field = ODBCAdapter.field(of: failure, settings: settings)
        }
        return wrapped
    }

    /// The key of the adapter file whose SQL or connection string failed.
    static func field(of error: ODBCError, settings: ODBCSettings) -> String? {
        if error.operation.hasPrefix("connect") { return "odbc.connection" }
        if error.sqlState == "HYT00" && settings.queryTimeout > .zero { return "odbc.query_timeout" }
        // A connection lost mid-query (class 08: 08S01 link failure, 08003…) or the server shutting down or
        // restarting (57P01-57P03 "terminating connection due to administrator command") is no key's fault:
        // pointing at the query would send the operator to check a query that is fine.
        if error.sqlState.hasPrefix("08") || error.sqlState.hasPrefix("57P") { return nil }
        // A value longer than the buffers: the query is fine, the limit is what to raise.
        if error.sqlState == "01004" && !error.exceedsDeclaredSize { return "odbc.max_column_chars" }
        guard let sql = error.sql else { return nil }
        if let mark = settings.markStatement, sql == SQLText.statement(mark) { return "odbc.mark_statement" }
        if sql == SQLText.statement(settings.query) { return "odbc.query" }
        // The query run only to learn its columns: nothing of the adapter's own is in it yet.
        if sql.hasSuffix(describingOnly) && sql.contains(subquery(settings.query)) { return "odbc.query" }
        // The incremental wrapper: the query, or a column it names in WHERE / ORDER BY.
        if sql.contains(subquery(settings.query)) { return settings.mode == .incremental ? "odbc.query, odbc.watermark_column or odbc.order_by" : "odbc.query" }
        return nil
    }

    private func connect() throws -> ODBCConnection {
        if let connection, connection.isOpen { return connection }
        let opened = try ODBCAdapter.open(name: name, settings: settings, stopSignal: stopSignal)
        connection = opened
        queryColumns = nil
        if settings.identifierQuote == "auto" {
            // The driver knows its server's quoting: `"` would be a string literal on MariaDB without ANSI_QUOTES.
            let character = opened.identifierQuoteCharacter()
            identifierQuote = ["\"", "`", "["].contains(character ?? "") ? (character ?? "\"") : "\""
        }
        logger.info("connected (\(opened.redactedConnectionString))")
        return opened
    }

    /// A new connection with the adapter's connection string, `password_file` and timeouts.
    static func open(name: String, settings: ODBCSettings, stopSignal: ODBCStopSignal? = nil) throws(ODBCAdapterError) -> ODBCConnection {
        var text = settings.connection
        if let file = settings.passwordFile {
            guard let data = FileManager.default.contents(atPath: file),
                  let password = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines) else {
                throw ODBCAdapterError(adapter: name, cause: .configuration("cannot read password_file \(file)"), field: "odbc.password_file")
            }
            if !text.hasSuffix(";") && !text.isEmpty { text += ";" }
            text += "PWD={\(password.replacingOccurrences(of: "}", with: "}}"))}"
        }
        let options = ODBCConnectionOptions(loginTimeout: wholeSeconds(settings.loginTimeout),
                                            queryTimeout: wholeSeconds(settings.queryTimeout))
        do {
            return try ODBCConnection(connectionString: text, options: options, stopSignal: stopSignal)
        } catch {
            throw ODBCAdapterError(adapter: name, cause: .database(error), field: "odbc.connection",
                                   hint: connectionHint(error, settings: settings))
        }
    }

    /// What a failed connect most likely needs, from its SQLSTATE and message: the driver's own words say what
    /// went wrong, not which setting of the adapter to look at.
    static func connectionHint(_ error: ODBCError, settings: ODBCSettings) -> String? {
        let message = error.diagnostics.map(\.message).joined(separator: " ").lowercased()
        if error.sqlState == "IM002" || message.contains("can't open lib") || message.contains("data source name not found") {
            return "the driver or DSN named in odbc.connection is not installed under that name: `odbcinst -q -d` lists the drivers, `odbcinst -q -s` the DSNs (run as the user esgate runs as); names are exact, e.g. Driver={PostgreSQL Unicode}. A name that is listed but whose library fails to load lacks a library of its own: see `ldd` on the file odbcinst.ini gives for it"
        }
        // Before the password: "access denied … to database", "cannot open database … the login failed" are about
        // the database named, not the password.
        if ["unknown database", "cannot open database", "to database"].contains(where: message.contains)
            || (message.contains("database \"") && message.contains("does not exist")) {
            return "the server knows no such database, or the user may not use it: check Database= in odbc.connection and the user's rights on it"
        }
        if ["connection refused", "can't connect to", "could not connect to server", "no route to host",
            "could not translate host name", "unknown host", "name or service not known"].contains(where: message.contains) {
            return "nothing answers at the server and port in odbc.connection: is the database running there, is the port right, does a firewall refuse it?"
        }
        if error.sqlState == "HYT00" || ["timeout expired", "timed out", "timeout occurred"].contains(where: message.contains) {
            let seconds = wholeSeconds(settings.loginTimeout)
            let within = seconds > 0 ? "within login_timeout (\(seconds) s)" : "before the driver's own timeout (login_timeout is 0)"
            return "no answer \(within): check the server and port in odbc.connection, a firewall, or raise odbc.login_timeout"
        }
        if ["28000", "28P01"].contains(error.sqlState) || message.contains("password authentication failed")
            || message.contains("access denied") || message.contains("login failed")
            || (message.contains("role \"") && message.contains("does not exist")) {
            let source = settings.passwordFile.map { "the password is read from odbc.password_file \($0)" }
                ?? "the password is the connection string's PWD (or none; odbc.password_file keeps it out of YAML)"
            return "the server refused the user or password: check UID in odbc.connection; \(source)"
        }
        return nil
    }

    func quoted(_ identifier: String) -> String {
        switch identifierQuote {
        case "`": return "`" + identifier.replacingOccurrences(of: "`", with: "``") + "`"
        case "[": return "[" + identifier.replacingOccurrences(of: "]", with: "]]") + "]"
        default: return "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
    }

    // MARK: - Modes

    /// Incremental: `SELECT * FROM (query) WHERE wm >= saved − lag ORDER BY wm, order_by…`, streamed; each
    /// batch commits its rows and the highest watermark seen so far in one journal transaction. The bound is
    /// inclusive, so rows sharing the last timestamp are read again (no-ops) rather than skipped, and the lag
    /// window re-reads rows that committed late with an older timestamp.
    private func pullIncremental(_ connection: ODBCConnection, report: inout ODBCPollReport) throws {
        guard let column = settings.watermarkColumn else {
            throw ODBCAdapterError(adapter: name, cause: .configuration("mode incremental needs watermark_column"))
        }
        let saved = try journal.sourceOffset(name)
        var bound: Watermark?
        var best: Watermark?
        if let saved {
            guard let value = Watermark(parsing: saved, kind: settings.watermarkKind) else {
                throw ODBCAdapterError(adapter: name, cause: .configuration("saved watermark '\(saved)' is not a \(settings.watermarkKind.rawValue)"))
            }
            best = value
            bound = value.lowered(lag: settings.lag, lagIds: Int64(settings.lagIds))
        }
        if let from = rereadFrom {
            // `adapter reread`: this poll starts lower, for rows that committed later than the lag allowed. The
            // journal stores only what is new or changed, and the watermark moves up only, from the saved one.
            guard let value = Watermark(parsing: from, kind: settings.watermarkKind) else {
                throw ODBCAdapterError(adapter: name, cause: .configuration("--from '\(from)' is not a value of watermark_type \(settings.watermarkKind.rawValue)"))
            }
            bound = bound.map { Swift.min($0, value) } ?? value
        } else if saved == nil, let initial = settings.initialWatermark {
            guard let value = Watermark(parsing: initial, kind: settings.watermarkKind) else {
                throw ODBCAdapterError(adapter: name, cause: .configuration("initial_watermark '\(initial)' is not a \(settings.watermarkKind.rawValue)"),
                                       field: "odbc.initial_watermark")
            }
            bound = value
        }
        // The query goes inside a subquery: a statement terminator would end it early, and a trailing `--` comment
        // would swallow the closing parenthesis, so the terminator goes and the parenthesis gets a line.
        let wrapped = "SELECT * FROM (\n\(ODBCAdapter.subquery(settings.query))\n) esgate_q"
        // The columns are learnt from the query run with a false condition, and the names the adapter writes into
        // WHERE and ORDER BY are checked against them: a name in the wrong case (Oracle's upper case, PostgreSQL's
        // lower case), in quotes or with DESC would otherwise fail with the server's message about a statement
        // the operator never wrote.
        let columns = try queryColumns ?? connection.prepare(wrapped + ODBCAdapter.describingOnly)
            .query([], rowArraySize: 1, maxColumnCharacters: 1).columns
        queryColumns = columns
        try ODBCAdapter.checkNamedColumns(settings, in: columns.map(\.name), adapter: name)
        var parameters: [ODBCParameter] = []
        var sql = wrapped
        if let bound {
            var lower = bound.parameter
            var floor = ODBCAdapter.watermarkFloor.parameter
            // A timestamp kept in a text column (VARCHAR '2026-01-05 08:52:00', common in legacy tables) does not
            // compare with a SQL_TYPE_TIMESTAMP parameter (PostgreSQL: SQLSTATE 42883), so it is bound as text,
            // cut to the minute: '2026-01-05 08:52' sorts before every value of that minute, whatever the
            // column's own precision ('…:00', '…:00.5'), so nothing at the bound is skipped.
            if bound.kind == .timestamp, let type = columns.first(where: { $0.name == column })?.sqlType,
               ODBCAdapter.characterTypes.contains(type) {
                lower = .text(String(bound.text.prefix(16)))
                floor = .text(String(ODBCAdapter.watermarkFloor.text.prefix(10)))
            }
            // A row without a watermark (NULL; for timestamps also a MariaDB zero date '0000-00-00' or an empty
            // text, which sort below any real time) never satisfies `>= ?`: without the other two conditions it
            // would be read by the first poll only, and a row written so after that would be lost without a
            // trace. Such rows are read by every poll instead (no-ops in the journal) and counted.
            let name = "esgate_q." + quoted(column)
            if bound.kind == .timestamp {
                sql += " WHERE (\(name) >= ? OR \(name) IS NULL OR \(name) < ?)"
                parameters = [lower, floor]
            } else {
                sql += " WHERE (\(name) >= ? OR \(name) IS NULL)"
                parameters = [lower]
            }
        }
        sql += " ORDER BY " + ([column] + settings.orderBy).map { "esgate_q." + quoted($0) }.joined(separator: ", ")
        logger.debug("poll statement: \(sql) (parameters: \(parameters))")
        let statement = try connection.prepare(sql)
        let cursor = try statement.query(parameters, rowArraySize: settings.fetchRows,
                                         maxColumnCharacters: settings.maxColumnChars, declaredTextSizes: declaredTextSizes)
        try stream(cursor, watermarkColumn: column, saved: best, report: &report)
    }

    /// Below every real watermark time: a stamp under it (a zero date, an empty text) counts as no stamp. 1753 is
    /// the first year SQL Server's DATETIME holds, so the parameter converts on every server.
    static let watermarkFloor = Watermark(kind: .timestamp, value: Watermark.parseTimestamp("1753-01-01 00:00:00") ?? 0)

    /// SQL_CHAR, SQL_VARCHAR, SQL_LONGVARCHAR and their wide forms.
    static let characterTypes: Set<Int> = [1, 12, -1, -8, -9, -10]

    /// Appended to the wrapped query to learn its columns without reading a row.
    static let describingOnly = " WHERE 1 = 0"

    /// The position of the result column `name` that the adapter file's `key` names (`what` says how, for the
    /// message). It must be there once and under its exact name, as the mapping matches names: otherwise the error
    /// says what to change.
    static func columnIndex(of name: String, _ what: String? = nil, key: String, in columns: [String], adapter: String) throws(ODBCAdapterError) -> Int {
        let positions = columns.indices.filter { columns[$0] == name }
        let subject = what ?? name
        if positions.count == 1 { return positions[0] }
        var problem: String
        if positions.count > 1 {
            problem = "\(subject) is \(positions.count) columns of the query (positions \(positions.map { String($0 + 1) }.joined(separator: ", "))), so which one is meant is unknown; give them distinct aliases in odbc.query"
        } else {
            problem = "\(subject) is not a column of the query (columns: \(columns.joined(separator: ", ")))"
            if let other = columns.first(where: { $0.lowercased() == name.lowercased() }) {
                problem += "; names match exactly, and the query returns \(other): write that, or alias the column in odbc.query"
            } else if name.contains(where: { "\"`[' ".contains($0) }) {
                problem += "; give the bare column name, without quotes, ASC/DESC or an expression (the adapter quotes it)"
            }
        }
        throw ODBCAdapterError(adapter: adapter, cause: .configuration(problem), field: key)
    }

    func columnIndex(of name: String, _ what: String? = nil, key: String, in columns: [String]) throws(ODBCAdapterError) -> Int {
        try ODBCAdapter.columnIndex(of: name, what, key: key, in: columns, adapter: self.name)
    }

    /// Checks the columns the adapter file names for its mode (incremental: `watermark_column`, `order_by`;
    /// front-table: `mark_keys`) against the query's result.
    public static func checkNamedColumns(_ settings: ODBCSettings, in header: [String], adapter: String) throws(ODBCAdapterError) {
        if let first = namedColumnProblems(settings, in: header, adapter: adapter).first { throw first }
    }

    /// Every column the adapter file names that does not fit the result (`checkNamedColumns` throws the first).
    public static func namedColumnProblems(_ settings: ODBCSettings, in header: [String], adapter: String) -> [ODBCAdapterError] {
        let named: [(key: String, column: String)]
        switch settings.mode {
        case .incremental:
            named = (settings.watermarkColumn.map { [("odbc.watermark_column", $0)] } ?? []) + settings.orderBy.map { ("odbc.order_by", $0) }
        case .frontTable: named = settings.markKeys.map { ("odbc.mark_keys", $0) }
        case .snapshot: named = []
        }
        return named.compactMap { key, column in problem { () throws(ODBCAdapterError) in _ = try columnIndex(of: column, key: key, in: header, adapter: adapter) } }
    }

    /// The error `check` throws, if any.
    private static func problem(_ check: () throws(ODBCAdapterError) -> Void) -> ODBCAdapterError? {
        do { try check(); return nil } catch { return error }
    }

    /// What a poll finds only after reading the whole table (`watermarkProblem`), said from a sample: a watermark
    /// column none of whose sampled values is a value of `watermark_type` (an id column read as a timestamp, or
    /// the other way round), so the watermark could never move.
    public static func checkWatermarkValues(_ settings: ODBCSettings, in sample: ODBCSample, adapter: String) throws(ODBCAdapterError) {
        guard settings.mode == .incremental, let column = settings.watermarkColumn, !sample.rows.isEmpty else { return }
        let index = try columnIndex(of: column, key: "odbc.watermark_column", in: sample.header, adapter: adapter)
        // NULL (sampled as "") says nothing about the type: old rows from before the column was filled.
        let values = sample.rows.map { $0[index] }.filter { !$0.isEmpty }
        let kind = settings.watermarkKind
        guard let example = values.first, !values.contains(where: { Watermark(parsing: $0, kind: kind) != nil }) else { return }
        let other = WatermarkKind.allCases.first { candidate in
            candidate != kind && values.contains { Watermark(parsing: $0, kind: candidate) != nil }
        }
        let advice = other.map { "set watermark_type: \($0.rawValue)" } ?? "pick a watermark_column that holds timestamps or integers"
        throw ODBCAdapterError(adapter: adapter, cause: .configuration(
            "watermark column \(column): none of the \(values.count) value(s) sampled is a value of watermark_type \(kind.rawValue) (e.g. '\(example)'), so a poll could not move the watermark and would read every row again; \(advice)"),
            field: other == nil ? "odbc.watermark_column" : "odbc.watermark_type")
    }

    /// Checks that each column the mapping reads is in the result once and under its exact name: of two columns
    /// named alike (a join's a.id and b.id) the mapping would silently take the first.
    public static func checkColumns(of plan: MappingPlan, in header: [String], adapter: String) throws(ODBCAdapterError) {
        if let first = columnProblems(of: plan, in: header, adapter: adapter).first { throw first }
    }

    /// Every column of the mapping that does not fit the result (`checkColumns` throws the first).
    public static func columnProblems(of plan: MappingPlan, in header: [String], adapter: String) -> [ODBCAdapterError] {
        let names = header.map(MappingPlan.headerName)
        return plan.columns.compactMap { column in
            problem { () throws(ODBCAdapterError) in
                _ = try columnIndex(of: column, "column \(column) of mapping \(plan.name) (\(plan.file))", key: "mapping", in: names, adapter: adapter)
            }
        }
    }

    /// `query` as a subquery: without the statement terminators it ends with (see `SQLText.withoutTerminator`).
    static func subquery(_ query: String) -> String { SQLText.withoutTerminator(query) }

    /// Snapshot: the whole result every poll, in batches; unchanged rows add nothing to the journal. With
    /// `deletes`, the poll is one journal transaction that ends by withdrawing the keys gone since the last one.
    private func pullSnapshot(_ connection: ODBCConnection, report: inout ODBCPollReport) throws {
        let statement = try connection.prepare(SQLText.statement(settings.query))
        let cursor = try statement.query([], rowArraySize: settings.fetchRows, maxColumnCharacters: settings.maxColumnChars,
                                         declaredTextSizes: declaredTextSizes)
        try stream(cursor, watermarkColumn: nil, saved: nil, report: &report)
    }

    /// The mapping with only the key fields of each record (routes unchanged): a row fails it only when a key
    /// field itself cannot be mapped.
    public static func keyOnlyPlan(_ spec: MappingSpec, schema: PUISchema) -> MappingPlan? {
        var keysOnly = spec
        keysOnly.records = spec.records.map { record in
            var trimmed = record
            let keyFields = schema.recordTypes[record.type]?.keyFields ?? []
            trimmed.fields = record.fields.filter { keyFields.contains($0.path) }
            return trimmed
        }
        guard case .success(let plan) = MappingPlan.compile(keysOnly, schema: schema) else { return nil }
        return plan
    }

    /// Two stages on two threads, like the CSV drop: a reader thread fetches blocks, maps and validates rows into
    /// batches; this thread commits each batch (rows + the highest watermark read so far) in one journal
    /// transaction. At most two chunks wait between them (and two fetched blocks before the mapping), so memory
    /// stays bounded whatever the result size.
    private func stream(_ cursor: ODBCCursor, watermarkColumn: String?, saved: Watermark?, report: inout ODBCPollReport) throws {
        let source = try RowSource(adapter: self, cursor: cursor, watermarkColumn: watermarkColumn)
        let channel = BatchChannel<ODBCBatch>(capacity: 2)
        // The reader hands over chunks of at most 2,500 rows; a transaction still covers `batch_rows` rows, so a
        // large batch does not mean large chunks in memory.
        let job = ODBCReadJob(cursor: cursor, source: source, channel: channel, batchRows: min(settings.batchRows, 2500),
                              kind: settings.watermarkKind, saved: saved, logger: logger)
        let stopReader = startProducer(named: "esgate-odbc-\(name)", channel: channel) { job.run() }
        defer { stopReader() }
        if settings.closesSnapshots && watermarkColumn == nil {
            return try commitSnapshot(from: channel, report: &report)
        }
        var finished = false
        var unreadable: (count: Int, example: String?) = (0, nil)
        var rowsRead = 0
        defer {
            // Not one row of the poll moved the watermark: every poll reads them all again, and new rows are
            // found only by re-reading everything. Stored all the same, but the adapter shows it as its error.
            if let watermarkColumn, rowsRead > 0, unreadable.count == rowsRead {
                report.watermarkProblem = "watermark column \(watermarkColumn): none of the \(rowsRead) rows read holds a value of watermark_type \(settings.watermarkKind.rawValue) (e.g. '\(unreadable.example ?? "NULL")'), so the watermark cannot move and every poll reads them all again; check odbc.watermark_column and odbc.watermark_type"
            }
        }
        while !finished, let first = try channel.take() {
            var counts = IngestCounts()
            var rows = 0
            var watermark: String?
            try journal.begin()
            do {
                var next: ODBCBatch? = consume first
                while let chunk = next.take() {
                    try store(chunk.rows, counts: &counts)
                    rows += chunk.rows.count
                    watermark = chunk.watermark ?? watermark
                    finished = chunk.isLast
                    unreadable = (chunk.unreadableWatermarks, chunk.unreadableExample)
                    // Freed on the mapping thread that allocated its rows, as the CSV path does (glibc frees
                    // across threads under the other arena's lock): handed back, with no reference kept here.
                    channel.recycle(consume chunk)
                    // Another writer waiting (the uplink, supervision) ends the transaction early: the next
                    // chunk may need the source database, and the journal must not wait on it.
                    next = finished || rows >= settings.batchRows || journal.othersWaitingToWrite ? nil : try channel.take()
                }
                if let watermark { try journal.setSourceOffset(name, position: watermark) }
                try journal.commit()
            } catch {
                journal.rollback()
                throw error
            }
            if let watermark { report.watermark = watermark }
            report.withoutWatermark = unreadable.count
            rowsRead += rows
            guard rows > 0 else { continue }
            report.counts += counts
            report.batches += 1
            releaseFreedHeapMemory()
            try afterCommit?(report.batches)
        }
    }

    /// Front table: rounds of at most `batch_rows` unmarked rows. Each round commits its rows to the journal
    /// first and only then runs the mark statement for them (one database transaction). A crash between the
    /// two leaves the rows unmarked: the next round reads them again, the journal finds them unchanged, and
    /// they are marked then. Rows that went to quarantine are marked too (they are durable there). Rounds go on
    /// until one finds no row to mark, so a poll ends with a query that no longer returns what it marked.
    private func pullFrontTable(_ connection: ODBCConnection, report: inout ODBCPollReport) throws {
        guard let markSQL = settings.markStatement, !settings.markKeys.isEmpty else {
            throw ODBCAdapterError(adapter: name, cause: .configuration("mode front-table needs mark_statement and mark_keys"))
        }
        let select = try connection.prepare(SQLText.statement(settings.query))
        let mark = try connection.prepare(SQLText.statement(markSQL))
        var ordinal = 0
        // What keeps a poll from looping for ever, kept for the whole poll as hashes of the keys (a query without
        // a stable order returns its rows in another order every round):
        // - the keys of rounds whose mark statement changed no row. The department may have rewritten those rows
        //   since they were read (a version column in mark_keys then no longer matches): the next round reads
        //   their new content. A round of nothing but such keys again fails the poll.
        // - how often each key was marked. A mark statement that changes rows without taking them out of the
        //   query (it sets another column than the one the query filters on) returns them every round. A key may
        //   come back once (the department rewrote the row just marked and reset its flag); a round of nothing but
        //   keys marked twice fails the poll.
        var unmarkedSeen = Set<Int>()
        var timesMarked: [Int: Int] = [:]
        // Rows without a mark key that this poll journaled already (hashes of their values): every round reads
        // them again, and storing them once per poll keeps its counts true.
        var journaledUnmarkable = Set<Int>()
        while true {
            let cursor = try select.query([], rowArraySize: min(settings.fetchRows, settings.batchRows),
                                          maxColumnCharacters: settings.maxColumnChars, declaredTextSizes: declaredTextSizes)
            let reader = try RowSource(adapter: self, cursor: cursor, watermarkColumn: nil)
            let keyColumns = try settings.markKeys.map { key throws(ODBCAdapterError) -> Int in
                try columnIndex(of: key, "mark key \(key)", key: "odbc.mark_keys", in: cursor.columns.map(\.name))
            }
            var pending: [PreparedRow] = []
            var keys: [[ODBCParameter]] = []
            var unmarkable = 0
            let scratch = RowScratch()
            reading: while let block = try cursor.next() {
                let fetched = try ODBCReadJob.FetchedRows(block)
                for row in 0..<block.count {
                    ordinal += 1
                    var parameters: [ODBCParameter] = []
                    for key in keyColumns { parameters.append(try block.parameter(row: row, column: key)) }
                    // A NULL key part can never be flagged by the mark statement's `= ?`: the row is journaled (or
                    // quarantined) like the others, and reported instead of being sent to a mark that cannot match.
                    if let null = parameters.firstIndex(of: .null) {
                        unmarkable += 1
                        if report.markProblem == nil {
                            report.markProblem = "front table row \(ordinal) of the poll has no value in mark key \(settings.markKeys[null]), so mark_statement cannot flag it and every poll reads it again (it is journaled); give the row its key in the department's table (odbc.mark_keys)"
                        }
                        if journaledUnmarkable.insert(fetched.valueHash(row: row)).inserted {
                            pending.append(reader.prepare(fetched, row: row, ordinal: ordinal, scratch: scratch).row)
                        }
                    } else {
                        keys.append(parameters)
                        pending.append(reader.prepare(fetched, row: row, ordinal: ordinal, scratch: scratch).row)
                    }
                    // Unmarkable rows come back first in every round when the query orders them first: counting
                    // them toward batch_rows would keep the rows behind them from ever being read. They are
                    // journaled in batches of their own while the round reads on.
                    if keys.count >= settings.batchRows { break reading }
                    if pending.count >= settings.batchRows {
                        try commit(pending, report: &report) {}
                        pending.removeAll(keepingCapacity: true)
                    }
                }
            }
            cursor.close()
            guard !pending.isEmpty || !keys.isEmpty || unmarkable > 0 else { break }
            if !pending.isEmpty { try commit(pending, report: &report) {} }
            // Durable in the journal: now, and only now, mark the rows.
            try connection.setAutocommit(false)
            var changed = 0
            do {
                for parameters in keys { changed += max(0, try mark.execute(parameters)) }
                try connection.commit()
                try connection.setAutocommit(true)
            } catch {
                connection.rollback()
                try? connection.setAutocommit(true)
                throw error
            }
            report.marked += changed
            // Every round reads the unmarkable rows again: the count is the most one round saw, not their sum.
            report.unmarkable = max(report.unmarkable, unmarkable)
            // What the next round reads again is a row left unmarked, or one the department rewrote since its mark:
            // a new revision if it changed, not two source rows sharing a key. (Marked rows leave the table's
            // query, so two rows of one key are stored once each, not again at every poll.)
            repeatedKeys.forgetSeen()
            // Only unmarkable rows are left: they are reported, and another round would read just them again.
            if keys.isEmpty { break }
            let hashes = keys.map { $0.hashValue }
            if changed == 0 {
                if hashes.allSatisfy(unmarkedSeen.contains) {
                    throw ODBCAdapterError(adapter: name, cause: .configuration("mark_statement changed no row for \(keys.count) journaled row(s); the same rows would be read forever"),
                                           field: "odbc.mark_statement")
                }
                unmarkedSeen.formUnion(hashes)
                continue
            }
            if hashes.allSatisfy({ (timesMarked[$0] ?? 0) >= 2 }) {
                throw ODBCAdapterError(adapter: name, cause: .configuration("mark_statement changed \(changed) row(s) for the \(keys.count) it was given, but the query returns them again: it must set what the query filters on (a flag column = 0, say), or the same rows would be read forever"),
                                       field: "odbc.mark_statement")
            }
            for hash in hashes { timesMarked[hash, default: 0] += 1 }
            // Another round even when this one read to the end of the result: only a query that no longer returns
            // the rows just marked shows that the mark statement took them out. Normally it returns nothing (or
            // rows that arrived meanwhile) and the poll ends above; otherwise a round of keys marked twice fails
            // the poll.
        }
    }

    /// Snapshot with `deletes`: every batch of the poll, the deletions and the poll's key set in ONE journal
    /// transaction, so that a crash leaves all of them or none (the next poll then finds the same missing keys).
    /// Deletions are worked out only once the reader reached the end of the result: a read that fails half-way
    /// throws before, and the rollback leaves the journal as it was. The write turn is taken only when the first
    /// batch is ready, so the query's own execution does not hold up the other writers; the later batches of a
    /// multi-batch table are fetched while it is held (snapshots are meant for small tables).
    private func commitSnapshot(from channel: BatchChannel<ODBCBatch>, report: inout ODBCPollReport) throws {
        var next = try channel.take()
        var counts = IngestCounts()
        var produced = Set<SnapshotKey>()
        var hold = SnapshotHold()
        var complete = false
        let closing: SnapshotClosing
        try journal.begin()
        do {
            while let batch = next {
                try store(batch.rows, counts: &counts)
                for row in batch.rows {
                    for record in row.records { produced.insert(SnapshotKey(type: record.type, key: record.key)) }
                }
                hold.merge(batch.hold)
                if batch.isLast {
                    complete = true
                    break
                }
                next = try channel.take()
            }
            guard complete else {
                throw ODBCAdapterError(adapter: name, cause: .configuration("the snapshot read stopped before the end of the result; nothing was stored or withdrawn"))
            }
            closing = try journal.closeSnapshot(source: name, produced: produced, hold: hold,
                                                maxDeletePercent: settings.maxDeletePercent, origin: "odbc")
            try journal.commit()
        } catch {
            journal.rollback()
            throw error
        }
        report.counts += counts
        report.batches += 1
        report.deletes = true
        report.deleted = closing.deleted
        report.deletionsHeld = closing.held
        report.deletionsRefused = closing.refused
        report.deletionRefusal = closing.refusal
        if let refusal = closing.refusal { logger.error(refusal) }
        if closing.held > 0 {
            logger.warning("\(closing.held) key(s) missing from the snapshot are not withdrawn: quarantined rows of this poll may stand for them (see esgate quarantine list --source \(name))")
        }
        try afterCommit?(report.batches)
    }

    /// Stores prepared rows inside the caller's journal transaction.
    private func store(_ rows: [PreparedRow], counts: inout IngestCounts) throws {
        for var row in rows {
            if let item = row.quarantine, try journal.isQuarantined(source: name, raw: item.raw) {
                row.quarantine = nil  // the same row is already held: once is enough
                counts.alreadyQuarantined += 1
            }
            try journal.store(row, source: name, file: "odbc", counts: &counts) { [self] record in repeatedKeys.note(record) }
        }
    }

    /// Stores prepared rows (and `extra`, e.g. the watermark) in one journal transaction.
    private func commit(_ rows: [PreparedRow], report: inout ODBCPollReport, extra: () throws -> Void) throws {
        var counts = IngestCounts()
        try journal.begin()
        do {
            try store(rows, counts: &counts)
            try extra()
            try journal.commit()
        } catch {
            journal.rollback()
            throw error
        }
        report.counts += counts
        report.batches += 1
        try afterCommit?(report.batches)
    }
}

// MARK: - Sample (mapping test)

/// The first rows of an adapter's query as the mapping sees them: column names, values as text, NULL as "".
public struct ODBCSample: Sendable {
    public let header: [String]
    public let rows: [[String]]
}

extension ODBCAdapter {
    /// Reads the first `limit` rows of the adapter's `query` for `esgate mapping test`, on a connection of its
    /// own. Read-only on both sides: no journal is opened, so watermark, quarantine and health stay as they are,
    /// and no mark statement runs. The query itself runs inside a transaction that is rolled back, so even a
    /// SELECT with side effects (a function that writes) leaves the source unchanged. The query runs as written,
    /// without the incremental watermark bound or ordering: these are the rows the query yields, not the next
    /// rows a poll would take.
    ///
    /// Blocking: call it off Swift's cooperative pool.
    public static func sample(name: String, settings: ODBCSettings, rows limit: Int, file: String? = nil) throws(ODBCAdapterError) -> ODBCSample {
        let connection: ODBCConnection
        do {
            connection = try open(name: name, settings: settings)
        } catch {
            var located = error
            located.file = file
            throw located
        }
        defer { connection.close() }
        do {
            try connection.setAutocommit(false)
            defer { connection.rollback() }
            let statement = try connection.prepare(SQLText.statement(settings.query))
            // SQL_ATTR_MAX_ROWS 0 means "no limit": ask for one row when none is wanted, to learn the columns.
            // A few rows: text buffers of max_column_chars, whatever size the driver declares.
            let cursor = try statement.query([], rowArraySize: max(1, min(limit, settings.fetchRows)),
                                             maxColumnCharacters: settings.maxColumnChars, maxRows: max(1, limit),
                                             declaredTextSizes: false)
            defer { cursor.close() }
            let header = cursor.columns.map(\.name)
            var rows: [[String]] = []
            reading: while rows.count < limit, let block = try cursor.next() {
                for row in 0..<block.count {
                    guard rows.count < limit else { break reading }
                    rows.append(try (0..<header.count).map { column throws(ODBCError) in try block.text(row: row, column: column) ?? "" })
                }
            }
            return ODBCSample(header: header, rows: rows)
        } catch {
            throw ODBCAdapterError(adapter: name, cause: .database(error), field: field(of: error, settings: settings), file: file)
        }
    }
}

// MARK: - Rows

/// Rows prepared on the reading thread, with the highest watermark read up to and including them.
/// Finds record keys stored twice in one poll. Within a poll every source row is read once, so a key that gets
/// two new revisions comes from two rows with different content: the next poll stores both again, and so on for
/// ever, each revision sent upstream. Keys are kept as hashes, for the first `limit` new revisions of a poll
/// (enough for code tables and ordinary polls; a million-row pull neither grows its memory nor hashes every key).
struct RepeatedKeys {
    static let limit = 65_536
    private var seen = Set<Int>()
    private(set) var count = 0
    private var example: String?

    mutating func note(_ record: NormalizedRecord) {
        guard seen.count < Self.limit else { return }   // past the limit: no hashing at all on a long pull
        var hasher = Hasher()
        hasher.combine(record.type)
        hasher.combine(record.key)
        guard !seen.insert(hasher.finalize()).inserted else { return }
        count += 1
        if example == nil { example = "\(record.type) \(record.displayKey)" }
    }

    /// Forgets the keys seen so far (keeps what was found): the rows read next may legitimately be read again.
    mutating func forgetSeen() { seen.removeAll(keepingCapacity: true) }

    /// A front table's rows leave it once marked: there the later row replaced the earlier one's content once,
    /// where a query that returns both again stores and sends both at every poll.
    func problem(frontTable: Bool) -> String? {
        guard count > 0, let example else { return nil }
        let effect = frontTable ? "so the later row became the next revision of the earlier one's record, which the province no longer sees as it was"
                                : "so every poll stores and sends both again"
        return "\(count) record(s) stored twice under one key in this poll (e.g. \(example)): two source rows map to the same record key with different content, \(effect); make the mapping's key fields tell the rows apart, or the query return one row per key (mapping)"
    }
}

struct ODBCBatch: Sendable {
    var rows: [PreparedRow]
    var watermark: String?
    var isLast: Bool
    /// Snapshot with `deletes`: the keys this batch's quarantined rows may stand for.
    var hold = SnapshotHold()
    /// Incremental: rows so far (this batch and the earlier ones) whose watermark column was NULL or unreadable,
    /// and the first such value.
    var unreadableWatermarks = 0
    var unreadableExample: String?
}

/// The reading stage: fetch blocks, map and validate, hand over batches. Owns the cursor while it runs.
final class ODBCReadJob: @unchecked Sendable {
    let cursor: ODBCCursor
    let source: RowSource
    let channel: BatchChannel<ODBCBatch>
    let batchRows: Int
    let kind: WatermarkKind
    var best: Watermark?
    /// Timestamps: the latest value that can be "now" in any time zone (UTC + 14 h, + 1 h for clock skew), in
    /// the watermark's zone-less microseconds. A later value (a mistyped year, a planned date) would carry the
    /// watermark past every row written after it, so it does not move the watermark.
    let ceiling: Int64?
    let logger: Logger

    init(cursor: ODBCCursor, source: RowSource, channel: BatchChannel<ODBCBatch>, batchRows: Int, kind: WatermarkKind,
         saved: Watermark?, logger: Logger) {
        self.cursor = cursor
        self.source = source
        self.channel = channel
        self.batchRows = batchRows
        self.kind = kind
        self.best = saved
        ceiling = kind == .timestamp ? Int64(Date().timeIntervalSince1970 * 1_000_000) + 15 * 3_600_000_000 : nil
        self.logger = logger
    }

    /// One fetched block's rows as UTF-8, copied out of the cursor's bound buffers so that the next fetch can run
    /// while these rows are mapped: one buffer per block, not a String per value (a million rows of 16 columns
    /// were 16 million values to allocate on one thread and free on another).
    struct FetchedRows: Sendable {
        /// Every value of every row, row after row.
        var bytes: [UInt8] = []
        /// Where row `r` starts in `bytes` (`rowStarts[r] ..< rowStarts[r + 1]`).
        var rowStarts: [Int] = [0]
        /// Row `r`'s values: `ranges[r * columns + c]`, relative to the row's start. SQL NULL is an empty range
        /// with `nulls` set.
        var ranges: [Range<Int>] = []
        var nulls: [Bool] = []
        var columns = 0
        var isLast = false

        var count: Int { rowStarts.count - 1 }

        /// A hash of row `row`'s values (NULL told from empty), to recognize the same row read again.
        func valueHash(row: Int) -> Int {
            var hasher = Hasher()
            bytes.withUnsafeBufferPointer { all in
                hasher.combine(bytes: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: all[rowStarts[row]..<rowStarts[row + 1]])))
            }
            for column in 0..<columns {
                let index = row * columns + column
                hasher.combine(ranges[index].lowerBound)
                hasher.combine(nulls[index])
            }
            return hasher.finalize()
        }

        /// The heap the block holds, for the hand-over's memory bound (`bytes` grows by doubling: its capacity).
        var approximateBytes: Int {
            bytes.capacity + rowStarts.count * MemoryLayout<Int>.stride + ranges.count * MemoryLayout<Range<Int>>.stride
                + nulls.count
        }

        init() {}

        /// The block's values, copied out of the cursor's buffers.
        init(_ block: ODBCRowBlock) throws(ODBCError) {
            columns = block.columnCount
            rowStarts.reserveCapacity(block.count + 1)
            ranges.reserveCapacity(block.count * block.columnCount)
            nulls.reserveCapacity(block.count * block.columnCount)
            for row in 0..<block.count {
                let rowStart = bytes.count
                for column in 0..<block.columnCount {
                    let start = bytes.count
                    let present = try block.appendUTF8(row: row, column: column, to: &bytes)
                    ranges.append((start - rowStart)..<(bytes.count - rowStart))
                    nulls.append(!present)
                }
                rowStarts.append(bytes.count)
            }
        }
    }

    func run() {
        // The fetch runs on a thread of its own: the driver's work (socket reads, result parsing) and the UTF-16
        // conversion overlap the mapping and validation of the rows fetched before; blocks are handed over a
        // bounded channel. Up to 8 blocks, within 16 MB (values and their offsets), may wait: with room for 2, the
        // mapping stalled whenever the writer waited for its fsync. With the one-copy transcoding, ≈4% off the
        // pull (docs/benchmarks.md, ODBC analysis).
        let fetched = BatchChannel<FetchedRows>(capacity: 8, byteBudget: 16 << 20) { $0.approximateBytes }
        let stopFetching = startProducer(named: "esgate-odbc-fetch", channel: fetched) { [self] in
            do {
                while let block = try cursor.next() {
                    let rows = try FetchedRows(block)
                    fetched.releaseSpent()
                    guard fetched.put(rows) else { return }
                }
                var last = FetchedRows()
                last.isLast = true
                _ = fetched.put(last)
            } catch {
                fetched.fail(error)
            }
        }
        defer { stopFetching() }
        do {
            var rows: [PreparedRow] = []
            rows.reserveCapacity(batchRows)
            var hold = SnapshotHold()
            var ordinal = 0
            var unreadable = 0
            var unreadableExample: String?
            var warnedAhead = false
            let scratch = RowScratch()
            while let block = try fetched.take(), !block.isLast {
                defer { fetched.recycle(block) }
                for row in 0..<block.count {
                    ordinal += 1
                    let (prepared, mark, rowHold) = source.prepare(block, row: row, ordinal: ordinal, scratch: scratch)
                    if let rowHold { hold.merge(rowHold) }
                    if source.watermarkIndex != nil {
                        if let mark, let value = Watermark(parsing: mark, kind: kind) {
                            if let ceiling, value.value > ceiling {
                                if !warnedAhead {
                                    warnedAhead = true
                                    logger.warning("row \(ordinal): watermark '\(mark)' is later than now in any time zone; the row is ingested but does not move the watermark")
                                }
                            } else if best.map({ value > $0 }) ?? true {
                                best = value
                            }
                        } else {
                            unreadable += 1
                            if unreadable == 1 {
                                unreadableExample = mark ?? "NULL"
                                logger.warning("row \(ordinal): the watermark column is empty or not a value of watermark_type \(kind.rawValue) ('\(mark ?? "NULL")'); such rows do not move the watermark")
                            }
                        }
                    }
                    rows.append(prepared)
                    if rows.count >= batchRows {
                        channel.releaseSpent()
                        guard channel.put(ODBCBatch(rows: rows, watermark: best?.text, isLast: false, hold: hold,
                                                    unreadableWatermarks: unreadable, unreadableExample: unreadableExample)) else { return }
                        rows.removeAll(keepingCapacity: true)
                        hold = SnapshotHold()
                    }
                }
            }
            _ = channel.put(ODBCBatch(rows: rows, watermark: best?.text, isLast: true, hold: hold,
                                      unreadableWatermarks: unreadable, unreadableExample: unreadableExample))
        } catch {
            channel.fail(error)
        }
    }
}

/// Binds a result's columns to the mapping and turns fetched rows into prepared rows.
struct RowSource {
    let adapter: ODBCAdapter
    let header: [String]
    let preparer: RowPreparer
    let watermarkIndex: Int?
    /// Snapshot with `deletes`: whether quarantined rows are looked at for their keys, and the key-only mapping.
    let collectsHolds: Bool
    let keyMapping: BoundMapping?

    init(adapter: ODBCAdapter, cursor: ODBCCursor, watermarkColumn: String?) throws {
        self.adapter = adapter
        header = cursor.columns.map(\.name)
        try ODBCAdapter.checkColumns(of: adapter.plan, in: header, adapter: adapter.name)
        switch adapter.plan.bind(header: header) {
        case .success(let bound): preparer = RowPreparer(schema: adapter.schema, mapping: bound)
        case .failure(let error):
            throw ODBCAdapterError(adapter: adapter.name, cause: .configuration("the query's columns do not fit mapping \(adapter.plan.name): \(error.message)"),
                                   field: "mapping")
        }
        collectsHolds = adapter.settings.closesSnapshots && watermarkColumn == nil
        // The key-only plan reads a subset of the full plan's columns, so binding it cannot fail where the full
        // plan bound; should it anyway, quarantined rows fall back to holding back every deletion.
        if collectsHolds, let keyPlan = adapter.keyPlan, case .success(let bound) = keyPlan.bind(header: header) {
            keyMapping = bound
        } else {
            keyMapping = nil
        }
        if let watermarkColumn {
            watermarkIndex = try adapter.columnIndex(of: watermarkColumn, key: "odbc.watermark_column", in: header)
        } else {
            watermarkIndex = nil
        }
    }

    /// The prepared row, its watermark value and, for a quarantined row of a snapshot with `deletes`, the keys it
    /// may stand for. NULL reads as an empty string for the mapping.
    /// Row `row` of a fetched block, mapped on its UTF-8 bytes (the CSV reader's path: ordinary rows never become
    /// Strings); values become Strings only for the watermark and for a row that goes to quarantine.
    func prepare(_ block: ODBCReadJob.FetchedRows, row: Int, ordinal: Int, scratch: RowScratch)
        -> (row: PreparedRow, watermark: String?, hold: SnapshotHold?) {
        let first = row * block.columns
        return block.bytes.withUnsafeBufferPointer { all in
            block.ranges.withUnsafeBufferPointer { ranges in
                let fieldBytes = UnsafeBufferPointer(rebasing: all[block.rowStarts[row]..<block.rowStarts[row + 1]])
                let fieldRanges = UnsafeBufferPointer(rebasing: ranges[first..<(first + block.columns)])
                func value(_ column: Int) -> String? {
                    guard column < block.columns, !block.nulls[first + column] else { return nil }
                    return String(decoding: UnsafeBufferPointer(rebasing: fieldBytes[fieldRanges[column]]), as: UTF8.self)
                }
                func fields() -> [String] { (0..<header.count).map { value($0) ?? "" } }
                let header = self.header
                let source = adapter.name
                let prepared = preparer.prepare(fieldBytes: fieldBytes, fieldRanges: fieldRanges, line: ordinal, scratch: scratch) {
                    RowOrigin(source: source, origin: "odbc", line: ordinal, raw: Array(csvLine(fields()).utf8), encoding: "utf-8", header: header)
                }
                let watermark = watermarkIndex.flatMap { value($0) }
                let rowHold = prepared.quarantine == nil ? nil : hold(for: prepared, fields: fields())
                return (prepared, watermark, rowHold)
            }
        }
    }

    /// The keys a quarantined row may stand for. Records of the row that did validate are in the poll's keys
    /// anyway; for the others the key-only mapping tells the key unless a key field itself is what failed.
    private func hold(for prepared: PreparedRow, fields: [String]) -> SnapshotHold? {
        guard collectsHolds, let item = prepared.quarantine else { return nil }
        var hold = SnapshotHold()
        guard let keyMapping else {
            hold.allTypes = true
            return hold
        }
        let outcome = keyMapping.map(fields)
        for error in outcome.errors {
            // No route at all: not even the record type is known.
            if error.recordType.isEmpty { hold.allTypes = true } else { hold.types.insert(error.recordType) }
        }
        for draft in outcome.records {
            guard let recordType = adapter.schema.recordTypes[draft.type] else {
                hold.types.insert(draft.type)
                continue
            }
            // The journal key as `PUISchema.normalize` builds it.
            let key = recordType.keyFields.map { draft[$0] ?? "" }.joined(separator: "\u{1F}")
            hold.keys.insert(SnapshotKey(type: draft.type, key: key))
        }
        // A key value that maps but fails the schema: whatever key the row had before is unknown.
        if item.stage == .validate, adapter.schema.recordTypes[item.recordType]?.keyFields.contains(item.field) == true {
            hold.types.insert(item.recordType)
        }
        return hold
    }
}


// MARK: - Watermarks

/// A watermark value: a timestamp (microseconds since 1970, zone-less as the source stores it) or an integer.
struct Watermark: Comparable {
    let kind: WatermarkKind
    let value: Int64

    init(kind: WatermarkKind, value: Int64) {
        self.kind = kind
        self.value = value
    }

    init?(parsing text: String, kind: WatermarkKind) {
        self.kind = kind
        let trimmed = (text.first == " " || text.last == " ") ? text.trimmingCharacters(in: .whitespaces) : text
        switch kind {
        case .integer:
            // An id kept in a NUMERIC/DECIMAL column with a scale arrives with its zero fraction ('5.0000000000').
            var digits = Substring(trimmed)
            if let point = digits.firstIndex(of: "."), digits[digits.index(after: point)...].allSatisfy({ $0 == "0" }) {
                digits = digits[..<point]
            }
            guard let number = Int64(digits) else { return nil }
            value = number
        case .timestamp:
            guard let micros = Watermark.parseTimestamp(trimmed) else { return nil }
            value = micros
        }
    }

    static func < (a: Watermark, b: Watermark) -> Bool { a.value < b.value }

    /// Canonical text: `yyyy-MM-dd HH:mm:ss` (+ `.ffffff` when not whole seconds), or the integer.
    var text: String {
        switch kind {
        case .integer: return String(value)
        case .timestamp:
            let seconds = value >= 0 ? value / 1_000_000 : (value - 999_999) / 1_000_000
            let micros = value - seconds * 1_000_000
            let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
            let secondOfDay = seconds - days * 86_400
            let (y, m, d) = Watermark.civil(days)
            func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
            var text = "\(String(format: "%04lld", y))-\(two(m))-\(two(d)) \(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))"
            if micros != 0 { text += "." + String(format: "%06lld", micros) }
            return text
        }
    }

    var parameter: ODBCParameter {
        kind == .integer ? .integer(value) : .timestamp(text)
    }

    func lowered(lag: Duration, lagIds: Int64) -> Watermark {
        switch kind {
        case .integer: return Watermark(kind: kind, value: value - lagIds)
        case .timestamp:
            let (seconds, attoseconds) = lag.components
            return Watermark(kind: kind, value: value - seconds * 1_000_000 - attoseconds / 1_000_000_000_000)
        }
    }

    /// `yyyy-MM-dd`, `yyyy-MM-dd HH:mm[:ss[.f…]]` (also with `T`); a trailing zone is not accepted.
    static func parseTimestamp(_ text: String) -> Int64? {
        var text = text
        return text.withUTF8 { parseTimestamp(bytes: $0) }
    }

    static func parseTimestamp(bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= bytes.count else { return nil }
            var result: Int64 = 0
            for byte in bytes[range] {
                guard byte >= 48 && byte <= 57 else { return nil }
                result = result * 10 + Int64(byte - 48)
            }
            return result
        }
        guard bytes.count >= 10, bytes[4] == 45, bytes[7] == 45,
              let y = number(0..<4), let m = number(5..<7), let d = number(8..<10), (1...12).contains(m), (1...31).contains(d) else { return nil }
        var h: Int64 = 0, mi: Int64 = 0, s: Int64 = 0, micros: Int64 = 0
        if bytes.count > 10 {
            guard bytes[10] == 32 || bytes[10] == 84, bytes.count >= 16, bytes[13] == 58,
                  let hh = number(11..<13), let mm = number(14..<16), hh < 24, mm < 60 else { return nil }
            h = hh
            mi = mm
            if bytes.count > 16 {
                guard bytes[16] == 58, let ss = number(17..<19), ss < 61 else { return nil }
                s = ss
                if bytes.count > 19 {
                    guard bytes[19] == 46, bytes.count > 20 else { return nil }
                    var digits = 0
                    for byte in bytes[20..<bytes.count] {
                        guard byte >= 48 && byte <= 57 else { return nil }
                        if digits < 6 { micros = micros * 10 + Int64(byte - 48) }
                        digits += 1
                    }
                    for _ in digits..<max(digits, 6) { micros *= 10 }
                }
            }
        }
        let days = daysFromCivil(y, m, d)
        return ((days * 86_400) + h * 3600 + mi * 60 + s) * 1_000_000 + micros
    }

    static func daysFromCivil(_ year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        Int64(CivilCalendar.daysFromCivil(Int(year), Int(month), Int(day)))
    }

    static func civil(_ days: Int64) -> (Int64, Int64, Int64) {
        let date = CivilCalendar.civilFromDays(Int(days))
        return (Int64(date.year), Int64(date.month), Int64(date.day))
    }
}

extension ODBCSettings {
    /// Whether polls of this adapter withdraw the keys that left the source (snapshot with `deletes: true`).
    var closesSnapshots: Bool { mode == .snapshot && snapshotDeletes }
}
