import Synchronization

/// A level-triggered wake-up for one waiter: signals before a wait collapse into one.
/// (An AsyncStream would finish for good when a waiting task is cancelled by the timeout race.)
/// A wait's timer is cancelled when a signal ends the wait, so an idle waiter leaves no sleeping task behind.
public final class Wakeup: Sendable {
    private struct State: Sendable {
        var pending = false
        var waiter: (id: UInt64, continuation: CheckedContinuation<Void, Never>)?
        var timer: Task<Void, Never>?
        var nextID: UInt64 = 0
    }
    private let state = Mutex(State())

    public init() {}

    public func signal() {
        let (waiter, timer) = state.withLock { s -> (CheckedContinuation<Void, Never>?, Task<Void, Never>?) in
            if let w = s.waiter {
                s.waiter = nil
                defer { s.timer = nil }
                return (w.continuation, s.timer)
            }
            s.pending = true
            return (nil, nil)
        }
        timer?.cancel()
        waiter?.resume()
    }

    /// Returns at the next signal (or at once if one is pending), or after `timeout` seconds.
    public func wait(timeout: Double) async {
        await wait(until: ContinuousClock.now.advanced(by: .milliseconds(Int64(max(0, timeout) * 1000))))
    }

    /// Returns at the next signal (or at once if one is pending), or at `deadline` (never when nil).
    public func wait(until deadline: ContinuousClock.Instant?) async {
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
            guard let deadline else { return }
            let timer = Task { [weak self] in
                do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return }
                self?.expire(id)
            }
            // A signal may have ended the wait already: then the timer is not needed.
            let keep = state.withLock { s -> Bool in
                guard let w = s.waiter, w.id == id else { return false }
                s.timer = timer
                return true
            }
            if !keep { timer.cancel() }
        }
    }

    private func expire(_ id: UInt64) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter, w.id == id else { return nil }
            s.waiter = nil
            s.timer = nil
            return w.continuation
        }
        waiter?.resume()
    }
}

/// A one-way flag that tasks can wait for (systemd's READY=1 waits for the control socket).
public final class ReadyFlag: Sendable {
    private struct State: Sendable {
        var done = false
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
        /// Waits cancelled before they registered (they return at once).
        var cancelled: Set<UInt64> = []
        var nextID: UInt64 = 0
    }
    private let state = Mutex(State())

    public init() {}

    public func set() {
        let waiters = state.withLock { s -> [(id: UInt64, continuation: CheckedContinuation<Void, Never>)] in
            s.done = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.continuation.resume() }
    }

    public var isSet: Bool { state.withLock { $0.done } }

    /// Returns once the flag is set, or when the waiting task is cancelled.
    public func wait() async {
        let id = state.withLock { s -> UInt64 in s.nextID &+= 1; return s.nextID }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.done || s.cancelled.remove(id) != nil { return true }
                    s.waiters.append((id, c))
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                if let i = s.waiters.firstIndex(where: { $0.id == id }) { return s.waiters.remove(at: i).continuation }
                if !s.done { s.cancelled.insert(id) }
                return nil
            }
            waiter?.resume()
        }
    }
}
