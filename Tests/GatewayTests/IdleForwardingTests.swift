import Foundation
import StationDomain
import StationStore
import Testing
import TestSupport

/// Issue 13 item 4: the Odoo forwarder no longer reads its outbox on a period; it waits for a wake-up (a record
/// committed by the daemon, a write to the database by another process) or the next retry deadline. If a wake-up
/// path were missing, a record written after an idle period would never leave: these records must reach the real
/// Odoo stand-in.
@Suite(.serialized) struct IdleForwardingTests {
    @Test func usageRecordsAfterLongIdleStillReachOdoo() async throws {
        let odoo = try OdooStandIn(keys: ["test-key"])
        defer { _ = odoo.stop() }
        let abs = try ABS.generate()
        let st = try Station(slots: 8, extraConfig: """
        odoo: {base_url: "\(odoo.baseURL)", api_key: test-key, max_in_flight: 4, backoff_base: 0.2, backoff_cap: 1, credentials_delay: 1, request_timeout: 5}
        swaps: {return_timeout: 20, pickup_timeout: 15}
        """, absSection: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        defer { st.stop() }
        try st.control(["cmd": "rider", "enabled": true, "delay": 1, "step_delay": 0.5,
                        "returns": [["id": "B45-RIDER-01", "family": 2, "soc": 10]]])
        let sub = try st.subscriber()
        try st.startGateway()
        let snapshot = try st.command("entitlements", ["kind": "snapshot", "version": 1,
                                                       "entitlements": [SwapTests.entitlement(1, out: ["B45-RIDER-01"])]],
                                      abs: abs, subscriber: sub)
        #expect(snapshot["ok"] as? Bool == true, "\(snapshot)")

        // Idle, nothing queued: the forwarder sleeps with no deadline and asks Odoo nothing.
        pause(6)
        #expect((try odoo.stats()["requests"] as? Int) == 0)

        // 1. A swap completed by the daemon itself: its commit wakes the forwarder.
        let reply = try st.command("swap", ["customer_id": "cust-1"], abs: abs, subscriber: sub)
        #expect(reply["ok"] as? Bool == true, "\(reply)")
        #expect(eventually(timeout: 60) { events(in: sub.lines()).contains { $0.type == "swap.completed" } },
                "\(st.gateway?.output().suffix(3000) ?? "")")
        let swapID = try #require(events(in: sub.lines()).first { $0.type == "swap.completed" }?.string("swap_id"))
        #expect(eventually(timeout: 30) { ((try? odoo.records()) ?? []).contains { $0["idempotency_key"] as? String == swapID } })

        // 2. After another idle period, a record written by another process (this one): the write to the
        // database's WAL wakes the forwarder.
        pause(6)
        let other = try await UsageForwardingTests.backlogMore(st.storePath, from: 900)
        #expect(eventually(timeout: 30) { ((try? odoo.records()) ?? []).contains { $0["idempotency_key"] as? String == other } })
        let recorded = try odoo.records().compactMap { $0["idempotency_key"] as? String }
        #expect(recorded.filter { $0 == swapID }.count == 1 && recorded.filter { $0 == other }.count == 1, "\(recorded)")
    }
}
