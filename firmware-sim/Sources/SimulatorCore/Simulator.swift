// The simulated cabinet controllers of a station: the models behind a lock, a background ticker,
// the Modbus transports and the control interface. This is the public face of SimulatorCore.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The cabinets of one simulator, in the station's order; the first one also models the energy
/// meter (unit 2). All advance in lockstep on one simulated clock.
struct Station: Sendable {
    var cabinets: [Cabinet]
    var speed: Double
    var paused: Bool

    /// The cabinet at `unit` (nil = the first one).
    func index(unit: Int?) throws -> Int {
        guard let unit else { return 0 }
        guard let i = cabinets.firstIndex(where: { Int($0.unit) == unit }) else {
            throw SimulatorError.invalidArgument("no cabinet at unit \(unit) (units: \(cabinets.map { String($0.unit) }.joined(separator: ", ")))")
        }
        return i
    }

    func index(modbusUnit unit: UInt8) -> Int? { cabinets.firstIndex { $0.unit == unit } }

    var time: Double { cabinets[0].time }

    /// Advances every cabinet by `seconds` in steps of at most one second; the meter (first
    /// cabinet) sees the other cabinets' chargers of the same step.
    mutating func advance(by seconds: Double) {
        if cabinets.count == 1 { cabinets[0].advance(by: seconds); return }
        guard seconds > 0, seconds.isFinite else { return }
        var remaining = seconds
        while remaining > 1e-9 {
            let dt = min(remaining, 1.0)
            for i in cabinets.indices.dropFirst() { cabinets[i].step(dt) }
            cabinets[0].externalChargingPower = cabinets.dropFirst().reduce(0) { $0 + $1.lastChargingPower }
            cabinets[0].step(dt)
            remaining -= dt
        }
    }
}

public final class Simulator: Sendable, ModbusResponder {
    public let configuration: SimulatorConfiguration

    /// A Modbus TCP listener and the unit ids it serves (nil = every cabinet and the meter).
    struct TCPEndpoint: Sendable {
        let listener: TCPListener
        let units: Set<UInt8>?
    }

    struct Runtime: Sendable {
        var modbusTCP: [TCPEndpoint] = []
        var rtu: [RTUServer] = []
        var control: [TCPListener] = []
        var stopped = false
    }

    private let core: Locked<Station>
    private let runtime = Locked(Runtime())

    /// Creates the cabinets (filled as `configuration.fill` says) and starts the background ticker
    /// (paused when `configuration.autoTick` is false). Call `validate()` on a configuration from
    /// user input first: an invalid one is a programming error here.
    public init(configuration: SimulatorConfiguration = SimulatorConfiguration()) {
        do { _ = try configuration.validated() } catch { preconditionFailure("invalid SimulatorConfiguration: \(error)") }
        self.configuration = configuration
        let hostClock = UInt32(max(0, min(Double(UInt32.max), Date().timeIntervalSince1970)))
        var cabinets: [Cabinet] = []
        for (k, setup) in configuration.resolvedCabinets.enumerated() {
            var own = configuration
            own.slots = setup.slots
            own.serialNumber = setup.serialNumber
            own.fill = setup.fill ?? configuration.fill
            own.cabinets = []
            // The first cabinet keeps the seed (one cabinet behaves as it always did); the others get their own.
            if k > 0 { own.seed = configuration.seed &+ UInt64(setup.unit) &* 0x9E37_79B9_7F4A_7C15 }
            cabinets.append(Cabinet(config: own, hostClock: hostClock, unit: UInt8(setup.unit)))
        }
        if cabinets.count > 1 {
            cabinets[0].cabinetsOnMeter = cabinets.count
            cabinets[0].externalChargingPower = cabinets.dropFirst().reduce(0) { $0 + $1.lastChargingPower }
            cabinets[0].refreshMeter()
        }
        core = Locked(Station(cabinets: cabinets, speed: configuration.speed, paused: !configuration.autoTick))
        startTicker()
    }

    deinit {
        stop()
    }

    /// The cabinets' Modbus unit ids, in the station's order (the first is the default of every
    /// per-cabinet call and control request).
    public var units: [Int] { configuration.resolvedCabinets.map(\.unit) }

    // MARK: Transports

    /// Serves Modbus TCP; returns the bound port (useful with port 0). `units`: the unit ids this
    /// port answers (cabinets and/or 2, the meter); nil = every cabinet and the meter.
    @discardableResult
    public func startTCP(host: String = "127.0.0.1", port: Int = 0, units: [Int]? = nil) throws -> Int {
        let served = try servedSet(units)
        let listener = try ModbusTCPServer.start(host: host, port: port, units: served, responder: self)
        runtime.withLock { $0.modbusTCP.append(TCPEndpoint(listener: listener, units: served)) }
        return listener.port
    }

    /// Serves Modbus RTU on a serial device or pty (8 data bits); `units` as for `startTCP`.
    public func startRTU(path: String, baud: Int = 115200, parity: Character = "N", stopBits: Int = 1,
                         units: [Int]? = nil) throws {
        guard let upper = parity.uppercased().first, let p = SerialParity(rawValue: upper) else {
            throw SimulatorError.invalidArgument("parity must be N, E or O")
        }
        let served = try servedSet(units)
        let server = try RTUServer(path: path, baud: baud, parity: p, stopBits: stopBits, units: served, responder: self)
        runtime.withLock { $0.rtu.append(server) }
    }

    private func servedSet(_ units: [Int]?) throws -> Set<UInt8>? {
        guard let units else { return nil }
        let known = Set(self.units + [Int(CabinetMap.meterUnit)])
        for u in units where !known.contains(u) {
            throw SimulatorError.invalidArgument("unit \(u) is neither a cabinet of this simulator nor the meter (2)")
        }
        return Set(units.map { UInt8($0) })
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
        let listeners = r.modbusTCP.map(\.listener) + r.control
        for l in listeners { l.requestStop() }
        for s in r.rtu { s.requestStop() }
        for l in listeners { l.waitUntilStopped() }
        for s in r.rtu { s.waitUntilStopped() }
    }

    var isStopped: Bool { runtime.withLock { $0.stopped } }

    // MARK: Cabinet access

    /// Runs `body` on the cabinet at `unit` (nil = the first); throws for an unknown unit.
    private func withCabinet<T>(_ unit: Int?, _ body: (inout Cabinet) throws -> T) throws -> T {
        try core.withLock { c in
            let i = try c.index(unit: unit)
            return try body(&c.cabinets[i])
        }
    }

    /// As `withCabinet`, for the calls that do not throw: an unknown unit is a programming error
    /// (the control interface checks the unit first).
    private func withCabinetChecked<T>(_ unit: Int?, _ body: (inout Cabinet, Station) -> T) -> T {
        core.withLock { c in
            guard let i = try? c.index(unit: unit) else { preconditionFailure("no cabinet at unit \(unit ?? -1)") }
            let station = c
            return body(&c.cabinets[i], station)
        }
    }

    /// Throws unless a cabinet answers `unit` (nil is the first one).
    public func checkUnit(_ unit: Int?) throws {
        _ = try core.withLock { try $0.index(unit: unit) }
    }

    // MARK: Time

    private func startTicker() {
        let interval = configuration.tickInterval
        startThread(name: "sim-ticker") { [weak self] in
            var last = ProcessInfo.processInfo.systemUptime
            while true {
                usleep(useconds_t(interval * 1_000_000))
                guard let sim = self, !sim.isStopped else { return }
                let now = ProcessInfo.processInfo.systemUptime
                let wall = min(1.0, max(0, now - last))   // a stalled machine does not jump far ahead
                last = now
                sim.core.withLock { c in
                    if !c.paused { c.advance(by: wall * c.speed) }
                }
            }
        }
    }

    /// Advances simulated time by `seconds` at once (deterministic; works while paused).
    public func tick(seconds: Double) {
        core.withLock { $0.advance(by: seconds) }
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
    public var simulatedTime: Double { core.withLock { $0.time } }

    /// Simulated seconds without a watchdog write before safe mode (0 disables), of the cabinet at
    /// `unit` (nil = the first).
    public func setWatchdogTimeout(_ seconds: Double, unit: Int? = nil) throws {
        guard seconds >= 0 else { throw SimulatorError.invalidArgument("watchdog timeout must be ≥ 0") }
        try withCabinet(unit) { $0.watchdogTimeout = seconds }
    }

    // MARK: Modbus

    /// The protocol engine: one request PDU for `unit` → the response PDU (nil = no reply).
    /// No transport faults here (see `respond(unit:pdu:transport:)`).
    public func handle(unit: UInt8, pdu: [UInt8]) -> [UInt8]? {
        core.withLock { c in
            if unit == CabinetMap.meterUnit { return c.cabinets[0].handle(unit: unit, pdu: pdu) }
            guard let i = c.index(modbusUnit: unit) else { return nil }
            return c.cabinets[i].handle(unit: CabinetMap.cabinetUnit, pdu: pdu)
        }
    }

    /// What a transport sends for a request: the engine's answer with the injected transport
    /// faults applied (down after a reboot, silent, drops, exception replies, delay, garbage, bad CRC).
    public func respond(unit: UInt8, pdu: [UInt8], transport: TransportKind) -> ResponsePlan {
        respond(unit: unit, pdu: pdu, transport: transport, serving: nil)
    }

    func respond(unit: UInt8, pdu: [UInt8], transport: TransportKind, serving: Set<UInt8>?) -> ResponsePlan {
        if let serving, !serving.contains(unit) { return absent(pdu, transport) }
        return core.withLock { c -> ResponsePlan in
            if unit == CabinetMap.meterUnit {
                // The meter rides on the first cabinet's transport faults and reboots (as always).
                if c.cabinets[0].isDown { return absent(pdu, transport) }
                return c.cabinets[0].respond(unit: unit, pdu: pdu, transport: transport)
            }
            guard let i = c.index(modbusUnit: unit), !c.cabinets[i].isDown, !c.cabinets[i].faults.silent else {
                return absent(pdu, transport)
            }
            return c.cabinets[i].respond(unit: CabinetMap.cabinetUnit, pdu: pdu, transport: transport)
        }
    }

    /// The answer for a unit that does not answer: silence, or over TCP exception 0x0B if configured.
    private func absent(_ pdu: [UInt8], _ transport: TransportKind) -> ResponsePlan {
        guard transport == .tcp, configuration.absentUnitReply == .exception, let fc = pdu.first else { return .silent }
        return ResponsePlan(pdu: [fc | 0x80, ModbusException.gatewayTargetFailed.rawValue], delayMilliseconds: 0, corruption: .none)
    }

    // MARK: Physical actions (`unit`: the cabinet; nil = the first)

    public func insertBattery(slot: Int, id: String, family: Int, soc: Double, soh: Double = 100,
                              cycleCount: Int? = nil, temperature: Double? = nil, unit: Int? = nil) throws {
        try withCabinet(unit) {
            try $0.insertBattery(slot: slot, id: id, family: family, soc: soc, soh: soh,
                                 cycleCount: cycleCount, temperature: temperature)
        }
    }

    /// Takes the battery out; returns it as it was.
    @discardableResult
    public func removeBattery(slot: Int, unit: Int? = nil) throws -> BatterySnapshot {
        try withCabinet(unit) { Cabinet.batterySnapshot(try $0.removeBattery(slot: slot)) }
    }

    /// Opens the door: only if unlocked, unless `force` (a forced door: it opens while locked).
    public func openDoor(slot: Int, force: Bool = false, unit: Int? = nil) throws {
        try withCabinet(unit) { try $0.openDoor(slot: slot, force: force) }
    }

    /// Closes the door; an unlocked door that was opened re-locks.
    public func closeDoor(slot: Int, unit: Int? = nil) throws {
        try withCabinet(unit) { try $0.closeDoor(slot: slot) }
    }

    public func setBattery(slot: Int, soc: Double? = nil, soh: Double? = nil, cycleCount: Int? = nil,
                           temperature: Double? = nil, protectionFlags: UInt16? = nil,
                           warningFlags: UInt16? = nil, id: String? = nil, probeTemperatures: [Double]? = nil,
                           unit: Int? = nil) throws {
        try withCabinet(unit) {
            try $0.setBattery(slot: slot, soc: soc, soh: soh, cycleCount: cycleCount,
                              temperature: temperature, protectionFlags: protectionFlags,
                              warningFlags: warningFlags, id: id, probeTemperatures: probeTemperatures)
        }
    }

    /// Cabinet flags (register 17); nil leaves a flag as it is.
    public func setFlags(mainsOk: Bool? = nil, backupPower: Bool? = nil, tamper: Bool? = nil,
                         overTemperature: Bool? = nil, emergencyStop: Bool? = nil, unit: Int? = nil) {
        withCabinetChecked(unit) { c, _ in
            c.setFlags(mainsOK: mainsOk, backupPower: backupPower, tamper: tamper,
                       overTemperature: overTemperature, emergencyStop: emergencyStop)
        }
    }

    /// Power-cycles the controller. RAM (uptime, heartbeat, last command, change counters,
    /// watchdog, safe mode, charger enables) resets; batteries, doors, out-of-service and
    /// injected physical faults stay. Open Modbus TCP connections of the ports that serve this
    /// cabinet alone are closed (a port shared with other cabinets is a bridge: it stays); for
    /// `downSeconds` of simulated time the cabinet answers nothing.
    public func reboot(downSeconds: Double = 0, unit: Int? = nil) {
        let rebooted = withCabinetChecked(unit) { c, _ -> UInt8 in
            c.reboot(downSeconds: downSeconds)
            return c.unit
        }
        let cabinets = Set(units.map { UInt8($0) })
        for e in runtime.withLock({ $0.modbusTCP }) where (e.units ?? cabinets).intersection(cabinets) == [rebooted] {
            e.listener.dropConnections()
        }
    }

    // MARK: Faults

    public func inject(_ fault: Fault, unit: Int? = nil) throws {
        try withCabinet(unit) { try $0.inject(fault) }
    }

    /// Clears every injected fault of the cabinet at `unit` (nil = the first).
    public func clearFaults(unit: Int? = nil) {
        withCabinetChecked(unit) { c, _ in try? c.clearFaults() }
    }

    /// Clears the faults of one slot.
    public func clearFaults(slot: Int, unit: Int? = nil) throws {
        try withCabinet(unit) { try $0.clearFaults(slot: slot) }
    }

    // MARK: Rider

    /// Turns rider mode on (with this configuration) or off (nil). Resets the return queue.
    public func setRider(_ config: RiderConfiguration?, unit: Int? = nil) {
        withCabinetChecked(unit) { c, _ in c.setRider(config) }
    }

    // MARK: Inspection

    public func snapshot(unit: Int? = nil) -> CabinetSnapshot {
        withCabinetChecked(unit) { c, s in c.snapshot(speed: s.speed, paused: s.paused) }
    }

    public func commandLog(unit: Int? = nil) -> [ExecutedCommand] {
        withCabinetChecked(unit) { c, _ in c.log }
    }

    /// Input registers of a cabinet's unit (or 2, the meter) as the engine would answer them; nil if unmapped.
    public func inputRegisters(unit: UInt8 = 1, start: Int, count: Int) -> [UInt16]? {
        handle(unit: unit, pdu: ModbusPDU.readInput(start: start, count: count)).flatMap(ModbusPDU.registers)
    }

    /// Writes a command block (FC16 1000–1003) as the gateway would; returns the response PDU.
    @discardableResult
    public func writeCommand(cmd: UInt16, slot: UInt16, seq: UInt16, param: UInt16 = 0, unit: Int? = nil) -> [UInt8]? {
        let target = UInt8(unit ?? units[0])
        return handle(unit: target, pdu: ModbusPDU.writeMultiple(start: CabinetMap.commandBlock, values: [cmd, slot, seq, param]))
    }

    /// A seq that differs from the last accepted one (for technicians' commands).
    func nextSeq(unit: Int? = nil) -> UInt16 {
        withCabinetChecked(unit) { c, _ in (c.lastAcceptedSeq ?? 0) &+ 1 }
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
            unit: Int(unit), serialNumber: config.serialNumber, slotCount: slotCount,
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
                cabinetOverTemperature: cabinetOverTemperatureFault, silent: faults.silent),
            commandLog: log)
    }
}

extension SimulatorConfiguration {
    /// Throws if the configuration is not usable (slots 1…48, serial ≤ 16 ASCII, speed > 0, …).
    public func validate() throws { _ = try validated() }
}
