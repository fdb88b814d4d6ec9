import Foundation
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
    public mutating func full(_ body: JSONObject, stationID: String, session: Int?, now: Date) -> [UInt8] {
        let parts = Self.entities(body)
        diff.reset()
        for (entity, object, _) in parts { diff.baseline(entity, TelemetryDiff.flatten(object)) }
        needsFull = false
        tseq += 1
        var o = body
        envelope(&o, kind: "full", stationID: stationID, session: session, now: now)
        return JSON.encode(compactKeys ? Self.compact(o) : o)
    }

    /// The `changes` report, or nil when nothing moved beyond its deadband (no message, tseq unchanged).
    public mutating func changes(_ body: JSONObject, stationID: String, session: Int?, now: Date) -> [UInt8]? {
        var o: JSONObject = [:]
        var slots: [JSONObject] = []
        var cabinets: [JSONObject] = []
        for (entity, object, identity) in Self.entities(body) {
            let paths = diff.changes(entity, TelemetryDiff.flatten(object))
            if paths.isEmpty { continue }
            if entity == "station" {
                for p in paths { Self.set(&o, p, Self.value(object, p)) }
                continue
            }
            var entry = identity
            for p in paths where identity[p] == nil { Self.set(&entry, p, Self.value(object, p)) }
            if entity.hasPrefix("slot:") { slots.append(entry) } else { cabinets.append(entry) }
        }
        if o.isEmpty && slots.isEmpty && cabinets.isEmpty { return nil }
        if !slots.isEmpty { o["slots"] = slots }
        if !cabinets.isEmpty { o["cabinets"] = cabinets }
        tseq += 1
        envelope(&o, kind: "changes", stationID: stationID, session: session, now: now)
        return JSON.encode(compactKeys ? Self.compact(o) : o)
    }

    private func envelope(_ o: inout JSONObject, kind: String, stationID: String, session: Int?, now: Date) {
        o["v"] = 1; o["station_id"] = stationID; o["ts"] = Timestamp.rfc3339(now)
        o["kind"] = kind; o["tseq"] = tseq
        if let session { o["session"] = session }
    }

    /// The entities of a telemetry body: "station" (everything but the slot and cabinet lists), "slot:N" for
    /// each slot, "cabinet:ID" for each entry of `cabinets`; with the keys that identify each in a `changes` entry.
    static func entities(_ body: JSONObject) -> [(String, JSONObject, JSONObject)] {
        var station = body
        station["slots"] = nil; station["cabinets"] = nil
        station["v"] = nil; station["station_id"] = nil; station["ts"] = nil
        var out: [(String, JSONObject, JSONObject)] = [("station", station, [:])]
        for s in body["slots"] as? [JSONObject] ?? [] {
            guard let n = s["slot"] as? Int else { continue }
            var id: JSONObject = ["slot": n]
            if let c = s["cabinet"] { id["cabinet"] = c }
            if let l = s["cabinet_slot"] { id["cabinet_slot"] = l }
            out.append(("slot:\(n)", s, id))
        }
        for c in body["cabinets"] as? [JSONObject] ?? [] {
            guard let id = c["cabinet"] as? String else { continue }
            out.append(("cabinet:\(id)", c, ["cabinet": id]))
        }
        return out
    }

    static func value(_ o: JSONObject, _ path: String) -> any Sendable {
        var node: any Sendable = o
        for part in path.split(separator: ".") {
            guard let d = node as? JSONObject, let next = d[String(part)] else { return NSNull() }
            node = next
        }
        // A nested object whose own marker changed: its members follow as their own paths.
        if node is JSONObject { return JSONObject() }
        return node
    }

    static func set(_ o: inout JSONObject, _ path: String, _ value: any Sendable) {
        let parts = path.split(separator: ".").map(String.init)
        func put(_ d: inout JSONObject, _ i: Int) {
            if i == parts.count - 1 {
                if value is JSONObject, d[parts[i]] is JSONObject { return }
                d[parts[i]] = value
                return
            }
            var child = d[parts[i]] as? JSONObject ?? [:]
            put(&child, i + 1)
            d[parts[i]] = child
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

    static func compact(_ o: JSONObject) -> JSONObject {
        var out: JSONObject = [:]
        for (k, v) in o {
            let key = compactCodes[k] ?? k
            switch v {
            case let d as JSONObject: out[key] = compact(d)
            case let a as [JSONObject]: out[key] = a.map(compact)
            default: out[key] = v
            }
        }
        return out
    }
}
