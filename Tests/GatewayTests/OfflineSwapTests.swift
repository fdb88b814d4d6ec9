import Foundation
import StationStore
import Testing
import TestSupport

/// The uplink is down (broker and Odoo unreachable): a swap relayed by the station's local terminal (the
/// control API's `swap`, as `swapctl swap`) is decided from the cached entitlements, driven to completion,
/// recorded with `recorded_offline: true`, and its event and usage record leave when the links come back.
@Suite(.serialized) struct OfflineSwapTests {
    @Test func aSwapDecidedOfflineIsDeliveredOnceTheLinksReturn() async throws {
        let odoo = try OdooStandIn(keys: ["test-key"])
        defer { _ = odoo.stop() }
        let abs = try ABS.generate()
        let st = try Station(slots: 8, extraConfig: """
        swaps: {return_timeout: 20, pickup_timeout: 15}
        odoo: {base_url: "\(odoo.baseURL)", api_key: test-key, backoff_base: 0.2, backoff_cap: 1, request_timeout: 5}
        """, absSection: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        defer { st.stop() }
        try st.control(["cmd": "rider", "enabled": true, "delay": 1, "step_delay": 0.5,
                        "returns": [["id": "B45-RIDER-01", "family": 2, "soc": 10]]])
        let subArgs = ["-c", "-i", "e2e-offline-sub"]
        let sub1 = try st.subscriber(extra: subArgs)
        try st.startGateway()
        let snap = try st.command("entitlements", ["kind": "snapshot", "version": 3,
                                                   "entitlements": [SwapTests.entitlement(1, out: ["B45-RIDER-01"])]],
                                  abs: abs, subscriber: sub1)
        #expect(snap["ok"] as? Bool == true, "\(snap)")

        // The uplink goes: Odoo answers 503, the broker is gone.
        try odoo.faults(["status": 503, "count": 100_000])
        st.broker.stop()
        #expect(eventually(timeout: 30, interval: 0.2) {
            ((try? st.swapctlJSON(["status"]) as? [String: Any])?["broker"] as? [String: Any])?["up"] as? Bool == false
        })

        let reply = try #require(try st.swapctlJSON(["swap", "cust-1"]) as? [String: Any])
        #expect(reply["accepted"] as? Bool == true, "\(reply)")
        var completed: [[String: Any]] = []
        #expect(eventually(timeout: 60, interval: 0.3) {
            completed = ((try? st.swapctlJSON(["events", "--type", "swap.completed"])) as? [[String: Any]]) ?? []
            return completed.count == 1
        }, "\(st.gateway?.output().suffix(3000) ?? "")")
        let data = try #require(try JSONSerialization.jsonObject(with: Data(((completed.first?["data"] as? String) ?? "{}").utf8)) as? [String: Any])
        #expect(data["recorded_offline"] as? Bool == true, "\(data)")
        #expect(completed.first?["sent"] as? Bool == false)
        let swapID = try #require(data["swap_id"] as? String)
        let queued = try #require(try st.swapctlJSON(["usage", "list", "--state", "pending"]) as? [[String: Any]])
        #expect(queued.count == 1 && queued.first?["key"] as? String == swapID, "\(queued)")
        #expect(((queued.first?["record"] as? [String: Any])?["recordedOffline"] as? Bool) == true)
        #expect(try odoo.records().isEmpty)
        // The technician sees both links down, with the reason (once the forwarder has tried Odoo).
        var status: [String: Any] = [:]
        #expect(eventually(timeout: 20, interval: 0.3) {
            status = ((try? st.swapctlJSON(["status"])) as? [String: Any]) ?? [:]
            // "unknown" until the forwarder's first attempt fails, then "down" with the reason.
            return (status["odoo"] as? [String: Any])?["state"] as? String == "down"
        }, "\(status)")
        #expect((status["odoo"] as? [String: Any])?["up"] as? Bool == false)
        #expect(((status["alarms"] as? [String]) ?? []).contains { $0.hasPrefix("odoo not reachable") }, "\(status)")

        // The links come back: the event reaches ABS and the usage record Odoo, once each, still marked offline.
        try odoo.reset()
        try st.broker.restart()
        let sub2 = try st.subscriber(extra: subArgs)
        #expect(eventually(timeout: 60) {
            events(in: sub1.lines() + sub2.lines()).contains { $0.type == "swap.completed" && $0.string("swap_id") == swapID }
        })
        let seen = try #require(events(in: sub1.lines() + sub2.lines()).first { $0.type == "swap.completed" })
        #expect(seen.bool("recorded_offline") == true)
        expectGapFree(events(in: sub1.lines() + sub2.lines()))
        #expect(eventually(timeout: 60) { ((try? odoo.records()) ?? []).count == 1 })
        let record = try #require(try odoo.records().first)
        #expect(record["idempotency_key"] as? String == swapID)
        #expect((record["params"] as? [String: Any])?["recorded_offline"] as? Bool == true)
        let store = try StationStore(path: st.storePath)
        #expect(try await store.swapCount(stage: .completed) == 1)
        #expect(await eventuallyAsync(timeout: 30) { ((try? await store.usageStats().settled) ?? 0) == 1 })
        try await store.close()
    }
}
