#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationDomain

/// The retained `status` message (abs-mqtt.md "From the station", contract 1.1 "Birth, death and resync" and "Time").
/// `cabinet` is an addition: "online", "unreachable" or "safe_mode" (docs/mqtt.md); `cabinets` each cabinet's state
/// by id when there are several. Nil fields are left out.
public struct StatusMessage: Encodable, Sendable, Equatable {
    public var online: Bool
    public var stationID: String
    public var version: String
    public var cabinet: String?
    public var cabinets: [String: String]?
    /// The MQTT connection's number (the will of that connection carries it too).
    public var session: UInt64?
    /// "synced" or "unsynced" (TrustedClock); nil in a process without the daemon's clock.
    public var clock: String?
    public var ts: Date

    public init(online: Bool, stationID: String, version: String, cabinet: String? = nil, cabinets: [String: String]? = nil,
                session: UInt64? = nil, clock: String? = nil, ts: Date) {
        self.online = online; self.stationID = stationID; self.version = version; self.cabinet = cabinet
        self.cabinets = cabinets; self.session = session; self.clock = clock; self.ts = ts
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ContractKey.self)
        try c.encodeIfPresent(cabinet, forKey: "cabinet")
        try c.encodeIfPresent(cabinets, forKey: "cabinets")
        try c.encodeIfPresent(clock, forKey: "clock")
        try c.encode(online, forKey: "online")
        try c.encodeIfPresent(session.map { Int(clamping: $0) }, forKey: "session")
        try c.encode(stationID, forKey: "station_id")
        try c.encode(ts, forKey: "ts")
        try c.encode(1, forKey: "v")
        try c.encode(version, forKey: "version")
    }

    public var bytes: [UInt8] { ContractJSON.encode(self) }
}

/// The counts of the `inventory` message: station-wide, or one cabinet's (with its `cabinet` id).
public struct InventoryCounts: Encodable, Sendable, Equatable {
    public var cabinet: String?
    public var ready, charging, empty, faulty, outOfService, unknown: Int
    public var readyByFamily: [String: Int]

    public init(_ inv: Inventory, cabinet: String? = nil) {
        self.cabinet = cabinet
        ready = inv.ready; charging = inv.charging; empty = inv.empty; faulty = inv.faulty
        outOfService = inv.outOfService; unknown = inv.unknown; readyByFamily = inv.readyByFamily
    }

    enum CodingKeys: String, CodingKey {
        case cabinet, ready, charging, empty, faulty, outOfService = "out_of_service", unknown, readyByFamily = "ready_by_family"
    }
}

/// The retained `inventory` message: station-wide counts, and `cabinets` (the same counts per cabinet, in the
/// configured order) when the station has cabinets listed in its inventory.
public struct InventoryMessage: Encodable, Sendable, Equatable {
    public var counts: InventoryCounts
    public var cabinets: [InventoryCounts]?
    public var stationID: String
    public var ts: Date

    public init(_ inv: Inventory, stationID: String, cabinetOrder: [String] = [], ts: Date) {
        counts = InventoryCounts(inv)
        if inv.byCabinet.isEmpty {
            cabinets = nil
        } else {
            let order = cabinetOrder.filter { inv.byCabinet[$0] != nil }
                + inv.byCabinet.keys.sorted().filter { !cabinetOrder.contains($0) }
            cabinets = order.map { InventoryCounts(inv.byCabinet[$0]!, cabinet: $0) }
        }
        self.stationID = stationID; self.ts = ts
    }

    public func encode(to encoder: Encoder) throws {
        try counts.encode(to: encoder)
        var c = encoder.container(keyedBy: ContractKey.self)
        try c.encodeIfPresent(cabinets, forKey: "cabinets")
        try c.encode(stationID, forKey: "station_id")
        try c.encode(ts, forKey: "ts")
        try c.encode(1, forKey: "v")
    }

    public var bytes: [UInt8] { ContractJSON.encode(self) }
}

// MARK: - Telemetry

/// The body of a `telemetry` message (abs-mqtt.md, contract 1.1 "Telemetry by exception"): the cabinet block(s),
/// the meter (null when none) and every slot with its BMS fields. TelemetryReporter (GatewayCore) wraps it in the
/// envelope (`v`, `station_id`, `ts`, `kind`, `tseq`, `session`) and sends all of it (`full`) or what moved (`changes`).
public struct TelemetryBody: Encodable, Sendable, Equatable {
    public var cabinetStale: Bool
    public var cabinet: CabinetTelemetry?
    /// With several cabinets: each in configured order (left out when empty).
    public var cabinets: [CabinetEntryTelemetry]
    public var meter: MeterTelemetry?
    public var slots: [SlotTelemetry]

    public init(_ snap: StationSnapshot, quarantined: [Int: [QuarantineReason]]) {
        cabinetStale = snap.cabinetStale
        cabinet = snap.cabinet.map(CabinetTelemetry.init)
        cabinets = snap.cabinets.map(CabinetEntryTelemetry.init)
        meter = snap.meter.map(MeterTelemetry.init)
        slots = snap.slots.map { SlotTelemetry($0, quarantine: quarantined[$0.number]) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ContractKey.self)
        try c.encodeIfPresent(cabinet, forKey: "cabinet")
        try c.encode(cabinetStale, forKey: "cabinet_stale")
        if !cabinets.isEmpty { try c.encode(cabinets, forKey: "cabinets") }
        try c.encodeNullable(meter, forKey: "meter")
        try c.encode(slots, forKey: "slots")
    }
}

/// A cabinet controller's device block.
public struct CabinetTelemetry: Encodable, Sendable, Equatable {
    public var serial: String
    public var firmware: String
    public var slotCount: Int
    public var uptimeS: Int
    public var flags: [String]
    public var temperatureC: Double
    public var safeMode: Bool
    public var watchdogS: Int

    public init(_ c: CabinetInfo) {
        serial = c.serial; firmware = c.firmwareVersion; slotCount = c.slotCount; uptimeS = Int(c.uptimeSeconds)
        flags = c.flags.names; temperatureC = ContractJSON.round(c.temperature); safeMode = c.safeMode
        watchdogS = Int(c.watchdogSeconds)
    }

    enum CodingKeys: String, CodingKey {
        case serial, firmware, slotCount = "slot_count", uptimeS = "uptime_s", flags, temperatureC = "temperature_c"
        case safeMode = "safe_mode", watchdogS = "watchdog_s"
    }
}

/// One entry of `cabinets`: its device block (when read) with its id, Modbus unit, stale flag and station slot range.
public struct CabinetEntryTelemetry: Encodable, Sendable, Equatable {
    public var info: CabinetTelemetry?
    public var cabinet: String
    public var unit: Int
    public var stale: Bool
    public var firstSlot: Int
    public var slots: Int

    public init(_ cab: CabinetState) {
        info = cab.info.map(CabinetTelemetry.init); cabinet = cab.id; unit = cab.unit; stale = cab.stale
        firstSlot = cab.firstSlot; slots = cab.slotCount
    }

    public func encode(to encoder: Encoder) throws {
        try info?.encode(to: encoder)
        var c = encoder.container(keyedBy: ContractKey.self)
        try c.encode(cabinet, forKey: "cabinet"); try c.encode(unit, forKey: "unit"); try c.encode(stale, forKey: "stale")
        try c.encode(firstSlot, forKey: "first_slot"); try c.encode(slots, forKey: "slots")
    }
}

/// The station's energy meter (rounded: kWh, A and Hz to 0.01, V and W to 0.1).
public struct MeterTelemetry: Encodable, Sendable, Equatable {
    public var importEnergyKWh, voltageV, currentA, activePowerW, frequencyHz: Double

    public init(_ m: MeterReading) {
        importEnergyKWh = ContractJSON.round(m.importEnergyKWh, 2); voltageV = ContractJSON.round(m.voltage)
        currentA = ContractJSON.round(m.current, 2); activePowerW = ContractJSON.round(m.activePowerW)
        frequencyHz = ContractJSON.round(m.frequencyHz, 2)
    }

    enum CodingKeys: String, CodingKey {
        case importEnergyKWh = "import_energy_kwh", voltageV = "voltage_v", currentA = "current_a"
        case activePowerW = "active_power_w", frequencyHz = "frequency_hz"
    }
}

/// One slot: its state bits, counters and BMS fields (`bms` null when no battery is read).
public struct SlotTelemetry: Encodable, Sendable, Equatable {
    public var slot: Int
    public var state: String
    public var batteryPresent, doorClosed, locked, charging, chargeComplete, inService, bmsLinkOK: Bool
    public var faultCode: Int
    public var stale: Bool
    public var doorOpenCount, insertCount: Int
    public var cabinet: String?
    public var cabinetSlot: Int?
    public var quarantine: [String]?
    public var bmsError: String?
    public var bms: BMSTelemetry?

    public init(_ s: SlotStatus, quarantine: [QuarantineReason]?) {
        slot = s.number; state = s.state.description; batteryPresent = s.batteryPresent; doorClosed = s.doorClosed
        locked = s.locked; charging = s.charging; chargeComplete = s.chargeComplete; inService = s.inService
        bmsLinkOK = s.bmsLinkOK; faultCode = Int(s.fault.rawValue); stale = s.stale; doorOpenCount = Int(s.doorOpenCount)
        insertCount = Int(s.insertCount); cabinet = s.cabinet; cabinetSlot = s.cabinetSlot
        self.quarantine = quarantine?.map(\.rawValue); bmsError = s.bmsError; bms = s.bms.map(BMSTelemetry.init)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ContractKey.self)
        try c.encode(batteryPresent, forKey: "battery_present")
        try c.encodeNullable(bms, forKey: "bms")
        try c.encodeIfPresent(bmsError, forKey: "bms_error")
        try c.encode(bmsLinkOK, forKey: "bms_link_ok")
        try c.encodeIfPresent(cabinet, forKey: "cabinet")
        try c.encodeIfPresent(cabinetSlot, forKey: "cabinet_slot")
        try c.encode(chargeComplete, forKey: "charge_complete")
        try c.encode(charging, forKey: "charging")
        try c.encode(doorClosed, forKey: "door_closed")
        try c.encode(doorOpenCount, forKey: "door_open_count")
        try c.encode(faultCode, forKey: "fault_code")
        try c.encode(inService, forKey: "in_service")
        try c.encode(insertCount, forKey: "insert_count")
        try c.encode(locked, forKey: "locked")
        try c.encodeIfPresent(quarantine, forKey: "quarantine")
        try c.encode(slot, forKey: "slot")
        try c.encode(stale, forKey: "stale")
        try c.encode(state, forKey: "state")
    }
}

/// A battery's BMS fields (rounded: soc, soh, temperatures 0.1; V, A, Ah 0.01; cell volts 0.001).
public struct BMSTelemetry: Encodable, Sendable, Equatable {
    public var batteryID, family: String
    public var soc, soh, packVoltageV, packCurrentA, tempMaxC, tempMinC: Double
    public var cycleCount: Int
    public var fullCapacityAh, remainingCapacityAh: Double
    public var protection, warning: [String]
    public var cellVMax, cellVMin: Double

    public init(_ b: BMSReading) {
        batteryID = b.batteryID; family = b.family.name; soc = ContractJSON.round(b.socPercent)
        soh = ContractJSON.round(b.sohPercent); packVoltageV = ContractJSON.round(b.packVoltage, 2)
        packCurrentA = ContractJSON.round(b.packCurrent, 2); tempMaxC = ContractJSON.round(b.tempMax)
        tempMinC = ContractJSON.round(b.tempMin); cycleCount = Int(b.cycleCount)
        fullCapacityAh = ContractJSON.round(b.fullCapacityAh, 2); remainingCapacityAh = ContractJSON.round(b.remainingCapacityAh, 2)
        protection = b.protection.names; warning = b.warning.names
        cellVMax = ContractJSON.round(b.cellVMax, 3); cellVMin = ContractJSON.round(b.cellVMin, 3)
    }

    enum CodingKeys: String, CodingKey {
        case batteryID = "battery_id", family, soc, soh, packVoltageV = "pack_voltage_v", packCurrentA = "pack_current_a"
        case tempMaxC = "temp_max_c", tempMinC = "temp_min_c", cycleCount = "cycle_count"
        case fullCapacityAh = "full_capacity_ah", remainingCapacityAh = "remaining_capacity_ah", protection, warning
        case cellVMax = "cell_v_max", cellVMin = "cell_v_min"
    }
}

/// A `telemetry` message: the envelope around a body tree (`full`: the whole TelemetryBody; `changes`: the part of it
/// that moved, which TelemetryReporter cuts out of the tree).
public struct TelemetryMessage: Encodable, Sendable {
    public enum Kind: String, Sendable { case full, changes }
    public var kind: Kind
    public var tseq: Int
    public var session: Int?
    public var stationID: String
    public var ts: Date
    /// The body's members (an object's).
    public var body: [String: JSONValue]

    public init(kind: Kind, tseq: Int, session: Int?, stationID: String, ts: Date, body: [String: JSONValue]) {
        self.kind = kind; self.tseq = tseq; self.session = session; self.stationID = stationID; self.ts = ts; self.body = body
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ContractKey.self)
        for (k, v) in body { try c.encode(v, forKey: ContractKey(k)) }
        try c.encode(kind.rawValue, forKey: "kind")
        try c.encodeIfPresent(session, forKey: "session")
        try c.encode(stationID, forKey: "station_id")
        try c.encode(tseq, forKey: "tseq")
        try c.encode(ts, forKey: "ts")
        try c.encode(1, forKey: "v")
    }

    /// The message's tree (the reporter may rename its keys to the compact codes before writing).
    public var value: JSONValue { ContractJSON.value(self) }
}
