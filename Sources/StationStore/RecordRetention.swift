#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SQLiteLink

/// How long the records that have done their job are kept for technicians (months on a small board add up:
/// one swap a minute is half a million usage rows a year).
public struct RecordRetention: Sendable {
    /// Usage records Odoo accepted (settled) are deleted this many days after settlement. Pending and
    /// rejected ones are never deleted: they still need Odoo or a human.
    public var keepSettledUsageDays: Double
    /// Finished swaps are deleted this many days after they finished, unless a usage record or a pending
    /// local swap still refers to them. Local swap rows (`pending_local_swap`) completed longer ago than
    /// this are deleted once no cached record counts them on top any more: every record's
    /// `counted_through_seq` covers their event (entitlements, "Acknowledgement"), and never sooner than
    /// `minimumLocalSwapRowDays`: far beyond a command's longest lifetime (1 day), so no late snapshot can
    /// still need them.
    public var keepFinishedSwapDays: Double
    public static let minimumLocalSwapRowDays: Double = 7
    /// Audit lines older than this are deleted.
    public var keepAuditDays: Double

    public init(keepSettledUsageDays: Double = 90, keepFinishedSwapDays: Double = 90, keepAuditDays: Double = 365) {
        self.keepSettledUsageDays = keepSettledUsageDays
        self.keepFinishedSwapDays = keepFinishedSwapDays
        self.keepAuditDays = keepAuditDays
    }
}

extension StationStore {
    /// Deletes settled usage records, acknowledged local swap rows, finished swaps and audit lines past their retention, in short
    /// transactions (the writer is never held long). Returns how many rows were deleted.
    @discardableResult
    public func applyRecordRetention(_ policy: RecordRetention, now: Date) async throws -> Int {
        func cutoff(_ days: Double) -> Int64 { Self.millis(now.addingTimeInterval(-max(0, days) * 86_400)) }
        let usageCutoff = cutoff(policy.keepSettledUsageDays)
        let swapCutoff = cutoff(policy.keepFinishedSwapDays)
        let localSwapCutoff = cutoff(max(policy.keepFinishedSwapDays, RecordRetention.minimumLocalSwapRowDays))
        let auditCutoff = cutoff(policy.keepAuditDays)
        let statements: [(String, Int64)] = [
            // Before the swaps (a swap is kept while a local swap row refers to it). The lowest value any
            // record reflects (NULL if one covers nothing: then none is deleted); folded-in and unsent rows stay.
            ("""
             DELETE FROM pending_local_swap WHERE swap_id IN (
                 SELECT swap_id FROM pending_local_swap
                 WHERE completed_at_ms < ? AND in_cache = 0 AND acked_at_ms IS NOT NULL
                   AND event_seq <= (SELECT CASE WHEN count(*) = count(v) THEN min(v) END FROM (
                       SELECT cache_counted_through_seq AS v FROM abs_counted_through
                       UNION ALL SELECT counted_through_seq FROM abs_counted_through_record))
                 LIMIT ?)
             """, localSwapCutoff),
            ("""
             DELETE FROM usage_outbox WHERE ord IN (
                 SELECT ord FROM usage_outbox INDEXED BY usage_outbox_state
                 WHERE state = 'settled' AND settled_at_ms < ? LIMIT ?)
             """, usageCutoff),
            ("""
             DELETE FROM swap WHERE ord IN (
                 SELECT ord FROM swap WHERE final = 1 AND finished_at_ms < ?
                   AND swap_id NOT IN (SELECT swap_id FROM usage_outbox)
                   AND swap_id NOT IN (SELECT swap_id FROM pending_local_swap)
                 LIMIT ?)
             """, swapCutoff),
            ("DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE ts_ms < ? ORDER BY id LIMIT ?)", auditCutoff),
        ]
        var deleted = 0
        for (sql, cut) in statements {
            while true {
                let n = try await write { db -> Int in
                    try db.execute(sql: sql, arguments: [cut, Self.retentionBatch])
                    return db.changesCount
                }
                deleted += n
                if n < Self.retentionBatch { break }
            }
        }
        if deleted > 0 { try await releaseFreePages() }
        return deleted
    }
}
