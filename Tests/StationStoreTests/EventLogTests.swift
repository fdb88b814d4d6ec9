import Foundation
import Testing
import TestSupport
@testable import StationStore

@Suite("Event log")
struct EventLogTests {
    @Test func appendsGetGapFreeSeqsInOrder() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()

        #expect(try await store.appendEvents([]).isEmpty)
        var returned: [StoredEvent] = []
        var n = 0
        for round in 0..<200 {
            let count = 1 + round % 7
            let stored = try await store.appendEvents(makeEvents(n..<(n + count)))
            #expect(stored.count == count)
            returned += stored
            n += count
        }
        #expect(returned.map(\.seq) == Array(1...Int64(n)))
        #expect(try await allEvents(store) == returned)
        #expect(try await store.stats().lastSeq == Int64(n))
        try await store.close()
    }

    @Test func eventsRoundTripExactly() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        let id = UUID()
        let binary: [UInt8] = [0, 255, 0x7b, 0x7d, 10, 0xc3]
        let events = [
            NewEvent(type: "swap.completed", timestamp: Date(timeIntervalSince1970: 1_795_000_000.1237),
                     data: Array(#"{"swap_id":"s-1","energy_kwh":1.944}"#.utf8), eventID: id),
            NewEvent(type: "gateway.started", timestamp: baseDate, data: []),
            NewEvent(type: "cabinet.alarm", timestamp: baseDate, data: binary),
        ]
        let stored = try await store.appendEvents(events)
        #expect(stored[0].eventID == id)
        #expect(stored[0].type == "swap.completed")
        #expect(stored[0].data == events[0].data)
        // Stored to the millisecond, and what append returns is what the log holds.
        #expect(stored[0].timestamp == Date(timeIntervalSince1970: 1_795_000_000.124))
        #expect(stored[1].data == [])
        #expect(stored[2].data == binary)
        #expect(stored.allSatisfy { $0.sentAt == nil })
        #expect(try await allEvents(store) == stored)

        // The same values after reopening.
        try await store.close()
        let reopened = try dir.open()
        #expect(try await allEvents(reopened) == stored)
        try await reopened.close()
    }

    @Test func unsentEventsComeOldestFirstAndMarkSentIsIdempotent() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        _ = try await store.appendEvents(makeEvents(1..<11))

        #expect(try await store.unsentEvents(limit: 3).map(\.seq) == [1, 2, 3])

        let t1 = baseDate.addingTimeInterval(100)
        try await store.markSent(seqs: [5, 2], at: t1)
        #expect(try await store.unsentEvents(limit: 100).map(\.seq) == [1, 3, 4, 6, 7, 8, 9, 10])
        #expect(try await store.unsentEvents(afterSeq: 3, limit: 2).map(\.seq) == [4, 6])
        #expect(try await store.unsentEvents(afterSeq: 10, limit: 5).isEmpty)

        // Marking again (a duplicate PUBACK, a resend after restart) keeps the first time;
        // seqs that do not exist are ignored.
        try await store.markSent(seqs: [2, 2, 999, -1], at: t1.addingTimeInterval(50))
        let two = try await store.events(fromSeq: 2, type: nil, limit: 1, newestFirst: false)
        #expect(two.map(\.seq) == [2])
        #expect(two.first?.sentAt == t1)
        try await store.markSent(seqs: [], at: t1)

        let stats = try await store.stats()
        #expect(stats.total == 10)
        #expect(stats.unsent == 8)
        #expect(stats.oldestUnsentTimestamp == makeEvent(1).timestamp)

        // Marking many at once (more than one SQL chunk).
        _ = try await store.appendEvents(makeEvents(11..<1_300))
        try await store.markSent(seqs: Array(1...1_299), at: t1)
        #expect(try await store.unsentEvents(limit: 10).isEmpty)
        #expect(try await store.stats().oldestUnsentTimestamp == nil)
        try await store.close()
    }

    @Test func retentionNeverDropsUnsentEventsAndKeepsTheCounter() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        _ = try await store.appendEvents(makeEvents(1..<21))
        let now = baseDate.addingTimeInterval(30 * 86_400)

        // Odd seqs sent ten days ago, 2 and 4 sent an hour ago, the rest unsent.
        try await store.markSent(seqs: stride(from: 1, through: 19, by: 2).map { Int64($0) },
                                 at: now.addingTimeInterval(-10 * 86_400))
        try await store.markSent(seqs: [2, 4], at: now.addingTimeInterval(-3_600))

        // Age rule: the ten-day-old sent events go.
        #expect(try await store.applyRetention(RetentionPolicy(), now: now) == 10)
        #expect(try await allEvents(store).map(\.seq) == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20])

        // Count rule: at most one sent row is kept (the newest); unsent ones are not counted.
        #expect(try await store.applyRetention(RetentionPolicy(keepSentDays: 7, maxSentRows: 1), now: now) == 1)
        #expect(try await allEvents(store).map(\.seq) == [4, 6, 8, 10, 12, 14, 16, 18, 20])

        // The most aggressive policy still keeps every unsent event.
        #expect(try await store.applyRetention(RetentionPolicy(keepSentDays: 0, maxSentRows: 0), now: now) == 1)
        let left = try await allEvents(store)
        #expect(left.map(\.seq) == [6, 8, 10, 12, 14, 16, 18, 20])
        #expect(left.allSatisfy { $0.sentAt == nil })
        #expect(try await store.applyRetention(RetentionPolicy(keepSentDays: 0, maxSentRows: 0), now: now) == 0)

        // Once everything is sent and deleted, the counter still goes on from 20.
        try await store.markSent(seqs: left.map(\.seq), at: now)
        #expect(try await store.applyRetention(RetentionPolicy(keepSentDays: 0, maxSentRows: 0),
                                               now: now.addingTimeInterval(1)) == 8)
        let empty = try await store.stats()
        #expect(empty.total == 0)
        #expect(empty.lastSeq == 20)
        #expect(try await store.appendEvents([makeEvent(21)]).map(\.seq) == [21])
        try await store.close()

        let reopened = try dir.open()
        #expect(try await reopened.appendEvents([makeEvent(22)]).map(\.seq) == [22])
        #expect(try await allEvents(reopened).map(\.seq) == [21, 22])
        try await reopened.close()
    }

    @Test func retentionDeletesInBatchesAndGivesSpaceBack() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        // ~12 MB of events: more than the free-page reserve, more than one delete batch.
        for chunk in 0..<30 {
            _ = try await store.appendEvents(makeEvents((chunk * 100)..<(chunk * 100 + 100), padding: 4_000))
        }
        try await store.markSent(seqs: Array(1...2_900), at: baseDate)
        try await store.checkpoint()
        let before = fileSize(dir.path)

        let deleted = try await store.applyRetention(RetentionPolicy(keepSentDays: 0, maxSentRows: 0),
                                                     now: baseDate.addingTimeInterval(1))
        #expect(deleted == 2_900)
        try await store.checkpoint()
        let after = fileSize(dir.path)
        print("retention: database file \(before) bytes before, \(after) bytes after deleting 2900 of 3000 events")
        #expect(after < before / 2)
        #expect(try await store.stats().total == 100)
        #expect(try await store.unsentEvents(limit: 1_000).map(\.seq) == Array(2_901...3_000))
        #expect(try await store.integrityCheck() == [])
        try await store.close()
    }

    @Test func statsCountEverything() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        let fresh = try await store.stats()
        #expect(fresh.total == 0)
        #expect(fresh.unsent == 0)
        #expect(fresh.lastSeq == 0)
        #expect(fresh.oldestUnsentTimestamp == nil)
        #expect(fresh.fileBytes > 0)

        _ = try await store.appendEvents(makeEvents(1..<6))
        try await store.markSent(seqs: [1, 2], at: baseDate)
        let stats = try await store.stats()
        #expect(stats.total == 5)
        #expect(stats.unsent == 3)
        #expect(stats.lastSeq == 5)
        #expect(stats.oldestUnsentTimestamp == makeEvent(3).timestamp)
        #expect(stats.fileBytes == fileSize(dir.path) + fileSize(dir.path + "-wal"))
        try await store.close()
    }

    @Test func tailAndSearchByType() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        // seq 1…20; even seqs are door events, odd seqs battery events.
        for n in 1...20 {
            _ = try await store.appendEvents([makeEvent(n, type: n % 2 == 0 ? "slot.door_opened" : "battery.inserted")])
        }
        #expect(try await store.events(fromSeq: nil, type: nil, limit: 3, newestFirst: true).map(\.seq) == [20, 19, 18])
        #expect(try await store.events(fromSeq: nil, type: "slot.door_opened", limit: 3, newestFirst: true).map(\.seq) == [20, 18, 16])
        #expect(try await store.events(fromSeq: 15, type: "slot.door_opened", limit: 3, newestFirst: true).map(\.seq) == [14, 12, 10])
        #expect(try await store.events(fromSeq: 15, type: "battery.inserted", limit: 2, newestFirst: false).map(\.seq) == [15, 17])
        #expect(try await store.events(fromSeq: 18, type: nil, limit: 10, newestFirst: false).map(\.seq) == [18, 19, 20])
        #expect(try await store.events(fromSeq: nil, type: "swap.completed", limit: 10, newestFirst: true).isEmpty)
        #expect(try await store.events(fromSeq: nil, type: nil, limit: 0, newestFirst: true).isEmpty)
        let found = try await store.events(fromSeq: nil, type: "battery.inserted", limit: 100, newestFirst: false)
        #expect(found.count == 10)
        #expect(found.allSatisfy { $0.type == "battery.inserted" })
        try await store.close()
    }

    @Test func metaValuesAreSetReplacedRemovedAndKept() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        #expect(try await store.meta("clean_shutdown") == nil)
        try await store.setMeta("clean_shutdown", "false")
        try await store.setMeta("clean_shutdown", "true")
        try await store.setMeta("cabinet_uptime", "12345")
        #expect(try await store.meta("clean_shutdown") == "true")
        try await store.setMeta("cabinet_uptime", nil)
        #expect(try await store.meta("cabinet_uptime") == nil)
        try await store.close()

        let reopened = try dir.open()
        #expect(try await reopened.meta("clean_shutdown") == "true")
        #expect(try await reopened.meta("cabinet_uptime") == nil)
        try await reopened.close()
    }

    @Test func aRejectedBatchRecordsNothingAndConsumesNoSeq() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        let first = try await store.appendEvents(makeEvents(1..<4))

        // A duplicate event id in the middle of a batch: the whole batch is refused.
        var batch = makeEvents(4..<8)
        batch[2].eventID = first[1].eventID
        await #expect(throws: StoreError.self) { try await store.appendEvents(batch) }
        // An empty type: refused too.
        await #expect(throws: StoreError.self) {
            try await store.appendEvents([makeEvent(8), NewEvent(type: "", timestamp: baseDate, data: [])])
        }
        #expect(try await store.stats().lastSeq == 3)
        #expect(try await store.stats().total == 3)
        #expect(try await store.appendEvents([makeEvent(9)]).map(\.seq) == [4])
        try await store.close()
    }
}
