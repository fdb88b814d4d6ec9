import ABSProtocol
import Acquisition
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
    /// The station's operations (swap, unlock, set service, entitlements): this service only maps their typed results.
    private let operations: StationOperations

    public init(mqtt: MQTTClient, topics: Topics, verifier: CommandVerifier, store: StationStore, coordinator: SwapCoordinator,
                acquisition: StationAcquisition, recorder: EventRecorder, metrics: GatewayMetrics, version: String,
                maxQueuedBytes: Int = 64 * 1024 * 1024, logger: Logger, rebirth: (@Sendable () async -> Void)? = nil,
                clock: TrustedClock = TrustedClock(trust: .system, maxSkew: 120), operations: StationOperations) {
        self.rebirth = rebirth
        self.operations = operations
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
        let reply: (requestID: String?, ok: Bool, code: ReplyCode?, message: String?, data: ReplyData?)
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
            reply = (refusal.requestID, false, refusal.code, refusal.message, nil)
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
                await send(requestID: command.header.requestID, ok: false, code: .stationBusy, message: "storage error", data: nil, to: message,
                           honourResponseTopic: command.signed)
                metrics.countCommand(name, result: "station_busy")
                return
            }
            if !fresh {
                reply = (command.header.requestID, false, .replayed, "request \(command.header.requestID) was already received", nil)
            } else {
                let r = await dispatch(command, now: now)
                reply = (command.header.requestID, r.ok, r.code, r.message, r.data)
            }
        }
        metrics.countCommand(name, result: reply.ok ? "ok" : (reply.code?.rawValue ?? "error"))
        await send(requestID: reply.requestID, ok: reply.ok, code: reply.code, message: reply.message, data: reply.data, to: message,
                   honourResponseTopic: verifiedSigned)
    }

    private func dispatch(_ command: VerifiedCommand, now: Date) async -> Handled {
        switch command.body {
        case let .swap(customerID, planInstanceID, channel):
            return Self.reply(await operations.requestSwap(header: command.header, customerID: customerID, planInstanceID: planInstanceID,
                                                           channel: channel)) { $0.data }
        case .rebirth:
            guard let rebirth else { return .init(ok: false, code: .stationBusy, message: "rebirth is not wired in this gateway", data: nil) }
            await rebirth()
            return .init(ok: true, code: nil, message: nil, data: nil)
        case .ping:
            let snap = acquisition.snapshot
            return .init(ok: true, code: nil, message: nil,
                         data: PingReplyData(version: version, cabinetOnline: !snap.cabinetStale, swapsInProgress: await coordinator.swapsInProgress))
        case let .unlock(slot, operatorID, reason):
            return Self.reply(await operations.maintenanceUnlock(slot: slot, reason: reason,
                                                                 by: .abs(requestID: command.header.requestID, operatorID: operatorID))) { Self.slotData($0) }
        case let .slot(slot, inService):
            return Self.reply(await operations.setSlotService(slot: slot, inService: inService, reason: nil,
                                                              by: .abs(requestID: command.header.requestID, operatorID: nil))) { Self.slotData($0) }
        case let .entitlementSnapshot(version, entitlements, countedThroughSeq):
            return Self.reply(await operations.applyEntitlements(.snapshot(version: version, entitlements: entitlements, countedThroughSeq: countedThroughSeq),
                                                                 header: command.header))
        case let .entitlementSnapshotPart(p):
            return Self.reply(await operations.applyEntitlements(.part(snapshotID: p.snapshotID, part: p.part, parts: p.parts, version: p.version,
                                                                       countedThroughSeq: p.countedThroughSeq, entitlements: p.entitlements),
                                                                 header: command.header))
        case let .entitlementDelta(base, version, upsert, remove, countedThroughSeq):
            return Self.reply(await operations.applyEntitlements(.delta(baseVersion: base, version: version, upsert: upsert, remove: remove,
                                                                        countedThroughSeq: countedThroughSeq),
                                                                 header: command.header))
        }
    }

    // MARK: - Typed results to ABS replies

    /// What handling a command gives its reply: ok, the contract's reply code, message and data.
    struct Handled: Sendable {
        let ok: Bool
        let code: ReplyCode?
        let message: String?
        let data: ReplyData?
    }

    /// A done operation's reply (its data from `data`), or its refusal's (OperationRefusal.absCode).
    static func reply<V>(_ result: OperationResult<V>, data: (V) -> ReplyData?) -> Handled {
        switch result {
        case let .done(v): return .init(ok: true, code: nil, message: nil, data: data(v))
        case let .refused(r): return refusalReply(r)
        }
    }

    static func refusalReply(_ r: OperationRefusal) -> Handled {
        var data: ReplyData?
        if case let .needSnapshot(current, _) = r { data = EntitlementsReplyData(currentVersion: current.map { Int($0) } ?? -1) }
        return .init(ok: false, code: r.absCode, message: r.message, data: data)
    }

    /// The reply data of a slot command: the station-wide slot and, with several cabinets, its cabinet.
    static func slotData(_ done: SlotActionDone) -> SlotReplyData {
        var d = SlotReplyData(slot: done.slot, inService: done.inService)
        if let cabinet = done.cabinet, let local = done.cabinetSlot { d.cabinet = cabinet; d.cabinetSlot = local }
        return d
    }

    /// An entitlement update's reply: `version` (and `count`), for a part `snapshot_id`, `part`, `parts`,
    /// `parts_missing` and `first_missing` (the lowest missing part numbers, at most 20) so ABS knows what to send again.
    static func reply(_ result: OperationResult<EntitlementsApplied>) -> Handled {
        guard case let .done(applied) = result else { return refusalReply(result.refusal!) }
        func part(_ id: String, _ part: Int, _ parts: Int, _ version: Int64, missing: Int, first: [Int]) -> EntitlementsReplyData {
            EntitlementsReplyData(version: version, snapshotID: id, part: part, parts: parts, partsMissing: missing, firstMissing: first)
        }
        switch applied {
        case let .snapshot(version, count):
            return .init(ok: true, code: nil, message: nil, data: EntitlementsReplyData(version: version, count: count))
        case let .partStaged(id, p, parts, version, missing, firstMissing, duplicate):
            return .init(ok: true, code: nil, message: duplicate ? "part \(p) already staged" : nil,
                         data: part(id, p, parts, version, missing: missing, first: firstMissing))
        case let .partsApplied(id, p, parts, version, count):
            var d = part(id, p, parts, version, missing: 0, first: [])
            d.count = count
            return .init(ok: true, code: nil, message: nil, data: d)
        case let .partsAlreadyApplied(id, p, parts, version):
            return .init(ok: true, code: nil, message: "snapshot \(id) already applied", data: part(id, p, parts, version, missing: 0, first: []))
        case let .delta(version, _):
            return .init(ok: true, code: nil, message: nil, data: EntitlementsReplyData(version: version))
        case let .deltaAlreadyApplied(version):
            return .init(ok: true, code: nil, message: "delta \(version) already applied", data: EntitlementsReplyData(version: version))
        }
    }

    /// Publishes the reply on …/reply and, for a command whose signature verified (`honourResponseTopic`), also on
    /// its MQTT 5 response topic, unless that topic is one the station must never publish to (Topics.isAcceptableResponseTopic).
    private func send(requestID: String?, ok: Bool, code: ReplyCode?, message: String?, data: ReplyData?, to command: MQTTMessage,
                      honourResponseTopic: Bool) async {
        let payload = Reply(requestID: requestID, ok: ok, code: code, message: message, data: data, ts: Date()).bytes
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
