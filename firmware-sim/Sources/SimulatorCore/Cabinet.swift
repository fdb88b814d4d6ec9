// The cabinet model: slots, doors, locks, chargers, the controller's RAM (commands,
// watchdog, counters), the energy meter, the rider, and the physics that moves them in
// simulated time. A value type without I/O; `Simulator` owns it behind a lock.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Slot: Sendable {
    var battery: Battery?
    var doorClosed = true
    var locked = true
    /// Charger enable (commands 3/4); a newly inserted battery sets it again.
    var chargeEnabled = true
    /// Kept across reboots (as if in flash).
    var outOfService = false
    // Physical faults (injected; they survive a controller reboot).
    var bmsLinkLost = false
    var lockJammed = false
    var doorSensorFault = false
    var chargerFault = false
    var overTemperature = false
    /// The slot's electronics do not answer: a read covering its block gets exception 04.
    var dead = false
    /// Fault 1, latched when the controller found the lock jammed (RAM).
    var lockFault = false
    var doorOpenCount: UInt16 = 0
    var insertCount: UInt16 = 0
    var changeCounter: UInt8 = 0
    /// State bits as last seen by the change counter.
    var reportedBits: UInt8 = 0
    /// Re-lock time of an unlocked door that has not been opened.
    var relockAt: Double?
    /// Lock again when the door closes (an unlocked door was opened, or safe mode).
    var relockOnClose = false

    var bmsValid: Bool { battery != nil && !bmsLinkLost }

    /// The lowest active fault code.
    var faultCode: SlotFaultCode {
        if lockFault { return .lockFault }
        if doorSensorFault { return .doorSensorFault }
        if chargerFault { return .chargerFault }
        if overTemperature { return .overTemperature }
        if battery != nil && bmsLinkLost { return .bmsLinkLost }
        return .none
    }

    var bits: SlotStateBits {
        var b: SlotStateBits = []
        if battery != nil { b.insert(.batteryPresent) }
        if doorClosed { b.insert(.doorClosed) }
        if locked { b.insert(.locked) }
        if let battery, battery.current > 0 { b.insert(.charging) }
        if let battery, bmsValid, battery.isFull { b.insert(.chargeComplete) }
        if faultCode != .none { b.insert(.slotFault) }
        if bmsValid { b.insert(.bmsLinkOK) }
        if outOfService { b.insert(.outOfService) }
        return b
    }
}

struct PendingCommand: Sendable {
    var cmd: UInt16, slot: UInt16, seq: UInt16, param: UInt16
    var dueAt: Double
}

struct RiderTask: Sendable {
    enum Stage: Sendable { case open, act, close }
    var slot: Int
    var stage: Stage
    var due: Double
}

struct RiderState: Sendable {
    var config: RiderConfiguration?
    var queue: [RiderBattery] = []
    var pocket: [Battery] = []
    var tasks: [RiderTask] = []
    var generated = 0
    var unlocksSeen = 0, unlocksIgnored = 0, doorsOpened = 0, doorsClosed = 0
    var batteriesTaken = 0, batteriesReturned = 0, missed = 0
}

struct MeterState: Sendable {
    var importEnergyKwh = 0.0
    var voltage = 230.0
    var current = 0.0
    var activePower = 0.0
    var frequency = 50.0
}

struct Cabinet: Sendable {
    let config: SimulatorConfiguration
    /// The Modbus unit id this controller answers (the engine itself works as unit 1).
    let unit: UInt8
    var slotCount: Int { slots.count }
    var rng: SeededRandom
    var slots: [Slot]

    /// Simulated seconds since the simulator started.
    var time = 0.0
    var bootTime = 0.0
    var downUntil = 0.0
    var isDown: Bool { time < downUntil }

    // Cabinet flags set from outside (set_flags) and the over-temperature fault.
    var mainsOK = true
    var backupPower = false
    var tamper = false
    var overTemperatureFlag = false
    var emergencyStop = false
    var cabinetOverTemperatureFault = false
    var cabinetTemperature: Double

    // Controller RAM.
    var lastCmdSeq: UInt16 = 0
    var lastCmdResult: UInt16 = 0
    /// seq of the last command accepted for execution; nil after boot (so seq 0 also works first).
    var lastAcceptedSeq: UInt16?
    var commandRegisters: [UInt16] = [0, 0, 0, 0]
    var pending: PendingCommand?
    var watchdogValue: UInt16 = 0
    var lastWatchdogTime = 0.0
    var safeMode = false
    var watchdogTimeout: Double

    // Real-time clock (battery backed: survives reboots).
    var clockBase: UInt32
    var clockSetTime = 0.0

    var meter = MeterState()
    var rider = RiderState()
    var faults = TransportFaults()
    var log: [ExecutedCommand] = []
    // The station's meter is modelled in the first cabinet: it also sees the chargers of the
    // other cabinets (their power, set before each step) and their own consumption.
    var externalChargingPower = 0.0
    var cabinetsOnMeter = 1
    /// The chargers' power in the last step (for the meter in the first cabinet).
    var lastChargingPower = 0.0

    /// `config.slots`/`serialNumber`/`seed` are this cabinet's own (see `Station`).
    init(config: SimulatorConfiguration, hostClock: UInt32, unit: UInt8 = CabinetMap.cabinetUnit) {
        self.config = config
        self.unit = unit
        rng = SeededRandom(seed: config.seed)
        slots = Array(repeating: Slot(), count: config.slots)
        cabinetTemperature = config.ambientTemperature
        watchdogTimeout = config.watchdogTimeout
        clockBase = config.clock ?? hostClock
        fill(config.fill)
        physics(0)   // the initial state is already consistent: charging currents, meter readings
        for i in slots.indices {
            slots[i].reportedBits = slots[i].bits.rawValue
            slots[i].changeCounter = 0
        }
        if let r = config.rider { setRider(r) }
    }

    private mutating func fill(_ mode: FillMode) {
        let n = slots.count
        let empties: Int
        switch mode {
        case .empty: return
        case .full: empties = 0
        case .mixed: empties = n >= 4 ? 2 : (n >= 2 ? 1 : 0)
        }
        for k in 0..<(n - empties) {
            let family = k % 3 + 1
            let soc: Double
            if mode == .full || k % 4 == 0 { soc = 100 } else { soc = (rng.uniform(15...80) * 10).rounded() / 10 }
            let soh = (rng.uniform(88...100) * 10).rounded() / 10
            let cycles = Double(Int(rng.uniform(20...600)))
            // Unit 1 keeps the ids it always had; other units carry their unit id (ids stay unique in a station).
            let tag = unit == CabinetMap.cabinetUnit ? "" : "\(unit)-"
            let id = "OVB\(family)-" + tag + pad(1000 + k * 7 + Int(config.seed % 1000), 6)
            slots[k].battery = Battery(id: id, family: family, soc: soc, soh: soh, cycles: cycles,
                                       temperature: config.ambientTemperature, rng: &rng)
        }
    }

    // MARK: Derived values

    var uptime: UInt32 { time < bootTime ? 0 : UInt32(min(Double(UInt32.max), (time - bootTime).rounded(.down))) }
    var heartbeat: UInt16 { UInt16(truncatingIfNeeded: uptime) }
    var clock: UInt32 { clockBase &+ UInt32(truncatingIfNeeded: Int(max(0, time - clockSetTime))) }
    var watchdogSeconds: UInt16 {
        UInt16(min(65535, max(0, (time - lastWatchdogTime).rounded(.down))))
    }

    var cabinetFlags: CabinetFlagBits {
        var f: CabinetFlagBits = []
        if mainsOK { f.insert(.mainsOK) }
        if backupPower { f.insert(.backupPower) }
        if tamper { f.insert(.tamper) }
        if overTemperatureFlag || cabinetOverTemperatureFault { f.insert(.overTemperature) }
        if emergencyStop { f.insert(.emergencyStop) }
        return f
    }

    func index(_ slot: Int) throws -> Int {
        guard (1...slots.count).contains(slot) else { throw SimulatorError.invalidSlot(slot) }
        return slot - 1
    }

    // MARK: Change counters

    /// Counts a change of the slot's state bits (call after every individual change).
    mutating func commit(_ i: Int) {
        let bits = slots[i].bits.rawValue
        if bits != slots[i].reportedBits {
            slots[i].reportedBits = bits
            slots[i].changeCounter &+= 1
        }
    }

    /// Whether the slot's charger may push current now (the SoC aside).
    func chargingAllowed(_ i: Int) -> Bool {
        let s = slots[i]
        guard let b = s.battery else { return false }
        return s.bmsValid && s.chargeEnabled && !s.outOfService && s.doorClosed && !s.chargerFault
            && !s.overTemperature && mainsOK && !emergencyStop && !overTemperatureFlag
            && !cabinetOverTemperatureFault && b.protectionFlags == 0 && !isDown
    }

    /// Stops the current at once where charging is no longer allowed (the tick restarts it).
    mutating func stopChargingWhereNotAllowed() {
        for i in slots.indices where slots[i].battery != nil && slots[i].battery!.current > 0 && !chargingAllowed(i) {
            slots[i].battery!.current = 0
            commit(i)
        }
    }

    // MARK: Physical actions

    mutating func insertBattery(slot: Int, id: String, family: Int, soc: Double, soh: Double,
                                cycleCount: Int? = nil, temperature: Double? = nil) throws {
        let i = try index(slot)
        guard slots[i].battery == nil else { throw SimulatorError.slotOccupied(slot) }
        guard isValidASCII(id, max: 16) else {
            throw SimulatorError.invalidArgument("battery id must be 1–16 printable ASCII characters")
        }
        guard (0...3).contains(family) else { throw SimulatorError.invalidArgument("family must be 0…3") }
        guard (0...100).contains(soc), (0...100).contains(soh) else {
            throw SimulatorError.invalidArgument("soc and soh are percentages 0…100")
        }
        guard (cycleCount ?? 0) >= 0 else { throw SimulatorError.invalidArgument("cycle count must be ≥ 0") }
        let battery = Battery(id: id, family: family, soc: soc, soh: soh, cycles: Double(cycleCount ?? 0),
                              temperature: temperature ?? cabinetTemperature, rng: &rng)
        insert(battery, at: i)
    }

    mutating func insert(_ battery: Battery, at i: Int) {
        var b = battery
        b.current = 0
        slots[i].battery = b
        slots[i].insertCount &+= 1
        slots[i].chargeEnabled = true
        commit(i)
    }

    @discardableResult
    mutating func removeBattery(slot: Int) throws -> Battery {
        let i = try index(slot)
        guard var b = slots[i].battery else { throw SimulatorError.slotEmpty(slot) }
        b.current = 0
        slots[i].battery = nil
        commit(i)
        return b
    }

    mutating func openDoor(slot: Int, force: Bool = false) throws {
        let i = try index(slot)
        guard slots[i].doorClosed else { throw SimulatorError.doorAlreadyOpen(slot) }
        guard !slots[i].locked || force else { throw SimulatorError.doorLocked(slot) }
        slots[i].doorClosed = false
        slots[i].doorOpenCount &+= 1
        slots[i].relockAt = nil
        if !slots[i].locked { slots[i].relockOnClose = true }
        commit(i)
        stopChargingWhereNotAllowed()
    }

    mutating func closeDoor(slot: Int) throws {
        let i = try index(slot)
        guard !slots[i].doorClosed else { throw SimulatorError.doorAlreadyClosed(slot) }
        slots[i].doorClosed = true
        commit(i)
        if slots[i].relockOnClose || (safeMode && !slots[i].locked) {
            slots[i].relockOnClose = false
            engageLock(i)
        }
    }

    /// The controller drives the lock closed; a jammed lock latches fault 1 instead.
    @discardableResult
    mutating func engageLock(_ i: Int) -> Bool {
        slots[i].relockAt = nil
        if slots[i].lockJammed {
            slots[i].lockFault = true
            commit(i)
            return false
        }
        slots[i].locked = true
        commit(i)
        return true
    }

    mutating func setBattery(slot: Int, soc: Double? = nil, soh: Double? = nil, cycleCount: Int? = nil,
                             temperature: Double? = nil, protectionFlags: UInt16? = nil,
                             warningFlags: UInt16? = nil, id: String? = nil, probeTemperatures: [Double]? = nil) throws {
        let i = try index(slot)
        guard var b = slots[i].battery else { throw SimulatorError.slotEmpty(slot) }
        if let probeTemperatures {
            // The pack's probes as given (0…6 of them; the others read 0x8000), kept relative to the core
            // temperature as it moves (exact while the simulator is paused).
            guard probeTemperatures.count <= 6, probeTemperatures.allSatisfy({ (-40...150).contains($0) }) else {
                throw SimulatorError.invalidArgument("probe_temperatures: at most 6 values, each −40…150 °C")
            }
            b.probeOffsets = probeTemperatures.map { $0 - b.temperature }
        }
        if let soc {
            guard (0...100).contains(soc) else { throw SimulatorError.invalidArgument("soc is 0…100") }
            b.soc = soc
        }
        if let soh {
            guard (0...100).contains(soh) else { throw SimulatorError.invalidArgument("soh is 0…100") }
            b.soh = soh
        }
        if let cycleCount {
            guard cycleCount >= 0 else { throw SimulatorError.invalidArgument("cycle count must be ≥ 0") }
            b.cycles = Double(cycleCount)
        }
        if let temperature { b.temperature = temperature }
        if let protectionFlags { b.protectionFlags = protectionFlags }
        if let warningFlags { b.warningFlags = warningFlags }
        if let id {
            guard isValidASCII(id, max: 16) else {
                throw SimulatorError.invalidArgument("battery id must be 1–16 printable ASCII characters")
            }
            b.id = id
        }
        slots[i].battery = b
        commit(i)
        stopChargingWhereNotAllowed()
    }

    mutating func setFlags(mainsOK: Bool? = nil, backupPower: Bool? = nil, tamper: Bool? = nil,
                           overTemperature: Bool? = nil, emergencyStop: Bool? = nil) {
        if let mainsOK { self.mainsOK = mainsOK }
        if let backupPower { self.backupPower = backupPower }
        if let tamper { self.tamper = tamper }
        if let overTemperature { self.overTemperatureFlag = overTemperature }
        if let emergencyStop { self.emergencyStop = emergencyStop }
        stopChargingWhereNotAllowed()
    }

    /// Power-cycles the controller: RAM is lost, batteries, doors and physical faults stay.
    mutating func reboot(downSeconds: Double) {
        downUntil = time + max(0, downSeconds)
        bootTime = downUntil
        lastCmdSeq = 0
        lastCmdResult = 0
        lastAcceptedSeq = nil
        commandRegisters = [0, 0, 0, 0]
        pending = nil
        watchdogValue = 0
        lastWatchdogTime = bootTime
        safeMode = false
        for i in slots.indices {
            slots[i].lockFault = false
            slots[i].chargeEnabled = true
            slots[i].relockAt = nil
            slots[i].relockOnClose = false
            if slots[i].battery != nil { slots[i].battery!.current = 0 }
            // At boot the controller drives every lock closed; an open door locks once closed.
            if slots[i].doorClosed {
                if slots[i].lockJammed { slots[i].lockFault = !slots[i].locked } else { slots[i].locked = true }
            } else if !slots[i].locked {
                slots[i].relockOnClose = true
            }
            slots[i].changeCounter = 0
            slots[i].reportedBits = slots[i].bits.rawValue
        }
        rider.tasks.removeAll()
    }

    // MARK: Faults

    mutating func inject(_ fault: Fault) throws {
        func probability(_ p: Double) throws -> Double {
            guard (0...1).contains(p) else { throw SimulatorError.invalidArgument("probability must be 0…1") }
            return p
        }
        func count(_ n: Int) throws -> Int {
            guard n >= 0 else { throw SimulatorError.invalidArgument("count must be ≥ 0") }
            return n
        }
        switch fault {
        case .responseDelay(let ms):
            guard ms >= 0 else { throw SimulatorError.invalidArgument("delay must be ≥ 0 ms") }
            faults.delayMilliseconds = ms
        case .dropResponses(let n): faults.dropCount = try count(n)
        case .dropProbability(let p): faults.dropProbability = try probability(p)
        case .exceptionReplies(let code, let n):
            guard code > 0 && code < 0x80 else { throw SimulatorError.invalidArgument("exception code must be 1…127") }
            faults.exceptionCode = code
            faults.exceptionCount = try count(n)
        case .exceptionProbability(let code, let p):
            guard code > 0 && code < 0x80 else { throw SimulatorError.invalidArgument("exception code must be 1…127") }
            faults.exceptionCode = code
            faults.exceptionProbability = try probability(p)
        case .garbage(let n): faults.garbageCount = try count(n)
        case .garbageProbability(let p): faults.garbageProbability = try probability(p)
        case .crcErrors(let n): faults.crcCount = try count(n)
        case .crcErrorProbability(let p): faults.crcProbability = try probability(p)
        case .bmsLinkLost(let slot):
            let i = try index(slot)
            slots[i].bmsLinkLost = true
            commit(i)
        case .lockJam(let slot):
            slots[try index(slot)].lockJammed = true
        case .batteryFlags(let slot, let protection, let warning):
            try setBattery(slot: slot, protectionFlags: protection, warningFlags: warning)
        case .slotOverTemperature(let slot):
            let i = try index(slot)
            slots[i].overTemperature = true
            commit(i)
        case .cabinetOverTemperature:
            cabinetOverTemperatureFault = true
        case .chargerFault(let slot):
            let i = try index(slot)
            slots[i].chargerFault = true
            commit(i)
        case .doorSensorFault(let slot):
            let i = try index(slot)
            slots[i].doorSensorFault = true
            commit(i)
        case .deadSlot(let slot):
            slots[try index(slot)].dead = true
        case .silent(let on):
            faults.silent = on
        }
        stopChargingWhereNotAllowed()
    }

    /// Clears every injected fault (transport and physical) and the latched lock faults;
    /// with a slot, only that slot's faults.
    mutating func clearFaults(slot: Int? = nil) throws {
        let range: [Int]
        if let slot { range = [try index(slot)] } else {
            range = Array(slots.indices)
            faults = TransportFaults()
            cabinetOverTemperatureFault = false
        }
        for i in range {
            slots[i].bmsLinkLost = false
            slots[i].lockJammed = false
            slots[i].lockFault = false
            slots[i].doorSensorFault = false
            slots[i].chargerFault = false
            slots[i].overTemperature = false
            slots[i].dead = false
            if slots[i].battery != nil {
                slots[i].battery!.protectionFlags = 0
                slots[i].battery!.warningFlags = 0
            }
            commit(i)
        }
    }

    // MARK: Commands

    enum CommandWrite { case accepted, busy }

    /// A function-16 write of the whole command block (cmd, slot, seq, param).
    mutating func writeCommandBlock(_ regs: [UInt16]) -> CommandWrite {
        let seq = regs[2]
        if seq == lastAcceptedSeq { return .accepted }   // a retry: done (or under way) already
        if pending != nil {
            switch config.busyReply {
            case .exception:
                return .busy
            case .result:
                commandRegisters = regs
                finish(cmd: regs[0], slot: regs[1], seq: seq, param: regs[3], result: .busy)
                return .accepted
            }
        }
        commandRegisters = regs
        lastAcceptedSeq = seq
        let p = PendingCommand(cmd: regs[0], slot: regs[1], seq: seq, param: regs[3],
                               dueAt: time + config.commandExecutionTime)
        if config.commandExecutionTime <= 0 { execute(p) } else { pending = p }
        return .accepted
    }

    mutating func execute(_ p: PendingCommand) {
        let result = perform(cmd: p.cmd, slot: Int(p.slot), param: p.param)
        finish(cmd: p.cmd, slot: p.slot, seq: p.seq, param: p.param, result: result)
        if result == .ok && p.cmd == CabinetCommand.unlock.rawValue { riderSawUnlock(slot: Int(p.slot)) }
    }

    private mutating func finish(cmd: UInt16, slot: UInt16, seq: UInt16, param: UInt16, result: CommandResult) {
        lastCmdSeq = seq
        lastCmdResult = result.rawValue
        log.append(ExecutedCommand(seq: seq, cmd: cmd, slot: slot, param: param, result: result.rawValue,
                                   time: time, uptime: uptime))
        if log.count > config.commandLogLimit { log.removeFirst(log.count - config.commandLogLimit) }
    }

    private mutating func perform(cmd: UInt16, slot: Int, param: UInt16) -> CommandResult {
        guard let command = CabinetCommand(rawValue: cmd) else { return .unknownCommand }
        guard (1...slots.count).contains(slot) else { return .invalidSlot }
        let i = slot - 1
        switch command {
        case .unlock:
            if slots[i].outOfService || emergencyStop || safeMode { return .refused }
            if slots[i].lockJammed {
                slots[i].lockFault = true
                commit(i)
                return .lockJammed
            }
            slots[i].locked = false
            if slots[i].doorClosed {
                slots[i].relockAt = time + Double(param == 0 ? 30 : param)
            } else {
                slots[i].relockAt = nil
                slots[i].relockOnClose = true
            }
            commit(i)
        case .lock:
            if !slots[i].doorClosed { return .doorNotClosed }
            slots[i].relockOnClose = false
            if !engageLock(i) { return .lockJammed }
        case .chargingOn:
            if slots[i].outOfService || emergencyStop { return .refused }
            slots[i].chargeEnabled = true
        case .chargingOff:
            slots[i].chargeEnabled = false
            stopChargingWhereNotAllowed()
        case .outOfService:
            slots[i].outOfService = true
            commit(i)
            stopChargingWhereNotAllowed()
        case .backInService:
            slots[i].outOfService = false
            commit(i)
        }
        return .ok
    }

    /// A watchdog write (holding 1020): a changed value resets the watchdog and ends safe mode.
    mutating func writeWatchdog(_ value: UInt16) {
        guard value != watchdogValue else { return }
        watchdogValue = value
        lastWatchdogTime = time
        safeMode = false
    }

    mutating func setClock(_ value: UInt32) {
        clockBase = value
        clockSetTime = time
    }

    private mutating func enterSafeMode() {
        safeMode = true
        for i in slots.indices {
            if slots[i].doorClosed {
                if !slots[i].locked { engageLock(i) }
            } else {
                slots[i].relockOnClose = true
            }
            slots[i].relockAt = nil
        }
    }

    // MARK: Rider

    mutating func setRider(_ config: RiderConfiguration?) {
        rider.config = config
        rider.queue = config?.returns ?? []
        rider.tasks.removeAll()
    }

    private mutating func riderSawUnlock(slot: Int) {
        guard let cfg = rider.config else { return }
        rider.unlocksSeen += 1
        if cfg.behavior == .ignore {
            rider.unlocksIgnored += 1
            return
        }
        rider.tasks.append(RiderTask(slot: slot, stage: .open, due: time + cfg.delay))
    }

    private mutating func runRiderTask(_ task: RiderTask) {
        guard let cfg = rider.config else { return }
        let i = task.slot - 1
        switch task.stage {
        case .open:
            guard slots[i].doorClosed, !slots[i].locked else { rider.missed += 1; return }
            try? openDoor(slot: task.slot)
            rider.doorsOpened += 1
            rider.tasks.append(RiderTask(slot: task.slot, stage: .act, due: time + cfg.stepDelay))
        case .act:
            guard !slots[i].doorClosed else { rider.missed += 1; return }
            if slots[i].battery != nil {
                if cfg.behavior != .returnOnly, let b = try? removeBattery(slot: task.slot) {
                    rider.pocket.append(b)
                    rider.batteriesTaken += 1
                }
            } else if cfg.behavior != .takeOnly {
                insert(riderBatteryToReturn(cfg), at: i)
                rider.batteriesReturned += 1
            }
            if cfg.behavior != .noClose {
                rider.tasks.append(RiderTask(slot: task.slot, stage: .close, due: time + cfg.stepDelay))
            }
        case .close:
            guard !slots[i].doorClosed else { return }
            try? closeDoor(slot: task.slot)
            rider.doorsClosed += 1
        }
    }

    private mutating func riderBatteryToReturn(_ cfg: RiderConfiguration) -> Battery {
        if !rider.queue.isEmpty {
            let r = rider.queue.removeFirst()
            return Battery(id: String(r.id.prefix(16)), family: r.family, soc: r.soc, soh: r.soh ?? 95,
                           cycles: 100, temperature: config.ambientTemperature + 5, rng: &rng)
        }
        if var b = rider.pocket.popLast() {
            if let s = cfg.pocketReturnSoc { b.soc = min(b.soc, max(0, min(100, s))) }
            b.temperature = max(b.temperature, config.ambientTemperature + 5)
            return b
        }
        rider.generated += 1
        let id = String((cfg.idPrefix + pad(rider.generated, 4)).prefix(16))
        return Battery(id: id, family: cfg.family, soc: cfg.soc, soh: 95, cycles: 150,
                       temperature: config.ambientTemperature + 5, rng: &rng)
    }

    // MARK: Time

    /// Advances simulated time, in steps of at most one second.
    mutating func advance(by seconds: Double) {
        guard seconds > 0, seconds.isFinite else { return }
        var remaining = seconds
        while remaining > 1e-9 {
            let dt = min(remaining, 1.0)
            step(dt)
            remaining -= dt
        }
    }

    mutating func step(_ dt: Double) {
        time += dt
        let up = !isDown
        if up, let p = pending, time + 1e-9 >= p.dueAt {
            pending = nil
            execute(p)
        }
        if up {
            for i in slots.indices {
                if let t = slots[i].relockAt, time + 1e-9 >= t { engageLock(i) }
            }
        }
        // The rider acts in the physical world, controller up or not.
        if !rider.tasks.isEmpty {
            let due = rider.tasks.filter { time + 1e-9 >= $0.due }
            rider.tasks.removeAll { time + 1e-9 >= $0.due }
            for task in due { runRiderTask(task) }
        }
        if up, watchdogTimeout > 0, !safeMode, time - lastWatchdogTime >= watchdogTimeout {
            enterSafeMode()
        }
        physics(dt)
    }

    /// Recomputes currents and the meter without advancing time.
    mutating func refreshMeter() { physics(0) }

    private mutating func physics(_ dt: Double) {
        var chargingPower = 0.0
        var losses = 0.0
        for i in slots.indices {
            guard var b = slots[i].battery else { continue }
            let capacity = max(0.01, b.fullCapacityAh)
            if chargingAllowed(i) && !b.isFull {
                let demand = b.chargeDemand
                if b.soc >= BatteryFamily.cvStartSoC && demand < b.cutoffCurrent {
                    // CV current below the cut-off (0.05 C): charge terminates, the pack counts as full.
                    b.cycles += (100 - b.soc) / 100
                    b.soc = 100
                    b.current = 0
                } else {
                    b.current = demand
                    let ah = demand * dt / 3600
                    let before = b.soc
                    b.soc = min(100, b.soc + ah / capacity * 100)
                    b.cycles += (b.soc - before) / 100
                }
            } else {
                b.current = 0
            }
            if b.current > 0 {
                let power = b.packVoltage * b.current
                chargingPower += power
                losses += power * 0.06 + b.current * b.current * b.spec.resistance
            }
            // Temperature: I²R heat, relaxing toward the cabinet (or toward 62 °C in an overheating slot).
            let target = slots[i].overTemperature ? 62.0 : cabinetTemperature
            let tau = slots[i].overTemperature ? 300.0 : 1800.0
            let heat = b.current * b.current * b.spec.resistance / b.spec.heatCapacity
            b.temperature += (heat + (target - b.temperature) / tau) * dt
            slots[i].battery = b
            commit(i)
        }
        // Cabinet temperature follows the chargers' losses; the over-temperature fault drives it to 65 °C.
        let cabinetTarget = cabinetOverTemperatureFault ? 65.0 : config.ambientTemperature + losses * 0.01
        cabinetTemperature += (cabinetTarget - cabinetTemperature) / (cabinetOverTemperatureFault ? 120 : 600) * dt
        lastChargingPower = chargingPower
        // The energy meter sees the chargers (94 % efficient) plus the cabinet's own 35 W.
        if mainsOK {
            meter.voltage = 230 + rng.uniform(-1.5...1.5)
            meter.frequency = 50 + rng.uniform(-0.03...0.03)
            meter.activePower = (chargingPower + externalChargingPower) / 0.94 + 35 * Double(cabinetsOnMeter)
            meter.current = meter.activePower / meter.voltage
        } else {
            meter.voltage = 0
            meter.frequency = 0
            meter.activePower = 0
            meter.current = 0
        }
        meter.importEnergyKwh += meter.activePower * dt / 3_600_000
    }
}

func pad(_ n: Int, _ width: Int) -> String {
    let s = String(n)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}
