import Foundation
import Testing
import TestSupport

/// Issue 9 items 3, 5 and 7 end to end: the real swapgate daemon and swapctl against station-sim over
/// Modbus TCP, events seen by an outside `mosquitto_sub` on a real mosquitto.
@Suite(.serialized) struct CabinetTruthTests {
    static func doorEvents(_ sub: MosquittoSubscriber, slot: Int) -> [SeenEvent] {
        events(in: sub.lines()).filter { ($0.type == "slot.door_opened" || $0.type == "slot.door_closed") && $0.int("slot") == slot }
            .reduce(into: [SeenEvent]()) { out, e in if !out.contains(where: { $0.seq == e.seq }) { out.append(e) } }
            .sorted { $0.seq < $1.seq }
    }

    /// A door forced open before a SIGKILL and closed after the restart: the close is unauthorised.
    @Test func forcedDoorClosedAfterARestartIsUnauthorised() throws {
        let st = try Station(slots: 4)
        defer { st.stop() }
        let sub = try st.subscriber()
        try st.startGateway()
        for round in 0 ..< 3 {
            let before = Self.doorEvents(sub, slot: 1).count
            try st.control(["cmd": "open_door", "slot": 1, "force": true])
            #expect(eventually(timeout: 20) { Self.doorEvents(sub, slot: 1).count == before + 1 }, "round \(round)")
            #expect(Self.doorEvents(sub, slot: 1).last?.bool("authorised") == false)
            st.gateway?.killHard()
            // Closed while the gateway is down, or just after it starts again.
            if round % 2 == 0 { try st.control(["cmd": "close_door", "slot": 1]) }
            try st.startGateway()
            if round % 2 == 1 { try st.control(["cmd": "close_door", "slot": 1]) }
            #expect(eventually(timeout: 20) { Self.doorEvents(sub, slot: 1).count == before + 2 }, "round \(round)")
            let closed = Self.doorEvents(sub, slot: 1).last
            #expect(closed?.type == "slot.door_closed", "round \(round)")
            #expect(closed?.bool("authorised") == false, "round \(round): a forced door reported authorised after a restart")
        }
    }

    /// Open, close and open again faster than the poll: every opening has its close, in order.
    @Test func doorCyclesBetweenPollsAlternate() throws {
        let st = try Station(slots: 4)
        defer { st.stop() }
        let sub = try st.subscriber()
        try st.startGateway()
        var opens = 0
        for _ in 0 ..< 8 {
            try st.control(["cmd": "open_door", "slot": 2, "force": true])
            try st.control(["cmd": "close_door", "slot": 2])
            try st.control(["cmd": "open_door", "slot": 2, "force": true])
            opens += 2
            #expect(eventually(timeout: 20) { Self.doorEvents(sub, slot: 2).filter { $0.type == "slot.door_opened" }.count == opens })
            try st.control(["cmd": "close_door", "slot": 2])
            #expect(eventually(timeout: 20) { Self.doorEvents(sub, slot: 2).count == 2 * opens })
        }
        let seen = Self.doorEvents(sub, slot: 2)
        #expect(seen.count == 2 * opens)
        for (i, e) in seen.enumerated() {
            #expect(e.type == (i % 2 == 0 ? "slot.door_opened" : "slot.door_closed"), "event \(i): \(seen.map(\.type))")
            #expect(e.bool("authorised") == false)
        }
    }

    /// `swapctl direct` run after run feeds the watchdog each time (a constant value would not count).
    @Test func everySwapctlDirectRunFeedsTheWatchdog() throws {
        let sim = try SimulatorProcess(["--slots", "2", "--watchdog-timeout", "1000"])
        defer { sim.stop() }
        _ = try sim.control(["cmd": "pause"])
        for run in 0 ..< 4 {
            _ = try sim.control(["cmd": "tick", "seconds": 5])
            let before = try sim.control(["cmd": "watchdog"])["watchdog_seconds"] as? Int
            #expect((before ?? 0) >= 5)
            let r = try runCommand(try productPath("swapctl"), ["direct", "cabinet", "--host", "127.0.0.1", "--port", "\(sim.modbusPort!)"])
            #expect(r.status == 0, "\(r.output)")
            let after = try sim.control(["cmd": "watchdog"])["watchdog_seconds"] as? Int
            #expect(after == 0, "direct run \(run) did not feed the watchdog")
        }
    }

    /// Values as the registers hold them in the control API and telemetry: 59.4, not 59.400000000000006;
    /// probes in place with null for absent ones.
    @Test func controlAPIAndTelemetryShowTheRegistersDecimals() throws {
        let st = try Station(slots: 4)
        defer { st.stop() }
        let sub = try st.subscriber()
        try st.control(["cmd": "remove", "slot": 1])
        try st.control(["cmd": "insert", "slot": 1, "id": "B45-NOISE-1", "family": 2, "soc": 59.4, "soh": 90.7])
        try st.startGateway()
        let r = try st.swapctl(["bms", "1", "--json"])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("59.4"), "\(r.output)")
        #expect(!r.output.contains("0000000") && !r.output.contains("9999999"), "\(r.output)")
        #expect(eventually(timeout: 20) { sub.lines().contains { $0.contains("/telemetry") && $0.contains("B45-NOISE-1") } })
        let telemetry = sub.lines().last { $0.contains("/telemetry") && $0.contains("B45-NOISE-1") } ?? ""
        #expect(telemetry.contains(#""soc":59.4"#), "\(telemetry)")
        #expect(!telemetry.contains("0000000") && !telemetry.contains("9999999"), "\(telemetry)")
    }
}
