import Foundation
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
func loadOrReport(_ options: ParsedOptions) -> LoadedConfiguration? {
    let path = configurationPath(option: options.value("config"))
    switch loadConfiguration(path: path) {
    case .success(let loaded): return loaded
    case .failure(let errors):
        writeError("configuration has \(errors.errors.count) error(s):\n" + errors.description)
        return nil
    }
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
