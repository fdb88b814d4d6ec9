@testable import StationDomain

/// Builds register blocks as the map lays them out, independently of the decoder under test.
enum Fixture {
    static func device(slotCount: UInt16 = 16, uptime: UInt32 = 1000, flags: UInt16 = 1, temp: Int16 = 253,
                       magic: UInt16 = 0x4F56, version: UInt16 = 1, safeMode: UInt16 = 0) -> [UInt16] {
        var r = [UInt16](repeating: 0, count: 32)
        r[0] = magic; r[1] = version; r[2] = 1; r[3] = 4; r[4] = 2; r[5] = slotCount
        let serial = Array("CAB-TG-0007".utf8) + [UInt8](repeating: 0, count: 5)
        for i in 0 ..< 8 { r[6 + i] = UInt16(serial[2 * i]) << 8 | UInt16(serial[2 * i + 1]) }
        r[14] = UInt16(uptime >> 16); r[15] = UInt16(uptime & 0xFFFF)
        r[16] = 77; r[17] = flags; r[18] = UInt16(bitPattern: temp); r[19] = 41; r[20] = 0; r[21] = 3; r[22] = safeMode
        return r
    }

    static let present: UInt16 = 0b0100_0111   // battery, door closed, locked, bms ok

    static func slot(state: UInt16 = present, fault: UInt16 = 0, id: String = "B45-000311", soc: UInt16 = 987,
                     soh: UInt16 = 912, voltage: UInt16 = 5412, current: Int16 = -150, tMax: Int16 = 312,
                     tMin: Int16 = 255, cycles: UInt32 = 70_123, full: UInt16 = 4410, remaining: UInt16 = 4352,
                     protection: UInt16 = 0, warning: UInt16 = 0, vMax: UInt16 = 4165, vMin: UInt16 = 4150,
                     family: UInt16 = 2, doorOpens: UInt16 = 5, inserts: UInt16 = 3) -> [UInt16] {
        var r = [UInt16](repeating: 0, count: 32)
        r[0] = state; r[1] = fault
        let bytes = Array(id.utf8) + [UInt8](repeating: 0, count: 16 - id.utf8.count)
        for i in 0 ..< 8 { r[2 + i] = UInt16(bytes[2 * i]) << 8 | UInt16(bytes[2 * i + 1]) }
        r[10] = soc; r[11] = soh; r[12] = voltage; r[13] = UInt16(bitPattern: current)
        r[14] = UInt16(bitPattern: tMax); r[15] = UInt16(bitPattern: tMin)
        r[16] = UInt16(cycles >> 16); r[17] = UInt16(cycles & 0xFFFF)
        r[18] = full; r[19] = remaining; r[20] = protection; r[21] = warning; r[22] = vMax; r[23] = vMin
        r[24] = family; r[25] = doorOpens; r[26] = inserts
        return r
    }

    static func status(_ n: Int, _ regs: [UInt16]) -> SlotStatus {
        try! CabinetDecoder.slot(n, Registers(regs))
    }

    static func snapshot(_ slots: [SlotStatus], uptime: UInt32 = 1000, flags: UInt16 = 1) -> StationSnapshot {
        let cab = try! CabinetDecoder.device(Registers(device(slotCount: UInt16(slots.count), uptime: uptime, flags: flags)))
        return StationSnapshot(cabinet: cab, slots: slots, cabinetStale: false, lastUpdateMillis: 0)
    }
}
