import GatewayConfig
import GatewayModel

/// Why one source row could not become a record.
public struct MappingError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The record type being built ("" when the row matched no record route).
    public let recordType: String
    /// The PUI field at fault (e.g. `AppliedAt`), or "" for the row as a whole.
    public let field: String
    /// The source column involved, if any.
    public let column: String?
    public let message: String

    public init(recordType: String, field: String, column: String?, message: String) {
        self.recordType = recordType
        self.field = field
        self.column = column
        self.message = message
    }

    public var description: String {
        var where_ = recordType.isEmpty ? "" : recordType
        if !field.isEmpty { where_ += "." + field }
        if let column { where_ += " (column \(column))" }
        return where_.isEmpty ? message : "\(where_): \(message)"
    }
}

/// A mapping compiled against the schema: record types and field paths checked, code tables resolved.
public struct MappingPlan: Sendable {
    public let name: String
    public let file: String
    let records: [RecordSpec]
    let tables: [String: CodeTableSpec]
    /// Each record of the mapping compiled for the per-row path, in mapping order.
    let routes: [RecordRoute]
    /// The schema the routes' record layouts were compiled against.
    let schema: PUISchema

    /// Every source column the mapping reads (conditions and fields).
    public let columns: [String]

    /// Compiles a mapping. Problems (unknown record types or fields, unknown code tables, bad formats) are
    /// reported with the mapping file's line.
    public static func compile(_ spec: MappingSpec, schema: PUISchema) -> Result<MappingPlan, ConfigErrors> {
        var errors: [ConfigError] = []
        func report(_ line: Int, _ key: String, _ message: String) {
            errors.append(ConfigError(file: spec.file, line: line, key: key, message: message))
        }
        var columns: [String] = []
        func use(_ column: String) -> Int {
            if let slot = columns.firstIndex(of: column) { return slot }
            columns.append(column)
            return columns.count - 1
        }
        var conditionSlots: [[Int]] = []
        var rules: [[FieldRule]] = []
        if spec.records.isEmpty { report(1, "records", "a mapping needs at least one record") }
        for record in spec.records {
            guard let recordType = schema.recordTypes[record.type] else {
                let guess = ConfigSection.closest(to: record.type, among: Set(schema.recordTypes.keys)).map { "did you mean \($0)? " } ?? ""
                report(record.line, "type", "'\(record.type)' is not a PUI record type (\(guess)one of: \(schema.recordTypes.keys.sorted().joined(separator: ", ")))")
                rules.append([])
                conditionSlots.append([])
                continue
            }
            let known = schema.fieldPaths(of: recordType)
            var recordRules: [FieldRule] = []
            for field in record.fields {
                if !known.contains(field.path) {
                    let unused = Set(known).subtracting(record.fields.map(\.path))
                    let guess = ConfigSection.closest(to: field.path, among: unused).map { "did you mean \($0)? " } ?? ""
                    report(field.line, field.path, "\(record.type) has no element \(field.path); \(guess)its fields are: \(known.joined(separator: ", "))")
                }
                if let table = field.codeTable, spec.codeTables[table] == nil {
                    report(field.line, field.path, "unknown code table '\(table)'")
                }
                var formats: [DateTimeFormat] = []
                for text in field.dateTimeFormats {
                    switch DateTimeFormat.compile(text) {
                    case .success(let format): formats.append(format)
                    case .failure(let message): report(field.line, field.path, message.message)
                    }
                }
                let slot = field.column.map(use)
                let table = field.codeTable.flatMap { name in spec.codeTables[name].map { CodeTable($0) } }
                recordRules.append(FieldRule(spec: field, formats: formats, slot: slot, codeTable: table))
            }
            for field in recordType.keyFields where !record.fields.contains(where: { $0.path == field }) {
                report(record.line, "fields", "\(record.type) needs its key field \(field)")
            }
            conditionSlots.append(record.conditions.map { use($0.column) })
            // Emit fields in schema order: serialization then finds each at its cursor.
            recordRules.sort { (known.firstIndex(of: $0.spec.path) ?? Int.max) < (known.firstIndex(of: $1.spec.path) ?? Int.max) }
            rules.append(recordRules)
        }
        if !errors.isEmpty { return .failure(ConfigErrors(errors)) }
        let routes = spec.records.indices.map { index in
            RecordRoute(type: spec.records[index].type,
                        conditions: zip(spec.records[index].conditions, conditionSlots[index]).map { ($0.test, $1) },
                        rules: rules[index],
                        layout: RecordLayout(schema: schema, type: spec.records[index].type, paths: rules[index].map(\.path)))
        }
        return .success(MappingPlan(name: spec.name, file: spec.file, records: spec.records, tables: spec.codeTables,
                                    routes: routes, schema: schema, columns: columns))
    }

    /// A schema error of a record this plan produced, worded like a mapping error: with the source column that
    /// feeds the field, when one does (`Step.CaseNo (column 办件编号): missing: the element is required`), so that
    /// the operator knows which column of the source to look at.
    public func describe(_ error: RecordValidationError) -> String {
        let column = records.first { $0.type == error.recordType }?.fields.first { $0.path == error.field }?.column
        guard let column else { return error.description }
        return "\(error.recordType).\(error.field) (column \(column)): \(error.message)"
    }

    /// Binds the plan to a file's header. Columns the mapping needs but the header lacks are an error;
    /// extra columns are ignored. Header names are compared after trimming spaces and a BOM.
    /// A header name as the mapping matches it: without surrounding spaces and a BOM.
    public static func headerName(_ name: String) -> String { name.trimmingSpaces().replacingBOM() }

    public func bind(header: [String]) -> Result<BoundMapping, MappingError> {
        var positions: [String: [Int]] = [:]
        for (position, name) in header.enumerated() {
            positions[MappingPlan.headerName(name), default: []].append(position)
        }
        let missing = columns.filter { positions[$0] == nil }
        if !missing.isEmpty {
            // The header as read, cut short: a file whose lines end in CR alone is one "header" line.
            var listed = header.joined(separator: ",")
            if listed.count > 300 { listed = String(listed.prefix(300)) + "… (\(header.count) columns)" }
            return .failure(MappingError(recordType: "", field: "", column: nil,
                                         message: "header lacks column(s) \(missing.joined(separator: ", ")) needed by mapping \(name); header has: \(listed)"))
        }
        // A column the mapping reads twice in the header: which one holds the value is anyone's guess.
        if let twice = columns.first(where: { (positions[$0]?.count ?? 0) > 1 }), let places = positions[twice] {
            return .failure(MappingError(recordType: "", field: "", column: twice,
                                         message: "column \(twice), which mapping \(name) reads, appears \(places.count) times in the header (columns \(places.map { String($0 + 1) }.joined(separator: ", "))); rename or remove all but one"))
        }
        let index = positions.mapValues { $0[0] }
        return .success(BoundMapping(plan: self, columnIndex: columns.map { index[$0] ?? 0 }))
    }
}

extension PUISchema {
    /// All field paths of a record type, nested ones with dots.
    public func fieldPaths(of recordType: RecordType) -> [String] {
        func paths(_ elements: [ElementDeclaration], _ prefix: String) -> [String] {
            elements.flatMap { element -> [String] in
                switch element.content {
                case .simple: return [prefix + element.name]
                case .complex(let name): return paths(complexTypes[name] ?? [], prefix + element.name + ".")
                }
            }
        }
        return paths(recordType.elements, "")
    }
}

/// A class: rules are read per row and field, and a struct full of strings would be copied each time.
/// The spec's settings are copied out into plain properties so that evaluating a field does not copy the spec.
final class FieldRule: Sendable {
    init(spec: FieldSpec, formats: [DateTimeFormat], slot: Int?, codeTable: CodeTable?) {
        self.spec = spec
        self.formats = formats
        self.slot = slot
        self.codeTable = codeTable
        path = spec.path
        constant = spec.constant
        defaultValue = spec.defaultValue
        trim = spec.trim
        identity18 = spec.identity18
        utcOffsetMinutes = spec.utcOffsetMinutes
        decimalPlaces = spec.decimalPlaces
        integer = spec.integer
        constantBytes = spec.constant.map { Array($0.utf8) }
        defaultBytes = spec.defaultValue.map { Array($0.utf8) }
    }
    let spec: FieldSpec
    let formats: [DateTimeFormat]
    /// Position of the field's column in `MappingPlan.columns`.
    let slot: Int?
    /// The spec's code table, resolved when the plan is compiled.
    let codeTable: CodeTable?
    let path: String
    let constant: String?
    let defaultValue: String?
    let trim: Bool
    let identity18: Bool
    let utcOffsetMinutes: Int
    let decimalPlaces: Int?
    let integer: Bool
    /// `constant` and `defaultValue` as UTF-8, for the ordinary-row path.
    let constantBytes: [UInt8]?
    let defaultBytes: [UInt8]?
}

/// A code table as the per-row path reads it (a class, so that a lookup does not copy the table's struct).
final class CodeTable: Sendable {
    let name: String
    let entries: [String: String]
    let fallback: String?
    let passThrough: Bool

    init(_ spec: CodeTableSpec) {
        name = spec.name
        entries = spec.entries
        fallback = spec.fallback
        passThrough = spec.passThrough
    }
}

/// A routing condition prepared for the ordinary-row path, which reads the column as UTF-8 bytes.
final class ByteCondition: Sendable {
    let slot: Int
    let test: ConditionSpec.Test
    /// The values of `oneOf`/`noneOf` as UTF-8.
    let values: [[UInt8]]
    /// Every value is ASCII: then comparing bytes decides String equality exactly.
    let valuesAreASCII: Bool

    init(test: ConditionSpec.Test, slot: Int) {
        self.slot = slot
        self.test = test
        switch test {
        case .oneOf(let list), .noneOf(let list): values = list.map { Array($0.utf8) }
        case .blank, .notBlank, .nonZero: values = []
        }
        valuesAreASCII = values.allSatisfy { $0.allSatisfy { $0 < 0x80 } }
    }

    /// `BoundMapping.holds(test, text)` for the trimmed column text as bytes. ASCII text is judged on its bytes
    /// (each byte is one Character; CR LF is one, but not a digit); anything else goes through the String test.
    func holds(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var ascii = true
        for byte in text where byte >= 0x80 { ascii = false; break }
        switch test {
        case .blank: return text.isEmpty
        case .notBlank: return !text.isEmpty
        case .oneOf where ascii && valuesAreASCII: return values.contains { $0.elementsEqual(text) }
        case .noneOf where ascii && valuesAreASCII: return !values.contains { $0.elementsEqual(text) }
        case .nonZero where ascii: return !text.isEmpty && !BoundMapping.isZeroAmount(text)
        default: return BoundMapping.holds(test, String(decoding: text, as: UTF8.self))
        }
    }
}

/// One record of a mapping, ready for the per-row path: its routing conditions by column slot and its field rules.
final class RecordRoute: Sendable {
    let type: String
    let conditions: [(test: ConditionSpec.Test, slot: Int)]
    /// `conditions` for the ordinary-row path.
    let byteConditions: [ByteCondition]
    let rules: [FieldRule]
    /// `rules` without ownership, for the ordinary-row loop (reading a class reference out of an array retains
    /// and releases it, per field of every row); `rules` keeps them alive as long as this route.
    let borrowedRules: [Unmanaged<FieldRule>]
    /// The record type's serialization for exactly these rules (nil when a rule names no element of the type).
    let layout: RecordLayout?

    init(type: String, conditions: [(test: ConditionSpec.Test, slot: Int)], rules: [FieldRule], layout: RecordLayout?) {
        self.type = type
        self.conditions = conditions
        byteConditions = conditions.map { ByteCondition(test: $0.test, slot: $0.slot) }
        self.rules = rules
        borrowedRules = rules.map(Unmanaged.passUnretained)
        self.layout = layout
    }
}

/// The result of mapping one row: the records it yields and the errors of those that could not be built.
public struct RowOutcome: Sendable {
    public var records: [DraftRecord] = []
    public var errors: [MappingError] = []
}

/// A row mapped and validated: its valid records and every error.
public struct ValidatedRow: Sendable {
    public struct Problem: Sendable {
        public enum Stage: Sendable { case map, validate }
        public let stage: Stage
        public let recordType: String
        public let field: String
        /// Worded for people, with the record, field and source column (`Step.HandledAt (column 办理时间): …`).
        public let message: String
    }
    public var records: [NormalizedRecord] = []
    public var errors: [Problem] = []
}

/// A plan bound to one header: maps rows by column position.
public struct BoundMapping: Sendable {
    public let plan: MappingPlan
    /// Position in the row of each of `plan.columns`.
    let columnIndex: [Int]

    func value(slot: Int, in row: [String]) -> String {
        let position = columnIndex[slot]
        return position < row.count ? row[position] : ""
    }

    /// Maps one row. A row that matches no record route is an error, never silently skipped.
    public func map(_ row: [String]) -> RowOutcome {
        var outcome = RowOutcome()
        var matched = false
        var routing = RoutingCache()
        for route in plan.routes {
            guard applies(route, to: row, cache: &routing) else { continue }
            matched = true
            var draft = DraftRecord(type: route.type)
            draft.fields.reserveCapacity(route.rules.count)
            var failed = false
            for rule in route.rules {
                switch evaluate(rule, row: row) {
                case .success(let value?): draft.fields.append((rule.path, value))
                case .success(nil): continue
                case .failure(let message):
                    // Every field is evaluated, so that all that is wrong with the row is reported at once.
                    outcome.errors.append(MappingError(recordType: route.type, field: rule.path,
                                                       column: rule.spec.column, message: message.message))
                    failed = true
                }
            }
            if !failed { outcome.records.append(draft) }
        }
        if !matched {
            let described = Set(plan.records.flatMap(\.conditions).map(\.column)).sorted()
                .map { column in "\(column)='\(plan.columns.firstIndex(of: column).map { value(slot: $0, in: row) } ?? "")'" }
                .joined(separator: ", ")
            outcome.errors.append(MappingError(recordType: "", field: "", column: nil,
                                               message: "no record of mapping \(plan.name) applies to this row (\(described))"))
        }
        return outcome
    }

    /// Maps a row and validates each record against the schema: the valid records and every error of the others
    /// (the mapping's, then the schema's), in the order found.
    public func mapAndValidate(_ row: [String], schema: PUISchema) -> ValidatedRow {
        let outcome = map(row)
        var result = ValidatedRow()
        result.errors = outcome.errors.map { .init(stage: .map, recordType: $0.recordType, field: $0.field, message: $0.description) }
        for draft in outcome.records {
            switch schema.normalize(draft) {
            case .success(let record): result.records.append(record)
            case .failure(let first):
                let all = schema.validationErrors(draft)
                result.errors += (all.isEmpty ? [first] : all).map {
                    .init(stage: .validate, recordType: $0.recordType, field: $0.field, message: plan.describe($0))
                }
            }
        }
        return result
    }

    /// The trimmed text of the column the previous condition read: records usually route on the same column, so
    /// its value is trimmed once per row rather than once per record.
    struct RoutingCache {
        var slot = -1
        var text = ""
    }

    /// Whether all of a record's conditions hold for the row.
    func applies(_ route: RecordRoute, to row: [String], cache: inout RoutingCache) -> Bool {
        for condition in route.conditions {
            if condition.slot != cache.slot {
                cache.text = value(slot: condition.slot, in: row).trimmingSpaces()
                cache.slot = condition.slot
            }
            if !Self.holds(condition.test, cache.text) { return false }
        }
        return true
    }

    /// Whether a condition holds for the column's trimmed text.
    static func holds(_ test: ConditionSpec.Test, _ text: String) -> Bool {
        switch test {
        case .oneOf(let values): return values.contains(text)
        case .noneOf(let values): return !values.contains(text)
        case .blank: return text.isEmpty
        case .notBlank: return !text.isEmpty
        case .nonZero:
            guard !text.isEmpty else { return false }
            var utf8 = text
            return !utf8.withUTF8 { isZeroAmount($0) }
        }
    }

    /// `nonzero` is false only for an amount equal to zero: `0`, `0.00`, `-0`, `0,000.00`, also after `¥`/`￥`.
    /// Anything else holds, also text that is no number at all (`N/A`, `３５０.00`, `叁佰伍拾元`): the record is then
    /// made and its amount checked (and quarantined when it cannot be read), instead of the fee silently left out
    /// as "zero".
    static func isZeroAmount(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        for sign in yuanSigns where text.count >= sign.count && sign.indices.allSatisfy({ text[$0] == sign[$0] }) {
            index = sign.count
            break
        }
        while index < text.count, text[index] == 0x20 { index += 1 }
        if index < text.count, text[index] == 0x2D || text[index] == 0x2B { index += 1 }
        var digits = 0
        var point = false
        while index < text.count {
            switch text[index] {
            case 0x30: digits += 1
            case 0x2C where !point: break          // thousands separator
            case 0x2E where !point: point = true
            default: return false
            }
            index += 1
        }
        return digits > 0
    }

    /// ¥ (U+00A5) and ￥ (U+FFE5) as UTF-8.
    private static let yuanSigns: [[UInt8]] = [[0xC2, 0xA5], [0xEF, 0xBF, 0xA5]]

    /// nil: the field is absent (blank and no default); the schema decides whether that is allowed.
    private func evaluate(_ rule: FieldRule, row: [String]) -> Result<String?, Failure> {
        var text: String
        if let constant = rule.constant {
            text = constant
        } else if let slot = rule.slot {
            text = value(slot: slot, in: row)
            if rule.trim { text = text.trimmingSpaces() }
        } else {
            text = ""
        }
        if text.isEmpty {
            guard let fallback = rule.defaultValue else { return .success(nil) }
            text = fallback
        }
        if let table = rule.codeTable {
            if let mapped = table.entries[text] {
                text = mapped
            } else if let fallback = table.fallback {
                text = fallback
            } else if !table.passThrough {
                return .failure("'\(text)' is not in code table \(rule.spec.codeTable ?? table.name)")
            }
        }
        if rule.identity18 {
            switch IdentityNumber.normalizeQuickly(text) {
            case .success(let normalized): text = normalized
            case .failure(let message): return .failure(message)
            }
        }
        if !rule.formats.isEmpty {
            var parsed: String?
            for format in rule.formats {
                if let value = format.beijingTime(from: text, utcOffsetMinutes: rule.utcOffsetMinutes) {
                    parsed = value
                    break
                }
            }
            guard let parsed else {
                let formats = rule.spec.dateTimeFormats.joined(separator: " or ")
                // A value of the right shape naming no real day (20260230) is a source error of another kind
                // than a value of another shape: the message says which.
                if let impossibility = rule.formats.lazy.compactMap({ $0.impossibility(in: text) }).first {
                    return .failure("'\(text)' is \(impossibility) (time format \(formats))")
                }
                return .failure("'\(text)' does not match the time format \(formats)")
            }
            text = parsed
        }
        if let places = rule.decimalPlaces {
            switch DecimalFormatting.normalize(text, places: places) {
            case .success(let value): text = value
            case .failure(let message): return .failure(message)
            }
        }
        if rule.integer {
            switch DecimalFormatting.normalizeInteger(text) {
            case .success(let value): text = value
            case .failure(let message): return .failure(message)
            }
        }
        return .success(text)
    }
}

@inline(__always)
private func isTrimmableByte(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

/// The part of UTF-8 text that `trimmingSpaces` keeps: without leading and trailing ASCII spaces, tabs, line
/// breaks and ideographic spaces (U+3000 is E3 80 80).
func trimmedRange(_ bytes: UnsafeBufferPointer<UInt8>) -> Range<Int> {
    var start = 0, end = bytes.count
    while start < end {
        if isTrimmableByte(bytes[start]) { start += 1; continue }
        if end - start >= 3, bytes[start] == 0xE3, bytes[start + 1] == 0x80, bytes[start + 2] == 0x80 { start += 3; continue }
        break
    }
    while start < end {
        if isTrimmableByte(bytes[end - 1]) { end -= 1; continue }
        if end - start >= 3, bytes[end - 3] == 0xE3, bytes[end - 2] == 0x80, bytes[end - 1] == 0x80 { end -= 3; continue }
        break
    }
    return start..<end
}

extension String {
    /// Trims ASCII and ideographic spaces (U+3000), tabs and line breaks (legacy exports pad with both).
    /// Works on UTF-8 bytes: trimming runs for every field of every row.
    func trimmingSpaces() -> String {
        let utf8 = self.utf8
        guard let firstByte = utf8.first, let lastByte = utf8.last else { return self }
        // Fast path: nothing to trim at either end (U+3000 starts with 0xE3 and ends with 0x80).
        if !isTrimmableByte(firstByte) && !isTrimmableByte(lastByte) && firstByte != 0xE3 && lastByte != 0x80 { return self }
        var text = self
        return text.withUTF8 { bytes in
            String(decoding: UnsafeBufferPointer(rebasing: bytes[trimmedRange(bytes)]), as: UTF8.self)
        }
    }

    func replacingBOM() -> String {
        hasPrefix("\u{FEFF}") ? String(dropFirst()) : self
    }
}
