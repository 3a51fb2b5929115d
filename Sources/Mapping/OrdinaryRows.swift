import GatewayModel

/// Buffers the ordinary-row path reuses from row to row: one per reading thread (not Sendable).
public final class RowScratch {
    /// The values of the record being built, back to back.
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
        arena.removeAll(keepingCapacity: true)
        var records: [NormalizedRecord] = []
        var matched = false
        var routingSlot = -1
        var routingText = ""
        for route in plan.routes {
            // The general path's routing (`applies`), reading the column's trimmed text from bytes.
            var holds = true
            for condition in route.conditions {
                if condition.slot != routingSlot {
                    let field = row.field(columnIndex[condition.slot])
                    routingText = String(decoding: UnsafeBufferPointer(rebasing: field[trimmedRange(field)]), as: UTF8.self)
                    routingSlot = condition.slot
                }
                if !self.holds(condition.test, routingText) { holds = false; break }
            }
            guard holds else { continue }
            matched = true
            guard let layout = route.layout else { return nil }
            ranges.removeAll(keepingCapacity: true)
            for rule in route.rules {
                guard let range = ordinaryValue(rule, row: row, arena: &arena) else { return nil }
                ranges.append(range)
            }
            let record = arena.withUnsafeBufferPointer { arenaBytes in
                ranges.withUnsafeBufferPointer { layout.normalize(arena: arenaBytes, values: $0) }
            }
            guard let record else { return nil }
            records.append(record)
        }
        return matched ? records : nil
    }

    /// The rule's value for this row, appended to `arena`: its range, `.absent`, or nil when the value is not
    /// ordinary. Each step is the general path's (`evaluate`) on bytes; rare transformations call the very
    /// functions the general path calls.
    private func ordinaryValue(_ rule: FieldRule, row: RowBytes, arena: inout [UInt8]) -> FieldValueRange? {
        let start = arena.count
        if let constant = rule.constantBytes {
            arena.append(contentsOf: constant)
        } else if let slot = rule.slot {
            let bytes = row.field(columnIndex[slot])
            let range = rule.trim ? trimmedRange(bytes) : 0..<bytes.count
            arena.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[range]))
        }
        if arena.count == start {
            guard let fallback = rule.defaultBytes else { return .absent }
            arena.append(contentsOf: fallback)
        }
        /// Replaces the value written so far with `text`.
        func replace(with text: String) {
            arena.removeSubrange(start...)
            arena.append(contentsOf: text.utf8)
        }
        func currentText() -> String {
            arena.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[start...]), as: UTF8.self) }
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
            if !uppercaseOrdinaryIdentityNumber(&arena, from: start) {
                guard case .success(let normalized) = IdentityNumber.normalize(currentText()) else { return nil }
                replace(with: normalized)
            }
        }
        if !rule.formats.isEmpty {
            let time: BeijingTime? = arena.withUnsafeBufferPointer { all in
                let text = UnsafeBufferPointer(rebasing: all[start...])
                for format in rule.formats {
                    if let time = format.beijingTime(parsing: text, utcOffsetMinutes: rule.utcOffsetMinutes) { return time }
                }
                return nil
            }
            guard let time else { return nil }
            arena.removeSubrange(start...)
            time.append(to: &arena)
        }
        if let places = rule.decimalPlaces {
            guard case .success(let value) = DecimalFormatting.normalize(currentText(), places: places) else { return nil }
            replace(with: value)
        }
        if rule.integer && !isNormalInteger(arena, from: start) {
            guard case .success(let value) = DecimalFormatting.normalizeInteger(currentText()) else { return nil }
            replace(with: value)
        }
        return FieldValueRange(start: start, count: arena.count - start)
    }
}

/// A row's fields as UTF-8 bytes.
struct RowBytes {
    let bytes: UnsafeBufferPointer<UInt8>
    let ranges: UnsafeBufferPointer<Range<Int>>

    /// Field `position`, empty when the row is shorter (as `BoundMapping.value(slot:in:)` reads it).
    @inline(__always)
    func field(_ position: Int) -> UnsafeBufferPointer<UInt8> {
        guard position < ranges.count else { return UnsafeBufferPointer(rebasing: bytes[0..<0]) }
        return UnsafeBufferPointer(rebasing: bytes[ranges[position]])
    }
}

/// The usual identity number is 18 printable ASCII characters: then each is one byte and one Character, and
/// `IdentityNumber.normalize` only upper-cases a-z, which is done here in place. False: not that case.
private func uppercaseOrdinaryIdentityNumber(_ arena: inout [UInt8], from start: Int) -> Bool {
    guard arena.count - start == 18, arena[start...].allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else { return false }
    for index in start..<arena.count where arena[index] >= 0x61 && arena[index] <= 0x7A { arena[index] -= 0x20 }
    return true
}

/// Digits only, without a leading zero (or "0"): `DecimalFormatting.normalizeInteger` returns such text unchanged.
private func isNormalInteger(_ arena: [UInt8], from start: Int) -> Bool {
    let count = arena.count - start
    guard count > 0, arena[start] != 0x30 || count == 1 else { return false }
    return arena[start...].allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
}
