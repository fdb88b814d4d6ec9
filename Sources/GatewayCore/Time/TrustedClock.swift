import ABSProtocol
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationDomain
import StationStore
#if os(Linux)
import CTimex
#endif

/// Whether the station's clock can be trusted, and the time base taken from signed commands while it cannot
/// (abs-mqtt.md contract 1.1 "Time"; docs/commands.md "Time", docs/operator.md "Clock").
///
/// `clock.trust`:
/// - `auto` (default): the clock is trusted when the kernel says it is synchronised (adjtimex: STA_UNSYNC clear),
///   the configured sync flag file exists (`clock.sync_flag`, e.g. systemd-timesyncd's
///   /run/systemd/timesync/synchronized), it is not earlier than `GatewayVersion.buildEpoch`, and it is within
///   `abs.max_clock_skew` of a time base a signed command gave in this run.
/// - `system`: always trusted (boards with a battery-backed RTC, tests, development).
/// - `commands`: never trusted; the signed time base always.
///
/// Forward only: the base moves to a verified, accepted, signed command's `issued_at` when that is later than
/// the current estimate (base + monotonic time since). It is persisted in the store's meta (`clock_base`), so
/// a reboot into 1970 starts from the last base, not from zero.
public final class TrustedClock: Sendable {
    public enum Trust: String, Sendable, CaseIterable { case auto, system, commands }

    public static let metaKey = "clock_base"

    public let trust: Trust
    public let maxSkew: TimeInterval
    public let syncFlagPath: String?
    public let buildEpoch: Date
    private let state = Locked(TimeBase())
    private let kernelSynchronised: @Sendable () -> Bool
    private let wall: @Sendable () -> Date

    public init(trust: Trust, maxSkew: TimeInterval, syncFlagPath: String? = nil, buildEpoch: Date = GatewayVersion.buildEpoch,
                kernelSynchronised: @escaping @Sendable () -> Bool = TrustedClock.kernelSaysSynchronised,
                wall: @escaping @Sendable () -> Date = TrustedClock.boardClock) {
        self.trust = trust; self.maxSkew = maxSkew; self.syncFlagPath = syncFlagPath; self.buildEpoch = buildEpoch
        self.kernelSynchronised = kernelSynchronised; self.wall = wall
    }

    /// Restores the base an earlier run persisted (never moves the current base back).
    public func restore(from store: StationStore) async {
        guard let text = try? await store.meta(Self.metaKey), let seconds = Double(text) else { return }
        let now = ContinuousClock.now
        state.withLock { $0.restore(Date(timeIntervalSince1970: seconds), at: now) }
    }

    /// Why the system clock is not trusted (nil: it is).
    public var distrust: String? {
        switch trust {
        case .system: return nil
        case .commands: return "clock.trust is commands"
        case .auto: break
        }
        let wallNow = wall()
        if wallNow < buildEpoch { return "the clock is earlier than this build (\(RFC3339.format(buildEpoch)))" }
        if !kernelSynchronised() { return "the kernel clock has not been synchronised since boot (STA_UNSYNC)" }
        if let flag = syncFlagPath, !FileManager.default.fileExists(atPath: flag) { return "\(flag) does not exist" }
        let b = state.current
        if b.live, let base = b.now(at: .now), abs(wallNow.timeIntervalSince(base)) > maxSkew {
            return "the clock is \(Int(wallNow.timeIntervalSince(base))) s off the signed time base, beyond the allowed skew"
        }
        return nil
    }

    public var isTrusted: Bool { distrust == nil }

    /// The estimated time from the signed base (nil: no base yet).
    public var baseNow: Date? { state.current.now(at: .now) }

    /// What a command's times are judged against.
    public func commandTime() -> CommandTime {
        isTrusted ? .trusted(wall()) : .signedBase(baseNow)
    }

    /// The time the station acts on (entitlement validity, request memory): the clock when trusted, else the base
    /// (or the clock when there is no base yet, which only happens before any signed command was accepted).
    public func now() -> Date {
        isTrusted ? wall() : (baseNow ?? wall())
    }

    /// A trusted time or nil (the cabinet's clock is set only from this).
    public func trustedNow() -> Date? {
        isTrusted ? wall() : baseNow
    }

    /// A signed command verified and was not refused as expired: its issued_at moves the base forward.
    /// Returns the new base when it moved (the caller persists it).
    @discardableResult
    public func accept(issuedAt: Date) -> Date? {
        let now = ContinuousClock.now
        return state.withLock { b -> Date? in b.advance(to: issuedAt, at: now) ? issuedAt : nil }
    }

    /// Moves the base and persists it (store meta `clock_base`, unix seconds).
    public func accept(issuedAt: Date, store: StationStore) async {
        guard let moved = accept(issuedAt: issuedAt) else { return }
        try? await store.setMeta(Self.metaKey, String(moved.timeIntervalSince1970))
    }

    /// The environment variable of the test-only board clock (`boardClock`).
    public static let testBoardClockVariable = "SWAPGATE_TEST_BOARD_CLOCK"

    /// The board's wall clock as the trust decisions see it: `Date()`, unless the test-only environment variable
    /// SWAPGATE_TEST_BOARD_CLOCK is set (end-to-end tests of a board booted into 1970 or a year ahead,
    /// TrustedTimeTests; the daemon logs a warning at start when it is):
    /// - `@<RFC 3339>`: the board clock reads that instant when the process starts and runs on from there
    ///   (monotonic time), e.g. `@1970-01-02T00:00:00Z`;
    /// - `+N` / `-N`: the board clock is N seconds ahead of / behind the real one, e.g. `+31536000`.
    /// It moves what TrustedClock judges (trust, command times while trusted, the cabinet clock while trusted);
    /// event timestamps and swap stage timers keep `Date()`. libfaketime cannot stand in for it: its
    /// timerfd_settime interposition shifts absolute CLOCK_MONOTONIC/CLOCK_BOOTTIME timers (libdispatch's, which
    /// Swift's Task.sleep uses) by the faked wall clock's offset, so under it every sleep of the daemon lasted
    /// decades (docs/operator.md "Clock").
    public static let boardClock: @Sendable () -> Date = {
        guard let spec = ProcessInfo.processInfo.environment[testBoardClockVariable], !spec.isEmpty else { return { Date() } }
        if spec.hasPrefix("@"), let start = RFC3339.parse(String(spec.dropFirst())) {
            let origin = ContinuousClock.now
            return {
                let elapsed = ContinuousClock.now - origin
                return start.addingTimeInterval(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            }
        }
        if let offset = Double(spec.hasPrefix("+") ? String(spec.dropFirst()) : spec) {
            return { Date().addingTimeInterval(offset) }
        }
        return { Date() }
    }()

    /// adjtimex(2) read-only (modes 0, no privilege needed): STA_UNSYNC clear means an NTP client (ntpd, chrony,
    /// systemd-timesyncd) has synchronised the clock since boot. A failing call counts as not synchronised.
    @Sendable public static func kernelSaysSynchronised() -> Bool {
        #if os(Linux)
        var status: Int32 = 0
        guard let state = try? systemCall("adjtimex", { swapgate_adjtimex_read(&status) }) else { return false }
        return state != TIME_ERROR && (status & STA_UNSYNC) == 0
        #else
        return true
        #endif
    }
}

/// Whether events recorded now are recorded under a trusted clock (set by the daemon's TrustedClock; events
/// recorded while it is false carry `"clock_trusted": false` in their data, docs/commands.md "Time").
public enum ClockTrustMark {
    private static let clock = Locked<TrustedClock?>(nil)
    static func install(_ c: TrustedClock) { clock.withLock { $0 = c } }
    /// The daemon's clock (nil in a process without a Gateway).
    public static var installed: TrustedClock? { clock.current }
    /// "synced" or "unsynced" (status payload, swapctl status); nil without a daemon clock.
    public static var state: String? { installed.map { $0.isTrusted ? "synced" : "unsynced" } }

    /// The event marked `clock_trusted: false` when the clock is not trusted now.
    static func mark(_ event: ContractEvent) -> ContractEvent {
        guard let c = clock.current, !c.isTrusted else { return event }
        var e = event
        e.clockTrusted = false
        return e
    }
}
