// Retain As Published, the MQTT 5 → 3.1.1 fallback, packet and payload limits, and the
// byte-bounded receive queue, against a real mosquitto with mosquitto_pub as the outside peer.
import Foundation
import Testing
import TestSupport
@testable import MQTTLink

@Suite struct RetainAndLimitsTests {
    func pub(_ broker: MosquittoBroker, _ arguments: [String], input: String? = nil) async throws {
        let r = try await offPool { try runCommand("mosquitto_pub", ["-h", "127.0.0.1", "-p", "\(broker.port)", "-q", "1"] + arguments, input: input) }
        #expect(r.status == 0, "\(r.output)")
    }

    @Test func retainAsPublishedKeepsTheFlagLiveAndInTheSessionWithMQTT5Only() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        for version in [MQTTProtocolVersion.v5, .v311] {
            var config = testConfiguration(port: broker.port)
            config.protocolVersion = version
            let client = try MQTTClient(configuration: config)
            let events = EventRecorder(client)
            let messages = MessageRecorder(client)
            try client.subscribe("cmd/\(version)/#", qos: 1, retainAsPublished: true)
            try client.start()
            try await events.waitForConnected()
            try await waitForSubscription(client, "cmd/\(version)/#")
            try await pub(broker, ["-t", "cmd/\(version)/live", "-m", "retained-live", "-r"])
            let live = try await messages.wait(topic: "cmd/\(version)/live")
            // MQTT 5 keeps the flag on live delivery; 3.1.1 clears it (the documented limit).
            #expect(live.first?.retain == (version == .v5), "\(version)")
            #expect(client.protocolInUse == version)
            client.stop()

            // Offline: a retained publish is queued in the persistent session, then the retained store is cleared.
            try await pub(broker, ["-t", "cmd/\(version)/offline", "-m", "retained-offline", "-r"])
            try await pub(broker, ["-t", "cmd/\(version)/offline", "-r", "-n"])
            let again = try MQTTClient(configuration: config)
            defer { again.stop() }
            let events2 = EventRecorder(again)
            let messages2 = MessageRecorder(again)
            try again.subscribe("cmd/\(version)/#", qos: 1, retainAsPublished: true)
            try again.start()
            try await events2.waitForConnected()
            let queued = try await messages2.wait(topic: "cmd/\(version)/offline", count: 2)
            #expect(queued.first?.payload == bytes("retained-offline"))
            #expect(queued.first?.retain == (version == .v5), "\(version)")
            #expect(events2.all.first == .connected(sessionPresent: true))
        }
    }

    /// A front that speaks only 3.1.1: refuses an MQTT 5 CONNECT with a 3.1.1 CONNACK "unacceptable protocol
    /// version" (as a 3.1.1 broker does), and passes any other connection through to the real broker.
    static let v311OnlyFront = #"""
    import socket, sys, threading
    target = int(sys.argv[1])
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0)); srv.listen(16)
    print(srv.getsockname()[1], flush=True)
    def pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d: break
                b.sendall(d)
        except OSError: pass
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
    def serve(c):
        head = b""
        while len(head) < 12:
            d = c.recv(64)
            if not d: c.close(); return
            head += d
        # fixed header (1 byte + 1..4 bytes length), then 00 04 'MQTT' and the protocol level
        i = 1
        while head[i] & 0x80: i += 1
        level = head[i + 1 + 6]
        if level == 5:
            sys.stdout.write("refused 5\n"); sys.stdout.flush()
            c.sendall(bytes([0x20, 0x02, 0x00, 0x01])); c.close(); return
        u = socket.create_connection(("127.0.0.1", target)); u.sendall(head)
        threading.Thread(target=pump, args=(c, u), daemon=True).start()
        threading.Thread(target=pump, args=(u, c), daemon=True).start()
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    """#

    @Test func autoUsesMQTT5AndFallsBackTo311WhenTheBrokerRefusesIt() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        // A broker that offers 5: auto speaks 5.
        var direct = testConfiguration(port: broker.port)
        direct.protocolVersion = .auto
        let modern = try MQTTClient(configuration: direct)
        defer { modern.stop() }
        let e1 = EventRecorder(modern)
        try modern.start()
        try await e1.waitForConnected()
        #expect(modern.protocolInUse == .v5)

        // A 3.1.1-only front: refused once, then connected with 3.1.1, and messages flow.
        let dir = try TempDir("mqtt-front")
        defer { dir.remove() }
        try Self.v311OnlyFront.write(toFile: dir.path("front.py"), atomically: true, encoding: .utf8)
        let front = try ManagedProcess("/usr/bin/python3", ["-u", dir.path("front.py"), "\(broker.port)"], name: "front")
        defer { front.stop() }
        let portLine = try await offPool { try front.waitForOutput(timeout: 20) { $0.contains("\n") } }
        let frontPort = try #require(Int(portLine.split(separator: "\n").first ?? ""))
        var viaFront = testConfiguration(port: frontPort)
        viaFront.protocolVersion = .auto
        let old = try MQTTClient(configuration: viaFront)
        defer { old.stop() }
        let e2 = EventRecorder(old)
        let messages = MessageRecorder(old)
        try old.subscribe("cmd/front/#", qos: 1, retainAsPublished: true)
        try old.start()
        try await e2.waitForConnected()
        #expect(old.protocolInUse == .v311)
        #expect(e2.all.contains { if case let .connectFailed(code, _) = $0 { code == 0x84 } else { false } }, "\(e2.all)")
        #expect(front.output().contains("refused 5"))
        try await waitForSubscription(old, "cmd/front/#")
        try await pub(broker, ["-t", "cmd/front/x", "-m", "hello"])
        let got = try await messages.wait(topic: "cmd/front/x")
        #expect(got.first?.payload == bytes("hello"))

        // A client configured for 5 only does not fall back.
        var strict = testConfiguration(port: frontPort)
        strict.protocolVersion = .v5
        let five = try MQTTClient(configuration: strict)
        defer { five.stop() }
        let e3 = EventRecorder(five)
        try five.start()
        try await e3.wait("two refusals", { $0.filter { if case .connectFailed = $0 { true } else { false } }.count >= 2 })
        #expect(five.protocolInUse == .v5 && e3.connectedCount == 0)
    }

    @Test func oversizeMessagesAreRefusedByTheBrokerWithMQTT5AndCutShortByTheAdapterOtherwise() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let dir = try TempDir("mqtt-big")
        defer { dir.remove() }
        try String(repeating: "B", count: 20_000).write(toFile: dir.path("big"), atomically: true, encoding: .utf8)
        for version in [MQTTProtocolVersion.v5, .v311] {
            var config = testConfiguration(port: broker.port)
            config.protocolVersion = version
            config.maximumPacketSize = 10_000
            config.payloadLimits = [MQTTPayloadLimit(filter: "cmd/\(version)/small/#", maxBytes: 100)]
            let client = try MQTTClient(configuration: config)
            defer { client.stop() }
            let events = EventRecorder(client)
            let messages = MessageRecorder(client)
            try client.subscribe("cmd/\(version)/#", qos: 1)
            try client.start()
            try await events.waitForConnected()
            try await waitForSubscription(client, "cmd/\(version)/#")
            try await pub(broker, ["-t", "cmd/\(version)/big", "-f", dir.path("big")])
            try await pub(broker, ["-t", "cmd/\(version)/small/a", "-m", String(repeating: "s", count: 500)])
            try await pub(broker, ["-t", "cmd/\(version)/small/b", "-m", "fits"])
            try await pub(broker, ["-t", "cmd/\(version)/last", "-m", "end"])
            _ = try await messages.wait(topic: "cmd/\(version)/last")
            let big = messages.messages(on: "cmd/\(version)/big")
            if version == .v5 {
                #expect(big.isEmpty, "the broker sent a packet over the announced Maximum Packet Size")
            } else {
                #expect(big.count == 1 && big.first?.discarded == .oversize(limit: 10_000) && big.first?.payload.isEmpty == true
                        && big.first?.size == 20_000, "\(big.map { ($0.discarded, $0.size) })")
            }
            let a = messages.messages(on: "cmd/\(version)/small/a")
            #expect(a.count == 1 && a.first?.discarded == .oversize(limit: 100) && a.first?.size == 500 && a.first?.payload.isEmpty == true)
            #expect(messages.messages(on: "cmd/\(version)/small/b").first?.payload == bytes("fits"))
        }
    }

    @Test func aFullReceiveQueueDeliversStandInsAndLosesNothing() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        var config = testConfiguration(port: broker.port)
        config.maxQueuedBytes = 1_000
        let client = try MQTTClient(configuration: config)
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.subscribe("cmd/q/#", qos: 1)
        try client.start()
        try await events.waitForConnected()
        try await waitForSubscription(client, "cmd/q/#")
        // Nobody reads yet: the first fits, the next ones do not (600 + 600 > 1000).
        let lines = (1 ... 5).map { "\($0)" + String(repeating: "x", count: 599) }.joined(separator: "\n") + "\n"
        try await pub(broker, ["-t", "cmd/q/m", "-l"], input: lines)
        try await pub(broker, ["-t", "cmd/q/end", "-m", "e"])
        #expect(try await eventuallyAsync(timeout: 20) { client.queuedBytes >= 600 })
        let messages = MessageRecorder(client)
        _ = try await messages.wait(topic: "cmd/q/end")
        let got = messages.messages(on: "cmd/q/m")
        #expect(got.count == 5, "\(got.count)")
        #expect(got.first?.payload.count == 600 && got.first?.discarded == nil)
        #expect(got.dropFirst().allSatisfy { $0.discarded == .queueFull(limit: 1_000) && $0.payload.isEmpty && $0.size == 600 },
                "\(got.map { ($0.discarded, $0.size) })")
        #expect(client.queuedBytes == 0)
    }
}
