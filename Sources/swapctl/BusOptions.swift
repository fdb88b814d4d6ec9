import Acquisition
import ArgumentParser
import ControlProtocol
import Foundation
import GatewayConfig
import ModbusLink
import StationSupport

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

func fail(_ message: String, code: Int32) -> ExitCode {
    FileHandle.standardError.write(Data("swapctl: \(message)\n".utf8))
    return ExitCode(code)
}

func printJSON<T: Encodable>(_ value: T) {
    let enc = ControlJSON.encoder(pretty: true)   // RFC 3339 dates, as the daemon sends them
    print(String(decoding: (try? enc.encode(value)) ?? Data(), as: UTF8.self))
}

/// Left-aligned text table.
func table(_ header: [String], _ rows: [[String]]) -> String { TextTable.render(header, rows) }

func fmt(_ v: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", v) }
