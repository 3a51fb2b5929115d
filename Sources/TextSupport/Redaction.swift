import Foundation

/// Masking of personal identity numbers for logs, CLI output and errors (PUI section 8: first 6 and last 4 shown).
public enum Redaction {
    /// Masks one identity number: first 6 and last 4 characters kept, the rest replaced by `*`.
    public static func maskIdNumber(_ value: String) -> String {
        let characters = Array(value)
        guard characters.count > 10 else { return String(repeating: "*", count: characters.count) }
        return String(characters.prefix(6)) + String(repeating: "*", count: characters.count - 10)
            + String(characters.suffix(4))
    }

    /// Masks every run that looks like a resident identity number (15 digits, or 17 digits and a check
    /// character) inside free text, plus the content of `<IdNumber>` elements whatever their shape.
    public static func maskIdentityNumbers(in text: String) -> String {
        var result = maskIdNumberElements(in: text)
        result = maskDigitRuns(in: result)
        return result
    }

    private static func maskIdNumberElements(in text: String) -> String {
        guard text.contains("<IdNumber>") else { return text }
        var output = ""
        var rest = Substring(text)
        while let open = rest.range(of: "<IdNumber>") {
            output += rest[..<open.upperBound]
            rest = rest[open.upperBound...]
            if let close = rest.range(of: "</IdNumber>") {
                output += maskIdNumber(String(rest[..<close.lowerBound]))
                rest = rest[close.lowerBound...]
            }
        }
        return output + rest
    }

    private static func maskDigitRuns(in text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var output = String.UnicodeScalarView()
        var index = 0
        // Full-width digits too (０-９, as an IME types them): such a number is still a person's identity number.
        func isDigit(_ s: Unicode.Scalar) -> Bool { (s.value >= 48 && s.value <= 57) || (s.value >= 0xFF10 && s.value <= 0xFF19) }
        func isCheckX(_ s: Unicode.Scalar) -> Bool { s == "X" || s == "x" || s == "\u{FF38}" || s == "\u{FF58}" }
        func isWordish(_ s: Unicode.Scalar) -> Bool {
            isDigit(s) || (s.value | 0x20) >= 97 && (s.value | 0x20) <= 122 || (s.value >= 0xFF21 && s.value <= 0xFF5A)
        }
        while index < scalars.count {
            let start = index
            if isDigit(scalars[index]) {
                var end = index
                while end < scalars.count, isDigit(scalars[end]) { end += 1 }
                if end < scalars.count, isCheckX(scalars[end]), end - start == 17 { end += 1 }
                let length = end - start
                // Not part of a longer word or number: an identity number is never the fraction of a decimal
                // ("12.345678901234567" in JSON output) nor followed by one.
                let boundary = end == scalars.count || !(isWordish(scalars[end]) || scalars[end] == ".")
                let startsClean = start == 0 || !(isWordish(scalars[start - 1]) || scalars[start - 1] == ".")
                if (length == 15 || length == 18), boundary, startsClean {
                    let run = String(String.UnicodeScalarView(scalars[start..<end]))
                    output.append(contentsOf: maskIdNumber(run).unicodeScalars)
                } else {
                    output.append(contentsOf: scalars[start..<end])
                }
                index = end
            } else {
                output.append(scalars[index])
                index += 1
            }
        }
        return String(output)
    }
}

extension Redaction {
    /// Bytes that failed to decode, shown to a person: what decodes is decoded, every byte that does not becomes
    /// `\xNN`, and identity numbers are masked, also one with an undecodable byte inside it (the masking runs on
    /// the text without those bytes; the escapes are put back afterwards). For display only: the bytes themselves
    /// stay as they are for a replay.
    public static func maskedLossyText(_ bytes: [UInt8], encoding: TextEncoding) -> String {
        var scalars = String.UnicodeScalarView()
        var escapes: [(position: Int, byte: UInt8)] = []
        guard let decoder = try? TextDecoder(encoding) else {
            return maskIdentityNumbers(in: String(decoding: bytes, as: UTF8.self))
        }
        func decode(_ range: Range<Int>) -> Result<String, DecodingError> {
            bytes[range].withUnsafeBytes { raw in Result { () throws(DecodingError) in try decoder.decode(raw) } }
        }
        var start = 0
        while start < bytes.count {
            switch decode(start..<bytes.count) {
            case .success(let text):
                scalars.append(contentsOf: text.unicodeScalars)
                start = bytes.count
            case .failure(let error):
                let bad = min(start + error.offset, bytes.count - 1)
                if bad > start, case .success(let text) = decode(start..<bad) { scalars.append(contentsOf: text.unicodeScalars) }
                escapes.append((scalars.count, bytes[bad]))
                start = bad + 1
            }
        }
        let masked = maskIdentityNumbers(in: String(scalars)).unicodeScalars
        // Masking keeps the number of scalars, so the escapes' positions still hold; should it not, the escapes
        // are left out rather than put in the wrong place.
        guard masked.count == scalars.count else { return String(masked) + " (\(escapes.count) undecodable byte(s) left out)" }
        var output = String.UnicodeScalarView()
        var next = 0
        for (index, scalar) in masked.enumerated() {
            while next < escapes.count, escapes[next].position == index {
                output.append(contentsOf: hexEscape(escapes[next].byte).unicodeScalars)
                next += 1
            }
            output.append(scalar)
        }
        for escape in escapes[next...] { output.append(contentsOf: hexEscape(escape.byte).unicodeScalars) }
        return String(output)
    }

    private static func hexEscape(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return "\\x" + String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0x0F)])
    }
}
