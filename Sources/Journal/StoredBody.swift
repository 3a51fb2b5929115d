import Foundation
import GatewayModel

/// How a record's XML body is kept in the journal's `records.body` column.
///
/// Element tags are most of a record's bytes (`<ItemCode>XK0009</ItemCode>`: 21 bytes of tags for 6 of content),
/// and every stored byte is paid for twice by SQLite under WAL (log, then checkpoint) and again by every
/// consumer. The compact form replaces each tag by one or two control bytes and keeps the content bytes as
/// they are (still in the journal's canonical escaping), which halves a typical record.
///
/// Layout: `0x01` (format marker), then
/// - `0x02 n`: start tag of the element named `elementNames[n]`;
/// - `0x03 name 0x04`: start tag of an element whose name is not in the table;
/// - `0x05`: end tag of the innermost open element;
/// - any other byte: content, verbatim.
/// The markers are control characters XML 1.0 cannot carry, even escaped, so content never contains them, and an
/// XML body always starts with `<`: bodies stored before this form (and anything the encoder declines:
/// attributes, comments, empty-element tags, unbalanced tags) stay XML and are told apart by their first byte.
public enum StoredBody {
    /// The first byte of every compact body (an XML body starts with `<`).
    public static let compactFormMarker: UInt8 = CompactBodyForm.marker
    static let namedStart: UInt8 = CompactBodyForm.namedStart
    static let literalStart: UInt8 = CompactBodyForm.literalStart
    static let literalEnd: UInt8 = CompactBodyForm.literalEnd
    static let end: UInt8 = CompactBodyForm.end

    /// Element names by code (`CompactBodyForm.elementNames`, where the form is defined).
    public static var elementNames: [String] { CompactBodyForm.elementNames }

    private static let nameBytes: [[UInt8]] = CompactBodyForm.elementNames.map { Array($0.utf8) }

    /// The names' bytes back to back, and where each starts (`nameOffsets[code] ..< nameOffsets[code + 1]`): one
    /// flat table the encoder reads through a pointer, without retaining an array per tag.
    private static let namePool: [UInt8] = nameBytes.flatMap { $0 }
    private static let nameOffsets: [Int] = nameBytes.reduce(into: [0]) { $0.append($0[$0.count - 1] + $1.count) }

    /// Each code's start and end tag, `<name></name>`, back to back (`tagOffsets` as for the names): a decoded
    /// tag is one copy.
    private static let tagPool: [UInt8] = nameBytes.flatMap { (name: [UInt8]) -> [UInt8] in
        var tags: [UInt8] = [0x3C]
        tags.append(contentsOf: name)
        tags.append(contentsOf: [0x3E, 0x3C, 0x2F])
        tags.append(contentsOf: name)
        tags.append(0x3E)
        return tags
    }
    private static let tagOffsets: [Int] = nameBytes.reduce(into: [0]) { $0.append($0[$0.count - 1] + 2 * $1.count + 5) }

    /// Candidate codes by (name length, first byte): a tag's candidates are the few names sharing both, compared
    /// bytewise. `bucketStarts[b] ..< bucketStarts[b + 1]` indexes `bucketCodes`.
    private static let maxTableNameLength = CompactBodyForm.maxTableNameLength
    private static let bucketCount = (maxTableNameLength + 1) * 128
    private static let buckets: (starts: [Int], codes: [UInt8]) = {
        var lists = [[UInt8]](repeating: [], count: bucketCount)
        for (index, name) in nameBytes.enumerated() where index < 256 && name.count <= maxTableNameLength && name[0] < 128 {
            lists[name.count * 128 + Int(name[0])].append(UInt8(index))
        }
        var starts = [0]
        for list in lists { starts.append(starts[starts.count - 1] + list.count) }
        return (starts, lists.flatMap { $0 })
    }()

    /// The tables, borrowed once per body.
    private struct Tables {
        let pool: UnsafeBufferPointer<UInt8>
        let offsets: UnsafeBufferPointer<Int>
        let bucketStarts: UnsafeBufferPointer<Int>
        let bucketCodes: UnsafeBufferPointer<UInt8>
        let tags: UnsafeBufferPointer<UInt8>
        let tagOffsets: UnsafeBufferPointer<Int>

        func name(_ code: Int) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(rebasing: pool[offsets[code]..<offsets[code + 1]])
        }

        /// `<name>`
        func startTag(_ code: Int) -> UnsafeBufferPointer<UInt8> {
            let start = tagOffsets[code]
            return UnsafeBufferPointer(rebasing: tags[start..<start + (tagOffsets[code + 1] - start - 1) / 2])
        }

        /// `</name>`
        func endTag(_ code: Int) -> UnsafeBufferPointer<UInt8> {
            let start = tagOffsets[code]
            return UnsafeBufferPointer(rebasing: tags[start + (tagOffsets[code + 1] - start - 1) / 2..<tagOffsets[code + 1]])
        }

        func code(of name: UnsafeBufferPointer<UInt8>) -> UInt8? {
            guard name.count <= StoredBody.maxTableNameLength, name[0] < 128 else { return nil }
            let bucket = name.count * 128 + Int(name[0])
            for slot in bucketStarts[bucket]..<bucketStarts[bucket + 1] {
                let code = bucketCodes[slot]
                let start = offsets[Int(code)]
                if StoredBody.sameBytes(UnsafeBufferPointer(rebasing: pool[start..<offsets[Int(code) + 1]]), name) { return code }
            }
            return nil
        }
    }

    /// The tables, copied once into memory that is never freed, so that a record's decode reaches them through
    /// one check of their initialization instead of one per table (a record is decoded per send).
    nonisolated(unsafe) private static let sharedTables: Tables = {
        func permanent<T>(_ array: [T]) -> UnsafeBufferPointer<T> {
            let copy = UnsafeMutableBufferPointer<T>.allocate(capacity: max(array.count, 1))
            _ = copy.initialize(from: array)
            return UnsafeBufferPointer(start: copy.baseAddress, count: array.count)
        }
        return Tables(pool: permanent(namePool), offsets: permanent(nameOffsets), bucketStarts: permanent(buckets.starts),
                      bucketCodes: permanent(buckets.codes), tags: permanent(tagPool), tagOffsets: permanent(tagOffsets))
    }()

    private static func withTables<T>(_ body: (Tables) -> T) -> T {
        body(sharedTables)
    }

    private static func sameBytes(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        guard let left = a.baseAddress, let right = b.baseAddress else { return a.count == 0 }
        return memcmp(left, right, a.count) == 0
    }

    /// The compact form of an XML body, or nil when the body has anything but start tags, end tags and text
    /// (it is then stored as XML).
    public static func encode(_ xml: String) -> [UInt8]? {
        var xml = xml
        return xml.withUTF8 { encode(utf8: $0) }
    }

    public static func encode(utf8 xml: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard xml.first == 0x3C else { return nil }
        return withTables { encode(xml, $0) }
    }

    /// Deeper bodies are declined (stored as XML): PUI records nest three levels at most.
    public static let maxEncodedDepth = CompactBodyForm.maxDepth

    private static func encode(_ xml: UnsafeBufferPointer<UInt8>, _ tables: Tables) -> [UInt8]? {
        // Open elements, as ranges into `xml`, to check every end tag names the element it closes: a stack on
        // the stack, since this runs once per record on the preparing thread.
        withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: maxEncodedDepth) { open in
            encode(xml, tables, open: open)
        }
    }

    private static func encode(_ xml: UnsafeBufferPointer<UInt8>, _ tables: Tables,
                               open: UnsafeMutableBufferPointer<Range<Int>>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(xml.count / 2 + 16)
        out.append(compactFormMarker)
        var depth = 0
        var index = 0
        let count = xml.count
        while index < count {
            let byte = xml[index]
            if byte != 0x3C {
                // Content: up to the next tag. A marker byte cannot be XML content; refuse rather than misread.
                let start = index
                index = contentEnd(xml, from: index)
                if index < 0 { return nil }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: xml[start..<index]))
                continue
            }
            let closing = index + 1 < count && xml[index + 1] == 0x2F
            let nameStart = closing ? index + 2 : index + 1
            var nameEnd = nameStart
            while nameEnd < count, isNameByte(xml[nameEnd]) { nameEnd += 1 }
            guard nameEnd < count, xml[nameEnd] == 0x3E, nameEnd > nameStart else { return nil }
            let name = UnsafeBufferPointer(rebasing: xml[nameStart..<nameEnd])
            if closing {
                guard depth > 0, sameBytes(UnsafeBufferPointer(rebasing: xml[open[depth - 1]]), name) else { return nil }
                depth -= 1
                out.append(end)
                // One element per body: anything after the root stays XML.
                if depth == 0 && nameEnd + 1 < count { return nil }
            } else {
                guard depth < open.count else { return nil }
                if let code = tables.code(of: name) {
                    out.append(namedStart)
                    out.append(code)
                } else {
                    out.append(literalStart)
                    out.append(contentsOf: name)
                    out.append(literalEnd)
                }
                open[depth] = nameStart..<nameEnd
                depth += 1
            }
            index = nameEnd + 1
        }
        return depth == 0 ? out : nil
    }

    /// Where the content starting at `start` ends (the next `<`, or the end), or -1 when it holds a byte the
    /// compact form uses as a marker (≤ 0x05). Eight bytes at a time: content is most of a body's bytes.
    private static func contentEnd(_ xml: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        let count = xml.count
        var index = start
        if let base = xml.baseAddress {
            while index + 8 <= count {
                let word = UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self)
                // A byte is `<` when word ^ 0x3C… has a zero byte there; a byte is ≤ 0x05 when it is below 6.
                if hasZeroByte(word ^ 0x3C3C_3C3C_3C3C_3C3C) || hasByteBelow6(word) { break }
                index += 8
            }
        }
        while index < count, xml[index] != 0x3C {
            if xml[index] <= end { return -1 }
            index += 1
        }
        return index
    }

    private static func hasZeroByte(_ word: UInt64) -> Bool {
        (word &- 0x0101_0101_0101_0101) & ~word & 0x8080_8080_8080_8080 != 0
    }

    private static func hasByteBelow6(_ word: UInt64) -> Bool {
        (word &- 0x0606_0606_0606_0606) & ~word & 0x8080_8080_8080_8080 != 0
    }

    /// Bytes an element name may have here: anything XML allows in a name except what ends one. Names with
    /// other bytes (a space before attributes, `/` of an empty-element tag, `!`, `?`) are declined by the caller.
    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x3E, 0x2F, 0x3C, 0x3D, 0x22, 0x27, 0x21, 0x3F, 0x20, 0x09, 0x0A, 0x0D: return false
        default: return byte > end
        }
    }

    /// The XML text of a stored body (compact or XML).
    public static func xml(_ stored: UnsafeRawBufferPointer) -> String {
        let bytes = UnsafeBufferPointer(start: stored.baseAddress?.assumingMemoryBound(to: UInt8.self), count: stored.count)
        guard bytes.first == compactFormMarker else { return String(decoding: bytes, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 3)
        appendXML(of: bytes, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func xml(_ stored: [UInt8]) -> String {
        stored.withUnsafeBytes { xml($0) }
    }

    /// Appends the XML of a stored body to `out`; false when a compact body is damaged (cut short, an unknown
    /// code, an end without a start, bytes after its root). A damaged body decodes as far as it can and then
    /// closes what is open, so that readers never crash; whoever passes records on (the uplink) must check the
    /// result and hold such a record back rather than send a shortened one.
    @discardableResult
    public static func appendXML(of stored: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) -> Bool {
        guard stored.first == compactFormMarker else {
            out.append(contentsOf: stored)
            return true
        }
        return withTables { decode(stored, into: &out, $0, root: nil) }
    }

    /// The root element a decode must find, and the attributes to write into its start tag.
    private struct Root {
        let name: UnsafeBufferPointer<UInt8>
        let attributes: UnsafeBufferPointer<UInt8>
    }

    /// Appends the XML of a compact stored body whose root element is `root`, with `attributes` (bytes starting
    /// with a space) written into the root's start tag: `<root` + attributes + `>` … `</root>`. Straight into
    /// `out`, for a consumer that sends records on with attributes of its own (the uplink's package builder).
    /// False, with `out` as it was, when the body is not in the compact form, is damaged (see `appendXML`), or
    /// its root element is another one.
    /// Into an accumulator: the uplink's package builders decode every record they send this way.
    public static func appendCompactRecord(of stored: UnsafeBufferPointer<UInt8>, root: UnsafeBufferPointer<UInt8>,
                                           attributes: UnsafeBufferPointer<UInt8>, to out: inout ByteAccumulator) -> Bool {
        // The root's start tag first: text before it would otherwise be written ahead of the record element.
        guard stored.count > 1, stored[0] == compactFormMarker, stored[1] == namedStart || stored[1] == literalStart else { return false }
        let start = out.count
        let complete = withTables { decode(stored, into: &out.buffer, $0, root: Root(name: root, attributes: attributes)) }
        if !complete { out.truncate(to: start) }
        return complete
    }

    /// With `root`: the first start tag must name it (else nothing more is written and the decode fails), and
    /// its attributes go into that tag.
    private static func decode<Output: ByteOutput>(_ stored: UnsafeBufferPointer<UInt8>, into out: inout Output, _ tables: Tables,
                                                   root: Root?) -> Bool {
        // Open elements, innermost last: where each one's start marker lies in `stored`. A start takes two bytes
        // or more, so `stored.count / 2 + 1` entries hold any depth; for a record that is a few hundred bytes on
        // the stack, not an allocation per body.
        withUnsafeTemporaryAllocation(of: Int.self, capacity: stored.count / 2 + 1) { open in
            var depth = 0
            func appendEndTag(_ marker: Int) {
                if stored[marker] == namedStart {
                    out.put(tables.endTag(Int(stored[marker + 1])))
                    return
                }
                var nameEnd = marker + 1
                while stored[nameEnd] != literalEnd { nameEnd += 1 }
                out.put(byte: 0x3C)
                out.put(byte: 0x2F)
                out.put(UnsafeBufferPointer(rebasing: stored[(marker + 1)..<nameEnd]))
                out.put(byte: 0x3E)
            }
            var index = 1
            let count = stored.count
            let codeCount = tables.offsets.count - 1
            var rootClosed = false
            decoding: while index < count {
                if rootClosed { break decoding }   // one element per body
                switch stored[index] {
                case namedStart:
                    guard index + 1 < count, Int(stored[index + 1]) < codeCount else { break decoding }
                    let tag = tables.startTag(Int(stored[index + 1]))
                    if depth == 0, let root {
                        guard sameBytes(tables.name(Int(stored[index + 1])), root.name) else { break decoding }
                        out.put(UnsafeBufferPointer(rebasing: tag[..<(tag.endIndex - 1)]))
                        out.put(root.attributes)
                        out.put(byte: 0x3E)
                    } else {
                        out.put(tag)
                    }
                    open[depth] = index
                    depth += 1
                    index += 2
                case literalStart:
                    var nameEnd = index + 1
                    while nameEnd < count, stored[nameEnd] != literalEnd { nameEnd += 1 }
                    guard nameEnd < count else { break decoding }
                    let name = UnsafeBufferPointer(rebasing: stored[(index + 1)..<nameEnd])
                    if depth == 0, let root, !sameBytes(name, root.name) { break decoding }
                    out.put(byte: 0x3C)
                    out.put(name)
                    if depth == 0, let root { out.put(root.attributes) }
                    out.put(byte: 0x3E)
                    open[depth] = index
                    depth += 1
                    index = nameEnd + 1
                case end:
                    guard depth > 0 else { break decoding }
                    depth -= 1
                    appendEndTag(open[depth])
                    index += 1
                    rootClosed = depth == 0
                default:
                    let start = index
                    // Text in the journal's escaping never holds a raw `<`: one here is damage, and copying it would
                    // make the record's XML ill-formed. Eight bytes at a time, as the encoder scans it.
                    if let base = stored.baseAddress {
                        while index + 8 <= count {
                            let word = UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self)
                            if hasZeroByte(word ^ 0x3C3C_3C3C_3C3C_3C3C) || hasByteBelow6(word) { break }
                            index += 8
                        }
                    }
                    while index < count, stored[index] > end, stored[index] != 0x3C { index += 1 }
                    if index == start { break decoding }
                    out.put(UnsafeBufferPointer(rebasing: stored[start..<index]))
                }
            }
            let complete = index == count && depth == 0 && rootClosed
            while depth > 0 {
                depth -= 1
                appendEndTag(open[depth])
            }
            return complete
        }
    }
}
