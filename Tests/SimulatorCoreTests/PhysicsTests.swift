// Charging physics in simulated time: CC/CV, charge completion, cycles, voltages, temperatures.
import Foundation
@testable import SimulatorCore
import Testing

@Suite struct ChargingTests {
    @Test func ccThenCvToFullWithCycleCountAndChargeCompleteBit() throws {
        let sim = pausedSimulator(slots: 2)
        try sim.insertBattery(slot: 1, id: "CC-CV", family: 1, soc: 20, soh: 100, cycleCount: 10, temperature: 25)
        // charging starts by itself: battery inserted into an in-service slot with the door closed
        sim.tick(seconds: 1)
        var b = try sim.slotBlock(1)
        var bits = SlotStateBits(rawValue: UInt8(b[0]))
        #expect(bits.contains(.charging) && !bits.contains(.chargeComplete))
        #expect(b[13] == 1500)                                   // 15 A constant current, 10 mA units
        var lastVoltage = b[12]
        var sawTaper = false
        var previousCurrent = 1500
        var minutes = 0
        // one minute at a time until complete (bounded: the charge must end within 6 h)
        while minutes < 360 {
            sim.tick(seconds: 60)
            minutes += 1
            b = try sim.slotBlock(1)
            bits = SlotStateBits(rawValue: UInt8(b[0]))
            if bits.contains(.chargeComplete) { break }
            let soc = Double(b[10]) / 10
            let current = Int(RegisterCodec.signed(b[13]))
            #expect(current > 0)
            #expect(b[12] >= lastVoltage)                         // voltage rises while charging
            lastVoltage = b[12]
            if soc < 84 { #expect(current == 1500) }              // CC stage
            if soc > 86 {                                         // CV stage: tapering current at 13 × 4.20 V
                #expect(current < previousCurrent)
                #expect(b[12] == 5460)
                sawTaper = true
            }
            previousCurrent = current
            // remaining capacity follows SoC × full capacity (30 Ah)
            #expect(abs(Int(b[19]) - Int((3000 * soc / 100).rounded())) <= 2)
        }
        #expect(sawTaper)
        #expect(bits.contains(.chargeComplete) && !bits.contains(.charging))
        #expect(b[10] == 1000 && b[13] == 0 && b[19] == b[18])
        // 20 % → 100 % is 0.8 cycle: still 10; another full charge makes it 11 (1.8 cycles)
        #expect(Array(b[16...17]) == [0, 10])
        let timeToFull = minutes
        #expect(timeToFull > 100 && timeToFull < 200)             // ~1.6 h CC + CV tail at 0.5 C

        try sim.setBattery(slot: 1, soc: 0)
        sim.tick(seconds: 60)
        #expect(try sim.state(1).contains(.charging))             // a full battery set to 0 % charges again
        sim.tick(seconds: 6 * 3600)
        b = try sim.slotBlock(1)
        #expect(b[10] == 1000)
        #expect(Array(b[16...17]) == [0, 11])
        // at rest the pack shows its open-circuit voltage at 100 %: 13 × 4.19 V
        #expect(b[12] == 5447)
    }

    @Test func temperaturesRiseWhileChargingAndRelaxToAmbient() throws {
        let sim = pausedSimulator(slots: 1)
        try sim.insertBattery(slot: 1, id: "HOT", family: 3, soc: 5, soh: 100, temperature: 25)
        let before = RegisterCodec.signed(try sim.slotBlock(1)[14])
        sim.tick(seconds: 3600)
        let charging = RegisterCodec.signed(try sim.slotBlock(1)[14])
        #expect(charging > before + 5)                             // several degrees warmer (0.1 °C units)
        sim.tick(seconds: 12 * 3600)                              // full, then resting for hours
        let rested = RegisterCodec.signed(try sim.slotBlock(1)[14])
        #expect(!(try sim.state(1).contains(.charging)))
        #expect(rested < charging)
        let ambient = sim.snapshot().cabinetTemperature
        #expect(abs(sim.slot(1).battery!.temperature - ambient) < 0.5)
    }

    @Test func chargingNeedsDoorClosedServiceAndCharger() throws {
        let sim = pausedSimulator(slots: 2)
        try sim.openDoor(slot: 1, force: true)
        try sim.insertBattery(slot: 1, id: "DOOR", family: 2, soc: 50, soh: 100)
        sim.tick(seconds: 10)
        #expect(!sim.slot(1).charging)                            // door open: no charging
        try sim.closeDoor(slot: 1)
        sim.tick(seconds: 1)
        #expect(sim.slot(1).charging)
        #expect(sim.slot(1).battery!.packCurrent == 20)
        sim.command(5, slot: 1, seq: 1)                          // out of service stops it
        #expect(!sim.slot(1).charging)
        sim.tick(seconds: 10)
        #expect(!sim.slot(1).charging)
        sim.command(6, slot: 1, seq: 2)
        sim.tick(seconds: 1)
        #expect(sim.slot(1).charging)
        sim.setFlags(emergencyStop: true)
        #expect(!sim.slot(1).charging)
        sim.setFlags(emergencyStop: false)
        sim.setFlags(mainsOk: false, backupPower: true)
        sim.tick(seconds: 1)
        #expect(!sim.slot(1).charging)                            // no mains, no charging
        #expect(sim.snapshot().cabinetFlags == 0b10)
    }

    @Test func cellVoltagesFollowThePackUnderCharge() throws {
        let sim = pausedSimulator(slots: 1)
        try sim.insertBattery(slot: 1, id: "CELLS", family: 3, soc: 50, soh: 100)
        sim.tick(seconds: 5)
        let block = try sim.slotBlock(1)
        let cells = try sim.cellBlock(1)
        #expect(cells[0] == 16)
        let sum = cells[1...16].reduce(0) { $0 + Int($1) }
        #expect(abs(sum - Int(block[12]) * 10) <= 16)
        // under 30 A the terminal voltage sits above the OCV (16 × 3.76 V = 60.16 V at 50 %)
        #expect(block[12] > 6016)
    }
}
