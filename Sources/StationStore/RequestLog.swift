#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SQLiteLink

// Replay protection for ABS commands (abs-mqtt.md): a command's `request_id` is remembered until
// the command would have expired, plus a margin, so a replayed command is refused even after a
// restart.

extension StationStore {
    /// How long a request id is kept beyond its `expires_at`: covers the clock skew the command
    /// check allows and the station's clock being set back (NTP after a cold start) by up to this
    /// much. Rows are a few dozen bytes; at a few commands a minute a day is a few thousand rows.
    public static let requestMemoryMargin: TimeInterval = 24 * 3600

    /// Expired ids purged per call (bounded work; the purge runs at every call).
    static let requestPurgeBatch = 1_000

    /// Remembers `requestID` until `expiresAt` + `requestMemoryMargin`. True: first time seen
    /// (now recorded). False: already seen, and its memory has not expired yet (a replay). Purges
    /// expired ids in the same transaction. A second sighting keeps the later expiry.
    public func rememberRequest(_ requestID: String, expiresAt: Date, now: Date) async throws -> Bool {
        let expiresMs = Self.millis(expiresAt)
        let cutoffMs = Self.millis(now.addingTimeInterval(-Self.requestMemoryMargin))
        let batch = Self.requestPurgeBatch
        // A swap needs its request remembered first: on a full disk the store makes room as for a swap record.
        return try await withSwapDiskFullRecovery { try await write { db in
            try db.execute(sql: """
                DELETE FROM seen_request WHERE request_id IN (
                    SELECT request_id FROM seen_request INDEXED BY seen_request_expiry
                    WHERE expires_at_ms < ? LIMIT ?)
                """, arguments: [cutoffMs, batch])
            // A row past its memory that the bounded purge has not reached yet counts as absent.
            if let known = try Int64.fetchOne(db, sql: "SELECT expires_at_ms FROM seen_request WHERE request_id = ?",
                                              arguments: [requestID]), known >= cutoffMs {
                if expiresMs > known {
                    try db.execute(sql: "UPDATE seen_request SET expires_at_ms = ? WHERE request_id = ?",
                                   arguments: [expiresMs, requestID])
                }
                return false
            }
            try db.execute(sql: """
                INSERT INTO seen_request (request_id, expires_at_ms) VALUES (?, ?)
                ON CONFLICT(request_id) DO UPDATE SET expires_at_ms = excluded.expires_at_ms
                """, arguments: [requestID, expiresMs])
            return true
        } }
    }

    /// Request ids remembered now (diagnostics).
    public func rememberedRequestCount() async throws -> Int {
        try await read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM seen_request") ?? 0 }
    }
}
