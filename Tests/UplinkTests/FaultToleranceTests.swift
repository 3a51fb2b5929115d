import Foundation
import GatewayModel
import Journal
import SandboxReceiver
import Testing
import Uplink

/// The "Done means" against the independent Python receiver (Fixtures/pui_peer.py), with its faults.
@Suite struct FaultToleranceTests {
    /// 50,000 records (and 500 second revisions) through a receiver that fails at random in every way the spec
    /// allows: every (key, rev) arrives exactly once or is a visible dead letter with the receiver's code.
    @Test func fiftyThousandRecordsArriveExactlyOnceWhileTheReceiverFailsAtRandom() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let total = 50_000
        try fillJournal(environment.journalPath, count: total)
        let journal = try Journal(path: environment.journalPath, durable: false)
        try journal.batch {
            for i in stride(from: 100, through: total, by: 100) {
                _ = try journal.append(try application("C\(i)", itemCode: "XK0002", itemName: "企业名称预先核准"),
                                       source: "test", origin: nil, line: 0)
            }
        }
        let entries = try journal.entries(after: 0, limit: 100_000)
        #expect(entries.count == total + 500)
        // Client timeout 3 s; a "late" package is stored and answered after 5 s: the client has given up by then.
        let peer = try PythonReceiver(environment: environment, faults: [
            "--seed", "7", "--busy-rate", "0.05", "--retry-after", "1", "--fault-rate", "0.1", "--drop-rate", "0.05",
            "--late-rate", "0.08", "--late-delay", "5", "--reject-every", "97", "--reject-code", "R201",
        ])
        defer { peer.stop() }
        let uplink = try ReceiverUplink(settings: environment.settings(name: "province", url: url(peer.port), timeout: .seconds(3)),
                                        journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        let summary = try await uplink.drain(maxWait: .seconds(10))
        #expect(summary.drained, "\(summary)")

        let stats = try peer.stats()
        #expect(stats.faults.isEmpty, "no E-code: digests, schema, CN and PackageIds all hold (\(stats.fault_messages))")
        #expect(stats.bad_headers == 0 && stats.incomplete == 0, "every request arrived whole")
        for kind in ["busy", "fault", "drop", "late"] {
            #expect((stats.injected_kinds[kind] ?? 0) > 0, "fault kind \(kind) was injected")
        }
        #expect(stats.early_retries == 0, "Retry-After honoured")
        #expect(stats.resent >= (stats.injected_kinds["late"] ?? 0), "each package stored late was resent and got its receipt")
        #expect(stats.accepted_twice.isEmpty)
        #expect(stats.duplicates == 0)

        // Exactly once, by key and rev: every journal entry was accepted once or rejected (never both, never lost).
        let rejected = Set(stats.rejected.keys)
        let expectedAccepted = entries.filter { !rejected.contains("Application|\($0.key)|\($0.rev)") }
        #expect(!rejected.isEmpty)
        #expect(stats.accepted == expectedAccepted.count)
        #expect(stats.accepted + rejected.count == total + 500)
        var highest: [String: Int64] = [:]
        for entry in expectedAccepted { highest["Application|\(entry.key)"] = max(highest["Application|\(entry.key)"] ?? 0, entry.rev) }
        #expect(stats.records == highest.mapValues { Int($0) })

        // The gateway's side: every package receipted, same ids and digests as the receiver holds; the rejected
        // records are its dead letters with the receiver's code and index.
        let packages = try uplink.store.packages(receiver: "province")
        #expect(packages.allSatisfy { $0.state == .receipted })
        #expect(stats.packages == Dictionary(uniqueKeysWithValues: packages.map { ($0.packageId, $0.digest) }))
        let letters = try uplink.store.deadLetters(receiver: "province", limit: 10_000)
        #expect(Set(letters.map { "Application|\($0.key)|\($0.rev)" }) == rejected)
        #expect(letters.allSatisfy { $0.code == "R201" && $0.field == "ItemCode" && $0.index != nil })
        let status = try uplink.store.status(of: uplink.settings)
        #expect(status.lag == 0 && status.cursor == Int64(total + 500) && status.pending == nil)
    }
}

@Suite struct DeadLetterResendTests {
    /// R201 because the province's catalog lacked an item: once the catalog is fixed, the operator resends the
    /// dead letters and the same revisions are delivered, in a new package, without touching the source.
    @Test func resentDeadLettersAreDeliveredAsTheyAreAfterTheReceiverFixedItsCatalog() async throws {
        let environment = try TestEnvironment.make()
        defer { environment.remove() }
        let journal = try Journal(path: environment.journalPath, durable: false)
        let records = [try application("OK1"), try application("NEW1", itemCode: "ZZ9998"), try application("OK2"),
                       try application("NEW2", itemCode: "ZZ9999")]
        try journal.batch { for r in records { _ = try journal.append(r, source: "t", origin: nil, line: 0) } }
        var options = SandboxOptions()
        options.referenceDataFile = fixture("reference-data.xml")
        let strict = try environment.sandbox(options)
        let uplink1 = try ReceiverUplink(settings: environment.settings(name: "province", url: url(strict.port)),
                                         journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        #expect(try await uplink1.drain().drained)
        strict.stop()
        let letters = try uplink1.store.deadLetters(receiver: "province")
        #expect(letters.map(\.code) == ["R201", "R201"])
        #expect(letters.map(\.key) == ["NEW1", "NEW2"])
        // Nothing to resend yet: the journal continues normally.
        _ = try journal.append(try application("OK3"), source: "t", origin: nil, line: 0)
        // The province added the items: the same database, no catalog check any more.
        let fixed = try environment.sandbox(database: "sandbox.sqlite")
        defer { fixed.stop() }
        let uplink = try ReceiverUplink(settings: environment.settings(name: "province", url: url(fixed.port)),
                                        journalPath: environment.journalPath, validator: try makeValidator(), logger: .silent)
        #expect(try uplink.store.resendDeadLetters(ids: [letters[0].id], receiver: nil, now: Date()) == 1)
        #expect(try uplink.store.resendDeadLetters(ids: [letters[0].id], receiver: nil, now: Date()) == 0, "only open ones")
        #expect(try uplink.store.status(of: uplink.settings).resendQueued == 1)
        #expect(try await uplink.drain().drained)
        #expect(try uplink.store.resendDeadLetters(ids: nil, receiver: "province", now: Date()) == 1)
        #expect(try await uplink.drain().drained)
        let held = Dictionary(uniqueKeysWithValues: fixed.receiver.records().map { ($0.key, $0.rev) })
        #expect(held == ["OK1": 1, "OK2": 1, "OK3": 1, "NEW1": 1, "NEW2": 1])
        #expect(fixed.receiver.acceptanceCounts().values.allSatisfy { $0 == 1 })
        #expect(try uplink.store.openDeadLetterCount(receiver: "province") == 0)
        #expect(try uplink.store.deadLetters(receiver: "province", includeResolved: true).map(\.state) == ["resent", "resent"])
        let packages = try uplink.store.packages(receiver: "province")
        #expect(packages.map(\.packageId) == ["410103-1", "410103-2", "410103-3", "410103-4"])
        #expect(packages.allSatisfy { $0.state == .receipted })
        // The resend goes before the journal continues.
        #expect(try ["410103-2", "410103-3", "410103-4"].map { try uplink.store.members(receiver: "province", packageId: $0).map(\.key) }
            == [["NEW1"], ["OK3"], ["NEW2"]])
        let status = try uplink.store.status(of: uplink.settings)
        #expect(status.lag == 0 && status.cursor == 5 && status.resendQueued == 0)
    }
}
