import CModbus
#if canImport(Glibc)
import Glibc
#endif

/// One Modbus client connection (TCP, or RTU on one RS-485 bus), over libmodbus.
///
/// Deliberately not `Sendable`: a `modbus_t` is not thread-safe, so each bus has exactly one owner
/// (see `Acquisition.BusOwner`), which is the only code that calls these methods.
/// This file and nothing else in the gateway calls libmodbus.
public final class ModbusConnection {
    public let transport: ModbusTransport
    public var timings: ModbusTimings { didSet { applyTimings() } }
    public private(set) var statistics = ModbusStatistics()
    private var ctx: OpaquePointer?
    private var connected = false

    public init(transport: ModbusTransport, timings: ModbusTimings = ModbusTimings()) {
        self.transport = transport
        self.timings = timings
    }

    deinit { close() }

    public var isConnected: Bool { connected }

    /// Opens the TCP connection or the serial device. Throws `.link` with the system's reason.
    public func connect() throws(ModbusError) {
        close()
        let newCtx: OpaquePointer?
        switch transport {
        case let .tcp(host, port):
            newCtx = modbus_new_tcp_pi(host, String(port))
        case let .rtu(device, baud, parity, dataBits, stopBits):
            let p: CChar = switch parity { case .none: 78; case .even: 69; case .odd: 79 }   // 'N' 'E' 'O'
            newCtx = modbus_new_rtu(device, Int32(baud), p, Int32(dataBits), Int32(stopBits))
        }
        guard let newCtx else { throw .link("cannot create a libmodbus context for \(transport) (errno \(errno))") }
        ctx = newCtx
        applyTimings()
        if modbus_connect(newCtx) == -1 {
            let e = cmodbus_errno()
            close()
            throw .link("connect \(transport): \(Self.describe(errno: e))")
        }
        connected = true
    }

    public func close() {
        if let ctx {
            modbus_close(ctx)
            modbus_free(ctx)
        }
        ctx = nil
        connected = false
    }

    /// Function 04.
    public func readInputRegisters(unit: UInt8, address: UInt16, count: Int) throws(ModbusError) -> [UInt16] {
        try read(unit: unit, address: address, count: count, holding: false)
    }

    /// Function 03.
    public func readHoldingRegisters(unit: UInt8, address: UInt16, count: Int) throws(ModbusError) -> [UInt16] {
        try read(unit: unit, address: address, count: count, holding: true)
    }

    /// Function 16.
    public func writeRegisters(unit: UInt8, address: UInt16, values: [UInt16]) throws(ModbusError) {
        guard !values.isEmpty, values.count <= 123 else { throw .invalidRequest("write of \(values.count) registers") }
        try perform(unit: unit) { ctx in
            values.withUnsafeBufferPointer { modbus_write_registers(ctx, Int32(address), Int32(values.count), $0.baseAddress) }
        }
    }

    /// Function 06.
    public func writeRegister(unit: UInt8, address: UInt16, value: UInt16) throws(ModbusError) {
        try perform(unit: unit) { ctx in modbus_write_register(ctx, Int32(address), value) }
    }

    // MARK: - Internals

    private func read(unit: UInt8, address: UInt16, count: Int, holding: Bool) throws(ModbusError) -> [UInt16] {
        guard count >= 1, count <= 125 else { throw .invalidRequest("read of \(count) registers (1…125)") }
        var buffer = [UInt16](repeating: 0, count: count)
        try perform(unit: unit) { ctx in
            buffer.withUnsafeMutableBufferPointer { buf in
                holding ? modbus_read_registers(ctx, Int32(address), Int32(count), buf.baseAddress)
                        : modbus_read_input_registers(ctx, Int32(address), Int32(count), buf.baseAddress)
            }
        }
        return buffer
    }

    /// Runs one libmodbus call with the unit set, pacing, retries on timeout/corruption, errno read
    /// immediately after the failing call, and statistics.
    private func perform(unit: UInt8, _ call: (OpaquePointer) -> Int32) throws(ModbusError) {
        guard let ctx, connected else { throw .notConnected }
        modbus_set_slave(ctx, Int32(unit))
        var attempt = 0
        while true {
            if timings.interFrameDelay > 0 { usleep(useconds_t(timings.interFrameDelay * 1_000_000)) }
            statistics.requests += 1
            let start = Self.now()
            let rc = call(ctx)
            let e = cmodbus_errno()
            let elapsed = Self.now() - start
            if rc != -1 {
                statistics.totalRoundTrip += elapsed
                statistics.lastRoundTrip = elapsed
                return
            }
            statistics.failures += 1
            let error = Self.classify(errno: e)
            statistics.lastError = error.description
            switch error {
            case .exception:
                statistics.exceptions += 1
                throw error
            case .timeout, .badResponse:
                if case .timeout = error { statistics.timeouts += 1 }
                if case .tcp = transport {
                    // A late answer would arrive in the middle of the next transaction: on TCP, start a
                    // fresh connection instead (the cabinet keeps no session state on it).
                    modbus_close(ctx)
                    if modbus_connect(ctx) == -1 {
                        connected = false
                        throw error
                    }
                    statistics.reconnects += 1
                } else {
                    // RTU: drop whatever half-frame or late answer is still on the line.
                    _ = modbus_flush(ctx)
                }
                if attempt < timings.retries {
                    attempt += 1
                    statistics.retries += 1
                    continue
                }
                throw error
            default:
                connected = false
                throw error
            }
        }
    }

    private func applyTimings() {
        guard let ctx else { return }
        func split(_ s: Double) -> (UInt32, UInt32) {
            let clamped = max(0.001, s)
            return (UInt32(clamped), UInt32((clamped - Double(UInt32(clamped))) * 1_000_000))
        }
        let r = split(timings.responseTimeout), b = split(timings.byteTimeout)
        modbus_set_response_timeout(ctx, r.0, r.1)
        modbus_set_byte_timeout(ctx, b.0, b.1)
    }

    static func classify(errno e: Int32) -> ModbusError {
        if e > MODBUS_ENOBASE && e <= MODBUS_ENOBASE + 11, let ex = ModbusException(rawValue: UInt8(e - MODBUS_ENOBASE)) {
            return .exception(ex)
        }
        switch e {
        case ETIMEDOUT: return .timeout
        case cmodbus_embbadcrc(): return .badResponse("CRC mismatch")
        case cmodbus_embbaddata(): return .badResponse("data does not match the request")
        case cmodbus_embbadexc(): return .badResponse("invalid exception code")
        case cmodbus_embmdata(): return .badResponse("too many data")
        case cmodbus_embbadslave(): return .badResponse("response from another unit")
        default: return .link(describe(errno: e))
        }
    }

    static func describe(errno e: Int32) -> String {
        // modbus_strerror is not thread-safe; strerror is fine for plain errno values and the
        // libmodbus-specific ones are mapped in `classify`.
        if e > MODBUS_ENOBASE { return "libmodbus error \(e - MODBUS_ENOBASE)" }
        return String(cString: strerror(e)) + " (errno \(e))"
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
