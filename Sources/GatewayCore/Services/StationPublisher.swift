import Acquisition
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import MQTTLink
import ServiceLifecycle
import StationDomain

/// Publishes what describes the station as a whole: the retained `status` (online on every connect,
/// offline explicitly at clean shutdown; the broker's will covers the rest), the retained `inventory`
/// on change (debounced) and after every connect, and `telemetry` by exception (TelemetryReporter): `full` at each
/// connection, on `fullReportNow()` (rebirth) and every full interval, `changes` every interval when something moved.
public actor StationPublisher: Service {
    private let mqtt: MQTTClient
    private let connection: MQTTService
    private let acquisition: StationAcquisition
    private let topics: Topics
    private let version: String
    private var telemetryInterval: Double   // the base interval × the budget governor's factor
    private let inventoryDebounce: Double
    private let logger: Logger
    private var lastInventory: Inventory?
    private var lastCabinetState: String?
    /// While a cabinet has no verdict yet (`unknown`: not polled, or failing fewer polls than `stale_after`), when
    /// to look at the cabinets' states again. A cabinet that never answers produces no change batch, so without this
    /// the retained status would say `unknown` until something else changed. Nil once every cabinet has a verdict
    /// (later transitions come with change batches: a stale cabinet's slots change).
    private var stateCheckDue: ContinuousClock.Instant?
    /// Set when the offline status is about to go out: no online status may follow it (a change batch's
    /// unstructured status task could otherwise land after the retained offline status at shutdown).
    private var wentOffline = false
    static let stateCheckMilliseconds: Int64 = 1_000
    private var inventoryDue: ContinuousClock.Instant?
    private var telemetryDue = ContinuousClock.now
    private var telemetryFullInterval: Double   // the base full interval × the budget governor's factor
    /// The monthly budget governor (publishing.monthly_budget_mb; nil: none) and what it widens from.
    private var governor: TelemetryGovernor?
    private let budgetCheckInterval: Double
    private let budgetGauge: UplinkBudgetGauge?
    private var budgetDue = ContinuousClock.now
    private let base: (interval: Double, full: Double, deadbands: TelemetryDeadbands)
    private var fullDue: ContinuousClock.Instant? = ContinuousClock.now
    private var reporter: TelemetryReporter
    private let meter: UplinkMeter?
    public private(set) var telemetrySent = 0
    /// Wakes the tick when something it waits for happened: a connect, a change batch, a rebirth. Otherwise it
    /// sleeps until its next deadline (inventory debounce, full report, telemetry interval), not on a fixed period.
    private nonisolated let wake = Wakeup()
    /// A change batch arrived since the last telemetry tick: a `changes` report may have something to say.
    private var moved = true
    public private(set) var inventorySent = 0

    public init(mqtt: MQTTClient, connection: MQTTService, acquisition: StationAcquisition, topics: Topics, version: String,
                telemetryInterval: Double, inventoryDebounce: Double, logger: Logger,
                telemetryFullInterval: Double = 3600, telemetry: TelemetryReporter = TelemetryReporter(), meter: UplinkMeter? = nil,
                governor: TelemetryGovernor? = nil, budgetCheckInterval: Double = 3600, budgetGauge: UplinkBudgetGauge? = nil) {
        self.mqtt = mqtt; self.connection = connection; self.acquisition = acquisition; self.topics = topics
        self.version = version; self.telemetryInterval = telemetryInterval; self.inventoryDebounce = inventoryDebounce
        self.logger = logger
        self.telemetryFullInterval = telemetryFullInterval; self.reporter = telemetry; self.meter = meter
        self.governor = governor; self.budgetCheckInterval = budgetCheckInterval; self.budgetGauge = budgetGauge
        base = (telemetryInterval, telemetryFullInterval, telemetry.deadbands)
        // The first evaluation after one check interval: a forecast at the start would have almost nothing to go on.
        budgetDue = ContinuousClock.now.advanced(by: .milliseconds(Int64(budgetCheckInterval * 1000)))
        if let governor { budgetGauge?.set(governor) }
    }

    /// The budget governor's step (at most once per check interval, when telemetry is about to go out): forecast
    /// the month from the meter's rolling 24 h, then widen or relax the telemetry intervals and deadbands.
    private func governBudget() {
        guard var g = governor, let meter, ContinuousClock.now >= budgetDue else { return }
        budgetDue = ContinuousClock.now.advanced(by: .milliseconds(Int64(budgetCheckInterval * 1000)))
        let now = Date()
        let changed = g.evaluate(forecast: TelemetryGovernor.forecast(windowBytes: meter.total24h(at: now),
                                                                      observedSeconds: now.timeIntervalSince(meter.startedAt)))
        governor = g
        budgetGauge?.set(g)
        guard changed else { return }
        let f = Double(g.factor)
        telemetryInterval = base.interval * f
        telemetryFullInterval = base.full * f
        reporter.deadbands = base.deadbands.scaled(by: f)
        logger.notice(g.active ? "uplink budget: telemetry widened" : "uplink budget: telemetry back to its configured intervals",
                      metadata: ["factor": "\(g.factor)", "forecast_mb": "\(Int(g.forecastBytes / 1e6))", "budget_mb": "\(g.budgetBytes / 1e6)"])
    }

    /// A `full` telemetry report at the next tick (rebirth); the `changes` that follow compare against it.
    public func fullReportNow() { fullDue = ContinuousClock.now; wake.signal() }

    /// The will of the connection numbered `session` (registered before its CONNECT).
    public static func willPayload(stationID: String, version: String, session: UInt64? = nil) -> [UInt8] {
        Payloads.status(online: false, stationID: stationID, version: version, cabinet: nil, session: session, now: Date())
    }

    /// `rebirth` (contract 1.1): status, inventory and a full telemetry report now, whatever was sent before.
    public func rebirth() async {
        await publishStatus()
        lastInventory = nil
        await publishInventory()
        fullReportNow()   // the tick, woken, sends it at once
    }

    public func run() async throws {
        let states = connection.connectionStates()
        let batches = acquisition.broadcast.subscribe()
        // At this service's turn in the shutdown, the loops are cancelled; then the offline status goes out.
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { for await up in states where up { await self.onConnected() } }
                group.addTask { for await batch in batches { await self.onChanges(batch) } }
                group.addTask { [wake = self.wake] in
                    await withTaskCancellationHandler { await self.tick() } onCancel: { wake.signal() }
                }
                // Ends only at this service's turn in the shutdown (the change stream may end before).
                await group.waitForAll()
            }
        }
        await publishOffline()
    }

    private func onConnected() async {
        lastInventory = nil   // force a fresh retained inventory after every (re)connect
        reporter.newSession()   // tseq starts again at 1, and the first report is full
        fullDue = ContinuousClock.now
        await publishStatus()
        inventoryDue = ContinuousClock.now
        stateCheckDue = ContinuousClock.now.advanced(by: .milliseconds(Self.stateCheckMilliseconds))
        wake.signal()
    }

    /// Republishes the status when a cabinet's state moved without a change batch; looks again in a second while
    /// some cabinet is still `unknown`.
    private func checkCabinetStates() async {
        let snap = acquisition.snapshot
        let current = cabinetState(snap) + "\(cabinetStates(snap) ?? [:])"
        if current != lastCabinetState { await publishStatus() }
        let undecided = CabinetReports.states(snap, acquisition).contains { $0.state == .unknown }
        stateCheckDue = undecided && mqtt.isConnected
            ? ContinuousClock.now.advanced(by: .milliseconds(Self.stateCheckMilliseconds)) : nil
    }

    private func onChanges(_ batch: ChangeBatch) {
        moved = true
        if batch.inventory != lastInventory, inventoryDue == nil {
            inventoryDue = ContinuousClock.now.advanced(by: .milliseconds(Int64(inventoryDebounce * 1000)))
        }
        wake.signal()
        if cabinetState(batch.snapshot) + "\(cabinetStates(batch.snapshot) ?? [:])" != lastCabinetState {
            Task { await self.publishStatus() }
        }
    }

    /// Sends what is due, then sleeps until the next deadline or a wake-up. A deadline whose work could not be done
    /// (not connected, nothing read yet) waits for a wake-up (the connect, the first change batch), not a retry
    /// period. The telemetry interval is a deadline only while something may have moved (a change batch since the
    /// last report) or a full report is owed: a station where nothing changes is not woken by it.
    private func tick() async {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let now = ContinuousClock.now
            var stuck = false   // something was due and could not be sent: wait for a wake-up
            if let due = stateCheckDue, now >= due {
                stateCheckDue = nil
                await checkCabinetStates()
            }
            if let due = inventoryDue, now >= due {
                await publishInventory()
                if let again = inventoryDue, again <= now { stuck = true }
            }
            if let due = fullDue, now >= due {
                if await publishTelemetry(full: true) {
                    fullDue = now.advanced(by: .milliseconds(Int64(telemetryFullInterval * 1000)))
                    telemetryDue = now.advanced(by: .milliseconds(Int64(telemetryInterval * 1000)))
                    moved = false
                } else {
                    stuck = true
                }
            } else if now >= telemetryDue, moved || reporter.mode == .full || reporter.needsFull {
                telemetryDue = now.advanced(by: .milliseconds(Int64(telemetryInterval * 1000)))
                moved = false
                await publishTelemetry(full: reporter.mode == .full || reporter.needsFull)
            }
            if Task.isShuttingDownGracefully || Task.isCancelled { break }
            await wake.wait(until: nextDeadline(now: ContinuousClock.now, skippingDue: stuck))
        }
    }

    /// The earliest future deadline; with `skippingDue`, those already past (stuck until a wake-up) are left out.
    private func nextDeadline(now: ContinuousClock.Instant, skippingDue: Bool) -> ContinuousClock.Instant? {
        var candidates: [ContinuousClock.Instant] = []
        if let d = inventoryDue { candidates.append(d) }
        if let d = fullDue { candidates.append(d) }
        if let d = stateCheckDue { candidates.append(d) }
        if moved || reporter.mode == .full || reporter.needsFull { candidates.append(telemetryDue) }
        if skippingDue { candidates.removeAll { $0 <= now } }
        return candidates.min()
    }

    private func cabinetState(_ snap: StationSnapshot) -> String {
        let each = CabinetReports.states(snap, acquisition).map(\.state.rawValue)
        if each.count > 1 {
            let states = Set(each)
            return ["online", "safe_mode", "unreachable", "unknown"].first(where: states.contains) ?? "unknown"
        }
        return each.first ?? "unknown"
    }

    private func cabinetStates(_ snap: StationSnapshot) -> [String: String]? {
        let each = CabinetReports.states(snap, acquisition)
        guard each.count > 1 else { return nil }
        return Dictionary(each.map { ($0.id, $0.state.rawValue) }, uniquingKeysWith: { a, _ in a })
    }

    private func publishStatus() async {
        guard mqtt.isConnected, !wentOffline else { return }
        let snap = acquisition.snapshot
        let state = cabinetState(snap)
        let each = cabinetStates(snap)
        let payload = Payloads.status(online: true, stationID: topics.stationID, version: version, cabinet: state, cabinets: each,
                                      session: mqtt.session, now: Date())
        do {
            try await mqtt.publish(.status, meter: meter, topic: topics.status, payload: payload, qos: 1, retain: true)
            lastCabinetState = state + "\(each ?? [:])"
        } catch { logger.info("status not published", metadata: ["error": "\(error)"]) }
    }

    private func publishInventory() async {
        guard mqtt.isConnected, let inv = await acquisition.inventory else { return }
        inventoryDue = nil
        guard inv != lastInventory else { return }
        do {
            try await mqtt.publish(.inventory, meter: meter, topic: topics.inventory, payload: Payloads.inventory(inv, stationID: topics.stationID,
                                                                                         cabinetOrder: acquisition.cabinets.map(\.configuration.cabinetID), now: Date()),
                                   qos: 1, retain: true)
            lastInventory = inv
            inventorySent += 1
        } catch {
            inventoryDue = ContinuousClock.now.advanced(by: .seconds(1))
            logger.info("inventory not published; will retry", metadata: ["error": "\(error)"])
        }
    }

    /// Sends a `full` report, or the `changes` since the last report (nothing when nothing moved). Returns whether
    /// a full report went out (false: not connected or nothing read yet; the tick tries again).
    @discardableResult
    private func publishTelemetry(full: Bool) async -> Bool {
        guard mqtt.isConnected else { return false }
        governBudget()
        let snap = acquisition.snapshot
        guard snap.cabinet != nil else { return false }
        let body = Payloads.telemetryBody(snap, quarantined: await acquisition.quarantined)
        let session = mqtt.session.map { Int(clamping: $0) }   // the status's session number (contract 1.1)
        let payload = full ? reporter.full(body, stationID: topics.stationID, session: session, now: Date())
                           : reporter.changes(body, stationID: topics.stationID, session: session, now: Date())
        guard let payload else { return false }
        do {
            try await mqtt.publish(.telemetry, meter: meter, topic: topics.telemetry, payload: payload, qos: 0, retain: false)
            telemetrySent += 1
        } catch { logger.debug("telemetry not published", metadata: ["error": "\(error)"]) }
        return full
    }

    private func publishOffline() async {
        wentOffline = true
        guard mqtt.isConnected else { return }
        let payload = Payloads.status(online: false, stationID: topics.stationID, version: version, cabinet: nil, session: mqtt.session, now: Date())
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.mqtt.publish(topic: self.topics.status, payload: payload, qos: 1, retain: true) }
                group.addTask { try await Task.sleep(for: .seconds(3)); throw CancellationError() }
                try await group.next()
                group.cancelAll()
            }
            logger.notice("published offline status")
        } catch { logger.warning("offline status not confirmed before shutdown", metadata: ["error": "\(error)"]) }
    }
}
