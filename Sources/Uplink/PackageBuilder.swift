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
    /// The journal seqs of its records, in Body order (record i of the Body is `memberSeqs[i - 1]`): what the
    /// store keeps of its membership; type, key and revision are the journal's.
    public let memberSeqs: [Int64]
    /// Where the records lie in `request` (each one's element and the LF after it): what the store leaves out,
    /// since the journal holds them (`envelope`, `PackageBuilder.records`).
    public let records: Range<Int>
    /// Candidates the schema refused (held back locally with code X100, never sent).
    public internal(set) var heldBack: [(member: PackageMember, code: String, field: String?, message: String)]
}

/// Why a package could not be built.
public struct PackageBuildError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { "package: \(message)" }
}

/// Builds SubmitPackage requests (spec §2).
///
/// The digest is the SM3 of the exclusive canonical form (exc-C14N 1.0, libxml2's reading) of pui:Body. The
/// Body is written so that its bytes already *are* that canonical form, apart from the namespace declaration
/// C14N adds on the apex element: records are stored with canonical text escaping (`xmlCanonicalTextEscape`),
/// each record element declares the default namespace followed by its attributes in C14N order (`op` before
/// `rev`), and the whitespace between records is a plain LF. So the digest is one SM3 pass over
/// `<pui:Body xmlns:pui="…">` + the Body's content + `</pui:Body>`: no parse, no C14N pass per package. Records
/// were validated against the schema when they entered the journal; `verify` additionally parses every
/// package back, validates it with libxml2's XSD engine and checks the digest against libxml2's C14N (records
/// the schema refuses are then held back with X100). Tests prove the fast path equal to libxml2's C14N.
public struct PackageBuilder {
    public let sender: String
    public let receiver: String
    public let validator: XMLSchemaValidator
    public var maxRecords: Int = PUIWire.maxRecords
    public var maxBytes: Int = PUIWire.maxRequestBytes
    /// Parse, XSD-validate and C14N every package with libxml2 as well (`verify_packages` in gateway.yaml).
    public var verify = false

    public init(sender: String, receiver: String, validator: XMLSchemaValidator) {
        self.sender = sender
        self.receiver = receiver
        self.validator = validator
    }

    static let placeholderDigest = String(repeating: "0", count: 64)
    static let digestMarker = Array("<pui:Digest alg=\"SM3\">".utf8)
    static let canonicalBodyOpen = Array("<pui:Body xmlns:pui=\"\(puiNamespace)\">".utf8)
    static let bodyClose = Array("</pui:Body>".utf8)

    /// The envelope text before the records and after them, for a package with `count` records. The head ends
    /// with `<pui:Body>` and the LF that starts the Body's content.
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

    /// A journal entry as a record element of the Body, in canonical form: `<Type xmlns="…" [op="delete"]
    /// rev="n">` + the stored content, as UTF-8. Bodies journaled before records used canonical escaping may
    /// hold `&quot;` or `&#13;`; those can only come from escaping (a literal `&` is `&amp;`), so they are
    /// rewritten to `"` and `&#xD;`.
    public static func canonicalRecordXML(_ entry: JournalEntry) -> [UInt8] {
        var xml = ByteAccumulator(capacity: entry.storedBody.count * 3 + 128)
        // A damaged body is never sent shortened: empty marks it for `build`, which holds it back.
        let complete = entry.storedBody.withUnsafeBufferPointer {
            appendCanonicalRecord(type: entry.type, rev: entry.rev, deleted: entry.deleted, storedBody: $0, to: &xml)
        }
        return complete ? xml.makeArray() : []
    }

    /// Appends a record's element in canonical form to `out`, decoding a compact stored body straight into it;
    /// false (and `out` as it was) when the stored body is damaged: it does not decode whole, or it is not a
    /// `<type>` element (a body the journal cannot have written; sent as it is, without `rev`, it would make the
    /// receiver refuse the whole package).
    static func appendCanonicalRecord(type: String, rev: Int64, deleted: Bool, storedBody: UnsafeBufferPointer<UInt8>,
                                      to out: inout ByteAccumulator) -> Bool {
        let start = out.count
        var type = type
        let complete = type.withUTF8 { name in
            // The attributes, on the stack: ` xmlns="…"`, ` op="delete"`, ` rev="n"`.
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: attributesCapacity) { space in
                var count = 0
                func put(_ bytes: [UInt8]) {
                    bytes.withUnsafeBufferPointer { source in
                        for byte in source {
                            space[count] = byte
                            count += 1
                        }
                    }
                }
                put(namespaceAttribute)
                if deleted { put(deleteAttribute) }
                put(revisionAttribute)
                put(decimal(rev))
                space[count] = 0x22
                count += 1
                let attributes = UnsafeBufferPointer(start: space.baseAddress, count: count)
                if storedBody.first == StoredBody.compactFormMarker {
                    return StoredBody.appendCompactRecord(of: storedBody, root: name, attributes: attributes, to: &out)
                }
                // Stored as XML: `<type>` and the content after it, with the attributes in between.
                let typeEnd = name.count + 1
                guard storedBody.count > typeEnd, storedBody[0] == 0x3C, storedBody[typeEnd] == 0x3E,
                      name.elementsEqual(UnsafeBufferPointer(rebasing: storedBody[1..<typeEnd])) else { return false }
                out.append(UnsafeBufferPointer(rebasing: storedBody[0..<typeEnd]))
                out.append(attributes)
                out.append(UnsafeBufferPointer(rebasing: storedBody[typeEnd...]))
                return true
            }
        }
        guard complete else { return false }
        rewriteEscapingOfOlderJournals(in: &out, from: start)
        return true
    }

    /// Room for the attributes `appendCanonicalRecord` writes (a revision has at most 20 characters).
    private static let attributesCapacity = namespaceAttribute.count + deleteAttribute.count + revisionAttribute.count + 21

    /// `&quot;` → `"` and `&#13;` → `&#xD;` in `out[start...]`, the one record just written (its start tag holds
    /// no `&`). memchr first: almost every record has no `&` at all.
    private static func rewriteEscapingOfOlderJournals(in out: inout ByteAccumulator, from start: Int) {
        let written: [UInt8]? = out.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress, buffer.count > start,
                  memchr(base + start, 0x26, buffer.count - start) != nil else { return nil }
            return Array(buffer[start...])
        }
        guard let written else { return }
        out.truncate(to: start)
        var index = 0
        while index < written.count {
            if written[index] == 0x26 {
                let rest = written[index...]
                if rest.starts(with: quotEntity) {
                    out.append(byte: 0x22)
                    index += quotEntity.count
                    continue
                }
                if rest.starts(with: decimalCR) {
                    out.append(hexCR)
                    index += decimalCR.count
                    continue
                }
            }
            out.append(byte: written[index])
            index += 1
        }
    }

    /// The decimal digits of `value` (a revision: never negative in a journal, but any Int64 is written right).
    private static func decimal(_ value: Int64) -> [UInt8] {
        guard value >= 0 && value < 10 else { return Array(String(value).utf8) }
        return singleDigits[Int(value)]
    }

    private static let singleDigits: [[UInt8]] = (0..<10).map { [0x30 + UInt8($0)] }

    private static let namespaceAttribute = Array(" xmlns=\"\(puiNamespace)\"".utf8)
    private static let deleteAttribute = Array(" op=\"delete\"".utf8)
    private static let revisionAttribute = Array(" rev=\"".utf8)
    private static let quotEntity = Array("&quot;".utf8)
    private static let decimalCR = Array("&#13;".utf8)
    private static let hexCR = Array("&#xD;".utf8)

    /// Selects the leading entries that fit the record and byte limits.
    /// A first entry too large for any package comes back alone with an empty `xml`, like a damaged one: `build`
    /// holds it back (X100) rather than the queue waiting on it for ever.
    public func select(_ entries: [JournalEntry], packageId: String) -> [(entry: JournalEntry, xml: [UInt8])] {
        let frame = frame(packageId: packageId, createdAt: beijingTimestamp(Date()), count: maxRecords)
        var budget = maxBytes - frame.head.utf8.count - frame.tail.utf8.count
        var selected: [(entry: JournalEntry, xml: [UInt8])] = []
        for entry in entries.prefix(maxRecords) {
            let xml = Self.canonicalRecordXML(entry)
            let size = xml.count + 1
            if size > budget {
                if selected.isEmpty { selected.append((entry: entry, xml: [])) }
                break
            }
            budget -= size
            selected.append((entry: entry, xml: xml))
        }
        return selected
    }

    /// Why a candidate `select` gave with an empty `xml` is held back.
    public func heldBackReason(_ entry: JournalEntry) -> String {
        let xml = Self.canonicalRecordXML(entry)
        guard xml.isEmpty else { return "the record alone exceeds the package limit of \(maxBytes) bytes (\(xml.count) bytes); not sent" }
        return "the journal's stored body of this record is damaged (it does not decode whole, or is not a <\(entry.type)> element); not sent"
    }

    /// Builds and digests a package from `candidates` (in journal order); nil when none is usable (all damaged or
    /// too large, or, with `verify`, refused by the schema).
    public func build(n: Int64, candidates: [(entry: JournalEntry, xml: [UInt8])], now: Date) throws(PackageBuildError) -> BuiltPackage? {
        // A record whose stored body did not decode (empty form, see `canonicalRecordXML`) is held back, never sent.
        let damaged = candidates.filter { $0.xml.isEmpty }
        let usable = damaged.isEmpty ? candidates : candidates.filter { !$0.xml.isEmpty }
        let built = verify ? try buildVerified(n: n, candidates: usable, now: now) : try buildFast(n: n, candidates: usable, now: now)
        guard var built, !damaged.isEmpty else { return built }
        built.heldBack += damaged.map { (Self.member($0.entry, 0), "X100", nil, heldBackReason($0.entry)) }
        return built
    }

    private func buildFast(n: Int64, candidates: [(entry: JournalEntry, xml: [UInt8])], now: Date) throws(PackageBuildError) -> BuiltPackage? {
        guard !candidates.isEmpty else { return nil }
        let packageId = "\(sender)-\(n)"
        let frame = frame(packageId: packageId, createdAt: beijingTimestamp(now), count: candidates.count)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(frame.head.utf8.count + frame.tail.utf8.count + candidates.reduce(0) { $0 + $1.xml.count + 1 })
        bytes.append(contentsOf: frame.head.utf8)
        let contentStart = bytes.count - 1   // the LF after <pui:Body>
        for (_, xml) in candidates {
            bytes.append(contentsOf: xml)
            bytes.append(10)
        }
        let contentEnd = bytes.count
        bytes.append(contentsOf: frame.tail.utf8)
        let digest = Self.bodyDigest(bytes[contentStart..<contentEnd])
        try Self.placeDigest(digest, in: &bytes, packageId: packageId)
        return BuiltPackage(packageId: packageId, n: n, request: bytes, digest: digest, memberSeqs: candidates.map(\.entry.seq),
                            records: contentStart + 1..<contentEnd, heldBack: [])
    }

    /// `select` and `build` in one pass, for the uplink's hot path: each record is written straight into the
    /// request, with no array of its own. Nil when there are no entries or the first does not fit, and when
    /// one of the records taken has a damaged stored body: the caller then takes `select` and `build`, which
    /// hold such records back and say why. Otherwise the same bytes as `build(select(entries))` with the same
    /// `now` (a test holds the two paths equal). Never checked by libxml2: not for `verify`.
    public func buildDirect(n: Int64, entries: [JournalEntry], now: Date) throws(PackageBuildError) -> BuiltPackage? {
        guard !verify, !entries.isEmpty else { return nil }
        var composer = DirectComposer(builder: self, n: n, now: now, expectedCount: min(maxRecords, entries.count))
        // Entries by index: a for-in (or a closure over them) copies each entry, a retain and a release of its
        // five references.
        for index in 0..<min(maxRecords, entries.count) {
            let added = entries[index].storedBody.withUnsafeBufferPointer {
                composer.add(seq: entries[index].seq, type: entries[index].type, rev: entries[index].rev,
                             deleted: entries[index].deleted, storedBody: $0)
            }
            if added == .damaged { return nil }
            if added == .full { break }
        }
        return try composer.finish()
    }

    /// `buildDirect` of the journal entries after `after` (of `types` only, when given), read from `journal`
    /// without an entry or a copy of a body per record: the uplink's path (its pre-builder's, and its own when
    /// that has nothing for it). Nil in the same cases as `buildDirect`, and when the journal cannot be read.
    public func buildDirect(n: Int64, from journal: Journal, after: Int64, types: [String]?, now: Date) throws(PackageBuildError) -> BuiltPackage? {
        guard !verify else { return nil }
        var composer = DirectComposer(builder: self, n: n, now: now, expectedCount: maxRecords)
        var damaged = false
        do {
            try journal.forEachEntry(after: after, limit: maxRecords, types: types) { entry in
                switch composer.add(seq: entry.seq, type: entry.type, rev: entry.rev, deleted: entry.deleted, storedBody: entry.storedBody) {
                case .added: return true
                case .full: return false
                case .damaged:
                    damaged = true
                    return false
                }
            }
        } catch {
            return nil
        }
        return damaged ? nil : try composer.finish()
    }

    /// Writes records one after the other into a request, within the record and byte limits.
    struct DirectComposer: ~Copyable {
        enum Added { case added, full, damaged }

        private let builder: PackageBuilder
        private let packageId: String
        private let n: Int64
        private let createdAt: String
        private let headCount: Int
        private let expectedCount: Int
        private var budget: Int
        private var bytes: ByteAccumulator
        private var seqs: [Int64] = []

        /// `expectedCount`: the records the head is first written for (a package with another count gets its
        /// head replaced at the end).
        init(builder: PackageBuilder, n: Int64, now: Date, expectedCount: Int) {
            self.builder = builder
            self.n = n
            packageId = "\(builder.sender)-\(n)"
            createdAt = beijingTimestamp(now)
            self.expectedCount = expectedCount
            // The byte budget as `select` reckons it: with the widest RecordCount.
            let widest = builder.frame(packageId: packageId, createdAt: createdAt, count: builder.maxRecords)
            budget = builder.maxBytes - widest.head.utf8.count - widest.tail.utf8.count
            let head = builder.frame(packageId: packageId, createdAt: createdAt, count: expectedCount).head
            headCount = head.utf8.count
            // A typical package is well under 1 MiB; a larger one grows the buffer a few times.
            bytes = ByteAccumulator(capacity: min(builder.maxBytes + 4096, 1 << 20))
            bytes.append(head)   // ends with the LF that starts the Body's content
            seqs.reserveCapacity(expectedCount)
        }

        /// Writes one record when it fits; `.full` (nothing written) when it does not, `.damaged` when its stored
        /// body does not decode whole or is not a `<type>` element.
        mutating func add(seq: Int64, type: String, rev: Int64, deleted: Bool, storedBody: UnsafeBufferPointer<UInt8>) -> Added {
            guard seqs.count < builder.maxRecords else { return .full }
            let start = bytes.count
            guard PackageBuilder.appendCanonicalRecord(type: type, rev: rev, deleted: deleted, storedBody: storedBody, to: &bytes) else {
                return .damaged
            }
            bytes.append(byte: 10)
            let size = bytes.count - start
            guard size <= budget else {
                bytes.truncate(to: start)
                return .full
            }
            budget -= size
            seqs.append(seq)
            return .added
        }

        /// The package of the records added, digested (nil when none was).
        mutating func finish() throws(PackageBuildError) -> BuiltPackage? {
            guard !seqs.isEmpty else { return nil }
            var contentEnd = bytes.count
            bytes.append(builder.frame(packageId: packageId, createdAt: createdAt, count: seqs.count).tail)
            var request = bytes.makeArray()
            var contentStart = headCount - 1   // the LF after <pui:Body>
            if seqs.count != expectedCount {
                let head = builder.frame(packageId: packageId, createdAt: createdAt, count: seqs.count).head
                request.replaceSubrange(0..<headCount, with: head.utf8)
                contentStart = head.utf8.count - 1
                contentEnd += head.utf8.count - headCount
            }
            let digest = PackageBuilder.bodyDigest(request[contentStart..<contentEnd])
            try PackageBuilder.placeDigest(digest, in: &request, packageId: packageId)
            return BuiltPackage(packageId: packageId, n: n, request: request, digest: digest, memberSeqs: seqs,
                                records: contentStart + 1..<contentEnd, heldBack: [])
        }
    }

    /// The request without its records: what the store keeps of a package until it is resolved. The records
    /// are the journal's, which never changes a record it holds; `request(envelope:recordsAt:digest:entries:)`
    /// puts them back.
    public static func envelope(of built: BuiltPackage) -> [UInt8] {
        Array(built.request[..<built.records.lowerBound]) + built.request[built.records.upperBound...]
    }

    /// The request a stored envelope was cut from: the records of `entries` (the package's members, in Body
    /// order) written back at `recordsAt` as the builders write them, and checked against the digest fixed with
    /// the package, so that a resend is the very bytes of the first send or nothing. The reason when they cannot
    /// be put back that way (a member missing from the journal, a damaged stored body, another digest).
    public static func request(envelope: [UInt8], recordsAt offset: Int, digest: String,
                               entries: [JournalEntry]) -> Result<[UInt8], PackageBuildError> {
        guard offset > 0, offset <= envelope.count else {
            return .failure(PackageBuildError(message: "the stored envelope has no place for records at byte \(offset)"))
        }
        var written = ByteAccumulator(capacity: envelope.count + entries.reduce(0) { $0 + $1.storedBody.count * 3 })
        envelope.withUnsafeBufferPointer { written.append(UnsafeBufferPointer(rebasing: $0[..<offset])) }
        for entry in entries {
            let complete = entry.storedBody.withUnsafeBufferPointer {
                appendCanonicalRecord(type: entry.type, rev: entry.rev, deleted: entry.deleted, storedBody: $0, to: &written)
            }
            guard complete else {
                return .failure(PackageBuildError(message: "the stored body of record seq \(entry.seq) (\(entry.type)) does not decode whole"))
            }
            written.append(byte: 10)
        }
        let recordsEnd = written.count
        envelope.withUnsafeBufferPointer { written.append(UnsafeBufferPointer(rebasing: $0[offset...])) }
        let request = written.makeArray()
        // The Body's content starts with the LF before the first record, the last byte of the envelope's head.
        guard bodyDigest(request[(offset - 1)..<recordsEnd]) == digest else {
            return .failure(PackageBuildError(message: "the records read back from the journal do not give the package's digest \(digest)"))
        }
        return .success(request)
    }

    /// SM3 of the canonical form of a Body whose content (between its tags) is already canonical.
    static func bodyDigest(_ content: ArraySlice<UInt8>) -> String {
        // Streamed: the Body's canonical tags around the content as it lies in the request, without a copy.
        guard let digest = try? StreamingDigest(.sm3) else {
            var canonical = canonicalBodyOpen
            canonical.append(contentsOf: content)
            canonical.append(contentsOf: bodyClose)
            return Digest.sm3(canonical).hexString
        }
        digest.update(canonicalBodyOpen)
        content.withUnsafeBytes { digest.update($0) }
        digest.update(bodyClose)
        return digest.finish().hexString
    }

    static func member(_ entry: JournalEntry, _ index: Int) -> PackageMember {
        PackageMember(index: index, seq: entry.seq, type: entry.type, key: entry.key, rev: entry.rev)
    }

    /// Puts the digest in place of the placeholder: same length, outside the Body, so the Body is unchanged.
    static func placeDigest(_ digest: String, in bytes: inout [UInt8], packageId: String) throws(PackageBuildError) {
        guard let start = firstIndex(of: digestMarker, in: bytes) else {
            throw PackageBuildError(message: "\(packageId): digest placeholder not found")
        }
        let offset = start + digestMarker.count
        bytes.replaceSubrange(offset..<offset + 64, with: Array(digest.utf8))
    }

    /// The libxml2 path: the Body carries one record per line, so that a schema error's line number names the
    /// record at fault; the digest is checked against libxml2's exclusive C14N of the very bytes sent.
    func buildVerified(n: Int64, candidates: [(entry: JournalEntry, xml: [UInt8])], now: Date) throws(PackageBuildError) -> BuiltPackage? {
        let packageId = "\(sender)-\(n)"
        var remaining = candidates
        var heldBack: [(member: PackageMember, code: String, field: String?, message: String)] = []
        for _ in 0..<8 {
            guard !remaining.isEmpty else { return nil }
            var fast = self
            fast.verify = false
            guard var built = try fast.buildFast(n: n, candidates: remaining, now: now) else { return nil }
            let frame = frame(packageId: packageId, createdAt: beijingTimestamp(now), count: remaining.count)
            var startLines: [Int] = []   // 1-based line where record i starts
            var line = frame.head.utf8.reduce(1) { $1 == 10 ? $0 + 1 : $0 }
            for (_, xml) in remaining {
                startLines.append(line)
                line += xml.reduce(1) { $1 == 10 ? $0 + 1 : $0 }
            }
            let document: XMLDocument
            do { document = try XMLDocument(bytes: built.request, url: packageId, preserveWhitespace: true) } catch {
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
                        heldBack.append((Self.member(remaining[index].entry, 0), "X100", nil, "not valid against pui-v1.xsd: \(error.message)"))
                    }
                }
                remaining = remaining.enumerated().filter { !bad.contains($0.offset) }.map(\.element)
                continue
            }
            let canonical: [UInt8]
            do { canonical = try document.exclusiveCanonicalForm(ofElement: "Body", namespace: puiNamespace) } catch {
                throw PackageBuildError(message: "\(packageId): canonicalization failed: \(error)")
            }
            guard Digest.sm3(canonical).hexString == built.digest else {
                throw PackageBuildError(message: "\(packageId): the assembled Body is not in canonical form (digest differs from libxml2's C14N); not sent")
            }
            built.heldBack = heldBack
            return built
        }
        throw PackageBuildError(message: "\(packageId): records keep failing validation")
    }

    private static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count, let first = needle.first else { return nil }
        var index = 0
        while index + needle.count <= haystack.count {
            if haystack[index] == first && haystack[index..<index + needle.count].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}
