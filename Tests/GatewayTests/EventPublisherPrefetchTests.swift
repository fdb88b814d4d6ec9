import Foundation
import GatewayCore
import Logging
import MQTTLink
import StationStore
import StationSupport
import Testing
import TestSupport

/// EventPublisher reads the next batch while the current one is in flight. Events written between passes (after that
/// read was taken) still all arrive, once each and in seq order, across several batch boundaries and a lost link.
@Suite(.serialized) struct EventPublisherPrefetchTests {
    @Test func eventsWrittenDuringADrainArriveOnceEachInOrder() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let sub = try broker.startSubscriber(topics: ["dt/V01/BSS/PF-1/evt/#"])
        defer { sub.stop() }
        let dir = try TempDir("prefetch"); defer { dir.remove() }
        let store = try StationStore(path: dir.path("station.sqlite"))
        func append(_ n: Int) async throws {
            _ = try await store.appendEvents((0 ..< n).map { i in
                NewEvent(type: "prefetch.test", timestamp: Date(), data: Array(#"{"i":\#(i)}"#.utf8))
            })
        }
        try await append(1200)
        var conf = MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "prefetch-test")
        conf.cleanSession = true
        conf.maxInflight = 20
        let client = try MQTTClient(configuration: conf)
        try client.start()
        defer { client.stop() }
        let deadline = Date().addingTimeInterval(30)
        while !client.isConnected && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        // window 20: batches of 500, so the 1800 events cross several batch boundaries.
        let publisher = EventPublisher(store: store, mqtt: client, topics: Topics(stationID: "PF-1"), window: 20,
                                       wake: Wakeup(), health: GatewayHealth(), logger: Logger(label: "prefetch-test"))
        var written = 1200
        var passes = 0
        while try await store.stats().unsent > 0 || written < 1800 {
            #expect(Date() < deadline, "the log did not drain")
            if Date() >= deadline { break }
            _ = await publisher.drainOnce()
            passes += 1
            // Written after the pass that started the next batch's read.
            if written < 1800 { try await append(100); written += 100 }
        }
        #expect(passes >= 4)
        let lines = try sub.waitForLines(1800, timeout: 30)
        let seqs = lines.compactMap { line -> Int? in
            guard let r = line.range(of: #""seq":"#) else { return nil }
            return Int(line[r.upperBound...].prefix { $0.isNumber })
        }
        #expect(seqs == Array(1 ... 1800))
        #expect(try await store.stats().unsent == 0)
        try await store.close()
    }
}
