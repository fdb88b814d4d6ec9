import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import GatewayCore
import Logging

@main
struct SwapGate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swapgate",
        abstract: "The edge gateway of a battery swap station.",
        version: GatewayVersion.string,
        subcommands: [Run.self, CheckConfig.self, Store.self],
        defaultSubcommand: Run.self)
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway daemon until SIGTERM/SIGINT.")
    @Option(name: .shortAndLong, help: "Configuration file (YAML).")
    var config: String = "/etc/swapgate/swapgate.yaml"

    func run() async throws {
        MemoryTuning.applyDaemonSettings()   // malloc arenas and thresholds for a small board, before any thread allocates much
        let text: String
        let conf: GatewayConfiguration
        do {
            conf = try GatewayConfiguration.load(path: config)
            text = try String(contentsOfFile: config, encoding: .utf8)
        } catch {
            writeAll("swapgate: \(config): \(error)\n", to: 2)
            throw ExitCode(78)   // EX_CONFIG
        }
        let level = Logger.Level(rawValue: conf.logLevel) ?? .info
        LoggingSystem.bootstrap { LogfmtHandler(label: $0, level: level) }
        let logger = Logger(label: "swapgate")
        let gateway = try await Gateway(configuration: conf, configText: text, configPath: config, logger: logger)
        try await gateway.run()
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check-config",
                                                    abstract: "Check a configuration file and print every problem with its key.")
    @Option(name: .shortAndLong, help: "Configuration file (YAML).")
    var config: String = "/etc/swapgate/swapgate.yaml"

    func run() async throws {
        let (ok, text) = GatewayConfiguration.checkReport(path: config)
        print(text)
        if !ok { throw ExitCode(78) }
    }
}
