// Several broker addresses (a cluster's nodes), failover, and birth/death session numbers.
import Foundation
import Synchronization
import Testing
import TestSupport
@testable import MQTTLink

@Suite struct FailoverTests {
    /// Hands out 1, 2, 3 … and remembers what it gave (stands in for the daemon's store).
    final class SessionCounter: Sendable {
        let given = Mutex<[UInt64]>([])
        func next() -> UInt64 { given.withLock { g in g.append((g.last ?? 0) + 1); return g.last! } }
        var all: [UInt64] { given.withLock { $0 } }
    }

    final class Count: Sendable {
        let value: Mutex<Int>
        init(_ v: Int = 0) { value = Mutex(v) }
        func load() -> Int { value.withLock { $0 } }
        func store(_ v: Int) { value.withLock { $0 = v } }
        /// Subtracts one and returns the new value.
        func decrement() -> Int { value.withLock { $0 -= 1; return $0 } }
    }

    static func hooks(_ counter: SessionCounter, willTopic: String) -> MQTTSessionHooks {
        MQTTSessionHooks(nextSession: { counter.next() },
                         will: { n in MQTTWill(topic: willTopic, payload: bytes(#"{"online":false,"session":\#(n)}"#), qos: 1, retain: false) })
    }

    /// Publishes `count` QoS 1 messages one after the other (paced), as the durable event log does: a message whose
    /// publish fails (link lost, not connected) is published again once the link is back, and the next one
    /// only goes out after its predecessor was acknowledged.
    static func stream(_ client: MQTTClient, topic: String, count: Int, acked: Count) async throws {
        for i in 0..<count {
            var attempts = 0
            while true {
                do {
                    try await client.publishOrFail(topic: topic, payload: bytes("m\(i)"), qos: 1)
                    break
                } catch let error as MQTTError where error == .connectionLost || error == .notConnected {
                    attempts += 1
                    if attempts > 600 { throw TestFailure("message \(i) never acknowledged") }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            acked.store(i + 1)
            // Paced (about 200 a second at most) so that the node dies in the middle of the stream.
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    static func checkComplete(_ lines: [String], topic: String, count: Int) throws {
        let payloads = lines.filter { $0.hasPrefix(topic + " ") }.map { String($0.dropFirst(topic.count + 1)) }
        var firstSeen: [Int] = []
        var seen = Set<Int>()
        for p in payloads {
            guard p.hasPrefix("m"), let i = Int(p.dropFirst()) else { throw TestFailure("odd payload \(p)") }
            if seen.insert(i).inserted { firstSeen.append(i) }
        }
        #expect(firstSeen == Array(0..<count), "every message arrives, in order (duplicates of a re-sent one allowed)")
    }

    /// Three addresses of one broker (each behind its own relay, as the nodes of a cluster that share the
    /// session): the node the client is on dies during a stream of QoS 1 publishes, twice. The client moves
    /// to the next address each time, keeps its persistent session, every message arrives in order, the
    /// session number rises by one per connection, and the will of each dead connection carries its number.
    @Test func nodeDiesDuringAStreamAndTheClientMovesToTheNextAddress() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let nodes = try (0..<3).map { _ in try TCPProxy(targetPort: broker.port) }
        defer { nodes.forEach { $0.shutdown() } }
        let outside = try await offPool { try broker.startSubscriber(topics: ["t/#", "dt/S9/status"]) }
        defer { outside.stop() }

        var c = testConfiguration(port: 1)
        c.addresses = nodes.map { MQTTBrokerAddress(host: "127.0.0.1", port: $0.port) }
        c.maxInflight = 5
        let counter = SessionCounter()
        let client = try MQTTClient(configuration: c, sessions: Self.hooks(counter, willTopic: "dt/S9/status"))
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        try await events.waitForConnected()
        #expect(client.session == 1)
        #expect(client.broker == c.addresses[0])

        let count = 300
        let acked = Count()
        let publisher = Task { try await Self.stream(client, topic: "t/a", count: count, acked: acked) }
        for (round, killAt) in [(0, 60), (1, 180)] {
            let ok = await eventuallyAsync(timeout: 60) { acked.load() >= killAt }
            guard ok else { throw TestFailure("stream stalled at \(acked.load())") }
            try await offPool { nodes[round].die() }
            try await events.waitForConnected(count: round + 2, timeout: 60)
            #expect(client.broker == c.addresses[round + 1], "on the next address after node \(round) died")
            #expect(client.session == UInt64(round + 2), "one more session per connection")
        }
        try await publisher.value
        // The same broker behind every address: the persistent session was there each time.
        let connects = events.all.compactMap { if case .connected(let present) = $0 { present } else { nil } }
        #expect(connects == [false, true, true])
        #expect(counter.all == [1, 2, 3], "one number per connection attempt, no attempt failed")

        let done = await eventuallyAsync(timeout: 60) {
            let l = outside.lines()
            return l.contains("t/a m\(count - 1)") && l.filter { $0.hasPrefix("dt/S9/status ") }.count >= 2
        }
        let lines = outside.lines()
        if !done { throw TestFailure("not everything arrived: \(lines.suffix(5))") }
        try Self.checkComplete(lines, topic: "t/a", count: count)
        let wills = lines.filter { $0.hasPrefix("dt/S9/status ") }
        #expect(wills == [#"dt/S9/status {"online":false,"session":1}"#, #"dt/S9/status {"online":false,"session":2}"#],
                "each dead connection's will carries that connection's session number")
    }

    /// Three separate mosquitto processes as nodes; the one the client is on is killed with SIGKILL during a
    /// stream. The client moves to the next address (a failed attempt at a dead address moves on too), its
    /// session number rises by one per attempt, and every message is acknowledged by a broker: the ones the
    /// survivor acknowledged all reach its subscriber.
    @Test func brokerKilledDuringAStreamAndTheClientMovesToTheNextBroker() async throws {
        let a = try await startBroker(), b = try await startBroker(), cBroker = try await startBroker()
        defer { a.stop(); b.stop(); cBroker.stop() }
        let onB = try await offPool { try b.startSubscriber(topics: ["t/#"]) }
        defer { onB.stop() }
        var c = testConfiguration(port: 1)
        c.addresses = [a, b, cBroker].map { MQTTBrokerAddress(host: "127.0.0.1", port: $0.port) }
        let counter = SessionCounter()
        let client = try MQTTClient(configuration: c, sessions: Self.hooks(counter, willTopic: "dt/S8/status"))
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        try await events.waitForConnected()
        #expect(client.broker == c.addresses[0])

        let count = 200
        let acked = Count()
        let publisher = Task { try await Self.stream(client, topic: "t/b", count: count, acked: acked) }
        let ok = await eventuallyAsync(timeout: 60) { acked.load() >= 50 }
        guard ok else { throw TestFailure("stream stalled") }
        try await offPool { a.kill() }
        try await events.waitForConnected(count: 2, timeout: 60)
        let atFailover = acked.load()
        #expect(client.broker == c.addresses[1])
        #expect(client.session == 2)
        try await publisher.value
        // Everything from the first message B acknowledged on reached B's subscriber, in order.
        _ = await eventuallyAsync(timeout: 60) { onB.lines().contains("t/b m\(count - 1)") }
        let lines = onB.lines()
        let got = lines.compactMap { $0.hasPrefix("t/b m") ? Int($0.dropFirst(5)) : nil }
        guard let first = got.first else { throw TestFailure("nothing reached B") }
        #expect(first <= atFailover)
        var firstSeen: [Int] = []
        var seen = Set<Int>()
        for i in got where seen.insert(i).inserted { firstSeen.append(i) }
        #expect(firstSeen == Array(first..<count))
    }

    /// Without hooks the numbers still rise per connection (1, 2, …) within the process; a single address keeps working.
    @Test func sessionNumberRisesOnEveryReconnectToOneAddress() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        let proxy = try TCPProxy(targetPort: broker.port)
        defer { proxy.shutdown() }
        let client = try MQTTClient(configuration: testConfiguration(port: proxy.port))
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        for n in 1...3 {
            try await events.waitForConnected(count: n)
            #expect(client.session == UInt64(n))
            #expect(client.broker == MQTTBrokerAddress(host: "127.0.0.1", port: proxy.port))
            if n < 3 { try await offPool { proxy.cutAll() } }
        }
    }

    /// A hook that cannot give a number: no CONNECT goes out, the attempt is reported, and it is retried.
    @Test func noSessionNumberNoConnect() async throws {
        let broker = try await startBroker()
        defer { broker.stop() }
        struct DiskGone: Error {}
        let failFirst = Count(2)
        let hooks = MQTTSessionHooks(nextSession: {
            if failFirst.decrement() >= 0 { throw DiskGone() }
            return 41
        })
        let client = try MQTTClient(configuration: testConfiguration(port: broker.port), sessions: hooks)
        defer { client.stop() }
        let events = EventRecorder(client)
        try client.start()
        try await events.waitForConnected(timeout: 60)
        #expect(events.connectFailedCount == 2)
        #expect(client.session == 41)
    }

    @Test func addressParsing() {
        #expect(MQTTBrokerAddress(parsing: "broker-1.example.net:8883") == MQTTBrokerAddress(host: "broker-1.example.net", port: 8883))
        #expect(MQTTBrokerAddress(parsing: "[::1]:1883") == MQTTBrokerAddress(host: "::1", port: 1883))
        #expect(MQTTBrokerAddress(parsing: "[::1]:1883")?.description == "[::1]:1883")
        #expect(MQTTBrokerAddress(parsing: "10.0.0.7:1883")?.description == "10.0.0.7:1883")
        for bad in ["host", "host:", ":1883", "::1:1883", "[::1]", "[::1]1883", "h:0", "h:65536", "h:12x", "h :1", "[x]:1"] {
            #expect(MQTTBrokerAddress(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test func everyAddressIsValidated() {
        var c = MQTTConfiguration(addresses: [MQTTBrokerAddress(host: "127.0.0.1", port: 1883), MQTTBrokerAddress(host: "", port: 1883)],
                                  clientID: "x")
        #expect(throws: MQTTError.self) { _ = try MQTTClient(configuration: c) }
        c.addresses[1] = MQTTBrokerAddress(host: "127.0.0.2", port: 0)
        #expect(throws: MQTTError.self) { _ = try MQTTClient(configuration: c) }
        c.addresses[1].port = 1884
        #expect(throws: Never.self) { _ = try MQTTClient(configuration: c) }
        #expect(c.description.contains("127.0.0.1:1883 127.0.0.2:1884"))
    }
}
