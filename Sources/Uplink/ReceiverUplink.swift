import CertificateSupport
import Foundation
import GatewayConfig
import GatewayModel
import HTTPClientSupport
import Journal
import XMLSupport

/// Everything one receiver's uplink needs, resolved from gateway.yaml (or built by tests).
public struct UplinkSettings: Sendable {
    public var name: String
    public var url: String
    /// The district (PUI Sender, client certificate CN).
    public var sender: String
    /// The receiver's division code (PUI Receiver).
    public var receiverCode: String
    /// Only these record types; empty: all.
    public var recordTypes: [String] = []
    public var client: HTTPClient.Configuration
    public var retryBase: Duration = .seconds(1)
    public var retryCap: Duration = .seconds(300)
    public var maxRecords: Int = PUIWire.maxRecords
    public var maxBytes: Int = PUIWire.maxRequestBytes
    /// Parse, XSD-validate and C14N every package with libxml2 before fixing it (`verify_packages`).
    public var verifyPackages = false
    /// The next PackageId number is at least this (`first_package_number`).
    public var firstPackageNumber: Int64?

    public init(name: String, url: String, sender: String, receiverCode: String, client: HTTPClient.Configuration) {
        self.name = name
        self.url = url
        self.sender = sender
        self.receiverCode = receiverCode
        self.client = client
    }

    /// The journal consumer name of this receiver's cursor.
    public var consumer: String { "uplink:\(name)" }

    /// Settings of a configured receiver. Reads the key passphrase file when one is configured.
    /// `readingSecrets: false` leaves the client key's passphrase unread: settings for showing state, which never
    /// connect, so an unreadable passphrase file does not hide the receiver's cursor, packages and dead letters.
    public static func from(_ receiver: ReceiverConfiguration, gateway: GatewayConfiguration,
                            readingSecrets: Bool = true) throws(UplinkError) -> UplinkSettings {
        var password: String? = nil
        if readingSecrets {
            do { password = try receiver.clientKeyPassphrase() } catch {
                throw UplinkError(operation: "receiver \(receiver.name)", underlying: error.description)
            }
        }
        // The passphrase file is read here (an unreadable one fails at start) and again for every request, as the
        // certificate and key files are: renewing the key with a new passphrase needs no restart.
        let tls = HTTPClient.TLSConfiguration(caFile: receiver.caFile, clientCertificateFile: receiver.certificateFile,
                                              clientKeyFile: receiver.keyFile, clientKeyPassword: password,
                                              clientKeyPasswordFile: readingSecrets ? receiver.keyPassphraseFile : nil)
        var settings = UplinkSettings(
            name: receiver.name, url: receiver.url, sender: gateway.district, receiverCode: receiver.division,
            client: HTTPClient.Configuration(connectTimeout: receiver.connectTimeout, totalTimeout: receiver.timeout, tls: tls,
                                             allowPlaintextHTTP: receiver.insecurePlaintext))
        settings.recordTypes = receiver.recordTypes
        settings.verifyPackages = receiver.verifyPackages
        settings.firstPackageNumber = receiver.firstPackageNumber
        settings.retryBase = gateway.retryBase
        settings.retryCap = gateway.retryCap
        return settings
    }
}

/// Exponential backoff with jitter, capped: attempt k waits base·2^(k-1) (capped), then a random point in its
/// upper half ("equal jitter"), and never less than the receiver's Retry-After.
public struct Backoff: Sendable {
    public var base: Duration
    public var cap: Duration

    public init(base: Duration, cap: Duration) {
        self.base = base
        self.cap = cap
    }

    /// The longest Retry-After honoured (a year); longer values are read as this.
    public static let longestRetryAfterSeconds: Double = 366 * 86400

    public func delay(failures: Int, retryAfter: Duration?) -> Duration {
        let baseSeconds = Double(base.components.seconds) + Double(base.components.attoseconds) / 1e18
        let capSeconds = Double(cap.components.seconds) + Double(cap.components.attoseconds) / 1e18
        let exponent = min(max(failures - 1, 0), 40)
        let ceiling = min(capSeconds, baseSeconds * pow(2, Double(exponent)))
        var seconds = ceiling / 2 + Double.random(in: 0...(ceiling / 2))
        if let retryAfter {
            // "wait at least Retry-After" (spec §1), even above the cap; an absurd value (it is the receiver's
            // input) is read as the longest wait, so that the delay stays representable.
            seconds = max(seconds, min(Double(retryAfter.components.seconds), Self.longestRetryAfterSeconds))
        }
        return .milliseconds(Int64((seconds * 1000).rounded(.up)))
    }
}

/// What one step of a receiver's uplink did.
public enum UplinkStep: Sendable, Equatable {
    /// Nothing to send: the journal is drained for this receiver.
    case idle
    /// A package was resolved by a receipt or a refusal.
    case delivered(packageId: String, outcome: String)
    /// The pending package is waiting for its next attempt; `attempted`: this step sent it, and it failed (false:
    /// it was not due yet).
    case waiting(packageId: String, until: Date, attempted: Bool)
}

/// What `drain` achieved.
public struct DrainSummary: Sendable, Codable, Equatable {
    public var receiver: String
    public var packagesResolved: Int = 0
    public var attempts: Int = 0
    /// True when the journal is drained for this receiver; false when it stopped because the receiver is failing.
    public var drained: Bool = false
    public var lastError: String?

    public init(receiver: String) { self.receiver = receiver }
}

/// One receiver's uplink: reads the journal through its own cursor, fixes packages before their first send,
/// sends them over mutual TLS, applies receipts and faults per PUI v1 §1/§3, retries the same bytes with
/// backoff. Owns its own journal and SQLite connections; not Sendable (one per task or thread).
public final class ReceiverUplink {
    public let settings: UplinkSettings
    let journal: Journal
    public let store: UplinkStore
    let builder: PackageBuilder
    /// Builds the package after next on its own thread and journal connection (see `aheadPackage(after:)`).
    let prebuilder: PackagePrebuilder
    let client: HTTPClient
    let logger: Logger
    let now: @Sendable () -> Date
    let backoff: Backoff

    public init(settings: UplinkSettings, journalPath: String, validator: XMLSchemaValidator, logger: Logger,
                now: @escaping @Sendable () -> Date = Date.init) throws(UplinkError) {
        self.settings = settings
        do {
            journal = try Journal(path: journalPath)
        } catch {
            throw UplinkError(operation: "open journal \(journalPath)", underlying: error.description)
        }
        store = try UplinkStore(path: journalPath)
        if let first = settings.firstPackageNumber { try store.raiseSequence(receiver: settings.name, nextAtLeast: first) }
        var builder = PackageBuilder(sender: settings.sender, receiver: settings.receiverCode, validator: validator)
        builder.maxRecords = min(max(settings.maxRecords, 1), PUIWire.maxRecords)
        builder.maxBytes = min(settings.maxBytes, PUIWire.maxRequestBytes)
        builder.verify = settings.verifyPackages
        self.builder = builder
        client = HTTPClient(configuration: settings.client)
        self.logger = logger.with(component: "uplink:\(settings.name)")
        prebuilder = PackagePrebuilder(name: settings.name, journalPath: journalPath, builder: builder,
                                       types: settings.recordTypes, logger: self.logger, now: now)
        self.now = now
        backoff = Backoff(base: settings.retryBase, cap: settings.retryCap)
        try repairCursor()
    }

    private func journalCall<T>(_ operation: String, _ body: () throws(JournalError) -> T) throws(UplinkError) -> T {
        do { return try body() } catch { throw UplinkError(operation: operation, underlying: error.description) }
    }

    /// A crash between resolving a package and moving the cursor leaves the cursor behind: move it now.
    private func repairCursor() throws(UplinkError) {
        let resolved = try store.lastResolvedSeq(receiver: settings.name)
        let cursor = try journalCall("read cursor") { () throws(JournalError) in try journal.cursor(settings.consumer) }
        if resolved > cursor {
            try journalCall("advance cursor") { () throws(JournalError) in try journal.advanceCursor(settings.consumer, to: resolved) }
        }
    }

    /// A package fixed in the same transaction as the previous one's receipt, handed to the next step as is.
    private var fixedAhead: StoredPackage?
    /// The package after `fixedAhead`, being built by `prebuilder` while `fixedAhead` is fixed and sent.
    private var prebuilding: PackagePrebuilder.Job?

    /// The pending package, or a newly fixed one from the journal; nil when there is nothing to send.
    public func nextPackage() throws(UplinkError) -> StoredPackage? {
        if let fixedAhead {
            self.fixedAhead = nil
            return fixedAhead
        }
        while let pending = try store.pendingPackage(receiver: settings.name) {
            if let whole = try withRecords(pending) { return whole }
        }
        if let resend = try resendPackage() { return resend }
        let cursor = try journalCall("read cursor") { () throws(JournalError) in try journal.cursor(settings.consumer) }
        var start = max(cursor, try store.lastPackagedSeq(receiver: settings.name))
        while true {
            let entries = try journalCall("read journal") { () throws(JournalError) in
                try journal.entries(after: start, limit: builder.maxRecords,
                                    types: settings.recordTypes.isEmpty ? nil : settings.recordTypes)
            }
            guard !entries.isEmpty else { return nil }
            let n = try store.nextNumber(receiver: settings.name)
            // The one-pass path first; select and build when a record must be held back (or `verify` is on).
            var candidates: [(entry: JournalEntry, xml: [UInt8])] = []
            let built: BuiltPackage?
            do {
                if let direct = try builder.buildDirect(n: n, entries: entries, now: now()) {
                    built = direct
                } else {
                    candidates = builder.select(entries, packageId: "\(settings.sender)-\(n)")
                    built = try builder.build(n: n, candidates: candidates, now: now())
                }
            } catch {
                throw UplinkError(operation: "build package", underlying: error.description)
            }
            guard let built else {
                // Every candidate was held back: dead-letter them and move on.
                let held = invalid(candidates)
                for letter in held {
                    logger.warning("record \(letter.member.type) \(NormalizedRecord.displayKey(of: letter.member.key)) rev \(letter.member.rev) held back: \(letter.message)")
                }
                try store.holdBack(receiver: settings.name, records: held, now: now())
                let last = candidates.last?.entry.seq ?? entries[0].seq
                try journalCall("advance cursor") { () throws(JournalError) in try journal.advanceCursor(settings.consumer, to: last) }
                start = last
                continue
            }
            for held in built.heldBack {
                logger.warning("record \(held.member.type) \(NormalizedRecord.displayKey(of: held.member.key)) rev \(held.member.rev) held back: \(held.message)")
            }
            try store.fix(receiver: settings.name, built, now: now())
            logger.debug("fixed \(built.packageId): \(built.memberSeqs.count) records, \(built.request.count) bytes, SM3 \(built.digest)")
            return stored(built)
        }
    }

    /// A package read back from the store with its records put back from the journal (the store keeps its
    /// envelope only: `UplinkStore.insertFixed`), byte for byte what its first attempt sent. Nil when they cannot
    /// be put back so (the journal lost or damaged a record since): the package is then resolved locally with its
    /// records as dead letters (X101), rather than sent with other bytes under its PackageId or retried for ever.
    /// A read that may succeed later (the file busy, an I/O error) throws instead, and the step is tried again.
    private func withRecords(_ package: StoredPackage) throws(UplinkError) -> StoredPackage? {
        guard let offset = package.recordsAt else { return package }
        let rebuilt = try store.memberEntries(receiver: settings.name, packageId: package.packageId).flatMap { entries in
            PackageBuilder.request(envelope: package.request, recordsAt: offset, digest: package.digest, entries: entries)
        }
        switch rebuilt {
        case .success(let request):
            return package.with(request: request)
        case .failure(let error):
            let message = "\(package.packageId) cannot be sent again as it was fixed: \(error.message); its records are dead letters (X101), to be resent in a new package once the journal is sound"
            logger.error(message)
            let fault = PUIFault(faultCode: "Client", faultString: message, code: "X101", retryable: false, message: message)
            try store.applyRefusal(receiver: settings.name, package: package, fault: fault, now: now(),
                                   resolution: .init(consumer: settings.consumer, state: try store.receiverState(settings.name)))
            return nil
        }
    }

    /// The package just fixed, as `store.package` would read it back (without reading its bytes back).
    private func stored(_ built: BuiltPackage) -> StoredPackage {
        StoredPackage(receiver: settings.name, packageId: built.packageId, n: built.n, firstSeq: built.memberSeqs.first ?? 0,
                      lastSeq: max(built.memberSeqs.last ?? 0, built.heldBack.map(\.member.seq).max() ?? 0),
                      recordCount: built.memberSeqs.count, digest: built.digest, request: built.request, state: .pending,
                      attempts: 0, nextAttemptAt: nil, lastError: nil, createdAt: now())
    }

    /// Candidates refused as a whole before sending (schema, or damaged stored bodies): dead letters with code X100.
    private func invalid(_ candidates: [(entry: JournalEntry, xml: [UInt8])]) -> [(member: PackageMember, code: String, field: String?, message: String)] {
        candidates.map { candidate in
            (member: PackageMember(index: 0, seq: candidate.entry.seq, type: candidate.entry.type,
                                   key: candidate.entry.key, rev: candidate.entry.rev),
             code: "X100", field: String?.none,
             message: candidate.xml.isEmpty ? builder.heldBackReason(candidate.entry) : "not valid against pui-v1.xsd; not sent")
        }
    }

    /// A package of records an operator put back in the queue (`deadletter resend`), fixed like any other; nil
    /// when the queue is empty. Their seqs lie behind the cursor, which never moves backward.
    private func resendPackage() throws(UplinkError) -> StoredPackage? {
        while true {
            let queued = try store.queuedResends(receiver: settings.name, limit: builder.maxRecords)
            guard !queued.isEmpty else { return nil }
            let entries = try journalCall("read journal") { () throws(JournalError) in try journal.entries(seqs: queued.map(\.seq)) }
            let present = Set(entries.map(\.seq))
            let missing = queued.filter { !present.contains($0.seq) }
            if !missing.isEmpty {
                logger.warning("\(missing.count) record(s) queued for resend are no longer in the journal; left out")
                try store.dequeueResends(missing.map(\.id))
            }
            guard !entries.isEmpty else { continue }
            let n = try store.nextNumber(receiver: settings.name)
            let candidates = builder.select(entries, packageId: "\(settings.sender)-\(n)")
            let chosen = Set(candidates.map(\.entry.seq))
            let dequeue = queued.filter { chosen.contains($0.seq) }.map(\.id)
            let built: BuiltPackage?
            do { built = try builder.build(n: n, candidates: candidates, now: now()) } catch {
                throw UplinkError(operation: "build package", underlying: error.description)
            }
            guard let built else {
                let held = invalid(candidates)
                try store.holdBack(receiver: settings.name, records: held, dequeue: dequeue, now: now())
                continue
            }
            try store.fix(receiver: settings.name, built, dequeue: dequeue, now: now())
            logger.info("fixed \(built.packageId): \(built.memberSeqs.count) record(s) resent from dead letters")
            return stored(built)
        }
    }

    /// One step: send the pending (or next) package once if it is due, and apply the answer.
    public func step() async throws(UplinkError) -> UplinkStep {
        guard let package = try nextPackage() else {
            var state = try store.receiverState(settings.name)
            if state.kind == .backingOff || state.nextRetryAt != nil {
                state.kind = .connected
                state.nextRetryAt = nil
                try store.saveReceiverState(settings.name, state, now: now())
            }
            return .idle
        }
        let checkedAt = now()
        // Due times are wall-clock times (they must survive a restart). A last attempt later than now means the clock
        // was set back since (an NTP step, an operator): waiting for the stored time would add the step to the
        // backoff, hours possibly, so the package is due now and the next failure schedules from the new clock.
        if let due = package.nextAttemptAt, due > checkedAt, !(package.lastAttemptAt.map { $0 > checkedAt } ?? false) {
            return .waiting(packageId: package.packageId, until: due, attempted: false)
        }
        let request = HTTPRequest.post(settings.url, headers: PUIWire.headers(action: PUIWire.submitAction), body: package.request)
        // While the package is on the wire, take the next one (built ahead during the previous step, or now) and
        // start building the one after it, so that the receipt and the next package's fixing share one commit
        // and building overlaps applying and sending.
        let client = self.client
        async let answer = Self.send(request, with: client)
        let ahead = await aheadPackage(after: package)
        let outcome: SubmitOutcome
        switch await answer {
        case .success(let response):
            outcome = PUIWire.classify(status: response.status, body: response.body, retryAfter: response.retryAfter(now: now()),
                                       packageId: package.packageId, recordCount: package.recordCount)
        case .failure(let error):
            if case .cancelled = error { throw UplinkError(operation: "send \(package.packageId)", underlying: "cancelled") }
            // Under TLS 1.3 a receiver refusing our certificate shows up as a lost connection: name the cause.
            let cause = clientCertificateProblem().map { "\($0); " } ?? ""
            outcome = .retry(reason: cause + error.description, retryAfter: nil)
        }
        let time = now()
        var state = try store.receiverState(settings.name)
        switch outcome {
        case .receipt(let receipt):
            state = ReceiverState(kind: .connected, failingSince: nil, consecutiveFailures: 0, lastError: nil,
                                  lastSuccessAt: time, nextRetryAt: nil)
            let fixed = try store.applyReceipt(receiver: settings.name, package: package, receipt: receipt, now: time,
                                               resolution: .init(consumer: settings.consumer, state: state), fixing: ahead)
            if fixed, let ahead {
                fixedAhead = stored(ahead.package)
            } else {
                dropPrebuilding()
            }
            let rejected = receipt.rejected.isEmpty ? "" : "; rejected: " + Dictionary(grouping: receipt.rejected, by: \.code)
                .map { "\($0.key)×\($0.value.count)" }.sorted().joined(separator: ", ")
            logger.info("\(package.packageId): receipt \(receipt.accepted) accepted, \(receipt.duplicates) duplicates, \(receipt.rejected.count) rejected\(rejected)")
            return .delivered(packageId: package.packageId, outcome: "receipt")
        case .refused(let fault):
            state = ReceiverState(kind: .connected, failingSince: nil, consecutiveFailures: 0,
                                  lastError: Logger.oneLine("\(package.packageId) refused: \(fault.code ?? fault.faultCode) \(fault.message)"),
                                  lastSuccessAt: time, nextRetryAt: nil)
            dropPrebuilding()
            try store.applyRefusal(receiver: settings.name, package: package, fault: fault, now: time,
                                   resolution: .init(consumer: settings.consumer, state: state))
            // E103 for a package fixed here once: the receiver has seen this number with other content, which
            // happens when the state directory (and with it the PackageId sequence) was rebuilt or copied.
            let hint = fault.code == "E103"
                ? " (the receiver already has this PackageId: was the state directory rebuilt or copied? Set first_package_number of receiver \(settings.name) above the highest number it has seen from \(settings.sender), restart, then esgate deadletter resend)"
                : ""
            logger.error("\(package.packageId) refused by the receiver: \(fault.code ?? fault.faultCode) \(fault.message); its \(package.recordCount) records are dead letters\(hint)")
            return .delivered(packageId: package.packageId, outcome: "refused \(fault.code ?? fault.faultCode)")
        case .retry(let cause, let retryAfter):
            // Stored and shown in status, one line (a parser's message may end in a line break).
            let reason = Logger.oneLine(cause)
            dropPrebuilding()
            let failures = state.consecutiveFailures + 1
            let delay = backoff.delay(failures: failures, retryAfter: retryAfter)
            let next = time.addingTimeInterval(Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
            try store.recordAttemptFailure(receiver: settings.name, packageId: package.packageId, error: reason, nextAttempt: next, now: time)
            state = ReceiverState(kind: .backingOff, failingSince: state.failingSince ?? time, consecutiveFailures: failures,
                                  lastError: reason, lastSuccessAt: state.lastSuccessAt, nextRetryAt: next)
            try store.saveReceiverState(settings.name, state, now: time)
            logger.warning("\(package.packageId) attempt \(package.attempts + 1) failed: \(reason); next attempt in \(String(format: "%.1f", next.timeIntervalSince(time))) s")
            return .waiting(packageId: package.packageId, until: next, attempted: true)
        }
    }

    private static func send(_ request: HTTPRequest, with client: HTTPClient) async -> Result<HTTPResponse, HTTPClientError> {
        do { return .success(try await client.send(request)) } catch { return .failure(error) }
    }

    /// The package after `package` from the journal, built but not fixed; nil when there is none yet, when
    /// resends are queued, or with `verify_packages` (its X100 path fixes alone). It is the one `prebuilder` built
    /// during the previous step when that was started for this number and journal position and found a package;
    /// otherwise it is built here. Either way, the package after it is then started on `prebuilder`.
    ///
    /// Only the uplink's own connections are used here (`store`, `journal`); the pre-builder reads the journal
    /// through its own. Whatever it built is still checked by `fixAheadIfStillNext` when it is fixed.
    /// Forgets the package being built ahead, and stops its chain: nothing will ask for it.
    private func dropPrebuilding() {
        prebuilding?.abandon()
        prebuilding = nil
    }

    private func aheadPackage(after package: StoredPackage) async -> UplinkStore.FixAhead? {
        let job = prebuilding
        prebuilding = nil
        guard !builder.verify, (try? store.queuedResendCount(receiver: settings.name)) == 0,
              let cursor = try? journal.cursor(settings.consumer) else {
            job?.abandon()
            return nil
        }
        // Where `nextPackage` would start once this package is resolved (records held back behind the cursor
        // stay behind it).
        let after = max(package.lastSeq, cursor)
        let n = package.n + 1
        var ahead: UplinkStore.FixAhead?
        var prebuilt = false
        if let job, job.n == n, job.after == after, let result = await job.result(),
           result.package.n == n, result.after == after {
            ahead = result
            prebuilt = true
        } else {
            job?.abandon()
            ahead = buildAhead(n: n, after: after)
        }
        if let ahead, let last = ahead.package.memberSeqs.last {
            // The cursor only moves forward, to this package's last seq once it is resolved.
            let next = max(last, cursor)
            if prebuilt, let job, let successor = job.successor, successor.n == n + 1, successor.after == next {
                prebuilder.claim(successor)
                prebuilding = successor
            } else {
                job?.successor?.abandon()
                prebuilding = prebuilder.start(n: n + 1, after: next)
            }
        } else {
            job?.successor?.abandon()
        }
        return ahead
    }

    /// Package number `n` from the journal entries after `after`, built (not fixed) on this thread.
    private func buildAhead(n: Int64, after: Int64) -> UplinkStore.FixAhead? {
        // Nil from the one-pass path: a record to hold back (or `verify`), which the synchronous path handles.
        guard let built = try? builder.buildDirect(n: n, from: journal, after: after,
                                                   types: settings.recordTypes.isEmpty ? nil : settings.recordTypes, now: now()) else {
            return nil
        }
        return UplinkStore.FixAhead(package: built, after: after)
    }

    /// Why the configured client certificate cannot work (none over HTTPS, expired, not yet valid, unreadable);
    /// nil when it is fine.
    func clientCertificateProblem() -> String? {
        guard let file = settings.client.tls.clientCertificateFile else {
            guard settings.url.lowercased().hasPrefix("https://") else { return nil }
            return "no client certificate configured (cert_file and key_file of receiver \(settings.name)): the receiver refuses a TLS handshake without one (PUI mutual TLS)"
        }
        do {
            let info = try CertificateInfo.load(file: file)
            let time = now()
            if info.notAfter < time {
                return "client certificate \(file) expired on \(beijingTimestamp(info.notAfter)): the receiver refuses the TLS handshake; install a renewed certificate (esgate certs check)"
            }
            if info.notBefore > time {
                return "client certificate \(file) is not valid before \(beijingTimestamp(info.notBefore)) (check the clock)"
            }
            return nil
        } catch {
            return "client certificate unusable: \(error)"
        }
    }

    private func advance(to seq: Int64) throws(UplinkError) {
        try journalCall("advance cursor") { () throws(JournalError) in try journal.advanceCursor(settings.consumer, to: seq) }
    }

    /// Sends until the journal is drained for this receiver, or the next attempt is further away than `maxWait`
    /// (the receiver is failing), or `deadline` passes.
    public func drain(maxWait: Duration = .seconds(30), deadline: Date? = nil) async throws(UplinkError) -> DrainSummary {
        var summary = DrainSummary(receiver: settings.name)
        let maxWaitSeconds = Double(maxWait.components.seconds) + Double(maxWait.components.attoseconds) / 1e18
        while !Task.isCancelled {
            if let deadline, now() >= deadline { break }
            let result = try await step()
            switch result {
            case .idle:
                summary.drained = true
                return summary
            case .delivered:
                summary.packagesResolved += 1
                summary.attempts += 1
            case .waiting(_, let until, let attempted):
                if attempted { summary.attempts += 1 }
                let wait = until.timeIntervalSince(now())
                if wait > maxWaitSeconds || (deadline.map { until > $0 } ?? false) {
                    summary.lastError = try store.receiverState(settings.name).lastError
                    return summary
                }
                if wait > 0 { try? await Task.sleep(for: .milliseconds(Int64(wait * 1000) + 1)) }
            }
        }
        summary.lastError = try store.receiverState(settings.name).lastError
        return summary
    }

    /// Runs until the task is cancelled: sends whatever the journal holds, polls every `poll` when idle.
    public func run(poll: Duration = .seconds(1)) async {
        while !Task.isCancelled {
            do {
                switch try await step() {
                case .idle:
                    try? await Task.sleep(for: poll)
                case .delivered:
                    continue
                case .waiting(_, let until, _):
                    let wait = max(until.timeIntervalSince(now()), 0.001)
                    try? await Task.sleep(for: .milliseconds(Int64(min(wait, 3600) * 1000)))
                }
            } catch {
                if Task.isCancelled { return }
                logger.error("\(error); retrying in 5 s")
                try? await Task.sleep(for: .seconds(5))
            }
        }
    }
}
