// The built `station-sim` binary as a child process, with its printed ports and a client for
// its JSON-lines control interface.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public final class SimulatorProcess: @unchecked Sendable {
    // @unchecked: all stored properties are immutable; ManagedProcess is itself thread-safe.
    public let process: ManagedProcess
    /// The Modbus TCP port (nil when the simulator serves RTU).
    public let modbusPort: Int?
    public let controlPort: Int
    /// With several cabinets (`--units`, `--cabinet-ports`): each cabinet's unit id, in order.
    public let units: [Int]
    /// With `--cabinet-ports`: the Modbus TCP port of each cabinet, by unit id.
    public let cabinetPorts: [Int: Int]

    /// Starts `station-sim` with `arguments`. Unless given, `--port 0` (for TCP, i.e. without
    /// `--serial`) and `--control-port 0` are added; the chosen ports are read from its output.
    public init(_ arguments: [String] = [], timeout: Double = 30) throws {
        var args = arguments
        let rtu = args.contains("--serial")
        if !rtu && !args.contains("--port") && !args.contains("--cabinet-ports") { args += ["--port", "0"] }
        if !args.contains("--control-port") { args += ["--control-port", "0"] }
        process = try ManagedProcess(try productPath("station-sim"), args, name: "station-sim")
        let out = try process.waitForOutput(timeout: timeout) { out in
            out.contains("control listening on") && (rtu ? out.contains("modbus rtu serving") : out.contains("modbus tcp listening on"))
        }
        controlPort = try Self.port(after: "control listening on ", in: out)
        modbusPort = rtu ? nil : try Self.port(after: "modbus tcp listening on ", in: out)
        // "cabinet unit U serial S slots N[ modbus tcp HOST:PORT]", one per cabinet when there are several.
        var units: [Int] = [], ports: [Int: Int] = [:]
        for line in out.split(separator: "\n") where line.hasPrefix("cabinet unit ") {
            let words = line.split(separator: " ")
            guard words.count >= 3, let unit = Int(words[2]) else { continue }
            units.append(unit)
            if let last = words.last, words.dropLast().last == "tcp", let colon = last.lastIndex(of: ":"),
               let port = Int(last[last.index(after: colon)...]) {
                ports[unit] = port
            }
        }
        self.units = units.isEmpty ? [1] : units
        cabinetPorts = ports
    }

    static func port(after marker: String, in output: String) throws -> Int {
        for line in output.split(separator: "\n") {
            guard let r = line.range(of: marker) else { continue }
            let address = line[r.upperBound...].trimmingCharacters(in: .whitespaces)
            if let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) {
                return port
            }
        }
        throw TestSupportError.processFailed("no \"\(marker)HOST:PORT\" line in: \(output.suffix(1000))")
    }

    /// Sends one control request and returns the decoded answer (`["ok": true, ...]` or
    /// `["ok": false, "error": ...]`).
    public func control(_ json: [String: Any], timeout: Double = 30) throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: json)
        let line = try controlLine(String(decoding: data, as: UTF8.self), timeout: timeout)
        guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw TestSupportError.processFailed("control answer is not an object: \(line)")
        }
        return object
    }

    /// Sends one raw line, returns the raw answer line.
    public func controlLine(_ line: String, timeout: Double = 30) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError.processFailed("socket") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(controlPort).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw TestSupportError.processFailed("connect to control port \(controlPort)") }
        let bytes = Array((line + "\n").utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestSupportError.processFailed("send to control port") }
            sent += n
        }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) { return String(decoding: buffer[..<nl], as: UTF8.self) }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw TestSupportError.processFailed("control connection closed") }
            buffer += chunk[0..<n]
        }
        throw TestSupportError.timeout("control answer to \(line)")
    }

    public func output() -> String { process.output() }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    public func stop() -> Int32 { process.stop() }

    deinit { process.stop() }
}
