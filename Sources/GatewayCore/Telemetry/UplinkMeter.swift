#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MQTTLink
import StationDomain
import StationSupport

/// What the link to the broker costs, per class of message (issue 11 item 3): bytes sent (events, telemetry,
/// inventory, status, replies) and received (commands), as running totals for `/metrics`
/// (`swapgate_mqtt_bytes_total{direction,class}`) and as a rolling 24 h figure for `swapctl status`.
///
/// A message counts its estimated MQTT PUBLISH packet (MQTTPacketEstimate): payload + topic + headers. Sent
/// messages are counted when handed to the MQTT library (a re-sent event is counted again: it crossed the link
/// again); received ones when they arrive. `keepalive` is the MQTT protocol's own overhead, ESTIMATED (libmosquitto
/// does not report its packets): one PINGREQ (2 bytes sent) and PINGRESP (2 bytes received) per `mqtt.keepalive`
/// while connected (libmosquitto pings when either direction was idle that long, and a station receives little),
/// and the 4-byte PUBACK of every QoS 1 PUBLISH either way. TCP/IP and TLS overhead are not counted.
public final class UplinkMeter: Sendable {
    public enum Direction: String, Sendable, CaseIterable { case sent, received }
    public enum Class: String, Sendable, CaseIterable { case events, telemetry, inventory, status, replies, commands, keepalive }
    /// The bytes of one PINGREQ or PINGRESP, and of one PUBACK (MQTT 3.1.1; MQTT 5 omits the reason code on success).
    public static let pingBytes = 2, pubackBytes = 4

    struct State {
        var totals: [String: Int] = [:]
        /// Per "direction|class": bytes per hour, keyed by the hour number since 1970.
        var hourly: [String: [Int: Int]] = [:]
    }
    private let box = Locked(State())
    /// When counting began (the governor's forecast covers at most the time since).
    public let startedAt: Date
    public init(startedAt: Date = Date()) { self.startedAt = startedAt }

    /// Every byte counted in the last 24 h, both directions, every class (the budget governor's figure).
    public func total24h(at now: Date = Date()) -> Int { last24h(at: now).values.reduce(0, +) }

    /// One keepalive round trip (PINGREQ + PINGRESP), estimated: see the type's comment.
    public func countKeepalive(at now: Date = Date()) {
        count(.sent, .keepalive, bytes: Self.pingBytes, at: now)
        count(.received, .keepalive, bytes: Self.pingBytes, at: now)
    }

    public func count(_ direction: Direction, _ cls: Class, bytes: Int, at now: Date = Date()) {
        let key = "\(direction.rawValue)|\(cls.rawValue)"
        let hour = Int(now.timeIntervalSince1970 / 3600)
        box.withLock { s in
            s.totals[key, default: 0] += bytes
            var h = s.hourly[key] ?? [:]
            h[hour, default: 0] += bytes
            if h.count > 25 { h = h.filter { $0.key > hour - 24 } }
            s.hourly[key] = h
        }
    }

    /// Running totals since the start, by "direction|class".
    public var totals: [String: Int] { box.withLock { $0.totals } }

    /// Bytes in the last 24 hours (the current hour and the 23 before it), by "direction|class".
    public func last24h(at now: Date = Date()) -> [String: Int] {
        let hour = Int(now.timeIntervalSince1970 / 3600)
        return box.withLock { s in
            s.hourly.mapValues { h in h.filter { $0.key > hour - 24 }.values.reduce(0, +) }
        }
    }
}

/// The size of one MQTT PUBLISH packet carrying `payload` on `topic`: fixed header (1 byte + the remaining
/// length's 1–4 bytes), topic length (2) + topic, packet identifier (2, QoS > 0), MQTT 5 property length
/// (1 byte; properties such as a correlation id add theirs), payload.
public enum MQTTPacketEstimate {
    public static func publish(topic: String, payloadBytes: Int, qos: Int, propertyBytes: Int = 0) -> Int {
        let remaining = 2 + topic.utf8.count + (qos > 0 ? 2 : 0) + 1 + propertyBytes + payloadBytes
        let lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4
        return 1 + lengthBytes + remaining
    }
}

extension MQTTClient {
    /// `publish`, counted in `meter` under `cls` when handed over.
    func publish(_ cls: UplinkMeter.Class, meter: UplinkMeter?, topic: String, payload: [UInt8], qos: Int, retain: Bool,
                 properties: MQTTPublishProperties? = nil) async throws {
        let props = (properties?.correlationData.map { 3 + $0.count } ?? 0)
        meter?.count(.sent, cls, bytes: MQTTPacketEstimate.publish(topic: topic, payloadBytes: payload.count, qos: qos, propertyBytes: props))
        if qos > 0 { meter?.count(.received, .keepalive, bytes: UplinkMeter.pubackBytes) }   // the broker's PUBACK
        try await publish(topic: topic, payload: payload, qos: qos, retain: retain, properties: properties)
    }

    /// `send` (QoS 1, ack awaited by the caller), counted in `meter` under `cls` when handed over.
    func send(_ cls: UplinkMeter.Class, meter: UplinkMeter?, topic: String, payload: [UInt8], qos: Int, retain: Bool) throws -> MQTTDelivery {
        let delivery = try send(topic: topic, payload: payload, qos: qos, retain: retain)
        meter?.count(.sent, cls, bytes: MQTTPacketEstimate.publish(topic: topic, payloadBytes: payload.count, qos: qos))
        if qos > 0 { meter?.count(.received, .keepalive, bytes: UplinkMeter.pubackBytes) }   // the broker's PUBACK
        return delivery
    }
}

extension UplinkMeter {
    /// A received command (`…/cmd/#`).
    public func countReceived(_ message: MQTTMessage) {
        let props = (message.correlationData.map { 3 + $0.count } ?? 0) + (message.responseTopic.map { 3 + $0.utf8.count } ?? 0)
        count(.received, .commands, bytes: MQTTPacketEstimate.publish(topic: message.topic, payloadBytes: message.payload.count,
                                                                      qos: message.qos, propertyBytes: props))
        if message.qos > 0 { count(.sent, .keepalive, bytes: Self.pubackBytes) }   // the station's PUBACK
    }
}

/// What the monthly budget governor (TelemetryGovernor, `publishing.monthly_budget_mb`) decided last, for
/// `/metrics` and `swapctl status`: written by the StationPublisher, read by anyone.
public final class UplinkBudgetGauge: Sendable {
    public struct Reading: Sendable, Equatable {
        /// The configured monthly budget in bytes (nil: no budget, the governor is off).
        public var budgetBytes: Double?
        public var forecastBytes = 0.0
        public var factor = 1
        public var maxFactor = 1
        public var active: Bool { factor > 1 }
    }
    private let box = Locked(Reading())
    public init() {}
    public var current: Reading { box.withLock { $0 } }
    public func set(_ g: TelemetryGovernor) {
        box.withLock { $0 = Reading(budgetBytes: g.budgetBytes, forecastBytes: g.forecastBytes, factor: g.factor, maxFactor: g.maxFactor) }
    }
}
