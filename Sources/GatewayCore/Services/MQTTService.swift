import Acquisition
import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import MQTTLink
import ServiceLifecycle
import StationStore

/// Owns the MQTT client: starts it, logs and fans out its connection events, and disconnects last
/// at shutdown (it is first in the service group, so it stops after everything that publishes).
public final class MQTTService: Service, Sendable {
    public let client: MQTTClient
    private let logger: Logger
    private let health: GatewayHealth
    private let subscribers = Locked<[UUID: AsyncStream<Bool>.Continuation]>([:])
    /// The `keepalive` byte class, estimated (UplinkMeter): one PINGREQ/PINGRESP per keepalive while connected.
    private let meter: UplinkMeter?
    private let keepAlive: Int

    public init(client: MQTTClient, health: GatewayHealth, logger: Logger, meter: UplinkMeter? = nil, keepAlive: Int = 0) {
        self.client = client; self.health = health; self.logger = logger; self.meter = meter; self.keepAlive = keepAlive
    }

    /// A stream of link state changes (true = connected), starting with the current state.
    public func connectionStates() -> AsyncStream<Bool> {
        let id = UUID()
        let (stream, cont) = AsyncStream<Bool>.makeStream(bufferingPolicy: .bufferingNewest(8))
        cont.onTermination = { [subscribers] _ in subscribers.withLock { $0[id] = nil } }
        subscribers.withLock { $0[id] = cont }
        cont.yield(client.isConnected)
        return stream
    }

    public func run() async throws {
        try client.start()
        let pings = Task { [client, meter, keepAlive] in
            guard let meter, keepAlive > 0 else { return }
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(keepAlive))
                if client.isConnected && !Task.isCancelled { meter.countKeepalive() }
            }
        }
        defer { pings.cancel() }
        await withGracefulShutdownHandler {
            for await event in client.connectionEvents {
                switch event {
                case let .connected(sessionPresent):
                    let link = client.link
                    logger.notice("MQTT connected", metadata: ["session_present": "\(sessionPresent)",
                                                               "broker": "\(link.broker.map(\.description) ?? "?")",
                                                               "session": "\(link.session.map(String.init) ?? "?")"])
                    health.update { $0.mqttConnected = true; $0.mqttLastError = nil }
                    broadcast(true)
                case let .disconnected(code, reason):
                    logger.warning("MQTT disconnected; reconnecting with backoff (next broker address in turn)",
                                   metadata: ["code": "\(code)", "reason": "\(reason)", "broker": "\(client.broker.map(\.description) ?? "?")"])
                    health.update { $0.mqttConnected = false; $0.mqttLastError = reason }
                    broadcast(false)
                case let .connectFailed(code, reason):
                    logger.warning("MQTT connect failed; retrying with backoff", metadata: ["code": "\(code)", "reason": "\(reason)"])
                    health.update { $0.mqttConnected = false; $0.mqttLastError = reason }
                }
            }
        } onGracefulShutdown: { [client] in
            // Everything else has stopped by now (reverse start order); the retained offline status was sent.
            client.stop()
        }
        for c in subscribers.withLock({ Array($0.values) }) { c.finish() }
    }

    private func broadcast(_ connected: Bool) {
        for c in subscribers.withLock({ Array($0.values) }) { c.yield(connected) }
    }
}

/// The birth/death session number (abs-mqtt.md 1.1 "Birth, death and resync"): raised by one before every MQTT
/// connection attempt and kept in the store's meta (`mqtt_session`), so it also rises across restarts. `next()` is
/// called by the MQTT network thread right before CONNECT (not on Swift's cooperative pool): it waits for the
/// store's write (one small SQLite transaction) and throws when it cannot be made within `timeout`, in which case
/// no CONNECT goes out with a number that a restart could hand out again.
public final class MQTTSessionCounter: Sendable {
    public static let metaKey = "mqtt_session"
    private let store: StationStore
    private let logger: Logger
    private let last: Locked<UInt64>
    private let timeout: Double

    public init(store: StationStore, logger: Logger, timeout: Double = 10) async throws {
        self.store = store; self.logger = logger; self.timeout = timeout
        let stored = try await store.meta(Self.metaKey)
        last = Locked(stored.flatMap { UInt64($0) } ?? 0)
        if let stored, UInt64(stored) == nil { logger.warning("stored MQTT session number is not a number; starting again from 1", metadata: ["value": "\(stored)"]) }
    }

    /// The number of the last connection attempt (0: none yet, ever).
    public var current: UInt64 { last.withLock { $0 } }

    public struct NotPersisted: Error, CustomStringConvertible {
        public let description: String
    }

    /// Persists and returns the next number. Blocks the calling (non-pool) thread until the store has it.
    public func next() throws -> UInt64 {
        let n = last.withLock { $0 } &+ 1
        let outcome = Locked<String?>("timed out")
        let done = DispatchSemaphore(value: 0)
        let (store, key) = (self.store, Self.metaKey)
        Task.detached {
            do {
                try await store.setMeta(key, String(n))
                outcome.withLock { $0 = nil }
            } catch {
                outcome.withLock { $0 = "\(error)" }
            }
            done.signal()
        }
        _ = done.wait(timeout: .now() + .milliseconds(Int(timeout * 1000)))
        if let problem = outcome.withLock({ $0 }) {
            logger.error("MQTT session number not stored; not connecting", metadata: ["error": "\(problem)"])
            throw NotPersisted(description: "session \(n) not stored: \(problem)")
        }
        last.withLock { $0 = max($0, n) }
        return n
    }
}
