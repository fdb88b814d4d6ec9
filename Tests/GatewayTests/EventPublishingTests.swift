import Foundation
import Testing
import TestSupport

/// The ABS contract end to end: swapgate reads station-sim over Modbus TCP and publishes to a real
/// mosquitto; `mosquitto_sub` is the outside peer that checks what arrives.
@Suite(.serialized) struct EventPublishingTests {
    @Test func scriptedScenarioArrivesInOrderWithRetainedStatusInventoryAndWill() throws {
        let st = try Station(slots: 8)
        defer { st.stop() }
        let sub = try st.subscriber()
        let gw = try st.startGateway()
        _ = gw
        // First sight: gateway.started and every battery present (slots 1–6 of the mixed fill).
        try sub.waitForLines(1, timeout: 30)
        #expect(eventually(timeout: 30) { events(in: sub.lines()).filter { $0.type == "battery.inserted" }.count >= 6 })

        try st.control(["cmd": "insert", "slot": 8, "id": "B45-E2E-0001", "family": 2, "soc": 15])
        try st.control(["cmd": "open_door", "slot": 1, "force": true])
        try st.control(["cmd": "close_door", "slot": 1])
        try st.control(["cmd": "fault", "kind": "bms_link_lost", "slot": 2])
        try st.control(["cmd": "fault", "kind": "battery_flags", "slot": 3, "protection": 16, "warning": 0])
        try st.control(["cmd": "set_flags", "tamper": true])
        try st.control(["cmd": "remove", "slot": 4])
        let wanted = ["battery.inserted", "slot.door_opened", "slot.door_closed", "slot.fault", "battery.alarm",
                      "battery.quarantined", "cabinet.alarm", "battery.removed"]
        let complete = eventually(timeout: 40) {
            let types = Set(events(in: sub.lines()).filter { $0.seq > 7 }.map(\.type))
            return wanted.allSatisfy(types.contains)
        }
        let seen = events(in: sub.lines())
        #expect(complete, "saw \(seen.map(\.type))")
        expectGapFree(seen)
        #expect(seen.map(\.seq) == seen.map(\.seq).sorted(), "out of order")
        #expect(seen.first?.type == "gateway.started")
        #expect(seen.allSatisfy { $0.topic == "dt/V01/BSS/\(Station.id)/evt/\($0.type)" })
        // Payloads carry what the contract lists.
        let inserted = seen.first { $0.type == "battery.inserted" && $0.int("slot") == 8 }
        #expect(inserted?.string("battery_id") == "B45-E2E-0001")
        #expect(inserted?.data["soc"] != nil && inserted?.data["soh"] != nil)
        #expect(seen.first { $0.type == "slot.door_opened" }?.bool("authorised") == false)
        #expect(seen.first { $0.type == "slot.fault" && $0.int("slot") == 2 }?.int("fault_code") == 5)
        #expect(seen.first { $0.type == "battery.quarantined" }?.string("reason") == "protection_fault")
        #expect(seen.first { $0.type == "battery.removed" }?.int("slot") == 4)

        // Telemetry (QoS 0, every 2 s here) with every slot's BMS fields.
        #expect(eventually(timeout: 20) { !payloads(in: sub.lines(), topicSuffix: "/telemetry").isEmpty })
        let telemetry = payloads(in: sub.lines(), topicSuffix: "/telemetry").last!
        #expect((telemetry["slots"] as? [[String: Any]])?.count == 8)

        // Retained status and inventory, read by a fresh subscriber.
        let status = try st.broker.subscribe(topic: "dt/V01/BSS/\(Station.id)/status", count: 1, timeout: 10)
        #expect(status.first?.contains("\"online\":true") == true, "\(status)")
        let inventory = try st.broker.subscribe(topic: "dt/V01/BSS/\(Station.id)/inventory", count: 1, timeout: 10)
        #expect(inventory.first?.contains("\"ready\":") == true, "\(inventory)")

        // SIGKILL: the broker publishes the will, retained.
        gw.killHard()
        #expect(eventually(timeout: 60) {
            payloads(in: sub.lines(), topicSuffix: "/status").last?["online"] as? Bool == false
        })
        let after = try st.broker.subscribe(topic: "dt/V01/BSS/\(Station.id)/status", count: 1, timeout: 10)
        #expect(after.first?.contains("\"online\":false") == true, "\(after)")
    }

    @Test func cleanShutdownPublishesOfflineAndRestartReportsOnlyRealChanges() throws {
        let st = try Station(slots: 6)
        defer { st.stop() }
        let sub = try st.subscriber()
        let gw = try st.startGateway()
        #expect(eventually(timeout: 30) { events(in: sub.lines()).filter { $0.type == "battery.inserted" }.count >= 4 })
        #expect(gw.stop(signal: SIGTERM, timeout: 20) == 0)
        #expect(gw.output().contains("published offline status"))
        // mosquitto_sub prints what the broker forwards a moment after the daemon's publish was acknowledged.
        #expect(eventually(timeout: 10) { payloads(in: sub.lines(), topicSuffix: "/status").last?["online"] as? Bool == false },
                "\(payloads(in: sub.lines(), topicSuffix: "/status").map { $0["online"] ?? "" })")
        // While it is down a battery is taken; after restart that is all it reports (not every battery again).
        try st.control(["cmd": "remove", "slot": 1])
        let before = events(in: sub.lines()).count
        try st.startGateway()
        #expect(eventually(timeout: 30) { events(in: sub.lines()).contains { $0.type == "battery.removed" } })
        pause(2)
        let new = events(in: sub.lines()).dropFirst(before)
        #expect(new.map(\.type).sorted() == ["battery.removed", "gateway.started"], "\(new.map(\.type))")
        #expect(new.first { $0.type == "gateway.started" }?.bool("previous_shutdown_clean") == true)
        expectGapFree(events(in: sub.lines()))
    }

    @Test func brokerOutageLosesNothingAndKeepsOrder() throws {
        let st = try Station(slots: 8)
        defer { st.stop() }
        // A persistent subscriber session (clean session off, fixed id, QoS 1) on a persistent broker,
        // so what arrives while it reconnects after the restart is queued for it.
        let subArgs = ["-c", "-i", "e2e-outage-sub"]
        let sub1 = try st.subscriber(extra: subArgs)
        try st.startGateway()
        #expect(eventually(timeout: 30) { events(in: sub1.lines()).filter { $0.type == "battery.inserted" }.count >= 6 })
        st.broker.stop()
        // Activity during the outage: recorded durably, published later.
        for i in 0 ..< 5 {
            try st.control(["cmd": "insert", "slot": 7, "id": "B30-OUT-\(i)", "family": 1, "soc": 20])
            pause(0.6)
            try st.control(["cmd": "remove", "slot": 7])
            pause(0.6)
        }
        try st.broker.restart()
        let sub2 = try st.subscriber(extra: subArgs)
        #expect(eventually(timeout: 60) {
            events(in: sub1.lines() + sub2.lines()).filter { $0.type == "battery.removed" && $0.int("slot") == 7 }.count >= 5
        })
        let all = events(in: sub1.lines() + sub2.lines())
        expectGapFree(all)
        // The order is the seq order (one event per seq across both subscribers' streams) …
        var bySeq: [Int: SeenEvent] = [:]
        for e in all where e.string("battery_id")?.hasPrefix("B30-OUT-") == true { bySeq[e.seq] = e }
        let order = bySeq.keys.sorted().map { "\(bySeq[$0]!.type) \(bySeq[$0]!.string("battery_id")!)" }
        #expect(order == (0 ..< 5).flatMap { ["battery.inserted B30-OUT-\($0)", "battery.removed B30-OUT-\($0)"] })
        // … and the second subscriber, which started after the restart, saw them in seq order.
        let seqs = events(in: sub2.lines()).map(\.seq)
        #expect(seqs == seqs.sorted())
    }

    @Test func sigkillAtRandomMomentsNeverLeavesAGapOrAConflictingDuplicate() throws {
        let st = try Station(slots: 8, simArguments: ["--speed", "30"])
        defer { st.stop() }
        let sub = try st.subscriber()
        // Activity in the cabinet the whole time: a battery in and out of slot 7, doors on slot 1.
        let stop = LockedFlag()
        let activity = Thread {
            var i = 0
            while !stop.value {
                _ = try? st.sim.control(["cmd": "insert", "slot": 7, "id": "B45-K-\(i)", "family": 2, "soc": 30])
                _ = try? st.sim.control(["cmd": "open_door", "slot": 1, "force": true])
                _ = try? st.sim.control(["cmd": "close_door", "slot": 1])
                pause(0.15)
                _ = try? st.sim.control(["cmd": "remove", "slot": 7])
                pause(0.15)
                i += 1
            }
        }
        activity.start()
        var rng = SystemRandomNumberGenerator()
        for _ in 0 ..< 8 {
            let gw = try st.startGateway()
            pause(Double.random(in: 0.3 ... 2.0, using: &rng))
            gw.killHard()
        }
        stop.value = true
        pause(0.5)
        let last = try st.startGateway()
        // Let it drain the log.
        pause(4)
        let seen = events(in: sub.lines())
        expectGapFree(seen)
        // One gateway.started per start; re-sends of one (at least once) carry the same event_id.
        #expect(Set(seen.filter { $0.type == "gateway.started" }.map(\.eventID)).count == 9)
        #expect(seen.contains { $0.type == "gateway.started" && $0.bool("previous_shutdown_clean") == false })
        last.stop()
    }

    @Test func tlsWithAClientCertificate() throws {
        let certs = try TestCertificates.generate()
        let opts = MosquittoBrokerOptions(persistence: false, tls: .init(certificates: certs, requireCertificate: true))
        let st = try Station(slots: 4, brokerOptions: opts, mqttSection: "")
        defer { st.stop() }
        // Point the gateway at the TLS listener with the client certificate.
        try (try String(contentsOfFile: st.configPath, encoding: .utf8)).replacingOccurrences(of: "\nstore:", with: """

        mqtt: {host: 127.0.0.1, port: \(st.broker.tlsPort!), ca_file: \(certs.caFile), cert_file: \(certs.clientCertFile), key_file: \(certs.clientKeyFile)}
        store:
        """).write(toFile: st.configPath, atomically: true, encoding: .utf8)
        let sub = try st.subscriber()
        let gw = try st.startGateway()
        #expect(eventually(timeout: 30) { events(in: sub.lines()).contains { $0.type == "gateway.started" } }, "\(gw.output().suffix(2000))")
        #expect(payloads(in: sub.lines(), topicSuffix: "/status").last?["online"] as? Bool == true)
        gw.stop()
        // Without the client certificate the broker refuses the gateway.
        try (try String(contentsOfFile: st.configPath, encoding: .utf8))
            .replacingOccurrences(of: ", cert_file: \(certs.clientCertFile), key_file: \(certs.clientKeyFile)", with: "")
            .write(toFile: st.configPath, atomically: true, encoding: .utf8)
        let before = events(in: sub.lines()).count
        let refused = try st.startGateway()
        pause(4)
        #expect(events(in: sub.lines()).count == before)
        #expect(!refused.output().contains("MQTT connected"))
        refused.stop()
    }
}

final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var _value = false
    var value: Bool {
        get { lock.lock(); defer { lock.unlock() }; return _value }
        set { lock.lock(); _value = newValue; lock.unlock() }
    }
}
