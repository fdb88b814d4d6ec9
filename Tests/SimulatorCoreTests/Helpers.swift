// Shared helpers of the simulator tests: a paused simulator, register reads through the engine.
import Foundation
@testable import SimulatorCore
import Testing

/// A simulator whose time moves only with `tick(seconds:)`.
func pausedSimulator(slots: Int = 6, fill: FillMode = .empty, seed: UInt64 = 42,
                     commandTime: Double = 0, watchdog: Double = 0, busyReply: BusyReply = .exception,
                     ambient: Double = 25, serial: String = "SIMCAB-TEST-0001",
                     rider: RiderConfiguration? = nil) -> Simulator {
    Simulator(configuration: SimulatorConfiguration(
        slots: slots, serialNumber: serial, seed: seed, fill: fill, autoTick: false,
        commandExecutionTime: commandTime, watchdogTimeout: watchdog, busyReply: busyReply,
        ambientTemperature: ambient, clock: 1_750_000_000, rider: rider))
}

struct EngineError: Error, CustomStringConvertible {
    let description: String
}

extension Simulator {
    /// Input registers through the engine; fails the test on an exception.
    func input(_ start: Int, _ count: Int = 1, unit: UInt8 = 1) throws -> [UInt16] {
        let response = handle(unit: unit, pdu: ModbusPDU.readInput(start: start, count: count))
        guard let response, let regs = ModbusPDU.registers(response) else {
            throw EngineError(description: "read input \(start)+\(count): \(String(describing: response))")
        }
        return regs
    }

    func holding(_ start: Int, _ count: Int = 1) throws -> [UInt16] {
        let response = handle(unit: 1, pdu: ModbusPDU.readHolding(start: start, count: count))
        guard let response, let regs = ModbusPDU.registers(response) else {
            throw EngineError(description: "read holding \(start)+\(count): \(String(describing: response))")
        }
        return regs
    }

    /// The exception code a request answers (nil if it did not answer an exception).
    func exception(_ pdu: [UInt8], unit: UInt8 = 1) -> UInt8? {
        handle(unit: unit, pdu: pdu).flatMap(ModbusPDU.exceptionCode)
    }

    func slotBlock(_ slot: Int) throws -> [UInt16] { try input(CabinetMap.slotBlockAddress(slot: slot), 32) }
    func cellBlock(_ slot: Int) throws -> [UInt16] { try input(CabinetMap.cellDetailAddress(slot: slot), 32) }
    func state(_ slot: Int) throws -> SlotStateBits { SlotStateBits(rawValue: UInt8(try slotBlock(slot)[0])) }
    func summary(_ slot: Int) throws -> UInt16 { try input(CabinetMap.summaryAddress(slot: slot))[0] }

    /// Writes a command (FC16) and, if `tickAfter`, lets it execute; returns the write's response.
    @discardableResult
    func command(_ cmd: UInt16, slot: UInt16, seq: UInt16, param: UInt16 = 0, tickAfter: Double = 0) -> [UInt8]? {
        let r = writeCommand(cmd: cmd, slot: slot, seq: seq, param: param)
        if tickAfter > 0 { tick(seconds: tickAfter) }
        return r
    }

    /// Registers 19/20: (last_cmd_seq, last_cmd_result).
    func lastCommand() throws -> (seq: UInt16, result: UInt16) {
        let r = try input(19, 2)
        return (r[0], r[1])
    }

    func slot(_ n: Int) -> SlotSnapshot { snapshot().slots[n - 1] }
}

/// Where this package lives (tests run scripts from it).
let packageRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
