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
import ArgumentParser
import ControlProtocol
import GatewayConfig

// Support: the configuration (checked here, or the daemon's), one diagnostics file, metrics.

extension SwapCtl {
    struct Config: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a configuration file, or show the running daemon's (secrets redacted).",
                                                        subcommands: [Check.self, Show.self])
    }

    struct Diagnostics: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write one file for support: status, queues, slots, recent events, audit, recent log lines, metrics, config without secrets.")
        @Option(name: .shortAndLong, help: "Output file (default: swapgate-diagnostics-<station>-<time>.json in the current folder).")
        var output: String?
        @OptionGroup var daemon: DaemonOptions

        func run() throws {
            let bundle = try daemon.client().call(ControlRequest(op: "diagnostics"), as: DiagnosticsBundle.self)
            let stamp = String(bundle.createdAt.filter { $0 != ":" && $0 != "." })
            let path = output ?? "swapgate-diagnostics-\(bundle.status.stationID)-\(stamp).json"
            let enc = ControlJSON.encoder(pretty: true)
            let data = try enc.encode(bundle)
            guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600]) else {
                throw fail("cannot write \(path)", code: 1)
            }
            print("\(path): \(data.count / 1024) KiB (status, queues, \(bundle.slots.slots.count) slots, \(bundle.recentEvents.count) events, \(bundle.audit.count) audit lines, \(bundle.recentLog.count) log lines, metrics, config without secrets)")
        }
    }

    struct Metrics: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the daemon's Prometheus metrics (as served on /metrics).")
        @OptionGroup var daemon: DaemonOptions

        func run() throws {
            try daemon.run(ControlRequest(op: "metrics"), as: MetricsText.self) { print($0.text, terminator: "") }
        }
    }
}

extension SwapCtl.Config {
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "check", abstract: "Check a configuration file; every problem is printed with its key.")
        @Option(name: .shortAndLong, help: "The file.") var config = "/etc/swapgate/swapgate.yaml"

        func run() throws {
            let (ok, text) = GatewayConfiguration.checkReport(path: config)
            print(text)
            if !ok { throw ExitCode(1) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "The running daemon's configuration file, secrets redacted.")
        @OptionGroup var daemon: DaemonOptions

        func run() throws {
            try daemon.run(ControlRequest(op: "config"), as: ConfigView.self) { v in
                print("# \(v.path) (sha256 \(v.digest))")
                print(v.text)
            }
        }
    }
}
