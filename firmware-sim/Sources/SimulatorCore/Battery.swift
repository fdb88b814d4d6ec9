// Battery packs: the families the cabinet knows, an open-circuit-voltage curve, and the
// state a BMS reports (SoC, SoH, cycles, temperatures, cells).
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A battery family as the cabinet knows it (slot block +24).
public struct BatteryFamily: Sendable, Equatable {
    public let code: Int
    public let name: String
    public let nominalVoltage: Double
    public let cellCount: Int
    public let capacityAh: Double
    /// Constant-current stage charging current, A.
    public let chargeCurrent: Double
    /// Pack internal resistance, Ω (terminal voltage rise while charging, I²R heat).
    public let resistance: Double
    /// Temperature probes the BMS reports (≤ 6).
    public let probeCount: Int
    /// Heat capacity of the pack, J/K.
    public let heatCapacity: Double

    public static let mobbat30 = BatteryFamily(code: 1, name: "MOBBAT-30AH", nominalVoltage: 48, cellCount: 13,
                                               capacityAh: 30, chargeCurrent: 15, resistance: 0.060,
                                               probeCount: 4, heatCapacity: 9_000)
    public static let mobbat45 = BatteryFamily(code: 2, name: "MOBBAT-45AH", nominalVoltage: 48, cellCount: 13,
                                               capacityAh: 45, chargeCurrent: 20, resistance: 0.045,
                                               probeCount: 4, heatCapacity: 13_000)
    public static let mobbat100 = BatteryFamily(code: 3, name: "MOBBAT-100AH", nominalVoltage: 60, cellCount: 16,
                                                capacityAh: 100, chargeCurrent: 30, resistance: 0.035,
                                                probeCount: 6, heatCapacity: 30_000)
    /// Family 0: a pack the cabinet does not recognise; modelled as a generic 48 V / 20 Ah pack.
    public static let unknown = BatteryFamily(code: 0, name: "UNKNOWN", nominalVoltage: 48, cellCount: 13,
                                              capacityAh: 20, chargeCurrent: 10, resistance: 0.080,
                                              probeCount: 2, heatCapacity: 6_000)

    public static let all: [BatteryFamily] = [.unknown, .mobbat30, .mobbat45, .mobbat100]

    public static func code(_ code: Int) -> BatteryFamily {
        all.first { $0.code == code } ?? .unknown
    }

    /// SoC (%) at which the charger leaves constant current for constant voltage.
    public static let cvStartSoC = 85.0
    /// Cell voltage held in the CV stage.
    public static let cvCellVoltage = 4.20
    /// Charge terminates when the CV current falls below this fraction of the capacity (C-rate).
    public static let cutoffCRate = 0.05
}

/// Open-circuit voltage of one NMC cell over SoC (%), piecewise linear.
public enum OCVCurve {
    static let points: [(soc: Double, volts: Double)] = [
        (0, 3.00), (5, 3.40), (10, 3.50), (20, 3.60), (30, 3.66), (40, 3.71),
        (50, 3.76), (60, 3.83), (70, 3.91), (80, 3.99), (90, 4.08), (100, 4.19),
    ]

    public static func cellVoltage(soc: Double) -> Double {
        let s = max(0, min(100, soc))
        for i in 1..<points.count where s <= points[i].soc {
            let a = points[i - 1], b = points[i]
            return a.volts + (b.volts - a.volts) * (s - a.soc) / (b.soc - a.soc)
        }
        return points.last!.volts
    }
}

/// A battery as its BMS knows itself. Internal units: %, °C, A, Ah, V.
struct Battery: Sendable, Equatable {
    var id: String
    var family: Int
    var soc: Double
    var soh: Double
    /// Full-capacity-equivalent cycles, fractional; the register shows the integer part.
    var cycles: Double
    /// Core temperature; probes read around it.
    var temperature: Double
    /// Pack current, A, positive while charging.
    var current: Double = 0
    var protectionFlags: UInt16 = 0
    var warningFlags: UInt16 = 0
    /// Per-cell deviation from the mean cell voltage, V (sums to zero).
    var cellOffsets: [Double]
    /// Per-probe deviation from the core temperature, °C.
    var probeOffsets: [Double]

    var spec: BatteryFamily { .code(family) }
    var fullCapacityAh: Double { spec.capacityAh * soh / 100 }
    var remainingAh: Double { fullCapacityAh * soc / 100 }

    init(id: String, family: Int, soc: Double, soh: Double, cycles: Double, temperature: Double,
         rng: inout SeededRandom) {
        self.id = id
        self.family = family
        self.soc = max(0, min(100, soc))
        self.soh = max(0, min(100, soh))
        self.cycles = max(0, cycles)
        self.temperature = temperature
        let spec = BatteryFamily.code(family)
        var offsets = (0..<spec.cellCount).map { _ in rng.uniform(-0.006...0.006) }
        let mean = offsets.reduce(0, +) / Double(offsets.count)
        offsets = offsets.map { $0 - mean }
        cellOffsets = offsets
        probeOffsets = (0..<spec.probeCount).map { i in i == 0 ? 0.4 : rng.uniform(-0.6...0.2) }
    }

    /// Effective charging resistance (ohmic + polarisation), Ω: chosen so that the terminal
    /// voltage under the CC current reaches the CV limit exactly at `cvStartSoC`.
    var chargeResistance: Double {
        let spec = self.spec
        return Double(spec.cellCount) * (BatteryFamily.cvCellVoltage - OCVCurve.cellVoltage(soc: BatteryFamily.cvStartSoC))
            / spec.chargeCurrent
    }

    /// Terminal voltage: the OCV at rest; OCV + I·R while charging, which is the CV limit
    /// (cells × 4.20 V) during the CV stage.
    var packVoltage: Double {
        let cells = Double(spec.cellCount)
        let ocv = cells * OCVCurve.cellVoltage(soc: soc)
        guard current > 0 else { return ocv }
        return max(ocv, min(cells * BatteryFamily.cvCellVoltage, ocv + current * chargeResistance))
    }

    /// Cell voltages (V) around the mean, consistent with the pack voltage.
    var cellVoltages: [Double] {
        let mean = packVoltage / Double(spec.cellCount)
        return cellOffsets.map { mean + $0 }
    }

    var probeTemperatures: [Double] { probeOffsets.map { temperature + $0 } }

    /// Charging current the charger would push now, A: constant current below `cvStartSoC`,
    /// then constant voltage, where the current is (V_limit − OCV) / R and tapers as the OCV rises.
    var chargeDemand: Double {
        let spec = self.spec
        if soc < BatteryFamily.cvStartSoC { return spec.chargeCurrent }
        let headroom = Double(spec.cellCount) * (BatteryFamily.cvCellVoltage - OCVCurve.cellVoltage(soc: soc))
        return max(0, min(spec.chargeCurrent, headroom / chargeResistance))
    }

    var cutoffCurrent: Double { spec.capacityAh * BatteryFamily.cutoffCRate }
    var isFull: Bool { soc >= 100 }
}
