import Acquisition
import ServiceLifecycle

/// Runs the cabinet acquisition loop as a service; at shutdown the loop stops, closes the bus and
/// finishes the change stream, which lets the event recorder drain and stop after it.
public struct AcquisitionService: Service {
    public let acquisition: StationAcquisition
    public init(acquisition: StationAcquisition) { self.acquisition = acquisition }
    public func run() async throws {
        await cancelWhenGracefulShutdown { await acquisition.run() }
    }
}
