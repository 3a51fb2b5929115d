import Foundation
import Testing
@testable import GatewayConfig

/// A temporary folder with files, removed at the end of the test.
final class TempFolder {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let file = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: file)
        return file.path
    }
}

@Suite struct GatewayConfigurationTests {
    @Test func readsAllKeysAndResolvesPathsAgainstTheFile() throws {
        let folder = try TempFolder()
        let file = try folder.write("gateway.yaml", """
            district: "410103"
            state_dir: ${STATE:-var/state}
            log_level: debug
            receivers:
              - name: province
                url: https://127.0.0.1:8443/pui
                division: "410000"
                cert_file: certs/client.pem
              - name: city
                url: https://127.0.0.1:8444/pui
                division: "410100"
                verify_packages: true
            """)
        var errors: [ConfigError] = []
        let config = try #require(GatewayConfiguration.load(file: file, environment: [:], errors: &errors))
        #expect(errors.isEmpty)
        #expect(config.receivers.map(\.verifyPackages) == [false, true], "libxml2 re-check of packages only when asked")
        #expect(config.district == "410103")
        #expect(config.stateDirectory == folder.url.appendingPathComponent("var/state").path)
        #expect(config.logLevel == .debug)
        #expect(config.receivers.first?.certificateFile == folder.url.appendingPathComponent("certs/client.pem").path)
    }

    @Test func environmentVariablesAreSubstituted() throws {
        let folder = try TempFolder()
        let file = try folder.write("gateway.yaml", "district: \"${DISTRICT}\"\nstate_dir: /data/${NAME}/state\n")
        var errors: [ConfigError] = []
        let config = GatewayConfiguration.load(file: file, environment: ["DISTRICT": "410103", "NAME": "esgate"], errors: &errors)
        #expect(errors.isEmpty)
        #expect(config?.stateDirectory == "/data/esgate/state")
        #expect(config?.district == "410103")
    }

    /// An error with no line (a file that is not there) names the file alone: no line 0 for an editor to go to.
    @Test func anErrorWithoutALineNamesTheFileAlone() {
        var errors: [ConfigError] = []
        _ = GatewayConfiguration.load(file: "/nonexistent/gateway.yaml", environment: [:], errors: &errors)
        #expect(errors.first?.description.hasPrefix("/nonexistent/gateway.yaml: ") == true, "\(errors)")
        #expect(ConfigError(file: "a.yaml", line: 3, key: "k", message: "m").description == "a.yaml:3: k: m")
    }

    @Test func everyErrorNamesFileLineAndKey() throws {
        let folder = try TempFolder()
        let file = try folder.write("gateway.yaml", """
            district: "4101"
            state_dir: ${MISSING_VAR}
            log_level: loud
            colour: blue
            receivers:
              - name: province
                division: "410000"
                retries: 5
            """)
        var errors: [ConfigError] = []
        _ = GatewayConfiguration.load(file: file, environment: [:], errors: &errors)
        let described = errors.map(\.description)
        #expect(described.contains("\(file):1: district: must be a 6-digit division code (GB/T 2260), found '4101'"))
        #expect(described.contains("\(file):2: state_dir: environment variable MISSING_VAR is not set"))
        #expect(described.contains { $0.hasPrefix("\(file):3: log_level: 'loud' is not one of") })
        #expect(described.contains("\(file):4: colour: unknown key"))
        #expect(described.contains("\(file):6: receivers[0].url: required key is missing"))
        #expect(described.contains("\(file):8: receivers[0].retries: unknown key"))
        #expect(errors.count == 6)
    }

    @Test func syntaxErrorsAreReportedWithTheirLine() throws {
        let folder = try TempFolder()
        let file = try folder.write("gateway.yaml", "district: \"410103\"\nreceivers: [\n")
        var errors: [ConfigError] = []
        #expect(GatewayConfiguration.load(file: file, environment: [:], errors: &errors) == nil)
        #expect(errors.count == 1)
        #expect(errors.first?.file == file)
        #expect((errors.first?.line ?? 0) >= 2)
    }
}

@Suite struct AdapterConfigurationTests {
    /// The errors of loading `text` as an adapter file written at `name` in `folder`, and the file's path.
    private func loadErrors(_ text: String, as name: String, in folder: TempFolder) throws -> (errors: [ConfigError], file: String) {
        let file = try folder.write(name, text)
        var errors: [ConfigError] = []
        _ = AdapterConfiguration.load(file: file, environment: [:], errors: &errors)
        return (errors, file)
    }

    @Test func csvDropDefaultsAndTypes() throws {
        let folder = try TempFolder()
        let file = try folder.write("adapters/a.yaml", """
            name: hall
            kind: csv-drop
            mapping: cases
            csv:
              folder: ../drop
              ready: marker
              settle_time: 500ms
              encoding: gb18030
            """)
        var errors: [ConfigError] = []
        let adapter = try #require(AdapterConfiguration.load(file: file, environment: [:], errors: &errors))
        #expect(errors.isEmpty)
        let csv = try #require(adapter.csv)
        #expect(csv.folder == folder.url.appendingPathComponent("drop").path)
        #expect(csv.ready == .marker)
        #expect(csv.settleTime == .milliseconds(500))
        #expect(csv.encoding == .gb18030)
        #expect(csv.pollInterval == .seconds(5))
        #expect(csv.archiveFolder == folder.url.appendingPathComponent("drop/archive").path)
    }

    @Test func wrongTypesAndUnknownKeysAreErrors() throws {
        let (errors, file) = try loadErrors("""
            kind: ftp-pull
            mapping: [a, b]
            csv:
              folder: /x
              batch_rows: many
              poll_interval: often
              ready: sometimes
              extra: 1
            """, as: "a.yaml", in: TempFolder())
        let described = errors.map(\.description)
        #expect(described.contains { $0.hasPrefix("\(file):1: kind: 'ftp-pull' is not one of") })
        #expect(described.contains("\(file):2: mapping: expected a text value, found a list"))
        #expect(described.contains("\(file):5: csv.batch_rows: expected an integer, found 'many'"))
        #expect(described.contains { $0.hasPrefix("\(file):6: csv.poll_interval: expected a duration") })
        #expect(described.contains { $0.hasPrefix("\(file):7: csv.ready: 'sometimes' is not one of: settle, marker, rename") })
        #expect(described.contains("\(file):8: csv.extra: unknown key"))
    }

    /// A setting that the chosen watermark or mode never reads would be silently without effect: `lag: 5m` on an
    /// integer watermark let late ids go unread while config check said ok (from a new-user trial).
    @Test func settingsTheWatermarkOrModeWouldIgnoreAreErrors() throws {
        let folder = try TempFolder()
        func errors(_ odbc: String) throws -> [String] {
            let (errors, file) = try loadErrors("name: db\nkind: odbc\nmapping: m\nodbc:\n  connection: \"Driver={X}\"\n  query: SELECT * FROM t\n" + odbc,
                                                as: "adapters/db.yaml", in: folder)
            return errors.map { $0.description.replacingOccurrences(of: file, with: "db.yaml") }
        }
        #expect(try errors("  mode: incremental\n  watermark_column: id\n  watermark_type: integer\n  lag: 5m\n")
            == ["db.yaml:10: odbc.lag: applies to watermark_type timestamp; an integer watermark takes its window in ids: lag_ids"])
        #expect(try errors("  mode: incremental\n  watermark_column: updated_at\n  lag_ids: 5\n")
            == ["db.yaml:9: odbc.lag_ids: applies to watermark_type integer; a timestamp watermark takes its window as a duration: lag"])
        #expect(try errors("  mode: snapshot\n  watermark_column: updated_at\n  lag: 5m\n")
            == ["db.yaml:8: odbc.watermark_column: applies only to mode incremental", "db.yaml:9: odbc.lag: applies only to mode incremental"])
        #expect(try errors("  mode: incremental\n  watermark_column: id\n  watermark_type: integer\n  lag_ids: 5\n").isEmpty)
        // A misspelt mode or type is the one error: nothing about the keys of a mode or type the file never chose.
        let misspeltMode = try errors("  mode: incremantal\n  watermark_column: updated_at\n  lag: 5m\n")
        #expect(misspeltMode.count == 1 && misspeltMode.first?.hasPrefix("db.yaml:7: odbc.mode: 'incremantal' is not one of") == true, "\(misspeltMode)")
        let misspeltType = try errors("  mode: incremental\n  watermark_column: id\n  watermark_type: integr\n  lag_ids: 5\n")
        #expect(misspeltType.count == 1 && misspeltType.first?.hasPrefix("db.yaml:9: odbc.watermark_type: 'integr' is not one of") == true, "\(misspeltType)")
        #expect(try errors("  mode: incremental\n  watermark_column: updated_at\n  lag: 5m\n").isEmpty)
    }

    @Test func aMisspeltKeyGetsTheKnownOneAndErrorsComeInLineOrder() throws {
        let (errors, file) = try loadErrors("""
            name: db
            kind: odbc
            mapping: m
            odbc:
              connection: "Driver={PostgreSQL Unicode}"
              mode: incremental
              query: SELECT * FROM t
              watermark_colum: gxsj
              lag: soon
              Batch_Rows: 10
            """, as: "adapters/db.yaml", in: TempFolder())
        let described = errors.map(\.description)
        #expect(described.contains("\(file):8: odbc.watermark_colum: unknown key (did you mean watermark_column?)"), "\(described)")
        #expect(described.contains("\(file):10: odbc.Batch_Rows: unknown key (did you mean batch_rows?)"), "\(described)")
        // The reader finds them key by key; the operator reads the file top down.
        #expect(errors.map(\.line) == errors.map(\.line).sorted() && errors.count == 4, "\(described)")
        // Nothing close enough: no guess.
        #expect(ConfigSection.closest(to: "colour", among: ["log_level", "district"]) == nil)
        #expect(ConfigSection.closest(to: "lag", among: ["lag_ids", "log"]) == "log")
    }

    @Test func durationsParse() {
        #expect(parseDuration("250ms") == .milliseconds(250))
        #expect(parseDuration("2m") == .seconds(120))
        #expect(parseDuration("1.5s") == .milliseconds(1500))
        #expect(parseDuration("3") == .seconds(3))
        #expect(parseDuration("soon") == nil)
        #expect(parseDuration("-1s") == nil)
    }
}

@Suite struct SupervisionConfigurationTests {
    @Test func thresholdsAndDisabledRulesAreRead() throws {
        let folder = try TempFolder()
        let file = try folder.write("gateway.yaml", """
            district: "410103"
            supervision:
              late_report_hours: 48
              supervised_hours: "09:00-17:00"
              disabled_rules: [SP01, SP02]
            """)
        var errors: [ConfigError] = []
        let config = try #require(GatewayConfiguration.load(file: file, environment: [:], errors: &errors))
        #expect(errors.isEmpty)
        #expect(config.supervision.enabled)
        #expect(config.supervision.lateReportHours == 48)
        #expect(config.supervision.supervisedFromMinute == 540)
        #expect(config.supervision.supervisedUntilMinute == 1020)
        #expect(config.supervision.disabledRules == ["SP01", "SP02"])
        #expect(config.supervision.complaintAcceptanceWorkingDays == 5, "unset thresholds keep the spec's defaults")
    }

    @Test func aBooleanSwitchesItOffAndBadValuesAreLocated() throws {
        let folder = try TempFolder()
        let off = try folder.write("off.yaml", "district: \"410103\"\nsupervision: false\n")
        var errors: [ConfigError] = []
        #expect(GatewayConfiguration.load(file: off, environment: [:], errors: &errors)?.supervisionEnabled == false)
        let bad = try folder.write("bad.yaml", """
            district: "410103"
            supervision:
              supervised_hours: "late"
              disabled_rules: [XK99]
              colour: red
            """)
        errors = []
        _ = GatewayConfiguration.load(file: bad, environment: [:], errors: &errors)
        let described = errors.map(\.description)
        #expect(described.contains("\(bad):3: supervision.supervised_hours: expected HH:MM-HH:MM, found 'late'"))
        #expect(described.contains { $0.hasPrefix("\(bad):4: supervision.disabled_rules: 'XK99' is not a rule code") })
        #expect(described.contains("\(bad):5: supervision.colour: unknown key"))
    }
}
