#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SQLiteLink
import StationDomain

extension StationStore {
    /// Puts usage records straight into the Odoo outbox, pending, in the given order, in one transaction per
    /// 1 000 records. For moving a backlog from another store and for the benchmark; the normal path is
    /// `completeSwap`, which writes the record together with its swap. A key already present is skipped.
    @discardableResult
    public func importUsage(_ records: [UsageRecord], at: Date) async throws -> Int {
        var imported = 0
        defer { if imported > 0 { usageWakeup.signal() } }
        for start in stride(from: 0, to: records.count, by: 1000) {
            let chunk = Array(records[start ..< min(start + 1000, records.count)])
            let rows = try chunk.map { ($0, String(decoding: try JSONEncoder().encode($0), as: UTF8.self)) }
            let ms = Int64((at.timeIntervalSince1970 * 1000).rounded())
            imported += try await write { db in
                var n = 0
                for (usage, json) in rows {
                    try db.execute(sql: """
                        INSERT OR IGNORE INTO usage_outbox (key, swap_id, state, attempts, next_attempt_at_ms, last_error,
                                                            created_at_ms, settled_at_ms, odoo_log_id, record)
                        VALUES (?, ?, 'pending', 0, ?, NULL, ?, NULL, NULL, ?)
                        """, arguments: [usage.idempotencyKey, usage.swapID, ms, ms, json])
                    n += db.changesCount
                }
                return n
            }
        }
        return imported
    }
}

extension StationStore {
    /// Settles many records in one transaction (the forwarder marks the answers that arrived while its previous
    /// mark was being written). Unknown keys are ignored; a record settles once. Like `markUsageSettled(key:…)`,
    /// counts the attempt and clears the last error.
    public func markUsageSettled(_ settled: [(key: String, odooLogID: Int?)], at: Date) async throws {
        guard !settled.isEmpty else { return }
        let ms = Int64((at.timeIntervalSince1970 * 1000).rounded())
        try await write { db in
            for s in settled {
                try db.execute(sql: """
                    UPDATE usage_outbox SET state = 'settled', settled_at_ms = ?, odoo_log_id = ?,
                                            attempts = attempts + 1, last_error = NULL
                    WHERE key = ? AND state <> 'settled'
                    """, arguments: [ms, s.odooLogID, s.key])
            }
        }
    }
}
