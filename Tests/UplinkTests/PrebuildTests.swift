import Foundation
import GatewayModel
import Journal
import SandboxReceiver
import TestSupport
import Testing
@testable import Uplink

/// The package after next is built on the pre-builder's thread while the current one is applied and sent; these
/// reach the paths where that pre-built package must not be used.
@Suite struct PrebuildTests {
    /// Step 1 fixes package 2 ahead and starts building package 3 ([OK4, OK5]) in the background; then an operator
    /// queues a resend. Package 3 must be the resend, and the pre-built [OK4, OK5] is never fixed under any number.
    @Test func aPackageBuiltAheadIsDiscardedWhenResendsAreQueuedMeanwhile() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let journal = try Journal(path: environment.journalPath, durable: false)
        var records = [try application("OK1"), try application("NEW1", itemCode: "ZZ9998")]
        for i in 2...9 { records.append(try application("OK\(i)")) }
        try journal.batch { for r in records { _ = try journal.append(r, source: "t", origin: nil, line: 0) } }
        var options = SandboxOptions()
        options.referenceDataFile = fixture("reference-data.xml")
        let server = try environment.sandbox(options)
        defer { server.stop() }
        var settings = environment.settings(name: "province", url: url(server.port))
        settings.maxRecords = 2
        let uplink = try ReceiverUplink(settings: settings, journalPath: environment.journalPath, validator: try makeValidator(),
                                        logger: .silent)

        #expect(try await uplink.step() == .delivered(packageId: "410103-1", outcome: "receipt"))
        #expect(try uplink.store.deadLetters(receiver: "province").map(\.key) == ["NEW1"])
        #expect(try uplink.store.pendingPackage(receiver: "province")?.packageId == "410103-2", "fixed with the receipt")
        #expect(try uplink.store.resendDeadLetters(ids: nil, receiver: "province", now: Date()) == 1)
        #expect(try await uplink.drain().drained)

        let packages = try uplink.store.packages(receiver: "province")
        #expect(packages.map(\.packageId) == (1...6).map { "410103-\($0)" })
        #expect(packages.allSatisfy { $0.state == .receipted })
        #expect(try packages.map { try uplink.store.members(receiver: "province", packageId: $0.packageId).map(\.key) }
            == [["OK1", "NEW1"], ["OK2", "OK3"], ["NEW1"], ["OK4", "OK5"], ["OK6", "OK7"], ["OK8", "OK9"]])
        #expect(server.receiver.packages() == Dictionary(uniqueKeysWithValues: packages.map { ($0.packageId, $0.digest) }))
        // The catalog still lacks ZZ9998: the resent revision is rejected again (a new dead letter); all else once.
        #expect(try uplink.store.deadLetters(receiver: "province", includeResolved: true).map(\.state) == ["resent", "open"])
        let accepted = server.receiver.acceptanceCounts()
        #expect(accepted.count == 9 && accepted.values.allSatisfy { $0 == 1 })
        let status = try uplink.store.status(of: uplink.settings)
        #expect(status.lag == 0 && status.cursor == 10 && status.resendQueued == 0 && status.pending == nil)
    }

    /// A record that alone exceeds the byte limit (possible only with a small `maxBytes`; 8 MiB holds any
    /// schema-valid record) is a dead letter with X100, not skipped without a trace; the others are delivered.
    @Test func aRecordLargerThanAPackageBecomesADeadLetter() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let journal = try Journal(path: environment.journalPath, durable: false)
        let big = try application("BIG", itemName: String(repeating: "长", count: 60))
        let records = [try application("OK1"), big, try application("OK2")]
        try journal.batch { for r in records { _ = try journal.append(r, source: "t", origin: nil, line: 0) } }
        let server = try environment.sandbox()
        defer { server.stop() }
        var settings = environment.settings(name: "province", url: url(server.port))
        settings.maxRecords = 1
        // Room for the envelope and one ordinary record, not for BIG's 170 bytes more.
        let builder = PackageBuilder(sender: "410103", receiver: "410000", validator: try makeValidator())
        let ordinary = try #require(try builder.buildDirect(n: 1, entries: [try journal.entries(after: 0)[0]], now: Date()))
        settings.maxBytes = ordinary.request.count + 50
        let uplink = try ReceiverUplink(settings: settings, journalPath: environment.journalPath, validator: try makeValidator(),
                                        logger: .silent)
        #expect(try await uplink.drain().drained)
        let letters = try uplink.store.deadLetters(receiver: "province")
        #expect(letters.map(\.key) == ["BIG"] && letters.first?.code == "X100")
        #expect(letters.first?.message.contains("alone exceeds the package limit") == true, "\(letters.first?.message ?? "-")")
        #expect(server.receiver.acceptanceCounts().count == 2)
        #expect(try uplink.store.status(of: uplink.settings).lag == 0)
        // Put back by an operator: it still does not fit; it is held back again, and the queue does not stall.
        #expect(try uplink.store.resendDeadLetters(ids: nil, receiver: "province", now: Date()) == 1)
        #expect(try await uplink.drain(maxWait: .seconds(5)).drained)
        #expect(try uplink.store.deadLetters(receiver: "province").map(\.key) == ["BIG"])
        #expect(try uplink.store.status(of: uplink.settings).resendQueued == 0)
    }

    /// A journal of seven records and a pre-builder (and its builder) making packages of two.
    private func sevenRecordsInPackagesOfTwo(_ environment: TestEnvironment, now: Date) throws -> (PackagePrebuilder, PackageBuilder) {
        try fillJournal(environment.journalPath, count: 7)
        var builder = PackageBuilder(sender: "410103", receiver: "410000", validator: try makeValidator())
        builder.maxRecords = 2
        return (PackagePrebuilder(name: "t", journalPath: environment.journalPath, builder: builder, types: [],
                                  logger: .silent, now: { now }), builder)
    }

    /// The pre-builder stays two packages ahead: a started job goes on with its successor once done; a successor
    /// goes on with its own only when claimed (so it never runs through the journal on its own), and each builds
    /// the bytes the one-pass builder makes for the same number and position.
    @Test func thePrebuilderChainsOneSuccessorAtATimeAndBuildsWhatTheBuilderBuilds() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let fixedNow = Date(timeIntervalSince1970: 1_800_000_000)
        let (prebuilder, builder) = try sevenRecordsInPackagesOfTwo(environment, now: fixedNow)
        let first = prebuilder.start(n: 1, after: 0)
        #expect(try #require(await first.result()).package.memberSeqs == [1, 2])
        let second = try #require(first.successor, "a started job goes on with the package after it")
        #expect(second.n == 2 && second.after == 2)
        #expect(try #require(await second.result()).package.memberSeqs == [3, 4])
        #expect(!second.successorStarted, "not claimed: the chain stops here")
        prebuilder.claim(second)
        #expect(second.successorStarted)
        let third = try #require(second.successor)
        let built = try #require(await third.result())
        #expect(third.n == 3 && third.after == 4 && built.package.memberSeqs == [5, 6])
        let journal = try Journal(path: environment.journalPath, durable: false)
        let direct = try #require(try builder.buildDirect(n: 3, entries: try journal.entries(after: 4, limit: 2), now: fixedNow))
        #expect(built.package.request == direct.request && built.package.digest == direct.digest)
        prebuilder.claim(third)
        let fourth = try #require(third.successor)
        #expect(try #require(await fourth.result()).package.memberSeqs == [7])
        prebuilder.claim(fourth)
        let fifth = try #require(fourth.successor)
        #expect(await fifth.result() == nil, "nothing after the last record")
        #expect(fifth.successor == nil)
    }

    /// A package the uplink stopped waiting for (a failed attempt, a resend queued) stops its chain: the job after
    /// it is not started, even when asked for later, so the pre-builder's queue holds nothing stale.
    @Test func anAbandonedPrebuildStartsNoSuccessor() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let (prebuilder, _) = try sevenRecordsInPackagesOfTwo(environment, now: Date())
        let first = prebuilder.start(n: 1, after: 0)
        _ = await first.result()
        let second = try #require(first.successor)
        _ = await second.result()
        let third = try #require(second.successor)
        second.abandon()
        #expect(third.isAbandoned, "the chain after it too")
        prebuilder.claim(second)
        #expect(!second.successorStarted, "asked for after it was abandoned: still not started")
    }

    /// The background build may find nothing yet (or fewer records); records journaled meanwhile still go out in
    /// order, exactly once, in numbers never reused.
    @Test func recordsJournaledWhileAPackageIsBuiltAheadAreDeliveredInOrder() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        try fillJournal(environment.journalPath, count: 4)
        let server = try environment.sandbox()
        defer { server.stop() }
        var settings = environment.settings(name: "province", url: url(server.port))
        settings.maxRecords = 2
        let uplink = try ReceiverUplink(settings: settings, journalPath: environment.journalPath, validator: try makeValidator(),
                                        logger: .silent)
        #expect(try await uplink.step() == .delivered(packageId: "410103-1", outcome: "receipt"))
        for round in 0..<5 {
            try fillJournal(environment.journalPath, count: 3, prefix: "D", start: 1 + round * 3)
            _ = try await uplink.step()
        }
        #expect(try await uplink.drain().drained)
        let packages = try uplink.store.packages(receiver: "province")
        #expect(packages.map(\.packageId) == (1...packages.count).map { "410103-\($0)" })
        #expect(packages.allSatisfy { $0.state == .receipted })
        let seqs = try packages.flatMap { try uplink.store.members(receiver: "province", packageId: $0.packageId).map(\.seq) }
        #expect(seqs == Array(1...19))
        #expect(server.receiver.packages() == Dictionary(uniqueKeysWithValues: packages.map { ($0.packageId, $0.digest) }))
        let accepted = server.receiver.acceptanceCounts()
        #expect(accepted.count == 19 && accepted.values.allSatisfy { $0 == 1 })
    }

    /// The pre-builder reads the journal without an entry or a body copy per record (`buildDirect(n:from:after:types:now:)`): for every
    /// position, record and byte limit and type filter it gives the bytes and members `buildDirect` gives for the
    /// entries `Journal.entries` reads, and like it gives way (nil) to the path that holds a record back when a
    /// stored body is damaged or its root is not the record's type.
    @Test func theJournalStreamingComposerGivesTheBytesOfBuildDirect() throws {
        let environment = try TestEnvironment.make(certificates: false)
        defer { environment.remove() }
        let journal = try Journal(path: environment.journalPath, durable: false)
        try journalTextRecords(journal, texts: builderTestTexts, rounds: 12)
        _ = try journal.batch {
            for index in 0..<30 {
                _ = try journal.append(NormalizedRecord(type: "Step", key: "S\(index)", body: "<Step><CaseNo>S\(index)</CaseNo></Step>"),
                                       source: "t", origin: nil, line: index)
            }
            // An attribute inside: declined by the compact form, stored as XML, sent like any other record.
            _ = try journal.append(NormalizedRecord(type: "Application", key: "X2", body: "<Application><CaseNo kind=\"x\">X2</CaseNo></Application>"),
                                   source: "t", origin: nil, line: 0)
        }
        let all = try journal.entries(after: 0, limit: .max)
        #expect(all.contains { $0.deleted } && all.contains { $0.storedBody.first == 0x3C })
        let now = Date(timeIntervalSince1970: 1_790_000_000)
        var builder = PackageBuilder(sender: "410103", receiver: "410000", validator: try makeValidator())
        var compared = 0
        var endedEarly = 0
        for maxRecords in [1, 7, 1000] {
            for maxBytes in [1_400, 9_000, PUIWire.maxRequestBytes] {
                builder.maxRecords = maxRecords
                builder.maxBytes = maxBytes
                for after in [Int64(0), 5, Int64(all.count - 40), Int64(all.count - 3)] {
                    for types in [nil, ["Step"], ["Application"]] as [[String]?] {
                        let entries = try journal.entries(after: after, limit: maxRecords, types: types)
                        let direct = try builder.buildDirect(n: 9, entries: entries, now: now)
                        let streamed = try builder.buildDirect(n: 9, from: journal, after: after, types: types, now: now)
                        let sameBytes = streamed?.request == direct?.request   // a Bool: a failure does not print 8 MiB
                        #expect(sameBytes, "maxRecords \(maxRecords), maxBytes \(maxBytes), after \(after), types \(types ?? [])")
                        #expect(streamed?.memberSeqs == direct?.memberSeqs && streamed?.digest == direct?.digest)
                        if let direct {
                            compared += 1
                            if direct.memberSeqs.count < entries.count { endedEarly += 1 }
                        }
                    }
                }
            }
        }
        #expect(compared > 60 && endedEarly > 3, "\(compared) packages compared, \(endedEarly) ended by the byte limit")
        // A root that is not the record's type, then a damaged body: nil from both paths.
        builder.maxRecords = 1000
        builder.maxBytes = PUIWire.maxRequestBytes
        _ = try journal.batch {
            try journal.append(NormalizedRecord(type: "Application", key: "X1", body: "<Application a=\"1\"><CaseNo>X1</CaseNo></Application>"),
                               source: "t", origin: nil, line: 0)
        }
        #expect(try builder.buildDirect(n: 1, from: journal, after: Int64(all.count - 2), types: nil, now: now) == nil)
        #expect(try builder.buildDirect(n: 1, from: journal, after: Int64(all.count - 2), types: ["Step"], now: now) != nil,
                "a filter that leaves the odd record out")
        try rewriteStoredBody(path: environment.journalPath, seq: 3) { Array($0.dropLast(4)) }
        let reopened = try Journal(path: environment.journalPath, durable: false)
        #expect(try builder.buildDirect(n: 1, from: reopened, after: 0, types: nil, now: now) == nil)
        #expect(try builder.buildDirect(n: 1, entries: try reopened.entries(after: 0), now: now) == nil)
        #expect(try builder.buildDirect(n: 1, from: reopened, after: 3, types: ["Step"], now: now) != nil, "past the damaged body")
    }
}
