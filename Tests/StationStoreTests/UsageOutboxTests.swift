import Foundation
import SQLiteLink
import Testing
import TestSupport
import StationDomain
@testable import StationStore

@Suite("Usage outbox and audit")
struct UsageOutboxTests {
    /// Completes swaps s-0…s-(n-1), one after the other, each with a usage record key-s-i.
    func completeSwaps(_ store: StationStore, _ n: Int) async throws {
        for i in 0..<n {
            try await insertAndComplete(store, makeSwap("s-\(i)", at: at(Double(i) * 100)), at: at(Double(i) * 100 + 60))
        }
    }

    @Test func usageIsSentOldestFirstAndRejectedOnesDoNotBlock() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await completeSwaps(store, 5)
        let now = at(10_000)
        #expect(try await store.dueUsage(now: now, limit: 10).map(\.record.swapID) == ["s-0", "s-1", "s-2", "s-3", "s-4"])
        #expect(try await store.dueUsage(now: now, limit: 2).map(\.record.swapID) == ["s-0", "s-1"])
        // Not due before it was created.
        #expect(try await store.dueUsage(now: at(165), limit: 10).map(\.record.swapID) == ["s-0", "s-1"])
        #expect(try await store.usageStats() == UsageStats(pending: 5, rejected: 0, settled: 0, oldestPendingAt: at(60)))

        // s-0 rejected (validation), s-1 deferred (transient), s-2 settled.
        try await store.markUsageRejected(key: "key-s-0", error: "Unknown subscription", at: now)
        try await store.deferUsage(key: "key-s-1", error: "HTTP 503", nextAttemptAt: at(10_060))
        try await store.deferUsage(key: "key-s-1", error: "timeout", nextAttemptAt: at(10_120))
        try await store.markUsageSettled(key: "key-s-2", odooLogID: 5531, at: now)
        #expect(try await store.dueUsage(now: now, limit: 10).map(\.record.swapID) == ["s-3", "s-4"])
        #expect(try await store.dueUsage(now: at(10_120), limit: 10).map(\.record.swapID) == ["s-1", "s-3", "s-4"])
        let deferred = try #require(await store.usage(key: "key-s-1"))
        #expect(deferred.attempts == 2)
        #expect(deferred.lastError == "timeout")
        #expect(deferred.nextAttemptAt == at(10_120))
        #expect(try await store.usageStats() == UsageStats(pending: 3, rejected: 1, settled: 1, oldestPendingAt: at(160)))

        // Listable by state, newest first.
        let rejected = try await store.listUsage(state: .rejected, limit: 10)
        #expect(rejected.map(\.record.swapID) == ["s-0"])
        #expect(rejected.first?.lastError == "Unknown subscription")
        #expect(rejected.first?.attempts == 1, "a rejection is an attempt")
        #expect(try await store.listUsage(state: nil, limit: 3).map(\.record.swapID) == ["s-4", "s-3", "s-2"])
        #expect(try await store.listUsage(state: .settled, limit: 10).map(\.odooLogID) == [5531])

        // Re-sent by hand: pending again, due now, back in its place (oldest first).
        #expect(try await store.resendUsage(key: "key-s-0", now: at(10_001)))
        #expect(try await store.resendUsage(key: "nope", now: at(10_001)) == false)
        #expect(try await store.resendUsage(key: "key-s-2", now: at(10_001)) == false, "a settled record is not re-sent")
        let resent = try #require(await store.usage(key: "key-s-0"))
        #expect(resent.state == .pending)
        #expect(resent.attempts == 0)
        #expect(resent.nextAttemptAt == at(10_001))
        #expect(try await store.dueUsage(now: at(10_001), limit: 10).map(\.record.swapID) == ["s-0", "s-3", "s-4"])

        // Settled once: the first settlement stays; no later rejection or deferral undoes it.
        try await store.markUsageSettled(key: "key-s-2", odooLogID: 9999, at: at(20_000))
        try await store.markUsageRejected(key: "key-s-2", error: "late", at: at(20_000))
        try await store.deferUsage(key: "key-s-2", error: "late", nextAttemptAt: at(20_000))
        let settled = try #require(await store.usage(key: "key-s-2"))
        #expect(settled.state == .settled)
        #expect(settled.odooLogID == 5531)
        #expect(settled.settledAt == now)
        #expect(settled.attempts == 1, "the answer that settled it is an attempt; later calls change nothing")
        #expect(settled.lastError == nil)
        await #expect(throws: UsageOutboxError.unknownUsage("nope")) {
            try await store.markUsageSettled(key: "nope", odooLogID: nil, at: now)
        }
        await #expect(throws: UsageOutboxError.unknownUsage("nope")) {
            try await store.deferUsage(key: "nope", error: "x", nextAttemptAt: now)
        }
        try await store.close()

        // Survives a restart.
        let reopened = try dir.open()
        #expect(try await reopened.usageStats() == UsageStats(pending: 4, rejected: 0, settled: 1, oldestPendingAt: at(60)))
        #expect(try await reopened.usage(key: "key-s-2") == settled)
        try await reopened.close()
    }

    /// Keys are unique: a second swap with the same idempotency key fails whole.
    @Test func usageKeysAreUnique() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        try await insertAndComplete(store, makeSwap("s-1"))
        let swap = makeSwap("s-2")
        _ = try await store.insertSwap(swap, events: [], audit: [])
        let done = completed(swap)
        await #expect(throws: StoreError.self) {
            try await store.completeSwap(done, pending: nil, usage: makeUsage(for: done, key: "key-s-1"), events: [], audit: [])
        }
        #expect(try await store.swap(id: "s-2")?.stage == .accepted)
        #expect(try await store.usageStats().pending == 1)
        try await store.close()
    }

    @Test func auditIsNewestFirstAndKeepsItsFields() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        let lines = (0..<5).map {
            AuditEntry(timestamp: at(Double($0)), actor: "technician:\($0)", action: "maintenance.unlock",
                       detail: #"{"slot":\#($0),"reason":"stuck \"door\""}"#)
        }
        try await store.appendAudit(Array(lines[0..<3]))
        try await store.appendAudit([])
        try await store.appendAudit(Array(lines[3...]))
        #expect(try await store.audit(limit: 10) == lines.reversed())
        #expect(try await store.audit(limit: 2) == [lines[4], lines[3]])
        await #expect(throws: StoreError.self) {
            try await store.appendAudit([lines[0], AuditEntry(timestamp: at(9), actor: "x", action: "", detail: "{}")])
        }
        #expect(try await store.audit(limit: 10).count == 5, "a refused batch writes none of its lines")
        try await store.close()
    }
}

@Suite("Record retention")
struct RecordRetentionTests {
    /// Settled usage past its days goes, with its swap; pending and rejected usage and their swaps stay; old audit goes.
    @Test func settledUsageFinishedSwapsAndOldAuditAreDeletedNothingElse() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        for i in 0 ..< 4 {
            try await insertAndComplete(store, makeSwap("s-\(i)", at: at(Double(i) * 100)), at: at(Double(i) * 100 + 60))
        }
        // s-0 and s-1 settled on day 0, s-2 rejected, s-3 still pending.
        try await store.markUsageSettled(key: "key-s-0", odooLogID: 1, at: at(1_000))
        try await store.markUsageSettled(key: "key-s-1", odooLogID: 2, at: at(1_000))
        try await store.markUsageRejected(key: "key-s-2", error: "Unknown subscription", at: at(1_000))
        try await store.appendAudit([AuditEntry(timestamp: at(2_000), actor: "technician:alice", action: "maintenance.unlock", detail: "{}")])
        let auditBefore = try await rowCount(store, "audit")

        // Within every retention period: nothing goes.
        #expect(try await store.applyRecordRetention(RecordRetention(), now: at(86_400 * 30)) == 0)

        // 100 days later: the settled records and their swaps go; the audit (365 days) stays.
        let policy = RecordRetention(keepSettledUsageDays: 90, keepFinishedSwapDays: 90, keepAuditDays: 365)
        #expect(try await store.applyRecordRetention(policy, now: at(86_400 * 100)) == 2, "the 2 settled usage records")
        #expect(try await store.usage(key: "key-s-0") == nil)
        #expect(try await store.usage(key: "key-s-1") == nil)
        #expect(try await store.usage(key: "key-s-2")?.state == .rejected)
        #expect(try await store.usage(key: "key-s-3")?.state == .pending)
        // Their swaps stay while ABS has not counted them yet (pending local swaps) …
        #expect(try await store.swap(id: "s-0") != nil)
        // … and go once it has (a snapshot issued after the PUBACK clears those rows).
        try await store.write { db in try db.execute(sql: "DELETE FROM pending_local_swap WHERE swap_id IN ('s-0', 's-1')") }
        #expect(try await store.applyRecordRetention(policy, now: at(86_400 * 100)) == 2, "their 2 swaps")
        #expect(try await store.swap(id: "s-0") == nil)
        #expect(try await store.swap(id: "s-1") == nil)
        #expect(try await store.swap(id: "s-2") != nil)
        #expect(try await store.swap(id: "s-3") != nil)
        #expect(try await rowCount(store, "audit") == auditBefore)

        // 400 days later: the audit lines go too; rejected and pending records never do.
        #expect(try await store.applyRecordRetention(policy, now: at(86_400 * 400)) == auditBefore)
        #expect(try await store.usage(key: "key-s-2") != nil)
        #expect(try await store.usage(key: "key-s-3") != nil)
        try await store.close()
    }
}
