// Test support: the Odoo stand-in (tools/odoo_standin.py) as a child process, its control API,
// and a minimal raw HTTP/1.1 client for talking to it without the gateway's HTTP stack.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `python3 tools/odoo_standin.py --port 0 …`, started by a test and stopped by PID.
public final class OdooStandIn: Sendable {
    public let process: ManagedProcess
    public let port: Int
    public let tls: Bool
    /// `http://127.0.0.1:PORT`, or `https://…` when started with a certificate.
    public var baseURL: String { "\(tls ? "https" : "http")://127.0.0.1:\(port)" }

    /// The repository root, found from this file's path (…/Tests/TestSupport/OdooStandIn.swift).
    public static func repositoryRoot(_ file: String = #filePath) -> URL {
        URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    public static var scriptPath: String {
        repositoryRoot().appendingPathComponent("tools/odoo_standin.py").path
    }

    /// Starts the stand-in accepting `keys`; `extraArguments` go to the script as they are
    /// (e.g. `["--database", "prod"]`, `["--unknown-subscription", "SUB/X"]`, `["--data-file", path]`).
    /// With `tls` (PEM certificate and key paths) it serves HTTPS; the control API is then not available
    /// through this class (it speaks plain HTTP).
    public init(keys: [String] = ["test-key"], extraArguments: [String] = [],
                tls: (certificate: String, key: String)? = nil) throws {
        var args = [Self.scriptPath, "--port", "0"]
        for key in keys { args += ["--key", key] }
        if let tls { args += ["--tls-cert", tls.certificate, "--tls-key", tls.key] }
        args += extraArguments
        let process = try ManagedProcess("python3", args, name: "odoo-standin")
        let out = try process.waitForOutput(timeout: 20) { $0.contains("odoo stand-in listening on ") }
        guard let line = out.split(separator: "\n").first(where: { $0.contains("listening on") }),
              let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) })
        else {
            process.killHard()
            throw TestSupportError.processFailed("odoo stand-in printed no port: \(out)")
        }
        self.process = process
        self.port = port
        self.tls = tls != nil
    }

    deinit { process.stop() }

    /// SIGTERM, then SIGKILL if needed. Returns the exit status.
    @discardableResult
    public func stop() -> Int32 { process.stop() }

    // MARK: control API

    /// Queues one fault, e.g. `["status": 503, "count": 3]` (see docs/odoo.md).
    public func faults(_ fault: [String: Any]) throws {
        _ = try control("POST", "/_standin/faults", fault)
    }

    /// Every accepted record, in arrival order: `usage_log_id`, `idempotency_key`, `attempts`, `params`, …
    public func records() throws -> [[String: Any]] {
        let json = try control("GET", "/_standin/records", nil)
        return json["records"] as? [[String: Any]] ?? []
    }

    /// Requests to the usage-log route that carried `key`, whatever their outcome.
    public func attempts(_ key: String) throws -> Int {
        let json = try control("GET", "/_standin/records", nil)
        return (json["attempts"] as? [String: Any])?[key] as? Int ?? 0
    }

    /// `requests`, `recorded`, `duplicates`, `errors` (by kind), `in_flight`, `max_in_flight`, …
    public func stats() throws -> [String: Any] {
        try control("GET", "/_standin/stats", nil)
    }

    /// Forgets records, faults, expired keys and counters.
    public func reset() throws {
        _ = try control("POST", "/_standin/reset", [:])
    }

    private func control(_ method: String, _ path: String, _ body: [String: Any]?) throws -> [String: Any] {
        let data = try body.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
        let response = try rawHTTP(port: port, method: method, path: path,
                                   headers: ["Content-Type": "application/json"], body: [UInt8](data))
        guard response.status == 200,
              let json = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
            throw TestSupportError.processFailed("stand-in \(method) \(path): HTTP \(response.status) \(response.text)")
        }
        return json
    }
}

/// One answer read by `rawHTTP`.
public struct RawHTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// Sends one HTTP/1.1 request to 127.0.0.1:port over a plain socket (`Connection: close`) and reads
/// the whole answer. Headers are sent exactly as given (plus Host, Content-Length, Connection).
public func rawHTTP(port: Int, method: String, path: String, headers: [String: String] = [:],
                    body: [UInt8] = [], timeout: Double = 10) throws -> RawHTTPResponse {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestSupportError.processFailed("socket() failed") }
    defer { close(fd) }
    var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { throw TestSupportError.processFailed("connect to 127.0.0.1:\(port) failed (errno \(errno))") }

    var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
    for (name, value) in headers.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
    head += "Content-Length: \(body.count)\r\n\r\n"
    let request = Array(head.utf8) + body
    var sent = 0
    while sent < request.count {
        let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n > 0 else { throw TestSupportError.processFailed("send failed (errno \(errno))") }
        sent += n
    }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n == 0 { break }
        if n < 0 {
            if errno == EINTR { continue }
            if errno == ECONNRESET && received.isEmpty { throw TestSupportError.processFailed("connection reset") }
            if errno == ECONNRESET { break }
            throw TestSupportError.timeout("reading from 127.0.0.1:\(port) (errno \(errno))")
        }
        received.append(contentsOf: buffer[0..<n])
    }
    guard let split = findHeaderEnd(received) else {
        throw TestSupportError.processFailed("no HTTP answer from 127.0.0.1:\(port): \(String(decoding: received, as: UTF8.self))")
    }
    let headText = String(decoding: received[0..<split], as: UTF8.self)
    var lines = headText.components(separatedBy: "\r\n")
    let statusLine = lines.removeFirst().split(separator: " ")
    guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
        throw TestSupportError.processFailed("bad status line: \(headText)")
    }
    let parsed: [(String, String)] = lines.compactMap { line in
        guard let colon = line.firstIndex(of: ":") else { return nil }
        return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
    }
    return RawHTTPResponse(status: status, headers: parsed, body: Array(received[(split + 4)...]))
}

private func findHeaderEnd(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 4 else { return nil }
    for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
        return i
    }
    return nil
}
