import Foundation
import Testing

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
    }
}
