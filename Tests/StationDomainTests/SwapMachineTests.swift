import Foundation
import Testing
@testable import StationDomain

@Suite struct SwapMachineTests {
    let t0 = Date(timeIntervalSince1970: 1_795_000_000)

    func record(kind: SwapKind, ret: Int? = 4, issue: Int? = 2) -> SwapRecord {
        SwapRecord(swapID: "swap-1", requestID: "r-1", customerID: "cust-1", planInstanceID: "pi-1", subscriptionRef: "SUB/1",
                   kind: kind, returnSlot: kind == .firstIssue ? nil : ret, issueSlot: kind == .returnOnly ? nil : issue,
                   family: .mobbat45, recordedOffline: false, acceptedAt: t0)
    }

    /// Slot 2 holds a full B45-2; slot 4 is empty. Door counters start at 10.
    func station(_ edit: (inout [Int: [UInt16]]) -> Void = { _ in }) -> StationSnapshot {
        var regs: [Int: [UInt16]] = [
            2: Fixture.slot(id: "B45-2", soc: 995, remaining: 4400, family: 2, doorOpens: 10),
            4: Fixture.slot(state: 0b0100_0110, doorOpens: 10),
        ]
        edit(&regs)
        return Fixture.snapshot((1 ... 4).map { Fixture.status($0, regs[$0] ?? Fixture.slot(state: 0b0100_0110)) })
    }

    static let returnedEmpty = Fixture.slot(id: "B45-000123", soc: 95, remaining: 400, family: 2, doorOpens: 11)
    static let taken = Fixture.slot(state: 0b0100_0110, doorOpens: 11)

    @Test func exchangeHappyPath() {
        var m = SwapMachine(record: record(kind: .exchange), batteriesOut: ["B45-000123"], timeouts: SwapTimeouts(), now: t0)
        #expect(m.start(station(), now: t0) == [.unlock(slot: 4, seconds: 120)])
        #expect(m.record.stage == .awaitingReturn)
        #expect(m.observe(station(), now: t0.addingTimeInterval(5)).isEmpty)   // nothing happened yet
        let returned = station { $0[4] = Self.returnedEmpty }
        #expect(m.observe(returned, now: t0.addingTimeInterval(20)) == [.unlock(slot: 2, seconds: 60)])
        #expect(m.record.stage == .awaitingPickup)
        #expect(m.record.returned?.id == "B45-000123")
        #expect(m.record.issued?.id == "B45-2")
        let done = m.observe(station { $0[4] = Self.returnedEmpty; $0[2] = Self.taken }, now: t0.addingTimeInterval(30))
        guard case let .finish(.completed(r, i, kwh))? = done.first else { Issue.record("\(done)"); return }
        #expect(r?.id == "B45-000123" && i.id == "B45-2")
        #expect(kwh == 1.92)   // (44.00 − 4.00) Ah × 48 V
        #expect(m.record.stage == .completed)
    }

    @Test func refusedReturnUnlocksTheSameSlotAgain() {
        var m = SwapMachine(record: record(kind: .exchange), batteriesOut: ["B45-000123"], timeouts: SwapTimeouts(), now: t0)
        _ = m.start(station(), now: t0)
        let foreign = station { $0[4] = Fixture.slot(id: "B45-999999", soc: 95, family: 2, doorOpens: 11) }
        #expect(m.observe(foreign, now: t0.addingTimeInterval(10)) == [.unlock(slot: 4, seconds: 120)])
        #expect(m.record.stage == .returnRefused)
        let takenBack = station { $0[4] = Fixture.slot(state: 0b0100_0110, doorOpens: 12) }
        guard case let .finish(.aborted(stage, reason))? = m.observe(takenBack, now: t0.addingTimeInterval(20)).first else {
            Issue.record("not aborted"); return
        }
        #expect(stage == .returnRefused && reason.contains("refused"))
        #expect(m.record.stage == .aborted)
    }

    @Test(arguments: [
        (Fixture.slot(id: "B30-1", soc: 95, family: 1, doorOpens: 11), "MOBBAT-30AH"),
        (Fixture.slot(id: "XX-1", soc: 95, family: 0, doorOpens: 11), "unknown family"),
    ])
    func wrongFamilyOrForeignBatteryIsRefused(slot: [UInt16], why: String) {
        var m = SwapMachine(record: record(kind: .exchange), batteriesOut: [], timeouts: SwapTimeouts(), now: t0)
        _ = m.start(station(), now: t0)
        #expect(m.observe(station { $0[4] = slot }, now: t0.addingTimeInterval(9)) == [.unlock(slot: 4, seconds: 120)])
        #expect(m.record.abortReason?.contains(why) == true)
    }

    @Test func timeouts() {
        // Nothing returned: abort after 120 s, no change.
        var a = SwapMachine(record: record(kind: .exchange), batteriesOut: ["B45-000123"], timeouts: SwapTimeouts(), now: t0)
        _ = a.start(station(), now: t0)
        #expect(a.observe(station(), now: t0.addingTimeInterval(119)).isEmpty)
        #expect(a.observe(station(), now: t0.addingTimeInterval(120)) == [.finish(.aborted(stage: .awaitingReturn, reason: "return timeout"))])
        // Returned but nothing taken: return without issue after 60 s more.
        var b = SwapMachine(record: record(kind: .exchange), batteriesOut: ["B45-000123"], timeouts: SwapTimeouts(), now: t0)
        _ = b.start(station(), now: t0)
        let returned = station { $0[4] = Self.returnedEmpty }
        _ = b.observe(returned, now: t0.addingTimeInterval(10))
        guard case .finish(.returnedWithoutIssue(let r, let stage, let reason))? = b.observe(returned, now: t0.addingTimeInterval(70)).first else {
            Issue.record("expected return without issue"); return
        }
        #expect(r.id == "B45-000123")
        #expect(stage == .awaitingPickup && reason == .pickupTimeout)
        #expect(b.record.stage == .returnedWithoutIssue && b.record.stageReached == .awaitingPickup)
        #expect(b.record.abortReason == "pickup timeout")
    }

    @Test func firstIssueAndReturnOnly() {
        var f = SwapMachine(record: record(kind: .firstIssue), batteriesOut: [], timeouts: SwapTimeouts(), now: t0)
        #expect(f.start(station(), now: t0) == [.unlock(slot: 2, seconds: 60)])
        guard case .finish(.completed(nil, let i, let kwh))? = f.observe(station { $0[2] = Self.taken }, now: t0.addingTimeInterval(9)).first else {
            Issue.record("first issue not completed"); return
        }
        #expect(i.id == "B45-2" && kwh == 2.112)
        var r = SwapMachine(record: record(kind: .returnOnly), batteriesOut: ["B45-000123"], timeouts: SwapTimeouts(), now: t0)
        #expect(r.start(station(), now: t0) == [.unlock(slot: 4, seconds: 120)])
        // A restricted rider's one-way return is a return without issue (swap.returned, reason restricted), never completed.
        guard case .finish(.returnedWithoutIssue(let ret, let stage, let reason))? = r.observe(station { $0[4] = Self.returnedEmpty }, now: t0.addingTimeInterval(9)).first else {
            Issue.record("return only not finished as a return"); return
        }
        #expect(ret.id == "B45-000123")
        #expect(stage == .awaitingReturn && reason == .restricted)
        #expect(r.record.stage == .returnedWithoutIssue && r.record.energyKWh == 0)
    }

    @Test func doorClosedEmptyAbortsAndBatteryLeftIsNotTaken() {
        var m = SwapMachine(record: record(kind: .exchange), batteriesOut: ["B45-000123"], timeouts: SwapTimeouts(), now: t0)
        _ = m.start(station(), now: t0)
        let closedEmpty = station { $0[4] = Fixture.slot(state: 0b0100_0110, doorOpens: 11) }
        guard case .finish(.aborted(.awaitingReturn, _))? = m.observe(closedEmpty, now: t0.addingTimeInterval(5)).first else {
            Issue.record("expected abort"); return
        }
        var n = SwapMachine(record: record(kind: .exchange), batteriesOut: ["B45-000123"], timeouts: SwapTimeouts(), now: t0)
        _ = n.start(station(), now: t0)
        _ = n.observe(station { $0[4] = Self.returnedEmpty }, now: t0.addingTimeInterval(5))
        let openedClosedStillThere = station { $0[4] = Self.returnedEmpty; $0[2] = Fixture.slot(id: "B45-2", soc: 995, family: 2, doorOpens: 11) }
        #expect(n.observe(openedClosedStillThere, now: t0.addingTimeInterval(8))
            == [.finish(.returnedWithoutIssue(returned: n.record.returned!, stage: .awaitingPickup, reason: .pickupTimeout))])
    }

    @Test func staleSlotsDecideNothing() {
        var m = SwapMachine(record: record(kind: .exchange), batteriesOut: ["B45-000123"], timeouts: SwapTimeouts(), now: t0)
        _ = m.start(station(), now: t0)
        var s = station { $0[4] = Self.returnedEmpty }
        s.cabinetStale = true
        #expect(m.observe(s, now: t0.addingTimeInterval(10)).isEmpty)
        #expect(m.record.stage == .awaitingReturn)
    }

    @Test func powerLossReconciliation() {
        var rec = record(kind: .exchange)
        rec.stage = .awaitingReturn
        // Battery returned, then power cut: return without issue (no second door opens).
        // It is published as returned, at the stage the swap was really in (awaiting_return), reason power loss.
        #expect(SwapMachine.reconcile(rec, batteriesOut: ["B45-000123"], snapshot: station { $0[4] = Self.returnedEmpty })
            == .returnedWithoutIssue(returned: SwapBattery(id: "B45-000123", family: .mobbat45, socPercent: 9.5, remainingCapacityAh: 4, slot: 4), stage: .awaitingReturn, reason: .powerLoss))
        #expect(SwapMachine.reconcile(rec, batteriesOut: ["B45-000123"], snapshot: station())
            == .aborted(stage: .awaitingReturn, reason: "power loss"))
        // Issue slot unlocked: taken → completed; still there → returned without issue.
        rec.stage = .awaitingPickup
        rec.returned = SwapBattery(id: "B45-000123", family: .mobbat45, socPercent: 9.5, remainingCapacityAh: 4, slot: 4)
        rec.issued = SwapBattery(id: "B45-2", family: .mobbat45, socPercent: 99.5, remainingCapacityAh: 44, slot: 2)
        guard case .completed(_, let i, let kwh) = SwapMachine.reconcile(rec, batteriesOut: [], snapshot: station { $0[2] = Self.taken }) else {
            Issue.record("expected completed"); return
        }
        #expect(i.id == "B45-2" && kwh == 1.92)
        #expect(SwapMachine.reconcile(rec, batteriesOut: [], snapshot: station())
            == .returnedWithoutIssue(returned: rec.returned!, stage: .awaitingPickup, reason: .powerLoss))
        let done = SwapMachine.finalize(rec, with: .returnedWithoutIssue(returned: rec.returned!, stage: .awaitingPickup, reason: .powerLoss), now: t0)
        #expect(done.stage == .returnedWithoutIssue && done.finishedAt == t0)
        #expect(done.stageReached == .awaitingPickup && done.abortReason == "power loss")
    }

    /// Every end names the stage the swap was really in: a swap interrupted while awaiting the return is
    /// aborted (nothing returned) or returned (battery in the slot) *at awaiting_return*, never at awaiting_pickup
    /// and never with "pickup timeout"; a restricted rider's interrupted return is a return for "restricted".
    @Test func interruptedSwapsNameTheirRealStage() {
        var rec = record(kind: .exchange)
        rec.stage = .awaitingReturn
        let aborted = SwapMachine.reconcile(rec, batteriesOut: ["B45-000123"], snapshot: station())
        #expect(aborted == .aborted(stage: .awaitingReturn, reason: "power loss"))
        let final = SwapMachine.finalize(rec, with: aborted, now: t0)
        #expect(final.stage == .aborted && final.stageReached == .awaitingReturn && final.abortReason == "power loss")

        var restricted = record(kind: .returnOnly)
        restricted.stage = .awaitingReturn
        #expect(SwapMachine.reconcile(restricted, batteriesOut: ["B45-000123"], snapshot: station { $0[4] = Self.returnedEmpty })
            == .returnedWithoutIssue(returned: SwapBattery(id: "B45-000123", family: .mobbat45, socPercent: 9.5, remainingCapacityAh: 4, slot: 4), stage: .awaitingReturn, reason: .restricted))

        var refused = record(kind: .exchange)
        refused.stage = .returnRefused
        guard case .aborted(.returnRefused, let why) = SwapMachine.reconcile(refused, batteriesOut: [], snapshot: station()) else {
            Issue.record("expected an abort at return_refused"); return
        }
        #expect(why.hasPrefix("power loss"))

        // The issue door cannot be unlocked after a verified return: returned, at awaiting_pickup, reason fault.
        var m = SwapMachine(record: record(kind: .exchange), batteriesOut: ["B45-000123"], timeouts: SwapTimeouts(), now: t0)
        _ = m.start(station(), now: t0)
        _ = m.observe(station { $0[4] = Self.returnedEmpty }, now: t0.addingTimeInterval(5))
        #expect(m.unlockFailed(reason: "lock jammed", now: t0.addingTimeInterval(6))
            == [.finish(.returnedWithoutIssue(returned: m.record.returned!, stage: .awaitingPickup, reason: .fault))])
        // The return door cannot be unlocked: aborted at awaiting_return.
        var u = SwapMachine(record: record(kind: .exchange), batteriesOut: ["B45-000123"], timeouts: SwapTimeouts(), now: t0)
        _ = u.start(station(), now: t0)
        #expect(u.unlockFailed(reason: "lock jammed", now: t0.addingTimeInterval(1))
            == [.finish(.aborted(stage: .awaitingReturn, reason: "fault: lock jammed"))])
    }
}
