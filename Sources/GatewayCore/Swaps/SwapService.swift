import Acquisition
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import ServiceLifecycle
import StationDomain

/// Drives running swaps: evaluates the coordinator on every change batch of the acquisition, at the nearest
/// swap deadline (return/pickup timeouts, open-door grace, verify timeout, a stage write to retry) and when
/// the coordinator wakes it (a swap accepted, an unlock that failed). With no swap in progress and nothing
/// changing it sleeps: no periodic wake-up (docs/swaps.md "Driving swaps").
///
/// At start it waits for the first cabinet reading (up to `firstReadingTimeout`), reconciles swaps a power cut
/// interrupted, then sets `coordinator.started`, which the command service waits for before taking commands.
public struct SwapService: Service {
    let coordinator: SwapCoordinator
    let acquisition: StationAcquisition
    let changes: AsyncStream<ChangeBatch>
    let logger: Logger
    var firstReadingTimeout: Double = 60

    public init(coordinator: SwapCoordinator, acquisition: StationAcquisition, logger: Logger, firstReadingTimeout: Double = 60) {
        self.coordinator = coordinator; self.acquisition = acquisition; self.logger = logger
        self.firstReadingTimeout = firstReadingTimeout
        // Subscribed now, so no batch between construction and run() is missed.
        changes = acquisition.broadcast.subscribe()
    }

    public func run() async throws {
        let wake = coordinator.wakeup
        let changes = changes
        // Each change batch wakes the loop; batches arriving while it evaluates collapse into one wake-up
        // (evaluation reads the latest snapshot, not the batch).
        let forward = Task {
            for await _ in changes { wake.signal() }
        }
        defer { forward.cancel() }
        await withGracefulShutdownHandler {
            let until = ContinuousClock.now.advanced(by: .milliseconds(Int64(firstReadingTimeout * 1000)))
            while !Self.readable(acquisition.snapshot), !Task.isShuttingDownGracefully, ContinuousClock.now < until {
                await wake.wait(until: until)
            }
            if !Task.isShuttingDownGracefully {
                // After 60 s without a reading the coordinator keeps trying (nextDeadline) and refuses swaps
                // with station_busy until it could.
                await coordinator.reconcileAfterRestart()
            }
            coordinator.started.set()
            while !Task.isShuttingDownGracefully {
                await coordinator.evaluate()
                let deadline = await coordinator.nextDeadline()
                // A few ms late rather than early: a timeout is judged with `>=` against the wall clock.
                await wake.wait(until: deadline.map { ContinuousClock.now.advanced(by: .milliseconds(Int64(max(0, $0.timeIntervalSinceNow) * 1000) + 5)) })
            }
        } onGracefulShutdown: {
            wake.signal()
        }
    }

    /// A cabinet reading to judge swaps against: a cabinet's data, and not stale.
    static func readable(_ snap: StationSnapshot) -> Bool {
        (snap.cabinet != nil || snap.cabinets.contains { $0.info != nil }) && !snap.cabinetStale
    }
}
