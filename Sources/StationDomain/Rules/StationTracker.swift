/// Turns successive snapshots of the cabinet into `StationChange`s, and keeps the state that needs
/// memory: the last good reading of each slot, charging start times and the quarantine set.
///
/// Pure: no clock, no I/O. The caller passes the time of each reading.
public struct StationTracker: Sendable {
    public private(set) var policy: BatteryPolicy
    /// The last snapshot applied.
    public private(set) var current: StationSnapshot?
    /// Last fresh reading of each slot (by number), kept through staleness so that a slot that comes back
    /// is compared with what it held before.
    private var lastGood: [Int: SlotStatus] = [:]
    private var lastCabinet: CabinetInfo?
    private var chargingSince: [Int: Int64] = [:]
    /// Quarantined slots and their reasons.
    public private(set) var quarantine: [Int: [QuarantineReason]] = [:]
    /// Slots whose door is open, with the `authorised` flag of that opening, so that its close carries the
    /// same flag — also after a restart (the gateway stores this with the station's state).
    public private(set) var openDoors: [Int: Bool] = [:]

    public init(policy: BatteryPolicy = BatteryPolicy()) { self.policy = policy }

    public var quarantinedSlots: Set<Int> { Set(quarantine.keys) }

    /// Starts from what the gateway last recorded before it stopped, so a restart reports only what changed
    /// while it was down (a battery taken, a controller reboot), not every battery again.
    /// `openDoors`: the authorisation of the doors that were open then (nil from a state stored before it was kept).
    public mutating func seed(_ snapshot: StationSnapshot, quarantine: [Int: [QuarantineReason]], openDoors: [Int: Bool]? = nil) {
        lastCabinet = snapshot.cabinet
        for slot in snapshot.slots where !slot.stale { lastGood[slot.number] = slot }
        self.quarantine = quarantine
        self.openDoors = openDoors ?? [:]
    }

    public func inventory() -> Inventory? {
        current.map { Inventory.of($0, quarantined: quarantinedSlots, policy: policy) }
    }

    /// Whether the battery in `slot` may be handed out now.
    public func isReady(_ slot: SlotStatus) -> Bool {
        policy.isReady(slot, quarantined: quarantine[slot.number] != nil, cabinetStale: current?.cabinetStale ?? true)
    }

    /// Applies a new reading. `rebooted` says the controller's RAM counters restarted (uptime fell), so
    /// door and insert counters are not compared across it.
    /// `unlockedByGateway`: slots this gateway released by command; a door opened on them is authorised
    /// even when the release, the opening and the re-lock all happened between two polls.
    public mutating func apply(_ snapshot: StationSnapshot, at millis: Int64, unlockedByGateway: Set<Int> = []) -> [StationChange] {
        var changes: [StationChange] = []
        let previous = current
        defer { current = snapshot }

        // Cabinet.
        if snapshot.cabinetStale {
            if previous.map({ !$0.cabinetStale }) ?? false {
                changes.append(.cabinetStale(reason: "cabinet not answering"))
            }
            return changes
        }
        var rebooted = false
        if let cab = snapshot.cabinet {
            if previous?.cabinetStale ?? true {
                changes.append(.cabinetOnline(serial: cab.serial, firmware: cab.firmwareVersion, slotCount: cab.slotCount))
            }
            if let old = lastCabinet {
                if cab.uptimeSeconds < old.uptimeSeconds {
                    rebooted = true
                    changes.append(.cabinetRebooted(oldUptime: old.uptimeSeconds, newUptime: cab.uptimeSeconds))
                }
                let oldAlarms = old.flags.intersection(CabinetFlags.alarms)
                let newAlarms = cab.flags.intersection(CabinetFlags.alarms)
                let lostMains = old.flags.contains(.mainsOK) && !cab.flags.contains(.mainsOK)
                if oldAlarms != newAlarms || lostMains {
                    changes.append(.cabinetAlarm(raised: newAlarms.subtracting(oldAlarms),
                                                 cleared: oldAlarms.subtracting(newAlarms), flags: cab.flags))
                }
                if old.safeMode != cab.safeMode { changes.append(.safeModeChanged(active: cab.safeMode)) }
            } else {
                if !cab.flags.intersection(CabinetFlags.alarms).isEmpty {
                    changes.append(.cabinetAlarm(raised: cab.flags.intersection(CabinetFlags.alarms), cleared: [],
                                                 flags: cab.flags))
                }
                if cab.safeMode { changes.append(.safeModeChanged(active: true)) }
            }
            lastCabinet = cab
        }

        // Slots.
        for slot in snapshot.slots {
            let n = slot.number
            let before = previous?.slot(n)
            if slot.stale {
                if !(before?.stale ?? false) { changes.append(.slotStale(slot: n)) }
                continue
            }
            if before?.stale ?? false { changes.append(.slotFresh(slot: n)) }
            if let err = slot.bmsError, err != lastGood[n]?.bmsError {
                changes.append(.slotDataError(slot: n, reason: err))
            }
            if let old = lastGood[n] {
                let slotChanges = Self.diff(old, slot, countersComparable: !rebooted, unlocked: unlockedByGateway.contains(n),
                                            openAuthorised: openDoors[n])
                for change in slotChanges {
                    switch change {
                    case let .doorOpened(_, authorised): openDoors[n] = authorised
                    case .doorClosed: openDoors[n] = nil
                    default: break
                    }
                }
                changes += slotChanges
            } else if slot.batteryPresent {
                // First sight of a slot: report what it holds so ABS's view starts complete.
                changes.append(.batteryInserted(slot: n, battery: slot.bms))
                if slot.fault != .none { changes.append(.slotFault(slot: n, fault: slot.fault)) }
            } else if slot.fault != .none {
                changes.append(.slotFault(slot: n, fault: slot.fault))
            }
            changes += trackCharging(before: lastGood[n], after: slot, at: millis)
            changes += trackQuarantine(before: lastGood[n], after: slot)
            lastGood[n] = slot
        }
        return changes
    }

    /// The changes between two fresh readings of one slot, in the order they happened physically
    /// as far as the counters tell: door opened, battery out, battery in, door closed.
    ///
    /// Every opening gets its close, in order, even when the door closed and opened again between the two
    /// readings (`door_open_count` says how often it opened). `openAuthorised`: the flag of the opening that a
    /// door seen open in `old` belongs to; when unknown (first seen open), the opening is authorised only if the
    /// lock was released or this gateway unlocked the slot — a door found open behind an engaged lock was forced.
    static func diff(_ old: SlotStatus, _ new: SlotStatus, countersComparable: Bool, unlocked: Bool = false,
                     openAuthorised: Bool? = nil) -> [StationChange] {
        let n = new.number
        var changes: [StationChange] = []
        // Door cycles: the door-open counter catches an open-and-close between two polls.
        var opens = 0
        if countersComparable {
            let delta = Int(new.doorOpenCount &- old.doorOpenCount)
            opens = delta <= 1000 ? delta : 0   // a jump that large is a counter reset, not a thousand opens
        }
        let wasUnlocked = !old.locked || unlocked
        let previousOpening = openAuthorised ?? wasUnlocked
        if opens == 0 && old.doorClosed && !new.doorClosed { opens = 1 }
        let closesAtEnd = new.doorClosed
        if opens > 0 {
            // The door seen open last time closed before it opened again.
            if !old.doorClosed { changes.append(.doorClosed(slot: n, authorised: previousOpening)) }
            // Every open but the last was followed by a close; the last one closed if the door is shut now.
            for _ in 0 ..< opens - 1 {
                changes.append(.doorOpened(slot: n, wasUnlocked: wasUnlocked))
                changes.append(.doorClosed(slot: n, authorised: wasUnlocked))
            }
            changes.append(.doorOpened(slot: n, wasUnlocked: wasUnlocked))
        }

        // Battery: present → absent, absent → present, or another battery (or the same one re-inserted).
        let insertDelta = countersComparable ? Int(new.insertCount &- old.insertCount) : 0
        let oldID = old.bms?.batteryID, newID = new.bms?.batteryID
        switch (old.batteryPresent, new.batteryPresent) {
        case (true, false):
            changes.append(.batteryRemoved(slot: n, battery: old.bms))
        case (false, true):
            changes.append(.batteryInserted(slot: n, battery: new.bms))
        case (true, true):
            let swapped = (oldID != nil && newID != nil && oldID != newID) || (insertDelta > 0 && insertDelta <= 1000)
            if swapped {
                changes.append(.batteryRemoved(slot: n, battery: old.bms))
                changes.append(.batteryInserted(slot: n, battery: new.bms))
            } else if oldID == nil, newID != nil {
                // The BMS link came up after insertion: the battery's identity is known only now.
                changes.append(.batteryInserted(slot: n, battery: new.bms))
            }
        case (false, false):
            if insertDelta > 0 && insertDelta <= 1000 {
                // Inserted and taken out again between two polls.
                changes.append(.batteryInserted(slot: n, battery: nil))
                changes.append(.batteryRemoved(slot: n, battery: nil))
            }
        }

        if opens > 0 && closesAtEnd { changes.append(.doorClosed(slot: n, authorised: wasUnlocked)) }
        if opens == 0 && !old.doorClosed && new.doorClosed { changes.append(.doorClosed(slot: n, authorised: previousOpening)) }

        // Faults.
        if old.fault != new.fault {
            if old.fault != .none { changes.append(.slotRecovered(slot: n, fault: old.fault)) }
            if new.fault != .none { changes.append(.slotFault(slot: n, fault: new.fault)) }
        }
        if old.inService != new.inService { changes.append(.slotServiceChanged(slot: n, inService: new.inService)) }

        // BMS alarm bits that rose, for the same battery.
        if let o = old.bms, let b = new.bms, o.batteryID == b.batteryID {
            let p = b.protection.subtracting(o.protection), w = b.warning.subtracting(o.warning)
            if !p.isEmpty || !w.isEmpty {
                changes.append(.batteryAlarm(slot: n, batteryID: b.batteryID, protectionRaised: p, warningRaised: w))
            }
        } else if old.bms?.batteryID != new.bms?.batteryID, let b = new.bms, !(b.protection.isEmpty && b.warning.isEmpty) {
            changes.append(.batteryAlarm(slot: n, batteryID: b.batteryID, protectionRaised: b.protection,
                                         warningRaised: b.warning))
        }
        return changes
    }

    private mutating func trackCharging(before: SlotStatus?, after: SlotStatus, at millis: Int64) -> [StationChange] {
        let n = after.number
        if !after.batteryPresent { chargingSince[n] = nil; return [] }
        if after.charging, chargingSince[n] == nil { chargingSince[n] = millis }
        // First sight of a slot: a battery already full was not charged while we watched.
        guard before != nil else { return [] }
        let sameBattery = before?.bms?.batteryID == after.bms?.batteryID && before?.batteryPresent == true
        if after.chargeComplete, let bms = after.bms, !(sameBattery && before?.chargeComplete == true) {
            let minutes = chargingSince[n].map { Double(millis - $0) / 60_000 }
            chargingSince[n] = nil
            return [.batteryCharged(slot: n, battery: bms, minutesOnCharge: minutes)]
        }
        return []
    }

    private mutating func trackQuarantine(before: SlotStatus?, after: SlotStatus) -> [StationChange] {
        let n = after.number
        guard after.batteryPresent, let bms = after.bms else {
            // Battery gone (or its data unusable): a removed battery leaves quarantine with it.
            if !after.batteryPresent { quarantine[n] = nil }
            return []
        }
        if quarantine[n] != nil, before?.bms?.batteryID != bms.batteryID {
            quarantine[n] = nil   // another battery now: the old one's quarantine went with it
        }
        let wasHot = quarantine[n]?.contains(.overTemperature) ?? false
        let reasons = policy.quarantineReasons(bms, wasOverTemperature: wasHot)
        let prior = quarantine[n]
        if reasons.isEmpty {
            if let prior {
                quarantine[n] = nil
                return [.batteryReleased(slot: n, batteryID: bms.batteryID, reasons: prior)]
            }
            return []
        }
        quarantine[n] = reasons
        if prior == nil { return [.batteryQuarantined(slot: n, batteryID: bms.batteryID, reasons: reasons)] }
        return []
    }
}
