internal import CXML2

/// A namespace prefix usable in XPath expressions.
public struct XPathNamespace: Sendable, Equatable {
    public var prefix: String
    public var uri: String
    public init(prefix: String, uri: String) {
        self.prefix = prefix
        self.uri = uri
    }
}

/// Why an untrusted document was refused before or during parsing.
public enum UntrustedXMLError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The document has a document type declaration (DTD): the door to external entities (XXE) and entity
    /// expansion bombs (billion laughs). SOAP 1.1 §3 and SOAP 1.2 part 1 §5 forbid DTDs in messages anyway.
    case documentTypeDeclaration(String)
    /// Larger than the configured bound.
    case tooLarge(bytes: Int, limit: Int)
    /// Not well-formed.
    case malformed(XMLError)

    public var description: String {
        switch self {
        case .documentTypeDeclaration(let detail): return "refused: the document has a DTD (\(detail)); external entities and entity expansion are never processed"
        case .tooLarge(let bytes, let limit): return "refused: \(bytes) bytes is more than the limit of \(limit)"
        case .malformed(let error): return "not well-formed XML: \(error)"
        }
    }
}

extension XMLDocument {
    /// Parses text from an untrusted peer: UTF-8 bytes (the caller already decoded them; any encoding the
    /// document declares is ignored), no network, no entity substitution, and any DTD refused — both before
    /// parsing (a `<!DOCTYPE` outside comments, so no entity is ever declared) and after (no internal or
    /// external subset on the parsed tree).
    public static func untrusted(utf8 bytes: [UInt8], limit: Int = 64 << 20) throws(UntrustedXMLError) -> XMLDocument {
        if bytes.count > limit { throw .tooLarge(bytes: bytes.count, limit: limit) }
        if let offset = findDoctype(bytes) {
            throw .documentTypeDeclaration("<!DOCTYPE at byte \(offset)")
        }
        let document: XMLDocument
        do {
            document = try XMLDocument(bytes: bytes, url: "untrusted.xml", encoding: "UTF-8")
        } catch {
            throw .malformed(error)
        }
        if document.document.pointee.intSubset != nil || document.document.pointee.extSubset != nil {
            throw .documentTypeDeclaration("document type declaration in the parsed tree")
        }
        return document
    }

    /// Offset of the first `<!DOCTYPE` (any case) that is not inside a comment or CDATA section.
    static func findDoctype(_ bytes: [UInt8]) -> Int? {
        let doctype = Array("<!DOCTYPE".utf8)
        var index = 0
        let count = bytes.count
        func startsWith(_ pattern: [UInt8], at position: Int, caseInsensitive: Bool = false) -> Bool {
            guard position + pattern.count <= count else { return false }
            for (offset, expected) in pattern.enumerated() {
                var actual = bytes[position + offset]
                if caseInsensitive, actual >= 0x61, actual <= 0x7A { actual -= 0x20 }
                if actual != expected { return false }
            }
            return true
        }
        func skip(to terminator: [UInt8], from position: Int) -> Int {
            var cursor = position
            while cursor < count {
                if startsWith(terminator, at: cursor) { return cursor + terminator.count }
                cursor += 1
            }
            return count
        }
        while index < count {
            if bytes[index] == 0x3C {  // <
                if startsWith(Array("<!--".utf8), at: index) {
                    index = skip(to: Array("-->".utf8), from: index + 4)
                    continue
                }
                if startsWith(Array("<![CDATA[".utf8), at: index) {
                    index = skip(to: Array("]]>".utf8), from: index + 9)
                    continue
                }
                if startsWith(doctype, at: index, caseInsensitive: true) { return index }
                // Also catch a stray <!ENTITY outside a DOCTYPE (never well-formed, but refuse it by name).
                if startsWith(Array("<!ENTITY".utf8), at: index, caseInsensitive: true) { return index }
            }
            index += 1
        }
        return nil
    }

    /// Evaluates `path` (namespace prefixes as declared) and returns the string value of every selected node,
    /// or the single string value of a non-node-set result.
    public func strings(_ path: String, namespaces: [XPathNamespace] = []) throws(XMLError) -> [String] {
        try withContext(namespaces) { (context) throws(XMLError) -> [String] in
            let result = try evaluate(path, in: context)
            defer { xmlXPathFreeObject(result) }
            if result.pointee.type == XPATH_NODESET {
                return nodes(of: result).map(stringValue)
            }
            return [castToString(result)]
        }
    }

    /// Selects records with `recordPath` and, for each, evaluates every field expression relative to it
    /// (as `string(...)`: the first selected node's string value, "" when none). Rows are in document order.
    public func table(records recordPath: String, fields: [String], namespaces: [XPathNamespace] = []) throws(XMLError) -> [[String]] {
        try withContext(namespaces) { (context) throws(XMLError) -> [[String]] in
            let compiled = try fields.map { (field) throws(XMLError) -> xmlXPathCompExprPtr in
                guard let expression = xmlXPathCompile(field) else {
                    throw XMLError(line: 0, message: "invalid field XPath '\(field)'")
                }
                return expression
            }
            defer { compiled.forEach { xmlXPathFreeCompExpr($0) } }
            let records = try evaluate(recordPath, in: context)
            defer { xmlXPathFreeObject(records) }
            guard records.pointee.type == XPATH_NODESET else {
                throw XMLError(line: 0, message: "record path '\(recordPath)' does not select nodes")
            }
            var rows: [[String]] = []
            for node in nodes(of: records) {
                var row: [String] = []
                row.reserveCapacity(fields.count)
                for (index, expression) in compiled.enumerated() {
                    context.pointee.node = node
                    guard let value = xmlXPathCompiledEval(expression, context) else {
                        throw XMLError(line: Int(xmlGetLineNo(node)), message: "field XPath '\(fields[index])' cannot be evaluated (undeclared prefix?)")
                    }
                    row.append(castToString(value))
                    xmlXPathFreeObject(value)
                }
                rows.append(row)
            }
            return rows
        }
    }

    private func withContext<T>(_ namespaces: [XPathNamespace], _ body: (xmlXPathContextPtr) throws(XMLError) -> T) throws(XMLError) -> T {
        guard let context = xmlXPathNewContext(document) else { throw XMLError(line: 0, message: "cannot create XPath context") }
        defer { xmlXPathFreeContext(context) }
        for namespace in namespaces where xmlXPathRegisterNs(context, namespace.prefix, namespace.uri) != 0 {
            throw XMLError(line: 0, message: "cannot register namespace prefix '\(namespace.prefix)'")
        }
        let collector = XPathErrorSilencer()
        xmlSetStructuredErrorFunc(Unmanaged.passUnretained(collector).toOpaque()) { userData, error in
            guard let userData, let error else { return }
            let collector = Unmanaged<XPathErrorSilencer>.fromOpaque(userData).takeUnretainedValue()
            if collector.first == nil { collector.first = error.pointee.message.map { String(cString: $0) } }
        }
        defer { xmlSetStructuredErrorFunc(nil, nil) }
        return try body(context)
    }

    private func evaluate(_ path: String, in context: xmlXPathContextPtr) throws(XMLError) -> xmlXPathObjectPtr {
        context.pointee.node = nil
        guard let result = xmlXPathEvalExpression(path, context) else {
            throw XMLError(line: 0, message: "XPath '\(path)' cannot be evaluated (syntax error or undeclared namespace prefix)")
        }
        return result
    }

    private func nodes(of result: xmlXPathObjectPtr) -> [xmlNodePtr] {
        guard let set = result.pointee.nodesetval, let table = set.pointee.nodeTab else { return [] }
        var nodes: [xmlNodePtr] = []
        for index in 0..<Int(set.pointee.nodeNr) {
            if let node = table[index] { nodes.append(node) }
        }
        return nodes
    }

    private func stringValue(_ node: xmlNodePtr) -> String {
        guard let text = xmlXPathCastNodeToString(node) else { return "" }
        defer { esg_xml_free(text) }
        return String(cString: text)
    }

    private func castToString(_ object: xmlXPathObjectPtr) -> String {
        guard let text = xmlXPathCastToString(object) else { return "" }
        defer { esg_xml_free(text) }
        return String(cString: text)
    }
}

/// Keeps XPath diagnostics off stderr (our errors carry the expression instead).
private final class XPathErrorSilencer {
    var first: String?
}
