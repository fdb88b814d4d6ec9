import Foundation
import SQLiteLink
import Testing
import TestSupport
import StationDomain
@testable import StationStore

/// A snapshot in parts across a death of the daemon after its last part, and a full disk while one is staging
/// (SnapshotStaging.swift, DiskSpace.swift), on real SQLite files reopened as at a restart.
@Suite("Snapshot parts: resume at start, disk-full relief")
struct SnapshotResumeTests {
    func stage(_ store: StationStore, _ id: String, _ part: Int, of parts: Int, _ slice: [Entitlement],
               received: Double = 1) async throws -> SnapshotPartOutcome {
        try await store.stageEntitlementSnapshotPart(snapshotID: id, part: part, parts: parts, version: 200, countedThroughSeq: nil,
                                                     entitlements: slice, expiresAt: at(600), receivedAt: at(received))
    }

    func rowsLeft(_ store: StationStore) async throws -> Int {
        try await store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM snapshot_part_row") ?? -1 }
    }

    /// The last part's transaction committed, then the daemon died: before the swap-in (`midCopy` false), or while
    /// the swap-in was copying the parts into the staging table (`midCopy` true). At the next start the complete
    /// set is swapped in, once; the old cache answered until then.
    @Test(arguments: [false, true])
    func aCompleteSetLeftUnswappedIsSwappedInAtStart(midCopy: Bool) async throws {
        for round in 0 ..< 3 {
            let dir = try StoreDir(); defer { dir.remove() }
            var store = try dir.open()
            try await store.applyEntitlementSnapshot(version: 100, entitlements: makeEntitlements(1000 ..< 1005, marker: "OLD"),
                                                     issuedAt: at(0), receivedAt: at(0))
            let records = makeEntitlements(0 ..< 400 + round * 37, marker: "NEW")
            let slices = SnapshotPartsTests.slices(records, parts: 4)
            let order = [[3, 1, 4, 2], [1, 2, 3, 4], [4, 3, 2, 1]][round]
            for (k, part) in order.dropLast().enumerated() {
                #expect(try await stage(store, "snap-K", part, of: 4, slices[part - 1], received: Double(k + 1)) != .alreadyApplied)
            }
            // The last part: staged, and the daemon dies before its swap-in.
            let last = order.last!
            let step = try await store.stageSnapshotPartOnly(snapshotID: "snap-K", part: last, parts: 4, version: 200, countedThroughSeq: nil,
                                                             entitlements: slices[last - 1], expiresAt: at(600), receivedAt: at(9))
            guard case .complete = step else { Issue.record("round \(round): \(step)"); return }
            if midCopy {
                // …or during it: the staging table holds part of the copy, owned by the dead process's token.
                try await store.write { db in
                    try db.execute(sql: StationStore.entitlementStagingDDL)
                    try StationStore.setMetaValue("token-of-the-dead-process", for: StationStore.EntitlementMetaKey.stagingToken, in: db)
                    try db.execute(sql: """
                        INSERT INTO entitlement_staging (\(StationStore.entitlementColumns))
                        SELECT \(StationStore.entitlementColumns) FROM snapshot_part_row ORDER BY plan_instance_id LIMIT 50
                        """)
                }
            }
            try await store.close()

            store = try dir.open()
            // Until the start-up step, the old cache answers.
            #expect(try await store.entitlementSyncState().version == 100)
            #expect(try await store.entitlement(planInstanceID: "pi-1002")?.networkCode == "OLD")
            let resumed = try await store.swapInCompleteStagedSnapshot()
            #expect(resumed == StationStore.ResumedSnapshot(snapshotID: "snap-K", version: 200, parts: 4, count: records.count), "round \(round)")
            #expect(try await store.entitlementSyncState() == EntitlementSyncState(version: 200, lastSyncAt: at(9), count: records.count))
            #expect(try await store.entitlement(planInstanceID: "pi-1002") == nil)
            #expect(try await store.entitlement(planInstanceID: "pi-\(records.count - 1)") == records.last)
            #expect(try await store.entitlementSnapshotStaging() == nil)
            #expect(try await rowsLeft(store) == 0)
            #expect(try await snapshotLeftovers(store) == [])
            // Once: a second start finds nothing, and a late copy of a part changes nothing.
            #expect(try await store.swapInCompleteStagedSnapshot() == nil)
            #expect(try await stage(store, "snap-K", 1, of: 4, slices[0]) == .alreadyApplied)
            #expect(try await store.entitlementSyncState().count == records.count)
            #expect(try await store.integrityCheck() == [])
            try await store.close()
        }
    }

    /// An incomplete set is left staged at start (the missing parts are still to come); the old cache stays.
    @Test func anIncompleteSetStaysStagedAtStart() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        var store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 100, entitlements: makeEntitlements(0 ..< 5, marker: "OLD"), issuedAt: at(0), receivedAt: at(0))
        let slices = SnapshotPartsTests.slices(makeEntitlements(0 ..< 90, marker: "NEW"), parts: 3)
        _ = try await stage(store, "snap-I", 1, of: 3, slices[0])
        _ = try await stage(store, "snap-I", 3, of: 3, slices[2])
        try await store.close()
        store = try dir.open()
        #expect(try await store.swapInCompleteStagedSnapshot() == nil)
        let staging = try #require(try await store.entitlementSnapshotStaging())
        #expect(staging.staged == [1, 3] && staging.parts == 3)
        #expect(try await store.entitlementSyncState().version == 100)
        #expect(try await stage(store, "snap-I", 2, of: 3, slices[1]) == .applied(count: 90, duplicate: false))
        try await store.close()
    }

    /// A full disk (SQLite's max_page_count, which fails writes exactly as a full file system) while two of three
    /// parts of a large snapshot are staged: before an event append is refused, the store gives up the unfinished
    /// snapshot's parts and the append goes through in the pages they freed; unsent events and the cache are
    /// untouched; with room again, the parts ABS sends again stage from scratch.
    @Test func aFullDiskGivesUpTheUnfinishedSnapshotPartsBeforeRefusingAnAppend() async throws {
        for round in 0 ..< 3 {
            let dir = try StoreDir(); defer { dir.remove() }
            var store = try dir.open(maxPageCount: 700)
            let old = makeEntitlements(5000 ..< 5010, marker: "OLD")
            try await store.applyEntitlementSnapshot(version: 100, entitlements: old, issuedAt: at(0), receivedAt: at(0))
            let slices = SnapshotPartsTests.slices(makeEntitlements(0 ..< 3000, marker: "NEW"), parts: 3)
            #expect(try await stage(store, "snap-F", 1, of: 3, slices[0]) == .staged(missing: 2, firstMissing: [2, 3], duplicate: false))
            #expect(try await stage(store, "snap-F", 2 + round % 2, of: 3, slices[1 + round % 2]) != .alreadyApplied)
            let stagedRows = try await rowsLeft(store)
            #expect(stagedRows == 2000)

            // Events until the store refuses one; note the append after which the staged parts were gone.
            var recorded: [StoredEvent] = []
            var appendThatFreedTheParts: Int?
            for i in 1 ... 20_000 {
                do {
                    recorded += try await store.appendEvents([makeEvent(i, padding: 1_000)])
                } catch {
                    #expect(isDiskFull(error), "expected .diskFull, got \(error)")
                    break
                }
                if appendThatFreedTheParts == nil, try await rowsLeft(store) == 0 { appendThatFreedTheParts = i }
            }
            let held = try await rowsLeft(store)
            #expect(appendThatFreedTheParts != nil, "round \(round): the store refused an append with \(held) staged rows still held")
            if let i = appendThatFreedTheParts {
                #expect(recorded.contains { $0.seq == Int64(i) }, "the append that hit the full disk went through once the parts were given up")
                #expect(recorded.count > i, "more appends fitted in the pages the parts freed")
            }
            #expect(try await store.entitlementSnapshotStaging() == nil)
            // Every event recorded is there, in seq order without a gap; the cache is the old one.
            #expect(try await allEvents(store).map(\.seq) == Array(1 ... Int64(recorded.count)))
            #expect(try await store.entitlementSyncState().version == 100)
            #expect(try await store.entitlement(planInstanceID: "pi-5003") == old[3])
            #expect(try await store.integrityCheck() == [])
            try await store.close()

            // Room again: ABS sends the parts again; they stage from scratch and complete.
            store = try dir.open()
            #expect(try await stage(store, "snap-F", 2, of: 3, slices[1]) == .staged(missing: 2, firstMissing: [1, 3], duplicate: false))
            _ = try await stage(store, "snap-F", 1, of: 3, slices[0])
            #expect(try await stage(store, "snap-F", 3, of: 3, slices[2]) == .applied(count: 3000, duplicate: false))
            try await store.close()
        }
    }
}
