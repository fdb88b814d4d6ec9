#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import MQTTLink
import ServiceLifecycle
import StationStore

/// Sends the durable event log to the broker: oldest first, `window` publishes in flight, an event marked
/// sent only after its PUBACK. After a lost link it starts again from the oldest unacknowledged event, so
/// delivery is at least once and in `seq` order; a re-sent event carries its original `event_id`.
/// With `publishing.backlog_rate` set, a backlog drains at that many bytes per second (BacklogPacer).
public actor EventPublisher: Service {
    private let store: StationStore
    private let mqtt: MQTTClient
    private let topics: Topics
    private let window: Int
    private let wake: Wakeup
    private let health: GatewayHealth
    private let logger: Logger
    private let meter: UplinkMeter?
    /// Paces the drain of a backlog (`publishing.backlog_rate`, BacklogPacer); rate 0 = unlimited.
    private var pacer: BacklogPacer
    private let gauge: BacklogGauge?
    /// Monotonic seconds for the pacer's bucket.
    private let clock: @Sendable () -> Double
    public private(set) var published = 0

    public init(store: StationStore, mqtt: MQTTClient, topics: Topics, window: Int, wake: Wakeup,
                health: GatewayHealth, logger: Logger, meter: UplinkMeter? = nil,
                pacer: BacklogPacer = BacklogPacer(rate: 0), gauge: BacklogGauge? = nil,
                clock: @escaping @Sendable () -> Double = { ProcessInfo.processInfo.systemUptime }) {
        self.store = store; self.mqtt = mqtt; self.topics = topics; self.window = max(1, window)
        self.wake = wake; self.health = health; self.logger = logger; self.meter = meter
        self.pacer = pacer; self.gauge = gauge; self.clock = clock
        gauge?.set(rate: pacer.rate)
    }

    /// The highest seq handed to the broker in this link's lifetime; the next batch continues after it.
    /// Reset on any failure, so the next pass starts again from the oldest unacknowledged event.
    private var cursor: Int64 = 0
    /// Handed to the library, acknowledgement not awaited yet — carried from one batch to the next, so the
    /// window stays full across batch boundaries. (Draining it at every boundary cost a broker-side Nagle
    /// delay against our delayed ACK, up to 40 ms per batch: 5× fewer events per second.)
    private var inflight: [(seq: Int64, delivery: MQTTDelivery)] = []
    /// The mark-sent of the previous batch, still committing (its fsync overlaps the next sends).
    private var marking: Task<Void, Never>?
    private var batchSize: Int { max(window * 5, 500) }
    /// The last pass read the log from its oldest unsent event and found none, nothing in flight: only a new
    /// event (a wake-up) gives the next pass something to do.
    private var caughtUp = false
    /// The next batch, read while the current one is sent (a full batch only): the seq it reads after and the read.
    /// Used by the next pass only if that pass starts after the same seq; dropped whenever the cursor goes back.
    /// Without it the window drained at every batch boundary while the publisher waited for SQLite.
    private var prefetch: (afterSeq: Int64, read: Task<[StoredEvent], any Error>)?

    public func run() async throws {
        let wake = self.wake
        await withGracefulShutdownHandler {
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                guard mqtt.isConnected else { await reset(); await wake.wait(timeout: 0.2); continue }
                // Caught up: every writer of the event log (the recorder, the swap coordinator) signals `wake` after
                // its commit, so an idle station sleeps here until an event is written, not on a period.
                if await drainOnce() == 0 { await wake.wait(until: caughtUp ? nil : ContinuousClock.now.advanced(by: .seconds(1))) }
            }
        } onGracefulShutdown: {
            wake.signal()
        }
        _ = await settleInflight()
        await marking?.value
        // No read of the store left running after the service returned.
        _ = try? await prefetch?.read.value
        prefetch = nil
    }

    /// One pass: reads up to `batchSize` unsent events after the cursor and sends them, keeping `window` in
    /// flight. Returns how many were acknowledged during the pass. When the log is caught up, the window is
    /// drained and the cursor returns to the oldest unsent event. (The benchmark drives the publisher with this.)
    public func drainOnce() async -> Int {
        caughtUp = false
        let fromStart = cursor == 0
        let batch: [StoredEvent]
        do { batch = try await nextBatch() } catch {
            logger.error("cannot read the event log", metadata: ["error": "\(error)"])
            await wake.wait(timeout: 2)
            return 0
        }
        if batch.isEmpty {
            gauge?.set(pacing: false)
            let acked = await settleInflight()
            if acked == 0 && cursor != 0 {
                // Caught up: let the last mark-sent land, then look again from the oldest unsent event.
                await marking?.value
                cursor = 0
                prefetch = nil
            }
            caughtUp = fromStart && acked == 0 && inflight.isEmpty
            return acked
        }
        if batch.count == batchSize, let last = batch.last {
            // The log's events after this batch are read now, while it is in flight. A snapshot taken a little
            // earlier than the next pass would have taken it: the oldest `batchSize` unsent events after `last`,
            // in seq order (an event written later has a higher seq and comes in a later batch).
            let store = self.store, limit = batchSize
            let after = last.seq
            prefetch = (after, Task.detached { try await store.unsentEvents(afterSeq: after, limit: limit) })
        }
        var acked = await send(batch)
        // A short batch means the log is caught up: wait for what is in flight now, so that a trickle of
        // events is marked sent at once rather than at the next pass (fewer re-sends after a power cut).
        if batch.count < batchSize { acked += await settleInflight() }
        return acked
    }

    /// The unsent events after the cursor: the read started during the previous batch when it was for this cursor.
    private func nextBatch() async throws -> [StoredEvent] {
        let ahead = prefetch
        prefetch = nil
        if let ahead, ahead.afterSeq == cursor, cursor != 0 { return try await ahead.read.value }
        return try await store.unsentEvents(afterSeq: cursor, limit: batchSize)
    }

    /// Sends one batch, waiting for the oldest in-flight acknowledgement whenever the window is full; the
    /// acknowledged events are marked sent in the background (one transaction, after the previous one's),
    /// even if the batch breaks off half way.
    func send(_ batch: [StoredEvent]) async -> Int {
        var acked: [Int64] = []
        var shownPacing: Bool? = nil
        do {
            for e in batch {
                // A backlog (an event older than the pacer's backlog age, rate set) keeps only a few in flight, so
                // replies, status and inventory find room in the library's in-flight window and go first.
                // (No clock read per event when no rate is set: isBacklog is false then.)
                let backlog = pacer.limited && pacer.isBacklog(e.timestamp, now: Date())
                // The gauge is only set here during a batch: told when the state changes, not at every event.
                if shownPacing != backlog { gauge?.set(pacing: backlog); shownPacing = backlog }
                let limit = backlog ? min(window, pacer.backlogWindow) : window
                while inflight.count >= limit {
                    let first = inflight.removeFirst()
                    try await first.delivery.wait()
                    acked.append(first.seq)
                }
                let payload = Payloads.event(e, stationID: topics.stationID)
                let topic = topics.event(e.type)
                if pacer.limited {
                    let bytes = MQTTPacketEstimate.publish(topic: topic, payloadBytes: payload.count, qos: 1)
                    gauge?.observe(eventBytes: bytes)
                    // Every event is charged; only backlog waits (a live event goes at once, its bytes delay the backlog).
                    let wait = pacer.bucket.take(bytes, now: clock())
                    if backlog && wait > 0 {
                        try await Task.sleep(for: .milliseconds(Int64((wait * 1000).rounded(.up))))
                    }
                }
                inflight.append((e.seq, try mqtt.send(.events, meter: meter, topic: topic, payload: payload, qos: 1, retain: false)))
                cursor = e.seq
            }
            if health.state.lastPublishError != nil { health.update { $0.lastPublishError = nil } }
        } catch {
            await failed(error, acked: acked.count, batch: batch.count)
        }
        mark(acked)
        return acked.count
    }

    /// Waits for everything in flight (end of the log, shutdown). Returns how many were acknowledged.
    private func settleInflight() async -> Int {
        var acked: [Int64] = []
        do {
            while !inflight.isEmpty {
                let first = inflight.removeFirst()
                try await first.delivery.wait()
                acked.append(first.seq)
            }
        } catch {
            await failed(error, acked: acked.count, batch: acked.count + inflight.count + 1)
        }
        mark(acked)
        return acked.count
    }

    /// A publish failed (link lost, stopped): forget what is in flight and start again from the oldest
    /// unacknowledged event once the link is back. A re-sent event keeps its event_id.
    private func failed(_ error: Error, acked: Int, batch: Int) async {
        health.update { $0.lastPublishError = "\(error)" }
        logger.info("event publishing interrupted; will resume from the oldest unacknowledged event",
                    metadata: ["error": "\(error)", "acked": "\(acked)", "batch": "\(batch)"])
        inflight.removeAll()
        cursor = 0
        prefetch = nil
        await wake.wait(timeout: 0.5)
    }

    private func reset() async {
        if !inflight.isEmpty { _ = await settleInflight() }
        cursor = 0
        prefetch = nil
    }

    private func mark(_ acked: [Int64]) {
        guard !acked.isEmpty else { return }
        let previous = marking
        let store = self.store, logger = self.logger
        marking = Task {
            await previous?.value
            do { try await store.markSent(seqs: acked, at: Date()) } catch {
                // Not marked: they will be sent again (same event_id) — a duplicate, never a loss.
                logger.error("cannot mark events as sent", metadata: ["error": "\(error)"])
            }
        }
        published += acked.count
    }
}
