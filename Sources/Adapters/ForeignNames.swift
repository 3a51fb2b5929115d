import Foundation
import TextSupport

/// Drop-folder names that are not UTF-8. A Windows sender writes names in GBK (`办件.csv` as B0 EC BC FE 2E 63 73 76),
/// and Foundation's directory listing leaves such names out: the file would sit in the drop folder for ever, never
/// ingested and never reported. They are renamed to their text read as GB18030 (a superset of GBK), or with the
/// bytes that do not decode written as `%XX`, so that the usual rules (pattern, ready rule, archive) apply.
enum ForeignNames {
    /// Renames every non-UTF-8 name in `folder` that is not hidden and not a temporary name (`.tmp`, `.part`: its
    /// writer is still at work and renames it itself). Returns "old → new" (old in `%XX` form) for the log, and the
    /// names that could not be renamed with the reason.
    static func normalize(in folder: String) -> (renamed: [String], failed: [String]) {
        guard let directory = opendir(folder) else { return ([], []) }
        defer { closedir(directory) }
        var renamed: [String] = [], failed: [String] = []
        while let entry = readdir(directory) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            guard bytes.first != UInt8(ascii: "."),
                  bytes.withUnsafeBytes({ TextDecoder.firstInvalidUTF8($0) }) != nil else { continue }
            let shown = escaped(bytes)
            if shown.hasSuffix(".tmp") || shown.hasSuffix(".part") { continue }
            let target = (folder as NSString).appendingPathComponent(decoded(bytes))
            let source = (Array((folder + "/").utf8) + bytes + [0]).map { CChar(bitPattern: $0) }
            // link + unlink, not rename: rename would replace a file that appeared under the new name meanwhile
            // (a sender's own export), while link refuses an existing name, atomically. A share without hard links
            // (SMB, vfat: where GBK names come from) gets rename after a check instead.
            let linked = link(source, target) == 0
            let linkError = errno
            if !linked && linkError == EEXIST {
                failed.append("\(shown): not renamed to \((target as NSString).lastPathComponent), which exists")
            } else if linked ? unlink(source) == 0 : (!FileManager.default.fileExists(atPath: target) && rename(source, target) == 0) {
                renamed.append("\(shown) → \((target as NSString).lastPathComponent)")
            } else {
                failed.append("\(shown): cannot rename: \(String(cString: strerror(errno)))")
            }
        }
        return (renamed, failed)
    }

    /// The name as GB18030 text, or with `%XX` for bytes that are not UTF-8 when it is not GB18030 either.
    static func decoded(_ bytes: [UInt8]) -> String {
        if let decoder = try? TextDecoder(.gb18030),
           let text = try? bytes.withUnsafeBytes({ (raw) throws(DecodingError) in try decoder.decode(raw) }), !text.contains("/") {
            return text
        }
        return escaped(bytes)
    }

    /// Printable ASCII as it is, every other byte as `%XX`: safe in a log line and in a file name.
    static func escaped(_ bytes: [UInt8]) -> String {
        bytes.map { $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "%") ? String(UnicodeScalar($0)) : String(format: "%%%02X", $0) }.joined()
    }
}
