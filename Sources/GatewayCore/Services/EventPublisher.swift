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

    /// The highest seq handed to the broker in this link's lifetime; batches continue after it while the
    /// previous batch is being marked sent (its fsync overlaps the next sends). Reset on any failure, so the
    /// next pass starts again from the oldest unacknowledged event.
    private var cursor: Int64 = 0
    /// The mark-sent of the previous batch, still committing.
    private var marking: Task<Void, Never>?
    private var batchSize: Int { max(window * 5, 500) }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            guard mqtt.isConnected else { cursor = 0; await wake.wait(timeout: 0.2); continue }
            if await drainOnce() == 0 { await wake.wait(timeout: 1) }
        }
        await marking?.value
    }

    /// One pass: reads up to `batchSize` unsent events after the cursor and sends them. Returns how many were
    /// acknowledged. (The benchmark drives the publisher with this.)
    public func drainOnce() async -> Int {
        let batch: [StoredEvent]
        do { batch = try await store.unsentEvents(afterSeq: cursor, limit: batchSize) } catch {
            logger.error("cannot read the event log", metadata: ["error": "\(error)"])
            await wake.wait(timeout: 2)
            return 0
        }
        if batch.isEmpty {
            if cursor != 0 {
                // Caught up: let the last mark-sent land, then look again from the oldest unsent event.
                await marking?.value
                cursor = 0
            }
            return 0
        }
        return await send(batch)
    }

    /// Publishes one batch with a bounded window; the acknowledged events are marked sent in the background
    /// (one transaction, after the previous batch's), even if the batch breaks off half way.
    func send(_ batch: [StoredEvent]) async -> Int {
        var inflight: [(seq: Int64, delivery: MQTTDelivery)] = []
        var acked: [Int64] = []
        inflight.reserveCapacity(window)
        var failed = false
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
            if health.state.lastPublishError != nil { health.update { $0.lastPublishError = nil } }
        } catch {
            failed = true
            health.update { $0.lastPublishError = "\(error)" }
            logger.info("event publishing interrupted; will resume from the oldest unacknowledged event",
                        metadata: ["error": "\(error)", "acked": "\(acked.count)", "batch": "\(batch.count)"])
        }
        if !acked.isEmpty {
            let previous = marking
            let seqs = acked
            let store = self.store, logger = self.logger
            marking = Task {
                await previous?.value
                do { try await store.markSent(seqs: seqs, at: Date()) } catch {
                    // Not marked: they will be sent again (same event_id) — a duplicate, never a loss.
                    logger.error("cannot mark events as sent", metadata: ["error": "\(error)"])
                }
            }
            published += acked.count
        }
        if failed {
            cursor = 0
            await wake.wait(timeout: 0.5)
        } else {
            cursor = batch.last!.seq
        }
        return acked.count
    }
}
