import ModbusLink
import StationDomain

/// How the gateway reads the cabinet. Every value has a default that suits a 16-slot cabinet on TCP.
public struct AcquisitionConfiguration: Sendable, Hashable {
    public var transport: ModbusTransport
    public var timings: ModbusTimings
    /// The cabinet's configured id (`cabinets[].id`; "A" for a single `cabinet:`).
    public var cabinetID = "A"
    /// The controller's Modbus unit id (1 unless several cabinets share a bus; 2 is the meter).
    public var unit: UInt8 = CabinetMap.cabinetUnit
    /// Period of the fast loop: device block + slot summary (2 requests), seconds.
    public var fastInterval: Double = 0.5
    /// Period of the full refresh of every slot block (BMS values drift while charging), seconds.
    public var detailInterval: Double = 10
    /// Read the energy meter on unit 2 (optional hardware) every `meterInterval` seconds. One per station: with
    /// several cabinets, the first cabinet's bus reads it unless configured otherwise.
    public var meterEnabled: Bool = true
    public var meterInterval: Double = 10
    /// Watchdog write period (the controller wants one at least every 5 s), seconds.
    public var watchdogInterval: Double = 2
    /// The cabinet clock is set at start, after every controller reboot and then every this many seconds.
    public var clockSyncInterval: Double = 3600
    /// A slot, or the whole cabinet, is "unknown" (stale) after this many failed cycles in a row.
    public var staleAfterFailedCycles: Int = 2
    /// Reconnect backoff bounds, seconds. A cabinet that does not answer is polled at this backoff (doubling up
    /// to the maximum), so a silent unit does not take the time of the others on a shared bus.
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
