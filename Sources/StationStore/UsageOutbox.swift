#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SQLiteLink
import StationDomain

// The Odoo usage outbox (shared/specs/odoo-usage-log.md): usage records written by
// `completeSwap` in the swap's transaction, sent oldest first by the forwarder, kept after
// settlement for technicians. A rejected record leaves the queue (so it blocks nothing) but
// stays listable and can be re-sent by hand.

/// A usage record and its delivery state.
public struct StoredUsage: Sendable, Equatable {
    public let record: UsageRecord
    public let state: UsageState
    /// Requests sent so far, whatever their answer: deferred (`deferUsage`), rejected (`markUsageRejected`) and
    /// the one that settled it (`markUsageSettled`). Reset by `resendUsage`.
    public let attempts: Int
    /// Not sent before this time (pending records).
    public let nextAttemptAt: Date
    public let lastError: String?
    /// When the swap was recorded (its `finishedAt`).
    public let createdAt: Date
    public let settledAt: Date?
    public let odooLogID: Int?

    public init(record: UsageRecord, state: UsageState, attempts: Int, nextAttemptAt: Date, lastError: String?,
                createdAt: Date, settledAt: Date?, odooLogID: Int?) {
        self.record = record; self.state = state; self.attempts = attempts; self.nextAttemptAt = nextAttemptAt
        self.lastError = lastError; self.createdAt = createdAt; self.settledAt = settledAt; self.odooLogID = odooLogID
    }
}

public struct UsageStats: Sendable, Equatable {
    public let pending: Int
    public let rejected: Int
    public let settled: Int
    /// Creation time of the oldest pending record (the backlog's age), nil if none.
    public let oldestPendingAt: Date?

    public init(pending: Int, rejected: Int, settled: Int, oldestPendingAt: Date?) {
        self.pending = pending; self.rejected = rejected; self.settled = settled; self.oldestPendingAt = oldestPendingAt
    }
}

public enum UsageOutboxError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownUsage(String)
    public var description: String {
        switch self {
        case .unknownUsage(let key): return "no usage record with idempotency key \(key)"
        }
    }
}

extension StationStore {
    static let usageColumns = """
        key, state, attempts, next_attempt_at_ms, last_error, created_at_ms, settled_at_ms, odoo_log_id, record
        """

    /// Pending records due at `now`, oldest (first recorded) first. Rejected and settled records
    /// are never returned; a record deferred to later is skipped, not waited for.
    public func dueUsage(now: Date, limit: Int) async throws -> [StoredUsage] {
        let nowMs = Self.millis(now)
        return try await read { db in
            try Self.fetchUsage(db, sql: """
                SELECT \(Self.usageColumns) FROM usage_outbox INDEXED BY usage_outbox_state
                WHERE state = 'pending' AND next_attempt_at_ms <= ? ORDER BY ord LIMIT ?
                """, arguments: [nowMs, max(0, limit)])
        }
    }

    /// When the earliest pending record is due (now or later), nil when none is pending: how long the forwarder
    /// may sleep when nothing new is written.
    public func nextUsageDue() async throws -> Date? {
        try await read { db in
            try Int64.fetchOne(db, sql: "SELECT MIN(next_attempt_at_ms) FROM usage_outbox WHERE state = 'pending'")
        }.map { Date(timeIntervalSince1970: Double($0) / 1000) }
    }

    /// Odoo answered `recorded` or `duplicate`. A record is settled once: settling it again keeps
    /// the first time and log id. A rejected record can be settled (a hand re-send in flight).
    /// Counts the attempt and clears the last error (a settled record has none).
    public func markUsageSettled(key: String, odooLogID: Int?, at: Date) async throws {
        let ms = Self.millis(at)
        try await write { db in
            try Self.requireUsage(key, in: db)
            try db.execute(sql: """
                UPDATE usage_outbox SET state = 'settled', settled_at_ms = ?, odoo_log_id = ?,
                                        attempts = attempts + 1, last_error = NULL
                WHERE key = ? AND state <> 'settled'
                """, arguments: [ms, odooLogID, key])
        }
    }

    /// Odoo refused the record as invalid: it leaves the queue, kept with `error` for technicians;
    /// the attempt is counted. No effect on a settled record.
    public func markUsageRejected(key: String, error: String, at: Date) async throws {
        try await write { db in
            try Self.requireUsage(key, in: db)
            try db.execute(sql: """
                UPDATE usage_outbox SET state = 'rejected', attempts = attempts + 1, last_error = ?
                WHERE key = ? AND state = 'pending'
                """, arguments: [error, key])
        }
    }

    /// A transient failure: the record stays pending, `attempts` + 1, not due before `nextAttemptAt`.
    /// No effect on a settled or rejected record.
    public func deferUsage(key: String, error: String, nextAttemptAt: Date) async throws {
        let ms = Self.millis(nextAttemptAt)
        try await write { db in
            try Self.requireUsage(key, in: db)
            try db.execute(sql: """
                UPDATE usage_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at_ms = ?
                WHERE key = ? AND state = 'pending'
                """, arguments: [error, ms, key])
        }
    }

    /// A technician's re-send: a rejected (or pending) record becomes pending, due at `now`, with
    /// its attempts reset; it keeps its place in the creation order. False if the key is unknown
    /// or the record is settled.
    public func resendUsage(key: String, now: Date) async throws -> Bool {
        let ms = Self.millis(now)
        defer { usageWakeup.signal() }
        return try await write { db in
            try db.execute(sql: """
                UPDATE usage_outbox SET state = 'pending', attempts = 0, next_attempt_at_ms = ?
                WHERE key = ? AND state IN ('rejected', 'pending')
                """, arguments: [ms, key])
            return db.changesCount == 1
        }
    }

    public func usage(key: String) async throws -> StoredUsage? {
        try await read { db in
            try Self.fetchUsage(db, sql: "SELECT \(Self.usageColumns) FROM usage_outbox WHERE key = ?",
                                arguments: [key]).first
        }
    }

    public func usageStats() async throws -> UsageStats {
        try await read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM usage_outbox GROUP BY state") {
                counts[row["state"]] = row["n"]
            }
            let oldest = try Int64.fetchOne(db, sql: """
                SELECT created_at_ms FROM usage_outbox INDEXED BY usage_outbox_state
                WHERE state = 'pending' ORDER BY ord LIMIT 1
                """)
            return UsageStats(pending: counts["pending"] ?? 0, rejected: counts["rejected"] ?? 0,
                              settled: counts["settled"] ?? 0, oldestPendingAt: oldest.map(Self.date))
        }
    }

    /// Records in `state` (nil: all), newest first.
    public func listUsage(state: UsageState?, limit: Int) async throws -> [StoredUsage] {
        try await read { db in
            if let state {
                return try Self.fetchUsage(db, sql: """
                    SELECT \(Self.usageColumns) FROM usage_outbox INDEXED BY usage_outbox_state
                    WHERE state = ? ORDER BY ord DESC LIMIT ?
                    """, arguments: [state.rawValue, max(0, limit)])
            }
            return try Self.fetchUsage(db, sql: "SELECT \(Self.usageColumns) FROM usage_outbox ORDER BY ord DESC LIMIT ?",
                                       arguments: [max(0, limit)])
        }
    }

    // MARK: Internals

    static func requireUsage(_ key: String, in db: Database) throws {
        guard try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM usage_outbox WHERE key = ?)", arguments: [key]) == true else {
            throw UsageOutboxError.unknownUsage(key)
        }
    }

    static func fetchUsage(_ db: Database, sql: String, arguments: StatementArguments) throws -> [StoredUsage] {
        let decoder = JSONDecoder()
        return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
            let key: String = row["key"]
            let stateText: String = row["state"]
            guard let state = UsageState(rawValue: stateText) else {
                throw StoreError.corrupt("usage \(key) has an unknown state '\(stateText)'")
            }
            let text: String = row["record"]
            let record: UsageRecord
            do {
                record = try decoder.decode(UsageRecord.self, from: Data(text.utf8))
            } catch {
                throw StoreError.corrupt("usage \(key) is not a readable UsageRecord: \(error)")
            }
            let settled: Int64? = row["settled_at_ms"]
            return StoredUsage(record: record, state: state, attempts: row["attempts"],
                               nextAttemptAt: date(row["next_attempt_at_ms"]), lastError: row["last_error"],
                               createdAt: date(row["created_at_ms"]), settledAt: settled.map(date),
                               odooLogID: row["odoo_log_id"])
        }
    }
}
