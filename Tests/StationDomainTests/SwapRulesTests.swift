import Foundation
import Testing
@testable import StationDomain

struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum SwapFixture {
    static let now = Date(timeIntervalSince1970: 1_795_000_000)
    static func entitlement(status: Entitlement.Status = .active, quota: Int = 60, used: Int = 12, energyQuota: Double = 129.6,
                            energyUsed: Double = 25.92, overage: Bool = false, maxBatteries: Int = 1,
                            out: [String] = ["B45-000123"], network: String = "NET", family: String = "MOBBAT-45AH",
                            from: Double = -86400, until: Double = 86400, plan: String = "pi-1", customer: String = "cust-1") -> Entitlement {
        Entitlement(planInstanceID: plan, customerID: customer, subscriptionRef: "SUB/2026/00042", status: status,
                    validFrom: now.addingTimeInterval(from), validUntil: now.addingTimeInterval(until), networkCode: network,
                    batteryFamily: family, swapQuota: quota, swapsUsed: used, energyQuotaKWh: energyQuota,
                    energyUsedKWh: energyUsed, overageAllowed: overage, maxBatteries: maxBatteries, batteriesOut: out, version: 1)
    }
    /// Slot 1: ready 45AH 98.7 %, slot 2: ready 45AH 99.5 %, slot 3: ready 30AH, slot 4: empty, slot 5: charging 45AH.
    static func station() -> (StationSnapshot, Set<Int>) {
        let slots = [
            Fixture.status(1, Fixture.slot(id: "B45-1", soc: 987, family: 2)),
            Fixture.status(2, Fixture.slot(id: "B45-2", soc: 995, family: 2)),
            Fixture.status(3, Fixture.slot(id: "B30-3", soc: 990, family: 1)),
            Fixture.status(4, Fixture.slot(state: 0b0100_0110)),
            Fixture.status(5, Fixture.slot(id: "B45-5", soc: 400, family: 2)),
        ]
        return (Fixture.snapshot(slots), [1, 2, 3])
    }
    static func conditions(busy: Int = 0) -> StationConditions {
        StationConditions(cabinetReachable: true, safeMode: false, emergencyStop: false, tamper: false,
                          swapsInProgress: busy, networkCode: "NET")
    }
    static func decide(_ ents: [Entitlement], plan: String? = nil, pending: [PendingLocalSwap] = [], sync: Date? = now,
                       cache: CachePolicy = CachePolicy(), conditions: StationConditions = conditions(),
                       station: (StationSnapshot, Set<Int>) = station(), reserved: Set<Int> = []) -> Result<SwapPlan, SwapRefusal> {
        SwapRules.decide(customerID: "cust-1", planInstanceID: plan, entitlements: ents, pending: pending, now: now,
                         cacheLastSync: sync, cachePolicy: cache, station: conditions, snapshot: station.0,
                         readySlots: station.1, reservedSlots: reserved)
    }
}

@Suite struct SwapRulesTests {
    typealias F = SwapFixture
    func code(_ r: Result<SwapPlan, SwapRefusal>) -> SwapRefusalCode? { if case let .failure(f) = r { f.code } else { nil } }

    @Test func acceptsAnExchangeWithTheFullestBatteryAndAnEmptySlot() throws {
        let plan = try F.decide([F.entitlement()]).get()
        #expect(plan.kind == .exchange)
        #expect(plan.issueSlot == 2)      // 99.5 % beats 98.7 %
        #expect(plan.returnSlot == 4)
        #expect(plan.family == .mobbat45)
    }

    @Test func firstIssueAndReturnOnly() throws {
        let first = try F.decide([F.entitlement(out: [])]).get()
        #expect(first.kind == .firstIssue && first.returnSlot == nil && first.issueSlot == 2)
        let ret = try F.decide([F.entitlement(status: .restricted)]).get()
        #expect(ret.kind == .returnOnly && ret.issueSlot == nil && ret.returnSlot == 4)
    }

    @Test func everyRefusalCode() {
        #expect(code(F.decide([])) == .unknownCustomer)
        #expect(code(F.decide([F.entitlement()], plan: "pi-404")) == .unknownCustomer)
        #expect(code(F.decide([F.entitlement(plan: "a"), F.entitlement(plan: "b")])) == .malformed)
        #expect(code(F.decide([F.entitlement(status: .inactive)])) == .inactive)
        #expect(code(F.decide([F.entitlement(status: .restricted, out: [])])) == .inactive)
        #expect(code(F.decide([F.entitlement(from: 3600)])) == .outsideValidity)
        #expect(code(F.decide([F.entitlement(until: 0)])) == .outsideValidity)          // valid_until is exclusive
        #expect(code(F.decide([F.entitlement(network: "OTHER")])) == .notInNetwork)
        #expect(code(F.decide([F.entitlement(quota: 60, used: 60)])) == .quotaExhausted)
        #expect(code(F.decide([F.entitlement(energyQuota: 10, energyUsed: 10)])) == .quotaExhausted)
        #expect(code(F.decide([F.entitlement(maxBatteries: 1, out: [])].map { var e = $0; e.maxBatteries = 0; return e })) == .custodyLimit)
        #expect(code(F.decide([F.entitlement(maxBatteries: 1, out: ["x", "y"])])) == .custodyLimit)
        #expect(code(F.decide([F.entitlement(family: "MOBBAT-100AH")])) == .noReadyBattery)
        #expect(code(F.decide([F.entitlement()], reserved: [1, 2])) == .noReadyBattery)
        #expect(code(F.decide([F.entitlement()], reserved: [4])) == .noEmptySlot)
        #expect(code(F.decide([F.entitlement()], conditions: F.conditions(busy: 1))) == .stationBusy)
        #expect(code(F.decide([F.entitlement()], sync: F.now.addingTimeInterval(-73 * 3600))) == .cacheTooStale)
        #expect(code(F.decide([F.entitlement()], sync: nil)) == .cacheTooStale)
        for mutate in [{ (c: inout StationConditions) in c.safeMode = true }, { $0.emergencyStop = true },
                       { $0.tamper = true }, { $0.cabinetReachable = false }] {
            var c = F.conditions(); mutate(&c)
            #expect(code(F.decide([F.entitlement()], conditions: c)) == .safeMode)
        }
    }

    @Test func unlimitedQuotaOverageAndStalePolicy() {
        #expect(code(F.decide([F.entitlement(quota: -1, used: 5000)])) == nil)
        #expect(code(F.decide([F.entitlement(quota: 60, used: 60, overage: true)])) == nil)
        #expect(code(F.decide([F.entitlement(energyQuota: -1, energyUsed: 1e6)])) == nil)
        #expect(code(F.decide([F.entitlement()], sync: F.now.addingTimeInterval(-100 * 3600),
                              cache: CachePolicy(maxStaleness: 72 * 3600, allowStale: true))) == nil)
    }

    @Test func pendingLocalSwapsStayCountedAfterASnapshot() {
        // ABS's copy says 59 of 60; the station completed one that ABS has not counted: 60 of 60.
        let pending = [PendingLocalSwap(swapID: "s1", planInstanceID: "pi-1", swaps: 1, energyKWh: 2.16,
                                        returnedBatteryID: "B45-000123", issuedBatteryID: "B45-9", completedAt: F.now)]
        #expect(code(F.decide([F.entitlement(quota: 60, used: 59)], pending: pending)) == .quotaExhausted)
        #expect(code(F.decide([F.entitlement(quota: 60, used: 59)])) == nil)
        // Custody follows too: the rider now holds B45-9, not B45-000123.
        let e = F.entitlement().applying(pending)
        #expect(e.batteriesOut == ["B45-9"] && e.swapsUsed == 13 && abs(e.energyUsedKWh - 28.08) < 1e-9)
    }

    @Test func energyFormula() {
        #expect(swapEnergyKWh(remainingOutAh: 45, remainingInAh: 0, family: .mobbat45) == 2.16)
        #expect(swapEnergyKWh(remainingOutAh: 10, remainingInAh: 20, family: .mobbat45) == 0)
        #expect(swapEnergyKWh(remainingOutAh: 44.41, remainingInAh: 4.0, family: .mobbat45) == 1.94)
        #expect(swapEnergyKWh(remainingOutAh: 100, remainingInAh: 10, family: .mobbat100) == 5.4)
    }

    /// Property: for random plans and stations, the decision accepts exactly when no rule is violated,
    /// a refusal names a violated rule, and an accepted plan's slots satisfy the rules.
    @Test func decisionPropertyAgainstAnOracle() throws {
        var rng = SplitMix64(state: 20_261_122)
        let families = ["MOBBAT-30AH", "MOBBAT-45AH", "MOBBAT-100AH", "MOBBAT-XX"]
        var accepted = 0, refusedBy: [SwapRefusalCode: Int] = [:]
        for _ in 0 ..< 3000 {
            let status: Entitlement.Status = [.active, .active, .active, .restricted, .inactive].randomElement(using: &rng)!
            let outCount = Int.random(in: 0 ... 2, using: &rng)
            let e = F.entitlement(status: status, quota: [-1, 10, 60].randomElement(using: &rng)!, used: Int.random(in: 0 ... 70, using: &rng),
                                  energyQuota: [-1, 50, 129.6].randomElement(using: &rng)!, energyUsed: Double.random(in: 0 ... 140, using: &rng),
                                  overage: Bool.random(using: &rng), maxBatteries: Int.random(in: 0 ... 2, using: &rng),
                                  out: (0 ..< outCount).map { "B-\($0)" }, network: Bool.random(using: &rng) ? "NET" : "X",
                                  family: families.randomElement(using: &rng)!, from: Double.random(in: -90_000 ... 10_000, using: &rng),
                                  until: Double.random(in: -10_000 ... 90_000, using: &rng))
            var slots: [SlotStatus] = []
            var ready: Set<Int> = []
            for n in 1 ... 6 {
                switch Int.random(in: 0 ... 3, using: &rng) {
                case 0: slots.append(Fixture.status(n, Fixture.slot(state: 0b0100_0110)))
                default:
                    let fam = UInt16.random(in: 1 ... 3, using: &rng)
                    slots.append(Fixture.status(n, Fixture.slot(id: "B\(n)", soc: UInt16.random(in: 100 ... 1000, using: &rng), family: fam)))
                    if Bool.random(using: &rng) { ready.insert(n) }
                }
            }
            let snap = Fixture.snapshot(slots)
            let syncAge = Double.random(in: 0 ... 100 * 3600, using: &rng)
            let r = F.decide([e], sync: F.now.addingTimeInterval(-syncAge), station: (snap, ready))

            // The oracle: every violated rule, computed independently.
            var violated: Set<SwapRefusalCode> = []
            if syncAge > 72 * 3600 { violated.insert(.cacheTooStale) }
            let kind: SwapKind? = status == .inactive ? nil : status == .restricted ? (outCount > 0 ? .returnOnly : nil) : (outCount == 0 ? .firstIssue : .exchange)
            if kind == nil { violated.insert(.inactive) }
            if !(e.validFrom <= F.now && F.now < e.validUntil) { violated.insert(.outsideValidity) }
            if e.networkCode != "NET" { violated.insert(.notInNetwork) }
            let fam = BatteryFamily(name: e.batteryFamily)
            let readyOfFamily = slots.filter { ready.contains($0.number) && fam != nil && $0.bms?.family == fam }
            let empties = slots.filter { $0.isEmpty }
            if let kind, kind != .returnOnly {
                if (e.swapQuota != -1 && !e.overageAllowed && e.swapsUsed >= e.swapQuota)
                    || (e.energyQuotaKWh != -1 && !e.overageAllowed && e.energyUsedKWh >= e.energyQuotaKWh) { violated.insert(.quotaExhausted) }
                if (kind == .firstIssue ? outCount + 1 : outCount) > e.maxBatteries { violated.insert(.custodyLimit) }
                if readyOfFamily.isEmpty { violated.insert(.noReadyBattery) }
            }
            if let kind, kind != .firstIssue, empties.isEmpty { violated.insert(.noEmptySlot) }

            switch r {
            case .success: accepted += 1
            case let .failure(f): refusedBy[f.code, default: 0] += 1
            }
            switch r {
            case let .success(plan):
                #expect(violated.isEmpty, "accepted despite \(violated)")
                if let s = plan.issueSlot {
                    #expect(ready.contains(s))
                    #expect(readyOfFamily.allSatisfy { $0.bms!.socPercent <= snap.slot(s)!.bms!.socPercent })
                }
                if let s = plan.returnSlot { #expect(snap.slot(s)!.isEmpty) }
            case let .failure(f):
                #expect(violated.contains(f.code), "refused \(f.code) but violated \(violated)")
            }
        }
        // The generator must reach both outcomes and most codes, or the property proves little.
        #expect(accepted > 50, "accepted \(accepted)")
        #expect(refusedBy.keys.count >= 8, "\(refusedBy)")
    }
}
