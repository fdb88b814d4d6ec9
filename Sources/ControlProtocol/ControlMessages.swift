import Foundation
import StationDomain
import StationStore

// The local control API's messages (docs/control-api.md). One JSON object per line each way over the
// daemon's Unix socket (keys are these types' property names, e.g. `customerID`): a request `{"op": "...", ...}`, then a response `{"ok": true, "data": {...}}` or
// `{"ok": false, "code": "...", "error": "..."}`. swapctl decodes the same types it is sent.

/// A request. Only the fields its `op` uses are read; unknown fields are ignored.
public struct ControlRequest: Codable, Sendable {
    public var op: String
    public var slot: Int?
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
}

public struct AcquisitionStatsView: Codable, Sendable {
    public var cycles: Int
    public var failedCycles: Int
    public var requests: Int
    public var busErrors: Int
    public var reboots: Int
    public var commands: Int
    public var lastError: String?
}

public struct EntitlementCacheView: Codable, Sendable {
    public var version: Int64?
    public var count: Int
    public var lastSyncAt: String?
    public var ageHours: Double?
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
}

public struct EventView: Codable, Sendable {
    public var seq: Int64
    public var eventID: String
    public var type: String
    public var timestamp: String
    public var sent: Bool
    /// The event's data object, as JSON text.
    public var data: String
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
}

public struct EntitlementLookupView: Codable, Sendable {
    public var customerID: String
    public var cache: EntitlementCacheView
    /// As the swap decision sees them: ABS's counters plus swaps recorded here that ABS has not counted yet.
    public var entitlements: [Entitlement]
}

public struct AuditView: Codable, Sendable {
    public var timestamp: String
    public var actor: String
    public var action: String
    public var detail: String
}

public struct ActionView: Codable, Sendable {
    public var slot: Int
    public var result: String
}

public struct ConfigView: Codable, Sendable {
    public var path: String
    public var digest: String
    /// The file as loaded, with every secret value replaced by `<redacted>`.
    public var text: String
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
}
