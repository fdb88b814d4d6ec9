import Foundation
import StationDomain
import StationStore

/// The JSON bodies the station publishes (abs-mqtt.md). Every payload carries `"v": 1`.
public enum Payloads {
    /// The event envelope, spliced around the stored `data` bytes (already JSON) instead of decoding and
    /// re-encoding them: this runs for every event sent, and JSONSerialization is slow on Linux.
    /// Keys in sorted order, as the rest of the station's JSON.
    public static func event(_ e: StoredEvent, stationID: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(e.data.count + 200)
        out += Array(#"{"data":"#.utf8)
        out += e.data.isEmpty ? Array("{}".utf8) : e.data
        out += Array(#","event_id":""#.utf8)
        out += Array(e.eventID.uuidString.lowercased().utf8)
        out += Array(#"","seq":"#.utf8)
        out += Array(String(e.seq).utf8)
        out += Array(#","station_id":"#.utf8)
        out += jsonString(stationID)
        out += Array(#","ts":""#.utf8)
        out += Array(Timestamp.rfc3339(e.timestamp).utf8)
        out += Array(#"","type":"#.utf8)
        out += jsonString(e.type)
        out += Array(#","v":1}"#.utf8)
        return out
    }

    /// A JSON string literal (quotes, backslashes and control characters escaped).
    static func jsonString(_ s: String) -> [UInt8] {
        var out: [UInt8] = [0x22]
        for b in s.utf8 {
            switch b {
            case 0x22: out += [0x5C, 0x22]
            case 0x5C: out += [0x5C, 0x5C]
            case 0x00 ..< 0x20: out += Array(String(format: "\\u%04x", b).utf8)
            default: out.append(b)
            }
        }
        out.append(0x22)
        return out
    }

    /// `cabinet` is an addition to the contract's `online` flag: "online", "unreachable" or "safe_mode",
    /// so ABS sees a station whose gateway is up but whose cabinet is not (docs/mqtt.md).
    /// `cabinets`: with several cabinets, each one's state by id (`cabinet` is then the best of them).
    public static func status(online: Bool, stationID: String, version: String, cabinet: String?,
                              cabinets: [String: String]? = nil, session: UInt64? = nil, now: Date) -> [UInt8] {
        var o: JSONObject = ["v": 1, "station_id": stationID, "online": online, "ts": Timestamp.rfc3339(now), "version": version]
        // Contract 1.1 "Birth, death and resync": the MQTT connection's number (the will of that connection carries it too).
        if let session { o["session"] = Int(clamping: session) }
        // Contract 1.1 "Time": "synced" or "unsynced" (TrustedClock).
        if let clock = ClockTrustMark.state { o["clock"] = clock }
        if let cabinet { o["cabinet"] = cabinet }
        if let cabinets { o["cabinets"] = cabinets }
        return JSON.encode(o)
    }

    /// Station-wide counts, and `cabinets`: the same counts per cabinet, each with its `cabinet` id (configured order).
    public static func inventory(_ inv: Inventory, stationID: String, cabinetOrder: [String] = [], now: Date) -> [UInt8] {
        var o = counts(inv)
        o["v"] = 1; o["station_id"] = stationID; o["ts"] = Timestamp.rfc3339(now)
        if !inv.byCabinet.isEmpty {
            let order = cabinetOrder.filter { inv.byCabinet[$0] != nil } + inv.byCabinet.keys.sorted().filter { !cabinetOrder.contains($0) }
            o["cabinets"] = order.map { id -> JSONObject in
                var c = counts(inv.byCabinet[id]!)
                c["cabinet"] = id
                return c
            }
        }
        return JSON.encode(o)
    }

    static func counts(_ inv: Inventory) -> JSONObject {
        ["ready": inv.ready, "charging": inv.charging, "empty": inv.empty, "faulty": inv.faulty,
         "out_of_service": inv.outOfService, "unknown": inv.unknown, "ready_by_family": inv.readyByFamily]
    }

    /// Today's whole telemetry body with its envelope (no `kind`/`tseq`; the daemon sends TelemetryReporter's messages).
    public static func telemetry(_ snap: StationSnapshot, quarantined: [Int: [QuarantineReason]], stationID: String, now: Date) -> [UInt8] {
        var o = telemetryBody(snap, quarantined: quarantined)
        o["v"] = 1; o["station_id"] = stationID; o["ts"] = Timestamp.rfc3339(now)
        return JSON.encode(o)
    }

    /// Every slot and BMS field, the cabinet block(s) and the meter, without the envelope (TelemetryReporter adds
    /// `v`, `station_id`, `ts`, `kind`, `tseq` and reports either all of it or what moved).
    public static func telemetryBody(_ snap: StationSnapshot, quarantined: [Int: [QuarantineReason]]) -> JSONObject {
        var o: JSONObject = ["cabinet_stale": snap.cabinetStale]
        if let c = snap.cabinet { o["cabinet"] = cabinetBlock(c) }
        if !snap.cabinets.isEmpty {
            // Every cabinet in configured order, with its id, unit, stale flag and station slot range.
            o["cabinets"] = snap.cabinets.map { cab -> JSONObject in
                var b: JSONObject = cab.info.map(cabinetBlock) ?? [:]
                b["cabinet"] = cab.id; b["unit"] = cab.unit; b["stale"] = cab.stale
                b["first_slot"] = cab.firstSlot; b["slots"] = cab.slotCount
                return b
            }
        }
        if let m = snap.meter {
            o["meter"] = ["import_energy_kwh": JSON.round(m.importEnergyKWh, 2), "voltage_v": JSON.round(m.voltage),
                          "current_a": JSON.round(m.current, 2), "active_power_w": JSON.round(m.activePowerW),
                          "frequency_hz": JSON.round(m.frequencyHz, 2)] as JSONObject
        } else {
            o["meter"] = NSNull()
        }
        o["slots"] = snap.slots.map { slot(_: $0, quarantine: quarantined[$0.number]) }
        return o
    }

    static func cabinetBlock(_ c: CabinetInfo) -> JSONObject {
        ["serial": c.serial, "firmware": c.firmwareVersion, "slot_count": c.slotCount,
         "uptime_s": Int(c.uptimeSeconds), "flags": c.flags.names,
         "temperature_c": JSON.round(c.temperature), "safe_mode": c.safeMode,
         "watchdog_s": Int(c.watchdogSeconds)]
    }

    static func slot(_ s: SlotStatus, quarantine: [QuarantineReason]?) -> JSONObject {
        var o: JSONObject = ["slot": s.number, "state": s.state.description, "battery_present": s.batteryPresent,
                             "door_closed": s.doorClosed, "locked": s.locked, "charging": s.charging,
                             "charge_complete": s.chargeComplete, "in_service": s.inService, "bms_link_ok": s.bmsLinkOK,
                             "fault_code": Int(s.fault.rawValue), "stale": s.stale,
                             "door_open_count": Int(s.doorOpenCount), "insert_count": Int(s.insertCount)]
        if let c = s.cabinet { o["cabinet"] = c }
        if let l = s.cabinetSlot { o["cabinet_slot"] = l }
        if let q = quarantine { o["quarantine"] = q.map(\.rawValue) }
        if let e = s.bmsError { o["bms_error"] = e }
        if let b = s.bms {
            o["bms"] = ["battery_id": b.batteryID, "family": b.family.name, "soc": JSON.round(b.socPercent),
                        "soh": JSON.round(b.sohPercent), "pack_voltage_v": JSON.round(b.packVoltage, 2),
                        "pack_current_a": JSON.round(b.packCurrent, 2), "temp_max_c": JSON.round(b.tempMax),
                        "temp_min_c": JSON.round(b.tempMin), "cycle_count": Int(b.cycleCount),
                        "full_capacity_ah": JSON.round(b.fullCapacityAh, 2),
                        "remaining_capacity_ah": JSON.round(b.remainingCapacityAh, 2),
                        "protection": b.protection.names, "warning": b.warning.names,
                        "cell_v_max": JSON.round(b.cellVMax, 3), "cell_v_min": JSON.round(b.cellVMin, 3)] as JSONObject
        } else {
            o["bms"] = NSNull()
        }
        return o
    }
}
