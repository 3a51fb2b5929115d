import Foundation
import GatewayModel
import SQLiteSupport
import Testing
@testable import Journal

private func camera(_ id: String, _ name: String = "cam") -> NormalizedRecord {
    NormalizedRecord(type: "Camera", key: id, body: "<Camera><CameraId>\(id)</CameraId><Name>\(name)</Name></Camera>")
}

private func keys(_ ids: [String]) -> Set<SnapshotKey> { Set(ids.map { SnapshotKey(type: "Camera", key: $0) }) }

/// One snapshot poll as the ODBC adapter runs it: records and closing in one transaction.
private func poll(_ journal: Journal, _ ids: [String], source: String = "cams", hold: SnapshotHold = SnapshotHold(),
                  maxDeletePercent: Int = 50) throws -> SnapshotClosing {
    try journal.batch {
        for id in ids { _ = try journal.append(camera(id), source: source, origin: "odbc", line: 0) }
        return try journal.closeSnapshot(source: source, produced: keys(ids), hold: hold, maxDeletePercent: maxDeletePercent,
                                         origin: "odbc")
    }
}

@Suite struct SnapshotClosingTests {
    private func temporaryJournal() throws -> (Journal, URL) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-snap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return (try Journal(path: folder.appendingPathComponent("journal.sqlite").path, durable: false), folder)
    }

    @Test func missingKeysAreWithdrawnOnceAndAReturningKeyIsANewRevision() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        let first = try poll(journal, ["A", "B", "C", "D"])
        #expect(first.previousKeys == 0 && first.deleted == 0 && first.keys == 4)
        let second = try poll(journal, ["A", "C", "D"])
        #expect(second.deleted == 1)
        let deletion = try #require(try journal.entries(after: 4).first)
        #expect(deletion.key == "B" && deletion.deleted && deletion.rev == 2 && deletion.body == camera("B").body)
        #expect(try journal.snapshotKeys(source: "cams") == keys(["A", "C", "D"]))
        #expect(try poll(journal, ["A", "C", "D"]).deleted == 0)
        #expect(try journal.entries(after: 0).count == 5)
        _ = try poll(journal, ["A", "B", "C", "D"])
        let back = try #require(try journal.entries(after: 5).first)
        #expect(back.key == "B" && !back.deleted && back.rev == 3)
    }

    @Test func closingOutsideATransactionIsRefused() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(throws: JournalError.self) {
            try journal.closeSnapshot(source: "cams", produced: [], hold: SnapshotHold(), maxDeletePercent: 50, origin: nil)
        }
    }

    @Test func theMassDeletionGuardWithdrawsNothingAndKeepsTheKeys() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try poll(journal, ["A", "B", "C", "D"])
        let emptied = try poll(journal, [])
        #expect(emptied.deleted == 0 && emptied.refused == 4)
        #expect(emptied.refusal?.contains("4 of 4") == true)
        #expect(try journal.snapshotKeys(source: "cams") == keys(["A", "B", "C", "D"]))
        // Exactly the limit passes: 2 of 4 is 50 %.
        let half = try poll(journal, ["A", "B"])
        #expect(half.deleted == 2 && half.refusal == nil)
        #expect(try poll(journal, [], maxDeletePercent: 100).deleted == 2)
        #expect(try journal.entries(after: 0).filter(\.deleted).count == 4)
    }

    @Test func keysAQuarantinedRowMayStandForAreKept() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try poll(journal, ["A", "B", "C", "D", "E", "F"])
        var byKey = SnapshotHold()
        byKey.keys = keys(["B"])
        let kept = try poll(journal, ["A", "D", "E", "F"], hold: byKey)
        #expect(kept.deleted == 1 && kept.held == 0)   // C withdrawn, B is the bad row's key
        var byType = SnapshotHold()
        byType.types = ["Camera"]
        let held = try poll(journal, ["A", "E", "F"], hold: byType)
        #expect(held.deleted == 0 && held.held == 2)   // B and D: any of them could be the bad row
        #expect(try journal.snapshotKeys(source: "cams") == keys(["A", "B", "D", "E", "F"]))
        // Once the bad row is gone too, both go.
        #expect(try poll(journal, ["A", "E", "F"]).deleted == 2)
    }

    @Test func aKeyLastWrittenByAnotherSourceIsNotWithdrawn() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try poll(journal, ["A", "B", "C"])
        _ = try journal.batch { try journal.append(camera("B", "renamed"), source: "hall", origin: "f.csv", line: 2) }
        let closing = try poll(journal, ["A", "C"])
        #expect(closing.deleted == 0)
        #expect(try journal.entries(after: 0).filter(\.deleted).isEmpty)
        #expect(try journal.snapshotKeys(source: "cams") == keys(["A", "C"]))
    }
}
