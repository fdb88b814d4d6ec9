import Acquisition
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The local control API's transport: a Unix socket (`control.socket`), one JSON request per line and one
/// JSON response per line, several requests per connection allowed (`swapctl slots --watch` keeps one open).
///
/// Access is the socket file's: mode 0660, so only the service user and its group (technicians) connect;
/// cabinet actions additionally need a technician's credential (see Technicians). Nothing listens on the network.
public final class ControlServer: Service, Sendable {
    let path: String
    let handler: ControlHandler
    let logger: Logger
    /// Lines longer than this are refused and the connection closed (no request needs more).
    static let maxLine = 64 * 1024
    /// Set once the socket accepts connections (readiness for systemd).
    public let listening = ReadyFlag()

    public init(path: String, handler: ControlHandler, logger: Logger) {
        self.path = path; self.handler = handler; self.logger = logger
    }

    public func run() async throws {
        let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
        do {
            let dir = parentDirectory(path)
            if !FileManager.default.fileExists(atPath: dir) {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
            }
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 16)
                // `echo '{"op":"status"}' | socat - UNIX-CONNECT:…` half-closes after the request: still answer it.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(LocalConnectionGuard.handlers(budget: .control))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            // The station swaps without it: log, stay up, and let the technician use `swapctl direct` after stopping us.
            logger.error("cannot open the control socket; swapctl will not reach the daemon", metadata: ["path": "\(path)", "error": "\(error)"])
            listening.set()
            try? await gracefulShutdown()
            return
        }
        do { try systemCall("chmod") { chmod(path, 0o660) } } catch {
            logger.warning("cannot set the control socket's mode to 0660", metadata: ["path": "\(path)", "error": "\(error)"])
        }
        logger.info("control API listening", metadata: ["socket": "\(path)"])
        listening.set()
        try await acceptUntilShutdown(server, executor: .control) { await self.serve($0) }
        unlink(path)
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var splitter = LineSplitter(maxLine: Self.maxLine)
                for try await chunk in inbound {
                    // Linear in the bytes received, whatever their shape (a flood of newlines included); the
                    // partial line kept between chunks is at most `maxLine`.
                    let (lines, overlong) = splitter.feed(chunk)
                    for line in lines {
                        var answer = await handler.respond(to: line)
                        answer.append(UInt8(ascii: "\n"))
                        try await outbound.write(ByteBuffer(bytes: answer))
                    }
                    if overlong {
                        try await outbound.write(ByteBuffer(string: #"{"ok":false,"code":"bad_request","error":"request line too long"}"# + "\n"))
                        return
                    }
                    // Fair to the other connections on this server's thread, however fast this client writes.
                    await Task.yield()
                }
            }
        } catch {
            logger.debug("control connection ended", metadata: ["error": "\(error)"])
        }
    }
}

/// Splits a byte stream into lines (`\n`), in time linear in the bytes; empty lines are dropped. A line longer
/// than `maxLine` (complete or still growing) makes `feed` report `overlong`, and the lines before it are returned.
struct LineSplitter {
    let maxLine: Int
    private var partial: [UInt8] = []

    init(maxLine: Int) { self.maxLine = maxLine }

    mutating func feed(_ chunk: ByteBuffer) -> (lines: [[UInt8]], overlong: Bool) {
        var lines: [[UInt8]] = []
        var overlong = false
        chunk.withUnsafeReadableBytes { raw in
            var start = 0
            while start < raw.count {
                let found = memchr(raw.baseAddress! + start, Int32(UInt8(ascii: "\n")), raw.count - start)
                guard let found else {
                    if partial.count + (raw.count - start) > maxLine { overlong = true; return }
                    partial.append(contentsOf: raw[start...])
                    return
                }
                let nl = UnsafeRawPointer(found) - UnsafeRawPointer(raw.baseAddress!)
                if partial.count + (nl - start) > maxLine { overlong = true; return }
                if partial.isEmpty {
                    if nl > start { lines.append(Array(raw[start ..< nl])) }
                } else {
                    partial.append(contentsOf: raw[start ..< nl])
                    lines.append(partial)
                    partial = []
                }
                start = nl + 1
            }
        }
        return (lines, overlong)
    }
}

/// How many connections one local server (the control socket, the metrics port) holds open at once. Each
/// server has its own: idle HTTP connections to /metrics (open to any local user) cannot use up the
/// control socket's.
final class ConnectionBudget: Sendable {
    let limit: Int
    private let open = Locked(0)
    init(limit: Int) { self.limit = limit }
    static let control = ConnectionBudget(limit: 32)
    static let metrics = ConnectionBudget(limit: 32)

    /// Takes one place; false when the budget is used up (the place is still counted until `release`).
    func acquire() -> Bool { open.withLock { $0 += 1; return $0 <= limit } }
    func release() { open.withLock { $0 -= 1 } }
}

/// Keeps a local server small and alive whatever its clients do: a connection idle for 5 minutes is closed
/// (`swapctl slots --watch` asks every second), and beyond its server's budget (32) new ones are closed at once.
final class LocalConnectionGuard: ChannelInboundHandler {
    // Not Sendable: used on its channel's event loop only (the budget it shares is).
    typealias InboundIn = ByteBuffer
    private let budget: ConnectionBudget
    private var counted = false

    init(budget: ConnectionBudget) { self.budget = budget }

    static func handlers(budget: ConnectionBudget) -> [any ChannelHandler] {
        [IdleStateHandler(readTimeout: .minutes(5)), LocalConnectionGuard(budget: budget)]
    }

    func channelActive(context: ChannelHandlerContext) {
        counted = true
        if !budget.acquire() { context.close(promise: nil) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted { budget.release(); counted = false }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }
}

/// A thread of its own for a local server's connections (a serial Dispatch queue as a task executor):
/// whatever a local client sends, parsing it and answering it run there, not on the Swift cooperative pool
/// (two threads on a small board) that the acquisition loop — and with it the controller's watchdog
/// write — needs. Awaiting an actor (the store, the acquisition) still hops there for the call itself.
final class LocalClientsExecutor: TaskExecutor {
    // Sendable (checked): the serial queue is its only state.
    private let queue: DispatchQueue
    init(label: String) { queue = DispatchQueue(label: label) }
    static let control = LocalClientsExecutor(label: "swapgate.control")
    static let metrics = LocalClientsExecutor(label: "swapgate.metrics")

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// Accepts connections until graceful shutdown (which closes the listening socket), each served in a child task.
func acceptUntilShutdown<Connection: Sendable>(_ server: NIOAsyncChannel<Connection, Never>, executor: LocalClientsExecutor,
                                                serve: @escaping @Sendable (Connection) async -> Void) async throws {
    try await withGracefulShutdownHandler {
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { inbound in
                for try await connection in inbound { group.addTask(executorPreference: executor) { await serve(connection) } }
            }
        }
    } onGracefulShutdown: {
        server.channel.close(promise: nil)
    }
}

// `ReadyFlag` (a one-way flag tasks can wait for) is in StationSupport.
