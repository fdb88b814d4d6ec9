import ArgumentParser
import Foundation

/// The daemon's resident memory (issue 13 item 3): steady RSS with a 16-slot cabinet and 100 000 entitlements
/// cached, and the peak (VmHWM) while a 100 000-entitlement snapshot is applied in deflated parts.
/// station-sim, mosquitto and swapgate run as separate processes (the binaries next to this one); the snapshots
/// are signed by tools/abs_sign.py and published with mosquitto_pub.
///
/// 1. swapgate starts on an empty store and applies snapshot v2 (the cache is filled);
/// 2. it is restarted over that store (a daemon as it runs on a board, with 100k cached) and left `settle` s:
///    VmRSS then is *steady*; /proc/PID/smaps_rollup splits it into anonymous and file-backed pages;
/// 3. its peak is reset (`echo 5 > /proc/PID/clear_refs`), snapshot v3 is applied in parts, and VmHWM after the
///    last part's reply is the *peak* across the apply.
struct RSSBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rss",
                                                    abstract: "swapgate steady RSS (16 slots, 100k entitlements cached) and peak (VmHWM) across a 100k snapshot apply in parts.")
    @Option var slots = 16
    @Option var entitlements = 100_000
    @Option(help: "Records per snapshot part.") var partSize = 5_000
    @Option(help: "Seconds after the restart before steady RSS is read.") var settle = 20.0
    @Option(help: "Path of tools/abs_sign.py (default: looked for above this executable, then above the working directory).")
    var absSign: String?

    func run() async throws {
        let script = try SnapshotBench.locate(absSign)
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let broker = try BenchBroker()
        defer { broker.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swapbench-rss-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        func sh(_ command: String) throws -> String { try SnapshotBench.shell(command) }

        let keys = try JSONSerialization.jsonObject(with: Data(try sh("/usr/bin/python3 '\(script)' keygen").utf8)) as? [String: String] ?? [:]
        guard let privateKey = keys["private_key"], let publicKey = keys["public_key"] else { throw BenchError("keygen failed") }

        // Two snapshots of `entitlements` rows (versions 2 and 3), each signed as deflated parts.
        let gen = """
        import datetime, json, sys
        n, version, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
        now = datetime.datetime.now(datetime.timezone.utc)
        ts = lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        rows = [{"plan_instance_id": "pi-%d" % i, "customer_id": "cust-%d" % i, "subscription_ref": "SUB/2026/%d" % i,
                 "status": "active", "valid_from": ts(now - datetime.timedelta(days=1)), "valid_until": ts(now + datetime.timedelta(days=30)),
                 "network_code": "NET-TEST", "battery_family": "MOBBAT-45AH", "swap_quota": 60, "swaps_used": (i + version) % 50,
                 "energy_quota_kwh": 129.6, "energy_used_kwh": round(i % 97 * 1.37, 2), "overage_allowed": False, "max_batteries": 1,
                 "batteries_out": ["B45-%06d" % i] if i % 3 else [], "version": version + i % 40} for i in range(n)]
        json.dump({"kind": "snapshot", "version": version, "counted_through_seq": 0, "entitlements": rows}, open(out, "w"), separators=(",", ":"))
        """
        let sign = "/usr/bin/python3 '\(script)' sign --key '\(privateKey)' --kid bench --stamp 3600"
        for v in [2, 3] {
            _ = try sh("/usr/bin/python3 -c '\(gen)' \(entitlements) \(v) '\(path("body\(v).json"))'")
            _ = try sh("\(sign) --deflate --part-size \(partSize) --snapshot-id rss-\(v) --payload-file '\(path("body\(v).json"))' > '\(path("parts\(v).env"))'")
        }
        func lastRequestID(_ file: String) throws -> String {
            try sh("""
                /usr/bin/python3 -c 'import sys,json,base64,zlib; l=open(sys.argv[1]).read().split("\\n")[-2]; print(json.loads(zlib.decompress(base64.b64decode(json.loads(l)["payload"]),-15))["request_id"])' '\(file)'
                """).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        let modbusPort = BenchBroker.freePort()
        let sim = try spawn(bin.appendingPathComponent("station-sim").path,
                            ["--port", "\(modbusPort)", "--slots", "\(slots)", "--control-port", "0", "--speed", "60"], log: dir.appendingPathComponent("sim.log"))
        defer { stopProcess(sim) }
        for _ in 0 ..< 200 where !BenchBroker.canConnect(modbusPort) { usleep(20_000) }
        let stationID = "BENCH-RSS-0001"
        try """
        station: {id: \(stationID), network_code: NET-TEST}
        cabinet: {host: 127.0.0.1, port: \(modbusPort), detail_interval: 5}
        mqtt: {host: 127.0.0.1, port: \(broker.port)}
        store: {path: \(path("station.sqlite"))}
        publishing: {telemetry_interval: 5}
        abs: {public_keys: {bench: "\(publicKey)"}}
        """.write(toFile: path("swapgate.yaml"), atomically: true, encoding: .utf8)
        let replies = try spawn("/usr/bin/mosquitto_sub", ["-h", "127.0.0.1", "-p", "\(broker.port)", "-t", "dt/V01/BSS/\(stationID)/reply"],
                                log: dir.appendingPathComponent("replies.log"))
        defer { stopProcess(replies) }

        func startDaemon(_ log: String) async throws -> Process {
            let gw = try spawn(bin.appendingPathComponent("swapgate").path, ["run", "-c", path("swapgate.yaml")], log: dir.appendingPathComponent(log))
            for _ in 0 ..< 600 {
                if let text = try? String(contentsOfFile: path(log), encoding: .utf8), text.contains("accepting commands") { return gw }
                guard gw.isRunning else { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw BenchError("swapgate did not start: \((try? String(contentsOfFile: path(log), encoding: .utf8))?.suffix(2000) ?? "")")
        }
        func apply(_ v: Int) async throws -> Double {
            let request = try lastRequestID(path("parts\(v).env"))
            let t0 = monotonic()
            _ = try sh("mosquitto_pub -h 127.0.0.1 -p \(broker.port) -q 1 -t cmd/V01/BSS/\(stationID)/entitlements -l < '\(path("parts\(v).env"))'")
            for _ in 0 ..< 6000 {
                if let text = try? String(contentsOfFile: path("replies.log"), encoding: .utf8), text.contains("\"request_id\":\"\(request)\"") {
                    if text.contains("\"ok\":false") { throw BenchError("a part was refused: \(text.suffix(2000))") }
                    return monotonic() - t0
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw BenchError("no reply to \(request)")
        }

        // 1. Fill the cache, then a fresh daemon over it.
        let first = try await startDaemon("gw1.log")
        _ = try await apply(2)
        stopProcess(first)
        let gw = try await startDaemon("gw2.log")
        defer { stopProcess(gw) }
        let pid = gw.processIdentifier
        try await Task.sleep(for: .seconds(settle))
        guard gw.isRunning else { throw BenchError("swapgate exited: \((try? String(contentsOfFile: path("gw2.log"), encoding: .utf8)) ?? "")") }

        // 2. Steady: VmRSS and what it is made of.
        let steady = Self.kib(Self.read("/proc/\(pid)/status"), "VmRSS")
        let rollup = Self.read("/proc/\(pid)/smaps_rollup")
        let anon = Self.kib(rollup, "Anonymous"), fileBacked = Self.kib(rollup, "Rss") - Self.kib(rollup, "Anonymous") - Self.kib(rollup, "Shmem")
        let shmem = Self.kib(rollup, "Shmem")
        let byFile = Self.rssByMapping(pid: pid).prefix(8)

        // 3. Peak across a second 100k snapshot applied in parts.
        try "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8)
        let hwmAfterReset = Self.kib(Self.read("/proc/\(pid)/status"), "VmHWM")
        let seconds = try await apply(3)
        let status = Self.read("/proc/\(pid)/status")
        let peak = Self.kib(status, "VmHWM"), after = Self.kib(status, "VmRSS")

        func mib(_ kib: Int) -> String { String(format: "%.1f MiB", Double(kib) / 1024) }
        var rows: [(String, String)] = [
            ("steady VmRSS (goal ≤ 20 MB)", mib(steady)),
            ("  anonymous (heap, stacks, SQLite cache)", mib(anon)),
            ("  file-backed (code and read-only data)", mib(fileBacked)),
            ("  shared memory (SQLite -shm)", mib(shmem)),
        ]
        for (name, kib) in byFile { rows.append(("    \(name)", mib(kib))) }
        rows += [
            ("VmHWM reset to", mib(hwmAfterReset)),
            ("peak VmHWM across the apply (goal ≤ 1.5× steady)", "\(mib(peak)) (\(String(format: "%.2f", Double(peak) / Double(max(steady, 1))))× steady)"),
            ("VmRSS after the apply", mib(after)),
            ("apply", String(format: "%.1f s, %d parts of %d", seconds, (entitlements + partSize - 1) / partSize, partSize)),
            ("threads", "\(Self.kib(status, "Threads"))"),
        ]
        report("rss: swapgate, \(slots)-slot cabinet, \(entitlements) entitlements cached; a \(entitlements) snapshot applied in parts", rows)
    }

    /// A /proc file read to its end (they report size 0, and smaps is longer than one read).
    static func read(_ path: String) -> String {
        guard let h = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? h.close() }
        return String(decoding: h.readDataToEndOfFile(), as: UTF8.self)
    }

    /// The number after `key:` in a /proc status-like text (kB for sizes).
    static func kib(_ text: String, _ key: String) -> Int {
        text.split(separator: "\n").first { $0.hasPrefix(key + ":") }
            .flatMap { Int($0.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") } ?? 0
    }

    /// Resident kB per mapped file (and "[anon]" for the rest), largest first, from /proc/PID/smaps.
    static func rssByMapping(pid: Int32) -> [(String, Int)] {
        var total: [String: Int] = [:]
        var current = "[anon]"
        for line in read("/proc/\(pid)/smaps").split(separator: "\n") {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if let first = f.first, first.contains("-"), f.count >= 5, first.first?.isHexDigit == true {
                current = f.count >= 6 ? String(f[5]).split(separator: "/").last.map(String.init) ?? "[anon]" : "[anon]"
            } else if f.first == "Rss:", f.count >= 2, let kb = Int(f[1]) {
                total[current, default: 0] += kb
            }
        }
        return total.sorted { $0.value > $1.value }
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
