/// How the gateway reaches the cabinet: Modbus TCP, or RTU over an RS-485 serial device.
public enum ModbusTransport: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case rtu(device: String, baud: Int, parity: Parity, dataBits: Int, stopBits: Int)

    public enum Parity: String, Sendable, Hashable, Codable {
        case none = "N", even = "E", odd = "O"
    }

    public var description: String {
        switch self {
        case let .tcp(host, port): "tcp://\(host):\(port)"
        case let .rtu(device, baud, parity, dataBits, stopBits): "rtu://\(device)@\(baud)-\(dataBits)\(parity.rawValue)\(stopBits)"
        }
    }
    public var isSerial: Bool { if case .rtu = self { true } else { false } }
}

/// Timeouts, retries and bus pacing for one connection.
public struct ModbusTimings: Sendable, Hashable {
    /// How long to wait for the first byte of a response (seconds).
    public var responseTimeout: Double = 0.5
    /// How long to wait between two bytes of one response (seconds).
    public var byteTimeout: Double = 0.05
    /// Silence kept on the bus before each request (seconds); RS-485 devices need ≥ 3.5 character times.
    public var interFrameDelay: Double = 0
    /// How often a request that timed out or arrived corrupted is repeated before it fails.
    /// An exception reply is an answer and is never repeated here.
    public var retries: Int = 1
    public init() {}
    public init(responseTimeout: Double, byteTimeout: Double = 0.05, interFrameDelay: Double = 0, retries: Int = 1) {
        self.responseTimeout = responseTimeout; self.byteTimeout = byteTimeout
        self.interFrameDelay = interFrameDelay; self.retries = retries
    }
}

/// Modbus exception codes a device can answer with.
public enum ModbusException: UInt8, Sendable, Hashable, CustomStringConvertible {
    case illegalFunction = 1, illegalDataAddress = 2, illegalDataValue = 3, serverFailure = 4
    case acknowledge = 5, serverBusy = 6, negativeAcknowledge = 7, memoryParity = 8
    case gatewayPath = 10, gatewayTarget = 11
    public var description: String {
        switch self {
        case .illegalFunction: "exception 01 illegal function"
        case .illegalDataAddress: "exception 02 illegal data address"
        case .illegalDataValue: "exception 03 illegal data value"
        case .serverFailure: "exception 04 server failure"
        case .acknowledge: "exception 05 acknowledge"
        case .serverBusy: "exception 06 server busy"
        case .negativeAcknowledge: "exception 07 negative acknowledge"
        case .memoryParity: "exception 08 memory parity error"
        case .gatewayPath: "exception 10 gateway path unavailable"
        case .gatewayTarget: "exception 11 gateway target failed to respond"
        }
    }
}

public enum ModbusError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The device answered with an exception: the link is fine.
    case exception(ModbusException)
    /// No (complete) answer within the response timeout.
    case timeout
    /// A frame arrived but was corrupted (CRC) or did not match the request.
    case badResponse(String)
    /// The link itself failed (refused, reset, device gone): reconnect.
    case link(String)
    case notConnected
    case invalidRequest(String)

    public var description: String {
        switch self {
        case let .exception(e): e.description
        case .timeout: "timed out waiting for a response"
        case let .badResponse(s): "bad response: \(s)"
        case let .link(s): "link error: \(s)"
        case .notConnected: "not connected"
        case let .invalidRequest(s): "invalid request: \(s)"
        }
    }

    /// True when the connection should be closed and opened again before the next request.
    public var needsReconnect: Bool {
        switch self {
        case .link, .notConnected: true
        default: false
        }
    }
}

/// Counters of one connection, for diagnostics and metrics.
public struct ModbusStatistics: Sendable, Hashable, Codable {
    public var requests: Int = 0
    public var failures: Int = 0
    public var timeouts: Int = 0
    public var exceptions: Int = 0
    public var retries: Int = 0
    public var reconnects: Int = 0
    /// Sum of round-trip times of successful requests, seconds.
    public var totalRoundTrip: Double = 0
    public var lastRoundTrip: Double = 0
    public var lastError: String?
    public init() {}
    public var meanRoundTrip: Double { requests - failures > 0 ? totalRoundTrip / Double(requests - failures) : 0 }
}
