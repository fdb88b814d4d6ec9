import Acquisition
import ArgumentParser
import CModbus
import Foundation
import ModbusLink
import SimulatorCore
import StationDomain

/// A full scan of a 16-slot cabinet (device block, summary, every slot block) through the gateway's
/// acquisition path, versus the same reads in a bare libmodbus loop, against the same simulator: station-sim in
/// its own process (the built binary, so it does not share the benchmark's threads). Raw and gateway alternate in
/// each round; the ratio reported is the median of the per-round ratios (a round's two figures share the machine's
/// load at that moment), the per-round ratios printed beside it.
struct ModbusBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "modbus", abstract: "Acquisition scan vs raw libmodbus loop.")
    @Option var slots = 16
    @Option var scans = 2000
    @Option var rounds = 5
    @Option(help: "Cabinets on one bus for the station variant (0: skip it).")
    var cabinets = 3
    @Option(name: .customLong("station-sim"), help: "Path of station-sim (default: next to this executable).")
    var stationSim: String?

    func run() async throws {
        try await cabinetScan()
        if cabinets > 0 { try await stationScan() }
    }

    func cabinetScan() async throws {
        // Simulated time nearly frozen (--speed 1e-6; the in-process simulator this replaced did not tick): every
        // round reads the same cabinet.
        let sim = try SimChild.start(path: stationSim, arguments: [
            "--slots", "\(slots)", "--port", "0", "--control-port", "0", "--watchdog-timeout", "0", "--seed", "3",
            "--fill", "mixed", "--speed", "0.000001"])
        defer { sim.stop() }
        let port = sim.port

        var conf = AcquisitionConfiguration(transport: .tcp(host: "127.0.0.1", port: port))
        conf.detailInterval = 0          // every cycle reads every slot block: a full scan
        conf.meterEnabled = false
        conf.watchdogInterval = 1e9      // liveness writes are not part of a scan
        conf.clockSyncInterval = 1e9
        let acq = CabinetAcquisition(configuration: conf)
        _ = await acq.cycle()            // start-up cycle (clock, watchdog) is not measured
        let r0 = acq.statistics.requests

        var rawTimes: [Double] = [], gwTimes: [Double] = []
        var rawRequests = 0
        for _ in 0 ..< rounds {
            let (t, n) = try rawLoop(port: port, scans: scans)
            rawTimes.append(t); rawRequests = n
            let start = monotonic()
            for _ in 0 ..< scans { _ = await acq.cycle() }
            gwTimes.append((monotonic() - start) / Double(scans))
        }
        let gwRequests = Double(acq.statistics.requests - r0) / Double(scans * rounds)
        let raw = median(rawTimes), gw = median(gwTimes)
        let ratios = zip(gwTimes, rawTimes).map { $0 / $1 }
        report("modbus: full scan of a \(slots)-slot cabinet over loopback TCP, station-sim in its own process (median of \(rounds) rounds × \(scans) scans)", [
            ("raw libmodbus loop", String(format: "%.1f µs/scan (%d requests)", raw * 1e6, rawRequests)),
            ("gateway acquisition", String(format: "%.1f µs/scan (%.1f requests)", gw * 1e6, gwRequests)),
            ("ratio gateway/raw", String(format: "%.2f× median of per-round ratios (%@) (target ≤ 1.2×)", median(ratios), ratioList(ratios))),
            ("steady-state fast cycle", "2 requests (device block + summary) when nothing changed"),
        ])
    }

    /// Several cabinets on one bus: station-sim in its own process serving `cabinets` unit ids (1, 3, 4, …) of
    /// `slots` slots each on one TCP port; the gateway's station acquisition (one shared bus owner, the cabinets in
    /// turn) versus the same reads in a bare libmodbus loop switching the unit id; then the steady requests of a
    /// cycle in which nothing changed.
    func stationScan() async throws {
        let units = [1] + (0 ..< cabinets - 1).map { $0 + 3 }
        let sim = try SimChild.start(path: stationSim, arguments: [
            "--units", units.map(String.init).joined(separator: ","), "--slots", "\(slots)", "--port", "0",
            "--control-port", "0", "--watchdog-timeout", "0", "--seed", "3"])
        defer { sim.stop() }
        var confs: [AcquisitionConfiguration] = []
        for (i, unit) in units.enumerated() {
            var conf = AcquisitionConfiguration(transport: .tcp(host: "127.0.0.1", port: sim.port))
            conf.cabinetID = String(UnicodeScalar(UInt8(65 + i)))
            conf.unit = UInt8(unit)
            conf.detailInterval = 0      // every cycle reads every slot block: a full scan
            conf.meterEnabled = false
            conf.watchdogInterval = 1e9
            conf.clockSyncInterval = 1e9
            confs.append(conf)
        }
        let station = StationAcquisition(configurations: confs)
        guard await station.cycle() else { throw ValidationError("the station did not answer: \(station.statistics.lastError ?? "?")") }
        let r0 = station.statistics.requests
        let n = max(1, scans / 4)
        var rawTimes: [Double] = [], gwTimes: [Double] = []
        var rawRequests = 0
        for _ in 0 ..< rounds {
            let (t, k) = try rawLoop(port: sim.port, scans: n, units: units)
            rawTimes.append(t); rawRequests = k
            let start = monotonic()
            for _ in 0 ..< n { _ = await station.cycle() }
            gwTimes.append((monotonic() - start) / Double(n))
        }
        let gwRequests = Double(station.statistics.requests - r0) / Double(n * rounds)

        // Steady state: the usual detail interval; after a full cycle, cycles where nothing changed.
        var steadyConfs = confs
        for i in steadyConfs.indices { steadyConfs[i].detailInterval = 3600 }
        let steady = StationAcquisition(configurations: steadyConfs)
        _ = await steady.cycle()
        _ = await steady.cycle()
        let s0 = steady.statistics.requests
        let steadyCycles = 50
        for _ in 0 ..< steadyCycles { _ = await steady.cycle() }
        let perCycle = Double(steady.statistics.requests - s0) / Double(steadyCycles)

        let raw = median(rawTimes), gw = median(gwTimes)
        let ratios = zip(gwTimes, rawTimes).map { $0 / $1 }
        report("modbus: full scan of a station of \(cabinets) × \(slots)-slot cabinets on one TCP bus (units \(units.map(String.init).joined(separator: ","))), station-sim in its own process (median of \(rounds) rounds × \(n) scans)", [
            ("raw libmodbus loop", String(format: "%.1f µs/scan (%d requests)", raw * 1e6, rawRequests)),
            ("gateway station acquisition", String(format: "%.1f µs/scan (%.1f requests)", gw * 1e6, gwRequests)),
            ("ratio gateway/raw", String(format: "%.2f× median of per-round ratios (%@) (target ≤ 1.2×)", median(ratios), ratioList(ratios))),
            ("steady station cycle", String(format: "%.1f requests (device block + summary per cabinet; charging slots' changes add reads)", perCycle)),
        ])
    }

    /// The baseline: the same requests, straight libmodbus calls, no decoding.
    func rawLoop(port: Int, scans: Int, units: [Int] = [1]) throws -> (Double, Int) {
        guard let ctx = modbus_new_tcp_pi("127.0.0.1", String(port)) else { throw ValidationError("modbus_new_tcp_pi") }
        defer { modbus_close(ctx); modbus_free(ctx) }
        modbus_set_slave(ctx, 1)
        guard modbus_connect(ctx) == 0 else { throw ValidationError("connect") }
        var buf = [UInt16](repeating: 0, count: 125)
        var requests = 0
        let start = monotonic()
        for _ in 0 ..< scans {
            requests = 0
            for unit in units {
            modbus_set_slave(ctx, Int32(unit))
            buf.withUnsafeMutableBufferPointer { b in
                _ = modbus_read_input_registers(ctx, 0, 32, b.baseAddress); requests += 1
                _ = modbus_read_input_registers(ctx, 40, Int32(slots), b.baseAddress); requests += 1
                var s = 1
                while s <= slots {
                    let n = min(3, slots - s + 1)
                    _ = modbus_read_input_registers(ctx, Int32(100 + (s - 1) * 32), Int32(n * 32), b.baseAddress); requests += 1
                    s += n
                }
            }
            }
        }
        return ((monotonic() - start) / Double(scans), requests)
    }
}

/// station-sim as a child process (stopped by its PID), its Modbus port read from its ready line.
final class SimChild {
    let process: Process
    let port: Int

    static func start(path: String?, arguments: [String]) throws -> SimChild {
        let exe = path ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("station-sim").path
        guard FileManager.default.isExecutableFile(atPath: exe) else {
            throw ValidationError("station-sim not found at \(exe): build it (swift build -c release) or pass --station-sim PATH")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        var text = ""
        let deadline = monotonic() + 20
        while monotonic() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
            if text.contains("control listening"), let r = text.range(of: "modbus tcp listening on 127.0.0.1:") {
                let digits = text[r.upperBound...].prefix { $0.isNumber }
                if let port = Int(digits) { return SimChild(process: p, port: port) }
            }
        }
        p.terminate()
        throw ValidationError("station-sim did not start: \(text)")
    }

    init(process: Process, port: Int) { self.process = process; self.port = port }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
    }
}

/// Per-round ratios as printed beside their median: "1.02, 0.98, 1.10".
func ratioList(_ ratios: [Double]) -> String { ratios.map { String(format: "%.2f", $0) }.joined(separator: ", ") }
