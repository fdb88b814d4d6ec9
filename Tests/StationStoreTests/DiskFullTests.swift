import Foundation
import SQLiteLink
import Testing
import TestSupport
@testable import StationStore

/// A real SQLITE_FULL: SQLite's `max_page_count` caps the file on the writing connection, and
/// SQLite then fails writes exactly as on a full disk.
@Suite("Disk full")
struct DiskFullTests {
    /// Appends single ~1 KB events until the store says `.diskFull`; returns what was recorded.
    func fill(_ store: StationStore, from n: Int) async throws -> [StoredEvent] {
        var recorded: [StoredEvent] = []
        for i in n..<(n + 10_000) {
            do {
                recorded += try await store.appendEvents([makeEvent(i, padding: 1_000)])
            } catch {
                #expect(isDiskFull(error), "expected .diskFull, got \(error)")
                return recorded
            }
        }
        Issue.record("the store never filled up")
        return recorded
    }

    @Test func appendsFailWholeWhenFullAndResumeWithoutAGap() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open(maxPageCount: 80)
        let first = try await fill(store, from: 1)
        #expect(first.count > 20)
        #expect(first.map(\.seq) == Array(1...Int64(first.count)))
        let lastSeq = Int64(first.count)

        // A batch fails whole: no row, no seq consumed.
        do {
            _ = try await store.appendEvents(makeEvents(0..<20, padding: 1_000))
            Issue.record("a batch append succeeded on a full store")
        } catch {
            #expect(isDiskFull(error), "expected .diskFull, got \(error)")
        }
        // So do writes of other tables in the same database.
        await #expect { try await store.setMeta("big", String(repeating: "m", count: 20_000)) } throws: { isDiskFull($0) }

        // Everything recorded before is intact and readable.
        #expect(try await allEvents(store) == first)
        var stats = try await store.stats()
        #expect(stats.lastSeq == lastSeq)
        #expect(stats.unsent == first.count)
        #expect(try await store.integrityCheck() == [])

        // Retention frees pages only from sent events: with nothing sent it deletes nothing…
        #expect(try await store.applyRetention(RetentionPolicy(keepSentDays: 0, maxSentRows: 0), now: baseDate) == 0)
        await #expect { try await store.appendEvents([makeEvent(0, padding: 1_000)]) } throws: { isDiskFull($0) }

        // …once half of them are acknowledged, it deletes those, and appends go on at lastSeq+1
        // in the freed pages (the file cannot grow: the cap is still there).
        let half = first.prefix(first.count / 2).map(\.seq)
        try await store.markSent(seqs: half, at: baseDate)
        #expect(try await store.applyRetention(RetentionPolicy(keepSentDays: 0, maxSentRows: 0),
                                               now: baseDate.addingTimeInterval(1)) == half.count)
        let second = try await fill(store, from: 100_000)
        #expect(second.count > 1)
        #expect(second.first?.seq == lastSeq + 1)
        try await store.close()

        // After a restart with room to grow, the next seq follows without a gap.
        let roomy = try dir.open(maxPageCount: 100_000)
        let third = try await roomy.appendEvents(makeEvents(200_000..<200_050, padding: 1_000))
        let lastBeforeThird = second.last!.seq
        #expect(third.map(\.seq) == Array((lastBeforeThird + 1)...(lastBeforeThird + 50)))
        let all = try await allEvents(roomy)
        #expect(all.map(\.seq) == Array((Int64(half.count) + 1)...(lastBeforeThird + 50)))
        #expect(Array(all.prefix(first.count - half.count)) == Array(first.dropFirst(half.count)))
        stats = try await roomy.stats()
        #expect(stats.lastSeq == lastBeforeThird + 50)
        #expect(try await roomy.integrityCheck() == [])
        try await roomy.close()
    }

    @Test func theStoreReopensWhileFull() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open(maxPageCount: 60)
        let recorded = try await fill(store, from: 1)
        try await store.close()

        // The daemon restarting on a full disk still opens its store and reads its backlog.
        let again = try dir.open(maxPageCount: 60)
        #expect(try await again.unsentEvents(limit: 10_000) == recorded)
        await #expect { try await again.appendEvents([makeEvent(0, padding: 1_000)]) } throws: { isDiskFull($0) }
        try await again.close()
    }
}
