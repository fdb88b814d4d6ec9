import Foundation
import Testing
import TestSupport

/// A station of several cabinets on loopback: mosquitto, one or more station-sim processes (each cabinet its own
/// process over TCP, or several unit ids served by one process on one RTU line) and the swapgate daemon.
final class CabinetsStation: @unchecked Sendable {
    static let id = "TG-TEST-0002"
    let dir: TempDir
    let broker: MosquittoBroker
    /// Simulators by the cabinet ids they serve.
    var sims: [String: SimulatorProcess] = [:]
    var gateway: ManagedProcess?
    let configPath: String
    let controlSocket: String
    /// The daemon's /metrics and /health port (loopback).
    let metricsPort = freeLoopbackPort()
    var pty: SocatPty?

    /// `cabinets`: the `cabinets:` entries (YAML flow mappings) after the sims are up; `sims` start them.
    init(sims: (CabinetsStation) throws -> [String: SimulatorProcess], cabinets: (CabinetsStation) -> [String],
         extraConfig: String = "") throws {
        dir = try TempDir("swapgate-cabinets")
        broker = try MosquittoBroker(options: MosquittoBrokerOptions(persistence: true))
        configPath = dir.path("swapgate.yaml")
        controlSocket = dir.path("control.sock")
        self.sims = try sims(self)
        let digest = try runCommand("/usr/bin/sha256sum", [], input: Station.technician.credential).output.prefix(64)
        try "\(Station.technician.name):\(digest)\n".write(toFile: dir.path("technicians"), atomically: true, encoding: .utf8)
        let entries = cabinets(self).map { "  - \($0)" }.joined(separator: "\n")
        try """
        station: {id: \(Self.id), network_code: NET-TEST, outlet_code: OUT-1}
        cabinets:
        \(entries)
        mqtt: {host: 127.0.0.1, port: \(broker.port), reconnect_delay_min: 1, reconnect_delay_max: 2}
        store: {path: \(dir.path("station.sqlite"))}
        publishing: {telemetry_interval: 1, inventory_debounce: 0.2, telemetry_mode: full}
        control: {socket: \(controlSocket), technicians_file: \(dir.path("technicians"))}
        metrics: {port: \(metricsPort)}
        swaps: {return_timeout: 30, pickup_timeout: 30}
        log_level: debug
        \(extraConfig)
        """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    @discardableResult
    func startGateway() throws -> ManagedProcess {
        let g = try ManagedProcess(try productPath("swapgate"), ["run", "-c", configPath], name: "swapgate")
        gateway = g
        try g.waitForOutput(timeout: 60) { $0.contains("accepting commands") }
        return g
    }

    func subscriber() throws -> MosquittoSubscriber {
        try broker.startSubscriber(topics: ["dt/V01/BSS/\(Self.id)/#"], qos: 1)
    }

    @discardableResult
    func swapctl(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try runCommand(try productPath("swapctl"), arguments + ["--socket", controlSocket], timeout: 60)
    }

    /// Sends a signed command and waits for its reply (as `Station.command`).
    func command(_ name: String, _ json: [String: Any], abs: ABS, subscriber: MosquittoSubscriber, timeout: Double = 30) throws -> [String: Any] {
        var body = json
        let requestID = "req-\(UUID().uuidString.prefix(12))"
        body["request_id"] = requestID
        try broker.publish(topic: "cmd/V01/BSS/\(Self.id)/\(name)", message: try abs.envelope(body), qos: 1)
        var reply: [String: Any]?
        _ = eventually(timeout: timeout) {
            reply = payloads(in: subscriber.lines(), topicSuffix: "/reply").last { $0["request_id"] as? String == requestID }
            return reply != nil
        }
        guard let reply else { throw TestSupportError.timeout("no reply to \(name); gateway log: \(gateway?.output().suffix(4000) ?? "")") }
        return reply
    }

    /// The unlocks a simulator executed, as (unit, slot) pairs in order.
    func unlocks(_ sim: SimulatorProcess, unit: Int? = nil) throws -> [Int] {
        var req: [String: Any] = ["cmd": "log"]
        if let unit { req["unit"] = unit }
        let log = try sim.control(req)
        return ((log["commands"] as? [[String: Any]]) ?? []).filter { $0["cmd"] as? Int == 1 }.compactMap { $0["slot"] as? Int }
    }

    func stop() {
        gateway?.stop()
        for s in sims.values { _ = s.stop() }
        pty?.stop()
        broker.stop()
        dir.remove()
    }
}

/// Several cabinets end to end (issue 10 item 1): station-wide slot numbers in swaps, commands, events, inventory
/// and telemetry; one cabinet down while the other keeps serving.
@Suite(.serialized) struct SeveralCabinetsTests {
    static func entitlement(_ n: Int, out: [String]) -> [String: Any] {
        SwapTests.entitlement(n, family: "MOBBAT-45AH", out: out)
    }

    /// Cabinet A: 4 slots, 1–2 empty, 3–4 a ready 45 Ah battery at 96 %; cabinet B: 4 full batteries (families
    /// 1, 2, 3, 1 at 100 %). So a first swap returns into A/1 (station slot 1) and takes B/2 (station slot 6).
    @Test func twoCabinetsOverTCPSwapAcrossCabinetsAndOneCabinetDownLeavesTheOtherServing() async throws {
        let abs = try ABS.generate()
        let st = try CabinetsStation(sims: { _ in
            ["A": try SimulatorProcess(["--slots", "4", "--fill", "empty", "--port", "0", "--control-port", "0", "--serial-number", "SIM-A"]),
             "B": try SimulatorProcess(["--slots", "4", "--fill", "full", "--port", "0", "--control-port", "0", "--serial-number", "SIM-B"])]
        }, cabinets: { s in
            ["{id: A, host: 127.0.0.1, port: \(s.sims["A"]!.modbusPort!), fast_interval: 0.2, watchdog_interval: 1, detail_interval: 1, response_timeout: 0.3}",
             "{id: B, host: 127.0.0.1, port: \(s.sims["B"]!.modbusPort!), fast_interval: 0.2, watchdog_interval: 1, detail_interval: 1, response_timeout: 0.3, reconnect_delay_max: 2}"]
        }, extraConfig: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        defer { st.stop() }
        let a = st.sims["A"]!, b = st.sims["B"]!
        for slot in [3, 4] {
            _ = try a.control(["cmd": "insert", "slot": slot, "id": "A45-\(slot)", "family": 2, "soc": 96, "soh": 95])
        }
        _ = try a.control(["cmd": "rider", "enabled": true, "delay": 1, "step_delay": 0.5,
                           "returns": [["id": "B45-RIDER-01", "family": 2, "soc": 10], ["id": "B45-RIDER-02", "family": 2, "soc": 12]]])
        _ = try b.control(["cmd": "rider", "enabled": true, "delay": 1, "step_delay": 0.5])
        let sub = try st.subscriber()
        try st.startGateway()

        // Telemetry and inventory carry the cabinets; slots are numbered station-wide with their cabinet.
        var telemetry: [String: Any]?
        #expect(eventually(timeout: 30) {
            telemetry = payloads(in: sub.lines(), topicSuffix: "/telemetry").last
            return ((telemetry?["slots"] as? [[String: Any]])?.count ?? 0) == 8
        }, "\(st.gateway?.output().suffix(3000) ?? "")")
        let slots = (telemetry?["slots"] as? [[String: Any]]) ?? []
        #expect(slots.map { $0["slot"] as? Int } == Array(1 ... 8))
        #expect(slots.map { $0["cabinet"] as? String } == ["A", "A", "A", "A", "B", "B", "B", "B"])
        #expect(slots.map { $0["cabinet_slot"] as? Int } == [1, 2, 3, 4, 1, 2, 3, 4])
        #expect(((telemetry?["cabinets"] as? [[String: Any]]) ?? []).map { $0["serial"] as? String } == ["SIM-A", "SIM-B"])
        var inventory: [String: Any]?
        #expect(eventually(timeout: 20) {
            inventory = payloads(in: sub.lines(), topicSuffix: "/inventory").last
            return (inventory?["ready"] as? Int) == 6
        }, "\(payloads(in: sub.lines(), topicSuffix: "/inventory").last ?? [:])")
        let perCabinet = (inventory?["cabinets"] as? [[String: Any]]) ?? []
        #expect(perCabinet.map { $0["cabinet"] as? String } == ["A", "B"])
        #expect(perCabinet.map { $0["ready"] as? Int } == [2, 4])
        #expect(perCabinet.map { $0["empty"] as? Int } == [2, 0])
        // `swapctl direct … --config` with several cabinets: --cabinet picks one (default the first).
        let swapctl = try productPath("swapctl")
        let directB = try runCommand(swapctl, ["direct", "cabinet", "--config", st.configPath, "--cabinet", "B", "--json"])
        #expect(directB.status == 0 && directB.output.contains("SIM-B") && !directB.output.contains("SIM-A"), "\(directB.output)")
        let directFirst = try runCommand(swapctl, ["direct", "cabinet", "--config", st.configPath, "--json"])
        #expect(directFirst.status == 0 && directFirst.output.contains("SIM-A"), "\(directFirst.output)")
        #expect(try runCommand(swapctl, ["direct", "cabinet", "--config", st.configPath, "--cabinet", "Z"]).status != 0)
        // First sight of B's batteries: battery.inserted with the station slot and the cabinet.
        // (B may answer before A has reported its slot count: its first batch waits for its numbers, it is not lost.)
        #expect(eventually(timeout: 20) {
            events(in: sub.lines()).contains { $0.type == "battery.inserted" && $0.int("slot") == 6 && $0.string("cabinet") == "B" && $0.string("battery_id") != nil }
        }, "\(events(in: sub.lines()).filter { $0.type == "battery.inserted" }.map(\.data))")

        // Swap 1: the return goes into A/1 (station slot 1), the ready battery comes from B/2 (station slot 6).
        #expect(try st.command("entitlements", ["kind": "snapshot", "version": 10,
                                                "entitlements": [Self.entitlement(1, out: ["B45-RIDER-01"]),
                                                                 Self.entitlement(2, out: ["B45-RIDER-02"])]],
                               abs: abs, subscriber: sub)["ok"] as? Bool == true)
        let reply = try st.command("swap", ["customer_id": "cust-1"], abs: abs, subscriber: sub)
        #expect(reply["ok"] as? Bool == true, "\(reply)")
        #expect((reply["data"] as? [String: Any])?["return_slot"] as? Int == 1)
        #expect((reply["data"] as? [String: Any])?["issue_slot"] as? Int == 6)
        #expect(eventually(timeout: 60) { events(in: sub.lines()).contains { $0.type == "swap.completed" } }, "\(st.gateway?.output().suffix(3000) ?? "")")
        let done = events(in: sub.lines()).first { $0.type == "swap.completed" }
        #expect(done?.object("battery_in")?["slot"] as? Int == 1)
        #expect(done?.object("battery_out")?["slot"] as? Int == 6)
        #expect(try st.unlocks(a) == [1])        // cabinet A: its own slot 1
        #expect(try st.unlocks(b) == [2])        // cabinet B: its own slot 2
        let removed = events(in: sub.lines()).filter { $0.type == "battery.removed" }
        #expect(removed.contains { $0.int("slot") == 6 && $0.string("cabinet") == "B" }, "\(removed.map(\.data))")
        let opened = events(in: sub.lines()).filter { $0.type == "slot.door_opened" }
        #expect(opened.contains { $0.int("slot") == 1 && $0.string("cabinet") == "A" && $0.bool("authorised") == true })

        // Cabinet B goes silent (no response to anything): only its slots go out; A keeps serving.
        _ = try b.control(["cmd": "fault", "kind": "drop", "probability": 1.0])
        #expect(eventually(timeout: 30) {
            let t = payloads(in: sub.lines(), topicSuffix: "/telemetry").last
            let cabs = (t?["cabinets"] as? [[String: Any]]) ?? []
            return cabs.count == 2 && cabs[1]["stale"] as? Bool == true && cabs[0]["stale"] as? Bool == false
        }, "\(payloads(in: sub.lines(), topicSuffix: "/telemetry").suffix(2).map { ($0["ts"] ?? "", $0["cabinets"] ?? "") }) \(st.gateway?.output().suffix(3000) ?? "")")
        let status = payloads(in: sub.lines(), topicSuffix: "/status").last
        #expect((status?["cabinets"] as? [String: String]) == ["A": "online", "B": "unreachable"], "\(status ?? [:])")
        #expect(status?["cabinet"] as? String == "online")
        let second = try st.command("swap", ["customer_id": "cust-2"], abs: abs, subscriber: sub)
        #expect(second["ok"] as? Bool == true, "\(second)")
        #expect((second["data"] as? [String: Any])?["return_slot"] as? Int == 2)
        let issue = (second["data"] as? [String: Any])?["issue_slot"] as? Int
        #expect(issue == 3 || issue == 4)
        #expect(eventually(timeout: 60) { events(in: sub.lines()).filter { $0.type == "swap.completed" }.count == 2 },
                "\(st.gateway?.output().suffix(3000) ?? "")")
        // A's slots stayed fresh throughout while B's are stale.
        let t = payloads(in: sub.lines(), topicSuffix: "/telemetry").last
        let last = (t?["slots"] as? [[String: Any]]) ?? []
        #expect(last.prefix(4).allSatisfy { $0["stale"] as? Bool == false })
        #expect(last.dropFirst(4).allSatisfy { $0["stale"] as? Bool == true })
        // An ABS unlock of a slot outside the station is invalid_slot; B's slot 6 is a slot of the station.
        let bad = try st.command("unlock", ["slot": 9, "operator_id": "op-1", "reason": "test"], abs: abs, subscriber: sub)
        #expect(bad["code"] as? String == "invalid_slot", "\(bad)")

        // B answers again: its slots come back; then it reboots (cabinet.rebooted carries B).
        _ = try b.control(["cmd": "clear_faults"])
        #expect(eventually(timeout: 30) {
            let t = payloads(in: sub.lines(), topicSuffix: "/telemetry").last
            return ((t?["slots"] as? [[String: Any]]) ?? []).dropFirst(4).allSatisfy { $0["stale"] as? Bool == false }
        }, "\(st.gateway?.output().suffix(3000) ?? "")")
        _ = try b.control(["cmd": "reboot", "down_seconds": 1])
        #expect(eventually(timeout: 30) { events(in: sub.lines()).contains { $0.type == "cabinet.rebooted" && $0.string("cabinet") == "B" } },
                "\(st.gateway?.output().suffix(3000) ?? "")")
        #expect(!events(in: sub.lines()).contains { $0.type == "cabinet.rebooted" && $0.string("cabinet") == "A" })
    }

    /// Two unit ids on one RS-485 line (a socat pty pair; one station-sim serving units 1 and 3): one bus owner
    /// serves both in turn; a swap across the two cabinets; unit 3 rebooting and down (silent on the line) while a
    /// swap on unit 1 completes and unit 1's slots stay fresh; technicians' `B/3` form.
    @Test func twoUnitIDsOnOneRTUBus() async throws {
        let abs = try ABS.generate()
        let pty = try SocatPty()
        let st = try CabinetsStation(sims: { _ in
            ["AB": try SimulatorProcess(["--serial", pty.pathA, "--units", "1,3", "--slots", "4", "--fill", "full",
                                         "--control-port", "0", "--serial-number", "SIM-A,SIM-B"])]
        }, cabinets: { _ in
            ["{id: A, transport: rtu, device: \(pty.pathB), unit: 1, fast_interval: 0.2, watchdog_interval: 1, detail_interval: 1, response_timeout: 0.3, reconnect_delay_max: 2}",
             "{id: B, transport: rtu, device: \(pty.pathB), unit: 3, fast_interval: 0.2, watchdog_interval: 1, detail_interval: 1, response_timeout: 0.3, reconnect_delay_max: 2}"]
        }, extraConfig: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        st.pty = pty
        defer { st.stop() }
        let sim = st.sims["AB"]!
        // Cabinet A (unit 1): 1–2 empty, 3–4 ready 45 Ah at 96 %; cabinet B (unit 3): full at 100 %.
        for slot in 1 ... 4 { _ = try sim.control(["cmd": "remove", "slot": slot, "unit": 1]) }
        for slot in [3, 4] {
            _ = try sim.control(["cmd": "insert", "slot": slot, "id": "A45-\(slot)", "family": 2, "soc": 96, "soh": 95, "unit": 1])
        }
        _ = try sim.control(["cmd": "rider", "enabled": true, "delay": 1, "step_delay": 0.5, "unit": 1,
                             "returns": [["id": "B45-RIDER-01", "family": 2, "soc": 10], ["id": "B45-RIDER-02", "family": 2, "soc": 12]]])
        _ = try sim.control(["cmd": "rider", "enabled": true, "delay": 1, "step_delay": 0.5, "unit": 3])
        let sub = try st.subscriber()
        try st.startGateway()
        #expect(eventually(timeout: 30) { (payloads(in: sub.lines(), topicSuffix: "/inventory").last?["ready"] as? Int) == 6 },
                "\(payloads(in: sub.lines(), topicSuffix: "/inventory").last ?? [:]) \(st.gateway?.output().suffix(3000) ?? "")")

        // Technicians see both forms and may use either.
        let slots = try st.swapctl(["slots"])
        #expect(slots.status == 0, "\(slots.output)")
        #expect(slots.output.contains("B/3"), "\(slots.output)")
        let json = try st.swapctl(["slots", "--json"])
        let rows = ((try? JSONSerialization.jsonObject(with: Data(json.output.utf8))) as? [String: Any])?["slots"] as? [[String: Any]] ?? []
        let seven = rows.compactMap { $0["slot"] as? [String: Any] }.first { $0["number"] as? Int == 7 }
        #expect(seven?["cabinet"] as? String == "B", "\(json.output.prefix(2000))")
        #expect(seven?["cabinetSlot"] as? Int == 3)

        // Swap across the cabinets on one line: return into A/1 (1), battery from B/2 (6).
        #expect(try st.command("entitlements", ["kind": "snapshot", "version": 10,
                                                "entitlements": [Self.entitlement(1, out: ["B45-RIDER-01"]),
                                                                 Self.entitlement(2, out: ["B45-RIDER-02"])]],
                               abs: abs, subscriber: sub)["ok"] as? Bool == true)
        let reply = try st.command("swap", ["customer_id": "cust-1"], abs: abs, subscriber: sub)
        #expect(reply["ok"] as? Bool == true, "\(reply)")
        #expect((reply["data"] as? [String: Any])?["return_slot"] as? Int == 1)
        #expect((reply["data"] as? [String: Any])?["issue_slot"] as? Int == 6)
        #expect(eventually(timeout: 60) { events(in: sub.lines()).contains { $0.type == "swap.completed" } }, "\(st.gateway?.output().suffix(3000) ?? "")")
        #expect(try st.unlocks(sim, unit: 1) == [1])
        #expect(try st.unlocks(sim, unit: 3) == [2])

        // Unit 3 reboots and stays down (silent on the shared line): a swap on unit 1 completes meanwhile and
        // unit 1's slots stay fresh (the bus keeps its cycle).
        _ = try sim.control(["cmd": "reboot", "down_seconds": 45, "unit": 3])
        #expect(eventually(timeout: 30) {
            let cabs = (payloads(in: sub.lines(), topicSuffix: "/telemetry").last?["cabinets"] as? [[String: Any]]) ?? []
            return cabs.count == 2 && cabs[1]["stale"] as? Bool == true
        }, "\(st.gateway?.output().suffix(3000) ?? "")")
        let telemetryBefore = payloads(in: sub.lines(), topicSuffix: "/telemetry").count
        let second = try st.command("swap", ["customer_id": "cust-2"], abs: abs, subscriber: sub)
        #expect(second["ok"] as? Bool == true, "\(second)")
        #expect((second["data"] as? [String: Any])?["return_slot"] as? Int == 2)
        #expect(eventually(timeout: 60) { events(in: sub.lines()).filter { $0.type == "swap.completed" }.count == 2 },
                "\(st.gateway?.output().suffix(3000) ?? "")")
        let during = payloads(in: sub.lines(), topicSuffix: "/telemetry").dropFirst(telemetryBefore)
            .filter { (($0["cabinets"] as? [[String: Any]]) ?? []).last?["stale"] as? Bool == true }
        #expect(!during.isEmpty)
        for t in during {
            let slots = (t["slots"] as? [[String: Any]]) ?? []
            #expect(slots.prefix(4).allSatisfy { $0["stale"] as? Bool == false }, "\(slots.prefix(4))")
        }
        // Unit 3 answers again by itself: its slots come back, and its reboot is reported with its cabinet.
        #expect(eventually(timeout: 90) { events(in: sub.lines()).contains { $0.type == "cabinet.rebooted" && $0.string("cabinet") == "B" } },
                "\(st.gateway?.output().suffix(3000) ?? "")")

        // `swapctl unlock B/3` opens unit 3's slot 3 (station slot 7).
        let credential = st.dir.path("credential")
        try Station.technician.credential.write(toFile: credential, atomically: true, encoding: .utf8)
        let unitOneBefore = try st.unlocks(sim, unit: 1)
        let unlock = try st.swapctl(["unlock", "B/3", "--technician", Station.technician.name, "--credential-file", credential,
                                     "--reason", "test"])
        #expect(unlock.status == 0, "\(unlock.output)")
        #expect(try st.unlocks(sim, unit: 3).last == 3)
        #expect(try st.unlocks(sim, unit: 1) == unitOneBefore)   // not unit 1's slot 3
    }
}

