// Validation, redaction and lifecycle rules that need no broker.
import Foundation
import Testing
@testable import MQTTLink

@Suite struct ConfigurationTests {
    func base() -> MQTTConfiguration { MQTTConfiguration(host: "127.0.0.1", port: 1883, clientID: "station-1") }

    @Test func defaultsMatchTheContract() {
        let c = base()
        #expect(c.cleanSession == false)
        #expect(c.keepAliveSeconds == 30)
        #expect(c.protocolVersion == .v311)
        #expect(c.maxInflight == 20)
        #expect(c.reconnectDelayMin == 1)
        #expect(c.reconnectDelayMax == 30)
        #expect(c.tls == nil && c.will == nil && c.username == nil && c.password == nil)
    }

    @Test func invalidConfigurationsAreRefused() {
        var configs: [MQTTConfiguration] = []
        var c = base(); c.host = ""; configs.append(c)
        c = base(); c.port = 0; configs.append(c)
        c = base(); c.port = 70000; configs.append(c)
        c = base(); c.clientID = ""; configs.append(c)
        c = base(); c.keepAliveSeconds = 2; configs.append(c)
        c = base(); c.maxInflight = 0; configs.append(c)
        c = base(); c.reconnectDelayMin = 0; configs.append(c)
        c = base(); c.reconnectDelayMin = 10; c.reconnectDelayMax = 5; configs.append(c)
        c = base(); c.password = "secret-without-user"; configs.append(c)
        c = base(); c.will = MQTTWill(topic: "dt/+/status", payload: [], qos: 1, retain: true); configs.append(c)
        c = base(); c.will = MQTTWill(topic: "dt/x/status", payload: [], qos: 3, retain: true); configs.append(c)
        c = base(); c.tls = MQTTTLSConfiguration(caFile: "/nonexistent/ca.crt"); configs.append(c)
        c = base(); c.tls = MQTTTLSConfiguration(certFile: "/tmp/c.crt"); configs.append(c)
        for config in configs {
            #expect(throws: MQTTError.self, "\(config)") { _ = try MQTTClient(configuration: config) }
        }
        #expect(throws: Never.self) { _ = try MQTTClient(configuration: base()) }
    }

    @Test func passwordNeverAppearsInDescriptions() throws {
        let secret = "Pa55-w0rd-that-must-not-leak"
        var c = base()
        c.username = "station"
        c.password = secret
        let texts = [c.description, c.debugDescription, String(describing: c), String(reflecting: c),
                     "\(c)", { var s = ""; dump(c, to: &s); return s }()]
        for text in texts {
            #expect(!text.contains(secret), "\(text)")
        }
        #expect(c.description.contains("station"))
        #expect(c.description.contains("<redacted>"))

        // A configuration error mentioning the password field does not echo its value.
        var bad = c
        bad.username = nil
        do {
            _ = try MQTTClient(configuration: bad)
            Issue.record("password without username was accepted")
        } catch {
            #expect(!"\(error)".contains(secret))
            #expect(!String(reflecting: error).contains(secret))
        }
    }

    @Test func lifecycleWithoutBroker() async throws {
        let client = try MQTTClient(configuration: base())
        #expect(client.isConnected == false)
        // Not started: offline, so nothing is handed to the library.
        await #expect(throws: MQTTError.notConnected) {
            try await client.publishOrFail(topic: "dt/x", payload: [1], qos: 1, retain: false)
        }
        #expect(throws: MQTTError.invalidTopic("a/#/b")) { try client.subscribe("a/#/b", qos: 1) }
        await #expect(throws: MQTTError.invalidTopic("a/+")) {
            try await client.publishOrFail(topic: "a/+", payload: [], qos: 0, retain: false)
        }
        try client.subscribe("cmd/#", qos: 1)  // remembered while offline
        client.stop()
        client.stop()  // idempotent
        #expect(throws: MQTTError.shutdown) { try client.start() }
        await #expect(throws: MQTTError.shutdown) {
            try await client.publishOrFail(topic: "dt/x", payload: [1], qos: 1, retain: false)
        }
        #expect(throws: MQTTError.shutdown) { try client.subscribe("cmd/#", qos: 1) }
        // Both streams are finished.
        var events = client.connectionEvents.makeAsyncIterator()
        #expect(await events.next() == nil)
        var messages = client.messages.makeAsyncIterator()
        #expect(await messages.next() == nil)
    }

    @Test func errorDescriptionsAreReadable() {
        #expect(MQTTError.notConnected.description.contains("not connected"))
        #expect(MQTTError.library(code: 14, message: "Connection refused").description == "MQTT error 14: Connection refused")
        #expect(MQTTError.invalidTopic("a/#/b").description.contains("a/#/b"))
    }
}
