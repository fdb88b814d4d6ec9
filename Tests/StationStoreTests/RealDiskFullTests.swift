import Foundation
import Testing
import TestSupport
@testable import StationStore

@Suite("Disk full (real ENOSPC)")
struct RealDiskFullTests {
    /// The disk fills up for a reason outside the store (a filler file stands for runaway logs).
    /// Appends go on for a while in the space the store frees itself (its reserve file and the
    /// sent events), then fail whole with `.diskFull`; unsent events are never touched; once
    /// space comes back, appends continue at last+1 and the reserve is re-created.
    @Test(.enabled(if: TinyFileSystem.available, "needs root and mount (tmpfs)"))
    func aFullFileSystemFailsAppendsWholeAndRecovers() async throws {
        let fs = try TinyFileSystem(bytes: 48 * 1024 * 1024)
        defer { fs.unmount() }
        let path = fs.mountPoint + "/station.sqlite"
        let store = try StationStore(path: path)
        #expect(store.hasDiskReserve)

        var recorded: [StoredEvent] = []
        for i in 0..<20 {
            recorded += try await store.appendEvents(makeEvents((i * 100)..<(i * 100 + 100), padding: 1_000))
        }
        try await store.markSent(seqs: Array(1...1_500), at: baseDate)   // acknowledged by the broker

        let filler = fs.fillUp("filler")
        var failure: (any Error)?
        var afterFill = 0
        for i in 0..<100_000 {
            do {
                recorded += try await store.appendEvents([makeEvent(i, padding: 1_000)])
                afterFill += 1
            } catch { failure = error; break }
        }
        print("real ENOSPC: filler took \(filler) bytes; \(afterFill) appends after that, then: \(failure.map { "\($0)" } ?? "none")")
        let error = try #require(failure)
        #expect(isDiskFull(error), "expected .diskFull, got \(error)")
        // The reserve (8 MiB, ~thousands of events) was given up for events.
        #expect(!store.hasDiskReserve)
        #expect(afterFill > 1_000)

        // Sent events were given up; every unsent one is there, seqs without a gap.
        let lastSeq = Int64(recorded.count)
        let unsent = Array(recorded.dropFirst(1_500))
        #expect(try await store.unsentEvents(limit: 1_000_000) == unsent)
        var stats = try await store.stats()
        #expect(stats.total == unsent.count)
        #expect(stats.lastSeq == lastSeq)
        #expect(unsent.map(\.seq) == Array(1_501...lastSeq))

        // Still full: a batch fails whole, reads work.
        await #expect { try await store.appendEvents(makeEvents(0..<10, padding: 1_000)) } throws: { isDiskFull($0) }
        #expect(try await store.stats().lastSeq == lastSeq)

        // Space comes back: appends continue at last+1, the reserve comes back with retention.
        unlink(fs.mountPoint + "/filler")
        #expect(try await store.appendEvents([makeEvent(0)]).map(\.seq) == [lastSeq + 1])
        _ = try await store.applyRetention(RetentionPolicy(), now: baseDate)
        #expect(store.hasDiskReserve)
        #expect(try await store.integrityCheck() == [])
        try await store.close()

        let reopened = try StationStore(path: path)
        stats = try await reopened.stats()
        #expect(stats.lastSeq == lastSeq + 1)
        #expect(stats.unsent == unsent.count + 1)
        try await reopened.close()
    }

    /// The daemon restarts on a full disk: after a clean close the WAL has to be created again,
    /// which needs space; the store gives up its reserve for it and opens.
    @Test(.enabled(if: TinyFileSystem.available, "needs root and mount (tmpfs)"))
    func theStoreOpensOnAFullFileSystem() async throws {
        let fs = try TinyFileSystem(bytes: 48 * 1024 * 1024)
        defer { fs.unmount() }
        let path = fs.mountPoint + "/station.sqlite"
        let store = try StationStore(path: path)
        let recorded = try await store.appendEvents(makeEvents(0..<100, padding: 1_000))
        try await store.close()
        #expect(store.hasDiskReserve)
        fs.fillUp("filler")

        let reopened = try StationStore(path: path)
        #expect(!reopened.hasDiskReserve)
        #expect(try await reopened.unsentEvents(limit: 1_000) == recorded)
        #expect(try await reopened.appendEvents([makeEvent(100)]).map(\.seq) == [101])
        try await reopened.close()
    }
}
