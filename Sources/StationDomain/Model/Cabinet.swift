/// Cabinet flag bits (device block 17).
public struct CabinetFlags: OptionSet, Sendable, Codable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let mainsOK = CabinetFlags(rawValue: 1 << 0)
    public static let backupPower = CabinetFlags(rawValue: 1 << 1)
    public static let tamper = CabinetFlags(rawValue: 1 << 2)
    public static let overTemperature = CabinetFlags(rawValue: 1 << 3)
    public static let emergencyStop = CabinetFlags(rawValue: 1 << 4)

    /// The flags that are alarms when they rise (mains ok is the normal state).
    public static let alarms: CabinetFlags = [.backupPower, .tamper, .overTemperature, .emergencyStop]

    public static let names: [(CabinetFlags, String)] = [
        (.mainsOK, "mains_ok"), (.backupPower, "backup_power"), (.tamper, "tamper"),
        (.overTemperature, "over_temperature"), (.emergencyStop, "emergency_stop"),
    ]
    public var names: [String] { Self.names.filter { contains($0.0) }.map(\.1) }
    public var description: String { names.joined(separator: ",") }
}

/// The device block, decoded.
public struct CabinetInfo: Sendable, Codable, Hashable {
    public var mapVersion: UInt16
    public var firmwareVersion: String
    public var slotCount: Int
    public var serial: String
    public var uptimeSeconds: UInt32
    public var heartbeat: UInt16
    public var flags: CabinetFlags
    public var temperature: Double        // °C
    public var lastCommandSeq: UInt16
    public var lastCommandResult: UInt16
    public var watchdogSeconds: UInt16
    public var safeMode: Bool

    public init(mapVersion: UInt16 = 1, firmwareVersion: String = "", slotCount: Int = 0, serial: String = "",
                uptimeSeconds: UInt32 = 0, heartbeat: UInt16 = 0, flags: CabinetFlags = [.mainsOK],
                temperature: Double = 0, lastCommandSeq: UInt16 = 0, lastCommandResult: UInt16 = 0,
                watchdogSeconds: UInt16 = 0, safeMode: Bool = false) {
        self.mapVersion = mapVersion; self.firmwareVersion = firmwareVersion; self.slotCount = slotCount
        self.serial = serial; self.uptimeSeconds = uptimeSeconds; self.heartbeat = heartbeat; self.flags = flags
        self.temperature = temperature; self.lastCommandSeq = lastCommandSeq; self.lastCommandResult = lastCommandResult
        self.watchdogSeconds = watchdogSeconds; self.safeMode = safeMode
    }
}

/// The station energy meter (unit 2).
public struct MeterReading: Sendable, Codable, Hashable {
    public var importEnergyKWh: Double
    public var voltage: Double
    public var current: Double
    public var activePowerW: Double
    public var frequencyHz: Double
    public init(importEnergyKWh: Double, voltage: Double, current: Double, activePowerW: Double, frequencyHz: Double) {
        self.importEnergyKWh = importEnergyKWh; self.voltage = voltage; self.current = current
        self.activePowerW = activePowerW; self.frequencyHz = frequencyHz
    }
}

/// The live model of the station: what every decision reads.
public struct StationSnapshot: Sendable, Codable, Hashable {
    public var cabinet: CabinetInfo?
    public var slots: [SlotStatus]
    public var meter: MeterReading?
    /// The cabinet could not be read for `staleAfterFailedCycles` cycles (or never was): nothing in it is used.
    public var cabinetStale: Bool
    /// Milliseconds since 1970 of the last successful fast cycle.
    public var lastUpdateMillis: Int64

    public init(cabinet: CabinetInfo? = nil, slots: [SlotStatus] = [], meter: MeterReading? = nil,
                cabinetStale: Bool = true, lastUpdateMillis: Int64 = 0) {
        self.cabinet = cabinet; self.slots = slots; self.meter = meter
        self.cabinetStale = cabinetStale; self.lastUpdateMillis = lastUpdateMillis
    }

    public func slot(_ number: Int) -> SlotStatus? {
        guard number >= 1, number <= slots.count else { return nil }
        return slots[number - 1]
    }
    /// True when the slot may be used for a decision: cabinet and slot are fresh.
    public func isUsable(_ slot: SlotStatus) -> Bool { !cabinetStale && !slot.stale }
}
