internal import CXML2

/// One-time libxml2 initialisation (PLATFORM.md: a global `let` runs it exactly once, thread-safely).
/// The XSD built-in type library too: libxml2 2.9 builds it lazily, in the first `xmlSchemaParse` (or built-in type
/// lookup) of the process, without a lock. Two schemas compiled at once as the first ones (`run --once` with two
/// receivers: each drain task compiles pui-v1.xsd) would both build it, into one global hash table that each of
/// them replaces, and one could look up `xs:string` in a table the other is still filling.
private let libxmlInitialised: Bool = {
    xmlInitParser()
    xmlSchemaInitTypes()
    return true
}()

/// An XML problem with the line libxml2 reported (0 when unknown).
public struct XMLError: Error, CustomStringConvertible, Sendable, Equatable {
    public let line: Int
    public let message: String
    public init(line: Int, message: String) { self.line = line; self.message = message }
    public var description: String { line > 0 ? "line \(line): \(message)" : message }
}

/// An element of a parsed document, copied out of libxml2 into plain Swift values.
public struct XMLElement: Sendable, Equatable {
    public var name: String
    public var namespace: String?
    public var attributes: [(name: String, value: String)]
    public var children: [XMLElement]
    /// Concatenated text of the element's direct text and CDATA children.
    public var text: String
    public var line: Int

    public static func == (a: XMLElement, b: XMLElement) -> Bool {
        a.name == b.name && a.namespace == b.namespace && a.children == b.children && a.text == b.text
            && a.attributes.map(\.name) == b.attributes.map(\.name) && a.attributes.map(\.value) == b.attributes.map(\.value)
    }

    public func attribute(_ name: String) -> String? { attributes.first { $0.name == name }?.value }
    public func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }
    public func children(_ name: String) -> [XMLElement] { children.filter { $0.name == name } }
}

/// Parse options that keep untrusted input harmless: no network, no entity expansion, no DTD loading.
private var safeParseOptions: Int32 {
    Int32(bitPattern: XML_PARSE_NONET.rawValue | XML_PARSE_NOCDATA.rawValue)
}

/// Collects libxml2's structured errors for one operation; passed through `void*` userdata.
private final class ErrorCollector {
    var errors: [XMLError] = []
}

private func installErrorCollector(_ collector: ErrorCollector) {
    xmlSetStructuredErrorFunc(Unmanaged.passUnretained(collector).toOpaque()) { userData, error in
        guard let userData, let error else { return }
        let collector = Unmanaged<ErrorCollector>.fromOpaque(userData).takeUnretainedValue()
        let message = error.pointee.message.map { String(cString: $0) } ?? "XML error"
        collector.errors.append(XMLError(line: Int(error.pointee.line),
                                         message: message.trimmingTrailingNewlines()))
    }
}

private func removeErrorCollector() { xmlSetStructuredErrorFunc(nil, nil) }

extension String {
    fileprivate func trimmingTrailingNewlines() -> String {
        var s = self
        while s.last == "\n" || s.last == "\r" { s.removeLast() }
        return s
    }
}

/// A parsed XML document (owns the libxml2 tree). Not Sendable.
public final class XMLDocument {
    let document: xmlDocPtr

    /// Parses bytes; external entities are never loaded and the network is never touched.
    /// `preserveWhitespace` keeps whitespace-only text nodes (needed to canonicalize a document as it stands).
    /// `encoding` overrides the document's own declaration (e.g. "UTF-8" for text that was already decoded).
    public init(bytes: [UInt8], url: String = "input.xml", preserveWhitespace: Bool = false,
                encoding: String? = nil) throws(XMLError) {
        _ = libxmlInitialised
        let collector = ErrorCollector()
        installErrorCollector(collector)
        defer { removeErrorCollector() }
        let parsed = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress.flatMap { base in
                base.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                    xmlReadMemory($0, Int32(buffer.count), url, encoding,
                                  preserveWhitespace ? safeParseOptions & ~Int32(bitPattern: XML_PARSE_NOBLANKS.rawValue) : safeParseOptions)
                }
            }
        }
        guard let parsed else {
            throw collector.errors.first ?? XMLError(line: 0, message: "document is empty or not well-formed")
        }
        document = parsed
    }

    public convenience init(text: String) throws(XMLError) {
        try self.init(bytes: Array(text.utf8))
    }

    deinit { xmlFreeDoc(document) }

    /// The root element as a Swift tree.
    public var root: XMLElement? {
        guard let node = xmlDocGetRootElement(document) else { return nil }
        return Self.convert(node)
    }

    private static func convert(_ node: xmlNodePtr) -> XMLElement {
        var element = XMLElement(name: node.pointee.name.map { String(cString: $0) } ?? "",
                                 namespace: node.pointee.ns?.pointee.href.map { String(cString: $0) },
                                 attributes: [], children: [], text: "", line: Int(xmlGetLineNo(node)))
        var attribute = node.pointee.properties
        while let current = attribute {
            let name = current.pointee.name.map { String(cString: $0) } ?? ""
            var value = ""
            if let content = xmlNodeListGetString(node.pointee.doc, current.pointee.children, 1) {
                value = String(cString: content)
                esg_xml_free(content)
            }
            element.attributes.append((name, value))
            attribute = current.pointee.next
        }
        var child = node.pointee.children
        while let current = child {
            switch current.pointee.type {
            case XML_ELEMENT_NODE:
                element.children.append(convert(current))
            case XML_TEXT_NODE, XML_CDATA_SECTION_NODE:
                if let content = current.pointee.content { element.text += String(cString: content) }
            default:
                break
            }
            child = current.pointee.next
        }
        return element
    }

    /// Exclusive canonical form (exc-c14n 1.0, no comments) of the first element with this local name and
    /// namespace, as it stands in the document.
    public func exclusiveCanonicalForm(ofElement localName: String, namespace: String) throws(XMLError) -> [UInt8] {
        guard let root = xmlDocGetRootElement(document), let target = Self.find(root, localName, namespace) else {
            throw XMLError(line: 0, message: "no element {\(namespace)}\(localName) to canonicalize")
        }
        // C14N of a subtree through a visibility callback (the element, its descendants, their attributes and
        // namespace nodes): the same node set as the XPath `(. | .//node() | .//@* | .//namespace::*)`, without
        // libxml2's linear node-set lookups, which made a 1000-record Body cost seconds.
        guard let buffer = esg_c14n_subtree(document, target, Int32(XML_C14N_EXCLUSIVE_1_0.rawValue)) else {
            throw XMLError(line: 0, message: "canonicalization failed")
        }
        defer { xmlOutputBufferClose(buffer) }
        let length = Int(xmlOutputBufferGetSize(buffer))
        guard length >= 0 else { throw XMLError(line: 0, message: "canonicalization failed") }
        guard length > 0, let content = xmlOutputBufferGetContent(buffer) else { return [] }
        return Array(UnsafeBufferPointer(start: content, count: length))
    }

    fileprivate static func find(_ node: xmlNodePtr, _ name: String, _ namespace: String) -> xmlNodePtr? {
        if node.pointee.type == XML_ELEMENT_NODE,
           node.pointee.name.map({ String(cString: $0) }) == name,
           node.pointee.ns?.pointee.href.map({ String(cString: $0) }) == namespace {
            return node
        }
        var child = node.pointee.children
        while let current = child {
            if let found = find(current, name, namespace) { return found }
            child = current.pointee.next
        }
        return nil
    }
}

/// A compiled XSD schema; validates documents and reports every error with its line.
public final class XMLSchemaValidator {
    private let schema: xmlSchemaPtr

    public init(schemaText: String) throws(XMLError) {
        _ = libxmlInitialised
        let collector = ErrorCollector()
        installErrorCollector(collector)
        defer { removeErrorCollector() }
        let bytes = Array(schemaText.utf8)
        // The parser context only points at the bytes; they must stay alive (and in place) until
        // xmlSchemaParse has read them, so both calls happen inside the buffer's scope.
        let parsed = bytes.withUnsafeBufferPointer { buffer -> (context: Bool, schema: xmlSchemaPtr?) in
            guard let base = buffer.baseAddress else { return (false, nil) }
            let context = base.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                xmlSchemaNewMemParserCtxt($0, Int32(buffer.count))
            }
            guard let context else { return (false, nil) }
            defer { xmlSchemaFreeParserCtxt(context) }
            return (true, xmlSchemaParse(context))
        }
        guard parsed.context else { throw XMLError(line: 0, message: "cannot read the schema") }
        guard let schema = parsed.schema else {
            throw collector.errors.first ?? XMLError(line: 0, message: "the schema does not compile")
        }
        self.schema = schema
    }

    deinit { xmlSchemaFree(schema) }

    /// All validation errors of the first element {namespace}localName of the document, validated as if it
    /// were the root (e.g. a pui:Package inside a SOAP envelope). Empty when valid.
    public func validate(_ document: XMLDocument, element localName: String, namespace: String) -> [XMLError] {
        guard let root = xmlDocGetRootElement(document.document),
              let target = XMLDocument.find(root, localName, namespace) else {
            return [XMLError(line: 0, message: "no element {\(namespace)}\(localName) to validate")]
        }
        let collector = ErrorCollector()
        installErrorCollector(collector)
        defer { removeErrorCollector() }
        guard let context = xmlSchemaNewValidCtxt(schema) else { return [XMLError(line: 0, message: "cannot create validation context")] }
        defer { xmlSchemaFreeValidCtxt(context) }
        let rc = xmlSchemaValidateOneElement(context, target)
        if rc != 0 && collector.errors.isEmpty {
            return [XMLError(line: 0, message: "element is not valid (libxml2 code \(rc))")]
        }
        return collector.errors
    }

    /// All validation errors of the document (empty when valid).
    public func validate(_ document: XMLDocument) -> [XMLError] {
        let collector = ErrorCollector()
        installErrorCollector(collector)
        defer { removeErrorCollector() }
        guard let context = xmlSchemaNewValidCtxt(schema) else { return [XMLError(line: 0, message: "cannot create validation context")] }
        defer { xmlSchemaFreeValidCtxt(context) }
        let rc = xmlSchemaValidateDoc(context, document.document)
        if rc != 0 && collector.errors.isEmpty {
            return [XMLError(line: 0, message: "document is not valid (libxml2 code \(rc))")]
        }
        return collector.errors
    }
}

/// An XML Schema regular expression (XSD Part 2, appendix F), compiled by libxml2: the same engine that
/// validates patterns, so facets checked in Swift match libxml2's verdicts exactly.
public final class XSDRegularExpression: @unchecked Sendable {
    // The compiled automaton is immutable after compilation and xmlRegexpExec keeps its state per call,
    // so sharing one across threads is safe.
    private let regexp: xmlRegexpPtr
    public let pattern: String

    public init(_ pattern: String) throws(XMLError) {
        _ = libxmlInitialised
        guard let compiled = xmlRegexpCompile(pattern) else {
            throw XMLError(line: 0, message: "invalid XSD pattern \(pattern)")
        }
        regexp = compiled
        self.pattern = pattern
    }

    deinit { xmlRegFreeRegexp(regexp) }

    /// True when the whole value matches (XSD patterns are implicitly anchored).
    public func matches(_ value: String) -> Bool {
        xmlRegexpExec(regexp, value) == 1
    }
}

/// Escapes text for element content and attribute values.
public func xmlEscape(_ text: String) -> String { escape(text, canonicalText: false) }

/// Escapes character data the way exclusive XML canonicalization (C14N 1.0 §1.1) writes text nodes: `&`, `<`,
/// `>` and CR become `&amp;`, `&lt;`, `&gt;`, `&#xD;`; everything else (quotes included) stays literal. Text
/// written this way is already in canonical form, so a document assembled from such pieces can be digested as it
/// stands, without a parse and a C14N pass.
public func xmlCanonicalTextEscape(_ text: String) -> String { escape(text, canonicalText: true) }

/// `canonicalText`: C14N's text-node escaping (quotes literal, CR as `&#xD;`); otherwise escaping that is also
/// safe inside double-quoted attributes.
private func escape(_ text: String, canonicalText: Bool) -> String {
    var needs = false
    for byte in text.utf8 where byte == 38 || byte == 60 || byte == 62 || byte == 13 || (byte == 34 && !canonicalText) {
        needs = true
        break
    }
    guard needs else { return text }
    var out = ""
    out.reserveCapacity(text.utf8.count + 16)
    for scalar in text.unicodeScalars {
        switch scalar {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"" where !canonicalText: out += "&quot;"
        case "\r": out += canonicalText ? "&#xD;" : "&#13;"
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out
}

/// True when every character may appear in an XML 1.0 document (no C0 controls but tab, LF, CR; no U+FFFE/U+FFFF).
public func isXMLCharacterData(_ text: String) -> Bool {
    var previous1: UInt8 = 0, previous2: UInt8 = 0
    for byte in text.utf8 {
        if byte < 0x20 && byte != 0x09 && byte != 0x0A && byte != 0x0D { return false }
        // U+FFFE and U+FFFF are EF BF BE and EF BF BF.
        if (byte == 0xBE || byte == 0xBF) && previous1 == 0xBF && previous2 == 0xEF { return false }
        previous2 = previous1
        previous1 = byte
    }
    return true
}
