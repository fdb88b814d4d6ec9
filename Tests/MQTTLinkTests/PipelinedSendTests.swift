import Foundation
import Testing
import TestSupport
@testable import MQTTLink

/// `send` queues in call order and returns before the PUBACK: the event log keeps a window in flight
/// and still needs the broker to see its events in seq order.
@Suite(.serialized) struct PipelinedSendTests {
    @Test func sendKeepsOrderWithAWindowInFlightAndEveryAckArrives() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let outside = try await offPool { try broker.startSubscriber(topics: ["ordered/#"], qos: 1) }
        defer { outside.stop() }
        var config = testConfiguration(port: broker.port)
        config.maxInflight = 20
        let client = try MQTTClient(configuration: config)
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        try await events.waitForConnected()

        let total = 300, window = 20
        var inflight: [MQTTDelivery] = []
        var acked = 0
        for i in 0 ..< total {
            if inflight.count == window {
                try await inflight.removeFirst().wait()
                acked += 1
            }
            inflight.append(try client.send(topic: "ordered/e", payload: bytes("\(i)"), qos: 1, retain: false))
        }
        for d in inflight { try await d.wait(); acked += 1 }
        #expect(acked == total)
        #expect(client.pendingPublishCount == 0)
        let lines = try await offPool { try outside.waitForLines(total, timeout: 60) }
        #expect(lines.map { Int($0.split(separator: " ")[1])! } == Array(0 ..< total))   // in order, none missing
    }

    @Test func sendWhileOfflineQueuesNothing() async throws {
        let broker = try await startBroker()
        let client = try MQTTClient(configuration: testConfiguration(port: broker.port))
        defer { client.stop() }
        #expect(throws: MQTTError.notConnected) { _ = try client.send(topic: "x/y", payload: [1], qos: 1, retain: false) }
        broker.stop()
    }
}
