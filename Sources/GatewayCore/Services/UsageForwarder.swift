import Foundation
import Logging
import OdooLink
import ServiceLifecycle
import StationDomain
import StationStore

/// Sends the Odoo usage outbox (odoo-usage-log.md): oldest first, at most `maxInFlight` requests at once,
/// each record until Odoo answers `recorded` or `duplicate`. A record's idempotency key (its swap id) never
/// changes, so a record re-sent after a crash or a lost answer is settled as a `duplicate`: exactly once in effect.
///
/// - Validation errors (ValidationError, UserError, MissingError): the record is kept as *rejected*,
///   visible and re-sendable by hand; it does not block the ones behind.
/// - Credential errors: the record stays queued, sending slows to `backoff.credentialsDelay`, an alarm is
///   raised (a `gateway.alarm` event, the health state and a log line) once per episode.
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

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let sent = await self.drainOnce()
                if sent == 0 { try? await Task.sleep(for: .milliseconds(500)) }
            }
        }
        try? await client.shutdown()
    }

    /// One pass over the due records, oldest first, with a sliding window of `maxInFlight` requests. The
    /// records Odoo settled are marked in one transaction at the end of the pass (one fsync, not one per record);
    /// a crash before that re-sends them, and Odoo answers `duplicate`. Returns how many were attempted.
    public func drainOnce() async -> Int {
        let now = Date()
        guard now >= pausedUntil else { return 0 }
        let due: [StoredUsage]
        do { due = try await store.dueUsage(now: now, limit: maxInFlight * 64) } catch {
            logger.error("cannot read the usage outbox", metadata: ["error": "\(error)"])
            return 0
        }
        guard !due.isEmpty else { return 0 }
        var settledNow: [(key: String, odooLogID: Int?)] = []
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
                if case let .recorded(id) = outcome { settledNow.append((item.record.idempotencyKey, id)) }
                else if case let .duplicate(id) = outcome { settledNow.append((item.record.idempotencyKey, id)) }
                else if await handle(item, outcome) { stop = true }
                launch()
            }
        }
        if !settledNow.isEmpty {
            if health.state.odooLastError != nil { health.update { $0.odooLastError = nil } }
            do {
                try await store.markUsageSettled(settledNow, at: Date())
                settled += settledNow.count
                if credentialAlarm {
                    credentialAlarm = false
                    logger.notice("Odoo accepts the credentials again")
                    health.update { $0.odooAlarm = nil }
                    metrics.setOdooCredentialAlarm(false)
                }
            } catch {
                logger.error("cannot mark usage records settled; they will be re-sent (Odoo answers duplicate)", metadata: ["error": "\(error)"])
            }
        }
        return attempted
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
            case let .recorded(id), let .duplicate(id):
                try await store.markUsageSettled(key: key, odooLogID: id, at: now)
                settled += 1
                if health.state.odooLastError != nil { health.update { $0.odooLastError = nil } }
                if credentialAlarm {
                    credentialAlarm = false
                    logger.notice("Odoo accepts the credentials again")
                    health.update { $0.odooAlarm = nil }
                }
                return false
            case let .rejected(name, message):
                try await store.markUsageRejected(key: key, error: "\(name): \(message)", at: now)
                logger.error("Odoo rejected a usage record; kept as rejected (re-send with swapctl)",
                             metadata: ["key": "\(key)", "error": "\(name)", "message": "\(message)"])
                return false
            case let .credentials(reason):
                let delay = backoff.delay(attempt: item.attempts + 1, outcome: outcome, random: Double.random(in: 0 ..< 1))
                try await store.deferUsage(key: key, error: "credentials: \(reason)", nextAttemptAt: now.addingTimeInterval(delay))
                pausedUntil = max(pausedUntil, now.addingTimeInterval(delay))
                if !credentialAlarm {
                    credentialAlarm = true
                    logger.critical("Odoo refuses the station's credentials; usage records stay queued", metadata: ["reason": "\(reason)"])
                    health.update { $0.odooAlarm = "credentials: \(reason)" }
                    metrics.setOdooCredentialAlarm(true)
                    await recorder.record([ContractEvent("gateway.alarm", ["kind": "odoo_credentials", "message": reason, "active": true])])
                }
                return true
            case let .transient(reason, _):
                let delay = backoff.delay(attempt: item.attempts + 1, outcome: outcome, random: Double.random(in: 0 ..< 1))
                try await store.deferUsage(key: key, error: reason, nextAttemptAt: now.addingTimeInterval(delay))
                pausedUntil = max(pausedUntil, now.addingTimeInterval(delay))
                health.update { $0.odooLastError = reason }
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
