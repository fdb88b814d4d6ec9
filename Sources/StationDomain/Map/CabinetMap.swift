/// The cabinet controller's Modbus register map, version 1 (shared/specs/cabinet-modbus-map.md),
/// as data. Every address, stride, word order and scale the gateway uses comes from here.
public enum CabinetMap {
    public static let cabinetUnit: UInt8 = 1
    public static let meterUnit: UInt8 = 2
    public static let magic: UInt16 = 0x4F56
    public static let mapVersion: UInt16 = 1
    public static let maxSlots = 48
    /// The Modbus limit on registers per read request.
    public static let maxRegistersPerRead = 125

    /// Input registers (function 04) of unit 1.
    public static let deviceBlock = RegisterRange(start: 0, count: 32)
    public static let summaryBase: UInt16 = 40
    public static let slotBlockBase: UInt16 = 100
    public static let slotBlockStride: UInt16 = 32
    public static let cellBlockBase: UInt16 = 2000
    public static let cellBlockStride: UInt16 = 32

    /// Holding registers (functions 03/06/16) of unit 1.
    public static let commandBlock = RegisterRange(start: 1000, count: 4)
    public static let clock = RegisterRange(start: 1010, count: 2)
    public static let watchdog: UInt16 = 1020

    /// Input registers of unit 2, the energy meter.
    public static let meterBlock = RegisterRange(start: 0, count: 7)

    public static func summaryRange(slotCount: Int) -> RegisterRange {
        RegisterRange(start: summaryBase, count: slotCount)
    }
    public static func slotBlock(_ slot: Int) -> RegisterRange {
        RegisterRange(start: slotBlockBase + UInt16(slot - 1) * slotBlockStride, count: Int(slotBlockStride))
    }
    public static func cellBlock(_ slot: Int) -> RegisterRange {
        RegisterRange(start: cellBlockBase + UInt16(slot - 1) * cellBlockStride, count: Int(cellBlockStride))
    }

    /// Field offsets inside the device block.
    public enum Device {
        public static let magic = 0, mapVersion = 1, firmware = 2, slotCount = 5, serial = 6, serialRegisters = 8
        public static let uptime = 14, heartbeat = 16, flags = 17, temperature = 18
        public static let lastCommandSeq = 19, lastCommandResult = 20, watchdogSeconds = 21, safeMode = 22
    }

    /// Field offsets inside a slot block.
    public enum Slot {
        public static let state = 0, faultCode = 1, batteryID = 2, batteryIDRegisters = 8
        public static let soc = 10, soh = 11, packVoltage = 12, packCurrent = 13, tempMax = 14, tempMin = 15
        public static let cycleCount = 16, fullCapacity = 18, remainingCapacity = 19
        public static let protectionFlags = 20, warningFlags = 21, cellVMax = 22, cellVMin = 23
        public static let family = 24, doorOpenCount = 25, insertCount = 26
    }

    /// Field offsets inside a cell-detail block.
    public enum Cells {
        public static let count = 0, firstVoltage = 1, maxCells = 24, firstProbe = 25, maxProbes = 6
    }

    /// Field offsets in the meter block.
    public enum Meter {
        public static let importEnergy = 0, voltage = 2, current = 3, activePower = 4, frequency = 6
    }

    /// Resolutions: engineering unit = raw register value ÷ divisor. Dividing by the exact power of ten (rather
    /// than multiplying by 0.1, which is not exact in binary) gives the double nearest to the register's decimal
    /// value, so 594 reads 59.4 and not 59.400000000000006 in every JSON the station writes.
    public enum Scale {
        public static let percent = 10.0         // SoC, SoH: 0.1 %
        public static let packVoltage = 100.0    // 10 mV → V
        public static let packCurrent = 100.0    // 10 mA → A
        public static let temperature = 10.0     // 0.1 °C
        public static let capacity = 100.0       // 10 mAh → Ah
        public static let cellVoltage = 1000.0   // mV → V
        public static let energy = 100.0         // 0.01 kWh
        public static let meterVoltage = 10.0    // 0.1 V
        public static let meterCurrent = 100.0   // 0.01 A
        public static let power = 10.0           // 0.1 W
        public static let frequency = 100.0      // 0.01 Hz
    }

    /// Plausible ranges: a value outside them is a bad reading, never used for a decision.
    public enum Limits {
        public static let percentRaw: ClosedRange<UInt16> = 0...1000
        public static let temperatureRaw: ClosedRange<Int16> = -400...1500   // −40 °C … 150 °C
        /// A temperature probe the pack does not have (cell detail +25…+30, map 1.1): 0x8000.
        public static let absentProbe: Int16 = -32768
        public static let cellVoltageMilli: ClosedRange<UInt16> = 0...5000
    }
}

/// A contiguous run of registers.
public struct RegisterRange: Sendable, Hashable, CustomStringConvertible {
    public var start: UInt16
    public var count: Int
    public init(start: UInt16, count: Int) { self.start = start; self.count = count }
    public var end: Int { Int(start) + count }   // one past the last
    public var description: String { "\(start)…\(end - 1)" }
}

/// The commands of the command block (holding 1000).
public enum CabinetCommand: UInt16, Sendable, CaseIterable, Codable {
    case unlock = 1, lock = 2, chargingOn = 3, chargingOff = 4, outOfService = 5, returnToService = 6
}

/// The result the controller reports in input register 20.
public enum CommandResult: UInt16, Sendable, Codable, CustomStringConvertible {
    case ok = 0, busy = 1, invalidSlot = 2, lockJammed = 3, doorNotClosed = 4, refused = 5, unknownCommand = 6
    public var description: String {
        switch self {
        case .ok: "ok"
        case .busy: "busy"
        case .invalidSlot: "invalid slot"
        case .lockJammed: "lock jammed"
        case .doorNotClosed: "door not closed"
        case .refused: "refused (out of service, e-stop or safe mode)"
        case .unknownCommand: "unknown command"
        }
    }
}
