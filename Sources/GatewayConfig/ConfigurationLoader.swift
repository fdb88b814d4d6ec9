#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ABSProtocol
import StationSupport

extension GatewayConfiguration {
    /// Loads and checks a YAML file. `environment` supplies secrets (SWAPGATE_MQTT_PASSWORD) and overrides.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> GatewayConfiguration {
        if let why = notARegularFile(path) { throw ConfigurationErrors(errors: [ConfigurationError("file", "\(path): \(why)")]) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationErrors(errors: [ConfigurationError("file", "cannot read \(path)")])
        }
        return try parse(String(decoding: data, as: UTF8.self), baseDirectory: baseDirectory(of: path), environment: environment)
    }

    /// The absolute directory of the configuration file: relative paths in it are relative to that directory,
    /// the same for `check-config` and `run` (`run -c swapgate.yaml` in the file's folder included: a bare
    /// name's directory is the current one, not "").
    public static func baseDirectory(of path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.deletingLastPathComponent().path
    }

    public static func parse(_ yaml: String, baseDirectory: String = ".",
                             environment: [String: String] = [:]) throws -> GatewayConfiguration {
        let node: Any?
        do { node = try YAMLDocument.compose(yaml).map(YAMLDocument.plain) } catch let e as YAMLDocument.TooLarge {
            throw ConfigurationErrors(errors: [ConfigurationError("file", "\(e)")])
        } catch let e as YAMLDocument.ComplexKey {
            throw ConfigurationErrors(errors: [ConfigurationError("file", "\(e)")])
        } catch {
            throw ConfigurationErrors(errors: [ConfigurationError("file", "not valid YAML: \(error)")])
        }
        var r = Reader(root: node as? [String: Any] ?? [:])
        if node != nil && !(node is [String: Any]) { r.errors.append(ConfigurationError("file", "the top level must be a mapping")) }
        var c = GatewayConfiguration()

        c.station.id = r.string("station.id", c.station.id)
        if c.station.id.isEmpty { r.errors.append(ConfigurationError("station.id", "is required (e.g. TG-LOME-0007)")) }
        else if let why = Self.stationIDProblem(c.station.id) { r.errors.append(ConfigurationError("station.id", why)) }
        c.station.networkCode = r.string("station.network_code", c.station.networkCode)
        c.station.outletCode = r.string("station.outlet_code", c.station.outletCode)

        c.cabinets = Self.readCabinets(&r)

        c.mqtt.host = r.string("mqtt.host", c.mqtt.host)
        c.mqtt.port = r.int("mqtt.port", c.mqtt.port, 1 ... 65535)
        if let list = r.raw("mqtt.hosts") {
            if let items = list as? [Any], !items.isEmpty {
                for (i, item) in items.enumerated() {
                    if let text = item as? String, let address = GatewayConfiguration.BrokerAddress(parsing: text) {
                        if c.mqtt.hosts.contains(address) { r.errors.append(ConfigurationError("mqtt.hosts[\(i)]", "\(text) is listed twice")) }
                        else { c.mqtt.hosts.append(address) }
                    } else {
                        r.errors.append(ConfigurationError("mqtt.hosts[\(i)]", "must be \"host:port\" (IPv6 in brackets: \"[::1]:1883\"), got \(item)"))
                    }
                }
            } else {
                r.errors.append(ConfigurationError("mqtt.hosts", "must be a non-empty list of \"host:port\" strings"))
            }
            if r.raw("mqtt.host") != nil || r.raw("mqtt.port") != nil {
                r.errors.append(ConfigurationError("mqtt.hosts", "give either mqtt.hosts or mqtt.host/mqtt.port, not both"))
            }
        }
        c.mqtt.clientID = r.string("mqtt.client_id", c.mqtt.clientID)
        c.mqtt.protocolVersion = r.choice("mqtt.protocol", c.mqtt.protocolVersion, ["auto", "5", "3.1.1"])
        c.mqtt.keepAlive = r.int("mqtt.keepalive", c.mqtt.keepAlive, 5 ... 3600)
        c.mqtt.username = r.optionalString("mqtt.username")
        c.mqtt.password = r.secret("mqtt.password", env: "SWAPGATE_MQTT_PASSWORD", environment: environment, base: baseDirectory)
        c.mqtt.caFile = r.path("mqtt.ca_file", base: baseDirectory)
        c.mqtt.certFile = r.path("mqtt.cert_file", base: baseDirectory)
        c.mqtt.keyFile = r.path("mqtt.key_file", base: baseDirectory)
        if (c.mqtt.certFile == nil) != (c.mqtt.keyFile == nil) {
            r.errors.append(ConfigurationError("mqtt.cert_file", "cert_file and key_file go together"))
        }
        c.mqtt.tlsInsecure = r.bool("mqtt.tls_insecure", c.mqtt.tlsInsecure)
        c.mqtt.maxInflight = r.int("mqtt.max_inflight", c.mqtt.maxInflight, 1 ... 1000)
        c.mqtt.reconnectDelayMin = r.int("mqtt.reconnect_delay_min", c.mqtt.reconnectDelayMin, 1 ... 300)
        c.mqtt.reconnectDelayMax = r.int("mqtt.reconnect_delay_max", c.mqtt.reconnectDelayMax, c.mqtt.reconnectDelayMin ... 3600)
        c.mqtt.maxPacketSize = r.int("mqtt.max_packet_size", c.mqtt.maxPacketSize, 4096 ... 268_435_455)
        c.mqtt.maxCommandBytes = r.int("mqtt.max_command_bytes", c.mqtt.maxCommandBytes, 1024 ... max(1024, c.mqtt.maxPacketSize))
        c.mqtt.maxQueuedBytes = r.int("mqtt.max_queued_bytes", c.mqtt.maxQueuedBytes, 1024 * 1024 ... 1024 * 1024 * 1024)

        c.store.path = r.string("store.path", c.store.path)
        if !c.store.path.hasPrefix("/") { c.store.path = Path.appending(c.store.path, to: baseDirectory) }
        if let why = Self.storePathProblem(c.store.path) { r.errors.append(ConfigurationError("store.path", why)) }
        c.store.keepSentDays = r.double("store.keep_sent_days", c.store.keepSentDays, 0 ... 3650)
        c.store.maxSentRows = r.int("store.max_sent_rows", c.store.maxSentRows, 100 ... 100_000_000)
        c.store.keepSettledDays = r.double("store.keep_settled_days", c.store.keepSettledDays, 1 ... 3650)
        c.store.keepAuditDays = r.double("store.keep_audit_days", c.store.keepAuditDays, 1 ... 3650)

        c.publishing.telemetryInterval = r.double("publishing.telemetry_interval", c.publishing.telemetryInterval, 0.05 ... 86_400)   // below 1 s: benchmarks (swapbench uplink)
        c.publishing.telemetryFullInterval = r.double("publishing.telemetry_full_interval", c.publishing.telemetryFullInterval, 0.05 ... 86_400 * 7)
        c.publishing.telemetryMode = r.choice("publishing.telemetry_mode", c.publishing.telemetryMode, ["changes", "full"])
        c.publishing.compactKeys = r.bool("publishing.compact_keys", c.publishing.compactKeys)
        do {
            var d = c.publishing.deadbands
            func band(_ key: String, _ v: inout Double) { v = r.double("publishing.deadbands.\(key)", v, 0 ... 1_000_000) }
            band("soc", &d.soc); band("soh", &d.soh); band("pack_voltage", &d.packVoltage); band("current", &d.current)
            band("temperature", &d.temperature); band("cell_voltage", &d.cellVoltage); band("capacity", &d.capacity)
            band("energy", &d.energy); band("line_voltage", &d.lineVoltage); band("power", &d.power); band("frequency", &d.frequency)
            c.publishing.deadbands = d
        }
        c.publishing.inventoryDebounce = r.double("publishing.inventory_debounce", c.publishing.inventoryDebounce, 0 ... 1)
        c.publishing.publishWindow = r.int("publishing.window", c.publishing.publishWindow, 1 ... 1000)
        c.publishing.backlogRate = r.double("publishing.backlog_rate", c.publishing.backlogRate, 0 ... 1_000_000_000)
        let budget = r.double("publishing.monthly_budget_mb", 0, 0 ... 1_000_000)   // 0: no budget
        c.publishing.monthlyBudgetMB = budget > 0 ? budget : nil
        c.publishing.budgetCheckInterval = r.double("publishing.budget_check_interval", c.publishing.budgetCheckInterval, 0.05 ... 86_400)   // below 60 s: tests
        c.publishing.budgetMaxFactor = r.int("publishing.budget_max_factor", c.publishing.budgetMaxFactor, 1 ... 64)
        if c.publishing.budgetMaxFactor & (c.publishing.budgetMaxFactor - 1) != 0 {
            r.errors.append(ConfigurationError("publishing.budget_max_factor", "must be a power of two (1, 2, 4 … 64): the governor doubles and halves"))
        }

        c.batteries.readySoC = r.double("batteries.ready_soc", c.batteries.readySoC, 1 ... 100)
        c.batteries.minSoH = r.double("batteries.min_soh", c.batteries.minSoH, 0 ... 100)
        c.batteries.handoutTempMin = r.double("batteries.handout_temp_min", c.batteries.handoutTempMin, -40 ... 60)
        c.batteries.handoutTempMax = r.double("batteries.handout_temp_max", c.batteries.handoutTempMax, c.batteries.handoutTempMin ... 80)
        c.batteries.quarantineTemp = r.double("batteries.quarantine_temp", c.batteries.quarantineTemp, 20 ... 120)
        c.batteries.releaseTemp = r.double("batteries.release_temp", c.batteries.releaseTemp, 0 ... c.batteries.quarantineTemp)

        c.abs.publicKeys = r.stringMap("abs.public_keys")
        c.abs.allowUnsigned = r.bool("abs.allow_unsigned", c.abs.allowUnsigned)
        c.abs.maxClockSkew = r.double("abs.max_clock_skew", c.abs.maxClockSkew, 0 ... 3600)
        c.abs.maxInflatedBytes = r.int("abs.max_inflated_bytes", c.abs.maxInflatedBytes, 1024 ... 1024 * 1024 * 1024)
        c.clock.trust = r.choice("clock.trust", c.clock.trust, ["auto", "system", "commands"])
        c.clock.syncFlag = r.optionalString("clock.sync_flag")
        c.clock.kernelFlag = r.bool("clock.kernel_flag", c.clock.kernelFlag)
        do { _ = try KeyRing(keys: c.abs.publicKeys) } catch {
            r.errors.append(ConfigurationError("abs.public_keys", "\(error)"))
        }
        if c.abs.publicKeys.isEmpty && !c.abs.allowUnsigned {
            r.errors.append(ConfigurationError("abs.public_keys", "no ABS public key: every command would be refused (set allow_unsigned: true only for development)"))
        }

        c.swaps.returnTimeout = r.double("swaps.return_timeout", c.swaps.returnTimeout, 10 ... 600)
        c.swaps.pickupTimeout = r.double("swaps.pickup_timeout", c.swaps.pickupTimeout, 10 ... 600)
        c.swaps.maxConcurrent = r.int("swaps.max_concurrent", c.swaps.maxConcurrent, 1 ... 8)
        c.swaps.maxCacheStalenessHours = r.double("swaps.max_cache_staleness_hours", c.swaps.maxCacheStalenessHours, 0.01 ... 8760)
        c.swaps.allowStaleCache = r.bool("swaps.allow_stale_cache", c.swaps.allowStaleCache)

        c.odoo.baseURL = r.string("odoo.base_url", c.odoo.baseURL)
        if !c.odoo.baseURL.isEmpty && !(c.odoo.baseURL.hasPrefix("http://") || c.odoo.baseURL.hasPrefix("https://")) {
            r.errors.append(ConfigurationError("odoo.base_url", "must start with http:// or https://"))
        }
        c.odoo.apiKey = r.secret("odoo.api_key", env: "SWAPGATE_ODOO_API_KEY", environment: environment, base: baseDirectory)
        if !c.odoo.baseURL.isEmpty && (c.odoo.apiKey ?? "").isEmpty {
            r.errors.append(ConfigurationError("odoo.api_key_file", "an API key is required when odoo.base_url is set (api_key_file or SWAPGATE_ODOO_API_KEY)"))
        }
        c.odoo.database = r.string("odoo.database", c.odoo.database)
        c.odoo.requestTimeout = r.double("odoo.request_timeout", c.odoo.requestTimeout, 1 ... 300)
        c.odoo.maxInFlight = r.int("odoo.max_in_flight", c.odoo.maxInFlight, 1 ... 64)
        c.odoo.caFile = r.path("odoo.ca_file", base: baseDirectory)
        c.odoo.swapCountService = r.string("odoo.service_swap_count", c.odoo.swapCountService)
        c.odoo.energyService = r.string("odoo.service_energy", c.odoo.energyService)
        c.odoo.backoffBase = r.double("odoo.backoff_base", c.odoo.backoffBase, 0.1 ... 3600)
        c.odoo.backoffCap = r.double("odoo.backoff_cap", c.odoo.backoffCap, c.odoo.backoffBase ... 86_400)
        c.odoo.credentialsDelay = r.double("odoo.credentials_delay", c.odoo.credentialsDelay, 1 ... 86_400)

        c.control.socket = r.string("control.socket", c.control.socket)
        if !c.control.socket.isEmpty {
            if !c.control.socket.hasPrefix("/") { c.control.socket = Path.appending(c.control.socket, to: baseDirectory) }
            if c.control.socket.utf8.count > 100 {
                r.errors.append(ConfigurationError("control.socket", "path longer than 100 bytes (a Unix socket path is limited to 108)"))
            }
        }
        c.control.techniciansFile = r.path("control.technicians_file", base: baseDirectory)

        c.metrics.enabled = r.bool("metrics.enabled", c.metrics.enabled)
        c.metrics.host = r.string("metrics.host", c.metrics.host)
        if !Self.isLoopback(c.metrics.host) {
            r.errors.append(ConfigurationError("metrics.host", "must be a loopback address (127.0.0.0/8, ::1 or localhost): metrics are for the board only"))
        }
        c.metrics.port = r.int("metrics.port", c.metrics.port, 1 ... 65535)

        c.logLevel = r.choice("log_level", c.logLevel, ["trace", "debug", "info", "notice", "warning", "error", "critical"])
        r.reportUnknownKeys()
        if !r.errors.isEmpty { throw ConfigurationErrors(errors: r.errors) }
        return c
    }
}

extension GatewayConfiguration {
    /// Every key of one cabinet, read under `p` ("cabinet." or "" in a `cabinets:` entry's own reader).
    private static func readCabinet(_ r: inout Reader, _ p: String, _ base: Cabinet) -> Cabinet {
        var cab = base
        cab.transport = r.choice("\(p)transport", cab.transport, ["tcp", "rtu"])
        cab.host = r.string("\(p)host", cab.host)
        cab.port = r.int("\(p)port", cab.port, 1 ... 65535)
        cab.device = r.string("\(p)device", cab.device)
        cab.baud = r.choice("\(p)baud", cab.baud, [9600, 19200, 38400, 57600, 115_200])
        cab.parity = r.choice("\(p)parity", cab.parity, ["N", "E", "O"])
        cab.dataBits = r.choice("\(p)data_bits", cab.dataBits, [7, 8])
        cab.stopBits = r.choice("\(p)stop_bits", cab.stopBits, [1, 2])
        cab.responseTimeout = r.double("\(p)response_timeout", cab.responseTimeout, 0.01 ... 10)
        cab.byteTimeout = r.double("\(p)byte_timeout", cab.byteTimeout, 0.001 ... 5)
        cab.interFrameDelay = r.double("\(p)inter_frame_delay", cab.interFrameDelay, 0 ... 1)
        cab.retries = r.int("\(p)retries", cab.retries, 0 ... 5)
        cab.fastInterval = r.double("\(p)fast_interval", cab.fastInterval, 0.05 ... 10)
        cab.detailInterval = r.double("\(p)detail_interval", cab.detailInterval, 0.5 ... 3600)
        cab.meter = r.bool("\(p)meter", cab.meter)
        cab.meterInterval = r.double("\(p)meter_interval", cab.meterInterval, 1 ... 3600)
        cab.watchdogInterval = r.double("\(p)watchdog_interval", cab.watchdogInterval, 0.2 ... 4.5)
        cab.clockSyncInterval = r.double("\(p)clock_sync_interval", cab.clockSyncInterval, 60 ... 86_400)
        cab.staleAfterFailedCycles = r.int("\(p)stale_after_failed_cycles", cab.staleAfterFailedCycles, 1 ... 100)
        cab.expectedSlots = r.optionalInt("\(p)expected_slots", 1 ... 48)
        cab.reconnectDelayMax = r.double("\(p)reconnect_delay_max", cab.reconnectDelayMax, 0.5 ... 300)
        if cab.fastInterval > cab.watchdogInterval {
            r.errors.append(ConfigurationError("\(p)fast_interval", "must not exceed \(p)watchdog_interval (\(cab.watchdogInterval) s): the watchdog is written from the fast loop"))
        }
        return cab
    }

    /// Cabinet ids are shown as `B/3` and sent to ABS: 1…16 letters, digits, `-` or `_`.
    static func cabinetIDProblem(_ id: String) -> String? {
        if id.isEmpty || id.utf8.count > 16 { return "must be 1…16 characters" }
        if !id.unicodeScalars.allSatisfy({ $0.isASCII && (Path.isASCIIAlphanumeric($0) || $0 == "-" || $0 == "_") }) {
            return "must be letters, digits, '-' or '_' (it is written as ID/slot)"
        }
        if Int(id) != nil { return "must not be a number (\"3\" would read as a station slot)" }
        return nil
    }

    /// `cabinet:` (one cabinet, id "A") or `cabinets:` (a list, each entry every `cabinet:` key plus `id` and
    /// `unit`); not both. Entries on one bus (same RTU device, same TCP host and port) share its owner, so
    /// they must agree on the bus's settings and have distinct unit ids; unit 2 is the meter.
    private static func readCabinets(_ r: inout Reader) -> [Cabinet] {
        let list = r.raw("cabinets")
        if list == nil {
            return [readCabinet(&r, "cabinet.", Cabinet())]
        }
        if r.raw("cabinet") != nil {
            r.errors.append(ConfigurationError("cabinets", "give either cabinet: (one cabinet) or cabinets: (a list), not both"))
        }
        guard let entries = list as? [Any], !entries.isEmpty else {
            r.errors.append(ConfigurationError("cabinets", "must be a non-empty list of cabinets (id, transport, address, unit)"))
            return [Cabinet()]
        }
        var out: [Cabinet] = []
        for (i, entry) in entries.enumerated() {
            let key = "cabinets[\(i + 1)]"
            guard let map = entry as? [String: Any] else {
                r.errors.append(ConfigurationError(key, "must be a mapping (id, transport, host/port or device, unit, …)")); continue
            }
            var sub = Reader(root: map)
            var base = Cabinet()
            base.meter = i == 0   // one meter per station: on the first cabinet's bus unless configured otherwise
            var cab = readCabinet(&sub, "", base)
            cab.id = sub.string("id", "")
            if let why = cabinetIDProblem(cab.id) { sub.errors.append(ConfigurationError("id", cab.id.isEmpty ? "is required" : why)) }
            cab.unit = sub.int("unit", 1, 1 ... 247)
            if cab.unit == 2 { sub.errors.append(ConfigurationError("unit", "2 is the energy meter's unit id, not a cabinet's")) }
            sub.reportUnknownKeys()
            r.errors += sub.errors.map { ConfigurationError("\(key).\($0.key)", $0.message) }
            out.append(cab)
        }
        var ids: Set<String> = [], addresses: [String: Int] = [:]
        var busSettings: [String: (Cabinet, Int)] = [:]
        for (i, cab) in out.enumerated() {
            let key = "cabinets[\(i + 1)]"
            if !ids.insert(cab.id).inserted { r.errors.append(ConfigurationError("\(key).id", "\(cab.id) is given twice")) }
            let bus = busKey(cab)
            if let other = addresses["\(bus)#\(cab.unit)"] {
                r.errors.append(ConfigurationError("\(key).unit", "unit \(cab.unit) on \(bus) is already cabinets[\(other + 1)]"))
            } else {
                addresses["\(bus)#\(cab.unit)"] = i
            }
            if let (first, j) = busSettings[bus] {
                var differ: [String] = []
                if cab.transport == "rtu" {
                    if first.baud != cab.baud { differ.append("baud") }
                    if first.parity != cab.parity { differ.append("parity") }
                    if first.dataBits != cab.dataBits { differ.append("data_bits") }
                    if first.stopBits != cab.stopBits { differ.append("stop_bits") }
                    if first.byteTimeout != cab.byteTimeout { differ.append("byte_timeout") }
                    if first.interFrameDelay != cab.interFrameDelay { differ.append("inter_frame_delay") }
                }
                if first.responseTimeout != cab.responseTimeout { differ.append("response_timeout") }
                if first.retries != cab.retries { differ.append("retries") }
                if !differ.isEmpty {
                    r.errors.append(ConfigurationError(key, "shares \(bus) with cabinets[\(j + 1)] but its \(differ.joined(separator: ", ")) differ: one bus has one setting"))
                }
            } else {
                busSettings[bus] = (cab, i)
            }
        }
        if out.filter(\.meter).count > 1 {
            r.errors.append(ConfigurationError("cabinets", "meter: true on more than one cabinet: a station has one energy meter"))
        }
        return out
    }

    /// `swapgate check-config` and `swapctl config check`: one line for a good file, every problem with its key otherwise.
    public static func checkReport(path: String) -> (ok: Bool, text: String) {
        do {
            let c = try load(path: path)
            let cabs = c.cabinets.count == 1 ? "cabinet \(c.acquisition.transport)"
                : "cabinets " + c.cabinets.map { "\($0.id)@\(busKey($0))#\($0.unit)" }.joined(separator: " ")
            return (true, "\(path): ok (station \(c.station.id), \(cabs), broker \(c.mqttAddresses.map(\.description).joined(separator: " ")))")
        } catch {
            return (false, "\(path): \(error)")
        }
    }

    /// The longest station id: it is in every topic (`dt/V01/BSS/{sid}/evt/…`), in the default MQTT client id
    /// and in every event; ABS's ids are short (`TG-LOME-0007`).
    public static let maxStationIDLength = 64

    /// Why `id` cannot be a station id, or nil: 1…64 printable ASCII characters, no space, and none of MQTT's
    /// topic separator and wildcards (`/`, `+`, `#`) — it is one level of every MQTT topic.
    static func stationIDProblem(_ id: String) -> String? {
        if id.utf8.count > maxStationIDLength { return "longer than \(maxStationIDLength) characters" }
        if id.utf8.contains(where: { $0 < 0x21 || $0 > 0x7E }) {
            return "must be printable ASCII without spaces or control characters (it is part of MQTT topics)"
        }
        if id.contains(where: { "/+#".contains($0) }) { return "must not contain '/', '+' or '#' (it is part of MQTT topics)" }
        return nil
    }

    /// Why the station database cannot be at `path`, or nil: it must be a regular file if it exists, in a
    /// directory (created at start if missing).
    static func storePathProblem(_ path: String) -> String? {
        var st = stat()
        if stat(path, &st) == 0 {
            return (st.st_mode & S_IFMT) == S_IFREG ? nil : "\(path) exists and is not a regular file (a directory, a FIFO, a device?)"
        }
        var dir = Path.deletingLastComponent(path)
        while !dir.isEmpty && dir != "/" {
            if stat(dir, &st) == 0 { return (st.st_mode & S_IFMT) == S_IFDIR ? nil : "\(dir) is not a directory" }
            dir = Path.deletingLastComponent(dir)
        }
        return nil
    }

    /// Why `path` is not a regular file, or nil. A directory or a FIFO passes `isReadableFile`, and reading a
    /// FIFO blocks forever: every file the configuration names (secrets, certificates, the technicians
    /// list) must be a regular file.
    static func notARegularFile(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return "cannot read it (\(String(cString: strerror(errno))))" }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "is a directory, not a file"
        case S_IFIFO: return "is a FIFO, not a file"
        default: return "is not a regular file"
        }
    }

    /// 127.0.0.0/8, ::1 or localhost.
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" || host == "[::1]" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { UInt8($0) != nil }
    }
}

/// Reads dotted keys from the YAML tree, records every problem with its key, and remembers which keys
/// were read so that unknown (misspelt) keys are reported too.
struct Reader {
    let root: [String: Any]
    var errors: [ConfigurationError] = []
    var seen: Set<String> = []

    init(root: [String: Any]) { self.root = root }

    mutating func raw(_ key: String) -> Any? {
        seen.insert(key)
        var node: Any? = root
        for part in key.split(separator: ".") { node = (node as? [String: Any])?[String(part)] }
        return node
    }

    mutating func string(_ key: String, _ def: String) -> String { optionalString(key) ?? def }

    mutating func optionalString(_ key: String) -> String? {
        guard let v = raw(key) else { return nil }
        if let s = v as? String { return s }
        if let i = v as? Int { return String(i) }
        if let d = v as? Double { return String(d) }
        errors.append(ConfigurationError(key, "must be a string")); return nil
    }

    mutating func int(_ key: String, _ def: Int, _ range: ClosedRange<Int>) -> Int {
        optionalInt(key, range) ?? def
    }

    mutating func optionalInt(_ key: String, _ range: ClosedRange<Int>) -> Int? {
        guard let v = raw(key) else { return nil }
        guard let i = v as? Int else { errors.append(ConfigurationError(key, "must be a whole number, got \(v)")); return nil }
        guard range.contains(i) else {
            errors.append(ConfigurationError(key, "\(i) is outside \(range.lowerBound)…\(range.upperBound)")); return nil
        }
        return i
    }

    mutating func double(_ key: String, _ def: Double, _ range: ClosedRange<Double>) -> Double {
        guard let v = raw(key) else { return def }
        let d: Double
        if let x = v as? Double { d = x } else if let i = v as? Int { d = Double(i) } else {
            errors.append(ConfigurationError(key, "must be a number, got \(v)")); return def
        }
        guard range.contains(d) else {
            errors.append(ConfigurationError(key, "\(d) is outside \(range.lowerBound)…\(range.upperBound)")); return def
        }
        return d
    }

    mutating func bool(_ key: String, _ def: Bool) -> Bool {
        guard let v = raw(key) else { return def }
        guard let b = v as? Bool else { errors.append(ConfigurationError(key, "must be true or false, got \(v)")); return def }
        return b
    }

    mutating func choice<T: Equatable>(_ key: String, _ def: T, _ allowed: [T]) -> T {
        guard let v = raw(key) else { return def }
        let value: T? = (v as? T) ?? ((T.self == String.self) ? ("\(v)" as? T) : nil)
        guard let value, allowed.contains(value) else {
            errors.append(ConfigurationError(key, "\(v) is not one of \(allowed.map { "\($0)" }.joined(separator: ", "))")); return def
        }
        return value
    }

    mutating func stringMap(_ key: String) -> [String: String] {
        guard let v = raw(key) else { return [:] }
        guard let m = v as? [String: Any] else { errors.append(ConfigurationError(key, "must be a mapping of key id to key")); return [:] }
        var out: [String: String] = [:]
        for (k, x) in m {
            seen.insert("\(key).\(k)")
            if let s = x as? String, !s.isEmpty { out[k] = s } else { errors.append(ConfigurationError("\(key).\(k)", "must be a non-empty string")) }
        }
        return out
    }

    mutating func path(_ key: String, base: String) -> String? {
        guard let s = optionalString(key), !s.isEmpty else { return nil }
        let p = s.hasPrefix("/") ? s : Path.appending(s, to: base)
        if let why = GatewayConfiguration.notARegularFile(p) { errors.append(ConfigurationError(key, "\(p) \(why)")); return nil }
        if !FileManager.default.isReadableFile(atPath: p) { errors.append(ConfigurationError(key, "cannot read \(p)")) }
        return p
    }

    /// A secret: `<key>_file` (a file holding it), the environment variable, or the key itself — in that order.
    mutating func secret(_ key: String, env: String, environment: [String: String], base: String) -> String? {
        if let file = path("\(key)_file", base: base) {
            if let data = FileManager.default.contents(atPath: file) {
                return String(decoding: data, as: UTF8.self).trimmingWhitespacesAndNewlines()
            }
            return nil
        }
        if let v = environment[env], !v.isEmpty { return v }
        return optionalString(key)
    }

    mutating func reportUnknownKeys() {
        func walk(_ node: [String: Any], _ prefix: String) {
            for (k, v) in node {
                let key = prefix.isEmpty ? k : "\(prefix).\(k)"
                if let sub = v as? [String: Any] { walk(sub, key) }
                else if !seen.contains(key) { errors.append(ConfigurationError(key, "unknown key (misspelt?)")) }
            }
        }
        walk(root, "")
    }
}

/// What the configuration needed from full Foundation (NSString's path methods, CharacterSet, trimming), on
/// FoundationEssentials alone, giving the same text.
enum Path {
    /// `(base as NSString).appendingPathComponent(component)`: a `/` between them unless `base` ends with one.
    static func appending(_ component: String, to base: String) -> String {
        if base.isEmpty { return component }
        if component.isEmpty { return base }
        return base.hasSuffix("/") ? base + component : base + "/" + component
    }

    /// `(path as NSString).deletingLastPathComponent` for an absolute path (doubled slashes collapsed first, as
    /// Foundation does): "/" at the root.
    static func deletingLastComponent(_ path: String) -> String {
        var collapsed = ""
        for c in path where !(c == "/" && collapsed.hasSuffix("/")) { collapsed.append(c) }
        var p = Substring(collapsed)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "" }
        return slash == p.startIndex ? "/" : String(p[..<slash])
    }

    /// CharacterSet.alphanumerics for an ASCII scalar: a letter or a digit.
    static func isASCIIAlphanumeric(_ c: Unicode.Scalar) -> Bool {
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9")
    }
}
