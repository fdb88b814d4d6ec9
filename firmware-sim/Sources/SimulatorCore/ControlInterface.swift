// The control interface: JSON lines over TCP (one request object per line, one response line),
// and scenarios (files of the same requests, run in order). Both go through `Simulator.control(_:)`.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

public enum ControlCommands {
    /// Every command the control interface understands (field "cmd").
    public static let all: [String] = [
        "ping", "help", "state", "log", "insert", "remove", "open_door", "close_door", "set_battery",
        "set_flags", "reboot", "fault", "clear_faults", "speed", "pause", "resume", "tick", "rider",
        "watchdog", "exec", "sleep", "registers", "cabinets",
    ]
    public static let faultKinds: [String] = [
        "delay", "drop", "exception", "garbage", "crc", "bms_link_lost", "lock_jam", "battery_flags",
        "slot_over_temp", "cabinet_over_temp", "charger_fault", "door_sensor", "dead_slot", "silent",
    ]
}

struct ControlError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

private struct Request {
    let fields: [String: JSONValue]

    func has(_ key: String) -> Bool { fields[key] != nil && fields[key] != .null }

    func int(_ key: String) throws -> Int {
        guard let v = try optionalInt(key) else { throw ControlError("missing integer field \"\(key)\"") }
        return v
    }
    func optionalInt(_ key: String) throws -> Int? {
        guard let v = fields[key], v != .null else { return nil }
        guard let i = v.intValue else { throw ControlError("field \"\(key)\" must be an integer") }
        return i
    }
    func double(_ key: String) throws -> Double {
        guard let v = try optionalDouble(key) else { throw ControlError("missing number field \"\(key)\"") }
        return v
    }
    func optionalDouble(_ key: String) throws -> Double? {
        guard let v = fields[key], v != .null else { return nil }
        guard let d = v.doubleValue else { throw ControlError("field \"\(key)\" must be a number") }
        return d
    }
    func optionalBool(_ key: String) throws -> Bool? {
        guard let v = fields[key], v != .null else { return nil }
        guard let b = v.boolValue else { throw ControlError("field \"\(key)\" must be true or false") }
        return b
    }
    func string(_ key: String) throws -> String {
        guard let v = try optionalString(key) else { throw ControlError("missing string field \"\(key)\"") }
        return v
    }
    func optionalString(_ key: String) throws -> String? {
        guard let v = fields[key], v != .null else { return nil }
        guard let s = v.stringValue else { throw ControlError("field \"\(key)\" must be a string") }
        return s
    }
    func optionalDoubles(_ key: String) throws -> [Double]? {
        guard let v = fields[key], v != .null else { return nil }
        guard let items = v.arrayValue, let values = Optional(items.compactMap(\.doubleValue)), values.count == items.count else {
            throw ControlError("field \"\(key)\" must be an array of numbers")
        }
        return values
    }
    func u16(_ key: String) throws -> UInt16? {
        guard let i = try optionalInt(key) else { return nil }
        guard let v = UInt16(exactly: i) else { throw ControlError("field \"\(key)\" must be 0…65535") }
        return v
    }
}

extension Simulator {
    /// Executes one control request (a JSON object with "cmd") and returns the response object:
    /// `{"ok":true,...}` or `{"ok":false,"error":"…"}`.
    public func control(_ request: JSONValue) -> JSONValue {
        guard let fields = request.objectValue else { return Self.failure("request must be a JSON object") }
        do {
            var out = try controlCommand(Request(fields: fields))
            out["ok"] = .bool(true)
            return .object(out)
        } catch {
            return Self.failure("\(error)")
        }
    }

    /// One control line in, one response line out.
    public func control(line: String) -> String {
        let request: JSONValue
        do { request = try JSONValue.parse(line) } catch { return Self.failure("invalid JSON").jsonText }
        return control(request).jsonText
    }

    static func failure(_ message: String) -> JSONValue {
        .object(["ok": .bool(false), "error": .string(message)])
    }

    private func controlCommand(_ r: Request) throws -> [String: JSONValue] {
        let cmd = try r.string("cmd")
        // The cabinet a request is for: "unit" (its Modbus unit id), default the first cabinet.
        // ping, help, cabinets, speed, pause, resume, tick and sleep are station-wide; for
        // "registers" the unit is the Modbus unit read (2 = the meter).
        let unit = try r.optionalInt("unit")
        if cmd != "registers" { try checkUnit(unit) }
        switch cmd {
        case "ping":
            return ["pong": .bool(true)]
        case "help":
            return ["commands": .array(ControlCommands.all.map(JSONValue.string)),
                    "fault_kinds": .array(ControlCommands.faultKinds.map(JSONValue.string))]
        case "state":
            return ["state": try JSONValue.from(snapshot(unit: unit))]
        case "cabinets":
            return ["cabinets": .array(try units.map { u in
                let s = snapshot(unit: u)
                return .object(["unit": .int(u), "serial_number": .string(s.serialNumber), "slot_count": .int(s.slotCount),
                                "down": .bool(s.down), "silent": .bool(s.faults.silent)])
            })]
        case "log":
            return ["commands": try JSONValue.from(commandLog(unit: unit))]
        case "insert":
            try insertBattery(slot: try r.int("slot"), id: try r.string("id"), family: try r.int("family"),
                              soc: try r.double("soc"), soh: try r.optionalDouble("soh") ?? 100,
                              cycleCount: try r.optionalInt("cycles") ?? r.optionalInt("cycle_count"),
                              temperature: try r.optionalDouble("temperature"), unit: unit)
            return [:]
        case "remove":
            return ["battery": try JSONValue.from(removeBattery(slot: try r.int("slot"), unit: unit))]
        case "open_door":
            try openDoor(slot: try r.int("slot"), force: try r.optionalBool("force") ?? false, unit: unit)
            return [:]
        case "close_door":
            try closeDoor(slot: try r.int("slot"), unit: unit)
            return [:]
        case "set_battery":
            try setBattery(slot: try r.int("slot"), soc: try r.optionalDouble("soc"), soh: try r.optionalDouble("soh"),
                           cycleCount: try r.optionalInt("cycles") ?? r.optionalInt("cycle_count"),
                           temperature: try r.optionalDouble("temperature"),
                           protectionFlags: try r.u16("protection_flags"), warningFlags: try r.u16("warning_flags"),
                           id: try r.optionalString("id"), probeTemperatures: try r.optionalDoubles("probe_temperatures"),
                           unit: unit)
            return [:]
        case "set_flags":
            setFlags(mainsOk: try r.optionalBool("mains_ok"), backupPower: try r.optionalBool("backup_power"),
                     tamper: try r.optionalBool("tamper"), overTemperature: try r.optionalBool("over_temp"),
                     emergencyStop: try r.optionalBool("estop"), unit: unit)
            return ["cabinet_flags": .int(Int(snapshot(unit: unit).cabinetFlags))]
        case "reboot":
            reboot(downSeconds: try r.optionalDouble("down_seconds") ?? 0, unit: unit)
            return [:]
        case "fault":
            try inject(try Self.fault(r), unit: unit)
            return [:]
        case "clear_faults":
            if let slot = try r.optionalInt("slot") { try clearFaults(slot: slot, unit: unit) } else { clearFaults(unit: unit) }
            return [:]
        case "speed":
            if let v = try r.optionalDouble("value") ?? r.optionalDouble("speed") { try setSpeed(v) }
            return ["speed": .double(speed)]
        case "pause":
            pause()
            return [:]
        case "resume":
            resume()
            return [:]
        case "tick":
            tick(seconds: try r.double("seconds"))
            return ["simulated_time": .double(simulatedTime)]
        case "rider":
            let enabled = try r.optionalBool("enabled") ?? true
            if enabled {
                let config = try JSONValue.object(r.fields).decode(RiderConfiguration.self)
                setRider(config, unit: unit)
            } else {
                setRider(nil, unit: unit)
            }
            return ["rider": try JSONValue.from(snapshot(unit: unit).rider)]
        case "watchdog":
            if let t = try r.optionalDouble("timeout") { try setWatchdogTimeout(t, unit: unit) }
            let s = snapshot(unit: unit)
            return ["timeout": .double(s.watchdogTimeout), "watchdog_seconds": .int(Int(s.watchdogSeconds)),
                    "safe_mode": .bool(s.safeMode)]
        case "exec":
            // A cabinet command as the gateway would write it (FC16 to 1000–1003).
            let seq = try r.u16("seq") ?? nextSeq(unit: unit)
            guard let command = try r.u16("command") else { throw ControlError("missing integer field \"command\"") }
            guard let slot = try r.u16("slot") else { throw ControlError("missing integer field \"slot\"") }
            let response = writeCommand(cmd: command, slot: slot, seq: seq, param: try r.u16("param") ?? 0, unit: unit)
            if let code = response.flatMap(ModbusPDU.exceptionCode) {
                throw ControlError("modbus exception \(code)")
            }
            return ["seq": .int(Int(seq))]
        case "registers":
            // Reads registers through the engine (no faults): {"unit":1,"start":0,"count":24,"type":"input"|"holding"}
            let unit = UInt8(clamping: unit ?? units[0])
            let start = try r.int("start"), count = try r.int("count")
            guard (0...0xFFFF).contains(start), (0...0xFFFF).contains(count) else { throw ControlError("start/count out of range") }
            let holding = try r.optionalString("type") == "holding"
            let pdu = holding ? ModbusPDU.readHolding(start: start, count: count) : ModbusPDU.readInput(start: start, count: count)
            guard let response = handle(unit: unit, pdu: pdu) else { throw ControlError("no reply from unit \(unit)") }
            if let code = ModbusPDU.exceptionCode(response) { throw ControlError("modbus exception \(code)") }
            return ["values": .array((ModbusPDU.registers(response) ?? []).map { .int(Int($0)) })]
        case "sleep":
            if let wall = try r.optionalDouble("wall_seconds") {
                sleepWall(wall)
            } else {
                try sleepSimulated(try r.double("seconds"))
            }
            return ["simulated_time": .double(simulatedTime)]
        default:
            throw ControlError("unknown cmd \"\(cmd)\" (try {\"cmd\":\"help\"})")
        }
    }

    private static func fault(_ r: Request) throws -> Fault {
        let kind = try r.string("kind")
        func countOrProbability(_ count: (Int) -> Fault, _ probability: (Double) -> Fault) throws -> Fault {
            if let p = try r.optionalDouble("probability") { return probability(p) }
            return count(try r.optionalInt("count") ?? 1)
        }
        switch kind {
        case "delay": return .responseDelay(milliseconds: try r.int("ms"))
        case "drop": return try countOrProbability({ .dropResponses(count: $0) }, { .dropProbability($0) })
        case "exception":
            let code = UInt8(clamping: try r.optionalInt("code") ?? 4)
            return try countOrProbability({ .exceptionReplies(code: code, count: $0) },
                                          { .exceptionProbability(code: code, probability: $0) })
        case "garbage": return try countOrProbability({ .garbage(count: $0) }, { .garbageProbability($0) })
        case "crc": return try countOrProbability({ .crcErrors(count: $0) }, { .crcErrorProbability($0) })
        case "bms_link_lost": return .bmsLinkLost(slot: try r.int("slot"))
        case "lock_jam": return .lockJam(slot: try r.int("slot"))
        case "battery_flags":
            return .batteryFlags(slot: try r.int("slot"), protection: try r.u16("protection") ?? 0,
                                 warning: try r.u16("warning") ?? 0)
        case "slot_over_temp": return .slotOverTemperature(slot: try r.int("slot"))
        case "cabinet_over_temp": return .cabinetOverTemperature
        case "charger_fault": return .chargerFault(slot: try r.int("slot"))
        case "door_sensor": return .doorSensorFault(slot: try r.int("slot"))
        case "dead_slot": return .deadSlot(slot: try r.int("slot"))
        case "silent": return .silent(try r.optionalBool("enabled") ?? true)
        default:
            throw ControlError("unknown fault kind \"\(kind)\" (one of \(ControlCommands.faultKinds.joined(separator: ", ")))")
        }
    }

    /// Waits until `seconds` of simulated time have passed (never returns early; stops with the simulator).
    func sleepSimulated(_ seconds: Double) throws {
        guard seconds >= 0 else { throw ControlError("seconds must be ≥ 0") }
        let until = simulatedTime + seconds
        while simulatedTime < until - 1e-9 {
            if isStopped { throw ControlError("simulator stopped") }
            usleep(5_000)
        }
    }

    func sleepWall(_ seconds: Double) {
        let until = Date().addingTimeInterval(seconds)
        while Date() < until && !isStopped { usleep(useconds_t(min(50_000, max(1_000, until.timeIntervalSinceNow * 1e6)))) }
    }

    // MARK: Scenarios

    /// Runs the scenario's lines in order on the calling thread; returns the responses.
    /// Blank lines and lines starting with `#` or `//` are skipped; a failing step is reported
    /// through `log` and the scenario goes on.
    @discardableResult
    public func runScenario(lines: [String], log: (String) -> Void = { _ in }) -> [JSONValue] {
        var responses: [JSONValue] = []
        for (n, raw) in lines.enumerated() {
            if isStopped { break }
            let line = raw.trimmingWhitespaces()
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("//") { continue }
            let response: JSONValue
            do { response = control(try JSONValue.parse(line)) } catch { response = Self.failure("invalid JSON") }
            if response["ok"] != .bool(true) {
                log("scenario line \(n + 1): \(response["error"]?.stringValue ?? "failed"): \(line)")
            }
            responses.append(response)
        }
        return responses
    }

    /// Runs a scenario file on a background thread; `log` gets progress and errors.
    public func startScenario(path: String, log: @escaping @Sendable (String) -> Void) throws {
        guard let file = fopen(path, "r") else { throw SimulatorError.io(Socket.errorText("cannot read scenario \(path)")) }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if n > 0 { bytes += chunk[0..<n] }
            if n < chunk.count {
                if ferror(file) != 0 { throw SimulatorError.io(Socket.errorText("cannot read scenario \(path)")) }
                break
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw SimulatorError.io("cannot read scenario \(path): not UTF-8")
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        startThread(name: "sim-scenario") { [self] in
            log("scenario started: \(path)")
            runScenario(lines: lines, log: log)
            log("scenario finished: \(path)")
        }
    }
}

/// The control interface's TCP server.
enum ControlServer {
    static func start(host: String, port: Int, simulator: Simulator) throws -> TCPListener {
        try TCPListener(host: host, port: port, name: "sim-control") { [weak simulator] conn in
            var buffer: [UInt8] = []
            while conn.isAlive {
                switch conn.read() {
                case .closed: return
                case .timeout: continue
                case .data(let bytes): buffer += bytes
                }
                while let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[..<nl], as: UTF8.self)
                    buffer.removeSubrange(...nl)
                    if line.trimmingWhitespacesAndNewlines().isEmpty { continue }
                    guard let simulator else { return }
                    let reply = simulator.control(line: line) + "\n"
                    if !conn.write(Array(reply.utf8)) { return }
                }
                if buffer.count > 1 << 20 {
                    _ = conn.write(Array((Simulator.failure("line too long").jsonText + "\n").utf8))
                    return
                }
            }
        }
    }
}

/// A minimal client of the control interface (used by `station-sim ctl`).
public enum ControlClient {
    /// Sends one request line and returns the answer line (without the newline).
    public static func send(line: String, host: String = "127.0.0.1", port: Int, timeout: Double = 30) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SimulatorError.io(Socket.errorText("socket")) }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(clamping: port).bigEndian
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr.sin_addr) == 1 else {
            throw SimulatorError.invalidArgument("not an IPv4 address: \(host)")
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw SimulatorError.io(Socket.errorText("connect \(host):\(port)")) }
        let request = line.trimmingNewlines() + "\n"
        guard Socket.writeAll(fd, Array(request.utf8), socket: true) else { throw SimulatorError.io(Socket.errorText("send")) }
        var buffer: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) { return String(decoding: buffer[..<nl], as: UTF8.self) }
            guard Socket.waitReadable(fd, timeoutMs: 100) else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { throw SimulatorError.io("connection closed before an answer") }
            buffer += chunk[0..<n]
        }
        throw SimulatorError.io("no answer within \(timeout) s")
    }
}
