// Outside peers keep the simulator's own Modbus framing honest: mbpoll (libmodbus) and
// pymodbus over real TCP, pymodbus and mbpoll over RTU through a socat pty pair, and the
// station-sim binary driven over its control interface.
import Foundation
@testable import SimulatorCore
import TestSupport
import Testing

private let python = "/usr/bin/python3"
private let peerScript = packageRoot.appendingPathComponent("tools/sim_peer_check.py").path

/// mbpoll prints "[addr]: <tab>value" (plus " (signed)" for values ≥ 32768).
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

/// The JSON line the peer script prints on success.
private func peerSummary(_ output: String) throws -> [String: Any] {
    guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
          let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        throw EngineError(description: "no JSON summary in: \(output.suffix(2000))")
    }
    return object
}

@Suite(.serialized) struct OutsidePeerTests {
    @Test func mbpollReadsWhatTheMapPromises() throws {
        let sim = pausedSimulator(slots: 5, serial: "MBPOLL-CAB")
        defer { sim.stop() }
        try sim.insertBattery(slot: 2, id: "MB-0002", family: 3, soc: 64.2, soh: 93.5, cycleCount: 321, temperature: 21.5)
        sim.tick(seconds: 1234)
        let port = try sim.startTCP()
        func mbpoll(_ args: [String], write values: [String] = []) throws -> (status: Int32, output: String) {
            try runCommand("mbpoll", ["-m", "tcp", "-p", "\(port)", "-0", "-1", "-o", "5"] + args + ["127.0.0.1"]
                           + (values.isEmpty ? [] : ["--"] + values))
        }

        let device = try mbpoll(["-a", "1", "-t", "3", "-r", "0", "-c", "24"])
        #expect(device.status == 0, "\(device.output)")
        let d = mbpollValues(device.output)
        #expect(d.count == 24)
        #expect(d[0] == 0x4F56 && d[1] == 1 && d[2] == 1 && d[3] == 4 && d[4] == 2 && d[5] == 5)
        #expect((6...13).map { d[$0] } == RegisterCodec.ascii("MBPOLL-CAB", registers: 8).map { Int($0) })
        #expect(d[14] == 0 && d[15] == 1234 && d[16] == 1234 && d[17] == 1)

        // the slot block of slot 2, register for register what the engine holds
        let block = try mbpoll(["-a", "1", "-t", "3", "-r", "132", "-c", "32"])
        #expect(block.status == 0, "\(block.output)")
        let b = mbpollValues(block.output)
        let expected = try sim.input(132, 32)
        #expect((132..<164).map { b[$0] } == expected.map { Int($0) })
        #expect(b[134] == 0x4D42 && b[135] == 0x2D30 && b[136] == 0x3030 && b[137] == 0x3200)   // "MB-0002"
        #expect(b[143] == 935 && b[148] == 0 && b[149] == 321 && b[156] == 3 && b[158] == 1)
        #expect(b[150] == 9350)                                   // 100 Ah × 93.5 %

        // the meter on unit 2
        let meter = try mbpoll(["-a", "2", "-t", "3", "-r", "0", "-c", "7"])
        let m = mbpollValues(meter.output)
        #expect(meter.status == 0 && m.count == 7)
        #expect((2280...2320).contains(m[2] ?? 0) && (4995...5005).contains(m[6] ?? 0))

        // beyond the last slot: exception 02 as libmodbus names it
        let beyond = try mbpoll(["-a", "1", "-t", "3", "-r", "260", "-c", "1"])
        #expect(beyond.output.contains("Illegal data address"))

        // an unlock written with FC16, executed once
        let write = try mbpoll(["-a", "1", "-t", "4", "-r", "1000"], write: ["1", "4", "4242", "15"])
        #expect(write.status == 0, "\(write.output)")
        let again = try mbpoll(["-a", "1", "-t", "4", "-r", "1000"], write: ["1", "4", "4242", "15"])
        #expect(again.status == 0)
        #expect(sim.commandLog() == [ExecutedCommand(seq: 4242, cmd: 1, slot: 4, param: 15, result: 0, time: 1234, uptime: 1234)])
        let back = try mbpoll(["-a", "1", "-t", "4", "-r", "1000", "-c", "4"])
        #expect((1000...1003).map { mbpollValues(back.output)[$0] } == [1, 4, 4242, 15])
        #expect(!sim.slot(4).locked)
    }

    @Test func pymodbusOverTCP() throws {
        let sim = Simulator(configuration: SimulatorConfiguration(slots: 8, serialNumber: "PYPEER-0001", seed: 3))
        defer { sim.stop() }
        let port = try sim.startTCP()
        let r = try runCommand(python, [peerScript, "--port", "\(port)", "--slots", "8", "--serial-number", "PYPEER-0001"],
                               timeout: 180)
        #expect(r.status == 0, "\(r.output)")
        let summary = try peerSummary(r.output)
        let snap = sim.snapshot()
        let slots = try #require(summary["slots"] as? [[String: Any]])
        #expect(slots.count == 8)
        for (read, model) in zip(slots, snap.slots) {
            #expect(read["slot"] as? Int == model.slot)
            #expect(read["id"] as? String == model.battery?.id)
            #expect(read["family"] as? Int == model.battery?.family)
            #expect(read["cell_count"] as? Int == model.battery.map { $0.family == 3 ? 16 : 13 })
            if let battery = model.battery {
                #expect(read["soh"] as? Int == Int((battery.soh * 10).rounded()))
            }
        }
        // the mixed fill: six batteries, the last two slots empty
        #expect(slots.filter { $0["id"] != nil }.count == 6)
        // the script's unlock shows up in the command log exactly once, then its lock
        let unlock = try #require(summary["unlock"] as? [String: Any])
        let seq = try #require(unlock["seq"] as? Int)
        let slot = try #require(unlock["slot"] as? Int)
        let log = sim.commandLog()
        #expect(log.filter { Int($0.seq) == seq }.map { [$0.cmd, $0.slot, $0.result] } == [[1, UInt16(slot), 0]])
        #expect(log.filter { Int($0.seq) == seq + 1 }.map { [$0.cmd, $0.slot, $0.result] } == [[2, UInt16(slot), 0]])
        #expect(sim.slot(slot).locked)
    }

    @Test func pymodbusAndMbpollOverRTUThroughASocatPtyPair() throws {
        let pty = try SocatPty()
        defer { pty.stop() }
        let sim = Simulator(configuration: SimulatorConfiguration(slots: 4, serialNumber: "RTU-CAB", seed: 11))
        defer { sim.stop() }
        try sim.startRTU(path: pty.pathA)

        let r = try runCommand(python, [peerScript, "--serial", pty.pathB, "--slots", "4", "--serial-number", "RTU-CAB"],
                               timeout: 180)
        #expect(r.status == 0, "\(r.output)")
        let summary = try peerSummary(r.output)
        #expect((summary["device"] as? [String: Any])?["serial"] as? String == "RTU-CAB")
        let unlockSeq = try #require((summary["unlock"] as? [String: Any])?["seq"] as? Int)
        #expect(sim.commandLog().filter { Int($0.seq) == unlockSeq }.count == 1)

        // unit 1 and unit 2 on the same line
        let meter = try runCommand("mbpoll", ["-m", "rtu", "-b", "115200", "-P", "none", "-a", "2", "-t", "3", "-0",
                                              "-r", "0", "-c", "7", "-1", "-o", "5", pty.pathB])
        #expect(meter.status == 0, "\(meter.output)")
        #expect((4995...5005).contains(mbpollValues(meter.output)[6] ?? 0))

        // corrupted responses show up as errors on the client side
        for fault in [Fault.crcErrors(count: 50), .garbage(count: 50)] {
            try sim.inject(fault)
            let e = try runCommand(python, [peerScript, "--serial", pty.pathB, "--expect-error"], timeout: 120)
            #expect(e.status == 0, "\(fault): \(e.output)")
            let f = sim.snapshot().faults
            #expect(f.crcCount < 50 && f.garbageCount < 50, "the fault was actually applied")
            sim.clearFaults()
        }
        // and without a fault the same check fails (it can tell the difference) …
        let clean = try runCommand(python, [peerScript, "--serial", pty.pathB, "--expect-error"], timeout: 120)
        #expect(clean.status == 1, "\(clean.output)")
        // … while a normal read-only check passes again
        let again = try runCommand(python, [peerScript, "--serial", pty.pathB, "--no-commands"], timeout: 120)
        #expect(again.status == 0, "\(again.output)")
    }

    @Test func stationSimBinaryDrivenOverItsControlInterface() throws {
        let p = try SimulatorProcess(["--slots", "4", "--empty", "--seed", "7", "--serial-number", "BIN-CAB-01",
                                      "--speed", "600", "--watchdog-timeout", "0"])
        defer { p.stop() }
        let modbusPort = try #require(p.modbusPort)
        #expect(try p.control(["cmd": "insert", "slot": 3, "id": "BIN-BAT-3", "family": 1, "soc": 30])["ok"] as? Bool == true)
        let refused = try p.control(["cmd": "insert", "slot": 3, "id": "AGAIN", "family": 1, "soc": 30])
        #expect(refused["ok"] as? Bool == false && refused["error"] as? String == "slot 3 already holds a battery")

        func slot3() throws -> [String: Any] {
            let state = try #require(try p.control(["cmd": "state"])["state"] as? [String: Any])
            #expect(state["serial_number"] as? String == "BIN-CAB-01")
            let slots = try #require(state["slots"] as? [[String: Any]])
            return slots[2]
        }
        let s = try slot3()
        #expect((s["battery"] as? [String: Any])?["id"] as? String == "BIN-BAT-3")
        #expect(s["insert_count"] as? Int == 1 && s["battery_present"] as? Bool == true)
        // at 600× the battery charges visibly
        #expect(try eventually(timeout: 120, interval: 0.2) {
            ((try slot3()["battery"] as? [String: Any])?["soc"] as? Double ?? 0) > 40
        })
        // and Modbus says the same
        let block = try runCommand("mbpoll", ["-m", "tcp", "-p", "\(modbusPort)", "-a", "1", "-t", "3", "-0", "-r", "164",
                                              "-c", "12", "-1", "-o", "5", "127.0.0.1"])
        let v = mbpollValues(block.output)
        #expect(v[164] .map { $0 & 0x01 } == 1)                           // battery present
        #expect((166...169).map { v[$0] } == RegisterCodec.ascii("BIN-BAT-3", registers: 4).map { Int($0) })
        #expect((v[174] ?? 0) >= 400)                                     // SoC in 0.1 %: 40.02 % reads 400

        // the ctl subcommand: exit 0 on ok, 1 on ok:false
        let bin = try productPath("station-sim")
        let ok = try runCommand(bin, ["ctl", "--control-port", "\(p.controlPort)", #"{"cmd":"open_door","slot":1,"force":true}"#])
        #expect(ok.status == 0 && ok.output.contains(#""ok":true"#))
        let bad = try runCommand(bin, ["ctl", "--control-port", "\(p.controlPort)", #"{"cmd":"open_door","slot":1}"#])
        #expect(bad.status == 1 && bad.output.contains("already open"))
        #expect(p.stop() == 0)
    }

    @Test func stationSimRunsAScenarioAndServesRTU() throws {
        let pty = try SocatPty()
        defer { pty.stop() }
        let dir = try TempDir("sim-scenario")
        defer { dir.remove() }
        let scenario = dir.path("s.jsonl")
        try """
        # put a battery in and jam a lock
        {"cmd":"insert","slot":1,"id":"SCN-1","family":2,"soc":55}
        {"cmd":"sleep","seconds":2}
        {"cmd":"fault","kind":"lock_jam","slot":2}
        """.write(toFile: scenario, atomically: true, encoding: .utf8)
        let p = try SimulatorProcess(["--serial", pty.pathA, "--slots", "2", "--empty", "--scenario", scenario,
                                      "--serial-number", "SCN-CAB"])
        defer { p.stop() }
        #expect(p.modbusPort == nil)
        _ = try p.process.waitForOutput(timeout: 60) { $0.contains("scenario finished") }
        let state = try #require(try p.control(["cmd": "state"])["state"] as? [String: Any])
        let slots = try #require(state["slots"] as? [[String: Any]])
        #expect((slots[0]["battery"] as? [String: Any])?["id"] as? String == "SCN-1")
        #expect(slots[1]["lock_jammed"] as? Bool == true)
        let r = try runCommand(python, [peerScript, "--serial", pty.pathB, "--slots", "2", "--serial-number", "SCN-CAB",
                                        "--no-commands"], timeout: 120)
        #expect(r.status == 0, "\(r.output)")
        let read = try #require(try peerSummary(r.output)["slots"] as? [[String: Any]])
        #expect(read.first?["id"] as? String == "SCN-1")
        #expect(p.stop() == 0)
    }
}
