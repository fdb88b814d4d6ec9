import Acquisition
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ModbusLink
import StationDomain

/// One cabinet's link as every reader tells it: `swapctl status` and the control API's `status`, `/health`,
/// `/metrics` and the MQTT retained `status` (its `cabinets` map) all take it from here, so they cannot disagree.
public enum CabinetLinkState: String, Sendable, Codable, CaseIterable {
    /// Answers and is not in safe mode: its slots serve swaps.
    case online
    /// Stopped answering (`stale_after_failed_cycles` failed polls in a row, or never answered after them).
    case unreachable
    /// Answers, but the controller is in its standalone safe mode (no unlocks: its slots are out of swaps).
    case safeMode = "safe_mode"
    /// Not polled to a verdict yet (just after the start).
    case unknown

    /// `composed`: the cabinet as the station snapshot has it; `failuresInARow` / `staleAfter`: its acquisition's
    /// failed polls in a row and `stale_after_failed_cycles` (a cabinet that never answered is `unknown` until it
    /// has failed that many polls, then `unreachable`).
    public static func of(_ composed: CabinetState, failuresInARow: Int, staleAfter: Int) -> CabinetLinkState {
        if composed.info == nil { return failuresInARow >= max(1, staleAfter) ? .unreachable : .unknown }
        if composed.stale { return .unreachable }
        return composed.safeMode ? .safeMode : .online
    }
}

/// What the daemon knows of one cabinet: configuration, link state, station slot range and its own counters.
public struct CabinetReport: Sendable {
    public var id: String
    public var unit: Int
    /// `tcp` or `rtu`, and the address: `host:port` or the serial device.
    public var transport: String
    public var address: String
    /// The bus it is on (cabinets with the same key share one bus owner): `tcp:host:port` or `rtu:device`.
    public var bus: String
    public var state: CabinetLinkState
    /// Its slots are stale (unknown) in the station snapshot.
    public var stale: Bool
    public var info: CabinetInfo?
    public var firstSlot: Int
    public var slotCount: Int
    public var statistics: AcquisitionStatistics
    public var staleAfterFailedCycles: Int

    /// The station's slot numbers of this cabinet ("5…8"), nil while its slot count is not known.
    public var slotRange: String? { slotCount > 0 ? "\(firstSlot)…\(firstSlot + slotCount - 1)" : nil }
}

public enum CabinetReports {
    /// Every cabinet in configured order.
    public static func of(_ acquisition: StationAcquisition) -> [CabinetReport] {
        reports(acquisition.snapshot, acquisition)
    }

    /// Each cabinet's link state for a (possibly older) station snapshot, in configured order.
    public static func states(_ snap: StationSnapshot, _ acquisition: StationAcquisition) -> [(id: String, state: CabinetLinkState)] {
        reports(snap, acquisition).map { ($0.id, $0.state) }
    }

    static func reports(_ snap: StationSnapshot, _ acquisition: StationAcquisition) -> [CabinetReport] {
        acquisition.cabinets.enumerated().map { i, cab in
            let conf = cab.configuration
            let composed = i < snap.cabinets.count ? snap.cabinets[i] : CabinetState(id: conf.cabinetID, unit: Int(conf.unit))
            let (transport, address, bus): (String, String, String)
            switch conf.transport {
            case let .tcp(host, port): (transport, address, bus) = ("tcp", "\(host):\(port)", "tcp:\(host):\(port)")
            case let .rtu(device, _, _, _, _): (transport, address, bus) = ("rtu", device, "rtu:\(device)")
            }
            return CabinetReport(id: conf.cabinetID, unit: Int(conf.unit), transport: transport, address: address, bus: bus,
                                 state: CabinetLinkState.of(composed, failuresInARow: cab.statistics.consecutiveFailures,
                                                            staleAfter: conf.staleAfterFailedCycles), stale: composed.stale,
                                 info: composed.info, firstSlot: composed.firstSlot, slotCount: composed.slotCount,
                                 statistics: cab.statistics, staleAfterFailedCycles: conf.staleAfterFailedCycles)
        }
    }

    /// The station's cabinets in one word and one line, never better than the worst cabinet:
    /// `online` ("all online"; one cabinet: "online") when every cabinet is online; `unknown` ("not polled yet")
    /// while none has been polled to a verdict; `down` when none is online ("down: A unreachable, B safe_mode");
    /// otherwise `degraded` ("degraded: B unreachable"), the others serving their slots.
    public static func summary(_ reports: [CabinetReport]) -> (state: String, detail: String) {
        summary(states: reports.map { ($0.id, $0.state) })
    }

    public static func summary(states reports: [(id: String, state: CabinetLinkState)]) -> (state: String, detail: String) {
        let online = reports.filter { $0.state == .online }
        let notOnline = reports.filter { $0.state != .online }
        if notOnline.isEmpty { return ("online", reports.count > 1 ? "all online" : "online") }
        if reports.allSatisfy({ $0.state == .unknown }) { return ("unknown", "not polled yet") }
        let word = online.isEmpty ? "down" : "degraded"
        let list = reports.count == 1 ? notOnline[0].state.rawValue
            : notOnline.map { "\($0.id) \($0.state.rawValue)" }.joined(separator: ", ")
        return (word, "\(word): \(list)")
    }
}
