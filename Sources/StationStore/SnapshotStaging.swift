#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SQLiteLink
import StationDomain

// Entitlement snapshots in parts (abs-mqtt.md contract 1.1, "Large commands over a thin link";
// docs/store.md "Snapshots in parts").
//
// Each part is staged durably, in one transaction, into `snapshot_part_row` (the records) and
// `snapshot_part` (which parts arrived), under the one unfinished set in `snapshot_part_set`
// (snapshot_id, version, counted_through_seq, parts). Parts come in any order and more than once (a
// part already staged changes nothing). When the last missing part is staged, the records are
// copied inside SQLite (INSERT … SELECT, in key-ordered chunks) into `entitlement_staging` and
// swapped in by the same transaction as a whole snapshot (`swapInStagedSnapshot`, which also applies
// the `counted_through_seq` rule). No Swift ever holds more than one part's records.
//
// "Newer" (which unfinished snapshot_id wins): a part of another snapshot_id discards the unfinished
// set when its `version` is higher, or equal (the later arrival wins), or when every part of the
// unfinished set has expired (its latest `expires_at` passed: ABS gave up on it, e.g. a restored ABS
// whose versions restarted). A part with a lower version while a live set is staging is not
// staged (`.olderThanStaging`). A whole snapshot discards the unfinished set when it swaps in.
//
// Rows of a discarded set are not deleted in the transaction that discards it (a 100 000-row DELETE
// holds the writer for a while) but afterwards, in chunks: they are the rows whose `set_no` has no
// set (set numbers are never reused: AUTOINCREMENT).

/// The result of `stageEntitlementSnapshotPart`.
public enum SnapshotPartOutcome: Sendable, Equatable {
    /// The part is staged (or was already: a duplicate changes nothing); `missing` parts of the snapshot
    /// have not arrived yet (`firstMissing`: the lowest of them, at most `firstMissingListed`).
    case staged(missing: Int, firstMissing: [Int], duplicate: Bool)
    /// The part completed the snapshot: it was swapped in (`count` records).
    case applied(count: Int, duplicate: Bool)
    /// The snapshot_id is the last snapshot applied (a late copy of one of its parts): nothing changed.
    case alreadyApplied
    /// A live unfinished snapshot with a higher version is staging: this part is not staged.
    case olderThanStaging(stagingSnapshotID: String, stagingVersion: Int64)
    /// The part disagrees with the parts already staged for its snapshot_id (version, parts,
    /// counted_through_seq, or a record that another part carries): nothing staged.
    case inconsistent(String)
}

/// What is staged of a snapshot in parts (diagnostics, tests).
public struct SnapshotStagingState: Sendable, Equatable {
    public let snapshotID: String
    public let version: Int64
    public let parts: Int
    public let staged: [Int]
    public let rows: Int
}

extension StationStore {
    /// The lowest missing part numbers listed in a reply.
    public static let firstMissingListed = 20

    enum SnapshotPartMetaKey {
        /// The snapshot_id of the last snapshot in parts swapped in (a late part of it is ignored).
        static let appliedSnapshotID = "entitlements.snapshot_id"
    }

    private struct PartSet: Sendable {
        let setNo: Int64
        let snapshotID: String
        let version: Int64
        let countedThroughSeq: Int64?
        let parts: Int
        let expiresAtMs: Int64
    }

    private struct InconsistentPart: Error {
        let message: String
    }

    /// Stages one part of the snapshot `snapshotID` (see the top of this file); swaps the snapshot in
    /// when this part completes it. `expiresAt`: the part's command expiry (a set whose parts have all
    /// expired no longer holds off an older snapshot_id).
    public func stageEntitlementSnapshotPart(snapshotID: String, part: Int, parts: Int, version: Int64,
                                             countedThroughSeq: Int64?, entitlements: [Entitlement],
                                             expiresAt: Date, receivedAt: Date) async throws -> SnapshotPartOutcome {
        let step = try await stageSnapshotPartOnly(snapshotID: snapshotID, part: part, parts: parts, version: version,
                                                   countedThroughSeq: countedThroughSeq, entitlements: entitlements,
                                                   expiresAt: expiresAt, receivedAt: receivedAt)
        switch step {
        case .done(let outcome):
            _ = try? await deleteDiscardedSnapshotParts()
            return outcome
        case .complete(let setNo, let duplicate):
            // A death here (the last part staged, not swapped in) is finished at the next start:
            // `swapInCompleteStagedSnapshot`.
            let count = try await swapInSnapshotParts(setNo: setNo, receivedAt: receivedAt)
            return .applied(count: count, duplicate: duplicate)
        }
    }

    enum PartStep: Sendable { case done(SnapshotPartOutcome), complete(setNo: Int64, duplicate: Bool) }

    /// The staging transaction of `stageEntitlementSnapshotPart`, without the swap-in that follows when the part
    /// completes the set (tests use it to stop where a daemon that died there would have).
    func stageSnapshotPartOnly(snapshotID: String, part: Int, parts: Int, version: Int64,
                               countedThroughSeq: Int64?, entitlements: [Entitlement],
                               expiresAt: Date, receivedAt: Date) async throws -> PartStep {
        precondition(parts >= 1 && (1...parts).contains(part), "part \(part) of \(parts)")
        // Built before the transaction: the writer is held for SQLite's work only.
        let rows = entitlements.map(Self.entitlementArguments)
        let nowMs = Self.millis(receivedAt)
        let expiresMs = Self.millis(expiresAt)
        typealias Step = PartStep
        do {
            return try await write { db -> Step in
                if try Self.metaValue(SnapshotPartMetaKey.appliedSnapshotID, in: db) == snapshotID { return .done(.alreadyApplied) }
                var current = try Self.fetchPartSet(in: db)
                if let set = current, set.snapshotID != snapshotID {
                    let newer = version > set.version || version == set.version || nowMs >= set.expiresAtMs
                    guard newer else { return .done(.olderThanStaging(stagingSnapshotID: set.snapshotID, stagingVersion: set.version)) }
                    try db.execute(sql: "DELETE FROM snapshot_part_set")
                    current = nil
                }
                let set: PartSet
                if let current {
                    if current.version != version {
                        throw InconsistentPart(message: "version \(version) differs from the \(current.version) of the parts of snapshot_id \"\(snapshotID)\" already staged")
                    }
                    if current.parts != parts {
                        throw InconsistentPart(message: "parts \(parts) differs from the \(current.parts) of the parts of snapshot_id \"\(snapshotID)\" already staged")
                    }
                    if current.countedThroughSeq != countedThroughSeq {
                        throw InconsistentPart(message: "counted_through_seq \(countedThroughSeq.map(String.init) ?? "absent") differs from the \(current.countedThroughSeq.map(String.init) ?? "absent") of the parts of snapshot_id \"\(snapshotID)\" already staged")
                    }
                    set = current
                } else {
                    try db.execute(sql: """
                        INSERT INTO snapshot_part_set (snapshot_id, version, counted_through_seq, parts, expires_at_ms, started_at_ms)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """, arguments: [snapshotID, version, countedThroughSeq, parts, expiresMs, nowMs])
                    set = PartSet(setNo: db.lastInsertedRowID, snapshotID: snapshotID, version: version,
                                  countedThroughSeq: countedThroughSeq, parts: parts, expiresAtMs: expiresMs)
                }
                let duplicate = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM snapshot_part WHERE set_no = ? AND part = ?)",
                                                  arguments: [set.setNo, part]) ?? false
                if !duplicate {
                    let insert = try db.cachedStatement(sql: """
                        INSERT INTO snapshot_part_row (set_no, part, \(Self.entitlementColumns))
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """)
                    let prefix: StatementArguments = [set.setNo, part]
                    for (i, arguments) in rows.enumerated() {
                        do {
                            try insert.execute(arguments: prefix + arguments)
                        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                            let id = entitlements[i].planInstanceID
                            let other = try Int.fetchOne(db, sql: "SELECT part FROM snapshot_part_row WHERE set_no = ? AND plan_instance_id = ?",
                                                         arguments: [set.setNo, id])
                            throw InconsistentPart(message: "entitlements[\(i)] (plan_instance_id \"\(id.prefix(64))\") is already in part \(other.map(String.init) ?? "?") of snapshot_id \"\(snapshotID)\"")
                        }
                    }
                    try db.execute(sql: "INSERT INTO snapshot_part (set_no, part, rows, received_at_ms) VALUES (?, ?, ?, ?)",
                                   arguments: [set.setNo, part, rows.count, nowMs])
                    try db.execute(sql: "UPDATE snapshot_part_set SET expires_at_ms = max(expires_at_ms, ?) WHERE set_no = ?",
                                   arguments: [expiresMs, set.setNo])
                }
                let staged = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM snapshot_part WHERE set_no = ?", arguments: [set.setNo]) ?? 0
                if staged >= parts { return .complete(setNo: set.setNo, duplicate: duplicate) }
                return .done(.staged(missing: parts - staged, firstMissing: try Self.firstMissingParts(setNo: set.setNo, parts: parts, in: db),
                                     duplicate: duplicate))
            }
        } catch let problem as InconsistentPart {
            return .done(.inconsistent(problem.message))
        }
    }

    /// A snapshot in parts swapped in at start-up (`swapInCompleteStagedSnapshot`).
    public struct ResumedSnapshot: Sendable, Equatable {
        public let snapshotID: String
        public let version: Int64
        public let parts: Int
        public let count: Int
    }

    /// At start-up: when every part of the unfinished snapshot is staged (the daemon died after the last part's
    /// transaction and before, or during, its swap-in), swaps it in now, with the time its last part arrived as the
    /// sync time. An interrupted swap-in's staging table is discarded first (the copy starts again from the parts).
    /// Returns what was swapped in (nil: nothing complete was waiting; an incomplete set stays staged).
    public func swapInCompleteStagedSnapshot() async throws -> ResumedSnapshot? {
        try await discardInterruptedEntitlementStaging()
        let waiting = try await read { db -> (PartSet, Int64)? in
            guard let set = try Self.fetchPartSet(in: db) else { return nil }
            let staged = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM snapshot_part WHERE set_no = ?", arguments: [set.setNo]) ?? 0
            guard staged >= set.parts else { return nil }
            let last = try Int64.fetchOne(db, sql: "SELECT MAX(received_at_ms) FROM snapshot_part WHERE set_no = ?", arguments: [set.setNo]) ?? 0
            return (set, last)
        }
        guard let (set, lastMs) = waiting else { return nil }
        let count = try await swapInSnapshotParts(setNo: set.setNo, receivedAt: Date(timeIntervalSince1970: Double(lastMs) / 1000))
        return ResumedSnapshot(snapshotID: set.snapshotID, version: set.version, parts: set.parts, count: count)
    }

    /// Gives up the unfinished snapshot in parts (its set, staged parts and rows, deleted in chunks) and whatever
    /// rows of discarded sets are left, then checkpoints: the last relief of a full disk before an append is
    /// refused (DiskSpace.swift). ABS sends the parts again (the contract's "a part lost on the way is simply sent
    /// again"; the next part's reply lists the missing ones). Returns the staged rows deleted.
    @discardableResult
    func discardUnfinishedSnapshotParts() async -> Int {
        _ = try? await write { db in try db.execute(sql: "DELETE FROM snapshot_part_set") }
        let deleted = (try? await deleteDiscardedSnapshotParts()) ?? 0
        _ = try? await pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
        return deleted
    }

    /// What is staged now (nil: no unfinished snapshot in parts).
    public func entitlementSnapshotStaging() async throws -> SnapshotStagingState? {
        try await read { db in
            guard let set = try Self.fetchPartSet(in: db) else { return nil }
            let staged = try Int.fetchAll(db, sql: "SELECT part FROM snapshot_part WHERE set_no = ? ORDER BY part", arguments: [set.setNo])
            let rows = try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(rows), 0) FROM snapshot_part WHERE set_no = ?", arguments: [set.setNo]) ?? 0
            return SnapshotStagingState(snapshotID: set.snapshotID, version: set.version, parts: set.parts, staged: staged, rows: rows)
        }
    }

    private static func fetchPartSet(in db: Database) throws -> PartSet? {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT set_no, snapshot_id, version, counted_through_seq, parts, expires_at_ms FROM snapshot_part_set
            ORDER BY set_no DESC LIMIT 1
            """) else { return nil }
        return PartSet(setNo: row["set_no"], snapshotID: row["snapshot_id"], version: row["version"],
                       countedThroughSeq: row["counted_through_seq"], parts: row["parts"], expiresAtMs: row["expires_at_ms"])
    }

    private static func firstMissingParts(setNo: Int64, parts: Int, in db: Database) throws -> [Int] {
        // Walk the staged part numbers in order; the gaps are the missing ones.
        var missing: [Int] = []
        var expected = 1
        let cursor = try Int.fetchCursor(db, sql: "SELECT part FROM snapshot_part WHERE set_no = ? ORDER BY part", arguments: [setNo])
        while missing.count < firstMissingListed, let p = try cursor.next() {
            while expected < p && missing.count < firstMissingListed { missing.append(expected); expected += 1 }
            expected = p + 1
        }
        while missing.count < firstMissingListed && expected <= parts { missing.append(expected); expected += 1 }
        return missing
    }

    /// Copies the complete set's records into `entitlement_staging` inside SQLite, in transactions of
    /// `snapshotChunkRows` rows (ordered by plan_instance_id), then swaps them in like a whole snapshot.
    /// Returns the number of records.
    private func swapInSnapshotParts(setNo: Int64, receivedAt: Date) async throws -> Int {
        let token = UUID().uuidString
        let set = try await write { db -> PartSet in
            guard let set = try Self.fetchPartSet(in: db), set.setNo == setNo else { throw EntitlementStoreError.snapshotSuperseded }
            try Self.retireStaging(in: db)
            try db.execute(sql: Self.entitlementStagingDDL)
            try Self.setMetaValue(token, for: EntitlementMetaKey.stagingToken, in: db)
            return set
        }
        _ = try? await deleteRetiredEntitlementTables()
        do {
            var after: String? = nil
            let chunk = Self.snapshotChunkRows
            while true {
                let lower = after ?? ""
                let next = try await write { db -> String? in
                    try Self.checkStagingToken(token, in: db)
                    // The upper key of this chunk (nil: the rest fits in it).
                    let upper = try String.fetchOne(db, sql: """
                        SELECT plan_instance_id FROM snapshot_part_row WHERE set_no = ? AND plan_instance_id > ?
                        ORDER BY plan_instance_id LIMIT 1 OFFSET ?
                        """, arguments: [setNo, lower, chunk - 1])
                    try db.execute(sql: """
                        INSERT INTO entitlement_staging (\(Self.entitlementColumns))
                        SELECT \(Self.entitlementColumns) FROM snapshot_part_row
                        WHERE set_no = ? AND plan_instance_id > ? AND (? IS NULL OR plan_instance_id <= ?)
                        ORDER BY plan_instance_id
                        """, arguments: [setNo, lower, upper, upper])
                    return upper
                }
                guard let next else { break }
                after = next
                await Task.yield()
            }
            try await write { db in
                guard let current = try Self.fetchPartSet(in: db), current.setNo == setNo else { throw EntitlementStoreError.snapshotSuperseded }
                try Self.swapInStagedSnapshot(token: token, version: set.version, countedThroughSeq: set.countedThroughSeq,
                                              receivedAt: receivedAt, snapshotID: set.snapshotID, in: db)
            }
        } catch {
            _ = try? await write { db in
                if try Self.metaValue(EntitlementMetaKey.stagingToken, in: db) == token { try Self.retireStaging(in: db) }
            }
            _ = try? await deleteRetiredEntitlementTables()
            throw error
        }
        _ = try? await deleteRetiredEntitlementTables()
        _ = try? await deleteDiscardedSnapshotParts()
        return try await read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM entitlement") ?? 0 }
    }

    /// The swap-in of a staged snapshot, whole or in parts, inside the caller's transaction (the one
    /// place it is done): `entitlement_staging` (owned by `token`) becomes the cache by two renames;
    /// every pending local swap is no longer included in the cache; the records reflect
    /// `countedThroughSeq` (`recordCountedThrough`, the acknowledgement rule); `version` and
    /// `receivedAt` go to `meta`; and any unfinished snapshot in parts is discarded (a whole snapshot
    /// supersedes it; a snapshot in parts was its own set). `snapshotID`: the snapshot_id of a
    /// snapshot in parts (nil: a whole snapshot), so that a late copy of one of its parts is ignored.
    static func swapInStagedSnapshot(token: String, version: Int64, countedThroughSeq: Int64?, receivedAt: Date,
                                     snapshotID: String?, in db: Database) throws {
        try checkStagingToken(token, in: db)
        let retired = retiredTableName()
        try db.execute(sql: """
            ALTER TABLE entitlement RENAME TO \(retired);
            ALTER TABLE entitlement_staging RENAME TO entitlement;
            """)
        try db.execute(sql: "UPDATE pending_local_swap SET in_cache = 0 WHERE in_cache = 1")
        try recordCountedThrough(snapshot: countedThroughSeq, in: db)
        try setMetaValue(String(version), for: EntitlementMetaKey.version, in: db)
        try setMetaValue(String(millis(receivedAt)), for: EntitlementMetaKey.lastSyncAtMs, in: db)
        try setMetaValue(nil, for: EntitlementMetaKey.stagingToken, in: db)
        try db.execute(sql: "DELETE FROM snapshot_part_set")
        try setMetaValue(snapshotID, for: SnapshotPartMetaKey.appliedSnapshotID, in: db)
    }

    /// Deletes, in transactions of `retireChunkRows`, the staged rows and parts of discarded or applied
    /// sets (those whose set_no has no row in `snapshot_part_set`). Returns the rows deleted.
    @discardableResult
    public func deleteDiscardedSnapshotParts() async throws -> Int {
        let batch = Self.retireChunkRows
        var deleted = 0
        while true {
            let n = try await write { db -> Int in
                try db.execute(sql: """
                    DELETE FROM snapshot_part_row WHERE (set_no, plan_instance_id) IN (
                        SELECT set_no, plan_instance_id FROM snapshot_part_row
                        WHERE set_no NOT IN (SELECT set_no FROM snapshot_part_set) LIMIT ?)
                    """, arguments: [batch])
                let n = db.changesCount
                if n < batch {
                    try db.execute(sql: "DELETE FROM snapshot_part WHERE set_no NOT IN (SELECT set_no FROM snapshot_part_set)")
                }
                return n
            }
            deleted += n
            if n < batch { return deleted }
            await Task.yield()
        }
    }
}
