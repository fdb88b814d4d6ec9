import ArgumentParser
import Foundation

/// A 100 000-entitlement snapshot over the link (issue 11 benchmark): the bytes on the wire of one plain message
/// vs `enc: deflate` parts made by tools/abs_sign.py, and the daemon's peak memory (VmHWM) while it applies the
/// parts vs its steady VmRSS; then the same snapshot sent whole, for the figure of today. mosquitto, station-sim and
/// swapgate run as separate processes (the binaries next to this one); commands are published with mosquitto_pub.
struct SnapshotBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "snapshot",
                                                    abstract: "100k entitlement snapshot: wire bytes and daemon peak memory, deflated parts vs one plain message.")
    @Option var count = 100_000
    @Option(help: "Records per part.") var partSize = 5_000
    @Option(help: "Path of tools/abs_sign.py (default: looked for above this executable, then above the working directory).")
    var absSign: String?

    static func locate(_ explicit: String?) throws -> String {
        if let explicit { return explicit }
        for start in [URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent(),
                      URL(fileURLWithPath: FileManager.default.currentDirectoryPath)] {
            var dir = start
            while dir.pathComponents.count > 1 {
                let candidate = dir.appendingPathComponent("tools/abs_sign.py").path
                if FileManager.default.fileExists(atPath: candidate) { return candidate }
                dir.deleteLastPathComponent()
            }
        }
        throw BenchError("cannot find tools/abs_sign.py: pass --abs-sign PATH")
    }

    /// Runs `command` with /bin/sh; its output (stdout and stderr), or an error naming it when it fails.
    static func shell(_ command: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try spawnWithSignalsUnblocked(p)
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw BenchError("\(command.prefix(120))…: \(out)") }
        return out
    }

    func run() async throws {
        let script = try Self.locate(absSign)
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let broker = try BenchBroker()
        defer { broker.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swapbench-snapshot-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        func sh(_ command: String) throws -> String { try SnapshotBench.shell(command) }

        let keys = try JSONSerialization.jsonObject(with: Data(try sh("/usr/bin/python3 '\(script)' keygen").utf8)) as? [String: String] ?? [:]
        guard let privateKey = keys["private_key"], let publicKey = keys["public_key"] else { throw BenchError("keygen failed") }

        let modbusPort = BenchBroker.freePort()
        let rss = RSSBench()
        let sim = try rss.spawn(bin.appendingPathComponent("station-sim").path,
                                ["--port", "\(modbusPort)", "--slots", "16", "--control-port", "0"], log: dir.appendingPathComponent("sim.log"))
        defer { stopProcess(sim) }
        for _ in 0 ..< 200 where !BenchBroker.canConnect(modbusPort) { usleep(20_000) }
        let stationID = "BENCH-SNAP-0001"
        try """
        station: {id: \(stationID), network_code: NET-TEST}
        cabinet: {host: 127.0.0.1, port: \(modbusPort), detail_interval: 5}
        mqtt: {host: 127.0.0.1, port: \(broker.port)}
        store: {path: \(path("station.sqlite"))}
        publishing: {telemetry_interval: 5}
        abs: {public_keys: {bench: "\(publicKey)"}}
        """.write(toFile: path("swapgate.yaml"), atomically: true, encoding: .utf8)
        let gw = try rss.spawn(bin.appendingPathComponent("swapgate").path, ["run", "-c", path("swapgate.yaml")], log: dir.appendingPathComponent("gw.log"))
        defer { stopProcess(gw) }
        let replies = try rss.spawn("/usr/bin/mosquitto_sub", ["-h", "127.0.0.1", "-p", "\(broker.port)", "-t", "dt/V01/BSS/\(stationID)/reply"],
                                    log: dir.appendingPathComponent("replies.log"))
        defer { stopProcess(replies) }
        func waitReply(_ requestID: String) async throws {
            for _ in 0 ..< 6000 {
                if let text = try? String(contentsOfFile: path("replies.log"), encoding: .utf8), text.contains("\"request_id\":\"\(requestID)\"") { return }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw BenchError("no reply to \(requestID)")
        }
        func status(_ key: String) -> Int {
            let text = (try? String(contentsOfFile: "/proc/\(gw.processIdentifier)/status", encoding: .utf8)) ?? ""
            return text.split(separator: "\n").first { $0.hasPrefix(key + ":") }
                .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? -1
        }

        // The snapshot (as in the end-to-end tests), signed plain and as deflated parts.
        let gen = """
        import datetime, json, sys
        n, out = int(sys.argv[1]), sys.argv[2]
        now = datetime.datetime.now(datetime.timezone.utc)
        ts = lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        rows = [{"plan_instance_id": "pi-%d" % i, "customer_id": "cust-%d" % i, "subscription_ref": "SUB/2026/%d" % i,
                 "status": "active", "valid_from": ts(now - datetime.timedelta(days=1)), "valid_until": ts(now + datetime.timedelta(days=30)),
                 "network_code": "NET-TEST", "battery_family": "MOBBAT-45AH", "swap_quota": 60, "swaps_used": i % 50,
                 "energy_quota_kwh": 129.6, "energy_used_kwh": round(i % 97 * 1.37, 2), "overage_allowed": False, "max_batteries": 1,
                 "batteries_out": ["B45-%06d" % i] if i % 3 else [], "version": 1 + i % 40} for i in range(n)]
        json.dump({"kind": "snapshot", "version": 2, "counted_through_seq": 0, "entitlements": rows}, open(out, "w"), separators=(",", ":"))
        """
        _ = try sh("/usr/bin/python3 -c '\(gen)' \(count) '\(path("body.json"))'")
        let sign = "/usr/bin/python3 '\(script)' sign --key '\(privateKey)' --kid bench --stamp 3600"
        _ = try sh("\(sign) --payload-file '\(path("body.json"))' > '\(path("plain.env"))'")
        _ = try sh("\(sign) --deflate --part-size \(partSize) --snapshot-id bench-city --payload-file '\(path("body.json"))' > '\(path("parts.env"))'")
        let plainBytes = (try FileManager.default.attributesOfItem(atPath: path("plain.env"))[.size] as? NSNumber)?.intValue ?? -1
        let partLines = try String(contentsOfFile: path("parts.env"), encoding: .utf8).split(separator: "\n").map(String.init)
        let partBytes = partLines.reduce(0) { $0 + $1.utf8.count }

        // Steady state first (the daemon connected and polling).
        for _ in 0 ..< 600 {
            if let log = try? String(contentsOfFile: path("gw.log"), encoding: .utf8), log.contains("accepting commands") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        try await Task.sleep(for: .seconds(5))
        let steadyRSS = status("VmRSS"), steadyHWM = status("VmHWM")

        // The parts, one mosquitto_pub per line (-l), then the last part's reply.
        let t0 = monotonic()
        _ = try sh("mosquitto_pub -h 127.0.0.1 -p \(broker.port) -q 1 -t cmd/V01/BSS/\(stationID)/entitlements -l < '\(path("parts.env"))'")
        let lastRequest = try sh("""
            /usr/bin/python3 -c 'import sys,json,base64,zlib; l=open(sys.argv[1]).read().split("\\n")[-2]; print(json.loads(zlib.decompress(base64.b64decode(json.loads(l)["payload"]),-15))["request_id"])' '\(path("parts.env"))'
            """).trimmingCharacters(in: .whitespacesAndNewlines)
        try await waitReply(lastRequest)
        let partsSeconds = monotonic() - t0
        try await Task.sleep(for: .seconds(1))
        let partsHWM = status("VmHWM"), afterPartsRSS = status("VmRSS")

        // Today's way: one plain message.
        let plainRequest = try sh("/usr/bin/python3 -c 'import sys,json,base64; print(json.loads(base64.b64decode(json.load(open(sys.argv[1]))[\"payload\"]))[\"request_id\"])' '\(path("plain.env"))'")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let t1 = monotonic()
        _ = try sh("mosquitto_pub -h 127.0.0.1 -p \(broker.port) -q 1 -t cmd/V01/BSS/\(stationID)/entitlements -f '\(path("plain.env"))'")
        try await waitReply(plainRequest)
        let plainSeconds = monotonic() - t1
        try await Task.sleep(for: .seconds(1))
        let plainHWM = status("VmHWM")
        guard let log = try? String(contentsOfFile: path("replies.log"), encoding: .utf8), !log.contains("\"ok\":false") else {
            throw BenchError("a command was refused: \((try? String(contentsOfFile: path("replies.log"), encoding: .utf8))?.suffix(2000) ?? "")")
        }
        func mib(_ kib: Int) -> String { String(format: "%.1f MiB", Double(kib) / 1024) }
        report("snapshot: \(count) entitlements to swapgate (16-slot station), plain vs enc: deflate in parts of \(partSize)", [
            ("wire, one plain message", "\(plainBytes) bytes"),
            ("wire, \(partLines.count) deflated parts", "\(partBytes) bytes (\(String(format: "%.1f", Double(plainBytes) / Double(max(partBytes, 1))))× less; largest part \(partLines.map(\.utf8.count).max() ?? 0) bytes)"),
            ("daemon VmRSS steady / VmHWM steady", "\(mib(steadyRSS)) / \(mib(steadyHWM))"),
            ("VmHWM after the parts applied", "\(mib(partsHWM)) (\(String(format: "%.2f", Double(partsHWM) / Double(max(steadyRSS, 1))))× steady RSS); VmRSS then \(mib(afterPartsRSS)); \(String(format: "%.1f", partsSeconds)) s publish → applied"),
            ("VmHWM after the plain message applied", "\(mib(plainHWM)) (\(String(format: "%.2f", Double(plainHWM) / Double(max(steadyRSS, 1))))× steady RSS); \(String(format: "%.1f", plainSeconds)) s"),
        ])
    }
}
