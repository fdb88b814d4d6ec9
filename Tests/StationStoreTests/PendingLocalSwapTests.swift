import Foundation
import SQLiteLink
import Testing
import TestSupport
import StationDomain
@testable import StationStore

/// Contract 1.1: a swap recorded here (`swap.completed`, and `swap.returned`, which changes custody)
/// stays counted on top of ABS's numbers (quota, energy, custody) until a snapshot or delta whose
/// `counted_through_seq` is at or above its event's seq. A PUBACK, a time stamp or a newer message
/// without the field acknowledges nothing. Each cached record reflects the `counted_through_seq` of the
/// message that last wrote it (without the field: the highest seen so far), and a local swap counts on
/// top of it iff its event's seq is above that; the rows are kept after acknowledgement (a late, older
/// snapshot may need them again) until record retention. All on real SQLite files.
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


    /// Acknowledged: no local swap is counted on top any more (the rows are kept, for a late older snapshot).
    func expectNoneOnTop(_ store: StationStore, rows: Int = 1, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let all = try await store.allPendingLocalSwaps()
        #expect(all.count == rows, "kept after acknowledgement", sourceLocation: sourceLocation)
        #expect(all.allSatisfy { !$0.countedOnTop }, sourceLocation: sourceLocation)
        #expect(try await store.pendingLocalSwaps(planInstanceID: "pi-1") == [], sourceLocation: sourceLocation)
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

        // One that covers it (ABS's numbers count it now): counted once, not twice; the row is kept.
        try await store.applyEntitlementSnapshot(version: 4, entitlements: [countedRecord(), makeEntitlement(2)],
                                                 issuedAt: at(10_002), receivedAt: at(10_002), countedThroughSeq: seq)
        try await expectNoneOnTop(store)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1") == countedRecord())
        #expect(try await store.entitlementSyncState().countedThroughSeq == seq)

        // An older message arriving late (built before v4, with ABS's numbers then): the watermark does not
        // move back, but these numbers do not count the swap, so it counts on top of them again.
        try await store.applyEntitlementSnapshot(version: 3, entitlements: [absRecord(), makeEntitlement(2)],
                                                 issuedAt: at(10_001), receivedAt: at(10_003), countedThroughSeq: seq - 1)
        #expect(try await store.entitlementCountedThroughSeq() == seq)
        #expect(try await store.entitlementCountedThroughSeq(planInstanceID: "pi-1") == seq - 1)
        try await expectCountedOnce(store)
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
        try await expectNoneOnTop(store)
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
        try await expectNoneOnTop(store)
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
        #expect(try await store.allPendingLocalSwaps().map(\.inCachedRecord) == [true], "still folded into the untouched record")
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
        try await expectNoneOnTop(store)
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
        try await expectNoneOnTop(store)
        // A second swap after the restart; then an older message (lower watermark, ABS's numbers before the
        // first swap: both count on top) and one without the field (reflects the highest seen: only the second).
        let second = try await insertAndComplete(store, makeSwap("s-2"), returned: "B45-900", issued: "B45-901", at: at(300))
        try await store.markSent(seqs: second.map(\.seq), at: at(310))
        try await store.applyEntitlementSnapshot(version: 4, entitlements: [absRecord()], issuedAt: at(320), receivedAt: at(320),
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
        try await expectNoneOnTop(store)
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

    // MARK: Per-record counted_through_seq (a late, older snapshot; messages without the field; deltas)

    /// ABS built S1 (counted_through_seq 5) before S2 (10), which counted the local swap with seq 8; S1
    /// arrives after S2 (a QoS 1 redelivery, a slow path) and is applied with its older numbers. The swap
    /// counts on top of S1's numbers again: the rider, at quota, stays at quota (never one swap more than
    /// ABS counts). Reopening between every step; S2 and S1 alternating a few times.
    @Test func aLateOlderSnapshotDoesNotGiveBackAnAcknowledgedSwap() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        func record(used: Int, out: [String]) -> Entitlement {
            var e = absRecord(swapsUsed: used, energy: used == 5 ? 25.92 : 25.92 + 1.944, out: out)
            e.swapQuota = 6
            return e
        }
        let before = record(used: 5, out: ["B45-1"]), counted = record(used: 6, out: ["B45-900"])
        var store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [before, makeEntitlement(2)],
                                                 issuedAt: at(0), receivedAt: at(0), countedThroughSeq: 0)
        _ = try await store.appendEvents(makeEvents(0..<6))                        // seq 1…6
        let swapEvents = try await insertAndComplete(store, makeSwap("s-1"))       // accepted 7, completed 8
        let seq = try #require(swapEvents.first { $0.type == "swap.completed" }).seq
        #expect(seq == 8)
        _ = try await store.appendEvents(makeEvents(6..<8))                        // seq 9, 10
        try await store.markSent(seqs: Array(1...10), at: at(100))
        try await store.close()

        for round in 0..<3 {
            // S2: ABS counted the swap (counted_through_seq 10, swaps_used 6).
            store = try dir.open()
            try await store.applyEntitlementSnapshot(version: 11, entitlements: [counted, makeEntitlement(2)],
                                                     issuedAt: at(200), receivedAt: at(300 + Double(round) * 10),
                                                     countedThroughSeq: 10)
            var e = try #require(await store.effectiveEntitlement(planInstanceID: "pi-1"))
            #expect(e.swapsUsed == 6 && e.batteriesOut == ["B45-900"], "round \(round): counted once by ABS's numbers")
            try await expectNoneOnTop(store)
            try await store.close()

            // S1, built before S2, arrives late: its numbers do not count seq 8, so the swap counts on top.
            store = try dir.open()
            try await store.applyEntitlementSnapshot(version: 10, entitlements: [before, makeEntitlement(2)],
                                                     issuedAt: at(150), receivedAt: at(305 + Double(round) * 10),
                                                     countedThroughSeq: 5)
            try await store.close()
            store = try dir.open()
            e = try #require(await store.effectiveEntitlement(planInstanceID: "pi-1"))
            #expect(e.swapsUsed == 6, "round \(round): the acknowledged swap is not given back by the older snapshot")
            #expect(e.swapsUsed >= e.swapQuota, "round \(round): at quota, no further swap")
            #expect(abs(e.energyUsedKWh - (25.92 + 1.944)) < 1e-9 && e.batteriesOut == ["B45-900"])
            #expect(try await store.entitlementCountedThroughSeq() == 10, "the watermark does not move back")
            #expect(try await store.entitlementCountedThroughSeq(planInstanceID: "pi-1") == 5)
            #expect(try await store.allPendingLocalSwaps().map(\.countedOnTop) == [true])
            try await store.close()
        }
    }

    /// The spec's literal reading must keep working: a swap once covered is not counted again. Quota 2, one
    /// swap, a covering snapshot (swaps_used 1), then a snapshot and a delta without the field (swaps_used 1):
    /// they reflect the highest value seen, so the second swap is still allowed. Reopening between.
    @Test func aMessageWithoutTheFieldAfterACoveringOneDoesNotCountTheSwapAgain() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        func record(used: Int, out: [String]) -> Entitlement {
            var e = absRecord(swapsUsed: used, energy: 0, out: out)
            e.swapQuota = 2
            e.energyQuotaKWh = -1
            return e
        }
        var store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [record(used: 0, out: ["B45-1"])],
                                                 issuedAt: at(0), receivedAt: at(0))
        let stored = try await insertAndComplete(store, makeSwap("s-1"))
        let seq = try #require(stored.first).seq
        try await store.markSent(seqs: [seq], at: at(100))
        try await store.applyEntitlementSnapshot(version: 2, entitlements: [record(used: 1, out: ["B45-900"])],
                                                 issuedAt: at(200), receivedAt: at(200), countedThroughSeq: seq)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1")?.swapsUsed == 1)
        try await store.close()

        store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 3, entitlements: [record(used: 1, out: ["B45-900"])],
                                                 issuedAt: at(300), receivedAt: at(300))
        #expect(try await store.entitlementCountedThroughSeq(planInstanceID: "pi-1") == seq, "the highest seen")
        try await store.close()
        store = try dir.open()
        var e = try #require(await store.effectiveEntitlement(planInstanceID: "pi-1"))
        #expect(e.swapsUsed == 1 && e.swapsUsed < e.swapQuota, "the second swap is allowed")
        #expect(e.batteriesOut == ["B45-900"])
        #expect(try await store.applyEntitlementDelta(baseVersion: 3, version: 4, upsert: [record(used: 1, out: ["B45-900"])],
                                                      remove: [], issuedAt: at(400), receivedAt: at(400)) == .applied)
        try await store.close()
        store = try dir.open()
        e = try #require(await store.effectiveEntitlement(planInstanceID: "pi-1"))
        #expect(e.swapsUsed == 1 && e.swapsUsed < e.swapQuota, "a delta without the field: still allowed")
        // The second swap (not yet counted by ABS) reaches the quota, and stays counted under field-less messages.
        let second = try await insertAndComplete(store, makeSwap("s-2"), returned: "B45-900", issued: "B45-901", at: at(500))
        try await store.markSent(seqs: second.map(\.seq), at: at(510))
        try await store.applyEntitlementSnapshot(version: 5, entitlements: [record(used: 1, out: ["B45-900"])],
                                                 issuedAt: at(600), receivedAt: at(600))
        e = try #require(await store.effectiveEntitlement(planInstanceID: "pi-1"))
        #expect(e.swapsUsed == 2 && e.batteriesOut == ["B45-901"], "the second swap counts on top")
        try await store.close()
    }

    /// A delta's upserted records reflect its counted_through_seq (without it: the highest seen); records it
    /// does not touch keep theirs, so a swap their numbers do not count stays counted on top. Reopening between.
    @Test func aDeltaMovesOnlyTheRecordsItUpserts() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let other = makeEntitlement(2, swapsUsed: 3, batteriesOut: ["B45-2"])          // pi-2, cust-1
        var otherCounted = makeEntitlement(2, swapsUsed: 4, batteriesOut: ["B45-902"])
        otherCounted.energyUsedKWh = 25.92 + 1.944
        var store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [absRecord(), other], issuedAt: at(0), receivedAt: at(0),
                                                 countedThroughSeq: 0)
        let first = try await insertAndComplete(store, makeSwap("s-1"))
        let second = try await insertAndComplete(store, makeSwap("s-2", plan: "pi-2", customer: "cust-1"),
                                                 returned: "B45-2", issued: "B45-902", at: at(70))
        try await store.markSent(seqs: Array(1...second[0].seq), at: at(100))
        // ABS built this before counting either swap: both count on top of its records.
        try await store.applyEntitlementSnapshot(version: 2, entitlements: [absRecord(), other], issuedAt: at(110), receivedAt: at(110),
                                                 countedThroughSeq: 0)
        try await expectCountedOnce(store)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-2")?.swapsUsed == 4)
        try await store.close()

        // A delta upserting pi-1 only, covering both swaps: pi-1 reflects it; pi-2 keeps 0 (its numbers
        // still lack s-2), so s-2 stays counted on top.
        store = try dir.open()
        #expect(try await store.applyEntitlementDelta(baseVersion: 2, version: 3, upsert: [countedRecord()], remove: [],
                                                      issuedAt: at(200), receivedAt: at(200), countedThroughSeq: second[0].seq) == .applied)
        try await store.close()
        store = try dir.open()
        #expect(try await store.entitlementCountedThroughSeq(planInstanceID: "pi-1") == second[0].seq)
        #expect(try await store.entitlementCountedThroughSeq(planInstanceID: "pi-2") == 0)
        try await expectCountedOnce(store)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-2")?.swapsUsed == 4)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-2")?.batteriesOut == ["B45-902"])
        #expect(try await store.allPendingLocalSwaps().map(\.countedOnTop) == [false, true])

        // A delta without the field upserting pi-2 with ABS's counted numbers: reflects the highest seen.
        #expect(try await store.applyEntitlementDelta(baseVersion: 3, version: 4, upsert: [otherCounted], remove: [],
                                                      issuedAt: at(300), receivedAt: at(300)) == .applied)
        try await store.close()
        store = try dir.open()
        #expect(try await store.entitlementCountedThroughSeq(planInstanceID: "pi-2") == second[0].seq)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-2")?.swapsUsed == 4, "counted once")
        try await expectCountedOnce(store)

        // A snapshot gives every record its value again (the delta's are forgotten): a late one with 0 and
        // ABS's old numbers brings both swaps back on top.
        try await store.applyEntitlementSnapshot(version: 2, entitlements: [absRecord(), other], issuedAt: at(110), receivedAt: at(400),
                                                 countedThroughSeq: 0)
        try await store.close()
        store = try dir.open()
        #expect(try await store.entitlementCountedThroughSeq(planInstanceID: "pi-1") == 0)
        #expect(try await store.entitlementCountedThroughSeq(planInstanceID: "pi-2") == 0)
        try await expectCountedOnce(store)
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-2")?.swapsUsed == 4)
        _ = first
        try await store.close()
    }

    /// A value above the station's last seq is clamped to it when applied (ABS cannot have counted events the
    /// station has not written yet): a later swap is not covered by it, nor by a message without the field that
    /// inherits it, nor after a lower value arrives.
    @Test func aValueAboveTheStationsSeqsCoversNoLaterSwap() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        var store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [absRecord()], issuedAt: at(0), receivedAt: at(0),
                                                 countedThroughSeq: 1_000)
        #expect(try await store.entitlementCountedThroughSeq() == 1_000)
        #expect(try await store.entitlementCountedThroughSeq(planInstanceID: "pi-1") == 0)
        let stored = try await insertAndComplete(store, makeSwap("s-1"))
        try await store.markSent(seqs: stored.map(\.seq), at: at(100))
        try await store.close()
        store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 2, entitlements: [absRecord()], issuedAt: at(200), receivedAt: at(200))
        try await expectCountedOnce(store)
        try await store.applyEntitlementSnapshot(version: 3, entitlements: [absRecord()], issuedAt: at(300), receivedAt: at(300),
                                                 countedThroughSeq: 0)
        try await expectCountedOnce(store)
        try await store.close()
    }

    /// Acknowledged rows are deleted by record retention only: older than the finished-swap horizon and
    /// covered by every cached record's counted_through_seq. Until then they are kept.
    @Test func acknowledgedRowsGoOnlyByRetentionWhenEveryRecordCoversThem() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        let policy = RecordRetention(keepSettledUsageDays: 90, keepFinishedSwapDays: 30, keepAuditDays: 365)
        try await store.applyEntitlementSnapshot(version: 1, entitlements: [absRecord(), makeEntitlement(2)],
                                                 issuedAt: at(0), receivedAt: at(0), countedThroughSeq: 0)
        let stored = try await insertAndComplete(store, makeSwap("s-1"))
        let seq = stored[0].seq
        // Unsent, not yet replaced: kept whatever its age.
        _ = try await store.applyRecordRetention(policy, now: at(86_400 * 100))
        #expect(try await store.allPendingLocalSwaps().count == 1)
        try await store.markSent(seqs: Array(1...seq), at: at(100))
        try await store.applyEntitlementSnapshot(version: 2, entitlements: [countedRecord(), makeEntitlement(2)],
                                                 issuedAt: at(200), receivedAt: at(200), countedThroughSeq: seq)
        // Covered by every record, but young: kept.
        _ = try await store.applyRecordRetention(policy, now: at(86_400 * 10))
        try await expectNoneOnTop(store)
        // Old, but one record (a delta's, below the swap's seq) does not cover it: kept.
        #expect(try await store.applyEntitlementDelta(baseVersion: 2, version: 3, upsert: [makeEntitlement(2)], remove: [],
                                                      issuedAt: at(300), receivedAt: at(300), countedThroughSeq: seq - 1) == .applied)
        _ = try await store.applyRecordRetention(policy, now: at(86_400 * 100))
        try await expectNoneOnTop(store)
        // Every record covers it and it is old: deleted (its swap stays: a usage record refers to it).
        try await store.applyEntitlementSnapshot(version: 4, entitlements: [countedRecord(), makeEntitlement(2)],
                                                 issuedAt: at(400), receivedAt: at(400), countedThroughSeq: seq)
        #expect(try await store.applyRecordRetention(policy, now: at(86_400 * 100)) == 1)
        #expect(try await store.allPendingLocalSwaps() == [])
        #expect(try await store.effectiveEntitlement(planInstanceID: "pi-1") == countedRecord())
        #expect(try await store.swap(id: "s-1") != nil)
        try await store.close()
    }

    /// A station migrated from v3 (rows the watermark covered were deleted then; those left are above it or
    /// unsent): the records reflect the watermark, the rows left keep counting on top until covered.
    @Test func aStationMigratedFromTheGlobalWatermarkKeepsItsCounts() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        do {
            let queue = try DatabaseQueue(path: dir.path)
            try StationStore.makeMigrator().migrate(queue, upTo: "v3-counted-through-seq")
            try await queue.write { db in
                try db.execute(sql: StationStore.entitlementInsertSQL(table: "entitlement"),
                               arguments: StationStore.entitlementArguments(absRecord()))
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('entitlements.version', '7'), ('entitlements.last_sync_at_ms', ?)",
                               arguments: [StationStore.millis(at(0))])
                try db.execute(sql: "UPDATE abs_counted_through SET counted_through_seq = 5")
                try db.execute(sql: "UPDATE event_seq SET last_seq = 10")
                try db.execute(sql: """
                    INSERT INTO pending_local_swap (swap_id, plan_instance_id, swaps, energy_kwh, returned_battery_id,
                                                    issued_battery_id, completed_at_ms, event_seq, acked_at_ms, in_cache)
                    VALUES ('s-1', 'pi-1', 1, 1.944, 'B45-1', 'B45-900', ?, 8, ?, 0)
                    """, arguments: [StationStore.millis(at(60)), StationStore.millis(at(100))])
            }
            try queue.close()
        }
        var store = try dir.open()
        #expect(try await store.entitlementCountedThroughSeq(planInstanceID: "pi-1") == 5)
        try await expectCountedOnce(store)
        try await store.close()
        store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 8, entitlements: [countedRecord()], issuedAt: at(200), receivedAt: at(200),
                                                 countedThroughSeq: 8)
        try await expectNoneOnTop(store)
        try await expectCountedOnce(store)
        try await store.close()
    }
}
