import Foundation
import GatewayConfig
import GatewayRuntime
import SandboxReceiver
import TestSupport
import Testing
import Uplink

// Operator-facing behaviour of the uplink commands through the binary: exit codes (0 ok, 1 failure, 2 usage)
// and errors that name the receiver and the file at fault.

extension TestEnvironment {
    /// writeGatewayConfig's gateway.yaml, its receiver given a key_passphrase_file that does not exist.
    func writeConfigWithMissingPassphraseFile() throws -> (config: String, passphrase: String) {
        let config = try writeGatewayConfig(port: 9)
        let passphrase = path("missing-client.pass")
        let yaml = try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "    timeout: 10s\n", with: "    timeout: 10s\n    key_passphrase_file: \(passphrase)\n")
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        return (config, passphrase)
    }
}

@Suite struct OperatorCommandTests {
    /// `uplink run --once` exits 0 only when every receiver drained. An uplink that cannot even start (here: an
    /// unreadable key passphrase file) drained nothing: exit 1, naming the receiver and the file.
    @Test func uplinkRunOnceThatCannotStartExitsOne() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let (config, passphrase) = try environment.writeConfigWithMissingPassphraseFile()
        let result = try await runEsgate(["uplink", "run", "--once", "--max-wait", "0", "--config", config], environment: environment)
        #expect(result.code == 1, "\(result.output)")
        #expect(result.output.contains("province") && result.output.contains(passphrase), "\(result.output)")
    }

    /// `run --once` is what cron calls: a receiver left failing is a failed run (exit 1) even though the ingest
    /// worked, and the JSON summary carries each receiver's push.
    @Test func runOnceWithAFailingReceiverExitsOneAndReportsTheUplink() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let (config, _) = try environment.writeConfigWithMissingPassphraseFile()
        let result = try await runEsgate(["run", "--once", "--max-wait", "0", "--json", "--config", config], environment: environment)
        #expect(result.code == 1, "\(result.output)")
        // The log (stderr) shares the output file: the JSON summary is the part from its first to its last brace.
        let start = try #require(result.output.firstIndex(of: "{")), end = try #require(result.output.lastIndex(of: "}"))
        let object = try JSONSerialization.jsonObject(with: Data(result.output[start...end].utf8)) as? [String: Any]
        let uplink = try #require(object?["uplink"] as? [[String: Any]], "\(result.output)")
        #expect(uplink.count == 1 && uplink.first?["receiver"] as? String == "province" && uplink.first?["drained"] as? Bool == false)
        let text = try await runEsgate(["run", "--once", "--max-wait", "0", "--config", config], environment: environment)
        #expect(text.code == 1 && text.output.contains("failed: receiver(s) failing: province"), "\(text.output)")
    }

    /// `certs check` exists to tell an operator before the uplink does that its TLS files will not work. A
    /// configured key_passphrase_file that cannot be read stops the uplink ("cannot read key_passphrase_file"),
    /// so certs check must report it as an error (exit 1), not "key matches" and exit 0.
    @Test func certsCheckReportsAnUnreadableKeyPassphraseFile() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let (config, passphrase) = try environment.writeConfigWithMissingPassphraseFile()
        let result = try await runEsgate(["certs", "check", "--config", config], environment: environment)
        #expect(result.code == 1, "\(result.output)")
        #expect(result.output.contains("ERROR") && result.output.contains(passphrase), "\(result.output)")
        // Status never connects, so it does not need the passphrase: it still shows the receiver's cursor and
        // dead letters, names the unreadable file, and exits 1 because the uplink cannot deliver.
        let overview = try await runEsgate(["gateway", "status", "--config", config], environment: environment)
        #expect(overview.code == 1 && overview.output.contains("adapters:"), "\(overview.output)")
        #expect(overview.output.contains("province →") && overview.output.contains("cursor uplink:province")
                && overview.output.contains("dead letters: 0"), "\(overview.output)")
        #expect(overview.output.contains("error: ") && overview.output.contains(passphrase), "\(overview.output)")
        #expect(!overview.output.contains("cannot read the uplink's state"), "\(overview.output)")
    }

    /// `run --once` alone (from cron) must fetch the province's reference data at start, as `run` and `uplink run
    /// --once` do: supervision without the calendar computes no deadline.
    @Test func runOnceFetchesTheReferenceDataBeforeSupervising() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        var options = SandboxOptions()
        options.referenceDataFile = fixture("reference-data.xml")
        let server = try environment.sandbox(options)
        defer { server.stop() }
        let config = try environment.writeGatewayConfig(port: Int(server.port))
        let yaml = try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "supervision: false\n", with: "supervision: true\n")
            .replacingOccurrences(of: "reference_data: \(fixture("reference-data.xml"))\n", with: "")
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        let run = try await runEsgate(["run", "--once", "--config", config], environment: environment)
        #expect(run.code == 0, "\(run.output)")
        #expect(FileManager.default.fileExists(atPath: environment.path("state/reference-data.xml")), "\(run.output)")
        #expect(!run.output.contains("no calendar"), "\(run.output)")
    }

    /// A passphrase that does not open the encrypted key stops every send: `uplink status` lists it among the
    /// errors (not the warnings), names where the passphrase came from, and exits 1.
    @Test func wrongKeyPassphraseIsAStatusErrorNamingItsSource() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let (config, passphrase) = try environment.writeConfigWithMissingPassphraseFile()
        let encrypted = environment.path("client-encrypted.key")
        let result = try runProcess("/usr/bin/openssl", ["pkey", "-in", environment.cert("client.key"), "-aes256",
                                                        "-passout", "pass:s3cret", "-out", encrypted])
        #expect(result.status == 0, "\(result.output)")
        try "wrong\n".write(toFile: passphrase, atomically: true, encoding: .utf8)
        let yaml = try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: environment.cert("client.key"), with: encrypted)
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        let status = try await runEsgate(["uplink", "status", "--json", "--config", config], environment: environment)
        #expect(status.code == 1, "\(status.output)")
        let object = try JSONSerialization.jsonObject(with: Data(status.output.utf8)) as? [String: Any]
        let errors = try #require(object?["certificateErrors"] as? [String], "\(status.output)")
        #expect(errors.contains { $0.contains("passphrase does not open it (passphrase from key_passphrase_file \(passphrase))") }, "\(errors)")
        #expect((object?["certificateWarnings"] as? [String])?.isEmpty == true, "\(status.output)")
    }

    /// A mistyped receiver name must not read as "no dead letters".
    @Test func deadLetterListOfAnUnknownReceiverIsAUsageError() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let config = try environment.writeGatewayConfig(port: 9)
        let known = try await runEsgate(["deadletter", "list", "--receiver", "province", "--config", config], environment: environment)
        #expect(known.code == 0 && known.output.contains("no dead letters"), "\(known.output)")
        let typo = try await runEsgate(["deadletter", "list", "--receiver", "provinse", "--config", config], environment: environment)
        #expect(typo.code == 2 && typo.output.contains("no receiver named provinse") && typo.output.contains("receivers: province"),
                "\(typo.output)")
    }

    /// `config check` is what an operator runs before going live: a certificate, key or passphrase file that
    /// is not there would only show at the first send, so it is an error naming gateway.yaml's line and key.
    @Test func configCheckNamesMissingCertificateKeyAndPassphraseFiles() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let (config, passphrase) = try environment.writeConfigWithMissingPassphraseFile()
        let good = try await runEsgate(["config", "check", "--config", config], environment: environment)
        #expect(good.code == 1, "\(good.output)")
        let lines = try String(contentsOfFile: config, encoding: .utf8).components(separatedBy: "\n")
        guard let passphraseLine = lines.firstIndex(where: { $0.contains("key_passphrase_file:") }) else {
            Issue.record("no key_passphrase_file in \(config)"); return
        }
        #expect(good.output.contains("\(config):\(passphraseLine + 1): receivers[0].key_passphrase_file: \(passphrase): no such file"),
                "\(good.output)")
        // A missing client certificate is named the same way, and a fixed configuration is ok again.
        let certificate = environment.cert("client.pem")
        let yaml = lines.joined(separator: "\n")
        try yaml.replacingOccurrences(of: certificate, with: certificate + ".gone").write(toFile: config, atomically: true, encoding: .utf8)
        let missingCertificate = try await runEsgate(["config", "check", "--config", config], environment: environment)
        #expect(missingCertificate.code == 1 && missingCertificate.output.contains("receivers[0].cert_file: \(certificate).gone: no such file"),
                "\(missingCertificate.output)")
        try "s3cret\n".write(toFile: passphrase, atomically: true, encoding: .utf8)
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        let fixed = try await runEsgate(["config", "check", "--config", config], environment: environment)
        #expect(fixed.code == 0 && fixed.output.contains(": ok"), "\(fixed.output)")
    }
}

@Suite struct KeyPassphraseTests {
    /// The client key's passphrase may come from a file or from the environment (`key_passphrase_env: NAME`):
    /// an encrypted key with its passphrase in the environment delivers over mutual TLS; a variable that is not
    /// set is a configuration error naming the receiver's key and the variable.
    @Test func encryptedClientKeyWithPassphraseFromTheEnvironmentDelivers() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let encryptedKey = environment.path("client-encrypted.key")
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["pkey", "-in", environment.cert("client.key"), "-aes256", "-passout", "pass:s3cret", "-out", encryptedKey]
        try openssl.run()
        openssl.waitUntilExit()
        #expect(openssl.terminationStatus == 0)
        try fillJournal(environment.journalPath, count: 3)
        let server = try environment.sandbox()
        defer { server.stop() }
        let yaml = """
            district: "410103"
            state_dir: \(environment.path("state"))
            receivers:
              - name: province
                url: \(url(server.port))
                division: "410000"
                ca_file: \(environment.cert("ca.pem"))
                cert_file: \(environment.cert("client.pem"))
                key_file: \(encryptedKey)
                key_passphrase_env: ESGATE_TEST_KEY_PASSPHRASE

            """
        let file = environment.path("gateway.yaml")
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)

        var missing: [ConfigError] = []
        _ = GatewayConfiguration.load(file: file, environment: [:], errors: &missing)
        #expect(missing.contains { $0.key.contains("key_passphrase_env") && $0.message.contains("ESGATE_TEST_KEY_PASSPHRASE") },
                "\(missing)")

        var errors: [ConfigError] = []
        let gateway = try #require(GatewayConfiguration.load(file: file, environment: ["ESGATE_TEST_KEY_PASSPHRASE": "s3cret"],
                                                             errors: &errors))
        #expect(errors.isEmpty, "\(errors)")
        let receiver = try #require(gateway.receivers.first)
        let uplink = try ReceiverUplink(settings: UplinkSettings.from(receiver, gateway: gateway), journalPath: environment.journalPath,
                                        validator: try makeValidator(), logger: .silent)
        let summary = try await uplink.drain(maxWait: .seconds(2))
        #expect(summary.drained, "\(summary.lastError ?? "")")
        #expect(server.receiver.records().count == 3)

        // From an operator's shell, which lacks the service's variable: status works, and says the key was not
        // checked rather than calling the passphrase wrong.
        for folder in ["adapters", "mappings"] {
            try FileManager.default.createDirectory(atPath: environment.path(folder), withIntermediateDirectories: true)
        }
        let status = try await runEsgate(["uplink", "status", "--json", "--config", file], environment: environment)
        #expect(status.code == 0, "\(status.output)")
        #expect(status.output.contains("key not checked: key_passphrase_env ESGATE_TEST_KEY_PASSPHRASE is not set in this shell"),
                "\(status.output)")
        #expect(!status.output.contains("does not open it"), "\(status.output)")
    }
}

extension OperatorCommandTests {
    /// HTTPS only; plain http:// only for a receiver marked insecure_plaintext (the uplink refuses it on every
    /// attempt). `config check` must say so, naming the receiver's url, instead of "ok".
    @Test func plainHTTPReceiverWithoutInsecurePlaintextIsAConfigurationError() async throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        let config = try environment.writeGatewayConfig(port: 9)
        let yaml = try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "url: https://", with: "url: http://")
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        let result = try await runEsgate(["config", "check", "--config", config], environment: environment)
        #expect(result.code == 1, "\(result.output)")
        #expect(result.output.contains("receivers[0].url") && result.output.contains("insecure_plaintext"), "\(result.output)")
        let allowed = yaml.replacingOccurrences(of: "    timeout: 10s\n", with: "    timeout: 10s\n    insecure_plaintext: true\n")
        try allowed.write(toFile: config, atomically: true, encoding: .utf8)
        let ok = try await runEsgate(["config", "check", "--config", config], environment: environment)
        #expect(ok.code == 0, "\(ok.output)")
    }
}

extension OperatorCommandTests {
    /// Spec §1: "The receiver's certificate MUST be verified against the CA the province issued". Without
    /// ca_file the client trusts the system's public CAs instead. `certs check` reported nothing and exited 0;
    /// like a missing cert_file, it is an error naming the receiver (exit 1).
    @Test func certsCheckReportsAReceiverWithoutCAFile() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let config = try environment.writeGatewayConfig(port: 9)
        let yaml = try String(contentsOfFile: config, encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("ca_file:") }.joined(separator: "\n")
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        let result = try await runEsgate(["certs", "check", "--config", config], environment: environment)
        #expect(result.code == 1, "\(result.output)")
        #expect(result.output.contains("province ca") && result.output.contains("no ca_file"), "\(result.output)")
    }
}

extension OperatorCommandTests {
    /// Receiver mistakes that `config check` passed as "ok" and that cost records, not just a failed start:
    /// a `division` that is not a 6-digit division code goes into every package's Receiver, which the schema
    /// refuses (E100: every record became a dead letter); two receivers with the same `name` share one cursor
    /// `uplink:<name>` and one PackageId sequence (one of them silently gets nothing); a `record_types` entry
    /// that is not a PUI record type (a typo) matches nothing, so that receiver silently gets nothing, with lag 0.
    /// Each must be an error naming the file, the line and the key.
    @Test func receiverDivisionDuplicateNameAndUnknownRecordTypeAreConfigurationErrors() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        for folder in ["adapters", "mappings"] {
            try FileManager.default.createDirectory(atPath: environment.path(folder), withIntermediateDirectories: true)
        }
        let yaml = """
            district: "410103"
            state_dir: state
            receivers:
              - name: province
                url: https://127.0.0.1:9/pui
                division: "41000"
              - name: province
                url: https://127.0.0.1:10/pui
                division: "410100"
                record_types: [Alert, Scores]

            """
        let file = environment.path("gateway.yaml")
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        guard case .failure(let failure) = loadConfiguration(path: file, environment: [:]) else {
            Issue.record("config with a bad division, a duplicate receiver name and an unknown record type loaded")
            return
        }
        let errors = failure.errors
        #expect(errors.contains { $0.file == file && $0.line == 6 && $0.key == "receivers[0].division" && $0.message.contains("41000") },
                "\(errors)")
        #expect(errors.contains { $0.file == file && $0.line == 7 && $0.key == "receivers[1].name" && $0.message.contains("province") },
                "\(errors)")
        #expect(errors.contains { $0.file == file && $0.line == 10 && $0.key == "receivers[1].record_types"
                                  && $0.message.contains("Scores") && !$0.message.contains("'Alert'") }, "\(errors)")
        #expect(errors.count == 3, "\(errors)")
    }
}

extension OperatorCommandTests {
    /// A receiver configured without cert_file (and key_file): under TLS 1.3 the receiver's refusal of a
    /// handshake without a client certificate only shows as a lost connection ("Failed sending data to the
    /// peer", CURLcode 55/56), which reads like a network fault. The failure names the cause first, as it does
    /// for an expired client certificate.
    @Test func missingClientCertificateIsNamedAsTheCauseOfTheLostConnection() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 2)
        let server = try environment.sandbox()
        defer { server.stop() }
        var settings = environment.settings(name: "province", url: url(server.port))
        settings.client.tls.clientCertificateFile = nil
        settings.client.tls.clientKeyFile = nil
        let uplink = try ReceiverUplink(settings: settings, journalPath: environment.journalPath, validator: try makeValidator(),
                                        logger: .silent)
        let summary = try await uplink.drain(maxWait: .zero)
        #expect(!summary.drained)
        #expect(summary.lastError?.hasPrefix("no client certificate configured") == true, "\(summary.lastError ?? "")")
        #expect(server.receiver.records().isEmpty)
    }
}
