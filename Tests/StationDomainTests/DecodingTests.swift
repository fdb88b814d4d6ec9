import Testing
@testable import StationDomain

@Suite struct DecodingTests {
    @Test func deviceBlockEveryField() throws {
        let info = try CabinetDecoder.device(Registers(Fixture.device(slotCount: 16, uptime: 0x0001_86A0, flags: 0b10101, temp: -123)))
        #expect(info.mapVersion == 1)
        #expect(info.firmwareVersion == "1.4.2")
        #expect(info.slotCount == 16)
        #expect(info.serial == "CAB-TG-0007")
        #expect(info.uptimeSeconds == 100_000)          // u32, high word first
        #expect(info.heartbeat == 77)
        #expect(info.flags == [.mainsOK, .tamper, .emergencyStop])
        #expect(abs(info.temperature - -12.3) < 1e-9)    // s16 × 0.1
        #expect(info.lastCommandSeq == 41)
        #expect(info.watchdogSeconds == 3)
        #expect(info.safeMode == false)
    }

    @Test func deviceBlockRejectsForeignDevices() {
        #expect(throws: DecodeError.badMagic(0x1234)) { try CabinetDecoder.device(Registers(Fixture.device(magic: 0x1234))) }
        #expect(throws: DecodeError.unsupportedMapVersion(2)) { try CabinetDecoder.device(Registers(Fixture.device(version: 2))) }
        #expect(throws: DecodeError.slotCountOutOfRange(49)) { try CabinetDecoder.device(Registers(Fixture.device(slotCount: 49))) }
        #expect(throws: DecodeError.slotCountOutOfRange(0)) { try CabinetDecoder.device(Registers(Fixture.device(slotCount: 0))) }
        #expect(throws: DecodeError.wrongLength(block: "device block", expected: 32, got: 10)) {
            try CabinetDecoder.device(Registers(Array(repeating: 0, count: 10)))
        }
    }

    @Test func slotBlockEveryFieldWithScaleAndSign() throws {
        let s = Fixture.status(4, Fixture.slot(tMin: -55))
        #expect(s.number == 4)
        #expect(s.state == [.batteryPresent, .doorClosed, .locked, .bmsLinkOK])
        let b = try #require(s.bms)
        #expect(b.batteryID == "B45-000311")
        #expect(abs(b.socPercent - 98.7) < 1e-9)
        #expect(abs(b.sohPercent - 91.2) < 1e-9)
        #expect(abs(b.packVoltage - 54.12) < 1e-9)
        #expect(abs(b.packCurrent - -1.5) < 1e-9)       // s16 × 10 mA, negative = discharging
        #expect(abs(b.tempMax - 31.2) < 1e-9)
        #expect(abs(b.tempMin - -5.5) < 1e-9)
        #expect(b.cycleCount == 70_123)                 // u32 over two registers
        #expect(abs(b.fullCapacityAh - 44.10) < 1e-9)
        #expect(abs(b.remainingCapacityAh - 43.52) < 1e-9)
        #expect(abs(b.cellVMax - 4.165) < 1e-9)
        #expect(abs(b.cellVMin - 4.150) < 1e-9)
        #expect(b.family == .mobbat45)
        #expect(s.doorOpenCount == 5)
        #expect(s.insertCount == 3)
    }

    @Test func flagsDecodeBitByBit() throws {
        for bit in 0 ..< 8 {
            let s = Fixture.status(1, Fixture.slot(protection: 1 << bit, warning: 1 << (7 - bit)))
            let b = try #require(s.bms)
            #expect(b.protection.rawValue == 1 << bit)
            #expect(b.warning.rawValue == 1 << (7 - bit))
            #expect(b.protection.names.count == 1)
        }
    }

    @Test func bmsFieldsIgnoredWithoutBatteryOrLink() {
        let noLink = Fixture.status(1, Fixture.slot(state: 0b0000_0111))
        #expect(noLink.batteryPresent && noLink.bms == nil && noLink.bmsError == nil)
        let empty = Fixture.status(1, Fixture.slot(state: 0b0100_0110))
        #expect(!empty.batteryPresent && empty.bms == nil)
    }

    @Test(arguments: [
        (Fixture.slot(soc: 1001), "soc 1001"),
        (Fixture.slot(soh: 4000), "soh 4000"),
        (Fixture.slot(tMax: 2000), "temp_max 2000"),
        (Fixture.slot(tMin: -999), "temp_min -999"),
        (Fixture.slot(full: 100, remaining: 200), "remaining_capacity"),
        (Fixture.slot(vMax: 9000), "cell voltage"),
        (Fixture.slot(id: ""), "battery_id"),
    ])
    func outOfRangeValuesDropTheReading(regs: [UInt16], reason: String) {
        let s = Fixture.status(2, regs)
        #expect(s.bms == nil)
        #expect(s.bmsError?.contains(reason) == true, "\(s.bmsError ?? "nil")")
    }

    @Test func asciiRejectsGarbageAndAcceptsPadding() {
        #expect(Registers([0x4142, 0x4300, 0, 0]).ascii(0, registers: 4) == "ABC")
        #expect(Registers([0x4142, 0x0043, 0, 0]).ascii(0, registers: 4) == nil)     // text after NUL
        #expect(Registers([0x41FF, 0, 0, 0]).ascii(0, registers: 4) == nil)          // non-printable
        #expect(Registers(Registers.encodeASCII("B45-000123", registers: 8)).ascii(0, registers: 8) == "B45-000123")
        #expect(Registers(Registers.encodeASCII("0123456789ABCDEFXYZ", registers: 8)).ascii(0, registers: 8) == "0123456789ABCDEF")
    }

    @Test func unknownFamilyAndFaultCodes() {
        let s = Fixture.status(1, Fixture.slot(fault: 99, family: 7))
        #expect(s.fault.rawValue == 99 && !s.fault.isKnown)   // the controller's own code, never a stand-in
        #expect(s.bms?.family == .unknown)
        #expect(BatteryFamily(name: "MOBBAT-100AH") == .mobbat100)
        #expect(BatteryFamily.mobbat100.nominalVoltage == 60)
    }

    @Test func summaryRegisterSplitsStateAndCounter() {
        let (state, counter) = CabinetDecoder.summary(0xAB47)
        #expect(counter == 0xAB)
        #expect(state == [.batteryPresent, .doorClosed, .locked, .bmsLinkOK])
    }

    @Test func cellsAndMeter() throws {
        var regs = [UInt16](repeating: 0, count: 32)
        regs[0] = 13
        for i in 0 ..< 13 { regs[1 + i] = 4100 + UInt16(i) }
        regs[25] = 251; regs[26] = UInt16(bitPattern: -12)
        for k in 27 ... 30 { regs[k] = 0x8000 }
        let cells = try CabinetDecoder.cells(Registers(regs))
        #expect(cells.cellVoltages.count == 13)
        #expect(cells.cellVoltages[12] == 4.112)
        #expect(cells.probeTemperatures == [25.1, -1.2, nil, nil, nil, nil])

        let meter = try CabinetDecoder.meter(Registers([0x0001, 0x0002, 2301, 1234, 0, 28_380, 5001]))
        #expect(abs(meter.importEnergyKWh - 655.38) < 1e-6)    // (65536 + 2) × 0.01
        #expect(abs(meter.voltage - 230.1) < 1e-9)
        #expect(abs(meter.current - 12.34) < 1e-9)
        #expect(abs(meter.activePowerW - 2838.0) < 1e-9)
        #expect(abs(meter.frequencyHz - 50.01) < 1e-9)
    }

    @Test func mapAddressesAreData() {
        #expect(CabinetMap.slotBlock(1).start == 100)
        #expect(CabinetMap.slotBlock(16).start == 100 + 15 * 32)
        #expect(CabinetMap.cellBlock(3).start == 2064)
        #expect(CabinetMap.summaryRange(slotCount: 48).end == 88)
    }
}
