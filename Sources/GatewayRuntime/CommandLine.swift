import Foundation

/// A usage error: exit code 2 with the command's help hint.
public struct UsageError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One option a command accepts.
public struct OptionSpec: Sendable {
    public let name: String        // without dashes, kebab-case
    public let takesValue: Bool
    public let valueName: String
    public let help: String

    public static func flag(_ name: String, _ help: String) -> OptionSpec {
        OptionSpec(name: name, takesValue: false, valueName: "", help: help)
    }
    public static func value(_ name: String, _ valueName: String, _ help: String) -> OptionSpec {
        OptionSpec(name: name, takesValue: true, valueName: valueName, help: help)
    }
}

/// Parsed options of one invocation.
public struct ParsedOptions: Sendable {
    public var flags: Set<String> = []
    /// The last value of each option.
    public var values: [String: String] = [:]
    /// Every value of each option, in order, for options that may be repeated (`--id 3 --id 5`).
    public var repeatedValues: [String: [String]] = [:]
    public var positional: [String] = []

    public func flag(_ name: String) -> Bool { flags.contains(name) }
    public func value(_ name: String) -> String? { values[name] }

    /// Numbers given as `--name 3 --name 5` and/or `--name 3,5`, without repeats; nil when the option is absent.
    public func ids(_ name: String) throws(UsageError) -> [Int64]? {
        guard let texts = repeatedValues[name] else { return nil }
        var ids: [Int64] = []
        for text in texts {
            for part in text.split(separator: ",", omittingEmptySubsequences: false) {
                guard let id = Int64(part.trimmingCharacters(in: .whitespaces)), id > 0 else {
                    throw UsageError("--\(name) expects numbers (repeat it or separate them by commas), got '\(text)'")
                }
                if !ids.contains(id) { ids.append(id) }
            }
        }
        return ids
    }

    public func integer(_ name: String, default fallback: Int, minimum: Int = 0) throws(UsageError) -> Int {
        guard let text = values[name] else { return fallback }
        guard let value = Int(text), value >= minimum else {
            throw UsageError("--\(name) expects \(minimum == 0 ? "a non-negative integer" : "an integer of at least \(minimum)"), got '\(text)'")
        }
        return value
    }
}

/// A command in the table: `esgate <path…> [options]`.
public struct CommandSpec: Sendable {
    public let path: [String]
    public let abstract: String
    public let discussion: String
    public let options: [OptionSpec]
    public let positionals: [(name: String, help: String)]

    public init(path: [String], abstract: String, discussion: String = "", options: [OptionSpec],
                positionals: [(name: String, help: String)] = []) {
        self.path = path
        self.abstract = abstract
        self.discussion = discussion
        self.options = options + [.flag("help", "Show help for this command.")]
        self.positionals = positionals
    }

    public var usage: String {
        let optionText = options.filter { $0.name != "help" }.map { $0.takesValue ? "[--\($0.name) <\($0.valueName)>]" : "[--\($0.name)]" }
        return (["esgate"] + path + positionals.map { "<\($0.name)>" } + optionText).joined(separator: " ")
    }

    public var help: String {
        var text = "OVERVIEW: \(abstract)\n"
        if !discussion.isEmpty { text += "\n\(discussion)\n" }
        text += "\nUSAGE: \(usage)\n"
        if !positionals.isEmpty {
            text += "\nARGUMENTS:\n"
            for positional in positionals { text += "  <\(positional.name)>".padding(toLength: 28, withPad: " ", startingAt: 0) + positional.help + "\n" }
        }
        text += "\nOPTIONS:\n"
        for option in options {
            let left = option.takesValue ? "  --\(option.name) <\(option.valueName)>" : "  --\(option.name)"
            text += (left.count < 28 ? left.padding(toLength: 28, withPad: " ", startingAt: 0) : left + "\n" + String(repeating: " ", count: 28)) + option.help + "\n"
        }
        return text
    }

    /// Parses `--name value`, `--name=value` and flags; rejects unknown options and missing values.
    public func parse(_ arguments: [String]) throws(UsageError) -> ParsedOptions {
        var parsed = ParsedOptions()
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--") else {
                parsed.positional.append(argument)
                continue
            }
            var name = String(argument.dropFirst(2))
            var inlineValue: String?
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            guard let option = options.first(where: { $0.name == name }) else {
                throw UsageError("unknown option '--\(name)' for 'esgate \(path.joined(separator: " "))'")
            }
            if option.takesValue {
                let value: String
                if let inlineValue {
                    value = inlineValue
                } else {
                    guard index < arguments.count else { throw UsageError("option '--\(name)' needs a value <\(option.valueName)>") }
                    value = arguments[index]
                    index += 1
                }
                parsed.values[name] = value
                parsed.repeatedValues[name, default: []].append(value)
            } else {
                guard inlineValue == nil else { throw UsageError("option '--\(name)' takes no value") }
                parsed.flags.insert(name)
            }
        }
        if !parsed.flag("help") && parsed.positional.count > positionals.count {
            throw UsageError("unexpected argument '\(parsed.positional[positionals.count])'")
        }
        return parsed
    }
}
