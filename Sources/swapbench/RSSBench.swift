import ArgumentParser
import Foundation

/// The daemon's resident memory at steady state with a 16-slot cabinet: station-sim, mosquitto and
/// swapgate started as separate processes (the binaries next to this one), RSS read from /proc.
struct RSSBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rss", abstract: "swapgate RSS at steady state, 16 slots.")
    @Option var slots = 16
    @Option var seconds = 20.0

    func run() async throws {
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let broker = try BenchBroker()
        defer { broker.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swapbench-rss-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        let modbusPort = BenchBroker.freePort()
        let sim = try spawn(bin.appendingPathComponent("station-sim").path,
                            ["--port", "\(modbusPort)", "--slots", "\(slots)", "--control-port", "0", "--speed", "60"], log: dir.appendingPathComponent("sim.log"))
        defer { stopProcess(sim) }
        for _ in 0 ..< 200 where !BenchBroker.canConnect(modbusPort) { usleep(20_000) }

        let config = dir.appendingPathComponent("swapgate.yaml")
        try """
        station: {id: BENCH-RSS-0001, network_code: BENCH}
        cabinet: {host: 127.0.0.1, port: \(modbusPort), detail_interval: 5}
        mqtt: {host: 127.0.0.1, port: \(broker.port)}
        store: {path: \(dir.appendingPathComponent("station.sqlite").path)}
        publishing: {telemetry_interval: 5}
        abs: {public_keys: {bench: "dvIg2LDZQkhPhA4JJP7eB8FvU2ouWF+3X48x/JAo+qw="}}
        """.write(to: config, atomically: true, encoding: .utf8)
        let gw = try spawn(bin.appendingPathComponent("swapgate").path, ["run", "-c", config.path], log: dir.appendingPathComponent("gw.log"))
        defer { stopProcess(gw) }

        try await Task.sleep(for: .seconds(seconds))
        guard gw.isRunning else { throw BenchError("swapgate exited: \((try? String(contentsOf: dir.appendingPathComponent("gw.log"), encoding: .utf8)) ?? "")") }
        let status = (try? String(contentsOfFile: "/proc/\(gw.processIdentifier)/status", encoding: .utf8)) ?? ""
        func field(_ name: String) -> String {
            status.split(separator: "\n").first { $0.hasPrefix(name) }.map { $0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces) } ?? "?"
        }
        report("rss: swapgate with a \(slots)-slot cabinet after \(Int(seconds)) s (simulator at 60× speed, telemetry every 5 s)", [
            ("VmRSS", field("VmRSS")),
            ("VmHWM (peak)", field("VmHWM")),
            ("threads", field("Threads")),
        ])
    }

    func spawn(_ path: String, _ args: [String], log: URL) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let h = try FileHandle(forWritingTo: log)
        p.standardOutput = h
        p.standardError = h
        try spawnWithSignalsUnblocked(p)
        return p
    }
}
