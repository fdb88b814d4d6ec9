#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SQLiteLink
import StationSupport

// Disk-full handling.
//
// In WAL mode a full file system can wedge SQLite: the WAL cannot grow, and the checkpoint that
// would reset it needs the database file to grow. Then even `markSent` and retention fail, and
// nothing the store does can free space. (RealDiskFullTests shows it on a full tmpfs.)
//
// So the store keeps a reserve file, `<path>-reserve` (8 MiB by default), preallocated next to
// the database. On SQLITE_FULL, `appendEvents` relieves the pressure once before giving up:
// it deletes the reserve, deletes every *sent* event (they are at ABS already; unsent events
// are never touched), checkpoints, and retries the append. If that is still not enough and an
// entitlement snapshot in parts is being staged, it gives that up (its staged parts and rows: ABS
// sends parts again) and retries once more. Only then does it throw `StoreError.diskFull`, having
// written nothing. The reserve is re-created, only when
// the file system has room for three times its size, at the next open or `applyRetention`.
extension StationStore {
    var reservePath: String { path + "-reserve" }

    /// Whether the reserve file is in place (for tests and diagnostics).
    nonisolated var hasDiskReserve: Bool {
        FileManager.default.fileExists(atPath: path + "-reserve")
    }

    /// Deletes the reserve file. Returns whether there was one.
    @discardableResult
    func releaseReserve() -> Bool {
        DiskReserve.release(at: reservePath)
    }

    /// Frees what the store can free under disk pressure: the reserve file, every sent event,
    /// and the WAL (checkpoint TRUNCATE). Unsent events are never deleted. Errors are swallowed:
    /// the caller retries its write and reports what that gives. Returns sent events deleted.
    @discardableResult
    func relieveDiskPressure() async -> Int {
        releaseReserve()
        var deleted = 0
        while true {
            let batch = Self.retentionBatch
            guard let n = try? await pool.write({ db -> Int in
                try db.execute(sql: """
                    DELETE FROM event WHERE seq IN (
                        SELECT seq FROM event INDEXED BY event_sent_at WHERE sent_at_ms IS NOT NULL LIMIT ?)
                    """, arguments: [batch])
                return db.changesCount
            }) else { break }
            deleted += n
            if n < batch { break }
        }
        _ = try? await pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
        return deleted
    }

    /// Runs `operation`; on `.diskFull`, relieves disk pressure once and runs it again; still full, gives up
    /// the unfinished snapshot in parts, if one is staged, and runs it a last time.
    /// For writes that must not fail lightly (events, a completed swap). `operation` runs three times
    /// at most, so it must only write to the database (a failed transaction leaves nothing).
    func withDiskFullRecovery<T: Sendable>(_ operation: () async throws -> T) async throws -> T {
        do {
            return try await operation()
        } catch StoreError.diskFull {
            await relieveDiskPressure()
            return try await withStagedPartsRelief(operation)
        }
    }

    /// Runs `operation`; on `.diskFull`, discards the unfinished snapshot in parts (when there is one) and runs it
    /// once more.
    func withStagedPartsRelief<T: Sendable>(_ operation: () async throws -> T) async throws -> T {
        do {
            return try await operation()
        } catch StoreError.diskFull {
            // Staged rows: of the unfinished set, or of a discarded one not yet deleted.
            let staged = (try? await read { db in try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM snapshot_part_row)") ?? false }) ?? false
            guard staged else { throw StoreError.diskFull }
            await discardUnfinishedSnapshotParts()
            return try await operation()
        }
    }
}

// The reserve file's file-system side is StationSupport's `DiskReserve` (generic: a path and a size); the
// alias keeps the name in scope for the store's other files.
typealias DiskReserve = StationSupport.DiskReserve
