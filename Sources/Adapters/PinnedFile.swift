import Foundation

/// A dropped file held open while it is ingested. Its readers open `/proc/self/fd/N`, which is the same file even
/// after another one was renamed over its name (opening the name again would give the new one), each with its own
/// offset. Without /proc the name is read, as before.
final class PinnedFile {
    let path: String
    let readingPath: String
    private let descriptor: Int32
    private let opened: stat?

    init(path: String) {
        self.path = path
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        var status = stat()
        opened = descriptor >= 0 && fstat(descriptor, &status) == 0 ? status : nil
        let proc = "/proc/self/fd/\(descriptor)"
        readingPath = descriptor >= 0 && access(proc, R_OK) == 0 ? proc : path
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// `message` about the file with `/proc/self/fd/N` put back as its name: errors, reasons and `.reason.txt`
    /// must name the file the operator knows.
    func naming(_ message: String) -> String {
        readingPath == path ? message : message.replacingOccurrences(of: readingPath, with: path)
    }

    enum Change {
        /// Nothing is left under the name: the file as opened was read to its end.
        case removed
        /// Another file was renamed over the name, or the file was written to: what is there now is not what was read.
        case replaced(String)
    }

    /// How the name or the file changed since it was opened; nil when it is unchanged, or was never opened.
    func changeSinceOpened() -> Change? {
        guard let opened else { return nil }
        var now = stat()
        guard stat(path, &now) == 0 else { return .removed }
        if now.st_dev != opened.st_dev || now.st_ino != opened.st_ino { return .replaced("another file was put in its place") }
        if now.st_size != opened.st_size || now.st_mtim.tv_sec != opened.st_mtim.tv_sec || now.st_mtim.tv_nsec != opened.st_mtim.tv_nsec {
            return .replaced("the file was written to")
        }
        return nil
    }
}
