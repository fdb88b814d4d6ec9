#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization
import Logging
import ModbusLink
import StationDomain

/// The station's cabinets as one: a `CabinetAcquisition` per configured cabinet (each with its own watchdog,
/// clock sync, reboot resync, stale rule and safe mode), cabinets that share a bus sharing its one `BusOwner`,
/// and the surface the rest of the daemon uses with **station-wide** slot numbers: cabinets in configured
/// order, the first cabinet's slots first (a 16-slot first cabinet → the second cabinet's slot 1 is station
/// slot 17). See docs/acquisition.md, "Several cabinets".
///
/// Numbering needs the slot count of every cabinet before: its `expected_slots` when configured, else the
/// count it reported first (this run, or in the stored station state). Until that is known, the cabinets after
/// it have no slots in the station snapshot (nothing there can be used: fail closed). Once known, a cabinet's
/// span is kept for the run, so a number never moves to another slot.
public final class StationAcquisition: Sendable {
    public let cabinets: [CabinetAcquisition]
    /// Station-level change batches: every cabinet's batches with station-wide numbers and their `cabinet` id.
    public let broadcast = ChangeBroadcast()
    private let logger: Logger
    private let state: Locked<State>

    struct State: Sendable {
        /// Each cabinet's span of station numbers, once known.
        var spans: [Int?]
        /// Each cabinet's latest stored state (its own numbers), seeded from the store.
        var persisted: [PersistedStation?]
        /// Each cabinet's latest inventory, quarantine and open doors (its own numbers).
        var quarantine: [[Int: [QuarantineReason]]]
        var openDoors: [[Int: Bool]]
        /// Batches of cabinets not numbered yet (a cabinet before them has not reported its slot count): held,
        /// in order, until they can be numbered, so that no change (a first sight of a battery) is lost.
        var held: [[ChangeBatch]]
    }

    /// One cabinet per configuration, in order. Cabinets with the same transport (same RTU device, same TCP
    /// host and port) share one bus owner; their timings must agree (the configuration loader checks).
    /// `seed`: the stored station state: its per-cabinet states by id, or an older single-cabinet state (the first
    /// cabinet's).
    public init(configurations: [AcquisitionConfiguration], seed: PersistedStation? = nil,
                logger: Logger = Logger(label: "swapgate.acquisition")) {
        precondition(!configurations.isEmpty, "a station has at least one cabinet")
        var buses: [ModbusTransport: BusOwner] = [:]
        var cabs: [CabinetAcquisition] = []
        var seeds: [PersistedStation?] = []
        for (i, conf) in configurations.enumerated() {
            let bus = buses[conf.transport] ?? BusOwner(transport: conf.transport, timings: conf.timings)
            buses[conf.transport] = bus
            let cabinetSeed: PersistedStation?
            if let byID = seed?.cabinets { cabinetSeed = byID[conf.cabinetID] } else { cabinetSeed = i == 0 ? seed : nil }
            seeds.append(cabinetSeed)
            var l = logger
            if configurations.count > 1 { l[metadataKey: "cabinet"] = "\(conf.cabinetID)" }
            cabs.append(CabinetAcquisition(configuration: conf, bus: bus, seed: cabinetSeed, logger: l))
        }
        self.cabinets = cabs
        self.logger = logger
        let spans: [Int?] = configurations.indices.map { i in
            configurations[i].expectedSlotCount ?? seeds[i].flatMap { $0.snapshot.cabinet?.slotCount }
        }
        state = Locked(State(spans: spans, persisted: seeds,
                                quarantine: seeds.map { $0?.quarantine ?? [:] }, openDoors: seeds.map { $0?.openDoors ?? [:] },
                                held: configurations.map { _ in [] }))
        streams = cabs.map { $0.broadcast.subscribe() }
    }

    private let streams: [AsyncStream<ChangeBatch>]

    /// A station of one cabinet (tests, tools).
    public convenience init(configuration: AcquisitionConfiguration, seed: PersistedStation? = nil,
                            logger: Logger = Logger(label: "swapgate.acquisition")) {
        self.init(configurations: [configuration], seed: seed, logger: logger)
    }

    public var first: CabinetAcquisition { cabinets[0] }

    // MARK: - Running

    /// Runs every cabinet's loop and forwards their batches until cancelled; then finishes the station stream.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            for cab in cabinets { group.addTask { await cab.run() } }
            for (i, stream) in streams.enumerated() {
                group.addTask { [self] in
                    for await batch in stream { forward(batch, from: i) }
                }
            }
        }
        broadcast.finish()
    }

    /// Runs one cycle of every cabinet, in order (tools and tests). True when every cabinet answered.
    @discardableResult
    public func cycle() async -> Bool {
        var ok = true
        for cab in cabinets where !(await cab.cycle()) { ok = false }
        return ok
    }

    // MARK: - Numbering

    struct Layout {
        /// Per cabinet: station number of its first slot and its span; nil span: not numbered.
        var first: [Int]
        var span: [Int?]
    }

    private func layout() -> Layout {
        let snaps = cabinets.map(\.snapshot)
        return state.withLock { s in
            var first: [Int] = [], span: [Int?] = []
            var next = 1
            var known = true
            for i in cabinets.indices {
                if s.spans[i] == nil, let count = snaps[i].cabinet?.slotCount {
                    s.spans[i] = count
                    if i > 0 || cabinets.count > 1 {
                        logger.info("cabinet slot count learned", metadata: ["cabinet": "\(cabinets[i].configuration.cabinetID)", "slots": "\(count)"])
                    }
                }
                first.append(next)
                if known, let n = s.spans[i] { span.append(n); next += n } else { known = false; span.append(nil) }
            }
            return Layout(first: first, span: span)
        }
    }

    /// The cabinet index and local slot of station slot `n`.
    public func locate(_ n: Int) -> (cabinet: Int, slot: Int)? {
        let l = layout()
        for i in cabinets.indices {
            guard let span = l.span[i] else { return nil }
            if n >= l.first[i], n < l.first[i] + span { return (i, n - l.first[i] + 1) }
        }
        return nil
    }

    /// Station slot number of `local` in cabinet `index`, if numbered.
    public func stationSlot(cabinet index: Int, local: Int) -> Int? {
        let l = layout()
        guard let span = l.span[index], local >= 1, local <= span else { return nil }
        return l.first[index] + local - 1
    }

    /// Station slot `n` from a technician's form: "17" (station-wide) or "B/1" (cabinet id / its own slot).
    public func resolve(_ text: String) -> Int? {
        if let n = Int(text) { return locate(n) != nil ? n : nil }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let local = Int(parts[1]),
              let i = cabinets.firstIndex(where: { $0.configuration.cabinetID == parts[0] }) else { return nil }
        return stationSlot(cabinet: i, local: local)
    }

    // MARK: - The station model

    public var snapshot: StationSnapshot { compose(cabinets.map(\.snapshot), layout()) }

    private func compose(_ snaps: [StationSnapshot], _ l: Layout) -> StationSnapshot {
        var out = StationSnapshot()
        out.cabinet = snaps[0].cabinet
        out.meter = snaps.lazy.compactMap(\.meter).first
        out.lastUpdateMillis = snaps.map(\.lastUpdateMillis).max() ?? 0
        out.cabinetStale = snaps.allSatisfy(\.cabinetStale)
        for (i, cab) in cabinets.enumerated() {
            let snap = snaps[i]
            let conf = cab.configuration
            out.cabinets.append(CabinetState(id: conf.cabinetID, unit: Int(conf.unit), info: snap.cabinet,
                                             stale: snap.cabinetStale || snap.cabinet == nil, firstSlot: l.first[i], slotCount: l.span[i] ?? 0))
            guard let span = l.span[i] else { continue }
            let isLast = i == cabinets.count - 1
            for local in 1 ... max(span, 1) where local <= span {
                var slot: SlotStatus
                if let s = snap.slot(local) {
                    slot = s
                } else if isLast && snap.slots.isEmpty {
                    break   // a cabinet not read yet, with nothing after it: no placeholder (as with one cabinet)
                } else {
                    slot = SlotStatus(number: local, stale: true)
                }
                slot.number = l.first[i] + local - 1
                slot.cabinet = conf.cabinetID
                slot.cabinetSlot = local
                if snap.cabinetStale { slot.stale = true }
                out.slots.append(slot)
            }
        }
        return out
    }

    private func mapped<V>(_ byLocal: [[Int: V]], _ l: Layout) -> [Int: V] {
        var out: [Int: V] = [:]
        for (i, m) in byLocal.enumerated() {
            guard let span = l.span[i] else { continue }
            for (k, v) in m where k >= 1 && k <= span { out[l.first[i] + k - 1] = v }
        }
        return out
    }

    public var statistics: AcquisitionStatistics {
        var total = AcquisitionStatistics()
        for s in cabinets.map(\.statistics) {
            total.cycles += s.cycles; total.failedCycles += s.failedCycles; total.requests += s.requests
            total.busErrors += s.busErrors; total.busSeconds += s.busSeconds; total.lastCycleBusSeconds += s.lastCycleBusSeconds
            total.changes += s.changes; total.reboots += s.reboots; total.commands += s.commands
            total.lastError = total.lastError ?? s.lastError
        }
        return total
    }

    /// Each cabinet's statistics, in configured order.
    public var cabinetStatistics: [(id: String, statistics: AcquisitionStatistics)] {
        cabinets.map { ($0.configuration.cabinetID, $0.statistics) }
    }

    public var quarantined: [Int: [QuarantineReason]] {
        get async {
            var q: [[Int: [QuarantineReason]]] = []
            for cab in cabinets { q.append(await cab.quarantined) }
            return mapped(q, layout())
        }
    }

    public var inventory: Inventory? {
        get async {
            var any = false
            for cab in cabinets where await cab.inventory != nil { any = true }
            guard any else { return nil }
            let snap = snapshot
            return Inventory.of(snap, quarantined: Set(await quarantined.keys), policy: cabinets[0].configuration.batteryPolicy)
        }
    }

    public func isReady(slot: Int) async -> Bool {
        guard let (i, local) = locate(slot) else { return false }
        return await cabinets[i].isReady(slot: local)
    }

    public func readySlots() async -> Set<Int> {
        var out: Set<Int> = []
        for (i, cab) in cabinets.enumerated() {
            for local in await cab.readySlots() { if let n = stationSlot(cabinet: i, local: local) { out.insert(n) } }
        }
        return out
    }

    /// Reads the given station slots again in the next cycle of their cabinets (all slots of all cabinets when nil).
    public func requestRefresh(slots: Set<Int>? = nil) async {
        guard let slots else {
            for cab in cabinets { await cab.requestRefresh() }
            return
        }
        var byCabinet: [Int: Set<Int>] = [:]
        for n in slots { if let (i, local) = locate(n) { byCabinet[i, default: []].insert(local) } }
        for (i, locals) in byCabinet { await cabinets[i].requestRefresh(slots: locals) }
    }

    /// Cycles completed by the cabinets holding `slots` (all cabinets when nil): wait for it to move on.
    public func cycles(ofSlots slots: Set<Int>? = nil) -> Int {
        guard let slots else { return statistics.cycles }
        let idx = Set(slots.compactMap { locate($0)?.cabinet })
        return idx.map { cabinets[$0].statistics.cycles }.min() ?? statistics.cycles
    }

    // MARK: - Commands and reads on the bus

    private func cabinet(for slot: Int) throws -> (CabinetAcquisition, Int) {
        guard let (i, local) = locate(slot) else { throw ModbusError.invalidRequest("slot \(slot) is not a slot of this station") }
        return (cabinets[i], local)
    }

    public func execute(_ command: CabinetCommand, slot: Int, param: UInt16 = 0, timeout: Double = 3) async throws -> CommandResult {
        let (cab, local) = try cabinet(for: slot)
        return try await cab.execute(command, slot: local, param: param, timeout: timeout)
    }

    public func execute(_ command: CabinetCommand, slot: Int, seq: UInt16, param: UInt16 = 0, timeout: Double = 3) async throws -> CommandResult {
        let (cab, local) = try cabinet(for: slot)
        return try await cab.execute(command, slot: local, seq: seq, param: param, timeout: timeout)
    }

    public func executeReporting(_ command: CabinetCommand, slot: Int, seq: UInt16, param: UInt16 = 0,
                                 timeout: Double = 3) async throws -> (result: CommandResult, seq: UInt16) {
        let (cab, local) = try cabinet(for: slot)
        return try await cab.executeReporting(command, slot: local, seq: seq, param: param, timeout: timeout)
    }

    /// A seq for the next command to station slot `slot`'s cabinet (each controller has its own register 19).
    public func proposeSeq(slot: Int) -> UInt16 {
        (locate(slot).map { cabinets[$0.cabinet] } ?? cabinets[0]).proposeSeq()
    }

    /// The first cabinet's (one cabinet: the cabinet's).
    public func proposeSeq() -> UInt16 { cabinets[0].proposeSeq() }

    public func readCells(slot: Int) async throws -> CellDetail {
        let (cab, local) = try cabinet(for: slot)
        return try await cab.readCells(slot: local)
    }

    /// A technician's raw read on cabinet `cabinet`'s bus (the first when nil).
    public func rawRead(cabinet id: String? = nil, unit: Int, holding: Bool, address: Int, count: Int) async throws -> [UInt16] {
        let cab = id.flatMap { id in cabinets.first { $0.configuration.cabinetID == id } } ?? cabinets[0]
        return try await cab.rawRead(unit: unit, holding: holding, address: address, count: count)
    }

    // MARK: - Forwarding

    /// Serializes forwarding (cabinet streams are consumed concurrently) so station batches keep one order.
    private let forwarding = Mutex(())

    private func forward(_ batch: ChangeBatch, from index: Int) {
        forwarding.withLock { _ in forwardLocked(batch, from: index) }
    }

    private func forwardLocked(_ batch: ChangeBatch, from index: Int) {
        let l = layout()
        state.withLock { $0.held[index].append(batch) }
        for i in cabinets.indices where l.span[i] != nil {
            let ready = state.withLock { s -> [ChangeBatch] in defer { s.held[i] = [] }; return s.held[i] }
            for b in ready { publish(b, from: i, l) }
        }
    }

    private func publish(_ batch: ChangeBatch, from index: Int, _ l: Layout) {
        let persisted = state.withLock { s -> [PersistedStation?] in
            s.persisted[index] = batch.persisted
            s.quarantine[index] = batch.quarantined
            s.openDoors[index] = batch.openDoors
            return s.persisted
        }
        let (quarantine, openDoors) = state.withLock { s in (s.quarantine, s.openDoors) }
        var snaps = cabinets.map(\.snapshot)
        snaps[index] = batch.snapshot
        let station = compose(snaps, l)
        let id = cabinets[index].configuration.cabinetID
        let changes: [StationChange] = batch.changes.compactMap { change in
            guard let local = change.slot else { return change }
            guard let span = l.span[index], local <= span else { return nil }   // beyond its configured span
            return change.renumbered(l.first[index] + local - 1)
        }
        var byID: [String: PersistedStation] = [:]
        for (i, p) in persisted.enumerated() { if let p { byID[cabinets[i].configuration.cabinetID] = p } }
        var out = ChangeBatch(changes: changes, snapshot: station,
                              inventory: Inventory.of(station, quarantined: Set(mapped(quarantine, l).keys),
                                                      policy: cabinets[0].configuration.batteryPolicy),
                              quarantined: mapped(quarantine, l), timestamp: batch.timestamp, openDoors: mapped(openDoors, l))
        out.cabinet = id
        out.cabinetStates = byID
        broadcast.publish(out)
    }
}
