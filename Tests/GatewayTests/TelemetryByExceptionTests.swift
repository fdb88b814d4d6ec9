import Foundation
import Testing
import TestSupport

/// Telemetry by exception (contract 1.1, issue 11 items 1 and 3) through the real daemon, station-sim and mosquitto.
@Suite(.serialized) struct TelemetryByExceptionTests {
    static func telemetry(_ sub: MosquittoSubscriber) -> [[String: Any]] { payloads(in: sub.lines(), topicSuffix: "/telemetry") }

    static func soc(_ entry: [String: Any]) -> Double? { ((entry["bms"] as? [String: Any])?["soc"] as? NSNumber)?.doubleValue }

    static func scrape(_ port: Int) throws -> [String: Double] {
        let text = try runCommand("/usr/bin/curl", ["-s", "-f", "http://127.0.0.1:\(port)/metrics"]).output
        let parser = """
        import sys
        from prometheus_client.parser import text_string_to_metric_families
        for fam in text_string_to_metric_families(sys.stdin.read()):
            for s in fam.samples:
                if s.name == "swapgate_mqtt_bytes_total":
                    print(s.labels["direction"] + "|" + s.labels["class"], s.value)
        """
        let parsed = try runCommand("/usr/bin/python3", ["-c", parser], input: text)
        var out: [String: Double] = [:]
        for line in parsed.output.split(separator: "\n") {
            let p = line.split(separator: " ")
            if p.count == 2 { out[String(p[0])] = Double(p[1]) }
        }
        return out
    }

    /// Charging slots (the simulator at 30× speed): a full report first, `changes` in between with only the moved
    /// fields (each slot entry with slot and cabinet; SoC only once it moved ≥ 1 % from the value last reported),
    /// another full report at the full interval, tseq rising by one; bytes counted in /metrics and swapctl status.
    @Test func changesCarryOnlyWhatMovedAndFullComesAtTheInterval() throws {
        let st = try Station(slots: 8, simArguments: ["--speed", "30"],
                             publishing: "{telemetry_interval: 1, telemetry_full_interval: 6, inventory_debounce: 0.2}")
        defer { st.stop() }
        let sub = try st.subscriber()
        try st.startGateway()
        #expect(eventually(timeout: 60) { Self.telemetry(sub).filter { $0["kind"] as? String == "full" }.count >= 3 },
                "\(Self.telemetry(sub).map { "\($0["kind"] ?? "-") \($0["tseq"] ?? "-")" })")
        let before = try Self.scrape(st.metricsPort)
        let msgs = Self.telemetry(sub)
        #expect(msgs.first?["kind"] as? String == "full")
        #expect(msgs.map { $0["tseq"] as? Int ?? -1 } == Array(1 ... msgs.count), "tseq rises by one per message")
        var reported: [Int: Double] = [:]
        var changes = 0, socChanges = 0
        for m in msgs {
            let slots = (m["slots"] as? [[String: Any]]) ?? []
            if m["kind"] as? String == "full" {
                #expect(slots.count == 8)
                #expect(slots.allSatisfy { $0["state"] != nil && $0["door_closed"] != nil && $0["bms"] != nil })
                reported = [:]
                for s in slots { if let n = s["slot"] as? Int, let v = Self.soc(s) { reported[n] = v } }
                continue
            }
            #expect(m["kind"] as? String == "changes")
            changes += 1
            #expect(!slots.isEmpty || m["meter"] != nil || m["cabinet"] != nil, "a changes message carries something: \(m)")
            for s in slots {
                #expect(s["slot"] is Int && s["cabinet"] as? String == "A", "\(s)")
                #expect(Set(s.keys).subtracting(["slot", "cabinet", "cabinet_slot"]).count >= 1, "an entry with nothing moved: \(s)")
                // Unchanged fields stay out: no battery was swapped, so its identity never repeats.
                let bms = s["bms"] as? [String: Any] ?? [:]
                #expect(bms["battery_id"] == nil && bms["family"] == nil && s["door_open_count"] == nil, "\(s)")
                if let n = s["slot"] as? Int, let v = Self.soc(s) {
                    socChanges += 1
                    if let last = reported[n] { #expect(abs(v - last) >= 1 - 1e-6, "slot \(n): SoC \(last) -> \(v) is inside the deadband") }
                    reported[n] = v
                }
            }
        }
        #expect(changes >= 2)
        #expect(socChanges >= 1, "charging batteries move their SoC")
        let fullSize = msgs.filter { $0["kind"] as? String == "full" }.map { (try? JSONSerialization.data(withJSONObject: $0).count) ?? 0 }.min() ?? 0
        let changeSizes = msgs.filter { $0["kind"] as? String == "changes" }.map { (try? JSONSerialization.data(withJSONObject: $0).count) ?? 0 }
        #expect(changeSizes.allSatisfy { $0 < fullSize }, "\(changeSizes) vs full \(fullSize)")

        // Bytes: every class that went out is counted, at least the bytes the subscriber saw, and rising.
        let seenTelemetry = sub.lines().filter { $0.contains("/telemetry ") }.reduce(0) { $0 + $1.utf8.count }
        #expect((before["sent|telemetry"] ?? 0) >= Double(seenTelemetry) * 0.9, "\(before) vs \(seenTelemetry)")
        #expect((before["sent|status"] ?? 0) > 0 && (before["sent|inventory"] ?? 0) > 0 && (before["sent|events"] ?? 0) > 0, "\(before)")
        let count = Self.telemetry(sub).count
        #expect(eventually(timeout: 30) { Self.telemetry(sub).count > count + 1 })
        let after = try Self.scrape(st.metricsPort)
        #expect((after["sent|telemetry"] ?? 0) > (before["sent|telemetry"] ?? 0), "\(before) -> \(after)")
        let status = try st.swapctl(["status"])
        #expect(status.output.contains("mqtt 24h      sent ") && status.output.contains("telemetry "), "\(status.output)")
    }

    /// Every sample of /metrics as "name{label=value,…}" -> value (labels sorted), through prometheus_client's parser.
    static func metrics(_ port: Int) throws -> [String: Double] {
        let text = try runCommand("/usr/bin/curl", ["-s", "-f", "http://127.0.0.1:\(port)/metrics"]).output
        let parser = """
        import sys
        from prometheus_client.parser import text_string_to_metric_families
        for fam in text_string_to_metric_families(sys.stdin.read()):
            for s in fam.samples:
                labels = ",".join(k + "=" + v for k, v in sorted(s.labels.items()))
                print(s.name + ("{" + labels + "}" if labels else ""), s.value)
        """
        var out: [String: Double] = [:]
        for line in try runCommand("/usr/bin/python3", ["-c", parser], input: text).output.split(separator: "\n") {
            let p = line.split(separator: " ")
            if p.count == 2 { out[String(p[0])] = Double(p[1]) }
        }
        return out
    }

    static func time(_ m: [String: Any]) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return (m["ts"] as? String).flatMap(f.date(from:))
    }

    /// Seconds between consecutive `changes` messages (adjacent tseq, no full report between them), in order.
    static func changeGaps(_ msgs: [[String: Any]]) -> [Double] {
        var gaps: [Double] = []
        for (a, b) in zip(msgs, msgs.dropFirst())
        where a["kind"] as? String == "changes" && b["kind"] as? String == "changes" && (b["tseq"] as? Int) == (a["tseq"] as? Int).map({ $0 + 1 }) {
            if let ta = time(a), let tb = time(b) { gaps.append(tb.timeIntervalSince(ta)) }
        }
        return gaps
    }

    /// The monthly budget governor (publishing.monthly_budget_mb) under a budget a station at 1 s telemetry cannot
    /// keep (1 MB a month): one step per check interval (5 s) up to budget_max_factor 8; status and /metrics say
    /// so; the `changes` messages the broker delivers go from ~1 s apart (values move: simulator at 30×) to at
    /// least 8 s apart (the interval × 8). The keepalive byte class counts PINGREQ/PINGRESP (mqtt.keepalive 5 s).
    @Test func governorWidensIntervalsUnderASmallBudget() throws {
        let st = try Station(slots: 8, simArguments: ["--speed", "30"], mqttOptions: ", keepalive: 5",
                             publishing: "{telemetry_interval: 1, telemetry_full_interval: 4, inventory_debounce: 0.2, monthly_budget_mb: 1, budget_check_interval: 5, budget_max_factor: 8}")
        defer { st.stop() }
        let sub = try st.subscriber()
        try st.startGateway()
        // Status: the governor reaches its cap (three steps) and says so.
        var status: [String: Any] = [:]
        #expect(eventually(timeout: 90, interval: 0.5) {
            status = (try? st.swapctlJSON(["status"]) as? [String: Any]) ?? [:]
            return ((status["uplinkBudget"] as? [String: Any])?["factor"] as? Int) == 8
        }, "\(status["uplinkBudget"] ?? "no uplinkBudget") \(st.gateway?.output().suffix(1500) ?? "")")
        let budget = status["uplinkBudget"] as? [String: Any] ?? [:]
        #expect(budget["active"] as? Bool == true && budget["budgetBytes"] as? Int == 1_000_000, "\(budget)")
        #expect((budget["forecastBytes"] as? Int ?? 0) > 1_000_000, "\(budget)")
        let text = try st.swapctl(["status"]).output
        #expect(text.contains("governor ACTIVE") && text.contains("x8"), "\(text)")
        let widenedAt = Date()
        let m = try Self.metrics(st.metricsPort)
        #expect(m["swapgate_telemetry_widening_factor"] == 8, "\(m.filter { $0.key.contains("widening") || $0.key.contains("uplink") })")
        #expect((m["swapgate_uplink_month_forecast_bytes"] ?? 0) > 1_000_000 && m["swapgate_uplink_month_budget_bytes"] == 1_000_000)

        // At the broker: the first changes came about a second apart; once widened ×8, never closer than 8 s.
        #expect(eventually(timeout: 120, interval: 0.5) {
            Self.changeGaps(Self.telemetry(sub).filter { (Self.time($0) ?? .distantPast) > widenedAt }).count >= 2
        }, "\(Self.telemetry(sub).map { "\($0["kind"] ?? "-") \($0["tseq"] ?? "-") \($0["ts"] ?? "-")" })")
        let msgs = Self.telemetry(sub)
        let early = Self.changeGaps(Array(msgs.prefix(6)))
        let late = Self.changeGaps(msgs.filter { (Self.time($0) ?? .distantPast) > widenedAt })
        #expect(early.contains { $0 < 1.6 }, "factor 1 at the start: changes about 1 s apart: \(early)")
        #expect(!late.isEmpty && late.allSatisfy { $0 >= 8 - 0.25 }, "widened ×8: \(late)")
        // tseq stays gap-free: ABS sees nothing lost, only fewer messages.
        #expect(msgs.map { $0["tseq"] as? Int ?? -1 } == Array(1 ... msgs.count))

        // The keepalive class: pings (sent and received, every 5 s while connected) and the broker's PUBACKs.
        #expect((m["swapgate_mqtt_bytes_total{class=keepalive,direction=sent}"] ?? 0) >= 2, "\(m.filter { $0.key.contains("keepalive") })")
        #expect((m["swapgate_mqtt_bytes_total{class=keepalive,direction=received}"] ?? 0) >= 4)
        let day = status["mqttBytes24h"] as? [String: Any] ?? [:]
        #expect(((day["sent"] as? [String: Any])?["keepalive"] as? Int ?? 0) >= 2 && ((day["received"] as? [String: Any])?["keepalive"] as? Int ?? 0) >= 4, "\(day)")
    }

    /// Full batteries, simulator time all but stopped (--speed 0.001): after the full report at connection nothing is sent over several
    /// intervals; the first thing that moves (a battery inserted) comes as the next tseq, alone.
    @Test func nothingMovedNothingSent() throws {
        let st = try Station(slots: 8, simArguments: ["--speed", "0.001", "--fill", "full"],
                             publishing: "{telemetry_interval: 1, telemetry_full_interval: 3600, inventory_debounce: 0.2}")
        defer { st.stop() }
        let sub = try st.subscriber()
        try st.startGateway()
        #expect(eventually(timeout: 30) { !Self.telemetry(sub).isEmpty })
        pause(6)   // six intervals
        let quiet = Self.telemetry(sub)
        #expect(quiet.count == 1, "\(quiet.map { "\($0["kind"] ?? "-") \($0["tseq"] ?? "-") \($0)" })")
        #expect(quiet.first?["kind"] as? String == "full" && quiet.first?["tseq"] as? Int == 1)
        let slots = (quiet.first?["slots"] as? [[String: Any]]) ?? []
        guard let emptySlot = slots.first(where: { $0["battery_present"] as? Bool == false })?["slot"] as? Int else {
            // A full station has no empty slot: take one out instead.
            try st.control(["cmd": "remove", "slot": 8])
            #expect(eventually(timeout: 30) { Self.telemetry(sub).count == 2 })
            let next = Self.telemetry(sub)[1]
            #expect(next["kind"] as? String == "changes" && next["tseq"] as? Int == 2, "\(next)")
            return
        }
        try st.control(["cmd": "insert", "slot": emptySlot, "id": "BAT-TEL-1", "family": 2, "soc": 40])
        #expect(eventually(timeout: 30) { Self.telemetry(sub).count >= 2 })
        let next = Self.telemetry(sub)[1]
        #expect(next["kind"] as? String == "changes" && next["tseq"] as? Int == 2, "\(next)")
        let entries = (next["slots"] as? [[String: Any]]) ?? []
        #expect(entries.map { $0["slot"] as? Int } == [emptySlot], "\(next)")
        #expect((entries.first?["bms"] as? [String: Any])?["battery_id"] as? String == "BAT-TEL-1", "\(next)")
    }

    /// `rebirth` sends a full report (tseq goes on); a new MQTT connection (broker restarted) starts tseq at 1 with a full.
    @Test func fullOnRebirthAndTseqRestartsAtANewConnection() throws {
        let abs = try ABS.generate()
        let st = try Station(slots: 8, simArguments: ["--speed", "30"],
                             absSection: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}",
                             publishing: "{telemetry_interval: 1, telemetry_full_interval: 3600, inventory_debounce: 0.2}")
        defer { st.stop() }
        let sub = try st.subscriber()
        try st.startGateway()
        #expect(eventually(timeout: 30) { Self.telemetry(sub).count >= 3 })
        let reply = try st.command("rebirth", [:], abs: abs, subscriber: sub)
        #expect(reply["ok"] as? Bool == true, "\(reply)")
        #expect(eventually(timeout: 30) { Self.telemetry(sub).dropFirst().contains { $0["kind"] as? String == "full" } })
        let msgs = Self.telemetry(sub)
        #expect(msgs.map { $0["tseq"] as? Int ?? -1 } == Array(1 ... msgs.count))
        let rebirthFull = msgs.dropFirst().first { $0["kind"] as? String == "full" }
        #expect(((rebirthFull?["slots"] as? [[String: Any]]) ?? []).count == 8)

        for _ in 0 ..< 2 {
            try st.broker.restart()
            let again = try st.subscriber()
            #expect(eventually(timeout: 60) { !Self.telemetry(again).isEmpty }, "\(st.gateway?.output().suffix(2000) ?? "")")
            let first = Self.telemetry(again)[0]
            #expect(first["kind"] as? String == "full" && first["tseq"] as? Int == 1, "\(first["kind"] ?? "-") \(first["tseq"] ?? "-")")
            #expect(eventually(timeout: 30) { Self.telemetry(again).count >= 3 })
            let seq = Self.telemetry(again).map { $0["tseq"] as? Int ?? -1 }
            #expect(seq == Array(1 ... seq.count), "\(seq)")
            again.stop()
        }
    }
}
