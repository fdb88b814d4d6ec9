import ABSProtocol
import Acquisition
import ControlProtocol
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import GatewayConfig
import Logging
import MQTTLink
import StationDomain
import StationStore

/// Answers the local control API's requests (see ControlProtocol and docs/control-api.md).
/// Every answer is one JSON line; every failure is an answer with a code, never a crash or a dropped
/// connection. Credentials in requests are checked and forgotten: never logged, stored or echoed.
public struct ControlHandler: Sendable {
    let configuration: GatewayConfiguration
    let configPath: String?
    let configText: String
    let configDigest: String
    let store: StationStore
    let acquisition: StationAcquisition
    let coordinator: SwapCoordinator
    let recorder: EventRecorder
    let mqtt: MQTTClient
    let health: GatewayHealth
    let metrics: GatewayMetrics
    let technicians: Technicians
    let odooConfigured: Bool
    let logger: Logger
    /// The station's operations (unlock, service, swap, usage re-send): this handler maps their typed results.
    let operations: StationOperations

    public init(configuration: GatewayConfiguration, configPath: String?, configText: String, configDigest: String,
                store: StationStore, acquisition: StationAcquisition, coordinator: SwapCoordinator, recorder: EventRecorder,
                mqtt: MQTTClient, health: GatewayHealth, metrics: GatewayMetrics, odooConfigured: Bool, logger: Logger,
                operations: StationOperations) {
        self.operations = operations
        self.configuration = configuration; self.configPath = configPath; self.configText = configText
        self.configDigest = configDigest; self.store = store; self.acquisition = acquisition; self.coordinator = coordinator
        self.recorder = recorder; self.mqtt = mqtt; self.health = health; self.metrics = metrics
        self.technicians = Technicians(path: configuration.control.techniciansFile)
        self.odooConfigured = odooConfigured; self.logger = logger
    }

    struct Failure: Error {
        let code: String
        let message: String
        init(_ code: String, _ message: String) { self.code = code; self.message = message }
    }

    /// One request line in, one response line out (without the newline).
    public func respond(to line: [UInt8]) async -> [UInt8] {
        let request: ControlRequest
        do { request = try ControlJSON.decoder().decode(ControlRequest.self, from: Data(line)) } catch {
            return encode(ControlResponse<Empty>(ok: false, code: "bad_request", error: "not a control request: \(Self.short(error))"))
        }
        do {
            try Self.refuseControlCharacters(request)
            return try await dispatch(request)
        } catch let f as Failure {
            if f.code != "not_found" {
                logger.info("control request refused", metadata: ["op": "\(request.op)", "code": "\(f.code)", "why": "\(f.message)"])
            }
            return encode(ControlResponse<Empty>(ok: false, code: f.code, error: f.message))
        } catch {
            logger.warning("control request failed", metadata: ["op": "\(request.op)", "error": "\(error)"])
            return encode(ControlResponse<Empty>(ok: false, code: "failed", error: "\(error)"))
        }
    }

    /// Identifiers (customer, plan, usage key, event type, table, technician) never hold control characters:
    /// SQLite and C strings end at a NUL, so `"cust-001\u0000x"` would be looked up as `cust-001`.
    static func refuseControlCharacters(_ r: ControlRequest) throws {
        let fields: [(String, String?)] = [("op", r.op), ("customerID", r.customerID), ("planInstanceID", r.planInstanceID),
                                           ("key", r.key), ("type", r.type), ("state", r.state), ("table", r.table),
                                           ("technician", r.technician)]
        for (name, value) in fields {
            if let value, value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                throw Failure("bad_request", "\(name) must not contain control characters")
            }
        }
    }

    private func dispatch(_ r: ControlRequest) async throws -> [UInt8] {
        switch r.op {
        case "status": return ok(try await status())
        case "slots": return ok(await slots())
        case "bms": return ok(try await bms(r))
        case "read": return ok(try await rawRead(r))
        case "events": return ok(try await events(r))
        case "queues": return ok(try await queues())
        case "usage": return ok(try await usage(r))
        case "usage_resend": return ok(try await usageResend(r))
        case "entitlements": return ok(try await entitlements(r))
        case "audit": return ok(try await audit(limit: r.limit ?? 50))
        case "unlock": return ok(try await unlock(r))
        case "service": return ok(try await service(r))
        case "swap": return ok(try await swap(r))
        case "config": return ok(config())
        case "metrics": return ok(MetricsText(text: try await metricsText()))
        case "diagnostics": return ok(try await diagnostics())
        default: throw Failure("bad_request", "unknown op '\(r.op)'")
        }
    }

    // MARK: - Reads

    func status() async throws -> StatusView {
        let h = health.state
        let snap = acquisition.snapshot
        let stats = acquisition.statistics
        let cab = snap.cabinet
        let sync = try await store.entitlementSyncState()
        let log = try await store.stats()
        let usage = try await store.usageStats()
        // Every cabinet for itself (CabinetReports: the same states as /health, /metrics and the MQTT status).
        let reports = CabinetReports.reports(snap, acquisition)
        let summary = CabinetReports.summary(reports)
        var alarms: [String] = []
        for r in reports {
            let name = reports.count > 1 ? "cabinet \(r.id)" : "cabinet"
            let out = reports.count > 1 ? " (its slots\(r.slotRange.map { " \($0)" } ?? "") are out of swaps)" : ""
            switch r.state {
            case .unknown where r.statistics.cycles == 0: alarms.append("\(name) not polled yet\(out)")
            case .unreachable, .unknown: alarms.append("\(name) not answering\(out)" + (r.statistics.lastError.map { ": \($0)" } ?? ""))
            case .safeMode: alarms.append("\(name) in safe mode (no unlocks)\(out)")
            case .online: break
            }
            if let info = r.info, !r.stale {
                for flag in info.flags.intersection(.alarms).names { alarms.append("\(name): \(flag)") }
                if !info.flags.contains(.mainsOK) { alarms.append("\(name): mains power lost") }
            }
        }
        if !mqtt.isConnected { alarms.append("broker not connected" + (h.mqttLastError.map { ": \($0)" } ?? "")) }
        if let e = h.storeError { alarms.append("store: \(e)") }
        let odoo = await odooStatus()
        switch odoo.state {
        case .alarm: alarms.append("odoo: \(odoo.reason ?? "credentials refused")")
        case .down: alarms.append("odoo not reachable: \(odoo.reason ?? "unknown error")")
        case .up, .unknown, .notConfigured: break
        }
        if usage.rejected > 0 { alarms.append("\(usage.rejected) usage record(s) rejected by Odoo (swapctl queues)") }
        // Slots that do not answer in a cabinet that does (a whole cabinet's are in its own alarm above).
        let answering = Set(reports.filter { !$0.stale }.map(\.id))
        let stale = snap.slots.filter { $0.stale && answering.contains($0.cabinet ?? reports.first?.id ?? "") }.map(\.number)
        if !stale.isEmpty { alarms.append("slots not answering: \(stale.map(String.init).joined(separator: ","))") }
        let uptime = Date().timeIntervalSince(h.startedAt)
        let rfc: (Date?) -> String? = { $0.map(RFC3339.format) }
        let cabinets: [CabinetLinkView] = reports.map { r in
            let st = r.statistics
            var v = CabinetLinkView(id: r.id, unit: r.unit, bus: r.bus, up: r.state == .online || r.state == .safeMode,
                                    safeMode: r.state == .safeMode, flags: r.info?.flags.names ?? [],
                                    firmware: r.info.map { "\($0.firmwareVersion) (map v\($0.mapVersion))" },
                                    firstSlot: r.firstSlot, slotCount: r.slotCount, lastError: st.lastError)
            v.state = r.state.rawValue; v.stale = r.stale; v.transport = r.transport; v.address = r.address
            v.polls = st.cycles; v.failedPolls = st.failedCycles; v.consecutiveFailures = st.consecutiveFailures
            v.lastPollAt = rfc(st.lastPollAt); v.lastPollOK = st.lastPollOK; v.lastAnswerAt = rfc(st.lastAnswerAt)
            v.backoffSeconds = st.backoffSeconds; v.nextPollAt = st.lastPollOK == false ? rfc(st.nextPollAt) : nil
            v.watchdogWrites = st.watchdogWrites; v.watchdogErrors = st.watchdogErrors; v.lastWatchdogAt = rfc(st.lastWatchdogAt)
            v.clockSetAt = rfc(st.clockSetAt); v.reboots = st.reboots; v.uptimeSeconds = r.info?.uptimeSeconds
            return v
        }
        // The top-level safe mode and flags: any cabinet's (each one's are in `cabinets`).
        let live = reports.filter { !$0.stale }.compactMap(\.info)
        var flagNames: [String] = []
        for info in live { for n in info.flags.names where !flagNames.contains(n) { flagNames.append(n) } }
        var view = StatusView(
            stationID: configuration.station.id, version: GatewayVersion.string, startedAt: RFC3339.format(h.startedAt),
            uptimeSeconds: Int(uptime), pid: getpid(),
            cabinet: .init(up: summary.state == "online", detail: summary.detail,
                           lastError: reports.first { $0.state != .online }?.statistics.lastError, state: summary.state),
            broker: .init(up: mqtt.isConnected, detail: "\(configuration.mqtt.host):\(configuration.mqtt.port)", lastError: h.mqttLastError ?? h.lastPublishError),
            odoo: .init(up: odoo.state == .up,
                        detail: odooConfigured ? configuration.odoo.baseURL : "not configured (records kept)",
                        lastError: odoo.reason ?? h.odooLastError, state: odoo.state.rawValue),
            safeMode: reports.contains { $0.state == .safeMode }, cabinetFlags: flagNames, firmware: cab.map { "\($0.firmwareVersion) (map v\($0.mapVersion))" },
            cabinetUptimeSeconds: cab?.uptimeSeconds, alarms: alarms, swapsInProgress: await coordinator.swapsInProgress,
            entitlements: cacheView(sync), eventsUnsent: log.unsent, usagePending: usage.pending, usageRejected: usage.rejected,
            acquisition: AcquisitionStatsView(cycles: stats.cycles, failedCycles: stats.failedCycles, requests: stats.requests,
                                              busErrors: stats.busErrors, reboots: stats.reboots, commands: stats.commands, lastError: stats.lastError))
        view.cabinets = cabinets
        var sent: [String: Int] = [:], received: [String: Int] = [:]
        let day = metrics.traffic.last24h()
        for c in UplinkMeter.Class.allCases {
            if c != .commands { sent[c.rawValue] = day["sent|\(c.rawValue)"] ?? 0 }
            if c == .commands || c == .keepalive { received[c.rawValue] = day["received|\(c.rawValue)"] ?? 0 }
        }
        view.mqttBytes24h = MQTTBytesView(sent: sent, received: received)
        let budget = metrics.budget.current
        if let bytes = budget.budgetBytes {
            view.uplinkBudget = UplinkBudgetView(budgetBytes: Int(bytes), forecastBytes: Int(budget.forecastBytes), factor: budget.factor, maxFactor: budget.maxFactor)
        }
        let pacing = metrics.backlog.current
        view.backlog = BacklogView(events: log.unsent, pacing: pacing.pacing && log.unsent > 0, rateBytesPerSecond: pacing.rate,
                                   etaSeconds: metrics.backlog.estimatedSeconds(unsent: log.unsent))
        view.clock = ClockTrustMark.state
        view.clockBase = ClockTrustMark.installed?.baseNow.map { RFC3339.format($0) }
        return view
    }

    /// The Odoo link as known: the forwarder's reports since the start, else the credentials alarm persisted
    /// before it (so a restart neither forgets the alarm nor claims Odoo is up).
    func odooStatus() async -> OdooLinkStatus {
        let persisted = odooConfigured ? (try? await store.meta(UsageForwarder.credentialsAlarmMetaKey)) ?? nil : nil
        return health.state.odooStatus(configured: odooConfigured, persistedAlarm: persisted)
    }

    func cacheView(_ s: EntitlementSyncState) -> EntitlementCacheView {
        EntitlementCacheView(version: s.version, count: s.count, lastSyncAt: s.lastSyncAt.map(RFC3339.format),
                             ageHours: s.lastSyncAt.map { (Date().timeIntervalSince($0) / 360).rounded() / 10 })
    }

    func slots() async -> SlotsView {
        let snap = acquisition.snapshot
        let quarantined = await acquisition.quarantined
        let readySet = await acquisition.readySlots()
        var rows: [SlotRowView] = []
        for s in snap.slots {
            let ready = readySet.contains(s.number)
            let q = quarantined[s.number]?.map(\.rawValue)
            rows.append(SlotRowView(slot: s, ready: ready, quarantine: q,
                                    status: SlotRowView.status(s, ready: ready, quarantined: q != nil)))
        }
        return SlotsView(cabinetStale: snap.cabinetStale, safeMode: snap.cabinet?.safeMode ?? false,
                         updatedAt: snap.lastUpdateMillis > 0 ? RFC3339.format(Date(timeIntervalSince1970: Double(snap.lastUpdateMillis) / 1000)) : nil,
                         slots: rows)
    }

    /// A station-wide slot from `slot`, or from `slotName` ("7" or "B/3": cabinet id / the cabinet's own slot).
    func checkedSlot(_ r: ControlRequest) throws -> Int {
        let count = acquisition.snapshot.slotCount
        guard count > 0 else { throw Failure("cabinet_unreachable", "the cabinet has not answered yet") }
        if r.slot == nil, let name = r.slotName {
            guard let slot = acquisition.resolve(name) else {
                throw Failure("invalid_slot", "slot \(name) is not a slot of this station (1…\(count), or cabinet/slot such as \(acquisition.cabinets.last!.configuration.cabinetID)/1)")
            }
            return slot
        }
        guard let slot = r.slot else { throw Failure("bad_request", "slot is required") }
        guard (1 ... count).contains(slot), acquisition.locate(slot) != nil else { throw Failure("invalid_slot", "slot \(slot) outside 1…\(count)") }
        return slot
    }

    func bms(_ r: ControlRequest) async throws -> BMSView {
        let slot = try checkedSlot(r)
        guard let s = acquisition.snapshot.slot(slot) else { throw Failure("invalid_slot", "slot \(slot) not in the model") }
        guard s.bms != nil else { return BMSView(slot: s, cells: nil, cellsError: nil) }
        do { return BMSView(slot: s, cells: try await LocalBusTurn.shared.run { try await acquisition.readCells(slot: slot) }, cellsError: nil) } catch {
            return BMSView(slot: s, cells: nil, cellsError: "\(error)")
        }
    }

    func rawRead(_ r: ControlRequest) async throws -> RawReadView {
        let unit = r.unit ?? Int(CabinetMap.cabinetUnit)
        let table = r.table ?? "input"
        guard table == "input" || table == "holding" else { throw Failure("bad_request", "table must be input or holding") }
        guard let address = r.address, let count = r.count else { throw Failure("bad_request", "address and count are required") }
        guard (1 ... 247).contains(unit) else { throw Failure("bad_request", "unit \(unit) outside 1…247") }
        guard (0 ... 65535).contains(address), (1 ... CabinetMap.maxRegistersPerRead).contains(count), address + count <= 65536 else {
            throw Failure("bad_request", "address 0…65535 and count 1…\(CabinetMap.maxRegistersPerRead) within the address space")
        }
        do {
            let regs = try await LocalBusTurn.shared.run { try await acquisition.rawRead(cabinet: r.cabinet, unit: unit, holding: table == "holding", address: address, count: count) }
            return RawReadView(unit: unit, table: table, address: address, registers: regs)
        } catch {
            throw Failure("bus_error", "\(error)")
        }
    }

    func events(_ r: ControlRequest) async throws -> [EventView] {
        let limit = min(max(r.limit ?? 20, 1), 1000)
        let rows = try await store.events(fromSeq: r.fromSeq, type: r.type, limit: limit, newestFirst: r.fromSeq == nil)
        return rows.map(Self.view)
    }

    static func view(_ e: StoredEvent) -> EventView {
        EventView(seq: e.seq, eventID: e.eventID.uuidString.lowercased(), type: e.type, timestamp: RFC3339.format(e.timestamp),
                  sent: e.sentAt != nil, data: String(decoding: e.data, as: UTF8.self))
    }

    func queues() async throws -> QueuesView {
        let log = try await store.stats()
        let usage = try await store.usageStats()
        let rejected = try await store.listUsage(state: .rejected, limit: 50)
        let h = health.state
        let odoo = await odooStatus()
        return QueuesView(eventsTotal: log.total, eventsUnsent: log.unsent, lastSeq: log.lastSeq,
                          oldestUnsentAt: log.oldestUnsentTimestamp.map(RFC3339.format),
                          oldestUnsentAgeSeconds: log.oldestUnsentTimestamp.map { max(0, Date().timeIntervalSince($0)) },
                          storeBytes: log.fileBytes, brokerConnected: mqtt.isConnected, lastPublishError: h.lastPublishError,
                          usagePending: usage.pending, usageRejected: usage.rejected, usageSettled: usage.settled,
                          oldestPendingUsageAt: usage.oldestPendingAt.map(RFC3339.format), odooConfigured: odooConfigured,
                          odooAlarm: odoo.state == .alarm ? odoo.reason : nil, rejected: rejected.map(Self.view))
    }

    public static func view(_ s: StoredUsage) -> UsageView {
        UsageView(key: s.record.idempotencyKey, state: s.state.rawValue, attempts: s.attempts, lastError: s.lastError,
                  occurredAt: RFC3339.format(s.record.occurredAt), customerID: s.record.customerID,
                  energyKWh: s.record.lines.first { $0.unit == "kWh" }?.quantity, record: s.record)
    }

    func usage(_ r: ControlRequest) async throws -> [UsageView] {
        var state: UsageState?
        if let s = r.state {
            guard let parsed = UsageState(rawValue: s) else { throw Failure("bad_request", "state must be pending, rejected or settled") }
            state = parsed
        }
        return try await store.listUsage(state: state, limit: min(max(r.limit ?? 50, 1), 10_000)).map(Self.view)
    }

    func usageResend(_ r: ControlRequest) async throws -> UsageView {
        guard let key = r.key, !key.isEmpty else { throw Failure("bad_request", "key is required") }
        return Self.view(try Self.unwrap(await operations.resendUsage(key: key, by: .technician(name: "local"))))
    }

    func entitlements(_ r: ControlRequest) async throws -> EntitlementLookupView {
        guard let customer = r.customerID, !customer.isEmpty else { throw Failure("bad_request", "customerID is required") }
        let list = try await store.effectiveEntitlements(customerID: customer)
        return EntitlementLookupView(customerID: customer, cache: cacheView(try await store.entitlementSyncState()), entitlements: list)
    }

    func audit(limit: Int) async throws -> [AuditView] {
        try await store.audit(limit: min(max(limit, 1), 10_000)).map {
            AuditView(timestamp: RFC3339.format($0.timestamp), actor: $0.actor, action: $0.action, detail: $0.detail)
        }
    }

    func config() -> ConfigView {
        ConfigView(path: configPath ?? "-", digest: configDigest, text: Self.redact(configText))
    }

    /// The configuration text with the value of every secret-bearing key replaced by `<redacted>`: redacted
    /// in the parsed YAML document and re-emitted (see YAMLDocument.redacted), whatever the spelling.
    public static func redact(_ text: String) -> String { YAMLDocument.redacted(text) }

    func metricsText() async throws -> String {
        MetricsExposition.render(metrics: metrics, acquisition: acquisition.statistics, snapshot: acquisition.snapshot,
                                 log: try? await store.stats(), usage: try? await store.usageStats(), mqttConnected: mqtt.isConnected,
                                 cabinets: CabinetReports.of(acquisition))
    }

    func diagnostics() async throws -> DiagnosticsBundle {
        DiagnosticsBundle(createdAt: RFC3339.format(Date()), status: try await status(), queues: try await queues(),
                          slots: await slots(), config: config(),
                          recentEvents: try await store.events(fromSeq: nil, type: nil, limit: 200, newestFirst: true).map(Self.view),
                          audit: try await audit(limit: 200), recentLog: RecentLog.shared.lines, metrics: try await metricsText())
    }

    // MARK: - Actions (technician credential required, audited)

    func authorise(_ r: ControlRequest, action: String, slot: Int) async throws -> String {
        guard let name = r.technician, !name.isEmpty, name.count <= 64,
              name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.@".contains($0) }) else {
            try? await store.appendAudit([AuditEntry(timestamp: Date(), actor: "technician:?", action: action + ".refused",
                                                     detail: "{\"slot\":\(slot),\"why\":\"no technician name\"}")])
            throw Failure("unauthorized", "a technician name is required (letters, digits, - _ . @)")
        }
        switch technicians.verify(name: name, credential: r.credential ?? "") {
        case .accepted:
            return name
        case let .refused(why):
            try? await store.appendAudit([AuditEntry(timestamp: Date(), actor: "technician:\(name)", action: action + ".refused",
                                                     detail: String(decoding: JSON.encode(["slot": slot, "why": why]), as: UTF8.self))])
            logger.warning("technician action refused", metadata: ["action": "\(action)", "technician": "\(name)", "slot": "\(slot)", "why": "\(why)"])
            throw Failure("unauthorized", why)
        }
    }

    func unlock(_ r: ControlRequest) async throws -> ActionView {
        let slot = try checkedSlot(r)
        let name = try await authorise(r, action: "maintenance.unlock", slot: slot)
        let reason = String((r.reason ?? "maintenance").prefix(200))
        let done = try Self.unwrap(await operations.maintenanceUnlock(slot: slot, reason: reason, by: .technician(name: name)))
        return ActionView(slot: done.slot, result: "\(done.result)")
    }

    func service(_ r: ControlRequest) async throws -> ActionView {
        let slot = try checkedSlot(r)
        guard let inService = r.inService else { throw Failure("bad_request", "inService is required") }
        let name = try await authorise(r, action: inService ? "slot.in_service" : "slot.out_of_service", slot: slot)
        let done = try Self.unwrap(await operations.setSlotService(slot: slot, inService: inService, reason: r.reason ?? "",
                                                                   by: .technician(name: name)))
        return ActionView(slot: done.slot, result: "\(done.result)")
    }

    /// A done operation's value, or its refusal as this API's error (OperationRefusal.controlCode).
    static func unwrap<V>(_ result: OperationResult<V>) throws -> V {
        switch result {
        case let .done(v): return v
        case let .refused(r): throw Failure(r.controlCode, r.message)
        }
    }

    /// A swap request relayed by a local terminal (a kiosk or rider app on the station's own network): the same
    /// decision, recording and state machine as an ABS command; decided offline when the broker is down.
    func swap(_ r: ControlRequest) async throws -> SwapReplyView {
        guard let customer = r.customerID, !customer.isEmpty, customer.count <= 128 else { throw Failure("bad_request", "customerID is required") }
        let now = Date()
        let header = CommandHeader(requestID: "local-" + UUID().uuidString.lowercased(), issuedAt: now,
                                   expiresAt: now.addingTimeInterval(120), kid: nil)
        let result = await operations.requestSwap(header: header, customerID: customer, planInstanceID: r.planInstanceID, channel: "local")
        // The view carries the ABS reply's code (the same decision, the same codes as the `swap` command).
        let code = result.refusal?.absCode.rawValue
        metrics.countCommand("swap.local", result: code ?? "ok")
        return SwapReplyView(requestID: header.requestID, accepted: result.value != nil, code: code, message: result.refusal?.message,
                             data: result.value.map { ContractJSON.string($0.data) })
    }

    // MARK: - Encoding

    func ok<T: Codable & Sendable>(_ value: T) -> [UInt8] { encode(ControlResponse(ok: true, data: value)) }

    func encode<T: Codable & Sendable>(_ response: ControlResponse<T>) -> [UInt8] {
        let enc = ControlJSON.encoder()
        return Array((try? enc.encode(response)) ?? Data(#"{"ok":false,"code":"failed","error":"cannot encode the answer"}"#.utf8))
    }

    static func short(_ error: Error) -> String {
        if let e = error as? DecodingError {
            switch e {
            case let .keyNotFound(k, _): return "missing field \(k.stringValue)"
            case let .typeMismatch(_, c), let .valueNotFound(_, c): return "wrong type at \(c.codingPath.map(\.stringValue).joined(separator: "."))"
            case .dataCorrupted: return "malformed JSON"
            @unknown default: return "malformed"
            }
        }
        return "\(error)"
    }
}

/// Technicians' on-demand bus reads (`read`, `bms`) one at a time, whatever the number of connections: at most
/// one of them is queued on the bus ahead of the polling cycle, which writes the controller's watchdog.
actor LocalBusTurn {
    static let shared = LocalBusTurn()
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        if busy { await withCheckedContinuation { waiters.append($0) } } else { busy = true }
        defer { if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() } }
        return try await body()
    }
}
