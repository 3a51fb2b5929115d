import CivilTime
import XMLSupport

extension SimpleType {
    /// Checks a lexical value against this type; returns the problem in words, or nil when valid.
    /// Order and wording follow the XSD rules libxml2 applies: built-in lexical space first, then facets.
    public func check(_ raw: String) -> String? {
        guard isXMLCharacterData(raw) else { return "contains a character not allowed in XML" }
        let value = builtin.collapsesWhitespace ? collapseWhitespace(raw) : raw
        if let problem = checkBuiltin(value) { return problem }
        for step in patternSteps where !step.contains(where: { $0.matches(value) }) {
            return "'\(value)' does not match the pattern of \(name) (\(step.map(\.pattern).joined(separator: " or ")))"
        }
        if let enumeration, !enumeration.contains(value) {
            return "'\(value)' is not one of \(enumeration.joined(separator: ", ")) (\(name))"
        }
        if minLength != nil || maxLength != nil {
            let length = value.unicodeScalars.count
            if let minLength, length < minLength { return "length \(length) is below the minimum \(minLength) of \(name)" }
            if let maxLength, length > maxLength { return "length \(length) exceeds the maximum \(maxLength) of \(name)" }
        }
        if fractionDigits != nil || totalDigits != nil || minInclusive != nil || maxInclusive != nil {
            guard let number = DecimalText(value) else { return "'\(value)' is not a decimal number (\(name))" }
            if let fractionDigits, number.fraction.count > fractionDigits {
                return "'\(value)' has more than \(fractionDigits) fraction digits (\(name))"
            }
            if let totalDigits, number.integer.count + number.fraction.count > totalDigits {
                return "'\(value)' has more than \(totalDigits) digits (\(name))"
            }
            if let minInclusive, let bound = DecimalText(minInclusive), number < bound {
                return "'\(value)' is less than the minimum \(minInclusive) of \(name)"
            }
            if let maxInclusive, let bound = DecimalText(maxInclusive), bound < number {
                return "'\(value)' is greater than the maximum \(maxInclusive) of \(name)"
            }
        }
        return nil
    }

    private func checkBuiltin(_ value: String) -> String? {
        switch builtin {
        case .string, .anyURI:
            return nil
        case .decimal:
            return DecimalText(value) == nil ? "'\(value)' is not a valid xs:decimal" : nil
        case .integer, .nonNegativeInteger, .positiveInteger:
            guard let number = DecimalText(value, integerOnly: true) else { return "'\(value)' is not a valid xs:\(builtin.rawValue)" }
            if builtin == .nonNegativeInteger, number.negative, !number.isZero { return "'\(value)' is negative" }
            if builtin == .positiveInteger, number.negative || number.isZero { return "'\(value)' is not positive" }
            return nil
        case .boolean:
            return ["true", "false", "1", "0"].contains(value) ? nil : "'\(value)' is not a valid xs:boolean"
        case .dateTime:
            return LexicalTime.isDateTime(value) ? nil : "'\(value)' is not a valid xs:dateTime"
        case .date:
            return LexicalTime.isDate(value) ? nil : "'\(value)' is not a valid xs:date"
        case .gYear:
            return LexicalTime.isGYear(value) ? nil : "'\(value)' is not a valid xs:gYear"
        }
    }
}

/// XSD whiteSpace="collapse": tabs, CR and LF become spaces, runs collapse, ends are trimmed.
func collapseWhitespace(_ value: String) -> String {
    var needs = false
    var previousSpace = true
    for byte in value.utf8 {
        let space = byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
        if space && (previousSpace || byte != 0x20) { needs = true; break }
        previousSpace = space
    }
    if !needs && !previousSpace { return value }
    return value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" })
        .joined(separator: " ")
}

/// A decimal in lexical form, split for exact comparison (no binary floating point anywhere).
struct DecimalText: Comparable {
    var negative: Bool
    /// Integer digits without leading zeros.
    var integer: [UInt8]
    /// Fraction digits without trailing zeros.
    var fraction: [UInt8]

    var isZero: Bool { integer.isEmpty && fraction.isEmpty }

    init?(_ text: String, integerOnly: Bool = false) {
        var bytes = Array(text.utf8)[...]
        negative = false
        if let first = bytes.first, first == 43 || first == 45 {
            negative = first == 45
            bytes = bytes.dropFirst()
        }
        var integerPart: [UInt8] = []
        var fractionPart: [UInt8] = []
        var seenPoint = false
        for byte in bytes {
            if byte == 46 {
                if seenPoint || integerOnly { return nil }
                seenPoint = true
            } else if byte >= 48 && byte <= 57 {
                if seenPoint { fractionPart.append(byte) } else { integerPart.append(byte) }
            } else {
                return nil
            }
        }
        if integerPart.isEmpty && fractionPart.isEmpty { return nil }
        while integerPart.first == 48 { integerPart.removeFirst() }
        while fractionPart.last == 48 { fractionPart.removeLast() }
        integer = integerPart
        fraction = fractionPart
    }

    static func < (a: DecimalText, b: DecimalText) -> Bool {
        let aNeg = a.negative && !a.isZero, bNeg = b.negative && !b.isZero
        if aNeg != bNeg { return aNeg }
        let magnitudeLess = Self.magnitudeLess(a, b)
        let magnitudeGreater = Self.magnitudeLess(b, a)
        return aNeg ? magnitudeGreater : magnitudeLess
    }

    private static func magnitudeLess(_ a: DecimalText, _ b: DecimalText) -> Bool {
        if a.integer.count != b.integer.count { return a.integer.count < b.integer.count }
        if a.integer != b.integer { return a.integer.lexicographicallyPrecedes(b.integer) }
        return a.fraction.lexicographicallyPrecedes(b.fraction)
    }
}

/// Lexical checks of XSD date/time types, including calendar validity (no 2026-02-30).
/// They work on UTF-8 bytes: the fast validation path calls them for every time field without a String.
enum LexicalTime {
    static func isDateTime(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { isDateTime($0) }
    }

    static func isDate(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { isDate($0) }
    }

    static func isGYear(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { isGYear($0) }
    }

    static func isDateTime(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let afterDate = parseDate(bytes, from: 0), afterDate < bytes.count, bytes[afterDate] == 84 /* T */ else { return false }
        var i = afterDate + 1
        guard let hour = digits(bytes, i, 2), byte(bytes, i + 2) == 58, let minute = digits(bytes, i + 3, 2),
              byte(bytes, i + 5) == 58, let second = digits(bytes, i + 6, 2) else { return false }
        i += 8
        var fractionNonZero = false
        if byte(bytes, i) == 46 {
            i += 1
            let start = i
            while i < bytes.count, bytes[i] >= 48 && bytes[i] <= 57 { if bytes[i] != 48 { fractionNonZero = true }; i += 1 }
            if i == start { return false }
        }
        guard minute <= 59, second <= 59 else { return false }
        if hour == 24 { guard minute == 0, second == 0, !fractionNonZero else { return false } } else if hour > 23 { return false }
        return isTimezone(bytes, from: i)
    }

    static func isDate(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let end = parseDate(bytes, from: 0) else { return false }
        return isTimezone(bytes, from: end)
    }

    static func isGYear(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let (_, end) = parseYear(bytes, from: 0) else { return false }
        return isTimezone(bytes, from: end)
    }

    @inline(__always)
    private static func byte(_ bytes: UnsafeBufferPointer<UInt8>, _ i: Int) -> UInt8? { i < bytes.count ? bytes[i] : nil }

    private static func digits(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int) -> Int? {
        guard start + count <= bytes.count else { return nil }
        var value = 0
        for k in start..<(start + count) {
            let b = bytes[k]
            guard b >= 48 && b <= 57 else { return nil }
            value = value * 10 + Int(b - 48)
        }
        return value
    }

    private static func parseYear(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> (Int, Int)? {
        var i = start
        var negative = false
        if byte(bytes, i) == 45 { negative = true; i += 1 }
        let digitStart = i
        var year = 0
        while i < bytes.count, bytes[i] >= 48 && bytes[i] <= 57 {
            year = year &* 10 &+ Int(bytes[i] - 48)
            i += 1
        }
        let count = i - digitStart
        guard count >= 4, count <= 18 else { return nil }
        if count > 4, bytes[digitStart] == 48 { return nil }
        if year == 0 { return nil }  // XSD 1.0: year 0000 is not allowed
        return (negative ? -year : year, i)
    }

    /// Parses YYYY-MM-DD, returns the index after it.
    private static func parseDate(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        guard let (year, i) = parseYear(bytes, from: start), byte(bytes, i) == 45,
              let month = digits(bytes, i + 1, 2), byte(bytes, i + 3) == 45, let day = digits(bytes, i + 4, 2) else { return nil }
        guard month >= 1, month <= 12, day >= 1, day <= daysInMonth(year: year, month: month) else { return nil }
        return i + 6
    }

    private static func isTimezone(_ bytes: UnsafeBufferPointer<UInt8>, from i: Int) -> Bool {
        if i == bytes.count { return true }
        if bytes[i] == 90 { return i + 1 == bytes.count }
        guard bytes[i] == 43 || bytes[i] == 45, i + 6 == bytes.count, let hh = digits(bytes, i + 1, 2),
              bytes[i + 3] == 58, let mm = digits(bytes, i + 4, 2) else { return false }
        return mm <= 59 && (hh < 14 || (hh == 14 && mm == 0))
    }

    static func daysInMonth(year: Int, month: Int) -> Int { CivilCalendar.daysInMonth(year: year, month: month) }
}
