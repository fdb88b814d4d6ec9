#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The kind of swap, decided at acceptance from the rider's custody and plan status.
public enum SwapKind: String, Sendable, Codable, Hashable {
    /// Return one battery, take one (the usual swap).
    case exchange
    /// The rider holds no battery: take one (the first issue after the deposit).
    case firstIssue = "first_issue"
    /// A `restricted` rider: return only, no usage.
    case returnOnly = "return_only"
}

/// Where a swap stands. Every transition is written durably before the door it leads to is unlocked.
public enum SwapStage: String, Sendable, Codable, Hashable, CaseIterable {
    /// Recorded; the return slot (or, for a first issue, the issue slot) is about to be unlocked.
    case accepted
    /// The return slot is unlocked; waiting for the rider to put a battery in and close the door.
    case awaitingReturn = "awaiting_return"
    /// The returned battery was refused; its slot is unlocked again so the rider can take it back.
    case returnRefused = "return_refused"
    /// The return was verified; the issue slot is unlocked; waiting for the rider to take the battery.
    case awaitingPickup = "awaiting_pickup"
    // Final stages.
    /// A battery was issued (and one returned, unless a first issue): billed once.
    case completed
    /// A battery came back and none was issued (a restricted rider's one-way return, pickup timeout,
    /// power loss or a fault before the issue): custody updated, no usage, published `swap.returned`.
    case returnedWithoutIssue = "returned_without_issue"
    case aborted

    public var isFinal: Bool { self == .completed || self == .returnedWithoutIssue || self == .aborted }
}

/// A battery as the swap saw it, at the moment it mattered.
public struct SwapBattery: Sendable, Codable, Hashable {
    public var id: String
    public var family: BatteryFamily
    public var socPercent: Double
    public var remainingCapacityAh: Double
    public var slot: Int
    public init(id: String, family: BatteryFamily, socPercent: Double, remainingCapacityAh: Double, slot: Int) {
        self.id = id; self.family = family; self.socPercent = socPercent
        self.remainingCapacityAh = remainingCapacityAh; self.slot = slot
    }
    public init(_ bms: BMSReading, slot: Int) {
        self.init(id: bms.batteryID, family: bms.family, socPercent: bms.socPercent,
                  remainingCapacityAh: bms.remainingCapacityAh, slot: slot)
    }
}

/// One swap, as stored (table `swap`). The swap in progress is the one whose stage is not final.
public struct SwapRecord: Sendable, Codable, Hashable {
    public var swapID: String
    public var requestID: String
    public var customerID: String
    public var planInstanceID: String
    public var subscriptionRef: String
    public var kind: SwapKind
    public var stage: SwapStage
    public var returnSlot: Int?
    public var issueSlot: Int?
    /// The battery family the rider is entitled to.
    public var family: BatteryFamily
    public var returned: SwapBattery?
    public var issued: SwapBattery?
    /// Command sequence numbers used for this swap's unlocks, recorded before each write so that a
    /// restart re-sends the same seq (the controller executes a seq once) instead of unlocking twice.
    public var returnUnlockSeq: UInt16?
    public var issueUnlockSeq: UInt16?
    public var refusedUnlockSeq: UInt16?
    /// Decided from the cache without a live link to ABS.
    public var recordedOffline: Bool
    public var acceptedAt: Date
    public var updatedAt: Date
    public var finishedAt: Date?
    /// Why the swap ended without a completion: the reason of `swap.aborted` or `swap.returned`.
    public var abortReason: String?
    /// For a final stage other than `.completed`: the stage the swap was really in when it ended
    /// (named by `swap.aborted` and `swap.returned`). nil in records written before it existed.
    public var stageReached: SwapStage?
    public var energyKWh: Double?

    public init(swapID: String, requestID: String, customerID: String, planInstanceID: String, subscriptionRef: String,
                kind: SwapKind, stage: SwapStage = .accepted, returnSlot: Int?, issueSlot: Int?, family: BatteryFamily,
                recordedOffline: Bool, acceptedAt: Date) {
        self.swapID = swapID; self.requestID = requestID; self.customerID = customerID; self.planInstanceID = planInstanceID
        self.subscriptionRef = subscriptionRef; self.kind = kind; self.stage = stage; self.returnSlot = returnSlot
        self.issueSlot = issueSlot; self.family = family; self.recordedOffline = recordedOffline
        self.acceptedAt = acceptedAt; self.updatedAt = acceptedAt
    }
}

/// A completed swap whose usage and custody change ABS may not have counted yet. Kept until ABS sends
/// the plan's record built after it received the swap's `swap.completed` event (see docs/swaps.md).
public struct PendingLocalSwap: Sendable, Codable, Hashable {
    public var swapID: String
    public var planInstanceID: String
    public var swaps: Int
    public var energyKWh: Double
    public var returnedBatteryID: String?
    public var issuedBatteryID: String?
    public var completedAt: Date
    public init(swapID: String, planInstanceID: String, swaps: Int, energyKWh: Double, returnedBatteryID: String?,
                issuedBatteryID: String?, completedAt: Date) {
        self.swapID = swapID; self.planInstanceID = planInstanceID; self.swaps = swaps; self.energyKWh = energyKWh
        self.returnedBatteryID = returnedBatteryID; self.issuedBatteryID = issuedBatteryID; self.completedAt = completedAt
    }
}

extension Entitlement {
    /// The record as the station must see it: ABS's copy plus what the station did that ABS has not counted.
    public func applying(_ pending: [PendingLocalSwap]) -> Entitlement {
        var e = self
        for p in pending where p.planInstanceID == planInstanceID {
            e.swapsUsed += p.swaps
            e.energyUsedKWh += p.energyKWh
            if let r = p.returnedBatteryID { e.batteriesOut.removeAll { $0 == r } }
            if let i = p.issuedBatteryID, !e.batteriesOut.contains(i) { e.batteriesOut.append(i) }
        }
        return e
    }
}
