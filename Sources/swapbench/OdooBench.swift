import ArgumentParser
import Foundation
import GatewayCore
import Logging
import OdooLink
import StationDomain
import StationStore
import Acquisition

/// Drain of a usage backlog through the gateway's forwarder (SQLite outbox → Odoo, marked settled) versus the
/// raw request rate of the same HTTP client against the same Odoo stand-in, with the same in-flight bound.
struct OdooBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "odoo", abstract: "Usage backlog drain vs raw HTTP client rate.")
    @Option var records = 50_000
    @Option(help: "Requests measured for the raw baseline.") var rawRequests = 10_000
    @Option var inFlight = 4
    @Option(name: .customLong("standin"),
            help: "Path of tools/odoo_standin.py (default: looked for above this executable, then above the working directory).")
    var standInPath: String?

    func run() async throws {
        let standIn = try StandIn(script: try StandIn.locate(standInPath))
        defer { standIn.stop() }
        var conf = OdooConfiguration(baseURL: "http://127.0.0.1:\(standIn.port)", apiKey: "bench-key")
        conf.maxConcurrentRequests = inFlight
        let client = try OdooClient(configuration: conf)

        // Baseline: the same client, `inFlight` concurrent sends of fresh records, nothing stored.
        let rawStart = monotonic()
        await withTaskGroup(of: Void.self) { group in
            for w in 0 ..< inFlight {
                group.addTask {
                    var i = w
                    while i < rawRequests {
                        _ = await client.send(Self.record("raw-\(i)"), rpcID: i)
                        i += inFlight
                    }
                }
            }
        }
        let raw = Double(rawRequests) / (monotonic() - rawStart)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swapbench-odoo-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try StationStore(path: dir.appendingPathComponent("bench.sqlite").path)
        _ = try await store.importUsage((0 ..< records).map { Self.record("swap-\($0)") }, at: Date())
        let (stream, _) = AsyncStream<Acquisition.ChangeBatch>.makeStream()
        let recorder = EventRecorder(store: store, changes: stream, wake: Wakeup(), health: GatewayHealth(), logger: Logger(label: "bench"))
        let forwarder = UsageForwarder(store: store, client: client, maxInFlight: inFlight, recorder: recorder,
                                       health: GatewayHealth(), logger: Logger(label: "bench"))
        let start = monotonic()
        while try await store.usageStats().pending > 0 {
            if await forwarder.drainOnce() == 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
        let gw = Double(records) / (monotonic() - start)
        let stats = try standIn.stats()
        try await store.close()
        try await client.shutdown()
        report("odoo: drain of a \(records)-record usage backlog, \(inFlight) requests in flight, Odoo stand-in on loopback", [
            ("raw HTTP client (same client)", String(format: "%.0f requests/s (%d requests)", raw, rawRequests)),
            ("gateway forwarder", String(format: "%.0f records/s (read from SQLite, sent, marked settled)", gw)),
            ("ratio gateway/raw", String(format: "%.2f× (target ≥ 0.5×)", gw / raw)),
            ("max in flight seen by Odoo", "\(stats["max_in_flight"] ?? "?") (bound \(inFlight))"),
        ])
    }

    static func record(_ key: String) -> UsageRecord {
        UsageRecord(idempotencyKey: key, subscriptionRef: "SUB/2026/00042", planInstanceID: "pi-000123", customerID: "cust-789",
                    stationID: "BENCH-0001", outletCode: "BENCH", occurredAt: Date(), recordedOffline: false,
                    lines: [.init(serviceID: "service-swap-count", quantity: 1, unit: "1"),
                            .init(serviceID: "service-energy-gage", quantity: 1.944, unit: "kWh")],
                    swapID: key, batteryOut: .init(id: "B45-000311", socPercent: 98.7, slot: 4),
                    batteryIn: .init(id: "B45-000123", socPercent: 9.5, slot: 9))
    }
}

/// tools/odoo_standin.py, started from the repository this binary was built in, stopped by PID.
final class StandIn {
    let process = Process()
    let port: Int
    let out = Pipe()

    /// The stand-in script: `explicit` if given (it must exist), else `tools/odoo_standin.py` in the nearest
    /// directory above the executable, then above the working directory (a build folder outside the tree has none).
    static func locate(_ explicit: String?) throws -> String {
        if let explicit {
            guard FileManager.default.isReadableFile(atPath: explicit) else {
                throw BenchError("--standin \(explicit): no such readable file")
            }
            return explicit
        }
        let starts = [URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent(),
                      URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
        for start in starts {
            var dir = start
            while true {
                let candidate = dir.appendingPathComponent("tools/odoo_standin.py").path
                if FileManager.default.fileExists(atPath: candidate) { return candidate }
                if dir.pathComponents.count <= 1 { break }
                dir.deleteLastPathComponent()
            }
        }
        throw BenchError("cannot find tools/odoo_standin.py above this executable or the working directory: pass --standin PATH")
    }

    init(script: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [script, "--port", "0", "--key", "bench-key"]
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try spawnWithSignalsUnblocked(process)
        var buffer = Data()
        var found: Int?
        let deadline = Date().addingTimeInterval(20)
        while found == nil, Date() < deadline {
            buffer.append(out.fileHandleForReading.availableData)
            if let line = String(data: buffer, encoding: .utf8)?.split(separator: "\n").first(where: { $0.contains("listening on") }),
               let p = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
                found = p
            }
        }
        guard let found else { throw BenchError("the Odoo stand-in did not start") }
        port = found
    }

    /// The stand-in's counters (read with Python's urllib: Foundation on Linux has no HTTP without FoundationNetworking).
    func stats() throws -> [String: Any] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:\(port)/_standin/stats').read().decode())"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    func stop() { stopProcess(process) }
}
