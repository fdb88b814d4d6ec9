import Acquisition
import Foundation
import StationDomain
import StationStore

/// The Prometheus text the daemon serves on loopback (`/metrics`): its own counters (GatewayMetrics) plus
/// gauges read at scrape time from the acquisition, the store and the MQTT link.
public enum MetricsExposition {
    /// A label value as the Prometheus text format wants it: backslash, double quote and line feed escaped.
    public static func escapeLabelValue(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for ch in value.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    public static func render(metrics: GatewayMetrics, acquisition a: AcquisitionStatistics, snapshot: StationSnapshot,
                              log: EventLogStats?, usage: UsageStats?, mqttConnected: Bool, now: Date = Date()) -> String {
        var out = metrics.prometheusText()
        if let clock = ClockTrustMark.installed {
            out += "# HELP swapgate_clock_synced 1 when the station's clock is trusted (synchronised), 0 while commands are judged against the signed time base.\n# TYPE swapgate_clock_synced gauge\n"
            out += "swapgate_clock_synced \(clock.isTrusted ? 1 : 0)\n"
            out += "# HELP swapgate_clock_base_seconds The signed time base (newest accepted issued_at plus time since), unix seconds; 0: none yet.\n# TYPE swapgate_clock_base_seconds gauge\n"
            out += "swapgate_clock_base_seconds \(Int(clock.baseNow?.timeIntervalSince1970 ?? 0))\n"
        }
        func family(_ name: String, _ type: String, _ help: String) { out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        family("swapgate_bus_requests_total", "counter", "Modbus requests made by the polling loop.")
        out += "swapgate_bus_requests_total \(a.requests)\n"
        family("swapgate_bus_errors_total", "counter", "Modbus requests that failed (timeout, CRC, exception, lost link).")
        out += "swapgate_bus_errors_total \(a.busErrors)\n"
        family("swapgate_bus_cycles_total", "counter", "Polling cycles, and those in which the cabinet did not answer.")
        out += "swapgate_bus_cycles_total{result=\"ok\"} \(max(0, a.cycles - a.failedCycles))\n"
        out += "swapgate_bus_cycles_total{result=\"failed\"} \(a.failedCycles)\n"
        family("swapgate_bus_cycle_seconds", "summary", "Time on the bus per polling cycle (all its round trips).")
        out += "swapgate_bus_cycle_seconds_sum \(a.busSeconds)\nswapgate_bus_cycle_seconds_count \(a.cycles)\n"
        family("swapgate_bus_last_cycle_seconds", "gauge", "Time on the bus of the last polling cycle.")
        out += "swapgate_bus_last_cycle_seconds \(a.lastCycleBusSeconds)\n"
        family("swapgate_cabinet_reboots_total", "counter", "Cabinet controller reboots seen (uptime fell).")
        out += "swapgate_cabinet_reboots_total \(a.reboots)\n"
        family("swapgate_cabinet_commands_total", "counter", "Commands confirmed by the cabinet (unlocks, service changes).")
        out += "swapgate_cabinet_commands_total \(a.commands)\n"
        family("swapgate_cabinet_up", "gauge", "1 while the cabinet answers (not stale).")
        out += "swapgate_cabinet_up \(snapshot.cabinetStale || snapshot.cabinet == nil ? 0 : 1)\n"
        family("swapgate_cabinet_safe_mode", "gauge", "1 while the controller is in safe mode.")
        out += "swapgate_cabinet_safe_mode \(snapshot.cabinet?.safeMode == true ? 1 : 0)\n"

        var states: [String: Int] = ["unknown": 0, "out_of_service": 0, "fault": 0, "empty": 0, "charging": 0, "charged": 0, "occupied": 0]
        for s in snapshot.slots {
            let key: String
            if s.stale { key = "unknown" } else if !s.inService { key = "out_of_service" } else if s.faulted { key = "fault" }
            else if !s.batteryPresent { key = "empty" } else if s.charging { key = "charging" }
            else if s.chargeComplete { key = "charged" } else { key = "occupied" }
            states[key, default: 0] += 1
        }
        family("swapgate_slots", "gauge", "Slots by state.")
        for (k, v) in states.sorted(by: { $0.key < $1.key }) { out += "swapgate_slots{state=\"\(escapeLabelValue(k))\"} \(v)\n" }

        family("swapgate_mqtt_connected", "gauge", "1 while the MQTT session to the broker is up.")
        out += "swapgate_mqtt_connected \(mqttConnected ? 1 : 0)\n"
        if let log {
            family("swapgate_events_unsent", "gauge", "Events recorded but not yet acknowledged by the broker.")
            out += "swapgate_events_unsent \(log.unsent)\n"
            family("swapgate_events_last_seq", "gauge", "The last event seq given out.")
            out += "swapgate_events_last_seq \(log.lastSeq)\n"
            family("swapgate_events_oldest_unsent_age_seconds", "gauge", "Age of the oldest event not yet acknowledged (0 when none).")
            out += "swapgate_events_oldest_unsent_age_seconds \(log.oldestUnsentTimestamp.map { max(0, now.timeIntervalSince($0)) } ?? 0)\n"
            family("swapgate_store_bytes", "gauge", "Size of the station database and its write-ahead log.")
            out += "swapgate_store_bytes \(log.fileBytes)\n"
        }
        if let usage {
            family("swapgate_usage_records", "gauge", "Odoo usage records by state.")
            out += "swapgate_usage_records{state=\"pending\"} \(usage.pending)\n"
            out += "swapgate_usage_records{state=\"rejected\"} \(usage.rejected)\n"
            out += "swapgate_usage_records{state=\"settled\"} \(usage.settled)\n"
            family("swapgate_usage_oldest_pending_age_seconds", "gauge", "Age of the oldest usage record not yet accepted by Odoo (0 when none).")
            out += "swapgate_usage_oldest_pending_age_seconds \(usage.oldestPendingAt.map { max(0, now.timeIntervalSince($0)) } ?? 0)\n"
        }
        return out
    }
}
