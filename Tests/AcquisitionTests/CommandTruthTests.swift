@testable import Acquisition
import Foundation
import ModbusLink
import SimulatorCore
import StationDomain
import Testing
import TestSupport

/// Issue 9 items 3 and 7 over real Modbus TCP against the simulator's firmware (SimulatorCore): a command is
/// never "done" on a stale register 19, the watchdog value always changes, probes keep their positions.
@Suite(.serialized) struct CommandTruthTests {
    func locked(_ h: Harness, _ slot: Int) -> Bool { h.sim.snapshot().slots[slot - 1].locked }

    /// A second writer (the simulator's control `exec`) leaves the seq the gateway would pick in register 19.
    @Test func unlockIsNeverSkippedWhenRegister19HoldsTheProposedSeq() async throws {
        let h = try Harness(slots: 4)
        defer { h.stop() }
        await h.cycle()
        let slot = h.firstFullSlot()
        for round in 0 ..< 60 {
            let proposed = h.acquisition.proposeSeq()
            // A technician locks the slot with exactly that seq: 19 now holds it, the slot is locked.
            let reply = h.sim.control(line: #"{"cmd":"exec","command":2,"slot":\#(slot),"seq":\#(proposed)}"#)
            #expect(reply.contains(#""ok":true"#), "\(reply)")
            #expect(locked(h, slot))
            let (result, seq) = try await h.acquisition.executeReporting(.unlock, slot: slot, seq: proposed, param: 20)
            #expect(result == .ok)
            #expect(seq != proposed, "round \(round)")
            #expect(!locked(h, slot), "round \(round): the gateway said ok but the door is still locked")
            let last = try #require(h.sim.commandLog().last)
            #expect(last.cmd == 1 && Int(last.slot) == slot && last.seq == seq && last.result == 0)
        }
    }

    /// The simulator's `exec` picks its own seq (last + 1), as any other master might: whatever it picked, the
    /// gateway's next command is executed, many times over.
    @Test func aSecondWriterNeverMakesTheGatewaySkipACommand() async throws {
        let h = try Harness(slots: 4)
        defer { h.stop() }
        await h.cycle()
        let slot = h.firstFullSlot()
        for round in 0 ..< 60 {
            let reply = h.sim.control(line: #"{"cmd":"exec","command":2,"slot":\#(slot)}"#)
            #expect(reply.contains(#""ok":true"#), "\(reply)")
            if round % 3 == 0 { await h.cycle() }   // sometimes the gateway has seen 19 since, sometimes not
            let unlocks = h.sim.commandLog().filter { $0.cmd == 1 }.count
            #expect(try await h.acquisition.execute(.unlock, slot: slot, param: 20) == .ok)
            #expect(!locked(h, slot), "round \(round): unlock skipped")
            #expect(h.sim.commandLog().filter { $0.cmd == 1 }.count == unlocks + 1, "round \(round): one unlock executed")
        }
    }

    /// The map: the watchdog counts "any changing value". A constant value does not reset it.
    @Test func constantWatchdogWritesDoNotCount() throws {
        let h = try Harness(slots: 2)
        defer { h.stop() }
        try h.sim.setWatchdogTimeout(1000)
        _ = h.sim.handle(unit: 1, pdu: ModbusPDU.writeSingle(address: 1020, value: 1))
        #expect(h.sim.snapshot().watchdogSeconds == 0)
        h.sim.tick(seconds: 5)
        _ = h.sim.handle(unit: 1, pdu: ModbusPDU.writeSingle(address: 1020, value: 1))
        #expect(h.sim.snapshot().watchdogSeconds == 5, "an unchanged value is not a watchdog write")
        _ = h.sim.handle(unit: 1, pdu: ModbusPDU.writeSingle(address: 1020, value: 2))
        #expect(h.sim.snapshot().watchdogSeconds == 0)
    }

    /// Every watchdog write of the gateway counts, whatever another master wrote before it: one-shot readers
    /// (as `swapctl direct` runs) one after the other, and a master that wrote the gateway's next value.
    @Test func everyGatewayWatchdogWriteCounts() async throws {
        let h = try Harness(slots: 2) { $0.watchdogInterval = 0 }
        defer { h.stop() }
        try h.sim.setWatchdogTimeout(1000)
        for run in 0 ..< 20 {
            // A fresh one-shot reader each time, as `swapctl direct` is.
            var conf = h.acquisition.configuration
            conf.watchdogInterval = 0
            let direct = CabinetAcquisition(configuration: conf)
            h.sim.tick(seconds: 5)
            #expect(await direct.cycle())
            #expect(h.sim.snapshot().watchdogSeconds == 0, "direct run \(run) did not feed the watchdog")
            await direct.bus.close()
        }
        for round in 0 ..< 20 {
            await h.cycle()
            // Another master writes the register's value + 1 — what a plain counter would write next.
            let held = try #require(h.sim.handle(unit: 1, pdu: ModbusPDU.readHolding(start: 1020, count: 1)).flatMap(ModbusPDU.registers)?.first)
            _ = h.sim.handle(unit: 1, pdu: ModbusPDU.writeSingle(address: 1020, value: held &+ 1))
            h.sim.tick(seconds: 5)
            #expect(h.sim.snapshot().watchdogSeconds == 5)
            await h.cycle()
            #expect(h.sim.snapshot().watchdogSeconds == 0, "round \(round): the gateway's write did not count")
        }
    }

    /// Probes through the real acquisition path: a 0.0 °C probe is a temperature, absent ones (0x8000) keep
    /// their place as nil.
    @Test func probesKeepTheirPositionsThroughTheBus() async throws {
        let h = try Harness(slots: 4, fill: .full)
        defer { h.stop() }
        await h.cycle()
        try h.sim.setBattery(slot: 1, probeTemperatures: [0.0, 21.5, -3.2])
        let cells = try await h.acquisition.readCells(slot: 1)
        #expect(cells.probeTemperatures == [0.0, 21.5, -3.2, nil, nil, nil])
        // A family-1 pack has four probes: the last two read 0x8000.
        let family = h.sim.snapshot().slots[1].battery?.family
        let four = try await h.acquisition.readCells(slot: 2)
        let expected = family == 3 ? 6 : (family == 0 ? 2 : 4)
        #expect(four.probeTemperatures.prefix(expected).allSatisfy { $0 != nil })
        #expect(four.probeTemperatures.dropFirst(expected).allSatisfy { $0 == nil })
        #expect(four.probeTemperatures.count == 6)
        let raw = try #require(h.sim.inputRegisters(start: 2000 + 32 + 25, count: 6))
        #expect(raw.dropFirst(expected).allSatisfy { $0 == 0x8000 })
    }
}
