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
import Logging
import ModbusLink
import StationDomain

/// Keeps the live model of the station by polling the cabinet over its bus owner, and publishes the
/// changes it sees. See docs/acquisition.md for the loop, the request budget and the stale rule.
public actor CabinetAcquisition {
    public nonisolated let configuration: AcquisitionConfiguration
    public nonisolated let bus: BusOwner
    public nonisolated let broadcast = ChangeBroadcast()
    private let logger: Logger
    /// The latest snapshot, readable without hopping onto the actor (swap decisions, status API).
    private nonisolated let latest = Locked(StationSnapshot())
    private nonisolated let stats = Locked(AcquisitionStatistics())

    private var tracker: StationTracker
    private var slotBlocks: [Int: SlotStatus] = [:]
    private var slotFailures: [Int: Int] = [:]
    private var previousSummary: [UInt16]?
    private var failedCycles = 0
    private var lastDevice: CabinetInfo?
    private var lastDetail: ContinuousClock.Instant?
    private var lastMeter: ContinuousClock.Instant?
    private var lastWatchdog: ContinuousClock.Instant?
    private var lastClock: ContinuousClock.Instant?
    /// The last watchdog value written; seeded at random so that two runs (daemon, swapctl direct) differ.
    private var watchdogCounter = UInt16.random(in: 0 ... UInt16.max)
    private var needsFullResync = true
    private var meter: MeterReading?
    /// Command seqs: a counter and the last seq written (readable off the actor, for `proposeSeq`).
    private nonisolated let seqState = Locked(SeqState())
    private var reportedSlotMismatch = false
    /// Slots read again in the next cycle whatever the summary says (see `requestRefresh`).
    private var refreshRequested: Set<Int> = []
    private var refreshAllRequested = false
    /// Slots this gateway unlocked and whose door cycle has not completed yet: a door opened on them is authorised.
    private var unlockGrants: [Int: ContinuousClock.Instant] = [:]

    /// `seed`: the station as last recorded (see `PersistedStation`), so that a restart reports only real changes.
    /// `bus`: the owner of a bus this cabinet shares with others (several unit ids on one line or address);
    /// nil: a bus of its own.
    public init(configuration: AcquisitionConfiguration, bus: BusOwner? = nil, seed: PersistedStation? = nil,
                logger: Logger = Logger(label: "swapgate.acquisition")) {
        self.configuration = configuration
        self.bus = bus ?? BusOwner(transport: configuration.transport, timings: configuration.timings)
        var tracker = StationTracker(policy: configuration.batteryPolicy)
        if let seed { tracker.seed(seed.snapshot, quarantine: seed.quarantine, openDoors: seed.openDoors) }
        self.tracker = tracker
        self.logger = logger
    }

    public nonisolated var snapshot: StationSnapshot { latest.current }
    public nonisolated var statistics: AcquisitionStatistics { stats.current }

    public var quarantined: [Int: [QuarantineReason]] { tracker.quarantine }
    public var inventory: Inventory? { tracker.inventory() }
    /// Whether the battery in `slot` is ready to hand out under the battery policy.
    public func isReady(slot: Int) -> Bool {
        guard let s = tracker.current?.slot(slot) else { return false }
        return tracker.isReady(s)
    }

    /// Every slot whose battery is ready to hand out, in one hop onto the actor (the swap decision's input).
    public func readySlots() -> Set<Int> {
        guard let current = tracker.current else { return [] }
        return Set(current.slots.filter { tracker.isReady($0) }.map(\.number))
    }

    /// Polls until the task is cancelled. Reconnects with exponential backoff while the cabinet is unreachable.
    public func run() async {
        var backoff = configuration.reconnectDelayMin
        let clock = ContinuousClock()
        while !Task.isCancelled {
            let started = clock.now
            let ok = await cycle()
            let delay: Double
            if ok {
                backoff = configuration.reconnectDelayMin
                delay = configuration.fastInterval
            } else {
                delay = max(configuration.fastInterval, backoff)
                backoff = min(configuration.reconnectDelayMax, backoff * 2)
            }
            let next = started.advanced(by: .milliseconds(Int64(delay * 1000)))
            let elapsed = clock.now - started
            let retryAt = Date().addingTimeInterval(max(0, delay - Double(elapsed.components.seconds) - Double(elapsed.components.attoseconds) / 1e18))
            stats.withLock { $0.backoffSeconds = ok ? 0 : delay; $0.nextPollAt = retryAt }
            try? await Task.sleep(until: next, clock: clock)
        }
        await bus.close()
        broadcast.finish()
    }

    /// One acquisition cycle. Returns false when the cabinet did not answer the fast part.
    @discardableResult
    public func cycle() async -> Bool {
        let now = ContinuousClock.now
        var plan = ScanPlan(unit: configuration.unit)
        plan.previousSummary = needsFullResync ? nil : previousSummary
        plan.allSlots = needsFullResync || lastDetail.map { now - $0 >= .seconds(configuration.detailInterval) } ?? true
        plan.forcedSlots = Set(slotFailures.keys).union(refreshRequested)
        if refreshAllRequested { plan.allSlots = true }
        refreshRequested = []
        refreshAllRequested = false
        plan.readMeter = configuration.meterEnabled
            && (lastMeter.map { now - $0 >= .seconds(configuration.meterInterval) } ?? true)
        if lastWatchdog.map({ now - $0 >= .seconds(configuration.watchdogInterval) }) ?? true {
            watchdogCounter &+= 1
            plan.watchdogValue = watchdogCounter
        }
        if needsFullResync || (lastClock.map { now - $0 >= .seconds(configuration.clockSyncInterval) } ?? true) {
            // Only from a trusted time (the gateway's synchronised clock or its signed time base), never 1970:
            // while there is none, nothing is written and the next cycle asks again (docs/operator.md "Clock").
            if let t = CabinetClockSource.trustedTime(), t.timeIntervalSince1970 >= CabinetClockSource.notBefore {
                plan.clockSeconds = UInt32(clamping: Int(t.timeIntervalSince1970))
            }
        }

        var result: ScanResult
        let fixedPlan = plan
        let busStart = ContinuousClock.now
        do {
            result = try await bus.run { conn in Scan.execute(fixedPlan, on: conn) }
        } catch {
            result = ScanResult(device: .failure((error as? ModbusError) ?? .link("\(error)")))
            result.errors = 1
        }
        let busTime = ContinuousClock.now - busStart
        let busSeconds = Double(busTime.components.seconds) + Double(busTime.components.attoseconds) / 1e18
        let wall = Date()
        stats.withLock {
            $0.cycles += 1; $0.requests += max(result.requests, 1); $0.busErrors += result.errors
            $0.busSeconds += busSeconds; $0.lastCycleBusSeconds = busSeconds
            if result.watchdogWritten != nil { $0.watchdogWrites += 1; $0.lastWatchdogAt = wall }
            if result.watchdogError != nil { $0.watchdogErrors += 1 }
            if result.clockWritten { $0.clockWrites += 1; $0.clockSetAt = wall }
        }
        let ok = process(result, plan: plan, at: now)
        stats.withLock {
            $0.lastPollAt = wall; $0.lastPollOK = ok
            if ok { $0.lastAnswerAt = wall; $0.consecutiveFailures = 0 } else { $0.consecutiveFailures += 1 }
        }
        return ok
    }

    private func process(_ result: ScanResult, plan: ScanPlan, at now: ContinuousClock.Instant) -> Bool {
        let millis = Int64(Date().timeIntervalSince1970 * 1000)
        // Fast part: device block and summary.
        var device: CabinetInfo?
        var summary: [UInt16]?
        var failure: String?
        switch result.device {
        case let .success(regs):
            do { device = try CabinetDecoder.device(Registers(regs)) } catch { failure = error.description }
        case let .failure(e):
            failure = "device block: \(e)"
        }
        if device != nil {
            switch result.summary {
            case let .success(regs)?: summary = regs
            case let .failure(e)?: failure = "slot summary: \(e)"
            case nil: failure = "slot summary not read"
            }
        }
        guard let device, let summary, failure == nil else {
            failedCycles += 1
            stats.withLock { $0.failedCycles += 1; $0.lastError = failure }
            if failedCycles == 1 || failedCycles == configuration.staleAfterFailedCycles {
                logger.warning("cabinet read failed", metadata: ["reason": "\(failure ?? "?")", "failed_cycles": "\(failedCycles)"])
            }
            if failedCycles >= configuration.staleAfterFailedCycles {
                var snap = latest.current
                if !snap.cabinetStale {
                    snap.cabinetStale = true
                    for i in snap.slots.indices { snap.slots[i].stale = true }
                    emit(snapshot: snap, at: millis)
                }
            }
            return false
        }
        if failedCycles >= configuration.staleAfterFailedCycles {
            logger.notice("cabinet answers again", metadata: ["after_failed_cycles": "\(failedCycles)"])
        }
        failedCycles = 0

        // Reboot: uptime fell. Resynchronise everything next cycle and set the clock again.
        if let old = lastDevice, device.uptimeSeconds < old.uptimeSeconds {
            logger.warning("cabinet controller rebooted", metadata: ["old_uptime": "\(old.uptimeSeconds)", "new_uptime": "\(device.uptimeSeconds)"])
            needsFullResync = true
            seqState.withLock { $0.lastWritten = nil }   // the controller's last_cmd_seq restarted
            lastClock = nil
            stats.withLock { $0.reboots += 1 }
        } else if plan.allSlots {
            needsFullResync = false
        }
        if let expected = configuration.expectedSlotCount, expected != device.slotCount, !reportedSlotMismatch {
            reportedSlotMismatch = true
            logger.warning("cabinet reports a different slot count than configured",
                           metadata: ["configured": "\(expected)", "cabinet": "\(device.slotCount)"])
        }
        lastDevice = device
        if plan.watchdogValue != nil {
            if let e = result.watchdogError { logger.warning("watchdog write failed", metadata: ["error": "\(e)"]) } else { lastWatchdog = now }
            if let written = result.watchdogWritten { watchdogCounter = written }
        }
        if plan.clockSeconds != nil {
            if let e = result.clockError { logger.warning("clock write failed", metadata: ["error": "\(e)"]) } else { lastClock = now }
        }
        if plan.allSlots { lastDetail = now }
        if let m = result.meter {
            lastMeter = now
            switch m {
            case let .success(regs): meter = try? CabinetDecoder.meter(Registers(regs))
            case let .failure(e):
                if meter != nil { logger.info("energy meter not answering", metadata: ["error": "\(e)"]) }
                meter = nil
            }
        }

        // Slots: merge the blocks read this cycle, count failures, apply the stale rule.
        var slots: [SlotStatus] = []
        slots.reserveCapacity(device.slotCount)
        for n in 1 ... device.slotCount {
            let (state, counter) = CabinetDecoder.summary(summary[n - 1])
            if let r = result.slotBlocks[n] {
                switch r {
                case let .success(regs):
                    do {
                        slotBlocks[n] = try CabinetDecoder.slot(n, Registers(regs), changeCounter: counter)
                        slotFailures[n] = nil
                    } catch {
                        slotFailures[n, default: 0] += 1
                        logger.warning("slot block undecodable", metadata: ["slot": "\(n)", "error": "\(error)"])
                    }
                case let .failure(e):
                    slotFailures[n, default: 0] += 1
                    if slotFailures[n] == 1 { logger.warning("slot read failed", metadata: ["slot": "\(n)", "error": "\(e)"]) }
                }
            }
            var slot = slotBlocks[n] ?? SlotStatus(number: n, state: state, changeCounter: counter)
            slot.changeCounter = counter
            let failures = slotFailures[n] ?? 0
            slot.stale = slotBlocks[n] == nil || failures >= configuration.staleAfterFailedCycles
            if slot.stale && failures == configuration.staleAfterFailedCycles {
                logger.error("slot is now unknown (stale)", metadata: ["slot": "\(n)", "failed_cycles": "\(failures)"])
            }
            slots.append(slot)
        }
        previousSummary = summary
        emit(snapshot: StationSnapshot(cabinet: device, slots: slots, meter: meter, cabinetStale: false, lastUpdateMillis: millis),
             at: millis)
        return true
    }

    /// Reads the given slots' blocks (all slots when nil) in the next cycle, whatever the summary says.
    /// BMS values and flags are not state bits, so the summary does not show them changing.
    public func requestRefresh(slots: Set<Int>? = nil) {
        if let slots { refreshRequested.formUnion(slots) } else { refreshAllRequested = true }
    }

    private func emit(snapshot: StationSnapshot, at millis: Int64) {
        let now = ContinuousClock.now
        unlockGrants = unlockGrants.filter { $0.value > now }
        let changes = tracker.apply(snapshot, at: millis, unlockedByGateway: Set(unlockGrants.keys))
        for case let .doorClosed(slot, _) in changes { unlockGrants[slot] = nil }
        latest.withLock { $0 = snapshot }
        if !changes.isEmpty {
            stats.withLock { $0.changes += changes.count }
            broadcast.publish(ChangeBatch(changes: changes, snapshot: snapshot, inventory: tracker.inventory(),
                                          quarantined: tracker.quarantine, timestamp: Date(timeIntervalSince1970: Double(millis) / 1000),
                                          openDoors: tracker.openDoors))
        }
    }

    // MARK: - On-demand reads and commands

    /// The cell detail block of one slot (read on demand only; it is not part of the polling budget).
    public func readCells(slot: Int) async throws -> CellDetail {
        let count = latest.current.cabinet?.slotCount ?? CabinetMap.maxSlots
        guard slot >= 1, slot <= count else { throw ModbusError.invalidRequest("slot \(slot) outside 1…\(count)") }
        let range = CabinetMap.cellBlock(slot)
        let unit = configuration.unit
        let regs = try await bus.run { try $0.readInputRegisters(unit: unit, address: range.start, count: range.count) }
        return try CabinetDecoder.cells(Registers(regs))
    }

    /// A technician's raw read through the bus owner (read-only: writes go through commands only).
    /// `holding`: function 03, else 04. Unit 1…247, 1…125 registers.
    public func rawRead(unit: Int, holding: Bool, address: Int, count: Int) async throws -> [UInt16] {
        guard (1 ... 247).contains(unit) else { throw ModbusError.invalidRequest("unit \(unit) outside 1…247") }
        guard (0 ... 65535).contains(address) else { throw ModbusError.invalidRequest("address \(address) outside 0…65535") }
        guard (1 ... CabinetMap.maxRegistersPerRead).contains(count), address + count <= 65536 else {
            throw ModbusError.invalidRequest("count \(count) outside 1…\(CabinetMap.maxRegistersPerRead) or past the last address")
        }
        let u = UInt8(unit), a = UInt16(address)
        return try await bus.run { conn in
            holding ? try conn.readHoldingRegisters(unit: u, address: a, count: count)
                    : try conn.readInputRegisters(unit: u, address: a, count: count)
        }
    }

    /// Sends one command through the command block and waits for the controller's result.
    ///
    /// The seq is chosen here (`proposeSeq`) and checked against register 19 on the bus before it is written;
    /// the write is retried with the *same* seq on a timeout (the controller executes a seq once, so a retry
    /// never unlocks twice), and after exception 06 (busy).
    public func execute(_ command: CabinetCommand, slot: Int, param: UInt16 = 0,
                        timeout: Double = 3) async throws -> CommandResult {
        try await executeReporting(command, slot: slot, seq: proposeSeq(), param: param, timeout: timeout).result
    }

    /// As above with a caller-chosen seq (a swap records its seq durably before writing it; take it from
    /// `proposeSeq()`). If register 19 already holds that seq when the command is written (a second writer used
    /// it), or this gateway wrote it for its previous command, another seq is written instead (logged): the
    /// controller would ignore the write and the old 19/20 would pass for its result.
    public func execute(_ command: CabinetCommand, slot: Int, seq: UInt16, param: UInt16 = 0,
                        timeout: Double = 3) async throws -> CommandResult {
        try await executeReporting(command, slot: slot, seq: seq, param: param, timeout: timeout).result
    }

    /// The command as `execute`, returning the seq actually written too.
    ///
    /// A command is confirmed only by seeing register 19 change to its seq after it was written: 19 is read
    /// before the first write, the seq written always differs from it, and 19/20 are then polled for that seq.
    public func executeReporting(_ command: CabinetCommand, slot: Int, seq proposed: UInt16, param: UInt16 = 0,
                                 timeout: Double = 3) async throws -> (result: CommandResult, seq: UInt16) {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int64(timeout * 1000)))
        var lastError: Error?
        /// Set once a write of `seq` may have reached the controller: from then on the seq never changes.
        var written: UInt16?
        let previous = seqState.withLock { $0.lastWritten }
        let unit = configuration.unit
        while ContinuousClock.now < deadline {
            let fixed = written
            let outcome: CommandAttempt
            do {
                outcome = try await bus.run { conn in
                    Self.attempt(command, slot: slot, param: param, proposed: proposed, written: fixed, previous: previous,
                                 unit: unit, on: conn)
                }
            } catch {
                outcome = CommandAttempt(seq: nil, status: .failed((error as? ModbusError) ?? .link("\(error)")))
            }
            if let seq = outcome.seq {
                if written == nil {
                    written = seq
                    seqState.withLock { $0.lastWritten = seq; $0.counter = seq }
                    if seq != proposed {
                        logger.notice("command seq already in the controller's register 19 or used last; wrote another",
                                      metadata: ["proposed": "\(proposed)", "written": "\(seq)", "slot": "\(slot)", "cmd": "\(command)"])
                    }
                }
            }
            switch outcome.status {
            case let .confirmed(raw):
                stats.withLock { $0.commands += 1 }
                let result = CommandResult(rawValue: raw) ?? .unknownCommand
                if command == .unlock, result == .ok {
                    // The door may be opened until the lock re-engages (param s, 0 = 30 s), then closed later.
                    let window = Double(param == 0 ? 30 : Int(param)) + 600
                    unlockGrants[slot] = ContinuousClock.now.advanced(by: .seconds(window))
                }
                return (result, written ?? proposed)
            case .unconfirmed:
                lastError = ModbusError.timeout
            case let .failed(e):
                if case .exception(.serverBusy) = e {
                    lastError = e
                } else if !e.needsReconnect, case .exception = e {
                    throw e
                } else {
                    lastError = e
                }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw lastError ?? ModbusError.timeout
    }

    enum CommandStatus: Sendable { case confirmed(UInt16), unconfirmed, failed(ModbusError) }
    struct CommandAttempt: Sendable {
        /// The seq written (or about to be, when the write itself failed); nil when nothing was written.
        var seq: UInt16?
        var status: CommandStatus
    }

    /// One attempt on the bus owner's queue: read 19/20, choose or keep the seq, write the block, poll 19/20.
    static func attempt(_ command: CabinetCommand, slot: Int, param: UInt16, proposed: UInt16, written: UInt16?,
                        previous: UInt16?, unit: UInt8 = CabinetMap.cabinetUnit, on conn: ModbusConnection) -> CommandAttempt {
        var result = attemptOnce(command, slot: slot, param: param, proposed: proposed, written: written, previous: previous,
                                 unit: unit, on: conn)
        // An error that broke the link closes it, so the next job reconnects (as `BusOwner.run` does for thrown ones).
        if case let .failed(e) = result.status, e.needsReconnect { conn.close(); result.status = .failed(e) }
        return result
    }

    private static func attemptOnce(_ command: CabinetCommand, slot: Int, param: UInt16, proposed: UInt16, written: UInt16?,
                                    previous: UInt16?, unit: UInt8, on conn: ModbusConnection) -> CommandAttempt {
        let resultRegs = UInt16(CabinetMap.Device.lastCommandSeq)
        let before: [UInt16]
        do { before = try conn.readInputRegisters(unit: unit, address: resultRegs, count: 2) } catch {
            return CommandAttempt(seq: nil, status: .failed(error))
        }
        let seq: UInt16
        if let written {
            // A retry: 19 already showing our seq means the earlier write was executed (19 did not hold it before).
            if before[0] == written { return CommandAttempt(seq: written, status: .confirmed(before[1])) }
            seq = written
        } else {
            seq = Self.freshSeq(proposed, avoiding: [before[0], previous].compactMap { $0 })
        }
        do {
            try conn.writeRegisters(unit: unit, address: CabinetMap.commandBlock.start,
                                    values: [command.rawValue, UInt16(clamping: slot), seq, param])
        } catch {
            return CommandAttempt(seq: seq, status: .failed(error))
        }
        for _ in 0 ..< 50 {
            let r: [UInt16]
            do { r = try conn.readInputRegisters(unit: unit, address: resultRegs, count: 2) } catch {
                return CommandAttempt(seq: seq, status: .failed(error))
            }
            if r[0] == seq { return CommandAttempt(seq: seq, status: .confirmed(r[1])) }
            usleep(20_000)
        }
        return CommandAttempt(seq: seq, status: .unconfirmed)
    }

    /// `proposed`, or the next value after it (0 skipped), that is none of `avoiding`.
    static func freshSeq(_ proposed: UInt16, avoiding: [UInt16]) -> UInt16 {
        var seq = proposed == 0 ? 1 : proposed
        while avoiding.contains(seq) {
            seq &+= 1
            if seq == 0 { seq = 1 }
        }
        return seq
    }

    /// A seq for the next command: this gateway's counter (seeded at random at start) moved on by one, never 0,
    /// never the seq the controller last reported in register 19, never the one this gateway wrote last.
    /// `execute` checks register 19 again on the bus right before writing.
    public nonisolated func proposeSeq() -> UInt16 {
        let inRegister = latest.current.cabinet?.lastCommandSeq
        return seqState.withLock { s in
            let seq = Self.freshSeq(s.counter &+ 1, avoiding: [inRegister, s.lastWritten].compactMap { $0 })
            s.counter = seq
            return seq
        }
    }
}

/// This gateway's command seqs (see `CabinetAcquisition.proposeSeq`).
struct SeqState: Sendable {
    var counter = UInt16.random(in: 1 ... UInt16.max)
    var lastWritten: UInt16?
}

/// Counters of the acquisition loop, for diagnostics, metrics and the benchmark.
public struct AcquisitionStatistics: Sendable, Codable, Hashable {
    public var cycles = 0
    public var failedCycles = 0
    public var requests = 0
    /// Requests that failed (timeout, CRC, exception, lost link).
    public var busErrors = 0
    /// Time spent on the bus by polling cycles, in total and for the last cycle (round trips included).
    public var busSeconds = 0.0
    public var lastCycleBusSeconds = 0.0
    public var changes = 0
    public var reboots = 0
    public var commands = 0
    public var lastError: String?
    // Per cabinet (not summed over a station's cabinets): what `swapctl status`, /health and /metrics show of it.
    /// Watchdog writes that went through / failed, and the time of the last good one.
    public var watchdogWrites = 0
    public var watchdogErrors = 0
    public var lastWatchdogAt: Date?
    /// Cabinet clock writes that went through (at start, after a reboot, every clock_sync_interval), and the last.
    public var clockWrites = 0
    public var clockSetAt: Date?
    /// The last poll (cycle): when it ended and whether the cabinet answered its fast part; the last answer.
    public var lastPollAt: Date?
    public var lastPollOK: Bool?
    public var lastAnswerAt: Date?
    /// Failed polls in a row (0 once it answers).
    public var consecutiveFailures = 0
    /// While the cabinet does not answer: the delay before its next poll (the reconnect backoff, doubling up to
    /// reconnect_delay_max); 0 while it answers. `nextPollAt`: when the next poll starts.
    public var backoffSeconds = 0.0
    public var nextPollAt: Date?
    public init() {}
}

/// Where the cabinet clock write (holding 1010–1011) takes its time: the daemon installs its TrustedClock's
/// `trustedNow` (nil while the gateway's clock is not trusted and no signed time base exists). Default: the
/// system clock (library use and tests without a daemon).
public enum CabinetClockSource {
    private static let source = Locked<@Sendable () -> Date?>({ Date() })
    /// No cabinet clock is set earlier than this (2024-01-01T00:00:00Z), whatever the source says.
    public static let notBefore: TimeInterval = 1_704_067_200
    public static func install(_ f: @escaping @Sendable () -> Date?) { source.withLock { $0 = f } }
    public static func trustedTime() -> Date? { source.current() }
}
