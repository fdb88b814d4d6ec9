#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reply codes of a refused swap (abs-mqtt.md "Reason codes"; the decision's subset).
public enum SwapRefusalCode: String, Sendable, Codable, Hashable, CaseIterable {
    case unknownCustomer = "unknown_customer"
    case inactive
    case outsideValidity = "outside_validity"
    case notInNetwork = "not_in_network"
    case quotaExhausted = "quota_exhausted"
    case custodyLimit = "custody_limit"
    case noReadyBattery = "no_ready_battery"
    case noEmptySlot = "no_empty_slot"
    case stationBusy = "station_busy"
    case cacheTooStale = "cache_too_stale"
    case safeMode = "safe_mode"
    case malformed
}

public struct SwapRefusal: Error, Sendable, Hashable {
    public let code: SwapRefusalCode
    public let message: String
    public init(_ code: SwapRefusalCode, _ message: String) { self.code = code; self.message = message }
}

/// What the station must know of itself to decide.
public struct StationConditions: Sendable, Hashable {
    public var cabinetReachable: Bool
    public var safeMode: Bool
    public var emergencyStop: Bool
    public var tamper: Bool
    public var swapsInProgress: Int
    public var maxConcurrentSwaps: Int
    public var networkCode: String
    public init(cabinetReachable: Bool, safeMode: Bool, emergencyStop: Bool, tamper: Bool, swapsInProgress: Int,
                maxConcurrentSwaps: Int = 1, networkCode: String) {
        self.cabinetReachable = cabinetReachable; self.safeMode = safeMode; self.emergencyStop = emergencyStop
        self.tamper = tamper; self.swapsInProgress = swapsInProgress; self.maxConcurrentSwaps = maxConcurrentSwaps
        self.networkCode = networkCode
    }
}

/// How old the entitlement cache may be before swaps are refused with `cache_too_stale`.
public struct CachePolicy: Sendable, Hashable {
    /// Seconds since the last applied snapshot or delta (default 72 h).
    public var maxStaleness: Double = 72 * 3600
    /// The offline policy: decide from a cache older than that anyway.
    public var allowStale = false
    public init() {}
    public init(maxStaleness: Double, allowStale: Bool) { self.maxStaleness = maxStaleness; self.allowStale = allowStale }
}

/// An accepted swap: who, which plan, which slots.
public struct SwapPlan: Sendable, Hashable {
    public let entitlement: Entitlement
    public let kind: SwapKind
    public let family: BatteryFamily
    /// Where the rider returns a battery (nil for a first issue).
    public let returnSlot: Int?
    /// Where the rider takes one (nil for a return-only swap).
    public let issueSlot: Int?
}

/// The decision (entitlements.md, "Deciding a swap"). Pure: everything it needs is passed in.
///
/// Checked in this order, the first failure giving the reply code: the station itself (cabinet reachable,
/// no safe mode, no e-stop, no tamper → `safe_mode`; a free swap lane → `station_busy`), the cache's age
/// (`cache_too_stale`), then the spec's rules 1–7. A stale cache is checked before the customer because
/// nothing in it can be trusted then.
public enum SwapRules {
    public static func decide(customerID: String, planInstanceID: String?, entitlements: [Entitlement],
                              pending: [PendingLocalSwap], now: Date, cacheLastSync: Date?, cachePolicy: CachePolicy,
                              station: StationConditions, snapshot: StationSnapshot, readySlots: Set<Int>,
                              reservedSlots: Set<Int>) -> Result<SwapPlan, SwapRefusal> {
        // The station.
        if !station.cabinetReachable { return .failure(.init(.safeMode, "the cabinet controller is not answering")) }
        if station.safeMode { return .failure(.init(.safeMode, "the cabinet controller is in safe mode")) }
        if station.emergencyStop { return .failure(.init(.safeMode, "emergency stop is active")) }
        if station.tamper { return .failure(.init(.safeMode, "the cabinet service door is open (tamper)")) }
        if station.swapsInProgress >= station.maxConcurrentSwaps {
            return .failure(.init(.stationBusy, "another swap is in progress"))
        }
        // 8. The cache's age.
        guard let sync = cacheLastSync else {
            if !cachePolicy.allowStale { return .failure(.init(.cacheTooStale, "no entitlements received yet")) }
            return .failure(.init(.unknownCustomer, "no entitlements received yet"))
        }
        let age = now.timeIntervalSince(sync)
        if age > cachePolicy.maxStaleness && !cachePolicy.allowStale {
            return .failure(.init(.cacheTooStale, "entitlements are \(Int(age / 3600)) h old (limit \(Int(cachePolicy.maxStaleness / 3600)) h)"))
        }

        // 1. Known customer and plan.
        let mine = entitlements.filter { $0.customerID == customerID }
        if mine.isEmpty { return .failure(.init(.unknownCustomer, "customer \(customerID) is not known at this station")) }
        let cached: Entitlement
        if let planInstanceID {
            guard let e = mine.first(where: { $0.planInstanceID == planInstanceID }) else {
                return .failure(.init(.unknownCustomer, "plan \(planInstanceID) of customer \(customerID) is not known at this station"))
            }
            cached = e
        } else if mine.count == 1 {
            cached = mine[0]
        } else {
            return .failure(.init(.malformed, "customer \(customerID) has \(mine.count) plans: plan_instance_id is required"))
        }
        let e = cached.applying(pending)

        // 2. Status.
        let kind: SwapKind
        switch e.status {
        case .inactive:
            return .failure(.init(.inactive, "plan \(e.planInstanceID) is inactive"))
        case .restricted:
            if e.batteriesOut.isEmpty { return .failure(.init(.inactive, "plan \(e.planInstanceID) is restricted and holds no battery to return")) }
            kind = .returnOnly
        case .active:
            kind = e.batteriesOut.isEmpty ? .firstIssue : .exchange
        }
        // 3. Validity.
        if now < e.validFrom || now >= e.validUntil {
            return .failure(.init(.outsideValidity, "plan \(e.planInstanceID) is valid \(Self.day(e.validFrom)) – \(Self.day(e.validUntil))"))
        }
        // 4. Network.
        if e.networkCode != station.networkCode {
            return .failure(.init(.notInNetwork, "plan network \(e.networkCode) is not this station's (\(station.networkCode))"))
        }
        let family = BatteryFamily(name: e.batteryFamily) ?? .unknown
        if kind != .returnOnly {
            // 5. Quotas.
            if e.swapQuota != -1 && !e.overageAllowed && e.swapsUsed >= e.swapQuota {
                return .failure(.init(.quotaExhausted, "\(e.swapsUsed) of \(e.swapQuota) swaps used"))
            }
            if e.energyQuotaKWh != -1 && !e.overageAllowed && e.energyUsedKWh >= e.energyQuotaKWh - 1e-9 {
                return .failure(.init(.quotaExhausted, "\(Self.kWh(e.energyUsedKWh)) of \(Self.kWh(e.energyQuotaKWh)) kWh used"))
            }
            // 6. Custody after the swap.
            let after = kind == .firstIssue ? e.batteriesOut.count + 1 : e.batteriesOut.count
            if after > e.maxBatteries {
                return .failure(.init(.custodyLimit, "the rider would hold \(after) batteries (limit \(e.maxBatteries))"))
            }
        }
        // 7. A ready battery of the family (highest SoC, then lowest slot) and an empty slot for the return.
        var issueSlot: Int?
        if kind != .returnOnly {
            let candidates = snapshot.slots.filter {
                readySlots.contains($0.number) && !reservedSlots.contains($0.number) && $0.bms?.family == family && family != .unknown
            }
            guard let best = candidates.max(by: { a, b in
                let sa = a.bms!.socPercent, sb = b.bms!.socPercent
                return sa != sb ? sa < sb : a.number > b.number
            }) else {
                return .failure(.init(.noReadyBattery, "no ready \(e.batteryFamily) battery"))
            }
            issueSlot = best.number
        }
        var returnSlot: Int?
        if kind != .firstIssue {
            let empty = snapshot.slots.first {
                snapshot.isUsable($0) && $0.isEmpty && $0.inService && !$0.faulted && $0.doorClosed && $0.locked
                    && !reservedSlots.contains($0.number) && $0.number != issueSlot
            }
            guard let empty else { return .failure(.init(.noEmptySlot, "no empty slot for the returned battery")) }
            returnSlot = empty.number
        }
        return .success(SwapPlan(entitlement: e, kind: kind, family: family, returnSlot: returnSlot, issueSlot: issueSlot))
    }

    /// `YYYY-MM-DD` in UTC (what ISO8601DateFormatter with `.withFullDate` wrote).
    static func day(_ d: Date) -> String {
        d.formatted(Date.ISO8601FormatStyle(timeZone: .gmt).year().month().day())
    }

    /// Three decimals, as `String(format: "%.3f")` (C's printf rounding: the binary value, half to even when exact).
    static func kWh(_ v: Double) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = withVaList([v]) { vsnprintf(&buffer, buffer.count, "%.3f", $0) }
        return n >= 0 && Int(n) < buffer.count ? String(cString: buffer) : "\(v)"
    }
}
