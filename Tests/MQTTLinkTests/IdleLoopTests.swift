// The network thread blocks in mosquitto_loop until something happens (issue 13 item 4): an idle link must still
// send its keepalive pings on time, and a publish from another thread must still wake the loop.
import Foundation
import Testing
import TestSupport
@testable import MQTTLink

@Suite struct IdleLoopTests {
    /// Keepalive 5 s, nothing sent for more than three keepalives: the broker drops a client that sends nothing for
    /// 1.5 × keepalive, so the link survives only if the blocked loop wakes for each PINGREQ. Then a publish (from
    /// this task's thread) reaches the client's own subscription and an outside subscriber through the same loop.
    @Test func idleLinkKeepsItsPingsAndAPublishWakesTheLoop() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let outside = try await offPool { try broker.startSubscriber(topics: ["dt/#"], qos: 1) }
        defer { outside.stop() }
        var configuration = testConfiguration(port: broker.port)
        configuration.keepAliveSeconds = 5
        let client = try MQTTClient(configuration: configuration)
        defer { client.stop() }
        let events = EventRecorder(client)
        let messages = MessageRecorder(client)
        try client.start()
        try await events.waitForConnected()
        try client.subscribe("dt/#", qos: 1)
        try await waitForSubscription(client, "dt/#")

        try await Task.sleep(for: .seconds(17))
        let disconnects = events.all.filter { if case .disconnected = $0 { true } else { false } }
        #expect(disconnects.isEmpty, "\(events.all)")
        #expect(!broker.log().contains("exceeded timeout"), "\(broker.log().suffix(2000))")
        #expect(client.isConnected)

        try await client.publishOrFail(topic: "dt/after-idle", payload: bytes("awake"), qos: 1, retain: false)
        let got = try await messages.wait(topic: "dt/after-idle")
        #expect(got.first?.payload == bytes("awake"))
        let lines = try await offPool { try outside.waitForLines(1) }
        #expect(lines == ["dt/after-idle awake"])
    }
}
