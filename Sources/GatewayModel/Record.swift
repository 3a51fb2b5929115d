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
    public var displayKey: String { Self.displayKey(of: key) }

    /// A stored key for people: its fields, joined by U+001F in the journal, joined by " / ".
    public static func displayKey(of key: String) -> String {
        key.split(separator: "\u{1F}", omittingEmptySubsequences: false).joined(separator: " / ")
    }

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
        let steps = recordType.steps
        // Two passes: the first validates and measures, the second writes the body straight into its String.
        // Appending to a String (or to a byte array copied into one) per tag and value dominated the cost of
        // ingesting a row.
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: steps.count) { plan in
            var used = 0
            var length = 0
            if let error = measure(steps, draft: draft, plan: plan, length: &length, used: &used) {
                return .failure(RecordValidationError(recordType: draft.type, field: error.0, message: error.1))
            }
            if used != draft.fields.count {
                let known = Set(allPaths(recordType.elements, prefix: ""))
                let unknown = draft.fields.first { !known.contains($0.path) }?.path ?? "?"
                return .failure(RecordValidationError(recordType: draft.type, field: unknown,
                                                      message: "no such element in \(draft.type) (schema pui-v1.xsd)"))
            }
            let body = write(steps, draft: draft, plan: UnsafeBufferPointer(plan), length: length)
            return .success(NormalizedRecord(type: draft.type, key: key(of: draft, recordType, plan: UnsafeBufferPointer(plan)),
                                             body: body))
        }
    }

    private func allPaths(_ elements: [ElementDeclaration], prefix: String) -> [String] {
        elements.flatMap { element -> [String] in
            switch element.content {
            case .simple: return [prefix + element.name]
            case .complex(let name): return allPaths(complexTypes[name] ?? [], prefix: prefix + element.name + ".")
            }
        }
    }

    /// The key fields' values joined by U+001F. After a successful `measure` every draft path occurs once, so the
    /// field a leaf step took is the one `draft[keyField]` would find.
    private func key(of draft: DraftRecord, _ recordType: RecordType, plan: UnsafeBufferPointer<Int>) -> String {
        func value(_ index: Int) -> String {
            guard let step = recordType.keyStepIndices[index] else { return draft[recordType.keyFields[index]] ?? "" }
            return plan[step] >= 0 ? draft.fields[plan[step]].value : ""
        }
        if recordType.keyFields.count == 1 { return value(0) }
        var key = ""
        for index in recordType.keyFields.indices {
            if index > 0 { key += "\u{1F}" }
            key += value(index)
        }
        return key
    }

    /// Every schema error of a draft, not only the first: for showing an operator all that is wrong with a record
    /// `normalize` refused (quarantine, `mapping test`). Empty when the draft is valid.
    public func validationErrors(_ draft: DraftRecord) -> [RecordValidationError] {
        guard let recordType = recordTypes[draft.type] else {
            return [RecordValidationError(recordType: draft.type, field: "", message: "not a PUI record type")]
        }
        let steps = recordType.steps
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: steps.count) { plan in
            var used = 0
            var length = 0
            var problems: [(String, String)]? = []
            _ = measure(steps, draft: draft, plan: plan, length: &length, used: &used, all: &problems)
            var errors = (problems ?? []).map { RecordValidationError(recordType: draft.type, field: $0.0, message: $0.1) }
            let known = Set(allPaths(recordType.elements, prefix: ""))
            for field in draft.fields where !known.contains(field.path) {
                errors.append(RecordValidationError(recordType: draft.type, field: field.path,
                                                    message: "no such element in \(draft.type) (schema pui-v1.xsd)"))
            }
            return errors
        }
    }

    /// Validates the record in schema order and measures its body; returns (field, message) of the first problem.
    /// For each step, `plan` receives the draft field a leaf takes (-1: absent) or whether a group is written
    /// (-1: skipped). Mappings emit fields in schema order, so the lookup usually hits at the cursor.
    private func measure(_ steps: [SerializationStep], draft: DraftRecord, plan: UnsafeMutableBufferPointer<Int>,
                         length: inout Int, used: inout Int) -> (String, String)? {
        var firstOnly: [(String, String)]?
        return measure(steps, draft: draft, plan: plan, length: &length, used: &used, all: &firstOnly)
    }

    /// `measure`, going on past problems and collecting every one in `all` when it is not nil (the plan and
    /// length are then of no use).
    private func measure(_ steps: [SerializationStep], draft: DraftRecord, plan: UnsafeMutableBufferPointer<Int>,
                         length: inout Int, used: inout Int, all: inout [(String, String)]?) -> (String, String)? {
        /// True when measuring stops at this problem.
        func stops(_ problem: (String, String)) -> Bool {
            guard all != nil else { return true }
            all?.append(problem)
            return false
        }
        var cursor = 0
        let fields = draft.fields
        func lookup(_ path: String) -> Int? {
            if cursor < fields.count, fields[cursor].path == path {
                cursor += 1
                return cursor - 1
            }
            if let index = fields.firstIndex(where: { $0.path == path }) {
                cursor = index + 1
                return index
            }
            return nil
        }
        length = 2 * draft.type.utf8.count + 5  // <Type></Type>
        var index = 0
        while index < steps.count {
            let step = steps[index]
            plan[index] = -1
            index += 1
            switch step.kind {
            case .leaf(let type):
                guard let fieldIndex = lookup(step.path) else {
                    if step.minOccurs > 0, stops((step.path, "missing: the element is required")) { return (step.path, "missing: the element is required") }
                    continue
                }
                used += 1
                plan[index - 1] = fieldIndex
                var value = fields[fieldIndex].value
                let fastLength = value.withUTF8 { bytes in step.fastCheck?.escapedLengthIfCertainlyValid(bytes) }
                if let fastLength {
                    length += step.openTagBytes.count + fastLength + step.closeTagBytes.count
                } else {
                    // The authority: it gives the message, and accepts what the fast path could not vouch for.
                    if let problem = type.check(value), stops((step.path, problem)) { return (step.path, problem) }
                    length += step.openTagBytes.count + value.withUTF8 { canonicalEscapedLength($0) } + step.closeTagBytes.count
                }
            case .groupStart(let end):
                guard fields.contains(where: { hasPathPrefix($0.path, step) }) else {
                    let problem = (String(step.path.dropLast()), "missing: the element is required")
                    if step.minOccurs > 0, stops(problem) { return problem }
                    for skipped in index..<(end + 1) { plan[skipped] = -1 }
                    index = end + 1
                    continue
                }
                plan[index - 1] = 1
                length += step.openTagBytes.count
            case .groupEnd:
                length += step.closeTagBytes.count
            }
        }
        return nil
    }

    /// Writes the body `measure` planned: exactly `length` bytes.
    private func write(_ steps: [SerializationStep], draft: DraftRecord, plan: UnsafeBufferPointer<Int>, length: Int) -> String {
        let fields = draft.fields
        return String(unsafeUninitializedCapacity: length) { out in
            var writer = ByteWriter(out)
            var type = draft.type
            writer.put(byte: 0x3C)
            type.withUTF8 { writer.put($0) }
            writer.put(byte: 0x3E)
            var index = 0
            while index < steps.count {
                let step = steps[index]
                let choice = plan[index]
                index += 1
                switch step.kind {
                case .leaf:
                    guard choice >= 0 else { continue }
                    writer.put(step.openTagBytes)
                    var value = fields[choice].value
                    value.withUTF8 { writer.putCanonicalTextEscaped($0) }
                    writer.put(step.closeTagBytes)
                case .groupStart(let end):
                    guard choice >= 0 else {
                        index = end + 1
                        continue
                    }
                    writer.put(step.openTagBytes)
                case .groupEnd:
                    writer.put(step.closeTagBytes)
                }
            }
            writer.put(byte: 0x3C)
            writer.put(byte: 0x2F)
            type.withUTF8 { writer.put($0) }
            writer.put(byte: 0x3E)
            return writer.count
        }
    }
}

/// `path.hasPrefix(step.path)`, comparing bytes when both are plain ASCII (then each character is one byte and
/// String's canonical-equivalence rules cannot make a difference).
@inline(__always)
private func hasPathPrefix(_ path: String, _ step: SerializationStep) -> Bool {
    guard step.pathIsPlainASCII else { return path.hasPrefix(step.path) }
    var path = path
    return path.withUTF8 { bytes in
        var plain = true
        for byte in bytes where byte >= 0x80 || byte == 0x0D { plain = false; break }
        guard plain else { return String(decoding: bytes, as: UTF8.self).hasPrefix(step.path) }
        return step.path.utf8.count <= bytes.count && step.path.utf8.elementsEqual(bytes.prefix(step.path.utf8.count))
    }
}

/// The length of `xmlCanonicalTextEscape(value)` in UTF-8 bytes.
@inline(__always)
func canonicalEscapedLength(_ value: UnsafeBufferPointer<UInt8>) -> Int {
    var length = value.count
    for byte in value {
        switch byte {
        case 0x26, 0x0D: length += 4  // &amp; &#xD;
        case 0x3C, 0x3E: length += 3  // &lt; &gt;
        default: break
        }
    }
    return length
}
