import Acquisition
import ArgumentParser
import CModbus
import Foundation
import ModbusLink
import SimulatorCore
import StationDomain

/// A full scan of a 16-slot cabinet (device block, summary, every slot block) through the gateway's
/// acquisition path, versus the same reads in a bare libmodbus loop, against the same simulator.
struct ModbusBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "modbus", abstract: "Acquisition scan vs raw libmodbus loop.")
    @Option var slots = 16
    @Option var scans = 2000
    @Option var rounds = 5

    func run() async throws {
        let sim = Simulator(configuration: SimulatorConfiguration(slots: slots, seed: 3, fill: .mixed, autoTick: false))
        let port = try sim.startTCP()
        defer { sim.stop() }

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
        report("modbus: full scan of a \(slots)-slot cabinet over loopback TCP (median of \(rounds) rounds × \(scans) scans)", [
            ("raw libmodbus loop", String(format: "%.1f µs/scan (%d requests)", raw * 1e6, rawRequests)),
            ("gateway acquisition", String(format: "%.1f µs/scan (%.1f requests)", gw * 1e6, gwRequests)),
            ("ratio gateway/raw", String(format: "%.2f× (target ≤ 1.2×)", gw / raw)),
            ("steady-state fast cycle", "2 requests (device block + summary) when nothing changed"),
        ])
    }

    /// The baseline: the same requests, straight libmodbus calls, no decoding.
    func rawLoop(port: Int, scans: Int) throws -> (Double, Int) {
        guard let ctx = modbus_new_tcp_pi("127.0.0.1", String(port)) else { throw ValidationError("modbus_new_tcp_pi") }
        defer { modbus_close(ctx); modbus_free(ctx) }
        modbus_set_slave(ctx, 1)
        guard modbus_connect(ctx) == 0 else { throw ValidationError("connect") }
        var buf = [UInt16](repeating: 0, count: 125)
        var requests = 0
        let start = monotonic()
        for _ in 0 ..< scans {
            requests = 0
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
        return ((monotonic() - start) / Double(scans), requests)
    }
}
