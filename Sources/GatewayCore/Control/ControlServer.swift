import Acquisition
import Foundation
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
            let dir = (path as NSString).deletingLastPathComponent
            if !FileManager.default.fileExists(atPath: dir) {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
            }
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 16)
                // `echo '{"op":"status"}' | socat - UNIX-CONNECT:…` half-closes after the request: still answer it.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(LocalConnectionGuard.handlers())
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
        if chmod(path, 0o660) != 0 {
            logger.warning("cannot set the control socket's mode to 0660", metadata: ["path": "\(path)", "errno": "\(errno)"])
        }
        logger.info("control API listening", metadata: ["socket": "\(path)"])
        listening.set()
        try await acceptUntilShutdown(server) { await self.serve($0) }
        unlink(path)
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var pending: [UInt8] = []
                for try await var chunk in inbound {
                    pending += chunk.readBytes(length: chunk.readableBytes) ?? []
                    while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        let line = Array(pending[..<nl])
                        pending.removeFirst(nl + 1)
                        if line.isEmpty { continue }
                        var answer = await handler.respond(to: line)
                        answer.append(UInt8(ascii: "\n"))
                        try await outbound.write(ByteBuffer(bytes: answer))
                    }
                    if pending.count > Self.maxLine {
                        try await outbound.write(ByteBuffer(string: #"{"ok":false,"code":"bad_request","error":"request line too long"}"# + "\n"))
                        return
                    }
                }
            }
        } catch {
            logger.debug("control connection ended", metadata: ["error": "\(error)"])
        }
    }
}

/// Keeps a local server small and alive whatever its clients do: a connection idle for 5 minutes is closed
/// (`swapctl slots --watch` asks every second), and beyond 32 open connections new ones are closed at once.
final class LocalConnectionGuard: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: used on its channel's event loop only; the counter is shared through a lock.
    typealias InboundIn = ByteBuffer
    static let maxConnections = 32
    private static let open = LockedBox(0)

    static func handlers() -> [any ChannelHandler] {
        [IdleStateHandler(readTimeout: .minutes(5)), LocalConnectionGuard()]
    }

    func channelActive(context: ChannelHandlerContext) {
        let count = Self.open.withLock { $0 += 1; return $0 }
        if count > Self.maxConnections { context.close(promise: nil) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        Self.open.withLock { $0 -= 1 }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }
}

/// Accepts connections until graceful shutdown (which closes the listening socket), each served in a child task.
func acceptUntilShutdown<Connection: Sendable>(_ server: NIOAsyncChannel<Connection, Never>,
                                                serve: @escaping @Sendable (Connection) async -> Void) async throws {
    try await withGracefulShutdownHandler {
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { inbound in
                for try await connection in inbound { group.addTask { await serve(connection) } }
            }
        }
    } onGracefulShutdown: {
        server.channel.close(promise: nil)
    }
}

/// A one-way flag that tasks can wait for (systemd's READY=1 waits for the control socket).
public final class ReadyFlag: @unchecked Sendable {
    // @unchecked: `done` and `waiters` only under `lock`.
    private let lock = NSLock()
    private var done = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    public init() {}

    public func set() {
        lock.lock()
        done = true
        let w = waiters
        waiters = []
        lock.unlock()
        for c in w { c.resume() }
    }

    public func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            lock.lock()
            if done { lock.unlock(); c.resume(); return }
            waiters.append(c)
            lock.unlock()
        }
    }
}
