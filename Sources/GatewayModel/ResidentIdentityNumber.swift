/// GB 11643 resident identity numbers: 17 digits and an ISO 7064 MOD 11-2 check character. One rule for the
/// mapping (`id18`) and for the sandbox receiver (R204), so that what one accepts the other does.
public enum ResidentIdentityNumber {
    /// The check character of 17 ASCII digits; nil when `body` is not that.
    ///
    /// Inlinable, so that callers in other modules get it specialized for their collection: the mapping checks
    /// an identity number on every ordinary row, and the unspecialized generic looked up type metadata per byte.
    @inlinable
    public static func checkCharacter<Bytes: Collection<UInt8>>(ofBody body: Bytes) -> UInt8? {
        guard body.count == 17 else { return nil }
        // ISO 7064 MOD 11-2: digit i (from 1) weighs 2^(18-i) mod 11 (7, 9, 10, 5, …, 2). Horner's scheme
        // doubles the sum after each digit, which gives exactly those powers of two.
        var sum = 0
        for byte in body {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            sum = (sum + Int(byte &- 0x30)) &* 2
        }
        let checkCharacters: StaticString = "10X98765432"
        return checkCharacters.utf8Start[sum % 11]
    }

    /// 17 digits and their check character (`x` read as `X`).
    @inlinable
    public static func isValid<Bytes: Collection<UInt8>>(_ number: Bytes) -> Bool {
        guard number.count == 18, let last = number.dropFirst(17).first,
              let check = checkCharacter(ofBody: number.prefix(17)) else { return false }
        return (last == 0x78 ? 0x58 : last) == check
    }
}
