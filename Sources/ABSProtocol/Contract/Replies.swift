#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationDomain

/// The reply codes of the contract (abs-mqtt.md "Replies"; `need_snapshot` from entitlements.md): the one enum
/// of them, for the verifier's refusals, the swap decision's refusals and every command's reply.
public enum ReplyCode: String, Sendable, CaseIterable, Encodable {
    case badSignature = "bad_signature", expired, replayed, malformed, unknownCustomer = "unknown_customer", inactive
    case outsideValidity = "outside_validity", notInNetwork = "not_in_network", quotaExhausted = "quota_exhausted"
    case custodyLimit = "custody_limit", noReadyBattery = "no_ready_battery", noEmptySlot = "no_empty_slot"
    case stationBusy = "station_busy", cacheTooStale = "cache_too_stale", safeMode = "safe_mode"
    case invalidSlot = "invalid_slot", needSnapshot = "need_snapshot"

    /// The swap decision's refusal (StationDomain keeps its own subset; this switch keeps the two in step).
    public init(_ code: SwapRefusalCode) {
        switch code {
        case .unknownCustomer: self = .unknownCustomer
        case .inactive: self = .inactive
        case .outsideValidity: self = .outsideValidity
        case .notInNetwork: self = .notInNetwork
        case .quotaExhausted: self = .quotaExhausted
        case .custodyLimit: self = .custodyLimit
        case .noReadyBattery: self = .noReadyBattery
        case .noEmptySlot: self = .noEmptySlot
        case .stationBusy: self = .stationBusy
        case .cacheTooStale: self = .cacheTooStale
        case .safeMode: self = .safeMode
        case .malformed: self = .malformed
        }
    }
}

/// Reply data of any of the contract's shapes (the command service carries it from the handler to the reply).
public typealias ReplyData = any Encodable & Sendable

/// A reply on `dt/V01/BSS/{sid}/reply`: `{"code":…,"data":{…},"message":…,"ok":…,"request_id":…,"ts":…,"v":1}`.
/// `request_id`, `code` and `message` are `null` when nil; `data` is left out when nil.
public struct Reply: Encodable, Sendable {
    public var requestID: String?
    public var ok: Bool
    public var code: ReplyCode?
    public var message: String?
    public var data: ReplyData?
    public var ts: Date

    public init(requestID: String?, ok: Bool, code: ReplyCode? = nil, message: String? = nil, data: ReplyData? = nil, ts: Date) {
        self.requestID = requestID; self.ok = ok; self.code = code; self.message = message; self.data = data; self.ts = ts
    }

    /// The reply to a refused command: `ok` false, the refusal's code, message and request_id.
    public init(refusal: CommandRefusal, ts: Date) {
        self.init(requestID: refusal.requestID, ok: false, code: refusal.code, message: refusal.message, ts: ts)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ContractKey.self)
        try c.encodeNullable(code, forKey: "code")
        if let data { try c.encode(data, forKey: "data") }
        try c.encodeNullable(message, forKey: "message")
        try c.encode(ok, forKey: "ok")
        try c.encodeNullable(requestID, forKey: "request_id")
        try c.encode(ts, forKey: "ts")
        try c.encode(1, forKey: "v")
    }

    public var bytes: [UInt8] { ContractJSON.encode(self) }
}

/// `ping`'s reply data.
public struct PingReplyData: Encodable, Sendable, Equatable {
    public var version: String
    public var cabinetOnline: Bool
    public var swapsInProgress: Int
    public init(version: String, cabinetOnline: Bool, swapsInProgress: Int) {
        self.version = version; self.cabinetOnline = cabinetOnline; self.swapsInProgress = swapsInProgress
    }
    enum CodingKeys: String, CodingKey { case version, cabinetOnline = "cabinet_online", swapsInProgress = "swaps_in_progress" }
}

/// `unlock` and `slot` replies: the station-wide slot and, with several cabinets, its cabinet and the cabinet's own
/// slot number; `in_service` for `slot`.
public struct SlotReplyData: Encodable, Sendable, Equatable {
    public var slot: Int
    public var cabinet: String?
    public var cabinetSlot: Int?
    public var inService: Bool?
    public init(slot: Int, cabinet: String? = nil, cabinetSlot: Int? = nil, inService: Bool? = nil) {
        self.slot = slot; self.cabinet = cabinet; self.cabinetSlot = cabinetSlot; self.inService = inService
    }
    enum CodingKeys: String, CodingKey { case slot, cabinet, cabinetSlot = "cabinet_slot", inService = "in_service" }
}

/// `entitlements` replies (entitlements.md): the version applied, and for a snapshot in parts (contract 1.1) the
/// part's `snapshot_id`, `part`, `parts`, `parts_missing` and `first_missing`; `current_version` with `need_snapshot`
/// (-1: no cache). Absent fields are left out.
public struct EntitlementsReplyData: Encodable, Sendable, Equatable {
    public var version: Int64?
    public var count: Int?
    public var currentVersion: Int?
    public var snapshotID: String?
    public var part: Int?
    public var parts: Int?
    public var partsMissing: Int?
    public var firstMissing: [Int]?
    public init(version: Int64? = nil, count: Int? = nil, currentVersion: Int? = nil, snapshotID: String? = nil, part: Int? = nil,
                parts: Int? = nil, partsMissing: Int? = nil, firstMissing: [Int]? = nil) {
        self.version = version; self.count = count; self.currentVersion = currentVersion; self.snapshotID = snapshotID
        self.part = part; self.parts = parts; self.partsMissing = partsMissing; self.firstMissing = firstMissing
    }
    enum CodingKeys: String, CodingKey {
        case version, count, currentVersion = "current_version", snapshotID = "snapshot_id", part, parts
        case partsMissing = "parts_missing", firstMissing = "first_missing"
    }
}
