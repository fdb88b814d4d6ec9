// Persistent sessions, TLS with client certificates, username/password, MQTT 5 properties.
import Foundation
import Testing
import TestSupport
@testable import MQTTLink

@Suite struct SessionTests {
    /// A QoS 1 command published while the station is offline is delivered when it comes back.
    @Test(arguments: [MQTTProtocolVersion.v311, .v5])
    func offlineQos1MessageIsDeliveredAfterReconnect(version: MQTTProtocolVersion) async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        var config = testConfiguration(port: broker.port, clientID: "station-\(version)-\(UUID().uuidString.prefix(6))")
        config.protocolVersion = version
        config.cleanSession = false

        do {
            let first = try MQTTClient(configuration: config)
            let events = EventRecorder(first)
            try first.start()
            try await events.waitForConnected()
            #expect(events.all.first == .connected(sessionPresent: false))
            try first.subscribe("cmd/S8/#", qos: 1)
            try await waitForSubscription(first, "cmd/S8/#")
            first.stop()
        }
        let clientID = config.clientID
        try await offPool {
            guard eventually(timeout: 20, { broker.log().contains("Client \(clientID) disconnected") }) else {
                throw TestFailure("broker never saw the client leave")
            }
            try broker.publish(topic: "cmd/S8/swap", message: "while you were away", qos: 1)
        }

        let second = try MQTTClient(configuration: config)
        defer { second.stop() }
        let events = EventRecorder(second)
        let messages = MessageRecorder(second)
        try second.start()
        try await events.waitForConnected()
        #expect(events.all.first == .connected(sessionPresent: true))
        let got = try await messages.wait(topic: "cmd/S8/swap")
        #expect(got.first?.payload == bytes("while you were away"))
        #expect(got.first?.qos == 1)
    }

    /// With a clean session nothing is kept: the first message after reconnecting is the
    /// marker published after the new subscription.
    @Test func cleanSessionDropsOfflineMessages() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        var config = testConfiguration(port: broker.port)
        config.cleanSession = true
        do {
            let first = try MQTTClient(configuration: config)
            let events = EventRecorder(first)
            try first.start()
            try await events.waitForConnected()
            try first.subscribe("cmd/S9/#", qos: 1)
            try await waitForSubscription(first, "cmd/S9/#")
            first.stop()
        }
        let clientID = config.clientID
        try await offPool {
            guard eventually(timeout: 20, { broker.log().contains("Client \(clientID) disconnected") }) else {
                throw TestFailure("broker never saw the client leave")
            }
            try broker.publish(topic: "cmd/S9/swap", message: "lost", qos: 1)
        }
        let second = try MQTTClient(configuration: config)
        defer { second.stop() }
        let events = EventRecorder(second)
        let messages = MessageRecorder(second)
        try second.start()
        try await events.waitForConnected()
        #expect(events.all.first == .connected(sessionPresent: false))
        try second.subscribe("cmd/S9/#", qos: 1)
        try await waitForSubscription(second, "cmd/S9/#")
        try await offPool { try broker.publish(topic: "cmd/S9/marker", message: "m", qos: 1) }
        try await messages.wait(topic: "cmd/S9/marker")
        #expect(messages.all.map(\.topic) == ["cmd/S9/marker"])
    }
}

@Suite struct TLSTests {
    @Test func clientCertificateIsRequired() async throws {
        let certs = try await offPool { try TestCertificates.generate() }
        defer { certs.remove() }
        let broker = try await startBroker(MosquittoBrokerOptions(tls: .init(certificates: certs, requireCertificate: true)))
        defer { broker.stop() }
        let tlsPort = try #require(broker.tlsPort)

        // Right client certificate: connects, publishes, receives.
        var good = testConfiguration(port: tlsPort)
        good.tls = MQTTTLSConfiguration(caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile)
        let client = try MQTTClient(configuration: good)
        defer { client.stop() }
        let events = EventRecorder(client)
        let messages = MessageRecorder(client)
        try client.start()
        try await events.waitForConnected()
        try client.subscribe("tls/echo", qos: 1)
        try await waitForSubscription(client, "tls/echo")
        try await client.publishOrFail(topic: "tls/echo", payload: bytes("over tls"), qos: 1, retain: false)
        try await messages.wait(topic: "tls/echo")

        // Same CA but no client certificate: every attempt fails, it never connects, and
        // the client keeps trying.
        var bad = testConfiguration(port: tlsPort)
        bad.tls = MQTTTLSConfiguration(caFile: certs.caFile)
        let refused = try MQTTClient(configuration: bad)
        defer { refused.stop() }
        let refusedEvents = EventRecorder(refused)
        try refused.start()
        try await refusedEvents.wait("two failed attempts") { events in
            events.filter { if case .connectFailed = $0 { true } else { false } }.count >= 2
        }
        #expect(refused.isConnected == false)
        #expect(refusedEvents.connectedCount == 0)
        await #expect(throws: MQTTError.notConnected) {
            try await refused.publish(topic: "tls/x", payload: [], qos: 1, retain: false)
        }
    }

    /// An encrypted client key cannot be used (no passphrase support): attempts fail and are
    /// reported, and OpenSSL never waits for a passphrase on a terminal.
    @Test func encryptedClientKeyFailsWithoutPrompting() async throws {
        let certs = try await offPool { try TestCertificates.generate() }
        defer { certs.remove() }
        let encryptedKey = certs.directory.path("client-encrypted.key")
        try await offPool {
            let r = try runCommand("openssl", ["pkey", "-in", certs.clientKeyFile, "-out", encryptedKey,
                                               "-aes256", "-passout", "pass:not-known-to-the-client"])
            guard r.status == 0 else { throw TestFailure("openssl pkey: \(r.output)") }
        }
        let broker = try await startBroker(MosquittoBrokerOptions(tls: .init(certificates: certs, requireCertificate: true)))
        defer { broker.stop() }
        var config = testConfiguration(port: try #require(broker.tlsPort))
        config.tls = MQTTTLSConfiguration(caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: encryptedKey)
        let client = try MQTTClient(configuration: config)
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        try await events.wait("two failed attempts") { events in
            events.filter { if case .connectFailed = $0 { true } else { false } }.count >= 2
        }
        #expect(events.connectedCount == 0)
    }

    @Test func serverCertificateFromAnotherCAIsRejected() async throws {
        let certs = try await offPool { try TestCertificates.generate() }
        defer { certs.remove() }
        let otherCA = try await offPool { try TestCertificates.generate() }
        defer { otherCA.remove() }
        let broker = try await startBroker(MosquittoBrokerOptions(tls: .init(certificates: certs, requireCertificate: false)))
        defer { broker.stop() }
        var config = testConfiguration(port: try #require(broker.tlsPort))
        config.tls = MQTTTLSConfiguration(caFile: otherCA.caFile)
        let client = try MQTTClient(configuration: config)
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        try await events.wait("a failed attempt") { $0.contains { if case .connectFailed = $0 { true } else { false } } }
        #expect(events.connectedCount == 0)

        // insecureSkipVerify accepts it (development only).
        config.clientID += "-insecure"
        config.tls = MQTTTLSConfiguration(caFile: otherCA.caFile, insecureSkipVerify: true)
        let insecure = try MQTTClient(configuration: config)
        defer { insecure.stop() }
        let insecureEvents = EventRecorder(insecure)
        try insecure.start()
        try await insecureEvents.waitForConnected()

        // No CA file at all: the system trust store is used (TLS still on, so skipping the
        // verification is what lets it in).
        config.clientID += "-nocafile"
        config.tls = MQTTTLSConfiguration(insecureSkipVerify: true)
        let systemStore = try MQTTClient(configuration: config)
        defer { systemStore.stop() }
        let systemStoreEvents = EventRecorder(systemStore)
        try systemStore.start()
        try await systemStoreEvents.waitForConnected()
        try await systemStore.publishOrFail(topic: "tls/system-store", payload: bytes("x"), qos: 1)
    }
}

@Suite struct AuthenticationTests {
    static let secret = "Sw4p-s3cret-\(UUID().uuidString.prefix(6))"

    @Test func passwordFileAcceptsRightPasswordRefusesWrongOneAndNeverLeaksIt() async throws {
        let dir = try TempDir("swapgate-passwd")
        defer { dir.remove() }
        let passwordFile = dir.path("passwd")
        let secret = Self.secret
        try await offPool {
            let r = try runCommand("mosquitto_passwd", ["-b", "-c", passwordFile, "station", secret])
            guard r.status == 0 else { throw TestFailure("mosquitto_passwd: \(r.output)") }
        }
        let broker = try await startBroker(MosquittoBrokerOptions(passwordFile: passwordFile,
                                                                  helperUsername: "station", helperPassword: secret))
        defer { broker.stop() }

        var good = testConfiguration(port: broker.port)
        good.username = "station"
        good.password = secret
        let client = try MQTTClient(configuration: good)
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        try await events.waitForConnected()
        try await client.publishOrFail(topic: "dt/auth", payload: bytes("ok"), qos: 1, retain: true)
        let lines = try await offPool { try broker.subscribe(topic: "dt/auth", count: 1) }
        #expect(lines == ["dt/auth ok"])

        let wrongPassword = secret + "-wrong"
        for version in [MQTTProtocolVersion.v311, .v5] {
            var bad = testConfiguration(port: broker.port)
            bad.protocolVersion = version
            bad.username = "station"
            bad.password = wrongPassword
            let refused = try MQTTClient(configuration: bad)
            defer { refused.stop() }
            let refusedEvents = EventRecorder(refused)
            try refused.start()
            try await refusedEvents.wait("two refusals") { events in
                events.filter { if case .connectFailed = $0 { true } else { false } }.count >= 2
            }
            #expect(refusedEvents.connectedCount == 0)
            #expect(refused.isConnected == false)
            let first = refusedEvents.all.first
            // CONNACK refusal: 5 "not authorised" (3.1.1), 0x87/0x86 (MQTT 5).
            if case .connectFailed(let code, _) = first {
                #expect(version == .v311 ? code == 5 : (code == 0x87 || code == 0x86), "\(String(describing: first))")
            } else {
                Issue.record("first event \(String(describing: first))")
            }
            var texts = refusedEvents.all.map { "\($0)" } + refusedEvents.all.map { String(reflecting: $0) }
            do {
                try await refused.publish(topic: "dt/x", payload: [], qos: 1, retain: false)
            } catch {
                texts += ["\(error)", String(reflecting: error), error.localizedDescription]
            }
            texts += [bad.description, String(reflecting: bad), "\(bad)"]
            for text in texts {
                #expect(!text.contains(wrongPassword) && !text.contains(secret), "\(text)")
            }
        }
        #expect(!String(reflecting: good).contains(secret))
    }
}

@Suite struct MQTT5Tests {
    @Test func responseTopicAndCorrelationDataRoundTrip() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        var stationConfig = testConfiguration(port: broker.port, clientID: "station-v5")
        stationConfig.protocolVersion = .v5
        var absConfig = testConfiguration(port: broker.port, clientID: "abs-v5")
        absConfig.protocolVersion = .v5

        let station = try MQTTClient(configuration: stationConfig)
        defer { station.stop() }
        let abs = try MQTTClient(configuration: absConfig)
        defer { abs.stop() }
        let stationEvents = EventRecorder(station), absEvents = EventRecorder(abs)
        let stationInbox = MessageRecorder(station), absInbox = MessageRecorder(abs)
        try station.start()
        try abs.start()
        try await stationEvents.waitForConnected()
        try await absEvents.waitForConnected()
        try station.subscribe("cmd/S10/+", qos: 1)
        try abs.subscribe("abs/replies/#", qos: 1)
        try await waitForSubscription(station, "cmd/S10/+")
        try await waitForSubscription(abs, "abs/replies/#")

        // ABS sends a command with a response topic and correlation data…
        let correlation: [UInt8] = [0, 1, 2, 0xFE, 0xFF, 0x80]
        try await abs.publishOrFail(topic: "cmd/S10/ping", payload: bytes(#"{"request_id":"r-1"}"#), qos: 1, retain: false,
                              properties: MQTTPublishProperties(responseTopic: "abs/replies/r-1", correlationData: correlation))
        let command = try #require(try await stationInbox.wait(topic: "cmd/S10/ping").first)
        #expect(command.responseTopic == "abs/replies/r-1")
        #expect(command.correlationData == correlation)

        // …and the station answers there with the same correlation data.
        let replyTopic = try #require(command.responseTopic)
        try await station.publishOrFail(topic: replyTopic, payload: bytes(#"{"ok":true}"#), qos: 1, retain: false,
                                  properties: MQTTPublishProperties(correlationData: command.correlationData))
        let reply = try #require(try await absInbox.wait(topic: "abs/replies/r-1").first)
        #expect(reply.correlationData == correlation)
        #expect(reply.responseTopic == nil)
        #expect(reply.payload == bytes(#"{"ok":true}"#))
    }

    @Test func propertiesAreIgnoredWithMQTT311() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        var receiverConfig = testConfiguration(port: broker.port)
        receiverConfig.protocolVersion = .v5
        let receiver = try MQTTClient(configuration: receiverConfig)
        defer { receiver.stop() }
        let sender = try MQTTClient(configuration: testConfiguration(port: broker.port))  // 3.1.1
        defer { sender.stop() }
        let receiverEvents = EventRecorder(receiver), senderEvents = EventRecorder(sender)
        let inbox = MessageRecorder(receiver)
        try receiver.start()
        try sender.start()
        try await receiverEvents.waitForConnected()
        try await senderEvents.waitForConnected()
        try receiver.subscribe("v3/x", qos: 1)
        try await waitForSubscription(receiver, "v3/x")
        try await sender.publishOrFail(topic: "v3/x", payload: bytes("plain"), qos: 1, retain: false,
                                 properties: MQTTPublishProperties(responseTopic: "r", correlationData: [1]))
        let got = try #require(try await inbox.wait(topic: "v3/x").first)
        #expect(got.responseTopic == nil && got.correlationData == nil)
    }
}
