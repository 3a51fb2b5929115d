import CryptoSupport
import Foundation
import GatewayConfig
import HTTPClientSupport
import XMLSupport

public enum SOAPNamespace {
    public static let envelope11 = "http://schemas.xmlsoap.org/soap/envelope/"
    public static let envelope12 = "http://www.w3.org/2003/05/soap-envelope"
    public static let wsse = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
    public static let wsu = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
    public static let passwordText = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
    public static let passwordDigest = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
    public static let base64Binary = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"

    public static func envelope(_ version: SOAPVersion) -> String { version == .v11 ? envelope11 : envelope12 }
}

/// WS-Security UsernameToken Profile 1.0 digest: Base64(SHA-1(nonce + created + password)), where nonce
/// is the raw nonce bytes and created/password are UTF-8.
public func usernameTokenDigest(nonce: [UInt8], created: String, password: String) -> String {
    Data(Digest.sha1(nonce + Array(created.utf8) + Array(password.utf8))).base64EncodedString()
}

/// The values one request is built from.
public struct SOAPRequestValues: Sendable {
    public var page: Int
    public var since: String
    public var now: Date
    public var nonce: [UInt8]

    public init(page: Int, since: String, now: Date, nonce: [UInt8]) {
        self.page = page
        self.since = since
        self.now = now
        self.nonce = nonce
    }
}

/// Builds SOAP requests from an adapter's settings: envelope, body template, security header, HTTP headers.
public struct SOAPRequestBuilder: Sendable {
    public let settings: SOAPSettings

    public init(settings: SOAPSettings) { self.settings = settings }

    /// WS-Security timestamps: UTC with milliseconds, as .NET WSE/WCF and WSS4J write them.
    public static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    /// The body template with every placeholder replaced by its XML-escaped value.
    public func renderBody(_ values: SOAPRequestValues) -> String {
        var substitutions = settings.parameters
        substitutions["page"] = String(values.page)
        substitutions["page_size"] = String(settings.pageSize)
        substitutions["since"] = values.since
        substitutions["username"] = settings.username
        substitutions["password"] = settings.password
        var output = ""
        var rest = Substring(settings.bodyTemplate)
        while let open = rest.range(of: "{{"), let close = rest[open.upperBound...].range(of: "}}") {
            output += rest[..<open.lowerBound]
            let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            output += xmlEscape(substitutions[name] ?? "")
            rest = rest[close.upperBound...]
        }
        return output + rest
    }

    /// The wsse:Security header block (empty unless a UsernameToken is configured).
    public func securityHeader(_ values: SOAPRequestValues) -> String {
        guard settings.authentication == .wsseText || settings.authentication == .wsseDigest else { return "" }
        let created = Self.timestamp(values.now)
        var header = "<wsse:Security xmlns:wsse=\"\(SOAPNamespace.wsse)\" xmlns:wsu=\"\(SOAPNamespace.wsu)\" soapenv:mustUnderstand=\"\(settings.version == .v11 ? "1" : "true")\">"
        if settings.wsseTimestamp {
            let expires = Self.timestamp(values.now.addingTimeInterval(settings.wsseTimestampTTL.timeInterval))
            header += "<wsu:Timestamp wsu:Id=\"TS-1\"><wsu:Created>\(created)</wsu:Created><wsu:Expires>\(expires)</wsu:Expires></wsu:Timestamp>"
        }
        header += "<wsse:UsernameToken wsu:Id=\"UsernameToken-1\"><wsse:Username>\(xmlEscape(settings.username))</wsse:Username>"
        if settings.authentication == .wsseDigest {
            let digest = usernameTokenDigest(nonce: values.nonce, created: created, password: settings.password)
            header += "<wsse:Password Type=\"\(SOAPNamespace.passwordDigest)\">\(digest)</wsse:Password>"
            header += "<wsse:Nonce EncodingType=\"\(SOAPNamespace.base64Binary)\">\(Data(values.nonce).base64EncodedString())</wsse:Nonce>"
            header += "<wsu:Created>\(created)</wsu:Created>"
        } else {
            header += "<wsse:Password Type=\"\(SOAPNamespace.passwordText)\">\(xmlEscape(settings.password))</wsse:Password>"
        }
        return header + "</wsse:UsernameToken></wsse:Security>"
    }

    /// The whole envelope, UTF-8. The configured `namespaces` are declared on the Envelope, so templates may
    /// use those prefixes without declaring them.
    public func envelope(_ values: SOAPRequestValues) -> String {
        var declarations = "xmlns:soapenv=\"\(SOAPNamespace.envelope(settings.version))\""
        for namespace in settings.namespaces where namespace.prefix != "soapenv" {
            declarations += " xmlns:\(namespace.prefix)=\"\(xmlEscape(namespace.uri))\""
        }
        let security = securityHeader(values)
        let header = security.isEmpty ? "" : "<soapenv:Header>\(security)</soapenv:Header>"
        return "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<soapenv:Envelope \(declarations)>\(header)<soapenv:Body>\(renderBody(values))</soapenv:Body></soapenv:Envelope>"
    }

    /// HTTP header fields: Content-Type (with the 1.2 action parameter), SOAPAction (1.1), Authorization (basic).
    public func headers() -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        switch settings.version {
        case .v11:
            headers.append(("Content-Type", "text/xml; charset=utf-8"))
            switch settings.actionStyle {
            case .quoted: headers.append(("SOAPAction", "\"\(settings.action)\""))
            case .unquoted: headers.append(("SOAPAction", settings.action))
            case .empty: headers.append(("SOAPAction", "\"\""))
            case .none: break
            }
        case .v12:
            var contentType = "application/soap+xml; charset=utf-8"
            if !settings.action.isEmpty && (settings.actionStyle == .quoted || settings.actionStyle == .unquoted) {
                contentType += "; action=\"\(settings.action)\""
            }
            headers.append(("Content-Type", contentType))
        }
        if settings.authentication == .basic {
            let token = Data("\(settings.username):\(settings.password)".utf8).base64EncodedString()
            headers.append(("Authorization", "Basic \(token)"))
        }
        headers.append(("Accept", settings.version == .v11 ? "text/xml" : "application/soap+xml"))
        return headers
    }

    public func request(_ values: SOAPRequestValues) -> HTTPRequest {
        .post(settings.url, headers: headers(), body: Array(envelope(values).utf8))
    }
}

extension Duration {
    var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}

/// Random bytes for WS-Security nonces (the system generator: getrandom on Linux).
public func randomNonce(count: Int = 16) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
}
