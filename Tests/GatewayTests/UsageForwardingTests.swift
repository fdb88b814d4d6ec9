import Foundation
import StationDomain
import StationStore
import Testing
import TestSupport

/// Usage records to the Odoo stand-in over real HTTP: exactly once in effect, oldest first, through
/// outages, rejections and SIGKILL.
@Suite(.serialized) struct UsageForwardingTests {
    /// Records as a completed swap writes them, made directly in the store (a backlog without waiting for riders).
    static func backlog(_ path: String, count: Int) async throws -> [String] {
        let store = try StationStore(path: path)
        var keys: [String] = []
        let t0 = Date().addingTimeInterval(-3600)
        for i in 0 ..< count {
            let at = t0.addingTimeInterval(Double(i))
            var swap = SwapRecord(swapID: "swap-\(String(format: "%05d", i))", requestID: "r-\(i)", customerID: "cust-1",
                                  planInstanceID: "pi-1", subscriptionRef: "SUB/2026/1", kind: .exchange, returnSlot: 7, issueSlot: 5,
                                  family: .mobbat45, recordedOffline: false, acceptedAt: at)
            _ = try await store.insertSwap(swap, events: [], audit: [])
            swap.stage = .completed
            swap.finishedAt = at
            swap.energyKWh = 1.5
            let usage = UsageRecord(idempotencyKey: swap.swapID, subscriptionRef: "SUB/2026/1", planInstanceID: "pi-1", customerID: "cust-1",
                                    stationID: Station.id, outletCode: "OUT-1", occurredAt: at, recordedOffline: false,
                                    lines: [.init(serviceID: "service-swap-count", quantity: 1, unit: "1"),
                                            .init(serviceID: "service-energy-gage", quantity: 1.5, unit: "kWh")],
                                    swapID: swap.swapID, batteryOut: .init(id: "B45-\(i)", socPercent: 99, slot: 5),
                                    batteryIn: .init(id: "B45-x\(i)", socPercent: 10, slot: 7))
            let pending = PendingLocalSwap(swapID: swap.swapID, planInstanceID: "pi-1", swaps: 1, energyKWh: 1.5,
                                           returnedBatteryID: nil, issuedBatteryID: nil, completedAt: at)
            _ = try await store.completeSwap(swap, pending: pending, usage: usage, events: [
                NewEvent(type: "swap.completed", timestamp: at, data: Array("{\"swap_id\":\"\(swap.swapID)\"}".utf8)),
            ], audit: [])
            keys.append(swap.swapID)
        }
        try await store.close()
        return keys
    }

    static func station(odoo: OdooStandIn, extra: String = "") throws -> Station {
        try Station(slots: 4, extraConfig: """
        odoo: {base_url: "\(odoo.baseURL)", api_key: test-key, max_in_flight: 4, backoff_base: 0.2, backoff_cap: 1, credentials_delay: 1, request_timeout: 5}
        \(extra)
        """)
    }

    @Test func eachOutcomeClassOverRealHTTP() async throws {
        let odoo = try OdooStandIn(keys: ["test-key"])
        defer { _ = odoo.stop() }
        let st = try Self.station(odoo: odoo)
        defer { st.stop() }
        let keys = try await Self.backlog(st.storePath, count: 6)
        // swap-00000: 503 then ok; swap-00001: validation error (rejected, others continue);
        // then the key expires for a while (credentials: queued, alarm), then comes back.
        try odoo.faults(["status": 503, "count": 1])
        try odoo.faults(["exception": "odoo.exceptions.ValidationError", "count": 1, "message": "Unknown subscription SUB/2026/1"])
        let sub = try st.subscriber()
        try st.startGateway()
        #expect(eventually(timeout: 30) { ((try? odoo.records().count) ?? 0) >= 5 })
        let store = try StationStore(path: st.storePath)
        let rejected = try await store.listUsage(state: .rejected, limit: 10)
        #expect(rejected.count == 1, "\(rejected.map(\.lastError))")
        #expect(rejected.first?.lastError?.contains("ValidationError") == true)
        // Re-send by hand: Odoo takes it now.
        #expect(try await store.resendUsage(key: rejected[0].record.idempotencyKey, now: Date()))
        #expect(await eventuallyAsync(timeout: 30) { ((try? await store.usageStats().settled) ?? 0) == 6 })
        let recorded = try odoo.records().compactMap { $0["idempotency_key"] as? String }
        #expect(Set(recorded) == Set(keys), "\(recorded)")
        // Credentials: a new record while the key is expired stays queued and raises the alarm.
        try odoo.faults(["expire_key": "test-key"])
        _ = try await Self.backlogMore(st.storePath, from: 100)
        #expect(eventually(timeout: 30) { events(in: sub.lines()).contains { $0.type == "gateway.alarm" && $0.string("kind") == "odoo_credentials" } })
        #expect(try await store.usageStats().pending == 1)
        try odoo.faults(["restore_key": "test-key"])
        #expect(await eventuallyAsync(timeout: 30) { ((try? await store.usageStats().pending) ?? 1) == 0 })
        try await store.close()
    }

    static func backlogMore(_ path: String, from: Int) async throws -> String {
        let store = try StationStore(path: path)
        defer { Task { try? await store.close() } }
        let at = Date()
        var swap = SwapRecord(swapID: "swap-\(from)", requestID: "r-\(from)", customerID: "cust-1", planInstanceID: "pi-1",
                              subscriptionRef: "SUB/2026/1", kind: .exchange, returnSlot: 7, issueSlot: 5, family: .mobbat45,
                              recordedOffline: true, acceptedAt: at)
        _ = try await store.insertSwap(swap, events: [], audit: [])
        swap.stage = .completed; swap.finishedAt = at; swap.energyKWh = 2
        let usage = UsageRecord(idempotencyKey: swap.swapID, subscriptionRef: "SUB/2026/1", planInstanceID: "pi-1", customerID: "cust-1",
                                stationID: Station.id, outletCode: "OUT-1", occurredAt: at, recordedOffline: true,
                                lines: [.init(serviceID: "service-swap-count", quantity: 1, unit: "1")], swapID: swap.swapID,
                                batteryOut: .init(id: "B45-n", socPercent: 99, slot: 5), batteryIn: nil)
        _ = try await store.completeSwap(swap, pending: PendingLocalSwap(swapID: swap.swapID, planInstanceID: "pi-1", swaps: 1, energyKWh: 2,
                                                                          returnedBatteryID: nil, issuedBatteryID: nil, completedAt: at),
                                         usage: usage, events: [NewEvent(type: "swap.completed", timestamp: at, data: Array("{}".utf8))], audit: [])
        return swap.swapID
    }

    @Test func outageThenRecoveryDeliversEveryRecordOnceInOrder() async throws {
        let odoo = try OdooStandIn(keys: ["test-key"])
        defer { _ = odoo.stop() }
        let st = try Self.station(odoo: odoo)
        defer { st.stop() }
        let keys = try await Self.backlog(st.storePath, count: 40)
        try odoo.faults(["status": 503, "count": 100_000])      // Odoo down
        try st.startGateway()
        pause(4)
        #expect(try odoo.records().isEmpty)
        let requestsDuringOutage = (try odoo.stats()["requests"] as? Int) ?? 0
        try odoo.faults(["clear": true])                        // back
        #expect(eventually(timeout: 60) { ((try? odoo.records().count) ?? 0) == keys.count })
        let records = try odoo.records()
        let got = records.compactMap { $0["idempotency_key"] as? String }
        #expect(got.count == keys.count && Set(got) == Set(keys))
        // Oldest first, up to the in-flight window: 4 requests at once may reach Odoo in any order among
        // themselves, and a retried one may trail the window it was in.
        let positions = got.compactMap { keys.firstIndex(of: $0) }
        for (i, p) in positions.enumerated() { #expect(abs(p - i) <= 2 * 4, "record \(p) arrived at \(i)") }
        // During the outage the queue paused instead of hammering Odoo (bounded: 4 in flight per backoff window).
        #expect(requestsDuringOutage < 4 * 40, "\(requestsDuringOutage) requests while down")
        let stats = try odoo.stats()
        #expect(((stats["max_in_flight"] as? Int) ?? 99) <= 4)
    }

    @Test func sigkillDuringForwardingStillExactlyOnce() async throws {
        let odoo = try OdooStandIn(keys: ["test-key"])
        defer { _ = odoo.stop() }
        let st = try Self.station(odoo: odoo)
        defer { st.stop() }
        let keys = try await Self.backlog(st.storePath, count: 150)
        try odoo.faults(["latency_ms": 40])
        for _ in 0 ..< 6 {
            let gw = try st.startGateway()
            pause(Double.random(in: 0.3 ... 1.2))
            gw.killHard()
        }
        try st.startGateway()
        #expect(eventually(timeout: 90) { ((try? odoo.records().count) ?? 0) == keys.count })
        let got = try odoo.records().compactMap { $0["idempotency_key"] as? String }
        #expect(got.count == keys.count)                // each key recorded once at Odoo …
        #expect(Set(got) == Set(keys))
        let store = try StationStore(path: st.storePath)
        #expect(await eventuallyAsync(timeout: 30) { ((try? await store.usageStats().settled) ?? 0) == keys.count })   // … and settled once here
        try await store.close()
    }
}
