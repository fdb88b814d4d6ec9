import ArgumentParser
import Foundation
import GatewayCore

/// `swapbench uplink` (issue 11): a simulated day of one station at the default publishing configuration — station-sim
/// in its own process at `--speed` (charging curves), a scripted swap every 24 h / `--swaps` (the battery taken out of
/// a slot and a depleted one put back in: door, removal and insertion events, a charging battery), the real swapgate
/// daemon and a real mosquitto. Bytes are measured on the broker's side: `$SYS/broker/bytes/received` (every byte the
/// broker read: MQTT headers, topics, payloads, keepalives, acknowledgements), and per class from a subscriber to
/// the station's `dt/…/#` (topic + payload + 5 bytes of PUBLISH header each). The same day runs twice: telemetry by
/// exception (the default) and a full JSON report every minute (`publishing.telemetry_mode: full`).
///
/// The daemon's timers run in wall time, so the bench scales them with the simulator's speed: the DEFAULT
/// telemetry_interval and telemetry_full_interval (GatewayConfiguration: 60 s and 900 s, or --full-interval) / speed, the cabinet's
/// fast loop 0.05 s (its minimum; at the default
/// speed 360 that is 18 simulated seconds between reads, as a real station reads every 0.2–0.5 s the data are at
/// most one telemetry interval old either way). Keepalives cannot be scaled (libmosquitto takes whole seconds): the
/// day's PINGREQs are added as an estimate, 86 400 / the default mqtt.keepalive × 2 bytes, and printed apart.
struct UplinkBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "uplink",
        abstract: "A simulated day of one 16-slot station: MQTT bytes per day, telemetry by exception vs a full report every minute.")
    @Option(help: "Simulated seconds per wall second (a day takes 86400/speed wall seconds per run).") var speed = 360.0
    @Option(help: "Swaps in the day.") var swaps = 150
    @Option var slots = 16
    @Option(name: .customLong("bin-dir"), help: "Directory of swapgate and station-sim (default: next to this executable).")
    var binDir: String?
    @Flag(help: "Skip the full-every-minute comparison run.") var changesOnly = false
    @Flag(help: "publishing.compact_keys: true in the by-exception run.") var compactKeys = false
    @Option(name: .customLong("full-interval"),
            help: "publishing.telemetry_full_interval in the by-exception run (default: the configuration's default, the contract's 900 s; the cellular profile's 3600).")
    var fullInterval: Double?

    func run() throws {
        let bin = binDir.map { URL(fileURLWithPath: $0) } ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        print("uplink: one \(slots)-slot station, \(swaps) swaps, a day at \(speed)x (\(Int(86_400 / speed)) s wall per run)")
        var defaults = GatewayConfiguration()
        if let fullInterval { defaults.publishing.telemetryFullInterval = fullInterval }
        let pings = 86_400 / defaults.mqtt.keepAlive * UplinkMeter.pingBytes
        print("defaults: telemetry_interval \(Int(defaults.publishing.telemetryInterval)) s, telemetry_full_interval \(Int(defaults.publishing.telemetryFullInterval)) s, "
              + "mqtt.keepalive \(defaults.mqtt.keepAlive) s (+\(pings) bytes/day of PINGREQ, estimated: not scaled with the simulator)")
        var exception = try day(mode: "changes", bin: bin, defaults: defaults)
        exception.brokerBytes += pings
        print(exception.report(label: (compactKeys ? "by exception, compact keys" : "by exception") + (fullInterval.map { ", full every \(Int($0)) s" } ?? " (default configuration)")))
        if !changesOnly {
            var full = try day(mode: "full", bin: bin, defaults: defaults)
            full.brokerBytes += pings
            print(full.report(label: "full JSON every minute"))
            print(String(format: "uplink/day: %.3f MB at the default configuration vs %.3f MB full JSON every minute (%.1fx less); target <= 1 MB: %@",
                         Double(exception.brokerBytes) / 1e6, Double(full.brokerBytes) / 1e6,
                         Double(full.brokerBytes) / Double(max(1, exception.brokerBytes)), exception.brokerBytes <= 1_000_000 ? "met" : "NOT met"))
        } else {
            print(String(format: "uplink/day: %.3f MB at the default configuration; target <= 1 MB: %@",
                         Double(exception.brokerBytes) / 1e6, exception.brokerBytes <= 1_000_000 ? "met" : "NOT met"))
        }
    }

    struct Day {
        var brokerBytes = 0
        var perClass: [String: (messages: Int, bytes: Int)] = [:]
        func report(label: String) -> String {
            var out = String(format: "%@: %d bytes/day received by the broker ($SYS/broker/bytes/received + keepalive estimate)\n", label, brokerBytes)
            for (k, v) in perClass.sorted(by: { $0.key < $1.key }) {
                out += "  \(k.padding(toLength: 17, withPad: " ", startingAt: 0)) \(String(format: "%6d", v.messages)) messages \(String(format: "%10d", v.bytes)) bytes\n"
            }
            return out
        }
    }

    func day(mode: String, bin: URL, defaults: GatewayConfiguration) throws -> Day {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swapbench-uplink-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = BenchBroker.freePort()
        let conf = dir.appendingPathComponent("mosquitto.conf")
        try "listener \(port) 127.0.0.1\nallow_anonymous true\npersistence false\nsys_interval 1\n".write(to: conf, atomically: true, encoding: .utf8)
        let broker = try spawn("/usr/sbin/mosquitto", ["-c", conf.path], log: dir.appendingPathComponent("broker.log"))
        defer { stopProcess(broker) }
        for _ in 0 ..< 200 where !BenchBroker.canConnect(port) { usleep(20_000) }

        let simLog = dir.appendingPathComponent("sim.log")
        let sim = try spawn(bin.appendingPathComponent("station-sim").path,
                            ["--slots", "\(slots)", "--port", "0", "--control-port", "0", "--speed", "\(speed)", "--watchdog-timeout", "0"], log: simLog)
        defer { stopProcess(sim) }
        guard let modbus = waitForNumber(in: simLog, after: "modbus tcp listening on 127.0.0.1:"),
              let control = waitForNumber(in: simLog, after: "control listening on 127.0.0.1:") else { throw BenchError("station-sim did not start") }

        let id = "TG-BENCH-0001"
        let config = dir.appendingPathComponent("swapgate.yaml")
        try """
        station: {id: \(id), network_code: NET-BENCH, outlet_code: OUT-1}
        cabinet: {host: 127.0.0.1, port: \(modbus), fast_interval: 0.05, detail_interval: 0.5}
        mqtt: {host: 127.0.0.1, port: \(port)}
        store: {path: \(dir.appendingPathComponent("station.sqlite").path)}
        publishing: {telemetry_interval: \(defaults.publishing.telemetryInterval / speed), telemetry_full_interval: \(defaults.publishing.telemetryFullInterval / speed), telemetry_mode: \(mode), compact_keys: \(mode == "changes" && compactKeys)}
        abs: {allow_unsigned: true}
        log_level: notice
        """.write(to: config, atomically: true, encoding: .utf8)

        let before = sysBytesReceived(port: port) ?? 0
        let subLog = dir.appendingPathComponent("sub.log")
        let sub = try spawn("/usr/bin/mosquitto_sub", ["-h", "127.0.0.1", "-p", "\(port)", "-v", "-t", "dt/V01/BSS/\(id)/#"], log: subLog)
        defer { stopProcess(sub) }
        let gwLog = dir.appendingPathComponent("gw.log")
        let gw = try spawn(bin.appendingPathComponent("swapgate").path, ["run", "-c", config.path], log: gwLog)
        let start = Date()
        let wall = 86_400 / speed
        for i in 0 ..< swaps {
            let at = start.addingTimeInterval(wall * (Double(i) + 0.5) / Double(swaps))
            let wait = at.timeIntervalSinceNow
            if wait > 0 { usleep(useconds_t(wait * 1_000_000)) }
            let slot = i % max(1, slots - 2) + 1
            ctl(bin, control, #"{"cmd":"remove","slot":\#(slot)}"#)
            ctl(bin, control, #"{"cmd":"insert","slot":\#(slot),"id":"BAT-DAY-\#(i)","family":2,"soc":15}"#)
        }
        let rest = start.addingTimeInterval(wall).timeIntervalSinceNow
        if rest > 0 { usleep(useconds_t(rest * 1_000_000)) }
        usleep(1_500_000)   // one $SYS interval
        let after = sysBytesReceived(port: port) ?? 0
        stopProcess(gw)
        // The subscriber's own CONNECT/SUBSCRIBE and the $SYS readers' are a few hundred bytes: not subtracted.
        var out = Day(brokerBytes: after - before)
        let text = (try? String(contentsOf: subLog, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else { continue }
            let topic = line[..<space]
            let parts = topic.split(separator: "/")
            var cls = parts.count > 4 ? (parts[4] == "evt" ? "events" : String(parts[4])) : "other"
            // Telemetry by report kind: where the bytes go.
            if cls == "telemetry" { cls += line.contains(#""kind":"full""#) ? " full" : " changes" }
            var e = out.perClass[cls] ?? (0, 0)
            e.messages += 1; e.bytes += line.utf8.count - 1 + 5
            out.perClass[cls] = e
        }
        if out.perClass.isEmpty { print("no messages seen; gateway log:\n" + ((try? String(contentsOf: gwLog, encoding: .utf8)) ?? "").suffix(2000)) }
        return out
    }

    func spawn(_ exe: String, _ args: [String], log: URL) throws -> Process {
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let h = try FileHandle(forWritingTo: log)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.standardOutput = h
        p.standardError = h
        try spawnWithSignalsUnblocked(p)
        return p
    }

    func waitForNumber(in log: URL, after marker: String) -> Int? {
        for _ in 0 ..< 1000 {
            if let text = try? String(contentsOf: log, encoding: .utf8), let r = text.range(of: marker) {
                let digits = text[r.upperBound...].prefix { $0.isNumber }
                if !digits.isEmpty, text[r.upperBound...].dropFirst(digits.count).first != nil { return Int(digits) }
            }
            usleep(20_000)
        }
        return nil
    }

    func ctl(_ bin: URL, _ port: Int, _ json: String) {
        let p = Process()
        p.executableURL = bin.appendingPathComponent("station-sim")
        p.arguments = ["ctl", "--control-port", "\(port)", json]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try? spawnWithSignalsUnblocked(p)
        p.waitUntilExit()
    }

    func sysBytesReceived(port: Int) -> Int? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/mosquitto_sub")
        p.arguments = ["-h", "127.0.0.1", "-p", "\(port)", "-t", "$SYS/broker/bytes/received", "-C", "1", "-W", "5"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? spawnWithSignalsUnblocked(p)) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Int(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
