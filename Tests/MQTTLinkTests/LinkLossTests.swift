// The link dies: will, broker restarts, publishes in flight, stop().
import Foundation
import Testing
import TestSupport
@testable import MQTTLink

@Suite struct LinkLossTests {
    static func willConfiguration(port: Int, topic: String) -> MQTTConfiguration {
        var c = testConfiguration(port: port)
        c.will = MQTTWill(topic: topic, payload: bytes(#"{"online":false}"#), qos: 1, retain: false)
        return c
    }

    /// The connection carrying the will is held by a relay (the proxy) that dies hard, as the
    /// station's process or uplink would: no DISCONNECT reaches the broker, which publishes the will.
    @Test func willIsPublishedWhenTheLinkDiesWithoutDisconnect() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let outside = try await offPool { try broker.startSubscriber(topics: ["dt/+/status"]) }
        defer { outside.stop() }
        let proxy = try TCPProxy(targetPort: broker.port)
        defer { proxy.shutdown() }
        let client = try MQTTClient(configuration: Self.willConfiguration(port: proxy.port, topic: "dt/S1/status"))
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        try await events.waitForConnected()
        #expect(outside.lines().isEmpty)

        try await offPool { proxy.cutAll() }
        let lines = try await offPool { try outside.waitForLines(1) }
        #expect(lines == [#"dt/S1/status {"online":false}"#])
        // …and the client notices and comes back by itself.
        try await events.wait("disconnected") { $0.contains { if case .disconnected = $0 { true } else { false } } }
        try await events.waitForConnected(count: 2)
    }

    /// The same with a separate process holding a will connection, killed with SIGKILL
    /// (mosquitto_sub's own will): checks the broker set-up the test above relies on.
    @Test func brokerPublishesTheWillOfAKilledChildProcess() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let outside = try await offPool { try broker.startSubscriber(topics: ["dt/+/status"]) }
        defer { outside.stop() }
        let child = try await offPool {
            try ManagedProcess("mosquitto_sub", ["-h", "127.0.0.1", "-p", String(broker.port), "-i", "will-child",
                                                 "-t", "nothing/here", "--will-topic", "dt/child/status",
                                                 "--will-payload", "gone", "--will-qos", "1"])
        }
        try await offPool {
            guard eventually(timeout: 20, { broker.log().contains("as will-child") }) else {
                throw TestFailure("child never connected: \(broker.log().suffix(2000))")
            }
        }
        child.killHard()
        let lines = try await offPool { try outside.waitForLines(1) }
        #expect(lines == ["dt/child/status gone"])
    }

    @Test func cleanStopDoesNotPublishTheWill() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let outside = try await offPool { try broker.startSubscriber(topics: ["dt/+/status"]) }
        defer { outside.stop() }
        let config = Self.willConfiguration(port: broker.port, topic: "dt/S2/status")
        let client = try MQTTClient(configuration: config)
        let events = EventRecorder(client)
        try client.start()
        try await events.waitForConnected()
        client.stop()
        try await events.wait("the stop event") { $0.last == .disconnected(code: 0, reason: "stopped") }

        // Once the broker has seen the client leave, a marker on the will topic must be the
        // first and only message there.
        try await offPool {
            guard eventually(timeout: 20, { broker.log().contains("Client \(config.clientID) disconnected") }) else {
                throw TestFailure("broker never logged a clean disconnect: \(broker.log().suffix(2000))")
            }
            try broker.publish(topic: "dt/S2/status", message: "marker", qos: 1)
        }
        let lines = try await offPool { try outside.waitForLines(1) }
        #expect(lines == ["dt/S2/status marker"])
        #expect(!broker.log().contains("Client \(config.clientID) closed its connection"))
    }

    @Test func brokerRestartReconnectsAndRestoresThePersistentSession() async throws {
        let broker = try await startBroker(MosquittoBrokerOptions(persistence: true))
        defer { broker.stop() }
        let client = try MQTTClient(configuration: testConfiguration(port: broker.port))
        defer { client.stop() }
        let events = EventRecorder(client)
        let messages = MessageRecorder(client)
        try client.start()
        try await events.waitForConnected()
        #expect(events.all.first == .connected(sessionPresent: false))
        try client.subscribe("cmd/S3/#", qos: 1)
        try await waitForSubscription(client, "cmd/S3/#")
        try await client.publishOrFail(topic: "dt/S3/evt/a", payload: bytes("before"), qos: 1, retain: false)

        try await offPool { broker.stop() }  // SIGTERM: mosquitto saves sessions
        try await events.wait("disconnected") { $0.contains { if case .disconnected = $0 { true } else { false } } }
        #expect(client.isConnected == false)
        #expect(await publishOutcome(client, topic: "dt/S3/evt/b", payload: "offline", qos: 1) == .failed(.notConnected))

        try await offPool { try broker.restart() }
        try await events.waitForConnected(count: 2, timeout: 60)
        let connects = events.all.filter { if case .connected = $0 { true } else { false } }
        #expect(connects.last == .connected(sessionPresent: true))
        try await within(30, "publish after restart") {
            try await client.publishOrFail(topic: "dt/S3/evt/c", payload: bytes("after"), qos: 1, retain: false)
        }
        // The subscription lives in the restored session.
        try await offPool { try broker.publish(topic: "cmd/S3/ping", message: "hello again", qos: 1) }
        let got = try await messages.wait(topic: "cmd/S3/ping")
        #expect(got.first?.payload == bytes("hello again"))
    }

    @Test func brokerKilledAndRestartedWithoutPersistence() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let client = try MQTTClient(configuration: testConfiguration(port: broker.port))
        defer { client.stop() }
        let events = EventRecorder(client)
        let messages = MessageRecorder(client)
        try client.start()
        try await events.waitForConnected()
        try client.subscribe("cmd/S4/#", qos: 1)
        try await waitForSubscription(client, "cmd/S4/#")

        try await offPool { broker.kill() }
        try await events.wait("disconnected") { $0.contains { if case .disconnected = $0 { true } else { false } } }
        // Down for a while: attempts fail and are reported, the client keeps trying.
        try await events.wait("a failed attempt") { $0.contains { if case .connectFailed = $0 { true } else { false } } }
        try await offPool { try broker.restart() }
        try await events.waitForConnected(count: 2, timeout: 60)
        let connects = events.all.filter { if case .connected = $0 { true } else { false } }
        #expect(connects.last == .connected(sessionPresent: false))
        // No session on the new broker: the client subscribed again by itself.
        try await waitForSubscription(client, "cmd/S4/#")
        try await offPool { try broker.publish(topic: "cmd/S4/x", message: "resubscribed", qos: 1) }
        try await messages.wait(topic: "cmd/S4/x")
        try await client.publishOrFail(topic: "dt/S4/evt", payload: bytes("works"), qos: 1, retain: false)
    }

    /// PUBACKs are held back by the proxy, so the publishes are surely in flight when the
    /// broker dies; every one of them must fail with .connectionLost, none may hang.
    @Test func publishesInFlightFailWithConnectionLostWhenTheBrokerDies() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let proxy = try TCPProxy(targetPort: broker.port)
        defer { proxy.shutdown() }
        let client = try MQTTClient(configuration: testConfiguration(port: proxy.port))
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        try await events.waitForConnected()
        try await client.publishOrFail(topic: "dt/S5/evt", payload: bytes("acked"), qos: 1, retain: false)

        proxy.holdBrokerToClient()
        let count = 25
        let outcomes = Task {
            await withTaskGroup(of: PublishOutcome.self) { group in
                for i in 0..<count {
                    group.addTask { await publishOutcome(client, topic: "dt/S5/evt", payload: "p\(i)", qos: 1) }
                }
                return await group.reduce(into: [PublishOutcome]()) { $0.append($1) }
            }
        }
        let allPending = await eventuallyAsync(timeout: 30) { client.pendingPublishCount == count }
        #expect(allPending, "pending: \(client.pendingPublishCount)")

        try await offPool { broker.kill() }
        let results = try await within(60, "in-flight publishes") { await outcomes.value }
        #expect(results.count == count)
        #expect(results.allSatisfy { $0 == .failed(.connectionLost) }, "\(results)")
        #expect(client.pendingPublishCount == 0)
        try await events.wait("disconnected") { $0.contains { if case .disconnected = $0 { true } else { false } } }
    }

    @Test func stopFailsPendingPublishesWithShutdown() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let proxy = try TCPProxy(targetPort: broker.port)
        defer { proxy.shutdown() }
        let client = try MQTTClient(configuration: testConfiguration(port: proxy.port))
        let events = EventRecorder(client)
        try client.start()
        try await events.waitForConnected()
        proxy.holdBrokerToClient()
        let outcome = Task { await publishOutcome(client, topic: "dt/S6/evt", payload: "x", qos: 1) }
        let pending = await eventuallyAsync(timeout: 30) { client.pendingPublishCount == 1 }
        #expect(pending)
        client.stop()
        let result = try await within(30, "pending publish after stop") { await outcome.value }
        #expect(result == .failed(.shutdown))
    }

    @Test func cancellingAWaitingPublishDoesNotLeaveItPending() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let proxy = try TCPProxy(targetPort: broker.port)
        defer { proxy.shutdown() }
        let client = try MQTTClient(configuration: testConfiguration(port: proxy.port))
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        try await events.waitForConnected()
        proxy.holdBrokerToClient()
        let task = Task { await publishOutcome(client, topic: "dt/S7/evt", payload: "x", qos: 1) }
        let pending = await eventuallyAsync(timeout: 30) { client.pendingPublishCount == 1 }
        #expect(pending)
        task.cancel()
        let result = try await within(30, "cancelled publish") { await task.value }
        #expect(result == .otherError("CancellationError()"))
        #expect(client.pendingPublishCount == 0)
    }
}
