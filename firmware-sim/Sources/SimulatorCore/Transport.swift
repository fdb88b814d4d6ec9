// Why the simulator frames Modbus itself (instead of using libmodbus like the gateway):
// it is the *firmware*, an independent implementation of the map, and it must do what a
// libmodbus server cannot — answer several unit ids (cabinets 1, 3, …, 2 the energy meter) on one RTU line,
// and inject malformed frames (garbage bytes, bad CRC), delays and drops. So Modbus TCP (MBAP)
// and RTU (CRC-16/MODBUS; frames delimited by function-code length plus CRC, because timing
// gaps mean nothing on a pty) are framed here over POSIX sockets and a serial fd. Outside
// peers (mbpoll, pymodbus) keep this framing honest in the tests.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

// MARK: - CRC and frames

public enum ModbusCRC {
    /// CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF); sent low byte first.
    public static func crc16<C: Collection>(_ bytes: C) -> UInt16 where C.Element == UInt8 {
        var crc: UInt16 = 0xFFFF
        for b in bytes {
            crc ^= UInt16(b)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xA001 : crc >> 1 }
        }
        return crc
    }

    /// unit + pdu + CRC (low byte first).
    public static func rtuFrame(unit: UInt8, pdu: [UInt8]) -> [UInt8] {
        var f = [unit] + pdu
        let crc = crc16(f)
        f.append(UInt8(crc & 0xFF))
        f.append(UInt8(crc >> 8))
        return f
    }
}

public enum RTUParseResult: Equatable, Sendable {
    case frame(unit: UInt8, pdu: [UInt8], length: Int)
    case needMore
    /// The bytes at the head are not a valid request: drop this many and resync.
    case invalid(skip: Int)
}

public enum RTUFraming {
    /// Finds the request frame at the head of `buffer` by its function code's length and its CRC.
    public static func parseRequest(_ buffer: [UInt8]) -> RTUParseResult {
        guard buffer.count >= 4 else { return .needMore }
        let fc = buffer[1]
        if fc == 0 || fc >= 0x80 { return .invalid(skip: 1) }   // never a request
        if let length = knownLength(buffer[...]) {
            guard let length else { return .needMore }
            guard buffer.count >= length else { return .needMore }
            guard crcValid(buffer[0..<length]) else { return .invalid(skip: 1) }
            return .frame(unit: buffer[0], pdu: Array(buffer[1..<(length - 2)]), length: length)
        }
        // Unknown function: the shortest prefix with a valid CRC is the frame …
        for n in 4...min(buffer.count, 256) where crcValid(buffer[0..<n]) {
            return .frame(unit: buffer[0], pdu: Array(buffer[1..<(n - 2)]), length: n)
        }
        // … unless a known, complete, CRC-valid frame starts further on: then the head is noise.
        for offset in 1..<buffer.count {
            let rest = buffer[offset...]
            if let known = knownLength(rest), let length = known, rest.count >= length,
               crcValid(rest.prefix(length)) {
                return .invalid(skip: 1)
            }
        }
        return buffer.count >= 256 ? .invalid(skip: 1) : .needMore
    }

    /// The request length for a known function code: nil = unknown function,
    /// .some(nil) = known but the length byte has not arrived yet.
    static func knownLength(_ frame: ArraySlice<UInt8>) -> Int?? {
        guard frame.count >= 2 else { return .some(nil) }
        let start = frame.startIndex
        switch frame[start + 1] {
        case 0x01...0x06: return 8
        case 0x0F, 0x10: return frame.count >= 7 ? .some(9 + Int(frame[start + 6])) : .some(nil)
        case 0x07, 0x0B, 0x0C, 0x11: return 4
        default: return nil
        }
    }

    static func crcValid(_ frame: ArraySlice<UInt8>) -> Bool {
        guard frame.count >= 4 else { return false }
        let body = frame.dropLast(2)
        let crc = ModbusCRC.crc16(body)
        return frame[frame.endIndex - 2] == UInt8(crc & 0xFF) && frame[frame.endIndex - 1] == UInt8(crc >> 8)
    }
}

/// Small PDU builders and parsers (for tests and tools).
public enum ModbusPDU {
    public static func readHolding(start: Int, count: Int) -> [UInt8] { read(0x03, start, count) }
    public static func readInput(start: Int, count: Int) -> [UInt8] { read(0x04, start, count) }
    public static func writeSingle(address: Int, value: UInt16) -> [UInt8] {
        [0x06, UInt8(address >> 8), UInt8(address & 0xFF), UInt8(value >> 8), UInt8(value & 0xFF)]
    }
    public static func writeMultiple(start: Int, values: [UInt16]) -> [UInt8] {
        var p: [UInt8] = [0x10, UInt8(start >> 8), UInt8(start & 0xFF), UInt8(values.count >> 8),
                          UInt8(values.count & 0xFF), UInt8(truncatingIfNeeded: values.count * 2)]
        for v in values { p.append(UInt8(v >> 8)); p.append(UInt8(v & 0xFF)) }
        return p
    }
    /// Register values of a read response, nil if it is not one.
    public static func registers(_ response: [UInt8]) -> [UInt16]? {
        guard response.count >= 2, response[0] == 0x03 || response[0] == 0x04,
              Int(response[1]) == response.count - 2, response.count % 2 == 0 else { return nil }
        return stride(from: 2, to: response.count, by: 2).map { UInt16(response[$0]) << 8 | UInt16(response[$0 + 1]) }
    }
    /// The exception code of an exception response, nil otherwise.
    public static func exceptionCode(_ response: [UInt8]) -> UInt8? {
        guard response.count == 2, response[0] & 0x80 != 0 else { return nil }
        return response[1]
    }
    private static func read(_ fc: UInt8, _ start: Int, _ count: Int) -> [UInt8] {
        [fc, UInt8(start >> 8), UInt8(start & 0xFF), UInt8(count >> 8), UInt8(count & 0xFF)]
    }
}

// MARK: - Sockets

enum Socket {
    static func errorText(_ what: String) -> String { "\(what): \(String(cString: strerror(errno)))" }

    /// A listening IPv4 TCP socket; returns the fd and the bound port.
    static func listen(host: String, port: Int) throws -> (Int32, Int) {
        guard (0...65535).contains(port) else { throw SimulatorError.invalidArgument("port must be 0…65535") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SimulatorError.io(errorText("socket")) }
        var yes: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        let h = host == "localhost" ? "127.0.0.1" : host
        guard inet_pton(AF_INET, h, &addr.sin_addr) == 1 else {
            close(fd)
            throw SimulatorError.invalidArgument("not an IPv4 address: \(host)")
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errorText("bind \(host):\(port)")
            close(fd)
            throw SimulatorError.io(e)
        }
        guard Glibc.listen(fd, 32) == 0 else {
            let e = errorText("listen")
            close(fd)
            throw SimulatorError.io(e)
        }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return (fd, Int(UInt16(bigEndian: bound.sin_port)))
    }

    /// Waits up to `timeoutMs` for input. true = readable (or hung up), false = timeout.
    static func waitReadable(_ fd: Int32, timeoutMs: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let rc = poll(&p, 1, timeoutMs)
        return rc > 0
    }

    /// Writes everything (the fd may be non-blocking); false on error.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], socket isSocket: Bool) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                let p = raw.baseAddress!.advanced(by: offset)
                return isSocket ? send(fd, p, bytes.count - offset, Int32(MSG_NOSIGNAL)) : write(fd, p, bytes.count - offset)
            }
            if n > 0 { offset += n; continue }
            if n < 0 && (errno == EINTR) { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, 100)
                continue
            }
            return false
        }
        return true
    }
}

/// One accepted TCP connection, owned by its thread.
final class TCPConnection: @unchecked Sendable {
    // @unchecked: `fd` is immutable and used only by the connection's own thread;
    // `isAlive` reads the listener's lock-protected state.
    let fd: Int32
    private let generation: Int
    private unowned let listener: TCPListener

    init(fd: Int32, generation: Int, listener: TCPListener) {
        self.fd = fd
        self.generation = generation
        self.listener = listener
    }

    var isAlive: Bool { listener.isAlive(generation: generation) }

    enum ReadResult { case data([UInt8]), timeout, closed }

    func read(timeoutMs: Int32 = 100) -> ReadResult {
        guard Socket.waitReadable(fd, timeoutMs: timeoutMs) else { return .timeout }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 { return .data(Array(buf[0..<n])) }
        if n < 0 && (errno == EINTR || errno == EAGAIN) { return .timeout }
        return .closed
    }

    func write(_ bytes: [UInt8]) -> Bool { Socket.writeAll(fd, bytes, socket: true) }

    /// Sleeps `ms` wall milliseconds in small steps, giving up early when the connection is dropped.
    func sleep(milliseconds ms: Int) {
        var left = ms
        while left > 0 && isAlive {
            let step = min(left, 50)
            usleep(useconds_t(step * 1000))
            left -= step
        }
    }
}

/// Accepts TCP connections on its own thread; each connection runs `serve` on a thread of its own.
final class TCPListener: @unchecked Sendable {
    // @unchecked: all mutable state (`stopped`, `generation`, `threads`) is guarded by `lock`;
    // `listenFD` is immutable and closed only by the accept thread when it ends.
    let port: Int
    let name: String
    private let listenFD: Int32
    private let lock = PThreadMutex()
    private var stopped = false
    private var generation = 0
    private var threads = 0
    private let serve: @Sendable (TCPConnection) -> Void

    init(host: String, port: Int, name: String, serve: @escaping @Sendable (TCPConnection) -> Void) throws {
        (listenFD, self.port) = try Socket.listen(host: host, port: port)
        self.name = name
        self.serve = serve
        spawn { [self] in acceptLoop() }
    }

    func isAlive(generation g: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return !stopped && g == generation
    }

    /// Closes every open connection (as a rebooting board would); the listener stays.
    func dropConnections() {
        lock.lock(); generation += 1; lock.unlock()
    }

    /// Stops accepting, closes all connections and waits (a few seconds at most) for the threads.
    func stop() {
        requestStop()
        waitUntilStopped()
    }

    /// Tells the threads to end (they notice within one poll interval).
    func requestStop() {
        lock.lock(); stopped = true; lock.unlock()
    }

    func waitUntilStopped() {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            lock.lock(); let n = threads; lock.unlock()
            if n == 0 { return }
            usleep(5_000)
        }
    }

    private func spawn(_ body: @escaping @Sendable () -> Void) {
        lock.lock(); threads += 1; lock.unlock()
        startThread(name: name) { [self] in
            body()
            lock.lock(); threads -= 1; lock.unlock()
        }
    }

    private func acceptLoop() {
        defer { close(listenFD) }
        while true {
            lock.lock(); let stop = stopped; let g = generation; lock.unlock()
            if stop { return }
            guard Socket.waitReadable(listenFD, timeoutMs: 100) else { continue }
            let fd = accept(listenFD, nil, nil)
            if fd < 0 { continue }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let connection = TCPConnection(fd: fd, generation: g, listener: self)
            let serve = self.serve
            spawn {
                serve(connection)
                close(connection.fd)
            }
        }
    }
}

// MARK: - Modbus TCP

/// What the transports ask for each request.
protocol ModbusResponder: AnyObject, Sendable {
    /// `serving`: the unit ids the endpoint answers (nil = all the responder has).
    func respond(unit: UInt8, pdu: [UInt8], transport: TransportKind, serving: Set<UInt8>?) -> ResponsePlan
}

enum ModbusTCPServer {
    static func start(host: String, port: Int, units: Set<UInt8>? = nil, responder: any ModbusResponder) throws -> TCPListener {
        try TCPListener(host: host, port: port, name: "modbus-tcp") { [weak responder] conn in
            var buffer: [UInt8] = []
            while conn.isAlive {
                switch conn.read() {
                case .closed: return
                case .timeout: continue
                case .data(let bytes): buffer += bytes
                }
                while buffer.count >= 7 {
                    let protocolID = Int(buffer[2]) << 8 | Int(buffer[3])
                    let length = Int(buffer[4]) << 8 | Int(buffer[5])
                    guard protocolID == 0, (2...254).contains(length) else { return }  // not Modbus: hang up
                    guard buffer.count >= 6 + length else { break }
                    let frame = Array(buffer[0..<(6 + length)])
                    buffer.removeFirst(6 + length)
                    guard let responder else { return }
                    let plan = responder.respond(unit: frame[6], pdu: Array(frame[7...]), transport: .tcp, serving: units)
                    guard let pdu = plan.pdu else { continue }
                    if plan.delayMilliseconds > 0 { conn.sleep(milliseconds: plan.delayMilliseconds) }
                    guard conn.isAlive else { return }
                    let out: [UInt8]
                    switch plan.corruption {
                    case .garbage(let bytes): out = bytes
                    case .none, .badCRC:
                        let len = pdu.count + 1
                        out = [frame[0], frame[1], 0, 0, UInt8(len >> 8), UInt8(len & 0xFF), frame[6]] + pdu
                    }
                    if !conn.write(out) { return }
                }
            }
        }
    }
}

// MARK: - Modbus RTU

public enum SerialParity: Character, Sendable, CaseIterable {
    case none = "N", even = "E", odd = "O"
}

/// Serves Modbus RTU on a serial device (or a pty) on its own thread.
final class RTUServer: @unchecked Sendable {
    // @unchecked: `stopped`/`running` are guarded by `lock`; `fd` is immutable and used only by
    // the server thread (closed by it when it ends).
    let path: String
    private let fd: Int32
    private let lock = PThreadMutex()
    private var stopped = false
    private var running = true
    private weak var responder: (any ModbusResponder)?
    private let units: Set<UInt8>?

    init(path: String, baud: Int, parity: SerialParity, stopBits: Int, units: Set<UInt8>? = nil,
         responder: any ModbusResponder) throws {
        guard let speed = Self.speed(baud) else { throw SimulatorError.invalidArgument("unsupported baud rate \(baud)") }
        guard stopBits == 1 || stopBits == 2 else { throw SimulatorError.invalidArgument("stop bits must be 1 or 2") }
        let fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw SimulatorError.io(Socket.errorText("open \(path)")) }
        // Line settings; a pty may refuse some of them, which is fine (no baud rate on a pty).
        var tio = termios()
        if tcgetattr(fd, &tio) == 0 {
            cfmakeraw(&tio)
            _ = cfsetispeed(&tio, speed)
            _ = cfsetospeed(&tio, speed)
            tio.c_cflag &= ~tcflag_t(PARENB | PARODD | CSTOPB | CSIZE)
            tio.c_cflag |= tcflag_t(CS8 | CLOCAL | CREAD)
            switch parity {
            case .none: break
            case .even: tio.c_cflag |= tcflag_t(PARENB)
            case .odd: tio.c_cflag |= tcflag_t(PARENB | PARODD)
            }
            if stopBits == 2 { tio.c_cflag |= tcflag_t(CSTOPB) }
            _ = tcsetattr(fd, TCSANOW, &tio)
        }
        self.path = path
        self.fd = fd
        self.responder = responder
        self.units = units
        startThread(name: "modbus-rtu") { [self] in run() }
    }

    static func speed(_ baud: Int) -> speed_t? {
        let table: [Int: Int32] = [
            1200: B1200, 2400: B2400, 4800: B4800, 9600: B9600, 19200: B19200, 38400: B38400,
            57600: B57600, 115200: B115200, 230400: B230400, 460800: B460800, 921600: B921600,
        ]
        return table[baud].map { speed_t($0) }
    }

    func stop() {
        requestStop()
        waitUntilStopped()
    }

    func requestStop() {
        lock.lock(); stopped = true; lock.unlock()
    }

    func waitUntilStopped() {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            lock.lock(); let r = running; lock.unlock()
            if !r { return }
            usleep(5_000)
        }
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    private func run() {
        defer {
            close(fd)
            lock.lock(); running = false; lock.unlock()
        }
        var buffer: [UInt8] = []
        var lastByte = Date()
        var chunk = [UInt8](repeating: 0, count: 512)
        while !isStopped {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let rc = poll(&p, 1, 100)
            if rc > 0 && (p.revents & Int16(POLLIN)) != 0 {
                let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    buffer += chunk[0..<n]
                    lastByte = Date()
                } else if n < 0 && errno != EAGAIN && errno != EINTR {
                    usleep(50_000)   // e.g. EIO while the pty's other side is closed
                }
            } else if rc > 0 {
                usleep(50_000)       // hang-up without data: the other side is gone for now
            }
            // A truncated frame that never completes is flushed after half a second of silence.
            if !buffer.isEmpty && Date().timeIntervalSince(lastByte) > 0.5 {
                if case .needMore = RTUFraming.parseRequest(buffer) { buffer.removeAll() }
            }
            while !buffer.isEmpty {
                switch RTUFraming.parseRequest(buffer) {
                case .needMore:
                    break
                case .invalid(let skip):
                    buffer.removeFirst(min(skip, buffer.count))
                    continue
                case .frame(let unit, let pdu, let length):
                    buffer.removeFirst(length)
                    answer(unit: unit, pdu: pdu)
                    continue
                }
                break
            }
        }
    }

    private func answer(unit: UInt8, pdu: [UInt8]) {
        guard let responder else { return }
        let plan = responder.respond(unit: unit, pdu: pdu, transport: .rtu, serving: units)
        guard let out = plan.pdu else { return }
        if plan.delayMilliseconds > 0 { usleep(useconds_t(plan.delayMilliseconds) * 1000) }
        var frame = ModbusCRC.rtuFrame(unit: unit, pdu: out)
        switch plan.corruption {
        case .none: break
        case .garbage(let bytes): frame = bytes
        case .badCRC:
            frame[frame.count - 1] ^= 0xFF
            frame[frame.count - 2] ^= 0xFF
        }
        _ = Socket.writeAll(fd, frame, socket: false)
    }
}
