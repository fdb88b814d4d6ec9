/// Why a battery is kept from riders.
public enum QuarantineReason: String, Sendable, Codable, Hashable, CaseIterable {
    case protectionFault = "protection_fault"
    case sohBelowThreshold = "soh_below_threshold"
    case unknownFamily = "unknown_family"
    case overTemperature = "over_temperature"
}

/// The thresholds that decide readiness and quarantine (entitlements.md, "A ready battery").
public struct BatteryPolicy: Sendable, Codable, Hashable {
    /// SoC at or above which a battery is ready to hand out (%).
    public var readySoC: Double = 95
    /// SoH at or above which a battery stays in service (%); below it, quarantine.
    public var minSoH: Double = 70
    /// A battery may be handed out only with all cell temperatures within these limits (°C).
    public var handoutTemperature: ClosedRange<Double> = 0 ... 45
    /// Above this (°C) the battery is quarantined; it is released below `releaseTemperature`.
    public var quarantineTemperature: Double = 60
    public var releaseTemperature: Double = 50

    public init() {}
    public init(readySoC: Double, minSoH: Double, handoutTemperature: ClosedRange<Double> = 0 ... 45,
                quarantineTemperature: Double = 60, releaseTemperature: Double = 50) {
        self.readySoC = readySoC; self.minSoH = minSoH; self.handoutTemperature = handoutTemperature
        self.quarantineTemperature = quarantineTemperature; self.releaseTemperature = releaseTemperature
    }

    /// The quarantine reasons that hold for `bms` now. `wasOverTemperature` gives hysteresis:
    /// a battery quarantined for heat stays so until it is below `releaseTemperature`.
    public func quarantineReasons(_ bms: BMSReading, wasOverTemperature: Bool = false) -> [QuarantineReason] {
        var reasons: [QuarantineReason] = []
        if !bms.protection.isEmpty { reasons.append(.protectionFault) }
        if bms.sohPercent < minSoH { reasons.append(.sohBelowThreshold) }
        if bms.family == .unknown { reasons.append(.unknownFamily) }
        let hot = wasOverTemperature ? bms.tempMax >= releaseTemperature : bms.tempMax > quarantineTemperature
        if hot { reasons.append(.overTemperature) }
        return reasons
    }

    /// A ready battery: present, BMS link ok, no protection flag, not quarantined, SoC ≥ ready threshold,
    /// SoH ≥ service threshold, temperature within limits, slot in service, no fault, fresh, door shut and locked.
    public func isReady(_ slot: SlotStatus, quarantined: Bool, cabinetStale: Bool) -> Bool {
        guard !cabinetStale, !slot.stale, slot.batteryPresent, slot.bmsLinkOK, slot.inService, !slot.faulted,
              slot.doorClosed, slot.locked, !quarantined, let bms = slot.bms else { return false }
        return bms.protection.isEmpty && bms.family != .unknown && bms.socPercent >= readySoC
            && bms.sohPercent >= minSoH
            && handoutTemperature.contains(bms.tempMax) && handoutTemperature.contains(bms.tempMin)
    }
}
