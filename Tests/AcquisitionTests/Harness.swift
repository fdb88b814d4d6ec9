@testable import Acquisition
import Foundation
import ModbusLink
import SimulatorCore
import StationDomain
import TestSupport

/// A simulator on a loopback port and an acquisition reading it over real Modbus TCP (or RTU).
/// The simulator's clock is paused: tests advance physics with `sim.tick(seconds:)` and poll with `cycle()`.
final class Harness: @unchecked Sendable {
    let sim: Simulator
    let acquisition: CabinetAcquisition
    let changes: AsyncStream<ChangeBatch>
    private var iterator: AsyncStream<ChangeBatch>.AsyncIterator
    var port = 0
    var socat: SocatPty?

    init(slots: Int = 16, fill: FillMode = .mixed, rtu: Bool = false, configure: (inout AcquisitionConfiguration) -> Void = { _ in }) throws {
        sim = Simulator(configuration: SimulatorConfiguration(slots: slots, seed: 7, fill: fill, autoTick: false,
                                                              commandExecutionTime: 0))
        var conf: AcquisitionConfiguration
        if rtu {
            let pty = try SocatPty()
            socat = pty
            try sim.startRTU(path: pty.pathA)
            conf = AcquisitionConfiguration(transport: .rtu(device: pty.pathB, baud: 115_200, parity: .none, dataBits: 8, stopBits: 1))
        } else {
            port = try sim.startTCP()
            conf = AcquisitionConfiguration(transport: .tcp(host: "127.0.0.1", port: port))
        }
        conf.timings = ModbusTimings(responseTimeout: 0.3, byteTimeout: 0.1, retries: 0)
        conf.meterEnabled = true
        conf.detailInterval = 3600   // tests decide when to refresh: changes come from the summary
        configure(&conf)
        acquisition = CabinetAcquisition(configuration: conf)
        changes = acquisition.broadcast.subscribe()
        iterator = changes.makeAsyncIterator()
    }

    /// One acquisition cycle; returns the changes it produced (empty if none).
    @discardableResult
    func cycle() async -> (ok: Bool, changes: [StationChange]) {
        let before = acquisition.statistics.changes
        let ok = await acquisition.cycle()
        guard acquisition.statistics.changes > before else { return (ok, []) }
        var out: [StationChange] = []
        while out.count < acquisition.statistics.changes - before, let batch = await iterator.next() { out += batch.changes }
        return (ok, out)
    }

    var snapshot: StationSnapshot { acquisition.snapshot }

    func firstEmptySlot() -> Int { sim.snapshot().slots.first { !$0.batteryPresent }!.slot }
    func firstFullSlot() -> Int { sim.snapshot().slots.first { $0.batteryPresent }!.slot }

    func stop() {
        sim.stop()
        socat?.stop()
    }
}
