/// What the station can hand out: the retained `inventory` message of the ABS contract.
public struct Inventory: Sendable, Codable, Hashable {
    public var ready = 0
    public var charging = 0
    public var empty = 0
    public var faulty = 0
    public var outOfService = 0
    /// Slots the gateway cannot currently read (stale): counted apart, never as ready.
    public var unknown = 0
    /// Ready batteries per family name (e.g. "MOBBAT-45AH").
    public var readyByFamily: [String: Int] = [:]
    /// The same counts per cabinet (configured id), when the snapshot's slots carry their cabinet.
    public var byCabinet: [String: Inventory] = [:]
    public init() {}

    /// Each slot lands in exactly one class, checked in this order: out of service, unknown (stale),
    /// faulty (slot fault, quarantined battery, bad BMS data), empty, ready, charging (present, not ready).
    public static func of(_ snapshot: StationSnapshot, quarantined: Set<Int>, policy: BatteryPolicy) -> Inventory {
        var inv = count(snapshot.slots, snapshot, quarantined, policy)
        let ids = snapshot.cabinets.map(\.id)
        if !ids.isEmpty {
            for id in ids { inv.byCabinet[id] = count(snapshot.slots.filter { $0.cabinet == id }, snapshot, quarantined, policy) }
        }
        return inv
    }

    static func count(_ slots: [SlotStatus], _ snapshot: StationSnapshot, _ quarantined: Set<Int>, _ policy: BatteryPolicy) -> Inventory {
        var inv = Inventory()
        for slot in slots {
            if !slot.inService { inv.outOfService += 1; continue }
            if snapshot.cabinetStale || slot.stale { inv.unknown += 1; continue }
            if slot.faulted || quarantined.contains(slot.number) || slot.bmsError != nil { inv.faulty += 1; continue }
            if !slot.batteryPresent { inv.empty += 1; continue }
            if policy.isReady(slot, quarantined: false, cabinetStale: false), let bms = slot.bms {
                inv.ready += 1
                inv.readyByFamily[bms.family.name, default: 0] += 1
            } else {
                inv.charging += 1
            }
        }
        return inv
    }
}
