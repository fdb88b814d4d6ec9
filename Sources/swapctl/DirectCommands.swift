#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Acquisition
import ArgumentParser
import ControlProtocol
import StationDomain
import StationSupport

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

extension SwapCtl {
    /// Reads the cabinet over the bus directly, for when the daemon is stopped (it owns the bus while it runs).
    struct Direct: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read the cabinet directly over Modbus — ONLY while the daemon is stopped.",
            discussion: "The daemon owns the bus while it runs; two masters on one RS-485 bus corrupt each other's frames. Stop it first: systemctl stop swapgate.",
            subcommands: [Cabinet.self, Slots.self, BMS.self])
    }
}

extension SwapCtl.Direct {
    struct Cabinet: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "cabinet", abstract: "Show the cabinet controller: identity, uptime, flags, meter.")
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
        static let configuration = CommandConfiguration(commandName: "slots", abstract: "Show every slot as a table: state, battery, SoC, SoH, temperatures, faults.")
        @OptionGroup var bus: BusOptions

        func run() async throws {
            let (acq, snap) = try await readOnce(bus)
            let quarantined = await acq.quarantined
            var ready: Set<Int> = []
            for s in snap.slots where await acq.isReady(slot: s.number) { ready.insert(s.number) }
            let rows = snap.slots.map { s in
                SlotRowView(slot: s, ready: ready.contains(s.number), quarantine: quarantined[s.number]?.map(\.rawValue),
                            status: SlotRowView.status(s, ready: ready.contains(s.number), quarantined: quarantined[s.number] != nil))
            }
            let view = SlotsView(cabinetStale: snap.cabinetStale, safeMode: snap.cabinet?.safeMode ?? false,
                                 updatedAt: RFC3339.format(Date()), slots: rows)
            if bus.json { printJSON(view); return }
            print(slotTable(view))
        }
    }

    struct BMS: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "bms", abstract: "Show one slot's BMS with its cells.")
        @Argument(help: "Slot number (1…N).") var slot: Int
        @OptionGroup var bus: BusOptions

        func run() async throws {
            let (acq, snap) = try await readOnce(bus)
            guard let s = snap.slot(slot) else { throw fail("slot \(slot) outside 1…\(snap.slots.count)", code: 1) }
            let cells: CellDetail?
            do { cells = s.bms != nil ? try await acq.readCells(slot: slot) : nil } catch {
                throw fail("cell detail of slot \(slot): \(error)", code: ExitStatus.unreachable)
            }
            if bus.json { printJSON(BMSView(slot: s, cells: cells, cellsError: nil)); return }
            printBMS(slot: s, cells: cells, cellsError: nil)
        }
    }
}
