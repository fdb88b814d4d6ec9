#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationDomain

// The local control API's messages (docs/control-api.md). One JSON object per line each way over the
// daemon's Unix socket (keys are these types' property names, e.g. `customerID`): a request `{"op": "...", ...}`, then a response `{"ok": true, "data": {...}}` or
// `{"ok": false, "code": "...", "error": "..."}`. swapctl decodes the same types it is sent.

/// A request. Only the fields its `op` uses are read; unknown fields are ignored.
public struct ControlRequest: Codable, Sendable {
    public var op: String
    public var slot: Int?
    /// A slot as a technician writes it: "7" (station-wide) or "B/3" (cabinet id / the cabinet's own slot);
    /// resolved by the daemon, which knows the station's cabinets. Used when `slot` is absent.
    public var slotName: String?
    /// Raw reads: the cabinet whose bus to read (its configured id; default the first cabinet's bus).
    public var cabinet: String?
    public var limit: Int?
    public var type: String?
    public var fromSeq: Int64?
    public var customerID: String?
    public var planInstanceID: String?
    public var key: String?
    public var state: String?
    public var unit: Int?
    public var table: String?
    public var address: Int?
    public var count: Int?
    public var technician: String?
    public var credential: String?
    public var reason: String?
    public var inService: Bool?

    public init(op: String) { self.op = op }
}

public struct ControlResponse<Data: Codable & Sendable>: Codable, Sendable {
    public var ok: Bool
    public var code: String?
    public var error: String?
    public var data: Data?
    public init(ok: Bool, code: String? = nil, error: String? = nil, data: Data? = nil) {
        self.ok = ok; self.code = code; self.error = error; self.data = data
    }
}

/// An op's answer without data (errors, acknowledgements).
public struct Empty: Codable, Sendable { public init() {} }

public struct StatusView: Codable, Sendable {
    public struct Link: Codable, Sendable {
        public var up: Bool
        public var detail: String
        public var lastError: String?
        /// Odoo only: `up`, `down`, `alarm`, `unknown` or `not_configured` (see OdooLinkStatus).
        public var state: String? = nil
        public init(up: Bool, detail: String, lastError: String? = nil, state: String? = nil) {
            self.up = up; self.detail = detail; self.lastError = lastError; self.state = state
        }
    }
    public var stationID: String
    public var version: String
    public var startedAt: String
    public var uptimeSeconds: Int
    public var pid: Int32
    public var cabinet: Link
    public var broker: Link
    public var odoo: Link
    public var safeMode: Bool
    public var cabinetFlags: [String]
    public var firmware: String?
    public var cabinetUptimeSeconds: UInt32?
    public var alarms: [String]
    public var swapsInProgress: Int
    public var entitlements: EntitlementCacheView
    public var eventsUnsent: Int
    public var usagePending: Int
    public var usageRejected: Int
    public var acquisition: AcquisitionStatsView
    /// Every cabinet in configured order (one cabinet too). `cabinet` sums them up, never better than the worst:
    /// `cabinet.state` is `online` (all online), `degraded` (some online, `detail` names the others), `down` (none
    /// online) or `unknown` (none polled yet), and `cabinet.up` is true only when every cabinet is online.
    public var cabinets: [CabinetLinkView]? = nil
    /// Estimated MQTT bytes in the last 24 h by class ("sent" classes and "received" commands; UplinkMeter).
    public var mqttBytes24h: MQTTBytesView? = nil
    /// The monthly uplink budget governor (publishing.monthly_budget_mb); nil: no budget configured, or an older daemon.
    public var uplinkBudget: UplinkBudgetView? = nil
    /// "synced" or "unsynced" (contract 1.1 "Time"), and the signed time base when there is one (RFC 3339).
    public var clock: String? = nil
    public var clockBase: String? = nil
    /// The event log's drain after an outage (publishing.backlog_rate); nil from an older daemon.
    public var backlog: BacklogView? = nil
    public init(stationID: String, version: String, startedAt: String, uptimeSeconds: Int, pid: Int32, cabinet: Link, broker: Link, odoo: Link, safeMode: Bool, cabinetFlags: [String], firmware: String? = nil, cabinetUptimeSeconds: UInt32? = nil, alarms: [String], swapsInProgress: Int, entitlements: EntitlementCacheView, eventsUnsent: Int, usagePending: Int, usageRejected: Int, acquisition: AcquisitionStatsView) {
        self.stationID = stationID; self.version = version; self.startedAt = startedAt; self.uptimeSeconds = uptimeSeconds; self.pid = pid; self.cabinet = cabinet; self.broker = broker; self.odoo = odoo; self.safeMode = safeMode; self.cabinetFlags = cabinetFlags; self.firmware = firmware; self.cabinetUptimeSeconds = cabinetUptimeSeconds; self.alarms = alarms; self.swapsInProgress = swapsInProgress; self.entitlements = entitlements; self.eventsUnsent = eventsUnsent; self.usagePending = usagePending; self.usageRejected = usageRejected; self.acquisition = acquisition
    }
}

/// The event publisher's backlog: unsent events, whether it is pacing them (an outage's backlog), the configured
/// rate in bytes/s (0 = unlimited) and the estimated seconds left at that rate (nil when unknown or unlimited).
public struct BacklogView: Codable, Sendable {
    public var events: Int
    public var pacing: Bool
    public var rateBytesPerSecond: Double
    public var etaSeconds: Double?
    public init(events: Int, pacing: Bool, rateBytesPerSecond: Double, etaSeconds: Double?) {
        self.events = events; self.pacing = pacing; self.rateBytesPerSecond = rateBytesPerSecond; self.etaSeconds = etaSeconds
    }
}

/// Bytes on the MQTT link over the last 24 h: sent by class (events, telemetry, inventory, status, replies) and
/// received (commands).
/// The monthly budget governor: the budget and the month forecast (bytes), and the factor by which telemetry
/// intervals and deadbands are widened now (1: as configured; `active` when above 1).
public struct UplinkBudgetView: Codable, Sendable {
    public var budgetBytes: Int
    public var forecastBytes: Int
    public var factor: Int
    public var maxFactor: Int
    public var active: Bool
    public init(budgetBytes: Int, forecastBytes: Int, factor: Int, maxFactor: Int) {
        self.budgetBytes = budgetBytes; self.forecastBytes = forecastBytes; self.factor = factor; self.maxFactor = maxFactor
        active = factor > 1
    }
}

public struct MQTTBytesView: Codable, Sendable {
    public var sent: [String: Int]
    public var received: [String: Int]
    public init(sent: [String: Int], received: [String: Int]) { self.sent = sent; self.received = received }
}

/// One cabinet of the station: its id, unit, bus, link, safe mode, flags and station slot range.
public struct CabinetLinkView: Codable, Sendable {
    public var id: String
    public var unit: Int
    public var bus: String
    public var up: Bool
    public var safeMode: Bool
    public var flags: [String]
    public var firmware: String?
    public var firstSlot: Int
    public var slotCount: Int
    public var lastError: String?
    // What a technician needs to see of each cabinet (nil from an older daemon). Times are RFC 3339.
    /// `online`, `unreachable`, `safe_mode` or `unknown` (not polled to a verdict yet): the same word as the MQTT
    /// status's `cabinets` map and /health's `cabinets`.
    public var state: String? = nil
    /// Its slots are stale (unknown) in the station model: out of swaps.
    public var stale: Bool? = nil
    /// `tcp` or `rtu`, and `host:port` or the serial device.
    public var transport: String? = nil
    public var address: String? = nil
    /// Polls (cycles) of this cabinet, those it did not answer, and failed polls in a row now.
    public var polls: Int? = nil
    public var failedPolls: Int? = nil
    public var consecutiveFailures: Int? = nil
    /// The last poll: when it ended and whether the cabinet answered; when it last answered.
    public var lastPollAt: String? = nil
    public var lastPollOK: Bool? = nil
    public var lastAnswerAt: String? = nil
    /// While it does not answer: the current reconnect backoff (seconds between polls) and the next poll's time.
    public var backoffSeconds: Double? = nil
    public var nextPollAt: String? = nil
    /// Watchdog writes that went through and that failed; the last good one.
    public var watchdogWrites: Int? = nil
    public var watchdogErrors: Int? = nil
    public var lastWatchdogAt: String? = nil
    /// The last time the gateway set the controller's clock (nil: not set since the start, e.g. no trusted time).
    public var clockSetAt: String? = nil
    /// Controller reboots seen (uptime fell) and the controller's own uptime.
    public var reboots: Int? = nil
    public var uptimeSeconds: UInt32? = nil
    public init(id: String, unit: Int, bus: String, up: Bool, safeMode: Bool, flags: [String], firmware: String?,
                firstSlot: Int, slotCount: Int, lastError: String?) {
        self.id = id; self.unit = unit; self.bus = bus; self.up = up; self.safeMode = safeMode; self.flags = flags
        self.firmware = firmware; self.firstSlot = firstSlot; self.slotCount = slotCount; self.lastError = lastError
    }
}

public struct AcquisitionStatsView: Codable, Sendable {
    public var cycles: Int
    public var failedCycles: Int
    public var requests: Int
    public var busErrors: Int
    public var reboots: Int
    public var commands: Int
    public var lastError: String?
    public init(cycles: Int, failedCycles: Int, requests: Int, busErrors: Int, reboots: Int, commands: Int, lastError: String? = nil) {
        self.cycles = cycles; self.failedCycles = failedCycles; self.requests = requests; self.busErrors = busErrors; self.reboots = reboots; self.commands = commands; self.lastError = lastError
    }
}

public struct EntitlementCacheView: Codable, Sendable {
    public var version: Int64?
    public var count: Int
    public var lastSyncAt: String?
    public var ageHours: Double?
    public init(version: Int64? = nil, count: Int, lastSyncAt: String? = nil, ageHours: Double? = nil) {
        self.version = version; self.count = count; self.lastSyncAt = lastSyncAt; self.ageHours = ageHours
    }
}

public struct SlotRowView: Codable, Sendable {
    public var slot: SlotStatus
    public var ready: Bool
    public var quarantine: [String]?
    public var status: String

    public init(slot: SlotStatus, ready: Bool, quarantine: [String]?, status: String) {
        self.slot = slot; self.ready = ready; self.quarantine = quarantine; self.status = status
    }

    /// One word for a technician: UNKNOWN, out-of-service, FAULT, quarantined, empty, ready, charging, not ready.
    public static func status(_ s: SlotStatus, ready: Bool, quarantined: Bool) -> String {
        if s.stale { return "UNKNOWN" }
        if !s.inService { return "out-of-service" }
        if s.faulted { return "FAULT" }
        if quarantined { return "quarantined" }
        if !s.batteryPresent { return "empty" }
        if ready { return "ready" }
        if s.charging { return "charging" }
        return "not ready"
    }
}

public struct SlotsView: Codable, Sendable {
    public var cabinetStale: Bool
    public var safeMode: Bool
    public var updatedAt: String?
    public var slots: [SlotRowView]

    public init(cabinetStale: Bool, safeMode: Bool, updatedAt: String?, slots: [SlotRowView]) {
        self.cabinetStale = cabinetStale; self.safeMode = safeMode; self.updatedAt = updatedAt; self.slots = slots
    }
}

public struct BMSView: Codable, Sendable {
    public var slot: SlotStatus
    public var cells: CellDetail?
    public var cellsError: String?

    public init(slot: SlotStatus, cells: CellDetail?, cellsError: String?) {
        self.slot = slot; self.cells = cells; self.cellsError = cellsError
    }
}

public struct RawReadView: Codable, Sendable {
    public var unit: Int
    public var table: String
    public var address: Int
    public var registers: [UInt16]
    public init(unit: Int, table: String, address: Int, registers: [UInt16]) {
        self.unit = unit; self.table = table; self.address = address; self.registers = registers
    }
}

public struct EventView: Codable, Sendable {
    public var seq: Int64
    public var eventID: String
    public var type: String
    public var timestamp: String
    public var sent: Bool
    /// The event's data object, as JSON text.
    public var data: String
    public init(seq: Int64, eventID: String, type: String, timestamp: String, sent: Bool, data: String) {
        self.seq = seq; self.eventID = eventID; self.type = type; self.timestamp = timestamp; self.sent = sent; self.data = data
    }
}

public struct QueuesView: Codable, Sendable {
    public var eventsTotal: Int
    public var eventsUnsent: Int
    public var lastSeq: Int64
    public var oldestUnsentAt: String?
    public var oldestUnsentAgeSeconds: Double?
    public var storeBytes: Int64
    public var brokerConnected: Bool
    public var lastPublishError: String?
    public var usagePending: Int
    public var usageRejected: Int
    public var usageSettled: Int
    public var oldestPendingUsageAt: String?
    public var odooConfigured: Bool
    public var odooAlarm: String?
    public var rejected: [UsageView]
    public init(eventsTotal: Int, eventsUnsent: Int, lastSeq: Int64, oldestUnsentAt: String? = nil, oldestUnsentAgeSeconds: Double? = nil, storeBytes: Int64, brokerConnected: Bool, lastPublishError: String? = nil, usagePending: Int, usageRejected: Int, usageSettled: Int, oldestPendingUsageAt: String? = nil, odooConfigured: Bool, odooAlarm: String? = nil, rejected: [UsageView]) {
        self.eventsTotal = eventsTotal; self.eventsUnsent = eventsUnsent; self.lastSeq = lastSeq; self.oldestUnsentAt = oldestUnsentAt; self.oldestUnsentAgeSeconds = oldestUnsentAgeSeconds; self.storeBytes = storeBytes; self.brokerConnected = brokerConnected; self.lastPublishError = lastPublishError; self.usagePending = usagePending; self.usageRejected = usageRejected; self.usageSettled = usageSettled; self.oldestPendingUsageAt = oldestPendingUsageAt; self.odooConfigured = odooConfigured; self.odooAlarm = odooAlarm; self.rejected = rejected
    }
}

public struct UsageView: Codable, Sendable {
    public var key: String
    public var state: String
    public var attempts: Int
    public var lastError: String?
    public var occurredAt: String
    public var customerID: String
    public var energyKWh: Double?
    public var record: UsageRecord
    public init(key: String, state: String, attempts: Int, lastError: String? = nil, occurredAt: String, customerID: String, energyKWh: Double? = nil, record: UsageRecord) {
        self.key = key; self.state = state; self.attempts = attempts; self.lastError = lastError; self.occurredAt = occurredAt; self.customerID = customerID; self.energyKWh = energyKWh; self.record = record
    }
}

public struct EntitlementLookupView: Codable, Sendable {
    public var customerID: String
    public var cache: EntitlementCacheView
    /// As the swap decision sees them: ABS's counters plus swaps recorded here that ABS has not counted yet.
    public var entitlements: [Entitlement]
    public init(customerID: String, cache: EntitlementCacheView, entitlements: [Entitlement]) {
        self.customerID = customerID; self.cache = cache; self.entitlements = entitlements
    }
}

public struct AuditView: Codable, Sendable {
    public var timestamp: String
    public var actor: String
    public var action: String
    public var detail: String
    public init(timestamp: String, actor: String, action: String, detail: String) {
        self.timestamp = timestamp; self.actor = actor; self.action = action; self.detail = detail
    }
}

public struct ActionView: Codable, Sendable {
    public var slot: Int
    public var result: String
    public init(slot: Int, result: String) {
        self.slot = slot; self.result = result
    }
}

public struct ConfigView: Codable, Sendable {
    public var path: String
    public var digest: String
    /// The file as loaded, with every secret value replaced by `<redacted>`.
    public var text: String
    public init(path: String, digest: String, text: String) {
        self.path = path; self.digest = digest; self.text = text
    }
}

/// One file for support: everything a remote engineer asks for first.
public struct DiagnosticsBundle: Codable, Sendable {
    public var createdAt: String
    public var status: StatusView
    public var queues: QueuesView
    public var slots: SlotsView
    public var config: ConfigView
    public var recentEvents: [EventView]
    public var audit: [AuditView]
    public var recentLog: [String]
    public var metrics: String
    public init(createdAt: String, status: StatusView, queues: QueuesView, slots: SlotsView, config: ConfigView, recentEvents: [EventView], audit: [AuditView], recentLog: [String], metrics: String) {
        self.createdAt = createdAt; self.status = status; self.queues = queues; self.slots = slots; self.config = config; self.recentEvents = recentEvents; self.audit = audit; self.recentLog = recentLog; self.metrics = metrics
    }
}


/// The answer to `swap` (a local terminal's swap request).
public struct SwapReplyView: Codable, Sendable {
    public var requestID: String
    public var accepted: Bool
    public var code: String?
    public var message: String?
    public var data: String?
    public init(requestID: String, accepted: Bool, code: String? = nil, message: String? = nil, data: String? = nil) {
        self.requestID = requestID; self.accepted = accepted; self.code = code; self.message = message; self.data = data
    }
}

/// The answer to `metrics`: Prometheus text as served on /metrics.
public struct MetricsText: Codable, Sendable {
    public var text: String
    public init(text: String) {
        self.text = text
    }
}
