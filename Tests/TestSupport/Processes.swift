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

/// A child process a test started. It is killed (SIGKILL, by PID) when `stop()` is called
/// or when the object is deinitialised, so no test leaves a peer behind.
public final class ManagedProcess: @unchecked Sendable {
    public let process: Process
    public let name: String
    public let logURL: URL
    private let lock = NSLock()
    private var stopped = false

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

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
            if !process.isRunning {
                let out = output()
                if predicate(out) { return out }
                throw TestSupportError.processFailed("\(name) exited (\(process.terminationStatus)): \(out.suffix(2000))")
            }
            usleep(20_000)
        }
        throw TestSupportError.timeout("\(name) output: \(output().suffix(2000))")
    }

    public func signal(_ sig: Int32) {
        if process.isRunning { kill(process.processIdentifier, sig) }
    }

    /// Sends `sig` (default SIGTERM) and waits up to `timeout` s; SIGKILL after that.
    @discardableResult
    public func stop(signal sig: Int32 = SIGTERM, timeout: Double = 10) -> Int32 {
        lock.lock(); defer { lock.unlock() }
        if !stopped {
            stopped = true
            if process.isRunning {
                kill(process.processIdentifier, sig)
                let deadline = Date().addingTimeInterval(timeout)
                while process.isRunning && Date() < deadline { usleep(10_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    /// SIGKILL, as a power cut would.
    public func killHard() { _ = stop(signal: SIGKILL, timeout: 5) }

    deinit {
        if !stopped && process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
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

/// Runs a command to completion and returns (status, combined output).
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
    if let input {
        inPipe.fileHandleForWriting.write(Data(input.utf8))
        try? inPipe.fileHandleForWriting.close()
    }
    let box = DataBox()
    let reader = Thread { box.data = pipe.fileHandleForReading.readDataToEndOfFile() }
    reader.start()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(5_000) }
    if p.isRunning {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        throw TestSupportError.timeout("\(executable) \(arguments.joined(separator: " "))")
    }
    p.waitUntilExit()
    while !box.done { usleep(1_000) }
    return (p.terminationStatus, String(decoding: box.data, as: UTF8.self))
}

private final class DataBox: @unchecked Sendable {
    private let lock = NSLock()
    private var _data = Data()
    private var _done = false
    var data: Data {
        get { lock.lock(); defer { lock.unlock() }; return _data }
        set { lock.lock(); _data = newValue; _done = true; lock.unlock() }
    }
    var done: Bool { lock.lock(); defer { lock.unlock() }; return _done }
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
