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
import ArgumentParser
import ControlProtocol
import StationDomain
import StationSupport

// What every command prints with: errors with an exit code, JSON, tables, numbers, durations, slot tables, BMS.

func fail(_ message: String, code: Int32) -> ExitCode {
    writeStandardError("swapctl: \(message)\n")
    return ExitCode(code)
}

func printJSON<T: Encodable>(_ value: T) {
    let enc = ControlJSON.encoder(pretty: true)   // RFC 3339 dates, as the daemon sends them
    print(String(decoding: (try? enc.encode(value)) ?? Data(), as: UTF8.self))
}

/// Left-aligned text table.
func table(_ header: [String], _ rows: [[String]]) -> String { TextTable.render(header, rows) }

func fmt(_ v: Double, _ digits: Int = 1) -> String { cFormat("%.\(digits)f", v) }

func duration(_ seconds: Int) -> String {
    let d = seconds / 86_400, h = (seconds % 86_400) / 3600, m = (seconds % 3600) / 60, s = seconds % 60
    return d > 0 ? "\(d)d \(h)h" : (h > 0 ? "\(h)h \(m)m" : (m > 0 ? "\(m)m \(s)s" : "\(s)s"))
}

func slotTable(_ v: SlotsView) -> String {
    // Several cabinets: each slot also as cabinet/its own number (B/3), the form `bms`, `unlock` and `service` accept too.
    let several = Set(v.slots.compactMap(\.slot.cabinet)).count > 1
    let rows = v.slots.map { r -> [String] in
        let s = r.slot, b = s.bms
        let number = several ? "\(s.number)  \(s.cabinet ?? "?")/\(s.cabinetSlot ?? 0)" : String(s.number)
        return [number, r.status, s.doorClosed ? (s.locked ? "locked" : "closed") : "OPEN",
                b?.batteryID ?? (s.batteryPresent ? "?" : "-"), b?.family.name ?? "-",
                b.map { fmt($0.socPercent) } ?? "-", b.map { fmt($0.sohPercent) } ?? "-",
                b.map { fmt($0.packVoltage, 2) } ?? "-", b.map { fmt($0.packCurrent, 2) } ?? "-",
                b.map { "\(fmt($0.tempMin))…\(fmt($0.tempMax))" } ?? "-",
                s.fault == .none ? (s.bmsError.map { "data: \($0)" } ?? (r.quarantine?.joined(separator: ",") ?? "-")) : s.fault.description]
    }
    var head = "updated \(v.updatedAt ?? "never")"
    if v.cabinetStale { head += "   CABINET NOT ANSWERING: values are the last known, not used for swaps" }
    if v.safeMode { head += "   SAFE MODE" }
    return head + "\n" + table(["slot", "status", "door", "battery", "family", "soc%", "soh%", "V", "A", "temp°C", "fault"], rows)
}

func printBMS(slot s: SlotStatus, cells: CellDetail?, cellsError: String?) {
    print("slot \(s.number)\(s.cabinet.map { " (\($0)/\(s.cabinetSlot ?? 0))" } ?? ""): \(s.state.description.isEmpty ? "-" : s.state.description), fault \(s.fault), doors opened \(s.doorOpenCount)×, inserts \(s.insertCount)\(s.stale ? ", NOT ANSWERING (last known values)" : "")")
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
        for (i, v) in cells.cellVoltages.enumerated() { print(cFormat("cell %2d       %.3f V", Int32(i + 1), v)) }
        print("probes        \(cells.probeTemperatures.map { $0.map { fmt($0) + " °C" } ?? "absent" }.joined(separator: ", "))")
    } else if let cellsError {
        print("cells         not read: \(cellsError)")
    }
}

/// All of `text` to standard error (FileHandle.standardError.write without Foundation): write(2) until done.
func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; return }
        bytes = bytes.dropFirst(n)
    }
}

/// `padding(toLength: n, withPad: " ", startingAt: 0)`: padded with spaces or cut to `n` UTF-16 units.
func pad(_ text: String, _ n: Int) -> String {
    let units = text.utf16.count
    if units >= n { return units == n ? text : String(decoding: Array(text.utf16.prefix(n)), as: UTF16.self) }
    return text + String(repeating: " ", count: n - units)
}


func usageTable(_ items: [UsageView]) -> String { UsageView.table(items) }

extension ControlRequest {
    /// "7" goes as the station-wide `slot`; "B/3" as `slotName`, resolved by the daemon (it knows the cabinets).
    mutating func setSlot(_ text: String) {
        if let n = Int(text) { slot = n } else { slotName = text }
    }
}

/// A slot argument is a number ("7") or cabinet/number ("B/3"); anything else is a usage error (exit 1).
func validateSlotArgument(_ text: String) throws {
    if Int(text) != nil { return }
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, !parts[0].isEmpty, Int(parts[1]) != nil else {
        throw ValidationError("slot must be a number (7) or cabinet/number (B/3), got '\(text)'")
    }
}
