import Synchronization

/// The received messages between the network thread (one producer) and the consumer of
/// `MQTTClient.messages` (one consumer), bounded by payload bytes.
///
/// libmosquitto acknowledges a QoS 1 message before the client sees it, so a message that does not
/// fit is not dropped: it is delivered without its payload (`MQTTMessage.discarded`), so that the
/// consumer can answer it ("busy, send again"). Such a stand-in costs a few hundred bytes.
final class MessageQueue: Sendable {
    private struct State {
        var items: [MQTTMessage] = []
        var head = 0
        var bytes = 0
        var finished = false
        var waiter: CheckedContinuation<MQTTMessage?, Never>?

        mutating func pop() -> MQTTMessage? {
            guard head < items.count else { return nil }
            let m = items[head]
            head += 1
            bytes -= m.payload.count
            if head == items.count { items.removeAll(keepingCapacity: items.count < 1024); head = 0 }
            else if head >= 1024 && head * 2 >= items.count { items.removeFirst(head); head = 0 }
            return m
        }
    }

    /// 0: no bound.
    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = limit }

    /// Whether `bytes` more fit (always true for an empty queue, so a single message as large as
    /// the packet limit still passes).
    func hasRoom(for bytes: Int) -> Bool {
        guard limit > 0 else { return true }
        return state.withLock { $0.head == $0.items.count || $0.bytes + bytes <= limit }
    }

    var queuedBytes: Int { state.withLock { $0.bytes } }

    func push(_ message: MQTTMessage) {
        let waiter = state.withLock { s -> CheckedContinuation<MQTTMessage?, Never>? in
            if s.finished { return nil }
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.items.append(message)
            s.bytes += message.payload.count
            return nil
        }
        waiter?.resume(returning: message)
    }

    func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<MQTTMessage?, Never>? in
            s.finished = true
            s.items.removeAll()
            s.head = 0
            s.bytes = 0
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The next message; nil once finished, or when the calling task is cancelled.
    func next() async -> MQTTMessage? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<MQTTMessage?, Never>) in
                let immediate = state.withLock { s -> MQTTMessage?? in
                    if let m = s.pop() { return .some(m) }
                    if s.finished || Task.isCancelled { return .some(nil) }
                    s.waiter = c
                    return nil
                }
                if let immediate { c.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<MQTTMessage?, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: nil)
        }
    }
}
