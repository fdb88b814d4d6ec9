import ABSProtocol
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationDomain
import StationStore

/// The result of a station operation: done (with what it did), or refused with one typed reason. The adapters
/// (MQTT `CommandService`, local control API `ControlHandler`) map a refusal to their wire codes.
public enum OperationResult<Value: Sendable>: Sendable {
    case done(Value)
    case refused(OperationRefusal)

    public var value: Value? { if case let .done(v) = self { v } else { nil } }
    public var refusal: OperationRefusal? { if case let .refused(r) = self { r } else { nil } }
}

extension OperationResult: Equatable where Value: Equatable {}

/// Why an operation did nothing (or, for `cabinetRefused`/`cabinetUnreachable` after the intent was recorded,
/// why the door or slot did not change). The fail-closed policy in one place (StationOperations):
/// - unknown slot → `invalidSlot`; no slots known yet, or the slot's cabinet stale → `cabinetUnreachable`,
///   before anything is recorded;
/// - the audit row (or the swap's record) cannot be written → `storageError`, and the cabinet is not commanded;
/// - the controller does not confirm → `cabinetUnreachable`; it answers with another result → `cabinetRefused`.
public enum OperationRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not a slot of this station.
    case invalidSlot(String)
    /// The station has no slots yet, the slot's cabinet is not answering, or the controller did not confirm.
    case cabinetUnreachable(String)
    /// The controller answered the command with a result other than ok (safe mode, busy, door not closed, …).
    case cabinetRefused(CommandResult)
    /// The operation could not be recorded (audit, swap record, cache): nothing was done.
    case storageError(String)
    /// The record the operation names does not exist (usage resend).
    case notFound(String)
    /// The swap decision's refusal (unknown customer, no ready battery, safe mode, station busy, …).
    case swap(SwapRefusal)
    /// An entitlement delta whose base is not the cache's version: a snapshot is needed.
    case needSnapshot(currentVersion: Int64?, String)
    /// The command's content contradicts what the station holds (an older or inconsistent snapshot part).
    case malformed(String)

    public var message: String {
        switch self {
        case let .invalidSlot(m), let .cabinetUnreachable(m), let .storageError(m), let .notFound(m), let .malformed(m):
            return m
        case let .cabinetRefused(result): return "cabinet answered: \(result)"
        case let .swap(r): return r.message
        case let .needSnapshot(_, m): return m
        }
    }

    public var description: String { message }
}

/// Who asks for an operation: the audit row's actor and the `maintenance.unlock` event's operator.
public enum Requester: Sendable, Equatable {
    /// ABS, by a verified MQTT command: its request id and, for an unlock, the operator it names.
    case abs(requestID: String, operatorID: String?)
    /// A technician on the local control API (name and credential checked by the adapter).
    case technician(name: String)

    /// The audit row's actor: `operator:ID` (an ABS unlock), `abs:REQUEST` (another ABS command), `technician:NAME`.
    public var auditActor: String {
        switch self {
        case let .abs(requestID, operatorID): operatorID.map { "operator:\($0)" } ?? "abs:\(requestID)"
        case let .technician(name): "technician:\(name)"
        }
    }

    /// The `operator_id` of a `maintenance.unlock` event: ABS's operator as given, or `technician:NAME`.
    public var operatorID: String {
        switch self {
        case let .abs(requestID, operatorID): operatorID ?? "abs:\(requestID)"
        case let .technician(name): "technician:\(name)"
        }
    }
}

/// A slot command the controller confirmed (maintenance unlock, set service).
public struct SlotActionDone: Sendable, Equatable {
    /// Station-wide slot.
    public let slot: Int
    /// With several cabinets: the slot's cabinet id and that cabinet's own slot number.
    public let cabinet: String?
    public let cabinetSlot: Int?
    /// The request id recorded with it (ABS's, or `local-…` for a technician).
    public let requestID: String
    public let result: CommandResult
    /// Set service only: the state asked for.
    public let inService: Bool?
}

/// A swap the station accepted and recorded (its first door is being opened).
public struct SwapAcceptance: Sendable, Equatable {
    public let swapID: String
    public let requestID: String
    public let customerID: String
    public let planInstanceID: String
    public let kind: SwapKind
    public let returnSlot: Int?
    public let issueSlot: Int?
    public let channel: String?

    /// The `swap.accepted` event's data, which is also the reply's.
    public var data: EventPayload {
        .swapAccepted(swapID: swapID, requestID: requestID, customerID: customerID, planInstanceID: planInstanceID, kind: kind.rawValue,
                      returnSlot: returnSlot, issueSlot: issueSlot, channel: channel)
    }
}

/// An entitlement update that the cache took (or had already taken).
public enum EntitlementsApplied: Sendable, Equatable {
    /// A whole snapshot swapped in.
    case snapshot(version: Int64, count: Int)
    /// One part of a snapshot in parts staged; `missing` parts still to come (`firstMissing`: the lowest, at most 20).
    case partStaged(snapshotID: String, part: Int, parts: Int, version: Int64, missing: Int, firstMissing: [Int], duplicate: Bool)
    /// The last part arrived: the snapshot in parts swapped in (`count` records).
    case partsApplied(snapshotID: String, part: Int, parts: Int, version: Int64, count: Int)
    /// A part of the snapshot applied last (a late copy): nothing changed.
    case partsAlreadyApplied(snapshotID: String, part: Int, parts: Int, version: Int64)
    /// A delta applied on its base.
    case delta(version: Int64, changes: Int)
    /// A delta at or below the cache's version: a re-delivery, nothing changed.
    case deltaAlreadyApplied(version: Int64)
}

/// An entitlement update as ABS sends it (`entitlements` command; contract 1.1).
public enum EntitlementUpdate: Sendable {
    case snapshot(version: Int64, entitlements: [Entitlement], countedThroughSeq: Int64?)
    case part(snapshotID: String, part: Int, parts: Int, version: Int64, countedThroughSeq: Int64?, entitlements: [Entitlement])
    case delta(baseVersion: Int64, version: Int64, upsert: [Entitlement], remove: [String], countedThroughSeq: Int64?)
}
