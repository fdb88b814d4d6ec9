#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationSupport

/// A token bucket over bytes (issue 11 item 4): `rate` bytes per second refill a bucket of `burst` bytes; a
/// message takes its bytes and may leave the bucket in debt, so a message larger than the burst still goes,
/// and the one after it waits until the debt is paid. `rate` 0 = unlimited (never waits). The clock is passed
/// in (seconds on any monotonic scale), so the bucket is tested without sleeping.
public struct TokenBucket: Sendable {
    public let rate: Double
    public let burst: Double
    private(set) var tokens: Double
    private var last: Double?

    public init(rate: Double, burst: Double) {
        self.rate = max(0, rate); self.burst = max(1, burst); self.tokens = max(1, burst)
    }

    /// Takes `bytes` at `now`; returns how many seconds the caller must wait before sending them (0 = now).
    public mutating func take(_ bytes: Int, now: Double) -> Double {
        guard rate > 0 else { return 0 }
        refill(now)
        let wait = tokens >= 0 ? 0 : -tokens / rate
        tokens -= Double(bytes)
        return wait
    }

    /// Seconds until the bucket is out of debt (what the next message would wait), without taking anything.
    public mutating func pending(now: Double) -> Double {
        guard rate > 0 else { return 0 }
        refill(now)
        return tokens >= 0 ? 0 : -tokens / rate
    }

    private mutating func refill(_ now: Double) {
        if let last, now > last { tokens = min(burst, tokens + (now - last) * rate) }
        last = max(now, last ?? now)
    }
}

/// Paces the event log's drain after an outage (docs/events-and-mqtt.md "Backlog after an outage"): every event
/// PUBLISH takes its estimated bytes (MQTTPacketEstimate, the UplinkMeter's figure) from a `TokenBucket` of
/// `publishing.backlog_rate` bytes/s with a burst of max(4 KiB, 1 s of rate); only backlog waits for it, so live
/// events go out at once (their bytes still charged) and a backlog drains at the rate. While the event being sent is older than `backlogAge` seconds the publisher
/// keeps only `backlogWindow` events in flight, so the MQTT library's in-flight window (`mqtt.max_inflight`)
/// always has room for replies, status and inventory, which are never paced.
public struct BacklogPacer: Sendable {
    public static let defaultBacklogAge = 30.0
    public static let defaultBacklogWindow = 4
    public var bucket: TokenBucket
    public let backlogAge: Double
    public let backlogWindow: Int

    public init(rate: Double, backlogAge: Double = BacklogPacer.defaultBacklogAge, backlogWindow: Int = BacklogPacer.defaultBacklogWindow) {
        bucket = TokenBucket(rate: rate, burst: max(4096, rate))
        self.backlogAge = backlogAge; self.backlogWindow = max(1, backlogWindow)
    }

    public var rate: Double { bucket.rate }
    public var limited: Bool { bucket.rate > 0 }

    /// Whether an event recorded at `timestamp` is backlog (rather than live) at wall-clock `now`.
    public func isBacklog(_ timestamp: Date, now: Date) -> Bool { limited && now.timeIntervalSince(timestamp) > backlogAge }
}

/// What the pacer shows to `/metrics` and `swapctl status`: whether it is pacing a backlog now, the rate, and the
/// average event PUBLISH size (to turn the unsent count into an estimate of the time left).
public final class BacklogGauge: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var pacing = false
        public var rate = 0.0
        public var averageEventBytes = 0.0
    }
    private let box = Locked(Snapshot())
    public init() {}
    public var current: Snapshot { box.withLock { $0 } }
    func set(rate: Double) { box.withLock { $0.rate = rate } }
    func set(pacing: Bool) { box.withLock { if $0.pacing != pacing { $0.pacing = pacing } } }
    func observe(eventBytes: Int) {
        box.withLock { s in s.averageEventBytes = s.averageEventBytes == 0 ? Double(eventBytes) : s.averageEventBytes * 0.99 + Double(eventBytes) * 0.01 }
    }

    /// Seconds to send `unsent` events at the rate (nil when unlimited or nothing is known yet).
    public func estimatedSeconds(unsent: Int) -> Double? {
        let s = current
        guard s.rate > 0, s.averageEventBytes > 0 else { return nil }
        return Double(unsent) * s.averageEventBytes / s.rate
    }
}
