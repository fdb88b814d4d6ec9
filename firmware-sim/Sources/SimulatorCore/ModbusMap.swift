// The cabinet controller's Modbus register map, version 1
// (/work/shared/specs/cabinet-modbus-map.md), as the simulated firmware sees it.

/// Addresses and constants of the register map.
public enum CabinetMap {
    public static let cabinetUnit: UInt8 = 1
    public static let meterUnit: UInt8 = 2

    public static let magic: UInt16 = 0x4F56
    public static let mapVersion: UInt16 = 1
    public static let firmwareVersion: (major: UInt16, minor: UInt16, patch: UInt16) = (1, 4, 2)
    public static let maxSlots = 48
    public static let maxReadQuantity = 125
    public static let maxWriteQuantity = 123
    /// Cell detail +25…+30: a temperature probe the pack does not have (map 1.1).
    public static let absentProbe: UInt16 = 0x8000

    // Unit 1, input registers.
    public static let deviceBlockStart = 0
    public static let deviceBlockLength = 32
    public static let summaryStart = 40
    public static let slotBlockStart = 100
    public static let slotBlockStride = 32
    public static let cellDetailStart = 2000
    public static let cellDetailStride = 32

    // Device block offsets.
    public static let regMagic = 0
    public static let regMapVersion = 1
    public static let regFirmware = 2
    public static let regSlotCount = 5
    public static let regSerial = 6
    public static let regUptime = 14
    public static let regHeartbeat = 16
    public static let regCabinetFlags = 17
    public static let regCabinetTemp = 18
    public static let regLastCmdSeq = 19
    public static let regLastCmdResult = 20
    public static let regWatchdogSeconds = 21
    public static let regSafeMode = 22

    // Unit 1, holding registers.
    public static let commandBlock = 1000      // 1000–1003: cmd, slot, seq, param
    public static let clockRegister = 1010     // 1010–1011: u32 unix seconds
    public static let watchdogRegister = 1020

    // Unit 2, input registers 0–6.
    public static let meterRegisterCount = 7

    public static func summaryAddress(slot: Int) -> Int { summaryStart + slot - 1 }
    public static func slotBlockAddress(slot: Int) -> Int { slotBlockStart + (slot - 1) * slotBlockStride }
    public static func cellDetailAddress(slot: Int) -> Int { cellDetailStart + (slot - 1) * cellDetailStride }
}

/// Slot state bits (slot block +0, low byte of the summary register).
public struct SlotStateBits: OptionSet, Sendable, Codable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let batteryPresent = SlotStateBits(rawValue: 1 << 0)
    public static let doorClosed = SlotStateBits(rawValue: 1 << 1)
    public static let locked = SlotStateBits(rawValue: 1 << 2)
    public static let charging = SlotStateBits(rawValue: 1 << 3)
    public static let chargeComplete = SlotStateBits(rawValue: 1 << 4)
    public static let slotFault = SlotStateBits(rawValue: 1 << 5)
    public static let bmsLinkOK = SlotStateBits(rawValue: 1 << 6)
    public static let outOfService = SlotStateBits(rawValue: 1 << 7)
}

/// Cabinet flags (input register 17).
public struct CabinetFlagBits: OptionSet, Sendable, Codable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let mainsOK = CabinetFlagBits(rawValue: 1 << 0)
    public static let backupPower = CabinetFlagBits(rawValue: 1 << 1)
    public static let tamper = CabinetFlagBits(rawValue: 1 << 2)
    public static let overTemperature = CabinetFlagBits(rawValue: 1 << 3)
    public static let emergencyStop = CabinetFlagBits(rawValue: 1 << 4)
}

/// Slot fault codes (slot block +1).
public enum SlotFaultCode: UInt16, Sendable, Codable {
    case none = 0, lockFault = 1, doorSensorFault = 2, chargerFault = 3, overTemperature = 4, bmsLinkLost = 5
}

/// Commands (holding register 1000).
public enum CabinetCommand: UInt16, Sendable, Codable, CaseIterable {
    case unlock = 1, lock = 2, chargingOn = 3, chargingOff = 4, outOfService = 5, backInService = 6
}

/// Command results (input register 20).
public enum CommandResult: UInt16, Sendable, Codable, CaseIterable {
    case ok = 0, busy = 1, invalidSlot = 2, lockJammed = 3, doorNotClosed = 4, refused = 5, unknownCommand = 6
}

/// Modbus exception codes the simulator answers.
public enum ModbusException: UInt8, Sendable, Codable {
    case illegalFunction = 1, illegalDataAddress = 2, illegalDataValue = 3, serverDeviceFailure = 4,
         acknowledge = 5, serverDeviceBusy = 6, gatewayTargetFailed = 0x0B
}

/// Register encoding helpers shared by the engine (and handy for tests).
public enum RegisterCodec {
    /// ASCII, two characters per register, first character in the high byte, NUL padded.
    public static func ascii(_ text: String, registers: Int) -> [UInt16] {
        var bytes = Array(text.utf8.prefix(registers * 2))
        bytes += [UInt8](repeating: 0, count: registers * 2 - bytes.count)
        return (0..<registers).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
    }

    /// The inverse of `ascii(_:registers:)`: stops at the first NUL.
    public static func string(_ registers: some Collection<UInt16>) -> String {
        var bytes: [UInt8] = []
        for r in registers { bytes.append(UInt8(r >> 8)); bytes.append(UInt8(r & 0xFF)) }
        if let nul = bytes.firstIndex(of: 0) { bytes.removeSubrange(nul...) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// u32 as two registers, high word first.
    public static func u32(_ value: UInt32) -> [UInt16] { [UInt16(value >> 16), UInt16(value & 0xFFFF)] }
    public static func u32(high: UInt16, low: UInt16) -> UInt32 { UInt32(high) << 16 | UInt32(low) }

    /// s16 in two's complement, from a value in `scale` units (e.g. 0.1 °C: scale 10), rounded and clamped.
    public static func s16(_ value: Double, scale: Double) -> UInt16 {
        let scaled = (value * scale).rounded()
        guard scaled.isFinite else { return 0 }
        return UInt16(bitPattern: Int16(clamping: Int(max(-32768, min(32767, scaled)))))
    }

    /// u16 from a value in `scale` units, rounded and clamped to 0…65535.
    public static func u16(_ value: Double, scale: Double) -> UInt16 {
        let scaled = (value * scale).rounded()
        guard scaled.isFinite else { return 0 }
        return UInt16(max(0, min(65535, scaled)))
    }

    public static func signed(_ register: UInt16) -> Int16 { Int16(bitPattern: register) }
}
