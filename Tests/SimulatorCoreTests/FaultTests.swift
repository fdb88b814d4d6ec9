// Every fault kind: transport faults through `respond`, slot and cabinet faults through the map.
import Foundation
@testable import SimulatorCore
import Testing

private let readDevice = ModbusPDU.readInput(start: 0, count: 1)
private let magicReply: [UInt8] = [0x04, 2, 0x4F, 0x56]

@Suite struct TransportFaultTests {
    @Test func responseDelay() throws {
        let sim = pausedSimulator()
        try sim.inject(.responseDelay(milliseconds: 250))
        let plan = sim.respond(unit: 1, pdu: readDevice, transport: .tcp)
        #expect(plan.pdu == magicReply && plan.delayMilliseconds == 250 && plan.corruption == .none)
        sim.clearFaults()
        #expect(sim.respond(unit: 1, pdu: readDevice, transport: .tcp).delayMilliseconds == 0)
    }

    @Test func dropNextNResponsesButProcessTheRequests() throws {
        let sim = pausedSimulator()
        try sim.inject(.dropResponses(count: 2))
        let write = ModbusPDU.writeMultiple(start: 1000, values: [1, 4, 99, 0])
        #expect(sim.respond(unit: 1, pdu: write, transport: .tcp) == .silent)
        #expect(sim.respond(unit: 1, pdu: write, transport: .tcp) == .silent)   // the gateway's retry
        #expect(sim.respond(unit: 1, pdu: write, transport: .tcp).pdu == [0x10, 0x03, 0xE8, 0, 4])
        // executed once although written three times
        #expect(sim.commandLog().map(\.seq) == [99])
        #expect(!sim.slot(4).locked)
        #expect(sim.snapshot().faults.dropCount == 0)
    }

    @Test func dropProbabilityIsSeeded() throws {
        func pattern(seed: UInt64) throws -> [Bool] {
            let sim = pausedSimulator(seed: seed)
            try sim.inject(.dropProbability(0.5))
            return (0..<64).map { _ in sim.respond(unit: 1, pdu: readDevice, transport: .tcp) == .silent }
        }
        let a = try pattern(seed: 9), b = try pattern(seed: 9), c = try pattern(seed: 10)
        #expect(a == b)
        #expect(a != c)
        let drops = a.filter { $0 }.count
        #expect(drops > 16 && drops < 48)
        let sim = pausedSimulator()
        try sim.inject(.dropProbability(1))
        #expect(sim.respond(unit: 2, pdu: readDevice, transport: .rtu) == .silent)
        sim.clearFaults()
        #expect(sim.respond(unit: 2, pdu: readDevice, transport: .rtu).pdu != nil)
    }

    @Test func exceptionRepliesAreNotProcessed() throws {
        let sim = pausedSimulator()
        try sim.inject(.exceptionReplies(code: 6, count: 2))
        let write = ModbusPDU.writeMultiple(start: 1000, values: [1, 1, 5, 0])
        #expect(sim.respond(unit: 1, pdu: write, transport: .tcp).pdu == [0x90, 6])
        #expect(sim.respond(unit: 1, pdu: readDevice, transport: .rtu).pdu == [0x84, 6])
        #expect(sim.commandLog().isEmpty)
        #expect(sim.respond(unit: 1, pdu: write, transport: .tcp).pdu == [0x10, 0x03, 0xE8, 0, 4])
        #expect(sim.commandLog().count == 1)
        try sim.inject(.exceptionProbability(code: 4, probability: 1))
        #expect(sim.respond(unit: 2, pdu: readDevice, transport: .tcp).pdu == [0x84, 4])
        #expect(throws: SimulatorError.self) { try sim.inject(.exceptionReplies(code: 0, count: 1)) }
    }

    @Test func garbageAndCRCErrors() throws {
        let sim = pausedSimulator()
        try sim.inject(.garbage(count: 1))
        guard case .garbage(let bytes) = sim.respond(unit: 1, pdu: readDevice, transport: .rtu).corruption else {
            Issue.record("expected garbage")
            return
        }
        #expect(bytes.count >= 5)
        #expect(sim.respond(unit: 1, pdu: readDevice, transport: .rtu).corruption == .none)
        try sim.inject(.crcErrors(count: 1))
        // a bad CRC means nothing on TCP: it does not use up the count there
        #expect(sim.respond(unit: 1, pdu: readDevice, transport: .tcp).corruption == .none)
        #expect(sim.respond(unit: 1, pdu: readDevice, transport: .rtu).corruption == .badCRC)
        #expect(sim.respond(unit: 1, pdu: readDevice, transport: .rtu).corruption == .none)
        try sim.inject(.crcErrorProbability(1))
        try sim.inject(.garbageProbability(0))
        #expect(sim.respond(unit: 2, pdu: readDevice, transport: .rtu).corruption == .badCRC)
        sim.clearFaults()
        #expect(sim.respond(unit: 2, pdu: readDevice, transport: .rtu).corruption == .none)
        #expect(sim.snapshot().faults == FaultsSnapshot(
            responseDelayMs: 0, dropCount: 0, dropProbability: 0, exceptionCode: 4, exceptionCount: 0,
            exceptionProbability: 0, garbageCount: 0, garbageProbability: 0, crcCount: 0, crcProbability: 0,
            cabinetOverTemperature: false))
    }
}

@Suite struct SlotFaultTests {
    @Test func lockJam() throws {
        let sim = pausedSimulator()
        try sim.inject(.lockJam(slot: 2))
        sim.command(1, slot: 2, seq: 1)
        #expect(try sim.lastCommand() == (1, 3))
        #expect(try sim.slotBlock(2)[1] == 1)
        #expect(sim.slot(2).locked)
        try sim.clearFaults(slot: 2)
        #expect(try sim.slotBlock(2)[1] == 0)
        sim.command(1, slot: 2, seq: 2)
        #expect(try sim.lastCommand() == (2, 0))
    }

    @Test func batteryProtectionAndWarningFlags() throws {
        let sim = pausedSimulator()
        try sim.insertBattery(slot: 1, id: "FLAGS", family: 1, soc: 40, soh: 100)
        sim.tick(seconds: 1)
        #expect(sim.slot(1).charging)
        try sim.inject(.batteryFlags(slot: 1, protection: 0b0000_0101, warning: 0b1000_0000))
        let b = try sim.slotBlock(1)
        #expect(b[20] == 5 && b[21] == 0x80)
        sim.tick(seconds: 10)
        #expect(!sim.slot(1).charging)                 // a protection stops charging
        try sim.inject(.batteryFlags(slot: 1, protection: 0, warning: 0b10000))
        sim.tick(seconds: 1)
        #expect(sim.slot(1).charging)                  // a warning alone does not
        #expect(try sim.slotBlock(1)[21] == 0x10)
    }

    @Test func slotOverTemperature() throws {
        let sim = pausedSimulator()
        try sim.insertBattery(slot: 1, id: "OT", family: 2, soc: 40, soh: 100, temperature: 25)
        try sim.inject(.slotOverTemperature(slot: 1))
        #expect(try sim.slotBlock(1)[1] == 4)
        #expect(try sim.state(1).contains(.slotFault))
        sim.tick(seconds: 1800)
        #expect(RegisterCodec.signed(try sim.slotBlock(1)[14]) > 550)   // toward 62 °C
        #expect(!sim.slot(1).charging)
        sim.clearFaults()
        sim.tick(seconds: 1)
        #expect(sim.slot(1).charging && sim.slot(1).faultCode == 0)
    }

    @Test func cabinetOverTemperature() throws {
        let sim = pausedSimulator()
        try sim.insertBattery(slot: 1, id: "CAB", family: 2, soc: 40, soh: 100)
        try sim.inject(.cabinetOverTemperature)
        #expect(try sim.input(17)[0] & 0b1000 != 0)
        sim.tick(seconds: 1200)
        #expect(RegisterCodec.signed(try sim.input(18)[0]) > 600)
        #expect(!sim.slot(1).charging)
        sim.clearFaults()
        #expect(try sim.input(17)[0] == 1)
    }

    @Test func chargerAndDoorSensorFaults() throws {
        let sim = pausedSimulator()
        try sim.insertBattery(slot: 1, id: "CHG", family: 1, soc: 40, soh: 100)
        try sim.inject(.chargerFault(slot: 1))
        sim.tick(seconds: 5)
        #expect(try sim.slotBlock(1)[1] == 3)
        #expect(!sim.slot(1).charging)
        try sim.inject(.doorSensorFault(slot: 2))
        #expect(try sim.slotBlock(2)[1] == 2)
        #expect(try sim.state(2).contains(.slotFault))
        sim.clearFaults()
        sim.tick(seconds: 1)
        #expect(try sim.slotBlock(1)[1] == 0 && sim.slot(1).charging)
        #expect(try sim.slotBlock(2)[1] == 0)
    }

    @Test func bmsLinkLostStopsChargingAndClears() throws {
        let sim = pausedSimulator()
        try sim.insertBattery(slot: 1, id: "BMS", family: 1, soc: 40, soh: 100)
        sim.tick(seconds: 1)
        try sim.inject(.bmsLinkLost(slot: 1))
        sim.tick(seconds: 5)
        #expect(!sim.slot(1).charging && !sim.slot(1).bmsLinkOk && sim.slot(1).faultCode == 5)
        sim.clearFaults()
        sim.tick(seconds: 1)
        let b = try sim.slotBlock(1)
        #expect(RegisterCodec.string(b[2...9]) == "BMS" && b[1] == 0)
        #expect(sim.slot(1).charging)
    }

    @Test func faultsOnInvalidSlotsAreRejected() {
        let sim = pausedSimulator(slots: 3)
        #expect(throws: SimulatorError.invalidSlot(4)) { try sim.inject(.lockJam(slot: 4)) }
        #expect(throws: SimulatorError.invalidSlot(0)) { try sim.inject(.chargerFault(slot: 0)) }
        #expect(throws: SimulatorError.self) { try sim.inject(.dropProbability(1.5)) }
    }
}
