#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import ControlProtocol
import StationDomain
import StationSupport

// Reading the station through the running daemon (its control socket). See docs/technician.md.

extension SwapCtl {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Station status: links to cabinet, broker and Odoo, versions, uptime, safe mode, alarms.")
        @OptionGroup var daemon: DaemonOptions

        func run() throws {
            try daemon.run(ControlRequest(op: "status"), as: StatusView.self) { s in
                func link(_ l: StatusView.Link) -> String {
                    // Odoo carries a state: up, DOWN, ALARM, unknown (nothing tried since the start), DOWN when not configured.
                    let word = l.state.map { $0 == "up" || $0 == "unknown" ? $0 : ($0 == "not_configured" ? "DOWN" : $0.uppercased()) } ?? (l.up ? "up" : "DOWN")
                    return word + "   \(l.detail)" + (l.lastError.map { "  (\($0))" } ?? "")
                }
                print("""
                station       \(s.stationID)   swapgate \(s.version), pid \(s.pid), up \(duration(s.uptimeSeconds)) (since \(s.startedAt))
                cabinet       \(cabinetSummaryLine(s) ?? link(s.cabinet))
                firmware      \(s.firmware ?? "-")\(s.cabinetUptimeSeconds.map { ", controller up \(duration(Int($0)))" } ?? "")
                safe mode     \(s.safeMode ? "YES (no unlocks)" : "no")\(s.cabinetFlags.isEmpty ? "" : "   flags: \(s.cabinetFlags.joined(separator: ","))")
                broker        \(link(s.broker))
                odoo          \(link(s.odoo))
                swaps         \(s.swapsInProgress) in progress
                entitlements  \(s.entitlements.count) cached, version \(s.entitlements.version.map(String.init) ?? "none")\(s.entitlements.ageHours.map { ", synced \($0) h ago" } ?? ", never synced")
                queues        \(s.eventsUnsent) events unsent, \(s.usagePending) usage records pending, \(s.usageRejected) rejected
                bus           \(s.acquisition.requests) requests, \(s.acquisition.busErrors) errors, \(s.acquisition.failedCycles) failed cycles, \(s.acquisition.reboots) controller reboots
                """)
                for c in s.cabinets ?? [] where c.state != nil || (s.cabinets?.count ?? 0) > 1 { print(cabinetLine(c)) }
                if let b = s.mqttBytes24h {
                    // The last 24 h of MQTT traffic (estimated PUBLISH packets), per class.
                    let sent = ["events", "telemetry", "inventory", "status", "replies", "keepalive"].map { "\($0) \(b.sent[$0] ?? 0)" }.joined(separator: ", ")
                    print("mqtt 24h      sent \(b.sent.values.reduce(0, +)) B (\(sent)); received \(b.received.values.reduce(0, +)) B (commands \(b.received["commands"] ?? 0), keepalive \(b.received["keepalive"] ?? 0); keepalive estimated)")
                }
                if let u = s.uplinkBudget {
                    // The monthly budget governor (publishing.monthly_budget_mb).
                    let mb = { (b: Int) in cFormat("%.2f MB", Double(b) / 1e6) }
                    print("budget        month forecast \(mb(u.forecastBytes)) of \(mb(u.budgetBytes)); "
                          + (u.active ? "governor ACTIVE: telemetry intervals and deadbands widened x\(u.factor) (max x\(u.maxFactor))" : "telemetry as configured"))
                }
                if let b = s.backlog, b.pacing {
                    // An outage's backlog draining at publishing.backlog_rate.
                    let eta = b.etaSeconds.map { "~\(max(1, Int(($0 / 60).rounded(.up)))) min" } ?? "~? min"
                    print("backlog       draining backlog: \(b.events) events, \(eta) at \(Int(b.rateBytesPerSecond)) B/s")
                }
                print(s.alarms.isEmpty ? "alarms        none" : "alarms        " + s.alarms.joined(separator: "\n              "))
            }
        }
    }

    struct Slots: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every slot as a table (live with --watch): state, door, battery, SoC, SoH, temperatures, faults.")
        @OptionGroup var daemon: DaemonOptions
        @Flag(name: .long, help: "Refresh until interrupted (Ctrl-C).") var watch = false
        @Option(name: .long, help: "Seconds between refreshes with --watch.") var interval = 1.0
        @Option(name: .long, help: "Stop --watch after this many refreshes (0: never).") var count = 0

        func run() throws {
            guard !watch else { return try watchLoop() }
            try daemon.run(ControlRequest(op: "slots"), as: SlotsView.self) { print(slotTable($0)) }
        }

        func watchLoop() throws {
            let client = try daemon.client()   // one connection for the whole watch
            var n = 0
            while count == 0 || n < count {
                let v = try client.call(ControlRequest(op: "slots"), as: SlotsView.self)
                if daemon.json {
                    let enc = ControlJSON.encoder()
                    print(String(decoding: (try? enc.encode(v)) ?? Data(), as: UTF8.self))
                } else {
                    if isatty(STDOUT_FILENO) != 0 { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                    print(slotTable(v))
                }
                fflush(nil)
                n += 1
                if count == 0 || n < count { usleep(useconds_t(max(0.1, interval) * 1_000_000)) }
            }
        }
    }

    struct BMS: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One slot's BMS with its cells (read through the daemon).")
        @Argument(help: "Slot: station-wide number (1…N) or cabinet/slot (B/3).") var slot: String
        @OptionGroup var daemon: DaemonOptions

        func validate() throws { try validateSlotArgument(slot) }

        func run() throws {
            var r = ControlRequest(op: "bms")
            r.setSlot(slot)
            try daemon.run(r, as: BMSView.self) { v in printBMS(slot: v.slot, cells: v.cells, cellsError: v.cellsError) }
        }
    }

    struct Read: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Raw Modbus read through the daemon's bus owner (function 04, or 03 with --holding).")
        @Option(help: "Modbus unit id (1: cabinet controller, 2: energy meter; another cabinet on the same bus: its unit).") var unit = 1
        @Option(help: "Several cabinets: read on this cabinet's bus (its id; default the first cabinet's).") var cabinet: String?
        @Option(help: "First register address.") var address: Int
        @Option(help: "Number of registers (1…125).") var count = 1
        @Flag(help: "Read holding registers (function 03) instead of input registers (04).") var holding = false
        @OptionGroup var daemon: DaemonOptions

        func run() throws {
            var r = ControlRequest(op: "read")
            r.unit = unit; r.cabinet = cabinet; r.address = address; r.count = count; r.table = holding ? "holding" : "input"
            try daemon.run(r, as: RawReadView.self) { v in
                print(table(["address", "hex", "dec"], v.registers.enumerated().map { i, reg in
                    [String(v.address + i), cFormat("0x%04X", UInt32(reg)), String(reg)]
                }))
            }
        }
    }

    struct Events: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The durable event log: the newest events, or search by type / from a seq.")
        @Option(help: "Only events of this type (e.g. swap.completed).") var type: String?
        @Option(name: .customLong("from-seq"), help: "Oldest first, starting at this seq.") var fromSeq: Int64?
        @Option(help: "At most this many events.") var limit = 20
        @OptionGroup var daemon: DaemonOptions

        func run() throws {
            var r = ControlRequest(op: "events")
            r.type = type; r.fromSeq = fromSeq; r.limit = limit
            try daemon.run(r, as: [EventView].self) { list in
                print(table(["seq", "time", "type", "sent", "data"], list.map {
                    [String($0.seq), $0.timestamp, $0.type, $0.sent ? "yes" : "no", String($0.data.prefix(100))]
                }))
            }
        }
    }

    struct Queues: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The MQTT event queue and the Odoo usage outbox, with rejected records.")
        @OptionGroup var daemon: DaemonOptions

        func run() throws {
            try daemon.run(ControlRequest(op: "queues"), as: QueuesView.self) { q in
                print("""
                events   \(q.eventsUnsent) unsent of \(q.eventsTotal) kept, last seq \(q.lastSeq)\(q.oldestUnsentAt.map { ", oldest unsent from \($0)" } ?? "")
                         broker \(q.brokerConnected ? "connected" : "NOT CONNECTED")\(q.lastPublishError.map { ", last error: \($0)" } ?? "")
                usage    \(q.usagePending) pending, \(q.usageRejected) rejected, \(q.usageSettled) settled\(q.oldestPendingUsageAt.map { ", oldest pending from \($0)" } ?? "")
                         odoo \(q.odooConfigured ? "configured" : "NOT CONFIGURED (records are kept)")\(q.odooAlarm.map { ", ALARM: \($0)" } ?? "")
                store    \(q.storeBytes / 1024) KiB
                """)
                if !q.rejected.isEmpty {
                    print("\nrejected by Odoo (re-send with `swapctl usage resend KEY` once fixed):")
                    print(usageTable(q.rejected))
                }
            }
        }
    }

    struct Entitlements: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A customer's cached entitlements, as the swap decision sees them.")
        @Argument(help: "The customer id.") var customer: String
        @OptionGroup var daemon: DaemonOptions

        func run() throws {
            var r = ControlRequest(op: "entitlements")
            r.customerID = customer
            try daemon.run(r, as: EntitlementLookupView.self) { v in
                print("cache version \(v.cache.version.map(String.init) ?? "none"), \(v.cache.count) records\(v.cache.ageHours.map { ", synced \($0) h ago" } ?? "")")
                if v.entitlements.isEmpty { print("no entitlement for \(v.customerID)"); return }
                print(table(["plan", "status", "family", "swaps used/quota", "energy used/quota kWh", "valid until", "batteries out"], v.entitlements.map {
                    [$0.planInstanceID, $0.status.rawValue, $0.batteryFamily,
                     "\($0.swapsUsed)/\($0.swapQuota < 0 ? "unlimited" : String($0.swapQuota))",
                     "\(fmt($0.energyUsedKWh, 3))/\($0.energyQuotaKWh < 0 ? "unlimited" : fmt($0.energyQuotaKWh, 3))",
                     RFC3339.format($0.validUntil), $0.batteriesOut.isEmpty ? "-" : $0.batteriesOut.joined(separator: ",")]
                }))
            }
        }
    }

    struct Audit: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The audit trail, newest first: swaps, unlocks, technician actions.")
        @Option(help: "At most this many lines.") var limit = 30
        @OptionGroup var daemon: DaemonOptions

        func run() throws {
            var r = ControlRequest(op: "audit")
            r.limit = limit
            try daemon.run(r, as: [AuditView].self) { list in
                print(table(["time", "actor", "action", "detail"], list.map { [$0.timestamp, $0.actor, $0.action, String($0.detail.prefix(100))] }))
            }
        }
    }
}

/// The `cabinet` summary line of `swapctl status`: `online` (every cabinet online), `DEGRADED` (and which are
/// not), `DOWN` (none online) or `unknown` (none polled yet). Nil from an older daemon (no summary state).
func cabinetSummaryLine(_ s: StatusView) -> String? {
    guard let state = s.cabinet.state else { return nil }
    let word = state == "online" || state == "unknown" ? state : state.uppercased()
    var rest = s.cabinet.detail.hasPrefix(state + ": ") ? String(s.cabinet.detail.dropFirst(state.count + 2)) : s.cabinet.detail
    if rest == state { rest = "" }
    return rest.isEmpty ? word : "\(word)   \(rest)"
}

/// One line per cabinet: its state, unit, transport and address, station slots, and how its polling goes
/// (last poll, failures in a row, backoff and next retry while it does not answer, watchdog writes, clock set).
func cabinetLine(_ c: CabinetLinkView, now: Date = Date()) -> String {
    func ago(_ t: String?) -> String? {
        guard let t, let d = RFC3339.parse(t) else { return nil }
        let s = now.timeIntervalSince(d)
        return s < 10 ? cFormat("%.1f s ago", max(0, s)) : "\(duration(Int(s))) ago"
    }
    let state = c.state ?? (c.up ? "online" : "unreachable")
    let word = state == "online" || state == "unknown" ? state : state.uppercased()
    let range = c.slotCount > 0 ? "slots \(c.firstSlot)…\(c.firstSlot + c.slotCount - 1)" : "slots not numbered yet"
    let address = c.transport.map { "\($0) \(c.address ?? "")" } ?? c.bus
    var line = "cabinet \(pad(c.id, 5)) \(pad(word, 12))"
        + " unit \(c.unit), \(address), \(range)\(c.stale == true ? " STALE" : "")"
    var polling: [String] = []
    if c.polls == 0 { polling.append("not polled yet") }
    if let ok = c.lastPollOK, let when = ago(c.lastPollAt) { polling.append("last poll \(ok ? "ok" : "FAILED") \(when)") }
    if let n = c.consecutiveFailures, n > 0 {
        polling.append("\(n) failed polls in a row" + (ago(c.lastAnswerAt).map { ", last answer \($0)" } ?? ", never answered"))
        if let b = c.backoffSeconds, b > 0 {
            let next = c.nextPollAt.flatMap(RFC3339.parse).map { max(0, $0.timeIntervalSince(now)) }
            polling.append("retry " + (next.map { cFormat("in %.1f s", $0) } ?? "soon") + cFormat(" (backoff %g s)", b))
        }
    }
    if let w = c.watchdogWrites {
        polling.append("watchdog \(w) ok/\(c.watchdogErrors ?? 0) failed" + (ago(c.lastWatchdogAt).map { " (last \($0))" } ?? ""))
    }
    if c.transport != nil { polling.append(c.clockSetAt.map { "clock set \($0)" } ?? "clock NOT set") }
    if c.safeMode { polling.append("safe mode YES (no unlocks)") }
    // Flags worth a look (mains_ok is the normal state; its absence is not).
    let flags = c.flags.filter { $0 != "mains_ok" } + (c.firmware != nil && !c.flags.contains("mains_ok") ? ["MAINS LOST"] : [])
    if !flags.isEmpty { polling.append("flags \(flags.joined(separator: ","))") }
    if !polling.isEmpty { line += "; " + polling.joined(separator: ", ") }
    if state != "online", let e = c.lastError { line += "  (\(e))" }
    return line
}
