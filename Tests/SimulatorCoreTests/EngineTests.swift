// The protocol engine against the register map: values, scaling, signedness, exceptions.
import Foundation
@testable import SimulatorCore
import Testing

@Suite struct DeviceBlockTests {
    @Test func deviceBlockValues() throws {
        let sim = pausedSimulator(slots: 7, serial: "OVES-CAB-0042")
        sim.tick(seconds: 70_000.4)   // uptime beyond 16 bits, heartbeat wraps
        sim.setFlags(tamper: true)
        let d = try sim.input(0, 32)
        #expect(d[0] == 0x4F56)
        #expect(d[1] == 1)
        #expect(Array(d[2...4]) == [1, 4, 2])
        #expect(d[5] == 7)
        #expect(Array(d[6...13]) == [0x4F56, 0x4553, 0x2D43, 0x4142, 0x2D30, 0x3034, 0x3200, 0x0000])  // "OVES-CAB-0042"
        #expect(RegisterCodec.string(d[6...13]) == "OVES-CAB-0042")
        #expect(Array(d[14...15]) == [1, 4464])          // 70 000 = 0x0001_1170
        #expect(d[16] == UInt16(70_000 % 65_536))        // heartbeat wrapped
        #expect(d[17] == 0b101)                          // mains ok + tamper
        #expect(d[19] == 0 && d[20] == 0)
        #expect(d[21] == 65535)                          // no watchdog write for 70 000 s: saturates
        #expect(d[22] == 0)                              // (watchdog disabled here: no safe mode)
        #expect(d[23...31].allSatisfy { $0 == 0 })
        let t = RegisterCodec.signed(d[18])
        #expect((240...270).contains(t))                 // about 25 °C in 0.1 °C
    }

    @Test func negativeCabinetTemperatureIsTwosComplement() throws {
        let sim = pausedSimulator(ambient: -15)
        #expect(try sim.input(18)[0] == UInt16(bitPattern: -150))
    }

    @Test func cabinetFlagBits() throws {
        let sim = pausedSimulator()
        sim.setFlags(mainsOk: false, backupPower: true)
        #expect(try sim.input(17)[0] == 0b10)
        sim.setFlags(mainsOk: true, backupPower: false, tamper: true, overTemperature: true, emergencyStop: true)
        #expect(try sim.input(17)[0] == 0b11101)
        sim.setFlags(tamper: false, overTemperature: false, emergencyStop: false)
        #expect(try sim.input(17)[0] == 0b1)
    }
}

@Suite struct SlotBlockTests {
    @Test func everyFieldWithScalingSignednessAndASCII() throws {
        let sim = pausedSimulator(slots: 4)
        try sim.insertBattery(slot: 3, id: "AB-1234567890XYZ", family: 2, soc: 42.5, soh: 97.3,
                              cycleCount: 70_000, temperature: -12.3)
        let b = try sim.slotBlock(3)
        let bits = SlotStateBits(rawValue: UInt8(b[0]))
        #expect(bits == [.batteryPresent, .doorClosed, .locked, .bmsLinkOK])
        #expect(b[1] == 0)
        #expect(Array(b[2...9]) == [0x4142, 0x2D31, 0x3233, 0x3435, 0x3637, 0x3839, 0x3058, 0x595A])
        #expect(b[10] == 425)                       // 0.1 %
        #expect(b[11] == 973)
        // 13 cells × OCV(42.5 %) = 13 × 3.7225 V = 48.3925 V → 4839 × 10 mV
        #expect(b[12] == 4839)
        #expect(b[13] == 0)                         // not charging (time has not moved)
        // probes: the first reads core + 0.4 °C, the others below → max −11.9 °C
        #expect(RegisterCodec.signed(b[14]) == -119)
        #expect(b[14] == 0xFF89)
        #expect(RegisterCodec.signed(b[15]) <= -119 && RegisterCodec.signed(b[15]) >= -129)
        #expect(Array(b[16...17]) == [1, 4464])     // 70 000 cycles, u32 high word first
        #expect(b[18] == 4379)                      // 45 Ah × 97.3 % = 43.785 Ah → 10 mAh
        #expect(b[19] == 1861)                      // × 42.5 % = 18.608 Ah
        #expect(b[20] == 0 && b[21] == 0)
        let cells = try sim.cellBlock(3)
        let volts = Array(cells[1...13])
        #expect(b[22] == volts.max()! && b[23] == volts.min()!)
        #expect(b[24] == 2)
        #expect(b[25] == 0 && b[26] == 1)           // no door opening yet, one insertion
        #expect(b[27...31].allSatisfy { $0 == 0 })
    }

    @Test func shortIdIsNULPadded() throws {
        let sim = pausedSimulator()
        try sim.insertBattery(slot: 1, id: "ABC", family: 1, soc: 50, soh: 100)
        #expect(Array(try sim.slotBlock(1)[2...9]) == [0x4142, 0x4300, 0, 0, 0, 0, 0, 0])
    }

    @Test func cellDetailIsConsistentWithThePack() throws {
        let sim = pausedSimulator()
        try sim.insertBattery(slot: 1, id: "F1", family: 1, soc: 55, soh: 100, temperature: 30)
        try sim.insertBattery(slot: 2, id: "F3", family: 3, soc: 80, soh: 100, temperature: 30)
        for (slot, cellCount, probes) in [(1, 13, 4), (2, 16, 6)] {
            let block = try sim.slotBlock(slot)
            let c = try sim.cellBlock(slot)
            #expect(Int(c[0]) == cellCount)
            let volts = c[1...cellCount].map(Int.init)
            #expect(c[(cellCount + 1)...24].allSatisfy { $0 == 0 })
            // the cells add up to the pack voltage (10 mV) within rounding, with a small imbalance
            #expect(abs(volts.reduce(0, +) - Int(block[12]) * 10) <= cellCount)
            #expect(volts.max()! - volts.min()! <= 15 && volts.max()! != volts.min()!)
            let temps = c[25..<(25 + probes)].map { Int(RegisterCodec.signed($0)) }
            #expect(c[(25 + probes)..<31].allSatisfy { $0 == 0x8000 })   // map 1.1: a probe the pack lacks
            #expect(c[31] == 0)
            #expect(Int(RegisterCodec.signed(block[14])) == temps.max()!)
            #expect(Int(RegisterCodec.signed(block[15])) == temps.min()!)
            #expect(temps.max()! == 304)
        }
        // 16 × OCV(80 %) = 16 × 3.99 V = 63.84 V
        #expect(try sim.slotBlock(2)[12] == 6384)
    }

    /// No pack (or no BMS link): cell registers 0, the six probes absent (0x8000, map 1.1).
    static func cellsEmpty(_ c: [UInt16]) -> Bool {
        c[0...24].allSatisfy { $0 == 0 } && c[25...30].allSatisfy { $0 == 0x8000 } && c[31] == 0
    }

    @Test func bmsFieldsAreZeroWithoutBatteryOrBMSLink() throws {
        let sim = pausedSimulator()
        let empty = try sim.slotBlock(1)
        #expect(empty[0] == UInt16(SlotStateBits([.doorClosed, .locked]).rawValue))
        #expect(empty[1...31].allSatisfy { $0 == 0 })
        #expect(try Self.cellsEmpty(sim.cellBlock(1)))

        try sim.insertBattery(slot: 1, id: "LINKLOST", family: 3, soc: 60, soh: 90)
        try sim.inject(.bmsLinkLost(slot: 1))
        let b = try sim.slotBlock(1)
        let bits = SlotStateBits(rawValue: UInt8(b[0]))
        #expect(bits.contains(.batteryPresent) && !bits.contains(.bmsLinkOK) && bits.contains(.slotFault))
        #expect(b[1] == 5)
        #expect(b[2...24].allSatisfy { $0 == 0 })
        #expect(b[26] == 1)                          // counters are the controller's, still there
        #expect(try Self.cellsEmpty(sim.cellBlock(1)))
    }

    @Test func summaryRegisterMirrorsStateAndCountsChanges() throws {
        let sim = pausedSimulator()
        #expect(try sim.summary(1) == UInt16(SlotStateBits([.doorClosed, .locked]).rawValue))
        try sim.openDoor(slot: 1, force: true)       // change 1: door bit
        try sim.closeDoor(slot: 1)                   // change 2: door bit
        let s = try sim.summary(1)
        #expect(s >> 8 == 2)
        let stateRegister = try sim.slotBlock(1)[0]
        #expect(UInt16(s & 0xFF) == stateRegister)
        // another slot is untouched
        #expect(try sim.summary(2) >> 8 == 0)
        // 254 more changes wrap the counter: 256 → 0, then 4 more → 4
        for _ in 0..<129 {
            try sim.openDoor(slot: 1, force: true)
            try sim.closeDoor(slot: 1)
        }
        #expect(try sim.summary(1) >> 8 == 4)        // (2 + 258) mod 256
        #expect(sim.slot(1).changeCounter == 4)
    }

    @Test func doorOpenAndInsertCountsWrap() throws {
        let sim = pausedSimulator(slots: 1)
        for _ in 0..<(65_536 + 3) {
            try sim.openDoor(slot: 1, force: true)
            try sim.closeDoor(slot: 1)
        }
        for _ in 0..<(65_536 + 2) {
            try sim.insertBattery(slot: 1, id: "W", family: 1, soc: 50, soh: 100)
            try sim.removeBattery(slot: 1)
        }
        let b = try sim.slotBlock(1)
        #expect(b[25] == 3)
        #expect(b[26] == 2)
    }
}

@Suite struct ExceptionTests {
    @Test func illegalFunctionIs01() {
        let sim = pausedSimulator()
        #expect(sim.handle(unit: 1, pdu: [0x01, 0, 0, 0, 1]) == [0x81, 1])    // read coils
        #expect(sim.handle(unit: 1, pdu: [0x05, 0, 0, 0xFF, 0]) == [0x85, 1])
        #expect(sim.handle(unit: 1, pdu: [0x2B, 0x0E, 1, 0]) == [0xAB, 1])
        #expect(sim.handle(unit: 2, pdu: [0x01, 0, 0, 0, 1]) == [0x81, 1])
    }

    @Test func unmappedAddressesAre02() {
        let sim = pausedSimulator(slots: 6)
        func ex(_ start: Int, _ count: Int) -> UInt8? { sim.exception(ModbusPDU.readInput(start: start, count: count)) }
        #expect(ex(0, 32) == nil)
        #expect(ex(0, 33) == 2)                      // 32–39 is a gap
        #expect(ex(35, 1) == 2)
        #expect(ex(40, 6) == nil)
        #expect(ex(40, 7) == 2)                      // summary of slot 7 does not exist
        #expect(ex(46, 1) == 2)
        #expect(ex(99, 1) == 2)
        #expect(ex(100, 125) == nil)
        #expect(ex(100 + 6 * 32 - 1, 1) == nil)      // last register of slot 6
        #expect(ex(100 + 6 * 32 - 1, 2) == 2)        // runs beyond the last slot
        #expect(ex(100 + 6 * 32, 1) == 2)
        #expect(ex(2000 + 6 * 32 - 1, 1) == nil)
        #expect(ex(2000 + 6 * 32, 1) == 2)
        #expect(ex(1999, 2) == 2)
        #expect(ex(65535, 1) == 2)
        #expect(sim.exception(ModbusPDU.readHolding(start: 1000, count: 4)) == nil)
        #expect(sim.exception(ModbusPDU.readHolding(start: 1000, count: 5)) == 2)
        #expect(sim.exception(ModbusPDU.readHolding(start: 0, count: 1)) == 2)
        #expect(sim.exception(ModbusPDU.readHolding(start: 1010, count: 2)) == nil)
        #expect(sim.exception(ModbusPDU.readHolding(start: 1020, count: 1)) == nil)
        #expect(sim.exception(ModbusPDU.readHolding(start: 1019, count: 2)) == 2)
    }

    @Test func badQuantityIs03() {
        let sim = pausedSimulator(slots: 48)
        #expect(sim.exception(ModbusPDU.readInput(start: 100, count: 0)) == 3)
        #expect(sim.exception(ModbusPDU.readInput(start: 100, count: 126)) == 3)
        #expect(sim.exception(ModbusPDU.readInput(start: 100, count: 125)) == nil)
        #expect(sim.exception(ModbusPDU.readHolding(start: 1000, count: 0)) == 3)
        // FC16 with a byte count that does not match the quantity
        #expect(sim.exception([0x10, 0x03, 0xE8, 0, 4, 6, 0, 1, 0, 1, 0, 1]) == 3)
        // a truncated read request
        #expect(sim.exception([0x04, 0, 0, 0]) == 3)
    }

    @Test func partialWritesOfTheCommandBlockAndClockAre02() {
        let sim = pausedSimulator()
        #expect(sim.exception(ModbusPDU.writeSingle(address: 1000, value: 1)) == 2)
        #expect(sim.exception(ModbusPDU.writeMultiple(start: 1000, values: [1, 1, 5])) == 2)
        #expect(sim.exception(ModbusPDU.writeMultiple(start: 1001, values: [1, 5, 0])) == 2)
        #expect(sim.exception(ModbusPDU.writeMultiple(start: 1000, values: [1, 1, 5, 0, 0])) == 2)
        #expect(sim.exception(ModbusPDU.writeSingle(address: 1010, value: 1)) == 2)
        #expect(sim.exception(ModbusPDU.writeMultiple(start: 1011, values: [1])) == 2)
        #expect(sim.exception(ModbusPDU.writeSingle(address: 0, value: 1)) == 2)
        #expect(sim.commandLog().isEmpty)
        #expect(sim.exception(ModbusPDU.writeMultiple(start: 1000, values: [1, 1, 5, 0])) == nil)
        #expect(sim.commandLog().count == 1)
    }

    @Test func commandWriteWhileExecutingIs06() throws {
        let sim = pausedSimulator(commandTime: 0.15)
        #expect(sim.command(1, slot: 1, seq: 1) == ModbusPDU.writeMultiple(start: 1000, values: [1, 1, 1, 0]).prefix(5).map { $0 })
        #expect(sim.command(2, slot: 2, seq: 2) == [0x90, 6])       // busy: a new seq while seq 1 executes
        #expect(sim.command(1, slot: 1, seq: 1) == [0x10, 0x03, 0xE8, 0, 4])   // the same seq is a harmless retry
        #expect(try sim.holding(1000, 4) == [1, 1, 1, 0])         // the busy write stored nothing
        sim.tick(seconds: 0.2)
        #expect(try sim.lastCommand() == (1, 0))
        #expect(sim.command(2, slot: 2, seq: 2, tickAfter: 0.2) == [0x10, 0x03, 0xE8, 0, 4])
        #expect(try sim.lastCommand() == (2, 0))
        #expect(sim.commandLog().map(\.seq) == [1, 2])
    }
}

@Suite struct UnitTests {
    @Test func meterOnUnit2() throws {
        let sim = pausedSimulator(fill: .mixed)
        sim.tick(seconds: 3600)
        let m = try sim.input(0, 7, unit: 2)
        let snap = sim.snapshot().meter
        #expect(RegisterCodec.u32(high: m[0], low: m[1]) == UInt32((snap.importEnergyKwh * 100).rounded(.down)))
        #expect(snap.importEnergyKwh > 1)            // an hour of several chargers
        #expect((2280...2320).contains(m[2]))
        #expect(m[3] == RegisterCodec.u16(snap.current, scale: 100))
        let power = RegisterCodec.u32(high: m[4], low: m[5])
        #expect(power == UInt32((snap.activePower * 10).rounded()))
        let voltAmps: Double = Double(m[2]) / 10 * Double(m[3]) / 100
        #expect(abs(voltAmps - Double(power) / 10) < 5)
        #expect((4995...5005).contains(m[6]))
        // input registers 0–6 only
        #expect(sim.exception(ModbusPDU.readInput(start: 0, count: 8), unit: 2) == 2)
        #expect(sim.exception(ModbusPDU.readInput(start: 7, count: 1), unit: 2) == 2)
        #expect(sim.exception(ModbusPDU.readHolding(start: 0, count: 1), unit: 2) == 2)
        #expect(sim.exception(ModbusPDU.writeMultiple(start: 1000, values: [1, 1, 1, 0]), unit: 2) == 2)
        #expect(sim.exception(ModbusPDU.writeSingle(address: 1020, value: 1), unit: 2) == 2)
        #expect(sim.commandLog().isEmpty)
    }

    @Test func meterEnergyIntegratesChargingPower() throws {
        let sim = pausedSimulator(slots: 2)
        sim.tick(seconds: 3600)
        let idle = sim.snapshot().meter
        #expect(abs(idle.activePower - 35) < 0.001)     // the cabinet's own draw
        #expect(abs(idle.importEnergyKwh - 0.035) < 0.0001)
        try sim.insertBattery(slot: 1, id: "E1", family: 3, soc: 10, soh: 100)
        sim.tick(seconds: 1)
        let p = sim.snapshot().meter.activePower
        // 30 A into ~58 V through a 94 % charger, plus 35 W
        #expect(p > 1800 && p < 2000)
        sim.tick(seconds: 1799)
        let e = sim.snapshot().meter.importEnergyKwh - idle.importEnergyKwh
        #expect(e > 0.9 && e < 1.0)                     // ~1.9 kW for half an hour
        // mains lost: the meter reads zero power and voltage, the energy stays
        sim.setFlags(mainsOk: false, backupPower: true)
        sim.tick(seconds: 10)
        let m = try sim.input(0, 7, unit: 2)
        #expect(m[2] == 0 && m[4] == 0 && m[5] == 0)
        #expect(RegisterCodec.u32(high: m[0], low: m[1]) > 90)
    }

    @Test func otherUnitsGetNoReply() {
        let sim = pausedSimulator()
        for unit: UInt8 in [0, 3, 4, 17, 247, 255] {
            #expect(sim.handle(unit: unit, pdu: ModbusPDU.readInput(start: 0, count: 1)) == nil)
            #expect(sim.respond(unit: unit, pdu: ModbusPDU.readInput(start: 0, count: 1), transport: .tcp) == .silent)
        }
        #expect(sim.handle(unit: 1, pdu: ModbusPDU.readInput(start: 0, count: 1)) == [0x04, 2, 0x4F, 0x56])
    }
}

/// Map 1.1: probes a pack does not have read 0x8000; a pack can be given exact probes through the control interface.
@Suite struct ProbeRegisterTests {
    @Test func controlSetsExactProbesAndTheRestReadAbsent() throws {
        let sim = pausedSimulator(slots: 2)
        try sim.insertBattery(slot: 1, id: "PROBES", family: 1, soc: 50, soh: 100)
        let reply = sim.control(line: #"{"cmd":"set_battery","slot":1,"probe_temperatures":[0.0,21.5,-3.2]}"#)
        #expect(reply.contains(#""ok":true"#), "\(reply)")
        let c = try sim.cellBlock(1)
        #expect(Array(c[25...30]) == [0, 215, UInt16(bitPattern: -32), 0x8000, 0x8000, 0x8000])
        let b = try sim.slotBlock(1)
        #expect(RegisterCodec.signed(b[14]) == 215 && RegisterCodec.signed(b[15]) == -32)
        let bad = sim.control(line: #"{"cmd":"set_battery","slot":1,"probe_temperatures":[1,2,3,4,5,6,7]}"#)
        #expect(bad.contains(#""ok":false"#))
    }
}
