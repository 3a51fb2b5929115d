import Foundation
import GatewayModel
import Testing
@testable import Journal

private func temporaryJournal() throws -> (Journal, URL) {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-journal-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return (try Journal(path: folder.appendingPathComponent("journal.sqlite").path), folder)
}

private func step(_ caseNo: String, opinion: String) -> NormalizedRecord {
    NormalizedRecord(type: "Step", key: "\(caseNo)\u{1F}02\u{1F}2026-01-05T08:37:00+08:00",
                     body: "<Step><CaseNo>\(caseNo)</CaseNo><Opinion>\(opinion)</Opinion></Step>")
}

@Suite struct RevisionTests {
    @Test func sameContentAddsNothingChangedContentAddsARevision() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        let first = try journal.batch { try journal.append(step("C1", opinion: "a"), source: "s", origin: "f.csv", line: 2) }
        #expect(first == .stored(rev: 1, seq: 1))
        let again = try journal.batch { try journal.append(step("C1", opinion: "a"), source: "s", origin: "g.csv", line: 9) }
        #expect(again == .unchanged)
        let changed = try journal.batch { try journal.append(step("C1", opinion: "b"), source: "s", origin: "g.csv", line: 9) }
        #expect(changed == .stored(rev: 2, seq: 2))
        let back = try journal.batch { try journal.append(step("C1", opinion: "a"), source: "s", origin: "h.csv", line: 3) }
        #expect(back == .stored(rev: 3, seq: 3), "returning to an older content is a change too")
        let other = try journal.batch { try journal.append(step("C2", opinion: "a"), source: "s", origin: "h.csv", line: 4) }
        #expect(other == .stored(rev: 1, seq: 4), "revisions count per key")
        let entries = try journal.entries(after: 0)
        #expect(entries.map(\.rev) == [1, 2, 3, 1])
        #expect(entries[1].origin == "g.csv")
        #expect(entries[1].line == 9)
        #expect(try journal.head(type: "Step", key: step("C1", opinion: "").key)?.rev == 3)
    }

    @Test func aRolledBackBatchLeavesNoTrace() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        struct Boom: Error {}
        #expect(throws: JournalError.self) {
            try journal.batch {
                _ = try journal.append(step("C1", opinion: "a"), source: "s", origin: nil, line: 1)
                throw Boom()
            }
        }
        #expect(try journal.entries(after: 0).isEmpty)
        #expect(try journal.batch { try journal.append(step("C1", opinion: "a"), source: "s", origin: nil, line: 1) } == .stored(rev: 1, seq: 1))
    }
}

@Suite struct CursorAndQuarantineTests {
    @Test func cursorsOnlyMoveForward() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        for index in 1...5 { _ = try journal.batch { try journal.append(step("C\(index)", opinion: "x"), source: "s", origin: nil, line: index) } }
        #expect(try journal.cursor("uplink:province") == 0)
        try journal.advanceCursor("uplink:province", to: 3)
        try journal.advanceCursor("uplink:province", to: 2)
        #expect(try journal.cursor("uplink:province") == 3)
        #expect(try journal.entries(after: 3).map(\.seq) == [4, 5])
        let stats = try journal.stats()
        #expect(stats.cursors == [JournalStats.CursorPosition(consumer: "uplink:province", seq: 3, lag: 2)])
        #expect(stats.records == 5)
    }

    @Test func quarantineKeepsRawBytesAndHeaderAndCanBeResolved() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        let raw: [UInt8] = [0xB6, 0xFE, 0xC6, 0xDF, 0x2C, 0xFF]
        try journal.batch {
            try journal.quarantine(QuarantineItem(source: "drop", mapping: "m", origin: "a.csv", line: 7, stage: .decode,
                                                  recordType: "", field: "", reason: "bad byte", raw: raw,
                                                  encoding: "gb18030", header: ["办件编号", "备注"]))
        }
        let entry = try #require(try journal.quarantined().first)
        #expect(entry.item.raw == raw)
        #expect(entry.item.header == ["办件编号", "备注"])
        #expect(entry.item.line == 7)
        try journal.resolveQuarantine(id: entry.id)
        #expect(try journal.quarantined().isEmpty)
        #expect(try journal.quarantined(openOnly: false).first?.state == "replayed")
    }

    @Test func reopeningTheJournalKeepsEverything() throws {
        let (journal, folder) = try temporaryJournal()
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try journal.batch { try journal.append(step("C1", opinion: "a"), source: "s", origin: nil, line: 1) }
        let reopened = try Journal(path: journal.path)
        #expect(try reopened.batch { try reopened.append(step("C1", opinion: "a"), source: "s", origin: nil, line: 1) } == .unchanged)
        #expect(try reopened.batch { try reopened.append(step("C1", opinion: "b"), source: "s", origin: nil, line: 1) } == .stored(rev: 2, seq: 2))
    }
}
