import Foundation
import SQLiteLink
import Testing
import TestSupport
import StationDomain
@testable import StationStore

/// Entitlement snapshots in parts (SnapshotStaging.swift) on a real SQLite file.
@Suite("Snapshot parts")
struct SnapshotPartsTests {
    /// Records 0..<n cut into `parts` slices (the last one shorter).
    static func slices(_ records: [Entitlement], parts: Int) -> [[Entitlement]] {
        let size = max(1, (records.count + parts - 1) / parts)
        return (0..<parts).map { i in Array(records[min(records.count, i * size)..<min(records.count, (i + 1) * size)]) }
    }

    func stage(_ store: StationStore, _ id: String, _ part: Int, of parts: Int, _ slice: [Entitlement], version: Int64 = 200,
               counted: Int64? = nil, expires: Double = 600, received: Double = 1) async throws -> SnapshotPartOutcome {
        try await store.stageEntitlementSnapshotPart(snapshotID: id, part: part, parts: parts, version: version, countedThroughSeq: counted,
                                                     entitlements: slice, expiresAt: at(expires), receivedAt: at(received))
    }

    func rowsLeft(_ store: StationStore) async throws -> Int {
        try await store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM snapshot_part_row") ?? -1 }
    }

    @Test func partsInAnyOrderWithDuplicatesSwapInOnceComplete() async throws {
        for seed: UInt64 in [1, 2, 3, 4] {
            let dir = try StoreDir(); defer { dir.remove() }
            let store = try dir.open()
            let old = makeEntitlements(1000..<1010, marker: "OLD")
            try await store.applyEntitlementSnapshot(version: 100, entitlements: old, issuedAt: at(0), receivedAt: at(0))
            let records = makeEntitlements(0..<500, marker: "NEW")
            let slices = Self.slices(records, parts: 7)
            var rng = SeededRandom(seed: seed)
            var order = Array(1...7).shuffled(using: &rng)
            let last = order.removeLast()
            // Every part but one, then each of them again (a duplicate changes nothing).
            for (k, part) in (order + order.shuffled(using: &rng)).enumerated() {
                let outcome = try await stage(store, "snap-A", part, of: 7, slices[part - 1])
                guard case let .staged(missing, firstMissing, duplicate) = outcome else {
                    Issue.record("seed \(seed): part \(part): \(outcome)"); return
                }
                #expect(duplicate == (k >= order.count))
                #expect(missing == 7 - min(k + 1, order.count))
                if k >= order.count - 1 { #expect(firstMissing == [last]) }
                // Nothing swapped in yet: the old cache answers.
                #expect(try await store.entitlementSyncState().version == 100)
                #expect(try await store.entitlement(planInstanceID: "pi-1003")?.networkCode == "OLD")
                #expect(try await store.entitlement(planInstanceID: "pi-3") == nil)
            }
            let staging = try #require(try await store.entitlementSnapshotStaging())
            #expect(staging.staged == order.sorted() && staging.parts == 7 && staging.snapshotID == "snap-A")
            // The missing part completes it.
            #expect(try await stage(store, "snap-A", last, of: 7, slices[last - 1], counted: nil) == .applied(count: 500, duplicate: false))
            #expect(try await store.entitlementSyncState() == EntitlementSyncState(version: 200, lastSyncAt: at(1), count: 500))
            #expect(try await store.entitlement(planInstanceID: "pi-1003") == nil)
            #expect(try await store.entitlement(planInstanceID: "pi-499") == records[499])
            #expect(try await store.entitlements(customerID: "cust-7") == [records[14], records[15]])
            #expect(try await store.entitlementSnapshotStaging() == nil)
            #expect(try await rowsLeft(store) == 0)
            #expect(try await snapshotLeftovers(store) == [])
            // A late copy of one of its parts changes nothing.
            #expect(try await stage(store, "snap-A", 1, of: 7, slices[0]) == .alreadyApplied)
            #expect(try await store.entitlementSnapshotStaging() == nil)
            #expect(try await store.integrityCheck() == [])
            try await store.close()
        }
    }

    @Test func aMissingPartKeepsTheOldCacheAcrossReopening() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        var store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 100, entitlements: makeEntitlements(0..<5, marker: "OLD"), issuedAt: at(0), receivedAt: at(0))
        let slices = Self.slices(makeEntitlements(0..<90, marker: "NEW"), parts: 3)
        #expect(try await stage(store, "snap-R", 3, of: 3, slices[2]) == .staged(missing: 2, firstMissing: [1, 2], duplicate: false))
        // Reopen (a restart), as the daemon does at start: staging of an interrupted whole apply is discarded, parts are not.
        try await store.close()
        store = try dir.open()
        try await store.discardInterruptedEntitlementStaging()
        #expect(try await stage(store, "snap-R", 1, of: 3, slices[0]) == .staged(missing: 1, firstMissing: [2], duplicate: false))
        try await store.close()
        store = try dir.open()
        #expect(try await store.entitlement(planInstanceID: "pi-2")?.networkCode == "OLD")
        #expect(try await stage(store, "snap-R", 2, of: 3, slices[1]) == .applied(count: 90, duplicate: false))
        #expect(try await store.entitlement(planInstanceID: "pi-2")?.networkCode == "NEW")
        #expect(try await store.entitlementSyncState().count == 90)
        try await store.close()
    }

    @Test func aNewerSnapshotIDSupersedesAnUnfinishedOne() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        let a = Self.slices(makeEntitlements(0..<40, marker: "A"), parts: 4)
        let b = Self.slices(makeEntitlements(100..<120, marker: "B"), parts: 2)
        _ = try await stage(store, "snap-A", 1, of: 4, a[0], version: 300)
        _ = try await stage(store, "snap-A", 2, of: 4, a[1], version: 300)
        // Lower version while A is live: not staged.
        #expect(try await stage(store, "snap-old", 1, of: 2, b[0], version: 299) == .olderThanStaging(stagingSnapshotID: "snap-A", stagingVersion: 300))
        #expect(try await store.entitlementSnapshotStaging()?.snapshotID == "snap-A")
        // Higher version: A is discarded, B staged from scratch.
        #expect(try await stage(store, "snap-B", 2, of: 2, b[1], version: 301) == .staged(missing: 1, firstMissing: [1], duplicate: false))
        // A's parts now start A again? No: A is older than B.
        #expect(try await stage(store, "snap-A", 3, of: 4, a[2], version: 300) == .olderThanStaging(stagingSnapshotID: "snap-B", stagingVersion: 301))
        #expect(try await stage(store, "snap-B", 1, of: 2, b[0], version: 301) == .applied(count: 20, duplicate: false))
        #expect(try await store.entitlementSyncState().version == 301)
        #expect(try await store.entitlement(planInstanceID: "pi-0") == nil)
        #expect(try await rowsLeft(store) == 0)

        // Same version, another id: the later arrival wins.
        _ = try await stage(store, "snap-C", 1, of: 2, a[0], version: 400)
        #expect(try await stage(store, "snap-D", 1, of: 2, a[0], version: 400) == .staged(missing: 1, firstMissing: [2], duplicate: false))
        #expect(try await store.entitlementSnapshotStaging()?.snapshotID == "snap-D")
        // Once every part of the unfinished set has expired, a lower version may replace it (a restored ABS).
        #expect(try await stage(store, "snap-E", 1, of: 2, a[0], version: 5, received: 10) == .olderThanStaging(stagingSnapshotID: "snap-D", stagingVersion: 400))
        #expect(try await stage(store, "snap-E", 1, of: 2, a[0], version: 5, expires: 2000, received: 700) == .staged(missing: 1, firstMissing: [2], duplicate: false))

        // A whole snapshot discards the unfinished one.
        try await store.applyEntitlementSnapshot(version: 500, entitlements: makeEntitlements(0..<3), issuedAt: at(800), receivedAt: at(800))
        #expect(try await store.entitlementSnapshotStaging() == nil)
        #expect(try await rowsLeft(store) == 0)
        #expect(try await stage(store, "snap-E", 2, of: 2, a[1], version: 5, expires: 2000, received: 801) == .staged(missing: 1, firstMissing: [1], duplicate: false))
        #expect(try await store.entitlementSyncState().version == 500)
        try await store.close()
    }

    @Test func partsThatDisagreeAreRefusedAndStageNothing() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        let records = makeEntitlements(0..<30)
        _ = try await stage(store, "s", 1, of: 3, Array(records[0..<10]), counted: 7)
        for (outcome, mention) in [
            (try await stage(store, "s", 2, of: 3, Array(records[10..<20]), version: 201, counted: 7), "version"),
            (try await stage(store, "s", 2, of: 4, Array(records[10..<20]), counted: 7), "parts"),
            (try await stage(store, "s", 2, of: 3, Array(records[10..<20]), counted: 8), "counted_through_seq"),
            (try await stage(store, "s", 2, of: 3, Array(records[9..<20]), counted: 7), "already in part 1"),
        ] {
            guard case .inconsistent(let why) = outcome else { Issue.record("\(outcome)"); continue }
            #expect(why.contains(mention), "\(why)")
        }
        #expect(try await store.entitlementSnapshotStaging()?.staged == [1])
        #expect(try await store.entitlementSnapshotStaging()?.rows == 10)
        _ = try await stage(store, "s", 2, of: 3, Array(records[10..<20]), counted: 7)
        #expect(try await stage(store, "s", 3, of: 3, Array(records[20..<30]), counted: 7) == .applied(count: 30, duplicate: false))
        // The acknowledgement rule ran (the same swap-in as a whole snapshot): the watermark moved.
        #expect(try await store.entitlementCountedThroughSeq() == 7)
        try await store.close()
    }
}

/// SplitMix64 for reproducible shuffles.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
