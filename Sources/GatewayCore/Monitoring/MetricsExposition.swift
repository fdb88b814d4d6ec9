import Acquisition
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
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

    /// `cabinets`: every cabinet's report (CabinetReports); the bus, cabinet and slot families then carry a
    /// `cabinet` label, one series per cabinet (one cabinet: `cabinet="A"`, the same family names as before).
    /// Without it (nil), those families are the station's totals, unlabelled.
    public static func render(metrics: GatewayMetrics, acquisition a: AcquisitionStatistics, snapshot: StationSnapshot,
                              log: EventLogStats?, usage: UsageStats?, mqttConnected: Bool, cabinets: [CabinetReport]? = nil,
                              now: Date = Date()) -> String {
        var out = metrics.prometheusText()
        if let clock = ClockTrustMark.installed {
            out += "# HELP swapgate_clock_synced 1 when the station's clock is trusted (synchronised), 0 while commands are judged against the signed time base.\n# TYPE swapgate_clock_synced gauge\n"
            out += "swapgate_clock_synced \(clock.isTrusted ? 1 : 0)\n"
            out += "# HELP swapgate_clock_base_seconds The signed time base (newest accepted issued_at plus time since), unix seconds; 0: none yet.\n# TYPE swapgate_clock_base_seconds gauge\n"
            out += "swapgate_clock_base_seconds \(Int(clock.baseNow?.timeIntervalSince1970 ?? 0))\n"
        }
        func family(_ name: String, _ type: String, _ help: String) { out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        /// One row per cabinet (`name{cabinet="A"<extra>} value`), or the station's one unlabelled row.
        struct Row { var labels: String; var stats: AcquisitionStatistics; var report: CabinetReport? }
        let rows: [Row] = cabinets.map { $0.map { Row(labels: "cabinet=\"\(escapeLabelValue($0.id))\"", stats: $0.statistics, report: $0) } }
            ?? [Row(labels: "", stats: a, report: nil)]
        func series(_ name: String, _ row: Row, _ extra: String = "", _ value: String) {
            let labels = [row.labels, extra].filter { !$0.isEmpty }.joined(separator: ",")
            out += labels.isEmpty ? "\(name) \(value)\n" : "\(name){\(labels)} \(value)\n"
        }
        family("swapgate_bus_requests_total", "counter", "Modbus requests made by the polling loop.")
        for r in rows { series("swapgate_bus_requests_total", r, "", "\(r.stats.requests)") }
        family("swapgate_bus_errors_total", "counter", "Modbus requests that failed (timeout, CRC, exception, lost link).")
        for r in rows { series("swapgate_bus_errors_total", r, "", "\(r.stats.busErrors)") }
        family("swapgate_bus_cycles_total", "counter", "Polling cycles, and those in which the cabinet did not answer.")
        for r in rows {
            series("swapgate_bus_cycles_total", r, "result=\"ok\"", "\(max(0, r.stats.cycles - r.stats.failedCycles))")
            series("swapgate_bus_cycles_total", r, "result=\"failed\"", "\(r.stats.failedCycles)")
        }
        family("swapgate_bus_cycle_seconds", "summary", "Time on the bus per polling cycle (all its round trips).")
        for r in rows {
            series("swapgate_bus_cycle_seconds_sum", r, "", "\(r.stats.busSeconds)")
            series("swapgate_bus_cycle_seconds_count", r, "", "\(r.stats.cycles)")
        }
        family("swapgate_bus_last_cycle_seconds", "gauge", "Time on the bus of the last polling cycle.")
        for r in rows { series("swapgate_bus_last_cycle_seconds", r, "", "\(r.stats.lastCycleBusSeconds)") }
        family("swapgate_cabinet_reboots_total", "counter", "Cabinet controller reboots seen (uptime fell).")
        for r in rows { series("swapgate_cabinet_reboots_total", r, "", "\(r.stats.reboots)") }
        family("swapgate_cabinet_commands_total", "counter", "Commands confirmed by the cabinet (unlocks, service changes).")
        for r in rows { series("swapgate_cabinet_commands_total", r, "", "\(r.stats.commands)") }
        family("swapgate_cabinet_up", "gauge", "1 while the cabinet answers (not stale).")
        for r in rows {
            let up = r.report.map { $0.state == .online || $0.state == .safeMode } ?? !(snapshot.cabinetStale || snapshot.cabinet == nil)
            series("swapgate_cabinet_up", r, "", up ? "1" : "0")
        }
        family("swapgate_cabinet_safe_mode", "gauge", "1 while the controller is in safe mode.")
        for r in rows {
            let safe = r.report.map { $0.state == .safeMode } ?? (snapshot.cabinet?.safeMode == true)
            series("swapgate_cabinet_safe_mode", r, "", safe ? "1" : "0")
        }
        if cabinets != nil {
            func each(_ name: String, _ type: String, _ help: String, _ value: (CabinetReport) -> String) {
                family(name, type, help)
                for r in rows { if let rep = r.report { series(name, r, "", value(rep)) } }
            }
            family("swapgate_cabinet_state", "gauge", "1 for the cabinet's link state (online, unreachable, safe_mode, unknown), 0 for the others.")
            for r in rows {
                for st in CabinetLinkState.allCases { series("swapgate_cabinet_state", r, "state=\"\(st.rawValue)\"", r.report?.state == st ? "1" : "0") }
            }
            each("swapgate_cabinet_stale", "gauge", "1 while the cabinet's slots are stale (unknown): out of swaps.") { $0.stale ? "1" : "0" }
            each("swapgate_cabinet_consecutive_failures", "gauge", "Polls in a row the cabinet did not answer (0 while it answers).") { "\($0.statistics.consecutiveFailures)" }
            each("swapgate_cabinet_backoff_seconds", "gauge", "While the cabinet does not answer: seconds between its polls (reconnect backoff); 0 while it answers.") { "\($0.statistics.backoffSeconds)" }
            family("swapgate_cabinet_watchdog_writes_total", "counter", "Watchdog writes to the controller by result.")
            for r in rows {
                series("swapgate_cabinet_watchdog_writes_total", r, "result=\"ok\"", "\(r.stats.watchdogWrites)")
                series("swapgate_cabinet_watchdog_writes_total", r, "result=\"failed\"", "\(r.stats.watchdogErrors)")
            }
            each("swapgate_cabinet_clock_set_timestamp_seconds", "gauge", "When the gateway last set the controller's clock, unix seconds; 0: not since the start.") {
                "\(Int($0.statistics.clockSetAt?.timeIntervalSince1970 ?? 0))"
            }
        }

        let keys = ["unknown", "out_of_service", "fault", "empty", "charging", "charged", "occupied"]
        var states: [String: [String: Int]] = [:]   // row labels → state → count
        for r in rows { states[r.labels] = Dictionary(uniqueKeysWithValues: keys.map { ($0, 0) }) }
        for s in snapshot.slots {
            let key: String
            if s.stale { key = "unknown" } else if !s.inService { key = "out_of_service" } else if s.faulted { key = "fault" }
            else if !s.batteryPresent { key = "empty" } else if s.charging { key = "charging" }
            else if s.chargeComplete { key = "charged" } else { key = "occupied" }
            let row = rows.first { $0.report == nil || $0.report?.id == (s.cabinet ?? rows[0].report?.id) } ?? rows[0]
            states[row.labels, default: [:]][key, default: 0] += 1
        }
        family("swapgate_slots", "gauge", "Slots by state.")
        for r in rows {
            for (k, v) in (states[r.labels] ?? [:]).sorted(by: { $0.key < $1.key }) { series("swapgate_slots", r, "state=\"\(escapeLabelValue(k))\"", "\(v)") }
        }

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
