/// An XSD pattern compiled to a deterministic automaton over ASCII, for the patterns `SimplePattern` does not
/// take (`\d{4}-\d{2}-…(\.\d{1,3})?\+08:00`): checking a BeijingTime through libxml2's regex engine on every
/// record cost more than the rest of its validation.
///
/// Only ASCII text is judged: there, XSD's `\d` is exactly `[0-9]` and `.` is any character but CR and LF.
/// Callers send any other text to libxml2. Syntax outside a small, well-understood subset (character class
/// escapes such as `\w` or `\p{…}`, class subtraction or negation, non-ASCII literals) makes `init` return nil,
/// and the pattern stays with libxml2 entirely.
struct ASCIIPatternAutomaton: Sendable {
    /// `transitions[state * 128 + byte]`: the next state; state 0 is the dead state.
    private let transitions: [UInt16]
    private let accepting: [Bool]
    private let start: Int

    /// Limits that keep schema loading fast; patterns beyond them stay with libxml2.
    private static let maximumNFAStates = 4096
    private static let maximumDFAStates = 2048

    init?(_ pattern: String) {
        var parser = Parser(Array(pattern.unicodeScalars))
        guard let expression = parser.parseExpression(), parser.atEnd else { return nil }
        var nfa = NFA()
        guard let fragment = nfa.build(expression), nfa.stateCount <= Self.maximumNFAStates else { return nil }
        guard let dfa = Self.determinize(nfa, start: fragment.start, end: fragment.end) else { return nil }
        (transitions, accepting, start) = dfa
    }

    func matches(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        transitions.withUnsafeBufferPointer { table in
            var state = start
            for byte in value {
                if byte >= 0x80 { return false }
                state = Int(table[state &* 128 &+ Int(byte)])
                if state == 0 { return false }
            }
            return accepting[state]
        }
    }

    // MARK: - Syntax

    /// A parsed pattern: alternatives of sequences of quantified atoms.
    private indirect enum Expression {
        case characters([Bool])                  // 128 entries: which ASCII characters the atom matches
        case sequence([Expression])
        case alternatives([Expression])
        case repeated(Expression, minimum: Int, maximum: Int?)
    }

    private struct Parser {
        let s: [Unicode.Scalar]
        var i = 0

        init(_ s: [Unicode.Scalar]) { self.s = s }

        var atEnd: Bool { i == s.count }

        /// regExp ::= branch ('|' branch)*
        mutating func parseExpression() -> Expression? {
            var branches: [Expression] = []
            while true {
                guard let branch = parseBranch() else { return nil }
                branches.append(branch)
                if i < s.count, s[i] == "|" { i += 1; continue }
                break
            }
            return branches.count == 1 ? branches[0] : .alternatives(branches)
        }

        /// branch ::= piece*
        mutating func parseBranch() -> Expression? {
            var pieces: [Expression] = []
            while i < s.count, s[i] != "|", s[i] != ")" {
                guard let atom = parseAtom() else { return nil }
                guard let piece = parseQuantifier(atom) else { return nil }
                pieces.append(piece)
            }
            // An empty branch (`a|`, `()`) is legal XSD, but rare enough to leave to libxml2.
            return pieces.isEmpty ? nil : .sequence(pieces)
        }

        mutating func parseAtom() -> Expression? {
            let c = s[i]
            switch c {
            case "(":
                i += 1
                guard let inner = parseExpression(), i < s.count, s[i] == ")" else { return nil }
                i += 1
                return inner
            case "[":
                return parseClass()
            case "\\":
                guard i + 1 < s.count else { return nil }
                let escaped = s[i + 1]
                i += 2
                return Self.escape(escaped).map { .characters($0) }
            case ".":
                i += 1
                var set = [Bool](repeating: true, count: 128)
                set[0x0A] = false
                set[0x0D] = false
                return .characters(set)
            case "?", "*", "+", "{", "}", "]", "^", "$":
                // Quantifiers without an atom are errors; ^ and $ are literals in XSD but easy to misread: leave them.
                return nil
            default:
                guard c.isASCII else { return nil }
                i += 1
                var set = [Bool](repeating: false, count: 128)
                set[Int(c.value)] = true
                return .characters(set)
            }
        }

        /// Single-character escapes and `\d`, `\s`; anything else (`\w`, `\i`, `\p{…}`, …) is not supported.
        static func escape(_ c: Unicode.Scalar) -> [Bool]? {
            var set = [Bool](repeating: false, count: 128)
            switch c {
            case "n": set[0x0A] = true
            case "r": set[0x0D] = true
            case "t": set[0x09] = true
            case "d": for v in 0x30...0x39 { set[v] = true }
            case "s": for v in [0x20, 0x09, 0x0A, 0x0D] { set[v] = true }
            default:
                guard "\\|.?*+(){}-[]^".unicodeScalars.contains(c) else { return nil }
                set[Int(c.value)] = true
            }
            return set
        }

        /// A positive class of ASCII characters, ranges and escapes, parsed like `SimplePattern` parses its classes.
        mutating func parseClass() -> Expression? {
            let open = i
            guard let close = s[(open + 1)...].firstIndex(of: "]") else { return nil }
            var set = [Bool](repeating: false, count: 128)
            var items: [Unicode.Scalar] = []
            var k = open + 1
            while k < close {
                var c = s[k]
                if c == "\\" {
                    guard k + 1 < close else { return nil }
                    c = s[k + 1]
                    guard "-.[]\\^{}|?*+()".unicodeScalars.contains(c) else { return nil }  // no \d, \w, \s … here
                    items.append(c)
                    k += 2
                    continue
                }
                if c == "[" || c == "^" && k == open + 1 { return nil }  // subtraction or negation
                if c == "-", let last = items.last, k + 1 < close, s[k + 1] != "\\" {
                    let upper = s[k + 1]
                    guard last.isASCII, upper.isASCII, last.value <= upper.value else { return nil }
                    for v in last.value...upper.value { set[Int(v)] = true }
                    items.removeLast()
                    k += 2
                    continue
                }
                items.append(c)
                k += 1
            }
            guard close > open + 1 else { return nil }
            for item in items {
                guard item.isASCII else { return nil }
                set[Int(item.value)] = true
            }
            i = close + 1
            return .characters(set)
        }

        /// quantifier ::= [?*+] | '{' n '}' | '{' n ',' '}' | '{' n ',' m '}'
        mutating func parseQuantifier(_ atom: Expression) -> Expression? {
            guard i < s.count else { return atom }
            switch s[i] {
            case "?": i += 1; return .repeated(atom, minimum: 0, maximum: 1)
            case "*": i += 1; return .repeated(atom, minimum: 0, maximum: nil)
            case "+": i += 1; return .repeated(atom, minimum: 1, maximum: nil)
            case "{":
                i += 1
                guard let minimum = parseNumber() else { return nil }
                var maximum: Int? = minimum
                if i < s.count, s[i] == "," {
                    i += 1
                    if i < s.count, s[i] == "}" {
                        maximum = nil
                    } else {
                        guard let upper = parseNumber() else { return nil }
                        maximum = upper
                    }
                }
                guard i < s.count, s[i] == "}" else { return nil }
                i += 1
                if let maximum, maximum < minimum { return nil }
                return .repeated(atom, minimum: minimum, maximum: maximum)
            default:
                return atom
            }
        }

        mutating func parseNumber() -> Int? {
            var value = 0
            let start = i
            while i < s.count, s[i].value >= 0x30 && s[i].value <= 0x39 {
                value = value * 10 + Int(s[i].value - 0x30)
                if value > 10_000 { return nil }
                i += 1
            }
            return i > start ? value : nil
        }
    }

    // MARK: - Thompson NFA

    private struct NFA {
        var epsilon: [[Int]] = []
        /// At most one character transition per state: (characters, target).
        var step: [(set: [Bool], to: Int)?] = []
        var stateCount: Int { epsilon.count }

        mutating func newState() -> Int {
            epsilon.append([])
            step.append(nil)
            return epsilon.count - 1
        }

        /// Builds a fragment with one entry and one exit state; nil when it grows beyond the limit.
        mutating func build(_ expression: Expression) -> (start: Int, end: Int)? {
            if stateCount > ASCIIPatternAutomaton.maximumNFAStates { return nil }
            switch expression {
            case .characters(let set):
                let start = newState(), end = newState()
                step[start] = (set, end)
                return (start, end)
            case .sequence(let parts):
                let start = newState()
                var current = start
                for part in parts {
                    guard let fragment = build(part) else { return nil }
                    epsilon[current].append(fragment.start)
                    current = fragment.end
                }
                return (start, current)
            case .alternatives(let branches):
                let start = newState(), end = newState()
                for branch in branches {
                    guard let fragment = build(branch) else { return nil }
                    epsilon[start].append(fragment.start)
                    epsilon[fragment.end].append(end)
                }
                return (start, end)
            case .repeated(let inner, let minimum, let maximum):
                let start = newState()
                var current = start
                for _ in 0..<minimum {
                    guard let fragment = build(inner) else { return nil }
                    epsilon[current].append(fragment.start)
                    current = fragment.end
                }
                if let maximum {
                    // Each optional copy may be skipped to the common exit.
                    let end = newState()
                    for _ in minimum..<maximum {
                        guard let fragment = build(inner) else { return nil }
                        epsilon[current].append(fragment.start)
                        epsilon[current].append(end)
                        current = fragment.end
                    }
                    epsilon[current].append(end)
                    return (start, end)
                }
                let loop = newState()
                epsilon[current].append(loop)
                guard let fragment = build(inner) else { return nil }
                epsilon[loop].append(fragment.start)
                epsilon[fragment.end].append(loop)
                return (start, loop)
            }
        }

        func closure(_ states: [Int]) -> [Int] {
            var seen = Set(states)
            var pending = states
            while let state = pending.popLast() {
                for next in epsilon[state] where seen.insert(next).inserted { pending.append(next) }
            }
            return seen.sorted()
        }
    }

    /// Subset construction; nil when the automaton would exceed the state limit.
    private static func determinize(_ nfa: NFA, start: Int, end: Int) -> ([UInt16], [Bool], Int)? {
        var index: [[Int]: Int] = [[]: 0]
        var sets: [[Int]] = [[]]
        var table = [UInt16](repeating: 0, count: 128)
        let initial = nfa.closure([start])
        index[initial] = 1
        sets.append(initial)
        table += [UInt16](repeating: 0, count: 128)
        var next = 1
        while next < sets.count {
            let current = sets[next]
            for byte in 0..<128 {
                var moved: [Int] = []
                for state in current {
                    if let transition = nfa.step[state], transition.set[byte] { moved.append(transition.to) }
                }
                if moved.isEmpty { continue }
                let target = nfa.closure(moved)
                let targetIndex: Int
                if let known = index[target] {
                    targetIndex = known
                } else {
                    guard sets.count < maximumDFAStates else { return nil }
                    targetIndex = sets.count
                    index[target] = targetIndex
                    sets.append(target)
                    table += [UInt16](repeating: 0, count: 128)
                }
                table[next * 128 + byte] = UInt16(targetIndex)
            }
            next += 1
        }
        let accepting = sets.map { $0.contains(end) }
        return (table, accepting, 1)
    }
}
