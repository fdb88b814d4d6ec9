import Acquisition
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import ServiceLifecycle
import StationStore
import StationSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// sd_notify(3) without libsystemd: one datagram per state change to `$NOTIFY_SOCKET` (a path, or an
/// abstract socket when it starts with `@`). Does nothing when the variable is absent (not under systemd).
public struct SystemdNotifier: Sendable {
    public let socketPath: String?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let p = environment["NOTIFY_SOCKET"] ?? ""
        socketPath = p.isEmpty ? nil : p
    }

    /// `WatchdogSec` as the service manager passed it (`WATCHDOG_USEC`, for this PID only), in seconds.
    public static func watchdogInterval(environment: [String: String] = ProcessInfo.processInfo.environment) -> Double? {
        guard let usec = environment["WATCHDOG_USEC"].flatMap(Double.init), usec > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"].flatMap(Int32.init), pid != getpid() { return nil }
        return usec / 1_000_000
    }

    /// Sends `state` (e.g. "READY=1\nSTATUS=…"). Returns false when it could not be delivered.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        guard let socketPath, let address = UnixSocketAddress(path: socketPath) else { return false }
        let payload = Array(state.utf8)
        return (try? address.sendDatagram(payload)) == payload.count
    }
}

/// Tells systemd when the daemon is ready (Type=notify) and keeps its watchdog fed (WatchdogSec) while the
/// daemon's vital loops make progress: the store answers and the acquisition loop keeps cycling. If either
/// hangs, the pings stop and systemd restarts the daemon. Sends STOPPING=1 at graceful shutdown.
public struct SystemdService: Service {
    let notifier: SystemdNotifier
    let ready: ReadyFlag?
    let store: StationStore
    let acquisition: StationAcquisition
    let logger: Logger
    var watchdogInterval: Double? = SystemdNotifier.watchdogInterval()

    public init(notifier: SystemdNotifier, ready: ReadyFlag?, store: StationStore, acquisition: StationAcquisition, logger: Logger) {
        self.notifier = notifier; self.ready = ready; self.store = store; self.acquisition = acquisition; self.logger = logger
    }

    public func run() async throws {
        guard notifier.socketPath != nil else { return try await gracefulShutdown() }
        if let ready { await ready.wait() }
        notifier.notify("READY=1\nSTATUS=running\nMAINPID=\(getpid())")
        logger.info("told systemd the daemon is ready", metadata: ["watchdog": "\(watchdogInterval.map { "\($0) s" } ?? "off")"])
        try? await cancelWhenGracefulShutdown {
            guard let interval = watchdogInterval else {
                // No watchdog: nothing to do until shutdown (no periodic wake-up).
                try await gracefulShutdown()
                return
            }
            var lastCycles = acquisition.statistics.cycles
            var lastProgress = ContinuousClock.now
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(Int64(interval * 500)))
                let cycles = acquisition.statistics.cycles
                if cycles != lastCycles { lastCycles = cycles; lastProgress = .now }
                // The acquisition loop backs off to at most 30 s between attempts while the cabinet is down.
                let acquisitionAlive = ContinuousClock.now - lastProgress < .seconds(max(90, interval * 3))
                let storeAlive = (try? await store.stats()) != nil
                if acquisitionAlive && storeAlive {
                    notifier.notify("WATCHDOG=1")
                } else {
                    logger.critical("vital loop stalled; not feeding the systemd watchdog",
                                    metadata: ["acquisition_alive": "\(acquisitionAlive)", "store_alive": "\(storeAlive)"])
                }
            }
        }
        notifier.notify("STOPPING=1")
    }
}
