// station-sim: the simulated cabinet controller firmware of a battery swap station.
// Serves the cabinet Modbus map (TCP or RTU) and a JSON-lines control interface.
// See firmware-sim/README.md.
import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SimulatorCore
#if canImport(Glibc)
import Glibc
#endif

/// Writes a line to stdout unbuffered (tests parse these lines while the process runs).
func say(_ line: String) {
    writeUnbuffered(line + "\n", to: 1)
}

func complain(_ line: String) {
    writeUnbuffered(line + "\n", to: 2)
}

struct StationSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "station-sim",
        abstract: "Simulated cabinet controller of a battery swap station (Modbus TCP/RTU + JSON control).",
        discussion: """
        Implements the cabinet Modbus register map v1: unit 1 the cabinet controller, unit 2 the \
        energy meter; --units 1,3,4 simulates several cabinet controllers at those unit ids on the one \
        port or serial line (--cabinet-ports: one TCP port each). Prints "modbus tcp listening on \
        HOST:PORT" (or "modbus rtu serving PATH"), with several cabinets one "cabinet unit U serial S \
        slots N [modbus tcp HOST:PORT]" line each, and "control listening on 127.0.0.1:PORT" once ready. Times in the control interface and \
        scenarios (sleep "seconds", reboot down_seconds, rider delays, unlock timeouts, watchdog) are \
        simulated seconds, which run --speed times faster than wall time. SIGTERM/SIGINT stop it.

        Control interface: one JSON object per line, e.g. {"cmd":"state"}, {"cmd":"insert","slot":3,\
        "id":"BAT-1","family":2,"soc":40}, {"cmd":"fault","kind":"crc","count":3}; \
        {"cmd":"help"} lists every command. Add "unit":N to address a cabinet other than the first.

        SUBCOMMAND: station-sim ctl --control-port P [--host H] [--timeout S] '<json>' sends one \
        request to a running simulator and prints the answer (exit 1 on {"ok":false}); see \
        `station-sim ctl --help`.
        """)

    @Option(help: "Address to serve Modbus TCP on (IPv4).")
    var host = "127.0.0.1"

    @Option(help: "Modbus TCP port (0 = pick a free one; the chosen port is printed).")
    var port = 5020

    @Option(help: "Serve Modbus RTU on this serial device or pty instead of TCP.")
    var serial: String?

    @Option(help: "RTU baud rate.")
    var baud = 115200

    @Option(help: "RTU parity: N, E or O.")
    var parity = "N"

    @Option(name: .customLong("stop-bits"), help: "RTU stop bits: 1 or 2.")
    var stopBits = 1

    @Option(help: "Number of slots (1…48): one count for every cabinet, or one per unit (e.g. 16,12,8).")
    var slots = "12"

    @Option(help: "Modbus unit ids of the cabinet controllers, in the station's order (1 or 3…247; 2 is the meter), e.g. 1,3,4. All answer on the one --port or --serial unless --cabinet-ports is given.")
    var units = "1"

    @Option(name: .customLong("cabinet-ports"), help: "One Modbus TCP port per cabinet, in --units order (0 = pick a free one); replaces --port. The meter (unit 2) answers on the first one.")
    var cabinetPorts: String?

    @Option(name: .customLong("absent-unit"), help: "Modbus TCP answer for a unit nobody answers (unknown, silent or rebooting): silent (no reply) or exception (0x0B gateway target failed). RTU is always silent.")
    var absentUnit = "silent"

    @Option(name: .customLong("control-port"), help: "Control interface port on 127.0.0.1 (0 = pick a free one).")
    var controlPort = 0

    @Option(help: "Scenario file (JSON lines of control commands) to run after start-up.")
    var scenario: String?

    @Option(help: "Simulated seconds per wall second (e.g. 600 to watch batteries charge).")
    var speed = 1.0

    @Option(help: "Seed of the simulator's randomness (fill, cell imbalance, probabilistic faults, meter noise).")
    var seed: UInt64 = 1

    @Flag(help: "Start with rider mode on (normal behaviour; tune it with the control command \"rider\").")
    var rider = false

    @Option(help: "How the cabinet starts: mixed (families 1–3, some full, some charging, last two slots empty), empty, full; or one per unit, e.g. empty,full.")
    var fill = "mixed"

    @Flag(help: "Start with no batteries (same as --fill empty).")
    var empty = false

    @Option(name: .customLong("serial-number"), help: "Serial of the first cabinet (≤ 16 ASCII characters); the others' are derived (trailing digits → unit id: SIMCAB-000003), or give one per unit, comma-separated.")
    var serialNumber = "SIMCAB-000001"

    @Option(name: .customLong("command-time"), help: "Simulated seconds a command takes to execute (0 = at once).")
    var commandTime = 0.15

    @Option(name: .customLong("watchdog-timeout"), help: "Simulated seconds without a watchdog write before safe mode (0 = watchdog off).")
    var watchdogTimeout = 30.0

    @Option(name: .customLong("busy-reply"), help: "A command write while one executes: exception (Modbus exception 06) or result (result code 1).")
    var busyReply = "exception"

    @Option(help: "Ambient temperature, °C.")
    var ambient = 25.0

    static func intList(_ text: String, _ option: String) throws -> [Int] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingWhitespaces() }
        let values = items.compactMap { Int($0) }
        guard !items.isEmpty, values.count == items.count else {
            throw ValidationError("\(option) takes integers separated by commas, got \(text)")
        }
        return values
    }

    /// The cabinets as the options give them.
    func cabinetSetups() throws -> [CabinetSetup] {
        let unitIds = try Self.intList(units, "--units")
        let slotCounts = try Self.intList(slots, "--slots")
        let serials = serialNumber.split(separator: ",").map(String.init)
        var fills: [FillMode] = []
        for item in fill.split(separator: ",") {
            guard let f = FillMode(rawValue: item.trimmingWhitespaces()) else {
                throw ValidationError("--fill must be mixed, empty or full (or one of them per unit)")
            }
            fills.append(f)
        }
        if empty { fills = [.empty] }
        var setups: [CabinetSetup]
        do {
            setups = try CabinetSetup.station(units: unitIds, slots: slotCounts, serialNumber: serials.first ?? serialNumber,
                                              fills: fills)
        } catch { throw ValidationError("\(error)") }
        if serials.count > 1 {
            guard serials.count == setups.count else {
                throw ValidationError("--serial-number: one serial, or one per unit (\(setups.count))")
            }
            for k in setups.indices { setups[k].serialNumber = serials[k] }
        }
        return setups
    }

    func validate() throws {
        guard AbsentUnitReply(rawValue: absentUnit) != nil else { throw ValidationError("--absent-unit must be silent or exception") }
        let setups = try cabinetSetups()
        if let cabinetPorts {
            guard serial == nil else { throw ValidationError("--cabinet-ports is for Modbus TCP, not with --serial") }
            let ports = try Self.intList(cabinetPorts, "--cabinet-ports")
            guard ports.count == setups.count else {
                throw ValidationError("--cabinet-ports needs one port per unit (\(setups.count))")
            }
            guard ports.allSatisfy({ (0...65535).contains($0) }) else { throw ValidationError("ports are 0…65535") }
        }
        guard BusyReply(rawValue: busyReply) != nil else { throw ValidationError("--busy-reply must be exception or result") }
        guard ["N", "E", "O"].contains(parity.uppercased()) else { throw ValidationError("--parity must be N, E or O") }
        guard (0...65535).contains(port), (0...65535).contains(controlPort) else { throw ValidationError("ports are 0…65535") }
    }

    func run() throws {
        // Signals are taken by sigwait on this thread; every thread started later inherits the mask.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        signal(SIGPIPE, SIG_IGN)

        let setups = try cabinetSetups()
        var config = SimulatorConfiguration(
            slots: setups[0].slots, serialNumber: setups[0].serialNumber, seed: seed, speed: speed,
            fill: setups[0].fill ?? .mixed, commandExecutionTime: commandTime,
            watchdogTimeout: watchdogTimeout, busyReply: BusyReply(rawValue: busyReply)!,
            ambientTemperature: ambient, rider: rider ? RiderConfiguration() : nil)
        // One cabinet at unit 1 is configured exactly as before several cabinets existed.
        if setups.count > 1 || setups[0].unit != Int(CabinetMap.cabinetUnit) { config.cabinets = setups }
        config.absentUnitReply = AbsentUnitReply(rawValue: absentUnit)!
        do { try config.validate() } catch { throw ValidationError("\(error)") }

        let sim = Simulator(configuration: config)
        do {
            // The ready lines: the Modbus line and the control line as always; with several cabinets,
            // one "cabinet unit U …" line per cabinet in between.
            var cabinetLines: [String] = setups.map { "cabinet unit \($0.unit) serial \($0.serialNumber) slots \($0.slots)" }
            if let serial {
                try sim.startRTU(path: serial, baud: baud, parity: parity.uppercased().first ?? "N", stopBits: stopBits)
                say("modbus rtu serving \(serial) at \(baud) 8\(parity.uppercased())\(stopBits)")
            } else if let cabinetPorts {
                let ports = try Self.intList(cabinetPorts, "--cabinet-ports")
                for (k, setup) in setups.enumerated() {
                    let served = k == 0 ? [setup.unit, Int(CabinetMap.meterUnit)] : [setup.unit]
                    let bound = try sim.startTCP(host: host, port: ports[k], units: served)
                    if k == 0 { say("modbus tcp listening on \(host):\(bound)") }
                    cabinetLines[k] += " modbus tcp \(host):\(bound)"
                }
            } else {
                let bound = try sim.startTCP(host: host, port: port)
                say("modbus tcp listening on \(host):\(bound)")
            }
            if setups.count > 1 || cabinetPorts != nil { cabinetLines.forEach(say) }
            let control = try sim.startControl(port: controlPort)
            say("control listening on 127.0.0.1:\(control)")
            if let scenario {
                try sim.startScenario(path: scenario) { say($0) }
            }
        } catch {
            sim.stop()
            complain("station-sim: \(error)")
            throw ExitCode(2)
        }

        var received: Int32 = 0
        sigwait(&signals, &received)
        say("station-sim: signal \(received), stopping")
        sim.stop()
    }
}

struct Ctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "station-sim ctl",
        abstract: "Send one control request (a JSON object) to a running station-sim and print the answer.",
        discussion: "Exits 1 when the answer is {\"ok\":false,...}, 2 when the simulator cannot be reached.")

    @Option(name: .customLong("control-port"), help: "The simulator's control port.")
    var controlPort: Int

    @Option(help: "The simulator's control address.")
    var host = "127.0.0.1"

    @Option(help: "Seconds to wait for the answer (sleep requests take their time).")
    var timeout = 30.0

    @Argument(help: "The request, e.g. '{\"cmd\":\"state\"}'.")
    var request: String

    func run() throws {
        let answer: String
        do {
            answer = try ControlClient.send(line: request, host: host, port: controlPort, timeout: timeout)
        } catch {
            complain("station-sim ctl: \(error)")
            throw ExitCode(2)
        }
        say(answer)
        guard let value = try? JSONValue.parse(answer), value["ok"] == .bool(true) else { throw ExitCode(1) }
    }
}

// `ctl` is dispatched by hand: as an ArgumentParser subcommand its --control-port would be
// taken by the server's option of the same name.
let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "ctl" {
    Ctl.main(Array(arguments.dropFirst()))
} else {
    StationSim.main(arguments)
}
