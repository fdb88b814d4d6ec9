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

    init(slots: Int = 8, brokerOptions: MosquittoBrokerOptions = MosquittoBrokerOptions(persistence: true),
         simArguments: [String] = [], extraConfig: String = "", mqttSection: String? = nil) throws {
        dir = try TempDir("swapgate-e2e")
        broker = try MosquittoBroker(options: brokerOptions)
        sim = try SimulatorProcess(["--slots", "\(slots)", "--port", "0", "--control-port", "0"] + simArguments)
        configPath = dir.path("swapgate.yaml")
        self.extraConfig = extraConfig
        let mqtt = mqttSection ?? "mqtt: {host: 127.0.0.1, port: \(broker.port), reconnect_delay_min: 1, reconnect_delay_max: 2}"
        try """
        station: {id: \(Self.id), network_code: NET-TEST, outlet_code: OUT-1}
        cabinet: {host: 127.0.0.1, port: \(sim.modbusPort!), fast_interval: 0.2, watchdog_interval: 1, detail_interval: 1, response_timeout: 0.5}
        \(mqtt)
        store: {path: \(dir.path("station.sqlite"))}
        publishing: {telemetry_interval: 2, inventory_debounce: 0.2}
        abs: {allow_unsigned: true}
        log_level: debug
        \(extraConfig)
        """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    var storePath: String { dir.path("station.sqlite") }

    @discardableResult
    func startGateway() throws -> ManagedProcess {
        let g = try ManagedProcess(try productPath("swapgate"), ["run", "-c", configPath], name: "swapgate")
        gateway = g
        try g.waitForOutput(timeout: 30) { $0.contains("MQTT connected") || $0.contains("swapgate starting") }
        return g
    }

    func subscriber(extra: [String] = []) throws -> MosquittoSubscriber {
        try broker.startSubscriber(topics: ["dt/V01/BSS/\(Self.id)/#"], qos: 1, extraArguments: extra)
    }

    func control(_ json: [String: Any]) throws { _ = try sim.control(json) }

    func stop() {
        gateway?.stop()
        _ = sim.stop()
        broker.stop()
        dir.remove()
    }
}

/// One event as the outside subscriber saw it.
struct SeenEvent: Hashable {
    let seq: Int
    let eventID: String
    let type: String
    let data: [String: AnyHashable]
    let topic: String
    func bool(_ key: String) -> Bool? { (data[key]?.base as? NSNumber)?.boolValue }
    func int(_ key: String) -> Int? { (data[key]?.base as? NSNumber)?.intValue }
    func string(_ key: String) -> String? { data[key]?.base as? String }
}

func events(in lines: [String]) -> [SeenEvent] {
    lines.compactMap { line -> SeenEvent? in
        guard let space = line.firstIndex(of: " ") else { return nil }
        let topic = String(line[..<space])
        guard topic.contains("/evt/"),
              let obj = try? JSONSerialization.jsonObject(with: Data(line[line.index(after: space)...].utf8)) as? [String: Any],
              let seq = obj["seq"] as? Int, let id = obj["event_id"] as? String, let type = obj["type"] as? String else { return nil }
        let data = (obj["data"] as? [String: Any] ?? [:]).compactMapValues { $0 as? AnyHashable }
        return SeenEvent(seq: seq, eventID: id, type: type, data: data, topic: topic)
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
