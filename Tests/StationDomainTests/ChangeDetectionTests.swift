import Testing
@testable import StationDomain

@Suite struct ChangeDetectionTests {
    let empty = Fixture.slot(state: 0b0100_0110, doorOpens: 5, inserts: 3)

    func run(_ frames: [[SlotStatus]], policy: BatteryPolicy = BatteryPolicy()) -> [[StationChange]] {
        var t = StationTracker(policy: policy)
        return frames.enumerated().map { t.apply(Fixture.snapshot($1), at: Int64($0) * 1000) }
    }

    @Test func firstSightReportsCabinetAndBatteries() {
        let out = run([[Fixture.status(1, Fixture.slot()), Fixture.status(2, empty)]])
        #expect(out[0].first == .cabinetOnline(serial: "CAB-TG-0007", firmware: "1.4.2", slotCount: 2))
        #expect(out[0].contains { if case .batteryInserted(1, let b) = $0 { b?.batteryID == "B45-000311" } else { false } })
        #expect(!out[0].contains { $0.slot == 2 })
    }

    @Test func doorOpenedAndClosedBetweenPollsIsSeen() {
        let a = Fixture.status(1, Fixture.slot(doorOpens: 5))
        let b = Fixture.status(1, Fixture.slot(doorOpens: 6))    // same state bits, counter moved
        let out = run([[a], [b]])
        #expect(out[1] == [.doorOpened(slot: 1, wasUnlocked: false), .doorClosed(slot: 1, authorised: false)])
    }

    @Test func swapReturnIsOrderedOpenInsertClose() {
        let before = Fixture.status(3, Fixture.slot(state: 0b0100_0010, doorOpens: 1, inserts: 0))   // unlocked, empty
        let after = Fixture.status(3, Fixture.slot(id: "B45-000123", soc: 95, doorOpens: 2, inserts: 1))
        let out = run([[before], [after]])[1]
        #expect(out.count == 3)
        #expect(out[0] == .doorOpened(slot: 3, wasUnlocked: true))
        if case .batteryInserted(3, let b) = out[1] { #expect(b?.batteryID == "B45-000123") } else { Issue.record("\(out[1])") }
        #expect(out[2] == .doorClosed(slot: 3, authorised: true))
    }

    @Test func removalAndDoorLeftOpen() {
        let before = Fixture.status(2, Fixture.slot(doorOpens: 9))
        let after = Fixture.status(2, Fixture.slot(state: 0b0100_0000, doorOpens: 10))   // empty, door open
        let out = run([[before], [after]])[1]
        #expect(out.count == 2)
        #expect(out[0] == .doorOpened(slot: 2, wasUnlocked: false))
        if case .batteryRemoved(2, let b) = out[1] { #expect(b?.batteryID == "B45-000311") } else { Issue.record("\(out[1])") }
    }

    @Test func batteryExchangedBetweenPolls() {
        let a = Fixture.status(1, Fixture.slot(id: "B45-1", doorOpens: 1, inserts: 1))
        let b = Fixture.status(1, Fixture.slot(id: "B45-2", doorOpens: 2, inserts: 2))
        let out = run([[a], [b]])[1]
        #expect(out.map(\.slot) == [1, 1, 1, 1])
        #expect(out.first == .doorOpened(slot: 1, wasUnlocked: false))
        #expect(out.last == .doorClosed(slot: 1, authorised: false))
        #expect(out.contains { if case .batteryRemoved(_, let x) = $0 { x?.batteryID == "B45-1" } else { false } })
        #expect(out.contains { if case .batteryInserted(_, let x) = $0 { x?.batteryID == "B45-2" } else { false } })
    }

    @Test func countersWrapAround() {
        let a = Fixture.status(1, Fixture.slot(doorOpens: 65535))
        let b = Fixture.status(1, Fixture.slot(doorOpens: 0))
        #expect(run([[a], [b]])[1] == [.doorOpened(slot: 1, wasUnlocked: false), .doorClosed(slot: 1, authorised: false)])
    }

    @Test func rebootDoesNotInventDoorCycles() {
        var t = StationTracker()
        _ = t.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(doorOpens: 500))], uptime: 9000), at: 0)
        let out = t.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(doorOpens: 0))], uptime: 3), at: 1000)
        #expect(out == [.cabinetRebooted(oldUptime: 9000, newUptime: 3)])
    }

    @Test func faultRaisedAndRecovered() {
        let ok = Fixture.status(1, Fixture.slot())
        let bad = Fixture.status(1, Fixture.slot(state: Fixture.present | 0x20, fault: 1))
        let out = run([[ok], [bad], [ok]])
        #expect(out[1] == [.slotFault(slot: 1, fault: .lockFault)])
        #expect(out[2] == [.slotRecovered(slot: 1, fault: .lockFault)])
    }

    @Test func chargedOnceWithMinutes() {
        let charging = Fixture.status(1, Fixture.slot(state: Fixture.present | 0x08, soc: 500))
        let done = Fixture.status(1, Fixture.slot(state: Fixture.present | 0x10, soc: 1000))
        var t = StationTracker()
        _ = t.apply(Fixture.snapshot([charging]), at: 0)
        let out = t.apply(Fixture.snapshot([done]), at: 90 * 60_000)
        guard case let .batteryCharged(1, bms, minutes)? = out.first else { Issue.record("\(out)"); return }
        #expect(bms.socPercent == 100)
        #expect(minutes == 90)
        #expect(t.apply(Fixture.snapshot([done]), at: 91 * 60_000).isEmpty)
    }

    @Test func protectionBitsRaiseAlarmAndQuarantine() {
        let ok = Fixture.status(1, Fixture.slot())
        let tripped = Fixture.status(1, Fixture.slot(protection: 0x10, warning: 0x01))
        let out = run([[ok], [tripped], [ok]])
        #expect(out[1].contains(.batteryAlarm(slot: 1, batteryID: "B45-000311", protectionRaised: .overTemperature,
                                              warningRaised: .cellOverVoltage)))
        #expect(out[1].contains(.batteryQuarantined(slot: 1, batteryID: "B45-000311", reasons: [.protectionFault])))
        #expect(out[2] == [.batteryReleased(slot: 1, batteryID: "B45-000311", reasons: [.protectionFault])])
    }

    @Test func quarantineForSoHFamilyAndHeatWithHysteresis() {
        var t = StationTracker()
        let weak = t.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(soh: 650, family: 0))]), at: 0)
        #expect(weak.contains(.batteryQuarantined(slot: 1, batteryID: "B45-000311", reasons: [.sohBelowThreshold, .unknownFamily])))
        #expect(t.quarantinedSlots == [1])

        var h = StationTracker()
        _ = h.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(tMax: 300))]), at: 0)
        #expect(h.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(tMax: 650))]), at: 1)
            .contains(.batteryQuarantined(slot: 1, batteryID: "B45-000311", reasons: [.overTemperature])))
        #expect(h.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(tMax: 550))]), at: 2).isEmpty)   // still above release
        #expect(h.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(tMax: 450))]), at: 3)
            == [.batteryReleased(slot: 1, batteryID: "B45-000311", reasons: [.overTemperature])])
    }

    @Test func cabinetAlarmsRiseAndFall() {
        var t = StationTracker()
        _ = t.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot())], flags: 1), at: 0)
        #expect(t.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot())], flags: 0b0101), at: 1)
            == [.cabinetAlarm(raised: .tamper, cleared: [], flags: [.mainsOK, .tamper])])
        #expect(t.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot())], flags: 1), at: 2)
            == [.cabinetAlarm(raised: [], cleared: .tamper, flags: .mainsOK)])
    }

    @Test func staleSlotsAndCabinetAreReportedOnceAndNeverReady() {
        var t = StationTracker()
        let slot = Fixture.status(1, Fixture.slot(soc: 1000))
        _ = t.apply(Fixture.snapshot([slot]), at: 0)
        #expect(t.isReady(slot))
        var stale = slot; stale.stale = true
        #expect(t.apply(Fixture.snapshot([stale]), at: 1) == [.slotStale(slot: 1)])
        #expect(t.apply(Fixture.snapshot([stale]), at: 2).isEmpty)
        #expect(!t.isReady(stale))
        #expect(t.inventory()?.unknown == 1 && t.inventory()?.ready == 0)
        #expect(t.apply(Fixture.snapshot([slot]), at: 3) == [.slotFresh(slot: 1)])
        var down = Fixture.snapshot([slot]); down.cabinetStale = true
        #expect(t.apply(down, at: 4) == [.cabinetStale(reason: "cabinet not answering")])
        #expect(!t.isReady(slot))
    }

    @Test func inventoryClassifiesEachSlotOnce() {
        let policy = BatteryPolicy()
        let slots = [
            Fixture.status(1, Fixture.slot(soc: 990, family: 2)),                       // ready 45AH
            Fixture.status(2, Fixture.slot(soc: 990, family: 3)),                       // ready 100AH
            Fixture.status(3, Fixture.slot(state: Fixture.present | 0x08, soc: 400)),   // charging
            Fixture.status(4, Fixture.slot(state: 0b0100_0110)),                        // empty
            Fixture.status(5, Fixture.slot(state: Fixture.present | 0x20, fault: 3)),   // faulty
            Fixture.status(6, Fixture.slot(state: Fixture.present | 0x80)),             // out of service
            Fixture.status(7, Fixture.slot(soc: 990, tMax: 480)),                       // too warm to hand out
        ]
        let inv = Inventory.of(Fixture.snapshot(slots), quarantined: [], policy: policy)
        #expect(inv.ready == 2 && inv.charging == 2 && inv.empty == 1 && inv.faulty == 1 && inv.outOfService == 1)
        #expect(inv.readyByFamily == ["MOBBAT-45AH": 1, "MOBBAT-100AH": 1])
    }
}
