import XMLSupport

/// A fast matcher for the common shape of PUI patterns: alternatives, each one character class with a count,
/// such as `[0-9A-Za-z_\-\.]{1,32}` or `[0-9A-Z]{9}|[0-9A-Z]{18}`. Only ASCII classes are accepted; anything
/// else (`\d`, groups, several atoms) is left to libxml2's XSD regular-expression engine. A differential test
/// compares the verdicts of both validators with libxml2's schema validation.
struct SimplePattern: Sendable {
    struct Alternative: Sendable {
        var allowed: [Bool]   // indexed by ASCII code
        var minimum: Int
        var maximum: Int
    }
    let alternatives: [Alternative]

    init?(_ pattern: String) {
        var result: [Alternative] = []
        for text in pattern.split(separator: "|", omittingEmptySubsequences: false) {
            guard let alternative = Self.parse(Array(text.unicodeScalars)) else { return nil }
            result.append(alternative)
        }
        alternatives = result
    }

    private static func parse(_ s: [Unicode.Scalar]) -> Alternative? {
        guard s.first == "[", let close = s.firstIndex(of: "]") else { return nil }
        var allowed = [Bool](repeating: false, count: 128)
        var i = 1
        var items: [Unicode.Scalar] = []
        while i < close {
            var c = s[i]
            if c == "\\" {
                guard i + 1 < close else { return nil }
                c = s[i + 1]
                guard "-.[]\\^{}|?*+()".unicodeScalars.contains(c) else { return nil }  // no \d, \w, \s …
                items.append(c)
                i += 2
                continue
            }
            if c == "[" || c == "^" && i == 1 { return nil }  // subtraction or negation
            if c == "-", let last = items.last, i + 1 < close, s[i + 1] != "\\" {
                let upper = s[i + 1]
                guard last.isASCII, upper.isASCII, last.value <= upper.value else { return nil }
                for v in last.value...upper.value { allowed[Int(v)] = true }
                items.removeLast()
                i += 2
                continue
            }
            items.append(c)
            i += 1
        }
        for item in items {
            guard item.isASCII else { return nil }
            allowed[Int(item.value)] = true
        }
        // Quantifier: {n} or {m,n} and nothing after it.
        let rest = String(String.UnicodeScalarView(s[(close + 1)...]))
        guard rest.hasPrefix("{"), rest.hasSuffix("}") else { return nil }
        let numbers = rest.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false)
        guard numbers.count == 1 || numbers.count == 2, let minimum = Int(numbers[0]) else { return nil }
        let maximum = numbers.count == 2 ? Int(numbers[1]) : minimum
        guard let maximum, minimum <= maximum else { return nil }
        return Alternative(allowed: allowed, minimum: minimum, maximum: maximum)
    }

    func matches(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { matches($0) }
    }

    func matches(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        for byte in value where byte >= 0x80 { return false }  // classes are ASCII-only: any other character cannot match
        let count = value.count
        for alternative in alternatives where count >= alternative.minimum && count <= alternative.maximum {
            if alternative.allowed.withUnsafeBufferPointer({ allowed in value.allSatisfy { allowed[Int($0)] } }) { return true }
        }
        return false
    }
}

/// A pattern facet: the fast matcher when the pattern allows it, libxml2 otherwise.
public struct PatternFacet: Sendable {
    public let pattern: String
    let simple: SimplePattern?
    let regex: XSDRegularExpression

    init(_ pattern: String) throws(XMLError) {
        self.pattern = pattern
        regex = try XSDRegularExpression(pattern)
        simple = SimplePattern(pattern)
    }

    public func matches(_ value: String) -> Bool {
        if let simple { return simple.matches(value) }
        return regex.matches(value)
    }
}
