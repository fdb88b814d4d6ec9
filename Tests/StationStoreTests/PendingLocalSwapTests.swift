import Foundation
import GRDB
import Testing
import TestSupport
import StationDomain
@testable import StationStore

/// A swap completed here stays counted until ABS has provably counted it: until a snapshot (or a
/// delta upserting its plan) issued at or after the broker's PUBACK of its `swap.completed`.
@Suite("Pending local swaps")
struct PendingLocalSwapTests {
    /// ABS's record of pi-1 before the swap: 5 swaps used, holding B45-1.
    func absRecord(swapsUsed: Int = 5, energy: Double = 25.92, out: [String] = ["B45-1"]) -> Entitlement {
        var e = makeEntitlement(1, swapsUsed: swapsUsed, batteriesOut: out)
        e.energyUsedKWh = energy
        return e
    }

    @Test func aPendingSwapStaysCountedUntilASnapshotIssuedAfterItsPUBACK() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [absRecord(), makeEntitlement(2)],
                                                 issuedAt: at(0), receivedAt: at(0))
        let swap = makeSwap("s-1")
        let stored = try await insertAndComplete(store, swap, returned: "B45-1", issued: "B45-900", at: at(60))
        let completedSeq = try #require(stored.first { $0.type == "swap.completed" }).seq

        // completeSwap folded the swap into the cached record; the pending row is not listed for
        // `applying` (the record includes it), so the effective view counts it once.
        let folded = try #require(await store.entitlement(planInstanceID: "pi-1"))
        #expect(folded.swapsUsed == 6)
        #expect(abs(folded.energyUsedKWh - (25.92 + 1.944)) < 1e-9)
        #expect(folded.batteriesOut == ["B45-900"])
        #expect(try await store.pendingLocalSwaps(planInstanceID: "pi-1") == [])
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1") == folded)
        var all = try await store.allPendingLocalSwaps()
        #expect(all.count == 1)
        #expect(all.first?.eventSeq == completedSeq)
        #expect(all.first?.ackedAt == nil)
        #expect(all.first?.inCachedRecord == true)

        // A snapshot while the event is still unsent: ABS's numbers replace the cache, the pending
        // swap is added on top: nothing given back.
        try await store.applyEntitlementSnapshot(version: 2, entitlements: [absRecord(), makeEntitlement(2)],
                                                 issuedAt: at(100), receivedAt: at(100))
        #expect(try await store.entitlement(planInstanceID: "pi-1") == absRecord())
        #expect(try await store.pendingLocalSwaps(planInstanceID: "pi-1") == [makePending(for: completed(swap, at: at(60)))])
        var effective = try #require(await store.effectiveEntitlement(planInstanceID: "pi-1"))
        #expect(effective.swapsUsed == 6)
        #expect(effective.batteriesOut == ["B45-900"])
        #expect(try await store.effectiveEntitlements(customerID: "cust-0") == [effective])

        // PUBACK at t=200. A snapshot issued before it (t=150) does not clear the pending swap.
        try await store.markSent(seqs: [completedSeq], at: at(200))
        all = try await store.allPendingLocalSwaps()
        #expect(all.first?.ackedAt == at(200))
        try await store.applyEntitlementSnapshot(version: 3, entitlements: [absRecord(), makeEntitlement(2)],
                                                 issuedAt: at(150), receivedAt: at(250))
        effective = try #require(await store.effectiveEntitlement(planInstanceID: "pi-1"))
        #expect(effective.swapsUsed == 6)
        #expect(try await store.allPendingLocalSwaps().count == 1)

        // One issued at/after the PUBACK clears it, in the same transaction: ABS's record counts it now.
        let counted = absRecord(swapsUsed: 6, energy: 25.92 + 1.944, out: ["B45-900"])
        try await store.applyEntitlementSnapshot(version: 4, entitlements: [counted, makeEntitlement(2)],
                                                 issuedAt: at(200), receivedAt: at(300))
        #expect(try await store.allPendingLocalSwaps() == [])
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1") == counted)
        try await store.close()
    }

    @Test func aDeltaClearsOnlyThePlansItUpserts() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [absRecord(), makeEntitlement(2)],
                                                 issuedAt: at(0), receivedAt: at(0))
        let stored = try await insertAndComplete(store, makeSwap("s-1"))
        try await store.markSent(seqs: stored.map(\.seq), at: at(100))

        // A delta issued after the PUBACK that does not touch pi-1: the swap stays pending (and
        // stays in the cached record, which this delta did not replace).
        #expect(try await store.applyEntitlementDelta(baseVersion: 1, version: 2, upsert: [makeEntitlement(2, swapsUsed: 9)], remove: [],
                                                      issuedAt: at(200), receivedAt: at(200)) == .applied)
        #expect(try await store.allPendingLocalSwaps().count == 1)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1")?.swapsUsed == 6)

        // A delta upserting pi-1 but issued before the PUBACK: ABS's (older) numbers, pending on top.
        #expect(try await store.applyEntitlementDelta(baseVersion: 2, version: 3, upsert: [absRecord()], remove: [],
                                                      issuedAt: at(50), receivedAt: at(210)) == .applied)
        #expect(try await store.entitlement(planInstanceID: "pi-1")?.swapsUsed == 5)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1")?.swapsUsed == 6)
        #expect(try await store.pendingLocalSwaps(planInstanceID: "pi-1").count == 1)

        // Upserting pi-1, issued after the PUBACK: cleared.
        #expect(try await store.applyEntitlementDelta(baseVersion: 3, version: 4, upsert: [absRecord(swapsUsed: 6)], remove: [],
                                                      issuedAt: at(100), receivedAt: at(220)) == .applied)
        #expect(try await store.allPendingLocalSwaps() == [])
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1")?.swapsUsed == 6)
        try await store.close()
    }

    /// The PUBACK time is copied into the pending row when the event is marked sent, so retention
    /// (or the disk-full relief) deleting the sent event does not keep the swap pending forever.
    @Test func theAcknowledgementSurvivesRetentionOfTheEvent() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [absRecord()], issuedAt: at(0), receivedAt: at(0))
        let stored = try await insertAndComplete(store, makeSwap("s-1"))
        // Another event marked sent must not touch the pending row.
        let unrelated = try await store.appendEvents([makeEvent(1)])
        try await store.markSent(seqs: unrelated.map(\.seq), at: at(90))
        #expect(try await store.allPendingLocalSwaps().first?.ackedAt == nil)

        #expect(stored.map(\.type) == ["swap.completed"])
        let everything = try await allEvents(store).map(\.seq)
        try await store.markSent(seqs: everything, at: at(100))
        try await store.markSent(seqs: everything, at: at(500))   // idempotent: keeps the first time
        #expect(try await store.applyRetention(RetentionPolicy(keepSentDays: 0, maxSentRows: 0), now: at(1_000)) == 3)
        #expect(try await store.stats().total == 0)
        #expect(try await store.allPendingLocalSwaps().first?.ackedAt == at(100))

        try await store.applyEntitlementSnapshot(version: 2, entitlements: [absRecord(swapsUsed: 6)], issuedAt: at(99), receivedAt: at(2_000))
        #expect(try await store.allPendingLocalSwaps().count == 1, "issued before the PUBACK")
        try await store.applyEntitlementSnapshot(version: 3, entitlements: [absRecord(swapsUsed: 6)], issuedAt: at(100), receivedAt: at(2_001))
        #expect(try await store.allPendingLocalSwaps() == [])
        try await store.close()
    }

    /// A plan removed from the cache by a delta: its pending swaps stay (nothing to decide on until
    /// ABS sends the plan again; then they count on top of ABS's record).
    @Test func aRemovedPlanKeepsItsPendingSwapsForWhenItComesBack() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [absRecord()], issuedAt: at(0), receivedAt: at(0))
        try await insertAndComplete(store, makeSwap("s-1"))
        #expect(try await store.applyEntitlementDelta(baseVersion: 1, version: 2, upsert: [], remove: ["pi-1"],
                                                      issuedAt: at(100), receivedAt: at(100)) == .applied)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1") == nil)
        #expect(try await store.pendingLocalSwaps(planInstanceID: "pi-1").count == 1)
        #expect(try await store.applyEntitlementDelta(baseVersion: 2, version: 3, upsert: [absRecord()], remove: [],
                                                      issuedAt: at(110), receivedAt: at(110)) == .applied)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1")?.swapsUsed == 6)
        try await store.close()
    }

    /// A swap completed while a snapshot is being staged: the snapshot (ABS's numbers, without the
    /// swap) replaces the record the completion folded the swap into; the pending row counts it.
    @Test func aSwapCompletedDuringStagingIsNotGivenBack() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        var records = makeEntitlements(0..<30_000)
        records[1] = absRecord()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: records, issuedAt: at(0), receivedAt: at(0))
        let snapshot = Task {
            try await store.applyEntitlementSnapshot(version: 2, entitlements: records, issuedAt: at(1_000), receivedAt: at(1_000))
        }
        #expect(await eventuallyAsync(timeout: 60, interval: 0.001) { (try? await rowCount(store, "entitlement_staging")) ?? 0 > 0 })
        try await insertAndComplete(store, makeSwap("s-1"))
        let stagingWhenCompleted = try await stagingExists(store)
        try await snapshot.value
        #expect(stagingWhenCompleted, "the completion did not run during staging")
        #expect(try await store.entitlement(planInstanceID: "pi-1")?.swapsUsed == 5)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1")?.swapsUsed == 6)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1")?.batteriesOut == ["B45-900"])
        try await store.close()
    }
}
