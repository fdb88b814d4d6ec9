/// Why a block of registers could not be decoded. The reading is dropped, never half-used.
public enum DecodeError: Error, Sendable, Equatable, CustomStringConvertible {
    case wrongLength(block: String, expected: Int, got: Int)
    case badMagic(UInt16)
    case unsupportedMapVersion(UInt16)
    case slotCountOutOfRange(UInt16)
    case implausible(block: String, detail: String)

    public var description: String {
        switch self {
        case let .wrongLength(block, expected, got): "\(block): expected \(expected) registers, got \(got)"
        case let .badMagic(m): "device block magic is 0x\(String(m, radix: 16)), expected 0x4f56: not a swap cabinet controller"
        case let .unsupportedMapVersion(v): "register map version \(v) is not supported (this gateway speaks version 1)"
        case let .slotCountOutOfRange(n): "slot_count \(n) is outside 1…48"
        case let .implausible(block, detail): "\(block): \(detail)"
        }
    }
}

/// Decodes the map's blocks into domain types, checking every value against the map's ranges.
public enum CabinetDecoder {
    public static func device(_ regs: Registers) throws(DecodeError) -> CabinetInfo {
        typealias D = CabinetMap.Device
        guard regs.count >= CabinetMap.deviceBlock.count else {
            throw .wrongLength(block: "device block", expected: CabinetMap.deviceBlock.count, got: regs.count)
        }
        guard regs.u16(D.magic) == CabinetMap.magic else { throw .badMagic(regs.u16(D.magic)) }
        guard regs.u16(D.mapVersion) == CabinetMap.mapVersion else { throw .unsupportedMapVersion(regs.u16(D.mapVersion)) }
        let n = regs.u16(D.slotCount)
        guard n >= 1, Int(n) <= CabinetMap.maxSlots else { throw .slotCountOutOfRange(n) }
        return CabinetInfo(
            mapVersion: regs.u16(D.mapVersion),
            firmwareVersion: "\(regs.u16(D.firmware)).\(regs.u16(D.firmware + 1)).\(regs.u16(D.firmware + 2))",
            slotCount: Int(n),
            serial: regs.ascii(D.serial, registers: D.serialRegisters) ?? "?",
            uptimeSeconds: regs.u32(D.uptime),
            heartbeat: regs.u16(D.heartbeat),
            flags: CabinetFlags(rawValue: regs.u16(D.flags) & 0x1F),
            temperature: Double(regs.s16(D.temperature)) / CabinetMap.Scale.temperature,
            lastCommandSeq: regs.u16(D.lastCommandSeq),
            lastCommandResult: regs.u16(D.lastCommandResult),
            watchdogSeconds: regs.u16(D.watchdogSeconds),
            safeMode: regs.u16(D.safeMode) == 1)
    }

    /// One summary register: state bits in the low byte, change counter in the high byte.
    public static func summary(_ raw: UInt16) -> (state: SlotStateBits, counter: UInt8) {
        (SlotStateBits(rawValue: raw & 0xFF), UInt8(raw >> 8))
    }

    /// A slot block. BMS fields are decoded only while battery present and BMS link ok;
    /// an implausible value drops the whole BMS reading and says why in `bmsError`.
    public static func slot(_ number: Int, _ regs: Registers, changeCounter: UInt8 = 0) throws(DecodeError) -> SlotStatus {
        typealias S = CabinetMap.Slot
        typealias Sc = CabinetMap.Scale
        guard regs.count >= Int(CabinetMap.slotBlockStride) else {
            throw .wrongLength(block: "slot \(number) block", expected: Int(CabinetMap.slotBlockStride), got: regs.count)
        }
        let state = SlotStateBits(rawValue: regs.u16(S.state) & 0xFF)
        var status = SlotStatus(number: number, state: state, fault: SlotFault(register: regs.u16(S.faultCode)),
                                doorOpenCount: regs.u16(S.doorOpenCount), insertCount: regs.u16(S.insertCount),
                                changeCounter: changeCounter)
        guard state.contains(.batteryPresent), state.contains(.bmsLinkOK) else { return status }

        var problems: [String] = []
        let id = regs.ascii(S.batteryID, registers: S.batteryIDRegisters)
        if id == nil || id!.isEmpty { problems.append("battery_id is empty or not printable ASCII") }
        let soc = regs.u16(S.soc), soh = regs.u16(S.soh)
        if !CabinetMap.Limits.percentRaw.contains(soc) { problems.append("soc \(soc) outside 0…1000") }
        if !CabinetMap.Limits.percentRaw.contains(soh) { problems.append("soh \(soh) outside 0…1000") }
        let tMax = regs.s16(S.tempMax), tMin = regs.s16(S.tempMin)
        for (name, t) in [("temp_max", tMax), ("temp_min", tMin)] where !CabinetMap.Limits.temperatureRaw.contains(t) {
            problems.append("\(name) \(t) outside −400…1500")
        }
        let full = regs.u16(S.fullCapacity), remaining = regs.u16(S.remainingCapacity)
        if remaining > full { problems.append("remaining_capacity \(remaining) above full_capacity \(full)") }
        let vMax = regs.u16(S.cellVMax), vMin = regs.u16(S.cellVMin)
        if !CabinetMap.Limits.cellVoltageMilli.contains(vMax) || !CabinetMap.Limits.cellVoltageMilli.contains(vMin) {
            problems.append("cell voltage \(vMin)…\(vMax) mV implausible")
        }
        guard problems.isEmpty, let batteryID = id else {
            status.bmsError = problems.joined(separator: "; ")
            return status
        }
        status.bms = BMSReading(
            batteryID: batteryID,
            socPercent: Double(soc) / Sc.percent, sohPercent: Double(soh) / Sc.percent,
            packVoltage: Double(regs.u16(S.packVoltage)) / Sc.packVoltage,
            packCurrent: Double(regs.s16(S.packCurrent)) / Sc.packCurrent,
            tempMax: Double(tMax) / Sc.temperature, tempMin: Double(tMin) / Sc.temperature,
            cycleCount: regs.u32(S.cycleCount),
            fullCapacityAh: Double(full) / Sc.capacity, remainingCapacityAh: Double(remaining) / Sc.capacity,
            protection: BMSFlags(rawValue: regs.u16(S.protectionFlags) & 0xFF),
            warning: BMSFlags(rawValue: regs.u16(S.warningFlags) & 0xFF),
            cellVMax: Double(vMax) / Sc.cellVoltage, cellVMin: Double(vMin) / Sc.cellVoltage,
            family: BatteryFamily(register: regs.u16(S.family)))
        return status
    }

    public static func cells(_ regs: Registers) throws(DecodeError) -> CellDetail {
        typealias C = CabinetMap.Cells
        guard regs.count >= Int(CabinetMap.cellBlockStride) else {
            throw .wrongLength(block: "cell block", expected: Int(CabinetMap.cellBlockStride), got: regs.count)
        }
        let n = min(Int(regs.u16(C.count)), C.maxCells)
        let volts = (0 ..< n).map { Double(regs.u16(C.firstVoltage + $0)) / CabinetMap.Scale.cellVoltage }
        // Probes keep their position: 0x8000 is a probe the pack does not have (nil), every other value —
        // 0 included — a temperature. A value outside −40…150 °C drops the block whole, as a BMS reading would be.
        var probes: [Double?] = []
        for k in 0 ..< C.maxProbes {
            let raw = regs.s16(C.firstProbe + k)
            if raw == CabinetMap.Limits.absentProbe { probes.append(nil); continue }
            guard CabinetMap.Limits.temperatureRaw.contains(raw) else {
                throw .implausible(block: "cell block", detail: "probe \(k + 1) reads \(raw) (0.1 °C), outside −400…1500")
            }
            probes.append(Double(raw) / CabinetMap.Scale.temperature)
        }
        return CellDetail(cellVoltages: volts, probeTemperatures: probes)
    }

    public static func meter(_ regs: Registers) throws(DecodeError) -> MeterReading {
        typealias M = CabinetMap.Meter
        typealias Sc = CabinetMap.Scale
        guard regs.count >= CabinetMap.meterBlock.count else {
            throw .wrongLength(block: "meter block", expected: CabinetMap.meterBlock.count, got: regs.count)
        }
        return MeterReading(importEnergyKWh: Double(regs.u32(M.importEnergy)) / Sc.energy,
                            voltage: Double(regs.u16(M.voltage)) / Sc.meterVoltage,
                            current: Double(regs.u16(M.current)) / Sc.meterCurrent,
                            activePowerW: Double(regs.u32(M.activePower)) / Sc.power,
                            frequencyHz: Double(regs.u16(M.frequency)) / Sc.frequency)
    }
}
