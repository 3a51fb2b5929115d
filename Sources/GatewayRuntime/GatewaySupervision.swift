// Wiring of the supervision engine into the gateway: reference data from gateway.yaml, one pass after
// `run --once`, and a periodic tick (at most 30 s apart, sooner when a timer is due) during `run`.

import Foundation
import GatewayModel
import Journal
import Monitoring
import Supervision

extension Gateway {
    /// The reference data named by gateway.yaml `reference_data`; without it (or when it cannot be read) the
    /// engine runs without a calendar: no deadlines, and an operational warning.
    public func loadReferenceData() throws(MonitoringError) -> ReferenceData {
        // Without a configured file, the last good copy the uplink fetched from the province (GetReferenceData)
        // is the calendar and catalog the gateway runs on (pui-v1.md section 4).
        let fetched = (configuration.gateway.stateDirectory as NSString).appendingPathComponent("reference-data.xml")
        guard let file = configuration.gateway.referenceDataFile
                ?? (FileManager.default.fileExists(atPath: fetched) ? fetched : nil) else {
            // The engine says so once (it warns about any reference data without a calendar).
            return try ReferenceData.none()
        }
        do {
            return try ReferenceData.load(file: file)
        } catch {
            logger.error("\(error); running without a calendar (no deadlines are computed) until it is fixed")
            return try ReferenceData.none()
        }
    }

    /// A supervision engine on `journal` (its own connection), with the gateway's reference data.
    public func makeSupervisionEngine(journal: Journal, reference: ReferenceData? = nil,
                                      now: @escaping () -> BeijingTime = SupervisionEngine.systemNow) throws(MonitoringError) -> SupervisionEngine {
        let data: ReferenceData
        if let reference { data = reference } else { data = try loadReferenceData() }
        return try SupervisionEngine(journal: journal, reference: data, settings: supervisionSettings,
                                     schema: configuration.schema, logger: logger.with(component: "supervision"), now: now)
    }

    /// gateway.yaml's `supervision:` thresholds as the engine's settings.
    public var supervisionSettings: SupervisionSettings {
        let config = configuration.gateway.supervision
        var settings = SupervisionSettings()
        settings.lateReportHours = config.lateReportHours
        settings.penaltyPromptDaysBeforeDecisionDeadline = config.penaltyPromptDays
        settings.defaultPenaltyDecisionLimitDays = config.defaultPenaltyDecisionDays
        settings.badRatingResponseWorkingDays = config.badRatingResponseWorkingDays
        settings.complaintAcceptanceWorkingDays = config.complaintAcceptanceWorkingDays
        settings.cameraOfflineMinutes = config.cameraOfflineMinutes
        settings.supervisedHoursStartMinute = config.supervisedFromMinute
        settings.supervisedHoursEndMinute = config.supervisedUntilMinute
        settings.responseWorkingDays = config.responseWorkingDays
        settings.enabledRules = Set(RuleCode.allCases.filter { !config.disabledRules.contains($0.rawValue) })
        return settings
    }

    /// One supervision pass over what the journal holds now (`run --once`).
    public func superviseOnce() throws(MonitoringError) -> PassSummary {
        let journal: Journal
        do {
            journal = try openJournal()
        } catch {
            throw .journal(error)
        }
        return try makeSupervisionEngine(journal: journal).runPass()
    }

    /// `run`: a pass at least every `maximumTick`, and right when the earliest timer falls due.
    func supervisionLoop(maximumTick: Duration = .seconds(30)) async throws {
        // A journal that cannot be opened now (disk full, a lost journal being restored) is tried again at every
        // tick, as the adapters do: given up here, supervision would stay off until esgate is restarted.
        var made: SupervisionTicker?
        while made == nil && !Task.isCancelled {
            do {
                made = try makeSupervisionTicker(journal: try openJournal())
            } catch {
                logger.error("supervision cannot start: \(error); retrying in \(maximumTick)")
                try await Task.sleep(for: maximumTick)
            }
        }
        guard let ticker = made else { return }
        let maximumMilliseconds = Int64(maximumTick.components.seconds * 1000)
        while !Task.isCancelled {
            do {
                try ticker.runPass()
            } catch {
                logger.error("supervision pass failed: \(error); retrying at the next tick")
            }
            var wait = maximumMilliseconds
            if let due = try? ticker.engine.nextDueAt() {
                wait = min(wait, max(200, due.millisecondsSinceEpoch - SupervisionEngine.systemNow().millisecondsSinceEpoch))
            }
            try await Task.sleep(for: .milliseconds(wait))
        }
    }

    /// The engine `run` ticks, remade when its reference data file is replaced (see `SupervisionTicker`).
    public func makeSupervisionTicker(journal: Journal,
                                      now: @escaping () -> BeijingTime = SupervisionEngine.systemNow) throws(MonitoringError) -> SupervisionTicker {
        try SupervisionTicker(gateway: self, journal: journal, now: now)
    }

    /// The file `loadReferenceData` reads: gateway.yaml's `reference_data`, else the uplink's fetched copy.
    var referenceDataPath: String {
        configuration.gateway.referenceDataFile
            ?? (configuration.gateway.stateDirectory as NSString).appendingPathComponent("reference-data.xml")
    }
}

/// The supervision engine of a long-running gateway. The uplink fetches reference data while `run` runs (the first
/// copy a few seconds after start when none was cached, a new version every `reference_refresh`) and replaces
/// `<state_dir>/reference-data.xml`; an engine made once at start would keep running without a calendar (or on
/// the old one) until a restart. Before each pass the file is looked at (inode, size, modification time), and when
/// it changed the engine is made again from it, which also re-evaluates the subjects that met a calendar gap.
public final class SupervisionTicker {
    public private(set) var engine: SupervisionEngine
    private let gateway: Gateway
    private let journal: Journal
    private let now: () -> BeijingTime
    private var stamp: [String]?

    init(gateway: Gateway, journal: Journal, now: @escaping () -> BeijingTime) throws(MonitoringError) {
        self.gateway = gateway
        self.journal = journal
        self.now = now
        stamp = Self.stamp(of: gateway.referenceDataPath)
        engine = try gateway.makeSupervisionEngine(journal: journal, now: now)
    }

    /// One pass, on reference data remade first if its file changed since the engine was made.
    @discardableResult
    public func runPass() throws(MonitoringError) -> PassSummary {
        let current = Self.stamp(of: gateway.referenceDataPath)
        if current != stamp {
            stamp = current
            let previous = engine.reference.version
            engine = try gateway.makeSupervisionEngine(journal: journal, now: now)
            gateway.logger.with(component: "supervision").info("reference data version \(previous) → \(engine.reference.version) (\(gateway.referenceDataPath) changed)")
        }
        return try engine.runPass()
    }

    private static func stamp(of path: String) -> [String]? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        return [attributes[.systemFileNumber], attributes[.size], attributes[.modificationDate]].map { "\($0 ?? "")" }
    }
}

/// The `run --once` line about the supervision pass.
func supervisionLine(_ pass: PassSummary) -> String {
    "supervision: \(pass.consumed) records consumed, \(pass.evaluated) subjects evaluated, \(pass.alertsRaised) alerts raised, \(pass.alertsResolved) resolved, \(pass.scoresUpdated) scores updated, \(pass.calendarGaps) calendar gaps, \(String(format: "%.1f", pass.seconds)) s"
}
