// Test support: the three-node RabbitMQ cluster of tools/broker-cluster.sh (MQTT plugin, quorum queues for
// durable sessions), on loopback ports the script picks. Stopped (every node and its epmd, by PID) on stop()
// or deinit.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public final class RabbitCluster: @unchecked Sendable {
    public static let script: String = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("tools/broker-cluster.sh")
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate.path }
        }
        return "tools/broker-cluster.sh"
    }()

    public static var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: "/usr/lib/rabbitmq/bin/rabbitmq-server") }

    public let directory: TempDir
    /// The MQTT listener of node 1, 2, 3 (127.0.0.1).
    public let mqttPorts: [Int]
    public let pids: [Int32]
    public let username = "station"
    public let password = "station-secret"
    /// How long `start` took (seconds), as the script measured it.
    public let startSeconds: Double
    private let lock = NSLock()
    private var stopped = false

    public init() throws {
        directory = try TempDir("swapgate-rabbit")
        let r = Self.runScript(["start", directory.url.path], log: directory.path("start.log"), timeout: 600)
        var values: [String: String] = [:]
        for line in r.output.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "="), !line.hasPrefix(" ") else { continue }
            values[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        guard r.status == 0, let ports = values["mqtt_ports"]?.split(separator: " ").compactMap({ Int($0) }), ports.count == 3,
              let pids = values["pids"]?.split(separator: " ").compactMap({ Int32($0) }), pids.count == 3 else {
            Self.runStop(directory.url.path)
            directory.remove()
            throw TestSupportError.processFailed("broker-cluster.sh start failed (\(r.status)): \(r.output.suffix(3000))")
        }
        mqttPorts = ports
        self.pids = pids
        startSeconds = Double(values["seconds"] ?? "") ?? 0
    }

    deinit { stop() }

    /// SIGKILL node `index` (0-based), as in a power cut.
    public func kill(node index: Int) {
        _ = Glibc.kill(pids[index], SIGKILL)
    }

    public func isRunning(node index: Int) -> Bool { Glibc.kill(pids[index], 0) == 0 }

    /// Stops every node and the cluster's epmd (by PID), then removes the folder.
    public func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        Self.runStop(directory.url.path)
        directory.remove()
    }

    static func runStop(_ dir: String) {
        _ = runScript(["stop", dir], log: dir + "/stop.log", timeout: 120)
    }

    /// Runs broker-cluster.sh with posix_spawn and waitpid, its output in `log`. Not Foundation's Process: the
    /// script leaves the nodes running in the background, and Process was seen never to reap it (a zombie `bash`
    /// and a test waiting forever).
    static func runScript(_ arguments: [String], log: String, timeout: Double) -> (status: Int32, output: String) {
        func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let command = "exec /bin/bash \(quote(script)) \(arguments.map(quote).joined(separator: " ")) >\(quote(log)) 2>&1 </dev/null"
        var pid: pid_t = 0
        let words: [String] = ["/bin/bash", "-c", command]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let rc = withUnblockedSignals { posix_spawn(&pid, "/bin/bash", nil, nil, argv, environ) }
        guard rc == 0 else { return (-1, "posix_spawn failed: \(rc)") }
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        var exited = false
        while Date() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid { exited = true; break }
            usleep(50_000)
        }
        if !exited {
            _ = Glibc.kill(pid, SIGKILL)
            _ = waitpid(pid, &status, 0)
        }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        let code: Int32 = exited && (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
        return (code, output)
    }

    /// mosquitto_pub/mosquitto_sub arguments for node `index` (MQTT 3.1.1: RabbitMQ 3.10 speaks no MQTT 5).
    public func connectionArguments(node index: Int) -> [String] {
        ["-h", "127.0.0.1", "-p", String(mqttPorts[index]), "-u", username, "-P", password, "-V", "mqttv311"]
    }

    /// `mosquitto_pub` to node `index`, published again (up to `attempts` times, 1 s apart) while the node drops
    /// the connection before its PUBACK, as a QoS 1 client must. RabbitMQ 3.10's MQTT plugin closes the
    /// connection when a quorum queue nacks the publish (`mqtt_unexpected_msg, {'basic.nack', …}` in the node's
    /// log): a session queue declared a moment ago, or one whose leader died with its node, has no leader yet.
    /// mosquitto_pub then says "The connection was lost". The station de-duplicates by request_id.
    public func publish(node index: Int, topic: String, message: String, qos: Int = 1, retain: Bool = false, attempts: Int = 10) throws {
        var args = connectionArguments(node: index) + ["-t", topic, "-m", message, "-q", String(qos)]
        if retain { args.append("-r") }
        var last = ""
        for attempt in 1 ... max(1, attempts) {
            let result = try runCommand("mosquitto_pub", args, timeout: 30)
            if result.status == 0 { return }
            last = result.output
            if attempt < attempts { usleep(1_000_000) }
        }
        throw TestSupportError.processFailed("mosquitto_pub to node \(index + 1) failed \(attempts) times: \(last)")
    }

    /// A long-running `mosquitto_sub -v` on node `index` (e.g. with `["-c", "-i", "abs"]`: a persistent session).
    public func startSubscriber(node index: Int, topics: [String], qos: Int = 1, extraArguments: [String] = []) throws -> MosquittoSubscriber {
        // A probe that cannot be published yet (a node that just joined) is simply tried again by the loop.
        try MosquittoSubscriber(probe: { try? self.publish(node: index, topic: $0, message: "probe", qos: 1, attempts: 1) },
                                connectionArguments: connectionArguments(node: index), topics: topics, qos: qos,
                                extraArguments: extraArguments)
    }
}
