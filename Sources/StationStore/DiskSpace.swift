import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Disk-full handling.
//
// In WAL mode a full file system can wedge SQLite: the WAL cannot grow, and the checkpoint that
// would reset it needs the database file to grow. Then even `markSent` and retention fail, and
// nothing the store does can free space. (RealDiskFullTests shows it on a full tmpfs.)
//
// So the store keeps a reserve file, `<path>-reserve` (8 MiB by default), preallocated next to
// the database. On SQLITE_FULL, `appendEvents` relieves the pressure once before giving up:
// it deletes the reserve, deletes every *sent* event (they are at ABS already; unsent events
// are never touched), checkpoints, and retries the append. If that is still not enough it
// throws `StoreError.diskFull` and has written nothing. The reserve is re-created, only when
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

    /// Runs `operation`; on `.diskFull`, relieves disk pressure once and runs it again.
    /// For writes that must not fail lightly (events, a completed swap). `operation` runs twice
    /// at most, so it must only write to the database (a failed transaction leaves nothing).
    func withDiskFullRecovery<T: Sendable>(_ operation: () async throws -> T) async throws -> T {
        do {
            return try await operation()
        } catch StoreError.diskFull {
            await relieveDiskPressure()
            return try await operation()
        }
    }
}

/// The reserve file's file-system side (kept apart from the actor, whose `write` and `close`
/// methods would shadow the C functions).
enum DiskReserve {
    /// Creates the reserve file if it is missing and the file system has room to spare.
    /// Returns whether the reserve is in place. Never throws: the reserve is an aid, not a need.
    @discardableResult
    static func ensure(at reservePath: String, bytes: Int) -> Bool {
        guard bytes > 0 else { return false }
        if let size = (try? FileManager.default.attributesOfItem(atPath: reservePath))?[.size] as? NSNumber,
           size.intValue >= bytes {
            return true
        }
        let directory = (reservePath as NSString).deletingLastPathComponent
        var fs = statvfs()
        guard statvfs(directory.isEmpty ? "." : directory, &fs) == 0,
              Int64(fs.f_bavail) * Int64(fs.f_frsize) >= 3 * Int64(bytes) else { return false }
        let fd = open(reservePath, O_WRONLY | O_CREAT, 0o600)
        guard fd >= 0 else { return false }
        var ok = posix_fallocate(fd, 0, off_t(bytes)) == 0
        if !ok {
            // File systems without fallocate: write zeros (a sparse file would reserve nothing).
            ok = ftruncate(fd, 0) == 0
            let chunk = [UInt8](repeating: 0, count: 64 * 1024)
            var written = 0
            while ok && written < bytes {
                let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, min($0.count, bytes - written)) }
                if n <= 0 { ok = false } else { written += n }
            }
        }
        close(fd)
        if !ok { unlink(reservePath) }
        return ok
    }

    static func release(at reservePath: String) -> Bool {
        unlink(reservePath) == 0
    }
}
