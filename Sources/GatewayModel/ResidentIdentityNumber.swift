/// GB 11643 resident identity numbers: 17 digits and an ISO 7064 MOD 11-2 check character. One rule for the
/// mapping (`id18`) and for the sandbox receiver (R204), so that what one accepts the other does.
public enum ResidentIdentityNumber {
    private static let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    private static let checkCharacters = Array("10X98765432".utf8)

    /// The check character of 17 ASCII digits; nil when `body` is not that.
    public static func checkCharacter<Bytes: Collection<UInt8>>(ofBody body: Bytes) -> UInt8? {
        guard body.count == 17 else { return nil }
        var sum = 0
        for (index, byte) in body.enumerated() {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            sum += Int(byte - 0x30) * weights[index]
        }
        return checkCharacters[sum % 11]
    }

    /// 17 digits and their check character (`x` read as `X`).
    public static func isValid<Bytes: Collection<UInt8>>(_ number: Bytes) -> Bool {
        guard number.count == 18, let last = number.dropFirst(17).first,
              let check = checkCharacter(ofBody: number.prefix(17)) else { return false }
        return (last == 0x78 ? 0x58 : last) == check
    }
}
