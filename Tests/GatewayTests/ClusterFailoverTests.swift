import Foundation
import Testing
import TestSupport

/// A station on a real three-node RabbitMQ cluster (tools/broker-cluster.sh: MQTT plugin, quorum queues for
/// durable sessions). Needs Debian's rabbitmq-server and ~45 s (the cluster alone starts in 25–35 s here); runs
/// with SWAPGATE_CLUSTER_TESTS=1, which tools/test.sh sets by default (docs/fleet-broker.md has the measured times).
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["SWAPGATE_CLUSTER_TESTS"] == "1" && RabbitCluster.isInstalled,
                             "SWAPGATE_CLUSTER_TESTS=1 and rabbitmq-server installed"))
struct ClusterFailoverTests {
    /// Publishes a signed command to node `node` and waits for its reply at `consumer` (matched by request_id).
    static func command(_ cluster: RabbitCluster, node: Int, _ name: String, _ json: [String: Any], abs: ABS,
                        consumer: MosquittoSubscriber, wait: Bool = true, timeout: Double = 60) throws -> (id: String, reply: [String: Any]?) {
        var body = json
        let requestID = (json["request_id"] as? String) ?? "req-\(UUID().uuidString.prefix(12))"
        body["request_id"] = requestID
        try cluster.publish(node: node, topic: "cmd/V01/BSS/\(Station.id)/\(name)", message: try abs.envelope(body), qos: 1)
        guard wait else { return (requestID, nil) }
        var reply: [String: Any]?
        _ = eventually(timeout: timeout) {
            reply = payloads(in: consumer.lines(), topicSuffix: "/reply").last { $0["request_id"] as? String == requestID }
            return reply != nil
        }
        return (requestID, reply)
    }

    /// The node the station is connected to is killed (SIGKILL) during a stream of cabinet events, with a swap in
    /// progress and commands in flight: the station reconnects to the next node, every event arrives at a consumer
    /// on a surviving node (gap-free seq, no event_id twice with different content), every command is answered
    /// exactly once, the swap completes, and the status's session number rose by one. Then a will retained on one
    /// node after a newer birth on another is told apart by its session, and `rebirth` republishes the state.
    @Test func nodeDiesDuringEventsAndASwap() throws {
        let started = Date()
        let cluster = try RabbitCluster()
        defer { cluster.stop() }
        let abs = try ABS.generate()
        let hosts = cluster.mqttPorts.map { "\"127.0.0.1:\($0)\"" }.joined(separator: ", ")
        let st = try Station(slots: 8, extraConfig: "swaps: {return_timeout: 60, pickup_timeout: 60}",
                             mqttSection: "mqtt: {hosts: [\(hosts)], username: station, password: station-secret, protocol: \"3.1.1\", keepalive: 10, reconnect_delay_min: 1, reconnect_delay_max: 2}",
                             absSection: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        defer { st.stop() }
        try st.control(["cmd": "rider", "enabled": true, "delay": 2, "step_delay": 1,
                        "returns": [["id": "B45-RIDER-01", "family": 2, "soc": 10]]])
        // ABS's consumer, on node 3 (it survives), with a persistent session.
        let consumer = try cluster.startSubscriber(node: 2, topics: ["dt/V01/BSS/\(Station.id)/#"], extraArguments: ["-c", "-i", "abs-consumer"])
        defer { consumer.stop() }
        try st.startGateway()
        let statuses = { payloads(in: consumer.lines(), topicSuffix: "/status") }
        #expect(eventually(timeout: 60) { statuses().contains { ($0["online"] as? Bool) == true && ($0["session"] as? Int) == 1 } },
                "\(st.gateway?.output().suffix(3000) ?? "")")
        #expect(st.gateway?.output().contains("127.0.0.1:\(cluster.mqttPorts[0])") == true, "connected to the first address")

        var sent: [String] = []
        let snap = try Self.command(cluster, node: 2, "entitlements", ["kind": "snapshot", "version": 10,
                                                                          "entitlements": [SwapTests.entitlement(1, out: ["B45-RIDER-01"])]],
                                    abs: abs, consumer: consumer)
        sent.append(snap.id)
        #expect(snap.reply?["ok"] as? Bool == true, "\(String(describing: snap.reply))")
        let swap = try Self.command(cluster, node: 2, "swap", ["customer_id": "cust-1", "channel": "app"], abs: abs, consumer: consumer)
        sent.append(swap.id)
        #expect(swap.reply?["ok"] as? Bool == true, "\(String(describing: swap.reply))")
        let swapID = (swap.reply?["data"] as? [String: Any])?["swap_id"] as? String

        // A stream of cabinet events (a battery in and out of slot 8); node 1 dies in the middle of it, while the
        // swap is in progress; pings are published meanwhile (queued in the station's durable session).
        for i in 0 ..< 16 {
            if i % 2 == 0 {
                try st.control(["cmd": "insert", "slot": 8, "id": "B45-STREAM-\(i)", "family": 2, "soc": 50])
            } else {
                try st.control(["cmd": "remove", "slot": 8])
            }
            if i == 4 { cluster.kill(node: 0) }
            if i >= 4 && i < 8 { sent.append(try Self.command(cluster, node: 2, "ping", [:], abs: abs, consumer: consumer, wait: false).id) }
            pause(0.6)
        }

        // Reconnected to the next address (node 2), session 2.
        #expect(eventually(timeout: 90) { statuses().contains { ($0["online"] as? Bool) == true && ($0["session"] as? Int) == 2 } },
                "\(st.gateway?.output().suffix(4000) ?? "")")
        #expect(eventually(timeout: 90) { events(in: consumer.lines()).contains { $0.type == "swap.completed" } },
                "the swap in progress completes: \(st.gateway?.output().suffix(4000) ?? "")")
        #expect(events(in: consumer.lines()).first { $0.type == "swap.completed" }?.string("swap_id") == swapID)
        // One more command after the failover, and every command answered exactly once.
        let after = try Self.command(cluster, node: 1, "ping", [:], abs: abs, consumer: consumer)
        sent.append(after.id)
        #expect(after.reply?["ok"] as? Bool == true)
        #expect(eventually(timeout: 60) {
            let replies = payloads(in: consumer.lines(), topicSuffix: "/reply").compactMap { $0["request_id"] as? String }
            return sent.allSatisfy(replies.contains)
        })
        pause(2)
        let replies = payloads(in: consumer.lines(), topicSuffix: "/reply").compactMap { $0["request_id"] as? String }
        for id in sent { #expect(replies.filter { $0 == id }.count == 1, "\(id) answered once") }

        // Every event: all eight stream inserts and the swap, with no gap in seq.
        #expect(eventually(timeout: 60) {
            Set(events(in: consumer.lines()).filter { $0.type == "battery.inserted" }.compactMap { $0.string("battery_id") }
                .filter { $0.hasPrefix("B45-STREAM-") }).count == 8
        }, "\(events(in: consumer.lines()).map { "\($0.seq) \($0.type)" })")
        let seen = events(in: consumer.lines())
        expectGapFree(seen)

        // Retained state per node (RabbitMQ 3.10 keeps retained messages on the node that got them): the daemon is
        // SIGKILLed while on node 2, node 2 publishes its will (session 2, retained there); the daemon comes back
        // on node 3 only (birth, session 3). An ABS that subscribes on node 2 afterwards gets node 2's retained
        // will: a stale will after a newer birth, recognisable by its session (2 < 3). `rebirth` republishes the
        // live state, and that subscriber sees session 3 online.
        // (The will reaches node 2's retained store; in our runs the consumer on node 3 did not get it delivered,
        // one more reason ABS must not wait for wills on 3.10: docs/fleet-broker.md.)
        st.gateway?.killHard()
        pause(2)
        let config = try String(contentsOfFile: st.configPath, encoding: .utf8)
        try config.replacingOccurrences(of: "hosts: [\(hosts)]", with: "hosts: [\"127.0.0.1:\(cluster.mqttPorts[2])\"]")
            .write(toFile: st.configPath, atomically: true, encoding: .utf8)
        try st.startGateway()
        #expect(eventually(timeout: 60) { statuses().contains { ($0["online"] as? Bool) == true && ($0["session"] as? Int) == 3 } },
                "birth of session 3 on node 3: \(statuses())")
        let late = try cluster.startSubscriber(node: 1, topics: ["dt/V01/BSS/\(Station.id)/status"])
        defer { late.stop() }
        let lateStatuses = { payloads(in: late.lines(), topicSuffix: "/status") }
        #expect(eventually(timeout: 20) { !lateStatuses().isEmpty })
        let retained = try #require(lateStatuses().first, "node 2's retained status")
        #expect(retained["online"] as? Bool == false && retained["session"] as? Int == 2,
                "node 2 kept the will of session 2 after the birth of session 3: \(retained)")
        let newest = statuses().filter { ($0["online"] as? Bool) == true }.compactMap { $0["session"] as? Int }.max() ?? 0
        #expect((retained["session"] as? Int ?? Int.max) < newest, "the stale will is older than the newest birth (\(newest))")
        let rebirth = try Self.command(cluster, node: 1, "rebirth", [:], abs: abs, consumer: consumer)
        #expect(rebirth.reply?["ok"] as? Bool == true, "\(String(describing: rebirth.reply))")
        #expect(eventually(timeout: 30) { lateStatuses().contains { ($0["online"] as? Bool) == true && ($0["session"] as? Int) == 3 } },
                "rebirth republished session 3 to the subscriber on node 2: \(lateStatuses())")
        expectGapFree(events(in: consumer.lines()))
        print("cluster failover test: \(Int(Date().timeIntervalSince(started))) s in all, cluster start \(cluster.startSeconds) s")
    }
}
