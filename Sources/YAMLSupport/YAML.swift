internal import CYAML

/// A YAML node with the 1-based line (and column) where it starts. Scalars stay strings: typing is the
/// configuration layer's business, so that "01" stays "01" and errors can say what was expected.
public indirect enum YAMLNode: Sendable, Equatable {
    case scalar(String, Mark, plain: Bool)
    case sequence([YAMLNode], Mark)
    case mapping([(key: YAMLNode, value: YAMLNode)], Mark)

    public struct Mark: Sendable, Equatable, CustomStringConvertible {
        public let line: Int
        public let column: Int
        public init(line: Int, column: Int) { self.line = line; self.column = column }
        public var description: String { "\(line):\(column)" }
    }

    public var mark: Mark {
        switch self {
        case .scalar(_, let m, _), .sequence(_, let m), .mapping(_, let m): return m
        }
    }

    public static func == (lhs: YAMLNode, rhs: YAMLNode) -> Bool {
        switch (lhs, rhs) {
        case let (.scalar(a, _, _), .scalar(b, _, _)): return a == b
        case let (.sequence(a, _), .sequence(b, _)): return a == b
        case let (.mapping(a, _), .mapping(b, _)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    /// True for an explicit null: `~`, `null`, or an empty plain scalar.
    public var isNull: Bool {
        if case .scalar(let s, _, let plain) = self, plain, s.isEmpty || s == "~" || s == "null" || s == "Null" { return true }
        return false
    }
}

public struct YAMLError: Error, CustomStringConvertible, Sendable {
    public let line: Int
    public let column: Int
    public let message: String
    public var description: String { "\(line):\(column): \(message)" }
}

/// Parses one YAML document (the first one in the text). An empty document is an empty mapping.
public func parseYAML(_ text: String) throws(YAMLError) -> YAMLNode {
    var parser = yaml_parser_t()
    guard yaml_parser_initialize(&parser) == 1 else {
        throw YAMLError(line: 0, column: 0, message: "libyaml cannot initialise a parser")
    }
    defer { yaml_parser_delete(&parser) }
    let bytes = Array(text.utf8)
    return try bytes.withUnsafeBufferPointer { (buffer) throws(YAMLError) -> YAMLNode in
        yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
        var builder = TreeBuilder()
        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(&parser, &event) == 1 else {
                let mark = parser.problem_mark
                let problem = parser.problem.map { String(cString: $0) } ?? "syntax error"
                let context = parser.context.map { " " + String(cString: $0) } ?? ""
                throw YAMLError(line: Int(mark.line) + 1, column: Int(mark.column) + 1,
                                message: "YAML syntax: \(problem)\(context)")
            }
            defer { yaml_event_delete(&event) }
            let mark = YAMLNode.Mark(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
            switch event.type {
            case YAML_STREAM_END_EVENT, YAML_DOCUMENT_END_EVENT:
                return builder.root ?? .mapping([], mark)
            case YAML_SCALAR_EVENT:
                let scalar = event.data.scalar
                let value = scalar.value.map { String(decoding: UnsafeBufferPointer(start: $0, count: scalar.length), as: UTF8.self) } ?? ""
                try builder.add(.scalar(value, mark, plain: scalar.style == YAML_PLAIN_SCALAR_STYLE))
            case YAML_SEQUENCE_START_EVENT:
                builder.open(.sequence([], mark))
            case YAML_MAPPING_START_EVENT:
                builder.open(.mapping([], mark))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                try builder.close()
            case YAML_ALIAS_EVENT:
                throw YAMLError(line: mark.line, column: mark.column, message: "aliases are not supported in esgate configuration")
            default:
                continue
            }
        }
    }
}

private struct TreeBuilder {
    private var stack: [(node: YAMLNode, pendingKey: YAMLNode?)] = []
    var root: YAMLNode?

    mutating func open(_ node: YAMLNode) { stack.append((node, nil)) }

    mutating func close() throws(YAMLError) {
        guard let top = stack.popLast() else { return }
        try add(top.node)
    }

    mutating func add(_ node: YAMLNode) throws(YAMLError) {
        guard var top = stack.popLast() else { root = node; return }
        switch top.node {
        case .sequence(var items, let mark):
            items.append(node)
            top.node = .sequence(items, mark)
        case .mapping(var pairs, let mark):
            if let key = top.pendingKey {
                if case .scalar(let name, _, _) = key,
                   pairs.contains(where: { if case .scalar(let other, _, _) = $0.key { return other == name } else { return false } }) {
                    throw YAMLError(line: key.mark.line, column: key.mark.column, message: "duplicate key '\(name)'")
                }
                pairs.append((key, node))
                top.node = .mapping(pairs, mark)
                top.pendingKey = nil
            } else {
                top.pendingKey = node
            }
        case .scalar:
            break
        }
        stack.append(top)
    }
}
