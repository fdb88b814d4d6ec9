import ABSProtocol
import Foundation
import SQLiteLink
import Logging
import StationDomain
import StationStore
import StationSupport
@testable import GatewayCore

/// The station's cabinets in memory: a snapshot the test sets, the commands the use cases send, the answer the
/// controller gives. Every command is also yielded on `issued`, so a test can await one sent from a task.
final class FakeCabinet: StationCabinet {
    enum Answer: Sendable { case result(CommandResult), silent }
    struct Command: Sendable, Equatable {
        let command: CabinetCommand
        let slot: Int
        let seq: UInt16?
    }
    struct NotConfirmed: Error, CustomStringConvertible { var description: String { "no answer from the controller (test)" } }
    private struct State: Sendable {
        var snapshot: StationSnapshot
        var ready: Set<Int>
        var answer: Answer = .result(.ok)
        var commands: [Command] = []
        var refreshed: [Set<Int>] = []
        var seq: UInt16 = 100
    }
    let cabinetIDs: [String]
    private let state: Locked<State>
    let issued: AsyncStream<Command>
    private let issue: AsyncStream<Command>.Continuation

    init(_ snapshot: StationSnapshot, ready: Set<Int>, cabinetIDs: [String] = ["A"]) {
        self.cabinetIDs = cabinetIDs
        state = Locked(State(snapshot: snapshot, ready: ready))
        (issued, issue) = AsyncStream<Command>.makeStream()
    }

    var snapshot: StationSnapshot { state.current.snapshot }
    var commands: [Command] { state.current.commands }
    var refreshed: [Set<Int>] { state.current.refreshed }
    func answer(_ a: Answer) { state.withLock { $0.answer = a } }
    /// What the controller reports now: `change` applied to the slot `number`'s status.
    func slot(_ number: Int, _ status: SlotStatus) {
        state.withLock { s in
            if let i = s.snapshot.slots.firstIndex(where: { $0.number == number }) { s.snapshot.slots[i] = status }
        }
    }

    func locate(_ slot: Int) -> (cabinet: Int, slot: Int)? {
        let snap = snapshot
        if snap.cabinets.isEmpty { return (1 ... max(1, snap.slots.count)).contains(slot) && !snap.slots.isEmpty ? (0, slot) : nil }
        for (i, c) in snap.cabinets.enumerated() where slot >= c.firstSlot && slot < c.firstSlot + c.slotCount {
            return (i, slot - c.firstSlot + 1)
        }
        return nil
    }

    func readySlots() async -> Set<Int> { state.current.ready }

    func execute(_ command: CabinetCommand, slot: Int, param: UInt16, timeout: Double) async throws -> CommandResult {
        try record(Command(command: command, slot: slot, seq: nil))
    }

    func execute(_ command: CabinetCommand, slot: Int, seq: UInt16, param: UInt16, timeout: Double) async throws -> CommandResult {
        try record(Command(command: command, slot: slot, seq: seq))
    }

    private func record(_ c: Command) throws -> CommandResult {
        let answer = state.withLock { s -> Answer in
            s.commands.append(c)
            return s.answer
        }
        issue.yield(c)
        switch answer {
        case let .result(r): return r
        case .silent: throw NotConfirmed()
        }
    }

    func requestRefresh(slots: Set<Int>?) async { state.withLock { $0.refreshed.append(slots ?? []) } }
    func cycles(ofSlots slots: Set<Int>?) -> Int { 0 }
    func proposeSeq(slot: Int) -> UInt16 { state.withLock { $0.seq += 1; return $0.seq } }
    func proposeSeq() -> UInt16 { proposeSeq(slot: 1) }
}

/// Contract events the operations recorded, in order.
final class RecordedEvents: ContractEventSink {
    private let box = Locked<[ContractEvent]>([])
    func record(_ events: [ContractEvent], at date: Date) async { box.withLock { $0.append(contentsOf: events) } }
    var all: [ContractEvent] { box.current }
    var payloads: [EventPayload] { all.map(\.payload) }
    func of(_ type: EventType) -> [EventPayload] { payloads.filter { $0.type == type } }
}

struct FixedClock: OperationClock {
    let date: Date
    func now() -> Date { date }
}

/// The board's wall clock for the swap stage timers, moved by the test.
final class MovableClock: Sendable {
    private let box: Locked<Date>
    init(_ date: Date) { box = Locked(date) }
    func now() -> Date { box.current }
    func advance(_ seconds: Double) { box.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

/// Register blocks as the map lays them out (as StationDomainTests' fixture does).
enum Regs {
    static func device(slotCount: Int, safeMode: Bool = false, flags: UInt16 = 1) -> CabinetInfo {
        var r = [UInt16](repeating: 0, count: 32)
        r[0] = 0x4F56; r[1] = 1; r[2] = 1; r[3] = 4; r[4] = 2; r[5] = UInt16(slotCount)
        let serial = Array("CAB-TG-0007".utf8) + [UInt8](repeating: 0, count: 5)
        for i in 0 ..< 8 { r[6 + i] = UInt16(serial[2 * i]) << 8 | UInt16(serial[2 * i + 1]) }
        r[15] = 1000; r[16] = 77; r[17] = flags; r[18] = 253; r[19] = 41; r[21] = 3; r[22] = safeMode ? 1 : 0
        return try! CabinetDecoder.device(Registers(r))
    }

    static let present: UInt16 = 0b0100_0111   // battery, door closed, locked, bms ok

    static func slot(_ n: Int, id: String? = nil, soc: UInt16 = 987, family: UInt16 = 2, empty: Bool = false,
                     doorOpens: UInt16 = 0) -> SlotStatus {
        var r = [UInt16](repeating: 0, count: 32)
        r[0] = empty ? 0b0100_0110 : present
        r[25] = doorOpens
        if !empty {
            let text = id ?? "B45-\(n)"
            let bytes = Array(text.utf8) + [UInt8](repeating: 0, count: 16 - text.utf8.count)
            for i in 0 ..< 8 { r[2 + i] = UInt16(bytes[2 * i]) << 8 | UInt16(bytes[2 * i + 1]) }
            r[10] = soc; r[11] = 912; r[12] = 5412; r[13] = UInt16(bitPattern: -150); r[14] = 312; r[15] = 255
            r[17] = 100; r[18] = 4410; r[19] = 4352; r[22] = 4165; r[23] = 4150; r[24] = family
        }
        return try! CabinetDecoder.slot(n, Registers(r))
    }

    /// One cabinet: 1 ready 45 Ah 98.7 %, 2 ready 45 Ah 99.5 %, 3 ready 30 Ah, 4 empty, 5 charging 45 Ah. Ready: 1, 2, 3.
    static func oneCabinet(safeMode: Bool = false, stale: Bool = false) -> (StationSnapshot, Set<Int>) {
        let slots = [slot(1, soc: 987), slot(2, soc: 995), slot(3, id: "B30-3", soc: 990, family: 1), slot(4, empty: true), slot(5, soc: 400)]
        var snap = StationSnapshot(cabinet: device(slotCount: 5, safeMode: safeMode), slots: slots, cabinetStale: stale, lastUpdateMillis: 1)
        snap.cabinets = [CabinetState(id: "A", unit: 1, info: snap.cabinet, stale: stale, firstSlot: 1, slotCount: 5)]
        if stale { for i in snap.slots.indices { snap.slots[i].stale = true } }
        return (snap, [1, 2, 3])
    }

    /// Two cabinets of four slots: A (station 1…4: 1 ready, 2 empty, 3 ready, 4 empty), B (5…8: 5 ready, 6 empty, 7, 8 ready).
    static func twoCabinets(bStale: Bool) -> (StationSnapshot, Set<Int>) {
        var slots: [SlotStatus] = []
        for n in 1 ... 8 {
            var s = [2, 4, 6].contains(n) ? slot(n, empty: true) : slot(n, soc: UInt16(950 + n))
            s.cabinet = n <= 4 ? "A" : "B"
            s.cabinetSlot = n <= 4 ? n : n - 4
            if n > 4 && bStale { s.stale = true }
            slots.append(s)
        }
        var snap = StationSnapshot(cabinet: device(slotCount: 4), slots: slots, cabinetStale: false, lastUpdateMillis: 1)
        snap.cabinets = [CabinetState(id: "A", unit: 1, info: device(slotCount: 4), stale: false, firstSlot: 1, slotCount: 4),
                         CabinetState(id: "B", unit: 3, info: bStale ? nil : device(slotCount: 4), stale: bStale, firstSlot: 5, slotCount: 4)]
        return (snap, bStale ? [1, 3] : [1, 3, 5, 7, 8])
    }
}

/// The use cases wired as the daemon wires them, over fakes: a fake cabinet, the real store over an in-memory
/// SQLiteLink queue (the same migrations as the file), a fixed clock, the real swap coordinator.
struct Station {
    static let now = Date(timeIntervalSince1970: 1_795_000_000)
    let cabinet: FakeCabinet
    let store: StationStore
    let events = RecordedEvents()
    let clock = FixedClock(date: Station.now)
    let wall = MovableClock(Station.now)
    let coordinator: SwapCoordinator
    let operations: StationOperations

    init(_ station: (StationSnapshot, Set<Int>), cabinetIDs: [String] = ["A"], maxConcurrentSwaps: Int = 1) throws {
        cabinet = FakeCabinet(station.0, ready: station.1, cabinetIDs: cabinetIDs)
        store = try StationStore(writer: DatabaseQueue())
        var settings = SwapCoordinator.Settings(stationID: "STN-T", networkCode: "NET", outletCode: "OUT-1")
        settings.maxConcurrentSwaps = maxConcurrentSwaps
        let clock = clock
        settings.now = { clock.now() }
        let wall = wall
        settings.wallClock = { wall.now() }
        var logger = Logger(label: "orchestration-test")
        logger.logLevel = .critical
        coordinator = SwapCoordinator(store: store, acquisition: cabinet, settings: settings, metrics: GatewayMetrics(), wake: Wakeup(),
                                      logger: logger, isOnline: { true })
        operations = StationOperations(cabinet: cabinet, ledger: store, swaps: coordinator, events: events, clock: clock, logger: logger)
    }

    static func entitlement(customer: String = "cust-1", plan: String = "pi-1", status: Entitlement.Status = .active,
                            out: [String] = ["B45-000123"], quota: Int = 60, used: Int = 12) -> Entitlement {
        Entitlement(planInstanceID: plan, customerID: customer, subscriptionRef: "SUB/2026/00042", status: status,
                    validFrom: now.addingTimeInterval(-86400), validUntil: now.addingTimeInterval(86400), networkCode: "NET",
                    batteryFamily: "MOBBAT-45AH", swapQuota: quota, swapsUsed: used, energyQuotaKWh: 129.6,
                    energyUsedKWh: 25.92, overageAllowed: false, maxBatteries: 1, batteriesOut: out, version: 1)
    }

    var header: CommandHeader { header("req-\(UUID().uuidString.prefix(8))") }
    func header(_ id: String) -> CommandHeader {
        CommandHeader(requestID: id, issuedAt: Station.now, expiresAt: Station.now.addingTimeInterval(120), kid: "k1")
    }

    /// Puts `entitlements` in the cache through the use case (a snapshot, version `version`).
    func cache(_ entitlements: [Entitlement], version: Int64 = 1) async throws {
        let r = await operations.applyEntitlements(.snapshot(version: version, entitlements: entitlements, countedThroughSeq: nil), header: header)
        guard case .done = r else { throw Failure("cache not applied: \(r)") }
    }

    /// Every audit row, oldest first.
    func audit() async throws -> [AuditEntry] { try await store.audit(limit: 1000).reversed() }

    /// The store refuses every write to `table` from now on (as a full or broken store would), through SQLite.
    func refuseWrites(to table: String) async throws {
        try await store.write { db in
            try db.execute(sql: "CREATE TRIGGER test_refuse_\(table) BEFORE INSERT ON \(table) BEGIN SELECT RAISE(ABORT, 'refused by test'); END")
        }
    }

    func allowWrites(to table: String) async throws {
        try await store.write { db in try db.execute(sql: "DROP TRIGGER test_refuse_\(table)") }
    }
}

struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
