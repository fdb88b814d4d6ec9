import ABSProtocol
import Acquisition
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The daemon's own counters and histograms, rendered as Prometheus text (issue 6 serves them on loopback).
/// Kept in-house: a handful of series do not justify a metrics framework on a small board.
public final class GatewayMetrics: Sendable {
    struct State {
        var swaps: [String: Int] = [:]
        var commands: [String: Int] = [:]
        var decisionBuckets = [Int](repeating: 0, count: GatewayMetrics.bounds.count)
        var decisionCount = 0
        var decisionSum = 0.0
        var decisionSamples: [Double] = []
        var odoo: [String: Int] = [:]
        var odooCredentialAlarm = false
    }
    static let bounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
    private let box = Locked(State())
    /// Bytes on the MQTT link per direction and class (UplinkMeter), counted at the gateway's publish call sites.
    public let traffic = UplinkMeter()
    /// The event publisher's backlog pacing (BacklogPacer): pacing now, rate, average event size.
    public let backlog = BacklogGauge()
    /// The monthly budget governor's last decision (publishing.monthly_budget_mb).
    public let budget = UplinkBudgetGauge()
    public init() {}

    public func countSwap(outcome: String) { box.withLock { $0.swaps[outcome, default: 0] += 1 } }
    /// The command name comes from the topic (anyone may publish there): names the contract does not know are
    /// counted under `unknown`, so a stranger cannot add series; results are the station's own codes.
    public func countCommand(_ name: String, result: String) {
        let known = Self.knownCommands.contains(name) ? name : "unknown"
        box.withLock { $0.commands["\(known)|\(result)", default: 0] += 1 }
    }
    static let knownCommands: Set<String> = Set(CommandName.allCases.map(\.rawValue)).union(["rebirth"])
    public func observeDecision(seconds: Double) {
        box.withLock { s in
            s.decisionCount += 1
            s.decisionSum += seconds
            for (i, b) in Self.bounds.enumerated() where seconds <= b { s.decisionBuckets[i] += 1 }
            if s.decisionSamples.count < 100_000 { s.decisionSamples.append(seconds) }
        }
    }
    public var swapCounts: [String: Int] { box.withLock { $0.swaps } }
    /// Odoo usage-log outcomes (recorded, duplicate, rejected, credentials, transient).
    public func countOdoo(_ outcome: String, _ n: Int = 1) { box.withLock { $0.odoo[outcome, default: 0] += n } }
    public func setOdooCredentialAlarm(_ on: Bool) { box.withLock { $0.odooCredentialAlarm = on } }
    public var odooCounts: [String: Int] { box.withLock { $0.odoo } }
    public var odooCredentialAlarm: Bool { box.withLock { $0.odooCredentialAlarm } }
    /// Recorded decision latencies (seconds), for the benchmark's percentiles.
    public var decisionSamples: [Double] { box.withLock { $0.decisionSamples } }

    public func prometheusText() -> String {
        let s = box.current
        var out = "# HELP swapgate_swaps_total Swap requests by outcome.\n# TYPE swapgate_swaps_total counter\n"
        let esc = MetricsExposition.escapeLabelValue
        for (k, v) in s.swaps.sorted(by: { $0.key < $1.key }) { out += "swapgate_swaps_total{outcome=\"\(esc(k))\"} \(v)\n" }
        out += "# HELP swapgate_commands_total ABS commands by name and result.\n# TYPE swapgate_commands_total counter\n"
        for (k, v) in s.commands.sorted(by: { $0.key < $1.key }) {
            let parts = k.split(separator: "|", maxSplits: 1).map(String.init)
            out += "swapgate_commands_total{command=\"\(esc(parts[0]))\",result=\"\(esc(parts.count > 1 ? parts[1] : ""))\"} \(v)\n"
        }
        out += "# HELP swapgate_odoo_usage_total Usage-log attempts by outcome.\n# TYPE swapgate_odoo_usage_total counter\n"
        for (k, v) in s.odoo.sorted(by: { $0.key < $1.key }) { out += "swapgate_odoo_usage_total{outcome=\"\(esc(k))\"} \(v)\n" }
        out += "# HELP swapgate_odoo_credentials_alarm 1 while Odoo refuses the station's credentials.\n# TYPE swapgate_odoo_credentials_alarm gauge\n"
        out += "swapgate_odoo_credentials_alarm \(s.odooCredentialAlarm ? 1 : 0)\n"
        out += "# HELP swapgate_decision_seconds Swap decision latency (request received to reply built).\n# TYPE swapgate_decision_seconds histogram\n"
        for (i, b) in Self.bounds.enumerated() { out += "swapgate_decision_seconds_bucket{le=\"\(b)\"} \(s.decisionBuckets[i])\n" }
        out += "swapgate_decision_seconds_bucket{le=\"+Inf\"} \(s.decisionCount)\nswapgate_decision_seconds_sum \(s.decisionSum)\nswapgate_decision_seconds_count \(s.decisionCount)\n"
        out += "# HELP swapgate_mqtt_bytes_total Estimated MQTT bytes (PUBLISH packets: payload, topic, headers; keepalive: PINGREQ/PINGRESP and PUBACKs, estimated) by direction and class.\n# TYPE swapgate_mqtt_bytes_total counter\n"
        let totals = traffic.totals
        for d in UplinkMeter.Direction.allCases {
            for c in UplinkMeter.Class.allCases where c == .keepalive || (d == .received) == (c == .commands) {
                out += "swapgate_mqtt_bytes_total{direction=\"\(d.rawValue)\",class=\"\(c.rawValue)\"} \(totals["\(d.rawValue)|\(c.rawValue)"] ?? 0)\n"
            }
        }
        let b = backlog.current
        out += "# HELP swapgate_events_backlog_pacing 1 while the event publisher paces a backlog (publishing.backlog_rate).\n# TYPE swapgate_events_backlog_pacing gauge\n"
        out += "swapgate_events_backlog_pacing \(b.pacing ? 1 : 0)\n"
        out += "# HELP swapgate_events_backlog_rate_bytes Configured backlog drain rate in bytes per second (0 = unlimited).\n# TYPE swapgate_events_backlog_rate_bytes gauge\n"
        out += "swapgate_events_backlog_rate_bytes \(b.rate)\n"
        let g = budget.current
        out += "# HELP swapgate_telemetry_widening_factor Telemetry intervals and deadbands are multiplied by this (monthly budget governor; 1 = as configured).\n# TYPE swapgate_telemetry_widening_factor gauge\n"
        out += "swapgate_telemetry_widening_factor \(g.factor)\n"
        if let budgetBytes = g.budgetBytes {
            out += "# HELP swapgate_uplink_month_forecast_bytes MQTT bytes forecast for a month from the rolling 24 h (every class, both directions).\n# TYPE swapgate_uplink_month_forecast_bytes gauge\n"
            out += "swapgate_uplink_month_forecast_bytes \(Int(g.forecastBytes))\n"
            out += "# HELP swapgate_uplink_month_budget_bytes The configured monthly MQTT budget (publishing.monthly_budget_mb).\n# TYPE swapgate_uplink_month_budget_bytes gauge\n"
            out += "swapgate_uplink_month_budget_bytes \(Int(budgetBytes))\n"
        }
        return out
    }
}
