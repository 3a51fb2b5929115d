import Adapters
import Foundation
import GatewayConfig
import GatewayModel
import Journal
import Mapping
import SQLiteSupport
import TextSupport
import Uplink

public let esgateVersion = "0.1.0"

/// Exit codes: 0 ok, 1 failure, 2 usage.
public enum ExitCode: Int32, Sendable {
    case success = 0
    case failure = 1
    case usage = 2
}

private let configOption = OptionSpec.value("config", "file", "gateway.yaml to use (default: $ESGATE_CONFIG, else ./gateway.yaml).")
private let jsonOption = OptionSpec.flag("json", "Print machine-readable JSON.")

/// The command table: every command, its options and help, in one place.
public let commandTable: [CommandSpec] = [
    CommandSpec(path: ["run"], abstract: "Run the gateway: watch every adapter, ingest into the journal, supervise, and push to every receiver.",
                discussion: "With --once, process what is complete now (waiting for settling files), supervise, push until the journal is drained for every receiver or a receiver's next retry is more than --max-wait away, print a summary and exit: 1 when a source could not be read, a poll hit a problem adapter status counts as a failure (a watermark that cannot move, a NULL mark key, deletions held back), a file was rejected, the supervision pass failed or a receiver was left failing, else 0.",
                options: [configOption, .flag("once", "Process what is there, then exit."),
                          .value("max-wait", "seconds", "With --once: wait at most this long for one retry of a receiver (default 30)."), jsonOption]),
    CommandSpec(path: ["version"], abstract: "Print esgate's version.", options: [jsonOption]),
    CommandSpec(path: ["config", "check"], abstract: "Validate gateway.yaml, every adapter and every mapping; list all errors.",
                options: [configOption, jsonOption]),
    CommandSpec(path: ["mapping", "test"], abstract: "Map the first rows of a file or a database query and print the records or their errors.",
                discussion: "Nothing is written to the journal. Identity numbers are masked. Exit 1 if a row has errors. With --adapter naming a SOAP adapter, --file is a saved response of its service, read with the adapter's rules. With --adapter naming an ODBC adapter there is no --file: esgate connects with the adapter's settings and maps the first --rows rows of its query. That is read-only: the query runs in a transaction that is rolled back, and the journal, the watermark and front-table flags are left alone.",
                options: [configOption, .value("mapping", "name", "Mapping name (default: the adapter's mapping)."),
                          .value("adapter", "name", "Read the way this adapter reads its source: --file for CSV drop and SOAP, the adapter's query for ODBC."),
                          .value("file", "path", "CSV file, or a saved SOAP response with --adapter (not with an ODBC adapter)."),
                          .value("rows", "n", "Number of data rows to map (default 10)."),
                          .value("encoding", "encoding", "utf-8, gb18030 or auto (default: auto)."), jsonOption]),
    CommandSpec(path: ["gateway", "status"], abstract: "Overview: every adapter's health and every receiver's state (adapter status + uplink status).",
                discussion: "Exit 1 when an adapter's last poll failed, a receiver is failing, a receiver's certificate, key or key passphrase cannot work (see 'esgate certs check'), or the uplink's state cannot be read.",
                options: [configOption, jsonOption]),
    CommandSpec(path: ["status"], abstract: "Same as 'esgate gateway status'.", options: [configOption, jsonOption]),
    CommandSpec(path: ["adapter", "status"], abstract: "Show each adapter's health: last poll, rows read, last error and since when, position, lag, waiting files, quarantine.",
                options: [configOption, jsonOption]),
    CommandSpec(path: ["adapter", "reread"], abstract: "Poll an incremental ODBC adapter once from an earlier watermark, for rows that committed later than its lag.",
                discussion: "The poll reads from --from (or from the saved watermark less the lag, if that is lower): rows the journal has unchanged add nothing, new and changed ones are stored, and the watermark does not move back. Takes the state directory like 'run --once': stop a running 'esgate run' first. Exit 1 when the poll failed or found a problem, 2 for a usage error.",
                options: [configOption, .value("from", "watermark", "Where to read from: a time (2026-12-01 00:00:00) or an id, as watermark_type says (required)."), jsonOption],
                positionals: [(name: "adapter", help: "The incremental ODBC adapter's name.")]),
    CommandSpec(path: ["journal", "stats"], abstract: "Show what the journal holds: records by type, files, quarantine, cursors.",
                options: [configOption, jsonOption]),
    CommandSpec(path: ["journal", "list"], abstract: "List journaled records in journal order, with their XML.",
                discussion: "Bodies are stored in a compact form (see docs/journal.md); this prints them as PUI XML. Identity numbers are masked.",
                options: [configOption, .value("after", "seq", "Only records after this seq (default 0)."),
                          .value("type", "record-type", "Only records of this type (e.g. Step)."),
                          .value("limit", "n", "At most this many records (default 20)."), jsonOption]),
    CommandSpec(path: ["quarantine", "list"], abstract: "List quarantined rows with their source, line, field and reason.",
                discussion: "Open rows, oldest first. Identity numbers are masked. A database row's line is its position in the poll that read it (odbc:N), not an identifier: its key columns are shown instead. An unknown --source is a usage error (exit 2).",
                options: [configOption, .value("source", "adapter", "Only this adapter's rows."),
                          .flag("all", "Include closed rows (replayed, superseded, dropped)."),
                          .value("limit", "n", "At most this many rows (default 100)."), jsonOption]),
    CommandSpec(path: ["quarantine", "replay"], abstract: "Re-run quarantined rows through the current mappings.",
                discussion: "Rows that now map and validate are journaled and marked replayed, except their records whose key got newer content since they were quarantined (listed as superseded, not stored); a row all of whose records are superseded is closed as superseded; the others keep their new reason. Exit 1 if a row still fails or --id names nothing open; an unknown --source is a usage error (exit 2).",
                options: [configOption, .value("source", "adapter", "Only this adapter's rows."),
                          .value("id", "n[,n...]", "Only these quarantine entries (may be repeated)."), jsonOption]),
    CommandSpec(path: ["quarantine", "drop"], abstract: "Close quarantined rows that will never be replayed (kept for audit as 'dropped').",
                discussion: "For a row fixed at its source whose new version does not supersede it (e.g. its key changed), or a row that can never map. The entry stays, with its reason, in 'quarantine list --all'. Exit 1 if an id is not an open entry.",
                options: [configOption, .value("id", "n[,n...]", "These quarantine entries (may be repeated; required)."),
                          .value("reason", "text", "Why they are dropped (required; kept with the entry)."), jsonOption]),
] + monitoringCommandTable + uplinkCommandTable

private func topLevelHelp() -> String {
    var text = "OVERVIEW: esgate, the interface gateway of the district e-supervision system.\n\nUSAGE: esgate <command> [options]\n\nCOMMANDS:\n"
    for command in commandTable {
        text += "  " + command.path.joined(separator: " ").padding(toLength: 22, withPad: " ", startingAt: 0) + command.abstract + "\n"
    }
    text += "\nSee 'esgate <command> --help' for a command's options.\n"
    return text
}

/// Runs the command line; returns the process exit code.
public func runCommandLine(_ arguments: [String]) async -> Int32 {
    SQLiteDatabase.configureProcess()
    if arguments.isEmpty || arguments == ["--help"] || arguments == ["help"] {
        write(topLevelHelp())
        return arguments.isEmpty ? ExitCode.usage.rawValue : ExitCode.success.rawValue
    }
    if arguments == ["--version"] { write("esgate \(esgateVersion)"); return 0 }
    let match = commandTable.filter { arguments.starts(with: $0.path) }.max { $0.path.count < $1.path.count }
    guard let command = match else {
        let groups = commandTable.filter { $0.path.count > 1 && $0.path[0] == arguments[0] }
        if !groups.isEmpty {
            let rest = arguments.dropFirst().first
            if rest == nil || rest == "--help" {
                write("Subcommands of '\(arguments[0])':\n" + groups.map { "  esgate \($0.path.joined(separator: " "))  \($0.abstract)" }.joined(separator: "\n"))
                return rest == nil ? ExitCode.usage.rawValue : ExitCode.success.rawValue
            }
        }
        writeError("unknown command '\(arguments.joined(separator: " "))'. See 'esgate --help'.")
        return ExitCode.usage.rawValue
    }
    let options: ParsedOptions
    do {
        options = try command.parse(Array(arguments.dropFirst(command.path.count)))
    } catch {
        writeError("\(error.message)\nUsage: \(command.usage)")
        return ExitCode.usage.rawValue
    }
    if options.flag("help") {
        write(command.help)
        return ExitCode.success.rawValue
    }
    do {
        return try await execute(command.path, options)
    } catch let error as UsageError {
        writeError("\(error.message)\nUsage: \(command.usage)")
        return ExitCode.usage.rawValue
    } catch {
        writeError("\(error)")
        return ExitCode.failure.rawValue
    }
}

private func execute(_ path: [String], _ options: ParsedOptions) async throws -> Int32 {
    switch path {
    case ["version"]:
        if options.flag("json") { writeJSON(["name": "esgate", "version": esgateVersion]) } else { write("esgate \(esgateVersion)") }
        return 0

    case ["config", "check"]:
        let configPath = configurationPath(option: options.value("config"))
        // Files the gateway reads only when it needs them (certificates, keys, reference data) are checked here too:
        // `run` starts without them and names them when they are needed; `config check` is asked before that.
        let outcome = loadConfiguration(path: configPath).flatMap { loaded in
            let missing = referencedFileErrors(loaded.gateway, adapters: loaded.adapters)
            return missing.isEmpty ? .success(loaded) : .failure(ConfigErrors(missing))
        }
        switch outcome {
        case .success(let loaded):
            if options.flag("json") {
                writeJSON(ConfigCheckReport(ok: true, errors: [], adapters: loaded.adapters.map(\.name), mappings: loaded.mappings.keys.sorted()))
            } else {
                write("\(configPath): ok (\(loaded.adapters.count) adapter(s): \(loaded.adapters.map(\.name).joined(separator: ", ")); \(loaded.mappings.count) mapping(s): \(loaded.mappings.keys.sorted().joined(separator: ", ")))")
                // What a file check cannot see: a driver name, a password, a column of the query.
                if loaded.adapters.contains(where: { $0.odbc != nil || $0.soap != nil }) {
                    write("no source was contacted: `esgate mapping test --adapter NAME` tries a database's or service's connection, query and columns")
                }
            }
            return 0
        case .failure(let errors):
            if options.flag("json") {
                writeJSON(ConfigCheckReport(ok: false, errors: errors.errors.map(\.description), adapters: [], mappings: []))
            } else {
                write(errors.description)
                writeError("\(errors.errors.count) error(s) in the configuration")
            }
            return 1
        }

    case ["run"]:
        guard let loaded = loadOrReport(options) else { return 1 }
        guard lockStateDirectory(loaded, command: options.flag("once") ? "esgate run --once" : "esgate run") else { return 1 }
        let gateway = Gateway(configuration: loaded, logger: logger(for: loaded))
        if options.flag("once") {
            // Ingest, supervise, then push: alerts raised by this pass go out in the same run. Pushing while
            // ingesting was measured slower here (1M rows: 15.9 s against 12.4 s in turn): the uplink's commits and
            // the ingest's share one SQLite write lock and its fsyncs, and the ingest writer is the bottleneck.
            let maxWait = try seconds(options, "max-wait", default: 30)
            var summary = try gateway.runOnce()
            if loaded.gateway.supervisionEnabled {
                // GetReferenceData at start (PUI §4), as `uplink run --once` does: a gateway run from cron by `run
                // --once` alone would otherwise supervise without the province's calendar for ever.
                await refreshReference(referenceSource(loaded, logger: logger(for: loaded, component: "uplink")), loaded.gateway)
                // A supervision failure must not keep what was ingested from being pushed: noted, and the run fails.
                do { summary.supervision = try gateway.superviseOnce() } catch { summary.supervisionError = "\(error)" }
            }
            summary.uplink = await drainUplinkOnce(loaded, logger: logger(for: loaded), maxWait: .milliseconds(Int64(maxWait * 1000)))
            if options.flag("json") {
                writeJSON(summary)
            } else {
                for file in summary.files {
                    var line = "\(file.name): \(file.outcome.rawValue)"
                    if file.outcome == .ingested {
                        line += " \(file.counts.rows) rows (\(file.encoding ?? "?")), \(file.counts.stored) records stored, \(file.counts.unchanged) unchanged, \(file.counts.quarantined) quarantined, \(String(format: "%.1f", file.seconds)) s"
                        if file.counts.changedWithinFile > 0 {
                            line += "; warning: \(file.counts.changedWithinFile) record(s) replaced one from this same file (first: \(file.counts.firstChangedWithinFile ?? "?")): one key with two contents in one export"
                        }
                    }
                    if let reason = file.reason { line += ": \(Redaction.maskIdentityNumbers(in: reason))" }
                    write(line)
                }
                for name in summary.waiting { write("\(name): waiting (not complete yet)") }
                for source in summary.sources {
                    var line = "\(source.adapter): \(source.pages) call(s), \(source.counts.rows) records, \(source.counts.stored) stored, \(source.counts.unchanged) unchanged, \(source.counts.quarantined) quarantined"
                    if source.refusedPayloads > 0 { line += ", \(source.refusedPayloads) payload(s) refused" }
                    if let error = source.error { line += "; error: \(Redaction.maskIdentityNumbers(in: error))" }
                    write(line)
                }
                for poll in summary.polls { describe(poll).forEach(write) }
                for failure in summary.pollErrors { write(Redaction.maskIdentityNumbers(in: failure)) }
                let counts = summary.counts
                write("total: \(summary.files.count) file(s), \(counts.rows) rows, \(counts.stored) records stored, \(counts.unchanged) unchanged, \(counts.quarantined) rows quarantined")
                if let pass = summary.supervision { write(supervisionLine(pass)) }
                if let error = summary.supervisionError { write("supervision: error: \(Redaction.maskIdentityNumbers(in: error))") }
                for line in describe(summary.uplink) { write(Redaction.maskIdentityNumbers(in: line)) }
                if !summary.failures.isEmpty { write("failed: " + summary.failures.joined(separator: "; ")) }
            }
            return summary.failures.isEmpty ? ExitCode.success.rawValue : ExitCode.failure.rawValue
        }
        let uplink = startUplink(loaded, logger: logger(for: loaded))
        let task = Task { try await gateway.run() }
        let signals = installTerminationHandlers(logger: logger(for: loaded)) { task.cancel(); uplink.cancel() }
        _ = try? await task.value
        await uplink.value
        withExtendedLifetime(signals) {}
        return 0

    case ["adapter", "status"]:
        guard let loaded = loadOrReport(options, readOnly: true) else { return 1 }
        if let notice = loaded.staleConfigurationNotice() { writeError("warning: \(notice)") }
        let rows = try adapterStatusRows(loaded)
        let failing: Int32 = rows.contains { ($0.health?.consecutiveFailures ?? 0) > 0 } ? 1 : 0
        if options.flag("json") { writeJSON(rows); return failing }
        for row in rows { write(describe(row)) }
        return failing

    case ["adapter", "reread"]:
        guard let name = options.positional.first else { throw UsageError("the adapter's name is required") }
        guard let from = options.value("from") else { throw UsageError("--from <watermark> is required") }
        guard let loaded = loadOrReport(options) else { return 1 }
        let gateway = Gateway(configuration: loaded, logger: logger(for: loaded))
        let odbc: ODBCAdapter
        do {
            odbc = try gateway.rereadAdapter(named: name, from: from)
        } catch let error as RereadError {
            throw UsageError(error.message)
        }
        guard lockStateDirectory(loaded, command: "esgate adapter reread \(name)") else { return 1 }
        do {
            let poll = try await gateway.pollOnce(odbc)
            if options.flag("json") { writeJSON(poll) } else { describe(poll).forEach(write) }
            let problem = poll.deletionRefusal ?? poll.watermarkProblem ?? poll.keyProblem ?? poll.markProblem
            return problem == nil ? 0 : 1
        } catch {
            writeError(Redaction.maskIdentityNumbers(in: "\(error)"))
            return 1
        }

    case ["gateway", "status"], ["status"]:
        guard let loaded = loadOrReport(options, readOnly: true) else { return 1 }
        // The uplink's state failing to load (an unreadable key passphrase file, say) still shows the adapters.
        var uplink: StatusOutput?
        var uplinkError: String?
        if !loaded.gateway.receivers.isEmpty {
            do { uplink = try uplinkStatus(loaded) } catch { uplinkError = "\(error)" }
        }
        let overview = GatewayStatus(adapters: try adapterStatusRows(loaded), uplink: uplink, uplinkError: uplinkError,
                                     configurationNotice: loaded.staleConfigurationNotice())
        let failing = overview.adapters.contains { ($0.health?.consecutiveFailures ?? 0) > 0 } || uplinkError != nil
            || (overview.uplink?.failing ?? false)
        if options.flag("json") { writeJSON(overview); return failing ? 1 : 0 }
        var text = overview.configurationNotice.map { "warning: \($0)\n" } ?? ""
        text += "adapters:\n"
        text += overview.adapters.isEmpty ? "  none configured\n" : overview.adapters.map { describe($0) + "\n" }.joined()
        text += "receivers:\n"
        if let uplinkError { text += "  cannot read the uplink's state: \(uplinkError)\n" }
        text += overview.uplink.map { describe($0) } ?? (uplinkError == nil ? "  none configured\n" : "")
        write(Redaction.maskIdentityNumbers(in: text))
        return failing ? 1 : 0

    case ["journal", "stats"]:
        guard let loaded = loadOrReport(options, readOnly: true) else { return 1 }
        let stats = try Journal(path: loaded.gateway.journalPath).stats()
        if options.flag("json") { writeJSON(stats); return 0 }
        var text = "journal \(stats.path)\n  records: \(stats.records) (last seq \(stats.lastSeq))\n"
        for type in stats.types { text += "    \(type.type.padding(toLength: 18, withPad: " ", startingAt: 0)) \(type.records) revisions, \(type.keys) keys\n" }
        text += "  files:\n"
        for file in stats.files { text += "    \(file.state.padding(toLength: 18, withPad: " ", startingAt: 0)) \(file.files) files, \(file.rows) rows\n" }
        text += "  quarantine:\n"
        for q in stats.quarantine { text += "    \(q.source) \(q.stage) \(q.state): \(q.rows)\n" }
        text += "  cursors:\n"
        // A receiver with a record_types filter is not behind on records it never takes: its own lag is in
        // `uplink status`; this counts every record after the cursor.
        for c in stats.cursors { text += "    \(c.consumer): seq \(c.seq), \(c.lag) record(s) of any type after it\n" }
        write(text)
        return 0

    case ["journal", "list"]:
        guard let loaded = loadOrReport(options, readOnly: true) else { return 1 }
        let after = try options.integer("after", default: 0)
        let limit = try options.integer("limit", default: 20, minimum: 1)
        let types = options.value("type").map { [$0] }
        // One more than asked, to tell whether there are more.
        var entries = try Journal(path: loaded.gateway.journalPath).entries(after: Int64(after), limit: min(limit, Int.max - 1) + 1, types: types)
        let more = entries.count > limit
        if more { entries.removeLast() }
        let rows = entries.map {
            JournalListRow(seq: $0.seq, type: $0.type, key: $0.key, rev: $0.rev, op: $0.deleted ? "delete" : "upsert",
                           source: $0.source, origin: $0.origin, line: $0.line, ingestedAt: $0.ingestedAt, xml: $0.body)
        }
        if options.flag("json") { writeJSON(rows); return 0 }
        if rows.isEmpty { write("no records after seq \(after)"); return 0 }
        for row in rows {
            // Line 0: no source line (a snapshot's deletion, say). A database row's number is its place in the
            // result of the poll that read it, not an id: said so.
            let place = row.origin.map { origin in
                row.line <= 0 ? " \(origin)" : origin == "odbc" ? " (row \(row.line) of its poll)" : " \(origin):\(row.line)"
            } ?? ""
            write(Redaction.maskIdentityNumbers(in: "#\(row.seq) \(row.type) \(NormalizedRecord.displayKey(of: row.key)) rev \(row.rev)\(row.op == "delete" ? " (delete)" : "") from \(row.source)\(place)\n    \(row.xml)"))
        }
        if more, let last = rows.last {
            write("(the first \(limit) record(s); --after \(last.seq)\(types.map { " --type \($0[0])" } ?? "") for the next ones)")
        }
        return 0

    case ["quarantine", "list"]:
        guard let loaded = loadOrReport(options, readOnly: true) else { return 1 }
        let limit = try options.integer("limit", default: 100, minimum: 1)
        let journal = try Journal(path: loaded.gateway.journalPath)
        if let source = options.value("source"), let problem = try unknownQuarantineSource(source, loaded, journal) {
            throw UsageError(problem)
        }
        // One more than asked, to tell whether there are more.
        var entries = try journal.quarantined(source: options.value("source"), openOnly: !options.flag("all"), limit: min(limit, Int.max - 1) + 1)
        let more = entries.count > limit
        if more { entries.removeLast() }
        let rows = entries.map { entry -> QuarantineListRow in
            QuarantineListRow(id: entry.id, source: entry.item.source, file: entry.item.origin, line: entry.item.line,
                              stage: entry.item.stage.rawValue, recordType: entry.item.recordType, field: entry.item.field,
                              reason: Redaction.maskIdentityNumbers(in: entry.item.reason),
                              errors: entry.item.errors.map { Redaction.maskIdentityNumbers(in: $0) },
                              row: quarantinedRowText(entry.item), key: quarantinedRowKey(entry.item, loaded),
                              state: entry.state, attempts: entry.attempts,
                              closedReason: entry.closedReason.map { Redaction.maskIdentityNumbers(in: $0) })
        }
        if options.flag("json") { writeJSON(rows); return 0 }
        if rows.isEmpty { write("no quarantined rows"); return 0 }
        for row in rows {
            var text = "#\(row.id) [\(row.state)] \(row.source) \(row.file):\(row.line) \(row.stage): \(row.reason)\n"
            for error in row.errors.dropFirst() { text += "    also: \(error)\n" }
            if let key = row.key { text += "    key: \(key)\n" }
            text += "    row: \(row.row)"
            if let closed = row.closedReason { text += "\n    \(closed)" }
            write(text)
        }
        if more { write("(the first \(limit) rows; --limit N for more)") }
        return 0

    case ["quarantine", "replay"]:
        guard let loaded = loadOrReport(options) else { return 1 }
        let ids = try options.ids("id")
        let journal = try Journal(path: loaded.gateway.journalPath)
        if let source = options.value("source"), let problem = try unknownQuarantineSource(source, loaded, journal) {
            throw UsageError(problem)
        }
        if let ids, let problem = try notOpenQuarantineEntries(ids, journal) {
            writeError(problem)
            return 1
        }
        let report = try Gateway(configuration: loaded, logger: logger(for: loaded)).replayQuarantine(source: options.value("source"), ids: ids)
        if options.flag("json") { writeJSON(report) } else {
            write("replayed \(report.replayed) row(s): \(report.stored) records stored, \(report.unchanged) unchanged, \(report.supersededRecords.count) superseded by newer content (not stored); \(report.superseded) row(s) closed as superseded (every record newer in the journal); \(report.stillFailing) still failing")
            for line in report.supersededRows.prefix(50) { write("  \(line)") }
            for line in report.supersededRecords.prefix(50) { write("  \(line)") }
            for failure in report.failures.prefix(50) { write("  \(failure)") }
        }
        return report.stillFailing == 0 ? 0 : 1

    case ["quarantine", "drop"]:
        guard let loaded = loadOrReport(options) else { return 1 }
        guard let ids = try options.ids("id") else { throw UsageError("give --id <n[,n...]>") }
        guard let reason = options.value("reason")?.trimmingCharacters(in: .whitespacesAndNewlines), !reason.isEmpty else {
            throw UsageError("give --reason <text>: why the rows are dropped is kept with them")
        }
        let dropped = try Journal(path: loaded.gateway.journalPath).dropQuarantine(ids: ids, reason: reason)
        if options.flag("json") { writeJSON(["dropped": dropped.count]) } else { write("dropped \(dropped.count) quarantined row(s)") }
        // Named ids that were not open entries are a mistake the operator must see, not a quiet "0".
        let missed = ids.filter { !dropped.contains($0) }
        if !missed.isEmpty {
            writeError("\(missed.count) of the given id(s) are not open quarantine entries (\(missed.map { "#\($0)" }.joined(separator: ", "))): unknown, or already replayed, superseded or dropped (esgate quarantine list --all)")
            return 1
        }
        return 0

    case ["mapping", "test"]:
        guard let loaded = loadOrReport(options) else { return 1 }
        var adapter: AdapterConfiguration?
        if let adapterName = options.value("adapter") {
            guard let found = loaded.adapters.first(where: { $0.name == adapterName }) else {
                throw UsageError("no adapter named '\(adapterName)' (known: \(loaded.adapters.map(\.name).joined(separator: ", ")))")
            }
            adapter = found
        }
        guard let name = options.value("mapping") ?? adapter?.mapping else { throw UsageError("--mapping <name> (or --adapter <name>) is required") }
        let odbc = adapter?.odbc
        if let adapter, odbc != nil {
            for option in ["file", "encoding"] where options.value(option) != nil {
                throw UsageError("--\(option) does not apply to ODBC adapter '\(adapter.name)': its rows come from the adapter's query")
            }
        }
        let file = options.value("file")
        guard odbc != nil || file != nil else { throw UsageError("--file <path> is required") }
        let encoding = try options.value("encoding").map { text throws(UsageError) -> EncodingSetting in
            guard let value = EncodingSetting(rawValue: text) else { throw UsageError("--encoding must be utf-8, gb18030 or auto") }
            return value
        } ?? adapter?.csv?.encoding ?? .auto
        let rows = try options.integer("rows", default: 10)
        guard let plan = loaded.mappings[name] else {
            writeError("no mapping named '\(name)' (known: \(loaded.mappings.keys.sorted().joined(separator: ", ")))")
            return 1
        }
        let outcome: Result<[Gateway.MappingTestRow], MappingTestFailure>
        if let adapter, let odbc {
            outcome = await Gateway.testMapping(plan: plan, schema: loaded.schema, adapter: adapter.name, odbc: odbc, rows: rows,
                                                file: adapter.file)
                .mapError { MappingTestFailure(description: $0.description) }
        } else if let soap = adapter?.soap, let file {
            outcome = Gateway.testMapping(plan: plan, schema: loaded.schema, soap: soap, responseFile: file, rows: rows).mapError { MappingTestFailure(description: $0.description) }
        } else if let file {
            outcome = Gateway.testMapping(plan: plan, schema: loaded.schema, file: file, rows: rows, encoding: encoding,
                                          delimiter: adapter?.csv?.delimiter ?? 44, headerLine: adapter?.csv?.headerLine ?? 1).mapError { MappingTestFailure(description: $0.description) }
        } else {
            throw UsageError("--file <path> is required")
        }
        switch outcome {
        case .failure(let error):
            writeError(error.description)
            return 1
        case .success(let results):
            if options.flag("json") { writeJSON(results) } else {
                // A database row has no line in a file: number it within the query's result instead.
                let label = odbc == nil ? "line" : "row"
                for row in results {
                    write("\(label) \(row.line):")
                    for record in row.records { write("  ok    \(record)") }
                    for error in row.errors { write("  ERROR \(error)") }
                }
                let failed = results.filter { !$0.errors.isEmpty }.count
                write("\(results.count) row(s) read, \(results.reduce(0) { $0 + $1.records.count }) record(s), \(failed) row(s) with errors")
            }
            return results.contains { !$0.errors.isEmpty } ? 1 : 0
        }

    default:
        if let code = try executeMonitoringCommand(path, options) { return code }
        if let code = try await executeUplinkCommand(path, options) { return code }
        throw UsageError("command not implemented")
    }
}

/// A quarantined row as `quarantine list` shows it, identity numbers masked: its fields, or for bytes that do not
/// decode (or do not split) the text as far as it decodes, undecodable bytes as `\xNN`. Long rows are cut after
/// masking, so that a cut never leaves part of a number unmasked.
func quarantinedRowText(_ item: QuarantineItem) -> String {
    let text: String
    switch CSVRowDecoding.fields(raw: item.raw, encoding: item.encoding) {
    case .success(let fields): text = Redaction.maskIdentityNumbers(in: fields.joined(separator: ","))
    case .failure: text = Redaction.maskedLossyText(item.raw, encoding: TextEncoding(label: item.encoding) ?? .utf8)
    }
    return text.count > 400 ? String(text.prefix(400)) + "…" : text
}

/// The row's key columns and values (`办件编号=…, 环节代码=02`), masked: the columns that feed the key fields of
/// the failing record's type (of every record of the mapping when no route applied). A database row's line is
/// only its position in the poll (`odbc:2`); these tell which row it is. nil when the row does not decode or
/// its mapping is gone.
func quarantinedRowKey(_ item: QuarantineItem, _ loaded: LoadedConfiguration) -> String? {
    guard let spec = loaded.mappingSpecs[item.mapping],
          case .success(let fields) = CSVRowDecoding.fields(raw: item.raw, encoding: item.encoding) else { return nil }
    let records = spec.records.contains { $0.type == item.recordType } ? spec.records.filter { $0.type == item.recordType } : spec.records
    var columns: [String] = []
    for record in records {
        let keyFields = loaded.schema.recordTypes[record.type]?.keyFields ?? []
        for field in record.fields where keyFields.contains(field.path) {
            if let column = field.column, !columns.contains(column) { columns.append(column) }
        }
    }
    let pairs = columns.compactMap { column -> String? in
        guard let index = item.header.firstIndex(where: { MappingPlan.headerName($0) == column }),
              index < fields.count else { return nil }
        return "\(column)=\(fields[index])"
    }
    return pairs.isEmpty ? nil : Redaction.maskIdentityNumbers(in: pairs.joined(separator: ", "))
}

/// Each configured adapter with its health as the journal keeps it (`adapter status`, `status`).
func adapterStatusRows(_ loaded: LoadedConfiguration) throws -> [AdapterStatusRow] {
    let journal = try Journal(path: loaded.gateway.journalPath)
    let health = Dictionary(uniqueKeysWithValues: try journal.adapterHealth().map { ($0.adapter, $0) })
    let open = try journal.quarantined(openOnly: true, limit: Int.max)
    // Polls are due only while `esgate run` runs: after `run --once`, with none started, or with only the uplink
    // (`uplink run` holds the same lock), nothing is late.
    let running = RunningGateway.find(stateDirectory: loaded.gateway.stateDirectory)?.isContinuousRun ?? false
    return try loaded.adapters.map { adapter -> AdapterStatusRow in
        let due = running ? nextPollDue(adapter, health[adapter.name]) : nil
        var waiting: Int?
        if let csv = adapter.csv {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: csv.folder)) ?? []
            waiting = names.filter { !$0.hasPrefix(".") && fnmatch(csv.pattern, $0, 0) == 0 }.count
        }
        return AdapterStatusRow(name: adapter.name, kind: adapter.kind, enabled: adapter.enabled, mapping: adapter.mapping,
                                health: health[adapter.name], position: try journal.sourceOffset(adapter.name),
                                filesWaiting: waiting, quarantinedOpen: open.filter { $0.item.source == adapter.name }.count,
                                gatewayRunning: running, nextPollDue: due, pollOverdue: due.map { Date().timeIntervalSince($0) > 60 } ?? false)
    }
}

/// When `esgate run` is due to poll the adapter again, from its last poll: the poll interval, or for a database
/// after failures its backoff (interval × 2^(failures − 1), at most `retry_cap`). Nil before a first poll, and for
/// SOAP adapters (their paging decides).
func nextPollDue(_ adapter: AdapterConfiguration, _ health: AdapterHealth?) -> Date? {
    guard adapter.enabled, adapter.soap == nil, let last = health?.lastPollAt else { return nil }
    let delay = adapter.odbc?.pollDelay(afterFailures: health?.consecutiveFailures ?? 0) ?? adapter.pollInterval
    return last.addingTimeInterval(Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
}

/// An ODBC poll as `run --once` and `adapter reread` print it: its counts, then a line per problem.
func describe(_ poll: ODBCPollReport) -> [String] {
    var lines = ["\(poll.adapter) (odbc \(poll.mode)): \(poll.counts.rows) rows, \(poll.counts.stored) records stored, \(poll.counts.unchanged) unchanged, \(poll.counts.quarantined) quarantined\(poll.counts.alreadyQuarantined > 0 ? ", \(poll.counts.alreadyQuarantined) already in quarantine" : "")\(poll.marked > 0 ? ", \(poll.marked) marked" : "")\(poll.unmarkable > 0 ? ", \(poll.unmarkable) not markable" : "")\(poll.withoutWatermark > 0 ? ", \(poll.withoutWatermark) without watermark" : "")\(deletions(poll))\(poll.watermark.map { ", watermark \($0)" } ?? ""), \(String(format: "%.1f", poll.seconds)) s"]
    if let refusal = poll.deletionRefusal { lines.append("\(poll.adapter): error: \(Redaction.maskIdentityNumbers(in: refusal))") }
    for problem in [poll.watermarkProblem, poll.keyProblem, poll.markProblem].compactMap({ $0 }) {
        lines.append("\(poll.adapter): problem to fix: \(Redaction.maskIdentityNumbers(in: problem))")
    }
    return lines
}

/// One adapter of `adapter status` as text.
func describe(_ row: AdapterStatusRow) -> String {
    let stamp = { (date: Date?) in date.map { beijingTimestamp($0) } ?? "never" }
    var text = "\(row.name) (\(row.kind)\(row.enabled ? "" : ", disabled")) → mapping \(row.mapping)\n"
    text += "  last poll \(stamp(row.health?.lastPollAt)), last success \(stamp(row.health?.lastSuccessAt))"
    if let failures = row.health?.consecutiveFailures, failures > 0 {
        text += ", \(failures) failure(s) in a row since \(stamp(row.health?.failingSince))"
    }
    if let due = row.nextPollDue {
        if row.pollOverdue {
            text += "\n  no poll has finished since \(stamp(row.health?.lastPollAt)) although one was due at \(stamp(due)): a poll is still running (a large result, a lock: see odbc.query_timeout)"
        } else {
            text += "\n  next poll due \(stamp(due))"
        }
    } else if !row.gatewayRunning, row.enabled, row.health?.lastPollAt != nil {
        text += "\n  esgate run is not running: no poll is due (it polls while it runs; esgate run --once polls once)"
    }
    // A driver's message may span lines; one line keeps the status readable and greppable, as in the log.
    if let health = row.health, let error = health.lastError {
        // Kept after a recovery, for the record: said so, lest it read as a problem of now.
        let cleared = health.consecutiveFailures == 0 && (health.lastSuccessAt.map { $0 >= (health.lastErrorAt ?? .distantPast) } ?? false)
        text += "\n  last error (\(stamp(health.lastErrorAt))\(cleared ? ", cleared: the polls since have succeeded" : "")): \(Logger.oneLine(error))"
    }
    if let health = row.health {
        text += "\n  rows read: \(health.lastPollRows.map(String.init) ?? "?") by the last poll, \(health.rowsRead) in all (rows read again, as a lag window does, count each time)"
    }
    if let position = row.position { text += "\n  position \(position)" }
    if let lag = row.health?.lagSeconds { text += "\n  lag \(describeLag(lag)) (the watermark's age at the last poll)" }
    if let waiting = row.filesWaiting { text += "\n  files in the drop folder: \(waiting)" }
    text += "\n  quarantined rows open: \(row.quarantinedOpen)"
    return text
}

/// `esgate gateway status --json`.
struct GatewayStatus: Encodable {
    let adapters: [AdapterStatusRow]
    /// nil when no receiver is configured, or when their state could not be read (`uplinkError` says why).
    let uplink: StatusOutput?
    let uplinkError: String?
    /// Set when the configuration files changed after the running gateway started (it still runs the old one).
    var configurationNotice: String? = nil

    private enum CodingKeys: String, CodingKey { case adapters, uplink, uplinkError, configurationNotice }

    /// `uplink` is always there, `null` without receivers, so that a reader of the JSON can tell "none configured"
    /// from a key it does not know.
    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(adapters, forKey: .adapters)
        try container.encode(uplink, forKey: .uplink)
        try container.encodeIfPresent(uplinkError, forKey: .uplinkError)
        try container.encodeIfPresent(configurationNotice, forKey: .configurationNotice)
    }
}

/// `3 h 12 min`, `45 s`; a negative lag (rows stamped later than now) says so.
func describeLag(_ seconds: Double) -> String {
    if seconds < 0 { return "\(describeLag(-seconds)) ahead: the source's times are later than now" }
    let whole = Int(seconds.rounded())
    if whole < 60 { return "\(whole) s" }
    if whole < 3600 { return "\(whole / 60) min \(whole % 60) s" }
    if whole < 86_400 { return "\(whole / 3600) h \(whole % 3600 / 60) min" }
    return "\(whole / 86_400) d \(whole % 86_400 / 3600) h"
}

struct AdapterStatusRow: Encodable {
    let name: String
    let kind: String
    let enabled: Bool
    let mapping: String
    let health: AdapterHealth?
    let position: String?
    let filesWaiting: Int?
    let quarantinedOpen: Int
    /// Whether a continuous `esgate run` is running now (not `run --once`, not `uplink run`).
    let gatewayRunning: Bool
    /// When the next poll is due (see `nextPollDue`); nil while no gateway runs.
    let nextPollDue: Date?
    /// A poll was due more than a minute ago and none has finished since, while the gateway runs: one is still
    /// running (a large result, a lock). For monitoring: the exit code stays that of the last poll.
    let pollOverdue: Bool
}

struct ConfigCheckReport: Encodable {
    let ok: Bool
    let errors: [String]
    let adapters: [String]
    let mappings: [String]
}

/// Why `mapping test` could not read its rows (a file, a saved response, or a database), for the message.
struct MappingTestFailure: Error, CustomStringConvertible {
    let description: String
}

struct JournalListRow: Encodable {
    let seq: Int64
    let type: String
    let key: String
    let rev: Int64
    let op: String
    let source: String
    let origin: String?
    let line: Int
    let ingestedAt: Date
    let xml: String
}

/// Why `--source` names nothing: neither a configured adapter nor the source of any quarantined row (rows of an
/// adapter since removed from the configuration can still be listed).
func unknownQuarantineSource(_ source: String, _ loaded: LoadedConfiguration, _ journal: Journal) throws -> String? {
    if loaded.adapters.contains(where: { $0.name == source }) { return nil }
    if try !journal.quarantined(source: source, openOnly: false, limit: 1).isEmpty { return nil }
    return "no adapter named '\(source)' (configured: \(loaded.adapters.map(\.name).joined(separator: ", ")))"
}

/// Why some of `ids` cannot be replayed: unknown, or closed already.
func notOpenQuarantineEntries(_ ids: [Int64], _ journal: Journal) throws -> String? {
    let known = try journal.quarantined(openOnly: false, ids: ids, limit: ids.count)
    var problems: [String] = []
    for id in ids {
        guard let entry = known.first(where: { $0.id == id }) else { problems.append("#\(id) is unknown"); continue }
        if entry.state != "open" { problems.append("#\(id) is \(entry.state) already") }
    }
    return problems.isEmpty ? nil : "nothing replayed: " + problems.joined(separator: ", ") + " (esgate quarantine list --all)"
}

struct QuarantineListRow: Encodable {
    let id: Int64
    let source: String
    let file: String
    let line: Int
    let stage: String
    let recordType: String
    let field: String
    /// The first of `errors`.
    let reason: String
    /// Every error of the row.
    let errors: [String]
    let row: String
    /// The key columns and values, masked (`quarantinedRowKey`).
    let key: String?
    let state: String
    let attempts: Int
    /// Why a superseded or dropped row was closed.
    let closedReason: String?
}

/// SIGINT/SIGTERM → graceful stop (the current batch commits or rolls back as a unit either way).
func installTerminationHandlers(logger: Logger? = nil, _ stop: @escaping @Sendable () -> Void) -> [DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { number in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            // Stopping can take as long as a file, a SOAP poll or a send in hand (docs/configuration.md): say it has begun.
            logger?.info("\(number == SIGTERM ? "SIGTERM" : "SIGINT"): stopping after the work in hand (a file being ingested, a SOAP poll or a send is finished first; a database query is cancelled)")
            stop()
        }
        source.resume()
        return source
    }
}

/// The snapshot-deletion part of an ODBC poll's line in `run --once`: shown for every poll of an adapter with
/// `deletes`, so "0 deleted" is visible too; nothing for other adapters.
func deletions(_ poll: ODBCPollReport) -> String {
    guard poll.deletes else { return "" }
    var text = ", \(poll.deleted) deleted"
    if poll.deletionsHeld > 0 { text += " (\(poll.deletionsHeld) kept for quarantined rows)" }
    if poll.deletionsRefused > 0 { text += ", \(poll.deletionsRefused) deletion(s) refused" }
    return text
}
