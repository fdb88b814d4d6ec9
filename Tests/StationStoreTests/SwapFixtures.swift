import Foundation
import SQLiteLink
import StationDomain
@testable import StationStore

/// A date with millisecond precision (what the store keeps), `ms` after `baseDate`'s second.
func at(_ seconds: Double) -> Date {
    StationStore.date(StationStore.millis(baseDate.addingTimeInterval(seconds)))
}

/// Entitlement number `n`: plan `pi-n`, customer `cust-(n / 2)` (two plans per customer),
/// `networkCode` as a marker of the snapshot it belongs to.
func makeEntitlement(_ n: Int, marker: String = "NET-A", swapsUsed: Int = 3, batteriesOut: [String]? = nil,
                     status: Entitlement.Status = .active) -> Entitlement {
    Entitlement(planInstanceID: "pi-\(n)", customerID: "cust-\(n / 2)", subscriptionRef: "SUB/2026/\(n)",
                status: status, validFrom: at(-86_400), validUntil: at(30 * 86_400), networkCode: marker,
                batteryFamily: "MOBBAT-45AH", swapQuota: 60, swapsUsed: swapsUsed, energyQuotaKWh: 129.6,
                energyUsedKWh: 25.92, overageAllowed: n % 3 == 0, maxBatteries: 1,
                batteriesOut: batteriesOut ?? ["B45-\(n)"], version: Int64(n % 17))
}

func makeEntitlements(_ range: Range<Int>, marker: String = "NET-A") -> [Entitlement] {
    range.map { makeEntitlement($0, marker: marker) }
}

func makeSwap(_ id: String, plan: String = "pi-1", customer: String = "cust-0", stage: SwapStage = .accepted,
              at time: Date = at(0)) -> SwapRecord {
    var swap = SwapRecord(swapID: id, requestID: "req-\(id)", customerID: customer, planInstanceID: plan,
                          subscriptionRef: "SUB/2026/1", kind: .exchange, stage: stage, returnSlot: 9, issueSlot: 4,
                          family: .mobbat45, recordedOffline: false, acceptedAt: time)
    swap.returnUnlockSeq = 7
    return swap
}

/// The swap as completed: batteries, energy, finished.
func completed(_ swap: SwapRecord, returned: String = "B45-1", issued: String = "B45-900", at time: Date = at(60)) -> SwapRecord {
    var s = swap
    s.stage = .completed
    s.returned = SwapBattery(id: returned, family: .mobbat45, socPercent: 9.5, remainingCapacityAh: 4.3, slot: 9)
    s.issued = SwapBattery(id: issued, family: .mobbat45, socPercent: 98.7, remainingCapacityAh: 44.8, slot: 4)
    s.energyKWh = 1.944
    s.updatedAt = time
    s.finishedAt = time
    return s
}

func makePending(for swap: SwapRecord, swaps: Int = 1, energy: Double = 1.944) -> PendingLocalSwap {
    PendingLocalSwap(swapID: swap.swapID, planInstanceID: swap.planInstanceID, swaps: swaps, energyKWh: energy,
                     returnedBatteryID: swap.returned?.id, issuedBatteryID: swap.issued?.id,
                     completedAt: swap.finishedAt ?? swap.updatedAt)
}

func makeUsage(for swap: SwapRecord, key: String? = nil) -> UsageRecord {
    UsageRecord(idempotencyKey: key ?? "key-\(swap.swapID)", subscriptionRef: swap.subscriptionRef,
                planInstanceID: swap.planInstanceID, customerID: swap.customerID, stationID: "TG-LOME-0007",
                outletCode: "TG-LM-001", occurredAt: swap.finishedAt ?? swap.updatedAt,
                recordedOffline: swap.recordedOffline,
                lines: [.init(serviceID: "service-swap-count", quantity: 1, unit: "1"),
                        .init(serviceID: "service-energy-gage", quantity: swap.energyKWh ?? 0, unit: "kWh")],
                swapID: swap.swapID,
                batteryOut: .init(id: swap.issued?.id ?? "", socPercent: swap.issued?.socPercent ?? 0, slot: swap.issued?.slot ?? 0),
                batteryIn: swap.returned.map { .init(id: $0.id, socPercent: $0.socPercent, slot: $0.slot) })
}

func swapEvent(_ type: String, _ swap: SwapRecord, at time: Date? = nil) -> NewEvent {
    NewEvent(type: type, timestamp: time ?? swap.updatedAt, data: Array(#"{"swap_id":"\#(swap.swapID)"}"#.utf8))
}

func auditLine(_ action: String, _ swap: SwapRecord) -> AuditEntry {
    AuditEntry(timestamp: swap.updatedAt, actor: "swap-coordinator", action: action,
               detail: #"{"swap_id":"\#(swap.swapID)"}"#)
}

/// Inserts `swap` (accepted) and completes it with a pending local swap and a usage record.
@discardableResult
func insertAndComplete(_ store: StationStore, _ swap: SwapRecord, returned: String = "B45-1",
                       issued: String = "B45-900", at time: Date = at(60)) async throws -> [StoredEvent] {
    _ = try await store.insertSwap(swap, events: [swapEvent("swap.accepted", swap)], audit: [auditLine("swap.accepted", swap)])
    let done = completed(swap, returned: returned, issued: issued, at: time)
    return try await store.completeSwap(done, pending: makePending(for: done), usage: makeUsage(for: done),
                                        events: [swapEvent("swap.completed", done)],
                                        audit: [auditLine("swap.completed", done)])
}

/// Rows of a table (tests only).
func rowCount(_ store: StationStore, _ table: String) async throws -> Int {
    try await store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0 }
}

func stagingExists(_ store: StationStore) async throws -> Bool {
    try await store.read { db in
        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'entitlement_staging')") ?? false
    }
}

/// Tables a snapshot apply leaves behind when interrupted (staging, retired old caches).
func snapshotLeftovers(_ store: StationStore) async throws -> [String] {
    try await store.read { db in
        try String.fetchAll(db, sql: """
            SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'entitlement_%' ORDER BY name
            """)
    }
}

/// A flag and counters shared between tasks of a test.
final class Shared: @unchecked Sendable {
    private let lock = NSLock()
    private var _done = false
    func markDone() { lock.lock(); _done = true; lock.unlock() }
    var done: Bool { lock.lock(); defer { lock.unlock() }; return _done }
}
