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
    public var odooAlarm: String?
    /// The last transient failure reaching Odoo (transport, 5xx, non-JSON answer); nil once a record lands.
    public var odooLastError: String?
    public var startedAt = Date()
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
