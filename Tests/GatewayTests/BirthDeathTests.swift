import Foundation
import Testing
import TestSupport

/// Birth/death sessions and rebirth (abs-mqtt.md 1.1 "Birth, death and resync"), end to end: the real daemon,
/// station-sim and mosquitto.
@Suite(.serialized) struct BirthDeathTests {
    static func statuses(_ lines: [String]) -> [[String: Any]] { payloads(in: lines, topicSuffix: "/status") }
    static func session(_ o: [String: Any]?) -> Int? { (o?["session"] as? NSNumber)?.intValue }
    static func online(_ o: [String: Any]?) -> Bool? { (o?["online"] as? NSNumber)?.boolValue }

    /// The retained status as a fresh subscriber reads it.
    static func retainedStatus(_ st: Station) throws -> [String: Any]? {
        let lines = try st.broker.subscribe(topic: "dt/V01/BSS/\(Station.id)/status", count: 1, timeout: 10)
        return statuses(lines).first
    }

    /// The session number rises by one at every connection: a broker restart (reconnect), a crash and a clean
    /// restart of the daemon (kept in the store); the will of the killed daemon carries its connection's number,
    /// and that will, arriving again after the newer birth (as from a cluster node that keeps its own retained
    /// copy), is recognisable as stale by its number.
    @Test func sessionRisesAcrossReconnectsAndRestartsAndTheWillCarriesIt() throws {
        let st = try Station(slots: 4)
        defer { st.stop() }
        try st.startGateway()
        #expect(eventually(timeout: 30) { (try? Self.session(Self.retainedStatus(st))) == 1 })
        #expect(try Self.online(Self.retainedStatus(st)) == true)

        // Reconnect: the broker restarts (its sessions and retained messages persist).
        try st.broker.restart()
        #expect(eventually(timeout: 60) { (try? Self.session(Self.retainedStatus(st))) == 2 }, "\(st.gateway?.output().suffix(3000) ?? "")")

        // Crash: the broker publishes the will registered for connection 2, retained.
        let sub = try st.subscriber()
        defer { sub.stop() }
        st.gateway?.killHard()
        #expect(eventually(timeout: 60) { Self.statuses(sub.lines()).contains { Self.online($0) == false } })
        let will = Self.statuses(sub.lines()).first { Self.online($0) == false }
        #expect(Self.session(will) == 2, "the will carries the dead connection's number: \(String(describing: will))")

        // Restart from the same store: the next number, 3.
        try st.startGateway()
        #expect(eventually(timeout: 30) { Self.statuses(sub.lines()).contains { Self.online($0) == true && Self.session($0) == 3 } })

        // A stale copy of the will (a node that kept its own retained status) arrives after the newer birth.
        let willLine = try String(decoding: JSONSerialization.data(withJSONObject: will ?? [:]), as: UTF8.self)
        try st.broker.publish(topic: "dt/V01/BSS/\(Station.id)/status", message: willLine, qos: 1, retain: true)
        #expect(eventually(timeout: 20) { Self.statuses(sub.lines()).filter { Self.online($0) == false }.count >= 2 })
        let seen = Self.statuses(sub.lines())
        guard let birthIndex = seen.lastIndex(where: { Self.online($0) == true }), let lastDeath = seen.last,
              Self.online(lastDeath) == false else { Issue.record("no birth then death: \(seen)"); return }
        let birthSession = Self.session(seen[birthIndex]) ?? 0
        #expect(Self.session(lastDeath)! < birthSession, "a will older than the newest birth is stale by its number")

        // Clean stop: online false with the live connection's number (3); the next run is 4.
        st.gateway?.stop()
        #expect(eventually(timeout: 30) {
            Self.statuses(sub.lines()).contains { Self.online($0) == false && Self.session($0) == 3 }
        })
        try st.startGateway()
        #expect(eventually(timeout: 30) { Self.statuses(sub.lines()).contains { Self.online($0) == true && Self.session($0) == 4 } })
    }

    /// `rebirth` (signed) republishes status, inventory and a full telemetry report, and is answered once.
    @Test func rebirthRepublishesStatusInventoryAndFullTelemetry() throws {
        let abs = try ABS.generate()
        let st = try Station(slots: 4, absSection: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        defer { st.stop() }
        let sub = try st.subscriber()
        defer { sub.stop() }
        try st.startGateway()
        #expect(eventually(timeout: 30) {
            !payloads(in: sub.lines(), topicSuffix: "/inventory").isEmpty && !payloads(in: sub.lines(), topicSuffix: "/telemetry").isEmpty
        })
        pause(1)   // let the connection's own first reports settle
        for round in 1 ... 2 {
            let before = sub.lines().count
            let requestID = "rebirth-\(round)-\(UUID().uuidString.prefix(8))"
            let reply = try st.command("rebirth", ["request_id": requestID], abs: abs, subscriber: sub)
            #expect(reply["ok"] as? Bool == true, "\(reply)")
            let after = { Array(sub.lines().dropFirst(before)) }
            let fullTelemetry: ([String: Any]) -> Bool = { t in
                // A `full` report (contract 1.1) when the station sends kinds; otherwise every slot is in it.
                (t["kind"] as? String).map { $0 == "full" } ?? ((t["slots"] as? [Any])?.count == 4)
            }
            let ok = eventually(timeout: 20) {
                let lines = after()
                return Self.statuses(lines).contains { Self.online($0) == true && Self.session($0) == 1 }
                    && !payloads(in: lines, topicSuffix: "/inventory").isEmpty
                    && payloads(in: lines, topicSuffix: "/telemetry").contains(where: fullTelemetry)
            }
            #expect(ok, "after rebirth: \(after())")
            pause(1)
            let replies = payloads(in: sub.lines(), topicSuffix: "/reply").filter { $0["request_id"] as? String == requestID }
            #expect(replies.count == 1, "answered once: \(replies)")
        }
        // Unsigned, it is refused like every command.
        let unsigned = try st.command("rebirth", ["request_id": "rebirth-unsigned"], abs: abs, subscriber: sub,
                                      envelope: #"{"request_id":"rebirth-unsigned"}"#, unverifiable: true)
        #expect(unsigned["ok"] as? Bool == false)
    }
}
