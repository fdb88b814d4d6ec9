// The races around acknowledgements: a PUBACK that overtakes the publisher, and PUBACKs of
// messages libmosquitto re-sends after a reconnect although their publish already failed.
import Foundation
import Synchronization
import Testing
import TestSupport
@testable import MQTTLink

@Suite struct AckTrackingTests {
    /// The publisher is held back after handing the message over until the broker's PUBACK
    /// has certainly been processed: the ack must be kept for it, not lost (which would hang).
    @Test func pubackArrivingBeforeThePublisherRegistersIsNotLost() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let outside = try await offPool { try broker.startSubscriber(topics: ["race/#"]) }
        defer { outside.stop() }
        let client = try MQTTClient(configuration: testConfiguration(port: broker.port))
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        try await events.waitForConnected()

        // The outside subscriber seeing the message means the broker has processed it (and
        // sent its PUBACK before forwarding); give the ack a moment more to be read.
        let handedOff = Atomic<Int>(0)
        client.setAfterHandOffHook {
            let n = handedOff.add(1, ordering: .relaxed).newValue
            _ = try? outside.waitForLines(n, timeout: 20)
            usleep(200_000)
        }
        for i in 0..<3 {
            try await client.publishOrFail(topic: "race/\(i)", payload: bytes("r\(i)"), qos: 1, timeout: 30)
        }
        client.setAfterHandOffHook(nil)
        #expect(client.pendingPublishCount == 0)
        try await client.publishOrFail(topic: "race/after", payload: bytes("ok"), qos: 1)
    }

    /// libmosquitto keeps a QoS 1 message that was in flight when the link died and sends it
    /// again (DUP) after reconnecting, even though our publish already threw .connectionLost:
    /// the broker then sees it twice, and the stale PUBACK must not confuse later publishes.
    @Test func inFlightMessageIsResentByTheLibraryAfterReconnect() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let outside = try await offPool { try broker.startSubscriber(topics: ["resend/#"]) }
        defer { outside.stop() }
        let proxy = try TCPProxy(targetPort: broker.port)
        defer { proxy.shutdown() }
        let client = try MQTTClient(configuration: testConfiguration(port: proxy.port))
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        try await events.waitForConnected()

        proxy.holdBrokerToClient()
        let outcome = Task { await publishOutcome(client, topic: "resend/a", payload: "once", qos: 1) }
        try await offPool { try outside.waitForLines(1) }  // the broker has it; its PUBACK is held
        #expect(client.pendingPublishCount == 1)
        try await offPool { proxy.cutAll() }
        #expect(try await within(30, "publish after cut") { await outcome.value } == .failed(.connectionLost))

        proxy.releaseBrokerToClient()
        try await events.waitForConnected(count: 2, timeout: 60)
        let lines = try await offPool { try outside.waitForLines(2) }
        #expect(lines == ["resend/a once", "resend/a once"])

        for i in 0..<5 {
            try await client.publishOrFail(topic: "resend/b", payload: bytes("n\(i)"), qos: 1)
        }
        #expect(client.pendingPublishCount == 0)
        let all = try await offPool { try outside.waitForLines(7) }
        #expect(all.suffix(5) == (0..<5).map { "resend/b n\($0)" })
    }
}
