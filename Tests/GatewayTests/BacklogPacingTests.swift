import Foundation
import GatewayCore
import StationStore
import Testing
import TestSupport

/// Issue 11 item 4: after an outage the event log drains at `publishing.backlog_rate` bytes/s, and commands are
/// answered while it does.
@Suite(.serialized) struct BacklogPacingTests {
    // MARK: the token bucket, with an injected clock

    @Test func bucketLetsTheBurstGoThenPacesAtTheRate() {
        var b = TokenBucket(rate: 1000, burst: 2000)
        // The burst goes at once: 4 × 500 B at t = 0.
        for _ in 0 ..< 4 { let w = b.take(500, now: 0); #expect(w == 0) }
        // The bucket is empty (not in debt): the next 500 B go now and leave 500 B of debt …
        let w1 = b.take(500, now: 0)
        #expect(w1 == 0)
        // … which the next message waits for: 0.5 s at 1000 B/s.
        let w2 = b.take(500, now: 0)
        #expect(abs(w2 - 0.5) < 1e-9)
        // Now 1000 B of debt; 1 s later it is paid.
        let w3 = b.pending(now: 0.5)
        #expect(abs(w3 - 0.5) < 1e-9)
        let w4 = b.pending(now: 1.0)
        #expect(w4 == 0)
    }

    @Test func bucketRefillsNoMoreThanTheBurst() {
        var b = TokenBucket(rate: 100, burst: 300)
        let w5 = b.take(300, now: 0)
        #expect(w5 == 0)
        // A long idle time refills only the burst: 300 B go, the next 100 B then wait 1 s.
        let w6 = b.take(300, now: 1000)
        #expect(w6 == 0)
        let w7 = b.take(100, now: 1000)
        #expect(w7 == 0)
        let w8 = b.take(100, now: 1000)
        #expect(abs(w8 - 1.0) < 1e-9)
    }

    @Test func bucketMessageLargerThanTheBurstStillGoes() {
        var b = TokenBucket(rate: 100, burst: 100)
        let w9 = b.take(1000, now: 0)
        #expect(w9 == 0)
        // 900 B of debt: 9 s at 100 B/s; half paid after 4.5 s.
        let w10 = b.pending(now: 0)
        #expect(abs(w10 - 9) < 1e-9)
        let w11 = b.take(10, now: 4.5)
        #expect(abs(w11 - 4.5) < 1e-9)
    }

    @Test func bucketUnlimitedNeverWaitsAndTheClockNeverRunsBackwards() {
        var u = TokenBucket(rate: 0, burst: 1)
        for i in 0 ..< 1000 { let w = u.take(1_000_000, now: Double(i)); #expect(w == 0) }
        var b = TokenBucket(rate: 10, burst: 10)
        let w12 = b.take(20, now: 5)
        #expect(w12 == 0)
        // A clock reading earlier than the last one adds nothing.
        let w13 = b.take(1, now: 4)
        #expect(abs(w13 - 1.0) < 1e-9)
    }

    @Test func pacerCallsOldEventsBacklogOnlyWhenLimited() {
        let p = BacklogPacer(rate: 2000)
        let now = Date()
        #expect(p.isBacklog(now.addingTimeInterval(-86_400), now: now))
        #expect(!p.isBacklog(now.addingTimeInterval(-1), now: now))
        #expect(!BacklogPacer(rate: 0).isBacklog(now.addingTimeInterval(-86_400), now: now))
        #expect(p.bucket.burst == 4096)
    }

    // MARK: end to end

    /// A day-old backlog of 1500 events in the station's SQLite log (written with the store's own API, as the
    /// recorder writes them during an outage), the real daemon, station-sim and mosquitto, backlog_rate 20000 B/s:
    /// signed pings sent while it drains are each answered before the last backlog event arrives; the events
    /// arrive gap-free in seq order; the drain rate seen by the subscriber is at most 2× the configured rate.
    @Test func commandsAreAnsweredWhileABacklogDrainsAtTheRate() async throws {
        let rate = 20_000.0
        let count = 1500
        let abs = try ABS.generate()
        let st = try Station(slots: 4, absSection: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}",
                             publishing: "{telemetry_interval: 2, inventory_debounce: 0.2, backlog_rate: \(Int(rate))}")
        defer { st.stop() }
        do {
            let store = try StationStore(path: st.storePath)
            let dayAgo = Date().addingTimeInterval(-86_400)
            let pad = String(repeating: "x", count: 300)
            var batch: [NewEvent] = []
            for i in 1 ... count {
                batch.append(NewEvent(type: "backlog.test", timestamp: dayAgo.addingTimeInterval(Double(i)),
                                      data: Array("{\"n\":\(i),\"pad\":\"\(pad)\"}".utf8), eventID: UUID()))
                if batch.count == 500 { _ = try await store.appendEvents(batch); batch.removeAll() }
            }
        }
        let sub = try st.subscriber()
        try st.startGateway()

        func backlogIndices(_ lines: [String]) -> [(index: Int, seq: Int, bytes: Int)] {
            lines.enumerated().compactMap { i, line in
                guard line.contains("/evt/backlog.test "), let e = events(in: [line]).first else { return nil }
                let space = line.firstIndex(of: " ")!
                let topic = String(line[..<space])
                return (i, e.seq, MQTTPacketEstimate.publish(topic: topic, payloadBytes: line.utf8.count - topic.utf8.count - 1, qos: 1))
            }
        }

        // Pings while the backlog drains; each waits for its reply (st.command), then a pause.
        var pings: [String] = []
        var sawDraining = false
        var firstSeen: Date?
        while backlogIndices(sub.lines()).count < count && pings.count < 3 {
            if firstSeen == nil, !backlogIndices(sub.lines()).isEmpty { firstSeen = Date() }
            let reply = try st.command("ping", [:], abs: abs, subscriber: sub)
            #expect(reply["ok"] as? Bool == true, "\(reply)")
            pings.append(reply["request_id"] as? String ?? "")
            if !sawDraining, let out = try? st.swapctl(["status"]).output, out.contains("draining backlog: ") { sawDraining = true }
            pause(1.5)
        }
        var lastSeen: Date?
        var lastCount = 0
        _ = eventually(timeout: 180, interval: 0.05) {
            let n = backlogIndices(sub.lines()).count
            if n > 0 && firstSeen == nil { firstSeen = Date() }
            if n != lastCount { lastCount = n; lastSeen = Date() }
            return n >= count
        }
        let lines = sub.lines()
        let seen = backlogIndices(lines)
        #expect(seen.count >= count, "only \(seen.count) of \(count) backlog events arrived")
        // Gap-free and in seq order (first arrival of each seq).
        var order: [Int] = []
        var have = Set<Int>()
        for e in seen where have.insert(e.seq).inserted { order.append(e.seq) }
        #expect(order == Array(1 ... count))
        // Every reply arrived before the last backlog event.
        let lastBacklogLine = seen.map(\.index).max() ?? -1
        #expect(pings.count >= 1)
        for id in pings {
            let at = lines.firstIndex { $0.contains("/reply ") && $0.contains(id) }
            #expect(at != nil && at! < lastBacklogLine, "reply \(id) at line \(String(describing: at)), last backlog event at \(lastBacklogLine)")
        }
        #expect(sawDraining, "swapctl status never said 'draining backlog'")
        // The drain rate over the whole drain, minus the bucket's burst, is at most 2× the configured rate.
        if let firstSeen, let lastSeen {
            let bytes = Double(seen.reduce(0) { $0 + $1.bytes }) - max(4096, rate)
            let seconds = lastSeen.timeIntervalSince(firstSeen)
            #expect(seconds > 0 && bytes / seconds <= 2 * rate, "drained \(bytes) B in \(seconds) s")
        } else {
            Issue.record("no drain observed")
        }
    }
}
