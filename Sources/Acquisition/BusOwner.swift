import Dispatch
import ModbusLink

/// The one owner of a Modbus bus. libmodbus contexts are not thread-safe and a RS-485 line carries one
/// conversation at a time, so every request of the gateway — polling, commands, a technician's raw read —
/// runs as a job on this owner's serial queue, one after the other.
///
/// The queue is a Dispatch thread, not the Swift cooperative pool: libmodbus calls block for up to the
/// response timeout, which must not starve the (two-thread, on a small board) async executor.
public final class BusOwner: @unchecked Sendable {
    // @unchecked: `connection` is touched only from `queue` (serial), which is the invariant this type exists for.
    private let queue: DispatchQueue
    private let connection: ModbusConnection

    public let transport: ModbusTransport

    public init(transport: ModbusTransport, timings: ModbusTimings) {
        self.transport = transport
        self.connection = ModbusConnection(transport: transport, timings: timings)
        self.queue = DispatchQueue(label: "swapgate.bus.\(transport)")
    }

    /// Runs `body` on the bus, connecting first if the link is down. Errors that break the link close it,
    /// so the next job reconnects.
    public func run<T: Sendable>(_ body: @escaping @Sendable (ModbusConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, Error>) in
            queue.async { [self] in
                let connection = self.connection
                do {
                    if !connection.isConnected { try connection.connect() }
                    cont.resume(returning: try body(connection))
                } catch {
                    if let e = error as? ModbusError, e.needsReconnect { connection.close() }
                    cont.resume(throwing: error)
                }
            }
        }
    }

    /// The same, without connecting: for statistics and closing.
    public func inspect<T: Sendable>(_ body: @escaping @Sendable (ModbusConnection) -> T) async -> T {
        await withCheckedContinuation { (cont: CheckedContinuation<T, Never>) in
            queue.async { [self] in cont.resume(returning: body(connection)) }
        }
    }

    public func close() async { await inspect { $0.close() } }
}
