import Foundation
import GRDB
import Testing
import TestSupport
import StationDomain
@testable import StationStore

/// Contract 1.1: a swap recorded here (`swap.completed`, and `swap.returned`, which changes custody)
/// stays counted on top of ABS's numbers (quota, energy, custody) until a snapshot or delta whose
/// `counted_through_seq` is at or above its event's seq. A PUBACK, a time stamp or a newer message
/// without the field acknowledges nothing; the watermark only moves forward and survives restarts.
/// All on real SQLite files.
@Suite("Pending local swaps")
struct PendingLocalSwapTests {
    /// ABS's record of pi-1 before the swap: 5 swaps used, holding B45-1.
    func absRecord(swapsUsed: Int = 5, energy: Double = 25.92, out: [String] = ["B45-1"]) -> Entitlement {
        var e = makeEntitlement(1, swapsUsed: swapsUsed, batteriesOut: out)
        e.energyUsedKWh = energy
        return e
    }

    /// ABS's record once it counted the swap of `insertAndComplete` (B45-1 back, B45-900 out).
    func countedRecord() -> Entitlement { absRecord(swapsUsed: 6, energy: 25.92 + 1.944, out: ["B45-900"]) }

    func expectCountedOnce(_ store: StationStore, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let e = try #require(await store.effectiveEntitlement(planInstanceID: "pi-1"), sourceLocation: sourceLocation)
        #expect(e.swapsUsed == 6, sourceLocation: sourceLocation)
        #expect(abs(e.energyUsedKWh - (25.92 + 1.944)) < 1e-9, sourceLocation: sourceLocation)
        #expect(e.batteriesOut == ["B45-900"], sourceLocation: sourceLocation)
        #expect(try await store.effectiveEntitlements(customerID: "cust-0").first { $0.planInstanceID == "pi-1" } == e,
                sourceLocation: sourceLocation)
    }

    /// The issue's scenario: the swap's event is PUBACKed, then snapshots arrive that ABS built before,
    /// during and after it counted the swap, with and without the field.
    @Test func aSwapStaysCountedUntilCountedThroughSeqCoversItsEvent() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        // Events before the swap (ABS may have counted these: seq 1…3).
        let earlier = try await store.appendEvents(makeEvents(0..<3))
        try await store.markSent(seqs: earlier.map(\.seq), at: at(1))
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [absRecord(), makeEntitlement(2)],
                                                 issuedAt: at(0), receivedAt: at(0), countedThroughSeq: 3)
        let swap = makeSwap("s-1")
        let stored = try await insertAndComplete(store, swap, returned: "B45-1", issued: "B45-900", at: at(60))
        let seq = try #require(stored.first { $0.type == "swap.completed" }).seq

        // Folded into the cached record at completion: counted once.
        #expect(try await store.entitlement(planInstanceID: "pi-1")?.swapsUsed == 6)
        #expect(try await store.pendingLocalSwaps(planInstanceID: "pi-1") == [])
        try await expectCountedOnce(store)

        // The broker's PUBACK acknowledges nothing.
        try await store.markSent(seqs: [seq], at: at(100))
        #expect(try await store.allPendingLocalSwaps().first?.ackedAt == at(100))

        // A snapshot without the field, issued long after the PUBACK, still saying 5 used: counted on top.
        try await store.applyEntitlementSnapshot(version: 2, entitlements: [absRecord(), makeEntitlement(2)],
                                                 issuedAt: at(10_000), receivedAt: at(10_000))
        #expect(try await store.entitlement(planInstanceID: "pi-1") == absRecord())
        #expect(try await store.pendingLocalSwaps(planInstanceID: "pi-1") == [makePending(for: completed(swap, at: at(60)))])
        try await expectCountedOnce(store)

        // One ABS built before it counted the swap (watermark below its seq): still counted on top.
        try await store.applyEntitlementSnapshot(version: 3, entitlements: [absRecord(), makeEntitlement(2)],
                                                 issuedAt: at(10_001), receivedAt: at(10_001), countedThroughSeq: seq - 1)
        try await expectCountedOnce(store)
        #expect(try await store.allPendingLocalSwaps().count == 1)
        #expect(try await store.entitlementCountedThroughSeq() == seq - 1)

        // One that covers it (ABS's numbers count it now): counted once, not twice; the row is gone.
        try await store.applyEntitlementSnapshot(version: 4, entitlements: [countedRecord(), makeEntitlement(2)],
                                                 issuedAt: at(10_002), receivedAt: at(10_002), countedThroughSeq: seq)
        #expect(try await store.allPendingLocalSwaps() == [])
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1") == countedRecord())
        #expect(try await store.entitlementSyncState().countedThroughSeq == seq)

        // An older message arriving late, with a lower value: the watermark does not move back (nothing is
        // un-acknowledged: no second count on top of ABS's numbers).
        try await store.applyEntitlementSnapshot(version: 5, entitlements: [countedRecord(), makeEntitlement(2)],
                                                 issuedAt: at(10_003), receivedAt: at(10_003), countedThroughSeq: seq - 1)
        #expect(try await store.entitlementCountedThroughSeq() == seq)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1") == countedRecord())
        try await store.close()
    }

    /// A watermark that covers the seq of an event the broker never acknowledged acknowledges nothing:
    /// ABS cannot have counted an event it never received (fail closed).
    @Test func anUnsentEventIsNeverAcknowledged() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [absRecord()], issuedAt: at(0), receivedAt: at(0))
        let stored = try await insertAndComplete(store, makeSwap("s-1"))
        let seq = try #require(stored.first?.seq)
        try await store.applyEntitlementSnapshot(version: 2, entitlements: [absRecord()], issuedAt: at(10), receivedAt: at(10),
                                                 countedThroughSeq: seq + 100)
        try await expectCountedOnce(store)
        // Sent now; the stored watermark alone does not clear it: the next message with the field does.
        try await store.markSent(seqs: [seq], at: at(20))
        try await store.applyEntitlementSnapshot(version: 3, entitlements: [absRecord()], issuedAt: at(30), receivedAt: at(30))
        try await expectCountedOnce(store)
        try await store.applyEntitlementSnapshot(version: 4, entitlements: [countedRecord()], issuedAt: at(40), receivedAt: at(40),
                                                 countedThroughSeq: seq)
        #expect(try await store.allPendingLocalSwaps() == [])
        try await expectCountedOnce(store)
        try await store.close()
    }

    /// Deltas: one that covers the swap acknowledges it whatever plans it upserts (applied on top of its
    /// base, the cache is ABS's state at its version); one built earlier, without the field, or not applied
    /// (gap, re-delivery) acknowledges nothing.
    @Test func aDeltaAcknowledgesOnlyWithACoveringCountedThroughSeq() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [absRecord(), makeEntitlement(2)],
                                                 issuedAt: at(0), receivedAt: at(0), countedThroughSeq: 0)
        let stored = try await insertAndComplete(store, makeSwap("s-1"))
        let seq = try #require(stored.first?.seq)
        try await store.markSent(seqs: [seq], at: at(100))

        // Upserting pi-1 with ABS's old numbers, no field: counted on top.
        #expect(try await store.applyEntitlementDelta(baseVersion: 1, version: 2, upsert: [absRecord()], remove: [],
                                                      issuedAt: at(200), receivedAt: at(200)) == .applied)
        #expect(try await store.entitlement(planInstanceID: "pi-1")?.swapsUsed == 5)
        try await expectCountedOnce(store)
        // Upserting pi-1, built before ABS counted it: counted on top.
        #expect(try await store.applyEntitlementDelta(baseVersion: 2, version: 3, upsert: [absRecord()], remove: [],
                                                      issuedAt: at(210), receivedAt: at(210), countedThroughSeq: seq - 1) == .applied)
        try await expectCountedOnce(store)
        // A covering delta that is not applied (a gap; a re-delivery) acknowledges nothing.
        #expect(try await store.applyEntitlementDelta(baseVersion: 7, version: 8, upsert: [countedRecord()], remove: [],
                                                      issuedAt: at(220), receivedAt: at(220), countedThroughSeq: seq) == .needSnapshot(currentVersion: 3))
        #expect(try await store.applyEntitlementDelta(baseVersion: 2, version: 3, upsert: [countedRecord()], remove: [],
                                                      issuedAt: at(220), receivedAt: at(220), countedThroughSeq: seq) == .alreadyApplied)
        #expect(try await store.allPendingLocalSwaps().count == 1)
        #expect(try await store.entitlementCountedThroughSeq() == seq - 1)
        try await expectCountedOnce(store)
        // Covering, upserting pi-1 with ABS's counted numbers: acknowledged, counted once.
        #expect(try await store.applyEntitlementDelta(baseVersion: 3, version: 4, upsert: [countedRecord()], remove: [],
                                                      issuedAt: at(230), receivedAt: at(230), countedThroughSeq: seq) == .applied)
        #expect(try await store.allPendingLocalSwaps() == [])
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1") == countedRecord())
        try await store.close()
    }

    /// A covering delta that does not touch the swap's plan: the cached record (folded at completion, never
    /// replaced since) already includes the swap; acknowledging it leaves the count at one.
    @Test func aCoveringDeltaForAnotherPlanKeepsTheFoldedCount() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [absRecord(), makeEntitlement(2)],
                                                 issuedAt: at(0), receivedAt: at(0))
        let stored = try await insertAndComplete(store, makeSwap("s-1"))
        try await store.markSent(seqs: stored.map(\.seq), at: at(100))
        #expect(try await store.applyEntitlementDelta(baseVersion: 1, version: 2, upsert: [makeEntitlement(2, swapsUsed: 9)], remove: [],
                                                      issuedAt: at(200), receivedAt: at(200), countedThroughSeq: stored[0].seq) == .applied)
        #expect(try await store.allPendingLocalSwaps() == [])
        try await expectCountedOnce(store)
        try await store.close()
    }

    /// `swap.returned` (a battery back, none issued): custody changes (the returned battery leaves
    /// batteries_out), no swap or energy is counted, no usage; it too stays counted until covered.
    @Test func aReturnWithoutIssueChangesCustodyUntilCovered() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [absRecord()], issuedAt: at(0), receivedAt: at(0))
        let swap = makeSwap("s-r")
        _ = try await store.insertSwap(swap, events: [swapEvent("swap.accepted", swap)], audit: [])
        var done = swap
        done.stage = .returnedWithoutIssue
        done.stageReached = .awaitingReturn
        done.returned = SwapBattery(id: "B45-1", family: .mobbat45, socPercent: 9.5, remainingCapacityAh: 4.3, slot: 9)
        done.finishedAt = at(50); done.updatedAt = at(50)
        let pending = PendingLocalSwap(swapID: "s-r", planInstanceID: "pi-1", swaps: 0, energyKWh: 0, returnedBatteryID: "B45-1",
                                       issuedBatteryID: nil, completedAt: at(50))
        let stored = try await store.completeSwap(done, pending: pending, usage: nil,
                                                  events: [swapEvent("battery.inserted", done), swapEvent("swap.returned", done)], audit: [])
        let returnedSeq = stored[1].seq
        #expect(try await store.allPendingLocalSwaps().first?.eventSeq == returnedSeq, "linked to swap.returned by default")
        #expect(try await store.listUsage(state: nil, limit: 10).isEmpty)
        try await store.markSent(seqs: stored.map(\.seq), at: at(60))

        // ABS's snapshot still has the rider holding B45-1: custody shows it back at the station.
        try await store.applyEntitlementSnapshot(version: 2, entitlements: [absRecord()], issuedAt: at(70), receivedAt: at(70),
                                                 countedThroughSeq: returnedSeq - 1)
        var e = try #require(await store.effectiveEntitlement(planInstanceID: "pi-1"))
        #expect(e.batteriesOut == [] && e.swapsUsed == 5 && e.energyUsedKWh == 25.92)
        try await store.applyEntitlementSnapshot(version: 3, entitlements: [absRecord(out: [])], issuedAt: at(80), receivedAt: at(80),
                                                 countedThroughSeq: returnedSeq)
        e = try #require(await store.effectiveEntitlement(planInstanceID: "pi-1"))
        #expect(e.batteriesOut == [] && e.swapsUsed == 5)
        #expect(try await store.allPendingLocalSwaps() == [])
        try await store.close()
    }

    /// Restarts between the swap, the snapshots and the acknowledgement: pending rows and the watermark are
    /// in the database; a field-less or older message after a restart neither gives back nor double counts.
    @Test func theWatermarkAndPendingSwapsSurviveReopening() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        var store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [absRecord()], issuedAt: at(0), receivedAt: at(0),
                                                 countedThroughSeq: 0)
        let first = try await insertAndComplete(store, makeSwap("s-1"))
        try await store.markSent(seqs: first.map(\.seq), at: at(70))
        try await store.close()

        store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 2, entitlements: [absRecord()], issuedAt: at(100), receivedAt: at(100))
        try await store.close()
        store = try dir.open()
        try await expectCountedOnce(store)
        #expect(try await store.entitlementCountedThroughSeq() == 0)
        try await store.applyEntitlementSnapshot(version: 3, entitlements: [countedRecord()], issuedAt: at(200), receivedAt: at(200),
                                                 countedThroughSeq: first[0].seq)
        try await store.close()

        store = try dir.open()
        #expect(try await store.entitlementCountedThroughSeq() == first[0].seq)
        #expect(try await store.allPendingLocalSwaps() == [])
        // A second swap after the restart; then an older message (lower watermark) and one without the field.
        let second = try await insertAndComplete(store, makeSwap("s-2"), returned: "B45-900", issued: "B45-901", at: at(300))
        try await store.markSent(seqs: second.map(\.seq), at: at(310))
        try await store.applyEntitlementSnapshot(version: 4, entitlements: [countedRecord()], issuedAt: at(320), receivedAt: at(320),
                                                 countedThroughSeq: first[0].seq - 1)
        try await store.close()
        store = try dir.open()
        #expect(try await store.entitlementCountedThroughSeq() == first[0].seq)
        var e = try #require(await store.effectiveEntitlement(planInstanceID: "pi-1"))
        #expect(e.swapsUsed == 7 && e.batteriesOut == ["B45-901"])
        try await store.applyEntitlementSnapshot(version: 5, entitlements: [countedRecord()], issuedAt: at(330), receivedAt: at(330))
        e = try #require(await store.effectiveEntitlement(planInstanceID: "pi-1"))
        #expect(e.swapsUsed == 7 && e.batteriesOut == ["B45-901"])
        try await store.close()
    }

    /// The PUBACK time is still copied into the pending row (diagnostics) and survives retention deleting the
    /// sent event; the acknowledgement by counted_through_seq does not need the event row.
    @Test func theAcknowledgementDoesNotNeedTheEventRow() async throws {
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

        try await store.applyEntitlementSnapshot(version: 2, entitlements: [absRecord()], issuedAt: at(2_000), receivedAt: at(2_000))
        #expect(try await store.allPendingLocalSwaps().count == 1, "no counted_through_seq")
        try await store.applyEntitlementSnapshot(version: 3, entitlements: [countedRecord()], issuedAt: at(2_001), receivedAt: at(2_001),
                                                 countedThroughSeq: stored[0].seq)
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

    /// A swap completed while a snapshot is being staged (ABS built it before the swap: its watermark is
    /// below the swap's seq): the snapshot replaces the record the completion folded the swap into; the
    /// pending row counts it.
    @Test func aSwapCompletedDuringStagingIsNotGivenBack() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        var records = makeEntitlements(0..<30_000)
        records[1] = absRecord()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: records, issuedAt: at(0), receivedAt: at(0))
        let lastBefore = try await store.stats().lastSeq
        let snapshot = Task {
            try await store.applyEntitlementSnapshot(version: 2, entitlements: records, issuedAt: at(1_000), receivedAt: at(1_000),
                                                     countedThroughSeq: lastBefore)
        }
        #expect(await eventuallyAsync(timeout: 60, interval: 0.001) { (try? await rowCount(store, "entitlement_staging")) ?? 0 > 0 })
        let stored = try await insertAndComplete(store, makeSwap("s-1"))
        try await store.markSent(seqs: stored.map(\.seq), at: at(1_001))
        let stagingWhenCompleted = try await stagingExists(store)
        try await snapshot.value
        #expect(stagingWhenCompleted, "the completion did not run during staging")
        #expect(try await store.entitlement(planInstanceID: "pi-1")?.swapsUsed == 5)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1")?.swapsUsed == 6)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1")?.batteriesOut == ["B45-900"])
        try await store.close()
    }
}
