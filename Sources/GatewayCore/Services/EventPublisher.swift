import Foundation
import Logging
import MQTTLink
import ServiceLifecycle
import StationStore

/// Sends the durable event log to the broker: oldest first, `window` publishes in flight, an event marked
/// sent only after its PUBACK. After a lost link it starts again from the oldest unacknowledged event, so
/// delivery is at least once and in `seq` order; a re-sent event carries its original `event_id`.
public actor EventPublisher: Service {
    private let store: StationStore
    private let mqtt: MQTTClient
    private let topics: Topics
    private let window: Int
    private let wake: Wakeup
    private let health: GatewayHealth
    private let logger: Logger
    public private(set) var published = 0

    public init(store: StationStore, mqtt: MQTTClient, topics: Topics, window: Int, wake: Wakeup,
                health: GatewayHealth, logger: Logger) {
        self.store = store; self.mqtt = mqtt; self.topics = topics; self.window = max(1, window)
        self.wake = wake; self.health = health; self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            guard mqtt.isConnected else { await wake.wait(timeout: 0.2); continue }
            let batch: [StoredEvent]
            do { batch = try await store.unsentEvents(limit: window * 5) } catch {
                logger.error("cannot read the event log", metadata: ["error": "\(error)"])
                await wake.wait(timeout: 2); continue
            }
            if batch.isEmpty { await wake.wait(timeout: 1); continue }
            await send(batch)
        }
    }

    /// One pass: reads up to `window × 5` unsent events and sends them. Returns how many were acknowledged.
    /// (The benchmark drives the publisher with this.)
    public func drainOnce() async -> Int {
        guard let batch = try? await store.unsentEvents(limit: window * 5), !batch.isEmpty else { return 0 }
        let before = published
        await send(batch)
        return published - before
    }

    /// Publishes one batch with a bounded window; records acknowledged events as sent even if the batch
    /// breaks off half way.
    func send(_ batch: [StoredEvent]) async {
        var inflight: [(seq: Int64, delivery: MQTTDelivery)] = []
        var acked: [Int64] = []
        inflight.reserveCapacity(window)
        do {
            for e in batch {
                if inflight.count >= window {
                    let first = inflight.removeFirst()
                    try await first.delivery.wait()
                    acked.append(first.seq)
                }
                let payload = Payloads.event(e, stationID: topics.stationID)
                inflight.append((e.seq, try mqtt.send(topic: topics.event(e.type), payload: payload, qos: 1, retain: false)))
            }
            for item in inflight {
                try await item.delivery.wait()
                acked.append(item.seq)
            }
            health.update { $0.lastPublishError = nil }
        } catch {
            health.update { $0.lastPublishError = "\(error)" }
            logger.info("event publishing interrupted; will resume from the oldest unacknowledged event",
                        metadata: ["error": "\(error)", "acked": "\(acked.count)", "batch": "\(batch.count)"])
            await wake.wait(timeout: 0.5)
        }
        guard !acked.isEmpty else { return }
        do {
            try await store.markSent(seqs: acked, at: Date())
            published += acked.count
        } catch {
            // Not marked: they will be sent again (same event_id) — a duplicate, never a loss.
            logger.error("cannot mark events as sent", metadata: ["error": "\(error)"])
        }
    }
}
