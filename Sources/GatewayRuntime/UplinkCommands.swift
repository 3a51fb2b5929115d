import CertificateSupport
import Foundation
import GatewayConfig
import GatewayModel
import HTTPClientSupport
import HTTPServerSupport
import Journal
import SandboxReceiver
import TextSupport
import Uplink
import XMLSupport

// The uplink's commands: `esgate receive`, `uplink status|run`, `deadletter list|resend|drop`, `certs check`.
// Kept apart from Commands.swift; `commandTable` appends `uplinkCommandTable` and `execute` falls through to
// `executeUplinkCommand`.

private let configOption = OptionSpec.value("config", "file", "gateway.yaml to use (default: $ESGATE_CONFIG, else ./gateway.yaml).")
private let jsonOption = OptionSpec.flag("json", "Print machine-readable JSON.")

/// The uplink's entries of the command table.
public let uplinkCommandTable: [CommandSpec] = [
    CommandSpec(path: ["uplink", "status"], abstract: "Show each receiver's cursor, lag, last package, errors, retries and dead letters.",
                options: [configOption, jsonOption]),
    CommandSpec(path: ["uplink", "run"], abstract: "Push the journal to every receiver (packages over mutual TLS).",
                discussion: "Without --once it runs until SIGINT/SIGTERM, refreshing reference data every reference_refresh. With --once it pushes until the journal is drained for every receiver, or a receiver's next retry is more than --max-wait away (it is failing), then exits 0 when all drained, 1 otherwise.",
                options: [configOption, .flag("once", "Push what is there, then exit."),
                          .value("max-wait", "seconds", "With --once: wait at most this long for one retry (default 30)."), jsonOption]),
    CommandSpec(path: ["deadletter", "list"], abstract: "List records a receiver rejected or refused, with code, field and message.",
                discussion: "Identity numbers are masked. A dead letter leaves the list when a newer revision of its key is delivered, or when dropped.",
                options: [configOption, .value("receiver", "name", "Only this receiver's dead letters."),
                          .flag("all", "Include superseded and dropped ones."),
                          .value("limit", "n", "At most this many (default 100)."), jsonOption]),
    CommandSpec(path: ["deadletter", "resend"], abstract: "Put dead letters' records back in their receiver's queue, as they are.",
                discussion: "For a record the receiver refused through no fault of the source (e.g. R201 before the province added the item to its catalog). The same journal revision is sent again in a new package, before the journal continues; the dead letter becomes 'resent', and a new one appears if the receiver rejects it again. A record whose source was wrong needs a corrected source instead (a new revision is sent by itself).",
                options: [configOption, .value("id", "n[,n...]", "These dead letters."),
                          .value("receiver", "name", "Only this receiver's."), .flag("all", "Every open dead letter (of --receiver)."), jsonOption]),
    CommandSpec(path: ["deadletter", "drop"], abstract: "Drop dead letters (kept for audit as 'dropped').",
                options: [configOption, .value("id", "n[,n...]", "These dead letters."),
                          .value("receiver", "name", "Only this receiver's."), .flag("all", "Every open dead letter (of --receiver)."), jsonOption]),
    CommandSpec(path: ["certs", "check"], abstract: "Check each receiver's CA, client certificate and key: validity, days left, CN, key match.",
                discussion: "Warns from 30 days before expiry (--warn-days). Exit 1 when a certificate is expired, unreadable, its CN differs from the district, or the key does not match.",
                options: [configOption, .value("warn-days", "n", "Warn this many days before expiry (default 30)."), jsonOption]),
    CommandSpec(path: ["receive"], abstract: "Run a sandbox PUI receiver (mutual TLS, schema and digest checks, idempotent receipts).",
                discussion: "For tests, demos and operators trying a gateway before going live. Packages are stored in <state>/sandbox.sqlite. Fault injection: --fail-first, --fail-rate, --server-fault-first, --drop-after-store, --delay, --reject-every.",
                options: [.value("listen", "address", "IPv4 address to bind (default 127.0.0.1)."),
                          .value("port", "n", "Port (default 8443; 0 picks a free one, printed on stdout)."),
                          .value("cert", "file", "Server certificate (PEM)."), .value("key", "file", "Server key (PEM)."),
                          .value("ca", "file", "CA that client certificates must chain to; a client certificate is required."),
                          .flag("insecure-plaintext", "Serve plain HTTP without certificates (tests only)."),
                          .value("receiver-code", "code", "This receiver's division code (default 410000); other Receivers get E105."),
                          .value("reference-data", "file", "ReferenceData file: catalog checks (R201/R202) and GetReferenceData."),
                          .value("state", "dir", "Where sandbox.sqlite lives (default ./sandbox-state)."),
                          .value("fail-first", "n", "Answer the first n SubmitPackage requests with --fail-status and Retry-After."),
                          .value("fail-status", "code", "Status for --fail-first (default 503)."),
                          .value("retry-after", "seconds", "Retry-After of injected failures (default 1)."),
                          .value("fail-rate", "p", "Answer this fraction of requests 503 at random (0..1)."),
                          .value("server-fault-first", "n", "Answer the first n with a retryable soap:Server fault E500."),
                          .value("drop-after-store", "n", "Store the first n packages but answer only after --drop-delay (client times out)."),
                          .value("drop-delay", "seconds", "Delay for --drop-after-store (default 65)."),
                          .value("delay", "seconds", "Delay every answer."),
                          .value("reject-every", "n", "Reject the records whose SM3(type|key|rev) is 0 modulo n (1: all) with --reject-code; the same again when resent."),
                          .value("reject-code", "code", "Code of those rejections (default R201)."),
                          .flag("acknowledge-only", "Benchmarks: accept every package without checking or storing it.")]),
]

func seconds(_ options: ParsedOptions, _ name: String, default fallback: Double) throws(UsageError) -> Double {
    guard let text = options.value(name) else { return fallback }
    // Finite and at most a year: the value becomes a Duration in milliseconds ("inf" parses as a Double).
    guard let value = Double(text), value >= 0, value <= 366 * 86400 else {
        throw UsageError("--\(name) expects a number from 0 to 31622400, got '\(text)'")
    }
    return value
}

/// The reference data source of a configuration: a configured `reference_data` file, else GetReferenceData
/// with the last good copy in the state directory.
func referenceSource(_ configuration: LoadedConfiguration, logger: Logger) -> ReferenceDataSource {
    ReferenceDataSource(configuredFile: configuration.gateway.referenceDataFile, stateDirectory: configuration.gateway.stateDirectory,
                        validator: try? XMLSchemaValidator(schemaText: configuration.schema.schemaText), logger: logger)
}

/// The receiver GetReferenceData is asked: the one marked `reference_source`, else the first enabled one.
func referenceReceiver(_ gateway: GatewayConfiguration) -> ReceiverConfiguration? {
    gateway.receivers.first { $0.enabled && $0.referenceSource } ?? gateway.receivers.first { $0.enabled }
}

func refreshReference(_ source: ReferenceDataSource, _ gateway: GatewayConfiguration) async {
    guard source.configuredFile == nil, let receiver = referenceReceiver(gateway),
          let settings = try? UplinkSettings.from(receiver, gateway: gateway) else {
        source.loadLocal()
        return
    }
    await source.refresh(client: HTTPClient(configuration: settings.client), url: settings.url, division: gateway.district)
}

/// `esgate run --once`: after ingesting, push until drained or every receiver is failing.
public func drainUplinkOnce(_ configuration: LoadedConfiguration, logger: Logger, maxWait: Duration = .seconds(30)) async -> [DrainSummary] {
    guard !configuration.gateway.receivers.filter(\.enabled).isEmpty else { return [] }
    do {
        let service = try UplinkService.configured(configuration.gateway, schemaText: configuration.schema.schemaText,
                                                   logger: logger.with(component: "uplink"))
        return await service.drainAll(maxWait: maxWait)
    } catch {
        // Nothing was drained: every enabled receiver is reported failing with the cause (exit 1 for --once).
        logger.error("uplink: \(error)")
        return configuration.gateway.receivers.filter(\.enabled).map { receiver in
            var summary = DrainSummary(receiver: receiver.name)
            summary.lastError = "\(error)"
            return summary
        }
    }
}

/// Human-readable lines for drain summaries.
public func describe(_ summaries: [DrainSummary]) -> [String] {
    summaries.map { summary in
        "uplink \(summary.receiver): \(summary.drained ? "drained" : "failing") (\(summary.packagesResolved) package(s) resolved, \(summary.attempts) attempt(s))"
            + (summary.drained ? "" : summary.lastError.map { ": \($0)" } ?? "")
    }
}

/// `esgate run`: the uplink runs beside the adapters until the returned task is cancelled; reference data is
/// refreshed every `reference_refresh`.
public func startUplink(_ configuration: LoadedConfiguration, logger: Logger) -> Task<Void, Never> {
    Task {
        let log = logger.with(component: "uplink")
        guard !configuration.gateway.receivers.filter(\.enabled).isEmpty else { return }
        for warning in certificateWarnings(configuration.gateway) { log.warning(warning) }
        let service: UplinkService
        do {
            service = try UplinkService.configured(configuration.gateway, schemaText: configuration.schema.schemaText, logger: log)
        } catch {
            log.error("\(error)")
            return
        }
        let reference = referenceSource(configuration, logger: log)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    await refreshReference(reference, configuration.gateway)
                    try? await Task.sleep(for: configuration.gateway.referenceRefresh)
                }
            }
            group.addTask { await service.runAll() }
            await group.waitForAll()
        }
    }
}

// MARK: - Certificates

struct CertificateReport: Encodable {
    let receiver: String
    let role: String
    let file: String
    var subject: String?
    var issuer: String?
    var commonName: String?
    var notBefore: String?
    var notAfter: String?
    var daysLeft: Int?
    var keyMatches: Bool?
    var verified: String?
    var warnings: [String] = []
    var errors: [String] = []
}

func certificateReports(_ gateway: GatewayConfiguration, warnDays: Int = 30, now: Date = Date()) -> [CertificateReport] {
    var reports: [CertificateReport] = []
    for receiver in gateway.receivers where receiver.enabled {
        let files: [(String, String?)] = [("ca", receiver.caFile), ("client certificate", receiver.certificateFile)]
        for (role, file) in files {
            guard let file else {
                if !receiver.insecurePlaintext {
                    var report = CertificateReport(receiver: receiver.name, role: role, file: "-")
                    report.errors.append(role == "ca"
                        ? "no ca_file configured: the receiver's certificate is checked against the system's public CAs, not the CA the province issued (PUI §1)"
                        : "no cert_file configured: the receiver will refuse the connection")
                    reports.append(report)
                }
                continue
            }
            if role == "ca" {
                reports += caReports(receiver: receiver.name, file: file, warnDays: warnDays, now: now)
                continue
            }
            var report = CertificateReport(receiver: receiver.name, role: role, file: file)
            do {
                let info = try CertificateInfo.load(file: file)
                report.describe(info, warnDays: warnDays, now: now)
                if info.notAfter < now {
                    report.errors.append("expired on \(beijingTimestamp(info.notAfter))")
                }
                if info.notBefore > now { report.errors.append("not valid before \(beijingTimestamp(info.notBefore))") }
                if role == "client certificate" {
                    if info.commonName != gateway.district {
                        report.errors.append("subject CN=\(info.commonName ?? "-") is not the district \(gateway.district): the receiver answers E102")
                    }
                    if let keyFile = receiver.keyFile {
                        var password: String?
                        do { password = try receiver.clientKeyPassphrase() } catch {
                            report.errors.append("\(error): the uplink cannot start")
                        }
                        checkKey(keyFile, of: file, password: password, source: receiver.passphraseSource, into: &report)
                    } else {
                        report.errors.append("no key_file configured")
                    }
                    // An expired (or not yet valid) certificate is reported as such below; its chain is checked apart from
                    // time, so that one from the configured CA is not called "issued by another CA".
                    let checkedAt: Date? = now < info.notBefore || now > info.notAfter ? nil : now
                    if let ca = receiver.caFile, let result = try? CertificateInfo.verify(certificateFile: file, caFile: ca, at: checkedAt) {
                        report.verified = result.ok ? "chains to \(ca)" : "does not chain to \(ca): \(result.reason)"
                        if !result.ok { report.warnings.append("does not chain to the configured CA (\(result.reason)); fine only if the province issued it from another CA") }
                    }
                }
            } catch {
                report.errors.append(error.description)
            }
            reports.append(report)
        }
    }
    return reports
}

/// Whether `keyFile` opens with `password` and belongs to the certificate in `file`, into `report`.
private func checkKey(_ keyFile: String, of file: String, password: String?, source: String?, into report: inout CertificateReport) {
    if password == unsetInThisShell {
        // A status command run from a shell without the service's environment cannot open the key.
        report.warnings.append("key not checked: \(source ?? "key_passphrase_env") is not set in this shell")
        return
    }
    do {
        let matches = try CertificateInfo.keyMatches(certificateFile: file, keyFile: keyFile, password: password)
        report.keyMatches = matches
        if !matches { report.errors.append("key \(keyFile) does not belong to this certificate") }
    } catch {
        // Name where the passphrase came from: that is what the operator has to correct.
        report.errors.append(error.description + ((password == nil ? nil : source).map { " (passphrase from \($0))" } ?? ""))
    }
}

extension CertificateReport {
    /// Subject, issuer, validity and days left of `info`; a warning when it expires within `warnDays`.
    mutating func describe(_ info: CertificateInfo, warnDays: Int, now: Date) {
        subject = info.subject
        issuer = info.issuer
        commonName = info.commonName
        notBefore = beijingTimestamp(info.notBefore)
        notAfter = beijingTimestamp(info.notAfter)
        let days = info.daysLeft(now: now)
        daysLeft = days
        if info.notAfter >= now && days < warnDays {
            warnings.append("expires in \(days) day(s), on \(beijingTimestamp(info.notAfter))")
        }
    }
}

/// One report per certificate of a receiver's `ca_file` (a bundle may hold several CAs, e.g. a new root beside
/// the old one). A CA outside its validity is an error, unless another CA of the same file is valid: then the
/// receiver can still be verified, and it is a warning to clean the bundle.
func caReports(receiver: String, file: String, warnDays: Int, now: Date) -> [CertificateReport] {
    let infos: [CertificateInfo]
    do { infos = try CertificateInfo.loadAll(file: file) } catch {
        var report = CertificateReport(receiver: receiver, role: "ca", file: file)
        report.errors.append(error.description)
        return [report]
    }
    let valid = { (info: CertificateInfo) in info.notBefore <= now && now <= info.notAfter }
    let anotherIsValid = { (info: CertificateInfo) in infos.contains { $0 != info && valid($0) } }
    return infos.map { info in
        var report = CertificateReport(receiver: receiver, role: "ca", file: file)
        report.describe(info, warnDays: warnDays, now: now)
        var problems: [String] = []
        if info.notAfter < now { problems.append("expired on \(beijingTimestamp(info.notAfter))") }
        if info.notBefore > now { problems.append("not valid before \(beijingTimestamp(info.notBefore))") }
        if anotherIsValid(info) {
            report.warnings += problems.map { "\($0); another CA in this file is valid: remove this one from the bundle" }
        } else {
            report.errors += problems
        }
        return report
    }
}

/// Warnings and errors of the configured certificates, one line each (logged at start, shown in status).
public func certificateWarnings(_ gateway: GatewayConfiguration, warnDays: Int = 30) -> [String] {
    certificateWarnings(certificateReports(gateway, warnDays: warnDays))
}

func certificateWarnings(_ reports: [CertificateReport]) -> [String] {
    certificateLines(reports, \.errors) + certificateLines(reports, \.warnings)
}

/// One line per problem of the given kind, naming the receiver, the role and the file.
func certificateLines(_ reports: [CertificateReport], _ kind: KeyPath<CertificateReport, [String]>) -> [String] {
    reports.flatMap { report in
        // A CA file may be a bundle: its lines name the CA.
        let which = report.role == "ca" ? report.subject.map { " (\($0))" } ?? "" : ""
        return report[keyPath: kind].map { "certificate \(report.receiver) \(report.role) \(report.file)\(which): \($0)" }
    }
}

struct StatusOutput: Encodable {
    let status: UplinkStatus
    /// Certificates, keys or passphrases that cannot work (expired, unreadable, …): the uplink cannot deliver.
    let certificateErrors: [String]
    /// Certificates that still work but need attention (expiring within 30 days, an expired CA beside a valid one).
    let certificateWarnings: [String]

    /// Something an operator must act on: a certificate error, or a receiver failing.
    var failing: Bool {
        !certificateErrors.isEmpty || status.receivers.contains { $0.failingSince != nil }
    }
}

/// Every receiver's state, the reference data and certificate warnings (`uplink status`, `status`).
func uplinkStatus(_ configuration: LoadedConfiguration) throws -> StatusOutput {
    let logger = Logger.silent
    // Status reads the journal only: it never connects, so it does not need (or fail on) the key's passphrase.
    let service = try UplinkService.configured(configuration.gateway, schemaText: configuration.schema.schemaText,
                                               logger: logger, readingSecrets: false)
    let status = try service.status(reference: referenceSource(configuration, logger: logger))
    let reports = certificateReports(configuration.gateway)
    return StatusOutput(status: status, certificateErrors: certificateLines(reports, \.errors),
                        certificateWarnings: certificateLines(reports, \.warnings))
}

/// `uplink status` as text (identity numbers not yet masked).
func describe(_ output: StatusOutput) -> String {
    let status = output.status
    var text = ""
    for r in status.receivers {
        text += "\(r.receiver) → \(r.url) (Receiver \(r.receiverCode)): \(r.state)\n"
        text += "  cursor \(r.consumer) at seq \(r.cursor) of \(r.journalLastSeq); lag \(r.lag) record(s)\n"
        if let p = r.pending {
            text += "  pending \(p.packageId): \(p.records) records, \(p.attempts) attempt(s), next \(p.nextAttemptAt ?? "now")\(p.lastError.map { ", last error: \($0)" } ?? "")\n"
        }
        if let l = r.lastPackage {
            text += "  last package \(l.packageId): \(l.state)"
            if l.state == "receipted" { text += " (\(l.accepted ?? 0) accepted, \(l.duplicates ?? 0) duplicates, \(l.rejected ?? 0) rejected)" }
            if let code = l.faultCode { text += " (\(code))" }
            text += " at \(l.resolvedAt ?? "-")\n"
        }
        if let since = r.failingSince { text += "  failing since \(since) (\(r.consecutiveFailures) failure(s)); next retry \(r.nextRetryAt ?? "-")\n" }
        if let error = r.lastError { text += "  last error: \(error)\n" }
        text += "  dead letters: \(r.deadLetters)\(r.resendQueued > 0 ? "; \(r.resendQueued) queued for resend" : "")\n"
    }
    let ref = status.referenceData
    text += "reference data: \(ref.version.map { "version \($0), \(ref.items ?? 0) items, calendar \(ref.calendar ?? "-")" } ?? "none") (\(ref.source))\(ref.error.map { "; \($0)" } ?? "")\n"
    if let attempt = ref.lastFetch {
        text += "  last fetch \(attempt)\(ref.error == nil ? " ok" : " failed")\(ref.lastGoodFetch.map { $0 == attempt ? "" : "; last good fetch \($0)" } ?? "; never fetched successfully")\n"
    }
    for error in output.certificateErrors { text += "error: \(error)\n" }
    for warning in output.certificateWarnings { text += "warning: \(warning)\n" }
    return text
}

// MARK: - Dispatch

/// Runs an uplink command; nil when `path` is not one of them.
public func executeUplinkCommand(_ path: [String], _ options: ParsedOptions) async throws -> Int32? {
    switch path {
    case ["uplink", "status"]:
        guard let configuration = loadOrReport(options, readOnly: true) else { return 1 }
        if let notice = configuration.staleConfigurationNotice() { writeError("warning: \(notice)") }
        let output = try uplinkStatus(configuration)
        if options.flag("json") { writeJSON(output) } else { write(Redaction.maskIdentityNumbers(in: describe(output))) }
        return output.failing ? 1 : 0

    case ["uplink", "run"]:
        guard let configuration = loadOrReport(options) else { return 1 }
        guard lockStateDirectory(configuration, command: options.flag("once") ? "esgate uplink run --once" : "esgate uplink run") else { return 1 }
        let logger = logger(for: configuration, component: "uplink")
        if options.flag("once") {
            for warning in certificateWarnings(configuration.gateway) { logger.warning(warning) }
            await refreshReference(referenceSource(configuration, logger: logger), configuration.gateway)
            let maxWait = try seconds(options, "max-wait", default: 30)
            let summaries = await drainUplinkOnce(configuration, logger: logger, maxWait: .milliseconds(Int64(maxWait * 1000)))
            if options.flag("json") { writeJSON(summaries) } else { for line in describe(summaries) { write(Redaction.maskIdentityNumbers(in: line)) } }
            return summaries.allSatisfy(\.drained) ? 0 : 1
        }
        let task = startUplink(configuration, logger: logger)
        let signals = installTerminationHandlers(logger: logger) { task.cancel() }
        await task.value
        withExtendedLifetime(signals) {}
        return 0

    case ["deadletter", "list"]:
        guard let configuration = loadOrReport(options, readOnly: true) else { return 1 }
        let store = try UplinkStore(path: configuration.gateway.journalPath)
        let letters = try store.deadLetters(receiver: options.value("receiver"), includeResolved: options.flag("all"),
                                            limit: try options.integer("limit", default: 100))
        // A receiver removed from gateway.yaml may still have dead letters; a name that has neither is a typo.
        if let receiver = options.value("receiver"), letters.isEmpty,
           !configuration.gateway.receivers.contains(where: { $0.name == receiver }) {
            throw UsageError("no receiver named \(receiver) in \(configuration.gateway.file) (receivers: \(configuration.gateway.receivers.map(\.name).joined(separator: ", ")))")
        }
        // Where each record came from: correcting the source is how a rejected record is resolved.
        let origins = Dictionary(try Journal(path: configuration.gateway.journalPath).entries(seqs: letters.map(\.seq))
            .map { ($0.seq, $0) }, uniquingKeysWith: { first, _ in first })
        let rows = letters.map { letter in
            let entry = origins[letter.seq]
            return DeadLetterRow(letter: letter, source: entry?.source, file: entry?.origin, line: entry.map(\.line))
        }
        if options.flag("json") { writeJSON(rows); return 0 }
        if rows.isEmpty { write("no dead letters"); return 0 }
        for row in rows {
            let l = row.letter
            let place = row.source.map { " (from \($0)\(row.file.map { " \($0):\(row.line ?? 0)" } ?? ""))" } ?? ""
            write(Redaction.maskIdentityNumbers(in: "#\(l.id) [\(l.state)] \(l.receiver) \(l.packageId ?? "(not sent)")\(l.index.map { "#\($0)" } ?? "") \(l.type) \(l.key) rev \(l.rev)\(place): \(l.code)\(l.field.map { " \($0)" } ?? ""): \(l.message)"))
        }
        return 0

    case ["deadletter", "drop"], ["deadletter", "resend"]:
        guard let configuration = loadOrReport(options) else { return 1 }
        let ids = try options.ids("id")
        guard ids != nil || options.flag("all") else { throw UsageError("give --id <n[,n...]> or --all") }
        if let receiver = options.value("receiver"), !configuration.gateway.receivers.contains(where: { $0.name == receiver }) {
            throw UsageError("no receiver named \(receiver) in \(configuration.gateway.file)")
        }
        let store = try UplinkStore(path: configuration.gateway.journalPath)
        let resend = path[1] == "resend"
        let count = resend ? try store.resendDeadLetters(ids: ids, receiver: options.value("receiver"), now: Date())
                           : try store.dropDeadLetters(ids: ids, receiver: options.value("receiver"), now: Date())
        if options.flag("json") { writeJSON([resend ? "resent" : "dropped": count]) } else if resend {
            write("queued \(count) dead letter(s) for resend; they go out with the next package (esgate run or uplink run)")
        } else {
            write("dropped \(count) dead letter(s)")
        }
        // Named ids that were not open dead letters (unknown, or already resent, superseded or dropped) are a
        // mistake the operator must see, not a quiet "0".
        if let ids, count < Set(ids).count {
            writeError("\(Set(ids).count - count) of the given id(s) are not open dead letters\(options.value("receiver").map { " of \($0)" } ?? ""): unknown, or already resent, superseded or dropped (esgate deadletter list --all)")
            return 1
        }
        return 0

    case ["certs", "check"]:
        guard let configuration = loadOrReport(options) else { return 1 }
        let reports = certificateReports(configuration.gateway, warnDays: try options.integer("warn-days", default: 30))
        if options.flag("json") { writeJSON(reports) } else {
            if reports.isEmpty { write("no certificates configured (no enabled receivers)") }
            for r in reports {
                var text = "\(r.receiver) \(r.role): \(r.file)\n"
                if let subject = r.subject { text += "  subject \(subject)\n  issuer  \(r.issuer ?? "-")\n  valid   \(r.notBefore ?? "-") .. \(r.notAfter ?? "-") (\(r.daysLeft ?? 0) days left)\n" }
                if let matches = r.keyMatches { text += "  key     \(matches ? "matches" : "DOES NOT MATCH")\n" }
                if let verified = r.verified { text += "  chain   \(verified)\n" }
                for warning in r.warnings { text += "  WARNING \(warning)\n" }
                for error in r.errors { text += "  ERROR   \(error)\n" }
                write(text)
            }
        }
        return reports.contains { !$0.errors.isEmpty } ? 1 : 0

    case ["receive"]:
        var sandbox = SandboxOptions()
        if let code = options.value("receiver-code") { sandbox.receiverCode = code }
        sandbox.referenceDataFile = options.value("reference-data")
        sandbox.failFirst = try options.integer("fail-first", default: 0)
        sandbox.failStatus = try options.integer("fail-status", default: 503)
        sandbox.retryAfterSeconds = try options.integer("retry-after", default: 1)
        sandbox.failRate = try seconds(options, "fail-rate", default: 0)
        sandbox.serverFaultFirst = try options.integer("server-fault-first", default: 0)
        sandbox.dropAfterStore = try options.integer("drop-after-store", default: 0)
        sandbox.dropDelay = .milliseconds(Int64(try seconds(options, "drop-delay", default: 65) * 1000))
        sandbox.delay = .milliseconds(Int64(try seconds(options, "delay", default: 0) * 1000))
        sandbox.acknowledgeOnly = options.flag("acknowledge-only")
        sandbox.rejectEvery = try options.integer("reject-every", default: 0)
        if let code = options.value("reject-code") { sandbox.rejectCode = code }
        let port = try options.integer("port", default: 8443)
        guard port <= 65535 else { throw UsageError("--port must be 0...65535") }
        var tls: HTTPServerConfiguration.TLS?
        if !options.flag("insecure-plaintext") {
            guard let cert = options.value("cert"), let key = options.value("key"), let ca = options.value("ca") else {
                throw UsageError("--cert, --key and --ca are required (or --insecure-plaintext for tests)")
            }
            tls = try HTTPServerConfiguration.TLS(certificateFile: cert, privateKeyFile: key, clientCAFile: ca)
        }
        let state = options.value("state") ?? "sandbox-state"
        let logger = Logger(component: "receive", minimum: .info)
        let receiver = try SandboxReceiver(databasePath: (state as NSString).appendingPathComponent("sandbox.sqlite"),
                                           options: sandbox, logger: logger)
        let server = try SandboxServer(receiver: receiver, host: options.value("listen") ?? "127.0.0.1", port: UInt16(port),
                                       tls: tls, errorLog: { logger.debug("http: \($0)") })
        write("esgate receive: listening on \(tls == nil ? "http" : "https")://\(options.value("listen") ?? "127.0.0.1"):\(server.port)/pui")
        let stop = Task { while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) } }
        let signals = installTerminationHandlers { stop.cancel() }
        await stop.value
        server.stop()
        withExtendedLifetime(signals) {}
        return 0

    default:
        return nil
    }
}

/// A dead letter with the source, file and line its record was ingested from (`deadletter list`).
struct DeadLetterRow: Encodable {
    let letter: DeadLetter
    let source: String?
    let file: String?
    let line: Int?

    private enum CodingKeys: String, CodingKey { case source, file, line }

    /// The dead letter's own fields, then where its record came from, in one JSON object.
    func encode(to encoder: any Encoder) throws {
        try letter.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(source, forKey: .source)
        try container.encodeIfPresent(file, forKey: .file)
        try container.encodeIfPresent(line, forKey: .line)
    }
}
