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

    /// One pass over the bytes: searching the rest of the text for each element again (`range(of:)` on what is
    /// left) made `journal list --json` of a few thousand records take minutes.
    private static func maskIdNumberElements(in text: String) -> String {
        let open = Array("<IdNumber>".utf8), close = Array("</IdNumber>".utf8)
        let bytes = Array(text.utf8)
        func matches(_ needle: [UInt8], at index: Int) -> Bool {
            index + needle.count <= bytes.count && needle.indices.allSatisfy { bytes[index + $0] == needle[$0] }
        }
        var output: [UInt8] = []
        var index = 0
        var copied = 0
        while index < bytes.count {
            guard bytes[index] == 0x3C, matches(open, at: index) else {
                index += 1
                continue
            }
            let start = index + open.count
            var end = start
            while end < bytes.count, !(bytes[end] == 0x3C && matches(close, at: end)) { end += 1 }
            guard end < bytes.count else { break }
            if output.isEmpty { output.reserveCapacity(bytes.count) }
            output.append(contentsOf: bytes[copied..<start])
            output.append(contentsOf: maskIdNumber(String(decoding: bytes[start..<end], as: UTF8.self)).utf8)
            copied = end
            index = end + close.count
        }
        guard copied > 0 else { return text }
        output.append(contentsOf: bytes[copied...])
        return String(decoding: output, as: UTF8.self)
    }

    private static func maskDigitRuns(in text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        // Written as UTF-8 bytes: a String.UnicodeScalarView appended to scalar by scalar copied itself again and
        // again (a `journal list --json` of 5,000 records took seconds in memmove).
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count)
        func put(_ scalar: Unicode.Scalar) { UTF8.encode(scalar) { output.append($0) } }
        var index = 0
        // Full-width digits too (０-９, as an IME types them): such a number is still a person's identity number.
        // A run is of one width; what counts as part of a longer word around it is of the same width.
        func isASCIIDigit(_ s: Unicode.Scalar) -> Bool { s.value >= 48 && s.value <= 57 }
        func isWideDigit(_ s: Unicode.Scalar) -> Bool { s.value >= 0xFF10 && s.value <= 0xFF19 }
        func isDigit(_ s: Unicode.Scalar) -> Bool { isASCIIDigit(s) || isWideDigit(s) }
        var wide = false
        func sameWidthDigit(_ s: Unicode.Scalar) -> Bool { wide ? isWideDigit(s) : isASCIIDigit(s) }
        func isCheckX(_ s: Unicode.Scalar) -> Bool { s == "X" || s == "x" || s == "\u{FF38}" || s == "\u{FF58}" }
        func isWordish(_ s: Unicode.Scalar) -> Bool {
            wide ? isWideDigit(s) || (s.value >= 0xFF21 && s.value <= 0xFF3A) || (s.value >= 0xFF41 && s.value <= 0xFF5A)
                : isASCIIDigit(s) || (s.value | 0x20) >= 97 && (s.value | 0x20) <= 122
        }
        while index < scalars.count {
            let start = index
            if isDigit(scalars[index]) {
                wide = isWideDigit(scalars[index])
                var end = index
                while end < scalars.count, sameWidthDigit(scalars[end]) { end += 1 }
                if end < scalars.count, isCheckX(scalars[end]), end - start == 17 { end += 1 }
                let length = end - start
                // Not part of a longer word or number: an identity number is never the fraction of a decimal
                // ("12.345678901234567" in JSON output) nor followed by one.
                let boundary = end == scalars.count || !(isWordish(scalars[end]) || scalars[end] == ".")
                let startsClean = start == 0 || !(isWordish(scalars[start - 1]) || scalars[start - 1] == ".")
                if (length == 15 || length == 18), boundary, startsClean {
                    let run = String(String.UnicodeScalarView(scalars[start..<end]))
                    output.append(contentsOf: maskIdNumber(run).utf8)
                } else {
                    for scalar in scalars[start..<end] { put(scalar) }
                }
                index = end
            } else {
                put(scalars[index])
                index += 1
            }
        }
        return String(decoding: output, as: UTF8.self)
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
