import ArgumentParser
import Crypto
import Foundation
import GatewayCore
import Logging
import MQTTLink
import SimulatorCore
import StationDomain
import StationStore

/// The swap decision end to end: a signed `swap` command published to the broker → the gateway verifies it,
/// decides from 100 000 cached entitlements, records the swap durably and publishes the reply → the unlock
/// reaches the cabinet. Compared with an MQTT echo round trip through the same broker in the same run, and with a
/// bare relay client (RelayClient: a libmosquitto client that answers each signed command with no logic) through
/// the same broker: the gateway's own cost is decision − relay.
/// Also: a 100 000-entitlement snapshot applied through MQTT (and in the store alone) versus a bare SQLite
/// bulk insert of the same rows, and decision latency while such a snapshot applies.
struct DecisionBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "decision",
                                                    abstract: "Swap decision latency with 100k entitlements vs MQTT echo; snapshot apply vs bare insert.")
    @Option var entitlements = 100_000
    @Option var swaps = 60
    @Option var echoes = 200
    @Option(help: "Signed swap commands answered by the bare relay client.") var relays = 200
    /// The gateway under test (one per process run).
    nonisolated(unsafe) static var current: Gateway?

    func run() async throws {
        let broker = try BenchBroker()
        defer { broker.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swapbench-decision-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        // The cabinet: 16 full slots; a rider who takes the unlocked battery and closes the door at once.
        let sim = Simulator(configuration: SimulatorConfiguration(slots: 16, seed: 9, fill: .full, autoTick: true,
                                                                  commandExecutionTime: 0, commandLogLimit: 100))
        let modbusPort = try sim.startTCP()
        defer { sim.stop() }
        sim.setRider(RiderConfiguration(behavior: .normal, delay: 0.05, stepDelay: 0.05))

        let key = Curve25519.Signing.PrivateKey()
        let station = "BENCH-DEC-1"
        let yaml = """
        station: {id: \(station), network_code: NET-BENCH, outlet_code: OUT-1}
        cabinet: {host: 127.0.0.1, port: \(modbusPort), fast_interval: 0.1, watchdog_interval: 1, detail_interval: 2}
        mqtt: {host: 127.0.0.1, port: \(broker.port), reconnect_delay_min: 1, reconnect_delay_max: 2}
        store: {path: \(dir.appendingPathComponent("station.sqlite").path)}
        abs: {public_keys: {bench-1: "\(key.publicKey.rawRepresentation.base64EncodedString())"}}
        swaps: {return_timeout: 30, pickup_timeout: 30, max_concurrent: 8}
        control: {socket: ""}
        metrics: {enabled: false}
        log_level: error
        """
        var logger = Logger(label: "swapbench.gateway")
        logger.logLevel = .error
        let gateway = try await Gateway(configuration: try GatewayConfiguration.parse(yaml), configText: yaml, logger: logger)
        Self.current = gateway
        let running = Task { try await gateway.run() }
        defer { running.cancel() }

        // "ABS": one client publishing signed commands and reading replies and events.
        let topics = Topics(stationID: station)
        var conf = MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "swapbench-abs")
        conf.cleanSession = true
        let abs = try MQTTClient(configuration: conf)
        try abs.start()
        defer { abs.stop() }
        while !abs.isConnected { try await Task.sleep(for: .milliseconds(10)) }
        let inbox = Inbox()
        let reader = Task { for await m in abs.messages { await inbox.received(m, at: monotonic()) } }
        defer { reader.cancel() }
        try abs.subscribe(topics.reply, qos: 1)
        try abs.subscribe(topics.event("swap.completed"), qos: 1)
        try abs.subscribe("bench/echo", qos: 1)
        try await Task.sleep(for: .milliseconds(300))

        // 1. MQTT echo round trip through the same broker (the floor of any command → reply).
        var echo: [Double] = []
        for i in 0 ..< echoes {
            let t = monotonic()
            try await abs.publish(topic: "bench/echo", payload: Array("e\(i)".utf8), qos: 1, retain: false)
            echo.append(try await inbox.waitEcho("e\(i)") - t)
        }

        // 1b. The same signed swap commands, answered by a bare relay client through the same broker.
        let relayTopics = Topics(stationID: "BENCH-RELAY-1")
        let relayClient = try RelayClient(port: broker.port, commandFilter: relayTopics.commands, replyTopic: relayTopics.reply)
        defer { relayClient.stop() }
        try abs.subscribe(relayTopics.reply, qos: 1)
        try await Task.sleep(for: .milliseconds(300))
        var relayed: [Double] = []
        for i in 0 ..< relays {
            let id = "relay-\(i)-\(UUID().uuidString.prefix(6))"
            let body = try Self.signed(key, ["request_id": id, "customer_id": "cust-\(i)"])
            let t = monotonic()
            try await abs.publish(topic: relayTopics.command("swap"), payload: body, qos: 1, retain: false)
            relayed.append(try await inbox.waitReply(id, timeout: 10).at - t)
        }

        // Wait for the gateway to take commands (cabinet read, subscriptions made).
        let ready = monotonic()
        while true {
            let id = "ping-\(UUID().uuidString.prefix(8))"
            try await abs.publish(topic: topics.command("ping"), payload: try Self.signed(key, ["request_id": id]), qos: 1, retain: false)
            if (try? await inbox.waitReply(id, timeout: 2)) != nil { break }
            if monotonic() - ready > 60 { throw BenchError("the gateway never answered a ping") }
        }

        // 2. A 100k snapshot through MQTT: published → verified → parsed → applied → replied.
        let snapshot = try Self.signed(key, Self.snapshotBody(count: entitlements, version: 1), raw: true)
        let t = monotonic()
        try await abs.publish(topic: topics.command("entitlements"), payload: snapshot, qos: 1, retain: false)
        let applied = try await inbox.waitReply("snap-1", timeout: 300)
        let viaMQTT = applied.at - t
        guard applied.ok else { throw BenchError("snapshot refused: \(applied.body)") }

        // 3. Decisions with 100k cached: first issues, each to its own customer; the rider takes the battery,
        // the bench puts a full one back so the station never runs dry.
        let samplesBefore = gateway.metrics.decisionSamples.count
        var decision: [Double] = [], unlock: [Double] = []
        for i in 0 ..< swaps {
            let (d, u) = try await swap(i, key: key, abs: abs, topics: topics, inbox: inbox, sim: sim)
            decision.append(d); unlock.append(u)
        }

        let inside = Array(gateway.metrics.decisionSamples.dropFirst(samplesBefore))

        // 4. Decisions while a 100k snapshot is applied into the gateway's store (called in-process, so the figure
        // is not hidden behind the 40 MB message's transfer on the same MQTT connection). Swaps overlap here
        // (swaps.max_concurrent 8), up to 4 per apply (the ready 45 Ah batteries); five applies.
        var during: [Double] = []
        var i = swaps
        var applyTimes: [Double] = []
        for round in 0 ..< 5 {
            let rows2 = Self.rows(count: entitlements, version: Int64(2 + round))
            let store = gateway.store
            let done = DoneFlag()
            let applying = Task { () -> Double in
                defer { done.set() }
                let t0 = monotonic()
                try await store.applyEntitlementSnapshot(version: Int64(2 + round), entitlements: rows2, issuedAt: Date(), receivedAt: Date())
                return monotonic() - t0
            }
            let completedBefore = await inbox.completedCount
            var started = 0
            try await Task.sleep(for: .milliseconds(30))
            while started < 4, !done.isSet {
                let (d, _) = try await swap(i, key: key, abs: abs, topics: topics, inbox: inbox, sim: sim, settle: false)
                during.append(d)
                i += 1; started += 1
            }
            applyTimes.append(try await applying.value)
            try await settle(inbox: inbox, sim: sim, completed: completedBefore + started)
        }
        let secondApply = median(applyTimes)

        // The floor under any durable decision: one commit with synchronous=FULL (an fsync) on this disk.
        var commits: [Double] = []
        for n in 0 ..< 50 {
            let t0 = monotonic()
            try await gateway.store.setMeta("bench_commit", String(n))
            commits.append(monotonic() - t0)
        }

        // 5. The store alone: apply vs a bare bulk insert of the same rows, one transaction, same columns.
        let (storeApply, bare) = try await Self.storeOnly(count: entitlements, dir: dir)

        func ms(_ x: Double) -> String { String(format: "%.1f ms", x * 1000) }
        func us(_ x: Double) -> String { String(format: "%.0f µs", x * 1_000_000) }
        let e50 = percentile(echo, 0.5), e99 = percentile(echo, 0.99)
        let d50 = percentile(decision, 0.5), d99 = percentile(decision, 0.99)
        let r50 = percentile(relayed, 0.5), r99 = percentile(relayed, 0.99)
        report("decision: signed swap → verified, decided from \(entitlements) cached entitlements, recorded (fsync), replied", [
            ("MQTT echo round trip", "p50 \(us(e50)), p99 \(us(e99))  (\(echoes) QoS 1 messages)"),
            ("bare relay client → reply", "p50 \(us(r50)), p99 \(us(r99))  (\(relays) signed swap commands, answered with no logic)"),
            ("decision → reply", "p50 \(us(d50)), p99 \(us(d99))  (\(swaps) swaps)"),
            ("gateway cost (decision − relay)", "p50 \(us(d50 - r50)), p99 \(us(d99 - r99))"),
            ("one durable commit (fsync)", "p50 \(ms(percentile(commits, 0.5))), p99 \(ms(percentile(commits, 0.99)))  (a decision makes two: request memory, swap record)"),
            ("  of which the swap coordinator", "p50 \(ms(percentile(inside, 0.5))), p99 \(ms(percentile(inside, 0.99)))  (cache read, rules, durable record)"),
            ("command → unlock at the cabinet", "p50 \(ms(percentile(unlock, 0.5))), p99 \(ms(percentile(unlock, 0.99)))"),
            ("ratio decision/echo", String(format: "p50 %.2f×, p99 %.2f× (target ≤ 2×)", d50 / e50, d99 / e99)),
            ("ratio decision/relay", String(format: "p50 %.2f×, p99 %.2f×", d50 / r50, d99 / r99)),
            ("decision while a snapshot applies", during.isEmpty ? "no swap fitted in the apply" :
                "p50 \(ms(percentile(during, 0.5))), p99 \(ms(percentile(during, 0.99)))  (\(during.count) swaps during 5 store applies of ~\(ms(secondApply)))"),
        ])
        report("snapshot: \(entitlements) entitlements", [
            ("through MQTT (publish → verify → parse → apply → reply)", "\(ms(viaMQTT))"),
            ("store apply (staging + swap-in)", "\(ms(storeApply))"),
            ("bare SQLite bulk insert, one transaction", "\(ms(bare))"),
            ("ratio store apply/bare", String(format: "%.2f× (target ≤ 2×)", storeApply / bare)),
            ("ratio through MQTT/bare", String(format: "%.2f×", viaMQTT / bare)),
        ])
    }

    /// One first-issue swap for customer `i`: returns (publish → reply, publish → unlock executed by the cabinet).
    func swap(_ i: Int, key: Curve25519.Signing.PrivateKey, abs: MQTTClient, topics: Topics, inbox: Inbox,
              sim: Simulator, settle wait: Bool = true) async throws -> (Double, Double) {
        let id = "swap-\(i)-\(UUID().uuidString.prefix(6))"
        let before = sim.commandLog().count
        let completedBefore = await inbox.completedCount
        let body = try Self.signed(key, ["request_id": id, "customer_id": "cust-\(i)"])
        let t = monotonic()
        try await abs.publish(topic: topics.command("swap"), payload: body, qos: 1, retain: false)
        var unlockAt: Double?
        while unlockAt == nil && monotonic() - t < 10 {
            if sim.commandLog().count > before { unlockAt = monotonic() } else { usleep(200) }
        }
        let reply = try await inbox.waitReply(id, timeout: 10)
        guard reply.ok else { throw BenchError("swap \(i) refused: \(reply.body)") }
        if wait { try await settle(inbox: inbox, sim: sim, completed: completedBefore + 1) }
        return (reply.at - t, (unlockAt ?? monotonic()) - t)
    }

    /// Lets the rider finish and the gateway complete the swaps; then refills the emptied slots.
    func settle(inbox: Inbox, sim: Simulator, completed: Int) async throws {
        guard let gateway = Self.current else { throw BenchError("no gateway") }
        let deadline = monotonic() + 60
        while await inbox.completedCount < completed {
            if monotonic() > deadline { throw BenchError("swaps did not complete") }
            try await Task.sleep(for: .milliseconds(20))
        }
        var refilled: [Int] = []
        for s in sim.snapshot().slots where !s.batteryPresent {
            // A locked door takes no battery: the station's attendant opens it with the key, refills, closes.
            try? sim.openDoor(slot: s.slot, force: true)
            try sim.insertBattery(slot: s.slot, id: "B45B-\(UUID().uuidString.prefix(8))", family: 2, soc: 100)
            try? sim.closeDoor(slot: s.slot)
            refilled.append(s.slot)
        }
        // The gateway sees the refilled slots as ready before the next swap.
        while true {
            var all = true
            for slot in refilled where !(await gateway.acquisition.isReady(slot: slot)) { all = false }
            if all { break }
            if monotonic() > deadline {
                let seen = refilled.map { "\(gateway.acquisition.snapshot.slot($0).map { "\($0)" } ?? "none")" }
                throw BenchError("refilled slots \(refilled) never became ready: \(seen)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static func snapshotBody(count: Int, version: Int) -> String {
        let now = Date()
        let from = RFC3339.format(now.addingTimeInterval(-86_400)), until = RFC3339.format(now.addingTimeInterval(86_400 * 30))
        var s = "{\"request_id\":\"snap-\(version)\",\"issued_at\":\"\(RFC3339.format(now))\",\"expires_at\":\"\(RFC3339.format(now.addingTimeInterval(600)))\","
        s += "\"kind\":\"snapshot\",\"version\":\(version),\"entitlements\":["
        s.reserveCapacity(count * 420)
        for i in 0 ..< count {
            if i > 0 { s += "," }
            s += "{\"plan_instance_id\":\"pi-\(i)\",\"customer_id\":\"cust-\(i)\",\"subscription_ref\":\"SUB/2026/\(i)\",\"status\":\"active\","
            s += "\"valid_from\":\"\(from)\",\"valid_until\":\"\(until)\",\"network_code\":\"NET-BENCH\",\"battery_family\":\"MOBBAT-45AH\","
            s += "\"swap_quota\":60,\"swaps_used\":\(i % 50),\"energy_quota_kwh\":129.6,\"energy_used_kwh\":20.0,\"overage_allowed\":false,"
            s += "\"max_batteries\":1,\"batteries_out\":[],\"version\":\(version)}"
        }
        return s + "]}"
    }

    /// The envelope {kid, payload, sig} over the exact command bytes (as ABS sends it).
    static func signed(_ key: Curve25519.Signing.PrivateKey, _ fields: [String: String]) throws -> [UInt8] {
        var f = fields
        let now = Date()
        f["issued_at"] = RFC3339.format(now)
        f["expires_at"] = RFC3339.format(now.addingTimeInterval(120))
        let body = String(decoding: try JSONSerialization.data(withJSONObject: f, options: [.sortedKeys]), as: UTF8.self)
        return try signed(key, body, raw: true)
    }

    static func signed(_ key: Curve25519.Signing.PrivateKey, _ body: String, raw: Bool) throws -> [UInt8] {
        let bytes = Data(body.utf8)
        let sig = try key.signature(for: bytes)
        return Array("{\"kid\":\"bench-1\",\"payload\":\"\(bytes.base64EncodedString())\",\"sig\":\"\(sig.base64EncodedString())\"}".utf8)
    }

    /// The store alone: `applyEntitlementSnapshot` of `count` rows, and a bare bulk insert of the same rows into a
    /// table with the same columns in a fresh database (one transaction, one prepared statement).
    static func rows(count: Int, version: Int64) -> [Entitlement] {
        let now = Date()
        return (0 ..< count).map { i in
            Entitlement(planInstanceID: "pi-\(i)", customerID: "cust-\(i)", subscriptionRef: "SUB/2026/\(i)", status: .active,
                        validFrom: now.addingTimeInterval(-86_400), validUntil: now.addingTimeInterval(86_400 * 30),
                        networkCode: "NET-BENCH", batteryFamily: "MOBBAT-45AH", swapQuota: 60, swapsUsed: i % 50,
                        energyQuotaKWh: 129.6, energyUsedKWh: 20, overageAllowed: false, maxBatteries: 1, batteriesOut: [], version: version)
        }
    }

    static func storeOnly(count: Int, dir: URL) async throws -> (Double, Double) {
        let now = Date()
        let rows = rows(count: count, version: 1)
        let store = try StationStore(path: dir.appendingPathComponent("apply.sqlite").path)
        let t = monotonic()
        try await store.applyEntitlementSnapshot(version: 1, entitlements: rows, issuedAt: now, receivedAt: now)
        let apply = monotonic() - t
        try await store.close()

        let bare = try await StationStore.bareEntitlementBulkInsert(rows, newDatabaseAt: dir.appendingPathComponent("bare.sqlite").path)
        return (apply, bare)
    }
}

func percentile(_ xs: [Double], _ p: Double) -> Double {
    guard !xs.isEmpty else { return 0 }
    let s = xs.sorted()
    return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
}

/// Replies (by request_id), swap completions and echoes as they arrive, with their arrival time. Waiters are
/// resumed by the arrival itself (no polling), so the figures carry no timer granularity.
actor Inbox {
    struct Reply: Sendable { let ok: Bool; let at: Double; let body: String }
    private var replies: [String: Reply] = [:]
    private var echoes: [String: Double] = [:]
    private var replyWaiters: [String: CheckedContinuation<Reply, Error>] = [:]
    private var echoWaiters: [String: CheckedContinuation<Double, Error>] = [:]
    private(set) var completedCount = 0

    func received(_ m: MQTTMessage, at: Double) {
        if m.topic == "bench/echo" {
            let key = String(decoding: m.payload, as: UTF8.self)
            if let w = echoWaiters.removeValue(forKey: key) { w.resume(returning: at) } else { echoes[key] = at }
            return
        }
        if m.topic.hasSuffix("/evt/swap.completed") { completedCount += 1; return }
        guard let obj = (try? JSONSerialization.jsonObject(with: Data(m.payload))) as? [String: Any],
              let id = obj["request_id"] as? String else { return }
        let r = Reply(ok: obj["ok"] as? Bool ?? false, at: at, body: String(decoding: m.payload.prefix(300), as: UTF8.self))
        replies[id] = r
        replyWaiters.removeValue(forKey: id)?.resume(returning: r)
    }

    func reply(_ id: String) -> Reply? { replies[id] }

    func waitReply(_ id: String, timeout: Double) async throws -> Reply {
        if let r = replies[id] { return r }
        let expiry = Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))
            await self?.expireReply(id)
        }
        defer { expiry.cancel() }
        return try await withCheckedThrowingContinuation { replyWaiters[id] = $0 }
    }

    private func expireReply(_ id: String) { replyWaiters.removeValue(forKey: id)?.resume(throwing: BenchError("no reply to \(id)")) }

    func waitEcho(_ payload: String) async throws -> Double {
        if let at = echoes[payload] { return at }
        let expiry = Task { [weak self] in
            try? await Task.sleep(for: .seconds(5))
            await self?.expireEcho(payload)
        }
        defer { expiry.cancel() }
        return try await withCheckedThrowingContinuation { echoWaiters[payload] = $0 }
    }

    private func expireEcho(_ p: String) { echoWaiters.removeValue(forKey: p)?.resume(throwing: BenchError("echo \(p) lost")) }
}

final class DoneFlag: Sendable {
    private let value = Locked(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.current }
}
