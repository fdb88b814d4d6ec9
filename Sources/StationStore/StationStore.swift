#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SQLiteLink
import StationSupport

/// The station's durable store: one SQLite file in WAL mode with `synchronous = FULL`.
///
/// The actor is the only way in. SQLiteLink's `DatabasePool` serialises writes on one connection
/// (every write is one `BEGIN IMMEDIATE … COMMIT` transaction) and runs reads on one
/// reader connection that sees the last committed state (WAL: a read runs while a write transaction is open). Methods suspend while SQLite works,
/// they never block the caller's thread (except `init`, which opens and migrates, and `close`).
///
/// Every SQLite error leaves as a `StoreError` (see `StoreError` for the mapping).
public actor StationStore {
    /// SQLite's `synchronous` setting. `FULL` is the production setting; `NORMAL` exists only
    /// so the benchmark test can measure what `FULL` costs.
    enum Synchronous: String, Sendable {
        case full = "FULL"
        case normal = "NORMAL"
    }

    /// Sent rows deleted per transaction by `applyRetention`, so appends interleave with it.
    static let retentionBatch = 2_000
    /// Free pages kept inside the file after retention for reuse; beyond that they are given
    /// back to the file system by an incremental vacuum.
    static let freePageReserve = 1_024
    /// Upper bound of the WAL file's size kept after a checkpoint (bytes).
    static let walSizeLimit = 8 * 1024 * 1024
    /// SQLite page cache per connection (KiB): the writer's takes a snapshot apply's index pages, the reader's the lookups.
    static let writerCacheKiB = 1024
    static let readerCacheKiB = 512
    /// Size of the reserve file (see DiskSpace.swift): more than a full WAL (1000 pages).
    static let defaultReserveBytes = 8 * 1024 * 1024

    public nonisolated let path: String
    /// Signalled after this store committed a usage record that is due (a completed swap's, an import, a
    /// re-send): the Odoo forwarder, its one waiter, sends it at once instead of polling the outbox.
    /// (Another process's writes reach the forwarder through a watch on the `-wal` file.)
    public nonisolated let usageWakeup = Wakeup()
    /// The database connection(s): a `DatabasePool` on a file (WAL) for the daemon and tools; any SQLiteLink
    /// `DatabaseWriter` given to `init(writer:)` (an in-memory `DatabaseQueue` in tests).
    let pool: any DatabaseWriter
    let reserveBytes: Int
    private var closed = false

    /// Opens (or creates) the database at `path` and runs the pending migrations.
    public init(path: String) throws {
        try self.init(path: path, maxPageCount: nil, synchronous: .full, reserveBytes: Self.defaultReserveBytes)
    }

    /// Same as `init(path:)`, with SQLite's `max_page_count` set on the writing connection:
    /// the database file cannot grow beyond that many pages (4 KiB each) and writes that would
    /// need more fail with `StoreError.diskFull`, exactly as on a full disk. For tests.
    public init(path: String, maxPageCount: Int?) throws {
        try self.init(path: path, maxPageCount: maxPageCount, synchronous: .full,
                      reserveBytes: Self.defaultReserveBytes)
    }

    init(path: String, maxPageCount: Int?, synchronous: Synchronous,
         reserveBytes: Int = StationStore.defaultReserveBytes) throws {
        self.path = path
        self.reserveBytes = reserveBytes
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(5)
        // Memory (issue 13 item 3): one reader beside the writer (reads are short; WAL lets them run during a write;
        // a `DatabasePool` has exactly one), and a small page cache per connection instead of SQLite's 2 MiB default:
        // the hot pages (indexes of the event log, the outbox, an entitlement lookup) fit, and the kernel's page
        // cache holds the rest of the file.
        let walLimit = Self.walSizeLimit
        let (writerCacheKiB, readerCacheKiB) = (Self.writerCacheKiB, Self.readerCacheKiB)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA cache_size = -\(db.configuration.readonly ? readerCacheKiB : writerCacheKiB)")
            if !db.configuration.readonly {
                // Only takes effect on a new, empty file (before the first table exists): lets
                // retention give free pages back to the file system (`PRAGMA incremental_vacuum`).
                try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
                try db.execute(sql: "PRAGMA journal_size_limit = \(walLimit)")
            }
        }
        do {
            pool = try Self.open(path: path, configuration: config, maxPageCount: maxPageCount,
                                 synchronous: synchronous)
        } catch {
            let mapped = Self.mapError(error, path: path)
            // Opening needs a little space (the WAL and its index are created again after a
            // clean close): on a full disk that fails (SQLITE_FULL or SQLITE_IOERR_SHMSIZE, both
            // `.diskFull`). Give up the reserve file and try once more.
            switch mapped {
            case StoreError.diskFull:
                guard DiskReserve.release(at: path + "-reserve") else { throw mapped }
                do {
                    pool = try Self.open(path: path, configuration: config, maxPageCount: maxPageCount,
                                         synchronous: synchronous)
                } catch {
                    throw Self.mapError(error, path: path)
                }
            default:
                throw mapped
            }
        }
        DiskReserve.ensure(at: path + "-reserve", bytes: reserveBytes)
    }

    /// A store over a database writer the caller made, e.g. an in-memory `DatabaseQueue()` for in-process tests
    /// (as GRDB's demo app's `AppDatabase` did): runs the same named migrations as `init(path:)`. No reserve file,
    /// no WAL or `synchronous` settings (those belong to the file the daemon opens); `path` is the writer's.
    public init(writer: any DatabaseWriter) throws {
        self.path = writer.path
        self.reserveBytes = 0
        do {
            try Self.makeMigrator().migrate(writer)
        } catch {
            throw Self.mapError(error, path: writer.path)
        }
        pool = writer
    }

    /// Opens an existing station database for a tool (`swapctl … --store FILE`): no migration, no reserve file,
    /// nothing created. `readOnly` (the default) opens it with SQLite's read-only flag; when no `-wal` file lies
    /// next to it (a copy, or a database closed cleanly) it is opened `immutable`, so not even the WAL index is
    /// created and the directory is left exactly as it was. With a `-wal` file (the daemon running, or a copy
    /// taken with it) the existing WAL is read. `readOnly: false` is for a technician's write (a re-send): the
    /// file must exist. Throws `StoreSchemaError` when the database's migrations are not exactly this build's
    /// (older: let the daemon migrate it first; newer: use the swapctl of the swapgate that wrote it).
    public init(existingAt path: String, readOnly: Bool = true) throws {
        self.path = path
        self.reserveBytes = 0
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError.io("\(path): no such file")
        }
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(5)
        config.readonly = readOnly
        var openPath = path
        if readOnly && !FileManager.default.fileExists(atPath: path + "-wal") {
            let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
            openPath = "file:" + Self.percentEncodedURIPath(absolute) + "?immutable=1"
        }
        do {
            pool = try DatabasePool(path: openPath, configuration: config)
            try pool.read { db in try Self.checkSchema(db) }
        } catch {
            throw Self.mapError(error, path: path)
        }
    }

    /// `path` for a `file:` URI: every UTF-8 byte outside Foundation's `CharacterSet.urlPathAllowed` less `?#%`
    /// (ASCII letters, digits and `!$&'()*+,-./:=@_~`) as `%XX`, as `addingPercentEncoding` wrote it.
    static func percentEncodedURIPath(_ path: String) -> String {
        let allowed = Set("!$&'()*+,-./:=@_~".utf8)
        var encoded = ""
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            case _ where allowed.contains(byte):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".unicodeScalars)
                encoded.unicodeScalars.append("%")
                encoded.unicodeScalars.append(hex[Int(byte >> 4)])
                encoded.unicodeScalars.append(hex[Int(byte & 0x0F)])
            }
        }
        return encoded
    }

    /// Throws unless the database's applied migrations are exactly this build's.
    static func checkSchema(_ db: Database) throws {
        let known = makeMigrator().migrations
        let applied: [String]
        if try db.tableExists("grdb_migrations") {
            applied = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
        } else {
            applied = []
        }
        let unknown = applied.filter { !known.contains($0) }
        if !unknown.isEmpty { throw StoreSchemaError.tooNew(unknown: unknown) }
        let missing = known.filter { !applied.contains($0) }
        if !missing.isEmpty { throw StoreSchemaError.tooOld(missing: missing) }
    }

    private static func open(path: String, configuration: Configuration, maxPageCount: Int?,
                             synchronous: Synchronous) throws -> DatabasePool {
        let pool = try DatabasePool(path: path, configuration: configuration)
        try pool.writeWithoutTransaction { db in
            // The pool sets NORMAL when it turns WAL on (as GRDB did); FULL syncs the WAL at every commit, so a
            // committed transaction survives a power cut, not only a process crash.
            try db.execute(sql: "PRAGMA synchronous = \(synchronous.rawValue)")
        }
        try makeMigrator().migrate(pool)
        if let maxPageCount {
            try pool.writeWithoutTransaction { db in
                _ = try Int.fetchOne(db, sql: "PRAGMA max_page_count = \(max(1, maxPageCount))")
            }
        }
        return pool
    }

    // MARK: Events

    /// Records `events` in one transaction with seqs last+1, last+2, … and returns them as
    /// stored. Either all are recorded or none (and no seq is consumed).
    ///
    /// On a full disk it first relieves the pressure (reserve file, sent events; see
    /// DiskSpace.swift) and tries once more; then it throws `StoreError.diskFull`.
    public func appendEvents(_ events: [NewEvent]) async throws -> [StoredEvent] {
        if events.isEmpty { return [] }
        // One path with `appendEvents(_:settingMeta:)` (StationStore+Meta.swift), disk-full recovery included.
        return try await appendEvents(events, settingMeta: [:])
    }

    /// Unsent events, oldest (lowest seq) first.
    public func unsentEvents(limit: Int) async throws -> [StoredEvent] {
        try await unsentEvents(afterSeq: 0, limit: limit)
    }

    /// Unsent events with seq > `afterSeq`, lowest seq first (for a pipelined sender).
    public func unsentEvents(afterSeq: Int64, limit: Int) async throws -> [StoredEvent] {
        try await read { db in
            try Self.fetchEvents(db, sql: """
                SELECT \(Self.eventColumns) FROM event INDEXED BY event_unsent
                WHERE sent_at_ms IS NULL AND seq > ? ORDER BY seq LIMIT ?
                """, arguments: [afterSeq, max(0, limit)])
        }
    }

    /// Marks events as acknowledged by the broker. Idempotent: an event keeps the time it was
    /// first marked; unknown seqs (never given out, or already deleted) are ignored.
    public func markSent(seqs: [Int64], at: Date) async throws {
        if seqs.isEmpty { return }
        let ms = Self.millis(at)
        try await write { db in
            for chunk in stride(from: 0, to: seqs.count, by: 500) {
                let part = Array(seqs[chunk..<min(chunk + 500, seqs.count)])
                let marks = databaseQuestionMarks(count: part.count)
                try db.execute(
                    sql: "UPDATE event SET sent_at_ms = ? WHERE sent_at_ms IS NULL AND seq IN (\(marks))",
                    arguments: StatementArguments([ms] + part))
            }
        }
    }

    /// Tail and search for technicians. `newestFirst`: seq ≤ `fromSeq`, descending; otherwise
    /// seq ≥ `fromSeq`, ascending. `type` is matched exactly; nil means every type.
    public func events(fromSeq: Int64?, type: String?, limit: Int, newestFirst: Bool) async throws -> [StoredEvent] {
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let fromSeq {
            conditions.append(newestFirst ? "seq <= ?" : "seq >= ?")
            arguments.append(fromSeq)
        }
        if let type {
            conditions.append("type = ?")
            arguments.append(type)
        }
        arguments.append(max(0, limit))
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let sql = "SELECT \(Self.eventColumns) FROM event \(whereClause) ORDER BY seq \(newestFirst ? "DESC" : "ASC") LIMIT ?"
        let args = StatementArguments(arguments)
        return try await read { db in try Self.fetchEvents(db, sql: sql, arguments: args) }
    }

    public func stats() async throws -> EventLogStats {
        let (total, unsent, last, oldestMs) = try await read { db -> (Int, Int, Int64, Int64?) in
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM event") ?? 0
            let unsent = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM event INDEXED BY event_unsent WHERE sent_at_ms IS NULL") ?? 0
            let oldest = try Int64.fetchOne(db, sql: """
                SELECT ts_ms FROM event INDEXED BY event_unsent WHERE sent_at_ms IS NULL ORDER BY seq LIMIT 1
                """)
            return (total, unsent, try Self.lastSeq(in: db), oldest)
        }
        return EventLogStats(total: total, unsent: unsent, lastSeq: last,
                             oldestUnsentTimestamp: oldestMs.map(Self.date), fileBytes: fileBytes())
    }

    /// Deletes sent events by `policy` and returns how many. Unsent events are never deleted,
    /// and the seq counter is untouched. Deletes in batches (one transaction each) so appends
    /// are not held up; then gives free pages beyond a reserve back to the file system.
    public func applyRetention(_ policy: RetentionPolicy, now: Date) async throws -> Int {
        let batch = Self.retentionBatch
        var deleted = 0
        if policy.keepSentDays.isFinite {
            let cutoff = Self.millis(now.addingTimeInterval(-max(0, policy.keepSentDays) * 86_400))
            while true {
                let n = try await write { db -> Int in
                    try db.execute(sql: """
                        DELETE FROM event WHERE seq IN (
                            SELECT seq FROM event INDEXED BY event_sent_at
                            WHERE sent_at_ms IS NOT NULL AND sent_at_ms < ? LIMIT ?)
                        """, arguments: [cutoff, batch])
                    return db.changesCount
                }
                deleted += n
                if n < batch { break }
            }
        }
        let keep = max(0, policy.maxSentRows)
        while true {
            let n = try await write { db -> Int in
                let sent = try Int.fetchOne(db, sql: """
                    SELECT COUNT(*) FROM event INDEXED BY event_sent_at WHERE sent_at_ms IS NOT NULL
                    """) ?? 0
                let excess = min(sent - keep, batch)
                if excess <= 0 { return 0 }
                try db.execute(sql: """
                    DELETE FROM event WHERE seq IN (
                        SELECT seq FROM event WHERE sent_at_ms IS NOT NULL ORDER BY seq LIMIT ?)
                    """, arguments: [excess])
                return db.changesCount
            }
            deleted += n
            if n < batch { break }
        }
        if deleted > 0 { try await releaseFreePages() }
        DiskReserve.ensure(at: reservePath, bytes: reserveBytes)
        return deleted
    }

    // MARK: Meta

    /// A value of the small key/value table, nil if absent.
    public func meta(_ key: String) async throws -> String? {
        try await read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]) }
    }

    /// Sets (or, with nil, removes) a value of the key/value table.
    public func setMeta(_ key: String, _ value: String?) async throws {
        try await write { db in
            if let value {
                try db.execute(sql: """
                    INSERT INTO meta (key, value) VALUES (?, ?)
                    ON CONFLICT(key) DO UPDATE SET value = excluded.value
                    """, arguments: [key, value])
            } else {
                try db.execute(sql: "DELETE FROM meta WHERE key = ?", arguments: [key])
            }
        }
    }

    // MARK: Escape hatches

    /// Runs `body` in one write transaction (BEGIN IMMEDIATE … COMMIT). If it throws, nothing
    /// it wrote is kept. SQLite errors leave as `StoreError`; other errors unchanged.
    public func write<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T {
        try checkOpen()
        do {
            return try await pool.write(body)
        } catch {
            throw Self.mapError(error, path: path)
        }
    }

    /// Runs `body` on a reader connection, in a snapshot of the last committed state.
    public func read<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T {
        try checkOpen()
        do {
            return try await pool.read(body)
        } catch {
            throw Self.mapError(error, path: path)
        }
    }

    // MARK: Maintenance

    /// Runs SQLite's `integrity_check` and `foreign_key_check`, and checks the seq counter
    /// against the log. Returns the problems found; empty means healthy.
    public func integrityCheck() async throws -> [String] {
        try await read { db in
            var problems = try String.fetchAll(db, sql: "PRAGMA integrity_check").filter { $0 != "ok" }
            for row in try Row.fetchAll(db, sql: "PRAGMA foreign_key_check") {
                problems.append("foreign key violation: \(row)")
            }
            let last = try Self.lastSeq(in: db)
            if let highest = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM event"), highest > last {
                problems.append("event_seq.last_seq \(last) is below the highest event seq \(highest)")
            }
            return problems
        }
    }

    /// Copies the WAL into the database file and truncates the WAL (`wal_checkpoint(TRUNCATE)`).
    /// SQLite also checkpoints on its own every ~1000 pages; call this e.g. before a backup.
    public func checkpoint() async throws {
        try checkOpen()
        do {
            try await pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
        } catch {
            throw Self.mapError(error, path: path)
        }
    }

    /// Closes the database (a last checkpoint, the WAL file is removed). Every later call throws.
    public func close() async throws {
        if closed { return }
        do {
            try pool.close()
            closed = true
        } catch {
            throw Self.mapError(error, path: path)
        }
    }

    // MARK: Internals

    private func checkOpen() throws {
        if closed { throw StoreError.other("\(path): the store is closed") }
    }

    /// Gives free pages beyond `freePageReserve` back to the file system (incremental vacuum).
    /// Kept pages are reused by later appends without growing the file.
    func releaseFreePages() async throws {
        let reserve = Self.freePageReserve
        try checkOpen()
        do {
            try await pool.writeWithoutTransaction { db in
                let autoVacuum = try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") ?? 0
                let free = try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
                if autoVacuum == 2, free > reserve {
                    try db.execute(sql: "PRAGMA incremental_vacuum(\(free - reserve))")
                }
            }
        } catch {
            throw Self.mapError(error, path: path)
        }
    }

    private nonisolated func fileBytes() -> Int64 {
        var total: Int64 = 0
        for file in [path, path + "-wal"] {
            // lstat: the size FileManager.attributesOfItem gave before (it does not follow a symbolic link).
            var info = stat()
            if lstat(file, &info) == 0 { total += Int64(info.st_size) }
        }
        return total
    }

    static func mapError(_ error: any Error, path: String) -> any Error {
        if error is StoreError || error is StoreSchemaError { return error }
        guard let dbError = error as? DatabaseError else { return error }
        let detail = "\(path): \(dbError.message ?? "\(dbError.extendedResultCode)") (\(dbError.extendedResultCode))"
        // SQLITE_IOERR_SHMSIZE: the WAL index (-shm) could not be extended, in practice because
        // the file system is full; SQLite reports ENOSPC on data writes as SQLITE_FULL.
        if dbError.extendedResultCode == .SQLITE_IOERR_SHMSIZE { return StoreError.diskFull }
        switch dbError.resultCode {
        case .SQLITE_FULL: return StoreError.diskFull
        case .SQLITE_READONLY: return StoreError.readOnly
        case .SQLITE_CORRUPT, .SQLITE_NOTADB: return StoreError.corrupt(detail)
        case .SQLITE_IOERR, .SQLITE_CANTOPEN: return StoreError.io(detail)
        default: return StoreError.other(detail)
        }
    }
}

/// A station database whose schema is not this build's (`StationStore(existingAt:)`, which never migrates).
public enum StoreSchemaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Migrations this build has and the database lacks: an older swapgate wrote it.
    case tooOld(missing: [String])
    /// Migrations the database has and this build does not know: a newer swapgate wrote it.
    case tooNew(unknown: [String])

    public var description: String {
        switch self {
        case .tooOld(let m):
            return "station database schema is older than this swapctl (missing \(m.joined(separator: ", "))): start this swapgate on it once to migrate it, or use the swapctl that came with the swapgate that wrote it"
        case .tooNew(let u):
            return "station database schema is newer than this swapctl (unknown \(u.joined(separator: ", "))): use the swapctl that came with the swapgate that wrote it"
        }
    }
}
