import Foundation
import YAMLSupport

/// One configuration problem, located by file, line and key.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    public let file: String
    public let line: Int
    public let key: String
    public let message: String

    public init(file: String, line: Int, key: String, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    /// `file:line: key: message`; without the line when there is none (a missing file, a folder the
    /// configuration names by default), rather than a line 0 an editor cannot go to.
    public var description: String {
        let place = line > 0 ? "\(file):\(line)" : file
        return key.isEmpty ? "\(place): \(message)" : "\(place): \(key): \(message)"
    }
}

/// Every problem found in a configuration tree (esgate lists them all, not just the first).
public struct ConfigErrors: Error, CustomStringConvertible, Sendable {
    public let errors: [ConfigError]
    public init(_ errors: [ConfigError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// Collects problems while reading one file; shared by the sections of that file.
public final class ConfigDiagnostics {
    public let file: String
    private var reported: [ConfigError] = []
    /// In the file's line order (problems are found key by key, in the order the reader asks for them).
    public var errors: [ConfigError] {
        reported.enumerated().sorted { ($0.element.line, $0.offset) < ($1.element.line, $1.offset) }.map(\.element)
    }
    let environment: [String: String]

    public init(file: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.file = file
        self.environment = environment
    }

    public func report(line: Int, key: String, _ message: String) {
        reported.append(ConfigError(file: file, line: line, key: key, message: message))
    }

    /// Reads and parses a YAML file; syntax errors are reported and nil returned.
    public func load() -> ConfigSection? {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            report(line: 0, key: "", "cannot read the file (\(error.localizedDescription))")
            return nil
        }
        return parse(text)
    }

    public func parse(_ text: String) -> ConfigSection? {
        do {
            let node = try parseYAML(text)
            guard case .mapping = node else {
                report(line: node.mark.line, key: "", "the file must be a mapping of keys to values")
                return nil
            }
            return ConfigSection(node: node, path: "", diagnostics: self)
        } catch {
            report(line: error.line, key: "", error.message)
            return nil
        }
    }
}

/// A mapping node being read: typed accessors, `${ENV}` substitution, and unknown-key detection.
public final class ConfigSection {
    public let node: YAMLNode
    public let path: String
    public let diagnostics: ConfigDiagnostics
    private var consumed: Set<String> = []

    init(node: YAMLNode, path: String, diagnostics: ConfigDiagnostics) {
        self.node = node
        self.path = path
        self.diagnostics = diagnostics
    }

    public var line: Int { node.mark.line }

    private var pairs: [(key: YAMLNode, value: YAMLNode)] {
        if case .mapping(let pairs, _) = node { return pairs }
        return []
    }

    public var keys: [String] {
        pairs.compactMap { if case .scalar(let k, _, _) = $0.key { return k } else { return nil } }
    }

    public func qualified(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    public func has(_ key: String) -> Bool { raw(key) != nil }

    public func raw(_ key: String) -> YAMLNode? {
        pairs.first { if case .scalar(let k, _, _) = $0.key { return k == key } else { return false } }?.value
    }

    private func take(_ key: String, required: Bool) -> YAMLNode? {
        consumed.insert(key)
        guard let value = raw(key), !value.isNull else {
            if required { diagnostics.report(line: line, key: qualified(key), "required key is missing") }
            return nil
        }
        return value
    }

    /// Substitutes `${NAME}` and `${NAME:-default}` from the environment.
    func substitute(_ text: String, line: Int, key: String) -> String {
        guard text.contains("${") else { return text }
        var output = ""
        var rest = Substring(text)
        while let open = rest.range(of: "${") {
            output += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                diagnostics.report(line: line, key: key, "unterminated ${ in value")
                return text
            }
            let expression = rest[open.upperBound..<close]
            var name = Substring(expression)
            var fallback: Substring?
            if let dash = expression.range(of: ":-") {
                name = expression[..<dash.lowerBound]
                fallback = expression[dash.upperBound...]
            }
            if let value = diagnostics.environment[String(name)], !value.isEmpty {
                output += value
            } else if let fallback {
                output += fallback
            } else {
                diagnostics.report(line: line, key: key, "environment variable \(name) is not set")
            }
            rest = rest[rest.index(after: close)...]
        }
        return output + rest
    }

    public func string(_ key: String, required: Bool = false) -> String? {
        guard let value = take(key, required: required) else { return nil }
        guard case .scalar(let text, let mark, _) = value else {
            diagnostics.report(line: value.mark.line, key: qualified(key), "expected a text value, found a \(kind(value))")
            return nil
        }
        return substitute(text, line: mark.line, key: qualified(key))
    }

    public func string(_ key: String, default fallback: String) -> String { string(key) ?? fallback }

    public func integer(_ key: String, required: Bool = false, range: ClosedRange<Int>? = nil) -> Int? {
        guard let text = string(key, required: required) else { return nil }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            diagnostics.report(line: raw(key)?.mark.line ?? line, key: qualified(key), "expected an integer, found '\(text)'")
            return nil
        }
        if let range, !range.contains(value) {
            diagnostics.report(line: raw(key)?.mark.line ?? line, key: qualified(key),
                               "\(value) is outside \(range.lowerBound)…\(range.upperBound)")
            return nil
        }
        return value
    }

    public func boolean(_ key: String) -> Bool? {
        guard let text = string(key) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            diagnostics.report(line: raw(key)?.mark.line ?? line, key: qualified(key), "expected true or false, found '\(text)'")
            return nil
        }
    }

    /// A duration: `250ms`, `5s`, `2m`, `1h`, or a plain number of seconds.
    public func duration(_ key: String) -> Duration? {
        guard let text = string(key) else { return nil }
        if let value = parseDuration(text) { return value }
        diagnostics.report(line: raw(key)?.mark.line ?? line, key: qualified(key),
                           "expected a duration such as 500ms, 5s, 2m or 1h, found '\(text)'")
        return nil
    }

    /// One of a fixed set of words.
    public func choice(_ key: String, _ options: [String], required: Bool = false) -> String? {
        guard let text = string(key, required: required) else { return nil }
        guard options.contains(text) else {
            diagnostics.report(line: raw(key)?.mark.line ?? line, key: qualified(key),
                               "'\(text)' is not one of: \(options.joined(separator: ", "))")
            return nil
        }
        return text
    }

    public func section(_ key: String, required: Bool = false) -> ConfigSection? {
        guard let value = take(key, required: required) else { return nil }
        guard case .mapping = value else {
            diagnostics.report(line: value.mark.line, key: qualified(key), "expected a mapping, found a \(kind(value))")
            return nil
        }
        return ConfigSection(node: value, path: qualified(key), diagnostics: diagnostics)
    }

    /// A sequence of nodes (or a single scalar, accepted as a one-element list).
    public func list(_ key: String, required: Bool = false) -> [YAMLNode]? {
        guard let value = take(key, required: required) else { return nil }
        switch value {
        case .sequence(let items, _): return items
        case .scalar: return [value]
        case .mapping:
            diagnostics.report(line: value.mark.line, key: qualified(key), "expected a list, found a mapping")
            return nil
        }
    }

    public func stringList(_ key: String, required: Bool = false) -> [String]? {
        guard let items = list(key, required: required) else { return nil }
        var result: [String] = []
        for item in items {
            guard case .scalar(let text, let mark, _) = item else {
                diagnostics.report(line: item.mark.line, key: qualified(key), "expected a list of text values")
                continue
            }
            result.append(substitute(text, line: mark.line, key: qualified(key)))
        }
        return result
    }

    /// The sections of a list of mappings.
    public func sectionList(_ key: String, required: Bool = false) -> [ConfigSection]? {
        guard let items = list(key, required: required) else { return nil }
        var result: [ConfigSection] = []
        for (index, item) in items.enumerated() {
            guard case .mapping = item else {
                diagnostics.report(line: item.mark.line, key: "\(qualified(key))[\(index)]", "expected a mapping")
                continue
            }
            result.append(ConfigSection(node: item, path: "\(qualified(key))[\(index)]", diagnostics: diagnostics))
        }
        return result
    }

    /// All entries of a free-form mapping (keys chosen by the user, e.g. code tables), in file order.
    public func entries() -> [(key: String, value: YAMLNode, line: Int)] {
        pairs.compactMap { pair in
            guard case .scalar(let key, let mark, _) = pair.key else { return nil }
            consumed.insert(key)
            return (key, pair.value, mark.line)
        }
    }

    public func child(_ node: YAMLNode, key: String) -> ConfigSection? {
        guard case .mapping = node else {
            diagnostics.report(line: node.mark.line, key: qualified(key), "expected a mapping, found a \(kind(node))")
            return nil
        }
        return ConfigSection(node: node, path: qualified(key), diagnostics: diagnostics)
    }

    public func scalarText(_ node: YAMLNode, key: String) -> String? {
        guard case .scalar(let text, let mark, _) = node else {
            diagnostics.report(line: node.mark.line, key: qualified(key), "expected a text value, found a \(kind(node))")
            return nil
        }
        return substitute(text, line: mark.line, key: qualified(key))
    }

    /// Reports every key of this section that no accessor asked for.
    public func rejectUnknownKeys() {
        // A guess is a key the file does not have yet.
        let present = Set(pairs.compactMap { pair -> String? in if case .scalar(let key, _, _) = pair.key { return key } else { return nil } })
        let guesses = consumed.subtracting(present)
        for pair in pairs {
            guard case .scalar(let key, let mark, _) = pair.key else { continue }
            if !consumed.contains(key) {
                let guess = Self.closest(to: key, among: guesses).map { " (did you mean \($0)?)" } ?? ""
                diagnostics.report(line: mark.line, key: qualified(key), "unknown key\(guess)")
            }
        }
    }

    /// The known key a misspelt one most likely meant: at most two edits away (one for keys of up to four
    /// characters), the nearest; nil when none is that close.
    public static func closest(to key: String, among known: Set<String>) -> String? {
        let limit = key.count <= 4 ? 1 : 2
        var best: (key: String, distance: Int)?
        for candidate in known.sorted() {
            let distance = editDistance(Array(key.lowercased()), Array(candidate.lowercased()))
            if distance <= limit, distance < (best?.distance ?? .max) { best = (candidate, distance) }
        }
        return best?.key
    }

    /// Levenshtein distance (insertions, deletions and substitutions of one character).
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }

    private func kind(_ node: YAMLNode) -> String {
        switch node {
        case .scalar: return "text value"
        case .sequence: return "list"
        case .mapping: return "mapping"
        }
    }
}

public func parseDuration(_ text: String) -> Duration? {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
        if let number = Double(trimmed.dropLast(suffix.count)), number >= 0 {
            return .milliseconds(Int64((number * factor * 1000).rounded()))
        }
        return nil
    }
    if let number = Double(trimmed), number >= 0 { return .milliseconds(Int64((number * 1000).rounded())) }
    return nil
}
