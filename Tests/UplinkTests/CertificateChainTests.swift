import CertificateSupport
import Foundation
@testable import GatewayRuntime
import HTTPServerSupport
import SandboxReceiver
import Testing
import TestSupport
import Uplink

// Certificates as a real PKI issues them: a root CA that both sides trust, an issuing (intermediate) CA under
// it, and leaves from the intermediate. The certificate files hold leaf + intermediate, as issued.

/// A root CA, an intermediate CA under it, and leaves issued by the intermediate (openssl CLI, EC P-256).
struct IntermediatePKI {
    let directory: String

    func file(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    private func openssl(_ arguments: [String]) throws {
        let result = try runProcess("/usr/bin/openssl", arguments)
        guard result.status == 0 else { throw TestFailure("openssl \(arguments.joined(separator: " ")): \(result.output)") }
    }

    private func key(_ name: String) throws {
        try openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file("\(name).key")])
    }

    /// Issues `name` from `issuer` with the given extension lines.
    private func issue(_ name: String, subject: String, issuer: String, days: Int, extensions: [String]) throws {
        try key(name)
        try openssl(["req", "-new", "-key", file("\(name).key"), "-subj", subject, "-out", file("\(name).csr")])
        try extensions.joined(separator: "\n").write(toFile: file("\(name).ext"), atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", file("\(name).csr"), "-CA", file("\(issuer).pem"), "-CAkey", file("\(issuer).key"),
                     "-CAcreateserial", "-days", "\(days)", "-sha256", "-extfile", file("\(name).ext"), "-out", file("\(name).pem")])
    }

    /// `root.pem`; `intermediate.pem`; `server.pem`/`client.pem` (leaf only), `server-chain.pem`/`client-chain.pem`
    /// (leaf + intermediate), with their `.key`s.
    static func make(in directory: String) throws -> IntermediatePKI {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pki = IntermediatePKI(directory: directory)
        try pki.key("root")
        try pki.openssl(["req", "-x509", "-new", "-key", pki.file("root.key"), "-subj", "/O=Province/CN=PUI Root CA", "-days", "3650",
                         "-sha256", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                         "-out", pki.file("root.pem")])
        try pki.issue("intermediate", subject: "/O=Province/CN=PUI Issuing CA 1", issuer: "root", days: 1825,
                      extensions: ["basicConstraints=critical,CA:TRUE,pathlen:0", "keyUsage=critical,keyCertSign,cRLSign"])
        try pki.issue("server", subject: "/CN=pui.province", issuer: "intermediate", days: 400,
                      extensions: ["basicConstraints=CA:FALSE", "extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        try pki.issue("client", subject: "/O=District/CN=410103", issuer: "intermediate", days: 400,
                      extensions: ["basicConstraints=CA:FALSE", "extendedKeyUsage=clientAuth"])
        let intermediate = try String(contentsOfFile: pki.file("intermediate.pem"), encoding: .utf8)
        for leaf in ["server", "client"] {
            let text = try String(contentsOfFile: pki.file("\(leaf).pem"), encoding: .utf8)
            try (text + intermediate).write(toFile: pki.file("\(leaf)-chain.pem"), atomically: true, encoding: .utf8)
        }
        return pki
    }
}

@Suite struct CertificateChainTests {
    /// The gateway trusts only the root; the receiver's certificate and the gateway's client certificate come
    /// from an intermediate, each file holding leaf + intermediate. libcurl sends the client chain, so the
    /// receiver (trusting only the root) verifies it, and the package is delivered. `certs check` must then say
    /// that the client certificate chains to the CA: it read only the leaf and warned "does not chain to the
    /// configured CA (unable to get local issuer certificate)", at every uplink start and in every status.
    @Test func clientCertificateFromAnIntermediateChainsAndDelivers() async throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        let pki = try IntermediatePKI.make(in: environment.path("pki"))

        let verified = try CertificateInfo.verify(certificateFile: pki.file("client-chain.pem"), caFile: pki.file("root.pem"))
        #expect(verified.ok, "\(verified.reason)")
        // The leaf alone does not chain: the intermediate is missing.
        #expect(try !CertificateInfo.verify(certificateFile: pki.file("client.pem"), caFile: pki.file("root.pem")).ok)

        try fillJournal(environment.journalPath, count: 3)
        let tls = try HTTPServerConfiguration.TLS(certificateFile: pki.file("server-chain.pem"), privateKeyFile: pki.file("server.key"),
                                                  clientCAFile: pki.file("root.pem"))
        let server = try SandboxServer(receiver: try SandboxReceiver(databasePath: environment.path("sandbox.sqlite"),
                                                                     options: SandboxOptions()), tls: tls)
        defer { server.stop() }
        let yaml = """
            district: "410103"
            state_dir: state
            supervision: false
            receivers:
              - name: province
                url: \(url(server.port))
                division: "410000"
                ca_file: \(pki.file("root.pem"))
                cert_file: \(pki.file("client-chain.pem"))
                key_file: \(pki.file("client.key"))

            """
        for folder in ["adapters", "mappings"] {
            try FileManager.default.createDirectory(atPath: environment.path(folder), withIntermediateDirectories: true)
        }
        try yaml.write(toFile: environment.path("gateway.yaml"), atomically: true, encoding: .utf8)

        let run = try await runEsgate(["uplink", "run", "--once", "--max-wait", "0", "--config", environment.path("gateway.yaml")],
                                      environment: environment)
        #expect(run.code == 0, "\(run.output)")
        #expect(server.receiver.records().count == 3)
        #expect(!run.output.contains("does not chain"), "\(run.output)")

        let check = try await runEsgate(["certs", "check", "--config", environment.path("gateway.yaml")], environment: environment)
        #expect(check.code == 0, "\(check.output)")
        #expect(check.output.contains("chains to \(pki.file("root.pem"))") && !check.output.contains("WARNING"), "\(check.output)")
    }
}

extension CertificateChainTests {
    /// A `ca_file` that is a bundle of several CAs (a province rolling over to a new root keeps the old one
    /// beside it; a city and a province CA). `certs check` read only the first certificate of the file: the
    /// others were neither listed nor checked, so a bundled CA about to expire raised no warning. Every CA of
    /// the file is reported, with its own subject, validity and warning.
    @Test func everyCAOfABundleIsReportedWithItsExpiry() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let config = try environment.writeGatewayConfig(port: 9)
        let soon = environment.path("city-ca")
        let made = try runProcess("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                                                       "-keyout", soon + ".key", "-subj", "/CN=City CA expiring", "-days", "10",
                                                       "-out", soon + ".pem"])
        #expect(made.status == 0, "\(made.output)")
        let bundle = environment.path("bundle.pem")
        let text = try String(contentsOfFile: environment.cert("ca.pem"), encoding: .utf8)
            + String(contentsOfFile: soon + ".pem", encoding: .utf8)
        try text.write(toFile: bundle, atomically: true, encoding: .utf8)
        let yaml = try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "ca_file: \(environment.cert("ca.pem"))", with: "ca_file: \(bundle)")
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)

        let check = try await runEsgate(["certs", "check", "--config", config], environment: environment)
        #expect(check.code == 0, "\(check.output)")
        #expect(check.output.contains("esgate development CA") && check.output.contains("CN=City CA expiring"), "\(check.output)")
        #expect(check.output.contains("WARNING expires in 9 day(s)"), "\(check.output)")
        #expect(check.output.contains("chains to \(bundle)"), "\(check.output)")
        // Eleven days on, the city CA has expired: the bundle's other CA still verifies the receiver, so it is a
        // warning to clean the bundle; a file whose every CA expired is an error.
        let later = Date().addingTimeInterval(11 * 86400)
        let reports = caReports(receiver: "province", file: bundle, warnDays: 30, now: later)
        #expect(reports.count == 2 && reports.allSatisfy(\.errors.isEmpty), "\(reports)")
        #expect(reports.contains { $0.warnings.contains { $0.contains("expired on") && $0.contains("remove this one") } }, "\(reports)")
        let alone = caReports(receiver: "province", file: soon + ".pem", warnDays: 30, now: later)
        #expect(alone.count == 1 && alone[0].errors.contains { $0.hasPrefix("expired on") }, "\(alone)")
        // The same warning, naming the CA, in the status.
        let status = try await runEsgate(["uplink", "status", "--config", config], environment: environment)
        #expect(status.output.contains("(/CN=City CA expiring): expires in 9 day(s)"), "\(status.output)")
    }
}

@Suite struct EncryptedKeyMessageTests {
    /// An encrypted client key without a configured passphrase is a configuration gap, not a bad key: the message
    /// says which, so that the operator adds key_passphrase_file instead of hunting for a broken key file.
    @Test func encryptedKeyWithoutOrWithAWrongPassphraseIsNamedAsSuch() throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let encrypted = environment.path("client-encrypted.key")
        let result = try runProcess("/usr/bin/openssl", ["pkey", "-in", environment.cert("client.key"), "-aes256",
                                                        "-passout", "pass:s3cret", "-out", encrypted])
        #expect(result.status == 0, "\(result.output)")
        let certificate = environment.cert("client.pem")
        #expect(try CertificateInfo.keyMatches(certificateFile: certificate, keyFile: encrypted, password: "s3cret"))
        do {
            _ = try CertificateInfo.keyMatches(certificateFile: certificate, keyFile: encrypted, password: nil)
            Issue.record("an encrypted key opened without a passphrase")
        } catch {
            #expect(error.description.contains("encrypted and no passphrase is configured") && error.description.contains(encrypted),
                    "\(error.description)")
        }
        do {
            _ = try CertificateInfo.keyMatches(certificateFile: certificate, keyFile: encrypted, password: "wrong")
            Issue.record("a wrong passphrase opened the key")
        } catch {
            #expect(error.description.contains("configured passphrase does not open it"), "\(error.description)")
        }
        let garbage = environment.path("garbage.key")
        try "not a key\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        do {
            _ = try CertificateInfo.keyMatches(certificateFile: certificate, keyFile: garbage, password: nil)
            Issue.record("garbage read as a key")
        } catch {
            #expect(error.description.contains("not a readable PEM private key"), "\(error.description)")
        }
    }
}
