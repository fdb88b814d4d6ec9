#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Timeouts of a swap (entitlements.md step 5), seconds.
public struct SwapTimeouts: Sendable, Hashable {
    public var returnTimeout: Double = 120
    public var pickupTimeout: Double = 60
    /// How long a returned battery may take to show its BMS after the door closed.
    public var verifyTimeout: Double = 10
    /// After a stage's timeout, how long an open door is waited for before giving up on it.
    public var openDoorGrace: Double = 300
    public init() {}
    public init(returnTimeout: Double, pickupTimeout: Double, verifyTimeout: Double = 10, openDoorGrace: Double = 300) {
        self.returnTimeout = returnTimeout; self.pickupTimeout = pickupTimeout
        self.verifyTimeout = verifyTimeout; self.openDoorGrace = openDoorGrace
    }
}

/// What the coordinator must do next. The machine never acts itself.
public enum SwapAction: Sendable, Hashable {
    /// Record the new stage durably, THEN unlock `slot` (for `seconds` before it re-locks if never opened).
    case unlock(slot: Int, seconds: Int)
    /// Record the final outcome (one transaction) and forget the swap.
    case finish(SwapOutcome)
}

/// Why a battery came back and none was issued (`swap.returned`'s `reason`, abs-mqtt.md 1.1).
public enum ReturnReason: String, Sendable, Codable, Hashable {
    /// A `restricted` rider's one-way return.
    case restricted
    /// The issue door was unlocked, the battery not taken (door closed with it inside, or the timeout).
    case pickupTimeout = "pickup timeout"
    /// The station restarted before the issued battery was taken (or before the issue door opened).
    case powerLoss = "power loss"
    /// The issue door could not be unlocked (the cabinet refused or did not answer). The contract lists
    /// restricted, pickup timeout and power loss; this one is the station's own (docs/swaps.md).
    case fault
}

public enum SwapOutcome: Sendable, Hashable {
    case completed(returned: SwapBattery?, issued: SwapBattery, energyKWh: Double)
    /// A battery came back and none was issued: custody changes, no usage (`swap.returned`). `stage`:
    /// the stage the swap was really in when it ended.
    case returnedWithoutIssue(returned: SwapBattery, stage: SwapStage, reason: ReturnReason)
    /// Nothing changed hands (`swap.aborted`); `stage`: the stage the swap was really in.
    case aborted(stage: SwapStage, reason: String)
}

/// The swap, step by step (entitlements.md "The swap, step by step"), as a pure state machine.
///
/// Level-triggered: `observe` looks at the current reading of the swap's slots every time the station
/// changes (and `tick` at timeouts), so a missed edge cannot strand a swap. Each unlock is emitted once,
/// on entering its stage; the coordinator records the stage before it writes the unlock.
public struct SwapMachine: Sendable {
    public private(set) var record: SwapRecord
    public let batteriesOut: [String]
    public let timeouts: SwapTimeouts
    /// Door-open counter of the slot at the moment its unlock was issued: a door cycle since then
    /// means the rider acted.
    private var doorBase: [Int: UInt16] = [:]
    private var stageSince: Date
    private var closedWithBatteryAt: Date?

    public init(record: SwapRecord, batteriesOut: [String], timeouts: SwapTimeouts, now: Date) {
        self.record = record
        self.batteriesOut = batteriesOut
        self.timeouts = timeouts
        self.stageSince = now
    }

    /// Starts an accepted swap: unlocks the return slot, or the issue slot for a first issue.
    public mutating func start(_ snapshot: StationSnapshot, now: Date) -> [SwapAction] {
        precondition(record.stage == .accepted)
        if record.kind == .firstIssue, let issue = record.issueSlot {
            return enter(.awaitingPickup, unlocking: issue, snapshot, now, seconds: timeouts.pickupTimeout)
        }
        guard let ret = record.returnSlot else { return finish(.aborted(stage: .accepted, reason: "fault: no return slot"), now) }
        return enter(.awaitingReturn, unlocking: ret, snapshot, now, seconds: timeouts.returnTimeout)
    }

    /// Re-evaluates the swap against the station's current reading.
    public mutating func observe(_ snapshot: StationSnapshot, now: Date) -> [SwapAction] {
        switch record.stage {
        case .awaitingReturn: return observeReturn(snapshot, now)
        case .returnRefused: return observeRefused(snapshot, now)
        case .awaitingPickup: return observePickup(snapshot, now)
        case .accepted, .completed, .returnedWithoutIssue, .aborted: return []
        }
    }

    /// The next instant after `now` at which `observe` may act with no change in the cabinet (a stage's
    /// timeout, its open-door grace, the returned battery's verify timeout); nil when no timeout is left.
    /// The coordinator sleeps until the nearest one or the next change (docs/swaps.md "Driving swaps").
    public func nextDeadline(after now: Date) -> Date? {
        let limit: Double
        switch record.stage {
        case .awaitingReturn, .returnRefused: limit = timeouts.returnTimeout
        case .awaitingPickup: limit = timeouts.pickupTimeout
        case .accepted, .completed, .returnedWithoutIssue, .aborted: return nil
        }
        var candidates = [stageSince.addingTimeInterval(limit), stageSince.addingTimeInterval(limit + timeouts.openDoorGrace)]
        if record.stage == .awaitingReturn, let closed = closedWithBatteryAt { candidates.append(closed.addingTimeInterval(timeouts.verifyTimeout)) }
        return candidates.filter { $0 > now }.min()
    }

    /// Records the command seq of the current stage's unlock (stored before the unlock is written, so a
    /// restart or a retry re-sends the same seq, which the controller executes once).
    public mutating func assignUnlockSeq(_ seq: UInt16) {
        switch record.stage {
        case .awaitingPickup: record.issueUnlockSeq = seq
        case .returnRefused: record.refusedUnlockSeq = seq
        default: record.returnUnlockSeq = seq
        }
    }

    /// The unlock command for the current stage failed (lock jammed, refused, cabinet gone).
    public mutating func unlockFailed(reason: String, now: Date) -> [SwapAction] {
        switch record.stage {
        case .awaitingPickup where record.returned != nil:
            // The return was accepted; nothing can be issued: the rider keeps no battery of ours, custody shows it.
            return finish(.returnedWithoutIssue(returned: record.returned!, stage: .awaitingPickup, reason: .fault), now)
        default:
            return finish(.aborted(stage: record.stage, reason: "fault: \(reason)"), now)
        }
    }

    // MARK: Stages

    private mutating func observeReturn(_ snapshot: StationSnapshot, _ now: Date) -> [SwapAction] {
        guard let n = record.returnSlot, let slot = snapshot.slot(n), snapshot.isUsable(slot) else {
            return timedOut(timeouts.returnTimeout + timeouts.openDoorGrace, now)
                ? finish(.aborted(stage: .awaitingReturn, reason: "fault: return slot unreadable"), now) : []
        }
        let cycled = slot.doorOpenCount != doorBase[n]
        if slot.doorClosed && cycled {
            guard slot.batteryPresent else {
                return finish(.aborted(stage: .awaitingReturn, reason: "return timeout: door closed with nothing returned"), now)
            }
            guard let bms = slot.bms else {
                if closedWithBatteryAt == nil { closedWithBatteryAt = now }
                if now.timeIntervalSince(closedWithBatteryAt!) < timeouts.verifyTimeout { return [] }
                return refuseReturn(slot, snapshot, now, why: "the returned battery's BMS does not answer")
            }
            if let why = verify(bms) { return refuseReturn(slot, snapshot, now, why: why) }
            record.returned = SwapBattery(bms, slot: n)
            if record.kind == .returnOnly {
                return finish(.returnedWithoutIssue(returned: record.returned!, stage: .awaitingReturn, reason: .restricted), now)
            }
            guard let issue = record.issueSlot else {
                return finish(.returnedWithoutIssue(returned: record.returned!, stage: .awaitingReturn, reason: .fault), now)
            }
            return enter(.awaitingPickup, unlocking: issue, snapshot, now, seconds: timeouts.pickupTimeout)
        }
        if timedOut(timeouts.returnTimeout, now) && slot.doorClosed {
            return finish(.aborted(stage: .awaitingReturn, reason: "return timeout"), now)
        }
        if timedOut(timeouts.returnTimeout + timeouts.openDoorGrace, now) {
            return finish(.aborted(stage: .awaitingReturn, reason: "return timeout: door left open"), now)
        }
        return []
    }

    private mutating func observeRefused(_ snapshot: StationSnapshot, _ now: Date) -> [SwapAction] {
        guard let n = record.returnSlot, let slot = snapshot.slot(n), snapshot.isUsable(slot) else {
            return timedOut(timeouts.returnTimeout + timeouts.openDoorGrace, now)
                ? finish(.aborted(stage: .returnRefused, reason: "returned battery refused"), now) : []
        }
        let cycled = slot.doorOpenCount != doorBase[n]
        if slot.doorClosed && (cycled || timedOut(timeouts.returnTimeout, now)) {
            let left = slot.batteryPresent ? " (battery left in slot \(n))" : ""
            return finish(.aborted(stage: .returnRefused, reason: "returned battery refused\(left)"), now)
        }
        if timedOut(timeouts.returnTimeout + timeouts.openDoorGrace, now) {
            return finish(.aborted(stage: .returnRefused, reason: "returned battery refused (door left open)"), now)
        }
        return []
    }

    private mutating func observePickup(_ snapshot: StationSnapshot, _ now: Date) -> [SwapAction] {
        guard let n = record.issueSlot, let slot = snapshot.slot(n), snapshot.isUsable(slot) else {
            return timedOut(timeouts.pickupTimeout + timeouts.openDoorGrace, now) ? notTaken(now, reason: "issue slot unreadable") : []
        }
        let cycled = slot.doorOpenCount != doorBase[n]
        if slot.doorClosed && cycled {
            if !slot.batteryPresent, let issued = record.issued {
                return finish(.completed(returned: record.returned, issued: issued,
                                         energyKWh: swapEnergyKWh(remainingOutAh: issued.remainingCapacityAh,
                                                                  remainingInAh: record.returned?.remainingCapacityAh ?? 0,
                                                                  family: issued.family)), now)
            }
            return notTaken(now, reason: "door closed with the battery still inside")
        }
        if timedOut(timeouts.pickupTimeout, now) && slot.doorClosed { return notTaken(now, reason: "pickup timeout") }
        if timedOut(timeouts.pickupTimeout + timeouts.openDoorGrace, now) {
            // The door is still open: the battery's fate is decided by what the slot holds.
            if !slot.batteryPresent, let issued = record.issued {
                return finish(.completed(returned: record.returned, issued: issued,
                                         energyKWh: swapEnergyKWh(remainingOutAh: issued.remainingCapacityAh,
                                                                  remainingInAh: record.returned?.remainingCapacityAh ?? 0,
                                                                  family: issued.family)), now)
            }
            return notTaken(now, reason: "pickup timeout: door left open")
        }
        return []
    }

    private mutating func notTaken(_ now: Date, reason: String) -> [SwapAction] {
        if let r = record.returned { return finish(.returnedWithoutIssue(returned: r, stage: .awaitingPickup, reason: .pickupTimeout), now) }
        return finish(.aborted(stage: .awaitingPickup, reason: reason), now)
    }

    /// A returned battery must be of the fleet and the plan's family; a rider who holds batteries must
    /// return one of them.
    func verify(_ bms: BMSReading) -> String? {
        if bms.family == .unknown { return "battery \(bms.batteryID) is of an unknown family (not of the fleet)" }
        if bms.family != record.family { return "battery \(bms.batteryID) is \(bms.family.name), the plan is for \(record.family.name)" }
        if !batteriesOut.isEmpty && !batteriesOut.contains(bms.batteryID) {
            return "battery \(bms.batteryID) is not one the rider holds (\(batteriesOut.joined(separator: ", ")))"
        }
        return nil
    }

    private mutating func refuseReturn(_ slot: SlotStatus, _ snapshot: StationSnapshot, _ now: Date, why: String) -> [SwapAction] {
        record.abortReason = why
        return enter(.returnRefused, unlocking: slot.number, snapshot, now, seconds: timeouts.returnTimeout)
    }

    private mutating func enter(_ stage: SwapStage, unlocking slot: Int, _ snapshot: StationSnapshot, _ now: Date,
                                seconds: Double) -> [SwapAction] {
        record.stage = stage
        record.updatedAt = now
        stageSince = now
        closedWithBatteryAt = nil
        doorBase[slot] = snapshot.slot(slot)?.doorOpenCount ?? 0
        if stage == .awaitingPickup, let s = snapshot.slot(slot), let bms = s.bms {
            record.issued = SwapBattery(bms, slot: slot)
        }
        return [.unlock(slot: slot, seconds: Int(seconds.rounded(.up)))]
    }

    private mutating func finish(_ outcome: SwapOutcome, _ now: Date) -> [SwapAction] {
        switch outcome {
        case .completed(_, _, let kwh):
            record.stage = .completed
            record.energyKWh = kwh
        case let .returnedWithoutIssue(_, stage, reason):
            record.stageReached = stage
            record.stage = .returnedWithoutIssue
            record.energyKWh = 0
            record.abortReason = reason.rawValue
        case let .aborted(stage, reason):
            record.stageReached = stage
            record.stage = .aborted
            record.abortReason = reason
        }
        record.updatedAt = now
        record.finishedAt = now
        return [.finish(outcome)]
    }

    private func timedOut(_ seconds: Double, _ now: Date) -> Bool { now.timeIntervalSince(stageSince) >= seconds }

    // MARK: Power loss

    /// After a restart: the only outcome consistent with what the slots hold. Nothing is unlocked again
    /// for a swap that was interrupted: never two batteries for one swap.
    public static func reconcile(_ record: SwapRecord, batteriesOut: [String], snapshot: StationSnapshot) -> SwapOutcome {
        let machine = SwapMachine(record: record, batteriesOut: batteriesOut, timeouts: SwapTimeouts(), now: Date())
        // The returned battery, if the return slot holds a valid one.
        var returned = record.returned
        if returned == nil, record.kind != .firstIssue, let n = record.returnSlot, let slot = snapshot.slot(n),
           snapshot.isUsable(slot), slot.doorClosed, let bms = slot.bms, machine.verify(bms) == nil,
           record.stage == .awaitingReturn || record.stage == .accepted {
            returned = SwapBattery(bms, slot: n)
        }
        switch record.stage {
        case .accepted, .awaitingReturn:
            // A restricted rider's return is what the swap was for; any other return without issue is the power cut's.
            if let r = returned {
                return .returnedWithoutIssue(returned: r, stage: record.stage,
                                             reason: record.kind == .returnOnly ? .restricted : .powerLoss)
            }
            return .aborted(stage: record.stage, reason: "power loss")
        case .returnRefused:
            return .aborted(stage: .returnRefused, reason: "power loss: returned battery refused")
        case .awaitingPickup:
            if let n = record.issueSlot, let slot = snapshot.slot(n), snapshot.isUsable(slot), let issued = record.issued {
                let gone = !slot.batteryPresent || (slot.bms.map { $0.batteryID != issued.id } ?? false)
                if gone {
                    return .completed(returned: returned, issued: issued,
                                      energyKWh: swapEnergyKWh(remainingOutAh: issued.remainingCapacityAh,
                                                               remainingInAh: returned?.remainingCapacityAh ?? 0, family: issued.family))
                }
            }
            if let r = returned { return .returnedWithoutIssue(returned: r, stage: .awaitingPickup, reason: .powerLoss) }
            return .aborted(stage: .awaitingPickup, reason: "power loss: battery not taken")
        case .completed, .returnedWithoutIssue, .aborted:
            return .aborted(stage: record.stage, reason: "already final")
        }
    }

    /// Whether the slots a swap involves can be judged now: fresh readings and closed doors. A rider caught
    /// mid-action by the restart (door open) is waited for, so the outcome matches what the slot finally holds.
    public static func canReconcile(_ record: SwapRecord, snapshot: StationSnapshot) -> Bool {
        let slots: [Int?]
        switch record.stage {
        case .accepted, .awaitingReturn, .returnRefused: slots = [record.returnSlot]
        case .awaitingPickup: slots = [record.issueSlot, record.returnSlot]
        case .completed, .returnedWithoutIssue, .aborted: return true
        }
        for n in slots.compactMap({ $0 }) {
            guard let slot = snapshot.slot(n), snapshot.isUsable(slot), slot.doorClosed else { return false }
        }
        return true
    }

    /// Applies a reconciled outcome to the record (stage, energy, timestamps).
    public static func finalize(_ record: SwapRecord, with outcome: SwapOutcome, now: Date) -> SwapRecord {
        var m = SwapMachine(record: record, batteriesOut: [], timeouts: SwapTimeouts(), now: now)
        if case let .completed(r, i, _) = outcome { m.record.returned = r; m.record.issued = i }
        if case let .returnedWithoutIssue(r, _, _) = outcome { m.record.returned = r }
        _ = m.finish(outcome, now)
        return m.record
    }
}
