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

    /// Whether the station may publish a reply onto `topic`, an MQTT 5 response topic a (verified) command asked
    /// for: never onto a device data or command tree (`dt/…`, `cmd/…`: the station's own, where a reply would pass
    /// for its events, or another station's), a system topic (`$…`), or a name with wildcards, NUL or an empty level
    /// at the start.
    public func isAcceptableResponseTopic(_ topic: String) -> Bool {
        guard !topic.isEmpty, topic.utf8.count <= 1024, !topic.hasPrefix("$"), !topic.hasPrefix("/") else { return false }
        guard !topic.contains(where: { $0 == "+" || $0 == "#" || $0 == "\u{0}" }) else { return false }
        let first = topic.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        if ["dt", "cmd"].contains(first.lowercased()) { return false }
        return topic != data && !topic.hasPrefix(data + "/") && topic != command && !topic.hasPrefix(command + "/")
    }
}
