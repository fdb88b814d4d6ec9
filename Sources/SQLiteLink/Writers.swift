// The owners of connections: one serialized owner per connection (a Mutex), a queue (one connection) and a pool
// (a writer and one reader in WAL mode), both behind GRDB's `DatabaseReader`/`DatabaseWriter` protocols.
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
import Dispatch
import Synchronization

/// How connections are opened and set up (GRDB's defaults: foreign keys on, read-write, busy → error at once).
public struct Configuration: Sendable {
    public enum BusyMode: Sendable {
        /// SQLITE_BUSY is reported at once.
        case immediateError
        /// SQLite retries for up to that many seconds (`sqlite3_busy_timeout`).
        case timeout(TimeInterval)
    }

    public var foreignKeysEnabled = true
    /// Opens with `SQLITE_OPEN_READONLY`. A pool's reader connection always has it.
    public var readonly = false
    public var busyMode = BusyMode.immediateError
    var setups: [@Sendable (Database) throws -> Void] = []

    public init() {}

    /// Adds `setup`, run on every new connection after the built-in setup (its `configuration.readonly` tells a
    /// pool's reader from its writer).
    public mutating func prepareDatabase(_ setup: @escaping @Sendable (Database) throws -> Void) {
        setups.append(setup)
    }
}

/// One connection and the lock that serializes every access to it. The connection is only touched inside
/// `lock.withLock`, which is what makes this class Sendable.
final class SerializedDatabase: @unchecked Sendable {
    private let lock = Mutex(())
    private var database: Database?
    /// Where async accesses wait for the lock and run: a thread of Dispatch's, not one of Swift's cooperative
    /// pool (which has one thread per core), as GRDB runs them on its serial dispatch queue.
    private let queue = DispatchQueue(label: "SQLiteLink.connection")

    init(path: String, configuration: Configuration) throws {
        database = try Database(path: path, configuration: configuration)
    }

    deinit { database?.close() }

    /// Runs `body` with the connection, blocking the calling thread while another access runs. Not reentrant:
    /// calling it again from `body` would deadlock (GRDB forbids it too).
    func sync<T>(_ body: (Database) throws -> T) throws -> T {
        var result: Result<T, any Error>?
        lock.withLock { _ in
            guard let database else {
                result = .failure(DatabaseError(resultCode: .SQLITE_MISUSE, message: "Connection is closed"))
                return
            }
            result = Result { try body(database) }
        }
        return try result!.get()
    }

    /// `sync` on the connection's queue; the caller suspends meanwhile.
    func async<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T {
        try await withoutActuallyEscaping(body) { body in
            // The queue's block holds the box, and the box the closure only until it ran: when the continuation
            // resumes, nothing holds the closure any more (what `withoutActuallyEscaping` checks).
            let job = Job(body)
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                queue.async {
                    let result = Result { try self.sync(job.take()) }
                    continuation.resume(with: result)
                }
            }
        }
    }

    private final class Job<T>: @unchecked Sendable {   // touched by one thread at a time: the queue's
        private var body: (@Sendable (Database) throws -> T)?
        init(_ body: @escaping @Sendable (Database) throws -> T) { self.body = body }
        func take() -> @Sendable (Database) throws -> T {
            defer { body = nil }
            return body!
        }
    }

    func close() {
        lock.withLock { _ in
            database?.close()
            database = nil
        }
    }
}

/// Something that gives read access to a database.
public protocol DatabaseReader: AnyObject, Sendable {
    /// The path it was opened with (`:memory:` for an in-memory queue).
    var path: String { get }
    var configuration: Configuration { get }
    /// Runs `body` in a read-only transaction on a connection of its own for that time (`read`'s primitive).
    func performRead<T>(_ body: (Database) throws -> T) throws -> T
    /// Same, the caller suspended while it waits and runs.
    func performAsyncRead<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T
    /// Closes the connections; later accesses throw SQLITE_MISUSE.
    func close() throws
}

/// Something that gives read and write access to a database.
public protocol DatabaseWriter: DatabaseReader {
    /// Runs `body` on the writing connection, outside of any transaction (`writeWithoutTransaction`'s primitive).
    func performWrite<T>(_ body: (Database) throws -> T) throws -> T
    /// Same, the caller suspended while it waits and runs.
    func performAsyncWrite<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T
    /// Same, once no read runs (a pool's reader waits).
    func performBarrierWrite<T>(_ body: (Database) throws -> T) throws -> T
}

// The public accesses, GRDB's names. The async variants suspend the caller (a `StationStore` actor stays free for
// other calls, e.g. a read while a write runs) while the connection's dispatch queue waits for it and runs them.
extension DatabaseReader {
    public func read<T>(_ value: (Database) throws -> T) throws -> T {
        try performRead(value)
    }

    public func read<T: Sendable>(_ value: @Sendable (Database) throws -> T) async throws -> T {
        try await performAsyncRead(value)
    }
}

extension DatabaseWriter {
    /// Runs `updates` in one `BEGIN IMMEDIATE … COMMIT` transaction; if it throws, the transaction is rolled back.
    public func write<T>(_ updates: (Database) throws -> T) throws -> T {
        try performWrite { db in try Self.inImmediateTransaction(db, updates) }
    }

    public func write<T: Sendable>(_ updates: @Sendable (Database) throws -> T) async throws -> T {
        try await performAsyncWrite { db in try Self.inImmediateTransaction(db, updates) }
    }

    public func writeWithoutTransaction<T>(_ updates: (Database) throws -> T) throws -> T {
        try performWrite(updates)
    }

    public func writeWithoutTransaction<T: Sendable>(_ updates: @Sendable (Database) throws -> T) async throws -> T {
        try await performAsyncWrite(updates)
    }

    public func barrierWriteWithoutTransaction<T>(_ updates: (Database) throws -> T) throws -> T {
        try performBarrierWrite(updates)
    }

    private static func inImmediateTransaction<T>(_ db: Database, _ updates: (Database) throws -> T) throws -> T {
        var result: T?
        try db.inTransaction(.immediate) {
            result = try updates(db)
            return .commit
        }
        return result!
    }
}

/// Runs `body` in a deferred transaction, so everything it reads comes from one snapshot.
private func inReadTransaction<T>(_ db: Database, _ body: (Database) throws -> T) throws -> T {
    var result: T?
    try db.inTransaction(.deferred) {
        result = try body(db)
        return .commit
    }
    return result!
}

/// One connection for reads and writes, serialized. Journal mode as the file has it (no WAL set up): for
/// in-memory databases (tests) and short-lived tool access.
public final class DatabaseQueue: DatabaseWriter {
    public let path: String
    public let configuration: Configuration
    private let connection: SerializedDatabase

    public init(path: String, configuration: Configuration = Configuration()) throws {
        self.path = path
        self.configuration = configuration
        connection = try SerializedDatabase(path: path, configuration: configuration)
    }

    /// A private in-memory database.
    public convenience init(configuration: Configuration = Configuration()) throws {
        try self.init(path: ":memory:", configuration: configuration)
    }

    /// Reads run in a transaction with `PRAGMA query_only` on: a write in `read` fails, as in GRDB.
    public func performRead<T>(_ body: (Database) throws -> T) throws -> T {
        try connection.sync { db in try Self.queryOnly(db, body) }
    }

    public func performAsyncRead<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T {
        try await connection.async { db in try Self.queryOnly(db, body) }
    }

    private static func queryOnly<T>(_ db: Database, _ body: (Database) throws -> T) throws -> T {
        try inReadTransaction(db) { db in
            try db.execute(sql: "PRAGMA query_only = 1")
            defer { try? db.execute(sql: "PRAGMA query_only = 0") }
            return try body(db)
        }
    }

    public func performWrite<T>(_ body: (Database) throws -> T) throws -> T {
        try connection.sync(body)
    }

    public func performAsyncWrite<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T {
        try await connection.async(body)
    }

    public func performBarrierWrite<T>(_ body: (Database) throws -> T) throws -> T {
        try connection.sync(body)
    }

    public func close() throws { connection.close() }
}

/// A file database in WAL mode: one writer connection (writes serialized on it) and one read-only reader
/// connection, so a read sees the last committed state and runs while a write transaction is open. (GRDB keeps
/// up to five readers; the station store used one.)
public final class DatabasePool: DatabaseWriter {
    public let path: String
    public let configuration: Configuration
    private let writer: SerializedDatabase
    private let reader: SerializedDatabase

    /// Opens (creates unless `readonly`) the file, turns WAL on (with GRDB's `synchronous = NORMAL`; set FULL
    /// after if commits must survive a power cut), then opens the reader.
    public init(path: String, configuration: Configuration = Configuration()) throws {
        self.path = path
        self.configuration = configuration
        writer = try SerializedDatabase(path: path, configuration: configuration)
        if !configuration.readonly {
            try writer.sync { db in try db.setUpWALMode() }
        }
        var readerConfiguration = configuration
        readerConfiguration.readonly = true
        reader = try SerializedDatabase(path: path, configuration: readerConfiguration)
    }

    public func performRead<T>(_ body: (Database) throws -> T) throws -> T {
        try reader.sync { db in try inReadTransaction(db, body) }
    }

    public func performAsyncRead<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T {
        try await reader.async { db in try inReadTransaction(db, body) }
    }

    public func performWrite<T>(_ body: (Database) throws -> T) throws -> T {
        try writer.sync(body)
    }

    public func performAsyncWrite<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T {
        try await writer.async(body)
    }

    /// Lock order: writer, then reader (reads never take the writer's lock, so no deadlock).
    public func performBarrierWrite<T>(_ body: (Database) throws -> T) throws -> T {
        try writer.sync { db in try reader.sync { _ in try body(db) } }
    }

    /// Closes the reader, then the writer: the last connection checkpoints and removes the WAL file.
    public func close() throws {
        reader.close()
        writer.close()
    }
}

extension Database {
    /// GRDB's WAL setup: `journal_mode = WAL`, `synchronous = NORMAL`, and a non-empty `-wal` file (a read-only
    /// connection cannot open a WAL database whose WAL does not exist yet).
    func setUpWALMode() throws {
        guard try String.fetchOne(self, sql: "PRAGMA journal_mode = WAL") == "wal" else {
            throw DatabaseError(message: "could not activate WAL Mode at path: \(path)")
        }
        try execute(sql: "PRAGMA synchronous = NORMAL")
        var info = stat()
        if stat(path + "-wal", &info) != 0 || info.st_size == 0 {
            try inTransaction(.immediate) {
                try execute(sql: """
                    CREATE TABLE grdb_issue_102 (id INTEGER PRIMARY KEY);
                    DROP TABLE grdb_issue_102;
                    """)
                return .commit
            }
        }
    }
}
