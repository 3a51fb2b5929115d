import CryptoSupport
import Foundation
import GatewayModel
import Journal
import XMLSupport

/// A package ready to be fixed: its exact request bytes, digest and members.
public struct BuiltPackage: Sendable {
    public let packageId: String
    public let n: Int64
    public let request: [UInt8]
    public let digest: String
    public let members: [PackageMember]
    /// Candidates the schema refused (held back locally with code X100, never sent).
    public let heldBack: [(member: PackageMember, code: String, field: String?, message: String)]
}

/// Why a package could not be built.
public struct PackageBuildError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { "package: \(message)" }
}

/// Builds SubmitPackage requests (spec §2). The Body carries one record per line, so that a schema error's
/// line number names the record at fault; the digest is the SM3 of libxml2's exclusive C14N of pui:Body as it
/// stands in the very bytes that are sent (parsed with whitespace preserved).
public struct PackageBuilder {
    public let sender: String
    public let receiver: String
    public let validator: XMLSchemaValidator
    public var maxRecords: Int = PUIWire.maxRecords
    public var maxBytes: Int = PUIWire.maxRequestBytes

    public init(sender: String, receiver: String, validator: XMLSchemaValidator) {
        self.sender = sender
        self.receiver = receiver
        self.validator = validator
    }

    static let placeholderDigest = String(repeating: "0", count: 64)

    /// The envelope text before the records and after them, for a package with `count` records.
    func frame(packageId: String, createdAt: String, count: Int) -> (head: String, tail: String) {
        let head = PUIWire.envelopeOpen
            + "<pui:SubmitPackage xmlns:pui=\"\(puiNamespace)\"><pui:Package version=\"1.0\"><pui:Head>"
            + "<pui:PackageId>\(packageId)</pui:PackageId><pui:Sender>\(xmlEscape(sender))</pui:Sender>"
            + "<pui:Receiver>\(xmlEscape(receiver))</pui:Receiver><pui:CreatedAt>\(createdAt)</pui:CreatedAt>"
            + "<pui:RecordCount>\(count)</pui:RecordCount><pui:Digest alg=\"SM3\">\(Self.placeholderDigest)</pui:Digest>"
            + "</pui:Head><pui:Body>\n"
        let tail = "</pui:Body></pui:Package></pui:SubmitPackage>" + PUIWire.envelopeClose
        return (head, tail)
    }

    /// Selects the leading entries that fit the record and byte limits.
    public func select(_ entries: [JournalEntry], packageId: String) -> [(entry: JournalEntry, xml: String)] {
        let frame = frame(packageId: packageId, createdAt: beijingTimestamp(Date()), count: maxRecords)
        var budget = maxBytes - frame.head.utf8.count - frame.tail.utf8.count
        var selected: [(JournalEntry, String)] = []
        for entry in entries.prefix(maxRecords) {
            let xml = NormalizedRecord(type: entry.type, key: entry.key, body: entry.body).wireXML(rev: entry.rev)
            let size = xml.utf8.count + 1
            if size > budget { break }
            budget -= size
            selected.append((entry, xml))
        }
        return selected
    }

    /// Builds, validates and digests a package from `candidates` (in journal order). Records the schema refuses
    /// are removed and reported in `heldBack`; returns nil when none is left.
    public func build(n: Int64, candidates: [(entry: JournalEntry, xml: String)], now: Date) throws(PackageBuildError) -> BuiltPackage? {
        let packageId = "\(sender)-\(n)"
        let createdAt = beijingTimestamp(now)
        var remaining = candidates
        var heldBack: [(member: PackageMember, code: String, field: String?, message: String)] = []
        func member(_ entry: JournalEntry, _ index: Int) -> PackageMember {
            PackageMember(index: index, seq: entry.seq, type: entry.type, key: entry.key, rev: entry.rev)
        }
        for _ in 0..<8 {
            guard !remaining.isEmpty else { return nil }
            let frame = frame(packageId: packageId, createdAt: createdAt, count: remaining.count)
            var text = frame.head
            var startLines: [Int] = []   // 1-based line where record i starts
            var line = frame.head.utf8.reduce(1) { $1 == 10 ? $0 + 1 : $0 }
            for (_, xml) in remaining {
                startLines.append(line)
                text += xml
                text += "\n"
                line += xml.utf8.reduce(1) { $1 == 10 ? $0 + 1 : $0 }
            }
            text += frame.tail
            var bytes = Array(text.utf8)
            let document: XMLDocument
            do { document = try XMLDocument(bytes: bytes, url: packageId, preserveWhitespace: true) } catch {
                throw PackageBuildError(message: "\(packageId) is not well-formed: \(error)")
            }
            let errors = validator.validate(document, element: "Package", namespace: puiNamespace)
            if !errors.isEmpty {
                // Map each error line to the record on it; anything unmapped means the frame itself is wrong.
                var bad = Set<Int>()
                for error in errors {
                    guard error.line > 0, let index = startLines.lastIndex(where: { $0 <= error.line }), error.line < line else {
                        throw PackageBuildError(message: "\(packageId) does not validate outside its records: \(error)")
                    }
                    if !bad.contains(index) {
                        bad.insert(index)
                        heldBack.append((member(remaining[index].entry, 0), "X100", nil, "not valid against pui-v1.xsd: \(error.message)"))
                    }
                }
                remaining = remaining.enumerated().filter { !bad.contains($0.offset) }.map(\.element)
                continue
            }
            let canonical: [UInt8]
            do { canonical = try document.exclusiveCanonicalForm(ofElement: "Body", namespace: puiNamespace) } catch {
                throw PackageBuildError(message: "\(packageId): canonicalization failed: \(error)")
            }
            let digest = Digest.sm3(canonical).hexString
            // Put the digest in place of the placeholder: same length, outside the Body, so the Body is unchanged.
            let marker = Array("<pui:Digest alg=\"SM3\">".utf8)
            guard let start = firstIndex(of: marker, in: bytes) else {
                throw PackageBuildError(message: "\(packageId): digest placeholder not found")
            }
            let offset = start + marker.count
            bytes.replaceSubrange(offset..<offset + 64, with: Array(digest.utf8))
            let members = remaining.enumerated().map { member($0.element.entry, $0.offset + 1) }
            return BuiltPackage(packageId: packageId, n: n, request: bytes, digest: digest, members: members, heldBack: heldBack)
        }
        throw PackageBuildError(message: "\(packageId): records keep failing validation")
    }

    private func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count, let first = needle.first else { return nil }
        var index = 0
        while index + needle.count <= haystack.count {
            if haystack[index] == first && Array(haystack[index..<index + needle.count]) == needle { return index }
            index += 1
        }
        return nil
    }
}
