import Acquisition
import ArgumentParser
import Foundation
import StationDomain

/// Reads the cabinet once: one full acquisition cycle.
func readOnce(_ bus: BusOptions) async throws -> (CabinetAcquisition, StationSnapshot) {
    let acq = try bus.acquisition()
    let ok = await acq.cycle()
    guard ok else {
        throw fail("cabinet at \(acq.configuration.transport) not answering: \(acq.statistics.lastError ?? "unknown error")",
                   code: ExitStatus.unreachable)
    }
    return (acq, acq.snapshot)
}

struct Cabinet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the cabinet controller: identity, uptime, flags, meter.")
    @OptionGroup var bus: BusOptions

    func run() async throws {
        let (_, snap) = try await readOnce(bus)
        guard let c = snap.cabinet else { throw fail("no device block", code: ExitStatus.dataError) }
        if bus.json { printJSON(CabinetView(cabinet: c, meter: snap.meter)); return }
        print("""
        serial        \(c.serial)
        firmware      \(c.firmwareVersion) (map v\(c.mapVersion))
        slots         \(c.slotCount)
        uptime        \(c.uptimeSeconds) s
        heartbeat     \(c.heartbeat)
        flags         \(c.flags.description.isEmpty ? "-" : c.flags.description)
        temperature   \(fmt(c.temperature)) °C
        safe mode     \(c.safeMode ? "YES (no unlocks accepted)" : "no")
        watchdog      \(c.watchdogSeconds) s since last write
        last command  seq \(c.lastCommandSeq) → \(CommandResult(rawValue: c.lastCommandResult)?.description ?? "\(c.lastCommandResult)")
        """)
        if let m = snap.meter {
            print("meter         \(fmt(m.importEnergyKWh, 2)) kWh, \(fmt(m.voltage)) V, \(fmt(m.current, 2)) A, \(fmt(m.activePowerW)) W, \(fmt(m.frequencyHz, 2)) Hz")
        } else {
            print("meter         not present")
        }
    }
}

struct CabinetView: Encodable {
    let cabinet: CabinetInfo
    let meter: MeterReading?
}

struct Slots: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show every slot as a table: state, battery, SoC, SoH, temperatures, faults.")
    @OptionGroup var bus: BusOptions

    func run() async throws {
        let (acq, snap) = try await readOnce(bus)
        let quarantined = await acq.quarantined
        var ready: Set<Int> = []
        for s in snap.slots where await acq.isReady(slot: s.number) { ready.insert(s.number) }
        if bus.json {
            printJSON(snap.slots.map { SlotView(slot: $0, ready: ready.contains($0.number), quarantine: quarantined[$0.number]?.map(\.rawValue)) })
            return
        }
        let rows = snap.slots.map { s -> [String] in
            let b = s.bms
            let status: String
            if s.stale { status = "UNKNOWN" }
            else if !s.inService { status = "out-of-service" }
            else if s.faulted { status = "FAULT" }
            else if quarantined[s.number] != nil { status = "quarantined" }
            else if !s.batteryPresent { status = "empty" }
            else if ready.contains(s.number) { status = "ready" }
            else if s.charging { status = "charging" }
            else { status = "not ready" }
            return [String(s.number), status, s.doorClosed ? (s.locked ? "locked" : "closed") : "OPEN",
                    b?.batteryID ?? (s.batteryPresent ? "?" : "-"), b?.family.name ?? "-",
                    b.map { fmt($0.socPercent) } ?? "-", b.map { fmt($0.sohPercent) } ?? "-",
                    b.map { fmt($0.packVoltage, 2) } ?? "-", b.map { fmt($0.packCurrent, 2) } ?? "-",
                    b.map { "\(fmt($0.tempMin))…\(fmt($0.tempMax))" } ?? "-",
                    s.fault == .none ? (s.bmsError.map { "data: \($0)" } ?? (quarantined[s.number]?.map(\.rawValue).joined(separator: ",") ?? "-")) : s.fault.description]
        }
        print(table(["slot", "status", "door", "battery", "family", "soc%", "soh%", "V", "A", "temp°C", "fault"], rows))
    }
}

struct SlotView: Encodable {
    let slot: SlotStatus
    let ready: Bool
    let quarantine: [String]?
}

struct BMS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one slot's BMS with its cells.")
    @Argument(help: "Slot number (1…N).") var slot: Int
    @OptionGroup var bus: BusOptions

    func run() async throws {
        let (acq, snap) = try await readOnce(bus)
        guard let s = snap.slot(slot) else { throw fail("slot \(slot) outside 1…\(snap.slots.count)", code: 1) }
        let cells: CellDetail?
        do { cells = s.bms != nil ? try await acq.readCells(slot: slot) : nil } catch {
            throw fail("cell detail of slot \(slot): \(error)", code: ExitStatus.unreachable)
        }
        if bus.json { printJSON(BMSView(slot: s, cells: cells)); return }
        print("slot \(slot): \(s.state.description.isEmpty ? "-" : s.state.description), fault \(s.fault), doors opened \(s.doorOpenCount)×, inserts \(s.insertCount)")
        guard let b = s.bms else {
            print(s.batteryPresent ? "battery present but no BMS data\(s.bmsError.map { " (\($0))" } ?? "")" : "no battery")
            return
        }
        print("""
        battery       \(b.batteryID) (\(b.family.name))
        soc / soh     \(fmt(b.socPercent)) % / \(fmt(b.sohPercent)) %
        pack          \(fmt(b.packVoltage, 2)) V, \(fmt(b.packCurrent, 2)) A
        temperature   \(fmt(b.tempMin)) … \(fmt(b.tempMax)) °C
        capacity      \(fmt(b.remainingCapacityAh, 2)) of \(fmt(b.fullCapacityAh, 2)) Ah
        cycles        \(b.cycleCount)
        cell V        \(fmt(b.cellVMin, 3)) … \(fmt(b.cellVMax, 3)) V
        protection    \(b.protection)
        warning       \(b.warning)
        """)
        if let cells {
            for (i, v) in cells.cellVoltages.enumerated() { print(String(format: "cell %2d       %.3f V", i + 1, v)) }
            print("probes        \(cells.probeTemperatures.map { fmt($0) + " °C" }.joined(separator: ", "))")
        }
    }
}

struct BMSView: Encodable {
    let slot: SlotStatus
    let cells: CellDetail?
}
