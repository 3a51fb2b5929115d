import Foundation
import SQLiteSupport

/// A record identity (type and journal key) as a snapshot source produced it.
public struct SnapshotKey: Hashable, Sendable {
    public let type: String
    public let key: String

    public init(type: String, key: String) {
        self.type = type
        self.key = key
    }
}

/// What the quarantined rows of one snapshot poll may stand for. A bad row is not a removed row: a key it would
/// have produced must not be withdrawn just because its row failed this time.
public struct SnapshotHold: Sendable, Equatable {
    /// Keys the quarantined rows would have produced (their key fields did map).
    public var keys: Set<SnapshotKey> = []
    /// Record types with a quarantined row whose key could not be worked out: none of their keys is provably gone.
    public var types: Set<String> = []
    /// A quarantined row matched no record route at all, so no key of any type is provably gone.
    public var allTypes = false

    public init() {}

    public var isEmpty: Bool { keys.isEmpty && types.isEmpty && !allTypes }

    public mutating func merge(_ other: SnapshotHold) {
        keys.formUnion(other.keys)
        types.formUnion(other.types)
        allTypes = allTypes || other.allTypes
    }

    /// Whether a key missing from the snapshot might still be in the source, behind a quarantined row.
    func mayStandFor(_ key: SnapshotKey) -> Bool {
        allTypes || types.contains(key.type) || keys.contains(key)
    }
}

/// What closing a complete snapshot did.
public struct SnapshotClosing: Sendable, Equatable, Codable {
    /// Keys the previous complete snapshot produced (0 on the first one: nothing can be deleted then).
    public var previousKeys = 0
    /// Keys this snapshot produced (plus those held for quarantined rows).
    public var keys = 0
    /// Keys withdrawn (`op="delete"` revisions appended).
    public var deleted = 0
    /// Missing keys not withdrawn because a quarantined row of this poll may stand for them.
    public var held = 0
    /// Missing keys not withdrawn because there were too many of them (`max_delete_percent`).
    public var refused = 0
    /// Set when the mass-deletion guard refused: why, for the log and the adapter's health.
    public var refusal: String?

    public init() {}
}

extension Journal {
    private func ensureSnapshotTable() throws {
        // WITHOUT ROWID and keyed by source first: a poll reads and rewrites one source's keys as a range.
        try database.execute("""
            CREATE TABLE IF NOT EXISTS snapshot_keys(
                source TEXT NOT NULL, type TEXT NOT NULL, key TEXT NOT NULL,
                PRIMARY KEY(source, type, key)) WITHOUT ROWID
            """)
    }

    /// The keys the last complete snapshot of `source` produced.
    public func snapshotKeys(source: String) throws(JournalError) -> Set<SnapshotKey> {
        do {
            try ensureSnapshotTable()
            return try readSnapshotKeys(source: source)
        } catch {
            throw JournalError(operation: "read snapshot keys of \(source)", underlying: "\(error)")
        }
    }

    private func readSnapshotKeys(source: String) throws -> Set<SnapshotKey> {
        let statement = try database.prepare("SELECT type, key FROM snapshot_keys WHERE source = ?1")
        try statement.bind([.text(source)])
        var keys = Set<SnapshotKey>()
        while try statement.step() { keys.insert(SnapshotKey(type: statement.text(at: 0), key: statement.text(at: 1))) }
        return keys
    }

    /// Ends a snapshot poll that was read completely: withdraws every key the previous complete snapshot of
    /// `source` produced and this one did not, and saves this snapshot's keys for the next poll.
    ///
    /// Must run inside the transaction that stored the poll's records (between `begin()` and `commit()`), so that
    /// records, deletions and the saved key set become durable together or not at all; a crash before the commit
    /// leaves the previous key set, and the next complete poll finds the same missing keys again.
    ///
    /// A missing key is left alone, and kept in the saved set so that a later poll may still withdraw it, when
    /// - a quarantined row of this poll may stand for it (`hold`);
    /// - withdrawing all the missing keys would withdraw more than `maxDeletePercent` % of the previous snapshot's
    ///   keys (an emptied view or a truncated table must not withdraw everything): nothing is withdrawn then and
    ///   `refusal` says why.
    /// A missing key whose latest revision came from another source is not this source's to withdraw, and one
    /// already withdrawn needs nothing more; both leave the set.
    public func closeSnapshot(source: String, produced: Set<SnapshotKey>, hold: SnapshotHold, maxDeletePercent: Int,
                              origin: String?) throws(JournalError) -> SnapshotClosing {
        guard inTransaction else {
            throw JournalError(operation: "close snapshot of \(source)",
                               underlying: "not inside a transaction: the deletions must commit with the poll's records")
        }
        var closing = SnapshotClosing()
        var kept = produced.union(hold.keys)
        var deletable: [SnapshotKey] = []
        let previous: Set<SnapshotKey>
        do {
            try ensureSnapshotTable()
            previous = try readSnapshotKeys(source: source)
            let latestSeq = try database.prepare("SELECT seq FROM heads WHERE type = ?1 AND key = ?2")
            // Sorted, so that deletions get their seqs in a stable order (the same poll gives the same journal).
            for key in previous.subtracting(kept).sorted(by: { ($0.type, $0.key) < ($1.type, $1.key) }) {
                if hold.mayStandFor(key) {
                    closing.held += 1
                    kept.insert(key)
                    continue
                }
                try latestSeq.bind([.text(key.type), .text(key.key)])
                let seq = try latestSeq.step() ? latestSeq.int(at: 0) : nil
                latestSeq.reset()
                // The key's latest record: this source's to withdraw only if it came from here and is not a deletion.
                if let seq, let latest = try entries(seqs: [seq]).first, latest.source == source, !latest.deleted {
                    deletable.append(key)
                }
            }
        } catch {
            throw JournalError(operation: "close snapshot of \(source)", underlying: "\(error)")
        }
        closing.previousKeys = previous.count
        let limit = previous.count * max(0, min(100, maxDeletePercent))
        if deletable.count * 100 > limit {
            closing.refused = deletable.count
            closing.refusal = "snapshot of \(source) would withdraw \(deletable.count) of \(previous.count) keys, more than max_delete_percent \(maxDeletePercent) %; nothing withdrawn (check the source, or raise max_delete_percent for one poll if the rows are really gone)"
            kept.formUnion(deletable)
        } else {
            for key in deletable {
                if case .stored = try appendDeletion(type: key.type, key: key.key, source: source, origin: origin) {
                    closing.deleted += 1
                }
            }
        }
        closing.keys = kept.count
        do {
            try replaceSnapshotKeys(source: source, previous: previous, with: kept)
        } catch {
            throw JournalError(operation: "save snapshot keys of \(source)", underlying: "\(error)")
        }
        return closing
    }

    /// Writes only the difference: an unchanged snapshot (the usual poll) writes nothing.
    private func replaceSnapshotKeys(source: String, previous: Set<SnapshotKey>, with keys: Set<SnapshotKey>) throws {
        let remove = try database.prepare("DELETE FROM snapshot_keys WHERE source = ?1 AND type = ?2 AND key = ?3")
        for key in previous.subtracting(keys) { try remove.run([.text(source), .text(key.type), .text(key.key)]) }
        let add = try database.prepare("INSERT OR IGNORE INTO snapshot_keys(source, type, key) VALUES (?1, ?2, ?3)")
        for key in keys.subtracting(previous) { try add.run([.text(source), .text(key.type), .text(key.key)]) }
    }
}
