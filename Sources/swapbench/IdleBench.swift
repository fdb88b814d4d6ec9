import ArgumentParser
import Foundation

/// How often an idle daemon wakes up: station-sim (16 slots, real-time speed), mosquitto and swapgate started
/// as separate processes (the binaries next to this one), no swap, no command. After `settle` seconds the
/// daemon's context switches (every thread's, from /proc/PID/task/*/status) are counted over `seconds`; if
/// strace is installed, its syscalls are counted over `straceSeconds` (`strace -f -c -p PID`).
/// The Modbus poll (`cabinet.fast_interval`) is the one periodic activity left by design (docs/swaps.md).
struct IdleBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "idle", abstract: "Idle wake-ups of swapgate: context switches and syscalls per second, 16 slots, no swap.")
    @Option var slots = 16
    @Option(help: "Seconds to wait for steady state before measuring.") var settle = 15.0
    @Option(help: "Seconds over which context switches are counted.") var seconds = 30.0
    @Option(help: "Seconds of strace (0: skip).") var straceSeconds = 20.0

    func run() async throws {
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let broker = try BenchBroker()
        defer { broker.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swapbench-idle-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        let modbusPort = BenchBroker.freePort()
        let sim = try spawn(bin.appendingPathComponent("station-sim").path,
                            ["--port", "\(modbusPort)", "--slots", "\(slots)", "--control-port", "0"], log: dir.appendingPathComponent("sim.log"))
        defer { stopProcess(sim) }
        for _ in 0 ..< 200 where !BenchBroker.canConnect(modbusPort) { usleep(20_000) }

        let config = dir.appendingPathComponent("swapgate.yaml")
        try """
        station: {id: BENCH-IDLE-0001, network_code: BENCH}
        cabinet: {host: 127.0.0.1, port: \(modbusPort)}
        mqtt: {host: 127.0.0.1, port: \(broker.port)}
        store: {path: \(dir.appendingPathComponent("station.sqlite").path)}
        abs: {public_keys: {bench: "dvIg2LDZQkhPhA4JJP7eB8FvU2ouWF+3X48x/JAo+qw="}}
        """.write(to: config, atomically: true, encoding: .utf8)
        let gw = try spawn(bin.appendingPathComponent("swapgate").path, ["run", "-c", config.path], log: dir.appendingPathComponent("gw.log"))
        defer { stopProcess(gw) }
        let pid = gw.processIdentifier

        try await Task.sleep(for: .seconds(settle))
        guard gw.isRunning else { throw BenchError("swapgate exited: \((try? String(contentsOf: dir.appendingPathComponent("gw.log"), encoding: .utf8)) ?? "")") }
        let before = Self.contextSwitches(pid: pid)
        let start = ContinuousClock.now
        try await Task.sleep(for: .seconds(seconds))
        let after = Self.contextSwitches(pid: pid)
        let d = ContinuousClock.now - start
        let elapsed = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        var rows: [(String, String)] = [
            ("voluntary ctxt switches/s", String(format: "%.1f", Double(after.voluntary - before.voluntary) / elapsed)),
            ("involuntary ctxt switches/s", String(format: "%.1f", Double(after.involuntary - before.involuntary) / elapsed)),
            ("threads", "\(after.threads)"),
        ]
        if straceSeconds > 0, let strace = Self.which("strace") {
            rows += try Self.straceSummary(strace, pid: pid, seconds: straceSeconds)
        } else {
            rows.append(("syscalls/s", "strace not installed (apt-get install -y strace)"))
        }
        report("idle: swapgate with a \(slots)-slot cabinet, broker connected, no swap (settled \(Int(settle)) s, counted over \(Int(seconds)) s)", rows)
    }

    /// Context switches summed over every thread of `pid` (/proc/PID/status counts the main thread only).
    static func contextSwitches(pid: Int32) -> (voluntary: Int, involuntary: Int, threads: Int) {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var v = 0, n = 0
        for t in tasks {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(t)/status", encoding: .utf8) else { continue }
            for line in status.split(separator: "\n") {
                let parts = line.split(separator: ":")
                guard parts.count == 2, let value = Int(parts[1].trimmingCharacters(in: .whitespaces)) else { continue }
                if parts[0] == "voluntary_ctxt_switches" { v += value } else if parts[0] == "nonvoluntary_ctxt_switches" { n += value }
            }
        }
        return (v, n, tasks.count)
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// `strace -f -c -p PID` for `seconds`, then SIGINT: total syscalls per second and the busiest five.
    static func straceSummary(_ strace: String, pid: Int32, seconds: Double) throws -> [(String, String)] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: strace)
        p.arguments = ["-f", "-c", "-p", "\(pid)"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        // Signals unblocked in the child: strace detaches and prints its summary on SIGINT.
        try spawnWithSignalsUnblocked(p)
        Thread.sleep(forTimeInterval: seconds)
        kill(p.processIdentifier, SIGINT)
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        // Summary lines: "% time seconds usecs/call calls [errors] syscall"; the total line ends with "total".
        var perCall: [(String, Int)] = []
        var total: Int?
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 5, Double(f[0]) != nil, let calls = Int(f[3]) else { continue }
            if f.last == "total" { total = calls } else { perCall.append((String(f.last!), calls)) }
        }
        guard let total else { return [("syscalls/s", "strace gave no summary: \(text.split(separator: "\n").first.map(String.init) ?? "")")] }
        var rows = [("syscalls/s (strace -f)", String(format: "%.1f", Double(total) / seconds))]
        for (name, calls) in perCall.sorted(by: { $0.1 > $1.1 }).prefix(6) {
            rows.append(("  \(name)/s", String(format: "%.1f", Double(calls) / seconds)))
        }
        return rows
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
