import Foundation
import Testing
import TestSupport

/// Trusted time (contract 1.1 "Time") with the real daemon on a board whose clock reads 1970 or a year ahead
/// (SWAPGATE_TEST_BOARD_CLOCK, the test-only board clock TrustedClock reads), while mosquitto, station-sim and the
/// test's ABS (tools/abs_sign.py) keep the real time. Status and metrics say unsynced, a ping's signed issued_at
/// becomes the time base, a swap signed now is judged against it, nothing expired is accepted, the cabinet clock
/// is never set from the wrong clock, and events recorded meanwhile carry clock_trusted: false.
@Suite(.serialized) struct TrustedTimeTests {
    /// Starts the daemon with a board clock (`board`: SWAPGATE_TEST_BOARD_CLOCK, "@1970-01-02T00:00:00Z" or
    /// "+31536000"; TrustedClock.boardClock). Not libfaketime: its timerfd_settime interposition moved the
    /// daemon's monotonic timers (libdispatch's, under Swift's Task.sleep) by the faked offset, so the cabinet
    /// polling slept for decades after its second cycle and no swap could progress (docs/operator.md "Clock").
    static func startGateway(_ st: Station, board: String) throws {
        let g = try ManagedProcess(try productPath("swapgate"), ["run", "-c", st.configPath], name: "swapgate",
                                   environment: ["SWAPGATE_TEST_BOARD_CLOCK": board])
        st.gateway = g
        try g.waitForOutput(timeout: 60) { $0.contains("accepting commands") }
    }

    static func station(_ abs: ABS, extra: String = "") throws -> (Station, MosquittoSubscriber) {
        let st = try Station(slots: 8, extraConfig: "swaps: {return_timeout: 20, pickup_timeout: 15}\n\(extra)",
                             absSection: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        try st.control(["cmd": "rider", "enabled": true, "delay": 1, "step_delay": 0.5,
                        "returns": [["id": "B45-RIDER-01", "family": 2, "soc": 10]]])
        return (st, try st.subscriber())
    }

    static func metrics(_ st: Station) throws -> String {
        try runCommand("/usr/bin/curl", ["-s", "http://127.0.0.1:\(st.metricsPort)/metrics"]).output
    }

    /// The cabinet's clock (holding 1010–1011, u32 unix seconds) as station-sim holds it.
    static func cabinetClock(_ st: Station) throws -> Int {
        let r = try st.sim.control(["cmd": "registers", "type": "holding", "start": 1010, "count": 2])
        let v = try #require(r["values"] as? [Int], "\(r)")
        return v[0] << 16 | v[1]
    }

    /// A signed command with explicit times (RFC 3339), not stamped by abs_sign.py.
    static func timed(_ abs: ABS, _ json: [String: Any], issued: Date, expires: Date) throws -> (String, String) {
        let f = ISO8601DateFormatter()
        var body = json
        let id = "req-\(UUID().uuidString.prefix(12))"
        body["request_id"] = id
        body["issued_at"] = f.string(from: issued)
        body["expires_at"] = f.string(from: expires)
        return (id, try abs.envelope(body, stamp: false))
    }

    func run(board: String, extra: String = "", flagFile: ((Station) -> String)? = nil) async throws {
        let abs = try ABS.generate()
        let (st, sub) = try Self.station(abs, extra: extra)
        defer { st.stop() }
        try Self.startGateway(st, board: board)

        // Unsynced: status (control API and MQTT birth), metrics.
        let status = try #require(try st.swapctlJSON(["status"]) as? [String: Any])
        #expect(status["clock"] as? String == "unsynced", "\(status)")
        #expect(eventually(timeout: 20) { payloads(in: sub.lines(), topicSuffix: "/status").contains { $0["clock"] as? String == "unsynced" } })
        let m0 = try Self.metrics(st)
        #expect(m0.contains("swapgate_clock_synced 0"), "\(m0.suffix(600))")
        #expect(m0.contains("swapgate_clock_base_seconds 0"))

        // No trusted time: the cabinet's clock is not written (station-sim keeps its real clock, not 1970 nor +1 y).
        pause(1.5)
        let real0 = Int(Date().timeIntervalSince1970)
        let cab0 = try Self.cabinetClock(st)
        #expect(Swift.abs(cab0 - real0) < 120, "cabinet clock \(cab0) vs \(real0)")

        // A ping signed now: its issued_at becomes the base (none before: docs/commands.md "Time").
        let ping = try st.command("ping", [:], abs: abs, subscriber: sub)
        #expect(ping["ok"] as? Bool == true, "\(ping)")
        // A ping that expired an hour ago (real time): refused expired against the base, and it moves nothing.
        let now = Date()
        let (oldID, oldEnv) = try Self.timed(abs, [:], issued: now.addingTimeInterval(-7_200), expires: now.addingTimeInterval(-3_600))
        let stale = try st.command("ping", ["request_id": oldID], abs: abs, subscriber: sub, envelope: oldEnv)
        #expect(stale["ok"] as? Bool == false && stale["code"] as? String == "expired", "\(stale)")
        let m1 = try Self.metrics(st)
        let baseLine = try #require(m1.split(separator: "\n").first { $0.hasPrefix("swapgate_clock_base_seconds ") })
        let base = Int(baseLine.split(separator: " ")[1]) ?? 0
        #expect(Swift.abs(base - Int(Date().timeIntervalSince1970)) < 120, "\(baseLine)")
        #expect(m1.contains("swapgate_clock_synced 0"))

        // Judged against the base: an entitlement valid now (real time) and a swap signed now are accepted.
        let snap = try st.command("entitlements", ["kind": "snapshot", "version": 3,
                                                   "entitlements": [SwapTests.entitlement(1, out: ["B45-RIDER-01"])]],
                                  abs: abs, subscriber: sub)
        #expect(snap["ok"] as? Bool == true, "\(snap)")
        // A swap whose expires_at is before the base: refused expired.
        let (expID, expEnv) = try Self.timed(abs, ["customer_id": "cust-1"], issued: Date().addingTimeInterval(-600),
                                             expires: Date().addingTimeInterval(-300))
        let expired = try st.command("swap", ["request_id": expID], abs: abs, subscriber: sub, envelope: expEnv)
        #expect(expired["ok"] as? Bool == false && expired["code"] as? String == "expired", "\(expired)")
        let reply = try st.command("swap", ["customer_id": "cust-1", "channel": "app"], abs: abs, subscriber: sub)
        #expect(reply["ok"] as? Bool == true, "\(reply) \(st.gateway?.output().suffix(2000) ?? "")")
        #expect(eventually(timeout: 60) { events(in: sub.lines()).contains { $0.type == "swap.completed" } },
                "\(st.gateway?.output().suffix(3000) ?? "")")

        // The cabinet's clock, once there is a base, is set from it (real time), never from the board's clock.
        #expect(eventually(timeout: 20) { Swift.abs(((try? Self.cabinetClock(st)) ?? 0) - Int(Date().timeIntervalSince1970)) < 120 })

        // A flag file saying "synchronised" does not make a clock a year off the signed base trusted.
        if let flagFile {
            try "".write(toFile: flagFile(st), atomically: true, encoding: .utf8)
            let s = try #require(try st.swapctlJSON(["status"]) as? [String: Any])
            #expect(s["clock"] as? String == "unsynced", "\(s)")
        }

        // Events recorded while unsynced carry clock_trusted: false (gateway.started, swap.*).
        let seen = events(in: sub.lines())
        let started = try #require(seen.first { $0.type == "gateway.started" })
        #expect(started.bool("clock_trusted") == false, "\(started.data)")
        let completed = try #require(seen.first { $0.type == "swap.completed" })
        #expect(completed.bool("clock_trusted") == false)
    }

    @Test func aBoardClockIn1970IsUnsyncedAndCommandsAreJudgedAgainstTheSignedBase() async throws {
        try await run(board: "@1970-01-02T00:00:00Z")
    }

    @Test func aBoardClockAYearAheadIsUnsyncedAndCommandsAreJudgedAgainstTheSignedBase() async throws {
        // The container's kernel clock is synchronised (the host's): a board whose NTP never synchronised is
        // reproduced by clock.sync_flag naming a file that does not exist (systemd-timesyncd's flag file).
        let flag = "synchronized"
        try await run(board: "+31536000", extra: "clock: {sync_flag: SYNCFLAG}".replacingOccurrences(of: "SYNCFLAG", with: "/tmp/swapgate-test-\(getpid())-\(flag)"),
                      flagFile: { _ in "/tmp/swapgate-test-\(getpid())-\(flag)" })
        try? FileManager.default.removeItem(atPath: "/tmp/swapgate-test-\(getpid())-\(flag)")
    }

    @Test func clockTrustSystemSaysSyncedEvenIn1970() async throws {
        let abs = try ABS.generate()
        let (st, sub) = try Self.station(abs, extra: "clock: {trust: system}")
        defer { st.stop() }
        try Self.startGateway(st, board: "@1970-01-02T00:00:00Z")
        let status = try #require(try st.swapctlJSON(["status"]) as? [String: Any])
        #expect(status["clock"] as? String == "synced", "\(status)")
        #expect(try Self.metrics(st).contains("swapgate_clock_synced 1"))
        #expect(eventually(timeout: 20) { events(in: sub.lines()).contains { $0.type == "gateway.started" } })
        #expect(events(in: sub.lines()).first { $0.type == "gateway.started" }?.bool("clock_trusted") == nil)
    }
}
