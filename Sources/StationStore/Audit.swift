#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SQLiteLink

// The audit trail: who did what, for technicians and disputes. Lines are written in the same
// transaction as what they describe (`insertSwap`, `updateSwap`, `completeSwap`) or on their own
// (`appendAudit`). Never deleted by the store.

/// One audit line. `timestamp` is stored to the millisecond.
public struct AuditEntry: Sendable, Codable, Equatable {
    public var timestamp: Date
    /// Who: `swap-coordinator`, `abs`, `technician:<id>`, …
    public var actor: String
    /// What, e.g. `swap.completed`. Must not be empty.
    public var action: String
    /// Details as JSON text (opaque to the store).
    public var detail: String

    public init(timestamp: Date, actor: String, action: String, detail: String = "{}") {
        self.timestamp = timestamp
        self.actor = actor
        self.action = action
        self.detail = detail
    }
}

extension StationStore {
    /// The last `limit` audit lines, newest first.
    public func audit(limit: Int) async throws -> [AuditEntry] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT ts_ms, actor, action, detail FROM audit ORDER BY id DESC LIMIT ?",
                             arguments: [max(0, limit)]).map { row in
                AuditEntry(timestamp: Self.date(row["ts_ms"]), actor: row["actor"], action: row["action"],
                           detail: row["detail"])
            }
        }
    }

    /// Records audit lines on their own, in one transaction.
    public func appendAudit(_ entries: [AuditEntry]) async throws {
        if entries.isEmpty { return }
        try await write { db in try Self.insertAudit(entries, in: db) }
    }

    /// Inserts audit lines inside the caller's transaction.
    static func insertAudit(_ entries: [AuditEntry], in db: Database) throws {
        if entries.isEmpty { return }
        let insert = try db.cachedStatement(sql: "INSERT INTO audit (ts_ms, actor, action, detail) VALUES (?, ?, ?, ?)")
        for entry in entries {
            try insert.execute(arguments: [millis(entry.timestamp), entry.actor, entry.action, entry.detail])
        }
    }
}
