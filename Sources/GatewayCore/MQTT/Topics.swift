/// The ABS contract's topics for one station (abs-mqtt.md).
public struct Topics: Sendable {
    public let stationID: String
    public init(stationID: String) { self.stationID = stationID }

    var data: String { "dt/V01/BSS/\(stationID)" }
    var command: String { "cmd/V01/BSS/\(stationID)" }

    public var status: String { "\(data)/status" }
    public var inventory: String { "\(data)/inventory" }
    public var telemetry: String { "\(data)/telemetry" }
    public var reply: String { "\(data)/reply" }
    public func event(_ type: String) -> String { "\(data)/evt/\(type)" }
    /// All commands to this station.
    public var commands: String { "\(command)/+" }
    public func command(_ name: String) -> String { "\(command)/\(name)" }
}
