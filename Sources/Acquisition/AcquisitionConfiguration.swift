import ModbusLink
import StationDomain

/// How the gateway reads the cabinet. Every value has a default that suits a 16-slot cabinet on TCP.
public struct AcquisitionConfiguration: Sendable, Hashable {
    public var transport: ModbusTransport
    public var timings: ModbusTimings
    /// Period of the fast loop: device block + slot summary (2 requests), seconds.
    public var fastInterval: Double = 0.5
    /// Period of the full refresh of every slot block (BMS values drift while charging), seconds.
    public var detailInterval: Double = 10
    /// Read the energy meter on unit 2 (optional hardware) every `meterInterval` seconds.
    public var meterEnabled: Bool = true
    public var meterInterval: Double = 10
    /// Watchdog write period (the controller wants one at least every 5 s), seconds.
    public var watchdogInterval: Double = 2
    /// The cabinet clock is set at start, after every controller reboot and then every this many seconds.
    public var clockSyncInterval: Double = 3600
    /// A slot, or the whole cabinet, is "unknown" (stale) after this many failed cycles in a row.
    public var staleAfterFailedCycles: Int = 2
    /// Reconnect backoff bounds, seconds.
    public var reconnectDelayMin: Double = 0.5
    public var reconnectDelayMax: Double = 30
    /// The slot count the operator expects; a cabinet reporting another count is logged as a warning.
    public var expectedSlotCount: Int?
    public var batteryPolicy = BatteryPolicy()

    public init(transport: ModbusTransport, timings: ModbusTimings = ModbusTimings()) {
        self.transport = transport
        self.timings = timings
    }
}
