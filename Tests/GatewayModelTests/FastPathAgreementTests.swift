import Testing
import XMLSupport
@testable import GatewayModel

/// The byte-level fast paths of the reader (ASCII pattern matcher, "certainly valid" check) against libxml2 and
/// the general checker: they may only ever agree or defer.
@Suite struct FastPathAgreementTests {
    @Test func automatonAgreesWithLibxml2() throws {
        let patterns = [#"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?\+08:00"#, #"\d{4}-(0[1-9]|1[0-2])"#,
                        "[0-9]{6}-[0-9]{1,18}", "[0-9]{6}", "[0-9A-Z]{9}|[0-9A-Z]{18}", #"[0-9A-Za-z_\-\.]{1,32}"#,
                        "a*b+c?", "(ab|a)(c|bcd)(d*)", "x{2,}y", ".{3}", #"\s?\d+"#, "[a-]z", "[-a]z"]
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789-T:.+08abcdxyzAZ_ \n\r".utf8)
        var compared = 0
        for pattern in patterns {
            let automaton = try #require(ASCIIPatternAutomaton(pattern), "\(pattern)")
            let libxml = try XSDRegularExpression(pattern)
            var samples = ["2026-01-05T08:37:00+08:00", "2026-01-05T08:37:00.1+08:00", "2026-01-05T08:37:00.1234+08:00",
                           "2026-01", "2026-13", "2026-00", "410103-1", "410103-", "", "ab", "abcd", "acd", "abbcd"]
            // Mutations of the valid samples and random strings.
            for _ in 0..<3000 {
                var base = Array(samples[Int.random(in: 0..<samples.count, using: &rng)].utf8)
                let edits = Int.random(in: 0...3, using: &rng)
                for _ in 0..<edits {
                    let what = Int.random(in: 0..<3, using: &rng)
                    let at = base.isEmpty ? 0 : Int.random(in: 0..<base.count, using: &rng)
                    let c = alphabet[Int.random(in: 0..<alphabet.count, using: &rng)]
                    if what == 0 || base.isEmpty { base.insert(c, at: at) } else if what == 1 { base[at] = c } else { base.remove(at: at) }
                }
                samples.append(String(decoding: base, as: UTF8.self))
            }
            for sample in samples {
                var s = sample
                let fast = s.withUTF8 { automaton.matches($0) }
                #expect(fast == libxml.matches(sample), "\(pattern) on '\(sample)'")
                compared += 1
            }
        }
        #expect(compared > 30000)
        #expect(ASCIIPatternAutomaton(#"\w+"#) == nil)
        #expect(ASCIIPatternAutomaton("[^a]") == nil)
    }

    @Test func fastCheckNeverAcceptsWhatCheckRejects() throws {
        let schema = try PUISchema.shipped()
        var types: [SimpleType] = []
        func collect(_ elements: [ElementDeclaration]) {
            for element in elements {
                switch element.content {
                case .simple(let type): types.append(type)
                case .complex(let name): collect(schema.complexTypes[name] ?? [])
                }
            }
        }
        for type in schema.recordTypes.values { collect(type.elements) }
        let probes = ["", " ", "x", "01", "1", "0", "-0", "+5", " 5 ", "5 ", "1.5", "1.50", "1.234", "1.2300", "-1", "00012", "0.00",
                      "999999999999.99", "999999999999.991", "1000000000000", "3650", "3650.0", "3651", "-3651", "0003650", ".5", "5.", ".", "+", "-",
                      "true", "false", "TRUE", "W", "N", "w", "1 2", "1\t2", "1  2",
                      "2026-01-05T08:37:00+08:00", "2026-02-30T08:00:00+08:00", "2026-01-05T08:37:00Z", "2026-01-05T24:00:00+08:00",
                      "2026-01-05 08:37:00", "2026-01-05T08:37:00.1234+08:00", "2026-01-05T08:37:00.123+08:00", " 2026-01-05T08:37:00+08:00", "2026-01",
                      "2026-13", "２０２６-01", "410103001", "41010300", "91410103MA1234567X", "abc_DEF-1.2", "a b",
                      String(repeating: "长", count: 64), String(repeating: "长", count: 65), String(repeating: "x", count: 33),
                      "41010300001320000001", "A&B<C>", "line\nbreak", "tab\there", "\u{1}", "\u{FFFF}", "e\u{301}", "2026", "-2026", "02026"]
        var fastYes = 0
        for type in types {
            let fast = FastValueCheck(type)
            for probe in probes {
                var p = probe
                let fastLength = p.withUTF8 { fast?.escapedLengthIfCertainlyValid($0) }
                let yes = fastLength != nil
                if let fastLength { #expect(fastLength == xmlCanonicalTextEscape(probe).utf8.count) }
                if yes { fastYes += 1; #expect(type.check(probe) == nil, "\(type.name) '\(probe)'") }
                if type.check(probe) == nil && !yes { print("slow-only: \(type.name) '\(probe)'") }
            }
        }
        #expect(fastYes > 100)
    }
}
