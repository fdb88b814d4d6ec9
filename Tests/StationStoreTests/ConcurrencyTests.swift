import Foundation
import Testing
import TestSupport
@testable import StationStore

@Suite("Concurrency and rate")
struct ConcurrencyTests {
    @Test func concurrentAppendsGetDistinctGapFreeSeqs() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        let tasks = 16, appendsPerTask = 30
        let batches = try await withThrowingTaskGroup(of: [[StoredEvent]].self) { group in
            for t in 0..<tasks {
                group.addTask {
                    var mine: [[StoredEvent]] = []
                    for a in 0..<appendsPerTask {
                        let count = 1 + (t + a) % 4
                        mine.append(try await store.appendEvents(makeEvents(0..<count, type: "task.\(t)")))
                    }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(batches.count == tasks * appendsPerTask)
        // Each append got a contiguous block…
        for batch in batches {
            #expect(batch.map(\.seq) == Array(batch.first!.seq...batch.last!.seq))
        }
        // …and together they cover 1…N exactly once.
        let seqs = batches.flatMap { $0.map(\.seq) }.sorted()
        #expect(seqs == Array(1...Int64(seqs.count)))
        #expect(try await allEvents(store) == batches.flatMap { $0 }.sorted { $0.seq < $1.seq })
        try await store.close()
    }

    /// Writers append while a sender marks what it sent and retention runs flat out: only
    /// marked events ever disappear, and the counter is exact.
    @Test func retentionRacingAppendsOnlyDeletesSentEvents() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        let writers = 4, appendsPerWriter = 50
        let marked = try await withThrowingTaskGroup(of: Set<Int64>.self) { group in
            for w in 0..<writers {
                group.addTask {
                    for a in 0..<appendsPerWriter { _ = try await store.appendEvents(makeEvents(a..<(a + 2), type: "w\(w)")) }
                    return []
                }
            }
            group.addTask {
                var sent = Set<Int64>()
                for round in 0..<40 {
                    // Mark every other unsent event, as a sender with some PUBACKs still due would.
                    let batch = try await store.unsentEvents(limit: 20).map(\.seq).filter { $0 % 2 == Int64(round % 2) }
                    try await store.markSent(seqs: batch, at: baseDate)
                    sent.formUnion(batch)
                    _ = try await store.applyRetention(RetentionPolicy(keepSentDays: 0, maxSentRows: 0),
                                                       now: baseDate.addingTimeInterval(1))
                }
                return sent
            }
            return try await group.reduce(into: Set<Int64>()) { $0.formUnion($1) }
        }
        let total = Int64(writers * appendsPerWriter * 2)
        let left = Set(try await allEvents(store).map(\.seq))
        let all = Set(1...total)
        #expect(try await store.stats().lastSeq == total)
        #expect(all.subtracting(left).isSubset(of: marked), "an unsent event was deleted")
        #expect(left.isDisjoint(with: marked), "a sent event survived retention with keep 0")
        #expect(!marked.isEmpty)
        try await store.close()
    }

    /// Printed, never asserted: appends per second with synchronous = FULL (production) and
    /// NORMAL (for comparison), one event per transaction and 100 per transaction.
    /// For clean numbers run it alone: `swift test --filter appendRate`.
    @Test func appendRate() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let payload = 200
        for mode in [StationStore.Synchronous.full, .normal] {
            let path = dir.dir.path("rate-\(mode.rawValue).sqlite")
            let store = try StationStore(path: path, maxPageCount: nil, synchronous: mode)
            let singles = 1_000
            var start = Date()
            for i in 0..<singles { _ = try await store.appendEvents([makeEvent(i, padding: payload)]) }
            let singleRate = Double(singles) / Date().timeIntervalSince(start)

            let batches = 100, perBatch = 100
            start = Date()
            for b in 0..<batches {
                _ = try await store.appendEvents(makeEvents((b * perBatch)..<(b * perBatch + perBatch), padding: payload))
            }
            let batchElapsed = Date().timeIntervalSince(start)
            let batchRate = Double(batches * perBatch) / batchElapsed
            print(String(format: "append rate, synchronous=%@: %.0f events/s one per transaction; %.0f events/s (%.0f transactions/s) 100 per transaction",
                         mode.rawValue, singleRate, batchRate, Double(batches) / batchElapsed))
            #expect(try await store.stats().lastSeq == Int64(singles + batches * perBatch))
            try await store.close()
        }
    }
}
