// Publishing and receiving against a real mosquitto, with mosquitto_pub/mosquitto_sub as
// outside peers.
import Foundation
import Testing
import TestSupport
@testable import MQTTLink

@Suite struct PublishSubscribeTests {
    @Test func qos0AndQos1ReachOwnSubscriptionAndMosquittoSub() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let outside = try await offPool { try broker.startSubscriber(topics: ["dt/#"], qos: 1) }
        defer { outside.stop() }
        let client = try MQTTClient(configuration: testConfiguration(port: broker.port))
        defer { client.stop() }
        let events = EventRecorder(client)
        let messages = MessageRecorder(client)
        try client.start()
        try await events.waitForConnected()
        try client.subscribe("dt/#", qos: 1)
        try await waitForSubscription(client, "dt/#")

        try await client.publishOrFail(topic: "dt/q0", payload: bytes("zero"), qos: 0, retain: false)
        try await client.publishOrFail(topic: "dt/q1", payload: bytes("one"), qos: 1, retain: false)

        let q0 = try await messages.wait(topic: "dt/q0")
        let q1 = try await messages.wait(topic: "dt/q1")
        #expect(q0.first?.payload == bytes("zero"))
        #expect(q0.first?.qos == 0)
        #expect(q1.first?.payload == bytes("one"))
        #expect(q1.first?.qos == 1)
        #expect(q1.first?.retain == false)
        #expect(q1.first?.responseTopic == nil && q1.first?.correlationData == nil)

        let lines = try await offPool { try outside.waitForLines(2) }
        #expect(Set(lines) == ["dt/q0 zero", "dt/q1 one"])
    }

    @Test func retainedPublishIsReadBackByAFreshSubscriber() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let client = try MQTTClient(configuration: testConfiguration(port: broker.port))
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        try await events.waitForConnected()
        try await client.publishOrFail(topic: "dt/V01/BSS/S1/status", payload: bytes(#"{"online":true}"#), qos: 1, retain: true)

        let lines = try await offPool { try broker.subscribe(topic: "dt/V01/BSS/S1/status", count: 1, timeout: 20) }
        #expect(lines == [#"dt/V01/BSS/S1/status {"online":true}"#])
    }

    @Test func messagesFromMosquittoPubArriveWithTopicPayloadQosAndRetain() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        // Retained before anyone subscribes: delivered with the retain flag on SUBSCRIBE.
        try await offPool { try broker.publish(topic: "cmd/S1/retained", message: "kept", qos: 1, retain: true) }

        let client = try MQTTClient(configuration: testConfiguration(port: broker.port))
        defer { client.stop() }
        let events = EventRecorder(client)
        let messages = MessageRecorder(client)
        try client.subscribe("cmd/S1/#", qos: 2)  // before start(): sent on connect
        #expect(client.isSubscriptionAcknowledged("cmd/S1/#") == false)
        try client.start()
        try await events.waitForConnected()
        try await waitForSubscription(client, "cmd/S1/#")

        let retained = try await messages.wait(topic: "cmd/S1/retained")
        #expect(retained.first?.payload == bytes("kept"))
        #expect(retained.first?.retain == true)
        #expect(retained.first?.qos == 1)

        try await offPool {
            try broker.publish(topic: "cmd/S1/q1", message: "swap please", qos: 1)
            try broker.publish(topic: "cmd/S1/q0", message: "ping", qos: 0)
            try broker.publish(topic: "cmd/S1/q2", message: "two", qos: 2)
        }
        let q1 = try await messages.wait(topic: "cmd/S1/q1")
        let q0 = try await messages.wait(topic: "cmd/S1/q0")
        let q2 = try await messages.wait(topic: "cmd/S1/q2")
        #expect(q1.first == MQTTMessage(topic: "cmd/S1/q1", payload: bytes("swap please"), qos: 1, retain: false))
        #expect(q0.first == MQTTMessage(topic: "cmd/S1/q0", payload: bytes("ping"), qos: 0, retain: false))
        #expect(q2.first == MQTTMessage(topic: "cmd/S1/q2", payload: bytes("two"), qos: 2, retain: false))
    }

    @Test func manyConcurrentQos1PublishesWithABoundedWindowAreAllAcked() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let outside = try await offPool { try broker.startSubscriber(topics: ["bulk/#"], qos: 1) }
        defer { outside.stop() }
        var config = testConfiguration(port: broker.port)
        config.maxInflight = 4
        let client = try MQTTClient(configuration: config)
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        try await events.waitForConnected()

        let total = 400
        let acked = try await within(120, "\(total) concurrent publishes") {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<total {
                    group.addTask {
                        try await client.publishOrFail(topic: "bulk/\(i % 7)", payload: bytes("m\(i)"), qos: 1, retain: false)
                        return 1
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        #expect(acked == total)
        #expect(client.pendingPublishCount == 0)
        let lines = try await offPool { try outside.waitForLines(total, timeout: 60) }
        #expect(Set(lines).count == total)
    }

    @Test func largePayloadRoundTrips() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let client = try MQTTClient(configuration: testConfiguration(port: broker.port))
        defer { client.stop() }
        let events = EventRecorder(client)
        let messages = MessageRecorder(client)
        try client.start()
        try await events.waitForConnected()
        try client.subscribe("big", qos: 1)
        try await waitForSubscription(client, "big")
        let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try await client.publishOrFail(topic: "big", payload: payload, qos: 1, retain: false)
        let got = try await messages.wait(topic: "big")
        #expect(got.first?.payload == payload)
    }
}
