import ABSProtocol
import Acquisition
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import StationDomain
import StationStore

/// Runs swaps: decides from the cached entitlements, records every step durably before the door it
/// leads to opens, drives the cabinet through the command block, and completes in one transaction
/// (entitlement counters, custody, `swap.completed`, the Odoo usage record, the audit line).
///
/// Fail closed: if a step cannot be recorded, no door opens.
public actor SwapCoordinator {
    public struct Settings: Sendable {
        public var stationID: String
        public var networkCode: String
        public var outletCode: String
        public var timeouts = SwapTimeouts()
        public var cachePolicy = CachePolicy()
        public var maxConcurrentSwaps = 1
        public var swapCountService = "service-swap-count"
        public var energyService = "service-energy-gage"
        /// The time entitlement validity is judged against (TrustedClock.now: the signed time base while the clock is untrusted).
        public var now: @Sendable () -> Date = { Date() }
        /// The board's wall clock, which stage timers run on and the SwapService sleeps against (a seam: in-process
        /// tests move it to reach a timeout).
        public var wallClock: @Sendable () -> Date = { Date() }
        public init(stationID: String, networkCode: String, outletCode: String) {
            self.stationID = stationID; self.networkCode = networkCode; self.outletCode = outletCode
        }
    }

    /// What a request returns: accepted (recorded, its first door being opened), refused by the decision, or
    /// not recorded (storage error: no door opened). StationOperations.requestSwap maps it to an OperationResult.
    public enum Outcome: Sendable {
        case accepted(SwapAcceptance)
        case refused(SwapRefusal)
        case notRecorded(String)
    }

    private let store: any SwapLedger
    private let acquisition: any StationCabinet
    private let settings: Settings
    private let logger: Logger
    private let isOnline: @Sendable () -> Bool
    private let wake: Wakeup
    private let metrics: GatewayMetrics
    private var running: [String: SwapMachine] = [:]
    /// Swaps that ended physically and whose completion is being recorded (retried until it lands).
    private var finishing: [String: SwapRecord] = [:]
    /// Until an interrupted swap has been reconciled with a fresh cabinet reading, no new swap starts.
    private var needsReconcile = true
    private var reconcileWaitSince: Date?
    /// A stage that could not be recorded (fail closed): evaluated again at this time.
    private var retryAt: Date?
    /// Wakes the SwapService: a swap accepted, a transition made outside its evaluation (an unlock failed).
    public nonisolated let wakeup = Wakeup()
    /// Set once the SwapService has reconciled interrupted swaps (or tried, after waiting for the first reading):
    /// commands are taken from then on.
    public nonisolated let started = ReadyFlag()

    public init(store: any SwapLedger, acquisition: any StationCabinet, settings: Settings, metrics: GatewayMetrics,
                wake: Wakeup, logger: Logger, isOnline: @escaping @Sendable () -> Bool) {
        self.store = store; self.acquisition = acquisition; self.settings = settings; self.metrics = metrics
        self.wake = wake; self.logger = logger; self.isOnline = isOnline
    }

    public var swapsInProgress: Int { running.count + finishing.count }

    // MARK: Start-up: finish what a power cut interrupted

    /// Compares the cabinet's slots with the swap in progress and finishes it the only consistent way.
    /// Call once the acquisition has a fresh reading.
    public func reconcileAfterRestart() async {
        guard needsReconcile else { return }
        let swaps: [SwapRecord]
        do { swaps = try await store.swapsInProgress() } catch {
            logger.error("cannot read swaps in progress", metadata: ["error": "\(error)"])
            return
        }
        if swaps.isEmpty { needsReconcile = false; return }
        let snapshot = acquisition.snapshot
        guard !snapshot.cabinetStale, snapshot.cabinet != nil || snapshot.cabinets.contains(where: { $0.info != nil }) else {
            logger.warning("cannot reconcile interrupted swaps yet: cabinet not readable")
            return
        }
        // A rider caught mid-action (a door open) is waited for, up to the open-door grace.
        let waiting = swaps.filter { !SwapMachine.canReconcile($0, snapshot: snapshot) }
        if !waiting.isEmpty {
            if reconcileWaitSince == nil {
                reconcileWaitSince = settings.wallClock()
                logger.warning("an interrupted swap's door is open; waiting for it to close before finishing the swap",
                               metadata: ["swap_id": "\(waiting[0].swapID)"])
            }
            if settings.wallClock().timeIntervalSince(reconcileWaitSince!) < settings.timeouts.openDoorGrace { return }
        }
        // Freeze the physical state first: a door this swap unlocked before the restart may still be unlocked at
        // the controller, and a rider could still use it after we judged. Lock every slot involved, read them
        // again, then judge; a door opened meanwhile is waited for (closing it re-locks it).
        let involved = Set(swaps.flatMap { [$0.returnSlot, $0.issueSlot].compactMap { $0 } })
        for slot in involved.sorted() {
            do {
                let result = try await acquisition.execute(.lock, slot: slot, param: 0, timeout: 3)
                if result != .ok { logger.warning("could not lock a slot of an interrupted swap", metadata: ["slot": "\(slot)", "result": "\(result)"]) }
            } catch {
                logger.warning("could not lock a slot of an interrupted swap", metadata: ["slot": "\(slot)", "error": "\(error)"])
                return
            }
        }
        await acquisition.requestRefresh(slots: involved)
        let before = acquisition.cycles(ofSlots: involved)
        for _ in 0 ..< 100 where acquisition.cycles(ofSlots: involved) < before + 2 { try? await Task.sleep(for: .milliseconds(50)) }
        let frozen = acquisition.snapshot
        if swaps.contains(where: { !SwapMachine.canReconcile($0, snapshot: frozen) }) { return }
        needsReconcile = false
        for record in swaps {
            let held = (try? await effectiveEntitlement(record.planInstanceID))?.batteriesOut ?? []
            let outcome = SwapMachine.reconcile(record, batteriesOut: held, snapshot: frozen)
            logger.warning("reconciling a swap interrupted by a restart", metadata: ["swap_id": "\(record.swapID)", "stage": "\(record.stage.rawValue)", "outcome": "\(outcome)"])
            let final = SwapMachine.finalize(record, with: outcome, now: settings.wallClock())
            await finish(final, outcome: outcome, reconciled: true)
        }
    }

    // MARK: Requests

    /// The device block the station's conditions are read from: one cabinet's; with several, the first cabinet
    /// that serves, else the first reachable one, else the first (so a station refuses only when none can serve).
    static func conditionCabinet(_ snapshot: StationSnapshot) -> CabinetInfo? {
        guard snapshot.cabinets.count > 1 else { return snapshot.cabinet }
        return (snapshot.cabinets.first(where: \.serving) ?? snapshot.cabinets.first(where: { !$0.stale && $0.info != nil }))?.info
    }

    /// A verified swap request (through StationOperations.requestSwap).
    public func request(header: CommandHeader, customerID: String, planInstanceID: String?, channel: String?) async -> Outcome {
        if needsReconcile {
            await reconcileAfterRestart()
            if needsReconcile {
                return await refuse(header, customerID, .init(.stationBusy, "finishing a swap interrupted by a restart"))
            }
        }
        let started = ContinuousClock.now
        defer { metrics.observeDecision(seconds: (ContinuousClock.now - started).seconds) }
        let now = settings.now()
        // Several cabinets: a cabinet that cannot serve (unreachable, safe mode, e-stop, tamper) only takes its own
        // slots out (stale in the decision's snapshot); the station's conditions are those of the best cabinet.
        let snapshot = acquisition.snapshot.forSwapDecisions
        let cab = Self.conditionCabinet(snapshot)
        let conditions = StationConditions(
            cabinetReachable: !snapshot.cabinetStale && cab != nil, safeMode: cab?.safeMode ?? false,
            emergencyStop: cab?.flags.contains(.emergencyStop) ?? false, tamper: cab?.flags.contains(.tamper) ?? false,
            swapsInProgress: running.count + finishing.count, maxConcurrentSwaps: settings.maxConcurrentSwaps, networkCode: settings.networkCode)
        let ready = await acquisition.readySlots().filter { snapshot.slot($0).map { !$0.stale } ?? false }
        let reserved = Set(running.values.flatMap { [$0.record.returnSlot, $0.record.issueSlot].compactMap { $0 } })
            .union(finishing.values.flatMap { [$0.returnSlot, $0.issueSlot].compactMap { $0 } })

        let decision: Result<SwapPlan, SwapRefusal>
        do {
            // The cached records with the station's not-yet-counted swaps on top, read in one transaction.
            let entitlements = try await store.effectiveEntitlements(customerID: customerID)
            let lastSync = try await store.entitlementLastSync()   // not entitlementSyncState: no COUNT(*) of 100k rows per swap
            decision = SwapRules.decide(customerID: customerID, planInstanceID: planInstanceID, entitlements: entitlements,
                                        pending: [], now: now, cacheLastSync: lastSync, cachePolicy: settings.cachePolicy,
                                        station: conditions, snapshot: snapshot, readySlots: ready, reservedSlots: reserved)
        } catch {
            logger.error("cannot read the entitlement cache; refusing the swap", metadata: ["error": "\(error)"])
            return await refuse(header, customerID, .init(.stationBusy, "station storage error"))
        }
        switch decision {
        case let .failure(refusal):
            return await refuse(header, customerID, refusal)
        case let .success(plan):
            return await accept(header, plan, channel: channel, now: now, snapshot: snapshot)
        }
    }

    private func refuse(_ header: CommandHeader, _ customerID: String, _ refusal: SwapRefusal) async -> Outcome {
        metrics.countSwap(outcome: "rejected_\(refusal.code.rawValue)")
        let event = ContractEvent(.swapRejected(requestID: header.requestID, customerID: customerID,
                                                reason: ReplyCode(refusal.code), message: refusal.message))
        do { _ = try await store.appendEvents([event.newEvent()]); wake.signal() } catch {
            logger.error("cannot record swap.rejected", metadata: ["error": "\(error)"])
        }
        logger.info("swap refused", metadata: ["request_id": "\(header.requestID)", "code": "\(refusal.code.rawValue)", "why": "\(refusal.message)"])
        return .refused(refusal)
    }

    private func accept(_ header: CommandHeader, _ plan: SwapPlan, channel: String?, now: Date, snapshot: StationSnapshot) async -> Outcome {
        let e = plan.entitlement
        var record = SwapRecord(swapID: UUID().uuidString.lowercased(), requestID: header.requestID, customerID: e.customerID,
                                planInstanceID: e.planInstanceID, subscriptionRef: e.subscriptionRef, kind: plan.kind,
                                returnSlot: plan.returnSlot, issueSlot: plan.issueSlot, family: plan.family,
                                recordedOffline: !isOnline(), acceptedAt: now)
        // The stage timers run on the clock evaluate() and nextDeadline() use (the board's wall clock, which the
        // SwapService sleeps against), not on `now`: while the clock is untrusted `now` is the signed time base,
        // and a stage started on one clock and judged on the other timed out at once (board a year ahead) or
        // never (board in 1970). TrustedTimeTests.
        let stageClock = settings.wallClock()
        var machine = SwapMachine(record: record, batteriesOut: e.batteriesOut, timeouts: settings.timeouts, now: stageClock)
        let actions = machine.start(snapshot, now: stageClock)
        let unlockTarget = actions.compactMap { if case let .unlock(s, _) = $0 { s } else { nil } }.first
        let seq = unlockTarget.map { acquisition.proposeSeq(slot: $0) } ?? acquisition.proposeSeq()   // never the seq in that cabinet's register 19
        machine.assignUnlockSeq(seq)
        record = machine.record
        let acceptance = SwapAcceptance(swapID: record.swapID, requestID: header.requestID, customerID: e.customerID,
                                        planInstanceID: e.planInstanceID, kind: plan.kind, returnSlot: plan.returnSlot,
                                        issueSlot: plan.issueSlot, channel: channel)
        let data = acceptance.data
        let unlockSlot = actions.compactMap { if case let .unlock(s, _) = $0 { s } else { nil } }.first
        // Record first (fail closed): the accepted swap and its first stage, with the unlock's seq.
        do {
            _ = try await store.insertSwap(record, events: [ContractEvent(data).newEvent(at: now)],
                                           audit: [AuditEntry(timestamp: now, actor: "abs:\(header.requestID)", action: "swap.accepted",
                                                              detail: ContractJSON.string(data))],
                                           allowConcurrent: settings.maxConcurrentSwaps)
            wake.signal()
        } catch {
            logger.error("cannot record the accepted swap: no door opens", metadata: ["error": "\(error)", "request_id": "\(header.requestID)"])
            metrics.countSwap(outcome: "refused_storage")
            return .notRecorded("the swap cannot be recorded (storage error); no door opened")
        }
        running[record.swapID] = machine
        wakeup.signal()
        metrics.countSwap(outcome: "accepted")
        logger.notice("swap accepted", metadata: ["swap_id": "\(record.swapID)", "kind": "\(plan.kind.rawValue)",
                                                  "return_slot": "\(plan.returnSlot.map(String.init) ?? "-")", "issue_slot": "\(plan.issueSlot.map(String.init) ?? "-")"])
        if let slot = unlockSlot {
            // The reply goes out while the door opens; the unlock result drives the machine.
            let secs = actions.compactMap { if case let .unlock(_, s) = $0 { s } else { nil } }.first ?? 120
            Task { await self.unlock(swapID: record.swapID, slot: slot, seq: seq, seconds: secs) }
        }
        return .accepted(acceptance)
    }

    // MARK: Driving swaps

    /// Called by the SwapService on every change batch, at `nextDeadline()` and when woken.
    public func evaluate() async {
        if needsReconcile { await reconcileAfterRestart() }
        retryAt = nil
        guard !running.isEmpty else { return }
        let snapshot = acquisition.snapshot
        let now = settings.wallClock()
        for id in Array(running.keys) where !applying.contains(id) {
            guard var m = running[id] else { continue }
            let actions = m.observe(snapshot, now: now)
            if actions.isEmpty { running[id] = m } else { await apply(actions, to: m) }
        }
    }

    /// The nearest time at which `evaluate()` may act without a change in the cabinet: a running swap's timeout
    /// (SwapMachine.nextDeadline), a stage write to retry, the reconciliation of interrupted swaps (retried every
    /// second until it could run). Nil when nothing is waiting for time: then only a change or a wake-up matters.
    public func nextDeadline() -> Date? {
        let now = settings.wallClock()
        var candidates = running.values.compactMap { $0.nextDeadline(after: now) }
        if let retryAt { candidates.append(retryAt) }
        if needsReconcile { candidates.append(now.addingTimeInterval(1)) }
        return candidates.min()
    }

    /// Swaps whose transition is being recorded: not evaluated again meanwhile (the actor is re-entrant
    /// at every await), so a transition — and its unlock — happens once.
    private var applying: Set<String> = []

    private func apply(_ actions: [SwapAction], to machine: SwapMachine) async {
        var m = machine
        let id = m.record.swapID
        applying.insert(id)
        defer { applying.remove(id) }
        for action in actions {
            switch action {
            case let .unlock(slot, seconds):
                let seq = acquisition.proposeSeq(slot: slot)   // never the seq in that cabinet's register 19 (execute checks again on the bus)
                m.assignUnlockSeq(seq)
                if m.record.stage == .returnRefused, let reason = m.record.abortReason {
                    logger.warning("returned battery refused; unlocking it for the rider", metadata: ["swap_id": "\(id)", "why": "\(reason)"])
                }
                do {
                    _ = try await store.updateSwap(m.record, events: [], audit: [AuditEntry(
                        timestamp: settings.wallClock(), actor: "swap:\(id)", action: "stage.\(m.record.stage.rawValue)",
                        detail: "{\"slot\":\(slot),\"seq\":\(seq)}")])
                } catch {
                    // Fail closed: the stage is not recorded, so the door stays shut. The old machine stays in
                    // place and the next evaluation derives the same transition again.
                    logger.error("cannot record the swap's next stage; door stays shut", metadata: ["swap_id": "\(id)", "error": "\(error)"])
                    retryAt = settings.wallClock().addingTimeInterval(0.25)
                    return
                }
                running[id] = m
                Task { await self.unlock(swapID: id, slot: slot, seq: seq, seconds: seconds) }
            case let .finish(outcome):
                running[id] = nil
                // Still counted (and its slots reserved) until its end is recorded: on a full disk that can take a while.
                finishing[id] = m.record
                await finish(m.record, outcome: outcome, reconciled: false)
                finishing[id] = nil
            }
        }
    }

    /// Writes the unlock with the recorded seq (a retry re-sends the same seq: never two unlocks).
    private func unlock(swapID: String, slot: Int, seq: UInt16, seconds: Int) async {
        do {
            let result = try await acquisition.execute(.unlock, slot: slot, seq: seq, param: UInt16(clamping: seconds), timeout: 5)
            if result != .ok {
                logger.error("unlock refused by the cabinet", metadata: ["swap_id": "\(swapID)", "slot": "\(slot)", "result": "\(result)"])
                await unlockFailed(swapID: swapID, reason: "unlock of slot \(slot): \(result)")
            } else {
                await acquisition.requestRefresh(slots: [slot])
            }
        } catch {
            logger.error("unlock failed", metadata: ["swap_id": "\(swapID)", "slot": "\(slot)", "error": "\(error)"])
            await unlockFailed(swapID: swapID, reason: "unlock of slot \(slot): \(error)")
        }
    }

    private func unlockFailed(swapID: String, reason: String) async {
        guard var m = running[swapID], !applying.contains(swapID) else { return }
        let actions = m.unlockFailed(reason: reason, now: settings.wallClock())
        await apply(actions, to: m)
        wakeup.signal()
    }

    // MARK: Completion

    private func finish(_ record: SwapRecord, outcome: SwapOutcome, reconciled: Bool) async {
        let now = record.finishedAt ?? settings.wallClock()
        var events: [NewEvent] = []
        var pending: PendingLocalSwap?
        var usage: UsageRecord?
        let auditAction: String
        switch outcome {
        case let .completed(returned, issued, kwh):
            events.append(ContractEvent(.swapCompleted(
                swapID: record.swapID, customerID: record.customerID, planInstanceID: record.planInstanceID,
                batteryIn: returned.map { SwapBatteryData(id: $0.id, soc: $0.socPercent, slot: $0.slot) },
                batteryOut: SwapBatteryData(id: issued.id, soc: issued.socPercent, slot: issued.slot),
                energyKWh: kwh, recordedOffline: record.recordedOffline)).newEvent(at: now))
            pending = PendingLocalSwap(swapID: record.swapID, planInstanceID: record.planInstanceID, swaps: 1, energyKWh: kwh,
                                       returnedBatteryID: returned?.id, issuedBatteryID: issued.id, completedAt: now)
            usage = UsageRecord(
                idempotencyKey: record.swapID, subscriptionRef: record.subscriptionRef, planInstanceID: record.planInstanceID,
                customerID: record.customerID, stationID: settings.stationID, outletCode: settings.outletCode, occurredAt: now,
                recordedOffline: record.recordedOffline,
                lines: [.init(serviceID: settings.swapCountService, quantity: 1, unit: "1"),
                        .init(serviceID: settings.energyService, quantity: kwh, unit: "kWh")],
                swapID: record.swapID, batteryOut: .init(id: issued.id, socPercent: ContractJSON.round(issued.socPercent), slot: issued.slot),
                batteryIn: returned.map { .init(id: $0.id, socPercent: ContractJSON.round($0.socPercent), slot: $0.slot) })
            auditAction = "swap.completed"
            metrics.countSwap(outcome: "completed")
        case let .returnedWithoutIssue(returned, stage, reason):
            // A battery came back, none was issued (contract 1.1): `swap.returned`, never `swap.completed` (which ABS
            // may bill). Custody changes (the rider no longer holds the returned battery): a pending local swap
            // linked to this event, counted until ABS's counted_through_seq covers it. No usage record.
            events.append(ContractEvent(.swapReturned(
                swapID: record.swapID, customerID: record.customerID, planInstanceID: record.planInstanceID,
                batteryIn: SwapBatteryData(id: returned.id, soc: returned.socPercent, slot: returned.slot),
                reason: reason.rawValue, stage: stage.rawValue)).newEvent(at: now))
            pending = PendingLocalSwap(swapID: record.swapID, planInstanceID: record.planInstanceID, swaps: 0, energyKWh: 0,
                                       returnedBatteryID: returned.id, issuedBatteryID: nil, completedAt: now)
            auditAction = reason == .restricted ? "swap.return_only" : "swap.returned_without_issue"
            metrics.countSwap(outcome: reason == .restricted ? "return_only" : "returned_without_issue")
        case let .aborted(stage, reason):
            events.append(ContractEvent(.swapAborted(swapID: record.swapID, stage: stage.rawValue, reason: reason)).newEvent(at: now))
            auditAction = "swap.aborted"
            metrics.countSwap(outcome: "aborted")
        }
        var auditDetail: [String: JSONValue] = ["swap_id": .string(record.swapID), "stage": .string(record.stage.rawValue),
                                                "energy_kwh": .double(record.energyKWh ?? 0)]
        if let reached = record.stageReached { auditDetail["stage_reached"] = .string(reached.rawValue) }
        if record.stage != .completed, let why = record.abortReason { auditDetail["reason"] = .string(why) }
        let audit = AuditEntry(timestamp: now, actor: reconciled ? "gateway:restart" : "swap:\(record.swapID)", action: auditAction,
                               detail: ContractJSON.string(JSONValue.object(auditDetail)))
        // One transaction. A storage failure (disk full, I/O) is retried until it lands: the swap physically
        // happened, it must be recorded. The pending row links to the event that carries the custody change.
        var attempt = 0
        while true {
            do {
                _ = try await store.completeSwap(record, pending: pending, usage: usage, events: events, audit: [audit],
                                                 completedEventIndex: pending == nil ? nil : 0)
                break
            } catch let error as StoreError {
                attempt += 1
                if attempt == 1 || attempt % 30 == 0 {
                    logger.critical("cannot record the end of a swap; retrying", metadata: ["swap_id": "\(record.swapID)", "error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(min(10, Double(attempt))))
            } catch SwapStoreError.alreadyFinished {
                logger.warning("swap already recorded as finished", metadata: ["swap_id": "\(record.swapID)"])
                break
            } catch {
                // A refusal by the store's rules does not change on retry: say so loudly, keep the daemon going.
                logger.critical("the end of a swap was refused by the store", metadata: ["swap_id": "\(record.swapID)", "error": "\(error)"])
                return
            }
        }
        wake.signal()
        logger.notice("swap finished", metadata: ["swap_id": "\(record.swapID)", "stage": "\(record.stage.rawValue)", "reconciled": "\(reconciled)"])
    }

    private func effectiveEntitlement(_ plan: String) async throws -> Entitlement? {
        try await store.effectiveEntitlement(planInstanceID: plan)
    }
}

extension ContractEvent {
    func newEvent(at date: Date = Date()) -> NewEvent { NewEvent(type: type, timestamp: date, data: ClockTrustMark.mark(self).data) }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
