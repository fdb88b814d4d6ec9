import Foundation
import SQLiteLink
import Testing
import TestSupport
import StationDomain
@testable import StationStore

@Suite("Entitlement cache")
struct EntitlementCacheTests {
    @Test func snapshotReplacesTheWholeCache() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        #expect(try await store.entitlementSyncState() == EntitlementSyncState(version: nil, lastSyncAt: nil, count: 0))

        let first = makeEntitlements(0..<10)
        try await store.applyEntitlementSnapshot(version: 100, entitlements: first, issuedAt: at(0), receivedAt: at(2))
        #expect(try await store.entitlementSyncState() == EntitlementSyncState(version: 100, lastSyncAt: at(2), count: 10))
        #expect(try await store.entitlement(planInstanceID: "pi-3") == first[3])
        #expect(try await store.entitlements(customerID: "cust-1") == [first[2], first[3]])
        #expect(try await store.entitlements(customerID: "nobody") == [])

        // The next snapshot: pi-0…pi-4 gone, pi-5…pi-9 changed, pi-10…pi-14 new.
        var second = makeEntitlements(5..<15, marker: "NET-B")
        second[0].batteriesOut = [#"odd "id" \ with\tescapes"#, "B45-2"]
        second[1].status = .restricted
        try await store.applyEntitlementSnapshot(version: 101, entitlements: second, issuedAt: at(10), receivedAt: at(11))
        #expect(try await store.entitlementSyncState() == EntitlementSyncState(version: 101, lastSyncAt: at(11), count: 10))
        #expect(try await store.entitlement(planInstanceID: "pi-3") == nil)
        #expect(try await store.entitlement(planInstanceID: "pi-5") == second[0])
        #expect(try await store.entitlement(planInstanceID: "pi-6")?.status == .restricted)
        #expect(try await store.entitlements(customerID: "cust-7") == [second[9]])
        #expect(try await snapshotLeftovers(store) == [])

        // An empty snapshot empties the cache; a snapshot survives reopening.
        try await store.applyEntitlementSnapshot(version: 102, entitlements: [], issuedAt: at(20), receivedAt: at(21))
        #expect(try await store.entitlementSyncState().count == 0)
        try await store.applyEntitlementSnapshot(version: 103, entitlements: first, issuedAt: at(30), receivedAt: at(31))
        try await store.close()
        let reopened = try dir.open()
        #expect(try await reopened.entitlementSyncState() == EntitlementSyncState(version: 103, lastSyncAt: at(31), count: 10))
        #expect(try await reopened.entitlements(customerID: "cust-4") == [first[8], first[9]])
        #expect(try await reopened.integrityCheck() == [])
        try await reopened.close()
    }

    /// The staging table is created by its own DDL; after the swap it must be the table the
    /// migration creates (columns, constraints, the customer index).
    @Test func theSwappedInTableIsTheMigratedTable() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        func shape(_ store: StationStore) async throws -> [String] {
            try await store.read { db in
                let columns = try Row.fetchAll(db, sql: "PRAGMA table_xinfo(entitlement)").map { "\($0)" }
                let indexes = try Row.fetchAll(db, sql: "PRAGMA index_list(entitlement)").map { row -> String in
                    let name: String = row["name"]
                    let cols = (try? Row.fetchAll(db, sql: "PRAGMA index_xinfo(\"\(name)\")").map { "\($0)" }) ?? []
                    return "\(name) unique=\(row["unique"] ?? 0) origin=\(row["origin"] ?? "") \(cols)"
                }
                let withoutRowid = try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE name = 'entitlement'")?
                    .contains("WITHOUT ROWID") ?? false
                return columns + indexes.sorted() + ["without rowid: \(withoutRowid)"]
            }
        }
        let migrated = try await shape(store)
        try await store.applyEntitlementSnapshot(version: 1, entitlements: makeEntitlements(0..<3), issuedAt: at(0), receivedAt: at(0))
        let swapped = try await shape(store)
        #expect(migrated == swapped)
        #expect(migrated.contains { $0.hasPrefix("sqlite_autoindex_entitlement_2 unique=1") }, "\(migrated)")
        // The customer lookup uses that index.
        let plan = try await store.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT * FROM entitlement WHERE customer_id = 'x'").map { "\($0)" }
        }
        #expect(plan.joined().contains("sqlite_autoindex_entitlement_2"), "\(plan)")
        try await store.close()
    }

    /// Readers running while a snapshot is staged see the old cache, whole, until the swap; then the
    /// new one, whole. Every read checks count, version and marker in one read transaction.
    @Test func readersNeverSeeAHalfAppliedSnapshot() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: makeEntitlements(0..<5_000, marker: "OLD"),
                                                 issuedAt: at(0), receivedAt: at(0))
        let applied = Shared()
        let reader = Task { () -> (duringStaging: Int, old: Int, new: Int, bad: [String]) in
            var duringStaging = 0, old = 0, new = 0
            var bad: [String] = []
            while !applied.done {
                let (count, version, markers, staging) = try await store.read { db in
                    (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM entitlement") ?? -1,
                     try StationStore.entitlementVersion(in: db),
                     try String.fetchAll(db, sql: "SELECT DISTINCT network_code FROM entitlement ORDER BY 1"),
                     try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'entitlement_staging')") ?? false)
                }
                if count == 5_000 && version == 1 && markers == ["OLD"] {
                    old += 1
                    if staging { duringStaging += 1 }
                } else if count == 30_000 && version == 2 && markers == ["NEW"] {
                    new += 1
                } else {
                    bad.append("count \(count) version \(String(describing: version)) markers \(markers)")
                }
                // Through the public API too: a plan that exists only in the old cache.
                let gone = try await store.entitlement(planInstanceID: "pi-4999")
                let sync = try await store.entitlementSyncState()
                if gone == nil && sync.version == 1 { bad.append("pi-4999 missing while version 1 is current") }
                await Task.yield()
            }
            return (duringStaging, old, new, bad)
        }
        try await store.applyEntitlementSnapshot(version: 2, entitlements: makeEntitlements(10_000..<40_000, marker: "NEW"),
                                                 issuedAt: at(10), receivedAt: at(10))
        applied.markDone()
        let seen = try await reader.value
        print("snapshot atomicity: \(seen.old) reads of the old cache (\(seen.duringStaging) while staging), \(seen.new) of the new")
        #expect(seen.bad == [])
        #expect(seen.duringStaging > 0, "no read ran while the snapshot was being staged")
        #expect(try await store.entitlementSyncState() == EntitlementSyncState(version: 2, lastSyncAt: at(10), count: 30_000))
        try await store.close()
    }

    /// A snapshot that fails while staging (here a record the table refuses, in its third chunk)
    /// leaves the old cache and version as they were, and the next snapshot applies.
    @Test func aSnapshotFailingMidStagingLeavesTheOldCache() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        let old = makeEntitlements(0..<100, marker: "OLD")
        try await store.applyEntitlementSnapshot(version: 7, entitlements: old, issuedAt: at(0), receivedAt: at(1))
        var broken = makeEntitlements(1_000..<(1_000 + 3 * StationStore.snapshotChunkRows), marker: "NEW")
        broken[2 * StationStore.snapshotChunkRows + 10].customerID = ""
        await #expect(throws: StoreError.self) {
            try await store.applyEntitlementSnapshot(version: 8, entitlements: broken, issuedAt: at(5), receivedAt: at(6))
        }
        #expect(try await store.entitlementSyncState() == EntitlementSyncState(version: 7, lastSyncAt: at(1), count: 100))
        #expect(try await store.entitlements(customerID: "cust-10") == [old[20], old[21]])
        #expect(try await snapshotLeftovers(store) == [], "the failed apply's staged rows are deleted")
        #expect(try await store.meta(StationStore.EntitlementMetaKey.stagingToken) == nil)

        broken[2 * StationStore.snapshotChunkRows + 10].customerID = "cust-x"
        try await store.applyEntitlementSnapshot(version: 8, entitlements: broken, issuedAt: at(5), receivedAt: at(6))
        #expect(try await store.entitlementSyncState() == EntitlementSyncState(version: 8, lastSyncAt: at(6), count: broken.count))
        try await store.close()
    }

    /// Two snapshot applies at once: the later one wins, the earlier one fails without effect.
    @Test func aLaterSnapshotSupersedesOneBeingStaged() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        let slow = Task {
            try await store.applyEntitlementSnapshot(version: 1, entitlements: makeEntitlements(0..<40_000, marker: "SLOW"),
                                                     issuedAt: at(0), receivedAt: at(0))
        }
        #expect(await eventuallyAsync(timeout: 60, interval: 0.001) { (try? await rowCount(store, "entitlement_staging")) ?? 0 > 0 })
        try await store.applyEntitlementSnapshot(version: 2, entitlements: makeEntitlements(0..<10, marker: "FAST"),
                                                 issuedAt: at(1), receivedAt: at(1))
        await #expect(throws: EntitlementStoreError.snapshotSuperseded) { try await slow.value }
        #expect(try await store.entitlementSyncState() == EntitlementSyncState(version: 2, lastSyncAt: at(1), count: 10))
        #expect(try await store.entitlement(planInstanceID: "pi-0")?.networkCode == "FAST")
        #expect(try await snapshotLeftovers(store) == [])
        try await store.close()
    }

    /// What a killed apply leaves (a staging table, an old cache not yet deleted) is deleted at
    /// start by `discardInterruptedEntitlementStaging()`, without touching the cache.
    @Test func leftoversOfAnInterruptedApplyAreDiscarded() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 4, entitlements: makeEntitlements(0..<10), issuedAt: at(0), receivedAt: at(0))
        #expect(try await store.discardInterruptedEntitlementStaging() == false)
        try await store.write { db in
            try db.execute(sql: StationStore.entitlementStagingDDL)
            try StationStore.setMetaValue("killed-apply", for: StationStore.EntitlementMetaKey.stagingToken, in: db)
            let insert = try db.cachedStatement(sql: StationStore.entitlementInsertSQL(table: "entitlement_staging"))
            for e in makeEntitlements(0..<25_000) { try insert.execute(arguments: StationStore.entitlementArguments(e)) }
            try db.execute(sql: "CREATE TABLE entitlement_retired_0badf00d AS SELECT * FROM entitlement_staging")
        }
        #expect(try await snapshotLeftovers(store) == ["entitlement_retired_0badf00d", "entitlement_staging"])
        #expect(try await store.discardInterruptedEntitlementStaging())
        #expect(try await snapshotLeftovers(store) == [])
        #expect(try await store.meta(StationStore.EntitlementMetaKey.stagingToken) == nil)
        #expect(try await store.entitlementSyncState() == EntitlementSyncState(version: 4, lastSyncAt: at(0), count: 10))
        #expect(try await store.integrityCheck() == [])
        try await store.close()
    }

    @Test func deltasApplyOnlyOnTopOfTheirBase() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        // No snapshot yet: every delta asks for one.
        #expect(try await store.applyEntitlementDelta(baseVersion: 0, version: 1, upsert: [makeEntitlement(1)], remove: [],
                                                      issuedAt: at(0), receivedAt: at(0)) == .needSnapshot(currentVersion: nil))
        #expect(try await store.entitlementSyncState() == EntitlementSyncState(version: nil, lastSyncAt: nil, count: 0))

        let base = makeEntitlements(0..<10)
        try await store.applyEntitlementSnapshot(version: 10, entitlements: base, issuedAt: at(0), receivedAt: at(1))
        var changed = base[4]
        changed.swapsUsed = 40
        changed.status = .inactive
        let added = makeEntitlement(77, marker: "NET-NEW")
        #expect(try await store.applyEntitlementDelta(baseVersion: 10, version: 11, upsert: [changed, added], remove: ["pi-0", "pi-unknown"],
                                                      issuedAt: at(5), receivedAt: at(6)) == .applied)
        let afterDelta = EntitlementSyncState(version: 11, lastSyncAt: at(6), count: 10)
        #expect(try await store.entitlementSyncState() == afterDelta)
        #expect(try await store.entitlement(planInstanceID: "pi-4") == changed)
        #expect(try await store.entitlement(planInstanceID: "pi-77") == added)
        #expect(try await store.entitlement(planInstanceID: "pi-0") == nil)

        // Re-delivered (same or older): already applied, nothing changes, not even lastSyncAt.
        var other = base[5]
        other.swapsUsed = 59
        #expect(try await store.applyEntitlementDelta(baseVersion: 10, version: 11, upsert: [other], remove: ["pi-1"],
                                                      issuedAt: at(5), receivedAt: at(20)) == .alreadyApplied)
        #expect(try await store.applyEntitlementDelta(baseVersion: 8, version: 9, upsert: [other], remove: [],
                                                      issuedAt: at(3), receivedAt: at(21)) == .alreadyApplied)
        #expect(try await store.entitlementSyncState() == afterDelta)
        #expect(try await store.entitlement(planInstanceID: "pi-5") == base[5])

        // A gap: the cache stays as it is.
        #expect(try await store.applyEntitlementDelta(baseVersion: 12, version: 13, upsert: [other], remove: ["pi-1"],
                                                      issuedAt: at(30), receivedAt: at(31)) == .needSnapshot(currentVersion: 11))
        #expect(try await store.entitlementSyncState() == afterDelta)
        #expect(try await store.entitlement(planInstanceID: "pi-5") == base[5])
        #expect(try await store.entitlement(planInstanceID: "pi-1") == base[1])

        // The next one in sequence applies; a malformed one is refused.
        #expect(try await store.applyEntitlementDelta(baseVersion: 11, version: 12, upsert: [other], remove: [],
                                                      issuedAt: at(40), receivedAt: at(41)) == .applied)
        #expect(try await store.entitlement(planInstanceID: "pi-5")?.swapsUsed == 59)
        await #expect(throws: EntitlementStoreError.invalidDelta(baseVersion: 12, version: 12)) {
            try await store.applyEntitlementDelta(baseVersion: 12, version: 12, upsert: [], remove: [],
                                                  issuedAt: at(50), receivedAt: at(50))
        }
        #expect(try await store.entitlementSyncState() == EntitlementSyncState(version: 12, lastSyncAt: at(41), count: 10))
        try await store.close()
    }

    @Test func requestIDsAreRememberedUntilTheyExpirePlusTheMargin() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let margin = StationStore.requestMemoryMargin
        var store = try dir.open()
        #expect(try await store.rememberRequest("r-1", expiresAt: at(60), now: at(0)))
        #expect(try await store.rememberRequest("r-1", expiresAt: at(60), now: at(1)) == false)
        #expect(try await store.rememberRequest("r-2", expiresAt: at(600), now: at(2)))
        try await store.close()

        // Survives a restart; still refused after its expiry, within the margin.
        store = try dir.open()
        #expect(try await store.rememberRequest("r-1", expiresAt: at(60), now: at(60 + margin - 1)) == false)
        #expect(try await store.rememberedRequestCount() == 2)
        // Past expiry + margin: purged by any call; then the id counts as new.
        #expect(try await store.rememberRequest("r-3", expiresAt: at(60 + margin + 100), now: at(60 + margin + 1)))
        #expect(try await store.rememberedRequestCount() == 2, "r-1 purged, r-2 and r-3 kept")
        #expect(try await store.rememberRequest("r-2", expiresAt: at(600), now: at(60 + margin + 2)) == false)
        #expect(try await store.rememberRequest("r-1", expiresAt: at(60 + margin + 500), now: at(60 + margin + 3)))
        try await store.close()
    }
}
