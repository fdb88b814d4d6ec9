import ABSProtocol
import Acquisition
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import ServiceLifecycle
import StationStore

/// Records every contract event durably, in order, before anything acts on it being known:
/// the event log is the single source of what ABS will receive.
///
/// When the store refuses a write (disk full, I/O error), the events wait in memory — bounded — and the
/// write is retried `retryInterval` after the failure (a deadline set by the failure, not a poll: a recorder
/// with nothing refused does not wake up); the health state shows the error and the number waiting.
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
    /// Meta keys to set (or, nil, remove) in the same transaction as the events recorded with them.
    private var pendingMeta: [String: String?] = [:]
    private let maxPending: Int
    private let retryInterval: Double
    /// One flush at a time: the actor is re-entrant at the store's `await`, and two flushes taking the same
    /// `pending` events would write them twice (the second fails on the unique event id and would leave the
    /// store flagged unhealthy). A flush that finds another running waits its turn (FIFO).
    private var flushing = false
    private var flushWaiters: [CheckedContinuation<Void, Never>] = []
    /// How many events at the head of `pending` the running flush is writing.
    private var inFlight = 0
    /// The retry after a refused write, while one is due.
    private var retryTask: Task<Void, Never>?

    public init(store: StationStore, changes: AsyncStream<ChangeBatch>, wake: Wakeup, health: GatewayHealth,
                logger: Logger, maxPending: Int = 50_000, retryInterval: Double = 2) {
        self.store = store; self.changes = changes; self.wake = wake; self.health = health
        self.logger = logger; self.maxPending = maxPending; self.retryInterval = retryInterval
    }

    public func run() async throws {
        defer { retryTask?.cancel(); retryTask = nil }
        // Runs until the acquisition finishes its stream (it stops before us at shutdown), so no batch is left behind.
        for await batch in changes {
            enqueue(factory.events(for: batch.changes, cabinet: batch.cabinet), at: batch.timestamp)
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

    /// Records `events` and sets (nil: removes) meta keys in the same transaction (or, if the store refuses
    /// it now, in the same later retry): e.g. an alarm's event and its persisted state.
    public func record(_ events: [ContractEvent], settingMeta meta: [String: String?], at date: Date = Date()) async {
        enqueue(events, at: date)
        for (k, v) in meta { pendingMeta[k] = .some(v) }
        await flush()
    }

    private func enqueue(_ events: [ContractEvent], at date: Date) {
        for e in events { pending.append(NewEvent(type: e.type, timestamp: date, data: ClockTrustMark.mark(e).data)) }
        if pending.count > maxPending {
            // The head of `pending` being written by a flush in progress is not touched: drop the oldest behind it.
            let drop = min(pending.count - maxPending, pending.count - inFlight)
            guard drop > 0 else { return }
            pending.removeSubrange(inFlight ..< inFlight + drop)
            health.update { $0.eventsDroppedUnrecorded += drop }
            logger.critical("store has refused events for too long; dropping the oldest unrecorded ones",
                            metadata: ["dropped": "\(drop)"])
        }
    }

    private func flush() async {
        while flushing { await withCheckedContinuation { flushWaiters.append($0) } }
        flushing = true
        defer {
            flushing = false
            if !flushWaiters.isEmpty { flushWaiters.removeFirst().resume() }
        }
        guard !pending.isEmpty || pendingState != nil || !pendingMeta.isEmpty else {
            // Nothing waits to be recorded: nothing the store refused is outstanding.
            if health.state.storeError != nil {
                logger.notice("event log writable again")
                health.update { $0.storeError = nil; $0.eventsPendingInMemory = 0 }
            }
            return
        }
        // The batch taken here is this flush's alone until it returns (flushes are serialized); events enqueued
        // meanwhile stay behind it in `pending`.
        let batch = pending
        let state = pendingState
        let meta = pendingMeta
        inFlight = batch.count
        defer { inFlight = 0 }
        do {
            var metaToSet = meta
            if let state { metaToSet[PersistedStation.metaKey] = .some(state) }
            if metaToSet.isEmpty {
                _ = try await store.appendEvents(batch)
            } else {
                _ = try await store.appendEvents(batch, settingMeta: metaToSet)
            }
            pending.removeFirst(batch.count)
            if pendingState == state { pendingState = nil }
            for (k, v) in meta where pendingMeta[k] == v { pendingMeta[k] = nil }
            if health.state.storeError != nil { logger.notice("event log writable again") }
            health.update { $0.storeError = nil; $0.eventsPendingInMemory = self.pending.count }
            wake.signal()
        } catch {
            let first = health.state.storeError == nil
            health.update { $0.storeError = "\(error)"; $0.eventsPendingInMemory = self.pending.count }
            if first { logger.error("cannot record events; will retry", metadata: ["error": "\(error)", "waiting": "\(batch.count)"]) }
            scheduleRetry()
        }
    }

    /// One retry `retryInterval` from now, unless one is already due (an event arriving meanwhile flushes anyway;
    /// the retry then finds nothing, or retries what is still refused and sets the next one).
    private func scheduleRetry() {
        guard retryTask == nil else { return }
        let delay = Int64(retryInterval * 1000)
        retryTask = Task { [weak self] in
            do { try await Task.sleep(for: .milliseconds(delay)) } catch { return }
            await self?.retryNow()
        }
    }

    private func retryNow() async {
        retryTask = nil
        await flush()
    }
}
