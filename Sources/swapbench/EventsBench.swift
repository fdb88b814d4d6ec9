import ArgumentParser
import CMosquitto
import Foundation
import GatewayCore
import Logging
import MQTTLink
import StationStore

/// Durable events per second from the event log to the broker, each acknowledged (PUBACK) and marked
/// sent in SQLite, versus a bare libmosquitto QoS 1 loop with the same window against the same broker. Raw, adapter
/// and gateway run in turn in each round; the ratios reported are medians of the per-round ratios. Against the
/// benchmark's tuned broker and against mosquitto at its default settings (max_inflight_messages 20,
/// max_queued_messages 1000, Nagle on).
struct EventsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Event log → broker vs raw libmosquitto QoS 1.")
    @Option var events = 20_000
    @Option(help: "Alternating rounds (raw, adapter, gateway); medians are reported.") var rounds = 3
    @Option(help: "Messages in flight (the gateway's default publishing.window is 100); 0: run 20 and 100.") var window = 0
    @Option(help: "tuned (the benchmark's mosquitto settings), default (mosquitto as installed) or both.") var broker = "both"

    func run() async throws {
        if broker == "both" {
            for kind in ["tuned", "default"] { var b = self; b.broker = kind; try await b.run() }
            return
        }
        guard broker == "tuned" || broker == "default" else { throw ValidationError("--broker: tuned, default or both") }
        if window == 0 {
            for w in [20, 100] { var b = self; b.window = w; try await b.run() }
            return
        }
        let broker = try BenchBroker(defaults: self.broker == "default")
        defer { broker.stop() }
        // Alternating rounds, medians reported: one loopback run swings ±30 % on a shared 2-core machine.
        var raws: [Double] = [], links: [Double] = [], gws: [Double] = []
        for _ in 0 ..< rounds {
            let (raw, link, gw) = try await round(port: broker.port)
            raws.append(raw); links.append(link); gws.append(gw)
        }
        let raw = median(raws), link = median(links), gw = median(gws)
        let linkRatios = zip(links, raws).map { $0 / $1 }, gwRatios = zip(gws, raws).map { $0 / $1 }
        func list(_ xs: [Double]) -> String { xs.map { String(format: "%.0f", $0) }.joined(separator: ", ") }
        let settings = self.broker == "default" ? "mosquitto at its default settings" : "tuned mosquitto (max_inflight_messages 0, max_queued_messages 100000, nodelay)"
        report("events: durable event log → broker, QoS 1, PUBACK each, window \(window), \(events) events, \(settings), median of \(rounds) rounds", [
            ("raw libmosquitto loop", String(format: "%.0f msgs/s  (%@)", raw, list(raws))),
            ("MQTTLink alone (no store)", String(format: "%.0f msgs/s  (%.2f× raw, median of per-round ratios)", link, median(linkRatios))),
            ("gateway event log", String(format: "%.0f events/s  (%@; read from SQLite, published, marked sent)", gw, list(gws))),
            ("ratio gateway/raw", String(format: "%.2f× median of per-round ratios (%@) (target ≥ 0.5×)", median(gwRatios), ratioList(gwRatios))),
        ])
    }

    func round(port: Int) async throws -> (Double, Double, Double) {
        let payload = [UInt8](repeating: 0x61, count: 200)
        let raw = try rawLoop(port: port, count: events, payload: payload)
        let link = try await linkLoop(port: port, count: events, payload: payload)

        // The gateway path: the store is filled first (not timed), then drained by the EventPublisher.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swapbench-store-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try StationStore(path: dir.appendingPathComponent("bench.sqlite").path)
        let data = Array(#"{"slot":4,"battery_id":"B45-000311","soc":98.7,"soh":91.2,"family":"MOBBAT-45AH"}"#.utf8)
        for chunk in stride(from: 0, to: events, by: 1000) {
            _ = try await store.appendEvents((chunk ..< min(events, chunk + 1000)).map { _ in
                NewEvent(type: "battery.inserted", timestamp: Date(), data: data)
            })
        }
        var conf = MQTTConfiguration(host: "127.0.0.1", port: port, clientID: "swapbench-gw")
        conf.cleanSession = true
        conf.maxInflight = window
        let client = try MQTTClient(configuration: conf)
        try client.start()
        while !client.isConnected { try await Task.sleep(for: .milliseconds(10)) }
        let publisher = EventPublisher(store: store, mqtt: client, topics: Topics(stationID: "BENCH-0001"), window: window,
                                       wake: Wakeup(), health: GatewayHealth(), logger: Logger(label: "bench"))
        let start = monotonic()
        while try await store.stats().unsent > 0 {
            let n = await publisher.drainOnce()
            if n == 0 { try await Task.sleep(for: .milliseconds(1)) }
        }
        let gw = Double(events) / (monotonic() - start)
        let unsent = try await store.stats().unsent
        client.stop()
        try await store.close()
        guard unsent == 0 else { throw BenchError("\(unsent) events left unsent") }
        return (raw, link, gw)
    }

    /// The adapter alone: MQTTClient.send/wait with the same window, no SQLite, no payload building.
    func linkLoop(port: Int, count: Int, payload: [UInt8]) async throws -> Double {
        var conf = MQTTConfiguration(host: "127.0.0.1", port: port, clientID: "swapbench-link")
        conf.cleanSession = true
        conf.maxInflight = window
        let client = try MQTTClient(configuration: conf)
        try client.start()
        defer { client.stop() }
        while !client.isConnected { try await Task.sleep(for: .milliseconds(10)) }
        let start = monotonic()
        var inflight: [MQTTDelivery] = []
        inflight.reserveCapacity(window)
        for _ in 0 ..< count {
            if inflight.count >= window { try await inflight.removeFirst().wait() }
            inflight.append(try client.send(topic: "bench/link", payload: payload, qos: 1, retain: false))
        }
        for d in inflight { try await d.wait() }
        return Double(count) / (monotonic() - start)
    }

    /// The baseline: one libmosquitto client, the network loop driven in this thread, `window` QoS 1
    /// messages in flight, counting PUBACKs.
    func rawLoop(port: Int, count: Int, payload: [UInt8]) throws -> Double {
        mosquitto_lib_init()
        let counter = AckCounter()
        let ud = Unmanaged.passRetained(counter)
        defer { ud.release() }
        guard let mosq = mosquitto_new("swapbench-raw", true, ud.toOpaque()) else { throw BenchError("mosquitto_new") }
        defer { mosquitto_destroy(mosq) }
        mosquitto_publish_callback_set(mosq, rawOnPublish)
        guard mosquitto_connect(mosq, "127.0.0.1", Int32(port), 30) == 0 else { throw BenchError("raw connect") }
        _ = mosquitto_loop(mosq, 100, 1)
        let start = monotonic()
        var published = 0
        while counter.acks < count {
            while published < count && published - counter.acks < window {
                let rc = payload.withUnsafeBytes { mosquitto_publish(mosq, nil, "bench/raw", Int32($0.count), $0.baseAddress, 1, false) }
                guard rc == 0 else { throw BenchError("raw publish rc \(rc)") }
                published += 1
            }
            _ = mosquitto_loop(mosq, 10, 1)
        }
        let rate = Double(count) / (monotonic() - start)
        mosquitto_disconnect(mosq)
        return rate
    }
}

/// Only touched by the thread that drives `mosquitto_loop` (the benchmark's own).
final class AckCounter: @unchecked Sendable {
    var acks = 0
}

private let rawOnPublish: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32) -> Void = { _, ud, _ in
    guard let ud else { return }
    Unmanaged<AckCounter>.fromOpaque(ud).takeUnretainedValue().acks += 1
}
