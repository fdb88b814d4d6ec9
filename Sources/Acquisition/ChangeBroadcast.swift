#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
// `Locked` (a value behind a Mutex, checked Sendable; formerly LockedBox here) is StationSupport's; re-exported for
// Acquisition's files and its clients.
@_exported import StationSupport
import StationDomain

/// Fans the stream of station changes out to every subscriber (event log, inventory publisher, swaps…).
/// A batch is one acquisition cycle's changes, in order.
public final class ChangeBroadcast: Sendable {
    private let subscribers = Locked<[UUID: AsyncStream<ChangeBatch>.Continuation]>([:])

    public init() {}

    /// A new stream of batches from now on. Buffered without bound: the consumers are the daemon's
    /// own services and batches are small; a stuck consumer shows up in memory metrics, not as lost changes.
    public func subscribe() -> AsyncStream<ChangeBatch> {
        let id = UUID()
        let (stream, continuation) = AsyncStream<ChangeBatch>.makeStream()
        continuation.onTermination = { [subscribers] _ in subscribers.withLock { $0[id] = nil } }
        subscribers.withLock { $0[id] = continuation }
        return stream
    }

    func publish(_ batch: ChangeBatch) {
        for c in subscribers.withLock({ Array($0.values) }) { c.yield(batch) }
    }

    func finish() {
        for c in subscribers.withLock({ Array($0.values) }) { c.finish() }
    }
}

/// One cycle's changes and the snapshot they lead to.
public struct ChangeBatch: Sendable {
    public let changes: [StationChange]
    public let snapshot: StationSnapshot
    public let inventory: Inventory?
    public let quarantined: [Int: [QuarantineReason]]
    public let timestamp: Date
    /// Doors open after this batch, with the `authorised` flag of their opening.
    public var openDoors: [Int: Bool] = [:]
    /// In a station batch: the configured id of the cabinet whose cycle produced it (its slot-level and
    /// cabinet-level changes are that cabinet's), and every cabinet's own state to store.
    public var cabinet: String?
    public var cabinetStates: [String: PersistedStation]?
}

/// What the gateway keeps of the station between runs (stored with the events it produced).
public struct PersistedStation: Sendable, Codable {
    public var snapshot: StationSnapshot
    public var quarantine: [Int: [QuarantineReason]]
    /// Slots whose door was open, with whether that opening was authorised, so that a door forced open
    /// before a restart and closed after it is still reported unauthorised. Absent in states stored by
    /// older versions (then the flag is derived: see `StationTracker.diff`).
    public var openDoors: [Int: Bool]?
    /// Each cabinet's own state (its own slot numbers) by configured id; absent in states stored before several
    /// cabinets were supported (then the whole state is the first cabinet's). The fields above are the station's.
    public var cabinets: [String: PersistedStation]?
    public init(snapshot: StationSnapshot, quarantine: [Int: [QuarantineReason]], openDoors: [Int: Bool]? = nil,
                cabinets: [String: PersistedStation]? = nil) {
        self.snapshot = snapshot; self.quarantine = quarantine; self.openDoors = openDoors; self.cabinets = cabinets
    }
    public static let metaKey = "station_state"
}

extension ChangeBatch {
    public var persisted: PersistedStation {
        PersistedStation(snapshot: snapshot, quarantine: quarantined, openDoors: openDoors, cabinets: cabinetStates)
    }
}
