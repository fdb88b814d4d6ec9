import Foundation
import GatewayCore
import Testing
import TestSupport

@Suite struct MetricLabelTests {
    @Test func labelValuesAreEscapedAndUnknownCommandsShareOneSeries() throws {
        let m = GatewayMetrics()
        m.countSwap(outcome: "a\"b\\c\nd")
        m.countCommand("x\",result=\"forged", result: "malformed")
        m.countCommand("another-name", result: "malformed")
        m.countCommand("ping", result: "ok")
        let text = m.prometheusText()
        let parser = """
        import sys
        from prometheus_client.parser import text_string_to_metric_families
        for fam in text_string_to_metric_families(sys.stdin.read()):
            for s in fam.samples:
                if s.name in ("swapgate_commands_total", "swapgate_swaps_total"):
                    print(s.name, sorted(s.labels.items()), s.value)
        """
        let parsed = try runCommand("/usr/bin/python3", ["-c", parser], input: text)
        #expect(parsed.status == 0, "\(parsed.output)\n\(text)")
        let lines = Set(parsed.output.split(separator: "\n").map(String.init))
        #expect(lines == [
            #"swapgate_swaps_total [('outcome', 'a"b\\c\nd')] 1.0"#,
            "swapgate_commands_total [('command', 'unknown'), ('result', 'malformed')] 2.0",
            "swapgate_commands_total [('command', 'ping'), ('result', 'ok')] 1.0",
        ], "\(parsed.output)")
    }
}

/// Hostile and unlucky command traffic against the real daemon, broker and cabinet simulator (issue 9 items 4, 6,
/// 11, 12, 13, 15): retained commands, audit failures, response topics, bursts, large messages, metric labels.
@Suite(.serialized) struct CommandHardeningTests {
    static func station(_ abs: ABS) throws -> (Station, MosquittoSubscriber) {
        let st = try Station(slots: 8, absSection: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        let sub = try st.subscriber()
        return (st, sub)
    }

    /// Unlock commands (cmd 1) the simulated controller received.
    static func unlocks(_ st: Station) -> Int {
        (((try? st.sim.control(["cmd": "log"]))?["commands"] as? [[String: Any]]) ?? []).filter { $0["cmd"] as? Int == 1 }.count
    }
    static func cabinetCommands(_ st: Station) -> Int {
        (((try? st.sim.control(["cmd": "log"]))?["commands"] as? [[String: Any]]) ?? []).count
    }

    static func retainedRefusals(_ sub: MosquittoSubscriber) -> Int {
        payloads(in: sub.lines(), topicSuffix: "/reply").filter {
            $0["code"] as? String == "malformed" && ($0["message"] as? String ?? "").contains("retained")
        }.count
    }

    // MARK: item 4

    @Test func aRetainedUnlockIsRefusedBeforeDuringAndAfterAnOutage() throws {
        let abs = try ABS.generate()
        let (st, sub) = try Self.station(abs)
        defer { st.stop() }
        let unlockTopic = "cmd/V01/BSS/\(Station.id)/unlock"
        func clearRetained() throws {
            let r = try runCommand("mosquitto_pub", ["-h", "127.0.0.1", "-p", "\(st.broker.port)", "-q", "1", "-t", unlockTopic, "-r", "-n"])
            #expect(r.status == 0, "\(r.output)")
        }
        func unlock(_ id: String) throws -> String {
            try abs.envelope(["slot": 3, "operator_id": "tech-1", "reason": "retained test", "request_id": id])
        }

        // 1. Retained before the gateway ever subscribed: delivered from the retained store, refused.
        try st.broker.publish(topic: unlockTopic, message: try unlock("r-before"), qos: 1, retain: true)
        try st.startGateway()
        #expect(eventually(timeout: 20) { Self.retainedRefusals(sub) >= 1 }, "\(sub.lines().suffix(5))")
        try clearRetained()  // clear the store

        // 2. Published with retain while the gateway is subscribed (live delivery: MQTT 5 Retain As Published keeps the flag).
        let before = Self.retainedRefusals(sub)
        try st.broker.publish(topic: unlockTopic, message: try unlock("r-live"), qos: 1, retain: true)
        #expect(eventually(timeout: 20) { Self.retainedRefusals(sub) > before }, "\(sub.lines().suffix(5))")
        try clearRetained()
        pause(1)

        // 3. Retained while the gateway is down: the broker queues a copy in its persistent session.
        _ = st.gateway?.stop()
        let beforeOutage = Self.retainedRefusals(sub)
        try st.broker.publish(topic: unlockTopic, message: try unlock("r-offline"), qos: 1, retain: true)
        try clearRetained()  // only the session copy is left
        try st.startGateway()
        #expect(eventually(timeout: 30) { Self.retainedRefusals(sub) >= beforeOutage + 2 }, "\(sub.lines().suffix(5))")
        pause(1)
        #expect(Self.unlocks(st) == 0, "a retained unlock reached the cabinet")
        #expect(st.gateway?.output().contains("MQTT connected") == true)

        // The same command, not retained, is obeyed (the path itself works).
        let live = try st.command("unlock", ["slot": 3, "operator_id": "tech-1", "reason": "live"], abs: abs, subscriber: sub)
        #expect(live["ok"] as? Bool == true, "\(live)")
        #expect(Self.unlocks(st) == 1)
    }

    // MARK: item 6

    @Test func noAuditNoDoorForABSUnlockAndServiceChange() throws {
        let abs = try ABS.generate()
        let (st, sub) = try Self.station(abs)
        defer { st.stop() }
        try st.startGateway()
        // The audit table refuses every write (as a broken or full store would), through the real SQLite file.
        let sql = "CREATE TRIGGER test_no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused by test'); END;"
        let made = try runCommand("/usr/bin/sqlite3", ["-cmd", ".timeout 10000", st.storePath, sql])
        #expect(made.status == 0, "\(made.output)")
        let commandsBefore = Self.cabinetCommands(st)
        for attempt in 1 ... 3 {
            let r = try st.command("unlock", ["slot": 3, "operator_id": "tech-1", "reason": "no audit \(attempt)"], abs: abs, subscriber: sub)
            #expect(r["ok"] as? Bool == false && r["code"] as? String == "station_busy", "\(r)")
            #expect((r["message"] as? String ?? "").contains("audit"), "\(r)")
        }
        let s = try st.command("slot", ["slot": 4, "in_service": false], abs: abs, subscriber: sub)
        #expect(s["ok"] as? Bool == false && s["code"] as? String == "station_busy", "\(s)")
        pause(1.5)
        #expect(Self.unlocks(st) == 0, "an unaudited unlock reached the cabinet")
        #expect(Self.cabinetCommands(st) == commandsBefore, "an unaudited command reached the cabinet")
        #expect(!events(in: sub.lines()).contains { $0.type == "maintenance.unlock" })

        // The audit works again: the same command opens the door, and is audited.
        _ = try runCommand("/usr/bin/sqlite3", ["-cmd", ".timeout 10000", st.storePath, "DROP TRIGGER test_no_audit;"])
        let ok = try st.command("unlock", ["slot": 3, "operator_id": "tech-1", "reason": "audit back"], abs: abs, subscriber: sub)
        #expect(ok["ok"] as? Bool == true, "\(ok)")
        #expect(Self.unlocks(st) == 1)
        let audit = try runCommand("/usr/bin/sqlite3", ["-cmd", ".timeout 10000", st.storePath, "SELECT count(*) FROM audit WHERE action = 'maintenance.unlock';"])
        #expect(audit.output.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "\(audit.output)")
    }

    // MARK: item 11

    @Test func aResponseTopicIsHonouredOnlyForAVerifiedCommandAndNeverOnTheStationsTree() throws {
        let abs = try ABS.generate()
        let (st, sub) = try Self.station(abs)
        defer { st.stop() }
        try st.startGateway()
        let outside = try st.broker.startSubscriber(topics: ["abs/#"])
        let pingTopic = "cmd/V01/BSS/\(Station.id)/ping"
        let eventTopic = "dt/V01/BSS/\(Station.id)/evt/swap.completed"
        func v5(_ responseTopic: String, correlation: String) -> [String] {
            ["-V", "mqttv5", "-D", "publish", "response-topic", responseTopic, "-D", "publish", "correlation-data", correlation]
        }
        func replies() -> Int { payloads(in: sub.lines(), topicSuffix: "/reply").count }

        // Junk (unsigned) asking for replies on the station's own event topic, and on an outside topic.
        var n = replies()
        try st.broker.publish(topic: pingTopic, message: "junk", qos: 1, extraArguments: v5(eventTopic, correlation: "c1"))
        try st.broker.publish(topic: pingTopic, message: "{\"kid\":\"x\",\"payload\":\"e30=\"}", qos: 1, extraArguments: v5("abs/replies/junk", correlation: "c2"))
        #expect(eventually(timeout: 20) { replies() >= n + 2 })
        // A signed ping asking for the event topic, and one asking for an outside topic.
        n = replies()
        let signedToEvent = try abs.envelope(["request_id": "p-event"])
        try st.broker.publish(topic: pingTopic, message: signedToEvent, qos: 1, extraArguments: v5(eventTopic, correlation: "c3"))
        let signedToABS = try abs.envelope(["request_id": "p-abs"])
        try st.broker.publish(topic: pingTopic, message: signedToABS, qos: 1, extraArguments: v5("abs/replies/station", correlation: "c4"))
        #expect(eventually(timeout: 20) { replies() >= n + 2 })
        #expect(eventually(timeout: 20) { outside.lines().contains { $0.hasPrefix("abs/replies/station ") && $0.contains("p-abs") } },
                "\(outside.lines())")
        pause(1)
        #expect(!sub.lines().contains { $0.hasPrefix(eventTopic + " ") }, "the station published a reply onto its own event topic")
        #expect(!outside.lines().contains { $0.hasPrefix("abs/replies/junk") }, "a reply went where an unsigned command asked")
        #expect(outside.lines().filter { $0.hasPrefix("abs/replies/") }.count == 1, "\(outside.lines())")
    }

    // MARK: item 12

    @Test func aBurstOfGarbageNeverDisplacesSignedDeltas() throws {
        let abs = try ABS.generate()
        let (st, sub) = try Self.station(abs)
        defer { st.stop() }
        try st.startGateway()
        let topic = "cmd/V01/BSS/\(Station.id)/entitlements"
        // A snapshot large enough to keep the lane busy while the rest arrives.
        let snapshot = try abs.envelope(["request_id": "snap-1", "kind": "snapshot", "version": 1,
                                         "entitlements": (1 ... 20_000).map { SwapTests.entitlement($0, out: []) }])
        let deltas = try (2 ... 4).map { v in
            try abs.envelope(["request_id": "delta-\(v)", "kind": "delta", "base_version": v - 1, "version": v,
                              "upsert": [SwapTests.entitlement(100_000 + v, out: [])], "remove": []])
        }
        let garbage = (1 ... 150).map { i in i % 2 == 0 ? "garbage-\(i)" : "{\"kind\":\"delta\",\"base_version\":1,\"version\":\(900 + i)}" }
        let file = st.dir.path("snapshot.json")
        try snapshot.write(toFile: file, atomically: true, encoding: .utf8)
        let pub = try runCommand("mosquitto_pub", ["-h", "127.0.0.1", "-p", "\(st.broker.port)", "-q", "1", "-t", topic, "-f", file], timeout: 60)
        #expect(pub.status == 0, "\(pub.output)")
        // The deltas, then the burst, in one connection (in this order).
        let lines = (deltas + garbage).joined(separator: "\n") + "\n"
        let burst = try runCommand("mosquitto_pub", ["-h", "127.0.0.1", "-p", "\(st.broker.port)", "-q", "1", "-t", topic, "-l"], timeout: 60, input: lines)
        #expect(burst.status == 0, "\(burst.output)")

        func reply(_ id: String) -> [String: Any]? { payloads(in: sub.lines(), topicSuffix: "/reply").last { $0["request_id"] as? String == id } }
        #expect(eventually(timeout: 120) { (2 ... 4).allSatisfy { reply("delta-\($0)") != nil } }, "\(st.gateway?.output().suffix(3000) ?? "")")
        #expect(reply("snap-1")?["ok"] as? Bool == true, "\(reply("snap-1") ?? [:])")
        for v in 2 ... 4 {
            let r = reply("delta-\(v)") ?? [:]
            #expect(r["ok"] as? Bool == true, "\(r)")
            #expect((r["data"] as? [String: Any])?["version"] as? Int == v, "\(r)")
        }
        // Every piece of garbage was answered too (refused, with no request id).
        #expect(eventually(timeout: 60) {
            payloads(in: sub.lines(), topicSuffix: "/reply").filter { $0["ok"] as? Bool == false && $0["request_id"] is NSNull }.count >= garbage.count
        })
        let applied = events(in: sub.lines()).filter { $0.type == "entitlements.applied" && $0.string("kind") == "delta" }.compactMap { $0.int("version") }
        #expect(applied == [2, 3, 4], "\(applied)")
    }

    // MARK: item 13

    static func memory(_ pid: Int32) -> (rss: Int, peak: Int) {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        func kb(_ key: String) -> Int {
            text.split(separator: "\n").first { $0.hasPrefix(key + ":") }
                .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
        }
        return (kb("VmRSS") / 1024, kb("VmHWM") / 1024)
    }

    @Test func aBurstOfLargePublishesStaysWithinAMemoryBoundAndOversizeIsRefused() throws {
        let abs = try ABS.generate()
        let (st, sub) = try Self.station(abs)
        defer { st.stop() }
        let gateway = try st.startGateway()
        pause(2)
        let baseline = Self.memory(gateway.pid)
        // Oversize for a small command (limit 64 KiB): refused without being read.
        let bigPing = st.dir.path("ping.bin")
        try String(repeating: "P", count: 200_000).write(toFile: bigPing, atomically: true, encoding: .utf8)
        let ping = try runCommand("mosquitto_pub", ["-h", "127.0.0.1", "-p", "\(st.broker.port)", "-q", "1", "-t", "cmd/V01/BSS/\(Station.id)/ping", "-f", bigPing])
        #expect(ping.status == 0)
        #expect(eventually(timeout: 20) {
            payloads(in: sub.lines(), topicSuffix: "/reply").contains { ($0["message"] as? String ?? "").contains("exceeds the station's limit") }
        }, "\(sub.lines().suffix(3))")

        // 40 × 20 MB at once on the one topic that takes large payloads.
        let big = st.dir.path("big.bin")
        try String(repeating: "A", count: 20 * 1024 * 1024).write(toFile: big, atomically: false, encoding: .utf8)
        let repliesBefore = payloads(in: sub.lines(), topicSuffix: "/reply").count
        let publishers = try (1 ... 40).map { _ in
            try ManagedProcess("mosquitto_pub", ["-h", "127.0.0.1", "-p", "\(st.broker.port)", "-q", "1",
                                                 "-t", "cmd/V01/BSS/\(Station.id)/entitlements", "-f", big])
        }
        // Every one of them is answered (refused as malformed, or busy when the queue was full).
        #expect(eventually(timeout: 300, interval: 0.5) { payloads(in: sub.lines(), topicSuffix: "/reply").count >= repliesBefore + 40 },
                "\(payloads(in: sub.lines(), topicSuffix: "/reply").count - repliesBefore) replies")
        for p in publishers { _ = p.stop(timeout: 30) }
        let after = Self.memory(gateway.pid)
        print("memory: baseline \(baseline.rss) MB, peak \(after.peak) MB, after \(after.rss) MB")
        // The queues hold at most 64 MiB each (adapter, entitlement lane) plus the message in hand.
        #expect(after.peak - baseline.rss < 330, "peak \(after.peak) MB from \(baseline.rss) MB")
        // And memory is given back once the burst is over.
        #expect(after.rss - baseline.rss < 120, "after \(after.rss) MB from \(baseline.rss) MB")
        #expect(gateway.isRunning)
    }

    // MARK: item 15

    @Test func commandTopicsCannotInjectMetricLabelsOrAddSeries() throws {
        let abs = try ABS.generate()
        let (st, sub) = try Self.station(abs)
        defer { st.stop() }
        try st.startGateway()
        let names = ["x\",result=\"forged", "evil\\name", "other-1", "other-2"]
        for name in names {
            try st.broker.publish(topic: "cmd/V01/BSS/\(Station.id)/\(name)", message: "{}", qos: 1)
        }
        #expect(eventually(timeout: 20) { payloads(in: sub.lines(), topicSuffix: "/reply").count >= names.count })
        let scrape = try runCommand("/usr/bin/curl", ["-s", "-f", "http://127.0.0.1:\(st.metricsPort)/metrics"])
        #expect(scrape.status == 0)
        let parser = """
        import sys
        from prometheus_client.parser import text_string_to_metric_families
        for fam in text_string_to_metric_families(sys.stdin.read()):
            for s in fam.samples:
                if s.name == "swapgate_commands_total":
                    print(repr(s.labels.get("command")), repr(s.labels.get("result")), s.value)
        """
        let parsed = try runCommand("/usr/bin/python3", ["-c", parser], input: scrape.output)
        #expect(parsed.status == 0, "\(parsed.output)")
        let lines = parsed.output.split(separator: "\n").map(String.init)
        #expect(lines.count == 1, "\(lines)")
        #expect(lines.first == "'unknown' 'malformed' 4.0", "\(lines)")
        #expect(!scrape.output.contains("forged"))
    }
}
