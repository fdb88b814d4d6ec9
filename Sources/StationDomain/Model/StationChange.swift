/// A change at the station, derived from two successive readings of the cabinet.
/// The gateway turns these into the contract's events (abs-mqtt.md).
public enum StationChange: Sendable, Hashable, Codable {
    case cabinetOnline(serial: String, firmware: String, slotCount: Int)
    case cabinetStale(reason: String)
    case cabinetRebooted(oldUptime: UInt32, newUptime: UInt32)
    case cabinetAlarm(raised: CabinetFlags, cleared: CabinetFlags, flags: CabinetFlags)
    case safeModeChanged(active: Bool)
    /// `wasUnlocked`: the slot's lock was released (by a command) when the door opened.
    case doorOpened(slot: Int, wasUnlocked: Bool)
    /// `authorised`: the flag of the opening this close ends (kept across restarts, see `StationTracker`).
    case doorClosed(slot: Int, authorised: Bool)
    case batteryInserted(slot: Int, battery: BMSReading?)
    case batteryRemoved(slot: Int, battery: BMSReading?)
    case batteryCharged(slot: Int, battery: BMSReading, minutesOnCharge: Double?)
    case batteryAlarm(slot: Int, batteryID: String, protectionRaised: BMSFlags, warningRaised: BMSFlags)
    case batteryQuarantined(slot: Int, batteryID: String, reasons: [QuarantineReason])
    case batteryReleased(slot: Int, batteryID: String, reasons: [QuarantineReason])
    case slotFault(slot: Int, fault: SlotFault)
    case slotRecovered(slot: Int, fault: SlotFault)
    case slotServiceChanged(slot: Int, inService: Bool)
    case slotStale(slot: Int)
    case slotFresh(slot: Int)
    case slotDataError(slot: Int, reason: String)

    /// The slot this change is about, if any.
    public var slot: Int? {
        switch self {
        case let .doorOpened(s, _), let .doorClosed(s, _), let .batteryInserted(s, _), let .batteryRemoved(s, _),
             let .batteryCharged(s, _, _), let .batteryAlarm(s, _, _, _), let .batteryQuarantined(s, _, _),
             let .batteryReleased(s, _, _), let .slotFault(s, _), let .slotRecovered(s, _),
             let .slotServiceChanged(s, _), let .slotStale(s), let .slotFresh(s), let .slotDataError(s, _):
            return s
        default:
            return nil
        }
    }

    /// The same change about slot `n` (station-wide numbering of a cabinet's change); unchanged without a slot.
    public func renumbered(_ n: Int) -> StationChange {
        switch self {
        case let .doorOpened(_, a): .doorOpened(slot: n, wasUnlocked: a)
        case let .doorClosed(_, a): .doorClosed(slot: n, authorised: a)
        case let .batteryInserted(_, b): .batteryInserted(slot: n, battery: b)
        case let .batteryRemoved(_, b): .batteryRemoved(slot: n, battery: b)
        case let .batteryCharged(_, b, m): .batteryCharged(slot: n, battery: b, minutesOnCharge: m)
        case let .batteryAlarm(_, id, p, w): .batteryAlarm(slot: n, batteryID: id, protectionRaised: p, warningRaised: w)
        case let .batteryQuarantined(_, id, r): .batteryQuarantined(slot: n, batteryID: id, reasons: r)
        case let .batteryReleased(_, id, r): .batteryReleased(slot: n, batteryID: id, reasons: r)
        case let .slotFault(_, f): .slotFault(slot: n, fault: f)
        case let .slotRecovered(_, f): .slotRecovered(slot: n, fault: f)
        case let .slotServiceChanged(_, i): .slotServiceChanged(slot: n, inService: i)
        case .slotStale: .slotStale(slot: n)
        case .slotFresh: .slotFresh(slot: n)
        case let .slotDataError(_, r): .slotDataError(slot: n, reason: r)
        default: self
        }
    }

    /// True when this change can alter what the station can hand out (inventory).
    public var affectsInventory: Bool {
        switch self {
        case .doorOpened, .doorClosed, .batteryAlarm, .slotDataError: return false
        default: return true
        }
    }
}
