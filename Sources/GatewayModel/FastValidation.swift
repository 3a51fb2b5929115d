/// The per-value fast path of schema validation. `SimpleType.check` is the authority (it produces the messages and
/// agrees with libxml2); a `FastValueCheck` only answers "certainly valid" on UTF-8 bytes without allocating.
/// Whenever it cannot be sure (whitespace to collapse, non-ASCII text for a pattern, an enumeration value that
/// differs only by Unicode equivalence, …) it says no, and the caller asks `check`. So a fast "yes" must imply
/// that `check` returns nil; a fast "no" costs only the slow path.
/// A class: it is read for every value, and copying a struct of arrays would retain each of them.
final class FastValueCheck: Sendable {
    private let builtin: BuiltinType
    /// One entry per derivation step; each holds one matcher per pattern of the step.
    private let patternSteps: [[FastPatternMatcher]]
    private let enumeration: [[UInt8]]?
    private let minLength: Int?
    private let maxLength: Int?
    private let fractionDigits: Int?
    private let totalDigits: Int?
    private let minInclusive: DecimalText?
    private let maxInclusive: DecimalText?
    private let hasDecimalFacets: Bool

    /// nil when a facet has no fast form (a bound that is not a decimal): every value then takes the slow path.
    init?(_ type: SimpleType) {
        builtin = type.builtin
        patternSteps = type.patternSteps.map { step in step.map { FastPatternMatcher($0) } }
        enumeration = type.enumeration.map { values in values.map { Array($0.utf8) } }
        minLength = type.minLength
        maxLength = type.maxLength
        fractionDigits = type.fractionDigits
        totalDigits = type.totalDigits
        if let text = type.minInclusive {
            guard let bound = DecimalText(text) else { return nil }
            minInclusive = bound
        } else {
            minInclusive = nil
        }
        if let text = type.maxInclusive {
            guard let bound = DecimalText(text) else { return nil }
            maxInclusive = bound
        } else {
            maxInclusive = nil
        }
        hasDecimalFacets = type.fractionDigits != nil || type.totalDigits != nil || type.minInclusive != nil
            || type.maxInclusive != nil
    }

    /// nil means "ask `check`"; otherwise `check` accepts the value, and this is its length after canonical
    /// escaping (the serializer needs it, and this scan sees every byte anyway).
    func escapedLengthIfCertainlyValid(_ value: UnsafeBufferPointer<UInt8>) -> Int? {
        // One pass for everything that looks at each byte: XML characters, whitespace, ASCII, scalars, escapes.
        var previousSpace = true
        var whitespaceToCollapse = false
        var ascii = true
        var continuationBytes = 0
        var escapedLength = value.count
        let count = value.count
        var i = 0
        while i < count {
            // Eight bytes at a time when none needs a closer look: plain printable ASCII (no space, &, <, >), or
            // non-ASCII without the 0xEF that starts U+FFFE/U+FFFF.
            if i + 8 <= count, let base = value.baseAddress {
                let word = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                let highBits = word & 0x8080_8080_8080_8080
                if highBits == 0 {
                    if !hasByte(below: 0x21, word) && !hasByte(0x26, word) && !hasByte(0x3C, word) && !hasByte(0x3E, word) {
                        previousSpace = false
                        i += 8
                        continue
                    }
                } else if highBits == 0x8080_8080_8080_8080 && !hasByte(0xEF, word) {
                    // Continuation bytes are 10xxxxxx: bit 7 set, bit 6 (shifted into bit 7) clear.
                    continuationBytes += (word & ~(word << 1) & 0x8080_8080_8080_8080).nonzeroBitCount
                    ascii = false
                    previousSpace = false
                    i += 8
                    continue
                }
            }
            let byte = value[i]
            i += 1
            if byte > 0x20 && byte < 0x80 {
                if byte == 0x26 { escapedLength += 4 }  // &amp;
                else if byte == 0x3C || byte == 0x3E { escapedLength += 3 }  // &lt; &gt;
                previousSpace = false
            } else if byte >= 0x80 {
                ascii = false
                if byte & 0xC0 == 0x80 {
                    continuationBytes += 1
                } else if byte == 0xEF, i + 1 < count, value[i] == 0xBF, value[i + 1] & 0xFE == 0xBE {
                    return nil  // U+FFFE or U+FFFF (EF BF BE, EF BF BF): not XML characters
                }
                previousSpace = false
            } else if byte == 0x20 {
                if previousSpace { whitespaceToCollapse = true }
                previousSpace = true
            } else {
                guard byte == 0x09 || byte == 0x0A || byte == 0x0D else { return nil }  // other C0 controls
                whitespaceToCollapse = true
                if byte == 0x0D { escapedLength += 4 }  // &#xD;
                previousSpace = false
            }
        }
        // Collapsing types: only values that collapsing leaves unchanged stay on the fast path.
        if builtin.collapsesWhitespace && (whitespaceToCollapse || previousSpace) { return nil }
        guard builtinAccepts(value) else { return nil }
        for step in patternSteps {
            var matched = false
            for matcher in step where matcher.certainlyMatches(value, ascii: ascii) { matched = true; break }
            if !matched { return nil }
        }
        if let enumeration {
            var found = false
            for candidate in enumeration where candidate.elementsEqual(value) { found = true; break }
            if !found { return nil }
        }
        if minLength != nil || maxLength != nil {
            let length = value.count - continuationBytes  // Unicode scalars: bytes that start a sequence
            if let minLength, length < minLength { return nil }
            if let maxLength, length > maxLength { return nil }
        }
        if hasDecimalFacets {
            guard let number = DecimalSpan(value, integerOnly: false) else { return nil }
            if let fractionDigits, number.fraction.count > fractionDigits { return nil }
            if let totalDigits, number.integer.count + number.fraction.count > totalDigits { return nil }
            if let minInclusive, number.isLess(than: minInclusive) { return nil }
            if let maxInclusive, number.isGreater(than: maxInclusive) { return nil }
        }
        return escapedLength
    }

    private func builtinAccepts(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        switch builtin {
        case .string, .anyURI:
            return true
        case .decimal:
            return DecimalSpan(value, integerOnly: false) != nil
        case .integer:
            return DecimalSpan(value, integerOnly: true) != nil
        case .nonNegativeInteger:
            guard let number = DecimalSpan(value, integerOnly: true) else { return false }
            return !number.negative || number.isZero
        case .positiveInteger:
            guard let number = DecimalSpan(value, integerOnly: true) else { return false }
            return !number.negative && !number.isZero
        case .boolean:
            return Self.booleanLiterals.contains { $0.elementsEqual(value) }
        case .dateTime:
            return LexicalTime.isDateTime(value)
        case .date:
            return LexicalTime.isDate(value)
        case .gYear:
            return LexicalTime.isGYear(value)
        }
    }

    private static let booleanLiterals: [[UInt8]] = [Array("true".utf8), Array("false".utf8), [0x31], [0x30]]
}

/// Whether any byte of `word` is below `limit` (at most 0x80) — exact for words of ASCII bytes
/// ("hasless" from Bit Twiddling Hacks).
@inline(__always)
private func hasByte(below limit: UInt64, _ word: UInt64) -> Bool {
    (word &- 0x0101_0101_0101_0101 &* limit) & ~word & 0x8080_8080_8080_8080 != 0
}

/// Whether any byte of `word` equals `byte`.
@inline(__always)
private func hasByte(_ byte: UInt64, _ word: UInt64) -> Bool {
    hasByte(below: 1, word ^ (0x0101_0101_0101_0101 &* byte))
}

/// A decimal in lexical form as positions in the caller's bytes: `DecimalText` without its arrays.
struct DecimalSpan {
    var negative: Bool
    /// Integer digits without leading zeros.
    var integer: UnsafeBufferPointer<UInt8>
    /// Fraction digits without trailing zeros.
    var fraction: UnsafeBufferPointer<UInt8>

    var isZero: Bool { integer.isEmpty && fraction.isEmpty }

    /// Accepts exactly what `DecimalText.init?(_:integerOnly:)` accepts.
    init?(_ bytes: UnsafeBufferPointer<UInt8>, integerOnly: Bool) {
        var i = 0
        let count = bytes.count
        negative = false
        if count > 0, bytes[0] == 43 || bytes[0] == 45 {
            negative = bytes[0] == 45
            i = 1
        }
        let integerStart = i
        while i < count, bytes[i] >= 48 && bytes[i] <= 57 { i += 1 }
        let integerEnd = i
        var fractionStart = i, fractionEnd = i
        if i < count {
            guard bytes[i] == 46, !integerOnly else { return nil }
            i += 1
            fractionStart = i
            while i < count, bytes[i] >= 48 && bytes[i] <= 57 { i += 1 }
            guard i == count else { return nil }
            fractionEnd = i
        }
        if integerEnd == integerStart && fractionEnd == fractionStart { return nil }
        var integerFirst = integerStart
        while integerFirst < integerEnd, bytes[integerFirst] == 48 { integerFirst += 1 }
        while fractionEnd > fractionStart, bytes[fractionEnd - 1] == 48 { fractionEnd -= 1 }
        integer = UnsafeBufferPointer(rebasing: bytes[integerFirst..<integerEnd])
        fraction = UnsafeBufferPointer(rebasing: bytes[fractionStart..<fractionEnd])
    }

    /// `DecimalText.<` with this number on the left.
    func isLess(than other: DecimalText) -> Bool {
        let selfNegative = negative && !isZero, otherNegative = other.negative && !other.isZero
        if selfNegative != otherNegative { return selfNegative }
        return selfNegative ? magnitudeOrder(other) == .greater : magnitudeOrder(other) == .less
    }

    /// `DecimalText.<` with this number on the right.
    func isGreater(than other: DecimalText) -> Bool {
        let selfNegative = negative && !isZero, otherNegative = other.negative && !other.isZero
        if selfNegative != otherNegative { return otherNegative }
        return selfNegative ? magnitudeOrder(other) == .less : magnitudeOrder(other) == .greater
    }

    private enum Order { case less, equal, greater }

    private func magnitudeOrder(_ other: DecimalText) -> Order {
        if integer.count != other.integer.count { return integer.count < other.integer.count ? .less : .greater }
        for (a, b) in zip(integer, other.integer) where a != b { return a < b ? .less : .greater }
        for (a, b) in zip(fraction, other.fraction) where a != b { return a < b ? .less : .greater }
        if fraction.count == other.fraction.count { return .equal }
        return fraction.count < other.fraction.count ? .less : .greater
    }
}

/// A pattern facet's fast form: the single-class matcher, or a DFA over ASCII for other patterns. Both only
/// answer for ASCII text, where XSD classes such as `\d` mean exactly their ASCII members.
struct FastPatternMatcher: Sendable {
    private let simple: SimplePattern?
    private let automaton: ASCIIPatternAutomaton?

    init(_ facet: PatternFacet) {
        simple = facet.simple
        automaton = facet.simple == nil ? ASCIIPatternAutomaton(facet.pattern) : nil
    }

    /// `ascii`: the caller already knows whether the value is pure ASCII; anything else cannot be judged here.
    @inline(__always)
    func certainlyMatches(_ value: UnsafeBufferPointer<UInt8>, ascii: Bool) -> Bool {
        guard ascii else { return false }
        if let simple { return simple.matches(value) }
        if let automaton { return automaton.matches(value) }
        return false
    }
}
