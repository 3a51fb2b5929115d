import Foundation
import XMLSupport

/// The PUI namespace.
public let puiNamespace = "urn:cn-esup:pui:1"

/// A problem found in the schema file itself (esgate refuses to start on it).
public struct SchemaError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { "schema: \(message)" }
}

/// The built-in XSD types the PUI schema derives from.
public enum BuiltinType: String, Sendable {
    case string, decimal, integer, nonNegativeInteger, positiveInteger, dateTime, date, gYear, boolean, anyURI

    /// XSD whiteSpace facet: strings preserve whitespace, every other built-in here collapses it.
    var collapsesWhitespace: Bool { self != .string }
}

/// A simple type with all facets of its derivation chain folded together.
/// A class so that the per-value hot path shares one instance instead of copying its arrays;
/// it is mutated only while the schema loads and is read-only afterwards.
public final class SimpleType: @unchecked Sendable {
    public var name: String
    public var builtin: BuiltinType
    /// Patterns of each derivation step; a value must match one pattern of every step (XSD 1.0 §4.3.4).
    public var patternSteps: [[PatternFacet]] = []
    public var enumeration: [String]?
    public var minLength: Int?
    public var maxLength: Int?
    public var fractionDigits: Int?
    public var totalDigits: Int?
    public var minInclusive: String?
    public var maxInclusive: String?

    init(name: String, builtin: BuiltinType) {
        self.name = name
        self.builtin = builtin
    }

    func copy() -> SimpleType {
        let other = SimpleType(name: name, builtin: builtin)
        other.patternSteps = patternSteps
        other.enumeration = enumeration
        other.minLength = minLength
        other.maxLength = maxLength
        other.fractionDigits = fractionDigits
        other.totalDigits = totalDigits
        other.minInclusive = minInclusive
        other.maxInclusive = maxInclusive
        return other
    }
}

/// One child element in a complex type's sequence.
public struct ElementDeclaration: Sendable {
    public enum Content: Sendable {
        case simple(SimpleType)
        case complex(String)
    }
    public var name: String
    public var content: Content
    public var minOccurs: Int
    public var maxOccurs: Int
}

/// A record type of the PUI Body: its element sequence and its key fields (from the schema annotation).
public struct RecordType: Sendable {
    public var name: String
    public var elements: [ElementDeclaration]
    public var keyFields: [String]
    /// The element tree flattened in document order, with tags prebuilt (serialization runs per record).
    var steps: [SerializationStep] = []
    /// For each key field, the index of its leaf in `steps` (nil when it is not a top-level leaf).
    var keyStepIndices: [Int?] = []
}

/// One step of writing a record: a leaf element, or the start/end of a nested group (Person, Staff).
/// A class, shared rather than copied on the per-record path; `kind` is patched only while flattening.
final class SerializationStep: @unchecked Sendable {
    init(kind: Kind, path: String, openTag: String, closeTag: String, minOccurs: Int) {
        self.kind = kind
        self.path = path
        self.openTag = openTag
        self.closeTag = closeTag
        self.minOccurs = minOccurs
        openTagBytes = Array(openTag.utf8)
        closeTagBytes = Array(closeTag.utf8)
        // Element names are ASCII in practice; then a byte comparison decides prefix questions exactly.
        pathIsPlainASCII = path.utf8.allSatisfy { $0 < 0x80 && $0 != 0x0D }
        if case .leaf(let type) = kind { fastCheck = FastValueCheck(type) } else { fastCheck = nil }
    }
    enum Kind: Sendable {
        case leaf(SimpleType)
        /// `end` is the index of the matching `.groupEnd`, to skip an absent optional group.
        case groupStart(end: Int)
        case groupEnd
    }
    var kind: Kind
    /// Dotted path, e.g. `Applicant.IdNumber`; for groups the prefix with a trailing dot.
    let path: String
    let openTag: String
    let closeTag: String
    let minOccurs: Int
    /// The tags as bytes: records are assembled as UTF-8 bytes.
    let openTagBytes: [UInt8]
    let closeTagBytes: [UInt8]
    /// The path has only ASCII characters and no CR: prefix tests against other ASCII paths can compare bytes.
    let pathIsPlainASCII: Bool
    /// The allocation-free acceptance test of a leaf's type (nil for groups, or when the type has no fast form).
    let fastCheck: FastValueCheck?
    /// The element's name as UTF-8, from the bytes of its start tag `<name>` (empty for a group's end).
    var elementNameBytes: [UInt8] { openTagBytes.count >= 2 ? Array(openTagBytes.dropFirst().dropLast()) : [] }
}

extension PUISchema {
    static func flatten(_ elements: [ElementDeclaration], prefix: String, complexTypes: [String: [ElementDeclaration]],
                        into steps: inout [SerializationStep]) {
        for element in elements {
            let path = prefix + element.name
            switch element.content {
            case .simple(let type):
                steps.append(SerializationStep(kind: .leaf(type), path: path, openTag: "<\(element.name)>",
                                               closeTag: "</\(element.name)>", minOccurs: element.minOccurs))
            case .complex(let name):
                let start = steps.count
                steps.append(SerializationStep(kind: .groupStart(end: 0), path: path + ".", openTag: "<\(element.name)>",
                                               closeTag: "</\(element.name)>", minOccurs: element.minOccurs))
                flatten(complexTypes[name] ?? [], prefix: path + ".", complexTypes: complexTypes, into: &steps)
                steps.append(SerializationStep(kind: .groupEnd, path: path + ".", openTag: "", closeTag: "</\(element.name)>",
                                               minOccurs: element.minOccurs))
                steps[start].kind = .groupStart(end: steps.count - 1)
            }
        }
    }
}

/// The PUI schema as esgate uses it: parsed once from the shipped XSD (the authority), then used to order,
/// validate and serialize records without a libxml2 round trip per record.
public final class PUISchema: Sendable {
    public let recordTypes: [String: RecordType]
    public let complexTypes: [String: [ElementDeclaration]]
    /// The XSD text it was built from (used by differential tests and the uplink's full validation).
    public let schemaText: String

    /// The schema shipped inside esgate (schema/pui-v1.xsd).
    public static func shipped() throws(SchemaError) -> PUISchema {
        try PUISchema(xsd: embeddedPUISchema)
    }

    public init(xsd: String) throws(SchemaError) {
        schemaText = xsd
        let root: XMLElement
        do {
            guard let parsed = try XMLDocument(text: xsd).root else { throw SchemaError(message: "empty schema") }
            root = parsed
        } catch let error as XMLError {
            throw SchemaError(message: error.description)
        } catch {
            throw SchemaError(message: "\(error)")
        }
        var loader = SchemaLoader(root: root)
        guard let bodyType = root.children.first(where: { $0.name == "complexType" && $0.attribute("name") == "Body" }),
              let choice = bodyType.child("choice") else {
            throw SchemaError(message: "no complexType Body with a choice of records")
        }
        // Only the record types of the Body and the complex types they use (Person, Staff) are needed.
        var complex: [String: [ElementDeclaration]] = [:]
        var keys: [String: [String]] = [:]
        var pending = choice.children("element").compactMap { $0.attribute("type").map(stripPrefix) }
        while let name = pending.popLast() {
            guard complex[name] == nil else { continue }
            guard let node = root.children.first(where: { $0.name == "complexType" && $0.attribute("name") == name }) else {
                throw SchemaError(message: "complexType \(name) is referenced but not defined")
            }
            let sequence = try loader.sequence(of: node)
            complex[name] = sequence
            for element in sequence { if case .complex(let child) = element.content { pending.append(child) } }
            if let documentation = node.child("annotation")?.child("documentation")?.text {
                keys[name] = Self.keyFields(in: documentation)
            }
        }
        var records: [String: RecordType] = [:]
        for element in choice.children("element") {
            guard let name = element.attribute("name"), let type = element.attribute("type").map(stripPrefix),
                  let sequence = complex[type] else { continue }
            guard let keyFields = keys[type], !keyFields.isEmpty else {
                throw SchemaError(message: "record type \(name) has no 'Key:' in its annotation")
            }
            var steps: [SerializationStep] = []
            Self.flatten(sequence, prefix: "", complexTypes: complex, into: &steps)
            let keySteps = keyFields.map { field in
                steps.firstIndex { step in
                    if case .leaf = step.kind { return step.path == field }
                    return false
                }
            }
            records[name] = RecordType(name: name, elements: sequence, keyFields: keyFields, steps: steps, keyStepIndices: keySteps)
        }
        recordTypes = records
        complexTypes = complex
    }

    /// "… Key: CaseNo, StepCode, HandledAt. …" → ["CaseNo", "StepCode", "HandledAt"]
    static func keyFields(in documentation: String) -> [String]? {
        guard let start = documentation.range(of: "Key: ") else { return nil }
        let rest = documentation[start.upperBound...]
        let end = rest.firstIndex(of: ".") ?? rest.endIndex
        return rest[..<end].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    }
}

func stripPrefix(_ qualified: String) -> String {
    guard let colon = qualified.firstIndex(of: ":") else { return qualified }
    return String(qualified[qualified.index(after: colon)...])
}

private struct SchemaLoader {
    let root: XMLElement
    var namedSimpleTypes: [String: SimpleType] = [:]

    init(root: XMLElement) { self.root = root }

    mutating func sequence(of complexType: XMLElement) throws(SchemaError) -> [ElementDeclaration] {
        guard let sequence = complexType.child("sequence") else { return [] }
        var result: [ElementDeclaration] = []
        for element in sequence.children("element") {
            guard let name = element.attribute("name") else { continue }
            let minOccurs = Int(element.attribute("minOccurs") ?? "1") ?? 1
            let maxText = element.attribute("maxOccurs") ?? "1"
            let maxOccurs = maxText == "unbounded" ? Int.max : (Int(maxText) ?? 1)
            let content: ElementDeclaration.Content
            if let type = element.attribute("type") {
                if type.hasPrefix("xs:") {
                    content = .simple(try builtinType(type))
                } else {
                    let local = stripPrefix(type)
                    if let simple = try simpleType(named: local) {
                        content = .simple(simple)
                    } else {
                        content = .complex(local)
                    }
                }
            } else if let anonymous = element.child("simpleType") {
                content = .simple(try simpleType(from: anonymous, name: name))
            } else {
                throw SchemaError(message: "element \(name) at line \(element.line) has no type esgate understands")
            }
            result.append(ElementDeclaration(name: name, content: content, minOccurs: minOccurs, maxOccurs: maxOccurs))
        }
        return result
    }

    func builtinType(_ qualified: String) throws(SchemaError) -> SimpleType {
        guard let builtin = BuiltinType(rawValue: stripPrefix(qualified)) else {
            throw SchemaError(message: "unsupported built-in type \(qualified)")
        }
        return SimpleType(name: qualified, builtin: builtin)
    }

    mutating func simpleType(named name: String) throws(SchemaError) -> SimpleType? {
        if let known = namedSimpleTypes[name] { return known }
        guard let node = root.children.first(where: { $0.name == "simpleType" && $0.attribute("name") == name }) else {
            return nil
        }
        let type = try simpleType(from: node, name: "pui:" + name)
        namedSimpleTypes[name] = type
        return type
    }

    mutating func simpleType(from node: XMLElement, name: String) throws(SchemaError) -> SimpleType {
        guard let restriction = node.child("restriction"), let base = restriction.attribute("base") else {
            throw SchemaError(message: "simpleType \(name) at line \(node.line) is not a restriction")
        }
        let type: SimpleType
        if base.hasPrefix("xs:") {
            type = try builtinType(base)
        } else if let parent = try simpleType(named: stripPrefix(base)) {
            type = parent.copy()
        } else {
            throw SchemaError(message: "simpleType \(name): unknown base \(base)")
        }
        type.name = name
        var patterns: [PatternFacet] = []
        var enumeration: [String] = []
        for facet in restriction.children {
            let value = facet.attribute("value") ?? ""
            switch facet.name {
            case "pattern":
                do { patterns.append(try PatternFacet(value)) } catch {
                    throw SchemaError(message: "simpleType \(name): \(error)")
                }
            case "enumeration": enumeration.append(value)
            case "minLength": type.minLength = Int(value)
            case "maxLength": type.maxLength = Int(value)
            case "length": type.minLength = Int(value); type.maxLength = Int(value)
            case "fractionDigits": type.fractionDigits = Int(value)
            case "totalDigits": type.totalDigits = Int(value)
            case "minInclusive": type.minInclusive = value
            case "maxInclusive": type.maxInclusive = value
            case "annotation": continue
            default:
                throw SchemaError(message: "simpleType \(name): facet \(facet.name) is not supported by esgate's validator")
            }
        }
        if !patterns.isEmpty { type.patternSteps.append(patterns) }
        if !enumeration.isEmpty { type.enumeration = enumeration }
        return type
    }
}
