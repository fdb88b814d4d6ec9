import Acquisition
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the daemon knows of its own health: links, alarms, the last error of each part.
/// Read by the status message, logs and (later) the local control API.
public struct GatewayHealthState: Sendable, Codable {
    public var mqttConnected = false
    public var mqttLastError: String?
    public var storeError: String?
    public var eventsPendingInMemory = 0
    public var eventsDroppedUnrecorded = 0
    public var lastPublishError: String?
    /// The credentials alarm (`credentials: <reason>`), nil when not raised. Persisted by the forwarder in the
    /// store's meta (`UsageForwarder.credentialsAlarmMetaKey`), so it outlives a restart.
    public var odooAlarm: String?
    /// The last transient failure reaching Odoo (transport, 5xx, non-JSON answer); nil once Odoo answers again.
    public var odooLastError: String?
    /// What the last usage-log attempt since the start showed: true = Odoo answered (any verdict, credentials
    /// refusal included), false = it could not be reached (`odooLastError`), nil = no attempt finished yet.
    public var odooReachable: Bool?
    /// When Odoo last answered a usage-log request (any verdict).
    public var odooLastAnswerAt: Date?
    public var startedAt = Date()

    /// The Odoo link as far as it is known. `persistedAlarm`: the alarm read from the store, used while the
    /// forwarder has not reported anything yet (just after a start).
    public func odooStatus(configured: Bool, persistedAlarm: String?) -> OdooLinkStatus {
        guard configured else { return OdooLinkStatus(state: .notConfigured, reason: nil) }
        if let a = odooAlarm ?? (odooReachable == nil ? persistedAlarm.map { "credentials: \($0)" } : nil) {
            return OdooLinkStatus(state: .alarm, reason: a)
        }
        switch odooReachable {
        case true?: return OdooLinkStatus(state: .up, reason: nil)
        case false?: return OdooLinkStatus(state: .down, reason: odooLastError)
        case nil: return OdooLinkStatus(state: .unknown, reason: nil)
        }
    }
}

/// The Odoo link in `swapctl status` and `/health`.
public struct OdooLinkStatus: Sendable, Equatable {
    public enum State: String, Sendable, Codable {
        /// The last attempt got Odoo's verdict on a record (recorded, duplicate or rejected).
        case up
        /// The last attempt could not reach Odoo (transport error, timeout, 5xx, not JSON-RPC); `reason` says why.
        case down
        /// Odoo refuses the station's credentials (persisted across restarts until Odoo accepts a record).
        case alarm
        /// Nothing tried since the start (and no alarm persisted): e.g. nothing to send.
        case unknown
        /// No `odoo.base_url`: records are kept.
        case notConfigured = "not_configured"
    }
    public var state: State
    public var reason: String?
}

public final class GatewayHealth: Sendable {
    private let box = Locked(GatewayHealthState())
    public init() {}
    public var state: GatewayHealthState { box.current }
    public func update(_ body: (inout GatewayHealthState) -> Void) { box.withLock { body(&$0) } }
}

// `Wakeup` (a level-triggered wake-up for one waiter) is in StationSupport.
