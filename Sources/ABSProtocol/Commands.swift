#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationDomain

/// What the station accepts from ABS. The defaults are production values.
public struct CommandPolicy: Sendable {
    /// Development only: accept a bare command JSON (no envelope) and an envelope without "sig"
    /// (`VerifiedCommand.signed` is then false). A signature that is present is always verified.
    public var allowUnsigned: Bool = false
    /// Seconds `issued_at` may lie in the future of the station's clock.
    public var maxClockSkew: Double = 120
    /// Refuse a command whose `expires_at − issued_at` exceeds this (s): the station must remember
    /// each request_id until the command expires.
    public var maxLifetime: Double = 86_400
    /// The largest MQTT payload (the envelope as received) the verifier looks at.
    public var maxPayloadBytes: Int = 64 * 1024 * 1024
    /// The most bytes an `enc: deflate` payload may inflate to (configuration `abs.max_inflated_bytes`);
    /// beyond it the command is refused `malformed` as soon as the limit is passed.
    public var maxInflatedBytes: Int = 64 * 1024 * 1024
    /// This station's id. When set, a command that names a `station_id` must name this one.
    /// (Contract v1 does not require ABS to send `station_id`; see docs/commands.md.)
    public var stationID: String? = nil

    public init() {}
}

/// The last topic level of `cmd/V01/BSS/{sid}/<name>`.
public enum CommandName: String, Sendable, CaseIterable {
    case swap, unlock, slot, entitlements, ping
    /// Contract 1.1: republish status, inventory and a full telemetry report now (no body).
    case rebirth
}

/// Why a command was refused. `requestID` is set only once it was read from a payload whose
/// signature checked out (or, in unsigned mode, from a parsed command): the station never echoes
/// an id it could not trust.
public struct CommandRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: ReplyCode
    public let message: String
    public let requestID: String?

    public init(code: ReplyCode, message: String, requestID: String? = nil) {
        self.code = code
        self.message = message
        self.requestID = requestID
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

public struct CommandHeader: Sendable, Equatable {
    public let requestID: String
    public let issuedAt: Date
    public let expiresAt: Date
    /// The key that signed the command; nil when it was unsigned.
    public let kid: String?

    public init(requestID: String, issuedAt: Date, expiresAt: Date, kid: String?) {
        self.requestID = requestID
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.kid = kid
    }
}

public enum CommandBody: Sendable, Equatable {
    case swap(customerID: String, planInstanceID: String?, channel: String?)
    case unlock(slot: Int, operatorID: String, reason: String)
    case slot(slot: Int, inService: Bool)
    /// `countedThroughSeq`: contract 1.1's acknowledgement (the highest event seq of this station
    /// that ABS's records count); nil when the message has none (it then acknowledges nothing).
    case entitlementSnapshot(version: Int64, entitlements: [Entitlement], countedThroughSeq: Int64?)
    /// One part of a snapshot sent in parts (contract 1.1): staged until all `parts` of its `snapshotID` arrived.
    case entitlementSnapshotPart(EntitlementSnapshotPart)
    case entitlementDelta(baseVersion: Int64, version: Int64, upsert: [Entitlement], remove: [String], countedThroughSeq: Int64?)
    case ping
    case rebirth

    public var name: CommandName {
        switch self {
        case .swap: return .swap
        case .unlock: return .unlock
        case .slot: return .slot
        case .entitlementSnapshot, .entitlementSnapshotPart, .entitlementDelta: return .entitlements
        case .ping: return .ping
        case .rebirth: return .rebirth
        }
    }
}

/// One part of an entitlement snapshot in parts (abs-mqtt.md "Large commands over a thin link"): `part` of
/// `parts` of the snapshot `snapshotID`, with a slice of its records. `version` and `countedThroughSeq` are
/// the snapshot's: every part of one `snapshotID` must carry the same (the store checks across parts).
public struct EntitlementSnapshotPart: Sendable, Equatable {
    public let snapshotID: String
    /// 1…parts.
    public let part: Int
    /// 1…`CommandLimits.maxSnapshotParts`.
    public let parts: Int
    public let version: Int64
    public let countedThroughSeq: Int64?
    public let entitlements: [Entitlement]

    public init(snapshotID: String, part: Int, parts: Int, version: Int64, countedThroughSeq: Int64?, entitlements: [Entitlement]) {
        self.snapshotID = snapshotID; self.part = part; self.parts = parts; self.version = version
        self.countedThroughSeq = countedThroughSeq; self.entitlements = entitlements
    }
}

public struct VerifiedCommand: Sendable, Equatable {
    public let header: CommandHeader
    public let body: CommandBody
    /// False only when the policy allows unsigned commands and this one carried no signature.
    public let signed: Bool

    public init(header: CommandHeader, body: CommandBody, signed: Bool) {
        self.header = header
        self.body = body
        self.signed = signed
    }
}

/// Limits on the values of command fields.
public enum CommandLimits {
    /// Slot numbers a command may name; the cabinet's real count is checked later.
    public static let slots: ClosedRange<Int> = 1...48
    /// request_id: 1…128 printable ASCII characters (0x20…0x7E).
    public static let maxRequestIDLength = 128
    /// Ids (customer, plan instance, operator, network code, …): 1…256 bytes, not blank,
    /// no control characters.
    public static let maxIDBytes = 256
    /// Free text (unlock reason): 1…1024 bytes, not blank, no control characters.
    public static let maxTextBytes = 1024
    /// The most parts of one entitlement snapshot (a 100 000-record snapshot in parts of 10 records).
    public static let maxSnapshotParts = 10_000
}

enum Validation {
    static func isPrintableASCII(_ s: String, maxLength: Int) -> Bool {
        let u = s.utf8
        return !u.isEmpty && u.count <= maxLength && u.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }
    }

    /// nil when valid, else the reason (without the field name): not blank, no control
    /// characters (C0, DEL, C1, U+2028/2029), at most `maxBytes` UTF-8 bytes.
    static func idProblem(_ s: String, maxBytes: Int = CommandLimits.maxIDBytes) -> String? {
        let utf8 = s.utf8
        if utf8.isEmpty { return "must not be empty" }
        if utf8.count > maxBytes { return "is longer than \(maxBytes) bytes" }
        if utf8.allSatisfy({ $0 < 0x80 }) {
            // ASCII (the usual case): a fast path without Unicode property look-ups.
            var blank = true
            for b in utf8 {
                if b < 0x20 || b == 0x7F { return "contains a control character" }
                if b != 0x20 { blank = false }
            }
            return blank ? "must not be blank" : nil
        }
        var blank = true
        for u in s.unicodeScalars {
            if u.value < 0x20 || (0x7F...0x9F).contains(u.value) || u == "\u{2028}" || u == "\u{2029}" {
                return "contains a control character"
            }
            if !u.properties.isWhitespace { blank = false }
        }
        return blank ? "must not be blank" : nil
    }

    /// A short, printable rendering of untrusted text for messages.
    static func quote(_ s: String, max: Int = 64) -> String {
        var out = ""
        for (i, u) in s.unicodeScalars.enumerated() {
            if i == max { out += "…"; break }
            out += (u.value < 0x20 || u.value == 0x7F) ? "?" : String(u)
        }
        return "\"\(out)\""
    }
}
