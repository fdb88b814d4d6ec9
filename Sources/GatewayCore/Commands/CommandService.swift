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
    private let acquisition: CabinetAcquisition
    private let recorder: EventRecorder
    private let metrics: GatewayMetrics
    private let logger: Logger
    private let version: String

    public init(mqtt: MQTTClient, topics: Topics, verifier: CommandVerifier, store: StationStore, coordinator: SwapCoordinator,
                acquisition: CabinetAcquisition, recorder: EventRecorder, metrics: GatewayMetrics, version: String, logger: Logger) {
        self.mqtt = mqtt; self.topics = topics; self.verifier = verifier; self.store = store; self.coordinator = coordinator
        self.acquisition = acquisition; self.recorder = recorder; self.metrics = metrics; self.version = version; self.logger = logger
    }

    public func run() async throws {
        // Subscribe at once (commands that arrive meanwhile wait in the stream), but act on none before a
        // swap that a power cut interrupted is finished from a fresh cabinet reading (up to 60 s; after that
        // the coordinator keeps trying and refuses swaps with station_busy until it could).
        try mqtt.subscribe(topics.commands, qos: 1)
        let messages = mqtt.messages
        for _ in 0 ..< 600 {
            let snap = acquisition.snapshot
            if (snap.cabinet != nil && !snap.cabinetStale) || Task.isShuttingDownGracefully { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        await coordinator.reconcileAfterRestart()
        logger.notice("accepting commands", metadata: ["topic": "\(topics.commands)"])
        await cancelWhenGracefulShutdown {
            // Two lanes: entitlement sync (a 100k snapshot takes seconds to verify, parse and apply) runs beside
            // the rest, so swaps keep being decided — on the cache as it is until the new one swaps in atomically.
            // Each lane keeps its own order (snapshot before the deltas built on it).
            let (syncLane, syncSink) = AsyncStream.makeStream(of: MQTTMessage.self, bufferingPolicy: .bufferingNewest(64))
            let syncTopic = self.topics.command("entitlements")
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await message in messages {
                        if message.topic == syncTopic { syncSink.yield(message) } else { await self.handle(message) }
                    }
                    syncSink.finish()
                }
                group.addTask { for await message in syncLane { await self.handle(message) } }
                group.addTask {
                    // Drive running swaps: timeouts need a clock even when nothing changes.
                    while !Task.isCancelled {
                        await self.coordinator.evaluate()
                        try? await Task.sleep(for: .milliseconds(250))
                    }
                }
                await group.waitForAll()
            }
        }
    }

    /// Handles one MQTT message (public for tests and the local control API).
    public func handle(_ message: MQTTMessage) async {
        guard message.topic.hasPrefix(topics.command("")) else { return }
        let name = String(message.topic.dropFirst(topics.command("").count))
        let now = Date()
        let reply: (requestID: String?, ok: Bool, code: String?, message: String?, data: [String: any Sendable]?)
        switch verifier.verify(command: name, payload: message.payload, retained: message.retain, now: now) {
        case let .failure(refusal):
            logger.warning("command refused", metadata: ["command": "\(name)", "code": "\(refusal.code.rawValue)", "why": "\(refusal.message)"])
            reply = (refusal.requestID, false, refusal.code.rawValue, refusal.message, nil)
        case let .success(command):
            // Replay: the request id is remembered durably only once the command is authentic.
            let fresh: Bool
            do { fresh = try await store.rememberRequest(command.header.requestID, expiresAt: command.header.expiresAt, now: now) } catch {
                logger.error("cannot record the request id; refusing the command", metadata: ["error": "\(error)"])
                await send(requestID: command.header.requestID, ok: false, code: "station_busy", message: "storage error", data: nil, to: message)
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
        await send(requestID: reply.requestID, ok: reply.ok, code: reply.code, message: reply.message, data: reply.data, to: message)
    }

    private func dispatch(_ command: VerifiedCommand, now: Date) async -> SwapCoordinator.Reply {
        switch command.body {
        case let .swap(customerID, planInstanceID, channel):
            return await coordinator.request(header: command.header, customerID: customerID, planInstanceID: planInstanceID, channel: channel)
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

    private func maintenanceUnlock(slot: Int, operatorID: String, reason: String, requestID: String) async -> SwapCoordinator.Reply {
        let count = acquisition.snapshot.cabinet?.slotCount ?? 0
        guard slot >= 1, slot <= count else { return .init(ok: false, code: "invalid_slot", message: "slot \(slot) outside 1…\(count)", data: nil) }
        // Audited and published before the door opens.
        await recorder.record([ContractEvent("maintenance.unlock", ["slot": slot, "operator_id": operatorID, "reason": reason, "request_id": requestID])])
        try? await store.appendAudit([AuditEntry(timestamp: Date(), actor: "operator:\(operatorID)", action: "maintenance.unlock",
                                                 detail: String(decoding: JSON.encode(["slot": slot, "reason": reason, "request_id": requestID]), as: UTF8.self))])
        do {
            let result = try await acquisition.execute(.unlock, slot: slot)
            return result == .ok ? .init(ok: true, code: nil, message: nil, data: ["slot": slot])
                                 : .init(ok: false, code: result == .invalidSlot ? "invalid_slot" : "safe_mode", message: "cabinet: \(result)", data: nil)
        } catch {
            return .init(ok: false, code: "station_busy", message: "cabinet not answering: \(error)", data: nil)
        }
    }

    private func setService(slot: Int, inService: Bool, requestID: String) async -> SwapCoordinator.Reply {
        let count = acquisition.snapshot.cabinet?.slotCount ?? 0
        guard slot >= 1, slot <= count else { return .init(ok: false, code: "invalid_slot", message: "slot \(slot) outside 1…\(count)", data: nil) }
        try? await store.appendAudit([AuditEntry(timestamp: Date(), actor: "abs:\(requestID)", action: inService ? "slot.in_service" : "slot.out_of_service",
                                                 detail: "{\"slot\":\(slot)}")])
        do {
            let result = try await acquisition.execute(inService ? .returnToService : .outOfService, slot: slot)
            await acquisition.requestRefresh(slots: [slot])
            return result == .ok ? .init(ok: true, code: nil, message: nil, data: ["slot": slot, "in_service": inService])
                                 : .init(ok: false, code: "invalid_slot", message: "cabinet: \(result)", data: nil)
        } catch {
            return .init(ok: false, code: "station_busy", message: "cabinet not answering: \(error)", data: nil)
        }
    }

    private func send(requestID: String?, ok: Bool, code: String?, message: String?, data: [String: any Sendable]?, to command: MQTTMessage) async {
        let payload = Replies.reply(requestID: requestID, ok: ok, code: code, message: message, data: data, now: Date())
        do { try await mqtt.publish(topic: topics.reply, payload: payload, qos: 1, retain: false) } catch {
            logger.warning("reply not published", metadata: ["error": "\(error)", "request_id": "\(requestID ?? "-")"])
        }
        if let rt = command.responseTopic {
            try? await mqtt.publish(topic: rt, payload: payload, qos: 1, retain: false,
                                    properties: MQTTPublishProperties(responseTopic: nil, correlationData: command.correlationData))
        }
    }
}
