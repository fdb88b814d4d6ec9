// The JSON-lines control interface and scenarios.
import Foundation
@testable import SimulatorCore
import Testing

extension Simulator {
    /// One control request in, the parsed answer out.
    func ctl(_ line: String) throws -> JSONValue { try JSONValue.parse(control(line: line)) }
}

@Suite struct ControlInterfaceTests {
    @Test func physicalActionsAndState() throws {
        let sim = pausedSimulator(slots: 3)
        #expect(try sim.ctl(#"{"cmd":"ping"}"#) == .object(["ok": .bool(true), "pong": .bool(true)]))
        #expect(try sim.ctl(#"{"cmd":"insert","slot":2,"id":"CTL-7","family":3,"soc":33.5,"soh":91,"cycles":12,"temperature":28}"#)["ok"] == .bool(true))
        let state = try sim.ctl(#"{"cmd":"state"}"#)
        #expect(state["ok"] == .bool(true))
        let slot2 = try #require(state["state"]?["slots"]?.arrayValue?[1])
        #expect(slot2["slot"] == .int(2))
        #expect(slot2["battery_present"] == .bool(true) && slot2["insert_count"] == .int(1))
        #expect(slot2["battery"]?["id"] == .string("CTL-7"))
        #expect(slot2["battery"]?["family"] == .int(3) && slot2["battery"]?["cycle_count"] == .int(12))
        #expect(slot2["battery"]?["soc"]?.doubleValue == 33.5)
        #expect(slot2["state"] == .int(Int(SlotStateBits([.batteryPresent, .doorClosed, .locked, .bmsLinkOK]).rawValue)))
        #expect(state["state"]?["serial_number"] == .string("SIMCAB-TEST-0001"))

        #expect(try sim.ctl(#"{"cmd":"open_door","slot":2}"#)["ok"] == .bool(false))   // locked
        #expect(try sim.ctl(#"{"cmd":"open_door","slot":2,"force":true}"#)["ok"] == .bool(true))
        #expect(!sim.slot(2).doorClosed)
        let removed = try sim.ctl(#"{"cmd":"remove","slot":2}"#)
        #expect(removed["battery"]?["id"] == .string("CTL-7"))
        #expect(try sim.ctl(#"{"cmd":"close_door","slot":2}"#)["ok"] == .bool(true))
        #expect(!sim.slot(2).batteryPresent && sim.slot(2).doorClosed)

        #expect(try sim.ctl(#"{"cmd":"insert","slot":1,"id":"B","family":1,"soc":50}"#)["ok"] == .bool(true))
        #expect(try sim.ctl(#"{"cmd":"set_battery","slot":1,"soc":77,"soh":88,"cycles":500,"temperature":-5,"protection_flags":2,"warning_flags":64,"id":"B2"}"#)["ok"] == .bool(true))
        let b = try sim.slotBlock(1)
        #expect(b[10] == 770 && b[11] == 880 && b[17] == 500 && b[20] == 2 && b[21] == 64)
        #expect(RegisterCodec.string(b[2...9]) == "B2")
        #expect(RegisterCodec.signed(b[14]) == -46)

        #expect(try sim.ctl(#"{"cmd":"set_flags","tamper":true,"estop":true}"#)["cabinet_flags"] == .int(0b10101))
        #expect(try sim.ctl(#"{"cmd":"set_flags","mains_ok":false,"backup_power":true,"tamper":false,"estop":false,"over_temp":true}"#)["cabinet_flags"] == .int(0b1010))
    }

    @Test func timeSpeedWatchdogExecAndRegisters() throws {
        let sim = pausedSimulator(slots: 2)
        #expect(try sim.ctl(#"{"cmd":"tick","seconds":12.5}"#)["simulated_time"]?.doubleValue == 12.5)
        #expect(try sim.ctl(#"{"cmd":"speed","value":600}"#)["speed"]?.doubleValue == 600)
        #expect(sim.speed == 600)
        #expect(try sim.ctl(#"{"cmd":"speed","value":0}"#)["ok"] == .bool(false))
        #expect(try sim.ctl(#"{"cmd":"resume"}"#)["ok"] == .bool(true))
        #expect(!sim.isPaused)
        #expect(try sim.ctl(#"{"cmd":"pause"}"#)["ok"] == .bool(true))
        #expect(sim.isPaused)
        #expect(try sim.ctl(#"{"cmd":"watchdog","timeout":45}"#)["timeout"]?.doubleValue == 45)
        let exec = try sim.ctl(#"{"cmd":"exec","command":1,"slot":2,"param":9}"#)
        #expect(exec["ok"] == .bool(true) && exec["seq"] == .int(1))
        #expect(try sim.ctl(#"{"cmd":"exec","command":4,"slot":1,"seq":300}"#)["seq"] == .int(300))
        let log = try sim.ctl(#"{"cmd":"log"}"#)["commands"]?.arrayValue ?? []
        #expect(log.map { $0["seq"] } == [.int(1), .int(300)])
        #expect(log.first?["param"] == .int(9) && log.first?["result"] == .int(0))
        let regs = try sim.ctl(#"{"cmd":"registers","start":0,"count":6}"#)
        #expect(regs["values"] == .array([0x4F56, 1, 1, 4, 2, 2].map { .int($0) }))
        #expect(try sim.ctl(#"{"cmd":"registers","type":"holding","start":1000,"count":4}"#)["values"] == .array([4, 1, 300, 0].map { .int($0) }))
        #expect(try sim.ctl(#"{"cmd":"registers","start":32,"count":1}"#)["error"] == .string("modbus exception 2"))
        #expect(try sim.ctl(#"{"cmd":"registers","unit":2,"start":6,"count":1}"#)["ok"] == .bool(true))
    }

    @Test func everyFaultKind() throws {
        let sim = pausedSimulator(slots: 2)
        try sim.insertBattery(slot: 1, id: "F", family: 1, soc: 50, soh: 100)
        let requests = [
            #"{"cmd":"fault","kind":"delay","ms":120}"#,
            #"{"cmd":"fault","kind":"drop","count":2}"#,
            #"{"cmd":"fault","kind":"drop","probability":0.25}"#,
            #"{"cmd":"fault","kind":"exception","code":6,"count":3}"#,
            #"{"cmd":"fault","kind":"garbage","count":4}"#,
            #"{"cmd":"fault","kind":"crc","probability":0.5}"#,
            #"{"cmd":"fault","kind":"bms_link_lost","slot":1}"#,
            #"{"cmd":"fault","kind":"lock_jam","slot":2}"#,
            #"{"cmd":"fault","kind":"battery_flags","slot":1,"protection":1,"warning":2}"#,
            #"{"cmd":"fault","kind":"slot_over_temp","slot":2}"#,
            #"{"cmd":"fault","kind":"cabinet_over_temp"}"#,
            #"{"cmd":"fault","kind":"charger_fault","slot":1}"#,
            #"{"cmd":"fault","kind":"door_sensor","slot":2}"#,
        ]
        for r in requests { #expect(try sim.ctl(r)["ok"] == .bool(true), "\(r)") }
        let f = sim.snapshot().faults
        #expect(f.responseDelayMs == 120 && f.dropCount == 2 && f.dropProbability == 0.25)
        #expect(f.exceptionCode == 6 && f.exceptionCount == 3 && f.garbageCount == 4 && f.crcProbability == 0.5)
        #expect(f.cabinetOverTemperature)
        #expect(sim.slot(1).faultCode == 3 && !sim.slot(1).bmsLinkOk)   // lowest active code first
        #expect(sim.slot(2).faultCode == 2 && sim.slot(2).lockJammed)
        #expect(sim.slot(1).battery?.protectionFlags == 1)
        #expect(try sim.ctl(#"{"cmd":"fault","kind":"meteor"}"#)["ok"] == .bool(false))
        #expect(try sim.ctl(#"{"cmd":"fault","kind":"lock_jam","slot":3}"#)["error"] == .string("invalid slot 3"))
        #expect(try sim.ctl(#"{"cmd":"clear_faults"}"#)["ok"] == .bool(true))
        #expect(sim.snapshot().faults.dropCount == 0 && sim.slot(1).faultCode == 0 && sim.slot(2).faultCode == 0)
    }

    @Test func rebootAndErrors() throws {
        let sim = pausedSimulator(slots: 2)
        sim.tick(seconds: 50)
        #expect(try sim.ctl(#"{"cmd":"reboot","down_seconds":5}"#)["ok"] == .bool(true))
        #expect(sim.snapshot().down && sim.snapshot().uptime == 0)
        #expect(try sim.ctl(#"not json"#) == .object(["ok": .bool(false), "error": .string("invalid JSON")]))
        #expect(try sim.ctl(#"[1,2]"#)["ok"] == .bool(false))
        #expect(try sim.ctl(#"{"cmd":"fly"}"#)["ok"] == .bool(false))
        #expect(try sim.ctl(#"{"nocmd":1}"#)["error"] == .string("missing string field \"cmd\""))
        #expect(try sim.ctl(#"{"cmd":"insert","slot":"x","id":"A","family":1,"soc":5}"#)["error"] == .string("field \"slot\" must be an integer"))
        #expect(try sim.ctl(#"{"cmd":"insert","slot":1,"id":"THIS-ID-IS-TOO-LONG","family":1,"soc":5}"#)["ok"] == .bool(false))
        #expect(try sim.ctl(#"{"cmd":"remove","slot":1}"#)["error"] == .string("slot 1 holds no battery"))
        let help = try sim.ctl(#"{"cmd":"help"}"#)
        #expect(help["commands"]?.arrayValue?.count == ControlCommands.all.count)
    }

    @Test func sleepWaitsForSimulatedTime() throws {
        let sim = Simulator(configuration: SimulatorConfiguration(slots: 1, speed: 1000, fill: .empty))
        defer { sim.stop() }
        let start = sim.simulatedTime
        let answer = try sim.ctl(#"{"cmd":"sleep","seconds":100}"#)
        #expect(answer["ok"] == .bool(true))
        #expect((answer["simulated_time"]?.doubleValue ?? 0) >= start + 100)
        #expect(try sim.ctl(#"{"cmd":"sleep","wall_seconds":0.01}"#)["ok"] == .bool(true))
    }

    @Test func controlOverTCPAndTheCtlClient() throws {
        let sim = pausedSimulator(slots: 2)
        defer { sim.stop() }
        let port = try sim.startControl(port: 0)
        let answer = try ControlClient.send(line: #"{"cmd":"insert","slot":1,"id":"TCP-1","family":2,"soc":60}"#, port: port)
        #expect(answer == #"{"ok":true}"#)
        let state = try JSONValue.parse(try ControlClient.send(line: #"{"cmd":"state"}"#, port: port))
        #expect(state["state"]?["slots"]?.arrayValue?.first?["battery"]?["id"] == .string("TCP-1"))
        #expect(try JSONValue.parse(try ControlClient.send(line: "{", port: port))["ok"] == .bool(false))
    }
}

@Suite struct ScenarioTests {
    @Test func scenarioLinesRunInOrder() throws {
        let sim = pausedSimulator(slots: 3)
        var errors: [String] = []
        let responses = sim.runScenario(lines: [
            "# a comment", "",
            #"{"cmd":"insert","slot":1,"id":"S1","family":1,"soc":10}"#,
            #"{"cmd":"tick","seconds":600}"#,
            #"{"cmd":"open_door","slot":2}"#,              // fails (locked) and the scenario goes on
            #"{"cmd":"fault","kind":"lock_jam","slot":3}"#,
        ], log: { errors.append($0) })
        #expect(responses.count == 4)
        #expect(responses.map { $0["ok"] } == [.bool(true), .bool(true), .bool(false), .bool(true)])
        #expect(errors.count == 1 && errors[0].hasPrefix("scenario line 5: door of slot 2 is locked"))
        #expect(sim.slot(1).battery!.soc > 10)
        #expect(sim.slot(3).lockJammed)
    }

    @Test(arguments: ["rider-swaps.jsonl", "fault-drill.jsonl"])
    func shippedScenariosRunCleanly(name: String) throws {
        let path = packageRoot.appendingPathComponent("firmware-sim/scenarios/\(name)").path
        let lines = try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n")
        let sim = Simulator(configuration: SimulatorConfiguration(seed: 5, speed: 2000))
        defer { sim.stop() }
        var errors: [String] = []
        let responses = sim.runScenario(lines: lines, log: { errors.append($0) })
        #expect(errors.isEmpty, "\(errors)")
        #expect(responses.count > 10)
        let snap = sim.snapshot()
        if name == "rider-swaps.jsonl" {
            #expect(snap.rider.batteriesReturned == 2 && snap.rider.batteriesTaken == 3)
            #expect(snap.slots[10].battery?.id == "RIDER-A-0001" && snap.slots[11].battery?.id == "RIDER-B-0002")
            #expect(!snap.slots[0].batteryPresent && snap.slots[8].doorClosed)
        } else {
            #expect(snap.slots[4].doorOpenCount == 1 && !snap.tamper)
            #expect(snap.slots.allSatisfy { $0.faultCode == 0 })
            #expect(!snap.down && snap.uptime >= 50)
        }
    }
}
