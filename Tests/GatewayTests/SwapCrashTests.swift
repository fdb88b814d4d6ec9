import Foundation
import StationDomain
import StationStore
import Testing
import TestSupport

/// Power cuts during a stream of swaps: the daemon is SIGKILLed at random moments while the simulated rider
/// is mid-swap; every restart reconciles from the slots. Afterwards the books must balance.
@Suite(.serialized) struct SwapCrashTests {
    @Test func sigkillDuringAStreamOfSwapsNeverBillsTwiceOrUnlocksTwice() async throws {
        let abs = try ABS.generate()
        // 16 full slots, families 1,2,3,…: the 45 Ah batteries sit in 2, 5, 8, 11, 14; slots 15 and 16 emptied.
        let st = try Station(slots: 16, simArguments: ["--fill", "full"],
                             extraConfig: "swaps: {return_timeout: 12, pickup_timeout: 10}",
                             absSection: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        defer { st.stop() }
        try st.control(["cmd": "remove", "slot": 15])
        try st.control(["cmd": "remove", "slot": 16])
        try st.control(["cmd": "rider", "enabled": true, "delay": 0.6, "step_delay": 0.4,
                        "returns": [["id": "B45-RIDER-00", "family": 2, "soc": 8]]])
        let sub = try st.subscriber()
        try st.startGateway()
        let ent: [String: Any] = SwapTests.entitlement(1, out: ["B45-RIDER-00"], used: 0, quota: -1)
        #expect(try st.command("entitlements", ["kind": "snapshot", "version": 1, "entitlements": [ent]], abs: abs, subscriber: sub)["ok"] as? Bool == true)

        var rng = SystemRandomNumberGenerator()
        for i in 0 ..< 10 {
            let reply = try st.command("swap", ["customer_id": "cust-1", "request_id": "crash-\(i)"], abs: abs, subscriber: sub, timeout: 30)
            if reply["ok"] as? Bool == true {
                // Somewhere in the swap: before the return, during it, before or after the pickup.
                pause(Double.random(in: 0.1 ... 3.5, using: &rng))
            }
            st.gateway?.killHard()
            try st.startGateway()          // reconciles the interrupted swap before accepting commands
            pause(1.5)
        }
        // Let the last swaps finish and everything drain.
        pause(14)

        let store = try StationStore(path: st.storePath)
        let swaps = try await store.recentSwaps(limit: 100)
        #expect(swaps.allSatisfy { $0.stage.isFinal }, "\(swaps.map(\.stage))")
        let completed = swaps.filter { $0.stage == .completed }
        #expect(!completed.isEmpty)
        // One swap.completed event per completed swap (from the durable log, every event ever recorded).
        let logged = try await store.events(fromSeq: nil, type: "swap.completed", limit: 1000, newestFirst: false)
        let loggedIDs = logged.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.data))) as? [String: Any] }.compactMap { $0["swap_id"] as? String }
        #expect(loggedIDs.sorted() == completed.map(\.swapID).sorted())
        // One usage record per completed swap, keyed by its id.
        let usage = try await store.listUsage(state: nil, limit: 1000)
        #expect(usage.map(\.record.idempotencyKey).sorted() == completed.map(\.swapID).sorted())
        // Counters and custody: every completion counted once; the rider holds what the books say.
        let e = try #require(try await store.effectiveEntitlement(planInstanceID: "pi-1"))
        #expect(e.swapsUsed == completed.count)
        let state = try st.sim.control(["cmd": "state"])["state"] as? [String: Any]
        let rider = state?["rider"] as? [String: Any]
        #expect(rider != nil)
        let pocket = ((rider?["pocket"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String }
        let queue = ((rider?["return_queue"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String }
        #expect(Set(e.batteriesOut) == Set(pocket + queue), "books \(e.batteriesOut) vs rider \(pocket) + queue \(queue)")
        // No slot unlocked twice for one swap: each recorded unlock seq executed at most once, and per swap at
        // most one unlock of its return slot (two after a refused return) and one of its issue slot.
        let log = try st.sim.control(["cmd": "log"])
        let unlocks = ((log["commands"] as? [[String: Any]]) ?? []).filter { $0["cmd"] as? Int == 1 && $0["result"] as? Int == 0 }
        for s in swaps {
            let seqs = [s.returnUnlockSeq, s.issueUnlockSeq, s.refusedUnlockSeq].compactMap { $0 }.map(Int.init)
            let mine = unlocks.filter { seqs.contains(($0["seq"] as? Int) ?? -1) }
            let returnUnlocks = mine.filter { $0["slot"] as? Int == s.returnSlot }.count
            let issueUnlocks = mine.filter { $0["slot"] as? Int == s.issueSlot }.count
            #expect(returnUnlocks <= (s.refusedUnlockSeq == nil ? 1 : 2), "swap \(s.swapID): \(mine)")
            #expect(issueUnlocks <= 1, "swap \(s.swapID): \(mine)")
        }
        #expect(Set(unlocks.compactMap { $0["seq"] as? Int }).count == unlocks.count, "a seq executed twice")
        try await store.close()
    }
}
