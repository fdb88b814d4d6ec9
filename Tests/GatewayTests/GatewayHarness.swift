import Foundation
import Testing
import TestSupport

/// A station on loopback for end-to-end tests: mosquitto, station-sim and the swapgate daemon as real
/// processes, plus an outside `mosquitto_sub` on the station's data topics.
final class Station: @unchecked Sendable {
    static let id = "TG-TEST-0001"
    let dir: TempDir
    let broker: MosquittoBroker
    let sim: SimulatorProcess
    var gateway: ManagedProcess?
    let configPath: String
    var extraConfig: String
    /// The daemon's control socket and metrics port (each test station has its own).
    let controlSocket: String
    let metricsPort: Int
    /// A technician in the station's technicians file: name and credential.
    static let technician = (name: "alice", credential: "s3cret-Alice-42")

    init(slots: Int = 8, brokerOptions: MosquittoBrokerOptions = MosquittoBrokerOptions(persistence: true),
         simArguments: [String] = [], extraConfig: String = "", mqttSection: String? = nil, mqttOptions: String = "",
         absSection: String = "abs: {allow_unsigned: true}", storeDirectory: String? = nil,
         publishing: String = "{telemetry_interval: 2, inventory_debounce: 0.2, telemetry_mode: full}") throws {
        dir = try TempDir("swapgate-e2e")
        broker = try MosquittoBroker(options: brokerOptions)
        sim = try SimulatorProcess(["--slots", "\(slots)", "--port", "0", "--control-port", "0"] + simArguments)
        configPath = dir.path("swapgate.yaml")
        self.extraConfig = extraConfig
        self.storeDirectory = storeDirectory
        controlSocket = dir.path("control.sock")
        metricsPort = freeLoopbackPort()
        let digest = try runCommand("/usr/bin/sha256sum", [], input: Self.technician.credential).output.prefix(64)
        try "# test technicians\n\(Self.technician.name):\(digest)\n".write(toFile: dir.path("technicians"), atomically: true, encoding: .utf8)
        let local = extraConfig.contains("control:") ? "" : """
        control: {socket: \(controlSocket), technicians_file: \(dir.path("technicians"))}
        metrics: {port: \(metricsPort)}
        """
        let mqtt = mqttSection ?? "mqtt: {host: 127.0.0.1, port: \(broker.port), reconnect_delay_min: 1, reconnect_delay_max: 2\(mqttOptions)}"
        try """
        station: {id: \(Self.id), network_code: NET-TEST, outlet_code: OUT-1}
        cabinet: {host: 127.0.0.1, port: \(sim.modbusPort!), fast_interval: 0.2, watchdog_interval: 1, detail_interval: 1, response_timeout: 0.5}
        \(mqtt)
        store: {path: \(storeDirectory.map { $0 + "/station.sqlite" } ?? dir.path("station.sqlite"))}
        publishing: \(publishing)
        \(absSection)
        log_level: debug
        \(local)
        \(extraConfig)
        """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    var storePath: String { storeDirectory.map { $0 + "/station.sqlite" } ?? dir.path("station.sqlite") }
    let storeDirectory: String?

    @discardableResult
    func startGateway() throws -> ManagedProcess {
        let g = try ManagedProcess(try productPath("swapgate"), ["run", "-c", configPath], name: "swapgate")
        gateway = g
        // Ready: subscribed to commands, cabinet read, any interrupted swap reconciled.
        try g.waitForOutput(timeout: 60) { $0.contains("accepting commands") }
        return g
    }

    func subscriber(extra: [String] = []) throws -> MosquittoSubscriber {
        try broker.startSubscriber(topics: ["dt/V01/BSS/\(Self.id)/#"], qos: 1, extraArguments: extra)
    }

    func control(_ json: [String: Any]) throws { _ = try sim.control(json) }

    /// Runs swapctl against this station's daemon.
    @discardableResult
    func swapctl(_ arguments: [String], socket: Bool = true) throws -> (status: Int32, output: String) {
        try runCommand(try productPath("swapctl"), arguments + (socket ? ["--socket", controlSocket] : []), timeout: 60)
    }

    /// Runs swapctl and decodes its `--json` output.
    func swapctlJSON(_ arguments: [String]) throws -> Any {
        let r = try swapctl(arguments + ["--json"])
        guard r.status == 0 else { throw TestSupportError.processFailed("swapctl \(arguments): \(r.status) \(r.output)") }
        return try JSONSerialization.jsonObject(with: Data(r.output.utf8))
    }

    func stop() {
        gateway?.stop()
        _ = sim.stop()
        broker.stop()
        dir.remove()
    }
}

/// One event as the outside subscriber saw it.
struct SeenEvent {
    let seq: Int
    let eventID: String
    let type: String
    let data: [String: Any]
    let topic: String
    func bool(_ key: String) -> Bool? { (data[key] as? NSNumber)?.boolValue }
    func int(_ key: String) -> Int? { (data[key] as? NSNumber)?.intValue }
    func double(_ key: String) -> Double? { (data[key] as? NSNumber)?.doubleValue }
    func string(_ key: String) -> String? { data[key] as? String }
    func object(_ key: String) -> [String: Any]? { data[key] as? [String: Any] }
}

func events(in lines: [String]) -> [SeenEvent] {
    lines.compactMap { line -> SeenEvent? in
        guard let space = line.firstIndex(of: " ") else { return nil }
        let topic = String(line[..<space])
        guard topic.contains("/evt/"),
              let obj = try? JSONSerialization.jsonObject(with: Data(line[line.index(after: space)...].utf8)) as? [String: Any],
              let seq = obj["seq"] as? Int, let id = obj["event_id"] as? String, let type = obj["type"] as? String else { return nil }
        return SeenEvent(seq: seq, eventID: id, type: type, data: obj["data"] as? [String: Any] ?? [:], topic: topic)
    }
}

func payloads(in lines: [String], topicSuffix: String) -> [[String: Any]] {
    lines.compactMap { line in
        guard let space = line.firstIndex(of: " "), line[..<space].hasSuffix(topicSuffix) else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(line[line.index(after: space)...].utf8)) as? [String: Any]
    }
}

/// Checks the contract's delivery promise over everything a subscriber saw: every seq from 1 to the
/// highest, none missing; a seq seen twice always with the same event_id.
func expectGapFree(_ seen: [SeenEvent], sourceLocation: SourceLocation = #_sourceLocation) {
    var byseq: [Int: Set<String>] = [:]
    for e in seen { byseq[e.seq, default: []].insert(e.eventID) }
    let maxSeq = byseq.keys.max() ?? 0
    let missing = (1 ... max(1, maxSeq)).filter { byseq[$0] == nil }
    #expect(maxSeq > 0, sourceLocation: sourceLocation)
    #expect(missing.isEmpty, "missing seqs \(missing.prefix(20))", sourceLocation: sourceLocation)
    let conflicting = byseq.filter { $0.value.count > 1 }.keys.sorted()
    #expect(conflicting.isEmpty, "seqs with different event_ids: \(conflicting.prefix(20))", sourceLocation: sourceLocation)
    #expect(Set(seen.map(\.eventID)).count == byseq.count, "an event_id under two seqs", sourceLocation: sourceLocation)
}


/// The repository root (tools/ lives there).
let repoRoot: URL = {
    var url = URL(fileURLWithPath: #filePath)
    while url.pathComponents.count > 1 {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
    }
    return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
}()

/// Plays ABS: an Ed25519 key pair made by tools/abs_sign.py (an outside peer: Python's `cryptography`),
/// commands signed by it and published with mosquitto_pub.
struct ABS {
    let privateKey: String
    let publicKey: String
    let kid: String

    static func generate(kid: String = "test-1") throws -> ABS {
        let out = try runCommand("/usr/bin/python3", [repoRoot.appendingPathComponent("tools/abs_sign.py").path, "keygen"])
        let obj = try JSONSerialization.jsonObject(with: Data(out.output.utf8)) as! [String: String]
        return ABS(privateKey: obj["private_key"]!, publicKey: obj["public_key"]!, kid: kid)
    }

    /// The envelope for `json`, with request_id/issued_at/expires_at added where missing (valid 10 min).
    func envelope(_ json: [String: Any], stamp: Bool = true) throws -> String {
        let body = String(decoding: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), as: UTF8.self)
        var args = [repoRoot.appendingPathComponent("tools/abs_sign.py").path, "sign", "--key", privateKey, "--kid", kid]
        if stamp { args += ["--stamp", "600"] }
        let out = try runCommand("/usr/bin/python3", args, input: body)
        guard out.status == 0 else { throw TestSupportError.processFailed(out.output) }
        return out.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

extension Station {
    /// Sends a signed command and waits for its reply on …/reply (matched by request_id).
    @discardableResult
    func command(_ name: String, _ json: [String: Any], abs: ABS, subscriber: MosquittoSubscriber, timeout: Double = 20,
                 envelope: String? = nil, unverifiable: Bool = false) throws -> [String: Any] {
        // A refusal before the signature checks out echoes nothing of the payload (no request_id):
        // then the next reply is the one.
        let repliesBefore = payloads(in: subscriber.lines(), topicSuffix: "/reply").count
        var body = json
        let requestID = (json["request_id"] as? String) ?? "req-\(UUID().uuidString.prefix(12))"
        body["request_id"] = requestID
        let env = try envelope ?? abs.envelope(body)
        try broker.publish(topic: "cmd/V01/BSS/\(Station.id)/\(name)", message: env, qos: 1)
        var reply: [String: Any]?
        _ = eventually(timeout: timeout) {
            let all = payloads(in: subscriber.lines(), topicSuffix: "/reply")
            reply = unverifiable ? (all.count > repliesBefore ? all.last : nil) : all.last { $0["request_id"] as? String == requestID }
            return reply != nil
        }
        guard let reply else { throw TestSupportError.timeout("no reply to \(name) \(requestID); gateway log: \(gateway?.output().suffix(4000) ?? "")") }
        return reply
    }
}

/// Blocks the calling thread (tests drive real processes; the suite runs serialized).
func pause(_ seconds: Double) { usleep(useconds_t(seconds * 1_000_000)) }
