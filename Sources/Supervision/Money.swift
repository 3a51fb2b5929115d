// Exact decimals for money and rates.
//
// Fees, fines and levies are compared to the fen (0.01 yuan) and ZS01 rounds half-up to the fen: binary floating
// point cannot represent 0.1 or 0.015 exactly, so amounts are integer fen and catalog rates integer millionths
// (the schema allows at most 6 fraction digits for a levy Rate).

/// An amount of money in fen (1/100 yuan). PUI `Money`: not negative, at most two decimals.
public struct Money: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let fen: Int64

    public init(fen: Int64) {
        self.fen = fen
    }

    /// Parses a PUI Money text such as `120`, `120.5` or `120.50`.
    public init(parsing text: String) throws(DecimalParseError) {
        let scaled = try parseScaledDecimal(text, fractionDigits: 2)
        fen = scaled
    }

    public static let zero = Money(fen: 0)

    /// `120.50`: the wire form, always two decimals.
    public var description: String {
        let sign = fen < 0 ? "-" : ""
        let magnitude = fen.magnitude
        return "\(sign)\(magnitude / 100).\(pad(Int(magnitude % 100), 2))"
    }

    public static func < (lhs: Money, rhs: Money) -> Bool { lhs.fen < rhs.fen }
    public static func + (lhs: Money, rhs: Money) -> Money { Money(fen: lhs.fen + rhs.fen) }
    public static func - (lhs: Money, rhs: Money) -> Money { Money(fen: lhs.fen - rhs.fen) }
}

/// A non-negative decimal rate with at most six fraction digits (a levy's catalog `Rate`), in millionths.
public struct LevyRate: Hashable, Sendable, CustomStringConvertible {
    public let millionths: Int64

    public init(millionths: Int64) {
        self.millionths = millionths
    }

    /// Parses `0.015`, `0.020000` or `1`.
    public init(parsing text: String) throws(DecimalParseError) {
        millionths = try parseScaledDecimal(text, fractionDigits: 6)
    }

    /// `base × rate`, rounded half-up to the fen (ZS01). Computed in 128-bit integers: the largest Money times a
    /// rate above 1 does not fit in 64 bits.
    public func apply(to base: Money) -> Money {
        let product = Int128(base.fen) * Int128(millionths)  // in fen-millionths
        let rounded = (product + 500_000) / 1_000_000          // half-up; both factors are non-negative
        return Money(fen: Int64(clamping: rounded))
    }

    public var description: String {
        "\(millionths / 1_000_000).\(pad(Int(millionths % 1_000_000), 6))"
    }
}

/// A decimal text that is not a plain non-negative number with the allowed fraction digits.
public enum DecimalParseError: Error, Equatable, Sendable {
    case invalidDecimal(text: String, maximumFractionDigits: Int)
}

/// Parses `digits[.digits]` into an integer scaled by 10^fractionDigits, rejecting signs, exponents, excess digits.
func parseScaledDecimal(_ text: String, fractionDigits: Int) throws(DecimalParseError) -> Int64 {
    let trimmed = text.trimmingSpacesAndCarriageReturns()
    let parts = trimmed.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    let failure = DecimalParseError.invalidDecimal(text: text, maximumFractionDigits: fractionDigits)
    guard let integerPart = parts.first, !integerPart.isEmpty,
          integerPart.allSatisfy({ $0.isASCII && $0.isNumber }) else { throw failure }
    let fractionPart = parts.count > 1 ? parts[1] : ""
    guard fractionPart.count <= fractionDigits, parts.count == 1 || !fractionPart.isEmpty,
          fractionPart.allSatisfy({ $0.isASCII && $0.isNumber }) else { throw failure }
    guard let whole = Int64(integerPart) else { throw failure }
    var scale: Int64 = 1
    for _ in 0..<fractionDigits { scale *= 10 }
    var fraction: Int64 = 0
    var fractionScale = scale
    for character in fractionPart {
        guard let digit = character.wholeNumberValue else { throw failure }
        fractionScale /= 10
        fraction += Int64(digit) * fractionScale
    }
    // Reject, rather than trap on, values too large for the scaled 64-bit form.
    let (scaledWhole, overflow) = whole.multipliedReportingOverflow(by: scale)
    guard !overflow, scaledWhole <= Int64.max - fraction else { throw failure }
    return scaledWhole + fraction
}

/// A ratio from 0 to 1 with four decimals (PUI `Rate`), in ten-thousandths.
public struct FourDecimalRate: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let tenThousandths: Int

    public init(tenThousandths: Int) {
        self.tenThousandths = tenThousandths
    }

    /// `numerator / denominator` rounded half-up to four decimals; 1 when the denominator is 0 (section 7:
    /// "1 when no case" / "1 when none").
    public init(numerator: Int, denominator: Int) {
        guard denominator > 0 else {
            tenThousandths = 10_000
            return
        }
        tenThousandths = (numerator * 20_000 + denominator) / (2 * denominator)
    }

    /// `0.9375`, `1.0000`.
    public var description: String { "\(tenThousandths / 10_000).\(pad(tenThousandths % 10_000, 4))" }

    public static func < (lhs: FourDecimalRate, rhs: FourDecimalRate) -> Bool { lhs.tenThousandths < rhs.tenThousandths }
}
