#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A rider's entitlement as ABS pushes it (shared/specs/entitlements.md). The station keeps a copy;
/// ABS owns it.
public struct Entitlement: Sendable, Codable, Hashable {
    public enum Status: String, Sendable, Codable, Hashable {
        case active, restricted, inactive
    }

    public var planInstanceID: String
    public var customerID: String
    public var subscriptionRef: String
    public var status: Status
    public var validFrom: Date
    public var validUntil: Date
    public var networkCode: String
    public var batteryFamily: String
    /// -1 = unlimited (ABS's convention).
    public var swapQuota: Int
    public var swapsUsed: Int
    /// -1 = unlimited.
    public var energyQuotaKWh: Double
    public var energyUsedKWh: Double
    public var overageAllowed: Bool
    public var maxBatteries: Int
    public var batteriesOut: [String]
    public var version: Int64

    public init(planInstanceID: String, customerID: String, subscriptionRef: String, status: Status, validFrom: Date,
                validUntil: Date, networkCode: String, batteryFamily: String, swapQuota: Int, swapsUsed: Int,
                energyQuotaKWh: Double, energyUsedKWh: Double, overageAllowed: Bool, maxBatteries: Int,
                batteriesOut: [String], version: Int64) {
        self.planInstanceID = planInstanceID; self.customerID = customerID; self.subscriptionRef = subscriptionRef
        self.status = status; self.validFrom = validFrom; self.validUntil = validUntil; self.networkCode = networkCode
        self.batteryFamily = batteryFamily; self.swapQuota = swapQuota; self.swapsUsed = swapsUsed
        self.energyQuotaKWh = energyQuotaKWh; self.energyUsedKWh = energyUsedKWh; self.overageAllowed = overageAllowed
        self.maxBatteries = maxBatteries; self.batteriesOut = batteriesOut; self.version = version
    }

    enum CodingKeys: String, CodingKey {
        case planInstanceID = "plan_instance_id", customerID = "customer_id", subscriptionRef = "subscription_ref"
        case status, validFrom = "valid_from", validUntil = "valid_until", networkCode = "network_code"
        case batteryFamily = "battery_family", swapQuota = "swap_quota", swapsUsed = "swaps_used"
        case energyQuotaKWh = "energy_quota_kwh", energyUsedKWh = "energy_used_kwh", overageAllowed = "overage_allowed"
        case maxBatteries = "max_batteries", batteriesOut = "batteries_out", version
    }
}

/// What the station has recorded for a plan instance that ABS has not counted yet (swaps completed
/// locally whose usage ABS has not acknowledged). Added on top of the cached record for every decision,
/// so a snapshot never gives a rider back swaps they already took.
public struct LocalUsage: Sendable, Codable, Hashable {
    public var swaps: Int
    public var energyKWh: Double
    public init(swaps: Int = 0, energyKWh: Double = 0) { self.swaps = swaps; self.energyKWh = energyKWh }
}

/// The energy a rider takes away (cabinet map, "Energy of a swap"):
/// `kWh = max(0, rem_cap_out − rem_cap_in) [Ah] × nominal_V / 1000`, rounded to 3 decimals (Odoo's precision).
public func swapEnergyKWh(remainingOutAh: Double, remainingInAh: Double, family: BatteryFamily) -> Double {
    let kwh = max(0, remainingOutAh - remainingInAh) * family.nominalVoltage / 1000
    return (kwh * 1000).rounded() / 1000
}
