// The Modbus application layer of the firmware: PDU in, PDU out (nil = no reply).
// No framing and no I/O here; the transports (Transport.swift) do that.
//
// Decisions where the map leaves room (documented in firmware-sim/README.md):
// - Function codes other than 03, 04, 06, 16 answer exception 01.
// - Checks run in this order: function code (01), PDU length and quantity (03), addresses (02).
// - A read covering any unmapped address (gaps between blocks, beyond the last slot) answers 02.
// - The command block 1000–1003 must be written whole with one FC16; anything else touching it
//   (FC06, a partial FC16, an FC16 that also covers other addresses) answers 02. The clock
//   1010–1011 likewise must be written as a pair. The watchdog 1020 takes FC06 or FC16.
// - Unit 2 (meter) has input registers 0–6 only; any other read or write there answers 02.
// - The engine works as unit 1 (a cabinet) and unit 2 (the meter); `Simulator` maps each configured
//   cabinet's unit id to its own cabinet. Units nobody serves get no reply (no such device on the
//   line), over TCP too unless `absentUnitReply` is `.exception` (0x0B).

extension Cabinet {
    // MARK: Register blocks

    func deviceBlock() -> [UInt16] {
        var r = [UInt16](repeating: 0, count: CabinetMap.deviceBlockLength)
        let fw = CabinetMap.firmwareVersion
        r[CabinetMap.regMagic] = CabinetMap.magic
        r[CabinetMap.regMapVersion] = CabinetMap.mapVersion
        r[2] = fw.major; r[3] = fw.minor; r[4] = fw.patch
        r[CabinetMap.regSlotCount] = UInt16(slotCount)
        r.replaceSubrange(6..<14, with: RegisterCodec.ascii(config.serialNumber, registers: 8))
        r.replaceSubrange(14..<16, with: RegisterCodec.u32(uptime))
        r[CabinetMap.regHeartbeat] = heartbeat
        r[CabinetMap.regCabinetFlags] = cabinetFlags.rawValue
        r[CabinetMap.regCabinetTemp] = RegisterCodec.s16(cabinetTemperature, scale: 10)
        r[CabinetMap.regLastCmdSeq] = lastCmdSeq
        r[CabinetMap.regLastCmdResult] = lastCmdResult
        r[CabinetMap.regWatchdogSeconds] = watchdogSeconds
        r[CabinetMap.regSafeMode] = safeMode ? 1 : 0
        return r
    }

    func summaryRegister(_ i: Int) -> UInt16 {
        UInt16(slots[i].changeCounter) << 8 | UInt16(slots[i].bits.rawValue)
    }

    func slotBlock(_ i: Int) -> [UInt16] {
        let s = slots[i]
        var r = [UInt16](repeating: 0, count: CabinetMap.slotBlockStride)
        r[0] = UInt16(s.bits.rawValue)
        r[1] = s.faultCode.rawValue
        if s.bmsValid, let b = s.battery {
            r.replaceSubrange(2..<10, with: RegisterCodec.ascii(b.id, registers: 8))
            r[10] = RegisterCodec.u16(b.soc, scale: 10)
            r[11] = RegisterCodec.u16(b.soh, scale: 10)
            r[12] = RegisterCodec.u16(b.packVoltage, scale: 100)
            r[13] = RegisterCodec.s16(b.current, scale: 100)
            let probes = b.probeTemperatures
            r[14] = RegisterCodec.s16(probes.max() ?? b.temperature, scale: 10)
            r[15] = RegisterCodec.s16(probes.min() ?? b.temperature, scale: 10)
            r.replaceSubrange(16..<18, with: RegisterCodec.u32(UInt32(max(0, min(Double(UInt32.max), b.cycles.rounded(.down))))))
            r[18] = RegisterCodec.u16(b.fullCapacityAh, scale: 100)
            r[19] = RegisterCodec.u16(b.remainingAh, scale: 100)
            r[20] = b.protectionFlags
            r[21] = b.warningFlags
            let cells = cellMillivolts(b)
            r[22] = cells.max() ?? 0
            r[23] = cells.min() ?? 0
            r[24] = UInt16(b.family)
        }
        r[25] = s.doorOpenCount
        r[26] = s.insertCount
        return r
    }

    func cellMillivolts(_ b: Battery) -> [UInt16] {
        b.cellVoltages.map { RegisterCodec.u16($0, scale: 1000) }
    }

    func cellBlock(_ i: Int) -> [UInt16] {
        var r = [UInt16](repeating: 0, count: CabinetMap.cellDetailStride)
        // A probe the pack does not have reads 0x8000 (map 1.1); with no pack (or no BMS link) none is there.
        for k in 0..<6 { r[25 + k] = CabinetMap.absentProbe }
        guard slots[i].bmsValid, let b = slots[i].battery else { return r }
        let cells = cellMillivolts(b)
        r[0] = UInt16(cells.count)
        for (k, mv) in cells.prefix(24).enumerated() { r[1 + k] = mv }
        for (k, t) in b.probeTemperatures.prefix(6).enumerated() { r[25 + k] = RegisterCodec.s16(t, scale: 10) }
        return r
    }

    func meterRegisters() -> [UInt16] {
        let energy = UInt32(max(0, min(Double(UInt32.max), (meter.importEnergyKwh * 100).rounded(.down))))
        let power = UInt32(max(0, min(Double(UInt32.max), (meter.activePower * 10).rounded())))
        return RegisterCodec.u32(energy)
            + [RegisterCodec.u16(meter.voltage, scale: 10), RegisterCodec.u16(meter.current, scale: 100)]
            + RegisterCodec.u32(power)
            + [RegisterCodec.u16(meter.frequency, scale: 100)]
    }

    // MARK: Address space

    private enum InputBlock: Hashable { case device, summary, slot(Int), cells(Int) }

    private func locate(input address: Int) -> (block: InputBlock, offset: Int)? {
        let n = slotCount
        switch address {
        case 0..<CabinetMap.deviceBlockLength:
            return (.device, address)
        case CabinetMap.summaryStart..<(CabinetMap.summaryStart + n):
            return (.summary, address - CabinetMap.summaryStart)
        case CabinetMap.slotBlockStart..<(CabinetMap.slotBlockStart + n * CabinetMap.slotBlockStride):
            let rel = address - CabinetMap.slotBlockStart
            return (.slot(rel / CabinetMap.slotBlockStride), rel % CabinetMap.slotBlockStride)
        case CabinetMap.cellDetailStart..<(CabinetMap.cellDetailStart + n * CabinetMap.cellDetailStride):
            let rel = address - CabinetMap.cellDetailStart
            return (.cells(rel / CabinetMap.cellDetailStride), rel % CabinetMap.cellDetailStride)
        default:
            return nil
        }
    }

    /// Unit 1 input registers, or nil if any address in the range is not mapped.
    func inputRegisters(start: Int, count: Int) -> [UInt16]? {
        var cache: [InputBlock: [UInt16]] = [:]
        var out: [UInt16] = []
        out.reserveCapacity(count)
        for address in start..<(start + count) {
            guard let (block, offset) = locate(input: address) else { return nil }
            if block == .summary { out.append(summaryRegister(offset)); continue }
            if cache[block] == nil {
                switch block {
                case .device: cache[block] = deviceBlock()
                case .slot(let i): cache[block] = slotBlock(i)
                case .cells(let i): cache[block] = cellBlock(i)
                case .summary: break
                }
            }
            out.append(cache[block]![offset])
        }
        return out
    }

    /// Unit 1 holding registers, or nil if any address in the range is not mapped.
    func holdingRegisters(start: Int, count: Int) -> [UInt16]? {
        let clock = RegisterCodec.u32(self.clock)
        var out: [UInt16] = []
        for address in start..<(start + count) {
            switch address {
            case 1000...1003: out.append(commandRegisters[address - 1000])
            case 1010...1011: out.append(clock[address - 1010])
            case 1020: out.append(watchdogValue)
            default: return nil
            }
        }
        return out
    }

    // MARK: PDUs

    /// Whether an input-register read touches the slot block or cell block of a dead slot.
    func coversDeadSlot(start: Int, count: Int) -> Bool {
        for (i, slot) in slots.enumerated() where slot.dead {
            for (base, stride) in [(CabinetMap.slotBlockStart, CabinetMap.slotBlockStride), (CabinetMap.cellDetailStart, CabinetMap.cellDetailStride)] {
                let first = base + i * stride
                if start < first + stride && first < start + count { return true }
            }
        }
        return false
    }

    /// Handles one request PDU for `unit`; returns the response PDU, or nil for no reply.
    mutating func handle(unit: UInt8, pdu: [UInt8]) -> [UInt8]? {
        guard unit == CabinetMap.cabinetUnit || unit == CabinetMap.meterUnit else { return nil }
        guard let fc = pdu.first else { return nil }
        func exception(_ e: ModbusException) -> [UInt8] { [fc | 0x80, e.rawValue] }
        func word(_ at: Int) -> Int { Int(pdu[at]) << 8 | Int(pdu[at + 1]) }

        switch fc {
        case 0x03, 0x04:
            guard pdu.count == 5 else { return exception(.illegalDataValue) }
            let start = word(1), count = word(3)
            guard (1...CabinetMap.maxReadQuantity).contains(count) else { return exception(.illegalDataValue) }
            guard start + count <= 0x10000 else { return exception(.illegalDataAddress) }
            let values: [UInt16]?
            if unit == CabinetMap.meterUnit {
                values = fc == 0x04 && start + count <= CabinetMap.meterRegisterCount ? Array(meterRegisters()[start..<(start + count)]) : nil
            } else {
                if fc == 0x04, coversDeadSlot(start: start, count: count) { return exception(.serverDeviceFailure) }
                values = fc == 0x04 ? inputRegisters(start: start, count: count) : holdingRegisters(start: start, count: count)
            }
            guard let values else { return exception(.illegalDataAddress) }
            var out: [UInt8] = [fc, UInt8(values.count * 2)]
            for v in values { out.append(UInt8(v >> 8)); out.append(UInt8(v & 0xFF)) }
            return out

        case 0x06:
            guard pdu.count == 5 else { return exception(.illegalDataValue) }
            let address = word(1), value = UInt16(word(3))
            guard unit == CabinetMap.cabinetUnit, address == CabinetMap.watchdogRegister else {
                return exception(.illegalDataAddress)
            }
            writeWatchdog(value)
            return pdu

        case 0x10:
            guard pdu.count >= 6 else { return exception(.illegalDataValue) }
            let start = word(1), count = word(3), byteCount = Int(pdu[5])
            guard (1...CabinetMap.maxWriteQuantity).contains(count), byteCount == count * 2,
                  pdu.count == 6 + byteCount else { return exception(.illegalDataValue) }
            guard unit == CabinetMap.cabinetUnit else { return exception(.illegalDataAddress) }
            let values = (0..<count).map { UInt16(word(6 + 2 * $0)) }
            let ack: [UInt8] = Array(pdu[0..<5])
            switch (start, count) {
            case (CabinetMap.commandBlock, 4):
                switch writeCommandBlock(values) {
                case .accepted: return ack
                case .busy: return exception(.serverDeviceBusy)
                }
            case (CabinetMap.clockRegister, 2):
                setClock(RegisterCodec.u32(high: values[0], low: values[1]))
                return ack
            case (CabinetMap.watchdogRegister, 1):
                writeWatchdog(values[0])
                return ack
            default:
                return exception(.illegalDataAddress)
            }

        default:
            return exception(.illegalFunction)
        }
    }
}
