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

/// One cabinet of the station, in a station snapshot (cabinets in configured order).
public struct CabinetState: Sendable, Codable, Hashable {
    /// The configured id (`cabinets[].id`; "A" for a single `cabinet:`).
    public var id: String
    /// The Modbus unit id of its controller.
    public var unit: Int
    public var info: CabinetInfo?
    /// Not answering for `staleAfterFailedCycles` cycles (or never read): its slots are stale.
    public var stale: Bool
    /// Station-wide number of its first slot, and how many station numbers it holds (0 while its slot count is
    /// unknown: then it and the cabinets after it have no slots in the snapshot).
    public var firstSlot: Int
    public var slotCount: Int
    public init(id: String, unit: Int = 1, info: CabinetInfo? = nil, stale: Bool = true, firstSlot: Int = 1, slotCount: Int = 0) {
        self.id = id; self.unit = unit; self.info = info; self.stale = stale; self.firstSlot = firstSlot; self.slotCount = slotCount
    }
    public var safeMode: Bool { info?.safeMode ?? false }
    /// Reachable, not in safe mode, no emergency stop, no tamper: its slots may serve swaps.
    public var serving: Bool {
        guard !stale, let info else { return false }
        return !info.safeMode && !info.flags.contains(.emergencyStop) && !info.flags.contains(.tamper)
    }
}

/// The live model of the station: what every decision reads.
///
/// With several cabinets, `slots` holds every cabinet's slots with station-wide numbers (cabinets in configured
/// order), `cabinets` each cabinet's state, `cabinet` the first cabinet's device block and `cabinetStale` is
/// true only when no cabinet answers; each slot's `stale` says whether its own cabinet answers.
public struct StationSnapshot: Sendable, Codable, Hashable {
    public var cabinet: CabinetInfo?
    /// Every configured cabinet (empty in a single cabinet's own snapshot and in states stored by older versions).
    public var cabinets: [CabinetState] = []
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

    /// States stored by older versions have no `cabinets`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cabinet = try c.decodeIfPresent(CabinetInfo.self, forKey: .cabinet)
        cabinets = try c.decodeIfPresent([CabinetState].self, forKey: .cabinets) ?? []
        slots = try c.decode([SlotStatus].self, forKey: .slots)
        meter = try c.decodeIfPresent(MeterReading.self, forKey: .meter)
        cabinetStale = try c.decode(Bool.self, forKey: .cabinetStale)
        lastUpdateMillis = try c.decode(Int64.self, forKey: .lastUpdateMillis)
    }

    public func slot(_ number: Int) -> SlotStatus? {
        guard number >= 1 else { return nil }
        if number <= slots.count, slots[number - 1].number == number { return slots[number - 1] }
        return slots.first { $0.number == number }
    }

    /// The cabinet holding station slot `number`, if the station knows it.
    public func cabinetState(ofSlot number: Int) -> CabinetState? {
        cabinets.first { number >= $0.firstSlot && number < $0.firstSlot + $0.slotCount }
    }

    /// The highest station-wide slot number (the slot count of a single cabinet).
    public var slotCount: Int {
        if let last = cabinets.last(where: { $0.slotCount > 0 }) { return last.firstSlot + last.slotCount - 1 }
        return cabinet?.slotCount ?? slots.count
    }

    /// The snapshot a swap decision reads: with several cabinets, the slots of a cabinet that cannot serve
    /// (unreachable, safe mode, emergency stop, tamper) are marked stale, so they are neither ready nor empty
    /// for a swap while the other cabinets keep serving. One cabinet: unchanged (the station conditions refuse).
    public var forSwapDecisions: StationSnapshot {
        guard cabinets.count > 1 else { return self }
        var s = self
        let notServing = Set(cabinets.filter { !$0.serving }.map(\.id))
        for i in s.slots.indices where s.slots[i].cabinet.map(notServing.contains) ?? false { s.slots[i].stale = true }
        return s
    }
    /// True when the slot may be used for a decision: cabinet and slot are fresh.
    public func isUsable(_ slot: SlotStatus) -> Bool { !cabinetStale && !slot.stale }
}
