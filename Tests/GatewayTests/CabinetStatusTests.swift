import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GatewayCore
import StationDomain
import Testing
import TestSupport

/// Status, health and metrics tell the truth for every cabinet (issue 10): a station of three cabinets (one
/// station-sim serving units 1, 3 and 4, each on its own TCP port), one of them silenced, then all, then none.
/// What swapctl, /health, /metrics (read by Python's prometheus_client) and the retained MQTT status say must agree.
@Suite(.serialized) struct CabinetStatusTests {
    /// Every sample of a Prometheus text as `name[('label', 'value'), …] value`, parsed by prometheus_client.
    static func parsedMetrics(_ text: String) throws -> [String: Double] {
        let parser = """
        import sys
        from prometheus_client.parser import text_string_to_metric_families
        for fam in text_string_to_metric_families(sys.stdin.read()):
            for s in fam.samples:
                print(s.name + (str(sorted(s.labels.items())) if s.labels else ""), s.value)
        """
        let parsed = try runCommand("/usr/bin/python3", ["-c", parser], input: text)
        #expect(parsed.status == 0, "\(parsed.output)")
        var out: [String: Double] = [:]
        for line in parsed.output.split(separator: "\n") {
            guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else { continue }
            out[String(line[..<space])] = v
        }
        return out
    }

    static func health(_ st: CabinetsStation) throws -> (code: Int, body: [String: Any]) {
        let r = try runCommand("/usr/bin/curl", ["-s", "-w", "\n%{http_code}", "http://127.0.0.1:\(st.metricsPort)/health"])
        let parts = r.output.split(separator: "\n")
        let body = (try? JSONSerialization.jsonObject(with: Data((parts.dropLast().joined(separator: "\n")).utf8))) as? [String: Any]
        return (Int(parts.last ?? "") ?? 0, body ?? [:])
    }

    static func metrics(_ st: CabinetsStation) throws -> [String: Double] {
        let scrape = try runCommand("/usr/bin/curl", ["-s", "-f", "http://127.0.0.1:\(st.metricsPort)/metrics"])
        #expect(scrape.status == 0, "\(scrape.output)")
        return try parsedMetrics(scrape.output)
    }

    static func statusJSON(_ st: CabinetsStation) throws -> [String: Any] {
        let r = try st.swapctl(["status", "--json"])
        return ((try? JSONSerialization.jsonObject(with: Data(r.output.utf8))) as? [String: Any]) ?? [:]
    }

    static func cabinetStates(_ status: [String: Any]) -> [String: String] {
        var out: [String: String] = [:]
        for c in (status["cabinets"] as? [[String: Any]]) ?? [] { out[c["id"] as? String ?? "?"] = c["state"] as? String }
        return out
    }

    static func up(_ m: [String: Double], _ id: String) -> Double? { m["swapgate_cabinet_up[('cabinet', '\(id)')]"] }

    @Test func oneSilentCabinetIsReportedUnreachableEverywhereWhileTheOthersStayOnline() throws {
        let abs = try ABS.generate()
        let st = try CabinetsStation(sims: { _ in
            ["ABC": try SimulatorProcess(["--units", "1,3,4", "--cabinet-ports", "0,0,0", "--slots", "2", "--fill", "full",
                                          "--serial-number", "SIM-A,SIM-B,SIM-C"])]
        }, cabinets: { s in
            let p = s.sims["ABC"]!.cabinetPorts
            return [("A", 1), ("B", 3), ("C", 4)].map { id, unit in
                "{id: \(id), host: 127.0.0.1, port: \(p[unit]!), unit: \(unit), meter: \(unit == 1), fast_interval: 0.2, watchdog_interval: 1, detail_interval: 1, response_timeout: 0.3, reconnect_delay_max: 2}"
            }
        }, extraConfig: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        defer { st.stop() }
        let sim = st.sims["ABC"]!
        let sub = try st.subscriber()
        try st.startGateway()
        let log = { st.gateway?.output().suffix(3000) ?? "" }

        // All three answer: every reader says online.
        #expect(eventually(timeout: 30, interval: 0.2) {
            Self.cabinetStates((try? Self.statusJSON(st)) ?? [:]) == ["A": "online", "B": "online", "C": "online"]
        }, "\(log())")
        var status = try Self.statusJSON(st)
        #expect((status["cabinet"] as? [String: Any])?["state"] as? String == "online", "\(status)")
        #expect((status["cabinet"] as? [String: Any])?["up"] as? Bool == true)
        let cabs = (status["cabinets"] as? [[String: Any]]) ?? []
        #expect(cabs.map { "\($0["firstSlot"] ?? "")-\($0["slotCount"] ?? "")" } == ["1-2", "3-2", "5-2"], "\(cabs)")
        #expect(cabs.map { $0["transport"] as? String } == ["tcp", "tcp", "tcp"])
        #expect(cabs.map { $0["address"] as? String } == [1, 3, 4].map { "127.0.0.1:\(sim.cabinetPorts[$0]!)" })
        #expect(cabs.allSatisfy { $0["lastPollOK"] as? Bool == true && $0["stale"] as? Bool == false && $0["backoffSeconds"] as? Double == 0 })
        #expect(eventually(timeout: 10, interval: 0.2) {
            let c = (((try? Self.statusJSON(st)) ?? [:])["cabinets"] as? [[String: Any]]) ?? []
            return c.count == 3 && c.allSatisfy { ($0["watchdogWrites"] as? Int ?? 0) > 0 && $0["clockSetAt"] is String }
        }, "\(status)")
        var text = try st.swapctl(["status"]).output
        #expect(text.contains("cabinet       online   all online"), "\(text)")
        var h = try Self.health(st)
        #expect(h.code == 200 && h.body["status"] as? String == "healthy", "\(h)")

        // B falls silent (its unit answers nothing on its port): B alone is unreachable, the station degraded.
        _ = try sim.control(["cmd": "fault", "kind": "silent", "unit": 3])
        #expect(eventually(timeout: 30, interval: 0.2) {
            Self.cabinetStates((try? Self.statusJSON(st)) ?? [:]) == ["A": "online", "B": "unreachable", "C": "online"]
        }, "\(log())")
        status = try Self.statusJSON(st)
        let summary = (status["cabinet"] as? [String: Any]) ?? [:]
        #expect(summary["state"] as? String == "degraded" && summary["up"] as? Bool == false, "\(summary)")
        #expect(summary["detail"] as? String == "degraded: B unreachable", "\(summary)")
        let b = ((status["cabinets"] as? [[String: Any]]) ?? [])[1]
        #expect(b["stale"] as? Bool == true && b["lastPollOK"] as? Bool == false, "\(b)")
        #expect((b["consecutiveFailures"] as? Int ?? 0) >= 2, "\(b)")
        #expect((b["backoffSeconds"] as? Double ?? 0) > 0 && b["nextPollAt"] is String, "\(b)")
        #expect(((status["alarms"] as? [String]) ?? []).contains { $0.hasPrefix("cabinet B not answering (its slots 3…4 are out of swaps)") },
                "\(status["alarms"] ?? "")")
        text = try st.swapctl(["status"]).output
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.contains("cabinet       DEGRADED   B unreachable"), "\(text)")
        #expect(lines.contains { $0.hasPrefix("cabinet B") && $0.contains("UNREACHABLE") && $0.contains("STALE") && $0.contains("failed polls in a row") && $0.contains("retry") }, "\(text)")
        #expect(lines.contains { $0.hasPrefix("cabinet A") && $0.contains("online") && $0.contains("slots 1…2") && !$0.contains("STALE") }, "\(text)")
        #expect(lines.contains { $0.hasPrefix("cabinet C") && $0.contains("online") && $0.contains("slots 5…6") }, "\(text)")
        // /health: degraded, still 200 (A and C serve their slots), B named in the warnings.
        h = try Self.health(st)
        #expect(h.code == 200 && h.body["healthy"] as? Bool == true && h.body["status"] as? String == "degraded", "\(h)")
        #expect(((h.body["warnings"] as? [String]) ?? []).contains("cabinet B not answering (slots 3…4 out of swaps)"), "\(h)")
        #expect(((h.body["cabinets"] as? [[String: Any]]) ?? []).map { $0["state"] as? String } == ["online", "unreachable", "online"], "\(h)")
        // /metrics, per cabinet.
        var m = try Self.metrics(st)
        #expect(Self.up(m, "A") == 1 && Self.up(m, "B") == 0 && Self.up(m, "C") == 1, "\(m.filter { $0.key.hasPrefix("swapgate_cabinet_up") })")
        #expect(m["swapgate_cabinet_state[('cabinet', 'B'), ('state', 'unreachable')]"] == 1)
        #expect(m["swapgate_cabinet_state[('cabinet', 'B'), ('state', 'online')]"] == 0)
        #expect(m["swapgate_cabinet_stale[('cabinet', 'B')]"] == 1 && m["swapgate_cabinet_stale[('cabinet', 'A')]"] == 0)
        #expect((m["swapgate_cabinet_backoff_seconds[('cabinet', 'B')]"] ?? 0) > 0 && m["swapgate_cabinet_backoff_seconds[('cabinet', 'A')]"] == 0)
        #expect((m["swapgate_bus_cycles_total[('cabinet', 'B'), ('result', 'failed')]"] ?? 0) >= 2)
        #expect((m["swapgate_cabinet_watchdog_writes_total[('cabinet', 'C'), ('result', 'ok')]"] ?? 0) > 0)
        #expect(m["swapgate_slots[('cabinet', 'B'), ('state', 'unknown')]"] == 2 && m["swapgate_slots[('cabinet', 'A'), ('state', 'unknown')]"] == 0)
        // The retained MQTT status says the same of each cabinet.
        #expect(eventually(timeout: 10) {
            (payloads(in: sub.lines(), topicSuffix: "/status").last?["cabinets"] as? [String: String]) == ["A": "online", "B": "unreachable", "C": "online"]
        }, "\(payloads(in: sub.lines(), topicSuffix: "/status").last ?? [:])")

        // A and C fall silent too: nothing serves, the station is down and unhealthy (503).
        _ = try sim.control(["cmd": "fault", "kind": "silent", "unit": 1])
        _ = try sim.control(["cmd": "fault", "kind": "silent", "unit": 4])
        #expect(eventually(timeout: 30, interval: 0.2) { ((try? Self.health(st))?.code ?? 0) == 503 }, "\(log())")
        h = try Self.health(st)
        #expect(h.body["status"] as? String == "unhealthy" && h.body["healthy"] as? Bool == false, "\(h)")
        #expect(Set((h.body["problems"] as? [String]) ?? []).isSuperset(of: ["cabinet A not answering", "cabinet B not answering", "cabinet C not answering"]), "\(h)")
        status = try Self.statusJSON(st)
        #expect((status["cabinet"] as? [String: Any])?["state"] as? String == "down", "\(status["cabinet"] ?? "")")
        #expect(try st.swapctl(["status"]).output.contains("cabinet       DOWN   A unreachable, B unreachable, C unreachable"))

        // All answer again: all online, healthy, every gauge back to 1.
        for unit in [1, 3, 4] { _ = try sim.control(["cmd": "clear_faults", "unit": unit]) }
        #expect(eventually(timeout: 30, interval: 0.2) {
            Self.cabinetStates((try? Self.statusJSON(st)) ?? [:]) == ["A": "online", "B": "online", "C": "online"]
        }, "\(log())")
        #expect((try Self.statusJSON(st)["cabinet"] as? [String: Any])?["detail"] as? String == "all online")
        h = try Self.health(st)
        #expect(h.code == 200 && h.body["status"] as? String == "healthy" && ((h.body["warnings"] as? [String]) ?? []).isEmpty, "\(h)")
        m = try Self.metrics(st)
        #expect(Self.up(m, "A") == 1 && Self.up(m, "B") == 1 && Self.up(m, "C") == 1)
        #expect(m["swapgate_cabinet_backoff_seconds[('cabinet', 'B')]"] == 0)
        #expect(eventually(timeout: 10) {
            (payloads(in: sub.lines(), topicSuffix: "/status").last?["cabinets"] as? [String: String]) == ["A": "online", "B": "online", "C": "online"]
        }, "\(payloads(in: sub.lines(), topicSuffix: "/status").last ?? [:])")
    }

    /// Two unit ids behind one TCP address (one bus owner serves both in turn): the silent unit alone is
    /// unreachable in status, health and metrics, and it is polled at its backoff while the other stays online.
    /// A cabinet that never answers from the start (nothing listens at its address) produces no change batch at
    /// all: the retained MQTT status must still move from `unknown` to `unreachable` on its own, with a quiet
    /// cabinet beside it (full batteries, nothing charging) that gives no other reason to republish.
    @Test func aCabinetThatNeverAnsweredIsReportedUnreachableInTheRetainedStatus() throws {
        // A loopback port nobody listens on: bound, then closed.
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in(); addr.sin_family = sa_family_t(AF_INET); addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(probe, $0, &len) } }
        let deadPort = Int(UInt16(bigEndian: addr.sin_port))
        close(probe)
        let st = try CabinetsStation(sims: { _ in
            ["A": try SimulatorProcess(["--slots", "2", "--fill", "full", "--port", "0", "--control-port", "0", "--serial-number", "SIM-A"])]
        }, cabinets: { s in
            ["{id: A, host: 127.0.0.1, port: \(s.sims["A"]!.modbusPort!), unit: 1, meter: true, fast_interval: 0.2, watchdog_interval: 1, detail_interval: 1, response_timeout: 0.3, reconnect_delay_max: 2}",
             "{id: B, host: 127.0.0.1, port: \(deadPort), unit: 1, fast_interval: 0.2, watchdog_interval: 1, detail_interval: 1, response_timeout: 0.3, reconnect_delay_max: 2}"]
        }, extraConfig: "abs: {allow_unsigned: true}")
        defer { st.stop() }
        let sub = try st.subscriber()
        try st.startGateway()
        // The control API says it first (it computes on demand) …
        #expect(eventually(timeout: 30, interval: 0.2) {
            Self.cabinetStates((try? Self.statusJSON(st)) ?? [:]) == ["A": "online", "B": "unreachable"]
        }, "\(st.gateway?.output().suffix(3000) ?? "")")
        // … and the retained status follows without any change at the cabinets.
        #expect(eventually(timeout: 15, interval: 0.2) {
            (payloads(in: sub.lines(), topicSuffix: "/status").last?["cabinets"] as? [String: String]) == ["A": "online", "B": "unreachable"]
        }, "\(payloads(in: sub.lines(), topicSuffix: "/status").map { $0["cabinets"] ?? "" })")
    }

    @Test func aSilentUnitOnASharedBusIsReportedAloneAndComesBack() throws {
        let abs = try ABS.generate()
        let st = try CabinetsStation(sims: { _ in
            ["AB": try SimulatorProcess(["--units", "1,3", "--slots", "2", "--fill", "full", "--serial-number", "SIM-A,SIM-B"])]
        }, cabinets: { s in
            let port = s.sims["AB"]!.modbusPort!
            return [("A", 1), ("B", 3)].map { id, unit in
                "{id: \(id), host: 127.0.0.1, port: \(port), unit: \(unit), fast_interval: 0.2, watchdog_interval: 1, detail_interval: 1, response_timeout: 0.3, reconnect_delay_max: 2}"
            }
        }, extraConfig: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        defer { st.stop() }
        let sim = st.sims["AB"]!
        try st.startGateway()
        let log = { st.gateway?.output().suffix(3000) ?? "" }
        #expect(eventually(timeout: 30, interval: 0.2) {
            Self.cabinetStates((try? Self.statusJSON(st)) ?? [:]) == ["A": "online", "B": "online"]
        }, "\(log())")
        let cabs = (try Self.statusJSON(st)["cabinets"] as? [[String: Any]]) ?? []
        #expect(Set(cabs.compactMap { $0["bus"] as? String }).count == 1, "\(cabs)")   // one bus
        for round in 1 ... 2 {
            _ = try sim.control(["cmd": "fault", "kind": "silent", "unit": 3])
            #expect(eventually(timeout: 30, interval: 0.2) {
                Self.cabinetStates((try? Self.statusJSON(st)) ?? [:]) == ["A": "online", "B": "unreachable"]
            }, "round \(round): \(log())")
            let text = try st.swapctl(["status"]).output
            #expect(text.contains("cabinet       DEGRADED   B unreachable"), "round \(round): \(text)")
            let h = try Self.health(st)
            #expect(h.code == 200 && h.body["status"] as? String == "degraded", "round \(round): \(h)")
            let m = try Self.metrics(st)
            #expect(Self.up(m, "A") == 1 && Self.up(m, "B") == 0, "round \(round)")
            #expect((m["swapgate_cabinet_backoff_seconds[('cabinet', 'B')]"] ?? 0) > 0, "round \(round)")
            _ = try sim.control(["cmd": "clear_faults", "unit": 3])
            #expect(eventually(timeout: 30, interval: 0.2) {
                Self.cabinetStates((try? Self.statusJSON(st)) ?? [:]) == ["A": "online", "B": "online"]
            }, "round \(round): \(log())")
            #expect(try Self.health(st).body["status"] as? String == "healthy")
            let back = try Self.metrics(st)
            #expect(Self.up(back, "A") == 1 && Self.up(back, "B") == 1, "round \(round)")
        }
    }

    /// The summary is never better than the worst cabinet, and `unknown` only before any verdict.
    @Test func theCabinetSummaryIsHonest() {
        func s(_ states: [(String, CabinetLinkState)]) -> String {
            let r = CabinetReports.summary(states: states.map { (id: $0.0, state: $0.1) })
            return "\(r.state) | \(r.detail)"
        }
        #expect(s([("A", .online)]) == "online | online")
        #expect(s([("A", .unreachable)]) == "down | down: unreachable")
        #expect(s([("A", .unknown)]) == "unknown | not polled yet")
        #expect(s([("A", .online), ("B", .online)]) == "online | all online")
        #expect(s([("A", .online), ("B", .unreachable)]) == "degraded | degraded: B unreachable")
        #expect(s([("A", .online), ("B", .unknown)]) == "degraded | degraded: B unknown")
        #expect(s([("A", .safeMode), ("B", .unreachable)]) == "down | down: A safe_mode, B unreachable")
        #expect(s([("A", .unknown), ("B", .unknown)]) == "unknown | not polled yet")
        // A cabinet never read: unknown until its own polls have failed enough to call it stale, then unreachable.
        let never = CabinetState(id: "B", unit: 3)
        #expect(CabinetLinkState.of(never, failuresInARow: 0, staleAfter: 2) == .unknown)
        #expect(CabinetLinkState.of(never, failuresInARow: 1, staleAfter: 2) == .unknown)
        #expect(CabinetLinkState.of(never, failuresInARow: 2, staleAfter: 2) == .unreachable)
        // Once read: unreachable when stale, safe_mode, online.
        let info = CabinetInfo()
        #expect(CabinetLinkState.of(CabinetState(id: "B", info: info, stale: true), failuresInARow: 2, staleAfter: 2) == .unreachable)
        #expect(CabinetLinkState.of(CabinetState(id: "B", info: info, stale: false), failuresInARow: 0, staleAfter: 2) == .online)
        #expect(CabinetLinkState.of(CabinetState(id: "B", info: CabinetInfo(safeMode: true), stale: false), failuresInARow: 0, staleAfter: 2) == .safeMode)
    }

    /// Label values are escaped so that an outside parser reads them back unchanged.
    @Test func labelValuesAreEscapedForPrometheus() throws {
        let nasty = "B\"\\x\ny"
        let text = "# TYPE swapgate_cabinet_up gauge\nswapgate_cabinet_up{cabinet=\"\(MetricsExposition.escapeLabelValue(nasty))\"} 1\n"
        let script = """
        import sys
        from prometheus_client.parser import text_string_to_metric_families
        for fam in text_string_to_metric_families(sys.stdin.read()):
            for s in fam.samples:
                sys.stdout.write(repr(s.labels["cabinet"]))
        """
        let r = try runCommand("/usr/bin/python3", ["-c", script], input: text)
        #expect(r.status == 0 && r.output == "'B\"\\\\x\\ny'", "\(r.output)")
    }
}
