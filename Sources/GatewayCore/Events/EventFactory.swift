import Foundation
import StationDomain

/// One event of the ABS contract before it is recorded: its type and its `data` object.
public struct ContractEvent: Sendable {
    public let type: String
    public let data: JSONObject
    public init(_ type: String, _ data: JSONObject) { self.type = type; self.data = data }
}

/// Turns station changes into the contract's events (abs-mqtt.md, "Events").
///
/// Changes that the contract has no event for (cabinet online/stale, safe mode, stale slots, data errors)
/// are not events: they show in the retained `status` message, telemetry, logs and diagnostics.
public struct EventFactory: Sendable {
    public init() {}

    /// `cabinet`: the configured id of the cabinet the changes come from; slot-level and cabinet-level events
    /// carry it as `cabinet` (abs-mqtt.md, "Several cabinets"), beside the station-wide `slot`.
    public mutating func events(for changes: [StationChange], cabinet: String? = nil) -> [ContractEvent] {
        changes.compactMap { change in
            guard let e = event(for: change) else { return nil }
            guard let cabinet else { return e }
            var data = e.data
            data["cabinet"] = cabinet
            return ContractEvent(e.type, data)
        }
    }

    public mutating func event(for change: StationChange) -> ContractEvent? {
        switch change {
        case let .cabinetRebooted(old, new):
            return ContractEvent("cabinet.rebooted", ["old_uptime_s": Int(old), "new_uptime_s": Int(new)])
        case let .cabinetAlarm(raised, cleared, flags):
            return ContractEvent("cabinet.alarm", ["raised": raised.names, "cleared": cleared.names, "flags": flags.names])
        case let .doorOpened(slot, wasUnlocked):
            return ContractEvent("slot.door_opened", ["slot": slot, "authorised": wasUnlocked])
        case let .doorClosed(slot, authorised):
            // The flag of the opening this close ends, as the tracker kept it (through restarts: StationTracker).
            return ContractEvent("slot.door_closed", ["slot": slot, "authorised": authorised])
        case let .slotFault(slot, fault):
            return ContractEvent("slot.fault", ["slot": slot, "fault_code": Int(fault.rawValue), "fault": fault.description])
        case let .slotRecovered(slot, fault):
            return ContractEvent("slot.recovered", ["slot": slot, "fault_code": Int(fault.rawValue), "fault": fault.description])
        case let .batteryInserted(slot, bms):
            return ContractEvent("battery.inserted", Self.battery(slot, bms))
        case let .batteryRemoved(slot, bms):
            return ContractEvent("battery.removed", Self.battery(slot, bms))
        case let .batteryCharged(slot, bms, minutes):
            var d: JSONObject = ["slot": slot, "battery_id": bms.batteryID, "soc": JSON.round(bms.socPercent)]
            d["minutes_on_charge"] = minutes.map { JSON.round($0) } ?? NSNull()
            return ContractEvent("battery.charged", d)
        case let .batteryAlarm(slot, id, protection, warning):
            return ContractEvent("battery.alarm", ["slot": slot, "battery_id": id, "protection_raised": protection.names,
                                                   "warning_raised": warning.names])
        case let .batteryQuarantined(slot, id, reasons):
            return ContractEvent("battery.quarantined", ["slot": slot, "battery_id": id, "reason": reasons.first?.rawValue ?? "",
                                                         "reasons": reasons.map(\.rawValue)])
        case let .batteryReleased(slot, id, reasons):
            return ContractEvent("battery.released_from_quarantine", ["slot": slot, "battery_id": id,
                                                                      "reason": reasons.first?.rawValue ?? "",
                                                                      "reasons": reasons.map(\.rawValue)])
        case .cabinetOnline, .cabinetStale, .safeModeChanged, .slotServiceChanged, .slotStale, .slotFresh, .slotDataError:
            return nil
        }
    }

    static func battery(_ slot: Int, _ bms: BMSReading?) -> JSONObject {
        var d: JSONObject = ["slot": slot]
        d["battery_id"] = bms?.batteryID ?? NSNull()
        d["soc"] = bms.map { JSON.round($0.socPercent) } ?? NSNull()
        d["soh"] = bms.map { JSON.round($0.sohPercent) } ?? NSNull()
        d["family"] = bms.map { $0.family.name } ?? NSNull()
        return d
    }
}
