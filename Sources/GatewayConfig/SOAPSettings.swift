import Foundation
import YAMLSupport

/// SOAP envelope version: 1.1 (`text/xml` + SOAPAction header) or 1.2 (`application/soap+xml; action=`).
public enum SOAPVersion: String, Sendable, CaseIterable {
    case v11 = "1.1"
    case v12 = "1.2"
}

/// How the SOAP action is sent. SOAP 1.1: `quoted` → `SOAPAction: "urn:x"` (what .NET ASMX expects),
/// `unquoted` → `SOAPAction: urn:x` (some Axis 1 services), `empty` → `SOAPAction: ""`, `none` → no header.
/// SOAP 1.2: `quoted`/`unquoted` put `action="…"` into the Content-Type; `empty`/`none` leave it out.
public enum SOAPActionStyle: String, Sendable, CaseIterable {
    case quoted, unquoted, empty, none
}

public enum SOAPAuthentication: String, Sendable, CaseIterable {
    case none
    /// HTTP basic authentication.
    case basic
    /// WS-Security UsernameToken with PasswordText.
    case wsseText = "wsse-text"
    /// WS-Security UsernameToken with PasswordDigest = Base64(SHA-1(nonce + created + password)).
    case wsseDigest = "wsse-digest"
}

public enum SOAPPaging: String, Sendable, CaseIterable {
    /// One call per poll.
    case none
    /// `{{page}}` counts up from `page_start` until a page comes back short or empty.
    case page
    /// `{{since}}` carries the watermark (the largest `since_field` seen); with `{{page}}` in the template too,
    /// one sweep pages through a fixed since value before the watermark moves.
    case since
}

/// Where the records are in the response.
public enum SOAPPayloadForm: String, Sendable, CaseIterable {
    /// In the envelope itself.
    case inline
    /// A whole XML document escaped as the text of the `payload_path` element.
    case escaped
    /// Base64 of a whole XML document's bytes (in the encoding its declaration names) in `payload_path`.
    case base64
}

/// What to do when a page's payload is refused (DTD/XXE, not well-formed, undecodable). It is quarantined
/// either way; `hold` keeps the watermark (the page is fetched again at the next poll), `skip` moves past it
/// (page paging only).
public enum SOAPRefusedPayloadRule: String, Sendable, CaseIterable {
    case hold, skip
}

/// The `soap:` section of an adapter file.
public struct SOAPSettings: Sendable {
    public var url: String
    public var version: SOAPVersion = .v11
    public var action: String = ""
    public var actionStyle: SOAPActionStyle = .quoted
    /// The content of soap:Body, with `{{page}}`, `{{page_size}}`, `{{since}}`, `{{username}}`,
    /// `{{password}}` and `{{NAME}}` for each `parameters` entry (values are XML-escaped when substituted).
    public var bodyTemplate: String
    public var parameters: [String: String] = [:]
    public var authentication: SOAPAuthentication = .none
    public var username: String = ""
    public var password: String = ""
    /// Add a wsu:Timestamp (Created/Expires) to the Security header.
    public var wsseTimestamp: Bool = false
    public var wsseTimestampTTL: Duration = .seconds(300)
    public var caFile: String?
    public var certificateFile: String?
    public var keyFile: String?
    public var keyPassphraseFile: String?
    public var insecurePlaintext: Bool = false
    public var connectTimeout: Duration = .seconds(10)
    public var timeout: Duration = .seconds(60)
    public var maxResponseBytes: Int = 16 << 20
    public var paging: SOAPPaging = .none
    public var pageStart: Int = 1
    public var pageSize: Int = 100
    public var maxPagesPerPoll: Int = 1000
    public var sinceInitial: String = "1970-01-01T00:00:00"
    /// The column (a key of `fields`) whose largest value becomes the since watermark.
    public var sinceField: String = ""
    public var namespaces: [(prefix: String, uri: String)] = []
    public var payload: SOAPPayloadForm = .inline
    public var payloadPath: String = ""
    public var onRefusedPayload: SOAPRefusedPayloadRule = .hold
    public var recordPath: String
    /// Source column name → XPath relative to a record, in file order (the mapping sees these columns).
    public var fields: [(column: String, path: String)]
    public var pollInterval: Duration = .seconds(60)
    public var retryBase: Duration = .seconds(5)
    public var retryCap: Duration = .seconds(600)

    public init(url: String, bodyTemplate: String, recordPath: String, fields: [(column: String, path: String)]) {
        self.url = url
        self.bodyTemplate = bodyTemplate
        self.recordPath = recordPath
        self.fields = fields
    }

    /// The placeholders a template may use besides `parameters`.
    public static let builtinPlaceholders = ["page", "page_size", "since", "username", "password"]
}

/// `{{name}}` placeholders of a template, in order of appearance.
public func templatePlaceholders(_ template: String) -> [String] {
    var names: [String] = []
    var rest = Substring(template)
    while let open = rest.range(of: "{{") {
        guard let close = rest[open.upperBound...].range(of: "}}") else { break }
        names.append(rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces))
        rest = rest[close.upperBound...]
    }
    return names
}

extension SOAPSettings {
    /// Reads a `soap:` section; problems are reported to the section's diagnostics.
    static func load(_ section: ConfigSection, base: String) -> SOAPSettings? {
        let d = section.diagnostics
        func line(_ key: String) -> Int { section.raw(key)?.mark.line ?? section.line }
        let url = section.string("url", required: true) ?? ""
        if !url.isEmpty && !url.hasPrefix("https://") && !url.hasPrefix("http://") {
            d.report(line: line("url"), key: section.qualified("url"), "must be an http(s) URL")
        }
        var template = section.string("request_template")
        if let file = section.string("request_template_file") {
            let path = resolvePath(file, relativeTo: base)
            if template != nil {
                d.report(line: line("request_template_file"), key: section.qualified("request_template_file"),
                         "give request_template or request_template_file, not both")
            }
            do {
                template = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                d.report(line: line("request_template_file"), key: section.qualified("request_template_file"),
                         "cannot read \(path)")
            }
        }
        if template == nil && !section.has("request_template_file") {
            d.report(line: section.line, key: section.qualified("request_template"), "required key is missing (or request_template_file)")
        }
        let recordPath = section.string("record_path", required: true) ?? ""
        var fields: [(column: String, path: String)] = []
        if let fieldSection = section.section("fields", required: true) {
            for entry in fieldSection.entries() {
                guard let path = fieldSection.scalarText(entry.value, key: entry.key) else { continue }
                if path.trimmingCharacters(in: .whitespaces).isEmpty {
                    d.report(line: entry.line, key: fieldSection.qualified(entry.key), "empty XPath")
                }
                fields.append((entry.key, path))
            }
            if fields.isEmpty {
                d.report(line: fieldSection.line, key: fieldSection.qualified(""), "at least one field is needed")
            }
        }
        var settings = SOAPSettings(url: url, bodyTemplate: template ?? "", recordPath: recordPath, fields: fields)
        settings.version = section.choice("version", SOAPVersion.allCases.map(\.rawValue)).flatMap(SOAPVersion.init) ?? .v11
        settings.action = section.string("action") ?? ""
        settings.actionStyle = section.choice("action_style", SOAPActionStyle.allCases.map(\.rawValue)).flatMap(SOAPActionStyle.init) ?? .quoted
        if let parameters = section.section("parameters") {
            for entry in parameters.entries() {
                if let value = parameters.scalarText(entry.value, key: entry.key) { settings.parameters[entry.key] = value }
                if SOAPSettings.builtinPlaceholders.contains(entry.key) {
                    d.report(line: entry.line, key: parameters.qualified(entry.key), "'\(entry.key)' is a built-in placeholder")
                }
            }
            parameters.rejectUnknownKeys()
        }
        settings.authentication = section.choice("auth", SOAPAuthentication.allCases.map(\.rawValue)).flatMap(SOAPAuthentication.init) ?? .none
        settings.username = section.string("username") ?? ""
        settings.password = section.string("password") ?? ""
        if settings.authentication != .none && settings.username.isEmpty {
            d.report(line: line("auth"), key: section.qualified("username"), "required when auth is \(settings.authentication.rawValue)")
        }
        settings.wsseTimestamp = section.boolean("wsse_timestamp") ?? false
        settings.wsseTimestampTTL = section.duration("wsse_timestamp_ttl") ?? .seconds(300)
        settings.caFile = section.string("ca_file").map { resolvePath($0, relativeTo: base) }
        settings.certificateFile = section.string("cert_file").map { resolvePath($0, relativeTo: base) }
        settings.keyFile = section.string("key_file").map { resolvePath($0, relativeTo: base) }
        settings.keyPassphraseFile = section.string("key_passphrase_file").map { resolvePath($0, relativeTo: base) }
        settings.insecurePlaintext = section.boolean("insecure_plaintext") ?? false
        if url.hasPrefix("http://") && !settings.insecurePlaintext {
            d.report(line: line("url"), key: section.qualified("url"), "plain http:// needs insecure_plaintext: true (tests only)")
        }
        settings.connectTimeout = section.duration("connect_timeout") ?? .seconds(10)
        settings.timeout = section.duration("timeout") ?? .seconds(60)
        settings.maxResponseBytes = section.integer("max_response_bytes", range: 1024...(1 << 30)) ?? (16 << 20)
        settings.paging = section.choice("paging", SOAPPaging.allCases.map(\.rawValue)).flatMap(SOAPPaging.init) ?? .none
        settings.pageStart = section.integer("page_start", range: 0...1_000_000) ?? 1
        settings.pageSize = section.integer("page_size", range: 1...100_000) ?? 100
        settings.maxPagesPerPoll = section.integer("max_pages_per_poll", range: 1...1_000_000) ?? 1000
        settings.sinceInitial = section.string("since_initial") ?? "1970-01-01T00:00:00"
        settings.sinceField = section.string("since_field") ?? ""
        if let namespaces = section.section("namespaces") {
            for entry in namespaces.entries() {
                if let uri = namespaces.scalarText(entry.value, key: entry.key) { settings.namespaces.append((entry.key, uri)) }
            }
        }
        settings.payload = section.choice("payload", SOAPPayloadForm.allCases.map(\.rawValue)).flatMap(SOAPPayloadForm.init) ?? .inline
        settings.payloadPath = section.string("payload_path") ?? ""
        if settings.payload != .inline && settings.payloadPath.isEmpty {
            d.report(line: line("payload"), key: section.qualified("payload_path"), "required when payload is \(settings.payload.rawValue)")
        }
        settings.onRefusedPayload = section.choice("on_refused_payload", SOAPRefusedPayloadRule.allCases.map(\.rawValue))
            .flatMap(SOAPRefusedPayloadRule.init) ?? .hold
        settings.pollInterval = section.duration("poll_interval") ?? .seconds(60)
        settings.retryBase = section.duration("retry_base") ?? .seconds(5)
        settings.retryCap = section.duration("retry_cap") ?? .seconds(600)

        // Cross-checks: placeholders known, paging needs its placeholder, since needs a since field.
        let known = Set(SOAPSettings.builtinPlaceholders + Array(settings.parameters.keys))
        let used = templatePlaceholders(settings.bodyTemplate)
        let templateKey = section.has("request_template") ? "request_template" : "request_template_file"
        for name in used where !known.contains(name) {
            d.report(line: line(templateKey), key: section.qualified(templateKey),
                     "unknown placeholder {{\(name)}} (known: \(known.sorted().joined(separator: ", ")))")
        }
        if settings.paging == .page && !used.contains("page") {
            d.report(line: line("paging"), key: section.qualified("paging"), "paging: page needs {{page}} in the request template")
        }
        if settings.paging == .since {
            if !used.contains("since") {
                d.report(line: line("paging"), key: section.qualified("paging"), "paging: since needs {{since}} in the request template")
            }
            if settings.sinceField.isEmpty {
                d.report(line: line("paging"), key: section.qualified("since_field"), "required when paging is since")
            } else if !settings.fields.contains(where: { $0.column == settings.sinceField }) {
                d.report(line: line("since_field"), key: section.qualified("since_field"),
                         "'\(settings.sinceField)' is not one of the fields")
            }
        }
        let prefixes = Set(settings.namespaces.map(\.prefix))
        for path in [settings.recordPath, settings.payloadPath] + settings.fields.map(\.path) {
            for prefix in xpathPrefixes(path) where !prefixes.contains(prefix) {
                d.report(line: line("namespaces"), key: section.qualified("namespaces"),
                         "prefix '\(prefix)' is used in '\(path)' but not declared")
            }
        }
        section.rejectUnknownKeys()
        return settings
    }
}

/// Namespace prefixes used in an XPath expression (`p:name`, not `::` axes or string literals).
func xpathPrefixes(_ path: String) -> Set<String> {
    var result = Set<String>()
    let characters = Array(path)
    var index = 0
    var inQuote: Character?
    while index < characters.count {
        let c = characters[index]
        if let quote = inQuote {
            if c == quote { inQuote = nil }
            index += 1
            continue
        }
        if c == "'" || c == "\"" { inQuote = c; index += 1; continue }
        if c == ":" {
            let isAxis = (index + 1 < characters.count && characters[index + 1] == ":") || (index > 0 && characters[index - 1] == ":")
            if !isAxis {
                var start = index
                while start > 0, characters[start - 1].isLetter || characters[start - 1].isNumber || characters[start - 1] == "_"
                        || characters[start - 1] == "-" || characters[start - 1] == "." {
                    start -= 1
                }
                if start < index { result.insert(String(characters[start..<index])) }
            }
        }
        index += 1
    }
    return result
}
