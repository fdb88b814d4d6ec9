import Foundation
import GatewayCore
import StationDomain
import Testing
import TestSupport

/// swapctl end to end against a running daemon (its Unix control socket), the technician's cabinet actions,
/// and the loopback metrics/health endpoint scraped by outside peers (curl, Python's prometheus_client).
@Suite(.serialized) struct ControlAPITests {
    static func station() throws -> (Station, MosquittoSubscriber) {
        let st = try Station(slots: 8)
        let sub = try st.subscriber()
        try st.startGateway()
        return (st, sub)
    }

    @Test func swapctlShowsTheStationAsTablesAndJSON() throws {
        let (st, _) = try Self.station()
        defer { st.stop() }

        let status = try st.swapctl(["status"])
        #expect(status.status == 0, "\(status.output)")
        #expect(status.output.contains(Station.id))
        #expect(status.output.contains("cabinet       online"), "\(status.output)")
        #expect(status.output.contains("broker        up"), "\(status.output)")
        let statusJSON = try #require(try st.swapctlJSON(["status"]) as? [String: Any])
        #expect(statusJSON["stationID"] as? String == Station.id)
        #expect((statusJSON["cabinet"] as? [String: Any])?["up"] as? Bool == true)
        #expect(statusJSON["pid"] as? Int == Int(st.gateway!.pid))

        let slots = try st.swapctl(["slots"])
        #expect(slots.status == 0)
        #expect(slots.output.contains("slot  status"), "\(slots.output)")
        let slotsJSON = try #require(try st.swapctlJSON(["slots"]) as? [String: Any])
        let rows = try #require(slotsJSON["slots"] as? [[String: Any]])
        #expect(rows.count == 8)
        #expect(rows.compactMap { ($0["slot"] as? [String: Any])?["number"] as? Int } == Array(1 ... 8))
        // The same slot, read by the simulator itself: the table tells the truth.
        let simState = try st.sim.control(["cmd": "state"])
        let simSlots = ((simState["state"] as? [String: Any])?["slots"] as? [[String: Any]]) ?? []
        let simIDs = Set(simSlots.compactMap { ($0["battery"] as? [String: Any])?["id"] as? String })
        let shownIDs = Set(rows.compactMap { (($0["slot"] as? [String: Any])?["bms"] as? [String: Any])?["batteryID"] as? String })
        #expect(!shownIDs.isEmpty && shownIDs == simIDs, "swapctl \(shownIDs) vs simulator \(simIDs)")

        // --watch keeps one connection and refreshes.
        let watch = try st.swapctl(["slots", "--watch", "--count", "2", "--interval", "0.2"])
        #expect(watch.status == 0)
        #expect(watch.output.components(separatedBy: "slot  status").count - 1 == 2, "\(watch.output)")

        let full = try #require(rows.first { (($0["slot"] as? [String: Any])?["bms"]) != nil })
        let fullSlot = try #require((full["slot"] as? [String: Any])?["number"] as? Int)
        let bms = try #require(try st.swapctlJSON(["bms", "\(fullSlot)"]) as? [String: Any])
        let cells = try #require((bms["cells"] as? [String: Any])?["cellVoltages"] as? [Double])
        #expect(!cells.isEmpty && cells.allSatisfy { $0 > 2 && $0 < 5 }, "\(cells)")
        let bmsTable = try st.swapctl(["bms", "\(fullSlot)"])
        #expect(bmsTable.output.contains("cell  1"), "\(bmsTable.output)")
        let badSlot = try st.swapctl(["bms", "99"])
        #expect(badSlot.status == 4 && badSlot.output.contains("invalid_slot"), "\(badSlot)")

        // Raw reads through the daemon's bus owner: the device block starts with the map's magic.
        let raw = try #require(try st.swapctlJSON(["read", "--address", "\(CabinetMap.deviceBlock.start)", "--count", "6"]) as? [String: Any])
        let regs = try #require(raw["registers"] as? [Int])
        #expect(regs.count == 6 && regs[CabinetMap.Device.magic] == Int(CabinetMap.magic) && regs[CabinetMap.Device.slotCount] == 8, "\(regs)")
        let tooMany = try st.swapctl(["read", "--address", "0", "--count", "200"])
        #expect(tooMany.status == 1 && tooMany.output.contains("bad_request"), "\(tooMany)")

        // Event log: newest first; search by type.
        let events = try #require(try st.swapctlJSON(["events", "--limit", "5"]) as? [[String: Any]])
        let seqs = events.compactMap { $0["seq"] as? Int }
        #expect(seqs.count == 5 && seqs == seqs.sorted(by: >), "\(seqs)")
        let started = try #require(try st.swapctlJSON(["events", "--type", "gateway.started"]) as? [[String: Any]])
        #expect(started.count == 1 && started.allSatisfy { $0["type"] as? String == "gateway.started" })
        let fromOne = try #require(try st.swapctlJSON(["events", "--from-seq", "1", "--limit", "3"]) as? [[String: Any]])
        #expect(fromOne.compactMap { $0["seq"] as? Int } == [1, 2, 3])

        let queues = try #require(try st.swapctlJSON(["queues"]) as? [String: Any])
        #expect(queues["brokerConnected"] as? Bool == true)
        #expect((queues["eventsTotal"] as? Int ?? 0) >= 5)
        let queuesTable = try st.swapctl(["queues"])
        #expect(queuesTable.output.contains("events") && queuesTable.output.contains("usage"))

        let ent = try #require(try st.swapctlJSON(["entitlements", "cust-nobody"]) as? [String: Any])
        #expect((ent["entitlements"] as? [Any])?.isEmpty == true)
        #expect(try st.swapctl(["entitlements", "cust-nobody"]).output.contains("no entitlement for cust-nobody"))

        let shown = try st.swapctl(["config", "show"])
        #expect(shown.status == 0 && shown.output.contains("station:") && shown.output.contains("id: \(Station.id)"), "\(shown.output)")
        let check = try st.swapctl(["config", "check", "-c", st.configPath], socket: false)
        #expect(check.status == 0 && check.output.contains("ok"), "\(check)")

        // An outside client that half-closes after its request (socat from a pipe) still gets the answer.
        let viaSocat = try runCommand("/bin/sh", ["-c", "echo '{\"op\":\"status\"}' | socat - UNIX-CONNECT:\(st.controlSocket)"])
        #expect(viaSocat.output.contains("\"ok\":true") && viaSocat.output.contains(Station.id), "\(viaSocat)")
        let garbage = try runCommand("/bin/sh", ["-c", "echo 'not json' | socat - UNIX-CONNECT:\(st.controlSocket)"])
        #expect(garbage.output.contains("bad_request"), "\(garbage)")

        // A client that opens connections and never lets go cannot starve the socket: past 32, new ones are closed.
        let hog = """
        import socket, sys, time
        socks = []
        for _ in range(40):
            s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(0.05); socks.append(s)
        time.sleep(0.5)
        closed = 0
        for s in socks:
            try:
                if s.recv(1) == b"": closed += 1
            except socket.timeout:
                pass
        print("closed", closed)
        """
        let hogged = try runCommand("/usr/bin/python3", ["-c", hog, st.controlSocket], timeout: 120)
        #expect(hogged.output.contains("closed 8"), "\(hogged.output)")
        #expect(try st.swapctl(["status"]).status == 0, "the daemon stopped answering after a connection flood")

        // A daemon that is not there: exit 2 and a hint.
        let missing = try runCommand(try productPath("swapctl"), ["status", "--socket", st.dir.path("nope.sock")])
        #expect(missing.status == 2 && missing.output.contains("is swapgate running"), "\(missing)")
    }

    @Test func maintenanceUnlockNeedsTheTechniciansCredentialAndIsAudited() throws {
        let (st, sub) = try Self.station()
        defer { st.stop() }
        let wrong = st.dir.path("wrong.cred")
        let right = st.dir.path("right.cred")
        try "not-the-credential\n".write(toFile: wrong, atomically: true, encoding: .utf8)
        try "\(Station.technician.credential)\n".write(toFile: right, atomically: true, encoding: .utf8)
        func unlocks() throws -> [[String: Any]] {
            (((try st.sim.control(["cmd": "log"]))["commands"] as? [[String: Any]]) ?? []).filter { $0["cmd"] as? Int == 1 }
        }

        // Refused: a wrong credential, an unknown technician, no credential at all (stdin is not a terminal).
        let refused = try st.swapctl(["unlock", "3", "--technician", Station.technician.name, "--credential-file", wrong, "--reason", "check lock"])
        #expect(refused.status == 4 && refused.output.contains("unauthorized"), "\(refused)")
        let stranger = try st.swapctl(["unlock", "3", "--technician", "mallory", "--credential-file", right])
        #expect(stranger.status == 4, "\(stranger)")
        let none = try st.swapctl(["unlock", "3", "--technician", Station.technician.name])
        #expect(none.status == 1 && none.output.contains("no credential"), "\(none)")
        #expect(try unlocks().isEmpty, "a refused unlock reached the cabinet")

        // Accepted: the door opens, the audit trail and ABS know who and why.
        let ok = try st.swapctl(["unlock", "3", "--technician", Station.technician.name, "--credential-file", right, "--reason", "replace lock"])
        #expect(ok.status == 0 && ok.output.contains("slot 3 unlocked"), "\(ok)")
        #expect(try unlocks().map { $0["slot"] as? Int } == [3])
        #expect(eventually(timeout: 10) { events(in: sub.lines()).contains { $0.type == "maintenance.unlock" } })
        let published = try #require(events(in: sub.lines()).first { $0.type == "maintenance.unlock" })
        #expect(published.int("slot") == 3)
        #expect(published.string("operator_id") == "technician:\(Station.technician.name)")
        #expect(published.string("reason") == "replace lock")

        let audit = try #require(try st.swapctlJSON(["audit", "--limit", "20"]) as? [[String: Any]])
        let actions = audit.map { "\($0["actor"] as? String ?? "") \($0["action"] as? String ?? "")" }
        #expect(actions.contains("technician:\(Station.technician.name) maintenance.unlock"), "\(actions)")
        #expect(actions.filter { $0.hasSuffix("maintenance.unlock.refused") }.count == 2, "\(actions)")
        // The credential is nowhere: not in the audit, not in the daemon's log.
        #expect(!audit.description.contains(Station.technician.credential))
        #expect(!(st.gateway?.output().contains(Station.technician.credential) ?? true))
        #expect(!(st.gateway?.output().contains("not-the-credential") ?? true))

        // Out of service and back, with the same credential rules.
        let out = try st.swapctl(["service", "4", "--out", "--technician", Station.technician.name, "--credential-file", right])
        #expect(out.status == 0, "\(out)")
        #expect(eventually(timeout: 10) {
            let v = try? st.swapctlJSON(["slots"]) as? [String: Any]
            let rows = (v?["slots"] as? [[String: Any]]) ?? []
            return rows.first { (($0["slot"] as? [String: Any])?["number"] as? Int) == 4 }?["status"] as? String == "out-of-service"
        })
        let back = try st.swapctl(["service", "4", "--in", "--technician", Station.technician.name, "--credential-file", wrong])
        #expect(back.status == 4)
        #expect(try st.swapctl(["service", "4", "--in", "--technician", Station.technician.name, "--credential-file", right]).status == 0)
    }

    @Test func metricsAreValidPrometheusTextAndHealthFollowsTheCabinet() throws {
        let (st, _) = try Self.station()
        defer { st.stop() }
        let url = "http://127.0.0.1:\(st.metricsPort)"
        let scrape = try runCommand("/usr/bin/curl", ["-s", "-f", "\(url)/metrics"])
        #expect(scrape.status == 0, "\(scrape)")
        // An outside parser: Python's prometheus_client reads every family and sample.
        let parser = """
        import sys
        from prometheus_client.parser import text_string_to_metric_families
        names = {}
        for fam in text_string_to_metric_families(sys.stdin.read()):
            for s in fam.samples:
                names[s.name + (str(sorted(s.labels.items())) if s.labels else "")] = s.value
        for k, v in sorted(names.items()):
            print(k, v)
        """
        let parsed = try runCommand("/usr/bin/python3", ["-c", parser], input: scrape.output)
        #expect(parsed.status == 0, "\(parsed.output)")
        let lines = parsed.output.split(separator: "\n").map(String.init)
        func value(_ name: String) -> Double? {
            lines.first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last!) }
        }
        // One cabinet: the bus and cabinet families carry cabinet="A" (the same names as before the label).
        #expect((value("swapgate_bus_requests_total[('cabinet', 'A')]") ?? 0) > 0, "\(parsed.output)")
        #expect(value("swapgate_bus_errors_total[('cabinet', 'A')]") != nil)
        #expect(value("swapgate_cabinet_up[('cabinet', 'A')]") == 1)
        #expect(value("swapgate_mqtt_connected") == 1)
        #expect(value("swapgate_events_unsent") != nil)
        #expect(value("swapgate_events_oldest_unsent_age_seconds") != nil)
        #expect(lines.contains { $0.hasPrefix("swapgate_slots[('cabinet', 'A'), ('state', 'empty')]") }, "\(parsed.output)")
        #expect(lines.contains { $0.hasPrefix("swapgate_decision_seconds_bucket") })
        #expect((value("swapgate_bus_cycle_seconds_count[('cabinet', 'A')]") ?? 0) > 0)
        // swapctl shows the same exposition.
        #expect(try st.swapctl(["metrics"]).output.contains("# TYPE swapgate_bus_requests_total counter"))

        let healthy = try runCommand("/usr/bin/curl", ["-s", "-w", "\n%{http_code}", "\(url)/health"])
        #expect(healthy.output.hasSuffix("200"), "\(healthy.output)")
        #expect(healthy.output.contains("\"healthy\":true"))
        let notFound = try runCommand("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "\(url)/nothing"])
        #expect(notFound.output == "404")

        // The cabinet stops answering: health turns 503 and says why; metrics show it.
        try st.control(["cmd": "fault", "kind": "drop", "probability": 1.0])
        #expect(eventually(timeout: 20, interval: 0.2) {
            ((try? runCommand("/usr/bin/curl", ["-s", "-w", "\n%{http_code}", "\(url)/health"]))?.output ?? "").hasSuffix("503")
        }, "\(st.gateway?.output().suffix(2000) ?? "")")
        let sick = try runCommand("/usr/bin/curl", ["-s", "\(url)/health"])
        #expect(sick.output.contains("cabinet not answering"), "\(sick.output)")
        let after = try runCommand("/usr/bin/curl", ["-s", "\(url)/metrics"]).output
        #expect(after.contains("swapgate_cabinet_up{cabinet=\"A\"} 0"), "\(after)")
        #expect(!after.contains("swapgate_bus_errors_total{cabinet=\"A\"} 0\n"), "bus errors were not counted")
    }

    @Test func diagnosticsBundleHasWhatSupportNeedsAndNoSecret() throws {
        let secret = "odoo-key-\(UUID().uuidString.prefix(8))"
        let st = try Station(slots: 4, extraConfig: "odoo: {base_url: \"http://127.0.0.1:\(freeLoopbackPort())\", api_key: \(secret)}")
        defer { st.stop() }
        try st.startGateway()
        let out = st.dir.path("diag.json")
        let r = try st.swapctl(["diagnostics", "-o", out])
        #expect(r.status == 0, "\(r)")
        let text = try String(contentsOfFile: out, encoding: .utf8)
        #expect(!text.contains(secret), "the Odoo API key leaked into the bundle")
        let bundle = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        for key in ["status", "queues", "slots", "config", "recentEvents", "audit", "recentLog", "metrics", "createdAt"] {
            #expect(bundle[key] != nil, "missing \(key)")
        }
        #expect(((bundle["recentLog"] as? [String]) ?? []).contains { $0.contains("swapgate starting") })
        let config = try #require((bundle["config"] as? [String: Any])?["text"] as? String)
        #expect(config.contains("api_key: <redacted>"), "\(config)")
        #expect(((bundle["slots"] as? [String: Any])?["slots"] as? [Any])?.count == 4)
        let mode = try FileManager.default.attributesOfItem(atPath: out)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func redactionCoversEverySecretKeyAndKeepsFilePaths() {
        let text = """
        mqtt:
          password: hunter2
          password_file: /etc/swapgate/mqtt.password
        odoo:
          base_url: x
          api_key: abc
          api_key_file: /etc/swapgate/odoo.key
        token: t
        """
        let r = ControlHandler.redact(text)
        #expect(!r.contains("hunter2") && !r.contains("abc") && !r.contains(" t\n") && !r.hasSuffix(" t"))
        #expect(r.contains("/etc/swapgate/mqtt.password") && r.contains("/etc/swapgate/odoo.key"))
        #expect(r.components(separatedBy: "<redacted>").count - 1 == 3)
    }
}

@Test func redactionCoversFlowStyleMappings() {
    let r = ControlHandler.redact("odoo: {base_url: \"http://x\", api_key: k-123, database: db}\nmqtt: {username: u, password: \"p w\"}")
    #expect(!r.contains("k-123") && !r.contains("p w"), "\(r)")
    #expect(r.contains("base_url: \"http://x\"") && r.contains("database: db") && r.contains("username: u"), "\(r)")
}
