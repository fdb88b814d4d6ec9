import ABSProtocol
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationDomain
import StationStore

/// The JSON bodies the station publishes (abs-mqtt.md), built from the contract's types
/// (ABSProtocol/Contract: one type per payload, one writer). Every payload carries `"v": 1`.
public enum Payloads {
    /// The event envelope around the stored `data` bytes (already JSON: kept as recorded, not decoded).
    public static func event(_ e: StoredEvent, stationID: String) -> [UInt8] {
        EventEnvelope(eventID: e.eventID, seq: e.seq, type: e.type, stationID: stationID, ts: e.timestamp, data: e.data).bytes
    }

    /// `cabinet` is an addition to the contract's `online` flag: "online", "unreachable" or "safe_mode",
    /// so ABS sees a station whose gateway is up but whose cabinet is not (docs/mqtt.md).
    /// `cabinets`: with several cabinets, each one's state by id (`cabinet` is then the best of them).
    public static func status(online: Bool, stationID: String, version: String, cabinet: String?,
                              cabinets: [String: String]? = nil, session: UInt64? = nil, now: Date) -> [UInt8] {
        // Contract 1.1: `session` (the MQTT connection's number; its will carries it too) and `clock` (TrustedClock).
        StatusMessage(online: online, stationID: stationID, version: version, cabinet: cabinet, cabinets: cabinets,
                      session: session, clock: ClockTrustMark.state, ts: now).bytes
    }

    /// Station-wide counts, and `cabinets`: the same counts per cabinet, each with its `cabinet` id (configured order).
    public static func inventory(_ inv: Inventory, stationID: String, cabinetOrder: [String] = [], now: Date) -> [UInt8] {
        InventoryMessage(inv, stationID: stationID, cabinetOrder: cabinetOrder, ts: now).bytes
    }

    /// Every slot and BMS field, the cabinet block(s) and the meter, without the envelope (TelemetryReporter adds
    /// `v`, `station_id`, `ts`, `kind`, `tseq`, `session` and reports either all of it or what moved).
    public static func telemetryBody(_ snap: StationSnapshot, quarantined: [Int: [QuarantineReason]]) -> TelemetryBody {
        TelemetryBody(snap, quarantined: quarantined)
    }
}
