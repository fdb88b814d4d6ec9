import Acquisition
import Foundation
import Logging
import ServiceLifecycle
import StationStore

/// Records every contract event durably, in order, before anything acts on it being known:
/// the event log is the single source of what ABS will receive.
///
/// When the store refuses a write (disk full, I/O error), the events wait in memory — bounded — and the
/// write is retried every `retryInterval`; the health state shows the error and the number waiting.
public actor EventRecorder: Service {
    private let store: StationStore
    private let changes: AsyncStream<ChangeBatch>
    private let wake: Wakeup
    private let health: GatewayHealth
    private let logger: Logger
    private var factory = EventFactory()
    private var pending: [NewEvent] = []
    /// The latest view of the station, stored with the next events (or alone).
    private var pendingState: String?
    private let maxPending: Int
    private let retryInterval: Double

    public init(store: StationStore, changes: AsyncStream<ChangeBatch>, wake: Wakeup, health: GatewayHealth,
                logger: Logger, maxPending: Int = 50_000, retryInterval: Double = 2) {
        self.store = store; self.changes = changes; self.wake = wake; self.health = health
        self.logger = logger; self.maxPending = maxPending; self.retryInterval = retryInterval
    }

    public func run() async throws {
        let retry = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int64((self?.retryInterval ?? 2) * 1000)))
                await self?.flush()
            }
        }
        defer { retry.cancel() }
        // Runs until the acquisition finishes its stream (it stops before us at shutdown), so no batch is left behind.
        for await batch in changes {
            enqueue(factory.events(for: batch.changes), at: batch.timestamp)
            if let data = try? JSONEncoder().encode(batch.persisted) { pendingState = String(decoding: data, as: UTF8.self) }
            await flush()
        }
        await flush()
        if !pending.isEmpty {
            logger.critical("shutting down with events not recorded", metadata: ["count": "\(pending.count)"])
        }
        // The change stream ends when the acquisition stops, which is before our own turn in the shutdown:
        // wait for it, since a service that returns early fails the group.
        try? await gracefulShutdown()
    }

    /// Records events that do not come from the cabinet (gateway.started, later swaps and commands).
    public func record(_ events: [ContractEvent], at date: Date = Date()) async {
        enqueue(events, at: date)
        await flush()
    }

    private func enqueue(_ events: [ContractEvent], at date: Date) {
        for e in events { pending.append(NewEvent(type: e.type, timestamp: date, data: JSON.encode(e.data))) }
        if pending.count > maxPending {
            let drop = pending.count - maxPending
            pending.removeFirst(drop)
            health.update { $0.eventsDroppedUnrecorded += drop }
            logger.critical("store has refused events for too long; dropping the oldest unrecorded ones",
                            metadata: ["dropped": "\(drop)"])
        }
    }

    private func flush() async {
        guard !pending.isEmpty || pendingState != nil else { return }
        let batch = pending
        let state = pendingState
        do {
            if let state {
                _ = try await store.appendEvents(batch, settingMeta: [PersistedStation.metaKey: state])
            } else {
                _ = try await store.appendEvents(batch)
            }
            pending.removeFirst(batch.count)
            if pendingState == state { pendingState = nil }
            if health.state.storeError != nil { logger.notice("event log writable again") }
            health.update { $0.storeError = nil; $0.eventsPendingInMemory = self.pending.count }
            wake.signal()
        } catch {
            let first = health.state.storeError == nil
            health.update { $0.storeError = "\(error)"; $0.eventsPendingInMemory = batch.count }
            if first { logger.error("cannot record events; will retry", metadata: ["error": "\(error)", "waiting": "\(batch.count)"]) }
        }
    }
}
