import Foundation
import GatewayConfig
import GatewayModel
import Mapping

/// gateway.yaml with its adapters and compiled mappings, all checked.
public struct LoadedConfiguration: Sendable {
    public let gateway: GatewayConfiguration
    public let adapters: [AdapterConfiguration]
    public let mappings: [String: MappingPlan]
    /// The mapping files as read, by name: an ODBC snapshot with `deletes` derives from them how to find the keys
    /// of a row that fails its mapping.
    public let mappingSpecs: [String: MappingSpec]
    public let schema: PUISchema
}

/// Loads and checks the whole configuration tree, collecting every error (file:line: key: message).
public func loadConfiguration(path: String, environment: [String: String] = ProcessInfo.processInfo.environment)
    -> Result<LoadedConfiguration, ConfigErrors> {
    var errors: [ConfigError] = []
    guard FileManager.default.fileExists(atPath: path) else {
        return .failure(ConfigErrors([ConfigError(file: path, line: 0, key: "", message: "configuration file not found (use --config or ESGATE_CONFIG)")]))
    }
    guard let gateway = GatewayConfiguration.load(file: path, environment: environment, errors: &errors) else {
        return .failure(ConfigErrors(errors))
    }
    let schema: PUISchema
    do {
        schema = try PUISchema.shipped()
    } catch {
        return .failure(ConfigErrors(errors + [ConfigError(file: "schema/pui-v1.xsd", line: 0, key: "", message: error.description)]))
    }
    for (index, receiver) in gateway.receivers.enumerated() {
        let unknown = receiver.recordTypes.filter { schema.recordTypes[$0] == nil }
        if !unknown.isEmpty {
            errors.append(ConfigError(file: path, line: receiver.keyLines["record_types"] ?? 0, key: "receivers[\(index)].record_types",
                                      message: "\(unknown.map { "'\($0)'" }.joined(separator: ", ")) is not a PUI record type (one of: \(schema.recordTypes.keys.sorted().joined(separator: ", ")))"))
        }
    }
    var mappings: [String: MappingPlan] = [:]
    var mappingFiles: [String: String] = [:]
    var mappingSpecs: [String: MappingSpec] = [:]
    if !FileManager.default.fileExists(atPath: gateway.mappingsDirectory) {
        errors.append(ConfigError(file: path, line: 0, key: "mappings_dir", message: "folder \(gateway.mappingsDirectory) does not exist"))
    }
    for file in yamlFiles(in: gateway.mappingsDirectory) {
        guard let spec = MappingSpec.load(file: file, environment: environment, errors: &errors) else { continue }
        if let other = mappingFiles[spec.name] {
            errors.append(ConfigError(file: file, line: 1, key: "name", message: "mapping name '\(spec.name)' is also used by \(other)"))
            continue
        }
        mappingFiles[spec.name] = file
        switch MappingPlan.compile(spec, schema: schema) {
        case .success(let plan):
            mappings[spec.name] = plan
            mappingSpecs[spec.name] = spec
        case .failure(let failure): errors += failure.errors
        }
    }
    var adapters: [AdapterConfiguration] = []
    if !FileManager.default.fileExists(atPath: gateway.adaptersDirectory) {
        errors.append(ConfigError(file: path, line: 0, key: "adapters_dir", message: "folder \(gateway.adaptersDirectory) does not exist"))
    }
    for file in yamlFiles(in: gateway.adaptersDirectory) {
        guard let adapter = AdapterConfiguration.load(file: file, environment: environment, errors: &errors) else { continue }
        if adapters.contains(where: { $0.name == adapter.name }) {
            errors.append(ConfigError(file: file, line: 1, key: "name", message: "adapter name '\(adapter.name)' is used twice"))
        }
        if !adapter.mapping.isEmpty, mappingFiles[adapter.mapping] == nil {
            errors.append(ConfigError(file: file, line: lineOf(key: "mapping", in: file), key: "mapping",
                                      message: "no mapping named '\(adapter.mapping)' in \(gateway.mappingsDirectory) (known: \(mappingFiles.keys.sorted().joined(separator: ", ")))"))
        }
        adapters.append(adapter)
    }
    if !errors.isEmpty { return .failure(ConfigErrors(errors)) }
    return .success(LoadedConfiguration(gateway: gateway, adapters: adapters, mappings: mappings, mappingSpecs: mappingSpecs,
                                        schema: schema))
}

/// The line of a top-level key in a YAML file (for errors found after parsing).
func lineOf(key: String, in file: String) -> Int {
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return 0 }
    for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where line.hasPrefix(key + ":") {
        return index + 1
    }
    return 0
}

/// The configuration file to use: `--config`, then `ESGATE_CONFIG`, then ./gateway.yaml.
public func configurationPath(option: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
    option ?? environment["ESGATE_CONFIG"] ?? "gateway.yaml"
}

/// The files the configuration names that are missing or unreadable: each receiver's `ca_file`, `cert_file`,
/// `key_file` and `key_passphrase_file`, `reference_data`, and each ODBC adapter's `password_file`. Errors for
/// `config check`, with the file and line of the key.
func referencedFileErrors(_ gateway: GatewayConfiguration, adapters: [AdapterConfiguration] = []) -> [ConfigError] {
    var errors: [ConfigError] = []
    func check(_ path: String?, key: String, line: Int, in file: String = gateway.file) {
        guard let path, !FileManager.default.isReadableFile(atPath: path) else { return }
        let why = FileManager.default.fileExists(atPath: path) ? "not readable by this user" : "no such file"
        errors.append(ConfigError(file: file, line: line, key: key, message: "\(path): \(why)"))
    }
    for adapter in adapters where adapter.enabled {
        check(adapter.odbc?.passwordFile, key: "odbc.password_file", line: adapter.odbc?.passwordFileLine ?? 0, in: adapter.file)
    }
    check(gateway.referenceDataFile, key: "reference_data", line: gateway.referenceDataLine)
    for (index, receiver) in gateway.receivers.enumerated() where receiver.enabled {
        // A plain-HTTP test receiver (insecure_plaintext) uses none of its TLS files.
        if receiver.insecurePlaintext && receiver.url.lowercased().hasPrefix("http://") { continue }
        let files = [("ca_file", receiver.caFile), ("cert_file", receiver.certificateFile),
                     ("key_file", receiver.keyFile), ("key_passphrase_file", receiver.keyPassphraseFile)]
        for (key, path) in files {
            check(path, key: "receivers[\(index)].\(key)", line: receiver.keyLines[key] ?? 0)
        }
    }
    return errors
}
