/// Slot state bits (slot block +0, and the low byte of the summary).
public struct SlotStateBits: OptionSet, Sendable, Codable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let batteryPresent = SlotStateBits(rawValue: 1 << 0)
    public static let doorClosed = SlotStateBits(rawValue: 1 << 1)
    public static let locked = SlotStateBits(rawValue: 1 << 2)
    public static let charging = SlotStateBits(rawValue: 1 << 3)
    public static let chargeComplete = SlotStateBits(rawValue: 1 << 4)
    public static let fault = SlotStateBits(rawValue: 1 << 5)
    public static let bmsLinkOK = SlotStateBits(rawValue: 1 << 6)
    public static let outOfService = SlotStateBits(rawValue: 1 << 7)

    public static let names: [(SlotStateBits, String)] = [
        (.batteryPresent, "battery"), (.doorClosed, "door_closed"), (.locked, "locked"), (.charging, "charging"),
        (.chargeComplete, "charged"), (.fault, "fault"), (.bmsLinkOK, "bms_ok"), (.outOfService, "out_of_service"),
    ]
    public var description: String { Self.names.filter { contains($0.0) }.map(\.1).joined(separator: ",") }
}

/// Slot fault code (slot block +1). Any value the map does not list is kept as read (`isKnown` false), so
/// JSON shows the controller's own code and never a stand-in.
public struct SlotFault: RawRepresentable, Sendable, Codable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(register: UInt16) { self.init(rawValue: register) }

    public static let none = SlotFault(rawValue: 0)
    public static let lockFault = SlotFault(rawValue: 1)
    public static let doorSensorFault = SlotFault(rawValue: 2)
    public static let chargerFault = SlotFault(rawValue: 3)
    public static let overTemperature = SlotFault(rawValue: 4)
    public static let bmsLinkLost = SlotFault(rawValue: 5)

    /// True for the codes the map lists (0…5).
    public var isKnown: Bool { rawValue <= 5 }
    public var description: String {
        switch rawValue {
        case 0: "none"
        case 1: "lock_fault"
        case 2: "door_sensor_fault"
        case 3: "charger_fault"
        case 4: "slot_over_temperature"
        case 5: "bms_link_lost"
        default: "unknown_fault"
        }
    }
}

/// What the gateway knows of one slot.
public struct SlotStatus: Sendable, Codable, Hashable {
    public var number: Int
    public var state: SlotStateBits
    public var fault: SlotFault
    /// Valid only while battery present and BMS link ok; nil otherwise or when the reading was implausible.
    public var bms: BMSReading?
    /// Why the BMS fields were discarded, if they were (a value out of the map's range).
    public var bmsError: String?
    public var doorOpenCount: UInt16
    public var insertCount: UInt16
    /// The summary's change counter (high byte) at the last read.
    public var changeCounter: UInt8
    /// True while the slot could not be read for `staleAfterFailedCycles` cycles: never used for a decision.
    public var stale: Bool
    /// In a station snapshot: the configured id of the cabinet holding the slot and the slot's number in that
    /// cabinet (`number` is station-wide). Nil in a cabinet's own snapshot and in states stored by older versions.
    public var cabinet: String?
    public var cabinetSlot: Int?

    public init(number: Int, state: SlotStateBits = [], fault: SlotFault = .none, bms: BMSReading? = nil,
                bmsError: String? = nil, doorOpenCount: UInt16 = 0, insertCount: UInt16 = 0,
                changeCounter: UInt8 = 0, stale: Bool = false) {
        self.number = number; self.state = state; self.fault = fault; self.bms = bms; self.bmsError = bmsError
        self.doorOpenCount = doorOpenCount; self.insertCount = insertCount; self.changeCounter = changeCounter
        self.stale = stale
    }

    public var batteryPresent: Bool { state.contains(.batteryPresent) }
    public var doorClosed: Bool { state.contains(.doorClosed) }
    public var locked: Bool { state.contains(.locked) }
    public var charging: Bool { state.contains(.charging) }
    public var chargeComplete: Bool { state.contains(.chargeComplete) }
    public var faulted: Bool { state.contains(.fault) || fault != .none }
    public var bmsLinkOK: Bool { state.contains(.bmsLinkOK) }
    public var inService: Bool { !state.contains(.outOfService) }
    public var isEmpty: Bool { !batteryPresent }
}
