import CivilTime
import GatewayConfig
import GatewayModel

/// A legacy date/time format such as `yyyy-MM-dd HH:mm:ss`, `yyyy/M/d H:mm`, `yyyyMMddHHmmss` or `yyyy-MM-dd`.
/// Tokens: yyyy, MM/M, dd/d, HH/H, mm, ss, SSS (a fraction of 1-9 digits, kept to the millisecond). Every other
/// ASCII letter is a pattern letter esgate does not support, and an error when the mapping is compiled (a literal
/// letter is quoted: `'T'`); anything else (`-`, `:`, spaces, 年月日) is literal. Without time tokens the time is
/// 00:00:00.
struct DateTimeFormat: Sendable {
    enum Token: Sendable {
        case year, month(fixed: Bool), day(fixed: Bool), hour(fixed: Bool), minute, second, fraction
        case literal(UInt8)
    }
    let tokens: [Token]

    static let supported = "yyyy, M or MM, d or dd, H or HH, mm, ss, SSS"

    static func compile(_ format: String) -> Result<DateTimeFormat, Failure> {
        var tokens: [Token] = []
        let bytes = Array(format.utf8)
        var i = 0
        func run(of byte: UInt8) -> Int {
            var n = 0
            while i + n < bytes.count, bytes[i + n] == byte { n += 1 }
            return n
        }
        var seen = Set<String>()
        while i < bytes.count {
            let byte = bytes[i]
            if byte == UInt8(ascii: "'") {
                // 'text' is literal text; '' is a quote.
                if i + 1 < bytes.count, bytes[i + 1] == byte {
                    tokens.append(.literal(byte))
                    i += 2
                    continue
                }
                guard let close = bytes[(i + 1)...].firstIndex(of: byte) else {
                    return .failure("date format '\(format)': a quote (') opens literal text that is never closed")
                }
                tokens += bytes[(i + 1)..<close].map { Token.literal($0) }
                i = close + 1
                continue
            }
            let n = run(of: byte)
            let letters = String(repeating: Character(Unicode.Scalar(byte)), count: n)
            let token: Token
            switch (byte, n) {
            case (UInt8(ascii: "y"), 4): token = .year; seen.insert("y")
            case (UInt8(ascii: "M"), 1), (UInt8(ascii: "M"), 2): token = .month(fixed: n == 2); seen.insert("M")
            case (UInt8(ascii: "d"), 1), (UInt8(ascii: "d"), 2): token = .day(fixed: n == 2); seen.insert("d")
            case (UInt8(ascii: "H"), 1), (UInt8(ascii: "H"), 2): token = .hour(fixed: n == 2)
            case (UInt8(ascii: "m"), 2): token = .minute
            case (UInt8(ascii: "s"), 2): token = .second
            case (UInt8(ascii: "S"), 3): token = .fraction
            case (UInt8(ascii: "y"), _), (UInt8(ascii: "M"), _), (UInt8(ascii: "d"), _), (UInt8(ascii: "H"), _),
                 (UInt8(ascii: "m"), _), (UInt8(ascii: "s"), _), (UInt8(ascii: "S"), _):
                return .failure("date format '\(format)': '\(letters)' is not a token (use \(supported))")
            case (UInt8(ascii: "a")...UInt8(ascii: "z"), _), (UInt8(ascii: "A")...UInt8(ascii: "Z"), _):
                // Taken literally, a letter such as h or Y made every row fail; reading it as some other field
                // would store wrong times. Either way the mapping is wrong, so it is refused before any row is read.
                let hint: String
                switch byte {
                case UInt8(ascii: "h"), UInt8(ascii: "K"), UInt8(ascii: "k"): hint = " (12-hour and 1-24 hours are not supported: use HH or H)"
                case UInt8(ascii: "Y"): hint = " (the week-based year: use yyyy)"
                case UInt8(ascii: "D"): hint = " (the day of the year: use d or dd with M or MM)"
                case UInt8(ascii: "a"): hint = " (AM/PM is not supported: use HH or H)"
                default: hint = ""
                }
                return .failure("date format '\(format)': unsupported pattern letter '\(Character(Unicode.Scalar(byte)))'\(hint); supported: \(supported); quote literal letters ('T')")
            default:
                for _ in 0..<n { tokens.append(.literal(byte)) }
                i += n
                continue
            }
            tokens.append(token)
            i += n
        }
        let missing = [("y", "yyyy"), ("M", "M or MM"), ("d", "d or dd")].filter { !seen.contains($0.0) }.map(\.1)
        guard missing.isEmpty else {
            return .failure("date format '\(format)' lacks \(missing.joined(separator: ", ")) (a date needs yyyy, M or MM, and d or dd)")
        }
        return .success(DateTimeFormat(tokens: tokens))
    }

    /// Parses `text` and renders it as PUI BeijingTime (`yyyy-MM-ddTHH:mm:ss[.SSS]+08:00`), converting from the
    /// given source offset. nil when the text does not match or names an impossible date or time.
    func beijingTime(from text: String, utcOffsetMinutes: Int) -> String? {
        var text = text
        guard let time = text.withUTF8({ beijingTime(parsing: $0, utcOffsetMinutes: utcOffsetMinutes) }) else { return nil }
        return String(unsafeUninitializedCapacity: time.utf8Count) { time.write(into: $0) }
    }

    /// Why `text` fits the format's shape but is no real date or time (`2026-02-30`), for the error message;
    /// nil when it does not fit the shape at all, or is a real time.
    func impossibility(in text: String) -> String? {
        var text = text
        guard let time = text.withUTF8({ fields(parsing: $0) }) else { return nil }
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let date = "\(time.year)-\(two(time.month))-\(two(time.day))"
        if !time.isRealDate { return "an impossible date (\(date))" }
        if !time.isRealTime { return "an impossible time (\(two(time.hour)):\(two(time.minute)):\(two(time.second)))" }
        return nil
    }

    /// Parses UTF-8 `bytes` and converts the time to Beijing time; nil as for `beijingTime(from:utcOffsetMinutes:)`.
    /// Works on bytes without allocating: this runs for every time field of every row.
    func beijingTime(parsing bytes: UnsafeBufferPointer<UInt8>, utcOffsetMinutes: Int) -> BeijingTime? {
        guard var time = fields(parsing: bytes), time.isRealDate, time.isRealTime else { return nil }
        if utcOffsetMinutes != 480 {
            // Convert through minutes since the epoch: legacy zone → UTC → Beijing.
            let days = CivilCalendar.daysFromCivil(time.year, time.month, time.day)
            var total = days * 1440 + time.hour * 60 + time.minute - utcOffsetMinutes + 480
            let newDays = Int((Double(total) / 1440).rounded(.down))
            total -= newDays * 1440
            (time.year, time.month, time.day) = CivilCalendar.civilFromDays(newDays)
            time.hour = total / 60
            time.minute = total % 60
        }
        return time
    }

    /// The numbers of `bytes` read by the tokens, whether or not they name a real date and time; nil when the
    /// bytes do not have the format's shape.
    private func fields(parsing bytes: UnsafeBufferPointer<UInt8>) -> BeijingTime? {
        var time = BeijingTime(year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0, millis: -1)
        var position = 0
        func number(min: Int, max: Int) -> Int? {
            var value = 0, count = 0
            while count < max, position < bytes.count, bytes[position] >= 48, bytes[position] <= 57 {
                value = value * 10 + Int(bytes[position] - 48)
                position += 1
                count += 1
            }
            return count >= min ? value : nil
        }
        for token in tokens {
            switch token {
            case .year: guard let v = number(min: 4, max: 4) else { return nil }; time.year = v
            case .month(let fixed): guard let v = number(min: fixed ? 2 : 1, max: 2) else { return nil }; time.month = v
            case .day(let fixed): guard let v = number(min: fixed ? 2 : 1, max: 2) else { return nil }; time.day = v
            case .hour(let fixed): guard let v = number(min: fixed ? 2 : 1, max: 2) else { return nil }; time.hour = v
            case .minute: guard let v = number(min: 2, max: 2) else { return nil }; time.minute = v
            case .second: guard let v = number(min: 2, max: 2) else { return nil }; time.second = v
            case .fraction:
                // 1 to 9 digits: PostgreSQL writes microseconds without trailing zeros (.84174), Oracle and SQL
                // Server up to nanoseconds. PUI times carry milliseconds: the rest is cut, not rounded, so a time
                // never moves into the next second.
                let before = position
                guard number(min: 1, max: 9) != nil else { return nil }
                var millis = 0
                for index in 0..<3 {
                    let digit = before + index < position ? Int(bytes[before + index] - UInt8(ascii: "0")) : 0
                    millis = millis * 10 + digit
                }
                time.millis = millis
            case .literal(let expected):
                guard position < bytes.count, bytes[position] == expected else { return nil }
                position += 1
            }
        }
        return position == bytes.count ? time : nil
    }
}

/// A time in Beijing, written as PUI BeijingTime: `yyyy-MM-ddTHH:mm:ss[.SSS]+08:00`.
struct BeijingTime {
    var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int
    /// Milliseconds; written only when above zero.
    var millis: Int

    var isRealDate: Bool { year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= CivilCalendar.daysInMonth(year: year, month: month) }
    var isRealTime: Bool { hour <= 23 && minute <= 59 && second <= 59 }

    var utf8Count: Int { millis > 0 ? 29 : 25 }

    /// Writes `utf8Count` bytes; returns that count. Each number is written with its low digits in a fixed width
    /// (a year beyond 9999 keeps its last four digits, as it always did).
    func write(into out: UnsafeMutableBufferPointer<UInt8>) -> Int {
        var at = 0
        func put(_ value: Int, _ width: Int) {
            var rest = value
            for position in stride(from: at + width - 1, through: at, by: -1) {
                out[position] = UInt8(48 + rest % 10)
                rest /= 10
            }
            at += width
        }
        func put(byte: UInt8) {
            out[at] = byte
            at += 1
        }
        put(year, 4); put(byte: 45); put(month, 2); put(byte: 45); put(day, 2); put(byte: 84)
        put(hour, 2); put(byte: 58); put(minute, 2); put(byte: 58); put(second, 2)
        if millis > 0 { put(byte: 46); put(millis, 3) }
        for byte in "+08:00".utf8 { put(byte: byte) }
        return at
    }

    func append(to bytes: inout [UInt8]) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: utf8Count))
        bytes.withUnsafeMutableBufferPointer { all in
            _ = write(into: UnsafeMutableBufferPointer(rebasing: all[start...]))
        }
    }
}

/// Decimal normalization without binary floating point: money stays exact.
enum DecimalFormatting {
    /// "1,200.5" → "1200.50" with places 2. More significant fraction digits than `places` is an error
    /// (rounding money silently would change the record).
    static func normalize(_ text: String, places: Int) -> Result<String, Failure> {
        var negative = false
        var integer: [UInt8] = []
        var fraction: [UInt8] = []
        var seenPoint = false
        var sawDigit = false
        for (index, byte) in text.utf8.enumerated() {
            switch byte {
            case UInt8(ascii: "-") where index == 0: negative = true
            case UInt8(ascii: "+") where index == 0: continue
            case UInt8(ascii: ","): continue  // thousands separators in legacy exports
            case UInt8(ascii: "."):
                if seenPoint { return .failure("'\(text)' is not a decimal number") }
                seenPoint = true
            case 48...57:
                sawDigit = true
                if seenPoint { fraction.append(byte) } else { integer.append(byte) }
            default:
                return .failure("'\(text)' is not a decimal number")
            }
        }
        guard sawDigit else { return .failure("'\(text)' is not a decimal number") }
        while fraction.count > places, fraction.last == 48 { fraction.removeLast() }
        if fraction.count > places { return .failure("'\(text)' has more than \(places) decimal places") }
        while fraction.count < places { fraction.append(48) }
        while integer.count > 1, integer.first == 48 { integer.removeFirst() }
        if integer.isEmpty { integer = [48] }
        let isZero = integer == [48] && !fraction.contains { $0 != 48 }
        var out = (negative && !isZero ? "-" : "") + String(decoding: integer, as: UTF8.self)
        if places > 0 { out += "." + String(decoding: fraction, as: UTF8.self) }
        return .success(out)
    }

    /// "015" → "15"; "15.0" → "15"; "15.5" is an error.
    static func normalizeInteger(_ text: String) -> Result<String, Failure> {
        // Already normal (digits only, no leading zero): the common case needs no rewriting.
        if let first = text.utf8.first, first != 48 || text.utf8.count == 1,
           text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            return .success(text)
        }
        switch normalize(text, places: 0) {
        case .success(let value): return .success(value)
        case .failure: return .failure("'\(text)' is not a whole number")
        }
    }
}

/// Resident identity numbers (GB 11643): 15-digit numbers of the first generation become 18 characters.
public enum IdentityNumber {
    /// The ISO 7064 MOD 11-2 check character of the first 17 digits.
    public static func checkCharacter(of body: String) -> Character? {
        ResidentIdentityNumber.checkCharacter(ofBody: body.utf8).map { Character(Unicode.Scalar($0)) }
    }

    /// `normalize` without its Character-level work for the usual input, 18 printable ASCII characters (each one
    /// byte and one Character, and `uppercased()` maps only a-z); anything else goes through `normalize`.
    static func normalizeQuickly(_ text: String) -> Result<String, Failure> {
        let utf8 = text.utf8
        guard utf8.count == 18, utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else { return normalize(text) }
        guard ResidentIdentityNumber.isValid(utf8) else { return .failure(checkCharacterFailure) }
        guard utf8.contains(where: { $0 >= 0x61 && $0 <= 0x7A }) else { return .success(text) }
        return .success(String(decoding: utf8.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, as: UTF8.self))
    }

    /// A number that fails its check character: the province refuses it (PUI R204), and one that fails it here
    /// is most often a number Excel kept as a number (only 15 significant digits, the last ones zeros).
    static let checkCharacterFailure: Failure = "identity number fails its check character (GB 11643, ISO 7064 MOD 11-2; the province refuses it with R204): mistyped, or its last digits lost where a spreadsheet kept it as a number (4.10103E+17, or 15 significant digits and zeros)"

    /// 15 digits → insert "19" after the 6-digit area code and append the check character; 18 characters are
    /// returned upper-cased. Anything else is an error naming what is wrong (the number itself is masked).
    public static func normalize(_ text: String) -> Result<String, Failure> {
        let value = text.uppercased()
        if value.count == 15, value.allSatisfy({ $0.isASCII && $0.isNumber }) {
            let body = String(value.prefix(6)) + "19" + String(value.dropFirst(6))
            guard let check = checkCharacter(of: body) else { return .failure("identity number is not numeric") }
            return .success(body + String(check))
        }
        if value.count == 18 {
            return ResidentIdentityNumber.isValid(value.utf8) ? .success(value) : .failure(checkCharacterFailure)
        }
        return .failure("identity number has \(value.count) characters; expected 15 or 18")
    }
}
