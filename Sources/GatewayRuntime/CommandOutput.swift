import Foundation
import GatewayConfig
import GatewayModel
import TextSupport

// Output and configuration helpers shared by every command file.

/// A line on standard output.
func write(_ text: String) {
    FileHandle.standardOutput.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
}

/// A message on standard error, prefixed with `esgate:`, identity numbers masked.
func writeError(_ text: String) {
    FileHandle.standardError.write(Data(("esgate: " + Redaction.maskIdentityNumbers(in: text) + "\n").utf8))
}

/// Pretty, key-sorted JSON on standard output (dates ISO 8601), identity numbers masked.
func writeJSON<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    // Times as everywhere else in esgate's output (text, logs, PUI): Beijing time with its offset.
    encoder.dateEncodingStrategy = .custom { date, encoder in
        var container = encoder.singleValueContainer()
        try container.encode(beijingTimestamp(date))
    }
    if let data = try? encoder.encode(value) { write(Redaction.maskIdentityNumbers(in: String(decoding: data, as: UTF8.self))) }
}

/// The configuration named by `--config`; prints every error and returns nil when it does not load.
/// `readOnly`: a status or list command, which never connects to a source or a receiver. Secrets kept only in
/// the service's environment (`${DB_PASSWORD}` in a connection string, `key_passphrase_env`) are then not needed:
/// an operator's shell does not have them, and status must still work there.
func loadOrReport(_ options: ParsedOptions, readOnly: Bool = false) -> LoadedConfiguration? {
    let path = configurationPath(option: options.value("config"))
    switch loadConfiguration(path: path) {
    case .success(let loaded): return loaded
    case .failure(let errors):
        if readOnly {
            let unset = errors.errors.compactMap(unsetSecret)
            if !unset.isEmpty, unset.count == errors.errors.count {
                var environment = ProcessInfo.processInfo.environment
                for name in unset { environment[name] = unsetInThisShell }
                if case .success(let loaded) = loadConfiguration(path: path, environment: environment) { return loaded }
            }
        }
        writeError("configuration has \(errors.errors.count) error(s):\n" + errors.description)
        return nil
    }
}

/// What a status command puts in place of a variable its shell does not have (see `loadOrReport`).
let unsetInThisShell = "(not set in this shell)"

/// The keys whose value may be a secret only the service's environment holds. Only an unset variable of one of
/// these gets the placeholder: one in a path (`state_dir: ${ESGATE_STATE}`) would make a status command open, and
/// create, a journal under `(not set in this shell)/` and report it empty.
private let secretKeys: Set<String> = ["connection", "username", "password", "key_passphrase_env"]

/// The variable an "environment variable NAME … is not set" error names, when it is the value of a secret key.
private func unsetSecret(_ error: ConfigError) -> String? {
    guard let key = error.key.split(separator: ".").last, secretKeys.contains(String(key)) else { return nil }
    let prefix = "environment variable "
    guard error.message.hasPrefix(prefix), error.message.hasSuffix(" is not set") else { return nil }
    let name = error.message.dropFirst(prefix.count).prefix { !$0.isWhitespace }
    return name.isEmpty ? nil : String(name)
}

/// A logger at gateway.yaml's `log_level`.
func logger(for configuration: LoadedConfiguration, component: String = "esgate") -> Logger {
    let minimum: LogSeverity
    switch configuration.gateway.logLevel {
    case .debug: minimum = .debug
    case .info: minimum = .info
    case .warning: minimum = .warning
    case .error: minimum = .error
    }
    return Logger(component: component, minimum: minimum)
}
