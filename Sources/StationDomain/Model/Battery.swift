/// Battery families of the fleet (slot block +24).
public enum BatteryFamily: UInt16, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case unknown = 0
    case mobbat30 = 1
    case mobbat45 = 2
    case mobbat100 = 3

    public var name: String {
        switch self {
        case .unknown: "unknown"
        case .mobbat30: "MOBBAT-30AH"
        case .mobbat45: "MOBBAT-45AH"
        case .mobbat100: "MOBBAT-100AH"
        }
    }
    public var description: String { name }
    /// Nominal pack voltage, used for the energy of a swap.
    public var nominalVoltage: Double {
        switch self {
        case .unknown: 0
        case .mobbat30, .mobbat45: 48
        case .mobbat100: 60
        }
    }
    public var nominalCapacityAh: Double {
        switch self {
        case .unknown: 0
        case .mobbat30: 30
        case .mobbat45: 45
        case .mobbat100: 100
        }
    }
    public init?(name: String) {
        guard let f = BatteryFamily.allCases.first(where: { $0.name == name && $0 != .unknown }) else { return nil }
        self = f
    }
    /// Raw register values outside the map's list decode as `.unknown`.
    public init(register: UInt16) { self = BatteryFamily(rawValue: register) ?? .unknown }
}

/// BMS protection and warning bits (slot block +20, +21).
public struct BMSFlags: OptionSet, Sendable, Codable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let cellOverVoltage = BMSFlags(rawValue: 1 << 0)
    public static let cellUnderVoltage = BMSFlags(rawValue: 1 << 1)
    public static let chargeOverCurrent = BMSFlags(rawValue: 1 << 2)
    public static let dischargeOverCurrent = BMSFlags(rawValue: 1 << 3)
    public static let overTemperature = BMSFlags(rawValue: 1 << 4)
    public static let underTemperature = BMSFlags(rawValue: 1 << 5)
    public static let shortCircuit = BMSFlags(rawValue: 1 << 6)
    public static let cellImbalance = BMSFlags(rawValue: 1 << 7)

    public static let names: [(BMSFlags, String)] = [
        (.cellOverVoltage, "cell_over_voltage"), (.cellUnderVoltage, "cell_under_voltage"),
        (.chargeOverCurrent, "charge_over_current"), (.dischargeOverCurrent, "discharge_over_current"),
        (.overTemperature, "over_temperature"), (.underTemperature, "under_temperature"),
        (.shortCircuit, "short_circuit"), (.cellImbalance, "cell_imbalance"),
    ]
    public var names: [String] { Self.names.filter { contains($0.0) }.map(\.1) }
    public var description: String { names.isEmpty ? "none" : names.joined(separator: ",") }
}

/// Everything the BMS reports through the slot block, in engineering units.
public struct BMSReading: Sendable, Codable, Hashable {
    public var batteryID: String
    public var socPercent: Double
    public var sohPercent: Double
    public var packVoltage: Double        // V
    public var packCurrent: Double        // A, positive while charging
    public var tempMax: Double            // °C
    public var tempMin: Double            // °C
    public var cycleCount: UInt32
    public var fullCapacityAh: Double
    public var remainingCapacityAh: Double
    public var protection: BMSFlags
    public var warning: BMSFlags
    public var cellVMax: Double           // V
    public var cellVMin: Double           // V
    public var family: BatteryFamily

    public init(batteryID: String, socPercent: Double, sohPercent: Double, packVoltage: Double, packCurrent: Double,
                tempMax: Double, tempMin: Double, cycleCount: UInt32, fullCapacityAh: Double,
                remainingCapacityAh: Double, protection: BMSFlags, warning: BMSFlags,
                cellVMax: Double, cellVMin: Double, family: BatteryFamily) {
        self.batteryID = batteryID; self.socPercent = socPercent; self.sohPercent = sohPercent
        self.packVoltage = packVoltage; self.packCurrent = packCurrent; self.tempMax = tempMax; self.tempMin = tempMin
        self.cycleCount = cycleCount; self.fullCapacityAh = fullCapacityAh; self.remainingCapacityAh = remainingCapacityAh
        self.protection = protection; self.warning = warning; self.cellVMax = cellVMax; self.cellVMin = cellVMin
        self.family = family
    }
}

/// The cell-detail block of one slot.
public struct CellDetail: Sendable, Codable, Hashable {
    public var cellVoltages: [Double]     // V
    /// The six probe positions of the map (+25…+30) in order, °C; nil (JSON null) where the pack has no probe
    /// (the register reads 0x8000). A probe reading 0.0 °C is a temperature, and positions never shift.
    public var probeTemperatures: [Double?]
    public init(cellVoltages: [Double], probeTemperatures: [Double?]) {
        self.cellVoltages = cellVoltages; self.probeTemperatures = probeTemperatures
    }
}
