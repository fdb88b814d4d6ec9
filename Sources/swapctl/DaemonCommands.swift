import ArgumentParser
import Foundation
import ControlProtocol
import GatewayConfig
import StationDomain
import StationSupport

// swapctl commands that go through the running daemon (its control socket). See docs/technician.md.

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
            cabinet       \(link(s.cabinet))
            firmware      \(s.firmware ?? "-")\(s.cabinetUptimeSeconds.map { ", controller up \(duration(Int($0)))" } ?? "")
            safe mode     \(s.safeMode ? "YES (no unlocks)" : "no")\(s.cabinetFlags.isEmpty ? "" : "   flags: \(s.cabinetFlags.joined(separator: ","))")
            broker        \(link(s.broker))
            odoo          \(link(s.odoo))
            swaps         \(s.swapsInProgress) in progress
            entitlements  \(s.entitlements.count) cached, version \(s.entitlements.version.map(String.init) ?? "none")\(s.entitlements.ageHours.map { ", synced \($0) h ago" } ?? ", never synced")
            queues        \(s.eventsUnsent) events unsent, \(s.usagePending) usage records pending, \(s.usageRejected) rejected
            bus           \(s.acquisition.requests) requests, \(s.acquisition.busErrors) errors, \(s.acquisition.failedCycles) failed cycles, \(s.acquisition.reboots) controller reboots
            """)
            if let cabs = s.cabinets, cabs.count > 1 {
                for c in cabs {
                    let range = c.slotCount > 0 ? "slots \(c.firstSlot)…\(c.firstSlot + c.slotCount - 1)" : "slots not numbered yet"
                    print("cabinet \(c.id.padding(toLength: 5, withPad: " ", startingAt: 0)) \(c.up ? "up" : "DOWN")   unit \(c.unit) on \(c.bus), \(range), safe mode \(c.safeMode ? "YES" : "no")"
                          + (c.flags.isEmpty ? "" : ", flags \(c.flags.joined(separator: ","))") + (c.up ? "" : (c.lastError.map { "  (\($0))" } ?? "")))
                }
            }
            print(s.alarms.isEmpty ? "alarms        none" : "alarms        " + s.alarms.joined(separator: "\n              "))
        }
    }
}

extension ControlRequest {
    /// "7" goes as the station-wide `slot`; "B/3" as `slotName`, resolved by the daemon (it knows the cabinets).
    mutating func setSlot(_ text: String) {
        if let n = Int(text) { slot = n } else { slotName = text }
    }
}

/// A slot argument is a number ("7") or cabinet/number ("B/3"); anything else is a usage error (exit 1).
func validateSlotArgument(_ text: String) throws {
    if Int(text) != nil { return }
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, !parts[0].isEmpty, Int(parts[1]) != nil else {
        throw ValidationError("slot must be a number (7) or cabinet/number (B/3), got '\(text)'")
    }
}

func duration(_ seconds: Int) -> String {
    let d = seconds / 86_400, h = (seconds % 86_400) / 3600, m = (seconds % 3600) / 60, s = seconds % 60
    return d > 0 ? "\(d)d \(h)h" : (h > 0 ? "\(h)h \(m)m" : (m > 0 ? "\(m)m \(s)s" : "\(s)s"))
}

func slotTable(_ v: SlotsView) -> String {
    // Several cabinets: each slot also as cabinet/its own number (B/3), the form `bms`, `unlock` and `service` accept too.
    let several = Set(v.slots.compactMap(\.slot.cabinet)).count > 1
    let rows = v.slots.map { r -> [String] in
        let s = r.slot, b = s.bms
        let number = several ? "\(s.number)  \(s.cabinet ?? "?")/\(s.cabinetSlot ?? 0)" : String(s.number)
        return [number, r.status, s.doorClosed ? (s.locked ? "locked" : "closed") : "OPEN",
                b?.batteryID ?? (s.batteryPresent ? "?" : "-"), b?.family.name ?? "-",
                b.map { fmt($0.socPercent) } ?? "-", b.map { fmt($0.sohPercent) } ?? "-",
                b.map { fmt($0.packVoltage, 2) } ?? "-", b.map { fmt($0.packCurrent, 2) } ?? "-",
                b.map { "\(fmt($0.tempMin))…\(fmt($0.tempMax))" } ?? "-",
                s.fault == .none ? (s.bmsError.map { "data: \($0)" } ?? (r.quarantine?.joined(separator: ",") ?? "-")) : s.fault.description]
    }
    var head = "updated \(v.updatedAt ?? "never")"
    if v.cabinetStale { head += "   CABINET NOT ANSWERING: values are the last known, not used for swaps" }
    if v.safeMode { head += "   SAFE MODE" }
    return head + "\n" + table(["slot", "status", "door", "battery", "family", "soc%", "soh%", "V", "A", "temp°C", "fault"], rows)
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

func printBMS(slot s: SlotStatus, cells: CellDetail?, cellsError: String?) {
    print("slot \(s.number)\(s.cabinet.map { " (\($0)/\(s.cabinetSlot ?? 0))" } ?? ""): \(s.state.description.isEmpty ? "-" : s.state.description), fault \(s.fault), doors opened \(s.doorOpenCount)×, inserts \(s.insertCount)\(s.stale ? ", NOT ANSWERING (last known values)" : "")")
    guard let b = s.bms else {
        print(s.batteryPresent ? "battery present but no BMS data\(s.bmsError.map { " (\($0))" } ?? "")" : "no battery")
        return
    }
    print("""
    battery       \(b.batteryID) (\(b.family.name))
    soc / soh     \(fmt(b.socPercent)) % / \(fmt(b.sohPercent)) %
    pack          \(fmt(b.packVoltage, 2)) V, \(fmt(b.packCurrent, 2)) A
    temperature   \(fmt(b.tempMin)) … \(fmt(b.tempMax)) °C
    capacity      \(fmt(b.remainingCapacityAh, 2)) of \(fmt(b.fullCapacityAh, 2)) Ah
    cycles        \(b.cycleCount)
    cell V        \(fmt(b.cellVMin, 3)) … \(fmt(b.cellVMax, 3)) V
    protection    \(b.protection)
    warning       \(b.warning)
    """)
    if let cells {
        for (i, v) in cells.cellVoltages.enumerated() { print(String(format: "cell %2d       %.3f V", i + 1, v)) }
        print("probes        \(cells.probeTemperatures.map { $0.map { fmt($0) + " °C" } ?? "absent" }.joined(separator: ", "))")
    } else if let cellsError {
        print("cells         not read: \(cellsError)")
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
                [String(v.address + i), String(format: "0x%04X", reg), String(reg)]
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

func usageTable(_ items: [UsageView]) -> String { UsageView.table(items) }

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

/// The technician's name and credential for cabinet actions. The credential is read from a file, the
/// environment (SWAPCTL_CREDENTIAL) or the terminal without echo — never from the command line, where
/// it would be visible to every user in the process list.
struct TechnicianOptions: ParsableArguments {
    @Option(name: .long, help: "Your technician name (as in the technicians file).") var technician: String
    @Option(name: .customLong("credential-file"), help: "File holding your credential (else $SWAPCTL_CREDENTIAL, else a prompt).")
    var credentialFile: String?
    @Option(help: "Why (recorded in the audit trail; an unlock's reason is also sent to ABS).") var reason = "maintenance"

    func credential() throws -> String {
        if let credentialFile {
            guard let d = FileManager.default.contents(atPath: credentialFile) else { throw fail("cannot read \(credentialFile)", code: 1) }
            return String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let env = ProcessInfo.processInfo.environment["SWAPCTL_CREDENTIAL"], !env.isEmpty { return env }
        guard isatty(STDIN_FILENO) != 0, let p = getpass("credential for \(technician): ") else {
            throw fail("no credential: use --credential-file, SWAPCTL_CREDENTIAL or a terminal", code: 1)
        }
        return String(cString: p)
    }
}

struct Unlock: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Maintenance unlock of one slot (technician credential required; audited; published as maintenance.unlock).")
    @Argument(help: "Slot: station-wide number or cabinet/slot (B/3).") var slot: String
    @OptionGroup var tech: TechnicianOptions
    @OptionGroup var daemon: DaemonOptions

    func validate() throws { try validateSlotArgument(slot) }

    func run() throws {
        var r = ControlRequest(op: "unlock")
        r.setSlot(slot); r.technician = tech.technician; r.credential = try tech.credential(); r.reason = tech.reason
        try daemon.run(r, as: ActionView.self) { print("slot \($0.slot) unlocked (\($0.result)); the door re-locks when closed") }
    }
}

struct Service: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Take a slot out of service or back into service (technician credential required; audited).")
    @Argument(help: "Slot: station-wide number or cabinet/slot (B/3).") var slot: String
    @Flag(exclusivity: .exclusive, help: "out: no swap uses the slot; in: back into service.")
    var mode: ServiceMode
    @OptionGroup var tech: TechnicianOptions
    @OptionGroup var daemon: DaemonOptions

    enum ServiceMode: EnumerableFlag { case out, `in` }

    func validate() throws { try validateSlotArgument(slot) }

    func run() throws {
        var r = ControlRequest(op: "service")
        r.setSlot(slot); r.inService = mode == .in; r.technician = tech.technician; r.credential = try tech.credential(); r.reason = tech.reason
        try daemon.run(r, as: ActionView.self) { print("slot \($0.slot) \(mode == .in ? "back in service" : "out of service") (\($0.result))") }
    }
}

struct LocalSwap: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "swap",
        abstract: "Request a swap as the station's local terminal does (decided from the cached entitlements, also offline).")
    @Argument(help: "The customer id.") var customer: String
    @Option(help: "The plan instance (when the customer has several).") var plan: String?
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        var r = ControlRequest(op: "swap")
        r.customerID = customer; r.planInstanceID = plan
        let v = try daemon.client().call(r, as: SwapReplyView.self)
        if daemon.json { printJSON(v) } else {
            print(v.accepted ? "accepted (\(v.requestID)): \(v.data ?? "")" : "refused: \(v.code ?? "?") \(v.message ?? "")")
        }
        if !v.accepted { throw ExitCode(ExitStatus.refused) }
    }
}

struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check a configuration file, or show the running daemon's (secrets redacted).",
                                                    subcommands: [ConfigCheck.self, ConfigShow.self])
}

struct ConfigCheck: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Check a configuration file; every problem is printed with its key.")
    @Option(name: .shortAndLong, help: "The file.") var config = "/etc/swapgate/swapgate.yaml"

    func run() throws {
        let (ok, text) = GatewayConfiguration.checkReport(path: config)
        print(text)
        if !ok { throw ExitCode(1) }
    }
}

struct ConfigShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "The running daemon's configuration file, secrets redacted.")
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        try daemon.run(ControlRequest(op: "config"), as: ConfigView.self) { v in
            print("# \(v.path) (sha256 \(v.digest))")
            print(v.text)
        }
    }
}

struct Diagnostics: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write one file for support: status, queues, slots, recent events, audit, recent log lines, metrics, config without secrets.")
    @Option(name: .shortAndLong, help: "Output file (default: swapgate-diagnostics-<station>-<time>.json in the current folder).")
    var output: String?
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        let bundle = try daemon.client().call(ControlRequest(op: "diagnostics"), as: DiagnosticsBundle.self)
        let stamp = bundle.createdAt.replacingOccurrences(of: ":", with: "").replacingOccurrences(of: ".", with: "")
        let path = output ?? "swapgate-diagnostics-\(bundle.status.stationID)-\(stamp).json"
        let enc = ControlJSON.encoder(pretty: true)
        let data = try enc.encode(bundle)
        guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw fail("cannot write \(path)", code: 1)
        }
        print("\(path): \(data.count / 1024) KiB (status, queues, \(bundle.slots.slots.count) slots, \(bundle.recentEvents.count) events, \(bundle.audit.count) audit lines, \(bundle.recentLog.count) log lines, metrics, config without secrets)")
    }
}

struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the daemon's Prometheus metrics (as served on /metrics).")
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        try daemon.run(ControlRequest(op: "metrics"), as: MetricsText.self) { print($0.text, terminator: "") }
    }
}
