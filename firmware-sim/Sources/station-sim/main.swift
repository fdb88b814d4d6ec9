// station-sim: the simulated cabinet controller firmware of a battery swap station.
// Serves the cabinet Modbus map (TCP or RTU) and a JSON-lines control interface.
// See firmware-sim/README.md.
import ArgumentParser
import Foundation
import SimulatorCore
#if canImport(Glibc)
import Glibc
#endif

/// Writes a line to stdout unbuffered (tests parse these lines while the process runs).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func complain(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

struct StationSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "station-sim",
        abstract: "Simulated cabinet controller of a battery swap station (Modbus TCP/RTU + JSON control).",
        discussion: """
        Implements the cabinet Modbus register map v1: unit 1 the cabinet controller, unit 2 the \
        energy meter. Prints "modbus tcp listening on HOST:PORT" (or "modbus rtu serving PATH") and \
        "control listening on 127.0.0.1:PORT" once ready. Times in the control interface and \
        scenarios (sleep "seconds", reboot down_seconds, rider delays, unlock timeouts, watchdog) are \
        simulated seconds, which run --speed times faster than wall time. SIGTERM/SIGINT stop it.

        Control interface: one JSON object per line, e.g. {"cmd":"state"}, {"cmd":"insert","slot":3,\
        "id":"BAT-1","family":2,"soc":40}, {"cmd":"fault","kind":"crc","count":3}; \
        {"cmd":"help"} lists every command.

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

    @Option(help: "Number of slots (1…48).")
    var slots = 12

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

    @Option(help: "How the cabinet starts: mixed (families 1–3, some full, some charging, last two slots empty), empty, full.")
    var fill = "mixed"

    @Flag(help: "Start with no batteries (same as --fill empty).")
    var empty = false

    @Option(name: .customLong("serial-number"), help: "Cabinet serial (≤ 16 ASCII characters).")
    var serialNumber = "SIMCAB-000001"

    @Option(name: .customLong("command-time"), help: "Simulated seconds a command takes to execute (0 = at once).")
    var commandTime = 0.15

    @Option(name: .customLong("watchdog-timeout"), help: "Simulated seconds without a watchdog write before safe mode (0 = watchdog off).")
    var watchdogTimeout = 30.0

    @Option(name: .customLong("busy-reply"), help: "A command write while one executes: exception (Modbus exception 06) or result (result code 1).")
    var busyReply = "exception"

    @Option(help: "Ambient temperature, °C.")
    var ambient = 25.0

    func validate() throws {
        guard FillMode(rawValue: fill) != nil else { throw ValidationError("--fill must be mixed, empty or full") }
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

        let config = SimulatorConfiguration(
            slots: slots, serialNumber: serialNumber, seed: seed, speed: speed,
            fill: empty ? .empty : FillMode(rawValue: fill)!, commandExecutionTime: commandTime,
            watchdogTimeout: watchdogTimeout, busyReply: BusyReply(rawValue: busyReply)!,
            ambientTemperature: ambient, rider: rider ? RiderConfiguration() : nil)
        do { try config.validate() } catch { throw ValidationError("\(error)") }

        let sim = Simulator(configuration: config)
        do {
            if let serial {
                try sim.startRTU(path: serial, baud: baud, parity: parity.uppercased().first ?? "N", stopBits: stopBits)
                say("modbus rtu serving \(serial) at \(baud) 8\(parity.uppercased())\(stopBits)")
            } else {
                let bound = try sim.startTCP(host: host, port: port)
                say("modbus tcp listening on \(host):\(bound)")
            }
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
