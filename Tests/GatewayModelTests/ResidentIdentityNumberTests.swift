import Testing
@testable import GatewayModel

/// The check character as GB 11643 states it: the weight table 7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2
/// and the characters 1 0 X 9 8 7 6 5 4 3 2 by the weighted sum mod 11. The implementation computes the weights as
/// powers of two; this holds it to the table.
@Suite struct ResidentIdentityNumberTests {
    static let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    static let characters = Array("10X98765432".utf8)

    static func byTable(_ body: [UInt8]) -> UInt8 {
        let sum = zip(body, weights).reduce(0) { $0 + Int($1.0 - 0x30) * $1.1 }
        return characters[sum % 11]
    }

    @Test func checkCharacterIsTheStandardsOnRandomBodies() {
        var rng = SystemRandomNumberGenerator()
        var seen = Set<UInt8>()
        for _ in 0..<20000 {
            let body = (0..<17).map { _ in UInt8.random(in: 0x30...0x39, using: &rng) }
            let expected = Self.byTable(body)
            #expect(ResidentIdentityNumber.checkCharacter(ofBody: body) == expected, "\(String(decoding: body, as: UTF8.self))")
            #expect(ResidentIdentityNumber.isValid(body + [expected]))
            seen.insert(expected)
        }
        // Every check character occurs, X included.
        #expect(seen == Set(Self.characters))
    }

    @Test func knownNumbersAndWrongOnes() {
        // The standard's example and numbers with X (upper and lower case) as their check character.
        #expect(ResidentIdentityNumber.isValid(Array("11010519491231002X".utf8)))
        #expect(ResidentIdentityNumber.isValid(Array("11010519491231002x".utf8)))
        #expect(ResidentIdentityNumber.isValid(Array("440524188001010014".utf8)))
        #expect(!ResidentIdentityNumber.isValid(Array("440524188001010015".utf8)))
        #expect(!ResidentIdentityNumber.isValid(Array("11010519491231002".utf8)))      // 17 characters
        #expect(!ResidentIdentityNumber.isValid(Array("1101051949123100200".utf8)))    // 19 characters
        #expect(!ResidentIdentityNumber.isValid(Array("1101051949123A002X".utf8)))     // a letter in the body
        #expect(ResidentIdentityNumber.checkCharacter(ofBody: Array("1101051949123100".utf8)) == nil)
        // Works on any collection of bytes: a String's UTF-8 view as the receiver uses it.
        #expect(ResidentIdentityNumber.isValid("440524188001010014".utf8))
    }
}
