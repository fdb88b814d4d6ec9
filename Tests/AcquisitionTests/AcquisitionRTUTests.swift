@testable import Acquisition
import Foundation
import ModbusLink
import SimulatorCore
import StationDomain
import Testing
import TestSupport

/// The same acquisition over Modbus RTU: the simulator on one end of a socat pty pair, libmodbus on the other.
@Suite(.serialized) struct AcquisitionRTUTests {
    @Test func scanInsertDoorAndRebootOverRTU() async throws {
        let h = try Harness(slots: 6, rtu: true)
        defer { h.stop() }
        h.sim.tick(seconds: 100)
        let first = await h.cycle()
        #expect(first.ok, "\(h.acquisition.statistics.lastError ?? "")")
        #expect(h.snapshot.slots.count == 6)
        let truth = h.sim.snapshot()
        for (mine, real) in zip(h.snapshot.slots, truth.slots) {
            #expect(mine.bms?.batteryID == real.battery?.id)
        }
        let slot = h.firstEmptySlot()
        try h.sim.insertBattery(slot: slot, id: "B100-000009", family: 3, soc: 55, soh: 81)
        try h.sim.openDoor(slot: h.firstFullSlot(), force: true)
        let out = await h.cycle().changes
        #expect(out.contains { if case .batteryInserted(slot, let b) = $0 { b?.family == .mobbat100 } else { false } })
        #expect(out.contains(.doorOpened(slot: h.firstFullSlot(), wasUnlocked: false)))
        #expect(h.snapshot.meter != nil)       // unit 2 on the same line
        h.sim.reboot()
        #expect(await h.cycle().changes.contains { if case .cabinetRebooted = $0 { true } else { false } })
    }

    @Test func crcErrorsAndGarbageAreRetriedOrFailCleanly() async throws {
        let h = try Harness(slots: 4, rtu: true) { $0.timings.retries = 1 }
        defer { h.stop() }
        #expect(await h.cycle().ok)
        try h.sim.inject(.crcErrors(count: 1))     // one bad frame: the retry recovers it
        #expect(await h.cycle().ok)
        let retries = await h.acquisition.bus.inspect { $0.statistics.retries }
        #expect(retries >= 1)
        try h.sim.inject(.garbage(count: 2))       // both tries corrupted: this cycle fails, the next is fine
        #expect(await h.cycle().ok == false)
        #expect(await h.cycle().ok)
        #expect(!h.snapshot.cabinetStale)
    }
}
