#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SQLiteLink
import StationDomain

// The entitlement cache (shared/specs/entitlements.md): ABS's records as the station last
// received them, the sync state in `meta`, and the swaps completed here that ABS may not have
// counted yet (`pending_local_swap`).
//
// A snapshot of up to 100 000 records is staged into `entitlement_staging` in transactions of
// `snapshotChunkRows` rows, so swap writes and event appends run between them, and then swapped
// in by two renames in one short transaction: readers see the old cache or the new one, never a
// mix. The old cache's rows are then deleted in short transactions too. A process that dies
// while staging leaves the old cache intact and a staging table that the next apply (or
// `discardInterruptedEntitlementStaging()`) deletes.

/// What the cache holds, for the staleness rule and for technicians.
public struct EntitlementSyncState: Sendable, Equatable {
    /// ABS's version of the cache (the last snapshot's or delta's `version`); nil before the first snapshot.
    public let version: Int64?
    /// When the last snapshot or delta was received and applied (`receivedAt`); nil before the first.
    public let lastSyncAt: Date?
    /// Records in the cache.
    public let count: Int
    /// The acknowledgement watermark (contract 1.1): the highest `counted_through_seq` of a snapshot
    /// or delta applied so far; nil while no applied message carried the field. Only moves forward.
    public let countedThroughSeq: Int64?

    public init(version: Int64?, lastSyncAt: Date?, count: Int, countedThroughSeq: Int64? = nil) {
        self.version = version
        self.lastSyncAt = lastSyncAt
        self.count = count
        self.countedThroughSeq = countedThroughSeq
    }
}

/// The result of `applyEntitlementDelta`.
public enum DeltaOutcome: Sendable, Equatable {
    /// The delta was applied on top of its base version.
    case applied
    /// Its version is not above the cache's: a re-delivery; nothing changed.
    case alreadyApplied
    /// Its base is not the cache's version (a gap, or no snapshot yet): nothing changed; ask ABS
    /// for a snapshot (reply code `need_snapshot`).
    case needSnapshot(currentVersion: Int64?)
}

/// A pending local swap with what the store knows about its acknowledgement (diagnostics).
public struct StoredPendingLocalSwap: Sendable, Equatable {
    public let swap: PendingLocalSwap
    /// Seq of its `swap.completed` (or `swap.returned`) event.
    public let eventSeq: Int64
    /// When the broker acknowledged that event (PUBACK), nil while unsent. A PUBACK is not ABS
    /// counting the swap (only `counted_through_seq` is); see "Acknowledgement" below.
    public let ackedAt: Date?
    /// Whether the cached record already includes it (`completeSwap` folded it in and no snapshot
    /// or delta has replaced that record since).
    public let inCachedRecord: Bool
    /// Whether it is counted on top of the cached record now: not folded in, and its event not
    /// covered by the `counted_through_seq` the record reflects (or never PUBACKed). An acknowledged
    /// row is kept (a late, older snapshot may need it again) until `applyRecordRetention`.
    public let countedOnTop: Bool
}

public enum EntitlementStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The staging table of this snapshot apply was taken over (by a later snapshot apply, or
    /// dropped to make room for a swap on a full disk). The cache is as it was before this apply.
    case snapshotSuperseded
    /// A delta whose version is not above its base version.
    case invalidDelta(baseVersion: Int64, version: Int64)

    public var description: String {
        switch self {
        case .snapshotSuperseded:
            return "entitlement snapshot superseded while staging (a later snapshot, or room made for a swap); cache unchanged"
        case .invalidDelta(let base, let version):
            return "entitlement delta version \(version) is not above its base version \(base)"
        }
    }
}

extension StationStore {
    /// Rows staged per transaction by `applyEntitlementSnapshot`: the longest a snapshot holds
    /// the writer at a time (see docs/store.md for the measured figures).
    static let snapshotChunkRows = 2_000
    /// Rows of a retired cache deleted per transaction (SQLite's work only, no Swift per row:
    /// about five times faster per row than staging).
    static let retireChunkRows = 10_000

    /// Keys of the entitlement cache in `meta`.
    enum EntitlementMetaKey {
        static let version = "entitlements.version"
        static let lastSyncAtMs = "entitlements.last_sync_at_ms"
        /// The token of the snapshot apply that owns `entitlement_staging`, while it stages.
        static let stagingToken = "entitlements.staging_token"
    }

    /// The staging table: the same definition as migration `v2-entitlements`'s `entitlement`
    /// (a test compares them). A later migration that changes `entitlement` must change this too.
    static let entitlementStagingDDL = """
        CREATE TABLE entitlement_staging (
            plan_instance_id TEXT PRIMARY KEY NOT NULL CHECK (length(plan_instance_id) > 0),
            customer_id TEXT NOT NULL CHECK (length(customer_id) > 0),
            subscription_ref TEXT NOT NULL,
            status TEXT NOT NULL,
            valid_from_ms INTEGER NOT NULL,
            valid_until_ms INTEGER NOT NULL,
            network_code TEXT NOT NULL,
            battery_family TEXT NOT NULL,
            swap_quota INTEGER NOT NULL,
            swaps_used INTEGER NOT NULL,
            energy_quota_kwh REAL NOT NULL,
            energy_used_kwh REAL NOT NULL,
            overage_allowed INTEGER NOT NULL,
            max_batteries INTEGER NOT NULL,
            batteries_out TEXT NOT NULL,
            version INTEGER NOT NULL,
            UNIQUE (customer_id, plan_instance_id)
        ) WITHOUT ROWID
        """

    static let entitlementColumns = """
        plan_instance_id, customer_id, subscription_ref, status, valid_from_ms, valid_until_ms, \
        network_code, battery_family, swap_quota, swaps_used, energy_quota_kwh, energy_used_kwh, \
        overage_allowed, max_batteries, batteries_out, version
        """

    /// `INSERT OR REPLACE` of one record into `table` (a duplicate plan instance id: the last wins).
    static func entitlementInsertSQL(table: String) -> String {
        "INSERT OR REPLACE INTO \(table) (\(entitlementColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    }

    // MARK: Snapshot

    /// Replaces the whole cache with `entitlements` (ABS's snapshot `version`, built at `issuedAt`,
    /// with ABS's `counted_through_seq`, nil when the message has none).
    ///
    /// Stages the rows in transactions of `snapshotChunkRows` (other writes run in between),
    /// then, in one short transaction: swaps the staged table in (two renames, no row is copied),
    /// marks every pending local swap as not included in the cache, records that every record now
    /// reflects `countedThroughSeq` (without it: the highest value seen so far) and moves the
    /// watermark forward (see `recordCountedThrough`), and records `version` and `receivedAt` in `meta`.
    /// Readers see the old cache until that commit. Then the old cache's rows are deleted, again in
    /// short transactions.
    ///
    /// A snapshot is applied whatever its version (ABS owns the data; a restored ABS may restart
    /// its versions). Two applies at once: the later one wins, the earlier throws
    /// `EntitlementStoreError.snapshotSuperseded`. On any error the cache is unchanged; the staged
    /// rows are deleted (or, if the process died, by the next apply or
    /// `discardInterruptedEntitlementStaging()`).
    public func applyEntitlementSnapshot(version: Int64, entitlements: [Entitlement], issuedAt: Date,
                                         receivedAt: Date, countedThroughSeq: Int64? = nil) async throws {
        let token = UUID().uuidString
        try await write { db in
            // A staging table left by a killed (or still running, now superseded) apply is
            // retired: renamed, its rows deleted in chunks below, never dropped in one go.
            try Self.retireStaging(in: db)
            try db.execute(sql: Self.entitlementStagingDDL)
            try Self.setMetaValue(token, for: EntitlementMetaKey.stagingToken, in: db)
        }
        // Leftovers of earlier applies: their pages are reused by the rows staged next.
        _ = try? await deleteRetiredEntitlementTables()
        do {
            let chunk = Self.snapshotChunkRows
            var start = 0
            while start < entitlements.count {
                let end = min(start + chunk, entitlements.count)
                // Built before the transaction: the writer is held for SQLite's work only.
                let rows = entitlements[start..<end].map(Self.entitlementArguments)
                try await write { db in
                    try Self.checkStagingToken(token, in: db)
                    let insert = try db.cachedStatement(sql: Self.entitlementInsertSQL(table: "entitlement_staging"))
                    for arguments in rows {
                        try insert.execute(arguments: arguments)
                    }
                }
                start = end
                await Task.yield()
            }
            // The same swap-in as a snapshot in parts (SnapshotStaging.swift); it also discards an
            // unfinished snapshot in parts, which this whole snapshot supersedes.
            try await write { db in
                try Self.swapInStagedSnapshot(token: token, version: version, countedThroughSeq: countedThroughSeq,
                                              receivedAt: receivedAt, snapshotID: nil, in: db)
            }
        } catch {
            // Best effort, unless a later apply owns the staging table now. If this fails too,
            // the next apply does it.
            _ = try? await write { db in
                if try Self.metaValue(EntitlementMetaKey.stagingToken, in: db) == token {
                    try Self.retireStaging(in: db)
                }
            }
            _ = try? await deleteRetiredEntitlementTables()
            throw error
        }
        // The old cache. The snapshot is applied; a failure here only leaves rows for the next apply.
        _ = try? await deleteRetiredEntitlementTables()
        _ = try? await deleteDiscardedSnapshotParts()
    }

    /// Deletes what an interrupted snapshot apply left behind (its staging table, an old cache not
    /// yet deleted), in short transactions. The cache is untouched. A snapshot apply running in
    /// this process at that moment fails with `.snapshotSuperseded`. `applyEntitlementSnapshot`
    /// does it first; call it at start to give the space back sooner. Returns whether there was
    /// something to delete.
    @discardableResult
    public func discardInterruptedEntitlementStaging() async throws -> Bool {
        let staged = try await write { db in try Self.retireStaging(in: db) }
        let retired = try await deleteRetiredEntitlementTables()
        return staged || retired > 0
    }

    /// Renames `entitlement_staging` (if any) to a retired table and forgets its owner.
    @discardableResult
    static func retireStaging(in db: Database) throws -> Bool {
        try setMetaValue(nil, for: EntitlementMetaKey.stagingToken, in: db)
        guard try tableExists("entitlement_staging", in: db) else { return false }
        try db.execute(sql: "ALTER TABLE entitlement_staging RENAME TO \(retiredTableName())")
        return true
    }

    static func retiredTableName() -> String {
        "entitlement_retired_" + UUID().uuidString.prefix(8).lowercased()
    }

    static func retiredTables(in db: Database) throws -> [String] {
        try String.fetchAll(db, sql: """
            SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'entitlement\\_retired\\_%' ESCAPE '\\'
            """)
    }

    static func tableExists(_ name: String, in db: Database) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)",
                          arguments: [name]) ?? false
    }

    /// Deletes the rows of every retired entitlement table in transactions of `retireChunkRows`
    /// (a DROP of 100 000 rows holds the writer for 100–200 ms), then drops the empty tables.
    /// Returns how many tables it dropped.
    @discardableResult
    func deleteRetiredEntitlementTables() async throws -> Int {
        let batch = Self.retireChunkRows
        var dropped = 0
        for table in try await read({ db in try Self.retiredTables(in: db) }) {
            while true {
                let done = try await write { db -> Bool in
                    guard try Self.tableExists(table, in: db) else { return true }
                    try db.execute(sql: """
                        DELETE FROM "\(table)" WHERE plan_instance_id IN (SELECT plan_instance_id FROM "\(table)" LIMIT ?)
                        """, arguments: [batch])
                    if db.changesCount < batch {
                        try db.execute(sql: "DROP TABLE \"\(table)\"")
                        return true
                    }
                    return false
                }
                if done { break }
                await Task.yield()
            }
            dropped += 1
        }
        return dropped
    }

    /// Drops the staging and retired tables at once (the disk-full relief of swap writes: a DROP
    /// frees pages without writing the rows' deletions).
    static func dropEntitlementStagingAndRetired(in db: Database) throws {
        try setMetaValue(nil, for: EntitlementMetaKey.stagingToken, in: db)
        try db.execute(sql: "DROP TABLE IF EXISTS entitlement_staging")
        for table in try retiredTables(in: db) {
            try db.execute(sql: "DROP TABLE \"\(table)\"")
        }
    }

    static func checkStagingToken(_ token: String, in db: Database) throws {
        guard try metaValue(EntitlementMetaKey.stagingToken, in: db) == token else {
            throw EntitlementStoreError.snapshotSuperseded
        }
    }

    // MARK: Delta

    /// Applies a delta if `baseVersion` is the cache's version, in one transaction: removes, then
    /// upserts (the pending local swaps of those plans are no longer included in the cached record;
    /// the upserted records reflect `countedThroughSeq`, without it the highest value seen so far;
    /// records the delta does not touch keep theirs), moves the watermark forward, and records
    /// `version` and `receivedAt` in `meta`.
    /// `version` ≤ the cache's version: `.alreadyApplied`; another base (or no snapshot yet):
    /// `.needSnapshot`; in both cases nothing changes (not even `lastSyncAt` or the watermark: a
    /// delta that is not applied acknowledges nothing).
    public func applyEntitlementDelta(baseVersion: Int64, version: Int64, upsert: [Entitlement], remove: [String],
                                      issuedAt: Date, receivedAt: Date,
                                      countedThroughSeq: Int64? = nil) async throws -> DeltaOutcome {
        guard version > baseVersion else {
            throw EntitlementStoreError.invalidDelta(baseVersion: baseVersion, version: version)
        }
        let receivedMs = Self.millis(receivedAt)
        return try await write { db in
            let current = try Self.entitlementVersion(in: db)
            if let current, version <= current { return .alreadyApplied }
            guard let current, current == baseVersion else { return .needSnapshot(currentVersion: current) }
            let deleteRecord = try db.cachedStatement(sql: "DELETE FROM entitlement WHERE plan_instance_id = ?")
            let notInCache = try db.cachedStatement(sql: """
                UPDATE pending_local_swap SET in_cache = 0 WHERE plan_instance_id = ? AND in_cache = 1
                """)
            let reflects = try Self.messageCountedThrough(countedThroughSeq, in: db)
            let forgetRecordMark = try db.cachedStatement(sql: "DELETE FROM abs_counted_through_record WHERE plan_instance_id = ?")
            let setRecordMark = try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO abs_counted_through_record (plan_instance_id, counted_through_seq) VALUES (?, ?)
                """)
            for id in remove {
                try deleteRecord.execute(arguments: [id])
                try notInCache.execute(arguments: [id])
                try forgetRecordMark.execute(arguments: [id])
            }
            let insert = try db.cachedStatement(sql: Self.entitlementInsertSQL(table: "entitlement"))
            for e in upsert {
                try insert.execute(arguments: Self.entitlementArguments(e))
                try notInCache.execute(arguments: [e.planInstanceID])
                try setRecordMark.execute(arguments: [e.planInstanceID, reflects])
            }
            try Self.moveWatermark(countedThroughSeq, in: db)
            try Self.setMetaValue(String(version), for: EntitlementMetaKey.version, in: db)
            try Self.setMetaValue(String(receivedMs), for: EntitlementMetaKey.lastSyncAtMs, in: db)
            return .applied
        }
    }

    // MARK: Reads

    /// When the cache was last synced (the staleness rule's input), without counting the cache's rows.
    public func entitlementLastSync() async throws -> Date? {
        try await read { db in try Self.metaValue(EntitlementMetaKey.lastSyncAtMs, in: db).flatMap { Int64($0) }.map(Self.date) }
    }

    public func entitlementSyncState() async throws -> EntitlementSyncState {
        try await read { db in
            let version = try Self.entitlementVersion(in: db)
            let last = try Self.metaValue(EntitlementMetaKey.lastSyncAtMs, in: db).flatMap { Int64($0) }
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM entitlement") ?? 0
            return EntitlementSyncState(version: version, lastSyncAt: last.map(Self.date), count: count,
                                        countedThroughSeq: try Self.countedThroughSeq(in: db))
        }
    }

    /// The acknowledgement watermark: the highest `counted_through_seq` applied so far (nil: none yet).
    public func entitlementCountedThroughSeq() async throws -> Int64? {
        try await read { db in try Self.countedThroughSeq(in: db) }
    }

    /// The `counted_through_seq` the cached numbers of this plan reflect (nil: they cover none of
    /// this station's events): the local swaps whose event seq is above it count on top.
    public func entitlementCountedThroughSeq(planInstanceID: String) async throws -> Int64? {
        try await read { db in try Self.recordCountedThroughSeq(planInstanceID: planInstanceID, in: db) }
    }

    /// The customer's records as cached (ABS's copy, plus the swaps `completeSwap` folded in
    /// since ABS last sent the record), by plan instance id.
    public func entitlements(customerID: String) async throws -> [Entitlement] {
        try await read { db in try Self.fetchEntitlements(customerID: customerID, in: db) }
    }

    /// One record as cached, nil if ABS sent none for that plan instance.
    public func entitlement(planInstanceID: String) async throws -> Entitlement? {
        try await read { db in try Self.fetchEntitlement(planInstanceID: planInstanceID, in: db) }
    }

    /// The local swaps of the plan that the cached record does **not** include: add them with
    /// `Entitlement.applying(_:)`. (A swap `completeSwap` folded into the cached record is not
    /// listed until a snapshot or delta replaces that record with ABS's numbers; then it is while
    /// the `counted_through_seq` that record reflects is below its event's seq, or its event was
    /// never PUBACKed.) Read the record and these in one snapshot, or use
    /// `effectiveEntitlements(customerID:)`, so that a snapshot applied between two reads cannot
    /// make a swap count twice or not at all.
    public func pendingLocalSwaps(planInstanceID: String) async throws -> [PendingLocalSwap] {
        try await read { db in try Self.fetchPendingCountedOnTop(planInstanceID: planInstanceID, in: db) }
    }

    /// The customer's records as the station must decide on them: the cached record plus the
    /// local swaps it does not include (`pendingLocalSwaps`), read in one snapshot.
    public func effectiveEntitlements(customerID: String) async throws -> [Entitlement] {
        try await read { db in
            try Self.fetchEntitlements(customerID: customerID, in: db).map { e in
                e.applying(try Self.fetchPendingCountedOnTop(planInstanceID: e.planInstanceID, in: db))
            }
        }
    }

    /// One record as the station must decide on it (see `effectiveEntitlements(customerID:)`).
    public func effectiveEntitlement(planInstanceID: String) async throws -> Entitlement? {
        try await read { db in
            guard let e = try Self.fetchEntitlement(planInstanceID: planInstanceID, in: db) else { return nil }
            return e.applying(try Self.fetchPendingCountedOnTop(planInstanceID: planInstanceID, in: db))
        }
    }

    /// Every local swap row kept (folded in, counted on top, or acknowledged and kept until
    /// retention), oldest first.
    public func allPendingLocalSwaps() async throws -> [StoredPendingLocalSwap] {
        try await read { db in
            var marks: [String: Int64?] = [:]
            return try Row.fetchAll(db, sql: """
                SELECT \(Self.pendingColumns), event_seq, acked_at_ms, in_cache FROM pending_local_swap
                ORDER BY completed_at_ms, swap_id
                """).map { row in
                let acked: Int64? = row["acked_at_ms"]
                let swap = Self.pendingLocalSwap(from: row)
                let eventSeq: Int64 = row["event_seq"]
                let inCache = (row["in_cache"] as Int) == 1
                if marks[swap.planInstanceID] == nil {
                    marks[swap.planInstanceID] = .some(try Self.recordCountedThroughSeq(planInstanceID: swap.planInstanceID, in: db))
                }
                let mark = marks[swap.planInstanceID] ?? nil
                let onTop = !inCache && (acked == nil || eventSeq > (mark ?? -1))
                return StoredPendingLocalSwap(swap: swap, eventSeq: eventSeq, ackedAt: acked.map(Self.date),
                                              inCachedRecord: inCache, countedOnTop: onTop)
            }
        }
    }

    // MARK: Acknowledgement (contract 1.1, `counted_through_seq`)
    //
    // Each cached record reflects a `counted_through_seq`: the one of the message that last wrote
    // it. A local swap counts on top of the record iff its event's seq is above that value, or the
    // broker never PUBACKed its event. So a snapshot ABS built before one that already acknowledged a
    // swap, arriving after it, brings back its older numbers *and* its lower value: the swap counts on
    // top again (its row is kept). A message without the field reflects the highest value a message
    // with it gave: it acknowledges nothing new, and a swap a covering message already counted is not
    // counted again on top of numbers that include it.
    //
    // A message's value is clamped when applied to what ABS can have counted then (fail closed): not
    // above the station's last event seq, and below its lowest local swap event the broker has not
    // PUBACKed yet. So a value that a message without the field inherits never covers an event sent
    // after the message that gave it.
    //
    // Storage: a snapshot's value for all its records in `abs_counted_through.cache_counted_through_seq`
    // (no cost per record); a delta's upserted records in `abs_counted_through_record` (overrides,
    // cleared by the next snapshot); the inherited value in `highest_reflected_seq`. The raw
    // watermark `abs_counted_through.counted_through_seq` (the highest value received, only moves
    // forward) is for diagnostics. Rows are deleted by `applyRecordRetention` only.

    /// The value the records of a message reflect: its own, clamped (see above), or without the
    /// field (or a negative one) the highest a message with the field gave.
    static func messageCountedThrough(_ countedThroughSeq: Int64?, in db: Database) throws -> Int64? {
        guard let countedThroughSeq, countedThroughSeq >= 0 else {
            return try Int64.fetchOne(db.cachedStatement(sql: "SELECT highest_reflected_seq FROM abs_counted_through WHERE id = 1"))
        }
        var value = min(countedThroughSeq, try lastSeq(in: db))
        if let unsent = try Int64.fetchOne(db.cachedStatement(sql: """
            SELECT min(event_seq) FROM pending_local_swap WHERE acked_at_ms IS NULL
            """)), unsent <= value {
            value = unsent - 1
        }
        let reflected = max(0, value)
        try db.execute(sql: """
            UPDATE abs_counted_through SET highest_reflected_seq = max(coalesce(highest_reflected_seq, -1), ?) WHERE id = 1
            """, arguments: [reflected])
        return reflected
    }

    /// Moves the watermark forward to `countedThroughSeq` (never back).
    static func moveWatermark(_ countedThroughSeq: Int64?, in db: Database) throws {
        guard let countedThroughSeq, countedThroughSeq >= 0 else { return }
        try db.execute(sql: """
            UPDATE abs_counted_through SET counted_through_seq = max(coalesce(counted_through_seq, -1), ?) WHERE id = 1
            """, arguments: [countedThroughSeq])
    }

    /// Inside a snapshot's swap-in transaction: every record now reflects the snapshot's value
    /// (the delta overrides are forgotten), and the watermark moves forward.
    static func recordCountedThrough(snapshot countedThroughSeq: Int64?, in db: Database) throws {
        let reflects = try messageCountedThrough(countedThroughSeq, in: db)
        try db.execute(sql: "DELETE FROM abs_counted_through_record")
        try db.execute(sql: "UPDATE abs_counted_through SET cache_counted_through_seq = ? WHERE id = 1", arguments: [reflects])
        try moveWatermark(countedThroughSeq, in: db)
    }

    /// The value the cached record of the plan reflects (its delta's, else the last snapshot's).
    static func recordCountedThroughSeq(planInstanceID: String, in db: Database) throws -> Int64? {
        if let row = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT counted_through_seq FROM abs_counted_through_record WHERE plan_instance_id = ?
            """), arguments: [planInstanceID]) {
            return row["counted_through_seq"]
        }
        return try Int64.fetchOne(db.cachedStatement(sql: """
            SELECT cache_counted_through_seq FROM abs_counted_through WHERE id = 1
            """))
    }

    static func countedThroughSeq(in db: Database) throws -> Int64? {
        try Int64.fetchOne(db, sql: "SELECT counted_through_seq FROM abs_counted_through WHERE id = 1")
    }

    // MARK: SQL helpers (usable inside any transaction)

    static func fetchEntitlements(customerID: String, in db: Database) throws -> [Entitlement] {
        try Row.fetchAll(db.cachedStatement(sql: """
            SELECT \(entitlementColumns) FROM entitlement WHERE customer_id = ? ORDER BY plan_instance_id
            """), arguments: [customerID]).map(entitlement(from:))
    }

    static func fetchEntitlement(planInstanceID: String, in db: Database) throws -> Entitlement? {
        try Row.fetchOne(db.cachedStatement(sql: """
            SELECT \(entitlementColumns) FROM entitlement WHERE plan_instance_id = ?
            """), arguments: [planInstanceID]).map(entitlement(from:))
    }

    static let pendingColumns = """
        swap_id, plan_instance_id, swaps, energy_kwh, returned_battery_id, issued_battery_id, completed_at_ms
        """

    /// The plan's local swaps to add on top of its cached record: not folded into it, and not
    /// covered by the `counted_through_seq` it reflects (or never PUBACKed).
    static func fetchPendingCountedOnTop(planInstanceID: String, in db: Database) throws -> [PendingLocalSwap] {
        let mark = try recordCountedThroughSeq(planInstanceID: planInstanceID, in: db) ?? -1
        return try Row.fetchAll(db.cachedStatement(sql: """
            SELECT \(pendingColumns) FROM pending_local_swap
            WHERE plan_instance_id = ? AND in_cache = 0 AND (acked_at_ms IS NULL OR event_seq > ?)
            ORDER BY completed_at_ms, swap_id
            """), arguments: [planInstanceID, mark]).map(pendingLocalSwap(from:))
    }

    static func pendingLocalSwap(from row: Row) -> PendingLocalSwap {
        PendingLocalSwap(swapID: row["swap_id"], planInstanceID: row["plan_instance_id"], swaps: row["swaps"],
                         energyKWh: row["energy_kwh"], returnedBatteryID: row["returned_battery_id"],
                         issuedBatteryID: row["issued_battery_id"], completedAt: date(row["completed_at_ms"]))
    }

    static func entitlementVersion(in db: Database) throws -> Int64? {
        try metaValue(EntitlementMetaKey.version, in: db).flatMap { Int64($0) }
    }

    static func entitlementArguments(_ e: Entitlement) -> StatementArguments {
        [e.planInstanceID, e.customerID, e.subscriptionRef, e.status.rawValue, millis(e.validFrom),
         millis(e.validUntil), e.networkCode, e.batteryFamily, e.swapQuota, e.swapsUsed, e.energyQuotaKWh,
         e.energyUsedKWh, e.overageAllowed, e.maxBatteries, jsonStringArray(e.batteriesOut), e.version]
    }

    static func entitlement(from row: Row) throws -> Entitlement {
        let id: String = row["plan_instance_id"]
        let statusText: String = row["status"]
        guard let status = Entitlement.Status(rawValue: statusText) else {
            throw StoreError.corrupt("entitlement \(id) has an unknown status '\(statusText)'")
        }
        let outText: String = row["batteries_out"]
        guard let out = try? JSONDecoder().decode([String].self, from: Data(outText.utf8)) else {
            throw StoreError.corrupt("entitlement \(id) has malformed batteries_out '\(outText)'")
        }
        return Entitlement(planInstanceID: id, customerID: row["customer_id"], subscriptionRef: row["subscription_ref"],
                           status: status, validFrom: date(row["valid_from_ms"]), validUntil: date(row["valid_until_ms"]),
                           networkCode: row["network_code"], batteryFamily: row["battery_family"],
                           swapQuota: row["swap_quota"], swapsUsed: row["swaps_used"],
                           energyQuotaKWh: row["energy_quota_kwh"], energyUsedKWh: row["energy_used_kwh"],
                           overageAllowed: row["overage_allowed"], maxBatteries: row["max_batteries"],
                           batteriesOut: out, version: row["version"])
    }

    /// A JSON array of strings (hand-written: a snapshot encodes 100 000 of them).
    static func jsonStringArray(_ values: [String]) -> String {
        var out = "["
        for (i, value) in values.enumerated() {
            if i > 0 { out += "," }
            out += "\""
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20:
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default: out.unicodeScalars.append(scalar)
                }
            }
            out += "\""
        }
        return out + "]"
    }

    static func metaValue(_ key: String, in db: Database) throws -> String? {
        try String.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = ?"), arguments: [key])
    }

    /// Sets (nil: deletes) a meta value inside the caller's transaction.
    static func setMetaValue(_ value: String?, for key: String, in db: Database) throws {
        if let value {
            try db.cachedStatement(sql: """
                INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value
                """).execute(arguments: [key, value])
        } else {
            try db.cachedStatement(sql: "DELETE FROM meta WHERE key = ?").execute(arguments: [key])
        }
    }
}
