import Foundation
import SQLiteLink
import Testing
import TestSupport
@testable import StationStore

/// Environment of the child process of `seqStaysGapFreeWhenTheWriterIsKilled`.
enum CrashChild {
    static let dbKey = "STATIONSTORE_CRASH_CHILD_DB"
    static let progressKey = "STATIONSTORE_CRASH_CHILD_PROGRESS"
    static var dbPath: String? { ProcessInfo.processInfo.environment[dbKey] }
    static var progressPath: String? { ProcessInfo.processInfo.environment[progressKey] }

    /// The highest seq the child reported as committed (last complete line of the progress file).
    static func lastReported(_ path: String) -> Int64 {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        return text.split(separator: "\n", omittingEmptySubsequences: true)
            .dropLast(text.hasSuffix("\n") ? 0 : 1)
            .last.flatMap { Int64($0) } ?? 0
    }
}

/// Not a test on its own: the body of the child process that the SIGKILL test starts (this
/// same test binary, filtered to this function). It appends batches of 1–5 events in a loop
/// through the real `StationStore`, and after each commit writes the batch's last seq to the
/// progress file, until the parent kills it (or 120 s pass).
@Test(.enabled(if: CrashChild.dbPath != nil, "runs only as the child of the SIGKILL test"))
func crashChildAppendLoop() async throws {
    let store = try StationStore(path: try #require(CrashChild.dbPath))
    let progressPath = try #require(CrashChild.progressPath)
    let progress = try #require(FileHandle(forWritingAtPath: progressPath))
    _ = try progress.seekToEnd()
    let deadline = Date().addingTimeInterval(120)
    var round = 0
    while Date() < deadline {
        let count = 1 + round % 5
        let stored = try await store.appendEvents(makeEvents(round..<(round + count), padding: 200))
        try progress.write(contentsOf: Data("\(stored.last!.seq)\n".utf8))
        round += 1
    }
}

@Suite("Durability")
struct DurabilityTests {
    @Test func seqContinuesAcrossReopening() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        for cycle in 0..<5 {
            let store = try dir.open()
            let stored = try await store.appendEvents(makeEvents(0..<10))
            #expect(stored.map(\.seq) == Array(Int64(cycle * 10 + 1)...Int64(cycle * 10 + 10)))
            try await store.close()
        }
        let store = try dir.open()
        #expect(try await allEvents(store).map(\.seq) == Array(1...50))
        try await store.close()
    }

    /// A real process crash: a child process appending through `StationStore` is killed with
    /// SIGKILL at a random moment, three times over the same file. What it proves: every
    /// transaction the child saw committed is in the log, no partial transaction is, the seqs
    /// are 1…last without a gap, the counter agrees, and the next append continues at last+1.
    /// What it does not prove: survival of a power cut (the OS page cache outlives a killed
    /// process); that rests on `synchronous = FULL` (checked in `durabilitySettingsAreInForce`).
    @Test func seqStaysGapFreeWhenTheWriterIsKilled() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let progress = dir.dir.path("progress.txt")
        var expectedNext: Int64 = 1
        for round in 0..<3 {
            _ = FileManager.default.createFile(atPath: progress, contents: nil)
            let child = try ManagedProcess(
                CommandLine.arguments[0],
                ["--testing-library", "swift-testing", "--filter", "crashChildAppendLoop"],
                name: "store-crash-child",
                environment: [CrashChild.dbKey: dir.path, CrashChild.progressKey: progress])
            let target = expectedNext + 150
            let progressed = await eventuallyAsync(timeout: 120) { CrashChild.lastReported(progress) >= target }
            #expect(progressed, "child made no progress: \(child.output().suffix(2_000))")
            try await Task.sleep(nanoseconds: UInt64.random(in: 0..<20_000_000))
            child.killHard()
            #expect(child.process.terminationReason == .uncaughtSignal)
            #expect(FileManager.default.fileExists(atPath: dir.path + "-wal"), "a killed writer leaves its WAL")
            let acknowledged = CrashChild.lastReported(progress)

            let store = try dir.open()
            let stats = try await store.stats()
            let seqs = try await allEvents(store).map(\.seq)
            #expect(stats.lastSeq >= acknowledged, "round \(round): a committed append was lost")
            #expect(stats.lastSeq >= expectedNext)
            #expect(seqs == Array(1...stats.lastSeq), "round \(round): gap or duplicate")
            #expect(try await store.integrityCheck() == [])
            let next = try await store.appendEvents([makeEvent(0, type: "gateway.started")])
            #expect(next.map(\.seq) == [stats.lastSeq + 1])
            try await store.close()
            print("crash round \(round): child acknowledged seq \(acknowledged), log holds 1…\(stats.lastSeq)")
            expectedNext = stats.lastSeq + 2
        }
    }

    /// A transaction that fails midway (here: the body throws after appending events and
    /// writing meta) leaves nothing behind and consumes no seq.
    @Test func aFailedTransactionRollsBackEventsAndCounter() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        _ = try await store.appendEvents(makeEvents(1..<4))

        await #expect(throws: Boom.self) {
            try await store.write { db in
                let stored = try StationStore.appendEvents(makeEvents(4..<10), in: db)
                #expect(stored.map(\.seq) == Array(4...9))
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('swap_in_progress', 's-1')")
                throw Boom()
            }
        }
        #expect(try await store.stats().lastSeq == 3)
        #expect(try await store.stats().total == 3)
        #expect(try await store.meta("swap_in_progress") == nil)

        // Events written together with other rows commit together.
        let committed = try await store.write { db in
            let stored = try StationStore.appendEvents(makeEvents(10..<12, type: "swap.completed"), in: db)
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('last_swap', 's-2')")
            return stored
        }
        #expect(committed.map(\.seq) == [4, 5])
        #expect(try await store.meta("last_swap") == "s-2")

        // Outside a write transaction appendEvents(_:in:) refuses to run.
        await #expect(throws: StoreError.self) {
            try await store.read { db in try StationStore.appendEvents([makeEvent(1)], in: db) }
        }
        #expect(try await store.stats().lastSeq == 5)
        try await store.close()
    }

    @Test func migrationsAreRecordedByNameAndRunOnce() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let expected = ["v1-event-log", "v1-meta", "v2-entitlements", "v2-swaps", "v2-usage", "v2-audit", "v2-seen-requests", "v3-counted-through-seq",
                        "v4-per-record-counted-through", "v5-entitlement-snapshot-parts"]
        let store = try dir.open()
        let names = try await store.read { db in
            try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid")
        }
        #expect(names == expected)
        _ = try await store.appendEvents(makeEvents(1..<8))
        try await store.setMeta("clean_shutdown", "true")
        try await store.close()

        for _ in 0..<2 {
            let reopened = try dir.open()
            let again = try await reopened.read { db in
                try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid")
            }
            #expect(again == expected)
            // Re-running v1-event-log would have failed (tables exist) or reset the counter.
            #expect(try await reopened.stats().lastSeq == 7)
            #expect(try await reopened.meta("clean_shutdown") == "true")
            try await reopened.close()
        }
    }

    @Test func durabilitySettingsAreInForce() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        // Read on the writing connection, the one whose commits must be durable.
        let settings = try await store.write { db in
            [try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "",
             "\(try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1)",
             "\(try Int.fetchOne(db, sql: "PRAGMA foreign_keys") ?? -1)",
             "\(try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") ?? -1)",
             "\(try Int.fetchOne(db, sql: "PRAGMA busy_timeout") ?? -1)"]
        }
        #expect(settings == ["wal", "2", "1", "2", "5000"])  // 2 = FULL; auto_vacuum 2 = INCREMENTAL
        try await store.close()

        // The benchmark-only NORMAL mode really is different (so the check above can fail).
        let normal = try StationStore(path: dir.path, maxPageCount: nil, synchronous: .normal)
        #expect(try await normal.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == 1)
        try await normal.close()
    }

    @Test func checkpointEmptiesTheWAL() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        _ = try await store.appendEvents(makeEvents(1..<200, padding: 500))
        #expect(fileSize(dir.path + "-wal") > 0)
        try await store.checkpoint()
        #expect(fileSize(dir.path + "-wal") == 0)
        #expect(try await store.stats().lastSeq == 199)
        try await store.close()
    }

    @Test func integrityCheckFindsABrokenCounterAndAppendsNeverOverwrite() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        _ = try await store.appendEvents(makeEvents(1..<6))
        #expect(try await store.integrityCheck() == [])

        try await store.write { db in try db.execute(sql: "UPDATE event_seq SET last_seq = 2") }
        let problems = try await store.integrityCheck()
        #expect(problems.count == 1)
        #expect(problems.first?.contains("last_seq 2") == true)
        // seq 3 exists: the append fails instead of replacing it.
        await #expect(throws: StoreError.self) { try await store.appendEvents([makeEvent(6)]) }
        #expect(try await allEvents(store).map(\.data) == makeEvents(1..<6).map(\.data))
        try await store.close()
    }

    @Test func sqliteErrorsAreMappedAndNameTheFile() async throws {
        let dir = try StoreDir(); defer { dir.remove() }

        // Not a database.
        let garbage = dir.dir.path("garbage.sqlite")
        #expect(FileManager.default.createFile(atPath: garbage, contents: Data(repeating: 0x5a, count: 8_192)))
        do {
            _ = try StationStore(path: garbage)
            Issue.record("opening a non-database file succeeded")
        } catch let StoreError.corrupt(message) {
            #expect(message.contains(garbage))
        }

        // A directory that does not exist.
        let nowhere = dir.dir.path("missing/station.sqlite")
        do {
            _ = try StationStore(path: nowhere)
            Issue.record("opening in a missing directory succeeded")
        } catch let StoreError.io(message) {
            #expect(message.contains(nowhere))
        }

        // SQLITE_READONLY (file permissions do not stop root, so `query_only` stands in).
        let store = try dir.open()
        await #expect {
            try await store.write { db in
                try db.execute(sql: "PRAGMA query_only = 1")
                defer { try? db.execute(sql: "PRAGMA query_only = 0") }
                _ = try StationStore.appendEvents([makeEvent(1)], in: db)
            }
        } throws: { error in
            if case StoreError.readOnly = error { return true }
            return false
        }
        #expect(try await store.appendEvents([makeEvent(2)]).map(\.seq) == [1])

        // A closed store refuses politely.
        try await store.close()
        await #expect(throws: StoreError.self) { try await store.stats() }
    }
}
