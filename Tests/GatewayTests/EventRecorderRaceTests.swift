import ABSProtocol
import Acquisition
import Foundation
import GatewayCore
import Logging
import StationStore
import Testing
import TestSupport

/// `EventRecorder` is an actor, re-entrant at the store's `await`: two flushes at once used to take the same
/// pending events, the second failed on the unique event id and left the store flagged unhealthy (`/health` 503,
/// a `store:` alarm) until another event arrived. Flushes are serialized now.
@Suite struct EventRecorderRaceTests {
    @Test func concurrentRecordsOnARealStoreNeverFlagItUnhealthy() async throws {
        for iteration in 0 ..< 25 {
            let dir = try TempDir("recorder-race")
            defer { dir.remove() }
            let store = try StationStore(path: dir.path("station.sqlite"))
            let health = GatewayHealth()
            let (stream, continuation) = AsyncStream<ChangeBatch>.makeStream()
            let recorder = EventRecorder(store: store, changes: stream, wake: Wakeup(), health: health, logger: Logger(label: "test"))
            let tasks = 12, perTask = 6
            await withTaskGroup(of: Void.self) { group in
                for t in 0 ..< tasks {
                    group.addTask {
                        for k in 0 ..< perTask { await recorder.record([ContractEvent(.cabinetRebooted(oldUptimeS: t, newUptimeS: k))]) }
                    }
                }
            }
            #expect(health.state.storeError == nil, "iteration \(iteration): \(health.state.storeError ?? "")")
            #expect(health.state.eventsPendingInMemory == 0)
            let all = try await store.events(fromSeq: nil, type: nil, limit: 10_000, newestFirst: false)
            #expect(all.count == tasks * perTask, "iteration \(iteration)")
            #expect(all.map(\.seq) == Array(1 ... Int64(tasks * perTask)))
            #expect(Set(all.map(\.eventID)).count == all.count)
            // Every (t, k) recorded exactly once.
            let pairs = Set(all.map { String(decoding: $0.data, as: UTF8.self) })
            #expect(pairs.count == tasks * perTask)
            continuation.finish()
            try await store.close()
        }
    }
}
