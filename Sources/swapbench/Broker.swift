import Foundation

/// A mosquitto broker started by the benchmark on a free loopback port and stopped by PID.
final class BenchBroker {
    let process: Process
    let port: Int
    let dir: URL

    /// `defaults`: mosquitto as installed (only the listener, anonymous access and no persistence), instead of the
    /// benchmark's settings (unlimited in-flight window, a deep queue, TCP_NODELAY).
    init(defaults: Bool = false) throws {
        port = Self.freePort()
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("swapbench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let conf = dir.appendingPathComponent("mosquitto.conf")
        let tuning = defaults ? "" : "max_inflight_messages 0\nmax_queued_messages 100000\nset_tcp_nodelay true\n"
        try "listener \(port) 127.0.0.1\nallow_anonymous true\npersistence false\n\(tuning)"
            .write(to: conf, atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/mosquitto")
        process.arguments = ["-c", conf.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try spawnWithSignalsUnblocked(process)
        for _ in 0 ..< 200 {
            if Self.canConnect(port) { return }
            usleep(20_000)
        }
        throw BenchError("mosquitto did not start on port \(port)")
    }

    func stop() {
        stopProcess(process)
        try? FileManager.default.removeItem(at: dir)
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    static func canConnect(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Threads of the Swift pool block SIGTERM & co. and a child inherits that mask; start children with an
/// empty one so that a polite stop works.
func spawnWithSignalsUnblocked(_ process: Process) throws {
    var empty = sigset_t(), previous = sigset_t()
    sigemptyset(&empty)
    pthread_sigmask(SIG_SETMASK, &empty, &previous)
    defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
    try process.run()
}

/// SIGTERM, then SIGKILL after 5 s.
func stopProcess(_ process: Process) {
    guard process.isRunning else { return }
    kill(process.processIdentifier, SIGTERM)
    let deadline = Date().addingTimeInterval(5)
    while process.isRunning && Date() < deadline { usleep(20_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
}
