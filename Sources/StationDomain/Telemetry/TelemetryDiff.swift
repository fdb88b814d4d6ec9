/// Telemetry by exception (abs-mqtt.md, Contract 1.1): which fields of a telemetry entity (a slot, the cabinet
/// block, the meter, the station itself) moved beyond their deadband since the value last REPORTED.
///
/// Pure logic, no clock and no I/O: the gateway's TelemetryReporter flattens each entity of the telemetry
/// payload into `path -> field` (`"bms.soc"`, `"state"`, `"meter.voltage_v"` …), asks `changes` which paths to
/// send, and builds the `changes` message from those. Comparing against the last reported value (not the last
/// read one) means a slow drift is reported once it has accumulated past the deadband.

/// One flattened telemetry value: a measurement compared with its deadband, or anything else (state, flags,
/// faults, counters, battery id, a nested block turning null) that is reported on every change.
public enum TelemetryField: Equatable, Sendable {
    case number(Double)
    case exact(String)
}

/// Deadbands per measurement (units as in the payload). A change of at least the deadband is reported
/// ("exactly at the deadband" counts as moved); 0 reports every change.
public struct TelemetryDeadbands: Equatable, Sendable {
    public var soc = 1.0              // %, bms.soc
    public var soh = 1.0              // %, bms.soh
    public var packVoltage = 0.5      // V, bms.pack_voltage_v
    public var current = 1.0          // A, bms.pack_current_a and meter.current_a
    public var temperature = 1.0      // °C, bms.temp_max_c/temp_min_c and the cabinet's temperature_c
    public var cellVoltage = 0.020    // V, bms.cell_v_max/cell_v_min
    public var capacity = 0.5         // Ah, bms.full_capacity_ah/remaining_capacity_ah
    public var energy = 0.1           // kWh, meter.import_energy_kwh
    public var lineVoltage = 2.0      // V, meter.voltage_v
    public var power = 100.0          // W, meter.active_power_w
    public var frequency = 0.1        // Hz, meter.frequency_hz

    public init() {}

    /// The deadband of a leaf key (the last path component); nil: not a measurement, every change is reported.
    /// `uptime_s` and `watchdog_s` are never a reason for a `changes` message (they move every second, and they
    /// are integers: compared by deadband whatever their type): they go in `full` reports.
    public func band(forLeaf key: Substring) -> Double? {
        switch key {
        case "soc": soc
        case "soh": soh
        case "pack_voltage_v": packVoltage
        case "pack_current_a", "current_a": current
        case "temp_max_c", "temp_min_c", "temperature_c": temperature
        case "cell_v_max", "cell_v_min": cellVoltage
        case "full_capacity_ah", "remaining_capacity_ah": capacity
        case "import_energy_kwh": energy
        case "voltage_v": lineVoltage
        case "active_power_w": power
        case "frequency_hz": frequency
        case "uptime_s", "watchdog_s": .infinity
        default: nil
        }
    }

    /// Every deadband multiplied by `factor` (a budget governor widens them).
    public func scaled(by factor: Double) -> TelemetryDeadbands {
        var d = self
        d.soc *= factor; d.soh *= factor; d.packVoltage *= factor; d.current *= factor; d.temperature *= factor
        d.cellVoltage *= factor; d.capacity *= factor; d.energy *= factor; d.lineVoltage *= factor; d.power *= factor
        d.frequency *= factor
        return d
    }
}

public struct TelemetryDiff: Sendable {
    public var deadbands: TelemetryDeadbands
    /// entity -> path -> the value last reported.
    private var reported: [String: [String: TelemetryField]] = [:]

    public init(deadbands: TelemetryDeadbands = TelemetryDeadbands()) { self.deadbands = deadbands }

    /// Forget everything reported (a new session: the next report is `full`).
    public mutating func reset() { reported = [:] }

    /// A `full` report of `entity` went out: every value becomes the reported one.
    public mutating func baseline(_ entity: String, _ fields: [String: TelemetryField]) { reported[entity] = fields }

    /// The paths of `entity` to report now, sorted (a parent before its children), and records them as reported.
    /// A path seen for the first time is reported; a path that disappeared is reported (as null) unless a parent
    /// path is now itself a reported value (e.g. `bms` turned null: its children go with it, silently).
    public mutating func changes(_ entity: String, _ fields: [String: TelemetryField]) -> [String] {
        var last = reported[entity] ?? [:]
        var out: [String] = []
        for (path, now) in fields {
            guard let before = last[path] else { out.append(path); last[path] = now; continue }
            if moved(path, from: before, to: now) { out.append(path); last[path] = now }
        }
        for path in last.keys where fields[path] == nil {
            last[path] = nil
            if !Self.parents(of: path).contains(where: { fields[$0] != nil }) { out.append(path) }
        }
        reported[entity] = last
        return out.sorted()
    }

    func moved(_ path: String, from before: TelemetryField, to now: TelemetryField) -> Bool {
        // A full-only field (an Int such as uptime_s is an `exact` field) never moves for a `changes` report.
        if deadbands.band(forLeaf: Self.leaf(path)) == .infinity { return false }
        switch (before, now) {
        case let (.number(a), .number(b)):
            guard let band = deadbands.band(forLeaf: Self.leaf(path)) else { return a != b }
            // A small tolerance: 53.6 - 53.1 is 0.5000000000000071 or 0.4999999999999929 in binary.
            return abs(b - a) >= band - 1e-9 && a != b
        default:
            return before != now
        }
    }

    static func leaf(_ path: String) -> Substring { path.split(separator: ".").last ?? Substring(path) }

    static func parents(of path: String) -> [String] {
        let parts = path.split(separator: ".")
        guard parts.count > 1 else { return [] }
        return (1 ..< parts.count).map { parts[0 ..< $0].joined(separator: ".") }
    }

    /// Flattens a JSON-like object: a nested object contributes a marker field `path = exact("{}")` and its
    /// members under `path.key`; a Double is a measurement; everything else (Int, Bool, String, arrays, null)
    /// is compared exactly by its description.
    public static func flatten(_ object: [String: any Sendable], prefix: String = "") -> [String: TelemetryField] {
        var out: [String: TelemetryField] = [:]
        for (k, v) in object {
            let path = prefix.isEmpty ? k : "\(prefix).\(k)"
            switch v {
            case let d as [String: any Sendable]:
                out[path] = .exact("{}")
                out.merge(flatten(d, prefix: path)) { a, _ in a }
            case let d as Double: out[path] = .number(d)
            case let f as Float: out[path] = .number(Double(f))
            case let i as Int: out[path] = .exact("i\(i)")
            case let b as Bool: out[path] = .exact(b ? "true" : "false")
            case let s as String: out[path] = .exact("s\(s)")
            case let a as [String]: out[path] = .exact("a\(a)")
            case let a as [Int]: out[path] = .exact("a\(a)")
            default: out[path] = .exact("\(type(of: v)):\(v)")   // NSNull and anything else
            }
        }
        return out
    }
}
