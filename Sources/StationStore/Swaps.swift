#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SQLiteLink
import StationDomain

// Swaps (table `swap`), written together with their events and audit lines: every call is one
// transaction. `completeSwap` is the one place where a swap is billed: it refuses a swap that is
// already final, so a swap is never billed twice (and the unique keys of `pending_local_swap`
// and `usage_outbox` would refuse a second row anyway).

/// A swap write refused by the store's rules (nothing was written).
public enum SwapStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `insertSwap`: as many swaps as allowed are in progress already (their ids).
    case swapInProgress([String])
    /// `insertSwap`: a swap with this id exists.
    case duplicateSwap(String)
    /// `updateSwap`/`completeSwap`: no swap with this id.
    case unknownSwap(String)
    /// `updateSwap`/`completeSwap`: the swap is in a final stage already; it does not change any more.
    case alreadyFinished(swapID: String, stage: SwapStage)
    /// `completeSwap` with a stage that is not final.
    case notFinal(swapID: String, stage: SwapStage)
    /// `insertSwap`/`updateSwap` with stage `.completed`: completion (billing) goes through `completeSwap`.
    case completionNeedsCompleteSwap(String)
    /// `completeSwap` with a pending local swap but no `swap.completed` event to link it to.
    case missingCompletedEvent(String)
    /// The pending local swap or the usage record belongs to another swap or plan.
    case mismatch(String)

    public var description: String {
        switch self {
        case .swapInProgress(let ids): return "a swap is in progress already (\(ids.joined(separator: ", ")))"
        case .duplicateSwap(let id): return "swap \(id) exists already"
        case .unknownSwap(let id): return "no swap \(id)"
        case .alreadyFinished(let id, let stage): return "swap \(id) is finished already (\(stage.rawValue))"
        case .notFinal(let id, let stage): return "swap \(id): completion with a stage that is not final (\(stage.rawValue))"
        case .completionNeedsCompleteSwap(let id): return "swap \(id): stage completed is written by completeSwap only"
        case .missingCompletedEvent(let id): return "swap \(id): no swap.completed event to link the pending local swap to"
        case .mismatch(let m): return "swap completion mismatch: \(m)"
        }
    }
}

extension StationStore {
    /// The event types a pending local swap is linked to by default (the first of either): the
    /// custody-changing events that ABS acknowledges with `counted_through_seq`.
    public static let swapCompletedEventType = "swap.completed"
    public static let swapReturnedEventType = "swap.returned"

    // MARK: Writes

    /// Records a new swap with its events and audit lines, in one transaction. Refused
    /// (`SwapStoreError.swapInProgress`) when `allowConcurrent` swaps (default 1) are in progress
    /// (stage not final) already. On a full disk it gives up a snapshot being staged and the
    /// relief of `appendEvents` before throwing `StoreError.diskFull`.
    public func insertSwap(_ swap: SwapRecord, events: [NewEvent], audit: [AuditEntry],
                           allowConcurrent: Int = 1) async throws -> [StoredEvent] {
        let row = try Self.swapArguments(swap)
        return try await withSwapDiskFullRecovery {
            try await write { db in
                if swap.stage == .completed { throw SwapStoreError.completionNeedsCompleteSwap(swap.swapID) }
                if try Self.fetchSwapState(swap.swapID, in: db) != nil {
                    throw SwapStoreError.duplicateSwap(swap.swapID)
                }
                if !swap.stage.isFinal {
                    let inProgress = try String.fetchAll(db, sql: """
                        SELECT swap_id FROM swap INDEXED BY swap_in_progress WHERE final = 0 ORDER BY ord
                        """)
                    if inProgress.count >= max(1, allowConcurrent) { throw SwapStoreError.swapInProgress(inProgress) }
                }
                try db.execute(sql: """
                    INSERT INTO swap (swap_id, request_id, customer_id, plan_instance_id, kind, stage, final,
                                      accepted_at_ms, updated_at_ms, finished_at_ms, record)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: row)
                let stored = try Self.appendEvents(events, in: db)
                try Self.insertAudit(audit, in: db)
                return stored
            }
        }
    }

    /// Records a swap's new state (a stage transition, an unlock seq, …) with its events and audit
    /// lines, in one transaction. The swap must exist and not be final; `.completed` is refused
    /// (use `completeSwap`). A final stage without usage or custody change (`.aborted`) is fine.
    public func updateSwap(_ swap: SwapRecord, events: [NewEvent], audit: [AuditEntry]) async throws -> [StoredEvent] {
        let row = try Self.swapArguments(swap)
        return try await withSwapDiskFullRecovery {
            try await write { db in
                if swap.stage == .completed { throw SwapStoreError.completionNeedsCompleteSwap(swap.swapID) }
                try Self.checkSwapOpen(swap.swapID, in: db)
                try Self.updateSwapRow(row, in: db)
                let stored = try Self.appendEvents(events, in: db)
                try Self.insertAudit(audit, in: db)
                return stored
            }
        }
    }

    /// Finishes a swap, all or nothing, in one transaction:
    /// - the swap row, in its final stage (`.completed`, or e.g. `.returnedWithoutIssue`);
    /// - the events (the pending local swap is linked to the seq of the event at
    ///   `completedEventIndex`, by default the first of type `swap.completed` or `swap.returned`:
    ///   it stays counted until a snapshot or delta whose `counted_through_seq` covers that seq);
    /// - with `pending`: the cached record of its plan folded (`swaps_used`, `energy_used_kwh`,
    ///   `batteries_out`: `Entitlement.applying`) and the `pending_local_swap` row, kept until ABS
    ///   has provably counted the swap;
    /// - with `usage`: the usage record in the Odoo outbox (pending, due at once);
    /// - the audit lines.
    ///
    /// A swap that is already final is refused (`SwapStoreError.alreadyFinished`), with nothing
    /// written: a swap is never billed twice. On a full disk: see `insertSwap`.
    public func completeSwap(_ swap: SwapRecord, pending: PendingLocalSwap?, usage: UsageRecord?, events: [NewEvent],
                             audit: [AuditEntry], completedEventIndex: Int? = nil) async throws -> [StoredEvent] {
        guard swap.stage.isFinal else { throw SwapStoreError.notFinal(swapID: swap.swapID, stage: swap.stage) }
        if let pending, pending.swapID != swap.swapID || pending.planInstanceID != swap.planInstanceID {
            throw SwapStoreError.mismatch("pending local swap \(pending.swapID)/\(pending.planInstanceID) for swap \(swap.swapID)/\(swap.planInstanceID)")
        }
        if let usage, usage.swapID != swap.swapID {
            throw SwapStoreError.mismatch("usage record of swap \(usage.swapID) for swap \(swap.swapID)")
        }
        if let completedEventIndex, !events.indices.contains(completedEventIndex) {
            throw SwapStoreError.missingCompletedEvent(swap.swapID)
        }
        let row = try Self.swapArguments(swap)
        let usageJSON = try usage.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        let createdMs = Self.millis(swap.finishedAt ?? swap.updatedAt)
        defer { if usage != nil { usageWakeup.signal() } }   // after the commit (or a failure: a harmless look)
        return try await withSwapDiskFullRecovery {
            try await write { db in
                try Self.checkSwapOpen(swap.swapID, in: db)
                try Self.updateSwapRow(row, in: db)
                let stored = try Self.appendEvents(events, in: db)
                if let pending {
                    let linked: StoredEvent
                    if let completedEventIndex {
                        linked = stored[completedEventIndex]
                    } else if let first = stored.first(where: {
                        $0.type == Self.swapCompletedEventType || $0.type == Self.swapReturnedEventType
                    }) {
                        linked = first
                    } else {
                        throw SwapStoreError.missingCompletedEvent(swap.swapID)
                    }
                    var inCache = false
                    if let cached = try Self.fetchEntitlement(planInstanceID: pending.planInstanceID, in: db) {
                        let folded = cached.applying([pending])
                        try db.execute(sql: """
                            UPDATE entitlement SET swaps_used = ?, energy_used_kwh = ?, batteries_out = ?
                            WHERE plan_instance_id = ?
                            """, arguments: [folded.swapsUsed, folded.energyUsedKWh,
                                             Self.jsonStringArray(folded.batteriesOut), pending.planInstanceID])
                        inCache = true
                    }
                    try db.execute(sql: """
                        INSERT INTO pending_local_swap (swap_id, plan_instance_id, swaps, energy_kwh, returned_battery_id,
                                                        issued_battery_id, completed_at_ms, event_seq, acked_at_ms, in_cache)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)
                        """, arguments: [pending.swapID, pending.planInstanceID, pending.swaps, pending.energyKWh,
                                         pending.returnedBatteryID, pending.issuedBatteryID,
                                         Self.millis(pending.completedAt), linked.seq, inCache ? 1 : 0])
                }
                if let usage, let usageJSON {
                    try db.execute(sql: """
                        INSERT INTO usage_outbox (key, swap_id, state, attempts, next_attempt_at_ms, last_error,
                                                  created_at_ms, settled_at_ms, odoo_log_id, record)
                        VALUES (?, ?, 'pending', 0, ?, NULL, ?, NULL, NULL, ?)
                        """, arguments: [usage.idempotencyKey, usage.swapID, createdMs, createdMs, usageJSON])
                }
                try Self.insertAudit(audit, in: db)
                return stored
            }
        }
    }

    // MARK: Reads

    /// Swaps whose stage is not final, oldest first (after a restart: the swap to finish).
    public func swapsInProgress() async throws -> [SwapRecord] {
        try await read { db in
            try Self.decodeSwaps(String.fetchAll(db, sql: """
                SELECT record FROM swap INDEXED BY swap_in_progress WHERE final = 0 ORDER BY ord
                """))
        }
    }

    public func swap(id: String) async throws -> SwapRecord? {
        try await read { db in
            try Self.decodeSwaps(String.fetchAll(db, sql: "SELECT record FROM swap WHERE swap_id = ?",
                                                 arguments: [id])).first
        }
    }

    /// The last `limit` swaps recorded, newest first.
    public func recentSwaps(limit: Int) async throws -> [SwapRecord] {
        try await read { db in
            try Self.decodeSwaps(String.fetchAll(db, sql: "SELECT record FROM swap ORDER BY ord DESC LIMIT ?",
                                                 arguments: [max(0, limit)]))
        }
    }

    /// Swaps in `stage`, or all swaps with nil.
    public func swapCount(stage: SwapStage?) async throws -> Int {
        try await read { db in
            if let stage {
                return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM swap WHERE stage = ?", arguments: [stage.rawValue]) ?? 0
            }
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM swap") ?? 0
        }
    }

    // MARK: Internals

    /// `withDiskFullRecovery` for swap writes, which go before a snapshot being staged: on
    /// `.diskFull` it gives up the reserve file, the staging table and an old cache not yet
    /// deleted (the snapshot apply then
    /// fails with `.snapshotSuperseded`; ABS sends it again), relieves the disk like
    /// `appendEvents` does, and runs `operation` once more.
    func withSwapDiskFullRecovery<T: Sendable>(_ operation: () async throws -> T) async throws -> T {
        do {
            return try await operation()
        } catch StoreError.diskFull {
            releaseReserve()
            _ = try? await pool.write { db in try Self.dropEntitlementStagingAndRetired(in: db) }
            await relieveDiskPressure()
            return try await withStagedPartsRelief(operation)
        }
    }

    static func checkSwapOpen(_ swapID: String, in db: Database) throws {
        guard let stage = try fetchSwapState(swapID, in: db) else { throw SwapStoreError.unknownSwap(swapID) }
        if stage.isFinal { throw SwapStoreError.alreadyFinished(swapID: swapID, stage: stage) }
    }

    static func fetchSwapState(_ swapID: String, in db: Database) throws -> SwapStage? {
        guard let text = try String.fetchOne(db, sql: "SELECT stage FROM swap WHERE swap_id = ?", arguments: [swapID]) else {
            return nil
        }
        guard let stage = SwapStage(rawValue: text) else {
            throw StoreError.corrupt("swap \(swapID) has an unknown stage '\(text)'")
        }
        return stage
    }

    /// The columns of a swap row, in the order of the INSERT (swap_id first: `updateSwapRow`
    /// uses the same arguments, swap_id in its WHERE clause).
    static func swapArguments(_ swap: SwapRecord) throws -> StatementArguments {
        let json = String(decoding: try JSONEncoder().encode(swap), as: UTF8.self)
        return [swap.swapID, swap.requestID, swap.customerID, swap.planInstanceID, swap.kind.rawValue,
                swap.stage.rawValue, swap.stage.isFinal ? 1 : 0, millis(swap.acceptedAt), millis(swap.updatedAt),
                swap.finishedAt.map(millis), json]
    }

    static func updateSwapRow(_ row: StatementArguments, in db: Database) throws {
        // Same arguments as the INSERT: swap_id first, used in the WHERE clause.
        try db.execute(sql: """
            UPDATE swap SET request_id = ?2, customer_id = ?3, plan_instance_id = ?4, kind = ?5, stage = ?6,
                            final = ?7, accepted_at_ms = ?8, updated_at_ms = ?9, finished_at_ms = ?10, record = ?11
            WHERE swap_id = ?1
            """, arguments: row)
        guard db.changesCount == 1 else { throw StoreError.corrupt("swap row vanished during its update") }
    }

    static func decodeSwaps(_ records: [String]) throws -> [SwapRecord] {
        let decoder = JSONDecoder()
        return try records.map { text in
            do {
                return try decoder.decode(SwapRecord.self, from: Data(text.utf8))
            } catch {
                throw StoreError.corrupt("swap record is not a readable SwapRecord: \(error)")
            }
        }
    }
}
