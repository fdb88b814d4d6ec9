import ABSProtocol
import Acquisition
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationDomain
import StationStore

// The seams of the use cases (StationOperations) and the swap coordinator: what they need of the cabinets, the
// store and the clock, as small protocols. The daemon passes the real parts (StationAcquisition, StationStore,
// TrustedClock, EventRecorder); Tests/OrchestrationTests pass a fake cabinet, a StationStore over an in-memory
// SQLiteLink `DatabaseQueue` and a fixed clock, and run every operation in-process.

/// The station's cabinets as the use cases see them: station-wide slot numbers, commands through the command
/// block, the live model. `StationAcquisition` is the real one.
public protocol StationCabinet: Sendable {
    /// The live station model (every cabinet, station-wide slots).
    var snapshot: StationSnapshot { get }
    /// The configured cabinet ids, in order.
    var cabinetIDs: [String] { get }
    /// The cabinet index and that cabinet's own slot number of station slot `slot`; nil when not a slot of the station.
    func locate(_ slot: Int) -> (cabinet: Int, slot: Int)?
    /// Station slots holding a battery ready to be issued.
    func readySlots() async -> Set<Int>
    /// Runs a command on the slot's controller and waits for its result; throws when the controller does not confirm.
    func execute(_ command: CabinetCommand, slot: Int, param: UInt16, timeout: Double) async throws -> CommandResult
    /// Same with a given command seq (a retry re-sends the same seq: never two unlocks).
    func execute(_ command: CabinetCommand, slot: Int, seq: UInt16, param: UInt16, timeout: Double) async throws -> CommandResult
    /// Reads these slots again in the next cycle (all when nil).
    func requestRefresh(slots: Set<Int>?) async
    /// Cycles completed by the cabinets holding `slots` (all when nil).
    func cycles(ofSlots slots: Set<Int>?) -> Int
    /// A seq for the next command to the cabinet of station slot `slot` (never the one in its register 19).
    func proposeSeq(slot: Int) -> UInt16
    /// The first cabinet's next seq.
    func proposeSeq() -> UInt16
}

extension StationAcquisition: StationCabinet {
    public var cabinetIDs: [String] { cabinets.map(\.configuration.cabinetID) }
}

/// What the swap coordinator records and reads: the swaps in progress, the entitlement cache with the station's
/// not-yet-counted swaps on top, the event log. Every write is one transaction; a write that throws left nothing.
public protocol SwapLedger: Sendable {
    func swapsInProgress() async throws -> [SwapRecord]
    func effectiveEntitlement(planInstanceID: String) async throws -> Entitlement?
    func effectiveEntitlements(customerID: String) async throws -> [Entitlement]
    func entitlementLastSync() async throws -> Date?
    func appendEvents(_ events: [NewEvent]) async throws -> [StoredEvent]
    func insertSwap(_ swap: SwapRecord, events: [NewEvent], audit: [AuditEntry], allowConcurrent: Int) async throws -> [StoredEvent]
    func updateSwap(_ swap: SwapRecord, events: [NewEvent], audit: [AuditEntry]) async throws -> [StoredEvent]
    func completeSwap(_ swap: SwapRecord, pending: PendingLocalSwap?, usage: UsageRecord?, events: [NewEvent],
                      audit: [AuditEntry], completedEventIndex: Int?) async throws -> [StoredEvent]
}

/// The swap ledger and what the other operations record: the audit trail, the entitlement cache's updates,
/// the Odoo usage outbox. `StationStore` is the real one (a file, or an injected SQLiteLink writer in tests).
public protocol StationLedger: SwapLedger {
    func appendAudit(_ entries: [AuditEntry]) async throws
    func applyEntitlementSnapshot(version: Int64, entitlements: [Entitlement], issuedAt: Date, receivedAt: Date,
                                  countedThroughSeq: Int64?) async throws
    func stageEntitlementSnapshotPart(snapshotID: String, part: Int, parts: Int, version: Int64, countedThroughSeq: Int64?,
                                      entitlements: [Entitlement], expiresAt: Date, receivedAt: Date) async throws -> SnapshotPartOutcome
    func applyEntitlementDelta(baseVersion: Int64, version: Int64, upsert: [Entitlement], remove: [String],
                               issuedAt: Date, receivedAt: Date, countedThroughSeq: Int64?) async throws -> DeltaOutcome
    func usage(key: String) async throws -> StoredUsage?
    func resendUsage(key: String, now: Date) async throws -> Bool
}

extension StationStore: StationLedger {}

/// The time operations are stamped and judged with. The daemon's is the TrustedClock (the signed time base
/// while the system clock is not trusted); tests use a fixed one.
public protocol OperationClock: Sendable {
    func now() -> Date
}

extension TrustedClock: OperationClock {}

/// The system clock.
public struct SystemClock: OperationClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// Where contract events of operations go (recorded durably, then published): the EventRecorder.
public protocol ContractEventSink: Sendable {
    func record(_ events: [ContractEvent], at date: Date) async
}

extension EventRecorder: ContractEventSink {}
