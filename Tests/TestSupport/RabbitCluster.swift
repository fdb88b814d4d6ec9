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
        // A ManagedProcess (output to a file), not runCommand: the script leaves the nodes running in the background.
        let starter = try ManagedProcess("/bin/bash", [Self.script, "start", directory.url.path], name: "broker-cluster")
        let finished = (try? starter.waitForOutput(timeout: 600) { $0.contains("seconds=") || $0.contains("did not start") }) != nil
        let r = (status: Int32(finished && starter.output().contains("seconds=") ? 0 : 1), output: starter.output())
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
        guard let stopper = try? ManagedProcess("/bin/bash", [script, "stop", dir], name: "broker-cluster-stop") else { return }
        _ = try? stopper.waitForOutput(timeout: 120) { $0.contains("stopped") }
    }

    /// mosquitto_pub/mosquitto_sub arguments for node `index` (MQTT 3.1.1: RabbitMQ 3.10 speaks no MQTT 5).
    public func connectionArguments(node index: Int) -> [String] {
        ["-h", "127.0.0.1", "-p", String(mqttPorts[index]), "-u", username, "-P", password, "-V", "mqttv311"]
    }

    /// `mosquitto_pub` once to node `index`.
    public func publish(node index: Int, topic: String, message: String, qos: Int = 1, retain: Bool = false) throws {
        var args = connectionArguments(node: index) + ["-t", topic, "-m", message, "-q", String(qos)]
        if retain { args.append("-r") }
        let result = try runCommand("mosquitto_pub", args, timeout: 30)
        guard result.status == 0 else { throw TestSupportError.processFailed("mosquitto_pub to node \(index + 1) failed: \(result.output)") }
    }

    /// A long-running `mosquitto_sub -v` on node `index` (e.g. with `["-c", "-i", "abs"]`: a persistent session).
    public func startSubscriber(node index: Int, topics: [String], qos: Int = 1, extraArguments: [String] = []) throws -> MosquittoSubscriber {
        try MosquittoSubscriber(probe: { try self.publish(node: index, topic: $0, message: "probe", qos: 0) },
                                connectionArguments: connectionArguments(node: index), topics: topics, qos: qos,
                                extraArguments: extraArguments)
    }
}
