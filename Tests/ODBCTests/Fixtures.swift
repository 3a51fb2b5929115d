import Adapters
import CryptoSupport
import Foundation
import TestSupport
import GatewayConfig
import GatewayModel
import GatewayRuntime
import Journal
import ODBCSupport
import SQLiteSupport
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

struct FixtureError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

// MARK: - Processes

/// Runs a command to completion with output appended to `log` (or discarded). posix_spawn + waitpid rather than
/// Foundation's Process: Process learns of the exit through a descriptor the child inherits, so a command that
/// leaves a daemon behind (pg_ctl start) would never "exit"; and Swift Testing workers block SIGTERM/SIGINT,
/// which the spawned command should not inherit.
@discardableResult
func runCommand(_ arguments: [String], asPostgres: Bool = false, log: String? = nil, allowFailure: Bool = false) throws -> Int32 {
    var command = arguments
    if asPostgres && getuid() == 0 { command = ["/usr/sbin/runuser", "-u", "postgres", "--"] + command }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    let output = log ?? "/dev/null"
    if let log, !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    sigaddset(&defaults, SIGTERM)
    sigaddset(&defaults, SIGINT)
    sigaddset(&defaults, SIGPIPE)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, command[0], &actions, &attributes, argv, environ)
    guard rc == 0 else { throw FixtureError(message: "cannot start \(command[0]): errno \(rc)") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    if exitCode != 0 && !allowFailure {
        let tail = log.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }.map { String($0.suffix(1500)) } ?? ""
        throw FixtureError(message: "\(command.joined(separator: " ")) exited with \(exitCode)\n\(tail)")
    }
    return exitCode
}

/// A TCP port nobody listens on right now.
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0 else { return Int.random(in: 20_000...40_000) }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

// MARK: - PostgreSQL 15, started once for the whole test process

final class ServerRegistry: @unchecked Sendable {
    struct Entry {
        var stop: [String]
        var asPostgres: Bool
        /// A child to reap after the stop command (a server we spawned ourselves).
        var child: pid_t?
        var directory: String
    }
    private let lock = NSLock()
    private var entries: [Entry] = []
    static let shared = ServerRegistry()

    func add(_ entry: Entry) {
        lock.lock()
        if entries.isEmpty { atexit { ServerRegistry.shared.stopAll() } }
        entries.append(entry)
        lock.unlock()
    }

    /// Stops every server, waits for it, and removes its folder (at process exit).
    func stopAll() {
        lock.lock()
        let all = entries
        entries = []
        lock.unlock()
        for entry in all {
            _ = try? runCommand(entry.stop, asPostgres: entry.asPostgres, allowFailure: true)
            if let child = entry.child {
                var status: Int32 = 0
                while waitpid(child, &status, 0) < 0 && errno == EINTR {}
            }
            try? FileManager.default.removeItem(atPath: entry.directory)
        }
    }
}

/// A throwaway PostgreSQL cluster on 127.0.0.1 in a temporary folder (initdb + pg_ctl, as user postgres).
final class PostgresServer: Sendable {
    static let binaries: String? = {
        for version in ["15", "16", "17", "14", "13"] {
            let bin = "/usr/lib/postgresql/\(version)/bin"
            if FileManager.default.isExecutableFile(atPath: bin + "/initdb") { return bin }
        }
        return nil
    }()
    static let driverInstalled = FileManager.default.fileExists(atPath: "/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so")
    static let available = binaries != nil && driverInstalled
    static let skipReason: Comment = "PostgreSQL (initdb under /usr/lib/postgresql/*/bin) or psqlODBC (odbc-postgresql) is not installed"

    /// Started at first use, stopped when the test process exits.
    static let shared: Result<PostgresServer, FixtureError> = {
        do { return .success(try PostgresServer()) } catch let error as FixtureError { return .failure(error) } catch {
            return .failure(FixtureError(message: "\(error)"))
        }
    }()

    static func server() throws -> PostgresServer { try shared.get() }

    let directory: String
    let port: Int
    let bin: String

    private init() throws {
        guard let bin = PostgresServer.binaries else { throw FixtureError(message: "initdb not found") }
        self.bin = bin
        directory = NSTemporaryDirectory() + "esgate-pg-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0 { try runCommand(["/bin/chown", "-R", "postgres:postgres", directory]) }
        let log = directory + "/setup.log"
        if getuid() == 0 { try runCommand(["/bin/chown", "postgres:postgres", directory]) }
        try runCommand([bin + "/initdb", "-D", directory + "/data", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "-U", "postgres"],
                       asPostgres: true, log: getuid() == 0 ? nil : log)
        var lastError: Error?
        for _ in 0..<5 {
            let port = freePort()
            do {
                try runCommand([bin + "/pg_ctl", "-D", directory + "/data", "-o",
                                "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                                "-l", directory + "/pg.log", "-w", "-t", "60", "start"], asPostgres: true)
                self.port = port
                ServerRegistry.shared.add(.init(stop: [bin + "/pg_ctl", "-D", directory + "/data", "-m", "immediate", "-w", "stop"],
                                                asPostgres: true, child: nil, directory: directory))
                return
            } catch {
                lastError = error
            }
        }
        throw FixtureError(message: "cannot start PostgreSQL: \(lastError.map { "\($0)" } ?? "?")")
    }

    func connectionString(database: String, fetch: Int = 1000) -> String {
        "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=\(port);Database=\(database);Uid=postgres;Pwd=;UseDeclareFetch=1;Fetch=\(fetch)"
    }

    /// A fresh database per test (tests run in parallel).
    func createDatabase() throws -> String {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        let admin = try ODBCConnection(connectionString: connectionString(database: "postgres"))
        try admin.execute("CREATE DATABASE \(name) ENCODING 'UTF8' TEMPLATE template0")
        admin.close()
        return name
    }

    /// Restarts the server (connections drop), same port and data.
    func restart() throws {
        try runCommand([bin + "/pg_ctl", "-D", directory + "/data", "-m", "fast", "-w", "restart", "-o",
                        "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                        "-l", directory + "/pg.log"], asPostgres: true)
    }
}

// MARK: - A gateway installation per test

let sqliteDriver = "/usr/lib/x86_64-linux-gnu/odbc/libsqlite3odbc.so"
let sqliteDriverInstalled = FileManager.default.fileExists(atPath: sqliteDriver)

/// gateway.yaml + the shipped mappings + one ODBC adapter file, in a temporary folder.
final class ODBCWorkspace {
    let root: URL
    var journalPath: String { root.appendingPathComponent("state/journal.sqlite").path }
    var configPath: String { root.appendingPathComponent("gateway.yaml").path }

    init(adapter: String) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-odbc-\(UUID().uuidString)")
        let manager = FileManager.default
        try manager.createDirectory(at: root.appendingPathComponent("adapters"), withIntermediateDirectories: true)
        try manager.copyItem(at: repositoryRoot.appendingPathComponent("mappings"), to: root.appendingPathComponent("mappings"))
        try write("gateway.yaml", "district: \"410103\"\nstate_dir: state\nlog_level: error\nsupervision: false\n")
        try write("adapters/db.yaml", adapter)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func write(_ relative: String, _ text: String) throws {
        try Data(text.utf8).write(to: root.appendingPathComponent(relative))
    }

    func loaded() throws -> LoadedConfiguration {
        switch loadConfiguration(path: configPath, environment: ["DB_PASSWORD": "x"]) {
        case .success(let loaded): return loaded
        case .failure(let errors): throw errors
        }
    }

    /// A fresh adapter with its own journal connection (like a restarted process).
    func adapter() throws -> ODBCAdapter {
        let loaded = try loaded()
        guard let configuration = loaded.adapters.first, let settings = configuration.odbc,
              let plan = loaded.mappings[configuration.mapping] else { throw FixtureError(message: "no odbc adapter") }
        let journal = try Journal(path: journalPath, durable: false)
        return ODBCAdapter(name: configuration.name, settings: settings, plan: plan, schema: loaded.schema,
                           journal: journal, logger: .silent, mappingSpec: loaded.mappingSpecs[configuration.mapping],
                           file: configuration.file)
    }

    /// (type, key, rev, body) of every record from the adapter, in key order: count and digest.
    func journalDigest() throws -> (records: Int, digest: String) {
        try TestSupport.journalDigest(path: journalPath, source: "db")
    }

    func scalar(_ sql: String) throws -> Int64 {
        try journalScalar(path: journalPath, sql)
    }

    /// What a read-only command must leave as it was: records, watermarks, quarantine, adapter health.
    func stateSnapshot() throws -> [String] {
        let db = try openJournalForInspection(path: journalPath)
        var lines: [String] = []
        for sql in ["SELECT count(*), coalesce(max(seq), 0) FROM records",
                    "SELECT source, position, updated_at FROM source_offsets ORDER BY source",
                    "SELECT id, state, attempts FROM quarantine ORDER BY id",
                    "SELECT * FROM adapter_health ORDER BY adapter"] {
            for row in try db.query(sql) { lines.append(sql + " → " + row.map { $0.textValue ?? "NULL" }.joined(separator: "|")) }
        }
        return lines
    }

    func bodies(type: String) throws -> [String] {
        let db = try openJournalForInspection(path: journalPath)
        return try db.query("SELECT body FROM records WHERE type = ?1 ORDER BY key", [.text(type)]).compactMap { $0.first.map(storedBodyXML) }
    }
}

// MARK: - Source rows in the gen-cases format (mapping mappings/gen-cases.yaml)

/// The gen-cases export columns, as a department table would have them.
let caseColumns = ["办件编号", "事项编码", "事项名称", "部门编码", "部门名称", "申请人", "证件号码", "环节代码", "环节名称",
                   "办理人", "办理时间", "承诺时限", "法定时限", "收费金额", "备注"]

/// One "undertake" step row (one Step record per row; its key is the case number + step code).
func stepRow(_ n: Int, at time: String, handler: String = "梁秀林", note: String = "") -> [String] {
    let caseNo = "41010300620260105" + String(format: "%07d", n)
    return [caseNo, "XK0009", "建设工程规划许可", "410103006", "二七国税局", "史强丽", "410103195504044271", "02", "承办",
            handler, time, "15", "20", "", note]
}

/// CREATE TABLE for the case columns plus an id, a timestamp and a flag.
func createCaseTable(_ connection: ODBCConnection, name: String, timestampType: String = "TIMESTAMP", quote: String = "\"") throws {
    let columns = caseColumns.map { "\(quote)\($0)\(quote) VARCHAR(100)" }.joined(separator: ", ")
    try connection.execute("CREATE TABLE \(name) (id INTEGER PRIMARY KEY, updated_at \(timestampType) NOT NULL, rec_flag INTEGER NOT NULL DEFAULT 0, \(columns))")
}

func insertCase(_ connection: ODBCConnection, table: String, id: Int, updatedAt: String, row: [String], quote: String = "\"") throws {
    let names = caseColumns.map { "\(quote)\($0)\(quote)" }.joined(separator: ", ")
    let marks = Array(repeating: "?", count: caseColumns.count).joined(separator: ", ")
    try connection.execute("INSERT INTO \(table) (id, updated_at, \(names)) VALUES (?, ?, \(marks))",
                           [.integer(Int64(id)), .timestamp(updatedAt)] + row.map { .text($0) })
}

/// The case columns selected under their names, for adapter queries.
func caseSelect(_ table: String, quote: String = "\"", extra: String = "updated_at, id") -> String {
    "SELECT \(extra), " + caseColumns.map { "\(quote)\($0)\(quote)" }.joined(separator: ", ") + " FROM \(table)"
}

// MARK: - MariaDB, started once for the whole test process

/// Starts a command without waiting (a server in the foreground); returns its pid. Standard error goes to
/// `errorLog`, or with standard output to `log`.
func spawnDaemon(_ command: [String], log: String, errorLog: String? = nil) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    if let errorLog {
        posix_spawn_file_actions_addopen(&actions, 2, errorLog, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    } else {
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
    }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
    let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, command[0], &actions, &attributes, argv, environ)
    guard rc == 0 else { throw FixtureError(message: "cannot start \(command[0]): errno \(rc)") }
    return pid
}

/// A throwaway MariaDB server (character-set-server gbk) on 127.0.0.1 and a socket in a temporary folder.
final class MariaDBServer: Sendable {
    static let available = FileManager.default.isExecutableFile(atPath: "/usr/sbin/mariadbd")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/mariadb-install-db")
        && FileManager.default.fileExists(atPath: "/usr/lib/x86_64-linux-gnu/odbc/libmaodbc.so") && getuid() == 0
    static let skipReason: Comment = "MariaDB (mariadb-server), its ODBC driver (odbc-mariadb) or root is missing"

    static let shared: Result<MariaDBServer, FixtureError> = {
        do { return .success(try MariaDBServer()) } catch let error as FixtureError { return .failure(error) } catch {
            return .failure(FixtureError(message: "\(error)"))
        }
    }()

    static func server() throws -> MariaDBServer { try shared.get() }

    let directory: String
    let port: Int
    let pid: pid_t
    var socket: String { directory + "/mysqld.sock" }

    private init() throws {
        directory = NSTemporaryDirectory() + "esgate-maria-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try runCommand(["/bin/chown", "-R", "mysql:mysql", directory])
        let log = directory + "/setup.log"
        try runCommand(["/usr/bin/mariadb-install-db", "--user=mysql", "--datadir=\(directory)/data",
                        "--auth-root-authentication-method=socket", "--skip-test-db"], log: log)
        port = freePort()
        pid = try spawnDaemon(["/usr/sbin/mariadbd", "--no-defaults", "--user=mysql", "--datadir=\(directory)/data",
                               "--socket=\(directory)/mysqld.sock", "--port=\(port)", "--bind-address=127.0.0.1",
                               "--pid-file=\(directory)/mysqld.pid", "--character-set-server=gbk",
                               "--collation-server=gbk_chinese_ci", "--innodb-flush-log-at-trx-commit=2",
                               "--skip-log-bin"], log: directory + "/mariadb.log")
        ServerRegistry.shared.add(.init(stop: ["/bin/kill", "-TERM", "\(pid)"], asPostgres: false, child: pid, directory: directory))
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: directory + "/mysqld.sock") {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid || Date() > deadline {
                let tail = (try? String(contentsOfFile: directory + "/mariadb.log", encoding: .utf8)).map { String($0.suffix(1500)) } ?? ""
                throw FixtureError(message: "MariaDB did not start:\n\(tail)")
            }
            usleep(100_000)
        }
        let root = try ODBCConnection(connectionString: rootConnectionString(database: "mysql"))
        try root.execute("CREATE USER 'esgate'@'127.0.0.1' IDENTIFIED BY 'esgate-pw'")
        try root.execute("GRANT ALL ON *.* TO 'esgate'@'127.0.0.1'")
        root.close()
    }

    func rootConnectionString(database: String) -> String {
        "Driver={MariaDB Unicode};Socket=\(socket);Database=\(database);Uid=root"
    }

    func connectionString(database: String, password: String = "esgate-pw") -> String {
        "Driver={MariaDB Unicode};Server=127.0.0.1;Port=\(port);Database=\(database);Uid=esgate;Pwd=\(password)"
    }

    /// A fresh GBK database per test.
    func createDatabase() throws -> String {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        let root = try ODBCConnection(connectionString: rootConnectionString(database: "mysql"))
        try root.execute("CREATE DATABASE \(name) CHARACTER SET gbk COLLATE gbk_chinese_ci")
        root.close()
        return name
    }
}

// MARK: - The esgate executable

/// The esgate executable built by `swift build` (the Makefile builds it before the tests); ESGATE_BIN overrides.
func esgateBinary() throws -> String {
    if let path = ProcessInfo.processInfo.environment["ESGATE_BIN"] { return path }
    let candidate = repositoryRoot.appendingPathComponent(".build/debug/esgate").path
    guard FileManager.default.isExecutableFile(atPath: candidate) else {
        throw FixtureError(message: "\(candidate) not found: run `swift build` first (make test does)")
    }
    return candidate
}

/// A running `esgate` with its standard output and error in files. Spawned with posix_spawn so that the child
/// gets default signal handling (Swift Testing workers block SIGTERM/SIGINT), and waited for by polling with
/// Task.sleep, so no cooperative thread blocks while it runs.
final class EsgateProcess {
    let pid: pid_t
    let outPath: String
    let errPath: String
    private(set) var exitCode: Int32?

    init(_ arguments: [String]) throws {
        let base = NSTemporaryDirectory() + "esgate-run-\(UUID().uuidString)"
        outPath = base + ".out"
        errPath = base + ".err"
        pid = try spawnDaemon([try esgateBinary()] + arguments, log: outPath, errorLog: errPath)
    }

    deinit {
        if exitCode == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        try? FileManager.default.removeItem(atPath: outPath)
        try? FileManager.default.removeItem(atPath: errPath)
    }

    /// Reaps the process if it has ended (exit code, or 128 + signal).
    var isRunning: Bool {
        if exitCode != nil { return false }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return true }
        exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return false
    }

    func kill9() { if exitCode == nil { kill(pid, SIGKILL) } }

    /// Waits for the exit; SIGKILL after `timeout`.
    @discardableResult
    func wait(timeout: Duration = .seconds(120)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            if ContinuousClock.now > deadline { kill9() }
            try await Task.sleep(for: .milliseconds(10))
        }
        return exitCode ?? -1
    }

    var output: String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }
    var errorOutput: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }
}

/// Runs esgate to its end: exit code, standard output, standard error.
func esgate(_ arguments: [String]) async throws -> (code: Int32, out: String, err: String) {
    let process = try EsgateProcess(arguments)
    let code = try await process.wait()
    return (code, process.output, process.errorOutput)
}
