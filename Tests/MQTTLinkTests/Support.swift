// Helpers for the MQTTLink tests: recorders for the client's streams, a way to run the
// blocking TestSupport calls off Swift's cooperative pool, and a loopback TCP proxy that
// can hold back the broker's answers or cut the link.
import Foundation
import Synchronization
import Testing
import TestSupport
@testable import MQTTLink
#if canImport(Glibc)
import Glibc
#endif

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs blocking work (process start, mosquitto_sub, polling) on its own thread so that it
/// never occupies one of the few threads of the cooperative pool (2 cores here).
@discardableResult
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}

func startBroker(_ options: MosquittoBrokerOptions = MosquittoBrokerOptions()) async throws -> MosquittoBroker {
    try await offPool { try MosquittoBroker(options: options) }
}

/// A configuration for tests: a unique client id and quick reconnects.
func testConfiguration(port: Int, clientID: String = "t-\(UUID().uuidString.prefix(8))") -> MQTTConfiguration {
    var c = MQTTConfiguration(host: "127.0.0.1", port: port, clientID: clientID)
    c.keepAliveSeconds = 10
    c.reconnectDelayMin = 1
    c.reconnectDelayMax = 2
    return c
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Consumes `connectionEvents` into an array the test can poll.
final class EventRecorder: Sendable {
    private final class Storage: Sendable {
        let list = Mutex<[MQTTConnectionEvent]>([])
    }
    private let storage = Storage()
    private let task: Task<Void, Never>

    init(_ client: MQTTClient) {
        let stream = client.connectionEvents
        let storage = self.storage
        task = Task { for await e in stream { storage.list.withLock { $0.append(e) } } }
    }

    var all: [MQTTConnectionEvent] { storage.list.withLock { $0 } }

    var connectedCount: Int { all.filter { if case .connected = $0 { true } else { false } }.count }
    var disconnectedCount: Int { all.filter { if case .disconnected = $0 { true } else { false } }.count }
    var connectFailedCount: Int { all.filter { if case .connectFailed = $0 { true } else { false } }.count }

    /// Waits until `predicate(events)` holds.
    func wait(timeout: Double = 30, _ what: String, _ predicate: @escaping ([MQTTConnectionEvent]) -> Bool) async throws {
        let ok = await eventuallyAsync(timeout: timeout, interval: 0.02) { predicate(self.all) }
        if !ok { throw TestFailure("timed out waiting for \(what); events: \(all)") }
    }

    func waitForConnected(count: Int = 1, timeout: Double = 30) async throws {
        try await wait(timeout: timeout, "\(count) connected event(s)") { events in
            events.filter { if case .connected = $0 { true } else { false } }.count >= count
        }
    }

    deinit { task.cancel() }
}

/// Consumes `messages` into an array the test can poll.
final class MessageRecorder: Sendable {
    private final class Storage: Sendable {
        let list = Mutex<[MQTTMessage]>([])
    }
    private let storage = Storage()
    private let task: Task<Void, Never>

    init(_ client: MQTTClient) {
        let stream = client.messages
        let storage = self.storage
        task = Task { for await m in stream { storage.list.withLock { $0.append(m) } } }
    }

    var all: [MQTTMessage] { storage.list.withLock { $0 } }

    func messages(on topic: String) -> [MQTTMessage] { all.filter { $0.topic == topic } }

    @discardableResult
    func wait(topic: String, count: Int = 1, timeout: Double = 30) async throws -> [MQTTMessage] {
        let ok = await eventuallyAsync(timeout: timeout, interval: 0.02) { self.messages(on: topic).count >= count }
        if !ok { throw TestFailure("timed out waiting for \(count) message(s) on \(topic); got: \(all.map { "\($0.topic) \(String(decoding: $0.payload, as: UTF8.self))" })") }
        return messages(on: topic)
    }

    deinit { task.cancel() }
}

/// Waits until `client` has been acknowledged its subscription to `filter` (SUBACK seen).
func waitForSubscription(_ client: MQTTClient, _ filter: String, timeout: Double = 30) async throws {
    let ok = await eventuallyAsync(timeout: timeout) { client.isSubscriptionAcknowledged(filter) }
    if !ok { throw TestFailure("no SUBACK for \(filter)") }
}

/// Runs `operation`, failing the test (instead of hanging) if it takes longer than
/// `seconds`. A hung operation is abandoned, not awaited: the test fails and moves on.
/// Cancelling the caller cancels the operation.
func within<T: Sendable>(_ seconds: Double, _ what: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let once = ResumeOnce<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            once.set(continuation)
            once.setWork(Task { once.resume(await Result(catching: { try await operation() })) })
            Task {
                try? await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
                if once.resume(.failure(TestFailure("\(what) did not finish within \(seconds) s"))) { once.cancelWork() }
            }
        }
    } onCancel: {
        once.cancelWork()
    }
}

private final class ResumeOnce<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var work: Task<Void, Never>?
        var cancelled = false
    }
    private let state = Mutex(State())

    func set(_ c: CheckedContinuation<T, any Error>) { state.withLock { $0.continuation = c } }

    func setWork(_ task: Task<Void, Never>) {
        let cancelNow = state.withLock { s -> Bool in
            s.work = task
            return s.cancelled
        }
        if cancelNow { task.cancel() }
    }

    func cancelWork() {
        let task = state.withLock { s -> Task<Void, Never>? in
            s.cancelled = true
            return s.work
        }
        task?.cancel()
    }

    @discardableResult
    func resume(_ result: Result<T, any Error>) -> Bool {
        guard let c = state.withLock({ s -> CheckedContinuation<T, any Error>? in
            defer { s.continuation = nil }
            return s.continuation
        }) else { return false }
        c.resume(with: result)
        return true
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

/// The outcome of a publish, for assertions.
enum PublishOutcome: Sendable, Equatable {
    case acked
    case failed(MQTTError)
    case otherError(String)
}

func publishOutcome(_ client: MQTTClient, topic: String, payload: String, qos: Int, retain: Bool = false,
                    properties: MQTTPublishProperties? = nil) async -> PublishOutcome {
    do {
        try await client.publishOrFail(topic: topic, payload: bytes(payload), qos: qos, retain: retain, properties: properties)
        return .acked
    } catch let e as MQTTError {
        return .failed(e)
    } catch {
        return .otherError("\(error)")
    }
}

// MARK: - TCP proxy

/// A loopback TCP proxy in front of the broker. It can hold back everything the broker
/// sends (so PUBACKs never reach the client while the link still looks alive) and cut
/// every link abruptly (RST), as a dying uplink or a killed process would.
final class TCPProxy: @unchecked Sendable {
    let port: Int
    let targetPort: Int
    private let listenFD: Int32
    private let lock = NSLock()
    private var closed = false
    private var listenerClosed = false
    private var holdDownstream = false
    private var cutGeneration = 0
    private var liveLinks = 0

    init(targetPort: Int) throws {
        self.targetPort = targetPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0, listen(fd, 16) == 0 else { close(fd); throw TestFailure("bind/listen failed") }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        listenFD = fd
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    deinit { close(listenFD) }

    /// Stop forwarding broker → client (data is read and kept, the link stays open).
    func holdBrokerToClient() { lock.withLock { holdDownstream = true } }

    /// Forward broker → client again (what was held is delivered).
    func releaseBrokerToClient() { lock.withLock { holdDownstream = false } }

    /// Resets every current link (SO_LINGER 0), keeps accepting new ones.
    func cutAll() {
        lock.withLock { cutGeneration += 1 }
        _ = eventually(timeout: 10) { lock.withLock { liveLinks == 0 } }
    }

    var linkCount: Int { lock.withLock { liveLinks } }

    func shutdown() {
        lock.withLock { closed = true }
        cutAll()
    }

    /// The node dies: new connections are refused (the listening socket is closed) and every live link is
    /// reset, so the broker behind sees its client vanish without DISCONNECT (and publishes the will).
    func die() {
        lock.withLock {
            closed = true
            if !listenerClosed { listenerClosed = true; Glibc.shutdown(listenFD, Int32(SHUT_RDWR)) }
        }
        cutAll()
    }

    private func acceptLoop() {
        while !lock.withLock({ closed }) {
            var pfd = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            let client = accept(listenFD, nil, nil)
            guard client >= 0 else { continue }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = UInt16(targetPort).bigEndian
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if rc != 0 {
                close(upstream)
                close(client)
                continue
            }
            let generation = lock.withLock { () -> Int in
                liveLinks += 1
                return cutGeneration
            }
            let thread = Thread { [self] in pump(client: client, upstream: upstream, generation: generation) }
            thread.start()
        }
    }

    private func pump(client: Int32, upstream: Int32, generation: Int) {
        var held: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var abort = false
        loop: while true {
            let (cut, hold) = lock.withLock { (cutGeneration != generation, holdDownstream) }
            if cut { abort = true; break }
            if !hold && !held.isEmpty {
                if !writeAll(client, held) { break }
                held.removeAll()
            }
            var fds = [pollfd(fd: client, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: upstream, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, 50)
            if n <= 0 { continue }
            for (i, pfd) in fds.enumerated() where pfd.revents != 0 {
                let count = read(pfd.fd, &buffer, buffer.count)
                if count <= 0 { break loop }  // EOF or error on either side: close both
                let data = Array(buffer[0..<count])
                if i == 0 {
                    if !writeAll(upstream, data) { break loop }
                } else if hold {
                    held += data
                } else if !writeAll(client, data) {
                    break loop
                }
            }
        }
        if abort {
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            setsockopt(upstream, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        close(client)
        close(upstream)
        lock.withLock { liveLinks -= 1 }
    }

    private func writeAll(_ fd: Int32, _ data: [UInt8]) -> Bool {
        var offset = 0
        while offset < data.count {
            let n = data[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
}

extension MQTTClient {
    /// `publish`, but a test fails instead of hanging if it never returns.
    func publishOrFail(topic: String, payload: [UInt8], qos: Int, retain: Bool = false,
                       properties: MQTTPublishProperties? = nil, timeout: Double = 60) async throws {
        try await within(timeout, "publish to \(topic)") {
            try await self.publish(topic: topic, payload: payload, qos: qos, retain: retain, properties: properties)
        }
    }
}
