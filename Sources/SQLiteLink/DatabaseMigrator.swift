// Named migrations, bookkept exactly as GRDB does: one row per applied migration in
// `grdb_migrations(identifier TEXT NOT NULL PRIMARY KEY)`, so a database GRDB migrated opens with nothing re-run.

/// Migrations by name, run once each, in the order registered.
public struct DatabaseMigrator: Sendable {
    private var entries: [(identifier: String, migrate: @Sendable (Database) throws -> Void)] = []

    public init() {}

    /// The registered identifiers, in order.
    public var migrations: [String] { entries.map(\.identifier) }

    /// Registers a migration. An identifier registered twice is a programmer error.
    public mutating func registerMigration(_ identifier: String, migrate: @escaping @Sendable (Database) throws -> Void) {
        precondition(!migrations.contains(identifier), "already registered migration: \(identifier)")
        entries.append((identifier, migrate))
    }

    /// Runs the registered migrations not yet applied, each in its own immediate transaction together with its
    /// bookkeeping row. Applied identifiers this migrator does not know (a newer build's) are left alone.
    public func migrate(_ writer: any DatabaseWriter) throws {
        try migrate(writer, through: entries.count)
    }

    /// Same, up to and including `targetIdentifier` (which must be registered).
    public func migrate(_ writer: any DatabaseWriter, upTo targetIdentifier: String) throws {
        guard let index = migrations.firstIndex(of: targetIdentifier) else {
            fatalError("undefined migration: \(targetIdentifier)")
        }
        try migrate(writer, through: index + 1)
    }

    /// The identifiers recorded in the database, registered or not (empty if it has no bookkeeping table).
    public func appliedIdentifiers(_ db: Database) throws -> [String] {
        guard try db.tableExists("grdb_migrations") else { return [] }
        return try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
    }

    private func migrate(_ writer: any DatabaseWriter, through count: Int) throws {
        try writer.barrierWriteWithoutTransaction { db in
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
            let applied = Set(try appliedIdentifiers(db))
            for entry in entries.prefix(count) where !applied.contains(entry.identifier) {
                try Self.run(entry.identifier, entry.migrate, in: db)
            }
        }
    }

    /// GRDB's default (`foreignKeyChecks: .deferred`): with foreign keys on, they are turned off around the
    /// migration's transaction (SQLite's recipe for table rebuilds) and `foreign_key_check` must be clean at its end.
    private static func run(_ identifier: String, _ migrate: (Database) throws -> Void, in db: Database) throws {
        let checksForeignKeys = db.configuration.foreignKeysEnabled
        if checksForeignKeys { try db.execute(sql: "PRAGMA foreign_keys = OFF") }
        do {
            try db.inTransaction(.immediate) {
                try migrate(db)
                try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES (?)", arguments: [identifier])
                if checksForeignKeys, let violation = try Row.fetchOne(db, sql: "PRAGMA foreign_key_check") {
                    throw DatabaseError(resultCode: .SQLITE_CONSTRAINT_FOREIGNKEY,
                                        message: "FOREIGN KEY constraint violation - \(violation)")
                }
                return .commit
            }
        } catch {
            if checksForeignKeys { try? db.execute(sql: "PRAGMA foreign_keys = ON") }
            throw error
        }
        if checksForeignKeys { try db.execute(sql: "PRAGMA foreign_keys = ON") }
    }
}
