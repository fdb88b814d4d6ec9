import Foundation
import SQLiteLink
import Testing
import TestSupport
import StationDomain
@testable import StationStore

/// Everything a swap write can touch, to check that a failed one touched nothing.
struct SwapWorld: Equatable {
    var swaps: [SwapRecord]
    var events: [StoredEvent]
    var lastSeq: Int64
    var cached: Entitlement?
    var pending: [StoredPendingLocalSwap]
    var usage: [StoredUsage]
    var audit: [AuditEntry]

    init(_ store: StationStore, plan: String = "pi-1") async throws {
        swaps = try await store.recentSwaps(limit: 1_000)
        events = try await allEvents(store)
        lastSeq = try await store.stats().lastSeq
        cached = try await store.entitlement(planInstanceID: plan)
        pending = try await store.allPendingLocalSwaps()
        usage = try await store.listUsage(state: nil, limit: 1_000)
        audit = try await store.audit(limit: 1_000)
    }
}

@Suite("Swaps")
struct SwapStoreTests {
    @Test func insertUpdateAndCompleteAreRecordedWithTheirEventsAndAudit() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: makeEntitlements(0..<4), issuedAt: at(0), receivedAt: at(0))
        var swap = makeSwap("s-1")
        let accepted = try await store.insertSwap(swap, events: [swapEvent("swap.accepted", swap)],
                                                  audit: [auditLine("swap.accepted", swap)])
        #expect(accepted.map(\.seq) == [1])
        #expect(try await store.swapsInProgress() == [swap])
        #expect(try await store.swap(id: "s-1") == swap)

        swap.stage = .awaitingReturn
        swap.updatedAt = at(5)
        #expect(try await store.updateSwap(swap, events: [], audit: []) == [])
        swap.stage = .awaitingPickup
        swap.issueUnlockSeq = 8
        swap.updatedAt = at(30)
        let moved = try await store.updateSwap(swap, events: [swapEvent("slot.door_opened", swap), swapEvent("slot.door_closed", swap)],
                                               audit: [auditLine("swap.pickup", swap)])
        #expect(moved.map(\.seq) == [2, 3])
        #expect(try await store.swap(id: "s-1") == swap)
        #expect(try await store.swapCount(stage: .awaitingPickup) == 1)

        let done = completed(swap, at: at(60))
        let usage = makeUsage(for: done)
        let events = try await store.completeSwap(done, pending: makePending(for: done), usage: usage,
                                                  events: [swapEvent("battery.removed", done), swapEvent("swap.completed", done)],
                                                  audit: [auditLine("swap.completed", done)])
        #expect(events.map(\.type) == ["battery.removed", "swap.completed"])
        #expect(try await store.swapsInProgress() == [])
        #expect(try await store.swap(id: "s-1") == done)
        #expect(try await store.swapCount(stage: .completed) == 1)
        #expect(try await store.swapCount(stage: .awaitingPickup) == 0)
        #expect(try await store.swapCount(stage: nil) == 1)
        // Linked by type: the swap.completed event, not the first one.
        #expect(try await store.allPendingLocalSwaps().map(\.eventSeq) == [events[1].seq])
        let stored = try #require(await store.usage(key: usage.idempotencyKey))
        #expect(stored.record == usage)
        #expect(stored.state == .pending)
        #expect(stored.createdAt == at(60))
        #expect(stored.nextAttemptAt == at(60))
        #expect(try await store.audit(limit: 10).map(\.action) == ["swap.completed", "swap.pickup", "swap.accepted"])

        // Another swap after it; a final-stage swap (an aborted one) with updateSwap; newest first.
        var second = makeSwap("s-2", at: at(100))
        _ = try await store.insertSwap(second, events: [], audit: [])
        second.stage = .aborted
        second.abortReason = "return timeout"
        second.finishedAt = at(220)
        _ = try await store.updateSwap(second, events: [swapEvent("swap.aborted", second)], audit: [])
        #expect(try await store.recentSwaps(limit: 5).map(\.swapID) == ["s-2", "s-1"])
        #expect(try await store.recentSwaps(limit: 1).map(\.swapID) == ["s-2"])
        #expect(try await store.swapsInProgress() == [])
        try await store.close()

        // Everything survives a restart.
        let reopened = try dir.open()
        #expect(try await reopened.swap(id: "s-1") == done)
        #expect(try await reopened.swap(id: "s-2") == second)
        #expect(try await reopened.swap(id: "nope") == nil)
        try await reopened.close()
    }

    @Test func atMostOneSwapInProgressUnlessAllowed() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        _ = try await store.insertSwap(makeSwap("s-1"), events: [], audit: [])
        await #expect(throws: SwapStoreError.swapInProgress(["s-1"])) {
            try await store.insertSwap(makeSwap("s-2"), events: [swapEvent("swap.accepted", makeSwap("s-2"))], audit: [])
        }
        #expect(try await store.stats().lastSeq == 0, "the refused insert recorded no event")
        _ = try await store.insertSwap(makeSwap("s-2"), events: [], audit: [], allowConcurrent: 2)
        await #expect(throws: SwapStoreError.swapInProgress(["s-1", "s-2"])) {
            try await store.insertSwap(makeSwap("s-3"), events: [], audit: [], allowConcurrent: 2)
        }
        await #expect(throws: SwapStoreError.duplicateSwap("s-1")) {
            try await store.insertSwap(makeSwap("s-1"), events: [], audit: [], allowConcurrent: 5)
        }
        #expect(try await store.swapsInProgress().map(\.swapID) == ["s-1", "s-2"])

        // Once s-1 is finished, there is room again.
        var s1 = makeSwap("s-1")
        s1.stage = .aborted
        _ = try await store.updateSwap(s1, events: [], audit: [])
        _ = try await store.insertSwap(makeSwap("s-3"), events: [], audit: [], allowConcurrent: 2)
        #expect(try await store.swapsInProgress().map(\.swapID) == ["s-2", "s-3"])
        try await store.close()
    }

    @Test func updateRulesAreEnforced() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        await #expect(throws: SwapStoreError.unknownSwap("s-9")) {
            try await store.updateSwap(makeSwap("s-9"), events: [], audit: [])
        }
        await #expect(throws: SwapStoreError.unknownSwap("s-9")) {
            try await store.completeSwap(completed(makeSwap("s-9")), pending: nil, usage: nil, events: [], audit: [])
        }
        _ = try await store.insertSwap(makeSwap("s-1"), events: [], audit: [])
        // Completion (billing) only through completeSwap.
        await #expect(throws: SwapStoreError.completionNeedsCompleteSwap("s-1")) {
            try await store.updateSwap(completed(makeSwap("s-1")), events: [], audit: [])
        }
        await #expect(throws: SwapStoreError.completionNeedsCompleteSwap("s-2")) {
            try await store.insertSwap(completed(makeSwap("s-2")), events: [], audit: [])
        }
        await #expect(throws: SwapStoreError.notFinal(swapID: "s-1", stage: .awaitingPickup)) {
            try await store.completeSwap(makeSwap("s-1", stage: .awaitingPickup), pending: nil, usage: nil, events: [], audit: [])
        }
        // A pending swap needs its swap.completed event, and must be the swap's own.
        let done = completed(makeSwap("s-1"))
        await #expect(throws: SwapStoreError.missingCompletedEvent("s-1")) {
            try await store.completeSwap(done, pending: makePending(for: done), usage: nil,
                                         events: [swapEvent("battery.removed", done)], audit: [])
        }
        await #expect(throws: SwapStoreError.self) {
            try await store.completeSwap(done, pending: makePending(for: completed(makeSwap("s-other"))), usage: nil,
                                         events: [swapEvent("swap.completed", done)], audit: [])
        }
        await #expect(throws: SwapStoreError.self) {
            try await store.completeSwap(done, pending: nil, usage: makeUsage(for: completed(makeSwap("s-other"))),
                                         events: [swapEvent("swap.completed", done)], audit: [])
        }
        #expect(try await store.stats().lastSeq == 0)
        #expect(try await store.swapsInProgress().map(\.stage) == [.accepted])
        // An explicit event index links to that event.
        let stored = try await store.completeSwap(done, pending: makePending(for: done), usage: nil,
                                                  events: [swapEvent("battery.removed", done), swapEvent("swap.ended", done)],
                                                  audit: [], completedEventIndex: 1)
        #expect(try await store.allPendingLocalSwaps().map(\.eventSeq) == [stored[1].seq])
        // A finished swap does not change any more.
        await #expect(throws: SwapStoreError.alreadyFinished(swapID: "s-1", stage: .completed)) {
            try await store.updateSwap(makeSwap("s-1", stage: .awaitingReturn), events: [], audit: [])
        }
        try await store.close()
    }

    /// A swap is never billed twice: completing the same swap again is refused and writes nothing
    /// (no second usage record, pending row, fold into the cache, event or audit line).
    @Test func completingTheSameSwapTwiceIsRefused() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: makeEntitlements(0..<4), issuedAt: at(0), receivedAt: at(0))
        let swap = makeSwap("s-1")
        try await insertAndComplete(store, swap)
        let before = try await SwapWorld(store)
        #expect(before.usage.count == 1)
        #expect(before.pending.count == 1)
        #expect(before.cached?.swapsUsed == 4)

        let again = completed(swap, at: at(70))
        await #expect(throws: SwapStoreError.alreadyFinished(swapID: "s-1", stage: .completed)) {
            try await store.completeSwap(again, pending: makePending(for: again), usage: makeUsage(for: again, key: "another-key"),
                                         events: [swapEvent("swap.completed", again)], audit: [auditLine("swap.completed", again)])
        }
        // The same, as a retry after a restart (the coordinator re-running recovery).
        try await store.close()
        let reopened = try dir.open()
        await #expect(throws: SwapStoreError.alreadyFinished(swapID: "s-1", stage: .completed)) {
            try await reopened.completeSwap(again, pending: makePending(for: again), usage: makeUsage(for: again),
                                            events: [swapEvent("swap.completed", again)], audit: [])
        }
        #expect(try await SwapWorld(reopened) == before)
        try await reopened.close()
    }

    /// A swap transaction that fails part-way leaves nothing: here the last step fails (an event
    /// whose event_id is already in the log; a usage key already used by another swap).
    @Test func aFailingSwapTransactionLeavesNothing() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: makeEntitlements(0..<4), issuedAt: at(0), receivedAt: at(0))
        let firstEvents = try await insertAndComplete(store, makeSwap("s-0"))
        let swap = makeSwap("s-1")
        _ = try await store.insertSwap(swap, events: [swapEvent("swap.accepted", swap)], audit: [auditLine("swap.accepted", swap)])
        let before = try await SwapWorld(store)

        let done = completed(swap, returned: "B45-900", issued: "B45-901", at: at(90))
        let reused = NewEvent(type: "swap.completed", timestamp: at(90), data: Array("{}".utf8), eventID: firstEvents[0].eventID)
        await #expect(throws: StoreError.self) {
            try await store.completeSwap(done, pending: makePending(for: done), usage: makeUsage(for: done),
                                         events: [swapEvent("battery.removed", done), reused], audit: [auditLine("swap.completed", done)])
        }
        #expect(try await SwapWorld(store) == before)
        await #expect(throws: StoreError.self) {
            try await store.completeSwap(done, pending: makePending(for: done), usage: makeUsage(for: done, key: "key-s-0"),
                                         events: [swapEvent("swap.completed", done)], audit: [auditLine("swap.completed", done)])
        }
        #expect(try await SwapWorld(store) == before)
        // insertSwap and updateSwap too.
        var moved = swap
        moved.stage = .awaitingReturn
        await #expect(throws: StoreError.self) {
            try await store.updateSwap(moved, events: [swapEvent("swap.x", moved), reused], audit: [auditLine("x", moved)])
        }
        #expect(try await SwapWorld(store) == before)

        // Done properly, it goes through, with the next seq (the failures consumed none).
        let stored = try await store.completeSwap(done, pending: makePending(for: done), usage: makeUsage(for: done),
                                                  events: [swapEvent("swap.completed", done)], audit: [])
        #expect(stored.map(\.seq) == [before.lastSeq + 1])
        #expect(try await store.entitlement(planInstanceID: "pi-1")?.swapsUsed == 5)
        #expect(try await store.entitlement(planInstanceID: "pi-1")?.batteriesOut == ["B45-901"])
        try await store.close()
    }

    /// On a full disk a swap write throws `.diskFull` and writes nothing (the coordinator keeps the
    /// door shut); with room again it goes through.
    @Test func swapWritesThrowDiskFullAndWriteNothing() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        var store = try dir.open(maxPageCount: 100)
        try await store.applyEntitlementSnapshot(version: 1, entitlements: makeEntitlements(0..<4), issuedAt: at(0), receivedAt: at(0))
        let swap = makeSwap("s-1")
        _ = try await store.insertSwap(swap, events: [swapEvent("swap.accepted", swap)], audit: [auditLine("swap.accepted", swap)])
        // Fill the file with unsent events (the relief cannot delete those), down to tiny ones.
        var n = 0
        for padding in [2_000, 200, 0] {
            while (try? await store.appendEvents([makeEvent(n, padding: padding)])) != nil { n += 1 }
        }
        #expect(n > 20)
        let before = try await SwapWorld(store)

        let done = completed(swap)
        await #expect { try await store.completeSwap(done, pending: makePending(for: done), usage: makeUsage(for: done),
                                                     events: [swapEvent("swap.completed", done)], audit: [auditLine("swap.completed", done)])
        } throws: { isDiskFull($0) }
        var moved = swap
        moved.stage = .awaitingReturn
        await #expect { try await store.updateSwap(moved, events: [swapEvent("swap.moved", moved)], audit: []) } throws: { isDiskFull($0) }
        var aborted = swap
        aborted.stage = .aborted
        await #expect { try await store.updateSwap(aborted, events: [swapEvent("swap.aborted", aborted)], audit: []) } throws: { isDiskFull($0) }
        #expect(try await SwapWorld(store) == before)
        #expect(try await store.swapsInProgress() == [swap])
        try await store.close()

        store = try dir.open(maxPageCount: 10_000)
        let stored = try await store.completeSwap(done, pending: makePending(for: done), usage: makeUsage(for: done),
                                                  events: [swapEvent("swap.completed", done)], audit: [])
        #expect(stored.map(\.seq) == [before.lastSeq + 1])
        #expect(try await store.usageStats().pending == 1)
        try await store.close()
    }

    /// Under disk pressure a swap goes before a snapshot being staged: the staged rows are given up
    /// for the swap's write, and the snapshot apply fails without touching the cache.
    @Test func aSwapOnAFullDiskTakesTheRoomOfAStagedSnapshot() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: makeEntitlements(0..<4), issuedAt: at(0), receivedAt: at(0))
        let swap = makeSwap("s-1")
        _ = try await store.insertSwap(swap, events: [], audit: [])
        // A snapshot being staged (started, not finished): its staging table holds many pages.
        let token = "test-owner"
        try await store.write { db in
            try db.execute(sql: StationStore.entitlementStagingDDL)
            try StationStore.setMetaValue(token, for: StationStore.EntitlementMetaKey.stagingToken, in: db)
            let insert = try db.cachedStatement(sql: StationStore.entitlementInsertSQL(table: "entitlement_staging"))
            for e in makeEntitlements(0..<5_000) { try insert.execute(arguments: StationStore.entitlementArguments(e)) }
        }
        try await store.close()
        // Cap the file at its current size and fill what is left with unsent events.
        let pages = Int(fileSize(dir.path) / 4096) + 400
        let capped = try dir.open(maxPageCount: pages)
        var n = 0
        for padding in [2_000, 200, 0] {
            while (try? await capped.appendEvents([makeEvent(n, padding: padding)])) != nil { n += 1 }
        }
        #expect(try await stagingExists(capped))
        let done = completed(swap)
        let stored = try await capped.completeSwap(done, pending: makePending(for: done), usage: makeUsage(for: done),
                                                   events: [swapEvent("swap.completed", done)], audit: [])
        #expect(stored.count == 1)
        #expect(try await snapshotLeftovers(capped) == [])
        #expect(try await capped.meta(StationStore.EntitlementMetaKey.stagingToken) == nil)
        #expect(try await capped.entitlementSyncState() == EntitlementSyncState(version: 1, lastSyncAt: at(0), count: 4))
        #expect(try await capped.swap(id: "s-1")?.stage == .completed)
        try await capped.close()
    }
}
