import ABSProtocol
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationDomain

/// Builds the `telemetry` messages of Contract 1.1 (abs-mqtt.md "Telemetry by exception", docs/events-and-mqtt.md):
/// `kind: full` (every slot and BMS field) at connection, on rebirth and every full interval; `kind: changes` (only
/// what moved beyond its deadband since it was last reported, per slot with `slot` and `cabinet`) in between, and
/// nothing when nothing moved. `tseq` rises by one per telemetry message and starts again at 1 with each MQTT
/// connection. Not thread-safe: owned by the StationPublisher actor.
public struct TelemetryReporter: Sendable {
    public enum Mode: String, Sendable { case changes, full }

    public var mode: Mode
    public var compactKeys: Bool
    private var diff: TelemetryDiff
    /// The tseq of the last message built in this session (0: none yet).
    public private(set) var tseq = 0
    /// True until a `full` report has been built in this session: `changes` need a baseline.
    public private(set) var needsFull = true

    public init(mode: Mode = .changes, deadbands: TelemetryDeadbands = TelemetryDeadbands(), compactKeys: Bool = false) {
        self.mode = mode; self.compactKeys = compactKeys; self.diff = TelemetryDiff(deadbands: deadbands)
    }

    public var deadbands: TelemetryDeadbands {
        get { diff.deadbands }
        set { diff.deadbands = newValue }
    }

    /// A new MQTT connection: tseq restarts and the next report is `full`.
    public mutating func newSession() { tseq = 0; needsFull = true; diff.reset() }

    /// The `full` report; every value in it becomes the reported one.
    public mutating func full(_ body: TelemetryBody, stationID: String, session: Int?, now: Date) -> [UInt8] {
        let tree = Self.members(ContractJSON.value(body))
        diff.reset()
        for (entity, object, _) in Self.entities(tree) { diff.baseline(entity, Self.flatten(object)) }
        needsFull = false
        tseq += 1
        return message(.full, tree, stationID: stationID, session: session, now: now)
    }

    /// The `changes` report, or nil when nothing moved beyond its deadband (no message, tseq unchanged).
    public mutating func changes(_ body: TelemetryBody, stationID: String, session: Int?, now: Date) -> [UInt8]? {
        let tree = Self.members(ContractJSON.value(body))
        var o: Obj = [:]
        var slots: [JSONValue] = []
        var cabinets: [JSONValue] = []
        // One cabinet: its `cabinets` entry repeats the top-level `cabinet` block (and `stale` is `cabinet_stale`),
        // so a `changes` report carries those values once, under `cabinet` (`full` reports keep both).
        var oneCabinet = false
        if case let .array(list)? = tree["cabinets"], list.count == 1, case .object? = tree["cabinet"] { oneCabinet = true }
        for (entity, object, identity) in Self.entities(tree, slotIdentity: ["slot", "cabinet"]) {
            if oneCabinet && entity.hasPrefix("cabinet:") { continue }
            let paths = diff.changes(entity, Self.flatten(object))
            if paths.isEmpty { continue }
            if entity == "station" {
                for p in paths { Self.set(&o, p, Self.value(object, p)) }
                continue
            }
            var entry = identity
            for p in paths where identity[p] == nil { Self.set(&entry, p, Self.value(object, p)) }
            if entity.hasPrefix("slot:") { slots.append(.object(entry)) } else { cabinets.append(.object(entry)) }
        }
        if o.isEmpty && slots.isEmpty && cabinets.isEmpty { return nil }
        if !slots.isEmpty { o["slots"] = .array(slots) }
        if !cabinets.isEmpty { o["cabinets"] = .array(cabinets) }
        tseq += 1
        return message(.changes, o, stationID: stationID, session: session, now: now)
    }

    /// The message (ABSProtocol's TelemetryMessage: the envelope around the body), in compact keys when configured.
    private func message(_ kind: TelemetryMessage.Kind, _ body: Obj, stationID: String, session: Int?, now: Date) -> [UInt8] {
        let m = TelemetryMessage(kind: kind, tseq: tseq, session: session, stationID: stationID, ts: now, body: body).value
        return (compactKeys ? Self.compact(m) : m).bytes
    }

    typealias Obj = [String: JSONValue]

    static func members(_ v: JSONValue) -> Obj {
        if case let .object(o) = v { return o }
        return [:]
    }

    /// The entities of a telemetry body: "station" (everything but the slot and cabinet lists), "slot:N" for
    /// each slot, "cabinet:ID" for each entry of `cabinets`; with the keys that identify each in a `changes` entry.
    /// A `changes` slot entry is identified by `slot` (station-wide) and `cabinet` only: `cabinet_slot` follows
    /// from the cabinet's `first_slot` in the `full` report and would cost ~17 bytes per entry per minute.
    static func entities(_ body: Obj, slotIdentity: Set<String> = ["slot", "cabinet", "cabinet_slot"]) -> [(String, Obj, Obj)] {
        var station = body
        station["slots"] = nil; station["cabinets"] = nil
        station["v"] = nil; station["station_id"] = nil; station["ts"] = nil
        var out: [(String, Obj, Obj)] = [("station", station, [:])]
        if case let .array(list)? = body["slots"] {
            for case let .object(s) in list {
                guard case let .int(n)? = s["slot"] else { continue }
                var id: Obj = ["slot": .int(n)]
                if let c = s["cabinet"], slotIdentity.contains("cabinet") { id["cabinet"] = c }
                if let l = s["cabinet_slot"], slotIdentity.contains("cabinet_slot") { id["cabinet_slot"] = l }
                out.append(("slot:\(n)", s, id))
            }
        }
        if case let .array(list)? = body["cabinets"] {
            for case let .object(c) in list {
                guard case let .string(id)? = c["cabinet"] else { continue }
                out.append(("cabinet:\(id)", c, ["cabinet": .string(id)]))
            }
        }
        return out
    }

    /// Flattens an entity for TelemetryDiff: a nested object contributes a marker field `path = exact("{}")` and its
    /// members under `path.key`; a Double is a measurement; everything else (integers, booleans, strings, arrays,
    /// null) is compared exactly.
    static func flatten(_ object: Obj, prefix: String = "") -> [String: TelemetryField] {
        var out: [String: TelemetryField] = [:]
        for (k, v) in object {
            let path = prefix.isEmpty ? k : "\(prefix).\(k)"
            switch v {
            case let .object(d):
                out[path] = .exact("{}")
                out.merge(flatten(d, prefix: path)) { a, _ in a }
            case let .double(d): out[path] = .number(d)
            case let .int(i): out[path] = .exact("i\(i)")
            case let .bool(b): out[path] = .exact(b ? "true" : "false")
            case let .string(s): out[path] = .exact("s\(s)")
            default: out[path] = .exact(String(decoding: v.bytes, as: UTF8.self))   // arrays, null
            }
        }
        return out
    }

    static func value(_ o: Obj, _ path: String) -> JSONValue {
        var node = JSONValue.object(o)
        for part in path.split(separator: ".") {
            guard case let .object(d) = node, let next = d[String(part)] else { return .null }
            node = next
        }
        // A nested object whose own marker changed: its members follow as their own paths.
        if case .object = node { return .object([:]) }
        return node
    }

    static func set(_ o: inout Obj, _ path: String, _ value: JSONValue) {
        let parts = path.split(separator: ".").map(String.init)
        func put(_ d: inout Obj, _ i: Int) {
            if i == parts.count - 1 {
                if case .object = value, case .object? = d[parts[i]] { return }
                d[parts[i]] = value
                return
            }
            var child: Obj = [:]
            if case let .object(c)? = d[parts[i]] { child = c }
            put(&child, i + 1)
            d[parts[i]] = .object(child)
        }
        put(&o, 0)
    }

    /// Compact OVES-style attribute codes (docs/events-and-mqtt.md, "Compact keys"). The envelope keys
    /// (v, station_id, ts, kind, tseq, session) stay as they are.
    public static let compactCodes: [String: String] = [
        "slots": "slts", "slot": "sltn", "cabinet": "cbnt", "cabinet_slot": "cbsl", "cabinets": "cbns",
        "cabinet_stale": "cbst", "state": "stat", "battery_present": "btpr", "door_closed": "drcl", "locked": "lckd",
        "charging": "chrg", "charge_complete": "chcp", "in_service": "insv", "bms_link_ok": "bmsl", "fault_code": "fltc",
        "stale": "stal", "door_open_count": "droc", "insert_count": "insc", "quarantine": "qrnt", "bms_error": "bmse",
        "bms": "bmsd", "battery_id": "btid", "family": "bfam", "soc": "rsoc", "soh": "rsoh", "pack_voltage_v": "pckv",
        "pack_current_a": "pckc", "temp_max_c": "tmax", "temp_min_c": "tmin", "cycle_count": "cycc",
        "full_capacity_ah": "fcap", "remaining_capacity_ah": "rcap", "protection": "prot", "warning": "warn",
        "cell_v_max": "cvmx", "cell_v_min": "cvmn", "serial": "srno", "firmware": "frmv", "slot_count": "sltc",
        "uptime_s": "uptm", "flags": "flgs", "temperature_c": "ctmp", "safe_mode": "sfmd", "watchdog_s": "wdgs",
        "unit": "unit", "first_slot": "fslt", "meter": "metr", "import_energy_kwh": "aenr", "voltage_v": "lnvl",
        "current_a": "lncr", "active_power_w": "apwr", "frequency_hz": "freq",
    ]

    static func compact(_ v: JSONValue) -> JSONValue {
        switch v {
        case let .object(o):
            var out: Obj = [:]
            for (k, member) in o { out[compactCodes[k] ?? k] = compact(member) }
            return .object(out)
        case let .array(a): return .array(a.map(compact))
        default: return v
        }
    }
}
