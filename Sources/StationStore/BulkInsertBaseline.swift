#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SQLiteLink
import StationDomain

extension StationStore {
    /// The benchmark's baseline for a snapshot apply (swapbench decision): the same rows into a table of the
    /// same definition, with the same binding code and durability (WAL, synchronous FULL), in one
    /// transaction of a fresh database with no other writer. Returns the seconds the insert took.
    /// Bare: one prepared statement of SQLiteLink (`sqlite3_bind_*` + `sqlite3_step` per row), no store around it.
    public static func bareEntitlementBulkInsert(_ rows: [Entitlement], newDatabaseAt path: String) async throws -> Double {
        let pool = try DatabasePool(path: path)
        defer { try? pool.close() }
        try await pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        try await pool.write { db in
            try db.execute(sql: entitlementStagingDDL.replacing("entitlement_staging", with: "entitlement"))
        }
        let start = ContinuousClock.now
        try await pool.write { db in
            let insert = try db.cachedStatement(sql: entitlementInsertSQL(table: "entitlement"))
            for e in rows { try insert.execute(arguments: entitlementArguments(e)) }
        }
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
