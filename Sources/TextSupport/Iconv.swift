#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why bytes could not be decoded.
public struct DecodingError: Error, CustomStringConvertible, Sendable {
    /// Offset of the first offending byte within the input.
    public let offset: Int
    public let encoding: String
    public let reason: String
    public var description: String { "\(reason) at byte \(offset) (\(encoding))" }
}

/// Source encodings esgate reads. GB18030 is a superset of GBK and GB2312, so it decodes both.
public enum TextEncoding: String, Sendable, CaseIterable {
    case utf8 = "utf-8"
    case gb18030 = "gb18030"

    public init?(label: String) {
        switch String(label.lowercased().map { $0 == "_" ? "-" : $0 }) {
        case "utf-8", "utf8": self = .utf8
        case "gb18030", "gbk", "gb2312", "cp936", "euc-cn": self = .gb18030
        default: return nil
        }
    }
}

/// A converter to UTF-8 around one iconv descriptor. Not Sendable: iconv keeps shift state.
public final class TextDecoder {
    public let encoding: TextEncoding
    private let descriptor: iconv_t?
    /// Conversion output, reused from row to row (grown when a row needs more).
    private var output = UnsafeMutableBufferPointer<UInt8>(start: nil, count: 0)

    public init(_ encoding: TextEncoding) throws(DecodingError) {
        self.encoding = encoding
        if encoding == .utf8 {
            descriptor = nil
        } else {
            let cd = iconv_open("UTF-8", "GB18030")
            if cd == iconv_t(bitPattern: -1) {
                throw DecodingError(offset: 0, encoding: encoding.rawValue, reason: "iconv cannot convert from GB18030")
            }
            descriptor = cd
        }
    }

    deinit {
        if let descriptor { iconv_close(descriptor) }
        if output.baseAddress != nil { output.deallocate() }
    }

    /// Decodes a complete unit (a row) to a String; invalid or truncated sequences are an error with their offset.
    public func decode(_ bytes: UnsafeRawBufferPointer) throws(DecodingError) -> String {
        try decodeToUTF8(bytes) { String(decoding: $0, as: UTF8.self) }
    }

    /// Decodes to UTF-8 bytes handed to `body` (valid only inside it), avoiding a String when the caller splits bytes.
    public func decodeToUTF8<T>(_ bytes: UnsafeRawBufferPointer, _ body: (UnsafeBufferPointer<UInt8>) -> T) throws(DecodingError) -> T {
        body(try decodedUTF8(bytes))
    }

    /// The UTF-8 form of a complete unit (a row): `bytes` themselves when they are ASCII or valid UTF-8 input,
    /// otherwise the decoder's own buffer. Valid until the next call on this decoder or until `bytes` change.
    /// Not generic, unlike `decodeToUTF8(_:_:)`: called from another module for every row, a generic function
    /// would run unspecialized.
    public func decodedUTF8(_ bytes: UnsafeRawBufferPointer) throws(DecodingError) -> UnsafeBufferPointer<UInt8> {
        // Pure ASCII is identical in every supported encoding: skip the conversion.
        if let invalid = Self.firstNonASCII(bytes) {
            if encoding == .utf8 {
                if let bad = Self.firstInvalidUTF8(bytes, from: invalid) {
                    throw DecodingError(offset: bad, encoding: encoding.rawValue, reason: "invalid UTF-8 byte sequence")
                }
                return bytes.bindMemory(to: UInt8.self)
            }
            return try convert(bytes)
        }
        return bytes.bindMemory(to: UInt8.self)
    }

    private func convert(_ bytes: UnsafeRawBufferPointer) throws(DecodingError) -> UnsafeBufferPointer<UInt8> {
        guard let descriptor else { return bytes.bindMemory(to: UInt8.self) }
        let needed = bytes.count * 2 + 4  // GB18030 → UTF-8 grows at most 2× (2 bytes → 3, 4 → 4)
        if output.count < needed {
            if output.baseAddress != nil { output.deallocate() }
            output = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(needed, 4096))
        }
        if let pairs = GB18030PairTable.shared, let produced = pairs.decode(bytes, into: output) {
            return UnsafeBufferPointer(rebasing: output[0..<produced])
        }
        iconv(descriptor, nil, nil, nil, nil)
        var inPointer = UnsafeMutablePointer<CChar>(mutating: bytes.baseAddress?.assumingMemoryBound(to: CChar.self))
        var inLeft = bytes.count
        var outPointer = UnsafeMutableRawPointer(output.baseAddress)?.assumingMemoryBound(to: CChar.self)
        var outLeft = output.count
        if iconv(descriptor, &inPointer, &inLeft, &outPointer, &outLeft) == -1 {
            let offset = bytes.count - inLeft
            let reason = errno == EINVAL ? "truncated multi-byte sequence" : "invalid byte sequence"
            throw DecodingError(offset: offset, encoding: encoding.rawValue, reason: reason)
        }
        return UnsafeBufferPointer(rebasing: output[0..<(output.count - outLeft)])
    }

    static func firstNonASCII(_ bytes: UnsafeRawBufferPointer) -> Int? {
        for (index, byte) in bytes.enumerated() where byte >= 0x80 { return index }
        return nil
    }

    /// Offset of the first byte that is not part of a well-formed UTF-8 sequence (RFC 3629), or nil.
    public static func firstInvalidUTF8(_ bytes: UnsafeRawBufferPointer, from start: Int = 0) -> Int? {
        var i = start
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            if b < 0x80 { i += 1; continue }
            var length = 0
            var lower: UInt8 = 0x80, upper: UInt8 = 0xBF
            switch b {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; upper = 0x9F
            case 0xF0: length = 4; lower = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; upper = 0x8F
            default: return i
            }
            if i + length > n { return i }
            for k in 1..<length {
                let c = bytes[i + k]
                let lo: UInt8 = k == 1 ? lower : 0x80
                let hi: UInt8 = k == 1 ? upper : 0xBF
                if c < lo || c > hi { return i }
            }
            i += length
        }
        return nil
    }
}

/// GB18030's two-byte codes, decoded by table: iconv's per-call overhead was most of the cost of decoding a row.
/// The table is filled from iconv itself, one pair at a time, so it agrees with iconv by construction (GB18030 is
/// stateless: a row's conversion is the concatenation of its characters'). A row with anything the table does not
/// hold (a four-byte code, a byte that starts no valid pair, a pair iconv rejects) is left to iconv whole, which
/// also reports the error and its offset as before.
final class GB18030PairTable: Sendable {
    /// Index `(lead - 0x81) * 191 + (trail - 0x40)`: the UTF-8 bytes in the low 24 bits (first byte lowest), their
    /// count in the high 8 bits; 0 when the pair is not a valid two-byte code.
    private let entries: [UInt32]

    /// nil when iconv cannot convert from GB18030 at all.
    static let shared: GB18030PairTable? = GB18030PairTable()

    private init?() {
        let descriptor = iconv_open("UTF-8", "GB18030")
        if descriptor == iconv_t(bitPattern: -1) { return nil }
        defer { iconv_close(descriptor) }
        var entries = [UInt32](repeating: 0, count: 126 * 191)
        var input: [UInt8] = [0, 0]
        var output: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0]
        for lead in UInt8(0x81)...UInt8(0xFE) {
            for trail in UInt8(0x40)...UInt8(0xFE) where trail != 0x7F {
                input[0] = lead
                input[1] = trail
                iconv(descriptor, nil, nil, nil, nil)
                let produced: Int? = input.withUnsafeMutableBytes { inBuffer in
                    output.withUnsafeMutableBytes { outBuffer in
                        var inPointer = inBuffer.baseAddress?.assumingMemoryBound(to: CChar.self)
                        var inLeft = inBuffer.count
                        var outPointer = outBuffer.baseAddress?.assumingMemoryBound(to: CChar.self)
                        var outLeft = outBuffer.count
                        guard iconv(descriptor, &inPointer, &inLeft, &outPointer, &outLeft) != -1, inLeft == 0 else { return nil }
                        return outBuffer.count - outLeft
                    }
                }
                guard let produced, produced >= 2, produced <= 3 else { continue }
                var entry = UInt32(produced) << 24
                for k in 0..<produced { entry |= UInt32(output[k]) << (8 * UInt32(k)) }
                entries[Int(lead - 0x81) * 191 + Int(trail - 0x40)] = entry
            }
        }
        self.entries = entries
    }

    /// Decodes `bytes` into `output` (at least twice as large); the byte count, or nil when the table cannot
    /// decode the row (then iconv must).
    func decode(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<UInt8>) -> Int? {
        let count = bytes.count
        guard output.count >= count * 2 else { return nil }
        return entries.withUnsafeBufferPointer { table in
            var i = 0, o = 0
            while i < count {
                let lead = bytes[i]
                if lead < 0x80 {
                    output[o] = lead
                    o += 1
                    i += 1
                    continue
                }
                guard lead >= 0x81, lead <= 0xFE, i + 1 < count else { return nil }
                let trail = bytes[i + 1]
                guard trail >= 0x40, trail <= 0xFE, trail != 0x7F else { return nil }
                let entry = table[Int(lead - 0x81) * 191 + Int(trail - 0x40)]
                guard entry != 0 else { return nil }
                let length = Int(entry >> 24)
                output[o] = UInt8(truncatingIfNeeded: entry)
                output[o + 1] = UInt8(truncatingIfNeeded: entry >> 8)
                if length == 3 { output[o + 2] = UInt8(truncatingIfNeeded: entry >> 16) }
                o += length
                i += 2
            }
            return o
        }
    }
}

/// Encodes UTF-8 text into a legacy encoding (test data, SOAP peers).
public func encode(_ text: String, as encoding: TextEncoding) throws(DecodingError) -> [UInt8] {
    if encoding == .utf8 { return Array(text.utf8) }
    let cd = iconv_open("GB18030", "UTF-8")
    if cd == iconv_t(bitPattern: -1) {
        throw DecodingError(offset: 0, encoding: encoding.rawValue, reason: "iconv cannot convert to GB18030")
    }
    defer { iconv_close(cd) }
    var input = Array(text.utf8)
    var output = [UInt8](repeating: 0, count: input.count * 2 + 8)
    var failure: DecodingError?
    let produced: Int = input.withUnsafeMutableBytes { inBuffer in
        output.withUnsafeMutableBytes { outBuffer in
            var inPointer = inBuffer.baseAddress?.assumingMemoryBound(to: CChar.self)
            var inLeft = inBuffer.count
            var outPointer = outBuffer.baseAddress?.assumingMemoryBound(to: CChar.self)
            var outLeft = outBuffer.count
            if iconv(cd, &inPointer, &inLeft, &outPointer, &outLeft) == -1 {
                failure = DecodingError(offset: inBuffer.count - inLeft, encoding: encoding.rawValue,
                                        reason: "cannot encode")
            }
            return outBuffer.count - outLeft
        }
    }
    if let failure { throw failure }
    return Array(output.prefix(produced))
}
