/// Where one field's value lies in a caller's byte arena, or that the field is absent.
public struct FieldValueRange: Sendable, Equatable {
    public var start: Int
    /// -1: absent.
    public var count: Int

    public init(start: Int, count: Int) {
        self.start = start
        self.count = count
    }

    public static let absent = FieldValueRange(start: 0, count: -1)
    public var isAbsent: Bool { count < 0 }
}

/// One record type's serialization compiled for a fixed list of field paths (the fields of one mapping record), so
/// that a mapped row is validated and serialized straight from its value bytes, without building a DraftRecord
/// and looking each field up by path.
///
/// It answers only for records it can vouch for: nil from `normalize` means "take the general path"
/// (`DraftRecord` + `PUISchema.normalize`), which stays the authority and words every error. For a record it does
/// serialize, the result is the general path's, byte for byte.
public final class RecordLayout: Sendable {
    /// One serialization step as plain values: reading it retains nothing.
    struct Step {
        enum Kind { case leaf, groupStart, groupEnd }
        var kind: Kind
        var required: Bool
        /// Leaf: the index of the path that supplies it (-1: none). Group start: index into `membersOfGroup`.
        var source: Int
        /// Group start: the index of its group end.
        var end: Int
        /// The open and close tags in `tags`.
        var openTag: Range<Int>
        var closeTag: Range<Int>
        /// The start tag in the compact form (`CompactBodyForm`), in `tags` too; the end tag is one byte.
        var compactOpenTag: Range<Int>
    }

    let type: String
    let steps: [Step]
    /// Every tag of the record, back to back (`Step` ranges point here), then `<Type>` and `</Type>`.
    let tags: [UInt8]
    let recordOpenTag: Range<Int>
    let recordCloseTag: Range<Int>
    /// The record element's start tag in the compact form, in `tags`.
    let compactRecordOpenTag: Range<Int>
    /// Whether `normalizeWithCompactBody` writes the compact form: not for record types that can nest deeper than
    /// the form allows (the journal then stores their XML, even for a record whose deep groups are absent).
    let writesCompactBody: Bool
    /// The fast check of each step's type (nil: groups, or types without a fast form).
    let checks: [FastValueCheck?]
    /// `checks` without ownership, for the per-field loop: reading a class reference out of an array retains and
    /// releases it, once per field of every row. `checks` keeps them alive as long as this layout.
    private let borrowedChecks: [Unmanaged<FastValueCheck>?]
    /// For each group: the paths inside it (the general path's `hasPrefix` test, decided once).
    let membersOfGroup: [[Int]]
    /// For each key field: the index of the path that supplies it, or -1 (then the key part is empty).
    let keySources: [Int]
    let pathCount: Int

    /// nil when a path is not a leaf of the record type or two paths name the same element: such records always
    /// take the general path, which reports the problem.
    public init?(schema: PUISchema, type: String, paths: [String]) {
        guard let recordType = schema.recordTypes[type] else { return nil }
        let schemaSteps = recordType.steps
        var sourceOfStep = [Int](repeating: -1, count: schemaSteps.count)
        for (pathIndex, path) in paths.enumerated() {
            guard let stepIndex = schemaSteps.firstIndex(where: { step in
                if case .leaf = step.kind { return step.path == path }
                return false
            }), sourceOfStep[stepIndex] < 0 else { return nil }
            sourceOfStep[stepIndex] = pathIndex
        }
        var tags: [UInt8] = []
        func store(_ tag: [UInt8]) -> Range<Int> {
            tags += tag
            return (tags.count - tag.count)..<tags.count
        }
        var steps: [Step] = []
        var membersOfGroup: [[Int]] = []
        var depth = 1, maxDepth = 1
        for (index, step) in schemaSteps.enumerated() {
            let openTag = store(step.openTagBytes), closeTag = store(step.closeTagBytes)
            switch step.kind {
            case .leaf:
                let compactOpenTag = store(CompactBodyForm.startTag(step.elementNameBytes))
                maxDepth = max(maxDepth, depth + 1)
                steps.append(Step(kind: .leaf, required: step.minOccurs > 0, source: sourceOfStep[index], end: index,
                                  openTag: openTag, closeTag: closeTag, compactOpenTag: compactOpenTag))
            case .groupStart(let end):
                let compactOpenTag = store(CompactBodyForm.startTag(step.elementNameBytes))
                depth += 1
                maxDepth = max(maxDepth, depth)
                membersOfGroup.append(paths.indices.filter { paths[$0].hasPrefix(step.path) })
                steps.append(Step(kind: .groupStart, required: step.minOccurs > 0, source: membersOfGroup.count - 1,
                                  end: end, openTag: openTag, closeTag: closeTag, compactOpenTag: compactOpenTag))
            case .groupEnd:
                depth -= 1
                steps.append(Step(kind: .groupEnd, required: false, source: -1, end: index, openTag: openTag,
                                  closeTag: closeTag, compactOpenTag: 0..<0))
            }
        }
        recordOpenTag = store(Array("<\(type)>".utf8))
        recordCloseTag = store(Array("</\(type)>".utf8))
        compactRecordOpenTag = store(CompactBodyForm.startTag(Array(type.utf8)))
        writesCompactBody = maxDepth <= CompactBodyForm.maxDepth
        self.type = type
        self.steps = steps
        self.tags = tags
        checks = schemaSteps.map(\.fastCheck)
        borrowedChecks = checks.map { $0.map(Unmanaged.passUnretained) }
        self.membersOfGroup = membersOfGroup
        keySources = recordType.keyFields.map { field in paths.firstIndex(of: field) ?? -1 }
        pathCount = paths.count
    }

    /// The record, when every value is present where required and certainly valid; nil otherwise.
    /// `values` holds one range per path given to `init`, into `arena`.
    public func normalize(arena: UnsafeBufferPointer<UInt8>, values: UnsafeBufferPointer<FieldValueRange>) -> NormalizedRecord? {
        normalize(arena: arena, values: values, writingCompactBody: false)?.record
    }

    /// `normalize`, and the record's body in the journal's compact form (`CompactBodyForm`), written in the same
    /// pass: exactly the bytes `StoredBody.encode(record.body)` gives, without parsing the XML again. The compact
    /// body is nil when the record type can nest deeper than the form allows (the journal then stores the XML).
    public func normalizeWithCompactBody(arena: UnsafeBufferPointer<UInt8>, values: UnsafeBufferPointer<FieldValueRange>)
        -> (record: NormalizedRecord, compactBody: [UInt8]?)? {
        normalize(arena: arena, values: values, writingCompactBody: writesCompactBody)
    }

    private func normalize(arena: UnsafeBufferPointer<UInt8>, values: UnsafeBufferPointer<FieldValueRange>,
                           writingCompactBody: Bool) -> (record: NormalizedRecord, compactBody: [UInt8]?)? {
        guard values.count >= pathCount else { return nil }
        return steps.withUnsafeBufferPointer { steps in
            tags.withUnsafeBufferPointer { tags in
                normalize(arena: arena, values: values, steps: steps, tags: tags, writingCompactBody: writingCompactBody)
            }
        }
    }

    private func normalize(arena: UnsafeBufferPointer<UInt8>, values: UnsafeBufferPointer<FieldValueRange>,
                           steps: UnsafeBufferPointer<Step>, tags: UnsafeBufferPointer<UInt8>,
                           writingCompactBody: Bool) -> (record: NormalizedRecord, compactBody: [UInt8]?)? {
        @inline(__always) func bytes(_ range: FieldValueRange) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(rebasing: arena[range.start..<(range.start + range.count)])
        }
        @inline(__always) func groupIsPresent(_ step: Step) -> Bool {
            membersOfGroup[step.source].contains { !values[$0].isAbsent }
        }
        // Pass 1: validate and measure, noting which values contain characters to escape (bit = step index; steps
        // beyond 64 are always scanned again).
        var length = recordOpenTag.count + recordCloseTag.count
        // The compact form: marker, the record's start tag, its end marker; per element a start tag and an end.
        var compactLength = 1 + compactRecordOpenTag.count + 1
        var needsEscaping: UInt64 = 0
        var index = 0
        while index < steps.count {
            let step = steps[index]
            index += 1
            switch step.kind {
            case .leaf:
                guard step.source >= 0, !values[step.source].isAbsent else {
                    if step.required { return nil }
                    continue
                }
                guard let check = borrowedChecks[index - 1],
                      let escaped = check._withUnsafeGuaranteedRef({ $0.escapedLengthIfCertainlyValid(bytes(values[step.source])) })
                else { return nil }
                length += step.openTag.count + escaped + step.closeTag.count
                compactLength += step.compactOpenTag.count + escaped + 1
                if escaped != values[step.source].count && index - 1 < 64 { needsEscaping |= 1 << UInt64(index - 1) }
            case .groupStart:
                guard groupIsPresent(step) else {
                    if step.required { return nil }
                    index = step.end + 1
                    continue
                }
                length += step.openTag.count
                compactLength += step.compactOpenTag.count + 1
            case .groupEnd:
                length += step.closeTag.count
            }
        }
        // Pass 2 writes exactly `length` bytes of XML, pass 3 (for the journal) the same walk in the compact form:
        // its start tags are codes, and every end tag is one byte.
        func write(_ out: UnsafeMutableBufferPointer<UInt8>, compact: Bool) -> Int {
            var writer = ByteWriter(out)
            if compact { writer.put(byte: CompactBodyForm.marker) }
            writer.put(UnsafeBufferPointer(rebasing: tags[compact ? compactRecordOpenTag : recordOpenTag]))
            var index = 0
            while index < steps.count {
                let step = steps[index]
                index += 1
                switch step.kind {
                case .leaf:
                    guard step.source >= 0, !values[step.source].isAbsent else { continue }
                    writer.put(UnsafeBufferPointer(rebasing: tags[compact ? step.compactOpenTag : step.openTag]))
                    if index - 1 >= 64 || needsEscaping & (1 << UInt64(index - 1)) != 0 {
                        writer.putCanonicalTextEscaped(bytes(values[step.source]))
                    } else {
                        writer.put(bytes(values[step.source]))
                    }
                    if compact { writer.put(byte: CompactBodyForm.end) } else { writer.put(UnsafeBufferPointer(rebasing: tags[step.closeTag])) }
                case .groupStart:
                    guard groupIsPresent(step) else {
                        index = step.end + 1
                        continue
                    }
                    writer.put(UnsafeBufferPointer(rebasing: tags[compact ? step.compactOpenTag : step.openTag]))
                case .groupEnd:
                    if compact { writer.put(byte: CompactBodyForm.end) } else { writer.put(UnsafeBufferPointer(rebasing: tags[step.closeTag])) }
                }
            }
            if compact { writer.put(byte: CompactBodyForm.end) } else { writer.put(UnsafeBufferPointer(rebasing: tags[recordCloseTag])) }
            return writer.count
        }
        let body = String(unsafeUninitializedCapacity: length) { write($0, compact: false) }
        // The key: the key fields' values joined by U+001F (absent ones empty), as `PUISchema.normalize` builds it.
        var keyLength = max(0, keySources.count - 1)
        for source in keySources where source >= 0 && !values[source].isAbsent { keyLength += values[source].count }
        let key = String(unsafeUninitializedCapacity: keyLength) { out in
            var writer = ByteWriter(out)
            for (position, source) in keySources.enumerated() {
                if position > 0 { writer.put(byte: 0x1F) }
                if source >= 0, !values[source].isAbsent { writer.put(bytes(values[source])) }
            }
            return writer.count
        }
        let record = NormalizedRecord(type: type, key: key, body: body)
        guard writingCompactBody else { return (record, nil) }
        let compact = [UInt8](unsafeUninitializedCapacity: compactLength) { out, initialized in
            initialized = write(out, compact: true)
        }
        return (record, compact)
    }
}

/// Appends bytes to a buffer sized in advance.
struct ByteWriter {
    private let buffer: UnsafeMutableBufferPointer<UInt8>
    private(set) var count = 0

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) { self.buffer = buffer }

    @inline(__always)
    mutating func put(byte: UInt8) {
        precondition(count < buffer.count, "record measured too short")
        buffer[count] = byte
        count += 1
    }

    @inline(__always)
    mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) {
        let n = bytes.count
        guard let source = bytes.baseAddress, let target = buffer.baseAddress, n > 0 else { return }
        precondition(count + n <= buffer.count, "record measured too short")
        let to = target + count
        if n > 16 {
            to.update(from: source, count: n)
        } else if n >= 8 {
            // Tags and short values are most pieces of a record: two overlapping word copies cost less than a
            // call to memmove.
            let head = UnsafeRawPointer(source).loadUnaligned(as: UInt64.self)
            let tail = UnsafeRawPointer(source + n - 8).loadUnaligned(as: UInt64.self)
            UnsafeMutableRawPointer(to).storeBytes(of: head, as: UInt64.self)
            UnsafeMutableRawPointer(to + n - 8).storeBytes(of: tail, as: UInt64.self)
        } else if n >= 4 {
            let head = UnsafeRawPointer(source).loadUnaligned(as: UInt32.self)
            let tail = UnsafeRawPointer(source + n - 4).loadUnaligned(as: UInt32.self)
            UnsafeMutableRawPointer(to).storeBytes(of: head, as: UInt32.self)
            UnsafeMutableRawPointer(to + n - 4).storeBytes(of: tail, as: UInt32.self)
        } else {
            for offset in 0..<n { to[offset] = source[offset] }
        }
        count += n
    }

    @inline(__always)
    mutating func put(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { put($0) }
    }

    /// `xmlCanonicalTextEscape` on bytes: &, <, > and CR are the only characters exc-C14N escapes in text; all are
    /// ASCII, so they never occur inside a multi-byte UTF-8 sequence.
    mutating func putCanonicalTextEscaped(_ value: UnsafeBufferPointer<UInt8>) {
        var plainStart = 0
        for (offset, byte) in value.enumerated() {
            let replacement: StaticString
            switch byte {
            case 0x26: replacement = "&amp;"
            case 0x3C: replacement = "&lt;"
            case 0x3E: replacement = "&gt;"
            case 0x0D: replacement = "&#xD;"
            default: continue
            }
            put(UnsafeBufferPointer(rebasing: value[plainStart..<offset]))
            put(UnsafeBufferPointer(start: replacement.utf8Start, count: replacement.utf8CodeUnitCount))
            plainStart = offset + 1
        }
        put(UnsafeBufferPointer(rebasing: value[plainStart...]))
    }
}
