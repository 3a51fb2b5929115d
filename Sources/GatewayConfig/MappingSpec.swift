import Foundation
import YAMLSupport

/// Where a field's value comes from and what is done to it, as written in a mapping file.
public struct FieldSpec: Sendable, Equatable {
    /// The PUI element path, e.g. `Applicant.IdNumber`.
    public var path: String
    public var line: Int
    public var column: String?
    public var constant: String?
    public var defaultValue: String?
    public var trim: Bool = true
    public var dateTimeFormats: [String] = []
    /// The zone of legacy times, as an offset such as `+08:00` (Beijing, the default) or `+00:00`.
    public var utcOffsetMinutes: Int = 480
    public var decimalPlaces: Int?
    public var integer: Bool = false
    public var codeTable: String?
    public var identity18: Bool = false
}

/// A routing condition on a source column; all conditions of a record must hold.
public struct ConditionSpec: Sendable, Equatable {
    public enum Test: Sendable, Equatable {
        case oneOf([String])
        case noneOf([String])
        case notBlank
        case blank
        /// Present and numerically different from zero (a fee of "0.00" is no fee).
        case nonZero
    }
    public var column: String
    public var test: Test
    public var line: Int
}

public struct RecordSpec: Sendable, Equatable {
    public var type: String
    public var line: Int
    public var conditions: [ConditionSpec]
    public var fields: [FieldSpec]
}

public struct CodeTableSpec: Sendable, Equatable {
    public var name: String
    public var line: Int
    public var entries: [String: String]
    /// Used when a value is not in the table; without it an unknown value is an error.
    public var fallback: String?
    /// Values not in the table pass through unchanged.
    public var passThrough: Bool
}

/// A mapping file from mappings/.
public struct MappingSpec: Sendable {
    public var file: String
    public var name: String
    public var description: String?
    public var codeTables: [String: CodeTableSpec]
    public var records: [RecordSpec]
}

extension MappingSpec {
    public static func load(file: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                            errors: inout [ConfigError]) -> MappingSpec? {
        let diagnostics = ConfigDiagnostics(file: file, environment: environment)
        defer { errors += diagnostics.errors }
        guard let root = diagnostics.load() else { return nil }
        return read(root: root, file: file)
    }

    /// Reads a mapping from YAML text (tests, `mapping test` of an unsaved file).
    public static func parse(_ text: String, file: String, environment: [String: String] = [:],
                             errors: inout [ConfigError]) -> MappingSpec? {
        let diagnostics = ConfigDiagnostics(file: file, environment: environment)
        defer { errors += diagnostics.errors }
        guard let root = diagnostics.parse(text) else { return nil }
        return read(root: root, file: file)
    }

    private static func read(root: ConfigSection, file: String) -> MappingSpec {
        let diagnostics = root.diagnostics
        let base = (file as NSString).deletingLastPathComponent
        let name = root.string("name") ?? ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        let description = root.string("description")
        var tables: [String: CodeTableSpec] = [:]
        if let section = root.section("code_tables") {
            for entry in section.entries() {
                guard let table = section.child(entry.value, key: entry.key) else { continue }
                var entries: [String: String] = [:]
                if let map = table.section("map") {
                    for pair in map.entries() {
                        if let value = map.scalarText(pair.value, key: pair.key) { entries[pair.key] = value }
                    }
                }
                if let csv = table.string("file") {
                    let path = resolvePath(csv, relativeTo: base)
                    switch readCodeTableCSV(path) {
                    case .success(let loaded): entries.merge(loaded) { inline, _ in inline }
                    case .failure(let failure):
                        diagnostics.report(line: table.raw("file")?.mark.line ?? table.line, key: table.qualified("file"), failure.message)
                    }
                }
                let fallback = table.string("default")
                let passThrough = table.boolean("pass_through") ?? false
                if entries.isEmpty && !table.has("map") && !table.has("file") {
                    diagnostics.report(line: entry.line, key: table.path, "a code table needs 'map' or 'file'")
                }
                table.rejectUnknownKeys()
                tables[entry.key] = CodeTableSpec(name: entry.key, line: entry.line, entries: entries,
                                                  fallback: fallback, passThrough: passThrough)
            }
        }
        var records: [RecordSpec] = []
        for section in root.sectionList("records", required: true) ?? [] {
            let type = section.string("type", required: true) ?? ""
            var conditions: [ConditionSpec] = []
            if let whenItems = section.list("when") {
                for (index, item) in whenItems.enumerated() {
                    guard let condition = section.child(item, key: "when[\(index)]") else { continue }
                    if let spec = readCondition(condition) { conditions.append(spec) }
                }
            }
            var fields: [FieldSpec] = []
            if let fieldSection = section.section("fields", required: true) {
                for entry in fieldSection.entries() {
                    if let field = readField(path: entry.key, node: entry.value, line: entry.line, in: fieldSection) {
                        fields.append(field)
                    }
                }
            }
            section.rejectUnknownKeys()
            records.append(RecordSpec(type: type, line: section.line, conditions: conditions, fields: fields))
        }
        root.rejectUnknownKeys()
        return MappingSpec(file: file, name: name, description: description, codeTables: tables, records: records)
    }

    private static func readCondition(_ section: ConfigSection) -> ConditionSpec? {
        // Every key is read before any is found missing, so that a misspelt one (`colum`) is named too.
        let column = section.string("column", required: true)
        var test: ConditionSpec.Test?
        if let values = section.stringList("in") { test = .oneOf(values) }
        if let values = section.stringList("not_in") { test = .noneOf(values) }
        if let blank = section.boolean("blank") { test = blank ? .blank : .notBlank }
        if section.boolean("nonzero") == true { test = .nonZero }
        section.rejectUnknownKeys()
        guard let column else { return nil }
        guard let test else {
            section.diagnostics.report(line: section.line, key: section.path, "a condition needs one of: in, not_in, blank, nonzero")
            return nil
        }
        return ConditionSpec(column: column, test: test, line: section.line)
    }

    private static func readField(path: String, node: YAMLNode, line: Int, in parent: ConfigSection) -> FieldSpec? {
        var field = FieldSpec(path: path, line: line)
        // Shorthand: `CaseNo: 办件编号` takes the column as it is (trimmed).
        if case .scalar = node {
            field.column = parent.scalarText(node, key: path)
            return field
        }
        guard let section = parent.child(node, key: path) else { return nil }
        field.column = section.string("column")
        field.constant = section.string("constant")
        field.defaultValue = section.string("default")
        field.trim = section.boolean("trim") ?? true
        if let formats = section.stringList("datetime") { field.dateTimeFormats = formats }
        if let offset = section.string("utc_offset") {
            if let minutes = parseUTCOffset(offset) {
                field.utcOffsetMinutes = minutes
            } else {
                section.diagnostics.report(line: section.raw("utc_offset")?.mark.line ?? line, key: section.qualified("utc_offset"),
                                           "expected an offset such as +08:00 or -05:00, found '\(offset)'")
            }
        }
        field.decimalPlaces = section.integer("decimal", range: 0...9)
        field.integer = section.boolean("integer") ?? false
        field.codeTable = section.string("code_table")
        field.identity18 = section.boolean("id18") ?? false
        if field.column == nil && field.constant == nil && field.defaultValue == nil {
            section.diagnostics.report(line: line, key: section.path, "a field needs 'column', 'constant' or 'default'")
        }
        if field.column != nil && field.constant != nil {
            section.diagnostics.report(line: line, key: section.path, "'column' and 'constant' exclude each other")
        }
        section.rejectUnknownKeys()
        return field
    }
}

/// "+08:00" → 480.
public func parseUTCOffset(_ text: String) -> Int? {
    let bytes = Array(text.utf8)
    if text == "Z" { return 0 }
    guard bytes.count == 6, bytes[0] == 43 || bytes[0] == 45, bytes[3] == 58,
          let hours = Int(String(decoding: bytes[1...2], as: UTF8.self)),
          let minutes = Int(String(decoding: bytes[4...5], as: UTF8.self)), hours <= 14, minutes < 60 else { return nil }
    return (bytes[0] == 45 ? -1 : 1) * (hours * 60 + minutes)
}

/// Reads a two-column CSV (legacy code, PUI code), UTF-8, optional header line starting with '#'.
func readCodeTableCSV(_ path: String) -> Result<[String: String], Failure> {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        return .failure("cannot read code table file \(path) (must exist and be UTF-8)")
    }
    var entries: [String: String] = [:]
    for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
        let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
        if line.isEmpty || line.hasPrefix("#") { continue }
        let parts = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count >= 2 else { return .failure("\(path):\(index + 1): expected 'legacy,pui'") }
        entries[parts[0]] = parts[1]
    }
    return .success(entries)
}

/// A one-line failure message, written as a string literal at the failure site.
public struct Failure: Error, ExpressibleByStringInterpolation, CustomStringConvertible, Sendable, Equatable {
    public let message: String
    public init(stringLiteral value: String) { message = value }
    public init(stringInterpolation: DefaultStringInterpolation) { message = String(stringInterpolation: stringInterpolation) }
    public var description: String { message }
}
