import GatewayModel

/// Buffers the ordinary-row path reuses from row to row: one per reading thread (not Sendable).
public final class RowScratch {
    /// The row's bytes, followed by the values the rules of the record being built produced (constants,
    /// defaults, converted times, code-table entries).
    var arena: [UInt8] = []
    /// One range into `arena` per field rule of the record being built.
    var ranges: [FieldValueRange] = []
    /// A row given as Strings, copied into bytes for the byte-level path.
    var rowBytes: [UInt8] = []
    var rowRanges: [Range<Int>] = []

    public init() {}
}

extension BoundMapping {
    /// Maps, validates and serializes an ordinary row in one go, on bytes: no DraftRecord, no String per value.
    /// nil when the row is not ordinary (it matches no record, a value needs a transformation's error, or the
    /// schema cannot vouch for a value at a glance): then `map` + `PUISchema.normalize` decide, and word the
    /// errors. For a row it does handle, the records are those of the general path, byte for byte.
    public func normalizeOrdinaryRow(_ row: [String], schema: PUISchema, scratch: RowScratch) -> [NormalizedRecord]? {
        var rowBytes: [UInt8] = []
        var rowRanges: [Range<Int>] = []
        swap(&rowBytes, &scratch.rowBytes)
        swap(&rowRanges, &scratch.rowRanges)
        defer {
            swap(&rowBytes, &scratch.rowBytes)
            swap(&rowRanges, &scratch.rowRanges)
        }
        rowBytes.removeAll(keepingCapacity: true)
        rowRanges.removeAll(keepingCapacity: true)
        for field in row {
            let start = rowBytes.count
            rowBytes.append(contentsOf: field.utf8)
            rowRanges.append(start..<rowBytes.count)
        }
        return rowBytes.withUnsafeBufferPointer { bytes in
            rowRanges.withUnsafeBufferPointer { ranges in
                normalizeOrdinaryRow(fieldBytes: bytes, fieldRanges: ranges, schema: schema, scratch: scratch)
            }
        }
    }

    /// `normalizeOrdinaryRow` for a row given as UTF-8 bytes: field `i` is `fieldBytes[fieldRanges[i]]`.
    public func normalizeOrdinaryRow(fieldBytes: UnsafeBufferPointer<UInt8>, fieldRanges: UnsafeBufferPointer<Range<Int>>,
                                     schema: PUISchema, scratch: RowScratch) -> [NormalizedRecord]? {
        ordinaryRecords(fieldBytes: fieldBytes, fieldRanges: fieldRanges, schema: schema, scratch: scratch,
                        writingCompactBodies: false)?.records
    }

    /// `normalizeOrdinaryRow` with each record's body also in the journal's compact form (`CompactBodyForm`),
    /// written while the record is serialized: what the journal stores, without parsing the XML again.
    /// `compactBodies[i]` belongs to `records[i]` (nil: store the XML).
    public func normalizeOrdinaryRowForJournal(fieldBytes: UnsafeBufferPointer<UInt8>, fieldRanges: UnsafeBufferPointer<Range<Int>>,
                                               schema: PUISchema, scratch: RowScratch)
        -> (records: [NormalizedRecord], compactBodies: [[UInt8]?])? {
        ordinaryRecords(fieldBytes: fieldBytes, fieldRanges: fieldRanges, schema: schema, scratch: scratch,
                        writingCompactBodies: true)
    }

    private func ordinaryRecords(fieldBytes: UnsafeBufferPointer<UInt8>, fieldRanges: UnsafeBufferPointer<Range<Int>>,
                                 schema: PUISchema, scratch: RowScratch, writingCompactBodies: Bool)
        -> (records: [NormalizedRecord], compactBodies: [[UInt8]?])? {
        // The layouts were compiled against the plan's schema: validating for another one needs the general path.
        guard plan.schema === schema else { return nil }
        let row = RowBytes(bytes: fieldBytes, ranges: fieldRanges)
        // Work on local copies of the buffers (moved out and back), so the loops below do not go through the
        // class's exclusivity checks.
        var arena: [UInt8] = []
        var ranges: [FieldValueRange] = []
        swap(&arena, &scratch.arena)
        swap(&ranges, &scratch.ranges)
        defer {
            swap(&arena, &scratch.arena)
            swap(&ranges, &scratch.ranges)
        }
        // The arena starts with the row itself, so that a column value used as it is needs no copy: its range
        // in the row is its range in the arena. Transformed values are appended after it.
        arena.removeAll(keepingCapacity: true)
        arena.append(contentsOf: fieldBytes)
        var records: [NormalizedRecord] = []
        records.reserveCapacity(2)
        var compactBodies: [[UInt8]?] = []
        if writingCompactBodies { compactBodies.reserveCapacity(2) }
        var matched = false
        // Records usually route on the same column: trim it once per row, not once per record.
        var routingSlot = -1
        var routingText = UnsafeBufferPointer(rebasing: fieldBytes[0..<0])
        for route in plan.routes {
            // The general path's routing (`applies`), on the column's trimmed bytes.
            var holds = true
            for condition in route.byteConditions {
                if condition.slot != routingSlot {
                    let field = row.field(columnIndex[condition.slot])
                    routingText = UnsafeBufferPointer(rebasing: field[trimmedRange(field)])
                    routingSlot = condition.slot
                }
                if !condition.holds(routingText) { holds = false; break }
            }
            guard holds else { continue }
            matched = true
            guard let layout = route.layout else { return nil }
            ranges.removeAll(keepingCapacity: true)
            for rule in route.borrowedRules {
                guard let range = rule._withUnsafeGuaranteedRef({ ordinaryValue($0, row: row, arena: &arena) }) else { return nil }
                ranges.append(range)
            }
            if writingCompactBodies {
                let laidOut = arena.withUnsafeBufferPointer { arenaBytes in
                    ranges.withUnsafeBufferPointer { layout.normalizeWithCompactBody(arena: arenaBytes, values: $0) }
                }
                guard let laidOut else { return nil }
                records.append(laidOut.record)
                compactBodies.append(laidOut.compactBody)
            } else {
                let record = arena.withUnsafeBufferPointer { arenaBytes in
                    ranges.withUnsafeBufferPointer { layout.normalize(arena: arenaBytes, values: $0) }
                }
                guard let record else { return nil }
                records.append(record)
            }
        }
        return matched ? (records, compactBodies) : nil
    }

    /// The rule's value for this row as a range of `arena` (which starts with the row's bytes), `.absent`, or nil
    /// when the value is not ordinary. Each step is the general path's (`evaluate`) on bytes; new bytes are
    /// appended to the arena; rare transformations call the very functions the general path calls.
    private func ordinaryValue(_ rule: FieldRule, row: RowBytes, arena: inout [UInt8]) -> FieldValueRange? {
        var value: Range<Int>
        if let constant = rule.constantBytes {
            value = arena.count..<(arena.count + constant.count)
            arena.append(contentsOf: constant)
        } else if let slot = rule.slot {
            let field = row.fieldRange(columnIndex[slot])
            if rule.trim {
                let trimmed = arena.withUnsafeBufferPointer { trimmedRange(UnsafeBufferPointer(rebasing: $0[field])) }
                value = (field.lowerBound + trimmed.lowerBound)..<(field.lowerBound + trimmed.upperBound)
            } else {
                value = field
            }
        } else {
            value = 0..<0
        }
        if value.isEmpty {
            guard let fallback = rule.defaultBytes else { return .absent }
            value = arena.count..<(arena.count + fallback.count)
            arena.append(contentsOf: fallback)
        }
        func replace(with text: String) {
            let start = arena.count
            arena.append(contentsOf: text.utf8)
            value = start..<arena.count
        }
        func currentText() -> String {
            arena.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[value]), as: UTF8.self) }
        }
        if let table = rule.codeTable {
            let text = currentText()
            if let mapped = table.entries[text] {
                replace(with: mapped)
            } else if let fallback = table.fallback {
                replace(with: fallback)
            } else if !table.passThrough {
                return nil
            }
        }
        if rule.identity18 {
            switch ordinaryIdentityNumber(arena, value) {
            case .asIs:
                break
            case .upperCased:
                let start = arena.count
                arena.append(contentsOf: Array(arena[value]))
                for index in start..<arena.count where arena[index] >= 0x61 && arena[index] <= 0x7A { arena[index] -= 0x20 }
                value = start..<arena.count
            case .other:
                guard case .success(let normalized) = IdentityNumber.normalize(currentText()) else { return nil }
                replace(with: normalized)
            }
        }
        if !rule.formats.isEmpty {
            let time: BeijingTime? = arena.withUnsafeBufferPointer { all in
                let text = UnsafeBufferPointer(rebasing: all[value])
                for format in rule.formats {
                    if let time = format.beijingTime(parsing: text, utcOffsetMinutes: rule.utcOffsetMinutes) { return time }
                }
                return nil
            }
            guard let time else { return nil }
            let start = arena.count
            time.append(to: &arena)
            value = start..<arena.count
        }
        if let places = rule.decimalPlaces {
            guard case .success(let normalized) = DecimalFormatting.normalize(currentText(), places: places) else { return nil }
            replace(with: normalized)
        }
        if rule.integer && !isNormalInteger(arena[value]) {
            guard case .success(let normalized) = DecimalFormatting.normalizeInteger(currentText()) else { return nil }
            replace(with: normalized)
        }
        return FieldValueRange(start: value.lowerBound, count: value.count)
    }
}

/// A row's fields as UTF-8 bytes.
struct RowBytes {
    let bytes: UnsafeBufferPointer<UInt8>
    let ranges: UnsafeBufferPointer<Range<Int>>

    /// Where field `position` lies in `bytes`: empty when the row is shorter (as `BoundMapping.value(slot:in:)`
    /// reads it).
    @inline(__always)
    func fieldRange(_ position: Int) -> Range<Int> {
        position < ranges.count ? ranges[position] : 0..<0
    }

    @inline(__always)
    func field(_ position: Int) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: bytes[fieldRange(position)])
    }
}

/// What `IdentityNumber.normalize` does to a value, when that is cheap to tell.
private enum IdentityNumberCase {
    /// 18 printable ASCII characters without a-z: returned as they are.
    case asIs
    /// 18 printable ASCII characters with some a-z: returned upper-cased (each byte is one Character, and
    /// `uppercased()` maps only a-z among them).
    case upperCased
    /// Anything else: ask `IdentityNumber.normalize`.
    case other
}

private func ordinaryIdentityNumber(_ arena: [UInt8], _ value: Range<Int>) -> IdentityNumberCase {
    guard value.count == 18, arena[value].allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else { return .other }
    // One that fails its check character goes the general way, which refuses it with the reason.
    guard ResidentIdentityNumber.isValid(arena[value]) else { return .other }
    return arena[value].contains(where: { $0 >= 0x61 && $0 <= 0x7A }) ? .upperCased : .asIs
}

/// Digits only, without a leading zero (or "0"): `DecimalFormatting.normalizeInteger` returns such text unchanged.
private func isNormalInteger(_ text: ArraySlice<UInt8>) -> Bool {
    guard let first = text.first, first != 0x30 || text.count == 1 else { return false }
    return text.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
}
