// Test support: a real mosquitto broker on a free loopback port, and mosquitto_pub /
// mosquitto_sub as outside peers.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct MosquittoBrokerOptions: Sendable {
    /// A TLS listener on its own port.
    public struct TLSListener: Sendable {
        public var caFile: String
        public var certFile: String
        public var keyFile: String
        public var requireCertificate: Bool
        public init(caFile: String, certFile: String, keyFile: String, requireCertificate: Bool = true) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
            self.requireCertificate = requireCertificate
        }
        public init(certificates: TestCertificates, requireCertificate: Bool = true) {
            self.init(caFile: certificates.caFile, certFile: certificates.serverCertFile,
                      keyFile: certificates.serverKeyFile, requireCertificate: requireCertificate)
        }
    }

    /// Keep sessions and retained messages across `restart()` (saved on a clean stop).
    public var persistence: Bool = false
    /// A file made by `mosquitto_passwd`; anonymous clients are then refused.
    public var passwordFile: String? = nil
    /// Credentials `publish`/`subscribe`/`startSubscriber` use when a password file is set.
    public var helperUsername: String? = nil
    public var helperPassword: String? = nil
    public var tls: TLSListener? = nil
    /// Further mosquitto.conf lines (global settings such as `max_inflight_messages 5`).
    public var extraSettings: [String] = []

    public init(persistence: Bool = false, passwordFile: String? = nil, helperUsername: String? = nil,
                helperPassword: String? = nil, tls: TLSListener? = nil, extraSettings: [String] = []) {
        self.persistence = persistence
        self.passwordFile = passwordFile
        self.helperUsername = helperUsername
        self.helperPassword = helperPassword
        self.tls = tls
        self.extraSettings = extraSettings
    }
}

/// A mosquitto started by a test. Stopped (and its directory removed) on deinit.
public final class MosquittoBroker: @unchecked Sendable {
    public static let executable = "/usr/sbin/mosquitto"

    public let options: MosquittoBrokerOptions
    public let directory: TempDir
    public let configPath: String
    /// The plain MQTT listener on 127.0.0.1.
    public let port: Int
    /// The TLS listener on 127.0.0.1, when `options.tls` is set.
    public let tlsPort: Int?

    private let lock = NSLock()
    private var process: ManagedProcess?
    private var previousLogs = ""

    public init(options: MosquittoBrokerOptions = MosquittoBrokerOptions()) throws {
        self.options = options
        directory = try TempDir("swapgate-mosquitto")
        port = freeLoopbackPort()
        tlsPort = options.tls == nil ? nil : freeLoopbackPort()
        configPath = directory.path("mosquitto.conf")
        try writeConfiguration()
        try start()
    }

    deinit {
        process?.stop()
        directory.remove()
    }

    private func writeConfiguration() throws {
        var lines = [
            "# written by MosquittoBroker (swapgate tests)",
            "per_listener_settings false",
            "allow_anonymous \(options.passwordFile == nil)",
            "persistence \(options.persistence)",
            "persistence_location \(directory.url.path)/",
            "autosave_interval 1",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp true",
        ]
        // mosquitto started as root switches to the `mosquitto` user, which cannot read the
        // test's files; stay root instead (tests only, loopback only).
        if geteuid() == 0 { lines.append("user root") }
        if let passwordFile = options.passwordFile { lines.append("password_file \(passwordFile)") }
        lines += options.extraSettings
        lines += ["", "listener \(port) 127.0.0.1"]
        if let tls = options.tls, let tlsPort {
            lines += [
                "", "listener \(tlsPort) 127.0.0.1",
                "cafile \(tls.caFile)",
                "certfile \(tls.certFile)",
                "keyfile \(tls.keyFile)",
                "require_certificate \(tls.requireCertificate)",
            ]
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    private func start() throws {
        let p = try withUnblockedSignals { try ManagedProcess(Self.executable, ["-c", configPath], name: "mosquitto") }
        lock.withLock { process = p }
        do {
            try waitForTCPPort(port, timeout: 20)
            if let tlsPort { try waitForTCPPort(tlsPort, timeout: 20) }
        } catch {
            p.stop()
            throw TestSupportError.processFailed("mosquitto did not start: \(error) — log: \(p.output().suffix(2000))")
        }
    }

    public var isRunning: Bool { lock.withLock { process?.isRunning ?? false } }

    /// SIGTERM: a clean broker shutdown (writes the persistence file).
    public func stop() {
        let p = lock.withLock { () -> ManagedProcess? in
            defer { process = nil }
            return process
        }
        guard let p else { return }
        p.stop(signal: SIGTERM, timeout: 10)
        lock.withLock { previousLogs += p.output() }
    }

    /// SIGKILL: the broker dies as in a power cut (nothing saved since the last autosave).
    public func kill() {
        let p = lock.withLock { () -> ManagedProcess? in
            defer { process = nil }
            return process
        }
        guard let p else { return }
        p.killHard()
        lock.withLock { previousLogs += p.output() }
    }

    /// Stops the broker if it runs, then starts it again on the same port(s) with the same
    /// configuration and persistence directory.
    public func restart() throws {
        stop()
        try start()
    }

    /// Everything the broker logged, across restarts.
    public func log() -> String {
        lock.withLock { previousLogs + (process?.output() ?? "") }
    }

    // MARK: - Outside peers

    private var connectionArguments: [String] {
        var args = ["-h", "127.0.0.1", "-p", String(port)]
        if let user = options.helperUsername { args += ["-u", user] }
        if let password = options.helperPassword { args += ["-P", password] }
        return args
    }

    /// `mosquitto_pub` once. Throws if it fails.
    public func publish(topic: String, message: String, qos: Int = 0, retain: Bool = false,
                        extraArguments: [String] = []) throws {
        var args = connectionArguments + ["-t", topic, "-m", message, "-q", String(qos)]
        if retain { args.append("-r") }
        args += extraArguments
        let result = try runCommand("mosquitto_pub", args, timeout: 30)
        guard result.status == 0 else {
            throw TestSupportError.processFailed("mosquitto_pub \(topic) failed (\(result.status)): \(result.output)")
        }
    }

    /// `mosquitto_sub -v -C count -W timeout`: the first `count` messages as "topic payload"
    /// lines (fewer if the timeout hit first).
    public func subscribe(topic: String, count: Int, timeout: Int = 20, qos: Int = 1,
                          extraArguments: [String] = []) throws -> [String] {
        let args = connectionArguments + ["-t", topic, "-v", "-q", String(qos), "-C", String(count),
                                          "-W", String(timeout)] + extraArguments
        let result = try runCommand("mosquitto_sub", args, timeout: Double(timeout) + 30)
        return result.output.split(separator: "\n").map(String.init)
            .filter { !$0.hasPrefix("Timed out") }
    }

    /// A long-running `mosquitto_sub -v` on `topics`, returned once it is subscribed.
    public func startSubscriber(topics: [String], qos: Int = 1, extraArguments: [String] = []) throws -> MosquittoSubscriber {
        try MosquittoSubscriber(broker: self, connectionArguments: connectionArguments, topics: topics,
                                qos: qos, extraArguments: extraArguments)
    }
}

/// A `mosquitto_sub -v` child process. Its readiness is checked with a probe message on a
/// private topic, which `lines()` leaves out.
public final class MosquittoSubscriber: @unchecked Sendable {
    public let process: ManagedProcess
    private let probeTopic: String

    convenience init(broker: MosquittoBroker, connectionArguments: [String], topics: [String], qos: Int,
                     extraArguments: [String]) throws {
        try self.init(probe: { try broker.publish(topic: $0, message: "probe") }, connectionArguments: connectionArguments,
                      topics: topics, qos: qos, extraArguments: extraArguments)
    }

    /// `probe(topic)` publishes a probe message on `topic` (through any broker, e.g. another node of a cluster).
    init(probe: (String) throws -> Void, connectionArguments: [String], topics: [String], qos: Int,
         extraArguments: [String]) throws {
        probeTopic = "swapgate-test/probe/\(UUID().uuidString.prefix(8))"
        var args = connectionArguments + ["-v", "-q", String(qos), "-t", probeTopic]
        for topic in topics { args += ["-t", topic] }
        args += extraArguments
        process = try withUnblockedSignals { try ManagedProcess("mosquitto_sub", args, name: "mosquitto_sub") }
        // Subscribed once a probe published after start comes back.
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            try probe(probeTopic)
            if (try? process.waitForOutput(timeout: 0.5, { $0.contains(self.probeTopic) })) != nil { return }
            if !process.isRunning { break }
        }
        process.stop()
        throw TestSupportError.timeout("mosquitto_sub never received its probe: \(process.output())")
    }

    deinit { process.stop() }

    /// Received messages as "topic payload" lines, probes left out.
    public func lines() -> [String] {
        process.output().split(separator: "\n").map(String.init).filter { !$0.hasPrefix(probeTopic) }
    }

    /// Waits until at least `count` lines arrived; returns them (throws on timeout).
    @discardableResult
    public func waitForLines(_ count: Int, timeout: Double = 20) throws -> [String] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let current = lines()
            if current.count >= count { return current }
            if !process.isRunning { break }
            usleep(20_000)
        }
        throw TestSupportError.timeout("mosquitto_sub got \(lines().count) of \(count) lines: \(lines().suffix(20))")
    }

    public func stop() { process.stop() }
}

/// Runs `body` (which starts a child process) with no signal blocked on this thread.
///
/// A child inherits the signal mask of the thread that spawns it, and the threads of
/// Dispatch and of Swift's cooperative pool block SIGTERM, SIGINT, SIGHUP, SIGUSR1/2: a
/// mosquitto started from them ignores SIGTERM, so a "clean" stop would always end in
/// SIGKILL after the timeout (and never write its persistence file).
public func withUnblockedSignals<T>(_ body: () throws -> T) rethrows -> T {
    var empty = sigset_t()
    var previous = sigset_t()
    sigemptyset(&empty)
    pthread_sigmask(SIG_SETMASK, &empty, &previous)
    defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
    return try body()
}
