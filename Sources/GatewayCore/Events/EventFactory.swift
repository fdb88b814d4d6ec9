#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ABSProtocol
import StationDomain

/// Turns station changes into the contract's events (abs-mqtt.md, "Events").
///
/// Changes that the contract has no event for (cabinet online/stale, safe mode, stale slots, data errors)
/// are not events: they show in the retained `status` message, telemetry, logs and diagnostics.
public struct EventFactory: Sendable {
    public init() {}

    /// `cabinet`: the configured id of the cabinet the changes come from; slot-level and cabinet-level events
    /// carry it as `cabinet` (abs-mqtt.md, "Several cabinets"), beside the station-wide `slot`.
    public mutating func events(for changes: [StationChange], cabinet: String? = nil) -> [ContractEvent] {
        changes.compactMap { change in event(for: change).map { ContractEvent($0, cabinet: cabinet) } }
    }

    /// The contract's event data for one change (the types and keys: ABSProtocol/Contract/Events.swift).
    public mutating func event(for change: StationChange) -> EventPayload? {
        switch change {
        case let .cabinetRebooted(old, new):
            return .cabinetRebooted(oldUptimeS: Int(old), newUptimeS: Int(new))
        case let .cabinetAlarm(raised, cleared, flags):
            return .cabinetAlarm(raised: raised.names, cleared: cleared.names, flags: flags.names)
        case let .doorOpened(slot, wasUnlocked):
            return .slotDoorOpened(slot: slot, authorised: wasUnlocked)
        case let .doorClosed(slot, authorised):
            // The flag of the opening this close ends, as the tracker kept it (through restarts: StationTracker).
            return .slotDoorClosed(slot: slot, authorised: authorised)
        case let .slotFault(slot, fault):
            return .slotFault(slot: slot, faultCode: Int(fault.rawValue), fault: fault.description)
        case let .slotRecovered(slot, fault):
            return .slotRecovered(slot: slot, faultCode: Int(fault.rawValue), fault: fault.description)
        case let .batteryInserted(slot, bms):
            return .batteryInserted(slot: slot, battery: bms)
        case let .batteryRemoved(slot, bms):
            return .batteryRemoved(slot: slot, battery: bms)
        case let .batteryCharged(slot, bms, minutes):
            return .batteryCharged(slot: slot, batteryID: bms.batteryID, soc: bms.socPercent, minutesOnCharge: minutes)
        case let .batteryAlarm(slot, id, protection, warning):
            return .batteryAlarm(slot: slot, batteryID: id, protectionRaised: protection.names, warningRaised: warning.names)
        case let .batteryQuarantined(slot, id, reasons):
            return .batteryQuarantined(slot: slot, batteryID: id, reasons: reasons.map(\.rawValue))
        case let .batteryReleased(slot, id, reasons):
            return .batteryReleasedFromQuarantine(slot: slot, batteryID: id, reasons: reasons.map(\.rawValue))
        case .cabinetOnline, .cabinetStale, .safeModeChanged, .slotServiceChanged, .slotStale, .slotFresh, .slotDataError:
            return nil
        }
    }
}
