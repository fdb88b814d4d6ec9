import Acquisition
import Foundation

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
    private let box = LockedBox(GatewayHealthState())
    public init() {}
    public var state: GatewayHealthState { box.current }
    public func update(_ body: (inout GatewayHealthState) -> Void) { box.withLock { body(&$0) } }
}

/// A level-triggered wake-up for one waiter: signals before a wait collapse into one.
/// (An AsyncStream would finish for good when a waiting task is cancelled by the timeout race.)
public final class Wakeup: @unchecked Sendable {
    // @unchecked: `pending` and `waiter` are only touched under `lock`.
    private let lock = NSLock()
    private var pending = false
    private var waiter: (id: UInt64, continuation: CheckedContinuation<Void, Never>)?
    private var nextID: UInt64 = 0

    public init() {}

    public func signal() {
        lock.lock()
        if let w = waiter {
            waiter = nil
            lock.unlock()
            w.continuation.resume()
        } else {
            pending = true
            lock.unlock()
        }
    }

    /// Returns at the next signal (or at once if one is pending), or after `timeout` seconds.
    public func wait(timeout: Double) async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            lock.lock()
            if pending {
                pending = false
                lock.unlock()
                cont.resume()
                return
            }
            nextID &+= 1
            let id = nextID
            waiter = (id, cont)
            lock.unlock()
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))
                self?.expire(id)
            }
        }
    }

    private func expire(_ id: UInt64) {
        lock.lock()
        if let w = waiter, w.id == id {
            waiter = nil
            lock.unlock()
            w.continuation.resume()
        } else {
            lock.unlock()
        }
    }
}
