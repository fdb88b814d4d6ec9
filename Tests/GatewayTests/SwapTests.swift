import Foundation
import StationDomain
import StationStore
import Testing
import TestSupport

/// The swap end to end: a signed entitlement snapshot and signed swap requests from "ABS" (tools/abs_sign.py +
/// mosquitto_pub), swapgate deciding and driving station-sim's doors, the simulated rider answering.
@Suite(.serialized) struct SwapTests {
    static func entitlement(_ n: Int, family: String = "MOBBAT-45AH", out: [String], used: Int = 12, quota: Int = 60,
                            status: String = "active", network: String = "NET-TEST", maxBatteries: Int = 1,
                            from: Double = -86_400, until: Double = 86_400 * 20) -> [String: Any] {
        let f = ISO8601DateFormatter()
        return ["plan_instance_id": "pi-\(n)", "customer_id": "cust-\(n)", "subscription_ref": "SUB/2026/\(n)",
                "status": status, "valid_from": f.string(from: Date().addingTimeInterval(from)),
                "valid_until": f.string(from: Date().addingTimeInterval(until)), "network_code": network,
                "battery_family": family, "swap_quota": quota, "swaps_used": used, "energy_quota_kwh": 129.6,
                "energy_used_kwh": 20.0, "overage_allowed": false, "max_batteries": maxBatteries, "batteries_out": out, "version": 1]
    }

    /// 8 slots, mixed fill: families 1,2,3,1,2,3 in slots 1–6 (slots 1 and 5 full), 7 and 8 empty.
    static func station(_ abs: ABS, extra: String = "") throws -> (Station, MosquittoSubscriber) {
        let st = try Station(slots: 8, extraConfig: "swaps: {return_timeout: 20, pickup_timeout: 15}\n\(extra)",
                             absSection: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        try st.control(["cmd": "rider", "enabled": true, "delay": 1, "step_delay": 0.5,
                        "returns": [["id": "B45-RIDER-01", "family": 2, "soc": 10], ["id": "B45-RIDER-02", "family": 2, "soc": 12]]])
        let sub = try st.subscriber()
        try st.startGateway()
        return (st, sub)
    }

    @Test func exchangeCompletesWithOneUsageRecordAndCustodyChange() async throws {
        let abs = try ABS.generate()
        let (st, sub) = try Self.station(abs)
        defer { st.stop() }
        let snap = try st.command("entitlements", ["kind": "snapshot", "version": 10,
                                                   "entitlements": [Self.entitlement(1, out: ["B45-RIDER-01"]),
                                                                                   Self.entitlement(2, family: "MOBBAT-30AH", out: [])]],
                                  abs: abs, subscriber: sub)
        #expect(snap["ok"] as? Bool == true, "\(snap)")
        let reply = try st.command("swap", ["customer_id": "cust-1", "channel": "app"], abs: abs, subscriber: sub)
        #expect(reply["ok"] as? Bool == true, "\(reply)")
        let swapID = (reply["data"] as? [String: Any])?["swap_id"] as? String
        #expect(swapID != nil)
        #expect(eventually(timeout: 60) { events(in: sub.lines()).contains { $0.type == "swap.completed" } }, "\(st.gateway?.output().suffix(3000) ?? "")")
        let completed = events(in: sub.lines()).first { $0.type == "swap.completed" }
        #expect(completed?.string("swap_id") == swapID)
        let batteryIn = completed?.object("battery_in")
        let batteryOut = completed?.object("battery_out")
        #expect(batteryIn?["id"] as? String == "B45-RIDER-01")
        #expect(batteryOut?["slot"] as? Int == 5)           // the full 45 Ah battery
        #expect(batteryIn?["slot"] as? Int == 7)            // the first empty slot
        #expect((completed?.double("energy_kwh") ?? 0) > 0)
        #expect(events(in: sub.lines()).filter { $0.type == "swap.accepted" }.count == 1)

        // The store: one completed swap, one usage record keyed by the swap id, counters and custody updated.
        let store = try StationStore(path: st.storePath)
        #expect(try await store.swapCount(stage: .completed) == 1)
        let usage = try await store.listUsage(state: nil, limit: 10)
        #expect(usage.count == 1 && usage.first?.record.idempotencyKey == swapID)
        #expect(usage.first?.record.lines.map(\.serviceID) == ["service-swap-count", "service-energy-gage"])
        let effective = try #require(try await store.effectiveEntitlement(planInstanceID: "pi-1"))
        #expect(effective.swapsUsed == 13)
        #expect(effective.batteriesOut == [batteryOut?["id"] as? String ?? "?"])
        // The cabinet executed exactly one unlock per door.
        let log = try st.sim.control(["cmd": "log"])
        let unlocks = ((log["commands"] as? [[String: Any]]) ?? []).filter { $0["cmd"] as? Int == 1 }
        #expect(unlocks.map { $0["slot"] as? Int } == [7, 5], "\(unlocks)")

        // First issue for a rider holding nothing: no return door; the full 30 Ah battery of slot 1.
        let first = try st.command("swap", ["customer_id": "cust-2"], abs: abs, subscriber: sub)
        #expect(first["ok"] as? Bool == true, "\(first)")
        #expect(eventually(timeout: 60) { events(in: sub.lines()).filter { $0.type == "swap.completed" }.count == 2 })
        try await store.close()
    }

    @Test func everyRefusalCodeAndForgedExpiredReplayedMalformedCommands() async throws {
        let abs = try ABS.generate()
        let (st, sub) = try Self.station(abs)
        defer { st.stop() }
        let ents = [
            Self.entitlement(1, out: ["B45-RIDER-01"], used: 60, quota: 60),             // quota exhausted
            Self.entitlement(2, out: ["B45-X"], status: "inactive"),
            Self.entitlement(3, out: ["B45-X"], from: 86_400),                            // not yet valid
            Self.entitlement(4, out: ["B45-X"], network: "ELSEWHERE"),
            Self.entitlement(5, out: ["B45-X", "B45-Y"]),                                 // holds 2, may hold 1
            Self.entitlement(6, family: "MOBBAT-100AH", out: ["B100-X"]),                 // none ready (all charging)
            Self.entitlement(7, out: ["B45-RIDER-01"]),
        ]
        #expect(try st.command("entitlements", ["kind": "snapshot", "version": 1, "entitlements": ents], abs: abs, subscriber: sub)["ok"] as? Bool == true)
        func code(_ customer: String) throws -> String? {
            try st.command("swap", ["customer_id": customer], abs: abs, subscriber: sub)["code"] as? String
        }
        #expect(try code("cust-404") == "unknown_customer")
        #expect(try code("cust-1") == "quota_exhausted")
        #expect(try code("cust-2") == "inactive")
        #expect(try code("cust-3") == "outside_validity")
        #expect(try code("cust-4") == "not_in_network")
        #expect(try code("cust-5") == "custody_limit")
        #expect(try code("cust-6") == "no_ready_battery")
        try st.control(["cmd": "set_flags", "estop": true])
        try await Task.sleep(for: .seconds(1))
        #expect(try code("cust-7") == "safe_mode")
        try st.control(["cmd": "set_flags", "estop": false])
        try await Task.sleep(for: .seconds(1))

        // Forged: signed by another key under our kid.
        let forger = try ABS.generate()
        let forged = try st.command("swap", ["customer_id": "cust-7"], abs: forger, subscriber: sub, unverifiable: true)
        #expect(forged["code"] as? String == "bad_signature")
        #expect(forged["request_id"] == nil || forged["request_id"] is NSNull)
        // Expired.
        let f = ISO8601DateFormatter()
        let expired = try st.command("swap", ["customer_id": "cust-7", "issued_at": f.string(from: Date().addingTimeInterval(-600)),
                                              "expires_at": f.string(from: Date().addingTimeInterval(-60))], abs: abs, subscriber: sub)
        #expect(expired["code"] as? String == "expired")
        // Malformed (no customer).
        #expect(try st.command("swap", ["channel": "app"], abs: abs, subscriber: sub)["code"] as? String == "malformed")
        // Replayed: the same signed envelope twice.
        let env = try abs.envelope(["request_id": "replay-1", "customer_id": "cust-404"])
        _ = try st.command("swap", ["request_id": "replay-1"], abs: abs, subscriber: sub, envelope: env)
        try st.broker.publish(topic: "cmd/V01/BSS/\(Station.id)/swap", message: env, qos: 1)
        #expect(eventually(timeout: 20) {
            payloads(in: sub.lines(), topicSuffix: "/reply").filter { $0["request_id"] as? String == "replay-1" }.count == 2
        })
        let replies = payloads(in: sub.lines(), topicSuffix: "/reply").filter { $0["request_id"] as? String == "replay-1" }
        #expect(replies.last?["code"] as? String == "replayed")
        // Nothing of this changed anything: no swap accepted, no door unlocked.
        #expect(!events(in: sub.lines()).contains { $0.type == "swap.accepted" })
        let log = try st.sim.control(["cmd": "log"])
        #expect(((log["commands"] as? [[String: Any]]) ?? []).filter { $0["cmd"] as? Int == 1 }.isEmpty)
        // Every refusal was recorded as swap.rejected with its code.
        #expect(events(in: sub.lines()).filter { $0.type == "swap.rejected" }.count >= 8)
    }

    @Test func snapshotAndDeltaSequencingWithAGap() async throws {
        let abs = try ABS.generate()
        let (st, sub) = try Self.station(abs)
        defer { st.stop() }
        #expect(try st.command("entitlements", ["kind": "snapshot", "version": 100, "entitlements": [Self.entitlement(1, out: [])]],
                               abs: abs, subscriber: sub)["ok"] as? Bool == true)
        let delta = try st.command("entitlements", ["kind": "delta", "base_version": 100, "version": 101,
                                                    "upsert": [Self.entitlement(2, out: [])], "remove": ["pi-1"]], abs: abs, subscriber: sub)
        #expect(delta["ok"] as? Bool == true, "\(delta)")
        let gap = try st.command("entitlements", ["kind": "delta", "base_version": 105, "version": 106,
                                                  "upsert": [Self.entitlement(3, out: [])], "remove": []], abs: abs, subscriber: sub)
        #expect(gap["ok"] as? Bool == false)
        #expect(gap["code"] as? String == "need_snapshot")
        // The cache is as it was: cust-1 removed, cust-2 present, cust-3 not applied.
        #expect(try st.command("swap", ["customer_id": "cust-1"], abs: abs, subscriber: sub)["code"] as? String == "unknown_customer")
        #expect(try st.command("swap", ["customer_id": "cust-3"], abs: abs, subscriber: sub)["code"] as? String == "unknown_customer")
        let ok = try st.command("swap", ["customer_id": "cust-2"], abs: abs, subscriber: sub)
        #expect(ok["ok"] as? Bool == true, "\(ok)")
        #expect(events(in: sub.lines()).filter { $0.type == "entitlements.applied" }.count == 2)
    }
}

/// swaps.max_concurrent above 1: the store must take as many swaps in progress as the configuration allows
/// (it refused the second one before, whatever the setting).
@Suite(.serialized) struct ConcurrentSwapTests {
    @Test func twoSwapsAtOnceWhenTheStationAllowsTwo() throws {
        let abs = try ABS.generate()
        let st = try Station(slots: 8, extraConfig: "swaps: {return_timeout: 30, pickup_timeout: 30, max_concurrent: 2}",
                             absSection: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        defer { st.stop() }
        let sub = try st.subscriber()
        try st.startGateway()
        let snap = try st.command("entitlements", ["kind": "snapshot", "version": 1, "entitlements": [
            SwapTests.entitlement(1, out: []), SwapTests.entitlement(2, family: "MOBBAT-30AH", out: []),
            SwapTests.entitlement(3, family: "MOBBAT-30AH", out: []),
        ]], abs: abs, subscriber: sub)
        #expect(snap["ok"] as? Bool == true, "\(snap)")
        // No rider: both swaps stay in progress (doors unlocked, batteries not taken).
        let first = try st.command("swap", ["customer_id": "cust-1"], abs: abs, subscriber: sub)
        let second = try st.command("swap", ["customer_id": "cust-2"], abs: abs, subscriber: sub)
        #expect(first["ok"] as? Bool == true, "\(first)")
        #expect(second["ok"] as? Bool == true, "\(second)")
        let third = try st.command("swap", ["customer_id": "cust-3"], abs: abs, subscriber: sub)
        #expect(third["ok"] as? Bool == false && third["code"] as? String == "station_busy", "\(third)")
        let status = try #require(try st.swapctlJSON(["status"]) as? [String: Any])
        #expect(status["swapsInProgress"] as? Int == 2)
    }
}
