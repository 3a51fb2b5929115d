import XMLSupport

/// A record as a mapping produced it: its PUI type and field values by path ("CaseNo", "Applicant.IdNumber").
/// Order does not matter; the schema orders the fields when the record is normalized.
public struct DraftRecord: Sendable, Equatable {
    public var type: String
    public var fields: [(path: String, value: String)]

    public init(type: String, fields: [(path: String, value: String)] = []) {
        self.type = type
        self.fields = fields
    }

    public static func == (a: DraftRecord, b: DraftRecord) -> Bool {
        a.type == b.type && a.fields.map(\.path) == b.fields.map(\.path) && a.fields.map(\.value) == b.fields.map(\.value)
    }

    public subscript(path: String) -> String? {
        get { fields.first { $0.path == path }?.value }
        set {
            if let index = fields.firstIndex(where: { $0.path == path }) {
                if let newValue { fields[index].value = newValue } else { fields.remove(at: index) }
            } else if let newValue {
                fields.append((path, newValue))
            }
        }
    }
}

/// A record that passed schema validation: its identity and its canonical body.
public struct NormalizedRecord: Sendable, Equatable {
    public let type: String
    /// The key fields' values joined by U+001F (cannot occur in valid XML text).
    public let key: String
    /// `<Type><Field>…</Field>…</Type>` in schema order, without namespace or revision attributes.
    public let body: String

    public init(type: String, key: String, body: String) {
        self.type = type
        self.key = key
        self.body = body
    }

    /// The key for people: fields joined by " / ".
    public var displayKey: String { key.split(separator: "\u{1F}", omittingEmptySubsequences: false).joined(separator: " / ") }

    /// The record as it goes on the wire inside a PUI Body: namespaced, with its revision and operation.
    public func wireXML(rev: Int64, delete: Bool = false) -> String {
        let open = "<\(type)"
        guard body.hasPrefix(open) else { return body }
        let op = delete ? " op=\"delete\"" : ""
        return open + " xmlns=\"\(puiNamespace)\" rev=\"\(rev)\"\(op)" + body.dropFirst(open.count)
    }
}

/// Why a record is not valid, with the field at fault, worded like the schema's own messages.
public struct RecordValidationError: Error, CustomStringConvertible, Sendable, Equatable {
    public let recordType: String
    public let field: String
    public let message: String

    public init(recordType: String, field: String, message: String) {
        self.recordType = recordType
        self.field = field
        self.message = message
    }

    public var description: String { "\(recordType).\(field): \(message)" }
}

extension PUISchema {
    /// Validates a draft against the schema and serializes it. Unknown fields, missing required fields, and
    /// every facet (pattern, enumeration, length, digits, ranges, lexical form of the built-in type) are checked.
    public func normalize(_ draft: DraftRecord) -> Result<NormalizedRecord, RecordValidationError> {
        guard let recordType = recordTypes[draft.type] else {
            return .failure(RecordValidationError(recordType: draft.type, field: "", message: "not a PUI record type"))
        }
        var used = 0
        var body = "<" + draft.type + ">"
        body.reserveCapacity(512)
        if let error = serialize(recordType.steps, draft: draft, into: &body, used: &used) {
            return .failure(RecordValidationError(recordType: draft.type, field: error.0, message: error.1))
        }
        if used != draft.fields.count {
            let known = Set(allPaths(recordType.elements, prefix: ""))
            let unknown = draft.fields.first { !known.contains($0.path) }?.path ?? "?"
            return .failure(RecordValidationError(recordType: draft.type, field: unknown,
                                                  message: "no such element in \(draft.type) (schema pui-v1.xsd)"))
        }
        body += "</" + draft.type + ">"
        var key = ""
        for (index, field) in recordType.keyFields.enumerated() {
            if index > 0 { key += "\u{1F}" }
            key += draft[field] ?? ""
        }
        return .success(NormalizedRecord(type: draft.type, key: key, body: body))
    }

    private func allPaths(_ elements: [ElementDeclaration], prefix: String) -> [String] {
        elements.flatMap { element -> [String] in
            switch element.content {
            case .simple: return [prefix + element.name]
            case .complex(let name): return allPaths(complexTypes[name] ?? [], prefix: prefix + element.name + ".")
            }
        }
    }

    /// Writes the record in schema order; returns (field, message) of the first problem, or nil.
    /// Mappings emit fields in schema order, so the lookup usually hits at the cursor.
    private func serialize(_ steps: [SerializationStep], draft: DraftRecord, into body: inout String,
                           used: inout Int) -> (String, String)? {
        var cursor = 0
        let fields = draft.fields
        func lookup(_ path: String) -> String? {
            if cursor < fields.count, fields[cursor].path == path {
                cursor += 1
                return fields[cursor - 1].value
            }
            if let index = fields.firstIndex(where: { $0.path == path }) {
                cursor = index + 1
                return fields[index].value
            }
            return nil
        }
        var index = 0
        while index < steps.count {
            let step = steps[index]
            index += 1
            switch step.kind {
            case .leaf(let type):
                guard let value = lookup(step.path) else {
                    if step.minOccurs > 0 { return (step.path, "missing: the element is required") }
                    continue
                }
                used += 1
                if let problem = type.check(value) { return (step.path, problem) }
                body += step.openTag
                body += xmlCanonicalTextEscape(value)
                body += step.closeTag
            case .groupStart(let end):
                guard fields.contains(where: { $0.path.hasPrefix(step.path) }) else {
                    if step.minOccurs > 0 { return (String(step.path.dropLast()), "missing: the element is required") }
                    index = end + 1
                    continue
                }
                body += step.openTag
            case .groupEnd:
                body += step.closeTag
            }
        }
        return nil
    }
}
