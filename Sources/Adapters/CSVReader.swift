#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A failure to read a file at all (it goes to the rejected folder with this reason).
public struct FileReadError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
}

/// One physical CSV record (possibly spanning lines inside quotes), undecoded.
struct RawRow {
    /// The row's bytes without the line terminator. Valid until the next call to `next()`.
    var bytes: UnsafeRawBufferPointer
    /// 1-based line where the row starts.
    var line: Int
    /// Byte offset just after the row's terminator: where the next row starts.
    var endOffset: Int64
    /// True when the file ended inside an open quote (RFC 4180 violation).
    var unterminatedQuote: Bool
}

/// Streams rows from a file with a fixed-size buffer: memory does not grow with the file.
/// Row boundaries are found on raw bytes, which is safe for UTF-8 and GB18030 alike: neither uses the bytes
/// of `"`, `,`, CR or LF inside a multi-byte character.
final class CSVRowReader {
    private let descriptor: Int32
    private var buffer: UnsafeMutableRawBufferPointer
    private var start = 0      // first byte of the current row in buffer
    private var end = 0        // bytes valid in buffer
    private var scan = 0       // scanning position (relative to buffer)
    private var inQuotes = false
    private var newlinesInRow = 0
    private var eof = false
    private(set) var offset: Int64   // file offset of buffer[start]
    private(set) var line: Int
    let path: String

    init(path: String, startOffset: Int64 = 0, startLine: Int = 1, bufferSize: Int = 1 << 20) throws(FileReadError) {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FileReadError(path: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        if startOffset > 0 && lseek(fd, off_t(startOffset), SEEK_SET) < 0 {
            close(fd)
            throw FileReadError(path: path, message: "cannot seek to \(startOffset)")
        }
        descriptor = fd
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 8)
        offset = startOffset
        line = startLine
    }

    deinit {
        buffer.deallocate()
        close(descriptor)
    }

    /// Reads more bytes, compacting or growing the buffer as needed. Returns false at end of file.
    private func fill() throws(FileReadError) -> Bool {
        if eof { return false }
        if start > 0 {
            let pending = end - start
            if pending > 0, let base = buffer.baseAddress { memmove(base, base + start, pending) }
            scan -= start
            end = pending
            start = 0
        }
        if end == buffer.count {
            // One row longer than the buffer (huge quoted field): grow rather than fail.
            let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: buffer.count * 2, alignment: 8)
            if let from = buffer.baseAddress, let to = bigger.baseAddress { memcpy(to, from, end) }
            buffer.deallocate()
            buffer = bigger
        }
        guard let base = buffer.baseAddress else { return false }
        while true {
            let count = read(descriptor, base + end, buffer.count - end)
            if count < 0 {
                if errno == EINTR { continue }
                throw FileReadError(path: path, message: "read failed: \(String(cString: strerror(errno)))")
            }
            if count == 0 { eof = true; return false }
            end += count
            return true
        }
    }

    /// The next row, or nil at end of file.
    func next() throws(FileReadError) -> RawRow? {
        while true {
            // Skip the previous row: `start` already points past it.
            guard let base = buffer.baseAddress else { return nil }
            let bytes = base.assumingMemoryBound(to: UInt8.self)
            while scan < end {
                let byte = bytes[scan]
                if byte == 0x22 {
                    inQuotes.toggle()
                } else if byte == 0x0A {
                    if !inQuotes {
                        var rowEnd = scan
                        if rowEnd > start, bytes[rowEnd - 1] == 0x0D { rowEnd -= 1 }
                        let row = RawRow(bytes: UnsafeRawBufferPointer(start: base + start, count: rowEnd - start),
                                         line: line, endOffset: offset + Int64(scan + 1 - start), unterminatedQuote: false)
                        line += newlinesInRow + 1
                        newlinesInRow = 0
                        offset = row.endOffset
                        scan += 1
                        start = scan
                        return row
                    }
                    newlinesInRow += 1
                }
                scan += 1
            }
            if try !fill() {
                guard end > start else { return nil }
                var rowEnd = end
                if bytes[rowEnd - 1] == 0x0D { rowEnd -= 1 }
                let row = RawRow(bytes: UnsafeRawBufferPointer(start: base + start, count: rowEnd - start),
                                 line: line, endOffset: offset + Int64(end - start), unterminatedQuote: inQuotes)
                line += newlinesInRow + 1
                newlinesInRow = 0
                inQuotes = false
                offset = row.endOffset
                start = end
                scan = end
                return row
            }
        }
    }
}

/// Why a row's fields could not be split.
struct CSVShapeError: Error {
    let message: String
}

/// The fields of one decoded row: a copy of the row, followed by the unescaped text of any quoted field, and where
/// each field lies in it (an unquoted field in the copy, a quoted one after it). One copy per row instead of one
/// per field; reused from row to row, so that splitting a row allocates nothing once the buffers have grown.
struct CSVFieldBuffer {
    var bytes: [UInt8] = []
    var ranges: [Range<Int>] = []

    var count: Int { ranges.count }

    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        ranges.removeAll(keepingCapacity: true)
    }


    /// The fields as Strings (what the general path of row preparation reads).
    func strings() -> [String] {
        bytes.withUnsafeBufferPointer { all in
            ranges.map { String(decoding: UnsafeBufferPointer(rebasing: all[$0]), as: UTF8.self) }
        }
    }
}

/// Splits one decoded row (UTF-8 bytes) into fields per RFC 4180: quoted fields, doubled quotes, delimiters and
/// line breaks inside quotes. A quote inside an unquoted field is kept literally (legacy exports do this).
func splitCSVFields(_ bytes: UnsafeBufferPointer<UInt8>, delimiter: UInt8, into fields: inout CSVFieldBuffer) throws(CSVShapeError) {
    fields.removeAll()
    fields.bytes.append(contentsOf: bytes)
    let count = bytes.count
    var i = 0
    while true {
        if i < count, bytes[i] == 0x22 {
            // Quoted field: copied run by run up to each quote; a doubled quote stands for one.
            let start = fields.bytes.count
            i += 1
            var closed = false
            var runStart = i
            while i < count {
                if bytes[i] != 0x22 {
                    i += 1
                    continue
                }
                fields.bytes.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i]))
                if i + 1 < count, bytes[i + 1] == 0x22 {
                    fields.bytes.append(0x22)
                    i += 2
                    runStart = i
                    continue
                }
                closed = true
                i += 1
                break
            }
            guard closed else { throw CSVShapeError(message: "unterminated quoted field \(fields.count + 1)") }
            fields.ranges.append(start..<fields.bytes.count)
            if i == count { return }
            guard bytes[i] == delimiter else {
                throw CSVShapeError(message: "text after the closing quote of field \(fields.count)")
            }
            i += 1
            if i == count { fields.ranges.append(i..<i); return }
        } else {
            let fieldStart = i
            while i < count, bytes[i] != delimiter { i += 1 }
            fields.ranges.append(fieldStart..<i)
            if i == count { return }
            i += 1
            if i == count { fields.ranges.append(i..<i); return }
        }
    }
}

/// What is wrong with a row's shape against its header, nil when nothing: fewer fields than the header (a field or
/// a delimiter lost: the values after it would fall into the wrong columns), or more fields with something in the
/// extra ones. Extra empty fields are a trailing delimiter, which some exporters put on every data row.
public func csvShapeProblem(fieldCount: Int, headerCount: Int, extraFieldsHoldText: Bool) -> String? {
    if fieldCount < headerCount {
        return "row has \(fieldCount) field\(fieldCount == 1 ? "" : "s"), the header has \(headerCount): a field or a delimiter is missing, so the values after it would fall into the wrong columns"
    }
    if fieldCount > headerCount, extraFieldsHoldText {
        return "row has \(fieldCount) fields, the header has \(headerCount)"
    }
    return nil
}

/// `csvShapeProblem` for a row split into Strings (replay, `mapping test`).
public func csvShapeProblem(fields: [String], headerCount: Int) -> String? {
    csvShapeProblem(fieldCount: fields.count, headerCount: headerCount,
                    extraFieldsHoldText: fields.dropFirst(headerCount).contains { !$0.isEmpty })
}

/// A row with nothing in it: empty, or only delimiters and spaces (a spreadsheet's empty row). Skipped before
/// the header, by the adapter and by `mapping test` alike.
public func isBlankCSVRow<Bytes: Sequence<UInt8>>(_ bytes: Bytes, delimiter: UInt8) -> Bool {
    bytes.allSatisfy { $0 == delimiter || $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
}

/// `splitCSVFields` into Strings (headers, replayed quarantine rows).
func splitCSVFields(_ bytes: UnsafeBufferPointer<UInt8>, delimiter: UInt8, into fields: inout [String]) throws(CSVShapeError) {
    var buffer = CSVFieldBuffer()
    fields.removeAll(keepingCapacity: true)
    try splitCSVFields(bytes, delimiter: delimiter, into: &buffer)
    fields = buffer.strings()
}

/// Values as one RFC 4180 line: the raw form in quarantine of rows that did not come from a CSV file (ODBC, SOAP),
/// so that `esgate quarantine replay` splits them like a CSV row.
public func csvLine(_ fields: [String]) -> String {
    fields.map { field in
        if field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return field
    }.joined(separator: ",")
}
