import Foundation
import YAMLSupport

/// Log verbosity.
public enum LogLevel: String, Sendable, CaseIterable, Comparable {
    case debug, info, warning, error

    private var rank: Int {
        switch self {
        case .debug: return 0
        case .info: return 1
        case .warning: return 2
        case .error: return 3
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rank < b.rank }
}

/// `key_passphrase_file` names a file that cannot be read.
public struct UnreadablePassphraseFile: Error, CustomStringConvertible, Sendable {
    public let file: String
    public var description: String { "cannot read key_passphrase_file \(file)" }
}

/// An upstream receiver (province or city). Used by the uplink.
public struct ReceiverConfiguration: Sendable, Equatable {
    public var name: String
    public var url: String
    /// The receiver's division code, written into each package's Receiver.
    public var division: String
    public var caFile: String?
    public var certificateFile: String?
    public var keyFile: String?
    public var enabled: Bool
    /// Only these record types go to this receiver (`record_types`); empty: all.
    public var recordTypes: [String] = []
    /// The lines in gateway.yaml of the keys checked after loading, by whoever holds what they need:
    /// `record_types` (against the schema) and the keys that name files (`ca_file`, `cert_file`, `key_file`,
    /// `key_passphrase_file`; `config check`).
    public var keyLines: [String: Int] = [:]
    /// Allow `http://` (tests only; `insecure_plaintext`).
    public var insecurePlaintext: Bool = false
    /// File holding the client key's passphrase (`key_passphrase_file`), read when it is needed.
    public var keyPassphraseFile: String? = nil
    /// The passphrase as the environment variable named by `key_passphrase_env` held it at load time.
    public var keyPassphrase: String? = nil
    /// The name of that variable (`key_passphrase_env`).
    public var keyPassphraseEnv: String? = nil

    /// Where the passphrase comes from, as gateway.yaml says it ("key_passphrase_env XH_KEY_PASS"), for messages.
    public var passphraseSource: String? {
        if let file = keyPassphraseFile { return "key_passphrase_file \(file)" }
        return keyPassphraseEnv.map { "key_passphrase_env \($0)" }
    }

    /// The client key's passphrase: `key_passphrase_file`'s content without surrounding line breaks, or
    /// `key_passphrase_env`'s value; nil when neither is configured. Throws when the file cannot be read.
    public func clientKeyPassphrase() throws(UnreadablePassphraseFile) -> String? {
        guard let file = keyPassphraseFile else { return keyPassphrase }
        guard let data = FileManager.default.contents(atPath: file) else { throw UnreadablePassphraseFile(file: file) }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
    }
    /// TCP + TLS connect timeout (`connect_timeout`) and whole-request timeout (`timeout`).
    public var connectTimeout: Duration = .seconds(10)
    public var timeout: Duration = .seconds(60)
    /// Fetch GetReferenceData from this receiver (`reference_source`); when none is marked, the first enabled one.
    public var referenceSource: Bool = false
    /// Re-check every package with libxml2 (parse, XSD, C14N) before fixing it (`verify_packages`): records were
    /// validated at ingest already, so this is a diagnostic safety net that costs about a third of the push.
    public var verifyPackages: Bool = false
    /// The lowest PackageId number to use from now on (`first_package_number`): after the state directory was
    /// rebuilt or copied, its sequence starts again at 1 while the receiver remembers the numbers it has seen.
    public var firstPackageNumber: Int64? = nil

    public init(name: String, url: String, division: String, caFile: String? = nil, certificateFile: String? = nil,
                keyFile: String? = nil, enabled: Bool = true) {
        self.name = name
        self.url = url
        self.division = division
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.enabled = enabled
    }
}

/// gateway.yaml.
public struct GatewayConfiguration: Sendable {
    /// Where gateway.yaml lives; relative paths in it are relative to this folder.
    public var baseDirectory: String
    public var file: String
    /// The district's 6-digit division code (the PUI Sender).
    public var district: String
    public var stateDirectory: String
    public var adaptersDirectory: String
    public var mappingsDirectory: String
    public var referenceDataFile: String?
    /// The line of `reference_data` in gateway.yaml (0 when absent).
    public var referenceDataLine: Int = 0
    public var logLevel: LogLevel
    public var receivers: [ReceiverConfiguration]
    /// The supervision engine's switch and thresholds (`supervision:` in gateway.yaml).
    public var supervision = SupervisionConfiguration()
    /// Whether this gateway runs the supervision engine (rules, alerts, scores) after ingestion.
    public var supervisionEnabled: Bool { supervision.enabled }
    /// Uplink retry backoff: first delay (`retry_base`) and cap (`retry_cap`); reference data refresh period.
    public var retryBase: Duration = .seconds(1)
    public var retryCap: Duration = .seconds(300)
    public var referenceRefresh: Duration = .seconds(6 * 3600)

    public var journalPath: String { (stateDirectory as NSString).appendingPathComponent("journal.sqlite") }
}

/// Resolves `path` against `base` unless it is absolute.
public func resolvePath(_ path: String, relativeTo base: String) -> String {
    if path.hasPrefix("/") { return path }
    return ((base as NSString).appendingPathComponent(path) as NSString).standardizingPath
}

extension GatewayConfiguration {
    /// Reads gateway.yaml. Problems are appended to `errors`; nil when the file cannot be used at all.
    public static func load(file: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                            errors: inout [ConfigError]) -> GatewayConfiguration? {
        let diagnostics = ConfigDiagnostics(file: file, environment: environment)
        defer { errors += diagnostics.errors }
        guard let root = diagnostics.load() else { return nil }
        let base = ((file as NSString).deletingLastPathComponent as NSString).standardizingPath
        let isDivisionCode = { (code: String) in code.count == 6 && code.allSatisfy(\.isASCII) && code.allSatisfy(\.isNumber) }
        let district = root.string("district", required: true) ?? ""
        if !district.isEmpty && !isDivisionCode(district) {
            diagnostics.report(line: root.raw("district")?.mark.line ?? root.line, key: "district",
                               "must be a 6-digit division code (GB/T 2260), found '\(district)'")
        }
        let state = resolvePath(root.string("state_dir", default: "state"), relativeTo: base)
        let adapters = resolvePath(root.string("adapters_dir", default: "adapters"), relativeTo: base)
        let mappings = resolvePath(root.string("mappings_dir", default: "mappings"), relativeTo: base)
        let reference = root.string("reference_data").map { resolvePath($0, relativeTo: base) }
        let level = root.choice("log_level", LogLevel.allCases.map(\.rawValue)).flatMap(LogLevel.init) ?? .info
        let supervision = SupervisionConfiguration.read(root)
        var receivers: [ReceiverConfiguration] = []
        var receiverNames: [String: String] = [:]   // name → "receivers[i] (line n)"
        for section in root.sectionList("receivers") ?? [] {
            let name = section.string("name", required: true) ?? ""
            let nameLine = section.raw("name")?.mark.line ?? section.line
            if !name.isEmpty, let first = receiverNames[name] {
                section.diagnostics.report(line: nameLine, key: section.qualified("name"),
                                           "receiver name '\(name)' is also used by \(first): each receiver needs its own name (its cursor is uplink:<name>)")
            } else if !name.isEmpty {
                receiverNames[name] = "\(section.path) (line \(nameLine))"
            }
            let url = section.string("url", required: true) ?? ""
            if !url.isEmpty && !url.hasPrefix("https://") && !url.hasPrefix("http://") {
                section.diagnostics.report(line: section.raw("url")?.mark.line ?? section.line, key: section.qualified("url"),
                                           "must be an http(s) URL")
            }
            let division = section.string("division", required: true) ?? ""
            if !division.isEmpty && !isDivisionCode(division) {
                section.diagnostics.report(line: section.raw("division")?.mark.line ?? section.line, key: section.qualified("division"),
                                           "must be the receiver's 6-digit division code (GB/T 2260, the PUI Receiver), found '\(division)'")
            }
            var receiver = ReceiverConfiguration(
                name: name, url: url, division: division,
                caFile: section.string("ca_file").map { resolvePath($0, relativeTo: base) },
                certificateFile: section.string("cert_file").map { resolvePath($0, relativeTo: base) },
                keyFile: section.string("key_file").map { resolvePath($0, relativeTo: base) },
                enabled: section.boolean("enabled") ?? true)
            receiver.recordTypes = section.stringList("record_types") ?? []
            receiver.insecurePlaintext = section.boolean("insecure_plaintext") ?? false
            if url.lowercased().hasPrefix("http://") && !receiver.insecurePlaintext {
                section.diagnostics.report(line: section.raw("url")?.mark.line ?? section.line, key: section.qualified("url"),
                                           "plain http:// is refused: use https://, or set insecure_plaintext: true (tests only)")
            }
            receiver.keyPassphraseFile = section.string("key_passphrase_file").map { resolvePath($0, relativeTo: base) }
            for key in ["record_types", "ca_file", "cert_file", "key_file", "key_passphrase_file"] {
                if let line = section.raw(key)?.mark.line { receiver.keyLines[key] = line }
            }
            if let variable = section.string("key_passphrase_env") {
                receiver.keyPassphraseEnv = variable
                let line = section.raw("key_passphrase_env")?.mark.line ?? section.line
                if receiver.keyPassphraseFile != nil {
                    section.diagnostics.report(line: line, key: section.qualified("key_passphrase_env"),
                                               "give key_passphrase_file or key_passphrase_env, not both")
                } else if let value = diagnostics.environment[variable], !value.isEmpty {
                    receiver.keyPassphrase = value
                } else {
                    section.diagnostics.report(line: line, key: section.qualified("key_passphrase_env"),
                                               "environment variable \(variable) (passphrase of \(receiver.keyFile ?? "the client key")) is not set")
                }
            }
            receiver.connectTimeout = section.duration("connect_timeout") ?? .seconds(10)
            receiver.timeout = section.duration("timeout") ?? .seconds(60)
            receiver.referenceSource = section.boolean("reference_source") ?? false
            receiver.verifyPackages = section.boolean("verify_packages") ?? false
            // PUI's PackageId allows 1 to 18 digits.
            receiver.firstPackageNumber = section.integer("first_package_number", range: 1...999_999_999_999_999_999).map(Int64.init)
            receivers.append(receiver)
            section.rejectUnknownKeys()
        }
        let retryBase = root.duration("retry_base") ?? .seconds(1)
        let retryCap = root.duration("retry_cap") ?? .seconds(300)
        let referenceRefresh = root.duration("reference_refresh") ?? .seconds(6 * 3600)
        root.rejectUnknownKeys()
        var gateway = GatewayConfiguration(baseDirectory: base, file: file, district: district, stateDirectory: state,
                                           adaptersDirectory: adapters, mappingsDirectory: mappings,
                                           referenceDataFile: reference, logLevel: level, receivers: receivers,
                                           supervision: supervision,
                                           retryBase: retryBase, retryCap: retryCap, referenceRefresh: referenceRefresh)
        gateway.referenceDataLine = root.raw("reference_data")?.mark.line ?? 0
        return gateway
    }
}

/// How a CSV drop adapter decides that a file is complete.
public enum ReadyRule: String, Sendable, CaseIterable {
    /// Size and modification time unchanged for `settle_time`.
    case settle
    /// A marker `NAME.done` exists beside the file.
    case marker
    /// Writers rename finished files into the folder; any matching file is complete (temporary names are ignored).
    case rename
}

/// Encoding of a CSV drop.
public enum EncodingSetting: String, Sendable, CaseIterable {
    case gb18030
    case utf8 = "utf-8"
    /// UTF-8 if the file starts with a UTF-8 BOM or its first 64 KiB are valid UTF-8; GB18030 otherwise.
    case auto
}

public struct CSVDropSettings: Sendable {
    public var folder: String
    public var pattern: String
    public var pollInterval: Duration
    public var ready: ReadyRule
    public var settleTime: Duration
    public var encoding: EncodingSetting
    public var delimiter: UInt8
    public var archiveFolder: String
    public var rejectedFolder: String
    public var batchRows: Int
    /// The line the header starts on: the lines above it (an export's title) are skipped.
    public var headerLine: Int = 1
}

/// How an ODBC adapter reads its query.
public enum ODBCPullMode: String, Sendable, CaseIterable {
    /// Rows at or above the saved watermark minus the lag window, ordered by the watermark column.
    case incremental
    /// A staging table (前置机): read unmarked rows, journal them, then run the mark statement for each.
    case frontTable = "front-table"
    /// The whole result every poll (code tables, camera inventories); unchanged rows are no-ops.
    case snapshot
}

/// What the watermark column holds.
public enum WatermarkKind: String, Sendable, CaseIterable {
    case timestamp
    case integer
}

/// The `odbc:` section of an adapter file.
public struct ODBCSettings: Sendable {
    /// Full ODBC connection string (`Driver={PostgreSQL Unicode};Server=…` or `DSN=…`), `${ENV}` substituted.
    public var connection: String
    /// When set, the trimmed content of this file is appended as `PWD={…}` (the password stays out of YAML).
    public var passwordFile: String?
    /// The line of `password_file` in the adapter file (`config check`).
    public var passwordFileLine = 0
    public var query: String
    public var mode: ODBCPullMode
    /// Incremental: the result column holding the watermark, and what it holds.
    public var watermarkColumn: String?
    public var watermarkKind: WatermarkKind
    /// Extra ORDER BY columns after the watermark (a stable order for rows sharing one timestamp).
    public var orderBy: [String]
    /// Incremental: how far below the saved watermark each poll starts reading (late-committing transactions).
    public var lag: Duration
    /// The same for integer watermarks (ids allocated before a late commit).
    public var lagIds: Int
    /// Where the first poll starts (nil: from the beginning).
    public var initialWatermark: String?
    /// Front-table: the statement run for each journaled row, with `?` bound to `mark_keys` in order.
    public var markStatement: String?
    public var markKeys: [String]
    /// Quote character for identifiers the adapter writes into SQL: `auto` (the driver's SQL_IDENTIFIER_QUOTE_CHAR),
    /// `"`, `` ` `` (MariaDB without ANSI_QUOTES) or `[`.
    public var identifierQuote: String
    public var pollInterval: Duration
    /// Rows per journal transaction (and per front-table round).
    public var batchRows: Int
    /// Rows per driver fetch (SQL_ATTR_ROW_ARRAY_SIZE).
    public var fetchRows: Int
    /// Longest text value accepted per column (UTF-16 buffer width).
    public var maxColumnChars: Int
    public var loginTimeout: Duration
    public var queryTimeout: Duration
    /// Upper bound of the back-off between failed polls.
    public var retryCap: Duration

    /// The wait before the next poll after `failures` failed polls in a row: the poll interval, doubled per
    /// failure after the first, at most `retryCap` (`esgate run`'s loop; `adapter status` says when it is due).
    public func pollDelay(afterFailures failures: Int) -> Duration {
        guard failures > 0 else { return pollInterval }
        return min(pollInterval * (1 << min(failures - 1, 16)), retryCap)
    }
    /// Snapshot: withdraw (`op="delete"`) the record keys the previous complete snapshot produced and this one
    /// did not (`deletes`).
    public var snapshotDeletes: Bool
    /// Snapshot deletes: the largest share of the previous snapshot's keys one poll may withdraw, in percent
    /// (`max_delete_percent`); above it the poll withdraws nothing and reports an error.
    public var maxDeletePercent: Int

    public init(connection: String, query: String, mode: ODBCPullMode) {
        self.connection = connection
        self.query = query
        self.mode = mode
        passwordFile = nil
        watermarkColumn = nil
        watermarkKind = .timestamp
        orderBy = []
        lag = .seconds(0)
        lagIds = 0
        initialWatermark = nil
        markStatement = nil
        markKeys = []
        identifierQuote = "auto"
        pollInterval = .seconds(30)
        batchRows = 1000
        fetchRows = 1000
        maxColumnChars = 4000
        loginTimeout = .seconds(15)
        queryTimeout = .seconds(0)
        retryCap = .seconds(300)
        snapshotDeletes = false
        maxDeletePercent = 50
    }
}

/// One file in adapters/.
public struct AdapterConfiguration: Sendable {
    public var file: String
    public var name: String
    public var kind: String
    public var mapping: String
    public var enabled: Bool
    public var csv: CSVDropSettings?
    public var soap: SOAPSettings?
    public var odbc: ODBCSettings? = nil

    public static let kinds = ["csv-drop", "soap", "odbc"]

    /// How often `esgate run` polls this adapter.
    public var pollInterval: Duration { csv?.pollInterval ?? odbc?.pollInterval ?? soap?.pollInterval ?? .seconds(5) }
}

extension AdapterConfiguration {
    public static func load(file: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                            errors: inout [ConfigError]) -> AdapterConfiguration? {
        let diagnostics = ConfigDiagnostics(file: file, environment: environment)
        defer { errors += diagnostics.errors }
        guard let root = diagnostics.load() else { return nil }
        let base = (file as NSString).deletingLastPathComponent
        let fallbackName = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        let name = root.string("name") ?? fallbackName
        let kind = root.choice("kind", kinds, required: true) ?? ""
        let mapping = root.string("mapping", required: true) ?? ""
        let enabled = root.boolean("enabled") ?? true
        var csv: CSVDropSettings?
        if kind == "csv-drop" || root.has("csv") {
            if let section = root.section("csv", required: kind == "csv-drop") {
                let folder = resolvePath(section.string("folder", required: true) ?? "", relativeTo: base)
                let delimiterText = section.string("delimiter", default: ",")
                if delimiterText.utf8.count != 1 {
                    section.diagnostics.report(line: section.raw("delimiter")?.mark.line ?? section.line,
                                               key: section.qualified("delimiter"), "must be a single ASCII character")
                }
                csv = CSVDropSettings(
                    folder: folder,
                    pattern: section.string("pattern", default: "*.csv"),
                    pollInterval: section.duration("poll_interval") ?? .seconds(5),
                    ready: section.choice("ready", ReadyRule.allCases.map(\.rawValue)).flatMap(ReadyRule.init) ?? .settle,
                    settleTime: section.duration("settle_time") ?? .seconds(10),
                    encoding: section.choice("encoding", EncodingSetting.allCases.map(\.rawValue)).flatMap(EncodingSetting.init) ?? .auto,
                    delimiter: delimiterText.utf8.first ?? 44,
                    archiveFolder: section.string("archive_folder").map { resolvePath($0, relativeTo: base) }
                        ?? (folder as NSString).appendingPathComponent("archive"),
                    rejectedFolder: section.string("rejected_folder").map { resolvePath($0, relativeTo: base) }
                        ?? (folder as NSString).appendingPathComponent("rejected"),
                    batchRows: section.integer("batch_rows", range: 1...1_000_000) ?? 10_000,
                    headerLine: section.integer("header_line", range: 1...1000) ?? 1)
                section.rejectUnknownKeys()
            }
        }
        var odbc: ODBCSettings?
        if kind == "odbc" || root.has("odbc") {
            if let section = root.section("odbc", required: kind == "odbc") {
                odbc = loadODBC(section, base: base)
            }
        }
        var soap: SOAPSettings?
        if kind == "soap" || root.has("soap") {
            if let section = root.section("soap", required: kind == "soap") {
                soap = SOAPSettings.load(section, base: base)
            }
        }
        root.rejectUnknownKeys()
        return AdapterConfiguration(file: file, name: name, kind: kind, mapping: mapping, enabled: enabled, csv: csv,
                                    soap: soap, odbc: odbc)
    }

    static func loadODBC(_ section: ConfigSection, base: String) -> ODBCSettings {
        func report(_ key: String, _ message: String) {
            section.diagnostics.report(line: section.raw(key)?.mark.line ?? section.line, key: section.qualified(key), message)
        }
        // A mode or watermark type missing or misspelt is reported once, and the checks that depend on it are
        // left out: errors about the keys of a mode the file never chose would only mislead.
        let chosenMode = section.choice("mode", ODBCPullMode.allCases.map(\.rawValue), required: true).flatMap(ODBCPullMode.init)
        let mode = chosenMode ?? .snapshot
        var settings = ODBCSettings(connection: section.string("connection", required: true) ?? "",
                                    query: section.string("query", required: true) ?? "", mode: mode)
        settings.passwordFile = section.string("password_file").map { resolvePath($0, relativeTo: base) }
        settings.passwordFileLine = section.raw("password_file")?.mark.line ?? 0
        settings.watermarkColumn = section.string("watermark_column")
        let chosenKind = section.choice("watermark_type", WatermarkKind.allCases.map(\.rawValue)).flatMap(WatermarkKind.init)
        let kindKnown = chosenKind != nil || !section.has("watermark_type")
        settings.watermarkKind = chosenKind ?? .timestamp
        settings.orderBy = section.stringList("order_by") ?? []
        settings.lag = section.duration("lag") ?? .seconds(0)
        settings.lagIds = section.integer("lag_ids", range: 0...Int(Int32.max)) ?? 0
        settings.initialWatermark = section.string("initial_watermark")
        settings.markStatement = section.string("mark_statement")
        settings.markKeys = section.stringList("mark_keys") ?? []
        settings.identifierQuote = section.string("identifier_quote", default: "auto")
        settings.pollInterval = section.duration("poll_interval") ?? .seconds(30)
        settings.batchRows = section.integer("batch_rows", range: 1...1_000_000) ?? 1000
        settings.fetchRows = section.integer("fetch_rows", range: 1...100_000) ?? 1000
        settings.maxColumnChars = section.integer("max_column_chars", range: 1...1_000_000) ?? 4000
        settings.loginTimeout = section.duration("login_timeout") ?? .seconds(15)
        settings.queryTimeout = section.duration("query_timeout") ?? .seconds(0)
        settings.retryCap = section.duration("retry_cap") ?? .seconds(300)
        settings.snapshotDeletes = section.boolean("deletes") ?? false
        settings.maxDeletePercent = section.integer("max_delete_percent", range: 0...100) ?? 50
        // The adapter binds no value to the query (incremental binds its own bound after it): a marker there
        // fails every poll with the driver's 07002 'COUNT field incorrect' or a syntax error.
        if let marker = SQLText.parameterMarkers(settings.query).first {
            report("query", "has a parameter marker \(marker) outside quotes and comments, but esgate binds no value to the query: write the value into it")
        }
        if !["auto", "\"", "`", "["].contains(settings.identifierQuote) { report("identifier_quote", "must be auto, \", ` or [") }
        if chosenMode != nil {
            switch mode {
            case .incremental:
                if settings.watermarkColumn == nil { report("watermark_column", "required for mode incremental") }
                // The watermark bound applies outside the query: a limited query returns the same first rows on every
                // poll, and rows after them are never read while the adapter looks healthy.
                if let limit = SQLText.rowLimit(settings.query) {
                    report("query", "\(limit) limits the rows of the whole query, but mode incremental applies its watermark bound around the query: every poll would get the same first rows and never the newer ones; remove it (batch_rows and fetch_rows bound the memory)")
                }
                // Each lag is read for one kind of watermark only: the other would do nothing, and late rows be missed.
                if kindKnown && settings.watermarkKind == .integer && section.has("lag") {
                    report("lag", "applies to watermark_type timestamp; an integer watermark takes its window in ids: lag_ids")
                }
                if kindKnown && settings.watermarkKind == .timestamp && section.has("lag_ids") {
                    report("lag_ids", "applies to watermark_type integer; a timestamp watermark takes its window as a duration: lag")
                }
            case .frontTable:
                if settings.markStatement == nil { report("mark_statement", "required for mode front-table (e.g. UPDATE T SET REC_FLAG = 1 WHERE ID = ?)") }
                if settings.markKeys.isEmpty { report("mark_keys", "required for mode front-table: the columns bound to the mark statement's ?") }
                let placeholders = SQLText.parameterMarkers(settings.markStatement ?? "").filter { $0 == "?" }.count
                if settings.markStatement != nil, !settings.markKeys.isEmpty, placeholders != settings.markKeys.count {
                    report("mark_keys", "\(settings.markKeys.count) key column(s) for \(placeholders) ? in mark_statement")
                }
            case .snapshot:
                if section.has("max_delete_percent") && !settings.snapshotDeletes {
                    report("max_delete_percent", "applies only with deletes: true")
                }
            }
            if mode != .snapshot && settings.snapshotDeletes {
                // Only a snapshot sees the whole table, so only a snapshot can tell a removed row from an unread one.
                report("deletes", "applies only to mode snapshot: a \(mode.rawValue) poll does not read the whole table, so it cannot tell a removed row from one it did not read")
            }
            if mode != .snapshot && section.has("max_delete_percent") {
                report("max_delete_percent", "applies only to mode snapshot with deletes: true")
            }
            if mode != .incremental {
                for key in ["watermark_column", "watermark_type", "lag", "lag_ids", "order_by", "initial_watermark"] where section.has(key) {
                    report(key, "applies only to mode incremental")
                }
            }
        }
        section.rejectUnknownKeys()
        return settings
    }
}

/// Lists the YAML files of a folder, sorted, so that errors come out in a stable order.
public func yamlFiles(in folder: String) -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        .map { (folder as NSString).appendingPathComponent($0) }
}

/// `supervision:` in gateway.yaml: `true`/`false`, or a mapping of the thresholds the spec lets a district
/// configure (pui-v1.md section 6, values in brackets). Plain values: the Supervision module maps them to its settings.
public struct SupervisionConfiguration: Sendable, Equatable {
    public var enabled = true
    public var lateReportHours = 24
    public var penaltyPromptDays = 10
    public var defaultPenaltyDecisionDays = 90
    public var badRatingResponseWorkingDays = 15
    public var complaintAcceptanceWorkingDays = 5
    public var cameraOfflineMinutes = 30
    /// Supervised hours for SP01, minutes after midnight.
    public var supervisedFromMinute = 8 * 60 + 30
    public var supervisedUntilMinute = 17 * 60 + 30
    public var responseWorkingDays = 3
    /// Rule codes switched off, e.g. ["SP01", "SP02"] where no video system is linked yet.
    public var disabledRules: [String] = []

    public init() {}

    public static let ruleCodes = ["XK01", "XK02", "XK03", "XK04", "XK05", "XK06", "XK07", "XK08", "ZS01", "ZS02", "ZS03",
                                   "CF01", "CF02", "CF03", "CF04", "PJ01", "PJ02", "TS01", "TS02", "SP01", "SP02"]

    static func read(_ root: ConfigSection) -> SupervisionConfiguration {
        var config = SupervisionConfiguration()
        guard let node = root.raw("supervision") else { return config }
        if case .scalar = node {
            config.enabled = root.boolean("supervision") ?? true
            return config
        }
        guard let section = root.section("supervision") else { return config }
        config.enabled = section.boolean("enabled") ?? true
        config.lateReportHours = section.integer("late_report_hours", range: 1...8760) ?? config.lateReportHours
        config.penaltyPromptDays = section.integer("penalty_prompt_days", range: 0...365) ?? config.penaltyPromptDays
        config.defaultPenaltyDecisionDays = section.integer("penalty_decision_days", range: 1...3650) ?? config.defaultPenaltyDecisionDays
        config.badRatingResponseWorkingDays = section.integer("bad_rating_response_days", range: 1...365) ?? config.badRatingResponseWorkingDays
        config.complaintAcceptanceWorkingDays = section.integer("complaint_acceptance_days", range: 1...365) ?? config.complaintAcceptanceWorkingDays
        config.cameraOfflineMinutes = section.integer("camera_offline_minutes", range: 1...1440) ?? config.cameraOfflineMinutes
        config.responseWorkingDays = section.integer("response_days", range: 0...365) ?? config.responseWorkingDays
        if let hours = section.string("supervised_hours") {
            let parts = hours.split(separator: "-").map { $0.split(separator: ":").compactMap { Int($0) } }
            if parts.count == 2, parts.allSatisfy({ $0.count == 2 && $0[0] < 24 && $0[1] < 60 }),
               parts[0][0] * 60 + parts[0][1] < parts[1][0] * 60 + parts[1][1] {
                config.supervisedFromMinute = parts[0][0] * 60 + parts[0][1]
                config.supervisedUntilMinute = parts[1][0] * 60 + parts[1][1]
            } else {
                section.diagnostics.report(line: section.raw("supervised_hours")?.mark.line ?? section.line,
                                           key: section.qualified("supervised_hours"), "expected HH:MM-HH:MM, found '\(hours)'")
            }
        }
        if let rules = section.stringList("disabled_rules") {
            for rule in rules where !ruleCodes.contains(rule) {
                section.diagnostics.report(line: section.raw("disabled_rules")?.mark.line ?? section.line,
                                           key: section.qualified("disabled_rules"), "'\(rule)' is not a rule code (\(ruleCodes.joined(separator: ", ")))")
            }
            config.disabledRules = rules.filter { ruleCodes.contains($0) }
        }
        section.rejectUnknownKeys()
        return config
    }
}
