import Synchronization

/// A level-triggered wake-up for one waiter: signals before a wait collapse into one.
/// (An AsyncStream would finish for good when a waiting task is cancelled by the timeout race.)
public final class Wakeup: Sendable {
    private struct State: Sendable {
        var pending = false
        var waiter: (id: UInt64, continuation: CheckedContinuation<Void, Never>)?
        var nextID: UInt64 = 0
    }
    private let state = Mutex(State())

    public init() {}

    public func signal() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let w = s.waiter {
                s.waiter = nil
                return w.continuation
            }
            s.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns at the next signal (or at once if one is pending), or after `timeout` seconds.
    public func wait(timeout: Double) async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            let id = state.withLock { s -> UInt64? in
                if s.pending {
                    s.pending = false
                    return nil
                }
                s.nextID &+= 1
                s.waiter = (s.nextID, cont)
                return s.nextID
            }
            guard let id else { return cont.resume() }
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))
                self?.expire(id)
            }
        }
    }

    private func expire(_ id: UInt64) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter, w.id == id else { return nil }
            s.waiter = nil
            return w.continuation
        }
        waiter?.resume()
    }
}

/// A one-way flag that tasks can wait for (systemd's READY=1 waits for the control socket).
public final class ReadyFlag: Sendable {
    private struct State: Sendable {
        var done = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    public init() {}

    public func set() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.done = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for c in waiters { c.resume() }
    }

    public func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s -> Bool in
                if s.done { return true }
                s.waiters.append(c)
                return false
            }
            if done { c.resume() }
        }
    }
}
