import ABSProtocol
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import OdooLink
import ServiceLifecycle
import StationDomain
import StationStore
import Synchronization

/// Sends the Odoo usage outbox (odoo-usage-log.md): oldest first, at most `maxInFlight` requests at once,
/// each record until Odoo answers `recorded` or `duplicate`. A record's idempotency key (its swap id) never
/// changes, so a record re-sent after a crash or a lost answer is settled as a `duplicate`: exactly once in effect.
///
/// - Validation errors (ValidationError, UserError, MissingError): the record is kept as *rejected*,
///   visible and re-sendable by hand; it does not block the ones behind.
/// - Credential errors: the record stays queued, sending slows to `backoff.credentialsDelay`, an alarm is
///   raised (a `gateway.alarm` event with `active: true`, persisted in the store's meta, the health state, a
///   metric and a log line) once per episode, across restarts; the first verdict Odoo gives on a record after
///   that clears it (a `gateway.alarm` event with `active: false`, the meta key removed in the same transaction).
/// - Anything transient (transport, timeouts, 5xx, 429 with Retry-After, non-JSON 200s): the whole queue
///   pauses for the backoff (exponential with jitter), so an outage costs one request per period, not a storm.
public actor UsageForwarder: Service {
    private let store: StationStore
    private let client: OdooClient
    private let maxInFlight: Int
    private let backoff: Backoff
    private let recorder: EventRecorder
    private let health: GatewayHealth
    private let metrics: GatewayMetrics
    private let logger: Logger
    private var pausedUntil = Date.distantPast
    private var credentialAlarm = false
    private var rpcID = 0
    public private(set) var settled = 0

    public init(store: StationStore, client: OdooClient, maxInFlight: Int, backoff: Backoff = Backoff(), recorder: EventRecorder,
                health: GatewayHealth, metrics: GatewayMetrics = GatewayMetrics(), logger: Logger) {
        self.store = store; self.client = client; self.maxInFlight = max(1, maxInFlight); self.backoff = backoff
        self.recorder = recorder; self.health = health; self.metrics = metrics; self.logger = logger
    }

    /// The meta key holding the credentials alarm's reason while it is raised: it survives restarts, and is
    /// removed in the same transaction as the `gateway.alarm` event (`active: false`) that clears it toward ABS.
    public static let credentialsAlarmMetaKey = "odoo.credentials_alarm"

    /// Waits for what matters instead of polling the outbox: a record this process commits (the store's
    /// `usageWakeup`: a completed swap, a re-send), a write by another process (a watch on the database's `-wal`
    /// file: `swapgate store usage resend`, an import), and the next deadline — the earliest deferred record's
    /// retry time or the end of the queue's pause. An idle daemon with nothing queued does not wake up here at all.
    public func run() async throws {
        await loadPersistedAlarm()
        let wake = store.usageWakeup
        let external = ExternalWrite()
        let watch = FileWriteWatch(path: store.path + "-wal") {
            external.seen.store(true, ordering: .relaxed)
            wake.signal()
        }
        if watch == nil { logger.notice("cannot watch the database file; records written by other processes are found every \(Self.unwatchedPass) s") }
        defer { watch?.stop() }
        await cancelWhenGracefulShutdown {
            await withTaskCancellationHandler {
                // Another process's commit may not be visible yet when its write wakes us (FileWriteWatch): its last
                // WAL write comes before its fsync, and only then is the commit visible; under load the fsync can take
                // seconds. So after an external write the outbox is read again on a widening schedule
                // (`lookAgainSeconds`), not once. The chain also runs at start-up: a commit in flight while the watch
                // was being set up sends no event the watch can see.
                var chainStep: Int? = 0
                var lookAgain: ContinuousClock.Instant?
                while !Task.isCancelled {
                    let sent = await self.drainOnce()
                    if sent > 0 { continue }
                    var deadline = await self.nextDeadline()
                    if let step = chainStep, step < Self.lookAgainSeconds.count {
                        let again = lookAgain ?? ContinuousClock.now.advanced(by: .seconds(Self.lookAgainSeconds[step]))
                        lookAgain = again
                        deadline = deadline.map { min($0, again) } ?? again
                    }
                    if watch == nil {
                        let fallback = ContinuousClock.now.advanced(by: .seconds(Self.unwatchedPass))
                        deadline = deadline.map { min($0, fallback) } ?? fallback
                    }
                    if Task.isCancelled { break }
                    await wake.wait(until: deadline)
                    if external.seen.exchange(false, ordering: .relaxed) {
                        chainStep = 0            // a new external write: the schedule starts over
                        lookAgain = nil
                    } else if let at = lookAgain, ContinuousClock.now >= at {
                        chainStep = chainStep.map { $0 + 1 }
                        lookAgain = nil
                    }
                }
            } onCancel: {
                wake.signal()
            }
        }
        try? await client.shutdown()
    }

    private final class ExternalWrite: Sendable { let seen = Atomic<Bool>(false) }

    /// The looks after another process's write (its commit's fsync may still be running when the write wakes us),
    /// in seconds after the previous look: 1, 2, 5, 15 and 30 s — five reads over ~53 s after each external write,
    /// none while nothing is written.
    static let lookAgainSeconds: [Int64] = [1, 2, 5, 15, 30]
    /// Without a file watch (not Linux), how often the outbox is read for other processes' records.
    static let unwatchedPass: Int64 = 5

    /// When the loop must look again without a wake-up: the earliest pending record's due time, not before the
    /// end of a pause; nil when nothing is pending (then only a new record wakes it).
    func nextDeadline() async -> ContinuousClock.Instant? {
        let due: Date?
        do { due = try await store.nextUsageDue() } catch {
            logger.error("cannot read the usage outbox", metadata: ["error": "\(error)"])
            return ContinuousClock.now.advanced(by: .seconds(Int64(max(1, backoff.base.rounded(.up)))))
        }
        guard let due else { return nil }
        let at = max(due, pausedUntil)
        // A few ms late rather than early: the store compares due times in milliseconds against the wall clock.
        return ContinuousClock.now.advanced(by: .milliseconds(Int64(max(0, at.timeIntervalSinceNow) * 1000) + 5))
    }

    /// A credentials alarm raised before a restart is still raised: Odoo has not accepted the key since.
    func loadPersistedAlarm() async {
        do {
            if let reason = try await store.meta(Self.credentialsAlarmMetaKey) {
                credentialAlarm = true
                health.update { $0.odooAlarm = "credentials: \(reason)" }
                metrics.setOdooCredentialAlarm(true)
                logger.warning("Odoo refused the station's credentials before the restart; the alarm stays until Odoo accepts a record",
                               metadata: ["reason": "\(reason)"])
            }
        } catch {
            logger.error("cannot read the persisted Odoo alarm", metadata: ["error": "\(error)"])
        }
    }

    /// One pass over the due records, oldest first, with a sliding window of `maxInFlight` requests. Each record
    /// Odoo settles is marked settled as soon as its answer arrives (answers that arrive while a mark is being
    /// written are marked together in the next transaction), so a restart re-sends only what was in flight.
    /// Returns how many were attempted.
    public func drainOnce() async -> Int {
        let now = Date()
        guard now >= pausedUntil else { return 0 }
        let due: [StoredUsage]
        do { due = try await store.dueUsage(now: now, limit: maxInFlight * 64) } catch {
            logger.error("cannot read the usage outbox", metadata: ["error": "\(error)"])
            return 0
        }
        guard !due.isEmpty else { return 0 }
        var attempted = 0
        var stop = false
        await withTaskGroup(of: (StoredUsage, UsageOutcome).self) { group in
            var next = 0
            func launch() {
                guard next < due.count, !stop else { return }
                let item = due[next]
                next += 1
                rpcID &+= 1
                let id = rpcID
                group.addTask { [client] in (item, await client.send(item.record, rpcID: id)) }
            }
            for _ in 0 ..< maxInFlight { launch() }
            while let (item, outcome) = await group.next() {
                attempted += 1
                metrics.countOdoo(Self.label(outcome))
                switch outcome {
                case let .recorded(id), let .duplicate(id):
                    enqueueSettle(item.record.idempotencyKey, id)
                    await odooAccepted()
                default:
                    if await handle(item, outcome) { stop = true }
                }
                launch()
            }
        }
        if let task = settleTask { await task.value }
        return attempted
    }

    private var settleQueue: [(key: String, odooLogID: Int?)] = []
    private var settleTask: Task<Void, Never>?

    /// Queues a settled record for marking; one writer marks whatever has queued up, transaction after transaction.
    private func enqueueSettle(_ key: String, _ odooLogID: Int?) {
        settleQueue.append((key, odooLogID))
        if settleTask == nil { settleTask = Task { await self.settleLoop() } }
    }

    private func settleLoop() async {
        while !settleQueue.isEmpty {
            let batch = settleQueue
            settleQueue.removeAll()
            do {
                try await store.markUsageSettled(batch, at: Date())
                settled += batch.count
            } catch {
                logger.error("cannot mark usage records settled; they will be re-sent (Odoo answers duplicate)",
                             metadata: ["error": "\(error)", "count": "\(batch.count)"])
            }
        }
        settleTask = nil
    }

    /// Odoo answered with its own verdict on a record (recorded, duplicate, rejected): it is reachable and takes
    /// the station's credentials. Clears the credentials alarm, locally and toward ABS.
    private func odooAccepted() async {
        health.update { $0.odooReachable = true; $0.odooLastError = nil; $0.odooLastAnswerAt = Date() }
        guard credentialAlarm else { return }
        credentialAlarm = false
        logger.notice("Odoo accepts the credentials again")
        health.update { $0.odooAlarm = nil }
        metrics.setOdooCredentialAlarm(false)
        await recorder.record([ContractEvent(.gatewayAlarm(kind: "odoo_credentials", message: "Odoo accepts the credentials again",
                                                            active: false))],
                              settingMeta: [Self.credentialsAlarmMetaKey: nil])
    }

    static func label(_ outcome: UsageOutcome) -> String {
        switch outcome {
        case .recorded: "recorded"
        case .duplicate: "duplicate"
        case .rejected: "rejected"
        case .credentials: "credentials"
        case .transient: "transient"
        }
    }

    /// Returns true when the queue should pause (credentials or transient failure).
    private func handle(_ item: StoredUsage, _ outcome: UsageOutcome) async -> Bool {
        let key = item.record.idempotencyKey
        let now = Date()
        do {
            switch outcome {
            case .recorded, .duplicate:
                return false   // settled by drainOnce
            case let .rejected(name, message):
                try await store.markUsageRejected(key: key, error: "\(name): \(message)", at: now)
                logger.error("Odoo rejected a usage record; kept as rejected (re-send with swapctl)",
                             metadata: ["key": "\(key)", "error": "\(name)", "message": "\(message)"])
                await odooAccepted()
                return false
            case let .credentials(reason):
                let delay = backoff.delay(attempt: item.attempts + 1, outcome: outcome, random: Double.random(in: 0 ..< 1))
                try await store.deferUsage(key: key, error: "credentials: \(reason)", nextAttemptAt: now.addingTimeInterval(delay))
                pausedUntil = max(pausedUntil, now.addingTimeInterval(delay))
                health.update { $0.odooReachable = true; $0.odooLastAnswerAt = now }
                if !credentialAlarm {
                    credentialAlarm = true
                    logger.critical("Odoo refuses the station's credentials; usage records stay queued", metadata: ["reason": "\(reason)"])
                    health.update { $0.odooAlarm = "credentials: \(reason)" }
                    metrics.setOdooCredentialAlarm(true)
                    // The event and the persisted alarm in one transaction: after any restart the alarm is still raised.
                    await recorder.record([ContractEvent(.gatewayAlarm(kind: "odoo_credentials", message: reason, active: true))],
                                          settingMeta: [Self.credentialsAlarmMetaKey: reason])
                }
                return true
            case let .transient(reason, _):
                let delay = backoff.delay(attempt: item.attempts + 1, outcome: outcome, random: Double.random(in: 0 ..< 1))
                try await store.deferUsage(key: key, error: reason, nextAttemptAt: now.addingTimeInterval(delay))
                pausedUntil = max(pausedUntil, now.addingTimeInterval(delay))
                health.update { $0.odooReachable = false; $0.odooLastError = reason }
                if item.attempts == 0 || item.attempts % 10 == 0 {
                    logger.warning("Odoo not reachable; usage records stay queued", metadata: ["reason": "\(reason)", "retry_in_s": "\(Int(delay))"])
                }
                return true
            }
        } catch {
            logger.error("cannot update the usage outbox", metadata: ["key": "\(key)", "error": "\(error)"])
            return true
        }
    }
}
