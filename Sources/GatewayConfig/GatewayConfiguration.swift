#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Acquisition
import ModbusLink
import StationDomain

/// The gateway's configuration: one YAML file (configs/swapgate.example.yaml documents every key).
/// Every key is optional and has a default except `station.id`. Values are range-checked at load time
/// and every error names its key. Secrets come from files (`*_file`) or the environment, never from logs.
public struct GatewayConfiguration: Sendable {
    public var station = Station()
    /// The station's cabinets in configured order (station-wide slot numbers follow this order). A single
    /// `cabinet:` section is one entry with id "A".
    public var cabinets: [Cabinet] = [Cabinet()]
    /// The first cabinet (the only one with a `cabinet:` section).
    public var cabinet: Cabinet {
        get { cabinets[0] }
        set { cabinets[0] = newValue }
    }
    public var mqtt = MQTT()
    public var store = Store()
    public var publishing = Publishing()
    public var batteries = Batteries()
    public var abs = ABS()
    public var swaps = Swaps()
    public var odoo = Odoo()
    public var control = Control()
    public var metrics = Metrics()
    public var clock = Clock()
    public var logLevel = "info"

    /// Trusted time (contract 1.1 "Time"; docs/operator.md "Clock").
    public struct Clock: Sendable {
        /// `auto`: trusted when synchronised (kernel STA_UNSYNC clear, `syncFlag` present if set), not earlier than
        /// the build and within abs.max_clock_skew of the signed time base; `system`: always trusted (boards with
        /// an RTC, tests); `commands`: never, the time base from signed commands always.
        public var trust = "auto"
        /// A file whose existence says the clock is synchronised (systemd-timesyncd:
        /// /run/systemd/timesync/synchronized). Nil: the kernel's status only.
        public var syncFlag: String?
        /// Whether `auto` also distrusts a clock the kernel calls unsynchronised (adjtimex STA_UNSYNC). Off by
        /// default: on VMs and containers the flag reads "unsynchronised" while the clock is right (seen on this
        /// project's own machines), and judging commands against a signed base there would change what expires.
        /// Turn it on for a board whose NTP client sets the kernel flag (or use `syncFlag`).
        public var kernelFlag = false
    }

    /// The local control API (swapctl talks to the daemon through it).
    public struct Control: Sendable {
        /// Unix socket; created 0660 so that only the service user and its group (technicians) reach it. Empty: off.
        public var socket = "/run/swapgate/control.sock"
        /// `name:sha256-hex` lines: technicians allowed to unlock a slot or take it out of service.
        public var techniciansFile: String?
    }
    /// Prometheus text and the health endpoint over HTTP, on loopback only.
    public struct Metrics: Sendable {
        public var enabled = true
        public var host = "127.0.0.1"
        public var port = 9464
    }

    public struct ABS: Sendable {
        /// kid → Ed25519 public key (base64 of the raw 32 bytes, or PEM).
        public var publicKeys: [String: String] = [:]
        /// Development only: accept commands without a signature (a warning is logged at start).
        public var allowUnsigned = false
        public var maxClockSkew = 120.0
        /// The most bytes an `enc: deflate` command may inflate to (refused `malformed` beyond it).
        public var maxInflatedBytes = 64 * 1024 * 1024
    }
    public struct Swaps: Sendable {
        public var returnTimeout = 120.0
        public var pickupTimeout = 60.0
        public var maxConcurrent = 1
        public var maxCacheStalenessHours = 72.0
        public var allowStaleCache = false
    }
    public struct Odoo: Sendable {
        public var baseURL = ""                    // empty: usage records are kept, not sent
        public var apiKey: String?                 // from api_key_file or SWAPGATE_ODOO_API_KEY
        public var database = ""
        public var requestTimeout = 15.0
        public var maxInFlight = 4
        public var caFile: String?
        public var swapCountService = "service-swap-count"
        public var energyService = "service-energy-gage"
        public var backoffBase = 2.0
        public var backoffCap = 600.0
        public var credentialsDelay = 300.0
    }

    public struct Station: Sendable {
        public var id = ""
        public var networkCode = ""
        public var outletCode = ""
    }
    public struct Cabinet: Sendable {
        /// Shown to technicians (`B/3`) and sent to ABS as `cabinet`.
        public var id = "A"
        /// Modbus unit id of the controller (1…247, not 2: the meter).
        public var unit = 1
        public var transport = "tcp"               // tcp | rtu
        public var host = "127.0.0.1"
        public var port = 502
        public var device = "/dev/ttyS1"
        public var baud = 115_200
        public var parity = "N"
        public var dataBits = 8
        public var stopBits = 1
        public var responseTimeout = 0.5
        public var byteTimeout = 0.05
        public var interFrameDelay = 0.0
        public var retries = 1
        public var fastInterval = 0.5
        public var detailInterval = 10.0
        public var meter = true
        public var meterInterval = 10.0
        public var watchdogInterval = 2.0
        public var clockSyncInterval = 3600.0
        public var staleAfterFailedCycles = 2
        public var expectedSlots: Int?
        /// Longest pause between attempts to read a cabinet that does not answer (the pause doubles from
        /// `fast_interval`): a silent unit costs its bus one timeout per pause, and is read again within it.
        public var reconnectDelayMax = 30.0
    }
    public struct MQTT: Sendable {
        public var host = "127.0.0.1"
        public var port = 1883
        /// `mqtt.hosts`: a broker cluster's addresses, tried in turn (empty: `host`:`port` alone).
        public var hosts: [BrokerAddress] = []
        public var clientID = ""                  // default: "swapgate-<station id>"
        public var protocolVersion = "auto"        // auto (5, else 3.1.1) | 5 | 3.1.1
        /// Seconds between PINGREQs on an idle link (and 1.5× that before the broker publishes the will). 60: half
        /// the pings of the former 30 on a paid cellular link; a dead link is noticed within 90 s.
        public var keepAlive = 60
        public var username: String?
        public var password: String?               // prefer password_file or SWAPGATE_MQTT_PASSWORD
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?
        public var tlsInsecure = false
        public var maxInflight = 100
        public var reconnectDelayMin = 1
        public var reconnectDelayMax = 30
        /// Largest packet taken (MQTT 5 Maximum Packet Size; enforced on receipt with 3.1.1 too):
        /// a 100k-entitlement snapshot envelope (~59 MB) fits under the verifier's 64 MiB payload limit.
        public var maxPacketSize = 64 * 1024 * 1024 + 4096
        /// Largest payload of every command but `entitlements` (swap, unlock, slot, ping, rebirth are small).
        public var maxCommandBytes = 64 * 1024
        /// Payload bytes received commands may hold in memory while they wait (adapter queue, entitlement lane).
        public var maxQueuedBytes = 64 * 1024 * 1024
    }
    /// One `mqtt.hosts` entry: `"host:port"`, an IPv6 address in brackets (`"[::1]:1883"`).
    public struct BrokerAddress: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) { self.host = host; self.port = port }

        /// Nil when malformed: no port, a port outside 1…65535, an empty host, an unbracketed IPv6 address.
        public init?(parsing text: String) {
            let host: Substring, portText: Substring
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]") else { return nil }
                host = text[text.index(after: text.startIndex)..<close]
                let rest = text[text.index(after: close)...]
                guard rest.hasPrefix(":"), host.contains(":") else { return nil }
                portText = rest.dropFirst()
            } else {
                guard let colon = text.lastIndex(of: ":") else { return nil }
                host = text[..<colon]
                portText = text[text.index(after: colon)...]
                if host.contains(":") { return nil }
            }
            guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "\0" || $0 == "[" || $0 == "]" || $0 == "/" }),
                  portText.allSatisfy(\.isASCII), let port = Int(portText), (1...65535).contains(port) else { return nil }
            self.host = String(host); self.port = port
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public struct Store: Sendable {
        public var path = "/var/lib/swapgate/station.sqlite"
        public var keepSentDays = 7.0
        public var maxSentRows = 200_000
        public var keepSettledDays = 90.0
        public var keepAuditDays = 365.0
    }
    public struct Publishing: Sendable {
        public var telemetryInterval = 60.0
        /// Seconds between `full` telemetry reports (also sent at connection and on rebirth). 900: the contract's
        /// default (abs-mqtt.md 1.1, "every full interval (default 15 min)"). The cellular profile sets 3600: a 9.4 KB
        /// full report every 15 min alone costs 0.9 MB a day; ABS sees a lost `changes` by `tseq` and asks for rebirth.
        public var telemetryFullInterval = 900.0
        /// `changes` (telemetry by exception) or `full` (a full report every interval, the pre-1.1 behaviour).
        public var telemetryMode = "changes"
        /// Per-measurement deadbands of `changes` reports (docs/events-and-mqtt.md).
        public var deadbands = TelemetryDeadbands()
        /// Compact OVES attribute codes for telemetry keys (docs/events-and-mqtt.md, "Compact keys").
        public var compactKeys = false
        public var inventoryDebounce = 1.0
        public var publishWindow = 100
        /// Bytes per second at which a backlog of events drains after an outage (0 = unlimited; default sized for
        /// GPRS). docs/events-and-mqtt.md "Backlog after an outage".
        public var backlogRate = 2000.0
        /// Monthly MQTT budget in MB (10^6 bytes), nil: none. When the month's forecast exceeds it, telemetry
        /// intervals and deadbands widen (TelemetryGovernor); events, replies, status and inventory never.
        public var monthlyBudgetMB: Double?
        /// Seconds between the governor's evaluations (one widening or relaxing step each).
        public var budgetCheckInterval = 3600.0
        /// The widest the governor goes: intervals and deadbands × this (a power of two).
        public var budgetMaxFactor = 8
    }
    public struct Batteries: Sendable {
        public var readySoC = 95.0
        public var minSoH = 70.0
        public var handoutTempMin = 0.0
        public var handoutTempMax = 45.0
        public var quarantineTemp = 60.0
        public var releaseTemp = 50.0
    }

    public init() {}

    // MARK: Derived settings

    /// The first cabinet's acquisition (one cabinet: the cabinet's).
    public var acquisition: AcquisitionConfiguration { acquisition(of: cabinet) }

    /// Every cabinet's acquisition, in configured order.
    public var acquisitions: [AcquisitionConfiguration] { cabinets.map(acquisition(of:)) }

    /// The bus a cabinet is on: entries with the same RTU device or the same TCP host and port share it.
    public static func busKey(_ c: Cabinet) -> String {
        c.transport == "rtu" ? "rtu:\(c.device)" : "tcp:\(c.host):\(c.port)"
    }

    public func acquisition(of cabinet: Cabinet) -> AcquisitionConfiguration {
        let transport: ModbusTransport = cabinet.transport == "rtu"
            ? .rtu(device: cabinet.device, baud: cabinet.baud, parity: ModbusTransport.Parity(rawValue: cabinet.parity) ?? .none,
                   dataBits: cabinet.dataBits, stopBits: cabinet.stopBits)
            : .tcp(host: cabinet.host, port: cabinet.port)
        var a = AcquisitionConfiguration(transport: transport, timings: ModbusTimings(
            responseTimeout: cabinet.responseTimeout, byteTimeout: cabinet.byteTimeout,
            interFrameDelay: cabinet.interFrameDelay, retries: cabinet.retries))
        a.fastInterval = cabinet.fastInterval
        a.detailInterval = cabinet.detailInterval
        a.meterEnabled = cabinet.meter
        a.meterInterval = cabinet.meterInterval
        a.watchdogInterval = cabinet.watchdogInterval
        a.clockSyncInterval = cabinet.clockSyncInterval
        a.staleAfterFailedCycles = cabinet.staleAfterFailedCycles
        a.expectedSlotCount = cabinet.expectedSlots
        a.reconnectDelayMax = cabinet.reconnectDelayMax
        a.cabinetID = cabinet.id
        a.unit = UInt8(clamping: cabinet.unit)
        a.batteryPolicy = batteryPolicy
        return a
    }

    public var batteryPolicy: BatteryPolicy {
        BatteryPolicy(readySoC: batteries.readySoC, minSoH: batteries.minSoH,
                      handoutTemperature: batteries.handoutTempMin ... batteries.handoutTempMax,
                      quarantineTemperature: batteries.quarantineTemp, releaseTemperature: batteries.releaseTemp)
    }

    /// The broker addresses the daemon cycles through: `mqtt.hosts`, or `mqtt.host`:`mqtt.port`.
    public var mqttAddresses: [BrokerAddress] { mqtt.hosts.isEmpty ? [BrokerAddress(host: mqtt.host, port: mqtt.port)] : mqtt.hosts }
    public var mqttClientID: String { mqtt.clientID.isEmpty ? "swapgate-\(station.id)" : mqtt.clientID }
}

/// A configuration problem, naming the key.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible, Equatable {
    public let key: String
    public let message: String
    public init(_ key: String, _ message: String) { self.key = key; self.message = message }
    public var description: String { "\(key): \(message)" }
}

/// All problems found in one file, so an operator fixes them in one go.
public struct ConfigurationErrors: Error, Sendable, CustomStringConvertible {
    public let errors: [ConfigurationError]
    public var description: String {
        "configuration has \(errors.count) problem(s):\n" + errors.map { "  - \($0)" }.joined(separator: "\n")
    }
}
