// Test support: start the real peers a test needs (simulator, mosquitto, socat, …),
// find free loopback ports, and stop by PID whatever a test started.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum TestSupportError: Error, CustomStringConvertible {
    case executableNotFound(String)
    case timeout(String)
    case processFailed(String)

    public var description: String {
        switch self {
        case .executableNotFound(let s): return "executable not found: \(s)"
        case .timeout(let s): return "timed out: \(s)"
        case .processFailed(let s): return "process failed: \(s)"
        }
    }
}

/// How a child ended, as `stop()` saw it.
public enum ProcessTermination: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)
    /// Not known: the child was reaped by someone else, or did not die even after SIGKILL and a bounded wait.
    case unknown

    /// `Process.terminationStatus`'s convention: the exit code, or the signal number; -1 when unknown.
    public var status: Int32 {
        switch self {
        case .exited(let code), .signalled(let code): return code
        case .unknown: return -1
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): return "exit \(code)"
        case .signalled(let sig): return "signal \(sig)"
        case .unknown: return "unknown"
        }
    }

    /// Decodes a `waitpid` status.
    init(waitStatus: Int32) {
        if waitStatus & 0x7f == 0 { self = .exited((waitStatus >> 8) & 0xff) }
        else if waitStatus & 0x7f != 0x7f { self = .signalled(waitStatus & 0x7f) }
        else { self = .unknown }
    }
}

/// A child process a test started. It is killed (SIGKILL, by PID) when `stop()` is called
/// or when the object is deinitialised, so no test leaves a peer behind.
///
/// Why `stop()` never waits on Foundation alone: on Linux, `Process` learns of the child's death through a
/// socket the child inherits; it reaps (and clears `isRunning`) only when every holder of that socket has
/// closed it. A grandchild the child left behind (`sh -c 'daemon & …'`, a crashed daemon's helper) keeps it
/// open, so the dead child stays a zombie, `isRunning` stays true and `waitUntilExit()` waits as long as the
/// grandchild lives. So `stop()` also watches the child's own state in /proc, kills the child's process group
/// (Process starts every child in a group of its own) when the child is dead or will not die, waits a bounded
/// time only, and reads a zombie's exit status from /proc when Foundation cannot reap it.
public final class ManagedProcess: @unchecked Sendable {
    public let process: Process
    public let name: String
    public let logURL: URL
    private let lock = NSLock()
    private var stopped = false
    private var _termination: ProcessTermination?

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// How the child ended, once `stop()` (or `killHard()`) has returned; nil before.
    public var termination: ProcessTermination? { lock.lock(); defer { lock.unlock() }; return _termination }

    /// Starts `executable` (an absolute path, or a name looked up on PATH) with `arguments`.
    /// stdout and stderr go to a log file in the temporary directory (see `logURL`).
    public init(_ executable: String, _ arguments: [String], name: String? = nil,
                environment: [String: String]? = nil, currentDirectory: URL? = nil) throws {
        guard let path = Self.resolve(executable) else { throw TestSupportError.executableNotFound(executable) }
        self.name = name ?? (executable as NSString).lastPathComponent
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        if let currentDirectory { p.currentDirectoryURL = currentDirectory }
        let log = FileManager.default.temporaryDirectory
            .appendingPathComponent("swapgate-test-\(self.name)-\(UUID().uuidString.prefix(8)).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        p.standardOutput = handle
        p.standardError = handle
        p.standardInput = FileHandle.nullDevice
        self.logURL = log
        self.process = p
        // Threads of the Swift pool and Dispatch block SIGTERM & co.; a child inherits the mask, and would
        // then ignore a polite stop. Start children with an empty mask.
        try withUnblockedSignals { try p.run() }
    }

    /// The process's combined output so far.
    public func output() -> String {
        (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
    }

    /// Waits until `predicate(output())` holds, or throws after `timeout` seconds.
    @discardableResult
    public func waitForOutput(timeout: Double = 20, _ predicate: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let out = output()
            if predicate(out) { return out }
            // Dead even if Foundation has not reaped it (a grandchild holding its exit socket): fail now.
            if let ended = Self.exitSoFar(process) {
                let out = output()
                if predicate(out) { return out }
                throw TestSupportError.processFailed("\(name) exited (\(ended)): \(out.suffix(2000))")
            }
            usleep(20_000)
        }
        throw TestSupportError.timeout("\(name) output: \(output().suffix(2000))")
    }

    public func signal(_ sig: Int32) {
        if process.isRunning { kill(process.processIdentifier, sig) }
    }

    /// Sends `sig` (default SIGTERM) and waits up to `timeout` s for the child to end; then SIGKILL to its
    /// process group (the child and whatever it left behind) and up to `killTimeout` s more. Never waits longer,
    /// whether the child is alive, a zombie Foundation cannot reap, already reaped, or unkillable (then the
    /// result is `.unknown`). Idempotent: later calls return the first result. Returns `termination.status`
    /// (exit code or signal number, as `Process.terminationStatus`; -1 when unknown).
    @discardableResult
    public func stop(signal sig: Int32 = SIGTERM, timeout: Double = 10, killTimeout: Double = 5) -> Int32 {
        lock.lock(); defer { lock.unlock() }
        if let done = _termination { return done.status }
        stopped = true
        let result = Self.end(process, signal: sig, timeout: timeout, killTimeout: killTimeout)
        _termination = result
        return result.status
    }

    /// SIGKILL, as a power cut would.
    public func killHard() { _ = stop(signal: SIGKILL, timeout: 5) }

    deinit {
        if !stopped { _ = Self.end(process, signal: SIGKILL, timeout: 5, killTimeout: 5) }
    }

    // MARK: Bounded ending of a Process

    /// The state of `pid` in /proc: "R", "S", "D", "Z", … and, for a zombie, its `waitpid` status (field 52,
    /// `exit_code`). nil when there is no such process (reaped).
    static func procState(_ pid: pid_t) -> (state: Character, waitStatus: Int32?)? {
        guard pid > 0, let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // After "pid (comm)" come fields 3… ; `comm` may contain spaces and parentheses, hence the last ")".
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        guard let state = fields.first?.first else { return nil }
        let status = fields.count > 49 ? Int32(fields[49].trimmingCharacters(in: .whitespacesAndNewlines)) : nil
        return (state, status)
    }

    /// How `process` ended if it has: from Foundation once reaped, else a zombie's status from /proc; nil while
    /// it lives (or when it was reaped by someone else and Foundation has not noticed).
    static func exitSoFar(_ process: Process) -> ProcessTermination? {
        if !process.isRunning {
            return process.terminationReason == .uncaughtSignal
                ? .signalled(process.terminationStatus) : .exited(process.terminationStatus)
        }
        if let s = procState(process.processIdentifier), s.state == "Z" || s.state == "X", let status = s.waitStatus {
            return ProcessTermination(waitStatus: status)
        }
        return nil
    }

    /// True when `pid` is dead: a zombie, or gone.
    static func isDead(_ pid: pid_t) -> Bool {
        guard let s = procState(pid) else { return true }
        return s.state == "Z" || s.state == "X"
    }

    /// Polls until Foundation has reaped `process` or (if `orDead`) the child is dead, or `deadline` passes.
    private static func poll(_ process: Process, until deadline: Date, orDead: Bool) {
        let pid = process.processIdentifier
        while process.isRunning && Date() < deadline {
            if orDead && isDead(pid) { return }
            usleep(10_000)
        }
    }

    /// Ends `process` within about `timeout + killTimeout + 1` s whatever its state; see `stop()`.
    static func end(_ process: Process, signal sig: Int32, timeout: Double, killTimeout: Double) -> ProcessTermination {
        let pid = process.processIdentifier
        // `isRunning` true: Foundation has not reaped the child, so its PID (and its group's, which Process
        // set to the PID) is still the child's, alive or zombie — unless someone else reaped it: then /proc
        // has no such process and nothing is signalled.
        if process.isRunning && !isDead(pid) {
            kill(pid, sig)
            poll(process, until: Date().addingTimeInterval(timeout), orDead: true)
        }
        // Dead: Foundation normally reaps it at once; give it a moment before anything is killed.
        if process.isRunning && isDead(pid) { poll(process, until: Date().addingTimeInterval(1), orDead: false) }
        if process.isRunning && procState(pid) != nil {
            // Alive after `timeout`, or dead and not reaped because its group still holds Foundation's socket.
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)   // in case it left its group
            poll(process, until: Date().addingTimeInterval(killTimeout), orDead: false)
        }
        // Reaped by Foundation: let it finish its own bookkeeping too. `waitUntilExit()` returns at once for a
        // process that is no longer running, and it is what releases Foundation's per-child monitoring (without
        // it each child left one descriptor open in the test process: ~1 000 after the suite, until libmosquitto's
        // select(2) refused descriptors ≥ FD_SETSIZE with MOSQ_ERR_INVAL).
        if !process.isRunning { process.waitUntilExit() }
        // If Foundation still has not reaped it (something outside the group holds the socket, the child was
        // reaped elsewhere, or it would not die: uninterruptible sleep), a zombie's status is in /proc.
        return exitSoFar(process) ?? .unknown
    }

    static func resolve(_ executable: String) -> String? {
        if executable.contains("/") { return FileManager.default.isExecutableFile(atPath: executable) ? executable : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") + ["/usr/sbin", "/sbin", "/usr/bin"] {
            let candidate = "\(dir)/\(executable)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

/// Runs a command to completion and returns (status, combined output). After `timeout` s it is killed (with
/// its process group) and `TestSupportError.timeout` is thrown. Bounded in every case: a command that has
/// exited while processes it left behind still hold its output pipe or Foundation's exit socket has those
/// processes (its group) killed, and output still unread a few seconds after the end is not waited for.
@discardableResult
public func runCommand(_ executable: String, _ arguments: [String], timeout: Double = 60,
                       input: String? = nil) throws -> (status: Int32, output: String) {
    guard let path = ManagedProcess.resolve(executable) else { throw TestSupportError.executableNotFound(executable) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    let inPipe = Pipe()
    p.standardInput = input == nil ? FileHandle.nullDevice : inPipe
    try withUnblockedSignals { try p.run() }
    let pid = p.processIdentifier
    return try withExtendedLifetime((pipe, inPipe)) { () -> Result<(status: Int32, output: String), TestSupportError> in
        if let input {
            // On a thread of its own, so a child that does not read its input cannot hold us past the timeout.
            let writer = PipeWriter(fd: inPipe.fileHandleForWriting.fileDescriptor, bytes: Array(input.utf8))
            try? inPipe.fileHandleForWriting.close()   // the writer has its own copy; the child sees EOF after it
            Thread { writer.run() }.start()
        }
        let reader = PipeReader(fd: pipe.fileHandleForReading.fileDescriptor)
        Thread { reader.run() }.start()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && !ManagedProcess.isDead(pid) && Date() < deadline { usleep(5_000) }
        let timedOut = p.isRunning && !ManagedProcess.isDead(pid)
        let termination = ManagedProcess.end(p, signal: SIGKILL, timeout: 5, killTimeout: 5)
        let output = reader.finish(waiting: 5)
        if timedOut { return .failure(.timeout("\(executable) \(arguments.joined(separator: " "))")) }
        return .success((termination.status, String(decoding: output, as: UTF8.self)))
    }.get()
}

/// Reads a pipe to its end on a thread of its own, without blocking in read(2), so that it can be given up.
private final class PipeReader: @unchecked Sendable {
    private let fd: Int32
    private let lock = NSCondition()
    private var data = Data()
    private var done = false
    private var cancelled = false

    init(fd: Int32) { self.fd = fd }

    func run() {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while !lock.withLock({ cancelled }) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 50) <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { lock.withLock { data.append(contentsOf: buffer[0..<n]) }; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            break   // end of file, or an error
        }
        lock.withLock { done = true; lock.broadcast() }
    }

    /// What was read, once the end was reached or after `waiting` s (then the reader is stopped).
    func finish(waiting: Double) -> Data {
        let deadline = Date().addingTimeInterval(waiting)
        lock.lock(); defer { lock.unlock() }
        while !done && lock.wait(until: deadline) {}
        cancelled = true
        while !done { lock.wait() }   // the reader polls every 50 ms: it sees `cancelled` promptly
        return data
    }
}

/// Writes bytes to a pipe and closes it, with SIGPIPE blocked on its thread (a child that exits without
/// reading its input gives EPIPE, not a signal that ends the test process).
private final class PipeWriter: @unchecked Sendable {
    private let fd: Int32
    private let bytes: [UInt8]
    init(fd: Int32, bytes: [UInt8]) { self.fd = dup(fd); self.bytes = bytes }

    func run() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { break }
        }
        close(fd)
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
public func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    precondition(fd >= 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Waits until a TCP connect to 127.0.0.1:port succeeds.
public func waitForTCPPort(_ port: Int, timeout: Double = 20) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        close(fd)
        if rc == 0 { return }
        usleep(20_000)
    }
    throw TestSupportError.timeout("port \(port) never accepted a connection")
}

/// A fresh temporary directory, removed by `remove()`.
public struct TempDir: Sendable {
    public let url: URL
    public init(_ prefix: String = "swapgate") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    public func remove() { try? FileManager.default.removeItem(at: url) }
}

/// The folder holding this package's built executables (station-sim, swapgate, swapctl):
/// `SWAPGATE_BIN_DIR` if set, else the folder of the running test bundle (.build/debug).
public func builtProductsDirectory() -> URL {
    if let dir = ProcessInfo.processInfo.environment["SWAPGATE_BIN_DIR"] { return URL(fileURLWithPath: dir) }
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    // …/.build/<triple>/debug/swapgatePackageTests.xctest → …/debug
    while url.pathComponents.count > 1 {
        url.deleteLastPathComponent()
        if FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("station-sim").path) { return url }
    }
    return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug")
}

/// Path of one of this package's executables; fails clearly if it was not built.
public func productPath(_ name: String) throws -> String {
    let path = builtProductsDirectory().appendingPathComponent(name).path
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw TestSupportError.executableNotFound("\(path) (run `swift build` first)")
    }
    return path
}

/// Polls `condition` until true or `timeout` elapses; returns whether it became true.
public func eventually(timeout: Double = 10, interval: Double = 0.02, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    repeat {
        if try condition() { return true }
        usleep(useconds_t(interval * 1_000_000))
    } while Date() < deadline
    return try condition()
}

/// Async variant of `eventually`.
public func eventuallyAsync(timeout: Double = 10, interval: Double = 0.02, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    repeat {
        if try await condition() { return true }
        try? await Task.sleep(nanoseconds: UInt64(interval * 1_000_000_000))
    } while Date() < deadline
    return try await condition()
}
