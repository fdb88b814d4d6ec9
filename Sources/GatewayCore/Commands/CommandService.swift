import ABSProtocol
import Acquisition
import Foundation
import Logging
import MQTTLink
import ServiceLifecycle
import StationDomain
import StationStore

/// Takes ABS's commands from `cmd/V01/BSS/{sid}/+`: verifies the signed envelope before parsing, refuses
/// expired and replayed ones (request ids remembered durably until they expire), dispatches, and answers
/// every command on `…/reply` (and on the MQTT 5 response topic with its correlation data when given).
/// Not an actor: it holds no mutable state, so the entitlement-sync lane (seconds of verifying and parsing a
/// 100k snapshot) and the swap lane run side by side.
public final class CommandService: Service, Sendable {
    private let mqtt: MQTTClient
    private let topics: Topics
    private let verifier: CommandVerifier
    private let store: StationStore
    private let coordinator: SwapCoordinator
    private let acquisition: StationAcquisition
    private let recorder: EventRecorder
    private let metrics: GatewayMetrics
    private let logger: Logger
    private let version: String
    /// Payload bytes the entitlement lane holds before only commands that verify may still wait in it.
    private let maxQueuedBytes: Int
    /// `rebirth`: republishes status, inventory and a full telemetry report (StationPublisher.rebirth).
    private let rebirth: (@Sendable () async -> Void)?
    /// Trusted time (contract 1.1 "Time"): what commands are judged against, moved forward by signed ones.
    private let clock: TrustedClock

    public init(mqtt: MQTTClient, topics: Topics, verifier: CommandVerifier, store: StationStore, coordinator: SwapCoordinator,
                acquisition: StationAcquisition, recorder: EventRecorder, metrics: GatewayMetrics, version: String,
                maxQueuedBytes: Int = 64 * 1024 * 1024, logger: Logger, rebirth: (@Sendable () async -> Void)? = nil,
                clock: TrustedClock = TrustedClock(trust: .system, maxSkew: 120)) {
        self.rebirth = rebirth
        self.clock = clock
        self.mqtt = mqtt; self.topics = topics; self.verifier = verifier; self.store = store; self.coordinator = coordinator
        self.acquisition = acquisition; self.recorder = recorder; self.metrics = metrics; self.version = version; self.logger = logger
        self.maxQueuedBytes = maxQueuedBytes
    }

    public func run() async throws {
        // Subscribe at once (commands that arrive meanwhile wait in the stream), but act on none before the
        // SwapService has finished a swap that a power cut interrupted from a fresh cabinet reading (it waits up
        // to 60 s for one; after that the coordinator keeps trying and refuses swaps with station_busy until it could).
        // Retain As Published (MQTT 5): a command published with retain keeps the flag on live delivery and in the
        // session's queue, so it can be refused. MQTT 3.1.1 clears it on live delivery (docs/mqtt-adapter.md).
        try mqtt.subscribe(topics.commands, qos: 1, retainAsPublished: true)
        let messages = mqtt.messages
        await cancelWhenGracefulShutdown { await self.coordinator.started.wait() }
        if Task.isShuttingDownGracefully { return }
        logger.notice("accepting commands", metadata: ["topic": "\(topics.commands)"])
        if mqtt.protocolInUse == .v311 {
            logger.warning("MQTT 3.1.1: a command retained while the station is subscribed cannot be told apart from a live one")
        }
        await cancelWhenGracefulShutdown {
            // Two lanes: entitlement sync (a 100k snapshot takes seconds to verify, parse and apply) runs beside
            // the rest, so swaps keep being decided — on the cache as it is until the new one swaps in atomically.
            // Each lane keeps its own order (snapshot before the deltas built on it). The entitlement lane drops
            // nothing: it is unbounded in count and bounded in bytes; once full, a command must verify before it
            // may wait in it (unsigned garbage is refused at once and never displaces a signed command).
            let syncLane = SyncLane()
            let syncTopic = self.topics.command("entitlements")
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await message in messages {
                        self.metrics.traffic.countReceived(message)
                        if message.topic == syncTopic { await self.enqueueSync(message, lane: syncLane) } else { await self.handleReleasing(message) }
                    }
                    syncLane.finish()
                }
                group.addTask {
                    while let item = await syncLane.next() {
                        let size = item.message.size
                        await self.handle(item.message, preverified: item.verified)
                        syncLane.done(bytes: item.bytes)
                        if size >= Self.largeMessageBytes { releaseFreeHeap() }
                    }
                }
                await group.waitForAll()
            }
        }
    }

    /// A payload at least this large is followed by malloc_trim once handled (docs/mqtt-adapter.md).
    static let largeMessageBytes = 1 << 20

    /// Handles a message of the swap lane, then gives the heap back if it was large.
    private func handleReleasing(_ message: MQTTMessage) async {
        let large = message.size >= Self.largeMessageBytes
        await handle(message)
        if large { releaseFreeHeap() }
    }

    /// Puts an entitlement command in its lane. While the lane holds less than `maxQueuedBytes` (or nothing),
    /// it goes in as it is. Beyond that only a command that verifies may wait (ABS's own burst: backpressure,
    /// not loss); anything else is answered with its refusal at once.
    private func enqueueSync(_ message: MQTTMessage, lane: SyncLane) async {
        if message.discarded != nil || lane.hasRoom(for: message.size, limit: maxQueuedBytes) {
            lane.push(.init(message: message, verified: nil, bytes: message.payload.count))
            return
        }
        let result = verifier.verify(command: "entitlements", payload: message.payload, retained: message.retain, time: clock.commandTime())
        switch result {
        case .failure:
            await handle(message, preverified: result)
        case .success:
            // Verified: the payload is not needed any more, only the parsed command.
            let stripped = MQTTMessage(topic: message.topic, payload: [], qos: message.qos, retain: message.retain,
                                       responseTopic: message.responseTopic, correlationData: message.correlationData, size: message.size)
            lane.push(.init(message: stripped, verified: result, bytes: message.size))
        }
    }

    /// Handles one MQTT message (public for tests and the local control API).
    public func handle(_ message: MQTTMessage) async {
        await handle(message, preverified: nil)
    }

    /// `preverified`: the verifier's result when it already ran (entitlement lane under pressure).
    private func handle(_ message: MQTTMessage, preverified: Result<VerifiedCommand, CommandRefusal>?) async {
        guard message.topic.hasPrefix(topics.command("")) else { return }
        let name = String(message.topic.dropFirst(topics.command("").count))
        // Trusted time: the clock, or the signed time base while the clock is not trusted (TrustedClock).
        let time = clock.commandTime()
        var now = clock.now()
        let reply: (requestID: String?, ok: Bool, code: String?, message: String?, data: [String: any Sendable]?)
        // A response topic is honoured only for a command whose signature verified (send()).
        var verifiedSigned = false
        let verification: Result<VerifiedCommand, CommandRefusal>
        switch message.discarded {
        case let .oversize(limit)?:
            // The adapter kept nothing of it: answer without reading it.
            verification = .failure(CommandRefusal(code: .malformed, message: "payload of \(message.size) bytes exceeds the station's limit of \(limit) bytes for this command"))
        case let .queueFull(limit)?:
            verification = .failure(CommandRefusal(code: .stationBusy, message: "command queue full (\(limit) bytes waiting); not read, send it again"))
        case nil:
            verification = preverified ?? verifier.verify(command: name, payload: message.payload, retained: message.retain, time: time)
        }
        switch verification {
        case let .failure(refusal):
            logger.warning("command refused", metadata: ["command": "\(name)", "code": "\(refusal.code.rawValue)", "why": "\(refusal.message)"])
            reply = (refusal.requestID, false, refusal.code.rawValue, refusal.message, nil)
        case let .success(command):
            verifiedSigned = command.signed
            // Verified (signature) and not expired against the current time: a signed command's issued_at moves the
            // time base forward (persisted); an unsigned one (development) never does. Before dispatch, so a swap's
            // entitlement validity is judged against the newest signed time.
            if command.signed {
                await clock.accept(issuedAt: command.header.issuedAt, store: store)
                now = clock.now()
            }
            // Replay: the request id is remembered durably only once the command is authentic.
            let fresh: Bool
            do { fresh = try await store.rememberRequest(command.header.requestID, expiresAt: command.header.expiresAt, now: now) } catch {
                logger.error("cannot record the request id; refusing the command", metadata: ["error": "\(error)"])
                await send(requestID: command.header.requestID, ok: false, code: "station_busy", message: "storage error", data: nil, to: message,
                           honourResponseTopic: command.signed)
                metrics.countCommand(name, result: "station_busy")
                return
            }
            if !fresh {
                reply = (command.header.requestID, false, "replayed", "request \(command.header.requestID) was already received", nil)
            } else {
                let r = await dispatch(command, now: now)
                reply = (command.header.requestID, r.ok, r.code, r.message, r.data)
            }
        }
        metrics.countCommand(name, result: reply.ok ? "ok" : (reply.code ?? "error"))
        await send(requestID: reply.requestID, ok: reply.ok, code: reply.code, message: reply.message, data: reply.data, to: message,
                   honourResponseTopic: verifiedSigned)
    }

    private func dispatch(_ command: VerifiedCommand, now: Date) async -> SwapCoordinator.Reply {
        switch command.body {
        case let .swap(customerID, planInstanceID, channel):
            return await coordinator.request(header: command.header, customerID: customerID, planInstanceID: planInstanceID, channel: channel)
        case .rebirth:
            guard let rebirth else { return .init(ok: false, code: "station_busy", message: "rebirth is not wired in this gateway", data: nil) }
            await rebirth()
            return .init(ok: true, code: nil, message: nil, data: nil)
        case .ping:
            let snap = acquisition.snapshot
            return .init(ok: true, code: nil, message: nil, data: [
                "version": version, "cabinet_online": !snap.cabinetStale, "swaps_in_progress": await coordinator.swapsInProgress,
            ])
        case let .unlock(slot, operatorID, reason):
            return await maintenanceUnlock(slot: slot, operatorID: operatorID, reason: reason, requestID: command.header.requestID)
        case let .slot(slot, inService):
            return await setService(slot: slot, inService: inService, requestID: command.header.requestID)
        case let .entitlementSnapshot(version, entitlements, countedThroughSeq):
            do {
                // countedThroughSeq (contract 1.1) acknowledges the local swaps it covers; nil acknowledges nothing.
                try await store.applyEntitlementSnapshot(version: version, entitlements: entitlements, issuedAt: command.header.issuedAt,
                                                         receivedAt: now, countedThroughSeq: countedThroughSeq)
                await recorder.record([ContractEvent("entitlements.applied", ["kind": "snapshot", "version": version, "count": entitlements.count])])
                logger.notice("entitlement snapshot applied", metadata: ["version": "\(version)", "count": "\(entitlements.count)"])
                return .init(ok: true, code: nil, message: nil, data: ["version": version, "count": entitlements.count])
            } catch {
                logger.error("entitlement snapshot not applied", metadata: ["error": "\(error)"])
                return .init(ok: false, code: "station_busy", message: "snapshot not applied: storage error", data: nil)
            }
        case let .entitlementSnapshotPart(p):
            return await stageSnapshotPart(p, header: command.header, now: now)
        case let .entitlementDelta(base, version, upsert, remove, countedThroughSeq):
            do {
                switch try await store.applyEntitlementDelta(baseVersion: base, version: version, upsert: upsert, remove: remove,
                                                             issuedAt: command.header.issuedAt, receivedAt: now,
                                                             countedThroughSeq: countedThroughSeq) {
                case .applied:
                    await recorder.record([ContractEvent("entitlements.applied", ["kind": "delta", "version": version, "count": upsert.count + remove.count])])
                    return .init(ok: true, code: nil, message: nil, data: ["version": version])
                case .alreadyApplied:
                    return .init(ok: true, code: nil, message: "delta \(version) already applied", data: ["version": version])
                case let .needSnapshot(current):
                    logger.warning("entitlement delta does not apply: need a snapshot", metadata: ["base": "\(base)", "current": "\(current.map(String.init) ?? "none")"])
                    return .init(ok: false, code: "need_snapshot", message: "delta base \(base) does not match the cache (version \(current.map(String.init) ?? "none"))",
                                 data: ["current_version": current.map { Int($0) } ?? -1])
                }
            } catch {
                return .init(ok: false, code: "station_busy", message: "delta not applied: storage error", data: nil)
            }
        }
    }

    /// One part of a snapshot in parts (contract 1.1): staged durably; the snapshot swaps in when its last part
    /// arrives. Reply data: `snapshot_id`, `part`, `parts`, `parts_missing` (how many parts have not arrived) and
    /// `first_missing` (the lowest missing part numbers, at most 20), so ABS knows what to send again.
    private func stageSnapshotPart(_ p: EntitlementSnapshotPart, header: CommandHeader, now: Date) async -> SwapCoordinator.Reply {
        let base: [String: any Sendable] = ["snapshot_id": p.snapshotID, "part": p.part, "parts": p.parts, "version": p.version]
        do {
            let outcome = try await store.stageEntitlementSnapshotPart(
                snapshotID: p.snapshotID, part: p.part, parts: p.parts, version: p.version, countedThroughSeq: p.countedThroughSeq,
                entitlements: p.entitlements, expiresAt: header.expiresAt, receivedAt: now)
            var data = base
            switch outcome {
            case let .staged(missing, firstMissing, duplicate):
                data["parts_missing"] = missing
                data["first_missing"] = firstMissing
                return .init(ok: true, code: nil, message: duplicate ? "part \(p.part) already staged" : nil, data: data)
            case let .applied(count, _):
                data["parts_missing"] = 0
                data["first_missing"] = [Int]()
                data["count"] = count
                await recorder.record([ContractEvent("entitlements.applied", ["kind": "snapshot", "version": p.version, "count": count,
                                                                             "snapshot_id": p.snapshotID, "parts": p.parts])])
                logger.notice("entitlement snapshot in parts applied",
                              metadata: ["snapshot_id": "\(p.snapshotID)", "parts": "\(p.parts)", "version": "\(p.version)", "count": "\(count)"])
                return .init(ok: true, code: nil, message: nil, data: data)
            case .alreadyApplied:
                data["parts_missing"] = 0
                data["first_missing"] = [Int]()
                return .init(ok: true, code: nil, message: "snapshot \(p.snapshotID) already applied", data: data)
            case let .olderThanStaging(stagingID, stagingVersion):
                logger.warning("snapshot part older than the snapshot being staged: not staged",
                               metadata: ["snapshot_id": "\(p.snapshotID)", "staging": "\(stagingID)"])
                return .init(ok: false, code: "malformed",
                             message: "snapshot_id \(p.snapshotID) (version \(p.version)) is older than the unfinished snapshot_id \(stagingID) (version \(stagingVersion)) being staged; part not staged",
                             data: nil)
            case let .inconsistent(why):
                return .init(ok: false, code: "malformed", message: why, data: nil)
            }
        } catch {
            logger.error("entitlement snapshot part not staged", metadata: ["error": "\(error)"])
            return .init(ok: false, code: "station_busy", message: "snapshot part not staged: storage error", data: nil)
        }
    }

    /// Station-wide slot numbers (abs-mqtt.md, "Several cabinets"): 1…the station's slot count.
    private func checkSlot(_ slot: Int) -> SwapCoordinator.Reply? {
        let count = acquisition.snapshot.slotCount
        guard slot >= 1, slot <= count, acquisition.locate(slot) != nil else {
            return .init(ok: false, code: "invalid_slot", message: "slot \(slot) outside 1…\(count)", data: nil)
        }
        return nil
    }

    /// The reply data of a slot command: the station-wide slot and, with several cabinets, its cabinet.
    private func slotData(_ slot: Int) -> [String: any Sendable] {
        var d: [String: any Sendable] = ["slot": slot]
        if acquisition.cabinets.count > 1, let (i, local) = acquisition.locate(slot) {
            d["cabinet"] = acquisition.cabinets[i].configuration.cabinetID
            d["cabinet_slot"] = local
        }
        return d
    }

    private func maintenanceUnlock(slot: Int, operatorID: String, reason: String, requestID: String) async -> SwapCoordinator.Reply {
        if let refusal = checkSlot(slot) { return refusal }
        // Audited (durably) and recorded for ABS before the door opens; no audit, no door (as for the local unlock).
        do {
            try await store.appendAudit([AuditEntry(timestamp: Date(), actor: "operator:\(operatorID)", action: "maintenance.unlock",
                                                    detail: String(decoding: JSON.encode(["slot": slot, "reason": reason, "request_id": requestID]), as: UTF8.self))])
        } catch {
            logger.error("maintenance unlock not audited; the door stays shut", metadata: ["slot": "\(slot)", "error": "\(error)"])
            return .init(ok: false, code: "station_busy", message: "storage error: the unlock cannot be audited, so the door stays shut", data: nil)
        }
        await recorder.record([ContractEvent("maintenance.unlock", ["slot": slot, "operator_id": operatorID, "reason": reason, "request_id": requestID])])
        do {
            let result = try await acquisition.execute(.unlock, slot: slot)
            return result == .ok ? .init(ok: true, code: nil, message: nil, data: slotData(slot))
                                 : .init(ok: false, code: result == .invalidSlot ? "invalid_slot" : "safe_mode", message: "cabinet: \(result)", data: nil)
        } catch {
            return .init(ok: false, code: "station_busy", message: "cabinet not answering: \(error)", data: nil)
        }
    }

    private func setService(slot: Int, inService: Bool, requestID: String) async -> SwapCoordinator.Reply {
        if let refusal = checkSlot(slot) { return refusal }
        // No audit, no change (the same rule as for unlocks and the local control API).
        do {
            try await store.appendAudit([AuditEntry(timestamp: Date(), actor: "abs:\(requestID)", action: inService ? "slot.in_service" : "slot.out_of_service",
                                                    detail: "{\"slot\":\(slot)}")])
        } catch {
            logger.error("slot service change not audited; nothing changed", metadata: ["slot": "\(slot)", "error": "\(error)"])
            return .init(ok: false, code: "station_busy", message: "storage error: the change cannot be audited, so nothing changed", data: nil)
        }
        do {
            let result = try await acquisition.execute(inService ? .returnToService : .outOfService, slot: slot)
            await acquisition.requestRefresh(slots: [slot])
            var data = slotData(slot)
            data["in_service"] = inService
            return result == .ok ? .init(ok: true, code: nil, message: nil, data: data)
                                 : .init(ok: false, code: "invalid_slot", message: "cabinet: \(result)", data: nil)
        } catch {
            return .init(ok: false, code: "station_busy", message: "cabinet not answering: \(error)", data: nil)
        }
    }

    /// Publishes the reply on …/reply and, for a command whose signature verified (`honourResponseTopic`), also on
    /// its MQTT 5 response topic, unless that topic is one the station must never publish to (Topics.isAcceptableResponseTopic).
    private func send(requestID: String?, ok: Bool, code: String?, message: String?, data: [String: any Sendable]?, to command: MQTTMessage,
                      honourResponseTopic: Bool) async {
        let payload = Replies.reply(requestID: requestID, ok: ok, code: code, message: message, data: data, now: Date())
        do { try await mqtt.publish(.replies, meter: metrics.traffic, topic: topics.reply, payload: payload, qos: 1, retain: false) } catch {
            logger.warning("reply not published", metadata: ["error": "\(error)", "request_id": "\(requestID ?? "-")"])
        }
        guard let rt = command.responseTopic else { return }
        guard honourResponseTopic else {
            logger.debug("response topic of an unverified command ignored")
            return
        }
        guard topics.isAcceptableResponseTopic(rt) else {
            logger.warning("response topic refused (station or command namespace, wildcard, or system topic)",
                           metadata: ["response_topic": "\(String(rt.prefix(200)).debugDescription)", "request_id": "\(requestID ?? "-")"])
            return
        }
        try? await mqtt.publish(.replies, meter: metrics.traffic, topic: rt, payload: payload, qos: 1, retain: false,
                                properties: MQTTPublishProperties(responseTopic: nil, correlationData: command.correlationData))
    }
}

/// The entitlement lane: first in, first out, unbounded in count, its payload bytes counted until handled.
final class SyncLane: Sendable {
    struct Item: Sendable {
        let message: MQTTMessage
        let verified: Result<VerifiedCommand, CommandRefusal>?
        /// Bytes this item holds until `done(bytes:)`.
        let bytes: Int
    }
    private struct State {
        var items: [Item] = []
        var head = 0
        var bytes = 0
        var finished = false
        var waiter: CheckedContinuation<Item?, Never>?
    }
    private let box = Locked(State())

    /// Room for `size` more bytes under `limit` (always, when the lane holds nothing).
    func hasRoom(for size: Int, limit: Int) -> Bool { box.withLock { $0.bytes == 0 || $0.bytes + size <= limit } }

    func push(_ item: Item) {
        let waiter = box.withLock { s -> CheckedContinuation<Item?, Never>? in
            s.bytes += item.bytes
            if let w = s.waiter { s.waiter = nil; return w }
            s.items.append(item)
            return nil
        }
        waiter?.resume(returning: item)
    }

    func done(bytes: Int) { box.withLock { $0.bytes -= bytes } }

    func finish() {
        let waiter = box.withLock { s -> CheckedContinuation<Item?, Never>? in
            s.finished = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The next item; nil once finished and empty, or when the task is cancelled.
    func next() async -> Item? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Item?, Never>) in
                let immediate = box.withLock { s -> Item?? in
                    if s.head < s.items.count {
                        let item = s.items[s.head]
                        s.head += 1
                        if s.head == s.items.count { s.items.removeAll(); s.head = 0 }
                        return .some(item)
                    }
                    if s.finished || Task.isCancelled { return .some(nil) }
                    s.waiter = c
                    return nil
                }
                if let immediate { c.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = box.withLock { s -> CheckedContinuation<Item?, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: nil)
        }
    }
}

/// glibc keeps freed pages of a large message (tens of MB) in its arenas; malloc_trim(0) gives them back.
/// Looked up at run time (Glibc's Swift module does not export it); a no-op elsewhere.
func releaseFreeHeap() {
    typealias Trim = @convention(c) (Int) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
    _ = unsafeBitCast(symbol, to: Trim.self)(0)
}
