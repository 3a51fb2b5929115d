import CivilTime
import Foundation
import TextSupport

/// Severity of a log line.
public enum LogSeverity: Int, Sendable, Comparable {
    case debug = 0, info, warning, error
    public static func < (a: LogSeverity, b: LogSeverity) -> Bool { a.rawValue < b.rawValue }
    var label: String {
        switch self {
        case .debug: return "debug"
        case .info: return "info"
        case .warning: return "warning"
        case .error: return "error"
        }
    }
}

/// Where log lines go. One handler is chosen in `main` and passed down by context.
public protocol LogHandler: Sendable {
    func write(_ severity: LogSeverity, _ message: String)
}

/// A logger bound to a component name. Every message is passed through identity-number masking (PUI §8)
/// before it reaches a handler, so no caller can leak one by accident.
public struct Logger: Sendable {
    public let component: String
    public let minimum: LogSeverity
    let handler: any LogHandler

    public init(component: String, minimum: LogSeverity = .info, handler: any LogHandler = StandardErrorLogHandler()) {
        self.component = component
        self.minimum = minimum
        self.handler = handler
    }

    public func with(component: String) -> Logger { Logger(component: component, minimum: minimum, handler: handler) }

    public func log(_ severity: LogSeverity, _ message: @autoclosure () -> String) {
        guard severity >= minimum else { return }
        handler.write(severity, "[\(component)] " + Self.oneLine(Redaction.maskIdentityNumbers(in: message())))
    }

    /// One log entry is one line: line breaks inside a message (a driver's or server's text, a quoted query) and the
    /// indentation after them become one space, so a collector never takes a continuation for an entry of its own.
    public static func oneLine(_ message: String) -> String {
        guard message.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }) else { return message }
        return message.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" })
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .joined(separator: " ")
    }

    public func debug(_ message: @autoclosure () -> String) { log(.debug, message()) }
    public func info(_ message: @autoclosure () -> String) { log(.info, message()) }
    public func warning(_ message: @autoclosure () -> String) { log(.warning, message()) }
    public func error(_ message: @autoclosure () -> String) { log(.error, message()) }

    /// A logger that drops everything (tests, quiet commands).
    public static let silent = Logger(component: "", minimum: .error, handler: DiscardingLogHandler())
}

public struct StandardErrorLogHandler: LogHandler {
    public init() {}
    public func write(_ severity: LogSeverity, _ message: String) {
        let stamp = beijingTimestamp(Date())
        FileHandle.standardError.write(Data("\(stamp) \(severity.label) \(message)\n".utf8))
    }
}

public struct DiscardingLogHandler: LogHandler {
    public init() {}
    public func write(_ severity: LogSeverity, _ message: String) {}
}

/// Keeps log lines in memory (tests assert on what operators would see).
public final class RecordingLogHandler: LogHandler, @unchecked Sendable {
    // Guarded by `lock`; log calls may come from several tasks.
    private let lock = NSLock()
    private var storage: [String] = []
    public init() {}
    public func write(_ severity: LogSeverity, _ message: String) {
        lock.lock(); defer { lock.unlock() }
        storage.append("\(severity.label) \(message)")
    }
    public var lines: [String] {
        lock.lock(); defer { lock.unlock() }
        return storage
    }
}

/// Beijing time (UTC+8) in the schema's BeijingTime form: 2026-01-05T08:37:00+08:00. Plain arithmetic: no
/// formatter, so that the first log line does not load ICU's data (≈5 MB of resident memory).
public func beijingTimestamp(_ date: Date) -> String {
    let seconds = Int64(date.timeIntervalSince1970.rounded(.down)) + 8 * 3600
    let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
    let secondOfDay = Int(seconds - days * 86400)
    let (year, month, day) = CivilCalendar.civilFromDays(Int(days))
    var text = ""
    text.reserveCapacity(25)
    func append(_ value: Int, digits: Int) {
        let decimal = String(value)
        if decimal.count < digits { text += String(repeating: "0", count: digits - decimal.count) }
        text += decimal
    }
    append(year, digits: 4)
    text += "-"
    append(month, digits: 2)
    text += "-"
    append(day, digits: 2)
    text += "T"
    append(secondOfDay / 3600, digits: 2)
    text += ":"
    append(secondOfDay / 60 % 60, digits: 2)
    text += ":"
    append(secondOfDay % 60, digits: 2)
    return text + "+08:00"
}
