// Public configuration and value types of the simulator.

/// How the cabinet is filled at start-up.
public enum FillMode: String, Sendable, Codable, CaseIterable {
    /// Families 1–3 at mixed SoC (every fourth one full, the rest charging), the last two slots empty.
    case mixed
    /// No batteries.
    case empty
    /// A full battery in every slot.
    case full
}

/// What a command write gets while another command is still executing.
public enum BusyReply: String, Sendable, Codable, CaseIterable {
    /// Modbus exception 06 (slave device busy); nothing is stored. The default.
    case exception
    /// The write is acknowledged and the command is rejected with result 1 (busy) in registers 19/20.
    case result
}

/// What a Modbus TCP request for a unit id nobody answers gets (no such cabinet, a cabinet made
/// silent with `Fault.silent`, a rebooting cabinet). Over RTU such a request always gets silence.
public enum AbsentUnitReply: String, Sendable, Codable, CaseIterable {
    /// No reply at all (the client times out), as before several cabinets existed. The default.
    case silent
    /// Exception 0x0B (gateway target device failed to respond), what a TCP-to-RTU gateway answers.
    case exception
}

/// One cabinet controller of a station: its Modbus unit id, slot count and serial number.
public struct CabinetSetup: Sendable, Equatable, Codable {
    /// Modbus unit id, 1 or 3…247 (2 is the energy meter).
    public var unit: Int
    /// 1…48.
    public var slots: Int
    /// ≤ 16 printable ASCII characters.
    public var serialNumber: String
    /// How this cabinet starts; nil = `SimulatorConfiguration.fill`.
    public var fill: FillMode?
    public init(unit: Int, slots: Int, serialNumber: String, fill: FillMode? = nil) {
        self.unit = unit; self.slots = slots; self.serialNumber = serialNumber; self.fill = fill
    }

    /// The serial of the cabinet at `unit` derived from a base serial: its trailing digits replaced
    /// by the unit id, zero-padded to the same width (SIMCAB-000001 → SIMCAB-000003); without
    /// trailing digits, "-<unit>" is appended (cut to 16 characters).
    public static func derivedSerial(_ base: String, unit: Int) -> String {
        let digits = base.reversed().prefix { $0.isASCII && $0.isNumber }.count
        if digits > 0 {
            let prefix = String(base.dropLast(digits))
            let number = String(unit)
            return String((prefix + String(repeating: "0", count: max(0, digits - number.count)) + number).prefix(16))
        }
        return String((base + "-\(unit)").prefix(16))
    }

    /// The cabinets for `units` (in order): `slots` one count for all or one per unit; the first
    /// cabinet gets `serialNumber`, the others a serial derived from it (`derivedSerial`).
    /// `fills`: empty (the configuration's fill for all), one for all, or one per unit.
    public static func station(units: [Int], slots: [Int], serialNumber: String = "SIMCAB-000001",
                               fills: [FillMode] = []) throws -> [CabinetSetup] {
        guard !units.isEmpty else { throw SimulatorError.invalidArgument("at least one unit id") }
        guard slots.count == 1 || slots.count == units.count else {
            throw SimulatorError.invalidArgument("give one slot count for all cabinets or one per unit (\(units.count))")
        }
        guard fills.count <= 1 || fills.count == units.count else {
            throw SimulatorError.invalidArgument("give one fill for all cabinets or one per unit (\(units.count))")
        }
        return units.enumerated().map { k, unit in
            CabinetSetup(unit: unit, slots: slots.count == 1 ? slots[0] : slots[k],
                         serialNumber: k == 0 ? serialNumber : derivedSerial(serialNumber, unit: unit),
                         fill: fills.isEmpty ? nil : (fills.count == 1 ? fills[0] : fills[k]))
        }
    }
}

public struct SimulatorConfiguration: Sendable {
    /// 1…48.
    public var slots: Int
    /// Cabinet serial, ≤ 16 ASCII characters.
    public var serialNumber: String
    public var seed: UInt64
    /// Simulated seconds per wall second for the background ticker.
    public var speed: Double
    public var fill: FillMode
    /// Whether the background ticker runs from the start; `false` for deterministic tests that call `tick(seconds:)`.
    public var autoTick: Bool
    /// Wall seconds between two ticks of the background ticker.
    public var tickInterval: Double
    /// Simulated seconds a command takes from its write to its result (0 = at once, within the write).
    public var commandExecutionTime: Double
    /// Simulated seconds without a watchdog write before safe mode; 0 disables the watchdog.
    public var watchdogTimeout: Double
    public var busyReply: BusyReply
    /// Ambient temperature, °C: cabinet and batteries relax toward it.
    public var ambientTemperature: Double
    /// Controller clock at start-up (unix seconds); nil = the host's clock.
    public var clock: UInt32?
    /// Rider mode from the start (nil = off).
    public var rider: RiderConfiguration?
    /// Executed commands kept in the command log (oldest dropped first).
    public var commandLogLimit: Int
    /// Several cabinet controllers in one simulator, in the station's order (the first one's
    /// transport faults and reboots also reach the meter, unit 2). Empty = one cabinet at unit 1
    /// with `slots` and `serialNumber` (as before several cabinets existed).
    public var cabinets: [CabinetSetup] = []
    /// What Modbus TCP answers for a unit nobody serves (RTU: always silence).
    public var absentUnitReply: AbsentUnitReply = .silent

    /// The cabinets actually simulated (`cabinets`, or the one cabinet of `slots`/`serialNumber`).
    public var resolvedCabinets: [CabinetSetup] {
        cabinets.isEmpty ? [CabinetSetup(unit: Int(CabinetMap.cabinetUnit), slots: slots, serialNumber: serialNumber)] : cabinets
    }

    public init(slots: Int = 12, serialNumber: String = "SIMCAB-000001", seed: UInt64 = 1, speed: Double = 1,
                fill: FillMode = .mixed, autoTick: Bool = true, tickInterval: Double = 0.1,
                commandExecutionTime: Double = 0.15, watchdogTimeout: Double = 30,
                busyReply: BusyReply = .exception, ambientTemperature: Double = 25, clock: UInt32? = nil,
                rider: RiderConfiguration? = nil, commandLogLimit: Int = 10_000) {
        self.slots = slots
        self.serialNumber = serialNumber
        self.seed = seed
        self.speed = speed
        self.fill = fill
        self.autoTick = autoTick
        self.tickInterval = tickInterval
        self.commandExecutionTime = commandExecutionTime
        self.watchdogTimeout = watchdogTimeout
        self.busyReply = busyReply
        self.ambientTemperature = ambientTemperature
        self.clock = clock
        self.rider = rider
        self.commandLogLimit = commandLogLimit
    }

    func validated() throws -> SimulatorConfiguration {
        guard (1...CabinetMap.maxSlots).contains(slots) else {
            throw SimulatorError.invalidArgument("slots must be 1…48, got \(slots)")
        }
        guard isValidASCII(serialNumber, max: 16) else {
            throw SimulatorError.invalidArgument("serial number must be 1–16 printable ASCII characters")
        }
        guard speed > 0, speed.isFinite else { throw SimulatorError.invalidArgument("speed must be > 0") }
        guard tickInterval > 0 else { throw SimulatorError.invalidArgument("tick interval must be > 0") }
        guard commandExecutionTime >= 0, watchdogTimeout >= 0 else {
            throw SimulatorError.invalidArgument("times must be ≥ 0")
        }
        var seen = Set<Int>()
        for c in cabinets {
            guard c.unit == 1 || (3...247).contains(c.unit) else {
                throw SimulatorError.invalidArgument("unit ids must be 1 or 3…247 (2 is the meter), got \(c.unit)")
            }
            guard seen.insert(c.unit).inserted else { throw SimulatorError.invalidArgument("unit \(c.unit) given twice") }
            guard (1...CabinetMap.maxSlots).contains(c.slots) else {
                throw SimulatorError.invalidArgument("slots must be 1…48, got \(c.slots) (unit \(c.unit))")
            }
            guard isValidASCII(c.serialNumber, max: 16) else {
                throw SimulatorError.invalidArgument("serial number must be 1–16 printable ASCII characters (unit \(c.unit))")
            }
        }
        return self
    }
}

func isValidASCII(_ s: String, max: Int) -> Bool {
    let bytes = Array(s.utf8)
    return !bytes.isEmpty && bytes.count <= max && bytes.allSatisfy { (0x20...0x7E).contains($0) }
}

public enum SimulatorError: Error, CustomStringConvertible, Equatable, Sendable {
    case invalidSlot(Int)
    case slotOccupied(Int)
    case slotEmpty(Int)
    case doorLocked(Int)
    case doorAlreadyOpen(Int)
    case doorAlreadyClosed(Int)
    case invalidArgument(String)
    case io(String)

    public var description: String {
        switch self {
        case .invalidSlot(let s): return "invalid slot \(s)"
        case .slotOccupied(let s): return "slot \(s) already holds a battery"
        case .slotEmpty(let s): return "slot \(s) holds no battery"
        case .doorLocked(let s): return "door of slot \(s) is locked (use force to model a forced door)"
        case .doorAlreadyOpen(let s): return "door of slot \(s) is already open"
        case .doorAlreadyClosed(let s): return "door of slot \(s) is already closed"
        case .invalidArgument(let m): return m
        case .io(let m): return m
        }
    }
}

// MARK: - Faults

/// A fault to inject (`Simulator.inject(_:)`); `Simulator.clearFaults()` clears all of them.
public enum Fault: Sendable, Equatable {
    /// Every response is sent this many wall milliseconds late (0 = no delay).
    case responseDelay(milliseconds: Int)
    /// The next `count` requests are processed but their responses are not sent.
    case dropResponses(count: Int)
    /// Each response is dropped with this probability (the request is still processed).
    case dropProbability(Double)
    /// The next `count` requests are not processed and answer this exception code.
    case exceptionReplies(code: UInt8, count: Int)
    /// Each request answers this exception code with this probability (and is then not processed).
    case exceptionProbability(code: UInt8, probability: Double)
    /// The next `count` responses are replaced by random bytes (RTU and TCP).
    case garbage(count: Int)
    case garbageProbability(Double)
    /// The next `count` RTU responses carry a wrong CRC (no effect on TCP).
    case crcErrors(count: Int)
    case crcErrorProbability(Double)
    /// The slot's BMS stops talking: state bit 6 clear, fault 5, BMS fields zero, no charging.
    case bmsLinkLost(slot: Int)
    /// The slot's lock no longer moves: unlock/lock answer result 3 and set fault 1.
    case lockJam(slot: Int)
    /// Protection and warning flags on the slot's battery (protection stops charging).
    case batteryFlags(slot: Int, protection: UInt16, warning: UInt16)
    /// The slot overheats: fault 4, the battery heats toward 62 °C, no charging.
    case slotOverTemperature(slot: Int)
    /// The cabinet overheats: flag 3, cabinet temperature toward 65 °C, no charging.
    case cabinetOverTemperature
    /// The slot's charger fails: fault 3, no charging.
    case chargerFault(slot: Int)
    /// The slot's door sensor fails: fault 2.
    case doorSensorFault(slot: Int)
    /// The slot's electronics stop answering: any read covering its slot block or cell block answers
    /// exception 04 (server device failure); the rest of the cabinet answers as usual.
    case deadSlot(slot: Int)
    /// The controller stops answering on Modbus altogether (true) or answers again (false), as a
    /// powered-off controller on a shared bus; the cabinet itself keeps working. Not the meter.
    case silent(Bool)
}

/// Faults applied per request by the transports.
struct TransportFaults: Sendable, Equatable {
    var delayMilliseconds = 0
    var dropCount = 0
    var dropProbability = 0.0
    var exceptionCode: UInt8 = ModbusException.serverDeviceFailure.rawValue
    var exceptionCount = 0
    var exceptionProbability = 0.0
    var garbageCount = 0
    var garbageProbability = 0.0
    var crcCount = 0
    var crcProbability = 0.0
    /// `Fault.silent`: no answer at all on Modbus.
    var silent = false
}

public enum TransportKind: String, Sendable { case tcp, rtu }

/// What a transport does with one request.
public struct ResponsePlan: Sendable, Equatable {
    public enum Corruption: Sendable, Equatable {
        case none
        /// Send these bytes instead of the response frame.
        case garbage([UInt8])
        /// Send the RTU frame with its CRC inverted.
        case badCRC
    }
    /// The response PDU; nil = send nothing.
    public var pdu: [UInt8]?
    public var delayMilliseconds: Int
    public var corruption: Corruption
    public static let silent = ResponsePlan(pdu: nil, delayMilliseconds: 0, corruption: .none)
}

// MARK: - Rider

public enum RiderBehavior: String, Sendable, Codable, CaseIterable {
    /// Empty slot: open, insert, close. Full slot: open, take, close.
    case normal
    /// Only returns batteries into empty slots; leaves full slots alone (opens and closes the door).
    case returnOnly = "return_only"
    /// Only takes batteries; leaves empty slots empty.
    case takeOnly = "take_only"
    /// Never opens the door.
    case ignore
    /// Like normal but never closes the door.
    case noClose = "no_close"
}

/// A battery the rider brings back.
public struct RiderBattery: Sendable, Codable, Equatable {
    public var id: String
    public var family: Int
    public var soc: Double
    public var soh: Double?
    public init(id: String, family: Int, soc: Double, soh: Double? = nil) {
        self.id = id; self.family = family; self.soc = soc; self.soh = soh
    }
}

/// A simulated rider answering unlocks. Times are simulated seconds.
public struct RiderConfiguration: Sendable, Codable, Equatable {
    public var behavior: RiderBehavior
    /// From the unlock result to the door opening.
    public var delay: Double
    /// Between opening, acting and closing.
    public var stepDelay: Double
    /// Batteries returned first, in order.
    public var returns: [RiderBattery]
    /// Generated batteries (when the queue and the pocket are empty): id prefix + counter, family, SoC.
    public var idPrefix: String
    public var family: Int
    public var soc: Double
    /// A battery from the pocket comes back at most at this SoC (as if ridden); nil keeps its SoC.
    public var pocketReturnSoc: Double?

    public init(behavior: RiderBehavior = .normal, delay: Double = 2, stepDelay: Double = 1,
                returns: [RiderBattery] = [], idPrefix: String = "RIDER-", family: Int = 2, soc: Double = 15,
                pocketReturnSoc: Double? = 20) {
        self.behavior = behavior; self.delay = delay; self.stepDelay = stepDelay; self.returns = returns
        self.idPrefix = idPrefix; self.family = family; self.soc = soc; self.pocketReturnSoc = pocketReturnSoc
    }

    enum CodingKeys: String, CodingKey {
        case behavior, delay, stepDelay = "step_delay", returns, idPrefix = "id_prefix", family, soc
        case pocketReturnSoc = "pocket_return_soc"
    }

    public init(from decoder: any Decoder) throws {
        let d = RiderConfiguration()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        behavior = try c.decodeIfPresent(RiderBehavior.self, forKey: .behavior) ?? d.behavior
        delay = try c.decodeIfPresent(Double.self, forKey: .delay) ?? d.delay
        stepDelay = try c.decodeIfPresent(Double.self, forKey: .stepDelay) ?? d.stepDelay
        returns = try c.decodeIfPresent([RiderBattery].self, forKey: .returns) ?? d.returns
        idPrefix = try c.decodeIfPresent(String.self, forKey: .idPrefix) ?? d.idPrefix
        family = try c.decodeIfPresent(Int.self, forKey: .family) ?? d.family
        soc = try c.decodeIfPresent(Double.self, forKey: .soc) ?? d.soc
        pocketReturnSoc = c.contains(.pocketReturnSoc)
            ? try c.decodeIfPresent(Double.self, forKey: .pocketReturnSoc) : d.pocketReturnSoc
    }
}

// MARK: - Snapshots

/// One executed command (the command log).
public struct ExecutedCommand: Sendable, Codable, Equatable {
    public var seq: UInt16
    public var cmd: UInt16
    public var slot: UInt16
    public var param: UInt16
    public var result: UInt16
    /// Simulated time of execution, seconds since the simulator started.
    public var time: Double
    public var uptime: UInt32
}

public struct BatterySnapshot: Sendable, Codable, Equatable {
    public var id: String
    public var family: Int
    public var familyName: String
    public var soc: Double
    public var soh: Double
    public var cycleCount: Int
    public var temperature: Double
    public var tempMax: Double
    public var tempMin: Double
    public var packVoltage: Double
    public var packCurrent: Double
    public var fullCapacityAh: Double
    public var remainingCapacityAh: Double
    public var protectionFlags: UInt16
    public var warningFlags: UInt16
    public var cellVoltagesMv: [Int]
    public var probeTemperatures: [Double]
}

public struct SlotSnapshot: Sendable, Codable, Equatable {
    public var slot: Int
    /// The state bits as in the slot block +0.
    public var state: UInt8
    public var batteryPresent: Bool
    public var doorClosed: Bool
    public var locked: Bool
    public var charging: Bool
    public var chargeComplete: Bool
    public var slotFault: Bool
    public var bmsLinkOk: Bool
    public var outOfService: Bool
    public var faultCode: UInt16
    public var changeCounter: UInt8
    public var doorOpenCount: UInt16
    public var insertCount: UInt16
    /// Charger enabled (commands 3/4; a newly inserted battery enables it).
    public var chargeEnabled: Bool
    public var lockJammed: Bool
    /// Simulated seconds until an unopened unlocked door re-locks.
    public var relockIn: Double?
    /// The battery in the slot, as its BMS knows it (also when the BMS link is lost).
    public var battery: BatterySnapshot?
}

public struct MeterSnapshot: Sendable, Codable, Equatable {
    public var importEnergyKwh: Double
    public var voltage: Double
    public var current: Double
    public var activePower: Double
    public var frequency: Double
}

public struct RiderSnapshot: Sendable, Codable, Equatable {
    public var enabled: Bool
    public var configuration: RiderConfiguration?
    public var pocket: [BatterySnapshot]
    public var returnQueue: [RiderBattery]
    public var unlocksSeen: Int
    public var unlocksIgnored: Int
    public var doorsOpened: Int
    public var doorsClosed: Int
    public var batteriesTaken: Int
    public var batteriesReturned: Int
    /// Unlocks the rider could not follow (door re-locked or closed before the rider got there).
    public var missed: Int
    public var pendingActions: Int
}

public struct FaultsSnapshot: Sendable, Codable, Equatable {
    public var responseDelayMs: Int
    public var dropCount: Int
    public var dropProbability: Double
    public var exceptionCode: UInt8
    public var exceptionCount: Int
    public var exceptionProbability: Double
    public var garbageCount: Int
    public var garbageProbability: Double
    public var crcCount: Int
    public var crcProbability: Double
    public var cabinetOverTemperature: Bool
    /// `Fault.silent`: the controller answers nothing on Modbus.
    public var silent: Bool = false
}

/// Everything about the cabinet, for tests and the control interface (`state`).
public struct CabinetSnapshot: Sendable, Codable, Equatable {
    /// The cabinet's Modbus unit id.
    public var unit: Int
    public var serialNumber: String
    public var slotCount: Int
    public var firmwareVersion: String
    /// Simulated seconds since the simulator started.
    public var simulatedTime: Double
    public var uptime: UInt32
    public var heartbeat: UInt16
    public var cabinetFlags: UInt16
    public var mainsOk: Bool
    public var backupPower: Bool
    public var tamper: Bool
    public var overTemperature: Bool
    public var emergencyStop: Bool
    public var cabinetTemperature: Double
    public var lastCommandSeq: UInt16
    public var lastCommandResult: UInt16
    public var commandExecuting: Bool
    public var watchdogSeconds: UInt16
    public var watchdogTimeout: Double
    public var safeMode: Bool
    public var clock: UInt32
    public var speed: Double
    public var paused: Bool
    /// The controller is rebooting and answers nothing.
    public var down: Bool
    public var slots: [SlotSnapshot]
    public var meter: MeterSnapshot
    public var rider: RiderSnapshot
    public var faults: FaultsSnapshot
    public var commandLog: [ExecutedCommand]
}
