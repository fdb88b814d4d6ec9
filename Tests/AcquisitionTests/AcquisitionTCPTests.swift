@testable import Acquisition
import Foundation
import ModbusLink
import SimulatorCore
import StationDomain
import Testing
import TestSupport

@Suite(.serialized) struct AcquisitionTCPTests {
    @Test func fullScanMatchesTheSimulatorField() async throws {
        let h = try Harness(slots: 16)
        defer { h.stop() }
        let first = await h.cycle()
        #expect(first.ok)
        #expect(first.changes.first == .cabinetOnline(serial: h.sim.snapshot().serialNumber, firmware: "1.4.2", slotCount: 16))
        let snap = h.snapshot
        #expect(!snap.cabinetStale)
        #expect(snap.slots.count == 16)
        let truth = h.sim.snapshot()
        for (mine, real) in zip(snap.slots, truth.slots) {
            #expect(mine.batteryPresent == real.batteryPresent, "slot \(real.slot)")
            #expect(mine.state.rawValue == UInt16(real.state), "slot \(real.slot)")
            if let rb = real.battery {
                let b = try #require(mine.bms, "slot \(real.slot)")
                #expect(b.batteryID == rb.id)
                #expect(abs(b.socPercent - rb.soc) <= 0.1)
                #expect(abs(b.sohPercent - rb.soh) <= 0.1)
                #expect(b.family.rawValue == UInt16(rb.family))
                #expect(abs(b.packVoltage - rb.packVoltage) <= 0.01)
                #expect(Int(b.cycleCount) == rb.cycleCount)
            } else {
                #expect(mine.bms == nil)
            }
        }
        // Energy meter on unit 2.
        #expect(snap.meter != nil)
        #expect((snap.meter?.frequencyHz ?? 0) > 45)
        // Every battery was announced once.
        let inserted = first.changes.filter { if case .batteryInserted = $0 { true } else { false } }
        #expect(inserted.count == truth.slots.filter(\.batteryPresent).count)
    }

    @Test func fewestRequestsPerScan() async throws {
        let h = try Harness(slots: 16)
        defer { h.stop() }
        await h.cycle()   // start-up: device, watchdog (read, write), clock, summary, 6 slot reads (3 blocks each), meter
        let startup = h.acquisition.statistics.requests
        #expect(startup == 1 + 2 + 1 + 1 + 6 + 1)
        await h.cycle()   // steady state with nothing changed: device + summary only
        #expect(h.acquisition.statistics.requests - startup == 2)
        #expect(Set(Scan.slotRequestsForTesting([1, 2, 3, 4, 5, 6, 7])) == Set(["1+3", "4+3", "7+1"]))
        #expect(Scan.slotRequestsForTesting([2, 4, 9]) == ["2+3", "9+1"])
    }

    @Test func insertAndRemoveAreSeen() async throws {
        let h = try Harness(slots: 8)
        defer { h.stop() }
        await h.cycle()
        let slot = h.firstEmptySlot()
        try h.sim.insertBattery(slot: slot, id: "B45-777001", family: 2, soc: 12.5, soh: 93)
        let inserted = await h.cycle().changes
        guard case let .batteryInserted(s, bms)? = inserted.first(where: { if case .batteryInserted = $0 { true } else { false } }) else {
            Issue.record("no insert in \(inserted)"); return
        }
        #expect(s == slot)
        #expect(bms?.batteryID == "B45-777001")
        #expect(abs((bms?.socPercent ?? 0) - 12.5) < 0.11)
        #expect(bms?.family == .mobbat45)

        _ = try h.sim.removeBattery(slot: slot)
        let removed = await h.cycle().changes
        #expect(removed.contains { if case .batteryRemoved(slot, let b) = $0 { b?.batteryID == "B45-777001" } else { false } })
    }

    @Test func doorOpenedAndClosedBetweenPolls() async throws {
        let h = try Harness(slots: 4)
        defer { h.stop() }
        await h.cycle()
        let slot = h.firstFullSlot()
        try h.sim.openDoor(slot: slot, force: true)
        try h.sim.closeDoor(slot: slot)
        let out = await h.cycle().changes
        #expect(out.contains(.doorOpened(slot: slot, wasUnlocked: false)))
        #expect(out.contains(.doorClosed(slot: slot, authorised: false)))
    }

    @Test func unlockThroughTheCommandBlockThenRiderLikeCycle() async throws {
        let h = try Harness(slots: 4)
        defer { h.stop() }
        await h.cycle()
        let slot = h.firstEmptySlot()
        let result = try await h.acquisition.execute(.unlock, slot: slot, param: 20)
        #expect(result == .ok)
        h.sim.tick(seconds: 0.2)
        try h.sim.openDoor(slot: slot)
        try h.sim.insertBattery(slot: slot, id: "B30-000042", family: 1, soc: 8, soh: 88)
        try h.sim.closeDoor(slot: slot)
        let out = await h.cycle().changes.filter { $0.slot == slot }
        #expect(out.first == .doorOpened(slot: slot, wasUnlocked: true))
        #expect(out.last == .doorClosed(slot: slot, authorised: true))
        #expect(out.contains { if case .batteryInserted(_, let b) = $0 { b?.batteryID == "B30-000042" } else { false } })
        // Same seq again does nothing; the command log proves one unlock.
        #expect(h.sim.commandLog().filter { $0.cmd == 1 && Int($0.slot) == slot }.count == 1)
    }

    @Test func chargingToFull() async throws {
        let h = try Harness(slots: 4, fill: .empty)
        defer { h.stop() }
        try h.sim.insertBattery(slot: 2, id: "B45-100200", family: 2, soc: 40, soh: 95)
        await h.cycle()
        h.sim.tick(seconds: 60)
        await h.cycle()
        #expect(h.snapshot.slot(2)?.charging == true)
        var charged: [StationChange] = []
        for _ in 0 ..< 200 where charged.isEmpty {
            h.sim.tick(seconds: 120)
            charged = await h.cycle().changes.filter { if case .batteryCharged = $0 { true } else { false } }
        }
        guard case let .batteryCharged(2, bms, minutes)? = charged.first else { Issue.record("never charged"); return }
        #expect(bms.socPercent >= 99.9)
        #expect(h.snapshot.slot(2)?.chargeComplete == true)
        #expect(minutes != nil)
        let inv = await h.acquisition.inventory
        #expect(inv?.ready == 1)
    }

    @Test func everyFaultKindIsSeen() async throws {
        let h = try Harness(slots: 8, fill: .full)
        defer { h.stop() }
        await h.cycle()

        try h.sim.inject(.lockJam(slot: 1))
        #expect(try await h.acquisition.execute(.unlock, slot: 1) == .lockJammed)
        #expect(await h.cycle().changes.contains(.slotFault(slot: 1, fault: .lockFault)))

        try h.sim.inject(.bmsLinkLost(slot: 2))
        let lost = await h.cycle().changes
        #expect(lost.contains(.slotFault(slot: 2, fault: .bmsLinkLost)))
        #expect(h.snapshot.slot(2)?.bms == nil)

        try h.sim.inject(.chargerFault(slot: 3))
        #expect(await h.cycle().changes.contains(.slotFault(slot: 3, fault: .chargerFault)))

        try h.sim.inject(.doorSensorFault(slot: 4))
        #expect(await h.cycle().changes.contains(.slotFault(slot: 4, fault: .doorSensorFault)))

        try h.sim.inject(.batteryFlags(slot: 5, protection: 0x40, warning: 0x80))
        #expect(await h.cycle().changes.isEmpty)   // BMS flags are not state bits: the summary does not show them …
        await h.acquisition.requestRefresh(slots: [5])
        let flags = await h.cycle().changes        // … the slot refresh does
        #expect(flags.contains { if case .batteryAlarm(5, _, .shortCircuit, .cellImbalance) = $0 { true } else { false } })
        #expect(flags.contains { if case .batteryQuarantined(5, _, [.protectionFault]) = $0 { true } else { false } })

        try h.sim.inject(.slotOverTemperature(slot: 6))
        #expect(await h.cycle().changes.contains(.slotFault(slot: 6, fault: .overTemperature)))

        try h.sim.inject(.cabinetOverTemperature)
        let hot = await h.cycle().changes
        #expect(hot.contains { if case .cabinetAlarm(let raised, _, _) = $0 { raised.contains(.overTemperature) } else { false } })

        h.sim.setFlags(tamper: true, emergencyStop: true)
        let alarm = await h.cycle().changes
        #expect(alarm.contains { if case .cabinetAlarm(let raised, _, _) = $0 { raised == [.tamper, .emergencyStop] } else { false } })

        h.sim.clearFaults()
        let recovered = await h.cycle().changes
        #expect(recovered.contains(.slotRecovered(slot: 2, fault: .bmsLinkLost)))
        #expect(h.snapshot.slot(2)?.bms != nil)
    }

    @Test func transportFaultsMakeTheCabinetStaleAfterTwoCycles() async throws {
        let h = try Harness(slots: 4)
        defer { h.stop() }
        #expect(await h.cycle().ok)
        try h.sim.inject(.exceptionReplies(code: 4, count: 1))
        #expect(await h.cycle().ok == false)
        #expect(!h.snapshot.cabinetStale)          // one failed cycle: not yet unknown
        try h.sim.inject(.dropResponses(count: 1))
        let second = await h.cycle()
        #expect(second.ok == false)
        #expect(h.snapshot.cabinetStale)            // two: unknown, every slot with it
        #expect(h.snapshot.slots.allSatisfy { $0.stale })
        #expect(second.changes == [.cabinetStale(reason: "cabinet not answering")])
        #expect(await h.acquisition.inventory?.ready == 0)
        try h.sim.inject(.garbage(count: 1))
        #expect(await h.cycle().ok == false)
        try h.sim.inject(.responseDelay(milliseconds: 600))   // beyond the 0.3 s response timeout
        #expect(await h.cycle().ok == false)
        h.sim.clearFaults()
        let back = await h.cycle()
        #expect(back.ok)
        #expect(!h.snapshot.cabinetStale)
        #expect(back.changes.contains { if case .cabinetOnline = $0 { true } else { false } })
        #expect(h.acquisition.statistics.failedCycles == 4)
    }

    @Test func deadSlotGoesStaleAloneAndNeighboursStayFresh() async throws {
        let h = try Harness(slots: 6, fill: .full)
        defer { h.stop() }
        await h.cycle()
        try h.sim.inject(.deadSlot(slot: 2))
        try h.sim.openDoor(slot: 2, force: true)      // the summary changes → its block is read → fails
        try h.sim.openDoor(slot: 1, force: true)
        let c1 = await h.cycle()
        #expect(c1.ok)
        #expect(h.snapshot.slot(2)?.stale == false)   // one failure: not yet
        #expect(c1.changes.contains(.doorOpened(slot: 1, wasUnlocked: false)))   // neighbour read alone
        let c2 = await h.cycle()
        #expect(c2.changes.contains(.slotStale(slot: 2)))
        #expect(h.snapshot.slot(2)?.stale == true)
        #expect(h.snapshot.slot(1)?.stale == false && h.snapshot.slot(3)?.stale == false)
        #expect(await h.acquisition.isReady(slot: 2) == false)
        h.sim.clearFaults()
        let c3 = await h.cycle()
        #expect(c3.changes.contains(.slotFresh(slot: 2)))
        #expect(c3.changes.contains(.doorOpened(slot: 2, wasUnlocked: false)))
    }

    @Test func cabinetRebootIsDetectedAndResynchronised() async throws {
        let h = try Harness(slots: 4)
        defer { h.stop() }
        h.sim.tick(seconds: 500)
        await h.cycle()
        let uptime = h.snapshot.cabinet!.uptimeSeconds
        #expect(uptime >= 500)
        h.sim.reboot()          // also drops the TCP connection, as a real controller reboot does
        h.sim.tick(seconds: 1)
        var out: [StationChange] = []
        for _ in 0 ..< 3 where h.acquisition.statistics.reboots == 0 { out += await h.cycle().changes }
        #expect(out.contains { if case let .cabinetRebooted(old, new) = $0 { old == uptime && new < 10 } else { false } },
                "\(out) \(h.acquisition.statistics)")
        #expect(h.acquisition.statistics.reboots == 1)
        let requestsBefore = h.acquisition.statistics.requests
        await h.cycle()   // resync: every slot block again (2 requests for 4 slots) and the clock set again
        #expect(h.acquisition.statistics.requests - requestsBefore >= 2 + 2 + 1)
        let clock = h.sim.snapshot().clock
        #expect(abs(Int(clock) - Int(Date().timeIntervalSince1970)) < 120)
    }

    @Test func watchdogKeepsTheCabinetOutOfSafeMode() async throws {
        let h = try Harness(slots: 2) { $0.watchdogInterval = 0.2 }
        defer { h.stop() }
        try h.sim.setWatchdogTimeout(2)
        for _ in 0 ..< 10 {
            await h.cycle()
            h.sim.tick(seconds: 0.5)
            try await Task.sleep(for: .milliseconds(210))
        }
        #expect(h.sim.snapshot().safeMode == false)
        h.sim.tick(seconds: 3)                     // the gateway stops writing: safe mode
        let out = await h.cycle().changes
        #expect(out.contains(.safeModeChanged(active: true)))
        try await Task.sleep(for: .milliseconds(250))
        var after = await h.cycle().changes         // the next watchdog write ends it …
        h.sim.tick(seconds: 0.1)
        try await Task.sleep(for: .milliseconds(250))
        after += await h.cycle().changes            // … and a following read shows it
        #expect(after.contains(.safeModeChanged(active: false)))
    }

    @Test func cellDetailOnDemand() async throws {
        let h = try Harness(slots: 4, fill: .full)
        defer { h.stop() }
        await h.cycle()
        let cells = try await h.acquisition.readCells(slot: 1)
        let truth = try #require(h.sim.snapshot().slots[0].battery)
        #expect(cells.cellVoltages.map { Int(($0 * 1000).rounded()) } == truth.cellVoltagesMv)
        #expect(!cells.probeTemperatures.isEmpty)
        await #expect(throws: ModbusError.self) { try await h.acquisition.readCells(slot: 9) }
    }
}
