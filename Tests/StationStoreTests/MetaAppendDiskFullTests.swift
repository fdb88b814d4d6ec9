import Foundation
import Testing
import TestSupport
@testable import StationStore

/// `appendEvents(_:settingMeta:)` (the gateway's events with its persisted station view, and alarms with their
/// persisted state) goes through the same disk-full recovery as `appendEvents(_:)`: on a full disk it gives up the
/// reserve file and the sent events, then retries, instead of failing while the store could make room.
@Suite("Disk full: events with meta")
struct MetaAppendDiskFullTests {
    @Test func metaAppendsRelieveAFullStoreLikePlainAppends() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open(maxPageCount: 120)
        // Fill it with events, all acknowledged by the broker (sent: the relief may delete them).
        var n = 0
        while true {
            do { _ = try await store.appendEvents([makeEvent(n, padding: 1_000)]) } catch {
                #expect(isDiskFull(error), "\(error)"); break
            }
            n += 1
            if n > 10_000 { Issue.record("never filled up"); return }
        }
        try await store.markSent(seqs: Array(1 ... Int64(n)), at: baseDate)
        // Full now: the meta path must make room (delete sent events) and succeed.
        let stored = try await store.appendEvents([makeEvent(n + 1, padding: 1_000)], settingMeta: ["station.state": "after-full"])
        #expect(stored.map(\.seq) == [Int64(n + 1)])
        #expect(try await store.meta("station.state") == "after-full")
        #expect(try await store.stats().unsent == 1)
        try await store.close()
    }

    @Test(.enabled(if: TinyFileSystem.available, "needs root and mount (tmpfs)"))
    func onARealFullFileSystemMetaAppendsGoOnInTheRoomTheStoreFrees() async throws {
        for round in 0 ..< 3 {
            let fs = try TinyFileSystem(bytes: 48 * 1024 * 1024)
            defer { fs.unmount() }
            let store = try StationStore(path: fs.mountPoint + "/station.sqlite")
            #expect(store.hasDiskReserve)
            for i in 0 ..< 20 { _ = try await store.appendEvents(makeEvents((i * 100) ..< (i * 100 + 100), padding: 1_000)) }
            try await store.markSent(seqs: Array(1 ... 2_000), at: baseDate)
            fs.fillUp("filler")
            // ~1.5 MB of new events, each with the station view: fits only in the room of the reserve and the sent events.
            for i in 0 ..< 1_500 {
                do {
                    _ = try await store.appendEvents([makeEvent(10_000 + i, padding: 1_000)], settingMeta: ["station.state": "v\(i)"])
                } catch {
                    Issue.record("round \(round): append \(i) with meta failed on a store that could make room: \(error)")
                    break
                }
            }
            #expect(!store.hasDiskReserve)
            #expect(try await store.meta("station.state") == "v1499")
            #expect(try await store.stats().unsent == 1_500)
            try await store.close()
        }
    }
}
