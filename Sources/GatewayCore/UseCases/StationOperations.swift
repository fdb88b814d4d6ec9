import ABSProtocol
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import StationDomain
import StationStore

/// The station's operations, one typed method each, with one fail-closed policy (see `OperationRefusal`).
/// The adapters only parse their wire input, call one of these and map the typed result to their wire codes:
/// `CommandService` (ABS over MQTT, `OperationRefusal.absCode`) and `ControlHandler` (the local control API,
/// `OperationRefusal.controlCode`). Adding an operation: a method here, its result type in OperationResults.swift,
/// then a line in each adapter that offers it.
///
/// The rules every operation follows:
/// 1. Check the slot (station-wide number) and its cabinet before recording anything: unknown → `invalidSlot`,
///    no slots known yet or the slot's cabinet stale → `cabinetUnreachable`.
/// 2. Record the intent durably (the audit row; a swap's record) before the cabinet is commanded: when that write
///    fails → `storageError` and the cabinet is not commanded (no audit, no door).
/// 3. Command the cabinet: not confirmed → `cabinetUnreachable`, another result → `cabinetRefused`; an unlock that
///    failed after its intent was recorded gets a `maintenance.unlock.failed` audit row.
public struct StationOperations: Sendable {
    let cabinet: any StationCabinet
    let ledger: any StationLedger
    let swaps: SwapCoordinator
    let events: any ContractEventSink
    let clock: any OperationClock
    let logger: Logger
    /// How long a command to the cabinet may take to be confirmed (seconds).
    var commandTimeout: Double = 3

    public init(cabinet: any StationCabinet, ledger: any StationLedger, swaps: SwapCoordinator, events: any ContractEventSink,
                clock: any OperationClock, logger: Logger) {
        self.cabinet = cabinet; self.ledger = ledger; self.swaps = swaps; self.events = events; self.clock = clock; self.logger = logger
    }

    // MARK: - Swaps

    /// A swap request (ABS's `swap` command, or a local terminal's through the control API with `channel: "local"`):
    /// the decision on the cached entitlements and the live cabinets, recorded before its first door opens.
    public func requestSwap(header: CommandHeader, customerID: String, planInstanceID: String?, channel: String?) async
        -> OperationResult<SwapAcceptance> {
        switch await swaps.request(header: header, customerID: customerID, planInstanceID: planInstanceID, channel: channel) {
        case let .accepted(a): return .done(a)
        case let .refused(r): return .refused(.swap(r))
        case let .notRecorded(why): return .refused(.storageError(why))
        }
    }

    // MARK: - Slots

    /// Opens a slot's door for maintenance. Audited and recorded as a `maintenance.unlock` event (sent to ABS)
    /// before the door is commanded; no audit, no door.
    public func maintenanceUnlock(slot: Int, reason: String, by requester: Requester) async -> OperationResult<SlotActionDone> {
        let located: (cabinet: Int, slot: Int)
        switch checkSlot(slot) {
        case let .failure(r): return .refused(r)
        case let .success(l): located = l
        }
        let requestID = Self.requestID(requester)
        let now = clock.now()
        if let r = await audit(AuditEntry(timestamp: now, actor: requester.auditActor, action: "maintenance.unlock",
                                          detail: Self.json(["slot": .int(slot), "reason": .string(reason), "request_id": .string(requestID)])),
                               refusing: "the unlock cannot be audited, so the door stays shut") {
            logger.error("maintenance unlock not audited; the door stays shut", metadata: ["slot": "\(slot)", "error": "\(r.message)"])
            return .refused(r)
        }
        await events.record([ContractEvent(.maintenanceUnlock(slot: slot, operatorID: requester.operatorID, reason: reason,
                                                              requestID: requestID))], at: now)
        logger.notice("maintenance unlock", metadata: ["by": "\(requester.auditActor)", "slot": "\(slot)", "reason": "\(reason)"])
        let outcome = await command(.unlock, slot: slot, located: located, requestID: requestID, inService: nil)
        if case let .refused(r) = outcome {
            // The intent was recorded (and sent to ABS) before the door was asked: record that it stayed shut.
            try? await ledger.appendAudit([AuditEntry(timestamp: clock.now(), actor: requester.auditActor, action: "maintenance.unlock.failed",
                                                      detail: Self.json(["slot": .int(slot), "request_id": .string(requestID), "why": .string(r.message)]))])
        }
        return outcome
    }

    /// Takes a slot out of service or returns it to service. Audited before the cabinet is commanded; no audit,
    /// no change. The slot is read again in the next cycle whatever the answer.
    public func setSlotService(slot: Int, inService: Bool, reason: String?, by requester: Requester) async -> OperationResult<SlotActionDone> {
        let located: (cabinet: Int, slot: Int)
        switch checkSlot(slot) {
        case let .failure(r): return .refused(r)
        case let .success(l): located = l
        }
        let requestID = Self.requestID(requester)
        var detail: [String: JSONValue] = ["slot": .int(slot)]
        if let reason { detail["reason"] = .string(reason) }
        if case .abs = requester { detail["request_id"] = .string(requestID) }
        if let r = await audit(AuditEntry(timestamp: clock.now(), actor: requester.auditActor,
                                          action: inService ? "slot.in_service" : "slot.out_of_service", detail: Self.json(detail)),
                               refusing: "the change cannot be audited, so nothing changed") {
            logger.error("slot service change not audited; nothing changed", metadata: ["slot": "\(slot)", "error": "\(r.message)"])
            return .refused(r)
        }
        let outcome = await command(inService ? .returnToService : .outOfService, slot: slot, located: located, requestID: requestID,
                                    inService: inService)
        await cabinet.requestRefresh(slots: [slot])
        return outcome
    }

    // MARK: - Entitlements

    /// Applies an entitlement update to the cache (snapshot, one part of a snapshot in parts, delta), each in one
    /// transaction; records `entitlements.applied` when the cache changed. `header`: the command's (issued_at, and
    /// expires_at for a staged part).
    public func applyEntitlements(_ update: EntitlementUpdate, header: CommandHeader) async -> OperationResult<EntitlementsApplied> {
        let now = clock.now()
        switch update {
        case let .snapshot(version, entitlements, countedThroughSeq):
            do {
                // countedThroughSeq (contract 1.1) acknowledges the local swaps it covers; nil acknowledges nothing.
                try await ledger.applyEntitlementSnapshot(version: version, entitlements: entitlements, issuedAt: header.issuedAt,
                                                          receivedAt: now, countedThroughSeq: countedThroughSeq)
            } catch {
                logger.error("entitlement snapshot not applied", metadata: ["error": "\(error)"])
                return .refused(.storageError("snapshot not applied: storage error"))
            }
            await events.record([ContractEvent(.entitlementsApplied(kind: "snapshot", version: version, count: entitlements.count))], at: now)
            logger.notice("entitlement snapshot applied", metadata: ["version": "\(version)", "count": "\(entitlements.count)"])
            return .done(.snapshot(version: version, count: entitlements.count))

        case let .part(snapshotID, part, parts, version, countedThroughSeq, entitlements):
            let outcome: SnapshotPartOutcome
            do {
                outcome = try await ledger.stageEntitlementSnapshotPart(
                    snapshotID: snapshotID, part: part, parts: parts, version: version, countedThroughSeq: countedThroughSeq,
                    entitlements: entitlements, expiresAt: header.expiresAt, receivedAt: now)
            } catch {
                logger.error("entitlement snapshot part not staged", metadata: ["error": "\(error)"])
                return .refused(.storageError("snapshot part not staged: storage error"))
            }
            switch outcome {
            case let .staged(missing, firstMissing, duplicate):
                return .done(.partStaged(snapshotID: snapshotID, part: part, parts: parts, version: version, missing: missing,
                                         firstMissing: firstMissing, duplicate: duplicate))
            case let .applied(count, _):
                await events.record([ContractEvent(.entitlementsApplied(kind: "snapshot", version: version, count: count,
                                                                        snapshotID: snapshotID, parts: parts))], at: now)
                logger.notice("entitlement snapshot in parts applied",
                              metadata: ["snapshot_id": "\(snapshotID)", "parts": "\(parts)", "version": "\(version)", "count": "\(count)"])
                return .done(.partsApplied(snapshotID: snapshotID, part: part, parts: parts, version: version, count: count))
            case .alreadyApplied:
                return .done(.partsAlreadyApplied(snapshotID: snapshotID, part: part, parts: parts, version: version))
            case let .olderThanStaging(stagingID, stagingVersion):
                logger.warning("snapshot part older than the snapshot being staged: not staged",
                               metadata: ["snapshot_id": "\(snapshotID)", "staging": "\(stagingID)"])
                return .refused(.malformed("snapshot_id \(snapshotID) (version \(version)) is older than the unfinished snapshot_id \(stagingID) (version \(stagingVersion)) being staged; part not staged"))
            case let .inconsistent(why):
                return .refused(.malformed(why))
            }

        case let .delta(base, version, upsert, remove, countedThroughSeq):
            let outcome: DeltaOutcome
            do {
                outcome = try await ledger.applyEntitlementDelta(baseVersion: base, version: version, upsert: upsert, remove: remove,
                                                                 issuedAt: header.issuedAt, receivedAt: now, countedThroughSeq: countedThroughSeq)
            } catch {
                logger.error("entitlement delta not applied", metadata: ["error": "\(error)"])
                return .refused(.storageError("delta not applied: storage error"))
            }
            switch outcome {
            case .applied:
                await events.record([ContractEvent(.entitlementsApplied(kind: "delta", version: version, count: upsert.count + remove.count))], at: now)
                return .done(.delta(version: version, changes: upsert.count + remove.count))
            case .alreadyApplied:
                return .done(.deltaAlreadyApplied(version: version))
            case let .needSnapshot(current):
                logger.warning("entitlement delta does not apply: need a snapshot", metadata: ["base": "\(base)", "current": "\(current.map(String.init) ?? "none")"])
                return .refused(.needSnapshot(currentVersion: current,
                                              "delta base \(base) does not match the cache (version \(current.map(String.init) ?? "none"))"))
            }
        }
    }

    // MARK: - Usage records

    /// Queues a usage record Odoo rejected again (its idempotency key kept). Audited before it is queued: no audit,
    /// nothing queued. Returns the record as it now stands.
    public func resendUsage(key: String, by requester: Requester) async -> OperationResult<StoredUsage> {
        let existing: StoredUsage?
        do { existing = try await ledger.usage(key: key) } catch {
            return .refused(.storageError("the usage outbox cannot be read: \(error)"))
        }
        guard existing != nil else { return .refused(.notFound("no usage record \(key)")) }
        let now = clock.now()
        if let r = await audit(AuditEntry(timestamp: now, actor: requester.auditActor, action: "usage.resend", detail: Self.json(["key": .string(key)])),
                               refusing: "the re-send cannot be audited, so nothing was queued") {
            return .refused(r)
        }
        do {
            guard try await ledger.resendUsage(key: key, now: now), let u = try await ledger.usage(key: key) else {
                return .refused(.notFound("no usage record \(key)"))
            }
            logger.notice("usage record queued again", metadata: ["key": "\(key)", "by": "\(requester.auditActor)"])
            return .done(u)
        } catch {
            return .refused(.storageError("the usage record cannot be queued again: \(error)"))
        }
    }

    // MARK: - The policy's parts

    /// Rule 1: a station-wide slot whose cabinet answers.
    func checkSlot(_ slot: Int) -> Result<(cabinet: Int, slot: Int), OperationRefusal> {
        let snap = cabinet.snapshot
        let count = snap.slotCount
        guard count > 0 else { return .failure(.cabinetUnreachable("the cabinet has not answered yet")) }
        guard (1 ... count).contains(slot), let located = cabinet.locate(slot) else {
            return .failure(.invalidSlot("slot \(slot) outside 1…\(count)"))
        }
        let stale = snap.cabinetState(ofSlot: slot)?.stale ?? (snap.cabinetStale || snap.cabinet == nil)
        if stale {
            let ids = cabinet.cabinetIDs
            let name = ids.count > 1 && located.cabinet < ids.count ? "cabinet \(ids[located.cabinet])" : "the cabinet"
            return .failure(.cabinetUnreachable("\(name) is not answering; slot \(slot) cannot be commanded"))
        }
        return .success(located)
    }

    /// Rule 2: the audit row, durably; nil when written, else the refusal.
    private func audit(_ entry: AuditEntry, refusing why: String) async -> OperationRefusal? {
        do {
            try await ledger.appendAudit([entry])
            return nil
        } catch {
            return .storageError("storage error: \(why) (\(error))")
        }
    }

    /// Rule 3: the command, and the controller's answer.
    private func command(_ command: CabinetCommand, slot: Int, located: (cabinet: Int, slot: Int), requestID: String,
                         inService: Bool?) async -> OperationResult<SlotActionDone> {
        let result: CommandResult
        do { result = try await cabinet.execute(command, slot: slot, param: 0, timeout: commandTimeout) } catch {
            return .refused(.cabinetUnreachable("the cabinet did not confirm the command: \(error)"))
        }
        guard result == .ok else {
            return .refused(result == .invalidSlot ? .invalidSlot("cabinet answered: \(result)") : .cabinetRefused(result))
        }
        let ids = cabinet.cabinetIDs
        let several = ids.count > 1 && located.cabinet < ids.count
        return .done(SlotActionDone(slot: slot, cabinet: several ? ids[located.cabinet] : nil, cabinetSlot: several ? located.slot : nil,
                                    requestID: requestID, result: result, inService: inService))
    }

    static func requestID(_ requester: Requester) -> String {
        switch requester {
        case let .abs(requestID, _): requestID
        case .technician: "local-" + UUID().uuidString.lowercased()
        }
    }

    /// An audit row's detail: a JSON object, keys sorted (the contract's one JSON writer).
    static func json(_ object: [String: JSONValue]) -> String { ContractJSON.string(JSONValue.object(object)) }
}
