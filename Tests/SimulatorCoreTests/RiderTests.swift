// Rider mode: a simulated rider answering unlocks.
import Foundation
@testable import SimulatorCore
import Testing

@Suite struct RiderTests {
    /// Four slots: slot 1 holds a full battery, the others are empty.
    func cabinet(_ rider: RiderConfiguration) throws -> Simulator {
        let sim = pausedSimulator(slots: 4, rider: rider)
        try sim.insertBattery(slot: 1, id: "FULL-1", family: 3, soc: 100, soh: 96)
        return sim
    }

    @Test func normalRiderReturnsIntoEmptyAndTakesFromFull() throws {
        let sim = try cabinet(RiderConfiguration(delay: 2, stepDelay: 1,
                                                 returns: [RiderBattery(id: "QUEUED-1", family: 1, soc: 12)]))
        // an empty slot: open, insert, close
        sim.command(1, slot: 2, seq: 1)
        sim.tick(seconds: 1.5)
        #expect(sim.slot(2).doorClosed)
        sim.tick(seconds: 1)
        #expect(!sim.slot(2).doorClosed && !sim.slot(2).batteryPresent)
        sim.tick(seconds: 1)
        #expect(sim.slot(2).battery?.id == "QUEUED-1" && sim.slot(2).battery?.family == 1)
        #expect(abs((sim.slot(2).battery?.soc ?? 0) - 12) < 0.001)
        #expect(!sim.slot(2).doorClosed)
        sim.tick(seconds: 1)
        #expect(sim.slot(2).doorClosed && sim.slot(2).locked)         // closed and re-locked
        #expect(sim.slot(2).insertCount == 1 && sim.slot(2).doorOpenCount == 1)
        // a full slot: open, take, close; the battery goes to the pocket
        sim.command(1, slot: 1, seq: 2)
        sim.tick(seconds: 5)
        #expect(!sim.slot(1).batteryPresent && sim.slot(1).doorClosed && sim.slot(1).locked)
        var rider = sim.snapshot().rider
        #expect(rider.pocket.map(\.id) == ["FULL-1"])
        #expect(rider.batteriesTaken == 1 && rider.batteriesReturned == 1)
        #expect(rider.unlocksSeen == 2 && rider.doorsOpened == 2 && rider.doorsClosed == 2)
        #expect(rider.returnQueue.isEmpty && rider.pendingActions == 0)
        // queue empty: the last battery taken comes back, ridden down to 20 %
        sim.command(1, slot: 3, seq: 3)
        sim.tick(seconds: 3.5)                                         // opened and inserted, not yet closed
        #expect(sim.slot(3).battery?.id == "FULL-1")
        #expect(abs((sim.slot(3).battery?.soc ?? 0) - 20) < 0.001)
        sim.tick(seconds: 1.5)
        // pocket empty too: a generated battery
        sim.command(1, slot: 4, seq: 4)
        sim.tick(seconds: 5)
        let generated = try #require(sim.slot(4).battery)
        #expect(generated.id == "RIDER-0001" && generated.family == 2)
        rider = sim.snapshot().rider
        #expect(rider.pocket.isEmpty && rider.batteriesReturned == 3)
        // each slot was unlocked exactly once
        let unlocks = sim.commandLog().filter { $0.cmd == 1 && $0.result == 0 }
        #expect(unlocks.map(\.slot) == [2, 1, 3, 4])
    }

    @Test func ignoreNeverOpens() throws {
        let sim = try cabinet(RiderConfiguration(behavior: .ignore))
        sim.command(1, slot: 1, seq: 1, param: 20)
        sim.tick(seconds: 19)
        #expect(sim.slot(1).doorClosed && !sim.slot(1).locked)
        sim.tick(seconds: 2)
        #expect(sim.slot(1).locked && sim.slot(1).doorOpenCount == 0)   // re-locked by the timeout
        #expect(sim.snapshot().rider.unlocksIgnored == 1)
    }

    @Test func noCloseLeavesTheDoorOpen() throws {
        let sim = try cabinet(RiderConfiguration(behavior: .noClose))
        sim.command(1, slot: 1, seq: 1)
        sim.tick(seconds: 120)
        #expect(!sim.slot(1).doorClosed && !sim.slot(1).batteryPresent && !sim.slot(1).locked)
        #expect(sim.snapshot().rider.batteriesTaken == 1 && sim.snapshot().rider.doorsClosed == 0)
    }

    @Test func takeOnlyAndReturnOnly() throws {
        let take = try cabinet(RiderConfiguration(behavior: .takeOnly))
        take.command(1, slot: 2, seq: 1)                      // empty slot: nothing to take, nothing returned
        take.tick(seconds: 10)
        #expect(!take.slot(2).batteryPresent && take.slot(2).doorOpenCount == 1 && take.slot(2).locked)
        take.command(1, slot: 1, seq: 2)
        take.tick(seconds: 10)
        #expect(!take.slot(1).batteryPresent)
        #expect(take.snapshot().rider.batteriesReturned == 0)

        let give = try cabinet(RiderConfiguration(behavior: .returnOnly))
        give.command(1, slot: 1, seq: 1)                      // full slot: left alone
        give.tick(seconds: 10)
        #expect(give.slot(1).battery?.id == "FULL-1" && give.slot(1).doorOpenCount == 1 && give.slot(1).locked)
        give.command(1, slot: 2, seq: 2)
        give.tick(seconds: 10)
        #expect(give.slot(2).batteryPresent)
        #expect(give.snapshot().rider.batteriesTaken == 0 && give.snapshot().rider.batteriesReturned == 1)
    }

    @Test func riderTooSlowForTheRelockMissesTheDoor() throws {
        let sim = try cabinet(RiderConfiguration(delay: 40))
        sim.command(1, slot: 2, seq: 1, param: 10)
        sim.tick(seconds: 60)
        #expect(sim.slot(2).doorClosed && sim.slot(2).locked && sim.slot(2).doorOpenCount == 0)
        #expect(sim.snapshot().rider.missed == 1)
    }

    @Test func riderOverTheControlInterface() throws {
        let sim = pausedSimulator(slots: 2)
        let answer = sim.control(line: #"{"cmd":"rider","enabled":true,"behavior":"no_close","delay":0.5,"returns":[{"id":"J1","family":3,"soc":9}],"id_prefix":"X-"}"#)
        let value = try JSONValue.parse(answer)
        #expect(value["ok"] == .bool(true))
        let rider = sim.snapshot().rider
        #expect(rider.enabled && rider.configuration?.behavior == .noClose && rider.configuration?.delay == 0.5)
        #expect(rider.configuration?.idPrefix == "X-" && rider.configuration?.stepDelay == 1)
        #expect(rider.returnQueue == [RiderBattery(id: "J1", family: 3, soc: 9)])
        sim.command(1, slot: 1, seq: 1)
        sim.tick(seconds: 3)
        #expect(sim.slot(1).battery?.id == "J1" && !sim.slot(1).doorClosed)
        #expect(try JSONValue.parse(sim.control(line: #"{"cmd":"rider","enabled":false}"#))["ok"] == .bool(true))
        #expect(!sim.snapshot().rider.enabled)
        #expect(try JSONValue.parse(sim.control(line: #"{"cmd":"rider","behavior":"dance"}"#))["ok"] == .bool(false))
    }
}
