import ModbusLink
import StationDomain

/// What one acquisition cycle reads and writes. Built by the poller from its state; executed on the bus.
struct ScanPlan: Sendable {
    /// The cabinet controller's unit id.
    var unit: UInt8 = CabinetMap.cabinetUnit
    /// Slots whose block must be read even if the summary shows no change.
    var forcedSlots: Set<Int> = []
    /// Read every slot block (periodic refresh, start-up, after a reboot).
    var allSlots = false
    var readMeter = false
    var watchdogValue: UInt16?
    var clockSeconds: UInt32?
    /// Summary registers of the previous cycle, to see which slots changed.
    var previousSummary: [UInt16]?
}

struct ScanResult: Sendable {
    var device: Result<[UInt16], ModbusError>
    var summary: Result<[UInt16], ModbusError>?
    var slotBlocks: [Int: Result<[UInt16], ModbusError>] = [:]
    var meter: Result<[UInt16], ModbusError>?
    var watchdogError: ModbusError?
    /// The watchdog value written (the planned one, or the next if the register already held it).
    var watchdogWritten: UInt16?
    var clockError: ModbusError?
    /// The clock write went through (the controller accepted the time).
    var clockWritten = false
    var requests = 0
    /// Requests that failed (timeout, CRC, exception, link), for the bus error counter.
    var errors = 0
}

enum Scan {
    /// The fewest read requests that cover `slots`: greedy windows of as many whole slot blocks as fit in
    /// one read (3 × 32 registers ≤ 125), each starting at the lowest slot still needed.
    static func slotRequests(_ slots: Set<Int>) -> [(first: Int, count: Int)] {
        let perRead = CabinetMap.maxRegistersPerRead / Int(CabinetMap.slotBlockStride)
        var remaining = slots.sorted()
        var requests: [(Int, Int)] = []
        while let first = remaining.first {
            let window = remaining.filter { $0 < first + perRead }
            let count = window.last! - first + 1
            requests.append((first, count))
            remaining.removeFirst(window.count)
        }
        return requests
    }

    static func slotRequestsForTesting(_ slots: Set<Int>) -> [String] {
        slotRequests(slots).map { "\($0.first)+\($0.count)" }
    }

    /// Runs on the bus owner's queue: device block, summary, the slot blocks that changed or are due,
    /// the meter, the watchdog and the clock. Failures are recorded per part, never thrown, so one bad
    /// slot does not hide the others.
    static func execute(_ plan: ScanPlan, on conn: ModbusConnection) -> ScanResult {
        let unit = plan.unit
        var result = ScanResult(device: .failure(.notConnected))
        func attempt(_ body: () throws(ModbusError) -> [UInt16]) -> Result<[UInt16], ModbusError> {
            result.requests += 1
            do { return .success(try body()) } catch { result.errors += 1; return .failure(error) }
        }
        let dev = CabinetMap.deviceBlock
        result.device = attempt { () throws(ModbusError) in
            try conn.readInputRegisters(unit: unit, address: dev.start, count: dev.count)
        }
        if case let .failure(e) = result.device, e.needsReconnect {
            // The controller closed an idle connection (a reboot does): reconnect once at once
            // rather than lose a cycle.
            if (try? conn.connect()) != nil {
                result.device = attempt { () throws(ModbusError) in
                    try conn.readInputRegisters(unit: unit, address: dev.start, count: dev.count)
                }
            }
        }
        guard case let .success(device) = result.device else { return result }
        let slotCount = Int(device[CabinetMap.Device.slotCount])
        guard slotCount >= 1, slotCount <= CabinetMap.maxSlots,
              device[CabinetMap.Device.magic] == CabinetMap.magic else { return result }

        // Liveness first: the watchdog must not starve behind a slow slot refresh.
        // The controller counts only a *changed* value (map: "any changing value"), and another master (swapctl
        // direct, a technician's tool) may have written since: read the register and never write what it holds.
        if var value = plan.watchdogValue {
            result.requests += 1
            if let held = try? conn.readHoldingRegisters(unit: unit, address: CabinetMap.watchdog, count: 1).first, held == value {
                value &+= 1
            }
            do {
                try conn.writeRegister(unit: unit, address: CabinetMap.watchdog, value: value)
                result.watchdogWritten = value
            } catch { result.watchdogError = error; result.errors += 1 }
            result.requests += 1
        }
        if let secs = plan.clockSeconds {
            do {
                try conn.writeRegisters(unit: unit, address: CabinetMap.clock.start, values: Registers.encodeU32(secs))
                result.clockWritten = true
            } catch {
                result.clockError = error
                result.errors += 1
            }
            result.requests += 1
        }

        let sum = CabinetMap.summaryRange(slotCount: slotCount)
        let summaryResult = attempt { () throws(ModbusError) in
            try conn.readInputRegisters(unit: unit, address: sum.start, count: sum.count)
        }
        result.summary = summaryResult

        var wanted = plan.forcedSlots.filter { $0 >= 1 && $0 <= slotCount }
        if plan.allSlots || plan.previousSummary?.count != slotCount {
            wanted = Set(1 ... slotCount)
        } else if case let .success(summary) = summaryResult, let prev = plan.previousSummary {
            for i in 0 ..< slotCount where summary[i] != prev[i] { wanted.insert(i + 1) }
        }
        let stride = Int(CabinetMap.slotBlockStride)
        for (first, count) in slotRequests(wanted) {
            let range = CabinetMap.slotBlock(first)
            let r = attempt { () throws(ModbusError) in
                try conn.readInputRegisters(unit: unit, address: range.start, count: count * stride)
            }
            if case .failure(.exception) = r, count > 1 {
                // One slot's electronics may be refusing: read each alone so its neighbours stay fresh.
                for slot in first ..< first + count where wanted.contains(slot) {
                    let one = CabinetMap.slotBlock(slot)
                    result.slotBlocks[slot] = attempt { () throws(ModbusError) in
                        try conn.readInputRegisters(unit: unit, address: one.start, count: stride)
                    }
                }
                continue
            }
            for slot in first ..< first + count where wanted.contains(slot) {
                let offset = (slot - first) * stride
                result.slotBlocks[slot] = r.map { Array($0[offset ..< offset + stride]) }
            }
        }
        if plan.readMeter {
            let m = CabinetMap.meterBlock
            result.meter = attempt { () throws(ModbusError) in
                try conn.readInputRegisters(unit: CabinetMap.meterUnit, address: m.start, count: m.count)
            }
        }
        return result
    }
}
