// Several cabinet controllers in one simulator (map "several cabinets"): each unit id a whole
// cabinet with its own state, behind one TCP port, one RTU line, or a port of its own; the meter
// stays unit 2. Outside peers (mbpoll, pymodbus) read the units other than 1.
import Foundation
@testable import SimulatorCore
import TestSupport
import Testing

private let python = "/usr/bin/python3"
private let peerScript = packageRoot.appendingPathComponent("tools/sim_peer_check.py").path

/// A paused station of cabinets at `units` with these slot counts.
private func pausedStation(units: [Int], slots: [Int], fill: FillMode = .mixed, absent: AbsentUnitReply = .silent,
                           autoTick: Bool = false) throws -> Simulator {
    var config = SimulatorConfiguration(seed: 5, fill: fill, autoTick: autoTick, commandExecutionTime: 0,
                                        watchdogTimeout: 0, clock: 1_750_000_000)
    config.cabinets = try CabinetSetup.station(units: units, slots: slots)
    config.absentUnitReply = absent
    try config.validate()
    return Simulator(configuration: config)
}

/// mbpoll prints "[addr]: <tab>value".
private func mbpollValues(_ output: String) -> [Int: Int] {
    var values: [Int: Int] = [:]
    for line in output.split(separator: "\n") where line.hasPrefix("[") {
        let parts = line.dropFirst().split(separator: "]", maxSplits: 1)
        guard parts.count == 2, let addr = Int(parts[0]) else { continue }
        let rest = parts[1].drop { $0 == ":" || $0 == " " || $0 == "\t" }
        if let value = Int(rest.prefix { $0.isNumber }) { values[addr] = value }
    }
    return values
}

private func peerSummary(_ output: String) throws -> [String: Any] {
    guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
          let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        throw EngineError(description: "no JSON summary in: \(output.suffix(2000))")
    }
    return object
}

@Suite struct MultiCabinetModelTests {
    @Test func eachUnitIsAWholeCabinetOfItsOwn() throws {
        let sim = try pausedStation(units: [1, 3, 4], slots: [16, 12, 8])
        defer { sim.stop() }
        #expect(sim.units == [1, 3, 4])
        for (unit, slots, serial) in [(1, 16, "SIMCAB-000001"), (3, 12, "SIMCAB-000003"), (4, 8, "SIMCAB-000004")] {
            let d = try sim.input(0, 14, unit: UInt8(unit))
            #expect(d[0] == CabinetMap.magic && Int(d[5]) == slots)
            #expect(Array(d[6..<14]) == RegisterCodec.ascii(serial, registers: 8))
            // beyond its own last slot: exception 02, whatever the other cabinets have
            #expect(sim.exception(ModbusPDU.readInput(start: CabinetMap.slotBlockAddress(slot: slots + 1), count: 1),
                                  unit: UInt8(unit)) == 2)
            #expect(sim.snapshot(unit: unit).unit == unit && sim.snapshot(unit: unit).serialNumber == serial)
        }
        // battery ids are unique across the station
        let ids = [1, 3, 4].flatMap { u in sim.snapshot(unit: u).slots.compactMap { $0.battery?.id } }
        #expect(Set(ids).count == ids.count && ids.count == 14 + 10 + 6)
        // the meter stays unit 2; units nobody serves get nothing
        #expect(try sim.input(0, 7, unit: 2).count == 7)
        for unit: UInt8 in [0, 5, 17, 255] {
            #expect(sim.handle(unit: unit, pdu: ModbusPDU.readInput(start: 0, count: 1)) == nil)
            #expect(sim.respond(unit: unit, pdu: ModbusPDU.readInput(start: 0, count: 1), transport: .tcp) == .silent)
        }
    }

    @Test func aCommandToUnit3OpensOnlyUnit3sDoor() throws {
        let sim = try pausedStation(units: [1, 3], slots: [4, 4], fill: .empty)
        defer { sim.stop() }
        let ack = sim.writeCommand(cmd: 1, slot: 2, seq: 77, unit: 3)
        #expect(ack == [0x10, 0x03, 0xE8, 0, 4])
        #expect(!sim.snapshot(unit: 3).slots[1].locked)
        #expect(sim.snapshot(unit: 1).slots.allSatisfy { $0.locked })
        #expect(sim.commandLog(unit: 3).map(\.seq) == [77] && sim.commandLog(unit: 1).isEmpty)
        // the same seq on unit 1 is a new command there (its own RAM)
        #expect(sim.handle(unit: 1, pdu: ModbusPDU.writeMultiple(start: 1000, values: [1, 1, 77, 0])) != nil)
        #expect(!sim.snapshot(unit: 1).slots[0].locked && sim.snapshot(unit: 3).slots[0].locked)
        // registers 19/20 per unit
        #expect(try sim.input(19, 2, unit: 3) == [77, 0] && sim.input(19, 2, unit: 1) == [77, 0])
        // watchdog, clock and safe mode per unit
        try sim.setWatchdogTimeout(10, unit: 3)
        sim.tick(seconds: 11)
        #expect(sim.snapshot(unit: 3).safeMode && !sim.snapshot(unit: 1).safeMode)
        #expect(sim.handle(unit: 3, pdu: ModbusPDU.writeMultiple(start: 1010, values: RegisterCodec.u32(1_800_000_000))) != nil)
        #expect(RegisterCodec.u32(high: try sim.holding3(1010)[0], low: try sim.holding3(1010)[1]) == 1_800_000_000)
        #expect(sim.snapshot(unit: 1).clock < 1_760_000_000)
        // a reboot of unit 3 leaves unit 1's uptime alone
        sim.reboot(downSeconds: 5, unit: 3)
        #expect(sim.snapshot(unit: 3).down && !sim.snapshot(unit: 1).down)
        #expect(sim.respond(unit: 3, pdu: ModbusPDU.readInput(start: 0, count: 1), transport: .rtu) == .silent)
        #expect(sim.respond(unit: 1, pdu: ModbusPDU.readInput(start: 0, count: 1), transport: .rtu).pdu != nil)
        #expect(sim.snapshot(unit: 1).uptime == 11)
    }

    @Test func theSilentFaultSilencesOneUnitUntilCleared() throws {
        let sim = try pausedStation(units: [1, 3, 4], slots: [2, 2, 2])
        defer { sim.stop() }
        let read = ModbusPDU.readInput(start: 0, count: 1)
        try sim.inject(.silent(true), unit: 3)
        for transport in [TransportKind.tcp, .rtu] {
            #expect(sim.respond(unit: 3, pdu: read, transport: transport) == .silent)
            #expect(sim.respond(unit: 1, pdu: read, transport: transport).pdu == [0x04, 2, 0x4F, 0x56])
            #expect(sim.respond(unit: 4, pdu: read, transport: transport).pdu == [0x04, 2, 0x4F, 0x56])
            #expect(sim.respond(unit: 2, pdu: read, transport: transport).pdu?.first == 0x04)
        }
        #expect(sim.snapshot(unit: 3).faults.silent && !sim.snapshot(unit: 1).faults.silent)
        try sim.inject(.silent(false), unit: 3)
        #expect(sim.respond(unit: 3, pdu: read, transport: .tcp).pdu == [0x04, 2, 0x4F, 0x56])
        // over the control interface, and cleared with clear_faults
        #expect(sim.control(line: #"{"cmd":"fault","kind":"silent","unit":4}"#).contains(#""ok":true"#))
        #expect(sim.respond(unit: 4, pdu: read, transport: .rtu) == .silent)
        #expect(sim.control(line: #"{"cmd":"clear_faults","unit":4}"#).contains(#""ok":true"#))
        #expect(sim.respond(unit: 4, pdu: read, transport: .rtu).pdu != nil)
    }

    @Test func tcpCanAnswerAbsentUnitsWithGatewayException() throws {
        let sim = try pausedStation(units: [1, 3], slots: [2, 2], absent: .exception)
        defer { sim.stop() }
        let read = ModbusPDU.readInput(start: 0, count: 1)
        #expect(sim.respond(unit: 9, pdu: read, transport: .tcp).pdu == [0x84, 0x0B])
        #expect(sim.respond(unit: 9, pdu: read, transport: .rtu) == .silent)
        try sim.inject(.silent(true), unit: 3)
        #expect(sim.respond(unit: 3, pdu: read, transport: .tcp).pdu == [0x84, 0x0B])
        #expect(sim.respond(unit: 1, pdu: read, transport: .tcp).pdu == [0x04, 2, 0x4F, 0x56])
    }

    @Test func controlRequestsAddressACabinetByUnit() throws {
        let sim = try pausedStation(units: [1, 3], slots: [3, 5], fill: .empty)
        defer { sim.stop() }
        func ok(_ line: String) -> Bool { sim.control(line: line).contains(#""ok":true"#) }
        #expect(ok(#"{"cmd":"insert","unit":3,"slot":5,"id":"U3-BAT","family":2,"soc":20}"#))
        #expect(sim.snapshot(unit: 3).slots[4].battery?.id == "U3-BAT")
        #expect(sim.snapshot(unit: 1).slots.allSatisfy { $0.battery == nil })
        // slot 5 exists only on unit 3
        #expect(sim.control(line: #"{"cmd":"insert","slot":5,"id":"X","family":2,"soc":20}"#).contains("invalid slot 5"))
        #expect(ok(#"{"cmd":"exec","unit":3,"command":1,"slot":5}"#))
        #expect(ok(#"{"cmd":"open_door","unit":3,"slot":5}"#))
        #expect(ok(#"{"cmd":"remove","unit":3,"slot":5}"#) && ok(#"{"cmd":"close_door","unit":3,"slot":5}"#))
        #expect(sim.snapshot(unit: 3).slots[4].doorOpenCount == 1 && sim.snapshot(unit: 1).slots.allSatisfy { $0.doorOpenCount == 0 })
        #expect(ok(#"{"cmd":"set_flags","unit":3,"estop":true}"#))
        #expect(sim.snapshot(unit: 3).emergencyStop && !sim.snapshot(unit: 1).emergencyStop)
        #expect(ok(#"{"cmd":"fault","unit":3,"kind":"lock_jam","slot":1}"#))
        #expect(sim.snapshot(unit: 3).slots[0].lockJammed && !sim.snapshot(unit: 1).slots[0].lockJammed)
        let state = try JSONValue.parse(sim.control(line: #"{"cmd":"state","unit":3}"#))
        #expect(state["state"]?["unit"] == .int(3) && state["state"]?["serial_number"] == .string("SIMCAB-000003"))
        let regs = try JSONValue.parse(sim.control(line: #"{"cmd":"registers","unit":3,"start":5,"count":1}"#))
        #expect(regs["values"] == .array([.int(5)]))
        let cabinets = try JSONValue.parse(sim.control(line: #"{"cmd":"cabinets"}"#))
        #expect(cabinets["cabinets"]?.arrayValue?.compactMap { $0["unit"]?.intValue } == [1, 3])
        #expect(sim.control(line: #"{"cmd":"state","unit":7}"#).contains("no cabinet at unit 7"))
        // rider mode per unit
        #expect(ok(#"{"cmd":"rider","unit":3}"#))
        #expect(sim.snapshot(unit: 3).rider.enabled && !sim.snapshot(unit: 1).rider.enabled)
    }

    @Test func theMeterSeesEveryCabinetsChargers() throws {
        let one = try pausedStation(units: [1], slots: [4], fill: .empty)
        let two = try pausedStation(units: [1, 3], slots: [4, 4], fill: .empty)
        defer { one.stop(); two.stop() }
        for sim in [one, two] {
            try sim.insertBattery(slot: 1, id: "M-1", family: 3, soc: 20)
        }
        try two.insertBattery(slot: 1, id: "M-3", family: 3, soc: 20, unit: 3)
        one.tick(seconds: 60)
        two.tick(seconds: 60)
        let p1 = one.snapshot().meter.activePower, p2 = two.snapshot().meter.activePower
        // one more cabinet: its own 35 W and one more charging pack of the same kind
        #expect(abs(p2 - (2 * (p1 - 35) + 70)) < 1)
    }

    @Test func oneCabinetConfiguredExplicitlyIsTheOldOne() throws {
        let old = pausedSimulator(slots: 6, fill: .mixed, seed: 42, serial: "SIMCAB-000001")
        var config = old.configuration
        config.cabinets = [CabinetSetup(unit: 1, slots: 6, serialNumber: "SIMCAB-000001")]
        let explicit = Simulator(configuration: config)
        defer { old.stop(); explicit.stop() }
        old.tick(seconds: 300)
        explicit.tick(seconds: 300)
        #expect(try old.input(100, 125) == explicit.input(100, 125))
        #expect(try old.input(0, 7, unit: 2) == explicit.input(0, 7, unit: 2))
    }

    @Test func theShippedTwoCabinetScenarioSwapsAcrossCabinets() throws {
        let path = packageRoot.appendingPathComponent("firmware-sim/scenarios/two-cabinets.jsonl").path
        let lines = try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n")
        var config = SimulatorConfiguration(seed: 5, speed: 2000)
        config.cabinets = try CabinetSetup.station(units: [1, 3], slots: [4], fills: [.empty, .full])
        let sim = Simulator(configuration: config)
        defer { sim.stop() }
        var errors: [String] = []
        let responses = sim.runScenario(lines: lines, log: { errors.append($0) })
        #expect(errors.isEmpty, "\(errors)")
        #expect(responses.count > 10)
        let one = sim.snapshot(unit: 1), three = sim.snapshot(unit: 3)
        #expect(one.slots[0].battery?.id == "RIDER-X-0001" && one.rider.batteriesReturned == 1)
        #expect(!three.slots[1].batteryPresent && three.rider.batteriesTaken == 1)
        #expect(!three.faults.silent && !three.down && three.uptime < one.uptime)
    }

    @Test func configurationIsChecked() {
        #expect(throws: SimulatorError.self) { try CabinetSetup.station(units: [1, 3], slots: [4, 4, 4]) }
        for units in [[1, 2], [1, 1], [0], [248]] {
            var c = SimulatorConfiguration()
            c.cabinets = units.map { CabinetSetup(unit: $0, slots: 4, serialNumber: "S") }
            #expect(throws: SimulatorError.self) { try c.validate() }
        }
        #expect(CabinetSetup.derivedSerial("SIMCAB-000001", unit: 3) == "SIMCAB-000003")
        #expect(CabinetSetup.derivedSerial("TEST-CAB", unit: 4) == "TEST-CAB-4")
    }
}

extension Simulator {
    func holding3(_ start: Int, _ count: Int = 2) throws -> [UInt16] {
        guard let r = handle(unit: 3, pdu: ModbusPDU.readHolding(start: start, count: count)), let regs = ModbusPDU.registers(r) else {
            throw EngineError(description: "read holding \(start) on unit 3")
        }
        return regs
    }
}

@Suite(.serialized) struct MultiCabinetEndpointTests {
    let readMagic = ModbusPDU.readInput(start: 0, count: 1)

    /// Two units on one TCP port: a request to a silent unit gets nothing, and the next request,
    /// to another unit, is answered (the port does not stall behind the silent unit).
    @Test func oneTCPPortSilentUnitDoesNotHoldUpTheOthers() throws {
        let sim = try pausedStation(units: [1, 3], slots: [2, 4])
        defer { sim.stop() }
        let client = try RawTCPClient(port: try sim.startTCP())
        try sim.inject(.silent(true), unit: 3)
        client.send(RawTCPClient.mbap(tid: 1, unit: 3, pdu: readMagic)
                    + RawTCPClient.mbap(tid: 2, unit: 1, pdu: readMagic)
                    + RawTCPClient.mbap(tid: 3, unit: 2, pdu: ModbusPDU.readInput(start: 6, count: 1)))
        #expect(client.receive(11).bytes == [0, 2, 0, 0, 0, 5, 1, 0x04, 2, 0x4F, 0x56])
        #expect(Array(client.receive(11).bytes.prefix(7)) == [0, 3, 0, 0, 0, 5, 2])
        #expect(client.receive(1, timeout: 0.5).bytes.isEmpty)
        try sim.inject(.silent(false), unit: 3)
        client.send(RawTCPClient.mbap(tid: 4, unit: 3, pdu: ModbusPDU.readInput(start: 5, count: 1)))
        #expect(client.receive(11).bytes == [0, 4, 0, 0, 0, 5, 3, 0x04, 2, 0, 4])
        // a reboot of unit 3 behind the shared port keeps the connection (a bridge does not reboot)
        sim.reboot(unit: 3)
        client.send(RawTCPClient.mbap(tid: 5, unit: 1, pdu: readMagic))
        #expect(client.receive(11).bytes == [0, 5, 0, 0, 0, 5, 1, 0x04, 2, 0x4F, 0x56])
    }

    @Test func mbpollAndPymodbusReadUnits3And4OnOneTCPPort() throws {
        let sim = try pausedStation(units: [1, 3, 4], slots: [3, 5, 2], autoTick: true)
        defer { sim.stop() }
        let port = try sim.startTCP()
        for (unit, slots) in [(3, 5), (4, 2)] {
            let r = try runCommand("mbpoll", ["-m", "tcp", "-p", "\(port)", "-a", "\(unit)", "-t", "3", "-0", "-1", "-o", "5",
                                              "-r", "0", "-c", "14", "127.0.0.1"])
            #expect(r.status == 0, "\(r.output)")
            let v = mbpollValues(r.output)
            #expect(v[0] == 0x4F56 && v[5] == slots)
            #expect((6...13).map { v[$0] } == RegisterCodec.ascii("SIMCAB-00000\(unit)", registers: 8).map { Int($0) })
        }
        // an unlock written by mbpoll to unit 4 unlocks unit 4's slot 1 only
        let w = try runCommand("mbpoll", ["-m", "tcp", "-p", "\(port)", "-a", "4", "-t", "4", "-0", "-1", "-o", "5",
                                          "-r", "1000", "127.0.0.1", "--", "1", "1", "900", "0"])
        #expect(w.status == 0, "\(w.output)")
        #expect(!sim.snapshot(unit: 4).slots[0].locked)
        #expect(sim.snapshot(unit: 1).slots[0].locked && sim.snapshot(unit: 3).slots[0].locked)
        // the whole pymodbus check against unit 3 (device, slots, cells, meter, clock, unlock/lock)
        let r = try runCommand(python, [peerScript, "--port", "\(port)", "--unit", "3", "--slots", "5",
                                        "--serial-number", "SIMCAB-000003"], timeout: 180)
        #expect(r.status == 0, "\(r.output)")
        let seq = try #require((try peerSummary(r.output)["unlock"] as? [String: Any])?["seq"] as? Int)
        #expect(sim.commandLog(unit: 3).filter { Int($0.seq) == seq }.count == 1)
        #expect(sim.commandLog(unit: 1).isEmpty)
        // unit 5 is nobody: mbpoll times out
        let none = try runCommand("mbpoll", ["-m", "tcp", "-p", "\(port)", "-a", "5", "-t", "3", "-0", "-1", "-o", "1",
                                             "-r", "0", "-c", "1", "127.0.0.1"])
        #expect(none.status != 0)
    }

    @Test func threeUnitsOnOneRTUPtyWithASilentOne() throws {
        let pty = try SocatPty()
        defer { pty.stop() }
        let sim = try pausedStation(units: [1, 3, 4], slots: [2, 3, 4], autoTick: true)
        defer { sim.stop() }
        try sim.startRTU(path: pty.pathA)
        func mbpoll(unit: Int, _ args: [String], timeout: String = "5") throws -> (status: Int32, output: String) {
            try runCommand("mbpoll", ["-m", "rtu", "-b", "115200", "-P", "none", "-a", "\(unit)", "-0", "-1",
                                      "-o", timeout] + args + [pty.pathB])
        }
        let r = try runCommand(python, [peerScript, "--serial", pty.pathB, "--unit", "4", "--slots", "4",
                                        "--serial-number", "SIMCAB-000004"], timeout: 180)
        #expect(r.status == 0, "\(r.output)")
        let seq = try #require((try peerSummary(r.output)["unlock"] as? [String: Any])?["seq"] as? Int)
        #expect(sim.commandLog(unit: 4).filter { Int($0.seq) == seq }.count == 1)
        #expect(sim.commandLog(unit: 1).isEmpty && sim.commandLog(unit: 3).isEmpty)
        let three = try mbpoll(unit: 3, ["-t", "3", "-r", "5", "-c", "1"])
        #expect(three.status == 0 && mbpollValues(three.output)[5] == 3, "\(three.output)")
        let meter = try mbpoll(unit: 2, ["-t", "3", "-r", "0", "-c", "7"])
        #expect(meter.status == 0 && (4995...5005).contains(mbpollValues(meter.output)[6] ?? 0), "\(meter.output)")

        // unit 3 goes silent: it times out, units 1, 4 and the meter keep answering on the same line
        try sim.inject(.silent(true), unit: 3)
        #expect(try mbpoll(unit: 3, ["-t", "3", "-r", "5", "-c", "1"], timeout: "1").status != 0)
        for unit in [1, 4, 2] {
            let ok = try mbpoll(unit: unit, ["-t", "3", "-r", "0", "-c", "1"])
            #expect(ok.status == 0, "unit \(unit): \(ok.output)")
        }
        // and comes back
        try sim.inject(.silent(false), unit: 3)
        #expect(try mbpoll(unit: 3, ["-t", "3", "-r", "5", "-c", "1"]).status == 0)
    }

    @Test func stationSimBinaryWithUnitsOnOnePortAndOnCabinetPorts() throws {
        let shared = try SimulatorProcess(["--units", "1,3", "--slots", "4,6", "--empty", "--watchdog-timeout", "0"])
        defer { shared.stop() }
        #expect(shared.units == [1, 3] && shared.cabinetPorts.isEmpty)
        let port = try #require(shared.modbusPort)
        #expect(try shared.control(["cmd": "insert", "unit": 3, "slot": 6, "id": "BIN-U3", "family": 1, "soc": 50])["ok"] as? Bool == true)
        #expect(try shared.control(["cmd": "exec", "unit": 3, "command": 1, "slot": 6])["ok"] as? Bool == true)
        #expect(try eventually(timeout: 30, interval: 0.1) {
            let log = try shared.control(["cmd": "log", "unit": 3])["commands"] as? [[String: Any]] ?? []
            return log.count == 1
        })
        let r = try runCommand("mbpoll", ["-m", "tcp", "-p", "\(port)", "-a", "3", "-t", "3", "-0", "-1", "-o", "5",
                                          "-r", "260", "-c", "12", "127.0.0.1"])
        let v = mbpollValues(r.output)
        #expect(r.status == 0 && (v[260] ?? 0) & 0x05 == 0x01, "\(r.output)")          // present, unlocked
        #expect((262...265).map { v[$0] } == RegisterCodec.ascii("BIN-U3", registers: 4).map { Int($0) })
        let state1 = try #require(try shared.control(["cmd": "state"])["state"] as? [String: Any])
        #expect(state1["unit"] as? Int == 1 && (state1["slots"] as? [Any])?.count == 4)
        #expect(try shared.control(["cmd": "fault", "kind": "silent", "unit": 3])["ok"] as? Bool == true)
        let silent = try runCommand("mbpoll", ["-m", "tcp", "-p", "\(port)", "-a", "3", "-t", "3", "-0", "-1", "-o", "1",
                                               "-r", "0", "-c", "1", "127.0.0.1"])
        #expect(silent.status != 0)
        #expect(shared.stop() == 0)

        let own = try SimulatorProcess(["--units", "1,3", "--cabinet-ports", "0,0", "--slots", "2", "--absent-unit", "exception",
                                        "--fill", "empty,full"])
        defer { own.stop() }
        let p1 = try #require(own.cabinetPorts[1]), p3 = try #require(own.cabinetPorts[3])
        #expect(own.modbusPort == p1 && p1 != p3)
        // a fill per unit: unit 1 empty, unit 3 full
        for (unit, present) in [(1, false), (3, true)] {
            let state = try #require(try own.control(["cmd": "state", "unit": unit])["state"] as? [String: Any])
            let slots = try #require(state["slots"] as? [[String: Any]])
            #expect(slots.map { $0["battery_present"] as? Bool } == [present, present])
        }
        let r3 = try runCommand(python, [peerScript, "--port", "\(p3)", "--unit", "3", "--slots", "2", "--no-meter",
                                         "--serial-number", "SIMCAB-000003"], timeout: 180)
        #expect(r3.status == 0, "\(r3.output)")
        let r1 = try runCommand(python, [peerScript, "--port", "\(p1)", "--slots", "2", "--no-commands"], timeout: 180)
        #expect(r1.status == 0, "\(r1.output)")
        // on unit 3's own port, unit 1 and the meter are absent: exception 0x0B (gateway target failed)
        let client = try RawTCPClient(port: p3)
        client.send(RawTCPClient.mbap(tid: 1, unit: 1, pdu: readMagic) + RawTCPClient.mbap(tid: 2, unit: 2, pdu: readMagic))
        #expect(client.receive(18).bytes == [0, 1, 0, 0, 0, 3, 1, 0x84, 0x0B, 0, 2, 0, 0, 0, 3, 2, 0x84, 0x0B])
        #expect(own.stop() == 0)
    }
}
