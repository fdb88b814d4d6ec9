// A counting semaphore for async code: bounds the requests in flight.
import Synchronization

final class AsyncLimiter: Sendable {
    private struct State {
        var available: Int
        var nextID: UInt64 = 0
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Bool, Never>)] = []
        var notStarted: Set<UInt64> = []   // ids whose continuation body has not run yet
        var cancelled: Set<UInt64> = []    // of those, cancelled before it ran
    }
    private let state: Mutex<State>

    init(limit: Int) { state = Mutex(State(available: max(1, limit))) }

    /// Waits for a slot. True when one was granted (call `release()` later), false if the task was
    /// cancelled while waiting.
    func acquire() async -> Bool {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            s.notStarted.insert(s.nextID)
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let immediate: Bool? = state.withLock { s in
                    s.notStarted.remove(id)
                    if s.cancelled.remove(id) != nil { return false }
                    if s.available > 0 { s.available -= 1; return true }
                    s.waiters.append((id, continuation))
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Bool, Never>? = state.withLock { s in
                if let i = s.waiters.firstIndex(where: { $0.id == id }) { return s.waiters.remove(at: i).continuation }
                if s.notStarted.contains(id) { s.cancelled.insert(id) }
                return nil
            }
            waiter?.resume(returning: false)
        }
    }

    func release() {
        let next: CheckedContinuation<Bool, Never>? = state.withLock { s in
            if s.waiters.isEmpty { s.available += 1; return nil }
            return s.waiters.removeFirst().continuation
        }
        next?.resume(returning: true)
    }
}
