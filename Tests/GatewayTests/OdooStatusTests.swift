import Foundation
import StationDomain
import StationStore
import Testing
import TestSupport

/// What `swapctl status`, `/health` and ABS learn about Odoo is what is known: `unknown` before anything was
/// tried, `down` with the reason after a failed attempt, `alarm` while the credentials are refused (persisted
/// across restarts, cleared locally and toward ABS when Odoo accepts again), `up` once Odoo gave a verdict.
/// And the outbox rows say how often each record was tried, with no stale error once settled.
@Suite(.serialized) struct OdooStatusTests {
    static func odoo(_ st: Station) throws -> [String: Any] {
        let status = try #require(try st.swapctlJSON(["status"]) as? [String: Any])
        return status["odoo"] as? [String: Any] ?? [:]
    }

    static func state(_ st: Station) -> String? { (try? odoo(st))?["state"] as? String }

    static func health(_ st: Station) throws -> (code: Int, body: [String: Any]) {
        let r = try runCommand("/usr/bin/curl", ["-s", "-w", "\n%{http_code}", "http://127.0.0.1:\(st.metricsPort)/health"])
        let lines = r.output.split(separator: "\n", omittingEmptySubsequences: false)
        let body = (try? JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8))) as? [String: Any] ?? [:]
        return (Int(lines.last ?? "") ?? 0, body)
    }

    static func alarms(_ seen: [SeenEvent], active: Bool) -> [SeenEvent] {
        seen.filter { $0.type == "gateway.alarm" && $0.string("kind") == "odoo_credentials" && $0.bool("active") == active }
    }

    @Test func unknownUntilTriedThenDownWithTheReasonThenUp() async throws {
        let odoo = try OdooStandIn(keys: ["test-key"])
        defer { _ = odoo.stop() }
        let st = try UsageForwardingTests.station(odoo: odoo)
        defer { st.stop() }
        try odoo.faults(["reset": true])              // every request: the connection is reset, no answer
        try st.startGateway()
        // Fresh start, empty outbox: nothing is known about Odoo.
        #expect(Self.state(st) == "unknown")
        #expect(try Self.odoo(st)["up"] as? Bool == false)
        pause(1.5)                                    // several idle passes of the forwarder: still nothing tried
        #expect(Self.state(st) == "unknown")
        // A record to send: the attempt fails, Odoo is down with the reason; swaps go on (/health 200).
        _ = try await UsageForwardingTests.backlogMore(st.storePath, from: 1)
        #expect(eventually(timeout: 30, interval: 0.2) { Self.state(st) == "down" })
        let down = try Self.odoo(st)
        #expect(down["up"] as? Bool == false && (down["lastError"] as? String)?.isEmpty == false, "\(down)")
        let alarms = (try st.swapctlJSON(["status"]) as? [String: Any])?["alarms"] as? [String] ?? []
        #expect(alarms.contains { $0.hasPrefix("odoo not reachable") }, "\(alarms)")
        let h = try Self.health(st)
        #expect(h.code == 200 && h.body["odoo"] as? String == "down", "\(h)")
        // After a restart nothing is known again until the forwarder tries; then down again (still unreachable).
        st.gateway?.killHard()
        try st.startGateway()
        #expect(eventually(timeout: 30, interval: 0.2) { Self.state(st) == "down" })
        // Odoo comes back: up.
        try odoo.faults(["clear": true])
        #expect(eventually(timeout: 30, interval: 0.2) { Self.state(st) == "up" })
        #expect(try Self.odoo(st)["up"] as? Bool == true)
        #expect(try Self.odoo(st)["lastError"] == nil)
    }

    @Test func credentialsAlarmPersistsAcrossSigkillAndIsClearedBothWays() async throws {
        let odoo = try OdooStandIn(keys: ["test-key"], extraArguments: ["--auth-failure-http", "401"])
        defer { _ = odoo.stop() }
        // A long credentials delay: after a restart the forwarder does not try again on its own, so what the
        // status says then comes from what was persisted, not from a new attempt.
        let st = try Station(slots: 4, extraConfig: """
        odoo: {base_url: "\(odoo.baseURL)", api_key: test-key, max_in_flight: 4, backoff_base: 0.2, backoff_cap: 1, credentials_delay: 3600, request_timeout: 5}
        """)
        defer { st.stop() }
        let keys = try await UsageForwardingTests.backlog(st.storePath, count: 1)
        try odoo.faults(["expire_key": "test-key"])   // HTTP 401
        let sub = try st.subscriber()
        try st.startGateway()
        #expect(eventually(timeout: 30) { Self.alarms(events(in: sub.lines()), active: true).count == 1 })
        #expect(eventually(timeout: 10, interval: 0.2) { Self.state(st) == "alarm" })
        var h = try Self.health(st)
        #expect(h.code == 200, "credentials refused: usage cannot be billed, swaps go on: \(h)")
        #expect(h.body["odoo"] as? String == "alarm" && ((h.body["warnings"] as? [String]) ?? []).contains { $0.hasPrefix("odoo: credentials") }, "\(h)")

        for round in 0 ..< 3 {
            st.gateway?.killHard()
            try st.startGateway()
            let odooNow = try Self.odoo(st)
            #expect(odooNow["state"] as? String == "alarm", "round \(round): \(odooNow)")
            #expect((odooNow["lastError"] as? String)?.hasPrefix("credentials") == true, "round \(round): \(odooNow)")
            h = try Self.health(st)
            #expect(h.code == 200 && h.body["odoo"] as? String == "alarm", "round \(round): \(h)")
            let metrics = try runCommand("/usr/bin/curl", ["-s", "http://127.0.0.1:\(st.metricsPort)/metrics"]).output
            #expect(metrics.contains("swapgate_odoo_credentials_alarm 1"), "round \(round)")
        }
        // Odoo takes the key again; the technician re-queues the record at once (it waits 3600 s otherwise).
        try odoo.faults(["restore_key": "test-key"])
        let resend = try st.swapctl(["usage", "resend", keys[0]])
        #expect(resend.status == 0, "\(resend.output)")
        #expect(eventually(timeout: 30, interval: 0.2) { Self.state(st) == "up" })
        #expect(eventually(timeout: 30) { Self.alarms(events(in: sub.lines()), active: false).count == 1 },
                "the alarm is cleared toward ABS: \(Self.alarms(events(in: sub.lines()), active: false).count)")
        h = try Self.health(st)
        #expect(h.code == 200 && h.body["odoo"] as? String == "up" && ((h.body["warnings"] as? [String]) ?? []).isEmpty, "\(h)")
        // Cleared for good: a restart with nothing pending knows nothing of Odoo, and raises no alarm.
        st.gateway?.killHard()
        try st.startGateway()
        #expect(Self.state(st) == "unknown")
        let seen = events(in: sub.lines())
        #expect(Self.alarms(seen, active: true).count == 1, "one alarm per episode, not one per restart")
        #expect(Self.alarms(seen, active: false).count == 1)
        expectGapFree(seen)
    }

    @Test func usageRowsCountEveryAttemptAndSettledRowsHaveNoError() async throws {
        let odoo = try OdooStandIn(keys: ["test-key"])
        defer { _ = odoo.stop() }
        let st = try UsageForwardingTests.station(odoo: odoo)
        defer { st.stop() }
        let keys = try await UsageForwardingTests.backlog(st.storePath, count: 1)
        try odoo.faults(["status": 503, "count": 2])
        try st.startGateway()
        func row(_ key: String) -> [String: Any]? {
            ((try? st.swapctlJSON(["usage", "list"])) as? [[String: Any]])?.first { $0["key"] as? String == key }
        }
        #expect(eventually(timeout: 30, interval: 0.2) { row(keys[0])?["state"] as? String == "settled" })
        let settled = try #require(row(keys[0]))
        #expect(settled["attempts"] as? Int == 3, "two 503s and the one Odoo recorded: \(settled)")
        #expect(settled["lastError"] == nil, "a settled record has no error left: \(settled)")
        #expect(try odoo.attempts(keys[0]) == 3)
        // A rejection is an attempt too.
        try odoo.faults(["exception": "odoo.exceptions.ValidationError", "count": 1, "message": "Unknown subscription"])
        let key = try await UsageForwardingTests.backlogMore(st.storePath, from: 7)
        #expect(eventually(timeout: 30, interval: 0.2) { row(key)?["state"] as? String == "rejected" })
        let rejected = try #require(row(key))
        #expect(rejected["attempts"] as? Int == 1, "\(rejected)")
        #expect((rejected["lastError"] as? String)?.contains("ValidationError") == true)
        // The same offline on the database file (read-only), through the daemon's binary.
        let direct = try runCommand(try productPath("swapgate"), ["store", "usage", "list", "--store", st.storePath, "--json"])
        let rows = (try? JSONSerialization.jsonObject(with: Data(direct.output.utf8))) as? [[String: Any]] ?? []
        #expect(rows.first { $0["key"] as? String == keys[0] }?["attempts"] as? Int == 3, "\(direct.output)")
    }

    /// A slow Odoo and a station restarted more often than a pass takes: each record is settled as its answer
    /// arrives, so every restart makes progress and the re-sends stop.
    @Test func slowOdooAndRepeatedSigkillsConverge() async throws {
        let odoo = try OdooStandIn(keys: ["test-key"])
        defer { _ = odoo.stop() }
        let st = try UsageForwardingTests.station(odoo: odoo)
        defer { st.stop() }
        let count = 24
        let keys = try await UsageForwardingTests.backlog(st.storePath, count: count)
        try odoo.faults(["latency_ms": 400])          // a pass of 24 records, 4 at a time, takes ~2.4 s
        func answered() -> Int {
            let s = (try? odoo.stats()) ?? [:]
            return ((s["recorded"] as? Int) ?? 0) + ((s["duplicates"] as? Int) ?? 0)
        }
        func settledHere() async throws -> Int {
            let store = try StationStore(path: st.storePath)
            defer { Task { try? await store.close() } }
            return try await store.usageStats().settled
        }
        var settled = 0
        var rounds = 0
        while settled < count && rounds < 15 {
            rounds += 1
            // Requests of the killed daemon still in flight at Odoo end first: they are not this run's.
            #expect(eventually(timeout: 30, interval: 0.05) { ((try? odoo.stats())?["in_flight"] as? Int) == 0 })
            let base = answered()
            let gw = try st.startGateway()
            // Killed mid-pass: once Odoo has answered 8 requests of this run (two windows of 4; a pass is 24).
            #expect(eventually(timeout: 60, interval: 0.02) { answered() >= base + 8 || (settled + answered() - base) >= count })
            if answered() < base + 8 {
                // The last records: Odoo answered them all; a kill right now could come before the daemon commits
                // their marks (a race of this test, not a lost record), so let one mark land first.
                _ = await eventuallyAsync(timeout: 30) { ((try? await settledHere()) ?? 0) > settled }
            }
            gw.killHard()
            let now = try await settledHere()
            #expect(now > settled, "round \(rounds): no record settled although Odoo answered \(answered() - base) (settled \(now))")
            if now <= settled { break }
            settled = now
        }
        // Whatever is left goes without kills; then a restart sends nothing more.
        try st.startGateway()
        #expect(await eventuallyAsync(timeout: 60) { ((try? await settledHere()) ?? 0) == count })
        let got = try odoo.records().compactMap { $0["idempotency_key"] as? String }
        #expect(got.count == count && Set(got) == Set(keys), "each record recorded once at Odoo")
        let requests = (try odoo.stats()["requests"] as? Int) ?? 0
        #expect(requests <= count + rounds * 8, "\(requests) requests for \(count) records over \(rounds) kills")
        st.gateway?.killHard()
        try st.startGateway()
        pause(2)
        #expect((try odoo.stats()["requests"] as? Int) == requests, "re-sends stopped")
    }
}
