#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationDomain

/// The event types (abs-mqtt.md "Events"): the `type` of each event and the last level of its topic
/// `dt/V01/BSS/{sid}/evt/{type}`. ContractTests checks this list against the contract's table.
public enum EventType: String, Sendable, CaseIterable, Encodable {
    case gatewayStarted = "gateway.started"
    case cabinetRebooted = "cabinet.rebooted"
    case cabinetAlarm = "cabinet.alarm"
    case slotDoorOpened = "slot.door_opened"
    case slotDoorClosed = "slot.door_closed"
    case slotFault = "slot.fault"
    case slotRecovered = "slot.recovered"
    case batteryInserted = "battery.inserted"
    case batteryRemoved = "battery.removed"
    case batteryCharged = "battery.charged"
    case batteryAlarm = "battery.alarm"
    case batteryQuarantined = "battery.quarantined"
    case batteryReleasedFromQuarantine = "battery.released_from_quarantine"
    case swapAccepted = "swap.accepted"
    case swapRejected = "swap.rejected"
    case swapCompleted = "swap.completed"
    case swapAborted = "swap.aborted"
    case swapReturned = "swap.returned"
    case maintenanceUnlock = "maintenance.unlock"
    case entitlementsApplied = "entitlements.applied"
    /// The station's addition (docs/odoo.md): Odoo refuses or accepts again the station's credentials.
    case gatewayAlarm = "gateway.alarm"

    /// Types the station sends beyond abs-mqtt.md's table (documented in docs/).
    public static let stationAdditions: Set<EventType> = [.gatewayAlarm]
}

/// A battery that changed hands in a swap: `{"id":…,"soc":…,"slot":…}` (soc rounded to 0.1 %).
public struct SwapBatteryData: Encodable, Sendable, Equatable {
    public var id: String
    public var soc: Double
    public var slot: Int
    public init(id: String, soc: Double, slot: Int) { self.id = id; self.soc = ContractJSON.round(soc); self.slot = slot }
}

/// The `data` of each event type (abs-mqtt.md "Events"): one case per type, its keys written in `encode(to:)`.
/// Measurements are rounded here (soc, soh 0.1 %; minutes 0.1).
public enum EventPayload: Sendable, Equatable, Encodable {
    case gatewayStarted(version: String, configDigest: String, previousShutdownClean: Bool)
    case cabinetRebooted(oldUptimeS: Int, newUptimeS: Int)
    /// Flag names that rose, fell, and all that are up now.
    case cabinetAlarm(raised: [String], cleared: [String], flags: [String])
    case slotDoorOpened(slot: Int, authorised: Bool)
    case slotDoorClosed(slot: Int, authorised: Bool)
    case slotFault(slot: Int, faultCode: Int, fault: String)
    case slotRecovered(slot: Int, faultCode: Int, fault: String)
    /// Battery id, soc, soh and family are null when the BMS could not be read.
    case batteryInserted(slot: Int, battery: BMSReading?)
    case batteryRemoved(slot: Int, battery: BMSReading?)
    case batteryCharged(slot: Int, batteryID: String, soc: Double, minutesOnCharge: Double?)
    case batteryAlarm(slot: Int, batteryID: String, protectionRaised: [String], warningRaised: [String])
    /// `reason`: the first of `reasons` ("" when none).
    case batteryQuarantined(slot: Int, batteryID: String, reasons: [String])
    case batteryReleasedFromQuarantine(slot: Int, batteryID: String, reasons: [String])
    /// `return_slot`/`issue_slot` null when the swap has none; `channel` left out when the command had none.
    case swapAccepted(swapID: String, requestID: String, customerID: String, planInstanceID: String, kind: String,
                      returnSlot: Int?, issueSlot: Int?, channel: String?)
    case swapRejected(requestID: String, customerID: String, reason: ReplyCode, message: String)
    case swapCompleted(swapID: String, customerID: String, planInstanceID: String, batteryIn: SwapBatteryData?,
                       batteryOut: SwapBatteryData, energyKWh: Double, recordedOffline: Bool)
    case swapAborted(swapID: String, stage: String, reason: String)
    case swapReturned(swapID: String, customerID: String, planInstanceID: String, batteryIn: SwapBatteryData, reason: String,
                      stage: String)
    case maintenanceUnlock(slot: Int, operatorID: String, reason: String, requestID: String)
    /// `snapshotID`/`parts` only for a snapshot applied from parts (contract 1.1).
    case entitlementsApplied(kind: String, version: Int64, count: Int, snapshotID: String? = nil, parts: Int? = nil)
    case gatewayAlarm(kind: String, message: String, active: Bool)

    public var type: EventType {
        switch self {
        case .gatewayStarted: .gatewayStarted
        case .cabinetRebooted: .cabinetRebooted
        case .cabinetAlarm: .cabinetAlarm
        case .slotDoorOpened: .slotDoorOpened
        case .slotDoorClosed: .slotDoorClosed
        case .slotFault: .slotFault
        case .slotRecovered: .slotRecovered
        case .batteryInserted: .batteryInserted
        case .batteryRemoved: .batteryRemoved
        case .batteryCharged: .batteryCharged
        case .batteryAlarm: .batteryAlarm
        case .batteryQuarantined: .batteryQuarantined
        case .batteryReleasedFromQuarantine: .batteryReleasedFromQuarantine
        case .swapAccepted: .swapAccepted
        case .swapRejected: .swapRejected
        case .swapCompleted: .swapCompleted
        case .swapAborted: .swapAborted
        case .swapReturned: .swapReturned
        case .maintenanceUnlock: .maintenanceUnlock
        case .entitlementsApplied: .entitlementsApplied
        case .gatewayAlarm: .gatewayAlarm
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ContractKey.self)
        switch self {
        case let .gatewayStarted(version, digest, clean):
            try c.encode(version, forKey: "version"); try c.encode(digest, forKey: "config_digest")
            try c.encode(clean, forKey: "previous_shutdown_clean")
        case let .cabinetRebooted(old, new):
            try c.encode(old, forKey: "old_uptime_s"); try c.encode(new, forKey: "new_uptime_s")
        case let .cabinetAlarm(raised, cleared, flags):
            try c.encode(raised, forKey: "raised"); try c.encode(cleared, forKey: "cleared"); try c.encode(flags, forKey: "flags")
        case let .slotDoorOpened(slot, authorised), let .slotDoorClosed(slot, authorised):
            try c.encode(slot, forKey: "slot"); try c.encode(authorised, forKey: "authorised")
        case let .slotFault(slot, code, fault), let .slotRecovered(slot, code, fault):
            try c.encode(slot, forKey: "slot"); try c.encode(code, forKey: "fault_code"); try c.encode(fault, forKey: "fault")
        case let .batteryInserted(slot, bms), let .batteryRemoved(slot, bms):
            try c.encode(slot, forKey: "slot")
            try c.encodeNullable(bms?.batteryID, forKey: "battery_id")
            try c.encodeNullable(bms.map { ContractJSON.round($0.socPercent) }, forKey: "soc")
            try c.encodeNullable(bms.map { ContractJSON.round($0.sohPercent) }, forKey: "soh")
            try c.encodeNullable(bms?.family.name, forKey: "family")
        case let .batteryCharged(slot, id, soc, minutes):
            try c.encode(slot, forKey: "slot"); try c.encode(id, forKey: "battery_id")
            try c.encode(ContractJSON.round(soc), forKey: "soc")
            try c.encodeNullable(minutes.map { ContractJSON.round($0) }, forKey: "minutes_on_charge")
        case let .batteryAlarm(slot, id, protection, warning):
            try c.encode(slot, forKey: "slot"); try c.encode(id, forKey: "battery_id")
            try c.encode(protection, forKey: "protection_raised"); try c.encode(warning, forKey: "warning_raised")
        case let .batteryQuarantined(slot, id, reasons), let .batteryReleasedFromQuarantine(slot, id, reasons):
            try c.encode(slot, forKey: "slot"); try c.encode(id, forKey: "battery_id")
            try c.encode(reasons.first ?? "", forKey: "reason"); try c.encode(reasons, forKey: "reasons")
        case let .swapAccepted(swapID, requestID, customerID, plan, kind, returnSlot, issueSlot, channel):
            try c.encode(swapID, forKey: "swap_id"); try c.encode(requestID, forKey: "request_id")
            try c.encode(customerID, forKey: "customer_id"); try c.encode(plan, forKey: "plan_instance_id")
            try c.encode(kind, forKey: "kind")
            try c.encodeNullable(returnSlot, forKey: "return_slot"); try c.encodeNullable(issueSlot, forKey: "issue_slot")
            try c.encodeIfPresent(channel, forKey: "channel")
        case let .swapRejected(requestID, customerID, reason, message):
            try c.encode(requestID, forKey: "request_id"); try c.encode(customerID, forKey: "customer_id")
            try c.encode(reason, forKey: "reason"); try c.encode(message, forKey: "message")
        case let .swapCompleted(swapID, customerID, plan, batteryIn, batteryOut, kwh, offline):
            try c.encode(swapID, forKey: "swap_id"); try c.encode(customerID, forKey: "customer_id")
            try c.encode(plan, forKey: "plan_instance_id")
            try c.encodeNullable(batteryIn, forKey: "battery_in"); try c.encode(batteryOut, forKey: "battery_out")
            try c.encode(kwh, forKey: "energy_kwh"); try c.encode(offline, forKey: "recorded_offline")
        case let .swapAborted(swapID, stage, reason):
            try c.encode(swapID, forKey: "swap_id"); try c.encode(stage, forKey: "stage"); try c.encode(reason, forKey: "reason")
        case let .swapReturned(swapID, customerID, plan, batteryIn, reason, stage):
            try c.encode(swapID, forKey: "swap_id"); try c.encode(customerID, forKey: "customer_id")
            try c.encode(plan, forKey: "plan_instance_id"); try c.encode(batteryIn, forKey: "battery_in")
            try c.encode(reason, forKey: "reason"); try c.encode(stage, forKey: "stage")
        case let .maintenanceUnlock(slot, operatorID, reason, requestID):
            try c.encode(slot, forKey: "slot"); try c.encode(operatorID, forKey: "operator_id")
            try c.encode(reason, forKey: "reason"); try c.encode(requestID, forKey: "request_id")
        case let .entitlementsApplied(kind, version, count, snapshotID, parts):
            try c.encode(kind, forKey: "kind"); try c.encode(version, forKey: "version"); try c.encode(count, forKey: "count")
            try c.encodeIfPresent(snapshotID, forKey: "snapshot_id"); try c.encodeIfPresent(parts, forKey: "parts")
        case let .gatewayAlarm(kind, message, active):
            try c.encode(kind, forKey: "kind"); try c.encode(message, forKey: "message"); try c.encode(active, forKey: "active")
        }
    }
}

/// One event before it is recorded: its payload, the cabinet it comes from (slot- and cabinet-level events with
/// several cabinets, abs-mqtt.md "Several cabinets"), and `clock_trusted: false` when it was recorded under a
/// clock not synchronised since boot (docs/commands.md "Time"). Its `data` is what the durable log keeps.
public struct ContractEvent: Sendable, Equatable, Encodable {
    public var payload: EventPayload
    public var cabinet: String?
    /// Written only when false.
    public var clockTrusted: Bool

    public init(_ payload: EventPayload, cabinet: String? = nil, clockTrusted: Bool = true) {
        self.payload = payload; self.cabinet = cabinet; self.clockTrusted = clockTrusted
    }

    /// The event type's string, from the payload's case.
    public var type: String { payload.type.rawValue }

    public func encode(to encoder: Encoder) throws {
        try payload.encode(to: encoder)
        var c = encoder.container(keyedBy: ContractKey.self)
        if let cabinet { try c.encode(cabinet, forKey: "cabinet") }
        if !clockTrusted { try c.encode(false, forKey: "clock_trusted") }
    }

    /// The `data` object's JSON bytes.
    public var data: [UInt8] { ContractJSON.encode(self) }
}

/// The envelope of a published event around its stored `data` bytes (kept as recorded, not decoded):
/// `{"data":{…},"event_id":"…","seq":N,"station_id":"…","ts":"…","type":"…","v":1}`.
public struct EventEnvelope: Encodable, Sendable {
    public var eventID: UUID
    public var seq: Int64
    public var type: String
    public var stationID: String
    public var ts: Date
    /// The stored `data` JSON (empty: `{}`).
    public var data: [UInt8]

    public init(eventID: UUID, seq: Int64, type: String, stationID: String, ts: Date, data: [UInt8]) {
        self.eventID = eventID; self.seq = seq; self.type = type; self.stationID = stationID; self.ts = ts; self.data = data
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ContractKey.self)
        try c.encode(JSONValue.raw(data), forKey: "data")
        try c.encode(eventID.uuidString.lowercased(), forKey: "event_id")
        try c.encode(seq, forKey: "seq")
        try c.encode(stationID, forKey: "station_id")
        try c.encode(ts, forKey: "ts")
        try c.encode(type, forKey: "type")
        try c.encode(1, forKey: "v")
    }

    /// The envelope's bytes, the same as `encode(to:)` gives (ContractPayloadTests), written member by member in
    /// sorted order with the one writer's primitives: this runs for every event published, and a tree with a sort
    /// doubled its cost (3.3 µs against 1.7 µs).
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 200)
        out.append(contentsOf: #"{"data":"#.utf8)
        JSONValue.raw(data).write(into: &out)
        out.append(contentsOf: #","event_id":"#.utf8)
        JSONValue.writeString(eventID.uuidString.lowercased(), into: &out)
        out.append(contentsOf: #","seq":"#.utf8)
        out.append(contentsOf: String(seq).utf8)
        out.append(contentsOf: #","station_id":"#.utf8)
        JSONValue.writeString(stationID, into: &out)
        out.append(contentsOf: #","ts":"#.utf8)
        JSONValue.writeString(RFC3339.format(ts), into: &out)
        out.append(contentsOf: #","type":"#.utf8)
        JSONValue.writeString(type, into: &out)
        out.append(contentsOf: #","v":1}"#.utf8)
        return out
    }
}
