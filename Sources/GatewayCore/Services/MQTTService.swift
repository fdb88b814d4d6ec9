import Acquisition
import Foundation
import Logging
import MQTTLink
import ServiceLifecycle

/// Owns the MQTT client: starts it, logs and fans out its connection events, and disconnects last
/// at shutdown (it is first in the service group, so it stops after everything that publishes).
public final class MQTTService: Service, Sendable {
    public let client: MQTTClient
    private let logger: Logger
    private let health: GatewayHealth
    private let subscribers = Locked<[UUID: AsyncStream<Bool>.Continuation]>([:])

    public init(client: MQTTClient, health: GatewayHealth, logger: Logger) {
        self.client = client; self.health = health; self.logger = logger
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
        await withGracefulShutdownHandler {
            for await event in client.connectionEvents {
                switch event {
                case let .connected(sessionPresent):
                    logger.notice("MQTT connected", metadata: ["session_present": "\(sessionPresent)"])
                    health.update { $0.mqttConnected = true; $0.mqttLastError = nil }
                    broadcast(true)
                case let .disconnected(code, reason):
                    logger.warning("MQTT disconnected; reconnecting with backoff", metadata: ["code": "\(code)", "reason": "\(reason)"])
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
