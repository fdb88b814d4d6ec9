// The simulated cabinet controller: the model behind a lock, a background ticker, the Modbus
// transports and the control interface. This is the public face of SimulatorCore.
import Foundation

public final class Simulator: Sendable, ModbusResponder {
    public let configuration: SimulatorConfiguration

    struct Core: Sendable {
        var cabinet: Cabinet
        var speed: Double
        var paused: Bool
    }

    struct Runtime: Sendable {
        var modbusTCP: [TCPListener] = []
        var rtu: [RTUServer] = []
        var control: [TCPListener] = []
        var stopped = false
    }

    private let core: Locked<Core>
    private let runtime = Locked(Runtime())

    /// Creates the cabinet (filled as `configuration.fill` says) and starts the background ticker
    /// (paused when `configuration.autoTick` is false). Call `validate()` on a configuration from
    /// user input first: an invalid one is a programming error here.
    public init(configuration: SimulatorConfiguration = SimulatorConfiguration()) {
        do { _ = try configuration.validated() } catch { preconditionFailure("invalid SimulatorConfiguration: \(error)") }
        self.configuration = configuration
        let hostClock = UInt32(max(0, min(Double(UInt32.max), Date().timeIntervalSince1970)))
        core = Locked(Core(cabinet: Cabinet(config: configuration, hostClock: hostClock),
                          speed: configuration.speed, paused: !configuration.autoTick))
        startTicker()
    }

    deinit {
        stop()
    }

    // MARK: Transports

    /// Serves Modbus TCP; returns the bound port (useful with port 0).
    @discardableResult
    public func startTCP(host: String = "127.0.0.1", port: Int = 0) throws -> Int {
        let listener = try ModbusTCPServer.start(host: host, port: port, responder: self)
        runtime.withLock { $0.modbusTCP.append(listener) }
        return listener.port
    }

    /// Serves Modbus RTU on a serial device or pty (8 data bits).
    public func startRTU(path: String, baud: Int = 115200, parity: Character = "N", stopBits: Int = 1) throws {
        guard let upper = parity.uppercased().first, let p = SerialParity(rawValue: upper) else {
            throw SimulatorError.invalidArgument("parity must be N, E or O")
        }
        let server = try RTUServer(path: path, baud: baud, parity: p, stopBits: stopBits, responder: self)
        runtime.withLock { $0.rtu.append(server) }
    }

    /// Serves the JSON-lines control interface; returns the bound port.
    @discardableResult
    public func startControl(host: String = "127.0.0.1", port: Int = 0) throws -> Int {
        let listener = try ControlServer.start(host: host, port: port, simulator: self)
        runtime.withLock { $0.control.append(listener) }
        return listener.port
    }

    /// Stops the ticker, the transports, the control interface and any scenario. Final.
    public func stop() {
        let r = runtime.withLock { r -> Runtime in
            let copy = r
            r = Runtime()
            r.stopped = true
            return copy
        }
        // All threads are told first, then awaited: they end within one poll interval together.
        for l in r.modbusTCP + r.control { l.requestStop() }
        for s in r.rtu { s.requestStop() }
        for l in r.modbusTCP + r.control { l.waitUntilStopped() }
        for s in r.rtu { s.waitUntilStopped() }
    }

    var isStopped: Bool { runtime.withLock { $0.stopped } }

    // MARK: Time

    private func startTicker() {
        let interval = configuration.tickInterval
        let t = Thread { [weak self] in
            var last = ProcessInfo.processInfo.systemUptime
            while true {
                usleep(useconds_t(interval * 1_000_000))
                guard let sim = self, !sim.isStopped else { return }
                let now = ProcessInfo.processInfo.systemUptime
                let wall = min(1.0, max(0, now - last))   // a stalled machine does not jump far ahead
                last = now
                sim.core.withLock { c in
                    if !c.paused { c.cabinet.advance(by: wall * c.speed) }
                }
            }
        }
        t.name = "sim-ticker"
        t.start()
    }

    /// Advances simulated time by `seconds` at once (deterministic; works while paused).
    public func tick(seconds: Double) {
        core.withLock { $0.cabinet.advance(by: seconds) }
    }

    /// Stops the background ticker (simulated time then moves only with `tick(seconds:)`).
    public func pause() { core.withLock { $0.paused = true } }
    public func resume() { core.withLock { $0.paused = false } }
    public var isPaused: Bool { core.withLock { $0.paused } }

    /// Simulated seconds per wall second.
    public func setSpeed(_ speed: Double) throws {
        guard speed > 0, speed.isFinite else { throw SimulatorError.invalidArgument("speed must be > 0") }
        core.withLock { $0.speed = speed }
    }
    public var speed: Double { core.withLock { $0.speed } }

    /// Simulated seconds since the simulator started.
    public var simulatedTime: Double { core.withLock { $0.cabinet.time } }

    /// Simulated seconds without a watchdog write before safe mode (0 disables).
    public func setWatchdogTimeout(_ seconds: Double) throws {
        guard seconds >= 0 else { throw SimulatorError.invalidArgument("watchdog timeout must be ≥ 0") }
        core.withLock { $0.cabinet.watchdogTimeout = seconds }
    }

    // MARK: Modbus

    /// The protocol engine: one request PDU for `unit` → the response PDU (nil = no reply).
    /// No transport faults here (see `respond(unit:pdu:transport:)`).
    public func handle(unit: UInt8, pdu: [UInt8]) -> [UInt8]? {
        core.withLock { $0.cabinet.handle(unit: unit, pdu: pdu) }
    }

    /// What a transport sends for a request: the engine's answer with the injected transport
    /// faults applied (down after a reboot, drops, exception replies, delay, garbage, bad CRC).
    public func respond(unit: UInt8, pdu: [UInt8], transport: TransportKind) -> ResponsePlan {
        core.withLock { c -> ResponsePlan in
            c.cabinet.respond(unit: unit, pdu: pdu, transport: transport)
        }
    }

    // MARK: Physical actions

    public func insertBattery(slot: Int, id: String, family: Int, soc: Double, soh: Double = 100,
                              cycleCount: Int? = nil, temperature: Double? = nil) throws {
        try core.withLock {
            try $0.cabinet.insertBattery(slot: slot, id: id, family: family, soc: soc, soh: soh,
                                         cycleCount: cycleCount, temperature: temperature)
        }
    }

    /// Takes the battery out; returns it as it was.
    @discardableResult
    public func removeBattery(slot: Int) throws -> BatterySnapshot {
        try core.withLock { c in
            let b = try c.cabinet.removeBattery(slot: slot)
            return Cabinet.batterySnapshot(b)
        }
    }

    /// Opens the door: only if unlocked, unless `force` (a forced door: it opens while locked).
    public func openDoor(slot: Int, force: Bool = false) throws {
        try core.withLock { try $0.cabinet.openDoor(slot: slot, force: force) }
    }

    /// Closes the door; an unlocked door that was opened re-locks.
    public func closeDoor(slot: Int) throws {
        try core.withLock { try $0.cabinet.closeDoor(slot: slot) }
    }

    public func setBattery(slot: Int, soc: Double? = nil, soh: Double? = nil, cycleCount: Int? = nil,
                           temperature: Double? = nil, protectionFlags: UInt16? = nil,
                           warningFlags: UInt16? = nil, id: String? = nil, probeTemperatures: [Double]? = nil) throws {
        try core.withLock {
            try $0.cabinet.setBattery(slot: slot, soc: soc, soh: soh, cycleCount: cycleCount,
                                      temperature: temperature, protectionFlags: protectionFlags,
                                      warningFlags: warningFlags, id: id, probeTemperatures: probeTemperatures)
        }
    }

    /// Cabinet flags (register 17); nil leaves a flag as it is.
    public func setFlags(mainsOk: Bool? = nil, backupPower: Bool? = nil, tamper: Bool? = nil,
                         overTemperature: Bool? = nil, emergencyStop: Bool? = nil) {
        core.withLock {
            $0.cabinet.setFlags(mainsOK: mainsOk, backupPower: backupPower, tamper: tamper,
                                overTemperature: overTemperature, emergencyStop: emergencyStop)
        }
    }

    /// Power-cycles the controller. RAM (uptime, heartbeat, last command, change counters,
    /// watchdog, safe mode, charger enables) resets; batteries, doors, out-of-service and
    /// injected physical faults stay. Open Modbus TCP connections are closed; for `downSeconds`
    /// of simulated time nothing answers.
    public func reboot(downSeconds: Double = 0) {
        core.withLock { $0.cabinet.reboot(downSeconds: downSeconds) }
        for l in runtime.withLock({ $0.modbusTCP }) { l.dropConnections() }
    }

    // MARK: Faults

    public func inject(_ fault: Fault) throws {
        try core.withLock { try $0.cabinet.inject(fault) }
    }

    /// Clears every injected fault.
    public func clearFaults() {
        core.withLock { try? $0.cabinet.clearFaults() }
    }

    /// Clears the faults of one slot.
    public func clearFaults(slot: Int) throws {
        try core.withLock { try $0.cabinet.clearFaults(slot: slot) }
    }

    // MARK: Rider

    /// Turns rider mode on (with this configuration) or off (nil). Resets the return queue.
    public func setRider(_ config: RiderConfiguration?) {
        core.withLock { $0.cabinet.setRider(config) }
    }

    // MARK: Inspection

    public func snapshot() -> CabinetSnapshot {
        core.withLock { c in c.cabinet.snapshot(speed: c.speed, paused: c.paused) }
    }

    public func commandLog() -> [ExecutedCommand] {
        core.withLock { $0.cabinet.log }
    }

    /// Input registers of unit 1 (or 2) as the engine would answer them; nil if unmapped.
    public func inputRegisters(unit: UInt8 = 1, start: Int, count: Int) -> [UInt16]? {
        handle(unit: unit, pdu: ModbusPDU.readInput(start: start, count: count)).flatMap(ModbusPDU.registers)
    }

    /// Writes a command block (FC16 1000–1003) as the gateway would; returns the response PDU.
    @discardableResult
    public func writeCommand(cmd: UInt16, slot: UInt16, seq: UInt16, param: UInt16 = 0) -> [UInt8]? {
        handle(unit: 1, pdu: ModbusPDU.writeMultiple(start: CabinetMap.commandBlock, values: [cmd, slot, seq, param]))
    }

    /// A seq that differs from the last accepted one (for technicians' commands).
    func nextSeq() -> UInt16 {
        core.withLock { ($0.cabinet.lastAcceptedSeq ?? 0) &+ 1 }
    }
}

// MARK: - Transport faults

extension Cabinet {
    mutating func respond(unit: UInt8, pdu: [UInt8], transport: TransportKind) -> ResponsePlan {
        guard !isDown, unit == CabinetMap.cabinetUnit || unit == CabinetMap.meterUnit, let fc = pdu.first else {
            return .silent
        }
        var reply: [UInt8]?
        if faults.exceptionCount > 0 {
            faults.exceptionCount -= 1
            reply = [fc | 0x80, faults.exceptionCode]
        } else if rng.chance(faults.exceptionProbability) {
            reply = [fc | 0x80, faults.exceptionCode]
        } else {
            reply = handle(unit: unit, pdu: pdu)
        }
        guard let reply else { return .silent }
        if faults.dropCount > 0 {
            faults.dropCount -= 1
            return .silent
        }
        if rng.chance(faults.dropProbability) { return .silent }
        var corruption = ResponsePlan.Corruption.none
        if faults.garbageCount > 0 || rng.chance(faults.garbageProbability) {
            if faults.garbageCount > 0 { faults.garbageCount -= 1 }
            corruption = .garbage((0..<(5 + Int(rng.next() % 8))).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        } else if transport == .rtu && (faults.crcCount > 0 || rng.chance(faults.crcProbability)) {
            if faults.crcCount > 0 { faults.crcCount -= 1 }
            corruption = .badCRC
        }
        return ResponsePlan(pdu: reply, delayMilliseconds: faults.delayMilliseconds, corruption: corruption)
    }
}

// MARK: - Snapshots

extension Cabinet {
    static func batterySnapshot(_ b: Battery) -> BatterySnapshot {
        let probes = b.probeTemperatures
        return BatterySnapshot(
            id: b.id, family: b.family, familyName: b.spec.name, soc: b.soc, soh: b.soh,
            cycleCount: Int(b.cycles.rounded(.down)), temperature: b.temperature,
            tempMax: probes.max() ?? b.temperature, tempMin: probes.min() ?? b.temperature,
            packVoltage: b.packVoltage, packCurrent: b.current, fullCapacityAh: b.fullCapacityAh,
            remainingCapacityAh: b.remainingAh, protectionFlags: b.protectionFlags, warningFlags: b.warningFlags,
            cellVoltagesMv: b.cellVoltages.map { Int(($0 * 1000).rounded()) }, probeTemperatures: probes)
    }

    func snapshot(speed: Double, paused: Bool) -> CabinetSnapshot {
        let fw = CabinetMap.firmwareVersion
        let slotSnapshots = slots.indices.map { i -> SlotSnapshot in
            let s = slots[i]
            let bits = s.bits
            return SlotSnapshot(
                slot: i + 1, state: bits.rawValue, batteryPresent: bits.contains(.batteryPresent),
                doorClosed: s.doorClosed, locked: s.locked, charging: bits.contains(.charging),
                chargeComplete: bits.contains(.chargeComplete), slotFault: bits.contains(.slotFault),
                bmsLinkOk: bits.contains(.bmsLinkOK), outOfService: s.outOfService, faultCode: s.faultCode.rawValue,
                changeCounter: s.changeCounter, doorOpenCount: s.doorOpenCount, insertCount: s.insertCount,
                chargeEnabled: s.chargeEnabled, lockJammed: s.lockJammed,
                relockIn: s.relockAt.map { max(0, $0 - time) }, battery: s.battery.map(Cabinet.batterySnapshot))
        }
        let f = cabinetFlags
        return CabinetSnapshot(
            serialNumber: config.serialNumber, slotCount: slotCount,
            firmwareVersion: "\(fw.major).\(fw.minor).\(fw.patch)", simulatedTime: time, uptime: uptime,
            heartbeat: heartbeat, cabinetFlags: f.rawValue, mainsOk: f.contains(.mainsOK),
            backupPower: f.contains(.backupPower), tamper: f.contains(.tamper),
            overTemperature: f.contains(.overTemperature), emergencyStop: f.contains(.emergencyStop),
            cabinetTemperature: cabinetTemperature, lastCommandSeq: lastCmdSeq, lastCommandResult: lastCmdResult,
            commandExecuting: pending != nil, watchdogSeconds: watchdogSeconds, watchdogTimeout: watchdogTimeout,
            safeMode: safeMode, clock: clock, speed: speed, paused: paused, down: isDown, slots: slotSnapshots,
            meter: MeterSnapshot(importEnergyKwh: meter.importEnergyKwh, voltage: meter.voltage,
                                 current: meter.current, activePower: meter.activePower, frequency: meter.frequency),
            rider: RiderSnapshot(
                enabled: rider.config != nil, configuration: rider.config,
                pocket: rider.pocket.map(Cabinet.batterySnapshot), returnQueue: rider.queue,
                unlocksSeen: rider.unlocksSeen, unlocksIgnored: rider.unlocksIgnored,
                doorsOpened: rider.doorsOpened, doorsClosed: rider.doorsClosed,
                batteriesTaken: rider.batteriesTaken, batteriesReturned: rider.batteriesReturned,
                missed: rider.missed, pendingActions: rider.tasks.count),
            faults: FaultsSnapshot(
                responseDelayMs: faults.delayMilliseconds, dropCount: faults.dropCount,
                dropProbability: faults.dropProbability, exceptionCode: faults.exceptionCode,
                exceptionCount: faults.exceptionCount, exceptionProbability: faults.exceptionProbability,
                garbageCount: faults.garbageCount, garbageProbability: faults.garbageProbability,
                crcCount: faults.crcCount, crcProbability: faults.crcProbability,
                cabinetOverTemperature: cabinetOverTemperatureFault),
            commandLog: log)
    }
}

extension SimulatorConfiguration {
    /// Throws if the configuration is not usable (slots 1…48, serial ≤ 16 ASCII, speed > 0, …).
    public func validate() throws { _ = try validated() }
}
