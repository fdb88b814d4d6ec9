#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Acquisition
import ArgumentParser
import ControlProtocol
import GatewayConfig
import ModbusLink
import StationSupport

// The option groups the subcommands share (`@OptionGroup`), as in swift-argument-parser's Examples/math:
// where the daemon is and how to print (every command that asks the daemon), who the technician is (actions),
// where the cabinet is (`direct`).

/// Where the daemon is.
struct DaemonOptions: ParsableArguments {
    @Option(name: .long, help: "The daemon's control socket (default: $SWAPCTL_SOCKET or /run/swapgate/control.sock).")
    var socket: String?
    @Option(name: .long, help: "Seconds to wait for the daemon's answer.")
    var timeout: Double = 10
    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    var socketPath: String { socket ?? ProcessInfo.processInfo.environment["SWAPCTL_SOCKET"] ?? "/run/swapgate/control.sock" }

    func client() throws -> ControlClient { try ControlClient(path: socketPath, timeout: timeout) }

    /// Sends the request and prints the answer: as JSON (`--json`) or through `render`.
    func run<T: Codable>(_ request: ControlRequest, as type: T.Type, render: (T) -> Void) throws {
        let value = try client().call(request, as: type)
        if json { printJSON(value) } else { render(value) }
    }
}

/// The technician's name and credential for cabinet actions. The credential is read from a file, the
/// environment (SWAPCTL_CREDENTIAL) or the terminal without echo — never from the command line, where
/// it would be visible to every user in the process list.
struct TechnicianOptions: ParsableArguments {
    @Option(name: .long, help: "Your technician name (as in the technicians file).") var technician: String
    @Option(name: .customLong("credential-file"), help: "File holding your credential (else $SWAPCTL_CREDENTIAL, else a prompt).")
    var credentialFile: String?
    @Option(help: "Why (recorded in the audit trail; an unlock's reason is also sent to ABS).") var reason = "maintenance"

    func credential() throws -> String {
        if let credentialFile {
            guard let d = FileManager.default.contents(atPath: credentialFile) else { throw fail("cannot read \(credentialFile)", code: 1) }
            return String(decoding: d, as: UTF8.self).trimmingWhitespacesAndNewlines()
        }
        if let env = ProcessInfo.processInfo.environment["SWAPCTL_CREDENTIAL"], !env.isEmpty { return env }
        guard isatty(STDIN_FILENO) != 0, let p = getpass("credential for \(technician): ") else {
            throw fail("no credential: use --credential-file, SWAPCTL_CREDENTIAL or a terminal", code: 1)
        }
        return String(cString: p)
    }
}

/// Where the cabinet is: from a config file, or given on the command line.
struct BusOptions: ParsableArguments {
    @Option(name: .long, help: "Gateway configuration file (its cabinet section is used; with several cabinets, --cabinet's).")
    var config: String?
    @Option(name: .long, help: "With --config listing several cabinets: the cabinet id to talk to (default: the first).")
    var cabinet: String?
    @Option(name: .long, help: "Modbus TCP host of the cabinet controller.")
    var host: String?
    @Option(name: .long, help: "Modbus TCP port.")
    var port: Int?
    @Option(name: .long, help: "RS-485 serial device for Modbus RTU (instead of TCP).")
    var serial: String?
    @Option(name: .long, help: "RTU baud rate.")
    var baud: Int = 115_200
    @Option(name: .long, help: "RTU parity: N, E or O.")
    var parity: String = "N"
    @Option(name: .long, help: "Response timeout in seconds.")
    var timeout: Double = 1.0
    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func acquisition() throws -> CabinetAcquisition {
        var conf: AcquisitionConfiguration
        if let config {
            let all: [AcquisitionConfiguration]
            do { all = try GatewayConfiguration.load(path: config).acquisitions } catch {
                throw ValidationError("\(error)")
            }
            if let cabinet {
                guard let c = all.first(where: { $0.cabinetID == cabinet }) else {
                    throw ValidationError("--cabinet \(cabinet): the configuration has cabinets \(all.map(\.cabinetID).joined(separator: ", "))")
                }
                conf = c
            } else {
                conf = all[0]
            }
        } else {
            if cabinet != nil { throw ValidationError("--cabinet needs --config") }
            conf = AcquisitionConfiguration(transport: .tcp(host: "127.0.0.1", port: 502))
        }
        if let serial {
            guard let p = ModbusTransport.Parity(rawValue: parity.uppercased()) else { throw ValidationError("--parity must be N, E or O") }
            conf.transport = .rtu(device: serial, baud: baud, parity: p, dataBits: 8, stopBits: 1)
        } else if host != nil || port != nil {
            conf.transport = .tcp(host: host ?? "127.0.0.1", port: port ?? 502)
        }
        conf.timings.responseTimeout = timeout
        conf.meterEnabled = true
        return CabinetAcquisition(configuration: conf)
    }
}
