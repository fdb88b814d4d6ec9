import Foundation
import Testing
import TestSupport

/// Fail closed on a full disk, end to end: the station database lives on a small tmpfs that a filler file
/// fills (runaway logs, say). Swaps are recorded as long as the store can make room (its reserve file, sent
/// events); once a swap cannot be recorded durably it is refused and no door opens; the daemon keeps
/// running, and swaps resume when space comes back.
@Suite(.serialized) struct FullDiskSwapTests {
    @Test(.enabled(if: TinyFileSystem.available, "needs root and mount (tmpfs)"))
    func aSwapThatCannotBeRecordedOpensNoDoor() throws {
        let fs = try TinyFileSystem(bytes: 48 * 1024 * 1024)   // room for the store's 8 MiB reserve (it wants 3× free)
        defer { fs.unmount() }
        let abs = try ABS.generate()
        let st = try Station(slots: 8, simArguments: ["--fill", "full"],
                             extraConfig: "swaps: {return_timeout: 20, pickup_timeout: 15}",
                             absSection: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}", storeDirectory: fs.mountPoint)
        defer { st.stop() }
        try st.control(["cmd": "rider", "enabled": true, "delay": 0.5, "step_delay": 0.3])
        let sub = try st.subscriber()
        try st.startGateway()
        let families = ["MOBBAT-30AH", "MOBBAT-45AH", "MOBBAT-100AH"]
        let snap = try st.command("entitlements", ["kind": "snapshot", "version": 1, "entitlements":
            (1 ... 9).map { SwapTests.entitlement($0, family: families[$0 % 3], out: []) }], abs: abs, subscriber: sub)
        #expect(snap["ok"] as? Bool == true, "\(snap)")
        func unlocks() -> Int {
            (((try? st.sim.control(["cmd": "log"]))?["commands"] as? [[String: Any]]) ?? []).filter { $0["cmd"] as? Int == 1 }.count
        }

        var refusedCustomer: Int?
        var filler = 0
        var accepted = 0
        var served: Set<Int> = []
        // An accepted swap whose end cannot be recorded yet (the room the store made was used up): the station
        // keeps it counted and retries its record until there is space.
        var waitingForDisk: String?
        for i in 1 ... 9 {
            fs.fillUp("filler-\(filler)"); filler += 1
            let before = unlocks()
            let reply = try st.command("swap", ["customer_id": "cust-\(i)"], abs: abs, subscriber: sub, timeout: 30)
            if reply["ok"] as? Bool == true, let swapID = (reply["data"] as? [String: Any])?["swap_id"] as? String {
                // Recorded (the store made room): this swap runs to its recorded end before the disk is filled again.
                accepted += 1
                served.insert(i)
                if eventually(timeout: 30, { events(in: sub.lines()).contains { $0.type == "swap.completed" && $0.string("swap_id") == swapID } }) {
                    continue
                }
                waitingForDisk = swapID
                continue
            }
            #expect(reply["code"] as? String == "station_busy", "\(reply)")
            // Refused at the request memory or at the swap record (storage error), or because a finished swap's
            // end still waits for disk space (in progress): either way nothing durable for it, no door.
            let message = reply["message"] as? String ?? ""
            #expect(message.contains("storage error") || (waitingForDisk != nil && message.contains("in progress")), "\(reply)")
            pause(1.5)
            #expect(unlocks() == before, "a door opened for a swap that was not recorded")
            refusedCustomer = i
            break
        }
        let refused = try #require(refusedCustomer, "the disk never got full enough to refuse a swap (\(accepted) accepted)")
        #expect(st.gateway?.isRunning == true)
        #expect(st.gateway?.output().contains("disk full") == true || st.gateway?.output().contains("SQLITE_FULL") == true,
                "\(st.gateway?.output().suffix(3000) ?? "")")

        for n in 0 ..< filler { try? FileManager.default.removeItem(atPath: fs.mountPoint + "/filler-\(n)") }
        if let waiting = waitingForDisk {
            // Space is back: the swap that happened is recorded, once.
            #expect(eventually(timeout: 60) { events(in: sub.lines()).contains { $0.type == "swap.completed" && $0.string("swap_id") == waiting } })
            #expect(Set(events(in: sub.lines()).filter { $0.type == "swap.completed" && $0.string("swap_id") == waiting }.map(\.eventID)).count == 1)
        }
        // Space comes back: a rider is served (the refused one, or whoever's family still has a ready battery).
        var again: [String: Any] = [:]
        // (Riders already served hold a battery: their next swap would be an exchange, and this rider returns nothing.)
        let candidates = [refused] + (1 ... 9).filter { $0 != refused && !served.contains($0) }
        var attempt = 0
        #expect(eventually(timeout: 60, interval: 1) {
            let customer = candidates[attempt % candidates.count]
            attempt += 1
            again = (try? st.command("swap", ["customer_id": "cust-\(customer)"], abs: abs, subscriber: sub, timeout: 30)) ?? [:]
            return again["ok"] as? Bool == true
        }, "\(again)")
        let againID = (again["data"] as? [String: Any])?["swap_id"] as? String
        #expect(eventually(timeout: 60) { events(in: sub.lines()).contains { $0.type == "swap.completed" && $0.string("swap_id") == againID } })
        print("full disk: \(accepted) swap(s) recorded in the room the store made, then refused with no door opened; served after space returned")
    }
}
