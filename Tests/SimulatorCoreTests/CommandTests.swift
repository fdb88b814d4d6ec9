// Commands (FC16 to 1000–1003), their results in 19/20, the watchdog, the clock and reboots.
import Foundation
@testable import SimulatorCore
import Testing

private let ack: [UInt8] = [0x10, 0x03, 0xE8, 0, 4]

@Suite struct CommandTests {
    @Test func resultAppearsAfterTheExecutionTime() throws {
        let sim = pausedSimulator(commandTime: 0.15)
        #expect(sim.command(1, slot: 2, seq: 500) == ack)
        #expect(try sim.lastCommand() == (0, 0))
        #expect(sim.slot(2).locked)
        #expect(try sim.holding(1000, 4) == [1, 2, 500, 0])
        sim.tick(seconds: 0.1)
        #expect(try sim.lastCommand() == (0, 0))
        #expect(sim.snapshot().commandExecuting)
        sim.tick(seconds: 0.1)
        #expect(try sim.lastCommand() == (500, 0))
        #expect(!sim.slot(2).locked)
        #expect(try sim.state(2) == [.doorClosed])
    }

    @Test func sameSeqAgainIsANoOp() throws {
        let sim = pausedSimulator(commandTime: 0.15)
        sim.command(1, slot: 3, seq: 7, param: 60, tickAfter: 0.2)
        #expect(try sim.lastCommand() == (7, 0))
        sim.command(2, slot: 3, seq: 8, tickAfter: 0.2)          // lock it again
        #expect(sim.slot(3).locked)
        // a late retry of seq 8 (say the response was lost) does nothing …
        #expect(sim.command(2, slot: 3, seq: 8, tickAfter: 0.2) == ack)
        // … and neither does writing seq 8 with another command in it
        #expect(sim.command(1, slot: 3, seq: 8, tickAfter: 0.2) == ack)
        #expect(sim.slot(3).locked)
        #expect(sim.commandLog().map(\.seq) == [7, 8])
        // a retry while the command is still executing is acknowledged, not busy, and runs once
        #expect(sim.command(1, slot: 3, seq: 9) == ack)
        #expect(sim.command(1, slot: 3, seq: 9) == ack)
        sim.tick(seconds: 0.2)
        #expect(sim.command(1, slot: 3, seq: 9, tickAfter: 0.2) == ack)
        let unlocks = sim.commandLog().filter { $0.cmd == 1 && $0.slot == 3 }
        #expect(unlocks.map(\.seq) == [7, 9])
        #expect(!sim.slot(3).locked)
    }

    @Test func seqZeroWorksAsTheFirstCommandAfterBoot() throws {
        let sim = pausedSimulator()
        sim.command(1, slot: 1, seq: 0)
        #expect(sim.commandLog().count == 1)
        #expect(!sim.slot(1).locked)
    }

    @Test func everyResultCode() throws {
        let sim = pausedSimulator(slots: 4)
        try sim.insertBattery(slot: 1, id: "R1", family: 1, soc: 50, soh: 100)
        var seq: UInt16 = 100
        func run(_ cmd: UInt16, _ slot: UInt16, _ param: UInt16 = 0) throws -> UInt16 {
            seq += 1
            #expect(sim.command(cmd, slot: slot, seq: seq, param: param) == ack)
            let last = try sim.lastCommand()
            #expect(last.seq == seq)
            return last.result
        }
        // 0 ok for each command
        #expect(try run(1, 1) == 0)
        #expect(try run(2, 1) == 0)
        #expect(try run(4, 1) == 0)
        sim.tick(seconds: 5)
        #expect(!sim.slot(1).charging && !sim.slot(1).chargeEnabled)
        #expect(try run(3, 1) == 0)
        sim.tick(seconds: 5)
        #expect(sim.slot(1).charging)
        #expect(try run(5, 2) == 0)
        #expect(try sim.state(2).contains(.outOfService))
        // 2 invalid slot
        #expect(try run(1, 0) == 2)
        #expect(try run(1, 5) == 2)
        #expect(try run(2, 999) == 2)
        // 5 refused: out of service (unlock and charging on), then back in service
        #expect(try run(1, 2) == 5)
        #expect(try run(3, 2) == 5)
        #expect(try run(6, 2) == 0)
        #expect(!(try sim.state(2).contains(.outOfService)))
        #expect(try run(1, 2) == 0)
        // 4 door not closed
        try sim.openDoor(slot: 2)
        #expect(try run(2, 2) == 4)
        try sim.closeDoor(slot: 2)
        // 3 lock jammed (fault 1)
        try sim.inject(.lockJam(slot: 3))
        #expect(sim.slot(3).faultCode == 0)       // a jam is found when the lock is driven
        #expect(try run(1, 3) == 3)
        #expect(try sim.slotBlock(3)[1] == 1)
        #expect(try sim.state(3).contains(.slotFault))
        #expect(try run(2, 3) == 3)
        // 5 refused under emergency stop
        sim.setFlags(emergencyStop: true)
        #expect(try run(1, 4) == 5)
        sim.setFlags(emergencyStop: false)
        #expect(try run(1, 4) == 0)
        // 6 unknown command
        #expect(try run(0, 1) == 6)
        #expect(try run(7, 1) == 6)
        #expect(try run(0xFFFF, 1) == 6)
        // the log holds every executed command with its result
        let log = sim.commandLog()
        #expect(log.map(\.result) == [0, 0, 0, 0, 0, 2, 2, 2, 5, 5, 0, 0, 4, 3, 3, 5, 0, 6, 6, 6])
        #expect(log.map(\.seq) == Array(101...120))
        let last = try #require(log.last)
        #expect(last.seq == 120 && last.cmd == 0xFFFF && last.slot == 1 && last.result == 6 && last.uptime == 10)
    }

    @Test func busyAsResultCode1() throws {
        let sim = pausedSimulator(commandTime: 0.15, busyReply: .result)
        #expect(sim.command(1, slot: 1, seq: 1) == ack)
        #expect(sim.command(1, slot: 2, seq: 2) == ack)
        #expect(try sim.lastCommand() == (2, 1))            // rejected at once: busy
        sim.tick(seconds: 0.2)
        #expect(try sim.lastCommand() == (1, 0))            // the first one completes
        #expect(sim.slot(2).locked)
        // seq 2 was never executed, so retrying it now executes it
        sim.command(1, slot: 2, seq: 2, tickAfter: 0.2)
        #expect(try sim.lastCommand() == (2, 0))
        #expect(!sim.slot(2).locked)
        #expect(sim.commandLog().map(\.result) == [1, 0, 0])
    }

    @Test func unlockRelocksAfterParamSecondsIfTheDoorIsNeverOpened() throws {
        let sim = pausedSimulator()
        sim.command(1, slot: 1, seq: 1, param: 10)
        sim.tick(seconds: 9.5)
        #expect(!sim.slot(1).locked)
        sim.tick(seconds: 1)
        #expect(sim.slot(1).locked)
        // param 0 = 30 s
        sim.command(1, slot: 2, seq: 2, param: 0)
        sim.tick(seconds: 29.5)
        #expect(!sim.slot(2).locked)
        sim.tick(seconds: 1)
        #expect(sim.slot(2).locked)
        #expect(try sim.summary(2) >> 8 == 2)               // unlocked, locked
        #expect(throws: SimulatorError.doorLocked(2)) { try sim.openDoor(slot: 2) }
    }

    @Test func anOpenedUnlockedDoorRelocksWhenClosed() throws {
        let sim = pausedSimulator()
        sim.command(1, slot: 1, seq: 1, param: 5)
        try sim.openDoor(slot: 1)
        sim.tick(seconds: 600)                               // the timer no longer applies
        #expect(!sim.slot(1).locked && !sim.slot(1).doorClosed)
        try sim.closeDoor(slot: 1)
        #expect(sim.slot(1).locked && sim.slot(1).doorClosed)
        #expect(sim.slot(1).doorOpenCount == 1)
        #expect(try sim.summary(1) >> 8 == 4)               // unlocked, opened, closed, locked
    }

    @Test func forcedDoorOpensWhileLocked() throws {
        let sim = pausedSimulator()
        #expect(throws: SimulatorError.doorLocked(1)) { try sim.openDoor(slot: 1) }
        try sim.openDoor(slot: 1, force: true)
        #expect(try sim.state(1) == [.locked])               // open but locked: forced
        #expect(throws: SimulatorError.doorAlreadyOpen(1)) { try sim.openDoor(slot: 1, force: true) }
        try sim.closeDoor(slot: 1)
        #expect(try sim.state(1) == [.doorClosed, .locked])
    }
}

@Suite struct WatchdogTests {
    @Test func safeModeAfter30sWithoutWatchdogAndExitOnWrite() throws {
        let sim = pausedSimulator(watchdog: 30)
        try sim.insertBattery(slot: 1, id: "W1", family: 2, soc: 30, soh: 100)
        #expect(sim.handle(unit: 1, pdu: ModbusPDU.writeSingle(address: 1020, value: 11)) == [0x06, 0x03, 0xFC, 0, 11])
        #expect(try sim.holding(1020) == [11])
        sim.command(1, slot: 2, seq: 1, param: 600)          // an unlocked slot …
        sim.command(1, slot: 3, seq: 10, param: 600)
        try sim.openDoor(slot: 3)                            // … and an unlocked open door when safe mode starts
        sim.tick(seconds: 29.5)
        #expect(try sim.input(21, 2) == [29, 0])
        sim.tick(seconds: 1)
        #expect(try sim.input(21, 2) == [30, 1])
        #expect(sim.snapshot().safeMode)
        #expect(sim.slot(2).locked)                          // every slot locks
        #expect(sim.slot(1).charging)                        // charging continues
        sim.command(1, slot: 4, seq: 2)
        #expect(try sim.lastCommand() == (2, 5))             // unlock refused
        #expect(!sim.slot(3).locked)
        try sim.closeDoor(slot: 3)
        #expect(sim.slot(3).locked)                          // the open door locks once closed
        // the same value again is no watchdog write
        #expect(sim.handle(unit: 1, pdu: ModbusPDU.writeSingle(address: 1020, value: 11)) != nil)
        #expect(sim.snapshot().safeMode)
        // a changed value (here with FC16) ends safe mode and restarts the count
        #expect(sim.handle(unit: 1, pdu: ModbusPDU.writeMultiple(start: 1020, values: [12])) == [0x10, 0x03, 0xFC, 0, 1])
        #expect(try sim.input(21, 2) == [0, 0])
        sim.command(1, slot: 4, seq: 3)
        #expect(try sim.lastCommand() == (3, 0))
        sim.tick(seconds: 10)
        #expect(try sim.input(21) == [10])
    }

    @Test func watchdogRunsFromBoot() throws {
        let sim = pausedSimulator(watchdog: 30)
        sim.tick(seconds: 31)
        #expect(try sim.input(22) == [1])
    }
}

@Suite struct ClockAndRebootTests {
    @Test func clockWriteAndReadBack() throws {
        let sim = pausedSimulator()
        #expect(try sim.holding(1010, 2) == RegisterCodec.u32(1_750_000_000))
        let value: UInt32 = 1_800_000_123
        #expect(sim.handle(unit: 1, pdu: ModbusPDU.writeMultiple(start: 1010, values: RegisterCodec.u32(value))) == [0x10, 0x03, 0xF2, 0, 2])
        #expect(try sim.holding(1010, 2) == RegisterCodec.u32(value))
        sim.tick(seconds: 100)
        #expect(try sim.holding(1010, 2) == RegisterCodec.u32(value + 100))
        sim.reboot()                                          // the RTC survives a reboot
        #expect(try sim.holding(1010, 2) == RegisterCodec.u32(value + 100))
    }

    @Test func rebootResetsRAMButNotThePhysicalWorld() throws {
        let sim = pausedSimulator()
        try sim.insertBattery(slot: 1, id: "KEEP", family: 1, soc: 40, soh: 100)
        _ = sim.handle(unit: 1, pdu: ModbusPDU.writeSingle(address: 1020, value: 5))
        sim.command(1, slot: 2, seq: 77, param: 600)
        try sim.openDoor(slot: 2)
        sim.command(5, slot: 3, seq: 78)
        sim.tick(seconds: 1000)
        #expect(try sim.input(14, 3) == [0, 1000, 1000])
        #expect(try sim.summary(1) >> 8 > 0)
        #expect(try sim.lastCommand() == (78, 0))

        sim.reboot()
        #expect(try sim.input(14, 3) == [0, 0, 0])          // uptime, heartbeat
        #expect(try sim.lastCommand() == (0, 0))
        #expect(try sim.input(21, 2) == [0, 0])
        #expect(try sim.holding(1000, 4) == [0, 0, 0, 0])
        #expect(try sim.holding(1020) == [0])
        for slot in 1...6 { #expect(try sim.summary(slot) >> 8 == 0) }
        // batteries, doors, out-of-service and counters persist
        let b = try sim.slotBlock(1)
        #expect(RegisterCodec.string(b[2...9]) == "KEEP")
        #expect(b[26] == 1)
        #expect(!sim.slot(2).doorClosed && sim.slot(2).doorOpenCount == 1)
        #expect(sim.slot(3).outOfService)
        // seq 77 is new again after a reboot
        sim.tick(seconds: 5)
        #expect(try sim.input(14, 2) == [0, 5])
        sim.command(6, slot: 3, seq: 78)
        #expect(try sim.lastCommand() == (78, 0))
        #expect(sim.commandLog().count == 3)                // the test log keeps history across reboots
    }

    @Test func nothingAnswersWhileDown() throws {
        let sim = pausedSimulator()
        let request = ModbusPDU.readInput(start: 0, count: 1)
        sim.reboot(downSeconds: 10)
        #expect(sim.respond(unit: 1, pdu: request, transport: .tcp) == .silent)
        #expect(sim.respond(unit: 2, pdu: request, transport: .rtu) == .silent)
        #expect(sim.snapshot().down)
        sim.tick(seconds: 9)
        #expect(sim.respond(unit: 1, pdu: request, transport: .tcp) == .silent)
        sim.tick(seconds: 1.5)
        #expect(sim.respond(unit: 1, pdu: request, transport: .tcp).pdu == [0x04, 2, 0x4F, 0x56])
        #expect(try sim.input(14, 2) == [0, 0])             // uptime counts from the end of the down time
        sim.tick(seconds: 3)
        #expect(try sim.input(14, 2) == [0, 3])
    }
}
