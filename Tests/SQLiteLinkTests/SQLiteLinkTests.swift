import Foundation
import Synchronization
import Testing
@testable import SQLiteLink

/// A fresh directory for one test's database files.
private struct TempDir {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("sqlitelink-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func remove() { try? FileManager.default.removeItem(at: url) }
}

@Suite struct StatementTests {
    @Test func executeRunsEveryStatementOfAScriptWithItsArguments() throws {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: """
                CREATE TABLE a (x INTEGER);   -- a comment
                CREATE TABLE b (y TEXT);
                INSERT INTO a (x) VALUES (?);
                INSERT INTO b (y) VALUES (?), (?);
                /* trailing comment */
                """, arguments: [7, "p", nil])
        }
        try queue.read { (db) throws in
            #expect(try Int.fetchAll(db, sql: "SELECT x FROM a") == [7])
            #expect(try String.fetchAll(db, sql: "SELECT coalesce(y, 'null') FROM b ORDER BY rowid") == ["p", "null"])
        }
        // Too many arguments are an error, and the transaction leaves nothing.
        #expect(throws: DatabaseError.self) {
            try queue.write { db in try db.execute(sql: "INSERT INTO a (x) VALUES (?)", arguments: [1, 2]) }
        }
        #expect(try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM a") } == 1)
    }

    @Test func cachedStatementsAreReusedWithNewArguments() throws {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            let insert = try db.cachedStatement(sql: "INSERT INTO t (v) VALUES (?)")
            #expect(try db.cachedStatement(sql: "INSERT INTO t (v) VALUES (?)") === insert)
            for v in ["a", "b", "c"] { try insert.execute(arguments: [v]) }
            #expect(db.lastInsertedRowID == 3)
            try db.execute(sql: "UPDATE t SET v = upper(v) WHERE id >= 2")
            #expect(db.changesCount == 2)
            #expect(db.totalChangesCount == 5)
            let select = try db.cachedStatement(sql: "SELECT v FROM t WHERE id = ?")
            #expect(try String.fetchOne(select, arguments: [1]) == "a")
            #expect(try String.fetchOne(select, arguments: [3]) == "C")
        }
    }

    @Test func rowsDecodeTypedValuesAndNulls() throws {
        let queue = try DatabaseQueue()
        let row = try queue.read { db in
            try Row.fetchOne(db, sql: "SELECT 42 AS i, 2.5 AS d, 'text' AS s, x'00ff' AS b, 1 AS flag, NULL AS n, ? AS bound",
                             arguments: [Int64.max])
        }
        let r = try #require(row)
        #expect(r["i"] as Int == 42)
        #expect(r["I"] as Int64 == 42)          // names are case-insensitive
        #expect(r[0] as Int == 42)
        #expect(r["d"] as Double == 2.5)
        #expect(r["i"] as Double == 42)         // INTEGER → Double
        #expect(r["d"] as Int == 2)             // REAL → integer, truncated (GRDB)
        #expect(r["s"] as String == "text")
        #expect(r["b"] as Data == Data([0, 255]))
        #expect(r["s"] as Data == Data("text".utf8))
        #expect(r["flag"] as Bool == true)
        #expect(r["bound"] as Int64 == .max)
        #expect((r["n"] as Int?) == nil)
        #expect((r["n"] as String?) == nil)
        #expect((r["missing"] as Int?) == nil)
        #expect((r["i"] as Int?) == 42)
        #expect(r.description == "[i:42 d:2.5 s:\"text\" b:Data(2 bytes) flag:1 n:NULL bound:9223372036854775807]")
    }

    @Test func fetchesGiveOptionalsForNullAndNoRow() throws {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (3), (1), (2);")
            #expect(try Int.fetchOne(db, sql: "SELECT v FROM t WHERE v > 10") == nil)
            #expect(try Int.fetchOne(db, sql: "SELECT MAX(v) FROM t WHERE v > 10") == nil)   // one row, NULL
            #expect(try Int.fetchOne(db, sql: "SELECT MAX(v) FROM t") == 3)
            #expect(try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM t WHERE v = 2)") == true)
            let cursor = try Int.fetchCursor(db, sql: "SELECT v FROM t ORDER BY v")
            var seen: [Int] = []
            while let v = try cursor.next() { seen.append(v) }
            #expect(seen == [1, 2, 3])
            #expect(try cursor.next() == nil)
            #expect(try Row.fetchAll(db, sql: "SELECT v, v * 2 AS w FROM t ORDER BY v").map { $0["w"] as Int } == [2, 4, 6])
            #expect(try db.tableExists("t"))
            #expect(try !db.tableExists("u"))
        }
    }

    /// Double-quoted string literals are off (SQLITE_DBCONFIG_DQS_DML/DDL = 0, as GRDB set them): `"x"` is an
    /// identifier, so a misspelt column is an error instead of silently becoming the text "x".
    @Test func doubleQuotedStringsAreIdentifiersOnly() throws {
        let queue = try DatabaseQueue()
        do {
            _ = try queue.read { db in try String.fetchOne(db, sql: #"SELECT "x""#) }
            Issue.record(#"SELECT "x" returned a string"#)
        } catch let error as DatabaseError {
            #expect(error.resultCode == .SQLITE_ERROR)
            #expect(error.message == "no such column: x")
        }
        try queue.write { db in
            // DDL too: a CHECK comparing with "z" names a column z, which the table does not have.
            #expect(throws: DatabaseError.self) { try db.execute(sql: #"CREATE TABLE bad (a TEXT, CHECK (a <> "z"))"#) }
            try db.execute(sql: #"CREATE TABLE "t" ("a" TEXT, CHECK (a <> 'z'))"#)
            try db.execute(sql: #"INSERT INTO t ("a") VALUES ('x')"#)
        }
        // A quoted name that is a column still works; single quotes are the string literals.
        #expect(try queue.read { db in try String.fetchOne(db, sql: #"SELECT "a" || 'y' FROM "t""#) } == "xy")
    }

    @Test func constraintErrorsCarryCodesMessageAndSQL() throws {
        let queue = try DatabaseQueue()
        try queue.write { db in try db.execute(sql: "CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL CHECK (n > 0))") }
        do {
            try queue.write { db in
                try db.execute(sql: "INSERT INTO t VALUES ('a', 1)")
                try db.execute(sql: "INSERT INTO t VALUES (?, 2)", arguments: ["a"])
            }
            Issue.record("a duplicate key was inserted")
        } catch let error as DatabaseError {
            #expect(error.resultCode == .SQLITE_CONSTRAINT)
            #expect(error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY)
            #expect(ResultCode.SQLITE_CONSTRAINT ~= error.extendedResultCode)
            #expect(!(ResultCode.SQLITE_CONSTRAINT_UNIQUE ~= error.extendedResultCode))
            #expect(error.message == "UNIQUE constraint failed: t.id")
            #expect(error.sql == "INSERT INTO t VALUES (?, 2)")
            #expect(error.description == "SQLite error 19: UNIQUE constraint failed: t.id - while executing `INSERT INTO t VALUES (?, 2)`")
            #expect("\(error.extendedResultCode)" == "1555 (constraint failed)")
        }
        #expect(throws: DatabaseError.self) {
            try queue.write { db in try db.execute(sql: "INSERT INTO t VALUES ('b', 0)") }
        }
        do {
            try queue.write { db in try db.execute(sql: "SELEKT 1") }
            Issue.record("bad SQL ran")
        } catch let error as DatabaseError {
            #expect(error.resultCode == .SQLITE_ERROR)
            #expect(error.message?.contains("syntax error") == true)
            #expect(error.sql == "SELEKT 1")
        }
    }
}

@Suite struct TransactionTests {
    struct Boom: Error {}

    @Test func aThrowingWriteRollsBackAndTheNextWriteWorks() async throws {
        let queue = try DatabaseQueue()
        try await queue.write { db in try db.execute(sql: "CREATE TABLE t (v INTEGER)") }
        await #expect(throws: Boom.self) {
            try await queue.write { db in
                try db.execute(sql: "INSERT INTO t VALUES (1)")
                #expect(db.isInsideTransaction)
                throw Boom()
            }
        }
        try await queue.write { db in try db.execute(sql: "INSERT INTO t VALUES (2)") }
        #expect(try await queue.read { db in try Int.fetchAll(db, sql: "SELECT v FROM t") } == [2])
        #expect(try await queue.writeWithoutTransaction { db in db.isInsideTransaction } == false)
    }

    @Test func writesAreImmediateTransactionsAndReadsCannotWrite() throws {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t (v INTEGER)")
            // BEGIN IMMEDIATE took the write lock: a nested BEGIN fails.
            #expect(throws: DatabaseError.self) { try db.execute(sql: "BEGIN") }
        }
        do {
            try queue.read { db in try db.execute(sql: "INSERT INTO t VALUES (1)") }
            Issue.record("a read wrote")
        } catch let error as DatabaseError {
            #expect(error.resultCode == .SQLITE_READONLY)
        }
        #expect(try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t") } == 0)
    }

    @Test func inMemoryQueuesAreSeparateDatabases() throws {
        let a = try DatabaseQueue(), b = try DatabaseQueue()
        #expect(a.path == ":memory:")
        try a.write { db in try db.execute(sql: "CREATE TABLE t (v INTEGER)") }
        #expect(try a.read { db in try db.tableExists("t") })
        #expect(try b.read { db in try db.tableExists("t") } == false)
        #expect(try a.read { db in try Int.fetchOne(db, sql: "PRAGMA foreign_keys") } == 1)   // GRDB's default
    }
}

@Suite struct PoolTests {
    @Test func aFilePoolIsInWALWithTheConfiguredSettings() throws {
        let dir = try TempDir(); defer { dir.remove() }
        var config = Configuration()
        config.busyMode = .timeout(5)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA cache_size = -\(db.configuration.readonly ? 256 : 512)")
        }
        let pool = try DatabasePool(path: dir.path("db.sqlite"), configuration: config)
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        let writer = try pool.writeWithoutTransaction { db in
            [try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA synchronous").map(String.init),
             try Int.fetchOne(db, sql: "PRAGMA busy_timeout").map(String.init), try Int.fetchOne(db, sql: "PRAGMA cache_size").map(String.init)]
        }
        #expect(writer == ["wal", "2", "5000", "-512"])
        let reader = try pool.read { db in
            [try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA cache_size").map(String.init)]
        }
        #expect(reader == ["wal", "-256"])
        #expect(FileManager.default.fileExists(atPath: dir.path("db.sqlite-wal")))
        // The reader connection is read-only.
        #expect(throws: DatabaseError.self) { try pool.read { db in try db.execute(sql: "CREATE TABLE x (v INTEGER)") } }
        try pool.close()
        #expect(!FileManager.default.fileExists(atPath: dir.path("db.sqlite-wal")), "the last close removes the WAL")
        do {
            _ = try pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
            Issue.record("a closed pool read")
        } catch let error as DatabaseError {
            #expect(error.resultCode == .SQLITE_MISUSE)
        }
    }

    /// A read runs on the reader while a write transaction is open on the writer, and sees the last commit.
    @Test func readsRunDuringAnOpenWriteAndSeeTheLastCommit() async throws {
        let dir = try TempDir(); defer { dir.remove() }
        let pool = try DatabasePool(path: dir.path("db.sqlite"))
        try await pool.write { db in try db.execute(sql: "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1);") }
        let inserted = Atomic(false), readDone = Atomic(false)
        let writer = Task {
            try await pool.write { db in
                try db.execute(sql: "INSERT INTO t VALUES (2)")
                inserted.store(true, ordering: .sequentiallyConsistent)
                // Hold the transaction until the read is done (at most ~20 s, then the test fails below).
                for _ in 0..<2_000 where !readDone.load(ordering: .sequentiallyConsistent) { usleep(10_000) }
            }
        }
        while !inserted.load(ordering: .sequentiallyConsistent) { await Task.yield() }
        let seen = try await pool.read { db in try Int.fetchAll(db, sql: "SELECT v FROM t ORDER BY v") }
        readDone.store(true, ordering: .sequentiallyConsistent)
        try await writer.value
        #expect(seen == [1])
        #expect(try await pool.read { db in try Int.fetchAll(db, sql: "SELECT v FROM t ORDER BY v") } == [1, 2])
        try pool.close()
    }

    @Test func aReadOnlyPoolOpensAnImmutableFile() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let path = dir.path("db.sqlite")
        let pool = try DatabasePool(path: path)
        try pool.write { db in try db.execute(sql: "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (5);") }
        try pool.close()
        var config = Configuration()
        config.readonly = true
        let tool = try DatabasePool(path: "file:\(path)?immutable=1", configuration: config)
        #expect(try tool.read { db in try Int.fetchOne(db, sql: "SELECT v FROM t") } == 5)
        #expect(throws: DatabaseError.self) { try tool.write { db in try db.execute(sql: "DELETE FROM t") } }
        try tool.close()
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
        #expect(!FileManager.default.fileExists(atPath: path + "-shm"))
    }
}

/// The names of the migrations that ran.
private final class Ran: Sendable {
    private let names = Mutex<[String]>([])
    func withLock<T>(_ body: (inout [String]) -> T) -> T { names.withLock { body(&$0) } }
}

@Suite struct MigratorTests {
    fileprivate static func migrator(_ ran: Ran, upTo last: Int = 3) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("m1") { db in
            ran.withLock { $0.append("m1") }
            try db.execute(sql: "CREATE TABLE one (v INTEGER); INSERT INTO one VALUES (1);")
        }
        migrator.registerMigration("m2") { db in
            ran.withLock { $0.append("m2") }
            try db.execute(sql: "CREATE TABLE two (v INTEGER)")
        }
        if last >= 3 {
            migrator.registerMigration("m3") { db in
                ran.withLock { $0.append("m3") }
                try db.execute(sql: "ALTER TABLE two ADD COLUMN w TEXT")
            }
        }
        return migrator
    }

    @Test func migrationsRunOnceInOrderAndAreRecordedByName() throws {
        let ran = Ran()
        let queue = try DatabaseQueue()
        try Self.migrator(ran).migrate(queue, upTo: "m2")
        try Self.migrator(ran).migrate(queue)
        try Self.migrator(ran).migrate(queue)
        #expect(ran.withLock { $0 } == ["m1", "m2", "m3"])
        #expect(try queue.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid") }
                == ["m1", "m2", "m3"])
        #expect(Self.migrator(ran).migrations == ["m1", "m2", "m3"])
    }

    @Test func aFailingMigrationLeavesNothingAndIsNotRecorded() throws {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("ok") { db in try db.execute(sql: "CREATE TABLE a (v INTEGER)") }
        migrator.registerMigration("bad") { db in
            try db.execute(sql: "CREATE TABLE b (v INTEGER)")
            try db.execute(sql: "INSERT INTO nowhere VALUES (1)")
        }
        let queue = try DatabaseQueue()
        #expect(throws: DatabaseError.self) { try migrator.migrate(queue) }
        try queue.read { (db) throws in
            #expect(try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") == ["ok"])
            #expect(try db.tableExists("a"))
            #expect(try !db.tableExists("b"))
            #expect(try Int.fetchOne(db, sql: "PRAGMA foreign_keys") == 1, "foreign keys are on again")
        }
    }

    /// A file GRDB migrated: its bookkeeping exactly as GRDB 7 writes it (GRDB/Migration/DatabaseMigrator.swift:
    /// `CREATE TABLE IF NOT EXISTS grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)`, Migration.swift:
    /// `INSERT INTO grdb_migrations (identifier) VALUES (?)` in the migration's transaction), in WAL mode.
    /// Our migrator runs only what is missing, and leaves an identifier it does not know (a newer build's) alone.
    @Test func aDatabaseGRDBMigratedOpensWithNoMigrationRerun() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let path = dir.path("grdb.sqlite")
        let old = try DatabaseQueue(path: path)
        try old.writeWithoutTransaction { db in
            _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                BEGIN IMMEDIATE;
                CREATE TABLE one (v INTEGER); INSERT INTO one VALUES (1);
                INSERT INTO grdb_migrations (identifier) VALUES ('m1');
                COMMIT;
                BEGIN IMMEDIATE;
                CREATE TABLE two (v INTEGER);
                INSERT INTO grdb_migrations (identifier) VALUES ('m2');
                COMMIT;
                INSERT INTO grdb_migrations (identifier) VALUES ('m9-from-a-newer-build');
                """)
        }
        try old.close()

        let ran = Ran()
        let pool = try DatabasePool(path: path)
        try Self.migrator(ran).migrate(pool)
        #expect(ran.withLock { $0 } == ["m3"])
        try pool.read { (db) throws in
            #expect(try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid")
                    == ["m1", "m2", "m9-from-a-newer-build", "m3"])
            #expect(try Int.fetchAll(db, sql: "SELECT v FROM one") == [1], "m1 did not run again")
            #expect(try Row.fetchAll(db, sql: "PRAGMA table_info(two)").map { $0["name"] as String } == ["v", "w"])
        }
        try pool.close()
    }
}
