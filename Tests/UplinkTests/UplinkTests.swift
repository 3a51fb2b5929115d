import CertificateSupport
import CryptoSupport
import Foundation
import GatewayModel
import HTTPClientSupport
import HTTPServerSupport
import Journal
import SandboxReceiver
import SQLiteSupport
import Synchronization
import TestSupport
import Testing
import Uplink
import XMLSupport

/// Text that a builder must write in canonical form: XML's special characters, line ends, tabs, non-ASCII
/// (full-width, outside the BMP), empty, and long enough to end packages by their byte limit.
let builderTestTexts = ["A&B <c> d>e", "say \"hi\" & 'bye'", "line\r\nbreak\ttab\rcr", "中文（全角）　空格 ∑ 𠀀", "", String(repeating: "长", count: 300)]

/// Records T0… with each of `texts` as ItemName (`rounds` revisions of each), a record escaped the way records
/// were before canonical escaping (journals of earlier versions), and a deletion of T0.
func journalTextRecords(_ journal: Journal, texts: [String], rounds: Int) throws {
    try journal.batch {
        for round in 0..<rounds {
            for (index, text) in texts.enumerated() {
                let body = "<Application><CaseNo>T\(index)</CaseNo><ItemName>\(xmlCanonicalTextEscape(text))</ItemName>"
                    + "<Applicant><Name>n\(round)</Name></Applicant></Application>"
                _ = try journal.append(NormalizedRecord(type: "Application", key: "T\(index)", body: body), source: "t", origin: nil, line: index)
            }
        }
        _ = try journal.append(NormalizedRecord(type: "Application", key: "L1",
                                                body: "<Application><CaseNo>L1</CaseNo><ItemName>&quot;q&quot; a&#13;b &amp;quot;</ItemName></Application>"),
                               source: "t", origin: nil, line: 0)
        _ = try journal.appendDeletion(type: "Application", key: "T0", source: "t", origin: nil)
    }
}

@Suite struct DigestAndPackageTests {
    @Test func specExampleDigestVector() throws {
        let bytes = try #require(FileManager.default.contents(atPath: fixture("package.xml")))
        let expected = try #require(FileManager.default.contents(atPath: fixture("package-body.c14n")))
        let document = try XMLDocument(bytes: Array(bytes), preserveWhitespace: true)
        let canonical = try document.exclusiveCanonicalForm(ofElement: "Body", namespace: puiNamespace)
        #expect(canonical == Array(expected))
        #expect(Digest.sm3(canonical).hexString == "d361cfd383424b38878dde7571717d44de1f6a07692c7f30917a7c671dd047be")
        #expect(Digest.sm3("abc").hexString == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
        #expect(try makeValidator().validate(document).isEmpty)
    }

    @Test func builtPackageIsValidAndItsDigestIsTheBodysSM3() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 5)
        let journal = try Journal(path: environment.journalPath)
        let builder = PackageBuilder(sender: "410103", receiver: "410000", validator: try makeValidator())
        let candidates = builder.select(try journal.entries(after: 0), packageId: "410103-1")
        let built = try #require(try builder.build(n: 1, candidates: candidates, now: Date()))
        #expect(built.packageId == "410103-1")
        #expect(built.memberSeqs.count == 5)
        let document = try XMLDocument(bytes: built.request, preserveWhitespace: true)
        #expect(try makeValidator().validate(document, element: "Package", namespace: puiNamespace).isEmpty)
        let canonical = try document.exclusiveCanonicalForm(ofElement: "Body", namespace: puiNamespace)
        #expect(Digest.sm3(canonical).hexString == built.digest)
        #expect(String(decoding: built.request, as: UTF8.self).contains("<pui:Digest alg=\"SM3\">\(built.digest)</pui:Digest>"))
    }

    /// A record whose stored (compact) body no longer decodes whole is held back with X100, never sent shortened.
    @Test func aDamagedStoredBodyIsHeldBackNotSentShortened() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 3)
        try rewriteStoredBody(path: environment.journalPath, seq: 2) { Array($0.dropLast(4)) }
        let journal = try Journal(path: environment.journalPath)
        let builder = PackageBuilder(sender: "410103", receiver: "410000", validator: try makeValidator())
        let candidates = builder.select(try journal.entries(after: 0), packageId: "410103-1")
        let built = try #require(try builder.build(n: 1, candidates: candidates, now: Date()))
        #expect(built.memberSeqs == [1, 3])
        #expect(built.heldBack.map(\.member.seq) == [2])
        #expect(built.heldBack.first?.code == "X100")
        let document = try XMLDocument(bytes: built.request, preserveWhitespace: true)
        #expect(try makeValidator().validate(document, element: "Package", namespace: puiNamespace).isEmpty)
    }

    /// The package Body is assembled as text and digested without libxml2: prove the digest equals SM3 of
    /// libxml2's exclusive C14N of the Body as parsed from the bytes sent, for text that C14N rewrites
    /// (&, <, >, CR, quotes, tabs, line breaks, non-ASCII), for legacy bodies with `&quot;`/`&#13;`, and for
    /// op="delete" records.
    @Test func assembledBodyDigestEqualsLibxml2C14N() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        let journal = try Journal(path: environment.journalPath, durable: false)
        let texts = ["A&B <c> d>e", "say \"hi\" & 'bye'", "line\r\nbreak\ttab\rcr", "中文（全角）　空格 ∑ 𠀀", "]]> end", "  lead and trail  ", ""]
        try journalTextRecords(journal, texts: texts, rounds: 1)
        let builder = PackageBuilder(sender: "410103", receiver: "410000", validator: try makeValidator())
        let candidates = builder.select(try journal.entries(after: 0), packageId: "410103-1")
        #expect(candidates.count == texts.count + 2)
        let built = try #require(try builder.build(n: 1, candidates: candidates, now: Date()))
        let document = try XMLDocument(bytes: built.request, preserveWhitespace: true)
        let canonical = try document.exclusiveCanonicalForm(ofElement: "Body", namespace: puiNamespace)
        #expect(Digest.sm3(canonical).hexString == built.digest)
        let request = String(decoding: built.request, as: UTF8.self)
        #expect(request.contains("op=\"delete\" rev=\"2\""))
        #expect(request.contains("<ItemName>\"q\" a&#xD;b &amp;quot;</ItemName>"), "legacy escapes rewritten, &amp; left alone")
        // The libxml2 path agrees as well (it throws when the assembled Body is not canonical).
        var verifying = builder
        verifying.verify = true
        let records = try journal.entries(after: 0).filter { $0.key.hasPrefix("T") && !$0.deleted }
        let strict = try verifying.build(n: 2, candidates: verifying.select(records, packageId: "410103-2"), now: Date())
        #expect(strict == nil || strict?.heldBack.isEmpty == false, "records without the required fields are held back, not sent")
    }

    /// The uplink's one-pass builder (`buildDirect`) must give the very bytes, digest and members of `select` +
    /// `build`: for compact and XML bodies, legacy escapes, deletions, revisions of several digits, a root that
    /// is not the record type, record limits, and byte limits that end a package early (its RecordCount then has
    /// fewer digits than the limit's). A damaged body makes it give way (nil) to the path that holds it back.
    @Test func onePassBuilderGivesTheBytesOfSelectAndBuild() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        let journal = try Journal(path: environment.journalPath, durable: false)
        try journalTextRecords(journal, texts: builderTestTexts, rounds: 12)
        _ = try journal.batch {
            // A body with attributes on its root: the compact form declines it, so it is stored as XML.
            _ = try journal.append(NormalizedRecord(type: "Application", key: "X1", body: "<Application a=\"1\"><CaseNo>X1</CaseNo></Application>"),
                                   source: "t", origin: nil, line: 0)
            // An attribute inside: declined by the compact form too, stored as XML, sent like any other record.
            try journal.append(NormalizedRecord(type: "Application", key: "X2", body: "<Application><CaseNo kind=\"x\">X2</CaseNo></Application>"),
                               source: "t", origin: nil, line: 0)
        }
        let entries = try journal.entries(after: 0).filter { $0.key != "X1" }
        #expect(entries.contains { $0.rev >= 10 } && entries.contains { $0.deleted })
        #expect(entries.contains { $0.storedBody.first == StoredBody.compactFormMarker } && entries.contains { $0.storedBody.first == 0x3C })
        let now = Date(timeIntervalSince1970: 1_790_000_000)
        var builder = PackageBuilder(sender: "410103", receiver: "410000", validator: try makeValidator())
        var compared = 0
        for maxRecords in [1, 7, 1000] {
            for maxBytes in [1_400, 2_600, 9_000, 30_000, PUIWire.maxRequestBytes] {
                builder.maxRecords = maxRecords
                builder.maxBytes = maxBytes
                for start in [0, 5, entries.count - 3] {
                    let slice = Array(entries[start...])
                    let reference = try builder.build(n: 9, candidates: builder.select(slice, packageId: "410103-9"), now: now)
                    let direct = try builder.buildDirect(n: 9, entries: slice, now: now)
                    let sameBytes = direct?.request == reference?.request   // a Bool: a failure does not print 8 MiB
                    #expect(sameBytes, "maxRecords \(maxRecords), maxBytes \(maxBytes), from \(start)")
                    #expect(direct?.digest == reference?.digest)
                    #expect(direct?.memberSeqs == reference?.memberSeqs)
                    if let direct, direct.memberSeqs.count < min(maxRecords, slice.count) { compared += 1 }
                }
            }
        }
        #expect(compared > 3, "byte limits ended some packages early")
        // The digest is still libxml2's C14N of the Body sent.
        builder.maxRecords = 1000
        builder.maxBytes = PUIWire.maxRequestBytes
        let whole = try #require(try builder.buildDirect(n: 1, entries: entries, now: now))
        #expect(whole.memberSeqs.count == entries.count)
        let document = try XMLDocument(bytes: whole.request, preserveWhitespace: true)
        #expect(Digest.sm3(try document.exclusiveCanonicalForm(ofElement: "Body", namespace: puiNamespace)).hexString == whole.digest)
        // A stored body that is not a `<Type>` element (`<Application a="1">`: no place for xmlns and rev):
        // nil, and the two-step path holds it back with X100 instead of sending it without its rev.
        let odd = try journal.entries(after: 0).filter { $0.key == "X1" || $0.key == "L1" }
        #expect(odd.first { $0.key == "X1" }?.storedBody.first == 0x3C)
        #expect(try builder.buildDirect(n: 1, entries: odd, now: now) == nil)
        let heldBack = try #require(try builder.build(n: 1, candidates: builder.select(odd, packageId: "410103-1"), now: now))
        #expect(heldBack.memberSeqs == odd.filter { $0.key == "L1" }.map(\.seq) && heldBack.heldBack.map(\.member.key) == ["X1"])
        #expect(heldBack.heldBack.first?.code == "X100" && heldBack.heldBack.first?.message.contains("not a <Application> element") == true)
        // A damaged stored body: nil, so that the uplink takes the path that holds it back.
        try rewriteStoredBody(path: environment.journalPath, seq: 3) { Array($0.dropLast(4)) }
        let damaged = try Journal(path: environment.journalPath).entries(after: 0)
        #expect(try builder.buildDirect(n: 1, entries: damaged, now: now) == nil)
        var verifying = builder
        verifying.verify = true
        #expect(try verifying.buildDirect(n: 1, entries: entries, now: now) == nil, "verify_packages takes libxml2's path")
    }

    /// `verify_packages`: a record the schema refuses (e.g. journaled by an older version) is held back with X100
    /// and the package goes out without it; without the option the package is assembled as journaled.
    @Test func verifyingBuilderHoldsBackWhatTheSchemaRefuses() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 2)
        let journal = try Journal(path: environment.journalPath, durable: false)
        _ = try journal.batch {
            try journal.append(NormalizedRecord(type: "Application", key: "BAD",
                                                body: "<Application><CaseNo>BAD</CaseNo></Application>"), source: "t", origin: nil, line: 0)
        }
        var builder = PackageBuilder(sender: "410103", receiver: "410000", validator: try makeValidator())
        let entries = try journal.entries(after: 0)
        let fast = try #require(try builder.build(n: 1, candidates: builder.select(entries, packageId: "410103-1"), now: Date()))
        #expect(fast.memberSeqs.count == 3 && fast.heldBack.isEmpty)
        builder.verify = true
        let verified = try #require(try builder.build(n: 1, candidates: builder.select(entries, packageId: "410103-1"), now: Date()))
        #expect(verified.memberSeqs == entries.prefix(2).map(\.seq))
        #expect(verified.heldBack.map(\.member.key) == ["BAD"])
        #expect(verified.heldBack.first?.code == "X100")
        let document = try XMLDocument(bytes: verified.request, preserveWhitespace: true)
        #expect(try makeValidator().validate(document, element: "Package", namespace: puiNamespace).isEmpty)
        #expect(Digest.sm3(try document.exclusiveCanonicalForm(ofElement: "Body", namespace: puiNamespace)).hexString == verified.digest)
    }

    /// The last packaged seq is asked at every package: it must come from an index, not from reading every
    /// package row (pending ones through their request's overflow pages); that made the push of 1M records read
    /// 3.6 GB of pages, more with every package.
    @Test func theLastPackagedSeqIsReadFromAnIndex() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        _ = try Journal(path: environment.journalPath)
        _ = try UplinkStore(path: environment.journalPath)
        let database = try SQLiteDatabase(path: environment.journalPath)
        for (condition, expected) in [("", "COVERING INDEX uplink_packages_by_last_seq"),
                                      (" AND state <> 'pending'", "INDEX uplink_packages_by_last_seq")] {
            let plan = try database.query("EXPLAIN QUERY PLAN SELECT max(last_seq) FROM uplink_packages WHERE receiver = 'p'\(condition)")
                .map { $0.compactMap(\.textValue).joined(separator: " ") }.joined(separator: "\n")
            #expect(plan.contains(expected), "\(plan)")
        }
    }

    /// One uplink per receiver opens the store at start, together: the schema (and its version-2 column) must
    /// come out once, without "duplicate column" or busy errors for any of them.
    @Test func receiversOpeningTheStoreTogetherAllSucceed() throws {
        for _ in 0..<10 {
            let environment = try TestEnvironment.make(certificates: false)
            defer { environment.remove() }
            _ = try Journal(path: environment.journalPath)
            let errors = ErrorList()
            let group = DispatchGroup()
            for _ in 0..<4 {
                group.enter()
                Thread.detachNewThread {
                    do { _ = try UplinkStore(path: environment.journalPath) } catch { errors.add("\(error)") }
                    group.leave()
                }
            }
            group.wait()
            #expect(errors.all.isEmpty, "\(errors.all)")
        }
    }

    @Test func packagesRespectRecordAndByteLimits() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 30)
        let journal = try Journal(path: environment.journalPath)
        var builder = PackageBuilder(sender: "410103", receiver: "410000", validator: try makeValidator())
        builder.maxBytes = 4000
        let selected = builder.select(try journal.entries(after: 0), packageId: "410103-1")
        let built = try #require(try builder.build(n: 1, candidates: selected, now: Date()))
        #expect(built.request.count <= 4000)
        #expect(selected.count < 30 && selected.count > 0)
    }

    @Test func receiptsAndFaultsAreClassifiedPerTheSpecTable() {
        let receipt = PUIWire.receiptResponse(Receipt(packageId: "410103-1", receivedAt: "2026-01-06T12:30:02+08:00", accepted: 3,
                                                      duplicates: 0, rejected: [.init(index: 1, code: "R204", field: "Applicant/IdNumber", message: "x")]))
        #expect(PUIWire.classify(status: 200, body: receipt, retryAfter: nil, packageId: "410103-1", recordCount: 4)
            == .receipt(Receipt(packageId: "410103-1", receivedAt: "2026-01-06T12:30:02+08:00", accepted: 3, duplicates: 0,
                                rejected: [.init(index: 1, code: "R204", field: "Applicant/IdNumber", message: "x")])))
        // Counts that do not add up: unknown whether stored → resend.
        if case .retry = PUIWire.classify(status: 200, body: receipt, retryAfter: nil, packageId: "410103-1", recordCount: 5) {} else {
            Issue.record("bad receipt counts must not be applied")
        }
        let example = (FileManager.default.contents(atPath: "/work/shared/spec/examples/soap-fault.xml")).map { Array($0) }
            ?? PUIWire.fault(code: "E101", retryable: false, message: "digest mismatch")
        if case .refused(let fault) = PUIWire.classify(status: 500, body: example, retryAfter: nil, packageId: "p", recordCount: 1) {
            #expect(fault.code == "E101")
        } else { Issue.record("Client fault must refuse the package") }
        let server = PUIWire.fault(code: "E500", retryable: true, message: "down")
        if case .retry = PUIWire.classify(status: 500, body: server, retryAfter: nil, packageId: "p", recordCount: 1) {} else {
            Issue.record("Server fault must be retried")
        }
        #expect(PUIWire.classify(status: 503, body: [], retryAfter: .seconds(7), packageId: "p", recordCount: 1)
            == .retry(reason: "HTTP 503 (busy)", retryAfter: .seconds(7)))
        #expect(PUIWire.classify(status: 429, body: [], retryAfter: nil, packageId: "p", recordCount: 1)
            == .retry(reason: "HTTP 429 (busy)", retryAfter: nil))
    }

    @Test func backoffGrowsIsCappedAndHonoursRetryAfter() {
        let backoff = Backoff(base: .seconds(1), cap: .seconds(300))
        for failures in 1...20 {
            let delay = backoff.delay(failures: failures, retryAfter: nil)
            let ceiling = min(300.0, pow(2, Double(failures - 1)))
            #expect(delay >= .milliseconds(Int64(ceiling * 500)) && delay <= .milliseconds(Int64(ceiling * 1000) + 1))
        }
        #expect(backoff.delay(failures: 1, retryAfter: .seconds(42)) >= .seconds(42))
    }

    @Test func timestampsRoundTripInBeijingTime() throws {
        let date = try #require(parseTimestamp("2026-01-05T08:37:00+08:00"))
        #expect(beijingTimestamp(date) == "2026-01-05T08:37:00+08:00")
        #expect(parseTimestamp("2026-01-05T00:37:00.500+00:00").map { $0.timeIntervalSince(date) } == 0.5)
        // Written by arithmetic (no formatter): padding, day and year boundaries in Beijing time, early years.
        #expect(beijingTimestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T08:00:00+08:00")
        #expect(beijingTimestamp(Date(timeIntervalSince1970: 1_767_196_799.9)) == "2025-12-31T23:59:59+08:00")
        #expect(beijingTimestamp(Date(timeIntervalSince1970: 1_767_196_800)) == "2026-01-01T00:00:00+08:00")
        #expect(beijingTimestamp(Date(timeIntervalSince1970: 1_709_222_399)) == "2024-02-29T23:59:59+08:00")
        #expect(beijingTimestamp(Date(timeIntervalSince1970: -62_135_596_800)) == "0001-01-01T08:00:00+08:00")
    }

    @Test func referenceDataParsesIntoPlainValues() throws {
        let data = try ReferenceData.load(file: fixture("reference-data.xml"), validator: try makeValidator())
        #expect(data.version == "2026.12-1")
        #expect(data.calendar.firstYear == 2010 && data.calendar.lastYear == 2026)
        #expect(data.calendar.days.contains { $0.date == "2010-02-20" && $0.kind == .workday })
        #expect(data.items.count == 16)
        #expect(data.catalogCodes.items.contains("XK0005"))
        #expect(data.catalogCodes.fees.contains("F000601"))
        #expect(data.departments.contains("410103001"))
    }
}

@Suite struct UplinkDeliveryTests {
    @Test func mutualTLSDeliveryToTheSandboxInPackagesOfAtMost1000() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 2500)
        let server = try environment.sandbox()
        defer { server.stop() }
        let settings = environment.settings(name: "province", url: url(server.port))
        let uplink = try ReceiverUplink(settings: settings, journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        let summary = try await uplink.drain()
        #expect(summary.drained)
        #expect(summary.packagesResolved == 3)
        let packages = try uplink.store.packages(receiver: "province")
        #expect(packages.map(\.packageId) == ["410103-1", "410103-2", "410103-3"])
        #expect(packages.map(\.recordCount) == [1000, 1000, 500])
        #expect(packages.allSatisfy { $0.state == .receipted })
        #expect(server.receiver.records().count == 2500)
        #expect(server.receiver.packages() == Dictionary(uniqueKeysWithValues: packages.map { ($0.packageId, $0.digest) }))
        #expect(try Journal(path: environment.journalPath).cursor("uplink:province") == 2500)
        // Nothing more to send; a new record goes in package 4 (the sequence is never reused).
        #expect(try await uplink.step() == .idle)
        try fillJournal(environment.journalPath, count: 1, prefix: "D")
        #expect(try await uplink.step() == .delivered(packageId: "410103-4", outcome: "receipt"))
        let status = try uplink.store.status(of: settings)
        #expect(status.cursor == 2501 && status.lag == 0 && status.state == "connected" && status.deadLetters == 0)
    }

    @Test func busyReceiverWithRetryAfterGetsTheSamePackageAgain() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 10)
        let server = try environment.sandbox(.busy(first: 2, retryAfterSeconds: 1))
        defer { server.stop() }
        let uplink = try ReceiverUplink(settings: environment.settings(name: "province", url: url(server.port)),
                                        journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        let asked = Date()
        let first = try await uplink.step()
        guard case .waiting(let id, let until, let attempted) = first, attempted else { Issue.record("expected a wait, got \(first)"); return }
        #expect(id == "410103-1")
        // Retry-After: 1 honoured although the backoff base is 50 ms (measured from before the request, so a
        // late wake-up of this test on a busy pool cannot shorten it).
        #expect(until.timeIntervalSince(asked) > 0.99)
        let pending = try #require(try uplink.store.pendingPackage(receiver: "province"))
        #expect(pending.attempts == 1 && pending.lastError?.contains("503") == true)
        #expect(try uplink.store.receiverState("province").kind == .backingOff)
        let started = Date()
        let summary = try await uplink.drain(maxWait: .seconds(5))
        #expect(summary.drained)
        #expect(Date().timeIntervalSince(started) >= 1.5)
        #expect(server.receiver.requestCount == 3)
        // The drain sent twice (one more 503, then the receipt); the wait for the first step's retry is no attempt.
        #expect(summary.attempts == 2, "\(summary)")
        #expect(server.receiver.packages() == ["410103-1": pending.digest])
        #expect(try uplink.store.receiverState("province").kind == .connected)
    }

    @Test func clockSetBackDuringABackoffDoesNotStretchTheWait() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 5)
        let server = try environment.sandbox(.busy(first: 1, retryAfterSeconds: 600))
        defer { server.stop() }
        let clock = Mutex(Date())
        let uplink = try ReceiverUplink(settings: environment.settings(name: "province", url: url(server.port)),
                                        journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent,
                                        now: { clock.withLock { $0 } })
        guard case .waiting(_, let until, true) = try await uplink.step() else { Issue.record("expected a failed attempt"); return }
        #expect(until.timeIntervalSince(clock.withLock { $0 }) >= 600)
        // Not due yet: the receiver's Retry-After holds while the clock runs forward.
        clock.withLock { $0 = $0.addingTimeInterval(60) }
        guard case .waiting(_, _, false) = try await uplink.step() else { Issue.record("expected the wait to hold"); return }
        // An NTP step sets the clock back two hours: the stored due time is now 2 h 9 min away, the wait must not grow.
        clock.withLock { $0 = $0.addingTimeInterval(-7200) }
        #expect(try await uplink.step() == .delivered(packageId: "410103-1", outcome: "receipt"))
        #expect(server.receiver.requestCount == 2)
    }

    /// A receipt a JDK wrote in its GBK default charset is no UTF-8: libxml2's message about it ends in a line
    /// break, and the stored last error (status text and JSON) must stay one line.
    @Test func lastErrorOfAReceiptThatDoesNotParseIsOneLine() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 3)
        let gbk: [UInt8] = Array("<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>".utf8)
            + [0xB3, 0xC9, 0xB9, 0xA6] + Array("</soap:Body></soap:Envelope>".utf8)
        let server = try HTTPServer(configuration: .init(tls: try environment.serverTLS())) { _ in
            HTTPServerResponse(status: 200, headers: [("Content-Type", "text/xml; charset=GBK")], body: gbk)
        }
        defer { server.stop() }
        let uplink = try ReceiverUplink(settings: environment.settings(name: "province", url: url(server.port)),
                                        journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        guard case .waiting(_, _, true) = try await uplink.step() else { Issue.record("expected a failed attempt"); return }
        let pending = try #require(try uplink.store.pendingPackage(receiver: "province"))
        let stored = try #require(pending.lastError)
        #expect(!stored.contains("\n") && !stored.contains("\r"), "\(stored)")
        #expect(try uplink.store.receiverState("province").lastError?.contains("\n") == false)
    }

    /// A rebuilt state directory starts its PackageId sequence at 1 again, and the receiver refuses reused numbers
    /// (E103): the refusal says what happened, and `first_package_number` moves the sequence past the receiver's so
    /// that the dead letters go out again under new numbers.
    @Test func aRebuiltStateDirectoryGoesOnPastTheReceiversPackageNumbers() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 5)
        let server = try environment.sandbox()
        defer { server.stop() }
        let settings = environment.settings(name: "province", url: url(server.port))
        let original = try ReceiverUplink(settings: settings, journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        #expect(try await original.drain(maxWait: .seconds(5)).drained)

        try FileManager.default.createDirectory(atPath: environment.path("rebuilt"), withIntermediateDirectories: true)
        let rebuilt = environment.path("rebuilt/journal.sqlite")
        try fillJournal(rebuilt, count: 3, prefix: "R")
        let logs = RecordingLogHandler()
        let again = try ReceiverUplink(settings: settings, journalPath: rebuilt, validator: try makeValidator(),
                                       logger: Logger(component: "t", minimum: .debug, handler: logs))
        _ = try await again.drain(maxWait: .seconds(5))
        #expect(try again.store.deadLetters(receiver: "province").map(\.code) == ["E103", "E103", "E103"])
        #expect(logs.lines.contains { $0.contains("410103-1 refused") && $0.contains("first_package_number") }, "\(logs.lines)")

        var moved = settings
        moved.firstPackageNumber = 1000
        let fixed = try ReceiverUplink(settings: moved, journalPath: rebuilt, validator: try makeValidator(), logger: .silent)
        #expect(try fixed.store.resendDeadLetters(ids: nil, receiver: "province", now: Date()) == 3)
        #expect(try await fixed.drain(maxWait: .seconds(5)).drained)
        #expect(server.receiver.packages().keys.contains("410103-1000"), "\(server.receiver.packages().keys.sorted())")
        #expect(try fixed.store.deadLetters(receiver: "province").isEmpty)
    }

    @Test func timeoutAfterStoreResendsTheSameBytesAndGetsTheOriginalReceipt() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 20)
        var options = SandboxOptions()
        options.dropAfterStore = 1
        options.dropDelay = .seconds(3)
        let server = try environment.sandbox(options)
        defer { server.stop() }
        let uplink = try ReceiverUplink(settings: environment.settings(name: "province", url: url(server.port), timeout: .seconds(1)),
                                        journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        let first = try await uplink.step()
        guard case .waiting = first else { Issue.record("expected a timeout, got \(first)"); return }
        let pending = try #require(try uplink.store.pendingPackage(receiver: "province"))
        #expect(pending.lastError?.contains("timed out") == true)
        let summary = try await uplink.drain(maxWait: .seconds(5))
        #expect(summary.drained)
        let packages = try uplink.store.packages(receiver: "province")
        #expect(packages.count == 1)
        #expect(packages.first?.digest == pending.digest)
        #expect(server.receiver.packages() == ["410103-1": pending.digest])
        // The original receipt came back: 20 accepted (not 20 duplicates), each record accepted exactly once.
        #expect(server.receiver.acceptanceCounts().values.allSatisfy { $0 == 1 })
        #expect(server.receiver.acceptanceCounts().count == 20)
        #expect(try uplink.store.deadLetters(receiver: "province").isEmpty)
    }

    /// The store keeps a fixed package's envelope only (the journal holds its records): after a restart the
    /// records are put back, byte for byte what the first attempt sent. A package whose records the journal can no
    /// longer give back as they were (a damaged stored body here) is never sent otherwise under its PackageId: it
    /// is resolved locally with X101 dead letters, the queue goes on, and a resend delivers what is sound.
    @Test func aFixedPackageKeepsItsEnvelopeOnlyAndIsResentByteForByte() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 20)
        let fixedNow = Date(timeIntervalSince1970: 1_780_000_000)
        let nobody = environment.settings(name: "province", url: url(9), timeout: .seconds(2))
        let first = try ReceiverUplink(settings: nobody, journalPath: environment.journalPath, validator: try makeValidator(),
                                       logger: .silent, now: { fixedNow })
        guard case .waiting = try await first.step() else { Issue.record("the attempt should fail: nobody listens"); return }
        let builder = PackageBuilder(sender: "410103", receiver: "410000", validator: try makeValidator())
        let sent = try #require(try builder.buildDirect(n: 1, entries: try Journal(path: environment.journalPath).entries(after: 0), now: fixedNow))
        let row = try #require(try SQLiteDatabase(path: environment.journalPath)
            .query("SELECT length(request), records_at FROM uplink_packages WHERE package_id = '410103-1'").first)
        #expect(row[0].intValue == Int64(sent.request.count - sent.records.count) && row[1].intValue == Int64(sent.records.lowerBound),
                "the envelope only: \(row)")
        let restarted = try ReceiverUplink(settings: nobody, journalPath: environment.journalPath, validator: try makeValidator(),
                                           logger: .silent, now: { fixedNow })
        let resent = try #require(try restarted.nextPackage())
        #expect(resent.request == sent.request && resent.digest == sent.digest && resent.recordsAt == nil)
        // A package fixed by schema 2 (whole bytes, no records_at) is sent as it is, without the journal.
        let database = try SQLiteDatabase(path: environment.journalPath)
        let envelope = try #require(try database.query("SELECT request, records_at FROM uplink_packages WHERE package_id = '410103-1'").first)
        try database.run("UPDATE uplink_packages SET request = ?1, records_at = NULL WHERE package_id = '410103-1'",
                         [.blob(Array("not a rebuilt request".utf8))])
        let older = try #require(try restarted.nextPackage())
        #expect(older.request == Array("not a rebuilt request".utf8) && older.recordsAt == nil)
        try database.run("UPDATE uplink_packages SET request = ?1, records_at = ?2 WHERE package_id = '410103-1'", envelope)

        try rewriteStoredBody(path: environment.journalPath, seq: 5) { Array($0.dropLast(4)) }
        let server = try environment.sandbox()
        defer { server.stop() }
        let uplink = try ReceiverUplink(settings: environment.settings(name: "province", url: url(server.port)),
                                        journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        #expect(try await uplink.drain(maxWait: .seconds(5)).drained)
        #expect(server.receiver.requestCount == 0, "nothing else went out under 410103-1")
        let letters = try uplink.store.deadLetters(receiver: "province")
        #expect(letters.count == 20 && letters.allSatisfy { $0.code == "X101" && $0.packageId == "410103-1" })
        #expect(letters.first?.message.contains("seq 5") == true, "\(letters.first?.message ?? "-")")
        #expect(try uplink.store.packages(receiver: "province").first?.state == .refused)
        #expect(try uplink.store.resendDeadLetters(ids: nil, receiver: "province", now: Date()) == 20)
        #expect(try await uplink.drain(maxWait: .seconds(5)).drained)
        #expect(server.receiver.acceptanceCounts().count == 19, "all but the damaged record")
        #expect(try uplink.store.deadLetters(receiver: "province").map(\.seq) == [5])
    }

    enum JournalDamage: String, CaseIterable, Sendable { case changedBody, damagedChunk }

    /// A fixed package whose records the journal gives back other than they were (a body changed to another valid
    /// one: only the digest tells) or cannot give back at all (a damaged chunk) is never sent, nor retried for ever:
    /// it is resolved locally, every one of its records a dead letter X101 (named by its journal seq when the
    /// journal cannot tell its type and key), and what is journaled after it is delivered.
    @Test(arguments: JournalDamage.allCases) func aPackageTheJournalCannotGiveBackIsResolvedWithX101(damage: JournalDamage) async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 20)
        let nobody = environment.settings(name: "province", url: url(9), timeout: .seconds(2))
        let first = try ReceiverUplink(settings: nobody, journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        guard case .waiting = try await first.step() else { Issue.record("the attempt should fail: nobody listens"); return }
        switch damage {
        case .changedBody:
            try rewriteStoredBody(path: environment.journalPath, seq: 5) { body in
                var body = body
                if let digit = body.lastIndex(where: { $0 >= 0x30 && $0 <= 0x38 }) { body[digit] += 1 }
                return body
            }
        case .damagedChunk:
            try SQLiteDatabase(path: environment.journalPath).run("UPDATE record_chunks SET data = substr(data, 1, 40) WHERE first_seq = 1")
        }
        try fillJournal(environment.journalPath, count: 5, start: 21)
        let server = try environment.sandbox()
        defer { server.stop() }
        let uplink = try ReceiverUplink(settings: environment.settings(name: "province", url: url(server.port)),
                                        journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        #expect(try await uplink.drain(maxWait: .seconds(5)).drained)
        let letters = try uplink.store.deadLetters(receiver: "province")
        #expect(letters.count == 20 && letters.allSatisfy { $0.code == "X101" && $0.packageId == "410103-1" })
        #expect(Set(letters.map(\.seq)) == Set(1...20))
        switch damage {
        case .changedBody:
            #expect(letters.first?.message.contains("do not give the package's digest") == true, "\(letters.first?.message ?? "-")")
        case .damagedChunk:
            #expect(letters.first?.message.contains("damaged") == true, "\(letters.first?.message ?? "-")")
            #expect(letters.allSatisfy { $0.type == "(unreadable)" && $0.key == "journal seq \($0.seq)" })
        }
        #expect(server.receiver.acceptanceCounts().keys.sorted() == (21...25).map { "Application|C\($0)|1" }.sorted(),
                "\(server.receiver.acceptanceCounts())")
    }

    @Test func clientFaultDeadLettersThePackageAndMovesOn() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 1500)
        let server = try environment.sandbox()   // this receiver is 410000
        defer { server.stop() }
        let uplink = try ReceiverUplink(settings: environment.settings(name: "city", url: url(server.port), receiverCode: "410100"),
                                        journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        let summary = try await uplink.drain()
        #expect(summary.drained && summary.packagesResolved == 2)
        #expect(server.receiver.requestCount == 2)   // never resent unchanged
        let letters = try uplink.store.deadLetters(receiver: "city", limit: 5000)
        #expect(letters.count == 1500)
        #expect(letters.allSatisfy { $0.code == "E105" })
        #expect(try uplink.store.packages(receiver: "city").allSatisfy { $0.state == .refused })
        #expect(try uplink.store.status(of: uplink.settings).lastError?.contains("E105") == true)
        #expect(try uplink.store.dropDeadLetters(ids: nil, receiver: "city", now: Date()) == 1500)
        #expect(try uplink.store.openDeadLetterCount(receiver: "city") == 0)
    }

    @Test func senderNotMatchingTheCertificateIsRefusedE102() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 3)
        let server = try environment.sandbox()
        defer { server.stop() }
        let uplink = try ReceiverUplink(settings: environment.settings(name: "province", url: url(server.port), sender: "410104"),
                                        journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        _ = try await uplink.drain()
        #expect(try uplink.store.deadLetters(receiver: "province").map(\.code) == ["E102", "E102", "E102"])
    }

    @Test func perRecordRejectionsStayVisibleUntilANewerRevisionIsDelivered() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let journal = try Journal(path: environment.journalPath, durable: false)
        let future = beijingTimestamp(Date().addingTimeInterval(3600))
        let records = [
            try application("OK1"),
            try application("BADITEM", itemCode: "ZZ9999"),
            try application("BADID", idNumber: "410103195612282990"),
            try application("FUTURE", appliedAt: future),
            try application("OK2"),
            // A red card's ResponseDue lies in the future by design: a deadline, not an event time, so no R205.
            try PUISchema.shipped().normalize(DraftRecord(type: "Alert", fields: [
                ("AlertId", "XK02-0123456789abcdef"), ("RuleCode", "XK02"), ("Level", "R"), ("SubjectType", "case"),
                ("SubjectKey", "OK1"), ("DeptCode", "410103001"), ("RaisedAt", beijingTimestamp(Date())),
                ("Detail", "overdue"), ("ResponseDue", future), ("State", "OPEN"), ("StateAt", beijingTimestamp(Date())),
            ])).get(),
        ]
        try journal.batch { for r in records { _ = try journal.append(r, source: "t", origin: nil, line: 0) } }
        var options = SandboxOptions()
        options.referenceDataFile = fixture("reference-data.xml")
        let server = try environment.sandbox(options)
        defer { server.stop() }
        let logs = RecordingLogHandler()
        let uplink = try ReceiverUplink(settings: environment.settings(name: "province", url: url(server.port)),
                                        journalPath: environment.journalPath, validator: try makeValidator(),
                                        logger: Logger(component: "t", minimum: .debug, handler: logs))
        _ = try await uplink.drain()
        let letters = try uplink.store.deadLetters(receiver: "province")
        #expect(letters.map(\.code) == ["R201", "R204", "R205"])
        #expect(letters.map(\.field) == ["ItemCode", "Applicant/IdNumber", "AppliedAt"])
        #expect(letters.map(\.index) == [2, 3, 4])
        #expect(server.receiver.records().count == 3, "OK1, OK2 and the alert")
        // The source is corrected: a new revision of BADITEM is delivered and its dead letter is superseded.
        _ = try journal.append(try application("BADITEM", itemCode: "XK0002", itemName: "企业名称预先核准"), source: "t", origin: nil, line: 0)
        _ = try await uplink.drain()
        #expect(try uplink.store.deadLetters(receiver: "province").map(\.code) == ["R204", "R205"])
        #expect(try uplink.store.deadLetters(receiver: "province", includeResolved: true).first?.state == "superseded")
        // Identity numbers never reach the log unmasked.
        #expect(!logs.lines.joined().contains("41010319561228299"))
    }

    @Test func twoReceiversHaveIndependentCursorsAndAFailingOneHoldsNothingBack() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 1200)
        let server = try environment.sandbox()
        defer { server.stop() }
        // The city is down for the whole test: a port where nobody listens.
        let down = try environment.sandbox(database: "down.sqlite")
        let deadPort = down.port
        down.stop()
        var citySettings = environment.settings(name: "city", url: url(deadPort), receiverCode: "410100")
        citySettings.retryBase = .seconds(10)   // its first wait exceeds maxWait: drainAll reports it failing
        citySettings.retryCap = .seconds(20)
        let service = UplinkService(receivers: [environment.settings(name: "province", url: url(server.port)), citySettings],
                                    journalPath: environment.journalPath, schemaText: try PUISchema.shipped().schemaText, logger: .silent)
        let summaries = await service.drainAll(maxWait: .seconds(5))
        #expect(summaries.map(\.receiver) == ["city", "province"])
        #expect(summaries[1].drained && !summaries[0].drained, "\(summaries)")
        #expect(summaries[0].lastError?.contains("connection refused") == true)
        #expect(server.receiver.records().count == 1200)
        let journal = try Journal(path: environment.journalPath)
        #expect(try journal.cursor("uplink:province") == 1200)
        #expect(try journal.cursor("uplink:city") == 0)
        let status = try service.status(reference: nil)
        let city = try #require(status.receivers.first { $0.receiver == "city" })
        #expect(city.state == "backing_off" && city.failingSince != nil && city.lag == 1200 && city.pending?.packageId == "410103-1")
    }

    /// `uplink status` may be the first command run after an upgrade: it converts the journal (a records row
    /// per record, as esgate's schema 3 kept it) instead of failing on a table it does not find.
    @Test func statusConvertsAJournalOfAnOlderEsgateFirst() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 30)
        let entries = try Journal(path: environment.journalPath).entries(after: 0, limit: 100)
        let db = try SQLiteDatabase(path: environment.journalPath)
        try db.execute("""
            DROP TABLE record_chunks;
            CREATE TABLE records(seq INTEGER PRIMARY KEY, type TEXT NOT NULL, key TEXT NOT NULL, rev INTEGER NOT NULL,
                op INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL, source TEXT NOT NULL, origin TEXT, line INTEGER,
                ingested_at INTEGER NOT NULL);
            UPDATE meta SET value = '3' WHERE key = 'schema_version';
            """)
        for entry in entries {
            try db.prepare("INSERT INTO records VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, NULL, 0, 0)")
                .run([.integer(entry.seq), .text(entry.type), .text(entry.key), .integer(entry.rev), .blob(entry.storedBody), .text(entry.source)])
        }
        let service = UplinkService(receivers: [environment.settings(name: "province", url: url(9))],
                                    journalPath: environment.journalPath, schemaText: try PUISchema.shipped().schemaText, logger: .silent)
        let status = try service.status(reference: nil)
        #expect(status.receivers.first?.lag == 30 && status.receivers.first?.journalLastSeq == 30)
        #expect(try db.query("SELECT value FROM meta WHERE key = 'schema_version'").first?.first?.textValue == "\(Journal.schemaVersion)")
    }

    @Test func restartDuringAnOutageLosesNothingAndReusesNoPackageId() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 1500)
        var options = SandboxOptions()
        options.failFirst = 1000   // the receiver is down (503) for the first gateway process
        let outage = try environment.sandbox(options, database: "outage.sqlite")
        var pendingDigest = ""
        do {
            let uplink = try ReceiverUplink(settings: environment.settings(name: "province", url: url(outage.port)),
                                            journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
            let summary = try await uplink.drain(maxWait: .milliseconds(100))
            #expect(!summary.drained)
            pendingDigest = try #require(try uplink.store.pendingPackage(receiver: "province")).digest
        }
        outage.stop()
        // "Restart": a new process (new connections), the province back on another address.
        try fillJournal(environment.journalPath, count: 10, prefix: "LATE")
        let server = try environment.sandbox()
        defer { server.stop() }
        let uplink = try ReceiverUplink(settings: environment.settings(name: "province", url: url(server.port)),
                                        journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        let pending = try #require(try uplink.store.pendingPackage(receiver: "province"))
        #expect(pending.packageId == "410103-1" && pending.digest == pendingDigest)
        let summary = try await uplink.drain()
        #expect(summary.drained)
        #expect(server.receiver.records().count == 1510)
        #expect(server.receiver.packages()["410103-1"] == pendingDigest)
        #expect(server.receiver.acceptanceCounts().values.allSatisfy { $0 == 1 })
    }

    @Test func untrustedReceiverAndRogueClientCertificateFailClearlyAndLoseNothing() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 5)
        let server = try environment.sandbox()
        defer { server.stop() }
        let rogue = try ReceiverUplink(settings: environment.settings(name: "rogue", url: url(server.port), client: "rogue-client"),
                                       journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        let failed = try await rogue.drain(maxWait: .zero)
        #expect(!failed.drained)
        #expect(failed.attempts == 1, "\(failed)")   // the one failed attempt before giving up counts
        #expect(failed.lastError.map { $0.contains("certificate") || $0.contains("connection lost") || $0.contains("TLS") } == true)
        #expect(server.receiver.records().isEmpty)
        var settings = environment.settings(name: "province", url: url(server.port))
        settings.client.tls.caFile = environment.cert("rogue-ca.pem")
        settings.name = "untrusting"
        let untrusting = try ReceiverUplink(settings: settings, journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        let untrusted = try await untrusting.drain(maxWait: .zero)
        #expect(untrusted.lastError?.contains("server certificate not trusted") == true, "\(untrusted)")
        // Fixed configuration: the same package goes through.
        let good = try ReceiverUplink(settings: environment.settings(name: "province", url: url(server.port)),
                                      journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        #expect(try await good.drain().drained)
        #expect(server.receiver.packages().keys.sorted() == ["410103-1"])
        #expect(server.receiver.records().count == 5)
    }

    @Test func referenceDataIsFetchedCachedAndReusedWhileTheProvinceIsDown() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        var options = SandboxOptions()
        options.referenceDataFile = fixture("reference-data.xml")
        let server = try environment.sandbox(options)
        let settings = environment.settings(name: "province", url: url(server.port))
        let source = ReferenceDataSource(configuredFile: nil, stateDirectory: environment.path("state"), validator: try makeValidator(), logger: .silent)
        let fetched = await source.refresh(client: HTTPClient(configuration: settings.client), url: settings.url, division: "410103")
        #expect(fetched?.version == "2026.12-1" && fetched?.items.count == 16)
        #expect(FileManager.default.fileExists(atPath: source.cacheFile))
        let succeeded = try #require(source.lastFetchOutcome())
        #expect(succeeded.error == nil && succeeded.lastSuccess == succeeded.lastAttempt)
        // KnownVersion is current: nothing new, same data.
        #expect(await source.refresh(client: HTTPClient(configuration: settings.client), url: settings.url, division: "410103") == fetched)
        let lastGood = try #require(source.lastFetchOutcome()?.lastSuccess)   // "no change" is a good fetch too
        server.stop()
        // A new process while the province is unreachable: the last good copy is used.
        let restarted = ReferenceDataSource(configuredFile: nil, stateDirectory: environment.path("state"), validator: try makeValidator(), logger: .silent)
        let offline = await restarted.refresh(client: HTTPClient(configuration: settings.client), url: settings.url, division: "410103")
        #expect(offline == fetched)
        #expect(restarted.lastError != nil)
        // A province that answers with a SOAP fault: its code and words are kept, not only "HTTP 500".
        let bare = try environment.sandbox()
        defer { bare.stop() }
        let faulted = ReferenceDataSource(configuredFile: nil, stateDirectory: environment.path("state"), validator: try makeValidator(), logger: .silent)
        #expect(await faulted.refresh(client: HTTPClient(configuration: settings.client), url: url(bare.port), division: "410103") == fetched)
        #expect(faulted.lastError?.contains("HTTP 500: E500 no reference data configured") == true, "\(faulted.lastError ?? "-")")
        // A province whose application server answers an HTML error page (a JDK stack's Tomcat): its text is kept.
        let tomcat = try HTTPServer(configuration: .init(tls: try environment.serverTLS())) { _ in
            HTTPServerResponse(status: 503, headers: [("Content-Type", "text/html")],
                               body: Array("<html><body><h1>HTTP Status 503</h1><p>Deployment of pui.war in progress</p></body></html>".utf8))
        }
        defer { tomcat.stop() }
        let paged = ReferenceDataSource(configuredFile: nil, stateDirectory: environment.path("state-paged"), validator: try makeValidator(), logger: .silent)
        #expect(await paged.refresh(client: HTTPClient(configuration: settings.client), url: url(tomcat.port), division: "410103") == nil)
        #expect(paged.lastError?.contains("HTTP 503: XML element html (no namespace): \"HTTP Status 503 Deployment of pui.war in progress\"") == true,
                "\(paged.lastError ?? "-")")
        // `uplink status` runs in another process than the fetch: it learns the failure from the state directory,
        // with the last good fetch.
        let service = UplinkService(receivers: [settings], journalPath: environment.journalPath,
                                    schemaText: try PUISchema.shipped().schemaText, logger: .silent)
        let statusReader = ReferenceDataSource(configuredFile: nil, stateDirectory: environment.path("state"), validator: try makeValidator(), logger: .silent)
        let reference = try service.status(reference: statusReader).referenceData
        #expect(reference.version == "2026.12-1" && reference.error?.contains("E500 no reference data configured") == true, "\(reference)")
        #expect(reference.lastFetch != nil && reference.lastGoodFetch == lastGood, "\(reference)")
    }
}

@Suite struct IndependentPeerTests {
    @Test func pythonReceiverValidatesDigestsAndSeesEveryRecordOnce() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 2100)
        let peer = try PythonReceiver(environment: environment, failFirst: 2)
        defer { peer.stop() }
        let uplink = try ReceiverUplink(settings: environment.settings(name: "province", url: url(peer.port)),
                                        journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        let summary = try await uplink.drain(maxWait: .seconds(5))
        #expect(summary.drained)
        let stats = try peer.stats()
        #expect(stats.faults.isEmpty, "\(stats.fault_messages)")
        #expect(stats.bad_headers == 0 && stats.incomplete == 0, "every request arrived whole")
        #expect(stats.injected == 2)
        #expect(stats.accepted == 2100 && stats.duplicates == 0)
        #expect(stats.records.count == 2100)
        let packages = try uplink.store.packages(receiver: "province")
        #expect(stats.packages == Dictionary(uniqueKeysWithValues: packages.map { ($0.packageId, $0.digest) }))
    }

    @Test func pythonReceiverReturnsTheOriginalReceiptForAResendAndRefusesE102() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 4)
        let peer = try PythonReceiver(environment: environment)
        defer { peer.stop() }
        let settings = environment.settings(name: "province", url: url(peer.port))
        let uplink = try ReceiverUplink(settings: settings, journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        // Fix the package, then send its stored bytes twice by hand (a resend after a lost answer).
        let package = try #require(try uplink.nextPackage())
        let client = HTTPClient(configuration: settings.client)
        let request = HTTPRequest.post(settings.url, headers: PUIWire.headers(action: PUIWire.submitAction), body: package.request)
        let first = try await client.send(request)
        let second = try await client.send(request)
        #expect(first.status == 200 && second.status == 200)
        #expect(first.body == second.body)
        #expect(try peer.stats().resent == 1)
        #expect(try await uplink.drain().drained)   // the uplink's own send gets the same receipt
        #expect(try peer.stats().accepted == 4)
        // Sender ≠ certificate CN: the independent receiver refuses it too.
        try fillJournal(environment.journalPath, count: 1, prefix: "X")
        let wrongSender = try ReceiverUplink(settings: environment.settings(name: "other", url: url(peer.port), sender: "410104"),
                                             journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        _ = try await wrongSender.drain()
        #expect(try peer.stats().faults == ["E102"])
    }
}

@Suite struct CertificateTests {
    @Test func certificateFactsKeyMatchAndExpiry() throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let client = try CertificateInfo.load(file: environment.cert("client.pem"))
        #expect(client.commonName == "410103")
        #expect(client.issuer.contains("esgate development CA"))
        #expect(client.daysLeft() > 30)
        #expect(try CertificateInfo.keyMatches(certificateFile: environment.cert("client.pem"), keyFile: environment.cert("client.key")))
        #expect(try !CertificateInfo.keyMatches(certificateFile: environment.cert("client.pem"), keyFile: environment.cert("rogue-client.key")))
        #expect(try CertificateInfo.verify(certificateFile: environment.cert("client.pem"), caFile: environment.cert("ca.pem")).ok)
        #expect(try !CertificateInfo.verify(certificateFile: environment.cert("rogue-client.pem"), caFile: environment.cert("ca.pem")).ok)
        let expired = try CertificateInfo.load(file: environment.cert("expired-client.pem"))
        #expect(expired.daysLeft() < 0)
        #expect(throws: CertificateError.self) { try CertificateInfo.load(file: environment.path("missing.pem")) }
    }
}

private final class ErrorList: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ item: String) { lock.withLock { items.append(item) } }
    var all: [String] { lock.withLock { items } }
}

extension SandboxOptions {
    /// The first `first` submissions answered 503 with `Retry-After: retryAfterSeconds`.
    static func busy(first: Int, retryAfterSeconds: Int) -> SandboxOptions {
        var options = SandboxOptions()
        options.failFirst = first
        options.retryAfterSeconds = retryAfterSeconds
        return options
    }
}
