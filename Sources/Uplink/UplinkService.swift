import Foundation
import GatewayConfig
import GatewayModel
import HTTPClientSupport
import Journal
import XMLSupport

/// What `esgate uplink status` shows for one receiver.
public struct UplinkReceiverStatus: Sendable, Codable {
    public struct LastPackage: Sendable, Codable {
        public var packageId: String
        public var state: String
        public var records: Int
        public var accepted: Int?
        public var duplicates: Int?
        public var rejected: Int?
        public var faultCode: String?
        public var resolvedAt: String?
    }
    public struct Pending: Sendable, Codable {
        public var packageId: String
        public var records: Int
        public var attempts: Int
        public var digest: String
        public var nextAttemptAt: String?
        public var lastError: String?
    }
    public var receiver: String
    public var url: String
    public var receiverCode: String
    public var consumer: String
    public var cursor: Int64
    public var journalLastSeq: Int64
    /// Journal records (of this receiver's types) not yet resolved by a receipt or refusal.
    public var lag: Int
    /// idle, connected or backing_off.
    public var state: String
    public var failingSince: String?
    public var consecutiveFailures: Int
    public var lastError: String?
    public var lastSuccessAt: String?
    public var nextRetryAt: String?
    public var pending: Pending?
    public var lastPackage: LastPackage?
    public var deadLetters: Int
    /// Dead letters put back in the queue (`deadletter resend`) and not yet in a package.
    public var resendQueued: Int
}

/// The whole uplink status: receivers and reference data.
public struct UplinkStatus: Sendable, Codable {
    public var receivers: [UplinkReceiverStatus]
    public var referenceData: ReferenceDataStatus
}

public struct ReferenceDataStatus: Sendable, Codable {
    public var version: String?
    public var source: String
    public var items: Int?
    public var calendar: String?
    public var error: String?
    /// The last GetReferenceData attempt and the last one that succeeded (Beijing time; none with a configured file).
    public var lastFetch: String?
    public var lastGoodFetch: String?
}

extension UplinkStore {
    /// The status of one receiver, read from the journal database.
    public func status(of settings: UplinkSettings) throws(UplinkError) -> UplinkReceiverStatus {
        let cursor = try wrap("read cursor") {
            try database.query("SELECT seq FROM cursors WHERE consumer = ?1", [.text(settings.consumer)]).first?.first?.intValue ?? 0
        }
        let state = try receiverState(settings.name)
        let pending = try pendingPackage(receiver: settings.name)
        let last = try lastResolvedPackage(receiver: settings.name)
        let stamp: (Date?) -> String? = { $0.map(beijingTimestamp) }
        return UplinkReceiverStatus(
            receiver: settings.name, url: settings.url, receiverCode: settings.receiverCode, consumer: settings.consumer,
            cursor: cursor, journalLastSeq: try journalLastSeq(), lag: try journalCount(after: cursor, types: settings.recordTypes),
            state: state.kind.rawValue, failingSince: stamp(state.failingSince), consecutiveFailures: state.consecutiveFailures,
            lastError: state.lastError, lastSuccessAt: stamp(state.lastSuccessAt), nextRetryAt: stamp(state.nextRetryAt),
            pending: pending.map { .init(packageId: $0.packageId, records: $0.recordCount, attempts: $0.attempts, digest: $0.digest,
                                         nextAttemptAt: stamp($0.nextAttemptAt), lastError: $0.lastError) },
            lastPackage: last.map { .init(packageId: $0.id, state: $0.state, records: $0.records, accepted: $0.accepted,
                                          duplicates: $0.duplicates, rejected: $0.rejected, faultCode: $0.faultCode,
                                          resolvedAt: stamp($0.at)) },
            deadLetters: try openDeadLetterCount(receiver: settings.name),
            resendQueued: try queuedResendCount(receiver: settings.name))
    }
}

/// Every configured receiver's uplink, each on its own task with its own connections: a slow or failing
/// receiver never holds another back.
public struct UplinkService: Sendable {
    public let receivers: [UplinkSettings]
    public let journalPath: String
    public let schemaText: String
    public let logger: Logger

    public init(receivers: [UplinkSettings], journalPath: String, schemaText: String, logger: Logger) {
        self.receivers = receivers
        self.journalPath = journalPath
        self.schemaText = schemaText
        self.logger = logger
    }

    /// The uplink of gateway.yaml's enabled receivers.
    public static func configured(_ gateway: GatewayConfiguration, schemaText: String, logger: Logger,
                                  readingSecrets: Bool = true) throws(UplinkError) -> UplinkService {
        var settings: [UplinkSettings] = []
        for receiver in gateway.receivers where receiver.enabled {
            settings.append(try UplinkSettings.from(receiver, gateway: gateway, readingSecrets: readingSecrets))
        }
        return UplinkService(receivers: settings, journalPath: gateway.journalPath, schemaText: schemaText, logger: logger)
    }

    func makeValidator() throws(UplinkError) -> XMLSchemaValidator {
        do { return try XMLSchemaValidator(schemaText: schemaText) } catch {
            throw UplinkError(operation: "compile pui-v1.xsd", underlying: error.description)
        }
    }

    /// Drains every receiver concurrently (`esgate uplink run --once`).
    public func drainAll(maxWait: Duration = .seconds(30), deadline: Date? = nil) async -> [DrainSummary] {
        await withTaskGroup(of: DrainSummary.self) { group in
            for settings in receivers {
                group.addTask {
                    do {
                        let uplink = try ReceiverUplink(settings: settings, journalPath: journalPath,
                                                        validator: try makeValidator(), logger: logger)
                        return try await uplink.drain(maxWait: maxWait, deadline: deadline)
                    } catch {
                        logger.error("\(settings.name): \(error)")
                        var summary = DrainSummary(receiver: settings.name)
                        summary.lastError = "\(error)"
                        return summary
                    }
                }
            }
            var results: [DrainSummary] = []
            for await summary in group { results.append(summary) }
            return results.sorted { $0.receiver < $1.receiver }
        }
    }

    /// Runs every receiver until cancelled (`esgate run`).
    public func runAll(poll: Duration = .seconds(1)) async {
        await withTaskGroup(of: Void.self) { group in
            for settings in receivers {
                group.addTask {
                    while !Task.isCancelled {
                        do {
                            let uplink = try ReceiverUplink(settings: settings, journalPath: journalPath,
                                                            validator: try makeValidator(), logger: logger)
                            await uplink.run(poll: poll)
                            return
                        } catch {
                            logger.error("\(settings.name): \(error); retrying in 10 s")
                            try? await Task.sleep(for: .seconds(10))
                        }
                    }
                }
            }
            await group.waitForAll()
        }
    }

    /// Status of every receiver.
    public func status(reference: ReferenceDataSource?) throws(UplinkError) -> UplinkStatus {
        // The journal first: opening it converts a journal written by an older esgate, whose tables the store's
        // figures would not find.
        do throws(JournalError) { _ = try Journal(path: journalPath) } catch { throw UplinkError(operation: "open journal", underlying: error.description) }
        let store = try UplinkStore(path: journalPath)
        var result: [UplinkReceiverStatus] = []
        for settings in receivers { result.append(try store.status(of: settings)) }
        var referenceStatus = ReferenceDataStatus(version: nil, source: "none", items: nil, calendar: nil, error: nil,
                                                  lastFetch: nil, lastGoodFetch: nil)
        if let reference {
            let data = reference.current ?? reference.loadLocal()
            // The fetch runs in `esgate run`; a status command is another process and learns it from the state file.
            let fetch = reference.lastFetchOutcome()
            referenceStatus = ReferenceDataStatus(
                version: data?.version, source: reference.configuredFile ?? reference.cacheFile, items: data?.items.count,
                calendar: data.map { "\($0.calendar.firstYear)-\($0.calendar.lastYear)" },
                error: reference.lastError ?? fetch?.error, lastFetch: fetch?.lastAttempt, lastGoodFetch: fetch?.lastSuccess)
        }
        return UplinkStatus(receivers: result, referenceData: referenceStatus)
    }
}
