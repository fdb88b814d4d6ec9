#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The station's time base taken from signed ABS commands (abs-mqtt.md contract 1.1 "Time"): the newest
/// verified `issued_at` plus the monotonic time elapsed since it was taken. It only ever moves forward.
///
/// Pure: the caller gives the monotonic instant (`at`). A base restored from the store after a restart
/// (`restore`) counts from the restart's instant: the time the station was off is unknown, so the
/// estimate is low until the next signed command moves it (docs/commands.md "Time").
public struct TimeBase: Sendable, Equatable {
    /// The wall time of the base and the monotonic instant it was taken at.
    public private(set) var base: Date?
    public private(set) var takenAt: ContinuousClock.Instant?
    /// True once a signed command moved the base in this run (not only restored from the store).
    public private(set) var live = false

    public init() {}

    /// A base persisted by an earlier run, counted from `at`. Never moves an existing base back.
    public mutating func restore(_ persisted: Date, at now: ContinuousClock.Instant) {
        if let current = self.now(at: now), current >= persisted { return }
        base = persisted
        takenAt = now
    }

    /// The estimated time at `now`: base + elapsed; nil without a base.
    public func now(at now: ContinuousClock.Instant) -> Date? {
        guard let base, let takenAt else { return nil }
        let elapsed = now - takenAt
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return base.addingTimeInterval(max(0, seconds))
    }

    /// Moves the base to `issuedAt` if that is later than the current estimate. Returns true when it moved.
    @discardableResult
    public mutating func advance(to issuedAt: Date, at now: ContinuousClock.Instant) -> Bool {
        if let current = self.now(at: now), issuedAt <= current {
            live = true
            return false
        }
        base = issuedAt
        takenAt = now
        live = true
        return true
    }
}
